//! How long the event envelope and the form conversions take, on an `application.submitted`
//! carrying the snapshot of the shipped example (deploy/examples/env.eia.report_form.json).
//! Every event goes through the outbox and the bus as prost bytes: encoded once by the
//! producer, decoded by each consuming queue.
//!
//! - `envelope/encode`: `Envelope::encode_to_vec` (what the outbox stores and the relay
//!   publishes); `envelope/decode`: `Envelope::decode` of those bytes (every consumer).
//! - `form/struct_to_json`: the snapshot's `google.protobuf.Struct` form to JSON, which intake
//!   (validation), approval (conditions) and dispatch (the canonical document) each do per
//!   application; `form/json_to_struct`: the other way, as clients build requests.
//!
//! `cargo bench -p tongban-proto --bench envelope`

use std::hint::black_box;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use serde_json::{Map, Value};
use tongban_proto::{
    common::{Applicant, Commitment, Contact, CreditClass, Material, OwedMaterial, Pledge},
    events::{ApplicationSnapshot, ApplicationSubmitted, Envelope, envelope::Payload},
    structs::{json_to_struct, struct_to_json},
    time::ts,
};

fn example() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/examples/env.eia.report_form.json");
    let text = std::fs::read_to_string(&path).expect("deploy/examples/env.eia.report_form.json");
    serde_json::from_str(&text).expect("the example is JSON")
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

fn at(rfc3339: &str) -> prost_types::Timestamp {
    let t: DateTime<Utc> = rfc3339.parse().expect("valid instant");
    ts(t)
}

/// The envelope intake publishes for the example, as it builds it (normalised credit code,
/// form as a Struct, owed materials from the commitments).
fn submitted(example: &Value, form: &Map<String, Value>) -> Envelope {
    let applicant = &example["applicant"];
    let contact = &applicant["contact"];
    let materials = example["materials"]
        .as_array()
        .expect("the example has materials")
        .iter()
        .map(|m| Material {
            kind: text(m, "kind"),
            name: text(m, "name"),
            sha256: text(m, "sha256"),
            size_bytes: text(m, "sizeBytes")
                .parse()
                .expect("sizeBytes is an int64 as a string"),
            uri: text(m, "uri"),
        })
        .collect();
    let commitments: Vec<Commitment> = example["commitments"]
        .as_array()
        .expect("the example has commitments")
        .iter()
        .map(|c| Commitment {
            material_kind: text(c, "materialKind"),
            due_within_days: c["dueWithinDays"]
                .as_u64()
                .and_then(|d| u32::try_from(d).ok())
                .expect("dueWithinDays is a u32"),
            statement: text(c, "statement"),
        })
        .collect();
    let owed_materials = commitments
        .iter()
        .map(|c| OwedMaterial {
            material_kind: c.material_kind.clone(),
            due_time: Some(at("2026-02-04T09:00:00Z")),
            fulfilled_time: None,
            statement: c.statement.clone(),
        })
        .collect();
    let application = ApplicationSnapshot {
        application_id: "0194f3a2-7c1e-7a30-9b1d-2f6c8e4d5a01".into(),
        request_id: text(example, "requestId"),
        matter_code: text(example, "matterCode"),
        matter_version: 1,
        applicant: Some(Applicant {
            credit_code: text(applicant, "creditCode"),
            name: text(applicant, "name"),
            region_code: text(applicant, "regionCode"),
            contact: Some(Contact {
                name: text(contact, "name"),
                phone: text(contact, "phone"),
                email: text(contact, "email"),
                locale: text(contact, "locale"),
            }),
            credit_class: CreditClass::B as i32,
            // As intake fills them from the credit registry's answer.
            credit_source: "file:nanping.toml".into(),
            credit_as_of: Some(at("2026-01-01T00:00:00Z")),
            credit_checked_time: Some(at("2026-01-14T16:30:00Z")),
        }),
        form: Some(json_to_struct(form)),
        materials,
        commitments,
        owed_materials,
        pledge: Some(Pledge::default()),
        submit_time: Some(at("2026-01-14T16:30:00Z")),
    };
    Envelope {
        event_id: "0194f3a2-7c1f-7a30-9b1d-2f6c8e4d5a02".into(),
        r#type: "application.submitted".into(),
        occurred_at: Some(at("2026-01-14T16:30:00Z")),
        application_id: application.application_id.clone(),
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        producer: "intake".into(),
        payload: Some(Payload::ApplicationSubmitted(ApplicationSubmitted {
            application: Some(application),
        })),
    }
}

fn envelope(c: &mut Criterion) {
    let example = example();
    let form = example["form"]
        .as_object()
        .expect("the example has a form object")
        .clone();
    let envelope = submitted(&example, &form);
    let bytes = envelope.encode_to_vec();
    let decoded = Envelope::decode(bytes.as_slice()).expect("round trip");
    assert_eq!(decoded, envelope, "decode gives back what was encoded");

    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("encode", |b| {
        b.iter(|| black_box(&envelope).encode_to_vec());
    });
    group.bench_function("decode", |b| {
        b.iter(|| Envelope::decode(black_box(bytes.as_slice())));
    });
    group.finish();

    let as_struct = json_to_struct(&form);
    assert_eq!(
        struct_to_json(Some(&as_struct)),
        form,
        "the form round-trips"
    );
    let mut group = c.benchmark_group("form");
    group.bench_function("struct_to_json", |b| {
        b.iter(|| struct_to_json(Some(black_box(&as_struct))));
    });
    group.bench_function("json_to_struct", |b| {
        b.iter(|| json_to_struct(black_box(&form)));
    });
    group.finish();
}

criterion_group!(benches, envelope);
criterion_main!(benches);
