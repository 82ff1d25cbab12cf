//! The embedded bus: durability across a crash, topic routing, delivery limit and dead letters.

use std::time::Duration;

use anyhow::{Context, anyhow};
use tongban_bus::{Bus, Delivery, OutgoingMessage, QueueSpec, Subscription, local::LocalBus};

const WAIT: Duration = Duration::from_secs(30);

fn msg(key: &str, body: &str) -> OutgoingMessage {
    OutgoingMessage {
        event_id: uuid::Uuid::now_v7().to_string(),
        routing_key: key.into(),
        payload: body.as_bytes().to_vec(),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
    }
}

async fn recv(sub: &mut Subscription) -> anyhow::Result<Delivery> {
    tokio::time::timeout(WAIT, sub.recv())
        .await
        .map_err(|_| anyhow!("no message within {WAIT:?}"))?
        .context("subscription ended")
}

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}?mode=rwc", dir.path().join("bus.db").display())
}

async fn wait_depth(bus: &Bus, queue: &str, n: u64) -> anyhow::Result<()> {
    tongban_testkit::eventually(WAIT, &format!("{n} messages in {queue}"), || async move {
        matches!(bus.queue_depth(queue).await, Ok(d) if d == n).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_delivery_is_redelivered_after_a_crash() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let spec = QueueSpec::new("q", &["a.*"]);
    {
        let bus = Bus::Local(LocalBus::open(&url(&dir)).await?);
        bus.declare(&spec).await?;
        bus.publish_batch(&[msg("a.one", "one")]).await?;
        let mut sub = bus.subscribe(&spec).await?;
        let d = recv(&mut sub).await?;
        assert_eq!(d.payload, b"one");
        assert_eq!(d.routing_key, "a.one");
        assert!(!d.redelivered);
        assert!(d.traceparent.is_some());
        // "kill -9": neither acked nor nacked; bus, subscription and delivery all go away.
        drop(d);
        drop(sub);
        drop(bus);
    }
    let bus = Bus::Local(LocalBus::open(&url(&dir)).await?);
    // Bindings survived as well: this routes without declaring again.
    bus.publish_batch(&[msg("a.two", "two")]).await?;
    wait_depth(&bus, "q", 2).await?;
    let mut sub = bus.subscribe(&spec).await?;
    let d = recv(&mut sub).await?;
    assert_eq!(d.payload, b"one", "the unacked message comes first, again");
    assert!(d.redelivered, "the bus knows it was delivered before");
    d.ack().await?;
    let d = recv(&mut sub).await?;
    assert_eq!(d.payload, b"two");
    assert!(!d.redelivered);
    d.ack().await?;
    drop(sub);
    drop(bus);

    // Acked messages stay gone across a restart.
    let bus = Bus::Local(LocalBus::open(&url(&dir)).await?);
    assert_eq!(bus.queue_depth("q").await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_redelivers_in_process() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let bus = Bus::Local(LocalBus::open(&url(&dir)).await?);
    let spec = QueueSpec::new("q", &["a.#"]);
    let mut sub = bus.subscribe(&spec).await?;
    bus.publish_batch(&[msg("a", "x")]).await?;
    let d = recv(&mut sub).await?;
    assert!(!d.redelivered);
    d.nack().await?;
    let d = recv(&mut sub).await?;
    assert_eq!(d.payload, b"x");
    assert!(d.redelivered);
    d.ack().await?;
    assert_eq!(bus.queue_depth("q").await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_bindings_route_like_amqp() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let bus = Bus::Local(LocalBus::open(&url(&dir)).await?);
    let queues: &[(&str, &[&str])] = &[
        ("star", &["task.*"]),
        ("hash", &["task.#"]),
        ("all", &["#"]),
        ("mid", &["*.a.#"]),
        ("exact", &["application.submitted"]),
        ("two", &["task.created", "application.*"]),
    ];
    for (name, bindings) in queues {
        bus.declare(&QueueSpec::new(*name, bindings)).await?;
    }
    let keys = [
        "task",
        "task.created",
        "task.a.b",
        "application.submitted",
        "other.thing",
    ];
    bus.publish_batch(&keys.iter().map(|k| msg(k, k)).collect::<Vec<_>>())
        .await?;

    let expect: &[(&str, &[&str])] = &[
        ("star", &["task.created"]),
        ("hash", &["task", "task.created", "task.a.b"]),
        (
            "all",
            &[
                "task",
                "task.created",
                "task.a.b",
                "application.submitted",
                "other.thing",
            ],
        ),
        ("mid", &["task.a.b"]),
        ("exact", &["application.submitted"]),
        ("two", &["task.created", "application.submitted"]),
    ];
    for (name, want) in expect {
        assert_eq!(
            bus.queue_depth(name).await?,
            want.len() as u64,
            "depth of {name}"
        );
        let mut sub = bus.subscribe(&QueueSpec::new(*name, &[])).await?;
        let mut got = Vec::new();
        for _ in 0..want.len() {
            let d = recv(&mut sub).await?;
            got.push(d.routing_key.clone());
            d.ack().await?;
        }
        assert_eq!(&got, want, "routing keys in {name}");
        assert_eq!(bus.queue_depth(name).await?, 0);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_limit_moves_message_to_dead_letter_queue() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let bus = Bus::Local(LocalBus::open(&url(&dir)).await?);
    let mut spec = QueueSpec::new("q", &["a.*"]);
    spec.delivery_limit = 3;
    let mut sub = bus.subscribe(&spec).await?;
    bus.publish_batch(&[msg("a.poison", "poison"), msg("a.fine", "fine")])
        .await?;

    let dlq = spec.dead_letter_queue();
    let mut poison = Vec::new();
    loop {
        tokio::select! {
            d = recv(&mut sub) => {
                let d = d?;
                if d.payload == b"poison" {
                    poison.push(d.redelivered);
                    d.nack().await?;
                } else {
                    d.ack().await?;
                }
            }
            _ = wait_depth(&bus, &dlq, 1) => break,
        }
    }
    assert_eq!(
        poison,
        vec![false, true, true, true],
        "delivered once plus delivery_limit redeliveries (as on RabbitMQ), then dead-lettered"
    );
    assert_eq!(bus.queue_depth("q").await?, 0);
    assert_eq!(bus.queue_depth("q.dlq").await?, 1);

    // Explicit dead-lettering (undecodable messages) skips the retries.
    bus.publish_batch(&[msg("a.garbage", "garbage")]).await?;
    let d = recv(&mut sub).await?;
    assert_eq!(d.payload, b"garbage");
    d.dead_letter().await?;
    assert_eq!(bus.queue_depth("q.dlq").await?, 2);
    assert_eq!(bus.queue_depth("q").await?, 0);

    // The dead-letter queue is a queue like any other: its messages can be read back.
    let mut dlq = bus.subscribe(&QueueSpec::new("q.dlq", &[])).await?;
    let mut bodies = vec![recv(&mut dlq).await?, recv(&mut dlq).await?]
        .into_iter()
        .map(|d| String::from_utf8_lossy(&d.payload).into_owned())
        .collect::<Vec<_>>();
    bodies.sort();
    assert_eq!(bodies, ["garbage", "poison"]);
    Ok(())
}
