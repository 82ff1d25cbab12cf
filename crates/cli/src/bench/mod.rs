//! `tongban bench`: the load harness. It plays applicants and clerks against a running stack
//! (`tongban dev`, `tongban local`, or a `tongban dev` it spawns), waits until every
//! application is approved and delivered to every platform, and reports throughput, latency
//! percentiles, CPU and memory per process, database transactions, bus messages and outbox
//! bytes per application, and whether the outboxes and queues drained.
//!
//! # Layout
//! - `driver`: the load (submissions, clerks, the watcher) and per-application times.
//! - `procs`: `/proc` sampling of CPU and RSS.
//! - `sources`: PostgreSQL, RabbitMQ and outbox counters.
//! - `report`: percentiles, pacing, the report and its table.

mod driver;
mod procs;
mod report;
mod sources;

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, atomic::AtomicBool},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use sea_orm::Database;
use serde::Deserialize;

use self::{
    driver::{Driver, People, Stop, between},
    report::{Backlog, Counters, Latencies, Offered, PerApp, Report, spread, throughput},
    sources::OutboxDb,
};
use crate::client::{Conn, GlobalArgs};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Applications to submit (the example, each with a fresh request id).
    #[arg(short = 'n', long = "applications", default_value_t = 200)]
    applications: usize,
    /// Submissions in flight at once (closed loop); used unless --rate is given.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// Offer a fixed load instead: start this many submissions per second, whatever the
    /// answers (open loop).
    #[arg(long, conflicts_with = "in_flight")]
    rate: Option<f64>,
    /// Keep this many applications in the pipeline instead: submit the next one only when an
    /// earlier one is delivered to every platform (or failed). A closed loop over whole
    /// applications, so the queues cannot back up the way they do when only submissions are
    /// bounded.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    in_flight: Option<u32>,
    /// Give up (exit 1) when the applications are not all delivered after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Seconds to wait, after the last delivery, for the outboxes and queues to drain.
    #[arg(long, default_value_t = 30)]
    drain_timeout: u64,
    #[command(flatten)]
    stack: crate::demo::StackArgs,
    /// PostgreSQL server whose pg_stat_database counts the transactions (not used against
    /// `tongban dev`, which runs on SQLite).
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        env = "TONGBAN_BENCH_POSTGRES_URL"
    )]
    postgres_url: String,
    /// RabbitMQ's Prometheus listener (the rabbitmq_prometheus plugin), host:port.
    #[arg(long, default_value = "127.0.0.1:15692")]
    rabbitmq_metrics: String,
    /// The stack's topic exchange: its queues are `<exchange>.<service>`. Default: from
    /// local.json, else tongban.events.
    #[arg(long)]
    exchange: Option<String>,
    /// A service database whose outbox is counted (repeat it); default: the databases of
    /// local.json, or the SQLite files of the dev data dir.
    #[arg(long = "database")]
    databases: Vec<String>,
}

/// What the bench needs of `tongban local`'s state file.
#[derive(Debug, Deserialize)]
struct LocalState {
    exchange: String,
    admin_url: String,
    databases: BTreeMap<String, String>,
    processes: Vec<LocalProc>,
}

#[derive(Debug, Deserialize)]
struct LocalProc {
    service: String,
    pid: i32,
    grpc: Option<String>,
}

/// The stack under test.
enum Target {
    /// One `tongban dev` process: SQLite files and the embedded bus in its data dir.
    Dev { pid: Option<u32> },
    /// Separate processes on PostgreSQL and RabbitMQ (`tongban local` or any deployment).
    Local(Option<LocalState>),
}

fn note(text: impl AsRef<str>) {
    eprintln!("[{}] bench: {}", crate::output::clock(), text.as_ref());
}

fn read_local_state(dir: &Path) -> anyhow::Result<Option<LocalState>> {
    let path = dir.join("local.json");
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let state =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(Some(state))
}

/// `global` with the first replica of each service of local.json where no server was given.
fn with_local_servers(global: &GlobalArgs, state: &LocalState) -> GlobalArgs {
    let first = |svc: &str| {
        state
            .processes
            .iter()
            .find(|p| p.service == svc)
            .and_then(|p| p.grpc.clone())
    };
    GlobalArgs {
        server: global.server.clone().or_else(|| first("intake")),
        approval_server: global.approval_server.clone().or_else(|| first("approval")),
        dispatch_server: global.dispatch_server.clone().or_else(|| first("dispatch")),
        notification_server: global
            .notification_server
            .clone()
            .or_else(|| first("notification")),
        token: None,
        output: global.output,
    }
}

/// The service databases to count outbox rows in.
fn outbox_urls(args: &BenchArgs, data_dir: &Path, target: &Target) -> Vec<String> {
    if !args.databases.is_empty() {
        return args.databases.clone();
    }
    match target {
        Target::Local(Some(state)) => state
            .databases
            .values()
            .map(|db| sources::with_database(&state.admin_url, db))
            .collect(),
        Target::Local(None) => Vec::new(),
        Target::Dev { .. } => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "db"))
                        .filter(|p| p.file_name().is_some_and(|n| n != "bus.db"))
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            files.iter().map(|p| sources::sqlite_ro(p)).collect()
        }
    }
}

/// Counters read before and after the run.
struct Probes {
    pg: Option<sea_orm::DatabaseConnection>,
    amqp: Option<String>,
    exchange: String,
    outboxes: Vec<OutboxDb>,
    bus: Option<OutboxDb>,
}

#[derive(Default)]
struct Snapshot {
    pg: Option<i64>,
    amqp: Option<sources::AmqpCounts>,
    marks: Vec<sources::OutboxMark>,
}

impl Probes {
    async fn open(args: &BenchArgs, data_dir: &Path, target: &Target) -> Self {
        let mut outboxes = Vec::new();
        for url in outbox_urls(args, data_dir, target) {
            match OutboxDb::connect(&url).await {
                Ok(db) => match db.mark().await {
                    Ok(_) => outboxes.push(db),
                    Err(e) => note(format!("no outbox in {}: {e:#}", db.label)),
                },
                Err(e) => note(format!("outbox not counted: {e:#}")),
            }
        }
        let (pg, amqp, bus) = match target {
            Target::Dev { .. } => {
                let bus = data_dir.join("bus.db");
                let bus = if bus.exists() {
                    OutboxDb::connect(&sources::sqlite_ro(&bus))
                        .await
                        .map_err(|e| note(format!("bus depth not counted: {e:#}")))
                        .ok()
                } else {
                    None
                };
                (None, None, bus)
            }
            Target::Local(_) => {
                let pg = match Database::connect(&args.postgres_url).await {
                    Ok(db) => Some(db),
                    Err(e) => {
                        note(format!(
                            "PostgreSQL transactions n/a ({}): {e}",
                            sources::redact(&args.postgres_url)
                        ));
                        None
                    }
                };
                let amqp = match sources::amqp_counts(&args.rabbitmq_metrics).await {
                    Ok(_) => Some(args.rabbitmq_metrics.clone()),
                    Err(e) => {
                        note(format!(
                            "AMQP counters n/a (enable rabbitmq_prometheus?): {e:#}"
                        ));
                        None
                    }
                };
                (pg, amqp, None)
            }
        };
        let exchange = args.exchange.clone().unwrap_or_else(|| match target {
            Target::Local(Some(s)) => s.exchange.clone(),
            _ => "tongban.events".into(),
        });
        Self {
            pg,
            amqp,
            exchange,
            outboxes,
            bus,
        }
    }

    async fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        if let Some(pg) = &self.pg {
            s.pg = sources::pg_transactions(pg)
                .await
                .map_err(|e| note(format!("pg_stat_database: {e:#}")))
                .ok();
        }
        if let Some(addr) = &self.amqp {
            s.amqp = sources::amqp_counts(addr)
                .await
                .map_err(|e| note(format!("RabbitMQ metrics: {e:#}")))
                .ok();
        }
        for db in &self.outboxes {
            s.marks.push(db.mark().await.unwrap_or_default());
        }
        s
    }

    /// Unpublished outbox rows and waiting messages now.
    async fn backlog(&self) -> Backlog {
        let mut outbox = None;
        let mut outbox_by_database = BTreeMap::new();
        for db in &self.outboxes {
            if let Ok(n) = db.backlog().await {
                let n = u64::try_from(n).unwrap_or(0);
                *outbox.get_or_insert(0) += n;
                outbox_by_database.insert(db.name.clone(), n);
            }
        }
        let queues = if let Some(bus) = &self.bus {
            bus.bus_depth()
                .await
                .ok()
                .map(|n| u64::try_from(n).unwrap_or(0))
        } else if let Some(addr) = &self.amqp {
            sources::amqp_depth(addr, &format!("{}.", self.exchange))
                .await
                .ok()
        } else {
            None
        };
        Backlog {
            outbox,
            outbox_by_database,
            queues,
        }
    }

    /// The counters' change since `before`, per completed application.
    async fn counters(&self, before: &Snapshot, completed: usize) -> Counters {
        let after = self.snapshot().await;
        let mut c = Counters::default();
        if let (Some(a), Some(b)) = (after.pg, before.pg) {
            c.postgres_transactions = Some(PerApp::new((a - b) as f64, completed));
        }
        if let (Some(a), Some(b)) = (after.amqp, before.amqp) {
            c.amqp_published = Some(PerApp::new(a.published - b.published, completed));
            c.amqp_delivered = Some(PerApp::new(a.delivered - b.delivered, completed));
        }
        if !self.outboxes.is_empty() {
            let (mut rows, mut bytes) = (0i64, 0i64);
            for (db, mark) in self.outboxes.iter().zip(&before.marks) {
                if let Ok((r, b)) = db.written_since(*mark).await {
                    rows += r;
                    bytes += b;
                }
            }
            c.outbox_events = Some(PerApp::new(rows as f64, completed));
            c.outbox_bytes = Some(PerApp::new(bytes as f64, completed));
        }
        c
    }
}

pub(crate) async fn run(global: &GlobalArgs, args: BenchArgs) -> anyhow::Result<()> {
    if let Some(rate) = args.rate {
        anyhow::ensure!(
            rate.is_finite() && rate > 0.0,
            "--rate: must be a positive number of applications per second, not {rate}"
        );
    }
    anyhow::ensure!(args.applications > 0, "--applications: must be at least 1");
    let (_child, conn, data_dir, target) = if args.stack.spawn {
        let (child, base, data) = crate::demo::spawn_dev(&args.stack.deploy_dir, note).await?;
        let conn = Conn::resolve(&crate::demo::spawned_args(base, global))?;
        let pid = child.pid();
        (Some(child), conn, data, Target::Dev { pid: Some(pid) })
    } else if let Some(state) = read_local_state(&args.stack.data_dir)? {
        let conn = Conn::resolve(&with_local_servers(global, &state))?;
        (
            None,
            conn,
            args.stack.data_dir.clone(),
            Target::Local(Some(state)),
        )
    } else if args.stack.data_dir.join("bus.db").exists() {
        let conn = Conn::resolve(global)?;
        (
            None,
            conn,
            args.stack.data_dir.clone(),
            Target::Dev { pid: None },
        )
    } else {
        let conn = Conn::resolve(global)?;
        (None, conn, args.stack.data_dir.clone(), Target::Local(None))
    };
    let example = args.stack.example()?;
    // Tokens outlive the run (the issuer caps them at 12 h).
    let hours = i64::try_from(args.timeout / 3600 + 1).unwrap_or(12).min(12);
    let people = People::new(&data_dir, &example, hours)?;
    let as_admin = conn.with_token(people.admin().to_string());
    let platforms = match args.stack.platforms {
        Some(n) => n,
        None => crate::applicant::platform_total(&as_admin)
            .await
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .context("dispatch lists no platforms; pass --platforms")?,
    };
    let offered = match (args.rate, args.in_flight) {
        (Some(r), _) => Offered::Rate(r),
        (None, Some(k)) => Offered::InFlight(k as usize),
        (None, None) => Offered::Concurrency(args.concurrency as usize),
    };
    let target_name = match &target {
        Target::Dev { pid: Some(p) } => {
            format!("tongban dev (spawned, pid {p}) at {}", conn.intake_url)
        }
        Target::Dev { pid: None } => format!("tongban dev at {}", conn.intake_url),
        Target::Local(_) => format!("multi-process stack at {}", conn.intake_url),
    };
    let only_tongban: Option<HashSet<u32>> = match &target {
        Target::Dev { pid: Some(p) } => Some([*p].into()),
        Target::Local(Some(s)) => Some(
            s.processes
                .iter()
                .filter_map(|p| u32::try_from(p.pid).ok())
                .collect(),
        ),
        // A running `tongban dev`: the one whose data dir this is, not other stacks'.
        Target::Dev { pid: None } => {
            Some(procs::holding(Path::new("/proc"), &data_dir)).filter(|p| !p.is_empty())
        }
        Target::Local(None) => None,
    };

    let probes = Probes::open(&args, &data_dir, &target).await;
    let before = probes.snapshot().await;
    let sampling = Arc::new(AtomicBool::new(false));
    let sampler = procs::sample_until(
        procs::Sampler::new(only_tongban),
        Duration::from_millis(200),
        sampling.clone(),
    );
    note(format!(
        "{} applications against {target_name}, {}",
        args.applications,
        match offered {
            Offered::Concurrency(c) => format!("{c} submissions in flight"),
            Offered::InFlight(k) => format!("{k} applications in flight"),
            Offered::Rate(r) => format!("{r}/s offered"),
        }
    ));

    let driver = Driver::new(&conn, people, example, platforms)?;
    let stop = Stop::new();
    let clerks = tokio::spawn({
        let (d, s) = (driver.clone(), stop.clone());
        async move { d.clerks(s).await }
    });
    let watcher = tokio::spawn({
        let (d, s) = (driver.clone(), stop.clone());
        async move { d.watch(s).await }
    });
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let submitted = tokio::time::timeout_at(
        deadline.into(),
        driver.submit_all(args.applications, offered),
    )
    .await;
    let mut finished = matches!(submitted, Ok(Ok(())));
    if let Ok(Err(e)) = submitted {
        stop.stop();
        return Err(e.context("submitting"));
    }
    while finished && !driver.all_done(args.applications)? {
        if Instant::now() > deadline || clerks.is_finished() || watcher.is_finished() {
            finished = false;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.stop();
    clerks.await.context("the clerks' task")??;
    watcher.await.context("the watcher's task")??;

    // Let the relays publish and the consumers catch up: the backlog must reach 0.
    let drain_until = Instant::now() + Duration::from_secs(args.drain_timeout);
    let mut backlog = probes.backlog().await;
    while !backlog.drained() && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        backlog = probes.backlog().await;
    }
    // PostgreSQL publishes a backend's counters at most once a second.
    if probes.pg.is_some() {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    sampling.store(true, std::sync::atomic::Ordering::Relaxed);
    let sampler = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("the /proc sampler panicked"))?;

    let (apps, refused, first_submit) = {
        let board = driver
            .board
            .lock()
            .map_err(|_| anyhow::anyhow!("bench state: lock poisoned"))?;
        (
            board
                .apps
                .iter()
                .filter(|(_, t)| t.submitted)
                .map(|(id, t)| (id.clone(), t.clone()))
                .collect::<BTreeMap<_, _>>(),
            board.refused.clone(),
            board.first_submit,
        )
    };
    let tracks: Vec<&driver::Track> = apps.values().collect();
    let completed = tracks.iter().filter(|t| t.delivered.is_some()).count();
    let failed = tracks.iter().filter(|t| t.failed.is_some()).count() + refused.len();
    let last = tracks.iter().filter_map(|t| t.delivered).max();
    let wall = between(first_submit, last)
        .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0))
        .unwrap_or_default();
    let pick = |f: &dyn Fn(&driver::Track) -> Option<f64>| -> Vec<f64> {
        tracks.iter().filter_map(|t| f(t)).collect()
    };
    let latency_ms = Latencies {
        submit: spread(&pick(&|t| Some(t.submit_ms))),
        submit_to_first_task: spread(&pick(&|t| between(t.created, t.first_task))),
        approved_to_delivered: spread(&pick(&|t| between(t.last_decided, t.delivered))),
        submit_to_delivered: spread(&pick(&|t| between(t.created, t.delivered))),
    };
    let processes = sampler.usage();
    // `tongban dev` uses neither PostgreSQL nor RabbitMQ: their CPU there is other work's.
    let dev = matches!(target, Target::Dev { .. });
    let cpu: f64 = processes
        .iter()
        .filter(|p| !dev || p.name.starts_with("tongban"))
        .map(|p| p.cpu_seconds)
        .sum();
    let report = Report {
        target: target_name,
        offered,
        applications: args.applications,
        completed,
        failed,
        platforms,
        wall_seconds: wall.as_secs_f64(),
        applications_per_second: throughput(completed, wall),
        latency_ms,
        processes,
        cpu_seconds_per_application: (completed > 0).then(|| cpu / completed as f64),
        counters: probes.counters(&before, completed).await,
        backlog,
    };
    if global.json() {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report::render_table(&report));
    }
    let examples: Vec<String> = apps
        .iter()
        .filter(|(_, t)| !t.done() || t.failed.is_some())
        .take(3)
        .map(|(id, t)| format!("{id}: {}", t.failed.as_deref().unwrap_or("not delivered")))
        .chain(refused.iter().take(3).cloned())
        .collect();
    anyhow::ensure!(
        finished && completed == args.applications,
        "{completed} of {} applications approved and delivered to {platforms} platforms \
         within {} s; e.g. {}",
        args.applications,
        args.timeout,
        examples.join("; ")
    );
    let backlog = &report.backlog;
    anyhow::ensure!(
        backlog.drained(),
        "the stack did not drain within {} s after the run: {} unpublished outbox rows, {} \
         messages in the queues",
        args.drain_timeout,
        backlog.outbox.unwrap_or(0),
        backlog.queues.unwrap_or(0)
    );
    Ok(())
}
