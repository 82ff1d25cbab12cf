//! Webhooks: every consumed event a webhook asked for, of an application in its owner's scope
//! (see [`crate::scope`]), is POSTed to it as JSON
//! (`{event_id, type, application_id, occurred_at, payload}`) with
//! - `X-Tongban-Timestamp: <unix seconds>` (when this attempt was signed),
//! - `X-Tongban-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`,
//! - `X-Tongban-Event-Id` for de-duplication.
//!
//! The signature covers the timestamp, so a receiver that checks it with [`verify`] (which
//! refuses timestamps further than a tolerance from its clock) cannot be fed a captured
//! delivery again later: the old timestamp is stale, and a fresh one breaks the signature.
//!
//! Every attempt re-checks the URL against the [`WebhookPolicy`] (scheme, literal address) and
//! resolves names through the [`GuardedResolver`], so an address that became internal since
//! registration is never called. Redirects are not followed: a 3xx is a failed attempt.
//!
//! Deliveries are rows in `webhook_deliveries` (queued by the fan-in in the event's
//! transaction). The deliverer claims due rows; a failure (non-2xx, no answer, or a refused
//! address) schedules the next attempt with capped, jittered exponential backoff in
//! `next_attempt_ms` ([`RetryPolicy`]), so retries survive restarts and outages of hours; when
//! the failures outlast the policy's window (or its attempt cap) the row is dead
//! (`failed_ms`), logged, and waits for an admin to replay it.
//! Receivers de-duplicate on the event id: a delivery whose success was not recorded (crash)
//! is sent again.
//!
//! Each attempt runs in a `deliver webhook` span in the trace the delivery was queued in; its
//! POST is a client span there, whose context the receiver gets as `traceparent`.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use tongban_proto::events::Envelope;
use tracing::Instrument as _;

use crate::{
    error::NotificationError,
    guard::{GuardedResolver, WebhookPolicy},
    repository::{DeliveryOutcome, DeliveryRow, WebhookDeliveries},
    schedule::{AfterFailure, RetryPolicy},
    service::Shared,
};

/// Header with the Unix time (seconds) the attempt was signed at.
pub const TIMESTAMP_HEADER: &str = "x-tongban-timestamp";
/// Header with the signature over timestamp and body.
pub const SIGNATURE_HEADER: &str = "x-tongban-signature";
/// How far from its own clock a receiver should accept a timestamp (recommended).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail; the fallback key
    // keeps this total without a panic path.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature header value for `body` sent at `timestamp` (Unix seconds, as sent in
/// [`TIMESTAMP_HEADER`]).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Why a receiver refuses a delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the timestamp header is not Unix seconds")]
    BadTimestamp,
    #[error("the timestamp is outside the tolerance (stale or replayed)")]
    Stale,
    #[error("the signature does not match")]
    BadSignature,
}

/// What a receiver does with a delivery: `timestamp` and `signature` are the header values,
/// `now_unix` its own clock. Refuses a timestamp more than `tolerance` away from `now_unix`
/// (a replay), then compares the signature in constant time.
pub fn verify(
    secret: &str,
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now_unix: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if now_unix.abs_diff(ts) > tolerance.unsigned_abs() {
        return Err(VerifyError::Stale);
    }
    let given = signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(VerifyError::BadSignature)?;
    mac(secret, timestamp.trim(), body)
        .verify_slice(&given)
        .map_err(|_| VerifyError::BadSignature)
}

/// The JSON body for `event`.
pub fn body(event: &Envelope) -> serde_json::Value {
    let payload = tongban_proto::json::to_json_value("tongban.events.v1.Envelope", event)
        .ok()
        .and_then(|v| match v {
            serde_json::Value::Object(map) => map.into_iter().find(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "eventId"
                        | "type"
                        | "occurredAt"
                        | "applicationId"
                        | "traceparent"
                        | "producer"
                )
            }),
            _ => None,
        })
        .map(|(_, v)| v)
        .unwrap_or(serde_json::Value::Null);
    let occurred_at = event
        .occurred_at
        .as_ref()
        .and_then(tongban_proto::time::from_ts)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    serde_json::json!({
        "event_id": event.event_id,
        "type": event.r#type,
        "application_id": event.application_id,
        "occurred_at": occurred_at,
        "payload": payload,
    })
}

const LEASE_MS: i64 = 60 * 1000;

pub struct Deliverer {
    client: reqwest::Client,
    policy: Arc<WebhookPolicy>,
    retry: RetryPolicy,
}

impl Deliverer {
    pub fn new(retry: RetryPolicy, policy: WebhookPolicy) -> Result<Self, NotificationError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent("tongban-notification")
            // A 3xx is a failed delivery: following it would reach an unchecked address.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name itself, after our check.
            .no_proxy()
            .https_only(!policy.allow_http)
            .dns_resolver(GuardedResolver {
                policy: policy.clone(),
            })
            .build()
            .map_err(|e| NotificationError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            policy,
            retry,
        })
    }

    /// Claims and delivers due webhook calls until `shutdown`.
    pub async fn run(self, shared: Arc<Shared>, poll: Duration, shutdown: CancellationToken) {
        loop {
            match shared.db.claim_deliveries(LEASE_MS, 32).await {
                Ok(batch) if !batch.is_empty() => {
                    // One slow receiver must not hold up the others in the batch.
                    futures::stream::iter(batch)
                        .for_each_concurrent(8, |d| {
                            let span = attempt_span(&d);
                            self.deliver(&shared, d).instrument(span)
                        })
                        .await;
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "claiming webhook deliveries failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = shared.outgoing.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// One attempt: the URL checked again, then a signed POST through the guarded client.
    async fn attempt(&self, d: &DeliveryRow) -> Option<String> {
        let url = match reqwest::Url::parse(&d.url) {
            Ok(u) => u,
            Err(e) => return Some(format!("bad URL: {e}")),
        };
        if let Err(e) = self.policy.check_url(&url) {
            return Some(format!("refused: URL {e}"));
        }
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signature = sign(d.secret.expose_secret(), &timestamp, d.body.as_bytes());
        let result = tongban_telemetry::http::send(
            self.client
                .post(url)
                .header("content-type", "application/json")
                .header(TIMESTAMP_HEADER, &timestamp)
                .header(SIGNATURE_HEADER, signature)
                .header("x-tongban-event-id", &d.event_id)
                .body(d.body.clone()),
        )
        .await;
        match result {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("HTTP {}", r.status())),
            // The chain carries the resolver's refusal; show all of it.
            Err(e) => Some(error_chain(&e)),
        }
    }

    async fn deliver(&self, shared: &Shared, d: DeliveryRow) {
        let attempts = d.attempts + 1;
        let error = self.attempt(&d).await;
        let now = tongban_storage::now_ms();
        let since_ms = d.retry_since_ms.unwrap_or(now);
        let outcome = match error {
            None => {
                crate::metrics::record("webhook", "delivered", 1);
                DeliveryOutcome::Delivered
            }
            Some(error) => match self.retry.after_failure(attempts, since_ms, now) {
                AfterFailure::GiveUp => {
                    crate::metrics::record("webhook", "gave_up", 1);
                    tracing::error!(delivery_id = %d.delivery_id, url = %d.url, attempts, %error, "webhook delivery failed; giving up, it is dead until replayed");
                    DeliveryOutcome::GaveUp { error }
                }
                AfterFailure::RetryAt(at_ms) => {
                    crate::metrics::record("webhook", "retry", 1);
                    tracing::warn!(delivery_id = %d.delivery_id, url = %d.url, attempts, %error, retry_in_ms = at_ms - now, "webhook delivery failed; will retry");
                    DeliveryOutcome::Retry {
                        at_ms,
                        since_ms,
                        error,
                    }
                }
            },
        };
        if let Err(e) = shared
            .db
            .finish_delivery(&d.delivery_id, attempts, &outcome)
            .await
        {
            tracing::warn!(error = %e, "recording webhook outcome failed; it may be sent again");
        }
    }
}

/// The span of one attempt at `d`, in the trace it was queued in.
fn attempt_span(d: &DeliveryRow) -> tracing::Span {
    let span = tracing::info_span!(
        "deliver_webhook",
        otel.name = "deliver webhook",
        delivery_id = %d.delivery_id,
        event_id = %d.event_id,
        attempt = d.attempts + 1,
    );
    if let Some(tp) = &d.traceparent {
        tongban_telemetry::set_parent(&span, tp);
    }
    span
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_covers_timestamp_and_body() {
        // The reference is the plain HMAC over the exact bytes `timestamp + "." + body`.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        m.update(b"1700000000.what do ya want for nothing?");
        let expected = format!("sha256={}", hex::encode(m.finalize().into_bytes()));
        assert_eq!(
            sign("Jefe", "1700000000", b"what do ya want for nothing?"),
            expected
        );
        assert_ne!(
            sign("Jefe", "1700000001", b"what do ya want for nothing?"),
            expected
        );
    }

    #[test]
    fn verify_refuses_replays_and_forgeries() {
        let body = br#"{"event_id":"e1"}"#;
        let sig = sign("s3cret", "1700000000", body);
        let tol = DEFAULT_TOLERANCE;
        assert_eq!(
            verify("s3cret", "1700000000", body, &sig, 1_700_000_100, tol),
            Ok(())
        );
        // The same capture, replayed ten minutes later.
        assert_eq!(
            verify("s3cret", "1700000000", body, &sig, 1_700_000_600, tol),
            Err(VerifyError::Stale)
        );
        // A fresh timestamp on the old signature.
        assert_eq!(
            verify("s3cret", "1700000600", body, &sig, 1_700_000_600, tol),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify("s3cret", "1700000000", b"{}", &sig, 1_700_000_000, tol),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify("other", "1700000000", body, &sig, 1_700_000_000, tol),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify("s3cret", "soon", body, &sig, 1_700_000_000, tol),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn body_carries_the_payload() {
        let e = tongban_outbox::new_envelope(
            "test",
            "app-1",
            tongban_proto::events::envelope::Payload::ApplicationRejected(
                tongban_proto::events::ApplicationRejected {
                    reason: "no".into(),
                    ..Default::default()
                },
            ),
        );
        let b = body(&e);
        assert_eq!(b["type"], "application.rejected");
        assert_eq!(b["application_id"], "app-1");
        assert_eq!(b["payload"]["reason"], "no");
    }
}
