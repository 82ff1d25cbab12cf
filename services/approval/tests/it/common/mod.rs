//! The shared harness of approval's RPC tests: approval over real gRPC, against PostgreSQL +
//! RabbitMQ and against SQLite + the embedded bus. Applications arrive as
//! `application.submitted` envelopes published straight on the bus, as intake would; an
//! observer queue bound to `#` sees what approval emits. Each test file uses part of it.

#![allow(dead_code, unused_imports, unreachable_pub)]

pub use std::{sync::Arc, time::Duration};

pub use prost::Message;
pub use sea_orm::ConnectionTrait;
pub use tokio_util::sync::CancellationToken;
pub use tongban_auth::Role;
pub use tongban_bus::{Bus, QueueSpec, Subscription};
/// The proto's shared messages, reachable as `common::…` from the test files too.
pub use tongban_proto::common::{CreditClass, OwedMaterial, Pledge};
pub use tongban_proto::{
    approval::{self as pb, approval_service_client::ApprovalServiceClient},
    common,
    events::{self, ApplicationSnapshot, Envelope, envelope::Payload},
    intake::SubmitApplicationRequest,
};
pub use tongban_testkit::{Backend, Keys, Stopper, TestDb, authed, eventually};
pub use tonic::{Code, transport::Channel};
pub use tonic_types::StatusExt;

pub const APPLICANT: &str = "91350100M000100Y43";
pub const WAIT: Duration = Duration::from_secs(30);

pub struct Harness {
    pub client: ApprovalServiceClient<Channel>,
    pub keys: Keys,
    pub db: sea_orm::DatabaseConnection,
    pub ctx: tongban_runtime::Context,
    pub bus: Bus,
    pub observer: Subscription,
    pub seen: Vec<Envelope>,
    /// Keeps the service, its database and its bus alive; stops it when dropped.
    pub service: tongban_testkit::Service,
}

impl Harness {
    pub async fn start(backend: Backend) -> anyhow::Result<Self> {
        // Logs show only for failing tests (the test harness captures them).
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warn,tongban_approval=info,tongban_outbox=info")
            .with_test_writer()
            .try_init();
        let service = tongban_testkit::start_service(backend, "approval", |s| {
            tongban_approval::run(s.ctx, s.listener, s.shutdown)
        })
        .await?;
        let observer_spec = QueueSpec::new("observer", &["#"]);
        service.bus.declare(&observer_spec).await?;
        let observer = service.bus.subscribe(&observer_spec).await?;
        // The listener accepts connections before the service has declared its queue, so wait
        // for an answered RPC: events published after that reach the approval queue.
        let admin = service.keys.token(Role::Admin, None, None);
        let channel = service.channel.clone();
        let client = eventually(Duration::from_secs(30), "approval to serve", || {
            let mut c = ApprovalServiceClient::new(channel.clone());
            let admin = admin.clone();
            async move {
                c.list_definitions(authed(pb::ListDefinitionsRequest::default(), &admin))
                    .await
                    .ok()?;
                Some(c)
            }
        })
        .await?;
        Ok(Self {
            client,
            keys: service.keys.clone(),
            db: service.db.clone(),
            ctx: service.ctx.clone(),
            bus: service.bus.clone(),
            observer,
            seen: Vec::new(),
            service,
        })
    }

    pub fn admin(&self) -> String {
        self.keys.token(Role::Admin, None, None)
    }

    pub fn clerk(&self, department: &str) -> String {
        self.keys.token(Role::Clerk, Some(department), None)
    }

    pub fn applicant(&self) -> String {
        self.keys.token(Role::Applicant, None, Some(APPLICANT))
    }

    pub async fn publish(&self, envs: &[&Envelope]) -> anyhow::Result<()> {
        let msgs: Vec<_> = envs
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

    pub async fn submit(&self, snap: ApplicationSnapshot) -> anyhow::Result<String> {
        let id = snap.application_id.clone();
        let env = tongban_outbox::new_envelope(
            "intake",
            &id,
            Payload::ApplicationSubmitted(events::ApplicationSubmitted {
                application: Some(snap),
            }),
        );
        self.publish(&[&env]).await?;
        Ok(id)
    }

    /// Waits for an event approval emitted about `app` of type `ty` (the n-th one, from 1).
    pub async fn event(&mut self, app: &str, ty: &str, nth: usize) -> anyhow::Result<Envelope> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let found: Vec<&Envelope> = self
                .seen
                .iter()
                .filter(|e| e.application_id == app && e.r#type == ty)
                .collect();
            if found.len() >= nth {
                return Ok(found[nth - 1].clone());
            }
            let d = tokio::time::timeout_at(deadline, self.observer.recv())
                .await
                .map_err(|_| anyhow::anyhow!("timed out waiting for {ty} #{nth} of {app}"))?
                .ok_or_else(|| anyhow::anyhow!("observer closed"))?;
            if let Ok(env) = Envelope::decode(d.payload.as_slice()) {
                self.seen.push(env);
            }
            d.ack().await?;
        }
    }

    pub async fn tasks(
        &self,
        app: &str,
        statuses: &[pb::TaskStatus],
    ) -> anyhow::Result<Vec<pb::Task>> {
        let req = pb::ListTasksRequest {
            application_id: app.into(),
            statuses: statuses.iter().map(|s| *s as i32).collect(),
            page_size: 100,
            ..Default::default()
        };
        Ok(self
            .client
            .clone()
            .list_tasks(authed(req, &self.admin()))
            .await?
            .into_inner()
            .tasks)
    }

    /// Waits until the open tasks of `app` are exactly `n` tasks of `stage`.
    pub async fn stage(&self, app: &str, stage: &str, n: usize) -> anyhow::Result<Vec<pb::Task>> {
        eventually(WAIT, &format!("{n} open tasks of {stage}"), || async {
            let t = self.tasks(app, &[]).await.ok()?;
            let review: Vec<_> = t
                .into_iter()
                .filter(|t| {
                    t.kind != pb::TaskKind::VerifyPledge as i32
                        && t.kind != pb::TaskKind::FollowUpMaterial as i32
                        && t.kind != pb::TaskKind::FollowUpVisit as i32
                })
                .collect();
            (review.len() == n && review.iter().all(|t| t.stage_id == stage)).then_some(review)
        })
        .await
    }

    pub async fn decide(
        &self,
        t: &pb::Task,
        decision: pb::Decision,
        comment: &str,
    ) -> Result<pb::Task, tonic::Status> {
        let req = pb::DecideTaskRequest {
            task_id: t.task_id.clone(),
            decision: decision as i32,
            comment: comment.into(),
            expected_version: t.version,
            requested_materials: vec![],
            assign_departments: vec![],
        };
        let token = self.clerk(&t.department);
        Ok(self
            .client
            .clone()
            .decide_task(authed(req, &token))
            .await?
            .into_inner()
            .task
            .unwrap_or_default())
    }

    pub async fn approve_stage(
        &self,
        app: &str,
        stage: &str,
        n: usize,
    ) -> anyhow::Result<Vec<pb::Task>> {
        let tasks = self.stage(app, stage, n).await?;
        for t in &tasks {
            self.decide(t, pb::Decision::Approve, "同意").await?;
        }
        Ok(tasks)
    }

    pub async fn workflow(&self, app: &str) -> anyhow::Result<pb::Workflow> {
        let req = pb::GetWorkflowRequest {
            application_id: app.into(),
        };
        Ok(self
            .client
            .clone()
            .get_workflow(authed(req, &self.admin()))
            .await?
            .into_inner()
            .workflow
            .unwrap_or_default())
    }

    pub async fn count(&self, sql: &str) -> i64 {
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
}

/// The example application (credit class C, no water intake) as intake would publish it.
pub fn snapshot() -> anyhow::Result<ApplicationSnapshot> {
    let text = tongban_testkit::example_request_json()?;
    let r: SubmitApplicationRequest =
        tongban_proto::json::from_json("tongban.intake.v1.SubmitApplicationRequest", &text)?;
    Ok(ApplicationSnapshot {
        application_id: tongban_types::new_id(),
        request_id: r.request_id,
        matter_code: r.matter_code,
        matter_version: 1,
        applicant: r.applicant,
        form: r.form,
        materials: r.materials,
        commitments: r.commitments,
        owed_materials: vec![],
        pledge: r.pledge,
        submit_time: None,
    })
}

pub fn with_class(mut s: ApplicationSnapshot, class: common::CreditClass) -> ApplicationSnapshot {
    if let Some(a) = s.applicant.as_mut() {
        a.credit_class = class as i32;
    }
    s
}

pub fn text(s: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(s.into())),
    }
}

/// A second engine over the harness's database, to run the timer worker at chosen instants.
pub async fn timer_worker(h: &Harness) -> anyhow::Result<Arc<tongban_approval::Approval>> {
    engine(h, Arc::new(tongban_approval::SystemClock)).await
}

/// A clock stopped at one instant.
pub struct FixedClock(pub chrono::DateTime<chrono::Utc>);

impl tongban_approval::Clock for FixedClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0
    }
}

/// A second engine over the harness's database whose "now" is `at`: the service as it will
/// be then, for what depends on the time (deadlines, the ledger).
pub async fn engine_at(
    h: &Harness,
    at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Arc<tongban_approval::Approval>> {
    engine(h, Arc::new(FixedClock(at))).await
}

async fn engine(
    h: &Harness,
    clock: Arc<dyn tongban_approval::Clock>,
) -> anyhow::Result<Arc<tongban_approval::Approval>> {
    let mut ctx = h.ctx.clone();
    ctx.db = tongban_storage::connect(h.service.database_url()).await?;
    tongban_approval::build(&ctx, Default::default(), clock).await
}

/// An identity as the service would read it from a token of `role` for `department`.
pub fn identity(role: Role, department: Option<&str>) -> tongban_auth::Identity {
    tongban_auth::Identity {
        subject: format!("{role}-{}", department.unwrap_or("test")),
        role,
        department: department.map(Into::into),
        region: None,
        credit_code: None,
    }
}

/// The enterprise's rating of its request's answer, as `token` sends it.
pub fn rating(app: &str, r: pb::Rating, token: &str) -> tonic::Request<pb::RateOutcomeRequest> {
    authed(
        pb::RateOutcomeRequest {
            application_id: app.to_string(),
            rating: r as i32,
            comment: "评价".into(),
        },
        token,
    )
}

/// An enterprise request (`service.enterprise_request`) about a late approval, for eco_env,
/// as intake would publish it.
pub fn request_snapshot() -> anyhow::Result<ApplicationSnapshot> {
    let mut snap = snapshot()?;
    snap.matter_code = "service.enterprise_request".into();
    let mut form = prost_types::Struct::default();
    for (k, v) in [
        ("subject", "审批超时"),
        ("description", "环评审批已超过承诺时限仍未办结"),
        ("category", "approval_delay"),
        ("handling_department", "eco_env"),
    ] {
        form.fields.insert(k.into(), text(v));
    }
    snap.form = Some(form);
    snap.owed_materials.clear();
    Ok(snap)
}

pub async fn audit(h: &Harness, app: &str) -> anyhow::Result<Vec<pb::AuditEntry>> {
    Ok(h.client
        .clone()
        .get_audit_trail(authed(
            pb::GetAuditTrailRequest {
                application_id: app.into(),
            },
            &h.admin(),
        ))
        .await?
        .into_inner()
        .entries)
}

pub fn due_of(t: &pb::Task) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    t.due_time
        .as_ref()
        .and_then(tongban_proto::time::from_ts)
        .ok_or_else(|| anyhow::anyhow!("no due time"))
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

pub fn publish(source: &str, request_id: &str) -> pb::PublishDefinitionRequest {
    pb::PublishDefinitionRequest {
        source: source.to_string(),
        request_id: request_id.to_string(),
    }
}
