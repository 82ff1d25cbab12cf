//! Conversions between approval's domain and the wire: domain records and views to the API's
//! messages, the `task.decided` event, and the snapshot's proto values to what conditions are
//! evaluated against. The enum conversions are in [`crate::model`].

use tongban_outbox::new_envelope;
use tongban_proto::{
    approval as pb,
    events::{self, Envelope, envelope::Payload},
    time::ts,
};

use crate::{
    audit::Entry,
    engine::PRODUCER,
    repository::{StoredDefinition, Task, from_ms},
    views::{AuditTrail, StageView, WorkflowView},
};

/// A task as the API shows it at `now_ms` (which decides `overdue`).
pub fn task_to_proto(t: &Task, now_ms: i64) -> pb::Task {
    pb::Task {
        task_id: t.task_id.clone(),
        application_id: t.application_id.clone(),
        matter_code: t.matter_code.clone(),
        stage_id: t.stage_id.clone(),
        stage_name: t.stage_name.clone(),
        kind: pb::TaskKind::from(t.kind) as i32,
        status: pb::TaskStatus::from(t.status) as i32,
        department: t.department.clone(),
        office: t.office.clone(),
        assignee: t.assignee.clone(),
        version: t.version,
        create_time: Some(ts(from_ms(t.created_at))),
        due_time: Some(ts(from_ms(t.due_at))),
        decide_time: t.decided_at.map(|d| ts(from_ms(d))),
        decision: pb::Decision::from(t.decision) as i32,
        comment: t.comment.clone(),
        overdue: t.status.is_active() && now_ms > t.due_at,
        escalated: t.escalated,
        title: t.title.clone(),
        deadline_working_hours: t.deadline_hours,
    }
}

fn stage_to_proto(s: StageView, now_ms: i64) -> pb::Stage {
    pb::Stage {
        stage_id: s.stage_id,
        name: s.name,
        state: pb::StageState::from(s.state) as i32,
        tasks: s.tasks.iter().map(|t| task_to_proto(t, now_ms)).collect(),
    }
}

/// A workflow view as the API shows it at `now_ms`.
pub fn workflow_to_proto(w: WorkflowView, now_ms: i64) -> pb::Workflow {
    let inst = w.instance;
    pb::Workflow {
        instance_id: inst.instance_id,
        application_id: inst.application_id,
        matter_code: inst.matter_code,
        definition_version: inst.definition_version,
        status: pb::WorkflowStatus::from(inst.state.status) as i32,
        stages: w
            .stages
            .into_iter()
            .map(|s| stage_to_proto(s, now_ms))
            .collect(),
        follow_ups: w
            .follow_ups
            .iter()
            .map(|t| task_to_proto(t, now_ms))
            .collect(),
        timeline: w
            .timeline
            .iter()
            .map(|e| pb::TimelineEntry {
                time: Some(ts(from_ms(e.time_ms))),
                actor: e.actor.clone(),
                action: e.action.clone(),
                detail: e.reason.clone(),
                task_id: e.task_id.clone(),
            })
            .collect(),
        create_time: Some(ts(from_ms(inst.created_at))),
        update_time: Some(ts(from_ms(inst.updated_at))),
        version: inst.version,
    }
}

fn entry_to_proto(e: Entry) -> pb::AuditEntry {
    pb::AuditEntry {
        seq: e.seq,
        time: Some(ts(from_ms(e.time_ms))),
        actor: e.actor,
        role: e.role,
        action: e.action,
        reason: e.reason,
        task_id: e.task_id,
        prev_hash: e.prev_hash,
        hash: e.hash,
        department: e.department,
        on_behalf_of: e.on_behalf_of,
        outcome: e.outcome,
    }
}

pub fn audit_trail_to_proto(a: AuditTrail) -> pb::GetAuditTrailResponse {
    pb::GetAuditTrailResponse {
        entries: a.entries.into_iter().map(entry_to_proto).collect(),
        verified: a.first_bad_seq.is_none(),
        first_bad_seq: a.first_bad_seq.unwrap_or(0),
    }
}

pub fn definition_to_proto(d: StoredDefinition) -> pb::Definition {
    pb::Definition {
        matter_code: d.code,
        version: d.version,
        name: d.name,
        source: d.source,
        publish_time: Some(ts(from_ms(d.published_at))),
        published_by: d.published_by,
    }
}

/// `task.decided` for `t`, with the word for its decision and who made it.
pub fn decided_event(t: &Task, decision: &str, actor: &str) -> Envelope {
    new_envelope(
        PRODUCER,
        &t.application_id,
        Payload::TaskDecided(events::TaskDecided {
            task_id: t.task_id.clone(),
            department: t.department.clone(),
            decision: event_outcome(decision) as i32,
            actor: actor.into(),
            comment: t.comment.clone(),
        }),
    )
}

/// A task's decision word as `task.decided` carries it.
fn event_outcome(decision: &str) -> events::TaskOutcome {
    match decision {
        "approve" => events::TaskOutcome::Approve,
        "reject" => events::TaskOutcome::Reject,
        "request_supplement" => events::TaskOutcome::RequestSupplement,
        "done" => events::TaskOutcome::Done,
        _ => events::TaskOutcome::Unspecified,
    }
}

/// A rating as `outcome.rated` carries it.
pub fn event_rating(r: Option<tongban_matter::Rating>) -> events::Rating {
    match r {
        Some(tongban_matter::Rating::Satisfied) => events::Rating::Satisfied,
        Some(tongban_matter::Rating::BasicallySatisfied) => events::Rating::BasicallySatisfied,
        Some(tongban_matter::Rating::Unsatisfied) => events::Rating::Unsatisfied,
        None => events::Rating::Unspecified,
    }
}

impl From<crate::views::StageState> for pb::StageState {
    fn from(s: crate::views::StageState) -> Self {
        use crate::views::StageState as S;
        match s {
            S::Done => Self::Done,
            S::Active => Self::Active,
            S::Pending => Self::Pending,
            S::Skipped => Self::Skipped,
        }
    }
}

/// A rating from the API; `RATING_UNSPECIFIED` is none.
pub fn rating(r: pb::Rating) -> Option<tongban_matter::Rating> {
    match r {
        pb::Rating::Satisfied => Some(tongban_matter::Rating::Satisfied),
        pb::Rating::BasicallySatisfied => Some(tongban_matter::Rating::BasicallySatisfied),
        pb::Rating::Unsatisfied => Some(tongban_matter::Rating::Unsatisfied),
        pb::Rating::Unspecified => None,
    }
}

/// The applicant's credit class from the snapshot (`CREDIT_CLASS_UNSPECIFIED`: none).
pub fn credit_class(c: i32) -> Option<tongban_matter::CreditClass> {
    use tongban_proto::common::CreditClass as C;
    match C::try_from(c).ok()? {
        C::A => Some(tongban_matter::CreditClass::A),
        C::B => Some(tongban_matter::CreditClass::B),
        C::C => Some(tongban_matter::CreditClass::C),
        C::D => Some(tongban_matter::CreditClass::D),
        C::Unspecified => None,
    }
}

/// A ledger item as sent; its age is working time on `calendar` up to `now_ms` (or its close).
pub fn ledger_item_to_proto(
    item: &crate::ledger::LedgerItem,
    calendar: &tongban_calendar::Calendar,
    now_ms: i64,
) -> pb::LedgerItem {
    use crate::ledger::LedgerKind;
    let kind = match item.id.kind {
        LedgerKind::OverdueTask => pb::LedgerItemKind::OverdueTask,
        LedgerKind::OwedMaterial => pb::LedgerItemKind::OwedMaterial,
        LedgerKind::PledgeVerification => pb::LedgerItemKind::PledgeVerification,
        LedgerKind::EnterpriseRequest => pb::LedgerItemKind::EnterpriseRequest,
        LedgerKind::PoorRating => pb::LedgerItemKind::PoorRating,
    };
    let state = if item.is_open() {
        pb::LedgerItemState::Open
    } else {
        pb::LedgerItemState::Closed
    };
    pb::LedgerItem {
        item_id: item.id.to_string(),
        kind: kind as i32,
        state: state as i32,
        application_id: item.application_id.clone(),
        matter_code: item.matter_code.clone(),
        task_id: item.task_id.clone(),
        responsible_unit: item.responsible_unit.clone(),
        handling_unit: item.handling_unit.clone(),
        title: item.title.clone(),
        open_time: Some(ts(from_ms(item.opened_at))),
        due_time: item.due_at.map(|d| ts(from_ms(d))),
        close_time: item.closed_at.map(|c| ts(from_ms(c))),
        closed_by: item.closed_by.clone(),
        age_working_minutes: item.age(calendar, now_ms).num_minutes(),
        escalation_level: item.escalation_level,
        reopen_count: item.reopen_count,
    }
}

/// A rating as sent.
pub fn rating_to_proto(r: &crate::rating::ServiceRating) -> pb::ServiceRating {
    pb::ServiceRating {
        application_id: r.application_id.clone(),
        score: r.score,
        reasons: r.reasons.clone(),
        comment: r.comment.clone(),
        department: r.department.clone(),
        poor: r.poor,
        rate_time: Some(ts(from_ms(r.rated_at))),
        rectification: r.rectification.clone(),
        rectified_by: r.rectified_by.clone(),
        rectify_time: r.rectified_at.map(|t| ts(from_ms(t))),
    }
}
