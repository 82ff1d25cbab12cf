//! Notification over real gRPC, against PostgreSQL + RabbitMQ and against SQLite + the embedded
//! bus: events published on the bus, effects observed through the API, an SMTP sink and an HTTP
//! receiver.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine;
use hmac::{Hmac, Mac};
use prost::Message;
use sea_orm::ConnectionTrait;
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;
use tongban_auth::Role;
use tongban_bus::Bus;
use tongban_notification::{NotificationOptions, RetryPolicy, SmtpSettings};
use tongban_proto::{
    common,
    events::{self, Envelope, envelope::Payload},
    notification::{self as pb, notification_service_client::NotificationServiceClient},
};
use tongban_testkit::{Backend, Keys, Stopper, TestDb, authed, eventually};
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt;

const ZH_APPLICANT: &str = "91350100M000100Y43";
const EN_APPLICANT: &str = "91440300708461136T";
const WAIT: Duration = Duration::from_secs(30);

type Mails = Arc<Mutex<Vec<String>>>;

struct Harness {
    client: NotificationServiceClient<Channel>,
    keys: Keys,
    db: sea_orm::DatabaseConnection,
    bus: Bus,
    mails: Mails,
    _stop: Stopper,
    _db: TestDb,
    _bus_dir: Option<tempfile::TempDir>,
}

impl Harness {
    async fn start(backend: Backend) -> anyhow::Result<Self> {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let test_db = TestDb::new(backend, "notification").await?;
        let (bus, bus_dir) = match backend {
            Backend::Postgres => (tongban_testkit::rabbit_bus("notification").await?.0, None),
            Backend::Sqlite => {
                let (b, d) = tongban_testkit::local_bus().await?;
                (b, Some(d))
            }
        };
        let stop = CancellationToken::new();
        let mails: Mails = Arc::default();
        let smtp_port = smtp_sink(mails.clone(), stop.clone()).await?;
        let keys = Keys::new();
        let db = tongban_storage::connect(&test_db.url).await?;
        let ctx = tongban_runtime::Context {
            db: db.clone(),
            bus: bus.clone(),
            auth: keys.authenticator(),
            deploy_dir: tongban_testkit::deploy_dir(),
        };
        let opts = NotificationOptions {
            smtp: Some(SmtpSettings {
                host: "127.0.0.1".into(),
                port: smtp_port,
                from: "Tongban <noreply@tongban.test>".into(),
                tls: false,
            }),
            webhook_retry: RetryPolicy {
                base: Duration::from_millis(100),
                cap: Duration::from_secs(1),
                max_attempts: 5,
            },
            poll: Duration::from_millis(200),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let token = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = tongban_notification::run_with(ctx, opts, listener, token).await {
                eprintln!("notification stopped: {e:#}");
            }
        });
        // The listener accepts before the service runs; an answered RPC proves the queue is
        // declared (it is, before serving starts), so nothing published from now on is lost.
        let admin = keys.token(Role::Admin, None, None);
        let client = eventually(Duration::from_secs(30), "notification to serve", || async {
            let mut c = NotificationServiceClient::connect(format!("http://{addr}"))
                .await
                .ok()?;
            c.list_notifications(authed(pb::ListNotificationsRequest::default(), &admin))
                .await
                .ok()?;
            Some(c)
        })
        .await?;
        Ok(Self {
            client,
            keys,
            db,
            bus,
            mails,
            _stop: Stopper(stop),
            _db: test_db,
            _bus_dir: bus_dir,
        })
    }

    async fn publish(&self, events: &[&Envelope]) -> anyhow::Result<()> {
        let msgs: Vec<_> = events
            .iter()
            .map(|e| tongban_bus::OutgoingMessage {
                event_id: e.event_id.clone(),
                routing_key: e.r#type.clone(),
                payload: e.encode_to_vec(),
                traceparent: None,
            })
            .collect();
        self.bus.publish_batch(&msgs).await?;
        Ok(())
    }

    async fn list(&self, token: &str) -> anyhow::Result<Vec<pb::Notification>> {
        Ok(self
            .client
            .clone()
            .list_notifications(authed(
                pb::ListNotificationsRequest {
                    page_size: 200,
                    ..Default::default()
                },
                token,
            ))
            .await?
            .into_inner()
            .notifications)
    }

    /// Waits until `token` sees `n` notifications, and returns their kinds oldest first.
    async fn kinds(&self, token: &str, n: usize) -> anyhow::Result<Vec<String>> {
        eventually(WAIT, &format!("{n} notifications"), || async {
            let l = self.list(token).await.ok()?;
            (l.len() >= n).then(|| l.iter().rev().map(|x| x.kind.clone()).collect())
        })
        .await
    }

    async fn count(&self, sql: &str) -> i64 {
        let b = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(b, sql.to_string()))
            .await
            .ok()
            .flatten();
        row.and_then(|r| r.try_get::<i64>("", "n").ok())
            .unwrap_or(-1)
    }
}

fn submitted(credit_code: &str, email: &str, locale: &str) -> Envelope {
    let id = tongban_types::new_id();
    let form = prost_types::Struct {
        fields: [(
            "project_name".to_string(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue(
                    "竹木复合板材项目".into(),
                )),
            },
        )]
        .into_iter()
        .collect(),
    };
    tongban_outbox::new_envelope(
        "intake",
        &id,
        Payload::ApplicationSubmitted(events::ApplicationSubmitted {
            application: Some(events::ApplicationSnapshot {
                application_id: id.clone(),
                matter_code: "env.eia.report_form".into(),
                applicant: Some(common::Applicant {
                    credit_code: credit_code.into(),
                    contact: Some(common::Contact {
                        email: email.into(),
                        locale: locale.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                form: Some(form),
                ..Default::default()
            }),
        }),
    )
}

fn task_event(app: &str, task: &str, payload: fn(String) -> Payload) -> Envelope {
    tongban_outbox::new_envelope("approval", app, payload(task.to_string()))
}

async fn fan_in_reaches_each_role_once(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let sub = submitted(ZH_APPLICANT, "", "zh-CN");
    let app = sub.application_id.clone();
    let created = task_event(&app, "t1", |t| {
        Payload::TaskCreated(events::TaskCreated {
            task_id: t,
            department: "eco_env".into(),
            kind: "review".into(),
            title: "环评审查".into(),
            ..Default::default()
        })
    });
    let owed = |t: String| {
        Payload::TaskDueSoon(events::TaskDueSoon {
            task_id: t,
            department: "eco_env".into(),
            kind: "follow_up_material".into(),
            title: "补交用地证明".into(),
            ..Default::default()
        })
    };
    // Two distinct due-soon events for the same task: a reminder is sent once.
    let due1 = task_event(&app, "t2", owed);
    let due2 = task_event(&app, "t2", owed);
    let overdue = task_event(&app, "t1", |t| {
        Payload::TaskOverdue(events::TaskOverdue {
            task_id: t,
            department: "eco_env".into(),
            kind: "review".into(),
            ..Default::default()
        })
    });
    let escalated = task_event(&app, "t1", |t| {
        Payload::TaskEscalated(events::TaskEscalated {
            task_id: t,
            department: "eco_env".into(),
            escalated_to: "supervisor:eco_env".into(),
            ..Default::default()
        })
    });
    let dead = tongban_outbox::new_envelope(
        "dispatch",
        &app,
        Payload::DeliveryDeadLettered(events::DeliveryDeadLettered {
            platform_id: "eia".into(),
            attempts: 10,
            ..Default::default()
        }),
    );
    let approved = tongban_outbox::new_envelope(
        "approval",
        &app,
        Payload::ApplicationApproved(events::ApplicationApproved {
            decision_number: "松环审〔2026〕12号".into(),
            ..Default::default()
        }),
    );
    h.publish(&[&sub, &sub]).await?;
    let applicant = h.keys.token(Role::Applicant, None, Some(ZH_APPLICANT));
    h.kinds(&applicant, 1).await?;
    h.publish(&[
        &created, &due1, &due2, &overdue, &escalated, &dead, &approved, &approved, &created,
    ])
    .await?;

    let clerk = h.keys.token(Role::Clerk, Some("eco_env"), None);
    let supervisor = h.keys.token(Role::Supervisor, Some("eco_env"), None);
    let integrator = h.keys.token(Role::Integrator, None, None);
    let admin = h.keys.token(Role::Admin, None, None);
    let other_clerk = h.keys.token(Role::Clerk, Some("water"), None);

    assert_eq!(
        h.kinds(&applicant, 3).await?,
        [
            "application.submitted",
            "task.due_soon",
            "application.approved"
        ]
    );
    let inbox = h.list(&applicant).await?;
    assert_eq!(inbox[0].title, "审批通过：竹木复合板材项目");
    assert!(
        inbox[0].body.contains("松环审〔2026〕12号"),
        "{}",
        inbox[0].body
    );
    assert_eq!(inbox[0].locale, "zh-CN");
    assert_eq!(h.kinds(&clerk, 2).await?, ["task.created", "task.due_soon"]);
    assert_eq!(
        h.kinds(&supervisor, 4).await?,
        [
            "task.created",
            "task.due_soon",
            "task.overdue",
            "task.escalated"
        ]
    );
    assert_eq!(h.kinds(&integrator, 1).await?, ["delivery.dead_lettered"]);
    assert_eq!(h.kinds(&admin, 8).await?.len(), 8);
    assert!(h.list(&other_clerk).await?.is_empty());
    // Nothing more arrives later (duplicates were dropped, not delayed).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.list(&admin).await?.len(), 8);
    assert_eq!(h.count("SELECT COUNT(*) AS n FROM notifications").await, 8);

    // MarkRead marks only the caller's own.
    let mut client = h.client.clone();
    let ids: Vec<String> = h
        .list(&admin)
        .await?
        .into_iter()
        .map(|n| n.notification_id)
        .collect();
    let marked = client
        .mark_read(authed(
            pb::MarkReadRequest {
                notification_ids: ids.clone(),
            },
            &clerk,
        ))
        .await?
        .into_inner()
        .marked;
    assert_eq!(marked, 2);
    let unread = client
        .list_notifications(authed(
            pb::ListNotificationsRequest {
                unread_only: true,
                ..Default::default()
            },
            &supervisor,
        ))
        .await?
        .into_inner()
        .notifications;
    assert_eq!(unread.len(), 2, "the department's two are read");
    // Paging: newest first, two at a time, no overlap.
    let page = client
        .list_notifications(authed(
            pb::ListNotificationsRequest {
                page_size: 2,
                ..Default::default()
            },
            &admin,
        ))
        .await?
        .into_inner();
    assert_eq!(page.notifications.len(), 2);
    let next = client
        .list_notifications(authed(
            pb::ListNotificationsRequest {
                page_size: 2,
                page_token: page.next_page_token.clone(),
                ..Default::default()
            },
            &admin,
        ))
        .await?
        .into_inner();
    assert!(next.notifications[0].cursor < page.notifications[1].cursor);
    Ok(())
}

async fn subscribe_resumes_without_gaps_or_repeats(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let clerk = h.keys.token(Role::Clerk, Some("eco_env"), None);
    let task = |i: usize| {
        tongban_outbox::new_envelope(
            "approval",
            "app-x",
            Payload::TaskCreated(events::TaskCreated {
                task_id: format!("task-{i}"),
                department: "eco_env".into(),
                ..Default::default()
            }),
        )
    };
    let first: Vec<Envelope> = (0..5).map(task).collect();
    h.publish(&first.iter().collect::<Vec<_>>()).await?;

    let mut stream = h
        .client
        .clone()
        .subscribe(authed(pb::SubscribeRequest { after_cursor: 0 }, &clerk))
        .await?
        .into_inner();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let n = tokio::time::timeout(WAIT, stream.message())
            .await??
            .ok_or_else(|| anyhow::anyhow!("stream ended"))?;
        seen.push(n);
    }
    drop(stream);
    let last = seen.last().map(|n| n.cursor).unwrap_or_default();

    let more: Vec<Envelope> = (5..9).map(task).collect();
    h.publish(&more.iter().collect::<Vec<_>>()).await?;

    let mut stream = h
        .client
        .clone()
        .subscribe(authed(pb::SubscribeRequest { after_cursor: last }, &clerk))
        .await?
        .into_inner();
    for _ in 0..6 {
        let n = tokio::time::timeout(WAIT, stream.message())
            .await??
            .ok_or_else(|| anyhow::anyhow!("stream ended"))?;
        seen.push(n);
    }
    // And nothing else.
    assert!(
        tokio::time::timeout(Duration::from_millis(600), stream.message())
            .await
            .is_err(),
        "an extra notification arrived"
    );
    let cursors: Vec<i64> = seen.iter().map(|n| n.cursor).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
    let tasks: HashSet<String> = seen.iter().map(|n| n.task_id.clone()).collect();
    assert_eq!(tasks.len(), 9, "every task exactly once: {tasks:?}");

    // Someone else's stream stays empty.
    let mut other = h
        .client
        .clone()
        .subscribe(authed(
            pb::SubscribeRequest { after_cursor: 0 },
            &h.keys.token(Role::Clerk, Some("water"), None),
        ))
        .await?
        .into_inner();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), other.message())
            .await
            .is_err()
    );
    Ok(())
}

async fn email_goes_out_once_in_the_applicants_language(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let zh = submitted(ZH_APPLICANT, "linxiao@example.com", "zh-CN");
    let en = submitted(EN_APPLICANT, "buyer@example.com", "en");
    h.publish(&[&zh, &en, &zh]).await?;
    let mails = eventually(WAIT, "two e-mails", || async {
        let m = h.mails.lock().ok()?.clone();
        (m.len() >= 2).then_some(m)
    })
    .await?;
    let to_zh = mails
        .iter()
        .find(|m| m.contains("linxiao@example.com"))
        .ok_or_else(|| anyhow::anyhow!("no mail to the zh applicant: {mails:?}"))?;
    let to_en = mails
        .iter()
        .find(|m| m.contains("buyer@example.com"))
        .ok_or_else(|| anyhow::anyhow!("no mail to the en applicant"))?;
    assert_eq!(subject(to_zh)?, "申请已受理：竹木复合板材项目");
    assert_eq!(subject(to_en)?, "Application accepted: 竹木复合板材项目");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.mails.lock().map(|m| m.len()).unwrap_or_default(), 2);
    assert_eq!(
        h.count("SELECT COUNT(*) AS n FROM emails WHERE sent_ms IS NOT NULL")
            .await,
        2
    );
    Ok(())
}

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
            },
            &integrator,
        ))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("accepted a bad url"))?;
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(fields(&err), ["url"]);
    let err = client
        .register_webhook(authed(
            pb::RegisterWebhookRequest {
                url: "https://example.com/hook".into(),
                event_types: vec!["application.exploded".into()],
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
            },
            &h.keys.token(Role::Clerk, Some("eco_env"), None),
        ))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(err, Some(Code::PermissionDenied));

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
            },
            &integrator,
        ))
        .await?
        .into_inner()
        .webhook
        .ok_or_else(|| anyhow::anyhow!("no webhook"))?;
    assert_eq!(hook.secret.len(), 64);

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

fn fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The decoded `Subject:` of a raw message (RFC 2047 base64 encoded-words, possibly folded).
fn subject(raw: &str) -> anyhow::Result<String> {
    let mut value = String::new();
    let mut in_subject = false;
    for line in raw.lines() {
        if in_subject && (line.starts_with(' ') || line.starts_with('\t')) {
            value.push_str(line);
        } else if let Some(v) = line.strip_prefix("Subject:") {
            in_subject = true;
            value.push_str(v);
        } else if in_subject {
            break;
        }
    }
    // Whitespace between two encoded-words is dropped; next to plain text it is kept.
    let mut out = String::new();
    let mut bytes = Vec::new();
    let mut prev_plain = false;
    for word in value.split_whitespace() {
        let lower = word.to_ascii_lowercase();
        if lower.starts_with("=?utf-8?b?") && word.ends_with("?=") {
            if prev_plain {
                out.push(' ');
            }
            bytes.extend(
                base64::engine::general_purpose::STANDARD.decode(&word[10..word.len() - 2])?,
            );
            prev_plain = false;
        } else {
            out.push_str(&String::from_utf8(std::mem::take(&mut bytes))?);
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
            prev_plain = true;
        }
    }
    out.push_str(&String::from_utf8(bytes)?);
    Ok(out)
}

/// A minimal SMTP server that keeps every message's text. Returns its port.
async fn smtp_sink(mails: Mails, stop: CancellationToken) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        loop {
            let (sock, _) = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => match a { Ok(a) => a, Err(_) => return },
            };
            let mails = mails.clone();
            tokio::spawn(async move {
                let _ = smtp_session(sock, mails).await;
            });
        }
    });
    Ok(port)
}

async fn smtp_session(sock: tokio::net::TcpStream, mails: Mails) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut lines = BufReader::new(r).lines();
    w.write_all(b"220 sink ESMTP\r\n").await?;
    while let Some(line) = lines.next_line().await? {
        let cmd = line.to_ascii_uppercase();
        if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
            w.write_all(b"250 sink\r\n").await?;
        } else if cmd.starts_with("DATA") {
            w.write_all(b"354 go ahead\r\n").await?;
            let mut msg = String::new();
            while let Some(l) = lines.next_line().await? {
                if l == "." {
                    break;
                }
                msg.push_str(&l);
                msg.push('\n');
            }
            if let Ok(mut m) = mails.lock() {
                m.push(msg);
            }
            w.write_all(b"250 queued\r\n").await?;
        } else if cmd.starts_with("QUIT") {
            w.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            w.write_all(b"250 ok\r\n").await?;
        }
    }
    Ok(())
}

tongban_testkit::on_both!(
    fan_in_reaches_each_role_once,
    subscribe_resumes_without_gaps_or_repeats,
    email_goes_out_once_in_the_applicants_language,
    webhook_is_signed_and_retried,
);
