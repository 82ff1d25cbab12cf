//! Building event envelopes.

use tongban_proto::events::{Envelope, envelope::Payload};

/// The routing key that belongs to a payload; the envelope's `type` is always this.
pub fn routing_key(payload: &Payload) -> &'static str {
    use tongban_types::event_type as t;
    match payload {
        Payload::ApplicationSubmitted(_) => t::APPLICATION_SUBMITTED,
        Payload::ApplicationSupplemented(_) => t::APPLICATION_SUPPLEMENTED,
        Payload::ApplicationWithdrawn(_) => t::APPLICATION_WITHDRAWN,
        Payload::SupplementRequested(_) => t::SUPPLEMENT_REQUESTED,
        Payload::TaskCreated(_) => t::TASK_CREATED,
        Payload::TaskDecided(_) => t::TASK_DECIDED,
        Payload::TaskDueSoon(_) => t::TASK_DUE_SOON,
        Payload::TaskOverdue(_) => t::TASK_OVERDUE,
        Payload::TaskEscalated(_) => t::TASK_ESCALATED,
        Payload::TaskMoved(_) => t::TASK_MOVED,
        Payload::ApplicationApproved(_) => t::APPLICATION_APPROVED,
        Payload::ApplicationRejected(_) => t::APPLICATION_REJECTED,
        Payload::RequestAnswered(_) => t::REQUEST_ANSWERED,
        Payload::OutcomeRated(_) => t::OUTCOME_RATED,
        Payload::ApplicationClosed(_) => t::APPLICATION_CLOSED,
        Payload::DeliverySucceeded(_) => t::DELIVERY_SUCCEEDED,
        Payload::DeliveryDeadLettered(_) => t::DELIVERY_DEAD_LETTERED,
        Payload::DefinitionPublished(_) => t::DEFINITION_PUBLISHED,
        Payload::ApplicationRevoked(_) => t::APPLICATION_REVOKED,
        Payload::ApplicationSuspended(_) => t::APPLICATION_SUSPENDED,
        Payload::ServiceRated(_) => t::SERVICE_RATED,
        Payload::RatingRectified(_) => t::RATING_RECTIFIED,
    }
}

/// A new envelope: fresh UUIDv7 id, now, the current trace context, `type` from the payload.
pub fn new_envelope(producer: &str, application_id: &str, payload: Payload) -> Envelope {
    Envelope {
        event_id: tongban_types::new_id(),
        r#type: routing_key(&payload).to_string(),
        occurred_at: Some(tongban_proto::time::ts(chrono::Utc::now())),
        application_id: application_id.to_string(),
        traceparent: tongban_telemetry::current_traceparent().unwrap_or_default(),
        producer: producer.to_string(),
        payload: Some(payload),
    }
}
