//! The supervision ledger read off `tasks`, `instances` and the audit log in one query, the
//! same SQL on PostgreSQL and SQLite (see [`crate::ledger`] for what each kind tracks).
//!
//! Each kind is one `SELECT` of the same columns; the query is the `UNION ALL` of the kinds
//! asked for, filtered and ordered by (opened_at, item_id) outside. Status and kind values are
//! the stored strings of [`crate::model`]; the unit test below ties them together.

use sea_orm::{ConnectionTrait, DbErr, Value};

use crate::{
    error::ApprovalError,
    ledger::{ItemId, LedgerItem, LedgerKind},
};

/// What to list.
#[derive(Debug, Clone)]
pub struct Filter {
    pub now_ms: i64,
    /// A department (its offices included) or an office; `None`: every unit.
    pub unit: Option<String>,
    /// Empty: every kind.
    pub kinds: Vec<LedgerKind>,
    /// `Some(true)`: open only; `Some(false)`: closed only.
    pub open: Option<bool>,
    /// Only items opened at or before this instant.
    pub opened_by: Option<i64>,
    /// Resume strictly after this (opened_at, item_id).
    pub after: Option<(i64, String)>,
    pub limit: u64,
}

/// A task still being worked on (a task waiting for the applicant's supplement is neither open
/// nor closed here: its deadline starts again when the supplement arrives).
const TASK_OPEN: &str = "t.status IN ('OPEN', 'CLAIMED')";
const TASK_CLOSED: &str = "t.status NOT IN ('OPEN', 'CLAIMED', 'SUPPLEMENT_REQUESTED')";
/// A request's final states.
const REQUEST_CLOSED: &str = "i.status IN ('CLOSED', 'WITHDRAWN', 'REJECTED')";
/// The audit actions that finish a request (a rating that closes it, the close of an unrated
/// one, a withdrawal, a rejection); their actor struck it off. Later entries (the follow-up
/// visit's task) are not the close.
const CLOSING_ACTS: &str = "'closed', 'closed_unrated', 'withdrawn', 'reject'";

/// Who struck a task's item off: nobody while open; "system" when the task was cancelled with
/// its application; the enterprise (its credit code) for an owed material it supplied; else the
/// clerk who decided.
fn task_closed_by() -> String {
    format!(
        "CASE WHEN {TASK_OPEN} THEN '' WHEN t.status = 'CANCELLED' THEN 'system' \
         WHEN t.kind = 'TASK_KIND_FOLLOW_UP_MATERIAL' THEN i.owner_credit_code \
         WHEN t.assignee = '' THEN 'system' ELSE t.assignee END"
    )
}

/// The `SELECT` of one kind, its placeholders' values appended to `values`. `source`, when
/// given, restricts it to the item of that task or application.
fn part(kind: LedgerKind, now_ms: i64, source: Option<&str>, values: &mut Vec<Value>) -> String {
    let prefix = kind.prefix();
    let task_columns = |opened: &str| {
        format!(
            "SELECT '{prefix}' AS kind, '{prefix}:' || t.task_id AS item_id, t.application_id, \
             t.matter_code, t.task_id, t.department AS responsible_unit, \
             CASE WHEN t.office = '' THEN t.department ELSE t.office END AS handling_unit, \
             t.title, {opened} AS opened_at, t.due_at AS due_at, \
             CASE WHEN {TASK_OPEN} THEN NULL ELSE t.decided_at END AS closed_at, \
             {closed_by} AS closed_by, t.escalated AS escalation, CAST(0 AS BIGINT) AS reopens \
             FROM tasks t JOIN instances i ON i.instance_id = t.instance_id",
            closed_by = task_closed_by(),
        )
    };
    // Past due while open, or decided after the deadline.
    let mut overdue = |kinds: &str| {
        values.push(now_ms.into());
        format!(
            "{} WHERE t.kind IN ({kinds}) AND (({TASK_OPEN} AND t.due_at <= ?) \
             OR ({TASK_CLOSED} AND t.decided_at > t.due_at))",
            task_columns("t.due_at")
        )
    };
    let mut sql = match kind {
        LedgerKind::OverdueTask => overdue("'TASK_KIND_REVIEW', 'TASK_KIND_HANDLE_REQUEST'"),
        LedgerKind::OwedMaterial => overdue("'TASK_KIND_FOLLOW_UP_MATERIAL'"),
        LedgerKind::PledgeVerification => format!(
            "{} WHERE t.kind = 'TASK_KIND_VERIFY_PLEDGE' AND ({TASK_OPEN} OR {TASK_CLOSED})",
            task_columns("t.created_at")
        ),
        LedgerKind::EnterpriseRequest => {
            let chain = tongban_audit::application_chain("");
            values.extend([chain.clone().into(), chain.into()]);
            format!(
                "SELECT 'request' AS kind, 'request:' || i.application_id AS item_id, \
                 i.application_id, i.matter_code, '' AS task_id, \
                 i.lead_department AS responsible_unit, \
                 COALESCE((SELECT CASE WHEN t.office = '' THEN t.department ELSE t.office END \
                   FROM tasks t WHERE t.instance_id = i.instance_id \
                   ORDER BY t.created_at DESC, t.task_id DESC LIMIT 1), i.lead_department) \
                   AS handling_unit, \
                 COALESCE((SELECT t.title FROM tasks t WHERE t.instance_id = i.instance_id \
                   ORDER BY t.created_at, t.task_id LIMIT 1), i.matter_code) AS title, \
                 i.created_at AS opened_at, NULLIF(i.answer_due_at, 0) AS due_at, \
                 CASE WHEN {REQUEST_CLOSED} THEN i.updated_at ELSE NULL END AS closed_at, \
                 CASE WHEN {REQUEST_CLOSED} THEN COALESCE((SELECT a.actor_subject \
                   FROM audit_log a WHERE a.chain = ? || i.application_id \
                   AND a.action IN ({CLOSING_ACTS}) \
                   ORDER BY a.seq DESC LIMIT 1), 'system') ELSE '' END AS closed_by, \
                 COALESCE((SELECT MAX(t.escalated) FROM tasks t \
                   WHERE t.instance_id = i.instance_id), 0) AS escalation, \
                 (SELECT COUNT(*) FROM audit_log a WHERE a.chain = ? || i.application_id \
                   AND a.action = 'reopened') AS reopens \
                 FROM instances i WHERE i.kind = 'enterprise_request'"
            )
        }
        LedgerKind::PoorRating => {
            "SELECT 'rating' AS kind, 'rating:' || r.application_id AS item_id, \
             r.application_id, i.matter_code, '' AS task_id, r.department AS responsible_unit, \
             r.department AS handling_unit, \
             COALESCE((SELECT t.title FROM tasks t WHERE t.instance_id = i.instance_id \
               ORDER BY t.created_at, t.task_id LIMIT 1), i.matter_code) AS title, \
             r.rated_at AS opened_at, r.rectify_due_at AS due_at, \
             r.rectified_at AS closed_at, r.rectified_by AS closed_by, \
             CAST(0 AS BIGINT) AS escalation, CAST(0 AS BIGINT) AS reopens \
             FROM service_ratings r JOIN instances i ON i.application_id = r.application_id \
             WHERE r.poor = 1"
                .to_string()
        }
    };
    if let Some(source) = source {
        sql.push_str(match kind {
            LedgerKind::EnterpriseRequest => " AND i.application_id = ?",
            LedgerKind::PoorRating => " AND r.application_id = ?",
            _ => " AND t.task_id = ?",
        });
        values.push(source.into());
    }
    sql
}

fn decode(r: &sea_orm::QueryResult) -> Result<LedgerItem, ApprovalError> {
    let kind: String = r.try_get("", "kind")?;
    let item_id: String = r.try_get("", "item_id")?;
    let id = ItemId::parse(&item_id)
        .filter(|id| id.kind.prefix() == kind)
        .ok_or_else(|| ApprovalError::Corrupt(format!("ledger item id {item_id:?}")))?;
    let small = |col: &str| -> Result<i32, DbErr> {
        Ok(i32::try_from(r.try_get::<i64>("", col)?.max(0)).unwrap_or(i32::MAX))
    };
    Ok(LedgerItem {
        id,
        application_id: r.try_get("", "application_id")?,
        matter_code: r.try_get("", "matter_code")?,
        task_id: r.try_get("", "task_id")?,
        responsible_unit: r.try_get("", "responsible_unit")?,
        handling_unit: r.try_get("", "handling_unit")?,
        title: r.try_get("", "title")?,
        opened_at: r.try_get("", "opened_at")?,
        due_at: r.try_get("", "due_at")?,
        closed_at: r.try_get("", "closed_at")?,
        closed_by: r.try_get("", "closed_by")?,
        escalation_level: small("escalation")?,
        reopen_count: small("reopens")?,
    })
}

/// One page (up to `f.limit` rows) of the ledger, oldest first.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    f: &Filter,
) -> Result<Vec<LedgerItem>, ApprovalError> {
    let kinds: &[LedgerKind] = if f.kinds.is_empty() {
        &LedgerKind::ALL
    } else {
        &f.kinds
    };
    let mut values = Vec::new();
    let union = kinds
        .iter()
        .map(|k| part(*k, f.now_ms, None, &mut values))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let mut sql = format!("SELECT * FROM ({union}) items WHERE 1 = 1");
    if let Some(unit) = &f.unit {
        // A department's filter takes in its offices ("<department>.<office>").
        sql.push_str(
            " AND (responsible_unit = ? OR handling_unit = ? \
             OR substr(handling_unit, 1, length(?)) = ?)",
        );
        let office_prefix = format!("{unit}.");
        values.extend([
            unit.clone().into(),
            unit.clone().into(),
            office_prefix.clone().into(),
            office_prefix.into(),
        ]);
    }
    match f.open {
        Some(true) => sql.push_str(" AND closed_at IS NULL"),
        Some(false) => sql.push_str(" AND closed_at IS NOT NULL"),
        None => {}
    }
    if let Some(by) = f.opened_by {
        sql.push_str(" AND opened_at <= ?");
        values.push(by.into());
    }
    if let Some((at, id)) = &f.after {
        sql.push_str(" AND (opened_at > ? OR (opened_at = ? AND item_id > ?))");
        values.extend([(*at).into(), (*at).into(), id.clone().into()]);
    }
    sql.push_str(" ORDER BY opened_at, item_id LIMIT ?");
    values.push(i64::try_from(f.limit).unwrap_or(i64::MAX).into());
    let rows = db
        .query_all_raw(tongban_storage::stmt(
            db.get_database_backend(),
            &sql,
            values,
        ))
        .await?;
    rows.iter().map(decode).collect()
}

/// The item `id` at `now_ms`; `None` when there is no such item (e.g. a task not overdue).
pub async fn find<C: ConnectionTrait>(
    db: &C,
    id: &ItemId,
    now_ms: i64,
) -> Result<Option<LedgerItem>, ApprovalError> {
    let mut values = Vec::new();
    let sql = part(id.kind, now_ms, Some(&id.source), &mut values);
    let row = db
        .query_one_raw(tongban_storage::stmt(
            db.get_database_backend(),
            &sql,
            values,
        ))
        .await?;
    row.as_ref().map(decode).transpose()
}

#[cfg(test)]
mod tests {
    use sea_orm::ActiveEnum;

    use crate::model::{InstanceKind, InstanceStatus, TaskKind, TaskState};

    /// The literals in the SQL above are the stored values of these enums.
    #[test]
    fn literals_are_the_stored_values() {
        let sql = [
            super::TASK_OPEN,
            super::TASK_CLOSED,
            super::REQUEST_CLOSED,
            &super::task_closed_by(),
        ]
        .concat();
        for s in [
            TaskState::Open,
            TaskState::Claimed,
            TaskState::SupplementRequested,
            TaskState::Cancelled,
        ] {
            assert!(sql.contains(&format!("'{}'", s.to_value())), "{s}");
        }
        for s in [
            InstanceStatus::Closed,
            InstanceStatus::Withdrawn,
            InstanceStatus::Rejected,
        ] {
            assert!(sql.contains(&format!("'{}'", s.to_value())), "{s}");
        }
        let mut values = Vec::new();
        let parts: String = crate::ledger::LedgerKind::ALL
            .iter()
            .map(|k| super::part(*k, 0, None, &mut values))
            .collect();
        for k in [
            TaskKind::Review,
            TaskKind::HandleRequest,
            TaskKind::FollowUpMaterial,
            TaskKind::VerifyPledge,
        ] {
            assert!(parts.contains(&format!("'{}'", k.to_value())), "{k}");
        }
        assert!(parts.contains(&format!("'{}'", InstanceKind::EnterpriseRequest.to_value())));
        let reject = crate::workflow::Decision::Reject.event_name();
        assert!(super::CLOSING_ACTS.contains(&format!("'{reject}'")));
    }
}
