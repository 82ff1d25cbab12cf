//! Matter definitions: one TOML file per matter code and version, parsed into a
//! [`MatterDefinition`] that has been checked as a whole.
//!
//! # Workflow model
//! Stages run in file order; the tasks of a stage run in parallel. A stage or task with a
//! `when` condition applies only when it holds; a stage none of whose tasks apply is skipped.
//! After a stage that ran, its `next` rules are tried in order and the first that holds
//! (a rule without `when` always holds) jumps to its `goto` stage; when none holds, or the
//! stage was skipped, the flow falls through to the following stage. The flow ends after the
//! last stage.
//!
//! Loading rejects a workflow whose jumps can loop (a cycle in the graph of fall-throughs and
//! jumps) or that has a stage no path from the first stage reaches, so every instance
//! finishes and every stage is meant.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::condition::{Condition, CreditClass, EvalContext};
use crate::department::Departments;
use crate::error::{DefinitionError, EvalError, Problem};
use crate::form::{FieldDef, FieldType, FormSchema, Pattern};
use crate::util::{is_identifier, line_of};

/// What kind of matter a definition describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatterKind {
    /// An application for an approval (行政许可 and the like).
    Application,
    /// An enterprise request or complaint (受理 → 交办 → 督办 → 反馈 → 评价).
    EnterpriseRequest,
}

/// Commitment-based approval (告知承诺制): who may use it and how it is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PledgePolicy {
    /// Credit classes that may be approved on their pledge.
    pub allowed_credit_classes: Vec<CreditClass>,
    /// Working days after approval within which the pledge is verified.
    pub verify_within_working_days: u32,
    /// Department that verifies.
    pub verify_department: String,
}

/// A material an application hands in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterialRequirement {
    /// Kind code, e.g. "eia_report_form"; what `Material.kind` carries.
    pub kind: String,
    pub name: String,
    pub name_en: Option<String>,
    pub required: bool,
    /// May be owed at intake under a commitment (容缺受理); only for required materials.
    pub may_owe: bool,
    /// Working days within which an owed material must be supplied; set when `may_owe`.
    pub max_owed_days: Option<u32>,
}

/// A stage: tasks run in parallel.
#[derive(Debug, Clone)]
pub struct StageDef {
    pub id: String,
    pub name: String,
    pub name_en: Option<String>,
    /// The stage applies only when this holds.
    pub when: Option<Condition>,
    pub tasks: Vec<TaskDef>,
    /// Jumps tried after the stage ran; the first that holds wins.
    pub next: Vec<NextRule>,
}

/// A department's task within a stage.
#[derive(Debug, Clone)]
pub struct TaskDef {
    pub department: TaskDepartment,
    pub title: String,
    /// Working hours allowed.
    pub deadline_hours: u32,
    /// The task applies only when this holds.
    pub when: Option<Condition>,
    /// Hand the task to the department's township office covering the applicant's region.
    pub route_by_region: bool,
}

/// Who a task is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskDepartment {
    /// A department code.
    Fixed(String),
    /// The department code held by this (enum) form field, e.g. "handling_department".
    FromForm(String),
}

/// A jump out of a stage.
#[derive(Debug, Clone)]
pub struct NextRule {
    pub when: Option<Condition>,
    /// Id of the stage to continue with.
    pub goto: String,
    target: usize,
}

/// A rating an enterprise gives the answer to its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rating {
    /// 满意
    Satisfied,
    /// 基本满意
    BasicallySatisfied,
    /// 不满意
    Unsatisfied,
}

impl Rating {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Satisfied => "satisfied",
            Self::BasicallySatisfied => "basically_satisfied",
            Self::Unsatisfied => "unsatisfied",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Satisfied, Self::BasicallySatisfied, Self::Unsatisfied]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// How an enterprise request is answered and reopened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPolicy {
    /// Ratings that reopen the request.
    pub reopen_on: Vec<Rating>,
    /// Working hours, from acceptance, within which the enterprise gets an answer.
    pub answer_deadline_hours: u32,
    /// Department that supervises (督办) open requests and receives escalations.
    pub supervising_department: Option<String>,
    /// Stage a reopened request goes back to.
    pub reopen_stage: String,
}

/// Working hours past the deadline before an overdue task is escalated, when a matter does not
/// say `escalate_after_hours`.
pub const DEFAULT_ESCALATE_AFTER_HOURS: u32 = 4;

/// A matter definition, validated.
#[derive(Debug, Clone)]
pub struct MatterDefinition {
    pub code: String,
    pub version: u32,
    pub name: String,
    pub name_en: String,
    pub description: Option<String>,
    pub kind: MatterKind,
    /// Department that issues the decision.
    pub lead_department: String,
    pub pledge: Option<PledgePolicy>,
    pub form: FormSchema,
    pub materials: Vec<MaterialRequirement>,
    pub stages: Vec<StageDef>,
    pub request: Option<RequestPolicy>,
    /// Prefix of approval document numbers (文号), e.g. "松环审" in 松环审〔2026〕12号; `None`
    /// means the lead department code is used (see [`Self::decision_prefix`]).
    pub decision_number_prefix: Option<String>,
    /// Working hours past a task's deadline after which the overdue task is escalated.
    pub escalate_after_hours: u32,
    /// The TOML text the definition was parsed from.
    pub source: String,
}

/// A stage of one application's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStage {
    pub stage_id: String,
    pub name: String,
    pub tasks: Vec<PlannedTask>,
}

/// A task of one application's plan, routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTask {
    pub department: String,
    /// Township office, when the task is routed by region and an office covers it.
    pub office: Option<String>,
    pub title: String,
    pub deadline_hours: u32,
}

// ---------------------------------------------------------------------------------------------
// The file format, as written.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatter {
    code: String,
    version: u32,
    name: String,
    name_en: String,
    description: Option<String>,
    kind: MatterKind,
    lead_department: Spanned<String>,
    pledge: Option<Spanned<RawPledge>>,
    #[serde(default)]
    form: RawForm,
    #[serde(default)]
    materials: Vec<Spanned<RawMaterial>>,
    #[serde(default)]
    stages: Vec<Spanned<RawStage>>,
    request: Option<Spanned<RawRequest>>,
    decision_number_prefix: Option<Spanned<String>>,
    escalate_after_hours: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPledge {
    allowed_credit_classes: Vec<String>,
    verify_within_working_days: u32,
    verify_department: String,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForm {
    #[serde(default)]
    fields: Vec<Spanned<RawField>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    label: String,
    label_en: Option<String>,
    description: Option<String>,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    required: bool,
    min_length: Option<u32>,
    max_length: Option<u32>,
    pattern: Option<String>,
    min: Option<f64>,
    max: Option<f64>,
    allowed: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaterial {
    kind: String,
    name: String,
    name_en: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    may_owe: bool,
    max_owed_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    id: String,
    name: String,
    name_en: Option<String>,
    when: Option<String>,
    #[serde(default)]
    tasks: Vec<Spanned<RawTask>>,
    #[serde(default)]
    next: Vec<RawNext>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    department: Option<String>,
    department_from: Option<String>,
    title: Option<String>,
    deadline_hours: u32,
    when: Option<String>,
    #[serde(default)]
    route_by_region: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNext {
    when: Option<String>,
    goto: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    #[serde(default)]
    reopen_on: Vec<String>,
    answer_deadline_hours: u32,
    supervising_department: Option<String>,
    reopen_stage: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Validation

/// Collects problems while a definition is checked.
struct Checker<'a> {
    source: &'a str,
    departments: &'a Departments,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn line<T>(&self, spanned: &Spanned<T>) -> Option<usize> {
        Some(line_of(self.source, spanned.span().start))
    }

    fn problem(&mut self, line: Option<usize>, place: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line,
            place: place.to_owned(),
            message: message.into(),
        });
    }

    fn department(&mut self, line: Option<usize>, place: &str, key: &str, code: &str) {
        if !self.departments.contains(code) {
            self.problem(
                line,
                place,
                format!("{key} `{code}` is not a known department"),
            );
        }
    }

    fn condition(
        &mut self,
        line: Option<usize>,
        place: &str,
        text: Option<&str>,
        form: &FormSchema,
    ) -> Option<Condition> {
        let text = text?;
        match Condition::parse(text, form) {
            Ok(c) => Some(c),
            Err(e) => {
                self.problem(line, place, format!("condition `{text}`: {e}"));
                None
            }
        }
    }
}

fn matter_code_ok(code: &str) -> bool {
    !code.is_empty() && code.split('.').all(is_identifier)
}

impl MatterDefinition {
    /// Parses and validates a definition; `origin` (a file name) prefixes every error.
    pub fn parse(
        source: &str,
        origin: &str,
        departments: &Departments,
    ) -> Result<Self, DefinitionError> {
        let raw: RawMatter = toml::from_str(source).map_err(|e| DefinitionError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        let mut ck = Checker {
            source,
            departments,
            problems: Vec::new(),
        };

        if !matter_code_ok(&raw.code) {
            ck.problem(
                None,
                "code",
                format!(
                    "`{}` must be dot-separated lower-case words, e.g. env.eia.report_form",
                    raw.code
                ),
            );
        }
        if raw.version == 0 {
            ck.problem(None, "version", "must be 1 or more");
        }
        for (key, value) in [("name", &raw.name), ("name_en", &raw.name_en)] {
            if value.trim().is_empty() {
                ck.problem(None, key, "must not be empty");
            }
        }
        let line = ck.line(&raw.lead_department);
        ck.department(
            line,
            "matter",
            "lead_department",
            raw.lead_department.get_ref(),
        );

        if let Some(prefix) = &raw.decision_number_prefix
            && prefix.get_ref().trim().is_empty()
        {
            let line = ck.line(prefix);
            ck.problem(line, "decision_number_prefix", "must not be empty");
        }

        let form = check_form(&mut ck, raw.form);
        let materials = check_materials(&mut ck, raw.materials);
        let pledge = raw.pledge.map(|p| check_pledge(&mut ck, raw.kind, p));
        let stages = check_stages(&mut ck, raw.stages, &form, pledge.is_some());
        let request = check_request(&mut ck, raw.kind, raw.request, &stages);

        if !ck.problems.is_empty() {
            return Err(DefinitionError::Invalid {
                origin: origin.to_owned(),
                problems: ck.problems,
            });
        }
        Ok(Self {
            code: raw.code,
            version: raw.version,
            name: raw.name,
            name_en: raw.name_en,
            description: raw.description,
            kind: raw.kind,
            lead_department: raw.lead_department.into_inner(),
            pledge,
            form,
            materials,
            stages,
            request,
            decision_number_prefix: raw
                .decision_number_prefix
                .map(|p| p.into_inner().trim().to_owned()),
            escalate_after_hours: raw
                .escalate_after_hours
                .unwrap_or(DEFAULT_ESCALATE_AFTER_HOURS),
            source: source.to_owned(),
        })
    }

    /// Reads and parses one definition file.
    pub fn load(
        path: impl AsRef<Path>,
        departments: &Departments,
    ) -> Result<Self, DefinitionError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|source| DefinitionError::Io {
            origin: origin.clone(),
            source,
        })?;
        Self::parse(&source, &origin, departments)
    }

    /// Prefix of this matter's approval document numbers: `decision_number_prefix`, else the
    /// lead department code.
    pub fn decision_prefix(&self) -> &str {
        self.decision_number_prefix
            .as_deref()
            .unwrap_or(&self.lead_department)
    }

    /// Lower-case hex SHA-256 of the source text.
    pub fn content_hash(&self) -> String {
        hex::encode(Sha256::digest(self.source.as_bytes()))
    }

    /// The material of this kind.
    pub fn material(&self, kind: &str) -> Option<&MaterialRequirement> {
        self.materials.iter().find(|m| m.kind == kind)
    }

    /// The stage with this id.
    pub fn stage(&self, id: &str) -> Option<&StageDef> {
        self.stages.iter().find(|s| s.id == id)
    }

    /// Whether the application is approved on its pledge: the matter allows pledges, the
    /// applicant signed one and its credit class (unknown counts as C) is admitted.
    pub fn pledge_applies(&self, ctx: &EvalContext<'_>) -> bool {
        self.pledge.as_ref().is_some_and(|p| {
            ctx.pledge_signed
                && p.allowed_credit_classes
                    .contains(&ctx.effective_credit_class())
        })
    }

    /// Evaluates one of this matter's conditions (`pledge_accepted` per [`Self::pledge_applies`]).
    pub fn holds(&self, condition: &Condition, ctx: &EvalContext<'_>) -> bool {
        condition.eval(ctx, self.pledge_applies(ctx))
    }

    /// The stages that apply to this application and, for each, the tasks that apply, in the
    /// order they run, with departments resolved and routed.
    pub fn plan(
        &self,
        ctx: &EvalContext<'_>,
        departments: &Departments,
    ) -> Result<Vec<PlannedStage>, EvalError> {
        let accepted = self.pledge_applies(ctx);
        let holds = |c: &Option<Condition>| c.as_ref().is_none_or(|c| c.eval(ctx, accepted));
        let mut planned = Vec::new();
        let mut at = 0;
        let mut steps = 0;
        while let Some(stage) = self.stages.get(at) {
            steps += 1;
            if steps > self.stages.len() {
                return Err(EvalError::NoTermination { steps });
            }
            let mut tasks = Vec::new();
            if holds(&stage.when) {
                for task in stage.tasks.iter().filter(|t| holds(&t.when)) {
                    tasks.push(plan_task(stage, task, ctx, departments)?);
                }
            }
            if tasks.is_empty() {
                at += 1;
                continue;
            }
            planned.push(PlannedStage {
                stage_id: stage.id.clone(),
                name: stage.name.clone(),
                tasks,
            });
            at = stage
                .next
                .iter()
                .find(|r| holds(&r.when))
                .map_or(at + 1, |r| r.target);
        }
        Ok(planned)
    }
}

fn plan_task(
    stage: &StageDef,
    task: &TaskDef,
    ctx: &EvalContext<'_>,
    departments: &Departments,
) -> Result<PlannedTask, EvalError> {
    let department = match &task.department {
        TaskDepartment::Fixed(code) => code.clone(),
        TaskDepartment::FromForm(field) => {
            let value = ctx.form.get(field);
            let Some(code) = value.and_then(|v| v.as_str()) else {
                return Err(EvalError::DepartmentFromForm {
                    stage: stage.id.clone(),
                    field: format!("form.{field}"),
                    value: value.map_or_else(|| "nothing".to_owned(), ToString::to_string),
                });
            };
            if !departments.contains(code) {
                return Err(EvalError::UnknownDepartment {
                    stage: stage.id.clone(),
                    department: code.to_owned(),
                });
            }
            code.to_owned()
        }
    };
    let office = if task.route_by_region {
        departments.route(&department, ctx.region_code).office
    } else {
        None
    };
    Ok(PlannedTask {
        department,
        office,
        title: task.title.clone(),
        deadline_hours: task.deadline_hours,
    })
}

fn check_form(ck: &mut Checker<'_>, raw: RawForm) -> FormSchema {
    let mut fields = Vec::new();
    let mut names = BTreeSet::new();
    for spanned in raw.fields {
        let line = ck.line(&spanned);
        let f = spanned.into_inner();
        let place = format!("form field `{}`", f.name);
        if !is_identifier(&f.name) {
            ck.problem(
                line,
                &place,
                "name must be lower case letters, digits and `_`, starting with a letter",
            );
        }
        if !names.insert(f.name.clone()) {
            ck.problem(line, &place, "is declared twice");
        }
        if f.label.trim().is_empty() {
            ck.problem(line, &place, "label must not be empty");
        }
        // Which constraint keys were given, to reject those the type does not use.
        let given = [
            ("min_length", f.min_length.is_some()),
            ("max_length", f.max_length.is_some()),
            ("pattern", f.pattern.is_some()),
            ("min", f.min.is_some()),
            ("max", f.max.is_some()),
            ("allowed", f.allowed.is_some()),
        ];
        let (ty, applicable): (Option<FieldType>, &[&str]) = match f.ty.as_str() {
            "string" => {
                let pattern = match f.pattern.as_deref().map(Pattern::new) {
                    Some(Err(e)) => {
                        ck.problem(line, &place, format!("pattern is not a valid regex: {e}"));
                        None
                    }
                    Some(Ok(p)) => Some(p),
                    None => None,
                };
                if let (Some(min), Some(max)) = (f.min_length, f.max_length)
                    && min > max
                {
                    ck.problem(line, &place, "min_length is greater than max_length");
                }
                (
                    Some(FieldType::String {
                        min_length: f.min_length,
                        max_length: f.max_length,
                        pattern,
                    }),
                    &["min_length", "max_length", "pattern"],
                )
            }
            "integer" | "number" => {
                let integer = f.ty == "integer";
                if let (Some(min), Some(max)) = (f.min, f.max)
                    && min > max
                {
                    ck.problem(line, &place, "min is greater than max");
                }
                for (key, bound) in [("min", f.min), ("max", f.max)] {
                    if let Some(b) = bound
                        && (!b.is_finite() || (integer && b.fract() != 0.0))
                    {
                        ck.problem(line, &place, format!("{key} {b} does not fit the type"));
                    }
                }
                let ty = if integer {
                    FieldType::Integer {
                        min: f.min,
                        max: f.max,
                    }
                } else {
                    FieldType::Number {
                        min: f.min,
                        max: f.max,
                    }
                };
                (Some(ty), &["min", "max"])
            }
            "boolean" => (Some(FieldType::Boolean), &[]),
            "date" => (Some(FieldType::Date), &[]),
            "enum" => {
                let allowed = f.allowed.clone().unwrap_or_default();
                if allowed.is_empty() {
                    ck.problem(line, &place, "an enum needs a non-empty `allowed` list");
                }
                let mut seen = BTreeSet::new();
                for value in &allowed {
                    if value.is_empty() || !seen.insert(value) {
                        ck.problem(
                            line,
                            &place,
                            format!("allowed value `{value}` is empty or repeated"),
                        );
                    }
                }
                (Some(FieldType::Enum { allowed }), &["allowed"])
            }
            other => {
                ck.problem(
                    line,
                    &place,
                    format!(
                        "unknown type `{other}`; expected string, integer, number, boolean, \
                         date or enum"
                    ),
                );
                (None, &[])
            }
        };
        let Some(ty) = ty else { continue };
        for (key, present) in given {
            if present && !applicable.contains(&key) {
                ck.problem(
                    line,
                    &place,
                    format!("`{key}` does not apply to a {} field", ty.name()),
                );
            }
        }
        fields.push(FieldDef {
            name: f.name,
            label: f.label,
            label_en: f.label_en,
            description: f.description,
            required: f.required,
            ty,
        });
    }
    FormSchema { fields }
}

fn check_materials(
    ck: &mut Checker<'_>,
    raw: Vec<Spanned<RawMaterial>>,
) -> Vec<MaterialRequirement> {
    let mut kinds = BTreeSet::new();
    let mut out = Vec::new();
    for spanned in raw {
        let line = ck.line(&spanned);
        let m = spanned.into_inner();
        let place = format!("material `{}`", m.kind);
        if !is_identifier(&m.kind) {
            ck.problem(
                line,
                &place,
                "kind must be lower case letters, digits and `_`, starting with a letter",
            );
        }
        if !kinds.insert(m.kind.clone()) {
            ck.problem(line, &place, "is listed twice");
        }
        if m.name.trim().is_empty() {
            ck.problem(line, &place, "name must not be empty");
        }
        if m.may_owe && !m.required {
            ck.problem(line, &place, "may_owe applies only to required materials");
        }
        match (m.may_owe, m.max_owed_days) {
            (true, None | Some(0)) => ck.problem(
                line,
                &place,
                "may_owe needs max_owed_days (working days, 1 or more)",
            ),
            (false, Some(_)) => ck.problem(line, &place, "max_owed_days needs may_owe = true"),
            _ => {}
        }
        out.push(MaterialRequirement {
            kind: m.kind,
            name: m.name,
            name_en: m.name_en,
            required: m.required,
            may_owe: m.may_owe,
            max_owed_days: m.max_owed_days,
        });
    }
    out
}

fn check_pledge(ck: &mut Checker<'_>, kind: MatterKind, raw: Spanned<RawPledge>) -> PledgePolicy {
    let line = ck.line(&raw);
    let p = raw.into_inner();
    let place = "[pledge]";
    if kind != MatterKind::Application {
        ck.problem(line, place, "only an application matter can allow pledges");
    }
    let mut classes = Vec::new();
    for c in &p.allowed_credit_classes {
        match c.parse::<CreditClass>() {
            Ok(class) if !classes.contains(&class) => classes.push(class),
            Ok(class) => ck.problem(line, place, format!("credit class {class} is listed twice")),
            Err(e) => ck.problem(line, place, e.to_string()),
        }
    }
    if p.allowed_credit_classes.is_empty() {
        ck.problem(line, place, "allowed_credit_classes must not be empty");
    }
    if p.verify_within_working_days == 0 {
        ck.problem(line, place, "verify_within_working_days must be 1 or more");
    }
    ck.department(line, place, "verify_department", &p.verify_department);
    PledgePolicy {
        allowed_credit_classes: classes,
        verify_within_working_days: p.verify_within_working_days,
        verify_department: p.verify_department,
    }
}

fn check_stages(
    ck: &mut Checker<'_>,
    raw: Vec<Spanned<RawStage>>,
    form: &FormSchema,
    has_pledge: bool,
) -> Vec<StageDef> {
    if raw.is_empty() {
        ck.problem(None, "stages", "a matter needs at least one stage");
    }
    let mut ids = BTreeMap::new();
    for (i, s) in raw.iter().enumerate() {
        let id = &s.get_ref().id;
        if ids.insert(id.clone(), i).is_some() {
            let line = ck.line(s);
            ck.problem(line, &format!("stage `{id}`"), "stage id is used twice");
        }
    }
    let mut lines = Vec::new();
    let mut stages = Vec::new();
    let mut gotos_ok = true;
    for spanned in raw {
        let line = ck.line(&spanned);
        let s = spanned.into_inner();
        let place = format!("stage `{}`", s.id);
        lines.push(line);
        if !is_identifier(&s.id) {
            ck.problem(
                line,
                &place,
                "id must be lower case letters, digits and `_`, starting with a letter",
            );
        }
        if s.name.trim().is_empty() {
            ck.problem(line, &place, "name must not be empty");
        }
        if s.tasks.is_empty() {
            ck.problem(line, &place, "a stage needs at least one task");
        }
        let when = ck.condition(line, &place, s.when.as_deref(), form);
        let mut tasks = Vec::new();
        for (n, spanned) in s.tasks.into_iter().enumerate() {
            let tline = ck.line(&spanned);
            let t = spanned.into_inner();
            let who = t
                .department
                .as_deref()
                .or(t.department_from.as_deref())
                .unwrap_or("?");
            let tplace = format!("{place} task {} ({who})", n + 1);
            let department = check_task_department(ck, tline, &tplace, &t, form);
            if t.deadline_hours == 0 {
                ck.problem(tline, &tplace, "deadline_hours must be 1 or more");
            }
            let twhen = ck.condition(tline, &tplace, t.when.as_deref(), form);
            if let Some(department) = department {
                tasks.push(TaskDef {
                    department,
                    title: t.title.unwrap_or_else(|| s.name.clone()),
                    deadline_hours: t.deadline_hours,
                    when: twhen,
                    route_by_region: t.route_by_region,
                });
            }
        }
        let mut next = Vec::new();
        let mut unconditional = false;
        for (n, r) in s.next.into_iter().enumerate() {
            let rplace = format!("{place} next rule {}", n + 1);
            if unconditional {
                ck.problem(
                    line,
                    &rplace,
                    "follows a rule without `when`, so it can never apply",
                );
            }
            unconditional |= r.when.is_none();
            let rwhen = ck.condition(line, &rplace, r.when.as_deref(), form);
            let Some(&target) = ids.get(&r.goto) else {
                ck.problem(
                    line,
                    &rplace,
                    format!("goto `{}` is not a stage of this matter", r.goto),
                );
                gotos_ok = false;
                continue;
            };
            next.push(NextRule {
                when: rwhen,
                goto: r.goto,
                target,
            });
        }
        stages.push(StageDef {
            id: s.id,
            name: s.name,
            name_en: s.name_en,
            when,
            tasks,
            next,
        });
    }
    for (stage, line) in stages.iter().zip(&lines) {
        let conditions = stage
            .when
            .iter()
            .chain(stage.tasks.iter().filter_map(|t| t.when.as_ref()))
            .chain(stage.next.iter().filter_map(|r| r.when.as_ref()));
        for c in conditions {
            if c.uses_pledge_accepted() && !has_pledge {
                ck.problem(
                    *line,
                    &format!("stage `{}`", stage.id),
                    format!("condition `{c}` reads pledge_accepted but the matter has no [pledge]"),
                );
            }
        }
    }
    // The graph is only meaningful once every stage and jump was understood.
    if gotos_ok && ck.problems.is_empty() {
        check_graph(ck, &stages, &lines);
    }
    stages
}

fn check_task_department(
    ck: &mut Checker<'_>,
    line: Option<usize>,
    place: &str,
    t: &RawTask,
    form: &FormSchema,
) -> Option<TaskDepartment> {
    match (&t.department, &t.department_from) {
        (Some(code), None) => {
            ck.department(line, place, "department", code);
            Some(TaskDepartment::Fixed(code.clone()))
        }
        (None, Some(path)) => {
            let Some(field) = path.strip_prefix("form.") else {
                ck.problem(
                    line,
                    place,
                    format!("department_from `{path}` must name a form field: form.<field>"),
                );
                return None;
            };
            let Some(def) = form.field(field) else {
                ck.problem(
                    line,
                    place,
                    format!("department_from: form field `{field}` is not declared in the form"),
                );
                return None;
            };
            let FieldType::Enum { allowed } = &def.ty else {
                ck.problem(
                    line,
                    place,
                    format!(
                        "department_from: form field `{field}` must be an enum of department codes"
                    ),
                );
                return None;
            };
            if !def.required {
                ck.problem(
                    line,
                    place,
                    format!("department_from: form field `{field}` must be required"),
                );
            }
            for code in allowed {
                ck.department(
                    line,
                    place,
                    &format!("department_from: allowed value of form.{field}"),
                    code,
                );
            }
            Some(TaskDepartment::FromForm(field.to_owned()))
        }
        _ => {
            ck.problem(
                line,
                place,
                "give exactly one of `department` and `department_from`",
            );
            None
        }
    }
}

/// Rejects jumps that can loop and stages that no path reaches.
fn check_graph(ck: &mut Checker<'_>, stages: &[StageDef], lines: &[Option<usize>]) {
    let n = stages.len();
    let edges: Vec<Vec<usize>> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut out = Vec::new();
            let mut exits_always = false;
            for r in &s.next {
                out.push(r.target);
                if r.when.is_none() {
                    exits_always = true;
                    break;
                }
            }
            let always_runs = s.when.is_none() && s.tasks.iter().any(|t| t.when.is_none());
            if !(always_runs && exits_always) && i + 1 < n {
                out.push(i + 1);
            }
            out
        })
        .collect();

    // Depth-first search with colours: reaching a node on the current path is a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    fn visit(
        node: usize,
        edges: &[Vec<usize>],
        colour: &mut [Colour],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        colour[node] = Colour::Grey;
        path.push(node);
        for &next in &edges[node] {
            match colour[next] {
                Colour::Grey => {
                    let start = path.iter().position(|&p| p == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next);
                    return Some(cycle);
                }
                Colour::White => {
                    if let Some(cycle) = visit(next, edges, colour, path) {
                        return Some(cycle);
                    }
                }
                Colour::Black => {}
            }
        }
        path.pop();
        colour[node] = Colour::Black;
        None
    }
    let mut colour = vec![Colour::White; n];
    for start in 0..n {
        if colour[start] != Colour::White {
            continue;
        }
        if let Some(cycle) = visit(start, &edges, &mut colour, &mut Vec::new()) {
            let names: Vec<&str> = cycle.iter().map(|&i| stages[i].id.as_str()).collect();
            // The stage whose jump closes the loop.
            let closing = cycle[cycle.len().saturating_sub(2)];
            ck.problem(
                lines[closing],
                &format!("stage `{}`", stages[closing].id),
                format!(
                    "cycle {}: jumps must lead forward so that every instance ends",
                    names.join(" → ")
                ),
            );
            break;
        }
    }

    let mut reached = vec![false; n];
    let mut todo = vec![0];
    while let Some(i) = todo.pop() {
        if i < n && !reached[i] {
            reached[i] = true;
            todo.extend(&edges[i]);
        }
    }
    for (i, stage) in stages.iter().enumerate() {
        if !reached[i] {
            ck.problem(
                lines[i],
                &format!("stage `{}`", stage.id),
                format!("is unreachable from the first stage `{}`", stages[0].id),
            );
        }
    }
}

fn check_request(
    ck: &mut Checker<'_>,
    kind: MatterKind,
    raw: Option<Spanned<RawRequest>>,
    stages: &[StageDef],
) -> Option<RequestPolicy> {
    let place = "[request]";
    let Some(raw) = raw else {
        if kind == MatterKind::EnterpriseRequest {
            ck.problem(
                None,
                place,
                "an enterprise_request matter needs a [request] section",
            );
        }
        return None;
    };
    let line = ck.line(&raw);
    let r = raw.into_inner();
    if kind != MatterKind::EnterpriseRequest {
        ck.problem(
            line,
            place,
            "only an enterprise_request matter has a [request] section",
        );
    }
    let mut reopen_on = Vec::new();
    for s in &r.reopen_on {
        match Rating::parse(s) {
            Some(rating) => reopen_on.push(rating),
            None => ck.problem(
                line,
                place,
                format!(
                    "reopen_on: `{s}` is not a rating (satisfied, basically_satisfied, unsatisfied)"
                ),
            ),
        }
    }
    if r.answer_deadline_hours == 0 {
        ck.problem(line, place, "answer_deadline_hours must be 1 or more");
    }
    if let Some(d) = &r.supervising_department {
        ck.department(line, place, "supervising_department", d);
    }
    let reopen_stage = match r.reopen_stage {
        Some(id) => {
            if !stages.iter().any(|s| s.id == id) {
                ck.problem(
                    line,
                    place,
                    format!("reopen_stage `{id}` is not a stage of this matter"),
                );
            }
            id
        }
        None => stages.last().map(|s| s.id.clone()).unwrap_or_default(),
    };
    Some(RequestPolicy {
        reopen_on,
        answer_deadline_hours: r.answer_deadline_hours,
        supervising_department: r.supervising_department,
        reopen_stage,
    })
}

/// Loads every `*.toml` file of `dir`, in file-name order. Two files with the same code and
/// version are an error.
pub fn load_dir(
    dir: impl AsRef<Path>,
    departments: &Departments,
) -> Result<Vec<MatterDefinition>, DefinitionError> {
    let dir = dir.as_ref();
    let io = |origin: &Path| {
        let origin = origin.display().to_string();
        move |source| DefinitionError::Io { origin, source }
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut seen: BTreeMap<(String, u32), String> = BTreeMap::new();
    let mut out = Vec::new();
    for path in paths {
        let def = MatterDefinition::load(&path, departments)?;
        let origin = path.display().to_string();
        let key = (def.code.clone(), def.version);
        if let Some(first) = seen.get(&key) {
            return Err(DefinitionError::Duplicate {
                origin,
                code: def.code,
                version: def.version,
                first: first.clone(),
            });
        }
        seen.insert(key, origin);
        out.push(def);
    }
    Ok(out)
}
