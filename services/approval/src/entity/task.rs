//! `tasks`: department tasks of the stages, and follow-ups (`stage_index` -1) outside them.
//! Timer flags live on the row so that they change in the same transaction as the outbox rows
//! they cause.

use sea_orm::entity::prelude::*;

use crate::model::{TaskDecision, TaskKind, TaskState};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub task_id: String,
    pub instance_id: String,
    pub application_id: String,
    pub matter_code: String,
    pub stage_index: i64,
    pub stage_id: String,
    pub stage_name: String,
    pub kind: TaskKind,
    pub status: TaskState,
    pub department: String,
    pub office: String,
    pub assignee: String,
    pub title: String,
    pub material_kind: String,
    pub deadline_hours: i64,
    pub version: i64,
    pub created_at: i64,
    pub due_at: i64,
    pub due_soon_at: i64,
    pub decided_at: Option<i64>,
    pub decision: TaskDecision,
    pub comment: String,
    pub due_soon_sent: i64,
    pub overdue_sent: i64,
    pub escalated: i64,
    pub escalate_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
