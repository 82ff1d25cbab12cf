//! The authorization matrix over approval's RPCs: every RPC × every role × own and other
//! scope, asserting the status code and that nothing changed (tasks, audit trail).
//!
//! A call the table allows is made so that it stops right after the decision without writing
//! (a stale `expected_version`, an unparsable definition, rating an application that is not a
//! request), so allowed cells answer ABORTED, INVALID_ARGUMENT or FAILED_PRECONDITION and
//! denied ones PERMISSION_DENIED.

use crate::common::*;

/// Another enterprise, with a valid check digit.
const OTHER: &str = "91440300708461136T";

async fn authorization_matrix(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let app = h.submit(snapshot()?).await?;
    let task = h.stage(&app, "acceptance", 1).await?.remove(0);
    assert_eq!(task.department, "admin_approval");
    let before_tasks = h.tasks(&app, &[]).await?;
    let before_audit = audit(&h, &app).await?.len();
    let k = &h.keys;
    let deny = Some(Code::PermissionDenied);
    // PERMISSION_DENIED answers, each of which must be on the service's audit chain.
    let mut refused = 0usize;

    // (label, token, expected code per RPC; None = OK).
    struct Cell {
        label: &'static str,
        token: String,
        list_tasks: Option<Code>,
        work: Option<Code>,
        workflow: Option<Code>,
        audit: Option<Code>,
        publish: Option<Code>,
        rate: Option<Code>,
    }
    let work_ok = Some(Code::Aborted);
    let cells = vec![
        Cell {
            label: "applicant (own)",
            token: h.applicant(),
            list_tasks: deny,
            work: deny,
            workflow: None,
            audit: deny,
            publish: deny,
            rate: Some(Code::FailedPrecondition),
        },
        Cell {
            label: "applicant (other)",
            token: k.token(Role::Applicant, None, Some(OTHER)),
            list_tasks: deny,
            work: deny,
            workflow: deny,
            audit: deny,
            publish: deny,
            rate: deny,
        },
        Cell {
            label: "clerk (own department)",
            token: h.clerk("admin_approval"),
            list_tasks: None,
            work: work_ok,
            workflow: None,
            audit: None,
            publish: deny,
            rate: deny,
        },
        Cell {
            label: "clerk (other department)",
            token: h.clerk("business_env"),
            list_tasks: deny,
            work: deny,
            workflow: deny,
            audit: deny,
            publish: deny,
            rate: deny,
        },
        Cell {
            label: "supervisor (own department)",
            token: k.token(Role::Supervisor, Some("admin_approval"), None),
            list_tasks: None,
            work: work_ok,
            workflow: None,
            audit: None,
            publish: deny,
            rate: deny,
        },
        Cell {
            label: "supervisor (other department)",
            token: k.token(Role::Supervisor, Some("business_env"), None),
            list_tasks: deny,
            work: deny,
            workflow: deny,
            audit: deny,
            publish: deny,
            rate: deny,
        },
        Cell {
            label: "integrator (registered)",
            token: k.token(Role::Integrator, None, None),
            list_tasks: deny,
            work: deny,
            workflow: None,
            audit: None,
            publish: deny,
            rate: deny,
        },
        Cell {
            label: "integrator (unregistered)",
            token: k.token(Role::Integrator, Some("unregistered"), None),
            list_tasks: deny,
            work: deny,
            workflow: deny,
            audit: deny,
            publish: deny,
            rate: deny,
        },
        Cell {
            label: "admin",
            token: h.admin(),
            list_tasks: None,
            work: work_ok,
            workflow: None,
            audit: None,
            publish: Some(Code::InvalidArgument),
            rate: deny,
        },
    ];

    let code = |r: Result<(), tonic::Status>| r.err().map(|s| s.code());
    for c in &cells {
        let mut client = h.client.clone();
        let t = &c.token;
        let r = client
            .list_tasks(authed(
                pb::ListTasksRequest {
                    department: "admin_approval".into(),
                    ..Default::default()
                },
                t,
            ))
            .await
            .map(|_| ());
        assert_eq!(code(r), c.list_tasks, "ListTasks by {}", c.label);
        refused += usize::from(c.list_tasks == deny);
        // The supervision ledger is read by the same people as the task lists.
        let r = client
            .list_ledger_items(authed(
                pb::ListLedgerItemsRequest {
                    unit: "admin_approval".into(),
                    ..Default::default()
                },
                t,
            ))
            .await
            .map(|_| ());
        assert_eq!(code(r), c.list_tasks, "ListLedgerItems by {}", c.label);
        refused += usize::from(c.list_tasks == deny);
        let r = client
            .claim_task(authed(
                pb::ClaimTaskRequest {
                    task_id: task.task_id.clone(),
                    expected_version: 999,
                },
                t,
            ))
            .await
            .map(|_| ());
        assert_eq!(code(r), c.work, "ClaimTask by {}", c.label);
        refused += usize::from(c.work == deny);
        let r = client
            .decide_task(authed(
                pb::DecideTaskRequest {
                    task_id: task.task_id.clone(),
                    decision: pb::Decision::Approve as i32,
                    expected_version: 999,
                    ..Default::default()
                },
                t,
            ))
            .await
            .map(|_| ());
        assert_eq!(code(r), c.work, "DecideTask by {}", c.label);
        refused += usize::from(c.work == deny);
        let r = client
            .delegate_task(authed(
                pb::DelegateTaskRequest {
                    task_id: task.task_id.clone(),
                    assignee: "someone".into(),
                    expected_version: 999,
                    ..Default::default()
                },
                t,
            ))
            .await
            .map(|_| ());
        assert_eq!(code(r), c.work, "DelegateTask by {}", c.label);
        refused += usize::from(c.work == deny);
        let r = client
            .get_workflow(authed(
                pb::GetWorkflowRequest {
                    application_id: app.clone(),
                },
                t,
            ))
            .await
            .map(|_| ());
        assert_eq!(code(r), c.workflow, "GetWorkflow by {}", c.label);
        refused += usize::from(c.workflow == deny);
        let r = client
            .get_audit_trail(authed(
                pb::GetAuditTrailRequest {
                    application_id: app.clone(),
                },
                t,
            ))
            .await
            .map(|_| ());
        assert_eq!(code(r), c.audit, "GetAuditTrail by {}", c.label);
        refused += usize::from(c.audit == deny);
        let r = client
            .list_definitions(authed(pb::ListDefinitionsRequest::default(), t))
            .await
            .map(|_| ());
        assert_eq!(code(r), None, "ListDefinitions by {}", c.label);
        let r = client
            .publish_definition(authed(publish("not toml [", ""), t))
            .await
            .map(|_| ());
        assert_eq!(code(r), c.publish, "PublishDefinition by {}", c.label);
        refused += usize::from(c.publish == deny);
        let r = client
            .rate_outcome(authed(
                pb::RateOutcomeRequest {
                    application_id: app.clone(),
                    rating: pb::Rating::Satisfied as i32,
                    comment: String::new(),
                },
                t,
            ))
            .await
            .map(|_| ());
        assert_eq!(code(r), c.rate, "RateOutcome by {}", c.label);
        refused += usize::from(c.rate == deny);
        // 好差评 is the applicant's alone, like RateOutcome; the application is not finished.
        let r = client
            .rate_service(authed(
                pb::RateServiceRequest {
                    application_id: app.clone(),
                    score: 5,
                    ..Default::default()
                },
                t,
            ))
            .await
            .map(|_| ());
        assert_eq!(code(r), c.rate, "RateService by {}", c.label);
        refused += usize::from(c.rate == deny);
    }

    // Nothing changed.
    let after_tasks = h.tasks(&app, &[]).await?;
    assert_eq!(
        after_tasks
            .iter()
            .map(|t| (&t.task_id, t.version, t.status, &t.assignee))
            .collect::<Vec<_>>(),
        before_tasks
            .iter()
            .map(|t| (&t.task_id, t.version, t.status, &t.assignee))
            .collect::<Vec<_>>()
    );
    assert_eq!(audit(&h, &app).await?.len(), before_audit);
    // Every refusal is on approval's own chain, naming the actor.
    assert!(refused > 0);
    tongban_testkit::refusals_recorded(&h.db, "approval", refused).await?;
    Ok(())
}

/// A task someone else claimed: a clerk of the department who is not its assignee may not
/// delegate it, and nothing changes; a supervisor of the department may.
async fn delegating_someone_elses_claim(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let app = h.submit(snapshot()?).await?;
    let task = h.stage(&app, "acceptance", 1).await?.remove(0);
    let mut client = h.client.clone();
    let supervisor = h.keys.token(Role::Supervisor, Some("admin_approval"), None);
    let delegate = |token: &str, to: &str, version: i64| {
        authed(
            pb::DelegateTaskRequest {
                task_id: task.task_id.clone(),
                assignee: to.into(),
                expected_version: version,
                ..Default::default()
            },
            token,
        )
    };
    let held = client
        .delegate_task(delegate(&supervisor, "clerk-z", task.version))
        .await?
        .into_inner()
        .task
        .unwrap_or_default();
    assert_eq!(held.assignee, "clerk-z");
    let err = client
        .delegate_task(delegate(
            &h.clerk("admin_approval"),
            "clerk-y",
            held.version,
        ))
        .await
        .err();
    assert_eq!(err.as_ref().map(|e| e.code()), Some(Code::PermissionDenied));
    assert_eq!(
        err.as_ref().map(reason).as_deref(),
        Some("PERMISSION_DENIED")
    );
    let still = h
        .tasks(&app, &[])
        .await?
        .into_iter()
        .find(|t| t.task_id == task.task_id)
        .unwrap_or_default();
    assert_eq!(
        (still.assignee.as_str(), still.version),
        ("clerk-z", held.version)
    );
    let moved = client
        .delegate_task(delegate(&supervisor, "clerk-y", held.version))
        .await?
        .into_inner()
        .task
        .unwrap_or_default();
    assert_eq!(moved.assignee, "clerk-y");
    Ok(())
}

tongban_testkit::on_both!(authorization_matrix, delegating_someone_elses_claim);
