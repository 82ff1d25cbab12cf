//! The intake service's errors and their one mapping to gRPC status codes.

use tonic_types::{ErrorDetails, StatusExt};

/// A field that failed validation, named as the client sent it (`applicant.credit_code`,
/// `form.total_investment_wan`, `materials[2].sha256`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub description: String,
}

impl Violation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

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

fn summary(v: &[Violation]) -> String {
    v.iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<IntakeError> for tonic::Status {
    fn from(e: IntakeError) -> Self {
        let message = e.to_string();
        match e {
            IntakeError::Invalid(violations) => {
                let mut details = ErrorDetails::new();
                for v in &violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                details.set_error_info(
                    "INVALID_APPLICATION",
                    "tongban.intake",
                    std::collections::HashMap::<String, String>::new(),
                );
                tonic::Status::with_error_details(tonic::Code::InvalidArgument, message, details)
            }
            IntakeError::NotFound(_) => tonic::Status::not_found(message),
            IntakeError::RequestIdReused(_) => {
                let mut details = ErrorDetails::new();
                details.set_error_info(
                    "REQUEST_ID_REUSED",
                    "tongban.intake",
                    std::collections::HashMap::<String, String>::new(),
                );
                tonic::Status::with_error_details(tonic::Code::AlreadyExists, message, details)
            }
            IntakeError::StaleVersion { .. } => tonic::Status::aborted(message),
            IntakeError::FailedPrecondition(_) => tonic::Status::failed_precondition(message),
            IntakeError::Auth(a) => a.into(),
            IntakeError::Db(err) => {
                tracing::error!(error = %err, "storage error");
                tonic::Status::unavailable("storage unavailable; retry later")
            }
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
