//! `bind-failover`: SMPP through a site failure.
//!
//! A simulated aggregator (two sites, two SMSC instances each), hotsite's
//! gateway bound to all four SMSCs (SPEC M4). Site `a` dies at 20% of the
//! traffic, SMSC `b1` is blackholed (TCP up, nothing answered) at 40%; both
//! come back at 70%, and the demo waits for the rebinds (paced: no sooner than
//! 30 s, SPEC M5). Each step waits until hotsite has taken the binds hit by
//! the previous one out of service (the traffic trickles meanwhile). The report counts what reached the handsets and the
//! application: nothing lost, nothing twice (SPEC M7–M9).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hotsite_core::{HealthState, Target};
use hotsite_lab::{Fault, Lab, LabConfig, LabHandle};
use hotsite_messaging::{GatewayConfig, GatewayView};
use hotsite_smpp::driver::ClientConfig;
use hotsite_smpp::pool::PoolConfig;
use hotsite_smpp::session::SessionConfig;

use super::{
    app_webhook, index_of, open_store, secs, serve, settle, sms_message, App, Driver,
    FailoverTiming, Progress, Report, Settings, Tally, Traffic,
};
use crate::clock;

struct InjectedFault {
    fault: &'static str,
    target: Target,
    at: Instant,
    down_at: Option<Instant>,
    recovered_at: Option<Instant>,
    up_at: Option<Instant>,
}

impl InjectedFault {
    fn new(fault: &'static str, target: Target) -> InjectedFault {
        InjectedFault {
            fault,
            target,
            at: clock::now(),
            down_at: None,
            recovered_at: None,
            up_at: None,
        }
    }
}

/// Whether every bind hit so far has left service.
fn detected(faults: &[InjectedFault]) -> bool {
    faults.iter().all(|f| f.down_at.is_some())
}

pub(super) async fn run(
    settings: &Settings,
    dir: &Path,
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
    let store = open_store(dir)?;
    let gateway = serve(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        gateway_config(&lab, &app),
        store.clone(),
    )
    .await?;
    let api = format!("http://{}", gateway.local_addr());
    progress.line(&format!(
        "gateway on {api}, store {}; binding to every SMSC of every site (SPEC M4)...",
        dir.display()
    ));
    wait_bound(&gateway, 4, Duration::from_secs(10)).await?;

    let mut traffic = Traffic::start(&api, settings, 0.2, sms_message);
    let mut driver = Driver::new(settings, progress);
    let mut faults: Vec<InjectedFault> = Vec::new();
    let mut phase = 0;
    let mut phase_text = "all binds up";
    loop {
        let now = driver.tick(&mut traffic).await;
        if phase == 0 && traffic.reached(0.2) {
            for name in ["a1", "a2"] {
                let target = Target::new("a", name);
                lab.set_fault(&target, Fault::Die).context("kill site a")?;
                faults.push(InjectedFault::new("site died", target));
            }
            phase_text = "site a died";
            traffic.hold_at(0.4);
            phase = 1;
        } else if phase == 1 && traffic.reached(0.4) && detected(&faults) {
            let target = Target::new("b", "b1");
            lab.set_fault(&target, Fault::Blackhole)
                .context("blackhole b1")?;
            faults.push(InjectedFault::new("blackhole", target));
            phase_text = "site a dead, b1 blackholed";
            traffic.hold_at(0.7);
            phase = 2;
        } else if phase == 2 && traffic.reached(0.7) && detected(&faults) {
            for fault in &mut faults {
                lab.set_fault(&fault.target, Fault::Recover)
                    .context("recover")?;
                fault.recovered_at = Some(clock::now());
            }
            phase_text = "recovered; rebinding no sooner than 30 s (SPEC M5)";
            traffic.release();
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
        let all_back = phase == 3 && faults.iter().all(|f| f.up_at.is_some());
        let text = format!("binds up {up}/4 | {phase_text}");
        if driver.end(now, &traffic, unique, all_back, &text) {
            break;
        }
    }
    let accepted = traffic.accepted();
    traffic.join().await?;
    settle(&store).await?;
    let tally = Tally::count(
        settings.messages,
        lab.handset_log().iter().filter_map(|m| index_of(&m.text)),
    );
    let mut report = Report::new(
        settings,
        "SMPP binds to every SMSC of every site through a site failure",
        accepted,
        tally,
        store.stats().await?.failed,
        driver.duration(),
    );
    let metrics = gateway.metrics();
    report.extra(
        "ambiguous_resubmitted",
        metrics.submits_ambiguous_total.load(Ordering::Relaxed),
    );
    report.extra(
        "provider_dropped_repeats",
        lab.stats().totals.duplicates_dropped,
    );
    report.extra(
        "receipts_received_on_binds",
        metrics.inbound_received_total.load(Ordering::Relaxed),
    );
    let (once, twice) = app.counts();
    report.extra("receipts_delivered_to_app", once);
    report.must_be_zero("app_received_twice", twice);
    for f in &faults {
        report.failover(
            FailoverTiming::new(f.fault, format!("SMSC {}", f.target))
                .time("detected_after_s", secs(f.at, f.down_at))
                .time(
                    "recovered_after_s",
                    f.recovered_at.and_then(|r| secs(r, f.up_at)),
                ),
        );
    }
    report.note(
        "ambiguous submits are resent with the same user_message_reference; the provider drops the repeats (SPEC M8)",
    );
    report.note("recovered: from the SMSC's recovery to its bind in service again (rebinds ≥ 30 s apart, SPEC M5)");
    gateway.shutdown().await;
    lab.shutdown().await;
    Ok(report)
}

fn gateway_config(lab: &LabHandle, app: &App) -> GatewayConfig {
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
        inbox: Default::default(),
        smpp: Some(smpp),
        default_from: "hotsite".to_owned(),
        channels: Vec::new(),
        routes: Vec::new(),
        default_route: None,
        dispatcher: Default::default(),
        webhook: app_webhook(app),
    }
}

async fn wait_bound(gateway: &GatewayView, expected: usize, limit: Duration) -> anyhow::Result<()> {
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
