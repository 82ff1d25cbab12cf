//! Test support shared by the services' integration tests.
//!
//! Every test gets its own storage and its own bus names so that tests never depend on each
//! other or on order: [`Backend::Postgres`] creates a fresh database on the local PostgreSQL,
//! [`Backend::Sqlite`] a file in a temporary directory; RabbitMQ tests use a unique exchange
//! (queues are named after it). The servers must be running: tests that need them fail loudly
//! with the address they tried, they are never skipped.

pub mod broker;
pub mod order;
pub mod postgres;
pub mod proxy;
pub mod tls;

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;
use tongban_auth::{Issuer, Jwks, Role, SigningKey, TokenRequest, TokenRules};
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

/// The fixed seed of the test signing key: tests need no secrecy, only agreement between
/// signer and verifier (and the same kid every run).
const TEST_KEY_SEED: [u8; 32] = *b"tongban test key, never for prod";

/// An Ed25519 signing key, its JWK Set, and tokens for tests.
#[derive(Clone, Debug)]
pub struct Keys {
    /// The issuer's key (fixed seed).
    pub key: SigningKey,
    /// The rules tokens are issued and verified under (the defaults).
    pub rules: TokenRules,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new()
    }
}

impl Keys {
    pub fn new() -> Self {
        Self::from_seed(&TEST_KEY_SEED)
    }

    /// Another fixed key: for "signed by someone else" tests, or a second key in a rotation.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        #[allow(clippy::expect_used)]
        let key = SigningKey::from_seed(seed).expect("any 32 bytes are an Ed25519 seed");
        Self {
            key,
            rules: TokenRules::default(),
        }
    }

    /// The key id the tokens carry.
    pub fn kid(&self) -> &str {
        self.key.kid()
    }

    /// The key set services verify with.
    pub fn jwks(&self) -> Jwks {
        Jwks::new(vec![self.key.public_jwk()])
    }

    /// The key set as the text of a `jwks.json` file.
    pub fn jwks_json(&self) -> String {
        self.jwks().to_json()
    }

    /// Writes `jwks.json` into `dir` (for service processes a test starts) and returns its path.
    pub fn write_jwks(&self, dir: &std::path::Path) -> anyhow::Result<PathBuf> {
        let path = dir.join(tongban_auth::keys::JWKS_FILE);
        std::fs::write(&path, self.jwks_json())?;
        Ok(path)
    }

    /// Writes the private key (PKCS#8 PEM, as `tongban keys generate` does) to `path`.
    pub fn write_private_key(&self, path: &std::path::Path) -> anyhow::Result<()> {
        std::fs::write(path, self.key.to_pem())?;
        Ok(())
    }

    pub fn authenticator(&self) -> tongban_auth::Authenticator {
        tongban_auth::Authenticator::new(&self.jwks(), &self.rules)
    }

    pub fn issuer(&self) -> Issuer {
        Issuer::new(self.key.clone()).with_rules(self.rules.clone())
    }

    /// A one-hour token for `role`. Panics when the issuer refuses (e.g. a clerk without a
    /// department): use [`Keys::try_token`] or [`Keys::sign_claims`] to test refusals.
    pub fn token(&self, role: Role, department: Option<&str>, credit_code: Option<&str>) -> String {
        #[allow(clippy::expect_used)]
        self.try_token(role, department, credit_code)
            .expect("test token")
    }

    /// Like [`Keys::token`], returning the issuer's refusal.
    pub fn try_token(
        &self,
        role: Role,
        department: Option<&str>,
        credit_code: Option<&str>,
    ) -> Result<String, tongban_auth::AuthError> {
        self.issuer().issue(&TokenRequest {
            subject: format!("{}-{}", role, department.or(credit_code).unwrap_or("test")),
            role,
            department: department.map(Into::into),
            region: None,
            credit_code: credit_code.map(Into::into),
            ttl: chrono::Duration::hours(1),
        })
    }

    /// Signs any claims (a JSON object) with this key and its kid, unchecked: for tokens the
    /// issuer refuses to make. Claims left out are left out of the token.
    pub fn sign_claims(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid()});
        self.sign_raw(&header, claims)
    }

    /// Signs any header and claims with this key, unchecked (e.g. a foreign `kid` or `alg`).
    pub fn sign_raw(&self, header: &serde_json::Value, claims: &serde_json::Value) -> String {
        #[allow(clippy::expect_used)]
        self.key
            .sign_unchecked(&header.to_string(), &claims.to_string())
            .expect("the test key signs")
    }

    /// Claims of a valid one-hour token for `role`, to edit before [`Keys::sign_claims`].
    pub fn claims(&self, role: Role, subject: &str) -> serde_json::Value {
        let now = chrono::Utc::now().timestamp();
        serde_json::json!({
            "sub": subject, "role": role.as_str(),
            "iat": now, "exp": now + 3600,
            "iss": self.rules.issuer, "aud": self.rules.audience,
        })
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

/// Waits until `service`'s audit chain holds `expected` refused attempts (they are written in
/// the background), then checks that there are no more, that each names its actor, and that
/// every chain of `db` still verifies. Returns the refusals, oldest first.
pub async fn refusals_recorded(
    db: &sea_orm::DatabaseConnection,
    service: &str,
    expected: usize,
) -> anyhow::Result<Vec<tongban_audit::Entry>> {
    let recorded = eventually(
        std::time::Duration::from_secs(10),
        "every refusal recorded",
        || async {
            let r = tongban_audit::refusals(db, service).await.ok()?;
            (r.len() >= expected).then_some(r)
        },
    )
    .await?;
    anyhow::ensure!(
        recorded.len() == expected,
        "{} refusals recorded, {expected} expected: {recorded:#?}",
        recorded.len()
    );
    anyhow::ensure!(
        recorded
            .iter()
            .all(|e| !e.actor.subject.is_empty() && !e.actor.role.is_empty()),
        "a refusal without its actor: {recorded:#?}"
    );
    let report = tongban_audit::verify::verify(db, &[], &[], None).await?;
    anyhow::ensure!(report.is_clean(), "{report:?}");
    Ok(recorded)
}

/// The `task.created` events approval would publish for `application_id`, one per
/// (department, office).
pub fn tasks_created(
    application_id: &str,
    tasks: &[(&str, &str)],
) -> Vec<tongban_proto::events::Envelope> {
    use tongban_proto::events::{TaskCreated, envelope::Payload};
    tasks
        .iter()
        .map(|(department, office)| {
            tongban_outbox::new_envelope(
                "approval",
                application_id,
                Payload::TaskCreated(TaskCreated {
                    task_id: tongban_types::new_id(),
                    department: department.to_string(),
                    office: office.to_string(),
                    ..Default::default()
                }),
            )
        })
        .collect()
}

/// Waits until `db` records every department and office of `tasks` (empty ones aside) as
/// involved in `application_id` (see `tongban_involved`).
pub async fn involved_recorded(
    db: &sea_orm::DatabaseConnection,
    application_id: &str,
    tasks: &[(&str, &str)],
) -> anyhow::Result<()> {
    use tongban_involved::Involved;
    let wanted: Vec<&str> = tasks
        .iter()
        .flat_map(|(d, o)| [*d, *o])
        .filter(|d| !d.is_empty())
        .collect();
    eventually(
        std::time::Duration::from_secs(30),
        "task departments recorded",
        || async {
            let have = db.departments_of(application_id).await.ok()?;
            wanted
                .iter()
                .all(|w| have.iter().any(|h| h == w))
                .then_some(())
        },
    )
    .await
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

/// `n` distinct free TCP ports on 127.0.0.1 ([`tongban_runtime::ports`]), bound and released
/// at once. Another test may still take one before the caller binds it; a service that can
/// bind port 0 itself should (see [`start_service`]).
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    tongban_runtime::ports::numbers(&tongban_runtime::ports::free(n)?)
}

/// A base port such that it and the next `len - 1` ports are free, for programs that take
/// consecutive ports (`tongban dev --base-port`).
pub fn free_port_block(len: u16) -> anyhow::Result<u16> {
    Ok(tongban_runtime::ports::free_block(usize::from(len))?.0)
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
        metrics_listen: None,
        tls: None,
        shutdown_timeout: tongban_runtime::config::DEFAULT_SHUTDOWN_TIMEOUT,
        retention: Default::default(),
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
