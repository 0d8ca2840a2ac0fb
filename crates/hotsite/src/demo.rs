//! `hotsite demo`: the bind-failover scenario, end to end on loopback.
//!
//! A simulated aggregator (two sites, two SMSC instances each) and hotsite's
//! SMPP client bound to all four (SPEC M4). Traffic flows; site `a` dies, then
//! SMSC `b1` is blackholed (TCP up, nothing answered); later both come back.
//! Every message is submitted with a stable `user_message_reference`, and an
//! ambiguous submit (sent, never answered) is sent again with the same
//! reference, so the provider drops the repeat (SPEC M8). The report counts what
//! reached the handsets: nothing lost, nothing twice.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use hotsite_core::{EventKind, HealthState, Target};
use hotsite_lab::{Fault, Lab, LabConfig, LabHandle};
use hotsite_smpp::driver::{ClientConfig, ClientEvent, SmppClient, SubmitOutcome};
use hotsite_smpp::pdu::{Address, Outcome, ShortMessage, Tlvs};
use hotsite_smpp::pool::PoolConfig;
use hotsite_smpp::session::SessionConfig;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::clock;

/// Options of `hotsite demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Messages to send.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Submit rate in messages per second; 0 sends as fast as the binds take them.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// Print the report as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
}

/// The lab the demo runs against: embedded, on ephemeral loopback ports.
const LAB: &str = r#"
[lab]
control = "127.0.0.1:0"
seed = 7

[[lab.accounts]]
system_id = "hotsite"
password = "secret"

[lab.receipts]
delay_ms = 20
duplicate_probability = 0.1
other_site_probability = 0.3

[[lab.sites]]
name = "a"
smsc = [{ name = "a1", listen = "127.0.0.1:0" }, { name = "a2", listen = "127.0.0.1:0" }]

[[lab.sites]]
name = "b"
smsc = [{ name = "b1", listen = "127.0.0.1:0" }, { name = "b2", listen = "127.0.0.1:0" }]
"#;

/// The demo's outcome. `lost` and `duplicated` are counted at the handsets.
#[derive(Debug, Serialize)]
struct Report {
    messages: u64,
    accepted: u64,
    delivered: u64,
    lost: u64,
    duplicated: u64,
    failed: u64,
    ambiguous_resubmitted: u64,
    provider_dropped_repeats: u64,
    throttled_or_retried: u64,
    receipts_received: u64,
    duration_s: f64,
    throughput_msgs_per_s: f64,
    failovers: Vec<Failover>,
}

/// One injected fault and how hotsite handled it.
#[derive(Debug, Serialize)]
struct Failover {
    fault: String,
    smsc: String,
    /// From the fault to the bind leaving service.
    detected_after_s: Option<f64>,
    /// From the recovery to the bind being back.
    rebound_after_s: Option<f64>,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    accepted: AtomicU64,
    failed: AtomicU64,
    ambiguous: AtomicU64,
    retried: AtomicU64,
    receipts: AtomicU64,
}

type HealthLog = Arc<Mutex<Vec<(Instant, Target, HealthState)>>>;

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.messages == 0 {
        bail!("--messages must be at least 1");
    }
    let progress = Progress::new(!args.json || std::io::stderr().is_terminal());
    let lab_config = LabConfig::from_toml_str(LAB).context("embedded lab config")?;
    let lab = Lab::start(lab_config)
        .await
        .context("cannot start the lab")?;
    let client_config = client_config(&lab);
    let targets: Vec<Target> = client_config
        .instances
        .iter()
        .map(|(t, _)| t.clone())
        .collect();
    let (client, events, _task) = SmppClient::start(client_config).context("SMPP client")?;
    let counters = Arc::new(Counters::default());
    let health: HealthLog = Arc::default();
    tokio::spawn(consume_events(events, counters.clone(), health.clone()));

    progress.line("binding to every SMSC of every site (SPEC M4)...");
    wait_bound(&client, targets.len(), Duration::from_secs(10)).await?;

    let start = clock::now();
    let mut faults: Vec<(String, Target, Instant, Option<Instant>)> = Vec::new();
    let traffic = tokio::spawn(send_all(
        client.clone(),
        args.messages,
        args.rate,
        counters.clone(),
    ));
    let site_a = [Target::new("a", "a1"), Target::new("a", "a2")];
    let b1 = Target::new("b", "b1");
    let mut phase = 0;
    let mut phase_text = "all binds up".to_owned();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    while !traffic.is_finished() {
        ticker.tick().await;
        let done =
            counters.accepted.load(Ordering::Relaxed) + counters.failed.load(Ordering::Relaxed);
        let fraction = done as f64 / args.messages as f64;
        if phase == 0 && fraction >= 0.2 {
            for target in &site_a {
                lab.set_fault(target, Fault::Die).context("kill site a")?;
                faults.push(("site died".into(), target.clone(), clock::now(), None));
            }
            phase_text = "site a died".into();
            phase = 1;
        } else if phase == 1 && fraction >= 0.4 {
            lab.set_fault(&b1, Fault::Blackhole)
                .context("blackhole b1")?;
            faults.push(("blackhole".into(), b1.clone(), clock::now(), None));
            phase_text = "site a dead, b1 blackholed".into();
            phase = 2;
        } else if phase == 2 && fraction >= 0.7 {
            for fault in &mut faults {
                lab.set_fault(&fault.1, Fault::Recover).context("recover")?;
                fault.3 = Some(clock::now());
            }
            phase_text = "recovered; rebinding no sooner than 30 s (SPEC M5)".into();
            phase = 3;
        }
        let up = bound_count(&client);
        progress.bar(
            done,
            args.messages,
            &format!("binds up {up}/4 | {phase_text}"),
        );
    }
    traffic.await.context("traffic task")?;
    let traffic_end = clock::now();
    progress.done();

    // Show the rebinds: SPEC M5 paces them at least 30 s after the last attempt.
    let deadline = clock::now() + Duration::from_secs(60);
    while bound_count(&client) < targets.len() && clock::now() < deadline {
        let waited = clock::now()
            .saturating_duration_since(traffic_end)
            .as_secs();
        progress.status(&format!(
            "waiting for rebinds (SPEC M5: no sooner than 30 s per SMSC): {}/4 up, {waited} s",
            bound_count(&client)
        ));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    progress.done();
    // Let the last receipts arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let report = build_report(&args, &lab, &counters, &health, &faults, start, traffic_end);
    client.shutdown().await;
    lab.shutdown().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(if report.lost == 0 && report.duplicated == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn client_config(lab: &LabHandle) -> ClientConfig {
    let mut session = SessionConfig::new("hotsite", "secret");
    // Short timers so the demo shows detection in seconds, not minutes.
    session.enquire_link_interval = Duration::from_secs(1);
    session.dead_peer_timeout = Duration::from_secs(3);
    session.response_timeout = Duration::from_secs(2);
    ClientConfig {
        session,
        pool: PoolConfig {
            rebind_interval: Duration::from_secs(30),
            rebind_jitter: Duration::from_secs(3),
        },
        instances: lab
            .smsc_addrs()
            .into_iter()
            .map(|(target, addr)| (target, addr.to_string()))
            .collect(),
        connect_timeout: Duration::from_secs(2),
        seed: 42,
    }
}

async fn consume_events(
    mut events: tokio::sync::mpsc::Receiver<ClientEvent>,
    counters: Arc<Counters>,
    health: HealthLog,
) {
    while let Some(event) = events.recv().await {
        match event {
            ClientEvent::Pool(event) => {
                if let EventKind::Health { to, .. } = event.kind {
                    health.lock().unwrap_or_else(|e| e.into_inner()).push((
                        event.at,
                        event.target,
                        to,
                    ));
                }
            }
            ClientEvent::Deliver { message, ack, .. } => {
                if message.is_receipt() {
                    counters.receipts.fetch_add(1, Ordering::Relaxed);
                }
                ack.accept();
            }
            ClientEvent::AnsweredLate { .. } => {}
        }
    }
}

async fn wait_bound(client: &SmppClient, expected: usize, limit: Duration) -> anyhow::Result<()> {
    let deadline = clock::now() + limit;
    while bound_count(client) < expected {
        if clock::now() > deadline {
            bail!(
                "only {} of {expected} SMSC instances bound within {limit:?}",
                bound_count(client)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn bound_count(client: &SmppClient) -> usize {
    client
        .status()
        .iter()
        .filter(|s| s.pool.health == HealthState::Up)
        .count()
}

/// Sends every message, paced at `rate`, at most 64 at a time.
async fn send_all(client: SmppClient, messages: u64, rate: u64, counters: Arc<Counters>) {
    let limit = Arc::new(Semaphore::new(64));
    let start = tokio::time::Instant::from_std(clock::now());
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..messages {
        if rate > 0 {
            tokio::time::sleep_until(start + Duration::from_secs_f64(index as f64 / rate as f64))
                .await;
        }
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let client = client.clone();
        let counters = counters.clone();
        counters.sent.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(async move {
            deliver_one(&client, index, &counters).await;
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// One message until it is accepted or refused for good. Ambiguous and retryable
/// outcomes are sent again with the same reference (SPEC M8 `resubmit`).
async fn deliver_one(client: &SmppClient, index: u64, counters: &Counters) {
    let message = demo_message(index);
    for _ in 0..100 {
        match client.submit(message.clone()).await {
            Ok(SubmitOutcome::Accepted { .. }) => {
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(SubmitOutcome::Ambiguous { .. }) => {
                counters.ambiguous.fetch_add(1, Ordering::Relaxed);
            }
            Ok(SubmitOutcome::Rejected { status, .. })
                if status.outcome() != Outcome::Permanent =>
            {
                counters.retried.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(SubmitOutcome::Rejected { .. } | SubmitOutcome::Invalid { .. }) | Err(_) => break,
        }
    }
    counters.failed.fetch_add(1, Ordering::Relaxed);
}

fn demo_message(index: u64) -> ShortMessage {
    let mut tlvs = Tlvs::default();
    // The stable reference the provider dedupes on, with the destination.
    tlvs.set_user_message_reference((index & 0xFFFF) as u16);
    ShortMessage {
        source: Address {
            ton: 5,
            npi: 0,
            addr: "hotsite".into(),
        },
        destination: Address {
            ton: 1,
            npi: 1,
            addr: format!("4917{index:08}"),
        },
        registered_delivery: 1,
        short_message: Bytes::from(format!("hotsite demo #{index}")),
        tlvs,
        ..ShortMessage::default()
    }
}

fn build_report(
    args: &DemoArgs,
    lab: &LabHandle,
    counters: &Counters,
    health: &HealthLog,
    faults: &[(String, Target, Instant, Option<Instant>)],
    start: Instant,
    end: Instant,
) -> Report {
    let mut seen: HashMap<u64, u64> = HashMap::new();
    for message in lab.handset_log() {
        if let Some(index) = message
            .text
            .strip_prefix("hotsite demo #")
            .and_then(|n| n.parse().ok())
        {
            *seen.entry(index).or_default() += 1;
        }
    }
    let delivered = seen.len() as u64;
    let duplicated = seen.values().map(|n| n - 1).sum();
    let lost = (0..args.messages).filter(|i| !seen.contains_key(i)).count() as u64;
    let health = health.lock().unwrap_or_else(|e| e.into_inner());
    let failovers = faults
        .iter()
        .map(|(fault, target, at, recovered)| {
            let first = |after: Instant, state: HealthState| {
                health
                    .iter()
                    .find(|(when, t, to)| t == target && *when >= after && *to == state)
                    .map(|(when, _, _)| (*when - after).as_secs_f64())
            };
            Failover {
                fault: fault.clone(),
                smsc: target.to_string(),
                detected_after_s: first(*at, HealthState::Down),
                rebound_after_s: recovered.and_then(|r| first(r, HealthState::Up)),
            }
        })
        .collect();
    let duration = (end - start).as_secs_f64();
    let accepted = counters.accepted.load(Ordering::Relaxed);
    Report {
        messages: args.messages,
        accepted,
        delivered,
        lost,
        duplicated,
        failed: counters.failed.load(Ordering::Relaxed),
        ambiguous_resubmitted: counters.ambiguous.load(Ordering::Relaxed),
        provider_dropped_repeats: lab.stats().totals.duplicates_dropped,
        throttled_or_retried: counters.retried.load(Ordering::Relaxed),
        receipts_received: counters.receipts.load(Ordering::Relaxed),
        duration_s: duration,
        throughput_msgs_per_s: if duration > 0.0 {
            accepted as f64 / duration
        } else {
            0.0
        },
        failovers,
    }
}

fn print_report(report: &Report) {
    let verdict = if report.lost == 0 && report.duplicated == 0 {
        "OK"
    } else {
        "FAILED"
    };
    println!("hotsite demo: bind failover across two sites ({verdict})");
    println!("  messages            {}", report.messages);
    println!("  accepted by SMSCs   {}", report.accepted);
    println!("  delivered (unique)  {}", report.delivered);
    println!("  lost                {}", report.lost);
    println!("  duplicated          {}", report.duplicated);
    println!("  failed              {}", report.failed);
    println!(
        "  ambiguous, resent   {} (same reference; the provider dropped {} repeats)",
        report.ambiguous_resubmitted, report.provider_dropped_repeats
    );
    println!("  receipts received   {}", report.receipts_received);
    println!(
        "  throughput          {:.0} msg/s over {:.1} s",
        report.throughput_msgs_per_s, report.duration_s
    );
    println!("  failovers:");
    let secs = |s: Option<f64>| s.map_or("never".to_owned(), |s| format!("{s:.2} s"));
    for failover in &report.failovers {
        println!(
            "    {:<10} {:<5} out of service after {:>8}, back after recovery in {:>8}",
            failover.fault,
            failover.smsc,
            secs(failover.detected_after_s),
            secs(failover.rebound_after_s)
        );
    }
}

/// Progress on stderr: a redrawn bar on a terminal, a line per 10% otherwise.
struct Progress {
    enabled: bool,
    terminal: bool,
    last_decile: AtomicU64,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            terminal: std::io::stderr().is_terminal(),
            last_decile: AtomicU64::new(0),
        }
    }

    fn line(&self, text: &str) {
        if self.enabled {
            eprintln!("{text}");
        }
    }

    fn bar(&self, done: u64, total: u64, status: &str) {
        if !self.enabled {
            return;
        }
        let percent = done * 100 / total.max(1);
        if self.terminal {
            let filled = (percent / 5) as usize;
            eprint!(
                "\r[{}{}] {percent:>3}% {done}/{total} | {status}\x1b[K",
                "#".repeat(filled),
                "-".repeat(20 - filled)
            );
            let _ = std::io::stderr().flush();
        } else if percent / 10 > self.last_decile.load(Ordering::Relaxed) {
            self.last_decile.store(percent / 10, Ordering::Relaxed);
            eprintln!("{percent:>3}% {done}/{total} | {status}");
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
