//! When things go out: quiet hours for reminder e-mails, backoff for webhook retries.
//!
//! Policy (documented in the crate header too):
//! - In-app notifications, reminders included, are stored and streamed at once: the inbox is
//!   pulled by the reader, so it disturbs no one at night.
//! - Reminder e-mails (`task.due_soon`, `task.overdue`) created outside working time wait until
//!   the calendar's next working instant (the `send_after_ms` column). Other e-mails (受理,
//!   approved, rejected, …) go at once: the applicant is waiting for them.

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
}
