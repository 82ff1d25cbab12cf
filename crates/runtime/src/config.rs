//! Layered configuration: built-in defaults, then `tongban.toml` (or the file named by
//! `TONGBAN_CONFIG`, top-level keys), then environment variables `TONGBAN_<KEY>` (nested keys with `__`), then
//! `TONGBAN_<SERVICE>__<KEY>` for one service only. Secrets are never printed.

use std::{fmt, net::SocketAddr, path::PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// A value that must not appear in logs (connection strings with passwords, tokens).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**redacted**")
    }
}

/// What one service process needs to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceConfig {
    /// `postgres://…` or `sqlite://…?mode=rwc`.
    pub database_url: Secret,
    /// `amqp://…` or `sqlite://…` (embedded bus).
    pub bus_url: Secret,
    /// Topic exchange the events travel on.
    pub exchange: String,
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    /// HS256 secret file (hex); created by `tongban dev`.
    pub jwt_secret_file: PathBuf,
    /// Directory with `matters/`, `calendar/`, `platforms/`, `departments.toml`.
    pub deploy_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

impl ServiceConfig {
    /// Defaults for `service` on `port`: its own PostgreSQL database `tongban_<service>` on
    /// localhost, and RabbitMQ as guest.
    pub fn defaults(service: &str, port: u16) -> Self {
        Self {
            database_url: Secret::new(format!(
                "postgres://postgres@127.0.0.1:5432/tongban_{service}"
            )),
            bus_url: Secret::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            exchange: "tongban.events".into(),
            listen: SocketAddr::from(([0, 0, 0, 0], port)),
            jwt_secret_file: PathBuf::from("data/jwt.secret"),
            deploy_dir: PathBuf::from("deploy"),
        }
    }

    /// Loads the configuration of `service` (e.g. "intake") over `defaults`.
    pub fn load(service: &str, defaults: Self) -> Result<Self, ConfigError> {
        let file = std::env::var("TONGBAN_CONFIG").unwrap_or_else(|_| "tongban.toml".into());
        Figment::from(Serialized::defaults(defaults))
            .merge(Toml::file(&file))
            .merge(Env::prefixed("TONGBAN_").split("__").ignore(&["config"]))
            .merge(
                Env::prefixed(&format!("TONGBAN_{}__", service.to_ascii_uppercase())).split("__"),
            )
            .extract()
            .map_err(|e| ConfigError(Box::new(e)))
    }
}
