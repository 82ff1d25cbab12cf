//! Dispatch fans out: every platform once, bulkheads, dead letters and replay.

use crate::common::*;

async fn fan_out_reaches_every_platform_once(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend, |_| {}).await?;
    let (submitted, approved) = application()?;
    // Redelivered events change nothing.
    h.publish(&[&submitted, &approved, &approved, &submitted])
        .await?;
    // A second application whose approval overtakes its submission: parked, then delivered.
    let (submitted2, approved2) = application()?;
    h.publish(&[&approved2]).await?;
    h.publish(&[&submitted2]).await?;
    h.wait_all_delivered(2).await?;

    let eia = h.deliveries("eia", pb::DeliveryStatus::Unspecified).await?;
    for d in &eia {
        assert_eq!(d.idempotency_key, format!("eia-{}", d.event_id));
        assert!(d.deliver_time.is_some());
    }
    let platforms = h
        .client
        .clone()
        .list_platforms(authed(
            pb::ListPlatformsRequest::default(),
            &h.keys.token(Role::Integrator, None, None),
        ))
        .await?
        .into_inner()
        .platforms;
    assert_eq!(platforms.len(), 4);
    for p in &platforms {
        let n = EXPECTED
            .iter()
            .find(|(id, _)| *id == p.platform_id)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        assert_eq!(p.succeeded, 2 * n as u64, "{}", p.platform_id);
        assert_eq!((p.pending, p.dead_lettered), (0, 0));
        assert_eq!(p.circuit(), pb::CircuitState::Closed);
        assert_ne!(
            p.auth_kind(),
            pb::AuthKind::Unspecified,
            "{}",
            p.platform_id
        );
        assert!(
            p.timeout.is_some_and(|t| t.seconds > 0 || t.nanos > 0),
            "{}",
            p.platform_id
        );
    }
    // ListPlatforms pages in configuration order, without gaps or repeats.
    let mut paged = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = h
            .client
            .clone()
            .list_platforms(authed(
                pb::ListPlatformsRequest {
                    page_size: 3,
                    page_token: page_token.clone(),
                },
                &h.keys.token(Role::Integrator, None, None),
            ))
            .await?
            .into_inner();
        assert!(page.platforms.len() <= 3);
        paged.extend(page.platforms.into_iter().map(|p| p.platform_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let ids: Vec<String> = platforms.iter().map(|p| p.platform_id.clone()).collect();
    assert_eq!(paged, ids);
    let bad = h
        .client
        .clone()
        .list_deliveries(authed(
            pb::ListDeliveriesRequest {
                page_token: "not-a-token".into(),
                ..Default::default()
            },
            &h.keys.token(Role::Integrator, None, None),
        ))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("accepted a made-up page token"))?;
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(reason(&bad), "INVALID_ARGUMENT");
    // The body the platform holds is the mapped payload.
    let key = &eia[0].idempotency_key;
    let body: Value = http()
        .get(format!("{}/_received/{key}", h.url("eia")?))
        .send()
        .await?
        .json()
        .await?;
    assert!(body.to_string().contains("91350100M000100Y43"), "{body}");
    Ok(())
}

/// A relocation project (建设性质 迁建) reaches all four platforms, the EIA system with its
/// code 04: the form allows the value and every code table translating it has it.
async fn relocation_project_reaches_every_platform(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend, |_| {}).await?;
    let (mut submitted, approved) = application()?;
    let form = match &mut submitted.payload {
        Some(Payload::ApplicationSubmitted(s)) => {
            s.application.as_mut().and_then(|a| a.form.as_mut())
        }
        _ => None,
    }
    .ok_or_else(|| anyhow::anyhow!("the example submission has no form"))?;
    form.fields.insert(
        "construction_nature".into(),
        prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue("relocation".into())),
        },
    );
    h.publish(&[&submitted, &approved]).await?;
    h.wait_all_delivered(1).await?;

    let key = format!("eia-{}", submitted.event_id);
    let body: Value = http()
        .get(format!("{}/_received/{key}", h.url("eia")?))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(body["xmlx"], json!("04"), "{body}");
    let key = format!("national_investment-{}", submitted.event_id);
    let body: Value = http()
        .get(format!("{}/_received/{key}", h.url("national_investment")?))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(body["jsxz"], json!("4"), "{body}");
    Ok(())
}

/// 告知承诺制: a revoked approval reaches the platforms that declare `application.revoked`
/// (the EIA system), mapped with the revocation's reason and date, and no other platform.
async fn revocation_reaches_the_platforms_that_declare_it(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend, |_| {}).await?;
    let (submitted, approved) = application()?;
    let revoked = tongban_outbox::new_envelope(
        "approval",
        &submitted.application_id,
        Payload::ApplicationRevoked(events::ApplicationRevoked {
            reason: "现场核查：实际建设地点与承诺不符".into(),
            department: "eco_env".into(),
            revoke_time: Some(tongban_proto::time::ts(chrono::Utc::now())),
            task_id: "t-verify".into(),
        }),
    );
    h.publish(&[&submitted, &approved, &revoked, &revoked])
        .await?;
    h.wait_status("eia", pb::DeliveryStatus::Succeeded, 3)
        .await?;
    let key = format!("eia-{}", revoked.event_id);
    eventually(WAIT, "the revocation at the EIA simulator", || async {
        h.received("eia").await.ok()?.contains(&key).then_some(())
    })
    .await?;
    let body: Value = http()
        .get(format!("{}/_received/{key}", h.url("eia")?))
        .send()
        .await?
        .json()
        .await?;
    assert!(
        body.to_string().contains("实际建设地点与承诺不符"),
        "{body}"
    );
    // The provincial platform declares it too, mapped like its other events.
    let key = format!("provincial_gov_services-{}", revoked.event_id);
    eventually(
        WAIT,
        "the revocation at the provincial simulator",
        || async {
            h.received("provincial_gov_services")
                .await
                .ok()?
                .contains(&key)
                .then_some(())
        },
    )
    .await?;
    let body: Value = http()
        .get(format!(
            "{}/_received/{key}",
            h.url("provincial_gov_services")?
        ))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(body["HANDLESTATE"], "6", "{body}");
    // Platforms that do not declare it never see it.
    h.wait_status("national_investment", pb::DeliveryStatus::Succeeded, 2)
        .await?;
    for platform in ["national_investment", "pollutant_permit"] {
        let keys = h.received(platform).await?;
        assert!(
            !keys.iter().any(|k| k.ends_with(&revoked.event_id)),
            "{platform}: {keys:?}"
        );
    }
    Ok(())
}

async fn platform_down_does_not_delay_the_others(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend, |_| {}).await?;
    h.faults("eia", json!({"down": true})).await?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted, &approved]).await?;
    for (platform, n) in EXPECTED.iter().filter(|(p, _)| *p != "eia") {
        h.wait_status(platform, pb::DeliveryStatus::Succeeded, *n)
            .await?;
    }
    assert!(h.received("eia").await?.is_empty());
    // The failures opened eia's circuit; its rows wait, still pending. The approval waits
    // behind the submission and is never tried before it: one application's events reach a
    // platform in order.
    eventually(WAIT, "eia attempts", || async {
        let d = h
            .deliveries("eia", pb::DeliveryStatus::Pending)
            .await
            .ok()?;
        let tried = |t: &str| d.iter().find(|d| d.event_type == t).map(|d| d.attempts);
        (d.len() == 2
            && tried("application.submitted").is_some_and(|n| n >= 2)
            && tried("application.approved") == Some(0))
        .then_some(())
    })
    .await?;
    h.faults("eia", json!({})).await?;
    h.wait_all_delivered(1).await?;
    Ok(())
}

async fn failing_platform_dead_letters_then_replays(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend, |configs| {
        for c in configs.iter_mut().filter(|c| c.id == "pollutant_permit") {
            c.retry.max_attempts = 3;
            c.circuit.failure_threshold = 100;
        }
    })
    .await?;
    let mut observer = h
        .bus
        .subscribe(&QueueSpec::new(
            "test-observer",
            &["delivery.dead_lettered"],
        ))
        .await?;
    h.faults("pollutant_permit", json!({"error_rate": 1.0}))
        .await?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted, &approved]).await?;
    let dead = h
        .wait_status("pollutant_permit", pb::DeliveryStatus::DeadLettered, 1)
        .await?;
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0].last_error.contains("503"), "{}", dead[0].last_error);
    let msg = tokio::time::timeout(WAIT, observer.recv())
        .await?
        .ok_or_else(|| anyhow::anyhow!("bus closed"))?;
    let env = Envelope::decode(msg.payload.as_slice())?;
    msg.ack().await?;
    match env.payload {
        Some(Payload::DeliveryDeadLettered(d)) => {
            assert_eq!(d.platform_id, "pollutant_permit");
            assert_eq!(d.delivery_id, dead[0].delivery_id);
            assert_eq!(d.attempts, 3);
        }
        other => anyhow::bail!("unexpected event {other:?}"),
    }

    // Clerks may look but not replay.
    let err = h
        .client
        .clone()
        .replay_dead_letters(authed(
            pb::ReplayDeadLettersRequest::default(),
            &h.token(Role::Clerk),
        ))
        .await
        .err();
    assert_eq!(err.as_ref().map(|e| e.code()), Some(Code::PermissionDenied));
    assert_eq!(
        err.as_ref().map(reason).as_deref(),
        Some("PERMISSION_DENIED")
    );

    h.faults("pollutant_permit", json!({})).await?;
    let replayed = h
        .client
        .clone()
        .replay_dead_letters(authed(
            pb::ReplayDeadLettersRequest {
                platform_id: "pollutant_permit".into(),
                ..Default::default()
            },
            &h.token(Role::Supervisor),
        ))
        .await?
        .into_inner()
        .replayed;
    assert_eq!(replayed, 1);
    h.wait_all_delivered(1).await?;
    // The replay is on dispatch's own chain, naming the supervisor; the refused one is there
    // too, as refused.
    let refused =
        tongban_testkit::eventually(Duration::from_secs(10), "refusal recorded", || async {
            tongban_audit::refusals(&h.db, "dispatch")
                .await
                .ok()
                .filter(|r| !r.is_empty())
        })
        .await?;
    assert_eq!(
        refused
            .iter()
            .map(|e| (e.action.as_str(), e.actor.role.as_str()))
            .collect::<Vec<_>>(),
        vec![("ReplayDeadLetters", "clerk")]
    );
    let chain = tongban_audit::service_chain("dispatch");
    let trail = tongban_audit::entries(&h.db, &chain).await?;
    let acts: Vec<_> = trail
        .iter()
        .filter(|e| e.outcome == "done")
        .map(|e| {
            (
                e.action.as_str(),
                e.actor.role.as_str(),
                e.actor.department.as_str(),
                e.target.as_str(),
                e.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        acts,
        vec![(
            "dead_letters.replay",
            "supervisor",
            "eco_env",
            "pollutant_permit",
            "1 replayed"
        )]
    );

    // A delivered row cannot be retried; a missing id is named; an unknown one is not found.
    let sup = h.token(Role::Supervisor);
    let done = &h
        .deliveries("pollutant_permit", pb::DeliveryStatus::Succeeded)
        .await?[0];
    let code = |r: Result<_, tonic::Status>| r.err().map(|e| (e.code(), reason(&e)));
    let mut c = h.client.clone();
    let r = c
        .retry_delivery(authed(
            pb::RetryDeliveryRequest {
                delivery_id: done.delivery_id.clone(),
            },
            &sup,
        ))
        .await;
    assert_eq!(
        code(r),
        Some((Code::FailedPrecondition, "FAILED_PRECONDITION".into()))
    );
    let r = c
        .retry_delivery(authed(pb::RetryDeliveryRequest::default(), &sup))
        .await;
    let status = r.err().ok_or_else(|| anyhow::anyhow!("accepted"))?;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "INVALID_ARGUMENT");
    let fields: Vec<String> = status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert_eq!(fields, vec!["delivery_id".to_string()]);
    let r = c
        .retry_delivery(authed(
            pb::RetryDeliveryRequest {
                delivery_id: "nope".into(),
            },
            &sup,
        ))
        .await;
    assert_eq!(code(r), Some((Code::NotFound, "NOT_FOUND".into())));
    Ok(())
}

tongban_testkit::on_both!(
    relocation_project_reaches_every_platform,
    revocation_reaches_the_platforms_that_declare_it,
    fan_out_reaches_every_platform_once,
    platform_down_does_not_delay_the_others,
    failing_platform_dead_letters_then_replays,
);
