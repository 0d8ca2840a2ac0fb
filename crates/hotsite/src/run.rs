//! `hotsite run --config FILE`: the gateway of one site, until SIGINT/SIGTERM.

use std::path::Path;
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context;
use hotsite_messaging::gateway::Extras;
use hotsite_store::SqliteStore;
use hotsite_voice::TrunkStatusView;
use serde_json::{json, Value};

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
    let store = SqliteStore::open(&config.store_path, config.store_options.clone())
        .with_context(|| format!("cannot open the store {}", config.store_path.display()))?;
    let voice = match &config.voice {
        Some(voice) => Some(
            hotsite_voice::start(voice)
                .await
                .context("cannot start the voice proxy")?,
        ),
        None => None,
    };
    let extras = voice.as_ref().map(voice_extras).unwrap_or_default();
    let gateway = hotsite_messaging::gateway::start_with(config.gateway.clone(), store, extras)
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
    if let Some(voice) = &voice {
        println!("voice proxy on {} (UDP and TCP)", voice.local_addr());
    }
    wait_for_signal().await?;
    eprintln!("stopping: unbinding; queued messages stay in the store");
    gateway.shutdown().await;
    if let Some(voice) = voice {
        voice.shutdown().await;
    }
    Ok(ExitCode::SUCCESS)
}

/// The voice proxy's trunks in `/v1/status` (`trunks`) and `/metrics` (SPEC V2,
/// V3): state, cause, since when, regions, counters.
fn voice_extras(voice: &hotsite_voice::VoiceHandle) -> Extras {
    let status = voice.status_reader();
    let metrics = voice.status_reader();
    let calls = voice.metrics_reader();
    Extras {
        status: vec![(
            "trunks".to_owned(),
            Arc::new(move || Value::Array(status().iter().map(trunk_json).collect())),
        )],
        metrics: vec![
            Arc::new(move || trunk_metrics(&metrics())),
            Arc::new(move || calls().map(|m| call_metrics(&m)).unwrap_or_default()),
        ],
    }
}

/// The calls held against `voice.max_calls` and the INVITEs refused past it
/// (DESIGN.md invariant 6).
fn call_metrics(m: &hotsite_voice::VoiceMetrics) -> String {
    format!(
        "# HELP hotsite_voice_calls_in_progress Calls the voice proxy holds (at most voice.max_calls).\n\
         # TYPE hotsite_voice_calls_in_progress gauge\n\
         hotsite_voice_calls_in_progress {}\n\
         # HELP hotsite_voice_calls_refused_total INVITEs answered 503 because voice.max_calls calls were held.\n\
         # TYPE hotsite_voice_calls_refused_total counter\n\
         hotsite_voice_calls_refused_total {}\n",
        m.sizes.calls, m.stats.refused_over_capacity
    )
}

fn trunk_json(trunk: &TrunkStatusView) -> Value {
    let since_ms = trunk
        .since
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    json!({
        "name": trunk.name,
        "carrier": trunk.carrier,
        "address": trunk.address.to_string(),
        "transport": trunk.transport.name(),
        "in_service": trunk.in_service,
        "since_ms": since_ms,
        "causes": trunk.causes.iter().map(|c| format!("{c:?}").to_lowercase()).collect::<Vec<_>>(),
        "detail": trunk.detail,
        "media_region": trunk.media_region,
        "failover_region": trunk.failover_region,
        "registered": trunk.registered,
        "attempts": trunk.stats.attempts,
        "answered": trunk.stats.answered,
        "failed_over": trunk.stats.failed_over,
        "no_reply": trunk.stats.no_reply,
    })
}

fn trunk_metrics(trunks: &[TrunkStatusView]) -> String {
    let mut text = String::from(
        "# HELP hotsite_trunk_in_service Whether a SIP trunk takes calls (SPEC V2).\n\
         # TYPE hotsite_trunk_in_service gauge\n",
    );
    for trunk in trunks {
        text.push_str(&format!(
            "hotsite_trunk_in_service{{trunk=\"{}\",carrier=\"{}\",media_region=\"{}\",failover_region=\"{}\"}} {}\n",
            trunk.name,
            trunk.carrier,
            trunk.media_region,
            trunk.failover_region,
            u8::from(trunk.in_service)
        ));
    }
    type Counter = fn(&TrunkStatusView) -> u64;
    let counters: [(&str, &str, Counter); 3] = [
        (
            "trunk_attempts_total",
            "INVITEs sent to a trunk.",
            |t: &TrunkStatusView| t.stats.attempts,
        ),
        (
            "trunk_failed_over_total",
            "Calls that left a trunk for the next one (SPEC V1).",
            |t: &TrunkStatusView| t.stats.failed_over,
        ),
        (
            "trunk_no_reply_total",
            "INVITEs a trunk did not answer at all in time.",
            |t: &TrunkStatusView| t.stats.no_reply,
        ),
    ];
    for (name, help, value) in counters {
        text.push_str(&format!(
            "# HELP hotsite_{name} {help}\n# TYPE hotsite_{name} counter\n"
        ));
        for trunk in trunks {
            text.push_str(&format!(
                "hotsite_{name}{{trunk=\"{}\"}} {}\n",
                trunk.name,
                value(trunk)
            ));
        }
    }
    text
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
