//! Claims on their own (SPEC S1 one site at a time, S4 no split brain): who
//! yields, packing, retransmission and give-up, parse errors, dedupe.

use std::time::{Duration, Instant};

use hotsite_core::Rng;
use hotsite_sip::message::{parse, response_to, Message, Request, StatusCode};

use super::*;

fn claim(agent: &str, since_ms: i64) -> Claim {
    Claim {
        agent: agent.to_owned(),
        dn: "1001".to_owned(),
        since_ms,
    }
}

fn request(bytes: &Bytes) -> Request {
    match parse(bytes).expect("claims are valid SIP") {
        Message::Request(request) => request,
        Message::Response(_) => panic!("a request expected"),
    }
}

#[allow(clippy::disallowed_methods)] // test epoch: only offsets from it matter
fn epoch() -> Instant {
    Instant::now()
}

fn sender() -> ClaimSender {
    ClaimSender::new(
        "127.0.0.1:5070".parse().unwrap(),
        "127.0.0.1:6070".parse().unwrap(),
        "a",
    )
}

/// S4: a fresh claim always wins; a sync claim wins only with the newer
/// login, and both sides, comparing the same pair, agree on one winner.
#[test]
fn who_yields() {
    assert!(yields(ClaimKind::Fresh, (2_000, "a"), (1_000, "b")));
    assert!(yields(ClaimKind::Sync, (1_000, "a"), (2_000, "b")));
    assert!(!yields(ClaimKind::Sync, (2_000, "a"), (1_000, "b")));
    // A tie goes by name, the same way from both sides.
    assert!(yields(ClaimKind::Sync, (1_000, "a"), (1_000, "b")));
    assert!(!yields(ClaimKind::Sync, (1_000, "b"), (1_000, "a")));
    // Whatever the pair, exactly one side keeps the agent.
    for (x, y) in [(1, 2), (2, 1), (5, 5)] {
        let a_yields = yields(ClaimKind::Sync, (x, "a"), (y, "b"));
        let b_yields = yields(ClaimKind::Sync, (y, "b"), (x, "a"));
        assert_ne!(a_yields, b_yields, "a={x} b={y}");
    }
    // Both sites named alike: both yield (logged out at both, never in at both).
    assert!(yields(ClaimKind::Sync, (2_000, "a"), (1_000, "a")));
}

/// A claim is a MESSAGE with our body; a resync of many agents is packed
/// into requests that each fit a datagram.
#[test]
fn claims_are_packed_into_messages() {
    let now = epoch();
    let mut rng = Rng::new(1);
    let mut claims = sender();
    let one = claims.send(now, ClaimKind::Fresh, vec![claim("alice", 7)], &mut rng);
    assert_eq!(one.len(), 1);
    let message = request(&one[0]);
    assert_eq!(message.method.as_str(), "MESSAGE");
    assert_eq!(
        message
            .headers
            .value(HeaderName::ContentType)
            .map(|v| &v[..]),
        Some(CONTENT_TYPE.as_bytes())
    );
    let batch = ClaimBatch::parse(&message.body).unwrap();
    assert_eq!(batch.site, "a");
    assert_eq!(batch.kind, ClaimKind::Fresh);
    assert_eq!(batch.claims, vec![claim("alice", 7)]);

    let many: Vec<Claim> = (0..500)
        .map(|i| claim(&format!("agent-{i:04}"), i))
        .collect();
    let requests = claims.send(now, ClaimKind::Sync, many.clone(), &mut rng);
    assert!(requests.len() > 1);
    let mut back = Vec::new();
    for bytes in &requests {
        assert!(bytes.len() < 1_400, "{} bytes", bytes.len());
        back.extend(ClaimBatch::parse(&request(bytes).body).unwrap().claims);
    }
    assert_eq!(back, many, "every agent once, in order");
    assert_eq!(claims.stats().sent, 1 + requests.len() as u64);
}

/// A lost claim is sent again (T1 doubling to T2) until answered, and
/// given up after 64·T1; an answer or a refusal stops it.
#[test]
fn claims_are_retransmitted_until_answered() {
    let start = epoch();
    let mut rng = Rng::new(2);
    let mut claims = sender();
    let first = claims.send(start, ClaimKind::Fresh, vec![claim("alice", 1)], &mut rng);
    let mut now = start;
    let mut resent = Vec::new();
    while let Some(at) = claims.poll_timeout() {
        assert!(at > now, "every deadline moves on");
        now = at;
        for bytes in claims.handle_timeout(now) {
            assert_eq!(bytes, first[0], "the same request, same branch");
            resent.push(now.duration_since(start));
        }
    }
    let secs: Vec<f64> = resent.iter().map(Duration::as_secs_f64).collect();
    assert_eq!(secs[..5], [0.5, 1.5, 3.5, 7.5, 11.5]);
    assert!(now.duration_since(start) == GIVE_UP);
    assert_eq!(claims.stats().abandoned, 1);

    // Answered: no more retransmissions.
    let sent = claims.send(now, ClaimKind::Fresh, vec![claim("bob", 2)], &mut rng);
    let ok = response_to(&request(&sent[0]), StatusCode::OK, Some("p"));
    assert!(claims.handle_response(&ok));
    assert_eq!(claims.poll_timeout(), None);
    assert_eq!(claims.stats().answered, 1);

    // Refused: given up at once (retrying a 403 does not help).
    let sent = claims.send(now, ClaimKind::Fresh, vec![claim("carol", 3)], &mut rng);
    let refused = response_to(&request(&sent[0]), StatusCode::FORBIDDEN, Some("p"));
    assert!(claims.handle_response(&refused));
    assert_eq!(claims.poll_timeout(), None);
    assert_eq!(claims.stats().abandoned, 2);

    // Someone else's response is not ours.
    let sent = claims.send(now, ClaimKind::Fresh, vec![claim("dave", 4)], &mut rng);
    let mut other = request(&sent[0]);
    other.headers.set(Header::new(
        HeaderName::Via,
        "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKsomeoneelse",
    ));
    assert!(!claims.handle_response(&response_to(&other, StatusCode::OK, None)));
}

/// Bad bodies get errors that say what is wrong.
#[test]
fn bad_bodies_are_named() {
    let error = ClaimBatch::parse(b"not json").unwrap_err();
    assert!(error.to_string().starts_with("claims body: "), "{error}");
    let error = ClaimBatch::parse(br#"{"v":2,"site":"b","kind":"fresh","claims":[]}"#).unwrap_err();
    assert_eq!(error, ClaimError::Version(2));
    // A newer peer's extra fields: still told it is the version.
    let error = ClaimBatch::parse(br#"{"v":2,"site":"b","kind":"fresh","claims":[],"lease":5}"#)
        .unwrap_err();
    assert_eq!(error, ClaimError::Version(2));
    let error = ClaimBatch::parse(br#"{"site":"b","kind":"fresh","claims":[]}"#).unwrap_err();
    assert!(error.to_string().contains("no version"), "{error}");
    let error = ClaimBatch::parse(br#"{"v":1,"site":"b","kind":"steal","claims":[]}"#).unwrap_err();
    assert!(error.to_string().contains("steal"), "{error}");
    let error = ClaimBatch::parse(br#"{"v":1,"site":"b","kind":"sync","claims":[{"agent":"x"}]}"#)
        .unwrap_err();
    assert!(error.to_string().contains("dn"), "{error}");
}

/// A retransmitted claim is applied once; memory is bounded in time.
#[test]
fn applied_claims_are_remembered_for_a_while() {
    let now = epoch();
    let mut applied = Applied::default();
    assert!(applied.first_time(now, "c1"));
    assert!(!applied.first_time(now + Duration::from_secs(30), "c1"));
    assert!(applied.first_time(now + Duration::from_secs(30), "c2"));
    // Past REMEMBER the first is forgotten.
    assert!(applied.first_time(now + REMEMBER + Duration::from_secs(1), "c1"));
}
