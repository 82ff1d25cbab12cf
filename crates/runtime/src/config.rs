//! Layered configuration, one loader for every service.
//!
//! Layers, later ones winning:
//! 1. built-in defaults;
//! 2. the top level of `tongban.toml` (or the file named by `TONGBAN_CONFIG`);
//! 3. `TONGBAN_<KEY>` environment variables, nested keys joined with `__`
//!    (`TONGBAN_AUDIT__INTERVAL_SECS` is `audit.interval_secs`);
//! 4. the file's `[<service>]` table;
//! 5. `TONGBAN_<SERVICE>__<KEY>` for one service only (`TONGBAN_INTAKE__LISTEN`).
//!
//! A service reads the common [`ServiceConfig`] and its own section type from the same layers
//! ([`ServiceConfig::load_with`]). Start-up fails on every bad key at once: values that do not
//! parse, values that break a rule, and keys nothing reads (a typo such as
//! `TONGBAN_DATABSE_URL` must not silently leave the default in place). Secrets are never
//! printed.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Format, Serialized, Toml},
    value::{Dict, Value},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Environment variable naming the configuration file.
pub const CONFIG_FILE_VAR: &str = "TONGBAN_CONFIG";

/// The services whose names scope keys (`TONGBAN_<SERVICE>__<KEY>`, `[<service>]`).
pub const SERVICES: &[&str] = &["intake", "approval", "notification", "dispatch"];

/// Top-level keys that some other part of Tongban reads, so a service that does not read them
/// must not call them unknown: other services' own sections (checked when that service loads)
/// and variables of the CLI, the telemetry set-up, the platform loader and the tests.
const READ_ELSEWHERE: &[&str] = &[
    "config",
    "credit",
    "smtp",
    "webhooks",
    "log_format",
    "server",
    "approval_server",
    "dispatch_server",
    "notification_server",
    "token",
    "ca_file",
    "data_dir",
    "audit_database",
    "audit_interval_secs",
    "test_postgres",
    "test_amqp",
];

/// Top-level key prefixes read elsewhere (`TONGBAN_PLATFORM_<ID>_ENDPOINT`, by the platform
/// loader).
const READ_ELSEWHERE_PREFIXES: &[&str] = &["platform_"];

/// Keys that moved, with where they went, so the error says what to write instead.
const RENAMED: &[(&str, &str)] = &[
    ("smtp_host", "smtp.host (TONGBAN_SMTP__HOST)"),
    ("smtp_port", "smtp.port (TONGBAN_SMTP__PORT)"),
    ("smtp_from", "smtp.from (TONGBAN_SMTP__FROM)"),
    ("smtp_tls", "smtp.tls (TONGBAN_SMTP__TLS)"),
    (
        "webhook_allow_http",
        "webhooks.allow_http (TONGBAN_WEBHOOKS__ALLOW_HTTP)",
    ),
    ("webhook_allow", "webhooks.allow (TONGBAN_WEBHOOKS__ALLOW)"),
    (
        "intake_uri_schemes",
        "limits.uri_schemes (TONGBAN_INTAKE__LIMITS__URI_SCHEMES)",
    ),
    (
        "intake_watch_streams_per_caller",
        "limits.watch_streams_per_caller (TONGBAN_INTAKE__LIMITS__WATCH_STREAMS_PER_CALLER)",
    ),
    (
        "intake_submissions_per_minute",
        "limits.submissions_per_minute (TONGBAN_INTAKE__LIMITS__SUBMISSIONS_PER_MINUTE)",
    ),
    (
        "notification_streams_per_caller",
        "limits.streams_per_caller (TONGBAN_NOTIFICATION__LIMITS__STREAMS_PER_CALLER)",
    ),
];

/// What one service process needs to start. Connection strings may hold passwords, so they
/// are [`SecretString`]s: `Debug` redacts them and reading one takes `expose_secret()`.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceConfig {
    /// `postgres://…` or `sqlite://…?mode=rwc`. TLS: `?sslmode=require` (or `verify-full`
    /// with `sslrootcert=…`).
    pub database_url: SecretString,
    /// `amqp://…`, `amqps://…` (TLS) or `sqlite://…` (embedded bus).
    pub bus_url: SecretString,
    /// Topic exchange the events travel on.
    pub exchange: String,
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    /// Address `/metrics` (Prometheus text) is served on.
    pub metrics_listen: SocketAddr,
    /// Longest a graceful stop may take (open streams, background tasks) before what is left
    /// is cut off.
    pub shutdown_timeout_secs: u64,
    /// How long processed and published rows are kept (`[retention]`).
    #[serde(default)]
    pub retention: Retention,
    /// gRPC over TLS when set (`tls.cert_file`, `tls.key_file`, PEM).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
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

/// How long the bookkeeping rows are kept before they are deleted, in batches.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Retention {
    /// Published outbox rows.
    pub outbox_days: u32,
    /// Inbox rows (which event ids were applied); keep it longer than any redelivery window.
    pub inbox_days: u32,
    /// Events parked waiting for their predecessor (approval, dispatch, notification); older
    /// ones are given up.
    pub parked_days: u32,
    /// Rows deleted per statement.
    pub batch: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            outbox_days: 7,
            inbox_days: 14,
            parked_days: 30,
            batch: 1000,
        }
    }
}

impl Retention {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, days) in [
            ("retention.outbox_days", self.outbox_days),
            ("retention.inbox_days", self.inbox_days),
            ("retention.parked_days", self.parked_days),
        ] {
            if days == 0 {
                out.push(format!("{key}: must be at least 1"));
            }
        }
        if self.batch == 0 {
            out.push("retention.batch: must be at least 1".into());
        }
        out
    }
}

/// The gRPC server's certificate chain and private key, both PEM files.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// A configuration that cannot be used; the message names every bad key.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {}", .problems.join("; "))]
pub struct ConfigError {
    /// One entry per bad key: `key: why`.
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(problem: impl Into<String>) -> Self {
        Self {
            problems: vec![problem.into()],
        }
    }
}

/// The built-in layer: plain values, kept apart from [`ServiceConfig`] because secrets do not
/// serialize.
#[derive(Serialize)]
struct Defaults {
    database_url: String,
    bus_url: String,
    exchange: String,
    listen: SocketAddr,
    metrics_listen: SocketAddr,
    shutdown_timeout_secs: u64,
    jwks_file: PathBuf,
    jwt_audience: String,
    jwt_issuer: String,
    max_token_lifetime_secs: u64,
    deploy_dir: PathBuf,
}

/// How long a graceful stop may take unless configured.
pub const DEFAULT_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Where `/metrics` is served unless configured: every interface, the port the OpenTelemetry
/// Prometheus convention uses.
pub const DEFAULT_METRICS_PORT: u16 = 9464;

impl Defaults {
    /// `service` on `port`: its own PostgreSQL database `tongban_<service>` on localhost, and
    /// RabbitMQ as guest.
    fn new(service: &str, port: u16) -> Self {
        Self {
            database_url: format!("postgres://postgres@127.0.0.1:5432/tongban_{service}"),
            bus_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            exchange: "tongban.events".into(),
            listen: SocketAddr::from(([0, 0, 0, 0], port)),
            metrics_listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_METRICS_PORT)),
            shutdown_timeout_secs: DEFAULT_SHUTDOWN_TIMEOUT.as_secs(),
            jwks_file: PathBuf::from("data/jwks.json"),
            jwt_audience: tongban_auth::DEFAULT_AUDIENCE.into(),
            jwt_issuer: tongban_auth::DEFAULT_ISSUER.into(),
            max_token_lifetime_secs: tongban_auth::DEFAULT_MAX_LIFETIME.as_secs(),
            deploy_dir: PathBuf::from("deploy"),
        }
    }
}

/// A service's own settings beside [`ServiceConfig`], read from the same layers; every field
/// needs a default (`#[serde(default)]`), so an empty configuration is valid.
pub trait Section: DeserializeOwned + Default {
    /// Rules the types cannot express; one `key: why` per broken rule.
    fn problems(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The section of a service with nothing of its own.
#[derive(Debug, Default, Deserialize)]
pub struct NoSection {}

impl Section for NoSection {}

/// Where the layers come from: the process (file from `TONGBAN_CONFIG`, process environment)
/// or given explicitly (for checks of a deployment's variables, and tests).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The configuration file; a missing file is an empty layer.
    pub file: Option<PathBuf>,
    /// `(name, value)` environment variables; only `TONGBAN_*` ones are read.
    pub env: Vec<(String, String)>,
}

impl Sources {
    /// `TONGBAN_CONFIG` (default `tongban.toml`) and the process environment.
    pub fn process() -> Self {
        Self {
            file: Some(
                std::env::var_os(CONFIG_FILE_VAR)
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("tongban.toml")),
            ),
            env: std::env::vars().collect(),
        }
    }

    /// Only these environment variables, no file.
    pub fn env_only(vars: &[(String, String)]) -> Self {
        Self {
            file: None,
            env: vars.to_vec(),
        }
    }
}

impl ServiceConfig {
    /// Loads the configuration of `service` (e.g. "intake"), which listens on `port` unless
    /// configured otherwise, from the process's file and environment.
    pub fn load(service: &str, port: u16) -> Result<Self, ConfigError> {
        Self::load_with::<NoSection>(service, port).map(|(cfg, _)| cfg)
    }

    /// [`load`](Self::load) plus the service's own section `S`.
    pub fn load_with<S: Section>(service: &str, port: u16) -> Result<(Self, S), ConfigError> {
        Self::load_from(service, port, &Sources::process())
    }

    /// Loads from `sources`, naming every bad and every unknown key in the error.
    pub fn load_from<S: Section>(
        service: &str,
        port: u16,
        sources: &Sources,
    ) -> Result<(Self, S), ConfigError> {
        let figment = layers(service, port, sources)?;
        let fallback: Dict = Figment::from(Serialized::defaults(Defaults::new(service, port)))
            .extract()
            .unwrap_or_default();
        let mut problems = Vec::new();
        let (cfg, figment) = extract_reporting::<Self>(figment, &fallback, &mut problems);
        let (own, figment) = extract_reporting::<S>(figment, &fallback, &mut problems);
        // On the repaired layers, so that a bad value does not hide the unknown keys after it.
        problems.extend(unknown_keys::<S>(&figment));
        if let Some(cfg) = &cfg {
            problems.extend(cfg.problems());
        }
        if let Some(own) = &own {
            problems.extend(own.problems());
        }
        match (cfg, own) {
            (Some(cfg), Some(own)) if problems.is_empty() => Ok((cfg, own)),
            _ => {
                problems.sort();
                problems.dedup();
                Err(ConfigError { problems })
            }
        }
    }

    /// Rules on values the types accept.
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.jwt_audience.trim().is_empty() {
            out.push("jwt_audience: must not be empty".to_string());
        }
        if self.jwt_issuer.trim().is_empty() {
            out.push("jwt_issuer: must not be empty".to_string());
        }
        if self.max_token_lifetime_secs == 0 {
            out.push("max_token_lifetime_secs: must be at least 1".to_string());
        }
        out.extend(self.retention.problems());
        if self.exchange.trim().is_empty() {
            out.push("exchange: must not be empty".to_string());
        }
        if self.listen == self.metrics_listen {
            out.push(format!(
                "metrics_listen: {} is also the gRPC listen address",
                self.metrics_listen
            ));
        }
        use secrecy::ExposeSecret as _;
        for (key, url, schemes) in [
            (
                "database_url",
                self.database_url.expose_secret(),
                &["postgres", "postgresql", "sqlite"][..],
            ),
            (
                "bus_url",
                self.bus_url.expose_secret(),
                &["amqp", "amqps", "sqlite"][..],
            ),
        ] {
            let scheme = url.split_once("://").map(|(s, _)| s);
            if !scheme.is_some_and(|s| schemes.contains(&s)) {
                // The URL may hold a password: name the key and the schemes, never the value.
                out.push(format!(
                    "{key}: must start with one of {}",
                    schemes
                        .iter()
                        .map(|s| format!("{s}://"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        if let Some(tls) = &self.tls {
            for (key, path) in [
                ("tls.cert_file", &tls.cert_file),
                ("tls.key_file", &tls.key_file),
            ] {
                if !path.is_file() {
                    out.push(format!("{key}: {} is not a readable file", path.display()));
                }
            }
        }
        out
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

/// Only a service's own section `S`, from the process's file and environment (for `tongban
/// dev`, which runs the services in one process without [`ServiceConfig`]).
pub fn load_section<S: Section>(service: &str) -> Result<S, ConfigError> {
    let figment = layers(service, 0, &Sources::process())?;
    let mut problems = Vec::new();
    let (own, _) = extract_reporting::<S>(figment, &Dict::new(), &mut problems);
    if let Some(own) = &own {
        problems.extend(own.problems());
    }
    match own {
        Some(own) if problems.is_empty() => Ok(own),
        _ => Err(ConfigError { problems }),
    }
}

/// Checks a configuration made only of `vars` (no file): what a deployment (a compose file,
/// a unit file) hands `service`. Every bad or unknown key is named.
pub fn check_env<S: Section>(
    service: &str,
    port: u16,
    vars: &[(String, String)],
) -> Result<(), ConfigError> {
    ServiceConfig::load_from::<S>(service, port, &Sources::env_only(vars)).map(|_| ())
}

/// The merged layers for `service`.
fn layers(service: &str, port: u16, sources: &Sources) -> Result<Figment, ConfigError> {
    let (common_env, own_env) = env_layers(service, &sources.env);
    let mut figment = Figment::from(Serialized::defaults(Defaults::new(service, port)));
    let mut file_scoped = None;
    if let Some(file) = &sources.file
        && file.exists()
    {
        let toml = Figment::from(Toml::file(file));
        // A file that does not parse is named with its error, before anything else.
        toml.extract::<Dict>()
            .map_err(|e| ConfigError::one(format!("{}: {e}", file.display())))?;
        file_scoped = Some(toml.focus(service));
        figment = figment.merge(Toml::file(file));
    }
    figment = figment.merge(Serialized::defaults(common_env));
    if let Some(scoped) = file_scoped {
        figment = figment.merge(scoped);
    }
    Ok(figment.merge(Serialized::defaults(own_env)))
}

/// `TONGBAN_*` variables as nested dictionaries: the common layer, and `service`'s own
/// (`TONGBAN_<SERVICE>__…`). Other services' scoped variables are left out.
fn env_layers(service: &str, vars: &[(String, String)]) -> (Dict, Dict) {
    let mut common = Dict::new();
    let mut own = Dict::new();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix("TONGBAN_") else {
            continue;
        };
        let path: Vec<String> = rest
            .split("__")
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        if path.iter().any(String::is_empty) {
            continue;
        }
        let value: Value = value
            .parse()
            .unwrap_or_else(|e: std::convert::Infallible| match e {});
        match path.split_first() {
            Some((head, tail)) if SERVICES.contains(&head.as_str()) && !tail.is_empty() => {
                if head == service {
                    insert(&mut own, tail, value);
                }
            }
            _ => insert(&mut common, &path, value),
        }
    }
    (common, own)
}

fn insert(dict: &mut Dict, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [head, rest @ ..] => {
            let entry = dict
                .entry(head.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            if !matches!(entry, Value::Dict(..)) {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

/// Extracts `T`, recording every key that fails. Serde stops at the first error, so the
/// failing key is put back to its default (`fallback`, or left out) and the rest tried again.
/// Returns the layers so repaired, too.
fn extract_reporting<T: DeserializeOwned>(
    mut figment: Figment,
    fallback: &Dict,
    problems: &mut Vec<String>,
) -> (Option<T>, Figment) {
    for _ in 0..32 {
        match figment.extract::<T>() {
            Ok(v) => return (Some(v), figment),
            Err(errors) => {
                let mut repaired = false;
                let mut dict: Dict = figment.extract().unwrap_or_default();
                for e in errors {
                    let key = e.path.join(".");
                    problems.push(format!(
                        "{}: {}",
                        if key.is_empty() { "(top level)" } else { &key },
                        e.kind
                    ));
                    repaired |= reset(&mut dict, fallback, &e.path);
                }
                if !repaired {
                    return (None, figment);
                }
                figment = Figment::from(Serialized::defaults(dict));
            }
        }
    }
    (None, figment)
}

/// Puts the key at `path` back to its value in `fallback`, or removes it.
fn reset(dict: &mut Dict, fallback: &Dict, path: &[String]) -> bool {
    match path {
        [] => false,
        [last] => match fallback.get(last) {
            Some(v) => dict.insert(last.clone(), v.clone()).as_ref() != Some(v),
            None => dict.remove(last).is_some(),
        },
        [head, rest @ ..] => match dict.get_mut(head) {
            Some(Value::Dict(_, inner)) => {
                let empty = Dict::new();
                let below = match fallback.get(head) {
                    Some(Value::Dict(_, d)) => d,
                    _ => &empty,
                };
                reset(inner, below, rest)
            }
            _ => false,
        },
    }
}

/// Keys neither [`ServiceConfig`] nor `S` reads, and no other part of Tongban either.
fn unknown_keys<S: Section>(figment: &Figment) -> Vec<String> {
    let Ok(value) = figment.extract::<Value>() else {
        return Vec::new();
    };
    let common = ignored::<ServiceConfig>(&value);
    let own = ignored::<S>(&value);
    // A key is unknown when each type leaves it (or a section holding it) unread.
    let covered = |set: &BTreeSet<String>, key: &str| {
        set.iter().any(|k| {
            key == k
                || key
                    .strip_prefix(k.as_str())
                    .is_some_and(|r| r.starts_with('.'))
        })
    };
    common
        .union(&own)
        .filter(|key| covered(&common, key) && covered(&own, key))
        .filter(|key| {
            // A whole top-level key another part reads is theirs to check; a key inside a
            // section this service reads is this service's.
            !(SERVICES.contains(&key.split('.').next().unwrap_or(key))
                || READ_ELSEWHERE.contains(&key.as_str())
                || READ_ELSEWHERE_PREFIXES.iter().any(|p| key.starts_with(p)))
        })
        .map(|key| match RENAMED.iter().find(|(old, _)| old == key) {
            Some((_, new)) => format!("{key}: renamed, now {new}"),
            None => format!("{key}: unknown key (TONGBAN_{})", env_name(key)),
        })
        .collect()
}

fn env_name(key: &str) -> String {
    key.replace('.', "__").to_ascii_uppercase()
}

/// Paths of the keys in `value` that deserializing a `T` does not read.
fn ignored<T: DeserializeOwned>(value: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let _ = serde_ignored::deserialize(value, |path| {
        out.insert(path.to_string());
    })
    .map(|_: T| ());
    out
}

/// `deserialize_with` for lists that may also come as one comma-separated string, which is what
/// an environment variable gives (`TONGBAN_WEBHOOKS__ALLOW=10.0.0.0/8,hooks.example`). Items
/// are trimmed; empty ones dropped.
pub fn comma_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::to_string).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

/// The path of the configuration file the process would read (for messages).
pub fn config_file() -> PathBuf {
    Sources::process()
        .file
        .unwrap_or_else(|| Path::new("tongban.toml").to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Own {
        smtp: Smtp,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Smtp {
        host: String,
        port: u16,
    }

    impl Section for Own {
        fn problems(&self) -> Vec<String> {
            if self.smtp.port == 1 {
                vec!["smtp.port: 1 is not an SMTP port".into()]
            } else {
                Vec::new()
            }
        }
    }

    fn load<S: Section>(
        service: &str,
        env: &[(&str, &str)],
    ) -> Result<(ServiceConfig, S), ConfigError> {
        ServiceConfig::load_from(service, 50051, &Sources::env_only(&vars(env)))
    }

    #[test]
    fn defaults_need_nothing() -> Result<(), ConfigError> {
        let (cfg, _) = load::<NoSection>("intake", &[])?;
        assert_eq!(cfg.jwks_file, PathBuf::from("data/jwks.json"));
        assert_eq!(cfg.token_rules(), tongban_auth::TokenRules::default());
        assert_eq!(cfg.listen.port(), 50051);
        assert_eq!(cfg.metrics_listen.port(), DEFAULT_METRICS_PORT);
        assert!(cfg.tls.is_none());
        Ok(())
    }

    #[test]
    fn scoped_variables_win_for_their_service_only() -> Result<(), ConfigError> {
        let env = [
            ("TONGBAN_EXCHANGE", "common"),
            ("TONGBAN_INTAKE__EXCHANGE", "intake-only"),
            ("TONGBAN_APPROVAL__EXCHANGE", "approval-only"),
            ("TONGBAN_METRICS_LISTEN", "127.0.0.1:9999"),
        ];
        let (intake, _) = load::<NoSection>("intake", &env)?;
        assert_eq!(intake.exchange, "intake-only");
        assert_eq!(intake.metrics_listen.port(), 9999);
        let (dispatch, _) = load::<NoSection>("dispatch", &env)?;
        assert_eq!(dispatch.exchange, "common");
        Ok(())
    }

    #[test]
    fn own_sections_are_read_from_nested_variables() -> Result<(), ConfigError> {
        let (_, own) = load::<Own>(
            "notification",
            &[
                ("TONGBAN_SMTP__HOST", "mail.example.gov.cn"),
                ("TONGBAN_NOTIFICATION__SMTP__PORT", "587"),
            ],
        )?;
        assert_eq!(own.smtp.host, "mail.example.gov.cn");
        assert_eq!(own.smtp.port, 587);
        Ok(())
    }

    #[test]
    fn every_bad_key_is_named_at_once() {
        let err = load::<Own>(
            "notification",
            &[
                ("TONGBAN_LISTEN", "not an address"),
                ("TONGBAN_MAX_TOKEN_LIFETIME_SECS", "soon"),
                ("TONGBAN_DATABSE_URL", "postgres://x"),
                ("TONGBAN_NOTIFICATION__SMTP__HOSTNAME", "x"),
                ("TONGBAN_SMTP__PORT", "1"),
                ("TONGBAN_SMTP_HOST", "old-style"),
                ("TONGBAN_BUS_URL", "http://secret@rabbit"),
                ("TONGBAN_JWT_AUDIENCE", " "),
            ],
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        for key in [
            "listen:",
            "max_token_lifetime_secs:",
            "databse_url: unknown key (TONGBAN_DATABSE_URL)",
            "smtp.hostname: unknown key",
            "smtp.port: 1 is not an SMTP port",
            "smtp_host: renamed, now smtp.host",
            "bus_url: must start with one of amqp://",
            "jwt_audience: must not be empty",
        ] {
            assert!(err.contains(key), "{key:?} missing from {err}");
        }
        assert!(!err.contains("secret@"), "a URL's password leaked: {err}");
    }

    #[test]
    fn keys_read_elsewhere_are_not_unknown() -> Result<(), ConfigError> {
        load::<NoSection>(
            "intake",
            &[
                ("TONGBAN_LOG_FORMAT", "json"),
                ("TONGBAN_PLATFORM_EIA_ENDPOINT", "http://x"),
                ("TONGBAN_SMTP__HOST", "mail"),
                (
                    "TONGBAN_NOTIFICATION__SMTP__HOSTNAME",
                    "checked by notification",
                ),
                ("TONGBAN_SERVER", "http://127.0.0.1:50051"),
                ("PATH", "/usr/bin"),
            ],
        )?;
        Ok(())
    }

    #[test]
    fn the_file_has_a_table_per_service() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("tongban.toml");
        std::fs::write(
            &file,
            "exchange = \"file\"\n[intake]\nexchange = \"file-intake\"\n[approval.audit]\nsigning_key_file = \"k\"\ncheckpoint_file = \"c\"\n",
        )?;
        let sources = |env: &[(&str, &str)]| Sources {
            file: Some(file.clone()),
            env: vars(env),
        };
        let (intake, _) = ServiceConfig::load_from::<NoSection>("intake", 1, &sources(&[]))?;
        assert_eq!(intake.exchange, "file-intake");
        let (dispatch, _) = ServiceConfig::load_from::<NoSection>(
            "dispatch",
            1,
            &sources(&[("TONGBAN_EXCHANGE", "env")]),
        )?;
        assert_eq!(dispatch.exchange, "env");
        let (approval, _) = ServiceConfig::load_from::<NoSection>("approval", 1, &sources(&[]))?;
        assert!(approval.audit.is_some());
        let (intake, _) = ServiceConfig::load_from::<NoSection>(
            "intake",
            1,
            &sources(&[("TONGBAN_INTAKE__EXCHANGE", "env-intake")]),
        )?;
        assert_eq!(intake.exchange, "env-intake");
        std::fs::write(&file, "exchange = ")?;
        let err = ServiceConfig::load_from::<NoSection>("intake", 1, &sources(&[])).err();
        assert!(err.is_some_and(|e| e.to_string().contains("tongban.toml")));
        Ok(())
    }

    #[test]
    fn retention_is_configured_and_checked() -> Result<(), ConfigError> {
        let (cfg, _) = load::<NoSection>("dispatch", &[("TONGBAN_RETENTION__INBOX_DAYS", "3")])?;
        assert_eq!(
            cfg.retention,
            Retention {
                inbox_days: 3,
                ..Retention::default()
            }
        );
        let err = load::<NoSection>(
            "dispatch",
            &[
                ("TONGBAN_RETENTION__PARKED_DAYS", "0"),
                ("TONGBAN_RETENTION__BATCH", "0"),
            ],
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("retention.parked_days"), "{err}");
        assert!(err.contains("retention.batch"), "{err}");
        Ok(())
    }

    #[test]
    fn tls_files_must_exist() {
        let err = load::<NoSection>(
            "intake",
            &[
                ("TONGBAN_TLS__CERT_FILE", "/nonexistent/cert.pem"),
                ("TONGBAN_TLS__KEY_FILE", "/nonexistent/key.pem"),
            ],
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("tls.cert_file"), "{err}");
        assert!(err.contains("tls.key_file"), "{err}");
    }
}
