//! Refused attempts into the audit log. The authorization decision is synchronous and must not
//! wait on the database, so [`DenialLog`] (the [`DenialSink`] services hand to their
//! `Policy`) queues each refusal and [`DenialLog::run`] appends it to the service's own chain
//! (`service/<name>`), what has queued up by then in one short transaction. Refusals go to the service chain, not
//! the application's: a caller hammering someone else's application must not grow that
//! application's trail, and many refusals name no application at all.
//!
//! The queue is bounded: a flood of refusals past [`CAPACITY`] is counted and logged rather
//! than held in memory; what fits is written before the service stops.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tongban_authz::{Denial, DenialSink};

use crate::{Act, Actor, append, service_chain};

/// Refusals waiting to be written, at most.
pub const CAPACITY: usize = 4096;
/// Refusals written in one transaction, at most.
const BATCH: usize = 256;

/// The sending side: cheap, never blocks.
#[derive(Debug)]
pub struct DenialLog {
    tx: mpsc::Sender<Denial>,
    dropped: AtomicU64,
    /// `tongban.audit.denials.dropped`, by service.
    dropped_metric: opentelemetry::metrics::Counter<u64>,
    service: String,
}

/// The writing side, run by the service until it stops.
pub struct DenialWriter {
    rx: mpsc::Receiver<Denial>,
    db: DatabaseConnection,
    chain: String,
}

impl DenialLog {
    /// A log writing to `service`'s chain in `db`. Run the writer ([`DenialWriter::run`]) as a
    /// task of the service.
    pub fn new(db: DatabaseConnection, service: &str) -> (Arc<DenialLog>, DenialWriter) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        (
            Arc::new(DenialLog {
                tx,
                dropped: AtomicU64::new(0),
                dropped_metric: tongban_telemetry::metrics::meter()
                    .u64_counter("tongban.audit.denials.dropped")
                    .with_description("Refusals not written to the audit trail: the queue was full")
                    .build(),
                service: service.to_string(),
            }),
            DenialWriter {
                rx,
                db,
                chain: service_chain(service),
            },
        )
    }

    /// Refusals that did not fit in the queue since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl DenialSink for DenialLog {
    fn record(&self, denial: Denial) {
        if self.tx.try_send(denial).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            self.dropped_metric.add(
                1,
                &[opentelemetry::KeyValue::new(
                    "tongban.service",
                    self.service.clone(),
                )],
            );
            tracing::error!(
                dropped = n,
                "audit: refusal queue full; refusal not recorded"
            );
        }
    }
}

impl DenialWriter {
    /// Appends queued refusals until `shutdown`, then writes what is already queued and stops.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                biased;
                d = self.rx.recv() => match d {
                    Some(d) => {
                        let batch = self.queued_after(d);
                        self.write(batch).await;
                    }
                    None => return,
                },
                () = shutdown.cancelled() => break,
            }
        }
        while let Ok(d) = self.rx.try_recv() {
            let batch = self.queued_after(d);
            self.write(batch).await;
        }
    }

    /// `first` and whatever else is queued already, up to [`BATCH`].
    fn queued_after(&mut self, first: Denial) -> Vec<Denial> {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match self.rx.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        batch
    }

    /// One transaction for the batch: a burst of refusals costs one commit, not one each.
    async fn write(&self, batch: Vec<Denial>) {
        let written = async {
            let txn = tongban_storage::begin_write(&self.db).await?;
            let now = tongban_storage::now_ms();
            for d in &batch {
                append(
                    &txn,
                    &self.chain,
                    now,
                    Act::denied(Actor::from(&d.who), d.action.as_str(), &d.target)
                        .reason(d.why.to_string()),
                )
                .await?;
            }
            txn.commit().await
        }
        .await;
        if let Err(e) = written {
            // The refusals themselves stand; only their record is missing, which the log says.
            tracing::error!(error = %e, refusals = batch.len(), "audit: recording refusals failed");
        }
    }
}
