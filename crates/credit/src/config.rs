//! Intake's configuration keys for the credit registry (`[credit]` in `tongban.toml`, or
//! `TONGBAN_INTAKE__CREDIT__<KEY>` in the environment):
//!
//! | key | meaning | default |
//! | --- | --- | --- |
//! | `source` | `file` or `http` | `file` |
//! | `dir` | file source: directory of `*.toml` records | `<deploy_dir>/credit` |
//! | `ledger` | file source: breach ledger (JSON lines) | `data/credit-breaches.jsonl` |
//! | `url` | http source: base URL | — |
//! | `auth` | http source: `none`, `bearer` or `hmac` | `none` |
//! | `secret_env` | http source: environment variable holding the token or HMAC key | — |
//! | `timeout_ms` | http source: per attempt | `2000` |
//! | `max_attempts` | http source: attempts per call, the first included | `2` |
//! | `ttl_secs` | how long a lookup is cached; `0` disables the cache | `300` |

use std::{path::Path, path::PathBuf, sync::Arc, time::Duration};

use serde::Deserialize;
use tongban_platform::{AuthConfig, RetryPolicy, Secret};

use crate::{Cached, CreditError, CreditRegistry, FileRegistry, HttpRegistry, HttpSettings};

/// Which registry stands behind the adapter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    #[default]
    File,
    Http,
}

/// How intake reaches the credit registry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditSettings {
    #[serde(default)]
    pub source: SourceKind,
    pub dir: Option<PathBuf>,
    pub ledger: Option<PathBuf>,
    pub url: Option<String>,
    pub auth: Option<String>,
    pub secret_env: Option<String>,
    pub timeout_ms: Option<u64>,
    pub max_attempts: Option<u32>,
    pub ttl_secs: Option<u64>,
}

impl CreditSettings {
    /// The registry these settings describe, behind its cache. `deploy_dir` anchors the default
    /// file source.
    pub fn build(&self, deploy_dir: &Path) -> Result<Arc<dyn CreditRegistry>, CreditError> {
        let inner: Arc<dyn CreditRegistry> = match self.source {
            SourceKind::File => Arc::new(FileRegistry::new(
                self.dir
                    .clone()
                    .unwrap_or_else(|| deploy_dir.join("credit")),
                self.ledger
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("data/credit-breaches.jsonl")),
            )),
            SourceKind::Http => {
                let url = self
                    .url
                    .clone()
                    .ok_or_else(|| CreditError::Config("source = \"http\" needs `url`".into()))?;
                Arc::new(HttpRegistry::new(HttpSettings {
                    base_url: url,
                    auth: self.auth_config()?,
                    timeout: Duration::from_millis(
                        self.timeout_ms.unwrap_or(2000).clamp(1, 60_000),
                    ),
                    retry: RetryPolicy {
                        max_attempts: self.max_attempts.unwrap_or(2).clamp(1, 10),
                        initial_backoff: Duration::from_millis(100),
                        max_backoff: Duration::from_secs(2),
                        multiplier: 2.0,
                        jitter: true,
                    },
                })?)
            }
        };
        let ttl = Duration::from_secs(self.ttl_secs.unwrap_or(300).min(86_400));
        Ok(Arc::new(Cached::new(inner, ttl)))
    }

    fn auth_config(&self) -> Result<Option<AuthConfig>, CreditError> {
        let kind = self.auth.as_deref().unwrap_or("none");
        if kind == "none" {
            return Ok(None);
        }
        let var = self
            .secret_env
            .as_deref()
            .ok_or_else(|| CreditError::Config(format!("auth = {kind:?} needs `secret_env`")))?;
        let secret = std::env::var(var)
            .map(Secret::new)
            .map_err(|_| CreditError::Config(format!("environment variable {var} is not set")))?;
        match kind {
            "bearer" => Ok(Some(AuthConfig::Bearer { token: secret })),
            "hmac" => Ok(Some(AuthConfig::Hmac {
                secret,
                header: "X-Signature".into(),
                timestamp_header: tongban_platform::auth::DEFAULT_TIMESTAMP_HEADER.into(),
            })),
            other => Err(CreditError::Config(format!(
                "auth must be none, bearer or hmac, got {other:?}"
            ))),
        }
    }
}
