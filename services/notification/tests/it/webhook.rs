//! Webhooks: registration rules, signed calls that cannot be replayed, retries that send the
//! same bytes, the SSRF guard (at registration and at delivery), no redirects, ownership and
//! the owner's scope.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use sea_orm::ConnectionTrait as _;
use tongban_auth::Role;
use tongban_notification::{
    WebhookPolicy,
    webhook::{DEFAULT_TOLERANCE, VerifyError, verify},
};
use tongban_proto::{
    events::{self, envelope::Payload},
    notification as pb,
};
use tongban_testkit::{Backend, authed, eventually};
use tonic::Code;

use crate::common::*;

/// One call a receiver got.
#[derive(Debug, Clone)]
struct Call {
    path: String,
    timestamp: String,
    signature: String,
    event_id: String,
    traceparent: String,
    body: String,
}

/// A local HTTP receiver that records every POST. `/hook` fails its first call when
/// `fail_first`; `/redirect` answers 307 to `/landing`; anything else answers 200.
#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<Mutex<Vec<Call>>>,
    fail_first: bool,
}

impl Receiver {
    async fn start(
        fail_first: bool,
    ) -> anyhow::Result<(Self, std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
        let r = Receiver {
            calls: Arc::default(),
            fail_first,
        };
        let app = axum::Router::new()
            .fallback(
                |axum::extract::State(r): axum::extract::State<Receiver>,
                 uri: axum::http::Uri,
                 headers: axum::http::HeaderMap,
                 body: String| async move {
                    let get = |k: &str| {
                        headers
                            .get(k)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    let path = uri.path().to_string();
                    let mut calls = r.calls.lock().unwrap_or_else(|e| e.into_inner());
                    calls.push(Call {
                        path: path.clone(),
                        timestamp: get("x-tongban-timestamp"),
                        signature: get("x-tongban-signature"),
                        event_id: get("x-tongban-event-id"),
                        traceparent: get("traceparent"),
                        body,
                    });
                    let first = calls.iter().filter(|c| c.path == path).count() == 1;
                    match path.as_str() {
                        "/redirect" => (
                            axum::http::StatusCode::TEMPORARY_REDIRECT,
                            [("location", "/landing")],
                        ),
                        "/hook" if r.fail_first && first => (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            [("x-note", "first")],
                        ),
                        _ => (axum::http::StatusCode::OK, [("x-note", "ok")]),
                    }
                },
            )
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((r, addr, server))
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

fn register(url: &str, event_types: &[&str], request_id: &str) -> pb::RegisterWebhookRequest {
    pb::RegisterWebhookRequest {
        url: url.into(),
        event_types: event_types.iter().map(|t| t.to_string()).collect(),
        request_id: request_id.into(),
    }
}

fn approved(app: &str) -> events::Envelope {
    tongban_outbox::new_envelope(
        "approval",
        app,
        Payload::ApplicationApproved(events::ApplicationApproved {
            decision_number: "松环审〔2026〕99号".into(),
            ..Default::default()
        }),
    )
}

async fn webhook_is_signed_and_retried(backend: Backend) -> anyhow::Result<()> {
    // Spans get ids, so the calls carry a traceparent (checked below).
    let _telemetry = tongban_telemetry::init("notification-test");
    let h = Harness::start(backend).await?;
    let admin = h.keys.token(Role::Admin, None, None);
    let mut client = h.client.clone();

    // Validation names the field.
    let err = client
        .register_webhook(authed(register("ftp://example.com", &[], ""), &admin))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("accepted a bad url"))?;
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "INVALID_ARGUMENT");
    assert_eq!(fields(&err), ["url"]);
    let err = client
        .register_webhook(authed(
            register("https://example.com/hook", &["application.exploded"], ""),
            &admin,
        ))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("accepted a bad event type"))?;
    assert_eq!(fields(&err), ["event_types[0]"]);
    // A staff token without the department its scope needs owns nothing: it is not
    // accepted at all, never read as "every department".
    let err = client
        .register_webhook(authed(
            register("https://example.com/hook", &[], ""),
            &h.keys
                .sign_claims(&h.keys.claims(Role::Clerk, "clerk-without-department")),
        ))
        .await
        .err();
    assert_eq!(err.as_ref().map(|e| e.code()), Some(Code::Unauthenticated));

    let (recv, addr, server) = Receiver::start(true).await?;
    let url = format!("http://{addr}/hook");
    let hook = client
        .register_webhook(authed(
            register(&url, &["application.approved"], "hook-1"),
            &admin,
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
            register(&url, &["application.approved"], "hook-1"),
            &admin,
        ))
        .await?
        .into_inner()
        .webhook;
    assert_eq!(retried.as_ref(), Some(&hook));
    for (url, caller) in [
        (format!("http://{addr}/other"), admin.clone()),
        (url.clone(), h.keys.token(Role::Integrator, None, None)),
    ] {
        let err = client
            .register_webhook(authed(
                register(&url, &["application.approved"], "hook-1"),
                &caller,
            ))
            .await
            .err()
            .ok_or_else(|| anyhow::anyhow!("request_id reused"))?;
        assert_eq!(err.code(), Code::AlreadyExists);
        assert_eq!(reason(&err), "REQUEST_ID_REUSED");
    }
    assert_eq!(h.count("SELECT COUNT(*) AS n FROM webhooks").await, 1);
    // One registration on notification's audit chain, naming the admin who made it, never
    // the secret; invalid and replayed requests add nothing.
    let trail = tongban_audit::entries(&h.db, "service/notification").await?;
    let acts: Vec<_> = trail
        .iter()
        .map(|e| (e.action.as_str(), e.actor.role.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(
        acts,
        vec![("webhook.register", "admin", hook.webhook_id.as_str())]
    );
    assert!(!trail[0].reason.contains(&hook.secret), "{:?}", trail[0]);

    let mut approved = approved("app-9");
    // Published without a header (as before the relay sent one): the envelope's context is the
    // trace the delivery continues.
    let trace_id = "6e0c63257de34c926f9efcd03927272e";
    approved.traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let other = tongban_outbox::new_envelope(
        "approval",
        "app-9",
        Payload::ApplicationRejected(Default::default()),
    );
    h.publish(&[&other, &approved, &approved]).await?;
    let calls = eventually(WAIT, "a successful retry", || async {
        let c = recv.calls();
        (c.len() >= 2).then_some(c)
    })
    .await?;
    let now = chrono::Utc::now().timestamp();
    for c in &calls {
        // Each attempt verifies with the returned secret at the time it was received.
        verify(
            &hook.secret,
            &c.timestamp,
            c.body.as_bytes(),
            &c.signature,
            now,
            DEFAULT_TOLERANCE,
        )?;
        assert_eq!(c.event_id, approved.event_id);
        // Every attempt is a client span in the event's trace, and says so to the receiver.
        let tp: Vec<&str> = c.traceparent.split('-').collect();
        assert!(
            tp.len() == 4 && tp[1] == trace_id && tp[2] != "00f067aa0ba902b7",
            "traceparent {:?}",
            c.traceparent
        );
        let json: serde_json::Value = serde_json::from_str(&c.body)?;
        assert_eq!(json["type"], "application.approved");
        assert_eq!(json["event_id"], approved.event_id.as_str());
        assert_eq!(json["application_id"], "app-9");
        assert_eq!(json["payload"]["decisionNumber"], "松环审〔2026〕99号");
    }
    assert_eq!(calls[0].body, calls[1].body, "a retry sends the same bytes");
    assert_ne!(
        calls[0].traceparent, calls[1].traceparent,
        "each attempt is its own span"
    );

    // The captured delivery, replayed ten minutes later, is refused; so is the same capture
    // with a fresh timestamp in front of the old signature.
    let c = &calls[1];
    assert_eq!(
        verify(
            &hook.secret,
            &c.timestamp,
            c.body.as_bytes(),
            &c.signature,
            now + 600,
            DEFAULT_TOLERANCE
        ),
        Err(VerifyError::Stale)
    );
    assert_eq!(
        verify(
            &hook.secret,
            &(now + 600).to_string(),
            c.body.as_bytes(),
            &c.signature,
            now + 600,
            DEFAULT_TOLERANCE
        ),
        Err(VerifyError::BadSignature)
    );

    eventually(WAIT, "the delivery recorded", || async {
        (h.count("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE delivered_ms IS NOT NULL AND attempts = 2")
            .await
            == 1)
            .then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(recv.calls().len(), 2);

    // The secret is shown once: never by ListWebhooks.
    let listed = client
        .list_webhooks(authed(pb::ListWebhooksRequest::default(), &admin))
        .await?
        .into_inner()
        .webhooks;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].secret.is_empty());
    assert_eq!(listed[0].webhook_id, hook.webhook_id);
    server.abort();
    Ok(())
}

async fn internal_targets_are_refused(backend: Backend) -> anyhow::Result<()> {
    // Plain http allowed, nothing allow-listed: only the address rules decide.
    let h = Harness::start_with(
        backend,
        WebhookPolicy {
            allow_http: true,
            ..WebhookPolicy::default()
        },
    )
    .await?;
    let admin = h.keys.token(Role::Admin, None, None);
    let mut client = h.client.clone();
    let (recv, addr, server) = Receiver::start(false).await?;
    let port = addr.port();
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        "http://10.0.0.1/hook".to_string(),
        "http://192.168.1.10/hook".to_string(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[fd00:ec2::254]/latest/meta-data/".to_string(),
        "http://100.64.0.1/hook".to_string(),
        "http://0.0.0.0/hook".to_string(),
        "https://user:pw@example.com/hook".to_string(),
    ] {
        let err = client
            .register_webhook(authed(register(&url, &[], ""), &admin))
            .await
            .err()
            .ok_or_else(|| anyhow::anyhow!("{url} was accepted"))?;
        assert_eq!(err.code(), Code::InvalidArgument, "{url}: {err:?}");
        assert_eq!(fields(&err), ["url"], "{url}");
    }
    assert_eq!(h.count("SELECT COUNT(*) AS n FROM webhooks").await, 0);

    // A webhook that got past registration (stored earlier, or its name re-pointed since) is
    // checked again at every delivery: the receiver is never called.
    let b = h.db.get_database_backend();
    for (id, url) in [
        ("w-ip", format!("http://127.0.0.1:{port}/hook")),
        ("w-name", format!("http://localhost:{port}/hook")),
    ] {
        h.db.execute_raw(sea_orm::Statement::from_sql_and_values(
            b,
            match b {
                sea_orm::DbBackend::Postgres => {
                    "INSERT INTO webhooks (webhook_id, url, event_types, secret, created_by, created_ms, request_id, owner_subject, owner_role, owner_department, owner_credit_code) VALUES ($1, $2, '', 'secret', 'admin:a', 0, '', 'a', 'admin', '', '')"
                }
                _ => {
                    "INSERT INTO webhooks (webhook_id, url, event_types, secret, created_by, created_ms, request_id, owner_subject, owner_role, owner_department, owner_credit_code) VALUES (?, ?, '', 'secret', 'admin:a', 0, '', 'a', 'admin', '', '')"
                }
            },
            [id.into(), url.into()],
        ))
        .await?;
    }
    h.publish(&[&approved("app-1")]).await?;
    eventually(WAIT, "both deliveries refused", || async {
        (h.count(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE attempts >= 1 AND last_error LIKE '%loopback%'",
        )
        .await
            == 2)
            .then_some(())
    })
    .await?;
    assert!(recv.calls().is_empty(), "an internal receiver was called");
    server.abort();
    Ok(())
}

async fn redirects_are_not_followed(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let admin = h.keys.token(Role::Admin, None, None);
    let (recv, addr, server) = Receiver::start(false).await?;
    h.client
        .clone()
        .register_webhook(authed(
            register(&format!("http://{addr}/redirect"), &[], ""),
            &admin,
        ))
        .await?;
    h.publish(&[&approved("app-1")]).await?;
    eventually(WAIT, "the 307 recorded as a failure", || async {
        (h.count(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE delivered_ms IS NULL AND attempts >= 1 AND last_error LIKE '%307%'",
        )
        .await
            == 1)
            .then_some(())
    })
    .await?;
    let paths: Vec<String> = recv.calls().into_iter().map(|c| c.path).collect();
    assert!(!paths.is_empty());
    assert!(
        paths.iter().all(|p| p == "/redirect"),
        "followed a redirect: {paths:?}"
    );
    server.abort();
    Ok(())
}

async fn webhooks_are_owned_and_scoped(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let mut client = h.client.clone();
    // Webhooks are for integrators and admins (the table). `fj-portal` is registered for
    // ZH_APPLICANT only, `integrator-test` for every enterprise (deploy/integrators.toml);
    // `integrator` is registered too and owns none.
    let integrator = |sub: &str| h.keys.sign_claims(&h.keys.claims(Role::Integrator, sub));
    let a = integrator("fj-portal");
    let b = integrator("integrator-test");
    let other = integrator("integrator");
    let admin = h.keys.token(Role::Admin, None, None);
    let (recv, addr, server) = Receiver::start(false).await?;
    let mut ids = Vec::new();
    for (path, token) in [("/a", &a), ("/b", &b), ("/admin", &admin)] {
        let w = client
            .register_webhook(authed(
                register(&format!("http://{addr}{path}"), &[], ""),
                token,
            ))
            .await?
            .into_inner()
            .webhook
            .ok_or_else(|| anyhow::anyhow!("no webhook"))?;
        ids.push(w.webhook_id);
    }

    // Each lists its own; an admin lists all; pages are honoured.
    let lister = client.clone();
    let list = |token: String, page_size: i32, page_token: String| {
        let mut c = lister.clone();
        async move {
            anyhow::Ok(
                c.list_webhooks(authed(
                    pb::ListWebhooksRequest {
                        page_size,
                        page_token,
                    },
                    &token,
                ))
                .await?
                .into_inner(),
            )
        }
    };
    let mine = list(a.clone(), 0, String::new()).await?.webhooks;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].webhook_id, ids[0]);
    assert!(mine[0].owner.starts_with("integrator:"));
    assert!(
        list(other.clone(), 0, String::new())
            .await?
            .webhooks
            .is_empty()
    );
    let first = list(admin.clone(), 2, String::new()).await?;
    assert_eq!(first.webhooks.len(), 2);
    let rest = list(admin.clone(), 2, first.next_page_token).await?;
    assert_eq!(rest.webhooks.len(), 1);
    assert!(rest.next_page_token.is_empty());
    assert!(
        first
            .webhooks
            .iter()
            .chain(&rest.webhooks)
            .all(|w| w.secret.is_empty())
    );

    // Another principal cannot delete it (and cannot tell it exists); nothing changes.
    for token in [&b, &other] {
        let err = client
            .delete_webhook(authed(
                pb::DeleteWebhookRequest {
                    webhook_id: ids[0].clone(),
                },
                token,
            ))
            .await
            .err()
            .ok_or_else(|| anyhow::anyhow!("deleted another's webhook"))?;
        assert_eq!(err.code(), Code::NotFound);
        assert_eq!(reason(&err), "NOT_FOUND");
    }
    assert_eq!(h.count("SELECT COUNT(*) AS n FROM webhooks").await, 3);
    let err = client
        .delete_webhook(authed(pb::DeleteWebhookRequest::default(), &a))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("empty id accepted"))?;
    assert_eq!(fields(&err), ["webhook_id"]);

    // Scope: A's application reaches every webhook; B's never reaches fj-portal's.
    let sub_a = submitted(ZH_APPLICANT, "", "zh-CN");
    let sub_b = submitted(EN_APPLICANT, "", "en");
    let task_a = tongban_outbox::new_envelope(
        "approval",
        &sub_a.application_id,
        Payload::TaskCreated(events::TaskCreated {
            task_id: "t-a".into(),
            department: "eco_env".into(),
            ..Default::default()
        }),
    );
    let approved_a = approved(&sub_a.application_id);
    let approved_b = approved(&sub_b.application_id);
    // In steps: the facts and the department must be known before the events they scope.
    let wait_for = |n: usize| {
        let recv = recv.clone();
        async move {
            eventually(WAIT, &format!("{n} deliveries"), || async {
                (recv.calls().len() >= n).then_some(())
            })
            .await
        }
    };
    h.publish(&[&sub_a, &sub_b]).await?;
    wait_for(5).await?;
    h.publish(&[&task_a]).await?;
    wait_for(8).await?;
    h.publish(&[&approved_a, &approved_b]).await?;
    let calls = eventually(WAIT, "the in-scope deliveries", || async {
        let c = recv.calls();
        (c.len() >= 13).then_some(c)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let calls_now = recv.calls();
    assert_eq!(
        calls_now.len(),
        calls.len(),
        "more deliveries than in scope"
    );
    let seen = |path: &str| -> Vec<(String, String)> {
        let mut v: Vec<_> = calls_now
            .iter()
            .filter(|c| c.path == path)
            .map(|c| {
                let json: serde_json::Value = serde_json::from_str(&c.body).unwrap_or_default();
                (
                    json["application_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    json["type"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let app_a = sub_a.application_id.clone();
    let app_b = sub_b.application_id.clone();
    let mut want_a = vec![
        (app_a.clone(), "application.approved".to_string()),
        (app_a.clone(), "application.submitted".to_string()),
        (app_a.clone(), "task.created".to_string()),
    ];
    want_a.sort();
    assert_eq!(seen("/a"), want_a);
    let mut want_all = vec![
        (app_b.clone(), "application.approved".to_string()),
        (app_b.clone(), "application.submitted".to_string()),
    ];
    want_all.extend(want_a.iter().cloned());
    want_all.sort();
    assert_eq!(seen("/b"), want_all);
    assert_eq!(seen("/admin"), want_all);

    // The owner deletes its own; later events no longer reach it.
    client
        .delete_webhook(authed(
            pb::DeleteWebhookRequest {
                webhook_id: ids[0].clone(),
            },
            &a,
        ))
        .await?;
    assert!(list(a.clone(), 0, String::new()).await?.webhooks.is_empty());
    h.publish(&[&approved(&app_a)]).await?;
    eventually(WAIT, "the admin's delivery", || async {
        (recv.calls().iter().filter(|c| c.path == "/admin").count() == 6).then_some(())
    })
    .await?;
    assert_eq!(recv.calls().iter().filter(|c| c.path == "/a").count(), 3);
    server.abort();
    Ok(())
}

/// The owner's scope is the authorization table's: a registered integrator's webhook receives
/// exactly its registered enterprises' events (and an admin's everything); a department a task
/// was moved to (`task.moved`) joins the application's recorded departments.
async fn integrator_webhooks_follow_the_table(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let mut client = h.client.clone();
    // `fj-portal` is registered (deploy/integrators.toml) for ZH_APPLICANT's EIA matters only.
    let portal = h
        .keys
        .sign_claims(&h.keys.claims(Role::Integrator, "fj-portal"));
    let admin = h.keys.token(Role::Admin, None, None);
    let (recv, addr, server) = Receiver::start(false).await?;
    let mut hooks = std::collections::HashMap::new();
    for (path, token) in [("/portal", &portal), ("/all", &admin)] {
        let w = client
            .register_webhook(authed(
                register(&format!("http://{addr}{path}"), &[], ""),
                token,
            ))
            .await?
            .into_inner()
            .webhook
            .ok_or_else(|| anyhow::anyhow!("no webhook"))?;
        hooks.insert(path, w.webhook_id);
    }
    let sub_a = submitted(ZH_APPLICANT, "", "zh-CN");
    let sub_b = submitted(EN_APPLICANT, "", "en");
    let app_a = sub_a.application_id.clone();
    let app_b = sub_b.application_id.clone();
    let moved_a = tongban_outbox::new_envelope(
        "approval",
        &app_a,
        Payload::TaskMoved(events::TaskMoved {
            task_id: "t-a".into(),
            from_department: "eco_env".into(),
            department: "water".into(),
            office: String::new(),
        }),
    );
    let approved_a = approved(&app_a);
    let approved_b = approved(&app_b);
    // The admin's webhook hears everything: once it has had n calls, the first n events are
    // fanned in, and every other webhook's deliveries of them are queued (same transaction).
    let all_heard = |n: usize| {
        let recv = recv.clone();
        async move {
            eventually(WAIT, &format!("{n} events at /all"), || async {
                (recv.calls().iter().filter(|c| c.path == "/all").count() >= n).then_some(())
            })
            .await
        }
    };
    h.publish(&[&sub_a, &sub_b]).await?;
    all_heard(2).await?;
    h.publish(&[&moved_a]).await?;
    all_heard(3).await?;
    h.publish(&[&approved_a, &approved_b]).await?;
    all_heard(5).await?;

    // The move brought water into A's recorded departments.
    assert_eq!(
        h.count(&format!(
            "SELECT COUNT(*) AS n FROM application_departments \
             WHERE application_id = '{app_a}' AND department = 'water'"
        ))
        .await,
        1
    );
    // The portal: A's submission, move and approval are queued for it; nothing of B.
    assert_eq!(
        h.count(&format!(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = '{}'",
            hooks["/portal"]
        ))
        .await,
        3
    );
    let calls = eventually(WAIT, "3 calls at /portal", || async {
        let calls: Vec<_> = recv
            .calls()
            .into_iter()
            .filter(|c| c.path == "/portal")
            .collect();
        (calls.len() >= 3).then_some(calls)
    })
    .await?;
    let mut got: Vec<_> = calls
        .iter()
        .map(|c| {
            let json: serde_json::Value = serde_json::from_str(&c.body).unwrap_or_default();
            (
                json["application_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                json["type"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        (app_a.clone(), "application.approved".to_string()),
        (app_a.clone(), "application.submitted".to_string()),
        (app_a.clone(), "task.moved".to_string()),
    ];
    want.sort();
    assert_eq!(got, want);
    server.abort();
    Ok(())
}

tongban_testkit::on_both!(
    webhook_is_signed_and_retried,
    internal_targets_are_refused,
    redirects_are_not_followed,
    webhooks_are_owned_and_scoped,
    integrator_webhooks_follow_the_table,
);
