//! Dead letters an operator can recover: list a consumer queue's dead-letter queue, look at one
//! message, send some (or all) back to the consumer queue, or throw them away.
//!
//! Both backends keep the same promises:
//! - Looking never loses or reorders anything: RabbitMQ messages are taken without ack on a
//!   channel of their own and given back when it closes; the embedded bus only reads rows.
//! - A replay goes to the consumer queue `Q` only, never back through the exchange (other
//!   consumers already have their copy), as a fresh message: its delivery count starts again.
//! - Selecting by event id is all or nothing: if one id is not in the dead-letter queue,
//!   nothing is touched and the missing ids are reported.
//! - Two operators working at once never replay one message twice: a message one of them holds
//!   is invisible to the other (RabbitMQ: unacked on the holder's channel; embedded bus: one
//!   transaction moves the row).

use chrono::{DateTime, Utc};

use crate::{Bus, BusError};

/// One message in a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The event id (`message_id` on RabbitMQ).
    pub event_id: String,
    /// The event type (the `type` property on RabbitMQ, the routing key on the embedded bus).
    pub event_type: String,
    /// The encoded envelope, as published.
    pub payload: Vec<u8>,
    pub traceparent: Option<String>,
    /// When it was dead-lettered, when the bus recorded it.
    pub dead_lettered_at: Option<DateTime<Utc>>,
    /// How many times it has been dead-lettered from the consumer queue, when known.
    pub death_count: Option<u64>,
    /// Why: `rejected` (the consumer refused it) or `delivery_limit` (failed too often); the
    /// broker's word when it is RabbitMQ.
    pub reason: Option<String>,
}

/// Which dead letters an operation applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These event ids; all must be present, or nothing is done.
    Ids(Vec<String>),
    /// Everything in the dead-letter queue when the operation starts (a message that comes
    /// back while a replay runs is left for the next one).
    All,
}

/// What a replay or discard did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handled {
    /// Event ids replayed or discarded, each once, in queue order.
    pub done: Vec<String>,
    /// Requested ids that are not in the dead-letter queue. When non-empty, nothing was done.
    pub missing: Vec<String>,
}

impl Handled {
    /// `ids` in the order given, without repeats: the set a selection asks for.
    pub(crate) fn wanted(ids: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(ids.len());
        for id in ids {
            if !out.contains(id) {
                out.push(id.clone());
            }
        }
        out
    }
}

/// What a replay or discard does to each selected message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Replay,
    Discard,
}

impl Bus {
    /// Up to `limit` dead letters of consumer queue `queue` (its name without the exchange
    /// prefix, e.g. `intake`), oldest first, and how many the dead-letter queue holds.
    pub async fn dead_letters(
        &self,
        queue: &str,
        limit: usize,
    ) -> Result<(Vec<DeadLetter>, u64), BusError> {
        match self {
            Bus::Rabbit(b) => b.dead_letters(queue, limit).await,
            Bus::Local(b) => b.dead_letters(queue, limit).await,
        }
    }

    /// The dead letter of `queue` with event id `event_id`, if there is one.
    pub async fn dead_letter(
        &self,
        queue: &str,
        event_id: &str,
    ) -> Result<Option<DeadLetter>, BusError> {
        match self {
            Bus::Rabbit(b) => b.find_dead_letter(queue, event_id).await,
            Bus::Local(b) => b.find_dead_letter(queue, event_id).await,
        }
    }

    /// Sends the selected dead letters of `queue` back to `queue` (only), as fresh messages.
    pub async fn replay_dead_letters(
        &self,
        queue: &str,
        selection: &Selection,
    ) -> Result<Handled, BusError> {
        self.handle_dead_letters(queue, selection, Op::Replay).await
    }

    /// Deletes the selected dead letters of `queue` for good.
    pub async fn discard_dead_letters(
        &self,
        queue: &str,
        selection: &Selection,
    ) -> Result<Handled, BusError> {
        self.handle_dead_letters(queue, selection, Op::Discard)
            .await
    }

    async fn handle_dead_letters(
        &self,
        queue: &str,
        selection: &Selection,
        op: Op,
    ) -> Result<Handled, BusError> {
        if let Selection::Ids(ids) = selection
            && ids.is_empty()
        {
            return Ok(Handled::default());
        }
        match self {
            Bus::Rabbit(b) => b.handle_dead_letters(queue, selection, op).await,
            Bus::Local(b) => b.handle_dead_letters(queue, selection, op).await,
        }
    }
}
