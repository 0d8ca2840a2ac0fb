//! Client-side failover over an aggregator's site URLs (SPEC M3, M12). Pure: no
//! I/O, no clock; `now` comes in as a parameter.
//!
//! The URLs are in order, `0` the primary. Each has a [`Health`]:
//!
//! - **Choosing.** A message starting a round goes to the first URL that is up,
//!   or to the primary when none is (something has to be tried; the probes may
//!   lag). New traffic therefore returns to the primary as soon as it is up again.
//! - **Resubmitting.** When a URL fails a message (no connection, no answer in
//!   time, 408/5xx, an abnormal answer), the same message goes to the same URL
//!   again after `resubmit_delay` (default 30 s), `resubmits_per_url` times
//!   (default once): one lost answer is not a dead site.
//! - **Failing over.** When the failure repeats, the URL is marked down at once
//!   (passive detection: every new message skips it from now on) and the message
//!   goes at once to the next URL in order that it has not tried and that is up.
//!   A failure on a URL already known down moves on at once: there is nothing
//!   to wait for.
//! - **All failed.** When no such URL is left, the round is over: the step is
//!   [`Step::AllFailed`], the alert is raised, and the route's backoff decides
//!   when the message starts its next round (it stays queued).
//! - **Provider answers** (throttled, internal error, any code) prove the URL is
//!   alive: the message is retried on the same URL and the URL stays up.
//! - **Probing.** A URL marked down is probed every `probe_interval` (default
//!   5 s); after `rise` consecutive good probes (default 2) it is up again. Only
//!   probes bring a URL back: one lucky send to a URL that is down (when all
//!   are) is not proof it is healthy.
//!
//! Every health change is an [`Event`] with its cause and time
//! ([`UrlFailover::poll_event`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hotsite_core::{Event, EventKind, Health, HealthConfig, HealthState, HealthTransition, Target};

/// Timers and thresholds of a [`UrlFailover`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverConfig {
    /// Delay before the same message goes to the same URL again. Default: 30 s.
    pub resubmit_delay: Duration,
    /// Resubmits to one failing URL before it is marked down. Default: 1.
    pub resubmits_per_url: u32,
    /// How often a URL that is down is probed. Default: 5 s.
    pub probe_interval: Duration,
    /// Consecutive good probes that bring a URL back up. Default: 2.
    pub rise: u32,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            resubmit_delay: Duration::from_secs(30),
            resubmits_per_url: 1,
            probe_interval: Duration::from_secs(5),
            rise: 2,
        }
    }
}

/// Where one message stands in its round over the URLs. The caller keeps one,
/// starting from `default()`, per message for the life of its attempt on this
/// hop, and hands it to every send of that message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AggregatorCursor {
    /// The URL the message goes to next.
    current: Option<usize>,
    /// Failures in a row on `current`.
    failures_here: u32,
    /// URLs tried in this round.
    tried: Vec<usize>,
}

impl AggregatorCursor {
    /// The URL (index) the message goes to next, if its round has started.
    pub fn url(&self) -> Option<usize> {
        self.current
    }

    fn move_to(&mut self, url: usize) {
        self.current = Some(url);
        self.failures_here = 0;
        if !self.tried.contains(&url) {
            self.tried.push(url);
        }
    }
}

/// What to do with a message after its URL failed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send it to the same URL again after this delay.
    ResubmitAfter(Duration),
    /// Send it at once to this URL, the next in order.
    Alternate(usize),
    /// Every URL failed in this round: the route's backoff decides when the
    /// next round starts. The alert is raised.
    AllFailed,
}

impl Step {
    /// The `retry_after` of the send's outcome: the resubmit delay, zero for
    /// the alternate, none (the route's backoff) when all failed.
    pub fn retry_after(self) -> Option<Duration> {
        match self {
            Step::ResubmitAfter(delay) => Some(delay),
            Step::Alternate(_) => Some(Duration::ZERO),
            Step::AllFailed => None,
        }
    }
}

/// The last probe of a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRecord {
    /// When its answer (or failure) came.
    pub at: Instant,
    /// Whether the URL answered below 500 in time.
    pub alive: bool,
    /// What it answered, or why it failed.
    pub detail: String,
}

/// One URL as the status shows it.
#[derive(Debug, Clone, Copy)]
pub struct UrlView<'a> {
    /// The site and URL.
    pub target: &'a Target,
    /// Up, down, or down and collecting good probes.
    pub state: HealthState,
    /// When it entered `state`.
    pub since: Instant,
    /// Why it is down.
    pub cause: Option<&'a str>,
    /// Its last probe.
    pub last_probe: Option<&'a ProbeRecord>,
}

/// What the failover has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailoverCounters {
    /// Sends a URL failed (no answer, 408/5xx, abnormal answer).
    pub url_failures: u64,
    /// Resubmits to the same URL after a failure.
    pub resubmits: u64,
    /// Messages moved to another URL.
    pub failovers: u64,
    /// Rounds in which every URL failed (each raised the alert).
    pub all_failed: u64,
    /// Probe answers and failures received.
    pub probes: u64,
    /// Probes that failed.
    pub probes_failed: u64,
}

/// How a URL answered a message, for [`UrlFailover::handle_answer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlAnswer {
    /// The provider took the message: this also clears the all-failed alert.
    Accepted,
    /// The provider answered as its API does but did not take it (refused,
    /// throttled, internal error): the URL is alive all the same.
    NotAccepted,
}

/// Which URL of one aggregator channel gets the next send, and when a URL is
/// down or back (SPEC M3): see the module docs.
#[derive(Debug)]
pub struct UrlFailover {
    config: FailoverConfig,
    urls: Vec<UrlState>,
    events: VecDeque<Event>,
    all_failed_alert: bool,
    counters: FailoverCounters,
}

#[derive(Debug)]
struct UrlState {
    target: Target,
    health: Health,
    cause: Option<String>,
    next_probe: Option<Instant>,
    probe_in_flight: bool,
    last_probe: Option<ProbeRecord>,
}

impl UrlFailover {
    /// Every URL starts up at `now`.
    ///
    /// # Panics
    /// If `targets` is empty (the configuration requires at least one URL).
    pub fn new(config: FailoverConfig, targets: Vec<Target>, now: Instant) -> UrlFailover {
        assert!(!targets.is_empty(), "an aggregator has at least one URL");
        let health = HealthConfig {
            rise: config.rise,
            // URLs go down by `force_down` after repeated failures of one
            // message, never by counting probes: probes run only on URLs down.
            fall: 1,
        };
        let urls = targets
            .into_iter()
            .map(|target| UrlState {
                target,
                health: Health::new(health, HealthState::Up, now),
                cause: None,
                next_probe: None,
                probe_in_flight: false,
                last_probe: None,
            })
            .collect();
        UrlFailover {
            config,
            urls,
            events: VecDeque::new(),
            all_failed_alert: false,
            counters: FailoverCounters::default(),
        }
    }

    /// The URL (index) to send the cursor's message to now.
    pub fn choose(&mut self, cursor: &mut AggregatorCursor) -> usize {
        if let Some(current) = cursor.current.filter(|&url| url < self.urls.len()) {
            if self.is_up(current) {
                return current;
            }
            // Marked down (by other messages' failures) since this message was
            // sent there: resubmitting to a URL known down is waiting for nothing.
            if let Some(next) = self.next_untried_up(cursor) {
                cursor.move_to(next);
                self.counters.failovers += 1;
                return next;
            }
            return current;
        }
        *cursor = AggregatorCursor::default();
        let url = (0..self.urls.len())
            .find(|&url| self.is_up(url))
            .unwrap_or(0);
        cursor.move_to(url);
        url
    }

    /// `url` failed the cursor's message (no connection, no answer in time,
    /// 408/5xx, an abnormal answer): says what to do next, and marks the URL
    /// down when the failure repeats.
    pub fn handle_url_failure(
        &mut self,
        cursor: &mut AggregatorCursor,
        url: usize,
        cause: &str,
        now: Instant,
    ) -> Step {
        if cursor.current != Some(url) {
            cursor.move_to(url);
        }
        self.counters.url_failures += 1;
        cursor.failures_here += 1;
        if self.is_up(url) {
            if cursor.failures_here <= self.config.resubmits_per_url {
                self.counters.resubmits += 1;
                return Step::ResubmitAfter(self.config.resubmit_delay);
            }
            let cause = match cursor.failures_here {
                1 => format!("a send failed: {cause}"),
                n => format!("a send failed {n} times in a row: {cause}"),
            };
            self.mark_down(url, cause, now);
        }
        match self.next_untried_up(cursor) {
            Some(next) => {
                cursor.move_to(next);
                self.counters.failovers += 1;
                Step::Alternate(next)
            }
            None => {
                *cursor = AggregatorCursor::default();
                self.all_failed_alert = true;
                self.counters.all_failed += 1;
                Step::AllFailed
            }
        }
    }

    /// `url` answered the cursor's message as the provider's API does (accepted,
    /// refused, throttled, internal error): it is alive, and the failures of
    /// this message on it no longer count as "in a row". An accepted message
    /// clears the alert.
    pub fn handle_answer(&mut self, cursor: &mut AggregatorCursor, url: usize, answer: UrlAnswer) {
        if cursor.current != Some(url) {
            cursor.move_to(url);
        }
        cursor.failures_here = 0;
        if answer == UrlAnswer::Accepted {
            self.all_failed_alert = false;
        }
    }

    /// The URLs whose probe is due at `now`. Each is marked in flight until
    /// [`UrlFailover::handle_probe`] reports it, so probes of one URL never overlap.
    pub fn start_due_probes(&mut self, now: Instant) -> Vec<usize> {
        let interval = self.config.probe_interval;
        let mut due = Vec::new();
        for (index, url) in self.urls.iter_mut().enumerate() {
            let is_due = url.next_probe.is_some_and(|at| at <= now);
            if is_due && !url.probe_in_flight && !url.health.state().is_usable() {
                url.probe_in_flight = true;
                url.next_probe = Some(now + interval);
                due.push(index);
            }
        }
        due
    }

    /// The probe of `url` came back: `alive` when it answered below 500 in time.
    pub fn handle_probe(&mut self, url: usize, alive: bool, detail: String, now: Instant) {
        self.counters.probes += 1;
        if !alive {
            self.counters.probes_failed += 1;
        }
        let state = &mut self.urls[url];
        state.probe_in_flight = false;
        state.last_probe = Some(ProbeRecord {
            at: now,
            alive,
            detail: detail.clone(),
        });
        if state.health.state().is_usable() {
            return;
        }
        if alive {
            if let Some(transition) = state.health.record_success(now) {
                if transition.to == HealthState::Up {
                    state.cause = None;
                    state.next_probe = None;
                    self.all_failed_alert = false;
                }
                self.push_event(url, transition, format!("probe answered: {detail}"));
            }
        } else {
            let cause = format!("probe failed: {detail}");
            if let Some(transition) = state.health.record_failure(now) {
                state.cause = Some(cause.clone());
                self.push_event(url, transition, cause);
            }
        }
    }

    /// When the next probe is due, if a URL is down and not being probed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.urls
            .iter()
            .filter(|url| !url.probe_in_flight)
            .filter_map(|url| url.next_probe)
            .min()
    }

    /// The next health change, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether every URL failed a message in its round, and no URL came back
    /// up and no message was accepted since.
    pub fn all_failed_alert(&self) -> bool {
        self.all_failed_alert
    }

    /// Whether `url` takes new messages.
    pub fn is_up(&self, url: usize) -> bool {
        self.urls[url].health.state().is_usable()
    }

    /// The URLs, in order.
    pub fn urls(&self) -> impl Iterator<Item = UrlView<'_>> {
        self.urls.iter().map(|url| UrlView {
            target: &url.target,
            state: url.health.state(),
            since: url.health.since(),
            cause: url.cause.as_deref(),
            last_probe: url.last_probe.as_ref(),
        })
    }

    /// What it has done so far.
    pub fn counters(&self) -> FailoverCounters {
        self.counters
    }

    fn next_untried_up(&self, cursor: &AggregatorCursor) -> Option<usize> {
        (0..self.urls.len()).find(|url| !cursor.tried.contains(url) && self.is_up(*url))
    }

    fn mark_down(&mut self, url: usize, cause: String, now: Instant) {
        let state = &mut self.urls[url];
        if let Some(transition) = state.health.force_down(now) {
            state.cause = Some(cause.clone());
            state.next_probe = Some(now + self.config.probe_interval);
            self.push_event(url, transition, cause);
        }
    }

    fn push_event(&mut self, url: usize, transition: HealthTransition, cause: String) {
        self.events.push_back(Event {
            at: transition.at,
            target: self.urls[url].target.clone(),
            kind: EventKind::Health {
                from: transition.from,
                to: transition.to,
                cause,
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::fmt::Write;

    /// Runs a script in simulated time and compares the transcript.
    ///
    /// Lines are `<second> <step>`; steps:
    /// - `<msg> send`: choose a URL for message `<msg>` (its own cursor);
    /// - `<msg> fail`: the URL it was sent to failed it;
    /// - `<msg> throttled`, `<msg> accepted`: the provider answered;
    /// - `probe ok|fail`: every due probe answers (or fails);
    /// - `alert`, `next-probe`: show the alert flag, the next probe's second.
    ///
    /// Health events appear as `<second> <site> <from> -> <to> (<cause>)`.
    #[track_caller]
    fn check(urls: usize, config: FailoverConfig, script: &str, expected: &str) {
        #[allow(clippy::disallowed_methods)] // test epoch: only differences matter
        let start = Instant::now();
        let sites = ["a", "b", "c"];
        let targets = sites[..urls]
            .iter()
            .map(|site| Target::new(site, "sms"))
            .collect();
        let mut failover = UrlFailover::new(config, targets, start);
        let mut cursors: HashMap<String, AggregatorCursor> = HashMap::new();
        let mut transcript = String::new();
        for line in script
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
        {
            let words: Vec<&str> = line.split_whitespace().collect();
            let second: u64 = words[0].parse().unwrap();
            let now = start + Duration::from_secs(second);
            let mut out = |text: String| writeln!(transcript, "{second} {text}").unwrap();
            match words[1..] {
                ["probe", result] => {
                    let due = failover.start_due_probes(now);
                    if due.is_empty() {
                        out("probe: none due".into());
                    }
                    for url in due {
                        out(format!("probe {} {result}", sites[url]));
                        let detail = if result == "ok" {
                            "HTTP 200"
                        } else {
                            "HTTP 503"
                        };
                        failover.handle_probe(url, result == "ok", detail.into(), now);
                    }
                }
                ["alert"] => out(format!("alert={}", failover.all_failed_alert())),
                ["next-probe"] => out(format!(
                    "next probe at {:?}",
                    failover.poll_timeout().map(|at| (at - start).as_secs())
                )),
                [message, action] => {
                    let cursor = cursors.entry(message.to_owned()).or_default();
                    match action {
                        "send" => {
                            let url = failover.choose(cursor);
                            out(format!("{message} -> {}", sites[url]));
                        }
                        "fail" => {
                            let url = cursor.url().expect("sent before it failed");
                            let step = failover.handle_url_failure(cursor, url, "HTTP 503", now);
                            let step = match step {
                                Step::ResubmitAfter(delay) => format!("resubmit in {delay:?}"),
                                Step::Alternate(next) => {
                                    format!("alternate {} at once", sites[next])
                                }
                                Step::AllFailed => "all failed, route backoff".into(),
                            };
                            out(format!("{message} failed on {}: {step}", sites[url]));
                        }
                        "throttled" | "accepted" => {
                            let url = cursor.url().expect("sent before it was answered");
                            let answer = if action == "accepted" {
                                UrlAnswer::Accepted
                            } else {
                                UrlAnswer::NotAccepted
                            };
                            failover.handle_answer(cursor, url, answer);
                            out(format!("{message} {action} by {}", sites[url]));
                        }
                        other => panic!("unknown action {other}"),
                    }
                }
                _ => panic!("unknown line {line}"),
            }
            while let Some(event) = failover.poll_event() {
                assert_eq!(event.at, now);
                let EventKind::Health { from, to, cause } = event.kind else {
                    panic!("unexpected {event}");
                };
                writeln!(
                    transcript,
                    "{second} {} {from:?} -> {to:?} ({cause})",
                    event.target.site
                )
                .unwrap();
            }
        }
        assert_eq!(transcript.trim(), expected.trim());
    }

    /// SPEC M3: after a failure the same message goes to the same URL after
    /// exactly the resubmit delay; when the failure repeats, the URL is marked
    /// down and the message goes at once to the alternate. SPEC M12: new
    /// messages skip the URL known down.
    #[test]
    fn primary_fails_resubmit_then_alternate() {
        check(
            2,
            FailoverConfig::default(),
            "
            0 m1 send
            0 m1 fail
            30 m1 send
            30 m1 fail
            30 m1 send
            30 m1 accepted
            31 m2 send
            31 m2 accepted
            ",
            "
0 m1 -> a
0 m1 failed on a: resubmit in 30s
30 m1 -> a
30 m1 failed on a: alternate b at once
30 a Up -> Down (a send failed 2 times in a row: HTTP 503)
30 m1 -> b
30 m1 accepted by b
31 m2 -> b
31 m2 accepted by b
            ",
        );
    }

    /// SPEC M3: with no resubmits configured, the first failure fails over.
    #[test]
    fn zero_resubmits_fail_over_at_once() {
        let config = FailoverConfig {
            resubmits_per_url: 0,
            ..FailoverConfig::default()
        };
        check(
            3,
            config,
            "
            0 m1 send
            0 m1 fail
            0 m1 send
            0 m1 fail
            0 m1 send
            ",
            "
0 m1 -> a
0 m1 failed on a: alternate b at once
0 a Up -> Down (a send failed: HTTP 503)
0 m1 -> b
0 m1 failed on b: alternate c at once
0 b Up -> Down (a send failed: HTTP 503)
0 m1 -> c
            ",
        );
    }

    /// SPEC M3: when every URL failed, the message stays queued for the route's
    /// backoff (no retry_after) and the alert is raised. Its next round starts
    /// at the primary (all are down), and a failure on a URL known down moves on
    /// at once without waiting for a resubmit.
    #[test]
    fn all_failed_goes_to_backoff_and_alerts() {
        check(
            2,
            FailoverConfig::default(),
            "
            0 m1 send
            0 m1 fail
            30 m1 send
            30 m1 fail
            30 m1 send
            30 m1 fail
            60 m1 send
            60 m1 fail
            60 alert
            90 m1 send
            90 m1 fail
            100 m2 send
            100 m2 fail
            ",
            "
0 m1 -> a
0 m1 failed on a: resubmit in 30s
30 m1 -> a
30 m1 failed on a: alternate b at once
30 a Up -> Down (a send failed 2 times in a row: HTTP 503)
30 m1 -> b
30 m1 failed on b: resubmit in 30s
60 m1 -> b
60 m1 failed on b: all failed, route backoff
60 b Up -> Down (a send failed 2 times in a row: HTTP 503)
60 alert=true
90 m1 -> a
90 m1 failed on a: all failed, route backoff
100 m2 -> a
100 m2 failed on a: all failed, route backoff
            ",
        );
    }

    /// SPEC M12, M3: a URL down is probed every probe_interval; after `rise`
    /// good probes it is up again, the alert clears, and new messages return to
    /// the primary. A failed probe while rising starts the count again.
    #[test]
    fn probes_bring_the_primary_back() {
        check(
            2,
            FailoverConfig::default(),
            "
            0 m1 send
            0 m1 fail
            30 m1 send
            30 m1 fail
            30 next-probe
            34 probe ok
            35 probe fail
            40 probe ok
            45 probe fail
            50 probe ok
            53 m2 send
            55 probe ok
            55 next-probe
            56 m3 send
            ",
            "
0 m1 -> a
0 m1 failed on a: resubmit in 30s
30 m1 -> a
30 m1 failed on a: alternate b at once
30 a Up -> Down (a send failed 2 times in a row: HTTP 503)
30 next probe at Some(35)
34 probe: none due
35 probe a fail
40 probe a ok
40 a Down -> Probing (probe answered: HTTP 200)
45 probe a fail
45 a Probing -> Down (probe failed: HTTP 503)
50 probe a ok
50 a Down -> Probing (probe answered: HTTP 200)
53 m2 -> b
55 probe a ok
55 a Probing -> Up (probe answered: HTTP 200)
55 next probe at None
56 m3 -> a
            ",
        );
    }

    /// SPEC M3: the alert raised when all failed clears when a URL is up again.
    #[test]
    fn alert_clears_when_a_url_comes_back() {
        let config = FailoverConfig {
            resubmits_per_url: 0,
            rise: 1,
            ..FailoverConfig::default()
        };
        check(
            1,
            config,
            "
            0 m1 send
            0 m1 fail
            0 alert
            5 probe ok
            5 alert
            ",
            "
0 m1 -> a
0 m1 failed on a: all failed, route backoff
0 a Up -> Down (a send failed: HTTP 503)
0 alert=true
5 probe a ok
5 a Down -> Up (probe answered: HTTP 200)
5 alert=false
            ",
        );
    }

    /// SPEC M14, M3: throttling (and other provider codes) is retried on the
    /// same URL and never marks it down; it also breaks a run of failures.
    #[test]
    fn throttled_does_not_mark_down() {
        check(
            2,
            FailoverConfig::default(),
            "
            0 m1 send
            0 m1 throttled
            1 m1 send
            1 m1 throttled
            2 m1 send
            2 m1 fail
            32 m1 send
            32 m1 throttled
            33 m1 send
            33 m1 fail
            63 m1 send
            63 m1 accepted
            ",
            "
0 m1 -> a
0 m1 throttled by a
1 m1 -> a
1 m1 throttled by a
2 m1 -> a
2 m1 failed on a: resubmit in 30s
32 m1 -> a
32 m1 throttled by a
33 m1 -> a
33 m1 failed on a: resubmit in 30s
63 m1 -> a
63 m1 accepted by a
            ",
        );
    }

    /// SPEC M12: a message waiting to be resubmitted to a URL that other
    /// messages' failures took down goes to the alternate instead.
    #[test]
    fn waiting_message_skips_a_url_marked_down_meanwhile() {
        check(
            2,
            FailoverConfig::default(),
            "
            1 m2 send
            1 m2 fail
            5 m1 send
            5 m1 fail
            31 m2 send
            31 m2 fail
            35 m1 send
            ",
            "
1 m2 -> a
1 m2 failed on a: resubmit in 30s
5 m1 -> a
5 m1 failed on a: resubmit in 30s
31 m2 -> a
31 m2 failed on a: alternate b at once
31 a Up -> Down (a send failed 2 times in a row: HTTP 503)
35 m1 -> b
            ",
        );
    }

    #[test]
    fn step_retry_after() {
        assert_eq!(
            Step::ResubmitAfter(Duration::from_secs(30)).retry_after(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(Step::Alternate(1).retry_after(), Some(Duration::ZERO));
        assert_eq!(Step::AllFailed.retry_after(), None);
    }
}
