//! HTTP surface of one simulated platform, mounted under its endpoint path `P`:
//!
//! | method | path | purpose |
//! | --- | --- | --- |
//! | `POST` | `P` | deliver: auth, `Idempotency-Key`, JSON body → 201 receipt (200 `duplicate`) |
//! | `GET` | `P/_received` | `{"platform","count","keys"}` in arrival order (reconciliation) |
//! | `GET` | `P/_received/{key}` | the stored body (404 if none); headers `x-receipt-no`, `x-received-at`, and `x-received-traceparent` when the delivery carried a W3C `traceparent` |
//! | `DELETE` | `P/_received` | forget everything (tests) |
//! | `GET`/`PUT` | `P/_faults` | fault knobs: latency, error rate, down, slow drain |
//!
//! Faults apply to `POST` only: the control endpoints keep answering so a test can look and
//! repair while the "platform" is down.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use chrono_tz::Asia::Shanghai;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use tongban_platform::AuthConfig;

use crate::store::{Inserted, Store};

/// Header carrying the delivery's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
const MAX_KEY_LEN: usize = 256;

/// Run-time fault knobs of one platform (`PUT P/_faults` replaces them all; omitted fields take
/// their defaults, so `{}` clears every fault).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay added before answering a delivery.
    pub latency_ms: u64,
    /// Fraction in `[0, 1]` of deliveries answered 503 without storing.
    pub error_rate: f64,
    /// Every delivery is answered 503.
    pub down: bool,
    /// At most this many deliveries processed per second; the rest wait their turn.
    pub drain_per_sec: Option<f64>,
}

impl Faults {
    fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err("error_rate must be between 0.0 and 1.0".to_owned());
        }
        if let Some(rate) = self.drain_per_sec
            && !(rate.is_finite() && (0.001..=1_000_000.0).contains(&rate))
        {
            return Err("drain_per_sec must be between 0.001 and 1000000, or null".to_owned());
        }
        Ok(())
    }
}

/// Everything one platform's handlers share.
pub(crate) struct PlatformState {
    pub(crate) id: String,
    pub(crate) auth: AuthConfig,
    pub(crate) max_skew: Option<Duration>,
    /// Where the platform file says replies hold the receipt; the simulator puts it there too.
    pub(crate) receipt_pointer: Option<String>,
    pub(crate) store: Mutex<Store>,
    pub(crate) faults: Mutex<Faults>,
    /// Next free processing slot under slow drain.
    pub(crate) drain_next: Mutex<Instant>,
    /// Flips to `true` on shutdown: waiting requests give up instead of holding the drain.
    pub(crate) stopping: watch::Receiver<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; the simulator keeps serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PlatformState {
    /// Sleeps until `deadline`, or returns `false` early if the simulator is stopping.
    async fn wait_until(&self, deadline: Instant) -> bool {
        let mut stopping = self.stopping.clone();
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => true,
            _ = stopping.wait_for(|s| *s) => false,
        }
    }

    /// Takes the next slot of a `per_sec` drain.
    fn drain_slot(&self, per_sec: f64) -> Instant {
        let interval = Duration::try_from_secs_f64(1.0 / per_sec).unwrap_or(Duration::ZERO);
        let mut next = lock(&self.drain_next);
        let slot = (*next).max(Instant::now());
        *next = slot + interval;
        slot
    }
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({ "success": false, "error": code, "message": message.into() })),
    )
        .into_response()
}

/// Routes for one platform whose delivery path is `path` (e.g. `/api/eia/projects`).
pub(crate) fn platform_router(state: Arc<PlatformState>, path: &str) -> Router {
    let base = path.trim_end_matches('/');
    let root = if base.is_empty() { "/" } else { base };
    Router::new()
        .route(root, post(receive))
        .route(&format!("{base}/_received"), get(list).delete(reset))
        .route(&format!("{base}/_received/{{key}}"), get(one))
        .route(&format!("{base}/_faults"), get(get_faults).put(put_faults))
        .with_state(state)
}

#[tracing::instrument(skip_all, fields(platform = %st.id))]
async fn receive(
    State(st): State<Arc<PlatformState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let faults = lock(&st.faults).clone();
    if faults.down {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "down",
            "platform is down (simulated)",
        );
    }
    if faults.latency_ms > 0
        && !st
            .wait_until(Instant::now() + Duration::from_millis(faults.latency_ms))
            .await
    {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "simulator is stopping",
        );
    }
    if let Some(per_sec) = faults.drain_per_sec {
        let slot = st.drain_slot(per_sec);
        if !st.wait_until(slot).await {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "stopping",
                "simulator is stopping",
            );
        }
    }

    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Err(failure) = st.auth.verify(header, &body, Utc::now(), st.max_skew) {
        tracing::warn!(%failure, "refused credentials");
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            failure.to_string(),
        );
    }

    let key = match headers.get(IDEMPOTENCY_KEY).map(HeaderValue::to_str) {
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "missing_idempotency_key",
                format!("the {IDEMPOTENCY_KEY} header is required"),
            );
        }
        Some(Ok(k)) if !k.trim().is_empty() && k.trim().len() <= MAX_KEY_LEN => k.trim().to_owned(),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                format!("{IDEMPOTENCY_KEY} must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
            );
        }
    };
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()),
    };

    if faults.error_rate > 0.0 && rand::random::<f64>() < faults.error_rate {
        tracing::info!(%key, "injected failure");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "injected_failure",
            "temporarily unavailable (simulated)",
        );
    }

    let now = Utc::now();
    let prefix = format!(
        "{}-{}",
        st.id.to_ascii_uppercase(),
        now.with_timezone(&Shanghai).format("%Y%m%d")
    );
    let inserted =
        lock(&st.store).insert_traced(&key, payload.clone(), header("traceparent"), now, |n| {
            format!("{prefix}-{n:06}")
        });
    match inserted {
        Ok(Inserted::New(record)) => {
            tracing::info!(%key, receipt_no = %record.receipt_no, "stored");
            let mut receipt = json!({
                "success": true,
                "platform": st.id,
                "receipt_no": record.receipt_no,
                "idempotency_key": key,
                "received_at": record.received_at,
                "duplicate": false,
            });
            place_receipt(
                &mut receipt,
                st.receipt_pointer.as_deref(),
                &record.receipt_no,
            );
            (StatusCode::CREATED, axum::Json(receipt)).into_response()
        }
        Ok(Inserted::Duplicate(record)) => {
            tracing::info!(%key, "duplicate");
            let mut receipt = json!({
                "success": true,
                "platform": st.id,
                "receipt_no": record.receipt_no,
                "idempotency_key": key,
                "received_at": record.received_at,
                "duplicate": true,
                "same_body": record.body == payload,
            });
            place_receipt(
                &mut receipt,
                st.receipt_pointer.as_deref(),
                &record.receipt_no,
            );
            (StatusCode::OK, axum::Json(receipt)).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot persist");
            error(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string())
        }
    }
}

/// Writes the receipt number at the platform's declared pointer (`/data/slbh`), creating the
/// objects on the way, so that dispatch reads it where the real platform would put it.
fn place_receipt(reply: &mut Value, pointer: Option<&str>, receipt_no: &str) {
    let Some(pointer) = pointer else { return };
    let segments: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, path)) = segments.split_last() else {
        return;
    };
    let mut at = reply;
    for segment in path {
        if !at.get(segment).is_some_and(Value::is_object)
            && let Some(obj) = at.as_object_mut()
        {
            obj.insert(segment.clone(), json!({}));
        }
        match at.get_mut(segment) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(obj) = at.as_object_mut() {
        obj.insert(last.clone(), json!(receipt_no));
    }
}

async fn list(State(st): State<Arc<PlatformState>>) -> Response {
    let store = lock(&st.store);
    axum::Json(json!({
        "platform": store.platform(),
        "count": store.keys().len(),
        "keys": store.keys(),
    }))
    .into_response()
}

async fn one(State(st): State<Arc<PlatformState>>, Path(key): Path<String>) -> Response {
    let store = lock(&st.store);
    let Some(record) = store.get(&key) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("nothing received under key `{key}`"),
        );
    };
    let mut response = axum::Json(record.body.clone()).into_response();
    for (name, value) in [
        ("x-receipt-no", record.receipt_no.clone()),
        ("x-received-at", record.received_at.to_rfc3339()),
        (
            "x-received-traceparent",
            record.traceparent.clone().unwrap_or_default(),
        ),
    ] {
        if value.is_empty() {
            continue;
        }
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
    response
}

async fn reset(State(st): State<Arc<PlatformState>>) -> Response {
    match lock(&st.store).clear() {
        Ok(n) => axum::Json(json!({ "platform": st.id, "cleared": n })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()),
    }
}

async fn get_faults(State(st): State<Arc<PlatformState>>) -> Response {
    axum::Json(lock(&st.faults).clone()).into_response()
}

async fn put_faults(State(st): State<Arc<PlatformState>>, body: Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_faults", e.to_string()),
    };
    if let Err(message) = faults.validate() {
        return error(StatusCode::BAD_REQUEST, "invalid_faults", message);
    }
    tracing::info!(platform = %st.id, ?faults, "faults set");
    *lock(&st.faults) = faults.clone();
    axum::Json(faults).into_response()
}

/// `GET /_health` on every listener: the platforms it serves.
pub(crate) fn health_router(ids: Vec<String>) -> Router {
    let body = Arc::new(json!({ "status": "ok", "platforms": ids }));
    Router::new().route(
        "/_health",
        get(move || {
            let body = Arc::clone(&body);
            async move { axum::Json((*body).clone()) }
        }),
    )
}

/// Unknown paths get a JSON 404 too.
pub(crate) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such route")
}
