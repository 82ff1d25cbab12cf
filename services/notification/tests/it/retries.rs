//! Retries that outlast outages: e-mails and webhook calls keep their schedule in their rows
//! through an SMTP outage longer than the old quick retries lasted and through a restart, are
//! sent exactly once after recovery, give up after the configured window (or at once on a 5xx
//! refusal), and an admin lists and replays the dead rows.
//!
//! The SMTP sink and the HTTP receiver here can be switched off and on: off, the sink's port
//! refuses connections and the receiver answers 503.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering},
    },
    time::Duration,
};

use sea_orm::ConnectionTrait as _;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpSocket},
};
use tokio_util::sync::CancellationToken;
use tongban_auth::Role;
use tongban_notification::{NotificationOptions, RetryPolicy};
use tongban_proto::notification::{
    self as pb, notification_service_client::NotificationServiceClient,
};
use tongban_testkit::{Backend, Stopper, authed, eventually};
use tonic::{Code, transport::Channel};

use crate::common::{
    ZH_APPLICANT, fields, init_tracing, local_webhooks, options, publish_on, serving, submitted,
};

const WAIT: Duration = Duration::from_secs(30);
const UP: u8 = 0;
const OFF: u8 = 1;
const REJECT: u8 = 2;

/// An SMTP server on a fixed port: up (accepts every message), off (the port refuses
/// connections) or rejecting (550 for every recipient).
struct Sink {
    port: u16,
    mode: Arc<AtomicU8>,
    mails: Arc<Mutex<Vec<String>>>,
    changed: Arc<tokio::sync::Notify>,
    _stop: Stopper,
}

impl Sink {
    async fn start(initial: u8) -> anyhow::Result<Self> {
        // Below the ephemeral range, so no outgoing connection takes it while it is off.
        let port = tongban_testkit::free_ports(1)?[0];
        let sink = Sink {
            port,
            mode: Arc::new(AtomicU8::new(initial)),
            mails: Arc::default(),
            changed: Arc::default(),
            _stop: Stopper(CancellationToken::new()),
        };
        let (mode, mails, changed, stop) = (
            sink.mode.clone(),
            sink.mails.clone(),
            sink.changed.clone(),
            sink._stop.0.clone(),
        );
        tokio::spawn(async move {
            loop {
                let wake = changed.notified();
                if mode.load(Ordering::SeqCst) == OFF {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = wake => continue,
                    }
                }
                let Ok(listener) = bind_again(port) else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                // Serve until switched off: dropping the listener closes the port.
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        // A switch may come between two waits; look every few ms too.
                        _ = changed.notified() => {
                            if mode.load(Ordering::SeqCst) == OFF { break; }
                        }
                        _ = tokio::time::sleep(Duration::from_millis(20)) => {
                            if mode.load(Ordering::SeqCst) == OFF { break; }
                        }
                        a = listener.accept() => if let Ok((sock, _)) = a {
                            let reject = mode.load(Ordering::SeqCst) == REJECT;
                            tokio::spawn(session(sock, mails.clone(), reject));
                        },
                    }
                }
            }
        });
        // Up and rejecting sinks answer before the test goes on.
        if initial != OFF {
            eventually(WAIT, "the sink to listen", || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
            })
            .await?;
        }
        Ok(sink)
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    fn mails(&self) -> Vec<String> {
        self.mails.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

fn bind_again(port: u16) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(64)
}

async fn session(
    sock: tokio::net::TcpStream,
    mails: Arc<Mutex<Vec<String>>>,
    reject: bool,
) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut lines = BufReader::new(r).lines();
    w.write_all(b"220 sink ESMTP\r\n").await?;
    while let Some(line) = lines.next_line().await? {
        let cmd = line.to_ascii_uppercase();
        if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
            w.write_all(b"250 sink\r\n").await?;
        } else if cmd.starts_with("RCPT") && reject {
            w.write_all(b"550 5.1.1 no such mailbox\r\n").await?;
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

/// An HTTP receiver that answers 503 while down and 200 while up, counting both.
struct Hook {
    url: String,
    up: Arc<AtomicBool>,
    delivered: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl Hook {
    async fn start(up: bool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = (
            Arc::new(AtomicBool::new(up)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (up, delivered, refused) = state.clone();
        let app = axum::Router::new()
            .fallback(
                |axum::extract::State((up, delivered, refused)): axum::extract::State<(
                    Arc<AtomicBool>,
                    Arc<AtomicUsize>,
                    Arc<AtomicUsize>,
                )>| async move {
                    if up.load(Ordering::SeqCst) {
                        delivered.fetch_add(1, Ordering::SeqCst);
                        axum::http::StatusCode::OK
                    } else {
                        refused.fetch_add(1, Ordering::SeqCst);
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    }
                },
            )
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Hook {
            url: format!("http://{addr}/hook"),
            up,
            delivered,
            refused,
            _task: task,
        })
    }
}

/// A notification service that can be stopped and started again on the same database and
/// bus, with short retry delays and window `window`.
struct Node {
    service: tongban_testkit::Service,
    opts: NotificationOptions,
    client: NotificationServiceClient<Channel>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Node {
    async fn start(backend: Backend, smtp_port: u16, window: Duration) -> anyhow::Result<Self> {
        init_tracing();
        let retry = RetryPolicy {
            base: Duration::from_millis(200),
            cap: Duration::from_millis(800),
            max_attempts: 1000,
            window,
        };
        let opts = options(
            smtp_port,
            retry.clone(),
            retry,
            Duration::from_millis(100),
            local_webhooks()?,
        );
        // The first run stops on its own token, so that the service's database and bus
        // outlive it for the second.
        let stop = CancellationToken::new();
        let (first_opts, first_stop) = (opts.clone(), stop.clone());
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let service = tongban_testkit::start_service(backend, "notification", move |s| {
            let token = first_stop;
            async move {
                let r = tongban_notification::run_with(s.ctx, first_opts, s.listener, token).await;
                let _ = done_tx.send(());
                r
            }
        })
        .await?;
        let task = tokio::spawn(async move {
            let _ = done_rx.await;
        });
        let client = serving(service.channel.clone(), &service.keys).await?;
        Ok(Node {
            service,
            opts,
            client,
            stop,
            task: Some(task),
        })
    }

    async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            tokio::time::timeout(WAIT, t).await??;
        }
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        self.stop = self.service.shutdown().child_token();
        let (ctx, opts, token) = (
            self.service.ctx.clone(),
            self.opts.clone(),
            self.stop.clone(),
        );
        self.task = Some(tokio::spawn(async move {
            if let Err(e) = tongban_notification::run_with(ctx, opts, listener, token).await {
                eprintln!("notification stopped: {e:#}");
            }
        }));
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect_lazy();
        self.client = serving(channel, &self.service.keys).await?;
        Ok(())
    }

    fn admin(&self) -> String {
        self.service.keys.token(Role::Admin, None, None)
    }

    async fn publish(&self, e: &tongban_proto::events::Envelope) -> anyhow::Result<()> {
        publish_on(&self.service.bus, &[e]).await
    }

    /// One number from the database (`SELECT … AS n`); -1 for no row or NULL.
    async fn number(&self, sql: &str) -> i64 {
        let db = &self.service.db;
        db.query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql.to_string(),
        ))
        .await
        .ok()
        .flatten()
        .and_then(|r| r.try_get::<Option<i64>>("", "n").ok().flatten())
        .unwrap_or(-1)
    }

    async fn failed(
        &self,
        channel: pb::DeliveryChannel,
    ) -> anyhow::Result<Vec<pb::FailedDelivery>> {
        Ok(self
            .client
            .clone()
            .list_failed_deliveries(authed(
                pb::ListFailedDeliveriesRequest {
                    channel: channel as i32,
                    ..Default::default()
                },
                &self.admin(),
            ))
            .await?
            .into_inner()
            .deliveries)
    }

    async fn replay(
        &self,
        token: &str,
        channel: pb::DeliveryChannel,
        ids: &[String],
        all: bool,
    ) -> Result<pb::ReplayFailedDeliveriesResponse, tonic::Status> {
        Ok(self
            .client
            .clone()
            .replay_failed_deliveries(authed(
                pb::ReplayFailedDeliveriesRequest {
                    channel: channel as i32,
                    delivery_ids: ids.to_vec(),
                    all,
                },
                token,
            ))
            .await?
            .into_inner())
    }
}

async fn email_and_webhook_outlast_an_outage_and_a_restart(backend: Backend) -> anyhow::Result<()> {
    let sink = Sink::start(OFF).await?;
    let hook = Hook::start(false).await?;
    let mut node = Node::start(backend, sink.port, Duration::from_secs(120)).await?;
    register(&node, &hook).await?;
    node.publish(&submitted(ZH_APPLICANT, "linxiao@example.com", "zh-CN"))
        .await?;
    // The first failures are recorded in the row: attempts, when they began, the next try.
    let since = eventually(WAIT, "failed attempts recorded", || async {
        let n = node
            .number("SELECT CAST(MAX(attempts) AS BIGINT) AS n FROM emails")
            .await;
        (n >= 2).then_some(())?;
        let since = node
            .number("SELECT MAX(retry_since_ms) AS n FROM emails")
            .await;
        (since > 0).then_some(since)
    })
    .await?;
    node.restart().await?;
    let attempts_at_restart = node
        .number("SELECT CAST(MAX(attempts) AS BIGINT) AS n FROM emails")
        .await;
    assert!(attempts_at_restart >= 2);
    // Past the old limit (a few quick retries over about four seconds), still failing.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        node.number("SELECT COUNT(*) AS n FROM emails WHERE failed_ms IS NULL AND sent_ms IS NULL")
            .await,
        1,
        "still waiting, not given up"
    );
    let attempts = node
        .number("SELECT CAST(MAX(attempts) AS BIGINT) AS n FROM emails")
        .await;
    assert!(
        attempts > attempts_at_restart,
        "the restarted sender goes on counting: {attempts} after {attempts_at_restart}"
    );
    assert_eq!(
        node.number("SELECT MAX(retry_since_ms) AS n FROM emails")
            .await,
        since,
        "the window still starts at the first failure"
    );
    assert!(sink.mails().is_empty());
    let refused = hook.refused.load(Ordering::SeqCst);
    assert!(
        refused >= 3,
        "the receiver was called again and again: {refused}"
    );
    assert_eq!(
        node.number("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE failed_ms IS NULL AND delivered_ms IS NULL")
            .await,
        1,
        "the webhook call is still waiting, not given up"
    );

    sink.set(UP);
    hook.up.store(true, Ordering::SeqCst);
    eventually(WAIT, "the e-mail after recovery", || async {
        (!sink.mails().is_empty()).then_some(())
    })
    .await?;
    eventually(WAIT, "the e-mail recorded sent", || async {
        (node
            .number("SELECT COUNT(*) AS n FROM emails WHERE sent_ms IS NOT NULL")
            .await
            == 1)
            .then_some(())
    })
    .await?;
    eventually(WAIT, "the webhook call recorded delivered", || async {
        (node
            .number("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE delivered_ms IS NOT NULL")
            .await
            == 1)
            .then_some(())
    })
    .await?;
    // Exactly once: nothing more arrives.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.mails().len(), 1);
    assert_eq!(hook.delivered.load(Ordering::SeqCst), 1);
    assert!(node.failed(pb::DeliveryChannel::Email).await?.is_empty());
    assert!(node.failed(pb::DeliveryChannel::Webhook).await?.is_empty());
    Ok(())
}

/// Registers `hook` (as an admin, so it receives every application) for submissions.
async fn register(node: &Node, hook: &Hook) -> anyhow::Result<()> {
    node.client
        .clone()
        .register_webhook(authed(
            pb::RegisterWebhookRequest {
                url: hook.url.clone(),
                event_types: vec!["application.submitted".into()],
                request_id: String::new(),
            },
            &node.admin(),
        ))
        .await?;
    Ok(())
}

async fn dead_rows_are_listed_and_replayed(backend: Backend) -> anyhow::Result<()> {
    let sink = Sink::start(OFF).await?;
    let hook = Hook::start(false).await?;
    let node = Node::start(backend, sink.port, Duration::from_secs(2)).await?;
    let admin = node.admin();
    register(&node, &hook).await?;
    node.publish(&submitted(ZH_APPLICANT, "linxiao@example.com", "zh-CN"))
        .await?;
    // Both give up once their failures have lasted the window.
    let (mails, calls) = eventually(WAIT, "both rows dead", || async {
        let m = node.failed(pb::DeliveryChannel::Email).await.ok()?;
        let c = node.failed(pb::DeliveryChannel::Webhook).await.ok()?;
        (m.len() == 1 && c.len() == 1).then_some((m, c))
    })
    .await?;
    assert_eq!(mails[0].target, "linxiao@example.com");
    assert!(mails[0].attempts >= 2, "{:?}", mails[0]);
    assert!(!mails[0].last_error.is_empty());
    assert_eq!(calls[0].target, hook.url);
    assert!(!calls[0].event_id.is_empty());
    assert!(calls[0].last_error.contains("503"), "{:?}", calls[0]);
    assert!(hook.refused.load(Ordering::SeqCst) >= 2);

    // Admins only; the channel is required.
    let clerk = node
        .service
        .keys
        .token(Role::Clerk, Some("business_env"), None);
    let err = node
        .replay(&clerk, pb::DeliveryChannel::Email, &[], true)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a clerk replayed"))?;
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = node
        .replay(&admin, pb::DeliveryChannel::Unspecified, &[], true)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("no channel accepted"))?;
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(fields(&err), ["channel"]);
    let err = node
        .replay(&admin, pb::DeliveryChannel::Email, &[], false)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("nothing to replay accepted"))?;
    assert_eq!(fields(&err), ["delivery_ids"]);

    // Dead rows stay dead while nobody replays them.
    sink.set(UP);
    hook.up.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(sink.mails().is_empty());
    assert_eq!(hook.delivered.load(Ordering::SeqCst), 0);

    let r = node
        .replay(
            &admin,
            pb::DeliveryChannel::Email,
            &[mails[0].delivery_id.clone()],
            false,
        )
        .await?;
    assert_eq!(r.delivery_ids, [mails[0].delivery_id.clone()]);
    let r = node
        .replay(&admin, pb::DeliveryChannel::Webhook, &[], true)
        .await?;
    assert_eq!(r.replayed, 1);
    eventually(WAIT, "the replayed e-mail and call", || async {
        (sink.mails().len() == 1 && hook.delivered.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await?;
    eventually(WAIT, "both recorded done", || async {
        let sent = node
            .number("SELECT COUNT(*) AS n FROM emails WHERE sent_ms IS NOT NULL")
            .await;
        let delivered = node
            .number("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE delivered_ms IS NOT NULL")
            .await;
        (sent == 1 && delivered == 1).then_some(())
    })
    .await?;
    // Nothing is dead now, so a second replay finds nothing, and nothing is sent twice.
    let r = node
        .replay(&admin, pb::DeliveryChannel::Email, &[], true)
        .await?;
    assert_eq!(r.replayed, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.mails().len(), 1);
    assert_eq!(hook.delivered.load(Ordering::SeqCst), 1);
    // Each replay is on notification's chain, which verifies.
    let chain = tongban_notification::service::service_chain();
    let entries = tongban_audit::entries(&node.service.db, &chain).await?;
    let replays: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "deliveries.replay")
        .map(|e| e.target.as_str())
        .collect();
    assert_eq!(replays, ["email", "webhook"]);
    assert_eq!(tongban_audit::verify_chain(&chain, &entries), None);
    Ok(())
}

async fn a_refused_recipient_is_dead_at_once(backend: Backend) -> anyhow::Result<()> {
    let sink = Sink::start(REJECT).await?;
    let node = Node::start(backend, sink.port, Duration::from_secs(120)).await?;
    node.publish(&submitted(ZH_APPLICANT, "nobody@example.com", "zh-CN"))
        .await?;
    let dead = eventually(WAIT, "the refused e-mail dead", || async {
        let m = node.failed(pb::DeliveryChannel::Email).await.ok()?;
        (m.len() == 1).then_some(m)
    })
    .await?;
    assert_eq!(dead[0].attempts, 1, "no retries after a 5xx: {:?}", dead[0]);
    assert!(dead[0].last_error.contains("550"), "{:?}", dead[0]);
    assert!(sink.mails().is_empty());
    Ok(())
}

tongban_testkit::on_both!(
    email_and_webhook_outlast_an_outage_and_a_restart,
    dead_rows_are_listed_and_replayed,
    a_refused_recipient_is_dead_at_once,
);
