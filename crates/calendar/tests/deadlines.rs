//! Table-driven deadline arithmetic on the synthetic calendar of `common` (June 2030: holiday
//! Tue 11–Thu 13, make-up Saturday 15).

mod common;

use chrono::{NaiveDate, TimeDelta};
use common::{hours, minutes, seconds, sh, show, synthetic};
use tongban_calendar::{Calendar, DayKind};

#[test]
fn add_working_time() {
    let cal = synthetic();
    #[rustfmt::skip]
    let cases: &[(&str, TimeDelta, &str, &str)] = &[
        // start,               duration,     expected,             why
        ("2030-06-07 16:00", hours(8),      "2030-06-10 16:00", "Friday 16:00 + 1 day is Monday 16:00"),
        ("2030-06-10 16:00", hours(8),      "2030-06-14 16:00", "across the Tue–Thu holiday"),
        ("2030-06-14 16:00", hours(8),      "2030-06-15 16:00", "make-up Saturday is a working day"),
        ("2030-06-14 17:00", hours(2),      "2030-06-15 10:00", "into the make-up Saturday"),
        ("2030-06-15 17:00", hours(2),      "2030-06-17 10:00", "Sunday after a make-up day is off"),
        ("2030-06-10 12:30", hours(1),      "2030-06-10 14:00", "start at lunch counts from 13:00"),
        ("2030-06-10 07:00", hours(1),      "2030-06-10 10:00", "start before opening"),
        ("2030-06-10 19:00", hours(1),      "2030-06-14 10:00", "start after closing, before a holiday"),
        ("2030-06-12 10:00", hours(1),      "2030-06-14 10:00", "start on a holiday"),
        ("2030-06-08 10:00", hours(1),      "2030-06-10 10:00", "start on a weekend"),
        ("2030-06-07 18:00", hours(1),      "2030-06-10 10:00", "start exactly at Friday closing"),
        ("2030-06-10 12:00", hours(1),      "2030-06-10 14:00", "start exactly at a block end"),
        ("2030-06-10 11:00", hours(1),      "2030-06-10 12:00", "lands on a block end: stays at 12:00"),
        ("2030-06-07 16:00", hours(2),      "2030-06-07 18:00", "lands on Friday closing: stays there"),
        ("2030-06-03 09:00", hours(40),     "2030-06-07 18:00", "five full days end Friday 18:00"),
        ("2030-06-10 09:00", hours(3),      "2030-06-10 12:00", "a whole morning block"),
        ("2030-06-10 11:59:30", seconds(90), "2030-06-10 13:01:00", "second precision across lunch"),
        ("2030-06-10 09:00", seconds(1),    "2030-06-10 09:00:01", "one second"),
        ("2030-06-10 10:17", minutes(43),   "2030-06-10 11:00", "minutes"),
        ("2030-06-08 10:00", TimeDelta::zero(), "2030-06-08 10:00", "zero returns t unchanged"),
        ("2030-06-10 10:00", hours(-2),     "2030-06-07 17:00", "negative counts backwards"),
        ("2030-06-24 09:00", hours(16),     "2030-06-25 18:00", "two days"),
        ("2031-03-07 16:00", hours(8),      "2031-03-10 16:00", "a year with no holiday data: weekday rule"),
    ];
    for &(start, d, expected, why) in cases {
        let got = cal.add_working_time(sh(start), d);
        assert_eq!(
            show(got),
            show(sh(expected)),
            "{why}: {start} + {d} should be {expected}"
        );
    }
}

#[test]
fn add_working_days_and_hours() {
    let cal = synthetic();
    #[rustfmt::skip]
    let cases: &[(&str, u32, &str, &str)] = &[
        ("2030-06-07 16:00", 1, "2030-06-10 16:00", "Friday 16:00 + 1 day"),
        ("2030-06-07 18:00", 1, "2030-06-10 18:00", "from Friday closing: a full Monday"),
        ("2030-06-08 11:00", 1, "2030-06-10 18:00", "from Saturday: a full Monday"),
        ("2030-06-07 16:00", 2, "2030-06-14 16:00", "second day skips the holiday"),
        ("2030-06-07 16:00", 3, "2030-06-15 16:00", "third day is the make-up Saturday"),
        ("2030-06-03 09:00", 5, "2030-06-07 18:00", "a working week"),
        ("2030-06-07 16:00", 0, "2030-06-07 16:00", "zero days"),
    ];
    for &(start, days, expected, why) in cases {
        let got = cal.add_working_days(sh(start), days);
        assert_eq!(
            show(got),
            show(sh(expected)),
            "{why}: {start} + {days} days"
        );
        let by_hours = cal.add_working_hours(sh(start), days * 8);
        assert_eq!(by_hours, got, "{why}: {days} days == {} hours", days * 8);
    }
    assert_eq!(cal.working_hours_per_day(), hours(8));
}

#[test]
fn sub_working_time() {
    let cal = synthetic();
    #[rustfmt::skip]
    let cases: &[(&str, TimeDelta, &str, &str)] = &[
        ("2030-06-10 11:00", hours(2),   "2030-06-10 09:00", "lands on a block start: stays at 09:00"),
        ("2030-06-10 09:00", hours(2),   "2030-06-07 16:00", "from opening back into Friday"),
        ("2030-06-10 10:00", hours(2),   "2030-06-07 17:00", "across the weekend"),
        ("2030-06-14 10:00", hours(2),   "2030-06-10 17:00", "across the holiday"),
        ("2030-06-17 10:00", hours(2),   "2030-06-15 17:00", "into the make-up Saturday"),
        ("2030-06-10 13:00", hours(1),   "2030-06-10 11:00", "from a block start across lunch"),
        ("2030-06-10 12:30", minutes(30), "2030-06-10 11:30", "from lunch"),
        ("2030-06-09 10:00", hours(1),   "2030-06-07 17:00", "from Sunday"),
        ("2030-06-10 16:00", hours(8),   "2030-06-07 16:00", "one working day back"),
        ("2030-06-10 10:00", TimeDelta::zero(), "2030-06-10 10:00", "zero"),
        ("2030-06-07 17:00", hours(-2),  "2030-06-10 10:00", "negative counts forwards"),
    ];
    for &(start, d, expected, why) in cases {
        let got = cal.sub_working_time(sh(start), d);
        assert_eq!(show(got), show(sh(expected)), "{why}: {start} - {d}");
    }
}

#[test]
fn due_soon_is_two_working_hours_before_the_deadline() {
    let cal = synthetic();
    assert_eq!(cal.due_soon_before(), hours(2));
    assert_eq!(
        show(cal.due_soon_at(sh("2030-06-10 10:00"))),
        show(sh("2030-06-07 17:00"))
    );
    assert_eq!(
        show(cal.due_soon_at(sh("2030-06-14 09:30"))),
        show(sh("2030-06-10 16:30"))
    );
}

#[test]
fn is_working_time() {
    let cal = synthetic();
    #[rustfmt::skip]
    let cases: &[(&str, bool, &str)] = &[
        ("2030-06-10 08:59:59", false, "before opening"),
        ("2030-06-10 09:00",    true,  "opening is inclusive"),
        ("2030-06-10 11:59:59", true,  "end of morning"),
        ("2030-06-10 12:00",    false, "block end is exclusive"),
        ("2030-06-10 12:59:59", false, "lunch"),
        ("2030-06-10 13:00",    true,  "afternoon start"),
        ("2030-06-10 17:59:59", true,  "last second"),
        ("2030-06-10 18:00",    false, "closing"),
        ("2030-06-10 00:00",    false, "midnight"),
        ("2030-06-08 10:00",    false, "Saturday"),
        ("2030-06-12 10:00",    false, "holiday"),
        ("2030-06-15 10:00",    true,  "make-up Saturday"),
        ("2030-06-16 10:00",    false, "Sunday after make-up Saturday"),
    ];
    for &(t, expected, why) in cases {
        assert_eq!(cal.is_working_time(sh(t)), expected, "{why}: {t}");
    }
}

#[test]
fn next_working_instant() {
    let cal = synthetic();
    #[rustfmt::skip]
    let cases: &[(&str, &str)] = &[
        ("2030-06-10 08:00",    "2030-06-10 09:00"),
        ("2030-06-10 10:15:07", "2030-06-10 10:15:07"),
        ("2030-06-10 12:00",    "2030-06-10 13:00"),
        ("2030-06-07 18:00",    "2030-06-10 09:00"),
        ("2030-06-10 18:00",    "2030-06-14 09:00"),
        ("2030-06-14 18:00",    "2030-06-15 09:00"),
        ("2030-06-15 18:00",    "2030-06-17 09:00"),
    ];
    for &(t, expected) in cases {
        assert_eq!(
            show(cal.next_working_instant(sh(t))),
            show(sh(expected)),
            "from {t}"
        );
    }
}

#[test]
fn working_time_between() {
    let cal = synthetic();
    #[rustfmt::skip]
    let cases: &[(&str, &str, TimeDelta)] = &[
        ("2030-06-07 16:00", "2030-06-10 16:00", hours(8)),
        ("2030-06-10 00:00", "2030-06-16 00:00", hours(24)), // Mon, Fri, make-up Sat
        ("2030-06-10 11:00", "2030-06-10 14:00", hours(2)),
        ("2030-06-10 12:00", "2030-06-10 13:00", TimeDelta::zero()),
        ("2030-06-08 00:00", "2030-06-09 23:59", TimeDelta::zero()),
        ("2030-06-10 10:00", "2030-06-10 10:00", TimeDelta::zero()),
        ("2030-06-10 16:00", "2030-06-07 16:00", TimeDelta::zero()), // b before a
        ("2030-06-10 09:00:00", "2030-06-10 09:00:42", seconds(42)),
    ];
    for &(a, b, expected) in cases {
        assert_eq!(
            cal.working_time_between(sh(a), sh(b)),
            expected,
            "{a} .. {b}"
        );
    }
}

#[test]
fn day_kinds() {
    let cal = synthetic();
    let date = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("test date");
    #[rustfmt::skip]
    let cases: &[(&str, DayKind)] = &[
        ("2030-06-10", DayKind::Workday),
        ("2030-06-11", DayKind::Holiday),
        ("2030-06-13", DayKind::Holiday),
        ("2030-06-14", DayKind::Workday),
        ("2030-06-15", DayKind::MakeUpWorkday),
        ("2030-06-16", DayKind::Weekend),
        ("2031-06-11", DayKind::Workday), // no data for 2031: weekday rule
    ];
    for &(day, kind) in cases {
        assert_eq!(cal.day_kind(date(day)), kind, "{day}");
        assert_eq!(cal.is_working_day(date(day)), kind.is_working(), "{day}");
    }
    assert!(cal.has_holiday_data_for(date("2030-01-01")));
    assert!(!cal.has_holiday_data_for(date("2031-01-01")));
}

#[test]
fn the_standard_calendar_is_monday_to_friday_nine_to_six_in_shanghai() {
    let cal = Calendar::standard();
    assert_eq!(cal.time_zone(), chrono_tz::Asia::Shanghai);
    assert_eq!(cal.working_hours_per_day(), hours(8));
    assert_eq!(cal.years().count(), 0);
    assert_eq!(
        show(cal.add_working_days(sh("2030-06-07 16:00"), 2)),
        show(sh("2030-06-11 16:00")),
        "no holidays in the standard calendar"
    );
}

#[test]
fn a_thousand_hours_equals_a_thousand_single_hours() {
    let cal = synthetic();
    let start = sh("2030-05-20 10:30");
    let mut stepwise = start;
    for _ in 0..1000 {
        stepwise = cal.add_working_hours(stepwise, 1);
    }
    let direct = cal.add_working_hours(start, 1000);
    assert_eq!(show(direct), show(stepwise));
    assert_eq!(cal.working_time_between(start, direct), hours(1000));
    // 1000 h = 125 days of 8 h, so the same time of day.
    assert!(show(direct).ends_with("10:30:00"), "{}", show(direct));
}

#[test]
fn calendar_is_shareable() {
    fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    assert_traits::<Calendar>();
}

#[test]
fn hostile_durations_saturate_at_once() {
    let cal = synthetic();
    let t = sh("2030-06-07 16:00");
    let started = std::time::Instant::now();
    for days in [u32::MAX, i32::MAX as u32, 1_000_000] {
        assert_eq!(
            cal.add_working_days(t, days),
            chrono::DateTime::<chrono::Utc>::MAX_UTC
        );
        assert_eq!(
            cal.add_working_hours(t, days),
            chrono::DateTime::<chrono::Utc>::MAX_UTC
        );
    }
    assert_eq!(
        cal.add_working_time(t, TimeDelta::MAX),
        chrono::DateTime::<chrono::Utc>::MAX_UTC
    );
    assert_eq!(
        cal.add_working_time(t, TimeDelta::MIN),
        chrono::DateTime::<chrono::Utc>::MIN_UTC
    );
    assert_eq!(
        cal.sub_working_time(t, TimeDelta::MAX),
        chrono::DateTime::<chrono::Utc>::MIN_UTC
    );
    // The longest walks allowed are still short.
    let far = cal.add_working_time(t, tongban_calendar::MAX_WORKING_TIME);
    assert!(far < chrono::DateTime::<chrono::Utc>::MAX_UTC);
    assert_eq!(
        cal.working_time_between(t, far),
        tongban_calendar::MAX_WORKING_TIME
    );
    let _ = cal.working_time_between(
        chrono::DateTime::<chrono::Utc>::MIN_UTC,
        chrono::DateTime::<chrono::Utc>::MAX_UTC,
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}
