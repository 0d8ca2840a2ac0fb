//! Bad input: a clear error when the request can be answered, silence when
//! not, never a panic (DESIGN.md invariant 3).

use proptest::prelude::*;

use super::*;

/// A request whose headers can be read gets 400 naming the problem, in the
/// reason phrase and a Warning, sent back to the source.
#[test]
fn a_malformed_request_gets_400_with_the_parse_error() {
    let mut sim = Sim::new(config());
    let text = format!(
        "INVITE sip:+4420@{PROXY} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bKbad\r\n\
         From: <sip:pbx@{CALLER}>;tag=a\r\n\
         To: <sip:+4420@{PROXY}>\r\n\
         Call-ID: bad-1\r\n\
         CSeq: 1 INVITE\r\n\
         Max-Forwards: lots\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let sent = sim.send(CALLER, text);
    let bad = sent.response(CALLER);
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.reason_str(), "Invalid Max-Forwards");
    let warning =
        String::from_utf8_lossy(bad.headers.value(HeaderName::Warning).unwrap()).into_owned();
    assert!(warning.contains("Max-Forwards"), "{warning}");
    assert!(sent.to(TRUNK1).is_empty());
    assert_eq!(sim.proxy.stats().malformed, 1);
}

/// Garbage, and broken responses, are dropped and counted; keep-alives are
/// not errors.
#[test]
fn garbage_is_dropped_and_counted() {
    let mut sim = Sim::new(config());
    assert!(sim.send(CALLER, &b"\x00\x01hello"[..]).is_empty());
    assert!(sim
        .send(TRUNK1, &b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n"[..])
        .is_empty());
    assert!(sim.send(CALLER, &b"\r\n\r\n"[..]).is_empty());
    let stats = *sim.proxy.stats();
    assert_eq!(
        (stats.malformed, stats.dropped, stats.keepalives),
        (2, 2, 1)
    );
}

proptest! {
    /// Any bytes, and any mutation of a valid INVITE or response, are handled
    /// without a panic, and never leave state behind that time cannot clear.
    #[test]
    fn no_input_panics(
        garbage in proptest::collection::vec(any::<u8>(), 0..600),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut sim = Sim::new(config());
        sim.send(CALLER, garbage);
        let mut bytes = invite("fuzz", "z9hG4bKfuzz", "+4420").to_bytes().to_vec();
        for (at, byte) in &flips {
            let i = at.index(bytes.len());
            bytes[i] = *byte;
        }
        sim.send(CALLER, bytes.clone());
        bytes.truncate(cut.index(bytes.len() + 1));
        sim.send(CALLER, bytes);
        let forwarded = sim.send_request(CALLER, &invite("ok", "z9hG4bKok", "+4420"));
        if let Some(to_t1) = forwarded.requests(TRUNK1).first() {
            let mut response = answer(to_t1, 503, "t1", TRUNK1).to_bytes().to_vec();
            for (at, byte) in &flips {
                let i = at.index(response.len());
                response[i] = *byte;
            }
            sim.send(TRUNK1, response);
        }
        sim.run_until(Duration::from_secs(200));
        let sizes = sim.proxy.sizes();
        prop_assert_eq!((sizes.calls, sizes.branches, sizes.tombstones), (0, 0, 0));
    }
}
