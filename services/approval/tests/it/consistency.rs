//! Approval over real gRPC (see `common` for the harness). Exactly-once effects: concurrent decisions, redelivered submissions, and a tamper-evident
//! audit trail.

use crate::common::*;

async fn concurrent_decisions_one_wins(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let app = h.submit(snapshot()?).await?;
    let t = h.stage(&app, "acceptance", 1).await?.remove(0);
    let (a, b) = tokio::join!(
        h.decide(&t, pb::Decision::Approve, ""),
        h.decide(&t, pb::Decision::Reject, "材料不全")
    );
    let codes = [
        a.as_ref().err().map(|e| e.code()),
        b.as_ref().err().map(|e| e.code()),
    ];
    assert_eq!(
        codes.iter().filter(|c| c.is_none()).count(),
        1,
        "exactly one wins: {a:?} {b:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == Some(Code::Aborted)).count(),
        1,
        "the other is ABORTED: {a:?} {b:?}"
    );
    let loser = a.as_ref().err().or(b.as_ref().err());
    assert_eq!(loser.map(reason).as_deref(), Some("STALE_VERSION"));
    assert_eq!(h.count(&format!("SELECT COUNT(*) AS n FROM outbox WHERE routing_key = 'task.decided' AND application_id = '{app}'")).await, 1);
    Ok(())
}

async fn redelivered_submission_creates_one_instance(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let snap = snapshot()?;
    let app = snap.application_id.clone();
    let env = tongban_outbox::new_envelope(
        "intake",
        &app,
        Payload::ApplicationSubmitted(events::ApplicationSubmitted {
            application: Some(snap.clone()),
        }),
    );
    // Same event twice, then the same application under a new event id, then a marker.
    let other = tongban_outbox::new_envelope(
        "intake",
        &app,
        Payload::ApplicationSubmitted(events::ApplicationSubmitted {
            application: Some(snap),
        }),
    );
    let marker = tongban_outbox::new_envelope(
        "intake",
        "marker",
        Payload::ApplicationWithdrawn(events::ApplicationWithdrawn::default()),
    );
    h.publish(&[&env, &env, &other, &marker]).await?;
    eventually(WAIT, "marker applied", || async {
        (h.count("SELECT COUNT(*) AS n FROM inbox").await == 3).then_some(())
    })
    .await?;
    assert_eq!(h.count("SELECT COUNT(*) AS n FROM instances").await, 1);
    assert_eq!(h.count("SELECT COUNT(*) AS n FROM tasks").await, 1);
    assert_eq!(
        h.count("SELECT COUNT(*) AS n FROM outbox WHERE routing_key = 'task.created'")
            .await,
        1
    );
    Ok(())
}

async fn audit_tampering_is_detected(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let app = h.submit(snapshot()?).await?;
    h.approve_stage(&app, "acceptance", 1).await?;
    h.stage(&app, "joint_review", 3).await?;
    let mut client = h.client.clone();
    let req = || {
        authed(
            pb::GetAuditTrailRequest {
                application_id: app.clone(),
            },
            &h.admin(),
        )
    };
    let trail = client.get_audit_trail(req()).await?.into_inner();
    assert!(trail.verified);
    assert!(trail.entries.len() >= 5, "{:?}", trail.entries);
    let approve = trail
        .entries
        .iter()
        .find(|e| e.action == "approve")
        .ok_or_else(|| anyhow::anyhow!("no approve entry"))?;
    assert_eq!(approve.actor, "clerk:clerk-admin_approval@admin_approval");
    assert_eq!(
        approve.prev_hash,
        trail.entries[(approve.seq - 2) as usize].hash
    );
    let b = h.db.get_database_backend();
    h.db.execute_raw(sea_orm::Statement::from_string(
        b,
        format!(
            "UPDATE audit_log SET reason = '驳回' WHERE chain = 'application/{app}' AND seq = {}",
            approve.seq
        ),
    ))
    .await?;
    let trail = client.get_audit_trail(req()).await?.into_inner();
    assert!(!trail.verified);
    assert_eq!(trail.first_bad_seq, approve.seq);
    let applicant = h.applicant();
    let own = client
        .get_workflow(authed(
            pb::GetWorkflowRequest {
                application_id: app.clone(),
            },
            &applicant,
        ))
        .await?;
    assert!(
        !own.into_inner()
            .workflow
            .unwrap_or_default()
            .timeline
            .is_empty()
    );
    Ok(())
}

tongban_testkit::on_both!(
    concurrent_decisions_one_wins,
    redelivered_submission_creates_one_instance,
    audit_tampering_is_detected,
);
