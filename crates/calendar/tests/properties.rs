//! Property-style checks over many start times and durations (deterministic grids, no
//! randomness), against the definitions in the crate docs and a minute-by-minute oracle.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::{minutes, seconds, sh, show, synthetic};

/// Start times every 37 minutes (so they hit every minute of the hour eventually, including
/// block edges) from the Friday before the holiday to the Monday after the make-up day.
fn starts() -> impl Iterator<Item = DateTime<Utc>> {
    let first = sh("2030-06-06 23:00");
    let last = sh("2030-06-18 01:00");
    (0..)
        .map(move |i| first + minutes(37 * i))
        .take_while(move |t| *t <= last)
}

/// Durations from zero to about three working days, in uneven steps, plus a few seconds.
fn durations() -> impl Iterator<Item = TimeDelta> {
    (0..32).map(|i| minutes(47 * i) + seconds(i % 3))
}

#[test]
fn between_inverts_add_and_add_is_the_earliest_such_instant() {
    let cal = synthetic();
    for t in starts() {
        for d in durations() {
            let due = cal.add_working_time(t, d);
            let at = || format!("{} + {d} = {}", show(t), show(due));
            assert!(due >= t, "{}", at());
            assert_eq!(cal.working_time_between(t, due), d, "{}", at());
            if d > TimeDelta::zero() {
                assert!(
                    cal.working_time_between(t, due - seconds(1)) < d,
                    "not the earliest: {}",
                    at()
                );
            }
        }
    }
}

#[test]
fn sub_inverts_add() {
    let cal = synthetic();
    for t in starts() {
        for d in durations().filter(|d| *d > TimeDelta::zero()) {
            let due = cal.add_working_time(t, d);
            let back = cal.sub_working_time(due, d);
            let at = || format!("{} + {d} = {}, back {}", show(t), show(due), show(back));
            assert_eq!(cal.working_time_between(back, due), d, "{}", at());
            // The latest instant with no working time after t: t if working, else the next start.
            assert_eq!(back, cal.next_working_instant(t), "{}", at());
            // And the other way round: sub then add.
            let earlier = cal.sub_working_time(t, d);
            assert_eq!(cal.working_time_between(earlier, t), d, "{}", at());
            assert!(
                cal.working_time_between(earlier + seconds(1), t) < d,
                "sub is not the latest: {}",
                at()
            );
        }
    }
}

#[test]
fn add_is_monotonic_and_composes() {
    let cal = synthetic();
    for t in starts() {
        let mut previous = t;
        for d in durations() {
            let due = cal.add_working_time(t, d);
            assert!(due >= previous, "{} + {d} went backwards", show(t));
            previous = due;
            let split = d / 3;
            assert_eq!(
                cal.add_working_time(cal.add_working_time(t, split), d - split),
                due,
                "{} + {split} + {} != + {d}",
                show(t),
                d - split
            );
        }
    }
}

#[test]
fn between_is_additive() {
    let cal = synthetic();
    let first = sh("2030-06-06 23:00");
    let last = sh("2030-06-18 01:00");
    let whole = cal.working_time_between(first, last);
    assert_eq!(whole, TimeDelta::hours(8 * 5), "Fri, Mon, Fri, Sat, Mon");
    for t in starts() {
        let parts = cal.working_time_between(first, t) + cal.working_time_between(t, last);
        assert_eq!(whole, parts, "split at {}", show(t));
    }
}

/// Walks minute by minute with `is_working_time` (slow, obviously right): when the minute
/// `[t, t + 1 min)` is the k-th working minute after `origin`, then `origin` + k min of working
/// time must end exactly at `t + 1 min`, and k min back from there must be the first one.
#[test]
fn agrees_with_a_minute_by_minute_oracle() {
    let cal = synthetic();
    let origin = sh("2030-06-07 08:00");
    let horizon = sh("2030-06-18 20:00");
    let first_working_minute = cal.next_working_instant(origin);
    let mut t = origin;
    let mut worked = TimeDelta::zero(); // working minutes in [origin, t)
    while t < horizon {
        assert_eq!(
            cal.working_time_between(origin, t),
            worked,
            "up to {}",
            show(t)
        );
        if cal.is_working_time(t) {
            worked += minutes(1);
            let end = t + minutes(1);
            let due = cal.add_working_time(origin, worked);
            assert_eq!(show(due), show(end), "{} + {worked}", show(origin));
            let back = cal.sub_working_time(end, worked);
            assert_eq!(
                show(back),
                show(first_working_minute),
                "{} - {worked}",
                show(end)
            );
        }
        t += minutes(1);
    }
    assert_eq!(
        worked,
        TimeDelta::hours(8 * 6),
        "Fri, Mon, Fri, Sat, Mon, Tue"
    );
}
