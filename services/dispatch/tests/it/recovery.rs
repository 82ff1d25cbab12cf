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
                "missing 2, extra 0, matched 0, redelivered 0"
            ),
            (
                "reconcile",
                "admin",
                "eia",
                "missing 2, extra 0, matched 0, redelivered 2"
            ),
            (
                "reconcile",
                "admin",
                "eia",
                "missing 0, extra 0, matched 2, redelivered 0"
            ),
        ]
    );
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
    bad_mapping_stops_start_up_naming_file_and_field,
);
