//! Intake's configurable bounds on what one caller may ask of it: which material URI schemes
//! are accepted, how many WatchApplication streams a caller may hold open, and how fast it may
//! submit. Read from the environment ([`IntakeLimits::from_env`]); the defaults do not slow
//! ordinary use.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
pub use tongban_runtime::streams::{StreamCounter, StreamPermit};

/// Environment key: comma-separated URI schemes material URIs may use.
pub const ENV_URI_SCHEMES: &str = "TONGBAN_INTAKE_URI_SCHEMES";
/// Environment key: open WatchApplication streams per caller.
pub const ENV_WATCH_STREAMS: &str = "TONGBAN_INTAKE_WATCH_STREAMS_PER_CALLER";
/// Environment key: submissions per caller per minute (burst of the same size).
pub const ENV_SUBMIT_PER_MINUTE: &str = "TONGBAN_INTAKE_SUBMISSIONS_PER_MINUTE";

/// Object stores and https, as the example requests use (`s3://…`).
pub const DEFAULT_URI_SCHEMES: &[&str] = &["https", "s3", "oss", "minio"];
pub const DEFAULT_WATCH_STREAMS: usize = 16;
pub const DEFAULT_SUBMIT_PER_MINUTE: u32 = 600;

#[derive(Debug, Clone)]
pub struct IntakeLimits {
    /// Lower-case schemes, without `://`.
    pub uri_schemes: Vec<String>,
    pub watch_streams_per_caller: usize,
    pub submissions_per_minute: NonZeroU32,
}

impl Default for IntakeLimits {
    fn default() -> Self {
        Self {
            uri_schemes: DEFAULT_URI_SCHEMES.iter().map(|s| s.to_string()).collect(),
            watch_streams_per_caller: DEFAULT_WATCH_STREAMS,
            submissions_per_minute: NonZeroU32::new(DEFAULT_SUBMIT_PER_MINUTE)
                .unwrap_or(NonZeroU32::MIN),
        }
    }
}

impl IntakeLimits {
    /// The defaults, overridden by [`ENV_URI_SCHEMES`], [`ENV_WATCH_STREAMS`] and
    /// [`ENV_SUBMIT_PER_MINUTE`] where set.
    pub fn from_env() -> anyhow::Result<Self> {
        let mut l = Self::default();
        if let Ok(v) = std::env::var(ENV_URI_SCHEMES) {
            l.uri_schemes = v
                .split(',')
                .map(|s| s.trim().trim_end_matches("://").to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Ok(v) = std::env::var(ENV_WATCH_STREAMS) {
            l.watch_streams_per_caller = v
                .trim()
                .parse()
                .map_err(|e| anyhow::anyhow!("{ENV_WATCH_STREAMS}: {e}"))?;
        }
        if let Ok(v) = std::env::var(ENV_SUBMIT_PER_MINUTE) {
            l.submissions_per_minute = v
                .trim()
                .parse()
                .map_err(|e| anyhow::anyhow!("{ENV_SUBMIT_PER_MINUTE}: {e}"))?;
        }
        Ok(l)
    }
}

/// Submissions per caller (keyed by token subject), with governor's GCRA.
pub struct SubmitLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl SubmitLimiter {
    pub fn new(per_minute: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
        }
    }

    /// `Err(wait)` when `subject` must wait before submitting again.
    pub fn check(&self, subject: &str) -> Result<(), std::time::Duration> {
        self.limiter
            .check_key(&subject.to_string())
            .map_err(|not_until| {
                not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submissions_are_limited_per_subject() {
        let l = SubmitLimiter::new(NonZeroU32::new(2).unwrap());
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_ok());
        let wait = l.check("a").unwrap_err();
        assert!(wait > std::time::Duration::ZERO);
        assert!(l.check("b").is_ok());
    }
}
