//! Errors from loading and validating calendar files.
//!
//! Every validation error names the file (a path for [`Calendar::load_dir`], `config` or
//! `years[i]` for [`Calendar::from_toml_strs`]) and the field, as a path such as
//! `working_hours[1].end` or `holiday[2].make_up_workdays[0]` (indices count from 0, in file
//! order), so an operator can fix the data without reading code.
//!
//! [`Calendar::load_dir`]: crate::Calendar::load_dir
//! [`Calendar::from_toml_strs`]: crate::Calendar::from_toml_strs

use std::path::PathBuf;

use chrono::{NaiveDate, NaiveTime, Weekday};

/// Why a calendar could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The directory could not be listed.
    #[error("cannot read calendar directory {}: {source}", dir.display())]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The directory has no `calendar.toml`.
    #[error("calendar directory {} has no calendar.toml", dir.display())]
    MissingConfig { dir: PathBuf },
    /// A file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid TOML or does not have the expected shape (the message names the key
    /// and line).
    #[error("{file}: {source}")]
    Parse {
        file: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A value is well-formed TOML but not a valid calendar.
    #[error("{file}: `{field}`: {problem}")]
    Invalid {
        file: String,
        field: String,
        problem: Problem,
    },
}

/// What is wrong with one field (see [`CalendarError::Invalid`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("unknown time zone {0:?} (expected an IANA name such as \"Asia/Shanghai\")")]
    UnknownTimeZone(String),
    #[error("unknown weekday {0:?} (expected mon, tue, wed, thu, fri, sat or sun)")]
    UnknownWeekday(String),
    #[error("every day of the week is a weekend day, so there would be no working time")]
    NoWorkingDays,
    #[error("no working-hour blocks, so there would be no working time")]
    NoWorkingHours,
    #[error("bad time {0:?} (expected HH:MM or HH:MM:SS between 00:00 and 23:59:59)")]
    BadTime(String),
    #[error("end {end} is not after start {start}")]
    EndNotAfterStart { start: NaiveTime, end: NaiveTime },
    #[error("overlaps the block {start}–{end}")]
    OverlappingBlocks { start: NaiveTime, end: NaiveTime },
    #[error("bad date {0:?} (expected a quoted \"YYYY-MM-DD\")")]
    BadDate(String),
    #[error("{date} is more than a year away from the file's year {year}")]
    DateOutsideYear { date: NaiveDate, year: i32 },
    #[error("`to` {to} is before `from` {from}")]
    ToBeforeFrom { from: NaiveDate, to: NaiveDate },
    #[error("the holiday lasts {days} days; more than {max} is almost certainly a typo")]
    HolidayTooLong { days: i64, max: i64 },
    #[error("{date} is declared both as a holiday and as a make-up workday (also in {other})")]
    HolidayAndMakeUp { date: NaiveDate, other: String },
    #[error("{date} is declared twice (also in {other})")]
    DuplicateDate { date: NaiveDate, other: String },
    #[error("make-up workday {date} is a {weekday}, which is a working day anyway")]
    MakeUpNotOnWeekend { date: NaiveDate, weekday: Weekday },
    #[error("year {year} is already loaded from {other}")]
    DuplicateYear { year: i32, other: String },
}
