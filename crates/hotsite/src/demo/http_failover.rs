//! `http-failover`: the aggregator's HTTP API with two site URLs, `a` the
//! primary and `b` the alternate (SPEC M3, M12).
//!
//! Traffic flows to `a`. At 20% of the traffic `a` starts answering 503: each
//! message that fails there is resubmitted to it once after the resubmit delay
//! (2 s here, so it shows; the default is 30 s), then goes to `b`; the URL is
//! marked down and new messages go straight to `b`. At 45% `a` hangs (requests
//! read, never answered): its probes time out. At 70% it recovers; after
//! `rise` good probes it is up again and traffic returns to it. Receipts come
//! back as signed callbacks, sometimes twice and through the other site, and
//! reach the application once each (SPEC M8, M13, M15).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use hotsite_lab::{HttpConfig, HttpFault, LabConfig};
use hotsite_messaging::channel::aggregator::{AggregatorConfig, SiteUrl};
use hotsite_messaging::gateway::{ChannelConfig, RouteConfig};
use serde_json::Value;

use super::{
    hop, secs, sms_message, Driver, FailoverTiming, Progress, Report, Rig, Settings, Traffic,
    AGGREGATOR, CALLBACK_SECRET,
};
use crate::clock;

const RESUBMIT_DELAY: Duration = Duration::from_secs(2);
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
const RISE: u32 = 2;

pub(super) async fn run(
    settings: &Settings,
    dir: &Path,
    progress: &Progress,
) -> anyhow::Result<Report> {
    let mut lab = LabConfig::loopback(&[]);
    lab.seed = 7;
    lab.receipts.duplicate_probability = 0.1;
    lab.receipts.other_site_probability = 0.3;
    lab.http = Some(HttpConfig::loopback(&["a", "b"]));
    let rig = Rig::start(
        dir,
        lab,
        |lab| {
            let urls = lab
                .http_site_addrs()
                .into_iter()
                .map(|(site, addr)| SiteUrl {
                    site,
                    url: format!("http://{addr}/sms/send"),
                    health_url: None,
                })
                .collect();
            let mut config = AggregatorConfig::new(AGGREGATOR, urls, "hotsite", "secret");
            config.resubmit_delay = RESUBMIT_DELAY;
            config.request_timeout = Duration::from_secs(1);
            config.probe_interval = PROBE_INTERVAL;
            config.probe_timeout = Duration::from_millis(500);
            config.rise = RISE;
            vec![(
                AGGREGATOR.to_owned(),
                ChannelConfig::Http {
                    config,
                    callback_secret: Some(CALLBACK_SECRET.into()),
                },
            )]
        },
        vec![RouteConfig {
            name: "sms".to_owned(),
            hops: vec![(AGGREGATOR.to_owned(), hop(None, 100, 1_000))],
        }],
    )
    .await?;
    let sites = rig.lab.http_site_addrs();
    progress.line(&format!(
        "gateway on {}; aggregator HTTP API: primary a on {}, alternate b on {}",
        rig.api, sites[0].1, sites[1].1
    ));

    let mut traffic = Traffic::start(&rig.api, settings, 0.2, sms_message);
    let mut driver = Driver::new(settings, progress);
    let mut phase = 0;
    let mut text = "primary a up";
    let mut fault_at: Option<Instant> = None;
    let mut down_at: Option<Instant> = None;
    let mut recovered_at: Option<Instant> = None;
    let mut up_at: Option<Instant> = None;
    let mut returned = false;
    loop {
        let now = driver.tick(&mut traffic).await;
        let primary_up = rig
            .gateway
            .channel_status(AGGREGATOR)
            .is_some_and(|status| status["urls"][0]["up"] == Value::Bool(true));
        if fault_at.is_some() && down_at.is_none() && !primary_up {
            down_at = Some(now);
        }
        if recovered_at.is_some() && up_at.is_none() && primary_up {
            up_at = Some(now);
        }
        if phase == 0 && traffic.reached(0.2) {
            set_fault(
                &rig,
                HttpFault::Status {
                    code: 503,
                    retry_after_s: None,
                },
            )?;
            fault_at = Some(clock::now());
            progress.line(&format!(
                "primary a answers 503: each message goes to it once more after {} s, then to b (SPEC M3)",
                RESUBMIT_DELAY.as_secs()
            ));
            text = "a answers 503";
            traffic.hold_at(0.45);
            phase = 1;
        } else if phase == 1
            && traffic.reached(0.45)
            && fault_at.is_some_and(|at| rig.first_at_site("b", at).is_some())
        {
            set_fault(&rig, HttpFault::Hang)?;
            progress.line("primary a hangs: marked down, only its probes go there (SPEC M12)");
            text = "a hangs, traffic on b";
            traffic.hold_at(0.7);
            phase = 2;
        } else if phase == 2 && traffic.reached(0.7) {
            set_fault(&rig, HttpFault::Recover)?;
            recovered_at = Some(clock::now());
            progress.line(&format!(
                "primary a recovers: up again after {RISE} good probes, then traffic returns to it"
            ));
            text = "a recovered, probing";
            traffic.hold_at(0.9);
            phase = 3;
        } else if phase == 3 && traffic.reached(0.9) && primary_up {
            text = "a back up";
            traffic.release();
            phase = 4;
        }
        if phase == 4 && !returned {
            returned = recovered_at.is_some_and(|at| rig.first_at_site("a", at).is_some());
        }
        let settled = rig.lab.stats().totals.unique + rig.failed().await?;
        if driver.end(now, &traffic, settled, returned, text) {
            break;
        }
    }
    let (mut report, arrivals) = rig
        .finish(
            settings,
            "the aggregator's HTTP API, primary site failing",
            traffic,
            &driver,
        )
        .await?;
    let fault = fault_at.unwrap_or_else(|| driver.start());
    let failover = FailoverTiming::new("answers 503, then hangs", "primary URL (site a)")
        .time("detected_after_s", secs(fault, down_at))
        .time("time_to_failover_s", rig.first_at_site("b", fault));
    let failover = match recovered_at {
        Some(recovered) => failover
            .time("up_again_after_s", secs(recovered, up_at))
            .time("recovered_after_s", rig.first_at_site("a", recovered)),
        None => failover.time("recovered_after_s", None),
    };
    report.failover(failover);
    let mut by_site: BTreeMap<String, u64> = BTreeMap::new();
    for (_, site, _) in &arrivals {
        *by_site.entry(site.clone()).or_default() += 1;
    }
    report.extra("by_site", serde_json::to_value(by_site)?);
    let stats = rig.lab.stats();
    let primary = stats.http_sites.iter().find(|s| s.name == "a");
    report.extra(
        "primary_503_answers",
        primary.map_or(0, |s| s.transport.injected.get(&503).copied().unwrap_or(0)),
    );
    report.extra(
        "primary_hung_requests",
        primary.map_or(0, |s| s.transport.hung),
    );
    report.extra("provider_dropped_repeats", stats.totals.duplicates_dropped);
    rig.report_receipts(&mut report).await;
    report.note(format!(
        "resubmit delay {} s in this demo (the default is 30 s): a failed message is sent to the same URL once more after it, then to the alternate (SPEC M3)",
        RESUBMIT_DELAY.as_secs()
    ));
    report.note(format!(
        "time to failover: from the first 503 to the first message accepted by b; recovered: from the recovery to the first message accepted by a again, after {RISE} good probes {} ms apart",
        PROBE_INTERVAL.as_millis()
    ));
    rig.shutdown().await;
    Ok(report)
}

fn set_fault(rig: &Rig, fault: HttpFault) -> anyhow::Result<()> {
    rig.lab
        .set_http_site_fault("a", fault)
        .with_context(|| format!("cannot set {fault:?} on site a"))
}
