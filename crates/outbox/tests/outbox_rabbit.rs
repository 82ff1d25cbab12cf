//! Outbox → relay → RabbitMQ → consumer, on PostgreSQL. Needs the local PostgreSQL and RabbitMQ.

mod common;

use std::collections::HashSet;

use anyhow::bail;
use common::*;
use tongban_bus::{Bus, QueueSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_event_is_published_and_rolled_back_one_is_not() -> anyhow::Result<()> {
    commit_publishes_rollback_does_not(pg_rabbit("ob_commit").await?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_committed_without_relay_is_published_after_restart() -> anyhow::Result<()> {
    backlog_published_after_restart(pg_rabbit("ob_backlog").await?, 100).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_publish_and_mark_is_applied_once() -> anyhow::Result<()> {
    duplicates_applied_once(pg_rabbit("ob_dupes").await?, 60).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transiently_failing_event_is_retried_in_place_and_garbage_is_dead_lettered()
-> anyhow::Result<()> {
    redelivery_and_dead_letter(pg_rabbit("ob_redeliver").await?, 12).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_event_is_dead_lettered_at_once() -> anyhow::Result<()> {
    rejected_event_is_dead_lettered_at_once_in(pg_rabbit("ob_reject").await?, 12).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_publishes_2000_events_in_bounded_batches() -> anyhow::Result<()> {
    relay_batches(pg_rabbit("ob_batches").await?, 2_000, 300).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_carries_the_relays_publish_span() -> anyhow::Result<()> {
    message_carries_the_publish_span(pg_rabbit("ob_traced").await?).await
}

/// 4. The broker connection the relay publishes on is closed between two batches; the relay
///    notices the dead connection, reconnects, and the second batch arrives, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_reconnects_after_its_broker_connection_is_closed() -> anyhow::Result<()> {
    let env = pg_rabbit("ob_reconnect").await?;
    let Bus::Rabbit(rabbit) = env.bus.clone() else {
        bail!("expected RabbitMQ")
    };
    let mut sub = env.bus.subscribe(&QueueSpec::new("svc", &[KEY])).await?;
    let relay = RunningRelay::start(env.relay().with_batch(50));

    let first = events(120);
    env.commit(&first).await?;
    relay.handle.wake();
    let got = recv_n(&mut sub, first.len()).await?;
    assert_eq!(
        ids(&got).into_iter().collect::<HashSet<_>>(),
        ids(&first).into_iter().collect()
    );

    rabbit.close_publisher().await?;

    let second = events(120);
    env.commit(&second).await?;
    relay.handle.wake();
    let got = recv_n(&mut sub, second.len()).await?;
    let counts = tally(&got);
    assert_eq!(
        counts.keys().cloned().collect::<HashSet<_>>(),
        ids(&second).into_iter().collect()
    );
    assert!(counts.values().all(|&c| c == 1), "{counts:?}");
    let e = &env;
    tongban_testkit::eventually(WAIT, "all 240 rows marked", || async move {
        matches!(e.published().await, Ok(240)).then_some(())
    })
    .await?;
    assert_eq!(env.pending().await?, 0);
    relay.stop().await
}

/// A database outage while events wait: the consumer pauses instead of spending the delivery
/// limit (2 here, which the old nack-on-every-failure would have used up in well under a
/// second), and applies everything once the database is back. Nothing is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_pauses_consuming_and_spends_no_delivery() -> anyhow::Result<()> {
    let cluster = tongban_testkit::postgres::PrivatePostgres::start("outage-pw")?;
    let env = private_pg_rabbit(&cluster, "outage-pw", "ob_outage").await?;
    let mut svc = tongban_bus::QueueSpec::new("svc", &[KEY]);
    svc.delivery_limit = 2;
    env.bus.declare(&svc).await?;
    let evs = events(10);
    env.commit(&evs).await?;
    assert_eq!(env.drain(&env.relay()).await?.iter().sum::<usize>(), 10);
    env.wait_depth("svc", 10).await?;

    cluster.pause()?;
    let consumer = RunningConsumer::start(&env, svc.clone(), CountingHandler::default(), 4).await?;
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert_eq!(
        env.depth(&svc.dead_letter_queue()).await?,
        0,
        "nothing dead-lettered during the outage"
    );
    assert_eq!(consumer.handler.committed(), 0);

    cluster.resume()?;
    consumer.wait_committed(10).await?;
    env.wait_depth("svc", 0).await?;
    assert_eq!(env.depth(&svc.dead_letter_queue()).await?, 0);
    assert_eq!(
        env.count("SELECT COUNT(DISTINCT event_id) AS n FROM applied")
            .await?,
        10
    );
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM applied").await?, 10);
    consumer.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_inbox_and_published_outbox_rows_are_pruned_in_batches() -> anyhow::Result<()> {
    prune_in_batches(pg_rabbit("ob_prune").await?).await
}

/// A broker that accepted the relay's connection and then stops answering (a frozen network
/// path, here a proxy that stops moving bytes) cannot hold the relay's transaction open: the
/// batch times out, is rolled back with its rows unlocked and still pending, and is published
/// once the path answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_gives_up_a_publish_the_broker_never_confirms() -> anyhow::Result<()> {
    let mut env = pg_rabbit("ob_frozen").await?;
    let exchange = tongban_testkit::unique_exchange("ob_frozen");
    // The consumer reads straight from the broker; only the relay's path goes through the proxy.
    let direct = Bus::connect(&tongban_testkit::amqp_url_for_processes(), &exchange).await?;
    let mut sub = direct.subscribe(&QueueSpec::new("svc", &[KEY])).await?;
    let url = tongban_testkit::amqp_url();
    let host_port = url
        .split_once('@')
        .and_then(|(_, rest)| rest.split('/').next())
        .ok_or_else(|| anyhow::anyhow!("no host in {url}"))?;
    let broker = tokio::net::lookup_host(host_port)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{host_port} does not resolve"))?;
    let proxy = tongban_testkit::proxy::Proxy::start(broker).await?;
    env.bus = Bus::connect(
        &format!("amqp://guest:guest@{}/%2f", proxy.addr()),
        &exchange,
    )
    .await?;
    let relay = env
        .relay()
        .with_publish_timeout(std::time::Duration::from_secs(1));

    let batch = events(10);
    env.commit(&batch).await?;
    proxy.freeze();
    let started = std::time::Instant::now();
    let err = match relay.publish_once().await {
        Ok(n) => bail!("published {n} rows through a frozen connection"),
        Err(e) => e,
    };
    assert!(
        matches!(err, tongban_outbox::RelayError::Timeout { count: 10, .. }),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(env.pending().await?, 10, "rolled back: still pending");
    // Rolled back means unlocked: another pass can take the rows at once.
    let locked = env
        .count(
            "SELECT COUNT(*) AS n FROM (SELECT seq FROM outbox WHERE published_at IS NULL FOR UPDATE NOWAIT) t",
        )
        .await?;
    assert_eq!(locked, 10);

    proxy.thaw();
    let e = &env;
    let r = &relay;
    tongban_testkit::eventually(WAIT, "the batch published after the thaw", || async move {
        r.publish_once().await.ok();
        (e.pending().await.ok()? == 0).then_some(())
    })
    .await?;
    let got = recv_n(&mut sub, batch.len()).await?;
    assert_eq!(
        ids(&got).into_iter().collect::<HashSet<_>>(),
        ids(&batch).into_iter().collect()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_records_a_batch_in_one_statement() -> anyhow::Result<()> {
    inbox_records_a_batch(pg_rabbit("ob_inbox_batch").await?).await
}
