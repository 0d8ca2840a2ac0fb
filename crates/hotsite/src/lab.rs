//! `hotsite lab --config FILE`: the simulated aggregator, until Ctrl-C.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use hotsite_lab::{Lab, LabConfig};

/// Starts the lab from `path`, prints where it listens, runs until Ctrl-C.
pub(crate) async fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config = match LabConfig::from_toml_str(&text) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{}: {error}", path.display());
            return Ok(ExitCode::from(2));
        }
    };
    let lab = Lab::start(config).await.context("cannot start the lab")?;
    for (target, addr) in lab.smsc_addrs() {
        println!("smsc {target} listening on {addr}");
    }
    let control = lab.control_addr();
    println!("control API on http://{control}/v1/stats");
    println!("  inject a fault:  curl -X POST http://{control}/v1/smsc/a/a1/fault -d '{{\"fault\":\"die\"}}' -H 'content-type: application/json'");
    println!("  recover:         curl -X POST http://{control}/v1/smsc/a/a1/fault -d '{{\"fault\":\"recover\"}}' -H 'content-type: application/json'");
    println!("Ctrl-C stops the lab.");
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    lab.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
