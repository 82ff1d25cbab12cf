//! Order tolerance: dispatch's real consumer handler (the fan-out) fed one application's events
//! (intake's submission and supplement, approval's task, approval and revocation) in every
//! order (120), each order a fresh application in one database, then the first event again (a
//! redelivery): the same ledger rows, application snapshot and scope as in order. Events that
//! overtake the submission are parked and fanned out when it arrives.

use std::sync::Arc;

use sea_orm::ConnectionTrait;
use sea_orm_migration::MigratorTrait;
use tongban_dispatch::{consumer::Fanout, ledger::ApplicationSnapshots, worker::PlatformRuntime};
use tongban_involved::Involved;
use tongban_testkit::order::{deliver_all, permutations};

use crate::common::*;

/// One application's events, in an order they can be produced.
fn life() -> anyhow::Result<Vec<Envelope>> {
    let (submitted, approved) = application()?;
    let id = submitted.application_id.clone();
    let event = |source: &str, p: Payload| tongban_outbox::new_envelope(source, &id, p);
    Ok(vec![
        submitted.clone(),
        event(
            "approval",
            Payload::TaskCreated(events::TaskCreated {
                task_id: "t-1".into(),
                department: "eco_env".into(),
                ..Default::default()
            }),
        ),
        event(
            "intake",
            Payload::ApplicationSupplemented(events::ApplicationSupplemented {
                materials: vec![tongban_proto::common::Material {
                    kind: "site_plan".into(),
                    name: "总平面图.pdf".into(),
                    sha256: "ab".repeat(32),
                    size_bytes: 1024,
                    uri: "s3://materials/site_plan.pdf".into(),
                }],
                ..Default::default()
            }),
        ),
        approved,
        event(
            "approval",
            Payload::ApplicationRevoked(events::ApplicationRevoked {
                reason: "承诺不实".into(),
                department: "eco_env".into(),
                revoke_time: Some(ts(chrono::Utc::now())),
                task_id: "t-2".into(),
            }),
        ),
    ])
}

/// What dispatch holds about the application in the end: its ledger rows as (platform, event
/// type, status), the materials of its stored snapshot and the departments in its workflow.
#[derive(Debug, PartialEq)]
struct End {
    rows: Vec<(String, String, String)>,
    materials: Option<Value>,
    departments: Vec<String>,
}

async fn end(db: &sea_orm::DatabaseConnection, app: &str) -> anyhow::Result<End> {
    let found = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT platform_id, event_type, status FROM deliveries WHERE application_id = '{app}'"
            ),
        ))
        .await?;
    let mut rows = Vec::new();
    for r in found {
        rows.push((
            r.try_get::<String>("", "platform_id")?,
            r.try_get::<String>("", "event_type")?,
            r.try_get::<String>("", "status")?,
        ));
    }
    rows.sort();
    Ok(End {
        rows,
        materials: db
            .load_application(app)
            .await?
            .and_then(|s| s.get("materials").cloned()),
        departments: db.departments_of(app).await?,
    })
}

async fn consumer_reaches_the_same_end_in_every_order(backend: Backend) -> anyhow::Result<()> {
    let test_db = TestDb::new(backend, "dispatch_order").await?;
    let db = tongban_storage::connect(&test_db.url).await?;
    tongban_dispatch::migration::Migrator::up(&db, None).await?;
    // No workers run: the ledger rows stay as the fan-out wrote them.
    let runtimes: Vec<_> = shipped()?
        .into_iter()
        .map(|c| Arc::new(PlatformRuntime::new(c)))
        .collect();
    let fanout = Fanout::new(Arc::new(runtimes));
    let consumer = "dispatch-order-test";

    let in_order = life()?;
    deliver_all(&db, consumer, &fanout, &in_order).await?;
    let expected = end(&db, &in_order[0].application_id).await?;
    // submitted: 3 platforms, supplemented: 1, approved: 4, revoked: 2.
    assert_eq!(expected.rows.len(), 10, "{:?}", expected.rows);
    assert_eq!(expected.departments, ["eco_env"]);
    let supplied = expected
        .materials
        .as_ref()
        .and_then(Value::as_array)
        .map(|m| m.iter().any(|m| m.to_string().contains("site_plan")));
    assert_eq!(supplied, Some(true), "{:?}", expected.materials);

    let orders = permutations(&[0, 1, 2, 3, 4]);
    assert_eq!(orders.len(), 120);
    for order in orders {
        let events = life()?;
        let app = events[0].application_id.clone();
        let shuffled: Vec<_> = order.iter().map(|&i| events[i].clone()).collect();
        deliver_all(&db, consumer, &fanout, &shuffled).await?;
        assert_eq!(end(&db, &app).await?, expected, "order {order:?}");
    }
    let parked = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM parked_events".to_string(),
        ))
        .await?
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?;
    assert_eq!(parked, Some(0));
    Ok(())
}

tongban_testkit::on_both!(consumer_reaches_the_same_end_in_every_order);
