//! How long deadline arithmetic takes on the shipped calendar (holidays and make-up days loaded).
//!
//! `cargo bench -p tongban-calendar`

use std::hint::black_box;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use tongban_calendar::Calendar;

fn deadline(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/calendar");
    let cal = Calendar::load_dir(dir).expect("deploy/calendar is valid");
    // Friday 2026-09-25 16:00 in Shanghai, just before Mid-Autumn and National Day.
    let start: DateTime<Utc> = "2026-09-25T08:00:00Z".parse().expect("valid instant");

    let mut group = c.benchmark_group("add_working_hours");
    for hours in [8, 1000] {
        group.bench_function(format!("{hours}h"), |b| {
            b.iter(|| cal.add_working_hours(black_box(start), black_box(hours)));
        });
    }
    group.finish();

    c.bench_function("working_time_between/1000h", |b| {
        let end = cal.add_working_hours(start, 1000);
        b.iter(|| cal.working_time_between(black_box(start), black_box(end)));
    });
}

criterion_group!(benches, deadline);
criterion_main!(benches);
