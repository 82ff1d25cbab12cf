//! `tongban-dispatch`: the dispatch service as its own process (production topology).

use tongban_runtime::{Context, config::ServiceConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = tongban_telemetry::init("dispatch");
    let cfg = ServiceConfig::load("dispatch", ServiceConfig::defaults("dispatch", 50054))?;
    let ctx = Context {
        db: tongban_storage::connect(cfg.database_url.expose()).await?,
        bus: tongban_bus::Bus::connect(cfg.bus_url.expose(), &cfg.exchange).await?,
        auth: tongban_auth::Authenticator::new(&tongban_auth::Secret::load(&cfg.jwt_secret_file)?),
        deploy_dir: cfg.deploy_dir.clone(),
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let shutdown = tongban_runtime::shutdown_on_signals();
    tongban_dispatch::run(ctx, listener, shutdown).await
}
