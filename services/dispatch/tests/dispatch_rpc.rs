//! Dispatch end to end: events on the real bus, real HTTP to in-process platform simulators on
//! free ports, real gRPC; against PostgreSQL + RabbitMQ and SQLite + the embedded bus.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use prost::Message;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tongban_auth::Role;
use tongban_bus::{Bus, OutgoingMessage, QueueSpec};
use tongban_platform::PlatformConfig;
use tongban_platform_sim::{SimHandle, SimOptions};
use tongban_proto::{
    dispatch::{self as pb, dispatch_service_client::DispatchServiceClient},
    events::{self, Envelope, envelope::Payload},
    intake::SubmitApplicationRequest,
    time::ts,
};
use tongban_testkit::{Backend, Keys, TestDb, authed, eventually};
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt;

const WAIT: Duration = Duration::from_secs(30);

/// What each shipped platform receives for one submitted + approved application.
const EXPECTED: &[(&str, usize)] = &[
    ("eia", 2),
    ("national_investment", 2),
    ("pollutant_permit", 1),
    ("provincial_gov_services", 2),
];

/// The `ErrorInfo` reason of a status (the catalogue in `tongban.common.v1.ErrorReason`).
fn reason(status: &tonic::Status) -> String {
    let info = status.get_details_error_info();
    assert_eq!(
        info.as_ref().map(|i| i.domain.as_str()),
        Some("tongban.gov")
    );
    info.map(|i| i.reason).unwrap_or_default()
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn shipped() -> anyhow::Result<Vec<PlatformConfig>> {
    Ok(tongban_platform::load_dir_with_env(
        tongban_testkit::deploy_dir().join("platforms"),
        &|_| None,
    )?)
}

struct Harness {
    client: DispatchServiceClient<Channel>,
    keys: Keys,
    db: sea_orm::DatabaseConnection,
    bus: Bus,
    sim: SimHandle,
    configs: Vec<PlatformConfig>,
    stop: CancellationToken,
    service: Option<JoinHandle<()>>,
    _db: TestDb,
    _bus_dir: Option<tempfile::TempDir>,
}

impl Harness {
    /// Simulators for the shipped platforms on free ports, and dispatch pointed at them with
    /// fast retries; `tweak` adjusts the configs further.
    async fn start(
        backend: Backend,
        tweak: impl FnOnce(&mut Vec<PlatformConfig>),
    ) -> anyhow::Result<Self> {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
        let test_db = TestDb::new(backend, "dispatch").await?;
        let (bus, bus_dir) = match backend {
            Backend::Postgres => (tongban_testkit::rabbit_bus("dispatch").await?.0, None),
            Backend::Sqlite => {
                let (b, d) = tongban_testkit::local_bus().await?;
                (b, Some(d))
            }
        };
        let platforms = shipped()?;
        let opts = SimOptions::default().all_ports_free(&platforms);
        let sim = tongban_platform_sim::serve(platforms, opts, std::future::pending()).await?;
        let mut configs = sim.client_configs();
        for c in &mut configs {
            c.retry.initial_backoff = Duration::from_millis(50);
            c.retry.max_backoff = Duration::from_millis(400);
            c.circuit.failure_threshold = 3;
            c.circuit.open_for = Duration::from_millis(300);
        }
        tweak(&mut configs);
        let db = tongban_storage::connect(&test_db.url).await?;
        let mut h = Self {
            client: DispatchServiceClient::new(
                tonic::transport::Endpoint::from_static("http://127.0.0.1:1").connect_lazy(),
            ),
            keys: Keys::new(),
            db,
            bus,
            sim,
            configs,
            stop: CancellationToken::new(),
            service: None,
            _db: test_db,
            _bus_dir: bus_dir,
        };
        h.boot().await?;
        Ok(h)
    }

    /// Starts (or restarts) the dispatch service on the same database and bus.
    async fn boot(&mut self) -> anyhow::Result<()> {
        let ctx = tongban_runtime::Context {
            db: self.db.clone(),
            bus: self.bus.clone(),
            auth: self.keys.authenticator(),
            deploy_dir: tongban_testkit::deploy_dir(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        self.stop = CancellationToken::new();
        let (token, configs) = (self.stop.clone(), self.configs.clone());
        self.service = Some(tokio::spawn(async move {
            if let Err(e) =
                tongban_dispatch::run_with_platforms(ctx, configs, listener, token).await
            {
                eprintln!("dispatch stopped: {e:#}");
            }
        }));
        // A bound listener accepts connections before the service runs; an answered call means
        // the queue is declared and the workers are up.
        let token = self.token(Role::Clerk);
        self.client = eventually(Duration::from_secs(30), "dispatch to serve", || async {
            let mut c = DispatchServiceClient::connect(format!("http://{addr}"))
                .await
                .ok()?;
            c.list_platforms(authed(pb::ListPlatformsRequest::default(), &token))
                .await
                .ok()?;
            Some(c)
        })
        .await?;
        Ok(())
    }

    async fn shutdown(&mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        if let Some(s) = self.service.take() {
            tokio::time::timeout(Duration::from_secs(15), s).await??;
        }
        Ok(())
    }

    fn token(&self, role: Role) -> String {
        self.keys.token(role, Some("eco_env"), None)
    }

    async fn publish(&self, events: &[&Envelope]) -> anyhow::Result<()> {
        let msgs: Vec<_> = events
            .iter()
            .map(|e| OutgoingMessage {
                event_id: e.event_id.clone(),
                routing_key: e.r#type.clone(),
                payload: e.encode_to_vec(),
                traceparent: None,
            })
            .collect();
        self.bus.publish_batch(&msgs).await?;
        Ok(())
    }

    fn url(&self, platform: &str) -> anyhow::Result<String> {
        Ok(self
            .sim
            .url(platform)
            .ok_or_else(|| anyhow::anyhow!("no simulator {platform}"))?
            .to_string())
    }

    async fn received(&self, platform: &str) -> anyhow::Result<Vec<String>> {
        let v: Value = http()
            .get(format!("{}/_received", self.url(platform)?))
            .send()
            .await?
            .json()
            .await?;
        Ok(v["keys"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn faults(&self, platform: &str, faults: Value) -> anyhow::Result<()> {
        let resp = http()
            .put(format!("{}/_faults", self.url(platform)?))
            .json(&faults)
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "faults: {}", resp.status());
        Ok(())
    }

    async fn deliveries(
        &self,
        platform: &str,
        status: pb::DeliveryStatus,
    ) -> anyhow::Result<Vec<pb::Delivery>> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let resp = self
                .client
                .clone()
                .list_deliveries(authed(
                    pb::ListDeliveriesRequest {
                        platform_id: platform.into(),
                        status: status as i32,
                        page_size: 3,
                        page_token: page_token.clone(),
                        ..Default::default()
                    },
                    &self.token(Role::Clerk),
                ))
                .await?
                .into_inner();
            out.extend(resp.deliveries);
            if resp.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = resp.next_page_token;
        }
    }

    /// Waits until `platform` has `n` deliveries in `status`.
    async fn wait_status(
        &self,
        platform: &str,
        status: pb::DeliveryStatus,
        n: usize,
    ) -> anyhow::Result<Vec<pb::Delivery>> {
        let r = eventually(WAIT, &format!("{n} {status:?} for {platform}"), || async {
            self.deliveries(platform, status)
                .await
                .ok()
                .filter(|d| d.len() == n)
        })
        .await;
        if r.is_err() {
            let all = self
                .deliveries(platform, pb::DeliveryStatus::Unspecified)
                .await;
            eprintln!("ledger of {platform}: {all:#?}");
        }
        r
    }

    /// Waits until every platform holds exactly what one application should give it, and the
    /// ledger says so.
    async fn wait_all_delivered(&self, per_app: usize) -> anyhow::Result<()> {
        for (platform, n) in EXPECTED {
            self.wait_status(platform, pb::DeliveryStatus::Succeeded, n * per_app)
                .await?;
            let keys = self.received(platform).await?;
            assert_eq!(keys.len(), n * per_app, "{platform} received {keys:?}");
        }
        Ok(())
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `application.submitted` (snapshot from the shipped example) and `application.approved`.
fn application() -> anyhow::Result<(Envelope, Envelope)> {
    let text = tongban_testkit::example_request_json()?;
    let req: SubmitApplicationRequest =
        tongban_proto::json::from_json("tongban.intake.v1.SubmitApplicationRequest", &text)?;
    let id = tongban_types::new_id();
    let snapshot = events::ApplicationSnapshot {
        application_id: id.clone(),
        request_id: req.request_id,
        matter_code: req.matter_code,
        matter_version: 1,
        applicant: req.applicant,
        form: req.form,
        materials: req.materials,
        commitments: req.commitments,
        submit_time: Some(ts(chrono::Utc::now())),
        ..Default::default()
    };
    let submitted = tongban_outbox::new_envelope(
        "intake",
        &id,
        Payload::ApplicationSubmitted(events::ApplicationSubmitted {
            application: Some(snapshot),
        }),
    );
    let approved = tongban_outbox::new_envelope(
        "approval",
        &id,
        Payload::ApplicationApproved(events::ApplicationApproved {
            decision_number: "松环审〔2026〕12号".into(),
            decide_time: Some(ts(chrono::Utc::now())),
            on_pledge: false,
            department: "eco_env".into(),
        }),
    );
    Ok((submitted, approved))
}

async fn fan_out_reaches_every_platform_once(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend, |_| {}).await?;
    let (submitted, approved) = application()?;
    // Redelivered events change nothing.
    h.publish(&[&submitted, &approved, &approved, &submitted])
        .await?;
    // A second application whose approval overtakes its submission: parked, then delivered.
    let (submitted2, approved2) = application()?;
    h.publish(&[&approved2]).await?;
    h.publish(&[&submitted2]).await?;
    h.wait_all_delivered(2).await?;

    let eia = h.deliveries("eia", pb::DeliveryStatus::Unspecified).await?;
    for d in &eia {
        assert_eq!(d.idempotency_key, format!("eia-{}", d.event_id));
        assert!(d.deliver_time.is_some());
    }
    let platforms = h
        .client
        .clone()
        .list_platforms(authed(
            pb::ListPlatformsRequest::default(),
            &h.token(Role::Integrator),
        ))
        .await?
        .into_inner()
        .platforms;
    assert_eq!(platforms.len(), 4);
    for p in &platforms {
        let n = EXPECTED
            .iter()
            .find(|(id, _)| *id == p.platform_id)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        assert_eq!(p.succeeded, 2 * n as u64, "{}", p.platform_id);
        assert_eq!((p.pending, p.dead_lettered), (0, 0));
        assert_eq!(p.circuit(), pb::CircuitState::Closed);
        assert_ne!(
            p.auth_kind(),
            pb::AuthKind::Unspecified,
            "{}",
            p.platform_id
        );
        assert!(
            p.timeout.is_some_and(|t| t.seconds > 0 || t.nanos > 0),
            "{}",
            p.platform_id
        );
    }
    // ListPlatforms pages in configuration order, without gaps or repeats.
    let mut paged = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = h
            .client
            .clone()
            .list_platforms(authed(
                pb::ListPlatformsRequest {
                    page_size: 3,
                    page_token: page_token.clone(),
                },
                &h.token(Role::Integrator),
            ))
            .await?
            .into_inner();
        assert!(page.platforms.len() <= 3);
        paged.extend(page.platforms.into_iter().map(|p| p.platform_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let ids: Vec<String> = platforms.iter().map(|p| p.platform_id.clone()).collect();
    assert_eq!(paged, ids);
    let bad = h
        .client
        .clone()
        .list_deliveries(authed(
            pb::ListDeliveriesRequest {
                page_token: "not-a-token".into(),
                ..Default::default()
            },
            &h.token(Role::Integrator),
        ))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("accepted a made-up page token"))?;
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(reason(&bad), "INVALID_ARGUMENT");
    // The body the platform holds is the mapped payload.
    let key = &eia[0].idempotency_key;
    let body: Value = http()
        .get(format!("{}/_received/{key}", h.url("eia")?))
        .send()
        .await?
        .json()
        .await?;
    assert!(body.to_string().contains("91350100M000100Y43"), "{body}");
    Ok(())
}

async fn platform_down_does_not_delay_the_others(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend, |_| {}).await?;
    h.faults("eia", json!({"down": true})).await?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted, &approved]).await?;
    for (platform, n) in EXPECTED.iter().filter(|(p, _)| *p != "eia") {
        h.wait_status(platform, pb::DeliveryStatus::Succeeded, *n)
            .await?;
    }
    assert!(h.received("eia").await?.is_empty());
    // The failures opened eia's circuit; its rows wait, still pending.
    eventually(WAIT, "eia attempts", || async {
        let d = h
            .deliveries("eia", pb::DeliveryStatus::Pending)
            .await
            .ok()?;
        (d.len() == 2 && d.iter().all(|d| d.attempts >= 1)).then_some(())
    })
    .await?;
    h.faults("eia", json!({})).await?;
    h.wait_all_delivered(1).await?;
    Ok(())
}

async fn failing_platform_dead_letters_then_replays(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend, |configs| {
        for c in configs.iter_mut().filter(|c| c.id == "pollutant_permit") {
            c.retry.max_attempts = 3;
            c.circuit.failure_threshold = 100;
        }
    })
    .await?;
    let mut observer = h
        .bus
        .subscribe(&QueueSpec::new(
            "test-observer",
            &["delivery.dead_lettered"],
        ))
        .await?;
    h.faults("pollutant_permit", json!({"error_rate": 1.0}))
        .await?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted, &approved]).await?;
    let dead = h
        .wait_status("pollutant_permit", pb::DeliveryStatus::DeadLettered, 1)
        .await?;
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0].last_error.contains("503"), "{}", dead[0].last_error);
    let msg = tokio::time::timeout(WAIT, observer.recv())
        .await?
        .ok_or_else(|| anyhow::anyhow!("bus closed"))?;
    let env = Envelope::decode(msg.payload.as_slice())?;
    msg.ack().await?;
    match env.payload {
        Some(Payload::DeliveryDeadLettered(d)) => {
            assert_eq!(d.platform_id, "pollutant_permit");
            assert_eq!(d.delivery_id, dead[0].delivery_id);
            assert_eq!(d.attempts, 3);
        }
        other => anyhow::bail!("unexpected event {other:?}"),
    }

    // Clerks may look but not replay.
    let err = h
        .client
        .clone()
        .replay_dead_letters(authed(
            pb::ReplayDeadLettersRequest::default(),
            &h.token(Role::Clerk),
        ))
        .await
        .err();
    assert_eq!(err.as_ref().map(|e| e.code()), Some(Code::PermissionDenied));
    assert_eq!(
        err.as_ref().map(reason).as_deref(),
        Some("PERMISSION_DENIED")
    );

    h.faults("pollutant_permit", json!({})).await?;
    let replayed = h
        .client
        .clone()
        .replay_dead_letters(authed(
            pb::ReplayDeadLettersRequest {
                platform_id: "pollutant_permit".into(),
                ..Default::default()
            },
            &h.token(Role::Supervisor),
        ))
        .await?
        .into_inner()
        .replayed;
    assert_eq!(replayed, 1);
    h.wait_all_delivered(1).await?;

    // A delivered row cannot be retried; a missing id is named; an unknown one is not found.
    let sup = h.token(Role::Supervisor);
    let done = &h
        .deliveries("pollutant_permit", pb::DeliveryStatus::Succeeded)
        .await?[0];
    let code = |r: Result<_, tonic::Status>| r.err().map(|e| (e.code(), reason(&e)));
    let mut c = h.client.clone();
    let r = c
        .retry_delivery(authed(
            pb::RetryDeliveryRequest {
                delivery_id: done.delivery_id.clone(),
            },
            &sup,
        ))
        .await;
    assert_eq!(
        code(r),
        Some((Code::FailedPrecondition, "FAILED_PRECONDITION".into()))
    );
    let r = c
        .retry_delivery(authed(pb::RetryDeliveryRequest::default(), &sup))
        .await;
    let status = r.err().ok_or_else(|| anyhow::anyhow!("accepted"))?;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "INVALID_ARGUMENT");
    let fields: Vec<String> = status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert_eq!(fields, vec!["delivery_id".to_string()]);
    let r = c
        .retry_delivery(authed(
            pb::RetryDeliveryRequest {
                delivery_id: "nope".into(),
            },
            &sup,
        ))
        .await;
    assert_eq!(code(r), Some((Code::NotFound, "NOT_FOUND".into())));
    Ok(())
}

async fn restart_mid_delivery_loses_nothing_and_duplicates_nothing(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut h = Harness::start(backend, |_| {}).await?;
    h.faults("eia", json!({"latency_ms": 1500})).await?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted, &approved]).await?;
    for (platform, n) in EXPECTED.iter().filter(|(p, _)| *p != "eia") {
        h.wait_status(platform, pb::DeliveryStatus::Succeeded, *n)
            .await?;
    }
    // eia's requests are in flight (the simulator holds them); stop dispatch now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.shutdown().await?;
    let succeeded_before = h.received("eia").await?.len();
    assert!(succeeded_before <= 2);
    // Let the simulator finish whatever it was holding, then restart on the same database.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    h.faults("eia", json!({})).await?;
    h.boot().await?;
    h.wait_all_delivered(1).await?;
    let keys = h.received("eia").await?;
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "{keys:?}");
    Ok(())
}

async fn reconcile_redelivers_what_a_platform_lost(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend, |_| {}).await?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted, &approved]).await?;
    h.wait_all_delivered(1).await?;
    let lost = http()
        .delete(format!("{}/_received", h.url("eia")?))
        .send()
        .await?;
    assert!(lost.status().is_success());

    let admin = h.token(Role::Admin);
    let mut c = h.client.clone();
    let report = c
        .reconcile(authed(
            pb::ReconcileRequest {
                platform_id: "eia".into(),
                redeliver_missing: false,
            },
            &admin,
        ))
        .await?
        .into_inner();
    assert_eq!((report.missing.len(), report.matched), (2, 0));
    assert!(report.extra.is_empty());
    let report = c
        .reconcile(authed(
            pb::ReconcileRequest {
                platform_id: "eia".into(),
                redeliver_missing: true,
            },
            &admin,
        ))
        .await?
        .into_inner();
    assert_eq!(report.redelivered, 2);
    h.wait_all_delivered(1).await?;
    let report = c
        .reconcile(authed(
            pb::ReconcileRequest {
                platform_id: "eia".into(),
                redeliver_missing: false,
            },
            &admin,
        ))
        .await?
        .into_inner();
    assert_eq!((report.missing.len(), report.matched), (0, 2));

    let r = c
        .reconcile(authed(
            pb::ReconcileRequest {
                platform_id: "nowhere".into(),
                redeliver_missing: false,
            },
            &admin,
        ))
        .await;
    assert_eq!(r.err().map(|e| e.code()), Some(Code::NotFound));
    let r = c
        .reconcile(authed(
            pb::ReconcileRequest {
                platform_id: "eia".into(),
                redeliver_missing: true,
            },
            &h.token(Role::Clerk),
        ))
        .await;
    assert_eq!(r.err().map(|e| e.code()), Some(Code::PermissionDenied));
    Ok(())
}

async fn bad_mapping_stops_start_up_naming_file_and_field(backend: Backend) -> anyhow::Result<()> {
    let test_db = TestDb::new(backend, "dispatch").await?;
    let (bus, _bus_dir) = match backend {
        Backend::Postgres => (tongban_testkit::rabbit_bus("dispatch").await?.0, None),
        Backend::Sqlite => {
            let (b, d) = tongban_testkit::local_bus().await?;
            (b, Some(d))
        }
    };
    let deploy = tempfile::tempdir()?;
    let dir = deploy.path().join("platforms");
    std::fs::create_dir_all(&dir)?;
    let shipped_dir: PathBuf = tongban_testkit::deploy_dir().join("platforms");
    let mut files: HashMap<String, String> = HashMap::new();
    for entry in std::fs::read_dir(&shipped_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            files.insert(name, std::fs::read_to_string(&path)?);
        }
    }
    for (name, mut text) in files {
        if name == "eia.toml" {
            text = text.replace("format = \"date:%Y-%m-%d\" }", "format = \"date:%Q\" }");
        }
        std::fs::write(dir.join(name), text)?;
    }
    let keys = Keys::new();
    let ctx = tongban_runtime::Context {
        db: tongban_storage::connect(&test_db.url).await?,
        bus,
        auth: keys.authenticator(),
        deploy_dir: deploy.path().to_path_buf(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let err = tongban_dispatch::run(ctx, listener, CancellationToken::new())
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("started with a bad mapping"))?
        .to_string();
    assert!(err.contains("eia.toml"), "{err}");
    assert!(err.contains("mapping.sqsj.format"), "{err}");
    Ok(())
}

tongban_testkit::on_both!(
    fan_out_reaches_every_platform_once,
    platform_down_does_not_delay_the_others,
    failing_platform_dead_letters_then_replays,
    restart_mid_delivery_loses_nothing_and_duplicates_nothing,
    reconcile_redelivers_what_a_platform_lost,
    bad_mapping_stops_start_up_naming_file_and_field,
);
