//! The consuming side: bus → inbox check → handler → commit → ack.
//!
//! A burst of messages is applied in one transaction (one commit instead of one per event).
//!
//! Failures are told apart by what they are:
//! - **Transient** (the database unreachable or timing out, a serialization failure): retried
//!   here with backoff, holding the messages, so an outage does not spend the queue's delivery
//!   limit. While the database does not answer at all, consuming simply pauses, for as long as
//!   the outage lasts. A transient error that persists while the database answers (a fault the
//!   retries do not cure) is given up after [`TRANSIENT_ATTEMPTS`], and the message is nacked:
//!   the bus redelivers it and, after its delivery limit, dead-letters it.
//! - **Permanent** (undecodable, or rejected by the handler): dead-lettered at once; no retry
//!   could change the answer.
//!
//! If a batch fails for good, it is rolled back and applied one message at a time, so one bad
//! event cannot hold the others back.
//!
//! Each event is applied inside a consumer span `process {queue}`, a child of the publish span
//! the message names (`tongban_telemetry::messaging`), so whatever the handler emits continues
//! the application's trace.

use std::{future::Future, sync::Arc, time::Duration};

use prost::Message as _;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use tokio_util::sync::CancellationToken;
use tongban_bus::{Bus, BusError, Delivery, QueueSpec};
use tongban_proto::events::Envelope;
use tongban_telemetry::messaging::{Message, process_span, record_error};
use tracing::Instrument;

use crate::{inbox, relay::RelayHandle};

/// How many times an event whose transient failure persists while the database answers is
/// tried before it is handed back to the bus.
pub const TRANSIENT_ATTEMPTS: u32 = 5;

/// Why applying an event failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("storage: {0}")]
    Db(#[from] DbErr),
    /// The event cannot be applied, now or ever (e.g. it references nothing we know).
    #[error("cannot apply event: {0}")]
    Rejected(String),
    /// Not now, but later may work (a service the handler calls is down, a concurrent change).
    #[error("cannot apply event yet: {0}")]
    Transient(String),
}

impl HandlerError {
    /// Whether trying again later could succeed: storage errors are; rejections are not.
    pub fn is_transient(&self) -> bool {
        match self {
            HandlerError::Db(e) => !matches!(
                e,
                DbErr::RecordNotFound(_)
                    | DbErr::Json(_)
                    | DbErr::Type(_)
                    | DbErr::TryIntoErr { .. }
                    | DbErr::ConvertFromU64(_)
                    | DbErr::AttrNotSet(_)
            ),
            HandlerError::Transient(_) => true,
            HandlerError::Rejected(_) => false,
        }
    }
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
    let source = Source {
        system: bus.system(),
        queue: bus.queue_name(&opts.queue.name),
    };
    let metrics = crate::metrics::Instruments::new(&opts.consumer, &bus);
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            b = sub.recv_batch(opts.batch) => b,
        };
        if batch.is_empty() {
            return Err(BusError::Closed);
        }
        let applied = apply_batch(
            &Applier {
                db: &db,
                consumer: &opts.consumer,
                source: &source,
                handler: handler.as_ref(),
                shutdown: &shutdown,
            },
            batch,
            &metrics,
        )
        .await;
        if applied && let Some(r) = &relay {
            r.wake();
        }
    }
}

/// Where deliveries come from, as their spans name it.
struct Source {
    system: &'static str,
    queue: String,
}

/// One decoded event and the `traceparent` its message carried.
type Received<'a> = (&'a Envelope, Option<&'a str>);

/// What applying needs, passed around together.
struct Applier<'a, H> {
    db: &'a DatabaseConnection,
    consumer: &'a str,
    source: &'a Source,
    handler: &'a H,
    shutdown: &'a CancellationToken,
}

/// Why [`Applier::apply_retrying`] gave up.
enum GaveUp {
    /// The handler rejected an event: dead-letter it.
    Rejected(HandlerError),
    /// A transient failure persisted while the database answered: hand it back to the bus.
    Persisting(HandlerError),
    /// Shutdown came first: leave the messages unacknowledged for the next consumer.
    Shutdown,
}

impl<H: EventHandler> Applier<'_, H> {
    /// Applies `events` in one transaction, retrying transient failures with backoff: without
    /// limit while the database does not answer (consuming pauses), otherwise up to
    /// [`TRANSIENT_ATTEMPTS`] times.
    async fn apply_retrying(&self, events: &[Received<'_>]) -> Result<(), GaveUp> {
        let backoff =
            tongban_types::Backoff::doubling(Duration::from_millis(100), Duration::from_secs(30));
        let (mut tries, mut waits) = (0u32, 0u32);
        loop {
            let e = match apply_in_txn(self.db, self.consumer, self.source, self.handler, events)
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if !e.is_transient() => return Err(GaveUp::Rejected(e)),
                Err(e) => e,
            };
            let db_answers = matches!(
                tokio::time::timeout(Duration::from_secs(3), self.db.ping()).await,
                Ok(Ok(()))
            );
            if db_answers {
                tries += 1;
                if tries >= TRANSIENT_ATTEMPTS {
                    return Err(GaveUp::Persisting(e));
                }
            }
            waits = waits.saturating_add(1);
            let pause = backoff.delay(waits);
            if db_answers {
                tracing::warn!(consumer = self.consumer, error = %e, attempt = tries, ?pause, "transient failure; retrying");
            } else {
                tracing::warn!(consumer = self.consumer, error = %e, ?pause, "database unreachable; consuming paused");
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return Err(GaveUp::Shutdown),
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Applies a batch; returns true when something committed.
async fn apply_batch<H: EventHandler>(
    ap: &Applier<'_, H>,
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
    let envs: Vec<Received<'_>> = decoded
        .iter()
        .map(|(d, e)| (e, d.traceparent.as_deref()))
        .collect();
    match ap.apply_retrying(&envs).await {
        Ok(()) => {
            let mut events = Vec::with_capacity(decoded.len());
            let mut deliveries = Vec::with_capacity(decoded.len());
            for (d, env) in decoded {
                metrics.consumed(&env.r#type, None);
                deliveries.push(d);
                events.push(env);
            }
            // After a failed ack the rest are left: on RabbitMQ the channel is gone, and they
            // would fail (or, on a dead connection, wait out their timeout) one by one. The bus
            // delivers them again and the inbox skips them.
            let total = deliveries.len();
            if let Err((acked, e)) = Delivery::ack_all(deliveries).await {
                tracing::warn!(error = %e, unacknowledged = total - acked, "ack failed; the events will be redelivered and skipped by the inbox");
            }
            ap.handler.committed(&events);
            true
        }
        Err(GaveUp::Shutdown) => false,
        Err(e) if decoded.len() == 1 => {
            let (d, env) = decoded.remove(0);
            give_up(d, &env, e, metrics).await;
            false
        }
        Err(e) => {
            if let GaveUp::Rejected(e) | GaveUp::Persisting(e) = &e {
                tracing::info!(size = decoded.len(), error = %e, "batch failed; applying one by one");
            }
            let mut any = false;
            for (d, env) in decoded {
                let one = [(&env, d.traceparent.as_deref())];
                match ap.apply_retrying(&one).await {
                    Ok(()) => {
                        metrics.consumed(&env.r#type, None);
                        if let Err(e) = d.ack().await {
                            tracing::warn!(error = %e, "ack failed");
                        }
                        ap.handler.committed(std::slice::from_ref(&env));
                        any = true;
                    }
                    Err(GaveUp::Shutdown) => return any,
                    Err(e) => give_up(d, &env, e, metrics).await,
                }
            }
            any
        }
    }
}

/// A rejected event goes to the dead-letter queue now; one whose transient failure persisted
/// goes back to the bus, which counts it against the queue's delivery limit.
async fn give_up(d: Delivery, env: &Envelope, why: GaveUp, metrics: &crate::metrics::Instruments) {
    match why {
        GaveUp::Rejected(e) => {
            metrics.consumed(&env.r#type, Some("rejected"));
            metrics.dead_lettered(&env.r#type);
            tracing::error!(event_id = %env.event_id, r#type = %env.r#type, error = %e, "event rejected; dead-lettering");
            if let Err(e) = d.dead_letter().await {
                tracing::warn!(error = %e, "dead-letter failed");
            }
        }
        GaveUp::Persisting(e) => {
            metrics.consumed(&env.r#type, Some("handler_failed"));
            tracing::warn!(event_id = %env.event_id, r#type = %env.r#type, error = %e, "event failed; handing it back for redelivery");
            if let Err(e) = d.nack().await {
                tracing::warn!(error = %e, "nack failed");
            }
        }
        GaveUp::Shutdown => {}
    }
}

async fn apply_in_txn<H: EventHandler>(
    db: &DatabaseConnection,
    consumer: &str,
    source: &Source,
    handler: &H,
    events: &[Received<'_>],
) -> Result<(), HandlerError> {
    let txn = tongban_storage::begin_write(db).await?;
    let ids: Vec<&str> = events.iter().map(|(e, _)| e.event_id.as_str()).collect();
    let fresh = inbox::record_all(&txn, consumer, &ids).await?;
    for ((env, header), fresh) in events.iter().zip(fresh) {
        if fresh {
            let span = process_span(
                Message {
                    system: source.system,
                    destination: &source.queue,
                    routing_key: &env.r#type,
                    message_id: &env.event_id,
                    application_id: &env.application_id,
                },
                *header,
                &env.traceparent,
            );
            if let Err(e) = handler.handle(&txn, env).instrument(span.clone()).await {
                record_error(
                    &span,
                    match e {
                        HandlerError::Db(_) => "storage",
                        HandlerError::Rejected(_) => "rejected",
                        HandlerError::Transient(_) => "transient",
                    },
                );
                return Err(e);
            }
        } else {
            tracing::debug!(event_id = %env.event_id, "already applied; skipping");
        }
    }
    txn.commit().await?;
    Ok(())
}
