//! Prober tests in simulated time (SPEC V2): a scripted peer answers, delays or
//! ignores each OPTIONS, and the health changes come out as a transcript.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::*;
use crate::message::{parse, response_to, Message, Request};

#[allow(clippy::disallowed_methods)] // test epoch: only differences matter
fn epoch() -> Instant {
    Instant::now()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn config() -> ProberConfig {
    let mut config = ProberConfig::new(
        "192.0.2.10:5060",
        Uri::parse("sip:hotsite@site-a.example.com").unwrap(),
    );
    config.interval = secs(10);
    config.timeout = secs(2);
    config
}

fn targets(names: &[&str]) -> Vec<(Target, Uri)> {
    names
        .iter()
        .map(|name| {
            (
                Target::new("site-a", name),
                Uri::parse(format!("sip:{name}.example.net:5060")).unwrap(),
            )
        })
        .collect()
}

/// What the scripted peer does with one OPTIONS: answer with a status after a
/// delay, or ignore it.
type World<'a> = dyn FnMut(TargetId, &Request, Duration) -> Option<(u16, Duration)> + 'a;

/// Runs the prober until `until` against `world`; returns the health changes as
/// `<seconds> <target> <from> -> <to> (<cause>)` lines, and every OPTIONS sent.
fn run(
    prober: &mut Prober,
    start: Instant,
    until: Duration,
    world: &mut World<'_>,
) -> (String, Vec<(Duration, TargetId, Request)>) {
    let mut transcript = String::new();
    let mut sent = Vec::new();
    let mut pending: BTreeMap<(Instant, u64), Response> = BTreeMap::new();
    let mut seq = 0;
    let mut now = start;
    loop {
        while let Some(t) = prober.poll_transmit() {
            let Ok(Message::Request(request)) = parse(&t.bytes) else {
                panic!("prober sent something that is not a request");
            };
            if let Some((status, delay)) = world(t.target, &request, now - start) {
                let response =
                    response_to(&request, StatusCode::new(status).unwrap(), Some("peer"));
                seq += 1;
                pending.insert((now + delay, seq), response);
            }
            sent.push((now - start, t.target, request));
        }
        while let Some(event) = prober.poll_event() {
            let EventKind::Health { from, to, cause } = &event.kind else {
                panic!("unexpected {event:?}");
            };
            let at = (event.at - start).as_secs_f64();
            writeln!(
                transcript,
                "{at} {} {from:?} -> {to:?} ({cause})",
                event.target.name
            )
            .unwrap();
        }
        let next_response = pending.keys().next().map(|(at, _)| *at);
        let next = [prober.poll_timeout(), next_response]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(at) if at - start <= until => now = at.max(now),
            _ => return (transcript, sent),
        }
        while let Some(entry) = pending.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let response = entry.remove();
            prober.handle_response(now, &response);
        }
        prober.handle_timeout(now);
    }
}

/// SPEC V2: a trunk that stops answering goes out of service after `fall`
/// consecutive failed probes and comes back after `rise` consecutive answers;
/// each change carries its cause and time.
#[test]
fn failure_and_recovery_thresholds() {
    let start = epoch();
    let mut prober = Prober::new(config(), targets(&["trunk-a"]), 1, start);
    let mut world = |_: TargetId, _: &Request, at: Duration| {
        let silent = at >= secs(25) && at < secs(65);
        (!silent).then_some((200, Duration::from_millis(20)))
    };
    let (transcript, _) = run(&mut prober, start, secs(100), &mut world);
    assert_eq!(
        transcript.trim(),
        "\
52 trunk-a Up -> Down (no answer to OPTIONS within 2s (3 consecutive failures))
70.02 trunk-a Down -> Probing (OPTIONS answered 200 OK in 20 ms (1 consecutive successes))
80.02 trunk-a Probing -> Up (OPTIONS answered 200 OK in 20 ms (2 consecutive successes))"
    );
    assert_eq!(prober.health(0), Some(HealthState::Up));
}

/// SPEC V2: by default any final answer means the peer is alive; configured
/// "only 2xx", a 503 counts as a failure.
#[test]
fn what_counts_as_alive_is_configurable() {
    let start = epoch();
    let mut busy = |_: TargetId, _: &Request, _: Duration| Some((503, Duration::from_millis(5)));

    let mut prober = Prober::new(config(), targets(&["trunk-a"]), 1, start);
    let (transcript, _) = run(&mut prober, start, secs(60), &mut busy);
    assert_eq!(transcript, "", "503 is an answer: still up");
    assert!(matches!(
        prober.status()[0].last,
        Some(ProbeOutcome::Alive {
            status: StatusCode::SERVICE_UNAVAILABLE,
            ..
        })
    ));

    let mut strict = config();
    strict.alive = AliveWhen::Success;
    let mut prober = Prober::new(strict, targets(&["trunk-a"]), 1, start);
    let (transcript, _) = run(&mut prober, start, secs(60), &mut busy);
    assert_eq!(
        transcript.trim(),
        "20.005 trunk-a Up -> Down (OPTIONS answered 503 Service Unavailable (only 2xx counts as alive) (3 consecutive failures))"
    );
}

/// §17.1.2.2 inside a probe: a lost OPTIONS is retransmitted after T1 with the
/// same branch, and the answer to the retransmission counts.
#[test]
fn lost_probe_is_retransmitted_within_the_timeout() {
    let start = epoch();
    let mut prober = Prober::new(config(), targets(&["trunk-a"]), 1, start);
    let mut first_lost = |_: TargetId, _: &Request, at: Duration| {
        (at > Duration::ZERO).then_some((200, Duration::from_millis(10)))
    };
    let (transcript, sent) = run(&mut prober, start, secs(5), &mut first_lost);
    assert_eq!(transcript, "");
    let times: Vec<f64> = sent.iter().map(|(at, _, _)| at.as_secs_f64()).collect();
    assert_eq!(times, [0.0, 0.5]);
    assert_eq!(sent[0].2, sent[1].2, "a retransmission is the same request");
    assert_eq!(
        prober.status()[0].last,
        Some(ProbeOutcome::Alive {
            status: StatusCode::OK,
            rtt: Duration::from_millis(510)
        })
    );
}

/// The probes themselves: OPTIONS to the target's URI, one Call-ID per target,
/// CSeq counting up, a fresh RFC 3261 branch each time.
#[test]
fn probe_requests() {
    let start = epoch();
    let mut prober = Prober::new(config(), targets(&["trunk-a", "trunk-b"]), 9, start);
    let mut ok = |_: TargetId, _: &Request, _: Duration| Some((200, Duration::ZERO));
    let (_, sent) = run(&mut prober, start, secs(25), &mut ok);
    let a: Vec<&Request> = sent
        .iter()
        .filter(|(_, t, _)| *t == 0)
        .map(|(_, _, r)| r)
        .collect();
    assert_eq!(a.len(), 3);
    assert!(a.iter().all(|r| r.method == Method::Options));
    assert_eq!(a[0].uri.to_string(), "sip:trunk-a.example.net:5060");
    let seqs: Vec<u32> = a.iter().map(|r| r.headers.cseq().unwrap().seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert!(a
        .iter()
        .all(|r| r.headers.call_id() == a[0].headers.call_id()));
    let branches: std::collections::HashSet<_> = a.iter().map(|r| r.branch().unwrap()).collect();
    assert_eq!(branches.len(), 3);
    assert!(a
        .iter()
        .all(|r| r.headers.top_via().unwrap().has_rfc3261_branch()));
    let b = sent.iter().find(|(_, t, _)| *t == 1).unwrap();
    assert_ne!(b.2.headers.call_id(), a[0].headers.call_id());
    assert_eq!(prober.status()[0].probes, 3);
}

/// Targets are independent; only those up are usable (SPEC V1).
#[test]
fn targets_are_independent() {
    let start = epoch();
    let mut prober = Prober::new(config(), targets(&["trunk-a", "trunk-b"]), 3, start);
    let mut b_dead =
        |t: TargetId, _: &Request, _: Duration| (t == 0).then_some((200, Duration::ZERO));
    let (transcript, _) = run(&mut prober, start, secs(30), &mut b_dead);
    assert_eq!(
        transcript.trim(),
        "22 trunk-b Up -> Down (no answer to OPTIONS within 2s (3 consecutive failures))"
    );
    assert_eq!(prober.usable().collect::<Vec<_>>(), [0]);
}

/// SPEC V2, §17.1.4: transport errors fail the probe at once; §17.1.3: late
/// answers and strangers' responses are not claimed.
#[test]
fn transport_errors_and_unclaimed_responses() {
    let start = epoch();
    let mut c = config();
    c.health.fall = 1;
    let mut prober = Prober::new(c, targets(&["trunk-a"]), 1, start);
    let first = prober.poll_transmit().unwrap();
    prober.handle_transport_error(start + Duration::from_millis(1), 0);
    let event = prober.poll_event().unwrap();
    assert!(matches!(
        &event.kind,
        EventKind::Health { to: HealthState::Down, cause, .. } if cause.starts_with("transport error")
    ));

    let Ok(Message::Request(probe)) = parse(&first.bytes) else {
        unreachable!()
    };
    let late = response_to(&probe, StatusCode::OK, None);
    assert!(
        !prober.handle_response(start + secs(3), &late),
        "probe is over"
    );

    // The next probe: an answer after the timeout does not count either.
    prober.handle_timeout(start + secs(10));
    let Ok(Message::Request(second)) = parse(&prober.poll_transmit().unwrap().bytes) else {
        unreachable!()
    };
    prober.handle_timeout(start + secs(12));
    assert!(matches!(
        prober.status()[0].last,
        Some(ProbeOutcome::NoAnswer)
    ));
    assert!(!prober.handle_response(
        start + secs(13),
        &response_to(&second, StatusCode::OK, None)
    ));

    let mut stranger = late.clone();
    stranger.headers.pop_via();
    stranger
        .headers
        .push_via("SIP/2.0/UDP elsewhere.example.com;branch=z9hG4bKother");
    assert!(!prober.handle_response(start + secs(13), &stranger));
}

/// SPEC V2: a target may start out of service and need `rise` answers first.
#[test]
fn initial_state_down_needs_rise_successes() {
    let start = epoch();
    let mut c = config();
    c.initial = HealthState::Down;
    let mut prober = Prober::new(c, targets(&["trunk-a"]), 1, start);
    assert_eq!(prober.usable().count(), 0);
    let mut ok = |_: TargetId, _: &Request, _: Duration| Some((200, Duration::ZERO));
    let (transcript, _) = run(&mut prober, start, secs(15), &mut ok);
    assert_eq!(
        transcript.trim(),
        "\
0 trunk-a Down -> Probing (OPTIONS answered 200 OK in 0 ms (1 consecutive successes))
10 trunk-a Probing -> Up (OPTIONS answered 200 OK in 0 ms (2 consecutive successes))"
    );
}

/// SPEC V2: interval, timeout and thresholds are checked; errors name the key.
#[test]
fn config_validation_names_the_key() {
    let mut c = config();
    assert_eq!(c.validate(), Ok(()));
    c.timeout = secs(11);
    assert_eq!(c.validate().unwrap_err().key(), "timeout");
    c.timeout = secs(1);
    c.interval = Duration::ZERO;
    assert_eq!(c.validate().unwrap_err().key(), "interval");
    c.interval = secs(10);
    c.health.fall = 0;
    assert_eq!(c.validate().unwrap_err().key(), "thresholds");
}
