//! `tongban dev`: the whole stack in one process.
//!
//! Same code paths as production, only the URLs differ: each service gets its own SQLite file
//! and they share one embedded bus file, all under the data directory. Because the bus and the
//! outboxes are files, `kill -9` loses nothing: on the next start the relays publish what was
//! committed and the bus redelivers what was not acknowledged.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tongban_runtime::Context;

#[derive(clap::Args, Debug)]
pub(crate) struct DevArgs {
    /// Where the SQLite files, the bus and the token keys (issuer.key, jwks.json) live.
    #[arg(long, default_value = "data", env = "TONGBAN_DATA_DIR")]
    data_dir: PathBuf,
    /// Where matters/, calendar/, platforms/, departments.toml and regions.toml live.
    #[arg(long, default_value = "deploy", env = "TONGBAN_DEPLOY_DIR")]
    deploy_dir: PathBuf,
    /// Address the services bind to.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port of intake; approval, notification and dispatch take the next three.
    #[arg(long, default_value_t = 50051)]
    base_port: u16,
    /// Serve the platform simulators on free ports instead of the ports in
    /// deploy/platforms (for running several stacks side by side).
    #[arg(long)]
    sim_free_ports: bool,
    /// Do not start the platform simulators (dispatch then delivers to the configured endpoints).
    #[arg(long)]
    no_simulators: bool,
    /// Where `/metrics` (Prometheus text, every service of this process) is served.
    #[arg(
        long,
        default_value = "127.0.0.1:9464",
        env = "TONGBAN_DEV_METRICS_LISTEN"
    )]
    metrics_listen: SocketAddr,
    /// Seconds between signed audit checkpoints (keys and checkpoints in DATA/audit/).
    #[arg(long, default_value_t = 60, env = "TONGBAN_AUDIT_INTERVAL_SECS")]
    audit_interval_secs: u64,
}

struct Service {
    name: &'static str,
    grpc: &'static str,
    port_offset: u16,
}

const SERVICES: &[Service] = &[
    Service {
        name: "intake",
        grpc: "tongban.intake.v1.IntakeService",
        port_offset: 0,
    },
    Service {
        name: "approval",
        grpc: "tongban.approval.v1.ApprovalService",
        port_offset: 1,
    },
    Service {
        name: "notification",
        grpc: "tongban.notification.v1.NotificationService",
        port_offset: 2,
    },
    Service {
        name: "dispatch",
        grpc: "tongban.dispatch.v1.DispatchService",
        port_offset: 3,
    },
];

pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    let _telemetry = tongban_telemetry::init("tongban-dev");
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    if !args.deploy_dir.join("matters").is_dir() {
        anyhow::bail!(
            "{} has no matters/ directory; run from the repository root or pass --deploy-dir",
            args.deploy_dir.display()
        );
    }
    // The issuer's key is made once and kept; the services, as in production, see only the
    // public key set, so a rotation (`tongban keys generate <data dir>`) takes effect on restart.
    tongban_auth::keys::ensure(&args.data_dir)?;
    let auth = tongban_auth::Authenticator::from_jwks_file(
        &args.data_dir.join(tongban_auth::keys::JWKS_FILE),
        &tongban_auth::TokenRules::default(),
    )?;
    let bus_url = sqlite_url(&args.data_dir.join("bus.db"));
    let bus = tongban_bus::Bus::connect(&bus_url, "tongban.events")
        .await
        .context("opening the embedded bus")?;
    // Every queue exists before any service publishes, so no event is dropped for want of a
    // binding on a fresh data directory.
    let platforms = tongban_platform::load_dir(args.deploy_dir.join("platforms"))
        .context("loading deploy/platforms")?;
    crate::topology::declare_all(&bus, &platforms).await?;
    let shutdown = tongban_runtime::shutdown_on_signals();
    let metrics = tongban_runtime::metrics::bind(args.metrics_listen).await?;
    let metrics_addr = metrics.local_addr()?;
    let metrics_stop = shutdown.clone();
    let metrics_server = tokio::spawn(async move {
        if let Err(e) = tongban_runtime::metrics::serve(metrics, metrics_stop).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });

    // The simulators stand in for the four downstream platforms; they keep what they receive
    // under the data directory, so a restart does not forget deliveries.
    let (sims, platforms) = if args.no_simulators {
        (None, platforms)
    } else {
        let mut opts = tongban_platform_sim::SimOptions {
            data_dir: Some(args.data_dir.join("platform-sim")),
            ..Default::default()
        };
        if args.sim_free_ports {
            opts = opts.all_ports_free(&platforms);
        }
        let stop = shutdown.clone();
        let sim =
            tongban_platform_sim::serve(platforms, opts, async move { stop.cancelled().await })
                .await
                .context("starting the platform simulators")?;
        let configs = sim.client_configs();
        (Some(sim), configs)
    };

    // The file source: records from deploy/credit, breaches into the data dir's ledger.
    let credit = tongban_credit::CreditSettings {
        ledger: Some(args.data_dir.join("credit-breaches.jsonl")),
        ..Default::default()
    }
    .build(&args.deploy_dir)?;
    let mut running = tokio::task::JoinSet::new();
    println!("Tongban dev stack (data in {}):", args.data_dir.display());
    for svc in SERVICES {
        let addr = SocketAddr::new(args.host, args.base_port + svc.port_offset);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {} to {addr}", svc.name))?;
        let db =
            tongban_storage::connect(&sqlite_url(&args.data_dir.join(format!("{}.db", svc.name))))
                .await
                .with_context(|| format!("opening {} database", svc.name))?;
        let ctx = Context {
            db,
            bus: bus.clone(),
            auth: auth.clone(),
            deploy_dir: args.deploy_dir.clone(),
            audit: Some(dev_anchor(
                &args.data_dir,
                svc.name,
                args.audit_interval_secs,
            )?),
            // One /metrics for the whole process, served below.
            metrics_listen: None,
            tls: None,
            shutdown_timeout: tongban_runtime::config::DEFAULT_SHUTDOWN_TIMEOUT,
            retention: Default::default(),
        };
        let stop = shutdown.clone();
        let name = svc.name;
        let platforms = platforms.clone();
        let credit = credit.clone();
        running.spawn(async move {
            (
                name,
                start(name, ctx, platforms, credit, listener, stop).await,
            )
        });
        println!("  {:<13} grpc://{addr}  ({})", svc.name, svc.grpc);
    }
    for p in &platforms {
        let origin = if sims.is_some() {
            "simulator"
        } else {
            "remote"
        };
        println!("  {:<13} {}  ({origin}: {})", p.id, p.endpoint, p.name);
    }
    println!("  {:<13} http://{metrics_addr}/metrics", "metrics");
    println!("Tokens: cargo run -p tongban -- token issue --role clerk --department eco_env");
    println!("Press Ctrl-C to stop.");

    let mut failed = None;
    while let Some(done) = running.join_next().await {
        match done {
            Ok((name, Err(e))) => {
                tracing::error!(service = name, error = %format!("{e:#}"), "service failed; stopping the stack");
                failed.get_or_insert(anyhow::anyhow!("{name}: {e:#}"));
                shutdown.cancel();
            }
            Ok((_, Ok(()))) => shutdown.cancel(),
            Err(e) => {
                failed.get_or_insert(anyhow::anyhow!("service task: {e}"));
                shutdown.cancel();
            }
        }
    }
    let _ = metrics_server.await;
    if let Some(sim) = sims
        && let Err(e) = sim.shutdown().await
    {
        tracing::warn!(error = %e, "simulators did not stop cleanly");
    }
    match failed {
        Some(e) => Err(e),
        None => {
            println!("Stopped.");
            Ok(())
        }
    }
}

async fn start(
    name: &str,
    ctx: Context,
    platforms: Vec<tongban_platform::PlatformConfig>,
    credit: std::sync::Arc<dyn tongban_credit::CreditRegistry>,
    listener: TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    match name {
        "dispatch" => tongban_dispatch::run_with_platforms(ctx, platforms, listener, stop).await,
        "intake" => {
            let own: tongban_intake::config::IntakeConfig =
                tongban_runtime::config::load_section("intake")?;
            tongban_intake::run_with(ctx, credit, own.limits, listener, stop).await
        }
        "approval" => tongban_approval::run(ctx, listener, stop).await,
        "notification" => {
            let own: tongban_notification::config::NotificationConfig =
                tongban_runtime::config::load_section("notification")?;
            tongban_notification::run_dev(ctx, &own, listener, stop).await
        }
        other => anyhow::bail!("unknown service {other}"),
    }
}

fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// The dev stack's audit anchoring for `service`: a signing key created on first run (its
/// public key beside it, `.pub`) and a checkpoint file, both under `DATA/audit/`.
fn dev_anchor(
    data_dir: &std::path::Path,
    service: &str,
    interval_secs: u64,
) -> anyhow::Result<tongban_audit::anchor::AnchorConfig> {
    let cfg = tongban_audit::anchor::AnchorConfig {
        interval_secs,
        ..tongban_audit::anchor::AnchorConfig::in_dir(data_dir, service)
    };
    tongban_audit::anchor::load_or_create_signing_key(&cfg.signing_key_file)?;
    Ok(cfg)
}
