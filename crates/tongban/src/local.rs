//! `tongban local up|down|status`: the production topology on this machine, as separate
//! processes against the local PostgreSQL and RabbitMQ.
//!
//! `up` creates one database per service (when missing), declares every queue before any
//! service starts (see `topology`), makes the token keys, starts the platform simulators and N
//! replicas of each service binary (found next to this executable), each replica on its own
//! gRPC and metrics port, and returns once every replica answers SERVING. The processes run
//! detached, each in its own process group, so they outlive the command and a Ctrl-C in the
//! terminal does not reach them. Everything `down` and `status` need is in a state file
//! (`<state dir>/local.json`): pids with their kernel start times (so a recycled pid is never
//! signalled), ports, databases, log files.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use sea_orm::{ConnectionTrait as _, Database, Statement};
use serde::{Deserialize, Serialize};
use tongban_cli::health::{Health, check};

/// The services in CLI port order: a replica's approval, notification and dispatch ports are
/// its intake port +1, +2, +3, as `tongban --server` derives them.
const SERVICES: [(&str, &str); 4] = [
    ("intake", "tongban-intake"),
    ("approval", "tongban-approval"),
    ("notification", "tongban-notification"),
    ("dispatch", "tongban-dispatch"),
];
const SIM_BIN: &str = "tongban-platform-sim";
const STATE_FILE: &str = "local.json";
/// Client-side variables that mean nothing to a service (and a CLI config file is not a
/// service config file): kept out of the children's environment.
const CLIENT_ONLY_VARS: [&str; 8] = [
    "TONGBAN_TOKEN",
    "TONGBAN_SERVER",
    "TONGBAN_APPROVAL_SERVER",
    "TONGBAN_DISPATCH_SERVER",
    "TONGBAN_NOTIFICATION_SERVER",
    "TONGBAN_DATA_DIR",
    "TONGBAN_CONFIG",
    "TONGBAN_LOCAL_STATE_DIR",
];

#[derive(clap::Subcommand, Debug)]
pub(crate) enum LocalCommand {
    /// Create the databases and queues, start the simulators and N replicas of every
    /// service, wait until all are SERVING, print the endpoints, and return (they keep running).
    #[command(
        after_help = "Examples:\n  tongban local up\n  tongban local up --replicas 2\n  tongban local up --free-ports --state-dir /tmp/tb --exchange tb.test --db-prefix tb_test"
    )]
    Up(UpArgs),
    /// Every process of the running stack: alive or not, and its health; exits 4 when any is
    /// down or not SERVING.
    #[command(
        after_help = "Examples:\n  tongban local status\n  tongban local status --output json"
    )]
    Status(StateArgs),
    /// Stop every process (SIGTERM, then SIGKILL after --timeout) and remove the state file;
    /// --purge also drops the databases and what the simulators received.
    #[command(after_help = "Examples:\n  tongban local down\n  tongban local down --purge")]
    Down(DownArgs),
    /// Stop one process of the running stack if it is still alive (SIGTERM, then SIGKILL), start
    /// it again exactly as `up` did (same binary, arguments, environment, ports), and wait
    /// until it is SERVING. `--env` adds variables to that process from now on.
    #[command(
        after_help = "Examples:\n  tongban local restart approval-1\n  tongban local restart dispatch-2 --env RUST_LOG=debug"
    )]
    Restart(RestartArgs),
}

#[derive(clap::Args, Debug)]
pub(crate) struct RestartArgs {
    #[command(flatten)]
    state: StateArgs,
    /// The process, as `status` names it (`intake-1`, `dispatch-2`, `platform-sim`).
    name: String,
    /// KEY=VALUE added to the process's environment (kept for later restarts).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    env: Vec<(String, String)>,
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(long, default_value_t = 15)]
    timeout: u64,
    /// Seconds to wait for the restarted process to be SERVING.
    #[arg(long, default_value_t = 120)]
    ready_timeout: u64,
}

fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

#[derive(clap::Args, Debug)]
pub(crate) struct StateArgs {
    /// Where the state file, keys, logs and simulator data live.
    #[arg(long, default_value = "data/local", env = "TONGBAN_LOCAL_STATE_DIR")]
    state_dir: PathBuf,
}

#[derive(clap::Args, Debug)]
pub(crate) struct UpArgs {
    #[command(flatten)]
    state: StateArgs,
    /// Replicas of each service.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    replicas: u16,
    /// PostgreSQL URL of a database to connect to for creating (and dropping) the services'.
    /// The services' URLs keep its query. Without `sslmode` the driver would prefer TLS, and on
    /// the loopback that buys nothing and costs every round trip an encryption on both ends
    /// (about a tenth of the stack's CPU under load), hence `sslmode=disable` by default.
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
    )]
    admin_url: String,
    /// RabbitMQ URL.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    bus_url: String,
    /// Topic exchange; queues are `<exchange>.<service>`.
    #[arg(long, default_value = "tongban.events")]
    exchange: String,
    /// Databases are `<prefix>_<service>` (letters, digits and _ only).
    #[arg(long, default_value = "tongban")]
    db_prefix: String,
    /// Where matters/, platforms/, calendar/, ... live.
    #[arg(long, default_value = "deploy", env = "TONGBAN_DEPLOY_DIR")]
    deploy_dir: PathBuf,
    /// gRPC port of intake replica 1; replica r's four services take base + 4(r-1) .. +3.
    #[arg(long, default_value_t = 50051)]
    base_port: u16,
    /// Metrics port of intake replica 1 (Prometheus /metrics), numbered like the gRPC ports.
    #[arg(long, default_value_t = 9464)]
    metrics_base_port: u16,
    /// Pick free ports for everything (services, metrics, simulators) instead.
    #[arg(long)]
    free_ports: bool,
    /// Verify tokens with this JWK Set instead of keys made in the state dir (then tokens come
    /// from whoever holds its private keys).
    #[arg(long)]
    jwks_file: Option<PathBuf>,
    /// Seconds to wait for every replica to be SERVING.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

#[derive(clap::Args, Debug)]
pub(crate) struct DownArgs {
    #[command(flatten)]
    state: StateArgs,
    /// Also drop the services' databases and the simulators' data (keys and logs stay).
    #[arg(long)]
    purge: bool,
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(long, default_value_t = 15)]
    timeout: u64,
}

/// The state file: what `status` and `down` act on.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct State {
    exchange: String,
    bus_url: String,
    admin_url: String,
    /// Service → database name.
    databases: BTreeMap<String, String>,
    /// The private key tokens are signed with (none with `--jwks-file`).
    issuer_key: Option<PathBuf>,
    jwks_file: PathBuf,
    processes: Vec<Proc>,
    /// Platform id → the simulator's endpoint URL.
    simulators: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Proc {
    /// `intake-1`, ..., `platform-sim`.
    name: String,
    /// The service, or `platform-sim`.
    service: String,
    pid: i32,
    /// Kernel start time (clock ticks after boot) from /proc, to tell our process from a later
    /// one that got the same pid.
    start_ticks: Option<u64>,
    /// gRPC URL (services only).
    grpc: Option<String>,
    /// Prometheus endpoint (services only).
    metrics: Option<String>,
    log: PathBuf,
    /// How it was started, for `restart`.
    #[serde(default)]
    launch: Launch,
}

/// A process's command line and environment, as `up` gave them: the executable, its
/// arguments, and every variable that mattered (all `TONGBAN_*` it saw, whether inherited or
/// set for it, and those set explicitly), so a restart from another shell is the same process.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
struct Launch {
    program: PathBuf,
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

impl Launch {
    fn of(cmd: &Command) -> Self {
        let mut env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("TONGBAN_") || k == "RUST_LOG")
            .collect();
        for (k, v) in cmd.get_envs() {
            let k = k.to_string_lossy().into_owned();
            match v {
                Some(v) => {
                    env.insert(k, v.to_string_lossy().into_owned());
                }
                None => {
                    env.remove(&k);
                }
            }
        }
        Self {
            program: PathBuf::from(cmd.get_program()),
            args: cmd
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            env,
        }
    }

    /// The command again; the restarting shell's own `TONGBAN_*` variables do not leak in.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for (k, _) in std::env::vars() {
            if k.starts_with("TONGBAN_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(&self.env);
        cmd
    }
}

pub(crate) async fn run(command: LocalCommand, json: bool) -> anyhow::Result<()> {
    match command {
        LocalCommand::Up(args) => up(args, json).await,
        LocalCommand::Status(args) => status(&args.state_dir, json).await,
        LocalCommand::Down(args) => down(args).await,
        LocalCommand::Restart(args) => restart(args).await,
    }
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

fn read_state(dir: &Path) -> anyhow::Result<Option<State>> {
    let path = state_path(dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_state(dir: &Path, state: &State) -> anyhow::Result<()> {
    let path = state_path(dir);
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    // It holds the database and broker URLs, passwords included.
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

/// The directory holding this executable, where the service binaries are built and installed
/// beside it.
fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the tongban executable")?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("the tongban executable has no directory")
}

fn binary(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} not found next to tongban; build every binary (`cargo build --workspace --bins`) or install them together",
        path.display()
    );
    Ok(path)
}

/// Ports that were free a moment ago (held together so they differ from each other).
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    tongban_runtime::ports::numbers(&tongban_runtime::ports::free(n)?)
}

fn check_db_name(name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "database name {name:?}: use lower-case letters, digits and _ (at most 63)"
    );
    Ok(())
}

/// `postgres://user@host:port/<name>`, from the admin URL.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, rest) = admin_url.rsplit_once('/').unwrap_or((admin_url, ""));
    match rest.split_once('?') {
        Some((_, query)) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// The admin connection: one, failing within seconds when PostgreSQL is not there.
async fn admin_connect(admin_url: &str) -> anyhow::Result<sea_orm::DatabaseConnection> {
    let mut opts = sea_orm::ConnectOptions::new(admin_url);
    opts.max_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    Database::connect(opts)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", redact(admin_url)))
}

async fn create_databases(admin_url: &str, names: &[String]) -> anyhow::Result<Vec<String>> {
    let admin = admin_connect(admin_url).await?;
    let mut created = Vec::new();
    for name in names {
        let exists = admin
            .query_one_raw(Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT 1 FROM pg_database WHERE datname = $1",
                [name.clone().into()],
            ))
            .await?
            .is_some();
        if !exists {
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .with_context(|| format!("creating database {name}"))?;
            created.push(name.clone());
        }
    }
    admin.close().await?;
    Ok(created)
}

async fn drop_databases(admin_url: &str, names: &[String]) -> anyhow::Result<()> {
    let admin = admin_connect(admin_url).await?;
    for name in names {
        check_db_name(name)?;
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await
            .with_context(|| format!("dropping database {name}"))?;
    }
    admin.close().await?;
    Ok(())
}

/// The kernel's start time of `pid` and whether it is a zombie, from `/proc/<pid>/stat`.
fn proc_stat(pid: i32) -> Option<(u64, bool)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let zombie = fields.first().is_some_and(|s| *s == "Z" || *s == "X");
    let start = fields.get(19)?.parse().ok()?;
    Some((start, zombie))
}

impl Proc {
    /// Whether our process (not a later one with the same pid) is still running.
    fn alive(&self) -> bool {
        match proc_stat(self.pid) {
            Some((start, zombie)) => !zombie && self.start_ticks.is_none_or(|s| s == start),
            None => false,
        }
    }

    fn signal(&self, sig: Signal) {
        if self.alive() {
            // Each process leads its own group: the signal reaches anything it started too.
            let _ = killpg(Pid::from_raw(self.pid), sig);
        }
    }

    /// What explains a failure: the process's `Error:` line and its causes when it printed
    /// one (not the backtrace after them), else the last lines of its log.
    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if let Some(at) = lines.iter().rposition(|l| l.starts_with("Error: ")) {
            let end = lines[at..]
                .iter()
                .position(|l| l.starts_with("Stack backtrace:"))
                .map_or(lines.len(), |n| at + n);
            return lines[at..end.min(at + 12)].join("\n");
        }
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// Spawns `cmd` detached: its own process group, no stdin, output to `log`.
fn spawn(
    name: &str,
    service: &str,
    mut cmd: Command,
    log: PathBuf,
) -> anyhow::Result<(Proc, Child)> {
    for var in CLIENT_ONLY_VARS {
        cmd.env_remove(var);
    }
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    let launch = Launch::of(&cmd);
    let (proc, child) = launch_process(name, service, cmd, log, false)?;
    Ok((Proc { launch, ..proc }, child))
}

/// Starts `cmd` detached in its own process group, output to `log` (appended to when
/// `append`, as on a restart, so the earlier life's lines stay).
fn launch_process(
    name: &str,
    service: &str,
    mut cmd: Command,
    log: PathBuf,
    append: bool,
) -> anyhow::Result<(Proc, Child)> {
    use std::os::unix::process::CommandExt as _;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone()?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let pid = i32::try_from(child.id()).context("pid out of range")?;
    Ok((
        Proc {
            name: name.to_string(),
            service: service.to_string(),
            pid,
            start_ticks: proc_stat(pid).map(|(s, _)| s),
            grpc: None,
            metrics: None,
            log,
            launch: Launch::default(),
        },
        child,
    ))
}

/// `name (pid N)` of each process in `procs` still alive.
fn alive(procs: &[Proc]) -> Vec<String> {
    procs
        .iter()
        .filter(|p| p.alive())
        .map(|p| format!("{} (pid {})", p.name, p.pid))
        .collect()
}

async fn up(args: UpArgs, json: bool) -> anyhow::Result<()> {
    let dir = &args.state.state_dir;
    if let Some(old) = read_state(dir)? {
        let running = alive(&old.processes);
        anyhow::ensure!(
            running.is_empty(),
            "a local stack is already running from {}: {}; run `tongban local down --state-dir {}` first",
            dir.display(),
            running.join(", "),
            dir.display()
        );
    }
    let deploy_dir = std::path::absolute(&args.deploy_dir)
        .with_context(|| format!("resolving {}", args.deploy_dir.display()))?;
    anyhow::ensure!(
        deploy_dir.join("matters").is_dir(),
        "{} has no matters/ directory; run from the repository root or pass --deploy-dir",
        deploy_dir.display()
    );
    let bins = bin_dir()?;
    let sim_bin = binary(&bins, SIM_BIN)?;
    let service_bins = SERVICES
        .iter()
        .map(|(_, b)| binary(&bins, b))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let dir = std::path::absolute(dir)?;

    // Every queue (before any service could publish), keys, ports; the databases last, so
    // that a failure before the processes start leaves none behind.
    let mut databases = BTreeMap::new();
    for (svc, _) in SERVICES {
        let name = format!("{}_{svc}", args.db_prefix);
        check_db_name(&name)?;
        databases.insert(svc.to_string(), name);
    }
    let platforms =
        tongban_platform::load_dir(deploy_dir.join("platforms")).context("loading platforms")?;
    {
        let bus = tongban_bus::Bus::connect(&args.bus_url, &args.exchange)
            .await
            .with_context(|| format!("connecting to RabbitMQ at {}", redact(&args.bus_url)))?;
        crate::topology::declare_all(&bus, &platforms).await?;
    }
    let (issuer_key, jwks_file) = match &args.jwks_file {
        Some(path) => {
            anyhow::ensure!(path.is_file(), "{} does not exist", path.display());
            (None, std::path::absolute(path)?)
        }
        None => {
            tongban_auth::keys::ensure(&dir)?;
            (
                Some(dir.join(tongban_auth::keys::ISSUER_KEY_FILE)),
                dir.join(tongban_auth::keys::JWKS_FILE),
            )
        }
    };

    // Ports: services and metrics numbered from the bases, simulators on their configured
    // ports; or all free.
    let n = usize::from(args.replicas) * SERVICES.len();
    let (grpc_ports, metrics_ports, sim_ports) = if args.free_ports {
        // Each replica's four gRPC ports in a row, so `--server` alone finds the other three.
        let mut grpc = Vec::new();
        let mut held = Vec::new();
        for _ in 0..args.replicas {
            let (base, listeners) = tongban_runtime::ports::free_block(SERVICES.len())?;
            grpc.extend((0..SERVICES.len()).map(|i| base + i as u16));
            held.extend(listeners);
        }
        let ports = free_ports(n + platforms.len())?;
        drop(held);
        (grpc, ports[..n].to_vec(), ports[n..].to_vec())
    } else {
        let seq = |base: u16| -> anyhow::Result<Vec<u16>> {
            (0..n)
                .map(|k| {
                    u16::try_from(usize::from(base) + k).context("port numbers run past 65535")
                })
                .collect()
        };
        (
            seq(args.base_port)?,
            seq(args.metrics_base_port)?,
            platforms.iter().map(|p| p.endpoint_url.port).collect(),
        )
    };

    let names: Vec<String> = databases.values().cloned().collect();
    let created = create_databases(&args.admin_url, &names).await?;

    let mut state = State {
        exchange: args.exchange.clone(),
        bus_url: args.bus_url.clone(),
        admin_url: args.admin_url.clone(),
        databases: databases.clone(),
        issuer_key,
        jwks_file: jwks_file.clone(),
        processes: Vec::new(),
        simulators: BTreeMap::new(),
    };
    let mut children = Vec::new();
    let plan = Plan {
        args: &args,
        dir: &dir,
        deploy_dir: &deploy_dir,
        sim_bin: &sim_bin,
        service_bins: &service_bins,
        platforms: &platforms,
        grpc_ports: &grpc_ports,
        metrics_ports: &metrics_ports,
        sim_ports: &sim_ports,
    };
    if let Err(e) = start_all(&plan, &mut state, &mut children).await {
        // Leave nothing behind: stop what started, forget the state.
        stop(&state.processes, Duration::from_secs(5)).await;
        let _ = std::fs::remove_file(state_path(&dir));
        // Databases this attempt created are dropped too; ones that were there stay.
        if let Err(drop_err) = drop_databases(&args.admin_url, &created).await {
            tracing::warn!(error = %format!("{drop_err:#}"), "could not drop the databases created");
        }
        return Err(e);
    }
    // The children keep running after this process exits; dropping the handles does not stop them.
    drop(children);
    if json {
        // The state file keeps the URLs as given (down --purge needs them); output does not
        // show passwords.
        let shown = State {
            bus_url: redact(&state.bus_url),
            admin_url: redact(&state.admin_url),
            ..state.clone()
        };
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(());
    }
    println!(
        "Tongban local: {} replica(s) of each service on exchange {} (state in {}):",
        args.replicas,
        state.exchange,
        dir.display()
    );
    for p in &state.processes {
        if let (Some(grpc), Some(metrics)) = (&p.grpc, &p.metrics) {
            println!("  {:<24} {grpc}  metrics {metrics}  pid {}", p.name, p.pid);
        }
    }
    for (id, url) in &state.simulators {
        println!("  {id:<24} {url}  (simulator)");
    }
    println!(
        "  {:<24} {}",
        "databases",
        state
            .databases
            .values()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  {:<24} {}", "logs", logs_dir(&dir).display());
    let first = state
        .processes
        .iter()
        .find_map(|p| p.grpc.clone())
        .unwrap_or_default();
    match &state.issuer_key {
        Some(_) => println!(
            "Tokens: tongban token issue --data-dir {} --role admin   (then --server {first})",
            dir.display()
        ),
        None => println!(
            "Tokens: signed by a key of {} (then --server {first})",
            state.jwks_file.display()
        ),
    }
    println!(
        "Status: tongban local status --state-dir {0}   Stop: tongban local down --state-dir {0}",
        dir.display()
    );
    Ok(())
}

fn logs_dir(dir: &Path) -> PathBuf {
    dir.join("logs")
}

/// `amqp://user:***@host/...`: URLs in messages never show passwords.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// What starting the processes needs.
struct Plan<'a> {
    args: &'a UpArgs,
    dir: &'a Path,
    deploy_dir: &'a Path,
    sim_bin: &'a Path,
    service_bins: &'a [PathBuf],
    platforms: &'a [tongban_platform::PlatformConfig],
    grpc_ports: &'a [u16],
    metrics_ports: &'a [u16],
    sim_ports: &'a [u16],
}

/// The simulators, replica 1 of each service, and once those are SERVING (their migrations
/// done: replicas migrating one fresh database at once would collide) the other replicas.
async fn start_all(
    plan: &Plan<'_>,
    state: &mut State,
    children: &mut Vec<Child>,
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(plan.args.timeout);
    let platform_env = start_simulators(plan, state, children)?;
    start_replicas(plan, 1..=1, &platform_env, state, children)?;
    wait_ready(state, children, timeout).await?;
    start_replicas(plan, 2..=plan.args.replicas, &platform_env, state, children)?;
    wait_ready(state, children, timeout).await
}

/// Starts the simulators; returns dispatch's environment pointing at them.
fn start_simulators(
    plan: &Plan<'_>,
    state: &mut State,
    children: &mut Vec<Child>,
) -> anyhow::Result<Vec<(String, String)>> {
    let Plan {
        dir,
        deploy_dir,
        sim_bin,
        platforms,
        sim_ports,
        ..
    } = *plan;
    let logs = logs_dir(dir);
    let mut sim = Command::new(sim_bin);
    sim.arg("--platforms")
        .arg(deploy_dir.join("platforms"))
        .arg("--data-dir")
        .arg(dir.join("platform-sim"));
    let mut platform_env = Vec::new();
    for (p, port) in platforms.iter().zip(sim_ports) {
        sim.arg("--port").arg(format!("{}={port}", p.id));
        // tongban-dispatch refuses the platform files' inline development secrets: the
        // simulator and dispatch share one made for this stack, as a deployment would.
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        sim.env(&p.secret_env, &secret);
        platform_env.push((p.secret_env.clone(), secret));
        let url = format!("http://127.0.0.1:{port}{}", p.endpoint_url.path);
        let id = p.id.to_ascii_uppercase();
        platform_env.push((format!("TONGBAN_PLATFORM_{id}_ENDPOINT"), url.clone()));
        platform_env.push((
            format!("TONGBAN_PLATFORM_{id}_QUERY_ENDPOINT"),
            format!("{url}{}", tongban_platform::RECEIVED_SUFFIX),
        ));
        state.simulators.insert(p.id.clone(), url);
    }
    let (proc, child) = spawn(
        "platform-sim",
        "platform-sim",
        sim,
        logs.join("platform-sim.log"),
    )?;
    state.processes.push(proc);
    children.push(child);
    write_state(dir, state)?;
    Ok(platform_env)
}

fn start_replicas(
    plan: &Plan<'_>,
    replicas: std::ops::RangeInclusive<u16>,
    platform_env: &[(String, String)],
    state: &mut State,
    children: &mut Vec<Child>,
) -> anyhow::Result<()> {
    let Plan {
        args,
        dir,
        deploy_dir,
        service_bins,
        grpc_ports,
        metrics_ports,
        ..
    } = *plan;
    let logs = logs_dir(dir);
    for replica in replicas {
        for (i, ((svc, _), bin)) in SERVICES.iter().zip(service_bins).enumerate() {
            let k = usize::from(replica - 1) * SERVICES.len() + i;
            let (grpc, metrics) = (grpc_ports[k], metrics_ports[k]);
            let name = format!("{svc}-{replica}");
            let db = state
                .databases
                .get(*svc)
                .context("no database for a service")?;
            let mut cmd = Command::new(bin);
            // Per-service overrides in our own environment would beat the values set here.
            for key in [
                "DATABASE_URL",
                "BUS_URL",
                "EXCHANGE",
                "LISTEN",
                "METRICS_LISTEN",
            ] {
                cmd.env_remove(format!("TONGBAN_{}__{key}", svc.to_ascii_uppercase()));
            }
            cmd.env("TONGBAN_DATABASE_URL", database_url(&args.admin_url, db))
                .env("TONGBAN_BUS_URL", &args.bus_url)
                .env("TONGBAN_EXCHANGE", &args.exchange)
                .env("TONGBAN_LISTEN", format!("127.0.0.1:{grpc}"))
                .env("TONGBAN_METRICS_LISTEN", format!("127.0.0.1:{metrics}"))
                .env("TONGBAN_JWKS_FILE", &state.jwks_file)
                .env("TONGBAN_DEPLOY_DIR", deploy_dir);
            if *svc == "dispatch" {
                cmd.envs(platform_env.iter().map(|(k, v)| (k, v)));
            }
            let (mut proc, child) = spawn(&name, svc, cmd, logs.join(format!("{name}.log")))?;
            proc.grpc = Some(format!("http://127.0.0.1:{grpc}"));
            proc.metrics = Some(format!("http://127.0.0.1:{metrics}/metrics"));
            state.processes.push(proc);
            children.push(child);
            // Written after each start, so `down` finds everything even if `up` dies midway.
            write_state(dir, state)?;
        }
    }
    Ok(())
}

/// Waits until every service replica is SERVING with its metrics endpoint up and the
/// simulators accept connections;
/// fails at once, with its log, when a process exits.
async fn wait_ready(
    state: &State,
    children: &mut [Child],
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<usize> = (0..state.processes.len()).collect();
    loop {
        for (i, child) in children.iter_mut().enumerate() {
            if let Some(status) = child.try_wait()? {
                let p = &state.processes[i];
                eprintln!("--- {}:\n{}", p.log.display(), p.tail());
                anyhow::bail!(
                    "{} exited ({status}) while starting; see {}",
                    p.name,
                    p.log.display()
                );
            }
        }
        let mut still = Vec::new();
        for i in pending {
            let p = &state.processes[i];
            let ready = match &p.grpc {
                Some(url) => {
                    check(url, Duration::from_secs(2)).await.is_serving()
                        && p.metrics.as_deref().is_none_or(accepts)
                }
                None => state.simulators.values().all(|u| accepts(u)),
            };
            if !ready {
                still.push(i);
            }
        }
        pending = still;
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let mut names = Vec::new();
            for i in &pending {
                let p = &state.processes[*i];
                eprintln!("--- {}:\n{}", p.log.display(), p.tail());
                names.push(p.name.clone());
            }
            anyhow::bail!(
                "not SERVING after {} s: {} (logs in {})",
                timeout.as_secs(),
                names.join(", "),
                state
                    .processes
                    .first()
                    .and_then(|p| p.log.parent())
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether something accepts TCP connections at the host and port of `url`.
fn accepts(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let hostport = rest.split('/').next().unwrap_or(rest);
    match hostport.parse::<std::net::SocketAddr>() {
        Ok(addr) => std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok(),
        Err(_) => false,
    }
}

/// SIGTERM to each process group, then SIGKILL to what is left after `grace`; services
/// before the simulators (dispatch may be mid-delivery).
async fn stop(procs: &[Proc], grace: Duration) -> usize {
    let (sims, services): (Vec<&Proc>, Vec<&Proc>) =
        procs.iter().partition(|p| p.service == "platform-sim");
    let mut stopped = 0;
    for group in [services, sims] {
        let alive: Vec<&Proc> = group.into_iter().filter(|p| p.alive()).collect();
        stopped += alive.len();
        for p in &alive {
            p.signal(Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while alive.iter().any(|p| p.alive()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for p in alive.iter().filter(|p| p.alive()) {
            tracing::warn!(process = %p.name, pid = p.pid, "still running after SIGTERM; killing");
            p.signal(Signal::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive.iter().any(|p| p.alive()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    stopped
}

async fn down(args: DownArgs) -> anyhow::Result<()> {
    let dir = &args.state.state_dir;
    let Some(state) = read_state(dir)? else {
        println!(
            "No local stack in {} (no {STATE_FILE}); nothing to stop.",
            dir.display()
        );
        return Ok(());
    };
    let stopped = stop(&state.processes, Duration::from_secs(args.timeout)).await;
    let left = alive(&state.processes);
    anyhow::ensure!(
        left.is_empty(),
        "still running after SIGKILL: {}",
        left.join(", ")
    );
    if args.purge {
        let names: Vec<String> = state.databases.values().cloned().collect();
        drop_databases(&state.admin_url, &names).await?;
        // What the simulators received belongs to the dropped ledger.
        let sims = dir.join("platform-sim");
        if sims.exists() {
            std::fs::remove_dir_all(&sims)
                .with_context(|| format!("removing {}", sims.display()))?;
        }
        println!("Dropped databases {}", names.join(", "));
    }
    std::fs::remove_file(state_path(dir))
        .with_context(|| format!("removing {}", state_path(dir).display()))?;
    println!("Stopped {stopped} process(es).");
    Ok(())
}

async fn restart(args: RestartArgs) -> anyhow::Result<()> {
    let dir = &args.state.state_dir;
    let mut state = read_state(dir)?.with_context(|| {
        format!(
            "no local stack in {} (no {STATE_FILE}); start one with `tongban local up`",
            dir.display()
        )
    })?;
    let Some(i) = state.processes.iter().position(|p| p.name == args.name) else {
        let names: Vec<&str> = state.processes.iter().map(|p| p.name.as_str()).collect();
        anyhow::bail!(
            "no process {:?} in this stack; it has {}",
            args.name,
            names.join(", ")
        );
    };
    let old = state.processes[i].clone();
    anyhow::ensure!(
        !old.launch.program.as_os_str().is_empty(),
        "{} was started by an older `tongban local up` that did not record how; run down and up",
        old.name
    );
    if old.alive() {
        stop(
            std::slice::from_ref(&old),
            Duration::from_secs(args.timeout),
        )
        .await;
        anyhow::ensure!(!old.alive(), "{} (pid {}) did not stop", old.name, old.pid);
    }
    let mut launch = old.launch.clone();
    launch.env.extend(args.env.iter().cloned());
    let (proc, child) = launch_process(
        &old.name,
        &old.service,
        launch.command(),
        old.log.clone(),
        true,
    )?;
    state.processes[i] = Proc {
        launch,
        grpc: old.grpc.clone(),
        metrics: old.metrics.clone(),
        ..proc
    };
    write_state(dir, &state)?;
    let only = State {
        processes: vec![state.processes[i].clone()],
        ..state.clone()
    };
    let mut children = vec![child];
    wait_ready(
        &only,
        &mut children,
        Duration::from_secs(args.ready_timeout),
    )
    .await?;
    println!(
        "Restarted {} (pid {}).",
        state.processes[i].name, state.processes[i].pid
    );
    Ok(())
}

/// Something in the stack is down or not SERVING: exit 4, like `tongban health`.
async fn status(dir: &Path, json: bool) -> anyhow::Result<()> {
    let state = read_state(dir)?.with_context(|| {
        format!(
            "no local stack in {} (no {STATE_FILE}); start one with `tongban local up`",
            dir.display()
        )
    })?;
    let mut rows = Vec::new();
    for p in &state.processes {
        let alive = p.alive();
        let health = match (&p.grpc, alive) {
            (_, false) => None,
            (Some(url), true) => Some(check(url, Duration::from_secs(3)).await),
            (None, true) => Some(if state.simulators.values().all(|u| accepts(u)) {
                Health::Serving
            } else {
                Health::Unreachable("simulator ports closed".into())
            }),
        };
        rows.push((p, alive, health));
    }
    if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(p, alive, h)| {
                serde_json::json!({
                    "name": p.name,
                    "service": p.service,
                    "pid": p.pid,
                    "alive": alive,
                    "health": h.as_ref().map_or("DOWN", Health::label),
                    "grpc": p.grpc,
                    "metrics": p.metrics,
                    "log": p.log,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "exchange": state.exchange,
                "databases": state.databases,
                "simulators": state.simulators,
                "processes": list,
            }))?
        );
    } else {
        println!(
            "{:<15} {:>8}  {:<6} {:<12} GRPC",
            "NAME", "PID", "ALIVE", "HEALTH"
        );
        for (p, alive, h) in &rows {
            println!(
                "{:<15} {:>8}  {:<6} {:<12} {}",
                p.name,
                p.pid,
                if *alive { "yes" } else { "no" },
                h.as_ref().map_or("DOWN", Health::label),
                p.grpc.as_deref().unwrap_or("")
            );
        }
    }
    let bad: Vec<String> = rows
        .iter()
        .filter(|(_, alive, h)| !alive || !h.as_ref().is_some_and(Health::is_serving))
        .map(|(p, _, h)| format!("{} {}", p.name, h.as_ref().map_or("DOWN", Health::label)))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(tongban_cli::health::Unhealthy(format!("not healthy: {}", bad.join(", "))).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_keep_the_admin_query() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "tb_intake"),
            "postgres://postgres@127.0.0.1:5432/tb_intake"
        );
        assert_eq!(
            database_url("postgres://u:p@h/postgres?sslmode=require", "x"),
            "postgres://u:p@h/x?sslmode=require"
        );
    }

    #[test]
    fn names_and_redaction() {
        assert!(check_db_name("tongban_intake").is_ok());
        assert!(check_db_name("x\"; DROP").is_err());
        assert_eq!(
            redact("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
    }

    #[test]
    fn reads_our_own_start_time() {
        let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        let (start, zombie) = proc_stat(pid).unwrap_or((0, true));
        assert!(!zombie);
        let me = Proc {
            name: "me".into(),
            service: "test".into(),
            pid,
            start_ticks: Some(start),
            grpc: None,
            metrics: None,
            log: PathBuf::new(),
            launch: Launch::default(),
        };
        assert!(me.alive());
        // Same pid, another start time: a recycled pid, not ours.
        let other = Proc {
            start_ticks: Some(start + 1),
            ..me
        };
        assert!(!other.alive());
    }
}
