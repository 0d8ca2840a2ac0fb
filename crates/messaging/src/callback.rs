//! Delivery receipts and MO from an HTTP provider: form POSTs to hotsite's
//! callback URLs (SPEC M13), possibly concurrent, possibly from any of the
//! provider's sites, possibly repeated with the same fields.
//!
//! Each is checked (signature when a secret is configured, SPEC M15), parsed,
//! and stored in the same durable inbox as SMPP deliveries, with a dedupe key
//! that leaves out the sending site: a repeat from another site is the same
//! receipt and reaches the application once (SPEC M1, M8). The provider is
//! answered 2xx only after the row is committed; an error answer makes it send
//! again, which is safe for the same reason.
//!
//! Receipt form: `message_id` (ours), `provider_id`, `status` (`DELIVRD`,
//! `EXPIRED`, `DELETED`, `UNDELIV`, `ACCEPTD`, `UNKNOWN`, `REJECTD`, `ENROUTE`),
//! `site`, `done_at`. MO form: `message_id` (the provider's), `from`, `to`,
//! `message`, `site`.

use std::collections::HashMap;

use hotsite_store::{InboundKind, NewInbound, ReceiptIdFormat};

/// Why a callback was refused (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// A required field is missing or empty.
    #[error("missing field {0:?}")]
    Missing(&'static str),
    /// The status is not one of the known receipt states.
    #[error("unknown status {0:?}; known: DELIVRD, EXPIRED, DELETED, UNDELIV, ACCEPTD, UNKNOWN, REJECTD, ENROUTE")]
    Status(String),
    /// A field is longer than anything a provider sends: the field, its
    /// limit and the unit of the limit.
    #[error("field {0:?} is longer than {1} {2}")]
    TooLong(String, usize, &'static str),
}

/// Longest field accepted, except the MO text, in bytes.
pub const MAX_FIELD: usize = 256;
/// Longest MO text accepted, in characters: the most a concatenated SMS can
/// carry (255 parts of 153 GSM 03.38 characters). Providers deliver
/// concatenated MO joined, so this is the longest text a handset can send.
pub const MAX_TEXT_CHARS: usize = 255 * 153;

fn fields(body: &[u8]) -> Result<HashMap<String, String>, CallbackError> {
    let mut fields = HashMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        if name == "message" {
            // Counted in characters: the same text is 1 to 4 bytes a character.
            if value.len() > MAX_TEXT_CHARS && value.chars().count() > MAX_TEXT_CHARS {
                return Err(CallbackError::TooLong(
                    name.into_owned(),
                    MAX_TEXT_CHARS,
                    "characters",
                ));
            }
        } else if value.len() > MAX_FIELD {
            return Err(CallbackError::TooLong(
                name.into_owned(),
                MAX_FIELD,
                "bytes",
            ));
        }
        fields.insert(name.into_owned(), value.into_owned());
    }
    Ok(fields)
}

fn required<'a>(
    fields: &'a HashMap<String, String>,
    name: &'static str,
) -> Result<&'a str, CallbackError> {
    fields
        .get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
        .ok_or(CallbackError::Missing(name))
}

/// The SMPP `message_state` of a receipt status (SPEC M13 numbers states the
/// SMPP way, so HTTP and SMPP receipts share one inbox and one final state).
pub fn message_state(status: &str) -> Option<u8> {
    Some(match status.to_ascii_uppercase().as_str() {
        "ENROUTE" => 1,
        "DELIVRD" | "DELIVERED" => 2,
        "EXPIRED" => 3,
        "DELETED" => 4,
        "UNDELIV" | "UNDELIVERABLE" => 5,
        "ACCEPTD" | "ACCEPTED" => 6,
        "UNKNOWN" => 7,
        "REJECTD" | "REJECTED" => 8,
        _ => return None,
    })
}

/// A receipt callback from channel `channel`, as an inbox row.
pub fn receipt(channel: &str, body: &[u8], now_ms: i64) -> Result<NewInbound, CallbackError> {
    let fields = fields(body)?;
    let message_id = required(&fields, "message_id")?;
    let provider_id = required(&fields, "provider_id")?;
    let status = required(&fields, "status")?;
    let state = message_state(status).ok_or_else(|| CallbackError::Status(status.to_owned()))?;
    let done_at = fields.get("done_at").map(String::as_str).unwrap_or("");
    let site = fields.get("site").map(String::as_str).unwrap_or("");
    Ok(NewInbound {
        // The provider's HTTP API writes its ids one way (SPEC M13), and every
        // callback carries one: exact dedupe, no window.
        id_format: ReceiptIdFormat::Same,
        dedupe_window_ms: None,
        kind: InboundKind::Receipt,
        // Not the site: the same receipt resent from another site is a repeat.
        dedupe_key: format!("http-dr:{channel}:{message_id}:{provider_id}:{state}:{done_at}"),
        provider_message_id: Some(provider_id.to_owned()),
        message_state: Some(state),
        source: String::new(),
        destination: String::new(),
        body: format!("id:{message_id} stat:{}", status.to_ascii_uppercase()).into_bytes(),
        site: site.to_owned(),
        smsc: channel.to_owned(),
        received_at_ms: now_ms,
    })
}

/// An MO callback from channel `channel`, as an inbox row.
pub fn mo(channel: &str, body: &[u8], now_ms: i64) -> Result<NewInbound, CallbackError> {
    let fields = fields(body)?;
    let message_id = required(&fields, "message_id")?;
    let from = required(&fields, "from")?;
    let to = required(&fields, "to")?;
    let text = fields.get("message").cloned().unwrap_or_default();
    let site = fields.get("site").map(String::as_str).unwrap_or("");
    Ok(NewInbound {
        // The provider's HTTP API writes its ids one way (SPEC M13), and every
        // callback carries one: exact dedupe, no window.
        id_format: ReceiptIdFormat::Same,
        dedupe_window_ms: None,
        kind: InboundKind::Mo,
        dedupe_key: format!("http-mo:{channel}:{message_id}"),
        provider_message_id: None,
        message_state: None,
        source: from.to_owned(),
        destination: to.to_owned(),
        body: text.into_bytes(),
        site: site.to_owned(),
        smsc: channel.to_owned(),
        received_at_ms: now_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC M13, M1, M8: a receipt repeated with the same fields, or resent from
    /// another site, has the same dedupe key; another status is another receipt.
    #[test]
    fn repeats_share_a_key_whatever_the_site() {
        let from_a = receipt(
            "agg",
            b"message_id=17&provider_id=P9&status=DELIVRD&site=a&done_at=1000",
            5,
        )
        .unwrap();
        let from_b = receipt(
            "agg",
            b"message_id=17&provider_id=P9&status=DELIVRD&site=b&done_at=1000",
            6,
        )
        .unwrap();
        assert_eq!(from_a.dedupe_key, from_b.dedupe_key);
        assert_eq!(from_a.provider_message_id.as_deref(), Some("P9"));
        assert_eq!(from_a.message_state, Some(2));
        assert_eq!((from_a.site.as_str(), from_b.site.as_str()), ("a", "b"));
        let enroute = receipt("agg", b"message_id=17&provider_id=P9&status=ENROUTE", 7).unwrap();
        assert_ne!(enroute.dedupe_key, from_a.dedupe_key);
        assert_eq!(enroute.message_state, Some(1));
    }

    #[test]
    fn bad_receipts_name_the_problem() {
        assert_eq!(
            receipt("agg", b"provider_id=P&status=DELIVRD", 1).unwrap_err(),
            CallbackError::Missing("message_id")
        );
        assert_eq!(
            receipt("agg", b"message_id=1&provider_id=P&status=GREAT", 1).unwrap_err(),
            CallbackError::Status("GREAT".into())
        );
        let long = format!(
            "message_id={}&provider_id=P&status=DELIVRD",
            "9".repeat(300)
        );
        let refused = receipt("agg", long.as_bytes(), 1).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "field \"message_id\" is longer than 256 bytes"
        );
    }

    /// SPEC M13, invariant 3: a long concatenated MO (9,000 bytes) is
    /// accepted; past the concatenated-SMS maximum the error names the text
    /// field and its limit in characters, not the 256 bytes of other fields.
    #[test]
    fn long_mo_texts_are_accepted_up_to_a_concatenated_sms() {
        let body = |text: &str| format!("message_id=M1&from=4670111&to=12345&message={text}");
        let long = "a".repeat(9_000);
        assert_eq!(
            mo("agg", body(&long).as_bytes(), 1).unwrap().body.len(),
            9_000
        );
        // Counted in characters: 39,015 three-byte characters still fit.
        let wide = "%E2%82%AC".repeat(MAX_TEXT_CHARS);
        assert_eq!(
            mo("agg", body(&wide).as_bytes(), 1).unwrap().body.len(),
            3 * MAX_TEXT_CHARS
        );
        let too_long = "a".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(
            mo("agg", body(&too_long).as_bytes(), 1)
                .unwrap_err()
                .to_string(),
            "field \"message\" is longer than 39015 characters"
        );
        let long_from = format!("message_id=M1&to=1&from={}", "1".repeat(300));
        assert_eq!(
            mo("agg", long_from.as_bytes(), 1).unwrap_err().to_string(),
            "field \"from\" is longer than 256 bytes"
        );
    }

    /// SPEC M13: an MO is keyed by the provider's id for it.
    #[test]
    fn mo_is_keyed_by_the_providers_id() {
        let mo_a = mo(
            "agg",
            b"message_id=M1&from=4670111&to=12345&message=hej+d%C3%A5&site=a",
            1,
        )
        .unwrap();
        let mo_b = mo(
            "agg",
            b"message_id=M1&from=4670111&to=12345&message=hej+d%C3%A5&site=b",
            2,
        )
        .unwrap();
        assert_eq!(mo_a.dedupe_key, mo_b.dedupe_key);
        assert_eq!(mo_a.body, "hej då".as_bytes());
        assert_eq!(
            mo("agg", b"message_id=M1&to=1", 1).unwrap_err(),
            CallbackError::Missing("from")
        );
    }
}
