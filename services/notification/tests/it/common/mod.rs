//! Shared set-up for the notification tests, which run over real gRPC against PostgreSQL +
//! RabbitMQ and against SQLite + the embedded bus: a started service with its own database and
//! bus, an SMTP sink, helpers to publish events and to read what came of them.
#![allow(dead_code, unreachable_pub)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine;
use prost::Message;
use sea_orm::ConnectionTrait;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;
use tongban_auth::Role;
use tongban_bus::Bus;
use tongban_notification::{NotificationOptions, RetryPolicy, SmtpSettings, WebhookPolicy};
use tongban_proto::{
    common,
    events::{self, Envelope, envelope::Payload},
    notification::{self as pb, notification_service_client::NotificationServiceClient},
};
use tongban_testkit::{Backend, Keys, Stopper, authed, eventually};
use tonic::transport::Channel;
use tonic_types::StatusExt;

pub const ZH_APPLICANT: &str = "91350100M000100Y43";
pub const EN_APPLICANT: &str = "91440300708461136T";
pub const WAIT: Duration = Duration::from_secs(30);

pub type Mails = Arc<Mutex<Vec<String>>>;

pub struct Harness {
    pub client: NotificationServiceClient<Channel>,
    pub keys: Keys,
    pub db: sea_orm::DatabaseConnection,
    pub bus: Bus,
    pub mails: Mails,
    _sink: Stopper,
    _service: tongban_testkit::Service,
}

/// Webhooks may use http and reach 127.0.0.1 (the test receivers), as in `tongban dev`.
pub fn local_webhooks() -> anyhow::Result<WebhookPolicy> {
    WebhookPolicy {
        allow_http: true,
        ..WebhookPolicy::default()
    }
    .allowing("127.0.0.1/32")
    .map_err(anyhow::Error::msg)
}

/// The service's options for a test: mail to the sink on `smtp_port`, the given retries.
pub fn options(
    smtp_port: u16,
    webhook_retry: RetryPolicy,
    email_retry: RetryPolicy,
    poll: Duration,
    webhook_policy: WebhookPolicy,
) -> NotificationOptions {
    NotificationOptions {
        smtp: Some(SmtpSettings::relay(
            "127.0.0.1",
            smtp_port,
            "Tongban <noreply@tongban.test>",
        )),
        webhook_retry,
        email_retry,
        poll,
        webhook_policy,
        subscribe_streams_per_caller: tongban_notification::DEFAULT_STREAMS_PER_CALLER,
    }
}

/// Test logs, filtered by `RUST_LOG`.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The client once the service answers an RPC: the listener accepts before the service runs,
/// and the queue is declared before serving starts, so nothing published from then on is lost.
pub async fn serving(
    channel: Channel,
    keys: &Keys,
) -> anyhow::Result<NotificationServiceClient<Channel>> {
    let admin = keys.token(Role::Admin, None, None);
    eventually(WAIT, "notification to serve", || {
        let mut c = NotificationServiceClient::new(channel.clone());
        let admin = admin.clone();
        async move {
            c.list_notifications(authed(pb::ListNotificationsRequest::default(), &admin))
                .await
                .ok()?;
            Some(c)
        }
    })
    .await
}

/// Publishes `events` on `bus` as their producers would.
pub async fn publish_on(bus: &Bus, events: &[&Envelope]) -> anyhow::Result<()> {
    let msgs: Vec<_> = events
        .iter()
        .map(|e| tongban_bus::OutgoingMessage {
            event_id: e.event_id.clone(),
            routing_key: e.r#type.clone(),
            payload: e.encode_to_vec(),
            traceparent: None,
        })
        .collect();
    bus.publish_batch(&msgs).await?;
    Ok(())
}

impl Harness {
    /// A service whose webhooks may use http and reach 127.0.0.1 (the test receivers), as in
    /// `tongban dev`.
    pub async fn start(backend: Backend) -> anyhow::Result<Self> {
        Self::start_with(backend, local_webhooks()?).await
    }

    pub async fn start_with(
        backend: Backend,
        webhook_policy: WebhookPolicy,
    ) -> anyhow::Result<Self> {
        init_tracing();
        // The SMTP sink outlives nothing: it stops with the harness.
        let sink_stop = CancellationToken::new();
        let mails: Mails = Arc::default();
        let smtp_port = smtp_sink(mails.clone(), sink_stop.clone()).await?;
        let opts = options(
            smtp_port,
            RetryPolicy {
                base: Duration::from_millis(100),
                cap: Duration::from_secs(1),
                max_attempts: 5,
                window: Duration::from_secs(60),
            },
            RetryPolicy::default(),
            Duration::from_millis(200),
            webhook_policy,
        );
        let service = tongban_testkit::start_service(backend, "notification", |s| {
            tongban_notification::run_with(s.ctx, opts, s.listener, s.shutdown)
        })
        .await?;
        let client = serving(service.channel.clone(), &service.keys).await?;
        Ok(Self {
            client,
            keys: service.keys.clone(),
            db: service.db.clone(),
            bus: service.bus.clone(),
            mails,
            _sink: Stopper(sink_stop),
            _service: service,
        })
    }

    pub async fn publish(&self, events: &[&Envelope]) -> anyhow::Result<()> {
        publish_on(&self.bus, events).await
    }

    pub async fn list(&self, token: &str) -> anyhow::Result<Vec<pb::Notification>> {
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
    pub async fn kinds(&self, token: &str, n: usize) -> anyhow::Result<Vec<String>> {
        eventually(WAIT, &format!("{n} notifications"), || async {
            let l = self.list(token).await.ok()?;
            (l.len() >= n).then(|| l.iter().rev().map(|x| x.kind.clone()).collect())
        })
        .await
    }

    pub async fn count(&self, sql: &str) -> i64 {
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

pub fn submitted(credit_code: &str, email: &str, locale: &str) -> Envelope {
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

pub fn task_event(app: &str, task: &str, payload: fn(String) -> Payload) -> Envelope {
    tongban_outbox::new_envelope("approval", app, payload(task.to_string()))
}

/// The `ErrorInfo` reason of a status (the catalogue in `tongban.common.v1.ErrorReason`).
pub fn reason(status: &tonic::Status) -> String {
    let info = status.get_details_error_info();
    assert_eq!(
        info.as_ref().map(|i| i.domain.as_str()),
        Some("tongban.gov")
    );
    info.map(|i| i.reason).unwrap_or_default()
}

pub fn fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The decoded `Subject:` of a raw message (RFC 2047 base64 encoded-words, possibly folded).
pub fn subject(raw: &str) -> anyhow::Result<String> {
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
pub async fn smtp_sink(mails: Mails, stop: CancellationToken) -> anyhow::Result<u16> {
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
