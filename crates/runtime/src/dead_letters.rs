//! `tongban.ops.v1.DeadLetterService`, served by every service next to its own API: the
//! dead letters of the service's consumer queues, listed, shown, replayed or discarded by an
//! admin.
//!
//! [`ServiceBuilder`](crate::ServiceBuilder) wires it in once, so all four services have it
//! behind the same token interceptor. Refusals are recorded on the service's audit chain
//! through a `DenialLog`, like any refused RPC; replays and discards are appended to the same
//! chain (`service/<name>`) naming the event ids, once the bus has done them (the change is on
//! the bus, not in the database, so there is no transaction to share). The depth of each
//! dead-letter queue is a gauge, refreshed every [`DEPTH_INTERVAL`] and whenever it is touched.

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Gauge},
};
use sea_orm::DatabaseConnection;
use tongban_authz::{Action, Denied, Policy};
use tongban_bus::{
    Bus, BusError,
    dead_letters::{DeadLetter, Handled, Selection},
};
use tongban_proto::{
    common::ErrorReason,
    ops::{self, dead_letter_service_server::DeadLetterService},
};
use tonic::{Code, Request, Response, Status};

use crate::status::{self, Violation};

/// How often the depth gauge is refreshed when nobody lists: an alert on it should not wait
/// for an operator to look.
pub const DEPTH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Dead letters listed when the request names no limit, and the most one call lists.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

/// What can go wrong, mapped to a status in one place ([`From<DlqError> for Status`]).
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("invalid request: {}: {}", .0.field, .0.description)]
    Invalid(Violation),
    #[error("{field}: {what} not found")]
    NotFound { field: &'static str, what: String },
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("event bus: {0}")]
    Bus(#[from] BusError),
    #[error("audit: {0}")]
    Audit(#[from] sea_orm::DbErr),
}

impl From<DlqError> for Status {
    fn from(e: DlqError) -> Self {
        let message = e.to_string();
        match e {
            DlqError::Invalid(v) => {
                status::invalid_argument(message, &[v], ErrorReason::InvalidArgument)
            }
            DlqError::NotFound { .. } => {
                status::with_reason(Code::NotFound, message, ErrorReason::NotFound)
            }
            DlqError::Denied(d) => d.to_status(),
            DlqError::Bus(err) => {
                tracing::error!(error = %err, "dead letters: bus error");
                status::with_reason(
                    Code::Unavailable,
                    "event bus unavailable; retry later".into(),
                    ErrorReason::StorageUnavailable,
                )
            }
            DlqError::Audit(err) => status::storage_unavailable(&err),
        }
    }
}

/// `tongban_dead_letters_replayed_total`, `tongban_dead_letters_discarded_total` and the
/// `tongban_dead_letter_queue_depth` gauge (refreshed whenever a queue is listed, replayed or
/// discarded), labelled by service and queue.
#[derive(Clone)]
struct Instruments {
    replayed: Counter<u64>,
    discarded: Counter<u64>,
    depth: Gauge<u64>,
}

impl Instruments {
    fn new() -> Self {
        let m = tongban_telemetry::metrics::meter();
        Self {
            replayed: m
                .u64_counter("tongban.dead_letters.replayed")
                .with_description("Dead letters an operator sent back to their consumer queue")
                .build(),
            discarded: m
                .u64_counter("tongban.dead_letters.discarded")
                .with_description("Dead letters an operator deleted")
                .build(),
            depth: m
                .u64_gauge("tongban.dead_letter_queue.depth")
                .with_description("Messages in a consumer's dead-letter queue, when last looked at")
                .build(),
        }
    }
}

/// The service: one per service process, over its database, bus and consumer queues.
#[derive(Clone)]
pub struct DeadLetterAdmin {
    service: &'static str,
    db: DatabaseConnection,
    bus: Bus,
    queues: Vec<String>,
    policy: Policy,
    metrics: Instruments,
}

impl DeadLetterAdmin {
    /// The admin API of `service`, whose consumer reads `queues` (names without the exchange
    /// prefix); refusals go to `policy`'s denial sink.
    pub fn new(
        service: &'static str,
        db: DatabaseConnection,
        bus: Bus,
        queues: Vec<String>,
        policy: Policy,
    ) -> Self {
        Self {
            service,
            db,
            bus,
            queues,
            policy,
            metrics: Instruments::new(),
        }
    }

    fn labels(&self, queue: &str) -> [KeyValue; 2] {
        [
            KeyValue::new("tongban.service", self.service),
            KeyValue::new("tongban.queue", queue.to_string()),
        ]
    }

    /// The queue a request names; empty means the only one.
    fn queue(&self, asked: &str) -> Result<String, DlqError> {
        if asked.is_empty() {
            return match self.queues.as_slice() {
                [only] => Ok(only.clone()),
                [] => Err(DlqError::NotFound {
                    field: "queue",
                    what: format!("{} consumes no queue, so there", self.service),
                }),
                many => Err(DlqError::Invalid(Violation::new(
                    "queue",
                    format!("required: one of {}", many.join(", ")),
                ))),
            };
        }
        if self.queues.iter().any(|q| q == asked) {
            Ok(asked.to_string())
        } else {
            Err(DlqError::NotFound {
                field: "queue",
                what: format!("queue {asked:?} of {}", self.service),
            })
        }
    }

    async fn record_depth(&self, queue: &str, depth: Option<u64>) {
        let depth = match depth {
            Some(d) => Some(d),
            None => self.bus.queue_depth(&format!("{queue}.dlq")).await.ok(),
        };
        if let Some(d) = depth {
            self.metrics.depth.record(d, &self.labels(queue));
        }
    }

    /// Records every queue's dead-letter depth now and every `every` until `shutdown`. A bus
    /// that does not answer leaves the last value (health reports the bus).
    pub async fn watch_depth(
        self,
        every: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            for queue in &self.queues {
                self.record_depth(queue, None).await;
            }
        }
    }

    async fn handle(
        &self,
        who: &tongban_auth::Identity,
        action: Action,
        queue: &str,
        event_ids: Vec<String>,
        all: bool,
        reason: &str,
    ) -> Result<(String, Handled), DlqError> {
        let queue = self.queue(queue)?;
        let selection = selection(event_ids, all)?;
        let handled = match action {
            Action::ReplayBusDeadLetters => self.bus.replay_dead_letters(&queue, &selection).await,
            _ => self.bus.discard_dead_letters(&queue, &selection).await,
        }?;
        if !handled.missing.is_empty() {
            return Err(DlqError::NotFound {
                field: "event_ids",
                what: format!(
                    "{} in the dead-letter queue of {queue}",
                    handled.missing.join(", ")
                ),
            });
        }
        let (counter, verb) = match action {
            Action::ReplayBusDeadLetters => (&self.metrics.replayed, "replay_dead_letters"),
            _ => (&self.metrics.discarded, "discard_dead_letters"),
        };
        counter.add(handled.done.len() as u64, &self.labels(&queue));
        self.record_depth(&queue, None).await;
        if !handled.done.is_empty() {
            let mut why = format!("queue {queue}");
            if !reason.trim().is_empty() {
                why.push_str(": ");
                why.push_str(reason.trim());
            }
            let act = tongban_audit::Act::done(
                tongban_audit::Actor::from(who),
                verb,
                handled.done.join(","),
            )
            .reason(why);
            // The bus has done it already; the record follows in its own transaction.
            if let Err(e) = tongban_audit::append_alone(
                &self.db,
                &tongban_audit::service_chain(self.service),
                tongban_storage::now_ms(),
                act,
            )
            .await
            {
                tracing::error!(target: "tongban::audit", service = self.service, queue, ids = %handled.done.join(","), error = %e, "dead letters handled but not recorded in the audit log");
                return Err(e.into());
            }
        }
        tracing::info!(target: "tongban::audit", service = self.service, queue, action = %action, count = handled.done.len(), actor = %who.actor_label(), "dead letters handled");
        Ok((queue, handled))
    }

    fn admit<T>(&self, req: &Request<T>, action: Action) -> Result<tongban_auth::Identity, Status> {
        let who = tongban_auth::identity(req)?;
        self.policy
            .check_role(&who, action)
            .map_err(DlqError::from)?;
        Ok(who)
    }
}

/// Exactly one of "these ids" and "all".
fn selection(event_ids: Vec<String>, all: bool) -> Result<Selection, DlqError> {
    let ids: Vec<String> = event_ids
        .into_iter()
        .map(|i| i.trim().to_string())
        .collect();
    if let Some(i) = ids.iter().position(String::is_empty) {
        return Err(DlqError::Invalid(Violation::new(
            format!("event_ids[{i}]"),
            "must not be empty",
        )));
    }
    match (ids.is_empty(), all) {
        (true, false) => Err(DlqError::Invalid(Violation::new(
            "event_ids",
            "name at least one event id, or set all",
        ))),
        (false, true) => Err(DlqError::Invalid(Violation::new(
            "all",
            "either event ids or all, not both",
        ))),
        (true, true) => Ok(Selection::All),
        (false, false) => Ok(Selection::Ids(ids)),
    }
}

/// A dead letter on the wire; the application id comes from the payload when it decodes.
fn to_proto(queue: &str, d: &DeadLetter) -> ops::DeadLetter {
    use prost::Message as _;
    let application_id = tongban_proto::events::Envelope::decode(d.payload.as_slice())
        .map(|e| e.application_id)
        .unwrap_or_default();
    ops::DeadLetter {
        event_id: d.event_id.clone(),
        event_type: d.event_type.clone(),
        application_id,
        payload_size: d.payload.len() as u64,
        dead_letter_time: tongban_proto::time::ts_opt(d.dead_lettered_at),
        death_count: d.death_count.unwrap_or(0),
        reason: d.reason.clone().unwrap_or_default(),
        queue: queue.to_string(),
    }
}

#[tonic::async_trait]
impl DeadLetterService for DeadLetterAdmin {
    async fn list_dead_letters(
        &self,
        req: Request<ops::ListDeadLettersRequest>,
    ) -> Result<Response<ops::ListDeadLettersResponse>, Status> {
        self.admit(&req, Action::ListDeadLetters)?;
        let r = req.into_inner();
        let queue = self.queue(&r.queue)?;
        let limit = match r.limit {
            0 => DEFAULT_LIMIT,
            n if n > MAX_LIMIT => {
                return Err(DlqError::Invalid(Violation::new(
                    "limit",
                    format!("at most {MAX_LIMIT}"),
                ))
                .into());
            }
            n => n,
        };
        let (letters, depth) = self
            .bus
            .dead_letters(&queue, limit as usize)
            .await
            .map_err(DlqError::from)?;
        self.record_depth(&queue, Some(depth)).await;
        Ok(Response::new(ops::ListDeadLettersResponse {
            dead_letters: letters.iter().map(|d| to_proto(&queue, d)).collect(),
            queue,
            depth,
        }))
    }

    async fn get_dead_letter(
        &self,
        req: Request<ops::GetDeadLetterRequest>,
    ) -> Result<Response<ops::GetDeadLetterResponse>, Status> {
        use prost::Message as _;
        self.admit(&req, Action::GetDeadLetter)?;
        let r = req.into_inner();
        let queue = self.queue(&r.queue)?;
        let event_id = r.event_id.trim();
        if event_id.is_empty() {
            return Err(DlqError::Invalid(Violation::new("event_id", "required")).into());
        }
        let letter = self
            .bus
            .dead_letter(&queue, event_id)
            .await
            .map_err(DlqError::from)?
            .ok_or_else(|| DlqError::NotFound {
                field: "event_id",
                what: format!("{event_id} in the dead-letter queue of {queue}"),
            })?;
        let (envelope, decode_error) =
            match tongban_proto::events::Envelope::decode(letter.payload.as_slice()) {
                Ok(e) => (Some(e), String::new()),
                Err(e) => (None, e.to_string()),
            };
        Ok(Response::new(ops::GetDeadLetterResponse {
            dead_letter: Some(to_proto(&queue, &letter)),
            payload: letter.payload,
            envelope,
            decode_error,
        }))
    }

    async fn replay_dead_letters(
        &self,
        req: Request<ops::ReplayDeadLettersRequest>,
    ) -> Result<Response<ops::ReplayDeadLettersResponse>, Status> {
        let who = self.admit(&req, Action::ReplayBusDeadLetters)?;
        let r = req.into_inner();
        let (queue, handled) = self
            .handle(
                &who,
                Action::ReplayBusDeadLetters,
                &r.queue,
                r.event_ids,
                r.all,
                &r.reason,
            )
            .await?;
        Ok(Response::new(ops::ReplayDeadLettersResponse {
            queue,
            event_ids: handled.done,
        }))
    }

    async fn discard_dead_letters(
        &self,
        req: Request<ops::DiscardDeadLettersRequest>,
    ) -> Result<Response<ops::DiscardDeadLettersResponse>, Status> {
        let who = self.admit(&req, Action::DiscardDeadLetters)?;
        let r = req.into_inner();
        let (queue, handled) = self
            .handle(
                &who,
                Action::DiscardDeadLetters,
                &r.queue,
                r.event_ids,
                r.all,
                &r.reason,
            )
            .await?;
        Ok(Response::new(ops::DiscardDeadLettersResponse {
            queue,
            event_ids: handled.done,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_is_ids_or_all_never_both_never_neither() {
        assert_eq!(selection(vec![], true).ok(), Some(Selection::All));
        assert_eq!(
            selection(vec![" a ".into(), "b".into()], false).ok(),
            Some(Selection::Ids(vec!["a".into(), "b".into()]))
        );
        let field = |r: Result<Selection, DlqError>| match r {
            Err(DlqError::Invalid(v)) => v.field,
            other => format!("{other:?}"),
        };
        assert_eq!(field(selection(vec![], false)), "event_ids");
        assert_eq!(field(selection(vec!["a".into()], true)), "all");
        assert_eq!(
            field(selection(vec!["a".into(), " ".into()], false)),
            "event_ids[1]"
        );
    }
}
