//! The pieces every service's error → `tonic::Status` mapping shares: field violations with
//! AIP-193 details, an `ErrorInfo` reason from the catalogue in
//! `tongban.common.v1.ErrorReason` (domain `tongban.gov`) on every status, and how storage
//! failures and internal errors are reported. Each service keeps its own error enum and its own
//! single mapping; this only saves them writing the same details code four times.

use std::collections::HashMap;

use tongban_proto::{common::ErrorReason, error::DOMAIN, page::PageError};
use tonic_types::{ErrorDetails, StatusExt};

/// A request field that failed validation, named as the client sent it
/// (`applicant.credit_code`, `form.total_investment_wan`, `materials[2].sha256`).
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

impl From<PageError> for Violation {
    fn from(e: PageError) -> Self {
        Self::new(e.field(), e.to_string())
    }
}

/// `field: why; field: why` for error messages.
pub fn summary(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `INVALID_ARGUMENT` with one `BadRequest` field violation per entry and an `ErrorInfo` with
/// `reason` (`InvalidArgument`, or a more precise one such as `InvalidApplication`).
pub fn invalid_argument(
    message: String,
    violations: &[Violation],
    reason: ErrorReason,
) -> tonic::Status {
    let mut details = error_info(reason);
    for v in violations {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    tonic::Status::with_error_details(tonic::Code::InvalidArgument, message, details)
}

/// `code` with an `ErrorInfo` carrying the stable `reason` clients match on.
pub fn with_reason(code: tonic::Code, message: String, reason: ErrorReason) -> tonic::Status {
    tonic::Status::with_error_details(code, message, error_info(reason))
}

/// `RESOURCE_EXHAUSTED`: the caller is over a per-caller limit; `retry_after`, when known, goes
/// out as a `google.rpc.RetryInfo`.
pub fn resource_exhausted(
    message: String,
    retry_after: Option<std::time::Duration>,
) -> tonic::Status {
    let mut details = error_info(ErrorReason::ResourceExhausted);
    if let Some(d) = retry_after {
        details.set_retry_info(Some(d));
    }
    tonic::Status::with_error_details(tonic::Code::ResourceExhausted, message, details)
}

/// A storage failure: logged in full here, reported to the client as retryable without
/// internals.
pub fn storage_unavailable(err: &sea_orm::DbErr) -> tonic::Status {
    tracing::error!(error = %err, "storage error");
    with_reason(
        tonic::Code::Unavailable,
        "storage unavailable; retry later".into(),
        ErrorReason::StorageUnavailable,
    )
}

/// A bug or corrupt data: logged in full here, reported to the client without internals.
pub fn internal(message: &str) -> tonic::Status {
    tracing::error!(%message, "internal error");
    with_reason(
        tonic::Code::Internal,
        "internal error".into(),
        ErrorReason::Internal,
    )
}

fn error_info(reason: ErrorReason) -> ErrorDetails {
    ErrorDetails::with_error_info(reason.reason(), DOMAIN, HashMap::<String, String>::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason_of(s: &tonic::Status) -> Option<(String, String)> {
        s.get_details_error_info().map(|i| (i.reason, i.domain))
    }

    #[test]
    fn invalid_argument_names_every_field() {
        let s = invalid_argument(
            "bad".into(),
            &[Violation::new("a.b", "x"), Violation::new("c", "y")],
            ErrorReason::InvalidArgument,
        );
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        let fields: Vec<String> = s
            .get_details_bad_request()
            .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default();
        assert_eq!(fields, ["a.b", "c"]);
        assert_eq!(
            reason_of(&s),
            Some(("INVALID_ARGUMENT".to_string(), "tongban.gov".to_string()))
        );
        assert_eq!(
            summary(&[Violation::new("a", "x"), Violation::new("b", "y")]),
            "a: x; b: y"
        );
    }

    #[test]
    fn storage_and_internal_carry_reasons() {
        let s = storage_unavailable(&sea_orm::DbErr::Custom("down".into()));
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert!(!s.message().contains("down"));
        assert_eq!(
            reason_of(&s).map(|r| r.0).as_deref(),
            Some("STORAGE_UNAVAILABLE")
        );
        let s = internal("row 7 does not decode");
        assert_eq!(s.code(), tonic::Code::Internal);
        assert_eq!(reason_of(&s).map(|r| r.0).as_deref(), Some("INTERNAL"));
    }

    /// `tongban-auth` cannot use the catalogue type (it does not depend on the protos), so this
    /// checks that what it sends is in the catalogue.
    #[test]
    fn auth_errors_carry_catalogue_reasons() {
        use tongban_auth::AuthError;
        for (e, code) in [
            (AuthError::Missing, tonic::Code::Unauthenticated),
            (
                AuthError::Invalid("expired".into()),
                tonic::Code::Unauthenticated,
            ),
            (
                AuthError::Forbidden("no".into()),
                tonic::Code::PermissionDenied,
            ),
            (AuthError::Sign("x".into()), tonic::Code::Internal),
        ] {
            let s = tonic::Status::from(e);
            assert_eq!(s.code(), code);
            let (reason, domain) = reason_of(&s).unwrap_or_default();
            assert_eq!(domain, DOMAIN);
            assert!(
                ErrorReason::from_reason(&reason).is_some(),
                "{reason} is not in the catalogue"
            );
        }
        let s = tongban_auth::identity(&tonic::Request::new(())).err();
        assert_eq!(
            s.as_ref().and_then(reason_of).map(|r| r.0).as_deref(),
            Some("UNAUTHENTICATED")
        );
    }

    #[test]
    fn page_errors_name_their_field() {
        assert_eq!(Violation::from(PageError::BadToken).field, "page_token");
        assert_eq!(Violation::from(PageError::NegativeSize).field, "page_size");
    }
}
