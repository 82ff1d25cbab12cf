//! Intake's tables as sea-orm entities, one module per table. The schema itself is in
//! [`crate::migration`]; the queries are behind the traits in [`crate::repository`].

pub mod application;
pub use tongban_involved::application_department;
pub mod matter;
