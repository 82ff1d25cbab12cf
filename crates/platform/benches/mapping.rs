//! How long field mapping takes: each shipped platform's mapping (deploy/platforms/*.toml)
//! applied to the canonical document dispatch builds for the shipped example application
//! (deploy/examples/env.eia.report_form.json), for each event the platform subscribes to out of
//! `application.submitted` and `application.approved`. Dispatch runs this once per delivery.
//!
//! `mapping/<platform>/<event>`; `cargo bench -p tongban-platform --bench mapping`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tongban_platform::load_dir_with_env;

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// The canonical document (see the crate docs) for `event_type` about the example application,
/// shaped as `services/dispatch/src/canonical.rs` shapes it from the event snapshot.
fn canonical(example: &Value, event_type: &str) -> Value {
    let applicant = &example["applicant"];
    let materials: Vec<Value> = example["materials"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|m| {
                    // The API's JSON carries int64 as a string; the snapshot holds the number.
                    let size: i64 = m["sizeBytes"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .expect("sizeBytes is an int64 as a string");
                    json!({ "kind": m["kind"], "name": m["name"], "sha256": m["sha256"],
                            "size_bytes": size, "uri": m["uri"] })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut doc = json!({
        "event": { "id": "0194f3a2-9d00-7b11-8c2e-3a7d9f5e6b02", "type": event_type,
                   "occurred_at": "2026-01-19T17:10:02Z" },
        "application": {
            "id": "0194f3a2-7c1e-7a30-9b1d-2f6c8e4d5a01",
            "matter_code": example["matterCode"],
            "submit_time": "2026-01-14T16:30:00Z",
            "applicant": { "credit_code": applicant["creditCode"], "name": applicant["name"],
                           "region_code": applicant["regionCode"], "credit_class": "B" },
            "form": example["form"],
            "materials": materials,
        }
    });
    if event_type == "application.approved" {
        doc["approval"] = json!({ "decision_number": "松环审〔2026〕12号",
                                  "decide_time": "2026-01-19T17:10:00Z",
                                  "department": "eco_env", "on_pledge": false });
    }
    doc
}

fn mapping(c: &mut Criterion) {
    let path = deploy().join("examples/env.eia.report_form.json");
    let text = std::fs::read_to_string(&path).expect("deploy/examples/env.eia.report_form.json");
    let example: Value = serde_json::from_str(&text).expect("the example is JSON");
    let platforms =
        load_dir_with_env(deploy().join("platforms"), &|_| None).expect("deploy/platforms loads");

    let mut group = c.benchmark_group("mapping");
    let mut benched = 0;
    for event_type in ["application.submitted", "application.approved"] {
        let doc = canonical(&example, event_type);
        for p in platforms.iter().filter(|p| p.accepts(&doc)) {
            // A mapping that fails here would time the error path, not a delivery.
            p.mapping
                .apply(&doc, event_type)
                .unwrap_or_else(|e| panic!("{} maps {event_type}: {e}", p.id));
            group.bench_function(format!("{}/{event_type}", p.id), |b| {
                b.iter(|| p.mapping.apply(black_box(&doc), event_type));
            });
            benched += 1;
        }
    }
    group.finish();
    assert!(
        benched >= platforms.len(),
        "every platform takes one of the two events"
    );
}

criterion_group!(benches, mapping);
criterion_main!(benches);
