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
