//! The simulators over real HTTP on loopback (port 0), driven with reqwest.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tongban_platform::{PlatformConfig, load_dir_with_env};
use tongban_platform_sim::{SimError, SimHandle, SimOptions, serve};

/// A reqwest client. reqwest here is built with `rustls-no-provider`, and building a client
/// panics without a process-wide crypto provider, even for plain http.
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    client().get(url).send().await
}

fn shipped(ids: &[&str]) -> Vec<PlatformConfig> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/platforms");
    load_dir_with_env(dir, &|_| None)
        .unwrap()
        .into_iter()
        .filter(|p| ids.is_empty() || ids.contains(&p.id.as_str()))
        .collect()
}

async fn start_with(ids: &[&str], opts: SimOptions) -> SimHandle {
    let platforms = shipped(ids);
    let opts = opts.all_ports_free(&platforms);
    serve(platforms, opts, std::future::pending())
        .await
        .unwrap()
}

async fn start(ids: &[&str]) -> (SimHandle, PlatformConfig) {
    let sim = start_with(ids, SimOptions::default()).await;
    let config = sim.client_configs().remove(0);
    (sim, config)
}

/// POSTs `body` signed as `config.auth` says, at time `now`.
async fn deliver_at(
    config: &PlatformConfig,
    key: Option<&str>,
    body: &Value,
    now: chrono::DateTime<Utc>,
) -> (StatusCode, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let mut request = client()
        .post(&config.endpoint)
        .header("Content-Type", "application/json");
    for (name, value) in config.auth.headers(&bytes, now) {
        request = request.header(name, value);
    }
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.body(bytes).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn deliver(config: &PlatformConfig, key: Option<&str>, body: &Value) -> (StatusCode, Value) {
    deliver_at(config, key, body, Utc::now()).await
}

async fn received(config: &PlatformConfig) -> Value {
    get(&config.query_endpoint)
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn set_faults(config: &PlatformConfig, faults: Value) -> StatusCode {
    let url = config.query_endpoint.replace("/_received", "/_faults");
    client()
        .put(url)
        .json(&faults)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn bearer_token_checked() {
    let (sim, config) = start(&["national_investment"]).await;
    let (status, receipt) = deliver(&config, Some("k1"), &json!({"xmmc": "x"})).await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    assert_eq!(receipt["duplicate"], json!(false));
    assert!(
        receipt["receipt_no"]
            .as_str()
            .unwrap()
            .starts_with("NATIONAL_INVESTMENT-"),
        "{receipt}"
    );

    let client = client();
    for auth in [Some("Bearer wrong-token"), Some("Basic abc"), None] {
        let mut request = client
            .post(&config.endpoint)
            .header("Idempotency-Key", "k2")
            .body("{}");
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], json!("unauthorized"), "{body}");
    }
    assert_eq!(received(&config).await["count"], json!(1));
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn hmac_signature_checked() {
    let (sim, config) = start(&["eia"]).await;
    let body = json!({"xmmc": "竹胶板项目"});
    let (status, _) = deliver(&config, Some("h1"), &body).await;
    assert_eq!(status, StatusCode::CREATED);

    // Signature over a different body.
    let now = Utc::now();
    let headers = config.auth.headers(b"{\"xmmc\":\"other\"}", now);
    let mut request = client()
        .post(&config.endpoint)
        .header("Idempotency-Key", "h2")
        .body(serde_json::to_vec(&body).unwrap());
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["message"], json!("invalid signature"));

    // Wrong secret.
    let wrong = tongban_platform::AuthConfig::Hmac {
        secret: tongban_platform::Secret::new("not-the-secret"),
        header: "X-Signature".into(),
        timestamp_header: "X-Timestamp".into(),
    };
    let mut bad = config.clone();
    bad.auth = wrong;
    let (status, _) = deliver(&bad, Some("h3"), &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A valid signature an hour old is a replay.
    let (status, error) =
        deliver_at(&config, Some("h4"), &body, now - chrono::Duration::hours(1)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        error["message"].as_str().unwrap().contains("skew"),
        "{error}"
    );

    assert_eq!(received(&config).await["keys"], json!(["h1"]));
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn idempotency_key_required_and_duplicates_stored_once() {
    let (sim, config) = start(&["pollutant_permit"]).await;
    let body = json!({"eventId": "e1", "project": {"projectName": "x"}});
    let (status, error) = deliver(&config, None, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], json!("missing_idempotency_key"));
    assert_eq!(received(&config).await["count"], json!(0));

    let (status, first) = deliver(&config, Some("dup-1"), &body).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, second) = deliver(&config, Some("dup-1"), &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["duplicate"], json!(true));
    assert_eq!(second["same_body"], json!(true));
    assert_eq!(second["receipt_no"], first["receipt_no"]);
    let (_, third) = deliver(&config, Some("dup-1"), &json!({"changed": true})).await;
    assert_eq!(third["same_body"], json!(false));

    let list = received(&config).await;
    assert_eq!(
        list,
        json!({"platform": "pollutant_permit", "count": 1, "keys": ["dup-1"]})
    );
    let stored = get(config.received_url("dup-1")).await.unwrap();
    assert_eq!(stored.status(), StatusCode::OK);
    assert_eq!(
        stored.headers()["x-receipt-no"].to_str().unwrap(),
        first["receipt_no"].as_str().unwrap()
    );
    assert_eq!(stored.json::<Value>().await.unwrap(), body);
    let missing = get(config.received_url("nope")).await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn received_lists_keys_in_order_and_resets() {
    let (sim, config) = start(&["provincial_gov_services"]).await;
    for key in ["b", "a", "c"] {
        assert_eq!(
            deliver(&config, Some(key), &json!({"PROJID": key})).await.0,
            StatusCode::CREATED
        );
    }
    let list = received(&config).await;
    assert_eq!(list["count"], json!(3));
    assert_eq!(list["keys"], json!(["b", "a", "c"]));

    let reset = client()
        .delete(&config.query_endpoint)
        .send()
        .await
        .unwrap();
    assert_eq!(reset.json::<Value>().await.unwrap()["cleared"], json!(3));
    assert_eq!(received(&config).await["count"], json!(0));
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn down_and_error_rate_answer_503_without_storing() {
    let (sim, config) = start(&["eia"]).await;
    let body = json!({"xmmc": "x"});

    assert_eq!(
        set_faults(&config, json!({"down": true})).await,
        StatusCode::OK
    );
    let faults: Value = get(config.query_endpoint.replace("/_received", "/_faults"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        faults,
        json!({"latency_ms": 0, "error_rate": 0.0, "down": true, "drain_per_sec": null})
    );
    let (status, error) = deliver(&config, Some("f1"), &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error["error"], json!("down"));
    assert_eq!(received(&config).await["count"], json!(0));

    assert_eq!(
        set_faults(&config, json!({"error_rate": 1.0})).await,
        StatusCode::OK
    );
    for _ in 0..5 {
        let (status, _) = deliver(&config, Some("f1"), &body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(received(&config).await["count"], json!(0));

    assert_eq!(
        set_faults(&config, json!({"error_rate": 2.0})).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        set_faults(&config, json!({"dwon": true})).await,
        StatusCode::BAD_REQUEST
    );

    // Repaired: the same key now goes through, once.
    assert_eq!(set_faults(&config, json!({})).await, StatusCode::OK);
    assert_eq!(
        deliver(&config, Some("f1"), &body).await.0,
        StatusCode::CREATED
    );
    assert_eq!(received(&config).await["count"], json!(1));
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn latency_and_slow_drain_delay_answers() {
    let (sim, config) = start(&["national_investment"]).await;
    assert_eq!(
        set_faults(&config, json!({"latency_ms": 300})).await,
        StatusCode::OK
    );
    let started = Instant::now();
    assert_eq!(
        deliver(&config, Some("l1"), &json!({})).await.0,
        StatusCode::CREATED
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Five per second: the third of three simultaneous requests waits two slots (400 ms).
    assert_eq!(
        set_faults(&config, json!({"drain_per_sec": 5.0})).await,
        StatusCode::OK
    );
    let empty = json!({});
    let started = Instant::now();
    let (a, b, c) = tokio::join!(
        deliver(&config, Some("d1"), &empty),
        deliver(&config, Some("d2"), &empty),
        deliver(&config, Some("d3"), &empty),
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
    for (status, _) in [a, b, c] {
        assert_eq!(status, StatusCode::CREATED);
    }
    assert_eq!(received(&config).await["count"], json!(4));
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn data_dir_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || SimOptions {
        data_dir: Some(dir.path().to_path_buf()),
        ..SimOptions::default()
    };
    let sim = start_with(&["eia"], opts()).await;
    let config = sim.client_configs().remove(0);
    for key in ["p1", "p2"] {
        assert_eq!(
            deliver(&config, Some(key), &json!({"k": key})).await.0,
            StatusCode::CREATED
        );
    }
    sim.shutdown().await.unwrap();

    let sim = start_with(&["eia"], opts()).await;
    let config = sim.client_configs().remove(0);
    assert_eq!(received(&config).await["keys"], json!(["p1", "p2"]));
    let (status, receipt) = deliver(&config, Some("p2"), &json!({"k": "p2"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(receipt["duplicate"], json!(true));
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_future_stops_every_server() {
    let platforms = shipped(&[]);
    let opts = SimOptions::default().all_ports_free(&platforms);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let sim = serve(platforms, opts, async move {
        let _ = rx.await;
    })
    .await
    .unwrap();
    assert_eq!(sim.platforms().len(), 4);
    let addr = sim.addr("eia").unwrap();
    let health: Value = get(format!("http://{addr}/_health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok", "platforms": ["eia"]}));

    tx.send(()).unwrap();
    sim.wait().await.unwrap();
    assert!(get(format!("http://{addr}/_health")).await.is_err());
}

#[tokio::test]
async fn port_clash_and_unknown_ids_fail_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut opts = SimOptions::default();
    opts.ports.insert("eia".into(), port);
    let err = serve(shipped(&["eia"]), opts, std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, SimError::Bind { .. }), "{err}");
    assert!(err.to_string().contains("eia"), "{err}");

    let mut opts = SimOptions::default();
    opts.ports.insert("nope".into(), 0);
    let err = serve(shipped(&["eia"]), opts, std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, SimError::UnknownPlatform(id) if id == "nope"));
}

/// The configs a dispatcher would use: map one canonical document per platform with the
/// shipped mappings and deliver it; each simulator holds exactly its payload.
#[tokio::test]
async fn end_to_end_with_shipped_mappings() {
    let sim = start_with(&[], SimOptions::default()).await;
    let doc = json!({
        "event": { "id": "0194f3a2-9d00-7b11-8c2e-3a7d9f5e6b02", "type": "application.approved",
                   "occurred_at": "2026-01-19T17:10:02Z" },
        "application": {
            "id": "app-1", "matter_code": "env.eia.report_form", "submit_time": "2026-01-14T16:30:00Z",
            "applicant": { "credit_code": "91350100M000100Y43", "name": "松溪县绿源竹木制品有限公司",
                           "region_code": "350724", "credit_class": "A" },
            "form": { "project_name": "竹胶板项目", "construction_site": "郑墩镇", "site_region": "350724101",
                      "industry_code": "C2021", "total_investment_wan": 3200,
                      "eia_category": "report_form", "construction_nature": "new" },
            "materials": []
        },
        "approval": { "decision_number": "松环审〔2026〕12号", "decide_time": "2026-01-19T17:10:00Z",
                      "department": "eco_env" }
    });
    for config in sim.client_configs() {
        assert!(config.accepts(&doc), "{}", config.id);
        let payload = config.mapping.apply(&doc, "application.approved").unwrap();
        let key = format!("{}:{}", doc["event"]["id"].as_str().unwrap(), config.id);
        let (status, receipt) = deliver(&config, Some(&key), &payload).await;
        assert_eq!(status, StatusCode::CREATED, "{}: {receipt}", config.id);
        let stored: Value = get(config.received_url(&key))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stored, payload, "{}", config.id);
        assert_eq!(received(&config).await["count"], json!(1));
    }
    sim.shutdown().await.unwrap();
}

/// A delivery's W3C `traceparent` is kept with it and shown on the stored record, so trace tests
/// can see that the sender's span reached the platform.
#[tokio::test]
async fn traceparent_of_a_delivery_is_recorded() {
    let (_sim, config) = start(&["national_investment"]).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let bytes = serde_json::to_vec(&json!({"xmmc": "x"})).unwrap();
    let mut request = client()
        .post(&config.endpoint)
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", "traced")
        .header("traceparent", traceparent);
    for (name, value) in config.auth.headers(&bytes, Utc::now()) {
        request = request.header(name, value);
    }
    let response = request.body(bytes).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let (status, _) = deliver(&config, Some("untraced"), &json!({"xmmc": "y"})).await;
    assert_eq!(status, StatusCode::CREATED);

    let one = get(format!("{}/traced", config.query_endpoint))
        .await
        .unwrap();
    assert_eq!(
        one.headers()
            .get("x-received-traceparent")
            .and_then(|v| v.to_str().ok()),
        Some(traceparent)
    );
    let other = get(format!("{}/untraced", config.query_endpoint))
        .await
        .unwrap();
    assert!(other.headers().get("x-received-traceparent").is_none());
}
