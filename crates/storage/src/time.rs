//! Instants as milliseconds since the Unix epoch.
//!
//! Every time column the schedulers compare (`next_attempt_at <= now`) is a `BIGINT` of
//! milliseconds: integers compare the same on both engines, engine-specific timestamp text
//! does not.

use chrono::{DateTime, Utc};

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The instant `ms` milliseconds after the epoch; `None` when out of chrono's range.
pub fn from_ms(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_round_trip() {
        let now = now_ms();
        assert_eq!(from_ms(now).map(|t| t.timestamp_millis()), Some(now));
        assert_eq!(from_ms(i64::MAX), None);
    }
}
