//! Approval over real gRPC (see `common` for the harness). Applications through their workflow: joint review, rejection, credit-class paths,
//! approval on pledge with its follow-ups, and a supplement that pauses a stage.

use crate::common::*;

async fn joint_review_then_decision_approves(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let app = h.submit(snapshot()?).await?;
    h.approve_stage(&app, "acceptance", 1).await?;
    let joint = h.approve_stage(&app, "joint_review", 3).await?;
    let eco = joint
        .iter()
        .find(|t| t.department == "eco_env")
        .ok_or_else(|| anyhow::anyhow!("no eco_env task"))?;
    // The example's applicant is registered in Songyuan (350724100) and builds in Zhengdun
    // (site_region 350724101): the review follows the project site.
    assert_eq!(
        eco.office, "eco_env.zhengdun",
        "routed by the project site, not the applicant's region"
    );
    h.approve_stage(&app, "decision", 1).await?;
    let approved = h.event(&app, "application.approved", 1).await?;
    let Some(Payload::ApplicationApproved(a)) = approved.payload else {
        anyhow::bail!("wrong payload")
    };
    assert!(
        a.decision_number.starts_with("松环审〔") && a.decision_number.ends_with("〕1号"),
        "{}",
        a.decision_number
    );
    assert!(!a.on_pledge);
    assert_eq!(a.department, "eco_env");
    h.event(&app, "task.created", 5).await?;
    h.event(&app, "task.decided", 5).await?;
    let wf = h.workflow(&app).await?;
    assert_eq!(wf.status(), pb::WorkflowStatus::Approved);
    assert_eq!(wf.definition_version, 1);
    let states: Vec<_> = wf
        .stages
        .iter()
        .map(|s| (s.stage_id.as_str(), s.state()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("acceptance", pb::StageState::Done),
            ("joint_review", pb::StageState::Done),
            ("extra_review", pb::StageState::Skipped),
            ("decision", pb::StageState::Done)
        ]
    );
    // A decided task cannot be decided again.
    let again = h.decide(eco, pb::Decision::Approve, "").await.err();
    assert_eq!(
        again.as_ref().map(|e| e.code()),
        Some(Code::Aborted),
        "its version moved on"
    );
    assert_eq!(again.as_ref().map(reason).as_deref(), Some("STALE_VERSION"));
    Ok(())
}

async fn any_reject_rejects_and_cancels_the_rest(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let app = h.submit(snapshot()?).await?;
    h.approve_stage(&app, "acceptance", 1).await?;
    let joint = h.stage(&app, "joint_review", 3).await?;
    let err = h
        .decide(&joint[0], pb::Decision::Reject, " ")
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("accepted"))?;
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<String> = err
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert_eq!(fields, vec!["comment"]);
    // A clerk of another department may not decide it.
    let req = pb::DecideTaskRequest {
        task_id: joint[0].task_id.clone(),
        decision: pb::Decision::Approve as i32,
        expected_version: joint[0].version,
        ..Default::default()
    };
    let other = if joint[0].department == "water" {
        "dev_reform"
    } else {
        "water"
    };
    let denied = h
        .client
        .decide_task(authed(req, &h.clerk(other)))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(denied, Some(Code::PermissionDenied));

    h.decide(&joint[0], pb::Decision::Approve, "").await?;
    h.decide(&joint[1], pb::Decision::Reject, "不符合产业政策")
        .await?;
    let rejected = h.event(&app, "application.rejected", 1).await?;
    let Some(Payload::ApplicationRejected(r)) = rejected.payload else {
        anyhow::bail!("wrong payload")
    };
    assert_eq!(r.reason, "不符合产业政策");
    let cancelled = h.tasks(&app, &[pb::TaskStatus::Cancelled]).await?;
    assert_eq!(
        cancelled
            .iter()
            .map(|t| t.task_id.clone())
            .collect::<Vec<_>>(),
        vec![joint[2].task_id.clone()]
    );
    assert_eq!(
        h.workflow(&app).await?.status(),
        pb::WorkflowStatus::Rejected
    );
    // Deciding a cancelled task is a failed precondition.
    let closed = h
        .decide(&cancelled[0], pb::Decision::Approve, "")
        .await
        .err();
    assert_eq!(
        closed.as_ref().map(|e| e.code()),
        Some(Code::FailedPrecondition)
    );
    assert_eq!(
        closed.as_ref().map(reason).as_deref(),
        Some("FAILED_PRECONDITION")
    );
    Ok(())
}

async fn credit_class_d_adds_extra_review(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let app = h
        .submit(with_class(snapshot()?, common::CreditClass::D))
        .await?;
    h.approve_stage(&app, "acceptance", 1).await?;
    h.approve_stage(&app, "joint_review", 3).await?;
    let extra = h.approve_stage(&app, "extra_review", 2).await?;
    let mut depts: Vec<_> = extra.iter().map(|t| t.department.as_str()).collect();
    depts.sort();
    assert_eq!(depts, vec!["eco_env", "market_regulation"]);
    h.approve_stage(&app, "decision", 1).await?;
    h.event(&app, "application.approved", 1).await?;
    Ok(())
}

async fn pledge_a_skips_review_and_follows_up(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let mut snap = with_class(snapshot()?, common::CreditClass::A);
    snap.pledge = Some(common::Pledge {
        signed: true,
        statement: "本单位承诺符合审批条件".into(),
    });
    let due = chrono::Utc::now() + chrono::Duration::days(20);
    snap.owed_materials = vec![common::OwedMaterial {
        material_kind: "land_use_certificate".into(),
        due_time: Some(tongban_proto::time::ts(due)),
        fulfilled_time: None,
        statement: "15个工作日内补交".into(),
    }];
    let app = h.submit(snap).await?;
    // Approved at once: no review task is ever created.
    let approved = h.event(&app, "application.approved", 1).await?;
    let Some(Payload::ApplicationApproved(a)) = approved.payload else {
        anyhow::bail!("wrong payload")
    };
    assert!(a.on_pledge);
    let wf = h.workflow(&app).await?;
    assert_eq!(wf.status(), pb::WorkflowStatus::Approved);
    assert!(
        wf.stages
            .iter()
            .all(|s| s.state() == pb::StageState::Skipped && s.tasks.is_empty()),
        "{:?}",
        wf.stages
    );
    let verify = wf
        .follow_ups
        .iter()
        .find(|t| t.kind() == pb::TaskKind::VerifyPledge)
        .ok_or_else(|| anyhow::anyhow!("no verify task"))?;
    assert_eq!(verify.department, "eco_env");
    assert_eq!(verify.status(), pb::TaskStatus::Open);
    let owed = wf
        .follow_ups
        .iter()
        .find(|t| t.kind() == pb::TaskKind::FollowUpMaterial)
        .ok_or_else(|| anyhow::anyhow!("no follow-up"))?;
    assert_eq!(
        owed.due_time.as_ref().map(|t| t.seconds),
        Some(due.timestamp())
    );

    // A desk that asks for one kind sees only that kind; an unknown kind names the field.
    let only = |kinds: Vec<i32>| pb::ListTasksRequest {
        application_id: app.clone(),
        kinds,
        ..Default::default()
    };
    let verifying = h
        .client
        .clone()
        .list_tasks(authed(
            only(vec![pb::TaskKind::VerifyPledge as i32]),
            &h.admin(),
        ))
        .await?
        .into_inner()
        .tasks;
    assert_eq!(verifying.len(), 1, "{verifying:?}");
    assert_eq!(verifying[0].task_id, verify.task_id);
    let reviews = h
        .client
        .clone()
        .list_tasks(authed(only(vec![pb::TaskKind::Review as i32]), &h.admin()))
        .await?
        .into_inner()
        .tasks;
    assert!(reviews.is_empty(), "{reviews:?}");
    let bad = h
        .client
        .clone()
        .list_tasks(authed(only(vec![99]), &h.admin()))
        .await
        .expect_err("unknown kind");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("kinds[0]"), "{}", bad.message());

    let supplied = tongban_outbox::new_envelope(
        "intake",
        &app,
        Payload::ApplicationSupplemented(events::ApplicationSupplemented {
            fulfilled_kinds: vec!["land_use_certificate".into()],
            ..Default::default()
        }),
    );
    h.publish(&[&supplied]).await?;
    eventually(WAIT, "owed material done", || async {
        let t = h.tasks(&app, &[pb::TaskStatus::Done]).await.ok()?;
        t.iter()
            .any(|t| t.kind() == pb::TaskKind::FollowUpMaterial)
            .then_some(())
    })
    .await?;
    Ok(())
}

/// 告知承诺制's consequence: a rejected verification revokes the approval.
async fn rejected_pledge_verification_revokes(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let mut snap = with_class(snapshot()?, common::CreditClass::A);
    snap.pledge = Some(common::Pledge {
        signed: true,
        statement: "本单位承诺符合审批条件".into(),
    });
    let app = h.submit(snap).await?;
    h.event(&app, "application.approved", 1).await?;
    let wf = h.workflow(&app).await?;
    let verify = wf
        .follow_ups
        .iter()
        .find(|t| t.kind() == pb::TaskKind::VerifyPledge)
        .ok_or_else(|| anyhow::anyhow!("no verify task"))?
        .clone();
    h.decide(
        &verify,
        pb::Decision::Reject,
        "现场核查：实际建设地点与承诺不符",
    )
    .await?;
    let revoked = h.event(&app, "application.revoked", 1).await?;
    let Some(Payload::ApplicationRevoked(r)) = revoked.payload else {
        anyhow::bail!("wrong payload")
    };
    assert_eq!(r.reason, "现场核查：实际建设地点与承诺不符");
    assert_eq!(r.department, "eco_env");
    assert_eq!(r.task_id, verify.task_id);
    let trail = audit(&h, &app).await?;
    assert!(trail.iter().any(|e| e.action == "revoked"), "{trail:?}");
    Ok(())
}

/// An approved verification revokes nothing.
async fn approved_pledge_verification_keeps_the_approval(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let mut snap = with_class(snapshot()?, common::CreditClass::A);
    snap.pledge = Some(common::Pledge {
        signed: true,
        statement: "本单位承诺符合审批条件".into(),
    });
    let app = h.submit(snap).await?;
    h.event(&app, "application.approved", 1).await?;
    let wf = h.workflow(&app).await?;
    let verify = wf
        .follow_ups
        .iter()
        .find(|t| t.kind() == pb::TaskKind::VerifyPledge)
        .ok_or_else(|| anyhow::anyhow!("no verify task"))?
        .clone();
    h.decide(&verify, pb::Decision::Approve, "核查属实").await?;
    // The decision and any revocation are enqueued in one transaction.
    let revoked = format!(
        "SELECT COUNT(*) AS n FROM outbox WHERE routing_key = 'application.revoked' AND application_id = '{app}'"
    );
    assert_eq!(h.count(&revoked).await, 0);
    let decided = format!(
        "SELECT COUNT(*) AS n FROM outbox WHERE routing_key = 'task.decided' AND application_id = '{app}'"
    );
    assert!(h.count(&decided).await >= 1);
    Ok(())
}

/// An unknown credit class (the registry did not know the code) with a signed pledge gets the
/// full review, never the pledge path.
async fn unknown_class_with_pledge_gets_full_review(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let mut snap = with_class(snapshot()?, common::CreditClass::Unspecified);
    snap.pledge = Some(common::Pledge {
        signed: true,
        statement: "本单位承诺符合审批条件".into(),
    });
    let app = h.submit(snap).await?;
    h.stage(&app, "acceptance", 1).await?;
    let wf = h.workflow(&app).await?;
    assert_eq!(wf.status(), pb::WorkflowStatus::Running);
    assert!(
        wf.follow_ups
            .iter()
            .all(|t| t.kind() != pb::TaskKind::VerifyPledge)
    );
    Ok(())
}

async fn supplement_pauses_and_resumes(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let app = h.submit(snapshot()?).await?;
    let t = h.stage(&app, "acceptance", 1).await?.remove(0);
    let mut client = h.client.clone();
    let claimed = client
        .claim_task(authed(
            pb::ClaimTaskRequest {
                task_id: t.task_id.clone(),
                expected_version: t.version,
            },
            &h.clerk("admin_approval"),
        ))
        .await?
        .into_inner()
        .task
        .unwrap_or_default();
    assert_eq!(claimed.status(), pb::TaskStatus::Claimed);
    let req = pb::DecideTaskRequest {
        task_id: t.task_id.clone(),
        decision: pb::Decision::RequestSupplement as i32,
        comment: "请补交用地证明".into(),
        expected_version: claimed.version,
        requested_materials: vec!["land_use_certificate".into()],
        assign_departments: vec![],
    };
    client
        .decide_task(authed(req, &h.clerk("admin_approval")))
        .await?;
    let asked = h.event(&app, "application.supplement_requested", 1).await?;
    assert!(
        matches!(asked.payload, Some(Payload::SupplementRequested(ref s)) if s.task_id == t.task_id && s.requested_materials == ["land_use_certificate"])
    );
    assert_eq!(
        h.workflow(&app).await?.status(),
        pb::WorkflowStatus::WaitingSupplement
    );

    let supplied = tongban_outbox::new_envelope(
        "intake",
        &app,
        Payload::ApplicationSupplemented(events::ApplicationSupplemented {
            note: "已补交".into(),
            ..Default::default()
        }),
    );
    h.publish(&[&supplied]).await?;
    let reopened = h.stage(&app, "acceptance", 1).await?.remove(0);
    assert_eq!(reopened.task_id, t.task_id);
    assert!(reopened.version > claimed.version + 1, "a new version");
    assert_eq!(reopened.status(), pb::TaskStatus::Open);
    assert_eq!(
        h.workflow(&app).await?.status(),
        pb::WorkflowStatus::Running
    );
    h.decide(&reopened, pb::Decision::Approve, "").await?;
    h.stage(&app, "joint_review", 3).await?;
    Ok(())
}

/// The same applicant building in its own township: the site decides, so the Songyuan station
/// reviews; and an application without the site (from before the field existed, or another
/// producer) falls back to the applicant's region.
async fn township_routing_follows_the_site(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let mut at_home = snapshot()?;
    let mut registered_in_zhengdun = snapshot()?;
    if let Some(f) = at_home.form.as_mut() {
        f.fields.insert("site_region".into(), text("350724100"));
    }
    if let Some(f) = registered_in_zhengdun.form.as_mut() {
        f.fields.remove("site_region");
    }
    if let Some(a) = registered_in_zhengdun.applicant.as_mut() {
        a.region_code = "350724101".into();
    }
    for (snap, office) in [
        (at_home, "eco_env.songyuan"),
        (registered_in_zhengdun, "eco_env.zhengdun"),
    ] {
        let app = h.submit(snap).await?;
        h.approve_stage(&app, "acceptance", 1).await?;
        let joint = h.stage(&app, "joint_review", 3).await?;
        let eco = joint
            .iter()
            .find(|t| t.department == "eco_env")
            .ok_or_else(|| anyhow::anyhow!("no eco_env task"))?;
        assert_eq!(eco.office, office);
        assert!(
            joint
                .iter()
                .filter(|t| t.department != "eco_env")
                .all(|t| t.office.is_empty()),
            "only region-routed tasks get an office"
        );
    }
    Ok(())
}

tongban_testkit::on_both!(
    township_routing_follows_the_site,
    joint_review_then_decision_approves,
    any_reject_rejects_and_cancels_the_rest,
    credit_class_d_adds_extra_review,
    pledge_a_skips_review_and_follows_up,
    rejected_pledge_verification_revokes,
    approved_pledge_verification_keeps_the_approval,
    unknown_class_with_pledge_gets_full_review,
    supplement_pauses_and_resumes,
);
