//! The bodies of the fuzz targets under `fuzz/` (cargo-fuzz, nightly), one plain function per
//! parser that takes outside input, so that each target is a one-liner and a normal stable test
//! (`tests/corpus.rs`) replays the regression corpus `fuzz/corpus/<target>/*` in CI.
//!
//! Every function takes arbitrary bytes and must not panic, whatever they are: an `Err` from
//! the parser is the expected answer to bad input. Where a parser accepts the input, the
//! function also uses the result the way Tongban does (evaluates a condition, plans a
//! definition, applies a mapping) and checks round trips that must hold.
//!
//! The reference data (departments, matters, platforms) is read once from `deploy/` of this
//! checkout.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use prost::Message as _;
use serde_json::{Map, Value};
use tongban_matter::{Condition, CreditClass, Departments, MatterDefinition};
use tongban_platform::PlatformConfig;
use tongban_proto::events::Envelope;
use tongban_types::CreditCode;

/// A target's body: arbitrary bytes in, no panic out.
pub type Body = fn(&[u8]);

/// Every target, by the name of its `fuzz/fuzz_targets/<name>.rs` and corpus directory.
pub const TARGETS: &[(&str, Body)] = &[
    ("credit_code", credit_code),
    ("form", form),
    ("condition", condition),
    ("platform_mapping", platform_mapping),
    ("platform_config", platform_config),
    ("definition", definition),
    ("envelope", envelope),
];

/// `deploy/` of this checkout.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// `fuzz/corpus/` of this checkout.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

struct Reference {
    departments: Departments,
    matters: Vec<MatterDefinition>,
    platforms: Vec<PlatformConfig>,
}

/// The deploy directory's departments, matters and platforms. A checkout whose reference data
/// does not load cannot be fuzzed meaningfully, so that is the one panic here.
#[allow(clippy::panic)]
fn reference() -> &'static Reference {
    static R: OnceLock<Reference> = OnceLock::new();
    R.get_or_init(|| {
        let deploy = deploy_dir();
        let departments = Departments::load(deploy.join("departments.toml"))
            .unwrap_or_else(|e| panic!("deploy/departments.toml: {e}"));
        let matters = tongban_matter::load_dir(deploy.join("matters"), &departments)
            .unwrap_or_else(|e| panic!("deploy/matters: {e}"));
        let platforms =
            tongban_platform::config::load_dir_with_env(deploy.join("platforms"), &|_: &str| None)
                .unwrap_or_else(|e| panic!("deploy/platforms: {e}"));
        Reference {
            departments,
            matters,
            platforms,
        }
    })
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

fn json_object(data: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(data).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// A unified social credit code (统一社会信用代码), as intake and the credit registry take it.
/// An accepted code prints as itself and parses again to the same code.
pub fn credit_code(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(code) = CreditCode::parse(s) {
        let again = CreditCode::parse(&code.to_string());
        assert_eq!(again.as_ref().ok(), Some(&code), "round trip of {s:?}");
        let _ = code.division();
    }
}

/// An application form (JSON) validated against every matter's form schema, as intake does;
/// then the site region and the plan, as approval computes them from an accepted form.
pub fn form(data: &[u8]) {
    let Some(form) = json_object(data) else {
        return;
    };
    let r = reference();
    for m in &r.matters {
        let violations = m.form.validate(&form);
        for v in &violations {
            assert!(v.field.starts_with("form."), "{v:?}");
        }
        if violations.is_empty() {
            for class in [None, Some(CreditClass::A), Some(CreditClass::D)] {
                let ctx = m.eval_context(&form, class, "350784", true);
                let _ = m.plan(&ctx, &r.departments);
            }
        }
    }
}

/// A `when` condition, parsed against every matter's form and evaluated on an empty form and
/// on each matter's own example-like facts.
pub fn condition(data: &[u8]) {
    let Some(source) = text(data) else { return };
    let empty = Map::new();
    for m in &reference().matters {
        if let Ok(c) = Condition::parse(source, &m.form) {
            assert_eq!(c.source(), source);
            for class in [None, Some(CreditClass::B), Some(CreditClass::D)] {
                let ctx = m.eval_context(&empty, class, "350784", false);
                let _ = c.eval(&ctx, false);
                let _ = c.eval(&ctx, true);
            }
            let _ = c.uses_pledge_accepted();
        }
    }
}

/// A canonical document (JSON, as dispatch builds it from an event) mapped to every platform's
/// payload for every event type it receives.
pub fn platform_mapping(data: &[u8]) {
    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for p in &reference().platforms {
        if !p.accepts(&doc) {
            continue;
        }
        for t in tongban_platform::KNOWN_EVENT_TYPES {
            if p.wants(t) {
                let _ = p.mapping.apply(&doc, t);
            }
        }
    }
}

/// A platform file (TOML): connection, authentication, subscriptions and field mapping.
pub fn platform_config(data: &[u8]) {
    let Some(src) = text(data) else { return };
    if let Ok(p) = PlatformConfig::parse_with_env(src, "fuzz.toml", &|_: &str| None) {
        let _ = p.mapping.apply(&Value::Null, "application.submitted");
    }
}

/// A matter definition (TOML), checked as a whole against the deploy departments; an
/// accepted one is planned for an empty form.
pub fn definition(data: &[u8]) {
    let Some(src) = text(data) else { return };
    let r = reference();
    if let Ok(m) = MatterDefinition::parse(src, "fuzz.toml", &r.departments) {
        let _ = m.content_hash();
        let empty = Map::new();
        let ctx = m.eval_context(&empty, Some(CreditClass::A), "350784", true);
        let _ = m.plan(&ctx, &r.departments);
    }
}

/// An event envelope from the bus (protobuf), decoded as every consumer decodes it, rendered
/// as proto3 JSON (webhook bodies, the CLI) and encoded again: what decodes re-encodes to
/// bytes that decode to the same envelope.
pub fn envelope(data: &[u8]) {
    let Ok(e) = Envelope::decode(data) else {
        return;
    };
    let _ = tongban_proto::json::to_json_value("tongban.events.v1.Envelope", &e);
    let again = Envelope::decode(e.encode_to_vec().as_slice());
    assert_eq!(again.as_ref().ok(), Some(&e), "re-encoded envelope differs");
}
