//! The consuming side: bus → inbox check → handler → commit → ack.
//!
//! A burst of messages is applied in one transaction (one commit instead of one per event).
//! If anything in the batch fails, the batch is rolled back and retried one message at a time,
//! so one bad event cannot hold the others back; a message that keeps failing is nacked and,
//! after the queue's delivery limit, dead-lettered by the bus.

use std::{future::Future, sync::Arc, time::Duration};

use prost::Message;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use tokio_util::sync::CancellationToken;
use tongban_bus::{Bus, BusError, Delivery, QueueSpec};
use tongban_proto::events::Envelope;
use tracing::Instrument;

use crate::{inbox, relay::RelayHandle};

/// Why applying an event failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("storage: {0}")]
    Db(#[from] DbErr),
    /// The event cannot be applied, now or ever (e.g. it references nothing we know).
    #[error("cannot apply event: {0}")]
    Rejected(String),
}

/// What a service does with one event, inside the consumer's transaction.
pub trait EventHandler: Send + Sync + 'static {
    /// Applies `event` using `txn` only (it commits together with the inbox record and any
    /// outbox rows the handler adds).
    fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Called after the transaction that applied `events` committed (e.g. to wake watchers).
    fn committed(&self, _events: &[Envelope]) {}
}

/// Options for [`run_consumer`].
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Inbox key: one per consuming service (e.g. "intake").
    pub consumer: String,
    pub queue: QueueSpec,
    /// Largest batch applied in one transaction.
    pub batch: usize,
}

/// Consumes `opts.queue` until `shutdown`, applying events through `handler`. Returns an error
/// only if the subscription cannot be started.
pub async fn run_consumer<H: EventHandler>(
    db: DatabaseConnection,
    bus: Bus,
    opts: ConsumerOptions,
    handler: Arc<H>,
    relay: Option<RelayHandle>,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let mut sub = bus.subscribe(&opts.queue).await?;
    let metrics = crate::metrics::Instruments::new(&opts.consumer, &bus);
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            b = sub.recv_batch(opts.batch) => b,
        };
        if batch.is_empty() {
            return Err(BusError::Closed);
        }
        let applied = apply_batch(&db, &opts.consumer, handler.as_ref(), batch, &metrics).await;
        if applied && let Some(r) = &relay {
            r.wake();
        }
    }
}

/// Applies a batch; returns true when something committed.
async fn apply_batch<H: EventHandler>(
    db: &DatabaseConnection,
    consumer: &str,
    handler: &H,
    batch: Vec<Delivery>,
    metrics: &crate::metrics::Instruments,
) -> bool {
    let mut decoded = Vec::with_capacity(batch.len());
    for d in batch {
        if d.redelivered {
            metrics.redelivered(&d.routing_key);
        }
        match Envelope::decode(d.payload.as_slice()) {
            Ok(env) => decoded.push((d, env)),
            Err(e) => {
                metrics.consumed(&d.routing_key, Some("undecodable"));
                metrics.dead_lettered(&d.routing_key);
                tracing::error!(routing_key = %d.routing_key, error = %e, "undecodable event; dead-lettering");
                if let Err(e) = d.dead_letter().await {
                    tracing::warn!(error = %e, "dead-letter failed");
                }
            }
        }
    }
    if decoded.is_empty() {
        return false;
    }
    let envs: Vec<&Envelope> = decoded.iter().map(|(_, e)| e).collect();
    match apply_in_txn(db, consumer, handler, &envs).await {
        Ok(()) => {
            let events: Vec<Envelope> = decoded.iter().map(|(_, e)| e.clone()).collect();
            for (d, env) in decoded {
                metrics.consumed(&env.r#type, None);
                if let Err(e) = d.ack().await {
                    tracing::warn!(error = %e, "ack failed; the event will be redelivered and skipped by the inbox");
                }
            }
            handler.committed(&events);
            true
        }
        Err(e) if decoded.len() == 1 => {
            let (d, env) = decoded.remove(0);
            metrics.consumed(&env.r#type, Some("handler_failed"));
            tracing::warn!(event_id = %env.event_id, r#type = %env.r#type, error = %e, "event failed; will be redelivered");
            // A short pause keeps a failing event from spinning the CPU while it is retried.
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Err(e) = d.nack().await {
                tracing::warn!(error = %e, "nack failed");
            }
            false
        }
        Err(e) => {
            tracing::info!(size = decoded.len(), error = %e, "batch failed; applying one by one");
            let mut any = false;
            for (d, env) in decoded {
                match apply_in_txn(db, consumer, handler, &[&env]).await {
                    Ok(()) => {
                        metrics.consumed(&env.r#type, None);
                        if let Err(e) = d.ack().await {
                            tracing::warn!(error = %e, "ack failed");
                        }
                        handler.committed(std::slice::from_ref(&env));
                        any = true;
                    }
                    Err(e) => {
                        metrics.consumed(&env.r#type, Some("handler_failed"));
                        tracing::warn!(event_id = %env.event_id, r#type = %env.r#type, error = %e, "event failed; will be redelivered");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if let Err(e) = d.nack().await {
                            tracing::warn!(error = %e, "nack failed");
                        }
                    }
                }
            }
            any
        }
    }
}

async fn apply_in_txn<H: EventHandler>(
    db: &DatabaseConnection,
    consumer: &str,
    handler: &H,
    events: &[&Envelope],
) -> Result<(), HandlerError> {
    let txn = tongban_storage::begin_write(db).await?;
    for env in events {
        if inbox::record(&txn, consumer, &env.event_id).await? {
            let span = tracing::info_span!("apply_event", event_id = %env.event_id, r#type = %env.r#type, application_id = %env.application_id);
            tongban_telemetry::set_parent(&span, &env.traceparent);
            handler.handle(&txn, env).instrument(span).await?;
        } else {
            tracing::debug!(event_id = %env.event_id, "already applied; skipping");
        }
    }
    txn.commit().await?;
    Ok(())
}
