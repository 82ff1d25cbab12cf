//! Approval's configuration: the common [`ServiceConfig`] only.

use tongban_runtime::config::{ConfigError, NoSection, ServiceConfig};

/// The port approval listens on unless configured otherwise.
pub const DEFAULT_PORT: u16 = 50052;

/// The configuration from the process's file and environment.
pub fn load() -> Result<ServiceConfig, ConfigError> {
    ServiceConfig::load("approval", DEFAULT_PORT)
}

/// Checks the configuration these environment variables alone give approval, naming every bad
/// or unknown key.
pub fn check_env(vars: &[(String, String)]) -> Result<(), ConfigError> {
    tongban_runtime::config::check_env::<NoSection>("approval", DEFAULT_PORT, vars)
}
