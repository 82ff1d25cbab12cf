//! Bounded storage for `parked_events`: an event parked longer than the retention (default 30
//! days) still waits for an `application.submitted` that will not come, so its predecessor was
//! lost. It is deleted (in batches, see [`tongban_outbox::prune`]) and each one is logged at
//! WARN with its id, so an operator can look for the lost event and replay it.

use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr};
use tokio_util::sync::CancellationToken;
use tongban_outbox::prune::{Batched, DEFAULT_BATCH};

/// When and how parked events are pruned.
#[derive(Clone, Debug)]
pub struct ParkedPruner {
    db: DatabaseConnection,
    retention: chrono::Duration,
    batch: usize,
    every: Duration,
}

impl ParkedPruner {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            retention: chrono::Duration::days(30),
            batch: DEFAULT_BATCH,
            every: Duration::from_secs(600),
        }
    }

    /// How long an event may stay parked before it is given up (default 30 days).
    pub fn with_retention(mut self, retention: chrono::Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Most rows one `DELETE` removes (default 1000).
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// How often [`run`](Self::run) prunes (default 10 minutes; the first at start).
    pub fn with_interval(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// Deletes events parked before the retention, logging each; returns how many.
    pub async fn prune(&self) -> Result<u64, DbErr> {
        let cutoff = tongban_storage::now_ms() - self.retention.num_milliseconds();
        Batched {
            table: "parked_events",
            key: "event_id",
            filter: "parked_at < ?",
            params: vec![cutoff.into()],
            batch: self.batch,
        }
        .run_returning(&self.db, "event_id, application_id, parked_at", |row| {
            let field = |c: &str| row.try_get::<String>("", c).unwrap_or_default();
            let parked_at = row.try_get::<i64>("", "parked_at").unwrap_or_default();
            tracing::warn!(
                event_id = %field("event_id"),
                application_id = %field("application_id"),
                parked_at = ?chrono::DateTime::from_timestamp_millis(parked_at),
                "parked event given up: its application.submitted never arrived"
            );
        })
        .await
    }

    /// Prunes at start and then every interval until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.prune().await {
                tracing::warn!(error = %e, "pruning parked events failed; will retry");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.every) => {}
            }
        }
    }
}
