//! Binds, session housekeeping and malformed input.

use hotsite_smpp::pdu::{tag, BindKind, Body, CommandStatus};

use crate::client::{sms, Client, TIMEOUT};
use crate::TestLab;

// SPEC M4: every kind of bind succeeds, and the instance counts its sessions.
#[tokio::test]
async fn every_bind_kind_succeeds() {
    let lab = TestLab::plain().await;
    let addr = lab.addr("a", "a1");
    let mut clients = Vec::new();
    for kind in [
        BindKind::Transmitter,
        BindKind::Receiver,
        BindKind::Transceiver,
    ] {
        let mut client = Client::connect(addr).await.expect("connect");
        let resp = client.bind(kind, "hotsite", "secret").await;
        assert_eq!(resp.status, CommandStatus::ESME_ROK, "{kind:?}");
        assert_eq!(resp.body, expected_resp_body(kind, &resp.body));
        clients.push(client);
    }
    let stats = lab.lab.stats();
    let a1 = &stats.smsc[0];
    assert_eq!((a1.site.as_str(), a1.name.as_str()), ("a", "a1"));
    assert_eq!(a1.bound_sessions, 3);
    assert_eq!(a1.bind_attempts, 3);
    assert_eq!(stats.smsc[1].bound_sessions, 0);
    lab.shutdown().await;
}

/// Checks the bind response names the instance and SMPP 3.4, and returns it.
fn expected_resp_body(kind: BindKind, body: &Body) -> Body {
    let resp = match (kind, body) {
        (BindKind::Transmitter, Body::BindTransmitterResp(resp))
        | (BindKind::Receiver, Body::BindReceiverResp(resp))
        | (BindKind::Transceiver, Body::BindTransceiverResp(resp)) => resp,
        _ => panic!("{kind:?} answered with {body:?}"),
    };
    assert_eq!(resp.system_id, "a1");
    assert_eq!(
        resp.tlvs.get(tag::SC_INTERFACE_VERSION).map(|v| v.to_vec()),
        Some(vec![0x34])
    );
    body.clone()
}

// SPEC M14: authentication failures are permanent rejections; the SMSC closes.
#[tokio::test]
async fn bad_credentials_are_rejected_and_the_connection_closed() {
    let lab = TestLab::plain().await;
    let addr = lab.addr("a", "a1");
    for (system_id, password, expected) in [
        ("hotsite", "wrong", CommandStatus::ESME_RINVPASWD),
        ("nobody", "secret", CommandStatus::ESME_RINVSYSID),
        // A valid password of another account is still wrong for this one.
        ("hotsite", "pw", CommandStatus::ESME_RINVPASWD),
    ] {
        let mut client = Client::connect(addr).await.expect("connect");
        let resp = client
            .bind(BindKind::Transceiver, system_id, password)
            .await;
        assert_eq!(resp.status, expected, "{system_id}/{password}");
        client
            .closed(TIMEOUT)
            .await
            .expect("closed after rejection");
    }
    let stats = lab.lab.stats();
    assert_eq!(stats.smsc[0].bind_attempts, 3);
    assert_eq!(stats.smsc[0].bound_sessions, 0);
    lab.shutdown().await;
}

// SPEC M4: a repeated bind is refused, the bind in force stays usable.
#[tokio::test]
async fn second_bind_on_a_session_is_already_bound() {
    let lab = TestLab::plain().await;
    let mut client = Client::bound(lab.addr("a", "a1"), BindKind::Transceiver).await;
    let resp = client
        .bind(BindKind::Transceiver, "hotsite", "secret")
        .await;
    assert_eq!(resp.status, CommandStatus::ESME_RALYBND);
    let resp = client
        .request(Body::EnquireLink)
        .await
        .expect("still alive");
    assert_eq!(resp.body, Body::EnquireLinkResp);
    assert_eq!(lab.lab.stats().smsc[0].bound_sessions, 1);
    lab.shutdown().await;
}

// SPEC M7: messages go only to active binds; an unbound or receive-only
// session cannot submit.
#[tokio::test]
async fn submit_needs_a_transmitting_bind() {
    let lab = TestLab::plain().await;
    let addr = lab.addr("a", "a1");
    let mut client = Client::connect(addr).await.expect("connect");
    let resp = client.submit(sms("33600000001", "early", None)).await;
    assert_eq!(resp.status, CommandStatus::ESME_RINVBNDSTS);
    assert!(matches!(resp.body, Body::SubmitSmResp(_)), "{resp:?}");

    let mut receiver = Client::bound(addr, BindKind::Receiver).await;
    let resp = receiver
        .submit(sms("33600000001", "wrong bind", None))
        .await;
    assert_eq!(resp.status, CommandStatus::ESME_RINVBNDSTS);
    assert_eq!(lab.lab.stats().totals.submits, 0);
    lab.shutdown().await;
}

// SPEC M4, M12: enquire_link keeps a bind alive and probes it; unbind ends it.
#[tokio::test]
async fn enquire_link_is_answered_and_unbind_closes() {
    let lab = TestLab::plain().await;
    let mut client = Client::bound(lab.addr("b", "b1"), BindKind::Transmitter).await;
    let resp = client.request(Body::EnquireLink).await.expect("answered");
    assert_eq!(
        (resp.status, resp.body),
        (CommandStatus::ESME_ROK, Body::EnquireLinkResp)
    );
    let resp = client.request(Body::Unbind).await.expect("answered");
    assert_eq!(
        (resp.status, resp.body),
        (CommandStatus::ESME_ROK, Body::UnbindResp)
    );
    client.closed(TIMEOUT).await.expect("closed after unbind");
    lab.stats_until("the unbound session to be gone", |stats| {
        stats.smsc[1].bound_sessions == 0
    })
    .await;
    lab.shutdown().await;
}

// SPEC M4: garbage in a well-framed PDU is answered, not fatal.
#[tokio::test]
async fn undecodable_frames_get_generic_nack() {
    let lab = TestLab::plain().await;
    let mut client = Client::bound(lab.addr("a", "a1"), BindKind::Transceiver).await;

    // An unknown command_id, sequence 42.
    let mut unknown = Vec::new();
    unknown.extend_from_slice(&16u32.to_be_bytes());
    unknown.extend_from_slice(&0x0000_0099u32.to_be_bytes());
    unknown.extend_from_slice(&0u32.to_be_bytes());
    unknown.extend_from_slice(&42u32.to_be_bytes());
    client.send_raw(&unknown).await;
    let nack = client.recv(TIMEOUT).await.expect("nack");
    assert_eq!(nack.body, Body::GenericNack);
    assert_eq!(nack.sequence, 42);
    assert_eq!(nack.status, CommandStatus::ESME_RINVCMDID);

    // A bind_transceiver whose body stops in the middle of system_id, sequence 43.
    let mut truncated = Vec::new();
    truncated.extend_from_slice(&19u32.to_be_bytes());
    truncated.extend_from_slice(&0x0000_0009u32.to_be_bytes());
    truncated.extend_from_slice(&0u32.to_be_bytes());
    truncated.extend_from_slice(&43u32.to_be_bytes());
    truncated.extend_from_slice(b"abc");
    client.send_raw(&truncated).await;
    let nack = client.recv(TIMEOUT).await.expect("nack");
    assert_eq!((nack.body, nack.sequence), (Body::GenericNack, 43));
    assert!(!nack.status.is_ok());

    // The session is still in step.
    let resp = client.request(Body::EnquireLink).await.expect("answered");
    assert_eq!(resp.body, Body::EnquireLinkResp);
    lab.shutdown().await;
}

// SPEC M4: an impossible length prefix cannot be resynchronised: the SMSC hangs up.
#[tokio::test]
async fn impossible_length_prefix_closes_the_connection() {
    let lab = TestLab::plain().await;
    let mut client = Client::connect(lab.addr("a", "a1")).await.expect("connect");
    client.send_raw(&[0, 0, 0, 4, 0, 0, 0, 0x15]).await;
    client.closed(TIMEOUT).await.expect("closed");

    let mut client = Client::connect(lab.addr("a", "a1")).await.expect("connect");
    client.send_raw(&[0x7F, 0xFF, 0xFF, 0xFF]).await;
    client.closed(TIMEOUT).await.expect("closed");
    lab.shutdown().await;
}

// SPEC M5: each bind attempt is recorded with its time, so rebind pacing can be
// checked from the outside.
#[tokio::test]
async fn bind_attempts_are_timestamped() {
    let lab = TestLab::plain().await;
    let addr = lab.addr("b", "b1");
    for _ in 0..3 {
        let mut client = Client::connect(addr).await.expect("connect");
        client
            .bind(BindKind::Transceiver, "hotsite", "secret")
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let stats = lab.lab.stats();
    let b1 = &stats.smsc[1];
    assert_eq!(b1.bind_attempts, 3);
    assert_eq!(b1.connections, 3);
    assert_eq!(b1.bind_attempt_ms.len(), 3);
    assert!(
        b1.bind_attempt_ms
            .windows(2)
            .all(|pair| pair[1] >= pair[0] + 15),
        "{:?}",
        b1.bind_attempt_ms
    );
    assert!(b1.bind_attempt_ms.iter().all(|at| *at <= stats.at_ms));
    lab.shutdown().await;
}
