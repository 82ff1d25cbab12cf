//! Tongban's shared vocabulary, parsed at the edge into newtypes so that code inside the services
//! never handles a raw string where a validated value is meant.
//!
//! - [`CreditCode`]: the unified social credit code (GB 32100-2015) with its check character.
//! - [`RegionCode`]: administrative division codes (county or township).
//! - [`event_type`]: the routing keys of every event on the bus.
//! - [`new_id`]: time-ordered ids (UUIDv7) for applications, tasks and events.
//! - [`Backoff`]: the one retry schedule every retry loop follows.

pub mod backoff;
mod credit_code;
mod region;

pub use backoff::Backoff;
pub use credit_code::{CreditCode, CreditCodeError};
pub use region::{RegionCode, RegionCodeError};

/// A new time-ordered id (UUIDv7) as a string: sorts by creation time, which keeps index
/// inserts cheap and pages stable.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Routing keys of the events on the `tongban.events` exchange.
pub mod event_type {
    pub const APPLICATION_SUBMITTED: &str = "application.submitted";
    pub const APPLICATION_SUPPLEMENTED: &str = "application.supplemented";
    pub const APPLICATION_WITHDRAWN: &str = "application.withdrawn";
    pub const SUPPLEMENT_REQUESTED: &str = "application.supplement_requested";
    pub const TASK_CREATED: &str = "task.created";
    pub const TASK_DECIDED: &str = "task.decided";
    pub const TASK_DUE_SOON: &str = "task.due_soon";
    pub const TASK_OVERDUE: &str = "task.overdue";
    pub const TASK_ESCALATED: &str = "task.escalated";
    pub const TASK_MOVED: &str = "task.moved";
    pub const APPLICATION_APPROVED: &str = "application.approved";
    pub const APPLICATION_REJECTED: &str = "application.rejected";
    pub const REQUEST_ANSWERED: &str = "request.answered";
    pub const OUTCOME_RATED: &str = "outcome.rated";
    pub const APPLICATION_CLOSED: &str = "application.closed";
    pub const DELIVERY_SUCCEEDED: &str = "delivery.succeeded";
    pub const DELIVERY_DEAD_LETTERED: &str = "delivery.dead_lettered";
    pub const DEFINITION_PUBLISHED: &str = "definition.published";
    pub const APPLICATION_REVOKED: &str = "application.revoked";
    pub const APPLICATION_SUSPENDED: &str = "application.suspended";
    pub const SERVICE_RATED: &str = "service.rated";
    pub const RATING_RECTIFIED: &str = "rating.rectified";

    /// Every routing key, for validation of configuration that names them.
    pub const ALL: &[&str] = &[
        APPLICATION_SUBMITTED,
        APPLICATION_SUPPLEMENTED,
        APPLICATION_WITHDRAWN,
        SUPPLEMENT_REQUESTED,
        TASK_CREATED,
        TASK_DECIDED,
        TASK_DUE_SOON,
        TASK_OVERDUE,
        TASK_ESCALATED,
        TASK_MOVED,
        APPLICATION_APPROVED,
        APPLICATION_REJECTED,
        REQUEST_ANSWERED,
        OUTCOME_RATED,
        APPLICATION_CLOSED,
        DELIVERY_SUCCEEDED,
        DELIVERY_DEAD_LETTERED,
        DEFINITION_PUBLISHED,
        APPLICATION_REVOKED,
        APPLICATION_SUSPENDED,
        SERVICE_RATED,
        RATING_RECTIFIED,
    ];
}
