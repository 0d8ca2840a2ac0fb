//! RFC 3161 request encoding and reply parsing against openssl's own (SPEC
//! R3). The fixtures come from tests/data/tsa/make.sh.

use std::sync::{Arc, Mutex};

use proptest::prelude::*;

use super::*;

const REQ: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/tsa/req.tsq"
));
const REQ_NO_NONCE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/tsa/req-no-nonce.tsq"
));
const RESP: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/tsa/resp.tsr"
));
const DIGEST: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/tsa/digest.txt"
));
const NONCE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/tsa/nonce.txt"
));

fn digest() -> [u8; 32] {
    let text = DIGEST.trim();
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn nonce() -> u64 {
    u64::from_str_radix(NONCE.trim(), 16).unwrap()
}

/// The request is byte for byte what `openssl ts -query -sha256 -digest …
/// -cert` writes, with and without a nonce.
#[test]
fn request_der_is_openssls() {
    assert_eq!(request_der(&digest(), Some(nonce())), REQ);
    assert_eq!(request_der(&digest(), None), REQ_NO_NONCE);
}

/// openssl's TSA reply parses: granted, the token's imprint is the digest,
/// its nonce the request's.
#[test]
fn openssl_reply_parses() {
    let token = parse_response(RESP).unwrap();
    let info = parse_token(&token).unwrap();
    assert_eq!(info.hashed_message, digest());
    assert_eq!(info.nonce, Some(nonce()));
    assert_eq!(info.policy, "1.3.6.1.4.1.99999.1");
    assert_eq!(info.gen_time.len(), 15, "{}", info.gen_time);
    assert!(info.gen_time.ends_with('Z'));

    let block = Timestamp::from_response("http://tsa.test/", &digest(), nonce(), RESP).unwrap();
    assert_eq!(block.check(&digest()).unwrap(), info);
}

/// A reply for another digest or nonce is refused, naming which.
#[test]
fn reply_for_something_else_is_refused() {
    let mut other = digest();
    other[0] ^= 1;
    assert!(matches!(
        Timestamp::from_response("u", &other, nonce(), RESP),
        Err(TimestampError::ImprintDiffers { .. })
    ));
    assert!(matches!(
        Timestamp::from_response("u", &digest(), nonce() ^ 1, RESP),
        Err(TimestampError::NonceDiffers { .. })
    ));
    let block = Timestamp::from_response("u", &digest(), nonce(), RESP).unwrap();
    assert!(matches!(
        block.check(&other),
        Err(TimestampError::ImprintDiffers { .. })
    ));
    let wrong_time = Timestamp {
        gen_time: "20000101000000Z".into(),
        ..block.clone()
    };
    assert!(matches!(
        wrong_time.check(&digest()),
        Err(TimestampError::BlockDiffers {
            field: "gen_time",
            ..
        })
    ));
    let wrong_nonce = Timestamp {
        nonce: "0000000000000001".into(),
        ..block
    };
    assert!(matches!(
        wrong_nonce.check(&digest()),
        Err(TimestampError::NonceDiffers { .. })
    ));
}

/// A refusal (status 2, rejection) is reported with the TSA's text.
#[test]
fn rejection_is_reported() {
    // TimeStampResp { PKIStatusInfo { 2, { "bad alg" } } }
    let text = tlv(UTF8_STRING, b"bad alg");
    let mut status = tlv(INTEGER, &[2]);
    write_tlv(&mut status, SEQUENCE, &text);
    let response = tlv(SEQUENCE, &tlv(SEQUENCE, &status));
    match parse_response(&response) {
        Err(TimestampError::Rejected { status: 2, text }) => assert_eq!(text, "bad alg"),
        other => panic!("{other:?}"),
    }
    // Granted, but no token.
    let response = tlv(SEQUENCE, &tlv(SEQUENCE, &tlv(INTEGER, &[0])));
    assert!(matches!(
        parse_response(&response),
        Err(TimestampError::NoToken)
    ));
}

proptest! {
    /// A damaged reply is an error or, if the damage missed every checked
    /// byte, still the same imprint; never a panic.
    #[test]
    fn damaged_replies_never_panic(flips in prop::collection::vec((0..RESP.len(), 1u8..=255), 1..4)) {
        let mut damaged = RESP.to_vec();
        for (at, xor) in flips {
            damaged[at] ^= xor;
        }
        if let Ok(token) = parse_response(&damaged) {
            let _ = parse_token(&token);
        }
    }

    #[test]
    fn truncated_replies_are_errors(len in 0..RESP.len()) {
        prop_assert!(parse_response(&RESP[..len]).is_err());
    }
}

/// What the canned TSA saw.
#[derive(Default)]
struct Seen {
    content_type: Option<String>,
    body: Vec<u8>,
}

/// A TSA on 127.0.0.1 that answers every POST with `status` and `reply`.
async fn canned_tsa(status: u16, reply: &'static [u8]) -> (String, Arc<Mutex<Seen>>) {
    use axum::http::{HeaderMap, StatusCode};
    let seen = Arc::new(Mutex::new(Seen::default()));
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/tsa",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let log = log.clone();
            async move {
                let mut seen = log.lock().unwrap();
                seen.content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                seen.body = body.to_vec();
                (
                    StatusCode::from_u16(status).unwrap(),
                    [("content-type", "application/timestamp-reply")],
                    reply,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/tsa", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// R3: the request goes out as `application/timestamp-query` with the
/// nonce, and the granted reply becomes the manifest's block.
#[tokio::test]
async fn request_against_a_canned_tsa() {
    let (url, seen) = canned_tsa(200, RESP).await;
    let client = reqwest::Client::new();
    let block = request_with(&client, &url, &digest(), nonce())
        .await
        .unwrap();
    assert_eq!(block.tsa_url, url);
    assert_eq!(block.nonce, NONCE.trim());
    block.check(&digest()).unwrap();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.content_type.as_deref(),
            Some("application/timestamp-query")
        );
        assert_eq!(seen.body, REQ);
    }

    // With a random nonce the canned reply (the fixture's nonce) is refused.
    let error = request(&url, &digest()).await.unwrap_err();
    assert!(
        matches!(error, TimestampError::NonceDiffers { .. }),
        "{error}"
    );

    let (url, _) = canned_tsa(503, b"busy").await;
    let error = request_with(&client, &url, &digest(), nonce())
        .await
        .unwrap_err();
    assert!(
        matches!(error, TimestampError::HttpStatus { status: 503, .. }),
        "{error}"
    );
}
