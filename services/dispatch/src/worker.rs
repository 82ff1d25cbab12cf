//! The delivery pipeline: one worker per platform (a bulkhead).
//!
//! Each worker owns a semaphore of `concurrency` permits and its platform's circuit breaker.
//! It leases due ledger rows (short transaction, lease = timeout + margin), then sends each in
//! its own task holding a permit; no database transaction or connection is held across HTTP.
//! The outcome is written back under the lease token together with its `delivery.*` event
//! (outbox), so a row is never marked twice and the event exists iff the state changed.
//!
//! Failure classes: 2xx (the simulator's duplicate 200 included) succeeds; 408, 429, 5xx,
//! timeouts and connection errors are retried with the platform's backoff and count toward
//! the circuit; any other 4xx is a request the platform will never accept (bad payload or
//! credentials), so it is dead-lettered at once, where staff can fix the cause and replay.
//!
//! Every attempt runs in a `deliver {platform}` span in the trace the row was created in, and its
//! HTTP request is a client span there whose context the platform receives as `traceparent`.
//!
//! A platform that is down only fills its own queue: its worker waits on its own circuit and
//! semaphore; the others keep going.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use sea_orm::DatabaseConnection;
use tokio::{
    sync::{Notify, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tongban_outbox::{RelayHandle, new_envelope, outbox};
use tongban_platform::{DeliveryMode, PlatformConfig};
use tongban_proto::events::{DeliveryDeadLettered, DeliverySucceeded, envelope::Payload};
use tongban_storage::begin_write;
use tracing::Instrument as _;

use crate::{
    circuit::{Admit, Breaker},
    ledger::{Delivery, DeliveryLedger, Outcome},
};

const PRODUCER: &str = "dispatch";

/// A configured platform with its run-time state.
#[derive(Debug)]
pub struct PlatformRuntime {
    pub config: PlatformConfig,
    /// Woken after new rows for this platform commit (or are reset by staff).
    pub wake: Notify,
    pub breaker: Mutex<Breaker>,
}

impl PlatformRuntime {
    pub fn new(config: PlatformConfig) -> Self {
        Self {
            breaker: Mutex::new(Breaker::new(config.circuit.clone())),
            config,
            wake: Notify::new(),
        }
    }

    fn with_breaker<T>(&self, f: impl FnOnce(&mut Breaker) -> T) -> T {
        let mut guard = match self.breaker.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    pub fn circuit_state(&self) -> tongban_proto::dispatch::CircuitState {
        self.with_breaker(|b| b.reported(std::time::Instant::now()))
    }
}

/// What every delivery task needs.
#[derive(Debug, Clone)]
pub struct Deliverer {
    pub db: DatabaseConnection,
    pub relay: RelayHandle,
    pub http: reqwest::Client,
    /// How often a worker looks for due retries when nobody wakes it.
    pub poll: Duration,
}

/// How much longer than the request timeout a lease lasts (time to record the outcome).
const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// Runs `platform`'s bulkhead until `shutdown`; in-flight requests are abandoned on shutdown
/// and their leases released, so a restart sends them again under the same idempotency key.
pub async fn run(platform: Arc<PlatformRuntime>, d: Deliverer, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(platform.config.concurrency.max(1)));
    // Each finished attempt hands back when it is due again, if it is to be retried: the
    // worker sleeps until the earliest of those instead of polling for them.
    let mut inflight: JoinSet<Option<i64>> = JoinSet::new();
    let mut next_due: Option<i64> = None;
    let lease_token = uuid::Uuid::now_v7().to_string();
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        while let Some(done) = inflight.try_join_next() {
            next_due = earliest(next_due, done.ok().flatten());
        }
        // Due now or past: the claim below looks for it (and finds it, or it waits behind an
        // earlier row whose own outcome wakes us).
        if next_due.is_some_and(|t| t <= tongban_storage::now_ms()) {
            next_due = None;
        }
        crate::metrics::circuit(&platform.config.id, platform.circuit_state());
        let admit = platform.with_breaker(|b| b.admit(std::time::Instant::now()));
        let wait = match admit {
            Admit::Wait(w) => w.min(d.poll),
            Admit::Any | Admit::Probe => {
                let free = permits.available_permits();
                let want = if admit == Admit::Probe {
                    free.min(1)
                } else {
                    free
                };
                let claimed = if want == 0 {
                    Ok(Vec::new())
                } else {
                    let lease_until = tongban_storage::now_ms()
                        + i64::try_from((platform.config.timeout + LEASE_MARGIN).as_millis())
                            .unwrap_or(i64::MAX / 2);
                    d.db.claim_due(&platform.config.id, want, lease_until, &lease_token)
                        .await
                };
                match claimed {
                    Ok(rows) if !rows.is_empty() => {
                        for row in rows {
                            let Ok(permit) = permits.clone().try_acquire_owned() else {
                                // Cannot happen (we claimed at most the free permits); give the
                                // row back rather than exceed the bulkhead.
                                let _ = d.db.release_lease(&row.delivery_id, &lease_token).await;
                                continue;
                            };
                            let (p, dd, stop, token) = (
                                platform.clone(),
                                d.clone(),
                                shutdown.clone(),
                                lease_token.clone(),
                            );
                            let span = attempt_span(&row);
                            inflight.spawn(
                                async move {
                                    let due = deliver(&p, &dd, row, &token, stop).await;
                                    drop(permit);
                                    due
                                }
                                .instrument(span),
                            );
                        }
                        continue;
                    }
                    Ok(_) => {
                        if admit == Admit::Probe {
                            platform.with_breaker(Breaker::probe_unused);
                        }
                        until(next_due, d.poll)
                    }
                    Err(e) => {
                        if admit == Admit::Probe {
                            platform.with_breaker(Breaker::probe_unused);
                        }
                        tracing::warn!(platform = %platform.config.id, error = %e, "claiming deliveries failed");
                        d.poll
                    }
                }
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = platform.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                next_due = earliest(next_due, done.ok().flatten());
            }
        }
    }
    while inflight.join_next().await.is_some() {}
}

fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// How long to sleep with nothing to claim: until the next retry this worker scheduled, and
/// never longer than `poll` (rows other replicas scheduled, leases that ran out).
fn until(next_due: Option<i64>, poll: Duration) -> Duration {
    next_due.map_or(poll, |t| {
        let ms = u64::try_from(t.saturating_sub(tongban_storage::now_ms())).unwrap_or(0);
        Duration::from_millis(ms).min(poll)
    })
}

/// The span of one attempt at `row`, in the trace the row was created in.
fn attempt_span(row: &Delivery) -> tracing::Span {
    let span = tracing::info_span!(
        "deliver",
        otel.name = %format!("deliver {}", row.platform_id),
        platform = %row.platform_id,
        delivery_id = %row.delivery_id,
        tongban.application_id = %row.application_id,
        attempt = row.attempts.saturating_add(1),
    );
    if let Some(tp) = &row.traceparent {
        tongban_telemetry::set_parent(&span, tp);
    }
    span
}

/// What one HTTP attempt came to.
enum Attempt {
    /// 2xx, with the platform's reference where its reply holds one.
    Ok(Option<String>),
    Retryable(String),
    Fatal(String),
}

/// The body to send for `row`: its document mapped with the platform's current mapping (rows
/// older than the document column carry their body). A mapping error names the platform file,
/// the field and the offending value.
fn body_for(platform: &PlatformConfig, row: &Delivery) -> Result<String, String> {
    let Some(document) = &row.document else {
        return Ok(row.payload.clone());
    };
    let doc: serde_json::Value = serde_json::from_str(document)
        .map_err(|e| format!("stored canonical document is not JSON: {e}"))?;
    platform
        .mapping
        .apply(&doc, &row.event_type)
        .map(|body| body.to_string())
        .map_err(|e| format!("mapping ({}): {e}", platform.file_name()))
}

async fn send(
    platform: &PlatformConfig,
    http: &reqwest::Client,
    row: &Delivery,
    body: &str,
) -> Attempt {
    let body = body.as_bytes().to_vec();
    let mut req = http
        .post(&platform.endpoint)
        .timeout(platform.timeout)
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", &row.idempotency_key);
    for (name, value) in platform.auth.headers(&body, chrono::Utc::now()) {
        req = req.header(name, value);
    }
    match tongban_telemetry::http::send(req.body(body)).await {
        Ok(resp) => {
            let status = resp.status();
            if status.is_success() {
                // The reply is read only for the receipt: a platform that confirmed with a body
                // we cannot read still confirmed.
                let reply = resp.bytes().await.unwrap_or_default();
                let receipt = platform.receipt_in(&reply);
                if receipt.is_none() && platform.receipt.is_some() {
                    tracing::warn!(platform = %platform.id, "the reply holds no receipt where the platform file says");
                }
                return Attempt::Ok(receipt);
            }
            let text = resp.text().await.unwrap_or_default();
            let snippet: String = text.chars().take(300).collect();
            let msg = format!("HTTP {}: {snippet}", status.as_u16());
            let code = status.as_u16();
            if status.is_client_error() && code != 408 && code != 429 {
                Attempt::Fatal(msg)
            } else {
                Attempt::Retryable(msg)
            }
        }
        Err(e) if e.is_timeout() => {
            Attempt::Retryable(format!("timed out after {:?}", platform.timeout))
        }
        Err(e) => Attempt::Retryable(format!("request failed: {e}")),
    }
}

/// One attempt at `row`; returns when the row is due again if it is to be retried.
async fn deliver(
    platform: &PlatformRuntime,
    d: &Deliverer,
    row: Delivery,
    lease_token: &str,
    shutdown: CancellationToken,
) -> Option<i64> {
    let config = &platform.config;
    let attempts = row.attempts.saturating_add(1);
    let body = match body_for(config, &row) {
        Ok(body) => body,
        Err(error) => {
            // Retrying would map the same document the same way; staff fix the mapping (or
            // the code table) and replay.
            let outcome = Outcome::DeadLettered { error };
            crate::metrics::attempted(&config.id, &outcome);
            if let Err(e) = record(platform, d, &row, lease_token, attempts, None, outcome).await {
                tracing::warn!(delivery_id = %row.delivery_id, error = %e, "recording a mapping failure failed");
            }
            return None;
        }
    };
    let attempt = tokio::select! {
        _ = shutdown.cancelled() => {
            if let Err(e) = d.db.release_lease(&row.delivery_id, lease_token).await {
                tracing::warn!(delivery_id = %row.delivery_id, error = %e, "releasing lease on shutdown failed; it expires on its own");
            }
            return None;
        }
        a = send(config, &d.http, &row, &body) => a,
    };
    let outcome = match attempt {
        Attempt::Ok(receipt) => {
            platform.with_breaker(Breaker::on_success);
            Outcome::Succeeded { receipt }
        }
        Attempt::Fatal(error) => {
            // The platform answered; it is up, it just refuses this request.
            platform.with_breaker(Breaker::on_success);
            Outcome::DeadLettered {
                error: format!("not retryable: {error}"),
            }
        }
        Attempt::Retryable(error) => {
            platform.with_breaker(|b| b.on_failure(std::time::Instant::now()));
            if config.retry.should_retry(attempts) {
                let delay = config.retry.backoff(attempts);
                Outcome::Retry {
                    error,
                    next_attempt_at: tongban_storage::now_ms()
                        + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2),
                }
            } else {
                Outcome::DeadLettered { error }
            }
        }
    };
    crate::metrics::attempted(&config.id, &outcome);
    let due = match &outcome {
        Outcome::Retry {
            next_attempt_at, ..
        } => Some(*next_attempt_at),
        _ => None,
    };
    if let Err(e) = record(
        platform,
        d,
        &row,
        lease_token,
        attempts,
        Some(&body),
        outcome,
    )
    .await
    {
        // The lease runs out and the row is tried again; the key keeps it single.
        tracing::warn!(delivery_id = %row.delivery_id, error = %e, "recording a delivery outcome failed");
        return None;
    }
    due
}

async fn record(
    platform: &PlatformRuntime,
    d: &Deliverer,
    row: &Delivery,
    lease_token: &str,
    attempts: u32,
    sent: Option<&str>,
    mut outcome: Outcome,
) -> Result<(), sea_orm::DbErr> {
    let txn = begin_write(&d.db).await?;
    // A platform of snapshots does not need an old state that failed once a newer one waits.
    if platform.config.delivery == DeliveryMode::LatestState
        && !matches!(outcome, Outcome::Succeeded { .. })
        && txn.newer_exists(row).await?
    {
        outcome = Outcome::Superseded {
            by: "a newer state of the application".into(),
        };
    }
    if !txn
        .finish_attempt(&row.delivery_id, lease_token, attempts, sent, &outcome)
        .await?
    {
        txn.rollback().await?;
        tracing::info!(delivery_id = %row.delivery_id, "lease lost; outcome not recorded");
        return Ok(());
    }
    let event = match &outcome {
        Outcome::Succeeded { receipt } => {
            tracing::info!(platform = %row.platform_id, delivery_id = %row.delivery_id, attempts, receipt = receipt.as_deref().unwrap_or(""), "delivered");
            Some(Payload::DeliverySucceeded(DeliverySucceeded {
                platform_id: row.platform_id.clone(),
                delivery_id: row.delivery_id.clone(),
                source_event_id: row.event_id.clone(),
                source_event_type: row.event_type.clone(),
                receipt: receipt.clone().unwrap_or_default(),
            }))
        }
        Outcome::DeadLettered { error } => {
            tracing::warn!(platform = %row.platform_id, delivery_id = %row.delivery_id, attempts, %error, "dead-lettered");
            Some(dead_lettered(row, error, attempts))
        }
        Outcome::Retry { error, .. } => {
            tracing::info!(platform = %row.platform_id, delivery_id = %row.delivery_id, attempts, %error, "delivery failed; will retry");
            None
        }
        Outcome::Superseded { .. } => {
            tracing::info!(platform = %row.platform_id, delivery_id = %row.delivery_id, "superseded by a newer state");
            None
        }
    };
    if let Some(p) = event {
        outbox::enqueue(&txn, &[new_envelope(PRODUCER, &row.application_id, p)]).await?;
    }
    txn.commit().await?;
    d.relay.wake();
    Ok(())
}

/// The `delivery.dead_lettered` payload for a row.
pub fn dead_lettered(row: &Delivery, error: &str, attempts: u32) -> Payload {
    Payload::DeliveryDeadLettered(DeliveryDeadLettered {
        platform_id: row.platform_id.clone(),
        delivery_id: row.delivery_id.clone(),
        source_event_id: row.event_id.clone(),
        source_event_type: row.event_type.clone(),
        last_error: error.to_string(),
        attempts,
    })
}
