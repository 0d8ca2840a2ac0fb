//! Tests of the PDU codec: exact wire bytes laid out as in SMPP 3.4 (section 4),
//! framing, every decode and encode error, and property tests (no panics on any
//! input; encode → decode round trip of every `Body` variant).

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A frame with a correct `command_length` around `body`.
fn frame(command: u32, status: u32, sequence: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&((HEADER_LEN + body.len()) as u32).to_be_bytes());
    out.extend_from_slice(&command.to_be_bytes());
    out.extend_from_slice(&status.to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Concatenates wire fragments.
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Encodes `pdu`, checks it against `wire`, and checks `wire` decodes back to `pdu`.
fn assert_wire(pdu: &Pdu, wire: &[u8]) {
    let encoded = pdu.encode().expect("encodes");
    assert_eq!(&encoded[..], wire, "encoded bytes of {pdu:?}");
    assert_eq!(frame_len(wire), Ok(Some(wire.len())));
    assert_eq!(Pdu::decode(wire).as_ref(), Ok(pdu));
}

/// The `Malformed` field of a decode error, or a panic.
fn malformed_field(err: &DecodeError) -> &'static str {
    match err {
        DecodeError::Malformed { field, .. } => field,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

fn addr(ton: u8, npi: u8, addr: &str) -> Address {
    Address {
        ton,
        npi,
        addr: addr.into(),
    }
}

// ---------------------------------------------------------------------------
// Exact wire bytes
// ---------------------------------------------------------------------------

/// bind_transceiver (SMPP 3.4 §4.1.5), every octet spelled out.
#[test]
fn bind_transceiver_encodes_every_byte() {
    let pdu = Pdu::request(
        1,
        Body::BindTransceiver(Bind {
            system_id: "hotsite".into(),
            password: "secret08".into(),
            system_type: "".into(),
            interface_version: 0x34,
            addr_ton: 1,
            addr_npi: 1,
            address_range: "44*".into(),
        }),
    );
    #[rustfmt::skip]
    let wire: &[u8] = &[
        0x00, 0x00, 0x00, 0x29, // command_length = 41
        0x00, 0x00, 0x00, 0x09, // command_id = bind_transceiver
        0x00, 0x00, 0x00, 0x00, // command_status = ESME_ROK
        0x00, 0x00, 0x00, 0x01, // sequence_number = 1
        b'h', b'o', b't', b's', b'i', b't', b'e', 0x00, // system_id
        b's', b'e', b'c', b'r', b'e', b't', b'0', b'8', 0x00, // password (8 = max)
        0x00, // system_type (empty)
        0x34, // interface_version
        0x01, // addr_ton
        0x01, // addr_npi
        b'4', b'4', b'*', 0x00, // address_range
    ];
    assert_eq!(wire.len(), 41);
    assert_wire(&pdu, wire);
    assert_eq!(pdu.command_id(), command_id::BIND_TRANSCEIVER);
    assert!(!pdu.body.is_response());
}

/// The three bind kinds differ only in command_id; `Body::bind` picks it.
#[test]
fn bind_kinds_map_to_command_ids() {
    let cases = [
        (
            BindKind::Transmitter,
            command_id::BIND_TRANSMITTER,
            command_id::BIND_TRANSMITTER_RESP,
        ),
        (
            BindKind::Receiver,
            command_id::BIND_RECEIVER,
            command_id::BIND_RECEIVER_RESP,
        ),
        (
            BindKind::Transceiver,
            command_id::BIND_TRANSCEIVER,
            command_id::BIND_TRANSCEIVER_RESP,
        ),
    ];
    for (kind, req, resp) in cases {
        let bind = Body::bind(kind, Bind::default());
        assert_eq!(bind.command_id(), req);
        let pdu = Pdu::request(7, bind);
        assert_eq!(Pdu::decode(&pdu.encode().unwrap()), Ok(pdu));
        let r = Body::bind_resp(kind, BindResp::default());
        assert_eq!(r.command_id(), resp);
        assert!(r.is_response());
    }
}

/// bind_transceiver_resp with system_id and sc_interface_version (SMPP 3.4 §4.1.6).
#[test]
fn bind_transceiver_resp_with_body() {
    let mut tlvs = Tlvs::default();
    tlvs.set(tag::SC_INTERFACE_VERSION, vec![0x34]);
    let pdu = Pdu::response(
        1,
        CommandStatus::ESME_ROK,
        Body::BindTransceiverResp(BindResp {
            system_id: "SMSC".into(),
            tlvs,
        }),
    );
    #[rustfmt::skip]
    let body: &[u8] = &[
        b'S', b'M', b'S', b'C', 0x00, // system_id
        0x02, 0x10, 0x00, 0x01, 0x34, // sc_interface_version = 0x34
    ];
    assert_wire(&pdu, &frame(0x8000_0009, 0, 1, body));
}

/// An error bind_transceiver_resp may omit the body entirely (SMPP 3.4 §4.1.6 /
/// 4.4.2); it decodes to the default body. SPEC M14: a bad password is permanent.
#[test]
fn bind_transceiver_resp_error_with_empty_body_decodes() {
    let wire = frame(0x8000_0009, 0x0E, 1, &[]);
    let pdu = Pdu::decode(&wire).unwrap();
    assert_eq!(pdu.status, CommandStatus::ESME_RINVPASWD);
    assert_eq!(pdu.body, Body::BindTransceiverResp(BindResp::default()));
    assert_eq!(pdu.status.outcome(), Outcome::Permanent);
    // Re-encoding writes the (empty) system_id: canonical, and decodes the same.
    let again = pdu.encode().unwrap();
    assert_eq!(&again[..], &frame(0x8000_0009, 0x0E, 1, &[0])[..]);
    assert_eq!(Pdu::decode(&again), Ok(pdu));
}

/// submit_sm (SMPP 3.4 §4.4.1) with user_message_reference (SPEC M8) and the
/// sar_* triple of a concatenated message, every field checked.
#[test]
fn submit_sm_with_tlvs_exact_bytes() {
    let mut tlvs = Tlvs::default();
    tlvs.set_user_message_reference(0x1234);
    tlvs.set_sar(0xABCD, 2, 1);
    let pdu = Pdu::request(
        2,
        Body::SubmitSm(ShortMessage {
            source: addr(5, 0, "Hotsite"),
            destination: addr(1, 1, "447700900123"),
            registered_delivery: 1,
            short_message: Bytes::from_static(b"Hello"),
            tlvs,
            ..ShortMessage::default()
        }),
    );
    #[rustfmt::skip]
    let body = cat(&[
        &[0x00],                               // service_type
        &[0x05, 0x00], b"Hotsite\0",           // source_addr_ton/npi/addr
        &[0x01, 0x01], b"447700900123\0",      // dest_addr_ton/npi/addr
        &[0x00, 0x00, 0x00],                   // esm_class, protocol_id, priority_flag
        &[0x00, 0x00],                         // schedule_delivery_time, validity_period
        &[0x01, 0x00, 0x00, 0x00],             // registered_delivery, replace, data_coding, sm_default_msg_id
        &[0x05], b"Hello",                     // sm_length, short_message
        &[0x02, 0x04, 0x00, 0x02, 0x12, 0x34], // user_message_reference
        &[0x02, 0x0C, 0x00, 0x02, 0xAB, 0xCD], // sar_msg_ref_num
        &[0x02, 0x0E, 0x00, 0x01, 0x02],       // sar_total_segments
        &[0x02, 0x0F, 0x00, 0x01, 0x01],       // sar_segment_seqnum
    ]);
    let wire = frame(command_id::SUBMIT_SM, 0, 2, &body);
    assert_eq!(&wire[..4], &[0, 0, 0, 79]);
    assert_wire(&pdu, &wire);
    let Body::SubmitSm(m) = Pdu::decode(&wire).unwrap().body else {
        panic!("not a submit_sm");
    };
    assert_eq!(m.tlvs.user_message_reference(), Some(0x1234));
    assert_eq!(m.tlvs.sar(), Some((0xABCD, 2, 1)));
    assert_eq!(m.body(), &Bytes::from_static(b"Hello"));
}

/// submit_sm whose body is in message_payload (sm_length 0): `body()` prefers it.
#[test]
fn submit_sm_with_message_payload() {
    let payload = Bytes::from(vec![b'x'; 300]);
    let mut tlvs = Tlvs::default();
    tlvs.set(tag::MESSAGE_PAYLOAD, payload.clone());
    let pdu = Pdu::request(
        3,
        Body::SubmitSm(ShortMessage {
            destination: addr(1, 1, "447700900123"),
            tlvs,
            ..ShortMessage::default()
        }),
    );
    #[rustfmt::skip]
    let body = cat(&[
        &[0x00, 0x00, 0x00, 0x00],              // service_type, source (0, 0, "")
        &[0x01, 0x01], b"447700900123\0",       // destination
        &[0, 0, 0, 0, 0, 0, 0, 0, 0],           // esm_class .. sm_default_msg_id
        &[0x00],                                // sm_length = 0
        &[0x04, 0x24, 0x01, 0x2C],              // message_payload, length 300
        &payload,
    ]);
    assert_wire(&pdu, &frame(command_id::SUBMIT_SM, 0, 3, &body));
    let Body::SubmitSm(m) = &pdu.body else {
        unreachable!()
    };
    assert_eq!(m.body(), &payload);
    assert_eq!(m.tlvs.user_message_reference(), None);
    assert_eq!(m.tlvs.sar(), None);
}

/// submit_sm_resp with a message_id (SMPP 3.4 §4.4.2).
#[test]
fn submit_sm_resp_ok() {
    let pdu = Pdu::response(
        2,
        CommandStatus::ESME_ROK,
        Body::SubmitSmResp(MessageIdResp {
            message_id: "hs-0001".into(),
            tlvs: Tlvs::default(),
        }),
    );
    assert_wire(&pdu, &frame(0x8000_0004, 0, 2, b"hs-0001\0"));
}

/// submit_sm_resp ESME_RTHROTTLED with no body at all decodes (SPEC M14: the
/// throttling statuses slow the bind down rather than fail the message).
#[test]
fn submit_sm_resp_error_with_empty_body() {
    for (status, outcome) in [
        (CommandStatus::ESME_RTHROTTLED, Outcome::Throttled),
        (CommandStatus::ESME_RMSGQFUL, Outcome::Throttled),
        (CommandStatus::ESME_RINVDSTADR, Outcome::Permanent),
    ] {
        let wire = frame(0x8000_0004, status.0, 9, &[]);
        let pdu = Pdu::decode(&wire).unwrap();
        assert_eq!(
            pdu,
            Pdu::response(9, status, Body::SubmitSmResp(MessageIdResp::default()))
        );
        assert_eq!(pdu.status.outcome(), outcome);
    }
    // With ESME_ROK the message_id is mandatory.
    let err = Pdu::decode(&frame(0x8000_0004, 0, 9, &[])).unwrap_err();
    assert_eq!(malformed_field(&err), "message_id");
}

/// A delivery receipt (deliver_sm, esm_class 0x04) is matched by
/// receipted_message_id and its state read from message_state, never from the
/// carrier's id in the receipt text (SPEC M13).
#[test]
fn deliver_sm_receipt_with_receipted_message_id_and_state() {
    let text: &[u8] = b"id:CARRIER42 sub:001 dlvrd:001 submit date:2401011200 \
                        done date:2401011201 stat:DELIVRD err:000 text:";
    #[rustfmt::skip]
    let body = cat(&[
        &[0x00],                                 // service_type
        &[0x01, 0x01], b"447700900123\0",        // source (the handset)
        &[0x05, 0x00], b"Hotsite\0",             // destination
        &[0x04, 0x00, 0x00],                     // esm_class = receipt, protocol_id, priority_flag
        &[0x00, 0x00],                           // schedule_delivery_time, validity_period
        &[0x00, 0x00, 0x00, 0x00],               // registered_delivery .. sm_default_msg_id
        &[text.len() as u8], text,               // sm_length, short_message
        &[0x00, 0x1E, 0x00, 0x08], b"hs-0001\0", // receipted_message_id (C-string)
        &[0x04, 0x27, 0x00, 0x01, 0x02],         // message_state = DELIVERED
    ]);
    let wire = frame(command_id::DELIVER_SM, 0, 77, &body);
    let pdu = Pdu::decode(&wire).unwrap();
    let Body::DeliverSm(m) = &pdu.body else {
        panic!("not a deliver_sm: {pdu:?}")
    };
    assert!(m.is_receipt());
    assert_eq!(m.tlvs.receipted_message_id(), Some("hs-0001"));
    assert_eq!(m.tlvs.message_state(), Some(MessageState::Delivered));
    assert!(MessageState::Delivered.is_final());
    assert_eq!(m.short_message, Bytes::from_static(text));

    // Built with the setters, it encodes to the same bytes.
    let mut tlvs = Tlvs::default();
    tlvs.set_receipted_message_id("hs-0001");
    tlvs.set_message_state(MessageState::Delivered);
    let built = Pdu::request(
        77,
        Body::DeliverSm(ShortMessage {
            source: addr(1, 1, "447700900123"),
            destination: addr(5, 0, "Hotsite"),
            esm_class: ShortMessage::ESM_CLASS_RECEIPT,
            short_message: Bytes::from_static(text),
            tlvs,
            ..ShortMessage::default()
        }),
    );
    assert_wire(&built, &wire);
}

/// `is_receipt` looks at the message-type bits (2..5) only (SPEC M13).
#[test]
fn is_receipt_checks_message_type_bits() {
    let with = |esm_class| ShortMessage {
        esm_class,
        ..ShortMessage::default()
    };
    assert!(!with(0x00).is_receipt()); // MO message
    assert!(with(0x04).is_receipt()); // SMSC delivery receipt
    assert!(with(0x44).is_receipt()); // receipt with UDHI set
    assert!(with(0x84).is_receipt()); // receipt with reply path set
    assert!(!with(0x08).is_receipt()); // SME delivery acknowledgement
    assert!(!with(0x20).is_receipt()); // intermediate notification
    assert!(!with(0x0C).is_receipt()); // both bits: not a receipt
}

/// message_state: all eight values, and malformed values give None (SPEC M13).
#[test]
fn message_state_values() {
    for v in 1..=8u8 {
        let state = MessageState::from_u8(v).unwrap();
        assert_eq!(state.as_u8(), v);
        let mut tlvs = Tlvs::default();
        tlvs.set_message_state(state);
        assert_eq!(tlvs.message_state(), Some(state));
    }
    assert_eq!(MessageState::from_u8(0), None);
    assert_eq!(MessageState::from_u8(9), None);
    assert!(!MessageState::Enroute.is_final());
    assert!(!MessageState::Unknown.is_final());
    assert!(MessageState::Rejected.is_final());
    let mut tlvs = Tlvs::default();
    tlvs.set(tag::MESSAGE_STATE, vec![2, 0]); // wrong length
    assert_eq!(tlvs.message_state(), None);
    // receipted_message_id without its NUL is read as well.
    tlvs.set(tag::RECEIPTED_MESSAGE_ID, &b"abc"[..]);
    assert_eq!(tlvs.receipted_message_id(), Some("abc"));
}

/// deliver_sm_resp: message_id is unused and written as a lone NUL.
#[test]
fn deliver_sm_resp_exact_bytes() {
    let pdu = Pdu::response(
        77,
        CommandStatus::ESME_ROK,
        Body::DeliverSmResp(MessageIdResp::default()),
    );
    assert_wire(&pdu, &frame(0x8000_0005, 0, 77, &[0]));
}

/// Header-only PDUs: enquire_link(_resp), unbind(_resp), generic_nack (SMPP 3.4 §4.2, 4.3, 4.11).
#[test]
fn header_only_pdus() {
    let cases = [
        (Body::EnquireLink, 0x0000_0015u32, 0u32),
        (Body::EnquireLinkResp, 0x8000_0015, 0),
        (Body::Unbind, 0x0000_0006, 0),
        (Body::UnbindResp, 0x8000_0006, 0),
        (Body::GenericNack, 0x8000_0000, 0x03), // ESME_RINVCMDID
    ];
    for (body, id, status) in cases {
        let pdu = Pdu::response(0xDEAD_BEEF, CommandStatus(status), body);
        #[rustfmt::skip]
        let wire = cat(&[
            &[0x00, 0x00, 0x00, 0x10],
            &id.to_be_bytes(),
            &status.to_be_bytes(),
            &[0xDE, 0xAD, 0xBE, 0xEF],
        ]);
        assert_wire(&pdu, &wire);
        // A body on a header-only PDU is trailing garbage.
        let mut long = frame(id, status, 1, &[0]);
        long[3] = 17;
        let err = Pdu::decode(&long).unwrap_err();
        assert_eq!(malformed_field(&err), "body");
    }
}

/// data_sm (SMPP 3.4 §4.7.1): fixed fields then TLVs, the body in message_payload.
#[test]
fn data_sm_exact_bytes() {
    let mut tlvs = Tlvs::default();
    tlvs.set(tag::MESSAGE_PAYLOAD, vec![0x00, 0x48, 0x00, 0x69]);
    tlvs.set_user_message_reference(7);
    let pdu = Pdu::request(
        5,
        Body::DataSm(DataSm {
            service_type: "WAP".into(),
            source: addr(5, 0, "Hotsite"),
            destination: addr(1, 1, "447700900123"),
            esm_class: 0,
            registered_delivery: 1,
            data_coding: 8,
            tlvs,
        }),
    );
    #[rustfmt::skip]
    let body = cat(&[
        b"WAP\0",                                     // service_type
        &[0x05, 0x00], b"Hotsite\0",                  // source
        &[0x01, 0x01], b"447700900123\0",             // destination
        &[0x00, 0x01, 0x08],                          // esm_class, registered_delivery, data_coding
        &[0x04, 0x24, 0x00, 0x04, 0x00, 0x48, 0x00, 0x69], // message_payload (UCS-2 "Hi")
        &[0x02, 0x04, 0x00, 0x02, 0x00, 0x07],        // user_message_reference
    ]);
    assert_wire(&pdu, &frame(command_id::DATA_SM, 0, 5, &body));
}

/// data_sm_resp (SMPP 3.4 §4.7.2) carries TLVs; an error one may have no body.
#[test]
fn data_sm_resp_with_tlvs_and_empty_error() {
    let mut tlvs = Tlvs::default();
    tlvs.set(0x0425, vec![1]); // delivery_failure_reason
    let pdu = Pdu::response(
        5,
        CommandStatus::ESME_RDELIVERYFAILURE,
        Body::DataSmResp(MessageIdResp {
            message_id: "m-1".into(),
            tlvs,
        }),
    );
    let body = cat(&[b"m-1\0", &[0x04, 0x25, 0x00, 0x01, 0x01]]);
    assert_wire(&pdu, &frame(0x8000_0103, 0xFE, 5, &body));

    let empty = Pdu::decode(&frame(0x8000_0103, 0xFE, 5, &[])).unwrap();
    assert_eq!(empty.body, Body::DataSmResp(MessageIdResp::default()));
}

// ---------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------

/// Fewer than 4 bytes: the length is unknown yet.
#[test]
fn frame_len_needs_more_for_prefix() {
    let wire = Pdu::request(1, Body::EnquireLink).encode().unwrap();
    for n in 0..4 {
        assert_eq!(frame_len(&wire[..n]), Ok(None), "{n} bytes");
    }
}

/// Prefix read but the frame is not complete yet.
#[test]
fn frame_len_needs_more_for_partial_frame() {
    let wire = Pdu::request(1, Body::EnquireLink).encode().unwrap();
    for n in 4..wire.len() {
        assert_eq!(frame_len(&wire[..n]), Ok(None), "{n} bytes");
    }
    // A maximal frame with only its header present also waits.
    assert_eq!(frame_len(&(MAX_PDU_LEN as u32).to_be_bytes()), Ok(None));
}

/// command_length below the header size cannot be resynchronised.
#[test]
fn frame_len_too_short() {
    for len in [0u32, 1, 4, 15] {
        assert_eq!(
            frame_len(&len.to_be_bytes()),
            Err(FrameError::TooShort(len))
        );
    }
    assert_eq!(frame_len(&16u32.to_be_bytes()), Ok(None));
}

/// command_length above MAX_PDU_LEN is corrupt.
#[test]
fn frame_len_too_long() {
    for len in [MAX_PDU_LEN as u32 + 1, u32::MAX] {
        assert_eq!(frame_len(&len.to_be_bytes()), Err(FrameError::TooLong(len)));
    }
}

/// A complete frame, alone or followed by the next one.
#[test]
fn frame_len_exact_and_with_following_bytes() {
    let wire = Pdu::request(1, Body::EnquireLink).encode().unwrap();
    assert_eq!(frame_len(&wire), Ok(Some(16)));
    let two = cat(&[&wire, &wire[..5]]);
    assert_eq!(frame_len(&two), Ok(Some(16)));
}

// ---------------------------------------------------------------------------
// Decode errors
// ---------------------------------------------------------------------------

/// An unsupported command (here replace_sm, 0x07) keeps the sequence so the
/// session can answer generic_nack ESME_RINVCMDID.
#[test]
fn decode_unknown_command() {
    let err = Pdu::decode(&frame(0x0000_0007, 0, 42, b"abc")).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnknownCommand {
            command_id: 7,
            sequence: 42
        }
    );
    assert_eq!(err.sequence(), Some(42));
    assert_eq!(err.nack_status(), CommandStatus::ESME_RINVCMDID);
}

/// A body cut short names the first field it could not read.
#[test]
fn decode_truncated_body_names_the_field() {
    let full = Pdu::request(
        3,
        Body::BindTransmitter(Bind {
            system_id: "sys".into(),
            password: "pw".into(),
            system_type: "t".into(),
            interface_version: 0x34,
            addr_ton: 0,
            addr_npi: 0,
            address_range: "".into(),
        }),
    )
    .encode()
    .unwrap();
    let body = &full[HEADER_LEN..];
    // Cut the body at every point and check the field named.
    let expected = [
        (0, "system_id"),
        (3, "system_id"),
        (4, "password"),
        (7, "system_type"),
        (9, "interface_version"),
        (10, "addr_ton"),
        (11, "addr_npi"),
        (12, "address_range"),
    ];
    for (cut, field) in expected {
        let wire = frame(command_id::BIND_TRANSMITTER, 0, 3, &body[..cut]);
        let err = Pdu::decode(&wire).unwrap_err();
        assert_eq!(malformed_field(&err), field, "cut at {cut}");
        assert_eq!(err.sequence(), Some(3));
        assert_eq!(err.nack_status(), CommandStatus::ESME_RINVCMDLEN);
        assert!(err.to_string().contains(field));
    }
    assert_eq!(body.len(), 13);

    // short_message shorter than sm_length.
    let mut sm = vec![0u8; 1 + 3 + 3 + 3 + 2 + 4];
    sm.push(10);
    sm.extend_from_slice(b"abc");
    let err = Pdu::decode(&frame(command_id::SUBMIT_SM, 0, 1, &sm)).unwrap_err();
    assert_eq!(malformed_field(&err), "short_message");
}

/// A C-octet string with no NUL inside its maximum size is refused.
#[test]
fn decode_cstring_without_nul() {
    // 16 octets without a NUL where system_id allows 15 + NUL.
    let mut body = vec![b'a'; 16];
    body.extend_from_slice(&[0; 12]);
    let err = Pdu::decode(&frame(command_id::BIND_TRANSCEIVER, 0, 1, &body)).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Malformed {
            command_id: command_id::BIND_TRANSCEIVER,
            sequence: 1,
            field: "system_id",
            reason: "longer than the field allows",
        }
    );
    // The body ends before any NUL.
    let err = Pdu::decode(&frame(command_id::SUBMIT_SM_RESP, 0, 1, b"abc")).unwrap_err();
    assert_eq!(malformed_field(&err), "message_id");
    // Not UTF-8: read as Latin-1, so an accented sender does not cost the PDU.
    let pdu = Pdu::decode(&frame(command_id::SUBMIT_SM_RESP, 0, 1, b"Jos\xe9\0")).unwrap();
    let Body::SubmitSmResp(resp) = pdu.body else {
        panic!()
    };
    assert_eq!(resp.message_id, "José");
}

/// sm_length 255 is above the 254-octet maximum of short_message.
#[test]
fn decode_sm_length_above_254() {
    let mut body = vec![0u8; 1 + 3 + 3 + 3 + 2 + 4];
    body.push(255);
    body.extend_from_slice(&[b'x'; 255]);
    let err = Pdu::decode(&frame(command_id::SUBMIT_SM, 0, 1, &body)).unwrap_err();
    assert_eq!(malformed_field(&err), "sm_length");
}

/// A TLV whose value runs past the end, or a cut tag/length: ESME_RINVOPTPARSTREAM.
#[test]
fn decode_tlv_past_the_end() {
    let ok = frame(0x8000_0103, 0, 1, b"id\0");
    for tail in [
        &[0x04, 0x24, 0x00, 0x05, b'a', b'b'][..], // declares 5, has 2
        &[0x04, 0x24, 0x00][..],                   // tag and half a length
        &[0x04][..],
    ] {
        let wire = frame(0x8000_0103, 0, 1, &cat(&[b"id\0", tail]));
        let err = Pdu::decode(&wire).unwrap_err();
        assert_eq!(malformed_field(&err), "tlv");
        assert_eq!(err.nack_status(), CommandStatus::ESME_RINVOPTPARSTREAM);
    }
    assert!(Pdu::decode(&ok).is_ok());
}

/// Octets after the last field are refused; after submit_sm_resp's message_id
/// they are read as TLVs (SMPP 5.0 and vendors add some), so two stray octets are
/// a broken TLV, while a whole TLV is kept.
#[test]
fn decode_trailing_bytes() {
    let err = Pdu::decode(&frame(command_id::SUBMIT_SM_RESP, 0, 1, b"id\0xx")).unwrap_err();
    assert_eq!(malformed_field(&err), "tlv");
    let pdu = Pdu::decode(&frame(
        command_id::SUBMIT_SM_RESP,
        0,
        1,
        b"id\0\x14\x25\x00\x01\x07",
    ))
    .unwrap();
    let Body::SubmitSmResp(resp) = &pdu.body else {
        panic!()
    };
    assert_eq!(
        (
            resp.message_id.as_str(),
            resp.tlvs.get(0x1425).map(|v| v.to_vec())
        ),
        ("id", Some(vec![7]))
    );
    let err = Pdu::decode(&frame(command_id::ENQUIRE_LINK, 0, 1, &[0])).unwrap_err();
    assert_eq!(malformed_field(&err), "body");
}

/// A frame whose length differs from command_length, or shorter than a header.
#[test]
fn decode_length_mismatch() {
    let mut wire = frame(command_id::ENQUIRE_LINK, 0, 1, &[]);
    wire[3] = 20;
    let err = Pdu::decode(&wire).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Length {
            declared: 20,
            actual: 16
        }
    );
    assert_eq!(err.sequence(), None);
    assert_eq!(err.nack_status(), CommandStatus::ESME_RINVCMDLEN);
    // Two frames handed over as one.
    let two = cat(&[&frame(0x15, 0, 1, &[]), &frame(0x15, 0, 2, &[])]);
    assert!(matches!(
        Pdu::decode(&two),
        Err(DecodeError::Length {
            declared: 16,
            actual: 32
        })
    ));
    for n in 0..HEADER_LEN {
        assert!(matches!(
            Pdu::decode(&wire[..n]),
            Err(DecodeError::Length { actual, .. }) if actual == n
        ));
    }
}

// ---------------------------------------------------------------------------
// Encode errors
// ---------------------------------------------------------------------------

/// system_id takes at most 15 characters; the error names the field.
#[test]
fn encode_too_long_system_id() {
    let bind = |system_id: &str| {
        Pdu::request(
            1,
            Body::BindTransceiver(Bind {
                system_id: system_id.into(),
                ..Bind::default()
            }),
        )
    };
    assert!(bind(&"a".repeat(15)).encode().is_ok());
    assert_eq!(
        bind(&"a".repeat(16)).encode(),
        Err(EncodeError::TooLong {
            field: "system_id",
            len: 16,
            max: 15
        })
    );
    // And in a submit: destination_addr at most 20.
    let submit = Pdu::request(
        1,
        Body::SubmitSm(ShortMessage {
            destination: addr(1, 1, &"1".repeat(21)),
            ..ShortMessage::default()
        }),
    );
    assert!(matches!(
        submit.encode(),
        Err(EncodeError::TooLong {
            field: "destination_addr",
            ..
        })
    ));
}

/// A NUL inside a C-octet string would end it early on the wire.
#[test]
fn encode_embedded_nul() {
    let pdu = Pdu::request(
        1,
        Body::BindTransceiver(Bind {
            password: "pa\0ss".into(),
            ..Bind::default()
        }),
    );
    assert_eq!(
        pdu.encode(),
        Err(EncodeError::EmbeddedNul { field: "password" })
    );
}

/// short_message takes at most 254 octets (longer bodies go in message_payload).
#[test]
fn encode_short_message_above_254() {
    let submit = |n: usize| {
        Pdu::request(
            1,
            Body::SubmitSm(ShortMessage {
                short_message: Bytes::from(vec![b'x'; n]),
                ..ShortMessage::default()
            }),
        )
    };
    assert!(submit(254).encode().is_ok());
    assert_eq!(
        submit(255).encode(),
        Err(EncodeError::TooLong {
            field: "short_message",
            len: 255,
            max: 254
        })
    );
}

/// A TLV value has a 16-bit length; a whole PDU at most MAX_PDU_LEN octets.
#[test]
fn encode_tlv_value_too_long_and_pdu_too_long() {
    let with_tlvs = |sizes: &[usize]| {
        let tlvs = Tlvs(
            sizes
                .iter()
                .map(|&n| Tlv {
                    tag: tag::MESSAGE_PAYLOAD,
                    value: Bytes::from(vec![0u8; n]),
                })
                .collect(),
        );
        Pdu::request(
            1,
            Body::DataSm(DataSm {
                tlvs,
                ..DataSm::default()
            }),
        )
    };
    let max = with_tlvs(&[65_535]).encode().unwrap();
    assert_eq!(Pdu::decode(&max), Ok(with_tlvs(&[65_535])));
    assert_eq!(
        with_tlvs(&[65_536]).encode(),
        Err(EncodeError::TooLong {
            field: "tlv",
            len: 65_536,
            max: 65_535
        })
    );
    assert!(matches!(
        with_tlvs(&[40_000, 40_000]).encode(),
        Err(EncodeError::PduTooLong(n)) if n > MAX_PDU_LEN
    ));
}

/// On error `encode_into` leaves the buffer exactly as it was; on success it appends.
#[test]
fn encode_into_leaves_buffer_unchanged_on_error() {
    let bad = [
        // Fails in the first field.
        Pdu::request(
            1,
            Body::BindTransceiver(Bind {
                system_id: "x".repeat(16),
                ..Bind::default()
            }),
        ),
        // Fails in the last field, after most of the body is written.
        Pdu::request(
            1,
            Body::BindTransceiver(Bind {
                address_range: "x".repeat(41),
                ..Bind::default()
            }),
        ),
        // Fails after everything is written (total size).
        Pdu::request(
            1,
            Body::DataSm(DataSm {
                tlvs: Tlvs(vec![
                    Tlv {
                        tag: 1,
                        value: Bytes::from(vec![0u8; 40_000]),
                    };
                    2
                ]),
                ..DataSm::default()
            }),
        ),
    ];
    for pdu in bad {
        let mut out = BytesMut::from(&b"previous frame"[..]);
        assert!(pdu.encode_into(&mut out).is_err());
        assert_eq!(&out[..], b"previous frame");
    }
    let mut out = BytesMut::from(&b"previous frame"[..]);
    let ok = Pdu::request(2, Body::EnquireLink);
    ok.encode_into(&mut out).unwrap();
    assert_eq!(&out[..14], b"previous frame");
    assert_eq!(Pdu::decode(&out[14..]), Ok(ok));
}

// ---------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------

/// Every command id the codec knows, plus a few it does not.
const COMMAND_IDS: [u32; 20] = [
    command_id::GENERIC_NACK,
    command_id::BIND_RECEIVER,
    command_id::BIND_RECEIVER_RESP,
    command_id::BIND_TRANSMITTER,
    command_id::BIND_TRANSMITTER_RESP,
    command_id::SUBMIT_SM,
    command_id::SUBMIT_SM_RESP,
    command_id::DELIVER_SM,
    command_id::DELIVER_SM_RESP,
    command_id::UNBIND,
    command_id::UNBIND_RESP,
    command_id::BIND_TRANSCEIVER,
    command_id::BIND_TRANSCEIVER_RESP,
    command_id::ENQUIRE_LINK,
    command_id::ENQUIRE_LINK_RESP,
    command_id::DATA_SM,
    command_id::DATA_SM_RESP,
    0x0000_0007, // replace_sm
    0x0000_0103 | 0x4000_0000,
    0xFFFF_FFFF,
];

/// Body octets biased towards NULs and small values so the decoder gets past
/// the C-strings and into the later fields and TLVs.
fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![3 => Just(0u8), 3 => 0x01u8..0x05, 4 => any::<u8>()],
        0..400,
    )
}

/// An ASCII string (no NUL) of at most `max` octets.
fn ascii(max: usize) -> impl Strategy<Value = String> {
    prop::string::string_regex(&format!("[\\x01-\\x7f]{{0,{max}}}")).unwrap()
}

fn tlvs() -> impl Strategy<Value = Tlvs> {
    prop::collection::vec(
        (any::<u16>(), prop::collection::vec(any::<u8>(), 0..300)),
        0..4,
    )
    .prop_map(|v| {
        Tlvs(
            v.into_iter()
                .map(|(tag, value)| Tlv {
                    tag,
                    value: value.into(),
                })
                .collect(),
        )
    })
}

fn address() -> impl Strategy<Value = Address> {
    (any::<u8>(), any::<u8>(), ascii(20)).prop_map(|(ton, npi, addr)| Address { ton, npi, addr })
}

fn bind() -> impl Strategy<Value = Bind> {
    (ascii(15), ascii(8), ascii(12), any::<[u8; 3]>(), ascii(40)).prop_map(
        |(system_id, password, system_type, [v, ton, npi], address_range)| Bind {
            system_id,
            password,
            system_type,
            interface_version: v,
            addr_ton: ton,
            addr_npi: npi,
            address_range,
        },
    )
}

fn bind_resp() -> impl Strategy<Value = BindResp> {
    (ascii(15), tlvs()).prop_map(|(system_id, tlvs)| BindResp { system_id, tlvs })
}

fn short_message() -> impl Strategy<Value = ShortMessage> {
    (
        (ascii(5), address(), address()),
        any::<[u8; 7]>(),
        (ascii(16), ascii(16)),
        prop::collection::vec(any::<u8>(), 0..=254),
        tlvs(),
    )
        .prop_map(
            |((service_type, source, destination), f, (sched, validity), sm, tlvs)| ShortMessage {
                service_type,
                source,
                destination,
                esm_class: f[0],
                protocol_id: f[1],
                priority_flag: f[2],
                schedule_delivery_time: sched,
                validity_period: validity,
                registered_delivery: f[3],
                replace_if_present_flag: f[4],
                data_coding: f[5],
                sm_default_msg_id: f[6],
                short_message: sm.into(),
                tlvs,
            },
        )
}

fn data_sm() -> impl Strategy<Value = DataSm> {
    (ascii(5), address(), address(), any::<[u8; 3]>(), tlvs()).prop_map(
        |(service_type, source, destination, f, tlvs)| DataSm {
            service_type,
            source,
            destination,
            esm_class: f[0],
            registered_delivery: f[1],
            data_coding: f[2],
            tlvs,
        },
    )
}

/// `submit_sm_resp` / `deliver_sm_resp` carry no TLVs in SMPP 3.4 (the encoder
/// does not write them), so only `data_sm_resp` gets any.
fn message_id_resp(with_tlvs: bool) -> impl Strategy<Value = MessageIdResp> {
    let tlvs = if with_tlvs {
        tlvs().boxed()
    } else {
        Just(Tlvs::default()).boxed()
    };
    (ascii(64), tlvs).prop_map(|(message_id, tlvs)| MessageIdResp { message_id, tlvs })
}

/// Every `Body` variant.
fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        bind().prop_map(Body::BindReceiver),
        bind_resp().prop_map(Body::BindReceiverResp),
        bind().prop_map(Body::BindTransmitter),
        bind_resp().prop_map(Body::BindTransmitterResp),
        bind().prop_map(Body::BindTransceiver),
        bind_resp().prop_map(Body::BindTransceiverResp),
        Just(Body::Unbind),
        Just(Body::UnbindResp),
        Just(Body::EnquireLink),
        Just(Body::EnquireLinkResp),
        Just(Body::GenericNack),
        short_message().prop_map(Body::SubmitSm),
        message_id_resp(false).prop_map(Body::SubmitSmResp),
        short_message().prop_map(Body::DeliverSm),
        message_id_resp(false).prop_map(Body::DeliverSmResp),
        data_sm().prop_map(Body::DataSm),
        message_id_resp(true).prop_map(Body::DataSmResp),
    ]
}

/// Any status, including errors: an error response with an empty message_id
/// still encodes its NUL, so decoding gives back the same (default) body and the
/// round trip is exact.
fn pdu() -> impl Strategy<Value = Pdu> {
    (
        any::<u32>(),
        prop_oneof![Just(0u32), 0u32..0x100, any::<u32>()],
        body(),
    )
        .prop_map(|(sequence, status, body)| Pdu {
            sequence,
            status: CommandStatus(status),
            body,
        })
}

/// Whatever `decode` accepts re-encodes to bytes that decode to the same PDU.
fn assert_accepted_round_trips(wire: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(pdu) = Pdu::decode(wire) {
        let again = pdu
            .encode()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(frame_len(&again), Ok(Some(again.len())));
        prop_assert_eq!(Pdu::decode(&again), Ok(pdu));
    }
    Ok(())
}

proptest! {
    /// The decoder and the framer never panic, whatever the bytes.
    #[test]
    fn decode_and_frame_len_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = frame_len(&bytes);
        let _ = Pdu::decode(&bytes);
        assert_accepted_round_trips(&bytes)?;
    }

    /// With a valid header (known or unknown command, correct length) and an
    /// arbitrary body: no panic, a frame of exactly that length, and anything
    /// accepted round-trips.
    #[test]
    fn decode_valid_header_arbitrary_body_never_panics(
        command in prop::sample::select(&COMMAND_IDS[..]),
        status in prop_oneof![Just(0u32), any::<u32>()],
        sequence in any::<u32>(),
        body in body_bytes(),
    ) {
        let wire = frame(command, status, sequence, &body);
        prop_assert_eq!(frame_len(&wire), Ok(Some(wire.len())));
        match Pdu::decode(&wire) {
            Ok(pdu) => prop_assert_eq!(pdu.sequence, sequence),
            Err(err) => prop_assert_eq!(err.sequence(), Some(sequence)),
        }
        assert_accepted_round_trips(&wire)?;
    }

    /// encode → frame_len → decode gives back the same PDU, for every body kind.
    #[test]
    fn encode_decode_round_trip(pdu in pdu()) {
        let wire = pdu.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let declared = u32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]) as usize;
        prop_assert_eq!(declared, wire.len());
        prop_assert_eq!(frame_len(&wire), Ok(Some(wire.len())));
        prop_assert_eq!(frame_len(&wire[..wire.len() - 1]), Ok(None));
        let mut stream = wire.to_vec();
        stream.extend_from_slice(&[0, 0, 0]);
        prop_assert_eq!(frame_len(&stream), Ok(Some(wire.len())));
        prop_assert_eq!(Pdu::decode(&wire), Ok(pdu));
    }
}

/// deliver_sm_resp without a body (a common peer shortcut) decodes, even with ESME_ROK.
#[test]
fn deliver_sm_resp_without_body_decodes() {
    let pdu = Pdu::decode(&frame(0x8000_0005, 0, 3, &[])).unwrap();
    assert_eq!(pdu.body, Body::DeliverSmResp(MessageIdResp::default()));
}

/// sm_length above 254 is answered ESME_RINVMSGLEN.
#[test]
fn oversize_sm_length_nacks_with_invalid_message_length() {
    let error = DecodeError::Malformed {
        command_id: 4,
        sequence: 1,
        field: "sm_length",
        reason: "above the maximum of 254",
    };
    assert_eq!(error.nack_status(), CommandStatus::ESME_RINVMSGLEN);
}
