//! The authorization matrix over dispatch's RPCs: every RPC × every role × own and other
//! scope, asserting the status code and that nothing changed in the ledger.
//!
//! Allowed calls are made so that they stop right after the decision without writing:
//! retrying a delivered row (FAILED_PRECONDITION), replaying an application with nothing
//! dead-lettered (OK, 0), reconciling an unknown platform (NOT_FOUND).

use crate::common::*;

/// (label, token, ListPlatforms, rows ListDeliveries shows, may retry/replay, Reconcile).
type Cell = (
    &'static str,
    String,
    Option<Code>,
    usize,
    bool,
    Option<Code>,
);

async fn authorization_matrix(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend, |_| {}).await?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted, &approved]).await?;
    h.wait_all_delivered(1).await?;
    let app = submitted.application_id.clone();
    // The tasks approval creates for the example (class C, no water intake, a site in
    // Songyuan); the water task and the class-D market_regulation stage are skipped.
    h.tasks_created(
        &app,
        &[
            ("admin_approval", ""),
            ("eco_env", "eco_env.songyuan"),
            ("natural_resources", ""),
            ("dev_reform", ""),
        ],
    )
    .await?;
    let admin = h.token(Role::Admin);
    let ledger = |token: String| {
        let mut c = h.client.clone();
        async move {
            c.list_deliveries(authed(
                pb::ListDeliveriesRequest {
                    page_size: 100,
                    ..Default::default()
                },
                &token,
            ))
            .await
            .map(|r| r.into_inner().deliveries)
        }
    };
    let before = ledger(admin.clone()).await?;
    let total = before.len();
    assert!(total > 0);
    let delivered = before[0].delivery_id.clone();
    let k = &h.keys;
    let deny = Some(Code::PermissionDenied);
    // PERMISSION_DENIED answers, each of which must be on the service's audit chain.
    let mut refused = 0usize;
    // (label, token, ListPlatforms, rows ListDeliveries shows, Retry/Replay, Reconcile).
    // The matter's lead department is eco_env; dev_reform is in the workflow but does not
    // lead; water and market_regulation are named by the matter but got no task.
    let cells: Vec<Cell> = vec![
        (
            "applicant",
            k.token(Role::Applicant, None, Some("91350100M000100Y43")),
            deny,
            0,
            false,
            deny,
        ),
        (
            "clerk (lead department)",
            h.token(Role::Clerk),
            None,
            total,
            false,
            deny,
        ),
        (
            "clerk (outside the workflow)",
            k.token(Role::Clerk, Some("business_env"), None),
            None,
            0,
            false,
            deny,
        ),
        (
            "supervisor (lead department)",
            h.token(Role::Supervisor),
            None,
            total,
            true,
            deny,
        ),
        (
            "clerk (skipped stage)",
            k.token(Role::Clerk, Some("market_regulation"), None),
            None,
            0,
            false,
            deny,
        ),
        (
            "township clerk (routed here)",
            k.token(Role::Clerk, Some("eco_env.songyuan"), None),
            None,
            total,
            false,
            deny,
        ),
        (
            "township clerk (not routed here)",
            k.token(Role::Clerk, Some("eco_env.zhengdun"), None),
            None,
            0,
            false,
            deny,
        ),
        (
            "supervisor (in the workflow, not lead)",
            k.token(Role::Supervisor, Some("dev_reform"), None),
            None,
            total,
            false,
            deny,
        ),
        (
            "supervisor (skipped task)",
            k.token(Role::Supervisor, Some("water"), None),
            None,
            0,
            false,
            deny,
        ),
        (
            "supervisor (outside the workflow)",
            k.token(Role::Supervisor, Some("business_env"), None),
            None,
            0,
            false,
            deny,
        ),
        (
            "integrator (registered)",
            k.token(Role::Integrator, None, None),
            None,
            total,
            false,
            deny,
        ),
        (
            "integrator (unregistered)",
            k.token(Role::Integrator, Some("unregistered"), None),
            deny,
            0,
            false,
            deny,
        ),
        (
            "admin",
            admin.clone(),
            None,
            total,
            true,
            Some(Code::NotFound),
        ),
    ];
    let code = |r: Result<(), tonic::Status>| r.err().map(|s| s.code());
    for (label, token, platforms, rows, operate, reconcile) in cells {
        let mut c = h.client.clone();
        let r = c
            .list_platforms(authed(pb::ListPlatformsRequest::default(), &token))
            .await
            .map(|_| ());
        assert_eq!(code(r), platforms, "ListPlatforms by {label}");
        refused += usize::from(platforms == deny);
        let listed = ledger(token.clone()).await;
        if let Ok(listed) = &listed {
            assert_eq!(listed.len(), rows, "ListDeliveries by {label}");
        } else {
            // Only a role that never reads the ledger is refused outright.
            assert_eq!(
                listed.err().map(|s| s.code()),
                deny,
                "ListDeliveries by {label}"
            );
            refused += 1;
            assert_eq!(rows, 0);
        }
        // Naming the application: its ledger, or PERMISSION_DENIED outside the scope.
        let named = c
            .list_deliveries(authed(
                pb::ListDeliveriesRequest {
                    application_id: app.clone(),
                    page_size: 100,
                    ..Default::default()
                },
                &token,
            ))
            .await;
        match named {
            Ok(r) => assert_eq!(r.into_inner().deliveries.len(), rows, "{label} naming it"),
            Err(e) => {
                assert_eq!(e.code(), Code::PermissionDenied, "{label} naming it");
                assert_eq!(rows, 0, "{label} naming it");
                refused += 1;
            }
        }
        let r = c
            .retry_delivery(authed(
                pb::RetryDeliveryRequest {
                    delivery_id: delivered.clone(),
                },
                &token,
            ))
            .await
            .map(|_| ());
        let retry = if operate {
            Some(Code::FailedPrecondition)
        } else {
            deny
        };
        assert_eq!(code(r), retry, "RetryDelivery by {label}");
        refused += usize::from(retry == deny);
        let r = c
            .replay_dead_letters(authed(
                pb::ReplayDeadLettersRequest {
                    application_id: app.clone(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .map(|r| assert_eq!(r.into_inner().replayed, 0));
        assert_eq!(
            code(r),
            if operate { None } else { deny },
            "Replay by {label}"
        );
        refused += usize::from(!operate);
        let r = c
            .reconcile(authed(
                pb::ReconcileRequest {
                    platform_id: "nope".into(),
                    redeliver_missing: true,
                },
                &token,
            ))
            .await
            .map(|_| ());
        assert_eq!(code(r), reconcile, "Reconcile by {label}");
        refused += usize::from(reconcile == deny);
    }
    // Nothing changed.
    let after = ledger(admin).await?;
    let view = |d: &[pb::Delivery]| {
        d.iter()
            .map(|d| (d.delivery_id.clone(), d.status, d.attempts))
            .collect::<Vec<_>>()
    };
    assert_eq!(view(&after), view(&before));
    // Every refusal is on dispatch's own chain, naming the actor.
    assert!(refused > 0);
    tongban_testkit::refusals_recorded(&h.db, "dispatch", refused).await?;
    Ok(())
}

/// Deliveries follow the workflow: a department a task was moved to (`task.moved`) reads the
/// application's deliveries once the event has arrived; before, naming it is refused.
async fn moved_task_brings_its_department_in(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend, |_| {}).await?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted, &approved]).await?;
    h.wait_all_delivered(1).await?;
    let app = submitted.application_id.clone();
    h.tasks_created(&app, &[("natural_resources", "")]).await?;
    let water = h.keys.token(Role::Clerk, Some("water"), None);
    let named = |token: String| {
        let mut c = h.client.clone();
        let app = app.clone();
        async move {
            c.list_deliveries(authed(
                pb::ListDeliveriesRequest {
                    application_id: app,
                    page_size: 100,
                    ..Default::default()
                },
                &token,
            ))
            .await
            .map(|r| r.into_inner().deliveries.len())
            .map_err(|e| e.code())
        }
    };
    let total = named(h.token(Role::Admin))
        .await
        .map_err(|c| anyhow::anyhow!("{c:?}"))?;
    assert!(total > 0);
    assert_eq!(named(water.clone()).await, Err(Code::PermissionDenied));
    let moved = tongban_outbox::new_envelope(
        "approval",
        &app,
        Payload::TaskMoved(events::TaskMoved {
            task_id: "t-1".into(),
            from_department: "natural_resources".into(),
            department: "water".into(),
            office: String::new(),
        }),
    );
    h.publish(&[&moved]).await?;
    let got = eventually(WAIT, "water to read the deliveries", || {
        let r = named(water.clone());
        async move { r.await.ok() }
    })
    .await?;
    assert_eq!(got, total);
    // Reading is not operating: only the lead department's supervisors retry.
    let mut c = h.client.clone();
    let listed = c
        .list_deliveries(authed(
            pb::ListDeliveriesRequest {
                page_size: 100,
                ..Default::default()
            },
            &water,
        ))
        .await?
        .into_inner()
        .deliveries;
    assert_eq!(listed.len(), total);
    let err = c
        .retry_delivery(authed(
            pb::RetryDeliveryRequest {
                delivery_id: listed[0].delivery_id.clone(),
            },
            &h.keys.token(Role::Supervisor, Some("water"), None),
        ))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(err, Some(Code::PermissionDenied));
    Ok(())
}

tongban_testkit::on_both!(authorization_matrix, moved_task_brings_its_department_in);
