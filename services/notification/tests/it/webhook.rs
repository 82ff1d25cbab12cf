//! Webhooks: registration rules, signed calls, and retries that send the same bytes.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use hmac::{Hmac, Mac};
use sea_orm::ConnectionTrait as _;
use sha2::Sha256;
use tongban_auth::Role;
use tongban_proto::{
    events::{self, envelope::Payload},
    notification as pb,
};
use tongban_testkit::{Backend, authed, eventually};
use tonic::Code;

use crate::common::*;

#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<Mutex<Vec<(String, String, String)>>>,
}

async fn webhook_is_signed_and_retried(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let integrator = h.keys.token(Role::Integrator, None, None);
    let mut client = h.client.clone();

    // Validation names the field; only integrators and admins may register.
    let err = client
        .register_webhook(authed(
            pb::RegisterWebhookRequest {
                url: "ftp://example.com".into(),
                event_types: vec![],
                request_id: String::new(),
            },
            &integrator,
        ))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("accepted a bad url"))?;
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "INVALID_ARGUMENT");
    assert_eq!(fields(&err), ["url"]);
    let err = client
        .register_webhook(authed(
            pb::RegisterWebhookRequest {
                url: "https://example.com/hook".into(),
                event_types: vec!["application.exploded".into()],
                request_id: String::new(),
            },
            &integrator,
        ))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("accepted a bad event type"))?;
    assert_eq!(fields(&err), ["event_types[0]"]);
    let err = client
        .register_webhook(authed(
            pb::RegisterWebhookRequest {
                url: "https://example.com/hook".into(),
                event_types: vec![],
                request_id: String::new(),
            },
            &h.keys.token(Role::Clerk, Some("eco_env"), None),
        ))
        .await
        .err();
    assert_eq!(err.as_ref().map(|e| e.code()), Some(Code::PermissionDenied));
    assert_eq!(
        err.as_ref().map(reason).as_deref(),
        Some("PERMISSION_DENIED")
    );

    // A receiver that fails the first call.
    let recv = Receiver::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(r): axum::extract::State<Receiver>,
                 headers: axum::http::HeaderMap,
                 body: String| async move {
                    let get = |k: &str| {
                        headers
                            .get(k)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    let mut calls = r.calls.lock().unwrap_or_else(|e| e.into_inner());
                    calls.push((get("x-tongban-signature"), get("x-tongban-event-id"), body));
                    if calls.len() == 1 {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::OK
                    }
                },
            ),
        )
        .with_state(recv.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let hook = client
        .register_webhook(authed(
            pb::RegisterWebhookRequest {
                url: format!("http://{addr}/hook"),
                event_types: vec!["application.approved".into()],
                request_id: "hook-1".into(),
            },
            &integrator,
        ))
        .await?
        .into_inner()
        .webhook
        .ok_or_else(|| anyhow::anyhow!("no webhook"))?;
    assert_eq!(hook.secret.len(), 64);
    // A retry with the same request_id returns the same webhook and registers nothing new;
    // the same id for another URL, or from another caller, is refused.
    let retried = client
        .register_webhook(authed(
            pb::RegisterWebhookRequest {
                url: format!("http://{addr}/hook"),
                event_types: vec!["application.approved".into()],
                request_id: "hook-1".into(),
            },
            &integrator,
        ))
        .await?
        .into_inner()
        .webhook;
    assert_eq!(retried.as_ref(), Some(&hook));
    for (url, caller) in [
        (format!("http://{addr}/other"), integrator.clone()),
        (
            format!("http://{addr}/hook"),
            h.keys.token(Role::Admin, None, None),
        ),
    ] {
        let err = client
            .register_webhook(authed(
                pb::RegisterWebhookRequest {
                    url,
                    event_types: vec!["application.approved".into()],
                    request_id: "hook-1".into(),
                },
                &caller,
            ))
            .await
            .err()
            .ok_or_else(|| anyhow::anyhow!("request_id reused"))?;
        assert_eq!(err.code(), Code::AlreadyExists);
        assert_eq!(reason(&err), "REQUEST_ID_REUSED");
    }
    assert_eq!(
        h.db.query_one_raw(sea_orm::Statement::from_string(
            h.db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM webhooks".to_string(),
        ))
        .await?
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?,
        Some(1)
    );
    // One registration on notification's audit chain, naming the integrator, never the
    // secret; refused and replayed requests add nothing.
    let trail = tongban_audit::entries(&h.db, "service/notification").await?;
    let acts: Vec<_> = trail
        .iter()
        .map(|e| (e.action.as_str(), e.actor.role.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(
        acts,
        vec![("webhook.register", "integrator", hook.webhook_id.as_str())]
    );
    assert!(!trail[0].reason.contains(&hook.secret), "{:?}", trail[0]);

    let approved = tongban_outbox::new_envelope(
        "approval",
        "app-9",
        Payload::ApplicationApproved(events::ApplicationApproved {
            decision_number: "松环审〔2026〕99号".into(),
            ..Default::default()
        }),
    );
    let other = tongban_outbox::new_envelope(
        "approval",
        "app-9",
        Payload::ApplicationRejected(Default::default()),
    );
    h.publish(&[&other, &approved, &approved]).await?;
    let calls = eventually(WAIT, "a successful retry", || async {
        let c = recv.calls.lock().ok()?.clone();
        (c.len() >= 2).then_some(c)
    })
    .await?;
    for (sig, event_id, body) in &calls {
        let mut mac = Hmac::<Sha256>::new_from_slice(hook.secret.as_bytes())?;
        mac.update(body.as_bytes());
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(
            sig, &expected,
            "signature verifies with the returned secret"
        );
        assert_eq!(event_id, &approved.event_id);
        let json: serde_json::Value = serde_json::from_str(body)?;
        assert_eq!(json["type"], "application.approved");
        assert_eq!(json["event_id"], approved.event_id.as_str());
        assert_eq!(json["application_id"], "app-9");
        assert_eq!(json["payload"]["decisionNumber"], "松环审〔2026〕99号");
    }
    assert_eq!(calls[0].2, calls[1].2, "a retry sends the same bytes");
    eventually(WAIT, "the delivery recorded", || async {
        (h.count("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE delivered_ms IS NOT NULL AND attempts = 2")
            .await
            == 1)
            .then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(recv.calls.lock().map(|c| c.len()).unwrap_or_default(), 2);
    server.abort();
    Ok(())
}

tongban_testkit::on_both!(webhook_is_signed_and_retried,);
