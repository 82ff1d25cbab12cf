//! The embedded bus: RabbitMQ's queue semantics kept in a SQLite file.
//!
//! `tongban dev` runs every service in one process, but it must keep production's promise that
//! nothing accepted is lost on `kill -9`. So this bus is not a channel in memory: publishing
//! inserts one row per bound queue (in one transaction), a consumer locks rows as it hands them
//! out, ack deletes the row, nack unlocks it. On start every lock is released, which redelivers
//! whatever was in flight when the process died. A message delivered `delivery_limit` times
//! moves to the queue's `.dlq`, as on RabbitMQ.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
    TransactionTrait, Value,
};
use tokio::sync::{Notify, mpsc};

use crate::{
    Acker, BusError, Delivery, OutgoingMessage, QueueSpec, Subscription,
    dead_letters::{DeadLetter, Handled, Op, Selection},
    topic_matches,
};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS bus_queue (name TEXT PRIMARY KEY, delivery_limit INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bus_binding (queue TEXT NOT NULL, pattern TEXT NOT NULL, PRIMARY KEY (queue, pattern))",
    "CREATE TABLE IF NOT EXISTS bus_message (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        queue TEXT NOT NULL,
        routing_key TEXT NOT NULL,
        event_id TEXT NOT NULL,
        payload BLOB NOT NULL,
        traceparent TEXT,
        deliveries INTEGER NOT NULL DEFAULT 0,
        locked INTEGER NOT NULL DEFAULT 0,
        enqueued_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS bus_message_ready ON bus_message (queue, locked, id)",
];

/// Columns added after the first release, with their definitions: added to an older bus file
/// on open. They describe a message's last trip to a dead-letter queue.
const ADDED_COLUMNS: &[(&str, &str)] = &[
    ("dead_lettered_at", "TEXT"),
    ("death_reason", "TEXT"),
    ("deaths", "INTEGER NOT NULL DEFAULT 0"),
];

/// Moves a message to a dead-letter queue, recording when and why (`?` = dlq, reason, now, id).
const DEAD_LETTER: &str = "UPDATE bus_message SET queue = ?, deliveries = 0, locked = 0, death_reason = ?, dead_lettered_at = ?, deaths = deaths + 1 WHERE id = ?";

/// Poll interval when no publish woke the consumer (a safety net, not the normal path).
const IDLE_POLL: Duration = Duration::from_millis(500);

/// The embedded bus's `messaging.system` in traces.
pub const SYSTEM: &str = "tongban_embedded";

#[derive(Clone)]
pub struct LocalBus {
    inner: Arc<Inner>,
    /// Only a name here (bindings are per queue); traces show it as the destination.
    exchange: Arc<str>,
}

impl std::fmt::Debug for LocalBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalBus")
    }
}

struct Inner {
    db: DatabaseConnection,
    /// queue → (patterns, delivery limit); this process is the only writer of bindings.
    bindings: RwLock<HashMap<String, (Vec<String>, u32)>>,
    published: Notify,
}

/// Most ids bound in one statement (SQLite allows 32766 parameters; a batch is far smaller).
const ACK_CHUNK: usize = 500;

/// `?, ?, …` for `n` parameters.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

fn stmt(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)
}

impl LocalBus {
    /// Opens (creating) the bus file, e.g. `sqlite://data/bus.db?mode=rwc`.
    pub async fn open(url: &str) -> Result<Self, BusError> {
        let dir = url
            .strip_prefix("sqlite://")
            .map(|p| p.split('?').next().unwrap_or(p))
            .and_then(|p| std::path::Path::new(p).parent())
            .filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut opts = ConnectOptions::new(url.to_string());
        // One connection: SQLite has one writer anyway, and this avoids SQLITE_BUSY between
        // our own connections.
        opts.max_connections(1)
            .min_connections(1)
            .sqlx_logging(false);
        let db = Database::connect(opts).await?;
        db.execute_unprepared("PRAGMA journal_mode=WAL").await?;
        for sql in SCHEMA {
            db.execute_unprepared(sql).await?;
        }
        for (column, definition) in ADDED_COLUMNS {
            let present = db
                .query_one_raw(stmt(
                    "SELECT COUNT(*) AS n FROM pragma_table_info('bus_message') WHERE name = ?",
                    vec![column.to_string().into()],
                ))
                .await?
                .map(|r| r.try_get::<i64>("", "n"))
                .transpose()?
                .unwrap_or(0);
            if present == 0 {
                db.execute_unprepared(&format!(
                    "ALTER TABLE bus_message ADD COLUMN {column} {definition}"
                ))
                .await?;
            }
        }
        // Whatever was handed out before a crash was never acked: make it deliverable again.
        db.execute_unprepared("UPDATE bus_message SET locked = 0 WHERE locked = 1")
            .await?;
        let mut bindings: HashMap<String, (Vec<String>, u32)> = HashMap::new();
        for row in db
            .query_all_raw(stmt("SELECT name, delivery_limit FROM bus_queue", vec![]))
            .await?
        {
            let name: String = row.try_get("", "name")?;
            let limit: i64 = row.try_get("", "delivery_limit")?;
            bindings.insert(name, (Vec::new(), limit as u32));
        }
        for row in db
            .query_all_raw(stmt("SELECT queue, pattern FROM bus_binding", vec![]))
            .await?
        {
            let queue: String = row.try_get("", "queue")?;
            let pattern: String = row.try_get("", "pattern")?;
            bindings
                .entry(queue)
                .or_insert_with(|| (Vec::new(), 10))
                .0
                .push(pattern);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                bindings: RwLock::new(bindings),
                published: Notify::new(),
            }),
            exchange: Arc::from("tongban.events"),
        })
    }

    /// Names the exchange this bus stands for (the `exchange` setting), as traces show it.
    pub fn with_exchange(mut self, exchange: &str) -> Self {
        self.exchange = Arc::from(exchange);
        self
    }

    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    pub async fn declare(&self, spec: &QueueSpec) -> Result<(), BusError> {
        let txn = self.inner.db.begin().await?;
        txn.execute_raw(stmt(
            "INSERT INTO bus_queue (name, delivery_limit) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET delivery_limit = excluded.delivery_limit",
            vec![spec.name.clone().into(), i64::from(spec.delivery_limit).into()],
        ))
        .await?;
        for pattern in &spec.bindings {
            txn.execute_raw(stmt(
                "INSERT INTO bus_binding (queue, pattern) VALUES (?, ?) ON CONFLICT DO NOTHING",
                vec![spec.name.clone().into(), pattern.clone().into()],
            ))
            .await?;
        }
        txn.commit().await?;
        let mut map = self
            .inner
            .bindings
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry(spec.name.clone())
            .or_insert_with(|| (Vec::new(), spec.delivery_limit));
        entry.1 = spec.delivery_limit;
        for p in &spec.bindings {
            if !entry.0.contains(p) {
                entry.0.push(p.clone());
            }
        }
        Ok(())
    }

    pub async fn publish_batch(&self, messages: &[OutgoingMessage]) -> Result<(), BusError> {
        let targets: Vec<(usize, String)> = {
            let map = self
                .inner
                .bindings
                .read()
                .unwrap_or_else(|p| p.into_inner());
            messages
                .iter()
                .enumerate()
                .flat_map(|(i, m)| {
                    map.iter()
                        .filter(|(_, (patterns, _))| {
                            patterns.iter().any(|p| topic_matches(p, &m.routing_key))
                        })
                        .map(move |(q, _)| (i, q.clone()))
                })
                .collect()
        };
        if !targets.is_empty() {
            let now = chrono::Utc::now().to_rfc3339();
            let txn = self.inner.db.begin().await?;
            for (i, queue) in targets {
                let m = &messages[i];
                txn.execute_raw(stmt(
                    "INSERT INTO bus_message (queue, routing_key, event_id, payload, traceparent, enqueued_at) VALUES (?, ?, ?, ?, ?, ?)",
                    vec![
                        queue.into(),
                        m.routing_key.clone().into(),
                        m.event_id.clone().into(),
                        m.payload.clone().into(),
                        m.traceparent.clone().into(),
                        now.clone().into(),
                    ],
                ))
                .await?;
            }
            txn.commit().await?;
        }
        self.inner.published.notify_waiters();
        Ok(())
    }

    pub async fn subscribe(&self, spec: &QueueSpec) -> Result<Subscription, BusError> {
        self.declare(spec).await?;
        let (tx, rx) = mpsc::channel(spec.prefetch.max(1) as usize);
        let bus = self.clone();
        let spec = spec.clone();
        let task = tokio::spawn(async move {
            loop {
                let notified = bus.inner.published.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let room = tx.capacity();
                let batch = if room == 0 {
                    Ok(Vec::new())
                } else {
                    bus.take(&spec, room).await
                };
                match batch {
                    Ok(batch) if !batch.is_empty() => {
                        for d in batch {
                            if tx.send(d).await.is_err() {
                                return;
                            }
                        }
                    }
                    Ok(_) => {
                        if tx.is_closed() {
                            return;
                        }
                        tokio::select! {
                            _ = &mut notified => {}
                            _ = tokio::time::sleep(IDLE_POLL) => {}
                        }
                    }
                    Err(e) => {
                        tracing::warn!(queue = %spec.name, error = %e, "embedded bus read failed");
                        tokio::time::sleep(IDLE_POLL).await;
                    }
                }
            }
        });
        Ok(Subscription { rx, task })
    }

    /// Locks and returns up to `max` ready messages; moves over-delivered ones to the DLQ.
    async fn take(&self, spec: &QueueSpec, max: usize) -> Result<Vec<Delivery>, BusError> {
        let txn = self.inner.db.begin().await?;
        let rows = txn
            .query_all_raw(stmt(
                "SELECT id, routing_key, payload, traceparent, deliveries FROM bus_message WHERE queue = ? AND locked = 0 ORDER BY id LIMIT ?",
                vec![spec.name.clone().into(), (max as i64).into()],
            ))
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut taken: Vec<i64> = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("", "id")?;
            let deliveries: i64 = row.try_get("", "deliveries")?;
            // Same rule as RabbitMQ's x-delivery-limit: the first delivery plus at most
            // `delivery_limit` redeliveries.
            if deliveries > i64::from(spec.delivery_limit) {
                txn.execute_raw(stmt(
                    DEAD_LETTER,
                    vec![
                        spec.dead_letter_queue().into(),
                        "delivery_limit".into(),
                        chrono::Utc::now().to_rfc3339().into(),
                        id.into(),
                    ],
                ))
                .await?;
                tracing::warn!(queue = %spec.name, id, "message dead-lettered after {deliveries} deliveries");
                continue;
            }
            taken.push(id);
            out.push(Delivery {
                routing_key: row.try_get("", "routing_key")?,
                payload: row.try_get("", "payload")?,
                redelivered: deliveries > 0,
                traceparent: row.try_get("", "traceparent")?,
                acker: Acker::Local {
                    bus: self.clone(),
                    queue: spec.name.clone(),
                    id,
                },
            });
        }
        for chunk in taken.chunks(ACK_CHUNK) {
            txn.execute_raw(stmt(
                &format!(
                    "UPDATE bus_message SET locked = 1, deliveries = deliveries + 1 WHERE id IN ({})",
                    placeholders(chunk.len())
                ),
                chunk.iter().map(|&id| id.into()).collect(),
            ))
            .await?;
        }
        txn.commit().await?;
        Ok(out)
    }

    pub(crate) async fn ack(&self, id: i64) -> Result<(), BusError> {
        self.inner
            .db
            .execute_raw(stmt(
                "DELETE FROM bus_message WHERE id = ?",
                vec![id.into()],
            ))
            .await?;
        Ok(())
    }

    /// Acks many messages in one statement (chunks of [`ACK_CHUNK`] ids).
    pub(crate) async fn ack_many(&self, ids: &[i64]) -> Result<(), BusError> {
        for chunk in ids.chunks(ACK_CHUNK) {
            self.inner
                .db
                .execute_raw(stmt(
                    &format!(
                        "DELETE FROM bus_message WHERE id IN ({})",
                        placeholders(chunk.len())
                    ),
                    chunk.iter().map(|&id| id.into()).collect(),
                ))
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn nack(&self, _queue: &str, id: i64) -> Result<(), BusError> {
        self.inner
            .db
            .execute_raw(stmt(
                "UPDATE bus_message SET locked = 0 WHERE id = ?",
                vec![id.into()],
            ))
            .await?;
        self.inner.published.notify_waiters();
        Ok(())
    }

    pub(crate) async fn dead_letter(&self, queue: &str, id: i64) -> Result<(), BusError> {
        self.inner
            .db
            .execute_raw(stmt(
                DEAD_LETTER,
                vec![
                    format!("{queue}.dlq").into(),
                    "rejected".into(),
                    chrono::Utc::now().to_rfc3339().into(),
                    id.into(),
                ],
            ))
            .await?;
        Ok(())
    }

    /// Whether the bus file answers.
    pub async fn check(&self) -> Result<(), BusError> {
        self.inner.db.ping().await?;
        Ok(())
    }

    pub async fn queue_depth(&self, queue: &str) -> Result<u64, BusError> {
        let row = self
            .inner
            .db
            .query_one_raw(stmt(
                "SELECT COUNT(*) AS n FROM bus_message WHERE queue = ?",
                vec![queue.to_string().into()],
            ))
            .await?;
        let n: i64 = match row {
            Some(r) => r.try_get("", "n")?,
            None => 0,
        };
        Ok(n as u64)
    }
}

/// Columns of a dead letter, for [`letter_of`].
const LETTER_COLUMNS: &str =
    "id, routing_key, event_id, payload, traceparent, dead_lettered_at, death_reason, deaths";

fn letter_of(row: &sea_orm::QueryResult) -> Result<DeadLetter, BusError> {
    let at: Option<String> = row.try_get("", "dead_lettered_at")?;
    let deaths: i64 = row.try_get("", "deaths")?;
    Ok(DeadLetter {
        event_id: row.try_get("", "event_id")?,
        event_type: row.try_get("", "routing_key")?,
        payload: row.try_get("", "payload")?,
        traceparent: row.try_get("", "traceparent")?,
        dead_lettered_at: at
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&chrono::Utc)),
        // Rows dead-lettered before the column existed say 0: unknown.
        death_count: u64::try_from(deaths).ok().filter(|n| *n > 0),
        reason: row.try_get("", "death_reason")?,
    })
}

impl LocalBus {
    pub(crate) async fn dead_letters(
        &self,
        queue: &str,
        limit: usize,
    ) -> Result<(Vec<DeadLetter>, u64), BusError> {
        let dlq = format!("{queue}.dlq");
        let rows = self
            .inner
            .db
            .query_all_raw(stmt(
                &format!(
                    "SELECT {LETTER_COLUMNS} FROM bus_message WHERE queue = ? ORDER BY id LIMIT ?"
                ),
                vec![
                    dlq.clone().into(),
                    (limit.min(i64::MAX as usize) as i64).into(),
                ],
            ))
            .await?;
        let letters = rows.iter().map(letter_of).collect::<Result<Vec<_>, _>>()?;
        Ok((letters, self.queue_depth(&dlq).await?))
    }

    pub(crate) async fn find_dead_letter(
        &self,
        queue: &str,
        event_id: &str,
    ) -> Result<Option<DeadLetter>, BusError> {
        let row = self
            .inner
            .db
            .query_one_raw(stmt(
                &format!(
                    "SELECT {LETTER_COLUMNS} FROM bus_message WHERE queue = ? AND event_id = ? ORDER BY id LIMIT 1"
                ),
                vec![format!("{queue}.dlq").into(), event_id.to_string().into()],
            ))
            .await?;
        row.as_ref().map(letter_of).transpose()
    }

    /// One transaction: the rows move (replay) or go (discard) together, and a second operator
    /// doing the same finds them gone.
    pub(crate) async fn handle_dead_letters(
        &self,
        queue: &str,
        selection: &Selection,
        op: Op,
    ) -> Result<Handled, BusError> {
        let dlq = format!("{queue}.dlq");
        let txn = self.inner.db.begin().await?;
        let rows = txn
            .query_all_raw(stmt(
                "SELECT id, event_id FROM bus_message WHERE queue = ? ORDER BY id",
                vec![dlq.clone().into()],
            ))
            .await?;
        let mut present = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("", "id")?;
            let event_id: String = row.try_get("", "event_id")?;
            present.push((id, event_id));
        }
        let mut handled = Handled::default();
        let chosen: Vec<&(i64, String)> = match selection {
            Selection::All => present.iter().collect(),
            Selection::Ids(ids) => {
                let wanted = Handled::wanted(ids);
                handled.missing = wanted
                    .iter()
                    .filter(|w| !present.iter().any(|(_, e)| e == *w))
                    .cloned()
                    .collect();
                if !handled.missing.is_empty() {
                    return Ok(handled);
                }
                present.iter().filter(|(_, e)| wanted.contains(e)).collect()
            }
        };
        for (id, event_id) in chosen {
            let sql = match op {
                // Back in place (ids keep the original order) with a fresh delivery count.
                Op::Replay => {
                    "UPDATE bus_message SET queue = ?, deliveries = 0, locked = 0 WHERE id = ? AND queue = ?"
                }
                Op::Discard => "DELETE FROM bus_message WHERE id = ? AND queue = ?",
            };
            let values: Vec<Value> = match op {
                Op::Replay => vec![queue.to_string().into(), (*id).into(), dlq.clone().into()],
                Op::Discard => vec![(*id).into(), dlq.clone().into()],
            };
            txn.execute_raw(stmt(sql, values)).await?;
            if !handled.done.contains(event_id) {
                handled.done.push(event_id.clone());
            }
        }
        txn.commit().await?;
        if op == Op::Replay {
            self.inner.published.notify_waiters();
        }
        Ok(handled)
    }
}
