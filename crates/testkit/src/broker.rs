//! A RabbitMQ node of a test's own, for tests that stop and start the broker: the shared
//! broker on 5672 serves every other test and must never go down.
//!
//! The node runs the machine's `rabbitmq-server` with its own node name, ports, data and log
//! directories (under a temporary directory), and no plugins. [`PrivateBroker::stop`] stops it
//! (and [`PrivateBroker::kill`] kills it); [`PrivateBroker::start`] brings it back on the same
//! port and data.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// Where Debian installs the server script.
const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

pub struct PrivateBroker {
    dir: tempfile::TempDir,
    node: String,
    port: u16,
    dist_port: u16,
    child: Option<Child>,
}

impl PrivateBroker {
    /// Boots a fresh node and waits until it accepts AMQP connections.
    pub async fn boot() -> anyhow::Result<Self> {
        if !std::path::Path::new(SERVER).exists() {
            anyhow::bail!("{SERVER} is missing: install Debian's rabbitmq-server");
        }
        let ports = crate::free_ports(2)?;
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("rabbitmq.conf"),
            format!(
                "listeners.tcp.1 = 127.0.0.1:{}\nloopback_users = none\n",
                ports[0]
            ),
        )?;
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n")?;
        let mut broker = Self {
            node: format!("tongban-test-{}-{}@localhost", std::process::id(), ports[0]),
            port: ports[0],
            dist_port: ports[1],
            dir,
            child: None,
        };
        broker.start().await?;
        Ok(broker)
    }

    /// `amqp://` URL of this node.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts the node (again) and waits up to two minutes until an AMQP client gets in.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        use std::os::unix::process::CommandExt as _;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("server.log"))?;
        let child = Command::new(SERVER)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", self.path("rabbitmq.conf"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                self.path("enabled_plugins"),
            )
            .env("RABBITMQ_MNESIA_BASE", self.path("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.path("log"))
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            // Its own process group, so that stopping it takes the Erlang VM too.
            .process_group(0)
            .spawn()?;
        self.child = Some(child);
        let url = self.url();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(conn) =
                lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await
            {
                let _ = conn.close(200, "ready".into()).await;
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                anyhow::bail!(
                    "rabbitmq-server exited ({status}):\n{}",
                    std::fs::read_to_string(self.path("server.log")).unwrap_or_default()
                );
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("private RabbitMQ node not up after 120 s");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops the node the way an operator does (`rabbitmqctl stop`), waiting until it is gone;
    /// kills it if it does not go within 60 s.
    pub fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        let _ = Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
            .args(["-n", &self.node, "stop"])
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while let Some(c) = self.child.as_mut() {
            if matches!(c.try_wait(), Ok(Some(_))) || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill();
    }

    /// Kills the node at once (SIGKILL to its process group): a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.kill();
    }
}
