//! `tongban-dispatch`: the dispatch service as its own process (production topology).

use tongban_runtime::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = tongban_telemetry::init("dispatch");
    let cfg = tongban_dispatch::config::load()?;
    let ctx = Context::connect(&cfg).await?;
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    tongban_dispatch::run(ctx, listener, tongban_runtime::shutdown_on_signals()).await
}
