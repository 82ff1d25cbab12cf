//! The per-platform circuit breaker as a state machine: no clocks of its own (the caller passes
//! `now`), no I/O. Closed → open after `failure_threshold` consecutive failures → after
//! `open_for`, half-open: exactly one probe; its success closes the circuit, its failure opens
//! it again.

use std::time::{Duration, Instant};

use tongban_platform::CircuitPolicy;
use tongban_proto::dispatch::CircuitState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Circuit {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// What the worker may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Claim as many rows as the bulkhead allows.
    Any,
    /// Claim exactly one row: the half-open probe.
    Probe,
    /// Claim nothing; look again after this long (or when woken).
    Wait(Duration),
}

#[derive(Debug, Clone)]
pub struct Breaker {
    policy: CircuitPolicy,
    state: Circuit,
}

impl Breaker {
    pub fn new(policy: CircuitPolicy) -> Self {
        Self {
            policy,
            state: Circuit::Closed { failures: 0 },
        }
    }

    pub fn state(&self) -> &Circuit {
        &self.state
    }

    /// The state as the API reports it (an open circuit whose time is up reads half-open).
    pub fn reported(&self, now: Instant) -> CircuitState {
        match self.state {
            Circuit::Closed { .. } => CircuitState::Closed,
            Circuit::Open { until } if now < until => CircuitState::Open,
            Circuit::Open { .. } | Circuit::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Whether requests may go out. Granting a probe marks it in flight.
    pub fn admit(&mut self, now: Instant) -> Admit {
        match self.state {
            Circuit::Closed { .. } => Admit::Any,
            Circuit::Open { until } if now < until => Admit::Wait(until - now),
            Circuit::Open { .. } | Circuit::HalfOpen { probing: false } => {
                self.state = Circuit::HalfOpen { probing: true };
                Admit::Probe
            }
            // The probe's outcome will wake the worker; the poll interval bounds the wait.
            Circuit::HalfOpen { probing: true } => Admit::Wait(Duration::from_secs(1)),
        }
    }

    /// A probe that never ran (nothing was due): allow another later.
    pub fn probe_unused(&mut self) {
        if self.state == (Circuit::HalfOpen { probing: true }) {
            self.state = Circuit::HalfOpen { probing: false };
        }
    }

    pub fn on_success(&mut self) {
        self.state = Circuit::Closed { failures: 0 };
    }

    pub fn on_failure(&mut self, now: Instant) {
        self.state = match self.state {
            Circuit::Closed { failures } if failures + 1 < self.policy.failure_threshold => {
                Circuit::Closed {
                    failures: failures + 1,
                }
            }
            Circuit::Open { until } => Circuit::Open { until },
            _ => Circuit::Open {
                until: now + self.policy.open_for,
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(CircuitPolicy {
            failure_threshold: 3,
            open_for: Duration::from_secs(10),
        })
    }

    #[test]
    fn opens_after_threshold_then_probes_once() {
        let t0 = Instant::now();
        let mut b = breaker();
        b.on_failure(t0);
        b.on_failure(t0);
        assert_eq!(b.admit(t0), Admit::Any);
        b.on_failure(t0);
        assert_eq!(b.reported(t0), CircuitState::Open);
        assert!(matches!(b.admit(t0), Admit::Wait(_)));
        let later = t0 + Duration::from_secs(11);
        assert_eq!(b.reported(later), CircuitState::HalfOpen);
        assert_eq!(b.admit(later), Admit::Probe);
        // Only one probe at a time.
        assert!(matches!(b.admit(later), Admit::Wait(_)));
        b.on_failure(later);
        assert_eq!(b.reported(later), CircuitState::Open);
        let much_later = later + Duration::from_secs(11);
        assert_eq!(b.admit(much_later), Admit::Probe);
        b.on_success();
        assert_eq!(b.admit(much_later), Admit::Any);
    }

    #[test]
    fn success_resets_the_count_and_unused_probe_is_returned() {
        let t0 = Instant::now();
        let mut b = breaker();
        b.on_failure(t0);
        b.on_failure(t0);
        b.on_success();
        b.on_failure(t0);
        assert_eq!(b.admit(t0), Admit::Any);
        for _ in 0..3 {
            b.on_failure(t0);
        }
        let later = t0 + Duration::from_secs(11);
        assert_eq!(b.admit(later), Admit::Probe);
        b.probe_unused();
        assert_eq!(b.admit(later), Admit::Probe);
    }
}
