//! Per-caller counts of open server streams (Watch, Subscribe), so that one caller cannot hold
//! an unbounded number of them. A [`StreamPermit`] holds one place until it is dropped, which
//! the stream's task does when the stream ends, however it ends.
//!
//! Server streams end when the service shuts down (an open stream would otherwise hold the
//! server's graceful shutdown until its timeout), with the status [`shutting_down`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// The last message of a server stream ended by the service shutting down: UNAVAILABLE, so
/// the client knows to open it again (on another replica, or once this one is back).
pub fn shutting_down() -> tonic::Status {
    tonic::Status::unavailable("the service is shutting down; open the stream again")
}

/// Open streams per caller. A [`StreamPermit`] holds one until dropped (when
/// the stream ends, however it ends).
#[derive(Clone, Default)]
pub struct StreamCounter {
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl StreamCounter {
    /// A permit for `caller`, or `None` when it already holds `max` streams.
    pub fn acquire(&self, caller: &str, max: usize) -> Option<StreamPermit> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(caller.to_string()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(StreamPermit {
            counter: self.clone(),
            caller: caller.to_string(),
        })
    }
}

pub struct StreamPermit {
    counter: StreamCounter,
    caller: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.counter.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_counted_and_released() {
        let c = StreamCounter::default();
        let a = c.acquire("x", 2);
        let b = c.acquire("x", 2);
        assert!(a.is_some() && b.is_some());
        assert!(c.acquire("x", 2).is_none());
        assert!(c.acquire("y", 2).is_some());
        drop(a);
        assert!(c.acquire("x", 2).is_some());
    }
}
