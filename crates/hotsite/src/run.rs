//! `hotsite run --config FILE`: the systems of one site behind the host,
//! until SIGINT/SIGTERM or the end of a site drain. Under systemd it says
//! when it is ready and when it stops (`notify.rs`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use hotsite_core::EventKind;
use hotsite_host::{EventBus, Host, HttpRoutes, Record, System};
use hotsite_store::{PgStore, SqliteStore};

use crate::config::{Config, StoreChoice};
use crate::notify::Notify;
use crate::signals::Signals;

/// Loads and validates the config before anything opens, then runs.
pub(crate) async fn run(path: &Path) -> anyhow::Result<ExitCode> {
    // Exit status 2, as an invalid file: a restart would not mend it
    // (the unit's RestartPreventExitStatus=2).
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: cannot read {}: {error}", path.display());
            return Ok(ExitCode::from(2));
        }
    };
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
    // The systems started, in order, for the readiness status.
    let mut systems: Vec<&'static str> = Vec::new();
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
        add(&mut host, &mut systems, Box::new(handle), routes);
    }
    let mut voice_addr = None;
    if let Some(voice) = &config.voice {
        let (voice, routes) = hotsite_voice::start(voice, &deps, tap)
            .await
            .context("cannot start the voice proxy")?;
        voice_addr = Some(voice.local_addr());
        add(&mut host, &mut systems, Box::new(voice), routes);
    }
    // Business continuity before messaging: its drain ends the process.
    let mut site = None;
    if let Some(continuity) = &config.continuity {
        let (handle, routes) = hotsite_site::start(continuity, &deps)
            .await
            .context("cannot start business continuity (site)")?;
        site = Some((handle.local_addr(), handle.drain_watch()));
        let client = handle.client();
        add(&mut host, &mut systems, Box::new(handle), routes);
        // Desktops after the site they drive (and stopped before it).
        if let Some(desktop) = &config.desktop {
            let (service, routes) =
                hotsite_desktop::service::start(desktop, &config.site, client, &deps)
                    .await
                    .context("cannot start the desktop service")?;
            add(&mut host, &mut systems, Box::new(service), routes);
        }
    }
    if let Some(store) = store {
        let gateway = config.gateway.clone();
        let started = match store {
            OpenStore::Sqlite(store) => hotsite_messaging::start(gateway, store, &deps).await,
            OpenStore::Postgres(store) => hotsite_messaging::start(gateway, store, &deps).await,
        };
        let (gateway, routes) = started.context("cannot start the gateway")?;
        add(&mut host, &mut systems, Box::new(gateway), routes);
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
    // Every system has started and the host serves: READY=1 (after the
    // lines above, so a reader of the output sees the addresses first).
    // Signals are caught from before it, so a stop right after READY=1 is a
    // clean one.
    let mut signals = Signals::listen()?;
    let notify = Notify::from_env();
    let drain_timeout = config.continuity.as_ref().map(|site| site.drain_timeout);
    let drain_started = wait_drain_started(host.events().clone(), drain_timeout.is_some());
    let drained = wait_drained(drained);
    tokio::pin!(drain_started, drained);
    let mut drain_told = false;
    notify.ready(host.local_addr(), &systems);
    let watchdog = notify.watchdog(host.local_addr());
    loop {
        tokio::select! {
            () = &mut drain_started, if !drain_told => {
                tell_drain(&notify, &mut drain_told, drain_timeout);
            }
            () = signals.wait() => {
                notify.stopping("signal received; unbinding, queued messages stay in the store");
                eprintln!("stopping: unbinding; queued messages stay in the store");
                break;
            }
            () = &mut drained => {
                // The drain's start is told first, whichever task ran first.
                tell_drain(&notify, &mut drain_told, drain_timeout);
                notify.stopping("drained; no call left (or site.drain_timeout passed)");
                eprintln!("drained: no call left at this site (or site.drain_timeout passed); stopping");
                break;
            }
        }
    }
    if let Some(watchdog) = &watchdog {
        watchdog.shutting_down();
    }
    host.shutdown().await;
    drop(watchdog);
    Ok(ExitCode::SUCCESS)
}

/// Tells systemd that a drain has started, once.
fn tell_drain(notify: &Notify, told: &mut bool, drain_timeout: Option<std::time::Duration>) {
    if let (false, Some(timeout)) = (*told, drain_timeout) {
        notify.draining(timeout);
        *told = true;
    }
}

/// Adds a started system to the host and its name to `systems`.
fn add(
    host: &mut Host,
    systems: &mut Vec<&'static str>,
    system: Box<dyn System>,
    routes: HttpRoutes,
) {
    systems.push(system.name());
    host.add(system, routes);
}

/// Resolves when a site drain starts (SPEC S7: the process will stop by
/// itself); never without a site.
async fn wait_drain_started(bus: EventBus, site: bool) {
    use tokio::sync::broadcast::error::RecvError;
    if !site {
        return std::future::pending().await;
    }
    let is_drain = |record: &Record| {
        matches!(
            record.event.kind,
            EventKind::SiteMode {
                mode: "draining",
                ..
            }
        )
    };
    let mut events = bus.subscribe();
    // A drain asked for before the subscription is in the ring.
    let mut started = !bus.recent_where(1, is_drain).is_empty();
    while !started {
        match events.recv().await {
            Ok(record) => started = is_drain(&record),
            // Fell behind: look in the ring for what was missed.
            Err(RecvError::Lagged(_)) => started = !bus.recent_where(1, is_drain).is_empty(),
            Err(RecvError::Closed) => return std::future::pending().await,
        }
    }
}

/// Resolves when a drain of the site is over (SPEC S7); never without a
/// site.
async fn wait_drained(drained: Option<hotsite_site::DrainWatch>) {
    match drained {
        Some(drained) => drained.wait().await,
        None => std::future::pending().await,
    }
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
