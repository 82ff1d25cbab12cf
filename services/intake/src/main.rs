//! `tongban-intake`: the intake service as its own process (production topology).

use tongban_runtime::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = tongban_telemetry::init("intake");
    let (cfg, own) = tongban_intake::config::IntakeConfig::load()?;
    let ctx = Context::connect(&cfg).await?;
    let credit = own.credit.build(&ctx.deploy_dir)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    tongban_intake::run_with(
        ctx,
        credit,
        own.limits,
        listener,
        tongban_runtime::shutdown_on_signals(),
    )
    .await
}
