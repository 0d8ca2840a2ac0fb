//! The HTTP API: `POST /sms/send`, its result codes, delivery receipts and MO
//! callbacks.

use std::time::Duration;

use hotsite_lab::{HttpFault, HttpMoDispatch, HttpMoRequest, Protocol};
use serde_json::{json, Value};

use crate::callback_sink::expected_signature;
use crate::http_lab::{sms, HttpLab, CALLBACK_SECRET};

/// A submit's form fields.
type Fields<'a> = Vec<(&'a str, &'a str)>;

/// Long enough to be sure a callback that should not come does not.
const QUIET: Duration = Duration::from_millis(200);

/// SPEC M8, M14: an accepted message reaches the handset once; the same
/// (login, message_id) on any site is answered 14 with the original id and
/// counted as a duplicate dropped, as SMPP repeats are.
#[tokio::test]
async fn a_repeat_on_any_site_gets_the_original_id_and_is_not_delivered_again() {
    let lab = HttpLab::plain().await;
    let (status, first) = lab.submit("a", &sms("m-1", &[])).await;
    assert_eq!(status, 200);
    assert_eq!(first["code"], 0, "{first}");
    assert_eq!(first["description"], "accepted");
    assert_eq!(first["message_id"], "m-1");
    let provider_id = first["provider_id"]
        .as_str()
        .expect("provider id")
        .to_owned();

    for site in ["a", "b"] {
        let (status, again) = lab.submit(site, &sms("m-1", &[])).await;
        assert_eq!(status, 200);
        assert_eq!(again["code"], 14, "{again}");
        assert_eq!(again["provider_id"], provider_id.as_str());
        assert_eq!(again["message_id"], "m-1");
    }
    // Another id is another message.
    let (_, other) = lab.submit("b", &sms("m-2", &[])).await;
    assert_eq!(other["code"], 0);
    assert_ne!(other["provider_id"], provider_id.as_str());

    let handsets = lab.lab.handset_log();
    assert_eq!(handsets.len(), 2, "{handsets:#?}");
    let handset = &handsets[0];
    assert_eq!(handset.protocol, Protocol::Http);
    assert_eq!(handset.client_message_id.as_deref(), Some("m-1"));
    assert_eq!(handset.message_id, provider_id);
    assert_eq!((handset.site.as_str(), handset.smsc.as_str()), ("a", ""));
    assert_eq!(handset.destination, "+33612345678");
    assert_eq!(handset.source, "ACME");
    assert_eq!(handset.text, "hello from the HTTP API");
    assert_eq!(handset.system_id, "hotsite");

    let stats = lab.lab.stats();
    assert_eq!(
        (
            stats.totals.submits,
            stats.totals.unique,
            stats.totals.duplicates_dropped
        ),
        (4, 2, 2)
    );
    let (a, b) = (&stats.http_sites[0], &stats.http_sites[1]);
    assert_eq!((a.accepted, a.duplicates_dropped), (1, 1));
    assert_eq!((b.accepted, b.duplicates_dropped), (1, 1));
    assert_eq!(a.codes.get(&0), Some(&1));
    assert_eq!(a.codes.get(&14), Some(&1));
    assert_eq!(a.transport.requests, 2);
    // receipt=0: nothing is posted.
    tokio::time::sleep(QUIET).await;
    assert_eq!(lab.sink.requests(), 0);
    lab.shutdown().await;
}

/// SPEC M14: every refusal has its code; nothing refused reaches a handset.
#[tokio::test]
async fn each_refusal_has_its_code() {
    let lab = HttpLab::plain().await;
    let long = "x".repeat(1601);
    // (fields, HTTP status, code, start of the description)
    let cases: [(Fields, u16, u64, &str); 10] = [
        (
            sms("r-10", &[("password", "wrong")]),
            200,
            10,
            "authentication failed",
        ),
        (
            sms("r-10b", &[("login", "nobody")]),
            200,
            10,
            "authentication failed",
        ),
        (sms("r-11", &[("sender", "")]), 200, 11, "invalid sender"),
        (
            sms("r-11b", &[("sender", "Twelve chars")]),
            200,
            11,
            "invalid sender",
        ),
        (
            sms("r-11c", &[("sender", "12345678901234567")]),
            200,
            11,
            "invalid sender",
        ),
        (
            sms("r-12", &[("phone_number", "12345")]),
            200,
            12,
            "invalid destination",
        ),
        (
            sms("r-12b", &[("phone_number", "+33 6 12")]),
            200,
            12,
            "invalid destination",
        ),
        (
            sms("r-13", &[("message", &long)]),
            200,
            13,
            "message too long",
        ),
        (
            sms("r-x", &[("receipt", "yes")]),
            400,
            31,
            "malformed request: receipt",
        ),
        (
            sms("r-y", &[("priority", "9")]),
            400,
            31,
            "malformed request: priority",
        ),
    ];
    for (fields, http_status, code, description) in &cases {
        let (status, answer) = lab.submit("a", fields).await;
        assert_eq!(status, *http_status, "{answer}");
        assert_eq!(answer["code"], *code, "{answer}");
        let text = answer["description"].as_str().expect("description");
        assert!(text.starts_with(description), "{answer}");
        assert_eq!(answer["provider_id"], Value::Null, "{answer}");
        assert!(answer["message_id"].is_string(), "{answer}");
    }

    let mut missing = sms("r-30", &[]);
    missing.retain(|(name, _)| *name != "sender");
    let (status, answer) = lab.submit("a", &missing).await;
    assert_eq!(status, 400);
    assert_eq!(
        answer,
        json!({"code": 30, "description": "missing field sender",
               "message_id": "r-30", "provider_id": null})
    );

    // Not a form at all, and a broken escape: 400 with a JSON error.
    let response = lab
        .http
        .post(lab.send_url("a"))
        .json(&json!({"login": "hotsite"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["code"], 31);
    assert!(answer["description"]
        .as_str()
        .is_some_and(|text| text.contains("content type")));
    let response = lab
        .http
        .post(lab.send_url("a"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("login=hotsite&message=100%")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(
        answer["description"],
        "malformed request: invalid percent-encoding in field message"
    );

    assert!(lab.lab.handset_log().is_empty());
    let stats = lab.lab.stats();
    assert_eq!(stats.totals.unique, 0);
    let codes = &stats.http_sites[0].codes;
    assert_eq!(
        (
            codes.get(&10),
            codes.get(&11),
            codes.get(&12),
            codes.get(&13)
        ),
        (Some(&2), Some(&3), Some(&2), Some(&1))
    );
    assert_eq!((codes.get(&30), codes.get(&31)), (Some(&1), Some(&4)));
    lab.shutdown().await;
}

/// SPEC M14: a throttling or failing provider takes nothing; once healed the
/// same message_id is accepted (it was never taken).
#[tokio::test]
async fn throttle_and_internal_error_answer_20_and_21_and_take_nothing() {
    let lab = HttpLab::plain().await;
    lab.lab
        .set_http_site_fault("a", HttpFault::Throttle { probability: 1.0 })
        .expect("throttle");
    let (status, answer) = lab.submit("a", &sms("t-1", &[])).await;
    assert_eq!(
        (status, answer["code"].as_u64()),
        (200, Some(20)),
        "{answer}"
    );
    lab.lab
        .set_http_site_fault("a", HttpFault::InternalError { probability: 1.0 })
        .expect("internal error");
    let (_, answer) = lab.submit("a", &sms("t-1", &[])).await;
    assert_eq!(answer["code"], 21, "{answer}");
    assert!(lab.lab.handset_log().is_empty());

    lab.lab
        .set_http_site_fault("a", HttpFault::Recover)
        .expect("recover");
    let (_, answer) = lab.submit("a", &sms("t-1", &[])).await;
    assert_eq!(answer["code"], 0, "{answer}");
    let stats = lab.lab.stats();
    assert_eq!(stats.totals.throttled, 1);
    assert_eq!(stats.http_sites[0].fault, None);
    lab.shutdown().await;
}

/// SPEC M13, M15: `receipt=1` brings a signed form POST to the DR URL with the
/// client's id, the provider's id, the final state, the site and the time.
#[tokio::test]
async fn receipts_are_posted_signed_with_the_final_state() {
    let lab = HttpLab::start("delay_ms = 5\nfinal_state = \"undeliverable\"").await;
    let (_, answer) = lab.submit("b", &sms("dr-1", &[("receipt", "1")])).await;
    assert_eq!(answer["code"], 0, "{answer}");
    let posted = lab.sink.wait_for("/dr", 1).await;
    let receipt = &posted[0];
    let field = |name: &str| receipt.fields.get(name).map(String::as_str);
    assert_eq!(field("message_id"), Some("dr-1"));
    assert_eq!(field("provider_id"), answer["provider_id"].as_str());
    assert_eq!(field("status"), Some("UNDELIV"));
    assert_eq!(field("site"), Some("b"));
    let done_at: u64 = field("done_at").expect("done_at").parse().expect("unix ms");
    assert!(done_at > 1_600_000_000_000, "{done_at}");
    assert!(
        receipt.body.starts_with("message_id=dr-1&provider_id="),
        "{}",
        receipt.body
    );
    assert_eq!(
        receipt.signature.as_deref(),
        Some(expected_signature(CALLBACK_SECRET, &receipt.body).as_str())
    );
    let stats = lab
        .stats_until("the receipt counted", |stats| {
            stats.http_sites[1].callbacks.delivered == 1
        })
        .await;
    let callbacks = &stats.http_sites[1].callbacks;
    assert_eq!(
        (callbacks.receipts, callbacks.attempts, callbacks.retries),
        (1, 1, 0)
    );
    lab.shutdown().await;
}

/// SPEC M1, M13: a receipt may come twice (the same body, concurrently) and
/// through another site than the one that took the message.
#[tokio::test]
async fn receipts_can_repeat_and_come_from_another_site() {
    let lab =
        HttpLab::start("delay_ms = 5\nduplicate_probability = 1.0\nother_site_probability = 1.0")
            .await;
    let (_, answer) = lab.submit("a", &sms("dr-2", &[("receipt", "1")])).await;
    assert_eq!(answer["code"], 0, "{answer}");
    let posted = lab.sink.wait_for("/dr", 2).await;
    assert_eq!(posted[0].body, posted[1].body, "identical copies");
    assert_eq!(posted[0].signature, posted[1].signature);
    assert_eq!(posted[0].fields["site"], "b");
    assert_eq!(posted[0].fields["message_id"], "dr-2");
    let stats = lab.lab.stats();
    assert_eq!(stats.http_sites[1].callbacks.receipts, 2);
    assert_eq!(stats.http_sites[0].callbacks.receipts, 0);
    lab.shutdown().await;
}

/// SPEC M13: a callback answered non-2xx is posted again until it is taken.
#[tokio::test]
async fn refused_callbacks_are_retried_until_answered() {
    let lab = HttpLab::plain().await;
    lab.sink.fail_first(2);
    let (_, answer) = lab.submit("a", &sms("dr-3", &[("receipt", "1")])).await;
    assert_eq!(answer["code"], 0, "{answer}");
    let posted = lab.sink.wait_for("/dr", 1).await;
    assert_eq!(posted[0].fields["message_id"], "dr-3");
    assert_eq!(lab.sink.requests(), 3);
    let stats = lab
        .stats_until("the receipt counted", |stats| {
            stats.http_sites[0].callbacks.delivered == 1
        })
        .await;
    let callbacks = &stats.http_sites[0].callbacks;
    assert_eq!(
        (callbacks.attempts, callbacks.retries, callbacks.abandoned),
        (3, 2, 0)
    );
    lab.shutdown().await;
}

/// SPEC M13: a callback that is never taken is abandoned after the last attempt.
#[tokio::test]
async fn callbacks_are_abandoned_after_the_last_attempt() {
    let lab = HttpLab::plain().await;
    lab.sink.fail_first(100);
    let (_, answer) = lab.submit("a", &sms("dr-4", &[("receipt", "1")])).await;
    assert_eq!(answer["code"], 0, "{answer}");
    let stats = lab
        .stats_until("the receipt abandoned", |stats| {
            stats.http_sites[0].callbacks.abandoned == 1
        })
        .await;
    assert_eq!(stats.http_sites[0].callbacks.attempts, 5);
    assert_eq!(lab.sink.requests(), 5);
    lab.shutdown().await;
}

/// SPEC M1, M13: an MO is posted to the MO URL, signed, optionally twice with
/// the same fields; the control API injects one too.
#[tokio::test]
async fn mo_callbacks_are_posted_and_may_repeat() {
    let lab = HttpLab::plain().await;
    let dispatch = lab
        .lab
        .send_http_mo(HttpMoRequest {
            from: "+33612345678".to_owned(),
            to: "36000".to_owned(),
            text: "STOP & go".to_owned(),
            site: Some("b".to_owned()),
            duplicate: true,
        })
        .expect("mo");
    assert_eq!((dispatch.site.as_str(), dispatch.copies), ("b", 2));
    let posted = lab.sink.wait_for("/mo", 2).await;
    assert_eq!(posted[0].body, posted[1].body);
    let fields = &posted[0].fields;
    assert_eq!(fields["message_id"], dispatch.message_id);
    assert_eq!(fields["from"], "+33612345678");
    assert_eq!(fields["to"], "36000");
    assert_eq!(fields["message"], "STOP & go");
    assert_eq!(fields["site"], "b");
    assert_eq!(
        posted[0].signature.as_deref(),
        Some(expected_signature(CALLBACK_SECRET, &posted[0].body).as_str())
    );

    let response = lab
        .http
        .post(lab.control_url("/v1/http/mo"))
        .json(&json!({"from": "447700900123", "to": "36000", "text": "HELP"}))
        .send()
        .await
        .expect("POST /v1/http/mo");
    assert_eq!(response.status(), 200);
    let second: HttpMoDispatch = response.json().await.expect("JSON");
    assert_eq!((second.site.as_str(), second.copies), ("a", 1));
    assert_ne!(second.message_id, dispatch.message_id);
    let posted = lab.sink.wait_for("/mo", 3).await;
    assert_eq!(posted[2].fields["message"], "HELP");

    let unknown = lab
        .http
        .post(lab.control_url("/v1/http/mo"))
        .json(&json!({"from": "1", "to": "2", "text": "x", "site": "zz"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(unknown.status(), 404);
    let stats = lab.lab.stats();
    assert_eq!(stats.http_sites[1].callbacks.mos, 2);
    lab.shutdown().await;
}
