//! `hotsite run --config FILE`: the gateway of one site, until SIGINT/SIGTERM.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use hotsite_store::{SqliteOptions, SqliteStore};

use crate::config::Config;

/// Loads and validates the config before anything opens, then runs.
pub(crate) async fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config = match Config::from_toml_str(&text) {
        Ok(config) => config,
        Err(error) => {
            for issue in &error.0 {
                eprintln!("{}: {issue}", path.display());
            }
            return Ok(ExitCode::from(2));
        }
    };
    let store = SqliteStore::open(&config.store_path, SqliteOptions::default())
        .with_context(|| format!("cannot open the store {}", config.store_path.display()))?;
    let gateway = hotsite_messaging::start(config.gateway.clone(), store)
        .await
        .context("cannot start the gateway")?;
    println!(
        "hotsite {} for site {}: API on http://{}",
        env!("CARGO_PKG_VERSION"),
        config.site,
        gateway.api_addr()
    );
    println!(
        "store {}; {}",
        config.store_path.display(),
        config.summary()
    );
    wait_for_signal().await?;
    eprintln!("stopping: unbinding; queued messages stay in the store");
    gateway.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("cannot listen for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
