//! gRPC over TLS: with `tls.cert_file` and `tls.key_file` the server speaks only TLS, and a
//! client that trusts the certificate gets answers.

use std::{process::Command, time::Duration};

use tokio_util::sync::CancellationToken;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// A self-signed certificate for `localhost` (openssl, as an operator would make one).
fn self_signed(dir: &std::path::Path) -> anyhow::Result<tongban_runtime::config::TlsConfig> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "openssl req failed: {status}");
    Ok(tongban_runtime::config::TlsConfig {
        cert_file: cert,
        key_file: key,
    })
}

#[tokio::test]
async fn a_tls_server_answers_trusting_clients_only() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let tls = self_signed(dir.path())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let shutdown = CancellationToken::new();
    // Only what serve_grpc adds itself (health, reflection).
    let routes = tonic::service::Routes::default();
    let server = {
        let (tls, stop) = (tls.clone(), shutdown.clone());
        tokio::spawn(async move {
            tongban_runtime::serve_grpc(listener, routes, &["probe"], None, Some(&tls), stop).await
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
