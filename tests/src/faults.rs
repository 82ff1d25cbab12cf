//! The fault suite's harness (`tests/e2e/faults.rs`).
//!
//! - [`Faults`]: a PostgreSQL cluster and a RabbitMQ node of the test's own (so stopping them
//!   touches no other test), and the production topology on them through `tongban local up
//!   --replicas 2`: two processes of every service plus the platform simulators.
//! - [`Driver`]: the load. Applicants submit over gRPC (retrying with the same request id, as
//!   AIP-155 lets a client do), clerks list the open review tasks and approve them, two clerk
//!   loops racing on the same tasks through different replicas.
//! - [`Faults::check`]: the invariants every scenario must leave true, returned as a
//!   [`Findings`] report for `docs/reliability.md`.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures::StreamExt as _;
use prost::Message as _;
use sea_orm::{ConnectionTrait as _, DatabaseConnection, Statement};
use tokio_util::sync::CancellationToken;
use tongban_auth::Role;
use tongban_platform::PlatformConfig;
use tongban_proto::{
    approval::{self as ap, approval_service_client::ApprovalServiceClient},
    events::{Envelope, envelope::Payload},
    intake::{self as ip, intake_service_client::IntakeServiceClient},
};
use tongban_testkit::{broker::PrivateBroker, postgres::PrivatePostgres};
use tonic::{Code, transport::Channel};

use crate::LocalStack;

const PG_PASSWORD: &str = "faults-pw";

/// The stack under test. Fields drop in order: the processes stop before the database and
/// the broker they use.
pub struct Faults {
    pub stack: LocalStack,
    pub pg: PrivatePostgres,
    pub broker: PrivateBroker,
    pub platforms: Vec<PlatformConfig>,
}

impl Faults {
    /// Boots the private PostgreSQL and RabbitMQ and `tongban local up --replicas 2` on them
    /// (with `env` in the services' environment).
    pub async fn start(env: &[(String, String)]) -> anyhow::Result<Self> {
        // reqwest (simulator control) needs a process-wide TLS provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let pg = PrivatePostgres::start(PG_PASSWORD)?;
        let broker = PrivateBroker::boot().await?;
        let stack = LocalStack::up_on(
            2,
            env,
            &pg.url("postgres", PG_PASSWORD, "postgres"),
            &broker.url(),
        )?;
        let platforms =
            tongban_platform::load_dir(tongban_testkit::deploy_dir().join("platforms"))?;
        Ok(Self {
            stack,
            pg,
            broker,
            platforms,
        })
    }

    /// A connection to `service`'s database.
    pub async fn db(&self, service: &str) -> anyhow::Result<DatabaseConnection> {
        let name = self
            .stack
            .databases()
            .into_iter()
            .find(|(s, _)| s == service)
            .map(|(_, db)| db)
            .with_context(|| format!("no database for {service}"))?;
        Ok(tongban_storage::connect(&self.pg.url("postgres", PG_PASSWORD, &name)).await?)
    }

    /// `kill -9` of one process (its whole process group, as a crash would take it).
    pub fn kill9(&mut self, process: &str) -> anyhow::Result<()> {
        self.stack.reload()?;
        let pid = self
            .stack
            .pid(process)
            .with_context(|| format!("no process {process}"))?;
        let st = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status()?;
        anyhow::ensure!(st.success(), "kill -9 {process} (pgid {pid}) failed");
        Ok(())
    }

    /// `tongban local restart <process>` (with `env` added), waiting until it is SERVING.
    pub fn restart(&mut self, process: &str, env: &[(&str, &str)]) -> anyhow::Result<()> {
        let state_dir = self.stack.state_dir();
        let mut args = vec!["local", "restart", "--state-dir", &state_dir, process];
        let pairs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for p in &pairs {
            args.extend(["--env", p.as_str()]);
        }
        let run = self.stack.tongban(&args)?;
        anyhow::ensure!(run.code == 0, "tongban local restart {process}: {run:?}");
        self.stack.reload()
    }

    /// Sets one simulated platform's fault knobs (`{}` clears them).
    pub async fn platform_faults(
        &self,
        platform: &str,
        faults: serde_json::Value,
    ) -> anyhow::Result<()> {
        let url = self.simulator(platform)?;
        let resp = reqwest::Client::new()
            .put(format!("{url}/_faults"))
            .json(&faults)
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "PUT {url}/_faults: {}",
            resp.status()
        );
        Ok(())
    }

    fn simulator(&self, platform: &str) -> anyhow::Result<String> {
        self.stack
            .simulators()
            .into_iter()
            .find(|(id, _)| id == platform)
            .map(|(_, url)| url)
            .with_context(|| format!("no simulator for {platform}"))
    }

    /// A bus client on the stack's exchange.
    pub async fn bus(&self) -> anyhow::Result<tongban_bus::Bus> {
        Ok(tongban_bus::Bus::connect(&self.broker.url(), &self.stack.exchange).await?)
    }

    /// Checks every invariant, waiting up to `settle` for relays and consumers to drain.
    /// `poison` is how many messages each consumer queue's dead-letter queue must hold.
    pub async fn check(
        &self,
        applications: &BTreeSet<String>,
        poison: &BTreeMap<String, u64>,
        settle: Duration,
    ) -> anyhow::Result<Findings> {
        let mut f = Findings {
            applications: applications.len(),
            ..Default::default()
        };
        let services = ["intake", "approval", "dispatch", "notification"];
        let mut dbs = BTreeMap::new();
        for s in services {
            dbs.insert(s, self.db(s).await?);
        }

        // Nothing unsent, nothing waiting in a queue.
        let bus = self.bus().await?;
        let deadline = Instant::now() + settle;
        loop {
            let mut waiting = Vec::new();
            for (s, db) in &dbs {
                let n = count(
                    db,
                    "SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL",
                )
                .await?;
                if n > 0 {
                    waiting.push(format!("{s}: {n} unsent outbox rows"));
                }
                let depth = bus.queue_depth(s).await?;
                if depth > 0 {
                    waiting.push(format!("queue {s}: {depth} messages"));
                }
            }
            // Dispatch's own ledger: deliveries still waiting for a retry or a platform.
            let pending = count(
                &dbs["dispatch"],
                "SELECT COUNT(*) AS n FROM deliveries WHERE status = 'PENDING'",
            )
            .await?;
            if pending > 0 {
                waiting.push(format!("dispatch: {pending} platform deliveries pending"));
            }
            if waiting.is_empty() {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "not drained after {settle:?}: {}",
                waiting.join("; ")
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let given_up = count(
            &dbs["dispatch"],
            "SELECT COUNT(*) AS n FROM deliveries WHERE status = 'DEAD_LETTERED'",
        )
        .await?;
        anyhow::ensure!(
            given_up == 0,
            "dispatch gave up {given_up} platform deliveries"
        );
        for s in services {
            let depth = bus.queue_depth(&format!("{s}.dlq")).await?;
            let want = poison.get(s).copied().unwrap_or(0);
            anyhow::ensure!(
                depth == want,
                "dead-letter queue of {s} holds {depth} messages, expected {want} (the poison)"
            );
            f.dead_letters += depth;
        }

        // Every task decided at most once; none of ours left open.
        let approval = &dbs["approval"];
        let mut decided: BTreeMap<String, u32> = BTreeMap::new();
        let mut timers: BTreeMap<(String, String), u32> = BTreeMap::new();
        for env in events(approval).await? {
            match &env.payload {
                Some(Payload::TaskDecided(d)) => {
                    *decided.entry(d.task_id.clone()).or_default() += 1
                }
                Some(Payload::TaskDueSoon(t)) => {
                    *timers
                        .entry((t.task_id.clone(), env.r#type.clone()))
                        .or_default() += 1
                }
                Some(Payload::TaskOverdue(t)) => {
                    *timers
                        .entry((t.task_id.clone(), env.r#type.clone()))
                        .or_default() += 1
                }
                Some(Payload::TaskEscalated(t)) => {
                    *timers
                        .entry((t.task_id.clone(), env.r#type.clone()))
                        .or_default() += 1
                }
                _ => {}
            }
        }
        let twice: Vec<_> = decided.iter().filter(|(_, n)| **n > 1).collect();
        anyhow::ensure!(twice.is_empty(), "tasks decided more than once: {twice:?}");
        let fired_twice: Vec<_> = timers.iter().filter(|(_, n)| **n > 1).collect();
        anyhow::ensure!(
            fired_twice.is_empty(),
            "timers fired more than once: {fired_twice:?}"
        );
        f.decisions = decided.len();
        f.timer_events = timers.len();
        let open = count(
            approval,
            "SELECT COUNT(*) AS n FROM tasks WHERE kind = 'TASK_KIND_REVIEW' AND status IN ('OPEN', 'CLAIMED')",
        )
        .await?;
        anyhow::ensure!(open == 0, "{open} review tasks still open");

        // Each platform holds exactly one copy of every event it subscribes to.
        let mut produced = Vec::new();
        for s in ["intake", "approval"] {
            produced.extend(events(&dbs[s]).await?);
        }
        let client = reqwest::Client::new();
        for p in &self.platforms {
            let want: BTreeSet<String> = produced
                .iter()
                .filter(|e| p.wants(&e.r#type))
                .filter(|e| {
                    p.matter_codes.is_empty()
                        || applications.contains(&e.application_id) && p.wants_matter(MATTER)
                })
                .map(|e| tongban_dispatch::ledger::idempotency_key(&p.id, &e.event_id))
                .collect();
            let url = self.simulator(&p.id)?;
            let held: serde_json::Value = client
                .get(format!("{url}/_received"))
                .send()
                .await?
                .json()
                .await?;
            let keys: Vec<String> = held["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(String::from))
                .collect();
            let distinct: BTreeSet<String> = keys.iter().cloned().collect();
            anyhow::ensure!(
                distinct.len() == keys.len(),
                "{}: holds {} records for {} events",
                p.id,
                keys.len(),
                distinct.len()
            );
            let missing: Vec<_> = want.difference(&distinct).take(5).collect();
            let extra: Vec<_> = distinct.difference(&want).take(5).collect();
            anyhow::ensure!(
                missing.is_empty() && extra.is_empty(),
                "{}: {} of {} events missing (e.g. {missing:?}), {} unexpected (e.g. {extra:?})",
                p.id,
                want.difference(&distinct).count(),
                want.len(),
                distinct.difference(&want).count()
            );
            f.platform_records.insert(p.id.clone(), keys.len());
        }

        // Every audit chain verifies.
        for (s, db) in &dbs {
            let report = tongban_audit::verify::verify(db, &[], &[], None).await?;
            anyhow::ensure!(
                report.is_clean(),
                "{s}: audit findings: {:?}",
                report
                    .findings
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
            );
            f.audit_chains += report.chains;
            f.audit_entries += report.entries;
        }
        Ok(f)
    }
}

/// The matter the load applies for (the example application's).
pub const MATTER: &str = "env.eia.report_form";

/// What [`Faults::check`] found, for the scenario's line in `docs/reliability.md`.
#[derive(Debug, Default)]
pub struct Findings {
    pub applications: usize,
    pub decisions: usize,
    pub timer_events: usize,
    pub platform_records: BTreeMap<String, usize>,
    pub dead_letters: u64,
    pub audit_chains: usize,
    pub audit_entries: usize,
}

impl std::fmt::Display for Findings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let platforms: Vec<String> = self
            .platform_records
            .iter()
            .map(|(p, n)| format!("{p} {n}"))
            .collect();
        write!(
            f,
            "{} applications final; {} tasks decided once each; {} timer events, none twice; platform records (one per event): {}; {} dead letters; {} audit chains ({} entries) verify",
            self.applications,
            self.decisions,
            self.timer_events,
            platforms.join(", "),
            self.dead_letters,
            self.audit_chains,
            self.audit_entries
        )
    }
}

async fn count(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .context("no row")?;
    Ok(row.try_get("", "n")?)
}

/// Every event a service's outbox ever held, decoded.
async fn events(db: &DatabaseConnection) -> anyhow::Result<Vec<Envelope>> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT payload FROM outbox ORDER BY seq",
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let bytes: Vec<u8> = r.try_get("", "payload")?;
            Ok(Envelope::decode(bytes.as_slice())?)
        })
        .collect()
}

/// Counts of what the load met on the way (RPC errors it retried, races it lost).
#[derive(Debug, Default)]
pub struct Tally {
    pub submit_retries: AtomicU64,
    pub decide_errors: AtomicU64,
    pub decide_lost_races: AtomicU64,
    pub decisions: AtomicU64,
}

/// Plays the applicants and the clerks.
#[derive(Clone)]
pub struct Driver {
    keys: Arc<tongban_testkit::Keys>,
    intake: Vec<IntakeServiceClient<Channel>>,
    approval: Vec<ApprovalServiceClient<Channel>>,
    run: String,
    pub applications: Arc<Mutex<BTreeSet<String>>>,
    pub tally: Arc<Tally>,
}

/// The service errors a client retries: the server was down, restarting or overloaded.
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::ResourceExhausted
            | Code::Aborted
    )
}

const RPC_TIMEOUT: Duration = Duration::from_secs(10);

impl Driver {
    /// Clients of every replica (`approval_replicas` limits which approval replicas clerks use;
    /// empty means all).
    pub fn new(
        stack: &LocalStack,
        keys: tongban_testkit::Keys,
        approval_replicas: &[usize],
    ) -> anyhow::Result<Self> {
        let channel = |url: &String| -> anyhow::Result<Channel> {
            Ok(Channel::from_shared(url.clone())?
                .connect_timeout(Duration::from_secs(3))
                .timeout(RPC_TIMEOUT)
                .connect_lazy())
        };
        let intake = stack
            .grpc("intake")
            .iter()
            .map(|u| Ok(IntakeServiceClient::new(channel(u)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let approval = stack
            .grpc("approval")
            .iter()
            .enumerate()
            .filter(|(i, _)| approval_replicas.is_empty() || approval_replicas.contains(&(i + 1)))
            .map(|(_, u)| Ok(ApprovalServiceClient::new(channel(u)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!intake.is_empty() && !approval.is_empty(), "no replicas");
        Ok(Self {
            keys: Arc::new(keys),
            intake,
            approval,
            run: uuid_like(),
            applications: Arc::default(),
            tally: Arc::default(),
        })
    }

    /// The example application with request id `request_id`.
    pub fn request(request_id: &str) -> anyhow::Result<ip::SubmitApplicationRequest> {
        let text = tongban_testkit::example_request_json()?;
        let mut req: ip::SubmitApplicationRequest =
            tongban_proto::json::from_json("tongban.intake.v1.SubmitApplicationRequest", &text)?;
        req.request_id = request_id.to_string();
        Ok(req)
    }

    /// Submits `request_id` through intake replica `first` (then the others in turn), retrying
    /// whatever a restart or an outage answers, until `deadline`; returns the application id.
    pub async fn submit(
        &self,
        request_id: &str,
        first: usize,
        deadline: Instant,
    ) -> anyhow::Result<String> {
        let token = self
            .keys
            .token(Role::Applicant, None, Some(crate::APPLICANT));
        let req = Self::request(request_id)?;
        let mut attempt = 0usize;
        loop {
            let mut client = self.intake[(first + attempt) % self.intake.len()].clone();
            match client
                .submit_application(tongban_testkit::authed(req.clone(), &token))
                .await
            {
                Ok(resp) => {
                    let id = resp
                        .into_inner()
                        .application
                        .map(|a| a.application_id)
                        .unwrap_or_default();
                    anyhow::ensure!(!id.is_empty(), "no application id");
                    self.applications
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .insert(id.clone());
                    return Ok(id);
                }
                Err(s) if retryable(s.code()) && Instant::now() < deadline => {
                    self.tally.submit_retries.fetch_add(1, Ordering::Relaxed);
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200 * attempt.min(10) as u64)).await;
                }
                Err(s) => anyhow::bail!("submit {request_id}: {s:?}"),
            }
        }
    }

    /// Submits `n` applications, `concurrency` at a time, spread over the intake replicas.
    pub async fn submit_many(
        &self,
        n: usize,
        concurrency: usize,
        deadline: Instant,
    ) -> anyhow::Result<Vec<String>> {
        let results: Vec<anyhow::Result<String>> = futures::stream::iter(0..n)
            .map(|i| {
                let me = self.clone();
                async move { me.submit(&format!("{}-{i}", me.run), i, deadline).await }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Runs the clerks until `stop`: one loop per approval replica, each listing the open
    /// review tasks and approving them (the loops take the list from opposite ends, and race
    /// where they meet).
    pub fn clerks(&self, stop: CancellationToken) -> tokio::task::JoinSet<()> {
        let mut set = tokio::task::JoinSet::new();
        for (i, client) in self.approval.iter().enumerate() {
            let (me, client, stop) = (self.clone(), client.clone(), stop.clone());
            set.spawn(async move { me.clerk_loop(client, i % 2 == 1, stop).await });
        }
        set
    }

    async fn clerk_loop(
        &self,
        client: ApprovalServiceClient<Channel>,
        reverse: bool,
        stop: CancellationToken,
    ) {
        let admin = self.keys.token(Role::Admin, None, None);
        while !stop.is_cancelled() {
            let mut tasks: Vec<ap::Task> = match open_review_tasks(&client, &admin).await {
                Ok(tasks) => tasks,
                Err(_) => {
                    self.tally.decide_errors.fetch_add(1, Ordering::Relaxed);
                    Vec::new()
                }
            };
            if reverse {
                tasks.reverse();
            }
            if tasks.is_empty() {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                }
                continue;
            }
            futures::stream::iter(tasks)
                .for_each_concurrent(4, |t| {
                    let client = client.clone();
                    async move { self.decide(client, t).await }
                })
                .await;
        }
    }

    async fn decide(&self, mut client: ApprovalServiceClient<Channel>, t: ap::Task) {
        let clerk = self.keys.token(Role::Clerk, Some(&t.department), None);
        let req = ap::DecideTaskRequest {
            task_id: t.task_id.clone(),
            decision: ap::Decision::Approve as i32,
            comment: "同意".into(),
            expected_version: t.version,
            requested_materials: vec![],
            assign_departments: vec![],
        };
        match client
            .decide_task(tongban_testkit::authed(req, &clerk))
            .await
        {
            Ok(_) => {
                self.tally.decisions.fetch_add(1, Ordering::Relaxed);
            }
            // Another clerk decided it first, or it changed since listed.
            Err(s)
                if matches!(
                    s.code(),
                    Code::FailedPrecondition | Code::Aborted | Code::NotFound
                ) =>
            {
                self.tally.decide_lost_races.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.tally.decide_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits until every submitted application is APPROVED and delivered to all four
    /// platforms; fails after `timeout` naming what is not.
    pub async fn wait_final(&self, timeout: Duration) -> anyhow::Result<BTreeSet<String>> {
        let all = self
            .applications
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .clone();
        let mut pending = all.clone();
        let admin = self.keys.token(Role::Admin, None, None);
        let deadline = Instant::now() + timeout;
        let mut last: BTreeMap<String, String> = BTreeMap::new();
        while !pending.is_empty() {
            let checked: Vec<(String, Option<String>)> = futures::stream::iter(pending.clone())
                .map(|id| {
                    let mut client = self.intake[id.len() % self.intake.len()].clone();
                    let admin = admin.clone();
                    async move {
                        let got = client
                            .get_application(tongban_testkit::authed(
                                ip::GetApplicationRequest {
                                    application_id: id.clone(),
                                },
                                &admin,
                            ))
                            .await;
                        let state = match got {
                            Ok(r) => r.into_inner().application.map(|a| {
                                let delivered =
                                    a.deliveries.as_ref().map(|d| d.succeeded).unwrap_or(0);
                                if a.status() == ip::ApplicationStatus::Approved && delivered == 4 {
                                    None
                                } else {
                                    Some(format!("{:?}, {delivered}/4 delivered", a.status()))
                                }
                            }),
                            Err(s) => Some(Some(format!("{:?}", s.code()))),
                        };
                        (id, state.unwrap_or(Some("no application".into())))
                    }
                })
                .buffer_unordered(16)
                .collect()
                .await;
            for (id, state) in checked {
                match state {
                    None => {
                        pending.remove(&id);
                        last.remove(&id);
                    }
                    Some(s) => {
                        last.insert(id, s);
                    }
                }
            }
            if pending.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                let sample: Vec<_> = last.iter().take(5).collect();
                anyhow::bail!(
                    "{} of {} applications not final after {timeout:?}, e.g. {sample:?}",
                    pending.len(),
                    all.len()
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(all)
    }
}

/// Every open review task, all pages. Each application also holds a follow-up task for its
/// owed material, due weeks ahead; tasks a replica created while its clock ran 40 days ahead are
/// due after all of those, so a first page alone can miss them for good.
async fn open_review_tasks(
    client: &ApprovalServiceClient<Channel>,
    admin: &str,
) -> Result<Vec<ap::Task>, tonic::Status> {
    let mut tasks = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .clone()
            .list_tasks(tongban_testkit::authed(
                ap::ListTasksRequest {
                    page_size: 200,
                    page_token,
                    ..Default::default()
                },
                admin,
            ))
            .await?
            .into_inner();
        tasks.extend(
            page.tasks
                .into_iter()
                .filter(|t| t.kind() == ap::TaskKind::Review),
        );
        if page.next_page_token.is_empty() {
            return Ok(tasks);
        }
        page_token = page.next_page_token;
    }
}

/// A run id unique enough to keep request ids of two runs apart.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("faults-{}-{nanos:x}", std::process::id())
}

/// Writes `docs/reliability.md`'s line for one scenario into `target/faults/<name>.md`, which
/// `scripts/reliability-report.sh` collects.
pub fn record(name: &str, text: &str) -> anyhow::Result<()> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/faults");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{name}.md")), text)?;
    Ok(())
}
