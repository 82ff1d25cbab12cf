//! Intake's RPCs over real gRPC, against PostgreSQL + RabbitMQ and against SQLite + the embedded bus.

use crate::common::*;

async fn submit_is_idempotent_and_emits_one_event(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let token = h.applicant();
    let req = example()?;
    let first = h
        .client
        .submit_application(authed(req.clone(), &token))
        .await?
        .into_inner();
    assert!(first.created);
    let app = first
        .application
        .ok_or_else(|| anyhow::anyhow!("no application"))?;
    assert_eq!(app.status(), pb::ApplicationStatus::Submitted);
    assert_eq!(app.version, 1);
    assert_eq!(app.owed_materials.len(), 1, "land-use certificate is owed");
    assert!(app.owed_materials[0].due_time.is_some());

    let again = h
        .client
        .submit_application(authed(req.clone(), &token))
        .await?
        .into_inner();
    assert!(!again.created);
    assert_eq!(
        again.application.map(|a| a.application_id),
        Some(app.application_id.clone())
    );
    assert_eq!(h.count("applications").await, 1);
    assert_eq!(
        h.count("outbox").await,
        1,
        "the replay must not emit a second event"
    );

    let mut changed = req.clone();
    if let Some(f) = changed.form.as_mut() {
        f.fields.insert(
            "project_name".into(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue("另一个项目".into())),
            },
        );
    }
    let err = h
        .client
        .submit_application(authed(changed, &token))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("accepted"))?;
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(reason(&err), "REQUEST_ID_REUSED");

    let got = h
        .client
        .get_application(authed(
            pb::GetApplicationRequest {
                application_id: app.application_id.clone(),
            },
            &token,
        ))
        .await?
        .into_inner();
    assert_eq!(
        got.application.map(|a| a.request_id),
        Some(req.request_id.clone())
    );

    // Another applicant cannot read it.
    let other = h
        .keys
        .token(Role::Applicant, None, Some("91440300708461136T"));
    let err = h
        .client
        .get_application(authed(
            pb::GetApplicationRequest {
                application_id: app.application_id.clone(),
            },
            &other,
        ))
        .await
        .err();
    assert_eq!(err.as_ref().map(|e| e.code()), Some(Code::PermissionDenied));
    assert_eq!(
        err.as_ref().map(reason).as_deref(),
        Some("PERMISSION_DENIED")
    );
    // No token at all.
    let err = h
        .client
        .get_application(pb::GetApplicationRequest {
            application_id: app.application_id.clone(),
        })
        .await
        .err();
    assert_eq!(err.as_ref().map(|e| e.code()), Some(Code::Unauthenticated));
    assert_eq!(err.as_ref().map(reason).as_deref(), Some("UNAUTHENTICATED"));
    let missing = h
        .client
        .get_application(authed(
            pb::GetApplicationRequest {
                application_id: "nope".into(),
            },
            &token,
        ))
        .await
        .err();
    assert_eq!(missing.as_ref().map(|e| e.code()), Some(Code::NotFound));
    assert_eq!(missing.as_ref().map(reason).as_deref(), Some("NOT_FOUND"));
    Ok(())
}

async fn list_pages_and_filters(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let token = h.applicant();
    for i in 0..5 {
        let mut req = example()?;
        req.request_id = format!("page-{i}");
        h.client.submit_application(authed(req, &token)).await?;
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let resp = h
            .client
            .list_applications(authed(
                pb::ListApplicationsRequest {
                    page_size: 2,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                &token,
            ))
            .await?
            .into_inner();
        assert!(resp.applications.len() <= 2);
        seen.extend(resp.applications.into_iter().map(|a| a.request_id));
        if resp.next_page_token.is_empty() {
            break;
        }
        page_token = resp.next_page_token;
    }
    assert_eq!(
        seen,
        vec!["page-4", "page-3", "page-2", "page-1", "page-0"],
        "newest first, no gaps or repeats"
    );

    let other = h
        .keys
        .token(Role::Applicant, None, Some("91440300708461136T"));
    let resp = h
        .client
        .list_applications(authed(pb::ListApplicationsRequest::default(), &other))
        .await?
        .into_inner();
    assert!(
        resp.applications.is_empty(),
        "applicants only see their own"
    );

    let clerk = h.keys.token(Role::Clerk, Some("eco_env"), None);
    let resp = h
        .client
        .list_applications(authed(
            pb::ListApplicationsRequest {
                status: pb::ApplicationStatus::Approved as i32,
                ..Default::default()
            },
            &clerk,
        ))
        .await?
        .into_inner();
    assert!(resp.applications.is_empty());
    let matters = h
        .client
        .list_matters(authed(pb::ListMattersRequest::default(), &clerk))
        .await?
        .into_inner();
    assert!(
        matters
            .matters
            .iter()
            .any(|m| m.code == "env.eia.report_form" && m.allows_pledge)
    );
    assert!(
        matters.next_page_token.is_empty(),
        "one default page holds them all"
    );
    let eia = matters
        .matters
        .iter()
        .find(|m| m.code == "env.eia.report_form")
        .ok_or_else(|| anyhow::anyhow!("no EIA matter"))?;
    assert!(
        eia.fields
            .iter()
            .all(|f| f.r#type() != pb::FieldType::Unspecified),
        "every form field has a type"
    );

    // ListMatters pages one matter at a time, by code, without gaps or repeats.
    let mut codes = Vec::new();
    let mut page_token = String::new();
    loop {
        let resp = h
            .client
            .list_matters(authed(
                pb::ListMattersRequest {
                    page_size: 1,
                    page_token: page_token.clone(),
                },
                &clerk,
            ))
            .await?
            .into_inner();
        assert!(resp.matters.len() <= 1);
        codes.extend(resp.matters.into_iter().map(|m| m.code));
        if resp.next_page_token.is_empty() {
            break;
        }
        page_token = resp.next_page_token;
    }
    let all: Vec<String> = matters.matters.iter().map(|m| m.code.clone()).collect();
    assert_eq!(codes, all);

    // A token from another list, or a made-up one, is INVALID_ARGUMENT naming page_token.
    for bad in [
        page_token_of_applications(&mut h, &token).await?,
        "garbage".into(),
    ] {
        let err = h
            .client
            .list_matters(authed(
                pb::ListMattersRequest {
                    page_size: 1,
                    page_token: bad,
                },
                &clerk,
            ))
            .await
            .err()
            .ok_or_else(|| anyhow::anyhow!("accepted a foreign page token"))?;
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(fields(&err), ["page_token"]);
        assert_eq!(reason(&err), "INVALID_ARGUMENT");
    }
    Ok(())
}

async fn page_token_of_applications(h: &mut Harness, token: &str) -> anyhow::Result<String> {
    Ok(h.client
        .list_applications(authed(
            pb::ListApplicationsRequest {
                page_size: 1,
                ..Default::default()
            },
            token,
        ))
        .await?
        .into_inner()
        .next_page_token)
}

async fn bad_input_names_the_field_and_writes_nothing(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let admin = h.keys.token(Role::Integrator, None, None);
    type Mutate = Box<dyn Fn(&mut pb::SubmitApplicationRequest)>;
    let cases: Vec<(&str, Mutate)> = vec![
        (
            "applicant.credit_code",
            Box::new(|r| {
                if let Some(a) = r.applicant.as_mut() {
                    a.credit_code = "91350100M000100Y44".into()
                }
            }),
        ),
        (
            "matter_code",
            Box::new(|r| r.matter_code = "env.no_such_matter".into()),
        ),
        (
            "form.project_name",
            Box::new(|r| {
                if let Some(f) = r.form.as_mut() {
                    f.fields.remove("project_name");
                }
            }),
        ),
        (
            "form",
            Box::new(|r| {
                if let Some(f) = r.form.as_mut() {
                    f.fields.insert(
                        "agency_name".into(),
                        prost_types::Value {
                            kind: Some(prost_types::value::Kind::StringValue("x".repeat(70_000))),
                        },
                    );
                }
            }),
        ),
        ("request_id", Box::new(|r| r.request_id = "  ".into())),
        (
            "applicant.region_code",
            Box::new(|r| {
                if let Some(a) = r.applicant.as_mut() {
                    a.region_code = "35".into()
                }
            }),
        ),
        (
            "materials[0].sha256",
            Box::new(|r| r.materials[0].sha256 = "abc".into()),
        ),
        (
            "materials",
            Box::new(|r| {
                r.materials.retain(|m| m.kind != "eia_report_form");
            }),
        ),
        (
            "commitments[0].due_within_days",
            Box::new(|r| r.commitments[0].due_within_days = 99),
        ),
        (
            "form.total_investment_wan",
            Box::new(|r| {
                if let Some(f) = r.form.as_mut() {
                    f.fields.insert(
                        "total_investment_wan".into(),
                        prost_types::Value {
                            kind: Some(prost_types::value::Kind::StringValue("lots".into())),
                        },
                    );
                }
            }),
        ),
    ];
    for (field, mutate) in cases {
        let mut req = example()?;
        req.request_id = format!("bad-{field}");
        mutate(&mut req);
        let err = h
            .client
            .submit_application(authed(req, &admin))
            .await
            .err()
            .ok_or_else(|| anyhow::anyhow!("{field}: accepted"))?;
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert_eq!(reason(&err), "INVALID_APPLICATION", "{field}");
        let named = fields(&err);
        assert!(
            named.iter().any(|f| f == field),
            "{field} not named in {named:?} ({})",
            err.message()
        );
        assert!(
            err.message().contains(field),
            "message names the field: {}",
            err.message()
        );
    }
    assert_eq!(h.count("applications").await, 0);
    assert_eq!(h.count("outbox").await, 0);
    Ok(())
}

async fn status_follows_events_and_watch_streams_them(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let token = h.applicant();
    let app = h
        .client
        .submit_application(authed(example()?, &token))
        .await?
        .into_inner()
        .application
        .ok_or_else(|| anyhow::anyhow!("none"))?;
    let id = app.application_id.clone();
    let mut watch = h
        .client
        .watch_application(authed(
            pb::WatchApplicationRequest {
                application_id: id.clone(),
            },
            &token,
        ))
        .await?
        .into_inner();
    let first = watch
        .message()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no snapshot"))?;
    assert_eq!(first.event_type, "snapshot");

    // What approval and dispatch would publish; sent twice to prove redelivery changes nothing.
    let approved = tongban_outbox::new_envelope(
        "approval",
        &id,
        Payload::ApplicationApproved(events::ApplicationApproved {
            decision_number: "松环审〔2026〕12号".into(),
            ..Default::default()
        }),
    );
    let created = tongban_outbox::new_envelope(
        "approval",
        &id,
        Payload::TaskCreated(events::TaskCreated::default()),
    );
    let msgs: Vec<_> = [&created, &approved, &approved, &created]
        .iter()
        .map(|e| tongban_bus::OutgoingMessage {
            event_id: e.event_id.clone(),
            routing_key: e.r#type.clone(),
            payload: e.encode_to_vec(),
            traceparent: None,
        })
        .collect();
    h.bus.publish_batch(&msgs).await?;

    let mut statuses = Vec::new();
    while let Some(m) = tokio::time::timeout(Duration::from_secs(10), watch.message()).await?? {
        let a = m.application.unwrap_or_default();
        statuses.push(a.status());
        if a.status() == pb::ApplicationStatus::Approved {
            assert_eq!(a.decision_number, "松环审〔2026〕12号");
            break;
        }
    }
    assert_eq!(
        statuses.last(),
        Some(&pb::ApplicationStatus::Approved),
        "{statuses:?}"
    );
    let got = h
        .client
        .get_application(authed(
            pb::GetApplicationRequest {
                application_id: id.clone(),
            },
            &token,
        ))
        .await?
        .into_inner();
    let got = got.application.unwrap_or_default();
    assert_eq!(got.version, 3, "two distinct changes, duplicates ignored");
    // Withdrawing an approved application is refused.
    let err = h
        .client
        .withdraw_application(authed(
            pb::WithdrawApplicationRequest {
                application_id: id,
                ..Default::default()
            },
            &token,
        ))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(err, Some(Code::FailedPrecondition));
    Ok(())
}

async fn supplement_and_withdraw(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let token = h.applicant();
    let app = h
        .client
        .submit_application(authed(example()?, &token))
        .await?
        .into_inner()
        .application
        .ok_or_else(|| anyhow::anyhow!("none"))?;
    let land = tongban_proto::common::Material {
        kind: "land_use_certificate".into(),
        name: "不动产权证书.pdf".into(),
        sha256: "a".repeat(64),
        size_bytes: 1024,
        uri: "s3://b/land.pdf".into(),
    };
    let stale = h
        .client
        .supplement_materials(authed(
            pb::SupplementMaterialsRequest {
                application_id: app.application_id.clone(),
                materials: vec![land.clone()],
                expected_version: 7,
                note: String::new(),
            },
            &token,
        ))
        .await
        .err();
    assert_eq!(stale.as_ref().map(|e| e.code()), Some(Code::Aborted));
    assert_eq!(stale.as_ref().map(reason).as_deref(), Some("STALE_VERSION"));
    let after = h
        .client
        .supplement_materials(authed(
            pb::SupplementMaterialsRequest {
                application_id: app.application_id.clone(),
                materials: vec![land],
                expected_version: 1,
                note: "补交".into(),
            },
            &token,
        ))
        .await?
        .into_inner()
        .application
        .unwrap_or_default();
    assert_eq!(after.version, 2);
    assert!(
        after
            .owed_materials
            .iter()
            .all(|o| o.fulfilled_time.is_some())
    );
    let w = h
        .client
        .withdraw_application(authed(
            pb::WithdrawApplicationRequest {
                application_id: app.application_id.clone(),
                reason: "项目调整".into(),
                expected_version: 2,
            },
            &token,
        ))
        .await?
        .into_inner()
        .application
        .unwrap_or_default();
    assert_eq!(w.status(), pb::ApplicationStatus::Withdrawn);
    assert_eq!(
        h.count("outbox").await,
        3,
        "submitted, supplemented, withdrawn"
    );
    // Each act is on the application's audit chain, naming the actor and the enterprise.
    let chain = tongban_audit::application_chain(&app.application_id);
    let trail = tongban_audit::entries(&h.db, &chain).await?;
    assert_eq!(tongban_audit::verify_chain(&chain, &trail), None);
    let acts: Vec<_> = trail
        .iter()
        .map(|e| {
            (
                e.action.as_str(),
                e.actor.role.as_str(),
                e.actor.on_behalf_of.as_str(),
                e.reason.as_str(),
                e.outcome.as_str(),
            )
        })
        .collect();
    assert_eq!(
        acts,
        vec![
            ("submit", "applicant", APPLICANT, "", "done"),
            ("supplement", "applicant", APPLICANT, "补交", "done"),
            ("withdraw", "applicant", APPLICANT, "项目调整", "done"),
        ]
    );
    assert!(
        trail
            .iter()
            .all(|e| e.actor.subject == format!("applicant-{APPLICANT}"))
    );
    Ok(())
}

tongban_testkit::on_both!(
    submit_is_idempotent_and_emits_one_event,
    list_pages_and_filters,
    bad_input_names_the_field_and_writes_nothing,
    status_follows_events_and_watch_streams_them,
    supplement_and_withdraw,
);
