//! An awkward SMSC, as real ones are: ids written differently in the submit
//! response and the receipt (SPEC M13), references remembered for a while
//! only (SPEC M8, M16), deliveries retried until answered (SPEC M6, M8).

use std::time::Duration;

use hotsite_lab::{MoDispatch, MoRequest};
use hotsite_smpp::pdu::{BindKind, Body, CommandStatus, MessageIdResp, Pdu, ShortMessage};

use crate::client::{sms, Client, RecvError, TIMEOUT};
use crate::TestLab;

fn message_id(resp: &Pdu) -> String {
    match &resp.body {
        Body::SubmitSmResp(resp) | Body::DataSmResp(resp) => resp.message_id.clone(),
        other => panic!("not a submit response: {other:?}"),
    }
}

// SPEC M13: "the receipt's id may differ from the submit response's in case,
// in leading zeros, or be decimal where the other is hex". Each format is used
// once for the submit response and once for the receipt; the handset log maps
// the message to both spellings.
#[tokio::test]
async fn submit_response_and_receipt_write_the_id_in_their_formats() {
    let formats = [
        "hex",
        "hex_upper",
        "hex_unpadded",
        "decimal",
        "decimal_padded",
    ];
    for (index, submit_format) in formats.iter().enumerate() {
        let receipt_format = formats[(index + 1) % formats.len()];
        let lab = TestLab::start(&format!(
            "delay_ms = 10\nsubmit_id_format = \"{submit_format}\"\n\
             receipt_id_format = \"{receipt_format}\""
        ))
        .await;
        let mut client = Client::bound(lab.addr("a", "a1"), BindKind::Transceiver).await;
        // Serial 1 is the first message: 42 makes every format distinct.
        for n in 0..41 {
            let mut filler = sms(&format!("3360000{n:04}"), "filler", None);
            filler.registered_delivery = 0;
            assert!(client.submit(filler).await.status.is_ok());
        }
        let resp = client
            .submit(sms("33612345678", "formatted", Some(1)))
            .await;
        assert_eq!(resp.status, CommandStatus::ESME_ROK);
        let expected = |format: &str| match format {
            "hex" => "0000002a",
            "hex_upper" => "0000002A",
            "hex_unpadded" => "2a",
            "decimal" => "42",
            "decimal_padded" => "00000000000000000042",
            other => panic!("unknown format {other}"),
        };
        let case = format!("{submit_format} / {receipt_format}");
        assert_eq!(message_id(&resp), expected(submit_format), "{case}");
        let receipt = client.next_deliver(TIMEOUT).await.expect("receipt");
        assert_eq!(
            receipt.tlvs.receipted_message_id(),
            Some(expected(receipt_format)),
            "{case}"
        );
        let log = lab.lab.handset_log();
        let logged = log.last().expect("logged");
        assert_eq!(
            (logged.message_id.as_str(), logged.receipt_id.as_str()),
            (expected(submit_format), expected(receipt_format)),
            "{case}"
        );
        lab.shutdown().await;
    }
}

// SPEC M8, M16: with `reference_memory_ms`, a repeat within the memory is
// answered with the original id and dropped (counted in duplicates_dropped);
// a repeat after it is a new message with a new id, delivered again.
#[tokio::test]
async fn a_reference_is_remembered_for_the_configured_memory_only() {
    let lab = TestLab::start("delay_ms = 10\n[lab.dedupe]\nreference_memory_ms = 300").await;
    let mut client = Client::bound(lab.addr("a", "a1"), BindKind::Transmitter).await;
    let first = message_id(&client.submit(sms("33600000001", "hello", Some(7))).await);
    let within = client.submit(sms("33600000001", "hello", Some(7))).await;
    assert_eq!(within.status, CommandStatus::ESME_ROK);
    assert_eq!(message_id(&within), first);
    let stats = lab.lab.stats();
    assert_eq!(
        (stats.totals.unique, stats.totals.duplicates_dropped),
        (1, 1)
    );
    assert_eq!(stats.totals.references_remembered, 1);

    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let after = client.submit(sms("33600000001", "hello", Some(7))).await;
    assert_eq!(after.status, CommandStatus::ESME_ROK);
    assert_ne!(message_id(&after), first, "past the memory: a new message");
    let stats = lab.lab.stats();
    assert_eq!(
        (stats.totals.unique, stats.totals.duplicates_dropped),
        (2, 1)
    );
    let log = lab.lab.handset_log();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].message_id, message_id(&after));
    lab.shutdown().await;
}

/// A lab whose refused or unanswered deliveries are retried quickly.
async fn retrying_lab(deliveries: &str) -> TestLab {
    TestLab::start(&format!("delay_ms = 10\n[lab.deliveries]\n{deliveries}")).await
}

/// The next `deliver_sm` within `within`, unanswered, with its sequence number.
async fn next_deliver_sm(client: &mut Client, within: Duration) -> (u32, ShortMessage) {
    let pdu = client.recv(within).await.expect("a deliver_sm");
    match pdu.body {
        Body::DeliverSm(message) => (pdu.sequence, message),
        other => panic!("expected a deliver_sm, got {other:?}"),
    }
}

async fn answer(client: &mut Client, sequence: u32, status: CommandStatus) {
    client
        .send(&Pdu::response(
            sequence,
            status,
            Body::DeliverSmResp(MessageIdResp::default()),
        ))
        .await;
}

// SPEC M6, M8 (issue 10, "receipts that could not be stored were not
// acknowledged, yet the provider did not send them again"): a receipt
// answered ESME_RX_T_APPN is delivered again after retry_interval_ms, with a
// new sequence number, and no more once answered OK.
#[tokio::test]
async fn a_refused_receipt_is_delivered_again_until_answered_ok() {
    let lab = retrying_lab("retry_interval_ms = 300").await;
    let mut client = Client::bound(lab.addr("a", "a1"), BindKind::Transceiver).await;
    let id = message_id(&client.submit(sms("33600000001", "store me", Some(1))).await);

    let (first_sequence, receipt) = next_deliver_sm(&mut client, TIMEOUT).await;
    assert_eq!(receipt.tlvs.receipted_message_id(), Some(id.as_str()));
    answer(&mut client, first_sequence, CommandStatus::ESME_RX_T_APPN).await;

    // Not before retry_interval_ms…
    let early = client.recv(Duration::from_millis(200)).await;
    assert!(matches!(early, Err(RecvError::Timeout)), "{early:?}");
    // …but then.
    let (second_sequence, again) = next_deliver_sm(&mut client, Duration::from_secs(3)).await;
    assert_eq!(again.tlvs.receipted_message_id(), Some(id.as_str()));
    assert_ne!(second_sequence, first_sequence, "a new sequence number");
    answer(&mut client, second_sequence, CommandStatus::ESME_ROK).await;

    assert!(
        client.recv(Duration::from_millis(900)).await.is_err(),
        "nothing after the OK"
    );
    let stats = lab.lab.stats();
    assert_eq!(
        (
            stats.totals.receipts_sent,
            stats.totals.receipts_acked,
            stats.totals.deliveries_retried,
            stats.totals.deliveries_abandoned,
        ),
        (2, 1, 1, 0)
    );
    lab.shutdown().await;
}

// SPEC M6, M8: a receipt never answered is delivered again once
// response_timeout_ms has passed (then retry_interval_ms), on the same bind.
#[tokio::test]
async fn an_unanswered_receipt_is_delivered_again_after_the_response_timeout() {
    let lab = retrying_lab("response_timeout_ms = 400\nretry_interval_ms = 50").await;
    let mut client = Client::bound(lab.addr("a", "a1"), BindKind::Transceiver).await;
    let id = message_id(&client.submit(sms("33600000001", "silence", Some(1))).await);

    let (first_sequence, _) = next_deliver_sm(&mut client, TIMEOUT).await;
    // Not before response_timeout_ms…
    let early = client.recv(Duration::from_millis(300)).await;
    assert!(matches!(early, Err(RecvError::Timeout)), "{early:?}");
    // …but then.
    let (second_sequence, again) = next_deliver_sm(&mut client, Duration::from_secs(3)).await;
    assert_eq!(again.tlvs.receipted_message_id(), Some(id.as_str()));
    assert_ne!(second_sequence, first_sequence);
    answer(&mut client, second_sequence, CommandStatus::ESME_ROK).await;
    let stats = lab
        .stats_until("the retry's ack", |stats| stats.totals.receipts_acked == 1)
        .await;
    assert_eq!(
        (stats.totals.receipts_sent, stats.totals.deliveries_retried),
        (2, 1)
    );
    lab.shutdown().await;
}

// SPEC M6, M8: once retry_attempts retries have failed too, the receipt is
// dropped and counted in deliveries_abandoned.
#[tokio::test]
async fn a_receipt_refused_every_time_is_abandoned_after_the_last_attempt() {
    let lab = retrying_lab("retry_interval_ms = 50\nretry_attempts = 2").await;
    let mut client = Client::bound(lab.addr("a", "a1"), BindKind::Transceiver).await;
    message_id(
        &client
            .submit(sms("33600000001", "disk full", Some(1)))
            .await,
    );

    for attempt in 1..=3 {
        let (sequence, _) = next_deliver_sm(&mut client, TIMEOUT).await;
        answer(&mut client, sequence, CommandStatus::ESME_RX_T_APPN).await;
        tracing::debug!(attempt, "refused");
    }
    assert!(
        client.recv(Duration::from_millis(500)).await.is_err(),
        "no fourth attempt"
    );
    let stats = lab.lab.stats();
    assert_eq!(
        (
            stats.totals.receipts_sent,
            stats.totals.receipts_acked,
            stats.totals.deliveries_retried,
            stats.totals.deliveries_abandoned,
        ),
        (3, 0, 2, 1)
    );
    lab.shutdown().await;
}

// SPEC M6, M8: an MO is retried like a receipt, and a retry goes to another
// site's bind when the failing site has none left.
#[tokio::test]
async fn a_refused_mo_is_retried_on_another_site_when_its_site_has_no_bind() {
    let lab = retrying_lab("retry_interval_ms = 300").await;
    let mut a1 = Client::bound(lab.addr("a", "a1"), BindKind::Receiver).await;
    let dispatch = lab
        .lab
        .send_mo(MoRequest {
            from: "33612345678".into(),
            to: "36000".into(),
            text: "STOP".into(),
            site: None,
            system_id: None,
        })
        .expect("mo");
    assert!(
        matches!(dispatch, MoDispatch::Routed { .. }),
        "{dispatch:?}"
    );
    let (sequence, mo) = next_deliver_sm(&mut a1, TIMEOUT).await;
    assert_eq!(mo.short_message, "STOP");
    // Site b binds, then a refuses and goes away before the retry is due.
    let mut b1 = Client::bound(lab.addr("b", "b1"), BindKind::Receiver).await;
    answer(&mut a1, sequence, CommandStatus::ESME_RX_T_APPN).await;
    lab.stats_until("the retry", |stats| stats.totals.deliveries_retried == 1)
        .await;
    drop(a1);
    let again = b1.next_deliver(Duration::from_secs(3)).await;
    assert_eq!(again.map(|mo| mo.short_message), Some("STOP".into()));
    let stats = lab
        .stats_until("the retry's ack", |stats| stats.totals.mo_acked == 1)
        .await;
    assert_eq!(stats.totals.mo_sent, 2);
    lab.shutdown().await;
}
