//! Health tells the truth: a service process on a RabbitMQ node (or a PostgreSQL cluster) of the
//! test's own reports NOT_SERVING while that dependency is down and SERVING again once it is
//! back, and its `tongban_health_serving` gauge says the same.

use std::{process::Command, time::Duration};

use tongban_e2e::{Proc, binary, free_ports, wait_for_grpc};
use tongban_testkit::{
    Backend, Keys, TestDb, broker::PrivateBroker, eventually, postgres::PrivatePostgres,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

async fn status(port: u16) -> Option<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .ok()?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .ok()?;
    let resp = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .ok()?;
    Some(resp.into_inner().status())
}

async fn gauge(metrics_port: u16) -> Option<String> {
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with("tongban_health_serving{"))
        .and_then(|l| l.rsplit(' ').next())
        .map(str::to_string)
}

/// `bin` on free ports (gRPC, metrics) with the given database and bus, serving; returns the
/// process, its gRPC and metrics ports.
async fn serve(
    bin: &str,
    database_url: &str,
    bus_url: &str,
    dir: &std::path::Path,
) -> anyhow::Result<(Proc, u16, u16)> {
    Keys::new().write_jwks(dir)?;
    let ports = free_ports(2)?;
    let (port, metrics_port) = (ports[0], ports[1]);
    let mut cmd = Command::new(binary(bin)?);
    cmd.env("TONGBAN_DATABASE_URL", database_url)
        .env("TONGBAN_BUS_URL", bus_url)
        .env(
            "TONGBAN_EXCHANGE",
            tongban_testkit::unique_exchange("health"),
        )
        .env("TONGBAN_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "TONGBAN_METRICS_LISTEN",
            format!("127.0.0.1:{metrics_port}"),
        )
        .env("TONGBAN_JWKS_FILE", dir.join(tongban_auth::keys::JWKS_FILE))
        .env("TONGBAN_DEPLOY_DIR", tongban_testkit::deploy_dir())
        .env("RUST_LOG", "info");
    let mut proc = Proc::spawn(bin, cmd, dir)?;
    wait_for_grpc(port, &mut [&mut proc], Duration::from_secs(60)).await?;
    Ok((proc, port, metrics_port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_broker_down_and_up() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut broker = PrivateBroker::boot().await?;
    let dir = tempfile::tempdir()?;
    let db = TestDb::new(Backend::Postgres, "health").await?;
    let (mut approval, port, metrics_port) =
        serve("tongban-approval", &db.url, &broker.url(), dir.path()).await?;
    // The gauge is recorded by the health monitor's first pass, just after the first answer.
    eventually(Duration::from_secs(10), "the gauge at 1", || async move {
        (gauge(metrics_port).await.as_deref() == Some("1")).then_some(())
    })
    .await?;

    broker.stop();
    eventually(
        Duration::from_secs(30),
        "NOT_SERVING with the broker down",
        || async move { (status(port).await == Some(ServingStatus::NotServing)).then_some(()) },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", approval.tail()))?;
    approval.check_alive()?;
    eventually(Duration::from_secs(10), "the gauge at 0", || async move {
        (gauge(metrics_port).await.as_deref() == Some("0")).then_some(())
    })
    .await?;

    broker.start().await?;
    eventually(
        Duration::from_secs(90),
        "SERVING once the broker is back",
        || async move { (status(port).await == Some(ServingStatus::Serving)).then_some(()) },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", approval.tail()))?;
    eventually(Duration::from_secs(10), "the gauge at 1", || async move {
        (gauge(metrics_port).await.as_deref() == Some("1")).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_database_down_and_up() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = PrivatePostgres::start("health-pw")?;
    let dir = tempfile::tempdir()?;
    let (mut notification, port, metrics_port) = serve(
        "tongban-notification",
        &cluster.url("postgres", "health-pw", "postgres"),
        &tongban_testkit::amqp_url_for_processes(),
        dir.path(),
    )
    .await?;

    cluster.pause()?;
    eventually(
        Duration::from_secs(30),
        "NOT_SERVING with the database down",
        || async move { (status(port).await == Some(ServingStatus::NotServing)).then_some(()) },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", notification.tail()))?;
    notification.check_alive()?;
    eventually(Duration::from_secs(10), "the gauge at 0", || async move {
        (gauge(metrics_port).await.as_deref() == Some("0")).then_some(())
    })
    .await?;

    cluster.resume()?;
    eventually(
        Duration::from_secs(60),
        "SERVING once the database is back",
        || async move { (status(port).await == Some(ServingStatus::Serving)).then_some(()) },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", notification.tail()))?;
    Ok(())
}
