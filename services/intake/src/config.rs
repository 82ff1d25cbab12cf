//! Intake's own settings, beside the common [`ServiceConfig`](tongban_runtime::config::ServiceConfig):
//! the credit registry, `[credit]` in the config file or `TONGBAN_INTAKE__CREDIT__<KEY>` in the
//! environment (keys in [`tongban_credit::config`]).

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use serde::Deserialize;

/// Intake-only settings.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IntakeConfig {
    /// Where credit classes come from.
    #[serde(default)]
    pub credit: tongban_credit::CreditSettings,
}

impl IntakeConfig {
    /// Reads the same file (`TONGBAN_CONFIG`, default `tongban.toml`) and environment as the
    /// common configuration.
    pub fn load() -> anyhow::Result<Self> {
        let file = std::env::var("TONGBAN_CONFIG").unwrap_or_else(|_| "tongban.toml".into());
        Figment::new()
            .merge(Toml::file(&file))
            .merge(Env::prefixed("TONGBAN_INTAKE__").split("__"))
            .extract()
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))
    }
}
