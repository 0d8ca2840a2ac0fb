//! Transaction tests in simulated time: every timer of RFC 3261 §17 (and the
//! RFC 6026 Accepted states), over UDP and over reliable transports.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::message::{parse, response_to, Message, Request, Response, StatusCode};

#[allow(clippy::disallowed_methods)] // test epoch: only differences matter
fn epoch() -> Instant {
    Instant::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn request(method: &str) -> Request {
    let text = format!(
        "{method} sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 {method}\r\n\
Content-Length: 0\r\n\r\n"
    );
    match parse(text.as_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn answer(request: &Request, code: u16) -> Response {
    response_to(request, StatusCode::new(code).unwrap(), Some("b0b"))
}

fn udp() -> TransactionConfig {
    TransactionConfig::default()
}

fn tcp() -> TransactionConfig {
    TransactionConfig {
        reliable: true,
        ..TransactionConfig::default()
    }
}

fn parse_wire(bytes: &Bytes) -> Message {
    parse(bytes).expect("transactions send valid messages")
}

/// Drives a client transaction on its own timers until it terminates (or
/// `until`), returning each transmission's offset and each event's offset.
fn run_client(
    t: &mut ClientTransaction,
    start: Instant,
    until: Duration,
) -> (Vec<Duration>, Vec<(Duration, TransactionEvent)>) {
    let mut sent = Vec::new();
    let mut events = Vec::new();
    let mut now = start;
    loop {
        while t.poll_transmit().is_some() {
            sent.push(now - start);
        }
        while let Some(e) = t.poll_event() {
            events.push((now - start, e));
        }
        match t.poll_timeout() {
            Some(at) if at - start <= until && !t.is_terminated() => {
                now = at;
                t.handle_timeout(now);
            }
            _ => return (sent, events),
        }
    }
}

fn secs_f(d: &[Duration]) -> Vec<f64> {
    d.iter().map(|d| d.as_secs_f64()).collect()
}

// ---------------------------------------------------------------------------
// Client INVITE (§17.1.1)
// ---------------------------------------------------------------------------

/// §17.1.1.2: over UDP the INVITE is retransmitted after 500 ms, 1 s, 2 s, 4 s,
/// 8 s, 16 s (timer A doubling), and timer B gives up at 64·T1 = 32 s.
#[test]
fn client_invite_retransmits_with_doubling_until_timer_b() {
    let start = epoch();
    let mut t = ClientTransaction::new(start, request("INVITE"), udp()).unwrap();
    let (sent, events) = run_client(&mut t, start, Duration::from_secs(60));
    assert_eq!(secs_f(&sent), [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]);
    assert_eq!(
        events,
        [(Duration::from_secs(32), TransactionEvent::Timeout)]
    );
    assert!(t.is_terminated());
    assert_eq!(t.poll_timeout(), None);
}

/// §17.1.1.2: T1 is configurable; the schedule scales with it.
#[test]
fn client_invite_schedule_follows_t1() {
    let start = epoch();
    let config = TransactionConfig {
        t1: ms(100),
        ..udp()
    };
    let mut t = ClientTransaction::new(start, request("INVITE"), config).unwrap();
    let (sent, events) = run_client(&mut t, start, Duration::from_secs(60));
    assert_eq!(secs_f(&sent), [0.0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3]);
    assert_eq!(events, [(ms(6400), TransactionEvent::Timeout)]);
}

/// §17.1.1.2: a provisional response stops retransmissions, and timer B no
/// longer applies (the TU decides how long to wait: timer C of a proxy).
#[test]
fn client_invite_provisional_stops_retransmission() {
    let start = epoch();
    let invite = request("INVITE");
    let mut t = ClientTransaction::new(start, invite.clone(), udp()).unwrap();
    t.handle_timeout(start + ms(500));
    t.handle_response(start + ms(700), answer(&invite, 180));
    assert_eq!(
        t.poll_transmit().map(|b| b.len()),
        Some(invite.to_bytes().len())
    );
    assert_eq!(
        t.poll_transmit().map(|b| b.len()),
        Some(invite.to_bytes().len())
    );
    assert!(t.poll_transmit().is_none());
    assert!(
        matches!(t.poll_event(), Some(TransactionEvent::Provisional(r)) if r.status == StatusCode::RINGING)
    );
    assert_eq!(t.poll_timeout(), None, "no A, no B after a provisional");
    let ClientTransaction::Invite(inner) = &t else {
        unreachable!()
    };
    assert_eq!(inner.state(), ClientInviteState::Proceeding);
    // A later 183 is passed up too.
    t.handle_response(start + ms(900), answer(&invite, 183));
    assert!(matches!(
        t.poll_event(),
        Some(TransactionEvent::Provisional(_))
    ));
}

/// §17.1.1.3: a 300–699 answer is ACKed by the transaction (To from the
/// response, same branch), passed up once; retransmissions of it are ACKed again
/// without telling the TU; timer D (32 s) ends the transaction.
#[test]
fn client_invite_acks_failures_and_absorbs_retransmissions() {
    let start = epoch();
    let invite = request("INVITE");
    let mut t = ClientTransaction::new(start, invite.clone(), udp()).unwrap();
    t.poll_transmit();
    let busy = answer(&invite, 486);
    t.handle_response(start + ms(300), busy.clone());
    let ack = match parse_wire(&t.poll_transmit().expect("ACK")) {
        Message::Request(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.branch(), invite.branch());
    assert_eq!(ack.headers.to().unwrap().tag(), Some("b0b"));
    assert_eq!(ack.headers.cseq().unwrap().seq, 314159);
    assert_eq!(t.poll_event(), Some(TransactionEvent::Final(busy.clone())));

    t.handle_response(start + ms(800), busy.clone());
    assert!(t.poll_transmit().is_some(), "ACK again");
    assert_eq!(t.poll_event(), None, "retransmission not passed up");
    assert_eq!(
        t.poll_timeout(),
        Some(start + ms(300) + Duration::from_secs(32))
    );
    t.handle_timeout(start + ms(300) + Duration::from_secs(32));
    assert!(t.is_terminated());
}

/// §17.1.1.2 and RFC 6026 §8.4: a 2xx is passed up and not ACKed (the ACK is
/// the TU's); retransmitted 2xx are passed up too until timer M.
#[test]
fn client_invite_passes_2xx_up_without_ack() {
    let start = epoch();
    let invite = request("INVITE");
    let mut t = ClientTransaction::new(start, invite.clone(), udp()).unwrap();
    t.poll_transmit();
    let ok = answer(&invite, 200);
    t.handle_response(start + ms(100), ok.clone());
    assert!(t.poll_transmit().is_none(), "no ACK for a 2xx");
    assert_eq!(t.poll_event(), Some(TransactionEvent::Final(ok.clone())));
    t.handle_response(start + ms(600), ok.clone());
    assert_eq!(t.poll_event(), Some(TransactionEvent::Final(ok)));
    t.handle_response(start + ms(700), answer(&invite, 486));
    assert_eq!(
        t.poll_event(),
        None,
        "a late failure after a 2xx is dropped"
    );
    let ClientTransaction::Invite(inner) = &t else {
        unreachable!()
    };
    assert_eq!(inner.state(), ClientInviteState::Accepted);
    t.handle_timeout(start + ms(100) + Duration::from_secs(32));
    assert!(t.is_terminated());
}

/// §17.1.1.2: over a reliable transport nothing is retransmitted and timer D is
/// zero: the transaction ends as soon as the failure is ACKed.
#[test]
fn client_invite_over_tcp() {
    let start = epoch();
    let invite = request("INVITE");
    let mut t = ClientTransaction::new(start, invite.clone(), tcp()).unwrap();
    assert_eq!(
        t.poll_timeout(),
        Some(start + Duration::from_secs(32)),
        "only B"
    );
    t.poll_transmit();
    t.handle_response(start + ms(50), answer(&invite, 503));
    assert!(t.poll_transmit().is_some(), "ACK");
    assert!(matches!(t.poll_event(), Some(TransactionEvent::Final(_))));
    assert!(t.is_terminated());
}

/// §17.1.4: a transport error is reported and ends the transaction.
#[test]
fn client_transport_error() {
    let start = epoch();
    for method in ["INVITE", "OPTIONS"] {
        let mut t = ClientTransaction::new(start, request(method), udp()).unwrap();
        t.handle_transport_error(start);
        assert_eq!(t.poll_event(), Some(TransactionEvent::TransportError));
        assert!(t.is_terminated());
        t.handle_transport_error(start);
        assert_eq!(t.poll_event(), None);
    }
}

/// §17: ACK is not a transaction.
#[test]
fn ack_starts_no_transaction() {
    let start = epoch();
    let ack = request("ACK");
    assert!(ClientTransaction::new(start, ack.clone(), udp()).is_err());
    assert!(ServerTransaction::new(start, ack, udp()).is_err());
}

// ---------------------------------------------------------------------------
// Client non-INVITE (§17.1.2)
// ---------------------------------------------------------------------------

/// §17.1.2.2: timer E doubles from T1 up to T2 (4 s); timer F gives up at 32 s.
#[test]
fn client_non_invite_retransmits_capped_at_t2_until_timer_f() {
    let start = epoch();
    let mut t = ClientTransaction::new(start, request("OPTIONS"), udp()).unwrap();
    let (sent, events) = run_client(&mut t, start, Duration::from_secs(60));
    assert_eq!(
        secs_f(&sent),
        [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    );
    assert_eq!(
        events,
        [(Duration::from_secs(32), TransactionEvent::Timeout)]
    );
}

/// §17.1.2.2: in Proceeding the request is retransmitted every T2.
#[test]
fn client_non_invite_proceeding_retransmits_every_t2() {
    let start = epoch();
    let options = request("OPTIONS");
    let mut t = ClientTransaction::new(start, options.clone(), udp()).unwrap();
    t.poll_transmit();
    t.handle_response(start + ms(200), answer(&options, 100));
    assert!(matches!(
        t.poll_event(),
        Some(TransactionEvent::Provisional(_))
    ));
    let (sent, _) = run_client(&mut t, start, Duration::from_secs(13));
    assert_eq!(secs_f(&sent), [0.5, 4.5, 8.5, 12.5]);
}

/// §17.1.2.2: a final response completes the transaction; retransmitted finals
/// are absorbed for T4 (timer K), zero over TCP.
#[test]
fn client_non_invite_final_and_timer_k() {
    let start = epoch();
    let options = request("OPTIONS");
    let mut t = ClientTransaction::new(start, options.clone(), udp()).unwrap();
    t.poll_transmit();
    let ok = answer(&options, 200);
    t.handle_response(start + ms(40), ok.clone());
    assert_eq!(t.poll_event(), Some(TransactionEvent::Final(ok.clone())));
    t.handle_response(start + ms(90), ok.clone());
    assert_eq!(t.poll_event(), None);
    assert!(t.poll_transmit().is_none());
    assert_eq!(
        t.poll_timeout(),
        Some(start + ms(40) + Duration::from_secs(5))
    );
    t.handle_timeout(start + ms(5040));
    assert!(t.is_terminated());

    let mut t = ClientTransaction::new(start, options.clone(), tcp()).unwrap();
    t.handle_response(start + ms(40), ok);
    assert!(t.is_terminated(), "K is zero over TCP");
    assert!(matches!(t.poll_event(), Some(TransactionEvent::Final(_))));
}

/// §17.1.2.2 (timer F): a late `handle_timeout` fires every due timer at once.
#[test]
fn late_timeout_fires_everything_due() {
    let start = epoch();
    let mut t = ClientTransaction::new(start, request("OPTIONS"), udp()).unwrap();
    t.poll_transmit();
    t.handle_timeout(start + Duration::from_secs(40));
    assert_eq!(t.poll_event(), Some(TransactionEvent::Timeout));
    assert!(t.is_terminated());
}

// ---------------------------------------------------------------------------
// Server INVITE (§17.2.1)
// ---------------------------------------------------------------------------

fn drain(t: &mut ServerTransaction) -> Vec<Message> {
    std::iter::from_fn(|| t.poll_transmit())
        .map(|b| parse_wire(&b))
        .collect()
}

fn statuses(messages: &[Message]) -> Vec<u16> {
    messages
        .iter()
        .map(|m| match m {
            Message::Response(r) => r.status.as_u16(),
            Message::Request(r) => panic!("server sent a request {r}"),
        })
        .collect()
}

/// §17.2.1: 100 Trying after 200 ms of TU silence; INVITE retransmissions get
/// the last provisional again.
#[test]
fn server_invite_sends_trying_and_repeats_provisionals() {
    let start = epoch();
    let invite = request("INVITE");
    let mut t = ServerTransaction::new(start, invite.clone(), udp()).unwrap();
    assert_eq!(t.poll_timeout(), Some(start + ms(200)));
    t.handle_timeout(start + ms(200));
    let sent = drain(&mut t);
    assert_eq!(statuses(&sent), [100]);
    let Message::Response(trying) = &sent[0] else {
        unreachable!()
    };
    assert_eq!(trying.headers.to().unwrap().tag(), None);
    t.handle_request(start + ms(500), invite.clone());
    assert_eq!(statuses(&drain(&mut t)), [100]);
    t.respond(start + ms(600), answer(&invite, 180)).unwrap();
    t.handle_request(start + ms(1500), invite);
    assert_eq!(statuses(&drain(&mut t)), [180, 180]);
}

/// §17.2.1: no 100 if the TU answers within 200 ms.
#[test]
fn server_invite_no_trying_when_the_tu_is_quick() {
    let start = epoch();
    let invite = request("INVITE");
    let mut t = ServerTransaction::new(start, invite.clone(), udp()).unwrap();
    t.respond(start + ms(50), answer(&invite, 180)).unwrap();
    t.handle_timeout(start + ms(300));
    assert_eq!(statuses(&drain(&mut t)), [180]);
}

/// §17.2.1: a failure is retransmitted by timer G (T1 doubling up to T2) until
/// timer H (64·T1) reports that no ACK came.
#[test]
fn server_invite_retransmits_failure_until_timer_h() {
    let start = epoch();
    let invite = request("INVITE");
    let mut t = ServerTransaction::new(start, invite.clone(), udp()).unwrap();
    t.respond(start, answer(&invite, 486)).unwrap();
    let mut sent = Vec::new();
    let mut events = Vec::new();
    let mut now = start;
    while !t.is_terminated() {
        sent.extend(std::iter::repeat_n(now - start, drain(&mut t).len()));
        events.extend(std::iter::from_fn(|| t.poll_event()).map(|e| (now - start, e)));
        now = t.poll_timeout().unwrap();
        t.handle_timeout(now);
    }
    events.extend(std::iter::from_fn(|| t.poll_event()).map(|e| (now - start, e)));
    assert_eq!(
        secs_f(&sent),
        [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    );
    assert_eq!(
        events,
        [(Duration::from_secs(32), TransactionEvent::Timeout)]
    );
}

/// §17.2.1: the ACK moves Completed to Confirmed; ACK retransmissions are
/// absorbed for T4 (timer I); INVITE retransmissions before the ACK get the
/// final again.
#[test]
fn server_invite_ack_confirms_and_timer_i_ends() {
    let start = epoch();
    let invite = request("INVITE");
    let mut t = ServerTransaction::new(start, invite.clone(), udp()).unwrap();
    t.respond(start, answer(&invite, 404)).unwrap();
    t.handle_request(start + ms(100), invite.clone());
    assert_eq!(statuses(&drain(&mut t)), [404, 404]);
    let ack = request("ACK");
    t.handle_request(start + ms(200), ack.clone());
    let ServerTransaction::Invite(inner) = &t else {
        unreachable!()
    };
    assert_eq!(inner.state(), ServerInviteState::Confirmed);
    t.handle_request(start + ms(300), ack);
    t.handle_request(start + ms(400), invite);
    assert!(drain(&mut t).is_empty(), "Confirmed absorbs everything");
    assert_eq!(t.poll_event(), None);
    assert_eq!(t.poll_timeout(), Some(start + ms(5200)));
    t.handle_timeout(start + ms(5200));
    assert!(t.is_terminated());
}

/// RFC 6026 §8.6–8.7: after a 2xx the transaction is Accepted: INVITE
/// retransmissions are absorbed (the TU retransmits the 2xx), ACKs go up to the
/// TU, and timer L ends it.
#[test]
fn server_invite_accepted_after_2xx() {
    let start = epoch();
    let invite = request("INVITE");
    let mut t = ServerTransaction::new(start, invite.clone(), udp()).unwrap();
    let ok = answer(&invite, 200);
    t.respond(start, ok.clone()).unwrap();
    t.handle_request(start + ms(500), invite.clone());
    assert_eq!(statuses(&drain(&mut t)), [200]);
    t.respond(start + ms(500), ok).unwrap();
    assert_eq!(
        statuses(&drain(&mut t)),
        [200],
        "TU retransmission goes out"
    );
    let ack = request("ACK");
    t.handle_request(start + ms(600), ack.clone());
    assert_eq!(t.poll_event(), Some(TransactionEvent::Ack(ack)));
    assert!(t.respond(start + ms(700), answer(&invite, 486)).is_err());
    t.handle_timeout(start + Duration::from_secs(32));
    assert!(t.is_terminated());
}

/// §17.2.1 over TCP: no G retransmissions; timer I is zero.
#[test]
fn server_invite_over_tcp() {
    let start = epoch();
    let invite = request("INVITE");
    let mut t = ServerTransaction::new(start, invite.clone(), tcp()).unwrap();
    t.respond(start, answer(&invite, 480)).unwrap();
    assert_eq!(
        t.poll_timeout(),
        Some(start + Duration::from_secs(32)),
        "only H"
    );
    t.handle_request(start + ms(10), request("ACK"));
    assert!(t.is_terminated());
    assert_eq!(statuses(&drain(&mut t)), [480]);
}

// ---------------------------------------------------------------------------
// Server non-INVITE (§17.2.2)
// ---------------------------------------------------------------------------

/// §17.2.2: retransmissions are absorbed in Trying, answered with the last
/// provisional in Proceeding and the final in Completed; timer J (64·T1) ends it.
#[test]
fn server_non_invite_absorbs_and_repeats_until_timer_j() {
    let start = epoch();
    let bye = request("BYE");
    let mut t = ServerTransaction::new(start, bye.clone(), udp()).unwrap();
    assert_eq!(t.poll_timeout(), None);
    t.handle_request(start + ms(500), bye.clone());
    assert!(drain(&mut t).is_empty());
    t.respond(start + ms(600), answer(&bye, 100)).unwrap();
    t.handle_request(start + ms(1500), bye.clone());
    assert_eq!(statuses(&drain(&mut t)), [100, 100]);
    t.respond(start + ms(1600), answer(&bye, 200)).unwrap();
    t.handle_request(start + ms(3500), bye.clone());
    assert_eq!(statuses(&drain(&mut t)), [200, 200]);
    assert!(t.respond(start + ms(3600), answer(&bye, 500)).is_err());
    assert_eq!(
        t.poll_timeout(),
        Some(start + ms(1600) + Duration::from_secs(32))
    );
    t.handle_timeout(start + ms(33_600));
    assert!(t.is_terminated());

    let mut t = ServerTransaction::new(start, bye.clone(), tcp()).unwrap();
    t.respond(start, answer(&bye, 200)).unwrap();
    assert!(t.is_terminated(), "J is zero over TCP");
}

// ---------------------------------------------------------------------------
// Matching (§17.1.3, §17.2.3)
// ---------------------------------------------------------------------------

/// §17.1.3: a response matches the client transaction by branch and CSeq
/// method; §17.2.3: a request matches by branch, sent-by and method, with ACK
/// matching its INVITE and CANCEL its own transaction.
#[test]
fn transaction_keys() {
    let invite = request("INVITE");
    let client = TransactionKey::client(&invite).unwrap();
    assert_eq!(
        TransactionKey::for_response(&answer(&invite, 180)),
        Some(client.clone())
    );
    let options = request("OPTIONS");
    assert_ne!(
        TransactionKey::for_response(&answer(&options, 200)),
        Some(client)
    );

    let server = TransactionKey::for_request(&invite).unwrap();
    assert_eq!(
        TransactionKey::for_request(&request("ACK")),
        Some(server.clone())
    );
    let cancel = TransactionKey::for_request(&request("CANCEL")).unwrap();
    assert_ne!(cancel, server);
    assert_eq!(cancel.with_method(Method::Invite), server);
    // Same branch from another sender is another transaction.
    let mut other = invite.clone();
    other.headers.pop_via();
    other
        .headers
        .push_via("SIP/2.0/UDP PC33.atlanta.example.com:5070;branch=z9hG4bKnashds8");
    assert_ne!(TransactionKey::for_request(&other), Some(server.clone()));
    // sent-by compares case-insensitively.
    let mut upper = invite.clone();
    upper.headers.pop_via();
    upper
        .headers
        .push_via("SIP/2.0/UDP PC33.ATLANTA.example.com;branch=z9hG4bKnashds8");
    assert_eq!(TransactionKey::for_request(&upper), Some(server));
}

/// §17.2.3: without the magic cookie, an INVITE and the ACK of its failure
/// still match (RFC 2543 rules), and another INVITE does not.
#[test]
fn legacy_keys_without_magic_cookie() {
    let legacy = |r: &Request| {
        let mut r = r.clone();
        r.headers.pop_via();
        r.headers
            .push_via("SIP/2.0/UDP old.example.com;branch=1234");
        r
    };
    let invite = legacy(&request("INVITE"));
    let key = TransactionKey::for_request(&invite).unwrap();
    let mut ack = legacy(&request("ACK"));
    ack.headers.set(crate::message::Header::new(
        crate::message::HeaderName::To,
        "Bob <sip:bob@biloxi.example.com>;tag=b0b",
    ));
    assert_eq!(TransactionKey::for_request(&ack), Some(key.clone()));
    let mut next = invite.clone();
    next.headers.set(crate::message::Header::new(
        crate::message::HeaderName::CSeq,
        "314160 INVITE",
    ));
    assert_ne!(TransactionKey::for_request(&next), Some(key));
}
