//! `tongban-notification`: the notification service as its own process (production topology).

use tongban_runtime::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = tongban_telemetry::init("notification");
    let (cfg, own) = tongban_notification::config::NotificationConfig::load()?;
    let ctx = Context::connect(&cfg).await?;
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let shutdown = tongban_runtime::shutdown_on_signals();
    tongban_notification::run(ctx, &own, listener, shutdown).await
}
