//! Replays the regression corpus of every fuzz target (`fuzz/corpus/<target>/*`) through the
//! target's body on stable, so CI catches a parser that panics on an input fuzzing once found
//! or that seeds it. Every target must have a corpus.

use std::panic::{AssertUnwindSafe, catch_unwind};

use tongban_fuzzing::{TARGETS, corpus_dir};

#[test]
fn every_corpus_input_is_handled_without_a_panic() -> Result<(), Box<dyn std::error::Error>> {
    let mut failures = Vec::new();
    for (name, body) in TARGETS {
        let dir = corpus_dir().join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        inputs.sort();
        assert!(
            !inputs.is_empty(),
            "{name}: empty corpus in {}",
            dir.display()
        );
        for path in inputs {
            let data = std::fs::read(&path)?;
            if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "panicked on {failures:#?}");
    Ok(())
}

/// Inputs the fuzzers found (or that reasoning did) that once panicked or overflowed the
/// stack, kept here too so that they run even if the corpus is pruned.
#[test]
#[allow(clippy::expect_used)]
fn found_inputs_are_refused_cleanly() {
    let deep_not = "!".repeat(100_000) + "pledge_accepted";
    let deep_parens = "(".repeat(100_000) + "pledge_accepted" + &")".repeat(100_000);
    let long_and = vec!["pledge_accepted"; 50_000].join(" && ");
    let departments =
        tongban_matter::Departments::load(tongban_fuzzing::deploy_dir().join("departments.toml"))
            .expect("deploy/departments.toml loads");
    let matters =
        tongban_matter::load_dir(tongban_fuzzing::deploy_dir().join("matters"), &departments)
            .expect("deploy/matters loads");
    for (source, why) in [
        (&deep_not, "longer than"),
        (
            &("(".repeat(40) + "pledge_accepted" + &")".repeat(40)),
            "nested deeper",
        ),
        (&deep_parens, "longer than"),
        (&long_and, "longer than"),
        (&("!".repeat(33) + "pledge_accepted"), "nested deeper"),
    ] {
        let err = tongban_matter::Condition::parse(source, &matters[0].form)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(why), "{why}: {err}");
    }
    assert!(
        tongban_matter::Condition::parse(&("!".repeat(32) + "pledge_accepted"), &matters[0].form)
            .is_ok()
    );
    for source in [deep_not, deep_parens, long_and] {
        tongban_fuzzing::condition(source.as_bytes());
        // The same condition inside a definition, where a published file carries it.
        let definition = std::fs::read_to_string(
            tongban_fuzzing::deploy_dir().join("matters/env.eia.report_form.v1.toml"),
        )
        .unwrap_or_default()
        .replace("\"form.uses_water_intake\"", &format!("\"{source}\""));
        tongban_fuzzing::definition(definition.as_bytes());
    }
}

/// The envelope seeds (`fuzz/corpus/envelope/*.bin`): one encoded envelope per event kind a
/// consumer handles, as the services publish them. Fails when a committed seed differs from
/// what the events encode to now; `UPDATE_FUZZ_SEEDS=1 cargo test -p tongban-fuzzing
/// envelope_seeds` rewrites them after the events change.
#[test]
fn envelope_seeds_are_current() -> Result<(), Box<dyn std::error::Error>> {
    use prost::Message as _;
    use tongban_proto::{
        common,
        events::{self, Envelope, envelope::Payload},
    };
    let form = prost_types::Struct {
        fields: [
            ("project_name", "年产5万立方米竹木复合板材生产线建设项目"),
            ("site_region", "350724101"),
            ("eia_category", "report_form"),
        ]
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue(v.into())),
                },
            )
        })
        .collect(),
    };
    let at = Some(prost_types::Timestamp {
        seconds: 1_796_000_000,
        nanos: 0,
    });
    let envelope = |name: &str, payload: Payload| Envelope {
        event_id: format!("0195f000-0000-7000-8000-0000000000{:02}", name.len()),
        r#type: name.to_string(),
        occurred_at: at,
        application_id: "0195f000-0000-7000-8000-000000000001".into(),
        producer: "intake".into(),
        payload: Some(payload),
        ..Default::default()
    };
    let seeds = [
        envelope(
            "application.submitted",
            Payload::ApplicationSubmitted(events::ApplicationSubmitted {
                application: Some(events::ApplicationSnapshot {
                    application_id: "0195f000-0000-7000-8000-000000000001".into(),
                    matter_code: "env.eia.report_form".into(),
                    applicant: Some(common::Applicant {
                        credit_code: "91350100M000100Y43".into(),
                        name: "松溪县绿源竹木制品有限公司".into(),
                        region_code: "350724100".into(),
                        contact: Some(common::Contact {
                            email: "linxiao@example.com".into(),
                            locale: "zh-CN".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    form: Some(form),
                    submit_time: at,
                    ..Default::default()
                }),
            }),
        ),
        envelope(
            "application.approved",
            Payload::ApplicationApproved(events::ApplicationApproved {
                decision_number: "松环审〔2026〕99号".into(),
                decide_time: at,
                department: "eco_env".into(),
                ..Default::default()
            }),
        ),
        envelope(
            "application.rejected",
            Payload::ApplicationRejected(events::ApplicationRejected {
                reason: "材料不全".into(),
                decide_time: at,
                ..Default::default()
            }),
        ),
    ];
    let dir = corpus_dir().join("envelope");
    let update = std::env::var_os("UPDATE_FUZZ_SEEDS").is_some();
    if update {
        std::fs::create_dir_all(&dir)?;
    }
    for e in seeds {
        let path = dir.join(format!("{}.bin", e.r#type));
        let bytes = e.encode_to_vec();
        if update {
            std::fs::write(&path, &bytes)?;
        } else {
            let held = std::fs::read(&path).map_err(|err| {
                format!("{}: {err} (UPDATE_FUZZ_SEEDS=1 writes it)", path.display())
            })?;
            assert!(
                held == bytes,
                "{} is stale: run UPDATE_FUZZ_SEEDS=1 cargo test -p tongban-fuzzing envelope_seeds",
                path.display()
            );
        }
    }
    Ok(())
}
