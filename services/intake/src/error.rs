//! The intake service's errors and their one mapping to gRPC status codes.

pub use tongban_runtime::status::Violation;
use tongban_runtime::status::{self, summary};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("invalid request: {}", summary(.0))]
    Invalid(Vec<Violation>),
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
    #[error("storage: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("stored application is corrupt: {0}")]
    Corrupt(String),
}

impl From<IntakeError> for tonic::Status {
    fn from(e: IntakeError) -> Self {
        let message = e.to_string();
        match e {
            IntakeError::Invalid(violations) => status::invalid_argument(
                message,
                &violations,
                "INVALID_APPLICATION",
                "tongban.intake",
            ),
            IntakeError::NotFound(_) => tonic::Status::not_found(message),
            IntakeError::RequestIdReused(_) => status::with_reason(
                tonic::Code::AlreadyExists,
                message,
                "REQUEST_ID_REUSED",
                "tongban.intake",
            ),
            IntakeError::StaleVersion { .. } => tonic::Status::aborted(message),
            IntakeError::FailedPrecondition(_) => tonic::Status::failed_precondition(message),
            IntakeError::Auth(a) => a.into(),
            IntakeError::Db(err) => status::storage_unavailable(&err),
            IntakeError::Corrupt(_) => {
                tracing::error!(%message, "corrupt row");
                tonic::Status::internal("internal error")
            }
        }
    }
}

/// Shorthand for a single-field invalid-argument error.
pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> IntakeError {
    IntakeError::Invalid(vec![Violation::new(field, description)])
}
