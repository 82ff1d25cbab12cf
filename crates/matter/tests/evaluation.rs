//! Form validation, conditions and plans, on the shipped definitions.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde_json::{Map, Value, json};
use tongban_matter::{
    Condition, CreditClass, Departments, EvalContext, EvalError, MatterDefinition, PlannedTask,
    load_dir,
};

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn load() -> (Departments, MatterDefinition, MatterDefinition) {
    let deps = Departments::load(deploy().join("departments.toml")).unwrap();
    let mut matters = load_dir(deploy().join("matters"), &deps).unwrap();
    let request = matters.pop().unwrap();
    let eia = matters.pop().unwrap();
    assert_eq!(eia.code, "env.eia.report_form");
    assert_eq!(request.code, "service.enterprise_request");
    (deps, eia, request)
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

/// The example EIA application: a plywood plant in Songyuan, no water intake.
fn eia_form() -> Map<String, Value> {
    obj(json!({
        "project_name": "松溪县年产10万立方米竹木胶合板生产线项目",
        "project_code": "2026-350724-20-03-000123",
        "construction_site": "福建省南平市松溪县松源街道工业园区",
        "site_region": "350724100",
        "industry_code": "C2021",
        "total_investment_wan": 5000.0,
        "env_investment_wan": 320.0,
        "eia_category": "report_form",
        "construction_nature": "new",
        "uses_water_intake": false,
        "occupies_land": true,
        "planned_start_date": "2026-09-01",
        "agency_name": "福建绿源环境科技有限公司"
    }))
}

fn ctx<'a>(
    form: &'a Map<String, Value>,
    class: Option<CreditClass>,
    region: &'a str,
) -> EvalContext<'a> {
    EvalContext {
        form,
        credit_class: class,
        region_code: region,
        site_region: None,
        pledge_signed: false,
    }
}

// ---------------------------------------------------------------------------------------------
// Forms

#[test]
fn the_example_form_is_valid() {
    let (_, eia, _) = load();
    assert_eq!(eia.form.validate(&eia_form()), []);
    // Optional fields may be left out, or null.
    let mut form = eia_form();
    form.remove("project_code");
    form.insert("agency_name".into(), Value::Null);
    assert_eq!(eia.form.validate(&form), []);
}

fn violations(changes: Value, remove: &[&str]) -> Vec<(String, String)> {
    let (_, eia, _) = load();
    let mut form = eia_form();
    for key in remove {
        form.remove(*key);
    }
    form.extend(obj(changes));
    eia.form
        .validate(&form)
        .into_iter()
        .map(|v| (v.field, v.description))
        .collect()
}

fn one_violation(changes: Value, remove: &[&str]) -> (String, String) {
    let mut v = violations(changes, remove);
    assert_eq!(v.len(), 1, "{v:?}");
    v.remove(0)
}

#[test]
fn missing_required_fields() {
    let v = violations(
        json!({ "construction_site": "   " }),
        &["project_name", "uses_water_intake"],
    );
    let fields: Vec<_> = v.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "form.project_name",
            "form.construction_site",
            "form.uses_water_intake"
        ]
    );
    assert!(v.iter().all(|(_, d)| d == "is required"), "{v:?}");
    let (field, _) = one_violation(json!({ "occupies_land": null }), &[]);
    assert_eq!(field, "form.occupies_land");
}

#[test]
fn wrong_types() {
    let cases = [
        (
            json!({ "total_investment_wan": "5000" }),
            "form.total_investment_wan",
            "must be a number, got a string",
        ),
        (
            json!({ "uses_water_intake": "no" }),
            "form.uses_water_intake",
            "must be true or false, got a string",
        ),
        (
            json!({ "project_name": 12 }),
            "form.project_name",
            "must be a string, got a number",
        ),
        (
            json!({ "planned_start_date": 20260901 }),
            "form.planned_start_date",
            "must be a date written YYYY-MM-DD, got a number",
        ),
    ];
    for (change, field, description) in cases {
        assert_eq!(
            one_violation(change, &[]),
            (field.into(), description.into())
        );
    }
}

#[test]
fn numbers_and_bounds() {
    let (f, d) = one_violation(json!({ "env_investment_wan": -1.0 }), &[]);
    assert_eq!(
        (f.as_str(), d.as_str()),
        ("form.env_investment_wan", "must be at least 0, got -1")
    );
    // 0 and fractions are fine for a `number`.
    assert!(
        violations(
            json!({ "env_investment_wan": 0.0, "total_investment_wan": 12.5 }),
            &[]
        )
        .is_empty()
    );
}

#[test]
fn integers_accept_whole_floats_only() {
    let src = std::fs::read_to_string(deploy().join("matters/service.enterprise_request.v1.toml"))
        .unwrap()
        .replace(
            "[[materials]]",
            "[[form.fields]]\nname = \"staff\"\nlabel = \"员工数\"\ntype = \"integer\"\nmin = 1\nmax = 100000\n\n[[materials]]",
        );
    let (deps, _, _) = load();
    let def = MatterDefinition::parse(&src, "x.toml", &deps).unwrap();
    let form = |staff: Value| {
        obj(json!({
            "subject": "审批超时",
            "description": "项目环评审批超过承诺时限仍未办结。",
            "category": "approval_delay",
            "handling_department": "eco_env",
            "staff": staff,
        }))
    };
    assert_eq!(def.form.validate(&form(json!(12.0))), []);
    assert_eq!(def.form.validate(&form(json!(12))), []);
    let v = def.form.validate(&form(json!(12.5)));
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].field, "form.staff");
    assert_eq!(v[0].description, "must be a whole number, got 12.5");
    let v = def.form.validate(&form(json!(0.0)));
    assert_eq!(v[0].description, "must be at least 1, got 0");
}

#[test]
fn enums() {
    let (f, d) = one_violation(json!({ "construction_nature": "rebuild" }), &[]);
    assert_eq!(f, "form.construction_nature");
    assert_eq!(
        d,
        "must be one of new, expansion, technical_renovation, relocation, got `rebuild`"
    );
    let (f, _) = one_violation(json!({ "eia_category": 1 }), &[]);
    assert_eq!(f, "form.eia_category");
}

#[test]
fn patterns() {
    let (f, d) = one_violation(json!({ "project_code": "2026-350724-20-03-123" }), &[]);
    assert_eq!(f, "form.project_code");
    assert!(d.starts_with("must match the pattern"), "{d}");
    let (f, _) = one_violation(json!({ "industry_code": "c2021" }), &[]);
    assert_eq!(f, "form.industry_code");
    // An empty optional string counts as absent.
    assert!(violations(json!({ "project_code": "" }), &[]).is_empty());
}

#[test]
fn dates() {
    for bad in ["2026-9-1", "2026-02-30", "2026/09/01", "next week"] {
        let (f, d) = one_violation(json!({ "planned_start_date": bad }), &[]);
        assert_eq!(f, "form.planned_start_date", "{bad}");
        assert_eq!(d, format!("must be a date written YYYY-MM-DD, got `{bad}`"));
    }
}

#[test]
fn max_length_counts_characters() {
    // 200 Chinese characters are 600 bytes but fit.
    assert!(violations(json!({ "project_name": "项".repeat(200) }), &[]).is_empty());
    let (f, d) = one_violation(json!({ "project_name": "项".repeat(201) }), &[]);
    assert_eq!(f, "form.project_name");
    assert_eq!(d, "must be at most 200 characters, got 201");
}

#[test]
fn unknown_fields_are_violations() {
    let v = violations(json!({ "region_code": "350724", "applicant": "x" }), &[]);
    assert_eq!(
        v,
        [
            (
                "form.applicant".to_owned(),
                "is not in the form schema".to_owned()
            ),
            (
                "form.region_code".to_owned(),
                "is not in the form schema".to_owned()
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Conditions

#[test]
fn condition_table() {
    let (_, eia, _) = load();
    let form = eia_form();
    let cases: &[(&str, Option<CreditClass>, &str, bool, bool)] = &[
        // (condition, class, region, pledge signed, expected)
        (
            "credit_class == 'D'",
            Some(CreditClass::D),
            "350724",
            false,
            true,
        ),
        (
            "credit_class == 'D'",
            Some(CreditClass::A),
            "350724",
            false,
            false,
        ),
        ("credit_class == 'C'", None, "350724", false, true), // unknown counts as C
        (
            "credit_class >= 'C'",
            Some(CreditClass::D),
            "350724",
            false,
            true,
        ),
        (
            "credit_class >= 'C'",
            Some(CreditClass::B),
            "350724",
            false,
            false,
        ),
        (
            "credit_class in ['A', 'B']",
            Some(CreditClass::B),
            "350724",
            false,
            true,
        ),
        (
            "credit_class in ['A', 'B']",
            Some(CreditClass::C),
            "350724",
            false,
            false,
        ),
        ("form.uses_water_intake", None, "350724", false, false),
        ("form.occupies_land", None, "350724", false, true),
        ("!form.uses_water_intake", None, "350724", false, true),
        (
            "form.uses_water_intake == false",
            None,
            "350724",
            false,
            true,
        ),
        (
            "form.total_investment_wan >= 5000",
            None,
            "350724",
            false,
            true,
        ),
        (
            "form.total_investment_wan > 5000",
            None,
            "350724",
            false,
            false,
        ),
        (
            "form.total_investment_wan < 5000.5",
            None,
            "350724",
            false,
            true,
        ),
        (
            "form.env_investment_wan != 320",
            None,
            "350724",
            false,
            false,
        ),
        (
            "form.construction_nature in ['new', 'relocation']",
            None,
            "350724",
            false,
            true,
        ),
        (
            "form.construction_nature == \"expansion\"",
            None,
            "350724",
            false,
            false,
        ),
        (
            "form.planned_start_date < '2026-10-01'",
            None,
            "350724",
            false,
            true,
        ),
        (
            "form.industry_code starts_with 'C20'",
            None,
            "350724",
            false,
            true,
        ),
        (
            "region_code starts_with '350724'",
            None,
            "350724100",
            false,
            true,
        ),
        (
            "region_code starts_with '350724100'",
            None,
            "350724101",
            false,
            false,
        ),
        ("region_code == '350724'", None, "350724", false, true),
        ("pledge", None, "350724", true, true),
        ("pledge", None, "350724", false, false),
        // pledge_accepted: signed and class admitted by [pledge] (A, B).
        (
            "pledge_accepted",
            Some(CreditClass::A),
            "350724",
            true,
            true,
        ),
        (
            "pledge_accepted",
            Some(CreditClass::C),
            "350724",
            true,
            false,
        ),
        (
            "pledge_accepted",
            Some(CreditClass::A),
            "350724",
            false,
            false,
        ),
        ("pledge_accepted", None, "350724", true, false),
        // && binds tighter than ||; ! and parentheses.
        (
            "credit_class == 'D' || form.occupies_land && form.uses_water_intake",
            Some(CreditClass::A),
            "350724",
            false,
            false,
        ),
        (
            "(credit_class == 'D' || form.occupies_land) && !form.uses_water_intake",
            Some(CreditClass::A),
            "350724",
            false,
            true,
        ),
        (
            "!(credit_class == 'A' && pledge)",
            Some(CreditClass::A),
            "350724",
            true,
            false,
        ),
        ("!!pledge", None, "350724", true, true),
        ("true && !false", None, "350724", false, true),
        // A missing optional field makes every comparison on it false.
        ("form.project_code == 'x'", None, "350724", false, false),
        ("form.agency_name != 'x'", None, "350724", false, true),
        ("form.agency_name == 'x'", None, "350724", false, false),
    ];
    for &(src, class, region, pledge, expected) in cases {
        let mut form = form.clone();
        if src.contains("project_code") {
            form.remove("project_code");
        }
        let condition = Condition::parse(src, &eia.form).unwrap();
        let ctx = EvalContext {
            form: &form,
            credit_class: class,
            region_code: region,
            site_region: None,
            pledge_signed: pledge,
        };
        assert_eq!(
            eia.holds(&condition, &ctx),
            expected,
            "{src} with {class:?} {region} {pledge}"
        );
    }
}

#[test]
fn missing_fields_compare_false_both_ways() {
    let (_, eia, _) = load();
    let mut form = eia_form();
    form.remove("agency_name");
    let ctx = ctx(&form, None, "350724");
    for src in [
        "form.agency_name == 'x'",
        "form.agency_name != 'x'",
        "form.agency_name in ['x']",
        "form.agency_name starts_with ''",
    ] {
        let c = Condition::parse(src, &eia.form).unwrap();
        assert!(!eia.holds(&c, &ctx), "{src}");
    }
    let c = Condition::parse("!(form.agency_name == 'x')", &eia.form).unwrap();
    assert!(eia.holds(&c, &ctx));
}

#[test]
fn condition_errors_carry_columns() {
    let (_, eia, _) = load();
    let err = Condition::parse("form.occupies_land && credit_class == 'Z'", &eia.form).unwrap_err();
    assert_eq!(err.column, 39);
    let err = Condition::parse("form.eia_category == 'report_from'", &eia.form).unwrap_err();
    assert_eq!(err.column, 22);
    assert!(
        err.message
            .contains("not one of report_form, registration_form"),
        "{err}"
    );
    let err = Condition::parse("'unclosed", &eia.form).unwrap_err();
    assert_eq!(
        (err.column, err.message.as_str()),
        (1, "text is not closed")
    );
    let err = Condition::parse("中文 == 1", &eia.form).unwrap_err();
    assert_eq!(err.column, 1);
}

#[test]
fn credit_class_from_str() {
    assert_eq!("A".parse::<CreditClass>().unwrap(), CreditClass::A);
    assert_eq!(" d ".parse::<CreditClass>().unwrap(), CreditClass::D);
    assert!("E".parse::<CreditClass>().is_err());
    assert!("".parse::<CreditClass>().is_err());
}

// ---------------------------------------------------------------------------------------------
// Plans

fn departments_of(tasks: &[PlannedTask]) -> Vec<&str> {
    tasks.iter().map(|t| t.department.as_str()).collect()
}

#[test]
fn class_c_without_water_intake_has_three_parallel_reviews() {
    let (deps, eia, _) = load();
    let form = eia_form();
    let plan = eia
        .plan(&ctx(&form, Some(CreditClass::C), "350724"), &deps)
        .unwrap();
    let ids: Vec<_> = plan.iter().map(|s| s.stage_id.as_str()).collect();
    assert_eq!(ids, ["acceptance", "joint_review", "decision"]);
    assert_eq!(departments_of(&plan[0].tasks), ["admin_approval"]);
    let joint = &plan[1];
    assert_eq!(joint.name, "并联审查");
    assert_eq!(
        departments_of(&joint.tasks),
        ["eco_env", "natural_resources", "dev_reform"]
    );
    assert_eq!(joint.tasks[0].deadline_hours, 40);
    assert_eq!(joint.tasks[0].title, "环境影响审查");
    assert_eq!(
        joint.tasks[0].office, None,
        "county-level region has no township office"
    );
    assert_eq!(departments_of(&plan[2].tasks), ["eco_env"]);
}

#[test]
fn water_intake_adds_the_water_bureau() {
    let (deps, eia, _) = load();
    let mut form = eia_form();
    form.insert("uses_water_intake".into(), json!(true));
    let plan = eia
        .plan(&ctx(&form, Some(CreditClass::C), "350724"), &deps)
        .unwrap();
    assert_eq!(
        departments_of(&plan[1].tasks),
        ["eco_env", "natural_resources", "dev_reform", "water"]
    );
}

#[test]
fn class_d_gets_the_extra_review() {
    let (deps, eia, _) = load();
    let form = eia_form();
    let plan = eia
        .plan(&ctx(&form, Some(CreditClass::D), "350724"), &deps)
        .unwrap();
    let ids: Vec<_> = plan.iter().map(|s| s.stage_id.as_str()).collect();
    assert_eq!(
        ids,
        ["acceptance", "joint_review", "extra_review", "decision"]
    );
    assert_eq!(
        departments_of(&plan[2].tasks),
        ["eco_env", "market_regulation"]
    );
    // A D-class pledge is not accepted: the full path still runs.
    let mut c = ctx(&form, Some(CreditClass::D), "350724");
    c.pledge_signed = true;
    assert!(!eia.pledge_applies(&c));
    assert_eq!(eia.plan(&c, &deps).unwrap().len(), 4);
}

#[test]
fn accepted_pledge_plans_no_review() {
    let (deps, eia, _) = load();
    let form = eia_form();
    let mut c = ctx(&form, Some(CreditClass::A), "350724");
    c.pledge_signed = true;
    assert!(eia.pledge_applies(&c));
    let plan = eia.plan(&c, &deps).unwrap();
    assert!(plan.is_empty(), "approved at once on the pledge: {plan:?}");
    // A class C applicant's pledge is not admitted: the full path.
    let mut c_class = ctx(&form, Some(CreditClass::C), "350724");
    c_class.pledge_signed = true;
    assert!(!eia.pledge_applies(&c_class));
    assert_eq!(eia.plan(&c_class, &deps).unwrap().len(), 3);
    // Unsigned, the same applicant goes through joint review.
    c.pledge_signed = false;
    assert!(!eia.pledge_applies(&c));
    assert_eq!(eia.plan(&c, &deps).unwrap().len(), 3);
}

#[test]
fn an_unknown_credit_class_never_takes_the_pledge_path() {
    let (deps, _, _) = load();
    // Even a matter that admits class C (what an unknown class counts as in conditions) does
    // not admit an unknown class: the registry must vouch for the applicant.
    let text = std::fs::read_to_string(deploy().join("matters/env.eia.report_form.v1.toml"))
        .unwrap()
        .replace(
            "allowed_credit_classes = [\"A\", \"B\"]",
            "allowed_credit_classes = [\"A\", \"B\", \"C\"]",
        );
    let lenient = MatterDefinition::parse(&text, "lenient.toml", &deps).unwrap();
    let form = eia_form();
    let mut known_c = ctx(&form, Some(CreditClass::C), "350724");
    known_c.pledge_signed = true;
    assert!(lenient.pledge_applies(&known_c));
    let mut unknown = ctx(&form, None, "350724");
    unknown.pledge_signed = true;
    assert!(!lenient.pledge_applies(&unknown));
    assert_eq!(lenient.plan(&unknown, &deps).unwrap().len(), 3);
}

#[test]
fn township_routing_by_region_code() {
    let (deps, eia, _) = load();
    let form = eia_form();
    for (region, office) in [
        ("350724100", Some("eco_env.songyuan")),
        ("350724101", Some("eco_env.zhengdun")),
        ("350724102", None),
        ("350725100", None),
    ] {
        let plan = eia
            .plan(&ctx(&form, Some(CreditClass::B), region), &deps)
            .unwrap();
        let eco = &plan[1].tasks[0];
        assert_eq!(eco.department, "eco_env");
        assert_eq!(eco.office.as_deref(), office, "{region}");
        // Tasks not routed by region never get an office.
        assert!(plan[1].tasks[1..].iter().all(|t| t.office.is_none()));
        assert_eq!(plan.last().unwrap().tasks[0].office, None);
    }
    assert_eq!(
        deps.route("eco_env", "350724100").office.as_deref(),
        Some("eco_env.songyuan")
    );
}

#[test]
fn township_routing_follows_the_project_site() {
    let (deps, eia, _) = load();
    assert_eq!(eia.site_region_field.as_deref(), Some("site_region"));
    let mut form = eia_form();
    form.insert("site_region".into(), json!("350724101"));
    // Registered in Songyuan, building in Zhengdun: the Zhengdun station reviews.
    let ctx = eia.eval_context(&form, Some(CreditClass::B), "350724100", false);
    assert_eq!(ctx.site_region, Some("350724101"));
    assert_eq!(ctx.routing_region(), "350724101");
    let plan = eia.plan(&ctx, &deps).unwrap();
    assert_eq!(plan[1].tasks[0].department, "eco_env");
    assert_eq!(plan[1].tasks[0].office.as_deref(), Some("eco_env.zhengdun"));
    // The other way round.
    form.insert("site_region".into(), json!("350724100"));
    let ctx = eia.eval_context(&form, Some(CreditClass::B), "350724101", false);
    let plan = eia.plan(&ctx, &deps).unwrap();
    assert_eq!(plan[1].tasks[0].office.as_deref(), Some("eco_env.songyuan"));
    // A site no office covers goes to the department, whatever the applicant's region.
    form.insert("site_region".into(), json!("350724205"));
    let ctx = eia.eval_context(&form, Some(CreditClass::B), "350724100", false);
    assert_eq!(eia.plan(&ctx, &deps).unwrap()[1].tasks[0].office, None);
    // No site in the form (unvalidated input): the applicant's region, as before.
    form.remove("site_region");
    let ctx = eia.eval_context(&form, Some(CreditClass::B), "350724101", false);
    assert_eq!(ctx.site_region, None);
    let plan = eia.plan(&ctx, &deps).unwrap();
    assert_eq!(plan[1].tasks[0].office.as_deref(), Some("eco_env.zhengdun"));
}

#[test]
fn site_region_condition_reads_the_routing_region() {
    let (_, eia, request) = load();
    let mut form = eia_form();
    form.insert("site_region".into(), json!("350724101"));
    let c = Condition::parse("site_region == '350724101'", &eia.form).unwrap();
    let applicant = Condition::parse("region_code == '350724100'", &eia.form).unwrap();
    let ctx = eia.eval_context(&form, None, "350724100", false);
    assert!(eia.holds(&c, &ctx));
    assert!(
        eia.holds(&applicant, &ctx),
        "region_code stays the applicant's"
    );
    // A matter without a site field: site_region is the applicant's region.
    let ctx = request.eval_context(&form, None, "350724101", false);
    assert_eq!(ctx.site_region, None);
    assert!(request.holds(&c, &ctx));
    let ctx = request.eval_context(&form, None, "350724100", false);
    assert!(!request.holds(&c, &ctx));
    let err = Condition::parse("site_region", &eia.form).unwrap_err();
    assert!(err.to_string().contains("this is text"), "{err}");
}

#[test]
fn enterprise_request_goes_to_the_department_in_the_form() {
    let (deps, _, request) = load();
    let form = obj(json!({
        "subject": "环评审批进度咨询",
        "description": "我司项目环评报告表已提交十个工作日，想了解审批进度。",
        "category": "approval_delay",
        "handling_department": "eco_env",
        "channel": "hotline_12345"
    }));
    assert_eq!(request.form.validate(&form), []);
    let plan = request.plan(&ctx(&form, None, "350724101"), &deps).unwrap();
    let ids: Vec<_> = plan.iter().map(|s| s.stage_id.as_str()).collect();
    assert_eq!(ids, ["accept", "assign", "handle", "feedback"]);
    assert_eq!(plan[2].tasks[0].department, "eco_env");
    assert_eq!(plan[2].tasks[0].office.as_deref(), Some("eco_env.zhengdun"));

    let mut other = form.clone();
    other.insert("handling_department".into(), json!("water"));
    let plan = request
        .plan(&ctx(&other, None, "350724101"), &deps)
        .unwrap();
    assert_eq!(plan[2].tasks[0].department, "water");
    assert_eq!(plan[2].tasks[0].office, None);

    // Unvalidated input: a plan is refused, not guessed.
    let mut bad = form.clone();
    bad.remove("handling_department");
    let err = request.plan(&ctx(&bad, None, "350724"), &deps).unwrap_err();
    assert!(matches!(err, EvalError::DepartmentFromForm { .. }), "{err}");
    assert!(
        err.to_string().contains("form.handling_department"),
        "{err}"
    );
    bad.insert("handling_department".into(), json!("tax"));
    let err = request.plan(&ctx(&bad, None, "350724"), &deps).unwrap_err();
    assert_eq!(
        err,
        EvalError::UnknownDepartment {
            stage: "handle".into(),
            department: "tax".into()
        }
    );
}
