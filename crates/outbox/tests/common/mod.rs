//! Shared set-up and scenarios for the outbox integration tests. Each scenario runs against an
//! [`Env`]: PostgreSQL + RabbitMQ (`outbox_rabbit.rs`) or SQLite + the embedded bus
//! (`outbox_embedded.rs`). Every test makes its own database and its own exchange / bus file.
#![allow(dead_code, unreachable_pub)]

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, ensure};
use prost::Message;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Value};
use sea_orm_migration::prelude::*;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tongban_bus::{Bus, BusError, OutgoingMessage, QueueSpec, Subscription};
use tongban_outbox::{
    EventHandler, HandlerError, Relay, RelayHandle, consumer::ConsumerOptions,
    migration::OutboxInbox, outbox,
};
use tongban_proto::events::{Envelope, TaskOverdue, envelope::Payload};
use tongban_storage::{begin_write, connect, stmt};
use tongban_testkit::{Backend, TestDb};

/// How long any single wait in these tests may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

pub const KEY: &str = "task.overdue";

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(OutboxInbox)]
    }
}

/// One test's database and bus (and whatever keeps them alive).
pub struct Env {
    pub db: DatabaseConnection,
    pub bus: Bus,
    pub backend: DbBackend,
    _db: Option<TestDb>,
    _bus_dir: Option<tempfile::TempDir>,
}

async fn prepare_db(url: &str) -> anyhow::Result<DatabaseConnection> {
    let db = connect(url).await?;
    Migrator::up(&db, None).await?;
    // The consumer's "state change": one row per application of an event. No unique key on
    // purpose, so that applying an event twice shows up as two rows.
    let ddl = match db.get_database_backend() {
        DbBackend::Postgres => {
            "CREATE TABLE applied (id BIGSERIAL PRIMARY KEY, event_id TEXT NOT NULL)"
        }
        _ => "CREATE TABLE applied (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL)",
    };
    db.execute_unprepared(ddl).await?;
    Ok(db)
}

/// PostgreSQL (fresh database) + RabbitMQ (fresh exchange).
pub async fn pg_rabbit(prefix: &str) -> anyhow::Result<Env> {
    let tdb = TestDb::new(Backend::Postgres, prefix).await?;
    let db = prepare_db(&tdb.url).await?;
    let (bus, _exchange) = tongban_testkit::rabbit_bus(prefix).await?;
    Ok(Env {
        db,
        bus,
        backend: DbBackend::Postgres,
        _db: Some(tdb),
        _bus_dir: None,
    })
}

/// A PostgreSQL cluster of the test's own (so it can be stopped) + RabbitMQ (fresh exchange).
pub async fn private_pg_rabbit(
    cluster: &tongban_testkit::postgres::PrivatePostgres,
    password: &str,
    prefix: &str,
) -> anyhow::Result<Env> {
    let db = prepare_db(&cluster.url("postgres", password, "postgres")).await?;
    let (bus, _exchange) = tongban_testkit::rabbit_bus(prefix).await?;
    Ok(Env {
        db,
        bus,
        backend: DbBackend::Postgres,
        _db: None,
        _bus_dir: None,
    })
}

/// SQLite (fresh file) + the embedded bus (fresh file).
pub async fn sqlite_local(prefix: &str) -> anyhow::Result<Env> {
    let tdb = TestDb::new(Backend::Sqlite, prefix).await?;
    let db = prepare_db(&tdb.url).await?;
    let (bus, dir) = tongban_testkit::local_bus().await?;
    Ok(Env {
        db,
        bus,
        backend: DbBackend::Sqlite,
        _db: Some(tdb),
        _bus_dir: Some(dir),
    })
}

impl Env {
    pub async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        let row = self
            .db
            .query_one_raw(stmt(self.backend, sql, vec![]))
            .await?
            .context("no row")?;
        Ok(row.try_get::<i64>("", "n")?)
    }

    pub async fn exec(&self, sql: &str, values: Vec<Value>) -> anyhow::Result<u64> {
        Ok(self
            .db
            .execute_raw(stmt(self.backend, sql, values))
            .await?
            .rows_affected())
    }

    pub async fn pending(&self) -> anyhow::Result<u64> {
        Ok(outbox::pending_count(&self.db).await?)
    }

    pub async fn published(&self) -> anyhow::Result<i64> {
        self.count("SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NOT NULL")
            .await
    }

    /// Commits `events` to the outbox in one transaction.
    pub async fn commit(&self, events: &[Envelope]) -> anyhow::Result<()> {
        let txn = begin_write(&self.db).await?;
        outbox::enqueue(&txn, events).await?;
        txn.commit().await?;
        Ok(())
    }

    pub fn relay(&self) -> Relay {
        Relay::new(self.db.clone(), self.bus.clone()).with_poll_interval(Duration::from_millis(100))
    }

    /// Runs `publish_once` until nothing is pending; returns each pass's size.
    pub async fn drain(&self, relay: &Relay) -> anyhow::Result<Vec<usize>> {
        let mut passes = Vec::new();
        loop {
            let n = relay.publish_once().await?;
            if n == 0 {
                return Ok(passes);
            }
            passes.push(n);
        }
    }

    pub async fn depth(&self, queue: &str) -> anyhow::Result<u64> {
        Ok(self.bus.queue_depth(queue).await?)
    }

    /// Waits until `queue` holds exactly `n` ready messages.
    pub async fn wait_depth(&self, queue: &str, n: u64) -> anyhow::Result<()> {
        tongban_testkit::eventually(WAIT, &format!("{n} messages in {queue}"), || async move {
            matches!(self.bus.queue_depth(queue).await, Ok(d) if d == n).then_some(())
        })
        .await
    }
}

pub fn event(app: &str) -> Envelope {
    tongban_outbox::new_envelope(
        "outbox-test",
        app,
        Payload::TaskOverdue(TaskOverdue::default()),
    )
}

pub fn events(n: usize) -> Vec<Envelope> {
    (0..n).map(|i| event(&format!("app-{i}"))).collect()
}

pub fn ids(events: &[Envelope]) -> Vec<String> {
    events.iter().map(|e| e.event_id.clone()).collect()
}

/// Receives `n` messages (acking each), failing after [`WAIT`].
pub async fn recv_n(sub: &mut Subscription, n: usize) -> anyhow::Result<Vec<Envelope>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let d = tokio::time::timeout_at(deadline, sub.recv())
            .await
            .map_err(|_| anyhow!("timed out after {} of {n} messages", out.len()))?
            .ok_or_else(|| anyhow!("subscription ended"))?;
        let env = Envelope::decode(d.payload.as_slice())?;
        ensure!(
            d.routing_key == env.r#type,
            "routing key {} for a {} event",
            d.routing_key,
            env.r#type
        );
        d.ack().await?;
        out.push(env);
    }
    Ok(out)
}

/// Counts how often each id occurs.
pub fn tally(events: &[Envelope]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for e in events {
        *m.entry(e.event_id.clone()).or_insert(0) += 1;
    }
    m
}

/// A handler that writes one `applied` row per application, can fail chosen events a number of
/// times, and counts attempts and committed envelopes.
#[derive(Default)]
pub struct CountingHandler {
    /// event_id → failures still to produce.
    fail: Mutex<HashMap<String, usize>>,
    /// Injected failures are rejections (permanent) rather than storage errors (transient).
    reject: bool,
    /// event_id → calls of `handle`.
    attempts: Mutex<HashMap<String, usize>>,
    /// Envelopes in committed transactions (including ones the inbox skipped).
    committed: AtomicUsize,
}

impl CountingHandler {
    /// Rejects `event_id` (a permanent failure) every time.
    pub fn rejecting(event_id: &str) -> Self {
        Self {
            reject: true,
            ..Self::failing(event_id, usize::MAX)
        }
    }

    /// Fails `event_id` with a transient storage error `times` times.
    pub fn failing(event_id: &str, times: usize) -> Self {
        let h = Self::default();
        h.fail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(event_id.to_string(), times);
        h
    }

    pub fn committed(&self) -> usize {
        self.committed.load(Ordering::SeqCst)
    }

    pub fn attempts(&self, event_id: &str) -> usize {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(event_id)
            .copied()
            .unwrap_or(0)
    }
}

impl EventHandler for CountingHandler {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let fail = {
            *self
                .attempts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(event.event_id.clone())
                .or_insert(0) += 1;
            let mut fail = self.fail.lock().unwrap_or_else(|p| p.into_inner());
            match fail.get_mut(&event.event_id) {
                Some(left) if *left > 0 => {
                    *left -= 1;
                    true
                }
                _ => false,
            }
        };
        // Write first, then fail: the failure must roll the write back.
        let backend = txn.get_database_backend();
        txn.execute_raw(stmt(
            backend,
            "INSERT INTO applied (event_id) VALUES (?)",
            vec![event.event_id.clone().into()],
        ))
        .await?;
        if fail {
            let why = format!("injected failure for {}", event.event_id);
            return Err(if self.reject {
                HandlerError::Rejected(why)
            } else {
                HandlerError::Db(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::Internal(why)))
            });
        }
        Ok(())
    }

    fn committed(&self, events: &[Envelope]) {
        self.committed.fetch_add(events.len(), Ordering::SeqCst);
    }
}

/// `run_consumer` in the background.
pub struct RunningConsumer {
    pub handler: Arc<CountingHandler>,
    stop: CancellationToken,
    task: JoinHandle<Result<(), BusError>>,
}

impl RunningConsumer {
    pub async fn start(
        env: &Env,
        queue: QueueSpec,
        handler: CountingHandler,
        batch: usize,
    ) -> anyhow::Result<Self> {
        let handler = Arc::new(handler);
        let stop = CancellationToken::new();
        let opts = ConsumerOptions {
            consumer: queue.name.clone(),
            queue,
            batch,
        };
        let task = tokio::spawn(tongban_outbox::run_consumer(
            env.db.clone(),
            env.bus.clone(),
            opts,
            handler.clone(),
            None,
            stop.clone(),
        ));
        Ok(Self {
            handler,
            stop,
            task,
        })
    }

    /// Waits until `n` envelopes went through committed transactions.
    pub async fn wait_committed(&self, n: usize) -> anyhow::Result<()> {
        let h = self.handler.clone();
        tongban_testkit::eventually(WAIT, &format!("{n} committed events"), || {
            let h = h.clone();
            async move { (h.committed() >= n).then_some(()) }
        })
        .await
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await??;
        Ok(())
    }
}

/// `Relay::run` in the background.
pub struct RunningRelay {
    pub handle: RelayHandle,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningRelay {
    pub fn start(relay: Relay) -> Self {
        let handle = relay.handle();
        let stop = CancellationToken::new();
        let task = tokio::spawn(relay.run(stop.clone()));
        Self { handle, stop, task }
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// 1. Committed events are published by the relay and arrive with their event_id; the row is
///    marked. A rolled-back transaction publishes nothing.
pub async fn commit_publishes_rollback_does_not(env: Env) -> anyhow::Result<()> {
    let mut sub = env
        .bus
        .subscribe(&QueueSpec::new("watch", &["task.*"]))
        .await?;

    let rolled_back = event("rolled-back");
    let txn = begin_write(&env.db).await?;
    outbox::enqueue(&txn, std::slice::from_ref(&rolled_back)).await?;
    txn.rollback().await?;
    assert_eq!(
        env.count("SELECT COUNT(*) AS n FROM outbox").await?,
        0,
        "rolled-back row is visible"
    );

    let relay = RunningRelay::start(env.relay());
    let committed = event("committed");
    env.commit(std::slice::from_ref(&committed)).await?;
    relay.handle.wake();

    let got = recv_n(&mut sub, 1).await?;
    assert_eq!(
        got[0].event_id, committed.event_id,
        "first message must be the committed event"
    );
    assert_eq!(got[0].r#type, KEY);
    assert_eq!(got[0].application_id, "committed");
    let e = &env;
    tongban_testkit::eventually(WAIT, "row marked published", || async move {
        matches!(e.published().await, Ok(1)).then_some(())
    })
    .await?;
    assert_eq!(env.pending().await?, 0);

    // Nothing else comes: a marker published after everything else is the very next message.
    let marker = event("marker");
    env.commit(std::slice::from_ref(&marker)).await?;
    relay.handle.wake();
    let got = recv_n(&mut sub, 1).await?;
    assert_eq!(
        got[0].event_id, marker.event_id,
        "an unexpected message arrived before the marker"
    );
    assert_ne!(got[0].event_id, rolled_back.event_id);
    relay.stop().await
}

/// 2. Events committed while no relay runs (killed between commit and publish) are all published,
///    each exactly once, by a fresh relay.
pub async fn backlog_published_after_restart(env: Env, n: usize) -> anyhow::Result<()> {
    let spec = QueueSpec::new("backlog", &[KEY]);
    env.bus.declare(&spec).await?;

    // A relay that ran and died before these commits.
    let dead = RunningRelay::start(env.relay());
    dead.stop().await?;

    let evs = events(n);
    for chunk in evs.chunks(7) {
        env.commit(chunk).await?;
    }
    assert_eq!(env.pending().await?, n as u64);
    assert_eq!(env.depth("backlog").await?, 0, "published without a relay");

    let mut sub = env.bus.subscribe(&spec).await?;
    let relay = RunningRelay::start(env.relay()); // as after a restart
    let got = recv_n(&mut sub, n).await?;
    let counts = tally(&got);
    let want: HashSet<String> = ids(&evs).into_iter().collect();
    assert_eq!(counts.keys().cloned().collect::<HashSet<_>>(), want);
    assert!(counts.values().all(|&c| c == 1), "duplicates: {counts:?}");
    let e = &env;
    tongban_testkit::eventually(WAIT, "all rows marked", || async move {
        matches!(e.published().await, Ok(p) if p == n as i64).then_some(())
    })
    .await?;
    assert_eq!(env.pending().await?, 0);

    let marker = event("marker");
    env.commit(std::slice::from_ref(&marker)).await?;
    relay.handle.wake();
    assert_eq!(
        recv_n(&mut sub, 1).await?[0].event_id,
        marker.event_id,
        "extra message after the backlog"
    );
    relay.stop().await
}

/// 3. Crash after publish, before mark: the rows go out twice, the inbox applies each once.
pub async fn duplicates_applied_once(env: Env, n: usize) -> anyhow::Result<()> {
    let wire = QueueSpec::new("wire", &["task.#"]);
    let svc = QueueSpec::new("svc", &[KEY]);
    let mut wire_sub = env.bus.subscribe(&wire).await?;
    env.bus.declare(&svc).await?;

    let evs = events(n);
    env.commit(&evs).await?;
    let relay = env.relay().with_batch(16);
    assert_eq!(env.drain(&relay).await?.iter().sum::<usize>(), n);
    // The process "died" before the mark committed.
    let reset = env
        .exec("UPDATE outbox SET published_at = NULL", vec![])
        .await?;
    assert_eq!(reset, n as u64);
    let fresh = env.relay().with_batch(16);
    assert_eq!(env.drain(&fresh).await?.iter().sum::<usize>(), n);
    assert_eq!(env.pending().await?, 0);

    let on_wire = recv_n(&mut wire_sub, 2 * n).await?;
    let counts = tally(&on_wire);
    assert_eq!(counts.len(), n);
    assert!(
        counts.values().all(|&c| c == 2),
        "each event is on the wire twice: {counts:?}"
    );

    let consumer = RunningConsumer::start(&env, svc, CountingHandler::default(), 8).await?;
    consumer.wait_committed(2 * n).await?;
    env.wait_depth("svc", 0).await?;
    assert_eq!(
        env.count("SELECT COUNT(*) AS n FROM applied").await?,
        n as i64
    );
    assert_eq!(
        env.count("SELECT COUNT(DISTINCT event_id) AS n FROM applied")
            .await?,
        n as i64
    );
    assert_eq!(
        env.count("SELECT COUNT(*) AS n FROM inbox WHERE consumer = 'svc'")
            .await?,
        n as i64
    );
    consumer.stop().await
}

/// 5. An event failing transiently is retried in place (no redelivery, nothing spent of the
///    delivery limit) and applied once; the rest of its batch is applied once; an undecodable
///    message is dead-lettered.
pub async fn redelivery_and_dead_letter(env: Env, n: usize) -> anyhow::Result<()> {
    let svc = QueueSpec::new("svc", &[KEY]);
    env.bus.declare(&svc).await?;
    let evs = events(n);
    let victim = evs[n / 2].event_id.clone();
    env.commit(&evs).await?;
    assert_eq!(env.drain(&env.relay()).await?.iter().sum::<usize>(), n);
    env.bus
        .publish_batch(&[OutgoingMessage {
            event_id: "garbage".into(),
            routing_key: KEY.into(),
            payload: vec![0xff, 0xff, 0xff, 0x07],
            traceparent: None,
        }])
        .await?;
    env.wait_depth("svc", n as u64 + 1).await?;

    // Fails twice with a storage error: retried where it is (in its batch or alone) until it
    // goes through.
    let consumer = RunningConsumer::start(
        &env,
        svc.clone(),
        CountingHandler::failing(&victim, 2),
        n + 1,
    )
    .await?;
    consumer.wait_committed(n).await?;
    env.wait_depth(&svc.dead_letter_queue(), 1).await?;
    env.wait_depth("svc", 0).await?;

    assert_eq!(
        consumer.handler.attempts(&victim),
        3,
        "victim: 2 failures then 1 success"
    );
    assert_eq!(
        env.count("SELECT COUNT(*) AS n FROM applied").await?,
        n as i64,
        "each event applied once"
    );
    assert_eq!(
        env.count("SELECT COUNT(DISTINCT event_id) AS n FROM applied")
            .await?,
        n as i64
    );
    assert_eq!(
        env.count("SELECT COUNT(*) AS n FROM inbox").await?,
        n as i64
    );
    assert_eq!(consumer.handler.committed(), n);
    consumer.stop().await
}

/// 7. The relay publishes in batches of at most its configured size.
pub async fn relay_batches(env: Env, total: usize, batch: usize) -> anyhow::Result<()> {
    let spec = QueueSpec::new("bulk", &["task.*"]);
    env.bus.declare(&spec).await?;
    let evs = events(total);
    let started = Instant::now();
    env.commit(&evs).await?;
    let enqueued = started.elapsed();
    let relay = env.relay().with_batch(batch);
    let started = Instant::now();
    let passes = env.drain(&relay).await?;
    let relayed = started.elapsed();
    println!(
        "{:?}: enqueued {total} in {enqueued:?} ({:.0} events/s); relayed in {} passes in {relayed:?} ({:.0} events/s)",
        env.backend,
        total as f64 / enqueued.as_secs_f64(),
        passes.len(),
        total as f64 / relayed.as_secs_f64(),
    );
    assert!(
        passes.iter().all(|&p| p <= batch),
        "a pass exceeded {batch}: {passes:?}"
    );
    assert_eq!(passes.iter().sum::<usize>(), total);
    assert_eq!(passes.len(), total.div_ceil(batch), "{passes:?}");
    assert_eq!(env.pending().await?, 0);
    assert_eq!(env.published().await?, total as i64);
    env.wait_depth("bulk", total as u64).await
}

/// The message carries the relay's publish span, in the trace the event was written in: same
/// trace id as the envelope's `traceparent`, a new span id. An event written outside any trace
/// still leaves with one (its publish span starts a trace).
pub async fn message_carries_the_publish_span(env: Env) -> anyhow::Result<()> {
    let _telemetry = tongban_telemetry::init("outbox-test");
    let mut sub = env.bus.subscribe(&QueueSpec::new("traced", &[KEY])).await?;
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let written_in = "b7ad6b7169203331";
    let mut traced = event("app-traced");
    traced.traceparent = format!("00-{trace_id}-{written_in}-01");
    let mut untraced = event("app-untraced");
    untraced.traceparent = String::new();
    env.commit(&[traced.clone(), untraced.clone()]).await?;
    ensure!(env.relay().publish_once().await? == 2, "both published");

    let mut seen = HashMap::new();
    while seen.len() < 2 {
        let d = tokio::time::timeout(WAIT, sub.recv())
            .await
            .map_err(|_| anyhow!("timed out"))?
            .ok_or_else(|| anyhow!("subscription ended"))?;
        let env_id = Envelope::decode(d.payload.as_slice())?.event_id;
        let tp = d.traceparent.clone().unwrap_or_default();
        d.ack().await?;
        seen.insert(env_id, tp);
    }
    let parts = |tp: &str| tp.split('-').map(String::from).collect::<Vec<_>>();
    let t = parts(&seen[&traced.event_id]);
    ensure!(t.len() == 4, "traced message's traceparent {t:?}");
    ensure!(t[1] == trace_id, "same trace: {t:?}");
    ensure!(
        t[2] != written_in,
        "the publish span, not the writer's: {t:?}"
    );
    let u = parts(&seen[&untraced.event_id]);
    ensure!(
        u.len() == 4 && u[1] != trace_id && u[1].chars().any(|c| c != '0'),
        "an untraced event leaves in a trace of its own: {u:?}"
    );
    Ok(())
}

/// 6. A rejected event goes to the dead-letter queue at once (one attempt, not the delivery
///    limit's worth); the others of its batch are applied.
pub async fn rejected_event_is_dead_lettered_at_once_in(env: Env, n: usize) -> anyhow::Result<()> {
    let svc = QueueSpec::new("svc", &[KEY]);
    env.bus.declare(&svc).await?;
    let evs = events(n);
    let victim = evs[n / 2].event_id.clone();
    env.commit(&evs).await?;
    assert_eq!(env.drain(&env.relay()).await?.iter().sum::<usize>(), n);
    env.wait_depth("svc", n as u64).await?;
    let consumer =
        RunningConsumer::start(&env, svc.clone(), CountingHandler::rejecting(&victim), n).await?;
    consumer.wait_committed(n - 1).await?;
    env.wait_depth(&svc.dead_letter_queue(), 1).await?;
    env.wait_depth("svc", 0).await?;
    let tries = consumer.handler.attempts(&victim);
    assert!(
        (1..=2).contains(&tries),
        "rejected in its batch and once alone at most, not redelivered: {tries} attempts"
    );
    assert_eq!(
        env.count("SELECT COUNT(*) AS n FROM applied").await?,
        n as i64 - 1
    );
    consumer.stop().await
}

/// Bounded storage: old inbox rows and old published outbox rows go, in batches of the
/// configured size; newer rows and unpublished rows (however old) stay. Then the running relay
/// prunes on its own.
pub async fn prune_in_batches(env: Env) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let old = now - chrono::Duration::days(20);
    let recent = now - chrono::Duration::days(2);
    let insert_inbox = |n: usize, consumer: &'static str, at: chrono::DateTime<chrono::Utc>| {
        let env = &env;
        async move {
            for i in 0..n {
                env.exec(
                    "INSERT INTO inbox (consumer, event_id, processed_at) VALUES (?, ?, ?)",
                    vec![consumer.into(), format!("{consumer}-{i}").into(), at.into()],
                )
                .await?;
            }
            anyhow::Ok(())
        }
    };
    insert_inbox(23, "old", old).await?;
    insert_inbox(5, "recent", recent).await?;
    let insert_outbox = |n: usize,
                         tag: &'static str,
                         published: Option<chrono::DateTime<chrono::Utc>>| {
        let env = &env;
        async move {
            for i in 0..n {
                env.exec(
                    "INSERT INTO outbox (event_id, routing_key, application_id, payload, created_at, published_at) VALUES (?, ?, ?, ?, ?, ?)",
                    vec![
                        format!("{tag}-{i}").into(),
                        KEY.into(),
                        "app".into(),
                        b"x".to_vec().into(),
                        old.into(),
                        published.into(),
                    ],
                )
                .await?;
            }
            anyhow::Ok(())
        }
    };
    insert_outbox(21, "old", Some(old)).await?;
    insert_outbox(4, "recent", Some(recent)).await?;
    // Never published: pending work, not garbage. Kept whatever its age.
    insert_outbox(3, "pending", None).await?;

    // One statement deletes one batch, no more.
    let one = tongban_outbox::prune::inbox(now - chrono::Duration::days(14), 4)
        .once(&env.db)
        .await?;
    ensure!(
        one == 4,
        "one statement deleted {one} rows, not a batch of 4"
    );
    let n = |sql: &'static str| env.count(sql);
    ensure!(n("SELECT COUNT(*) AS n FROM inbox").await? == 28 - 4);

    let pruned = env.relay().with_prune_batch(4).prune().await?;
    ensure!(
        pruned
            == tongban_outbox::Pruned {
                outbox: 21,
                inbox: 19
            },
        "{pruned:?}"
    );
    ensure!(n("SELECT COUNT(*) AS n FROM inbox WHERE consumer = 'old'").await? == 0);
    ensure!(n("SELECT COUNT(*) AS n FROM inbox WHERE consumer = 'recent'").await? == 5);
    ensure!(n("SELECT COUNT(*) AS n FROM outbox WHERE event_id LIKE 'old-%'").await? == 0);
    ensure!(n("SELECT COUNT(*) AS n FROM outbox WHERE event_id LIKE 'recent-%'").await? == 4);
    ensure!(n("SELECT COUNT(*) AS n FROM outbox WHERE event_id LIKE 'pending-%'").await? == 3);
    ensure!(env.relay().prune().await? == tongban_outbox::Pruned::default());

    // Shorter retentions on a running relay: it prunes at start, in batches, by itself.
    let relay = RunningRelay::start(
        env.relay()
            .with_retention(chrono::Duration::days(1))
            .with_inbox_retention(chrono::Duration::days(1))
            .with_prune_batch(2),
    );
    tongban_testkit::eventually(WAIT, "the relay prunes the recent rows too", || async {
        let inbox = n("SELECT COUNT(*) AS n FROM inbox").await.ok()?;
        let published = n("SELECT COUNT(*) AS n FROM outbox WHERE event_id LIKE 'recent-%'")
            .await
            .ok()?;
        (inbox == 0 && published == 0).then_some(())
    })
    .await?;
    relay.stop().await?;
    Ok(())
}

/// `inbox::record_all`: per id in order, whether to apply it. Ids recorded before, ids repeated
/// within the batch, and another consumer's records are told apart; a batch larger than one
/// statement's chunk gives the same answers.
pub async fn inbox_records_a_batch(env: Env) -> anyhow::Result<()> {
    use tongban_outbox::inbox;
    let txn = tongban_storage::begin_write(&env.db).await?;
    assert!(inbox::record(&txn, "c1", "e1").await?);
    assert_eq!(
        inbox::record_all(&txn, "c1", &["e1", "e2", "e3", "e2", "e1"]).await?,
        vec![false, true, true, false, false]
    );
    // Another consumer applies the same events for itself.
    assert_eq!(
        inbox::record_all(&txn, "c2", &["e1", "e2"]).await?,
        vec![true, true]
    );
    let many: Vec<String> = (0..450).map(|i| format!("m{i}")).collect();
    let mut ids: Vec<&str> = many.iter().map(String::as_str).collect();
    ids.push("e3");
    ids.push("m7");
    let fresh = inbox::record_all(&txn, "c1", &ids).await?;
    assert_eq!(fresh.iter().filter(|f| **f).count(), 450);
    assert!(
        !fresh[450] && !fresh[451],
        "e3 was recorded before, m7 earlier in the batch"
    );
    txn.commit().await?;
    assert_eq!(
        env.count("SELECT COUNT(*) AS n FROM inbox WHERE consumer = 'c1'")
            .await?,
        453
    );
    // Rolled back, a batch leaves nothing: the next attempt applies the events.
    let txn = tongban_storage::begin_write(&env.db).await?;
    assert_eq!(inbox::record_all(&txn, "c3", &["x"]).await?, vec![true]);
    txn.rollback().await?;
    let txn = tongban_storage::begin_write(&env.db).await?;
    assert_eq!(inbox::record_all(&txn, "c3", &["x"]).await?, vec![true]);
    txn.commit().await?;
    Ok(())
}
