//! Request validation: every bad input gets a clear error naming its field.

use super::*;

fn ok(body: &str) -> Vec<ValidMessage> {
    parse(body.as_bytes(), None, "hotsite").unwrap_or_else(|e| panic!("{e:?}"))
}

fn errors(body: &str) -> Vec<(usize, String)> {
    parse(body.as_bytes(), None, "hotsite")
        .unwrap_err()
        .into_iter()
        .map(|e| (e.index, e.field))
        .collect()
}

#[test]
fn single_message_with_defaults() {
    let messages = ok(r#"{"to": "+4917012345678", "text": "hello"}"#);
    assert_eq!(
        messages,
        [ValidMessage {
            key: None,
            from: "hotsite".into(),
            to: "4917012345678".into(),
            body: b"hello".to_vec(),
            encoding: Encoding::Gsm7,
            route: None,
            email: None,
        }]
    );
}

#[test]
fn auto_encoding_picks_ucs2_for_other_scripts() {
    let messages = ok(r#"{"to": "4917012345678", "text": "Привет"}"#);
    assert_eq!(messages[0].encoding, Encoding::Ucs2);
    assert_eq!(messages[0].body.len(), 12);
    assert_eq!(messages[0].encoding.data_coding(), 8);
}

/// SPEC M8: keys come from `id` or the Idempotency-Key header.
#[test]
fn idempotency_keys_from_id_or_header() {
    let single = parse(br#"{"to": "1", "text": "x"}"#, Some("order-7"), "hs").unwrap();
    assert_eq!(single[0].key.as_deref(), Some("order-7"));
    let batch = parse(
        br#"{"messages": [{"to": "1", "text": "x"}, {"to": "2", "text": "y", "id": "own"}]}"#,
        Some("b"),
        "hs",
    )
    .unwrap();
    assert_eq!(batch[0].key.as_deref(), Some("b:0"));
    assert_eq!(batch[1].key.as_deref(), Some("own"));
}

#[test]
fn bad_number_empty_or_oversize_body_and_unknown_encoding_are_named() {
    assert_eq!(errors(r#"{"to": "12ab", "text": "x"}"#), [(0, "to".into())]);
    assert_eq!(
        errors(r#"{"to": "+1234567890123456", "text": "x"}"#),
        [(0, "to".into())]
    );
    assert_eq!(errors(r#"{"to": "1", "text": ""}"#), [(0, "text".into())]);
    let long = "x".repeat(MAX_BODY_OCTETS + 1);
    assert_eq!(
        errors(&format!(r#"{{"to": "1", "text": "{long}"}}"#)),
        [(0, "text".into())]
    );
    assert_eq!(
        errors(r#"{"to": "1", "text": "x", "encoding": "utf7"}"#),
        [(0, "encoding".into())]
    );
    assert_eq!(
        errors(r#"{"to": "1", "text": "€", "encoding": "gsm7"}"#),
        [(0, "text".into())]
    );
    assert_eq!(
        errors(r#"{"to": "1", "text": "x", "from": "a very long sender"}"#),
        [(0, "from".into())]
    );
    assert_eq!(
        errors(r#"{"to": "1", "text": "x", "colour": "red"}"#),
        [(0, "colour".into())]
    );
    assert_eq!(
        errors(r#"{"text": 5}"#),
        [(0, "to".into()), (0, "text".into())]
    );
}

#[test]
fn batch_reports_every_invalid_message_and_stores_none() {
    let found = errors(
        r#"{"messages": [{"to": "1", "text": "ok"}, {"to": "x", "text": "a"}, {"to": "2", "text": ""}]}"#,
    );
    assert_eq!(found, [(1, "to".into()), (2, "text".into())]);
}

#[test]
fn malformed_bodies_are_rejected_as_a_whole() {
    for body in [
        "",
        "[]",
        "{\"messages\": 5}",
        "{\"messages\": []}",
        "not json",
        "{\"messages\": [], \"to\": \"1\"}",
    ] {
        let found = parse(body.as_bytes(), None, "hs").unwrap_err();
        assert_eq!(found[0].field, "body", "{body}: {found:?}");
    }
    let too_many = format!(
        r#"{{"messages": [{}]}}"#,
        vec![r#"{"to":"1","text":"x"}"#; MAX_BATCH + 1].join(",")
    );
    assert_eq!(
        parse(too_many.as_bytes(), None, "hs").unwrap_err()[0].field,
        "body"
    );
    let max = format!(
        r#"{{"messages": [{}]}}"#,
        vec![r#"{"to":"1","text":"x"}"#; MAX_BATCH].join(",")
    );
    assert_eq!(parse(max.as_bytes(), None, "hs").unwrap().len(), MAX_BATCH);
}

#[test]
fn bad_keys_are_rejected() {
    assert_eq!(
        parse(br#"{"to":"1","text":"x"}"#, Some(""), "hs").unwrap_err()[0].field,
        "Idempotency-Key"
    );
    assert_eq!(
        errors(&format!(
            r#"{{"to":"1","text":"x","id":"{}"}}"#,
            "k".repeat(MAX_KEY_LEN + 1)
        )),
        [(0, "id".into())]
    );
}

proptest::proptest! {
    /// Invariant 3: arbitrary bodies never panic the parser.
    #[test]
    fn arbitrary_bodies_never_panic(body: Vec<u8>, key: Option<String>) {
        let _ = parse(&body, key.as_deref(), "hs");
    }
}

/// SPEC M11: a message may name its route and the e-mail address of its
/// fallback hop; a bad address is named.
#[test]
fn route_and_email_are_taken_and_checked() {
    let message =
        &ok(r#"{"to": "+46701", "text": "x", "route": "chat", "email": "ann@example.com"}"#)[0];
    assert_eq!(message.route.as_deref(), Some("chat"));
    assert_eq!(message.email.as_deref(), Some("ann@example.com"));
    for bad in [
        "ann",
        "ann@",
        "@example.com",
        "a b@example.com",
        "ann@example",
        "a@b@c.d",
    ] {
        let errors = parse(
            format!(r#"{{"to": "+46701", "text": "x", "email": "{bad}"}}"#).as_bytes(),
            None,
            "hs",
        )
        .unwrap_err();
        assert_eq!(errors[0].field, "email", "{bad}");
    }
    let errors = parse(br#"{"to": "+46701", "text": "x", "route": ""}"#, None, "hs").unwrap_err();
    assert_eq!(errors[0].field, "route");
}
