//! A `tongban dev` child process for end-to-end tests, and helpers that drive the CLI binary
//! against it. The child is killed when the [`Dev`] guard drops, whatever the test did.

#![allow(dead_code, unreachable_pub)]

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

pub const BIN: &str = env!("CARGO_BIN_EXE_tongban");
pub const APPLICANT: &str = "91350100M000100Y43";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn example_path() -> PathBuf {
    repo_root().join("deploy/examples/env.eia.report_form.json")
}

/// A base port whose next three ports are free too.
pub fn free_port_block() -> anyhow::Result<u16> {
    // four services, then the metrics port
    tongban_testkit::free_port_block(5)
}

/// A running `tongban dev`.
pub struct Dev {
    child: Child,
    pub dir: tempfile::TempDir,
    pub base: u16,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

impl Dev {
    /// Starts `tongban dev` on a free port block and waits until intake accepts connections.
    pub fn start() -> anyhow::Result<Self> {
        let mut last = None;
        // Another test may grab the block between probing and binding; try a few blocks.
        for _ in 0..3 {
            match Self::try_start() {
                Ok(dev) => return Ok(dev),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("could not start tongban dev")))
    }

    fn try_start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let base = free_port_block()?;
        let log = std::fs::File::create(dir.path().join("dev.log"))?;
        let child = Command::new(BIN)
            .current_dir(repo_root())
            .arg("dev")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--deploy-dir")
            .arg(repo_root().join("deploy"))
            .arg("--base-port")
            .arg(base.to_string())
            .arg("--sim-free-ports")
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{}", base + 4))
            .env_remove("TONGBAN_DATA_DIR")
            .env_remove("TONGBAN_DEPLOY_DIR")
            .env("TONGBAN_AUDIT_INTERVAL_SECS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()?;
        let mut dev = Self { child, dir, base };
        dev.wait_for(0)?;
        Ok(dev)
    }

    /// Waits until the service at `base + offset` accepts connections.
    pub fn wait_for(&mut self, offset: u16) -> anyhow::Result<()> {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("tongban dev exited ({status}): {}", self.log());
            }
            if accepts(self.base + offset) && self.data().join("jwks.json").exists() {
                return Ok(());
            }
            if Instant::now() > until {
                anyhow::bail!(
                    "port {} not accepting after 60 s: {}",
                    self.base + offset,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dev.log")).unwrap_or_default()
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn server(&self) -> String {
        format!("http://127.0.0.1:{}", self.base)
    }

    /// `tongban token issue ARGS --data-dir <dev data>`.
    pub fn token(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(BIN)
            .args(["token", "issue"])
            .args(args)
            .arg("--data-dir")
            .arg(self.data())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "token issue failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }

    pub fn applicant(&self) -> anyhow::Result<String> {
        self.token(&["--role", "applicant", "--credit-code", APPLICANT])
    }

    /// Runs the CLI against this stack with `token` (none: no token anywhere).
    pub fn cli(&self, token: Option<&str>, args: &[&str]) -> anyhow::Result<Run> {
        run_cli(&self.server(), self.dir.path(), token, args)
    }
}

/// The result of one CLI run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.stdout).map_err(|e| {
            anyhow::anyhow!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr)
        })
    }

    pub fn ok(self) -> anyhow::Result<Self> {
        anyhow::ensure!(
            self.code == 0,
            "exit {}: stdout {} stderr {}",
            self.code,
            self.stdout,
            self.stderr
        );
        Ok(self)
    }
}

/// Runs the CLI with a clean environment: no TONGBAN_* variables, a config path that does not exist.
pub fn run_cli(
    server: &str,
    scratch: &Path,
    token: Option<&str>,
    args: &[&str],
) -> anyhow::Result<Run> {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(repo_root())
        .args(args)
        .arg("--server")
        .arg(server)
        .env("TONGBAN_CONFIG", scratch.join("no-such-config.toml"))
        .stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("TONGBAN_") && k != "TONGBAN_CONFIG" {
            cmd.env_remove(k);
        }
    }
    if let Some(t) = token {
        cmd.arg("--token").arg(t);
    }
    let out: Output = cmd.output()?;
    Ok(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Polls `f` until it returns `Some`, or fails after `secs`.
pub fn eventually<T>(
    secs: u64,
    what: &str,
    mut f: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > until {
            anyhow::bail!("timed out after {secs} s waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A CLI child process that keeps running (e.g. `inbox --follow`); killed on drop.
pub struct Spawned {
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Spawned {
    /// The next stdout line, or `None` after `timeout` (or when stdout closed).
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    /// Starts the CLI against this stack (clean environment as in [`run_cli`]) without waiting
    /// for it; its stdout is read line by line on a thread.
    pub fn spawn_cli(&self, token: Option<&str>, args: &[&str]) -> anyhow::Result<Spawned> {
        use std::io::BufRead as _;
        let mut cmd = Command::new(BIN);
        cmd.current_dir(repo_root())
            .args(args)
            .arg("--server")
            .arg(self.server())
            .env(
                "TONGBAN_CONFIG",
                self.dir.path().join("no-such-config.toml"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, _) in std::env::vars() {
            if k.starts_with("TONGBAN_") && k != "TONGBAN_CONFIG" {
                cmd.env_remove(k);
            }
        }
        if let Some(t) = token {
            cmd.arg("--token").arg(t);
        }
        let mut child = cmd.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("child has no stdout"))?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Spawned { child, lines })
    }
}
