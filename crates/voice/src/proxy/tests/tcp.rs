//! TCP on either side of the proxy (issue: "over UDP and TCP"): answers go
//! back on the connection a request came on (RFC 3261 §18.2.2), our Via names
//! the transport, nothing is retransmitted over TCP, and a trunk that cannot
//! be reached moves its calls on at once (SPEC V1, V2).

use super::*;

/// The caller's TCP connection: another port than its Via's sent-by.
const CALLER_CONN: &str = "10.0.0.9:40001";

fn tcp_invite(call_id: &str, branch: &str) -> Request {
    invite_over("TCP", call_id, branch, "+4420")
}

fn tcp_trunk1(mut config: ProxyConfig) -> ProxyConfig {
    config.trunks[0].transport = Transport::Tcp;
    config
}

/// SPEC V1: a caller over TCP, trunks over UDP: 100 and the trunk's 180 and 200 go
/// back on the caller's connection; its Via got `received` and `rport` (the
/// connection's port, so a 2xx relayed along the Via finds the connection);
/// the trunk gets the INVITE over UDP with a UDP Via of ours, and two
/// Record-Route entries of ours (RFC 5658), its side's (UDP) on top and the
/// caller's (TCP) below, so each side reaches us over its own transport.
#[test]
fn a_tcp_caller_is_answered_on_its_connection() {
    let mut sim = Sim::new(config());
    let sent = sim.send_tcp(CALLER_CONN, tcp_invite("tcp-1", "z9hG4bKtcp1").to_bytes());
    let trying = sent.response(CALLER_CONN);
    assert_eq!(trying.status, StatusCode::TRYING);
    assert_eq!(sent.transports(CALLER_CONN), [Transport::Tcp]);
    let via = trying.headers.top_via().unwrap();
    assert_eq!(via.received(), Some("10.0.0.9"));
    assert_eq!(via.rport(), Some(Some(40001)));

    let to_t1 = sent.request(TRUNK1);
    assert_eq!(sent.transports(TRUNK1), [Transport::Udp]);
    let vias = to_t1.headers.vias();
    assert_eq!(&vias[0].transport[..], b"UDP");
    assert_eq!(&vias[1].transport[..], b"TCP");
    let rr: Vec<String> = to_t1
        .headers
        .record_routes()
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(
        rr,
        [
            format!("sip:{PROXY};lr"),
            format!("sip:{PROXY};transport=tcp;lr")
        ]
    );

    let ringing = sim.send_response(TRUNK1, &answer(&to_t1, 180, "t1", TRUNK1));
    assert_eq!(ringing.statuses(CALLER_CONN), [180]);
    assert_eq!(ringing.transports(CALLER_CONN), [Transport::Tcp]);
    let ok = sim.send_response(TRUNK1, &answer(&to_t1, 200, "t1", TRUNK1));
    assert_eq!(ok.statuses(CALLER_CONN), [200]);
    assert_eq!(ok.transports(CALLER_CONN), [Transport::Tcp]);
    // A retransmitted 200 (no state left: relayed along the Via) too.
    let again = sim.send_response(TRUNK1, &answer(&to_t1, 200, "t1", TRUNK1));
    assert_eq!(again.transports(CALLER_CONN), [Transport::Tcp]);
    for step in [&sent, &ringing, &ok, &again] {
        assert!(step.to(CALLER).is_empty(), "nothing to the sent-by port");
    }
    // The caller's ACK and BYE carry both entries as Routes (reversed): both
    // are ours and consumed; the request goes to the trunk's Contact.
    let caller_invite = tcp_invite("tcp-1", "z9hG4bKtcp1");
    let ok = ok.response(CALLER_CONN);
    let bye = in_dialog_over("TCP", Method::Bye, &caller_invite, &ok, "z9hG4bKbye1", 2);
    let sent = sim.send_tcp(CALLER_CONN, bye.to_bytes());
    let forwarded = sent.request(TRUNK1);
    assert_eq!(forwarded.method, Method::Bye);
    assert!(forwarded.headers.routes().is_empty(), "{forwarded:?}");
    assert_eq!(sent.transports(TRUNK1), [Transport::Udp]);
}

/// SPEC V1: same transport on both sides: one Record-Route entry, as before.
#[test]
fn one_transport_one_record_route() {
    let mut sim = Sim::new(tcp_trunk1(config()));
    let to_t1 = sim
        .send_tcp(CALLER_CONN, tcp_invite("tcp-rr", "z9hG4bKtcprr").to_bytes())
        .request(TRUNK1);
    let rr: Vec<String> = to_t1
        .headers
        .record_routes()
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(rr, [format!("sip:{PROXY};transport=tcp;lr")]);
}

/// SPEC V1: a trunk's INVITE over a connection it opened (an ephemeral source port)
/// is still recognised as the trunk's by its Via and refused, not routed
/// back out to the trunks (a loop, or an inbound call billed outbound).
#[test]
fn an_invite_from_a_trunk_over_its_own_connection_is_refused() {
    let mut sim = Sim::new(tcp_trunk1(config()));
    let mut from_trunk = tcp_invite("tcp-in", "z9hG4bKtcpin");
    from_trunk.headers.pop_via();
    from_trunk.headers.push_via(Bytes::from(format!(
        "SIP/2.0/TCP {TRUNK1};branch=z9hG4bKtcpin"
    )));
    let sent = sim.send_tcp("10.0.1.1:45000", from_trunk.to_bytes());
    assert_eq!(sent.statuses("10.0.1.1:45000"), [403]);
    assert!(sent.to(TRUNK1).is_empty() && sent.to(TRUNK2).is_empty());
}

/// SPEC V1: a 486 to a TCP caller is sent once: no timer G over a reliable transport;
/// the caller's ACK ends the transaction at once (timer I is zero).
#[test]
fn final_answers_to_a_tcp_caller_are_not_retransmitted() {
    let mut sim = Sim::new(config());
    let caller_invite = tcp_invite("tcp-2", "z9hG4bKtcp2");
    let to_t1 = sim
        .send_tcp(CALLER_CONN, caller_invite.to_bytes())
        .request(TRUNK1);
    let busy = sim.send_response(TRUNK1, &answer(&to_t1, 486, "t1", TRUNK1));
    assert_eq!(busy.statuses(CALLER_CONN), [486]);
    let later = sim.run_until(Duration::from_secs(10));
    assert!(later.to(CALLER_CONN).is_empty(), "{later:#?}");
    let response = busy.response(CALLER_CONN);
    let ack = hotsite_sip::message::ack_for(&caller_invite, &response).unwrap();
    assert!(sim.send_tcp(CALLER_CONN, ack.to_bytes()).is_empty());
    sim.run_until(Duration::from_secs(11));
    assert_eq!(sim.proxy.sizes().calls, 0);
}

/// SPEC V1, V2: a TCP trunk gets the INVITE over TCP, with a TCP Via of ours, and no
/// retransmissions; silence still fails over at invite_timeout.
#[test]
fn a_tcp_trunk_gets_one_invite_and_silence_still_fails_over() {
    let mut sim = Sim::new(tcp_trunk1(config()));
    let sent = sim.send_request(CALLER, &invite("tcp-3", "z9hG4bKtcp3", "+4420"));
    let to_t1 = sent.request(TRUNK1);
    assert_eq!(sent.transports(TRUNK1), [Transport::Tcp]);
    assert_eq!(&to_t1.headers.vias()[0].transport[..], b"TCP");
    let quiet = sim.run_until(Duration::from_millis(1999));
    assert!(
        quiet.to(TRUNK1).is_empty(),
        "no timer A over TCP: {quiet:#?}"
    );
    let sent = sim.run_until(Duration::from_secs(2));
    assert_eq!(sent.methods(TRUNK2), ["INVITE"]);
    assert_eq!(sent.transports(TRUNK2), [Transport::Udp]);
    assert!(!sim.proxy.trunks().in_service(0));
}

/// SPEC V1, V2: the driver cannot connect to trunk 1: the call trying it
/// moves to trunk 2 in the same step (not after invite_timeout), trunk 1 is
/// out of service with the reason, and the next call skips it. A call that
/// exhausts its trunks this way gets 503 naming the reason.
#[test]
fn an_unreachable_tcp_trunk_fails_over_at_once() {
    let mut sim = Sim::new(tcp_trunk1(config()));
    sim.send_request(CALLER, &invite("tcp-4", "z9hG4bKtcp4", "+4420"))
        .request(TRUNK1);
    sim.run_until(Duration::from_millis(3));
    sim.proxy.handle_unreachable(
        sim.now,
        Peer::tcp(addr(TRUNK1)),
        "TCP connect: Connection refused (os error 111)",
    );
    let sent = sim.drain();
    assert_eq!(sent.methods(TRUNK2), ["INVITE"]);
    assert!(!sim.proxy.trunks().in_service(0));
    let status = &sim.proxy.trunk_status()[0];
    assert_eq!(status.causes, [Cause::Passive]);
    assert_eq!(
        status.detail,
        format!("tcp:{TRUNK1}: TCP connect: Connection refused (os error 111)")
    );
    assert_eq!(status.transport, Transport::Tcp);
    let events = sim.take_events();
    assert_eq!(
        failovers(&events)[0].cause,
        "unreachable: TCP connect: Connection refused (os error 111)"
    );
    let next = sim.send_request(CALLER, &invite("tcp-5", "z9hG4bKtcp5", "+4420"));
    assert!(next.to(TRUNK1).is_empty());

    // One trunk, unreachable: 503 with the reason.
    let mut one_trunk = tcp_trunk1(config());
    one_trunk.groups[0].trunks = vec![0];
    one_trunk.groups[0].max_attempts = 1;
    let mut sim = Sim::new(one_trunk);
    sim.send_request(CALLER, &invite("tcp-6", "z9hG4bKtcp6", "+4420"));
    sim.proxy
        .handle_unreachable(sim.now, Peer::tcp(addr(TRUNK1)), "TCP connect: refused");
    let sent = sim.drain();
    let answer = sent.response(CALLER);
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    let warning = answer.headers.value(HeaderName::Warning).unwrap();
    assert!(
        String::from_utf8_lossy(warning).contains("trunk t1: unreachable: TCP connect: refused"),
        "{warning:?}"
    );
    // Trunk 2 is a UDP trunk: a TCP peer at its address is not it.
    let mut sim = Sim::new(tcp_trunk1(config()));
    sim.send_request(CALLER, &invite("tcp-7", "z9hG4bKtcp7", "+4420"));
    sim.proxy
        .handle_unreachable(sim.now, Peer::tcp(addr(TRUNK2)), "refused");
    assert!(sim.drain().is_empty());
    assert!(sim.proxy.trunks().in_service(1));
}

/// SPEC V2: probes to a TCP trunk go over TCP, are not retransmitted, and fail at
/// once when the trunk cannot be reached.
#[test]
fn probes_to_a_tcp_trunk_go_over_tcp() {
    let mut config = probed_t1(tcp_trunk1(config()));
    if let Some(probe) = config.trunks[0].probe.as_mut() {
        (probe.fall, probe.rise) = (1, 1);
    }
    let (mut sim, first) = Sim::start(config);
    let probe = first.request(TRUNK1);
    assert_eq!(probe.method, Method::Options);
    assert_eq!(first.transports(TRUNK1), [Transport::Tcp]);
    assert_eq!(&probe.headers.vias()[0].transport[..], b"TCP");
    assert!(sim.run_until(Duration::from_millis(1900)).is_empty());
    sim.run_until(Duration::from_secs(5));
    sim.proxy
        .handle_unreachable(sim.now, Peer::tcp(addr(TRUNK1)), "TCP connect: refused");
    sim.drain();
    assert!(!sim.proxy.trunks().in_service(0));
    assert_eq!(sim.proxy.trunk_status()[0].probe, Some(HealthState::Down));
}

/// SPEC V1: in-dialog requests: to a TCP trunk's Contact (no transport parameter)
/// over TCP, since the address is the trunk's; to a Contact with
/// `transport=tcp` over TCP.
#[test]
fn in_dialog_requests_pick_the_transport_of_their_next_hop() {
    let mut sim = Sim::new(tcp_trunk1(config()));
    let caller_invite = invite("tcp-8", "z9hG4bKtcp8", "+4420");
    let to_t1 = sim.send_request(CALLER, &caller_invite).request(TRUNK1);
    let ok = sim
        .send_response(TRUNK1, &answer(&to_t1, 200, "t1", TRUNK1))
        .response(CALLER);
    let bye = in_dialog(Method::Bye, &caller_invite, &ok, "z9hG4bKbye8", 2);
    let sent = sim.send_request(CALLER, &bye);
    assert_eq!(sent.methods(TRUNK1), ["BYE"]);
    assert_eq!(sent.transports(TRUNK1), [Transport::Tcp]);

    // The callee's BYE to the caller's Contact with transport=tcp.
    let mut bye = Request::new(Method::Bye, uri(&format!("sip:pbx@{CALLER};transport=tcp")));
    let h = &mut bye.headers;
    h.push(Header::new(
        HeaderName::Via,
        format!("SIP/2.0/TCP {TRUNK1};branch=z9hG4bKbyeback"),
    ));
    h.push(Header::new(HeaderName::Route, format!("<sip:{PROXY};lr>")));
    h.push(Header::new(HeaderName::MaxForwards, "70"));
    h.push(Header::new(HeaderName::From, "<sip:+4420@t1>;tag=t1"));
    h.push(Header::new(
        HeaderName::To,
        "<sip:pbx@caller>;tag=caller-tag",
    ));
    h.push(Header::new(HeaderName::CallId, "tcp-8"));
    h.push(Header::new(HeaderName::CSeq, "1 BYE"));
    let sent = sim.send_tcp("10.0.1.1:45000", bye.to_bytes());
    assert_eq!(sent.methods(CALLER), ["BYE"]);
    assert_eq!(sent.transports(CALLER), [Transport::Tcp]);
    let forwarded = sent.request(CALLER);
    assert_eq!(&forwarded.headers.vias()[0].transport[..], b"TCP");
    // The caller's 200 goes back along the trunk's Via: over TCP, to the
    // connection the BYE came on (received/rport stamped).
    let bye_ok = answer(&forwarded, 200, "", CALLER);
    let sent = sim.send_response(CALLER, &bye_ok);
    assert_eq!(sent.statuses("10.0.1.1:45000"), [200]);
    assert_eq!(sent.transports("10.0.1.1:45000"), [Transport::Tcp]);
}
