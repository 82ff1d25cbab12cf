//! The error catalogue of `tongban.common.v1.ErrorReason` as it goes on the wire: every error
//! Tongban returns carries a `google.rpc.ErrorInfo` with [`DOMAIN`] and
//! [`ErrorReason::reason`]. Building the status itself is `tongban_runtime::status`'s job; this
//! only fixes the strings, so that clients and servers read them from one place.

use crate::common::ErrorReason;

/// `ErrorInfo.domain` of every Tongban error.
pub const DOMAIN: &str = "tongban.gov";

impl ErrorReason {
    /// The `ErrorInfo.reason` string: the value name without `ERROR_REASON_`, e.g.
    /// `"STALE_VERSION"`.
    pub fn reason(self) -> &'static str {
        let name = self.as_str_name();
        name.strip_prefix("ERROR_REASON_").unwrap_or(name)
    }

    /// The catalogue entry a received `ErrorInfo.reason` names, if any.
    pub fn from_reason(reason: &str) -> Option<Self> {
        Self::from_str_name(&format!("ERROR_REASON_{reason}"))
            .filter(|r| *r != ErrorReason::Unspecified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_drop_the_prefix_and_parse_back() {
        assert_eq!(ErrorReason::StaleVersion.reason(), "STALE_VERSION");
        assert_eq!(
            ErrorReason::from_reason("REQUEST_ID_REUSED"),
            Some(ErrorReason::RequestIdReused)
        );
        assert_eq!(ErrorReason::from_reason("UNSPECIFIED"), None);
        assert_eq!(ErrorReason::from_reason("NO_SUCH_REASON"), None);
    }
}
