//! `site-failure`: site a of a peer pair dies while calls go through it
//! (SPEC S2, with S1, S3, S8).
//!
//! Sites a and b are peered through the lab's inter-site link ([`Pair`]).
//! Three agents' phones (DNs 1001–1003) are registered at a only (single
//! registration) and alice, bob and carol are logged in there; the media
//! gateway calls the DNs through a: the first half of `--calls` at
//! `--rate`. Once it has placed them, site a is killed (its host stopped:
//! API, SIP socket and task gone) with the last calls still up there, which
//! SPEC S2 lets be lost. Then what the platform does, scripted here and at
//! once: the phones re-register at b, the desktops log the agents in at b,
//! and the gateway sends the second half of the calls to b. Site b
//! meanwhile stops hearing a's answers to its probes and goes to
//! single-site mode within `oos_force` (SPEC S3).
//!
//! The report: calls completed before the kill (at a) and after the switch
//! (at b), the calls cut off by the kill, where each agent is logged in at
//! the end, and how long from the kill until b noticed (single-site mode),
//! the phones were registered at b, the agents logged in there, and the
//! first call was completed at b (the time to recovery). It fails if a call
//! to b after the switch did not complete there, an agent did not get to b,
//! or an agent was logged in at both sites at once.

use std::time::Duration;

use anyhow::bail;
use serde_json::{json, Map, Value};

use super::report::FailoverTiming;
use super::site_report::{Phase, SiteReport};
use super::sites::{
    after, agent_of, first_answer, phase_limit, records, seconds, split_brain, DemoSite, Gateway,
    Pair, Phones, HOLD, OOS_CHECK, OOS_FORCE,
};
use super::{Progress, Settings};
use crate::clock;

/// The agents' DNs: alice, bob and carol.
const DNS: [&str; 3] = ["1001", "1002", "1003"];

pub(super) async fn run(settings: &Settings, progress: &Progress) -> anyhow::Result<SiteReport> {
    let mut pair = Pair::start(&DNS, "off", progress).await?;
    let phones = Phones::start(&DNS, &[pair.a.sip]).await?;
    if pair.a.wait_in_service(&DNS).await?.is_none() {
        bail!("the phones did not register at site a");
    }
    for dn in DNS {
        if pair.a.log_in(agent_of(dn), dn).await?.is_none() {
            bail!("{} could not log in at site a", agent_of(dn));
        }
    }
    progress.line(
        "phones 1001-1003 registered at a only (single registration); alice, bob and carol logged in at a, ready",
    );

    let rate = settings.rate;
    let before = settings.messages.div_ceil(2);
    let later = settings.messages - before;
    let start = clock::now();
    let to_a: Vec<(&DemoSite, &str)> = DNS.iter().map(|dn| (&pair.a, *dn)).collect();
    let gateway = Gateway::start(&to_a, before, rate, HOLD).await?;
    progress.line(&format!(
        "the gateway places {before} calls to a at {rate} calls/s, {} ms each; a dies once they are placed",
        HOLD.as_millis()
    ));
    gateway
        .wait_placed(phase_limit(before, rate, Duration::ZERO))
        .await;

    let kill_at = clock::now();
    pair.a.stop().await;
    // The gateway gives up on a: calls still up there are cut off.
    let before_calls = gateway.stop().await;
    let cut_off = before_calls.iter().filter(|p| !p.record.finished).count();
    progress.line(&format!(
        "site a killed with {cut_off} calls in progress; the phones re-register at b, the agents log in at b, the gateway calls b (SPEC S2)"
    ));
    phones.move_to(&DNS, pair.b.sip)?;
    let registered_at = pair.b.wait_in_service(&DNS).await?;
    let mut logged_in_at = Some(kill_at);
    for dn in DNS {
        let at = pair.b.log_in(agent_of(dn), dn).await?;
        logged_in_at = logged_in_at.zip(at).map(|(last, at)| last.max(at));
    }
    progress.line(&format!(
        "at b: phones registered after {}, agents logged in after {}",
        seconds(after(kill_at, registered_at)),
        seconds(after(kill_at, logged_in_at))
    ));

    let to_b: Vec<(&DemoSite, &str)> = DNS.iter().map(|dn| (&pair.b, *dn)).collect();
    let gateway = Gateway::start(&to_b, later, rate, HOLD).await?;
    progress.line(&format!("the gateway places {later} calls to b"));
    let after_calls = gateway.finish(phase_limit(later, rate, HOLD)).await;
    let traffic_end = clock::now();
    // Within oos_force of the kill: long past by now, unless something is wrong.
    let b_single = pair
        .b
        .wait_mode("single_site", kill_at, OOS_FORCE + OOS_CHECK)
        .await;
    let at_b = pair.b.logged_in().await?;
    let b_status = pair.b.status().await?;
    let delivered = phones.delivered_by();
    let b_sip = pair.b.sip;
    let split = split_brain(&pair.a, &pair.b);
    phones.shutdown().await;
    pair.shutdown().await;
    progress.line("done");

    let delivered_elsewhere = after_calls
        .iter()
        .filter(|p| p.record.answered())
        .filter(|p| delivered.get(&p.record.call_id) != Some(&b_sip))
        .count() as u64;
    let phases = vec![
        Phase::new(
            "before the kill",
            "a",
            200,
            before,
            &records(&before_calls),
            true,
        ),
        Phase::new(
            "after the switch",
            "b",
            200,
            later,
            &records(&after_calls),
            false,
        ),
    ];
    let mut report = SiteReport::new(
        settings,
        "calls through site a, which dies; phones, agents and calls move to b",
        phases,
        traffic_end.saturating_duration_since(start),
    );
    report.failover(
        FailoverTiming::new("killed (API, SIP socket and task stopped)", "site a")
            .time("detected_after_s", after(kill_at, b_single))
            .time(
                "phones_registered_at_b_after_s",
                after(kill_at, registered_at),
            )
            .time(
                "agents_logged_in_at_b_after_s",
                after(kill_at, logged_in_at),
            )
            .time(
                "recovered_after_s",
                after(kill_at, first_answer(&after_calls)),
            ),
    );
    // SPEC S4: out of service after oos_force; one oos_check of margin.
    let limit = OOS_FORCE + OOS_CHECK;
    report.extra("detection_limit_s", limit.as_secs_f64());
    report.must_hold(
        "detected_within_limit",
        b_single.is_some_and(|at| at.saturating_duration_since(kill_at) <= limit),
    );
    report.extra(
        "completed_before_kill",
        before_calls.iter().filter(|p| p.record.answered()).count() as u64,
    );
    report.extra("in_progress_at_kill", cut_off as u64);
    report.extra(
        "completed_after_switch",
        after_calls.iter().filter(|p| p.record.answered()).count() as u64,
    );
    report.must_be_zero("calls_after_switch_not_delivered_by_b", delivered_elsewhere);
    let mut sites = Map::new();
    for dn in DNS {
        let agent = agent_of(dn);
        let site = if at_b.contains_key(agent) {
            "b"
        } else {
            "none"
        };
        sites.insert(agent.to_owned(), json!(site));
    }
    report.extra("agents_site", Value::Object(sites));
    report.must_hold(
        "every_agent_logged_in_at_b",
        DNS.iter().all(|dn| at_b.contains_key(agent_of(dn))),
    );
    report.must_be_zero("agents_logged_in_at_two_sites", split.len() as u64);
    report.extra("b_mode_at_end", b_status["mode"].clone());
    report.note(format!(
        "oos_check {} ms, oos_force {} ms; each call lasts {} ms; detected: from the kill to b in single-site mode; recovered: to the first call completed at b",
        OOS_CHECK.as_millis(),
        OOS_FORCE.as_millis(),
        HOLD.as_millis()
    ));
    report.note(
        "the platform's side is scripted and immediate: the phones switch registrar at the kill (a real phone notices when a REGISTER refresh fails), the desktops log in at b as soon as the phones are registered there (D4: after site-timeout), and the gateway sends new calls to b once they have",
    );
    report.note(
        "calls in progress at a when it died are cut off (SPEC S2: they may be lost); the gateway stops waiting for them",
    );
    if !split.is_empty() {
        report.note(format!(
            "logged in at both sites at once: {}",
            split.join(", ")
        ));
    }
    Ok(report)
}
