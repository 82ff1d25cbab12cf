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
    /// JWK Set (RFC 7517) of the Ed25519 public keys tokens may be signed with, selected by
    /// the token's `kid`; written by `tongban keys generate`. Services never hold the private key.
    pub jwks_file: PathBuf,
    /// The `aud` every token must carry.
    pub jwt_audience: String,
    /// The `iss` every token must carry.
    pub jwt_issuer: String,
    /// Longest token lifetime (`exp - iat`) accepted, in seconds; default 12 h.
    pub max_token_lifetime_secs: u64,
    /// Directory with `matters/`, `calendar/`, `platforms/`, `departments.toml`, `regions.toml`.
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
    jwks_file: PathBuf,
    jwt_audience: String,
    jwt_issuer: String,
    max_token_lifetime_secs: u64,
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
            jwks_file: PathBuf::from("data/jwks.json"),
            jwt_audience: tongban_auth::DEFAULT_AUDIENCE.into(),
            jwt_issuer: tongban_auth::DEFAULT_ISSUER.into(),
            max_token_lifetime_secs: tongban_auth::DEFAULT_MAX_LIFETIME.as_secs(),
            deploy_dir: PathBuf::from("deploy"),
        }
    }
}

impl ServiceConfig {
    /// Loads the configuration of `service` (e.g. "intake"), which listens on `port` unless
    /// configured otherwise.
    pub fn load(service: &str, port: u16) -> Result<Self, ConfigError> {
        let file = std::env::var("TONGBAN_CONFIG").unwrap_or_else(|_| "tongban.toml".into());
        let cfg: Self = Figment::from(Serialized::defaults(Defaults::new(service, port)))
            .merge(Toml::file(&file))
            .merge(Env::prefixed("TONGBAN_").split("__").ignore(&["config"]))
            .merge(
                Env::prefixed(&format!("TONGBAN_{}__", service.to_ascii_uppercase())).split("__"),
            )
            .extract()
            .map_err(|e| ConfigError(Box::new(e)))?;
        cfg.validate()
    }

    /// Refuses token rules no token could meet.
    fn validate(self) -> Result<Self, ConfigError> {
        let fail = |msg: &str| Err(ConfigError(Box::new(figment::Error::from(msg.to_string()))));
        if self.jwt_audience.trim().is_empty() {
            return fail("jwt_audience must not be empty");
        }
        if self.jwt_issuer.trim().is_empty() {
            return fail("jwt_issuer must not be empty");
        }
        if self.max_token_lifetime_secs == 0 {
            return fail("max_token_lifetime_secs must be at least 1");
        }
        Ok(self)
    }

    /// What tokens must say besides their signature (`jwt_audience`, `jwt_issuer`,
    /// `max_token_lifetime_secs`).
    pub fn token_rules(&self) -> tongban_auth::TokenRules {
        tongban_auth::TokenRules {
            audience: self.jwt_audience.clone(),
            issuer: self.jwt_issuer.clone(),
            max_lifetime: std::time::Duration::from_secs(self.max_token_lifetime_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ServiceConfig {
        let d = Defaults::new("intake", 50051);
        ServiceConfig {
            database_url: d.database_url.into(),
            bus_url: d.bus_url.into(),
            exchange: d.exchange,
            listen: d.listen,
            jwks_file: d.jwks_file,
            jwt_audience: d.jwt_audience,
            jwt_issuer: d.jwt_issuer,
            max_token_lifetime_secs: d.max_token_lifetime_secs,
            deploy_dir: d.deploy_dir,
            audit: None,
        }
    }

    #[test]
    fn token_rules_default_to_the_auth_defaults_and_are_validated() {
        let cfg = config();
        assert_eq!(cfg.jwks_file, PathBuf::from("data/jwks.json"));
        assert_eq!(cfg.token_rules(), tongban_auth::TokenRules::default());
        assert!(config().validate().is_ok());
        let mut bad = config();
        bad.jwt_audience = " ".into();
        assert!(bad.validate().is_err());
        let mut bad = config();
        bad.max_token_lifetime_secs = 0;
        assert!(bad.validate().is_err());
    }
}
