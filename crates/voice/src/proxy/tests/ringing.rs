//! Calls ringing on a trunk that stops answering (SPEC V1, V2): the issue's
//! "delay no call by more than one transaction timeout" for calls that had
//! already rung when their trunk died.

use super::*;

/// SPEC V1, V2: call A rings on trunk 1, then trunk 1 dies silently; call
/// B's INVITE goes unanswered and marks it at 2.5 s. A has heard nothing for
/// more than `invite_timeout`, so at that moment it is cancelled on trunk 1
/// and tried on trunk 2 (not held for the 120 s ring time); its caller gets
/// trunk 2's answer. Trunk 1's late 487 is ACKed and goes nowhere else.
#[test]
fn a_ringing_call_moves_on_when_its_trunk_is_marked_down() {
    let mut sim = Sim::new(config());
    let a_to_t1 = sim.dial("ring-a").request(TRUNK1);
    sim.run_until(Duration::from_millis(100));
    let ringing = sim.send_response(TRUNK1, &answer(&a_to_t1, 180, "t1", TRUNK1));
    assert_eq!(ringing.statuses(CALLER), [180]);

    sim.run_until(Duration::from_millis(500));
    sim.dial("ring-b").request(TRUNK1);
    let before = sim.run_until(Duration::from_millis(2499));
    assert!(before.to(TRUNK2).is_empty(), "{before:#?}");

    let sent = sim.run_until(Duration::from_millis(2500));
    assert!(!sim.proxy.trunks().in_service(0));
    let cancel = sent
        .requests(TRUNK1)
        .into_iter()
        .find(|r| r.method == Method::Cancel)
        .expect("A cancelled on trunk 1");
    assert_eq!(branch_of(&cancel), branch_of(&a_to_t1));
    let call_ids = sent.call_ids(TRUNK2);
    assert_eq!(call_ids.len(), 2, "{sent:#?}");
    assert!(call_ids.contains(&"ring-a".to_owned()) && call_ids.contains(&"ring-b".to_owned()));
    let events = sim.take_events();
    let moved: Vec<_> = failovers(&events)
        .into_iter()
        .filter(|f| f.call_id == "ring-a")
        .collect();
    assert_eq!(moved.len(), 1);
    assert_eq!(
        moved[0].cause,
        "out of service while ringing, silent for 2.4 s"
    );
    assert_eq!(sim.proxy.stats().ringing_rerouted, 1);

    let a_to_t2 = sent
        .requests(TRUNK2)
        .into_iter()
        .find(|r| r.headers.call_id() == Some("ring-a"))
        .unwrap();
    let ok = sim.send_response(TRUNK2, &answer(&a_to_t2, 200, "t2", TRUNK2));
    assert_eq!(ok.statuses(CALLER), [200]);
    // Trunk 1 was only slow after all: its 487 is ACKed hop by hop, nothing
    // reaches the caller.
    let late = sim.send_response(TRUNK1, &answer(&a_to_t1, 487, "t1", TRUNK1));
    assert_eq!(late.methods(TRUNK1), ["ACK"]);
    assert!(late.to(CALLER).is_empty());
    let events = sim.take_events();
    let a_end: Vec<_> = ended(&events)
        .into_iter()
        .filter(|e| e.call_id == "ring-a")
        .collect();
    assert_eq!(a_end.len(), 1);
    assert_eq!(a_end[0].outcome, CallOutcome::Answered);
    assert_eq!(&*a_end[0].trunk.as_ref().unwrap().name, "t2");
    assert_eq!(a_end[0].attempts, 2);
}

/// SPEC V1, V2: a call that heard from trunk 1 after the unanswered INVITE was sent is
/// not moved at once (the trunk was alive then): it is looked at again when
/// it has been silent for `invite_timeout`, and moved then, the trunk being
/// still out of service.
#[test]
fn a_call_that_rang_recently_is_looked_at_again_later() {
    let mut sim = Sim::new(config());
    sim.dial("quiet-b").request(TRUNK1);
    sim.run_until(Duration::from_millis(1800));
    let a_to_t1 = sim.dial("quiet-a").request(TRUNK1);
    sim.run_until(Duration::from_millis(1900));
    sim.send_response(TRUNK1, &answer(&a_to_t1, 180, "t1", TRUNK1));

    // B marks trunk 1 at 2 s; A rang 0.1 s ago and stays.
    let sent = sim.run_until(Duration::from_secs(2));
    assert!(!sim.proxy.trunks().in_service(0));
    assert_eq!(sent.call_ids(TRUNK2), ["quiet-b"]);
    assert!(sent.to(TRUNK1).is_empty(), "{sent:#?}");
    let sent = sim.run_until(Duration::from_millis(3899));
    assert!(
        !sent.call_ids(TRUNK2).contains(&"quiet-a".to_owned()),
        "{sent:#?}"
    );

    // Silent since 1.9 s: moved at 3.9 s.
    let sent = sim.run_until(Duration::from_millis(3900));
    assert_eq!(sent.methods(TRUNK1), ["CANCEL"]);
    let to_t2 = sent.request(TRUNK2);
    assert_eq!(to_t2.headers.call_id(), Some("quiet-a"));
    assert_eq!(sim.proxy.stats().ringing_rerouted, 1);
}

/// SPEC V2: a trunk back in service before the second look keeps its ringing call,
/// and the call's 200 reaches the caller.
#[test]
fn a_trunk_back_in_service_keeps_its_ringing_calls() {
    let (mut sim, first) = Sim::start(probed_t1(config()));
    let probe = first.request(TRUNK1);
    sim.send_response(TRUNK1, &answer(&probe, 200, "probe", TRUNK1));

    sim.run_until(Duration::from_secs(3));
    sim.dial("back-b").request(TRUNK1);
    sim.run_until(Duration::from_millis(4500));
    let a_to_t1 = sim.dial("back-a").request(TRUNK1);
    sim.run_until(Duration::from_millis(4600));
    sim.send_response(TRUNK1, &answer(&a_to_t1, 180, "t1", TRUNK1));

    // B marks trunk 1 at 5 s; the 5 s probe is answered: back in service.
    let sent = sim.run_until(Duration::from_secs(5));
    assert_eq!(sim.proxy.stats().invite_timeouts, 1);
    let probe = sent
        .requests(TRUNK1)
        .into_iter()
        .find(|r| r.method == Method::Options)
        .expect("the 5 s probe");
    sim.send_response(TRUNK1, &answer(&probe, 200, "probe", TRUNK1));
    assert!(sim.proxy.trunks().in_service(0));

    // The second look at 6.6 s finds it in service: A stays on trunk 1.
    let sent = sim.run_until(Duration::from_secs(8));
    assert!(
        sent.requests(TRUNK1)
            .iter()
            .all(|r| r.method != Method::Cancel),
        "{sent:#?}"
    );
    assert!(!sent.call_ids(TRUNK2).contains(&"back-a".to_owned()));
    let ok = sim.send_response(TRUNK1, &answer(&a_to_t1, 200, "t1", TRUNK1));
    assert_eq!(ok.statuses(CALLER), [200]);
    assert_eq!(sim.proxy.stats().ringing_rerouted, 0);
}

/// SPEC V2: probes take trunk 1 out of service at 12 s; a call that has been
/// ringing there since 0.5 s moves to trunk 2 at that moment.
#[test]
fn the_prober_marking_a_trunk_down_moves_its_ringing_calls() {
    let (mut sim, _) = Sim::start(probed_t1(config()));
    sim.run_until(Duration::from_millis(400));
    let to_t1 = sim.dial("probe-a").request(TRUNK1);
    sim.run_until(Duration::from_millis(500));
    sim.send_response(TRUNK1, &answer(&to_t1, 180, "t1", TRUNK1));

    let sent = sim.run_until(Duration::from_millis(11_999));
    assert!(sent.to(TRUNK2).is_empty());
    let sent = sim.run_until(Duration::from_secs(12));
    assert!(!sim.proxy.trunks().in_service(0));
    assert!(sent.methods(TRUNK1).contains(&"CANCEL".to_owned()));
    assert_eq!(sent.request(TRUNK2).headers.call_id(), Some("probe-a"));
    let events = sim.take_events();
    assert_eq!(
        failovers(&events)[0].cause,
        "out of service while ringing, silent for 11.5 s"
    );
}

/// SPEC V2: a trunk out of service only because it lost its registration still
/// carries the calls ringing on it: it may well be answering.
#[test]
fn a_lost_registration_does_not_move_ringing_calls() {
    let config = registered_t1(config());
    let (mut sim, first) = Sim::start(config);
    let register = first.request(TRUNK1);
    sim.send_response(TRUNK1, &answer(&register, 200, "reg", TRUNK1));
    assert!(sim.proxy.trunks().in_service(0));
    let to_t1 = sim.dial("reg-a").request(TRUNK1);
    sim.send_response(TRUNK1, &answer(&to_t1, 180, "t1", TRUNK1));

    // The refresh (at about half the 600 s lifetime) is refused: out of service.
    let sent = sim.run_until(Duration::from_secs(400));
    let refresh = sent
        .requests(TRUNK1)
        .into_iter()
        .find(|r| r.method == Method::Register)
        .expect("a refresh");
    let sent = sim.send_response(TRUNK1, &answer(&refresh, 403, "reg", TRUNK1));
    assert!(!sim.proxy.trunks().in_service(0), "{sent:#?}");
    assert!(sent.to(TRUNK2).is_empty());
    let sent = sim.run_until(Duration::from_secs(405));
    assert!(sent.to(TRUNK2).is_empty(), "{sent:#?}");
    assert_eq!(sim.proxy.stats().ringing_rerouted, 0);
}

/// SPEC V1, V2: a trunk marked down that still answers something (here another call's
/// 180, after the silent INVITE that marked it) keeps its ringing calls: it
/// is not dead. They are looked at again once the trunk has been silent for
/// `invite_timeout`, and moved then.
#[test]
fn a_trunk_that_still_answers_keeps_its_ringing_calls() {
    let mut sim = Sim::new(config());
    let a_to_t1 = sim.dial("alive-a").request(TRUNK1);
    sim.run_until(Duration::from_millis(100));
    sim.send_response(TRUNK1, &answer(&a_to_t1, 180, "t1", TRUNK1));
    sim.run_until(Duration::from_millis(500));
    sim.dial("alive-b").request(TRUNK1);
    sim.run_until(Duration::from_secs(1));
    let c_to_t1 = sim.dial("alive-c").request(TRUNK1);
    sim.run_until(Duration::from_millis(2400));
    sim.send_response(TRUNK1, &answer(&c_to_t1, 180, "t1", TRUNK1));

    // B marks trunk 1 at 2.5 s; it spoke at 2.4 s: A and C stay.
    let sent = sim.run_until(Duration::from_millis(2500));
    assert!(!sim.proxy.trunks().in_service(0));
    assert_eq!(sent.call_ids(TRUNK2), ["alive-b"]);
    // (B's INVITE is retransmitted to trunk 2 meanwhile: timer A.)
    let calls_to_t2 = |sent: &Sent| -> Vec<String> {
        let mut ids = sent.call_ids(TRUNK2);
        ids.retain(|id| id != "alive-b");
        ids.sort_unstable();
        ids
    };
    let sent = sim.run_until(Duration::from_millis(4399));
    assert!(calls_to_t2(&sent).is_empty(), "{sent:#?}");
    // Silent since 2.4 s: both move at 4.4 s.
    let sent = sim.run_until(Duration::from_millis(4400));
    assert_eq!(calls_to_t2(&sent), ["alive-a", "alive-c"]);
    assert_eq!(sim.proxy.stats().ringing_rerouted, 2);
}

/// SPEC V1: a call with no trunk left in its plan keeps ringing on a trunk marked
/// down: moving it would only end it.
#[test]
fn a_call_with_no_trunk_left_keeps_ringing() {
    let mut config = config();
    config.groups[0].trunks = vec![0];
    config.groups[0].max_attempts = 1;
    let mut sim = Sim::new(config);
    let a_to_t1 = sim.dial("last-a").request(TRUNK1);
    sim.send_response(TRUNK1, &answer(&a_to_t1, 180, "t1", TRUNK1));
    sim.run_until(Duration::from_millis(500));
    sim.dial("last-b");
    sim.run_until(Duration::from_secs(10));
    assert!(!sim.proxy.trunks().in_service(0));
    assert_eq!(sim.proxy.stats().ringing_rerouted, 0);
    let ok = sim.send_response(TRUNK1, &answer(&a_to_t1, 200, "t1", TRUNK1));
    assert_eq!(ok.statuses(CALLER), [200]);
}
