//! The voice proxy alone, from a TOML file with a `[voice]` section: for load
//! tests with SIPp and for trying a trunk setup before it goes into
//! `hotsite.toml`.
//!
//! ```sh
//! cargo run --release -p hotsite-bench --bin voice_proxy -- voice.toml [SECONDS]
//! ```
//!
//! Prints the counters every second; stops after SECONDS (default: on Ctrl-C).

use std::error::Error;
use std::time::Duration;

use hotsite_voice::VoiceConfig;

#[derive(serde::Deserialize)]
struct File {
    voice: VoiceConfig,
}

/// The program's own clock, for printing event times relative to its start.
#[allow(clippy::disallowed_methods)] // a benchmark program: its own driver
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: voice_proxy FILE [SECONDS]")?;
    let seconds: Option<u64> = args.next().map(|s| s.parse()).transpose()?;
    let file: File = toml::from_str(&std::fs::read_to_string(&path)?)?;
    let handle = hotsite_voice::start(&file.voice, &hotsite_host::Deps::detached(), None)
        .await?
        .0;
    println!("voice proxy on {}", handle.local_addr());
    let started = now();
    let mut events = handle.subscribe();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if let hotsite_voice::ProxyEvent::Trunk(event) = event {
                let at = event.at.saturating_duration_since(started);
                println!("+{:.3}s {event}", at.as_secs_f64());
            }
        }
    });
    let mut ticks = 0u64;
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.tick().await;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        ticks += 1;
        let m = handle.metrics();
        println!("t={ticks}s {:?} {:?}", m.stats, m.sizes);
        for trunk in handle.status() {
            if !trunk.in_service {
                println!(
                    "  {} out of service: {:?} {}",
                    trunk.name, trunk.causes, trunk.detail
                );
            }
        }
        if seconds.is_some_and(|limit| ticks >= limit) {
            break;
        }
    }
    handle.shutdown().await;
    Ok(())
}
