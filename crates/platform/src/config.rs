//! Platform files (`deploy/platforms/<id>.toml`): parsing, environment overrides, validation.
//!
//! Layering is file → environment → validation. The environment can override, per platform
//! (`<ID>` is the upper-cased id):
//! * `TONGBAN_PLATFORM_<ID>_ENDPOINT` and `TONGBAN_PLATFORM_<ID>_QUERY_ENDPOINT` (the listing
//!   endpoint, which only `[reconcile] method = "list"` asks);
//! * the secret, from the variable named by `auth.token_env` / `auth.secret_env` (default
//!   `TONGBAN_PLATFORM_<ID>_TOKEN` / `TONGBAN_PLATFORM_<ID>_SECRET`), which wins over an inline
//!   `token` / `secret` (a development default).
//!
//! The inline `token` / `secret` in the shipped files are for the simulators. A loader in
//! [`Mode::Production`] (the `tongban-dispatch` binary) refuses a platform whose secret would
//! come from the file, or whose environment value equals the file's development value, naming
//! the platform and the variable to set; [`Mode::Development`] (`tongban dev`, the simulators,
//! tests) falls back to the inline value.
//!
//! Every check runs at start-up and every error names the file and the config field, so a bad
//! file stops the service before the first event instead of dead-lettering deliveries.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::auth::{AuthConfig, DEFAULT_SIGNATURE_HEADER, DEFAULT_TIMESTAMP_HEADER, Secret};
use crate::events::is_known_event_type;
use crate::mapping::{Mapping, RawRule};
use crate::policy::{CircuitPolicy, RetryPolicy};

/// Path suffix of the reconciliation query endpoint, relative to the delivery endpoint.
pub const RECEIVED_SUFFIX: &str = "/_received";

/// The placeholder a `status` reconciliation URL template holds for the idempotency key.
pub const KEY_PLACEHOLDER: &str = "{key}";

/// A looked-up environment: variable name → value.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Whether the inline development `token` / `secret` of a platform file may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// `tongban dev`, the simulators and tests: without the environment variable, the inline
    /// value is used.
    #[default]
    Development,
    /// A deployed service: the secret must come from the environment and must differ from the
    /// file's inline development value, which anyone holding the repository knows.
    Production,
    /// Read only for the mappings (approval checks published definitions against the code
    /// tables): no secret is needed; the environment's and the file's are ignored and the
    /// resolved secret is empty. A config loaded this way must never be used to send.
    MappingsOnly,
}

/// One downstream platform, validated and with overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformConfig {
    /// `[a-z0-9_]+`, unique; also the file stem.
    pub id: String,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Where events are POSTed (after environment override).
    pub endpoint: String,
    /// `endpoint`, parsed.
    pub endpoint_url: EndpointUrl,
    /// Listing endpoint of [`Reconcile::List`]: `GET` lists held idempotency keys, `GET
    /// …/<key>` returns one body. Defaults to `endpoint + "/_received"`, which the simulator
    /// serves.
    pub query_endpoint: String,
    /// How Reconcile asks the platform what it holds (`[reconcile]`).
    pub reconcile: Reconcile,
    /// Event types delivered to this platform.
    pub event_types: Vec<String>,
    /// Matter codes delivered (exact, or a `prefix.*` pattern); empty means every matter.
    pub matter_codes: Vec<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Bulkhead size: concurrent requests to this platform.
    pub concurrency: usize,
    /// Scheme and resolved secret.
    pub auth: AuthConfig,
    /// The environment variable the secret is read from (`auth.token_env` / `auth.secret_env`,
    /// by default `TONGBAN_PLATFORM_<ID>_TOKEN` / `_SECRET`).
    pub secret_env: String,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Circuit-breaker policy.
    pub circuit: CircuitPolicy,
    /// Field mapping.
    pub mapping: Mapping,
    /// Whether the platform takes every event or only the latest state of an application.
    pub delivery: DeliveryMode,
    /// Where the platform's reply holds its own reference for a delivery (a JSON pointer into
    /// the reply body), if it gives one.
    pub receipt: Option<String>,
    /// File (or other origin) the config came from, for messages.
    pub origin: String,
}

/// How a platform wants an application's events. Either way, one application's deliveries
/// reach it in the order the events happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    /// Every event, each after the one before it has been confirmed (or discarded by staff).
    #[default]
    Events,
    /// Snapshots of state: a newer event of the application supersedes an older one that is
    /// still waiting (queued, backing off or dead-lettered), which is then never sent.
    LatestState,
}

/// How Reconcile compares the ledger with a platform (`[reconcile] method`). Real platforms
/// rarely list everything they hold, so the method follows what the platform offers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Reconcile {
    /// `GET` [`PlatformConfig::query_endpoint`] answers `{"keys": […]}`: every key it holds.
    #[default]
    List,
    /// One `GET` per delivered key, at `url_template` with [`KEY_PLACEHOLDER`] replaced by the
    /// percent-encoded key: 2xx = held, 404 = missing, anything else = not checked.
    Status {
        /// Absolute http(s) URL containing [`KEY_PLACEHOLDER`].
        url_template: String,
    },
    /// The platform answers no queries; the receipts it gave in its replies are the only
    /// confirmation.
    None,
}

impl Reconcile {
    /// The method's name as the file spells it.
    pub fn method(&self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Status { .. } => "status",
            Self::None => "none",
        }
    }
}

/// A start-up configuration error, naming the file and, where it applies, the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The directory cannot be listed.
    #[error("{dir}: cannot list platform directory: {source}")]
    ReadDir {
        /// Directory.
        dir: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A file cannot be read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// File.
        file: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, a missing or unknown key, or a wrong type; `message` names the key.
    #[error("{file}: {message}")]
    Parse {
        /// File.
        file: String,
        /// Parser message with line and the offending line.
        message: String,
    },
    /// A value is not acceptable.
    #[error("{file}: `{field}`: {message}")]
    Invalid {
        /// File.
        file: String,
        /// Dotted config field, e.g. `mapping.xmmc.format`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// [`Mode::Production`] and the secret would be the file's inline development value.
    #[error(
        "{file}: `{field}`: platform `{platform}`: the file's development value is refused in production; set environment variable {var} to the platform's real credential"
    )]
    DevelopmentSecret {
        /// File.
        file: String,
        /// `auth.token` or `auth.secret`.
        field: String,
        /// Platform id.
        platform: String,
        /// The variable to set.
        var: String,
    },
    /// Two files declare the same id.
    #[error("{file}: `id`: platform id `{id}` is already declared in {other}")]
    DuplicateId {
        /// File.
        file: String,
        /// Id.
        id: String,
        /// The earlier file.
        other: String,
    },
}

impl ConfigError {
    /// The file the error is about (the directory for [`ConfigError::ReadDir`]).
    pub fn file(&self) -> &str {
        match self {
            Self::ReadDir { dir, .. } => dir,
            Self::Io { file, .. }
            | Self::Parse { file, .. }
            | Self::Invalid { file, .. }
            | Self::DevelopmentSecret { file, .. }
            | Self::DuplicateId { file, .. } => file,
        }
    }

    /// The config field, when the error is about one value.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } | Self::DevelopmentSecret { field, .. } => Some(field),
            Self::DuplicateId { .. } => Some("id"),
            _ => None,
        }
    }
}

/// An `http` or `https` URL split into what a client and a server need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    /// Port (explicit or the scheme's default).
    pub port: u16,
    /// Absolute path, at least `/`.
    pub path: String,
}

impl EndpointUrl {
    /// Parses `http(s)://host[:port][/path]`. Query strings, fragments, credentials and path
    /// characters outside `A-Za-z0-9-._~/` are refused: platforms are addressed by plain paths,
    /// and the simulator mounts routes on them.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("`{url}` is not an absolute http(s) URL"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(format!("`{url}`: scheme must be http or https")),
        };
        if rest.contains(['?', '#']) || rest.chars().any(char::is_whitespace) {
            return Err(format!(
                "`{url}`: query strings, fragments and spaces are not allowed"
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(format!(
                "`{url}`: credentials do not belong in the URL (use [auth])"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("`{url}`: unclosed IPv6 bracket"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("`{url}`: bad port"))?,
                ),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        {
            return Err(format!("`{url}`: invalid host"));
        }
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(format!("`{url}`: invalid port `{p}`")),
                Ok(p) => p,
            },
        };
        let segments_ok = path
            .strip_prefix('/')
            .map(|p| p.trim_end_matches('/'))
            .is_some_and(|p| {
                p.is_empty()
                    || p.split('/').all(|s| {
                        !s.is_empty()
                            && s.chars().all(|c| {
                                c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
                            })
                    })
            });
        if !segments_ok {
            return Err(format!(
                "`{url}`: path must be `/`-separated non-empty segments of A-Za-z0-9-._~"
            ));
        }
        Ok(Self {
            scheme,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlatform {
    id: String,
    name: String,
    name_en: String,
    endpoint: String,
    query_endpoint: Option<String>,
    event_types: Vec<String>,
    #[serde(default)]
    matter_codes: Vec<String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
    auth: RawAuth,
    #[serde(default)]
    retry: RawRetry,
    #[serde(default)]
    circuit: RawCircuit,
    mapping: BTreeMap<String, RawRule>,
    #[serde(default)]
    delivery: DeliveryMode,
    receipt: Option<String>,
    #[serde(default)]
    reconcile: RawReconcile,
}

/// `[reconcile]`; the method stays text so an unknown one is reported with its field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReconcile {
    method: Option<String>,
    endpoint: Option<String>,
}

fn default_timeout_ms() -> u64 {
    5000
}

fn default_concurrency() -> usize {
    4
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum RawAuth {
    Bearer {
        token_env: Option<String>,
        token: Option<String>,
    },
    Hmac {
        secret_env: Option<String>,
        secret: Option<String>,
        header: Option<String>,
        timestamp_header: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRetry {
    max_attempts: u32,
    initial_backoff_ms: u64,
    max_backoff_ms: u64,
    multiplier: f64,
    jitter: bool,
}

impl Default for RawRetry {
    fn default() -> Self {
        let d = RetryPolicy::default();
        Self {
            max_attempts: d.max_attempts,
            initial_backoff_ms: millis(d.initial_backoff),
            max_backoff_ms: millis(d.max_backoff),
            multiplier: d.multiplier,
            jitter: d.jitter,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawCircuit {
    failure_threshold: u32,
    open_for_ms: u64,
}

impl Default for RawCircuit {
    fn default() -> Self {
        let d = CircuitPolicy::default();
        Self {
            failure_threshold: d.failure_threshold,
            open_for_ms: millis(d.open_for),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads every `*.toml` file in `dir` (other files, such as a README, are ignored), with
/// overrides from the process environment, in [`Mode::Development`]. Each file's stem must
/// equal its `id`. Sorted by id.
pub fn load_dir(dir: impl AsRef<Path>) -> Result<Vec<PlatformConfig>, ConfigError> {
    load_dir_with_env(dir, &process_env)
}

/// [`load_dir`] with an explicit environment (tests, or layered config sources).
pub fn load_dir_with_env(
    dir: impl AsRef<Path>,
    env: EnvLookup<'_>,
) -> Result<Vec<PlatformConfig>, ConfigError> {
    load_dir_in(dir, env, Mode::Development)
}

/// [`load_dir_with_env`] in `mode`; the `tongban-dispatch` binary loads in
/// [`Mode::Production`] from the process environment.
pub fn load_dir_in(
    dir: impl AsRef<Path>,
    env: EnvLookup<'_>,
    mode: Mode,
) -> Result<Vec<PlatformConfig>, ConfigError> {
    let dir = dir.as_ref();
    let read_dir_err = |source| ConfigError::ReadDir {
        dir: dir.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_dir_err)? {
        let path = entry.map_err(read_dir_err)?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();

    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut platforms = Vec::with_capacity(files.len());
    for path in files {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
            file: file.clone(),
            source,
        })?;
        let platform = PlatformConfig::parse_in(&src, &file, env, mode)?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if stem != platform.id {
            return Err(invalid(
                &file,
                "id",
                format!(
                    "id `{}` must match the file name (`{}.toml`)",
                    platform.id, platform.id
                ),
            ));
        }
        if let Some(other) = seen.insert(platform.id.clone(), file.clone()) {
            return Err(ConfigError::DuplicateId {
                file,
                id: platform.id,
                other,
            });
        }
        platforms.push(platform);
    }
    platforms.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(platforms)
}

fn invalid(file: &str, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_owned(),
        field: field.into(),
        message: message.into(),
    }
}

/// `line N: <message> — <the line>` from a TOML/serde error.
fn describe_toml_error(src: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().to_owned();
    let Some(span) = err.span() else {
        return message;
    };
    let start = span.start.min(src.len());
    let line_no = src[..start].matches('\n').count() + 1;
    let line = src.lines().nth(line_no - 1).unwrap_or_default().trim();
    format!("line {line_no}: {message} (at `{line}`)")
}

/// The platform's secret: the environment variable `var`, else (in development) the inline
/// value. `field` is `auth.token` or `auth.secret`; `what` names the secret in messages.
struct SecretSource<'a> {
    env: EnvLookup<'a>,
    mode: Mode,
    file: &'a str,
    platform: &'a str,
    field: &'static str,
    what: &'static str,
}

impl SecretSource<'_> {
    fn resolve(&self, var: &str, inline: Option<String>) -> Result<Secret, ConfigError> {
        let from_env = (self.env)(var).filter(|v| !v.trim().is_empty());
        let inline = inline.filter(|v| !v.trim().is_empty());
        let refused = || ConfigError::DevelopmentSecret {
            file: self.file.to_owned(),
            field: self.field.to_owned(),
            platform: self.platform.to_owned(),
            var: var.to_owned(),
        };
        match (from_env, inline, self.mode) {
            // Nothing will be sent with it: no secret is needed, so none is refused either.
            (_, _, Mode::MappingsOnly) => Ok(Secret::new(String::new())),
            // The shipped value is public: the same value set through the environment is no
            // more secret than the file.
            (Some(v), Some(dev), Mode::Production) if v.trim() == dev.trim() => Err(refused()),
            (Some(v), _, _) => Ok(Secret::new(v)),
            (None, Some(_), Mode::Production) => Err(refused()),
            (None, Some(dev), Mode::Development) => Ok(Secret::new(dev)),
            (None, None, mode) => Err(invalid(
                self.file,
                self.field,
                match mode {
                    Mode::Production | Mode::MappingsOnly => {
                        format!("no {}: set environment variable {var}", self.what)
                    }
                    Mode::Development => format!(
                        "no {}: set environment variable {var} (or `{}` for development)",
                        self.what,
                        self.field.trim_start_matches("auth.")
                    ),
                },
            )),
        }
    }
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

impl PlatformConfig {
    /// Parses and validates one platform file's text; `origin` (usually the path) names it in
    /// errors. Environment overrides come from the process environment.
    pub fn parse(src: &str, origin: &str) -> Result<Self, ConfigError> {
        Self::parse_with_env(src, origin, &process_env)
    }

    /// [`PlatformConfig::parse`] with an explicit environment, in [`Mode::Development`].
    pub fn parse_with_env(
        src: &str,
        origin: &str,
        env: EnvLookup<'_>,
    ) -> Result<Self, ConfigError> {
        Self::parse_in(src, origin, env, Mode::Development)
    }

    /// [`PlatformConfig::parse_with_env`] in `mode`.
    pub fn parse_in(
        src: &str,
        origin: &str,
        env: EnvLookup<'_>,
        mode: Mode,
    ) -> Result<Self, ConfigError> {
        let raw: RawPlatform = toml::from_str(src).map_err(|e| ConfigError::Parse {
            file: origin.to_owned(),
            message: describe_toml_error(src, &e),
        })?;
        Self::from_raw(raw, origin, env, mode)
    }

    fn from_raw(
        raw: RawPlatform,
        file: &str,
        env: EnvLookup<'_>,
        mode: Mode,
    ) -> Result<Self, ConfigError> {
        let id = raw.id;
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(invalid(file, "id", format!("`{id}` must match [a-z0-9_]+")));
        }
        let env_prefix = format!("TONGBAN_PLATFORM_{}", id.to_ascii_uppercase());
        for (value, field) in [(&raw.name, "name"), (&raw.name_en, "name_en")] {
            if value.trim().is_empty() {
                return Err(invalid(file, field, "must not be empty"));
            }
        }

        let endpoint_var = format!("{env_prefix}_ENDPOINT");
        let (endpoint, endpoint_field) = match env(&endpoint_var).filter(|v| !v.trim().is_empty()) {
            Some(v) => (
                v.trim().to_owned(),
                format!("endpoint (from {endpoint_var})"),
            ),
            None => (raw.endpoint, "endpoint".to_owned()),
        };
        let endpoint_url =
            EndpointUrl::parse(&endpoint).map_err(|m| invalid(file, &endpoint_field, m))?;

        let (query_endpoint, reconcile) =
            resolve_reconcile(file, &endpoint, raw.query_endpoint, raw.reconcile, |var| {
                env(&format!("{env_prefix}_{var}")).map(|v| (v, format!("{env_prefix}_{var}")))
            })?;

        if raw.event_types.is_empty() {
            return Err(invalid(
                file,
                "event_types",
                "at least one event type is needed",
            ));
        }
        for (i, event) in raw.event_types.iter().enumerate() {
            let field = format!("event_types[{i}]");
            if !is_known_event_type(event) {
                return Err(invalid(
                    file,
                    field,
                    format!("unknown event type `{event}`"),
                ));
            }
            if raw.event_types[..i].contains(event) {
                return Err(invalid(file, field, format!("`{event}` is listed twice")));
            }
        }
        for (i, code) in raw.matter_codes.iter().enumerate() {
            let pattern = code.strip_suffix(".*").unwrap_or(code);
            if pattern.is_empty() || pattern.contains('*') || pattern.trim() != pattern {
                return Err(invalid(
                    file,
                    format!("matter_codes[{i}]"),
                    format!("`{code}`: use an exact matter code or `prefix.*`"),
                ));
            }
        }

        if raw.timeout_ms == 0 {
            return Err(invalid(file, "timeout_ms", "must be positive"));
        }
        if raw.concurrency == 0 {
            return Err(invalid(file, "concurrency", "must be at least 1"));
        }

        // The file's own values are checked first; the secret, which depends on the
        // environment and the mode, last, so a broken file is reported as such.
        let (secret_env, inline, hmac_headers) = match raw.auth {
            RawAuth::Bearer { token_env, token } => (
                token_env.unwrap_or_else(|| format!("{env_prefix}_TOKEN")),
                token,
                None,
            ),
            RawAuth::Hmac {
                secret_env,
                secret,
                header,
                timestamp_header,
            } => {
                let header = header.unwrap_or_else(|| DEFAULT_SIGNATURE_HEADER.to_owned());
                let timestamp_header =
                    timestamp_header.unwrap_or_else(|| DEFAULT_TIMESTAMP_HEADER.to_owned());
                for (name, field) in [
                    (&header, "auth.header"),
                    (&timestamp_header, "auth.timestamp_header"),
                ] {
                    if !is_header_name(name) {
                        return Err(invalid(
                            file,
                            field,
                            format!("`{name}` is not a valid HTTP header name"),
                        ));
                    }
                }
                if header.eq_ignore_ascii_case(&timestamp_header) {
                    return Err(invalid(
                        file,
                        "auth.timestamp_header",
                        "must differ from auth.header",
                    ));
                }
                (
                    secret_env.unwrap_or_else(|| format!("{env_prefix}_SECRET")),
                    secret,
                    Some((header, timestamp_header)),
                )
            }
        };

        let r = raw.retry;
        if r.max_attempts == 0 {
            return Err(invalid(file, "retry.max_attempts", "must be at least 1"));
        }
        if r.initial_backoff_ms == 0 {
            return Err(invalid(
                file,
                "retry.initial_backoff_ms",
                "must be positive",
            ));
        }
        if r.max_backoff_ms < r.initial_backoff_ms {
            return Err(invalid(
                file,
                "retry.max_backoff_ms",
                "must be at least retry.initial_backoff_ms",
            ));
        }
        if !(r.multiplier.is_finite() && r.multiplier >= 1.0) {
            return Err(invalid(file, "retry.multiplier", "must be a number ≥ 1.0"));
        }
        let retry = RetryPolicy {
            max_attempts: r.max_attempts,
            initial_backoff: Duration::from_millis(r.initial_backoff_ms),
            max_backoff: Duration::from_millis(r.max_backoff_ms),
            multiplier: r.multiplier,
            jitter: r.jitter,
        };

        if raw.circuit.failure_threshold == 0 {
            return Err(invalid(
                file,
                "circuit.failure_threshold",
                "must be at least 1",
            ));
        }
        if raw.circuit.open_for_ms == 0 {
            return Err(invalid(file, "circuit.open_for_ms", "must be positive"));
        }
        let circuit = CircuitPolicy {
            failure_threshold: raw.circuit.failure_threshold,
            open_for: Duration::from_millis(raw.circuit.open_for_ms),
        };

        let mapping = Mapping::compile(&id, raw.mapping, &raw.event_types)
            .map_err(|e| invalid(file, e.field, e.message))?;
        if let Some(pointer) = &raw.receipt
            && (!pointer.starts_with('/') || pointer.ends_with('/'))
        {
            return Err(invalid(
                file,
                "receipt",
                format!("`{pointer}` is not a JSON pointer into the reply (e.g. `/data/case_no`)"),
            ));
        }

        let (field, what) = match hmac_headers {
            None => ("auth.token", "bearer token"),
            Some(_) => ("auth.secret", "HMAC secret"),
        };
        let secret = SecretSource {
            env,
            mode,
            file,
            platform: &id,
            field,
            what,
        }
        .resolve(&secret_env, inline)?;
        let auth = match hmac_headers {
            None => AuthConfig::Bearer { token: secret },
            Some((header, timestamp_header)) => AuthConfig::Hmac {
                secret,
                header,
                timestamp_header,
            },
        };

        Ok(Self {
            id,
            name: raw.name,
            name_en: raw.name_en,
            endpoint,
            endpoint_url,
            query_endpoint,
            reconcile,
            event_types: raw.event_types,
            matter_codes: raw.matter_codes,
            timeout: Duration::from_millis(raw.timeout_ms),
            concurrency: raw.concurrency,
            auth,
            secret_env,
            retry,
            circuit,
            mapping,
            delivery: raw.delivery,
            receipt: raw.receipt,
            origin: file.to_owned(),
        })
    }

    /// The platform's reference in a reply body, where the platform declares one and the
    /// reply holds it (a string, or a number written as text).
    pub fn receipt_in(&self, reply: &[u8]) -> Option<String> {
        let pointer = self.receipt.as_deref()?;
        let body: Value = serde_json::from_slice(reply).ok()?;
        match body.pointer(pointer)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The file name the platform came from (`eia.toml`), for messages.
    pub fn file_name(&self) -> &str {
        self.origin
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(&self.origin)
    }

    /// Whether this platform receives events of `event_type`.
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|e| e == event_type)
    }

    /// Whether this platform receives applications of `matter_code`.
    pub fn wants_matter(&self, matter_code: &str) -> bool {
        self.matter_codes.is_empty()
            || self
                .matter_codes
                .iter()
                .any(|pattern| match pattern.strip_suffix(".*") {
                    Some(prefix) => matter_code
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('.')),
                    None => pattern == matter_code,
                })
    }

    /// Whether a canonical document is for this platform: its `/event/type` is wanted and its
    /// `/application/matter_code` matches `matter_codes`.
    pub fn accepts(&self, canonical: &Value) -> bool {
        let event_type = canonical.pointer("/event/type").and_then(Value::as_str);
        let matter = canonical
            .pointer("/application/matter_code")
            .and_then(Value::as_str);
        event_type.is_some_and(|e| self.wants(e))
            && (self.matter_codes.is_empty() || matter.is_some_and(|m| self.wants_matter(m)))
    }

    /// URL returning the body the platform holds for idempotency key `key`.
    pub fn received_url(&self, key: &str) -> String {
        format!(
            "{}/{}",
            self.query_endpoint.trim_end_matches('/'),
            encode_segment(key)
        )
    }

    /// URL asking whether the platform holds idempotency key `key`, under
    /// [`Reconcile::Status`]; `None` under the other methods.
    pub fn status_url(&self, key: &str) -> Option<String> {
        match &self.reconcile {
            Reconcile::Status { url_template } => {
                Some(url_template.replace(KEY_PLACEHOLDER, &encode_segment(key)))
            }
            Reconcile::List | Reconcile::None => None,
        }
    }

    /// The same platform at another endpoint (e.g. a simulator on a free port); the query
    /// endpoint and a `status` URL template are re-derived from it (the simulator's defaults).
    pub fn with_endpoint(&self, endpoint: &str) -> Result<Self, ConfigError> {
        let endpoint_url =
            EndpointUrl::parse(endpoint).map_err(|m| invalid(&self.origin, "endpoint", m))?;
        let reconcile = match &self.reconcile {
            Reconcile::Status { .. } => Reconcile::Status {
                url_template: default_status_template(endpoint),
            },
            other => other.clone(),
        };
        Ok(Self {
            endpoint: endpoint.to_owned(),
            endpoint_url,
            query_endpoint: default_query_endpoint(endpoint),
            reconcile,
            ..self.clone()
        })
    }
}

fn default_query_endpoint(endpoint: &str) -> String {
    format!("{}{RECEIVED_SUFFIX}", endpoint.trim_end_matches('/'))
}

fn default_status_template(endpoint: &str) -> String {
    format!("{}/{KEY_PLACEHOLDER}", default_query_endpoint(endpoint))
}

/// The listing endpoint and the reconciliation method from `query_endpoint`, `[reconcile]` and
/// the `QUERY_ENDPOINT` override (`env_var("QUERY_ENDPOINT")` → value and variable name).
///
/// The override moves the listing endpoint whatever the method, and only `list` asks it: the
/// launchers (`tongban local`, the e2e stacks) set it for every platform they start, so it must
/// not stop a `status` or `none` platform. A `status` template follows an `ENDPOINT` override
/// when it is the default one.
fn resolve_reconcile(
    file: &str,
    endpoint: &str,
    query_endpoint: Option<String>,
    raw: RawReconcile,
    env_var: impl Fn(&str) -> Option<(String, String)>,
) -> Result<(String, Reconcile), ConfigError> {
    let method = raw.method.as_deref().unwrap_or("list");
    let reconcile = match method {
        "list" => Reconcile::List,
        "status" => {
            if query_endpoint.is_some() {
                return Err(invalid(
                    file,
                    "query_endpoint",
                    "is the listing endpoint of reconcile method `list`; with method `status` set `reconcile.endpoint` to a URL template with `{key}`",
                ));
            }
            let url_template = raw
                .endpoint
                .clone()
                .unwrap_or_else(|| default_status_template(endpoint));
            check_status_template(&url_template)
                .map_err(|m| invalid(file, "reconcile.endpoint", m))?;
            Reconcile::Status { url_template }
        }
        "none" => {
            let asks = "method `none` asks the platform nothing";
            if raw.endpoint.is_some() {
                return Err(invalid(
                    file,
                    "reconcile.endpoint",
                    format!("{asks}: remove the endpoint, or choose `list` or `status`"),
                ));
            }
            if query_endpoint.is_some() {
                return Err(invalid(
                    file,
                    "query_endpoint",
                    format!("{asks}: remove it, or choose method `list`"),
                ));
            }
            Reconcile::None
        }
        other => {
            return Err(invalid(
                file,
                "reconcile.method",
                format!("unknown method `{other}`: use `list`, `status` or `none`"),
            ));
        }
    };
    if reconcile == Reconcile::List && raw.endpoint.is_some() && query_endpoint.is_some() {
        return Err(invalid(
            file,
            "reconcile.endpoint",
            "the listing endpoint is set twice: keep either `query_endpoint` or `reconcile.endpoint`",
        ));
    }
    let listing = match env_var("QUERY_ENDPOINT").filter(|(v, _)| !v.trim().is_empty()) {
        Some((v, var)) => Some((v.trim().to_owned(), format!("query_endpoint (from {var})"))),
        None => match (reconcile == Reconcile::List)
            .then_some(raw.endpoint)
            .flatten()
        {
            Some(u) => Some((u, "reconcile.endpoint".to_owned())),
            None => query_endpoint.map(|u| (u, "query_endpoint".to_owned())),
        },
    };
    let query_endpoint = match listing {
        Some((url, field)) => {
            EndpointUrl::parse(&url).map_err(|m| invalid(file, field, m))?;
            url
        }
        None => default_query_endpoint(endpoint),
    };
    Ok((query_endpoint, reconcile))
}

/// An absolute http(s) URL with [`KEY_PLACEHOLDER`] in its path or query (`…/cases/{key}`,
/// `…/status?sbbh={key}`).
fn check_status_template(template: &str) -> Result<(), String> {
    if !template.contains(KEY_PLACEHOLDER) {
        return Err(format!(
            "`{template}` has no `{KEY_PLACEHOLDER}` placeholder for the idempotency key"
        ));
    }
    let sample = template.replace(KEY_PLACEHOLDER, "key");
    let (base, query) = match sample.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (sample.as_str(), None),
    };
    if let Some(q) = query
        && (q.is_empty()
            || !q
                .chars()
                .all(|c| c.is_ascii_graphic() && !"#{}".contains(c)))
    {
        return Err(format!("`{template}`: invalid query string"));
    }
    let authority_end = template
        .find("://")
        .and_then(|i| template[i + 3..].find(['/', '?']).map(|j| i + 3 + j));
    if authority_end.is_none_or(|end| template[..end].contains(KEY_PLACEHOLDER)) {
        return Err(format!(
            "`{template}`: the `{KEY_PLACEHOLDER}` placeholder belongs in the path or the query"
        ));
    }
    if base.contains(['{', '}']) {
        return Err(format!(
            "`{template}`: only the `{KEY_PLACEHOLDER}` placeholder is allowed"
        ));
    }
    EndpointUrl::parse(base).map(|_| ())
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        let u = EndpointUrl::parse("http://127.0.0.1:18082/api/eia/projects").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 18082, "/api/eia/projects")
        );
        let u = EndpointUrl::parse("https://gov.example.cn").unwrap();
        assert_eq!((u.port, u.path.as_str()), (443, "/"));
        let u = EndpointUrl::parse("http://[::1]:8080/x/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
        for bad in [
            "127.0.0.1:80/x",
            "ftp://h/x",
            "http://h:0/x",
            "http://h:99999/x",
            "http://u:p@h/x",
            "http://h/x?y=1",
            "http://h/a//b",
            "http://h/{id}",
            "http://h/:id",
            "http:///x",
        ] {
            assert!(EndpointUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matter_patterns_and_urls() {
        let src = r#"
            id = "x"
            name = "X"
            name_en = "X"
            endpoint = "http://127.0.0.1:1/in/"
            event_types = ["application.submitted"]
            matter_codes = ["env.eia.*", "land.use"]
            auth = { kind = "bearer", token = "t" }
            mapping = { a = { const = 1 } }
        "#;
        let p = PlatformConfig::parse_with_env(src, "x.toml", &|_| None).unwrap();
        assert!(p.wants_matter("env.eia.report_form"));
        assert!(!p.wants_matter("env.eiax"));
        assert!(p.wants_matter("land.use"));
        assert!(!p.wants_matter("land.use.x"));
        assert_eq!(p.query_endpoint, "http://127.0.0.1:1/in/_received");
        assert_eq!(
            p.received_url("a b/c"),
            "http://127.0.0.1:1/in/_received/a%20b%2Fc"
        );
    }

    #[test]
    fn mappings_only_needs_no_secret() {
        let src = r#"
            id = "x"
            name = "X"
            name_en = "X"
            endpoint = "http://127.0.0.1:1/in/"
            event_types = ["application.submitted"]
            auth = { kind = "hmac" }
            mapping = { a = { const = 1 } }
        "#;
        let none = |_: &str| None;
        assert!(PlatformConfig::parse_in(src, "x.toml", &none, Mode::Production).is_err());
        assert!(PlatformConfig::parse_in(src, "x.toml", &none, Mode::Development).is_err());
        let p = PlatformConfig::parse_in(src, "x.toml", &none, Mode::MappingsOnly).unwrap();
        assert_eq!(p.mapping.rules().len(), 1);
        // A development secret is not refused either: nothing is sent with it.
        let dev = src.replace(r#"kind = "hmac""#, r#"kind = "hmac", secret = "dev""#);
        assert!(PlatformConfig::parse_in(&dev, "x.toml", &none, Mode::MappingsOnly).is_ok());
    }
}
