//! `applications`: each application stored whole (`body`, the encoded protobuf) beside the
//! columns it is filtered, sorted and constrained on, its typed [`Status`] among them.

use sea_orm::entity::prelude::*;
use tongban_proto::intake::ApplicationStatus;

/// Where an application stands, as stored. The strings are the proto enum's value names, which
/// the column has always held, so existing databases read unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Status {
    #[sea_orm(string_value = "APPLICATION_STATUS_SUBMITTED")]
    Submitted,
    #[sea_orm(string_value = "APPLICATION_STATUS_IN_REVIEW")]
    InReview,
    #[sea_orm(string_value = "APPLICATION_STATUS_SUPPLEMENT_REQUESTED")]
    SupplementRequested,
    #[sea_orm(string_value = "APPLICATION_STATUS_APPROVED")]
    Approved,
    #[sea_orm(string_value = "APPLICATION_STATUS_REJECTED")]
    Rejected,
    #[sea_orm(string_value = "APPLICATION_STATUS_WITHDRAWN")]
    Withdrawn,
    #[sea_orm(string_value = "APPLICATION_STATUS_CLOSED")]
    Closed,
    #[sea_orm(string_value = "APPLICATION_STATUS_REVOKED")]
    Revoked,
    #[sea_orm(string_value = "APPLICATION_STATUS_SUSPENDED")]
    Suspended,
}

impl From<Status> for ApplicationStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Submitted => ApplicationStatus::Submitted,
            Status::InReview => ApplicationStatus::InReview,
            Status::SupplementRequested => ApplicationStatus::SupplementRequested,
            Status::Approved => ApplicationStatus::Approved,
            Status::Rejected => ApplicationStatus::Rejected,
            Status::Withdrawn => ApplicationStatus::Withdrawn,
            Status::Closed => ApplicationStatus::Closed,
            Status::Revoked => ApplicationStatus::Revoked,
            Status::Suspended => ApplicationStatus::Suspended,
        }
    }
}

/// `APPLICATION_STATUS_UNSPECIFIED` is never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("application status is unspecified")]
pub struct Unspecified;

impl TryFrom<ApplicationStatus> for Status {
    type Error = Unspecified;
    fn try_from(s: ApplicationStatus) -> Result<Self, Unspecified> {
        match s {
            ApplicationStatus::Submitted => Ok(Status::Submitted),
            ApplicationStatus::InReview => Ok(Status::InReview),
            ApplicationStatus::SupplementRequested => Ok(Status::SupplementRequested),
            ApplicationStatus::Approved => Ok(Status::Approved),
            ApplicationStatus::Rejected => Ok(Status::Rejected),
            ApplicationStatus::Withdrawn => Ok(Status::Withdrawn),
            ApplicationStatus::Closed => Ok(Status::Closed),
            ApplicationStatus::Revoked => Ok(Status::Revoked),
            ApplicationStatus::Suspended => Ok(Status::Suspended),
            ApplicationStatus::Unspecified => Err(Unspecified),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "applications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub application_id: String,
    /// The client's request id: a second submission with it replays the first.
    #[sea_orm(unique)]
    pub request_id: String,
    /// SHA-256 of the request that created the application.
    pub fingerprint: String,
    pub matter_code: String,
    pub credit_code: String,
    pub region_code: String,
    /// The credit class the registry gave at submission (`A`..`D`); `None` when unknown.
    pub credit_class: Option<String>,
    /// Where the class came from (`Applicant.credit_source`).
    pub credit_source: Option<String>,
    /// When intake asked the registry.
    pub credit_checked_at: Option<DateTimeUtc>,
    pub status: Status,
    pub version: i64,
    /// The encoded `Application`.
    pub body: Vec<u8>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveEnum, Iterable};

    use super::*;

    #[test]
    fn statuses_are_stored_as_the_proto_names_and_map_both_ways() {
        for s in Status::iter() {
            let proto = ApplicationStatus::from(s);
            assert_eq!(s.to_value(), proto.as_str_name());
            assert_eq!(Status::try_from(proto), Ok(s));
        }
        assert_eq!(
            Status::try_from(ApplicationStatus::Unspecified),
            Err(Unspecified)
        );
    }
}
