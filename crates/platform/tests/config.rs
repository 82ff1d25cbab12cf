//! Start-up behaviour: the shipped platform files load, environment overrides apply, and every
//! kind of bad file is refused with the file and the field named.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tongban_platform::{
    AuthConfig, ConfigError, Mode, PlatformConfig, Reconcile, load_dir_in, load_dir_with_env,
};

fn shipped_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/platforms")
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn the_four_shipped_platforms_load() {
    let platforms = load_dir_with_env(shipped_dir(), &no_env).unwrap();
    let summary: Vec<_> = platforms
        .iter()
        .map(|p| (p.id.as_str(), p.endpoint_url.port, p.auth.kind()))
        .collect();
    assert_eq!(
        summary,
        [
            ("eia", 18082, "hmac"),
            ("national_investment", 18081, "bearer"),
            ("pollutant_permit", 18083, "bearer"),
            ("provincial_gov_services", 18084, "hmac"),
        ]
    );
    let by_id: HashMap<_, _> = platforms.iter().map(|p| (p.id.as_str(), p)).collect();
    let pollutant = by_id["pollutant_permit"];
    assert!(pollutant.wants("application.approved"));
    assert!(!pollutant.wants("application.submitted"));
    let provincial = by_id["provincial_gov_services"];
    for e in [
        "application.submitted",
        "application.supplemented",
        "application.withdrawn",
        "application.approved",
        "application.rejected",
    ] {
        assert!(provincial.wants(e), "{e}");
    }
    // Each reconciles the way the platform allows.
    let methods: Vec<_> = platforms
        .iter()
        .map(|p| (p.id.as_str(), p.reconcile.method()))
        .collect();
    assert_eq!(
        methods,
        [
            ("eia", "list"),
            ("national_investment", "status"),
            ("pollutant_permit", "none"),
            ("provincial_gov_services", "list"),
        ]
    );
    assert_eq!(
        by_id["national_investment"].status_url("k").as_deref(),
        Some("http://127.0.0.1:18081/api/tzxm/v1/spsx/_received/k")
    );
    let eia = by_id["eia"];
    assert_eq!(eia.name, "建设项目环评审批系统");
    assert_eq!(eia.endpoint, "http://127.0.0.1:18082/api/eia/projects");
    assert_eq!(
        eia.query_endpoint,
        "http://127.0.0.1:18082/api/eia/projects/_received"
    );
    assert_eq!(eia.timeout, Duration::from_millis(5000));
    assert_eq!(eia.concurrency, 4);
    assert_eq!(eia.retry.max_attempts, 8);
    assert_eq!(eia.circuit.failure_threshold, 5);
    assert!(eia.wants_matter("env.eia.report_form"));
    assert!(!eia.wants_matter("enterprise.request"));
}

#[test]
fn environment_overrides_endpoint_and_secrets() {
    let env = |name: &str| match name {
        "TONGBAN_PLATFORM_EIA_ENDPOINT" => Some("https://eia.example.gov.cn/api/v3/in".to_owned()),
        "TONGBAN_PLATFORM_EIA_SECRET" => Some("prod-secret".to_owned()),
        "TONGBAN_PLATFORM_NATIONAL_INVESTMENT_TOKEN" => Some("prod-token".to_owned()),
        _ => None,
    };
    let platforms = load_dir_with_env(shipped_dir(), &env).unwrap();
    let eia = platforms.iter().find(|p| p.id == "eia").unwrap();
    assert_eq!(eia.endpoint, "https://eia.example.gov.cn/api/v3/in");
    assert_eq!(eia.endpoint_url.port, 443);
    assert_eq!(
        eia.query_endpoint,
        "https://eia.example.gov.cn/api/v3/in/_received"
    );
    assert!(
        matches!(&eia.auth, AuthConfig::Hmac { secret, .. } if secret.expose() == "prod-secret")
    );
    let national = platforms
        .iter()
        .find(|p| p.id == "national_investment")
        .unwrap();
    assert!(
        matches!(&national.auth, AuthConfig::Bearer { token } if token.expose() == "prod-token")
    );
    // Secrets never print.
    assert!(!format!("{national:?}").contains("prod-token"));
}

const BASE: &str = r#"
id = "demo"
name = "演示平台"
name_en = "Demo platform"
endpoint = "http://127.0.0.1:18099/api/demo"
event_types = ["application.submitted", "application.approved"]

[auth]
kind = "bearer"
token = "dev"

[mapping]
xmmc = { from = "/application/form/project_name" }
"jsdw.tyshxydm" = { from = "/application/applicant/credit_code" }
"#;

fn parse(src: &str) -> Result<PlatformConfig, ConfigError> {
    PlatformConfig::parse_with_env(src, "demo.toml", &no_env)
}

/// Asserts a validation error naming `demo.toml` and `field`.
fn assert_invalid(src: &str, field: &str) -> String {
    let err = parse(src).expect_err(field);
    assert_eq!(err.file(), "demo.toml", "{err}");
    assert_eq!(err.field(), Some(field), "{err}");
    let shown = err.to_string();
    assert!(
        shown.contains("demo.toml") && shown.contains(field),
        "{shown}"
    );
    shown
}

/// Asserts a TOML/serde error naming `demo.toml` and mentioning `needle` (the key).
fn assert_parse_error(src: &str, needle: &str) {
    let err = parse(src).expect_err(needle);
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    let shown = err.to_string();
    assert!(shown.starts_with("demo.toml: line "), "{shown}");
    assert!(shown.contains(needle), "{shown}");
}

#[test]
fn base_is_valid_and_defaults_apply() {
    let p = parse(BASE).unwrap();
    assert_eq!(p.timeout, Duration::from_millis(5000));
    assert_eq!(p.concurrency, 4);
    assert_eq!(p.retry.initial_backoff, Duration::from_millis(500));
    assert_eq!(p.circuit.open_for, Duration::from_secs(30));
    assert!(p.matter_codes.is_empty());
}

#[test]
fn bad_mapping_rules_name_the_field() {
    let with_rule = |rule: &str| format!("{BASE}{rule}\n");
    assert_invalid(
        &with_rule(r#"sqsj = { from = "/application/submit_time", format = "date:%Q" }"#),
        "mapping.sqsj.format",
    );
    let msg = assert_invalid(
        &with_rule(r#"zje = { from = "/application/form/x", format = "money" }"#),
        "mapping.zje.format",
    );
    assert!(msg.contains("unknown format `money`"), "{msg}");
    assert_invalid(
        &with_rule(r#"a = { from = "application/form/x" }"#),
        "mapping.a.from",
    );
    assert_invalid(
        &with_rule(r#"a = { from = "/application/form/x~2" }"#),
        "mapping.a.from",
    );
    assert_invalid(
        &with_rule(r#"a = { from = "/applicaton/form/x" }"#),
        "mapping.a.from",
    );
    assert_invalid(
        &with_rule(r#""xmmc.sub" = { const = 1 }"#),
        "mapping.\"xmmc.sub\"",
    );
    assert_invalid(
        &with_rule(r#"jsdw = { const = 1 }"#),
        "mapping.\"jsdw.tyshxydm\"",
    );
    assert_invalid(&with_rule(r#"a = { optional = true }"#), "mapping.a");
    assert_invalid(
        &with_rule(r#"a = { from = "/event/id", const = "x" }"#),
        "mapping.a",
    );
    assert_invalid(
        &with_rule(r#"a = { const = "x", format = "upper" }"#),
        "mapping.a.format",
    );
    assert_invalid(
        &with_rule(r#"a = { from = "/event/id", default = "x" }"#),
        "mapping.a.default",
    );
    assert_invalid(
        &with_rule(r#"a = { from = "/event/id", map = {} }"#),
        "mapping.a.map",
    );
    assert_invalid(
        &with_rule(r#"a = { from = "/event/id", when_event = "application.rejected" }"#),
        "mapping.a.when_event[0]",
    );
    let msg = assert_invalid(
        &with_rule(
            r#"a = { from = "/event/id", when_event = ["application.submitted", "application.aproved"] }"#,
        ),
        "mapping.a.when_event[1]",
    );
    assert!(
        msg.contains("unknown event type `application.aproved`"),
        "{msg}"
    );
    let msg = assert_invalid(
        &with_rule(r#"pzwh = { from = "/approval/decision_number" }"#),
        "mapping.pzwh",
    );
    assert!(msg.contains("when_event"), "{msg}");
    assert_invalid(
        &with_rule(
            r#"a = { from = "/event/id", each = { b = { from = "/x" } } , format = "upper" }"#,
        ),
        "mapping.a.each",
    );
    assert_invalid(
        &with_rule(r#"a = { from = "/application/materials", each = { b = { from = "x" } } }"#),
        "mapping.a.each.b.from",
    );
    // Optional reads of the approval section are fine on any event.
    parse(&with_rule(
        r#"pzwh = { from = "/approval/decision_number", optional = true }"#,
    ))
    .unwrap();
}

#[test]
fn duplicate_and_unknown_keys_are_parse_errors_naming_the_key() {
    assert_parse_error(&format!("{BASE}xmmc = {{ const = \"again\" }}\n"), "xmmc");
    assert_parse_error(&format!("{BASE}a = {{ fromm = \"/event/id\" }}\n"), "fromm");
    assert_parse_error(&BASE.replace("[auth]", "timeout = 5\n[auth]"), "timeout");
    assert_parse_error(
        &BASE.replace("token = \"dev\"", "token = \"dev\"\nsecret = \"x\""),
        "secret",
    );
    assert_parse_error(
        &BASE.replace("kind = \"bearer\"", "kind = \"basic\""),
        "basic",
    );
    assert_parse_error(
        &BASE.replace("[auth]", "[retry]\nmax_retries = 3\n[auth]"),
        "max_retries",
    );
    assert_parse_error(
        &BASE.replace("name_en = \"Demo platform\"\n", ""),
        "name_en",
    );
}

#[test]
fn bad_top_level_values_name_the_field() {
    assert_invalid(&BASE.replace("id = \"demo\"", "id = \"Demo-1\""), "id");
    assert_invalid(
        &BASE.replace(
            "http://127.0.0.1:18099/api/demo",
            "127.0.0.1:18099/api/demo",
        ),
        "endpoint",
    );
    assert_invalid(
        &BASE.replace(
            "http://127.0.0.1:18099/api/demo",
            "http://127.0.0.1:99999/api",
        ),
        "endpoint",
    );
    let msg = assert_invalid(
        &BASE.replace("\"application.approved\"]", "\"application.aproved\"]"),
        "event_types[1]",
    );
    assert!(msg.contains("application.aproved"), "{msg}");
    assert_invalid(
        &BASE.replace("\"application.approved\"]", "\"application.submitted\"]"),
        "event_types[1]",
    );
    assert_invalid(
        &BASE.replace("[auth]", "concurrency = 0\n[auth]"),
        "concurrency",
    );
    assert_invalid(
        &BASE.replace("[auth]", "timeout_ms = 0\n[auth]"),
        "timeout_ms",
    );
    assert_invalid(
        &BASE.replace("[auth]", "[retry]\nmultiplier = 0.5\n[auth]"),
        "retry.multiplier",
    );
    assert_invalid(
        &BASE.replace(
            "[auth]",
            "[retry]\ninitial_backoff_ms = 10\nmax_backoff_ms = 5\n[auth]",
        ),
        "retry.max_backoff_ms",
    );
    assert_invalid(
        &BASE.replace("[auth]", "[circuit]\nfailure_threshold = 0\n[auth]"),
        "circuit.failure_threshold",
    );
    let msg = assert_invalid(&BASE.replace("token = \"dev\"", ""), "auth.token");
    assert!(msg.contains("TONGBAN_PLATFORM_DEMO_TOKEN"), "{msg}");
    let msg = assert_invalid(
        &BASE.replace(
            "kind = \"bearer\"\ntoken = \"dev\"",
            "kind = \"hmac\"\nsecret_env = \"DEMO_HMAC_KEY\"",
        ),
        "auth.secret",
    );
    assert!(msg.contains("DEMO_HMAC_KEY"), "{msg}");
    assert_invalid(
        &BASE.replace(
            "kind = \"bearer\"\ntoken = \"dev\"",
            "kind = \"hmac\"\nsecret = \"s\"\nheader = \"X Sig\"",
        ),
        "auth.header",
    );
    assert_invalid(
        &BASE.replace("[auth]", "matter_codes = [\"env.*.x\"]\n[auth]"),
        "matter_codes[0]",
    );
}

#[test]
fn bad_environment_override_names_the_variable() {
    let env =
        |name: &str| (name == "TONGBAN_PLATFORM_DEMO_ENDPOINT").then(|| "not a url".to_owned());
    let err = PlatformConfig::parse_with_env(BASE, "demo.toml", &env).unwrap_err();
    assert_eq!(
        err.field(),
        Some("endpoint (from TONGBAN_PLATFORM_DEMO_ENDPOINT)")
    );
}

#[test]
fn load_dir_checks_file_names_and_ignores_other_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "# not a platform").unwrap();
    std::fs::write(dir.path().join("demo.toml"), BASE).unwrap();
    assert_eq!(load_dir_with_env(dir.path(), &no_env).unwrap().len(), 1);

    std::fs::write(dir.path().join("other.toml"), BASE).unwrap();
    let err = load_dir_with_env(dir.path(), &no_env).unwrap_err();
    assert!(err.file().ends_with("other.toml"), "{err}");
    assert_eq!(err.field(), Some("id"));
    std::fs::remove_file(dir.path().join("other.toml")).unwrap();

    std::fs::write(dir.path().join("broken.toml"), "id = ").unwrap();
    let err = load_dir_with_env(dir.path(), &no_env).unwrap_err();
    assert!(err.file().ends_with("broken.toml"), "{err}");

    let err = load_dir_with_env(dir.path().join("missing"), &no_env).unwrap_err();
    assert!(matches!(err, ConfigError::ReadDir { .. }));
}

#[test]
fn with_endpoint_rebases_the_query_endpoint() {
    let p = parse(BASE).unwrap();
    let moved = p.with_endpoint("http://127.0.0.1:40001/api/demo").unwrap();
    assert_eq!(
        moved.query_endpoint,
        "http://127.0.0.1:40001/api/demo/_received"
    );
    assert_eq!(moved.endpoint_url.port, 40001);
    assert_eq!(moved.mapping, p.mapping);
}

/// The four shipped platforms with their secrets from the environment, as compose gives them.
fn production_env(name: &str) -> Option<String> {
    match name {
        "TONGBAN_PLATFORM_EIA_SECRET" => Some("prod-eia".to_owned()),
        "TONGBAN_PLATFORM_NATIONAL_INVESTMENT_TOKEN" => Some("prod-national".to_owned()),
        "TONGBAN_PLATFORM_POLLUTANT_PERMIT_TOKEN" => Some("prod-pollutant".to_owned()),
        "TONGBAN_PLATFORM_PROVINCIAL_GOV_SERVICES_SECRET" => Some("prod-provincial".to_owned()),
        _ => None,
    }
}

#[test]
fn production_takes_every_secret_from_the_environment() {
    let platforms = load_dir_in(shipped_dir(), &production_env, Mode::Production).unwrap();
    let secrets: Vec<_> = platforms
        .iter()
        .map(|p| {
            let secret = match &p.auth {
                AuthConfig::Bearer { token } => token.expose().to_owned(),
                AuthConfig::Hmac { secret, .. } => secret.expose().to_owned(),
            };
            (p.id.as_str(), p.secret_env.as_str(), secret)
        })
        .collect();
    assert_eq!(
        secrets,
        [
            ("eia", "TONGBAN_PLATFORM_EIA_SECRET", "prod-eia".to_owned()),
            (
                "national_investment",
                "TONGBAN_PLATFORM_NATIONAL_INVESTMENT_TOKEN",
                "prod-national".to_owned()
            ),
            (
                "pollutant_permit",
                "TONGBAN_PLATFORM_POLLUTANT_PERMIT_TOKEN",
                "prod-pollutant".to_owned()
            ),
            (
                "provincial_gov_services",
                "TONGBAN_PLATFORM_PROVINCIAL_GOV_SERVICES_SECRET",
                "prod-provincial".to_owned()
            ),
        ]
    );
    // Development (the default of load_dir) still runs on the inline values alone.
    assert_eq!(
        load_dir_in(shipped_dir(), &no_env, Mode::Development)
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn production_refuses_an_inline_development_secret_naming_platform_and_variable() {
    // Each shipped platform in turn without its variable.
    for (missing, id, field) in [
        ("TONGBAN_PLATFORM_EIA_SECRET", "eia", "auth.secret"),
        (
            "TONGBAN_PLATFORM_NATIONAL_INVESTMENT_TOKEN",
            "national_investment",
            "auth.token",
        ),
        (
            "TONGBAN_PLATFORM_POLLUTANT_PERMIT_TOKEN",
            "pollutant_permit",
            "auth.token",
        ),
        (
            "TONGBAN_PLATFORM_PROVINCIAL_GOV_SERVICES_SECRET",
            "provincial_gov_services",
            "auth.secret",
        ),
    ] {
        let env = |name: &str| (name != missing).then(|| production_env(name)).flatten();
        let err = load_dir_in(shipped_dir(), &env, Mode::Production).unwrap_err();
        match &err {
            ConfigError::DevelopmentSecret { platform, var, .. } => {
                assert_eq!((platform.as_str(), var.as_str()), (id, missing))
            }
            other => panic!("{missing}: expected DevelopmentSecret, got {other}"),
        }
        assert_eq!(err.field(), Some(field));
        assert!(err.file().ends_with(&format!("{id}.toml")), "{err}");
        let shown = err.to_string();
        assert!(shown.contains(id) && shown.contains(missing), "{shown}");
    }
    // An empty variable is no variable.
    let env = |name: &str| match name {
        "TONGBAN_PLATFORM_DEMO_TOKEN" => Some("  ".to_owned()),
        _ => None,
    };
    let err = PlatformConfig::parse_in(BASE, "demo.toml", &env, Mode::Production).unwrap_err();
    assert!(
        matches!(err, ConfigError::DevelopmentSecret { .. }),
        "{err}"
    );
}

#[test]
fn production_refuses_the_development_value_set_through_the_environment() {
    let env = |name: &str| (name == "TONGBAN_PLATFORM_DEMO_TOKEN").then(|| " dev ".to_owned());
    let err = PlatformConfig::parse_in(BASE, "demo.toml", &env, Mode::Production).unwrap_err();
    assert!(
        matches!(&err, ConfigError::DevelopmentSecret { var, .. } if var == "TONGBAN_PLATFORM_DEMO_TOKEN"),
        "{err}"
    );
    // In development the same is simply the override.
    assert!(PlatformConfig::parse_in(BASE, "demo.toml", &env, Mode::Development).is_ok());
    // A different value is taken, and the variable named by `token_env` is the one read.
    let src = BASE.replace(
        "token = \"dev\"",
        "token = \"dev\"\ntoken_env = \"DEMO_TOKEN\"",
    );
    let env = |name: &str| (name == "DEMO_TOKEN").then(|| "real".to_owned());
    let p = PlatformConfig::parse_in(&src, "demo.toml", &env, Mode::Production).unwrap();
    assert_eq!(p.secret_env, "DEMO_TOKEN");
    assert!(matches!(&p.auth, AuthConfig::Bearer { token } if token.expose() == "real"));
}

#[test]
fn production_without_any_secret_names_only_the_variable() {
    let src = BASE.replace("token = \"dev\"", "");
    let err = PlatformConfig::parse_in(&src, "demo.toml", &no_env, Mode::Production).unwrap_err();
    assert_eq!(err.field(), Some("auth.token"));
    let shown = err.to_string();
    assert!(shown.contains("TONGBAN_PLATFORM_DEMO_TOKEN"), "{shown}");
    assert!(!shown.contains("for development"), "{shown}");
}

#[test]
fn a_broken_file_is_reported_before_a_missing_secret() {
    let src = BASE.replace("[auth]", "concurrency = 0\n[auth]");
    let err = PlatformConfig::parse_in(&src, "demo.toml", &no_env, Mode::Production).unwrap_err();
    assert_eq!(err.field(), Some("concurrency"), "{err}");
}

fn with_reconcile(table: &str) -> String {
    format!("{BASE}\n[reconcile]\n{table}\n")
}

#[test]
fn reconcile_methods_default_to_list_and_derive_their_urls() {
    let p = parse(BASE).unwrap();
    assert_eq!(p.reconcile, Reconcile::List);
    assert_eq!(p.status_url("k"), None);

    let p = parse(&with_reconcile(r#"endpoint = "http://10.0.0.1/list""#)).unwrap();
    assert_eq!(
        (p.reconcile.method(), p.query_endpoint.as_str()),
        ("list", "http://10.0.0.1/list")
    );

    let p = parse(&with_reconcile(r#"method = "status""#)).unwrap();
    assert_eq!(
        p.status_url("national_investment:0195 a/b").as_deref(),
        Some("http://127.0.0.1:18099/api/demo/_received/national_investment%3A0195%20a%2Fb")
    );
    // Tests run simulators on free ports: the default template follows the endpoint.
    let moved = p.with_endpoint("http://127.0.0.1:40001/api/demo").unwrap();
    assert_eq!(
        moved.status_url("k").as_deref(),
        Some("http://127.0.0.1:40001/api/demo/_received/k")
    );

    let p = parse(&with_reconcile(
        "method = \"status\"\nendpoint = \"https://gov.example.cn/api/cases/status?sbbh={key}\"",
    ))
    .unwrap();
    assert_eq!(
        p.status_url("a:b").as_deref(),
        Some("https://gov.example.cn/api/cases/status?sbbh=a%3Ab")
    );

    let p = parse(&with_reconcile(r#"method = "none""#)).unwrap();
    assert_eq!(p.reconcile, Reconcile::None);
    assert_eq!(p.status_url("k"), None);
}

#[test]
fn reconcile_query_endpoint_override_moves_only_the_listing() {
    let var = "TONGBAN_PLATFORM_DEMO_QUERY_ENDPOINT";
    let env = |url: &'static str| {
        move |name: &str| match name {
            "TONGBAN_PLATFORM_DEMO_ENDPOINT" => Some("https://h.cn/in".to_owned()),
            n if n == var => Some(url.to_owned()),
            _ => None,
        }
    };
    let listing = with_reconcile(r#"endpoint = "http://10.0.0.1/list""#);
    let p =
        PlatformConfig::parse_with_env(&listing, "demo.toml", &env("https://h.cn/list")).unwrap();
    assert_eq!(p.query_endpoint, "https://h.cn/list");
    let err = PlatformConfig::parse_with_env(BASE, "demo.toml", &env("h.cn/list")).unwrap_err();
    assert_eq!(
        err.field(),
        Some(format!("query_endpoint (from {var})").as_str())
    );

    // Launchers set the listing override for every platform: `status` and `none` platforms
    // still load, and a default status template follows the endpoint override.
    let status = with_reconcile(r#"method = "status""#);
    let p = PlatformConfig::parse_with_env(&status, "demo.toml", &env("https://h.cn/in/_received"))
        .unwrap();
    assert_eq!(
        p.status_url("k").as_deref(),
        Some("https://h.cn/in/_received/k")
    );
    let none = with_reconcile(r#"method = "none""#);
    let p = PlatformConfig::parse_with_env(&none, "demo.toml", &env("https://h.cn/in/_received"))
        .unwrap();
    assert_eq!(p.reconcile, Reconcile::None);
}

#[test]
fn bad_reconcile_tables_name_the_field() {
    let shown = assert_invalid(&with_reconcile(r#"method = "poll""#), "reconcile.method");
    assert!(
        shown.contains("`poll`") && shown.contains("status"),
        "{shown}"
    );
    let shown = assert_invalid(
        &with_reconcile("method = \"status\"\nendpoint = \"http://h.cn/cases/status\""),
        "reconcile.endpoint",
    );
    assert!(shown.contains("{key}"), "{shown}");
    for bad in [
        "http://{key}.h.cn/status",
        "http://h.cn/status/{key}/{id}",
        "ftp://h.cn/{key}",
        "http://h.cn/a b/{key}",
        "http://h.cn/status?{key}#frag",
    ] {
        assert_invalid(
            &with_reconcile(&format!("method = \"status\"\nendpoint = \"{bad}\"")),
            "reconcile.endpoint",
        );
    }
    let shown = assert_invalid(
        &with_reconcile("method = \"none\"\nendpoint = \"http://h.cn/x\""),
        "reconcile.endpoint",
    );
    assert!(shown.contains("none"), "{shown}");
    // `query_endpoint` is the listing of `list`: with another method it is a mistake.
    for method in ["status", "none"] {
        assert_invalid(
            &format!(
                "query_endpoint = \"http://h.cn/l\"\n{}",
                with_reconcile(&format!("method = \"{method}\""))
            ),
            "query_endpoint",
        );
    }
    assert_invalid(
        &format!(
            "query_endpoint = \"http://h.cn/l\"\n{}",
            with_reconcile("endpoint = \"http://h.cn/m\"")
        ),
        "reconcile.endpoint",
    );
    assert_invalid(
        &with_reconcile("endpoint = \"http://h.cn/l?x=1\""),
        "reconcile.endpoint",
    );
    assert_parse_error(&with_reconcile("methd = \"list\""), "methd");
}
