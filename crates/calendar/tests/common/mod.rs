//! Shared fixtures: a synthetic calendar and helpers that read and print Shanghai local times.
#![allow(dead_code)] // each test file uses a different subset

use chrono::{DateTime, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use tongban_calendar::Calendar;

pub(crate) const CONFIG: &str = r#"
time_zone = "Asia/Shanghai"
weekend = ["sat", "sun"]
[[working_hours]]
start = "09:00"
end = "12:00"
[[working_hours]]
start = "13:00"
end = "18:00"
"#;

/// June 2030, made up: Tuesday 11 to Thursday 13 off, Saturday 15 worked instead.
///
/// ```text
///        Mon Tue Wed Thu Fri Sat Sun
///         3   4   5   6   7   8   9
///        10  11h 12h 13h 14  15m 16      h = holiday, m = make-up working day
///        17  18  19  20  21  22  23
/// ```
pub(crate) const YEAR_2030: &str = r#"
year = 2030
[[holiday]]
name = "Fake Festival"
name_zh = "假节"
from = "2030-06-11"
to = "2030-06-13"
make_up_workdays = ["2030-06-15"]
"#;

pub(crate) fn synthetic() -> Calendar {
    Calendar::from_toml_strs(CONFIG, &[YEAR_2030]).expect("synthetic calendar is valid")
}

/// A Shanghai wall-clock time, "YYYY-MM-DD HH:MM[:SS]", as a UTC instant.
pub(crate) fn sh(text: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M"))
        .unwrap_or_else(|err| panic!("bad test time {text:?}: {err}"));
    Shanghai
        .from_local_datetime(&naive)
        .single()
        .expect("Shanghai has no DST")
        .to_utc()
}

/// A UTC instant as Shanghai wall-clock time with the weekday, for readable failures.
pub(crate) fn show(t: DateTime<Utc>) -> String {
    t.with_timezone(&Shanghai)
        .format("%Y-%m-%d %a %H:%M:%S")
        .to_string()
}

pub(crate) fn hours(n: i64) -> TimeDelta {
    TimeDelta::hours(n)
}

pub(crate) fn minutes(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

pub(crate) fn seconds(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}
