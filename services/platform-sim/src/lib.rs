//! Local simulators of Tongban's downstream government platforms.
//!
//! Each configured platform (the same `deploy/platforms/*.toml` files dispatch reads) is served
//! on its endpoint's port and path. A simulator checks credentials exactly as the platform
//! expects ([`tongban_platform::AuthConfig::verify`]), requires an `Idempotency-Key`, keeps what
//! it received (in memory, optionally mirrored to JSON lines), answers duplicates without
//! storing twice, and can be told at run time to be slow, fail, drain slowly or go down. See
//! [`routes`] for the HTTP surface.
//!
//! # Layout
//! * [`serve`] binds every listener first (so a port clash fails before anything runs), then
//!   spawns one axum server per listener; the returned [`SimHandle`] owns those tasks.
//! * [`routes`]: handlers and fault knobs; [`store`]: what a platform holds.
//!
//! # In-process use
//! ```no_run
//! # async fn demo(platforms: Vec<tongban_platform::PlatformConfig>) -> Result<(), tongban_platform_sim::SimError> {
//! use tongban_platform_sim::{SimOptions, serve};
//! let opts = SimOptions::default().all_ports_free(&platforms);
//! let sim = serve(platforms, opts, std::future::pending()).await?;
//! let configs = sim.client_configs(); // same platforms, endpoints on the bound ports
//! # let _ = configs;
//! sim.shutdown().await
//! # }
//! ```

pub mod credit;
pub mod routes;
pub mod store;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tongban_platform::PlatformConfig;

use crate::routes::{Faults, PlatformState};
use crate::store::Store;

/// How to run the simulators.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Address to listen on (default 127.0.0.1).
    pub bind: IpAddr,
    /// Added to every endpoint port not overridden in `ports`.
    pub port_offset: u16,
    /// Port per platform id, overriding the endpoint's; 0 picks a free port.
    pub ports: HashMap<String, u16>,
    /// Mirror received deliveries to `<dir>/<id>.jsonl` and reload them on start.
    pub data_dir: Option<PathBuf>,
    /// Refuse HMAC timestamps further than this from the simulator's clock (`None`: no check).
    pub max_clock_skew: Option<Duration>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_offset: 0,
            ports: HashMap::new(),
            data_dir: None,
            max_clock_skew: Some(Duration::from_secs(300)),
        }
    }
}

impl SimOptions {
    /// Every platform on a free port (tests).
    pub fn all_ports_free(mut self, platforms: &[PlatformConfig]) -> Self {
        for p in platforms {
            self.ports.insert(p.id.clone(), 0);
        }
        self
    }
}

/// Why the simulators could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// No platform to serve.
    #[error("no platforms to simulate")]
    NoPlatforms,
    /// `--only` or a port override names a platform that is not configured.
    #[error("unknown platform `{0}`")]
    UnknownPlatform(String),
    /// Endpoint port plus offset does not fit.
    #[error("platform `{platform}`: port {port} + offset {offset} exceeds 65535")]
    PortOverflow {
        /// Platform id.
        platform: String,
        /// Endpoint port.
        port: u16,
        /// Offset.
        offset: u16,
    },
    /// Two platforms on one port with the same path.
    #[error("platforms `{first}` and `{second}` both use path `{path}` on port {port}")]
    PathConflict {
        /// Port.
        port: u16,
        /// Path.
        path: String,
        /// One platform.
        first: String,
        /// The other.
        second: String,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr} for {platforms}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Platform ids on that listener.
        platforms: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The data file cannot be opened, read or repaired.
    #[error("{file}: {source}")]
    Data {
        /// File.
        file: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A data file line is not a record (and is not a torn last line).
    #[error("{file}: line {line} is not a stored record")]
    Corrupt {
        /// File.
        file: String,
        /// 1-based line.
        line: usize,
    },
    /// A server stopped with an I/O error.
    #[error("server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// A server task panicked or was cancelled.
    #[error("server task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// One running simulator.
#[derive(Debug, Clone)]
pub struct SimPlatform {
    /// Platform id.
    pub id: String,
    /// Chinese name.
    pub name: String,
    /// Bound address.
    pub addr: SocketAddr,
    /// Delivery URL on the bound address.
    pub url: String,
    /// The config, with its endpoint moved to `url`.
    pub config: PlatformConfig,
}

/// Running simulators. Dropping the handle aborts them; [`SimHandle::shutdown`] drains them.
#[derive(Debug)]
pub struct SimHandle {
    platforms: Vec<SimPlatform>,
    stop: Arc<watch::Sender<bool>>,
    tasks: JoinSet<Result<(), SimError>>,
}

impl SimHandle {
    /// The running simulators, in the order given to [`serve`].
    pub fn platforms(&self) -> &[SimPlatform] {
        &self.platforms
    }

    /// Bound address of platform `id`.
    pub fn addr(&self, id: &str) -> Option<SocketAddr> {
        self.platform(id).map(|p| p.addr)
    }

    /// Delivery URL of platform `id` on its bound address.
    pub fn url(&self, id: &str) -> Option<&str> {
        self.platform(id).map(|p| p.url.as_str())
    }

    /// Running simulator `id`.
    pub fn platform(&self, id: &str) -> Option<&SimPlatform> {
        self.platforms.iter().find(|p| p.id == id)
    }

    /// The platform configs with endpoints (and query endpoints) pointing at the bound ports:
    /// hand these to a dispatcher under test.
    pub fn client_configs(&self) -> Vec<PlatformConfig> {
        self.platforms.iter().map(|p| p.config.clone()).collect()
    }

    /// Starts a graceful stop (idempotent); [`SimHandle::wait`] for it to finish.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Waits until the servers have stopped (after the shutdown future given to [`serve`]
    /// completes, or [`SimHandle::stop`]). Returns the first server error, if any.
    pub async fn wait(mut self) -> Result<(), SimError> {
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            let result = joined.map_err(SimError::Task).and_then(|r| r);
            if let Err(e) = result
                && first_error.is_none()
            {
                // Whatever failed, the others must not keep running unowned.
                self.stop.send_replace(true);
                first_error = Some(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// [`SimHandle::stop`] then [`SimHandle::wait`].
    pub async fn shutdown(self) -> Result<(), SimError> {
        self.stop();
        self.wait().await
    }
}

/// Keeps only the platforms named in `only` (all if empty); unknown names are an error.
pub fn select_platforms(
    platforms: Vec<PlatformConfig>,
    only: &[String],
) -> Result<Vec<PlatformConfig>, SimError> {
    if let Some(unknown) = only
        .iter()
        .find(|id| !platforms.iter().any(|p| &p.id == *id))
    {
        return Err(SimError::UnknownPlatform(unknown.clone()));
    }
    Ok(platforms
        .into_iter()
        .filter(|p| only.is_empty() || only.contains(&p.id))
        .collect())
}

struct Listener {
    /// Requested port (0: its own free port, never shared).
    port: u16,
    members: Vec<(PlatformConfig, Arc<PlatformState>)>,
}

/// Starts one simulator per platform and returns once every listener is bound. The servers run
/// until `shutdown` completes or the handle is told to stop; then in-flight requests finish
/// (or, if waiting on a fault delay, are answered 503) and the tasks end.
pub async fn serve(
    platforms: Vec<PlatformConfig>,
    opts: SimOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<SimHandle, SimError> {
    if platforms.is_empty() {
        return Err(SimError::NoPlatforms);
    }
    if let Some(unknown) = opts
        .ports
        .keys()
        .find(|id| !platforms.iter().any(|p| &p.id == *id))
    {
        return Err(SimError::UnknownPlatform(unknown.clone()));
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = Arc::new(stop_tx);

    // Group platforms by port: several may share one listener on different paths.
    let mut listeners: Vec<Listener> = Vec::new();
    for config in platforms {
        let port = match opts.ports.get(&config.id) {
            Some(port) => *port,
            None => config
                .endpoint_url
                .port
                .checked_add(opts.port_offset)
                .ok_or_else(|| SimError::PortOverflow {
                    platform: config.id.clone(),
                    port: config.endpoint_url.port,
                    offset: opts.port_offset,
                })?,
        };
        let store = match &opts.data_dir {
            Some(dir) => Store::open(dir, &config.id)?,
            None => Store::in_memory(&config.id),
        };
        let state = Arc::new(PlatformState {
            id: config.id.clone(),
            auth: config.auth.clone(),
            max_skew: opts.max_clock_skew,
            receipt_pointer: config.receipt.clone(),
            store: Mutex::new(store),
            faults: Mutex::new(Faults::default()),
            drain_next: Mutex::new(tokio::time::Instant::now()),
            stopping: stop_rx.clone(),
        });
        let path = normalized_path(&config.endpoint_url.path);
        match listeners.iter_mut().find(|l| port != 0 && l.port == port) {
            Some(listener) => {
                if let Some((other, _)) = listener
                    .members
                    .iter()
                    .find(|(c, _)| normalized_path(&c.endpoint_url.path) == path)
                {
                    return Err(SimError::PathConflict {
                        port,
                        path,
                        first: other.id.clone(),
                        second: config.id.clone(),
                    });
                }
                listener.members.push((config, state));
            }
            None => listeners.push(Listener {
                port,
                members: vec![(config, state)],
            }),
        }
    }

    // Bind everything before spawning anything: a clash leaves nothing running.
    let mut bound = Vec::with_capacity(listeners.len());
    for listener in listeners {
        let addr = SocketAddr::new(opts.bind, listener.port);
        let ids = || {
            listener
                .members
                .iter()
                .map(|(c, _)| c.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind {
                addr,
                platforms: ids(),
                source,
            })?;
        let local = tcp.local_addr().map_err(|source| SimError::Bind {
            addr,
            platforms: ids(),
            source,
        })?;
        bound.push((tcp, local, listener.members));
    }

    let mut tasks = JoinSet::new();
    let mut running = Vec::new();
    for (tcp, local, members) in bound {
        let client_addr = client_addr(local);
        let mut router = routes::health_router(members.iter().map(|(c, _)| c.id.clone()).collect());
        for (config, state) in members {
            router = router.merge(routes::platform_router(state, &config.endpoint_url.path));
            let url = format!("http://{client_addr}{}", config.endpoint_url.path);
            let moved = config
                .with_endpoint(&url)
                .unwrap_or_else(|_| config.clone());
            tracing::info!(platform = %config.id, %url, "simulator listening");
            running.push(SimPlatform {
                id: config.id.clone(),
                name: config.name.clone(),
                addr: local,
                url,
                config: moved,
            });
        }
        let router: Router = router.fallback(routes::not_found);
        let mut stopping = stop_rx.clone();
        tasks.spawn(async move {
            // Answers leave at once, as a real platform's gateway sends them, rather than
            // after the caller's delayed ACK.
            let tcp = axum::serve::ListenerExt::tap_io(tcp, |s| {
                if let Err(e) = s.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY not set");
                }
            });
            axum::serve(tcp, router)
                .with_graceful_shutdown(async move {
                    let _ = stopping.wait_for(|s| *s).await;
                })
                .await
                .map_err(SimError::Serve)
        });
    }

    // Forward the caller's shutdown future to the stop signal; ends either way.
    let forward = Arc::clone(&stop);
    let mut stopped = stop_rx;
    tasks.spawn(async move {
        tokio::select! {
            () = shutdown => { forward.send_replace(true); }
            _ = stopped.wait_for(|s| *s) => {}
        }
        Ok(())
    });

    Ok(SimHandle {
        platforms: running,
        stop,
        tasks,
    })
}

fn normalized_path(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Where a client should connect for a listener bound to `local` (an unspecified bind address
/// is reached over loopback).
fn client_addr(local: SocketAddr) -> SocketAddr {
    match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), local.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), local.port())
        }
        _ => local,
    }
}
