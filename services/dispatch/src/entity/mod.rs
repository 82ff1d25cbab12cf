//! Dispatch's tables as sea-orm entities, one module per table. The schema itself is in
//! [`crate::migration`]; the queries are behind the traits in [`crate::ledger`].
//!
//! Times are Unix milliseconds (`BIGINT`), so that due-row queries compare numbers.

pub mod application;
pub use tongban_involved::application_department;
pub mod delivery;
pub mod parked_event;
