//! The event types a platform may subscribe to: the routing keys of
//! `proto/tongban/events/v1/events.proto`.

/// Every event type Tongban publishes.
pub const KNOWN_EVENT_TYPES: &[&str] = &[
    "application.submitted",
    "application.supplemented",
    "application.withdrawn",
    "application.supplement_requested",
    "application.approved",
    "application.rejected",
    "application.closed",
    "task.created",
    "task.decided",
    "task.due_soon",
    "task.overdue",
    "task.escalated",
    "request.answered",
    "outcome.rated",
    "delivery.succeeded",
    "delivery.dead_lettered",
    "definition.published",
    "application.revoked",
    "application.suspended",
    "service.rated",
    "rating.rectified",
];

/// Events whose canonical document carries the `approval` section (a decision was made).
pub const DECISION_EVENT_TYPES: &[&str] = &[
    "application.approved",
    "application.rejected",
    "application.revoked",
];

/// Sections of the canonical document that exist only on some events, with those events.
pub const EVENT_SECTIONS: &[(&str, &[&str])] = &[
    ("approval", DECISION_EVENT_TYPES),
    ("withdrawal", &["application.withdrawn"]),
    ("supplement", &["application.supplemented"]),
];

/// Whether `event_type` is one Tongban publishes.
pub fn is_known_event_type(event_type: &str) -> bool {
    KNOWN_EVENT_TYPES.contains(&event_type)
}
