//! The approval service's errors and their one mapping to gRPC status codes.

use tonic_types::{ErrorDetails, StatusExt};

/// A field that failed validation, named as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub description: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("invalid request: {}", summary(.0))]
    Invalid(Vec<Violation>),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("task changed since version {expected} (now {actual}); reload and retry")]
    StaleVersion { expected: i64, actual: i64 },
    #[error("{0}")]
    FailedPrecondition(String),
    #[error(transparent)]
    Auth(#[from] tongban_auth::AuthError),
    #[error("storage: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// A stored row that no longer decodes (a bug or manual tampering).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

fn summary(v: &[Violation]) -> String {
    v.iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A single-field invalid-argument error.
pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> ApprovalError {
    ApprovalError::Invalid(vec![Violation {
        field: field.into(),
        description: description.into(),
    }])
}

/// Permission denied with a reason.
pub fn forbidden(why: impl Into<String>) -> ApprovalError {
    ApprovalError::Auth(tongban_auth::AuthError::Forbidden(why.into()))
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
        let info = |reason: &str| {
            let mut d = ErrorDetails::new();
            d.set_error_info(
                reason,
                "tongban.approval",
                std::collections::HashMap::<String, String>::new(),
            );
            d
        };
        match e {
            ApprovalError::Invalid(violations) => {
                let mut details = info("INVALID_ARGUMENT");
                for v in &violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                tonic::Status::with_error_details(tonic::Code::InvalidArgument, message, details)
            }
            ApprovalError::NotFound(_) => tonic::Status::not_found(message),
            ApprovalError::AlreadyExists(_) => tonic::Status::already_exists(message),
            ApprovalError::StaleVersion { .. } => tonic::Status::with_error_details(
                tonic::Code::Aborted,
                message,
                info("STALE_VERSION"),
            ),
            ApprovalError::FailedPrecondition(_) => tonic::Status::failed_precondition(message),
            ApprovalError::Auth(a) => a.into(),
            ApprovalError::Db(err) => {
                tracing::error!(error = %err, "storage error");
                tonic::Status::unavailable("storage unavailable; retry later")
            }
            ApprovalError::Corrupt(_) => {
                tracing::error!(%message, "corrupt row");
                tonic::Status::internal("internal error")
            }
        }
    }
}
