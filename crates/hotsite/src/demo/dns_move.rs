//! `dns-move`: the aggregator's HTTP API behind one URL,
//! `http://sms.lab.test:PORT/sms/send`, resolved through the lab's DNS server
//! (TTL 1 s) to site `a` (127.0.0.1); site `b` listens on the same port at
//! 127.0.0.2 (SPEC M2).
//!
//! At 40% of the traffic the record moves to `b`. Both sites stay up, so only
//! re-resolution can move the traffic: the first message reaches `b` within
//! one TTL and a request of the move, and `a` gets nothing after that. Nothing
//! is lost or delivered twice.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use hotsite_lab::{DnsConfig, HttpConfig, LabConfig};
use hotsite_messaging::channel::aggregator::{AggregatorConfig, SiteUrl};
use hotsite_messaging::gateway::{ChannelConfig, RouteConfig};

use super::{
    hop, sms_message, Driver, FailoverTiming, Progress, Report, Rig, Settings, Traffic, AGGREGATOR,
    CALLBACK_SECRET,
};
use crate::clock;

const NAME: &str = "sms.lab.test";
const TTL: Duration = Duration::from_secs(1);
/// What "one TTL and a request" may take, at most, on loopback.
const REQUEST: Duration = Duration::from_millis(500);

pub(super) async fn run(
    settings: &Settings,
    dir: &Path,
    progress: &Progress,
) -> anyhow::Result<Report> {
    let a = IpAddr::from([127, 0, 0, 1]);
    let b = IpAddr::from([127, 0, 0, 2]);
    let mut lab = LabConfig::loopback(&[]);
    lab.seed = 7;
    lab.receipts.duplicate_probability = 0.1;
    lab.http = Some(HttpConfig::shared_port(&[("a", a), ("b", b)]));
    let mut dns = DnsConfig::loopback(&[(NAME, &[a])]);
    dns.ttl_s = TTL.as_secs() as u32;
    lab.dns = Some(dns);
    let rig = Rig::start(
        dir,
        lab,
        |lab| {
            let port = lab.http_site_addrs()[0].1.port();
            let url = SiteUrl {
                site: "sms".to_owned(),
                url: format!("http://{NAME}:{port}/sms/send"),
                health_url: None,
            };
            let mut config = AggregatorConfig::new(AGGREGATOR, vec![url], "hotsite", "secret");
            config.request_timeout = Duration::from_secs(1);
            config.resubmit_delay = Duration::from_secs(2);
            config.dns_server = lab.dns_addr();
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
    let port = rig.lab.http_site_addrs()[0].1.port();
    progress.line(&format!(
        "gateway on {}; one URL http://{NAME}:{port}/sms/send, DNS {} (TTL {} s): {NAME} → {a} (site a); site b on {b}",
        rig.api,
        rig.lab.dns_addr().map_or("?".to_owned(), |addr| addr.to_string()),
        TTL.as_secs()
    ));

    let mut traffic = Traffic::start(&rig.api, settings, 0.4, sms_message);
    let mut driver = Driver::new(settings, progress);
    let mut phase = 0;
    let mut text = format!("{NAME} → a");
    let mut moved_at: Option<Instant> = None;
    loop {
        let now = driver.tick(&mut traffic).await;
        if phase == 0 && traffic.reached(0.4) {
            rig.lab
                .set_dns(NAME, vec![b])
                .context("cannot move the DNS record")?;
            moved_at = Some(clock::now());
            progress.line(&format!(
                "{NAME} moved to {b} (site b); both sites stay up (SPEC M2)"
            ));
            text = format!("{NAME} → b");
            traffic.hold_at(0.6);
            phase = 1;
        } else if phase == 1
            && traffic.reached(0.6)
            && moved_at.is_some_and(|at| rig.first_at_site("b", at).is_some())
        {
            traffic.release();
            phase = 2;
        }
        let settled = rig.lab.stats().totals.unique + rig.failed().await?;
        if driver.end(now, &traffic, settled, phase == 2, &text) {
            break;
        }
    }
    let (mut report, arrivals) = rig
        .finish(
            settings,
            "one URL whose DNS record moves to the other site",
            traffic,
            &driver,
        )
        .await?;
    let moved = moved_at.unwrap_or_else(|| driver.start());
    let to_b = rig.first_at_site("b", moved);
    let limit = (TTL + REQUEST).as_secs_f64();
    report.failover(
        FailoverTiming::new(
            "DNS record moved",
            format!("{NAME}: {a} (site a) → {b} (site b)"),
        )
        .time("time_to_failover_s", to_b),
    );
    // The last message the old address got after the move: within the TTL.
    let from_us = moved.saturating_duration_since(rig.lab.epoch()).as_micros() as u64;
    let at_a: Vec<u64> = arrivals
        .iter()
        .filter(|(_, site, at)| site == "a" && *at >= from_us)
        .map(|(_, _, at)| *at)
        .collect();
    let last_at_a = at_a.iter().max().map(|at| (at - from_us) as f64 / 1e6);
    let mut by_site: BTreeMap<String, u64> = BTreeMap::new();
    for (_, site, _) in &arrivals {
        *by_site.entry(site.clone()).or_default() += 1;
    }
    report.extra("by_site", serde_json::to_value(by_site)?);
    report.extra("ttl_s", TTL.as_secs());
    report.extra("limit_s", limit);
    report.extra("within_limit", to_b.is_some_and(|s| s <= limit));
    report.extra("at_a_after_move", at_a.len() as u64);
    report.extra("last_at_a_after_move_s", last_at_a);
    report.extra("dns_queries", rig.lab.dns_queries(NAME));
    report.extra(
        "provider_dropped_repeats",
        rig.lab.stats().totals.duplicates_dropped,
    );
    rig.report_receipts(&mut report).await;
    report.note(format!(
        "time to failover: from the move to the first message accepted by b; the limit is one TTL ({} s) and a request ({} ms)",
        TTL.as_secs(),
        REQUEST.as_millis()
    ));
    rig.shutdown().await;
    Ok(report)
}
