//! Dispatch's configuration: the common [`ServiceConfig`] only; the platforms are
//! configured by `deploy/platforms` and `TONGBAN_PLATFORM_<ID>_*` (see [`tongban_platform`]).

use tongban_runtime::config::{ConfigError, NoSection, ServiceConfig};

/// The port dispatch listens on unless configured otherwise.
pub const DEFAULT_PORT: u16 = 50054;

/// The configuration from the process's file and environment.
pub fn load() -> Result<ServiceConfig, ConfigError> {
    ServiceConfig::load("dispatch", DEFAULT_PORT)
}

/// Checks the configuration these environment variables alone give dispatch, naming every bad
/// or unknown key.
pub fn check_env(vars: &[(String, String)]) -> Result<(), ConfigError> {
    tongban_runtime::config::check_env::<NoSection>("dispatch", DEFAULT_PORT, vars)
}
