//! When things go out: quiet hours for reminder e-mails, and the retry schedule of e-mails and
//! webhook calls.
//!
//! Policy (documented in the crate header too):
//! - In-app notifications, reminders included, are stored and streamed at once: the inbox is
//!   pulled by the reader, so it disturbs no one at night.
//! - Reminder e-mails (`task.due_soon`, `task.overdue`) created outside working time wait until
//!   the calendar's next working instant (the `send_after_ms` column). Other e-mails (受理,
//!   approved, rejected, …) go at once: the applicant is waiting for them.
//! - A failed e-mail or webhook call is tried again on a capped, jittered exponential schedule
//!   ([`RetryPolicy`]) kept in its row, so a restart keeps it. The retries stop when the
//!   failures have lasted the policy's window (hours, so that an outage of the mail server or
//!   of the receiver is outlasted) or reached its attempt cap; the row is then dead, listed and
//!   replayed by an admin (`ListFailedDeliveries`, `ReplayFailedDeliveries`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tongban_calendar::Calendar;
use tongban_types::Backoff;

/// How failed e-mails and webhook calls are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure; it doubles (with jitter) per further failure.
    pub base: Duration,
    /// No delay between two attempts is longer.
    pub cap: Duration,
    /// Give up after this many attempts, whatever the window.
    pub max_attempts: u32,
    /// Give up once the failures have lasted this long (from the first failed attempt).
    pub window: Duration,
}

/// Default of [`RetryPolicy::window`]: a day, longer than any mail-server or receiver outage
/// that an operator does not notice.
pub const DEFAULT_RETRY_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Default of [`RetryPolicy::cap`].
pub const DEFAULT_RETRY_MAX_DELAY: Duration = Duration::from_secs(3600);
/// Default of [`RetryPolicy::max_attempts`]: enough that the window, not the count, ends the
/// retries under the default delays (about 35 attempts fill a day).
pub const DEFAULT_RETRY_MAX_ATTEMPTS: u32 = 100;

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            cap: DEFAULT_RETRY_MAX_DELAY,
            max_attempts: DEFAULT_RETRY_MAX_ATTEMPTS,
            window: DEFAULT_RETRY_WINDOW,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this instant (ms since the epoch).
    RetryAt(i64),
    /// Stop: the row is dead until replayed.
    GiveUp,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

impl RetryPolicy {
    /// After failed attempt number `attempts` (1-based, counted since the row was queued or
    /// replayed) at `now_ms`, when the first failure of this run was at `since_ms`. The last
    /// retry is pulled in to the window's end, so an outage just shorter than the window is
    /// still outlasted.
    pub fn after_failure(&self, attempts: i64, since_ms: i64, now_ms: i64) -> AfterFailure {
        let end = since_ms.saturating_add(ms(self.window));
        if attempts >= i64::from(self.max_attempts) || now_ms >= end {
            return AfterFailure::GiveUp;
        }
        let delay = Backoff::doubling(self.base, self.cap)
            .delay(u32::try_from(attempts).unwrap_or(u32::MAX));
        AfterFailure::RetryAt(now_ms.saturating_add(ms(delay)).min(end))
    }
}

/// The earliest instant an e-mail created at `now` may be sent.
pub fn email_send_after(reminder: bool, now: DateTime<Utc>, calendar: &Calendar) -> DateTime<Utc> {
    if reminder && !calendar.is_working_time(now) {
        calendar.next_working_instant(now)
    } else {
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const HOUR_MS: i64 = 3_600_000;

    #[test]
    fn retries_fill_the_window_with_capped_delays_then_give_up() {
        let p = RetryPolicy::default();
        let start = 1_700_000_000_000;
        let (mut now, mut attempts, mut last_gap) = (start, 1, 0);
        while let AfterFailure::RetryAt(at) = p.after_failure(attempts, start, now) {
            assert!(at > now, "the next attempt is later");
            last_gap = at - now;
            assert!(last_gap <= ms(p.cap), "capped: {last_gap} ms");
            now = at;
            attempts += 1;
        }
        // The last attempt is at the window's end (24 h after the first failure), not before.
        assert_eq!(now, start + 24 * HOUR_MS);
        assert!(last_gap > 0);
        assert!(attempts < i64::from(p.max_attempts), "{attempts} attempts");
        assert!(
            attempts > 20,
            "hours of retries take many attempts: {attempts}"
        );
    }

    #[test]
    fn the_attempt_cap_ends_retries_early() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        assert!(matches!(
            p.after_failure(2, 0, 10),
            AfterFailure::RetryAt(_)
        ));
        assert_eq!(p.after_failure(3, 0, 10), AfterFailure::GiveUp);
        let short = RetryPolicy {
            window: Duration::from_secs(60),
            ..RetryPolicy::default()
        };
        assert_eq!(short.after_failure(1, 0, 60_000), AfterFailure::GiveUp);
        assert_eq!(
            short.after_failure(1, 0, 59_000),
            AfterFailure::RetryAt(60_000),
            "pulled in to the window's end"
        );
    }

    fn shanghai(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn calendar() -> Calendar {
        // A synthetic calendar: weekdays 09:00–12:00 and 13:00–18:00 Shanghai, no holidays.
        Calendar::standard()
    }

    #[test]
    fn reminder_at_night_waits_for_the_morning() {
        let friday_night = shanghai(2026, 12, 4, 22, 30);
        assert_eq!(
            email_send_after(true, friday_night, &calendar()),
            shanghai(2026, 12, 7, 9, 0),
            "Friday 22:30 → Monday 09:00"
        );
        let lunch = shanghai(2026, 12, 2, 12, 15);
        assert_eq!(
            email_send_after(true, lunch, &calendar()),
            shanghai(2026, 12, 2, 13, 0)
        );
    }

    #[test]
    fn reminder_in_office_hours_and_other_mail_go_now() {
        let tuesday = shanghai(2026, 12, 1, 10, 0);
        assert_eq!(email_send_after(true, tuesday, &calendar()), tuesday);
        let sunday = shanghai(2026, 12, 6, 3, 0);
        assert_eq!(email_send_after(false, sunday, &calendar()), sunday);
    }

    #[test]
    fn holidays_from_a_loaded_calendar_count_as_quiet() -> anyhow::Result<()> {
        let cal = Calendar::load_dir(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/calendar"),
        )?;
        // 1 October is National Day: not working time, so the e-mail waits.
        let national_day = shanghai(2026, 10, 1, 10, 0);
        let after = email_send_after(true, national_day, &cal);
        assert!(after > national_day);
        assert!(cal.is_working_time(after));
        Ok(())
    }
}
