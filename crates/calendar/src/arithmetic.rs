//! Arithmetic over working time.
//!
//! Working time is a sequence of disjoint UTC intervals ([`Span`]s), one per office-hour block of
//! each working day. Every operation walks the working days forwards or backwards from a starting
//! instant:
//!
//! - a non-working day costs one map lookup and is skipped;
//! - a whole ordinary working day that the answer cannot fall in is counted at once, as
//!   [`Calendar::working_hours_per_day`], without looking at its blocks;
//! - otherwise the day's blocks are taken one whole block at a time.
//!
//! The cost is therefore linear in the calendar days covered and never depends on minutes:
//! 1000 working hours is about 180 days and takes microseconds (see `benches/deadline.rs`).
//! Converting local midnights to instants is the costly step, so a walk over consecutive days
//! converts each midnight once and derives the blocks from it by arithmetic.
//!
//! The sequence is unbounded (validation guarantees at least one working weekday and one
//! non-empty block, and holiday data is finite), but the walks are bounded so that no input can
//! make them long: a duration above [`MAX_WORKING_TIME`] is not walked at all, and no walk
//! visits more than [`MAX_WALK_DAYS`] calendar days. Beyond either bound (and at the edge of
//! chrono's date range) the functions saturate to [`DateTime::<Utc>::MAX_UTC`] /
//! [`DateTime::<Utc>::MIN_UTC`], and [`Calendar::working_time_between`] counts only the first
//! [`MAX_WALK_DAYS`]. Callers range-check their inputs far below these bounds (a deadline of a
//! few hundred working hours); the bounds are the backstop, so a hostile number costs at most
//! about a millisecond.

use std::iter;

use chrono::{DateTime, MappedLocalTime, NaiveDate, NaiveTime, Offset, TimeDelta, TimeZone, Utc};

use crate::Calendar;

/// The longest working duration any function here will walk: 20 000 working hours, about ten
/// years of 8-hour days. Longer durations saturate at once.
pub const MAX_WORKING_TIME: TimeDelta = TimeDelta::hours(20_000);

/// The most calendar days one walk visits: twenty years, enough for [`MAX_WORKING_TIME`] on any
/// calendar with at least one working day a week.
pub const MAX_WALK_DAYS: usize = 20 * 366;

/// One local date and the instants at which it starts and ends (its midnight and the next).
#[derive(Clone, Copy, Debug)]
struct Day {
    date: NaiveDate,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Day {
    /// 24 hours long, so no clock change: every block lies inside it, at its nominal length.
    fn is_ordinary(&self) -> bool {
        self.end - self.start == TimeDelta::days(1)
    }
}

/// Remembers the midnights of the last day visited, so that a walk over consecutive working days
/// (forwards or backwards) converts each midnight once: the time-zone lookup is the costly part.
#[derive(Default)]
struct Midnights {
    last: Option<Day>,
}

impl Midnights {
    fn day(&mut self, calendar: &Calendar, date: NaiveDate) -> Option<Day> {
        let next = date.succ_opt()?;
        let day = Day {
            date,
            start: self.midnight(calendar, date)?,
            end: self.midnight(calendar, next)?,
        };
        self.last = Some(day);
        Some(day)
    }

    fn midnight(&self, calendar: &Calendar, date: NaiveDate) -> Option<DateTime<Utc>> {
        match self.last {
            Some(last) if last.date == date => Some(last.start),
            Some(last) if last.date.succ_opt() == Some(date) => Some(last.end),
            _ => calendar.instant(date, NaiveTime::MIN),
        }
    }
}

/// One stretch of working time, `[start, end)`, with `start < end`.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Calendar {
    /// Whether `t` is inside working hours. Block ends are exclusive: 12:00 and 18:00 are not
    /// working time, 09:00 and 13:00 are.
    pub fn is_working_time(&self, t: DateTime<Utc>) -> bool {
        self.spans_after(t)
            .next()
            .is_some_and(|span| span.start <= t)
    }

    /// The first instant `>= t` inside working hours: `t` itself during working time, otherwise
    /// the start of the next block (Friday 18:00 → Monday 09:00, 12:30 → 13:00).
    pub fn next_working_instant(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        self.spans_after(t)
            .next()
            .map_or(DateTime::<Utc>::MAX_UTC, |span| span.start.max(t))
    }

    /// The earliest instant `u >= t` such that `working_time_between(t, u) == d`.
    ///
    /// - The clock starts at `t`, or at the next working instant if `t` is outside working time
    ///   (Friday 18:00 + 1 h → Monday 10:00).
    /// - A result that falls exactly on a block end stays there: Friday 16:00 + 2 h is Friday
    ///   18:00, not Monday 09:00, and 11:00 + 1 h is 12:00, not 13:00.
    /// - `d == 0` returns `t` unchanged (no normalisation; use [`Self::next_working_instant`]
    ///   for that), so that the result is a pure function of the working time elapsed.
    /// - A negative `d` counts backwards, as [`Self::sub_working_time`] with `-d`.
    ///
    /// Exact to the nanosecond.
    pub fn add_working_time(&self, t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
        if d < TimeDelta::zero() {
            return self.sub_working_time(t, -d);
        }
        if d.is_zero() {
            return t;
        }
        if d > MAX_WORKING_TIME {
            return DateTime::<Utc>::MAX_UTC;
        }
        let mut remaining = d;
        for day in self.working_days_after(t) {
            if day.is_ordinary() && day.start >= t && remaining > self.working_hours_per_day {
                remaining -= self.working_hours_per_day;
                continue;
            }
            for span in self.spans_on(day).filter(|span| span.end > t) {
                let from = span.start.max(t);
                let available = span.end - from;
                if remaining <= available {
                    return from + remaining;
                }
                remaining -= available;
            }
        }
        DateTime::<Utc>::MAX_UTC
    }

    /// `t` plus `hours` working hours. See [`Self::add_working_time`].
    pub fn add_working_hours(&self, t: DateTime<Utc>, hours: u32) -> DateTime<Utc> {
        self.add_working_time(t, TimeDelta::hours(i64::from(hours)))
    }

    /// `t` plus `days` working days, where one working day is
    /// [`working_hours_per_day`](Self::working_hours_per_day) of working time. So with 8-hour
    /// days, Friday 16:00 + 1 working day is Monday 16:00, and a start at Friday 18:00 (or
    /// any time on the weekend) gives Monday 18:00. See [`Self::add_working_time`].
    pub fn add_working_days(&self, t: DateTime<Utc>, days: u32) -> DateTime<Utc> {
        let d = i32::try_from(days)
            .ok()
            .and_then(|days| self.working_hours_per_day.checked_mul(days))
            .unwrap_or(TimeDelta::MAX);
        self.add_working_time(t, d)
    }

    /// The latest instant `u <= t` such that `working_time_between(u, t) == d`: the mirror image
    /// of [`Self::add_working_time`].
    ///
    /// - If `t` is outside working time the clock runs back from the end of the previous block
    ///   (Monday 09:00 − 2 h → Friday 16:00).
    /// - A result that falls exactly on a block start stays there: Monday 11:00 − 2 h is
    ///   Monday 09:00, not Friday 18:00.
    /// - `d == 0` returns `t`; a negative `d` counts forwards.
    ///
    /// Typical use: "due soon" is 2 working hours before the deadline
    /// ([`Self::due_soon_at`]).
    pub fn sub_working_time(&self, t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
        if d < TimeDelta::zero() {
            return self.add_working_time(t, -d);
        }
        if d.is_zero() {
            return t;
        }
        if d > MAX_WORKING_TIME {
            return DateTime::<Utc>::MIN_UTC;
        }
        let mut remaining = d;
        for day in self.working_days_before(t) {
            if day.is_ordinary() && day.end <= t && remaining > self.working_hours_per_day {
                remaining -= self.working_hours_per_day;
                continue;
            }
            for span in self.spans_on(day).rev().filter(|span| span.start < t) {
                let to = span.end.min(t);
                let available = to - span.start;
                if remaining <= available {
                    return to - remaining;
                }
                remaining -= available;
            }
        }
        DateTime::<Utc>::MIN_UTC
    }

    /// The instant at which a task with this deadline becomes "due soon":
    /// [`due_soon_before`](Self::due_soon_before) of working time before it.
    pub fn due_soon_at(&self, deadline: DateTime<Utc>) -> DateTime<Utc> {
        self.sub_working_time(deadline, self.due_soon_before)
    }

    /// Working time elapsed between `a` and `b`; zero if `b <= a`.
    ///
    /// For every `t` and `d >= 0`: `working_time_between(t, add_working_time(t, d)) == d`.
    pub fn working_time_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> TimeDelta {
        let mut total = TimeDelta::zero();
        if b <= a {
            return total;
        }
        for day in self.working_days_after(a) {
            if day.start >= b {
                break;
            }
            if day.is_ordinary() && day.start >= a && day.end <= b {
                total += self.working_hours_per_day;
                continue;
            }
            for span in self.spans_on(day).filter(|span| span.end > a) {
                if span.start >= b {
                    return total;
                }
                total += span.end.min(b) - span.start.max(a);
            }
        }
        total
    }

    /// Working days from the local date of `t` on, in increasing order.
    fn working_days_after(&self, t: DateTime<Utc>) -> impl Iterator<Item = Day> + '_ {
        // Start one local day early: in a zone whose clocks jump at midnight, a block near the
        // end of the previous day can map to an instant after `t`'s local midnight.
        let first = self.local_date(t);
        let first = first.pred_opt().unwrap_or(first);
        let mut midnights = Midnights::default();
        iter::successors(Some(first), |date| date.succ_opt())
            .take(MAX_WALK_DAYS)
            .filter(|date| self.is_working_day(*date))
            .filter_map(move |date| midnights.day(self, date))
    }

    /// Working days from the local date of `t` back, in decreasing order.
    fn working_days_before(&self, t: DateTime<Utc>) -> impl Iterator<Item = Day> + '_ {
        let first = self.local_date(t);
        let first = first.succ_opt().unwrap_or(first);
        let mut midnights = Midnights::default();
        iter::successors(Some(first), |date| date.pred_opt())
            .take(MAX_WALK_DAYS)
            .filter(|date| self.is_working_day(*date))
            .filter_map(move |date| midnights.day(self, date))
    }

    /// Working-time spans that end after `t`, in increasing order.
    fn spans_after(&self, t: DateTime<Utc>) -> impl Iterator<Item = Span> + '_ {
        self.working_days_after(t)
            .flat_map(move |day| self.spans_on(day))
            .skip_while(move |span| span.end <= t)
    }

    /// The working-time spans of one working day, one per block.
    fn spans_on(&self, day: Day) -> impl DoubleEndedIterator<Item = Span> + '_ {
        // On an ordinary 24-hour day the offset is constant, so every block is plain arithmetic
        // from midnight; only the rare day with a clock change needs each time converted.
        let ordinary = day.is_ordinary();
        self.working_hours.iter().filter_map(move |block| {
            let (start, end) = if ordinary {
                (
                    day.start + (block.start - NaiveTime::MIN),
                    day.start + (block.end - NaiveTime::MIN),
                )
            } else {
                (
                    self.instant(day.date, block.start)?,
                    self.instant(day.date, block.end)?,
                )
            };
            // Empty only if a daylight-saving jump swallows the whole block.
            (start < end).then_some(Span { start, end })
        })
    }

    fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.time_zone).date_naive()
    }

    /// The instant at which local clocks show `time` on `date`.
    ///
    /// When clocks go back and the time occurs twice, the first occurrence. When clocks go
    /// forward and the time does not exist, it is read with the offset in force before the jump,
    /// which lands as far after the jump as the time is after the start of the gap (02:30 on
    /// the spring-forward day in Europe/Berlin is 03:30 CEST). Asia/Shanghai has had neither
    /// since 1991; this only matters for other configured zones.
    fn instant(&self, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
        let local = date.and_time(time);
        match self.time_zone.from_local_datetime(&local) {
            MappedLocalTime::Single(t) | MappedLocalTime::Ambiguous(t, _) => Some(t.to_utc()),
            MappedLocalTime::None => {
                let before_gap = local.checked_sub_signed(TimeDelta::days(1))?;
                let offset = self
                    .time_zone
                    .offset_from_local_datetime(&before_gap)
                    .earliest()?
                    .fix();
                offset
                    .from_local_datetime(&local)
                    .single()
                    .map(|t| t.to_utc())
            }
        }
    }
}
