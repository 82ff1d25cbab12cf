//! Two approval replicas' definition registries over one database, PostgreSQL and SQLite: a
//! version published through one is found by the other at once when asked for exactly (inside
//! a transaction, as the engine asks), and becomes its latest through the periodic refresh.

use std::time::Duration;

use sea_orm::TransactionTrait;
use sea_orm_migration::MigratorTrait;
use tokio_util::sync::CancellationToken;
use tongban_approval::definitions::{Definitions, DefinitionsTable};
use tongban_matter::Departments;
use tongban_testkit::{Backend, TestDb, eventually};

const CODE: &str = "env.eia.report_form";
const WAIT: Duration = Duration::from_secs(30);

async fn replica(url: &str) -> anyhow::Result<(sea_orm::DatabaseConnection, Definitions)> {
    let db = tongban_storage::connect(url).await?;
    tongban_approval::migration::Migrator::up(&db, None).await?;
    let deploy = tongban_testkit::deploy_dir();
    let departments = Departments::load(deploy.join("departments.toml"))?;
    let defs = Definitions::load(&db, &deploy.join("matters"), departments).await?;
    Ok((db, defs))
}

fn eia(version: u32) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(
        tongban_testkit::deploy_dir().join("matters/env.eia.report_form.v1.toml"),
    )?
    .replacen("version = 1", &format!("version = {version}"), 1))
}

fn latest_version(d: &Definitions) -> Option<u32> {
    d.registry().latest(CODE).map(|d| d.version)
}

async fn replicas_converge_after_a_publish(backend: Backend) -> anyhow::Result<()> {
    let test_db = TestDb::new(backend, "approval_defs").await?;
    let (db_a, a) = replica(&test_db.url).await?;
    let (db_b, b) = replica(&test_db.url).await?;
    assert_eq!(latest_version(&a), Some(1));
    assert_eq!(latest_version(&b), Some(1));

    // Published through a: b has not refreshed, but finds the exact version in the table.
    let v2 = a.parse(&eia(2)?, "published definition")?;
    a.registry().publish(&DefinitionsTable(&db_a), v2).await?;
    assert_eq!(latest_version(&a), Some(2));
    assert_eq!(latest_version(&b), Some(1));
    let txn = db_b.begin().await?;
    let got = b.get(&txn, CODE, 2).await.map(|d| d.version);
    txn.commit().await?;
    assert_eq!(got, Some(2));
    assert!(b.get(&db_b, CODE, 9).await.is_none());

    // The periodic refresh brings a later version without anyone asking for it.
    let stop = CancellationToken::new();
    let refresher = tokio::spawn(b.keep_fresh(
        db_b.clone(),
        Duration::from_millis(50),
        stop.clone().cancelled_owned(),
    ));
    let v3 = a.parse(&eia(3)?, "published definition")?;
    a.registry().publish(&DefinitionsTable(&db_a), v3).await?;
    eventually(WAIT, "replica b to load v3", || async {
        (latest_version(&b) == Some(3)).then_some(())
    })
    .await?;
    stop.cancel();
    tokio::time::timeout(WAIT, refresher).await??;

    // `latest` reads the table itself, so it sees v4 at once.
    let v4 = a.parse(&eia(4)?, "published definition")?;
    a.registry().publish(&DefinitionsTable(&db_a), v4).await?;
    assert_eq!(b.latest(&db_b, CODE).await.map(|d| d.version), Some(4));
    Ok(())
}

tongban_testkit::on_both!(replicas_converge_after_a_publish);
