//! The production topology as separate processes: each service its own binary and its own
//! PostgreSQL database, events over RabbitMQ on an exchange unique to the test.

use std::{process::Command, time::Duration};

use tongban_auth::Role;
use tongban_e2e::{Proc, binary, free_ports, wait_for_grpc};
use tongban_proto::{
    approval::{self as apb, approval_service_client::ApprovalServiceClient},
    dispatch::{self as dpb, dispatch_service_client::DispatchServiceClient},
    intake::{self as pb, intake_service_client::IntakeServiceClient},
};
use tongban_testkit::{Backend, Keys, TestDb, authed, eventually};

struct Stack {
    dir: tempfile::TempDir,
    exchange: String,
    keys: Keys,
    _dbs: Vec<TestDb>,
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
        })
    }

    /// Starts `bin` as `service` on `port` with a fresh database.
    async fn service(&mut self, bin: &str, service: &str, port: u16) -> anyhow::Result<Proc> {
        self.service_with(bin, service, port, &[]).await
    }

    async fn service_with(
        &mut self,
        bin: &str,
        service: &str,
        port: u16,
        env: &[(String, String)],
    ) -> anyhow::Result<Proc> {
        let db = TestDb::new(Backend::Postgres, service).await?;
        let mut cmd = Command::new(binary(bin)?);
        cmd.env("TONGBAN_DATABASE_URL", &db.url)
            .env("TONGBAN_BUS_URL", tongban_testkit::amqp_url_for_processes())
            .env("TONGBAN_EXCHANGE", &self.exchange)
            .env("TONGBAN_LISTEN", format!("127.0.0.1:{port}"))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_process_serves_and_stops_cleanly_on_sigterm() -> anyhow::Result<()> {
    let mut stack = Stack::new().await?;
    let port = free_ports(1)?[0];
    let mut intake = stack.service("tongban-intake", "intake", port).await?;
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

    let pid = intake.pid().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    assert!(status.success());
    let code = intake.wait_exit(Duration::from_secs(20)).await?;
    assert_eq!(code, Some(0), "graceful stop exits 0:\n{}", intake.tail());
    Ok(())
}

/// The county's scenario across real processes: one application entered once, approved by the
/// acceptance office, three departments in parallel and the lead bureau, then delivered to all
/// four downstream platforms exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entered_once_approved_in_parallel_delivered_everywhere() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut stack = Stack::new().await?;
    let ports = free_ports(7)?;
    let (intake_port, approval_port, dispatch_port) = (ports[0], ports[1], ports[2]);
    let platforms = tongban_platform::load_dir(tongban_testkit::deploy_dir().join("platforms"))?;
    anyhow::ensure!(platforms.len() == 4, "four default platforms");

    // The simulators, one port each, and dispatch told where they are.
    let mut sim_cmd = Command::new(binary("tongban-platform-sim")?);
    sim_cmd
        .arg("--platforms")
        .arg(tongban_testkit::deploy_dir().join("platforms"));
    let mut dispatch_env = Vec::new();
    let mut sim_urls = Vec::new();
    for (p, port) in platforms.iter().zip(&ports[3..]) {
        sim_cmd.arg("--port").arg(format!("{}={port}", p.id));
        let url = format!("http://127.0.0.1:{port}{}", p.endpoint_url.path);
        dispatch_env.push((
            format!("TONGBAN_PLATFORM_{}_ENDPOINT", p.id.to_ascii_uppercase()),
            url.clone(),
        ));
        dispatch_env.push((
            format!(
                "TONGBAN_PLATFORM_{}_QUERY_ENDPOINT",
                p.id.to_ascii_uppercase()
            ),
            format!("{url}/_received"),
        ));
        sim_urls.push((p.id.clone(), format!("{url}/_received")));
    }
    let mut sim = Proc::spawn("platform-sim", sim_cmd, stack.dir.path())?;

    let mut intake = stack
        .service("tongban-intake", "intake", intake_port)
        .await?;
    let mut approval = stack
        .service("tongban-approval", "approval", approval_port)
        .await?;
    let mut dispatch = stack
        .service_with("tongban-dispatch", "dispatch", dispatch_port, &dispatch_env)
        .await?;
    for port in [intake_port, approval_port, dispatch_port] {
        wait_for_grpc(
            port,
            &mut [&mut intake, &mut approval, &mut dispatch, &mut sim],
            Duration::from_secs(60),
        )
        .await?;
    }

    let mut intake_client =
        IntakeServiceClient::connect(format!("http://127.0.0.1:{intake_port}")).await?;
    let approval_client =
        ApprovalServiceClient::connect(format!("http://127.0.0.1:{approval_port}")).await?;
    let dispatch_client =
        DispatchServiceClient::connect(format!("http://127.0.0.1:{dispatch_port}")).await?;
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
    for (platform, received_url) in &sim_urls {
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
    Ok(())
}
