//! Retry and circuit-breaker policies: numbers only, no clocks or I/O. The delivery pipeline
//! owns the timers and the breaker state; these say how long and how many.

use std::time::Duration;

/// Exponential backoff with jitter, bounded by a number of attempts.
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
    /// Relative jitter in `[0, 1]`: the delay varies by up to ± this fraction.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// Delay before the next attempt, after attempt number `attempt` (1-based; 0 counts as 1)
    /// failed.
    ///
    /// `jitter_unit` is a caller-supplied uniform sample in `[0, 1]` (0.5 means no jitter),
    /// which keeps this function pure and testable. The result is
    /// `min(initial × multiplier^(attempt−1), max) × (1 ± jitter)`, clamped to `max_backoff`.
    pub fn backoff(&self, attempt: u32, jitter_unit: f64) -> Duration {
        let max = self.max_backoff.as_secs_f64();
        let exponent = i32::try_from(attempt.max(1) - 1)
            .unwrap_or(i32::MAX)
            .min(1024);
        let base = (self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent)).min(max);
        let unit = if jitter_unit.is_finite() {
            jitter_unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let delay = base * (1.0 + self.jitter * (2.0 * unit - 1.0));
        if delay.is_finite() {
            Duration::from_secs_f64(delay.clamp(0.0, max))
        } else {
            self.max_backoff
        }
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
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 0.5), Duration::from_millis(500));
        assert_eq!(p.backoff(0, 0.5), Duration::from_millis(500));
        assert_eq!(p.backoff(2, 0.5), Duration::from_millis(1000));
        assert_eq!(p.backoff(4, 0.5), Duration::from_millis(4000));
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(400));
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(600));
        assert_eq!(p.backoff(30, 0.5), Duration::from_secs(60));
        assert_eq!(p.backoff(u32::MAX, 1.0), Duration::from_secs(60));
        assert_eq!(p.backoff(u32::MAX, 0.0), Duration::from_secs(48));
        assert_eq!(p.backoff(1, f64::NAN), Duration::from_millis(500));
        assert!(p.should_retry(7));
        assert!(!p.should_retry(8));
    }
}
