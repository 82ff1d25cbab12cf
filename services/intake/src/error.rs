//! The intake service's errors and their one mapping to gRPC status codes.

use tongban_proto::{common::ErrorReason as Reason, page::PageError};
pub use tongban_runtime::status::Violation;
use tongban_runtime::status::{self, summary};
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("invalid request: {}", summary(.0))]
    Invalid(Vec<Violation>),
    /// A request field other than the application itself is wrong (a filter, paging, a note):
    /// plain INVALID_ARGUMENT rather than INVALID_APPLICATION.
    #[error("invalid request: {}: {}", .0.field, .0.description)]
    BadRequest(Violation),
    #[error("{0} not found")]
    NotFound(String),
    #[error("request_id {0} was already used for a different application")]
    RequestIdReused(String),
    #[error("application changed since version {expected} (now {actual}); reload and retry")]
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
    #[error("stored application is corrupt: {0}")]
    Corrupt(String),
    /// Over a per-caller limit; `retry_after` when waiting helps.
    #[error("{message}")]
    Exhausted {
        message: String,
        retry_after: Option<std::time::Duration>,
    },
}

impl From<IntakeError> for tonic::Status {
    fn from(e: IntakeError) -> Self {
        let message = e.to_string();
        match e {
            IntakeError::Invalid(violations) => {
                status::invalid_argument(message, &violations, Reason::InvalidApplication)
            }
            IntakeError::BadRequest(v) => {
                status::invalid_argument(message, &[v], Reason::InvalidArgument)
            }
            IntakeError::NotFound(_) => {
                status::with_reason(Code::NotFound, message, Reason::NotFound)
            }
            IntakeError::RequestIdReused(_) => {
                status::with_reason(Code::AlreadyExists, message, Reason::RequestIdReused)
            }
            IntakeError::StaleVersion { .. } => {
                status::with_reason(Code::Aborted, message, Reason::StaleVersion)
            }
            IntakeError::FailedPrecondition(_) => status::with_reason(
                Code::FailedPrecondition,
                message,
                Reason::FailedPrecondition,
            ),
            IntakeError::Auth(a) => a.into(),
            IntakeError::Denied(d) => d.to_status(),
            IntakeError::Db(err) => status::storage_unavailable(&err),
            IntakeError::Corrupt(_) => status::internal(&message),
            IntakeError::Exhausted { retry_after, .. } => {
                status::resource_exhausted(message, retry_after)
            }
        }
    }
}

/// Shorthand for a single-field invalid-argument error.
pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> IntakeError {
    IntakeError::BadRequest(Violation::new(field, description))
}

impl From<PageError> for IntakeError {
    fn from(e: PageError) -> Self {
        Self::BadRequest(e.into())
    }
}
