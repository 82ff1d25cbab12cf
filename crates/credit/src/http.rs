//! The production adapter: the credit registry over HTTP, configured like a platform (auth,
//! timeout, retry).
//!
//! * `GET {base}/credit/v1/records/{credit_code}` → `200 {"credit_code","class","as_of"}`, or
//!   `404` when the registry does not know the enterprise.
//! * `POST {base}/credit/v1/breaches` with a [`Breach`] as JSON → any 2xx (a `409` means the
//!   registry already holds that event and counts as done).
//!
//! Connection errors, timeouts, `429` and `5xx` are retried per the [`RetryPolicy`]; anything
//! else is an answer.
//!
//! Every attempt is an HTTP client span (`tongban_telemetry::http`) whose context the registry
//! receives as `traceparent`.

use std::time::Duration;

use chrono::Utc;
use serde::Deserialize;
use tongban_platform::{AuthConfig, RetryPolicy};
use tongban_types::CreditCode;

use crate::{Breach, CreditError, CreditRecord, CreditRegistry, parse_as_of};

/// Where and how to reach the registry.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Base URL, e.g. `https://credit.example.gov.cn`; paths are appended to it.
    pub base_url: String,
    /// Credentials, when the registry wants them.
    pub auth: Option<AuthConfig>,
    /// Per attempt.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

/// The credit registry over HTTP.
pub struct HttpRegistry {
    settings: HttpSettings,
    client: reqwest::Client,
    /// `http:<host:port>`, what a record's `source` says.
    source: String,
}

#[derive(Debug, Deserialize)]
struct WireRecord {
    credit_code: String,
    class: String,
    as_of: String,
}

enum Outcome<T> {
    Done(T),
    Retry(String),
}

impl HttpRegistry {
    pub fn new(mut settings: HttpSettings) -> Result<Self, CreditError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        settings.base_url = settings.base_url.trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&settings.base_url)
            .map_err(|e| CreditError::Config(format!("url {:?}: {e}", settings.base_url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(CreditError::Config(format!(
                "url {:?} must be http or https",
                settings.base_url
            )));
        }
        let host = url.host_str().unwrap_or_default();
        let source = match url.port() {
            Some(p) => format!("http:{host}:{p}"),
            None => format!("http:{host}"),
        };
        let client = reqwest::Client::builder()
            .user_agent("tongban-intake")
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A registry that redirects is misconfigured; never follow credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CreditError::Config(e.to_string()))?;
        Ok(Self {
            settings,
            client,
            source,
        })
    }

    async fn with_retry<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, CreditError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Outcome<T>, CreditError>>,
    {
        let mut made = 0;
        loop {
            made += 1;
            match attempt().await? {
                Outcome::Done(v) => return Ok(v),
                Outcome::Retry(why) if self.settings.retry.should_retry(made) => {
                    tracing::debug!(what, attempt = made, why, "credit registry: retrying");
                    tokio::time::sleep(self.settings.retry.backoff(made)).await;
                }
                Outcome::Retry(why) => {
                    return Err(CreditError::Unavailable(format!(
                        "{what} after {made} attempts: {why}"
                    )));
                }
            }
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        url: String,
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let mut rb = self.client.request(method, url);
        if let Some(auth) = &self.settings.auth {
            for (k, v) in auth.headers(&body, Utc::now()) {
                rb = rb.header(k, v);
            }
        }
        if !body.is_empty() {
            rb = rb.header("Content-Type", "application/json").body(body);
        }
        rb
    }
}

fn transient(status: reqwest::StatusCode) -> bool {
    status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS
}

#[async_trait::async_trait]
impl CreditRegistry for HttpRegistry {
    async fn lookup(&self, code: &CreditCode) -> Result<Option<CreditRecord>, CreditError> {
        let url = format!("{}/credit/v1/records/{}", self.settings.base_url, code);
        self.with_retry("lookup", || async {
            let resp = match tongban_telemetry::http::send(self.request(
                reqwest::Method::GET,
                url.clone(),
                Vec::new(),
            ))
            .await
            {
                Ok(r) => r,
                Err(e) => return Ok(Outcome::Retry(e.to_string())),
            };
            let status = resp.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                return Ok(Outcome::Done(None));
            }
            if transient(status) {
                return Ok(Outcome::Retry(format!("HTTP {status}")));
            }
            if !status.is_success() {
                return Err(CreditError::Unavailable(format!(
                    "lookup answered HTTP {status}"
                )));
            }
            let wire: WireRecord = match resp.json().await {
                Ok(w) => w,
                Err(e) => return Err(CreditError::Malformed(e.to_string())),
            };
            if CreditCode::parse(&wire.credit_code).ok().as_ref() != Some(code) {
                return Err(CreditError::Malformed(format!(
                    "asked for {code}, answered {:?}",
                    wire.credit_code
                )));
            }
            let class = wire
                .class
                .parse()
                .map_err(|e| CreditError::Malformed(format!("{e}")))?;
            let as_of = parse_as_of(&wire.as_of)
                .ok_or_else(|| CreditError::Malformed(format!("as_of {:?}", wire.as_of)))?;
            Ok(Outcome::Done(Some(CreditRecord {
                class,
                source: self.source.clone(),
                as_of,
            })))
        })
        .await
    }

    async fn record_breach(&self, breach: &Breach) -> Result<(), CreditError> {
        let url = format!("{}/credit/v1/breaches", self.settings.base_url);
        let body = serde_json::to_vec(breach).map_err(|e| CreditError::Malformed(e.to_string()))?;
        self.with_retry("record_breach", || async {
            let resp = match tongban_telemetry::http::send(self.request(
                reqwest::Method::POST,
                url.clone(),
                body.clone(),
            ))
            .await
            {
                Ok(r) => r,
                Err(e) => return Ok(Outcome::Retry(e.to_string())),
            };
            let status = resp.status();
            if status.is_success() || status == reqwest::StatusCode::CONFLICT {
                Ok(Outcome::Done(()))
            } else if transient(status) {
                Ok(Outcome::Retry(format!("HTTP {status}")))
            } else {
                Err(CreditError::Unavailable(format!(
                    "record_breach answered HTTP {status}"
                )))
            }
        })
        .await
    }
}
