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
//!   `definition.published` events from the approval service).

pub mod consumer;
pub mod domain;
pub mod entity;
pub mod error;
pub mod grpc;
pub mod matters;
pub mod migration;
pub mod repository;
pub mod service;

use std::sync::Arc;

use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tongban_bus::QueueSpec;
use tongban_outbox::{Relay, consumer::ConsumerOptions};
use tongban_proto::intake::intake_service_server::IntakeServiceServer;
use tongban_runtime::{Context, Tasks};
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

/// Migrates, starts the relay and the consumer, and serves gRPC on `listener` until `shutdown`.
pub async fn run(
    ctx: Context,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    migration::Migrator::up(&ctx.db, None).await?;
    let calendar = tongban_calendar::Calendar::load_dir(ctx.deploy_dir.join("calendar"))?;
    let departments = tongban_matter::Departments::load(ctx.deploy_dir.join("departments.toml"))?;
    let matters =
        matters::Matters::load(&ctx.db, &ctx.deploy_dir.join("matters"), departments).await?;

    let relay = Relay::new(ctx.db.clone(), ctx.bus.clone());
    let intake = Arc::new(Intake::new(
        ctx.db.clone(),
        matters,
        calendar,
        relay.handle(),
    ));
    ctx.bus.declare(&queue_spec()).await?;

    let mut tasks = Tasks::new();
    tasks.spawn("intake-relay", relay.run(shutdown.clone()));
    let consumer_opts = ConsumerOptions {
        consumer: "intake".into(),
        queue: queue_spec(),
        batch: 128,
    };
    let handler = Arc::new(consumer::StatusUpdater::new(intake.clone()));
    {
        let (db, bus, relay, stop) = (
            ctx.db.clone(),
            ctx.bus.clone(),
            intake.relay(),
            shutdown.clone(),
        );
        tasks.spawn("intake-consumer", async move {
            if let Err(e) =
                tongban_outbox::run_consumer(db, bus, consumer_opts, handler, Some(relay), stop)
                    .await
            {
                tracing::error!(error = %e, "intake consumer stopped");
            }
        });
    }

    let server = IntakeServiceServer::new(grpc::IntakeGrpc::new(intake))
        .max_decoding_message_size(4 * 1024 * 1024);
    let svc = tonic::service::interceptor::InterceptedService::new(server, ctx.auth.clone());
    let routes = tonic::service::Routes::new(svc);
    tracing::info!(addr = %listener.local_addr()?, "intake serving");
    tongban_runtime::serve_grpc(
        listener,
        routes,
        &["tongban.intake.v1.IntakeService"],
        shutdown.clone(),
    )
    .await?;
    shutdown.cancel();
    tasks.join().await;
    Ok(())
}
