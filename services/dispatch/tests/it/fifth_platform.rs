//! Adding a platform is adding a file: the worked example of deploy/platforms/README.md,
//! written next to the four shipped files, is loaded, simulated and delivered to like them,
//! with no code change.

use crate::common::*;

const FIFTH: &str = "natural_resources";

/// The worked example's TOML, taken from the guide so that the guide cannot drift from what
/// works.
fn example_from_guide() -> anyhow::Result<String> {
    let guide = std::fs::read_to_string(
        tongban_testkit::deploy_dir()
            .join("platforms")
            .join("README.md"),
    )?;
    guide
        .split("```toml\n")
        .skip(1)
        .filter_map(|block| block.split_once("```").map(|(toml, _)| toml))
        .find(|toml| toml.contains(&format!("id = \"{FIFTH}\"")))
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("deploy/platforms/README.md has no {FIFTH} example"))
}

/// The shipped platform files and the fifth, in a directory of their own.
fn five_platforms() -> anyhow::Result<(tempfile::TempDir, Vec<PlatformConfig>)> {
    let dir = tempfile::tempdir()?;
    let shipped_dir = tongban_testkit::deploy_dir().join("platforms");
    for entry in std::fs::read_dir(&shipped_dir)? {
        let path = entry?.path();
        if let (Some("toml"), Some(name)) =
            (path.extension().and_then(|e| e.to_str()), path.file_name())
        {
            std::fs::copy(&path, dir.path().join(name))?;
        }
    }
    std::fs::write(
        dir.path().join(format!("{FIFTH}.toml")),
        example_from_guide()?,
    )?;
    let platforms = tongban_platform::load_dir_with_env(dir.path(), &|_| None)?;
    Ok((dir, platforms))
}

async fn a_fifth_platform_file_is_delivered_to_like_the_others(
    backend: Backend,
) -> anyhow::Result<()> {
    let (_dir, platforms) = five_platforms()?;
    let ids: Vec<&str> = platforms.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "eia",
            "national_investment",
            FIFTH,
            "pollutant_permit",
            "provincial_gov_services"
        ]
    );
    let h = Harness::start_with_configs(backend, platforms, |_| {}).await?;
    let (submitted, approved) = application()?;
    h.publish(&[&submitted, &approved]).await?;
    h.wait_all_delivered(1).await?;

    // `delivery = "latest_state"`: the approval reaches the platform; the submission either
    // did first or was superseded by it while waiting. Nothing is left pending.
    let fifth = eventually(
        WAIT,
        "the approval delivered to the fifth platform",
        || async {
            let all = h
                .deliveries(FIFTH, pb::DeliveryStatus::Unspecified)
                .await
                .ok()?;
            let settled = all.len() == 2
                && all.iter().all(|d| {
                    matches!(
                        d.status(),
                        pb::DeliveryStatus::Succeeded | pb::DeliveryStatus::Superseded
                    )
                });
            settled.then_some(all)
        },
    )
    .await?;
    let delivered = fifth
        .iter()
        .find(|d| d.event_id == approved.event_id)
        .ok_or_else(|| anyhow::anyhow!("no approval delivery: {fifth:?}"))?;
    assert_eq!(delivered.status(), pb::DeliveryStatus::Succeeded);
    // The receipt came from the reply, at the file's pointer (`/body/slh`).
    assert!(
        delivered.receipt.starts_with("NATURAL_RESOURCES-"),
        "{delivered:?}"
    );

    // 5 of 5: every platform's ledger has the application delivered.
    let mut reached = Vec::new();
    for config in &h.configs {
        if !h
            .deliveries(&config.id, pb::DeliveryStatus::Succeeded)
            .await?
            .is_empty()
        {
            reached.push(config.id.clone());
        }
    }
    assert_eq!(reached.len(), 5, "{reached:?}");

    // The fifth simulator holds the mapped body: nested target, code table, event code.
    let held: Value = http()
        .get(format!(
            "{}/_received/{}",
            h.url(FIFTH)?,
            delivered.idempotency_key
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(held["jsxz"], "1", "{held}"); // construction_nature `new`
    assert_eq!(held["sfxzyd"], "Y", "{held}"); // occupies_land `true`
    assert_eq!(held["hpzt"], "2", "{held}"); // approved
    assert_eq!(held["hppfwh"], "松环审〔2026〕12号", "{held}");
    assert_eq!(held["jsdw"]["tyshxydm"], "91350100M000100Y43", "{held}");
    assert_eq!(held["sjly"], "tongban", "{held}");

    // Its `[reconcile] method = "status"` asks the simulator per key.
    let report = h
        .client
        .clone()
        .reconcile(authed(
            pb::ReconcileRequest {
                platform_id: FIFTH.into(),
                redeliver_missing: false,
            },
            &h.token(Role::Admin),
        ))
        .await?
        .into_inner();
    assert_eq!(report.method(), pb::ReconcileMethod::Status);
    assert!(
        report.missing.is_empty() && report.unchecked.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.matched as usize, h.received(FIFTH).await?.len());
    Ok(())
}

tongban_testkit::on_both!(a_fifth_platform_file_is_delivered_to_like_the_others);
