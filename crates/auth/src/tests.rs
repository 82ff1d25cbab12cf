//! Token issuing and verification: the good path, every way a token must fail, key files and
//! rotation.

use super::*;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::json;

const CC: &str = "91350100M000100Y43";

fn ok<T, E: fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn key(seed: u8) -> SigningKey {
    ok(SigningKey::from_seed(&[seed; 32]))
}

fn jwks_of(keys: &[&SigningKey]) -> Jwks {
    Jwks::new(keys.iter().map(|k| k.public_jwk()).collect())
}

fn auth_for(keys: &[&SigningKey]) -> Authenticator {
    Authenticator::new(&jwks_of(keys), &TokenRules::default())
}

fn req(role: Role) -> TokenRequest {
    TokenRequest {
        subject: "alice".into(),
        role,
        department: Some("eco_env".into()),
        region: Some("350724".into()),
        credit_code: None,
        ttl: chrono::Duration::hours(1),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Valid claims for a clerk, to be spoiled one member at a time.
fn claims() -> serde_json::Value {
    json!({
        "sub": "alice", "role": "clerk", "department": "eco_env",
        "iat": now(), "exp": now() + 3600, "iss": "tongban", "aud": "tongban",
    })
}

fn header(k: &SigningKey) -> serde_json::Value {
    json!({"alg": "EdDSA", "typ": "JWT", "kid": k.kid()})
}

fn sign(k: &SigningKey, header: &serde_json::Value, claims: &serde_json::Value) -> String {
    ok(k.sign_unchecked(&header.to_string(), &claims.to_string()))
}

fn rejected(auth: &Authenticator, token: &str) -> String {
    match auth.verify(token) {
        Ok(id) => panic!("accepted {id:?}"),
        Err(e) => {
            let status = tonic::Status::from(e);
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
            status.message().to_string()
        }
    }
}

#[test]
fn issued_token_verifies_and_carries_identity() {
    let k = key(1);
    let token = ok(Issuer::new(k.clone()).issue(&req(Role::Clerk)));
    let h = ok(jsonwebtoken::decode_header(&token));
    assert_eq!(h.alg, Algorithm::EdDSA);
    assert_eq!(h.kid.as_deref(), Some(k.kid()));
    let id = ok(auth_for(&[&k]).verify(&token));
    assert_eq!(id.role, Role::Clerk);
    assert_eq!(id.department.as_deref(), Some("eco_env"));
    assert_eq!(id.region.as_deref(), Some("350724"));
    assert_eq!(id.actor_label(), "clerk:alice@eco_env");
    // The hand-made path agrees with the issuer's.
    ok(auth_for(&[&k]).verify(&sign(&k, &header(&k), &claims())));
}

#[test]
fn token_from_another_key_is_rejected() {
    let (k, other) = (key(1), key(2));
    let auth = auth_for(&[&k]);
    let token = ok(Issuer::new(other.clone()).issue(&req(Role::Clerk)));
    assert!(rejected(&auth, &token).contains("unknown key id"));
    // Signed by another key but claiming the trusted kid: the signature fails.
    let forged = sign(&other, &header(&k), &claims());
    assert!(rejected(&auth, &forged).contains("InvalidSignature"));
}

#[test]
fn hs256_signed_with_the_public_key_material_is_rejected() {
    // The classic confusion: an HMAC over the token keyed with what the service holds.
    let k = key(1);
    let jwks = jwks_of(&[&k]);
    let auth = Authenticator::new(&jwks, &TokenRules::default());
    let x = URL_SAFE_NO_PAD.encode(k.public_jwk().x);
    for secret in [
        jwks.to_json().into_bytes(),
        k.public_jwk().x.to_vec(),
        x.into_bytes(),
    ] {
        let h = json!({"alg": "HS256", "typ": "JWT", "kid": k.kid()});
        let msg = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(h.to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
            msg.as_bytes(),
        );
        let token = format!("{msg}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert!(rejected(&auth, &token).contains("HS256"));
    }
}

#[test]
fn alg_none_and_other_algorithms_are_rejected() {
    let k = key(1);
    let auth = auth_for(&[&k]);
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": k.kid()}).to_string()),
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    rejected(&auth, &none);
    // `none` with a real signature attached, and algorithms the service has no key type for.
    for alg in ["none", "None", "RS256", "ES256", "PS256", "HS512"] {
        let h = json!({"alg": alg, "typ": "JWT", "kid": k.kid()});
        rejected(&auth, &sign(&k, &h, &claims()));
    }
}

#[test]
fn unknown_or_missing_kid_is_rejected() {
    let k = key(1);
    let auth = auth_for(&[&k]);
    let h = json!({"alg": "EdDSA", "typ": "JWT", "kid": "someone-else"});
    assert!(rejected(&auth, &sign(&k, &h, &claims())).contains("unknown key id"));
    let h = json!({"alg": "EdDSA", "typ": "JWT"});
    assert!(rejected(&auth, &sign(&k, &h, &claims())).contains("no kid"));
}

#[test]
fn audience_and_issuer_are_checked() {
    let k = key(1);
    let auth = auth_for(&[&k]);
    let h = header(&k);
    let mut c = claims();
    c["aud"] = json!("another-system");
    assert!(rejected(&auth, &sign(&k, &h, &c)).contains("InvalidAudience"));
    c.as_object_mut().map(|o| o.remove("aud"));
    rejected(&auth, &sign(&k, &h, &c));
    let mut c = claims();
    c["aud"] = json!(["other", "tongban"]);
    ok(auth.verify(&sign(&k, &h, &c)));
    let mut c = claims();
    c["iss"] = json!("evil");
    assert!(rejected(&auth, &sign(&k, &h, &c)).contains("InvalidIssuer"));
    // A configured audience replaces the default one on both sides.
    let rules = TokenRules {
        audience: "county-350724".into(),
        ..TokenRules::default()
    };
    let token = ok(Issuer::new(k.clone())
        .with_rules(rules.clone())
        .issue(&req(Role::Admin)));
    rejected(&auth, &token);
    ok(Authenticator::new(&jwks_of(&[&k]), &rules).verify(&token));
}

#[test]
fn expired_over_the_cap_and_future_tokens_are_rejected() {
    let k = key(1);
    let auth = auth_for(&[&k]);
    let h = header(&k);
    let mut c = claims();
    c["iat"] = json!(now() - 7200);
    c["exp"] = json!(now() - 3600);
    assert!(rejected(&auth, &sign(&k, &h, &c)).contains("ExpiredSignature"));
    let mut c = claims();
    c["exp"] = json!(now() + 12 * 3600 + 60);
    assert!(rejected(&auth, &sign(&k, &h, &c)).contains("cap"));
    // Exactly the cap is allowed.
    let mut c = claims();
    c["exp"] = json!(c["iat"].as_i64().unwrap_or_default() + 12 * 3600);
    ok(auth.verify(&sign(&k, &h, &c)));
    // A future iat would stretch the window past the cap.
    let mut c = claims();
    c["iat"] = json!(now() + 11 * 3600);
    c["exp"] = json!(now() + 12 * 3600);
    assert!(rejected(&auth, &sign(&k, &h, &c)).contains("future"));
    for missing in ["iat", "exp"] {
        let mut c = claims();
        c.as_object_mut().map(|o| o.remove(missing));
        rejected(&auth, &sign(&k, &h, &c));
    }
    // The cap is configurable per service.
    let short = TokenRules {
        max_lifetime: Duration::from_secs(600),
        ..TokenRules::default()
    };
    let strict = Authenticator::new(&jwks_of(&[&k]), &short);
    assert!(rejected(&strict, &sign(&k, &h, &claims())).contains("cap"));
}

#[test]
fn issuer_refuses_long_or_non_positive_lifetimes() {
    let issuer = Issuer::new(key(1));
    for hours in [13, 0, -1] {
        let mut r = req(Role::Clerk);
        r.ttl = chrono::Duration::hours(hours);
        assert!(
            matches!(issuer.issue(&r), Err(AuthError::Refused(_))),
            "{hours} h"
        );
    }
    let mut r = req(Role::Clerk);
    r.ttl = chrono::Duration::hours(12);
    ok(issuer.issue(&r));
    let short = issuer.with_rules(TokenRules {
        max_lifetime: Duration::from_secs(3599),
        ..TokenRules::default()
    });
    assert!(matches!(
        short.issue(&req(Role::Clerk)),
        Err(AuthError::Refused(_))
    ));
}

#[test]
fn a_token_missing_a_claim_its_role_needs_is_unauthenticated() {
    let k = key(1);
    let auth = auth_for(&[&k]);
    let h = header(&k);
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("applicant", "credit_code", None),
        ("applicant", "credit_code", Some("")),
        ("applicant", "credit_code", Some("  ")),
        ("clerk", "department", None),
        ("clerk", "department", Some("")),
        ("supervisor", "department", None),
        ("supervisor", "department", Some("")),
        ("integrator", "sub", None),
        ("integrator", "sub", Some("")),
        ("admin", "sub", Some("")),
    ];
    for (role, claim, value) in cases {
        let mut c = json!({
            "sub": "x", "role": role, "department": "eco_env", "credit_code": CC,
            "iat": now(), "exp": now() + 600, "iss": "tongban", "aud": "tongban",
        });
        match value {
            Some(v) => c[*claim] = json!(v),
            None => {
                c.as_object_mut().map(|o| o.remove(*claim));
            }
        }
        let msg = rejected(&auth, &sign(&k, &h, &c));
        assert!(msg.contains(claim), "{role} without {claim}: {msg}");
        // The issuer refuses to make the same token.
        let r = TokenRequest {
            subject: c["sub"].as_str().unwrap_or_default().into(),
            role: role.parse().unwrap_or(Role::Admin),
            department: c["department"].as_str().map(Into::into),
            region: None,
            credit_code: c["credit_code"].as_str().map(Into::into),
            ttl: chrono::Duration::minutes(10),
        };
        assert!(
            matches!(
                Issuer::new(k.clone()).issue(&r),
                Err(AuthError::MissingClaim { .. })
            ),
            "issuer signed {role} without {claim}"
        );
    }
    // What each role needs, and no more.
    let needs = [
        ("applicant", json!({"credit_code": CC})),
        ("clerk", json!({"department": "eco_env.songyuan"})),
        ("supervisor", json!({"department": "eco_env"})),
        ("integrator", json!({})),
        ("admin", json!({})),
    ];
    for (role, extra) in needs {
        let mut c = json!({
            "sub": "x", "role": role,
            "iat": now(), "exp": now() + 600, "iss": "tongban", "aud": "tongban",
        });
        for (k2, v) in extra.as_object().into_iter().flatten() {
            c[k2] = v.clone();
        }
        let id = ok(auth.verify(&sign(&k, &h, &c)));
        assert_eq!(id.role.as_str(), role);
    }
    // A malformed credit code is no credit code.
    let mut c = claims();
    c["role"] = json!("applicant");
    c["credit_code"] = json!("91350100M000100Y44");
    rejected(&auth, &sign(&k, &h, &c));
}

#[test]
fn applicant_credit_code_is_normalised() {
    let k = key(1);
    let mut r = req(Role::Applicant);
    r.credit_code = Some("91350100m000100y43".into());
    let token = ok(Issuer::new(k.clone()).issue(&r));
    let id = ok(auth_for(&[&k]).verify(&token));
    assert_eq!(id.credit_code.map(|c| c.to_string()).as_deref(), Some(CC));
}

#[test]
fn rotation_keeps_old_tokens_until_their_key_is_dropped() {
    let dir = ok(tempfile::tempdir());
    let first = ok(keys::generate(dir.path()));
    assert_eq!(first.previous_kid, None);
    let old = ok(SigningKey::load(&first.key_path));
    assert_eq!(old.kid(), first.kid);
    let old_token = ok(Issuer::new(old.clone()).issue(&req(Role::Clerk)));

    let second = ok(keys::generate(dir.path()));
    assert_eq!(second.previous_kid.as_deref(), Some(first.kid.as_str()));
    assert_ne!(second.kid, first.kid);
    assert_eq!(second.kids, vec![second.kid.clone(), first.kid.clone()]);
    let new = ok(SigningKey::load(&second.key_path));
    assert_eq!(new.kid(), second.kid, "the new key signs from now on");
    let new_token = ok(Issuer::new(new.clone()).issue(&req(Role::Clerk)));

    let rules = TokenRules::default();
    let auth = ok(Authenticator::from_jwks_file(&second.jwks_path, &rules));
    ok(auth.verify(&old_token));
    ok(auth.verify(&new_token));

    // The signing key cannot be dropped; the old one can, and its tokens then fail.
    assert!(keys::drop_key(dir.path(), &second.kid).is_err());
    assert!(keys::drop_key(dir.path(), "no-such-kid").is_err());
    let left = ok(keys::drop_key(dir.path(), &first.kid));
    assert_eq!(left.kids(), vec![second.kid.as_str()]);
    let auth = ok(Authenticator::from_jwks_file(&second.jwks_path, &rules));
    assert!(rejected(&auth, &old_token).contains("unknown key id"));
    ok(auth.verify(&new_token));
}

#[test]
fn a_running_authenticator_follows_the_jwks_file() {
    let dir = ok(tempfile::tempdir());
    let first = ok(keys::generate(dir.path()));
    let old = ok(SigningKey::load(&first.key_path));
    let old_token = ok(Issuer::new(old).issue(&req(Role::Clerk)));
    let rules = TokenRules::default();
    // Looked at on every request, so the test needs no clock.
    let auth = ok(Authenticator::from_jwks_file(&first.jwks_path, &rules))
        .with_jwks_recheck(Duration::ZERO);
    ok(auth.verify(&old_token));

    // A key generated while the service runs is accepted at once.
    let second = ok(keys::generate(dir.path()));
    let new = ok(SigningKey::load(&second.key_path));
    let new_token = ok(Issuer::new(new).issue(&req(Role::Clerk)));
    ok(auth.verify(&new_token));
    ok(auth.verify(&old_token));

    // A dropped key is refused from the next request on.
    ok(keys::drop_key(dir.path(), &first.kid));
    assert!(rejected(&auth, &old_token).contains("unknown key id"));
    ok(auth.verify(&new_token));

    // A file that no longer reads keeps the keys in force rather than refusing everyone.
    ok(std::fs::write(&second.jwks_path, "{ not json"));
    ok(auth.verify(&new_token));
    assert!(rejected(&auth, &old_token).contains("unknown key id"));

    // Without the override, a change is not looked for before JWKS_RECHECK has passed.
    let path = dir.path().join("patient.json");
    ok(std::fs::write(&path, jwks_of(&[&key(8)]).to_json()));
    let patient = ok(Authenticator::from_jwks_file(&path, &rules));
    ok(std::fs::write(
        &path,
        jwks_of(&[&key(8), &key(9)]).to_json(),
    ));
    let third = sign(&key(9), &header(&key(9)), &claims());
    assert!(rejected(&patient, &third).contains("unknown key id"));
}

#[cfg(unix)]
#[test]
fn key_files_have_the_right_modes() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = ok(tempfile::tempdir());
    let g = ok(keys::generate(&dir.path().join("nested")));
    let mode = |p: &Path| ok(std::fs::metadata(p)).permissions().mode() & 0o777;
    assert_eq!(mode(&g.key_path), 0o600);
    assert_eq!(mode(&g.jwks_path), 0o644);
    let g = ok(keys::generate(&dir.path().join("nested")));
    assert_eq!(mode(&g.key_path), 0o600, "after rotation too");
    // No temporary files left behind.
    let names: Vec<String> = ok(std::fs::read_dir(dir.path().join("nested")))
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn ensure_creates_once_and_reuses() {
    let dir = ok(tempfile::tempdir());
    let a = ok(keys::ensure(dir.path()));
    let b = ok(keys::ensure(dir.path()));
    assert_eq!(a.kid(), b.kid());
    let jwks = ok(Jwks::load(&dir.path().join(keys::JWKS_FILE)));
    assert_eq!(jwks.kids(), vec![a.kid()]);
    // A key set that lost the signing key is an error, not a silent mismatch.
    let other = key(9);
    ok(std::fs::write(
        dir.path().join(keys::JWKS_FILE),
        jwks_of(&[&other]).to_json(),
    ));
    assert!(matches!(keys::ensure(dir.path()), Err(AuthError::Jwks(_))));
}

#[test]
fn private_key_pem_round_trips_and_never_prints() {
    let k = key(3);
    let pem = k.to_pem();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    let back = ok(SigningKey::from_pem(&pem));
    assert_eq!(back.kid(), k.kid());
    let shown = format!("{k:?}");
    assert!(
        shown.contains("REDACTED") && shown.contains(k.kid()),
        "{shown}"
    );
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!shown.contains(&body), "{shown}");
    // An OpenSSL-style v1 key (`openssl genpkey -algorithm ed25519`) of RFC 8032's test
    // vector 1 has the public key RFC 8032 gives.
    let openssl = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
        -----END PRIVATE KEY-----\n";
    let v = ok(SigningKey::from_pem(openssl));
    assert_eq!(
        URL_SAFE_NO_PAD.encode(v.public_jwk().x),
        "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    );
    assert!(
        SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
            .is_err()
    );
}

#[test]
fn jwks_parsing_is_strict() {
    let k = key(1);
    let good = jwks_of(&[&k, &key(2)]);
    assert_eq!(ok(Jwks::parse(&good.to_json())), good);
    let x = URL_SAFE_NO_PAD.encode(k.public_jwk().x);
    let bad = [
        json!({"keys": []}),
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "a", "x": x, "d": x}]}),
        json!({"keys": [{"kty": "RSA", "kid": "a", "n": "AQAB", "e": "AQAB"}]}),
        json!({"keys": [{"kty": "oct", "kid": "a", "k": x}]}),
        json!({"keys": [{"kty": "OKP", "crv": "X25519", "kid": "a", "x": x}]}),
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x}]}),
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "a", "x": "AAAA"}]}),
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "a", "x": x, "alg": "HS256"}]}),
        json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "a", "x": x},
            {"kty": "OKP", "crv": "Ed25519", "kid": "a", "x": x},
        ]}),
    ];
    for text in bad {
        assert!(Jwks::parse(&text.to_string()).is_err(), "accepted {text}");
    }
    // kid is the RFC 7638 thumbprint (RFC 8037 appendix A.3's example key).
    let rfc = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]});
    let parsed = ok(Jwks::parse(&rfc.to_string()));
    assert_eq!(parsed.keys()[0].x, {
        let v = ok(SigningKey::from_pem(
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----",
        ));
        assert_eq!(v.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        v.public_jwk().x
    });
}

#[test]
fn interceptor_rejects_missing_and_malformed_headers() {
    use tonic::service::Interceptor;
    let k = key(1);
    let mut auth = auth_for(&[&k]);
    let err = auth.call(tonic::Request::new(())).err().map(|s| s.code());
    assert_eq!(err, Some(tonic::Code::Unauthenticated));
    let mut r = tonic::Request::new(());
    r.metadata_mut().insert(
        "authorization",
        tonic::metadata::MetadataValue::from_static("Basic abc"),
    );
    assert_eq!(
        auth.call(r).err().map(|s| s.code()),
        Some(tonic::Code::Unauthenticated)
    );
    let token = ok(Issuer::new(k).issue(&req(Role::Supervisor)));
    let mut r = tonic::Request::new(());
    r.metadata_mut()
        .insert("authorization", ok(format!("Bearer {token}").parse()));
    let r = ok(auth.call(r));
    assert_eq!(
        r.extensions().get::<Identity>().map(|i| i.role),
        Some(Role::Supervisor)
    );
}
