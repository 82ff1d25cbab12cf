//! The storage plumbing every service shares; no service's tables live here.
//!
//! # Layout
//! - [`db`]: connect by URL (`postgres://…` or `sqlite://…`), begin write transactions that
//!   behave the same on both engines, run hand-written SQL with `?` placeholders, and make
//!   throw-away PostgreSQL databases for tests.
//! - [`lock`]: the row-lock suffixes (`FOR UPDATE`, `FOR UPDATE SKIP LOCKED`) for the few
//!   statements that stay raw SQL; SQLite has one writer and needs none.
//! - [`time`]: instants as Unix milliseconds, the unit of every `BIGINT` time column.
//! - [`schema`]: column and index shapes shared by the services' migrations.
//!
//! The same code paths run on PostgreSQL (production) and SQLite (`tongban dev`); only the URL
//! differs.

pub mod db;
pub mod lock;
pub mod schema;
pub mod time;

pub use db::{begin_write, connect, create_postgres_database, placeholders, stmt, value_rows};
pub use time::{from_ms, now_ms};
