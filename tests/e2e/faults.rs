//! The fault suite: the production topology with two replicas of every service, on a
//! PostgreSQL cluster and a RabbitMQ node of its own, under a bounded load of applications
//! that clerks approve over gRPC, while one fault is injected per scenario. After each, every
//! invariant of [`tongban_e2e::faults::Faults::check`] must hold: every application final and
//! delivered, every task decided at most once, each platform holding exactly one record per
//! event it subscribes to, nothing unsent or queued, nothing dead-lettered but the poison, and
//! every audit chain intact. Each scenario writes its findings to `target/faults/<name>.md`
//! (`scripts/reliability-report.sh` gathers them into `docs/reliability.md`).
//!
//! The scenarios run one at a time (a nextest test group): each starts nine processes, a
//! database cluster and a broker node.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;
use tongban_e2e::faults::{Driver, Faults, record};

/// Applications per scenario (`TONGBAN_FAULT_APPLICATIONS` overrides).
fn applications() -> usize {
    std::env::var("TONGBAN_FAULT_APPLICATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// How long the load may take to finish once the fault is over.
const FINISH: Duration = Duration::from_secs(300);

/// A scenario under way: the stack, and the load running against it.
struct Running {
    faults: Faults,
    driver: Driver,
    submit: tokio::task::JoinHandle<anyhow::Result<Vec<String>>>,
    clerks: tokio::task::JoinSet<()>,
    stop: CancellationToken,
    started: Instant,
    n: usize,
}

impl Running {
    /// Starts the stack (`env` in the services' environment) and a load of `n` applications;
    /// clerks use the approval replicas listed (empty: all).
    async fn begin(
        n: usize,
        env: &[(String, String)],
        approval_replicas: &[usize],
    ) -> anyhow::Result<Self> {
        let faults = Faults::start(env).await?;
        let driver = Driver::new(&faults.stack, faults.stack.keys.clone(), approval_replicas)?;
        let started = Instant::now();
        let submitter = driver.clone();
        let submit = tokio::spawn(async move {
            submitter
                .submit_many(n, 8, Instant::now() + Duration::from_secs(240))
                .await
        });
        let stop = CancellationToken::new();
        let clerks = driver.clerks(stop.clone());
        Ok(Self {
            faults,
            driver,
            submit,
            clerks,
            stop,
            started,
            n,
        })
    }

    /// Waits until at least `k` applications were submitted.
    async fn after_submitted(&self, k: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let have = self
                .driver
                .applications
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .len();
            if have >= k.min(self.n) {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {have} submitted after 120 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Lets the load finish, checks the invariants, records the findings.
    async fn finish(
        mut self,
        name: &str,
        injected: &str,
        poison: &BTreeMap<String, u64>,
    ) -> anyhow::Result<tongban_e2e::faults::Findings> {
        let submitted = self.submit.await??;
        anyhow::ensure!(submitted.len() == self.n, "submitted {}", submitted.len());
        let result = self.driver.wait_final(FINISH).await;
        self.stop.cancel();
        while self.clerks.join_next().await.is_some() {}
        let apps = match result {
            Ok(apps) => apps,
            Err(e) => {
                for p in ["intake-1", "approval-1", "dispatch-1", "notification-1"] {
                    eprintln!("--- {p}:\n{}", self.faults.stack.log(p).tail());
                }
                return Err(e);
            }
        };
        let findings = self
            .faults
            .check(&apps, poison, Duration::from_secs(180))
            .await?;
        let t = &self.driver.tally;
        let text = format!(
            "### {name}\n\n- Injected: {injected}\n- Load: {} applications through 2 replicas of each service; {} decisions ({} lost races to the other clerk, {} RPC errors retried), {} submit retries; {:.0} s from first submission to all final.\n- Invariants: {findings}.\n",
            self.n,
            t.decisions.load(Ordering::Relaxed),
            t.decide_lost_races.load(Ordering::Relaxed),
            t.decide_errors.load(Ordering::Relaxed),
            t.submit_retries.load(Ordering::Relaxed),
            self.started.elapsed().as_secs_f64(),
        );
        eprintln!("{text}");
        record(name, &text)?;
        Ok(findings)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_each_service_in_turn_mid_load() -> anyhow::Result<()> {
    let mut run = Running::begin(applications(), &[], &[]).await?;
    run.after_submitted(20).await?;
    let mut order = Vec::new();
    // Replica 1 of each service in turn while replica 2 serves, then replica 2 of the two
    // that hold the most state in flight.
    for p in [
        "intake-1",
        "approval-1",
        "dispatch-1",
        "notification-1",
        "approval-2",
        "dispatch-2",
    ] {
        tokio::time::sleep(Duration::from_secs(3)).await;
        run.faults.kill9(p)?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        run.faults.restart(p, &[])?;
        order.push(p);
    }
    run.finish(
        "kill_9_of_each_service_in_turn_mid_load",
        &format!(
            "`kill -9` of {} in turn, 3 s apart, each restarted (`tongban local restart`) 1 s after its death while the other replica served",
            order.join(", ")
        ),
        &BTreeMap::new(),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rabbitmq_stopped_and_started_mid_load() -> anyhow::Result<()> {
    let mut run = Running::begin(applications(), &[], &[]).await?;
    run.after_submitted(30).await?;
    let down = Duration::from_secs(20);
    run.faults.broker.stop();
    tokio::time::sleep(down).await;
    run.faults.broker.start().await?;
    run.finish(
        "rabbitmq_stopped_and_started_mid_load",
        &format!(
            "RabbitMQ stopped (`rabbitmqctl stop`) after 30 submissions, started again {} s later",
            down.as_secs()
        ),
        &BTreeMap::new(),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_restarted_mid_load() -> anyhow::Result<()> {
    let run = Running::begin(applications(), &[], &[]).await?;
    run.after_submitted(30).await?;
    let down = Duration::from_secs(15);
    run.faults.pg.pause()?;
    tokio::time::sleep(down).await;
    run.faults.pg.resume()?;
    run.finish(
        "postgresql_restarted_mid_load",
        &format!(
            "PostgreSQL stopped (`pg_ctl stop -m fast`, every connection cut) after 30 submissions, started again {} s later",
            down.as_secs()
        ),
        &BTreeMap::new(),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn platforms_down_slow_and_flapping() -> anyhow::Result<()> {
    let run = Running::begin(applications(), &[], &[]).await?;
    let ids: Vec<String> = run.faults.platforms.iter().map(|p| p.id.clone()).collect();
    anyhow::ensure!(ids.len() >= 3, "need three platforms, have {ids:?}");
    let (down, slow, flapping) = (&ids[0], &ids[1], &ids[2]);
    run.faults
        .platform_faults(down, serde_json::json!({"down": true}))
        .await?;
    run.faults
        .platform_faults(slow, serde_json::json!({"latency_ms": 1500}))
        .await?;
    let outage = Instant::now();
    let mut up = false;
    while outage.elapsed() < Duration::from_secs(60) {
        // The flapping one: 5 s down, 5 s up.
        run.faults
            .platform_faults(flapping, serde_json::json!({ "down": !up }))
            .await?;
        up = !up;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    for p in [down, flapping] {
        run.faults.platform_faults(p, serde_json::json!({})).await?;
    }
    let findings = run
        .finish(
            "platforms_down_slow_and_flapping",
            &format!(
                "from the start of the load: `{down}` down (503) for 60 s; `{slow}` answering after 1.5 s throughout; `{flapping}` alternating 5 s down, 5 s up for 60 s"
            ),
            &BTreeMap::new(),
        )
        .await?;
    anyhow::ensure!(findings.platform_records.len() == ids.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_messages_are_dead_lettered_and_nothing_else() -> anyhow::Result<()> {
    let run = Running::begin(applications(), &[], &[]).await?;
    run.after_submitted(20).await?;
    let bus = run.faults.bus().await?;
    let keys = [
        "application.submitted",
        "task.decided",
        "application.approved",
        "delivery.failed",
    ];
    let specs = vec![
        tongban_intake::queue_spec(),
        tongban_approval::queue_spec(),
        tongban_notification::queue_spec(),
        tongban_dispatch::queue_spec_for(&run.faults.platforms),
    ];
    let mut poison: BTreeMap<String, u64> = BTreeMap::new();
    let mut messages = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        // Not an envelope: no consumer can ever apply it.
        messages.push(tongban_bus::OutgoingMessage {
            event_id: format!("poison-{i}"),
            routing_key: key.to_string(),
            payload: vec![0xff, 0x00, 0x13, 0x37, i as u8],
            traceparent: None,
        });
        for spec in &specs {
            if spec
                .bindings
                .iter()
                .any(|b| tongban_bus::topic_matches(b, key))
            {
                *poison.entry(spec.name.clone()).or_default() += 1;
            }
        }
    }
    bus.publish_batch(&messages).await?;
    let described = poison
        .iter()
        .map(|(q, n)| format!("{q} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    run.finish(
        "poison_messages_are_dead_lettered_and_nothing_else",
        &format!(
            "{} undecodable messages published mid-load on routing keys {} (dead-letter copies expected per queue: {described})",
            messages.len(),
            keys.join(", ")
        ),
        &poison,
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_request_id_submitted_concurrently_makes_one_application() -> anyhow::Result<()> {
    let run = Running::begin(applications(), &[], &[]).await?;
    let (ids, clients) = (20usize, 6usize);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut calls = tokio::task::JoinSet::new();
    for r in 0..ids {
        for c in 0..clients {
            let d = run.driver.clone();
            calls.spawn(async move {
                let request_id = format!("concurrent-{r}");
                d.submit(&request_id, c, deadline)
                    .await
                    .map(|app| (request_id, app))
            });
        }
    }
    let mut by_request: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    while let Some(done) = calls.join_next().await {
        let (request_id, app) = done??;
        by_request.entry(request_id).or_default().insert(app);
    }
    anyhow::ensure!(by_request.len() == ids);
    for (r, apps) in &by_request {
        anyhow::ensure!(apps.len() == 1, "{r} made applications {apps:?}");
    }
    let intake = run.faults.db("intake").await?;
    use sea_orm::ConnectionTrait as _;
    let row = intake
        .query_one_raw(sea_orm::Statement::from_string(
            intake.get_database_backend(),
            "SELECT COUNT(*) AS n FROM applications WHERE request_id LIKE 'concurrent-%'",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    let stored: i64 = row.try_get("", "n")?;
    anyhow::ensure!(stored == ids as i64, "{stored} applications stored");
    run.finish(
        "same_request_id_submitted_concurrently_makes_one_application",
        &format!(
            "{ids} request ids each submitted by {clients} clients at once, spread over both intake replicas, during the load: {ids} applications, each client got the same one back"
        ),
        &BTreeMap::new(),
    )
    .await?;
    Ok(())
}

/// Where Debian's `faketime` package puts the preload library.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clock_jump_for_the_timer_worker() -> anyhow::Result<()> {
    anyhow::ensure!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: install Debian's faketime package (.ci/run does)"
    );
    // Clerks use replica 1 only: replica 2's clock is about to be wrong, and so would be its
    // view of every token's expiry.
    let mut run = Running::begin(applications(), &[], &[1]).await?;
    run.after_submitted(40).await?;
    let dir = tempfile::tempdir()?;
    let clock = dir.path().join("faketime");
    std::fs::write(&clock, "+0\n")?;
    let clock_file = clock.to_string_lossy().into_owned();
    run.faults.restart(
        "approval-2",
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", &clock_file),
            ("FAKETIME_NO_CACHE", "1"),
            // Only the wall clock jumps; tokio's timers run on the monotonic one.
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    )?;
    // Forty days ahead: every open task is past due and past escalation on replica 2, which
    // fires their timers while replica 1, on the true clock, fires none.
    std::fs::write(&clock, "+40d\n")?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    // Back to the true time: nothing fires again.
    std::fs::write(&clock, "+0\n")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // And a jump backwards.
    std::fs::write(&clock, "-3d\n")?;
    let findings = run
        .finish(
            "clock_jump_for_the_timer_worker",
            "approval-2 restarted under libfaketime mid-load; its wall clock jumped 40 days ahead for 8 s, back to true time, then 3 days behind, while approval-1 ran on the true clock",
            &BTreeMap::new(),
        )
        .await?;
    anyhow::ensure!(
        findings.timer_events > 0,
        "the jump fired no timer: the scenario did not test anything"
    );
    Ok(())
}
