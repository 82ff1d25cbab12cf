//! The CI smoke run of `tongban bench`: a handful of applications, so the harness cannot rot.
//! It checks the report's shape and sense (everything completed, percentiles ordered, the
//! stack drained), never how fast anything was.

mod common;

use common::Dev;
use serde_json::Value;

/// The report's number at `path` (`/a/b`), failing the test when absent or not a number.
fn num(report: &Value, path: &str) -> f64 {
    report
        .pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{path} is not a number in {report:#}"))
}

/// Shape and sense of a report of `n` applications that all completed.
fn check_report(report: &Value, n: f64) {
    assert_eq!(num(report, "/applications"), n, "{report:#}");
    assert_eq!(num(report, "/completed"), n, "{report:#}");
    assert_eq!(num(report, "/failed"), 0.0, "{report:#}");
    assert!(num(report, "/applications_per_second") > 0.0, "{report:#}");
    assert!(num(report, "/wall_seconds") > 0.0, "{report:#}");
    for lat in [
        "submit",
        "submit_to_first_task",
        "approved_to_delivered",
        "submit_to_delivered",
    ] {
        let p = |q: &str| num(report, &format!("/latency_ms/{lat}/{q}"));
        assert_eq!(p("count"), n, "{lat}: {report:#}");
        assert!(p("p50") >= 0.0, "{lat}: {report:#}");
        assert!(
            p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("max"),
            "{lat} percentiles out of order: {report:#}"
        );
    }
    // Approval comes before delivery, so the whole is at least the last stretch.
    assert!(
        num(report, "/latency_ms/submit_to_delivered/max")
            >= num(report, "/latency_ms/approved_to_delivered/p50"),
        "{report:#}"
    );
    let procs = report
        .pointer("/processes")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no processes in {report:#}"));
    let tongban: Vec<&Value> = procs
        .iter()
        .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("tongban")))
        .collect();
    assert_eq!(tongban.len(), 1, "one `tongban dev` process: {report:#}");
    assert!(num(tongban[0], "/cpu_seconds") > 0.0, "{report:#}");
    assert!(num(tongban[0], "/peak_rss_mib") > 0.0, "{report:#}");
    assert!(
        num(report, "/cpu_seconds_per_application") > 0.0,
        "{report:#}"
    );
    // Every application writes events through the outboxes.
    assert!(
        num(report, "/counters/outbox_events/per_application") >= 1.0,
        "{report:#}"
    );
    assert!(
        num(report, "/counters/outbox_bytes/total") > 0.0,
        "{report:#}"
    );
    // SQLite and the embedded bus: no PostgreSQL or AMQP figures to give.
    assert!(
        report["counters"]["postgres_transactions"].is_null(),
        "{report:#}"
    );
    assert!(report["counters"]["amqp_published"].is_null(), "{report:#}");
    assert_eq!(num(report, "/backlog/outbox"), 0.0, "{report:#}");
    assert_eq!(num(report, "/backlog/queues"), 0.0, "{report:#}");
    let per_db = report
        .pointer("/backlog/outbox_by_database")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("no outbox_by_database in {report:#}"));
    assert!(per_db.contains_key("intake"), "{report:#}");
    assert!(per_db.values().all(|n| n.as_u64() == Some(0)), "{report:#}");
}

#[test]
fn bench_spawns_dev_and_reports_json() -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let run = common::run_cli(
        "http://127.0.0.1:1",
        scratch.path(),
        None,
        &[
            "bench",
            "--spawn",
            "-n",
            "5",
            "--concurrency",
            "2",
            "--timeout",
            "120",
            "--output",
            "json",
        ],
    )?;
    assert_eq!(run.code, 0, "{run:?}");
    let report: Value = serde_json::from_str(&run.stdout)?;
    assert_eq!(report["offered"]["concurrency"], 2, "{report:#}");
    check_report(&report, 5.0);
    Ok(())
}

#[test]
fn bench_offers_a_rate_against_a_running_dev() -> anyhow::Result<()> {
    let mut dev = Dev::start()?;
    dev.wait_for(1)?;
    dev.wait_for(3)?;
    let data = dev.data().to_string_lossy().into_owned();
    // `n` applications against the running dev, loaded as `load` says; the JSON report.
    let bench = |n: &str, load: &[&str]| -> anyhow::Result<Value> {
        let mut args = vec!["bench", "--data-dir", &data, "-n", n];
        args.extend_from_slice(load);
        args.extend_from_slice(&["--timeout", "120", "--output", "json"]);
        let run = dev.cli(None, &args)?;
        assert_eq!(run.code, 0, "{run:?}\n{}", dev.log());
        Ok(serde_json::from_str(&run.stdout)?)
    };
    let report = bench("3", &["--rate", "5"])?;
    assert_eq!(report["offered"]["rate"], 5.0, "{report:#}");
    check_report(&report, 3.0);

    // A closed loop over whole applications: one at a time, each delivered before the next.
    let report = bench("2", &["--in-flight", "1"])?;
    assert_eq!(report["offered"]["in_flight"], 1, "{report:#}");
    check_report(&report, 2.0);

    // The table shows the same run's figures.
    let run = dev.cli(
        None,
        &["bench", "--data-dir", &data, "-n", "1", "--timeout", "120"],
    )?;
    assert_eq!(run.code, 0, "{run:?}\n{}", dev.log());
    for label in ["Throughput", "submit → all delivered", "Backlog at end"] {
        assert!(run.stdout.contains(label), "{label}: {}", run.stdout);
    }
    Ok(())
}

#[test]
fn bench_refuses_a_nonsense_rate() -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let run = common::run_cli(
        "http://127.0.0.1:1",
        scratch.path(),
        None,
        &["bench", "--rate", "0"],
    )?;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("--rate"), "{run:?}");
    Ok(())
}

#[test]
fn bench_takes_one_way_of_offering_load() -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let run = common::run_cli(
        "http://127.0.0.1:1",
        scratch.path(),
        None,
        &["bench", "--rate", "5", "--in-flight", "2"],
    )?;
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("--in-flight"), "{run:?}");
    Ok(())
}
