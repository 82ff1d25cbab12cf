//! Approval over real gRPC (see `common` for the harness). The staff task API: delegation rules and paged task lists.

use crate::common::*;

async fn delegate_task_rules(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let app = h.submit(snapshot()?).await?;
    let t = h.stage(&app, "acceptance", 1).await?.remove(0);
    assert_eq!(t.department, "admin_approval");
    let mut client = h.client.clone();
    let delegate = |version: i64, assignee: &str, department: &str, token: &str| {
        authed(
            pb::DelegateTaskRequest {
                task_id: t.task_id.clone(),
                assignee: assignee.into(),
                department: department.into(),
                reason: "休假".into(),
                expected_version: version,
            },
            token,
        )
    };
    let clerk = h.clerk("admin_approval");

    // A clerk hands it to a colleague of the same department.
    let to_colleague = client
        .delegate_task(delegate(t.version, "clerk-b", "", &clerk))
        .await?
        .into_inner()
        .task
        .unwrap_or_default();
    assert_eq!(to_colleague.assignee, "clerk-b");
    assert_eq!(to_colleague.status(), pb::TaskStatus::Claimed);
    assert_eq!(to_colleague.department, "admin_approval");
    assert_eq!(to_colleague.version, t.version + 1);
    // Now clerk-b holds it: the first clerk may no longer hand it on, and nothing changes.
    let taken = client
        .delegate_task(delegate(to_colleague.version, "clerk-c", "", &clerk))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(taken, Some(Code::PermissionDenied));
    let supervisor = h.keys.token(Role::Supervisor, Some("admin_approval"), None);
    // The department's supervisor may; naming its own department is not a move.
    let same = client
        .delegate_task(delegate(
            to_colleague.version,
            "clerk-c",
            "admin_approval",
            &supervisor,
        ))
        .await?
        .into_inner()
        .task
        .unwrap_or_default();
    assert_eq!(same.assignee, "clerk-c");
    assert_eq!(same.department, "admin_approval");

    // A clerk may not move it to another department.
    let denied = client
        .delegate_task(delegate(same.version, "eco-clerk", "eco_env", &clerk))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(denied, Some(Code::PermissionDenied));

    // A stale version is refused.
    let stale = client
        .delegate_task(delegate(t.version, "clerk-d", "", &supervisor))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(stale, Some(Code::Aborted));

    // A supervisor moves it.
    let moved = client
        .delegate_task(delegate(same.version, "eco-clerk", "eco_env", &supervisor))
        .await?
        .into_inner()
        .task
        .unwrap_or_default();
    assert_eq!(moved.department, "eco_env");
    assert_eq!(moved.assignee, "eco-clerk");
    assert_eq!(moved.status(), pb::TaskStatus::Claimed);

    // The move, and only the move, is an event (committed with it through the outbox): the
    // other services widen the application's scope to the new department from it.
    let event = h.event(&app, "task.moved", 1).await?;
    match event.payload {
        Some(Payload::TaskMoved(m)) => {
            assert_eq!(m.task_id, t.task_id);
            assert_eq!(m.from_department, "admin_approval");
            assert_eq!(m.department, "eco_env");
            assert_eq!(m.office, "");
        }
        other => anyhow::bail!("task.moved carries {other:?}"),
    }
    assert_eq!(
        h.count("SELECT COUNT(*) AS n FROM outbox WHERE routing_key = 'task.moved'")
            .await,
        1
    );

    // The listing shows the delegate as assignee, in the new department.
    let listed = h
        .tasks(&app, &[])
        .await?
        .into_iter()
        .find(|x| x.task_id == t.task_id)
        .ok_or_else(|| anyhow::anyhow!("task not listed"))?;
    assert_eq!(listed.assignee, "eco-clerk");
    assert_eq!(listed.department, "eco_env");
    assert_eq!(listed.version, moved.version);
    let mine = client
        .list_tasks(authed(
            pb::ListTasksRequest {
                assignee: "eco-clerk".into(),
                department: "eco_env".into(),
                ..Default::default()
            },
            &h.admin(),
        ))
        .await?
        .into_inner()
        .tasks;
    assert_eq!(
        mine.iter().map(|x| x.task_id.as_str()).collect::<Vec<_>>(),
        [t.task_id.as_str()]
    );

    // The audit trail records each hand-over, and not the refused ones.
    let delegations: Vec<_> = audit(&h, &app)
        .await?
        .into_iter()
        .filter(|e| e.action == "delegate" && e.task_id == t.task_id)
        .collect();
    let reasons: Vec<_> = delegations.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "to clerk-b; 休假",
            "to clerk-c@admin_approval; 休假",
            "to eco-clerk@eco_env; 休假"
        ]
    );
    assert_eq!(
        delegations[2].role,
        "supervisor".to_string(),
        "{:?}",
        delegations[2]
    );
    assert_eq!(delegations[2].department, "eco_env");
    Ok(())
}

async fn list_tasks_pages_without_gaps_or_repeats(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    // Joint review with water intake: four tasks, three of them with the same deadline (ties
    // on due time are broken by task id), plus another application's acceptance task.
    let mut water = snapshot()?;
    if let Some(f) = water.form.as_mut() {
        f.fields.insert(
            "uses_water_intake".into(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::BoolValue(true)),
            },
        );
    }
    let first = h.submit(water).await?;
    h.approve_stage(&first, "acceptance", 1).await?;
    let joint = h.stage(&first, "joint_review", 4).await?;
    let mut dues: Vec<_> = joint.iter().map(due_of).collect::<anyhow::Result<_>>()?;
    dues.sort();
    dues.dedup();
    assert_eq!(dues.len(), 2, "three 24-hour reviews share a deadline");
    let second = h.submit(snapshot()?).await?;
    h.stage(&second, "acceptance", 1).await?;

    let all = h
        .client
        .clone()
        .list_tasks(authed(pb::ListTasksRequest::default(), &h.admin()))
        .await?
        .into_inner();
    assert_eq!(all.tasks.len(), 5);
    assert!(all.next_page_token.is_empty());

    let mut paged = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = h
            .client
            .clone()
            .list_tasks(authed(
                pb::ListTasksRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    ..Default::default()
                },
                &h.admin(),
            ))
            .await?
            .into_inner();
        pages += 1;
        assert!(page.tasks.len() <= 2);
        paged.extend(page.tasks);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    let ids = |ts: &[pb::Task]| ts.iter().map(|t| t.task_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&paged), ids(&all.tasks), "same tasks, same order");
    let mut distinct = ids(&paged);
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "no repeats");
    let order: Vec<_> = paged
        .iter()
        .map(|t| due_of(t).map(|d| (d, t.task_id.clone())))
        .collect::<anyhow::Result<_>>()?;
    assert!(order.windows(2).all(|w| w[0] < w[1]), "soonest due first");

    let bad = h
        .client
        .clone()
        .list_tasks(authed(
            pb::ListTasksRequest {
                page_size: 2,
                page_token: "not-a-token".into(),
                ..Default::default()
            },
            &h.admin(),
        ))
        .await
        .err();
    assert_eq!(bad.as_ref().map(|e| e.code()), Some(Code::InvalidArgument));
    assert_eq!(
        bad.as_ref().map(reason).as_deref(),
        Some("INVALID_ARGUMENT")
    );
    assert_eq!(
        bad.as_ref()
            .and_then(|e| e.get_details_bad_request())
            .map(|b| b
                .field_violations
                .into_iter()
                .map(|v| v.field)
                .collect::<Vec<_>>()),
        Some(vec!["page_token".to_string()])
    );
    Ok(())
}

tongban_testkit::on_both!(
    delegate_task_rules,
    list_tasks_pages_without_gaps_or_repeats,
);
