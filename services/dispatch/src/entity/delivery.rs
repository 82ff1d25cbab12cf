//! `deliveries`: the delivery ledger, one row per (platform, event), with its typed
//! [`Status`].

use sea_orm::entity::prelude::*;
use tongban_proto::dispatch as pb;

/// Where a delivery stands. Stored as its upper-case name, the strings the ledger has always
/// held, so existing databases read unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Status {
    /// Due at `next_attempt_at` (or leased by a worker until `locked_until`).
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "SUCCEEDED")]
    Succeeded,
    /// Gave up; staff can inspect and replay it.
    #[sea_orm(string_value = "DEAD_LETTERED")]
    DeadLettered,
    /// A newer state of the application replaced it before it was sent, on a platform that
    /// takes snapshots of state (`delivery = "latest_state"`).
    #[sea_orm(string_value = "SUPERSEDED")]
    Superseded,
    /// Staff gave up on it; the application's later deliveries to the platform go ahead.
    #[sea_orm(string_value = "DISCARDED")]
    Discarded,
}

impl Status {
    /// Whether the row still holds back the application's later deliveries to its platform.
    pub fn blocks_later(self) -> bool {
        matches!(self, Status::Pending | Status::DeadLettered)
    }
}

impl From<Status> for pb::DeliveryStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Pending => pb::DeliveryStatus::Pending,
            Status::Succeeded => pb::DeliveryStatus::Succeeded,
            Status::DeadLettered => pb::DeliveryStatus::DeadLettered,
            Status::Superseded => pb::DeliveryStatus::Superseded,
            Status::Discarded => pb::DeliveryStatus::Discarded,
        }
    }
}

/// `DELIVERY_STATUS_UNSPECIFIED` has no stored counterpart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("delivery status is unspecified")]
pub struct Unspecified;

impl TryFrom<pb::DeliveryStatus> for Status {
    type Error = Unspecified;
    fn try_from(s: pb::DeliveryStatus) -> Result<Self, Unspecified> {
        match s {
            pb::DeliveryStatus::Pending => Ok(Status::Pending),
            pb::DeliveryStatus::Succeeded => Ok(Status::Succeeded),
            pb::DeliveryStatus::DeadLettered => Ok(Status::DeadLettered),
            pb::DeliveryStatus::Superseded => Ok(Status::Superseded),
            pb::DeliveryStatus::Discarded => Ok(Status::Discarded),
            pb::DeliveryStatus::Unspecified => Err(Unspecified),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub delivery_id: String,
    pub application_id: String,
    pub platform_id: String,
    pub event_id: String,
    pub event_type: String,
    /// What the platform sees on every attempt (`Idempotency-Key`).
    #[sea_orm(unique)]
    pub idempotency_key: String,
    pub status: Status,
    pub attempts: i64,
    pub last_error: String,
    /// The request body last sent (or, for rows older than `document`, the one to send), JSON
    /// text.
    pub payload: String,
    /// The canonical document the platform's mapping reads, JSON text; mapped at every attempt.
    pub document: Option<String>,
    /// The platform's own reference for the delivery, from its reply.
    pub receipt: Option<String>,
    pub next_attempt_at: i64,
    /// A worker's lease: the row is not due again before this instant.
    pub locked_until: Option<i64>,
    /// Which lease holds the row; outcomes are written only under it.
    pub lease_token: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub delivered_at: Option<i64>,
    /// W3C trace context of the span the row was created in; attempts continue it.
    pub traceparent: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveEnum, Iterable};

    use super::*;

    #[test]
    fn statuses_keep_their_stored_names_and_map_to_the_proto_both_ways() {
        let stored: Vec<String> = Status::iter().map(|s| s.to_value()).collect();
        assert_eq!(
            stored,
            [
                "PENDING",
                "SUCCEEDED",
                "DEAD_LETTERED",
                "SUPERSEDED",
                "DISCARDED"
            ]
        );
        for s in Status::iter() {
            assert_eq!(Status::try_from(pb::DeliveryStatus::from(s)), Ok(s));
        }
        assert_eq!(
            Status::try_from(pb::DeliveryStatus::Unspecified),
            Err(Unspecified)
        );
    }
}
