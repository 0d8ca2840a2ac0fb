//! Mobile-originated messages.

use hotsite_lab::{MoDispatch, MoRequest};
use hotsite_smpp::pdu::BindKind;
use serde_json::json;

use crate::client::{Client, QUIET, TIMEOUT};
use crate::TestLab;

// SPEC M1, M6: an MO may arrive on any bind; the control API injects it.
#[tokio::test]
async fn mo_via_control_api_reaches_a_bound_transceiver() {
    let lab = TestLab::plain().await;
    let mut client = Client::bound(lab.addr("b", "b1"), BindKind::Transceiver).await;
    let response = lab
        .http
        .post(lab.url("/v1/mo"))
        .json(&json!({"from": "33612345678", "to": "36000", "text": "STOP"}))
        .send()
        .await
        .expect("POST /v1/mo");
    assert_eq!(response.status(), 200);
    let dispatch: MoDispatch = response.json().await.expect("json");
    assert_eq!(
        dispatch,
        MoDispatch::Routed {
            site: "b".into(),
            smsc: "b1".into()
        }
    );

    let mo = client.next_deliver(TIMEOUT).await.expect("mo");
    assert!(!mo.is_receipt());
    assert_eq!(mo.esm_class, 0);
    assert_eq!(mo.source.addr, "33612345678");
    assert_eq!(mo.destination.addr, "36000");
    assert_eq!(&mo.short_message[..], b"STOP");
    let stats = lab
        .stats_until("the mo ack", |stats| stats.totals.mo_acked == 1)
        .await;
    assert_eq!((stats.totals.mo_sent, stats.smsc[1].mo_sent), (1, 1));
    lab.shutdown().await;
}

// SPEC M6: an MO for a site waits for a bind of that site; transmitters never
// receive one.
#[tokio::test]
async fn mo_for_a_site_waits_for_a_receiving_bind_there() {
    let lab = TestLab::plain().await;
    let mut b1 = Client::bound(lab.addr("b", "b1"), BindKind::Transceiver).await;
    let _a1_transmitter = Client::bound(lab.addr("a", "a1"), BindKind::Transmitter).await;
    let dispatch = lab
        .lab
        .send_mo(MoRequest {
            from: "33612345678".into(),
            to: "36000".into(),
            text: "héllo".into(),
            site: Some("a".into()),
            system_id: None,
        })
        .expect("valid mo");
    assert_eq!(dispatch, MoDispatch::Pending);
    assert!(b1.next_deliver(QUIET).await.is_none(), "not on site b");

    let mut a1 = Client::bound(lab.addr("a", "a1"), BindKind::Receiver).await;
    let mo = a1.next_deliver(TIMEOUT).await.expect("mo on site a");
    // Non-ASCII text goes out as UCS-2.
    assert_eq!(mo.data_coding, 0x08);
    let units: Vec<u16> = mo
        .short_message
        .chunks(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .collect();
    assert_eq!(String::from_utf16(&units).expect("utf-16"), "héllo");
    lab.shutdown().await;
}

// SPEC M6: MOs only go to binds of the account they belong to.
#[tokio::test]
async fn mo_goes_to_the_named_account_only() {
    let lab = TestLab::plain().await;
    let mut hotsite = Client::bound(lab.addr("a", "a1"), BindKind::Transceiver).await;
    let mut other = Client::connect(lab.addr("a", "a1")).await.expect("connect");
    assert!(other
        .bind(BindKind::Receiver, "other", "pw")
        .await
        .status
        .is_ok());
    let dispatch = lab
        .lab
        .send_mo(MoRequest {
            from: "33612345678".into(),
            to: "36001".into(),
            text: "for other".into(),
            site: None,
            system_id: Some("other".into()),
        })
        .expect("valid mo");
    assert!(matches!(dispatch, MoDispatch::Routed { .. }));
    let mo = other.next_deliver(TIMEOUT).await.expect("mo");
    assert_eq!(&mo.short_message[..], b"for other");
    assert!(hotsite.next_deliver(QUIET).await.is_none());
    lab.shutdown().await;
}
