//! `tongban inbox` and `tongban read` against the notification service inside `tongban dev`
//! (base port + 2): the applicant and the reviewing clerk see what happened, marking read
//! hides a notification from `--unread`, and `--follow` streams new ones.

mod common;

use std::time::{Duration, Instant};

use common::{Dev, eventually, example_path};
use serde_json::Value;

fn start_full_stack() -> anyhow::Result<Dev> {
    let mut dev = Dev::start()?;
    dev.wait_for(1)?;
    dev.wait_for(2)?;
    dev.wait_for(3)?;
    Ok(dev)
}

fn submit(dev: &Dev, token: &str, request_id: Option<&str>) -> anyhow::Result<String> {
    let example = example_path();
    let example = example.to_string_lossy();
    let mut args = vec!["submit", "--file", &example, "--output", "json"];
    if let Some(r) = request_id {
        args.extend(["--request-id", r]);
    }
    let v = dev.cli(Some(token), &args)?.ok()?.json()?;
    let id = v["application"]["applicationId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    anyhow::ensure!(!id.is_empty(), "no application id in {v}");
    Ok(id)
}

/// The notifications in `inbox ARGS --output json`.
fn inbox(dev: &Dev, token: &str, args: &[&str]) -> anyhow::Result<Vec<Value>> {
    let mut all = vec!["inbox", "--output", "json"];
    all.extend(args);
    let v = dev.cli(Some(token), &all)?.ok()?.json()?;
    Ok(v["notifications"].as_array().cloned().unwrap_or_default())
}

fn find<'a>(list: &'a [Value], kind: &str, app: &str) -> Option<&'a Value> {
    list.iter()
        .find(|n| n["kind"] == kind && n["applicationId"] == app)
}

/// int64 is a string in proto3 JSON.
fn cursor(n: &Value) -> i64 {
    n["cursor"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| n["cursor"].as_i64())
        .unwrap_or(0)
}

#[test]
fn applicant_and_clerk_read_their_inbox_and_follow_it() -> anyhow::Result<()> {
    let dev = start_full_stack()?;
    let applicant = dev.applicant()?;
    let id = submit(&dev, &applicant, None)?;

    // The applicant hears that the application was submitted.
    let mine = eventually(30, "application.submitted in the applicant's inbox", || {
        let list = inbox(&dev, &applicant, &[])?;
        Ok(find(&list, "application.submitted", &id).map(|_| list.clone()))
    })?;
    let n = find(&mine, "application.submitted", &id)
        .cloned()
        .unwrap_or_default();
    assert!(
        n["notificationId"].as_str().is_some_and(|s| !s.is_empty()),
        "{n}"
    );
    let run = dev.cli(Some(&applicant), &["inbox"])?.ok()?;
    assert!(
        run.stdout.contains("application.submitted"),
        "{}",
        run.stdout
    );
    let short = &id[id.len() - 8..];
    assert!(run.stdout.contains(short), "{}", run.stdout);

    // The clerks of the accepting department hear about the new task.
    let clerk = dev.token(&["--role", "clerk", "--department", "admin_approval"])?;
    let task = eventually(30, "task.created in the clerk's inbox", || {
        let list = inbox(&dev, &clerk, &["--unread"])?;
        Ok(find(&list, "task.created", &id).cloned())
    })?;
    let nid = task["notificationId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(task["readTime"].is_null(), "{task}");

    // Marking it read takes it out of --unread, but it stays in the inbox.
    let run = dev.cli(Some(&clerk), &["read", &nid])?.ok()?;
    assert!(run.stdout.contains("Marked 1"), "{}", run.stdout);
    let unread = inbox(&dev, &clerk, &["--unread"])?;
    let run = dev.cli(Some(&clerk), &["inbox", "--unread"])?.ok()?;
    assert!(
        !run.stdout.contains(&nid[nid.len() - 12..]),
        "{}",
        run.stdout
    );
    assert!(
        unread.iter().all(|n| n["notificationId"] != nid.as_str()),
        "{unread:?}"
    );
    let all = inbox(&dev, &clerk, &[])?;
    let again = all.iter().find(|n| n["notificationId"] == nid.as_str());
    assert!(again.is_some_and(|n| !n["readTime"].is_null()), "{all:?}");

    // An applicant may not mark a department's notification: nothing is marked.
    let v = dev
        .cli(Some(&applicant), &["read", &nid, "--output", "json"])?
        .ok()?
        .json()?;
    assert_ne!(v["marked"], 1, "{v}");

    // --follow prints one JSON line per new notification.
    let after = mine.iter().map(cursor).max().unwrap_or(0).to_string();
    let follow = dev.spawn_cli(
        Some(&applicant),
        &["inbox", "--follow", "--after", &after, "--output", "json"],
    )?;
    // Give the subscription a moment; notifications committed before it are streamed anyway.
    std::thread::sleep(Duration::from_millis(300));
    let second = submit(&dev, &applicant, Some("inbox-flow-second-submission"))?;
    assert_ne!(second, id);
    let until = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        anyhow::ensure!(
            !left.is_zero(),
            "no application.submitted line for {second} within 30 s; got {seen:?}"
        );
        let Some(line) = follow.next_line(left) else {
            anyhow::bail!("--follow printed nothing for {second}; got {seen:?}");
        };
        let n: Value = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("not one JSON object per line ({e}): {line}"))?;
        assert!(cursor(&n) > after.parse::<i64>()?, "{line}");
        if n["kind"] == "application.submitted" && n["applicationId"] == second.as_str() {
            break;
        }
        seen.push(line);
    }
    drop(follow);
    Ok(())
}

#[test]
fn inbox_needs_a_token_and_a_reachable_server() -> anyhow::Result<()> {
    let dev = start_full_stack()?;
    let run = dev.cli(None, &["inbox"])?;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.starts_with("error: UNAUTHENTICATED"), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");

    let scratch = tempfile::tempdir()?;
    let run = common::run_cli("http://127.0.0.1:1", scratch.path(), Some("t"), &["inbox"])?;
    assert_eq!(run.code, 4, "{run:?}");
    let run = common::run_cli(
        "http://127.0.0.1:1",
        scratch.path(),
        Some("t"),
        &["inbox", "--follow"],
    )?;
    assert_eq!(run.code, 4, "{run:?}");
    Ok(())
}
