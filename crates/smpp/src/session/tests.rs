//! Session tests in simulated time: no sockets, no sleeps. A scripted SMSC reads
//! what the session transmits and answers with PDUs built by the codec.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::pdu::{tag, BindKind, BindResp, MessageState, Tlvs};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn config() -> SessionConfig {
    let mut config = SessionConfig::new("hotsite", "secret");
    config.window = 3;
    config.enquire_link_interval = secs(10);
    config.dead_peer_timeout = secs(30);
    config.response_timeout = secs(5);
    config
}

/// A session plus the SMSC side of its wire.
struct Harness {
    start: Instant,
    session: Session,
}

impl Harness {
    fn new(config: SessionConfig) -> Harness {
        #[allow(clippy::disallowed_methods)] // test epoch: only differences matter
        let start = Instant::now();
        Harness {
            start,
            session: Session::new(config, start),
        }
    }

    fn at(&self, second: u64) -> Instant {
        self.start + secs(second)
    }

    /// A session that completed its bind at t=0.
    fn bound() -> Harness {
        let mut h = Harness::new(config());
        let bind = h.sent();
        assert_eq!(bind.len(), 1);
        h.feed(
            0,
            Pdu::response(
                bind[0].sequence,
                CommandStatus::ESME_ROK,
                Body::BindTransceiverResp(BindResp {
                    system_id: "smsc".into(),
                    tlvs: Tlvs::default(),
                }),
            ),
        );
        assert_eq!(
            h.events(),
            [SessionEvent::Bound {
                system_id: "smsc".into()
            }]
        );
        h
    }

    /// Every PDU the session wants to write, decoded.
    fn sent(&mut self) -> Vec<Pdu> {
        let mut pdus = Vec::new();
        while let Some(bytes) = self.session.poll_transmit() {
            pdus.push(Pdu::decode(&bytes).expect("the session sends valid PDUs"));
        }
        pdus
    }

    fn events(&mut self) -> Vec<SessionEvent> {
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }

    fn feed(&mut self, second: u64, pdu: Pdu) {
        let bytes = pdu.encode().unwrap();
        self.session.handle_input(self.at(second), &bytes);
    }

    fn feed_millis(&mut self, millis: u64, pdu: Pdu) {
        let bytes = pdu.encode().unwrap();
        self.session
            .handle_input(self.start + Duration::from_millis(millis), &bytes);
    }

    fn tick(&mut self, second: u64) {
        self.session.handle_timeout(self.at(second));
    }

    fn submit(&mut self, second: u64, id: SubmitId) -> Result<u32, SubmitError> {
        self.session.submit(self.at(second), id, message(id))
    }
}

fn message(id: SubmitId) -> ShortMessage {
    let mut tlvs = Tlvs::default();
    tlvs.set_user_message_reference(id as u16);
    ShortMessage {
        destination: crate::pdu::Address {
            ton: 1,
            npi: 1,
            addr: "4915112345678".into(),
        },
        short_message: Bytes::from(format!("message {id}")),
        registered_delivery: 1,
        tlvs,
        ..ShortMessage::default()
    }
}

fn submit_resp(sequence: u32, status: CommandStatus, message_id: &str) -> Pdu {
    Pdu::response(
        sequence,
        status,
        Body::SubmitSmResp(MessageIdResp {
            message_id: message_id.into(),
            tlvs: Tlvs::default(),
        }),
    )
}

/// SPEC M4: a transceiver bind carrying the account goes out first; OK binds.
#[test]
fn bind_success_sends_transceiver_bind_with_credentials() {
    let mut h = Harness::new(config());
    assert_eq!(h.session.state(), SessionState::Binding);
    let sent = h.sent();
    let Body::BindTransceiver(bind) = &sent[0].body else {
        panic!("expected bind_transceiver, got {:?}", sent[0])
    };
    assert_eq!(
        (
            bind.system_id.as_str(),
            bind.password.as_str(),
            bind.interface_version
        ),
        ("hotsite", "secret", 0x34)
    );
    assert!(
        !h.session.can_submit(h.at(0)),
        "no submit before the bind is answered"
    );
    assert_eq!(
        h.submit(0, 1),
        Err(SubmitError::NotBound(SessionState::Binding))
    );
    h.feed(
        1,
        Pdu::response(
            sent[0].sequence,
            CommandStatus::ESME_ROK,
            Body::BindTransceiverResp(BindResp::default()),
        ),
    );
    assert_eq!(h.session.state(), SessionState::Bound);
    assert!(h.session.can_submit(h.at(1)));
}

/// Bind kind follows the config.
#[test]
fn bind_kind_is_configurable() {
    let mut config = config();
    config.bind_kind = BindKind::Transmitter;
    let mut h = Harness::new(config);
    assert!(matches!(h.sent()[0].body, Body::BindTransmitter(_)));
}

/// SPEC M4: a refused bind closes the session with the SMSC's status.
#[test]
fn bind_rejection_closes_with_status() {
    let mut h = Harness::new(config());
    let bind = h.sent().remove(0);
    h.feed(
        1,
        Pdu::response(
            bind.sequence,
            CommandStatus::ESME_RINVPASWD,
            Body::BindTransceiverResp(BindResp::default()),
        ),
    );
    assert_eq!(
        h.events(),
        [SessionEvent::Closed {
            reason: CloseReason::BindRejected(CommandStatus::ESME_RINVPASWD),
            ambiguous: vec![],
            unsent: vec![]
        }]
    );
    assert_eq!(h.session.state(), SessionState::Closed);
    assert_eq!(h.session.poll_timeout(), None);
}

/// A generic_nack to the bind is a rejection too.
#[test]
fn bind_answered_by_generic_nack_is_rejected() {
    let mut h = Harness::new(config());
    let bind = h.sent().remove(0);
    h.feed(
        1,
        Pdu::response(
            bind.sequence,
            CommandStatus::ESME_RINVCMDID,
            Body::GenericNack,
        ),
    );
    assert!(matches!(
        h.events()[..],
        [SessionEvent::Closed {
            reason: CloseReason::BindRejected(CommandStatus::ESME_RINVCMDID),
            ..
        }]
    ));
}

/// SPEC M4: an SMSC that never answers the bind is given up after the response timeout.
#[test]
fn bind_timeout_closes() {
    let mut h = Harness::new(config());
    h.sent();
    assert_eq!(h.session.poll_timeout(), Some(h.at(5)));
    h.tick(4);
    assert!(h.events().is_empty());
    h.tick(5);
    assert!(matches!(
        h.events()[..],
        [SessionEvent::Closed {
            reason: CloseReason::BindTimeout,
            ..
        }]
    ));
}

/// SPEC M4: enquire_link keeps a quiet bind alive; an answered one resets the clock.
#[test]
fn enquire_link_is_sent_after_silence_and_answer_keeps_bind() {
    let mut h = Harness::bound();
    assert_eq!(h.session.poll_timeout(), Some(h.at(10)));
    h.tick(10);
    let sent = h.sent();
    assert!(matches!(
        sent[..],
        [Pdu {
            body: Body::EnquireLink,
            ..
        }]
    ));
    h.feed(
        11,
        Pdu::response(
            sent[0].sequence,
            CommandStatus::ESME_ROK,
            Body::EnquireLinkResp,
        ),
    );
    // Next one is due 10 s after the last thing received.
    assert_eq!(h.session.poll_timeout(), Some(h.at(21)));
    h.tick(21);
    assert!(matches!(
        h.sent()[..],
        [Pdu {
            body: Body::EnquireLink,
            ..
        }]
    ));
    assert_eq!(h.session.state(), SessionState::Bound);
}

/// SPEC M4: a quiet peer that stops answering (blackhole: TCP up, nothing comes
/// back) is declared dead exactly `dead_peer_timeout` after the last thing it sent,
/// after being asked with enquire_link.
#[test]
fn silent_peer_is_declared_dead_within_dead_peer_timeout() {
    let mut h = Harness::bound();
    let mut now = 0;
    let mut enquire_links = 0;
    while h.session.state() != SessionState::Closed {
        let next = h
            .session
            .poll_timeout()
            .expect("a bound session always has a timer");
        now = (next - h.start).as_secs();
        assert!(now <= 30, "still not dead at {now} s");
        h.tick(now);
        enquire_links += h
            .sent()
            .iter()
            .filter(|p| p.body == Body::EnquireLink)
            .count();
    }
    assert_eq!(now, 30);
    assert!(
        enquire_links >= 1,
        "the session asked before declaring the peer dead"
    );
    assert_eq!(
        h.events(),
        [SessionEvent::Closed {
            reason: CloseReason::PeerSilent(secs(30)),
            ambiguous: vec![],
            unsent: vec![]
        }]
    );
}

/// SPEC M7, M8: with traffic, a blackhole shows sooner: a submit that times out
/// with not a word from the peer since it left ends the bind at once, instead
/// of feeding more messages into the silence; what was in flight is ambiguous.
#[test]
fn submit_timeout_into_silence_ends_the_bind() {
    let mut h = Harness::bound();
    h.submit(2, 7).unwrap();
    h.submit(3, 8).unwrap();
    h.sent();
    h.tick(7);
    assert_eq!(
        h.events(),
        [SessionEvent::Closed {
            reason: CloseReason::PeerSilent(secs(7)),
            ambiguous: vec![7, 8],
            unsent: vec![]
        }]
    );
}

/// Any PDU from the peer is a sign of life: a busy bind never needs enquire_link.
#[test]
fn traffic_counts_as_liveness() {
    let mut h = Harness::bound();
    for second in (5..100).step_by(5) {
        let sequence = h.submit(second, second).unwrap();
        h.sent();
        h.feed(second, submit_resp(sequence, CommandStatus::ESME_ROK, "m"));
        h.tick(second);
        assert!(h.sent().is_empty(), "no enquire_link needed at {second} s");
    }
    assert_eq!(h.session.state(), SessionState::Bound);
}

/// Window: at most `window` outstanding submits; a response frees a slot.
#[test]
fn window_limits_outstanding_submits() {
    let mut h = Harness::bound();
    let sequences: Vec<u32> = (1..=3).map(|id| h.submit(1, id).unwrap()).collect();
    assert_eq!(h.session.in_flight(), 3);
    assert!(!h.session.can_submit(h.at(1)));
    assert_eq!(h.submit(1, 4), Err(SubmitError::WindowFull(3)));
    h.sent();
    h.feed(2, submit_resp(sequences[1], CommandStatus::ESME_ROK, "abc"));
    assert_eq!(
        h.events(),
        [SessionEvent::SubmitAccepted {
            id: 2,
            message_id: "abc".into()
        }]
    );
    assert!(h.session.can_submit(h.at(2)));
    assert!(h.submit(2, 4).is_ok());
    assert_eq!(h.submit(2, 5), Err(SubmitError::WindowFull(3)));
}

/// SPEC M7, M8: when the connection dies, submits that were written and not
/// answered come back as ambiguous, submits that never left as unsent.
#[test]
fn death_hands_back_ambiguous_and_unsent_submits() {
    let mut h = Harness::bound();
    let first = h.submit(1, 101).unwrap();
    h.submit(1, 102).unwrap();
    // Both written to the wire.
    assert_eq!(h.sent().len(), 2);
    h.submit(1, 103).unwrap();
    // 103 is still queued in the session when the TCP connection drops.
    h.feed(2, submit_resp(first, CommandStatus::ESME_ROK, "x1"));
    h.session.handle_disconnect();
    assert_eq!(
        h.events(),
        [
            SessionEvent::SubmitAccepted {
                id: 101,
                message_id: "x1".into()
            },
            SessionEvent::Closed {
                reason: CloseReason::ConnectionLost,
                ambiguous: vec![102],
                unsent: vec![103]
            },
        ]
    );
    assert_eq!(h.session.in_flight(), 0);
    assert!(
        h.session.poll_transmit().is_none(),
        "nothing is written after death"
    );
}

/// Sequence numbers run 1..=0x7FFFFFFF and wrap to 1, skipping numbers still in use.
#[test]
fn sequence_numbers_wrap_at_0x7fffffff() {
    let mut h = Harness::bound();
    h.session.next_sequence = MAX_SEQUENCE - 1;
    let a = h.submit(1, 1).unwrap();
    let b = h.submit(1, 2).unwrap();
    let c = h.submit(1, 3).unwrap();
    assert_eq!((a, b, c), (MAX_SEQUENCE - 1, MAX_SEQUENCE, 1));
    h.sent();
    // 2 and 3 come next, unless still outstanding.
    h.session.pending.insert(
        2,
        Pending {
            request: Request::EnquireLink,
            deadline: h.at(100),
        },
    );
    h.feed(2, submit_resp(a, CommandStatus::ESME_ROK, "a"));
    assert_eq!(h.submit(2, 4).unwrap(), 3);
    for pdu in h.sent() {
        assert!((1..=MAX_SEQUENCE).contains(&pdu.sequence));
    }
}

/// SPEC M14: throttling answers pause the bind (doubling) instead of failing the
/// message; the message is handed back to be sent again.
#[test]
fn throttling_pauses_the_bind_and_hands_the_message_back() {
    let mut h = Harness::bound();
    let s1 = h.submit(1, 1).unwrap();
    h.sent();
    h.feed(1, submit_resp(s1, CommandStatus::ESME_RTHROTTLED, ""));
    assert_eq!(
        h.events(),
        [SessionEvent::SubmitThrottled {
            id: 1,
            status: CommandStatus::ESME_RTHROTTLED,
            pause: secs(1)
        }]
    );
    assert!(!h.session.can_submit(h.at(1)));
    assert!(matches!(h.submit(1, 2), Err(SubmitError::Throttled(_))));
    assert!(h.session.poll_timeout().unwrap() <= h.at(2));
    h.tick(2);
    let s2 = h.submit(2, 2).unwrap();
    h.sent();
    h.feed(2, submit_resp(s2, CommandStatus::ESME_RMSGQFUL, ""));
    assert_eq!(
        h.events(),
        [SessionEvent::SubmitThrottled {
            id: 2,
            status: CommandStatus::ESME_RMSGQFUL,
            pause: secs(2)
        }]
    );
    assert!(!h.session.can_submit(h.at(3)));
    assert!(h.session.can_submit(h.at(4)));
    let s3 = h.submit(4, 3).unwrap();
    h.sent();
    h.feed(4, submit_resp(s3, CommandStatus::ESME_ROK, "ok"));
    h.events();
    // Success resets the pause.
    let s4 = h.submit(4, 4).unwrap();
    h.sent();
    h.feed(4, submit_resp(s4, CommandStatus::ESME_RTHROTTLED, ""));
    assert!(
        matches!(h.events()[..], [SessionEvent::SubmitThrottled { pause, .. }] if pause == secs(1))
    );
    assert_eq!(
        h.session.state(),
        SessionState::Bound,
        "throttling never unbinds"
    );
}

/// SPEC M14: other errors are reported with their status for the caller to classify.
#[test]
fn rejected_submit_reports_status() {
    let mut h = Harness::bound();
    let s = h.submit(1, 9).unwrap();
    h.sent();
    h.feed(1, submit_resp(s, CommandStatus::ESME_RINVDSTADR, ""));
    assert_eq!(
        h.events(),
        [SessionEvent::SubmitRejected {
            id: 9,
            status: CommandStatus::ESME_RINVDSTADR
        }]
    );
    let s = h.submit(1, 10).unwrap();
    h.sent();
    h.feed(
        1,
        Pdu::response(s, CommandStatus::ESME_RSYSERR, Body::GenericNack),
    );
    assert_eq!(
        h.events(),
        [SessionEvent::SubmitRejected {
            id: 10,
            status: CommandStatus::ESME_RSYSERR
        }]
    );
}

/// SPEC M8: a submit with no answer in time is ambiguous; a late answer is still reported.
#[test]
fn response_timeout_then_late_answer() {
    let mut h = Harness::bound();
    let s = h.submit(1, 5).unwrap();
    h.sent();
    // The peer is alive (it talks), it just never answers this one submit.
    h.feed(2, Pdu::request(99, Body::EnquireLink));
    h.sent();
    h.tick(5);
    assert!(h.events().is_empty());
    h.tick(6);
    assert_eq!(h.events(), [SessionEvent::SubmitTimedOut { id: 5 }]);
    assert_eq!(h.session.in_flight(), 0, "the slot is free again");
    h.feed(7, submit_resp(s, CommandStatus::ESME_ROK, "late"));
    assert_eq!(
        h.events(),
        [SessionEvent::SubmitAnsweredLate {
            id: 5,
            status: CommandStatus::ESME_ROK,
            message_id: "late".into()
        }]
    );
    // An answer to something never asked is ignored.
    h.feed(8, submit_resp(4242, CommandStatus::ESME_ROK, "who"));
    assert!(h.events().is_empty());
}

/// SPEC M6, M13: deliver_sm is surfaced with its receipt fields and answered only
/// when the caller says so, with the same sequence number.
#[test]
fn deliver_sm_is_answered_when_the_caller_says() {
    let mut h = Harness::bound();
    let mut tlvs = Tlvs::default();
    tlvs.set_receipted_message_id("abc123");
    tlvs.set_message_state(MessageState::Delivered);
    let receipt = ShortMessage {
        esm_class: ShortMessage::ESM_CLASS_RECEIPT,
        short_message: Bytes::from_static(b"id:999 stat:DELIVRD"),
        tlvs,
        ..ShortMessage::default()
    };
    h.feed(1, Pdu::request(77, Body::DeliverSm(receipt.clone())));
    let events = h.events();
    let [SessionEvent::Deliver {
        sequence: 77,
        message,
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert!(message.is_receipt());
    assert_eq!(message.tlvs.receipted_message_id(), Some("abc123"));
    assert_eq!(message.tlvs.message_state(), Some(MessageState::Delivered));
    assert!(h.sent().is_empty(), "not answered before it is stored");
    h.session.respond_deliver(77, CommandStatus::ESME_ROK);
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].sequence, sent[0].status),
        (77, CommandStatus::ESME_ROK)
    );
    assert!(matches!(sent[0].body, Body::DeliverSmResp(_)));
    // A second answer to the same sequence is ignored.
    h.session.respond_deliver(77, CommandStatus::ESME_ROK);
    assert!(h.sent().is_empty());
}

/// data_sm from the SMSC arrives as a delivery too, answered with data_sm_resp.
#[test]
fn data_sm_is_delivered_and_answered_with_data_sm_resp() {
    let mut h = Harness::bound();
    let mut tlvs = Tlvs::default();
    tlvs.set(tag::MESSAGE_PAYLOAD, Bytes::from_static(b"hello"));
    h.feed(
        1,
        Pdu::request(
            5,
            Body::DataSm(crate::pdu::DataSm {
                tlvs,
                ..Default::default()
            }),
        ),
    );
    let events = h.events();
    let [SessionEvent::Deliver {
        sequence: 5,
        message,
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(message.body().as_ref(), b"hello");
    h.session.respond_deliver(5, CommandStatus::ESME_ROK);
    assert!(matches!(
        h.sent()[..],
        [Pdu {
            body: Body::DataSmResp(_),
            sequence: 5,
            ..
        }]
    ));
}

/// Invariant 3: garbage gets a generic_nack with the peer's sequence number and
/// the session goes on; a broken length prefix cannot be resynchronised and closes.
#[test]
fn garbage_is_nacked_and_broken_framing_closes() {
    let mut h = Harness::bound();
    // Valid header, unknown command id 0x00000077.
    let frame = [0, 0, 0, 16, 0, 0, 0, 0x77, 0, 0, 0, 0, 0, 0, 0, 42];
    h.session.handle_input(h.at(1), &frame);
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].sequence, sent[0].status, &sent[0].body),
        (42, CommandStatus::ESME_RINVCMDID, &Body::GenericNack)
    );
    assert_eq!(h.session.state(), SessionState::Bound);
    // A submit_sm from the SMSC is not ours to take.
    h.feed(1, Pdu::request(43, Body::SubmitSm(ShortMessage::default())));
    assert!(matches!(
        h.sent()[..],
        [Pdu {
            sequence: 43,
            body: Body::GenericNack,
            ..
        }]
    ));
    // command_length 5: no way to find the next PDU.
    h.session.handle_input(h.at(2), &[0, 0, 0, 5, 1, 2, 3, 4]);
    assert!(matches!(
        h.events()[..],
        [SessionEvent::Closed {
            reason: CloseReason::Protocol(_),
            ..
        }]
    ));
}

/// Input split at every byte boundary decodes the same.
#[test]
fn input_split_anywhere_is_reassembled() {
    let mut h = Harness::bound();
    let bytes = Pdu::request(9, Body::EnquireLink).encode().unwrap();
    for byte in bytes.iter() {
        h.session.handle_input(h.at(1), std::slice::from_ref(byte));
    }
    assert!(matches!(
        h.sent()[..],
        [Pdu {
            sequence: 9,
            body: Body::EnquireLinkResp,
            ..
        }]
    ));
}

/// The peer's unbind is answered and ends the session; in-flight submits are ambiguous.
#[test]
fn peer_unbind_is_answered_and_closes() {
    let mut h = Harness::bound();
    h.submit(1, 1).unwrap();
    h.sent();
    h.feed(2, Pdu::request(50, Body::Unbind));
    assert!(matches!(
        h.sent()[..],
        [Pdu {
            sequence: 50,
            body: Body::UnbindResp,
            ..
        }]
    ));
    assert_eq!(
        h.events(),
        [SessionEvent::Closed {
            reason: CloseReason::PeerUnbound,
            ambiguous: vec![1],
            unsent: vec![]
        }]
    );
}

/// Our unbind waits for unbind_resp (or the response timeout), then closes.
#[test]
fn our_unbind_closes_on_response_or_timeout() {
    let mut h = Harness::bound();
    h.session.unbind(h.at(1));
    let sent = h.sent();
    assert!(matches!(
        sent[..],
        [Pdu {
            body: Body::Unbind,
            ..
        }]
    ));
    assert!(!h.session.can_submit(h.at(1)));
    h.feed(
        2,
        Pdu::response(sent[0].sequence, CommandStatus::ESME_ROK, Body::UnbindResp),
    );
    assert!(matches!(
        h.events()[..],
        [SessionEvent::Closed {
            reason: CloseReason::Unbound,
            ..
        }]
    ));

    let mut h = Harness::bound();
    h.session.unbind(h.at(1));
    h.sent();
    h.tick(6);
    assert!(matches!(
        h.events()[..],
        [SessionEvent::Closed {
            reason: CloseReason::Unbound,
            ..
        }]
    ));
}

/// The timer never points into the past after it has been handled: a driver
/// looping on poll_timeout cannot spin.
#[test]
fn handled_timers_move_forward() {
    let mut h = Harness::bound();
    h.submit(0, 1).unwrap();
    h.sent();
    let mut millis = 0u64;
    for _ in 0..200 {
        let Some(next) = h.session.poll_timeout() else {
            break;
        };
        let now = h.start + Duration::from_millis(millis);
        h.session.handle_timeout(now.max(next));
        millis = (now.max(next) - h.start).as_millis() as u64;
        h.sent();
        h.events();
        if let Some(after) = h.session.poll_timeout() {
            assert!(
                after > now.max(next),
                "timer did not advance at {millis} ms"
            );
        }
        // Answer every other enquire_link so the session lives a while.
        if millis % 20_000 < 10_000 {
            h.feed_millis(millis, Pdu::request(1000, Body::EnquireLink));
            h.sent();
        }
    }
}

/// Config bounds, each error naming its key.
#[test]
fn config_validation_names_the_key() {
    assert_eq!(config().validate(), Ok(()));
    let mut c = config();
    c.dead_peer_timeout = c.enquire_link_interval;
    assert_eq!(c.validate().unwrap_err().key(), "dead_peer_timeout");
    let mut c = config();
    c.window = 0;
    assert_eq!(c.validate().unwrap_err().key(), "window");
    let mut c = config();
    c.system_id = "a-very-long-system-id".into();
    assert_eq!(c.validate().unwrap_err().key(), "system_id");
    let mut c = config();
    c.password = "123456789".into();
    assert_eq!(c.validate().unwrap_err().key(), "password");
}

/// SPEC M8: a response whose body cannot be read is never nacked; an accepted
/// submit with an unreadable body is still accepted (not ambiguous).
#[test]
fn unreadable_response_settles_from_its_header() {
    let mut h = Harness::bound();
    let sequence = h.submit(1, 3).unwrap();
    h.sent();
    // submit_sm_resp, ESME_ROK, body with a message_id missing its NUL.
    let mut frame = vec![0, 0, 0, 19, 0x80, 0, 0, 4, 0, 0, 0, 0];
    frame.extend_from_slice(&sequence.to_be_bytes());
    frame.extend_from_slice(b"abc");
    h.session.handle_input(h.at(1), &frame);
    assert!(h.sent().is_empty(), "no generic_nack to a response");
    assert_eq!(
        h.events(),
        [SessionEvent::SubmitAccepted {
            id: 3,
            message_id: String::new()
        }]
    );
}

/// A bind answer arriving after we asked to unbind does not bring the session back.
#[test]
fn bind_answer_during_unbind_keeps_unbinding() {
    let mut h = Harness::new(config());
    let bind = h.sent().remove(0);
    h.session.unbind(h.at(0));
    h.feed(
        1,
        Pdu::response(
            bind.sequence,
            CommandStatus::ESME_ROK,
            Body::BindTransceiverResp(BindResp::default()),
        ),
    );
    assert_eq!(h.session.state(), SessionState::Unbinding);
    assert!(h.events().is_empty());
    assert!(matches!(
        h.submit(1, 1),
        Err(SubmitError::NotBound(SessionState::Unbinding))
    ));
}

/// ESME_RINVBNDSTS: the SMSC says we are not bound. The bind ends (to be rebound)
/// and the refused message is handed back as unsent, safe to send elsewhere.
#[test]
fn invalid_bind_status_answer_ends_the_bind() {
    let mut h = Harness::bound();
    let sequence = h.submit(1, 4).unwrap();
    h.sent();
    h.feed(1, submit_resp(sequence, CommandStatus::ESME_RINVBNDSTS, ""));
    assert!(matches!(
        &h.events()[..],
        [SessionEvent::Closed { reason: CloseReason::Protocol(_), ambiguous, unsent }] if ambiguous.is_empty() && unsent == &vec![4]
    ));
}
