//! Approval over real gRPC (see `common` for the harness). Enterprise requests: answered, rated, reopened when unsatisfied, escalated to the
//! supervising department.

use crate::common::*;

async fn request_reopens_when_unsatisfied_and_closes_when_satisfied(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let app = h.submit(request_snapshot()?).await?;
    h.approve_stage(&app, "accept", 1).await?;
    h.approve_stage(&app, "assign", 1).await?;
    let handle = h.approve_stage(&app, "handle", 1).await?;
    assert_eq!(handle[0].kind(), pb::TaskKind::HandleRequest);
    assert_eq!(handle[0].department, "eco_env");
    let feedback = h.stage(&app, "feedback", 1).await?.remove(0);
    h.decide(&feedback, pb::Decision::Approve, "已督促办结")
        .await?;
    let answered = h.event(&app, "request.answered", 1).await?;
    let Some(Payload::RequestAnswered(a)) = answered.payload else {
        anyhow::bail!("wrong payload")
    };
    assert_eq!(a.answer, "已督促办结");
    assert_eq!(
        h.workflow(&app).await?.status(),
        pb::WorkflowStatus::AwaitingRating
    );

    let applicant = h.applicant();
    let rate = |r: pb::Rating| rating(&app, r, &applicant);
    let mut client = h.client.clone();
    let other = h
        .keys
        .token(Role::Applicant, None, Some("91440300708461136T"));
    let denied = client
        .rate_outcome(authed(
            pb::RateOutcomeRequest {
                application_id: app.clone(),
                rating: 1,
                comment: String::new(),
            },
            &other,
        ))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(denied, Some(Code::PermissionDenied));
    let wf = client
        .rate_outcome(rate(pb::Rating::Unsatisfied))
        .await?
        .into_inner()
        .workflow
        .unwrap_or_default();
    assert_eq!(wf.status(), pb::WorkflowStatus::Running);
    let rated = h.event(&app, "outcome.rated", 1).await?;
    assert!(
        matches!(rated.payload, Some(Payload::OutcomeRated(ref r)) if r.reopened && r.rating() == events::Rating::Unsatisfied)
    );
    let again = client
        .rate_outcome(rate(pb::Rating::Satisfied))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(
        again,
        Some(Code::FailedPrecondition),
        "nothing to rate while it is being handled again"
    );
    h.approve_stage(&app, "handle", 1).await?;
    h.approve_stage(&app, "feedback", 1).await?;
    h.event(&app, "request.answered", 2).await?;
    let wf = client
        .rate_outcome(rate(pb::Rating::Satisfied))
        .await?
        .into_inner()
        .workflow
        .unwrap_or_default();
    assert_eq!(wf.status(), pb::WorkflowStatus::Closed);
    h.event(&app, "application.closed", 1).await?;
    Ok(())
}

/// An enterprise request's overdue task goes to the supervising department's supervisors,
/// after the grace period.
async fn request_escalates_to_the_supervising_department(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let app = h.submit(request_snapshot()?).await?;
    h.approve_stage(&app, "accept", 1).await?;
    h.approve_stage(&app, "assign", 1).await?;
    let handle = h.stage(&app, "handle", 1).await?.remove(0);
    assert_eq!(handle.department, "eco_env");
    let due = due_of(&handle)?;
    let worker = timer_worker(&h).await?;
    let escalate = worker.calendar().add_working_hours(due, 4);
    worker.fire_timers(due).await?;
    let escalations = |trail: &[pb::AuditEntry]| {
        trail
            .iter()
            .filter(|e| e.action == "escalate" && e.task_id == handle.task_id)
            .map(|e| e.reason.clone())
            .collect::<Vec<_>>()
    };
    assert!(
        escalations(&audit(&h, &app).await?).is_empty(),
        "overdue, not yet escalated"
    );
    worker.fire_timers(escalate).await?;
    worker.fire_timers(escalate).await?;
    assert_eq!(
        escalations(&audit(&h, &app).await?),
        ["supervisor:business_env"]
    );
    Ok(())
}

tongban_testkit::on_both!(
    request_reopens_when_unsatisfied_and_closes_when_satisfied,
    request_escalates_to_the_supervising_department,
);
