//! Talking to the services: where they are, who we are, and what a failure means to a script.
//!
//! Servers and the token resolve flag → environment → config file (`~/.config/tongban/config.toml`)
//! → default. Every RPC error becomes an [`RpcError`], which renders as one line and picks the
//! process exit code (see [`exit_code`]), so scripts can branch on "rejected" vs "auth" vs "down".

use std::{fmt, path::PathBuf, time::Duration};

use anyhow::Context as _;
use tongban_proto::{
    approval::approval_service_client::ApprovalServiceClient,
    dispatch::dispatch_service_client::DispatchServiceClient,
    intake::intake_service_client::IntakeServiceClient,
};
use tonic::{
    Code, Request, Status,
    codegen::http::Uri,
    transport::{Channel, Endpoint},
};
use tonic_types::StatusExt as _;

/// How results are printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Output {
    /// Human-readable tables (80 columns).
    #[default]
    Table,
    /// Proto3 JSON of the response message, for scripts.
    Json,
}

/// Options every client command shares.
#[derive(clap::Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Intake service URL; the others default to its port +1 (approval), +2 (notification), +3 (dispatch).
    #[arg(long, global = true, env = "TONGBAN_SERVER")]
    pub(crate) server: Option<String>,
    /// Approval service URL.
    #[arg(long, global = true, env = "TONGBAN_APPROVAL_SERVER")]
    pub(crate) approval_server: Option<String>,
    /// Dispatch service URL.
    #[arg(long, global = true, env = "TONGBAN_DISPATCH_SERVER")]
    pub(crate) dispatch_server: Option<String>,
    /// Notification service URL.
    #[arg(long, global = true, env = "TONGBAN_NOTIFICATION_SERVER")]
    pub(crate) notification_server: Option<String>,
    /// Bearer token; else TONGBAN_TOKEN, else `token` in the config file (`tongban login`).
    #[arg(long, global = true, env = "TONGBAN_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// table (default) or json (proto3 JSON of the response).
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
}

impl GlobalArgs {
    /// Whether `--output json` was asked for.
    pub fn json(&self) -> bool {
        self.output == Output::Json
    }
}

/// `~/.config/tongban/config.toml`.
#[derive(serde::Deserialize, serde::Serialize, Default, Debug)]
pub(crate) struct Config {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) approval_server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) dispatch_server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) notification_server: Option<String>,
}

impl Config {
    /// `TONGBAN_CONFIG`, else `$XDG_CONFIG_HOME/tongban/config.toml`, else `~/.config/...`.
    pub(crate) fn path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("TONGBAN_CONFIG") {
            return Some(PathBuf::from(p));
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("tongban").join("config.toml"))
    }

    /// The config file, or an empty one when there is none.
    pub(crate) fn load() -> anyhow::Result<Self> {
        let Some(path) = Self::path() else {
            return Ok(Self::default());
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("reading {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub(crate) fn save(&self) -> anyhow::Result<PathBuf> {
        let path = Self::path().context("no home directory; set TONGBAN_CONFIG")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = toml::to_string(self)?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(path)
    }
}

/// Which service a call went to (for error messages).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Svc {
    Intake,
    Approval,
    Dispatch,
    Notification,
}

impl Svc {
    fn name(self) -> &'static str {
        match self {
            Svc::Intake => "intake",
            Svc::Approval => "approval",
            Svc::Dispatch => "dispatch",
            Svc::Notification => "notification",
        }
    }
}

/// A resolved connection profile: URLs, token and output format.
#[derive(Clone, Debug)]
pub(crate) struct Conn {
    pub(crate) intake_url: String,
    pub(crate) approval_url: String,
    pub(crate) dispatch_url: String,
    pub(crate) notification_url: String,
    token: Option<String>,
    pub(crate) output: Output,
}

pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// Environment variable naming a PEM file of CA certificates to trust for `https://` servers
/// (a county's own CA), besides the Web PKI roots.
pub(crate) const CA_FILE_VAR: &str = "TONGBAN_CA_FILE";

/// An endpoint for `url`. `https://` speaks TLS, trusting the Web PKI roots and the CAs in
/// [`CA_FILE_VAR`] when it names a file; `http://` is plain text.
pub(crate) fn endpoint(url: &str) -> anyhow::Result<Endpoint> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .with_context(|| format!("invalid server URL {url:?}"))?;
    if !url.starts_with("https://") {
        return Ok(endpoint);
    }
    let mut tls = tonic::transport::ClientTlsConfig::new().with_webpki_roots();
    if let Some(path) = std::env::var_os(CA_FILE_VAR) {
        let pem = std::fs::read(&path).with_context(|| {
            format!(
                "{CA_FILE_VAR}: reading {}",
                std::path::Path::new(&path).display()
            )
        })?;
        tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
    }
    endpoint
        .tls_config(tls)
        .with_context(|| format!("TLS for {url:?}"))
}

impl Conn {
    pub(crate) fn resolve(args: &GlobalArgs) -> anyhow::Result<Self> {
        let cfg = Config::load()?;
        let intake = args
            .server
            .clone()
            .or(cfg.server)
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        let pick = |flag: &Option<String>, file: Option<String>, offset: u16| match flag
            .clone()
            .or(file)
        {
            Some(u) => Ok(u),
            None => offset_url(&intake, offset),
        };
        Ok(Self {
            approval_url: pick(&args.approval_server, cfg.approval_server, 1)?,
            notification_url: pick(&args.notification_server, cfg.notification_server, 2)?,
            dispatch_url: pick(&args.dispatch_server, cfg.dispatch_server, 3)?,
            intake_url: intake,
            token: args
                .token
                .clone()
                .or(cfg.token)
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
            output: args.output,
        })
    }

    /// The same servers with another caller's token (the demo acts as several people).
    pub(crate) fn with_token(&self, token: String) -> Self {
        Self {
            token: Some(token),
            ..self.clone()
        }
    }

    pub(crate) fn json(&self) -> bool {
        self.output == Output::Json
    }

    fn channel(url: &str) -> anyhow::Result<Channel> {
        // Lazy: an unreachable server shows up as UNAVAILABLE on the first call, which maps to
        // exit code 4 like every other "cannot reach" case.
        Ok(endpoint(url)?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect_lazy())
    }

    pub(crate) fn intake(&self) -> anyhow::Result<IntakeServiceClient<Channel>> {
        Ok(IntakeServiceClient::new(Self::channel(&self.intake_url)?))
    }

    pub(crate) fn approval(&self) -> anyhow::Result<ApprovalServiceClient<Channel>> {
        Ok(ApprovalServiceClient::new(Self::channel(
            &self.approval_url,
        )?))
    }

    pub(crate) fn dispatch(&self) -> anyhow::Result<DispatchServiceClient<Channel>> {
        Ok(DispatchServiceClient::new(Self::channel(
            &self.dispatch_url,
        )?))
    }

    /// A request carrying the bearer token, if we have one.
    /// The role the token claims, read without verifying it (the services do that): the client
    /// uses it only to leave out calls the table never allows that role, which would otherwise
    /// be refused and recorded as refused attempts.
    pub(crate) fn role(&self) -> Option<tongban_auth::Role> {
        use base64::Engine as _;
        let payload = self.token.as_deref()?.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        claims.get("role")?.as_str()?.parse().ok()
    }

    /// Whether the token's role may ever read dispatch's platforms and deliveries.
    pub(crate) fn reads_dispatch(&self) -> bool {
        self.role() != Some(tongban_auth::Role::Applicant)
    }

    pub(crate) fn req<T>(&self, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        if let Some(token) = &self.token
            && let Ok(value) = format!("Bearer {token}").parse()
        {
            req.metadata_mut().insert("authorization", value);
        }
        req
    }

    /// Wraps a failed call's status with where it went.
    pub(crate) fn err(&self, svc: Svc) -> impl FnOnce(Status) -> anyhow::Error + '_ {
        move |status| {
            let url = match svc {
                Svc::Intake => &self.intake_url,
                Svc::Approval => &self.approval_url,
                Svc::Dispatch => &self.dispatch_url,
                Svc::Notification => &self.notification_url,
            };
            anyhow::Error::new(RpcError {
                service: svc.name(),
                url: url.clone(),
                status,
                had_token: self.token.is_some(),
            })
        }
    }
}

/// `http://host:port` with the port moved by `offset`.
fn offset_url(base: &str, offset: u16) -> anyhow::Result<String> {
    let uri: Uri = base
        .parse()
        .with_context(|| format!("invalid server URL {base:?}"))?;
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri
        .host()
        .with_context(|| format!("server URL {base:?} has no host"))?;
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let port = port
        .checked_add(offset)
        .with_context(|| format!("port of {base:?} is too high to derive the others"))?;
    Ok(format!("{scheme}://{host}:{port}"))
}

/// A call the server refused or could not take.
#[derive(Debug)]
pub(crate) struct RpcError {
    service: &'static str,
    url: String,
    pub(crate) status: Status,
    had_token: bool,
}

impl std::error::Error for RpcError {}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = code_name(self.status.code());
        let violations: Vec<String> = self
            .status
            .get_details_bad_request()
            .map(|b| {
                b.field_violations
                    .into_iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect()
            })
            .unwrap_or_default();
        let text = if !violations.is_empty() {
            violations.join("; ")
        } else {
            self.status.message().to_string()
        };
        let text = one_line(&text);
        match self.status.code() {
            Code::Unavailable => write!(
                f,
                "{code}: cannot reach {} at {}: {text}",
                self.service, self.url
            ),
            Code::Unauthenticated if !self.had_token => write!(
                f,
                "{code}: {text} (no token: pass --token, set TONGBAN_TOKEN or run `tongban login`)"
            ),
            _ => write!(f, "{code}: {text}"),
        }
    }
}

fn one_line(s: &str) -> String {
    let s = if s.is_empty() { "(no message)" } else { s };
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical upper-case name of a status code, as in the gRPC spec.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Exit codes, as documented in `tongban --help`.
pub(crate) const EXIT_LOCAL: u8 = 1;
pub(crate) const EXIT_REJECTED: u8 = 2;
pub(crate) const EXIT_AUTH: u8 = 3;
pub(crate) const EXIT_UNREACHABLE: u8 = 4;

/// The exit code for an error: server codes by class, anything else is a local error.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err
        .chain()
        .any(|e| e.downcast_ref::<crate::health::Unhealthy>().is_some())
    {
        return EXIT_UNREACHABLE;
    }
    if err
        .chain()
        .any(|e| e.downcast_ref::<crate::admin::Drift>().is_some())
    {
        return EXIT_REJECTED;
    }
    let Some(rpc) = err.chain().find_map(|e| e.downcast_ref::<RpcError>()) else {
        return EXIT_LOCAL;
    };
    match rpc.status.code() {
        Code::Unauthenticated | Code::PermissionDenied => EXIT_AUTH,
        Code::Unavailable | Code::DeadlineExceeded => EXIT_UNREACHABLE,
        _ => EXIT_REJECTED,
    }
}

/// The status behind an error, when it came from a call.
pub(crate) fn status_of(err: &anyhow::Error) -> Option<&Status> {
    err.chain()
        .find_map(|e| e.downcast_ref::<RpcError>())
        .map(|r| &r.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_ports() {
        assert_eq!(
            offset_url("http://127.0.0.1:50051", 3).ok().as_deref(),
            Some("http://127.0.0.1:50054")
        );
        assert_eq!(
            offset_url("https://gov.example:8443/", 1).ok().as_deref(),
            Some("https://gov.example:8444")
        );
    }

    #[test]
    fn classifies_codes() {
        let conn = Conn {
            intake_url: "u".into(),
            approval_url: "u".into(),
            dispatch_url: "u".into(),
            notification_url: "u".into(),
            token: None,
            output: Output::Table,
        };
        for (code, exit) in [
            (Code::InvalidArgument, EXIT_REJECTED),
            (Code::Aborted, EXIT_REJECTED),
            (Code::NotFound, EXIT_REJECTED),
            (Code::Unauthenticated, EXIT_AUTH),
            (Code::PermissionDenied, EXIT_AUTH),
            (Code::Unavailable, EXIT_UNREACHABLE),
        ] {
            let e = conn.err(Svc::Intake)(Status::new(code, "x\ny"));
            assert_eq!(exit_code(&e), exit, "{code:?}");
            assert!(!e.to_string().contains('\n'));
        }
        assert_eq!(exit_code(&anyhow::anyhow!("local")), EXIT_LOCAL);
    }
}
