//! Reading and validating the calendar files.
//!
//! A calendar directory holds `calendar.toml` (time zone, weekend, office hours) and one file per
//! year of holidays, conventionally `2026.toml` (any other `*.toml` name works). The TOML is
//! first read into plain `…File` structs that mirror it (unknown keys are rejected, so a typo
//! such as `make_up_workday` is an error, not silently ignored), then parsed field by field
//! into the [`Calendar`] so that every error can name its file and field.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, NaiveTime, TimeDelta, Weekday, WeekdaySet};
use chrono_tz::Tz;
use serde::Deserialize;

use crate::calendar::{
    Exception, STANDARD_DUE_SOON_HOURS, STANDARD_HOURS, STANDARD_TIME_ZONE, STANDARD_WEEKEND,
};
use crate::{Calendar, CalendarError, Holiday, Problem, WorkingHours, Year};

/// The name of the configuration file in a calendar directory.
pub const CONFIG_FILE_NAME: &str = "calendar.toml";

/// Longest accepted holiday period; the longest official one (Spring Festival) is 9 days.
const MAX_HOLIDAY_DAYS: i64 = 31;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    time_zone: Option<String>,
    weekend: Option<Vec<String>>,
    working_hours: Option<Vec<BlockFile>>,
    due_soon_before_hours: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockFile {
    start: String,
    end: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    year: i32,
    #[serde(default)]
    provisional: bool,
    #[serde(default)]
    holiday: Vec<HolidayFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HolidayFile {
    name: String,
    name_zh: Option<String>,
    from: String,
    to: Option<String>,
    #[serde(default)]
    make_up_workdays: Vec<String>,
}

impl Calendar {
    /// Loads `calendar.toml` and every other `*.toml` file (one per year of holidays) from
    /// `dir`. Year files are read in file-name order. Settings omitted from `calendar.toml` take
    /// the values of [`Calendar::standard`]; an explicitly empty `working_hours` or a weekend of
    /// all seven days is rejected, since such a calendar would have no working time.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Calendar, CalendarError> {
        let dir = dir.as_ref();
        let read_dir_error = |source| CalendarError::ReadDir {
            dir: dir.to_path_buf(),
            source,
        };
        let mut year_paths = Vec::new();
        for entry in fs::read_dir(dir).map_err(read_dir_error)? {
            let path = entry.map_err(read_dir_error)?.path();
            let is_toml = path.extension().is_some_and(|ext| ext == "toml");
            let is_config = path
                .file_name()
                .is_some_and(|name| name == CONFIG_FILE_NAME);
            if is_toml && !is_config && path.is_file() {
                year_paths.push(path);
            }
        }
        year_paths.sort();

        let config_path = dir.join(CONFIG_FILE_NAME);
        if !config_path.is_file() {
            return Err(CalendarError::MissingConfig {
                dir: dir.to_path_buf(),
            });
        }
        let read = |path: &Path| {
            let file = path.display().to_string();
            fs::read_to_string(path)
                .map(|text| (file.clone(), text))
                .map_err(|source| CalendarError::Read { file, source })
        };
        let config = read(&config_path)?;
        let years = year_paths
            .iter()
            .map(|path| read(path))
            .collect::<Result<Vec<_>, _>>()?;
        build(
            (&config.0, &config.1),
            years
                .iter()
                .map(|(file, text)| (file.as_str(), text.as_str())),
        )
    }

    /// Builds a calendar from the text of a `calendar.toml` and of year files. In errors the
    /// configuration is called `config` and the year files `years[0]`, `years[1]`, ….
    pub fn from_toml_strs(config: &str, years: &[&str]) -> Result<Calendar, CalendarError> {
        let names: Vec<String> = (0..years.len()).map(|i| format!("years[{i}]")).collect();
        build(
            ("config", config),
            names
                .iter()
                .zip(years)
                .map(|(name, text)| (name.as_str(), *text)),
        )
    }
}

fn build<'a>(
    (config_file, config_text): (&str, &str),
    years: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<Calendar, CalendarError> {
    let mut calendar = parse_config(config_file, config_text)?;
    // Where each year and each special date was declared, to name both sides of a conflict.
    let mut year_origins: BTreeMap<i32, String> = BTreeMap::new();
    let mut date_origins: BTreeMap<NaiveDate, String> = BTreeMap::new();
    for (file, text) in years {
        let raw: YearFile = parse_toml(file, text)?;
        let year = add_year(&mut calendar, &mut date_origins, file, raw)?;
        if let Some(other) = year_origins.insert(year.year, file.to_owned()) {
            return Err(invalid(
                file,
                "year",
                Problem::DuplicateYear {
                    year: year.year,
                    other,
                },
            ));
        }
        calendar.years.insert(year.year, year);
    }
    Ok(calendar)
}

fn parse_toml<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, CalendarError> {
    toml::from_str(text).map_err(|source| CalendarError::Parse {
        file: file.to_owned(),
        source: Box::new(source),
    })
}

fn invalid(file: &str, field: impl Into<String>, problem: Problem) -> CalendarError {
    CalendarError::Invalid {
        file: file.to_owned(),
        field: field.into(),
        problem,
    }
}

fn parse_config(file: &str, text: &str) -> Result<Calendar, CalendarError> {
    let raw: ConfigFile = parse_toml(file, text)?;

    let time_zone = match raw.time_zone {
        None => STANDARD_TIME_ZONE,
        Some(name) => Tz::from_str(&name)
            .map_err(|_| invalid(file, "time_zone", Problem::UnknownTimeZone(name)))?,
    };

    let weekend = match raw.weekend {
        None => STANDARD_WEEKEND,
        Some(names) => {
            let mut weekend = WeekdaySet::EMPTY;
            for (i, name) in names.into_iter().enumerate() {
                let day = Weekday::from_str(name.trim()).map_err(|_| {
                    invalid(file, format!("weekend[{i}]"), Problem::UnknownWeekday(name))
                })?;
                weekend.insert(day);
            }
            if weekend == WeekdaySet::ALL {
                return Err(invalid(file, "weekend", Problem::NoWorkingDays));
            }
            weekend
        }
    };

    let working_hours = match raw.working_hours {
        None => STANDARD_HOURS.to_vec(),
        Some(blocks) => parse_blocks(file, blocks)?,
    };

    let due_soon_hours = raw.due_soon_before_hours.unwrap_or(STANDARD_DUE_SOON_HOURS);
    Ok(Calendar::new(
        time_zone,
        weekend,
        working_hours,
        TimeDelta::hours(i64::from(due_soon_hours)),
    ))
}

fn parse_blocks(file: &str, raw: Vec<BlockFile>) -> Result<Vec<WorkingHours>, CalendarError> {
    if raw.is_empty() {
        return Err(invalid(file, "working_hours", Problem::NoWorkingHours));
    }
    let mut blocks = Vec::with_capacity(raw.len());
    for (i, block) in raw.into_iter().enumerate() {
        let start = parse_time(&block.start).ok_or_else(|| {
            invalid(
                file,
                format!("working_hours[{i}].start"),
                Problem::BadTime(block.start),
            )
        })?;
        let end = parse_time(&block.end).ok_or_else(|| {
            invalid(
                file,
                format!("working_hours[{i}].end"),
                Problem::BadTime(block.end),
            )
        })?;
        if end <= start {
            return Err(invalid(
                file,
                format!("working_hours[{i}].end"),
                Problem::EndNotAfterStart { start, end },
            ));
        }
        blocks.push((i, WorkingHours { start, end }));
    }
    // Blocks may be listed in any order; after sorting, each must start at or after the end of
    // the one before (touching is fine).
    blocks.sort_by_key(|(_, block)| block.start);
    for pair in blocks.windows(2) {
        let [(_, earlier), (i, later)] = pair else {
            continue;
        };
        if later.start < earlier.end {
            return Err(invalid(
                file,
                format!("working_hours[{i}]"),
                Problem::OverlappingBlocks {
                    start: earlier.start,
                    end: earlier.end,
                },
            ));
        }
    }
    Ok(blocks.into_iter().map(|(_, block)| block).collect())
}

fn parse_time(text: &str) -> Option<NaiveTime> {
    let text = text.trim();
    NaiveTime::parse_from_str(text, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
        .ok()
}

/// Validates one year file and records its special dates in `calendar` (but not the year itself).
fn add_year(
    calendar: &mut Calendar,
    date_origins: &mut BTreeMap<NaiveDate, String>,
    file: &str,
    raw: YearFile,
) -> Result<Year, CalendarError> {
    let year = raw.year;
    let date = |field: &str, text: &str| -> Result<NaiveDate, CalendarError> {
        let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map_err(|_| invalid(file, field, Problem::BadDate(text.to_owned())))?;
        // New Year make-up days can fall in the previous December; anything further is a typo.
        if (date.year() - year).abs() > 1 {
            return Err(invalid(
                file,
                field,
                Problem::DateOutsideYear { date, year },
            ));
        }
        Ok(date)
    };

    let mut holidays = Vec::with_capacity(raw.holiday.len());
    for (i, holiday) in raw.holiday.into_iter().enumerate() {
        let field = |name: &str| format!("holiday[{i}].{name}");
        let origin = format!("{file} holiday[{i}] ({})", holiday.name);
        let from = date(&field("from"), &holiday.from)?;
        let to = match &holiday.to {
            None => from,
            Some(text) => date(&field("to"), text)?,
        };
        if to < from {
            return Err(invalid(
                file,
                field("to"),
                Problem::ToBeforeFrom { from, to },
            ));
        }
        let days = (to - from).num_days() + 1;
        if days > MAX_HOLIDAY_DAYS {
            return Err(invalid(
                file,
                field("to"),
                Problem::HolidayTooLong {
                    days,
                    max: MAX_HOLIDAY_DAYS,
                },
            ));
        }
        for day in from.iter_days().take_while(|day| *day <= to) {
            let field = if day == from {
                field("from")
            } else {
                field("to")
            };
            mark(
                calendar,
                date_origins,
                file,
                &field,
                day,
                Exception::Holiday,
                &origin,
            )?;
        }

        let mut make_up_workdays = Vec::with_capacity(holiday.make_up_workdays.len());
        for (j, text) in holiday.make_up_workdays.iter().enumerate() {
            let field = field(&format!("make_up_workdays[{j}]"));
            let day = date(&field, text)?;
            if !calendar.weekend.contains(day.weekday()) {
                return Err(invalid(
                    file,
                    field,
                    Problem::MakeUpNotOnWeekend {
                        date: day,
                        weekday: day.weekday(),
                    },
                ));
            }
            mark(
                calendar,
                date_origins,
                file,
                &field,
                day,
                Exception::MakeUpWorkday,
                &origin,
            )?;
            make_up_workdays.push(day);
        }

        holidays.push(Holiday {
            name: holiday.name,
            name_zh: holiday.name_zh,
            from,
            to,
            make_up_workdays,
        });
    }
    Ok(Year {
        year,
        provisional: raw.provisional,
        holidays,
    })
}

/// Records that `date` is a holiday or make-up day, rejecting a second declaration of it.
fn mark(
    calendar: &mut Calendar,
    date_origins: &mut BTreeMap<NaiveDate, String>,
    file: &str,
    field: &str,
    date: NaiveDate,
    exception: Exception,
    origin: &str,
) -> Result<(), CalendarError> {
    if let Some(previous) = calendar.exceptions.get(&date) {
        let other = date_origins.get(&date).cloned().unwrap_or_default();
        let problem = if *previous == exception {
            Problem::DuplicateDate { date, other }
        } else {
            Problem::HolidayAndMakeUp { date, other }
        };
        return Err(invalid(file, field, problem));
    }
    calendar.exceptions.insert(date, exception);
    date_origins.insert(date, origin.to_owned());
    Ok(())
}
