//! Keys: the issuer's Ed25519 private key and the JWKS of public keys that services verify with.
//!
//! A key directory (`tongban keys generate DIR`, or `tongban dev`'s data directory) holds two
//! files:
//! - [`ISSUER_KEY_FILE`] (`issuer.key`): the signing key, PKCS#8 PEM (`BEGIN PRIVATE KEY`, what
//!   `openssl genpkey -algorithm ed25519` writes too), mode 0600. Only the issuer needs it.
//! - [`JWKS_FILE`] (`jwks.json`): an RFC 7517 key set of OKP/Ed25519 public keys (RFC 8037),
//!   newest first. Services read only this.
//!
//! A key's `kid` is its RFC 7638 JWK thumbprint, so a private key file needs no metadata: the
//! kid is computed from it. Rotation ([`generate`] on a directory that has keys) writes the
//! new key set first (new key plus every old public key), then replaces the private key, so at
//! no moment can the issuer sign with a key the key set lacks. Old public keys stay until
//! dropped ([`drop_key`]) once the tokens they signed have expired.

use std::{
    fmt,
    io::Write as _,
    path::{Path, PathBuf},
};

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use secrecy::{ExposeSecret as _, SecretSlice};
use serde::{Deserialize, Serialize};

use crate::AuthError;

/// The private key's file name in a key directory.
pub const ISSUER_KEY_FILE: &str = "issuer.key";
/// The public key set's file name in a key directory.
pub const JWKS_FILE: &str = "jwks.json";

/// DER prefix of a PKCS#8 v1 `PrivateKeyInfo` for Ed25519 (RFC 8410): version 0, algorithm
/// id-Ed25519, then the 32-byte seed as an OCTET STRING inside the privateKey OCTET STRING.
const PKCS8_V1_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// An Ed25519 private key that signs tokens. `Debug` shows only the kid; the key bytes are a
/// [`SecretSlice`], zeroed on drop.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    pkcs8: SecretSlice<u8>,
    public: [u8; 32],
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl SigningKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, AuthError> {
        use ring::rand::SecureRandom as _;
        let mut seed = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| AuthError::Key("the system random source failed".into()))?;
        let key = Self::from_seed(&seed);
        seed.fill(0);
        key
    }

    /// The key with this 32-byte seed (tests use a fixed one).
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, AuthError> {
        let mut der = PKCS8_V1_ED25519_PREFIX.to_vec();
        der.extend_from_slice(seed);
        Self::from_pkcs8_der(der)
    }

    /// A PKCS#8 (v1 or v2) DER-encoded Ed25519 private key.
    pub fn from_pkcs8_der(der: Vec<u8>) -> Result<Self, AuthError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|e| AuthError::Key(format!("not a PKCS#8 Ed25519 private key ({e})")))?;
        let public: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| AuthError::Key("Ed25519 public key is not 32 bytes".into()))?;
        Ok(Self {
            kid: thumbprint(&public),
            pkcs8: der.into(),
            public,
        })
    }

    /// A PEM `PRIVATE KEY` block holding a PKCS#8 Ed25519 key.
    pub fn from_pem(text: &str) -> Result<Self, AuthError> {
        let start = text
            .find(PEM_BEGIN)
            .ok_or_else(|| AuthError::Key(format!("no `{PEM_BEGIN}` line")))?;
        let body = &text[start + PEM_BEGIN.len()..];
        let end = body
            .find(PEM_END)
            .ok_or_else(|| AuthError::Key(format!("no `{PEM_END}` line")))?;
        let b64: String = body[..end].split_whitespace().collect();
        let der = STANDARD
            .decode(b64)
            .map_err(|e| AuthError::Key(format!("PEM body is not base64 ({e})")))?;
        Self::from_pkcs8_der(der)
    }

    /// Reads a private key file (PKCS#8 PEM).
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|e| key_file(path, e))?;
        Self::from_pem(&text).map_err(|e| AuthError::Key(format!("{}: {e}", path.display())))
    }

    /// The PEM text of the private key, to write to a file only its owner can read.
    pub fn to_pem(&self) -> String {
        let b64 = STANDARD.encode(self.pkcs8.expose_secret());
        let mut out = String::from(PEM_BEGIN);
        out.push('\n');
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str(PEM_END);
        out.push('\n');
        out
    }

    /// The key id tokens signed with this key carry in their header (the JWK thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The matching public key, for the key set.
    pub fn public_jwk(&self) -> PublicJwk {
        PublicJwk {
            kid: self.kid.clone(),
            x: self.public,
        }
    }

    pub(crate) fn encoding_key(&self) -> jsonwebtoken::EncodingKey {
        jsonwebtoken::EncodingKey::from_ed_der(self.pkcs8.expose_secret())
    }

    /// Signs any header and claims (JSON text) as a compact JWS, with no checks at all: for
    /// tests that need a token the [`crate::Issuer`] refuses to make (wrong `aud`, a missing
    /// claim, a foreign `kid`). Real tokens come from [`crate::Issuer::issue`].
    pub fn sign_unchecked(
        &self,
        header_json: &str,
        claims_json: &str,
    ) -> Result<String, AuthError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(self.pkcs8.expose_secret())
            .map_err(|e| AuthError::Sign(e.to_string()))?;
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header_json),
            URL_SAFE_NO_PAD.encode(claims_json)
        );
        let sig = pair.sign(message.as_bytes());
        Ok(format!(
            "{message}.{}",
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        ))
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key: SHA-256 over the JWK's required members in
/// lexicographic order, base64url.
fn thumbprint(public: &[u8; 32]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// One Ed25519 public key with its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicJwk {
    pub kid: String,
    /// The raw 32-byte public key (the JWK's `x`).
    pub x: [u8; 32],
}

/// A JWK as it appears in the file. Every member is optional here so that [`Jwks::parse`] can
/// say which one is wrong.
#[derive(Serialize, Deserialize)]
struct JwkText {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kty: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    /// Present only when someone put a private key in the set; refused.
    #[serde(default, skip_serializing)]
    d: Option<serde::de::IgnoredAny>,
}

#[derive(Serialize, Deserialize)]
struct JwksText {
    keys: Vec<JwkText>,
}

/// A set of public keys (RFC 7517 JWK Set) that tokens may be signed with, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<PublicJwk>,
}

impl Jwks {
    /// A set holding these keys, in this order.
    pub fn new(keys: Vec<PublicJwk>) -> Self {
        Self { keys }
    }

    /// Parses a JWK Set. Only OKP/Ed25519 signing keys with a `kid` are accepted; a private
    /// member (`d`), another key type or a duplicate `kid` makes the whole set invalid, since a
    /// service should fail at start rather than run with keys nobody meant.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let set: JwksText = serde_json::from_str(text)
            .map_err(|e| AuthError::Jwks(format!("not a JWK Set ({e})")))?;
        let mut keys: Vec<PublicJwk> = Vec::with_capacity(set.keys.len());
        for (i, k) in set.keys.into_iter().enumerate() {
            let bad = |why: String| AuthError::Jwks(format!("keys[{i}]: {why}"));
            if k.d.is_some() {
                return Err(bad(
                    "holds a private key (`d`); a JWKS for services must hold public keys only"
                        .into(),
                ));
            }
            if k.kty.as_deref() != Some("OKP") || k.crv.as_deref() != Some("Ed25519") {
                return Err(bad(format!(
                    "kty {:?} crv {:?}: only OKP/Ed25519 keys are accepted",
                    k.kty, k.crv
                )));
            }
            if let Some(alg) = k.alg.as_deref().filter(|a| *a != "EdDSA") {
                return Err(bad(format!("alg {alg:?}: only EdDSA is accepted")));
            }
            if let Some(u) = k.use_.as_deref().filter(|u| *u != "sig") {
                return Err(bad(format!("use {u:?}: must be \"sig\"")));
            }
            let kid = k
                .kid
                .filter(|kid| !kid.trim().is_empty())
                .ok_or_else(|| bad("has no kid".into()))?;
            let x = k.x.ok_or_else(|| bad("has no x".into()))?;
            let x: [u8; 32] = URL_SAFE_NO_PAD
                .decode(x.trim_end_matches('='))
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("x is not a base64url 32-byte Ed25519 key".into()))?;
            if keys.iter().any(|k| k.kid == kid) {
                return Err(bad(format!("duplicate kid {kid:?}")));
            }
            keys.push(PublicJwk { kid, x });
        }
        if keys.is_empty() {
            return Err(AuthError::Jwks("the key set is empty".into()));
        }
        Ok(Self { keys })
    }

    /// Reads and parses a JWKS file.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|e| key_file(path, e))?;
        Self::parse(&text).map_err(|e| AuthError::Jwks(format!("{}: {e}", path.display())))
    }

    /// The JWK Set as pretty JSON text.
    pub fn to_json(&self) -> String {
        let set = JwksText {
            keys: self
                .keys
                .iter()
                .map(|k| JwkText {
                    kty: Some("OKP".into()),
                    crv: Some("Ed25519".into()),
                    alg: Some("EdDSA".into()),
                    use_: Some("sig".into()),
                    kid: Some(k.kid.clone()),
                    x: Some(URL_SAFE_NO_PAD.encode(k.x)),
                    d: None,
                })
                .collect(),
        };
        // Serializing plain strings into JSON cannot fail; an empty set is the safe fallback.
        serde_json::to_string_pretty(&set).unwrap_or_else(|_| r#"{"keys":[]}"#.into()) + "\n"
    }

    pub fn keys(&self) -> &[PublicJwk] {
        &self.keys
    }

    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid == kid)
    }
}

fn key_file(path: &Path, source: std::io::Error) -> AuthError {
    AuthError::KeyFile {
        path: path.display().to_string(),
        source,
    }
}

/// What [`generate`] did.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The new signing key's kid.
    pub kid: String,
    /// The kid of the key it replaced, when this was a rotation.
    pub previous_kid: Option<String>,
    pub key_path: PathBuf,
    pub jwks_path: PathBuf,
    /// Every kid now in the key set, newest first.
    pub kids: Vec<String>,
}

/// Generates a signing key in `dir` (created if needed). On a directory that already has keys
/// this rotates: the new key becomes the signing key, the key set keeps every old public key
/// (and gains the old signing key's, if it was missing), and the old private key is gone.
pub fn generate(dir: &Path) -> Result<Generated, AuthError> {
    std::fs::create_dir_all(dir).map_err(|e| key_file(dir, e))?;
    let key_path = dir.join(ISSUER_KEY_FILE);
    let jwks_path = dir.join(JWKS_FILE);
    let previous = match key_path.exists() {
        true => Some(SigningKey::load(&key_path)?),
        false => None,
    };
    let mut keys = match jwks_path.exists() {
        true => Jwks::load(&jwks_path)?.keys,
        false => Vec::new(),
    };
    if let Some(p) = &previous
        && !keys.iter().any(|k| k.kid == p.kid)
    {
        keys.insert(0, p.public_jwk());
    }
    let key = SigningKey::generate()?;
    keys.insert(0, key.public_jwk());
    let jwks = Jwks { keys };
    // Key set first: from here on, tokens of the new key verify wherever the set is installed.
    write_atomic(&jwks_path, jwks.to_json().as_bytes(), 0o644)?;
    write_atomic(&key_path, key.to_pem().as_bytes(), 0o600)?;
    Ok(Generated {
        kid: key.kid.clone(),
        previous_kid: previous.map(|p| p.kid),
        key_path,
        jwks_path,
        kids: jwks.kids().into_iter().map(String::from).collect(),
    })
}

/// The signing key in `dir`, generating one (and its key set) the first time. Used by
/// `tongban dev` and the CLI's dev conveniences; two processes racing here end up with one key.
pub fn ensure(dir: &Path) -> Result<SigningKey, AuthError> {
    std::fs::create_dir_all(dir).map_err(|e| key_file(dir, e))?;
    let key_path = dir.join(ISSUER_KEY_FILE);
    let jwks_path = dir.join(JWKS_FILE);
    let key = match SigningKey::load(&key_path) {
        Ok(k) => k,
        Err(AuthError::KeyFile { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let fresh = SigningKey::generate()?;
            // Link a complete temporary file into place: the link fails if another process
            // got there first, and nobody ever reads a half-written key.
            let tmp = write_temp(dir, fresh.to_pem().as_bytes(), 0o600)?;
            let linked = std::fs::hard_link(&tmp, &key_path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => fresh,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    SigningKey::load(&key_path)?
                }
                Err(e) => return Err(key_file(&key_path, e)),
            }
        }
        Err(e) => return Err(e),
    };
    if jwks_path.exists() {
        let jwks = Jwks::load(&jwks_path)?;
        if !jwks.contains(&key.kid) {
            return Err(AuthError::Jwks(format!(
                "{} lacks the signing key {} of {}; run `tongban keys generate {}` to repair",
                jwks_path.display(),
                key.kid,
                key_path.display(),
                dir.display()
            )));
        }
    } else {
        write_atomic(
            &jwks_path,
            Jwks::new(vec![key.public_jwk()]).to_json().as_bytes(),
            0o644,
        )?;
    }
    Ok(key)
}

/// Removes the public key `kid` from `dir`'s key set, once no token it signed is still valid.
/// The current signing key cannot be dropped.
pub fn drop_key(dir: &Path, kid: &str) -> Result<Jwks, AuthError> {
    let jwks_path = dir.join(JWKS_FILE);
    let key_path = dir.join(ISSUER_KEY_FILE);
    let mut jwks = Jwks::load(&jwks_path)?;
    if key_path.exists() && SigningKey::load(&key_path)?.kid == kid {
        return Err(AuthError::Jwks(format!(
            "{kid} is the current signing key; rotate first (`tongban keys generate`)"
        )));
    }
    let before = jwks.keys.len();
    jwks.keys.retain(|k| k.kid != kid);
    if jwks.keys.len() == before {
        return Err(AuthError::Jwks(format!(
            "{} has no key {kid:?} (it has {})",
            jwks_path.display(),
            jwks.kids().join(", ")
        )));
    }
    if jwks.keys.is_empty() {
        return Err(AuthError::Jwks(
            "refusing to leave the key set empty".into(),
        ));
    }
    write_atomic(&jwks_path, jwks.to_json().as_bytes(), 0o644)?;
    Ok(jwks)
}

/// Writes `bytes` to a new temporary file in `dir` with `mode`, synced.
fn write_temp(dir: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf, AuthError> {
    let tmp = dir.join(format!(
        ".tongban-key.{}.{}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let write = || -> std::io::Result<()> {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        key_file(&tmp, e)
    })?;
    Ok(tmp)
}

/// Replaces `path` with `bytes` at once (temporary file, then rename), so readers see the old
/// file or the new one, never a mix.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AuthError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = write_temp(dir, bytes, mode)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        key_file(path, e)
    })
}
