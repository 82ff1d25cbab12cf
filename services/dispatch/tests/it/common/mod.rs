//! The shared harness of dispatch's tests: events on the real bus, real HTTP to in-process platform simulators on free ports, real gRPC; against PostgreSQL + RabbitMQ and SQLite + the embedded bus.

#![allow(dead_code, unused_imports, unreachable_pub)]

pub use std::{collections::HashMap, path::PathBuf, time::Duration};

pub use prost::Message;
pub use serde_json::{Value, json};
pub use tokio::task::JoinHandle;
pub use tokio_util::sync::CancellationToken;
pub use tongban_auth::Role;
pub use tongban_bus::{Bus, OutgoingMessage, QueueSpec};
pub use tongban_platform::PlatformConfig;
pub use tongban_platform_sim::{SimHandle, SimOptions};
pub use tongban_proto::{
    dispatch::{self as pb, dispatch_service_client::DispatchServiceClient},
    events::{self, Envelope, envelope::Payload},
    intake::SubmitApplicationRequest,
    time::ts,
};
pub use tongban_testkit::{Backend, Keys, TestDb, authed, eventually};
pub use tonic::{Code, transport::Channel};
pub use tonic_types::StatusExt;

pub const WAIT: Duration = Duration::from_secs(30);

/// What each shipped platform receives for one submitted + approved application.
pub const EXPECTED: &[(&str, usize)] = &[
    ("eia", 2),
    ("national_investment", 2),
    ("pollutant_permit", 1),
    ("provincial_gov_services", 2),
];

/// The `ErrorInfo` reason of a status (the catalogue in `tongban.common.v1.ErrorReason`).
pub fn reason(status: &tonic::Status) -> String {
    let info = status.get_details_error_info();
    assert_eq!(
        info.as_ref().map(|i| i.domain.as_str()),
        Some("tongban.gov")
    );
    info.map(|i| i.reason).unwrap_or_default()
}

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub fn shipped() -> anyhow::Result<Vec<PlatformConfig>> {
    Ok(tongban_platform::load_dir_with_env(
        tongban_testkit::deploy_dir().join("platforms"),
        &|_| None,
    )?)
}

pub struct Harness {
    pub client: DispatchServiceClient<Channel>,
    pub keys: Keys,
    pub db: sea_orm::DatabaseConnection,
    pub bus: Bus,
    pub sim: SimHandle,
    pub configs: Vec<PlatformConfig>,
    pub stop: CancellationToken,
    pub service: Option<JoinHandle<()>>,
    pub _db: TestDb,
    pub _bus_dir: Option<tempfile::TempDir>,
}

impl Harness {
    /// Simulators for the shipped platforms on free ports, and dispatch pointed at them with
    /// fast retries; `tweak` adjusts the configs further.
    pub async fn start(
        backend: Backend,
        tweak: impl FnOnce(&mut Vec<PlatformConfig>),
    ) -> anyhow::Result<Self> {
        Self::start_with_configs(backend, shipped()?, tweak).await
    }

    /// [`Harness::start`] with these platforms (e.g. loaded from another directory) instead
    /// of the shipped ones.
    pub async fn start_with_configs(
        backend: Backend,
        platforms: Vec<PlatformConfig>,
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
    pub async fn boot(&mut self) -> anyhow::Result<()> {
        let ctx = tongban_runtime::Context {
            db: self.db.clone(),
            bus: self.bus.clone(),
            auth: self.keys.authenticator(),
            deploy_dir: tongban_testkit::deploy_dir(),
            audit: None,
            metrics_listen: None,
            tls: None,
            shutdown_timeout: tongban_runtime::config::DEFAULT_SHUTDOWN_TIMEOUT,
            retention: Default::default(),
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

    pub async fn shutdown(&mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        if let Some(s) = self.service.take() {
            tokio::time::timeout(Duration::from_secs(15), s).await??;
        }
        Ok(())
    }

    pub fn token(&self, role: Role) -> String {
        self.keys.token(role, Some("eco_env"), None)
    }

    pub async fn publish(&self, events: &[&Envelope]) -> anyhow::Result<()> {
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

    /// Publishes a `task.created` per (department, office) of `application_id`, as approval
    /// would, and waits until dispatch has recorded every one of them.
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
        use sea_orm::ConnectionTrait;
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

    pub fn url(&self, platform: &str) -> anyhow::Result<String> {
        Ok(self
            .sim
            .url(platform)
            .ok_or_else(|| anyhow::anyhow!("no simulator {platform}"))?
            .to_string())
    }

    pub async fn received(&self, platform: &str) -> anyhow::Result<Vec<String>> {
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

    pub async fn faults(&self, platform: &str, faults: Value) -> anyhow::Result<()> {
        let resp = http()
            .put(format!("{}/_faults", self.url(platform)?))
            .json(&faults)
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "faults: {}", resp.status());
        Ok(())
    }

    pub async fn deliveries(
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
    pub async fn wait_status(
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
    pub async fn wait_all_delivered(&self, per_app: usize) -> anyhow::Result<()> {
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
pub fn application() -> anyhow::Result<(Envelope, Envelope)> {
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
