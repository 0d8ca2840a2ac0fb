//! The report of `hotsite desktops`: from the desktops' tracks after the
//! failure, for every desktop that was at site a, the time to its login at
//! b and to Ready at b, the reasons of its decisions (D7), the connection
//! attempts at b per second against the cap the jitter implies, the CPU
//! site b spent on the storm, memory per connected desktop, and the
//! promises checked (each one a line in `broken` when it fails).

use std::collections::BTreeMap;
use std::time::Instant;

use hotsite_desktop::client::Report as ClientReport;
use hotsite_desktop::Output;
use serde::Serialize;

use super::fleet::{Seen, Track};
use super::measure::{attempt_cap_per_s, round_ms, Attempts, Times};

/// Where the desktops that were at site a went after the failure.
#[derive(Debug, Default)]
pub(crate) struct Analysis {
    /// Seconds from the failure to each one's login at b.
    pub(crate) login_s: Vec<f64>,
    /// Seconds from the failure to each one's Ready at b.
    pub(crate) ready_s: Vec<f64>,
    /// Users not logged in at b.
    pub(crate) not_switched: Vec<String>,
    /// Decisions of their machines after the failure, by reason.
    pub(crate) reasons: BTreeMap<String, u64>,
    /// Their `switch_over` decisions, by reason.
    pub(crate) switch_reasons: BTreeMap<String, u64>,
    /// Connection attempts at b (every desktop) from the failure on.
    pub(crate) attempts_at_b: Attempts,
    /// Failed connection attempts at b, by error (the URL left out).
    pub(crate) failures_at_b: BTreeMap<String, u64>,
    /// The last login at b of one of them.
    pub(crate) last_switch: Option<Instant>,
}

/// Analyses `tracks` after `failure_at`; `switching` are the indices of the
/// desktops that were logged in at a then.
pub(crate) fn analyse(tracks: &[Track], switching: &[usize], failure_at: Instant) -> Analysis {
    let mut analysis = Analysis::default();
    let since = |at: Instant| at.saturating_duration_since(failure_at).as_secs_f64();
    for track in tracks {
        for (at, seen) in &track.events {
            if *at < failure_at {
                continue;
            }
            if let Seen::Report(ClientReport::ConnectFailed { site, error }) = seen {
                if site == "b" {
                    *analysis.failures_at_b.entry(error_kind(error)).or_default() += 1;
                }
            }
            if let Seen::Report(
                ClientReport::Connected { site } | ClientReport::ConnectFailed { site, .. },
            ) = seen
            {
                if site == "b" {
                    analysis
                        .attempts_at_b
                        .add(at.saturating_duration_since(failure_at).as_millis() as u64);
                }
            }
        }
    }
    for &i in switching {
        let Some(track) = tracks.get(i) else { continue };
        let mut login = None;
        let mut ready = None;
        for (at, seen) in track.events.iter().filter(|(at, _)| *at >= failure_at) {
            match seen {
                Seen::Report(ClientReport::Decision(output)) => {
                    let reason = output.reason().as_str().to_owned();
                    if let Output::SwitchOver { .. } = output {
                        *analysis.switch_reasons.entry(reason.clone()).or_default() += 1;
                    }
                    *analysis.reasons.entry(reason).or_default() += 1;
                }
                Seen::Report(ClientReport::LoggedIn { site }) if site == "b" && login.is_none() => {
                    login = Some(*at);
                }
                Seen::Ready { site } if site == "b" && login.is_some() && ready.is_none() => {
                    ready = Some(*at);
                }
                _ => {}
            }
        }
        match login {
            Some(at) => {
                analysis.login_s.push(since(at));
                analysis.last_switch = analysis.last_switch.max(Some(at));
            }
            None => analysis.not_switched.push(track.user.clone()),
        }
        if let Some(at) = ready {
            analysis.ready_s.push(since(at));
        }
    }
    analysis
}

/// A connection error without its URL (`ws://…: error` → `error`), so
/// that errors group.
fn error_kind(error: &str) -> String {
    let kind = match error.strip_prefix("ws://") {
        Some(rest) => rest.split_once(": ").map_or(rest, |(_, e)| e),
        None => error,
    };
    kind.chars().take(80).collect()
}

/// One promise and whether it held.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Promise {
    pub(crate) name: &'static str,
    pub(crate) holds: bool,
    pub(crate) detail: String,
}

/// The tool's settings, as the report shows them.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ShownSettings {
    pub(crate) site_timeout_ms: u64,
    pub(crate) retry_delay_ms: u64,
    pub(crate) retry_jitter_ms: u64,
    pub(crate) register_timeout_ms: u64,
    pub(crate) platform_defaults: bool,
    pub(crate) ramp_per_s: u64,
    pub(crate) phone_expires_s: u64,
    /// The Argon2id parameters of the people's (shared) password hash.
    pub(crate) password_hash: String,
}

/// Memory of one site process.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct SiteMemory {
    pub(crate) site: &'static str,
    pub(crate) pid: u32,
    pub(crate) rss_before_kib: Option<u64>,
    /// When 1,000 desktops were logged in (all sites), if N ≥ 1,000.
    pub(crate) rss_at_1000_kib: Option<u64>,
    pub(crate) connections_at_1000: Option<usize>,
    pub(crate) per_desktop_kib_at_1000: Option<f64>,
    pub(crate) rss_at_n_kib: Option<u64>,
    pub(crate) connections_at_n: usize,
    pub(crate) per_desktop_kib_at_n: Option<f64>,
}

impl SiteMemory {
    /// Fills in the per-desktop figures: RSS delta / connections.
    pub(crate) fn finish(&mut self) {
        let per = |rss: Option<u64>, connections: usize| {
            let delta = rss?.saturating_sub(self.rss_before_kib?);
            (connections > 0).then(|| round_ms(delta as f64 / connections as f64))
        };
        self.per_desktop_kib_at_1000 = self
            .connections_at_1000
            .and_then(|c| per(self.rss_at_1000_kib, c));
        self.per_desktop_kib_at_n = per(self.rss_at_n_kib, self.connections_at_n);
    }
}

/// Connection attempts at the surviving site.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AttemptsShown {
    pub(crate) total: u64,
    /// The most in any 1 s window (100 ms buckets, sliding).
    pub(crate) peak_per_s: u64,
    /// 2 × desktops switching / retry_jitter; null without jitter.
    pub(crate) cap_per_s: Option<f64>,
    /// Failed attempts by error.
    pub(crate) failed: BTreeMap<String, u64>,
    /// Attempts per 100 ms from the failure on.
    pub(crate) per_100ms: Vec<u64>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) tool: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scenario: Option<&'static str>,
    pub(crate) ok: bool,
    pub(crate) failure: &'static str,
    pub(crate) desktops: usize,
    pub(crate) settings: ShownSettings,
    /// Seconds until every DN was in service at both sites.
    pub(crate) phones_in_service_s: f64,
    /// Seconds from the first desktop's start until all were logged in and
    /// Ready.
    pub(crate) desktops_ready_s: f64,
    pub(crate) memory: Vec<SiteMemory>,
    /// RSS delta of both sites / desktops, at N.
    pub(crate) per_desktop_kib_at_n: Option<f64>,
    /// Desktops logged in at a when it failed (the ones that must switch).
    pub(crate) at_a: usize,
    /// Of those, logged in at b afterwards.
    pub(crate) switched: usize,
    /// Of those, not (user names, at most 20).
    pub(crate) not_switched: Vec<String>,
    pub(crate) login_at_b: Times,
    pub(crate) ready_at_b: Times,
    /// Decisions after the failure of the desktops that were at a, by reason (D7).
    pub(crate) reasons: BTreeMap<String, u64>,
    /// Their switchovers, by reason.
    pub(crate) switch_reasons: BTreeMap<String, u64>,
    pub(crate) attempts_at_b: AttemptsShown,
    /// Seconds from the failure to the last login at b.
    pub(crate) storm_s: Option<f64>,
    /// CPU seconds (user + system) site b used from the failure to the last
    /// login at b.
    pub(crate) cpu_b_s: Option<f64>,
    /// Site b's sign-ins since it started, by outcome (`ok`: password,
    /// `session`: token, refusals): the switchover's should be `session`.
    pub(crate) hellos_at_b: BTreeMap<String, u64>,
    /// The bound every login at b must meet, in seconds, and why.
    pub(crate) bound_s: f64,
    pub(crate) bound: String,
    /// Agents logged in at both sites at the end (null: site a is gone,
    /// only one site to ask).
    pub(crate) logged_in_at_two_sites: Option<u64>,
    /// Agents logged in at no site that answers at the end.
    pub(crate) left_logged_out: u64,
    pub(crate) promises: Vec<Promise>,
    /// The promises that broke, one line each.
    pub(crate) broken: Vec<String>,
    pub(crate) notes: Vec<String>,
}

/// The promises of a run: every desktop of a logged in at b within the
/// bound, no agent logged in at two sites, none left logged out, the
/// attempt peak within the cap (when the jitter gives one).
pub(crate) fn promises(
    at_a: usize,
    login_s: &[f64],
    bound_s: f64,
    two_sites: Option<u64>,
    left_logged_out: u64,
    attempts: &AttemptsShown,
) -> Vec<Promise> {
    let within = login_s.iter().filter(|s| **s <= bound_s).count();
    let slowest = login_s
        .iter()
        .copied()
        .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
    let mut promises = vec![
        Promise {
            name: "all_switched_within_bound",
            holds: within == at_a,
            detail: format!(
                "{within} of {at_a} desktops of site a logged in at b within {bound_s:.1} s (slowest {})",
                slowest.map_or("none".to_owned(), |s| format!("{s:.3} s"))
            ),
        },
        Promise {
            name: "none_at_two_sites",
            holds: two_sites.unwrap_or(0) == 0,
            detail: match two_sites {
                Some(n) => format!("{n} agents logged in at both sites"),
                None => "site a is gone: only b can be asked".to_owned(),
            },
        },
        Promise {
            name: "none_left_logged_out",
            holds: left_logged_out == 0,
            detail: format!("{left_logged_out} agents logged in at no site"),
        },
    ];
    if let Some(cap) = attempts.cap_per_s {
        promises.push(Promise {
            name: "attempt_peak_within_cap",
            holds: attempts.peak_per_s as f64 <= cap,
            detail: format!(
                "peak {} connection attempts/s at b, cap {cap:.0}/s",
                attempts.peak_per_s
            ),
        });
    }
    promises
}

/// The attempts figure from the analysis.
pub(crate) fn attempts_shown(
    attempts: &Attempts,
    failed: &BTreeMap<String, u64>,
    at_a: usize,
    jitter_ms: u64,
) -> AttemptsShown {
    AttemptsShown {
        failed: failed.clone(),
        total: attempts.total(),
        peak_per_s: attempts.peak_per_s(),
        cap_per_s: attempt_cap_per_s(at_a as u64, jitter_ms),
        per_100ms: attempts.buckets().to_vec(),
    }
}

impl Report {
    /// Prints the human form on stdout.
    pub(crate) fn print(&self) {
        let verdict = if self.ok { "OK" } else { "FAILED" };
        let title = match self.scenario {
            Some(scenario) => format!("hotsite demo {scenario}"),
            None => "hotsite desktops".to_owned(),
        };
        println!(
            "{title}: {} desktops, failure {} ({verdict})",
            self.desktops, self.failure
        );
        let row = |label: &str, value: String| println!("  {label:<30} {value}");
        let s = &self.settings;
        row(
            "settings",
            format!(
                "site_timeout {} ms, retry_delay {} ms, retry_jitter {} ms, register_timeout {} ms{}",
                s.site_timeout_ms,
                s.retry_delay_ms,
                s.retry_jitter_ms,
                s.register_timeout_ms,
                if s.platform_defaults { " (platform defaults)" } else { "" }
            ),
        );
        row("password hash", s.password_hash.clone());
        row(
            "setup",
            format!(
                "phones in service in {:.1} s, desktops Ready in {:.1} s ({}/s ramp)",
                self.phones_in_service_s, self.desktops_ready_s, s.ramp_per_s
            ),
        );
        for m in &self.memory {
            row(
                &format!("memory site {} (pid {})", m.site, m.pid),
                format!(
                    "RSS {} KiB before; at 1,000: {} KiB ({} conns, {} KiB/desktop); at N: {} KiB ({} conns, {} KiB/desktop)",
                    opt(m.rss_before_kib),
                    opt(m.rss_at_1000_kib),
                    opt(m.connections_at_1000),
                    opt(m.per_desktop_kib_at_1000),
                    opt(m.rss_at_n_kib),
                    m.connections_at_n,
                    opt(m.per_desktop_kib_at_n),
                ),
            );
        }
        row(
            "memory per desktop at N",
            format!("{} KiB", opt(self.per_desktop_kib_at_n)),
        );
        row("desktops at a", self.at_a.to_string());
        row("switched to b", self.switched.to_string());
        if !self.not_switched.is_empty() {
            row("not switched", self.not_switched.join(", "));
        }
        row("failure → logged in at b", times(&self.login_at_b));
        row("failure → Ready at b", times(&self.ready_at_b));
        row("decisions by reason", list(&self.reasons));
        row("switchovers by reason", list(&self.switch_reasons));
        let a = &self.attempts_at_b;
        row(
            "connection attempts at b",
            format!(
                "{} in all, peak {}/s (any 1 s window), cap {}",
                a.total,
                a.peak_per_s,
                a.cap_per_s
                    .map_or("none (no jitter)".to_owned(), |c| format!("{c:.0}/s"))
            ),
        );
        if !a.failed.is_empty() {
            row("failed attempts at b", list(&a.failed));
        }
        row(
            "storm",
            format!(
                "{} s to the last switch, site b CPU {} s",
                opt(self.storm_s),
                opt(self.cpu_b_s)
            ),
        );
        row("sign-ins at b", list(&self.hellos_at_b));
        row("bound", format!("{:.1} s: {}", self.bound_s, self.bound));
        println!("  promises:");
        for p in &self.promises {
            let mark = if p.holds { "ok" } else { "BROKEN" };
            println!("    {mark:<6} {}: {}", p.name, p.detail);
        }
        for note in &self.notes {
            println!("  note: {note}");
        }
    }
}

fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or("-".to_owned(), |v| v.to_string())
}

fn times(t: &Times) -> String {
    format!(
        "{} desktops: min {} s, p50 {} s, p90 {} s, p99 {} s, max {} s",
        t.count,
        opt(t.min_s),
        opt(t.p50_s),
        opt(t.p90_s),
        opt(t.p99_s),
        opt(t.max_s)
    )
}

fn list(map: &BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hotsite_desktop::Reason;

    use super::*;
    use crate::clock;

    fn track(user: &str, events: Vec<(Instant, Seen)>) -> Track {
        let mut track = super::super::fleet::tests_track(user);
        track.events = events;
        track
    }

    /// SPEC D4, D7, D8: the desktop at a is timed from the failure to its
    /// login and Ready at b, its decisions counted by reason; the desktop
    /// at b only counts where its attempts went; attempts before the
    /// failure are not counted.
    #[test]
    fn switch_times_reasons_and_attempts_come_from_the_tracks() {
        let t0 = clock::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let report = |r: ClientReport| Seen::Report(r);
        let b = || "b".to_owned();
        let at_a = track(
            "agent-0001",
            vec![
                (ms(0), report(ClientReport::Connected { site: "a".into() })),
                (ms(10), report(ClientReport::LoggedIn { site: "a".into() })),
                (ms(1_000), report(ClientReport::Lost { site: "a".into() })),
                (
                    ms(4_000),
                    report(ClientReport::Decision(Output::SwitchOver {
                        site: b(),
                        reason: Reason::TelephonyOffTimeout,
                    })),
                ),
                (
                    ms(4_300),
                    report(ClientReport::ConnectFailed {
                        site: b(),
                        error: "x".into(),
                    }),
                ),
                (ms(4_500), report(ClientReport::Connected { site: b() })),
                (ms(4_520), report(ClientReport::LoggedIn { site: b() })),
                (ms(4_540), Seen::Ready { site: b() }),
            ],
        );
        let at_b = track(
            "agent-0002",
            vec![(ms(0), report(ClientReport::Connected { site: b() }))],
        );
        let stuck = track("agent-0003", vec![]);
        let analysis = analyse(&[at_a, at_b, stuck], &[0, 2], ms(1_000));
        assert_eq!(analysis.login_s, vec![3.52]);
        assert_eq!(analysis.ready_s, vec![3.54]);
        assert_eq!(analysis.not_switched, vec!["agent-0003".to_owned()]);
        assert_eq!(analysis.switch_reasons["telephony_off_timeout"], 1);
        assert_eq!(analysis.reasons["telephony_off_timeout"], 1);
        assert_eq!(analysis.attempts_at_b.total(), 2);
        assert_eq!(analysis.failures_at_b["x"], 1);
        assert_eq!(analysis.attempts_at_b.buckets()[33], 1);
        assert_eq!(analysis.last_switch, Some(ms(4_520)));
    }

    #[test]
    fn connection_errors_group_without_their_url() {
        assert_eq!(
            error_kind("ws://127.0.0.1:4242/v1/desktop: Connection refused (os error 111)"),
            "Connection refused (os error 111)"
        );
        assert_eq!(error_kind("no answer within 3s"), "no answer within 3s");
    }

    #[test]
    fn each_promise_breaks_on_its_own() {
        let attempts = AttemptsShown {
            total: 30,
            peak_per_s: 30,
            cap_per_s: Some(40.0),
            failed: BTreeMap::new(),
            per_100ms: vec![],
        };
        let all = promises(2, &[1.0, 4.9], 5.0, Some(0), 0, &attempts);
        assert!(all.iter().all(|p| p.holds), "{all:?}");
        let late = promises(2, &[1.0, 5.1], 5.0, None, 0, &attempts);
        assert!(!late[0].holds);
        let missing = promises(2, &[1.0], 5.0, None, 0, &attempts);
        assert!(!missing[0].holds);
        assert!(!promises(2, &[1.0, 1.0], 5.0, Some(1), 0, &attempts)[1].holds);
        assert!(!promises(2, &[1.0, 1.0], 5.0, Some(0), 1, &attempts)[2].holds);
        let over = AttemptsShown {
            peak_per_s: 41,
            ..attempts.clone()
        };
        assert!(!promises(2, &[1.0, 1.0], 5.0, Some(0), 0, &over)[3].holds);
        let no_cap = AttemptsShown {
            cap_per_s: None,
            ..attempts
        };
        assert_eq!(promises(2, &[1.0, 1.0], 5.0, Some(0), 0, &no_cap).len(), 3);
    }

    #[test]
    fn memory_per_desktop_is_the_rss_delta_per_connection() {
        let mut memory = SiteMemory {
            rss_before_kib: Some(10_000),
            rss_at_1000_kib: Some(30_000),
            connections_at_1000: Some(500),
            rss_at_n_kib: Some(60_000),
            connections_at_n: 1_000,
            ..SiteMemory::default()
        };
        memory.finish();
        assert_eq!(memory.per_desktop_kib_at_1000, Some(40.0));
        assert_eq!(memory.per_desktop_kib_at_n, Some(50.0));
    }
}
