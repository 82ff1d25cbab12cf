//! Two intake replicas' matter registries over one database, PostgreSQL and SQLite: a
//! definition published through one (as the replica that consumed `definition.published`
//! does) reaches the other through its periodic refresh.

use std::time::Duration;

use sea_orm_migration::MigratorTrait;
use tokio_util::sync::CancellationToken;
use tongban_intake::matters::Matters;
use tongban_matter::Departments;
use tongban_testkit::{Backend, TestDb, eventually};

const CODE: &str = "env.eia.report_form";
const WAIT: Duration = Duration::from_secs(30);

async fn replica(url: &str) -> anyhow::Result<(sea_orm::DatabaseConnection, Matters)> {
    let db = tongban_storage::connect(url).await?;
    tongban_intake::migration::Migrator::up(&db, None).await?;
    let deploy = tongban_testkit::deploy_dir();
    let departments = Departments::load(deploy.join("departments.toml"))?;
    let matters = Matters::load(&db, &deploy.join("matters"), departments).await?;
    Ok((db, matters))
}

fn latest_version(m: &Matters) -> Option<u32> {
    m.latest(CODE).map(|d| d.version)
}

async fn replicas_converge_after_a_publish(backend: Backend) -> anyhow::Result<()> {
    let test_db = TestDb::new(backend, "intake_matters").await?;
    let (db_a, a) = replica(&test_db.url).await?;
    let (db_b, b) = replica(&test_db.url).await?;
    assert_eq!(latest_version(&a), Some(1));
    assert_eq!(latest_version(&b), Some(1));

    let source = std::fs::read_to_string(
        tongban_testkit::deploy_dir().join("matters/env.eia.report_form.v1.toml"),
    )?
    .replacen("version = 1", "version = 2", 1);
    let def = a
        .parse(&source, "published env.eia.report_form v2")
        .ok_or_else(|| anyhow::anyhow!("v2 does not parse"))?;
    let txn = tongban_storage::begin_write(&db_a).await?;
    a.publish(&txn, def).await?;
    txn.commit().await?;
    assert_eq!(latest_version(&a), Some(2));
    assert_eq!(latest_version(&b), Some(1), "b has not refreshed yet");

    let stop = CancellationToken::new();
    let refresher = tokio::spawn(b.keep_fresh(
        db_b.clone(),
        Duration::from_millis(50),
        stop.clone().cancelled_owned(),
    ));

    eventually(WAIT, "replica b to load v2", || async {
        (latest_version(&b) == Some(2)).then_some(())
    })
    .await?;
    assert!(
        b.all_latest()
            .iter()
            .any(|d| d.code == CODE && d.version == 2)
    );

    // A replica started now finds it at once.
    let (_db_c, c) = replica(&test_db.url).await?;
    assert_eq!(latest_version(&c), Some(2));

    stop.cancel();
    tokio::time::timeout(WAIT, refresher).await??;
    Ok(())
}

tongban_testkit::on_both!(replicas_converge_after_a_publish);
