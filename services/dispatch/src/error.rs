//! The dispatch service's errors and their one mapping to gRPC status codes.

use tongban_proto::{common::ErrorReason as Reason, page::PageError};
use tongban_runtime::status;
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// A request field is wrong; `field` is named as the client sent it.
    #[error("invalid request: {field}: {description}")]
    Invalid { field: String, description: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// Lost a race with another writer; reading again and retrying helps.
    #[error("{0}")]
    Aborted(String),
    #[error(transparent)]
    Auth(#[from] tongban_auth::AuthError),
    /// Refused by the authorization table (recorded by `Policy::deny`).
    #[error(transparent)]
    Denied(#[from] tongban_authz::Denied),
    #[error("storage: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// The platform could not be asked (reconciliation).
    #[error("platform {platform}: {message}")]
    Platform { platform: String, message: String },
    #[error("stored delivery is corrupt: {0}")]
    Corrupt(String),
}

/// Shorthand for a single-field invalid-argument error.
pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> DispatchError {
    DispatchError::Invalid {
        field: field.into(),
        description: description.into(),
    }
}

impl From<DispatchError> for tonic::Status {
    fn from(e: DispatchError) -> Self {
        let message = e.to_string();
        match e {
            DispatchError::Invalid { field, description } => status::invalid_argument(
                message,
                &[status::Violation { field, description }],
                Reason::InvalidArgument,
            ),
            DispatchError::NotFound(_) => {
                status::with_reason(Code::NotFound, message, Reason::NotFound)
            }
            DispatchError::FailedPrecondition(_) => status::with_reason(
                Code::FailedPrecondition,
                message,
                Reason::FailedPrecondition,
            ),
            DispatchError::Aborted(_) => {
                status::with_reason(Code::Aborted, message, Reason::StaleVersion)
            }
            DispatchError::Auth(a) => a.into(),
            DispatchError::Denied(d) => d.to_status(),
            DispatchError::Db(err) => status::storage_unavailable(&err),
            DispatchError::Platform { .. } => {
                status::with_reason(Code::Unavailable, message, Reason::PlatformUnavailable)
            }
            DispatchError::Corrupt(_) => status::internal(&message),
        }
    }
}

impl From<PageError> for DispatchError {
    fn from(e: PageError) -> Self {
        invalid(e.field(), e.to_string())
    }
}
