//! The notification service's errors and their one mapping to gRPC status codes.

use tongban_proto::{common::ErrorReason as Reason, page::PageError};
use tongban_runtime::status;
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    /// A request field is wrong; `field` is named as the client sent it.
    #[error("invalid {field}: {description}")]
    Invalid { field: String, description: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("request_id {0} was already used for a different request")]
    RequestIdReused(String),
    #[error(transparent)]
    Auth(#[from] tongban_auth::AuthError),
    /// Refused by the authorization table (recorded by `Policy::deny`).
    #[error(transparent)]
    Denied(#[from] tongban_authz::Denied),
    #[error("storage: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// Over a per-caller limit (open Subscribe streams).
    #[error("{0}")]
    Exhausted(String),
    /// Configuration that cannot work (templates, SMTP settings).
    #[error("configuration: {0}")]
    Config(String),
}

impl From<NotificationError> for tonic::Status {
    fn from(e: NotificationError) -> Self {
        let message = e.to_string();
        match e {
            NotificationError::Invalid { field, description } => status::invalid_argument(
                message,
                &[status::Violation { field, description }],
                Reason::InvalidArgument,
            ),
            NotificationError::NotFound(_) => {
                status::with_reason(Code::NotFound, message, Reason::NotFound)
            }
            NotificationError::RequestIdReused(_) => {
                status::with_reason(Code::AlreadyExists, message, Reason::RequestIdReused)
            }
            NotificationError::Auth(a) => a.into(),
            NotificationError::Denied(d) => d.to_status(),
            NotificationError::Db(err) => status::storage_unavailable(&err),
            NotificationError::Config(_) => status::internal(&message),
            NotificationError::Exhausted(_) => status::resource_exhausted(message, None),
        }
    }
}

/// Shorthand for a single-field invalid-argument error.
pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> NotificationError {
    NotificationError::Invalid {
        field: field.into(),
        description: description.into(),
    }
}

impl From<PageError> for NotificationError {
    fn from(e: PageError) -> Self {
        invalid(e.field(), e.to_string())
    }
}
