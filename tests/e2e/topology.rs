//! The production topology as separate processes: each service its own binary and its own
//! PostgreSQL database, events over RabbitMQ on an exchange unique to the test. One service
//! alone is started by hand; the whole topology by `tongban local up`.

use std::{process::Command, time::Duration};

use tongban_auth::Role;
use tongban_e2e::{LocalStack, Log, Proc, binary, free_ports, wait_for_grpc};
use tongban_proto::{
    approval::{self as apb, approval_service_client::ApprovalServiceClient},
    dispatch::{self as dpb, dispatch_service_client::DispatchServiceClient},
    intake::{self as pb, intake_service_client::IntakeServiceClient},
    notification::{self as npb, notification_service_client::NotificationServiceClient},
};
use tongban_testkit::{Backend, Keys, TestDb, authed, eventually};

struct Stack {
    dir: tempfile::TempDir,
    exchange: String,
    keys: Keys,
    _dbs: Vec<TestDb>,
    /// service → the port its `/metrics` is on (each process gets its own).
    metrics: std::collections::HashMap<String, u16>,
}

impl Stack {
    async fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let keys = Keys::new();
        // Services get only the public key set; the private key stays with the test.
        keys.write_jwks(dir.path())?;
        Ok(Self {
            dir,
            exchange: tongban_testkit::unique_exchange("e2e"),
            keys,
            _dbs: Vec::new(),
            metrics: std::collections::HashMap::new(),
        })
    }

    async fn service_with(
        &mut self,
        bin: &str,
        service: &str,
        port: u16,
        env: &[(String, String)],
    ) -> anyhow::Result<Proc> {
        let db = TestDb::new(Backend::Postgres, service).await?;
        let metrics_port = free_ports(1)?[0];
        self.metrics.insert(service.to_string(), metrics_port);
        let mut cmd = Command::new(binary(bin)?);
        cmd.env("TONGBAN_DATABASE_URL", &db.url)
            .env("TONGBAN_BUS_URL", tongban_testkit::amqp_url_for_processes())
            .env("TONGBAN_EXCHANGE", &self.exchange)
            .env("TONGBAN_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "TONGBAN_METRICS_LISTEN",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env(
                "TONGBAN_JWKS_FILE",
                self.dir.path().join(tongban_auth::keys::JWKS_FILE),
            )
            .env("TONGBAN_DEPLOY_DIR", tongban_testkit::deploy_dir())
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        self._dbs.push(db);
        Proc::spawn(service, cmd, self.dir.path())
    }
}

/// The production topology, running through `tongban local up`: the platform simulators (one
/// port per default platform) and the four services, each its own process, on the stack's
/// exchange and fresh databases. Stopped (`tongban local down --purge`) when dropped.
struct Topology {
    intake: Log,
    approval: Log,
    dispatch: Log,
    notification: Log,
    intake_url: String,
    approval_url: String,
    dispatch_url: String,
    notification_url: String,
    /// (platform id, the simulator's `_received` URL for it).
    sim_urls: Vec<(String, String)>,
    /// service → its Prometheus endpoint.
    metrics: std::collections::HashMap<String, String>,
    _local: LocalStack,
}

impl Topology {
    /// Starts the simulators and the services (with `env` added; `TONGBAN_INTAKE__…` keys
    /// reach intake only) and returns once every service answers health checks with SERVING.
    /// Tokens come from `stack.keys`, the fixed test key `tongban local` is given.
    async fn start(stack: &mut Stack, env: &[(String, String)]) -> anyhow::Result<Self> {
        let local = tokio::task::block_in_place(|| LocalStack::up_with_env(1, env))?;
        anyhow::ensure!(
            local.keys.kid() == stack.keys.kid(),
            "the stack and tongban local verify with the same test key"
        );
        let sim_urls: Vec<(String, String)> = local
            .simulators()
            .into_iter()
            .map(|(id, url)| (id, format!("{url}{}", tongban_platform::RECEIVED_SUFFIX)))
            .collect();
        anyhow::ensure!(sim_urls.len() == 4, "four default platforms: {sim_urls:?}");
        let first = |service: &str| {
            local
                .grpc(service)
                .into_iter()
                .next()
                .ok_or_else(|| anyhow::anyhow!("no {service} in {}", local.state))
        };
        Ok(Self {
            intake: local.log("intake-1"),
            approval: local.log("approval-1"),
            dispatch: local.log("dispatch-1"),
            notification: local.log("notification-1"),
            intake_url: first("intake")?,
            approval_url: first("approval")?,
            dispatch_url: first("dispatch")?,
            notification_url: first("notification")?,
            sim_urls,
            metrics: local
                .metrics_targets_by_process()
                .into_iter()
                .filter_map(|(name, target)| {
                    let service = name.strip_suffix("-1")?;
                    Some((service.to_string(), format!("http://{target}/metrics")))
                })
                .collect(),
            _local: local,
        })
    }

    async fn intake(&self) -> anyhow::Result<IntakeServiceClient<tonic::transport::Channel>> {
        Ok(IntakeServiceClient::connect(self.intake_url.clone()).await?)
    }

    async fn approval(&self) -> anyhow::Result<ApprovalServiceClient<tonic::transport::Channel>> {
        Ok(ApprovalServiceClient::connect(self.approval_url.clone()).await?)
    }

    async fn dispatch(&self) -> anyhow::Result<DispatchServiceClient<tonic::transport::Channel>> {
        Ok(DispatchServiceClient::connect(self.dispatch_url.clone()).await?)
    }

    async fn notification(
        &self,
    ) -> anyhow::Result<NotificationServiceClient<tonic::transport::Channel>> {
        Ok(NotificationServiceClient::connect(self.notification_url.clone()).await?)
    }

    /// The last log lines of every service, for a failure message.
    fn tails(&self) -> String {
        [
            &self.intake,
            &self.approval,
            &self.dispatch,
            &self.notification,
        ]
        .iter()
        .map(|p| format!("--- {}\n{}", p.name, p.tail()))
        .collect::<Vec<_>>()
        .join("\n")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_process_serves_and_stops_cleanly_on_sigterm() -> anyhow::Result<()> {
    let mut stack = Stack::new().await?;
    let port = free_ports(1)?[0];
    // A short grace period, so that the live stream opened below is cut off quickly.
    let mut intake = stack
        .service_with(
            "tongban-intake",
            "intake",
            port,
            &[("TONGBAN_SHUTDOWN_TIMEOUT_SECS".into(), "2".into())],
        )
        .await?;
    wait_for_grpc(port, &mut [&mut intake], Duration::from_secs(30)).await?;

    let mut client = IntakeServiceClient::connect(format!("http://127.0.0.1:{port}")).await?;
    let text = tongban_testkit::example_request_json()?;
    let req: pb::SubmitApplicationRequest =
        tongban_proto::json::from_json("tongban.intake.v1.SubmitApplicationRequest", &text)?;
    let token = stack
        .keys
        .token(Role::Applicant, None, Some("91350100M000100Y43"));
    let app = client
        .submit_application(authed(req, &token))
        .await?
        .into_inner();
    assert!(app.created);
    let id = app
        .application
        .map(|a| a.application_id)
        .unwrap_or_default();
    // A live stream of a pending application: it never ends by itself.
    let mut watch = client
        .watch_application(authed(
            pb::WatchApplicationRequest { application_id: id },
            &token,
        ))
        .await?
        .into_inner();
    assert!(
        watch.message().await?.is_some(),
        "the watch sends the current state"
    );

    let pid = intake.pid().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    assert!(status.success());
    // Within the 2 s grace period and some slack, open stream or not.
    let code = intake.wait_exit(Duration::from_secs(10)).await?;
    assert_eq!(code, Some(0), "graceful stop exits 0:\n{}", intake.tail());
    drop(watch);
    Ok(())
}

/// The county's scenario across real processes: one application entered once, approved by the
/// acceptance office, three departments in parallel and the lead bureau, then delivered to all
/// four downstream platforms exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entered_once_approved_in_parallel_delivered_everywhere() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut stack = Stack::new().await?;
    let top = Topology::start(&mut stack, &[]).await?;
    let (approval, intake, dispatch) = (&top.approval, &top.intake, &top.dispatch);
    let sim_urls = &top.sim_urls;
    let mut intake_client = top.intake().await?;
    let approval_client = top.approval().await?;
    let dispatch_client = top.dispatch().await?;
    let applicant = stack
        .keys
        .token(Role::Applicant, None, Some("91350100M000100Y43"));
    let admin = stack.keys.token(Role::Admin, None, None);
    let text = tongban_testkit::example_request_json()?;
    let req: pb::SubmitApplicationRequest =
        tongban_proto::json::from_json("tongban.intake.v1.SubmitApplicationRequest", &text)?;
    let id = intake_client
        .submit_application(authed(req, &applicant))
        .await?
        .into_inner()
        .application
        .map(|a| a.application_id)
        .unwrap_or_default();

    // Work the tasks as the clerks of each department until nothing is open.
    let mut decided: Vec<(String, String)> = Vec::new();
    let mut parallel_stage_size = 0;
    for _round in 0..10 {
        let open = eventually(
            Duration::from_secs(30),
            "open tasks or a final status",
            || {
                let (mut a, mut i, id, admin, applicant) = (
                    approval_client.clone(),
                    intake_client.clone(),
                    id.clone(),
                    admin.clone(),
                    applicant.clone(),
                );
                async move {
                    let tasks = a
                        .list_tasks(authed(
                            apb::ListTasksRequest {
                                application_id: id.clone(),
                                ..Default::default()
                            },
                            &admin,
                        ))
                        .await
                        .ok()?
                        .into_inner()
                        .tasks;
                    // Follow-ups (the owed land-use certificate) run beside the stages.
                    let tasks: Vec<_> = tasks
                        .into_iter()
                        .filter(|t| t.kind() == apb::TaskKind::Review)
                        .collect();
                    if !tasks.is_empty() {
                        return Some(tasks);
                    }
                    let status = i
                        .get_application(authed(
                            pb::GetApplicationRequest { application_id: id },
                            &applicant,
                        ))
                        .await
                        .ok()?
                        .into_inner()
                        .application?
                        .status();
                    (status == pb::ApplicationStatus::Approved).then(Vec::new)
                }
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}\n{}", approval.tail(), intake.tail()))?;
        if open.is_empty() {
            break;
        }
        parallel_stage_size = parallel_stage_size.max(open.len());
        for t in open {
            let clerk = stack.keys.token(Role::Clerk, Some(&t.department), None);
            let mut a = approval_client.clone();
            a.decide_task(authed(
                apb::DecideTaskRequest {
                    task_id: t.task_id.clone(),
                    decision: apb::Decision::Approve as i32,
                    comment: "同意".into(),
                    expected_version: t.version,
                    requested_materials: vec![],
                    assign_departments: vec![],
                },
                &clerk,
            ))
            .await?;
            decided.push((t.stage_id, t.department));
        }
    }
    assert_eq!(
        parallel_stage_size, 3,
        "three departments review in parallel: {decided:?}"
    );
    assert_eq!(
        decided.len(),
        5,
        "acceptance, three joint reviews, decision: {decided:?}"
    );

    // Intake reports it approved and, once dispatch is done, 4 of 4 platforms updated.
    let app = eventually(Duration::from_secs(60), "4/4 platforms delivered", || {
        let (mut i, id, applicant) = (intake_client.clone(), id.clone(), applicant.clone());
        async move {
            let a = i
                .get_application(authed(
                    pb::GetApplicationRequest { application_id: id },
                    &applicant,
                ))
                .await
                .ok()?
                .into_inner()
                .application?;
            (a.status() == pb::ApplicationStatus::Approved
                && a.deliveries.as_ref().is_some_and(|d| d.succeeded == 4))
            .then_some(a)
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", dispatch.tail()))?;
    assert!(
        app.decision_number.starts_with("松环审"),
        "{}",
        app.decision_number
    );

    // Every delivery succeeded, and each simulator holds exactly one copy per event. "4 of 4
    // platforms" can be reached while a platform's later `application.approved` delivery is
    // still under way, so wait until every platform has that one and nothing is pending.
    let platform_ids: Vec<String> = sim_urls.iter().map(|(p, _)| p.clone()).collect();
    let deliveries = eventually(Duration::from_secs(60), "every delivery to succeed", || {
        let (mut d, id, admin, platform_ids) = (
            dispatch_client.clone(),
            id.clone(),
            admin.clone(),
            platform_ids.clone(),
        );
        async move {
            let all = d
                .list_deliveries(authed(
                    dpb::ListDeliveriesRequest {
                        application_id: id,
                        page_size: 100,
                        ..Default::default()
                    },
                    &admin,
                ))
                .await
                .ok()?
                .into_inner()
                .deliveries;
            let approved_everywhere = platform_ids.iter().all(|p| {
                all.iter()
                    .any(|d| &d.platform_id == p && d.event_type == "application.approved")
            });
            let settled = all
                .iter()
                .all(|d| d.status() == dpb::DeliveryStatus::Succeeded);
            (approved_everywhere && settled).then_some(all)
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", dispatch.tail()))?;
    let http = reqwest::Client::new();
    for (platform, received_url) in sim_urls {
        let ours: Vec<&dpb::Delivery> = deliveries
            .iter()
            .filter(|d| &d.platform_id == platform)
            .collect();
        assert!(!ours.is_empty(), "{platform} got nothing");
        let received: serde_json::Value = http.get(received_url).send().await?.json().await?;
        let keys: Vec<String> = received["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(String::from))
            .collect();
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            keys.len(),
            "{platform} stored a duplicate: {keys:?}"
        );
        for d in ours {
            assert_eq!(
                d.status(),
                dpb::DeliveryStatus::Succeeded,
                "{platform}: {d:?}"
            );
            assert!(
                keys.contains(&d.idempotency_key),
                "{platform} lacks {}",
                d.idempotency_key
            );
        }
    }

    // What the application did shows in every service's metrics.
    let scrape = |service: &str| {
        let url = top.metrics.get(service).cloned().unwrap_or_default();
        let http = http.clone();
        async move { http.get(url).send().await?.error_for_status()?.text().await }
    };
    let intake_metrics = scrape("intake").await?;
    assert_series(
        &intake_metrics,
        "rpc_server_call_duration_seconds_count",
        &[
            ("rpc_method", "SubmitApplication"),
            ("rpc_service", "tongban.intake.v1.IntakeService"),
            ("rpc_grpc_status_code", "0"),
        ],
    );
    assert_series(
        &intake_metrics,
        "messaging_client_sent_messages_total",
        &[("tongban_event_type", "application.submitted")],
    );
    assert_series(&intake_metrics, "tongban_outbox_backlog", &[]);
    assert_series(&intake_metrics, "tongban_outbox_oldest_age_seconds", &[]);
    assert_series(
        &intake_metrics,
        "tongban_health_serving",
        &[("tongban_service", "intake")],
    );
    let approval_metrics = scrape("approval").await?;
    assert_series(
        &approval_metrics,
        "messaging_client_consumed_messages_total",
        &[("tongban_event_type", "application.submitted")],
    );
    assert_series(
        &approval_metrics,
        "rpc_server_call_duration_seconds_count",
        &[("rpc_method", "DecideTask"), ("rpc_grpc_status_code", "0")],
    );
    // The workload gauge is refreshed every 15 s; the owed material's follow-up task stays open.
    eventually(
        Duration::from_secs(40),
        "open tasks in the workload gauge",
        || {
            let scrape = scrape("approval");
            async move {
                let text = scrape.await.ok()?;
                series_positive(&text, "tongban_approval_tasks", &[("state", "open")]).then_some(())
            }
        },
    )
    .await?;
    let dispatch_metrics = scrape("dispatch").await?;
    for (platform, _) in sim_urls {
        assert_series(
            &dispatch_metrics,
            "tongban_dispatch_deliveries_total",
            &[("platform", platform), ("outcome", "succeeded")],
        );
        // Closed (0): every delivery went through.
        assert!(
            dispatch_metrics.contains(&format!(
                "tongban_dispatch_circuit_state{{platform=\"{platform}\"}} 0"
            )),
            "{platform}'s circuit is not reported closed"
        );
    }
    let notification_metrics = scrape("notification").await?;
    assert_series(
        &notification_metrics,
        "tongban_notifications_total",
        &[("channel", "inbox"), ("outcome", "stored")],
    );
    Ok(())
}

/// Fails unless `text` (Prometheus exposition) has a sample of `name` with all of `labels`
/// whose value is positive (a gauge at zero passes when `labels` is empty).
fn assert_series(text: &str, name: &str, labels: &[(&str, &str)]) {
    let found = series_positive(text, name, labels);
    let near: Vec<&str> = text.lines().filter(|l| l.starts_with(name)).collect();
    assert!(
        found,
        "no {name} with {labels:?} > 0 in:\n{}",
        near.join("\n")
    );
}

fn series_positive(text: &str, name: &str, labels: &[(&str, &str)]) -> bool {
    text.lines().any(|line| {
        let Some(rest) = line.strip_prefix(name) else {
            return false;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return false;
        }
        let has_labels = labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        let value: f64 = rest
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0);
        has_labels && (value > 0.0 || (labels.is_empty() && value >= 0.0))
    })
}

/// 南平闽北环保科技有限公司: class A in `deploy/credit/nanping.toml`, which the EIA matter's
/// `[pledge]` admits (告知承诺制).
const CLASS_A: &str = "91440300708461136T";

/// Revocation end to end (告知承诺制): a class-A enterprise is approved on its signed pledge, the
/// eco-environment bureau's verification finds the pledge untrue and rejects it, and then every
/// party hears of it: intake shows REVOKED, the platforms that take `application.revoked` get
/// it (and only they), the applicant's inbox has the notice, and the breach is in the credit
/// registry's ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pledge_verification_revokes_everywhere() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut stack = Stack::new().await?;
    let ledger = stack.dir.path().join("credit-breaches.jsonl");
    let intake_env = [(
        "TONGBAN_INTAKE__CREDIT__LEDGER".to_string(),
        ledger.display().to_string(),
    )];
    let top = Topology::start(&mut stack, &intake_env).await?;
    let mut intake = top.intake().await?;
    let mut approval = top.approval().await?;
    let dispatch = top.dispatch().await?;
    let notification = top.notification().await?;
    let applicant = stack.keys.token(Role::Applicant, None, Some(CLASS_A));
    let admin = stack.keys.token(Role::Admin, None, None);
    let eco_env = stack.keys.token(Role::Clerk, Some("eco_env"), None);

    let text = tongban_testkit::example_request_json()?;
    let mut req: pb::SubmitApplicationRequest =
        tongban_proto::json::from_json("tongban.intake.v1.SubmitApplicationRequest", &text)?;
    req.request_id = "e2e-revocation-1".into();
    if let Some(a) = req.applicant.as_mut() {
        a.credit_code = CLASS_A.into();
        a.name = "南平闽北环保科技有限公司".into();
    }
    req.pledge = Some(tongban_proto::common::Pledge {
        signed: true,
        statement: "本单位承诺项目符合环评审批条件，所报材料真实有效。".into(),
    });
    let id = intake
        .submit_application(authed(req, &applicant))
        .await?
        .into_inner()
        .application
        .map(|a| a.application_id)
        .unwrap_or_default();

    // Approved on the pledge at once; the verification task follows.
    let verify = eventually(
        Duration::from_secs(30),
        "approval on pledge and its verification task",
        || {
            let (mut a, id, admin) = (approval.clone(), id.clone(), admin.clone());
            async move {
                a.list_tasks(authed(
                    apb::ListTasksRequest {
                        application_id: id,
                        ..Default::default()
                    },
                    &admin,
                ))
                .await
                .ok()?
                .into_inner()
                .tasks
                .into_iter()
                .find(|t| t.kind() == apb::TaskKind::VerifyPledge)
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", top.tails()))?;
    assert_eq!(verify.department, "eco_env");
    // Intake hears of the approval on its own time (over the bus).
    let approved = eventually(Duration::from_secs(30), "intake shows APPROVED", || {
        let (mut i, id, applicant) = (intake.clone(), id.clone(), applicant.clone());
        async move {
            let a = i
                .get_application(authed(
                    pb::GetApplicationRequest { application_id: id },
                    &applicant,
                ))
                .await
                .ok()?
                .into_inner()
                .application?;
            (a.status() == pb::ApplicationStatus::Approved).then_some(a)
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", top.tails()))?;
    assert!(
        approved.decision_number.starts_with("松环审"),
        "{approved:?}"
    );

    let reason = "现场核查：实际建设地点与承诺不符";
    approval
        .decide_task(authed(
            apb::DecideTaskRequest {
                task_id: verify.task_id.clone(),
                decision: apb::Decision::Reject as i32,
                comment: reason.into(),
                expected_version: verify.version,
                requested_materials: vec![],
                assign_departments: vec![],
            },
            &eco_env,
        ))
        .await?;

    // Intake: REVOKED, with the verifier's reason.
    let revoked = eventually(Duration::from_secs(30), "intake shows REVOKED", || {
        let (mut i, id, applicant) = (intake.clone(), id.clone(), applicant.clone());
        async move {
            let a = i
                .get_application(authed(
                    pb::GetApplicationRequest { application_id: id },
                    &applicant,
                ))
                .await
                .ok()?
                .into_inner()
                .application?;
            (a.status() == pb::ApplicationStatus::Revoked).then_some(a)
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", top.tails()))?;
    assert!(revoked.status_reason.contains(reason), "{revoked:?}");

    // The platforms: exactly those whose configuration takes `application.revoked`.
    let platforms = tongban_platform::load_dir(tongban_testkit::deploy_dir().join("platforms"))?;
    let mut takes_revoked: Vec<String> = platforms
        .iter()
        .filter(|p| p.wants("application.revoked") && p.wants_matter("env.eia.report_form"))
        .map(|p| p.id.clone())
        .collect();
    takes_revoked.sort();
    anyhow::ensure!(
        !takes_revoked.is_empty(),
        "no default platform takes application.revoked"
    );
    let delivered = eventually(
        Duration::from_secs(60),
        "application.revoked delivered",
        || {
            let (mut d, id, admin, takes) = (
                dispatch.clone(),
                id.clone(),
                admin.clone(),
                takes_revoked.clone(),
            );
            async move {
                let revoked: Vec<dpb::Delivery> = d
                    .list_deliveries(authed(
                        dpb::ListDeliveriesRequest {
                            application_id: id,
                            page_size: 100,
                            ..Default::default()
                        },
                        &admin,
                    ))
                    .await
                    .ok()?
                    .into_inner()
                    .deliveries
                    .into_iter()
                    .filter(|d| d.event_type == "application.revoked")
                    .collect();
                let done = revoked.len() >= takes.len()
                    && revoked
                        .iter()
                        .all(|d| d.status() == dpb::DeliveryStatus::Succeeded);
                done.then_some(revoked)
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", top.dispatch.tail()))?;
    let mut got: Vec<String> = delivered.iter().map(|d| d.platform_id.clone()).collect();
    got.sort();
    assert_eq!(
        got, takes_revoked,
        "one revocation per platform that takes it"
    );
    let http = reqwest::Client::new();
    for d in &delivered {
        let (_, received_url) = top
            .sim_urls
            .iter()
            .find(|(p, _)| p == &d.platform_id)
            .ok_or_else(|| anyhow::anyhow!("no simulator for {}", d.platform_id))?;
        let body = http
            .get(format!("{received_url}/{}", d.idempotency_key))
            .send()
            .await?;
        assert!(
            body.status().is_success(),
            "{} did not store the revocation",
            d.platform_id
        );
        // What the platform stored is its own mapping of the revocation, reason included.
        let text = body.text().await?;
        assert!(text.contains(reason), "{}: {text}", d.platform_id);
    }

    // The applicant's inbox.
    let notice = eventually(Duration::from_secs(30), "the revocation notice", || {
        let (mut n, id, applicant) = (notification.clone(), id.clone(), applicant.clone());
        async move {
            n.list_notifications(authed(npb::ListNotificationsRequest::default(), &applicant))
                .await
                .ok()?
                .into_inner()
                .notifications
                .into_iter()
                .find(|n| n.kind == "application.revoked" && n.application_id == id)
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", top.notification.tail()))?;
    assert_eq!(notice.recipient, format!("applicant:{CLASS_A}"));
    assert!(notice.body.contains(reason), "{notice:?}");

    // The credit registry (the file source's breach ledger, which intake writes).
    let breaches = eventually(Duration::from_secs(30), "the breach in the ledger", || {
        let ledger = ledger.clone();
        async move {
            let text = std::fs::read_to_string(&ledger).ok()?;
            let lines: Vec<serde_json::Value> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            (!lines.is_empty()).then_some(lines)
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", top.intake.tail()))?;
    assert_eq!(breaches.len(), 1, "{breaches:?}");
    assert_eq!(breaches[0]["credit_code"], CLASS_A);
    assert_eq!(breaches[0]["application_id"], id.as_str());
    assert_eq!(breaches[0]["matter_code"], "env.eia.report_form");
    assert_eq!(breaches[0]["reason"], reason);
    Ok(())
}
