//! Who is calling, and may they?
//!
//! Every Tongban RPC runs as an [`Identity`]: a subject with a [`Role`], and where relevant a
//! department, a region and (for applicants) a unified social credit code. The identity comes from
//! a bearer JWT that [`Authenticator`] verifies in one tonic interceptor, which puts it into the
//! request extensions; handlers read it with [`identity`].
//!
//! Tokens are EdDSA (Ed25519) JWTs and nothing else: `HS256`, `none` and every other `alg` are
//! refused. The issuer alone holds the private key ([`keys::SigningKey`], `issuer.key`);
//! services hold only a JWK Set of public keys ([`keys::Jwks`], `jwks.json`) and pick the key by
//! the token header's `kid`, so several keys can be live during a rotation. Beyond the
//! signature a token must name the configured audience and issuer ([`TokenRules`]), live no
//! longer than the lifetime cap, and carry every claim its role needs (see [`Identity`]):
//! a missing claim is `UNAUTHENTICATED`, never read as "all".
//!
//! # Layout
//! - `eddsa`: the Ed25519-only `jsonwebtoken` crypto provider (over `ring`).
//! - [`keys`]: private key and JWKS files, generation and rotation.
//! - here: roles, claims, [`Issuer`], [`Authenticator`] and the interceptor.

mod eddsa;
pub mod keys;

use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant, SystemTime},
};

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tongban_types::CreditCode;

pub use keys::{Jwks, PublicJwk, SigningKey};

/// What a caller is allowed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An enterprise applying; sees only its own applications.
    Applicant,
    /// Approval staff of a department.
    Clerk,
    /// Supervises a department's clerks; receives escalations.
    Supervisor,
    /// Publishes definitions, sees everything.
    Admin,
    /// Another government system integrating over gRPC.
    Integrator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Applicant => "applicant",
            Role::Clerk => "clerk",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
            Role::Integrator => "integrator",
        }
    }

    /// Staff who work tasks.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Clerk | Role::Supervisor | Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "applicant" => Ok(Role::Applicant),
            "clerk" => Ok(Role::Clerk),
            "supervisor" => Ok(Role::Supervisor),
            "admin" => Ok(Role::Admin),
            "integrator" => Ok(Role::Integrator),
            other => Err(AuthError::UnknownRole(other.to_string())),
        }
    }
}

/// The verified caller of an RPC.
///
/// What each role's token must carry (empty strings count as missing): every role a `sub`;
/// an applicant its `credit_code`; a clerk or supervisor its `department` (a department code
/// such as `eco_env`, or a township office code such as `eco_env.songyuan`); an integrator
/// nothing more than its `sub`, which names its registration; an admin nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Stable user id (JWT `sub`).
    pub subject: String,
    pub role: Role,
    pub department: Option<String>,
    pub region: Option<String>,
    pub credit_code: Option<CreditCode>,
}

impl Identity {
    /// Label for audit trails: `clerk:alice@eco_env`.
    pub fn actor_label(&self) -> String {
        match &self.department {
            Some(d) => format!("{}:{}@{}", self.role, self.subject, d),
            None => format!("{}:{}", self.role, self.subject),
        }
    }
}

/// The `aud` claim: one string or a list (RFC 7519 §4.1.3). Tongban issues one string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Claims inside a Tongban token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_code: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: Audience,
}

/// The audience and issuer Tongban uses unless configured otherwise.
pub const DEFAULT_AUDIENCE: &str = "tongban";
/// See [`DEFAULT_AUDIENCE`].
pub const DEFAULT_ISSUER: &str = "tongban";
/// Longest a token may live (`exp - iat`) unless configured otherwise: one working day.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Clock skew tolerated between issuer and services, in seconds.
const LEEWAY_SECS: u64 = 30;

/// What a token must say besides its signature; the issuer and every service share them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRules {
    /// Required `aud`.
    pub audience: String,
    /// Required `iss`.
    pub issuer: String,
    /// Cap on `exp - iat`: longer-lived tokens are refused by the issuer and rejected by services.
    pub max_lifetime: Duration,
}

impl Default for TokenRules {
    fn default() -> Self {
        Self {
            audience: DEFAULT_AUDIENCE.into(),
            issuer: DEFAULT_ISSUER.into(),
            max_lifetime: DEFAULT_MAX_LIFETIME,
        }
    }
}

/// Authentication and authorisation failures.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token (send `authorization: Bearer <jwt>`)")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("unknown role {0:?} (applicant, clerk, supervisor, admin, integrator)")]
    UnknownRole(String),
    #[error("a {role} token must carry a non-empty `{claim}` claim")]
    MissingClaim { role: Role, claim: &'static str },
    #[error("token's credit_code is not a valid unified social credit code: {0}")]
    CreditCode(#[from] tongban_types::CreditCodeError),
    #[error("permission denied: {0}")]
    Forbidden(String),
    #[error("key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("private key: {0}")]
    Key(String),
    #[error("JWKS: {0}")]
    Jwks(String),
    #[error("refusing to sign: {0}")]
    Refused(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

impl From<AuthError> for tonic::Status {
    /// The status carries a `google.rpc.ErrorInfo` from the catalogue in
    /// `tongban.common.v1.ErrorReason` (domain `tongban.gov`), like every Tongban error.
    fn from(e: AuthError) -> Self {
        let (code, reason) = match e {
            AuthError::Missing
            | AuthError::Invalid(_)
            | AuthError::CreditCode(_)
            | AuthError::MissingClaim { .. }
            | AuthError::UnknownRole(_) => (tonic::Code::Unauthenticated, "UNAUTHENTICATED"),
            AuthError::Forbidden(_) => (tonic::Code::PermissionDenied, "PERMISSION_DENIED"),
            AuthError::KeyFile { .. }
            | AuthError::Key(_)
            | AuthError::Jwks(_)
            | AuthError::Refused(_)
            | AuthError::Sign(_) => (tonic::Code::Internal, "INTERNAL"),
        };
        with_error_info(code, e.to_string(), reason)
    }
}

/// The `ErrorInfo` domain of every Tongban error (`tongban_proto::error::DOMAIN`; this crate
/// does not depend on the protos).
const ERROR_DOMAIN: &str = "tongban.gov";

fn with_error_info(code: tonic::Code, message: String, reason: &str) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt};
    tonic::Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(
            reason,
            ERROR_DOMAIN,
            std::collections::HashMap::<String, String>::new(),
        ),
    )
}

/// `Some(trimmed)` unless absent or blank: an empty claim is a missing claim.
fn present(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Turns claims into an identity, enforcing what each role must carry (see [`Identity`]).
/// Shared by the issuer (which refuses to sign what services would reject) and the verifier.
fn identity_from_claims(
    sub: String,
    role: Role,
    department: Option<String>,
    region: Option<String>,
    credit_code: Option<String>,
) -> Result<Identity, AuthError> {
    let missing = |claim| AuthError::MissingClaim { role, claim };
    let subject = present(Some(sub)).ok_or_else(|| missing("sub"))?;
    let department = present(department);
    let credit_code = present(credit_code)
        .as_deref()
        .map(CreditCode::parse)
        .transpose()?;
    match role {
        Role::Applicant if credit_code.is_none() => return Err(missing("credit_code")),
        Role::Clerk | Role::Supervisor if department.is_none() => {
            return Err(missing("department"));
        }
        Role::Applicant | Role::Clerk | Role::Supervisor | Role::Integrator | Role::Admin => {}
    }
    Ok(Identity {
        subject,
        role,
        department,
        region: present(region),
        credit_code,
    })
}

/// What a new token should say.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub subject: String,
    pub role: Role,
    pub department: Option<String>,
    pub region: Option<String>,
    pub credit_code: Option<String>,
    pub ttl: chrono::Duration,
}

/// Signs tokens with the issuer's private key; the header's `kid` names it.
#[derive(Clone, Debug)]
pub struct Issuer {
    key: SigningKey,
    rules: TokenRules,
}

impl Issuer {
    /// An issuer with the default [`TokenRules`].
    pub fn new(key: SigningKey) -> Self {
        eddsa::install();
        Self {
            key,
            rules: TokenRules::default(),
        }
    }

    /// Signs for another audience, issuer name or lifetime cap.
    pub fn with_rules(mut self, rules: TokenRules) -> Self {
        self.rules = rules;
        self
    }

    pub fn kid(&self) -> &str {
        self.key.kid()
    }

    /// Signs `req`, refusing what a service would reject: a non-positive or over-the-cap
    /// lifetime, a missing role claim, a malformed credit code.
    pub fn issue(&self, req: &TokenRequest) -> Result<String, AuthError> {
        let ttl = req.ttl.num_seconds();
        if ttl <= 0 {
            return Err(AuthError::Refused(format!(
                "a token must live a positive time (got {ttl} s)"
            )));
        }
        let cap = self.rules.max_lifetime.as_secs();
        if u64::try_from(ttl).map_or(true, |t| t > cap) {
            return Err(AuthError::Refused(format!(
                "lifetime {ttl} s exceeds the cap of {cap} s"
            )));
        }
        let id = identity_from_claims(
            req.subject.clone(),
            req.role,
            req.department.clone(),
            req.region.clone(),
            req.credit_code.clone(),
        )?;
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: id.subject,
            role: id.role,
            department: id.department,
            region: id.region,
            credit_code: id.credit_code.map(|c| c.to_string()),
            iat: now,
            exp: now + ttl,
            iss: self.rules.issuer.clone(),
            aud: Audience::One(self.rules.audience.clone()),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.key.kid().to_string());
        jsonwebtoken::encode(&header, &claims, &self.key.encoding_key())
            .map_err(|e| AuthError::Sign(e.to_string()))
    }
}

/// Verifies bearer tokens against a JWK Set; cheap to clone (one per server).
#[derive(Clone)]
pub struct Authenticator {
    keys: Arc<RwLock<Arc<KeyMap>>>,
    /// Where the keys came from, to pick up a rotation without a restart.
    file: Option<Arc<KeyFile>>,
    validation: Arc<Validation>,
    max_lifetime: i64,
}

type KeyMap = HashMap<String, DecodingKey>;

/// How often the JWKS file is looked at for a change (a new key, a retired one).
pub const JWKS_RECHECK: Duration = Duration::from_secs(10);
/// A token with an unknown `kid` looks again sooner, but not for every request: a flood of
/// made-up ids must not turn into a flood of file reads.
const JWKS_RECHECK_UNKNOWN_KID: Duration = Duration::from_secs(1);

/// The JWKS file behind an [`Authenticator`] and when it was last looked at.
#[derive(Debug)]
struct KeyFile {
    path: PathBuf,
    /// [`JWKS_RECHECK`] unless set otherwise ([`Authenticator::with_jwks_recheck`]).
    every: Duration,
    state: Mutex<KeyFileState>,
}

#[derive(Debug)]
struct KeyFileState {
    checked: Instant,
    /// Modification time and length: a rewrite within the clock's resolution still changes
    /// the length (a key added or removed).
    modified: Option<(SystemTime, u64)>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.current();
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        write!(f, "Authenticator(EdDSA, kids {kids:?})")
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn key_map(jwks: &Jwks) -> KeyMap {
    jwks.keys()
        .iter()
        // For Ed25519 the "DER" jsonwebtoken hands the provider is the raw 32-byte public
        // key (what `from_ed_components` stores too); `eddsa` checks the length.
        .map(|k| (k.kid.clone(), DecodingKey::from_ed_der(&k.x)))
        .collect()
}

impl Authenticator {
    /// Accepts tokens signed by any key of `jwks` that satisfy `rules`.
    pub fn new(jwks: &Jwks, rules: &TokenRules) -> Self {
        eddsa::install();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&rules.issuer]);
        validation.set_audience(&[&rules.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.leeway = LEEWAY_SECS;
        Self {
            keys: Arc::new(RwLock::new(Arc::new(key_map(jwks)))),
            file: None,
            validation: Arc::new(validation),
            max_lifetime: i64::try_from(rules.max_lifetime.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// Reads the JWK Set in `path` (`jwks_file` in the service configuration), and reads it
    /// again when it changes (checked every [`JWKS_RECHECK`], sooner for an unknown `kid`): a
    /// key added by `tongban keys generate` is accepted and one removed by `tongban keys drop`
    /// refused, without a restart. A file that no longer reads keeps the keys in force.
    pub fn from_jwks_file(path: &Path, rules: &TokenRules) -> Result<Self, AuthError> {
        let modified = stamp(path);
        let mut auth = Self::new(&Jwks::load(path)?, rules);
        auth.file = Some(Arc::new(KeyFile {
            path: path.to_path_buf(),
            every: JWKS_RECHECK,
            state: Mutex::new(KeyFileState {
                checked: Instant::now(),
                modified,
            }),
        }));
        Ok(auth)
    }

    /// Looks at the JWKS file for a change every `every` instead of [`JWKS_RECHECK`] (and for
    /// an unknown `kid`, at most that often too).
    pub fn with_jwks_recheck(mut self, every: Duration) -> Self {
        if let Some(file) = &self.file {
            self.file = Some(Arc::new(KeyFile {
                path: file.path.clone(),
                every,
                state: Mutex::new(KeyFileState {
                    checked: Instant::now(),
                    modified: stamp(&file.path),
                }),
            }));
        }
        self
    }

    /// The keys in force.
    fn current(&self) -> Arc<KeyMap> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the JWKS file when it changed and `every` (at most the file's own interval) has
    /// passed since the last look.
    fn refresh(&self, every: Duration) {
        let Some(file) = &self.file else { return };
        let every = every.min(file.every);
        let Ok(mut state) = file.state.try_lock() else {
            // Another request is looking right now.
            return;
        };
        if state.checked.elapsed() < every {
            return;
        }
        state.checked = Instant::now();
        let modified = stamp(&file.path);
        if modified == state.modified {
            return;
        }
        match Jwks::load(&file.path) {
            Ok(jwks) => {
                let keys = Arc::new(key_map(&jwks));
                let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
                kids.sort_unstable();
                tracing::info!(path = %file.path.display(), ?kids, "token keys reloaded");
                let mut current = match self.keys.write() {
                    Ok(k) => k,
                    Err(poisoned) => poisoned.into_inner(),
                };
                *current = keys;
                state.modified = modified;
            }
            Err(e) => {
                tracing::error!(path = %file.path.display(), error = %e, "token keys did not reload; the previous keys stay in force");
            }
        }
    }

    /// Verifies a raw JWT and returns who it names.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let invalid = |why: String| AuthError::Invalid(why);
        // The header is read before any key is chosen; `alg: none` and unknown algorithms fail
        // to parse here, and only EdDSA gets further.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| invalid(format!("unreadable header ({e})")))?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid(format!(
                "algorithm {:?} is not accepted (EdDSA only)",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| invalid("the header has no kid".into()))?;
        self.refresh(JWKS_RECHECK);
        let mut keys = self.current();
        if !keys.contains_key(&kid) {
            self.refresh(JWKS_RECHECK_UNKNOWN_KID);
            keys = self.current();
        }
        let key = keys
            .get(&kid)
            .ok_or_else(|| invalid(format!("unknown key id {kid:?}")))?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| invalid(e.to_string()))?;
        let c = data.claims;
        if c.exp - c.iat > self.max_lifetime {
            return Err(invalid(format!(
                "lifetime {} s exceeds the cap of {} s",
                c.exp - c.iat,
                self.max_lifetime
            )));
        }
        // An `iat` in the future would let a token outlive the cap from now on.
        let now = chrono::Utc::now().timestamp();
        if c.iat > now + LEEWAY_SECS as i64 {
            return Err(invalid("issued in the future (iat)".into()));
        }
        identity_from_claims(c.sub, c.role, c.department, c.region, c.credit_code)
    }

    /// Verifies the `authorization` metadata of a request.
    pub fn verify_metadata(
        &self,
        md: &tonic::metadata::MetadataMap,
    ) -> Result<Identity, AuthError> {
        let value = md.get("authorization").ok_or(AuthError::Missing)?;
        let value = value
            .to_str()
            .map_err(|_| AuthError::Invalid("authorization is not ASCII".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| AuthError::Invalid("authorization must be `Bearer <jwt>`".into()))?;
        self.verify(token.trim())
    }
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let identity = self.verify_metadata(req.metadata())?;
        req.extensions_mut().insert(identity);
        Ok(req)
    }
}

/// The identity the interceptor attached to `req`.
pub fn identity<T>(req: &tonic::Request<T>) -> Result<Identity, tonic::Status> {
    req.extensions().get::<Identity>().cloned().ok_or_else(|| {
        with_error_info(
            tonic::Code::Unauthenticated,
            "no verified identity on this request".into(),
            "UNAUTHENTICATED",
        )
    })
}

#[cfg(test)]
mod tests;
