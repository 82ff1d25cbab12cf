//! Approval over real gRPC (see `common` for the harness). Timers with several workers: due-soon, overdue and escalation fire once each.

use crate::common::*;

async fn timers_fire_once_with_two_workers(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let app = h.submit(snapshot()?).await?;
    let task = h.stage(&app, "acceptance", 1).await?.remove(0);
    let due = task
        .due_time
        .as_ref()
        .and_then(tongban_proto::time::from_ts)
        .ok_or_else(|| anyhow::anyhow!("no due time"))?;
    // Two more engines over the same database (each with its own connection), as two replicas.
    let mut workers = Vec::new();
    for _ in 0..2 {
        let mut ctx = h.ctx.clone();
        ctx.db = tongban_storage::connect(h.service.database_url()).await?;
        workers.push(
            tongban_approval::build(
                &ctx,
                Default::default(),
                Arc::new(tongban_approval::SystemClock),
            )
            .await?,
        );
    }
    let cal = workers[0].calendar().clone();
    let soon = cal.due_soon_at(due);
    // The matter does not set escalate_after_hours: 4 working hours of grace past the deadline.
    let escalate = cal.add_working_hours(due, 4);
    assert!(escalate > due);
    let just_before = escalate - chrono::Duration::milliseconds(1);
    let late = due + chrono::Duration::days(30);
    let counts = |steps: [i64; 3]| {
        [
            ("task.due_soon", steps[0]),
            ("task.overdue", steps[1]),
            ("task.escalated", steps[2]),
        ]
    };
    for (at, expected) in [
        (soon, counts([1, 0, 0])),
        (soon, counts([1, 0, 0])),
        (due, counts([1, 1, 0])),
        (due, counts([1, 1, 0])),
        (just_before, counts([1, 1, 0])),
        (escalate, counts([1, 1, 1])),
        (escalate, counts([1, 1, 1])),
        (late, counts([1, 1, 1])),
    ] {
        let (a, b) = tokio::join!(workers[0].fire_timers(at), workers[1].fire_timers(at));
        a?;
        b?;
        for (ty, n) in expected {
            let got = h.count(&format!("SELECT COUNT(*) AS n FROM outbox WHERE routing_key = '{ty}' AND application_id = '{app}'")).await;
            assert_eq!(got, n, "{ty} after firing at {at}");
        }
        if at < escalate {
            assert!(!h.tasks(&app, &[]).await?[0].escalated, "not yet at {at}");
        }
    }
    let t = h.tasks(&app, &[]).await?.remove(0);
    assert!(t.escalated);
    assert_eq!(
        t.version, task.version,
        "reminders do not make the clerk's version stale"
    );
    let trail = h
        .client
        .clone()
        .get_audit_trail(authed(
            pb::GetAuditTrailRequest {
                application_id: app.clone(),
            },
            &h.admin(),
        ))
        .await?
        .into_inner();
    assert!(
        trail
            .entries
            .iter()
            .any(|e| e.action == "escalate" && e.reason == "supervisor:admin_approval")
    );
    Ok(())
}

/// 容缺受理: an owed material past its deadline escalates like any task, and because the matter
/// marks it `suspend_when_overdue`, suspends the application (once).
async fn overdue_owed_material_escalates_and_suspends(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let mut snap = snapshot()?;
    let due = chrono::Utc::now() + chrono::Duration::days(20);
    snap.owed_materials = vec![common::OwedMaterial {
        material_kind: "land_use_certificate".into(),
        due_time: Some(tongban_proto::time::ts(due)),
        fulfilled_time: None,
        statement: "30个工作日内补交".into(),
    }];
    let app = h.submit(snap).await?;
    h.stage(&app, "acceptance", 1).await?;
    let worker = timer_worker(&h).await?;
    let count = |ty: &'static str| {
        let app = app.clone();
        let h = &h;
        async move {
            h.count(&format!("SELECT COUNT(*) AS n FROM outbox WHERE routing_key = '{ty}' AND application_id = '{app}'")).await
        }
    };
    worker.fire_timers(due - chrono::Duration::days(10)).await?;
    assert_eq!(count("application.suspended").await, 0, "not yet due");
    let late = due + chrono::Duration::days(30);
    worker.fire_timers(late).await?;
    worker.fire_timers(late).await?;
    assert_eq!(count("application.suspended").await, 1);
    assert!(count("task.escalated").await >= 1);
    Ok(())
}

/// A task whose handling fails (its row no longer decodes) is skipped with a warning: the
/// other tasks' timers still fire in the same pass (even when failing tasks fill a whole page
/// of the due list), and the bad one fires on a later pass once
/// it is repaired.
async fn failing_task_does_not_stop_the_other_timers(backend: Backend) -> anyhow::Result<()> {
    use sea_orm::ConnectionTrait;
    let h = Harness::start(backend).await?;
    let bad_app = h.submit(snapshot()?).await?;
    let bad = h.stage(&bad_app, "acceptance", 1).await?.remove(0);
    let good_app = h.submit(snapshot()?).await?;
    let good = h.stage(&good_app, "acceptance", 1).await?.remove(0);
    let due = good
        .due_time
        .as_ref()
        .and_then(tongban_proto::time::from_ts)
        .ok_or_else(|| anyhow::anyhow!("no due time"))?;
    let b = h.db.get_database_backend();
    let stmt = tongban_storage::stmt;
    let kind =
        h.db.query_one_raw(stmt(
            b,
            "SELECT kind FROM tasks WHERE task_id = ?",
            vec![bad.task_id.clone().into()],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("task row"))?
        .try_get::<String>("", "kind")?;
    // The bad task comes first in the pass (earliest due), and its kind no longer decodes.
    let earlier = due.timestamp_millis() - 60_000;
    h.db.execute_raw(stmt(
        b,
        "UPDATE tasks SET kind = 'TASK_KIND_BOGUS', due_at = ? WHERE task_id = ?",
        vec![earlier.into(), bad.task_id.clone().into()],
    ))
    .await?;
    let count = |ty: &'static str, app: String| {
        let h = &h;
        async move {
            h.count(&format!("SELECT COUNT(*) AS n FROM outbox WHERE routing_key = '{ty}' AND application_id = '{app}'")).await
        }
    };
    let worker = timer_worker(&h).await?;
    let late = due + chrono::Duration::days(30);
    // One task per page: the bad task fills the first page, and the pass still reaches the
    // good one on the next.
    worker.fire_timers_paged(late, 1).await?;
    assert_eq!(count("task.overdue", good_app.clone()).await, 1);
    assert_eq!(count("task.escalated", good_app.clone()).await, 1);
    assert_eq!(count("task.overdue", bad_app.clone()).await, 0);
    assert_eq!(count("task.escalated", bad_app.clone()).await, 0);

    // Still failing: skipped again, nothing fires twice for the good one.
    worker.fire_timers(late).await?;
    assert_eq!(count("task.overdue", bad_app.clone()).await, 0);
    assert_eq!(count("task.overdue", good_app.clone()).await, 1);

    // Repaired: the next pass fires its timers.
    h.db.execute_raw(stmt(
        b,
        "UPDATE tasks SET kind = ? WHERE task_id = ?",
        vec![kind.into(), bad.task_id.clone().into()],
    ))
    .await?;
    worker.fire_timers(late).await?;
    assert_eq!(count("task.overdue", bad_app.clone()).await, 1);
    assert_eq!(count("task.escalated", bad_app.clone()).await, 1);
    assert_eq!(count("task.overdue", good_app.clone()).await, 1);
    assert!(h.tasks(&bad_app, &[]).await?[0].escalated);
    Ok(())
}

tongban_testkit::on_both!(
    timers_fire_once_with_two_workers,
    overdue_owed_material_escalates_and_suspends,
    failing_task_does_not_stop_the_other_timers,
);
