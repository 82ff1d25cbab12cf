//! `webhooks`: the registered receivers, with the event types each wants (comma-separated;
//! empty means all), the secret its calls are signed with, and the principal that owns it.
//! `Debug` is written by hand so that the secret never reaches a log.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub webhook_id: String,
    pub url: String,
    pub event_types: String,
    pub secret: String,
    pub created_by: String,
    pub created_ms: i64,
    /// RegisterWebhook's idempotency key; "" when none.
    pub request_id: String,
    /// The owner's token `sub`; "" for webhooks registered before owners were stored (they
    /// receive nothing).
    pub owner_subject: String,
    pub owner_role: String,
    /// Staff owners' department; "" otherwise.
    pub owner_department: String,
    /// Applicant owners' credit code; "" otherwise.
    pub owner_credit_code: String,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("webhook::Model")
            .field("webhook_id", &self.webhook_id)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("secret", &"[REDACTED]")
            .field("created_by", &self.created_by)
            .field("created_ms", &self.created_ms)
            .field("request_id", &self.request_id)
            .field("owner_subject", &self.owner_subject)
            .field("owner_role", &self.owner_role)
            .field("owner_department", &self.owner_department)
            .field("owner_credit_code", &self.owner_credit_code)
            .finish()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::webhook_delivery::Entity")]
    Deliveries,
}

impl Related<super::webhook_delivery::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Deliveries.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
