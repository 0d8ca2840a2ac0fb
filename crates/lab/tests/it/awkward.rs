//! An awkward SMSC, as real ones are: ids written differently in the submit
//! response and the receipt (SPEC M13), references remembered for a while
//! only (SPEC M8, M16), deliveries retried until answered (SPEC M6, M8).

use hotsite_smpp::pdu::{BindKind, Body, CommandStatus, Pdu};

use crate::client::{sms, Client, TIMEOUT};
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
