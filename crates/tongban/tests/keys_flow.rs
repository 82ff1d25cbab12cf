//! Keys and tokens through the binary: `keys generate` (file modes, rotation), `keys drop`,
//! `token issue --key`, and a running `tongban dev` that accepts only tokens its key set
//! vouches for.

mod common;

use std::{path::Path, process::Command};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use common::{BIN, Dev};
use tongban_auth::{Authenticator, SigningKey, TokenRules, keys};

/// Runs the binary with no `TONGBAN_*` environment; returns (exit code, stdout, stderr).
fn tongban(args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("TONGBAN_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn issue(key: &Path, args: &[&str]) -> anyhow::Result<String> {
    let key = key.to_string_lossy();
    let mut all = vec!["token", "issue", "--key", &key];
    all.extend_from_slice(args);
    let (code, out, err) = tongban(&all)?;
    anyhow::ensure!(code == 0, "token issue {args:?} exited {code}: {err}");
    Ok(out.trim().to_string())
}

fn kid_of(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.kid
}

fn verifier(dir: &Path) -> anyhow::Result<Authenticator> {
    Ok(Authenticator::from_jwks_file(
        &dir.join(keys::JWKS_FILE),
        &TokenRules::default(),
    )?)
}

#[test]
fn keys_generate_rotate_drop_and_token_issue_with_key() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("keys");
    let d = dir.to_string_lossy().to_string();
    let key = dir.join(keys::ISSUER_KEY_FILE);

    let (code, out, err) = tongban(&["keys", "generate", &d])?;
    assert_eq!(code, 0, "{err}");
    let first = SigningKey::load(&key)?;
    assert!(out.contains(first.kid()), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "issuer.key mode {mode:o}");
    }
    assert!(std::fs::read_to_string(&key)?.starts_with("-----BEGIN PRIVATE KEY-----"));
    let jwks = std::fs::read_to_string(dir.join(keys::JWKS_FILE))?;
    assert!(
        !jwks.contains("\"d\""),
        "no private member in the JWKS: {jwks}"
    );

    // The kid in the header is the key file's.
    let old_token = issue(&key, &["--role", "clerk", "--department", "eco_env"])?;
    assert_eq!(kid_of(&old_token).as_deref(), Some(first.kid()));
    let id = verifier(&dir)?.verify(&old_token)?;
    assert_eq!(id.department.as_deref(), Some("eco_env"));

    // The issuer refuses what services would reject.
    let k = key.to_string_lossy().to_string();
    for bad in [
        vec!["--role", "clerk"],
        vec!["--role", "supervisor", "--department", ""],
        vec!["--role", "applicant"],
        vec!["--role", "admin", "--hours", "13"],
        vec!["--role", "admin", "--hours", "0"],
    ] {
        let mut args = vec!["token", "issue", "--key", &k];
        args.extend_from_slice(&bad);
        let (code, out, err) = tongban(&args)?;
        assert_eq!(code, 1, "{bad:?} signed: {out}");
        assert!(out.is_empty(), "{bad:?}: {out}");
        assert!(err.contains("error:"), "{bad:?}: {err}");
    }
    let (code, _, err) = tongban(&["token", "issue", "--key", "/no/such.key", "--role", "admin"])?;
    assert_eq!(code, 1, "{err}");

    // --if-missing keeps the key (compose's init step runs it on every start).
    let (code, out, err) = tongban(&["keys", "generate", "--if-missing", &d])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Kept"), "{out}");
    assert_eq!(SigningKey::load(&key)?.kid(), first.kid());

    // Rotation: a new kid signs, the old public key stays.
    let (code, out, err) = tongban(&["keys", "generate", &d])?;
    assert_eq!(code, 0, "{err}");
    let second = SigningKey::load(&key)?;
    assert_ne!(second.kid(), first.kid());
    assert!(out.contains("Rotated"), "{out}");
    let new_token = issue(&key, &["--role", "admin"])?;
    assert_eq!(kid_of(&new_token).as_deref(), Some(second.kid()));
    let auth = verifier(&dir)?;
    auth.verify(&old_token)?;
    auth.verify(&new_token)?;

    // Dropping: never the signing key; an old one, after which its tokens fail.
    let (code, _, err) = tongban(&["keys", "drop", &d, second.kid()])?;
    assert_eq!(code, 1, "dropped the signing key: {err}");
    let (code, _, err) = tongban(&["keys", "drop", &d, first.kid()])?;
    assert_eq!(code, 0, "{err}");
    let auth = verifier(&dir)?;
    assert!(auth.verify(&old_token).is_err());
    auth.verify(&new_token)?;
    Ok(())
}

#[test]
fn dev_accepts_only_tokens_its_key_set_vouches_for() -> anyhow::Result<()> {
    let dev = Dev::start()?;
    let data = dev.data();
    let key_path = data.join(keys::ISSUER_KEY_FILE);
    assert!(data.join(keys::JWKS_FILE).exists());

    // The dev convenience (no --key) and --key on the same file both work.
    for token in [
        dev.token(&["--role", "admin"])?,
        issue(
            &key_path,
            &["--role", "integrator", "--subject", "portal.e2e"],
        )?,
    ] {
        let run = dev.cli(Some(&token), &["matters"])?;
        assert_eq!(run.code, 0, "{}", run.stderr);
    }

    let unauthenticated = |token: &str, what: &str| -> anyhow::Result<()> {
        let run = dev.cli(Some(token), &["matters"])?;
        assert_eq!(run.code, 3, "{what}: {} {}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("UNAUTHENTICATED"),
            "{what}: {}",
            run.stderr
        );
        Ok(())
    };

    // A key dev never heard of.
    let other = tempfile::tempdir()?;
    tongban(&["keys", "generate", &other.path().to_string_lossy()])?;
    let foreign = issue(
        &other.path().join(keys::ISSUER_KEY_FILE),
        &["--role", "admin"],
    )?;
    unauthenticated(&foreign, "foreign key")?;

    // HS256 keyed with the public key set: the algorithm-confusion forgery.
    let jwks = std::fs::read_to_string(data.join(keys::JWKS_FILE))?;
    let dev_key = SigningKey::load(&key_path)?;
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "sub": "mallory", "role": "admin", "iat": now, "exp": now + 600,
        "iss": "tongban", "aud": "tongban",
    });
    let header = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": dev_key.kid()});
    let msg = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, jwks.as_bytes()),
        msg.as_bytes(),
    );
    unauthenticated(
        &format!("{msg}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())),
        "HS256",
    )?;
    // alg none.
    let none = serde_json::json!({"alg": "none", "kid": dev_key.kid()});
    unauthenticated(
        &format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(none.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        ),
        "alg none",
    )?;
    // Signed by dev's own key, but wrong in what it says.
    let signed = |edit: &dyn Fn(&mut serde_json::Value)| -> anyhow::Result<String> {
        let mut c = claims.clone();
        edit(&mut c);
        let h = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": dev_key.kid()});
        Ok(dev_key.sign_unchecked(&h.to_string(), &c.to_string())?)
    };
    let run = dev.cli(Some(&signed(&|_| {})?), &["matters"])?;
    assert_eq!(run.code, 0, "control token: {}", run.stderr);
    unauthenticated(&signed(&|c| c["aud"] = "elsewhere".into())?, "wrong aud")?;
    unauthenticated(
        &signed(&|c| {
            c.as_object_mut().map(|o| o.remove("aud"));
        })?,
        "no aud",
    )?;
    unauthenticated(
        &signed(&|c| c["exp"] = (now + 13 * 3600).into())?,
        "over the cap",
    )?;
    unauthenticated(
        &signed(&|c| {
            c["iat"] = (now - 7200).into();
            c["exp"] = (now - 3600).into();
        })?,
        "expired",
    )?;
    unauthenticated(
        &signed(&|c| c["role"] = "clerk".into())?,
        "clerk without department",
    )?;
    unauthenticated(
        &signed(&|c| c["role"] = "applicant".into())?,
        "applicant without credit code",
    )?;
    Ok(())
}
