//! Retry and circuit-breaker policies: numbers only, no clocks or I/O. The delivery pipeline
//! owns the timers and the breaker state; these say how long and how many.

use std::time::Duration;

use tongban_types::Backoff;

/// Exponential backoff with jitter ([`Backoff`], Tongban's one retry schedule), bounded by a
/// number of attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; after the last failure the delivery is
    /// dead-lettered.
    pub max_attempts: u32,
    /// Delay after the first failed attempt (before jitter).
    pub initial_backoff: Duration,
    /// Upper bound of any delay, jitter included.
    pub max_backoff: Duration,
    /// Growth factor per further failure (≥ 1).
    pub multiplier: f64,
    /// Whether each delay gets a random extra of up to itself (see [`Backoff`]).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// Delay before the next attempt, after attempt number `attempt` (1-based; 0 counts as 1)
    /// failed.
    pub fn backoff(&self, attempt: u32) -> Duration {
        Backoff {
            initial: self.initial_backoff,
            max: self.max_backoff,
            factor: self.multiplier as f32,
            jitter: self.jitter,
        }
        .delay(attempt)
    }

    /// Whether another attempt is allowed after `attempts_made` attempts have failed.
    pub fn should_retry(&self, attempts_made: u32) -> bool {
        attempts_made < self.max_attempts
    }
}

/// When to stop calling a failing platform for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitPolicy {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before one trial request (half-open).
    pub open_for: Duration,
}

impl Default for CircuitPolicy {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let p = RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(1), Duration::from_millis(500));
        assert_eq!(p.backoff(0), Duration::from_millis(500));
        assert_eq!(p.backoff(2), Duration::from_millis(1000));
        assert_eq!(p.backoff(4), Duration::from_millis(4000));
        assert_eq!(p.backoff(30), Duration::from_secs(60));
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(60));
        let jittered = RetryPolicy::default();
        for _ in 0..50 {
            let d = jittered.backoff(1);
            assert!(d >= Duration::from_millis(500) && d < Duration::from_millis(1000));
            assert!(jittered.backoff(u32::MAX) <= Duration::from_secs(60));
        }
        assert!(p.should_retry(7));
        assert!(!p.should_retry(8));
    }
}
