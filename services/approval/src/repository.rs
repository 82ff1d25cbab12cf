//! Approval's persistence: `instances`, `tasks`, `definitions`, `counters` (audit rows live in
//! [`crate::audit`]). Raw SQL with `?` placeholders (renumbered for PostgreSQL by
//! [`stmt`]); everything that writes takes the caller's transaction so that state and the events
//! it causes commit together.

use chrono::{DateTime, Utc};
use prost::Message;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Value};
use tongban_proto::{approval::TaskKind, events::ApplicationSnapshot};
use tongban_storage::stmt;

use crate::{
    error::ApprovalError,
    workflow::{InstanceStatus, StagePlan, TaskState},
};

pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// One application's run through its workflow.
#[derive(Debug, Clone)]
pub struct Instance {
    pub instance_id: String,
    pub application_id: String,
    pub matter_code: String,
    pub definition_version: u32,
    /// An enterprise request (answered and rated) rather than an application (approved).
    pub is_request: bool,
    pub status: InstanceStatus,
    /// Kept after the instance finished so that the workflow view knows the last stage.
    pub stage_index: usize,
    pub plan: Vec<StagePlan>,
    pub on_pledge: bool,
    pub lead_department: String,
    pub owner_credit_code: String,
    /// The task that asked for the supplement being waited for ("" when none).
    pub supplement_task_id: String,
    pub snapshot: ApplicationSnapshot,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub task_id: String,
    pub instance_id: String,
    pub application_id: String,
    pub matter_code: String,
    /// -1 for follow-up tasks outside the stages.
    pub stage_index: i64,
    pub stage_id: String,
    pub stage_name: String,
    pub kind: TaskKind,
    pub status: TaskState,
    pub department: String,
    pub office: String,
    pub assignee: String,
    pub title: String,
    /// For FOLLOW_UP_MATERIAL: the owed material kind.
    pub material_kind: String,
    pub deadline_hours: u32,
    pub version: i64,
    pub created_at: i64,
    pub due_at: i64,
    pub due_soon_at: i64,
    /// When the task, if still active, is escalated: `escalate_after_hours` of working time
    /// past `due_at`.
    pub escalate_at: i64,
    pub decided_at: Option<i64>,
    pub decision: String,
    pub comment: String,
    pub due_soon_sent: bool,
    pub overdue_sent: bool,
    pub escalated: bool,
}

impl Task {
    pub fn is_follow_up(&self) -> bool {
        self.stage_index < 0
    }
}

fn lock_clause(b: DbBackend, lock: Lock) -> &'static str {
    match (b, lock) {
        (DbBackend::Postgres, Lock::Update) => " FOR UPDATE",
        (DbBackend::Postgres, Lock::SkipLocked) => " FOR UPDATE SKIP LOCKED",
        _ => "",
    }
}

/// Row locking for reads inside a write transaction (PostgreSQL only; SQLite's write
/// transactions already exclude each other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    None,
    Update,
    SkipLocked,
}

const INSTANCE_COLS: &str = "instance_id, application_id, matter_code, definition_version, kind, status, stage_index, plan, on_pledge, lead_department, owner_credit_code, supplement_task_id, snapshot, version, created_at, updated_at";

fn decode_instance(r: &QueryResult) -> Result<Instance, ApprovalError> {
    let status: String = r.try_get("", "status")?;
    let stage_index = r.try_get::<i64>("", "stage_index")?.max(0) as usize;
    let plan: String = r.try_get("", "plan")?;
    let snapshot: Vec<u8> = r.try_get("", "snapshot")?;
    Ok(Instance {
        instance_id: r.try_get("", "instance_id")?,
        application_id: r.try_get("", "application_id")?,
        matter_code: r.try_get("", "matter_code")?,
        definition_version: r.try_get::<i64>("", "definition_version")? as u32,
        is_request: r.try_get::<String>("", "kind")? == "enterprise_request",
        status: InstanceStatus::from_stored(&status, stage_index)
            .ok_or_else(|| ApprovalError::Corrupt(format!("instance status {status}")))?,
        stage_index,
        plan: serde_json::from_str(&plan)
            .map_err(|e| ApprovalError::Corrupt(format!("plan: {e}")))?,
        on_pledge: r.try_get::<i64>("", "on_pledge")? != 0,
        lead_department: r.try_get("", "lead_department")?,
        owner_credit_code: r.try_get("", "owner_credit_code")?,
        supplement_task_id: r.try_get("", "supplement_task_id")?,
        snapshot: ApplicationSnapshot::decode(snapshot.as_slice())
            .map_err(|e| ApprovalError::Corrupt(format!("snapshot: {e}")))?,
        version: r.try_get("", "version")?,
        created_at: r.try_get("", "created_at")?,
        updated_at: r.try_get("", "updated_at")?,
    })
}

/// Inserts an instance; `false` when the application already has one (a redelivery that got
/// past the inbox, e.g. the same application submitted under two event ids).
pub async fn insert_instance<C: ConnectionTrait>(
    conn: &C,
    i: &Instance,
) -> Result<bool, ApprovalError> {
    let b = conn.get_database_backend();
    let plan = serde_json::to_string(&i.plan).map_err(|e| ApprovalError::Corrupt(e.to_string()))?;
    let res = conn
        .execute_raw(stmt(
            b,
            &format!(
                "INSERT INTO instances ({INSTANCE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (application_id) DO NOTHING"
            ),
            vec![
                i.instance_id.clone().into(),
                i.application_id.clone().into(),
                i.matter_code.clone().into(),
                i64::from(i.definition_version).into(),
                if i.is_request { "enterprise_request" } else { "application" }.into(),
                i.status.name().into(),
                (i.stage_index as i64).into(),
                plan.into(),
                i64::from(i.on_pledge).into(),
                i.lead_department.clone().into(),
                i.owner_credit_code.clone().into(),
                i.supplement_task_id.clone().into(),
                i.snapshot.encode_to_vec().into(),
                i.version.into(),
                i.created_at.into(),
                i.updated_at.into(),
            ],
        ))
        .await?;
    Ok(res.rows_affected() == 1)
}

/// The instance of an application; with `lock`, the row is the application's mutex: every
/// change to the instance, its tasks or its audit chain takes it first.
pub async fn find_instance<C: ConnectionTrait>(
    conn: &C,
    application_id: &str,
    lock: Lock,
) -> Result<Option<Instance>, ApprovalError> {
    let b = conn.get_database_backend();
    let sql = format!(
        "SELECT {INSTANCE_COLS} FROM instances WHERE application_id = ?{}",
        lock_clause(b, lock)
    );
    let row = conn
        .query_one_raw(stmt(b, &sql, vec![application_id.into()]))
        .await?;
    row.as_ref().map(decode_instance).transpose()
}

pub async fn update_instance<C: ConnectionTrait>(conn: &C, i: &Instance) -> Result<(), DbErr> {
    let b = conn.get_database_backend();
    conn.execute_raw(stmt(
        b,
        "UPDATE instances SET status = ?, stage_index = ?, supplement_task_id = ?, version = ?, updated_at = ? WHERE instance_id = ?",
        vec![
            i.status.name().into(),
            (i.stage_index as i64).into(),
            i.supplement_task_id.clone().into(),
            i.version.into(),
            i.updated_at.into(),
            i.instance_id.clone().into(),
        ],
    ))
    .await?;
    Ok(())
}

const TASK_COLS: &str = "task_id, instance_id, application_id, matter_code, stage_index, stage_id, stage_name, kind, status, department, office, assignee, title, material_kind, deadline_hours, version, created_at, due_at, due_soon_at, decided_at, decision, comment, due_soon_sent, overdue_sent, escalated, escalate_at";

fn decode_task(r: &QueryResult) -> Result<Task, ApprovalError> {
    let status: String = r.try_get("", "status")?;
    let kind: String = r.try_get("", "kind")?;
    Ok(Task {
        task_id: r.try_get("", "task_id")?,
        instance_id: r.try_get("", "instance_id")?,
        application_id: r.try_get("", "application_id")?,
        matter_code: r.try_get("", "matter_code")?,
        stage_index: r.try_get("", "stage_index")?,
        stage_id: r.try_get("", "stage_id")?,
        stage_name: r.try_get("", "stage_name")?,
        kind: TaskKind::from_str_name(&kind)
            .ok_or_else(|| ApprovalError::Corrupt(format!("task kind {kind}")))?,
        status: TaskState::from_stored(&status)
            .ok_or_else(|| ApprovalError::Corrupt(format!("task status {status}")))?,
        department: r.try_get("", "department")?,
        office: r.try_get("", "office")?,
        assignee: r.try_get("", "assignee")?,
        title: r.try_get("", "title")?,
        material_kind: r.try_get("", "material_kind")?,
        deadline_hours: r.try_get::<i64>("", "deadline_hours")? as u32,
        version: r.try_get("", "version")?,
        created_at: r.try_get("", "created_at")?,
        due_at: r.try_get("", "due_at")?,
        due_soon_at: r.try_get("", "due_soon_at")?,
        decided_at: r.try_get("", "decided_at")?,
        decision: r.try_get("", "decision")?,
        comment: r.try_get("", "comment")?,
        due_soon_sent: r.try_get::<i64>("", "due_soon_sent")? != 0,
        overdue_sent: r.try_get::<i64>("", "overdue_sent")? != 0,
        escalated: r.try_get::<i64>("", "escalated")? != 0,
        escalate_at: r.try_get("", "escalate_at")?,
    })
}

pub async fn insert_task<C: ConnectionTrait>(conn: &C, t: &Task) -> Result<(), DbErr> {
    let b = conn.get_database_backend();
    let marks = vec!["?"; 26].join(", ");
    conn.execute_raw(stmt(
        b,
        &format!("INSERT INTO tasks ({TASK_COLS}) VALUES ({marks})"),
        vec![
            t.task_id.clone().into(),
            t.instance_id.clone().into(),
            t.application_id.clone().into(),
            t.matter_code.clone().into(),
            t.stage_index.into(),
            t.stage_id.clone().into(),
            t.stage_name.clone().into(),
            t.kind.as_str_name().into(),
            t.status.name().into(),
            t.department.clone().into(),
            t.office.clone().into(),
            t.assignee.clone().into(),
            t.title.clone().into(),
            t.material_kind.clone().into(),
            i64::from(t.deadline_hours).into(),
            t.version.into(),
            t.created_at.into(),
            t.due_at.into(),
            t.due_soon_at.into(),
            t.decided_at.into(),
            t.decision.clone().into(),
            t.comment.clone().into(),
            i64::from(t.due_soon_sent).into(),
            i64::from(t.overdue_sent).into(),
            i64::from(t.escalated).into(),
            t.escalate_at.into(),
        ],
    ))
    .await?;
    Ok(())
}

pub async fn find_task<C: ConnectionTrait>(
    conn: &C,
    task_id: &str,
) -> Result<Option<Task>, ApprovalError> {
    let b = conn.get_database_backend();
    let row = conn
        .query_one_raw(stmt(
            b,
            &format!("SELECT {TASK_COLS} FROM tasks WHERE task_id = ?"),
            vec![task_id.into()],
        ))
        .await?;
    row.as_ref().map(decode_task).transpose()
}

pub async fn tasks_of_instance<C: ConnectionTrait>(
    conn: &C,
    instance_id: &str,
) -> Result<Vec<Task>, ApprovalError> {
    let b = conn.get_database_backend();
    let rows = conn
        .query_all_raw(stmt(
            b,
            &format!(
                "SELECT {TASK_COLS} FROM tasks WHERE instance_id = ? ORDER BY created_at, task_id"
            ),
            vec![instance_id.into()],
        ))
        .await?;
    rows.iter().map(decode_task).collect()
}

/// Writes a changed task only if nobody changed it since `expected_version`: the optimistic
/// concurrency check and the write are one statement, so of two concurrent decisions exactly
/// one matches. Returns whether the row was written.
pub async fn update_task_if_version<C: ConnectionTrait>(
    conn: &C,
    t: &Task,
    expected_version: i64,
) -> Result<bool, DbErr> {
    let b = conn.get_database_backend();
    let res = conn
        .execute_raw(stmt(
            b,
            "UPDATE tasks SET status = ?, department = ?, office = ?, assignee = ?, version = ?, due_at = ?, due_soon_at = ?,
                decided_at = ?, decision = ?, comment = ?, due_soon_sent = ?, overdue_sent = ?, escalated = ?, escalate_at = ?
             WHERE task_id = ? AND version = ?",
            vec![
                t.status.name().into(),
                t.department.clone().into(),
                t.office.clone().into(),
                t.assignee.clone().into(),
                t.version.into(),
                t.due_at.into(),
                t.due_soon_at.into(),
                t.decided_at.into(),
                t.decision.clone().into(),
                t.comment.clone().into(),
                i64::from(t.due_soon_sent).into(),
                i64::from(t.overdue_sent).into(),
                i64::from(t.escalated).into(),
                t.escalate_at.into(),
                t.task_id.clone().into(),
                expected_version.into(),
            ],
        ))
        .await?;
    Ok(res.rows_affected() == 1)
}

/// Filter for [`list_tasks`].
#[derive(Debug, Default, Clone)]
pub struct TaskFilter {
    /// Matches the task's department or its township office.
    pub department: Option<String>,
    pub assignee: Option<String>,
    pub statuses: Vec<TaskState>,
    pub due_before: Option<i64>,
    pub application_id: Option<String>,
    /// Keyset paging: strictly after this (due_at, task_id).
    pub after: Option<(i64, String)>,
    pub limit: u64,
}

/// Tasks matching `f`, soonest due first.
pub async fn list_tasks<C: ConnectionTrait>(
    conn: &C,
    f: &TaskFilter,
) -> Result<Vec<Task>, ApprovalError> {
    let b = conn.get_database_backend();
    let mut sql = format!("SELECT {TASK_COLS} FROM tasks WHERE 1=1");
    let mut values: Vec<Value> = Vec::new();
    if let Some(d) = &f.department {
        sql.push_str(" AND (department = ? OR office = ?)");
        values.push(d.clone().into());
        values.push(d.clone().into());
    }
    if let Some(a) = &f.assignee {
        sql.push_str(" AND assignee = ?");
        values.push(a.clone().into());
    }
    if !f.statuses.is_empty() {
        sql.push_str(&format!(
            " AND status IN ({})",
            vec!["?"; f.statuses.len()].join(",")
        ));
        values.extend(f.statuses.iter().map(|s| Value::from(s.name())));
    }
    if let Some(t) = f.due_before {
        sql.push_str(" AND due_at < ?");
        values.push(t.into());
    }
    if let Some(a) = &f.application_id {
        sql.push_str(" AND application_id = ?");
        values.push(a.clone().into());
    }
    if let Some((due, id)) = &f.after {
        sql.push_str(" AND (due_at > ? OR (due_at = ? AND task_id > ?))");
        values.extend([
            Value::from(*due),
            Value::from(*due),
            Value::from(id.clone()),
        ]);
    }
    sql.push_str(" ORDER BY due_at, task_id LIMIT ?");
    values.push((f.limit as i64).into());
    let rows = conn.query_all_raw(stmt(b, &sql, values)).await?;
    rows.iter().map(decode_task).collect()
}

/// Active tasks with a timer that is due at `now` and not yet fired: (application_id, task_id).
pub async fn due_timers<C: ConnectionTrait>(
    conn: &C,
    now: i64,
    limit: u64,
) -> Result<Vec<(String, String)>, DbErr> {
    let b = conn.get_database_backend();
    let rows = conn
        .query_all_raw(stmt(
            b,
            "SELECT application_id, task_id FROM tasks WHERE status IN ('OPEN', 'CLAIMED')
               AND ((due_soon_sent = 0 AND due_soon_at <= ?) OR (overdue_sent = 0 AND due_at <= ?) OR (escalated = 0 AND escalate_at <= ?))
             ORDER BY due_at LIMIT ?",
            vec![now.into(), now.into(), now.into(), (limit as i64).into()],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("", "application_id")?, r.try_get("", "task_id")?)))
        .collect()
}

/// Next value of a named counter (starting at 1), atomically.
pub async fn next_counter<C: ConnectionTrait>(conn: &C, name: &str) -> Result<i64, ApprovalError> {
    let b = conn.get_database_backend();
    let row = conn
        .query_one_raw(stmt(
            b,
            "INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
            vec![name.into()],
        ))
        .await?;
    let row =
        row.ok_or_else(|| ApprovalError::Corrupt(format!("counter {name} returned nothing")))?;
    Ok(row.try_get("", "value")?)
}

/// A stored definition version.
#[derive(Debug, Clone)]
pub struct StoredDefinition {
    pub code: String,
    pub version: u32,
    pub name: String,
    pub source: String,
    pub published_at: i64,
    pub published_by: String,
}

/// Stores a definition version; `false` when that code and version exist already.
pub async fn save_definition<C: ConnectionTrait>(
    conn: &C,
    d: &StoredDefinition,
) -> Result<bool, DbErr> {
    let b = conn.get_database_backend();
    let res = conn
        .execute_raw(stmt(
            b,
            "INSERT INTO definitions (code, version, name, source, published_at, published_by) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (code, version) DO NOTHING",
            vec![
                d.code.clone().into(),
                i64::from(d.version).into(),
                d.name.clone().into(),
                d.source.clone().into(),
                d.published_at.into(),
                d.published_by.clone().into(),
            ],
        ))
        .await?;
    Ok(res.rows_affected() == 1)
}

/// Stored definitions, by code then version; only `code` when given.
pub async fn definitions<C: ConnectionTrait>(
    conn: &C,
    code: Option<&str>,
) -> Result<Vec<StoredDefinition>, DbErr> {
    let b = conn.get_database_backend();
    let (filter, values) = match code {
        Some(c) => (" WHERE code = ?", vec![Value::from(c)]),
        None => ("", vec![]),
    };
    let rows = conn
        .query_all_raw(stmt(
            b,
            &format!("SELECT code, version, name, source, published_at, published_by FROM definitions{filter} ORDER BY code, version"),
            values,
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredDefinition {
                code: r.try_get("", "code")?,
                version: r.try_get::<i64>("", "version")? as u32,
                name: r.try_get("", "name")?,
                source: r.try_get("", "source")?,
                published_at: r.try_get("", "published_at")?,
                published_by: r.try_get("", "published_by")?,
            })
        })
        .collect()
}
