//! The shared harness of intake's tests: intake over real gRPC, against PostgreSQL + RabbitMQ and against SQLite + the embedded bus.

#![allow(dead_code, unused_imports, unreachable_pub)]

pub use std::time::Duration;
pub use tongban_intake::limits::IntakeLimits;

pub use prost::Message;
pub use sea_orm::ConnectionTrait;
pub use tongban_auth::Role;
pub use tongban_bus::Bus;
pub use tongban_proto::{
    events::{self, envelope::Payload},
    intake::{self as pb, intake_service_client::IntakeServiceClient},
};
pub use tongban_testkit::{Backend, Keys, authed};
pub use tonic::{Code, transport::Channel};
pub use tonic_types::StatusExt;

pub const APPLICANT: &str = "91350100M000100Y43";

pub struct Harness {
    pub client: IntakeServiceClient<Channel>,
    pub addr: std::net::SocketAddr,
    pub keys: Keys,
    pub db: sea_orm::DatabaseConnection,
    pub bus: Bus,
    pub _service: tongban_testkit::Service,
}

impl Harness {
    pub async fn start(backend: Backend) -> anyhow::Result<Self> {
        Self::start_with(backend, default_credit()?, IntakeLimits::default()).await
    }

    /// Intake looking credit classes up in `credit`.
    pub async fn start_with_credit(
        backend: Backend,
        credit: std::sync::Arc<dyn tongban_credit::CreditRegistry>,
    ) -> anyhow::Result<Self> {
        Self::start_with(backend, credit, IntakeLimits::default()).await
    }

    /// Intake within `limits`.
    pub async fn start_with_limits(backend: Backend, limits: IntakeLimits) -> anyhow::Result<Self> {
        Self::start_with(backend, default_credit()?, limits).await
    }

    pub async fn start_with(
        backend: Backend,
        credit: std::sync::Arc<dyn tongban_credit::CreditRegistry>,
        limits: IntakeLimits,
    ) -> anyhow::Result<Self> {
        let service = tongban_testkit::start_service(backend, "intake", |s| {
            tongban_intake::run_with(s.ctx, credit, limits, s.listener, s.shutdown)
        })
        .await?;
        Ok(Self {
            client: IntakeServiceClient::new(service.channel.clone()),
            addr: service.addr,
            keys: service.keys.clone(),
            db: service.db.clone(),
            bus: service.bus.clone(),
            _service: service,
        })
    }

    pub fn applicant(&self) -> String {
        self.keys.token(Role::Applicant, None, Some(APPLICANT))
    }

    /// Publishes `events` on the bus, as the other services would.
    pub async fn publish(&self, events: &[&events::Envelope]) -> anyhow::Result<()> {
        let msgs: Vec<_> = events
            .iter()
            .map(|e| tongban_bus::OutgoingMessage {
                event_id: e.event_id.clone(),
                routing_key: e.r#type.clone(),
                payload: e.encode_to_vec(),
                traceparent: None,
            })
            .collect();
        self.bus.publish_batch(&msgs).await?;
        Ok(())
    }

    /// Publishes a `task.created` per (department, office) of `application_id`, as approval
    /// would, and waits until intake has recorded every one of them.
    pub async fn tasks_created(
        &self,
        application_id: &str,
        tasks: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let events = tongban_testkit::tasks_created(application_id, tasks);
        self.publish(&events.iter().collect::<Vec<_>>()).await?;
        tongban_testkit::involved_recorded(&self.db, application_id, tasks).await
    }

    /// `SELECT COUNT(*) AS n ...`: the count, or -1 when the query fails.
    pub async fn count_where(&self, sql: &str) -> i64 {
        let b = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(b, sql.to_string()))
            .await
            .ok()
            .flatten();
        row.and_then(|r| r.try_get::<i64>("", "n").ok())
            .unwrap_or(-1)
    }

    pub async fn count(&self, table: &str) -> i64 {
        let b = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                b,
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .ok()
            .flatten();
        row.and_then(|r| r.try_get::<i64>("", "n").ok())
            .unwrap_or(-1)
    }
}

pub fn example() -> anyhow::Result<pb::SubmitApplicationRequest> {
    let text = tongban_testkit::example_request_json()?;
    Ok(tongban_proto::json::from_json(
        "tongban.intake.v1.SubmitApplicationRequest",
        &text,
    )?)
}

/// The `ErrorInfo` reason of a status (the catalogue in `tongban.common.v1.ErrorReason`).
pub fn reason(status: &tonic::Status) -> String {
    let info = status.get_details_error_info();
    assert_eq!(
        info.as_ref().map(|i| i.domain.as_str()),
        Some("tongban.gov")
    );
    info.map(|i| i.reason).unwrap_or_default()
}

pub fn fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The credit registry `tongban dev` uses: the file source in `deploy/credit`.
fn default_credit() -> anyhow::Result<std::sync::Arc<dyn tongban_credit::CreditRegistry>> {
    Ok(tongban_credit::CreditSettings::default().build(&tongban_testkit::deploy_dir())?)
}
