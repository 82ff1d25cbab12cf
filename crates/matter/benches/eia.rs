//! How long the per-application matter work takes on the shipped EIA definition
//! (deploy/matters/env.eia.report_form.v1.toml) and example (deploy/examples/):
//!
//! - `form_validate/example`: `FormSchema::validate` of the example's form, as intake does on
//!   every submission; `form_validate/four_violations` the same form broken four ways (missing
//!   text, pattern, enum, number), so the error path with its messages is timed too.
//! - `condition_eval/<source>`: each distinct condition the EIA workflow uses, parsed once and
//!   evaluated in the loop, for the example applicant (class B, no pledge).
//! - `condition_parse/<source>`: parsing the same conditions, which happens once per definition
//!   load, for scale.
//! - `plan/example`: `MatterDefinition::plan`, which approval runs when an application arrives:
//!   every condition plus department routing for the whole workflow.
//!
//! `cargo bench -p tongban-matter --bench eia`

use std::collections::BTreeSet;
use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use tongban_matter::{Condition, CreditClass, Departments, MatterDefinition};

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// The `form` object of the shipped example application.
fn example_form() -> Map<String, Value> {
    let path = deploy().join("examples/env.eia.report_form.json");
    let text = std::fs::read_to_string(&path).expect("deploy/examples/env.eia.report_form.json");
    let example: Value = serde_json::from_str(&text).expect("the example is JSON");
    match example.get("form") {
        Some(Value::Object(form)) => form.clone(),
        _ => panic!("{}: no `form` object", path.display()),
    }
}

fn load() -> (Departments, MatterDefinition) {
    let departments =
        Departments::load(deploy().join("departments.toml")).expect("deploy/departments.toml");
    let eia = MatterDefinition::load(
        deploy().join("matters/env.eia.report_form.v1.toml"),
        &departments,
    )
    .expect("the shipped EIA definition loads");
    (departments, eia)
}

/// Every `when` of the workflow (stages, tasks, next rules), each distinct source once.
fn conditions(def: &MatterDefinition) -> Vec<&Condition> {
    let mut seen = BTreeSet::new();
    def.stages
        .iter()
        .flat_map(|s| {
            s.when
                .iter()
                .chain(s.tasks.iter().filter_map(|t| t.when.as_ref()))
                .chain(s.next.iter().filter_map(|n| n.when.as_ref()))
        })
        .filter(|c| seen.insert(c.source().to_owned()))
        .collect()
}

fn form_validation(c: &mut Criterion) {
    let (_, eia) = load();
    let form = example_form();
    assert!(
        eia.form.validate(&form).is_empty(),
        "the example form is valid"
    );
    let mut broken = form.clone();
    broken.remove("project_name");
    broken.insert("industry_code".into(), json!("Z99"));
    broken.insert("eia_category".into(), json!("full_report"));
    broken.insert("total_investment_wan".into(), json!(-1));
    assert_eq!(eia.form.validate(&broken).len(), 4, "four violations");

    let mut group = c.benchmark_group("form_validate");
    group.bench_function("example", |b| {
        b.iter(|| eia.form.validate(black_box(&form)));
    });
    group.bench_function("four_violations", |b| {
        b.iter(|| eia.form.validate(black_box(&broken)));
    });
    group.finish();
}

fn condition_evaluation(c: &mut Criterion) {
    let (departments, eia) = load();
    let form = example_form();
    let region = "350724100";
    let ctx = eia.eval_context(&form, Some(CreditClass::B), region, false);
    let conditions = conditions(&eia);
    assert!(!conditions.is_empty(), "the EIA workflow has conditions");

    let mut group = c.benchmark_group("condition_eval");
    for cond in &conditions {
        let accepted = eia.pledge_applies(&ctx);
        group.bench_function(cond.source(), |b| {
            b.iter(|| cond.eval(black_box(&ctx), black_box(accepted)));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("condition_parse");
    for cond in &conditions {
        let source = cond.source();
        group.bench_function(source, |b| {
            b.iter(|| Condition::parse(black_box(source), &eia.form));
        });
    }
    group.finish();

    eia.plan(&ctx, &departments)
        .expect("the example plans on the shipped definition");
    c.bench_function("plan/example", |b| {
        b.iter(|| eia.plan(black_box(&ctx), &departments));
    });
}

criterion_group!(benches, form_validation, condition_evaluation);
criterion_main!(benches);
