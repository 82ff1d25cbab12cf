//! `notifications`: the in-app inbox. `seq` is the global cursor: monotonic, and assigned in
//! commit order (see `InboxStore::lock_sequence`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    #[sea_orm(unique)]
    pub notification_id: String,
    pub event_id: String,
    /// `applicant:<cc>`, `department:<dept>`, `supervisor:<dept>` or `role:integrator`.
    pub recipient: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub locale: String,
    pub application_id: String,
    pub task_id: String,
    /// Set for reminders only: one per (recipient, kind, task); NULLs never collide.
    #[sea_orm(unique)]
    pub dedup_key: Option<String>,
    pub created_ms: i64,
    pub read_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
