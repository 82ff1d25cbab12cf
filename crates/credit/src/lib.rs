//! Enterprise credit classes (企业信用风险分类) from their owner, the credit registry, never from
//! the applicant.
//!
//! # Layout
//! * [`CreditRegistry`]: the adapter trait: look a credit code up, record a breach (失信).
//! * [`file`]: the `tongban dev` source: `deploy/credit/*.toml` records and an append-only
//!   JSON-lines breach ledger in the data directory.
//! * [`http`]: the production adapter, configured like a platform (auth, timeout, retry).
//! * [`cache`]: a TTL cache in front of either.
//! * [`config`]: [`CreditSettings`], the intake configuration keys, and [`CreditSettings::build`].
//!
//! A lookup that fails (registry down, malformed answer) is an error, never a guess: callers
//! treat it like an unknown code, which admits no pledge path.

pub mod cache;
pub mod config;
pub mod file;
pub mod http;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
pub use tongban_matter::CreditClass;
use tongban_types::CreditCode;

pub use cache::Cached;
pub use config::{CreditSettings, SourceKind};
pub use file::FileRegistry;
pub use http::{HttpRegistry, HttpSettings};

/// What the registry says about one enterprise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditRecord {
    /// The class the credit authority assigned.
    pub class: CreditClass,
    /// Where the class came from, for the record: `file:<name>.toml` or `http:<host>`.
    pub source: String,
    /// When the authority assessed it (the registry's date, not the time of the lookup).
    pub as_of: DateTime<Utc>,
}

/// A broken pledge (失信), reported back to the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breach {
    /// Unified social credit code of the enterprise that broke its pledge.
    pub credit_code: String,
    /// The application whose approval was revoked.
    pub application_id: String,
    /// Matter of that application.
    pub matter_code: String,
    /// Why the pledge verification failed, in the verifier's words.
    pub reason: String,
    /// When the approval was revoked.
    pub occurred_at: DateTime<Utc>,
    /// Id of the event that reported it; the registry may use it to drop duplicates.
    pub event_id: String,
}

/// Why the registry could not answer.
#[derive(Debug, thiserror::Error)]
pub enum CreditError {
    /// The registry did not answer (connection refused, timeout, 5xx after retries).
    #[error("credit registry unavailable: {0}")]
    Unavailable(String),
    /// The registry answered something that is not a credit record.
    #[error("credit registry answered malformed data: {0}")]
    Malformed(String),
    /// Reading the records or writing the ledger failed.
    #[error("credit registry I/O on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The configuration is incomplete or contradictory.
    #[error("credit registry configuration: {0}")]
    Config(String),
}

/// The credit registry, whatever stands behind it.
#[async_trait::async_trait]
pub trait CreditRegistry: Send + Sync {
    /// The record of `code`, `None` when the registry does not know the enterprise.
    async fn lookup(&self, code: &CreditCode) -> Result<Option<CreditRecord>, CreditError>;
    /// Appends a breach to the enterprise's record.
    async fn record_breach(&self, breach: &Breach) -> Result<(), CreditError>;
}

/// Parses `2026-10-01` or an RFC 3339 instant as the registry's `as_of`.
pub(crate) fn parse_as_of(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}
