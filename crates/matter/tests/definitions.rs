//! Loading the shipped definitions, and every way a definition can be rejected.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use tongban_matter::{
    DEFAULT_ESCALATE_AFTER_HOURS, DefinitionError, Departments, MatterDefinition, MatterKind,
    TaskDepartment, load_dir,
};

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn departments() -> Departments {
    Departments::load(deploy().join("departments.toml")).unwrap()
}

/// A small valid matter; tests break one thing at a time.
const BASE_HEAD: &str = r#"code = "test.matter"
version = 1
name = "测试事项"
name_en = "Test matter"
kind = "application"
lead_department = "eco_env"

[[form.fields]]
name = "size"
label = "规模"
type = "integer"
required = true
"#;

fn parse(src: &str) -> Result<MatterDefinition, DefinitionError> {
    MatterDefinition::parse(src, "test.matter.v1.toml", &departments())
}

/// Parses and expects failure; returns the message.
fn error(src: &str) -> String {
    let err = parse(src).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("test.matter.v1.toml: "),
        "error does not name the file: {msg}"
    );
    msg
}

fn with_stages(stages: &str) -> String {
    format!("{BASE_HEAD}\n{stages}")
}

const ONE_STAGE: &str = r#"
[[stages]]
id = "review"
name = "审查"
  [[stages.tasks]]
  department = "eco_env"
  deadline_hours = 8
"#;

#[test]
fn shipped_definitions_load() {
    let deps = departments();
    let matters = load_dir(deploy().join("matters"), &deps).unwrap();
    let codes: Vec<_> = matters
        .iter()
        .map(|m| (m.code.as_str(), m.version))
        .collect();
    assert_eq!(
        codes,
        [
            ("env.eia.report_form", 1),
            ("service.enterprise_request", 1)
        ]
    );

    let eia = &matters[0];
    assert_eq!(eia.kind, MatterKind::Application);
    assert_eq!(eia.lead_department, "eco_env");
    assert!(eia.pledge.is_some());
    assert!(eia.request.is_none());
    assert_eq!(eia.decision_number_prefix.as_deref(), Some("松环审"));
    assert_eq!(eia.decision_prefix(), "松环审");
    let stage_ids: Vec<_> = eia.stages.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        stage_ids,
        ["acceptance", "joint_review", "extra_review", "decision"]
    );
    assert_eq!(eia.stage("joint_review").unwrap().tasks.len(), 4);
    let owed: Vec<_> = eia
        .materials
        .iter()
        .filter(|m| m.may_owe)
        .map(|m| m.kind.as_str())
        .collect();
    assert!(owed.contains(&"land_use_certificate"), "{owed:?}");
    assert!(!eia.material("water_intake_permit").unwrap().required);
    assert_eq!(
        eia.source,
        std::fs::read_to_string(deploy().join("matters/env.eia.report_form.v1.toml")).unwrap()
    );
    let hash = eia.content_hash();
    assert_eq!(hash.len(), 64);
    assert!(
        hash.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );

    let req = &matters[1];
    assert_eq!(req.kind, MatterKind::EnterpriseRequest);
    let policy = req.request.as_ref().unwrap();
    assert_eq!(policy.reopen_stage, "handle");
    assert_eq!(policy.answer_deadline_hours, 40);
    assert_eq!(req.decision_number_prefix, None);
    assert_eq!(req.decision_prefix(), "business_env");
    assert_eq!(req.escalate_after_hours, DEFAULT_ESCALATE_AFTER_HOURS);
    assert_eq!(
        req.stage("handle").unwrap().tasks[0].department,
        TaskDepartment::FromForm("handling_department".into())
    );
}

#[test]
fn content_hash_follows_the_source() {
    let a = parse(&with_stages(ONE_STAGE)).unwrap();
    let b = parse(&format!("{}\n# comment\n", with_stages(ONE_STAGE))).unwrap();
    assert_ne!(a.content_hash(), b.content_hash());
    assert_eq!(
        a.content_hash(),
        parse(&with_stages(ONE_STAGE)).unwrap().content_hash()
    );
}

#[test]
fn unknown_department_is_named_with_its_task() {
    let msg = error(&with_stages(
        r#"
[[stages]]
id = "review"
name = "审查"
  [[stages.tasks]]
  department = "eco_env"
  deadline_hours = 8
  [[stages.tasks]]
  department = "tax"
  deadline_hours = 8
"#,
    ));
    assert!(
        msg.contains("stage `review` task 2 (tax): department `tax` is not a known department"),
        "{msg}"
    );
    assert!(msg.contains("line 21: stage `review` task 2"), "{msg}");
}

#[test]
fn unknown_lead_department_is_named() {
    let src = with_stages(ONE_STAGE)
        .replace("lead_department = \"eco_env\"", "lead_department = \"eco\"");
    let msg = error(&src);
    assert!(
        msg.contains("line 6: matter: lead_department `eco` is not a known department"),
        "{msg}"
    );
}

#[test]
fn unreachable_stage_is_an_error() {
    let msg = error(&with_stages(
        r#"
[[stages]]
id = "a"
name = "A"
next = [{ goto = "c" }]
  [[stages.tasks]]
  department = "eco_env"
  deadline_hours = 8
[[stages]]
id = "b"
name = "B"
  [[stages.tasks]]
  department = "water"
  deadline_hours = 8
[[stages]]
id = "c"
name = "C"
  [[stages.tasks]]
  department = "eco_env"
  deadline_hours = 8
"#,
    ));
    assert!(
        msg.contains("stage `b`: is unreachable from the first stage `a`"),
        "{msg}"
    );
    assert!(!msg.contains("stage `c`: is unreachable"), "{msg}");
}

#[test]
fn a_conditional_jump_keeps_the_fall_through() {
    // Same as above, but the jump has a condition: `b` stays reachable.
    let def = parse(&with_stages(
        r#"
[[stages]]
id = "a"
name = "A"
next = [{ when = "form.size > 10", goto = "c" }]
  [[stages.tasks]]
  department = "eco_env"
  deadline_hours = 8
[[stages]]
id = "b"
name = "B"
  [[stages.tasks]]
  department = "water"
  deadline_hours = 8
[[stages]]
id = "c"
name = "C"
  [[stages.tasks]]
  department = "eco_env"
  deadline_hours = 8
"#,
    ))
    .unwrap();
    assert_eq!(def.stages.len(), 3);
}

#[test]
fn cycle_is_an_error() {
    let msg = error(&with_stages(
        r#"
[[stages]]
id = "a"
name = "A"
  [[stages.tasks]]
  department = "eco_env"
  deadline_hours = 8
[[stages]]
id = "b"
name = "B"
next = [{ when = "form.size > 10", goto = "a" }]
  [[stages.tasks]]
  department = "water"
  deadline_hours = 8
[[stages]]
id = "c"
name = "C"
  [[stages.tasks]]
  department = "eco_env"
  deadline_hours = 8
"#,
    ));
    assert!(msg.contains("stage `b`: cycle a → b → a"), "{msg}");
}

#[test]
fn jump_to_itself_is_a_cycle() {
    let msg = error(&with_stages(
        r#"
[[stages]]
id = "a"
name = "A"
next = [{ when = "form.size > 10", goto = "a" }]
  [[stages.tasks]]
  department = "eco_env"
  deadline_hours = 8
"#,
    ));
    assert!(msg.contains("stage `a`: cycle a → a"), "{msg}");
}

#[test]
fn unknown_goto_is_named() {
    let msg = error(&with_stages(
        r#"
[[stages]]
id = "a"
name = "A"
next = [{ goto = "nowhere" }]
  [[stages.tasks]]
  department = "eco_env"
  deadline_hours = 8
"#,
    ));
    assert!(
        msg.contains("stage `a` next rule 1: goto `nowhere` is not a stage of this matter"),
        "{msg}"
    );
}

#[test]
fn bad_condition_syntax_names_stage_and_column() {
    let msg = error(&with_stages(
        r#"
[[stages]]
id = "extra"
name = "重点审查"
when = "credit_class == 'D' &&"
  [[stages.tasks]]
  department = "eco_env"
  deadline_hours = 8
"#,
    ));
    assert!(
        msg.contains(
            "line 15: stage `extra`: condition `credit_class == 'D' &&`: column 23: \
             expected a name or a value, found the end of the condition"
        ),
        "{msg}"
    );
}

#[test]
fn bad_task_condition_names_the_task() {
    let msg = error(&with_stages(
        r#"
[[stages]]
id = "review"
name = "审查"
  [[stages.tasks]]
  department = "water"
  deadline_hours = 8
  when = "form.size = 3"
"#,
    ));
    assert!(
        msg.contains(
            "stage `review` task 1 (water): condition `form.size = 3`: column 11: use `==` to compare"
        ),
        "{msg}"
    );
}

#[test]
fn condition_on_undeclared_field_is_an_error() {
    let msg = error(&with_stages(
        r#"
[[stages]]
id = "review"
name = "审查"
when = "form.size > 3 && form.uses_water"
  [[stages.tasks]]
  department = "eco_env"
  deadline_hours = 8
"#,
    ));
    assert!(
        msg.contains(
            "stage `review`: condition `form.size > 3 && form.uses_water`: column 18: \
             form field `uses_water` is not declared in the form"
        ),
        "{msg}"
    );
}

#[test]
fn condition_type_errors() {
    for (when, expected) in [
        (
            "form.size == 'big'",
            "column 14: cannot compare a number with text",
        ),
        (
            "credit_class == 'E'",
            "column 17: 'E' is not one of A, B, C, D",
        ),
        ("pledge > false", "booleans have no order"),
        ("form.size", "column 1: this is a number, not a condition"),
        ("region_code starts_with 35", "`starts_with` needs text"),
        (
            "credit_class in ['A', 3]",
            "column 23: cannot compare text with a number",
        ),
        ("foo == 1", "column 1: unknown name `foo`"),
        ("(pledge", "column 8: expected `)`"),
        ("pledge pledge", "column 8: expected `&&`, `||` or the end"),
        ("pledge and pledge", "`and` is not an operator"),
        (
            "pledge_accepted",
            "reads pledge_accepted but the matter has no [pledge]",
        ),
    ] {
        let stages = ONE_STAGE.replace(
            "name = \"审查\"",
            &format!("name = \"审查\"\nwhen = \"{when}\""),
        );
        let msg = error(&with_stages(&stages));
        assert!(msg.contains("stage `review`"), "{when}: {msg}");
        assert!(msg.contains(expected), "{when}: {msg}");
    }
}

#[test]
fn duplicate_stage_id_is_an_error() {
    let msg = error(&with_stages(&format!("{ONE_STAGE}{ONE_STAGE}")));
    assert!(
        msg.contains("line 22: stage `review`: stage id is used twice"),
        "{msg}"
    );
}

#[test]
fn bad_field_type_is_named() {
    let src = with_stages(ONE_STAGE).replace("type = \"integer\"", "type = \"int\"");
    let msg = error(&src);
    assert!(
        msg.contains("line 8: form field `size`: unknown type `int`; expected string"),
        "{msg}"
    );
}

#[test]
fn constraints_must_fit_the_field_type() {
    let src = with_stages(ONE_STAGE).replace(
        "required = true",
        "required = true\npattern = 'x'\nmin = 0.5",
    );
    let msg = error(&src);
    assert!(
        msg.contains("form field `size`: `pattern` does not apply to a integer field"),
        "{msg}"
    );
    assert!(
        msg.contains("form field `size`: min 0.5 does not fit the type"),
        "{msg}"
    );

    let src = with_stages(ONE_STAGE).replace("type = \"integer\"", "type = \"enum\"");
    let msg = error(&src);
    assert!(
        msg.contains("form field `size`: an enum needs a non-empty `allowed` list"),
        "{msg}"
    );

    let src = with_stages(ONE_STAGE).replace(
        "type = \"integer\"",
        "type = \"string\"\npattern = '(unclosed'",
    );
    let msg = error(&src);
    assert!(
        msg.contains("form field `size`: pattern is not a valid regex"),
        "{msg}"
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_line() {
    let src = with_stages(ONE_STAGE).replace("deadline_hours = 8", "deadline_hour = 8");
    let err = parse(&src).unwrap_err();
    assert!(matches!(err, DefinitionError::Syntax { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("deadline_hour"), "{msg}");
    assert!(msg.contains("line 20"), "{msg}");
}

#[test]
fn materials_rules() {
    let src = format!(
        "{}\n{}",
        with_stages(ONE_STAGE),
        r#"
[[materials]]
kind = "letter"
name = "申请书"
may_owe = true
max_owed_days = 5
[[materials]]
kind = "letter"
name = "申请书"
required = true
max_owed_days = 5
"#
    );
    let msg = error(&src);
    assert!(
        msg.contains("material `letter`: may_owe applies only to required materials"),
        "{msg}"
    );
    assert!(msg.contains("material `letter`: is listed twice"), "{msg}");
    assert!(
        msg.contains("material `letter`: max_owed_days needs may_owe = true"),
        "{msg}"
    );
}

#[test]
fn department_from_must_be_a_required_enum_of_departments() {
    let head = BASE_HEAD.replace("kind = \"application\"", "kind = \"enterprise_request\"");
    let tail = r#"
[request]
answer_deadline_hours = 40
reopen_on = ["unsatisfied", "angry"]

[[stages]]
id = "handle"
name = "办理"
  [[stages.tasks]]
  department_from = "form.handler"
  deadline_hours = 8
"#;
    let field = |def: &str| {
        format!("{head}\n[[form.fields]]\nname = \"handler\"\nlabel = \"承办\"\n{def}\n{tail}")
    };

    let msg = error(&field(
        "type = \"enum\"\nrequired = true\nallowed = [\"eco_env\", \"tax\"]",
    ));
    assert!(
        msg.contains("stage `handle` task 1 (form.handler): department_from: allowed value of form.handler `tax` is not a known department"),
        "{msg}"
    );
    assert!(
        msg.contains("[request]: reopen_on: `angry` is not a rating"),
        "{msg}"
    );

    let msg = error(&field("type = \"string\"\nrequired = true"));
    assert!(
        msg.contains("department_from: form field `handler` must be an enum of department codes"),
        "{msg}"
    );

    let msg = error(&field("type = \"enum\"\nallowed = [\"eco_env\"]"));
    assert!(
        msg.contains("department_from: form field `handler` must be required"),
        "{msg}"
    );

    let ok = field("type = \"enum\"\nrequired = true\nallowed = [\"eco_env\", \"water\"]")
        .replace(", \"angry\"", "");
    let def = parse(&ok).unwrap();
    let policy = def.request.unwrap();
    assert_eq!(policy.reopen_stage, "handle");
    assert_eq!(policy.close_unrated_after_working_days, 10, "the default");

    let with_wait = |days: &str| {
        ok.replace(
            "answer_deadline_hours = 40",
            &format!("answer_deadline_hours = 40\nclose_unrated_after_working_days = {days}"),
        )
    };
    let def = parse(&with_wait("3")).unwrap();
    assert_eq!(def.request.unwrap().close_unrated_after_working_days, 3);
    for bad in ["0", "251"] {
        let msg = error(&with_wait(bad));
        assert!(
            msg.contains("close_unrated_after_working_days must be 1 to 250"),
            "{bad}: {msg}"
        );
    }
    let assigning = |stage: &str| {
        ok.replace(
            "answer_deadline_hours = 40",
            &format!("answer_deadline_hours = 40\nassign_stage = \"{stage}\""),
        )
    };
    let msg = error(&assigning("nope"));
    assert!(
        msg.contains("assign_stage `nope` is not a stage of this matter"),
        "{msg}"
    );
    let msg = error(&assigning("handle"));
    assert!(
        msg.contains("assign_stage `handle` is the last stage"),
        "{msg}"
    );
}

#[test]
fn kind_and_sections_must_agree() {
    let src =
        with_stages(ONE_STAGE).replace("kind = \"application\"", "kind = \"enterprise_request\"");
    let msg = error(&src);
    assert!(
        msg.contains("[request]: an enterprise_request matter needs a [request] section"),
        "{msg}"
    );
    let src = format!(
        "{}\n[pledge]\nallowed_credit_classes = [\"A\", \"E\"]\nverify_within_working_days = 0\nverify_department = \"eco\"\n",
        with_stages(ONE_STAGE)
    );
    let msg = error(&src);
    assert!(
        msg.contains("[pledge]: credit class must be one of A, B, C, D, got `E`"),
        "{msg}"
    );
    assert!(
        msg.contains("[pledge]: verify_within_working_days must be 1 to 365"),
        "{msg}"
    );
    assert!(
        msg.contains("[pledge]: verify_department `eco` is not a known department"),
        "{msg}"
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let src = with_stages(ONE_STAGE)
        .replace("  department = \"eco_env\"", "  department = \"tax\"")
        .replace("type = \"integer\"", "type = \"int\"");
    let err = parse(&src).unwrap_err();
    assert_eq!(err.problems().len(), 2, "{err}");
}

#[test]
fn duplicate_code_and_version_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let src = with_stages(ONE_STAGE);
    std::fs::write(dir.path().join("a.toml"), &src).unwrap();
    std::fs::write(dir.path().join("b.toml"), &src).unwrap();
    std::fs::write(dir.path().join("README.md"), "not a definition").unwrap();
    let err = load_dir(dir.path(), &departments()).unwrap_err();
    assert!(matches!(err, DefinitionError::Duplicate { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("b.toml: matter `test.matter` version 1 is already defined in"),
        "{msg}"
    );
    assert!(msg.contains("a.toml"), "{msg}");

    // A new version of the same code is fine.
    std::fs::write(
        dir.path().join("b.toml"),
        src.replace("version = 1", "version = 2"),
    )
    .unwrap();
    let loaded = load_dir(dir.path(), &departments()).unwrap();
    assert_eq!(loaded.iter().map(|m| m.version).collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn load_dir_names_the_failing_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.toml"), with_stages(ONE_STAGE)).unwrap();
    std::fs::write(
        dir.path().join("zz.toml"),
        with_stages(ONE_STAGE).replace("  department = \"eco_env\"", "  department = \"tax\""),
    )
    .unwrap();
    let msg = load_dir(dir.path(), &departments())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("zz.toml: line"), "{msg}");
}

/// The head with extra top-level keys (before the first table).
fn head_with(keys: &str) -> String {
    let src = with_stages(ONE_STAGE);
    src.replacen(
        "kind = \"application\"\n",
        &format!("kind = \"application\"\n{keys}\n"),
        1,
    )
}

#[test]
fn decision_number_prefix_defaults_to_the_lead_department() {
    let plain = parse(&with_stages(ONE_STAGE)).unwrap();
    assert_eq!(plain.decision_number_prefix, None);
    assert_eq!(plain.decision_prefix(), "eco_env");

    let set = parse(&head_with("decision_number_prefix = \"松环审\"")).unwrap();
    assert_eq!(set.decision_number_prefix.as_deref(), Some("松环审"));
    assert_eq!(set.decision_prefix(), "松环审");
}

#[test]
fn empty_decision_number_prefix_is_an_error() {
    for value in ["\"\"", "\"  \""] {
        let msg = error(&head_with(&format!("decision_number_prefix = {value}")));
        assert!(
            msg.contains("line 6: decision_number_prefix: must not be empty"),
            "{msg}"
        );
    }
    let msg = error(&head_with("decision_number_prefix = 7"));
    assert!(msg.contains("decision_number_prefix"), "{msg}");
}

#[test]
fn escalate_after_hours_defaults_to_four() {
    let plain = parse(&with_stages(ONE_STAGE)).unwrap();
    assert_eq!(plain.escalate_after_hours, 4);
    assert_eq!(DEFAULT_ESCALATE_AFTER_HOURS, 4);
    let set = parse(&head_with("escalate_after_hours = 16")).unwrap();
    assert_eq!(set.escalate_after_hours, 16);
    let at_deadline = parse(&head_with("escalate_after_hours = 0")).unwrap();
    assert_eq!(at_deadline.escalate_after_hours, 0);
    let msg = error(&head_with("escalate_after_hours = -1"));
    assert!(msg.contains("escalate_after_hours"), "{msg}");
}

#[test]
fn hostile_deadlines_are_refused_where_declared() {
    let src = with_stages(ONE_STAGE).replace("deadline_hours = 8", "deadline_hours = 4294967295");
    let msg = error(&src);
    assert!(msg.contains("deadline_hours must be 1 to 2000"), "{msg}");
    let src = format!(
        "{}\n[pledge]\nallowed_credit_classes = [\"A\"]\nverify_within_working_days = 100000\nverify_department = \"eco_env\"\n",
        with_stages(ONE_STAGE)
    );
    let msg = error(&src);
    assert!(
        msg.contains("verify_within_working_days must be 1 to 365"),
        "{msg}"
    );
}

#[test]
fn site_region_field_must_be_a_required_text_field() {
    // Declared: a required string field, with or without the `form.` prefix.
    let site = "[[form.fields]]\nname = \"site\"\nlabel = \"项目所在地\"\n";
    let with_site = |key: &str, field: &str| {
        head_with(&format!("site_region_field = \"{key}\"")).replace(
            "[[form.fields]]\nname = \"size\"",
            &format!("{site}{field}\n[[form.fields]]\nname = \"size\""),
        )
    };
    for key in ["site", "form.site"] {
        let def = parse(&with_site(key, "type = \"string\"\nrequired = true")).unwrap();
        assert_eq!(def.site_region_field.as_deref(), Some("site"), "{key}");
    }
    let plain = parse(&with_stages(ONE_STAGE)).unwrap();
    assert_eq!(plain.site_region_field, None);

    let msg = error(&with_site("nowhere", "type = \"string\"\nrequired = true"));
    assert!(
        msg.contains("line 6: site_region_field: form field `nowhere` is not declared in the form"),
        "{msg}"
    );
    let msg = error(&with_site("size", "type = \"string\"\nrequired = true"));
    assert!(
        msg.contains("site_region_field: form field `size` has type integer; it must be a string"),
        "{msg}"
    );
    let msg = error(&with_site("site", "type = \"string\""));
    assert!(
        msg.contains("site_region_field: form field `site` must be required = true"),
        "{msg}"
    );
    let msg = error(&with_site("site", "type = \"date\"\nrequired = true"));
    assert!(msg.contains("has type date"), "{msg}");
    let msg = error(&head_with("site_region_field = 7"));
    assert!(msg.contains("site_region_field"), "{msg}");
}
