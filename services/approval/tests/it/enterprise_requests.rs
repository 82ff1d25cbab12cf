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

    // 回访评估: the lead department visits the enterprise within five working days.
    let visit = h
        .tasks(&app, &[])
        .await?
        .into_iter()
        .find(|t| t.kind() == pb::TaskKind::FollowUpVisit)
        .ok_or_else(|| anyhow::anyhow!("no follow-up visit"))?;
    assert_eq!(visit.department, "business_env");
    let closed_at = h
        .event(&app, "application.closed", 1)
        .await?
        .occurred_at
        .and_then(|t| tongban_proto::time::from_ts(&t))
        .ok_or_else(|| anyhow::anyhow!("no close time"))?;
    let cal = timer_worker(&h).await?.calendar().clone();
    let due = due_of(&visit)?;
    assert!(
        due > closed_at && due <= cal.add_working_days(closed_at, 5),
        "due {due}, closed {closed_at}"
    );
    let done = h
        .decide(&visit, pb::Decision::Approve, "企业反映问题已解决")
        .await?;
    assert_eq!(done.status(), pb::TaskStatus::Done);
    assert_eq!(done.comment, "企业反映问题已解决");
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

/// When `task` of `app` was decided.
async fn decided_at(
    h: &Harness,
    app: &str,
    task: &pb::Task,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    h.tasks(app, &[pb::TaskStatus::Approved])
        .await?
        .into_iter()
        .find(|t| t.task_id == task.task_id)
        .and_then(|t| t.decide_time)
        .and_then(|t| tongban_proto::time::from_ts(&t))
        .ok_or_else(|| anyhow::anyhow!("task {} not decided", task.task_id))
}

/// The answer deadline runs from acceptance and no task of the request is due after it; an
/// answer nobody rates closes itself after the matter's waiting period, marked unrated.
async fn request_is_held_to_its_answer_deadline_and_closes_unrated(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let app = h.submit(request_snapshot()?).await?;
    let accept = h.approve_stage(&app, "accept", 1).await?.remove(0);
    let accepted = decided_at(&h, &app, &accept).await?;
    let engine = timer_worker(&h).await?;
    let cal = engine.calendar().clone();
    let answer_due = cal.add_working_hours(accepted, 40);
    let admin = identity(Role::Admin, None);
    let item_id = format!("request:{app}");
    let item = engine.ledger_item(&admin, &item_id).await?;
    assert_eq!(
        item.due_at,
        Some(answer_due.timestamp_millis()),
        "40 working hours from acceptance"
    );

    // Assigned 30 working hours later: the handler's 24 hours would end past the answer
    // deadline, so the task is due at the deadline.
    let assign = h.stage(&app, "assign", 1).await?.remove(0);
    let late = engine_at(&h, cal.add_working_hours(accepted, 30)).await?;
    late.decide(
        &identity(Role::Clerk, Some("business_env")),
        tongban_approval::requests::Decide::try_from(pb::DecideTaskRequest {
            task_id: assign.task_id.clone(),
            decision: pb::Decision::Approve as i32,
            comment: "交办".into(),
            expected_version: assign.version,
            requested_materials: vec![],
            assign_departments: vec![],
        })?,
    )
    .await?;
    let handle = h.stage(&app, "handle", 1).await?.remove(0);
    assert_eq!(due_of(&handle)?, answer_due);

    h.decide(&handle, pb::Decision::Approve, "已办结").await?;
    let feedback = h.approve_stage(&app, "feedback", 1).await?.remove(0);
    h.event(&app, "request.answered", 1).await?;
    let answered = decided_at(&h, &app, &feedback).await?;

    // Unrated: still waiting after nine working days, closed at ten.
    let nine = cal.add_working_days(answered, 9);
    assert_eq!(engine_at(&h, nine).await?.fire_timers(nine).await?, 0);
    assert_eq!(
        h.workflow(&app).await?.status(),
        pb::WorkflowStatus::AwaitingRating
    );
    let ten = cal.add_working_days(answered, 10);
    let closer = engine_at(&h, ten).await?;
    assert_eq!(
        closer.fire_timers(ten).await?,
        2,
        "application.closed, and task.created for the follow-up visit"
    );
    assert_eq!(closer.fire_timers(ten).await?, 0, "once");
    assert_eq!(h.workflow(&app).await?.status(), pb::WorkflowStatus::Closed);
    let closed = h.event(&app, "application.closed", 1).await?;
    let Some(Payload::ApplicationClosed(c)) = closed.payload else {
        anyhow::bail!("wrong payload")
    };
    assert!(c.unrated, "{c:?}");
    let trail = audit(&h, &app).await?;
    assert!(
        trail.iter().any(|e| e.action == "closed_unrated"),
        "{trail:?}"
    );
    let item = closer.ledger_item(&admin, &item_id).await?;
    assert_eq!(item.closed_at, Some(ten.timestamp_millis()));
    let visits: Vec<_> = h
        .tasks(&app, &[])
        .await?
        .into_iter()
        .filter(|t| t.kind() == pb::TaskKind::FollowUpVisit)
        .collect();
    assert_eq!(visits.len(), 1, "unrated, the enterprise is visited too");
    assert_eq!(due_of(&visits[0])?, cal.add_working_days(ten, 5));
    let applicant = h.applicant();
    let late_rating = h
        .client
        .clone()
        .rate_outcome(rating(&app, pb::Rating::Satisfied, &applicant))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(late_rating, Some(Code::FailedPrecondition));
    Ok(())
}

/// 分类交办 / 协调会商 (a v2 of the matter that names its assignment stage): the clerk approving the assignment stage chooses the
/// handling departments, which then work in parallel; elsewhere, or with v1, it is refused.
async fn assigning_clerk_chooses_the_handling_departments(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    // v2: the shipped v1 with an assignment stage.
    let v1 = std::fs::read_to_string(
        tongban_testkit::deploy_dir().join("matters/service.enterprise_request.v1.toml"),
    )?;
    let v2 = v1.replacen("version = 1", "version = 2", 1).replacen(
        "[request]\n",
        "[request]\nassign_stage = \"assign\"\n",
        1,
    );
    h.client
        .clone()
        .publish_definition(authed(publish(&v2, "assign-v2"), &h.admin()))
        .await?;
    let mut snap = request_snapshot()?;
    snap.matter_version = 2;
    let app = h.submit(snap).await?;
    let accept = h.stage(&app, "accept", 1).await?.remove(0);
    let decide = |t: &pb::Task, departments: &[&str]| pb::DecideTaskRequest {
        task_id: t.task_id.clone(),
        decision: pb::Decision::Approve as i32,
        comment: "交办".into(),
        expected_version: t.version,
        requested_materials: vec![],
        assign_departments: departments.iter().map(|d| d.to_string()).collect(),
    };
    let clerk = h.clerk("business_env");
    let mut client = h.client.clone();
    let field = |s: tonic::Status| {
        assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
        s.get_details_bad_request()
            .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
            .unwrap_or_default()
    };
    let at_accept = client
        .decide_task(authed(decide(&accept, &["water"]), &clerk))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("assigned at the accept stage"))?;
    assert_eq!(field(at_accept), "assign_departments");
    h.decide(&accept, pb::Decision::Approve, "受理").await?;
    let assign = h.stage(&app, "assign", 1).await?.remove(0);
    let unknown = client
        .decide_task(authed(decide(&assign, &["water", "nowhere"]), &clerk))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("assigned an unknown department"))?;
    assert_eq!(field(unknown), "assign_departments[1]");
    let twice = client
        .decide_task(authed(decide(&assign, &["water", "water"]), &clerk))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("assigned a department twice"))?;
    assert_eq!(field(twice), "assign_departments[1]");
    client
        .decide_task(authed(decide(&assign, &["eco_env", "water"]), &clerk))
        .await?;
    let mut handle = h.stage(&app, "handle", 2).await?;
    handle.sort_by(|a, b| a.department.cmp(&b.department));
    assert_eq!(
        handle
            .iter()
            .map(|t| (t.department.as_str(), t.office.as_str()))
            .collect::<Vec<_>>(),
        [("eco_env", "eco_env.songyuan"), ("water", "")],
        "eco_env keeps the township routing; water joins in parallel"
    );
    assert!(
        audit(&h, &app)
            .await?
            .iter()
            .any(|e| e.action == "assign" && e.reason == "eco_env,water")
    );
    // Both must finish before the feedback stage opens (协调会商).
    h.decide(&handle[0], pb::Decision::Approve, "已办").await?;
    assert_eq!(h.stage(&app, "handle", 1).await?[0].department, "water");
    h.decide(&handle[1], pb::Decision::Approve, "已办").await?;
    h.stage(&app, "feedback", 1).await?;

    // v1 assigns nothing.
    let v1 = h.submit(request_snapshot()?).await?;
    h.approve_stage(&v1, "accept", 1).await?;
    let assign = h.stage(&v1, "assign", 1).await?.remove(0);
    let refused = client
        .decide_task(authed(decide(&assign, &["water"]), &clerk))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("v1 assigned"))?;
    assert_eq!(field(refused), "assign_departments");
    Ok(())
}

tongban_testkit::on_both!(
    assigning_clerk_chooses_the_handling_departments,
    request_reopens_when_unsatisfied_and_closes_when_satisfied,
    request_escalates_to_the_supervising_department,
    request_is_held_to_its_answer_deadline_and_closes_unrated,
);
