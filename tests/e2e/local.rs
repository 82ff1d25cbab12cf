//! `tongban local`: the production topology with two replicas of every service, started,
//! used for one application from submission to all four platforms, inspected and stopped.

use std::time::Duration;

use tongban_e2e::{LocalStack, one_application_end_to_end, running};
use tongban_testkit::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_up_serves_two_replicas_end_to_end_and_down_stops_everything() -> anyhow::Result<()> {
    let mut stack = LocalStack::up(2)?;
    let intakes = stack.grpc("intake");
    let approvals = stack.grpc("approval");
    assert_eq!(intakes.len(), 2, "{}", stack.state);
    assert_eq!(approvals.len(), 2, "{}", stack.state);
    assert_eq!(stack.grpc("dispatch").len(), 2, "{}", stack.state);
    assert_eq!(stack.grpc("notification").len(), 2, "{}", stack.state);
    // Four services x two replicas, and the simulators.
    let pids = stack.pids();
    assert_eq!(pids.len(), 9, "{}", stack.state);
    assert!(pids.iter().all(|p| running(*p)), "{}", stack.state);

    // Submitted on the second intake replica, decided on both approval replicas.
    let app = one_application_end_to_end(&stack.keys, &intakes[1], &approvals).await?;
    assert!(
        app.decision_number.starts_with("松环审"),
        "{}",
        app.decision_number
    );

    // Reconciliation through the CLI (dispatch found from intake's URL, port + 3): the
    // ledger and the simulators agree; a simulator that forgets is found, and re-delivered.
    let admin = stack.keys.token(tongban_auth::Role::Admin, None, None);
    let server = intakes[1].clone();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &server, "--token", &admin]);
        stack.tongban(&all)
    };
    let run = cli(&["deliveries", "reconcile", "--output", "json"])?;
    assert_eq!(run.code, 0, "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout)?;
    let matched: u64 = v["platforms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["matched"].as_u64())
        .sum();
    assert!(matched >= 4, "{v}");
    let eia = stack
        .simulators()
        .into_iter()
        .find(|(id, _)| id == "eia")
        .map(|(_, url)| url)
        .ok_or_else(|| anyhow::anyhow!("no eia simulator"))?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
        .delete(format!("{eia}/_received"))
        .send()
        .await?
        .error_for_status()?;
    let run = cli(&["deliveries", "reconcile", "--platform", "eia"])?;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stdout.contains("eia lacks"), "{run:?}");
    assert!(run.stderr.contains("--redeliver-missing"), "{run:?}");
    let run = cli(&[
        "deliveries",
        "reconcile",
        "--platform",
        "eia",
        "--redeliver-missing",
    ])?;
    assert_eq!(run.code, 0, "{run:?}");
    eventually(
        Duration::from_secs(30),
        "eia to hold every delivery again",
        || {
            let run = cli(&["deliveries", "reconcile", "--platform", "eia"]);
            async move { run.ok().filter(|r| r.code == 0) }
        },
    )
    .await?;

    // `status`: every process alive and SERVING (health is truthful, so a loaded machine may
    // show a replica NOT_SERVING for a moment: wait for all of them rather than sample once).
    let state_dir = stack.state_dir();
    let run = eventually(Duration::from_secs(30), "status to exit 0", || {
        let run = stack.tongban(&["local", "status", "--state-dir", &state_dir]);
        async move { run.ok().filter(|r| r.code == 0) }
    })
    .await?;
    assert_eq!(
        run.stdout.lines().filter(|l| l.contains("SERVING")).count(),
        9,
        "{run:?}"
    );
    let run = stack.tongban(&[
        "local",
        "status",
        "--state-dir",
        &state_dir,
        "--output",
        "json",
    ])?;
    let v: serde_json::Value = serde_json::from_str(&run.stdout)?;
    let procs = v["processes"].as_array().cloned().unwrap_or_default();
    assert_eq!(procs.len(), 9, "{v}");
    assert!(procs.iter().all(|p| p["alive"] == true), "{v}");

    // `tongban health` finds the four services of replica 2 from its intake URL alone.
    let env = [("TONGBAN_SERVER".to_string(), intakes[1].clone())];
    let run = eventually(Duration::from_secs(30), "replica 2 healthy", || {
        let run = stack.tongban_with_env(&env, &["health"]);
        async move { run.ok().filter(|r| r.code == 0) }
    })
    .await?;
    assert_eq!(
        run.stdout.lines().filter(|l| l.contains("SERVING")).count(),
        4,
        "{run:?}"
    );

    // A second `up` on the same state dir refuses while the stack runs.
    let run = stack.tongban(&["local", "up", "--free-ports", "--state-dir", &state_dir])?;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("already running"), "{run:?}");

    // One replica dies: status says so and exits 4.
    let victim = procs
        .iter()
        .find(|p| p["name"] == "dispatch-2")
        .and_then(|p| p["pid"].as_i64())
        .ok_or_else(|| anyhow::anyhow!("no dispatch-2: {v}"))?;
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()?;
    assert!(killed.success());
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while running(i32::try_from(victim)?) && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run = stack.tongban(&["local", "status", "--state-dir", &state_dir])?;
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stderr.contains("dispatch-2"), "{run:?}");

    // `down` stops everything and forgets the stack.
    let run = stack.down()?;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("Stopped 8 process(es)."), "{run:?}");
    let left: Vec<i32> = pids.iter().copied().filter(|p| running(*p)).collect();
    assert!(left.is_empty(), "still running after down: {left:?}");
    let run = stack.tongban(&["local", "status", "--state-dir", &state_dir])?;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("no local stack"), "{run:?}");
    Ok(())
}

/// `up` that cannot reach PostgreSQL says so on one line, exits 1 and leaves no state behind;
/// `down` and `status` without a stack say there is none.
#[test]
fn local_up_without_postgres_fails_cleanly() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let state_dir = dir.path().join("state");
    let state = state_dir.to_string_lossy().to_string();
    let dead = tongban_e2e::free_ports(1)?[0];
    let out = std::process::Command::new(tongban_e2e::binary("tongban")?)
        .args(["local", "up", "--free-ports", "--state-dir", &state])
        .args([
            "--admin-url",
            &format!("postgres://postgres@127.0.0.1:{dead}/postgres"),
        ])
        .args([
            "--deploy-dir",
            &tongban_testkit::deploy_dir().to_string_lossy(),
        ])
        .env_remove("TONGBAN_LOCAL_STATE_DIR")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("PostgreSQL"), "{stderr}");
    assert!(!state_dir.join("local.json").exists());

    let out = std::process::Command::new(tongban_e2e::binary("tongban")?)
        .args(["local", "down", "--state-dir", &state])
        .output()?;
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to stop"));
    let out = std::process::Command::new(tongban_e2e::binary("tongban")?)
        .args(["local", "status", "--state-dir", &state])
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    Ok(())
}
