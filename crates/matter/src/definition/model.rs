//! The validated model of a matter definition: what intake and approval use. Values of these
//! types come only out of [`MatterDefinition::parse`], so they hold the rules the checks enforce.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::condition::{Condition, CreditClass, EvalContext};
use crate::department::Departments;
use crate::error::{DefinitionError, EvalError};
use crate::form::FormSchema;

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
    /// When owed and overdue, the application is suspended (status SUSPENDED) until the
    /// material is supplied; otherwise overdue only escalates. Only with `may_owe`.
    pub suspend_when_overdue: bool,
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
    /// Hand the task to the department's township office covering the routing region: the
    /// project site's when the matter declares `site_region_field`, else the applicant's.
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
    pub(crate) target: usize,
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

    pub(crate) fn parse(s: &str) -> Option<Self> {
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
    /// Working days an answered request waits for the enterprise's rating before it closes
    /// itself, marked as unrated.
    pub close_unrated_after_working_days: u32,
    /// 分类交办: the stage whose approval may choose the departments of the stage after it
    /// (the accepting clerk's assignment); `None`: the plan's departments stand.
    pub assign_stage: Option<String>,
}

/// Working days an answered request waits for a rating, when a matter does not say
/// `close_unrated_after_working_days`.
pub const DEFAULT_CLOSE_UNRATED_AFTER_WORKING_DAYS: u32 = 10;

/// Working hours past the deadline before an overdue task is escalated, when a matter does not
/// say `escalate_after_hours`.
pub const DEFAULT_ESCALATE_AFTER_HOURS: u32 = 4;

/// Which decisions must carry a reason (`[reason_required]`; by default a rejection does and
/// an approval does not). The API refuses a required reason left empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReasonRequired {
    pub approve: bool,
    pub reject: bool,
}

impl Default for ReasonRequired {
    fn default() -> Self {
        Self {
            approve: false,
            reject: true,
        }
    }
}

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
    /// Which decisions must carry a reason.
    pub reason_required: ReasonRequired,
    /// The (required, text) form field holding the project site's region code (项目所在地);
    /// region-routed tasks follow it instead of the applicant's registered region, and intake
    /// accepts only codes of the region table there.
    pub site_region_field: Option<String>,
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

impl MatterDefinition {
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

    /// The project site's region code from `form`, when the matter declares
    /// `site_region_field` and the form holds text there.
    pub fn site_region<'a>(&self, form: &'a Map<String, Value>) -> Option<&'a str> {
        let field = self.site_region_field.as_deref()?;
        form.get(field).and_then(Value::as_str)
    }

    /// The facts conditions and routing are evaluated against, for one application of this
    /// matter: the site region is read from the form as the matter declares.
    pub fn eval_context<'a>(
        &self,
        form: &'a Map<String, Value>,
        credit_class: Option<CreditClass>,
        region_code: &'a str,
        pledge_signed: bool,
    ) -> EvalContext<'a> {
        EvalContext {
            form,
            credit_class,
            region_code,
            site_region: self.site_region(form),
            pledge_signed,
        }
    }

    /// Whether the application is approved on its pledge: the matter allows pledges, the
    /// applicant signed one and its credit class, as the credit registry gave it, is admitted.
    /// An unknown class (unknown code, registry down) is never admitted, whatever the matter
    /// allows: a pledge path is a privilege the registry must vouch for, so it never fails open.
    pub fn pledge_applies(&self, ctx: &EvalContext<'_>) -> bool {
        self.pledge.as_ref().is_some_and(|p| {
            ctx.pledge_signed
                && ctx
                    .credit_class
                    .is_some_and(|c| p.allowed_credit_classes.contains(&c))
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
        departments.route(&department, ctx.routing_region()).office
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
