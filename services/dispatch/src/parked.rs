//! Bounded storage for `parked_events`: the pruner is the one every service with parked events
//! shares, [`tongban_outbox::prune::ParkedPruner`].

pub use tongban_outbox::prune::ParkedPruner;
