//! Approval's persistence, behind one narrow trait per table: [`InstanceStore`],
//! [`TaskStore`], [`DefinitionStore`], [`CounterStore`] (the audit log is
//! [`tongban_audit`]'s, wrapped by [`crate::audit`]). Each is implemented
//! for every sea-orm connection and transaction (the entities are in [`crate::entity`]), so
//! domain code calls them on the transaction it holds and state and the events it causes
//! commit together.
//!
//! The records here ([`Instance`], [`Task`], [`StoredDefinition`]) are what the engine works
//! with; the row models stay inside this module.

mod counters;
mod definitions;
mod instances;
pub mod ledger;
pub mod ratings;
mod tasks;

pub use tasks::{DepartmentLoad, department_load};

use std::future::Future;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use tongban_proto::events::ApplicationSnapshot;

pub use crate::model::{InstanceKind, TaskDecision, TaskKind, TaskState};
use crate::{
    error::ApprovalError,
    workflow::{InstanceState, StagePlan},
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
    pub kind: InstanceKind,
    /// The workflow machine's state: status and stage, stored in `status` and `stage_index`.
    pub state: InstanceState,
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
    /// An enterprise request's answer deadline, from its acceptance (Unix ms; 0: none yet).
    pub answer_due_at: i64,
    /// When an answered request nobody rated closes itself (Unix ms; 0: not awaiting).
    pub rating_due_at: i64,
}

impl Instance {
    /// An enterprise request (answered and rated) rather than an application (approved).
    pub fn is_request(&self) -> bool {
        self.kind == InstanceKind::EnterpriseRequest
    }
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
    pub decision: TaskDecision,
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

/// A stored definition version.
#[derive(Debug, Clone)]
pub struct StoredDefinition {
    pub code: String,
    pub version: u32,
    pub name: String,
    pub source: String,
    pub published_at: i64,
    pub published_by: String,
    /// The PublishDefinition idempotency key; "" when none.
    pub request_id: String,
}

/// Row locking for reads inside a write transaction (PostgreSQL only; SQLite's write
/// transactions already exclude each other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    None,
    Update,
    SkipLocked,
}

/// Filter for [`TaskStore::list_tasks`].
#[derive(Debug, Default, Clone)]
pub struct TaskFilter {
    /// Matches the task's department or its township office.
    pub department: Option<String>,
    pub assignee: Option<String>,
    pub statuses: Vec<TaskState>,
    pub due_before: Option<i64>,
    pub application_id: Option<String>,
    /// Empty: every kind.
    pub kinds: Vec<TaskKind>,
    /// Keyset paging: strictly after this (due_at, task_id).
    pub after: Option<(i64, String)>,
    pub limit: u64,
}

/// The `instances` table.
pub trait InstanceStore {
    /// Inserts an instance; `false` when the application already has one (a redelivery that
    /// got past the inbox, e.g. the same application submitted under two event ids).
    fn insert_instance(
        &self,
        i: &Instance,
    ) -> impl Future<Output = Result<bool, ApprovalError>> + Send;

    /// The instance of an application; with `lock`, the row is the application's mutex: every
    /// change to the instance, its tasks or its audit chain takes it first.
    fn find_instance(
        &self,
        application_id: &str,
        lock: Lock,
    ) -> impl Future<Output = Result<Option<Instance>, ApprovalError>> + Send;

    /// Writes the machine state, the supplement task, the request deadlines, version and
    /// update time.
    fn update_instance(&self, i: &Instance) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// Applications whose answer has waited for a rating until `now` (`rating_due_at` passed),
    /// oldest first, at most `limit`.
    fn lapsed_ratings(
        &self,
        now: i64,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<String>, DbErr>> + Send;
}

/// The `tasks` table.
pub trait TaskStore {
    fn insert_task(&self, t: &Task) -> impl Future<Output = Result<(), DbErr>> + Send;

    fn find_task(
        &self,
        task_id: &str,
    ) -> impl Future<Output = Result<Option<Task>, ApprovalError>> + Send;

    /// The tasks of an instance, oldest first.
    fn tasks_of_instance(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Vec<Task>, ApprovalError>> + Send;

    /// Writes a changed task only if nobody changed it since `expected_version`: the
    /// optimistic concurrency check and the write are one statement, so of two concurrent
    /// decisions exactly one matches. Returns whether the row was written.
    fn update_task_if_version(
        &self,
        t: &Task,
        expected_version: i64,
    ) -> impl Future<Output = Result<bool, DbErr>> + Send;

    /// Tasks matching `f`, soonest due first (ties by task id).
    fn list_tasks(
        &self,
        f: &TaskFilter,
    ) -> impl Future<Output = Result<Vec<Task>, ApprovalError>> + Send;

    /// Active tasks with a timer due at `now` that has not fired, soonest due first (ties by
    /// task id), starting after `after` (a [`DueTimer::key`] from the previous page).
    fn due_timers(
        &self,
        now: i64,
        after: Option<(i64, String)>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<DueTimer>, DbErr>> + Send;
}

/// A task with a timer to fire, as [`TaskStore::due_timers`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimer {
    pub application_id: String,
    pub task_id: String,
    pub due_at: i64,
}

impl DueTimer {
    /// Where the next page starts.
    pub fn key(&self) -> (i64, String) {
        (self.due_at, self.task_id.clone())
    }
}

/// The `definitions` table.
pub trait DefinitionStore {
    /// Stores a definition version; `false` when that code and version exist already.
    fn save_definition(
        &self,
        d: &StoredDefinition,
    ) -> impl Future<Output = Result<bool, DbErr>> + Send;

    /// Stored definitions, by code then version; only `code` when given.
    fn definitions(
        &self,
        code: Option<&str>,
    ) -> impl Future<Output = Result<Vec<StoredDefinition>, DbErr>> + Send;

    /// The definition PublishDefinition stored for `request_id`, if any.
    fn definition_by_request_id(
        &self,
        request_id: &str,
    ) -> impl Future<Output = Result<Option<StoredDefinition>, DbErr>> + Send;
}

/// The `counters` table.
pub trait CounterStore {
    /// Next value of a named counter (starting at 1), atomically.
    fn next_counter(&self, name: &str) -> impl Future<Output = Result<i64, ApprovalError>> + Send;
}

/// [`DefinitionStore::save_definition`] as a function, for the definition registry.
pub async fn save_definition<C: ConnectionTrait>(
    conn: &C,
    d: &StoredDefinition,
) -> Result<bool, DbErr> {
    conn.save_definition(d).await
}

/// [`DefinitionStore::definitions`] as a function, for the definition registry.
pub async fn definitions<C: ConnectionTrait>(
    conn: &C,
    code: Option<&str>,
) -> Result<Vec<StoredDefinition>, DbErr> {
    DefinitionStore::definitions(conn, code).await
}
