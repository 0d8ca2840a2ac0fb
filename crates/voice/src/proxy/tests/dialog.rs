//! In-dialog requests by loose routing, their responses, and requests the
//! proxy answers itself.

use super::*;

/// Sets up an answered call through trunk 2 (trunk 1 answered 503) and
/// returns the caller's INVITE and the 200 the caller got.
fn answered_call(sim: &mut Sim) -> (Request, Response) {
    let caller_invite = invite("dlg-1", "z9hG4bKdlg", "+4420");
    let to_t1 = sim.send_request(CALLER, &caller_invite).request(TRUNK1);
    let to_t2 = sim
        .send_response(TRUNK1, &answer(&to_t1, 503, "t1", TRUNK1))
        .request(TRUNK2);
    let ok = sim
        .send_response(TRUNK2, &answer(&to_t2, 200, "t2", TRUNK2))
        .response(CALLER);
    (caller_invite, ok)
}

/// ACK and BYE follow the Route: our entry removed, sent to the Request-URI
/// (the trunk's Contact), our Via on top with a branch that a retransmission
/// keeps; the trunk's 200 to the BYE comes back to the caller, our Via popped.
#[test]
fn ack_and_bye_follow_the_route_and_answers_come_back() {
    let mut sim = Sim::new(config());
    let (caller_invite, ok) = answered_call(&mut sim);
    // Record-Route was ours, pointing where the caller sends.
    assert_eq!(
        ok.headers.record_routes()[0].uri.to_string(),
        format!("sip:{PROXY};lr")
    );

    let ack = in_dialog(Method::Ack, &caller_invite, &ok, "z9hG4bKack", 1);
    let sent = sim.send_request(CALLER, &ack);
    let forwarded = sent.request(TRUNK2);
    assert_eq!(forwarded.method, Method::Ack);
    assert!(forwarded.headers.routes().is_empty(), "our Route removed");
    assert_eq!(forwarded.headers.max_forwards(), Some(69));
    assert_eq!(forwarded.headers.vias().len(), 2);
    assert_eq!(forwarded.headers.vias()[0].sent_by(), PROXY);

    let bye = in_dialog(Method::Bye, &caller_invite, &ok, "z9hG4bKbye", 2);
    let first = sim.send_request(CALLER, &bye).request(TRUNK2);
    let again = sim.send_request(CALLER, &bye).request(TRUNK2);
    assert_eq!(branch_of(&first), branch_of(&again), "deterministic branch");
    assert_ne!(branch_of(&first), branch_of(&forwarded));

    let bye_ok = sim
        .send_response(TRUNK2, &answer(&first, 200, "", TRUNK2))
        .response(CALLER);
    assert_eq!(bye_ok.status, StatusCode::OK);
    assert_eq!(bye_ok.headers.vias().len(), 1);
    assert_eq!(bye_ok.headers.vias()[0].branch(), Some("z9hG4bKbye"));
    assert_eq!(sim.proxy.stats().in_dialog_forwarded, 3);
}

/// The callee's BYE goes the other way: to the caller's Contact.
#[test]
fn bye_from_the_trunk_side_reaches_the_caller() {
    let mut sim = Sim::new(config());
    let (caller_invite, ok) = answered_call(&mut sim);
    let mut bye = Request::new(Method::Bye, caller_invite.headers.contacts()[0].uri.clone());
    let h = &mut bye.headers;
    h.push(Header::new(
        HeaderName::Via,
        format!("SIP/2.0/UDP {TRUNK2};branch=z9hG4bKcalleebye"),
    ));
    h.push(Header::new(HeaderName::Route, format!("<sip:{PROXY};lr>")));
    h.push(Header::new(HeaderName::MaxForwards, "70"));
    // From and To swap for the callee.
    h.push(Header::new(
        HeaderName::From,
        ok.headers.value(HeaderName::To).unwrap().clone(),
    ));
    h.push(Header::new(
        HeaderName::To,
        caller_invite
            .headers
            .value(HeaderName::From)
            .unwrap()
            .clone(),
    ));
    h.push(
        caller_invite
            .headers
            .get(HeaderName::CallId)
            .unwrap()
            .clone(),
    );
    h.push(Header::new(HeaderName::CSeq, "1 BYE"));
    let to_caller = sim.send_request(TRUNK2, &bye).request(CALLER);
    assert_eq!(to_caller.method, Method::Bye);
    let answer_back = sim
        .send_response(CALLER, &answer(&to_caller, 200, "", CALLER))
        .response(TRUNK2);
    assert_eq!(answer_back.status, StatusCode::OK);
}

/// Requests with a To tag but no Route naming us are not ours: 481, and ACKs
/// are dropped; a next hop that is a name (not an IP) gets 404.
#[test]
fn in_dialog_requests_we_cannot_route() {
    let mut sim = Sim::new(config());
    let (caller_invite, ok) = answered_call(&mut sim);
    let mut bye = in_dialog(Method::Bye, &caller_invite, &ok, "z9hG4bKnr", 2);
    bye.headers.remove_all(HeaderName::Route);
    assert_eq!(sim.send_request(CALLER, &bye).statuses(CALLER), [481]);
    let mut ack = in_dialog(Method::Ack, &caller_invite, &ok, "z9hG4bKnra", 1);
    ack.headers.remove_all(HeaderName::Route);
    assert!(sim.send_request(CALLER, &ack).is_empty());

    let mut named = in_dialog(Method::Bye, &caller_invite, &ok, "z9hG4bKname", 3);
    named.uri = uri("sip:gw.carrier.example");
    let sent = sim.send_request(CALLER, &named);
    let not_found = sent.response(CALLER);
    assert_eq!(not_found.status, StatusCode::NOT_FOUND);
    assert!(not_found.headers.value(HeaderName::Warning).is_some());
}

/// OPTIONS outside a dialog is a health check of the proxy: 200.
#[test]
fn options_to_the_proxy_get_200() {
    let mut sim = Sim::new(config());
    let options = NewRequest {
        method: Method::Options,
        uri: uri(&format!("sip:{PROXY}")),
        from: uri(&format!("sip:monitor@{CALLER}")),
        from_tag: "mon".into(),
        to: uri(&format!("sip:{PROXY}")),
        call_id: "health-1".into(),
        cseq: 1,
        transport: "UDP".into(),
        sent_by: CALLER.into(),
        branch: Branch::from_string("z9hG4bKopt".into()),
        max_forwards: 70,
        contact: None,
    }
    .build();
    let sent = sim.send_request(CALLER, &options);
    let ok = sent.response(CALLER);
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.headers.value(HeaderName::Allow).is_some());
    assert!(sent.to(TRUNK1).is_empty());
}

/// Other requests outside a dialog: 405 with Allow.
#[test]
fn other_out_of_dialog_requests_get_405() {
    let mut sim = Sim::new(config());
    let mut message = invite("msg", "z9hG4bKmsg", "+4420");
    message.method = Method::new("MESSAGE").unwrap();
    message
        .headers
        .set(Header::new(HeaderName::CSeq, "1 MESSAGE"));
    let sent = sim.send_request(CALLER, &message);
    assert_eq!(sent.statuses(CALLER), [405]);
}

/// A response whose top Via is not ours is dropped.
#[test]
fn foreign_responses_are_dropped() {
    let mut sim = Sim::new(config());
    let stray = answer(&invite("x", "z9hG4bKx", "+4420"), 200, "t", TRUNK1);
    assert!(sim.send_response(TRUNK1, &stray).is_empty());
    assert_eq!(sim.proxy.stats().dropped, 1);
}
