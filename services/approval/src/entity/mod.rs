//! Approval's tables as sea-orm entities, one module per table. The schema itself is made by
//! [`crate::migration`]; these describe the same columns for the query builder. Times are Unix
//! milliseconds (`BIGINT`) and flags 0/1 integers on both engines, as the migrations made them.

pub mod counter;
pub mod definition;
pub mod instance;
pub mod task;
