//! `tongban-platform-sim`: serves the configured downstream platforms locally.
//!
//! ```text
//! tongban-platform-sim --platforms deploy/platforms [--only eia,pollutant_permit]
//!     [--bind 127.0.0.1] [--port-offset 100] [--port eia=0] [--data-dir data/platform-sim]
//! ```
//! Prints one line per platform (`id  name  URL`) once listening. SIGINT/SIGTERM drain; a second
//! signal exits at once.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tongban_platform_sim::{SimOptions, select_platforms, serve};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Simulators of Tongban's downstream government platforms"
)]
struct Cli {
    /// Directory of platform files (`<id>.toml`).
    #[arg(
        long,
        env = "TONGBAN_PLATFORMS_DIR",
        default_value = "deploy/platforms"
    )]
    platforms: PathBuf,
    /// Only these platform ids (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Address to listen on.
    #[arg(long, env = "TONGBAN_SIM_BIND", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Added to every endpoint port (run a second set beside the first).
    #[arg(long, default_value_t = 0)]
    port_offset: u16,
    /// Port for one platform, `id=port`; 0 picks a free port (repeatable).
    #[arg(long = "port", value_name = "ID=PORT", value_parser = parse_port)]
    ports: Vec<(String, u16)>,
    /// Keep received deliveries in `<dir>/<id>.jsonl` across restarts.
    #[arg(long, env = "TONGBAN_SIM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Allowed HMAC timestamp skew in seconds; 0 disables the check.
    #[arg(long, default_value_t = 300)]
    max_clock_skew_secs: u64,
}

fn parse_port(s: &str) -> Result<(String, u16), String> {
    let (id, port) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected ID=PORT"))?;
    let port = port
        .parse()
        .map_err(|_| format!("`{port}` is not a port number"))?;
    Ok((id.to_owned(), port))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();

    let platforms = tongban_platform::load_dir(&cli.platforms)
        .with_context(|| format!("loading platforms from {}", cli.platforms.display()))?;
    let platforms = select_platforms(platforms, &cli.only)?;
    let opts = SimOptions {
        bind: cli.bind,
        port_offset: cli.port_offset,
        ports: cli.ports.into_iter().collect(),
        data_dir: cli.data_dir,
        max_clock_skew: (cli.max_clock_skew_secs > 0)
            .then(|| Duration::from_secs(cli.max_clock_skew_secs)),
    };

    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let signals = tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down (signal again to exit at once)");
        let _ = first_tx.send(());
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });

    let sim = serve(platforms, opts, async move {
        let _ = first_rx.await;
    })
    .await?;
    for p in sim.platforms() {
        println!("{}\t{}\t{}", p.id, p.name, p.url);
    }
    let result = sim.wait().await;
    signals.abort();
    result?;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
