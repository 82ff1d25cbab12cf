//! `tongban audit verify` as a command against a real approval database (PostgreSQL and
//! SQLite): clean → exit 0; an edited entry, a truncated chain, a deleted chain or a forged
//! checkpoint → each reported, exit 5; a missing key file → exit 1.

use std::process::Command;

use sea_orm::ConnectionTrait;
use sea_orm_migration::MigratorTrait;
use tongban_audit::{Act, Actor, anchor, application_chain};
use tongban_testkit::{Backend, TestDb, on_both};

const BIN: &str = env!("CARGO_BIN_EXE_tongban");

fn verify(db: &str, dir: &std::path::Path) -> anyhow::Result<(i32, String)> {
    let out = Command::new(BIN)
        .args(["audit", "verify", "--database", db, "--checkpoints"])
        .arg(dir.join("cp.jsonl"))
        .arg("--public-key")
        .arg(dir.join("approval.key.pub"))
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    ))
}

async fn verify_reports_each_kind_of_tampering(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::new(backend, "cli_audit").await?;
    let db = tongban_storage::connect(&t.url).await?;
    tongban_approval::migration::Migrator::up(&db, None).await?;
    let dir = tempfile::tempdir()?;
    let clerk = Actor {
        subject: "alice".into(),
        role: "clerk".into(),
        department: "eco_env".into(),
        on_behalf_of: String::new(),
    };
    for app in ["a", "b", "c"] {
        for i in 0..3 {
            tongban_audit::append_alone(
                &db,
                &application_chain(app),
                i,
                Act::done(clerk.clone(), "approve", "t").reason("ok"),
            )
            .await?;
        }
    }
    let key = anchor::load_or_create_signing_key(&dir.path().join("approval.key"))?;
    anchor::checkpoint(&db, "approval", &key, &dir.path().join("cp.jsonl"), 10).await?;

    let (code, out) = verify(&t.url, dir.path())?;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("3 chains, 9 entries") && out.contains("verified ✓"),
        "{out}"
    );

    for sql in [
        "UPDATE audit_log SET reason = 'no' WHERE chain = 'application/a' AND seq = 2",
        "DELETE FROM audit_log WHERE chain = 'application/b' AND seq = 3",
        "DELETE FROM audit_log WHERE chain = 'application/c'",
    ] {
        db.execute_unprepared(sql).await?;
    }
    let mut text = std::fs::read_to_string(dir.path().join("cp.jsonl"))?;
    text.push_str(
        &text
            .clone()
            .replace("\"signature\":\"", "\"signature\":\"00"),
    );
    std::fs::write(dir.path().join("cp.jsonl"), text)?;
    let (code, out) = verify(&t.url, dir.path())?;
    assert_eq!(code, 5, "{out}");
    for expected in [
        "FORGED     checkpoint on line 2",
        "EDITED     application/a: entry 2",
        "TRUNCATED  application/b: 2 entries, checkpoint recorded 3",
        "DELETED    application/c",
        "4 findings",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }

    std::fs::remove_file(dir.path().join("approval.key.pub"))?;
    let (code, out) = verify(&t.url, dir.path())?;
    assert_eq!(code, 1, "{out}");
    Ok(())
}

on_both!(verify_reports_each_kind_of_tampering);
