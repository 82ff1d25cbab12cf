//! The dispatch service: every application, entered once, reaches every downstream platform
//! that needs it, exactly once in effect, with a ledger that proves it.
//!
//! # Mental model
//! ```text
//!  bus ──► consumer (inbox, one txn) ──► ledger rows: one per (platform, event), PENDING,
//!                                          holding the canonical document; idempotency key fixed
//!                                              │ Notify per platform, own retry times, 5 s poll
//!                                              ▼
//!          per-platform worker (bulkhead: own task, own semaphore, own circuit breaker)
//!          lease due rows (none behind an earlier pending or dead-lettered row of the same
//!          application) ─► map the document ─► POST (auth headers, Idempotency-Key) ─►
//!          record outcome + receipt + delivery.succeeded / delivery.dead_lettered (outbox)
//!          in one txn ─► relay ─► bus
//! ```
//! * **Order**: a platform sees one application's events in the order they happened (event
//!   ids are UUIDv7). A later row waits while an earlier one is pending or dead-lettered, until
//!   staff replay or discard it; on a `delivery = "latest_state"` platform a newer row
//!   supersedes the waiting older ones instead.
//! * **Mapped at every attempt**: the ledger keeps the mapping's input, so a replay after a
//!   mapping fix sends the fixed body; a mapping failure dead-letters the row with the platform
//!   file, the field and the value in its reason.
//! * **Exactly once in effect**: the inbox makes an event produce its rows once
//!   (`UNIQUE(platform_id, event_id)` again guards it); the idempotency key
//!   `<platform>-<event_id>` is the same on every attempt, so a retry after a lost answer or a
//!   crash is a duplicate the platform recognises, not a second record.
//! * **Leases, not long transactions**: a worker marks rows `locked_until` (timeout + margin)
//!   under its lease token and sends without holding a connection; a crashed worker's rows
//!   come back when the lease runs out, a stopped one releases its leases at once.
//! * **Retry**: failures back off per the platform's `[retry]` (exponential, jitter); after
//!   `max_attempts`, or at once for a 4xx other than 408/429, the row is DEAD_LETTERED. Staff
//!   retry or replay it over gRPC; `Reconcile` compares the ledger with what the platform
//!   holds, asked as its `[reconcile] method` allows (its listing, one key at a time, or
//!   only the receipts it gave), and can re-deliver what it lost.
//! * **Unknown application**: events that arrive before `application.submitted` are parked
//!   and fanned out when it arrives (see [`consumer`]).
//!
//! # Layout
//! - [`canonical`]: the canonical document (pure).
//! - [`ledger`]: tables `applications`, `parked_events`, `deliveries`,
//!   `application_departments`.
//! - [`consumer`]: events → ledger rows; [`parked`]: gives up events parked past the
//!   retention (30 days), logging each.
//! - [`worker`]: the per-platform delivery pipeline; [`circuit`]: the breaker state machine.
//! - [`service`] / [`grpc`]: the staff tools; [`error`]: one error → status mapping.

pub mod authz;
pub mod canonical;
pub mod circuit;
pub mod config;
pub mod consumer;
pub mod entity;
pub mod error;
pub mod grpc;
pub mod ledger;
mod metrics;
pub mod migration;
pub mod parked;
pub mod service;
pub mod worker;

use std::{path::Path, sync::Arc, time::Duration};

use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tongban_bus::QueueSpec;
use tongban_platform::PlatformConfig;
use tongban_proto::dispatch::dispatch_service_server::DispatchServiceServer;
use tongban_runtime::{Context, ServiceBuilder};
use tongban_types::event_type as et;

pub use service::Dispatch;

/// How often a worker looks for due rows nobody told it about: retries another replica
/// scheduled, leases of a crashed one that ran out. Its own retries and new rows wake it.
const POLL: Duration = Duration::from_secs(5);

/// The queue dispatch consumes: every event a platform may want about an application, and
/// the task events that say which departments are in its workflow (its scope).
/// [`run_with_platforms`] adds whatever else its platforms subscribe to.
pub fn queue_spec() -> QueueSpec {
    QueueSpec::new(
        "dispatch",
        &[
            et::APPLICATION_SUBMITTED,
            et::APPLICATION_SUPPLEMENTED,
            et::APPLICATION_WITHDRAWN,
            et::APPLICATION_APPROVED,
            et::APPLICATION_REJECTED,
            et::TASK_CREATED,
            et::TASK_MOVED,
        ],
    )
}

/// [`queue_spec`] plus every event type one of `platforms` wants.
pub fn queue_spec_for(platforms: &[PlatformConfig]) -> QueueSpec {
    let mut spec = queue_spec();
    for p in platforms {
        for t in &p.event_types {
            if !spec.bindings.contains(t) {
                spec.bindings.push(t.clone());
            }
        }
    }
    spec
}

/// Loads `<deploy_dir>/platforms` in production mode (a bad file, or a platform whose secret
/// is not set in the environment, stops start-up naming file, field and variable) and runs
/// [`run_with_platforms`]. `tongban dev` loads in development mode and calls
/// [`run_with_platforms`] itself.
pub async fn run(
    ctx: Context,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let dir = ctx.deploy_dir.join("platforms");
    let env = |name: &str| std::env::var(name).ok();
    let platforms =
        tongban_platform::load_dir_in(&dir, &env, tongban_platform::Mode::Production)
            .map_err(|e| anyhow::anyhow!("loading platforms from {}: {e}", dir.display()))?;
    run_with_platforms(ctx, platforms, listener, shutdown).await
}

/// Refuses `platforms` when a code table (`map` without `default`) lacks a value that a form
/// field of a matter in `<deploy_dir>/matters` allows, or the code of a matter it takes:
/// every such application would be dead-lettered at delivery. The error lists every gap, each
/// naming the platform file, the mapping field, the matter's form field and the value. Definitions published over the API
/// are checked by approval when they are published.
pub fn check_code_tables(platforms: &[PlatformConfig], deploy_dir: &Path) -> anyhow::Result<()> {
    let departments = tongban_matter::Departments::load(deploy_dir.join("departments.toml"))?;
    let matters = deploy_dir.join("matters");
    let forms: Vec<tongban_platform::MatterForm> =
        tongban_matter::load_dir(&matters, &departments)?
            .iter()
            .map(tongban_platform::MatterForm::from)
            .collect();
    tongban_platform::check_code_tables(platforms, &forms).map_err(|gaps| {
        anyhow::anyhow!(
            "platform code tables do not cover the matters in {}: {gaps}",
            matters.display()
        )
    })
}

/// Checks the code tables ([`check_code_tables`]), then migrates, starts the relay, the
/// consumer and one worker per platform, and serves gRPC on `listener` until `shutdown`.
/// Tests and `tongban dev` pass simulator-bound configs here.
pub async fn run_with_platforms(
    ctx: Context,
    platforms: Vec<PlatformConfig>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    check_code_tables(&platforms, &ctx.deploy_dir)?;
    migration::Migrator::up(&ctx.db, None).await?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .user_agent("tongban-dispatch")
        .build()?;
    let spec = queue_spec_for(&platforms);
    let runtimes: Arc<Vec<Arc<worker::PlatformRuntime>>> = Arc::new(
        platforms
            .into_iter()
            .map(|c| Arc::new(worker::PlatformRuntime::new(c)))
            .collect(),
    );

    let mut service = ServiceBuilder::new("dispatch", &ctx, &shutdown);
    let deliverer = worker::Deliverer {
        db: ctx.db.clone(),
        relay: service.relay(),
        http: http.clone(),
        poll: POLL,
    };
    for p in runtimes.iter() {
        let (p, d, stop) = (p.clone(), deliverer.clone(), shutdown.clone());
        service.supervise(&format!("worker-{}", p.config.id), move || {
            worker::run(p.clone(), d.clone(), stop.clone())
        });
    }
    let handler = Arc::new(consumer::Fanout::new(runtimes.clone()));
    service.consume(spec, 128, handler).await?;
    service.spawn(
        "prune-parked",
        parked::ParkedPruner::new(ctx.db.clone())
            .with_retention(chrono::Duration::days(i64::from(ctx.retention.parked_days)))
            .with_batch(ctx.retention.batch)
            .run(shutdown.clone()),
    );
    let (denials, writer) = tongban_audit::DenialLog::new(ctx.db.clone(), "dispatch");
    service.spawn("denials", writer.run(shutdown.clone()));
    let authz = authz::Authz::load(&ctx.deploy_dir)?.with_denials(denials);
    let dispatch = Arc::new(Dispatch::new(ctx.db.clone(), runtimes, http).with_authz(authz));
    let server = DispatchServiceServer::new(grpc::DispatchGrpc::new(dispatch));
    service.serve(listener, server).await
}
