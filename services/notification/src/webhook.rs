//! Webhooks: every consumed event a webhook asked for is POSTed to it as JSON
//! (`{event_id, type, application_id, occurred_at, payload}`) with
//! `X-Tongban-Signature: sha256=<hex HMAC-SHA256(secret, body)>` and `X-Tongban-Event-Id`.
//!
//! Deliveries are rows in `webhook_deliveries` (queued by the fan-in in the event's
//! transaction). The deliverer claims due rows; a failure (non-2xx or no answer) schedules the
//! next attempt with exponential backoff in `next_attempt_ms`, so retries survive restarts;
//! after `max_attempts` the row is marked failed and logged. Receivers de-duplicate on the event
//! id: a delivery whose success was not recorded (crash) is sent again.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use tongban_proto::events::Envelope;
use tongban_types::Backoff;

use crate::{
    error::NotificationError,
    repository::{DeliveryOutcome, DeliveryRow, WebhookDeliveries},
    service::Shared,
};

/// The signature header value for `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so the error branch is never taken.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
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

/// Retry policy for webhook deliveries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(3600),
            max_attempts: 12,
        }
    }
}

const LEASE_MS: i64 = 60 * 1000;

pub struct Deliverer {
    client: reqwest::Client,
    policy: RetryPolicy,
}

impl Deliverer {
    pub fn new(policy: RetryPolicy) -> Result<Self, NotificationError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent("tongban-notification")
            .build()
            .map_err(|e| NotificationError::Config(format!("HTTP client: {e}")))?;
        Ok(Self { client, policy })
    }

    /// Claims and delivers due webhook calls until `shutdown`.
    pub async fn run(self, shared: Arc<Shared>, poll: Duration, shutdown: CancellationToken) {
        loop {
            match shared.db.claim_deliveries(LEASE_MS, 32).await {
                Ok(batch) if !batch.is_empty() => {
                    // One slow receiver must not hold up the others in the batch.
                    futures::stream::iter(batch)
                        .for_each_concurrent(8, |d| self.deliver(&shared, d))
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

    async fn deliver(&self, shared: &Shared, d: DeliveryRow) {
        let attempts = d.attempts + 1;
        let result = self
            .client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("x-tongban-signature", sign(&d.secret, d.body.as_bytes()))
            .header("x-tongban-event-id", &d.event_id)
            .body(d.body.clone())
            .send()
            .await;
        let error = match result {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("HTTP {}", r.status())),
            Err(e) => Some(e.to_string()),
        };
        let outcome = match error {
            None => DeliveryOutcome::Delivered,
            Some(error) if attempts >= i64::from(self.policy.max_attempts) => {
                tracing::error!(delivery_id = %d.delivery_id, url = %d.url, attempts, %error, "webhook delivery failed; giving up");
                DeliveryOutcome::GaveUp { error }
            }
            Some(error) => {
                let delay = Backoff::doubling(self.policy.base, self.policy.cap)
                    .delay(u32::try_from(attempts).unwrap_or(u32::MAX));
                tracing::warn!(delivery_id = %d.delivery_id, url = %d.url, attempts, %error, retry_in = ?delay, "webhook delivery failed; will retry");
                DeliveryOutcome::Retry {
                    at_ms: tongban_storage::now_ms()
                        + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2),
                    error,
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        let sig = sign("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
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
