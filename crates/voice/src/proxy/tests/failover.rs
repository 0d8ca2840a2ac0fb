//! The INVITE path: failover within the call attempt (SPEC V1), passive
//! marking (SPEC V2), CANCEL, retransmissions, state release.

use super::*;

/// SPEC V1: a 503 from trunk 1 sends the INVITE to trunk 2 within the same
/// `handle_datagram`, on a new branch, Max-Forwards decremented once and our
/// Record-Route added once; the 503 is ACKed hop by hop and never reaches the
/// caller; trunk 2's 180 and 200 do.
#[test]
fn a_503_moves_the_call_to_the_next_trunk_at_once() {
    let mut sim = Sim::new(config());
    let caller_invite = invite("call-1", "z9hG4bKcaller1", "+4420");
    let sent = sim.send_request(CALLER, &caller_invite);

    // 100 Trying at once, with received/rport stamped on the caller's Via.
    let trying = sent.response(CALLER);
    assert_eq!(trying.status, StatusCode::TRYING);
    let via = trying.headers.top_via().unwrap();
    assert_eq!(via.received(), Some("10.0.0.9"));
    assert_eq!(via.rport(), Some(Some(5070)));

    let to_t1 = sent.request(TRUNK1);
    assert_eq!(to_t1.method, Method::Invite);
    assert_eq!(to_t1.uri, caller_invite.uri, "Request-URI kept");
    assert_eq!(to_t1.headers.max_forwards(), Some(69));
    let rr: Vec<String> = to_t1
        .headers
        .record_routes()
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(rr, [format!("sip:{PROXY};lr")]);
    let vias = to_t1.headers.vias();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[0].sent_by(), PROXY);
    assert!(vias[0].branch().unwrap().starts_with("z9hG4bK"));
    assert_eq!(vias[1].branch(), Some("z9hG4bKcaller1"));
    let branch1 = branch_of(&to_t1);

    // 100 from the trunk stops there.
    assert!(sim
        .send_response(TRUNK1, &answer(&to_t1, 100, "", TRUNK1))
        .is_empty());

    let sent = sim.send_response(TRUNK1, &answer(&to_t1, 503, "t1", TRUNK1));
    assert!(sent.to(CALLER).is_empty(), "the 503 stays here: {sent:#?}");
    assert_eq!(sent.methods(TRUNK1), ["ACK"]);
    assert_eq!(branch_of(&sent.request(TRUNK1)), branch1, "hop-by-hop ACK");
    let to_t2 = sent.request(TRUNK2);
    assert_eq!(to_t2.method, Method::Invite);
    assert_ne!(branch_of(&to_t2), branch1, "a new branch");
    assert_eq!(to_t2.headers.max_forwards(), Some(69));
    assert_eq!(to_t2.headers.record_routes().len(), 1);
    assert_eq!(to_t2.headers.vias().len(), 2);
    assert_eq!(to_t2.headers.call_id(), Some("call-1"));

    let events = sim.take_events();
    let failover = failovers(&events);
    assert_eq!(failover.len(), 1);
    assert_eq!(&*failover[0].from.name, "t1");
    assert_eq!(&*failover[0].to.name, "t2");
    assert_eq!(failover[0].cause, "503 Service Unavailable");
    assert!(trunk_events(&events).is_empty(), "a 503 marks nothing");

    // Trunk 2 rings and answers: both reach the caller, our Via popped.
    let ringing = sim
        .send_response(TRUNK2, &answer(&to_t2, 180, "t2", TRUNK2))
        .response(CALLER);
    assert_eq!(ringing.status, StatusCode::RINGING);
    assert_eq!(ringing.headers.vias().len(), 1);
    assert_eq!(ringing.headers.vias()[0].branch(), Some("z9hG4bKcaller1"));
    assert_eq!(ringing.headers.record_routes().len(), 1);
    let ok = sim
        .send_response(TRUNK2, &answer(&to_t2, 200, "t2", TRUNK2))
        .response(CALLER);
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.headers.vias().len(), 1);
    assert_eq!(ok.headers.to().unwrap().tag(), Some("t2"));

    let events = sim.take_events();
    let calls = ended(&events);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].outcome, CallOutcome::Answered);
    assert_eq!(calls[0].attempts, 2);
    assert_eq!(calls[0].trunk.as_ref().map(|t| &*t.name), Some("t2"));
    assert_eq!(
        calls[0].trunk.as_ref().map(|t| &*t.media_region),
        Some("eu-west"),
        "SPEC V3: reports carry the regions"
    );
    let stats = *sim.proxy.stats();
    assert_eq!((stats.calls, stats.answered, stats.failovers), (1, 1, 1));
}

/// The called party's own answers go back to the caller: no failover. The
/// server transaction retransmits the 486 until the caller's ACK, which it
/// absorbs.
#[test]
fn busy_goes_back_to_the_caller_and_the_ack_is_absorbed() {
    let mut sim = Sim::new(config());
    let caller_invite = invite("call-busy", "z9hG4bKbusy", "+4420");
    let to_t1 = sim.send_request(CALLER, &caller_invite).request(TRUNK1);
    let sent = sim.send_response(TRUNK1, &answer(&to_t1, 486, "t1", TRUNK1));
    assert_eq!(sent.methods(TRUNK1), ["ACK"]);
    assert!(sent.to(TRUNK2).is_empty());
    let busy = sent.response(CALLER);
    assert_eq!(busy.status, StatusCode::BUSY_HERE);
    assert_eq!(busy.headers.vias().len(), 1);

    // Retransmitted over UDP until the ACK (timer G)…
    let again = sim.run_until(Duration::from_millis(500));
    assert_eq!(again.statuses(CALLER), [486]);
    // …and the trunk's retransmitted 486 is ACKed again, not relayed.
    let sent = sim.send_response(TRUNK1, &answer(&to_t1, 486, "t1", TRUNK1));
    assert_eq!(sent.methods(TRUNK1), ["ACK"]);
    assert!(sent.to(CALLER).is_empty());

    let ack = hotsite_sip::message::ack_for(&caller_invite, &busy).unwrap();
    assert!(sim.send_request(CALLER, &ack).is_empty(), "ACK absorbed");
    assert_eq!(sim.proxy.stats().acks_absorbed, 1);
    assert!(sim.run_until(Duration::from_secs(10)).to(CALLER).is_empty());

    let events = sim.take_events();
    assert!(failovers(&events).is_empty());
    assert_eq!(ended(&events)[0].outcome, CallOutcome::Rejected);
    assert_eq!(ended(&events)[0].status, 486);
}

/// SPEC V1, V2: no reply at all within invite_timeout → the next trunk, and
/// the silent trunk is marked out of service (an event), so the next call
/// goes straight to trunk 2. The abandoned INVITE is not retransmitted any
/// more; a late provisional on it is cancelled.
#[test]
fn a_silent_trunk_is_skipped_and_marked_for_the_next_calls() {
    let mut sim = Sim::new(config());
    let to_t1 = sim
        .send_request(CALLER, &invite("call-a", "z9hG4bKa", "+4420"))
        .request(TRUNK1);
    // Timer A: retransmissions at 0.5 s and 1.5 s.
    assert_eq!(
        sim.run_until(Duration::from_millis(1999)).methods(TRUNK1),
        ["INVITE", "INVITE"]
    );
    let sent = sim.run_until(Duration::from_secs(2));
    let to_t2 = sent.request(TRUNK2);
    assert!(sent.to(TRUNK1).is_empty());
    assert!(sent.to(CALLER).is_empty());
    let events = sim.take_events();
    assert_eq!(
        trunk_events(&events),
        [("t1".to_owned(), HealthState::Down)]
    );
    assert_eq!(failovers(&events)[0].cause, "no reply within 2.0 s");
    assert!(!sim.proxy.trunks().in_service(0));

    // No more retransmissions to the dead trunk.
    let later = sim.run_until(Duration::from_secs(3));
    assert!(later.to(TRUNK1).is_empty(), "{later:#?}");
    assert_eq!(later.methods(TRUNK2), ["INVITE"], "timer A on trunk 2");

    // A late 180 from trunk 1: cancelled there, not shown to the caller.
    let sent = sim.send_response(TRUNK1, &answer(&to_t1, 180, "t1", TRUNK1));
    assert_eq!(sent.methods(TRUNK1), ["CANCEL"]);
    assert!(sent.to(CALLER).is_empty());

    let ok = sim.send_response(TRUNK2, &answer(&to_t2, 200, "t2", TRUNK2));
    assert_eq!(ok.statuses(CALLER), [200]);

    // The next call skips trunk 1 at once.
    let sent = sim.send_request(CALLER, &invite("call-b", "z9hG4bKb", "+4420"));
    assert!(sent.to(TRUNK1).is_empty());
    assert_eq!(sent.methods(TRUNK2), ["INVITE"]);
}

/// A trunk that answered provisionally is alive: if the final answer does
/// not come within invite_final_timeout, the branch is cancelled and the
/// caller gets 408, but the trunk is not marked.
#[test]
fn ringing_then_silence_cancels_and_answers_408_without_marking() {
    let mut sim = Sim::new(config());
    let caller_invite = invite("call-ring", "z9hG4bKring", "+4420");
    let to_t1 = sim.send_request(CALLER, &caller_invite).request(TRUNK1);
    let ringing = sim.send_response(TRUNK1, &answer(&to_t1, 180, "t1", TRUNK1));
    assert_eq!(ringing.statuses(CALLER), [180]);
    assert!(sim.run_until(Duration::from_secs(119)).is_empty());
    let sent = sim.run_until(Duration::from_secs(120));
    let cancel = sent.request(TRUNK1);
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(branch_of(&cancel), branch_of(&to_t1));
    let timeout = sent.response(CALLER);
    assert_eq!(timeout.status, StatusCode::REQUEST_TIMEOUT);
    let warning = timeout.headers.value(HeaderName::Warning).unwrap();
    assert!(
        String::from_utf8_lossy(warning).contains("no final answer within 120 s"),
        "{warning:?}"
    );
    assert!(sent.to(TRUNK2).is_empty(), "no failover on a ring timeout");

    // The trunk answers the CANCEL and 487s the INVITE: ACKed, not relayed.
    assert!(sim
        .send_response(TRUNK1, &answer(&cancel, 200, "t1", TRUNK1))
        .is_empty());
    let sent = sim.send_response(TRUNK1, &answer(&to_t1, 487, "t1", TRUNK1));
    assert_eq!(sent.methods(TRUNK1), ["ACK"]);
    assert!(sent.to(CALLER).is_empty());

    let events = sim.take_events();
    assert!(trunk_events(&events).is_empty(), "never marked");
    assert!(sim.proxy.trunks().in_service(0));
    assert_eq!(ended(&events)[0].outcome, CallOutcome::RingTimeout);
}

/// A CANCEL before any provisional waits for one (§9.1), then cancels the
/// branch; the trunk's 487 goes back to the caller; no failover.
#[test]
fn cancel_before_a_provisional_is_sent_when_one_arrives() {
    let mut sim = Sim::new(config());
    let caller_invite = invite("call-c1", "z9hG4bKc1", "+4420");
    let to_t1 = sim.send_request(CALLER, &caller_invite).request(TRUNK1);
    let cancel = hotsite_sip::message::cancel_for(&caller_invite).unwrap();
    let sent = sim.send_request(CALLER, &cancel);
    assert_eq!(sent.response(CALLER).status, StatusCode::OK);
    assert!(sent.to(TRUNK1).is_empty(), "no CANCEL before a provisional");

    let sent = sim.send_response(TRUNK1, &answer(&to_t1, 180, "t1", TRUNK1));
    assert_eq!(sent.methods(TRUNK1), ["CANCEL"]);
    assert!(
        sent.to(CALLER).is_empty(),
        "no ringing after the caller hung up"
    );

    let sent = sim.send_response(TRUNK1, &answer(&to_t1, 487, "t1", TRUNK1));
    assert_eq!(sent.methods(TRUNK1), ["ACK"]);
    assert_eq!(sent.statuses(CALLER), [487]);
    assert!(sent.to(TRUNK2).is_empty());
    let events = sim.take_events();
    assert_eq!(ended(&events)[0].outcome, CallOutcome::Cancelled);
}

/// A CANCEL before any reply, and the trunk stays silent: at invite_timeout
/// the branch is given up and the caller gets 487 from us, not a failover.
#[test]
fn cancel_with_a_silent_trunk_ends_at_invite_timeout() {
    let mut sim = Sim::new(config());
    let caller_invite = invite("call-c2", "z9hG4bKc2", "+4420");
    sim.send_request(CALLER, &caller_invite).request(TRUNK1);
    let cancel = hotsite_sip::message::cancel_for(&caller_invite).unwrap();
    sim.send_request(CALLER, &cancel);
    let sent = sim.run_until(Duration::from_secs(2));
    assert_eq!(sent.statuses(CALLER), [487]);
    assert!(sent.to(TRUNK2).is_empty());
    assert_eq!(sim.proxy.stats().cancelled, 1);
}

/// A CANCEL after a provisional goes to the trunk at once, on the INVITE's
/// branch; the trunk's 200 to it is absorbed and its 487 relayed.
#[test]
fn cancel_after_a_provisional_is_sent_at_once() {
    let mut sim = Sim::new(config());
    let caller_invite = invite("call-c3", "z9hG4bKc3", "+4420");
    let to_t1 = sim.send_request(CALLER, &caller_invite).request(TRUNK1);
    sim.send_response(TRUNK1, &answer(&to_t1, 183, "t1", TRUNK1));
    let cancel = hotsite_sip::message::cancel_for(&caller_invite).unwrap();
    let sent = sim.send_request(CALLER, &cancel);
    assert_eq!(sent.statuses(CALLER), [200]);
    let to_trunk = sent.request(TRUNK1);
    assert_eq!(to_trunk.method, Method::Cancel);
    assert_eq!(branch_of(&to_trunk), branch_of(&to_t1));
    // The caller's CANCEL retransmitted: 200 again, nothing more to the trunk.
    let again = sim.send_request(CALLER, &cancel);
    assert_eq!(again.statuses(CALLER), [200]);
    assert!(again.to(TRUNK1).is_empty());

    assert!(sim
        .send_response(TRUNK1, &answer(&to_trunk, 200, "t1", TRUNK1))
        .is_empty());
    let sent = sim.send_response(TRUNK1, &answer(&to_t1, 487, "t1", TRUNK1));
    assert_eq!(sent.statuses(CALLER), [487]);
    assert_eq!(sent.methods(TRUNK1), ["ACK"]);
}

/// A CANCEL for no call gets 481.
#[test]
fn cancel_for_no_call_gets_481() {
    let mut sim = Sim::new(config());
    let cancel =
        hotsite_sip::message::cancel_for(&invite("nothing", "z9hG4bKnone", "+4420")).unwrap();
    assert_eq!(sim.send_request(CALLER, &cancel).statuses(CALLER), [481]);
}

/// The caller's retransmitted INVITE is absorbed: the last provisional goes
/// back, nothing new goes to the trunk. After the 2xx, a tombstone absorbs it.
#[test]
fn caller_retransmissions_are_absorbed() {
    let mut sim = Sim::new(config());
    let caller_invite = invite("call-r", "z9hG4bKr", "+4420");
    let to_t1 = sim.send_request(CALLER, &caller_invite).request(TRUNK1);
    let again = sim.send_request(CALLER, &caller_invite);
    assert_eq!(again.statuses(CALLER), [100]);
    assert!(again.to(TRUNK1).is_empty());
    sim.send_response(TRUNK1, &answer(&to_t1, 180, "t1", TRUNK1));
    assert_eq!(
        sim.send_request(CALLER, &caller_invite).statuses(CALLER),
        [180]
    );
    sim.send_response(TRUNK1, &answer(&to_t1, 200, "t1", TRUNK1));
    assert!(sim.send_request(CALLER, &caller_invite).is_empty());
    assert_eq!(sim.proxy.stats().retransmissions_absorbed, 3);
    assert_eq!(sim.proxy.stats().calls, 1);
}

/// RFC 6026: every 2xx retransmission is relayed to the caller.
#[test]
fn every_2xx_retransmission_is_relayed() {
    let mut sim = Sim::new(config());
    let to_t1 = sim
        .send_request(CALLER, &invite("call-2xx", "z9hG4bK2xx", "+4420"))
        .request(TRUNK1);
    let ok = answer(&to_t1, 200, "t1", TRUNK1);
    for _ in 0..3 {
        let sent = sim.send_response(TRUNK1, &ok);
        assert_eq!(sent.statuses(CALLER), [200]);
        assert!(sent.to(TRUNK1).is_empty(), "a 2xx is ACKed end to end");
    }
    assert_eq!(sim.proxy.stats().answered, 1);
}

/// `max_attempts` bounds the trunks per call; when all fail, the caller gets
/// the last trunk's answer.
#[test]
fn max_attempts_bounds_the_trunks_and_the_last_answer_goes_back() {
    let mut config = config();
    config.groups[0].max_attempts = 2;
    let mut sim = Sim::new(config);
    let to_t1 = sim
        .send_request(CALLER, &invite("call-m", "z9hG4bKm", "+4420"))
        .request(TRUNK1);
    let to_t2 = sim
        .send_response(TRUNK1, &answer(&to_t1, 503, "t1", TRUNK1))
        .request(TRUNK2);
    let sent = sim.send_response(TRUNK2, &answer(&to_t2, 502, "t2", TRUNK2));
    assert!(sent.to(TRUNK3).is_empty());
    let last = sent.response(CALLER);
    assert_eq!(last.status.as_u16(), 502);
    assert_eq!(last.headers.to().unwrap().tag(), Some("t2"));
    let events = sim.take_events();
    assert_eq!(ended(&events)[0].outcome, CallOutcome::Failed);
    assert_eq!(ended(&events)[0].attempts, 2);
}

/// Every trunk silent: each is tried in turn and the caller gets 408 with a
/// Warning naming the last one.
#[test]
fn all_trunks_silent_gives_408_with_a_warning() {
    let mut sim = Sim::new(config());
    sim.send_request(CALLER, &invite("call-s", "z9hG4bKs", "+4420"));
    let sent = sim.run_until(Duration::from_secs(6));
    assert_eq!(
        sent.methods(TRUNK2).first().map(String::as_str),
        Some("INVITE")
    );
    assert_eq!(
        sent.methods(TRUNK3).first().map(String::as_str),
        Some("INVITE")
    );
    let last = sent.response(CALLER);
    assert_eq!(last.status, StatusCode::REQUEST_TIMEOUT);
    let warning =
        String::from_utf8_lossy(last.headers.value(HeaderName::Warning).unwrap()).into_owned();
    assert!(
        warning.contains("trunk t3: no reply within 2.0 s"),
        "{warning}"
    );
    assert_eq!(sim.proxy.stats().invite_timeouts, 3);
    // All three marked; the next call still tries them (priority order).
    let sent = sim.send_request(CALLER, &invite("call-s2", "z9hG4bKs2", "+4420"));
    assert_eq!(sent.methods(TRUNK1), ["INVITE"]);
}

/// Calls go to the group whose prefix matches the Request-URI user part
/// (longest wins), else to the default group.
#[test]
fn groups_are_chosen_by_the_longest_prefix() {
    let mut config = config();
    config.groups = vec![
        GroupSetup {
            name: "default".into(),
            distribution: Distribution::Sequential,
            trunks: vec![0],
            max_attempts: 1,
            prefixes: Vec::new(),
            media: MediaMode::Direct,
        },
        GroupSetup {
            name: "uk".into(),
            distribution: Distribution::Sequential,
            trunks: vec![1],
            max_attempts: 1,
            prefixes: vec!["+44".into()],
            media: MediaMode::Direct,
        },
        GroupSetup {
            name: "london".into(),
            distribution: Distribution::Sequential,
            trunks: vec![2],
            max_attempts: 1,
            prefixes: vec!["+4420".into()],
            media: MediaMode::Direct,
        },
    ];
    let mut sim = Sim::new(config);
    let sent = sim.send_request(CALLER, &invite("g1", "z9hG4bKg1", "+4420123"));
    assert_eq!(sent.methods(TRUNK3), ["INVITE"]);
    let sent = sim.send_request(CALLER, &invite("g2", "z9hG4bKg2", "+4413"));
    assert_eq!(sent.methods(TRUNK2), ["INVITE"]);
    let sent = sim.send_request(CALLER, &invite("g3", "z9hG4bKg3", "+3312"));
    assert_eq!(sent.methods(TRUNK1), ["INVITE"]);
}

/// Max-Forwards 0: 483, nothing forwarded.
#[test]
fn max_forwards_zero_gets_483() {
    let mut sim = Sim::new(config());
    let mut request = invite("call-mf", "z9hG4bKmf", "+4420");
    request
        .headers
        .set(Header::new(HeaderName::MaxForwards, "0"));
    let sent = sim.send_request(CALLER, &request);
    assert_eq!(sent.statuses(CALLER), [483]);
    assert!(sent.to(TRUNK1).is_empty());
    assert_eq!(sim.proxy.sizes().calls, 0);
}

/// Memory: once the transactions are over, nothing is left: calls, branches,
/// tombstones and (after the last stale entries fire) timers.
#[test]
fn state_is_released_when_transactions_end() {
    let mut sim = Sim::new(config());
    for n in 0..50 {
        let caller_invite = invite(&format!("call-{n}"), &format!("z9hG4bKmem{n}"), "+4420");
        let to_t1 = sim.send_request(CALLER, &caller_invite).request(TRUNK1);
        match n % 3 {
            0 => {
                let to_t2 = sim
                    .send_response(TRUNK1, &answer(&to_t1, 503, "t1", TRUNK1))
                    .request(TRUNK2);
                sim.send_response(TRUNK2, &answer(&to_t2, 200, "t2", TRUNK2));
            }
            1 => {
                let busy = sim
                    .send_response(TRUNK1, &answer(&to_t1, 486, "t1", TRUNK1))
                    .response(CALLER);
                let ack = hotsite_sip::message::ack_for(&caller_invite, &busy).unwrap();
                sim.send_request(CALLER, &ack);
            }
            _ => {
                sim.send_response(TRUNK1, &answer(&to_t1, 180, "t1", TRUNK1));
                sim.send_response(TRUNK1, &answer(&to_t1, 200, "t1", TRUNK1));
            }
        }
    }
    let sizes = sim.proxy.sizes();
    assert_eq!(sizes.calls, 17, "the 486 calls wait for timer I: {sizes:?}");
    let at = sim.elapsed() + Duration::from_secs(60);
    sim.run_until(at);
    let sizes = sim.proxy.sizes();
    assert_eq!(
        (sizes.calls, sizes.branches, sizes.tombstones, sizes.timers),
        (0, 0, 0, 0),
        "{sizes:?}"
    );
}

/// A new call coming from a trunk is not routed back out to the trunks.
#[test]
fn calls_from_a_trunk_are_refused() {
    let mut sim = Sim::new(config());
    let sent = sim.send_request(TRUNK2, &invite("inbound", "z9hG4bKin", "+4420"));
    assert!(sent.to(TRUNK1).is_empty());
    assert_eq!(
        sent.statuses(TRUNK2),
        [403],
        "answered to its source (rport)"
    );
    assert_eq!(sim.proxy.stats().calls, 0);
}

/// §18.2.1: a Via sent-by that is a name gets `received`, and answers go to
/// the source IP at the sent-by port (no `rport` asked).
#[test]
fn a_named_via_gets_received_and_answers_follow_it() {
    let mut sim = Sim::new(config());
    let mut request = invite("named", "z9hG4bKnamed", "+4420");
    request.headers.remove_all(HeaderName::Via);
    request.headers.push_via(Bytes::from_static(
        b"SIP/2.0/UDP pbx.example.com:5070;branch=z9hG4bKnamed",
    ));
    let sent = sim.send_request(CALLER, &request);
    let trying = sent.response(CALLER);
    let via = trying.headers.top_via().unwrap();
    assert_eq!(via.host(), "pbx.example.com");
    assert_eq!(via.received(), Some("10.0.0.9"));
    assert_eq!(via.rport(), None);
    let to_t1 = sent.request(TRUNK1);
    let ok = sim.send_response(TRUNK1, &answer(&to_t1, 200, "t1", TRUNK1));
    assert_eq!(ok.statuses(CALLER), [200]);
}
