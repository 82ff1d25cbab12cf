//! Certificates for TLS tests, made with `openssl` as an operator would make them.

use std::{path::PathBuf, process::Command};

/// A self-signed certificate for `localhost` (an end-entity certificate, not a CA, as rustls
/// requires of a server) and its key: `(cert.pem, key.pem)` in `dir`.
pub fn self_signed(dir: &std::path::Path) -> anyhow::Result<(PathBuf, PathBuf)> {
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
    Ok((cert, key))
}
