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
    for (name, addr) in lab.http_site_addrs() {
        println!("http site {name} on http://{addr}/sms/send");
    }
    for (name, addr) in lab.webhook_addrs() {
        println!("webhook receiver {name} on http://{addr}/");
    }
    if let Some(addr) = lab.dns_addr() {
        println!("dns server on udp://{addr}");
    }
    if let Some(addr) = lab.smtp_addr() {
        println!("smtp sink on {addr}");
    }
    let control = lab.control_addr();
    println!("control API on http://{control}/v1/stats");
    let fault = |path: &str, fault: &str| {
        format!("curl -X POST http://{control}{path} -d '{{\"fault\":\"{fault}\"}}' -H 'content-type: application/json'")
    };
    if let Some((target, _)) = lab.smsc_addrs().first() {
        let path = format!("/v1/smsc/{}/{}/fault", target.site, target.name);
        println!("  kill an SMSC:      {}", fault(&path, "die"));
        println!("  recover it:        {}", fault(&path, "recover"));
    }
    if let Some((name, _)) = lab.http_site_addrs().first() {
        let path = format!("/v1/http/sites/{name}/fault");
        println!("  hang an HTTP site: {}", fault(&path, "hang"));
        println!("  recover it:        {}", fault(&path, "recover"));
    }
    println!("Ctrl-C stops the lab.");
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    lab.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
