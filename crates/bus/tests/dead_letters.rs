//! Recovering dead letters, the same scenario on RabbitMQ (the local broker; each test has its
//! own exchange) and on the embedded bus: dead-letter by rejection and by delivery limit, list
//! (twice: looking loses and reorders nothing), show, replay (all or nothing by id, to the
//! consumer queue only, with a fresh delivery count), discard, and two replays racing.

use std::{collections::HashSet, time::Duration};

use anyhow::{Context, anyhow, ensure};
use tongban_bus::{
    Bus, Delivery, OutgoingMessage, QueueSpec, Subscription,
    dead_letters::{Handled, Selection},
};

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

/// Nothing arrives for a moment.
async fn quiet(sub: &mut Subscription) -> anyhow::Result<()> {
    if let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(700), sub.recv()).await {
        anyhow::bail!(
            "unexpected message {:?}",
            String::from_utf8_lossy(&d.payload)
        );
    }
    Ok(())
}

async fn wait_depth(bus: &Bus, queue: &str, n: u64) -> anyhow::Result<()> {
    tongban_testkit::eventually(WAIT, &format!("{n} messages in {queue}"), || async move {
        matches!(bus.queue_depth(queue).await, Ok(d) if d == n).then_some(())
    })
    .await
}

fn ids(letters: &[tongban_bus::dead_letters::DeadLetter]) -> Vec<String> {
    letters.iter().map(|d| d.event_id.clone()).collect()
}

async fn scenario(bus: Bus) -> anyhow::Result<()> {
    let mut spec = QueueSpec::new("q", &["task.*"]);
    spec.delivery_limit = 1;
    let dlq = spec.dead_letter_queue();
    // A second consumer of the same events: a replay must not reach it.
    let other = QueueSpec::new("other", &["task.*"]);
    let mut other_sub = bus.subscribe(&other).await?;
    let mut sub = bus.subscribe(&spec).await?;

    let (rejected, failing, fine) = (
        msg("task.rejected", "rejected"),
        msg("task.failing", "failing"),
        msg("task.fine", "fine"),
    );
    bus.publish_batch(&[rejected.clone(), failing.clone(), fine.clone()])
        .await?;
    for _ in 0..3 {
        other_sub.recv().await.context("other")?.ack().await?;
    }
    // rejected: refused at once; failing: nacked until the limit sends it away; fine: acked.
    let mut failing_deliveries = 0;
    while bus.queue_depth(&dlq).await? < 2 {
        let d = tokio::select! {
            d = recv(&mut sub) => d?,
            _ = wait_depth(&bus, &dlq, 2) => break,
        };
        match d.payload.as_slice() {
            b"rejected" => d.dead_letter().await?,
            b"failing" => {
                failing_deliveries += 1;
                d.nack().await?
            }
            _ => d.ack().await?,
        }
    }
    assert_eq!(failing_deliveries, 2, "first delivery plus one redelivery");
    wait_depth(&bus, &dlq, 2).await?;

    // Listing, twice: same messages, same order, nothing lost.
    let (letters, depth) = bus.dead_letters("q", 10).await?;
    assert_eq!(depth, 2);
    assert_eq!(
        ids(&letters),
        vec![rejected.event_id.clone(), failing.event_id.clone()]
    );
    let first = &letters[0];
    assert_eq!(first.event_type, "task.rejected");
    assert_eq!(first.payload, b"rejected");
    assert_eq!(first.traceparent, rejected.traceparent);
    assert_eq!(first.reason.as_deref(), Some("rejected"));
    assert_eq!(letters[1].reason.as_deref(), Some("delivery_limit"));
    for l in &letters {
        assert!(l.dead_lettered_at.is_some(), "{l:?}");
        assert_eq!(l.death_count, Some(1), "{l:?}");
    }
    println!("listed: {letters:?}");
    let (again, _) = bus.dead_letters("q", 10).await?;
    assert_eq!(
        again, letters,
        "a second look sees the same, in the same order"
    );
    let (one, depth) = bus.dead_letters("q", 1).await?;
    assert_eq!((ids(&one), depth), (vec![rejected.event_id.clone()], 2));
    wait_depth(&bus, &dlq, 2).await?;

    // Show.
    let shown = bus
        .dead_letter("q", &failing.event_id)
        .await?
        .context("failing is in the DLQ")?;
    assert_eq!(shown.payload, b"failing");
    assert_eq!(bus.dead_letter("q", "no-such-event").await?, None);

    // By id, all or nothing.
    let r = bus
        .replay_dead_letters(
            "q",
            &Selection::Ids(vec![rejected.event_id.clone(), "no-such-event".into()]),
        )
        .await?;
    assert_eq!(
        r,
        Handled {
            done: vec![],
            missing: vec!["no-such-event".into()]
        }
    );
    wait_depth(&bus, &dlq, 2).await?;
    quiet(&mut sub).await?;

    // Replay the one that failed too often: it arrives as a fresh message, so it may fail once
    // more (delivery_limit 1) before going back to the DLQ.
    let r = bus
        .replay_dead_letters("q", &Selection::Ids(vec![failing.event_id.clone()]))
        .await?;
    assert_eq!(r.done, vec![failing.event_id.clone()]);
    let d = recv(&mut sub).await?;
    assert_eq!(
        (d.payload.as_slice(), d.routing_key.as_str(), d.redelivered),
        (&b"failing"[..], "task.failing", false),
        "the event type is the routing key the consumer sees"
    );
    assert_eq!(d.traceparent, failing.traceparent);
    d.nack().await?;
    let d = recv(&mut sub).await?;
    assert_eq!(d.payload, b"failing");
    d.ack().await?;
    wait_depth(&bus, &dlq, 1).await?;
    wait_depth(&bus, "q", 0).await?;
    // Only the consumer queue got it.
    quiet(&mut other_sub).await?;

    // Discard what is left.
    let r = bus.discard_dead_letters("q", &Selection::All).await?;
    assert_eq!(r.done, vec![rejected.event_id.clone()]);
    wait_depth(&bus, &dlq, 0).await?;
    quiet(&mut sub).await?;
    let (letters, depth) = bus.dead_letters("q", 10).await?;
    assert!(letters.is_empty() && depth == 0);
    drop(other_sub);

    // Two operators replaying everything at once: each message replayed exactly once.
    let poison: Vec<OutgoingMessage> = (0..20).map(|i| msg("task.p", &format!("p{i}"))).collect();
    bus.publish_batch(&poison).await?;
    for _ in 0..poison.len() {
        recv(&mut sub).await?.dead_letter().await?;
    }
    wait_depth(&bus, &dlq, poison.len() as u64).await?;
    let (a, b) = tokio::join!(
        bus.replay_dead_letters("q", &Selection::All),
        bus.replay_dead_letters("q", &Selection::All)
    );
    let (a, b) = (a?, b?);
    let a_set: HashSet<_> = a.done.iter().collect();
    ensure!(
        b.done.iter().all(|id| !a_set.contains(id)),
        "replayed by both: {a:?} {b:?}"
    );
    let all: HashSet<String> = a.done.iter().chain(&b.done).cloned().collect();
    let want: HashSet<String> = poison.iter().map(|m| m.event_id.clone()).collect();
    assert_eq!(all, want, "every dead letter replayed");
    println!(
        "racing replays: {} and {} of {}",
        a.done.len(),
        b.done.len(),
        poison.len()
    );
    let mut got = Vec::new();
    for _ in 0..poison.len() {
        let d = recv(&mut sub).await?;
        got.push(String::from_utf8_lossy(&d.payload).to_string());
        d.ack().await?;
    }
    quiet(&mut sub).await?;
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), poison.len());
    wait_depth(&bus, &dlq, 0).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_dead_letters_are_listed_replayed_and_discarded() -> anyhow::Result<()> {
    let (bus, _) = tongban_testkit::rabbit_bus("bus_dead_letters").await?;
    scenario(bus).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_dead_letters_are_listed_replayed_and_discarded() -> anyhow::Result<()> {
    let (bus, _dir) = tongban_testkit::local_bus().await?;
    scenario(bus).await
}
