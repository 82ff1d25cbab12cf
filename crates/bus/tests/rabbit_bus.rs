//! RabbitMQ: publish/confirm, redelivery, dead letters, and publishing after the publisher
//! connection was closed. Needs the local RabbitMQ; each test uses its own exchange.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tongban_bus::{Bus, Delivery, OutgoingMessage, QueueSpec, Subscription};

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

async fn wait_depth(bus: &Bus, queue: &str, n: u64) -> anyhow::Result<()> {
    tongban_testkit::eventually(WAIT, &format!("{n} messages in {queue}"), || async move {
        matches!(bus.queue_depth(queue).await, Ok(d) if d == n).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_nack_redeliver_ack() -> anyhow::Result<()> {
    let (bus, _) = tongban_testkit::rabbit_bus("bus_basic").await?;
    let spec = QueueSpec::new("q", &["task.*"]);
    let mut sub = bus.subscribe(&spec).await?;
    bus.publish_batch(&[
        msg("task.created", "one"),
        msg("application.submitted", "unbound"),
    ])
    .await?;
    let d = recv(&mut sub).await?;
    assert_eq!(
        (d.routing_key.as_str(), d.payload.as_slice(), d.redelivered),
        ("task.created", &b"one"[..], false)
    );
    assert_eq!(
        d.traceparent.as_deref(),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    d.nack().await?;
    let d = recv(&mut sub).await?;
    assert_eq!(d.payload, b"one");
    assert!(d.redelivered);
    d.ack().await?;
    // The unbound key never reached the queue: a marker is the next message.
    bus.publish_batch(&[msg("task.marker", "marker")]).await?;
    assert_eq!(recv(&mut sub).await?.payload, b"marker");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_and_delivery_limit_reach_the_dlq() -> anyhow::Result<()> {
    let (bus, _) = tongban_testkit::rabbit_bus("bus_dlq").await?;
    let mut spec = QueueSpec::new("q", &["task.*"]);
    spec.delivery_limit = 2;
    let mut sub = bus.subscribe(&spec).await?;

    bus.publish_batch(&[msg("task.garbage", "garbage")]).await?;
    recv(&mut sub).await?.dead_letter().await?;
    wait_depth(&bus, &spec.dead_letter_queue(), 1).await?;

    bus.publish_batch(&[msg("task.poison", "poison")]).await?;
    let dlq = spec.dead_letter_queue();
    let mut deliveries = 0;
    loop {
        tokio::select! {
            d = recv(&mut sub) => {
                deliveries += 1;
                d?.nack().await?;
            }
            _ = wait_depth(&bus, &dlq, 2) => break,
        }
    }
    // RabbitMQ counts *returns*: delivered once plus `delivery_limit` redeliveries at most.
    println!(
        "poison message delivered {deliveries} times before dead-lettering (limit {})",
        spec.delivery_limit
    );
    assert_eq!(
        deliveries,
        spec.delivery_limit + 1,
        "delivered once plus delivery_limit redeliveries"
    );
    assert_eq!(bus.queue_depth("q").await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_reconnects_after_publisher_connection_closed() -> anyhow::Result<()> {
    let (bus, _) = tongban_testkit::rabbit_bus("bus_reconnect").await?;
    let Bus::Rabbit(rabbit) = bus.clone() else {
        bail!("expected RabbitMQ")
    };
    let mut sub = bus.subscribe(&QueueSpec::new("q", &["k"])).await?;
    bus.publish_batch(&[msg("k", "before")]).await?;
    assert_eq!(recv(&mut sub).await?.payload, b"before");
    rabbit.close_publisher().await?;
    rabbit.close_publisher().await?; // idempotent
    bus.publish_batch(&[msg("k", "after-1"), msg("k", "after-2")])
        .await?;
    for want in ["after-1", "after-2"] {
        let d = recv(&mut sub).await?;
        assert_eq!(d.payload, want.as_bytes());
        d.ack().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_all_settles_the_whole_batch() -> anyhow::Result<()> {
    let (bus, _) = tongban_testkit::rabbit_bus("bus_ack_all").await?;
    // With a prefetch of 3 the broker sends no more while 3 are unacknowledged: had the
    // batch's ack settled only its last message, only one of the next three would arrive.
    let mut spec = QueueSpec::new("q", &["k"]);
    spec.prefetch = 3;
    let mut sub = bus.subscribe(&spec).await?;
    bus.publish_batch(&[msg("k", "1"), msg("k", "2"), msg("k", "3")])
        .await?;
    let mut batch = Vec::new();
    for want in ["1", "2", "3"] {
        let d = recv(&mut sub).await?;
        assert_eq!(d.payload, want.as_bytes());
        batch.push(d);
    }
    assert_eq!(Delivery::ack_all(batch).await.map_err(|(_, e)| e)?, 3);
    bus.publish_batch(&[msg("k", "4"), msg("k", "5"), msg("k", "6")])
        .await?;
    let mut batch = Vec::new();
    for want in ["4", "5", "6"] {
        let d = recv(&mut sub).await?;
        assert_eq!(d.payload, want.as_bytes());
        assert!(!d.redelivered);
        batch.push(d);
    }
    Delivery::ack_all(batch).await.map_err(|(_, e)| e)?;
    Ok(())
}
