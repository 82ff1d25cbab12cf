//! The registry hears which trace asks: every request is a client span whose context goes out as
//! the W3C `traceparent` header.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tongban_credit::{CreditRegistry, HttpRegistry, HttpSettings};
use tongban_platform::RetryPolicy;
use tongban_types::CreditCode;
use tracing::Instrument as _;

const KNOWN: &str = "91440300708461136T";

#[tokio::test]
async fn lookups_carry_the_callers_trace() -> anyhow::Result<()> {
    let _telemetry = tongban_telemetry::init("credit-test");
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/credit/v1/records/{code}",
            axum::routing::get(
                |axum::extract::State(seen): axum::extract::State<Arc<Mutex<Vec<String>>>>,
                 headers: axum::http::HeaderMap| async move {
                    let tp = headers
                        .get("traceparent")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    seen.lock().unwrap_or_else(|e| e.into_inner()).push(tp);
                    axum::Json(serde_json::json!({
                        "credit_code": KNOWN, "class": "A", "as_of": "2026-09-15"
                    }))
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let registry = HttpRegistry::new(HttpSettings {
        base_url: url,
        auth: None,
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 1,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
            multiplier: 2.0,
            jitter: false,
        },
    })?;

    let trace_id = "3d1c7f5e2b6a4c8d9e0f1a2b3c4d5e6f";
    let caller = tracing::info_span!("caller");
    tongban_telemetry::set_parent(&caller, &format!("00-{trace_id}-a1b2c3d4e5f60718-01"));
    let caller_span = tongban_telemetry::traceparent_of(&caller).unwrap_or_default();
    let record = registry
        .lookup(&CreditCode::parse(KNOWN)?)
        .instrument(caller)
        .await?;
    assert!(record.is_some());

    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let got: Vec<&str> = seen[0].split('-').collect();
    let caller: Vec<&str> = caller_span.split('-').collect();
    assert_eq!(got.len(), 4, "{seen:?}");
    assert_eq!(got[1], trace_id, "the caller's trace");
    assert_eq!(caller.len(), 4, "{caller_span:?}");
    assert_ne!(
        got[2], caller[2],
        "the request's own client span, not the caller's"
    );
    Ok(())
}
