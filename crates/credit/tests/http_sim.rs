//! The HTTP adapter against the simulated credit registry (`tongban-platform-sim`): lookups,
//! auth, the cache in front, faults, breaches.

#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use tongban_credit::{
    Breach, Cached, CreditClass, CreditError, CreditRegistry, HttpRegistry, HttpSettings,
};
use tongban_platform::{AuthConfig, RetryPolicy, Secret};
use tongban_platform_sim::credit::{CreditEntry, serve_credit};
use tongban_types::CreditCode;

const KNOWN: &str = "91440300708461136T";
const UNKNOWN: &str = "91350724MA2Y000773";

async fn sim(token: Option<&str>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let records = vec![CreditEntry {
        credit_code: KNOWN.into(),
        class: "A".into(),
        as_of: "2026-09-15".into(),
    }];
    tokio::spawn(serve_credit(listener, records, token.map(String::from)));
    url
}

fn registry(url: &str, token: Option<&str>) -> HttpRegistry {
    HttpRegistry::new(HttpSettings {
        base_url: url.into(),
        auth: token.map(|t| AuthConfig::Bearer {
            token: Secret::new(t),
        }),
        timeout: Duration::from_millis(500),
        retry: RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
            multiplier: 2.0,
            jitter: false,
        },
    })
    .unwrap()
}

async fn get(url: &str) -> serde_json::Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn lookups_breaches_cache_and_faults() {
    let url = sim(Some("s3cret")).await;
    let http = Arc::new(registry(&url, Some("s3cret")));
    let known = CreditCode::parse(KNOWN).unwrap();
    let unknown = CreditCode::parse(UNKNOWN).unwrap();

    let r = http.lookup(&known).await.unwrap().unwrap();
    assert_eq!(r.class, CreditClass::A);
    assert!(r.source.starts_with("http:127.0.0.1:"), "{}", r.source);
    assert!(http.lookup(&unknown).await.unwrap().is_none());

    // Through the cache, the registry is asked once per code.
    let cached = Cached::new(http.clone(), Duration::from_secs(600));
    let before = get(&format!("{url}/_stats")).await["lookups"]
        .as_u64()
        .unwrap();
    for _ in 0..3 {
        assert!(cached.lookup(&known).await.unwrap().is_some());
    }
    let after = get(&format!("{url}/_stats")).await["lookups"]
        .as_u64()
        .unwrap();
    assert_eq!(after - before, 1);

    // Down: an error, never a guess; the cache does not hide a code it never saw.
    reqwest::Client::new()
        .put(format!("{url}/_faults"))
        .json(&serde_json::json!({"down": true}))
        .send()
        .await
        .unwrap();
    assert!(matches!(
        cached.lookup(&unknown).await,
        Err(CreditError::Unavailable(_))
    ));
    reqwest::Client::new()
        .put(format!("{url}/_faults"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();

    // Breaches arrive once per event id.
    let b = Breach {
        credit_code: KNOWN.into(),
        application_id: "app-1".into(),
        matter_code: "env.eia.report_form".into(),
        reason: "site differs from the pledge".into(),
        occurred_at: chrono::Utc::now(),
        event_id: "ev-1".into(),
    };
    cached.record_breach(&b).await.unwrap();
    cached.record_breach(&b).await.unwrap();
    let got = get(&format!("{url}/_breaches")).await;
    assert_eq!(got["breaches"].as_array().unwrap().len(), 1, "{got}");
}

#[tokio::test]
async fn a_wrong_token_is_not_an_answer() {
    let url = sim(Some("s3cret")).await;
    let http = registry(&url, Some("wrong"));
    let known = CreditCode::parse(KNOWN).unwrap();
    assert!(http.lookup(&known).await.is_err());
}
