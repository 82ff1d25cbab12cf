//! Outbox relay throughput, PostgreSQL → RabbitMQ (publisher confirms, routed to a quorum
//! queue), in batches of 500. Needs the local PostgreSQL and RabbitMQ (see tongban-testkit).
//!
//! - `enqueue_and_relay/500`: one transaction enqueuing 500 events, then one relay pass.
//! - `relay_only/500`: only the relay pass (select + publish + confirm + mark) is timed.
#![allow(unreachable_pub)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sea_orm::DatabaseConnection;
use sea_orm_migration::prelude::*;
use tongban_bus::{Bus, QueueSpec};
use tongban_outbox::{Relay, migration::OutboxInbox, new_envelope, outbox};
use tongban_proto::events::{Envelope, TaskOverdue, envelope::Payload};
use tongban_storage as db;
use tongban_testkit::{Backend, TestDb};

const BATCH: usize = 500;

struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(OutboxInbox)]
    }
}

async fn setup() -> anyhow::Result<(DatabaseConnection, Bus, TestDb)> {
    let tdb = TestDb::new(Backend::Postgres, "bench_relay").await?;
    let conn = db::connect(&tdb.url).await?;
    Migrator::up(&conn, None).await?;
    let (bus, _) = tongban_testkit::rabbit_bus("bench_relay").await?;
    bus.declare(&QueueSpec::new("sink", &["task.#"])).await?;
    Ok((conn, bus, tdb))
}

fn batch() -> Vec<Envelope> {
    (0..BATCH)
        .map(|i| {
            new_envelope(
                "bench",
                &format!("app-{i}"),
                Payload::TaskOverdue(TaskOverdue::default()),
            )
        })
        .collect()
}

async fn enqueue(conn: &DatabaseConnection) {
    let txn = db::begin_write(conn).await.expect("begin");
    outbox::enqueue(&txn, &batch()).await.expect("enqueue");
    txn.commit().await.expect("commit");
}

async fn relay_pass(relay: &Relay) {
    let n = relay.publish_once().await.expect("relay pass");
    assert_eq!(n, BATCH);
}

fn relay(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (conn, bus, _tdb) = rt
        .block_on(setup())
        .expect("PostgreSQL and RabbitMQ are required");
    let relay = Relay::new(conn.clone(), bus).with_batch(BATCH);

    let mut group = c.benchmark_group("outbox_pg_rabbit");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("enqueue_and_relay/500", |b| {
        b.to_async(&rt).iter(|| async {
            enqueue(&conn).await;
            relay_pass(&relay).await;
        })
    });
    group.bench_function("relay_only/500", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (conn, relay) = (&conn, &relay);
            async move {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    enqueue(conn).await;
                    let start = Instant::now();
                    relay_pass(relay).await;
                    timed += start.elapsed();
                }
                timed
            }
        })
    });
    group.finish();
}

criterion_group!(benches, relay);
criterion_main!(benches);
