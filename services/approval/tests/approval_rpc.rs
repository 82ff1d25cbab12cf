//! Approval over real gRPC, against PostgreSQL + RabbitMQ and against SQLite + the embedded bus.
//! Applications arrive as `application.submitted` envelopes published straight on the bus, as
//! intake would; an observer queue bound to `#` sees what approval emits.

use std::{sync::Arc, time::Duration};

use prost::Message;
use sea_orm::ConnectionTrait;
use tokio_util::sync::CancellationToken;
use tongban_auth::Role;
use tongban_bus::{Bus, QueueSpec, Subscription};
use tongban_proto::{
    approval::{self as pb, approval_service_client::ApprovalServiceClient},
    common,
    events::{self, ApplicationSnapshot, Envelope, envelope::Payload},
    intake::SubmitApplicationRequest,
};
use tongban_testkit::{Backend, Keys, Stopper, TestDb, authed, eventually};
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt;

const APPLICANT: &str = "91350100M000100Y43";
const WAIT: Duration = Duration::from_secs(30);

struct Harness {
    client: ApprovalServiceClient<Channel>,
    keys: Keys,
    db: sea_orm::DatabaseConnection,
    ctx: tongban_runtime::Context,
    bus: Bus,
    observer: Subscription,
    seen: Vec<Envelope>,
    _stop: Stopper,
    _db: TestDb,
    _bus_dir: Option<tempfile::TempDir>,
}

impl Harness {
    async fn start(backend: Backend) -> anyhow::Result<Self> {
        // Logs show only for failing tests (the test harness captures them).
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warn,tongban_approval=info,tongban_outbox=info")
            .with_test_writer()
            .try_init();
        let test_db = TestDb::new(backend, "approval").await?;
        let (bus, bus_dir) = match backend {
            Backend::Postgres => (tongban_testkit::rabbit_bus("approval").await?.0, None),
            Backend::Sqlite => {
                let (b, d) = tongban_testkit::local_bus().await?;
                (b, Some(d))
            }
        };
        let observer_spec = QueueSpec::new("observer", &["#"]);
        bus.declare(&observer_spec).await?;
        let observer = bus.subscribe(&observer_spec).await?;
        let keys = Keys::new();
        let db = tongban_storage::connect(&test_db.url).await?;
        let ctx = tongban_runtime::Context {
            db: db.clone(),
            bus: bus.clone(),
            auth: keys.authenticator(),
            deploy_dir: tongban_testkit::deploy_dir(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let (token, run_ctx) = (stop.clone(), ctx.clone());
        tokio::spawn(async move {
            if let Err(e) = tongban_approval::run(run_ctx, listener, token).await {
                eprintln!("approval stopped: {e:#}");
            }
        });
        // The listener accepts connections before the service has declared its queue, so wait
        // for an answered RPC: events published after that reach the approval queue.
        let admin = keys.token(Role::Admin, None, None);
        let client = eventually(Duration::from_secs(30), "approval to serve", || async {
            let mut c = ApprovalServiceClient::connect(format!("http://{addr}"))
                .await
                .ok()?;
            c.list_definitions(authed(pb::ListDefinitionsRequest::default(), &admin))
                .await
                .ok()?;
            Some(c)
        })
        .await?;
        Ok(Self {
            client,
            keys,
            db,
            ctx,
            bus,
            observer,
            seen: Vec::new(),
            _stop: Stopper(stop),
            _db: test_db,
            _bus_dir: bus_dir,
        })
    }

    fn admin(&self) -> String {
        self.keys.token(Role::Admin, None, None)
    }

    fn clerk(&self, department: &str) -> String {
        self.keys.token(Role::Clerk, Some(department), None)
    }

    fn applicant(&self) -> String {
        self.keys.token(Role::Applicant, None, Some(APPLICANT))
    }

    async fn publish(&self, envs: &[&Envelope]) -> anyhow::Result<()> {
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

    async fn submit(&self, snap: ApplicationSnapshot) -> anyhow::Result<String> {
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
    async fn event(&mut self, app: &str, ty: &str, nth: usize) -> anyhow::Result<Envelope> {
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

    async fn tasks(&self, app: &str, statuses: &[pb::TaskStatus]) -> anyhow::Result<Vec<pb::Task>> {
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
    async fn stage(&self, app: &str, stage: &str, n: usize) -> anyhow::Result<Vec<pb::Task>> {
        eventually(WAIT, &format!("{n} open tasks of {stage}"), || async {
            let t = self.tasks(app, &[]).await.ok()?;
            let review: Vec<_> = t
                .into_iter()
                .filter(|t| {
                    t.kind != pb::TaskKind::VerifyPledge as i32
                        && t.kind != pb::TaskKind::FollowUpMaterial as i32
                })
                .collect();
            (review.len() == n && review.iter().all(|t| t.stage_id == stage)).then_some(review)
        })
        .await
    }

    async fn decide(
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

    async fn approve_stage(
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

    async fn workflow(&self, app: &str) -> anyhow::Result<pb::Workflow> {
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

    async fn count(&self, sql: &str) -> i64 {
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
fn snapshot() -> anyhow::Result<ApplicationSnapshot> {
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

fn with_class(mut s: ApplicationSnapshot, class: common::CreditClass) -> ApplicationSnapshot {
    if let Some(a) = s.applicant.as_mut() {
        a.credit_class = class as i32;
    }
    s
}

fn text(s: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(s.into())),
    }
}

async fn joint_review_then_decision_approves(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let app = h.submit(snapshot()?).await?;
    h.approve_stage(&app, "acceptance", 1).await?;
    let joint = h.approve_stage(&app, "joint_review", 3).await?;
    let eco = joint
        .iter()
        .find(|t| t.department == "eco_env")
        .ok_or_else(|| anyhow::anyhow!("no eco_env task"))?;
    assert_eq!(
        eco.office, "eco_env.songyuan",
        "routed by the applicant's region"
    );
    h.approve_stage(&app, "decision", 1).await?;
    let approved = h.event(&app, "application.approved", 1).await?;
    let Some(Payload::ApplicationApproved(a)) = approved.payload else {
        anyhow::bail!("wrong payload")
    };
    assert!(
        a.decision_number.starts_with("松环审〔") && a.decision_number.ends_with("〕1号"),
        "{}",
        a.decision_number
    );
    assert!(!a.on_pledge);
    assert_eq!(a.department, "eco_env");
    h.event(&app, "task.created", 5).await?;
    h.event(&app, "task.decided", 5).await?;
    let wf = h.workflow(&app).await?;
    assert_eq!(wf.status(), pb::WorkflowStatus::Approved);
    assert_eq!(wf.definition_version, 1);
    let states: Vec<_> = wf
        .stages
        .iter()
        .map(|s| (s.stage_id.as_str(), s.state.as_str()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("acceptance", "done"),
            ("joint_review", "done"),
            ("extra_review", "skipped"),
            ("decision", "done")
        ]
    );
    // A decided task cannot be decided again.
    let again = h
        .decide(eco, pb::Decision::Approve, "")
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(again, Some(Code::Aborted), "its version moved on");
    Ok(())
}

async fn any_reject_rejects_and_cancels_the_rest(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let app = h.submit(snapshot()?).await?;
    h.approve_stage(&app, "acceptance", 1).await?;
    let joint = h.stage(&app, "joint_review", 3).await?;
    let err = h
        .decide(&joint[0], pb::Decision::Reject, " ")
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("accepted"))?;
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<String> = err
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert_eq!(fields, vec!["comment"]);
    // A clerk of another department may not decide it.
    let req = pb::DecideTaskRequest {
        task_id: joint[0].task_id.clone(),
        decision: pb::Decision::Approve as i32,
        expected_version: joint[0].version,
        ..Default::default()
    };
    let other = if joint[0].department == "water" {
        "dev_reform"
    } else {
        "water"
    };
    let denied = h
        .client
        .decide_task(authed(req, &h.clerk(other)))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(denied, Some(Code::PermissionDenied));

    h.decide(&joint[0], pb::Decision::Approve, "").await?;
    h.decide(&joint[1], pb::Decision::Reject, "不符合产业政策")
        .await?;
    let rejected = h.event(&app, "application.rejected", 1).await?;
    let Some(Payload::ApplicationRejected(r)) = rejected.payload else {
        anyhow::bail!("wrong payload")
    };
    assert_eq!(r.reason, "不符合产业政策");
    let cancelled = h.tasks(&app, &[pb::TaskStatus::Cancelled]).await?;
    assert_eq!(
        cancelled
            .iter()
            .map(|t| t.task_id.clone())
            .collect::<Vec<_>>(),
        vec![joint[2].task_id.clone()]
    );
    assert_eq!(
        h.workflow(&app).await?.status(),
        pb::WorkflowStatus::Rejected
    );
    // Deciding a cancelled task is a failed precondition.
    let closed = h
        .decide(&cancelled[0], pb::Decision::Approve, "")
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(closed, Some(Code::FailedPrecondition));
    Ok(())
}

async fn credit_class_d_adds_extra_review(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let app = h
        .submit(with_class(snapshot()?, common::CreditClass::D))
        .await?;
    h.approve_stage(&app, "acceptance", 1).await?;
    h.approve_stage(&app, "joint_review", 3).await?;
    let extra = h.approve_stage(&app, "extra_review", 2).await?;
    let mut depts: Vec<_> = extra.iter().map(|t| t.department.as_str()).collect();
    depts.sort();
    assert_eq!(depts, vec!["eco_env", "market_regulation"]);
    h.approve_stage(&app, "decision", 1).await?;
    h.event(&app, "application.approved", 1).await?;
    Ok(())
}

async fn pledge_a_skips_review_and_follows_up(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let mut snap = with_class(snapshot()?, common::CreditClass::A);
    snap.pledge = Some(common::Pledge {
        signed: true,
        statement: "本单位承诺符合审批条件".into(),
    });
    let due = chrono::Utc::now() + chrono::Duration::days(20);
    snap.owed_materials = vec![common::OwedMaterial {
        material_kind: "land_use_certificate".into(),
        due_time: Some(tongban_proto::time::ts(due)),
        fulfilled_time: None,
        statement: "15个工作日内补交".into(),
    }];
    let app = h.submit(snap).await?;
    // Approved at once: no review task is ever created.
    let approved = h.event(&app, "application.approved", 1).await?;
    let Some(Payload::ApplicationApproved(a)) = approved.payload else {
        anyhow::bail!("wrong payload")
    };
    assert!(a.on_pledge);
    let wf = h.workflow(&app).await?;
    assert_eq!(wf.status(), pb::WorkflowStatus::Approved);
    assert!(
        wf.stages
            .iter()
            .all(|s| s.state == "skipped" && s.tasks.is_empty()),
        "{:?}",
        wf.stages
    );
    let verify = wf
        .follow_ups
        .iter()
        .find(|t| t.kind() == pb::TaskKind::VerifyPledge)
        .ok_or_else(|| anyhow::anyhow!("no verify task"))?;
    assert_eq!(verify.department, "eco_env");
    assert_eq!(verify.status(), pb::TaskStatus::Open);
    let owed = wf
        .follow_ups
        .iter()
        .find(|t| t.kind() == pb::TaskKind::FollowUpMaterial)
        .ok_or_else(|| anyhow::anyhow!("no follow-up"))?;
    assert_eq!(
        owed.due_time.as_ref().map(|t| t.seconds),
        Some(due.timestamp())
    );

    let supplied = tongban_outbox::new_envelope(
        "intake",
        &app,
        Payload::ApplicationSupplemented(events::ApplicationSupplemented {
            fulfilled_kinds: vec!["land_use_certificate".into()],
            ..Default::default()
        }),
    );
    h.publish(&[&supplied]).await?;
    eventually(WAIT, "owed material done", || async {
        let t = h.tasks(&app, &[pb::TaskStatus::Done]).await.ok()?;
        t.iter()
            .any(|t| t.kind() == pb::TaskKind::FollowUpMaterial)
            .then_some(())
    })
    .await?;
    Ok(())
}

async fn concurrent_decisions_one_wins(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let app = h.submit(snapshot()?).await?;
    let t = h.stage(&app, "acceptance", 1).await?.remove(0);
    let (a, b) = tokio::join!(
        h.decide(&t, pb::Decision::Approve, ""),
        h.decide(&t, pb::Decision::Reject, "材料不全")
    );
    let codes = [
        a.as_ref().err().map(|e| e.code()),
        b.as_ref().err().map(|e| e.code()),
    ];
    assert_eq!(
        codes.iter().filter(|c| c.is_none()).count(),
        1,
        "exactly one wins: {a:?} {b:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == Some(Code::Aborted)).count(),
        1,
        "the other is ABORTED: {a:?} {b:?}"
    );
    assert_eq!(h.count(&format!("SELECT COUNT(*) AS n FROM outbox WHERE routing_key = 'task.decided' AND application_id = '{app}'")).await, 1);
    Ok(())
}

async fn running_instances_keep_their_version(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let v1 = std::fs::read_to_string(
        tongban_testkit::deploy_dir().join("matters/env.eia.report_form.v1.toml"),
    )?;
    let started_on_v1 = h.submit(snapshot()?).await?;
    h.stage(&started_on_v1, "acceptance", 1).await?;

    // v2: acceptance and joint review merged away; only the decision stage.
    let cut = v1
        .find("[[stages]]")
        .ok_or_else(|| anyhow::anyhow!("no stages"))?;
    let decision = v1
        .find("[[stages]]\nid = \"decision\"")
        .ok_or_else(|| anyhow::anyhow!("no decision stage"))?;
    let v2 = format!("{}{}", &v1[..cut], &v1[decision..]).replace("version = 1", "version = 2").replace(
        "next = [\n  # 告知承诺: approve on the pledge now, verify afterwards.\n  { when = \"pledge_accepted\", goto = \"decision\" },\n]\n",
        "",
    );
    let admin = h.admin();
    let bad = h
        .client
        .publish_definition(authed(
            pb::PublishDefinitionRequest {
                source: v2.replace(
                    "lead_department = \"eco_env\"",
                    "lead_department = \"nowhere\"",
                ),
            },
            &admin,
        ))
        .await
        .err();
    assert_eq!(
        bad.as_ref().map(|e| e.code()),
        Some(Code::InvalidArgument),
        "{bad:?}"
    );
    assert!(
        bad.as_ref()
            .is_some_and(|e| e.message().contains("nowhere")),
        "names the problem: {bad:?}"
    );
    let clerk = h.clerk("eco_env");
    let denied = h
        .client
        .publish_definition(authed(
            pb::PublishDefinitionRequest { source: v2.clone() },
            &clerk,
        ))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(denied, Some(Code::PermissionDenied));
    let published = h
        .client
        .publish_definition(authed(
            pb::PublishDefinitionRequest { source: v2.clone() },
            &admin,
        ))
        .await?
        .into_inner();
    assert_eq!(published.definition.map(|d| d.version), Some(2));
    let again = h
        .client
        .publish_definition(authed(pb::PublishDefinitionRequest { source: v2 }, &admin))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(again, Some(Code::AlreadyExists));
    let old = h
        .client
        .publish_definition(authed(pb::PublishDefinitionRequest { source: v1 }, &admin))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(old, Some(Code::AlreadyExists));
    h.event("", "definition.published", 1).await?;
    let list = h
        .client
        .list_definitions(authed(
            pb::ListDefinitionsRequest {
                matter_code: "env.eia.report_form".into(),
                all_versions: true,
            },
            &clerk,
        ))
        .await?
        .into_inner();
    assert_eq!(
        list.definitions
            .iter()
            .map(|d| d.version)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );

    let mut on_v2 = snapshot()?;
    on_v2.matter_version = 2;
    let started_on_v2 = h.submit(on_v2).await?;
    h.stage(&started_on_v2, "decision", 1).await?;
    // The v1 instance still follows v1: acceptance, then joint review.
    h.approve_stage(&started_on_v1, "acceptance", 1).await?;
    h.stage(&started_on_v1, "joint_review", 3).await?;
    assert_eq!(h.workflow(&started_on_v1).await?.definition_version, 1);
    assert_eq!(h.workflow(&started_on_v2).await?.definition_version, 2);
    Ok(())
}

async fn timers_fire_once_with_two_workers(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let app = h.submit(snapshot()?).await?;
    let task = h.stage(&app, "acceptance", 1).await?.remove(0);
    let due = task
        .due_time
        .as_ref()
        .and_then(tongban_proto::time::from_ts)
        .ok_or_else(|| anyhow::anyhow!("no due time"))?;
    // Two more engines over the same database (each with its own connection), as two replicas.
    let mut workers = Vec::new();
    for _ in 0..2 {
        let mut ctx = h.ctx.clone();
        ctx.db = tongban_storage::connect(&h._db.url).await?;
        workers.push(
            tongban_approval::build(
                &ctx,
                Default::default(),
                Arc::new(tongban_approval::SystemClock),
            )
            .await?,
        );
    }
    let cal = workers[0].calendar().clone();
    let soon = cal.due_soon_at(due);
    // The matter does not set escalate_after_hours: 4 working hours of grace past the deadline.
    let escalate = cal.add_working_hours(due, 4);
    assert!(escalate > due);
    let just_before = escalate - chrono::Duration::milliseconds(1);
    let late = due + chrono::Duration::days(30);
    let counts = |steps: [i64; 3]| {
        [
            ("task.due_soon", steps[0]),
            ("task.overdue", steps[1]),
            ("task.escalated", steps[2]),
        ]
    };
    for (at, expected) in [
        (soon, counts([1, 0, 0])),
        (soon, counts([1, 0, 0])),
        (due, counts([1, 1, 0])),
        (due, counts([1, 1, 0])),
        (just_before, counts([1, 1, 0])),
        (escalate, counts([1, 1, 1])),
        (escalate, counts([1, 1, 1])),
        (late, counts([1, 1, 1])),
    ] {
        let (a, b) = tokio::join!(workers[0].fire_timers(at), workers[1].fire_timers(at));
        a?;
        b?;
        for (ty, n) in expected {
            let got = h.count(&format!("SELECT COUNT(*) AS n FROM outbox WHERE routing_key = '{ty}' AND application_id = '{app}'")).await;
            assert_eq!(got, n, "{ty} after firing at {at}");
        }
        if at < escalate {
            assert!(!h.tasks(&app, &[]).await?[0].escalated, "not yet at {at}");
        }
    }
    let t = h.tasks(&app, &[]).await?.remove(0);
    assert!(t.escalated);
    assert_eq!(
        t.version, task.version,
        "reminders do not make the clerk's version stale"
    );
    let trail = h
        .client
        .clone()
        .get_audit_trail(authed(
            pb::GetAuditTrailRequest {
                application_id: app.clone(),
            },
            &h.admin(),
        ))
        .await?
        .into_inner();
    assert!(
        trail
            .entries
            .iter()
            .any(|e| e.action == "escalate" && e.reason == "supervisor:admin_approval")
    );
    Ok(())
}

async fn audit_tampering_is_detected(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let app = h.submit(snapshot()?).await?;
    h.approve_stage(&app, "acceptance", 1).await?;
    h.stage(&app, "joint_review", 3).await?;
    let mut client = h.client.clone();
    let req = || {
        authed(
            pb::GetAuditTrailRequest {
                application_id: app.clone(),
            },
            &h.admin(),
        )
    };
    let trail = client.get_audit_trail(req()).await?.into_inner();
    assert!(trail.verified);
    assert!(trail.entries.len() >= 5, "{:?}", trail.entries);
    let approve = trail
        .entries
        .iter()
        .find(|e| e.action == "approve")
        .ok_or_else(|| anyhow::anyhow!("no approve entry"))?;
    assert_eq!(approve.actor, "clerk:clerk-admin_approval@admin_approval");
    assert_eq!(
        approve.prev_hash,
        trail.entries[(approve.seq - 2) as usize].hash
    );
    let b = h.db.get_database_backend();
    h.db.execute_raw(sea_orm::Statement::from_string(
        b,
        format!(
            "UPDATE audit SET reason = '驳回' WHERE application_id = '{app}' AND seq = {}",
            approve.seq
        ),
    ))
    .await?;
    let trail = client.get_audit_trail(req()).await?.into_inner();
    assert!(!trail.verified);
    assert_eq!(trail.first_bad_seq, approve.seq);
    let applicant = h.applicant();
    let own = client
        .get_workflow(authed(
            pb::GetWorkflowRequest {
                application_id: app.clone(),
            },
            &applicant,
        ))
        .await?;
    assert!(
        !own.into_inner()
            .workflow
            .unwrap_or_default()
            .timeline
            .is_empty()
    );
    Ok(())
}

async fn redelivered_submission_creates_one_instance(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let snap = snapshot()?;
    let app = snap.application_id.clone();
    let env = tongban_outbox::new_envelope(
        "intake",
        &app,
        Payload::ApplicationSubmitted(events::ApplicationSubmitted {
            application: Some(snap.clone()),
        }),
    );
    // Same event twice, then the same application under a new event id, then a marker.
    let other = tongban_outbox::new_envelope(
        "intake",
        &app,
        Payload::ApplicationSubmitted(events::ApplicationSubmitted {
            application: Some(snap),
        }),
    );
    let marker = tongban_outbox::new_envelope(
        "intake",
        "marker",
        Payload::ApplicationWithdrawn(events::ApplicationWithdrawn::default()),
    );
    h.publish(&[&env, &env, &other, &marker]).await?;
    eventually(WAIT, "marker applied", || async {
        (h.count("SELECT COUNT(*) AS n FROM inbox").await == 3).then_some(())
    })
    .await?;
    assert_eq!(h.count("SELECT COUNT(*) AS n FROM instances").await, 1);
    assert_eq!(h.count("SELECT COUNT(*) AS n FROM tasks").await, 1);
    assert_eq!(
        h.count("SELECT COUNT(*) AS n FROM outbox WHERE routing_key = 'task.created'")
            .await,
        1
    );
    Ok(())
}

async fn request_reopens_when_unsatisfied_and_closes_when_satisfied(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
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
    let app = h.submit(snap).await?;
    h.approve_stage(&app, "accept", 1).await?;
    h.approve_stage(&app, "assign", 1).await?;
    let handle = h.approve_stage(&app, "handle", 1).await?;
    assert_eq!(handle[0].kind(), pb::TaskKind::HandleRequest);
    assert_eq!(handle[0].department, "eco_env");
    let feedback = h.stage(&app, "feedback", 1).await?.remove(0);
    h.decide(&feedback, pb::Decision::Approve, "已督促办结")
        .await?;
    let answered = h.event(&app, "request.answered", 1).await?;
    let Some(Payload::RequestAnswered(a)) = answered.payload else {
        anyhow::bail!("wrong payload")
    };
    assert_eq!(a.answer, "已督促办结");
    assert_eq!(
        h.workflow(&app).await?.status(),
        pb::WorkflowStatus::AwaitingRating
    );

    let applicant = h.applicant();
    let rate = |r: pb::Rating| {
        authed(
            pb::RateOutcomeRequest {
                application_id: app.clone(),
                rating: r as i32,
                comment: "评价".into(),
            },
            &applicant,
        )
    };
    let mut client = h.client.clone();
    let other = h
        .keys
        .token(Role::Applicant, None, Some("91440300708461136T"));
    let denied = client
        .rate_outcome(authed(
            pb::RateOutcomeRequest {
                application_id: app.clone(),
                rating: 1,
                comment: String::new(),
            },
            &other,
        ))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(denied, Some(Code::PermissionDenied));
    let wf = client
        .rate_outcome(rate(pb::Rating::Unsatisfied))
        .await?
        .into_inner()
        .workflow
        .unwrap_or_default();
    assert_eq!(wf.status(), pb::WorkflowStatus::Running);
    let rated = h.event(&app, "outcome.rated", 1).await?;
    assert!(
        matches!(rated.payload, Some(Payload::OutcomeRated(ref r)) if r.reopened && r.rating == "unsatisfied")
    );
    let again = client
        .rate_outcome(rate(pb::Rating::Satisfied))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(
        again,
        Some(Code::FailedPrecondition),
        "nothing to rate while it is being handled again"
    );
    h.approve_stage(&app, "handle", 1).await?;
    h.approve_stage(&app, "feedback", 1).await?;
    h.event(&app, "request.answered", 2).await?;
    let wf = client
        .rate_outcome(rate(pb::Rating::Satisfied))
        .await?
        .into_inner()
        .workflow
        .unwrap_or_default();
    assert_eq!(wf.status(), pb::WorkflowStatus::Closed);
    h.event(&app, "application.closed", 1).await?;
    Ok(())
}

async fn supplement_pauses_and_resumes(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let app = h.submit(snapshot()?).await?;
    let t = h.stage(&app, "acceptance", 1).await?.remove(0);
    let mut client = h.client.clone();
    let claimed = client
        .claim_task(authed(
            pb::ClaimTaskRequest {
                task_id: t.task_id.clone(),
                expected_version: t.version,
            },
            &h.clerk("admin_approval"),
        ))
        .await?
        .into_inner()
        .task
        .unwrap_or_default();
    assert_eq!(claimed.status(), pb::TaskStatus::Claimed);
    let req = pb::DecideTaskRequest {
        task_id: t.task_id.clone(),
        decision: pb::Decision::RequestSupplement as i32,
        comment: "请补交用地证明".into(),
        expected_version: claimed.version,
        requested_materials: vec!["land_use_certificate".into()],
    };
    client
        .decide_task(authed(req, &h.clerk("admin_approval")))
        .await?;
    let asked = h.event(&app, "application.supplement_requested", 1).await?;
    assert!(
        matches!(asked.payload, Some(Payload::SupplementRequested(ref s)) if s.task_id == t.task_id && s.requested_materials == ["land_use_certificate"])
    );
    assert_eq!(
        h.workflow(&app).await?.status(),
        pb::WorkflowStatus::WaitingSupplement
    );

    let supplied = tongban_outbox::new_envelope(
        "intake",
        &app,
        Payload::ApplicationSupplemented(events::ApplicationSupplemented {
            note: "已补交".into(),
            ..Default::default()
        }),
    );
    h.publish(&[&supplied]).await?;
    let reopened = h.stage(&app, "acceptance", 1).await?.remove(0);
    assert_eq!(reopened.task_id, t.task_id);
    assert!(reopened.version > claimed.version + 1, "a new version");
    assert_eq!(reopened.status(), pb::TaskStatus::Open);
    assert_eq!(
        h.workflow(&app).await?.status(),
        pb::WorkflowStatus::Running
    );
    h.decide(&reopened, pb::Decision::Approve, "").await?;
    h.stage(&app, "joint_review", 3).await?;
    Ok(())
}

/// A second engine over the harness's database, to run the timer worker at chosen instants.
async fn timer_worker(h: &Harness) -> anyhow::Result<Arc<tongban_approval::service::Approval>> {
    let mut ctx = h.ctx.clone();
    ctx.db = tongban_storage::connect(&h._db.url).await?;
    tongban_approval::build(
        &ctx,
        Default::default(),
        Arc::new(tongban_approval::SystemClock),
    )
    .await
}

async fn audit(h: &Harness, app: &str) -> anyhow::Result<Vec<pb::AuditEntry>> {
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

fn due_of(t: &pb::Task) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    t.due_time
        .as_ref()
        .and_then(tongban_proto::time::from_ts)
        .ok_or_else(|| anyhow::anyhow!("no due time"))
}

/// A matter without `decision_number_prefix` numbers its decisions after its lead department.
async fn decision_number_falls_back_to_the_lead_department(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let v1 = std::fs::read_to_string(
        tongban_testkit::deploy_dir().join("matters/env.eia.report_form.v1.toml"),
    )?;
    assert!(v1.contains("decision_number_prefix = \"松环审\"\n"));
    let cut = v1
        .find("[[stages]]")
        .ok_or_else(|| anyhow::anyhow!("no stages"))?;
    let decision = v1
        .find("[[stages]]\nid = \"decision\"")
        .ok_or_else(|| anyhow::anyhow!("no decision stage"))?;
    let v2 = format!("{}{}", &v1[..cut], &v1[decision..])
        .replace("version = 1", "version = 2")
        .replace("decision_number_prefix = \"松环审\"\n", "");
    h.client
        .publish_definition(authed(
            pb::PublishDefinitionRequest { source: v2 },
            &h.admin(),
        ))
        .await?;
    let mut snap = snapshot()?;
    snap.matter_version = 2;
    let app = h.submit(snap).await?;
    h.approve_stage(&app, "decision", 1).await?;
    let approved = h.event(&app, "application.approved", 1).await?;
    let Some(Payload::ApplicationApproved(a)) = approved.payload else {
        anyhow::bail!("wrong payload")
    };
    assert!(
        a.decision_number.starts_with("eco_env〔") && a.decision_number.ends_with("〕1号"),
        "{}",
        a.decision_number
    );
    Ok(())
}

/// An enterprise request's overdue task goes to the supervising department's supervisors,
/// after the grace period.
async fn request_escalates_to_the_supervising_department(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
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
    let app = h.submit(snap).await?;
    h.approve_stage(&app, "accept", 1).await?;
    h.approve_stage(&app, "assign", 1).await?;
    let handle = h.stage(&app, "handle", 1).await?.remove(0);
    assert_eq!(handle.department, "eco_env");
    let due = due_of(&handle)?;
    let worker = timer_worker(&h).await?;
    let escalate = worker.calendar().add_working_hours(due, 4);
    worker.fire_timers(due).await?;
    let escalations = |trail: &[pb::AuditEntry]| {
        trail
            .iter()
            .filter(|e| e.action == "escalate" && e.task_id == handle.task_id)
            .map(|e| e.reason.clone())
            .collect::<Vec<_>>()
    };
    assert!(
        escalations(&audit(&h, &app).await?).is_empty(),
        "overdue, not yet escalated"
    );
    worker.fire_timers(escalate).await?;
    worker.fire_timers(escalate).await?;
    assert_eq!(
        escalations(&audit(&h, &app).await?),
        ["supervisor:business_env"]
    );
    Ok(())
}

async fn delegate_task_rules(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let app = h.submit(snapshot()?).await?;
    let t = h.stage(&app, "acceptance", 1).await?.remove(0);
    assert_eq!(t.department, "admin_approval");
    let mut client = h.client.clone();
    let delegate = |version: i64, assignee: &str, department: &str, token: &str| {
        authed(
            pb::DelegateTaskRequest {
                task_id: t.task_id.clone(),
                assignee: assignee.into(),
                department: department.into(),
                reason: "休假".into(),
                expected_version: version,
            },
            token,
        )
    };
    let clerk = h.clerk("admin_approval");

    // A clerk hands it to a colleague of the same department.
    let to_colleague = client
        .delegate_task(delegate(t.version, "clerk-b", "", &clerk))
        .await?
        .into_inner()
        .task
        .unwrap_or_default();
    assert_eq!(to_colleague.assignee, "clerk-b");
    assert_eq!(to_colleague.status(), pb::TaskStatus::Claimed);
    assert_eq!(to_colleague.department, "admin_approval");
    assert_eq!(to_colleague.version, t.version + 1);
    // Naming its own department is not a move.
    let same = client
        .delegate_task(delegate(
            to_colleague.version,
            "clerk-c",
            "admin_approval",
            &clerk,
        ))
        .await?
        .into_inner()
        .task
        .unwrap_or_default();
    assert_eq!(same.assignee, "clerk-c");
    assert_eq!(same.department, "admin_approval");

    // A clerk may not move it to another department.
    let denied = client
        .delegate_task(delegate(same.version, "eco-clerk", "eco_env", &clerk))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(denied, Some(Code::PermissionDenied));

    // A stale version is refused.
    let stale = client
        .delegate_task(delegate(t.version, "clerk-d", "", &clerk))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(stale, Some(Code::Aborted));

    // A supervisor moves it.
    let supervisor = h.keys.token(Role::Supervisor, Some("admin_approval"), None);
    let moved = client
        .delegate_task(delegate(same.version, "eco-clerk", "eco_env", &supervisor))
        .await?
        .into_inner()
        .task
        .unwrap_or_default();
    assert_eq!(moved.department, "eco_env");
    assert_eq!(moved.assignee, "eco-clerk");
    assert_eq!(moved.status(), pb::TaskStatus::Claimed);

    // The listing shows the delegate as assignee, in the new department.
    let listed = h
        .tasks(&app, &[])
        .await?
        .into_iter()
        .find(|x| x.task_id == t.task_id)
        .ok_or_else(|| anyhow::anyhow!("task not listed"))?;
    assert_eq!(listed.assignee, "eco-clerk");
    assert_eq!(listed.department, "eco_env");
    assert_eq!(listed.version, moved.version);
    let mine = client
        .list_tasks(authed(
            pb::ListTasksRequest {
                assignee: "eco-clerk".into(),
                department: "eco_env".into(),
                ..Default::default()
            },
            &h.admin(),
        ))
        .await?
        .into_inner()
        .tasks;
    assert_eq!(
        mine.iter().map(|x| x.task_id.as_str()).collect::<Vec<_>>(),
        [t.task_id.as_str()]
    );

    // The audit trail records each hand-over, and not the refused ones.
    let delegations: Vec<_> = audit(&h, &app)
        .await?
        .into_iter()
        .filter(|e| e.action == "delegate" && e.task_id == t.task_id)
        .collect();
    let reasons: Vec<_> = delegations.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "to clerk-b; 休假",
            "to clerk-c@admin_approval; 休假",
            "to eco-clerk@eco_env; 休假"
        ]
    );
    assert_eq!(
        delegations[2].role,
        "supervisor".to_string(),
        "{:?}",
        delegations[2]
    );
    assert_eq!(delegations[2].department, "eco_env");
    Ok(())
}

async fn list_tasks_pages_without_gaps_or_repeats(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    // Joint review with water intake: four tasks, three of them with the same deadline (ties
    // on due time are broken by task id), plus another application's acceptance task.
    let mut water = snapshot()?;
    if let Some(f) = water.form.as_mut() {
        f.fields.insert(
            "uses_water_intake".into(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::BoolValue(true)),
            },
        );
    }
    let first = h.submit(water).await?;
    h.approve_stage(&first, "acceptance", 1).await?;
    let joint = h.stage(&first, "joint_review", 4).await?;
    let mut dues: Vec<_> = joint.iter().map(due_of).collect::<anyhow::Result<_>>()?;
    dues.sort();
    dues.dedup();
    assert_eq!(dues.len(), 2, "three 24-hour reviews share a deadline");
    let second = h.submit(snapshot()?).await?;
    h.stage(&second, "acceptance", 1).await?;

    let all = h
        .client
        .clone()
        .list_tasks(authed(pb::ListTasksRequest::default(), &h.admin()))
        .await?
        .into_inner();
    assert_eq!(all.tasks.len(), 5);
    assert!(all.next_page_token.is_empty());

    let mut paged = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = h
            .client
            .clone()
            .list_tasks(authed(
                pb::ListTasksRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    ..Default::default()
                },
                &h.admin(),
            ))
            .await?
            .into_inner();
        pages += 1;
        assert!(page.tasks.len() <= 2);
        paged.extend(page.tasks);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    let ids = |ts: &[pb::Task]| ts.iter().map(|t| t.task_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&paged), ids(&all.tasks), "same tasks, same order");
    let mut distinct = ids(&paged);
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "no repeats");
    let order: Vec<_> = paged
        .iter()
        .map(|t| due_of(t).map(|d| (d, t.task_id.clone())))
        .collect::<anyhow::Result<_>>()?;
    assert!(order.windows(2).all(|w| w[0] < w[1]), "soonest due first");

    let bad = h
        .client
        .clone()
        .list_tasks(authed(
            pb::ListTasksRequest {
                page_size: 2,
                page_token: "not-a-token".into(),
                ..Default::default()
            },
            &h.admin(),
        ))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(bad, Some(Code::InvalidArgument));
    Ok(())
}

tongban_testkit::on_both!(
    decision_number_falls_back_to_the_lead_department,
    request_escalates_to_the_supervising_department,
    delegate_task_rules,
    list_tasks_pages_without_gaps_or_repeats,
    joint_review_then_decision_approves,
    any_reject_rejects_and_cancels_the_rest,
    credit_class_d_adds_extra_review,
    pledge_a_skips_review_and_follows_up,
    concurrent_decisions_one_wins,
    running_instances_keep_their_version,
    timers_fire_once_with_two_workers,
    audit_tampering_is_detected,
    redelivered_submission_creates_one_instance,
    request_reopens_when_unsatisfied_and_closes_when_satisfied,
    supplement_pauses_and_resumes,
);
