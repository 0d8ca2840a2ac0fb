//! `graceful-shutdown`: an operator drains site a while an agent is on a
//! call (SPEC S7, with D6 and S2).
//!
//! Sites a and b are peered; three agents' phones (DNs 1001–1003) are
//! registered at a and alice, bob and carol are logged in there. The gateway
//! calls them through a (half of `--calls`). Then bob takes a long call
//! ([`LONG_HOLD`]), and while he is on it the operator drains a with
//! `POST /v1/site/drain`. The reject code is the default,
//! `shutdown_sip_reject_code = 603`: new INVITEs to a are declined. (The
//! other choice, 300–302, answers `302` with site b as Contact; the lab's
//! caller does not follow redirects, so the demo shows the 603.) What SPEC
//! S7 promises, checked:
//!
//! - the drain's own answer shows alice and carol already logged out, with
//!   reason `graceful_shutdown_logout` (idle agents: at once), and bob still
//!   busy;
//! - the gateway's next quarter of the calls, to a, all get 603;
//! - bob is logged out with the same reason when his call ends, not before;
//! - the drain is over once no call is left: the site's drain watch
//!   resolves (where `hotsite run` exits), and a stops.
//!
//! Meanwhile the desktops do what D6 says on `graceful_shutdown_logout`:
//! switch over. As soon as a logs an agent out, its phone re-registers at b
//! (single registration) and the agent logs in there; site b, whose probes
//! a now answers with 503, runs in single-site mode. The last quarter of the
//! calls goes to b and must complete there.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{json, Map, Value};

use super::report::FailoverTiming;
use super::site_report::{Phase, SiteReport};
use super::sites::{
    after, agent_of, agents_of, phase_limit, records, seconds, split_brain, DemoSite, Gateway,
    Pair, Phones, HOLD, OOS_CHECK, OOS_FORCE, TICK, WAIT,
};
use super::{Progress, Settings};
use crate::clock;

/// The agents' DNs: alice, bob and carol.
const DNS: [&str; 3] = ["1001", "1002", "1003"];
/// Bob's: he is on a call when the drain starts.
const BUSY_DN: &str = "1002";
/// How long bob's call lasts.
const LONG_HOLD: Duration = Duration::from_secs(3);
/// The logout reason of a drain (SPEC S7).
const REASON: &str = "graceful_shutdown_logout";

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
        "phones 1001-1003 registered at a (single registration); alice, bob and carol logged in at a, ready",
    );

    let rate = settings.rate;
    let before = settings.messages.div_ceil(2);
    let draining = (settings.messages - before).div_ceil(2);
    let later = settings.messages - before - draining;
    let to_a: Vec<(&DemoSite, &str)> = DNS.iter().map(|dn| (&pair.a, *dn)).collect();
    let to_b: Vec<(&DemoSite, &str)> = DNS.iter().map(|dn| (&pair.b, *dn)).collect();
    let start = clock::now();
    progress.line(&format!(
        "the gateway places {before} calls to a at {rate} calls/s"
    ));
    let before_calls = Gateway::start(&to_a, before, rate, HOLD)
        .await?
        .finish(phase_limit(before, rate, HOLD))
        .await;

    let long_call = Gateway::start(&[(&pair.a, BUSY_DN)], 1, 0, LONG_HOLD).await?;
    let bob_busy = wait_busy(&pair.a, &long_call).await?;
    if !bob_busy {
        bail!("bob's long call was not answered at site a");
    }
    progress.line(&format!(
        "bob is on a {} s call; the operator drains a (POST /v1/site/drain, reject code 603)",
        LONG_HOLD.as_secs()
    ));
    let drain_at = clock::now();
    let (drain_code, at_drain) = pair.a.drain().await?;
    let at_drain = agents_of(&at_drain);
    let watch = pair.a.drain_watch();
    let mut drained = tokio::spawn(async move {
        watch.wait().await;
        clock::now()
    });
    let gateway = Gateway::start(&to_a, draining, rate, HOLD).await?;
    progress.line(&format!(
        "draining: the gateway places {draining} calls to a (each must get 603); idle agents switch to b (D6)"
    ));

    // The desktops switch over on graceful_shutdown_logout (D6): the idle
    // agents now, bob once his call is over.
    let idle: Vec<&str> = DNS.iter().copied().filter(|dn| *dn != BUSY_DN).collect();
    let idle_at_b = switch(&pair.b, &phones, &idle).await?;
    let draining_calls = gateway.finish(phase_limit(draining, rate, HOLD)).await;
    let bob_logout = wait_logout(&pair.a, agent_of(BUSY_DN), drain_at, LONG_HOLD + WAIT).await;
    let bob_at_b = switch(&pair.b, &phones, &[BUSY_DN]).await?;
    let long_call = long_call.finish(WAIT).await;
    let drained_at = match tokio::time::timeout(WAIT, &mut drained).await {
        Ok(Ok(at)) => Some(at),
        _ => {
            drained.abort();
            None
        }
    };
    let drain_rejected = pair.a.calls("drain_rejected").await?;
    let a_status = pair.a.status().await?;
    progress.line(&format!(
        "bob logged out after {}, drain over after {}; site a stops",
        seconds(after(drain_at, bob_logout.as_ref().map(|(at, _)| *at))),
        seconds(after(drain_at, drained_at))
    ));
    pair.a.stop().await;

    progress.line(&format!("the gateway places {later} calls to b"));
    let after_calls = Gateway::start(&to_b, later, rate, HOLD)
        .await?
        .finish(phase_limit(later, rate, HOLD))
        .await;
    let traffic_end = clock::now();
    let b_single = pair.b.mode_since("single_site", drain_at);
    let at_b = pair.b.logged_in().await?;
    let idle_logouts: Vec<Option<(Instant, String)>> = idle
        .iter()
        .map(|dn| pair.a.logout_since(agent_of(dn), drain_at))
        .collect();
    let split = split_brain(&pair.a, &pair.b);
    phones.shutdown().await;
    pair.shutdown().await;
    progress.line("done");

    // When bob's call ended: the caller's BYE, `LONG_HOLD` after the answer.
    let bye_at = long_call.first().and_then(|p| {
        p.record
            .setup_time
            .map(|setup| p.record.started + setup + LONG_HOLD)
    });
    let phases = vec![
        Phase::new(
            "before the drain",
            "a",
            200,
            before,
            &records(&before_calls),
            false,
        ),
        Phase::new(
            "while a drains",
            "a",
            603,
            draining,
            &records(&draining_calls),
            false,
        ),
        Phase::new(
            "after the drain",
            "b",
            200,
            later,
            &records(&after_calls),
            false,
        ),
    ];
    let mut report = SiteReport::new(
        settings,
        "site a drained while an agent is on a call; agents and calls move to b",
        phases,
        traffic_end.saturating_duration_since(start),
    );
    let idle_logged_out_at = idle_logouts.iter().try_fold(drain_at, |last, logout| {
        logout.as_ref().map(|(at, _)| last.max(*at))
    });
    let last_at_b = [idle_at_b, bob_at_b]
        .into_iter()
        .try_fold(drain_at, |last, at| at.map(|at| last.max(at)));
    report.failover(
        FailoverTiming::new(
            "drained (POST /v1/site/drain; shutdown_sip_reject_code 603)",
            "site a",
        )
        .time(
            "idle_agents_logged_out_after_s",
            after(drain_at, idle_logged_out_at),
        )
        .time(
            "busy_agent_logged_out_after_s",
            after(drain_at, bob_logout.as_ref().map(|(at, _)| *at)),
        )
        .time("drain_completed_after_s", after(drain_at, drained_at))
        .time("peer_single_site_after_s", after(drain_at, b_single))
        .time(
            "idle_agents_logged_in_at_b_after_s",
            after(drain_at, idle_at_b),
        )
        .time("agents_logged_in_at_b_after_s", after(drain_at, last_at_b)),
    );
    report.must_hold("drain_accepted", drain_code == 202);
    report.must_hold(
        "idle_agents_logged_out_at_once",
        idle.iter().all(|dn| !at_drain.contains_key(agent_of(dn)))
            && idle_logouts
                .iter()
                .all(|logout| logout.as_ref().is_some_and(|(_, reason)| reason == REASON)),
    );
    let bob = agent_of(BUSY_DN);
    report.must_hold(
        "busy_agent_kept_until_call_end",
        at_drain.get(bob).is_some_and(|(_, state)| state == "busy"),
    );
    let bob_after_bye = match (&bob_logout, bye_at) {
        (Some((at, _)), Some(bye)) => Some(at.saturating_duration_since(bye).as_secs_f64()),
        _ => None,
    };
    report.extra("busy_agent_logged_out_after_call_end_s", bob_after_bye);
    report.must_hold(
        "busy_agent_logged_out_when_call_ended",
        match (&bob_logout, bye_at) {
            // Logged out by the BYE that ended the call, not before it.
            (Some((at, reason)), Some(bye)) => reason == REASON && *at + TICK >= bye,
            _ => false,
        },
    );
    report.must_hold(
        "drain_completed",
        match (drained_at, &bob_logout) {
            (Some(drained), Some((logout, _))) => drained >= *logout,
            _ => false,
        },
    );
    report.extra("a_drain_rejected", drain_rejected);
    report.extra(
        "a_calls_active_at_stop",
        a_status["calls"]["active"].clone(),
    );
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
    report.note(format!(
        "shutdown_sip_reject_code 603 (the default): new INVITEs to a draining site are declined; 300-302 would answer 302 with site b as Contact, which the lab's caller does not follow; oos_check {} ms, oos_force {} ms; bob's call lasts {} s, the others {} ms",
        OOS_CHECK.as_millis(),
        OOS_FORCE.as_millis(),
        LONG_HOLD.as_secs(),
        HOLD.as_millis()
    ));
    report.note(
        "the desktops' side is scripted (D6): on graceful_shutdown_logout the agent's phone re-registers at b and the agent logs in there; the gateway sends calls to b once a has stopped",
    );
    if !split.is_empty() {
        report.note(format!(
            "logged in at both sites at once: {}",
            split.join(", ")
        ));
    }
    Ok(report)
}

/// Waits (up to [`WAIT`]) until the long call is answered and its agent
/// shows busy at `site`.
async fn wait_busy(site: &DemoSite, long_call: &Gateway) -> anyhow::Result<bool> {
    let until = clock::now() + WAIT;
    while clock::now() < until {
        if long_call.answered() >= 1 {
            let agents = site.logged_in().await?;
            if agents
                .get(agent_of(BUSY_DN))
                .is_some_and(|(_, state)| state == "busy")
            {
                return Ok(true);
            }
        }
        tokio::time::sleep(TICK).await;
    }
    Ok(false)
}

/// Waits (up to `limit`) for `agent`'s logout at `site` after `since`.
async fn wait_logout(
    site: &DemoSite,
    agent: &str,
    since: Instant,
    limit: Duration,
) -> Option<(Instant, String)> {
    let until = clock::now() + limit;
    loop {
        if let Some(logout) = site.logout_since(agent, since) {
            return Some(logout);
        }
        if clock::now() >= until {
            return None;
        }
        tokio::time::sleep(TICK).await;
    }
}

/// The desktops of `dns` switch over to `site` (D6): each phone registers
/// there alone, and once it is, the agent logs in. When the last did, or
/// `None` if one did not.
async fn switch(site: &DemoSite, phones: &Phones, dns: &[&str]) -> anyhow::Result<Option<Instant>> {
    phones.move_to(dns, site.sip)?;
    if site.wait_in_service(dns).await?.is_none() {
        return Ok(None);
    }
    let mut last = Some(clock::now());
    for dn in dns {
        let at = site.log_in(agent_of(dn), dn).await?;
        last = last.zip(at).map(|(last, at)| last.max(at));
    }
    Ok(last)
}
