//! The event bus: how one service's committed facts reach the others.
//!
//! Two implementations behind one [`Bus`] value, chosen by URL:
//!
//! - `amqp://…` — RabbitMQ through lapin ([`rabbit`]). One durable topic exchange; every
//!   consumer has a durable quorum queue bound to the routing keys it needs, and a dead-letter
//!   exchange that catches messages rejected too often. Publishing waits for publisher confirms
//!   of a whole batch at once (a window), which is what lets the outbox relay move thousands of
//!   events a second.
//! - `sqlite://…` — the embedded bus ([`local`]) for `tongban dev`: the same queue semantics
//!   (bindings, at-least-once, redelivery, dead letters) kept in a SQLite file, so that a
//!   `kill -9` loses nothing that was published.
//!
//! Both are at-least-once: a consumer may see a message again after a crash or a lost ack, so
//! consumers de-duplicate (the inbox in `tongban-outbox`).

pub mod dead_letters;
pub mod local;
pub mod rabbit;
mod topic;

use std::time::Duration;

pub use topic::topic_matches;

/// A message to publish. `payload` is an encoded `tongban.events.v1.Envelope`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub event_id: String,
    pub routing_key: String,
    pub payload: Vec<u8>,
    /// Travels beside the payload (an AMQP header on RabbitMQ, a column on the embedded bus):
    /// the outbox relay puts its publish span's context here.
    pub traceparent: Option<String>,
}

/// A queue a consumer reads, and what it wants on it.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    /// Queue name, e.g. `approval`. Unique per consuming service.
    pub name: String,
    /// Routing-key patterns (`*` one word, `#` any number of words).
    pub bindings: Vec<String>,
    /// Unacknowledged messages the broker hands out at once.
    pub prefetch: u16,
    /// Redeliveries allowed after the first delivery; one more failure sends the message to the
    /// dead-letter queue (RabbitMQ's `x-delivery-limit` semantics, kept by the embedded bus too).
    pub delivery_limit: u32,
}

impl QueueSpec {
    pub fn new(name: impl Into<String>, bindings: &[&str]) -> Self {
        Self {
            name: name.into(),
            bindings: bindings.iter().map(|b| b.to_string()).collect(),
            prefetch: 256,
            delivery_limit: 10,
        }
    }

    /// Name of the queue that receives this queue's dead letters.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dlq", self.name)
    }
}

/// Bus failures. All are transient from the caller's point of view: retry later.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("broker refused (nack) message {0}")]
    Nacked(String),
    #[error("embedded bus storage: {0}")]
    Storage(#[from] sea_orm::DbErr),
    #[error("unsupported bus url {0:?} (expected amqp://… or sqlite://…)")]
    Url(String),
    #[error("no queue {0} to send to")]
    Unroutable(String),
    #[error("subscription closed")]
    Closed,
    #[error("consumer of queue {0} is not connected")]
    Disconnected(String),
    #[error("the broker connection did not take the {0} within {ACK_TIMEOUT:?}")]
    AckTimeout(&'static str),
}

/// How long an ack, nack or reject may take to be handed to the connection. lapin resolves
/// them when its I/O loop writes the frame; after the connection died mid-batch that loop is
/// gone and some never resolve, which would stop the consumer for good. A message whose ack
/// timed out is simply delivered again (and skipped by the consumer's inbox).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);

async fn bounded<F, T>(what: &'static str, f: F) -> Result<(), BusError>
where
    F: std::future::Future<Output = Result<T, lapin::Error>>,
{
    match tokio::time::timeout(ACK_TIMEOUT, f).await {
        Ok(r) => r.map(|_| ()).map_err(BusError::from),
        Err(_) => Err(BusError::AckTimeout(what)),
    }
}

/// One received message. Ack it after its effects are committed; nack to have it redelivered.
#[derive(Debug)]
pub struct Delivery {
    pub routing_key: String,
    pub payload: Vec<u8>,
    /// True when the bus knows this was delivered before.
    pub redelivered: bool,
    /// The `traceparent` the message was published with (the publish span's context).
    pub traceparent: Option<String>,
    acker: Acker,
}

#[derive(Debug)]
enum Acker {
    Rabbit(lapin::Acker),
    Local {
        bus: local::LocalBus,
        queue: String,
        id: i64,
    },
}

impl Delivery {
    /// Acks `deliveries` together: on RabbitMQ one `basic.ack` with `multiple` set, for the
    /// last of them (a quorum queue settles the lot in one log entry instead of one per
    /// message); on the embedded bus one statement instead of one commit per message.
    ///
    /// `deliveries` must be every unsettled delivery of their subscription up to the last of
    /// them, in the order received: a multiple ack also settles any earlier delivery of the
    /// same channel still open. The consumer settles each batch (ack, nack or dead-letter)
    /// before it takes the next, so that holds there. A delivery from an earlier channel (the
    /// consumer reconnected within the batch) is not settled by it; the broker gave those back
    /// when their channel closed, and the inbox skips them when they come again.
    ///
    /// Returns how many were acked, or on failure how many were acked before it, with the
    /// error; the rest are left unacknowledged (the bus delivers them again, and the
    /// consumer's inbox skips them).
    pub async fn ack_all(deliveries: Vec<Delivery>) -> Result<usize, (usize, BusError)> {
        let total = deliveries.len();
        let mut local: Vec<i64> = Vec::new();
        let mut local_bus: Option<local::LocalBus> = None;
        let mut last_rabbit: Option<lapin::Acker> = None;
        for d in deliveries {
            match d.acker {
                Acker::Local { bus, id, .. } => {
                    local.push(id);
                    local_bus.get_or_insert(bus);
                }
                Acker::Rabbit(a) => last_rabbit = Some(a),
            }
        }
        if let Some(a) = last_rabbit {
            bounded(
                "ack",
                a.ack(lapin::options::BasicAckOptions { multiple: true }),
            )
            .await
            .map_err(|e| (0, e))?;
        }
        if let Some(bus) = local_bus {
            bus.ack_many(&local)
                .await
                .map_err(|e| (total - local.len(), e))?;
        }
        Ok(total)
    }

    /// Confirms the message was handled; it will not be delivered again.
    pub async fn ack(self) -> Result<(), BusError> {
        match self.acker {
            Acker::Rabbit(a) => {
                bounded("ack", a.ack(lapin::options::BasicAckOptions::default())).await
            }
            Acker::Local { bus, id, .. } => bus.ack(id).await,
        }
    }

    /// Sends the message straight to the queue's dead-letter queue: for messages that can never
    /// be applied (e.g. undecodable).
    pub async fn dead_letter(self) -> Result<(), BusError> {
        match self.acker {
            Acker::Rabbit(a) => {
                bounded(
                    "reject",
                    a.reject(lapin::options::BasicRejectOptions { requeue: false }),
                )
                .await
            }
            Acker::Local { bus, queue, id } => bus.dead_letter(&queue, id).await,
        }
    }

    /// Gives the message back: it will be delivered again (and dead-lettered once it has been
    /// delivered `delivery_limit` times).
    pub async fn nack(self) -> Result<(), BusError> {
        match self.acker {
            Acker::Rabbit(a) => {
                bounded(
                    "nack",
                    a.nack(lapin::options::BasicNackOptions {
                        requeue: true,
                        multiple: false,
                    }),
                )
                .await
            }
            Acker::Local { bus, queue, id } => bus.nack(&queue, id).await,
        }
    }
}

/// A running consumer: messages arrive on it until it is dropped.
pub struct Subscription {
    rx: tokio::sync::mpsc::Receiver<Delivery>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscription {
    /// The next message; `None` once the subscription has ended.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// Waits for one message, then takes whatever else is already waiting, up to `max`, so a
    /// consumer can apply a burst in one transaction.
    pub async fn recv_batch(&mut self, max: usize) -> Vec<Delivery> {
        let mut batch = Vec::new();
        if let Some(first) = self.rx.recv().await {
            batch.push(first);
            while batch.len() < max {
                match self.rx.try_recv() {
                    Ok(d) => batch.push(d),
                    Err(_) => break,
                }
            }
        }
        batch
    }
}

/// The bus a service talks to.
#[derive(Clone, Debug)]
pub enum Bus {
    Rabbit(rabbit::RabbitBus),
    Local(local::LocalBus),
}

impl Bus {
    /// Connects by URL: `amqp://…` (RabbitMQ, events on `exchange`) or `sqlite://…` (embedded).
    pub async fn connect(url: &str, exchange: &str) -> Result<Bus, BusError> {
        if url.starts_with("amqp://") || url.starts_with("amqps://") {
            let (url, expires) = split_queue_expiry(url)?;
            Ok(Bus::Rabbit(
                rabbit::RabbitBus::connect_with_expiry(&url, exchange, expires).await?,
            ))
        } else if url.starts_with("sqlite:") {
            Ok(Bus::Local(
                local::LocalBus::open(url).await?.with_exchange(exchange),
            ))
        } else {
            Err(BusError::Url(url.to_string()))
        }
    }

    /// What this bus is, as OpenTelemetry's `messaging.system` names it: `rabbitmq`, or
    /// [`local::SYSTEM`] for the embedded bus.
    pub fn system(&self) -> &'static str {
        match self {
            Bus::Rabbit(_) => "rabbitmq",
            Bus::Local(_) => local::SYSTEM,
        }
    }

    /// The exchange events are published to (the embedded bus has one, by name, too).
    pub fn exchange(&self) -> &str {
        match self {
            Bus::Rabbit(b) => b.exchange(),
            Bus::Local(b) => b.exchange(),
        }
    }

    /// What the consumer queue `name` is called on the bus (RabbitMQ prefixes the exchange).
    pub fn queue_name(&self, name: &str) -> String {
        match self {
            Bus::Rabbit(b) => b.queue_name(name),
            Bus::Local(_) => name.to_string(),
        }
    }

    /// Declares `spec`'s queue and bindings without consuming, so that nothing published from
    /// now on is missed even before the consumer starts.
    pub async fn declare(&self, spec: &QueueSpec) -> Result<(), BusError> {
        match self {
            Bus::Rabbit(b) => b.declare(spec).await,
            Bus::Local(b) => b.declare(spec).await,
        }
    }

    /// Publishes a batch and returns once the bus has durably accepted all of it.
    pub async fn publish_batch(&self, messages: &[OutgoingMessage]) -> Result<(), BusError> {
        if messages.is_empty() {
            return Ok(());
        }
        match self {
            Bus::Rabbit(b) => b.publish_batch(messages).await,
            Bus::Local(b) => b.publish_batch(messages).await,
        }
    }

    /// Starts consuming `spec` (declaring it first).
    pub async fn subscribe(&self, spec: &QueueSpec) -> Result<Subscription, BusError> {
        match self {
            Bus::Rabbit(b) => b.subscribe(spec).await,
            Bus::Local(b) => b.subscribe(spec).await,
        }
    }

    /// Whether the bus is usable now (health checks): RabbitMQ reachable and every consumer of
    /// this bus connected; the embedded bus's file answering.
    pub async fn check(&self) -> Result<(), BusError> {
        match self {
            Bus::Rabbit(b) => b.check().await,
            Bus::Local(b) => b.check().await,
        }
    }

    /// Messages waiting in `queue` (not counting unacknowledged ones on RabbitMQ).
    pub async fn queue_depth(&self, queue: &str) -> Result<u64, BusError> {
        match self {
            Bus::Rabbit(b) => b.queue_depth(queue).await,
            Bus::Local(b) => b.queue_depth(queue).await,
        }
    }
}

/// Takes Tongban's own `queue_expires_secs=N` out of an AMQP URL's query (the rest goes to
/// lapin): queues unused for N seconds are deleted by the broker. For short-lived environments
/// such as test runs, which make fresh queue names every time; production leaves it out.
fn split_queue_expiry(url: &str) -> Result<(String, Option<Duration>), BusError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None));
    };
    let mut expires = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("queue_expires_secs", v)) => {
                let secs: u64 = v.parse().map_err(|_| {
                    BusError::Url(format!("queue_expires_secs={v} is not a number"))
                })?;
                expires = Some(Duration::from_secs(secs.max(1)));
            }
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, expires))
}

/// Backoff for reconnect loops: 100 ms doubling to 5 s.
/// How long to wait before reconnecting after `attempt` failed tries in a row (0 for the
/// first retry): 100 ms doubling up to 5 s, with jitter, so that consumers that lost the
/// broker together do not all come back in the same instant.
pub(crate) fn reconnect_delay(attempt: u32) -> Duration {
    tongban_types::Backoff::doubling(Duration::from_millis(100), Duration::from_secs(5))
        .delay(attempt.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_expiry_is_taken_out_of_the_url() -> Result<(), BusError> {
        let (url, e) =
            split_queue_expiry("amqp://g:g@h:5672/%2f?heartbeat=10&queue_expires_secs=60")?;
        assert_eq!(url, "amqp://g:g@h:5672/%2f?heartbeat=10");
        assert_eq!(e, Some(Duration::from_secs(60)));
        let (url, e) = split_queue_expiry("amqp://h/%2f")?;
        assert_eq!((url.as_str(), e), ("amqp://h/%2f", None));
        let (url, _) = split_queue_expiry("amqp://h/%2f?queue_expires_secs=5")?;
        assert_eq!(url, "amqp://h/%2f");
        assert!(split_queue_expiry("amqp://h/?queue_expires_secs=x").is_err());
        Ok(())
    }
}
