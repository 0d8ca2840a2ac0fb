//! The cap on calls and the state shrinking back after a burst (DESIGN.md
//! invariant 6; issue 10): a flood is refused with a clear 503, not held.

use hotsite_sip::message::{ack_for, cancel_for};

use super::*;

/// `config` with a cap of `max_calls` calls.
fn capped(max_calls: usize) -> ProxyConfig {
    ProxyConfig {
        max_calls,
        ..config()
    }
}

/// Everything the proxy holds, for "nothing was kept".
fn held(sim: &Sim) -> (usize, usize, usize, usize) {
    let s = sim.proxy.sizes();
    (s.calls, s.branches, s.tombstones, s.timers)
}

/// SPEC V1 (the calls in progress still fail over) with the cap: at
/// `max_calls` the next INVITE is answered 503 with Retry-After at once, no
/// trunk sees it, and nothing is kept: its retransmission is refused again,
/// the ACK for the 503 and a CANCEL for it leave no state either.
#[test]
fn at_the_cap_the_next_invite_gets_503_with_retry_after_and_no_trunk_sees_it() {
    let mut sim = Sim::new(capped(3));
    for n in 0..3 {
        let sent = sim.dial(&format!("cap-{n}"));
        assert_eq!(sent.statuses(CALLER), [100]);
        assert_eq!(sent.methods(TRUNK1), ["INVITE"]);
    }
    let before = held(&sim);
    assert_eq!(before.0, 3);

    let sent = sim.dial("cap-over");
    let refused = sent.response(CALLER);
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        refused
            .headers
            .value(HeaderName::RetryAfter)
            .map(|v| &v[..]),
        Some(&b"5"[..])
    );
    let warning =
        String::from_utf8_lossy(refused.headers.value(HeaderName::Warning).unwrap()).into_owned();
    assert!(warning.contains("max_calls 3"), "{warning}");
    assert!(sent.to(TRUNK1).is_empty() && sent.to(TRUNK2).is_empty());
    assert_eq!(held(&sim), before, "a refused INVITE leaves nothing");
    assert_eq!(sim.proxy.stats().refused_over_capacity, 1);
    assert_eq!(sim.proxy.stats().calls, 3);

    // Its retransmission: refused again the same way, still nothing kept.
    let again = sim.dial("cap-over");
    assert_eq!(again.statuses(CALLER), [503]);
    assert!(again.to(TRUNK1).is_empty());
    assert_eq!(held(&sim), before);
    assert_eq!(sim.proxy.stats().refused_over_capacity, 2);

    // The caller's ACK for the 503 and a CANCEL: no call, no state.
    let request = invite("cap-over", "z9hG4bKcap-over", "+4420");
    let ack = ack_for(&request, &refused).unwrap();
    assert!(sim.send_request(CALLER, &ack).is_empty());
    let cancel = cancel_for(&request).unwrap();
    assert_eq!(sim.send_request(CALLER, &cancel).statuses(CALLER), [481]);
    assert_eq!(held(&sim), before);

    // Refusals do not stop the calls in progress from failing over.
    let sent = sim.run_until(Duration::from_secs(2));
    assert_eq!(sent.methods(TRUNK2), ["INVITE", "INVITE", "INVITE"]);
}

/// When a call ends its place is free: the next INVITE is admitted and
/// reaches the trunk (SPEC V1). A 2xx ends a call at once (its state goes,
/// RFC 6026).
#[test]
fn when_a_call_ends_a_new_one_is_admitted() {
    let mut sim = Sim::new(capped(2));
    let first = sim.dial("end-1").request(TRUNK1);
    sim.dial("end-2");
    assert_eq!(sim.dial("end-3").statuses(CALLER), [503]);

    let ok = answer(&first, 200, "t1", TRUNK1);
    assert_eq!(sim.send_response(TRUNK1, &ok).statuses(CALLER), [200]);
    assert_eq!(sim.proxy.sizes().calls, 1);

    let sent = sim.dial("end-3");
    assert_eq!(sent.statuses(CALLER), [100]);
    assert_eq!(sent.call_ids(TRUNK1), ["end-3"]);
    assert_eq!(sim.proxy.sizes().calls, 2);
    assert_eq!(sim.proxy.stats().refused_over_capacity, 1);
}

/// A call answered with an error holds its place until its transaction
/// ends (the caller's ACK, then timer I), and then frees it.
#[test]
fn a_failed_call_frees_its_place_when_its_transaction_ends() {
    let mut sim = Sim::new(capped(1));
    let to_t1 = sim.dial("busy").request(TRUNK1);
    let busy = answer(&to_t1, 486, "t1", TRUNK1);
    let caller_busy = sim.send_response(TRUNK1, &busy).response(CALLER);
    assert_eq!(caller_busy.status.as_u16(), 486);
    assert_eq!(sim.dial("next").statuses(CALLER), [503], "not ACKed yet");

    let request = invite("busy", "z9hG4bKbusy", "+4420");
    sim.send_request(CALLER, &ack_for(&request, &caller_busy).unwrap());
    sim.run_until(Duration::from_secs(6));
    assert_eq!(sim.proxy.sizes().calls, 0);
    assert_eq!(sim.dial("next").call_ids(TRUNK1), ["next"]);
}

/// After a burst that grew the maps and the timer queue far past their
/// initial size, they shrink back to it once the burst's calls have ended
/// (never below it), and the driver is told memory can be handed back.
#[test]
fn the_state_shrinks_back_after_a_burst() {
    let mut sim = Sim::new(ProxyConfig {
        initial_capacity: 64,
        ..config()
    });
    let at_start = sim.proxy.capacities();
    assert!(!sim.proxy.take_released());

    for n in 0..1_500 {
        sim.dial(&format!("burst-{n}"));
    }
    let grown = sim.proxy.sizes();
    assert_eq!(grown.calls, 1_500);
    assert!(grown.capacity >= 1_500, "{grown:?}");

    // Every trunk silent: 408 after the third at 6 s, then timer H (no
    // ACK) ends the calls at 38 s; the looks are every 10 s.
    sim.run_until(Duration::from_secs(39));
    let after = sim.proxy.sizes();
    assert_eq!(
        (after.calls, after.branches, after.tombstones),
        (0, 0, 0),
        "{after:?}"
    );
    assert!(after.capacity >= 1_500, "not yet looked at: {after:?}");
    // (The queue of transmits, grown when 1,500 INVITEs timed out at once,
    // was already cut down at an earlier look.)
    sim.proxy.take_released();
    // Cut down to the entries (none) so the burst's memory can go back to
    // the operating system, then regrown to the initial size in fresh memory.
    sim.run_until(Duration::from_secs(40));
    assert!(
        sim.proxy.capacities().iter().all(|&c| c < 64),
        "{:?}",
        sim.proxy.capacities()
    );
    assert!(sim.proxy.take_released(), "the driver is told once");
    assert!(!sim.proxy.take_released());
    sim.run_until(Duration::from_secs(50));
    assert_eq!(sim.proxy.capacities(), at_start, "back to the initial size");
    assert!(!sim.proxy.take_released());
}

/// A steady state well inside the initial size is never shrunk below it,
/// and nothing is released without a burst.
#[test]
fn without_a_burst_nothing_shrinks_or_is_released() {
    let mut sim = Sim::new(ProxyConfig {
        initial_capacity: 1_024,
        ..config()
    });
    let at_start = sim.proxy.capacities();
    for n in 0..20 {
        sim.dial(&format!("calm-{n}"));
    }
    sim.run_until(COMPACT_EVERY * 6);
    assert_eq!(sim.proxy.sizes().calls, 0);
    assert_eq!(sim.proxy.capacities(), at_start);
    assert!(!sim.proxy.take_released());
}
