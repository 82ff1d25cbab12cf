//! Approval over real gRPC (see `common` for the harness). The supervision ledger: items open
//! and close with the work they track (an overdue task, an owed material, a pledge
//! verification, an enterprise request), filters and paging, who may read it. What depends on
//! the time is read through a second engine whose clock is set past the deadlines.

use tongban_approval::requests::{Decide, ListLedger};

use crate::common::*;

fn list(req: pb::ListLedgerItemsRequest) -> anyhow::Result<ListLedger> {
    Ok(ListLedger::try_from(req)?)
}

async fn grpc_list(
    h: &Harness,
    req: pb::ListLedgerItemsRequest,
    token: &str,
) -> Result<pb::ListLedgerItemsResponse, tonic::Status> {
    Ok(h.client
        .clone()
        .list_ledger_items(authed(req, token))
        .await?
        .into_inner())
}

fn ids(items: &[tongban_approval::ledger::LedgerItem]) -> Vec<String> {
    items.iter().map(|i| i.id.to_string()).collect()
}

async fn ledger_tracks_pledges_and_owed_materials(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let mut snap = with_class(snapshot()?, common::CreditClass::A);
    snap.pledge = Some(common::Pledge {
        signed: true,
        statement: "本单位承诺符合审批条件".into(),
    });
    let owed_due = chrono::Utc::now() + chrono::Duration::days(20);
    snap.owed_materials = vec![common::OwedMaterial {
        material_kind: "land_use_certificate".into(),
        due_time: Some(tongban_proto::time::ts(owed_due)),
        fulfilled_time: None,
        statement: "15个工作日内补交".into(),
    }];
    let app = h.submit(snap).await?;
    h.event(&app, "application.approved", 1).await?;
    let wf = h.workflow(&app).await?;
    let follow_up = |kind: pb::TaskKind| {
        wf.follow_ups
            .iter()
            .find(|t| t.kind() == kind)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no {kind:?}"))
    };
    let verify = follow_up(pb::TaskKind::VerifyPledge)?;
    let owed = follow_up(pb::TaskKind::FollowUpMaterial)?;

    // Now: the pledge verification is on the ledger from the approval; the owed material is
    // not (its deadline is ahead).
    let admin = h.admin();
    let now = grpc_list(&h, Default::default(), &admin).await?;
    assert_eq!(now.items.len(), 1, "{:?}", now.items);
    let item = &now.items[0];
    let pledge_id = format!("pledge:{}", verify.task_id);
    assert_eq!(item.item_id, pledge_id);
    assert_eq!(item.kind(), pb::LedgerItemKind::PledgeVerification);
    assert_eq!(item.state(), pb::LedgerItemState::Open);
    assert_eq!(
        (item.application_id.as_str(), item.task_id.as_str()),
        (app.as_str(), verify.task_id.as_str())
    );
    assert_eq!(
        (item.responsible_unit.as_str(), item.handling_unit.as_str()),
        ("eco_env", "eco_env")
    );
    assert_eq!(item.open_time, verify.create_time);
    assert_eq!(item.due_time, verify.due_time);
    assert_eq!(
        (item.close_time.is_none(), item.closed_by.as_str()),
        (true, "")
    );

    // A day past the owed material's deadline: it is on the ledger too, since that deadline.
    let late = owed_due + chrono::Duration::days(1);
    let later = engine_at(&h, late).await?;
    let all = later
        .list_ledger(&identity(Role::Admin, None), list(Default::default())?)
        .await?;
    let owed_id = format!("owed:{}", owed.task_id);
    assert_eq!(ids(&all.items), [pledge_id.as_str(), owed_id.as_str()]);
    let owed_item = &all.items[1];
    assert_eq!(owed_item.opened_at, owed_due.timestamp_millis());
    assert!(owed_item.is_open());
    let owed_age = owed_item.age(later.calendar(), late.timestamp_millis());
    assert_eq!(
        owed_age,
        later.calendar().working_time_between(owed_due, late)
    );

    // Filters: by kind, by state, by age, by unit.
    let only_owed = later
        .list_ledger(
            &identity(Role::Admin, None),
            list(pb::ListLedgerItemsRequest {
                kinds: vec![pb::LedgerItemKind::OwedMaterial as i32],
                ..Default::default()
            })?,
        )
        .await?;
    assert_eq!(ids(&only_owed.items), [owed_id.as_str()]);
    let closed = later
        .list_ledger(
            &identity(Role::Admin, None),
            list(pb::ListLedgerItemsRequest {
                state: pb::LedgerItemState::Closed as i32,
                ..Default::default()
            })?,
        )
        .await?;
    assert!(closed.items.is_empty(), "{:?}", closed.items);
    let older = later
        .list_ledger(
            &identity(Role::Admin, None),
            list(pb::ListLedgerItemsRequest {
                min_age_working_hours: u32::try_from(owed_age.num_hours() + 1)?,
                ..Default::default()
            })?,
        )
        .await?;
    assert_eq!(
        ids(&older.items),
        [pledge_id.as_str()],
        "older than the owed one"
    );
    let clerk = identity(Role::Clerk, Some("eco_env"));
    let own = later.list_ledger(&clerk, list(Default::default())?).await?;
    assert_eq!(ids(&own.items), [pledge_id.as_str(), owed_id.as_str()]);
    let elsewhere = later
        .list_ledger(
            &identity(Role::Admin, None),
            list(pb::ListLedgerItemsRequest {
                unit: "market_reg".into(),
                ..Default::default()
            })?,
        )
        .await?;
    assert!(elsewhere.items.is_empty());

    // Paging, one at a time.
    let first = later
        .list_ledger(
            &identity(Role::Admin, None),
            list(pb::ListLedgerItemsRequest {
                page_size: 1,
                ..Default::default()
            })?,
        )
        .await?;
    assert_eq!(ids(&first.items), [pledge_id.as_str()]);
    assert!(!first.next_page_token.is_empty());
    let second = later
        .list_ledger(
            &identity(Role::Admin, None),
            list(pb::ListLedgerItemsRequest {
                page_size: 1,
                page_token: first.next_page_token.clone(),
                ..Default::default()
            })?,
        )
        .await?;
    assert_eq!(ids(&second.items), [owed_id.as_str()]);
    assert!(second.next_page_token.is_empty());

    // The verification decided: struck off, by the clerk who decided, when they did.
    let decided = h.decide(&verify, pb::Decision::Approve, "核查属实").await?;
    let got = h
        .client
        .clone()
        .get_ledger_item(authed(
            pb::GetLedgerItemRequest {
                item_id: pledge_id.clone(),
            },
            &h.clerk("eco_env"),
        ))
        .await?
        .into_inner()
        .item
        .unwrap_or_default();
    assert_eq!(got.state(), pb::LedgerItemState::Closed);
    assert_eq!(got.closed_by, decided.assignee);
    assert!(!got.closed_by.is_empty());
    assert_eq!(got.close_time, decided.decide_time);
    let closed = grpc_list(
        &h,
        pb::ListLedgerItemsRequest {
            state: pb::LedgerItemState::Closed as i32,
            ..Default::default()
        },
        &admin,
    )
    .await?;
    assert_eq!(closed.items.len(), 1);
    assert_eq!(closed.items[0].item_id, pledge_id);
    let open = grpc_list(
        &h,
        pb::ListLedgerItemsRequest {
            state: pb::LedgerItemState::Open as i32,
            ..Default::default()
        },
        &admin,
    )
    .await?;
    assert!(open.items.is_empty(), "the owed material is not due yet");

    // Who may read it, and bad input.
    let code = |r: Result<pb::ListLedgerItemsResponse, tonic::Status>| r.err().map(|e| e.code());
    let other_clerk = h.clerk("market_reg");
    assert_eq!(
        code(
            grpc_list(
                &h,
                pb::ListLedgerItemsRequest {
                    unit: "eco_env".into(),
                    ..Default::default()
                },
                &other_clerk
            )
            .await
        ),
        Some(Code::PermissionDenied)
    );
    assert_eq!(
        code(grpc_list(&h, Default::default(), &h.applicant()).await),
        Some(Code::PermissionDenied)
    );
    let denied = h
        .client
        .clone()
        .get_ledger_item(authed(
            pb::GetLedgerItemRequest {
                item_id: pledge_id.clone(),
            },
            &other_clerk,
        ))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(denied, Some(Code::PermissionDenied));
    let bad = grpc_list(
        &h,
        pb::ListLedgerItemsRequest {
            kinds: vec![99],
            ..Default::default()
        },
        &admin,
    )
    .await
    .err()
    .ok_or_else(|| anyhow::anyhow!("an unknown kind was accepted"))?;
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        bad.get_details_bad_request()
            .map(|b| b.field_violations[0].field.clone()),
        Some("kinds[0]".into())
    );
    for (id, want) in [
        ("nonsense".to_string(), Code::InvalidArgument),
        ("late:1".to_string(), Code::InvalidArgument),
        (format!("overdue:{}", verify.task_id), Code::NotFound),
        (owed_id.clone(), Code::NotFound),
    ] {
        let got = h
            .client
            .clone()
            .get_ledger_item(authed(
                pb::GetLedgerItemRequest {
                    item_id: id.clone(),
                },
                &admin,
            ))
            .await
            .err()
            .map(|e| e.code());
        assert_eq!(got, Some(want), "{id}");
    }
    Ok(())
}

async fn overdue_task_goes_on_the_ledger_and_is_struck_off_late(
    backend: Backend,
) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let app = h.submit(snapshot()?).await?;
    let task = h.stage(&app, "acceptance", 1).await?.remove(0);
    let due = due_of(&task)?;
    let item_id = format!("overdue:{}", task.task_id);
    let admin = identity(Role::Admin, None);
    let overdue_only = || {
        list(pb::ListLedgerItemsRequest {
            kinds: vec![pb::LedgerItemKind::OverdueTask as i32],
            ..Default::default()
        })
    };

    // Not before its deadline; from the deadline on.
    let before = engine_at(&h, due - chrono::Duration::minutes(1)).await?;
    assert!(
        before
            .list_ledger(&admin, overdue_only()?)
            .await?
            .items
            .is_empty()
    );
    let at_due = engine_at(&h, due).await?;
    assert_eq!(
        ids(&at_due.list_ledger(&admin, overdue_only()?).await?.items),
        [item_id.as_str()]
    );

    // Escalated by the timers: the item says so.
    let late = due + chrono::Duration::days(10);
    let later = engine_at(&h, late).await?;
    later.fire_timers(late).await?;
    let item = later.ledger_item(&admin, &item_id).await?;
    assert_eq!(
        (
            item.escalation_level,
            item.responsible_unit.as_str(),
            item.is_open()
        ),
        (1, task.department.as_str(), true)
    );
    assert_eq!(item.opened_at, due.timestamp_millis());

    // Decided ten days late: struck off then, by that clerk; its age stops at the close.
    let clerk = identity(Role::Clerk, Some(&task.department));
    let current = h.tasks(&app, &[]).await?.remove(0);
    later
        .decide(
            &clerk,
            Decide::try_from(pb::DecideTaskRequest {
                task_id: task.task_id.clone(),
                decision: pb::Decision::Approve as i32,
                comment: "同意".into(),
                expected_version: current.version,
                requested_materials: vec![],
                assign_departments: vec![],
            })?,
        )
        .await?;
    let much_later = engine_at(&h, late + chrono::Duration::days(30)).await?;
    let item = much_later.ledger_item(&admin, &item_id).await?;
    assert_eq!(item.closed_at, Some(late.timestamp_millis()));
    assert_eq!(item.closed_by, clerk.subject);
    let age = item.age(
        much_later.calendar(),
        (late + chrono::Duration::days(30)).timestamp_millis(),
    );
    assert_eq!(age, much_later.calendar().working_time_between(due, late));
    let closed = much_later
        .list_ledger(
            &admin,
            list(pb::ListLedgerItemsRequest {
                state: pb::LedgerItemState::Closed as i32,
                min_age_working_hours: u32::try_from(age.num_hours())?,
                ..Default::default()
            })?,
        )
        .await?;
    assert_eq!(ids(&closed.items), [item_id.as_str()]);
    let too_young = much_later
        .list_ledger(
            &admin,
            list(pb::ListLedgerItemsRequest {
                state: pb::LedgerItemState::Closed as i32,
                min_age_working_hours: u32::try_from(age.num_hours() + 1)?,
                ..Default::default()
            })?,
        )
        .await?;
    assert!(
        too_young.items.is_empty(),
        "a closed item's age ends at its close"
    );
    Ok(())
}

async fn request_stays_on_the_ledger_until_the_enterprise_is_satisfied(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let app = h.submit(request_snapshot()?).await?;
    let item_id = format!("request:{app}");
    let admin = identity(Role::Admin, None);
    let engine = timer_worker(&h).await?;
    let requests_only = || {
        list(pb::ListLedgerItemsRequest {
            kinds: vec![pb::LedgerItemKind::EnterpriseRequest as i32],
            ..Default::default()
        })
    };
    eventually(WAIT, "the request on the ledger", || async {
        let page = engine
            .list_ledger(&admin, requests_only().ok()?)
            .await
            .ok()?;
        (ids(&page.items) == [item_id.as_str()]).then_some(())
    })
    .await?;
    h.approve_stage(&app, "accept", 1).await?;
    h.approve_stage(&app, "assign", 1).await?;
    h.approve_stage(&app, "handle", 1).await?;
    h.approve_stage(&app, "feedback", 1).await?;
    h.event(&app, "request.answered", 1).await?;
    let applicant = h.applicant();
    let rate = |r: pb::Rating| rating(&app, r, &applicant);
    h.client
        .clone()
        .rate_outcome(rate(pb::Rating::Unsatisfied))
        .await?;
    let item = engine.ledger_item(&admin, &item_id).await?;
    assert!(item.is_open(), "answered but not satisfied: still open");
    assert_eq!(item.reopen_count, 1);
    assert_eq!(
        item.responsible_unit, "business_env",
        "the matter's lead department"
    );
    assert_eq!(
        item.handling_unit, "eco_env.songyuan",
        "the unit handling it now: eco_env's office for the applicant's township"
    );

    h.approve_stage(&app, "handle", 1).await?;
    h.approve_stage(&app, "feedback", 1).await?;
    h.event(&app, "request.answered", 2).await?;
    h.client
        .clone()
        .rate_outcome(rate(pb::Rating::Satisfied))
        .await?;
    let item = engine.ledger_item(&admin, &item_id).await?;
    assert!(!item.is_open());
    assert_eq!(item.reopen_count, 1);
    let trail = audit(&h, &app).await?;
    let last = trail
        .iter()
        .rev()
        .find(|e| e.action == "closed")
        .ok_or_else(|| anyhow::anyhow!("no close on the trail"))?;
    // The subject whose rating closed it (the trail labels it with its role).
    let rater = format!("{}-{APPLICANT}", Role::Applicant);
    assert_eq!(
        item.closed_by, rater,
        "struck off by the enterprise's rating"
    );
    assert_eq!(last.actor, format!("{}:{rater}", Role::Applicant));
    assert!(
        engine
            .list_ledger(
                &admin,
                list(pb::ListLedgerItemsRequest {
                    state: pb::LedgerItemState::Open as i32,
                    kinds: vec![pb::LedgerItemKind::EnterpriseRequest as i32],
                    ..Default::default()
                })?
            )
            .await?
            .items
            .is_empty()
    );
    Ok(())
}

tongban_testkit::on_both!(
    ledger_tracks_pledges_and_owed_materials,
    overdue_task_goes_on_the_ledger_and_is_struck_off_late,
    request_stays_on_the_ledger_until_the_enterprise_is_satisfied,
);
