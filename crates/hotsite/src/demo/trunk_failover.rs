//! `trunk-failover`: calls through hotsite's voice proxy while the preferred
//! carrier trunk dies silently (SPEC V1, V2).
//!
//! Three lab trunks (`hotsite_lab::SipTrunk`) sit behind the proxy in one
//! sequential group, `trunk-1` first. A lab caller (`hotsite_lab::SipCaller`)
//! places the calls, as a contact-center platform would: INVITE, ACK, a
//! second of talk, BYE. When a third of the calls are placed, `trunk-1` goes
//! silent: it answers nothing, neither INVITEs nor OPTIONS, and what it was
//! about to send is lost. The calls sent to it wait `invite_timeout` (2 s)
//! and move to `trunk-2` within the same attempt; the first such timeout (or
//! its probes) takes `trunk-1` out of service, so later calls skip it, and a
//! call that was ringing on it when it died is moved too. At two thirds it
//! recovers; its probes bring it back and calls return to it.
//!
//! The traffic is held at a phase boundary until the phase's effect shows:
//! the recovery waits until `trunk-1` is out of service and every call that
//! tried it has its answer (one call is let through per 100 ms meanwhile);
//! the last tenth of the calls until it is back in service, so they show the
//! return.
//!
//! The report: calls attempted, completed and failed (by status), how long
//! until the proxy marked the dead trunk out of service and until it stopped
//! sending it new calls, the longest call setup (the issue's target: no call
//! delayed by more than one transaction timeout), how long until the trunk
//! was back, and the calls per trunk (by the Contact of each call's 200, as
//! the caller saw it). It fails if any call failed or was delayed past the
//! limit.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use hotsite_core::{EventKind, HealthState};
use hotsite_lab::{CallRecord, SipCaller, SipCallerConfig, SipTrunk, SipTrunkConfig, TrunkFault};
use hotsite_voice::{ProxyEvent, VoiceConfig};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use super::report::FailoverTiming;
use super::{secs, Progress, Settings};
use crate::clock;

/// The trunks, in priority order; the first one dies.
const TRUNKS: [(&str, &str); 3] = [
    ("trunk-1", "carrier-a"),
    ("trunk-2", "carrier-b"),
    ("trunk-3", "carrier-c"),
];
const DEAD: &str = "trunk-1";
/// The proxy's `invite_timeout`: no reply at all → the next trunk.
const INVITE_TIMEOUT: Duration = Duration::from_secs(2);
/// What a call's setup may take beyond one `invite_timeout`: the next trunk's
/// answer (20 ms here) and scheduling.
const SETUP_MARGIN: Duration = Duration::from_millis(500);
/// How long each answered call lasts.
const CALL_HOLD: Duration = Duration::from_secs(1);
/// How often the controller looks.
const TICK: Duration = Duration::from_millis(20);
/// While the traffic is held for an effect, one more call this often.
const TRICKLE: Duration = Duration::from_millis(100);

/// The report of this scenario: calls, not messages.
#[derive(Debug, Serialize)]
pub(super) struct CallReport {
    scenario: &'static str,
    ok: bool,
    calls: u64,
    attempted: u64,
    completed: u64,
    failed: u64,
    statuses: BTreeMap<String, u64>,
    duration_s: f64,
    calls_per_s: f64,
    failovers: Vec<FailoverTiming>,
    by_trunk: BTreeMap<String, u64>,
    failovers_by_route: BTreeMap<String, u64>,
    calls_tried_dead_trunk: u64,
    calls_in_progress_at_kill: u64,
    late_answers_hung_up: u64,
    max_setup_s: Option<f64>,
    max_setup_during_outage_s: Option<f64>,
    setup_p50_s: Option<f64>,
    setup_p99_s: Option<f64>,
    setup_limit_s: f64,
    within_limit: bool,
    byes_completed: u64,
    byes_unanswered: u64,
    notes: Vec<String>,
}

impl CallReport {}

impl super::report::OwnReport for CallReport {
    fn ok(&self) -> bool {
        self.ok
    }

    fn print(&self) {
        let verdict = if self.ok { "OK" } else { "FAILED" };
        println!(
            "hotsite demo {}: calls through the voice proxy, {DEAD} dying silently ({verdict})",
            self.scenario
        );
        let row = |label: &str, value: String| println!("  {label:<30} {value}");
        let seconds =
            |value: Option<f64>| value.map_or("never".to_owned(), |s| format!("{s:.2} s"));
        let list = |map: &BTreeMap<String, u64>| {
            map.iter()
                .map(|(key, value)| format!("{key}: {value}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        row("calls", self.calls.to_string());
        row("attempted", self.attempted.to_string());
        row("completed", self.completed.to_string());
        row("failed", self.failed.to_string());
        row("final statuses", list(&self.statuses));
        row(
            "throughput",
            format!(
                "{:.0} calls/s over {:.1} s",
                self.calls_per_s, self.duration_s
            ),
        );
        row("answered by trunk", list(&self.by_trunk));
        row("failovers within a call", list(&self.failovers_by_route));
        row(
            "calls tried on the dead trunk",
            self.calls_tried_dead_trunk.to_string(),
        );
        row(
            "in progress on it when it died",
            self.calls_in_progress_at_kill.to_string(),
        );
        row(
            "late answers, hung up",
            self.late_answers_hung_up.to_string(),
        );
        row(
            "setup p50 / p99",
            format!(
                "{} / {}",
                seconds(self.setup_p50_s),
                seconds(self.setup_p99_s)
            ),
        );
        row("longest setup", seconds(self.max_setup_s));
        row(
            "longest setup in the outage",
            seconds(self.max_setup_during_outage_s),
        );
        row(
            "every setup within",
            format!(
                "{:.2} s: {}",
                self.setup_limit_s,
                if self.within_limit { "yes" } else { "NO" }
            ),
        );
        row(
            "hangups (BYE) answered",
            format!(
                "{} ({} unanswered)",
                self.byes_completed, self.byes_unanswered
            ),
        );
        println!("  failovers:");
        for failover in &self.failovers {
            // The same lines as the other scenarios' reports, from the JSON form.
            let Ok(Value::Object(fields)) = serde_json::to_value(failover) else {
                continue;
            };
            let text = |key: &str| fields.get(key).and_then(Value::as_str).unwrap_or("");
            println!("    {}: {}", text("what"), text("fault"));
            let times: Vec<String> = fields
                .iter()
                .filter(|(key, _)| key.ends_with("_s"))
                .map(|(key, value)| {
                    let label = key.trim_end_matches("_s").replace('_', " ");
                    format!("{label} {}", seconds(value.as_f64()))
                })
                .collect();
            println!("      {}", times.join(", "));
        }
        for note in &self.notes {
            println!("  note: {note}");
        }
    }
}

pub(super) async fn run(settings: &Settings, progress: &Progress) -> anyhow::Result<CallReport> {
    let mut trunks = Vec::new();
    for (name, _) in TRUNKS {
        let config = SipTrunkConfig::new(name, SocketAddr::from(([127, 0, 0, 1], 0)));
        trunks.push(
            SipTrunk::start(config)
                .await
                .with_context(|| format!("cannot start the lab trunk {name}"))?,
        );
    }
    let addrs: Vec<SocketAddr> = trunks.iter().map(SipTrunk::local_addr).collect();
    let (voice, _) = hotsite_voice::start(
        &voice_config(&addrs)?,
        &hotsite_host::Deps::detached(),
        None,
    )
    .await
    .context("cannot start the voice proxy")?;
    let mut events = voice.subscribe();
    progress.line(&format!(
        "voice proxy on {}; trunks by priority: {}",
        voice.local_addr(),
        TRUNKS
            .iter()
            .zip(&addrs)
            .map(|((name, _), addr)| format!("{name} {addr}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let calls = settings.messages;
    let count = |fraction: f64| ((calls as f64 * fraction).ceil() as u64).clamp(1, calls);
    let (kill_count, recover_count, release_count) =
        (count(1.0 / 3.0), count(2.0 / 3.0), count(0.9));
    let mut caller_config = SipCallerConfig::new(voice.local_addr(), calls, settings.rate as f64);
    caller_config.hold = CALL_HOLD;
    caller_config.limit = Some(kill_count);
    let caller = SipCaller::start(caller_config)
        .await
        .context("cannot start the lab caller")?;
    progress.line(&format!(
        "{calls} calls at {} calls/s; {DEAD} dies silently after {kill_count} and recovers after {recover_count}",
        settings.rate
    ));

    let dead = &trunks[0];
    let start = clock::now();
    let deadline = start + Duration::from_secs(calls / settings.rate.max(1) + 120);
    let mut seen: Vec<ProxyEvent> = Vec::new();
    let mut lagged = 0;
    let mut phase = 0;
    let mut limit = kill_count;
    let mut last_trickle = start;
    let mut kill_at: Option<Instant> = None;
    let mut recover_at: Option<Instant> = None;
    let mut decile = 0;
    let mut finished_at = None;
    loop {
        tokio::time::sleep(TICK).await;
        let now = clock::now();
        drain(&mut events, &mut seen, &mut lagged);
        let state = caller.progress();
        let down_at = kill_at.and_then(|at| trunk_change(&seen, HealthState::Down, at));
        let up_at = recover_at.and_then(|at| trunk_change(&seen, HealthState::Up, at));
        if phase == 0 && state.placed >= kill_count {
            dead.set_fault(TrunkFault::Silent)?;
            kill_at = Some(now);
            progress.line(&format!(
                "{DEAD} dies silently: its calls move to trunk-2 after {} s without a reply, and it is taken out of service (SPEC V1, V2)",
                INVITE_TIMEOUT.as_secs()
            ));
            limit = recover_count;
            caller.allow(limit);
            phase = 1;
        } else if phase == 1
            && state.placed >= recover_count
            && down_at.is_some()
            && state.awaiting_final == 0
        {
            dead.set_fault(TrunkFault::Recover)?;
            recover_at = Some(now);
            progress.line(&format!(
                "{DEAD} recovers: back in service after its probes, then calls return to it"
            ));
            limit = release_count;
            caller.allow(limit);
            phase = 2;
        } else if phase == 2 && state.placed >= release_count && up_at.is_some() {
            caller.release();
            limit = calls;
            phase = 3;
        }
        if phase == 1 && state.placed >= limit && limit < calls && now >= last_trickle + TRICKLE {
            limit += 1;
            caller.allow(limit);
            last_trickle = now;
        }
        let placed_decile = state.placed * 10 / calls.max(1);
        if placed_decile > decile {
            decile = placed_decile;
            progress.line(&format!(
                "{:>3}% {}/{calls} calls placed | answered {} | failed {} | {DEAD} {}",
                decile * 10,
                state.placed,
                state.answered,
                state.failed,
                match (phase, down_at, up_at) {
                    (0, _, _) => "up",
                    (1, None, _) => "silent, still in service",
                    (1, Some(_), _) => "silent, out of service",
                    (2, _, None) => "recovered, probing",
                    _ => "back in service",
                }
            ));
        }
        if state.finished >= calls {
            finished_at = Some(now);
            break;
        }
        if now > deadline {
            progress.line("stopped waiting: the deadline passed (see the report)");
            break;
        }
    }
    let records = caller.stop().await;
    // The last hangups' answers and trunk state changes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    drain(&mut events, &mut seen, &mut lagged);
    let dead_log = dead.invite_log();
    voice.shutdown().await;
    for trunk in trunks {
        trunk.shutdown().await;
    }

    let setups: Vec<f64> = records
        .iter()
        .filter_map(|r| r.setup_time.map(|d| d.as_secs_f64()))
        .collect();
    let limit_s = (INVITE_TIMEOUT + SETUP_MARGIN).as_secs_f64();
    let kill = kill_at.unwrap_or(start);
    let outage_end = recover_at.unwrap_or_else(clock::now);
    let in_outage = |record: &&CallRecord| record.started >= kill && record.started < outage_end;
    let completed = records.iter().filter(|r| r.answered()).count() as u64;
    let attempted = records.len() as u64;
    let failed = calls - completed;
    let within_limit = setups.iter().all(|s| *s <= limit_s);
    let mut statuses = BTreeMap::new();
    for record in &records {
        let key = record.status.map_or("none".to_owned(), |s| s.to_string());
        *statuses.entry(key).or_default() += 1;
    }
    if attempted < calls {
        *statuses.entry("not placed".to_owned()).or_default() += calls - attempted;
    }
    let dead_calls: Vec<_> = dead_log
        .iter()
        .filter(|invite| invite.at >= kill && invite.at < outage_end)
        .collect();
    let mut tried: Vec<&str> = dead_calls.iter().map(|i| i.call_id.as_str()).collect();
    tried.sort_unstable();
    tried.dedup();
    let failover = FailoverTiming::new(
        "dies silently (no answer to INVITE or OPTIONS)",
        format!("{DEAD} (priority 1)"),
    )
    .time(
        "detected_after_s",
        kill_at.and_then(|at| secs(at, trunk_change(&seen, HealthState::Down, at))),
    )
    .time(
        "last_call_on_dead_trunk_after_s",
        kill_at.and(secs(kill, dead_calls.iter().map(|i| i.at).max())),
    );
    let failover = match recover_at {
        Some(recovered) => failover
            .time(
                "up_again_after_s",
                secs(recovered, trunk_change(&seen, HealthState::Up, recovered)),
            )
            .time(
                "recovered_after_s",
                secs(
                    recovered,
                    dead_log
                        .iter()
                        .filter(|i| i.at >= recovered && !i.dropped)
                        .map(|i| i.at)
                        .min(),
                ),
            ),
        None => failover.time("recovered_after_s", None),
    };
    // Who answered each call, by its 200's Contact (`sip:trunk-1@…`).
    let mut by_trunk: BTreeMap<String, u64> = TRUNKS
        .iter()
        .map(|(name, _)| ((*name).to_owned(), 0))
        .collect();
    for contact in records.iter().filter_map(|r| r.contact.as_deref()) {
        let user = contact
            .strip_prefix("sip:")
            .and_then(|rest| rest.split('@').next())
            .unwrap_or(contact);
        *by_trunk.entry(user.to_owned()).or_default() += 1;
    }
    let mut failovers_by_route = BTreeMap::new();
    for event in &seen {
        if let ProxyEvent::Failover(failover) = event {
            let route = format!("{} -> {}", failover.from.name, failover.to.name);
            *failovers_by_route.entry(route).or_default() += 1;
        }
    }
    let duration = finished_at
        .unwrap_or_else(clock::now)
        .saturating_duration_since(start);
    let mut notes = vec![
        format!(
            "invite_timeout {} s; OPTIONS probes every 1 s (timeout 500 ms, fall 2, rise 2); each call lasts {} s",
            INVITE_TIMEOUT.as_secs(),
            CALL_HOLD.as_secs()
        ),
        format!(
            "calls ringing on {DEAD} when it died are moved to the next trunk once it is out of service; a late answer from it after its recovery (a healed partition) is ACKed and hung up by the caller"
        ),
        "detected: from the kill to the proxy taking the trunk out of service; last call on dead trunk: to the last new INVITE that reached it; up again / recovered: from its recovery to back in service / its first new call".to_owned(),
    ];
    if lagged > 0 {
        notes.push(format!(
            "{lagged} proxy events were missed: the counts by route may be short"
        ));
    }
    let mut sorted = setups.clone();
    sorted.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * p).round() as usize])
    };
    let report = CallReport {
        scenario: settings.scenario.name(),
        ok: failed == 0 && within_limit,
        calls,
        attempted,
        completed,
        failed,
        statuses,
        duration_s: duration.as_secs_f64(),
        calls_per_s: if duration.is_zero() {
            0.0
        } else {
            attempted as f64 / duration.as_secs_f64()
        },
        failovers: vec![failover],
        by_trunk,
        failovers_by_route,
        calls_tried_dead_trunk: tried.len() as u64,
        calls_in_progress_at_kill: kill_at.map_or(0, |kill| {
            records
                .iter()
                .filter(|r| r.started < kill && r.started + r.setup_time.unwrap_or_default() > kill)
                .count() as u64
        }),
        late_answers_hung_up: records.iter().map(|r| u64::from(r.extra_answers)).sum(),
        max_setup_s: sorted.last().copied(),
        max_setup_during_outage_s: records
            .iter()
            .filter(in_outage)
            .filter_map(|r| r.setup_time.map(|d| d.as_secs_f64()))
            .max_by(f64::total_cmp),
        setup_p50_s: percentile(0.5),
        setup_p99_s: percentile(0.99),
        setup_limit_s: limit_s,
        within_limit,
        byes_completed: records.iter().filter(|r| r.bye_completed()).count() as u64,
        byes_unanswered: records
            .iter()
            .filter(|r| r.answered() && !r.bye_completed())
            .count() as u64,
        notes,
    };
    Ok(report)
}

/// The `[voice]` section, as an operator would write it in `hotsite.toml`.
fn voice_config(addrs: &[SocketAddr]) -> anyhow::Result<VoiceConfig> {
    let mut text = format!(
        "[voice]\nlisten = \"127.0.0.1:0\"\ninvite_timeout = \"{}s\"\n",
        INVITE_TIMEOUT.as_secs()
    );
    for (priority, ((name, carrier), addr)) in TRUNKS.iter().zip(addrs).enumerate() {
        text.push_str(&format!(
            r#"
[[voice.trunks]]
name = "{name}"
carrier = "{carrier}"
address = "{addr}"
priority = {}
media_region = "eu-west"
failover_region = "eu-central"
probe = {{ interval = "1s", timeout = "500ms", fall = 2, rise = 2 }}
"#,
            priority + 1
        ));
    }
    let names: Vec<String> = TRUNKS
        .iter()
        .map(|(name, _)| format!("\"{name}\""))
        .collect();
    text.push_str(&format!(
        "\n[[voice.groups]]\nname = \"outbound\"\ndistribution = \"sequential\"\ntrunks = [{}]\n",
        names.join(", ")
    ));
    #[derive(serde::Deserialize)]
    struct Document {
        voice: VoiceConfig,
    }
    let document: Document =
        toml::from_str(&text).map_err(|error| anyhow!("the demo's [voice] section: {error}"))?;
    Ok(document.voice)
}

/// Takes every event waiting, counting the ones a slow reader lost.
fn drain(
    events: &mut broadcast::Receiver<ProxyEvent>,
    seen: &mut Vec<ProxyEvent>,
    lagged: &mut u64,
) {
    loop {
        match events.try_recv() {
            Ok(event) => seen.push(event),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => *lagged += missed,
            Err(_) => return,
        }
    }
}

/// When the dead trunk first went `to` that state at or after `from`.
fn trunk_change(seen: &[ProxyEvent], to: HealthState, from: Instant) -> Option<Instant> {
    seen.iter().find_map(|event| match event {
        ProxyEvent::Trunk(event) if &*event.target.name == DEAD && event.at >= from => {
            match &event.kind {
                EventKind::Health { to: state, .. } if *state == to => Some(event.at),
                _ => None,
            }
        }
        _ => None,
    })
}
