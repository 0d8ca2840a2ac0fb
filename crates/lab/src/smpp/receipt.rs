//! Delivery receipts as a real SMSC sends them, and message bodies as text.
//!
//! The receipt carries the truth in TLVs (`receipted_message_id`,
//! `message_state`) and, for old clients, a text in the de-facto format of SMPP
//! 3.4 appendix B. The text's `id:` is deliberately a *carrier-side* id, not the
//! one from `submit_sm_resp`: real aggregators do this, and SPEC M13 says
//! hotsite must match on the TLV, so a client that parses the text fails here.

use bytes::Bytes;
use hotsite_smpp::pdu::{Address, ShortMessage, Tlvs};

use crate::config::FinalState;

/// `data_coding` value for UCS-2 (UTF-16BE) bodies.
pub(crate) const DATA_CODING_UCS2: u8 = 0x08;

/// How many characters of the original body the receipt text quotes.
const QUOTED_CHARS: usize = 20;

/// Everything a receipt says about one accepted message.
pub(crate) struct ReceiptFacts<'a> {
    /// The id answered in `submit_sm_resp`: goes in `receipted_message_id`.
    pub(crate) message_id: &'a str,
    /// The carrier's id: goes in the text only.
    pub(crate) carrier_id: &'a str,
    /// The handset the message went to: the receipt's source.
    pub(crate) handset: &'a Address,
    /// The submitter's source address: the receipt's destination.
    pub(crate) submitter: &'a Address,
    /// The submitted body, as text.
    pub(crate) text: &'a str,
    /// When the message was accepted, in seconds since the Unix epoch.
    pub(crate) submitted_unix: u64,
    /// When the final state was reached, in seconds since the Unix epoch.
    pub(crate) done_unix: u64,
    /// The final state reported.
    pub(crate) state: FinalState,
}

/// The body of a receipt `deliver_sm`.
pub(crate) fn receipt_message(facts: &ReceiptFacts<'_>) -> ShortMessage {
    let mut tlvs = Tlvs::default();
    tlvs.set_receipted_message_id(facts.message_id);
    tlvs.set_message_state(facts.state.message_state());
    ShortMessage {
        source: facts.handset.clone(),
        destination: facts.submitter.clone(),
        esm_class: ShortMessage::ESM_CLASS_RECEIPT,
        short_message: Bytes::from(receipt_text(facts)),
        tlvs,
        ..ShortMessage::default()
    }
}

/// `id:<carrier id> sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm
/// stat:DELIVRD err:000 text:<first 20 characters>`.
pub(crate) fn receipt_text(facts: &ReceiptFacts<'_>) -> String {
    let delivered = if facts.state == FinalState::Delivered {
        "001"
    } else {
        "000"
    };
    let quoted: String = facts.text.chars().take(QUOTED_CHARS).collect();
    format!(
        "id:{} sub:001 dlvrd:{delivered} submit date:{} done date:{} stat:{} err:000 text:{quoted}",
        facts.carrier_id,
        yymmddhhmm(facts.submitted_unix),
        yymmddhhmm(facts.done_unix),
        facts.state.stat(),
    )
}

/// A Unix time as `YYMMDDhhmm` in UTC, the receipt text's date format.
pub(crate) fn yymmddhhmm(unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let seconds_of_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{:02}{month:02}{day:02}{:02}{:02}",
        year % 100,
        seconds_of_day / 3600,
        seconds_of_day % 3600 / 60
    )
}

/// The Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), to avoid a date crate for one receipt field.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// A message body as text: UCS-2 when `data_coding` says so, else lossy UTF-8
/// (GSM 7-bit and Latin-1 bodies from tests are ASCII in practice).
pub(crate) fn body_text(data_coding: u8, body: &[u8]) -> String {
    if data_coding == DATA_CODING_UCS2 {
        let units: Vec<u16> = body
            .chunks(2)
            .map(|pair| match pair {
                [hi, lo] => u16::from_be_bytes([*hi, *lo]),
                [single] => u16::from(*single),
                _ => 0xFFFD,
            })
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(body).into_owned()
    }
}

/// Encodes `text` for a `deliver_sm`: as is with `data_coding` 0 when ASCII,
/// else as UCS-2.
pub(crate) fn encode_text(text: &str) -> (u8, Bytes) {
    if text.is_ascii() {
        (0, Bytes::copy_from_slice(text.as_bytes()))
    } else {
        let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        (DATA_CODING_UCS2, Bytes::from(bytes))
    }
}

#[cfg(test)]
mod tests {
    use hotsite_smpp::pdu::MessageState;

    use super::*;

    #[test]
    fn dates_are_utc_yymmddhhmm() {
        assert_eq!(yymmddhhmm(0), "7001010000");
        // 2024-02-29 23:59:59 UTC: a leap day.
        assert_eq!(yymmddhhmm(1_709_251_199), "2402292359");
        // 2026-07-01 12:34:00 UTC.
        assert_eq!(yymmddhhmm(1_782_909_240), "2607011234");
    }

    // SPEC M13: the TLVs carry the submit's id, the text a different one.
    #[test]
    fn receipt_carries_tlvs_and_a_carrier_id_in_the_text() {
        let handset = Address {
            ton: 1,
            npi: 1,
            addr: "33612345678".into(),
        };
        let submitter = Address {
            ton: 5,
            npi: 0,
            addr: "ACME".into(),
        };
        let facts = ReceiptFacts {
            message_id: "00000001",
            carrier_id: "4100000001",
            handset: &handset,
            submitter: &submitter,
            text: "Your code is 123456, valid 5 minutes",
            submitted_unix: 0,
            done_unix: 60,
            state: FinalState::Delivered,
        };
        let message = receipt_message(&facts);
        assert!(message.is_receipt());
        assert_eq!(message.source, handset);
        assert_eq!(message.destination, submitter);
        assert_eq!(message.tlvs.receipted_message_id(), Some("00000001"));
        assert_eq!(message.tlvs.message_state(), Some(MessageState::Delivered));
        assert_eq!(
            message.short_message,
            "id:4100000001 sub:001 dlvrd:001 submit date:7001010000 done date:7001010001 \
             stat:DELIVRD err:000 text:Your code is 123456,"
        );
    }

    #[test]
    fn text_round_trips_through_ucs2() {
        let (coding, bytes) = encode_text("héllo ✓");
        assert_eq!(coding, DATA_CODING_UCS2);
        assert_eq!(body_text(coding, &bytes), "héllo ✓");
        let (coding, bytes) = encode_text("plain");
        assert_eq!(coding, 0);
        assert_eq!(body_text(coding, &bytes), "plain");
        // An odd byte count is tolerated, not a panic.
        assert_eq!(body_text(DATA_CODING_UCS2, &[0, 0x41, 0x42]), "AB");
    }
}
