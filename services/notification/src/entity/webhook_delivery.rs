//! `webhook_deliveries`: one row per (webhook, event). The body is fixed when queued so that
//! every retry sends (and signs) the same bytes; `next_attempt_ms` is also the claim lease.
//! Delivered when `delivered_ms` is set, given up when `failed_ms` is.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub delivery_id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub body: String,
    pub attempts: i32,
    pub next_attempt_ms: i64,
    pub delivered_ms: Option<i64>,
    pub failed_ms: Option<i64>,
    pub last_error: Option<String>,
    /// W3C trace context the delivery was queued in; attempts continue it.
    pub traceparent: Option<String>,
    /// When the current run of failures began; null while none failed and after a replay.
    pub retry_since_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::webhook::Entity",
        from = "Column::WebhookId",
        to = "super::webhook::Column::WebhookId"
    )]
    Webhook,
}

impl Related<super::webhook::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Webhook.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
