//! Applicant commands end to end against a `tongban dev` this test starts: submit, status,
//! withdraw, and the exit codes scripts rely on (2 rejected, 3 auth, 4 unreachable).

mod common;

use common::{Dev, example_path, run_cli};

#[test]
fn submit_status_withdraw() -> anyhow::Result<()> {
    let dev = Dev::start()?;
    let token = dev.applicant()?;
    let example = example_path();
    let example = example.to_string_lossy();

    let run = dev
        .cli(
            Some(&token),
            &["submit", "--file", &example, "--output", "json"],
        )?
        .ok()?;
    let v = run.json()?;
    let id = v["application"]["applicationId"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no id in {v}"))?
        .to_string();
    assert!(!id.is_empty());
    assert_eq!(v["application"]["status"], "APPLICATION_STATUS_SUBMITTED");
    assert_eq!(v["created"], true);

    // Table output names the id and the status.
    let run = dev.cli(Some(&token), &["status", &id])?.ok()?;
    assert!(run.stdout.contains(&id), "{}", run.stdout);
    // Approval may already have opened the first task: either status is right here.
    assert!(
        run.stdout.contains("SUBMITTED") || run.stdout.contains("IN_REVIEW"),
        "{}",
        run.stdout
    );
    let v = dev
        .cli(Some(&token), &["status", &id, "--output", "json"])?
        .ok()?
        .json()?;
    assert_eq!(v["applicationId"], id.as_str());

    // A second application, withdrawn.
    let v = dev
        .cli(
            Some(&token),
            &[
                "submit",
                "--file",
                &example,
                "--request-id",
                "cli-test-2",
                "--output",
                "json",
            ],
        )?
        .ok()?
        .json()?;
    let second = v["application"]["applicationId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_ne!(second, id);
    let v = dev
        .cli(
            Some(&token),
            &[
                "withdraw",
                &second,
                "--reason",
                "项目取消",
                "--output",
                "json",
            ],
        )?
        .ok()?
        .json()?;
    assert_eq!(v["application"]["status"], "APPLICATION_STATUS_WITHDRAWN");
    // The stream ends at once for a final application.
    let run = dev
        .cli(Some(&token), &["watch", &second, "--until-final"])?
        .ok()?;
    assert!(run.stdout.contains("WITHDRAWN"), "{}", run.stdout);

    // Withdrawing again is a rejected request: exit 2, one line.
    let run = dev.cli(Some(&token), &["withdraw", &second])?;
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stderr.trim().lines().count(), 1, "{run:?}");

    let run = dev.cli(Some(&token), &["matters"])?.ok()?;
    assert!(run.stdout.contains("env.eia.report_form"), "{}", run.stdout);
    Ok(())
}

#[test]
fn exit_codes() -> anyhow::Result<()> {
    let dev = Dev::start()?;
    let token = dev.applicant()?;

    // A broken check character: INVALID_ARGUMENT naming the field, exit 2.
    let text = std::fs::read_to_string(example_path())?
        .replace("91350100M000100Y43", "91350100M000100Y44")
        .replace("example-2026-000123", "cli-test-bad-credit");
    let bad = dev.dir.path().join("bad.json");
    std::fs::write(&bad, text)?;
    let run = dev.cli(Some(&token), &["submit", "--file", &bad.to_string_lossy()])?;
    assert_eq!(run.code, 2, "{run:?}");
    let line = run.stderr.trim();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.starts_with("error: INVALID_ARGUMENT: "), "{line}");
    assert!(line.contains("applicant.credit_code"), "{line}");

    // No token anywhere: exit 3.
    let example = example_path();
    let run = dev.cli(None, &["submit", "--file", &example.to_string_lossy()])?;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.starts_with("error: UNAUTHENTICATED"), "{run:?}");

    // A garbage token: exit 3 too.
    let run = dev.cli(Some("not-a-jwt"), &["status", "x"])?;
    assert_eq!(run.code, 3, "{run:?}");

    // Unknown application: NOT_FOUND, exit 2.
    let run = dev.cli(
        Some(&token),
        &["status", "01900000-0000-7000-8000-000000000000"],
    )?;
    assert_eq!(run.code, 2, "{run:?}");

    // A local error (missing file): exit 1.
    let run = dev.cli(Some(&token), &["submit", "--file", "/no/such/file.json"])?;
    assert_eq!(run.code, 1, "{run:?}");

    // Server down: exit 4.
    let base = common::free_port_block()?;
    let run = run_cli(
        &format!("http://127.0.0.1:{base}"),
        dev.dir.path(),
        Some(&token),
        &["status", "x"],
    )?;
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stderr.starts_with("error: UNAVAILABLE"), "{run:?}");
    Ok(())
}
