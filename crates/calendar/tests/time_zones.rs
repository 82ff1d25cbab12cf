//! Instants go in and out as UTC; office hours are local wall-clock time of the calendar's zone.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::{CONFIG, sh};
use tongban_calendar::Calendar;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339 test time")
        .to_utc()
}

#[test]
fn shanghai_is_utc_plus_eight() {
    let cal = Calendar::standard();
    // 09:00 in Shanghai is 01:00 UTC; 18:00 is 10:00 UTC.
    #[rustfmt::skip]
    let cases: &[(&str, bool)] = &[
        ("2030-06-10T00:59:59Z", false),
        ("2030-06-10T01:00:00Z", true),
        ("2030-06-10T03:59:59Z", true),  // 11:59:59
        ("2030-06-10T04:00:00Z", false), // 12:00 lunch
        ("2030-06-10T05:00:00Z", true),  // 13:00
        ("2030-06-10T10:00:00Z", false), // 18:00
        ("2030-06-09T17:00:00Z", false), // Monday 01:00 in Shanghai, Sunday in UTC
        ("2030-06-08T01:00:00Z", false), // Saturday 09:00
        ("2030-06-10T01:00:00+08:00", false), // Monday 01:00 local
    ];
    for &(t, expected) in cases {
        assert_eq!(cal.is_working_time(utc(t)), expected, "{t}");
    }
    // Friday 16:00 Shanghai = 08:00 UTC; + 1 working day = Monday 16:00 Shanghai.
    assert_eq!(
        cal.add_working_days(utc("2030-06-07T08:00:00Z"), 1),
        utc("2030-06-10T08:00:00Z")
    );
    assert_eq!(sh("2030-06-07 16:00"), utc("2030-06-07T08:00:00Z"));
    // Sunday 23:30 UTC is already Monday 07:30 in Shanghai: the clock starts at 09:00 local.
    assert_eq!(
        cal.next_working_instant(utc("2030-06-09T23:30:00Z")),
        utc("2030-06-10T01:00:00Z")
    );
}

#[test]
fn the_time_zone_is_configurable() {
    let config = CONFIG.replace("Asia/Shanghai", "UTC");
    let cal = Calendar::from_toml_strs(&config, &[]).expect("valid");
    assert_eq!(cal.time_zone(), chrono_tz::UTC);
    assert_eq!(
        cal.add_working_days(utc("2030-06-07T16:00:00Z"), 1),
        utc("2030-06-10T16:00:00Z")
    );
}

#[test]
fn office_hours_follow_local_clocks_across_daylight_saving() {
    let config = CONFIG.replace("Asia/Shanghai", "Europe/Berlin");
    let cal = Calendar::from_toml_strs(&config, &[]).expect("valid");
    // Clocks go forward on Sunday 2026-03-29: Friday 16:00 CET (15:00 UTC) + 1 working day is
    // Monday 16:00 CEST (14:00 UTC).
    assert_eq!(
        cal.add_working_days(utc("2026-03-27T15:00:00Z"), 1),
        utc("2026-03-30T14:00:00Z")
    );
    assert_eq!(
        cal.working_time_between(utc("2026-03-27T15:00:00Z"), utc("2026-03-30T14:00:00Z")),
        TimeDelta::hours(8)
    );
}

#[test]
fn a_block_spanning_a_clock_change_counts_real_elapsed_time() {
    // Seven-day week, one block 01:00–04:00 Berlin time, which the DST changes cut through.
    let config = r#"
        time_zone = "Europe/Berlin"
        weekend = []
        [[working_hours]]
        start = "01:00"
        end = "04:00"
    "#;
    let cal = Calendar::from_toml_strs(config, &[]).expect("valid");
    let day = |from: &str, to: &str| cal.working_time_between(utc(from), utc(to));
    // Spring forward (02:00 → 03:00): 01:00 CET = 00:00 UTC to 04:00 CEST = 02:00 UTC.
    assert_eq!(
        day("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
        TimeDelta::hours(2)
    );
    // Fall back (03:00 → 02:00): 01:00 CEST = 23:00 UTC to 04:00 CET = 03:00 UTC.
    assert_eq!(
        day("2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"),
        TimeDelta::hours(4)
    );
    // An ordinary day.
    assert_eq!(
        day("2026-06-10T00:00:00+02:00", "2026-06-11T00:00:00+02:00"),
        TimeDelta::hours(3)
    );
    // A block starting inside the spring-forward gap starts when the gap ends plus the offset.
    let gap = r#"
        time_zone = "Europe/Berlin"
        weekend = []
        [[working_hours]]
        start = "02:30"
        end = "05:00"
    "#;
    let cal = Calendar::from_toml_strs(gap, &[]).expect("valid");
    assert_eq!(
        cal.next_working_instant(utc("2026-03-29T00:00:00Z")),
        utc("2026-03-29T03:30:00+02:00")
    );
}
