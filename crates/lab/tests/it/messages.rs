//! Submits, dedupe and delivery receipts.

use bytes::Bytes;
use hotsite_smpp::pdu::{
    tag, Address, BindKind, Body, CommandStatus, DataSm, MessageState, Pdu, ShortMessage, Tlvs,
};

use crate::client::{sms, Client, QUIET, TIMEOUT};
use crate::TestLab;

fn message_id(resp: &Pdu) -> String {
    match &resp.body {
        Body::SubmitSmResp(resp) | Body::DataSmResp(resp) => resp.message_id.clone(),
        other => panic!("not a submit response: {other:?}"),
    }
}

/// The `id:` field of a receipt text.
fn text_id(receipt: &ShortMessage) -> String {
    let text = String::from_utf8_lossy(&receipt.short_message);
    text.strip_prefix("id:")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("receipt text without id: {text}"))
        .to_owned()
}

// SPEC M13: a receipt is matched by receipted_message_id and message_state,
// never by the carrier id in its text.
#[tokio::test]
async fn submit_gets_an_id_and_a_receipt_with_tlvs() {
    let lab = TestLab::plain().await;
    let mut client = Client::bound(lab.addr("a", "a1"), BindKind::Transceiver).await;
    let resp = client
        .submit(sms(
            "33612345678",
            "Your code is 123456, valid 5 minutes",
            Some(7),
        ))
        .await;
    assert_eq!(resp.status, CommandStatus::ESME_ROK);
    let id = message_id(&resp);
    assert!(!id.is_empty());

    let receipt = client.next_deliver(TIMEOUT).await.expect("receipt");
    assert!(receipt.is_receipt(), "{receipt:?}");
    assert_eq!(receipt.esm_class, ShortMessage::ESM_CLASS_RECEIPT);
    assert_eq!(receipt.tlvs.receipted_message_id(), Some(id.as_str()));
    assert_eq!(receipt.tlvs.message_state(), Some(MessageState::Delivered));
    assert_eq!(receipt.source.addr, "33612345678");
    assert_eq!(receipt.destination.addr, "ACME");
    let text = String::from_utf8_lossy(&receipt.short_message).into_owned();
    assert_ne!(
        text_id(&receipt),
        id,
        "the text must carry the carrier's id"
    );
    assert!(text.contains(" sub:001 dlvrd:001 submit date:"), "{text}");
    assert!(
        text.contains(" stat:DELIVRD err:000 text:Your code is 123456,"),
        "{text}"
    );

    let stats = lab
        .stats_until("the receipt ack", |stats| stats.totals.receipts_acked == 1)
        .await;
    assert_eq!(stats.totals.receipts_sent, 1);
    assert_eq!(stats.totals.unique, 1);
    assert_eq!(stats.smsc[0].submits, 1);
    assert_eq!(stats.smsc[0].receipts_sent, 1);

    let handsets = lab.lab.handset_log();
    assert_eq!(handsets.len(), 1);
    assert_eq!(handsets[0].destination, "33612345678");
    assert_eq!(handsets[0].text, "Your code is 123456, valid 5 minutes");
    assert_eq!(handsets[0].user_message_reference, Some(7));
    assert_eq!(handsets[0].message_id, id);
    assert_eq!(
        (handsets[0].site.as_str(), handsets[0].smsc.as_str()),
        ("a", "a1")
    );
    lab.shutdown().await;
}

// SPEC M8: a resubmit with the same user_message_reference, on any site, is
// answered with the original id and not delivered again.
#[tokio::test]
async fn repeated_reference_is_answered_with_the_original_id_and_dropped() {
    let lab = TestLab::plain().await;
    let mut a1 = Client::bound(lab.addr("a", "a1"), BindKind::Transceiver).await;
    let mut b1 = Client::bound(lab.addr("b", "b1"), BindKind::Transmitter).await;

    let first = message_id(&a1.submit(sms("33600000001", "hello", Some(99))).await);
    let again = a1.submit(sms("33600000001", "hello", Some(99))).await;
    assert_eq!(again.status, CommandStatus::ESME_ROK);
    assert_eq!(message_id(&again), first);
    // The ambiguous-submit case: resent through the other site.
    let elsewhere = b1.submit(sms("33600000001", "hello", Some(99))).await;
    assert_eq!(message_id(&elsewhere), first);

    let stats = lab.lab.stats();
    assert_eq!(stats.totals.unique, 1);
    assert_eq!(stats.totals.duplicates_dropped, 2);
    assert_eq!(stats.totals.submits, 3);
    assert_eq!(stats.smsc[0].duplicates_dropped, 1);
    assert_eq!(stats.smsc[1].duplicates_dropped, 1);
    assert_eq!(lab.lab.handset_log().len(), 1);

    // One receipt only, for the original.
    let receipt = a1.next_deliver(TIMEOUT).await.expect("receipt");
    assert_eq!(receipt.tlvs.receipted_message_id(), Some(first.as_str()));
    assert!(a1.next_deliver(QUIET).await.is_none(), "no second receipt");
    lab.shutdown().await;
}

// SPEC M8: the dedupe key is account, destination and reference; without the
// TLV every submit is new.
#[tokio::test]
async fn dedupe_key_is_account_destination_and_reference() {
    let lab = TestLab::plain().await;
    let mut client = Client::bound(lab.addr("a", "a1"), BindKind::Transmitter).await;
    let mut ids = Vec::new();
    for message in [
        sms("33600000001", "one", Some(1)),
        sms("33600000002", "same reference, other handset", Some(1)),
        sms("33600000001", "no reference", None),
        sms("33600000001", "no reference", None),
    ] {
        ids.push(message_id(&client.submit(message).await));
    }
    let mut other = Client::connect(lab.addr("a", "a1")).await.expect("connect");
    assert!(other
        .bind(BindKind::Transmitter, "other", "pw")
        .await
        .status
        .is_ok());
    ids.push(message_id(
        &other
            .submit(sms("33600000001", "other account", Some(1)))
            .await,
    ));

    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "{ids:?}");
    let stats = lab.lab.stats();
    assert_eq!(
        (stats.totals.unique, stats.totals.duplicates_dropped),
        (5, 0)
    );
    lab.shutdown().await;
}

// SPEC M1, M6: a receipt can come back through another site than the submit.
#[tokio::test]
async fn receipt_arrives_on_a_bind_of_the_other_site() {
    let lab = TestLab::start("delay_ms = 10\nother_site_probability = 1.0").await;
    let mut a1 = Client::bound(lab.addr("a", "a1"), BindKind::Transceiver).await;
    let mut b1 = Client::bound(lab.addr("b", "b1"), BindKind::Receiver).await;
    let id = message_id(&a1.submit(sms("33600000001", "cross-site", Some(1))).await);

    let receipt = b1.next_deliver(TIMEOUT).await.expect("receipt on site b");
    assert_eq!(receipt.tlvs.receipted_message_id(), Some(id.as_str()));
    assert!(a1.next_deliver(QUIET).await.is_none(), "nothing on site a");
    let stats = lab
        .stats_until("the receipt ack", |stats| stats.totals.receipts_acked == 1)
        .await;
    assert_eq!(
        (stats.smsc[0].receipts_sent, stats.smsc[1].receipts_sent),
        (0, 1)
    );
    lab.shutdown().await;
}

// SPEC M13: one message may get several receipts.
#[tokio::test]
async fn receipt_can_be_sent_twice() {
    let lab = TestLab::start("delay_ms = 10\nduplicate_probability = 1.0").await;
    let mut client = Client::bound(lab.addr("a", "a1"), BindKind::Transceiver).await;
    let id = message_id(&client.submit(sms("33600000001", "twice", Some(1))).await);
    for copy in 1..=2 {
        let receipt = client.next_deliver(TIMEOUT).await.expect("receipt copy");
        assert_eq!(
            receipt.tlvs.receipted_message_id(),
            Some(id.as_str()),
            "copy {copy}"
        );
    }
    assert!(client.next_deliver(QUIET).await.is_none(), "exactly two");
    let stats = lab
        .stats_until("both acks", |stats| stats.totals.receipts_acked == 2)
        .await;
    assert_eq!((stats.totals.unique, stats.totals.receipts_sent), (1, 2));
    lab.shutdown().await;
}

// SPEC M6: a receipt with no receiving bind waits for one, of any site.
#[tokio::test]
async fn receipt_waits_for_a_receiving_bind() {
    let lab = TestLab::plain().await;
    let mut transmitter = Client::bound(lab.addr("a", "a1"), BindKind::Transmitter).await;
    let id = message_id(&transmitter.submit(sms("33600000001", "later", None)).await);
    lab.stats_until("the receipt to be pending", |stats| {
        stats.totals.pending_deliveries == 1
    })
    .await;

    let mut receiver = Client::bound(lab.addr("b", "b1"), BindKind::Receiver).await;
    let receipt = receiver
        .next_deliver(TIMEOUT)
        .await
        .expect("pending receipt");
    assert_eq!(receipt.tlvs.receipted_message_id(), Some(id.as_str()));
    assert_eq!(lab.lab.stats().totals.pending_deliveries, 0);
    lab.shutdown().await;
}

// SPEC M8, M13: a receipt written but never answered is sent again on another
// bind when its session ends, as an SMSC retries.
#[tokio::test]
async fn unanswered_receipt_is_resent_on_another_bind() {
    let lab = TestLab::plain().await;
    let mut submitter = Client::bound(lab.addr("a", "a1"), BindKind::Transmitter).await;
    let mut silent = Client::bound(lab.addr("a", "a1"), BindKind::Receiver).await;
    let id = message_id(&submitter.submit(sms("33600000001", "retry me", None)).await);
    // Read the receipt without answering it, then hang up.
    let pdu = silent.recv(TIMEOUT).await.expect("receipt");
    assert!(matches!(pdu.body, Body::DeliverSm(_)), "{pdu:?}");
    drop(silent);

    let mut receiver = Client::bound(lab.addr("b", "b1"), BindKind::Receiver).await;
    let receipt = receiver
        .next_deliver(TIMEOUT)
        .await
        .expect("resent receipt");
    assert_eq!(receipt.tlvs.receipted_message_id(), Some(id.as_str()));
    let stats = lab
        .stats_until("the resent receipt's ack", |stats| {
            stats.totals.receipts_acked == 1
        })
        .await;
    assert_eq!(stats.totals.receipts_sent, 2);
    lab.shutdown().await;
}

// SPEC M8: data_sm is a submit too, deduped the same way.
#[tokio::test]
async fn data_sm_is_accepted_and_deduped() {
    let lab = TestLab::plain().await;
    let mut client = Client::bound(lab.addr("a", "a1"), BindKind::Transceiver).await;
    let mut tlvs = Tlvs::default();
    tlvs.set(tag::MESSAGE_PAYLOAD, Bytes::from_static(b"payload body"));
    tlvs.set_user_message_reference(5);
    let data = DataSm {
        source: Address {
            ton: 5,
            npi: 0,
            addr: "ACME".into(),
        },
        destination: Address {
            ton: 1,
            npi: 1,
            addr: "33600000009".into(),
        },
        registered_delivery: 1,
        tlvs,
        ..DataSm::default()
    };
    let first = client
        .request(Body::DataSm(data.clone()))
        .await
        .expect("resp");
    assert_eq!(first.status, CommandStatus::ESME_ROK);
    assert!(matches!(first.body, Body::DataSmResp(_)));
    let again = client.request(Body::DataSm(data)).await.expect("resp");
    assert_eq!(message_id(&again), message_id(&first));
    let receipt = client.next_deliver(TIMEOUT).await.expect("receipt");
    assert_eq!(
        receipt.tlvs.receipted_message_id(),
        Some(message_id(&first).as_str())
    );
    assert_eq!(lab.lab.handset_log()[0].text, "payload body");
    lab.shutdown().await;
}

// SPEC M13: registered_delivery 0 asks for no receipt.
#[tokio::test]
async fn no_receipt_unless_requested() {
    let lab = TestLab::plain().await;
    let mut client = Client::bound(lab.addr("a", "a1"), BindKind::Transceiver).await;
    let mut message = sms("33600000001", "quiet", None);
    message.registered_delivery = 0;
    assert!(client.submit(message).await.status.is_ok());
    assert!(client.next_deliver(QUIET).await.is_none());
    assert_eq!(lab.lab.stats().totals.receipts_sent, 0);
    lab.shutdown().await;
}
