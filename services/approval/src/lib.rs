//! The approval service: runs every application through its matter's workflow.
//!
//! # Mental model
//! `application.submitted` starts an *instance*, pinned to the matter definition version the
//! application names, with a *plan* (stages of parallel department tasks) computed once from
//! the application's facts. Clerks claim and decide tasks; when every task of a stage is
//! approved the next planned stage opens; after the last one the application is approved (or,
//! for an enterprise request, answered and then rated). Every change appends to a hash-chained
//! audit trail and enqueues its events in the same transaction (outbox).
//!
//! # Layout
//! - [`workflow`]: the state machines (instance and task), pure; they say what to do.
//!   [`model`] names their states and how they are stored and sent.
//! - [`engine`]: the [`Approval`] engine: instance lifecycle (submitted, supplemented,
//!   withdrawn, rated) and the command executor, each change one transaction.
//! - [`tasks`]: the staff task API (claim, decide, delegate, list); [`views`]: workflow,
//!   audit trail and definitions; [`publishing`]: publishing a definition.
//! - [`timers`]: due-soon, overdue and escalation, once each, safe with several replicas.
//! - [`ledger`]: the supervision ledger (挂账督办), read off the tasks and instances;
//!   [`rating`]: the applicant's rating of every finished application (好差评).
//! - [`repository`] (one trait per table) over [`entity`] (sea-orm entities), schema in
//!   [`migration`]; [`audit`]: the hash chain; [`definitions`]: the registry of
//!   workflow definitions, refreshed from its table on every replica.
//! - [`consumer`]: submitted / supplemented / withdrawn events → [`engine`]; a supplement or
//!   withdrawal that overtakes its submission is parked until it arrives.
//! - [`grpc`]: thin `ApprovalService` handlers that parse [`requests`] at the edge and
//!   [`convert`] results; [`error`]: the one mapping to gRPC codes.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod audit;
mod authz;
pub mod config;
pub mod consumer;
pub mod convert;
pub mod definitions;
pub mod engine;
pub mod entity;
pub mod error;
pub mod grpc;
pub mod ledger;
pub mod metrics;
pub mod migration;
pub mod model;
pub mod publishing;
pub mod rating;
pub mod repository;
pub mod requests;
pub mod tasks;
pub mod timers;
pub mod views;
pub mod workflow;

use std::sync::Arc;

use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tongban_bus::QueueSpec;
use tongban_proto::approval::approval_service_server::ApprovalServiceServer;
use tongban_runtime::{Context, ServiceBuilder};
use tongban_types::event_type as et;

pub use engine::{Approval, Clock, SystemClock};

/// The queue approval consumes, and the keys it needs.
pub fn queue_spec() -> QueueSpec {
    QueueSpec::new(
        "approval",
        &[
            et::APPLICATION_SUBMITTED,
            et::APPLICATION_SUPPLEMENTED,
            et::APPLICATION_WITHDRAWN,
        ],
    )
}

/// Migrates and loads definitions, the calendar and the platforms' mappings: an engine over
/// `ctx.db`, without any background work. `run` uses it; tests use it to drive a second timer worker.
pub async fn build(
    ctx: &Context,
    relay: tongban_outbox::RelayHandle,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<Approval>> {
    migration::Migrator::up(&ctx.db, None).await?;
    let (approval, _, denials) = assemble(ctx, relay, clock).await?;
    // Without a service around it, refusals are written until the engine is dropped.
    tokio::spawn(denials.run(CancellationToken::new()));
    Ok(approval)
}

/// [`build`] on a migrated database, also handing back the definitions so that `run` can keep
/// them fresh, and the writer of refused attempts for `run` to run.
async fn assemble(
    ctx: &Context,
    relay: tongban_outbox::RelayHandle,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(
    Arc<Approval>,
    definitions::Definitions,
    tongban_audit::DenialWriter,
)> {
    let calendar = tongban_calendar::Calendar::load_dir(ctx.deploy_dir.join("calendar"))?;
    // The region table is only checked here (every office names a region): intake has
    // already refused a site region outside it.
    let (departments, _regions) = tongban_matter::load_departments_and_regions(&ctx.deploy_dir)?;
    let defs =
        definitions::Definitions::load(&ctx.db, &ctx.deploy_dir.join("matters"), departments)
            .await?;
    let integrators = tongban_authz::Integrators::load(ctx.deploy_dir.join("integrators.toml"))?;
    let platforms = publishing::load_platforms(&ctx.deploy_dir)?;
    let (denials, writer) = tongban_audit::DenialLog::new(ctx.db.clone(), "approval");
    let approval = Arc::new(
        Approval::new(ctx.db.clone(), defs.clone(), calendar, relay, clock)
            .with_policy(tongban_authz::Policy::new(integrators).with_denials(denials))
            .with_platforms(platforms),
    );
    Ok((approval, defs, writer))
}

/// Migrates, starts the relay, the consumer and the timer worker, and serves gRPC on
/// `listener` until `shutdown`.
pub async fn run(
    ctx: Context,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    migration::Migrator::up(&ctx.db, None).await?;
    let mut service = ServiceBuilder::new("approval", &ctx, &shutdown);
    let (approval, defs, denials) = assemble(&ctx, service.relay(), Arc::new(SystemClock)).await?;
    service.spawn("denials", denials.run(shutdown.clone()));
    service.spawn(
        "definitions",
        defs.keep_fresh(
            ctx.db.clone(),
            tongban_matter::DEFAULT_REFRESH_INTERVAL,
            shutdown.clone().cancelled_owned(),
        ),
    );
    let handler = Arc::new(consumer::WorkflowDriver::new(approval.clone()));
    service.consume(queue_spec(), 64, handler).await?;
    service.spawn(
        "prune-parked",
        tongban_outbox::prune::ParkedPruner::new(ctx.db.clone())
            .with_retention(chrono::Duration::days(i64::from(ctx.retention.parked_days)))
            .with_batch(ctx.retention.batch)
            .run(shutdown.clone()),
    );
    {
        let (a, stop) = (approval.clone(), shutdown.clone());
        service.supervise("timers", move || {
            timers::run(a.clone(), timers::INTERVAL, stop.clone())
        });
        let (db, stop) = (ctx.db.clone(), shutdown.clone());
        service.supervise("workload", move || metrics::run(db.clone(), stop.clone()));
    }
    let server = ApprovalServiceServer::new(grpc::ApprovalGrpc::new(approval))
        .max_decoding_message_size(1024 * 1024);
    service.serve(listener, server).await
}
