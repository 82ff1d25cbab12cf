//! How long the unified social credit code check takes: intake parses the applicant's code on
//! every submission and the credit registry on every lookup.
//!
//! - `valid/canonical`: an upper-case valid code (the shipped example applicant's).
//! - `valid/normalised`: the same code lower-case with surrounding spaces, so trimming and
//!   upper-casing are timed too.
//! - `invalid/check`: 18 allowed characters with the wrong check character, the slowest way to
//!   fail (every character is weighed before the check is compared).
//! - `invalid/character`: a forbidden letter (`I`) early on, which fails fast.
//! - `invalid/length`: 17 characters.
//!
//! `cargo bench -p tongban-types --bench credit_code`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tongban_types::CreditCode;

/// The applicant of deploy/examples/env.eia.report_form.json.
const VALID: &str = "91350100M000100Y43";

fn credit_code(c: &mut Criterion) {
    let cases_ok = [
        ("canonical", VALID.to_owned()),
        ("normalised", format!("  {}  ", VALID.to_ascii_lowercase())),
    ];
    let cases_err = [
        // Same 17 characters, check character changed from 3 to 4.
        ("check", "91350100M000100Y44"),
        ("character", "91I50100M000100Y43"),
        ("length", "91350100M000100Y4"),
    ];

    let mut group = c.benchmark_group("credit_code");
    for (name, input) in &cases_ok {
        // A bench that times the error path by mistake would report nonsense.
        CreditCode::parse(input).expect("a valid credit code");
        group.bench_function(format!("valid/{name}"), |b| {
            b.iter(|| CreditCode::parse(black_box(input)));
        });
    }
    for (name, input) in cases_err {
        CreditCode::parse(input).expect_err("an invalid credit code");
        group.bench_function(format!("invalid/{name}"), |b| {
            b.iter(|| CreditCode::parse(black_box(input)));
        });
    }
    group.finish();
}

criterion_group!(benches, credit_code);
criterion_main!(benches);
