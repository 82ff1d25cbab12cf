//! How Tongban proves itself to a platform, and how a platform (or its simulator) checks it.
//!
//! Two schemes exist among the default platforms:
//! * **bearer**: `Authorization: Bearer <token>`;
//! * **hmac**: `<header>: hex(HMAC-SHA256(secret, timestamp + "." + body))` plus
//!   `<timestamp_header>: <unix seconds>`. The timestamp is part of the signed text so a captured
//!   request cannot be replayed later with a fresh timestamp.
//!
//! Both sides live here so the sender ([`AuthConfig::headers`]) and the checker
//! ([`AuthConfig::verify`]) can never drift apart. Every comparison of secret material is
//! constant-time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Default signature header for the hmac scheme.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Signature";
/// Default timestamp header for the hmac scheme.
pub const DEFAULT_TIMESTAMP_HEADER: &str = "X-Timestamp";

/// A credential: a [`SecretString`] (redacted in `Debug`, zeroed on drop), comparable so that
/// configurations can be compared in tests.
#[derive(Clone, Debug)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret itself: call only where it is put on the wire or checked.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

/// A platform's authentication scheme with its resolved secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: Secret,
    },
    /// HMAC-SHA256 over `timestamp + "." + body`, hex encoded.
    Hmac {
        /// The shared key.
        secret: Secret,
        /// Header carrying the hex signature.
        header: String,
        /// Header carrying the unix-seconds timestamp.
        timestamp_header: String,
    },
}

/// Why a request's credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// A required header is absent.
    #[error("missing header `{0}`")]
    MissingHeader(String),
    /// A header is present but not in the expected form.
    #[error("malformed header `{0}`")]
    Malformed(String),
    /// The bearer token does not match.
    #[error("invalid bearer token")]
    BadToken,
    /// The HMAC signature does not match.
    #[error("invalid signature")]
    BadSignature,
    /// The signed timestamp is too far from the checker's clock.
    #[error("timestamp {timestamp} is outside the allowed clock skew of {max_skew_secs}s")]
    StaleTimestamp {
        /// The timestamp presented.
        timestamp: i64,
        /// The allowed skew.
        max_skew_secs: u64,
    },
}

impl AuthConfig {
    /// `"bearer"` or `"hmac"`, as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Bearer { .. } => "bearer",
            Self::Hmac { .. } => "hmac",
        }
    }

    /// Headers to add to a request carrying `body`: `("Authorization", "Bearer …")`, or the
    /// signature and timestamp headers. Compute them per attempt (the timestamp moves on).
    pub fn headers(&self, body: &[u8], now: DateTime<Utc>) -> Vec<(String, String)> {
        match self {
            Self::Bearer { token } => vec![(
                "Authorization".to_owned(),
                format!("Bearer {}", token.expose()),
            )],
            Self::Hmac {
                secret,
                header,
                timestamp_header,
            } => {
                let timestamp = now.timestamp().to_string();
                let signature = sign_hmac(secret.expose().as_bytes(), &timestamp, body);
                vec![
                    (header.clone(), signature),
                    (timestamp_header.clone(), timestamp),
                ]
            }
        }
    }

    /// Checks a received request the way the platform does. `header` looks a header up by name
    /// (case-insensitively, as HTTP header maps do). With `max_skew`, an hmac timestamp further
    /// than that from `now` is refused.
    pub fn verify(
        &self,
        header: impl Fn(&str) -> Option<String>,
        body: &[u8],
        now: DateTime<Utc>,
        max_skew: Option<Duration>,
    ) -> Result<(), AuthFailure> {
        match self {
            Self::Bearer { token } => {
                let value = header("Authorization")
                    .ok_or_else(|| AuthFailure::MissingHeader("Authorization".to_owned()))?;
                let presented = strip_bearer(&value)
                    .ok_or_else(|| AuthFailure::Malformed("Authorization".to_owned()))?;
                if verify_bearer(token.expose(), presented) {
                    Ok(())
                } else {
                    Err(AuthFailure::BadToken)
                }
            }
            Self::Hmac {
                secret,
                header: signature_header,
                timestamp_header,
            } => {
                let signature = header(signature_header)
                    .ok_or_else(|| AuthFailure::MissingHeader(signature_header.clone()))?;
                let timestamp = header(timestamp_header)
                    .ok_or_else(|| AuthFailure::MissingHeader(timestamp_header.clone()))?;
                let seconds: i64 = timestamp
                    .trim()
                    .parse()
                    .map_err(|_| AuthFailure::Malformed(timestamp_header.clone()))?;
                if !verify_hmac(
                    secret.expose().as_bytes(),
                    timestamp.trim(),
                    body,
                    &signature,
                ) {
                    return Err(AuthFailure::BadSignature);
                }
                if let Some(max_skew) = max_skew {
                    let skew = now.timestamp().abs_diff(seconds);
                    if skew > max_skew.as_secs() {
                        return Err(AuthFailure::StaleTimestamp {
                            timestamp: seconds,
                            max_skew_secs: max_skew.as_secs(),
                        });
                    }
                }
                Ok(())
            }
        }
    }
}

/// `Bearer <token>` → `<token>`; the scheme name is case-insensitive (RFC 7235).
fn strip_bearer(value: &str) -> Option<&str> {
    let value = value.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

fn mac(secret: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC hashes over-long keys and pads short ones: every length is valid.
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    }
}

/// `hex(HMAC-SHA256(secret, timestamp + "." + body))`, lower case.
pub fn sign_hmac(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a hex signature made by [`sign_hmac`], in constant time. Upper- or lower-case hex.
pub fn verify_hmac(secret: &[u8], timestamp: &str, body: &[u8], signature_hex: &str) -> bool {
    let Ok(signature) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let mut mac = mac(secret);
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// Compares a presented bearer token with the expected one in constant time (both are first
/// MACed under a fixed key, so neither content nor length leaks through timing).
pub fn verify_bearer(expected: &str, presented: &str) -> bool {
    const KEY: &[u8] = b"tongban-bearer-compare";
    let mut a = mac(KEY);
    a.update(expected.as_bytes());
    let mut b = mac(KEY);
    b.update(presented.as_bytes());
    // `CtOutput`'s equality is constant-time.
    a.finalize() == b.finalize()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn lookup(headers: &[(String, String)]) -> impl Fn(&str) -> Option<String> + '_ {
        |name| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn hmac_round_trip_and_tamper() {
        let auth = AuthConfig::Hmac {
            secret: Secret::new("s3cret"),
            header: DEFAULT_SIGNATURE_HEADER.to_owned(),
            timestamp_header: DEFAULT_TIMESTAMP_HEADER.to_owned(),
        };
        let now = Utc.with_ymd_and_hms(2026, 1, 15, 2, 0, 0).unwrap();
        let headers = auth.headers(b"{\"a\":1}", now);
        assert_eq!(
            headers[1],
            ("X-Timestamp".to_owned(), now.timestamp().to_string())
        );
        let skew = Some(Duration::from_secs(300));
        assert_eq!(
            auth.verify(lookup(&headers), b"{\"a\":1}", now, skew),
            Ok(())
        );
        assert_eq!(
            auth.verify(lookup(&headers), b"{\"a\":2}", now, skew),
            Err(AuthFailure::BadSignature)
        );
        let later = now + chrono::Duration::seconds(301);
        assert!(matches!(
            auth.verify(lookup(&headers), b"{\"a\":1}", later, skew),
            Err(AuthFailure::StaleTimestamp { .. })
        ));
        assert_eq!(
            auth.verify(lookup(&headers), b"{\"a\":1}", later, None),
            Ok(())
        );
        // Upper-case hex is accepted; non-hex is refused.
        assert!(verify_hmac(
            b"key",
            "1",
            b"",
            &sign_hmac(b"key", "1", b"").to_uppercase()
        ));
        assert!(!verify_hmac(b"key", "1", b"", "zz"));
    }

    /// Interop vector, computed independently with Python's `hmac` module, for platform teams
    /// implementing the check in another language.
    #[test]
    fn hmac_known_vector() {
        assert_eq!(
            sign_hmac(
                b"dev-only-eia-hmac-secret",
                "1768444200",
                br#"{"xmmc":"x"}"#
            ),
            "aeebe3f7a4e115c741cfa33881e3d0c290ec302069165bceb948bf2bb3f33ac6"
        );
    }

    #[test]
    fn bearer_checks() {
        let auth = AuthConfig::Bearer {
            token: Secret::new("tok"),
        };
        let now = Utc::now();
        let ok = auth.headers(b"", now);
        assert_eq!(auth.verify(lookup(&ok), b"", now, None), Ok(()));
        let lower = vec![("authorization".to_owned(), "bearer tok".to_owned())];
        assert_eq!(auth.verify(lookup(&lower), b"", now, None), Ok(()));
        let wrong = vec![("Authorization".to_owned(), "Bearer tok2".to_owned())];
        assert_eq!(
            auth.verify(lookup(&wrong), b"", now, None),
            Err(AuthFailure::BadToken)
        );
        assert_eq!(
            auth.verify(lookup(&[]), b"", now, None),
            Err(AuthFailure::MissingHeader("Authorization".to_owned()))
        );
        let shown = format!("{:?}", Secret::new("tok"));
        assert!(
            !shown.contains("tok") && shown.contains("REDACTED"),
            "{shown}"
        );
    }
}
