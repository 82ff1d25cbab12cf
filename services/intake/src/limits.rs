//! Intake's configurable bounds on what one caller may ask of it: which material URI schemes
//! are accepted, how many WatchApplication streams a caller may hold open, and how fast it may
//! submit. Configured as `[limits]` (see [`crate::config`]); the defaults do not slow ordinary
//! use.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
pub use tongban_runtime::streams::{StreamCounter, StreamPermit};

/// Object stores and https, as the example requests use (`s3://…`).
pub const DEFAULT_URI_SCHEMES: &[&str] = &["https", "s3", "oss", "minio"];
pub const DEFAULT_WATCH_STREAMS: usize = 16;
pub const DEFAULT_SUBMIT_PER_MINUTE: u32 = 600;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct IntakeLimits {
    /// Schemes material URIs may use (`https`, `s3`; case and a trailing `://` are ignored).
    #[serde(deserialize_with = "schemes")]
    pub uri_schemes: Vec<String>,
    /// Open WatchApplication streams per caller.
    pub watch_streams_per_caller: usize,
    /// Submissions per caller per minute (a burst of the same size).
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
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.uri_schemes.is_empty() {
            out.push("limits.uri_schemes: at least one scheme is needed".into());
        }
        if self.watch_streams_per_caller == 0 {
            out.push("limits.watch_streams_per_caller: must be at least 1".into());
        }
        out
    }
}

fn schemes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(tongban_runtime::config::comma_list(d)?
        .iter()
        .map(|s| s.trim_end_matches("://").to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect())
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
