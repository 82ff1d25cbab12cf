//! What a real platform can rely on: one application's events in the order they happened (a
//! later one waits behind a retrying or dead-lettered one), snapshots superseding queued states
//! where the platform asks for that, replays that map again with the fixed mapping, receipts
//! kept from the replies, and the lifecycle events the platform declares.

use crate::common::*;

/// What the simulator says about one key: when it stored it and under which receipt number.
struct Held {
    received_at: chrono::DateTime<chrono::Utc>,
    receipt_no: String,
    body: Value,
}

async fn held(h: &Harness, platform: &str, key: &str) -> anyhow::Result<Held> {
    let resp = http()
        .get(format!("{}/_received/{key}", h.url(platform)?))
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "{platform} lacks {key}");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_default()
    };
    let received_at = chrono::DateTime::parse_from_rfc3339(&header("x-received-at"))?.into();
    let receipt_no = header("x-receipt-no");
    Ok(Held {
        received_at,
        receipt_no,
        body: resp.json().await?,
    })
}

fn key(platform: &str, event: &Envelope) -> String {
    format!("{platform}-{}", event.event_id)
}

fn admin(h: &Harness) -> String {
    h.keys.token(Role::Admin, None, None)
}

/// The ledger row of `event` at `platform`.
async fn row(h: &Harness, platform: &str, event: &Envelope) -> anyhow::Result<pb::Delivery> {
    h.deliveries(platform, pb::DeliveryStatus::Unspecified)
        .await?
        .into_iter()
        .find(|d| d.event_id == event.event_id)
        .ok_or_else(|| anyhow::anyhow!("no {platform} row for {}", event.r#type))
}

/// Slow platforms: fast retries, and a circuit that does not open, so that attempts count.
fn patient(configs: &mut [PlatformConfig], platform: &str, max_attempts: u32) {
    for c in configs.iter_mut().filter(|c| c.id == platform) {
        c.retry.max_attempts = max_attempts;
        c.circuit.failure_threshold = 1000;
    }
}

async fn a_held_back_submission_keeps_the_approval_waiting(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend, |c| patient(c, "eia", 1000)).await?;
    h.faults("eia", json!({"down": true})).await?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted, &approved]).await?;
    // The submission is retried again and again; the approval is never tried meanwhile.
    eventually(WAIT, "eia retrying the submission", || async {
        let s = row(&h, "eia", &submitted).await.ok()?;
        (s.attempts >= 3).then_some(())
    })
    .await?;
    let a = row(&h, "eia", &approved).await?;
    assert_eq!(a.attempts, 0, "the approval overtook the submission: {a:?}");
    assert_eq!(a.status(), pb::DeliveryStatus::Pending);
    // The other platforms were not held up.
    h.wait_status("national_investment", pb::DeliveryStatus::Succeeded, 2)
        .await?;

    h.faults("eia", json!({})).await?;
    h.wait_status("eia", pb::DeliveryStatus::Succeeded, 2)
        .await?;
    let first = held(&h, "eia", &key("eia", &submitted)).await?;
    let second = held(&h, "eia", &key("eia", &approved)).await?;
    assert!(
        first.received_at <= second.received_at,
        "the platform saw the approval ({}) before the submission ({})",
        second.received_at,
        first.received_at
    );
    Ok(())
}

async fn a_dead_letter_holds_later_events_until_replayed_or_discarded(
    backend: Backend,
) -> anyhow::Result<()> {
    let h = Harness::start(backend, |c| patient(c, "eia", 2)).await?;
    let mut c = h.client.clone();
    h.faults("eia", json!({"down": true})).await?;
    let (submitted, approved) = application()?;
    let (submitted2, approved2) = application()?;
    h.publish(&[&submitted, &approved, &submitted2, &approved2])
        .await?;
    h.wait_status("eia", pb::DeliveryStatus::DeadLettered, 2)
        .await?;
    h.faults("eia", json!({})).await?;
    // The platform is back, but each approval stays behind its dead-lettered submission.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for a in [&approved, &approved2] {
        let r = row(&h, "eia", a).await?;
        assert_eq!(
            (r.status(), r.attempts),
            (pb::DeliveryStatus::Pending, 0),
            "{r:?}"
        );
    }
    assert!(h.received("eia").await?.is_empty());

    // Discarding needs a reason, and only a dead letter can be discarded.
    let dead = row(&h, "eia", &submitted).await?;
    let no_reason = c
        .discard_delivery(authed(
            pb::DiscardDeliveryRequest {
                delivery_id: dead.delivery_id.clone(),
                reason: " ".into(),
            },
            &admin(&h),
        ))
        .await
        .expect_err("a discard without a reason");
    assert_eq!(no_reason.code(), Code::InvalidArgument);
    let fields: Vec<String> = no_reason
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["reason"]);
    let pending = row(&h, "eia", &approved).await?;
    let not_dead = c
        .discard_delivery(authed(
            pb::DiscardDeliveryRequest {
                delivery_id: pending.delivery_id.clone(),
                reason: "wrong row".into(),
            },
            &admin(&h),
        ))
        .await
        .expect_err("a discard of a pending delivery");
    assert_eq!(not_dead.code(), Code::FailedPrecondition);

    // Application 1: the submission is discarded; the approval goes ahead alone.
    let discarded = c
        .discard_delivery(authed(
            pb::DiscardDeliveryRequest {
                delivery_id: dead.delivery_id.clone(),
                reason: "filed on paper at the county office".into(),
            },
            &admin(&h),
        ))
        .await?
        .into_inner()
        .delivery
        .ok_or_else(|| anyhow::anyhow!("no delivery in the response"))?;
    assert_eq!(discarded.status(), pb::DeliveryStatus::Discarded);
    eventually(WAIT, "the approval after the discard", || async {
        let r = row(&h, "eia", &approved).await.ok()?;
        (r.status() == pb::DeliveryStatus::Succeeded).then_some(())
    })
    .await?;
    let keys = h.received("eia").await?;
    assert!(!keys.contains(&key("eia", &submitted)), "{keys:?}");
    // Application 2 still waits; a replay sends both, in order.
    let r = row(&h, "eia", &approved2).await?;
    assert_eq!(r.status(), pb::DeliveryStatus::Pending, "{r:?}");
    c.replay_dead_letters(authed(
        pb::ReplayDeadLettersRequest {
            platform_id: "eia".into(),
            application_id: submitted2.application_id.clone(),
        },
        &admin(&h),
    ))
    .await?;
    h.wait_status("eia", pb::DeliveryStatus::Succeeded, 3)
        .await?;
    let first = held(&h, "eia", &key("eia", &submitted2)).await?;
    let second = held(&h, "eia", &key("eia", &approved2)).await?;
    assert!(first.received_at <= second.received_at);
    // A repeated discard of the discarded row is answered with it, unchanged.
    let again = c
        .discard_delivery(authed(
            pb::DiscardDeliveryRequest {
                delivery_id: dead.delivery_id.clone(),
                reason: "again".into(),
            },
            &admin(&h),
        ))
        .await?
        .into_inner();
    assert_eq!(
        again.delivery.map(|d| d.status()),
        Some(pb::DeliveryStatus::Discarded)
    );
    Ok(())
}

async fn a_newer_state_supersedes_a_queued_one(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend, |c| {
        patient(c, "provincial_gov_services", 1000);
        for c in c.iter_mut().filter(|c| c.id == "provincial_gov_services") {
            c.delivery = tongban_platform::DeliveryMode::LatestState;
        }
    })
    .await?;
    h.faults("provincial_gov_services", json!({"down": true}))
        .await?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted]).await?;
    eventually(WAIT, "the submission tried", || async {
        let s = row(&h, "provincial_gov_services", &submitted).await.ok()?;
        (s.attempts >= 1).then_some(())
    })
    .await?;
    h.publish(&[&approved]).await?;
    h.wait_status("provincial_gov_services", pb::DeliveryStatus::Superseded, 1)
        .await?;
    h.faults("provincial_gov_services", json!({})).await?;
    h.wait_status("provincial_gov_services", pb::DeliveryStatus::Succeeded, 1)
        .await?;
    let keys = h.received("provincial_gov_services").await?;
    assert_eq!(keys, [key("provincial_gov_services", &approved)]);
    let s = row(&h, "provincial_gov_services", &submitted).await?;
    assert_eq!(s.status(), pb::DeliveryStatus::Superseded, "{s:?}");
    // The other platforms take every event.
    h.wait_status("eia", pb::DeliveryStatus::Succeeded, 2)
        .await?;
    Ok(())
}

async fn a_replay_after_a_mapping_fix_sends_the_fixed_body(backend: Backend) -> anyhow::Result<()> {
    let source = std::fs::read_to_string(tongban_testkit::deploy_dir().join("platforms/eia.toml"))?;
    // A mistake an integrator could make: the investment formatted as a date.
    let broken_source = source.replace(
        r#"zje = { from = "/application/form/total_investment_wan", format = "number" }"#,
        r#"zje = { from = "/application/form/total_investment_wan", format = "date" }"#,
    );
    anyhow::ensure!(
        broken_source != source,
        "eia.toml no longer has the zje rule"
    );
    let mut good = None;
    let mut h = Harness::start(backend, |configs| {
        for c in configs.iter_mut().filter(|c| c.id == "eia") {
            good = Some(c.clone());
            if let Ok(broken) = PlatformConfig::parse(&broken_source, "deploy/platforms/eia.toml")
                .and_then(|b| b.with_endpoint(&c.endpoint))
            {
                *c = PlatformConfig {
                    retry: c.retry.clone(),
                    circuit: c.circuit.clone(),
                    ..broken
                };
            }
        }
    })
    .await?;
    let good = good.ok_or_else(|| anyhow::anyhow!("no eia platform"))?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted, &approved]).await?;
    let dead = h
        .wait_status("eia", pb::DeliveryStatus::DeadLettered, 1)
        .await?;
    let reason = &dead[0].last_error;
    for part in ["eia.toml", "zje", "12800", "date"] {
        assert!(reason.contains(part), "`{part}` not in: {reason}");
    }
    // The approval waits behind it rather than reach the platform first.
    let a = row(&h, "eia", &approved).await?;
    assert_eq!(a.status(), pb::DeliveryStatus::Pending);
    assert!(h.received("eia").await?.is_empty());

    // The integrator fixes the file and restarts dispatch; a replay maps the stored document
    // again, with the fixed rule.
    h.shutdown().await?;
    for c in h.configs.iter_mut().filter(|c| c.id == "eia") {
        *c = good.clone();
    }
    h.boot().await?;
    h.client
        .clone()
        .replay_dead_letters(authed(
            pb::ReplayDeadLettersRequest {
                platform_id: "eia".into(),
                ..Default::default()
            },
            &admin(&h),
        ))
        .await?;
    h.wait_status("eia", pb::DeliveryStatus::Succeeded, 2)
        .await?;
    let body = held(&h, "eia", &key("eia", &submitted)).await?.body;
    assert_eq!(body["zje"], json!(12800), "{body}");
    Ok(())
}

async fn receipts_are_kept_from_the_replies(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend, |_| {}).await?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted, &approved]).await?;
    h.wait_all_delivered(1).await?;
    for (platform, _) in EXPECTED {
        for d in h
            .deliveries(platform, pb::DeliveryStatus::Succeeded)
            .await?
        {
            let at_platform = held(&h, platform, &d.idempotency_key).await?;
            assert!(!d.receipt.is_empty(), "{platform}: no receipt in {d:?}");
            assert_eq!(d.receipt, at_platform.receipt_no, "{platform}");
        }
    }
    Ok(())
}

async fn a_withdrawal_reaches_the_platforms_that_declare_it(
    backend: Backend,
) -> anyhow::Result<()> {
    let h = Harness::start(backend, |_| {}).await?;
    let (submitted, _) = application()?;
    let withdrawn = tongban_outbox::new_envelope(
        "intake",
        &submitted.application_id,
        Payload::ApplicationWithdrawn(events::ApplicationWithdrawn {
            reason: "项目暂缓建设".into(),
        }),
    );
    h.publish(&[&submitted, &withdrawn]).await?;
    let declares: Vec<&str> = h
        .configs
        .iter()
        .filter(|c| c.wants("application.withdrawn"))
        .map(|c| c.id.as_str())
        .collect();
    assert!(declares.contains(&"eia") && declares.contains(&"provincial_gov_services"));
    for platform in &declares {
        h.wait_status(platform, pb::DeliveryStatus::Succeeded, 2)
            .await?;
        let body = held(&h, platform, &key(platform, &withdrawn)).await?.body;
        assert!(
            body.to_string().contains("项目暂缓建设"),
            "{platform}: {body}"
        );
    }
    let eia = held(&h, "eia", &key("eia", &withdrawn)).await?.body;
    assert_eq!(eia["chyy"], "项目暂缓建设");
    let provincial = held(
        &h,
        "provincial_gov_services",
        &key("provincial_gov_services", &withdrawn),
    )
    .await?
    .body;
    assert_eq!(provincial["HANDLESTATE"], "3");
    h.wait_status("national_investment", pb::DeliveryStatus::Succeeded, 1)
        .await?;
    for platform in ["national_investment", "pollutant_permit"] {
        let keys = h.received(platform).await?;
        assert!(
            !keys.contains(&key(platform, &withdrawn)),
            "{platform}: {keys:?}"
        );
    }
    Ok(())
}

tongban_testkit::on_both!(
    a_held_back_submission_keeps_the_approval_waiting,
    a_dead_letter_holds_later_events_until_replayed_or_discarded,
    a_newer_state_supersedes_a_queued_one,
    a_replay_after_a_mapping_fix_sends_the_fixed_body,
    receipts_are_kept_from_the_replies,
    a_withdrawal_reaches_the_platforms_that_declare_it,
);
