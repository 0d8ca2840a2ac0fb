//! `hotsite demo`: the messaging gateway through a site failure, end to end on
//! loopback.
//!
//! A simulated aggregator (two sites, two SMSC instances each), hotsite's
//! gateway on its embedded store (SQLite, fsync on every batch) bound to all
//! four SMSCs (SPEC M4), and a small customer application that receives the
//! signed MO/DR webhooks (SPEC M15). Traffic goes in through the HTTP batch API
//! with idempotency keys; site `a` dies, then SMSC `b1` is blackholed (TCP up,
//! nothing answered); later both come back. The report counts what reached the
//! handsets and the application: nothing lost, nothing twice (SPEC M7–M9).

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hotsite_core::{HealthState, Target};
use hotsite_lab::{Fault, Lab, LabConfig, LabHandle};
use hotsite_messaging::signing::{verify, SIGNATURE_HEADER};
use hotsite_messaging::webhook::WebhookConfig;
use hotsite_messaging::{GatewayConfig, GatewayHandle};
use hotsite_smpp::driver::ClientConfig;
use hotsite_smpp::pool::PoolConfig;
use hotsite_smpp::session::SessionConfig;
use hotsite_store::{SqliteOptions, SqliteStore};
use serde::Serialize;
use serde_json::json;

use crate::clock;

/// Options of `hotsite demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Messages to send.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Submit rate in messages per second; 0 sends as fast as the API takes them.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// Messages per API request (1 to 1000).
    #[arg(long, default_value_t = 100)]
    batch: u64,
    /// Print the report as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
}

const TOKEN: &str = "demo-token-0001";
const WEBHOOK_SECRET: &str = "demo-webhook-secret-0001";

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
    receipts_received_on_binds: u64,
    receipts_delivered_to_app: u64,
    app_received_twice: u64,
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

struct InjectedFault {
    fault: &'static str,
    target: Target,
    at: Instant,
    down_at: Option<Instant>,
    recovered_at: Option<Instant>,
    up_at: Option<Instant>,
}

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.messages == 0 || !(1..=1000).contains(&args.batch) {
        bail!("--messages must be at least 1 and --batch between 1 and 1000");
    }
    let progress = Progress::new(!args.json || std::io::stderr().is_terminal());
    let dir = std::env::temp_dir().join(format!("hotsite-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = run_in(&args, &dir, &progress).await;
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(
        if report.lost == 0 && report.duplicated == 0 && report.app_received_twice == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

async fn run_in(
    args: &DemoArgs,
    dir: &std::path::Path,
    progress: &Progress,
) -> anyhow::Result<Report> {
    // Two sites of two SMSCs on ephemeral loopback ports; receipts sometimes
    // twice and sometimes through the other site, as real aggregators send them.
    let mut lab_config = LabConfig::two_sites_two_smscs();
    lab_config.seed = 7;
    lab_config.receipts.duplicate_probability = 0.1;
    lab_config.receipts.other_site_probability = 0.3;
    let lab = Lab::start(lab_config)
        .await
        .context("cannot start the lab")?;
    let app = App::start().await?;
    let store = SqliteStore::open(&dir.join("hotsite.db"), SqliteOptions::default())
        .context("cannot open the store")?;
    let gateway = hotsite_messaging::start(gateway_config(&lab, app.addr), store.clone())
        .await
        .context("cannot start the gateway")?;
    let api = format!("http://{}", gateway.api_addr());
    progress.line(&format!(
        "gateway on {api}, store {}; binding to every SMSC of every site (SPEC M4)...",
        dir.display()
    ));
    wait_bound(&gateway, 4, Duration::from_secs(10)).await?;

    let counters = Arc::new(AtomicU64::new(0));
    let start = clock::now();
    let traffic = tokio::spawn(send_all(
        api.clone(),
        args.messages,
        args.rate,
        args.batch,
        counters.clone(),
    ));
    let mut faults: Vec<InjectedFault> = Vec::new();
    let mut phase = 0;
    let mut phase_text = "all binds up";
    let mut delivered_at = None;
    let deadline = start + Duration::from_secs(args.messages / args.rate.max(1) + 120);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = clock::now();
        let accepted = counters.load(Ordering::Relaxed);
        let fraction = accepted as f64 / args.messages as f64;
        if phase == 0 && fraction >= 0.2 {
            for name in ["a1", "a2"] {
                let target = Target::new("a", name);
                lab.set_fault(&target, Fault::Die).context("kill site a")?;
                faults.push(InjectedFault {
                    fault: "site died",
                    target,
                    at: clock::now(),
                    down_at: None,
                    recovered_at: None,
                    up_at: None,
                });
            }
            phase_text = "site a died";
            phase = 1;
        } else if phase == 1 && fraction >= 0.4 {
            let target = Target::new("b", "b1");
            lab.set_fault(&target, Fault::Blackhole)
                .context("blackhole b1")?;
            faults.push(InjectedFault {
                fault: "blackhole",
                target,
                at: clock::now(),
                down_at: None,
                recovered_at: None,
                up_at: None,
            });
            phase_text = "site a dead, b1 blackholed";
            phase = 2;
        } else if phase == 2 && fraction >= 0.7 {
            for fault in &mut faults {
                lab.set_fault(&fault.target, Fault::Recover)
                    .context("recover")?;
                fault.recovered_at = Some(clock::now());
            }
            phase_text = "recovered; rebinding no sooner than 30 s (SPEC M5)";
            phase = 3;
        }
        let status = gateway.client().expect("the demo has SMPP").status();
        for fault in &mut faults {
            let health = status
                .iter()
                .find(|s| s.pool.target == fault.target)
                .map(|s| s.pool.health);
            if fault.down_at.is_none() && health == Some(HealthState::Down) {
                fault.down_at = Some(now);
            }
            if fault.recovered_at.is_some()
                && fault.up_at.is_none()
                && health == Some(HealthState::Up)
            {
                fault.up_at = Some(now);
            }
        }
        let up = status
            .iter()
            .filter(|s| s.pool.health == HealthState::Up)
            .count();
        let unique = lab.stats().totals.unique;
        if delivered_at.is_none()
            && traffic.is_finished()
            && unique >= counters.load(Ordering::Relaxed)
        {
            delivered_at = Some(now);
        }
        let all_back = faults.iter().all(|f| f.up_at.is_some());
        if delivered_at.is_some() && all_back {
            break;
        }
        if now > deadline {
            progress.done();
            progress.line("stopped waiting: the deadline passed (see the report)");
            break;
        }
        if traffic.is_finished() {
            progress.status(&format!(
                "delivered {unique}/{accepted} | binds up {up}/4 | {phase_text}"
            ));
        } else {
            progress.bar(
                accepted,
                args.messages,
                &format!("delivered {unique} | binds up {up}/4 | {phase_text}"),
            );
        }
    }
    progress.done();
    let traffic_result = traffic.await.context("traffic task")?;
    traffic_result?;
    // Receipts are 20 ms behind their submits; give the webhooks a moment.
    let settle = clock::now() + Duration::from_secs(5);
    while clock::now() < settle {
        let stats = store.stats().await?;
        if stats.inbound_pending == 0 && stats.queued == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let end = delivered_at.unwrap_or_else(clock::now);
    let report = build_report(
        args,
        &lab,
        &gateway,
        &store,
        &app,
        &faults,
        counters.load(Ordering::Relaxed),
        start,
        end,
    )
    .await?;
    gateway.shutdown().await;
    lab.shutdown().await;
    Ok(report)
}

fn gateway_config(lab: &LabHandle, app: SocketAddr) -> GatewayConfig {
    let mut session = SessionConfig::new("hotsite", "secret");
    // Short timers so the demo shows detection in seconds, not minutes.
    session.enquire_link_interval = Duration::from_secs(1);
    session.dead_peer_timeout = Duration::from_secs(3);
    session.response_timeout = Duration::from_secs(2);
    let smpp = ClientConfig {
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
    };
    GatewayConfig {
        smpp: Some(smpp),
        api_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        tokens: vec![TOKEN.to_owned()],
        default_from: "hotsite".to_owned(),
        channels: Vec::new(),
        routes: Vec::new(),
        default_route: None,
        dispatcher: Default::default(),
        webhook: Some(WebhookConfig {
            url: format!("http://{app}/hotsite"),
            secret: WEBHOOK_SECRET.as_bytes().to_vec(),
            timeout: Duration::from_secs(5),
            backoff: Default::default(),
            concurrency: 16,
        }),
    }
}

async fn wait_bound(
    gateway: &GatewayHandle,
    expected: usize,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = clock::now() + limit;
    loop {
        let up = gateway
            .client()
            .expect("the demo has SMPP")
            .status()
            .iter()
            .filter(|s| s.pool.health == HealthState::Up)
            .count();
        if up >= expected {
            return Ok(());
        }
        if clock::now() > deadline {
            bail!("only {up} of {expected} SMSC instances bound within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Posts every message in batches, paced at `rate`, four requests at a time.
async fn send_all(
    api: String,
    messages: u64,
    rate: u64,
    batch: u64,
    accepted: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let start = tokio::time::Instant::from_std(clock::now());
    let limit = Arc::new(tokio::sync::Semaphore::new(4));
    let mut requests = tokio::task::JoinSet::new();
    let mut first = 0;
    while first < messages {
        let last = (first + batch).min(messages);
        if rate > 0 {
            tokio::time::sleep_until(start + Duration::from_secs_f64(first as f64 / rate as f64))
                .await;
        }
        let permit = limit.clone().acquire_owned().await?;
        let body = json!({ "messages": (first..last).map(|i| json!({
            "id": format!("demo-{i}"),
            "to": format!("+4917{i:08}"),
            "text": format!("hotsite demo #{i}"),
        })).collect::<Vec<_>>() });
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

#[allow(clippy::too_many_arguments)]
async fn build_report(
    args: &DemoArgs,
    lab: &LabHandle,
    gateway: &GatewayHandle,
    store: &SqliteStore,
    app: &App,
    faults: &[InjectedFault],
    accepted: u64,
    start: Instant,
    end: Instant,
) -> anyhow::Result<Report> {
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
    let stats = store.stats().await?;
    let metrics = gateway.metrics();
    let secs = |from: Instant, to: Option<Instant>| {
        to.map(|to| to.saturating_duration_since(from).as_secs_f64())
    };
    let failovers = faults
        .iter()
        .map(|f| Failover {
            fault: f.fault.to_owned(),
            smsc: f.target.to_string(),
            detected_after_s: secs(f.at, f.down_at),
            rebound_after_s: f.recovered_at.and_then(|r| secs(r, f.up_at)),
        })
        .collect();
    let duration = end.saturating_duration_since(start).as_secs_f64();
    let app_counts = app.counts();
    Ok(Report {
        messages: args.messages,
        accepted,
        delivered,
        lost,
        duplicated,
        failed: stats.failed,
        ambiguous_resubmitted: metrics.submits_ambiguous_total.load(Ordering::Relaxed),
        provider_dropped_repeats: lab.stats().totals.duplicates_dropped,
        receipts_received_on_binds: metrics.inbound_received_total.load(Ordering::Relaxed),
        receipts_delivered_to_app: app_counts.0,
        app_received_twice: app_counts.1,
        duration_s: duration,
        throughput_msgs_per_s: if duration > 0.0 {
            delivered as f64 / duration
        } else {
            0.0
        },
        failovers,
    })
}

fn print_report(report: &Report) {
    let verdict = if report.lost == 0 && report.duplicated == 0 && report.app_received_twice == 0 {
        "OK"
    } else {
        "FAILED"
    };
    println!("hotsite demo: messaging through a site failure ({verdict})");
    println!("  messages              {}", report.messages);
    println!("  accepted (durable)    {}", report.accepted);
    println!("  delivered to handsets {}", report.delivered);
    println!("  lost                  {}", report.lost);
    println!("  duplicated            {}", report.duplicated);
    println!("  failed                {}", report.failed);
    println!(
        "  ambiguous, resent     {} (same reference; the provider dropped {} repeats)",
        report.ambiguous_resubmitted, report.provider_dropped_repeats
    );
    println!(
        "  receipts              {} received on the binds (repeats included), {} delivered to the app, {} twice",
        report.receipts_received_on_binds, report.receipts_delivered_to_app, report.app_received_twice
    );
    println!(
        "  throughput            {:.0} msg/s end to end over {:.1} s",
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

/// The customer's application: receives webhooks, checks signatures, counts.
struct App {
    addr: SocketAddr,
    seen: Arc<Mutex<(HashSet<i64>, u64, u64)>>,
}

impl App {
    async fn start() -> anyhow::Result<App> {
        let seen: Arc<Mutex<(HashSet<i64>, u64, u64)>> = Arc::default();
        let state = seen.clone();
        let app = axum::Router::new().route(
            "/hotsite",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let state = state.clone();
                    async move {
                        let signature = headers
                            .get(SIGNATURE_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        if !verify(WEBHOOK_SECRET.as_bytes(), &body, signature) {
                            return axum::http::StatusCode::UNAUTHORIZED;
                        }
                        let id = serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|v| v["id"].as_i64());
                        let mut seen = state.lock().unwrap_or_else(|e| e.into_inner());
                        match id {
                            Some(id) if seen.0.insert(id) => seen.1 += 1,
                            Some(_) => seen.2 += 1,
                            None => return axum::http::StatusCode::BAD_REQUEST,
                        }
                        axum::http::StatusCode::OK
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot start the demo application")?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(App { addr, seen })
    }

    /// (delivered once, delivered again).
    fn counts(&self) -> (u64, u64) {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        (seen.1, seen.2)
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
        if !self.enabled {
            return;
        }
        if self.terminal {
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
