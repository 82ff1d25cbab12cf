//! Test support shared by the services' integration tests.
//!
//! Every test gets its own storage and its own bus names so that tests never depend on each
//! other or on order: [`Backend::Postgres`] creates a fresh database on the local PostgreSQL,
//! [`Backend::Sqlite`] a file in a temporary directory; RabbitMQ tests use a unique exchange
//! (queues are named after it). The servers must be running: tests that need them fail loudly
//! with the address they tried, they are never skipped.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;
use tongban_auth::{Issuer, Role, Secret, TokenRequest};
use tongban_bus::Bus;

/// PostgreSQL admin URL (env `TONGBAN_TEST_POSTGRES`, default the local trust-auth server).
pub fn postgres_admin_url() -> String {
    std::env::var("TONGBAN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// RabbitMQ URL (env `TONGBAN_TEST_AMQP`, default guest on localhost).
pub fn amqp_url() -> String {
    std::env::var("TONGBAN_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Tests make fresh queue names every run; the broker deletes them a minute after last use,
/// so a shared RabbitMQ does not fill up with quorum queues (each one a Raft group).
pub const TEST_QUEUE_EXPIRES_SECS: u64 = 60;

/// [`amqp_url`] with the test queue expiry, for service processes started by tests.
pub fn amqp_url_for_processes() -> String {
    let url = amqp_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}queue_expires_secs={TEST_QUEUE_EXPIRES_SECS}")
}

/// The repository's `deploy/` directory.
pub fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A throw-away database URL (and the directory keeping a SQLite file alive).
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend, prefix: &str) -> anyhow::Result<Self> {
        match backend {
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let url = tongban_storage::create_postgres_database(&admin, prefix)
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("PostgreSQL at {admin} is required for this test: {e}")
                    })?;
                Ok(Self { url, _dir: None })
            }
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join(format!("{prefix}.db")).display()
                );
                Ok(Self {
                    url,
                    _dir: Some(dir),
                })
            }
        }
    }
}

/// A unique exchange name for one test.
pub fn unique_exchange(prefix: &str) -> String {
    format!("test.{prefix}.{}", uuid::Uuid::now_v7().simple())
}

/// Connects to RabbitMQ on a unique exchange, failing loudly if the broker is not there.
pub async fn rabbit_bus(prefix: &str) -> anyhow::Result<(Bus, String)> {
    let exchange = unique_exchange(prefix);
    let url = amqp_url();
    let bus = tongban_bus::rabbit::RabbitBus::connect_with_expiry(
        &url,
        &exchange,
        Some(std::time::Duration::from_secs(TEST_QUEUE_EXPIRES_SECS)),
    )
    .await
    .map(Bus::Rabbit)
    .map_err(|e| anyhow::anyhow!("RabbitMQ at {url} is required for this test: {e}"))?;
    Ok((bus, exchange))
}

/// An embedded bus in a temporary directory.
pub async fn local_bus() -> anyhow::Result<(Bus, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bus.db").display());
    Ok((Bus::connect(&url, "tongban.events").await?, dir))
}

/// A fixed secret: tests need no secrecy, only agreement between signer and verifier.
fn test_secret_bytes() -> Vec<u8> {
    (0..32u8).map(|i| i ^ 0x5a).collect()
}

/// A signing secret and tokens for tests.
#[derive(Clone, Debug)]
pub struct Keys {
    pub secret: Secret,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new()
    }
}

impl Keys {
    pub fn new() -> Self {
        let bytes = test_secret_bytes();
        #[allow(clippy::expect_used)]
        let secret = Secret::from_bytes(bytes).expect("32 bytes is enough");
        Self { secret }
    }

    /// The secret as the hex text a `jwt.secret` file holds.
    pub fn secret_hex(&self) -> String {
        test_secret_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn authenticator(&self) -> tongban_auth::Authenticator {
        tongban_auth::Authenticator::new(&self.secret)
    }

    pub fn token(&self, role: Role, department: Option<&str>, credit_code: Option<&str>) -> String {
        let req = TokenRequest {
            subject: format!("{}-{}", role, department.or(credit_code).unwrap_or("test")),
            role,
            department: department.map(Into::into),
            region: None,
            credit_code: credit_code.map(Into::into),
            ttl: chrono::Duration::hours(1),
        };
        #[allow(clippy::expect_used)]
        Issuer::new(self.secret.clone())
            .issue(&req)
            .expect("test token")
    }
}

/// Adds `authorization: Bearer <token>` to a request.
pub fn authed<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    #[allow(clippy::expect_used)]
    let value = format!("Bearer {token}").parse().expect("ascii token");
    req.metadata_mut().insert("authorization", value);
    req
}

/// Stops a service when dropped.
pub struct Stopper(pub CancellationToken);

impl Drop for Stopper {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// The example application request shipped in `deploy/examples/`, as proto3 JSON text.
pub fn example_request_json() -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(
        deploy_dir().join("examples/env.eia.report_form.json"),
    )?)
}

/// Polls `check` every 20 ms until it returns `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(
    timeout: std::time::Duration,
    what: &str,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Runs each listed `async fn name(backend: Backend) -> anyhow::Result<()>` twice: as
/// `postgres::name` (PostgreSQL + RabbitMQ) and `sqlite::name` (SQLite + the embedded bus).
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() -> anyhow::Result<()> { super::$name($crate::Backend::Postgres).await })*
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() -> anyhow::Result<()> { super::$name($crate::Backend::Sqlite).await })*
        }
    };
}

/// `n` distinct free TCP ports on 127.0.0.1, bound and released at once. Another process may
/// take one before the caller binds it; for tests on one machine that is rare enough, and a
/// service that can bind port 0 itself should (see [`start_service`]).
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// A base port such that it and the next `len - 1` ports are free, for programs that take
/// consecutive ports (`tongban dev --base-port`).
pub fn free_port_block(len: u16) -> anyhow::Result<u16> {
    for _ in 0..200 {
        let base = free_ports(1)?[0];
        if base.checked_add(len).is_none_or(|end| end > 65000) {
            continue;
        }
        let all: Result<Vec<_>, _> = (0..len)
            .map(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)))
            .collect();
        if all.is_ok() {
            return Ok(base);
        }
    }
    anyhow::bail!("no block of {len} free ports")
}

/// A service started in this process for one test, on its own database and bus, listening
/// on a free port; it stops when this is dropped.
pub struct Service {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Signs tokens it accepts.
    pub keys: Keys,
    /// Its database, for tests that look at the tables.
    pub db: sea_orm::DatabaseConnection,
    /// Its bus, for tests that publish or watch events.
    pub bus: Bus,
    /// The context it was started with, for tests that build a second worker over it.
    pub ctx: tongban_runtime::Context,
    /// A connected channel (the server answered before `start_service` returned).
    pub channel: tonic::transport::Channel,
    stop: Stopper,
    _db: TestDb,
    _bus_dir: Option<tempfile::TempDir>,
}

impl Service {
    /// The URL of its database, for a second connection.
    pub fn database_url(&self) -> &str {
        &self._db.url
    }

    /// The token that stops the service (and everything it started).
    pub fn shutdown(&self) -> CancellationToken {
        self.stop.0.clone()
    }
}

/// What a test needs to start a service its own way: the context and the listener.
pub struct ServiceStart {
    pub ctx: tongban_runtime::Context,
    pub listener: tokio::net::TcpListener,
    pub shutdown: CancellationToken,
}

/// Starts a service for a test on `backend`: a fresh database named after `name`, a fresh
/// exchange (RabbitMQ) or embedded bus (SQLite), test keys, a listener on a free port; `run`
/// gets them and runs the service until the shutdown token fires. Returns once the server
/// accepts connections.
pub async fn start_service<F, Fut>(backend: Backend, name: &str, run: F) -> anyhow::Result<Service>
where
    F: FnOnce(ServiceStart) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let test_db = TestDb::new(backend, name).await?;
    let (bus, bus_dir) = match backend {
        Backend::Postgres => (rabbit_bus(name).await?.0, None),
        Backend::Sqlite => {
            let (b, d) = local_bus().await?;
            (b, Some(d))
        }
    };
    let keys = Keys::new();
    let db = tongban_storage::connect(&test_db.url).await?;
    let ctx = tongban_runtime::Context {
        db: db.clone(),
        bus: bus.clone(),
        auth: keys.authenticator(),
        deploy_dir: deploy_dir(),
        audit: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let fut = run(ServiceStart {
        ctx: ctx.clone(),
        listener,
        shutdown: shutdown.clone(),
    });
    let service = name.to_string();
    tokio::spawn(async move {
        if let Err(e) = fut.await {
            eprintln!("{service} stopped: {e:#}");
        }
    });
    let channel = eventually(
        std::time::Duration::from_secs(30),
        &format!("{name} to listen on {addr}"),
        || async move {
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .ok()?
                .connect()
                .await
                .ok()
        },
    )
    .await?;
    Ok(Service {
        addr,
        keys,
        db,
        bus,
        ctx,
        channel,
        stop: Stopper(shutdown),
        _db: test_db,
        _bus_dir: bus_dir,
    })
}
