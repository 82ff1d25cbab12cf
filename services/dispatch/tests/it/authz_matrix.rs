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
    // The matter's lead department is eco_env; water is in the workflow but does not lead.
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
            "supervisor (in the workflow, not lead)",
            k.token(Role::Supervisor, Some("water"), None),
            None,
            total,
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

tongban_testkit::on_both!(authorization_matrix);
