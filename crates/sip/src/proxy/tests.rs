//! Tests of the shared proxy pieces (SPEC V1, S1–S8 build on them): Via
//! stamping and where responses go (RFC 3261 §18.2, RFC 3581), next hops,
//! our own addresses, branches, transaction keys and Warning. The proxies'
//! own tests (`hotsite-voice`'s `proxy/tests/`) run them end to end.

use std::net::SocketAddr;

use hotsite_core::Rng;

use super::*;
use crate::message::{parse, HeaderName, Message, Request, Uri};

fn request(vias: &[&str], routes: &[&str]) -> Request {
    let mut text = String::from("INVITE sip:bob@192.0.2.9 SIP/2.0\r\n");
    for via in vias {
        text.push_str(&format!("Via: {via}\r\n"));
    }
    for route in routes {
        text.push_str(&format!("Route: {route}\r\n"));
    }
    text.push_str(
        "Max-Forwards: 70\r\nTo: <sip:bob@192.0.2.9>\r\nFrom: <sip:alice@192.0.2.1>;tag=f1\r\n\
         Call-ID: c1@192.0.2.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    );
    match parse(text.as_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn top_via_text(request: &Request) -> String {
    String::from_utf8(request.headers.value(HeaderName::Via).unwrap().to_vec()).unwrap()
}

/// §18.2.1: an IP sent-by equal to the source over UDP is left alone and
/// answered at the sent-by port.
#[test]
fn stamp_via_leaves_a_matching_udp_via_alone() {
    let mut r = request(&["SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKa"], &[]);
    let via = r.headers.top_via().unwrap();
    let to = stamp_via(&mut r.headers, &via, Peer::udp(addr("192.0.2.1:40000")));
    assert_eq!(to, Peer::udp(addr("192.0.2.1:5070")));
    assert_eq!(
        top_via_text(&r),
        "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKa"
    );
}

/// §18.2.1: another source IP adds `received`; the port stays the sent-by's.
#[test]
fn stamp_via_adds_received_for_another_source() {
    let mut r = request(&["SIP/2.0/UDP pc.example.com;branch=z9hG4bKa"], &[]);
    let via = r.headers.top_via().unwrap();
    let to = stamp_via(&mut r.headers, &via, Peer::udp(addr("192.0.2.7:40000")));
    assert_eq!(to, Peer::udp(addr("192.0.2.7:5060")));
    assert_eq!(
        top_via_text(&r),
        "SIP/2.0/UDP pc.example.com;branch=z9hG4bKa;received=192.0.2.7"
    );
}

/// RFC 3581: `rport` asked for is filled in, and answers go to the source.
/// Over TCP `rport` is always stamped (the connection's port).
#[test]
fn stamp_via_fills_rport_and_always_over_tcp() {
    let mut r = request(&["SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bKa"], &[]);
    let via = r.headers.top_via().unwrap();
    let to = stamp_via(&mut r.headers, &via, Peer::udp(addr("192.0.2.1:40000")));
    assert_eq!(to, Peer::udp(addr("192.0.2.1:40000")));
    assert_eq!(
        top_via_text(&r),
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;received=192.0.2.1;rport=40000"
    );

    let mut r = request(&["SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKa"], &[]);
    let via = r.headers.top_via().unwrap();
    let to = stamp_via(&mut r.headers, &via, Peer::tcp(addr("192.0.2.1:41000")));
    assert_eq!(to, Peer::tcp(addr("192.0.2.1:41000")));
    assert_eq!(
        top_via_text(&r),
        "SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKa;received=192.0.2.1;rport=41000"
    );
}

/// §18.2.2: a response follows `received` and `rport`; names and transports
/// we do not speak give no address.
#[test]
fn response_addr_follows_received_and_rport() {
    let r = request(
        &["SIP/2.0/TCP pc.example.com:5070;branch=z9hG4bKa;received=192.0.2.7;rport=41000"],
        &[],
    );
    let via = r.headers.top_via().unwrap();
    assert_eq!(
        response_addr(&via),
        Some(Peer::tcp(addr("192.0.2.7:41000")))
    );

    let r = request(&["SIP/2.0/UDP 192.0.2.8;branch=z9hG4bKa"], &[]);
    let via = r.headers.top_via().unwrap();
    assert_eq!(response_addr(&via), Some(Peer::udp(addr("192.0.2.8:5060"))));

    let r = request(&["SIP/2.0/UDP pc.example.com;branch=z9hG4bKa"], &[]);
    assert_eq!(response_addr(&r.headers.top_via().unwrap()), None);
    let r = request(&["SIP/2.0/TLS 192.0.2.8;branch=z9hG4bKa"], &[]);
    assert_eq!(response_addr(&r.headers.top_via().unwrap()), None);
}

/// The next hop of a URI: `maddr` over the host, 5060 by default, the
/// `transport` parameter; `sips:` and names are refused.
#[test]
fn uri_addr_reads_maddr_port_and_transport() {
    let uri = |s: &str| Uri::parse(s.to_owned()).unwrap();
    assert_eq!(
        uri_addr(&uri("sip:192.0.2.5;lr")),
        Ok((addr("192.0.2.5:5060"), None))
    );
    assert_eq!(
        uri_addr(&uri("sip:x.example.com:5080;maddr=192.0.2.6;transport=TCP")),
        Ok((addr("192.0.2.6:5080"), Some(Transport::Tcp)))
    );
    assert_eq!(
        uri_addr(&uri("sip:[2001:db8::1]:5062")),
        Ok((addr("[2001:db8::1]:5062"), None))
    );
    assert!(uri_addr(&uri("sips:192.0.2.5")).is_err());
    assert!(uri_addr(&uri("sip:x.example.com")).is_err());
    assert!(uri_addr(&uri("sip:192.0.2.5;transport=sctp")).is_err());
}

/// Our Route entries (public or bound address, double record-routing) are
/// popped; the first foreign one stops it. An unspecified bound address
/// names nobody.
#[test]
fn us_pops_our_routes_and_knows_our_vias() {
    let us = Us::new(addr("203.0.113.1:5060"), addr("10.0.0.1:5080"));
    let mut r = request(
        &["SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKa"],
        &[
            "<sip:203.0.113.1;lr>",
            "<sip:10.0.0.1:5080;transport=tcp;lr>",
            "<sip:192.0.2.5;lr>",
        ],
    );
    assert_eq!(us.pop_routes(&mut r.headers), 2);
    assert_eq!(us.pop_routes(&mut r.headers), 0);
    assert!(us.is_via(&r.headers.top_via().unwrap()));
    assert!(!us.is_uri(&Uri::parse("sip:203.0.113.1:5070").unwrap()));

    let any = Us::new(addr("203.0.113.1:5060"), addr("0.0.0.0:5060"));
    assert!(!any.is_uri(&Uri::parse("sip:0.0.0.0").unwrap()));
    assert!(any.is_uri(&Uri::parse("sip:203.0.113.1").unwrap()));
}

/// Stateful branches are random and recognised; stateless ones are a hash of
/// the incoming transaction: equal for a retransmission and for the ACK of a
/// re-INVITE's failure (same Via, other method), not for another branch.
#[test]
fn branches_stateful_random_stateless_stable() {
    let mut rng = Rng::new(1);
    let a = stateful_branch(&mut rng);
    let b = stateful_branch(&mut rng);
    assert_ne!(a, b);
    assert!(a.starts_with(b"z9hG4bKhs") && is_stateful_branch(&a));

    let invite = request(&["SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx1"], &[]);
    let via = invite.headers.top_via().unwrap();
    let once = stateless_branch(&invite, &via);
    assert!(once.starts_with(b"z9hG4bKhd") && !is_stateful_branch(&once));
    assert_eq!(once.len(), "z9hG4bKhd".len() + 32);
    assert_eq!(stateless_branch(&invite, &via), once);
    let mut ack = invite.clone();
    ack.method = crate::message::Method::Ack;
    assert_eq!(stateless_branch(&ack, &via), once);

    let other = request(&["SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx2"], &[]);
    let other_via = other.headers.top_via().unwrap();
    assert_ne!(stateless_branch(&other, &other_via), once);
}

/// §17.2.3: the key is the branch and sent-by (host in any case); an old
/// client's key is built from the request (Call-ID among it).
#[test]
fn server_key_by_branch_or_by_request() {
    let key = |r: &Request| ServerKey::of(r, &r.headers.top_via().unwrap());
    let a = request(&["SIP/2.0/UDP PC.example.com;branch=z9hG4bKa"], &[]);
    let b = request(&["SIP/2.0/UDP pc.example.com:5060;branch=z9hG4bKa"], &[]);
    let c = request(&["SIP/2.0/UDP pc.example.com;branch=z9hG4bKb"], &[]);
    assert!(key(&a).is_some());
    assert_eq!(key(&a), key(&b));
    assert_ne!(key(&a), key(&c));

    let old = request(&["SIP/2.0/UDP pc.example.com;branch=1"], &[]);
    let mut other_call = old.clone();
    other_call.headers.set(crate::message::Header::new(
        HeaderName::CallId,
        "c2@192.0.2.1",
    ));
    assert!(key(&old).is_some());
    assert_ne!(key(&old), key(&other_call));
    assert_ne!(key(&old), key(&a));
}

/// §20.43: code 399, our host, the text with quotes and line ends defused.
#[test]
fn warning_is_a_valid_399() {
    let header = warning("203.0.113.1:5060", "no \"trunk\"\r\nleft \\ here");
    assert_eq!(header.kind(), HeaderName::Warning);
    assert_eq!(
        &header.value()[..],
        b"399 203.0.113.1:5060 \"no 'trunk'  left   here\""
    );
}
