//! The relay: moves committed outbox rows onto the bus.
//!
//! One pass takes up to `batch` pending rows in order (on PostgreSQL with `FOR UPDATE SKIP
//! LOCKED`, so several replicas share the work without publishing a row twice at once),
//! publishes them as one confirmed batch, and marks them published in the same transaction that
//! held the locks. If the process dies after the broker confirmed but before the mark commits,
//! the rows are published again: at-least-once, which the consumers' inbox turns into once.
//!
//! Each row's publish is a producer span `publish {exchange}` in the trace the event was written
//! in (`tongban_telemetry::messaging`); the message carries that span's context, so consumers'
//! spans hang under it.
//!
//! Between passes, every [`Relay::with_prune_interval`] (default 10 minutes), the relay also
//! keeps the service's storage bounded ([`crate::prune`]): published outbox rows older than
//! [`Relay::with_retention`] (7 days) and inbox rows older than [`Relay::with_inbox_retention`]
//! (14 days, longer than any redelivery window) are deleted in batches.

use std::{sync::Arc, time::Duration};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tongban_bus::{Bus, BusError, OutgoingMessage};
use tongban_telemetry::messaging::{Message, publish_span};

use tongban_storage::stmt;

/// Why a relay pass failed; the relay retries after a pause.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("outbox storage: {0}")]
    Db(#[from] DbErr),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("the bus did not confirm a batch of {count} within {timeout:?}")]
    Timeout { count: usize, timeout: Duration },
}

/// Wakes the relay right after a commit, so events leave without waiting for the next poll.
#[derive(Clone, Debug, Default)]
pub struct RelayHandle(Arc<Notify>);

impl RelayHandle {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// How many rows one [`Relay::prune`] deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub outbox: u64,
    pub inbox: u64,
}

pub struct Relay {
    db: DatabaseConnection,
    bus: Bus,
    handle: RelayHandle,
    batch: usize,
    poll: Duration,
    retention: chrono::Duration,
    inbox_retention: chrono::Duration,
    prune_batch: usize,
    prune_every: Duration,
    publish_timeout: Duration,
    metrics: crate::metrics::Instruments,
}

/// How long one batch may wait for the broker's confirms (see [`Relay::with_publish_timeout`]).
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

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
            inbox_retention: chrono::Duration::days(14),
            prune_batch: crate::prune::DEFAULT_BATCH,
            prune_every: Duration::from_secs(600),
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
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

    /// How long published outbox rows are kept before pruning (default 7 days).
    pub fn with_retention(mut self, retention: chrono::Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How long inbox rows (the event ids consumers applied) are kept (default 14 days). Keep it
    /// longer than any redelivery window: an event redelivered after its row is pruned is
    /// applied again.
    pub fn with_inbox_retention(mut self, retention: chrono::Duration) -> Self {
        self.inbox_retention = retention;
        self
    }

    /// Most rows one pruning `DELETE` removes (default 1000); pruning repeats until done.
    pub fn with_prune_batch(mut self, batch: usize) -> Self {
        self.prune_batch = batch.max(1);
        self
    }

    /// How often the relay prunes (default 10 minutes; the first prune runs at start).
    pub fn with_prune_interval(mut self, every: Duration) -> Self {
        self.prune_every = every;
        self
    }

    /// How long a batch may wait for the broker to confirm it (default 30 s). The pass holds
    /// its rows locked in an open transaction while it publishes; a broker that accepts the
    /// connection but never answers must not keep them locked (and a connection slot taken)
    /// for ever. A batch that times out is rolled back and published again on a later pass.
    pub fn with_publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout.max(Duration::from_millis(1));
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
                    "SELECT seq, event_id, routing_key, application_id, payload, traceparent FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?{lock}"
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
        let mut spans = Vec::with_capacity(rows.len());
        for row in &rows {
            seqs.push(row.try_get::<i64>("", "seq")?.into());
            let event_id: String = row.try_get("", "event_id")?;
            let routing_key: String = row.try_get("", "routing_key")?;
            let application_id: String = row.try_get("", "application_id")?;
            let written_in: Option<String> = row.try_get("", "traceparent")?;
            let span = publish_span(
                Message {
                    system: self.bus.system(),
                    destination: self.bus.exchange(),
                    routing_key: &routing_key,
                    message_id: &event_id,
                    application_id: &application_id,
                },
                written_in.as_deref(),
            );
            // Without tracing there is no publish span: pass on the context it was written in.
            let traceparent = tongban_telemetry::traceparent_of(&span).or(written_in);
            spans.push(span);
            messages.push(OutgoingMessage {
                event_id,
                routing_key,
                payload: row.try_get("", "payload")?,
                traceparent,
            });
        }
        let types = || messages.iter().map(|m| m.routing_key.as_str());
        let published =
            match tokio::time::timeout(self.publish_timeout, self.bus.publish_batch(&messages))
                .await
            {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(RelayError::Bus(e)),
                Err(_) => Err(RelayError::Timeout {
                    count: messages.len(),
                    timeout: self.publish_timeout,
                }),
            };
        if let Err(e) = published {
            for span in &spans {
                tongban_telemetry::messaging::record_error(span, "publish");
            }
            self.metrics.sent(types(), Some("publish_failed"));
            txn.rollback().await?;
            return Err(e);
        }
        let placeholders = tongban_storage::placeholders(seqs.len());
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

    /// Deletes outbox rows published longer ago than the retention and inbox rows processed
    /// longer ago than the inbox retention, in batches. Returns how many rows of each it deleted.
    pub async fn prune(&self) -> Result<Pruned, DbErr> {
        let now = chrono::Utc::now();
        let outbox = crate::prune::outbox(now - self.retention, self.prune_batch)
            .run(&self.db)
            .await?;
        let inbox = crate::prune::inbox(now - self.inbox_retention, self.prune_batch)
            .run(&self.db)
            .await?;
        if outbox + inbox > 0 {
            tracing::info!(outbox, inbox, "pruned old outbox and inbox rows");
        }
        Ok(Pruned { outbox, inbox })
    }

    /// Runs until `shutdown`: publish while there is work, otherwise wait for a wake-up or the
    /// poll interval. Failures back off and retry; nothing is dropped.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failures = 0u32;
        let mut last_prune: Option<tokio::time::Instant> = None;
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
            if last_prune.is_none_or(|t| t.elapsed() >= self.prune_every) {
                last_prune = Some(tokio::time::Instant::now());
                if let Err(e) = self.prune().await {
                    tracing::warn!(error = %e, "pruning outbox and inbox failed; will retry");
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
