//! Order tolerance: approval's real consumer handler fed one application's events from intake
//! (submitted, supplemented, withdrawn) in every order, each order a fresh application in one
//! database, then the first event again (a redelivery). Supplements that overtake the
//! submission are parked and applied after it; a withdrawal that overtakes it means no
//! workflow ever starts (the instance is recorded withdrawn, with no task and no event).

use tongban_approval::consumer::WorkflowDriver;
use tongban_testkit::order::{deliver_all, permutations};

use crate::common::*;

const OWED: &str = "land_use_certificate";

/// One application's events from intake, in the order intake emits them.
fn life(withdrawn: bool) -> anyhow::Result<Vec<Envelope>> {
    let mut snap = snapshot()?;
    snap.owed_materials = vec![common::OwedMaterial {
        material_kind: OWED.into(),
        due_time: None,
        fulfilled_time: None,
        statement: "15个工作日内补交".into(),
    }];
    let id = snap.application_id.clone();
    let mut events = vec![
        tongban_outbox::new_envelope(
            "intake",
            &id,
            Payload::ApplicationSubmitted(events::ApplicationSubmitted {
                application: Some(snap),
            }),
        ),
        tongban_outbox::new_envelope(
            "intake",
            &id,
            Payload::ApplicationSupplemented(events::ApplicationSupplemented {
                fulfilled_kinds: vec![OWED.into()],
                ..Default::default()
            }),
        ),
    ];
    if withdrawn {
        events.push(tongban_outbox::new_envelope(
            "intake",
            &id,
            Payload::ApplicationWithdrawn(events::ApplicationWithdrawn {
                reason: "项目取消".into(),
            }),
        ));
    }
    Ok(events)
}

/// What the application ends as: the workflow's status (as GetWorkflow tells it) and its
/// tasks as (kind, department, material, status), sorted.
#[derive(Debug, PartialEq, Eq)]
struct End {
    status: pb::WorkflowStatus,
    tasks: Vec<(String, String, String, String)>,
}

async fn end(h: &Harness, app: &str) -> anyhow::Result<End> {
    let status = h.workflow(app).await?.status();
    let rows = h
        .db
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            h.db.get_database_backend(),
            match h.db.get_database_backend() {
                sea_orm::DbBackend::Postgres => {
                    "SELECT kind, department, material_kind, status FROM tasks WHERE application_id = $1"
                }
                _ => "SELECT kind, department, material_kind, status FROM tasks WHERE application_id = ?",
            },
            [app.into()],
        ))
        .await?;
    let mut tasks = Vec::new();
    for r in rows {
        tasks.push((
            r.try_get::<String>("", "kind")?,
            r.try_get::<String>("", "department")?,
            r.try_get::<String>("", "material_kind")?,
            r.try_get::<String>("", "status")?,
        ));
    }
    tasks.sort();
    Ok(End { status, tasks })
}

async fn consumer_reaches_the_same_end_in_every_order(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let driver = WorkflowDriver::new(timer_worker(&h).await?);
    let consumer = "approval-order-test";

    // Without a withdrawal: the owed material is done, the review runs, whatever the order.
    let in_order = life(false)?;
    let app = in_order[0].application_id.clone();
    deliver_all(&h.db, consumer, &driver, &in_order).await?;
    let expected = end(&h, &app).await?;
    assert_eq!(expected.status, pb::WorkflowStatus::Running);
    assert!(
        expected.tasks.iter().any(|t| t.2 == OWED && t.3 == "DONE"),
        "{expected:?}"
    );
    for order in permutations(&[0, 1]) {
        let events = life(false)?;
        let app = events[0].application_id.clone();
        let shuffled: Vec<_> = order.iter().map(|&i| events[i].clone()).collect();
        deliver_all(&h.db, consumer, &driver, &shuffled).await?;
        assert_eq!(end(&h, &app).await?, expected, "order {order:?}");
    }

    // With a withdrawal: withdrawn and nothing open in every order. Where the withdrawal
    // overtook the submission no task was ever created and no event went out.
    for order in permutations(&[0, 1, 2]) {
        let events = life(true)?;
        let app = events[0].application_id.clone();
        let shuffled: Vec<_> = order.iter().map(|&i| events[i].clone()).collect();
        deliver_all(&h.db, consumer, &driver, &shuffled).await?;
        let got = end(&h, &app).await?;
        assert_eq!(got.status, pb::WorkflowStatus::Withdrawn, "order {order:?}");
        assert!(
            got.tasks
                .iter()
                .all(|t| t.3 == "CANCELLED" || t.3 == "DONE"),
            "open task after withdrawal, order {order:?}: {got:?}"
        );
        let withdrawal_first =
            order.iter().position(|&i| i == 2) < order.iter().position(|&i| i == 0);
        let announced = h
            .count(&format!(
                "SELECT COUNT(*) AS n FROM outbox WHERE application_id = '{app}' AND routing_key = 'task.created'"
            ))
            .await;
        if withdrawal_first {
            assert!(got.tasks.is_empty(), "order {order:?}: {got:?}");
            assert_eq!(announced, 0, "order {order:?}: a task was announced");
        } else {
            assert!(announced > 0, "order {order:?}");
        }
    }
    assert_eq!(h.count("SELECT COUNT(*) AS n FROM parked_events").await, 0);
    Ok(())
}

/// A parked event whose submission never comes is given up after the retention.
async fn parked_events_are_pruned_after_the_retention(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let driver = WorkflowDriver::new(timer_worker(&h).await?);
    let events = life(true)?;
    tongban_testkit::order::deliver(&h.db, "approval-order-test", &driver, &events[2]).await?;
    assert_eq!(h.count("SELECT COUNT(*) AS n FROM parked_events").await, 1);
    let pruner = tongban_outbox::prune::ParkedPruner::new(h.db.clone());
    assert_eq!(pruner.prune().await?, 0, "recent: kept");
    let old = tongban_storage::now_ms() - chrono::Duration::days(31).num_milliseconds();
    h.db.execute_unprepared(&format!("UPDATE parked_events SET parked_at = {old}"))
        .await?;
    assert_eq!(pruner.prune().await?, 1);
    assert_eq!(h.count("SELECT COUNT(*) AS n FROM parked_events").await, 0);
    Ok(())
}

tongban_testkit::on_both!(
    consumer_reaches_the_same_end_in_every_order,
    parked_events_are_pruned_after_the_retention
);
