//! The [`Calendar`] value: which dates are working days and which hours of them are working time.
//!
//! The arithmetic over working time lives in [`crate::arithmetic`]; reading and validating the
//! TOML files in [`crate::load`].

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, NaiveTime, TimeDelta, Weekday, WeekdaySet};
use chrono_tz::Tz;

/// A working calendar: time zone, weekend, office hours, holidays and make-up working days.
///
/// Cheap to share: clone it or put it in an `Arc`. Build it with [`Calendar::load_dir`],
/// [`Calendar::from_toml_strs`] or [`Calendar::standard`].
///
/// [`Calendar::load_dir`]: crate::Calendar::load_dir
/// [`Calendar::from_toml_strs`]: crate::Calendar::from_toml_strs
#[derive(Clone, Debug)]
pub struct Calendar {
    pub(crate) time_zone: Tz,
    pub(crate) weekend: WeekdaySet,
    /// Sorted by start, non-overlapping, each with `start < end`, never empty.
    pub(crate) working_hours: Vec<WorkingHours>,
    pub(crate) working_hours_per_day: TimeDelta,
    pub(crate) due_soon_before: TimeDelta,
    pub(crate) years: BTreeMap<i32, Year>,
    /// Holidays and make-up working days of all loaded years, for O(log n) lookups.
    pub(crate) exceptions: BTreeMap<NaiveDate, Exception>,
}

/// A date that departs from the weekday rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exception {
    Holiday,
    MakeUpWorkday,
}

/// One block of office hours in local wall-clock time, half-open: `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkingHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl WorkingHours {
    /// Nominal length of the block (ignoring daylight-saving transitions).
    pub fn duration(&self) -> TimeDelta {
        self.end - self.start
    }
}

/// The holiday data of one year, as published by the State Council General Office.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Year {
    pub year: i32,
    /// True when the file says the official notice was not yet published when it was written.
    pub provisional: bool,
    pub holidays: Vec<Holiday>,
}

/// One public holiday period and its make-up working days (调休).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holiday {
    pub name: String,
    pub name_zh: Option<String>,
    /// First day off.
    pub from: NaiveDate,
    /// Last day off (inclusive).
    pub to: NaiveDate,
    /// Weekend days that become working days to compensate.
    pub make_up_workdays: Vec<NaiveDate>,
}

/// What kind of day a date is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DayKind {
    /// An ordinary working day.
    Workday,
    /// A weekend day with no special status.
    Weekend,
    /// A public holiday (including the weekend days inside a holiday period).
    Holiday,
    /// A weekend day that is a working day to compensate for a holiday (调休).
    MakeUpWorkday,
}

impl DayKind {
    pub fn is_working(self) -> bool {
        matches!(self, DayKind::Workday | DayKind::MakeUpWorkday)
    }
}

const fn hm(hour: u32, minute: u32) -> NaiveTime {
    match NaiveTime::from_hms_opt(hour, minute, 0) {
        Some(time) => time,
        None => panic!("invalid constant time"),
    }
}

/// The default office hours: 09:00–12:00 and 13:00–18:00.
pub(crate) const STANDARD_HOURS: [WorkingHours; 2] = [
    WorkingHours {
        start: hm(9, 0),
        end: hm(12, 0),
    },
    WorkingHours {
        start: hm(13, 0),
        end: hm(18, 0),
    },
];
pub(crate) const STANDARD_WEEKEND: WeekdaySet =
    WeekdaySet::from_array([Weekday::Sat, Weekday::Sun]);
pub(crate) const STANDARD_TIME_ZONE: Tz = Tz::Asia__Shanghai;
pub(crate) const STANDARD_DUE_SOON_HOURS: u32 = 2;

impl Calendar {
    /// A built-in default: Asia/Shanghai, Monday to Friday, 09:00–12:00 and 13:00–18:00, no
    /// holidays. For tests, and as a fallback when no calendar data is deployed.
    pub fn standard() -> Calendar {
        Calendar::new(
            STANDARD_TIME_ZONE,
            STANDARD_WEEKEND,
            STANDARD_HOURS.to_vec(),
            TimeDelta::hours(i64::from(STANDARD_DUE_SOON_HOURS)),
        )
    }

    /// Assembles a calendar from already validated parts (no holidays yet).
    pub(crate) fn new(
        time_zone: Tz,
        weekend: WeekdaySet,
        mut working_hours: Vec<WorkingHours>,
        due_soon_before: TimeDelta,
    ) -> Calendar {
        working_hours.sort_by_key(|block| block.start);
        let working_hours_per_day = working_hours.iter().map(WorkingHours::duration).sum();
        Calendar {
            time_zone,
            weekend,
            working_hours,
            working_hours_per_day,
            due_soon_before,
            years: BTreeMap::new(),
            exceptions: BTreeMap::new(),
        }
    }

    /// The time zone the office hours and dates are expressed in.
    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    /// The length of one working day: the sum of the office-hour blocks (8 h by default).
    pub fn working_hours_per_day(&self) -> TimeDelta {
        self.working_hours_per_day
    }

    /// The office-hour blocks, sorted by start.
    pub fn working_hours(&self) -> &[WorkingHours] {
        &self.working_hours
    }

    /// The weekend days (before holidays and make-up days are applied).
    pub fn weekend(&self) -> WeekdaySet {
        self.weekend
    }

    /// How long before a deadline, in working time, a task counts as "due soon" (2 h by
    /// default). See [`Calendar::due_soon_at`](crate::Calendar::due_soon_at).
    pub fn due_soon_before(&self) -> TimeDelta {
        self.due_soon_before
    }

    /// The holiday data of `year`, if a file for it was loaded.
    pub fn year(&self, year: i32) -> Option<&Year> {
        self.years.get(&year)
    }

    /// All loaded years, in order.
    pub fn years(&self) -> impl Iterator<Item = &Year> {
        self.years.values()
    }

    /// Whether holiday data is loaded for the year of `date`. Dates of other years follow the
    /// plain weekday rule, which is wrong around public holidays: services may want to warn.
    pub fn has_holiday_data_for(&self, date: NaiveDate) -> bool {
        self.years.contains_key(&date.year())
    }

    /// Classifies a date: holidays and make-up days override the weekday rule.
    pub fn day_kind(&self, date: NaiveDate) -> DayKind {
        match self.exceptions.get(&date) {
            Some(Exception::Holiday) => DayKind::Holiday,
            Some(Exception::MakeUpWorkday) => DayKind::MakeUpWorkday,
            None if self.weekend.contains(date.weekday()) => DayKind::Weekend,
            None => DayKind::Workday,
        }
    }

    /// Whether `date` is a working day (weekend-, holiday- and make-up-day aware).
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        self.day_kind(date).is_working()
    }
}
