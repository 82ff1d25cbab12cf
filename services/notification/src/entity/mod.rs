//! Notification's tables as sea-orm entities, one module per table. The schema itself is in
//! [`crate::migration`]; the queries are behind the traits in [`crate::repository`].
//!
//! Every instant is Unix milliseconds (`*_ms`). An e-mail's or a webhook call's state is which
//! of its instants are set (sent / delivered, failed, or neither: still queued), so no state
//! is stored as text.

pub use tongban_involved::application_department;
pub mod application_fact;
pub mod email;
pub mod notification;
pub mod webhook;
pub mod webhook_delivery;
