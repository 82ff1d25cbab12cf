//! The audit log on PostgreSQL and SQLite: appends chain, verify finds edits, truncation,
//! deleted chains and forged checkpoints (rows edited with raw SQL, as an owner of the
//! database could), and concurrent appends to one chain stay gap-free.

use std::path::Path;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use tongban_audit::{
    Act, Actor,
    anchor::{self, Checkpoint},
    application_chain,
    verify::{Finding, Report},
};
use tongban_testkit::{Backend, TestDb, on_both};

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(tongban_audit::migration::AuditLog)]
    }
}

async fn db(backend: Backend, prefix: &str) -> anyhow::Result<(TestDb, DatabaseConnection)> {
    let t = TestDb::new(backend, prefix).await?;
    let db = tongban_storage::connect(&t.url).await?;
    Migrator::up(&db, None).await?;
    Ok((t, db))
}

fn clerk() -> Actor {
    Actor {
        subject: "alice".into(),
        role: "clerk".into(),
        department: "eco_env".into(),
        on_behalf_of: String::new(),
    }
}

/// Three chains (a: 3 entries, b: 2, c: 1), checkpointed, with the key and checkpoint file.
async fn anchored(
    db: &DatabaseConnection,
    dir: &Path,
) -> anyhow::Result<(ed25519_dalek::VerifyingKey, std::path::PathBuf)> {
    for (app, n) in [("a", 3), ("b", 2), ("c", 1)] {
        for i in 0..n {
            tongban_audit::append_alone(
                db,
                &application_chain(app),
                1_000 + i,
                Act::done(clerk(), "approve", format!("task-{i}")).reason("fine"),
            )
            .await?;
        }
    }
    let key = anchor::load_or_create_signing_key(&dir.join("svc.key"))?;
    let file = dir.join("cp.jsonl");
    let cp = anchor::checkpoint(db, "svc", &key, &file, 5_000).await?;
    assert_eq!(cp.map(|c| c.body.chains.len()), Some(3));
    assert!(
        anchor::checkpoint(db, "svc", &key, &file, 6_000)
            .await?
            .is_none(),
        "nothing changed, nothing to checkpoint"
    );
    Ok((key.verifying_key(), file))
}

async fn run_verify(
    db: &DatabaseConnection,
    key: &ed25519_dalek::VerifyingKey,
    file: &Path,
) -> anyhow::Result<Report> {
    let cps = anchor::read_checkpoints(file)?;
    Ok(tongban_audit::verify::verify(db, &cps, std::slice::from_ref(key), None).await?)
}

async fn sql(db: &DatabaseConnection, s: &str) -> anyhow::Result<()> {
    db.execute_unprepared(s).await?;
    Ok(())
}

async fn intact_log_verifies(backend: Backend) -> anyhow::Result<()> {
    let (_t, db) = db(backend, "audit_ok").await?;
    let dir = tempfile::tempdir()?;
    let (key, file) = anchored(&db, dir.path()).await?;
    // Entries after the checkpoint are fine too.
    tongban_audit::append_alone(
        &db,
        &application_chain("a"),
        7_000,
        Act::done(clerk(), "claim", "t"),
    )
    .await?;
    let r = run_verify(&db, &key, &file).await?;
    assert!(r.is_clean(), "{:?}", r.findings);
    assert_eq!((r.chains, r.entries, r.checkpoints), (3, 7, 1));
    Ok(())
}

async fn edited_entry_is_found(backend: Backend) -> anyhow::Result<()> {
    let (_t, db) = db(backend, "audit_edit").await?;
    let dir = tempfile::tempdir()?;
    let (key, file) = anchored(&db, dir.path()).await?;
    sql(
        &db,
        "UPDATE audit_log SET reason = 'looked fine to me' WHERE chain = 'application/a' AND seq = 2",
    )
    .await?;
    let r = run_verify(&db, &key, &file).await?;
    assert_eq!(
        r.findings,
        vec![Finding::Edited {
            chain: "application/a".into(),
            seq: 2
        }]
    );
    Ok(())
}

/// Rewriting a whole chain with fresh, consistent hashes still leaves the signed head behind.
async fn rewritten_chain_is_found(backend: Backend) -> anyhow::Result<()> {
    let (_t, db) = db(backend, "audit_rewrite").await?;
    let dir = tempfile::tempdir()?;
    let (key, file) = anchored(&db, dir.path()).await?;
    sql(&db, "DELETE FROM audit_log WHERE chain = 'application/c'").await?;
    sql(&db, "DELETE FROM audit_heads WHERE chain = 'application/c'").await?;
    tongban_audit::append_alone(
        &db,
        &application_chain("c"),
        1_000,
        Act::done(clerk(), "reject", "task-0").reason("forged"),
    )
    .await?;
    let r = run_verify(&db, &key, &file).await?;
    assert_eq!(
        r.findings,
        vec![Finding::Edited {
            chain: "application/c".into(),
            seq: 1
        }]
    );
    Ok(())
}

async fn truncated_chain_is_found(backend: Backend) -> anyhow::Result<()> {
    let (_t, db) = db(backend, "audit_trunc").await?;
    let dir = tempfile::tempdir()?;
    let (key, file) = anchored(&db, dir.path()).await?;
    sql(
        &db,
        "DELETE FROM audit_log WHERE chain = 'application/a' AND seq = 3",
    )
    .await?;
    let r = run_verify(&db, &key, &file).await?;
    assert_eq!(
        r.findings,
        vec![Finding::Truncated {
            chain: "application/a".into(),
            checkpointed: 3,
            found: 2
        }]
    );
    Ok(())
}

async fn deleted_chain_is_found(backend: Backend) -> anyhow::Result<()> {
    let (_t, db) = db(backend, "audit_del").await?;
    let dir = tempfile::tempdir()?;
    let (key, file) = anchored(&db, dir.path()).await?;
    sql(&db, "DELETE FROM audit_log WHERE chain = 'application/b'").await?;
    let r = run_verify(&db, &key, &file).await?;
    assert_eq!(
        r.findings,
        vec![Finding::Deleted {
            chain: "application/b".into(),
            checkpointed: 2
        }]
    );
    Ok(())
}

async fn forged_checkpoint_is_found(backend: Backend) -> anyhow::Result<()> {
    let (_t, db) = db(backend, "audit_forge").await?;
    let dir = tempfile::tempdir()?;
    let (key, file) = anchored(&db, dir.path()).await?;
    // Someone truncates chain a and appends a checkpoint that says it was always 2 long,
    // signed by a key of their own.
    sql(
        &db,
        "DELETE FROM audit_log WHERE chain = 'application/a' AND seq = 3",
    )
    .await?;
    let cps = anchor::read_checkpoints(&file)?;
    let Some(Ok(first)) = cps.first() else {
        anyhow::bail!("no checkpoint")
    };
    let mut body = first.body.clone();
    body.chains.retain(|h| h.chain == "application/a");
    body.chains[0].seq = 2;
    let other = anchor::load_or_create_signing_key(&dir.path().join("mallory.key"))?;
    let forged: Checkpoint = body.sign(&other);
    let mut text = std::fs::read_to_string(&file)?;
    text.push_str(&serde_json::to_string(&forged)?);
    text.push('\n');
    std::fs::write(&file, text)?;
    let r = run_verify(&db, &key, &file).await?;
    assert_eq!(
        r.findings,
        vec![
            Finding::ForgedCheckpoint { line: 2 },
            Finding::Truncated {
                chain: "application/a".into(),
                checkpointed: 3,
                found: 2
            }
        ]
    );
    Ok(())
}

async fn concurrent_appends_are_gap_free(backend: Backend) -> anyhow::Result<()> {
    let (t, db) = db(backend, "audit_race").await?;
    // Two connections (two pools), as two replicas would have.
    let other = tongban_storage::connect(&t.url).await?;
    let chain = application_chain("race");
    let mut handles = Vec::new();
    for (n, conn) in [db.clone(), other.clone()].into_iter().enumerate() {
        let chain = chain.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..25 {
                tongban_audit::append_alone(
                    &conn,
                    &chain,
                    i,
                    Act::done(clerk(), "claim", format!("{n}-{i}")),
                )
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let entries = tongban_audit::entries(&db, &chain).await?;
    assert_eq!(entries.len(), 50);
    assert_eq!(tongban_audit::verify_chain(&chain, &entries), None);
    Ok(())
}

async fn denied_attempts_are_recorded(backend: Backend) -> anyhow::Result<()> {
    let (_t, db) = db(backend, "audit_denied").await?;
    let e = tongban_audit::append_denied(
        &db,
        &application_chain("x"),
        1,
        clerk(),
        "withdraw",
        "x",
        "not the applicant",
    )
    .await?;
    assert_eq!((e.seq, e.outcome.as_str()), (1, "denied"));
    let stored = tongban_audit::entries(&db, &application_chain("x")).await?;
    assert_eq!(stored, vec![e]);
    Ok(())
}

on_both!(
    intact_log_verifies,
    edited_entry_is_found,
    rewritten_chain_is_found,
    truncated_chain_is_found,
    deleted_chain_is_found,
    forged_checkpoint_is_found,
    concurrent_appends_are_gap_free,
    denied_attempts_are_recorded,
);
