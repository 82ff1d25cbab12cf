//! # Working time for Tongban deadlines
//!
//! "Done within one working day" means eight hours of office time, not 24 hours: the clock stops
//! at lunch, overnight, at weekends and on public holidays. This crate answers the questions the
//! approval service (task deadlines, timers) and the notification service (quiet hours) ask about
//! such time.
//!
//! ## The model
//!
//! - A **working day** is a date that is not a weekend day (Saturday and Sunday by default) and
//!   not a public holiday, *or* that is a make-up working day (调休): a weekend day the State
//!   Council declares a working day to compensate for a long holiday. Holidays and make-up days
//!   override the weekday rule.
//! - On a working day, **working time** is the office-hour blocks, in local wall-clock time of
//!   the calendar's time zone (Asia/Shanghai by default): 09:00–12:00 and 13:00–18:00 by default.
//!   Blocks are half-open: 09:00 is working time, 12:00 is not.
//! - So working time is a sequence of disjoint intervals of instants. Write `W(t)` for the working
//!   time before instant `t`: it is continuous and non-decreasing, and every operation is defined
//!   by it:
//!   - [`Calendar::working_time_between`]`(a, b)` = `W(b) − W(a)` (zero if `b <= a`);
//!   - [`Calendar::add_working_time`]`(t, d)` = the *earliest* `u >= t` with `W(u) − W(t) = d`;
//!   - [`Calendar::sub_working_time`]`(t, d)` = the *latest* `u <= t` with `W(t) − W(u) = d`.
//!
//!   Hence the edge rules: a deadline landing exactly on a block end stays there (Friday 16:00 +
//!   2 h = Friday 18:00, not Monday 09:00); a start outside working time counts from the next
//!   block (Friday 18:00 + 1 h = Monday 10:00); adding zero returns `t` unchanged; subtracting
//!   lands on a block start rather than the previous block end (Monday 11:00 − 2 h = Monday
//!   09:00).
//! - **One working day** is [`Calendar::working_hours_per_day`] of working time (the sum of the
//!   blocks, 8 h by default), so Friday 16:00 + 1 working day = Monday 16:00.
//! - Instants go in and come out as `DateTime<Utc>`; the time zone matters only inside.
//! - Dates of years with no holiday file follow the plain weekday rule
//!   ([`Calendar::has_holiday_data_for`] tells callers when that happens).
//!
//! ## The data
//!
//! Holidays change every year and are published by the State Council General Office, so they are
//! data, shipped in `deploy/calendar/` and updated by operators, not code:
//!
//! ```toml
//! # calendar.toml
//! time_zone = "Asia/Shanghai"
//! weekend = ["sat", "sun"]
//! due_soon_before_hours = 2
//! [[working_hours]]
//! start = "09:00"
//! end = "12:00"
//! [[working_hours]]
//! start = "13:00"
//! end = "18:00"
//!
//! # 2026.toml (one file per year)
//! year = 2026
//! [[holiday]]
//! name = "Spring Festival"
//! name_zh = "春节"
//! from = "2026-02-15"
//! to = "2026-02-23"                                 # inclusive; defaults to `from`
//! make_up_workdays = ["2026-02-14", "2026-02-28"]
//! ```
//!
//! A year file may say `provisional = true` (see [`Year::provisional`]) when it was written before
//! the official notice. Loading validates everything and names the file and field of any mistake
//! ([`CalendarError`]).
//!
//! ## Layout
//!
//! - `calendar`: the [`Calendar`] value and day-level queries;
//! - `arithmetic`: adding, subtracting and measuring working time;
//! - `load`: reading and validating the TOML files;
//! - `error`: [`CalendarError`] and [`Problem`].

mod arithmetic;
mod calendar;
mod error;
mod load;

pub use arithmetic::{MAX_WALK_DAYS, MAX_WORKING_TIME};
pub use calendar::{Calendar, DayKind, Holiday, WorkingHours, Year};
pub use error::{CalendarError, Problem};
pub use load::CONFIG_FILE_NAME;

/// The time-zone type returned by [`Calendar::time_zone`].
pub use chrono_tz::Tz;
