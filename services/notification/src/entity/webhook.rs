//! `webhooks`: the registered receivers, with the event types each wants (comma-separated;
//! empty means all) and the secret its calls are signed with.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
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
