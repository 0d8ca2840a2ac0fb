//! `hotsite status --follow`: the status picture, kept current from the
//! gateway's event stream. Each event goes into the timeline and makes the
//! status due again (debounced); the status is read every 2 s anyway. A lost
//! stream or gateway is reconnected with a bounded backoff, resuming after
//! the last event seen (`Last-Event-ID`), until Ctrl-C or SIGTERM; a refused
//! token ends it with an error.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::pacing::{Backoff, Refresh, Throughput};
use super::picture::{render, Frame};
use super::read::{self, Failure};
use super::screen::{Screen, Terminal};
use super::sse::SseParser;
use super::timeline::{StreamItem, Timeline};
use super::Endpoint;
use crate::clock;

/// A stream that sent nothing for this long is taken for dead (the host
/// sends a keep-alive comment every 15 s).
const IDLE: Duration = Duration::from_secs(45);

/// Events kept for the timeline: a terminal shows as many as fit.
const KEPT: usize = 200;

/// Runs until Ctrl-C or SIGTERM (exit 0), or a failure retrying cannot fix.
pub(crate) async fn run(endpoint: Endpoint, systems: Vec<String>) -> anyhow::Result<ExitCode> {
    // Installed first, so a signal during the first reads is caught too.
    let mut signals = crate::signals::Signals::listen()?;
    let client = read::http_client()?;
    // A first contact that fails is an error: most likely a wrong address
    // or token, which waiting would not mend.
    let status = read::status(&client, &endpoint)
        .await
        .map_err(|failure| failure.into_error(&endpoint))?;
    super::warn_unknown_systems(&status, &systems);
    let mut timeline = Timeline::new(KEPT, systems.clone());
    timeline.extend(
        read::backlog(&client, &endpoint, &systems)
            .await
            .map_err(|failure| failure.into_error(&endpoint))?,
    );
    let now = clock::now();
    let mut throughput = Throughput::default();
    throughput.record(now, &status["queue"]);
    let mut follow = Follow {
        screen: Screen::open(Terminal::detect())?,
        client,
        endpoint,
        status,
        timeline,
        throughput,
        refresh: Refresh::new(now),
        notice: None,
    };
    let ended = tokio::select! {
        ended = follow.run() => ended,
        () = signals.wait() => Ok(()),
    };
    // Dropping the screen gives the terminal back before any error is printed.
    drop(follow);
    match ended {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // The reader of a pipe went away (`| head`): done, not failed.
        Err(error)
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => Err(error),
    }
}

/// Why a stream ended (none of these ends the program).
enum Ended {
    /// The connection or the gateway went away.
    Lost(String),
    /// The gateway dropped events for this client: resume at once.
    Lagged(u64),
}

/// The follow loop's state.
struct Follow {
    screen: Screen,
    client: reqwest::Client,
    endpoint: Endpoint,
    /// The last status read.
    status: Value,
    timeline: Timeline,
    throughput: Throughput,
    refresh: Refresh,
    /// Shown under the header on a terminal, printed once on a pipe:
    /// reconnecting, status unavailable.
    notice: Option<String>,
}

impl Follow {
    async fn run(&mut self) -> anyhow::Result<()> {
        // On a pipe, the first picture carries the timeline read so far;
        // later events are printed one per line as they come.
        self.draw(true)?;
        let mut backoff = Backoff::default();
        loop {
            let why = match self.connect(backoff.failures() > 0).await {
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Transient(why)) => why,
                Ok(response) => {
                    if backoff.failures() > 0 {
                        backoff.reset();
                        self.set_notice(None)?;
                        self.screen.line("reconnected")?;
                        self.read_status().await?;
                        self.draw(false)?;
                    }
                    match self.read_stream(response).await? {
                        Ended::Lagged(missed) => {
                            self.screen.line(&format!(
                                "lagged: the gateway skipped {missed} events for this client; reading them back from its ring"
                            ))?;
                            continue;
                        }
                        Ended::Lost(why) => why,
                    }
                }
            };
            let delay = backoff.next_delay();
            self.set_notice(Some(format!(
                "reconnecting… (attempt {} in {delay:?}: {why})",
                backoff.failures()
            )))?;
            self.draw(false)?;
            tokio::time::sleep(delay).await;
        }
    }

    /// Opens the event stream after the last event seen. After a lost
    /// connection, first checks that the gateway is the one it was: one that
    /// restarted numbers its events anew, so the timeline is read again.
    async fn connect(&mut self, after_loss: bool) -> Result<reqwest::Response, Failure> {
        if let Some(last_seen) = self.timeline.last_seen().filter(|_| after_loss) {
            if !read::still_has(&self.client, &self.endpoint, last_seen).await? {
                let backlog =
                    read::backlog(&self.client, &self.endpoint, self.timeline.systems()).await?;
                let mut timeline =
                    Timeline::new(self.timeline.capacity(), self.timeline.systems().to_vec());
                timeline.extend(backlog);
                self.timeline = timeline;
                // On a pipe, the new gateway's events so far, as lines.
                let mut lines = vec![
                    "the gateway restarted (its events are numbered anew): timeline read again"
                        .to_owned(),
                ];
                lines.extend(
                    self.timeline
                        .entries()
                        .map(|entry| format!("event {}", entry.line())),
                );
                for line in lines {
                    self.screen
                        .line(&line)
                        .map_err(|error| Failure::Fatal(error.into()))?;
                }
            }
        }
        read::open_stream(&self.client, &self.endpoint, self.timeline.last_seq()).await
    }

    /// Reads one connection's events until it ends, reading the status when
    /// it is due.
    async fn read_stream(&mut self, mut response: reqwest::Response) -> anyhow::Result<Ended> {
        let mut parser = SseParser::new();
        let mut last_data = clock::now();
        loop {
            let refresh_at = self.refresh.deadline();
            tokio::select! {
                chunk = response.chunk() => {
                    let bytes = match chunk {
                        Ok(Some(bytes)) => bytes,
                        Ok(None) => return Ok(Ended::Lost("the gateway closed the event stream".into())),
                        Err(error) => return Ok(Ended::Lost(read::describe(error))),
                    };
                    last_data = clock::now();
                    let mut shown = false;
                    for event in parser.feed(&bytes) {
                        match StreamItem::from_sse(&event) {
                            StreamItem::Event(entry) => {
                                let line = entry.line();
                                if self.timeline.push(entry) {
                                    self.screen.line(&format!("event {line}"))?;
                                    shown = true;
                                }
                                self.refresh.event();
                            }
                            StreamItem::Lagged { missed } => return Ok(Ended::Lagged(missed)),
                            StreamItem::Unknown(what) => {
                                tracing::warn!("event stream: {what}");
                            }
                        }
                    }
                    if shown && self.screen.is_tty() {
                        self.draw(false)?;
                    }
                }
                () = tokio::time::sleep_until(refresh_at.into()) => {
                    self.read_status().await?;
                    self.draw(false)?;
                }
                () = tokio::time::sleep_until((last_data + IDLE).into()) => {
                    return Ok(Ended::Lost(format!("the event stream was silent for {IDLE:?}")));
                }
            }
        }
    }

    /// Reads the status; a gateway that does not answer leaves the last
    /// status shown, with a notice.
    async fn read_status(&mut self) -> anyhow::Result<()> {
        let result = read::status(&self.client, &self.endpoint).await;
        let now = clock::now();
        self.refresh.read(now);
        match result {
            Ok(status) => {
                self.throughput.record(now, &status["queue"]);
                self.status = status;
                if self
                    .notice
                    .as_deref()
                    .is_some_and(|n| n.starts_with("status unavailable"))
                {
                    self.set_notice(None)?;
                }
                Ok(())
            }
            Err(Failure::Fatal(error)) => Err(error),
            Err(Failure::Transient(why)) => self.set_notice(Some(format!(
                "status unavailable, showing the last one read: {why}"
            ))),
        }
    }

    /// Shows the picture: redrawn on a terminal; printed on a pipe when the
    /// status changed (or `first`), with the timeline only the first time.
    fn draw(&mut self, first: bool) -> anyhow::Result<()> {
        let terminal = self.screen.terminal();
        // What must differ for a pipe to get a new picture: the status, not
        // the clock, the rate or the timeline (printed line by line). On a
        // terminal its length is the status's height.
        let key = render(&Frame {
            status: &self.status,
            timeline: &self.timeline,
            timeline_lines: None,
            rate: None,
            now_ms: None,
            colour: false,
        });
        let timeline_lines = if terminal.tty {
            // As many of the newest events as fit under the status.
            let rows = self.screen.size().map_or(usize::MAX, |(rows, _)| rows);
            // The timeline's heading, the notice, the last row left empty.
            let taken = key.len() + 2 + usize::from(self.notice.is_some());
            Some(
                rows.saturating_sub(taken)
                    .clamp(1, self.timeline.capacity().max(1)),
            )
        } else {
            first.then_some(super::TIMELINE_LINES)
        };
        let picture = render(&Frame {
            status: &self.status,
            timeline: &self.timeline,
            timeline_lines,
            rate: self.throughput.per_second(),
            now_ms: Some(clock::wall_ms()),
            colour: terminal.colour,
        });
        self.screen.picture(&picture, self.notice.as_deref(), key)?;
        Ok(())
    }

    /// Sets the notice; a pipe gets each new one as a line.
    fn set_notice(&mut self, notice: Option<String>) -> anyhow::Result<()> {
        if notice != self.notice {
            if let Some(notice) = &notice {
                self.screen.line(notice)?;
            }
            self.notice = notice;
        }
        Ok(())
    }
}
