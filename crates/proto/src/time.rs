//! Conversions between `google.protobuf.Timestamp` and `chrono`.

use chrono::{DateTime, TimeZone, Utc};
use prost_types::Timestamp;

/// A timestamp for `t`.
pub fn ts(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// `Some(ts)` for `Some(t)`.
pub fn ts_opt(t: Option<DateTime<Utc>>) -> Option<Timestamp> {
    t.map(ts)
}

/// The instant a timestamp names; `None` when out of range.
pub fn from_ts(t: &Timestamp) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(t.seconds, t.nanos.max(0) as u32).single()
}
