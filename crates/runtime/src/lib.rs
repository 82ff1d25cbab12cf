//! The process plumbing every Tongban service shares, so that each service's own crate holds
//! only its API and its rules.
//!
//! - [`config`]: layered configuration (defaults → `tongban.toml` → `TONGBAN_*` environment).
//! - [`serve_grpc`]: one tonic server with gRPC health checking, server reflection and grpc-web,
//!   stopping gracefully when the shutdown token fires; every call gets a server span
//!   ([`tracing_layer`]).
//! - [`shutdown_on_signals`]: SIGINT/SIGTERM cancel a token; a second signal exits at once.
//! - [`ServiceBuilder`]: relay, consumer, background workers and the server of one service,
//!   started in the right order and joined on shutdown.
//! - [`Tasks`]: owner of background tasks (relay, consumers, timers), awaited on shutdown.

pub mod config;
pub mod dead_letters;
pub mod health;
pub mod metrics;
pub mod ports;
pub mod service;
pub mod status;
pub mod streams;
pub mod tracing_layer;

pub use service::ServiceBuilder;

use std::future::Future;

use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use tongban_auth::Authenticator;
pub use tongban_bus::Bus;

/// Everything a service needs from its process, already connected.
#[derive(Clone, Debug)]
pub struct Context {
    pub db: sea_orm::DatabaseConnection,
    pub bus: Bus,
    pub auth: Authenticator,
    /// Where `matters/`, `calendar/`, `platforms/`, `departments.toml`, `regions.toml` live.
    pub deploy_dir: std::path::PathBuf,
    /// Audit anchoring: where the signing key is and where checkpoints go; `None` takes none.
    pub audit: Option<tongban_audit::anchor::AnchorConfig>,
    /// Where this service serves `/metrics`; `None` when the process serves them once for
    /// every service in it (`tongban dev`) or not at all (tests).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// gRPC over TLS with this certificate and key; `None` is plain gRPC.
    pub tls: Option<config::TlsConfig>,
    /// Longest a graceful stop may take before open streams and tasks are cut off.
    pub shutdown_timeout: std::time::Duration,
    /// How long outbox, inbox and parked rows are kept.
    pub retention: config::Retention,
}

impl Context {
    /// Connects what `cfg` names: the database, the bus, and the token verifier.
    pub async fn connect(cfg: &config::ServiceConfig) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret as _;
        Ok(Self {
            db: tongban_storage::connect(cfg.database_url.expose_secret()).await?,
            bus: Bus::connect(cfg.bus_url.expose_secret(), &cfg.exchange).await?,
            auth: Authenticator::from_jwks_file(&cfg.jwks_file, &cfg.token_rules())?,
            deploy_dir: cfg.deploy_dir.clone(),
            audit: cfg.audit.clone(),
            metrics_listen: Some(cfg.metrics_listen),
            tls: cfg.tls.clone(),
            shutdown_timeout: std::time::Duration::from_secs(cfg.shutdown_timeout_secs),
            retention: cfg.retention,
        })
    }
}

/// Serves `routes` on `listener` with health (kept true by [`health::monitor`] when `probe` is
/// given, else SERVING), reflection of every Tongban API, grpc-web, and RPC metrics, until
/// `shutdown` is cancelled; calls still open `grace` after that (live streams) are cut off.
pub async fn serve_grpc(
    listener: TcpListener,
    routes: Routes,
    services: &[&str],
    probe: Option<health::Probe>,
    tls: Option<&config::TlsConfig>,
    grace: std::time::Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let names: Vec<String> = services.iter().map(|s| s.to_string()).collect();
    match probe {
        Some(probe) => {
            // The first answer is already a checked one: a caller that asks the moment the
            // port opens gets the truth, not a placeholder.
            let first = if probe.check().await.is_ok() {
                tonic_health::ServingStatus::Serving
            } else {
                tonic_health::ServingStatus::NotServing
            };
            for name in names.iter().map(String::as_str).chain([""]) {
                reporter.set_service_status(name, first).await;
            }
            tokio::spawn(health::monitor(
                reporter.clone(),
                names,
                probe,
                shutdown.clone(),
            ));
        }
        None => {
            for name in names.iter().map(String::as_str).chain([""]) {
                reporter
                    .set_service_status(name, tonic_health::ServingStatus::Serving)
                    .await;
            }
        }
    }
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tongban_proto::DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1();
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tongban_proto::DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha();
    let mut routes = routes.add_service(health);
    if let Ok(r) = reflection_v1 {
        routes = routes.add_service(r);
    }
    if let Ok(r) = reflection_v1alpha {
        routes = routes.add_service(r);
    }
    let reporter_on_stop = reporter.clone();
    let stop = shutdown.clone();
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(server_tls(tls)?)?;
    }
    let serving = server
        .accept_http1(true)
        .layer(tonic_web::GrpcWebLayer::new())
        // Inside grpc-web, so that it sees gRPC's own trailers for both kinds of caller.
        .layer(tracing_layer::GrpcTraceLayer)
        .layer(metrics::RpcMetricsLayer::new())
        .add_routes(routes)
        // The builder's TCP_NODELAY applies only to listeners it binds itself; on ours it is
        // set here. Without it a small answer waited for the client's delayed ACK: an idle
        // SubmitApplication took 46 ms at the caller for 5 ms of work.
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            async move {
                stop.cancelled().await;
                reporter_on_stop
                    .set_service_status("", tonic_health::ServingStatus::NotServing)
                    .await;
            },
        );
    // A graceful stop waits for every open call, and a live stream (WatchApplication,
    // Subscribe) never ends by itself: after `grace` the rest are cut off.
    let cut_off = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = serving => served?,
        () = cut_off => tracing::warn!(?grace, "calls still open after the shutdown grace period; closing them"),
    }
    Ok(())
}

/// The server identity in `tls`'s PEM files.
fn server_tls(tls: &config::TlsConfig) -> anyhow::Result<tonic::transport::ServerTlsConfig> {
    let read = |key: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| anyhow::anyhow!("{key} {}: {e}", path.display()))
    };
    let identity = tonic::transport::Identity::from_pem(
        read("tls.cert_file", &tls.cert_file)?,
        read("tls.key_file", &tls.key_file)?,
    );
    Ok(tonic::transport::ServerTlsConfig::new().identity(identity))
}

/// A server-streaming response fed by a task: `body` gets the sending half and runs until it
/// returns or the client goes away (a send fails, or `tx.closed()` resolves).
pub fn stream_from_task<T, F, Fut>(
    body: F,
) -> std::pin::Pin<Box<dyn futures::Stream<Item = T> + Send>>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(body(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// A token cancelled on the first SIGINT or SIGTERM; the second exits the process at once.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down (press Ctrl-C again to exit at once)");
        t.cancel();
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Owns a service's background tasks: each is spawned here and awaited by [`Tasks::join`], so no
/// task outlives the service that started it.
///
/// A task that ends (or panics) before `shutdown` is cancelled is recorded in
/// [`Tasks::stopped`], which health reports: a service whose relay or consumer died must not
/// say it is serving.
#[derive(Default)]
pub struct Tasks {
    set: JoinSet<()>,
    shutdown: CancellationToken,
    stopped: health::Stopped,
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Tasks that are expected to run until `shutdown`.
    pub fn until(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            ..Self::default()
        }
    }

    /// The tasks that stopped early.
    pub fn stopped(&self) -> health::Stopped {
        self.stopped.clone()
    }

    pub fn spawn(
        &mut self,
        name: impl Into<String>,
        fut: impl Future<Output = ()> + Send + 'static,
    ) {
        use futures::FutureExt as _;
        let name = name.into();
        let (shutdown, stopped) = (self.shutdown.clone(), self.stopped.clone());
        self.set.spawn(async move {
            let panicked = std::panic::AssertUnwindSafe(fut)
                .catch_unwind()
                .await
                .is_err();
            if panicked {
                tracing::error!(task = %name, "background task panicked");
                stopped.record(&name);
            } else if !shutdown.is_cancelled() {
                tracing::error!(task = %name, "background task stopped while the service runs");
                stopped.record(&name);
            } else {
                tracing::debug!(task = %name, "task finished");
            }
        });
    }

    /// Runs the task `make` returns, and starts a new one whenever it ends or panics before
    /// shutdown, with backoff (1 s doubling to 30 s; back to 1 s after a run of a minute or
    /// more). While it is down it is in [`Tasks::stopped`], so health says NOT_SERVING.
    pub fn supervise<F, Fut>(&mut self, name: impl Into<String>, make: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        use futures::FutureExt as _;
        let name = name.into();
        let (shutdown, stopped) = (self.shutdown.clone(), self.stopped.clone());
        self.set.spawn(async move {
            let backoff = tongban_types::Backoff::doubling(
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(30),
            );
            let mut failures = 0u32;
            loop {
                let started = tokio::time::Instant::now();
                let panicked = std::panic::AssertUnwindSafe(make())
                    .catch_unwind()
                    .await
                    .is_err();
                if shutdown.is_cancelled() {
                    break;
                }
                stopped.record(&name);
                if started.elapsed() >= std::time::Duration::from_secs(60) {
                    failures = 0;
                }
                failures = failures.saturating_add(1);
                let pause = backoff.delay(failures);
                tracing::error!(task = %name, panicked, ?pause, "background task stopped; restarting");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
                stopped.clear(&name);
            }
            tracing::debug!(task = %name, "task finished");
        });
    }

    /// Waits for every task to finish (they watch the same shutdown token).
    pub async fn join(mut self) {
        while let Some(res) = self.set.join_next().await {
            if let Err(e) = res
                && e.is_panic()
            {
                tracing::error!(error = %e, "background task panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    /// A task that dies is started again, reported stopped while it is down and no longer once
    /// it runs; at shutdown it is not restarted.
    #[tokio::test]
    async fn a_supervised_task_is_restarted_and_reported_while_down() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::until(shutdown.clone());
        let stopped = tasks.stopped();
        let starts = Arc::new(AtomicUsize::new(0));
        let (count, stop) = (starts.clone(), shutdown.clone());
        tasks.supervise("flaky", move || {
            let (count, stop) = (count.clone(), stop.clone());
            async move {
                // The first run ends at once, the second panics, the third runs until shutdown.
                match count.fetch_add(1, Ordering::SeqCst) {
                    0 => {}
                    1 => panic!("injected"),
                    _ => stop.cancelled().await,
                }
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(
            stopped.first().as_deref(),
            Some("flaky"),
            "down after the first run"
        );
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while starts.load(Ordering::SeqCst) < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not restarted twice"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(stopped.first(), None, "running again");
        shutdown.cancel();
        tasks.join().await;
        assert_eq!(
            starts.load(Ordering::SeqCst),
            3,
            "not restarted after shutdown"
        );
    }
}
