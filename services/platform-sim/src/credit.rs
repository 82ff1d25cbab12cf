//! A simulated credit registry (the provincial credit platform), for the credit adapter's HTTP
//! source in tests and demos:
//!
//! | method | path | purpose |
//! | --- | --- | --- |
//! | `GET` | `/credit/v1/records/{code}` | `{"credit_code","class","as_of"}`, 404 when unknown |
//! | `POST` | `/credit/v1/breaches` | records a breach (JSON); 201, or 409 for an event id seen before |
//! | `GET` | `/_breaches` | the breaches received, in order |
//! | `GET` | `/_stats` | `{"lookups": n}`: lookups answered (to observe a client's cache) |
//! | `PUT` | `/_faults` | `{"down": bool, "status": u16}`: answer 503 (down) or `status` |
//!
//! With a bearer token configured, the two `/credit/v1` routes require it (401 otherwise).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One enterprise's record as the simulated registry holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreditEntry {
    pub credit_code: String,
    pub class: String,
    pub as_of: String,
}

/// Fault knobs of the simulated registry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreditFaults {
    /// Answer 503 to every registry call.
    pub down: bool,
    /// Answer this status instead (0: none).
    pub status: u16,
}

#[derive(Default)]
struct CreditState {
    records: HashMap<String, CreditEntry>,
    token: Option<String>,
    breaches: Mutex<Vec<Value>>,
    lookups: AtomicU64,
    faults: Mutex<CreditFaults>,
}

impl CreditState {
    fn refused(&self, headers: &HeaderMap) -> Option<Response> {
        let faults = self
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if faults.down {
            return Some(StatusCode::SERVICE_UNAVAILABLE.into_response());
        }
        if faults.status != 0 {
            return Some(
                StatusCode::from_u16(faults.status)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                    .into_response(),
            );
        }
        if let Some(token) = &self.token {
            let presented = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !tongban_platform::verify_bearer(token, presented) {
                return Some(StatusCode::UNAUTHORIZED.into_response());
            }
        }
        None
    }
}

/// The registry's routes over `records`; `token` requires `Authorization: Bearer <token>`.
pub fn credit_router(records: Vec<CreditEntry>, token: Option<String>) -> Router {
    let state = Arc::new(CreditState {
        records: records
            .into_iter()
            .map(|r| (r.credit_code.to_ascii_uppercase(), r))
            .collect(),
        token,
        ..Default::default()
    });
    Router::new()
        .route("/credit/v1/records/{code}", get(lookup))
        .route("/credit/v1/breaches", post(breach))
        .route("/_breaches", get(breaches))
        .route("/_stats", get(stats))
        .route("/_faults", put(set_faults))
        .with_state(state)
}

/// Serves the registry on `listener` until the task is dropped or aborted.
pub async fn serve_credit(
    listener: tokio::net::TcpListener,
    records: Vec<CreditEntry>,
    token: Option<String>,
) -> std::io::Result<()> {
    axum::serve(listener, credit_router(records, token)).await
}

async fn lookup(
    State(s): State<Arc<CreditState>>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Response {
    if let Some(r) = s.refused(&headers) {
        return r;
    }
    s.lookups.fetch_add(1, Ordering::SeqCst);
    match s.records.get(&code.to_ascii_uppercase()) {
        Some(r) => axum::Json(r.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn breach(
    State(s): State<Arc<CreditState>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if let Some(r) = s.refused(&headers) {
        return r;
    }
    let mut all = s.breaches.lock().unwrap_or_else(PoisonError::into_inner);
    let id = body.get("event_id").cloned();
    if id.is_some() && all.iter().any(|b| b.get("event_id") == id.as_ref()) {
        return StatusCode::CONFLICT.into_response();
    }
    all.push(body);
    StatusCode::CREATED.into_response()
}

async fn breaches(State(s): State<Arc<CreditState>>) -> Response {
    let all = s
        .breaches
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    axum::Json(json!({ "breaches": all })).into_response()
}

async fn stats(State(s): State<Arc<CreditState>>) -> Response {
    axum::Json(json!({ "lookups": s.lookups.load(Ordering::SeqCst) })).into_response()
}

async fn set_faults(
    State(s): State<Arc<CreditState>>,
    axum::Json(f): axum::Json<CreditFaults>,
) -> Response {
    *s.faults.lock().unwrap_or_else(PoisonError::into_inner) = f;
    StatusCode::NO_CONTENT.into_response()
}
