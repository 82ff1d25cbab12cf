//! The approval service's errors and their one mapping to gRPC status codes.

use tongban_proto::{common::ErrorReason as Reason, page::PageError};
pub use tongban_runtime::status::Violation;
use tongban_runtime::status::{self, summary};
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("invalid request: {}", summary(.0))]
    Invalid(Vec<Violation>),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("request_id {0} was already used for a different request")]
    RequestIdReused(String),
    #[error("task changed since version {expected} (now {actual}); reload and retry")]
    StaleVersion { expected: i64, actual: i64 },
    #[error("{0}")]
    FailedPrecondition(String),
    #[error(transparent)]
    Auth(#[from] tongban_auth::AuthError),
    /// Refused by the authorization table (recorded by `Policy::deny`).
    #[error(transparent)]
    Denied(#[from] tongban_authz::Denied),
    #[error("storage: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// A stored row that no longer decodes (a bug or manual tampering).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// A single-field invalid-argument error.
pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> ApprovalError {
    ApprovalError::Invalid(vec![Violation::new(field, description)])
}

impl From<crate::workflow::InvalidTransition> for ApprovalError {
    fn from(e: crate::workflow::InvalidTransition) -> Self {
        Self::FailedPrecondition(e.to_string())
    }
}

impl From<crate::workflow::InvalidTaskChange> for ApprovalError {
    fn from(e: crate::workflow::InvalidTaskChange) -> Self {
        Self::FailedPrecondition(e.to_string())
    }
}

impl From<ApprovalError> for tonic::Status {
    fn from(e: ApprovalError) -> Self {
        let message = e.to_string();
        match e {
            ApprovalError::Invalid(violations) => {
                status::invalid_argument(message, &violations, Reason::InvalidArgument)
            }
            ApprovalError::NotFound(_) => {
                status::with_reason(Code::NotFound, message, Reason::NotFound)
            }
            ApprovalError::AlreadyExists(_) => {
                status::with_reason(Code::AlreadyExists, message, Reason::AlreadyExists)
            }
            ApprovalError::RequestIdReused(_) => {
                status::with_reason(Code::AlreadyExists, message, Reason::RequestIdReused)
            }
            ApprovalError::StaleVersion { .. } => {
                status::with_reason(Code::Aborted, message, Reason::StaleVersion)
            }
            ApprovalError::FailedPrecondition(_) => status::with_reason(
                Code::FailedPrecondition,
                message,
                Reason::FailedPrecondition,
            ),
            ApprovalError::Auth(a) => a.into(),
            ApprovalError::Denied(d) => d.to_status(),
            ApprovalError::Db(err) => status::storage_unavailable(&err),
            ApprovalError::Corrupt(_) => status::internal(&message),
        }
    }
}

impl From<PageError> for ApprovalError {
    fn from(e: PageError) -> Self {
        Self::Invalid(vec![e.into()])
    }
}
