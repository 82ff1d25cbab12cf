//! Helpers for end-to-end tests that run Tongban's real binaries as separate processes.
//!
//! The binaries are looked up next to the test executable (`target/<profile>/`);
//! `scripts/test.sh` builds them before running the tests. A missing binary fails the test
//! with a message saying so.

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
        let run = stack.tongban(&[
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
            &tongban_testkit::amqp_url_for_processes(),
            "--admin-url",
            &tongban_testkit::postgres_admin_url(),
            "--deploy-dir",
            &tongban_testkit::deploy_dir().to_string_lossy(),
            "--jwks-file",
            &jwks.to_string_lossy(),
            "--output",
            "json",
        ])?;
        anyhow::ensure!(run.code == 0, "tongban local up failed: {run:?}");
        stack.state = serde_json::from_str(&run.stdout)
            .map_err(|e| anyhow::anyhow!("local up printed no JSON ({e}): {run:?}"))?;
        Ok(stack)
    }

    pub fn state_dir(&self) -> String {
        self.dir.path().join("state").to_string_lossy().into_owned()
    }

    /// Runs the `tongban` binary with `args` (no TONGBAN_* variables from the test's environment).
    pub fn tongban(&self, args: &[&str]) -> anyhow::Result<Run> {
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

    /// `host:port` of every replica's metrics endpoint.
    pub fn metrics_targets(&self) -> Vec<String> {
        self.processes()
            .iter()
            .filter_map(|p| p["metrics"].as_str())
            .filter_map(|m| m.strip_prefix("http://"))
            .filter_map(|m| m.strip_suffix("/metrics"))
            .map(String::from)
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
            let _ = self.down();
        }
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
