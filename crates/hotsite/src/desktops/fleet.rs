//! The desktops of `hotsite desktops`: one `hotsite_desktop::client::Desktop`
//! per person, each driven by a small task that timestamps its reports on
//! one clock (the desktop's own `at_ms` counts from its start: the task
//! keeps that origin), sets the agent Ready after every login, and notes
//! when the site says the agent is Ready.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotsite_desktop::client::{Command, Desktop, DesktopConfig, DesktopState, Report, Timed};
use hotsite_desktop::Output;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::rig::{person, PASSWORD};
use super::Settings;
use crate::clock;

/// What a desktop saw: a report of the client, or the agent Ready at a site
/// (from the agent's state, which the client keeps).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Seen {
    Report(Report),
    Ready { site: String },
}

/// One desktop's history and where it stands.
#[derive(Debug, Clone)]
pub(crate) struct Track {
    pub(crate) user: String,
    pub(crate) events: Vec<(Instant, Seen)>,
    /// The site it has a connection to.
    pub(crate) connected: Option<String>,
    /// The site it logged the agent in at, while that connection lasts.
    pub(crate) logged_in: Option<String>,
    /// The agent is Ready there.
    pub(crate) ready: bool,
    /// The desktop stopped (a refusal the other site would repeat).
    pub(crate) stopped: bool,
}

impl Track {
    fn new(user: String) -> Track {
        Track {
            user,
            events: Vec::new(),
            connected: None,
            logged_in: None,
            ready: false,
            stopped: false,
        }
    }

    fn saw(&mut self, at: Instant, seen: Seen) {
        match &seen {
            Seen::Report(Report::Connected { site }) => self.connected = Some(site.clone()),
            Seen::Report(Report::LoggedIn { site }) => self.logged_in = Some(site.clone()),
            Seen::Report(Report::Lost { .. } | Report::Decision(Output::SwitchOver { .. })) => {
                self.connected = None;
                self.logged_in = None;
                self.ready = false;
            }
            Seen::Report(Report::LoggedOut { .. }) => {
                self.logged_in = None;
                self.ready = false;
            }
            Seen::Report(Report::Stopped { .. }) => {
                self.stopped = true;
                self.connected = None;
                self.logged_in = None;
                self.ready = false;
            }
            Seen::Ready { .. } => self.ready = true,
            _ => {}
        }
        self.events.push((at, seen));
    }
}

/// Counts over all desktops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) connected: [usize; 2],
    pub(crate) logged_in: usize,
    pub(crate) ready: usize,
    pub(crate) stopped: usize,
}

type Log = Arc<Mutex<Vec<Track>>>;

/// The running desktops.
pub(crate) struct Fleet {
    log: Log,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Fleet {
    /// Room for `settings.desktops` desktops, none started yet.
    pub(crate) fn new(settings: &Settings) -> Fleet {
        let n = settings.desktops;
        let log: Log = Arc::new(Mutex::new(
            (0..n)
                .map(|i| {
                    let (user, _, _) = person(i);
                    Track::new(user)
                })
                .collect(),
        ));
        Fleet {
            log,
            stops: Vec::with_capacity(n),
            tasks: Vec::with_capacity(n),
        }
    }

    /// Starts desktop `i` at its preferred site with that site cached
    /// (D3), so that nobody switches at start.
    pub(crate) fn start_one(
        &mut self,
        i: usize,
        settings: &Settings,
        urls: &[(String, String); 2],
    ) -> anyhow::Result<()> {
        let (user, _, preferred) = person(i);
        let mut config = DesktopConfig::new(urls.clone(), &user, PASSWORD);
        config.options = settings.machine_options();
        config.seed = 0x5eed_0000 + i as u64;
        config.start_site = preferred.to_owned();
        config.cached_preferred_site = Some(preferred.to_owned());
        let (tx, rx) = mpsc::unbounded_channel();
        let origin = clock::now();
        let desktop =
            Desktop::start(config, tx).map_err(|e| anyhow::anyhow!("desktop {user}: {e}"))?;
        let (stop, stopped) = oneshot::channel();
        self.stops.push(stop);
        self.tasks.push(tokio::spawn(drive(
            i,
            desktop,
            rx,
            origin,
            self.log.clone(),
            stopped,
        )));
        Ok(())
    }

    pub(crate) fn counts(&self) -> Counts {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts = Counts::default();
        for track in log.iter() {
            match track.connected.as_deref() {
                Some("a") => counts.connected[0] += 1,
                Some("b") => counts.connected[1] += 1,
                _ => {}
            }
            counts.logged_in += usize::from(track.logged_in.is_some());
            counts.ready += usize::from(track.ready);
            counts.stopped += usize::from(track.stopped);
        }
        counts
    }

    /// A copy of every desktop's track.
    pub(crate) fn tracks(&self) -> Vec<Track> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs `f` on the tracks without copying them.
    pub(crate) fn with_tracks<T>(&self, f: impl FnOnce(&[Track]) -> T) -> T {
        f(&self.log.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Stops every desktop (closing its connection), waiting at most
    /// `limit` in all.
    pub(crate) async fn stop(self, limit: Duration) {
        for stop in self.stops {
            let _ = stop.send(());
        }
        let all = futures_join(self.tasks);
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!("desktops did not all stop within {limit:?}");
        }
    }
}

async fn futures_join(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// One desktop's task: reports into the log (on the tool's clock), Ready
/// after each login, the agent's Ready state as the site says it.
async fn drive(
    i: usize,
    desktop: Desktop,
    mut reports: mpsc::UnboundedReceiver<Timed>,
    origin: Instant,
    log: Log,
    mut stop: oneshot::Receiver<()>,
) {
    let mut state: watch::Receiver<DesktopState> = desktop.watch();
    let mut reports_open = true;
    let mut state_open = true;
    let record = |seen: Seen, at: Instant| {
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(track) = log.get_mut(i) {
            track.saw(at, seen);
        }
    };
    let ready_now = |log: &Log| {
        log.lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(i)
            .is_some_and(|t| t.ready)
    };
    loop {
        tokio::select! {
            _ = &mut stop => break,
            timed = reports.recv(), if reports_open => match timed {
                Some(timed) => {
                    let at = origin + Duration::from_millis(timed.at_ms);
                    let login = matches!(timed.report, Report::LoggedIn { .. });
                    record(Seen::Report(timed.report), at);
                    if login {
                        desktop.command(Command::Ready).await;
                    }
                }
                None => reports_open = false,
            },
            changed = state.changed(), if state_open => {
                if changed.is_err() {
                    state_open = false;
                    continue;
                }
                let now = state.borrow_and_update().clone();
                let ready_at = match (&now.logged_in, now.agent_state.as_deref()) {
                    (Some(site), Some("ready")) => Some(site.clone()),
                    _ => None,
                };
                if let Some(site) = ready_at {
                    if !ready_now(&log) {
                        record(Seen::Ready { site }, clock::now());
                    }
                }
            }
        }
    }
    desktop.stop().await;
}

/// An empty track, for the report's tests.
#[cfg(test)]
pub(crate) fn tests_track(user: &str) -> Track {
    Track::new(user.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A track follows the reports: logged in, Ready, lost, switched.
    #[test]
    fn a_track_follows_its_reports() {
        let at = clock::now();
        let mut track = Track::new("agent-0001".into());
        let site = || "a".to_owned();
        track.saw(at, Seen::Report(Report::Connected { site: site() }));
        track.saw(at, Seen::Report(Report::LoggedIn { site: site() }));
        track.saw(at, Seen::Ready { site: site() });
        assert_eq!(track.logged_in.as_deref(), Some("a"));
        assert!(track.ready);
        track.saw(at, Seen::Report(Report::Lost { site: site() }));
        assert_eq!(track.connected, None);
        assert_eq!(track.logged_in, None);
        assert!(!track.ready);
        assert_eq!(track.events.len(), 4);
    }
}
