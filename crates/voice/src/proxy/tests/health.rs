//! Trunk health through the proxy's socket: OPTIONS probes and
//! registrations (SPEC V2).

use super::*;

/// SPEC V2: three unanswered probes take trunk 1 out of service (an event
/// with its time); calls then go to trunk 2 directly; two answered probes
/// bring it back.
#[test]
fn the_prober_takes_a_trunk_out_and_back() {
    let (mut sim, first) = Sim::start(probed_t1(config()));
    let probe = first.request(TRUNK1);
    assert_eq!(probe.method, Method::Options);
    assert_eq!(probe.headers.top_via().unwrap().sent_by(), PROXY);

    // Probes at 0, 5 and 10 s go unanswered (each retransmitted meanwhile).
    let sent = sim.run_until(Duration::from_secs(12));
    assert!(sent.methods(TRUNK1).iter().all(|m| m == "OPTIONS"));
    let events = sim.take_events();
    assert_eq!(
        trunk_events(&events),
        [("t1".to_owned(), HealthState::Down)]
    );
    let ProxyEvent::Trunk(event) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(event.at, sim.t0 + Duration::from_secs(12));
    let status = &sim.proxy.trunk_status()[0];
    assert!(!status.in_service);
    assert_eq!(status.causes, [Cause::Probe]);
    assert_eq!(status.probe, Some(HealthState::Down));

    let sent = sim.send_request(CALLER, &invite("p-1", "z9hG4bKp1", "+4420"));
    assert!(sent.to(TRUNK1).is_empty());
    let to_t2 = sent.request(TRUNK2);
    sim.send_response(TRUNK2, &answer(&to_t2, 200, "t2", TRUNK2));

    // Answer the next two probes.
    for at in [15, 20] {
        let sent = sim.run_until(Duration::from_secs(at));
        let probe = sent.requests(TRUNK1).pop().expect("a probe");
        assert_eq!(probe.method, Method::Options);
        assert!(sim
            .send_response(TRUNK1, &answer(&probe, 200, "probe", TRUNK1))
            .is_empty());
    }
    let events = sim.take_events();
    assert_eq!(trunk_events(&events), [("t1".to_owned(), HealthState::Up)]);
    assert!(sim.proxy.trunks().in_service(0));
    let sent = sim.send_request(CALLER, &invite("p-2", "z9hG4bKp2", "+4420"));
    assert_eq!(sent.methods(TRUNK1), ["INVITE"]);
}

/// A probed trunk marked passively (unanswered INVITE) stays out until its
/// prober sees it alive.
#[test]
fn a_passive_mark_on_a_probed_trunk_clears_when_a_probe_answers() {
    let mut config = probed_t1(config());
    config.groups[0].max_attempts = 1;
    let (mut sim, first) = Sim::start(config);
    let probe = first.request(TRUNK1);
    sim.send_response(TRUNK1, &answer(&probe, 200, "probe", TRUNK1));
    sim.send_request(CALLER, &invite("pm-1", "z9hG4bKpm1", "+4420"));
    // Answer every probe, never the INVITE.
    sim.run_until(Duration::from_secs(2));
    assert!(!sim.proxy.trunks().in_service(0));
    let sent = sim.run_until(Duration::from_secs(5));
    let probe = sent
        .requests(TRUNK1)
        .into_iter()
        .find(|r| r.method == Method::Options)
        .expect("the 5 s probe");
    sim.send_response(TRUNK1, &answer(&probe, 200, "probe", TRUNK1));
    // The prober was up all along: its success clears the passive mark
    // (Trunks::handle_probe_health with Up).
    let events = sim.take_events();
    assert_eq!(
        trunk_events(&events),
        [
            ("t1".to_owned(), HealthState::Down),
            ("t1".to_owned(), HealthState::Up)
        ],
        "{events:#?}"
    );
}

/// SPEC V2: a registration-based trunk is out of service until its REGISTER
/// is accepted; calls skip it meanwhile.
#[test]
fn a_registration_trunk_carries_calls_once_registered() {
    let config = registered_t1(config());
    let (mut sim, first) = Sim::start(config);
    let register = first.request(TRUNK1);
    assert_eq!(register.method, Method::Register);
    assert!(!sim.proxy.trunks().in_service(0));

    let sent = sim.send_request(CALLER, &invite("r-1", "z9hG4bKr1", "+4420"));
    assert!(sent.to(TRUNK1).is_empty());
    assert_eq!(sent.methods(TRUNK2), ["INVITE"]);

    assert!(sim
        .send_response(TRUNK1, &answer(&register, 200, "reg", TRUNK1))
        .is_empty());
    assert!(sim.proxy.trunks().in_service(0));
    assert_eq!(sim.proxy.trunk_status()[0].registered, Some(true));
    let events = sim.take_events();
    assert_eq!(trunk_events(&events), [("t1".to_owned(), HealthState::Up)]);
    let sent = sim.send_request(CALLER, &invite("r-2", "z9hG4bKr2", "+4420"));
    assert_eq!(sent.methods(TRUNK1), ["INVITE"]);

    // Shutdown removes the binding.
    sim.proxy.unregister_all(sim.now);
    let sent = sim.drain();
    let unregister = sent.request(TRUNK1);
    assert_eq!(unregister.method, Method::Register);
}
