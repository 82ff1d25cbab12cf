//! Layered configuration: built-in defaults, then `tongban.toml` (or the file named by
//! `TONGBAN_CONFIG`, top-level keys), then environment variables `TONGBAN_<KEY>` (nested keys with `__`), then
//! `TONGBAN_<SERVICE>__<KEY>` for one service only. Secrets are never printed.

use std::{net::SocketAddr, path::PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// What one service process needs to start. Connection strings may hold passwords, so they
/// are [`SecretString`]s: `Debug` redacts them and reading one takes `expose_secret()`.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceConfig {
    /// `postgres://…` or `sqlite://…?mode=rwc`.
    pub database_url: SecretString,
    /// `amqp://…` or `sqlite://…` (embedded bus).
    pub bus_url: SecretString,
    /// Topic exchange the events travel on.
    pub exchange: String,
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    /// HS256 secret file (hex); created by `tongban dev`.
    pub jwt_secret_file: PathBuf,
    /// Directory with `matters/`, `calendar/`, `platforms/`, `departments.toml`.
    pub deploy_dir: PathBuf,
    /// Audit anchoring (`[audit]`: `signing_key_file`, `checkpoint_file`, `interval_secs`);
    /// absent: no checkpoints are taken, and startup says so.
    #[serde(default)]
    pub audit: Option<tongban_audit::anchor::AnchorConfig>,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

/// The built-in layer: plain values, kept apart from [`ServiceConfig`] because secrets do not
/// serialize.
#[derive(Serialize)]
struct Defaults {
    database_url: String,
    bus_url: String,
    exchange: String,
    listen: SocketAddr,
    jwt_secret_file: PathBuf,
    deploy_dir: PathBuf,
}

impl Defaults {
    /// `service` on `port`: its own PostgreSQL database `tongban_<service>` on localhost, and
    /// RabbitMQ as guest.
    fn new(service: &str, port: u16) -> Self {
        Self {
            database_url: format!("postgres://postgres@127.0.0.1:5432/tongban_{service}"),
            bus_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            exchange: "tongban.events".into(),
            listen: SocketAddr::from(([0, 0, 0, 0], port)),
            jwt_secret_file: PathBuf::from("data/jwt.secret"),
            deploy_dir: PathBuf::from("deploy"),
        }
    }
}

impl ServiceConfig {
    /// Loads the configuration of `service` (e.g. "intake"), which listens on `port` unless
    /// configured otherwise.
    pub fn load(service: &str, port: u16) -> Result<Self, ConfigError> {
        let file = std::env::var("TONGBAN_CONFIG").unwrap_or_else(|_| "tongban.toml".into());
        Figment::from(Serialized::defaults(Defaults::new(service, port)))
            .merge(Toml::file(&file))
            .merge(Env::prefixed("TONGBAN_").split("__").ignore(&["config"]))
            .merge(
                Env::prefixed(&format!("TONGBAN_{}__", service.to_ascii_uppercase())).split("__"),
            )
            .extract()
            .map_err(|e| ConfigError(Box::new(e)))
    }
}
