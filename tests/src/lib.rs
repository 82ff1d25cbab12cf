//! Helpers for end-to-end tests that run Tongban's real binaries as separate processes.
//!
//! The binaries are looked up next to the test executable (`target/<profile>/`);
//! `scripts/test.sh` builds them before running the tests. A missing binary fails the test
//! with a message saying so.

pub mod faults;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// `target/<profile>/<name>`.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(|deps| deps.parent()).ok_or_else(|| {
        anyhow::anyhow!("cannot locate the target directory from {}", exe.display())
    })?;
    let path = dir.join(name);
    if !path.exists() {
        anyhow::bail!(
            "{} is not built; run `cargo build --workspace --bins` first (scripts/test.sh does)",
            path.display()
        );
    }
    Ok(path)
}

pub use tongban_testkit::{free_port_block, free_ports};

/// A child process killed (SIGKILL) when dropped, so a failing test leaves nothing running.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with its output going to a log file in `log_dir`.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &std::path::Path) -> anyhow::Result<Self> {
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null())
            .spawn()?;
        Ok(Self {
            name: name.into(),
            child: Some(child),
            log,
        })
    }

    /// Kills the process at once (SIGKILL): what a crash looks like.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits for the process to exit on its own; returns its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                self.child = None;
                return Ok(status.code());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "{} did not exit within {timeout:?}:\n{}",
                    self.name,
                    self.tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fails if the process already exited, showing the end of its log.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(c) = self.child.as_mut()
            && let Some(status) = c.try_wait()?
        {
            anyhow::bail!("{} exited with {status}:\n{}", self.name, self.tail());
        }
        Ok(())
    }

    /// The last lines the process wrote.
    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until something accepts TCP connections on `port`.
pub async fn wait_for_port(
    port: u16,
    procs: &mut [&mut Proc],
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        for p in procs.iter_mut() {
            p.check_alive()?;
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("nothing listening on port {port} after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the gRPC server on `port` answers health checks with SERVING.
pub async fn wait_for_grpc(
    port: u16,
    procs: &mut [&mut Proc],
    timeout: Duration,
) -> anyhow::Result<()> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
            .connect()
            .await;
        if let Ok(channel) = channel
            && let Ok(resp) = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
            && resp.into_inner().status() == ServingStatus::Serving
        {
            return Ok(());
        }
        for p in procs.iter_mut() {
            p.check_alive()?;
        }
        if tokio::time::Instant::now() > deadline {
            let logs: Vec<String> = procs
                .iter()
                .map(|p| format!("--- {}\n{}", p.name, p.tail()))
                .collect();
            anyhow::bail!(
                "no healthy gRPC server on port {port} after {timeout:?}\n{}",
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `tongban local up` stack for one test: its own state directory, exchange, databases and
/// free ports, tokens from the test keys. Dropping it runs `tongban local down --purge`, so a
/// failing test leaves no process and no database behind.
pub struct LocalStack {
    pub dir: tempfile::TempDir,
    /// What `tongban local up --output json` printed: processes, ports, databases.
    pub state: serde_json::Value,
    pub keys: tongban_testkit::Keys,
    pub exchange: String,
    down: bool,
}

/// The result of one `tongban` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl LocalStack {
    /// `tongban local up --replicas N --free-ports` on unique names; returns once every
    /// replica is SERVING.
    pub fn up(replicas: u16) -> anyhow::Result<Self> {
        Self::up_with_env(replicas, &[])
    }

    /// [`LocalStack::up`] with `env` in the services' environment (e.g.
    /// `TONGBAN_INTAKE__CREDIT__LEDGER`: per-service keys reach only that service).
    pub fn up_with_env(replicas: u16, env: &[(String, String)]) -> anyhow::Result<Self> {
        Self::up_on(
            replicas,
            env,
            &tongban_testkit::postgres_admin_url(),
            &tongban_testkit::amqp_url_for_processes(),
        )
    }

    /// [`LocalStack::up_with_env`] on the PostgreSQL server `admin_url` reaches and the RabbitMQ
    /// at `bus_url` (e.g. a test's private cluster and node).
    pub fn up_on(
        replicas: u16,
        env: &[(String, String)],
        admin_url: &str,
        bus_url: &str,
    ) -> anyhow::Result<Self> {
        // `--free-ports` finds ports free, then the services bind them: a test running beside
        // this one can take a port in between. That is the harness's race, not the stack's, so
        // start again on fresh ports and names.
        let mut attempt = 1;
        loop {
            match Self::try_up_on(replicas, env, admin_url, bus_url) {
                Err(e) if attempt < 3 && e.to_string().contains("Address already in use") => {
                    eprintln!("local up lost a port race (attempt {attempt}); starting again");
                    attempt += 1;
                }
                done => return done,
            }
        }
    }

    fn try_up_on(
        replicas: u16,
        env: &[(String, String)],
        admin_url: &str,
        bus_url: &str,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let keys = tongban_testkit::Keys::new();
        let jwks = keys.write_jwks(dir.path())?;
        let exchange = tongban_testkit::unique_exchange("local");
        let suffix: String = exchange
            .chars()
            .rev()
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let mut stack = Self {
            dir,
            state: serde_json::Value::Null,
            keys,
            exchange: exchange.clone(),
            down: false,
        };
        let state_dir = stack.state_dir();
        let run = stack.tongban_with_env(
            env,
            &[
                "local",
                "up",
                "--replicas",
                &replicas.to_string(),
                "--free-ports",
                "--state-dir",
                &state_dir,
                "--exchange",
                &exchange,
                "--db-prefix",
                &format!("e2e_local_{suffix}"),
                "--bus-url",
                bus_url,
                "--admin-url",
                admin_url,
                "--deploy-dir",
                &tongban_testkit::deploy_dir().to_string_lossy(),
                "--jwks-file",
                &jwks.to_string_lossy(),
                "--output",
                "json",
            ],
        )?;
        anyhow::ensure!(run.code == 0, "tongban local up failed: {run:?}");
        stack.state = serde_json::from_str(&run.stdout)
            .map_err(|e| anyhow::anyhow!("local up printed no JSON ({e}): {run:?}"))?;
        Ok(stack)
    }

    /// Reads the state file again (after `tongban local restart` changed a pid).
    pub fn reload(&mut self) -> anyhow::Result<()> {
        let path = self.dir.path().join("state").join("local.json");
        self.state = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        Ok(())
    }

    /// The pid of one process (`intake-1`, `platform-sim`, ...), as the state has it.
    pub fn pid(&self, process: &str) -> Option<i32> {
        self.processes()
            .iter()
            .find(|p| p["name"] == process)
            .and_then(|p| p["pid"].as_i64())
            .and_then(|p| i32::try_from(p).ok())
    }

    /// Database name of each service.
    pub fn databases(&self) -> Vec<(String, String)> {
        self.state["databases"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(svc, db)| Some((svc.clone(), db.as_str()?.to_string())))
            .collect()
    }

    pub fn state_dir(&self) -> String {
        self.dir.path().join("state").to_string_lossy().into_owned()
    }

    /// Runs the `tongban` binary with `args` (no TONGBAN_* variables from the test's environment).
    pub fn tongban(&self, args: &[&str]) -> anyhow::Result<Run> {
        self.tongban_with_env(&[], args)
    }

    /// [`LocalStack::tongban`] with `env` added.
    pub fn tongban_with_env(&self, env: &[(String, String)], args: &[&str]) -> anyhow::Result<Run> {
        let mut cmd = Command::new(binary("tongban")?);
        cmd.args(args)
            .env(
                "TONGBAN_CONFIG",
                self.dir.path().join("no-such-config.toml"),
            )
            .stdin(Stdio::null());
        for (k, _) in std::env::vars() {
            if k.starts_with("TONGBAN_") && k != "TONGBAN_CONFIG" {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let out = cmd.output()?;
        Ok(Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn processes(&self) -> Vec<serde_json::Value> {
        self.state["processes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The gRPC URLs of every replica of `service`, replica 1 first.
    pub fn grpc(&self, service: &str) -> Vec<String> {
        self.processes()
            .iter()
            .filter(|p| p["service"] == service)
            .filter_map(|p| p["grpc"].as_str().map(String::from))
            .collect()
    }

    /// `(process name, host:port)` of every replica's metrics endpoint.
    pub fn metrics_targets_by_process(&self) -> Vec<(String, String)> {
        self.processes()
            .iter()
            .filter_map(|p| {
                let target = p["metrics"]
                    .as_str()?
                    .strip_prefix("http://")?
                    .strip_suffix("/metrics")?;
                Some((p["name"].as_str()?.to_string(), target.to_string()))
            })
            .collect()
    }

    /// The log of one process (`intake-1`, `platform-sim`, ...).
    pub fn log(&self, process: &str) -> Log {
        let path = self
            .processes()
            .iter()
            .find(|p| p["name"] == process)
            .and_then(|p| p["log"].as_str().map(PathBuf::from))
            .unwrap_or_default();
        Log {
            name: process.to_string(),
            path,
        }
    }

    /// Platform id → the simulator's endpoint URL.
    pub fn simulators(&self) -> Vec<(String, String)> {
        self.state["simulators"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(id, url)| Some((id.clone(), url.as_str()?.to_string())))
            .collect()
    }

    /// Every process id the stack started.
    pub fn pids(&self) -> Vec<i32> {
        self.processes()
            .iter()
            .filter_map(|p| p["pid"].as_i64())
            .filter_map(|p| i32::try_from(p).ok())
            .collect()
    }

    /// `tongban local down --purge`.
    pub fn down(&mut self) -> anyhow::Result<Run> {
        let state_dir = self.state_dir();
        let run = self.tongban(&["local", "down", "--purge", "--state-dir", &state_dir])?;
        self.down = run.code == 0;
        Ok(run)
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        if !self.down {
            match self.down() {
                Ok(run) if run.code == 0 => {}
                // Left behind: say what, so the leak can be traced and cleaned.
                other => eprintln!(
                    "tongban local down --purge for {} failed: {other:?}",
                    self.exchange
                ),
            }
        }
    }
}

/// A process's log file.
pub struct Log {
    pub name: String,
    path: PathBuf,
}

impl Log {
    /// The last lines the process wrote.
    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// Whether `pid` still runs (a zombie waiting for its reaper does not).
pub fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The example application's enterprise.
pub const APPLICANT: &str = "91350100M000100Y43";

/// Submits the example application through `intake`, approves every review task through the
/// approval replicas in turn, and returns the application once approved and delivered to all
/// four platforms.
pub async fn one_application_end_to_end(
    keys: &tongban_testkit::Keys,
    intake_url: &str,
    approval_urls: &[String],
) -> anyhow::Result<tongban_proto::intake::Application> {
    let mut intake = tongban_proto::intake::intake_service_client::IntakeServiceClient::connect(
        intake_url.to_string(),
    )
    .await?;
    let mut approvals = Vec::new();
    for url in approval_urls {
        approvals.push(
            tongban_proto::approval::approval_service_client::ApprovalServiceClient::connect(
                url.clone(),
            )
            .await?,
        );
    }
    let applicant = keys.token(tongban_auth::Role::Applicant, None, Some(APPLICANT));
    let admin = keys.token(tongban_auth::Role::Admin, None, None);
    let text = tongban_testkit::example_request_json()?;
    let req: tongban_proto::intake::SubmitApplicationRequest =
        tongban_proto::json::from_json("tongban.intake.v1.SubmitApplicationRequest", &text)?;
    let id = intake
        .submit_application(tongban_testkit::authed(req, &applicant))
        .await?
        .into_inner()
        .application
        .map(|a| a.application_id)
        .unwrap_or_default();
    anyhow::ensure!(!id.is_empty(), "no application id");

    let mut decided = 0;
    for round in 0..10 {
        let approval = approvals[round % approvals.len()].clone();
        let open =
            tongban_testkit::eventually(Duration::from_secs(30), "open tasks or APPROVED", || {
                let (mut a, mut i, id, admin, applicant) = (
                    approval.clone(),
                    intake.clone(),
                    id.clone(),
                    admin.clone(),
                    applicant.clone(),
                );
                async move {
                    let tasks: Vec<tongban_proto::approval::Task> = a
                        .list_tasks(tongban_testkit::authed(
                            tongban_proto::approval::ListTasksRequest {
                                application_id: id.clone(),
                                ..Default::default()
                            },
                            &admin,
                        ))
                        .await
                        .ok()?
                        .into_inner()
                        .tasks
                        .into_iter()
                        .filter(|t| t.kind() == tongban_proto::approval::TaskKind::Review)
                        .collect();
                    if !tasks.is_empty() {
                        return Some(tasks);
                    }
                    let status = i
                        .get_application(tongban_testkit::authed(
                            tongban_proto::intake::GetApplicationRequest { application_id: id },
                            &applicant,
                        ))
                        .await
                        .ok()?
                        .into_inner()
                        .application?
                        .status();
                    (status == tongban_proto::intake::ApplicationStatus::Approved).then(Vec::new)
                }
            })
            .await?;
        if open.is_empty() {
            break;
        }
        for t in open {
            let clerk = keys.token(tongban_auth::Role::Clerk, Some(&t.department), None);
            approval
                .clone()
                .decide_task(tongban_testkit::authed(
                    tongban_proto::approval::DecideTaskRequest {
                        task_id: t.task_id.clone(),
                        decision: tongban_proto::approval::Decision::Approve as i32,
                        comment: "同意".into(),
                        expected_version: t.version,
                        requested_materials: vec![],
                        assign_departments: vec![],
                    },
                    &clerk,
                ))
                .await?;
            decided += 1;
        }
    }
    anyhow::ensure!(
        decided == 5,
        "acceptance, three joint reviews and the decision: {decided} decided"
    );
    tongban_testkit::eventually(Duration::from_secs(60), "4/4 platforms delivered", || {
        let (mut i, id, applicant) = (intake.clone(), id.clone(), applicant.clone());
        async move {
            let a = i
                .get_application(tongban_testkit::authed(
                    tongban_proto::intake::GetApplicationRequest { application_id: id },
                    &applicant,
                ))
                .await
                .ok()?
                .into_inner()
                .application?;
            (a.status() == tongban_proto::intake::ApplicationStatus::Approved
                && a.deliveries.as_ref().is_some_and(|d| d.succeeded == 4))
            .then_some(a)
        }
    })
    .await
}
