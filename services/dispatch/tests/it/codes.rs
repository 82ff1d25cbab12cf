//! Code tables checked against the matters at start-up: a form value no table translates stops
//! dispatch before the first event, instead of dead-lettering every such application.

use crate::common::*;

/// Copies what the start-up check and its neighbours read from `deploy/` into a temporary
/// deploy directory.
fn copy_deploy() -> anyhow::Result<tempfile::TempDir> {
    let from = tongban_testkit::deploy_dir();
    let to = tempfile::tempdir()?;
    for dir in ["matters", "platforms"] {
        std::fs::create_dir(to.path().join(dir))?;
        for entry in std::fs::read_dir(from.join(dir))? {
            let path = entry?.path();
            if path.is_file()
                && let Some(name) = path.file_name()
            {
                std::fs::copy(&path, to.path().join(dir).join(name))?;
            }
        }
    }
    for file in ["departments.toml", "regions.toml", "integrators.toml"] {
        std::fs::copy(from.join(file), to.path().join(file))?;
    }
    Ok(to)
}

#[test]
fn the_shipped_deploy_dir_has_no_gap() -> anyhow::Result<()> {
    tongban_dispatch::check_code_tables(&shipped()?, &tongban_testkit::deploy_dir())
}

async fn start_up_refuses_a_value_missing_from_a_code_table(
    backend: Backend,
) -> anyhow::Result<()> {
    let deploy = copy_deploy()?;
    let eia = deploy.path().join("platforms/eia.toml");
    let text = std::fs::read_to_string(&eia)?;
    let cut = text.replace(r#", relocation = "04""#, "");
    anyhow::ensure!(
        cut != text,
        "eia.toml's xmlx table has no relocation entry to remove"
    );
    std::fs::write(&eia, cut)?;
    let platforms =
        tongban_platform::load_dir_with_env(deploy.path().join("platforms"), &|_| None)?;

    let test_db = TestDb::new(backend, "dispatch").await?;
    let (bus, _bus_dir) = match backend {
        Backend::Postgres => (tongban_testkit::rabbit_bus("dispatch").await?.0, None),
        Backend::Sqlite => {
            let (b, d) = tongban_testkit::local_bus().await?;
            (b, Some(d))
        }
    };
    let ctx = tongban_runtime::Context {
        db: tongban_storage::connect(&test_db.url).await?,
        bus,
        auth: Keys::new().authenticator(),
        deploy_dir: deploy.path().to_path_buf(),
        audit: None,
        metrics_listen: None,
        tls: None,
        shutdown_timeout: tongban_runtime::config::DEFAULT_SHUTDOWN_TIMEOUT,
        retention: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let stop = CancellationToken::new();
    let _stop_on_drop = stop.clone().drop_guard();
    let run = tongban_dispatch::run_with_platforms(ctx, platforms, listener, stop);
    let err = match tokio::time::timeout(WAIT, run).await {
        Ok(Err(e)) => format!("{e:#}"),
        Ok(Ok(())) => anyhow::bail!("dispatch started and stopped with a gap in eia.toml"),
        Err(_) => anyhow::bail!("dispatch started with a gap in eia.toml"),
    };
    for needle in [
        "eia.toml",
        "`mapping.xmlx`",
        "`relocation`",
        "construction_nature",
        "env.eia.report_form",
    ] {
        assert!(err.contains(needle), "`{needle}` missing from: {err}");
    }
    // Only that gap: national_investment.toml still has its entry.
    assert!(!err.contains("national_investment.toml"), "{err}");
    Ok(())
}

tongban_testkit::on_both!(start_up_refuses_a_value_missing_from_a_code_table);
