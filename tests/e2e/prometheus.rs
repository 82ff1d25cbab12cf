//! Debian's `prometheus` scrapes every replica of a `tongban local` stack, and the series of one
//! application come back through its HTTP API. Needs the `prometheus` binary on the PATH
//! (`apt-get install prometheus`; `.ci/run` installs it); fails, never skips, without it.

use std::{process::Command, time::Duration};

use tongban_e2e::{LocalStack, Proc, free_ports, one_application_end_to_end};

/// Prometheus with one scrape job over `targets` (`(process name, host:port)`), scraping every
/// second, on a free port. Killed when the returned guard drops.
fn start_prometheus(
    dir: &std::path::Path,
    targets: &[(String, String)],
) -> anyhow::Result<(Proc, String)> {
    let bin = which("prometheus").ok_or_else(|| {
        anyhow::anyhow!(
            "prometheus is not installed (apt-get install prometheus; .ci/run does it); this test needs it"
        )
    })?;
    let mut yml = String::from(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: tongban\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n",
    );
    for (name, target) in targets {
        yml.push_str(&format!(
            "      - targets: ['{target}']\n        labels:\n          tongban_process: '{name}'\n"
        ));
    }
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, yml)?;
    let port = free_ports(1)?[0];
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prometheus-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let proc = Proc::spawn("prometheus", cmd, dir)?;
    Ok((proc, format!("http://127.0.0.1:{port}")))
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// The instant vector of `query`: `(labels, value)` per series.
async fn query(
    http: &reqwest::Client,
    base: &str,
    query: &str,
) -> anyhow::Result<Vec<(serde_json::Value, f64)>> {
    let v: serde_json::Value = http
        .get(reqwest::Url::parse_with_params(
            &format!("{base}/api/v1/query"),
            &[("query", query)],
        )?)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    anyhow::ensure!(v["status"] == "success", "query {query}: {v}");
    Ok(v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let value = s["value"][1]
                .as_str()
                .and_then(|x| x.parse().ok())
                .unwrap_or(f64::NAN);
            (s["metric"].clone(), value)
        })
        .collect())
}

/// Polls `q` until its summed value reaches `at_least`; returns the series.
async fn wait_for_value(
    http: &reqwest::Client,
    base: &str,
    q: &str,
    at_least: f64,
    prom: &mut Proc,
) -> anyhow::Result<Vec<(serde_json::Value, f64)>> {
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = Vec::new();
    loop {
        prom.check_alive()?;
        if let Ok(series) = query(http, base, q).await {
            if series.iter().map(|(_, v)| v).sum::<f64>() >= at_least {
                return Ok(series);
            }
            last = series;
        }
        if tokio::time::Instant::now() > until {
            anyhow::bail!("{q} never reached {at_least}; last answer {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_replica_and_reads_back_one_application() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = LocalStack::up(2)?;
    let targets = stack.metrics_targets_by_process();
    assert_eq!(
        targets.len(),
        8,
        "two replicas of four services: {targets:?}"
    );
    let (mut prom, base) = start_prometheus(stack.dir.path(), &targets)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;

    // Every replica's /metrics is a healthy target.
    wait_for_value(&http, &base, "sum(up{job=\"tongban\"})", 8.0, &mut prom).await?;

    let intakes = stack.grpc("intake");
    let approvals = stack.grpc("approval");
    one_application_end_to_end(&stack.keys, &intakes[0], &approvals).await?;

    // The submission, as the RPC duration histogram's count for its method.
    let series = wait_for_value(
        &http,
        &base,
        "sum by (rpc_service) (rpc_server_call_duration_seconds_count{rpc_method=\"SubmitApplication\"})",
        1.0,
        &mut prom,
    )
    .await?;
    assert_eq!(
        series[0].0["rpc_service"], "tongban.intake.v1.IntakeService",
        "{series:?}"
    );
    // The decisions went through the approval replicas.
    wait_for_value(
        &http,
        &base,
        "sum(rpc_server_call_duration_seconds_count{rpc_method=\"DecideTask\"})",
        5.0,
        &mut prom,
    )
    .await?;
    // Every replica reports itself SERVING.
    wait_for_value(&http, &base, "sum(tongban_health_serving)", 8.0, &mut prom).await?;
    // The events across the bus, and one succeeded delivery per platform (the approved
    // application reaches all four), summed over the dispatch replicas.
    wait_for_value(
        &http,
        &base,
        "sum(messaging_client_consumed_messages_total{tongban_event_type=\"application.submitted\"})",
        1.0,
        &mut prom,
    )
    .await?;
    let series = wait_for_value(
        &http,
        &base,
        "count(sum by (platform) (tongban_dispatch_deliveries_total{outcome=\"succeeded\"}) > 0)",
        4.0,
        &mut prom,
    )
    .await?;
    assert_eq!(series.len(), 1, "{series:?}");
    Ok(())
}
