//! Staff commands and the demo end to end. These need approval (base port + 1) and dispatch
//! (base port + 3) running inside `tongban dev`; until `dev.rs` wires them in, these tests fail
//! at "waiting for approval" with the dev log attached.

mod common;

use common::{Dev, eventually, example_path};

fn start_full_stack() -> anyhow::Result<Dev> {
    let mut dev = Dev::start()?;
    dev.wait_for(1)?;
    dev.wait_for(3)?;
    Ok(dev)
}

#[test]
fn clerk_claims_approves_and_sees_the_audit_trail() -> anyhow::Result<()> {
    let dev = start_full_stack()?;
    let applicant = dev.applicant()?;
    let admin = dev.token(&["--role", "admin"])?;
    let example = example_path();
    let v = dev
        .cli(
            Some(&applicant),
            &[
                "submit",
                "--file",
                &example.to_string_lossy(),
                "--output",
                "json",
            ],
        )?
        .ok()?
        .json()?;
    let id = v["application"]["applicationId"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // The acceptance task appears once approval consumed application.submitted.
    let task = eventually(30, "the first task", || {
        let v = dev
            .cli(
                Some(&admin),
                &["tasks", "--application", &id, "--output", "json"],
            )?
            .ok()?
            .json()?;
        Ok(v["tasks"].as_array().and_then(|t| t.first()).cloned())
    })?;
    let task_id = task["taskId"].as_str().unwrap_or_default().to_string();
    let department = task["department"].as_str().unwrap_or_default().to_string();
    let clerk = dev.token(&["--role", "clerk", "--department", &department])?;

    // The clerk sees it in the default list (own department, open + claimed).
    let run = dev.cli(Some(&clerk), &["tasks"])?.ok()?;
    assert!(run.stdout.contains(&task_id), "{}", run.stdout);

    let v = dev
        .cli(Some(&clerk), &["claim", &task_id, "--output", "json"])?
        .ok()?
        .json()?;
    assert_eq!(v["status"], "TASK_STATUS_CLAIMED");
    // A stale version is refused: exit 2.
    let run = dev.cli(Some(&clerk), &["approve", &task_id, "--version", "1"])?;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.starts_with("error: ABORTED"), "{run:?}");

    let v = dev
        .cli(
            Some(&clerk),
            &[
                "approve",
                &task_id,
                "--comment",
                "材料齐全，同意受理",
                "--output",
                "json",
            ],
        )?
        .ok()?
        .json()?;
    assert_eq!(v["status"], "TASK_STATUS_APPROVED");

    // An applicant may not act as staff: exit 3.
    let run = dev.cli(Some(&applicant), &["claim", &task_id, "--version", "1"])?;
    assert_eq!(run.code, 3, "{run:?}");

    let run = dev.cli(Some(&admin), &["show", &id])?.ok()?;
    assert!(run.stdout.contains(&department), "{}", run.stdout);
    let v = dev
        .cli(Some(&admin), &["show", &id, "--output", "json"])?
        .ok()?
        .json()?;
    assert!(v["workflow"]["stages"].is_array(), "{v}");

    // The EIA system's receipt for the submission: in dispatch's ledger, in the application's
    // per-platform progress, and in `tongban show`.
    let receipt = eventually(30, "the EIA system's receipt", || {
        let v = dev
            .cli(Some(&admin), &["show", &id, "--output", "json"])?
            .ok()?
            .json()?;
        let of_eia = |list: &serde_json::Value| {
            list.as_array()
                .into_iter()
                .flatten()
                .find(|d| d["platformId"] == "eia")
                .and_then(|d| d["receipt"].as_str())
                .filter(|r| !r.is_empty())
                .map(str::to_string)
        };
        let ledger = of_eia(&v["deliveries"]);
        let application = of_eia(&v["application"]["deliveries"]["perPlatform"]);
        Ok(ledger.filter(|l| application.as_ref() == Some(l)))
    })?;
    assert!(receipt.starts_with("EIA-"), "{receipt}");
    let run = dev.cli(Some(&admin), &["show", &id])?.ok()?;
    assert!(run.stdout.contains(&receipt), "{}", run.stdout);
    assert!(run.stdout.contains("RECEIPT"), "{}", run.stdout);

    let run = dev.cli(Some(&admin), &["audit", "show", &id])?.ok()?;
    assert!(run.stdout.contains("chain verified ✓"), "{}", run.stdout);
    let v = dev
        .cli(Some(&admin), &["audit", "show", &id, "--output", "json"])?
        .ok()?
        .json()?;
    assert_eq!(v["verified"], true);

    // The supervision ledger: the review was decided in time, so nothing is on it; the
    // applicant may not read it; a malformed item id is refused naming the field.
    let run = dev.cli(Some(&admin), &["ledger"])?.ok()?;
    assert!(run.stdout.contains("Nothing on the ledger"), "{run:?}");
    let run = dev.cli(Some(&applicant), &["ledger"])?;
    assert_eq!(run.code, 3, "{run:?}");
    let run = dev.cli(Some(&admin), &["ledger", "--item", "nonsense"])?;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("item_id"), "{run:?}");

    // Within a checkpoint interval (1 s here) approval's signed checkpoint covers the
    // application's chain, and `audit verify` finds approval's database intact.
    let audit = dev.data().join("audit");
    let chain = format!("application/{id}");
    eventually(20, "approval's audit checkpoint", || {
        Ok(
            std::fs::read_to_string(audit.join("approval.checkpoints.jsonl"))
                .ok()
                .filter(|t| t.contains(&chain)),
        )
    })?;
    let db = format!(
        "sqlite://{}?mode=ro",
        dev.data().join("approval.db").display()
    );
    let run = dev.cli(
        None,
        &[
            "audit",
            "verify",
            "--database",
            &db,
            "--checkpoints",
            &audit
                .join("approval.checkpoints.jsonl")
                .display()
                .to_string(),
            "--public-key",
            &audit.join("approval.key.pub").display().to_string(),
        ],
    )?;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("verified ✓"), "{run:?}");

    let run = dev.cli(Some(&admin), &["deliveries", "--application", &id])?;
    assert_eq!(run.code, 0, "{run:?}");
    Ok(())
}

#[test]
fn demo_runs_against_a_running_stack() -> anyhow::Result<()> {
    let dev = start_full_stack()?;
    let run = dev.cli(
        None,
        &[
            "demo",
            "--data-dir",
            &dev.data().to_string_lossy(),
            "--timeout",
            "90",
        ],
    )?;
    assert_eq!(run.code, 0, "{run:?}\n{}", dev.log());
    assert!(
        run.stdout.contains("approved and delivered"),
        "{}",
        run.stdout
    );

    // 好差评 on the approved application: a poor rating goes on the ledger until the rated
    // department records its rectification.
    let id = run
        .stdout
        .split("intake accepted application ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_default()
        .to_string();
    assert!(!id.is_empty(), "{}", run.stdout);
    let applicant = dev.applicant()?;
    let rating = dev
        .cli(
            Some(&applicant),
            &[
                "evaluate", &id, "--score", "2", "--reason", "slow", "--output", "json",
            ],
        )?
        .ok()?
        .json()?;
    assert_eq!(rating["poor"], true, "{rating}");
    let department = rating["department"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let admin = dev.token(&["--role", "admin"])?;
    let run = dev
        .cli(Some(&admin), &["ledger", "--open", "--kind", "rating"])?
        .ok()?;
    assert!(run.stdout.contains(&format!("rating:{id}")), "{run:?}");
    let supervisor = dev.token(&["--role", "supervisor", "--department", &department])?;
    let run = dev
        .cli(
            Some(&supervisor),
            &["rectify", &id, "--text", "已约谈经办人"],
        )?
        .ok()?;
    assert!(run.stdout.contains("已约谈经办人"), "{run:?}");
    let closed = dev
        .cli(
            Some(&admin),
            &["ledger", "--closed", "--kind", "rating", "--output", "json"],
        )?
        .ok()?
        .json()?;
    assert_eq!(
        closed["items"][0]["itemId"],
        format!("rating:{id}"),
        "{closed}"
    );
    Ok(())
}

#[test]
fn demo_spawns_its_own_stack() -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let run = common::run_cli(
        "http://127.0.0.1:1",
        scratch.path(),
        None,
        &["demo", "--spawn", "--timeout", "90"],
    )?;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("approved and delivered"),
        "{}",
        run.stdout
    );
    Ok(())
}
