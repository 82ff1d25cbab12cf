//! Loading the shipped `deploy/calendar/` data, and validation errors that name file and field.

mod common;

use std::path::PathBuf;

use chrono::{Datelike, NaiveDate, TimeDelta, Weekday};
use common::{CONFIG, YEAR_2030, sh, show};
use tongban_calendar::{Calendar, CalendarError, DayKind, Problem};

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/calendar")
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("test date")
}

#[test]
fn the_shipped_calendar_loads() {
    let cal = Calendar::load_dir(deploy_dir()).expect("deploy/calendar is valid");
    assert_eq!(cal.time_zone(), chrono_tz::Asia::Shanghai);
    assert_eq!(cal.working_hours_per_day(), TimeDelta::hours(8));
    assert_eq!(cal.due_soon_before(), TimeDelta::hours(2));

    let y2026 = cal.year(2026).expect("2026 data");
    assert!(!y2026.provisional);
    assert_eq!(y2026.holidays.len(), 7);
    let days_off: i64 = y2026
        .holidays
        .iter()
        .map(|h| (h.to - h.from).num_days() + 1)
        .sum();
    assert_eq!(days_off, 3 + 9 + 3 + 5 + 3 + 3 + 7);
    assert!(cal.year(2027).is_some_and(|y| y.provisional));

    #[rustfmt::skip]
    let cases: &[(&str, DayKind)] = &[
        ("2026-01-01", DayKind::Holiday),       // New Year
        ("2026-01-04", DayKind::MakeUpWorkday), // Sunday
        ("2026-02-14", DayKind::MakeUpWorkday), // Saturday before Spring Festival
        ("2026-02-17", DayKind::Holiday),       // 正月初一
        ("2026-02-23", DayKind::Holiday),
        ("2026-02-24", DayKind::Workday),
        ("2026-02-28", DayKind::MakeUpWorkday),
        ("2026-04-06", DayKind::Holiday),       // Qingming (Monday)
        ("2026-05-05", DayKind::Holiday),
        ("2026-05-09", DayKind::MakeUpWorkday),
        ("2026-06-19", DayKind::Holiday),       // Dragon Boat
        ("2026-09-20", DayKind::MakeUpWorkday),
        ("2026-09-25", DayKind::Holiday),       // Mid-Autumn
        ("2026-10-01", DayKind::Holiday),       // National Day
        ("2026-10-07", DayKind::Holiday),
        ("2026-10-08", DayKind::Workday),
        ("2026-10-10", DayKind::MakeUpWorkday),
        ("2026-10-11", DayKind::Weekend),
        ("2027-01-01", DayKind::Holiday),
        ("2027-10-01", DayKind::Holiday),
    ];
    for &(day, kind) in cases {
        assert_eq!(cal.day_kind(date(day)), kind, "{day}");
    }
    assert!(!cal.is_working_day(date("2026-10-01")));

    // Every make-up day is a weekend day, and every holiday period is short.
    for year in cal.years() {
        for holiday in &year.holidays {
            for day in &holiday.make_up_workdays {
                assert!(
                    matches!(day.weekday(), Weekday::Sat | Weekday::Sun),
                    "{day}"
                );
            }
        }
    }

    // Deadlines across the National Day and Spring Festival holidays.
    #[rustfmt::skip]
    let deadlines: &[(&str, u32, &str)] = &[
        ("2026-09-30 16:00", 1, "2026-10-08 16:00"),
        ("2026-10-09 16:00", 1, "2026-10-10 16:00"), // make-up Saturday
        ("2026-02-13 16:00", 1, "2026-02-14 16:00"), // make-up Saturday
        ("2026-02-14 16:00", 1, "2026-02-24 16:00"),
        ("2026-09-18 16:00", 1, "2026-09-20 16:00"), // make-up Sunday
    ];
    for &(start, days, expected) in deadlines {
        assert_eq!(
            show(cal.add_working_days(sh(start), days)),
            show(sh(expected)),
            "{start} + {days} days"
        );
    }
}

#[test]
fn load_dir_reads_every_toml_file_and_names_the_bad_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("calendar.toml"), CONFIG).expect("write");
    std::fs::write(dir.path().join("2030.toml"), YEAR_2030).expect("write");
    std::fs::write(dir.path().join("README.md"), "not a calendar").expect("write");
    let cal = Calendar::load_dir(dir.path()).expect("valid directory");
    assert_eq!(cal.day_kind(date("2030-06-12")), DayKind::Holiday);

    let bad = dir.path().join("2031.toml");
    std::fs::write(
        &bad,
        "year = 2031\n[[holiday]]\nname = \"X\"\nfrom = \"2031-02-30\"\n",
    )
    .expect("write");
    let err = Calendar::load_dir(dir.path()).expect_err("bad date");
    let message = err.to_string();
    assert!(
        message.contains(&bad.display().to_string()),
        "names the file: {message}"
    );
    assert!(
        message.contains("`holiday[0].from`"),
        "names the field: {message}"
    );
    assert!(message.contains("2031-02-30"), "shows the value: {message}");
}

#[test]
fn load_dir_needs_calendar_toml() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("2030.toml"), YEAR_2030).expect("write");
    assert!(matches!(
        Calendar::load_dir(dir.path()),
        Err(CalendarError::MissingConfig { .. })
    ));
    assert!(matches!(
        Calendar::load_dir(dir.path().join("nope")),
        Err(CalendarError::ReadDir { .. })
    ));
}

fn block(start: &str, end: &str) -> String {
    format!("[[working_hours]]\nstart = \"{start}\"\nend = \"{end}\"\n")
}

fn year(year: i32, holidays: &str) -> String {
    format!("year = {year}\n{holidays}")
}

fn holiday(from: &str, to: &str, make_up: &[&str]) -> String {
    format!(
        "[[holiday]]\nname = \"H\"\nfrom = \"{from}\"\nto = \"{to}\"\nmake_up_workdays = {make_up:?}\n"
    )
}

#[test]
fn validation_errors_name_the_file_and_the_field() {
    let d = date;
    let ok_hours = block("09:00", "12:00");
    #[rustfmt::skip]
    let cases: Vec<(String, Vec<String>, &str, &str, Problem)> = vec![
        (
            format!("time_zone = \"Asia/Shangai\"\n{ok_hours}"), vec![],
            "config", "time_zone", Problem::UnknownTimeZone("Asia/Shangai".into()),
        ),
        (
            format!("weekend = [\"sat\", \"sab\"]\n{ok_hours}"), vec![],
            "config", "weekend[1]", Problem::UnknownWeekday("sab".into()),
        ),
        (
            format!("weekend = [\"mon\",\"tue\",\"wed\",\"thu\",\"fri\",\"sat\",\"sun\"]\n{ok_hours}"), vec![],
            "config", "weekend", Problem::NoWorkingDays,
        ),
        ("working_hours = []".into(), vec![], "config", "working_hours", Problem::NoWorkingHours),
        (block("9h", "12:00"), vec![], "config", "working_hours[0].start", Problem::BadTime("9h".into())),
        (block("09:00", "24:00"), vec![], "config", "working_hours[0].end", Problem::BadTime("24:00".into())),
        (
            block("13:00", "12:00"), vec![],
            "config", "working_hours[0].end",
            Problem::EndNotAfterStart { start: "13:00".parse().expect("t"), end: "12:00".parse().expect("t") },
        ),
        (
            format!("{}{}", block("13:00", "18:00"), block("09:00", "13:30")), vec![],
            "config", "working_hours[0]",
            Problem::OverlappingBlocks { start: "09:00".parse().expect("t"), end: "13:30".parse().expect("t") },
        ),
        (
            ok_hours.clone(), vec![year(2030, &holiday("2030-06-08", "2030-06-09", &["2030-06-08"]))],
            "years[0]", "holiday[0].make_up_workdays[0]",
            Problem::HolidayAndMakeUp { date: d("2030-06-08"), other: "years[0] holiday[0] (H)".into() },
        ),
        (
            ok_hours.clone(),
            vec![
                year(2030, &holiday("2030-12-28", "2030-12-29", &[])),
                year(2031, &holiday("2031-01-01", "2031-01-01", &["2030-12-22", "2030-12-28"])),
            ],
            "years[1]", "holiday[0].make_up_workdays[1]",
            Problem::HolidayAndMakeUp { date: d("2030-12-28"), other: "years[0] holiday[0] (H)".into() },
        ),
        (
            ok_hours.clone(),
            vec![year(2030, &format!("{}{}", holiday("2030-06-10", "2030-06-12", &[]), holiday("2030-06-12", "2030-06-12", &[])))],
            "years[0]", "holiday[1].from",
            Problem::DuplicateDate { date: d("2030-06-12"), other: "years[0] holiday[0] (H)".into() },
        ),
        (
            ok_hours.clone(), vec![year(2030, &holiday("2030-02-30", "2030-03-01", &[]))],
            "years[0]", "holiday[0].from", Problem::BadDate("2030-02-30".into()),
        ),
        (
            ok_hours.clone(), vec![year(2030, &holiday("2030-06-12", "2030-06-10", &[]))],
            "years[0]", "holiday[0].to", Problem::ToBeforeFrom { from: d("2030-06-12"), to: d("2030-06-10") },
        ),
        (
            ok_hours.clone(), vec![year(2030, &holiday("2030-02-01", "2030-12-01", &[]))],
            "years[0]", "holiday[0].to", Problem::HolidayTooLong { days: 304, max: 31 },
        ),
        (
            ok_hours.clone(), vec![year(2030, &holiday("2003-06-12", "2003-06-12", &[]))],
            "years[0]", "holiday[0].from", Problem::DateOutsideYear { date: d("2003-06-12"), year: 2030 },
        ),
        (
            ok_hours.clone(), vec![year(2030, &holiday("2030-06-12", "2030-06-12", &["2030-06-14"]))],
            "years[0]", "holiday[0].make_up_workdays[0]",
            Problem::MakeUpNotOnWeekend { date: d("2030-06-14"), weekday: Weekday::Fri },
        ),
        (
            ok_hours.clone(), vec![year(2030, ""), year(2030, "")],
            "years[1]", "year", Problem::DuplicateYear { year: 2030, other: "years[0]".into() },
        ),
    ];
    for (config, years, file, field, problem) in cases {
        let years: Vec<&str> = years.iter().map(String::as_str).collect();
        let err = Calendar::from_toml_strs(&config, &years).expect_err(field);
        let message = err.to_string();
        match err {
            CalendarError::Invalid {
                file: got_file,
                field: got_field,
                problem: got_problem,
            } => {
                assert_eq!(
                    (got_file.as_str(), got_field.as_str()),
                    (file, field),
                    "{message}"
                );
                assert_eq!(got_problem, problem, "{message}");
                assert!(
                    message.starts_with(&format!("{file}: `{field}`: ")),
                    "{message}"
                );
            }
            other => panic!("expected Invalid for {field}, got {other}"),
        }
    }
}

#[test]
fn unknown_keys_and_wrong_types_are_parse_errors_naming_the_file_and_key() {
    #[rustfmt::skip]
    let cases: &[(&str, &[&str], &str, &str)] = &[
        ("time_zone = \"UTC\"\nweekends = [\"sun\"]", &[], "config", "weekends"),
        ("", &["year = 2030\n[[holiday]]\nname = \"H\"\nfrom = 2030-06-12\n"], "years[0]", "from"),
        ("", &["year = 2030\n[[holiday]]\nname = \"H\"\nfrom = \"2030-06-12\"\nmake_up_workday = []\n"], "years[0]", "make_up_workday"),
        ("", &["[[holiday]]\nname = \"H\"\nfrom = \"2030-06-12\"\n"], "years[0]", "year"),
    ];
    for &(config, years, file, key) in cases {
        let err = Calendar::from_toml_strs(config, years).expect_err(key);
        let message = err.to_string();
        assert!(matches!(err, CalendarError::Parse { .. }), "{message}");
        assert!(message.starts_with(&format!("{file}: ")), "{message}");
        assert!(message.contains(key), "{message}");
    }
}

#[test]
fn omitted_settings_take_the_standard_values() {
    let cal = Calendar::from_toml_strs("", &[]).expect("empty config is the standard calendar");
    let standard = Calendar::standard();
    assert_eq!(cal.time_zone(), standard.time_zone());
    assert_eq!(cal.weekend(), standard.weekend());
    assert_eq!(cal.working_hours(), standard.working_hours());
    assert_eq!(cal.due_soon_before(), standard.due_soon_before());
    assert_eq!(cal.working_hours_per_day(), TimeDelta::hours(8));
}
