//! Dispatch recovers: restarts mid-delivery, reconciliation, and a bad mapping stopping start-up.

use crate::common::*;

async fn restart_mid_delivery_loses_nothing_and_duplicates_nothing(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut h = Harness::start(backend, |_| {}).await?;
    h.faults("eia", json!({"latency_ms": 1500})).await?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted, &approved]).await?;
    for (platform, n) in EXPECTED.iter().filter(|(p, _)| *p != "eia") {
        h.wait_status(platform, pb::DeliveryStatus::Succeeded, *n)
            .await?;
    }
    // eia's requests are in flight (the simulator holds them); stop dispatch now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.shutdown().await?;
    let succeeded_before = h.received("eia").await?.len();
    assert!(succeeded_before <= 2);
    // Let the simulator finish whatever it was holding, then restart on the same database.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    h.faults("eia", json!({})).await?;
    h.boot().await?;
    h.wait_all_delivered(1).await?;
    let keys = h.received("eia").await?;
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "{keys:?}");
    Ok(())
}

async fn reconcile_redelivers_what_a_platform_lost(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend, |_| {}).await?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted, &approved]).await?;
    h.wait_all_delivered(1).await?;
    let lost = http()
        .delete(format!("{}/_received", h.url("eia")?))
        .send()
        .await?;
    assert!(lost.status().is_success());

    let admin = h.token(Role::Admin);
    let mut c = h.client.clone();
    let report = c
        .reconcile(authed(
            pb::ReconcileRequest {
                platform_id: "eia".into(),
                redeliver_missing: false,
            },
            &admin,
        ))
        .await?
        .into_inner();
    assert_eq!((report.missing.len(), report.matched), (2, 0));
    assert!(report.extra.is_empty());
    // A listing checks everything: nothing unchecked, nothing to explain.
    assert_eq!(report.method(), pb::ReconcileMethod::List);
    assert!(
        report.unchecked.is_empty() && report.note.is_empty(),
        "{report:?}"
    );
    let report = c
        .reconcile(authed(
            pb::ReconcileRequest {
                platform_id: "eia".into(),
                redeliver_missing: true,
            },
            &admin,
        ))
        .await?
        .into_inner();
    assert_eq!(report.redelivered, 2);
    h.wait_all_delivered(1).await?;
    let report = c
        .reconcile(authed(
            pb::ReconcileRequest {
                platform_id: "eia".into(),
                redeliver_missing: false,
            },
            &admin,
        ))
        .await?
        .into_inner();
    assert_eq!((report.missing.len(), report.matched), (0, 2));

    let r = c
        .reconcile(authed(
            pb::ReconcileRequest {
                platform_id: "nowhere".into(),
                redeliver_missing: false,
            },
            &admin,
        ))
        .await;
    assert_eq!(r.err().map(|e| e.code()), Some(Code::NotFound));
    let r = c
        .reconcile(authed(
            pb::ReconcileRequest {
                platform_id: "eia".into(),
                redeliver_missing: true,
            },
            &h.token(Role::Clerk),
        ))
        .await;
    assert_eq!(r.err().map(|e| e.code()), Some(Code::PermissionDenied));
    // Each reconcile by the admin is on dispatch's chain with what it found; the refusal is
    // there as refused.
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
        vec![("Reconcile", "clerk")]
    );
    let chain = tongban_audit::service_chain("dispatch");
    let trail = tongban_audit::entries(&h.db, &chain).await?;
    assert_eq!(tongban_audit::verify_chain(&chain, &trail), None);
    let acts: Vec<_> = trail
        .iter()
        .filter(|e| e.outcome == "done")
        .map(|e| {
            (
                e.action.as_str(),
                e.actor.role.as_str(),
                e.target.as_str(),
                e.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        acts,
        vec![
            (
                "reconcile",
                "admin",
                "eia",
                "method list, missing 2, extra 0, matched 0, unchecked 0, redelivered 0"
            ),
            (
                "reconcile",
                "admin",
                "eia",
                "method list, missing 2, extra 0, matched 0, unchecked 0, redelivered 2"
            ),
            (
                "reconcile",
                "admin",
                "eia",
                "method list, missing 0, extra 0, matched 2, unchecked 0, redelivered 0"
            ),
        ]
    );
    Ok(())
}

/// An admin's Reconcile of `platform`.
async fn reconcile(
    h: &Harness,
    platform: &str,
    redeliver_missing: bool,
) -> anyhow::Result<pb::ReconcileResponse> {
    Ok(h.client
        .clone()
        .reconcile(authed(
            pb::ReconcileRequest {
                platform_id: platform.into(),
                redeliver_missing,
            },
            &h.token(Role::Admin),
        ))
        .await?
        .into_inner())
}

/// national_investment answers per key only (`method = "status"`): a lost delivery is found by
/// asking for it, and re-delivered.
async fn reconcile_by_status_finds_and_redelivers_a_lost_key(
    backend: Backend,
) -> anyhow::Result<()> {
    let h = Harness::start(backend, |_| {}).await?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted, &approved]).await?;
    h.wait_all_delivered(1).await?;
    let report = reconcile(&h, "national_investment", false).await?;
    assert_eq!(report.method(), pb::ReconcileMethod::Status);
    assert_eq!((report.missing.len(), report.matched), (0, 2), "{report:?}");
    assert!(report.unchecked.is_empty() && report.extra.is_empty());
    assert!(
        report.note.contains("extra keys were not looked for"),
        "{}",
        report.note
    );

    // The platform loses everything; the listing is gone too, but each key is asked alone.
    let lost = http()
        .delete(format!("{}/_received", h.url("national_investment")?))
        .send()
        .await?;
    assert!(lost.status().is_success());
    let delivered: Vec<String> = h
        .deliveries("national_investment", pb::DeliveryStatus::Succeeded)
        .await?
        .into_iter()
        .map(|d| d.idempotency_key)
        .collect();
    let report = reconcile(&h, "national_investment", true).await?;
    let mut expected = delivered.clone();
    expected.sort();
    assert_eq!(report.missing, expected);
    assert_eq!((report.matched, report.redelivered), (0, 2));
    assert!(report.unchecked.is_empty());
    h.wait_all_delivered(1).await?;
    let mut held = h.received("national_investment").await?;
    held.sort();
    assert_eq!(held, expected);
    let report = reconcile(&h, "national_investment", false).await?;
    assert_eq!((report.missing.len(), report.matched), (0, 2));
    Ok(())
}

/// A status URL that does not answer leaves the keys unchecked: neither missing (so not sent
/// again) nor matched, with the reason in the note.
async fn reconcile_by_status_reports_unanswered_keys_as_unchecked(
    backend: Backend,
) -> anyhow::Result<()> {
    // Port 1 refuses connections, like a platform that is down.
    let h = Harness::start(backend, |configs| {
        for c in configs.iter_mut().filter(|c| c.id == "national_investment") {
            c.reconcile = tongban_platform::Reconcile::Status {
                url_template: "http://127.0.0.1:1/api/status/{key}".into(),
            };
        }
    })
    .await?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted, &approved]).await?;
    h.wait_all_delivered(1).await?;
    let report = reconcile(&h, "national_investment", true).await?;
    assert_eq!(report.method(), pb::ReconcileMethod::Status);
    assert_eq!(report.unchecked.len(), 2, "{report:?}");
    assert!(report.missing.is_empty() && report.extra.is_empty());
    assert_eq!((report.matched, report.redelivered), (0, 0));
    assert!(
        report.note.contains("2 could not be checked") && report.note.contains("unreachable"),
        "{}",
        report.note
    );
    // Nothing went back to the queue: both deliveries stay succeeded.
    h.wait_status("national_investment", pb::DeliveryStatus::Succeeded, 2)
        .await?;
    Ok(())
}

/// pollutant_permit answers no queries (`method = "none"`): a delivery with a receipt counts as
/// matched, one without is unchecked, and a loss cannot be seen, so nothing is re-delivered.
async fn reconcile_by_receipts_asks_the_platform_nothing(backend: Backend) -> anyhow::Result<()> {
    // eia as well, but keeping no receipt: its rows have nothing to confirm them.
    let h = Harness::start(backend, |configs| {
        for c in configs.iter_mut().filter(|c| c.id == "eia") {
            c.reconcile = tongban_platform::Reconcile::None;
            c.receipt = None;
        }
    })
    .await?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted, &approved]).await?;
    h.wait_all_delivered(1).await?;
    let permit = h
        .deliveries("pollutant_permit", pb::DeliveryStatus::Succeeded)
        .await?;
    assert!(!permit[0].receipt.is_empty(), "{permit:?}");
    // Even a platform that lost everything is not asked.
    let lost = http()
        .delete(format!("{}/_received", h.url("pollutant_permit")?))
        .send()
        .await?;
    assert!(lost.status().is_success());
    let report = reconcile(&h, "pollutant_permit", true).await?;
    assert_eq!(report.method(), pb::ReconcileMethod::Receipts);
    assert_eq!((report.matched, report.redelivered), (1, 0), "{report:?}");
    assert!(report.missing.is_empty() && report.extra.is_empty() && report.unchecked.is_empty());
    assert!(report.note.contains("1 of the 1"), "{}", report.note);

    let report = reconcile(&h, "eia", true).await?;
    assert_eq!(report.method(), pb::ReconcileMethod::Receipts);
    assert_eq!((report.matched, report.redelivered), (0, 0), "{report:?}");
    let mut keys: Vec<String> = h
        .deliveries("eia", pb::DeliveryStatus::Succeeded)
        .await?
        .into_iter()
        .map(|d| d.idempotency_key)
        .collect();
    keys.sort();
    assert_eq!(report.unchecked, keys);
    assert!(report.missing.is_empty());
    assert!(report.note.contains("2 gave no receipt"), "{}", report.note);
    Ok(())
}

async fn bad_mapping_stops_start_up_naming_file_and_field(backend: Backend) -> anyhow::Result<()> {
    let test_db = TestDb::new(backend, "dispatch").await?;
    let (bus, _bus_dir) = match backend {
        Backend::Postgres => (tongban_testkit::rabbit_bus("dispatch").await?.0, None),
        Backend::Sqlite => {
            let (b, d) = tongban_testkit::local_bus().await?;
            (b, Some(d))
        }
    };
    let deploy = tempfile::tempdir()?;
    let dir = deploy.path().join("platforms");
    std::fs::create_dir_all(&dir)?;
    let shipped_dir: PathBuf = tongban_testkit::deploy_dir().join("platforms");
    let mut files: HashMap<String, String> = HashMap::new();
    for entry in std::fs::read_dir(&shipped_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            files.insert(name, std::fs::read_to_string(&path)?);
        }
    }
    for (name, mut text) in files {
        if name == "eia.toml" {
            text = text.replace("format = \"date:%Y-%m-%d\" }", "format = \"date:%Q\" }");
        }
        std::fs::write(dir.join(name), text)?;
    }
    let keys = Keys::new();
    let ctx = tongban_runtime::Context {
        db: tongban_storage::connect(&test_db.url).await?,
        bus,
        auth: keys.authenticator(),
        deploy_dir: deploy.path().to_path_buf(),
        audit: None,
        metrics_listen: None,
        tls: None,
        shutdown_timeout: tongban_runtime::config::DEFAULT_SHUTDOWN_TIMEOUT,
        retention: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let err = tongban_dispatch::run(ctx, listener, CancellationToken::new())
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("started with a bad mapping"))?
        .to_string();
    assert!(err.contains("eia.toml"), "{err}");
    assert!(err.contains("mapping.sqsj.format"), "{err}");
    Ok(())
}

tongban_testkit::on_both!(
    restart_mid_delivery_loses_nothing_and_duplicates_nothing,
    reconcile_redelivers_what_a_platform_lost,
    reconcile_by_status_finds_and_redelivers_a_lost_key,
    reconcile_by_status_reports_unanswered_keys_as_unchecked,
    reconcile_by_receipts_asks_the_platform_nothing,
    bad_mapping_stops_start_up_naming_file_and_field,
);
