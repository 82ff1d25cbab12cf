//! Intake's own settings, beside the common [`ServiceConfig`]: the credit registry (`[credit]`,
//! keys in [`tongban_credit::config`]) and the per-caller limits (`[limits]`), from the same
//! file and environment (`TONGBAN_INTAKE__CREDIT__URL`, `TONGBAN_INTAKE__LIMITS__…`).

use serde::Deserialize;
use tongban_runtime::config::{ConfigError, Section, ServiceConfig};

use crate::limits::IntakeLimits;

/// The port intake listens on unless configured otherwise.
pub const DEFAULT_PORT: u16 = 50051;

/// Intake-only settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IntakeConfig {
    /// Where credit classes come from.
    pub credit: tongban_credit::CreditSettings,
    /// What one caller may ask of intake.
    pub limits: IntakeLimits,
}

impl Section for IntakeConfig {
    fn problems(&self) -> Vec<String> {
        self.limits.problems()
    }
}

impl IntakeConfig {
    /// The common configuration and intake's own, from the process's file and environment.
    pub fn load() -> Result<(ServiceConfig, Self), ConfigError> {
        ServiceConfig::load_with("intake", DEFAULT_PORT)
    }
}

/// Checks the configuration these environment variables alone give intake, naming every bad
/// or unknown key.
pub fn check_env(vars: &[(String, String)]) -> Result<(), ConfigError> {
    tongban_runtime::config::check_env::<IntakeConfig>("intake", DEFAULT_PORT, vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_credit_come_through_the_loader() -> anyhow::Result<()> {
        let vars: Vec<(String, String)> = [
            ("TONGBAN_INTAKE__LIMITS__URI_SCHEMES", "https, S3://"),
            ("TONGBAN_LIMITS__SUBMISSIONS_PER_MINUTE", "5"),
            ("TONGBAN_INTAKE__CREDIT__TTL_SECS", "30"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let sources = tongban_runtime::config::Sources::env_only(&vars);
        let (_, own) = ServiceConfig::load_from::<IntakeConfig>("intake", 1, &sources)?;
        assert_eq!(own.limits.uri_schemes, ["https", "s3"]);
        assert_eq!(own.limits.submissions_per_minute.get(), 5);
        assert_eq!(own.credit.ttl_secs, Some(30));
        let bad: Vec<(String, String)> = [
            ("TONGBAN_INTAKE__LIMITS__SUBMISSIONS_PER_MINUTE", "0"),
            ("TONGBAN_INTAKE__CREDIT__COLOUR", "red"),
            ("TONGBAN_INTAKE_URI_SCHEMES", "https"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let err = check_env(&bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        for key in [
            "limits.submissions_per_minute",
            "credit",
            "intake_uri_schemes: renamed",
        ] {
            assert!(err.contains(key), "{key} missing from {err}");
        }
        Ok(())
    }
}
