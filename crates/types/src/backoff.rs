//! The one retry schedule in Tongban: exponential growth through `backon`, with its jitter.
//!
//! Everything that waits before trying again (platform deliveries, webhooks, the broker
//! reconnect, the CLI's stream reconnect) uses [`Backoff`], so they all spread out the same way:
//! delay `n` is `initial × factor^(n−1)`, plus (with jitter) a random extra of up to that much
//! again, never more than `max`. Retries that survive a restart keep their attempt count in a
//! table and ask for [`Backoff::delay`] of it; loops in memory iterate [`Backoff::schedule`].

use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};

/// After this many doublings any realistic delay has reached its cap, so larger attempt
/// numbers need not be walked one by one.
const MAX_STEPS: u32 = 64;

/// An exponential retry schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure, before jitter.
    pub initial: Duration,
    /// No delay is longer, jitter included.
    pub max: Duration,
    /// Growth per further failure (≥ 1).
    pub factor: f32,
    /// Add a random extra of up to the current delay, so that many failures that happened
    /// together do not retry together.
    pub jitter: bool,
}

impl Backoff {
    /// Doubling from `initial` up to `max`, with jitter.
    pub fn doubling(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            factor: 2.0,
            jitter: true,
        }
    }

    /// The `backon` builder for this schedule, never giving up by itself (callers count
    /// attempts against their own limits).
    pub fn builder(&self) -> ExponentialBuilder {
        let builder = ExponentialBuilder::default()
            .with_min_delay(self.initial)
            .with_max_delay(self.max)
            .with_factor(self.factor.max(1.0))
            .without_max_times();
        if self.jitter {
            builder.with_jitter()
        } else {
            builder
        }
    }

    /// The delays, one per failure, for retry loops held in memory.
    pub fn schedule(&self) -> impl Iterator<Item = Duration> + use<> {
        let max = self.max;
        self.builder().build().map(move |d| d.min(max))
    }

    /// The delay after failed attempt `attempt` (1-based; 0 counts as 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let steps = attempt.clamp(1, MAX_STEPS) as usize;
        self.schedule().nth(steps - 1).unwrap_or(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_the_factor_and_stops_at_the_cap() {
        let b = Backoff {
            jitter: false,
            ..Backoff::doubling(Duration::from_millis(500), Duration::from_secs(60))
        };
        assert_eq!(b.delay(0), Duration::from_millis(500));
        assert_eq!(b.delay(1), Duration::from_millis(500));
        assert_eq!(b.delay(2), Duration::from_millis(1000));
        assert_eq!(b.delay(4), Duration::from_millis(4000));
        assert_eq!(b.delay(30), Duration::from_secs(60));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
        let first: Vec<_> = b.schedule().take(3).collect();
        assert_eq!(first, [500, 1000, 2000].map(Duration::from_millis).to_vec());
    }

    #[test]
    fn jitter_adds_up_to_one_step_and_never_passes_the_cap() {
        let b = Backoff::doubling(Duration::from_millis(500), Duration::from_secs(60));
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let d = b.delay(3);
            assert!(d >= Duration::from_millis(2000), "{d:?}");
            assert!(d < Duration::from_millis(4000), "{d:?}");
            seen.insert(d);
            assert!(b.delay(u32::MAX) <= Duration::from_secs(60));
        }
        assert!(seen.len() > 1, "jitter varies the delay");
    }
}
