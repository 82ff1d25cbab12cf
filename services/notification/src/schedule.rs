//! When things go out: quiet hours for reminder e-mails, backoff for webhook retries.
//!
//! Policy (documented in the crate header too):
//! - In-app notifications, reminders included, are stored and streamed at once: the inbox is
//!   pulled by the reader, so it disturbs no one at night.
//! - Reminder e-mails (`task.due_soon`, `task.overdue`) created outside working time wait until
//!   the calendar's next working instant (the `send_after_ms` column). Other e-mails (受理,
//!   approved, rejected, …) go at once: the applicant is waiting for them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tongban_calendar::Calendar;

/// The earliest instant an e-mail created at `now` may be sent.
pub fn email_send_after(reminder: bool, now: DateTime<Utc>, calendar: &Calendar) -> DateTime<Utc> {
    if reminder && !calendar.is_working_time(now) {
        calendar.next_working_instant(now)
    } else {
        now
    }
}

/// Delay before retry number `attempts` (1 = after the first failure): `base · 2^(attempts-1)`,
/// capped at `cap`, minus up to 20 % jitter so that many failed deliveries do not retry in
/// lockstep.
pub fn retry_delay(base: Duration, cap: Duration, attempts: u32, jitter: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let raw = base.saturating_mul(1u32 << exp).min(cap);
    raw.mul_f64(1.0 - 0.2 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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

    #[test]
    fn retry_delay_grows_and_is_capped() {
        let base = Duration::from_secs(2);
        let cap = Duration::from_secs(60);
        assert_eq!(retry_delay(base, cap, 1, 0.0), Duration::from_secs(2));
        assert_eq!(retry_delay(base, cap, 3, 0.0), Duration::from_secs(8));
        assert_eq!(retry_delay(base, cap, 30, 0.0), cap);
        assert_eq!(retry_delay(base, cap, 1, 1.0), Duration::from_millis(1600));
    }
}
