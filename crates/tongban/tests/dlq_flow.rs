//! `tongban dlq list|show|replay|discard` against a real `tongban dev`: an undecodable message
//! on a key three consumers bind is dead-lettered by each; the CLI lists and shows it, refuses
//! a discard without --yes and a non-admin, reports an unknown id as NOT_FOUND, replays it to
//! one service (which dead-letters it again) and discards it.

mod common;

use common::{Dev, eventually};

/// Puts `payload` on the dev stack's embedded bus as an event of type `key`, as a broken
/// producer would. The test opens the bus file itself: nothing in the CLI publishes garbage.
fn publish_garbage(dev: &Dev, key: &str, payload: &[u8]) -> anyhow::Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    let url = format!("sqlite://{}?mode=rw", dev.data().join("bus.db").display());
    let msg = tongban_bus::OutgoingMessage {
        event_id: id.clone(),
        routing_key: key.into(),
        payload: payload.to_vec(),
        traceparent: None,
    };
    tokio::runtime::Runtime::new()?.block_on(async move {
        let bus = tongban_bus::Bus::connect(&url, "tongban.events").await?;
        bus.publish_batch(&[msg]).await?;
        anyhow::Ok(())
    })?;
    Ok(id)
}

fn depth(dev: &Dev, admin: &str, service: &str) -> anyhow::Result<(u64, Vec<String>)> {
    let v = dev
        .cli(
            Some(admin),
            &["dlq", "list", "--service", service, "--output", "json"],
        )?
        .ok()?
        .json()?;
    let depth = v["depth"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .or_else(|| v["depth"].as_u64())
        .unwrap_or(0);
    let ids = v["deadLetters"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d["eventId"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Ok((depth, ids))
}

#[test]
fn dead_letters_are_listed_shown_replayed_and_discarded() -> anyhow::Result<()> {
    let mut dev = Dev::start()?;
    for offset in 1..=3 {
        dev.wait_for(offset)?;
    }
    let admin = dev.token(&["--role", "admin"])?;
    // Wait until approval answers (its consumer is declared by then).
    eventually(30, "approval's dead letters answer", || {
        Ok((dev
            .cli(Some(&admin), &["dlq", "list", "--service", "approval"])?
            .code
            == 0)
            .then_some(()))
    })?;

    let id = publish_garbage(&dev, "application.submitted", b"\xff\xff not an envelope")?;
    for service in ["approval", "dispatch"] {
        eventually(30, &format!("{service} dead-letters the garbage"), || {
            let (n, ids) = depth(&dev, &admin, service)?;
            Ok((n == 1 && ids == [id.clone()]).then_some(()))
        })?;
    }

    let table = dev
        .cli(Some(&admin), &["dlq", "list", "--service", "approval"])?
        .ok()?;
    assert!(
        table.stdout.contains(&id) && table.stdout.contains("rejected"),
        "{}",
        table.stdout
    );
    let shown = dev
        .cli(Some(&admin), &["dlq", "show", "--service", "approval", &id])?
        .ok()?;
    assert!(shown.stdout.contains("Undecodable"), "{}", shown.stdout);

    // Refusals: no --yes, not an admin, an id that is not there.
    let no_yes = dev.cli(
        Some(&admin),
        &["dlq", "discard", "--service", "approval", "--all"],
    )?;
    assert_eq!(no_yes.code, 1, "{no_yes:?}");
    assert!(no_yes.stderr.contains("--yes"), "{no_yes:?}");
    let clerk = dev.token(&["--role", "clerk", "--department", "eco_env"])?;
    let denied = dev.cli(Some(&clerk), &["dlq", "list", "--service", "approval"])?;
    assert_eq!(denied.code, 3, "{denied:?}");
    let missing = dev.cli(
        Some(&admin),
        &["dlq", "replay", "--service", "approval", "no-such-event"],
    )?;
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(missing.stderr.contains("NOT_FOUND"), "{missing:?}");
    assert_eq!(depth(&dev, &admin, "approval")?.0, 1);

    // Replayed to dispatch only: it refuses it again, back in its dead-letter queue; approval's
    // copy is untouched.
    let replayed = dev
        .cli(
            Some(&admin),
            &[
                "dlq",
                "replay",
                "--service",
                "dispatch",
                &id,
                "--reason",
                "cli test",
            ],
        )?
        .ok()?;
    assert!(replayed.stdout.contains(&id), "{}", replayed.stdout);
    eventually(30, "dispatch dead-letters it again", || {
        let (n, ids) = depth(&dev, &admin, "dispatch")?;
        Ok((n == 1 && ids == [id.clone()]).then_some(()))
    })?;
    let show = dev
        .cli(
            Some(&admin),
            &[
                "dlq",
                "show",
                "--service",
                "dispatch",
                &id,
                "--output",
                "json",
            ],
        )?
        .ok()?
        .json()?;
    assert_eq!(show["deadLetter"]["deathCount"], "2", "{show}");

    for service in ["approval", "dispatch"] {
        let gone = dev
            .cli(
                Some(&admin),
                &["dlq", "discard", "--service", service, "--all", "--yes"],
            )?
            .ok()?;
        assert!(gone.stdout.contains(&id), "{}", gone.stdout);
        assert_eq!(depth(&dev, &admin, service)?, (0, vec![]));
    }
    Ok(())
}
