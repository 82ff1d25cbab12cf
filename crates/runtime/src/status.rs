//! The pieces every service's error → `tonic::Status` mapping shares: field violations with
//! AIP-193 details, a stable reason string, and how storage failures are reported. Each
//! service keeps its own error enum and its own single mapping; this only saves them writing
//! the same details code four times.

use std::collections::HashMap;

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

/// `field: why; field: why` for error messages.
pub fn summary(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `INVALID_ARGUMENT` with one `BadRequest` field violation per entry and an `ErrorInfo`.
pub fn invalid_argument(
    message: String,
    violations: &[Violation],
    reason: &str,
    domain: &str,
) -> tonic::Status {
    let mut details = error_info(reason, domain);
    for v in violations {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    tonic::Status::with_error_details(tonic::Code::InvalidArgument, message, details)
}

/// `code` with an `ErrorInfo` carrying a stable `reason` clients can match on.
pub fn with_reason(
    code: tonic::Code,
    message: String,
    reason: &str,
    domain: &str,
) -> tonic::Status {
    tonic::Status::with_error_details(code, message, error_info(reason, domain))
}

/// A storage failure: logged in full here, reported to the client as retryable without
/// internals.
pub fn storage_unavailable(err: &sea_orm::DbErr) -> tonic::Status {
    tracing::error!(error = %err, "storage error");
    tonic::Status::unavailable("storage unavailable; retry later")
}

fn error_info(reason: &str, domain: &str) -> ErrorDetails {
    let mut d = ErrorDetails::new();
    d.set_error_info(reason, domain, HashMap::<String, String>::new());
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_names_every_field() {
        let s = invalid_argument(
            "bad".into(),
            &[Violation::new("a.b", "x"), Violation::new("c", "y")],
            "INVALID_ARGUMENT",
            "tongban.test",
        );
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        let fields: Vec<String> = s
            .get_details_bad_request()
            .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default();
        assert_eq!(fields, ["a.b", "c"]);
        assert_eq!(
            s.get_details_error_info().map(|i| i.reason),
            Some("INVALID_ARGUMENT".to_string())
        );
        assert_eq!(
            summary(&[Violation::new("a", "x"), Violation::new("b", "y")]),
            "a: x; b: y"
        );
    }
}
