//! `emails`: e-mails to send, one per notification at most. `send_after_ms` holds reminders
//! back until working time; `next_attempt_ms` is also the claim lease. Sent when `sent_ms` is
//! set, given up when `failed_ms` is.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "emails")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub notification_id: String,
    pub to_addr: String,
    pub subject: String,
    pub body: String,
    pub send_after_ms: i64,
    pub next_attempt_ms: i64,
    pub attempts: i32,
    pub sent_ms: Option<i64>,
    pub failed_ms: Option<i64>,
    pub last_error: Option<String>,
    /// When the current run of failures began; null while none failed and after a replay.
    pub retry_since_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
