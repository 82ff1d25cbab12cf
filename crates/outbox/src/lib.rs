//! Exactly-once in effect over an at-least-once bus.
//!
//! - [`outbox`]: a service writes the events a state change causes into its own `outbox` table
//!   in the same transaction as the change ([`outbox::enqueue`]). The [`relay::Relay`] publishes
//!   pending rows in batches with publisher confirms and only then marks them sent, so a crash
//!   between commit and publish only means the rows are published again.
//! - [`inbox`]: a consumer records each event id it applies in the same transaction as the
//!   effects; a redelivered event finds its id there and changes nothing.
//! - [`consumer`]: the loop that ties them together: take a batch from the bus, apply it in one
//!   transaction, commit, then ack.
//! - [`parked`]: events that arrive before their application's submission, kept until it does.
//! - [`prune`]: bounded storage, old inbox, published outbox and parked rows deleted in batches.
//! - [`migration`]: the `outbox` and `inbox` tables, which every service lists in its migrator.
//!
//! The same code runs on PostgreSQL (production) and SQLite (`tongban dev`); connecting and
//! transactions are `tongban-storage`'s.

pub mod consumer;
pub mod envelope;
pub mod inbox;
mod metrics;
pub mod migration;
pub mod outbox;
pub mod parked;
pub mod prune;
pub mod relay;

pub use consumer::{EventHandler, HandlerError, run_consumer};
pub use envelope::new_envelope;
pub use relay::{Pruned, Relay, RelayError, RelayHandle};
