//! Who is calling, and may they?
//!
//! Every Tongban RPC runs as an [`Identity`]: a subject with a [`Role`], and where relevant a
//! department, a region and (for applicants) a unified social credit code. The identity comes from
//! a bearer JWT that [`Authenticator`] verifies in one tonic interceptor, which puts it into the
//! request extensions; handlers read it with [`identity`].
//!
//! Keys: HS256 with a shared secret for now. `tongban dev` generates the secret once and keeps it
//! under `./data/jwt.secret`; `tongban token issue` signs tokens with it. The verifying side only
//! sees [`Authenticator`], so moving to asymmetric keys changes this crate, not the services.

mod hs256;

use std::{fmt, path::Path, str::FromStr, sync::Arc};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret as _, SecretSlice};
use serde::{Deserialize, Serialize};
use tongban_types::CreditCode;

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
    /// Fails with `PermissionDenied` unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), AuthError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "role {} may not do this (needs one of: {})",
                self.role,
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    /// Label for audit trails: `clerk:alice@eco_env`.
    pub fn actor_label(&self) -> String {
        match &self.department {
            Some(d) => format!("{}:{}@{}", self.role, self.subject, d),
            None => format!("{}:{}", self.role, self.subject),
        }
    }
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
}

const ISSUER: &str = "tongban";

/// Authentication and authorisation failures.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token (send `authorization: Bearer <jwt>`)")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("unknown role {0:?} (applicant, clerk, supervisor, admin, integrator)")]
    UnknownRole(String),
    #[error("token's credit_code is not a valid unified social credit code: {0}")]
    CreditCode(#[from] tongban_types::CreditCodeError),
    #[error("permission denied: {0}")]
    Forbidden(String),
    #[error("key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {0} is too short (need at least 32 bytes of secret)")]
    WeakKey(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

impl From<AuthError> for tonic::Status {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing | AuthError::Invalid(_) | AuthError::CreditCode(_) => {
                tonic::Status::unauthenticated(e.to_string())
            }
            AuthError::Forbidden(_) => tonic::Status::permission_denied(e.to_string()),
            AuthError::UnknownRole(_) => tonic::Status::unauthenticated(e.to_string()),
            AuthError::KeyFile { .. } | AuthError::WeakKey(_) | AuthError::Sign(_) => {
                tonic::Status::internal(e.to_string())
            }
        }
    }
}

/// A shared HS256 secret: a [`SecretSlice`], so `Debug` redacts it and it is zeroed on drop.
#[derive(Clone, Debug)]
pub struct Secret(SecretSlice<u8>);

impl Secret {
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, AuthError> {
        if bytes.len() < 32 {
            return Err(AuthError::WeakKey("<inline>".into()));
        }
        Ok(Self(bytes.into()))
    }

    /// Reads the secret (hex) from `path`, creating it with 32 random bytes when it does not
    /// exist yet.
    pub fn load_or_create(path: &Path) -> Result<Self, AuthError> {
        let key_err = |source| AuthError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).map_err(|e| {
                    key_err(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
                })?;
                if bytes.len() < 32 {
                    return Err(AuthError::WeakKey(path.display().to_string()));
                }
                Ok(Self(bytes.into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(key_err)?;
                }
                let bytes: [u8; 32] = rand::random();
                write_private(path, &hex::encode(bytes)).map_err(key_err)?;
                Ok(Self(bytes.to_vec().into()))
            }
            Err(e) => Err(key_err(e)),
        }
    }

    /// Reads an existing secret; does not create one.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::KeyFile {
            path: path.display().to_string(),
            source,
        })?;
        let bytes = hex::decode(text.trim()).map_err(|e| AuthError::KeyFile {
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        if bytes.len() < 32 {
            return Err(AuthError::WeakKey(path.display().to_string()));
        }
        Ok(Self(bytes.into()))
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
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

/// Signs tokens.
#[derive(Clone, Debug)]
pub struct Issuer {
    secret: Secret,
}

impl Issuer {
    pub fn new(secret: Secret) -> Self {
        hs256::install();
        Self { secret }
    }

    pub fn issue(&self, req: &TokenRequest) -> Result<String, AuthError> {
        let credit_code = match &req.credit_code {
            Some(c) => Some(CreditCode::parse(c)?.to_string()),
            None => None,
        };
        if req.role == Role::Applicant && credit_code.is_none() {
            return Err(AuthError::Invalid(
                "an applicant token needs --credit-code".into(),
            ));
        }
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: req.subject.clone(),
            role: req.role,
            department: req.department.clone(),
            region: req.region.clone(),
            credit_code,
            iat: now,
            exp: now + req.ttl.num_seconds(),
            iss: ISSUER.into(),
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.secret.0.expose_secret()),
        )
        .map_err(|e| AuthError::Sign(e.to_string()))
    }
}

/// Verifies bearer tokens; cheap to clone (one per server).
#[derive(Clone)]
pub struct Authenticator {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authenticator(HS256)")
    }
}

impl Authenticator {
    pub fn new(secret: &Secret) -> Self {
        hs256::install();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 30;
        Self {
            key: Arc::new(DecodingKey::from_secret(secret.0.expose_secret())),
            validation: Arc::new(validation),
        }
    }

    /// Verifies a raw JWT and returns who it names.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let c = data.claims;
        let credit_code = c
            .credit_code
            .as_deref()
            .map(CreditCode::parse)
            .transpose()?;
        Ok(Identity {
            subject: c.sub,
            role: c.role,
            department: c.department.filter(|d| !d.is_empty()),
            region: c.region.filter(|r| !r.is_empty()),
            credit_code,
        })
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
    req.extensions()
        .get::<Identity>()
        .cloned()
        .ok_or_else(|| tonic::Status::unauthenticated("no verified identity on this request"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::from_bytes(vec![7u8; 32]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn req(role: Role) -> TokenRequest {
        TokenRequest {
            subject: "alice".into(),
            role,
            department: Some("eco_env".into()),
            region: Some("350724".into()),
            credit_code: None,
            ttl: chrono::Duration::hours(1),
        }
    }

    #[test]
    fn issued_token_verifies_and_carries_identity() {
        let s = secret();
        let token = Issuer::new(s.clone())
            .issue(&req(Role::Clerk))
            .unwrap_or_else(|e| panic!("{e}"));
        let id = Authenticator::new(&s)
            .verify(&token)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.role, Role::Clerk);
        assert_eq!(id.department.as_deref(), Some("eco_env"));
        assert_eq!(id.actor_label(), "clerk:alice@eco_env");
    }

    #[test]
    fn token_from_another_secret_or_expired_is_rejected() {
        let token = Issuer::new(secret())
            .issue(&req(Role::Clerk))
            .unwrap_or_else(|e| panic!("{e}"));
        let other = Secret::from_bytes(vec![8u8; 32]).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            Authenticator::new(&other).verify(&token),
            Err(AuthError::Invalid(_))
        ));
        let mut expired = req(Role::Clerk);
        expired.ttl = chrono::Duration::hours(-1);
        let token = Issuer::new(secret())
            .issue(&expired)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(Authenticator::new(&secret()).verify(&token).is_err());
    }

    #[test]
    fn applicant_needs_valid_credit_code() {
        let issuer = Issuer::new(secret());
        assert!(issuer.issue(&req(Role::Applicant)).is_err());
        let mut r = req(Role::Applicant);
        r.credit_code = Some("91350100M000100Y44".into());
        assert!(matches!(issuer.issue(&r), Err(AuthError::CreditCode(_))));
        r.credit_code = Some("91350100m000100y43".into());
        let token = issuer.issue(&r).unwrap_or_else(|e| panic!("{e}"));
        let id = Authenticator::new(&secret())
            .verify(&token)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            id.credit_code.map(|c| c.to_string()).as_deref(),
            Some("91350100M000100Y43")
        );
    }

    #[test]
    fn secret_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("sub/jwt.secret");
        let a = Secret::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        let b = Secret::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.0.expose_secret(), b.0.expose_secret());
        let shown = format!("{a:?}");
        assert!(shown.contains("REDACTED"), "{shown}");
        let hex = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!shown.contains(hex.trim()), "{shown}");
    }

    #[test]
    fn interceptor_rejects_missing_and_malformed_headers() {
        use tonic::service::Interceptor;
        let mut auth = Authenticator::new(&secret());
        let err = auth.call(tonic::Request::new(())).err().map(|s| s.code());
        assert_eq!(err, Some(tonic::Code::Unauthenticated));
        let mut r = tonic::Request::new(());
        r.metadata_mut().insert(
            "authorization",
            tonic::metadata::MetadataValue::from_static("Basic abc"),
        );
        assert_eq!(
            auth.call(r).err().map(|s| s.code()),
            Some(tonic::Code::Unauthenticated)
        );
    }
}
