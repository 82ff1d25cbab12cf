//! `instances`: one application's run through its workflow.

use sea_orm::entity::prelude::*;

use crate::model::{InstanceKind, InstanceStatus};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "instances")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub instance_id: String,
    #[sea_orm(unique)]
    pub application_id: String,
    pub matter_code: String,
    pub definition_version: i64,
    pub kind: InstanceKind,
    pub status: InstanceStatus,
    pub stage_index: i64,
    /// JSON of the stages planned at submission.
    pub plan: String,
    pub on_pledge: i64,
    pub lead_department: String,
    pub owner_credit_code: String,
    pub supplement_task_id: String,
    /// The encoded `ApplicationSnapshot` the instance was started from.
    pub snapshot: Vec<u8>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// An enterprise request's answer deadline (Unix ms); 0 until accepted, and for
    /// applications.
    pub answer_due_at: i64,
    /// When an answered, unrated request closes itself (Unix ms); 0 when not awaiting a rating.
    pub rating_due_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
