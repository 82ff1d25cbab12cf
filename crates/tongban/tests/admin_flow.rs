//! Operators' commands against a real `tongban dev`: `tongban health` (every service, one
//! server, an unreachable one), `definitions list|publish`, `deliveries replay|reconcile` (and
//! the ledger view beside them), `webhooks list|register|delete`.

mod common;

use std::process::{Command, Stdio};

use common::{BIN, Dev, Run, repo_root};

fn start_full_stack() -> anyhow::Result<Dev> {
    let mut dev = Dev::start()?;
    dev.wait_for(1)?;
    dev.wait_for(2)?;
    dev.wait_for(3)?;
    Ok(dev)
}

/// Runs the CLI with `env` as its only TONGBAN_* variables (no `--server` flag added).
fn run_with_env(dev: &Dev, env: &[(&str, String)], args: &[&str]) -> anyhow::Result<Run> {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(repo_root())
        .args(args)
        .env("TONGBAN_CONFIG", dev.dir.path().join("no-such-config.toml"))
        .stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("TONGBAN_") && k != "TONGBAN_CONFIG" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output()?;
    Ok(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn dead_url() -> anyhow::Result<String> {
    // A port nothing listens on: bound, then released.
    let port = tongban_testkit::free_ports(1)?[0];
    Ok(format!("http://127.0.0.1:{port}"))
}

#[test]
fn health_shows_every_service_and_fails_on_one_down() -> anyhow::Result<()> {
    let dev = start_full_stack()?;

    // TONGBAN_SERVER alone: the four services, derived by port offset, all SERVING (once
    // their background loops run: until then health is truthfully NOT_SERVING).
    let run = common::eventually(30, "every service SERVING", || {
        let run = run_with_env(&dev, &[("TONGBAN_SERVER", dev.server())], &["health"])?;
        Ok((run.code == 0).then_some(run))
    })?;
    for svc in ["intake", "approval", "notification", "dispatch"] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(svc))
            .ok_or_else(|| anyhow::anyhow!("no {svc} row: {}", run.stdout))?;
        assert!(line.contains("SERVING"), "{line}");
    }
    let v = run_with_env(
        &dev,
        &[("TONGBAN_SERVER", dev.server())],
        &["health", "--output", "json"],
    )?
    .ok()?
    .json()?;
    let list = v["services"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 4, "{v}");
    assert!(list.iter().all(|s| s["status"] == "SERVING"), "{v}");

    // One service unreachable: its row says so and the command exits 4.
    let dead = dead_url()?;
    let run = run_with_env(
        &dev,
        &[
            ("TONGBAN_SERVER", dev.server()),
            ("TONGBAN_DISPATCH_SERVER", dead.clone()),
        ],
        &["health"],
    )?;
    assert_eq!(run.code, 4, "{run:?}");
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("dispatch"))
        .unwrap_or_default();
    assert!(line.contains("UNREACHABLE"), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(
        run.stderr.starts_with("error: dispatch at") && run.stderr.contains(&dead),
        "{run:?}"
    );

    // --server on the command line: that one server only.
    let approval = format!("http://127.0.0.1:{}", dev.base + 1);
    let run = run_with_env(
        &dev,
        &[("TONGBAN_SERVER", dead.clone())],
        &["health", "--server", &approval],
    )?
    .ok()?;
    assert!(run.stdout.starts_with("SERVING"), "{run:?}");
    // ... and reads no config file (a container's may be another program's, or unreadable).
    let garbage = dev.dir.path().join("garbage.toml");
    std::fs::write(&garbage, "this is [[[ not toml")?;
    let run = run_with_env(
        &dev,
        &[("TONGBAN_CONFIG", garbage.to_string_lossy().to_string())],
        &["health", "--server", &approval],
    )?
    .ok()?;
    assert!(run.stdout.starts_with("SERVING"), "{run:?}");
    let run = run_with_env(&dev, &[], &["health", "--server", &dead])?;
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(run.stderr.contains("unreachable"), "{run:?}");
    Ok(())
}

#[test]
fn admin_lists_and_publishes_definitions() -> anyhow::Result<()> {
    let dev = start_full_stack()?;
    let admin = dev.token(&["--role", "admin"])?;
    let clerk = dev.token(&["--role", "clerk", "--department", "eco_env"])?;

    let run = dev.cli(Some(&admin), &["definitions", "list"])?.ok()?;
    assert!(run.stdout.contains("env.eia.report_form"), "{run:?}");
    assert!(run.stdout.contains("service.enterprise_request"), "{run:?}");

    // Version 2 of a shipped definition, from a file.
    let source = std::fs::read_to_string(
        repo_root().join("deploy/matters/service.enterprise_request.v1.toml"),
    )?;
    anyhow::ensure!(source.contains("\nversion = 1\n"), "the fixture changed");
    let v2 = dev.dir.path().join("service.enterprise_request.v2.toml");
    std::fs::write(
        &v2,
        source.replacen("\nversion = 1\n", "\nversion = 2\n", 1),
    )?;
    let v2 = v2.to_string_lossy().to_string();

    // A clerk may not publish: exit 3, nothing published.
    let run = dev.cli(Some(&clerk), &["definitions", "publish", &v2])?;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.starts_with("error: PERMISSION_DENIED"),
        "{run:?}"
    );

    let run = dev
        .cli(
            Some(&admin),
            &[
                "definitions",
                "publish",
                &v2,
                "--request-id",
                "admin-flow-1",
            ],
        )?
        .ok()?;
    assert!(
        run.stdout
            .starts_with("Published service.enterprise_request version 2"),
        "{run:?}"
    );
    // The same request again is a no-op that succeeds; without the key it is ALREADY_EXISTS.
    dev.cli(
        Some(&admin),
        &[
            "definitions",
            "publish",
            &v2,
            "--request-id",
            "admin-flow-1",
        ],
    )?
    .ok()?;
    let run = dev.cli(Some(&admin), &["definitions", "publish", &v2])?;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.starts_with("error: ALREADY_EXISTS"), "{run:?}");

    let v = dev
        .cli(
            Some(&admin),
            &[
                "definitions",
                "list",
                "--matter",
                "service.enterprise_request",
                "--all-versions",
                "--output",
                "json",
            ],
        )?
        .ok()?
        .json()?;
    let versions: Vec<u64> = v["definitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["version"].as_u64())
        .collect();
    assert_eq!(versions, vec![1, 2], "{v}");

    // A file that is not a definition: the server names the problem, exit 2.
    let bad = dev.dir.path().join("bad.toml");
    std::fs::write(&bad, "code = \"x\"\n")?;
    let run = dev.cli(
        Some(&admin),
        &["definitions", "publish", &bad.to_string_lossy()],
    )?;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.starts_with("error: INVALID_ARGUMENT"), "{run:?}");
    // A value the EIA system's code table lacks (no default): refused, naming the platform
    // file, the mapping field and the value, before any application could be dead-lettered.
    let eia =
        std::fs::read_to_string(repo_root().join("deploy/matters/env.eia.report_form.v1.toml"))?;
    let allowed = r#""technical_renovation", "relocation"]"#;
    anyhow::ensure!(eia.contains(allowed), "the fixture changed");
    let widened = dev.dir.path().join("env.eia.report_form.v2.toml");
    std::fs::write(
        &widened,
        eia.replacen("\nversion = 1\n", "\nversion = 2\n", 1)
            .replace(
                allowed,
                r#""technical_renovation", "relocation", "rebuild"]"#,
            ),
    )?;
    let run = dev.cli(
        Some(&admin),
        &["definitions", "publish", &widened.to_string_lossy()],
    )?;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.starts_with("error: INVALID_ARGUMENT"), "{run:?}");
    for needle in ["eia.toml", "`mapping.xmlx`", "`rebuild`"] {
        assert!(run.stderr.contains(needle), "{needle}: {run:?}");
    }
    // A missing file is a local error.
    let run = dev.cli(
        Some(&admin),
        &["definitions", "publish", "/no/such/file.toml"],
    )?;
    assert_eq!(run.code, 1, "{run:?}");
    Ok(())
}

#[test]
fn admin_replays_and_reconciles_deliveries() -> anyhow::Result<()> {
    let dev = start_full_stack()?;
    let admin = dev.token(&["--role", "admin"])?;
    let applicant = dev.applicant()?;

    // Nothing dead-lettered on a fresh stack; a second replay finds nothing either.
    let v = dev
        .cli(Some(&admin), &["deliveries", "replay", "--output", "json"])?
        .ok()?
        .json()?;
    assert_eq!(v["replayed"].as_u64().unwrap_or(0), 0, "{v}");
    let run = dev
        .cli(Some(&admin), &["deliveries", "replay", "--platform", "eia"])?
        .ok()?;
    assert!(
        run.stdout
            .starts_with("Replayed 0 dead-lettered deliveries"),
        "{run:?}"
    );

    // Reconcile every platform: the ledger and the simulators agree.
    let v = dev
        .cli(
            Some(&admin),
            &["deliveries", "reconcile", "--output", "json"],
        )?
        .ok()?
        .json()?;
    let platforms = v["platforms"].as_array().cloned().unwrap_or_default();
    assert_eq!(platforms.len(), 4, "{v}");
    for p in &platforms {
        assert!(p["missing"].as_array().is_none_or(Vec::is_empty), "{p}");
    }
    let run = dev.cli(Some(&admin), &["deliveries", "reconcile"])?.ok()?;
    assert!(run.stdout.contains("PLATFORM"), "{run:?}");
    // An unknown platform is NOT_FOUND: exit 2.
    let run = dev.cli(
        Some(&admin),
        &["deliveries", "reconcile", "--platform", "no_such_platform"],
    )?;
    assert_eq!(run.code, 2, "{run:?}");
    // An applicant may not replay: exit 3.
    let run = dev.cli(Some(&applicant), &["deliveries", "replay"])?;
    assert_eq!(run.code, 3, "{run:?}");

    // The ledger view is still `tongban deliveries` with its filters.
    let run = dev
        .cli(Some(&admin), &["deliveries", "--status", "dead_lettered"])?
        .ok()?;
    assert!(run.stdout.contains("No deliveries."), "{run:?}");
    // Filters and a subcommand do not mix.
    let run = dev.cli(Some(&admin), &["deliveries", "--platform", "eia", "replay"])?;
    assert_eq!(run.code, 1, "{run:?}");
    Ok(())
}

#[test]
fn webhooks_register_list_delete() -> anyhow::Result<()> {
    let dev = start_full_stack()?;
    let admin = dev.token(&["--role", "admin"])?;
    // `tongban dev` allows http:// to loopback; nothing needs to listen for registration.
    let url = format!("{}/hook", dead_url()?);

    let run = dev.cli(Some(&admin), &["webhooks", "list"])?.ok()?;
    assert!(run.stdout.contains("No webhooks."), "{run:?}");

    let v = dev
        .cli(
            Some(&admin),
            &[
                "webhooks",
                "register",
                &url,
                "--event",
                "application.approved",
                "--output",
                "json",
            ],
        )?
        .ok()?
        .json()?;
    let id = v["webhook"]["webhookId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!id.is_empty(), "{v}");
    assert_eq!(
        v["webhook"]["secret"].as_str().map(str::len),
        Some(64),
        "{v}"
    );

    let run = dev.cli(Some(&admin), &["webhooks", "list"])?.ok()?;
    assert!(run.stdout.contains(&id), "{run:?}");
    let v = dev
        .cli(Some(&admin), &["webhooks", "list", "--output", "json"])?
        .ok()?
        .json()?;
    assert_eq!(v["webhooks"][0]["url"], url.as_str(), "{v}");
    assert_eq!(
        v["webhooks"][0]["eventTypes"][0], "application.approved",
        "{v}"
    );
    // Secrets are shown once, at registration.
    assert!(
        v["webhooks"][0]["secret"]
            .as_str()
            .is_none_or(str::is_empty),
        "{v}"
    );

    // A URL the guard refuses: the server's reason, exit 2.
    let run = dev.cli(
        Some(&admin),
        &["webhooks", "register", "ftp://example.org/x"],
    )?;
    assert_eq!(run.code, 2, "{run:?}");

    let run = dev.cli(Some(&admin), &["webhooks", "delete", &id])?.ok()?;
    assert!(run.stdout.contains(&id), "{run:?}");
    let run = dev.cli(Some(&admin), &["webhooks", "list"])?.ok()?;
    assert!(run.stdout.contains("No webhooks."), "{run:?}");
    // Deleting it again: NOT_FOUND, exit 2.
    let run = dev.cli(Some(&admin), &["webhooks", "delete", &id])?;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.starts_with("error: NOT_FOUND"), "{run:?}");

    // Dead e-mails and webhook calls: none here (the service tests make some and replay them);
    // the commands reach the server, and only admins may use them.
    for channel in ["email", "webhook"] {
        let run = dev
            .cli(
                Some(&admin),
                &["notifications", "failed", "--channel", channel],
            )?
            .ok()?;
        assert!(run.stdout.contains("Nothing dead."), "{run:?}");
    }
    let v = dev
        .cli(
            Some(&admin),
            &[
                "notifications",
                "replay",
                "--channel",
                "webhook",
                "--all",
                "--output",
                "json",
            ],
        )?
        .ok()?
        .json()?;
    assert_eq!(v["replayed"], 0, "{v}");
    let clerk = dev.token(&["--role", "clerk", "--department", "eco_env"])?;
    let run = dev.cli(
        Some(&clerk),
        &["notifications", "failed", "--channel", "email"],
    )?;
    assert_eq!(run.code, 3, "{run:?}");
    // Ids or --all, one of them.
    let run = dev.cli(
        Some(&admin),
        &["notifications", "replay", "--channel", "email"],
    )?;
    assert_ne!(run.code, 0, "{run:?}");
    Ok(())
}
