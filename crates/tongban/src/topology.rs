//! The bus topology of a whole deployment: every consuming service's queue and bindings.
//!
//! A service declares its own queue when it starts, but an event published before a consumer
//! ever started would find no queue bound and be dropped by the broker. So a deployment
//! declares all queues first: `tongban dev` does it before starting the services, and operators
//! run `tongban topology declare` once (docker-compose runs it before the services).

use anyhow::Context as _;
use tongban_bus::{Bus, QueueSpec};
use tongban_platform::PlatformConfig;

/// Every queue of every service, with the platforms dispatch delivers to.
pub(crate) fn queue_specs(platforms: &[PlatformConfig]) -> Vec<QueueSpec> {
    vec![
        tongban_intake::queue_spec(),
        tongban_approval::queue_spec(),
        tongban_notification::queue_spec(),
        tongban_dispatch::queue_spec_for(platforms),
    ]
}

/// Declares every queue on `bus`.
pub(crate) async fn declare_all(
    bus: &Bus,
    platforms: &[PlatformConfig],
) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for spec in queue_specs(platforms) {
        bus.declare(&spec)
            .await
            .with_context(|| format!("declaring queue {}", spec.name))?;
        names.push(spec.name);
    }
    Ok(names)
}

#[derive(clap::Args, Debug)]
pub(crate) struct DeclareArgs {
    /// RabbitMQ URL (or sqlite://… for an embedded bus file).
    #[arg(
        long,
        env = "TONGBAN_BUS_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    bus_url: String,
    /// Topic exchange the events travel on.
    #[arg(long, env = "TONGBAN_EXCHANGE", default_value = "tongban.events")]
    exchange: String,
    /// Where platforms/ lives (dispatch binds what the platforms want).
    #[arg(long, env = "TONGBAN_DEPLOY_DIR", default_value = "deploy")]
    deploy_dir: std::path::PathBuf,
}

/// `tongban topology declare`.
pub(crate) async fn declare(args: DeclareArgs) -> anyhow::Result<()> {
    let platforms = tongban_platform::load_dir(args.deploy_dir.join("platforms"))
        .context("loading platforms")?;
    let bus = Bus::connect(&args.bus_url, &args.exchange)
        .await
        .context("connecting to the bus")?;
    for name in declare_all(&bus, &platforms).await? {
        println!("declared {name}");
    }
    Ok(())
}
