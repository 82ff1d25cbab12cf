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
//! - [`service`]: the use cases, each one transaction that does it.
//! - [`repository`], [`audit`], [`definitions`]: the tables; [`definitions`] is the registry of
//!   workflow definitions, refreshed from its table on every replica.
//! - [`consumer`]: submitted / supplemented / withdrawn events → [`service`].
//! - [`timers`]: due-soon, overdue and escalation, once each, safe with several replicas.
//! - [`grpc`]: thin `ApprovalService` handlers; [`error`]: the one mapping to gRPC codes.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod audit;
pub mod consumer;
pub mod definitions;
pub mod error;
pub mod grpc;
pub mod migration;
pub mod repository;
pub mod service;
pub mod timers;
pub mod workflow;

use std::sync::Arc;

use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tongban_bus::QueueSpec;
use tongban_outbox::{Relay, consumer::ConsumerOptions};
use tongban_proto::approval::approval_service_server::ApprovalServiceServer;
use tongban_runtime::{Context, Tasks};
use tongban_types::event_type as et;

pub use service::{Approval, Clock, SystemClock};

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

/// Migrates and loads definitions and the calendar: an engine over `ctx.db`, without any
/// background work. `run` uses it; tests use it to drive a second timer worker.
pub async fn build(
    ctx: &Context,
    relay: tongban_outbox::RelayHandle,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<Approval>> {
    Ok(assemble(ctx, relay, clock).await?.0)
}

/// [`build`], also handing back the definitions so that `run` can keep them fresh.
async fn assemble(
    ctx: &Context,
    relay: tongban_outbox::RelayHandle,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(Arc<Approval>, definitions::Definitions)> {
    migration::Migrator::up(&ctx.db, None).await?;
    let calendar = tongban_calendar::Calendar::load_dir(ctx.deploy_dir.join("calendar"))?;
    let departments = tongban_matter::Departments::load(ctx.deploy_dir.join("departments.toml"))?;
    let defs =
        definitions::Definitions::load(&ctx.db, &ctx.deploy_dir.join("matters"), departments)
            .await?;
    let approval = Arc::new(Approval::new(
        ctx.db.clone(),
        defs.clone(),
        calendar,
        relay,
        clock,
    ));
    Ok((approval, defs))
}

/// Migrates, starts the relay, the consumer and the timer worker, and serves gRPC on
/// `listener` until `shutdown`.
pub async fn run(
    ctx: Context,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let relay = Relay::new(ctx.db.clone(), ctx.bus.clone());
    let (approval, defs) = assemble(&ctx, relay.handle(), Arc::new(SystemClock)).await?;
    ctx.bus.declare(&queue_spec()).await?;

    let mut tasks = Tasks::new();
    tasks.spawn("approval-relay", relay.run(shutdown.clone()));
    tasks.spawn(
        "approval-definitions",
        defs.keep_fresh(
            ctx.db.clone(),
            tongban_matter::DEFAULT_REFRESH_INTERVAL,
            shutdown.clone().cancelled_owned(),
        ),
    );
    let consumer_opts = ConsumerOptions {
        consumer: "approval".into(),
        queue: queue_spec(),
        batch: 64,
    };
    let handler = Arc::new(consumer::WorkflowDriver::new(approval.clone()));
    {
        let (db, bus, relay, stop) = (
            ctx.db.clone(),
            ctx.bus.clone(),
            approval.relay(),
            shutdown.clone(),
        );
        tasks.spawn("approval-consumer", async move {
            if let Err(e) =
                tongban_outbox::run_consumer(db, bus, consumer_opts, handler, Some(relay), stop)
                    .await
            {
                tracing::error!(error = %e, "approval consumer stopped");
            }
        });
    }
    tasks.spawn(
        "approval-timers",
        timers::run(approval.clone(), timers::INTERVAL, shutdown.clone()),
    );

    let server = ApprovalServiceServer::new(grpc::ApprovalGrpc::new(approval))
        .max_decoding_message_size(1024 * 1024);
    let svc = tonic::service::interceptor::InterceptedService::new(server, ctx.auth.clone());
    let routes = tonic::service::Routes::new(svc);
    tracing::info!(addr = %listener.local_addr()?, "approval serving");
    tongban_runtime::serve_grpc(
        listener,
        routes,
        &["tongban.approval.v1.ApprovalService"],
        shutdown.clone(),
    )
    .await?;
    shutdown.cancel();
    tasks.join().await;
    Ok(())
}
