//! The traffic and the controller's loop: posting the messages (held at phase
//! boundaries when a scenario asks), ticks, progress, and when to stop.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::{Settings, TOKEN};
use crate::clock;

/// Posts the messages in batches, paced at the rate, four requests at a time,
/// never beyond `limit`: a scenario holds the traffic at a phase boundary until
/// the phase's effect shows, and meanwhile lets one message through per
/// 100 ms ([`Traffic::tick`]) so that there is something to show it.
pub(super) struct Traffic {
    total: u64,
    accepted: Arc<AtomicU64>,
    limit: Arc<AtomicU64>,
    last_trickle: Instant,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Traffic {
    /// Starts posting message `0..settings.messages`, built by `message`, up
    /// to `hold` of them until told more.
    pub(super) fn start(
        api: &str,
        settings: &Settings,
        hold: f64,
        message: fn(u64) -> Value,
    ) -> Traffic {
        let accepted = Arc::new(AtomicU64::new(0));
        let limit = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(send_all(
            api.to_owned(),
            settings.messages,
            settings.rate,
            settings.batch,
            message,
            limit.clone(),
            accepted.clone(),
        ));
        let mut traffic = Traffic {
            total: settings.messages,
            accepted,
            limit,
            last_trickle: clock::now(),
            task,
        };
        traffic.hold_at(hold);
        traffic
    }

    /// Messages the API has accepted (durably).
    pub(super) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    fn count(&self, fraction: f64) -> u64 {
        ((self.total as f64 * fraction).ceil() as u64).min(self.total)
    }

    /// Whether `fraction` of the messages have been accepted.
    pub(super) fn reached(&self, fraction: f64) -> bool {
        self.accepted() >= self.count(fraction)
    }

    /// Lets the traffic run up to `fraction` of the messages.
    pub(super) fn hold_at(&mut self, fraction: f64) {
        self.limit
            .fetch_max(self.count(fraction), Ordering::Relaxed);
    }

    /// Lets every message through.
    pub(super) fn release(&mut self) {
        self.hold_at(1.0);
    }

    /// While the traffic is held, one more message per 100 ms.
    fn tick(&mut self, now: Instant) {
        let limit = self.limit.load(Ordering::Relaxed);
        if limit < self.total
            && self.accepted() >= limit
            && now >= self.last_trickle + Duration::from_millis(100)
        {
            self.limit.store(limit + 1, Ordering::Relaxed);
            self.last_trickle = now;
        }
    }

    /// Whether every message was accepted, or posting failed.
    pub(super) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the sender and returns its error, if any.
    pub(super) async fn join(self) -> anyhow::Result<()> {
        self.task.await.context("traffic task")?
    }
}

async fn send_all(
    api: String,
    messages: u64,
    rate: u64,
    batch: u64,
    message: fn(u64) -> Value,
    limit: Arc<AtomicU64>,
    accepted: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut next = tokio::time::Instant::from_std(clock::now());
    let parallel = Arc::new(tokio::sync::Semaphore::new(4));
    let mut requests = tokio::task::JoinSet::new();
    let mut first = 0;
    while first < messages {
        let mut held = false;
        while limit.load(Ordering::Relaxed) <= first {
            held = true;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let last = (first + batch)
            .min(messages)
            .min(limit.load(Ordering::Relaxed));
        if rate > 0 {
            if held {
                // Pace on from here: no burst to catch up after a hold.
                next = next.max(tokio::time::Instant::from_std(clock::now()));
            }
            tokio::time::sleep_until(next).await;
            next += Duration::from_secs_f64((last - first) as f64 / rate as f64);
        }
        let permit = parallel.clone().acquire_owned().await?;
        let body = json!({ "messages": (first..last).map(message).collect::<Vec<_>>() });
        let (http, api, accepted) = (http.clone(), api.clone(), accepted.clone());
        requests.spawn(async move {
            let _permit = permit;
            // The same batch with the same keys may be posted again safely (SPEC M8).
            for _ in 0..20 {
                let sent = http
                    .post(format!("{api}/v1/messages"))
                    .bearer_auth(TOKEN)
                    .json(&body)
                    .send()
                    .await;
                if let Ok(response) = sent {
                    if response.status().as_u16() == 202 {
                        accepted.fetch_add(last - first, Ordering::Relaxed);
                        return Ok(());
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            bail!("the API did not accept messages {first}..{last}")
        });
        first = last;
    }
    while let Some(result) = requests.join_next().await {
        result??;
    }
    Ok(())
}

/// The controller's loop: a tick every 50 ms, progress, and when to stop.
pub(super) struct Driver<'a> {
    progress: &'a Progress,
    total: u64,
    start: Instant,
    deadline: Instant,
    delivered_at: Option<Instant>,
}

/// How long the controller waits, after everything arrived, for what the
/// scenario still wants to see (a rebind, a return to the primary).
const GRACE_AFTER_DELIVERY: Duration = Duration::from_secs(60);

impl<'a> Driver<'a> {
    pub(super) fn new(settings: &Settings, progress: &'a Progress) -> Driver<'a> {
        let start = clock::now();
        Driver {
            progress,
            total: settings.messages,
            start,
            deadline: start + Duration::from_secs(settings.messages / settings.rate.max(1) + 120),
            delivered_at: None,
        }
    }

    /// When the traffic started.
    pub(super) fn start(&self) -> Instant {
        self.start
    }

    /// Waits for the next tick; returns its time.
    pub(super) async fn tick(&mut self, traffic: &mut Traffic) -> Instant {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = clock::now();
        traffic.tick(now);
        now
    }

    /// After a tick: `settled` messages arrived (or failed for good), `done`
    /// when the scenario saw everything it waits for. Shows progress; true
    /// when the loop should end.
    pub(super) fn end(
        &mut self,
        now: Instant,
        traffic: &Traffic,
        settled: u64,
        done: bool,
        status: &str,
    ) -> bool {
        let accepted = traffic.accepted();
        let posted = traffic.is_finished();
        if self.delivered_at.is_none() && posted && settled >= accepted {
            self.delivered_at = Some(now);
        }
        let stop = if posted && accepted < self.total {
            Some("posting failed (see below)")
        } else if self.delivered_at.is_some() && done {
            return self.stop(None);
        } else if self
            .delivered_at
            .is_some_and(|at| now > at + GRACE_AFTER_DELIVERY)
        {
            Some(
                "stopped waiting: everything arrived, but not every effect showed (see the report)",
            )
        } else if now > self.deadline {
            Some("stopped waiting: the deadline passed (see the report)")
        } else {
            None
        };
        if stop.is_some() {
            return self.stop(stop);
        }
        if posted {
            self.progress
                .status(&format!("arrived {settled}/{accepted} | {status}"));
        } else {
            self.progress.bar(
                accepted,
                self.total,
                &format!("arrived {settled} | {status}"),
            );
        }
        false
    }

    fn stop(&self, why: Option<&str>) -> bool {
        self.progress.done();
        if let Some(why) = why {
            self.progress.line(why);
        }
        true
    }

    /// From the start to when everything arrived (or now).
    pub(super) fn duration(&self) -> Duration {
        self.delivered_at
            .unwrap_or_else(clock::now)
            .saturating_duration_since(self.start)
    }
}

/// Progress on stderr: a redrawn bar on a terminal, a line per 10% otherwise.
pub(super) struct Progress {
    enabled: bool,
    terminal: bool,
    last_decile: AtomicU64,
}

impl Progress {
    pub(super) fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            terminal: std::io::stderr().is_terminal(),
            last_decile: AtomicU64::new(0),
        }
    }

    pub(super) fn line(&self, text: &str) {
        if self.enabled {
            eprintln!("{text}");
        }
    }

    fn bar(&self, done: u64, total: u64, status: &str) {
        if !self.enabled {
            return;
        }
        let percent = (done * 100 / total.max(1)).min(100);
        if self.terminal {
            let filled = (percent / 5) as usize;
            eprint!(
                "\r[{}{}] {percent:>3}% {done}/{total} accepted | {status}\x1b[K",
                "#".repeat(filled),
                "-".repeat(20 - filled)
            );
            let _ = std::io::stderr().flush();
        } else if percent / 10 > self.last_decile.load(Ordering::Relaxed) {
            self.last_decile.store(percent / 10, Ordering::Relaxed);
            eprintln!("{percent:>3}% {done}/{total} accepted | {status}");
        }
    }

    fn status(&self, text: &str) {
        if self.enabled && self.terminal {
            eprint!("\r{text}\x1b[K");
            let _ = std::io::stderr().flush();
        }
    }

    fn done(&self) {
        if self.enabled && self.terminal {
            eprintln!();
        }
    }
}
