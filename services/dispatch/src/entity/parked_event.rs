//! `parked_events`: events that arrived before their application's `application.submitted`,
//! kept (encoded) until it does. The table is the shared one of [`tongban_outbox::parked`].

pub use tongban_outbox::parked::entity::*;
