//! The intake service: an enterprise's application is entered here once.
//!
//! # Layout
//! - [`domain`]: validation and status rules, pure functions.
//! - [`repository`]: the `applications` and `matters` tables.
//! - [`service`]: the use cases (submit, supplement, withdraw, …), each one transaction that
//!   writes state and its events (outbox) together.
//! - [`grpc`]: thin `IntakeService` handlers: identity → use case → response.
//! - [`consumer`]: keeps each application's status current from other services' events.
//! - [`matters`]: the matter definitions intake validates against (`deploy/matters/`, plus
//!   `definition.published` events from the approval service), refreshed on every replica.

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
            et::SUPPLEMENT_REQUESTED,
            et::APPLICATION_APPROVED,
            et::APPLICATION_REJECTED,
            et::REQUEST_ANSWERED,
            et::OUTCOME_RATED,
            et::APPLICATION_CLOSED,
            et::DELIVERY_SUCCEEDED,
            et::DELIVERY_DEAD_LETTERED,
            et::DEFINITION_PUBLISHED,
        ],
    )
}

/// [`run_with`] the limits from the environment ([`limits::IntakeLimits::from_env`]).
pub async fn run(
    ctx: Context,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with(ctx, limits::IntakeLimits::from_env()?, listener, shutdown).await
}

/// Migrates, starts the relay and the consumer, and serves gRPC on `listener` until `shutdown`.
pub async fn run_with(
    ctx: Context,
    limits: limits::IntakeLimits,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    migration::Migrator::up(&ctx.db, None).await?;
    let calendar = tongban_calendar::Calendar::load_dir(ctx.deploy_dir.join("calendar"))?;
    let departments = tongban_matter::Departments::load(ctx.deploy_dir.join("departments.toml"))?;
    let matters =
        matters::Matters::load(&ctx.db, &ctx.deploy_dir.join("matters"), departments).await?;

    let mut service = ServiceBuilder::new("intake", &ctx, &shutdown);
    let intake = Arc::new(
        Intake::new(ctx.db.clone(), matters, calendar, service.relay()).with_limits(limits),
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
    let server = IntakeServiceServer::new(grpc::IntakeGrpc::new(intake))
        .max_decoding_message_size(4 * 1024 * 1024);
    service.serve(listener, server).await
}
