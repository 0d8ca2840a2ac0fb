//! `link-failure`: the inter-site link is cut while both sites stay up, then
//! restored (SPEC S4, with S1, S3, S6, S8).
//!
//! Four agents' phones (DNs 1001–1004) are registered at both sites (dual
//! registration, SPEC S8); alice and bob are logged in at a, carol and dave
//! at b; both sites run `dr_forward = "no-agent"` (SPEC S6). The gateway
//! calls every DN through both sites. While peered, a call to a for carol's
//! DN goes over the link to b, where carol is (business-continuity
//! forwarding, SPEC S1), and the other way round.
//!
//! Three phases of a third of `--calls` each: peered, cut, restored. At
//! each boundary the gateway waits for its calls to end and places no new
//! one until the sites have seen the change: a call forwarded in the instant
//! between the cut and its detection would wait `invite_timeout` for an
//! answer that cannot come (the detection window, which no promise covers).
//! After the cut each site hears nothing from its peer and goes to
//! single-site mode within `oos_force` (plus one `oos_check`): no
//! forwarding, every call delivered to the DN's phone registered there, no
//! agent moved or logged out, so no agent is ever at two sites (SPEC S3,
//! S4: no split brain). After the restore both peer again and forwarding
//! resumes.
//!
//! The report: per site, how long from the cut until it was in single-site
//! mode, and from the restore until it was peered again; the calls forwarded
//! in each phase (from the sites' `calls.forwarded` counters) and the
//! datagrams the link relayed while cut; and which site delivered each
//! call (from the phones' INVITE logs). It fails if a call did not
//! complete, a site missed the detection limit or did not peer again, a
//! call was forwarded or delivered across while cut, anything crossed the
//! cut link, or an agent was logged in at both sites at once.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::bail;
use hotsite_lab::LinkStats;
use serde_json::json;

use super::report::FailoverTiming;
use super::site_report::{Phase, SiteReport};
use super::sites::{
    after, agent_of, phase_limit, records, seconds, split_brain, DemoSite, Gateway, Pair, Phones,
    Placed, HOLD, OOS_CHECK, OOS_FORCE, PEER_RISE,
};
use super::{Progress, Settings};
use crate::clock;

/// The agents' DNs: alice and bob work at a, carol and dave at b.
const DNS: [&str; 4] = ["1001", "1002", "1003", "1004"];

/// The site where `dn`'s agent logs in.
fn home(dn: &str) -> &'static str {
    if matches!(dn, "1001" | "1002") {
        "a"
    } else {
        "b"
    }
}

pub(super) async fn run(settings: &Settings, progress: &Progress) -> anyhow::Result<SiteReport> {
    let pair = Pair::start(&DNS, "no-agent", progress).await?;
    let phones = Phones::start(&DNS, &[pair.a.sip, pair.b.sip]).await?;
    for site in [&pair.a, &pair.b] {
        if site.wait_in_service(&DNS).await?.is_none() {
            bail!("the phones did not register at site {}", site.name);
        }
    }
    for dn in DNS {
        let site = if home(dn) == "a" { &pair.a } else { &pair.b };
        if site.log_in(agent_of(dn), dn).await?.is_none() {
            bail!("{} could not log in at site {}", agent_of(dn), site.name);
        }
    }
    progress.line(
        "phones 1001-1004 registered at both sites (dual registration); alice and bob logged in at a, carol and dave at b; dr_forward no-agent",
    );

    let rate = settings.rate;
    let third = |phase: u64| settings.messages / 3 + u64::from(phase < settings.messages % 3);
    let targets: Vec<(&DemoSite, &str)> = [&pair.a, &pair.b]
        .into_iter()
        .flat_map(|site| DNS.iter().map(move |dn| (site, *dn)))
        .collect();
    let phase = |calls: u64| {
        let targets = &targets;
        async move {
            let gateway = Gateway::start(targets, calls, rate, HOLD).await?;
            anyhow::Ok(gateway.finish(phase_limit(calls, rate, HOLD)).await)
        }
    };
    let forwarded = || async {
        Ok::<_, anyhow::Error>([
            pair.a.calls("forwarded").await?,
            pair.b.calls("forwarded").await?,
        ])
    };

    let start = clock::now();
    progress.line(&format!(
        "peered: the gateway places {} calls to both sites at {rate} calls/s; calls for the other site's agents are forwarded over the link",
        third(0)
    ));
    let forwarded_0 = forwarded().await?;
    let peered_calls = phase(third(0)).await?;
    let forwarded_1 = forwarded().await?;

    let cut_at = clock::now();
    pair.link.cut();
    progress.line("link cut: both sites up, each stops hearing the other (SPEC S4)");
    let detected = pair.wait_both("single_site", cut_at).await;
    let link_at_detection = pair.link.stats();
    let forwarded_2 = forwarded().await?;
    progress.line(&format!(
        "single-site mode: a after {}, b after {}; the gateway places {} calls to both sites",
        seconds(after(cut_at, detected[0])),
        seconds(after(cut_at, detected[1])),
        third(1)
    ));
    let cut_calls = phase(third(1)).await?;
    let forwarded_3 = forwarded().await?;
    let agents_while_cut = [pair.a.logged_in().await?, pair.b.logged_in().await?];
    let link_at_restore = pair.link.stats();

    let restore_at = clock::now();
    pair.link.restore()?;
    let peered = pair.wait_both("peered", restore_at).await;
    progress.line(&format!(
        "link restored: peered again, a after {}, b after {}; the gateway places {} calls to both sites",
        seconds(after(restore_at, peered[0])),
        seconds(after(restore_at, peered[1])),
        third(2)
    ));
    let restored_calls = phase(third(2)).await?;
    let forwarded_4 = forwarded().await?;
    let traffic_end = clock::now();
    let delivered = phones.delivered_by();
    let sites = HashMap::from([(pair.a.sip, "a"), (pair.b.sip, "b")]);
    let split = split_brain(&pair.a, &pair.b);
    phones.shutdown().await;
    pair.shutdown().await;
    progress.line("done");

    let crossed = |placed: &[Placed]| crossed(placed, &delivered, &sites);
    let moved = |from: [u64; 2], to: [u64; 2]| (to[0] - from[0]) + (to[1] - from[1]);
    let limit = OOS_FORCE + OOS_CHECK;
    let within =
        |at: Option<Instant>| at.is_some_and(|at| at.saturating_duration_since(cut_at) <= limit);
    let phases = vec![
        Phase::new(
            "peered",
            "a and b",
            200,
            third(0),
            &records(&peered_calls),
            false,
        ),
        Phase::new(
            "link cut",
            "a and b",
            200,
            third(1),
            &records(&cut_calls),
            false,
        ),
        Phase::new(
            "link restored",
            "a and b",
            200,
            third(2),
            &records(&restored_calls),
            false,
        ),
    ];
    let mut report = SiteReport::new(
        settings,
        "calls through two peered sites while the link between them is cut, then restored",
        phases,
        traffic_end.saturating_duration_since(start),
    );
    for (index, name) in ["a", "b"].into_iter().enumerate() {
        report.failover(
            FailoverTiming::new("inter-site link cut, both sites up", format!("site {name}"))
                .time("detected_after_s", after(cut_at, detected[index]))
                .time("peered_again_after_s", after(restore_at, peered[index])),
        );
    }
    report.extra("detection_limit_s", limit.as_secs_f64());
    report.must_hold(
        "detected_within_limit",
        within(detected[0]) && within(detected[1]),
    );
    report.must_hold("peered_again", peered.iter().all(Option::is_some));
    report.extra(
        "forwarded",
        json!({
            "peered": moved(forwarded_0, forwarded_1),
            "cut": moved(forwarded_2, forwarded_3),
            "restored": moved(forwarded_3, forwarded_4),
        }),
    );
    report.must_be_zero("calls_forwarded_while_cut", moved(forwarded_1, forwarded_3));
    report.extra(
        "delivered_by_other_site",
        json!({
            "peered": crossed(&peered_calls),
            "cut": crossed(&cut_calls),
            "restored": crossed(&restored_calls),
        }),
    );
    report.must_be_zero("delivered_by_other_site_while_cut", crossed(&cut_calls));
    let relayed =
        |stats: &LinkStats| stats.a_to_b.datagrams_relayed + stats.b_to_a.datagrams_relayed;
    let dropped =
        |stats: &LinkStats| stats.a_to_b.datagrams_dropped + stats.b_to_a.datagrams_dropped;
    report.must_be_zero(
        "datagrams_relayed_while_cut",
        relayed(&link_at_restore) - relayed(&link_at_detection),
    );
    report.extra("datagrams_dropped_while_cut", dropped(&link_at_restore));
    let agents: BTreeMap<&str, Vec<String>> = [("a", 0), ("b", 1)]
        .into_iter()
        .map(|(name, index)| (name, agents_while_cut[index].keys().cloned().collect()))
        .collect();
    report.extra("agents_while_cut", json!(agents));
    report.must_be_zero("agents_logged_in_at_two_sites", split.len() as u64);
    report.note(format!(
        "oos_check {} ms, oos_force {} ms, peer_rise {PEER_RISE}; detected: from the cut to single-site mode, limit oos_force + one oos_check; peered again: from the restore",
        OOS_CHECK.as_millis(),
        OOS_FORCE.as_millis()
    ));
    report.note(
        "the gateway places no call from the cut until both sites are in single-site mode: one forwarded in that window would wait invite_timeout and fail (the detection window); datagrams relayed while cut are counted from the detection on",
    );
    report.note(
        "delivered by other site: calls whose phone got the INVITE from the site the call was not sent to (forwarded: SPEC S1); while cut, every call is delivered where it arrived (SPEC S4)",
    );
    if !split.is_empty() {
        report.note(format!(
            "logged in at both sites at once: {}",
            split.join(", ")
        ));
    }
    Ok(report)
}

/// The answered calls of `placed` whose phone got the INVITE from the other
/// site than the one the call was sent to (forwarded over the link).
fn crossed(
    placed: &[Placed],
    delivered: &HashMap<String, SocketAddr>,
    sites: &HashMap<SocketAddr, &str>,
) -> u64 {
    placed
        .iter()
        .filter(|p| p.record.answered())
        .filter(|p| {
            delivered
                .get(&p.record.call_id)
                .and_then(|from| sites.get(from))
                .is_some_and(|site| *site != p.site)
        })
        .count() as u64
}
