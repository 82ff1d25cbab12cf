//! The relay: moves committed outbox rows onto the bus.
//!
//! One pass takes up to `batch` pending rows in order (on PostgreSQL with `FOR UPDATE SKIP
//! LOCKED`, so several replicas share the work without publishing a row twice at once),
//! publishes them as one confirmed batch, and marks them published in the same transaction that
//! held the locks. If the process dies after the broker confirmed but before the mark commits,
//! the rows are published again: at-least-once, which the consumers' inbox turns into once.

use std::{sync::Arc, time::Duration};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tongban_bus::{Bus, BusError, OutgoingMessage};

use tongban_storage::stmt;

/// Why a relay pass failed; the relay retries after a pause.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("outbox storage: {0}")]
    Db(#[from] DbErr),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
}

/// Wakes the relay right after a commit, so events leave without waiting for the next poll.
#[derive(Clone, Debug, Default)]
pub struct RelayHandle(Arc<Notify>);

impl RelayHandle {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

pub struct Relay {
    db: DatabaseConnection,
    bus: Bus,
    handle: RelayHandle,
    batch: usize,
    poll: Duration,
    retention: chrono::Duration,
    metrics: crate::metrics::Instruments,
}

/// How often the backlog gauges are refreshed.
const OBSERVE_EVERY: Duration = Duration::from_secs(5);

impl Relay {
    pub fn new(db: DatabaseConnection, bus: Bus) -> Self {
        Self {
            db,
            handle: RelayHandle::default(),
            batch: 500,
            poll: Duration::from_secs(1),
            retention: chrono::Duration::days(7),
            metrics: crate::metrics::Instruments::new("unnamed", &bus),
            bus,
        }
    }

    /// Names the service in the relay's metrics (`tongban.service`).
    pub fn with_service(mut self, service: &str) -> Self {
        self.metrics = crate::metrics::Instruments::new(service, &self.bus);
        self
    }

    /// Largest batch published with one round of confirms.
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// How long to wait between passes when nobody wakes the relay.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// How long published rows are kept before pruning.
    pub fn with_retention(mut self, retention: chrono::Duration) -> Self {
        self.retention = retention;
        self
    }

    pub fn handle(&self) -> RelayHandle {
        self.handle.clone()
    }

    /// Publishes one batch; returns how many rows it published.
    pub async fn publish_once(&self) -> Result<usize, RelayError> {
        let backend = self.db.get_database_backend();
        let lock = tongban_storage::lock::skip_locked(backend);
        let txn = tongban_storage::begin_write(&self.db).await?;
        let rows = txn
            .query_all_raw(stmt(
                backend,
                &format!(
                    "SELECT seq, event_id, routing_key, payload, traceparent FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?{lock}"
                ),
                vec![(self.batch as i64).into()],
            ))
            .await?;
        if rows.is_empty() {
            txn.rollback().await?;
            return Ok(0);
        }
        let mut seqs: Vec<Value> = Vec::with_capacity(rows.len());
        let mut messages = Vec::with_capacity(rows.len());
        for row in &rows {
            seqs.push(row.try_get::<i64>("", "seq")?.into());
            messages.push(OutgoingMessage {
                event_id: row.try_get("", "event_id")?,
                routing_key: row.try_get("", "routing_key")?,
                payload: row.try_get("", "payload")?,
                traceparent: row.try_get("", "traceparent")?,
            });
        }
        let types = || messages.iter().map(|m| m.routing_key.as_str());
        if let Err(e) = self.bus.publish_batch(&messages).await {
            self.metrics.sent(types(), Some("publish_failed"));
            txn.rollback().await?;
            return Err(e.into());
        }
        let placeholders = vec!["?"; seqs.len()].join(",");
        let mut values = vec![chrono::Utc::now().into()];
        values.extend(seqs);
        txn.execute_raw(stmt(
            backend,
            &format!("UPDATE outbox SET published_at = ? WHERE seq IN ({placeholders})"),
            values,
        ))
        .await?;
        txn.commit().await?;
        self.metrics.sent(types(), None);
        tracing::debug!(count = messages.len(), "outbox batch published");
        Ok(messages.len())
    }

    /// Deletes rows published longer ago than the retention.
    pub async fn prune(&self) -> Result<u64, DbErr> {
        let backend = self.db.get_database_backend();
        let cutoff = chrono::Utc::now() - self.retention;
        let res = self
            .db
            .execute_raw(stmt(
                backend,
                "DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < ?",
                vec![cutoff.into()],
            ))
            .await?;
        Ok(res.rows_affected())
    }

    /// Runs until `shutdown`: publish while there is work, otherwise wait for a wake-up or the
    /// poll interval. Failures back off and retry; nothing is dropped.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failures = 0u32;
        let mut last_prune = tokio::time::Instant::now();
        let mut last_observed: Option<tokio::time::Instant> = None;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            if last_observed.is_none_or(|t| t.elapsed() >= OBSERVE_EVERY) {
                last_observed = Some(tokio::time::Instant::now());
                if let Err(e) = self.metrics.observe_backlog(&self.db).await {
                    tracing::debug!(error = %e, "reading the outbox backlog failed");
                }
            }
            match self.publish_once().await {
                Ok(n) => {
                    failures = 0;
                    if n == self.batch {
                        continue;
                    }
                }
                Err(e) => {
                    failures += 1;
                    let pause = tongban_types::Backoff::doubling(
                        Duration::from_millis(100),
                        Duration::from_secs(5),
                    )
                    .delay(failures);
                    tracing::warn!(error = %e, ?pause, "outbox relay pass failed; will retry");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(pause) => continue,
                    }
                }
            }
            if last_prune.elapsed() > Duration::from_secs(600) {
                last_prune = tokio::time::Instant::now();
                if let Err(e) = self.prune().await {
                    tracing::warn!(error = %e, "outbox prune failed");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.handle.0.notified() => {}
                _ = tokio::time::sleep(self.poll.min(OBSERVE_EVERY)) => {}
            }
        }
    }
}
