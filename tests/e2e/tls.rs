//! gRPC over TLS: with `tls.cert_file` and `tls.key_file` the server speaks only TLS; a client
//! that trusts the certificate gets answers, and the `tongban` client does too with
//! `TONGBAN_CA_FILE`.

use std::{process::Command, time::Duration};

use tongban_e2e::{binary, free_ports};

use tokio_util::sync::CancellationToken;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test]
async fn a_tls_server_answers_trusting_clients_only() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let (cert_file, key_file) = tongban_testkit::tls::self_signed(dir.path())?;
    let tls = tongban_runtime::config::TlsConfig {
        cert_file,
        key_file,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let shutdown = CancellationToken::new();
    // Only what serve_grpc adds itself (health, reflection).
    let routes = tonic::service::Routes::default();
    let server = {
        let (tls, stop) = (tls.clone(), shutdown.clone());
        tokio::spawn(async move {
            tongban_runtime::serve_grpc(
                listener,
                routes,
                &["probe"],
                None,
                Some(&tls),
                std::time::Duration::from_secs(5),
                stop,
            )
            .await
        })
    };

    let ca = tonic::transport::Certificate::from_pem(std::fs::read(&tls.cert_file)?);
    let endpoint = tonic::transport::Endpoint::from_shared(format!("https://localhost:{port}"))?
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(ca)
                .domain_name("localhost"),
        )?
        .connect_timeout(Duration::from_secs(5));
    let mut answered = None;
    let mut last_error = String::new();
    for _ in 0..50 {
        if server.is_finished() {
            break;
        }
        let connected = endpoint.connect().await;
        if let Err(e) = &connected {
            last_error = format!("{e:?}");
        }
        if let Ok(channel) = connected {
            answered = Some(
                HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await?
                    .into_inner()
                    .status(),
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answered, Some(ServingStatus::Serving), "{last_error}");

    // Plain text gets nothing.
    let plain = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    let refused = match plain.connect().await {
        Err(_) => true,
        Ok(channel) => HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .is_err(),
    };
    assert!(
        refused,
        "a plain-text client got an answer from a TLS server"
    );

    shutdown.cancel();
    server.await??;
    Ok(())
}

/// A service binary configured with TLS, and `tongban health` over https trusting its
/// certificate through `TONGBAN_CA_FILE` (and failing without it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reaches_a_tls_service_that_it_trusts() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, key) = tongban_testkit::tls::self_signed(dir.path())?;
    tongban_testkit::Keys::new().write_jwks(dir.path())?;
    let db = tongban_testkit::TestDb::new(tongban_testkit::Backend::Postgres, "tls").await?;
    let ports = free_ports(2)?;
    let mut cmd = Command::new(binary("tongban-approval")?);
    cmd.env("TONGBAN_DATABASE_URL", &db.url)
        .env("TONGBAN_BUS_URL", tongban_testkit::amqp_url_for_processes())
        .env("TONGBAN_EXCHANGE", tongban_testkit::unique_exchange("tls"))
        .env("TONGBAN_LISTEN", format!("127.0.0.1:{}", ports[0]))
        .env("TONGBAN_METRICS_LISTEN", format!("127.0.0.1:{}", ports[1]))
        .env("TONGBAN_TLS__CERT_FILE", &cert)
        .env("TONGBAN_TLS__KEY_FILE", &key)
        .env(
            "TONGBAN_JWKS_FILE",
            dir.path().join(tongban_auth::keys::JWKS_FILE),
        )
        .env("TONGBAN_DEPLOY_DIR", tongban_testkit::deploy_dir());
    let mut service = tongban_e2e::Proc::spawn("approval", cmd, dir.path())?;
    let url = format!("https://localhost:{}", ports[0]);
    let health = |ca: Option<&std::path::Path>| -> anyhow::Result<std::process::Output> {
        let mut c = Command::new(binary("tongban")?);
        c.args(["health", "--server", &url, "--timeout", "3"])
            .env_remove("TONGBAN_CA_FILE")
            .env("TONGBAN_CONFIG", dir.path().join("no-client-config.toml"));
        if let Some(ca) = ca {
            c.env("TONGBAN_CA_FILE", ca);
        }
        Ok(c.output()?)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        service.check_alive()?;
        let out = health(Some(&cert))?;
        if out.status.success() {
            assert!(String::from_utf8_lossy(&out.stdout).contains("SERVING"));
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no SERVING over TLS: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            service.tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Not trusting the certificate: unreachable (exit 4), and no answer over plain text.
    let untrusted = health(None)?;
    assert_eq!(untrusted.status.code(), Some(4), "{untrusted:?}");
    let plain = Command::new(binary("tongban")?)
        .args([
            "health",
            "--server",
            &format!("http://127.0.0.1:{}", ports[0]),
        ])
        .args(["--timeout", "3"])
        .output()?;
    assert_eq!(plain.status.code(), Some(4), "{plain:?}");
    Ok(())
}
