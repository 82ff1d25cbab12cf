//! A PostgreSQL cluster of a test's own, in a temporary directory: for tests that stop and
//! start the database, or create roles, without touching the shared server every other test
//! uses. Made with the machine's `initdb` and `pg_ctl` (as user `postgres` when the test runs
//! as root, since initdb refuses root); superuser `postgres` with a password, password
//! authentication over TCP, trust over its own socket directory.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivatePostgres {
    /// Makes and starts a cluster whose superuser `postgres` has `password`.
    pub fn start(password: &str) -> anyhow::Result<Self> {
        let bindir = Command::new("pg_config").arg("--bindir").output()?;
        anyhow::ensure!(bindir.status.success(), "pg_config --bindir failed");
        let bin = PathBuf::from(String::from_utf8(bindir.stdout)?.trim());
        anyhow::ensure!(
            bin.join("initdb").is_file(),
            "initdb not found in {}",
            bin.display()
        );
        let as_postgres = Command::new("id").arg("-u").output()?.stdout.trim_ascii() == b"0";
        let dir = tempfile::tempdir()?;
        if as_postgres {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?;
            anyhow::ensure!(st.success(), "chown to postgres failed");
        }
        let cluster = Self {
            dir,
            bin,
            port: crate::free_ports(1)?[0],
            as_postgres,
        };
        let pwfile = cluster.dir.path().join("pw");
        std::fs::write(&pwfile, password)?;
        if as_postgres {
            let _ = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&pwfile)
                .status();
        }
        cluster.run_tool(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
            ],
        )?;
        cluster.resume()?;
        Ok(cluster)
    }

    /// The directory the cluster lives in (its socket is here too).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://user:password@127.0.0.1:<port>/database`.
    pub fn url(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// `program` run as the cluster's owner.
    pub fn command(&self, program: &Path) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn run_tool(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let out = self.command(&self.bin.join(tool)).args(args).output()?;
        anyhow::ensure!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// Stops the server (`pg_ctl stop -m fast`: connections are cut, as in an outage).
    pub fn pause(&self) -> anyhow::Result<()> {
        self.run_tool("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"])
    }

    /// Starts the server (again), on the same port and data, and waits until it accepts.
    pub fn resume(&self) -> anyhow::Result<()> {
        self.run_tool(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &self.dir.path().join("log").display().to_string(),
                "-w",
                "-o",
                &format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
                    self.port,
                    self.dir.path().display()
                ),
                "start",
            ],
        )
    }

    /// `psql -c sql` over TCP as `user` with `password` on `database`: Ok(output) or
    /// Err(error text).
    pub fn psql(
        &self,
        user: &str,
        password: &str,
        database: &str,
        sql: &str,
    ) -> anyhow::Result<Result<String, String>> {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args(["-p", &self.port.to_string(), "-U", user, "-d", database])
            .args(["-c", sql])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_owned();
        Ok(if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(text(&out.stderr))
        })
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.run_tool("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }
}
