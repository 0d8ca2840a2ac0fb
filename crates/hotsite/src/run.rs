//! `hotsite run --config FILE`: the systems of one site behind the host,
//! until SIGINT/SIGTERM.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use hotsite_host::Host;
use hotsite_store::{PgStore, SqliteStore};

use crate::config::{Config, StoreChoice};

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
    let store = if config.messaging {
        Some(open_store(&config.store).await?)
    } else {
        None
    };
    // The port first: a conflict fails before any system starts.
    let mut host = Host::bind(config.host.clone()).await?;
    let deps = host.deps();
    // Recording before voice: the voice proxy's relay feeds its recorder.
    let mut tap: Option<std::sync::Arc<dyn hotsite_voice::MediaTap>> = None;
    let mut recording_dir = None;
    if let Some(recording) = &config.recording {
        let (handle, routes) = hotsite_recording::service::start(recording, &config.site, &deps)
            .await
            .context("cannot start recording")?;
        tap = Some(std::sync::Arc::new(crate::recording_tap::RecorderTap(
            handle.recorder(),
        )));
        recording_dir = Some(recording.dir.clone());
        host.add(Box::new(handle), routes);
    }
    let mut voice_addr = None;
    if let Some(voice) = &config.voice {
        let (voice, routes) = hotsite_voice::start(voice, &deps, tap)
            .await
            .context("cannot start the voice proxy")?;
        voice_addr = Some(voice.local_addr());
        host.add(Box::new(voice), routes);
    }
    // Business continuity before messaging: its drain ends the process.
    let mut site = None;
    if let Some(continuity) = &config.continuity {
        let (handle, routes) = hotsite_site::start(continuity, &deps)
            .await
            .context("cannot start business continuity (site)")?;
        site = Some((handle.local_addr(), handle.drain_watch()));
        let client = handle.client();
        host.add(Box::new(handle), routes);
        // Desktops after the site they drive (and stopped before it).
        if let Some(desktop) = &config.desktop {
            let (service, routes) =
                hotsite_desktop::service::start(desktop, &config.site, client, &deps)
                    .await
                    .context("cannot start the desktop service")?;
            host.add(Box::new(service), routes);
        }
    }
    if let Some(store) = store {
        let gateway = config.gateway.clone();
        let started = match store {
            OpenStore::Sqlite(store) => hotsite_messaging::start(gateway, store, &deps).await,
            OpenStore::Postgres(store) => hotsite_messaging::start(gateway, store, &deps).await,
        };
        let (gateway, routes) = started.context("cannot start the gateway")?;
        host.add(Box::new(gateway), routes);
    }
    let host = host.serve()?;
    println!(
        "hotsite {} for site {}: API on http://{}",
        env!("CARGO_PKG_VERSION"),
        config.site,
        host.local_addr()
    );
    println!(
        "operator console on http://{}{} (asks for an API token)",
        host.local_addr(),
        hotsite_host::http::console::PATH
    );
    if config.messaging {
        println!("{}; {}", config.store.describe(), config.summary());
    }
    if let Some(addr) = voice_addr {
        println!("voice proxy on {addr} (UDP and TCP)");
    }
    if let Some(dir) = recording_dir {
        println!(
            "recording anchored calls under {} (merged, signed, uploaded)",
            dir.display()
        );
    }
    if let Some(desktop) = &config.desktop {
        println!(
            "desktops on ws://{}/v1/desktop, web desktop on http://{}/desktop/ ({} people)",
            host.local_addr(),
            host.local_addr(),
            desktop.people.len()
        );
    }
    let drained = match site {
        Some((addr, drained)) => {
            println!("site {} on {addr} (SIP over UDP)", config.site);
            Some(drained)
        }
        None => None,
    };
    tokio::select! {
        result = wait_for_signal() => {
            result?;
            eprintln!("stopping: unbinding; queued messages stay in the store");
        }
        () = wait_drained(drained) => {
            eprintln!("drained: no call left at this site (or site.drain_timeout passed); stopping");
        }
    }
    host.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves when a drain of the site is over (SPEC S7); never without a
/// site.
async fn wait_drained(drained: Option<hotsite_site::DrainWatch>) {
    match drained {
        Some(drained) => drained.wait().await,
        None => std::future::pending().await,
    }
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

/// The store `[store]` names, open.
enum OpenStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Opens the store: the SQLite file (locked: one gateway, SPEC M17), or the
/// PostgreSQL database shared with the other site's gateway.
async fn open_store(choice: &StoreChoice) -> anyhow::Result<OpenStore> {
    match choice {
        StoreChoice::Sqlite { path, options } => Ok(OpenStore::Sqlite(
            SqliteStore::open(path, options.clone())
                .with_context(|| format!("cannot open the store {}", path.display()))?,
        )),
        StoreChoice::Postgres(options) => Ok(OpenStore::Postgres(
            PgStore::connect(options.clone())
                .await
                .with_context(|| format!("cannot open the {}", choice.describe()))?,
        )),
    }
}
