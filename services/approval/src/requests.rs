//! The engine's inputs, parsed at the edge: [`crate::grpc`] turns each API request into one
//! of these (`TryFrom`), and [`crate::consumer`] turns a submission event into a
//! [`Submission`], so the engine never reads a raw proto field. A request that does not parse
//! is `INVALID_ARGUMENT` naming the field; rules that need the database or the caller's
//! identity stay in the engine.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};
use tongban_matter::CreditClass;
use tongban_proto::{
    approval as pb,
    events::{ApplicationSnapshot, Envelope},
    page::{Page, Paging},
    time::from_ts,
};

use crate::{
    error::{ApprovalError, invalid},
    model::{TaskKind, TaskState},
    repository::ms,
    workflow::Decision,
};

/// Longest comment (decisions, ratings), in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;
/// Longest definition source, in bytes.
pub const MAX_SOURCE_BYTES: usize = 256 * 1024;
/// Longest id, code, department or assignee, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest delegation reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// Most materials one supplement request may ask for.
pub const MAX_REQUESTED_MATERIALS: usize = 50;
/// Longest requested material name, in characters.
pub const MAX_MATERIAL_CHARS: usize = 200;
/// Most statuses in a ListTasks filter (there are fewer kinds than this).
pub const MAX_STATUSES: usize = 16;
/// The latest `due_before` a ListTasks filter may name: year 9999, as far as any stored
/// deadline can reach.
pub const MAX_DUE_BEFORE_SECONDS: i64 = 253_402_300_799;

/// A trimmed, non-blank string, or `None`.
fn given(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// `s` trimmed, refused when longer than [`MAX_ID_BYTES`] or holding control characters.
fn id(field: &str, s: &str) -> Result<String, ApprovalError> {
    let s = s.trim();
    if s.len() > MAX_ID_BYTES || s.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("must be at most {MAX_ID_BYTES} characters, without control characters"),
        ));
    }
    Ok(s.to_string())
}

fn capped(field: &str, s: &str, max_chars: usize) -> Result<String, ApprovalError> {
    let s = s.trim();
    if s.chars().count() > max_chars {
        return Err(invalid(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(s.to_string())
}

fn comment(s: &str) -> Result<String, ApprovalError> {
    let c = s.trim().to_string();
    if c.chars().count() > MAX_COMMENT_CHARS {
        return Err(invalid(
            "comment",
            format!("must be at most {MAX_COMMENT_CHARS} characters"),
        ));
    }
    Ok(c)
}

/// `ClaimTask`.
#[derive(Debug, Clone)]
pub struct Claim {
    pub task_id: String,
    /// 0: whatever version the task is at.
    pub expected_version: i64,
}

impl TryFrom<pb::ClaimTaskRequest> for Claim {
    type Error = ApprovalError;

    fn try_from(r: pb::ClaimTaskRequest) -> Result<Self, ApprovalError> {
        Ok(Self {
            task_id: id("task_id", &r.task_id)?,
            expected_version: r.expected_version,
        })
    }
}

/// `DecideTask`.
#[derive(Debug, Clone)]
pub struct Decide {
    pub task_id: String,
    pub decision: Decision,
    /// Trimmed; never empty unless the decision approves.
    pub comment: String,
    /// The task version the clerk saw (always given).
    pub expected_version: i64,
    pub requested_materials: Vec<String>,
    /// 分类交办: the handling departments the assignment stage's approval chooses (checked
    /// against the known departments and the matter by the engine).
    pub assign_departments: Vec<String>,
}

/// Most departments one request may be assigned to at once (协调会商).
pub const MAX_ASSIGNED_DEPARTMENTS: usize = 10;

impl TryFrom<pb::DecideTaskRequest> for Decide {
    type Error = ApprovalError;

    fn try_from(r: pb::DecideTaskRequest) -> Result<Self, ApprovalError> {
        let decision = pb::Decision::try_from(r.decision)
            .ok()
            .and_then(|d| Decision::try_from(d).ok())
            .ok_or_else(|| invalid("decision", "must be approve, reject or request_supplement"))?;
        let text = r.comment.trim();
        if decision != Decision::Approve && text.is_empty() {
            return Err(invalid(
                "comment",
                "is required to reject or request a supplement",
            ));
        }
        let comment = comment(text)?;
        if r.expected_version <= 0 {
            return Err(invalid(
                "expected_version",
                "must be the task version you saw",
            ));
        }
        if r.requested_materials.len() > MAX_REQUESTED_MATERIALS {
            return Err(invalid(
                "requested_materials",
                format!("at most {MAX_REQUESTED_MATERIALS} materials"),
            ));
        }
        let mut requested_materials = Vec::with_capacity(r.requested_materials.len());
        for (i, m) in r.requested_materials.iter().enumerate() {
            requested_materials.push(capped(
                &format!("requested_materials[{i}]"),
                m,
                MAX_MATERIAL_CHARS,
            )?);
        }
        if r.assign_departments.len() > MAX_ASSIGNED_DEPARTMENTS {
            return Err(invalid(
                "assign_departments",
                format!("at most {MAX_ASSIGNED_DEPARTMENTS} departments"),
            ));
        }
        if !r.assign_departments.is_empty() && decision != Decision::Approve {
            return Err(invalid(
                "assign_departments",
                "departments are assigned by approving the assignment stage",
            ));
        }
        let mut assign_departments: Vec<String> = Vec::new();
        for (i, d) in r.assign_departments.iter().enumerate() {
            let field = format!("assign_departments[{i}]");
            let d = id(&field, d)?;
            if d.is_empty() || assign_departments.contains(&d) {
                return Err(invalid(field, "must be a department code, each once"));
            }
            assign_departments.push(d);
        }
        Ok(Self {
            task_id: id("task_id", &r.task_id)?,
            decision,
            comment,
            expected_version: r.expected_version,
            requested_materials,
            assign_departments,
        })
    }
}

/// `DelegateTask`.
#[derive(Debug, Clone)]
pub struct Delegate {
    pub task_id: String,
    pub assignee: String,
    /// The department to move the task to, if any (checked against the known departments by
    /// the engine).
    pub department: Option<String>,
    pub reason: String,
    /// 0: whatever version the task is at.
    pub expected_version: i64,
}

impl TryFrom<pb::DelegateTaskRequest> for Delegate {
    type Error = ApprovalError;

    fn try_from(r: pb::DelegateTaskRequest) -> Result<Self, ApprovalError> {
        let assignee = given(&id("assignee", &r.assignee)?)
            .ok_or_else(|| invalid("assignee", "is required"))?;
        Ok(Self {
            task_id: id("task_id", &r.task_id)?,
            assignee,
            department: given(&id("department", &r.department)?),
            reason: capped("reason", &r.reason, MAX_REASON_CHARS)?,
            expected_version: r.expected_version,
        })
    }
}

/// Whose tasks to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignee {
    /// The caller (`"me"`).
    Me,
    Named(String),
}

/// Paging of ListTasks: soonest due first, resumed after the last (due_at, task_id).
pub const TASKS: Paging = Paging::new("approval.tasks", 50, 200);
/// Paging of ListLedgerItems: oldest first, resumed after the last (opened_at, item_id).
pub const LEDGER: Paging = Paging::new("approval.ledger", 50, 200);
/// Paging of ListDefinitions: by code then version, resumed after the last of them.
pub const DEFINITIONS: Paging = Paging::new("approval.definitions", 50, 200);

/// `ListTasks`.
#[derive(Debug, Clone)]
pub struct ListTasks {
    /// Which page: its size, and the (due_at, task_id) it starts strictly after.
    pub page: Page<(i64, String)>,
    pub department: Option<String>,
    pub assignee: Option<Assignee>,
    /// Never empty: OPEN and CLAIMED when none was asked for.
    pub statuses: Vec<TaskState>,
    /// Unix milliseconds.
    pub due_before: Option<i64>,
    pub application_id: Option<String>,
    /// Empty: every kind.
    pub kinds: Vec<TaskKind>,
}

impl TryFrom<pb::ListTasksRequest> for ListTasks {
    type Error = ApprovalError;

    fn try_from(r: pb::ListTasksRequest) -> Result<Self, ApprovalError> {
        let page = TASKS.page(r.page_size, &r.page_token)?;
        if r.statuses.len() > MAX_STATUSES {
            return Err(invalid(
                "statuses",
                format!("at most {MAX_STATUSES} statuses"),
            ));
        }
        // A time outside what can be stored is refused, not silently ignored.
        let due_before = match &r.due_before {
            None => None,
            Some(t) => {
                let valid = (0..=MAX_DUE_BEFORE_SECONDS).contains(&t.seconds)
                    && (0..1_000_000_000).contains(&t.nanos);
                let at = valid
                    .then(|| from_ts(t))
                    .flatten()
                    .ok_or_else(|| invalid("due_before", "must be a time between 1970 and 9999"))?;
                Some(ms(at))
            }
        };
        let mut statuses = Vec::new();
        for (i, s) in r.statuses.iter().enumerate() {
            let st = pb::TaskStatus::try_from(*s)
                .ok()
                .and_then(|s| TaskState::try_from(s).ok());
            statuses.push(st.ok_or_else(|| invalid(format!("statuses[{i}]"), "unknown status"))?);
        }
        if statuses.is_empty() {
            statuses = TaskState::ACTIVE.to_vec();
        }
        if r.kinds.len() > MAX_STATUSES {
            return Err(invalid("kinds", format!("at most {MAX_STATUSES} kinds")));
        }
        let mut kinds = Vec::new();
        for (i, k) in r.kinds.iter().enumerate() {
            let kind = pb::TaskKind::try_from(*k)
                .ok()
                .and_then(|k| TaskKind::try_from(k).ok());
            let kind = kind.ok_or_else(|| invalid(format!("kinds[{i}]"), "unknown task kind"))?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        Ok(Self {
            page,
            department: given(&id("department", &r.department)?),
            assignee: match id("assignee", &r.assignee)?.as_str() {
                "" => None,
                "me" => Some(Assignee::Me),
                other => Some(Assignee::Named(other.to_string())),
            },
            statuses,
            due_before,
            application_id: given(&id("application_id", &r.application_id)?),
            kinds,
        })
    }
}

/// `RateOutcome`.
#[derive(Debug, Clone)]
pub struct Rate {
    pub application_id: String,
    pub rating: tongban_matter::Rating,
    /// Trimmed.
    pub comment: String,
}

impl TryFrom<pb::RateOutcomeRequest> for Rate {
    type Error = ApprovalError;

    fn try_from(r: pb::RateOutcomeRequest) -> Result<Self, ApprovalError> {
        let rating = pb::Rating::try_from(r.rating)
            .ok()
            .and_then(crate::convert::rating)
            .ok_or_else(|| {
                invalid(
                    "rating",
                    "must be satisfied, basically_satisfied or unsatisfied",
                )
            })?;
        Ok(Self {
            application_id: id("application_id", &r.application_id)?,
            rating,
            comment: comment(&r.comment)?,
        })
    }
}

/// `ListDefinitions`.
#[derive(Debug, Clone)]
pub struct ListDefinitions {
    pub matter_code: Option<String>,
    /// Every version, rather than the latest of each code.
    pub all_versions: bool,
    /// Which page: its size, and the (code, version) it starts strictly after.
    pub page: Page<(String, u32)>,
}

impl TryFrom<pb::ListDefinitionsRequest> for ListDefinitions {
    type Error = ApprovalError;

    fn try_from(r: pb::ListDefinitionsRequest) -> Result<Self, ApprovalError> {
        Ok(Self {
            matter_code: given(&id("matter_code", &r.matter_code)?),
            all_versions: r.all_versions,
            page: DEFINITIONS.page(r.page_size, &r.page_token)?,
        })
    }
}

/// `PublishDefinition`: the definition's TOML source, not yet parsed (the engine parses it
/// against the departments it knows).
#[derive(Debug, Clone)]
pub struct Publish {
    pub source: String,
    /// The client's idempotency key; `None` when it sent none.
    pub request_id: Option<String>,
}

impl TryFrom<pb::PublishDefinitionRequest> for Publish {
    type Error = ApprovalError;

    fn try_from(r: pb::PublishDefinitionRequest) -> Result<Self, ApprovalError> {
        if r.source.trim().is_empty() {
            return Err(invalid("source", "must hold the definition (TOML)"));
        }
        if r.source.len() > MAX_SOURCE_BYTES {
            return Err(invalid("source", "must be at most 256 KiB"));
        }
        let request_id = r.request_id.trim();
        if request_id.len() > 128 || request_id.chars().any(char::is_control) {
            return Err(invalid(
                "request_id",
                "must be at most 128 characters, without control characters",
            ));
        }
        Ok(Self {
            request_id: given(request_id),
            source: r.source,
        })
    }
}

/// A material the application was accepted without (容缺受理), still owed.
#[derive(Debug, Clone)]
pub struct OwedMaterial {
    pub material_kind: String,
    /// When it is due; `None`: the engine's default window.
    pub due: Option<DateTime<Utc>>,
}

/// `application.submitted`: what the engine plans an instance from.
#[derive(Debug, Clone)]
pub struct Submission {
    pub application_id: String,
    pub matter_code: String,
    pub matter_version: u32,
    /// The form, as conditions evaluate it.
    pub form: Map<String, Json>,
    pub credit_class: Option<CreditClass>,
    pub credit_code: String,
    pub region_code: String,
    pub pledge_signed: bool,
    /// Owed materials not yet fulfilled.
    pub owed: Vec<OwedMaterial>,
    /// The snapshot as submitted, kept with the instance.
    pub snapshot: ApplicationSnapshot,
}

impl Submission {
    /// The submission an `application.submitted` envelope carries; the snapshot's application
    /// id, or the envelope's when the snapshot has none.
    pub fn from_event(env: &Envelope, snap: &ApplicationSnapshot) -> Self {
        let applicant = snap.applicant.clone().unwrap_or_default();
        Self {
            application_id: if snap.application_id.is_empty() {
                env.application_id.clone()
            } else {
                snap.application_id.clone()
            },
            matter_code: snap.matter_code.clone(),
            matter_version: snap.matter_version,
            form: tongban_proto::structs::struct_to_json(snap.form.as_ref()),
            credit_class: crate::convert::credit_class(applicant.credit_class),
            credit_code: applicant.credit_code,
            region_code: applicant.region_code,
            pledge_signed: snap.pledge.as_ref().is_some_and(|p| p.signed),
            owed: snap
                .owed_materials
                .iter()
                .filter(|o| o.fulfilled_time.is_none())
                .map(|o| OwedMaterial {
                    material_kind: o.material_kind.clone(),
                    due: o.due_time.as_ref().and_then(from_ts),
                })
                .collect(),
            snapshot: snap.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: ApprovalError) -> String {
        match e {
            ApprovalError::Invalid(v) => v.into_iter().map(|v| v.field).collect(),
            other => format!("not invalid: {other}"),
        }
    }

    #[test]
    fn bad_requests_name_the_field() {
        let decide = |decision: pb::Decision, comment: &str, version| {
            Decide::try_from(pb::DecideTaskRequest {
                task_id: "t".into(),
                decision: decision as i32,
                comment: comment.into(),
                expected_version: version,
                requested_materials: vec![],
                assign_departments: vec![],
            })
        };
        assert_eq!(
            field(decide(pb::Decision::Unspecified, "", 1).unwrap_err()),
            "decision"
        );
        assert_eq!(
            field(decide(pb::Decision::Reject, " ", 1).unwrap_err()),
            "comment"
        );
        assert_eq!(
            field(decide(pb::Decision::Approve, "", 0).unwrap_err()),
            "expected_version"
        );
        assert!(decide(pb::Decision::Approve, "", 3).is_ok());
        let list = ListTasks::try_from(pb::ListTasksRequest {
            statuses: vec![99],
            ..Default::default()
        });
        assert_eq!(field(list.unwrap_err()), "statuses[0]");
        let list = ListTasks::try_from(pb::ListTasksRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        });
        assert_eq!(field(list.unwrap_err()), "page_token");
    }

    #[test]
    fn lengths_and_ranges_are_capped() {
        let decide = |materials: Vec<String>| {
            Decide::try_from(pb::DecideTaskRequest {
                task_id: "t".into(),
                decision: pb::Decision::RequestSupplement as i32,
                comment: "more".into(),
                expected_version: 1,
                requested_materials: materials,
                assign_departments: vec![],
            })
        };
        assert_eq!(
            field(decide(vec!["m".into(); 51]).unwrap_err()),
            "requested_materials"
        );
        assert_eq!(
            field(decide(vec!["ok".into(), "长".repeat(201)]).unwrap_err()),
            "requested_materials[1]"
        );
        assert!(decide(vec!["环评报告表".into(); 50]).is_ok());
        let delegate = |assignee: String, reason: String| {
            Delegate::try_from(pb::DelegateTaskRequest {
                task_id: "t".into(),
                assignee,
                reason,
                ..Default::default()
            })
        };
        assert_eq!(
            field(delegate("a".repeat(129), String::new()).unwrap_err()),
            "assignee"
        );
        assert_eq!(
            field(delegate("bob".into(), "因".repeat(501)).unwrap_err()),
            "reason"
        );
        assert_eq!(
            field(
                Claim::try_from(pb::ClaimTaskRequest {
                    task_id: "t".repeat(1000),
                    expected_version: 0,
                })
                .unwrap_err()
            ),
            "task_id"
        );
        // Hostile times are refused, at once, naming the field.
        for seconds in [i64::MAX, i64::MIN, -1, MAX_DUE_BEFORE_SECONDS + 1] {
            let list = ListTasks::try_from(pb::ListTasksRequest {
                due_before: Some(prost_types::Timestamp { seconds, nanos: 0 }),
                ..Default::default()
            });
            assert_eq!(field(list.unwrap_err()), "due_before", "{seconds}");
        }
        let list = ListTasks::try_from(pb::ListTasksRequest {
            statuses: vec![1; 17],
            ..Default::default()
        });
        assert_eq!(field(list.unwrap_err()), "statuses");
        let ok = ListTasks::try_from(pb::ListTasksRequest {
            due_before: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(ok.due_before, Some(1_800_000_000_000));
    }

    #[test]
    fn page_tokens_round_trip() {
        let first = ListTasks::try_from(pb::ListTasksRequest::default()).unwrap();
        assert_eq!(first.statuses, TaskState::ACTIVE.to_vec());
        assert_eq!((first.page.size, first.page.after.clone()), (50, None));
        let mut rows = vec![(1_700_000_000_000_i64, "0193a:b".to_string()); 51];
        let token = first.page.finish(&mut rows, |r| r.clone());
        let next = ListTasks::try_from(pb::ListTasksRequest {
            page_token: token.clone(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            next.page.after,
            Some((1_700_000_000_000, "0193a:b".to_string()))
        );
        // A token of another list is not a ListTasks token.
        let defs = ListDefinitions::try_from(pb::ListDefinitionsRequest {
            page_token: token,
            ..Default::default()
        });
        assert_eq!(field(defs.unwrap_err()), "page_token");
    }
}

/// `ListLedgerItems`.
#[derive(Debug, Clone)]
pub struct ListLedger {
    pub page: Page<(i64, String)>,
    /// A department or township office; `None`: the caller's own (every unit for admins).
    pub unit: Option<String>,
    /// Empty: every kind.
    pub kinds: Vec<crate::ledger::LedgerKind>,
    /// `Some(true)`: open only; `Some(false)`: closed only; `None`: both.
    pub open: Option<bool>,
    pub min_age_working_hours: u32,
}

/// The longest age a ledger filter may ask for: ten years of working hours.
pub const MAX_LEDGER_AGE_HOURS: u32 = 10 * 250 * 8;

impl TryFrom<pb::ListLedgerItemsRequest> for ListLedger {
    type Error = ApprovalError;

    fn try_from(r: pb::ListLedgerItemsRequest) -> Result<Self, ApprovalError> {
        use crate::ledger::LedgerKind;
        let page = LEDGER.page(r.page_size, &r.page_token)?;
        let unit = r.unit.trim();
        if unit.len() > MAX_ID_BYTES {
            return Err(invalid("unit", format!("at most {MAX_ID_BYTES} bytes")));
        }
        if r.kinds.len() > LedgerKind::ALL.len() * 2 {
            return Err(invalid("kinds", "too many kinds"));
        }
        let mut kinds = Vec::new();
        for (i, k) in r.kinds.iter().enumerate() {
            let kind = match pb::LedgerItemKind::try_from(*k) {
                Ok(pb::LedgerItemKind::OverdueTask) => LedgerKind::OverdueTask,
                Ok(pb::LedgerItemKind::OwedMaterial) => LedgerKind::OwedMaterial,
                Ok(pb::LedgerItemKind::PledgeVerification) => LedgerKind::PledgeVerification,
                Ok(pb::LedgerItemKind::EnterpriseRequest) => LedgerKind::EnterpriseRequest,
                Ok(pb::LedgerItemKind::PoorRating) => LedgerKind::PoorRating,
                _ => return Err(invalid(format!("kinds[{i}]"), "unknown ledger item kind")),
            };
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        let open = match pb::LedgerItemState::try_from(r.state) {
            Ok(pb::LedgerItemState::Unspecified) => None,
            Ok(pb::LedgerItemState::Open) => Some(true),
            Ok(pb::LedgerItemState::Closed) => Some(false),
            Err(_) => return Err(invalid("state", "unknown ledger item state")),
        };
        if r.min_age_working_hours > MAX_LEDGER_AGE_HOURS {
            return Err(invalid(
                "min_age_working_hours",
                format!("at most {MAX_LEDGER_AGE_HOURS}"),
            ));
        }
        Ok(ListLedger {
            page,
            unit: (!unit.is_empty()).then(|| unit.to_string()),
            kinds,
            open,
            min_age_working_hours: r.min_age_working_hours,
        })
    }
}

/// `RateService`.
#[derive(Debug, Clone)]
pub struct RateService {
    pub application_id: String,
    /// 1 to 5.
    pub score: i32,
    /// Known codes, each once.
    pub reasons: Vec<String>,
    pub comment: String,
}

impl TryFrom<pb::RateServiceRequest> for RateService {
    type Error = ApprovalError;

    fn try_from(r: pb::RateServiceRequest) -> Result<Self, ApprovalError> {
        use crate::rating::{POOR_AT_MOST, REASONS};
        let application_id = id("application_id", &r.application_id)?;
        if !(1..=5).contains(&r.score) {
            return Err(invalid("score", "must be 1 to 5"));
        }
        let mut reasons: Vec<String> = Vec::new();
        for (i, code) in r.reasons.iter().enumerate() {
            let code = code.trim();
            if !REASONS.iter().any(|(c, _)| *c == code) {
                let known: Vec<&str> = REASONS.iter().map(|(c, _)| *c).collect();
                return Err(invalid(
                    format!("reasons[{i}]"),
                    format!("unknown reason {code:?}; one of {}", known.join(", ")),
                ));
            }
            if reasons.iter().any(|r| r == code) {
                return Err(invalid(format!("reasons[{i}]"), "given twice"));
            }
            reasons.push(code.to_string());
        }
        if r.score <= POOR_AT_MOST && reasons.is_empty() {
            return Err(invalid(
                "reasons",
                "a poor rating (1 or 2) needs at least one reason",
            ));
        }
        Ok(RateService {
            application_id,
            score: r.score,
            reasons,
            comment: comment(&r.comment)?,
        })
    }
}

/// `RecordRectification`.
#[derive(Debug, Clone)]
pub struct Rectify {
    pub application_id: String,
    pub rectification: String,
}

impl TryFrom<pb::RecordRectificationRequest> for Rectify {
    type Error = ApprovalError;

    fn try_from(r: pb::RecordRectificationRequest) -> Result<Self, ApprovalError> {
        let application_id = id("application_id", &r.application_id)?;
        let rectification = capped("rectification", &r.rectification, MAX_COMMENT_CHARS)?;
        if rectification.is_empty() {
            return Err(invalid("rectification", "must say what was done"));
        }
        Ok(Rectify {
            application_id,
            rectification,
        })
    }
}
