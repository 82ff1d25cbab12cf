//! The intake service: an enterprise's application is entered here once.
//!
//! # Layout
//! - [`domain`]: validation and status rules, pure functions.
//! - [`repository`]: the `applications`, `matters` and `application_departments` tables.
//! - [`service`]: the use cases (submit, supplement, withdraw, …), each one transaction that
//!   writes state and its events (outbox) together.
//! - [`grpc`]: thin `IntakeService` handlers: identity → use case → response.
//! - [`consumer`]: keeps each application's status current from other services' events, and
//!   records the departments and offices with a task in its workflow (its scope).
//! - [`config`]: intake's own settings (the credit registry, `[credit]`).
//! - [`matters`]: the matter definitions intake validates against (`deploy/matters/`, plus
//!   `definition.published` events from the approval service), refreshed on every replica.

mod authz;
pub mod config;
pub mod consumer;
pub mod domain;
pub mod entity;
pub mod error;
pub mod grpc;
pub mod limits;
pub mod matters;
pub mod migration;
pub mod repository;
pub mod service;

use std::sync::Arc;

use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tongban_bus::QueueSpec;
use tongban_proto::intake::intake_service_server::IntakeServiceServer;
use tongban_runtime::{Context, ServiceBuilder};
use tongban_types::event_type as et;

pub use service::Intake;

/// The queue intake consumes, and the keys it needs.
pub fn queue_spec() -> QueueSpec {
    QueueSpec::new(
        "intake",
        &[
            et::TASK_CREATED,
            et::TASK_MOVED,
            et::SUPPLEMENT_REQUESTED,
            et::APPLICATION_APPROVED,
            et::APPLICATION_REJECTED,
            et::REQUEST_ANSWERED,
            et::OUTCOME_RATED,
            et::APPLICATION_CLOSED,
            et::DELIVERY_SUCCEEDED,
            et::DELIVERY_DEAD_LETTERED,
            et::DEFINITION_PUBLISHED,
            et::APPLICATION_REVOKED,
            et::APPLICATION_SUSPENDED,
        ],
    )
}

/// [`run_with`] the default credit registry (the file source in `<deploy_dir>/credit`, breaches
/// to `data/credit-breaches.jsonl`) and the default limits.
pub async fn run(
    ctx: Context,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let credit = tongban_credit::CreditSettings::default().build(&ctx.deploy_dir)?;
    run_with(
        ctx,
        credit,
        limits::IntakeLimits::default(),
        listener,
        shutdown,
    )
    .await
}

/// Migrates, starts the relay and the consumer, and serves gRPC on `listener` until `shutdown`,
/// looking credit classes up in (and reporting breaches to) `credit`, within `limits`.
pub async fn run_with(
    ctx: Context,
    credit: Arc<dyn tongban_credit::CreditRegistry>,
    limits: limits::IntakeLimits,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    migration::Migrator::up(&ctx.db, None).await?;
    let calendar = tongban_calendar::Calendar::load_dir(ctx.deploy_dir.join("calendar"))?;
    let (departments, regions) = tongban_matter::load_departments_and_regions(&ctx.deploy_dir)?;
    let matters =
        matters::Matters::load(&ctx.db, &ctx.deploy_dir.join("matters"), departments).await?;

    let mut service = ServiceBuilder::new("intake", &ctx, &shutdown);
    let integrators = tongban_authz::Integrators::load(ctx.deploy_dir.join("integrators.toml"))?;
    let (denials, writer) = tongban_audit::DenialLog::new(ctx.db.clone(), "intake");
    service.spawn("denials", writer.run(shutdown.clone()));
    let intake = Arc::new(
        Intake::new(
            ctx.db.clone(),
            matters,
            regions,
            calendar,
            service.relay(),
            credit,
        )
        .with_policy(tongban_authz::Policy::new(integrators).with_denials(denials))
        .with_limits(limits),
    );
    service.spawn(
        "definitions",
        intake.matters().keep_fresh(
            ctx.db.clone(),
            tongban_matter::DEFAULT_REFRESH_INTERVAL,
            shutdown.clone().cancelled_owned(),
        ),
    );
    let handler = Arc::new(consumer::StatusUpdater::new(intake.clone()));
    service.consume(queue_spec(), 128, handler).await?;
    let server = IntakeServiceServer::new(grpc::IntakeGrpc::new(intake, shutdown.clone()))
        .max_decoding_message_size(4 * 1024 * 1024);
    service.serve(listener, server).await
}
