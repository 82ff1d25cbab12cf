//! The production topology as separate processes: each service its own binary and its own
//! PostgreSQL database, events over RabbitMQ on an exchange unique to the test.

use std::{process::Command, time::Duration};

use tongban_auth::Role;
use tongban_e2e::{Proc, binary, free_ports, wait_for_grpc};
use tongban_proto::intake::{self as pb, intake_service_client::IntakeServiceClient};
use tongban_testkit::{Backend, Keys, TestDb, authed};

struct Stack {
    dir: tempfile::TempDir,
    exchange: String,
    keys: Keys,
    _dbs: Vec<TestDb>,
}

impl Stack {
    async fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let keys = Keys::new();
        std::fs::write(dir.path().join("jwt.secret"), keys.secret_hex())?;
        Ok(Self {
            dir,
            exchange: tongban_testkit::unique_exchange("e2e"),
            keys,
            _dbs: Vec::new(),
        })
    }

    /// Starts `bin` as `service` on `port` with a fresh database.
    async fn service(&mut self, bin: &str, service: &str, port: u16) -> anyhow::Result<Proc> {
        let db = TestDb::new(Backend::Postgres, service).await?;
        let mut cmd = Command::new(binary(bin)?);
        cmd.env("TONGBAN_DATABASE_URL", &db.url)
            .env("TONGBAN_BUS_URL", tongban_testkit::amqp_url())
            .env("TONGBAN_EXCHANGE", &self.exchange)
            .env("TONGBAN_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "TONGBAN_JWT_SECRET_FILE",
                self.dir.path().join("jwt.secret"),
            )
            .env("TONGBAN_DEPLOY_DIR", tongban_testkit::deploy_dir())
            .env("RUST_LOG", "info");
        self._dbs.push(db);
        Proc::spawn(service, cmd, self.dir.path())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_process_serves_and_stops_cleanly_on_sigterm() -> anyhow::Result<()> {
    let mut stack = Stack::new().await?;
    let port = free_ports(1)?[0];
    let mut intake = stack.service("tongban-intake", "intake", port).await?;
    wait_for_grpc(port, &mut [&mut intake], Duration::from_secs(30)).await?;

    let mut client = IntakeServiceClient::connect(format!("http://127.0.0.1:{port}")).await?;
    let text = tongban_testkit::example_request_json()?;
    let req: pb::SubmitApplicationRequest =
        tongban_proto::json::from_json("tongban.intake.v1.SubmitApplicationRequest", &text)?;
    let token = stack
        .keys
        .token(Role::Applicant, None, Some("91350100M000100Y43"));
    let app = client
        .submit_application(authed(req, &token))
        .await?
        .into_inner();
    assert!(app.created);

    let pid = intake.pid().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    assert!(status.success());
    let code = intake.wait_exit(Duration::from_secs(20)).await?;
    assert_eq!(code, Some(0), "graceful stop exits 0:\n{}", intake.tail());
    Ok(())
}
