//! Message tests: the RFC 3261 rules the parser must enforce or tolerate, the
//! builders, the proxy edits, stream framing, and property tests (build →
//! serialise → parse round trip; arbitrary and mutated bytes never panic).
//! The RFC 4475 torture messages are in `tests/torture.rs`.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

fn request(text: &str) -> Request {
    match parse(text.as_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn response(text: &str) -> Response {
    match parse(text.as_bytes()) {
        Ok(Message::Response(r)) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// Parses `text` expecting an error whose message contains `expected`.
#[track_caller]
fn check_error(text: &str, expected: &str) {
    match parse(text.as_bytes()) {
        Ok(m) => panic!("parsed, expected error {expected:?}: {m:?}"),
        Err(e) => assert!(
            e.to_string().contains(expected),
            "error {e:?} does not mention {expected:?}"
        ),
    }
}

/// `INVITE` with one header line replaced (matched by its start).
fn with_header(prefix: &str, replacement: &str) -> String {
    INVITE
        .split_inclusive("\r\n")
        .map(|line| {
            if line.starts_with(prefix) {
                replacement.to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Parsing: what RFC 3261 requires
// ---------------------------------------------------------------------------

/// §7.3.3, §7.3.1: compact forms and any case name the same headers.
#[test]
fn compact_forms_and_case_insensitive_names() {
    let text = "OPTIONS sip:a@example.com SIP/2.0\r\n\
v: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n\
f: <sip:b@example.com>;tag=x\r\n\
t: <sip:a@example.com>\r\n\
i: call-1\r\n\
cseq: 1 OPTIONS\r\n\
m: <sip:b@h.example.com>\r\n\
c: text/plain\r\n\
k: timer\r\n\
s: hello\r\n\
e: gzip\r\n\
MAX-FORWARDS: 9\r\n\
l: 0\r\n\r\n";
    let r = request(text);
    let kinds: Vec<HeaderName> = r.headers.iter().map(Header::kind).collect();
    assert_eq!(
        kinds,
        [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
            HeaderName::Contact,
            HeaderName::ContentType,
            HeaderName::Supported,
            HeaderName::Subject,
            HeaderName::ContentEncoding,
            HeaderName::MaxForwards,
            HeaderName::ContentLength,
        ]
    );
    assert_eq!(r.headers.call_id(), Some("call-1"));
    assert_eq!(r.headers.max_forwards(), Some(9));
    assert!(r.headers.get_named("Call-ID").is_some());
    assert!(r.headers.get_named("SUPPORTED").is_some());
    // Names are kept as written, so forwarding changes nothing.
    assert_eq!(&r.to_bytes()[..], text.as_bytes());
}

/// §7.3.1: a line starting with SP or HT continues the previous header.
#[test]
fn folded_headers_are_one_value() {
    let text = with_header(
        "Via:",
        "Via: SIP/2.0/UDP pc33.atlanta.example.com\r\n ;branch=z9hG4bK776asdhds\r\n",
    );
    let r = request(&text);
    assert_eq!(
        r.headers.top_via().unwrap().branch(),
        Some("z9hG4bK776asdhds")
    );
    check_error(
        &INVITE.replace("Via:", " Via:"),
        "continuation before any header",
    );
}

/// §7.3.1: several values in one line split at top-level commas, not at commas
/// inside quotes or in a URI's user part within `<>`.
#[test]
fn list_values_split_at_top_level_commas_only() {
    let text = with_header(
        "Contact:",
        "Contact: \"Doe, John\" <sip:a,b@example.com>;q=0.5, <sip:c@example.com> ,sip:d@example.com\r\n",
    );
    let contacts = request(&text).headers.contacts();
    assert_eq!(contacts.len(), 3);
    assert_eq!(&contacts[0].display.as_ref().unwrap()[..], b"\"Doe, John\"");
    assert_eq!(&contacts[0].uri.as_bytes()[..], b"sip:a,b@example.com");
    assert_eq!(contacts[0].params.get("q"), Some(Some(&b"0.5"[..])));
    assert_eq!(&contacts[2].uri.as_bytes()[..], b"sip:d@example.com");

    let two_vias = with_header(
        "Via:",
        "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1;x=\"q,uoted\", SIP/2.0/TCP b.example.com:5061;branch=z9hG4bK2\r\n",
    );
    let vias = request(&two_vias).headers.vias();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[0].params.get("x"), Some(Some(&b"\"q,uoted\""[..])));
    assert_eq!(
        (vias[1].host(), vias[1].port),
        ("b.example.com", Some(5061))
    );
}

/// §18.3: over a datagram the Content-Length decides the body; a larger one is
/// an error, a smaller one truncates, a missing one takes the rest (and is added
/// so the message can be forwarded over a stream).
#[test]
fn content_length_against_the_datagram() {
    let r = request(INVITE);
    assert_eq!(&r.body[..], b"v=0\n");

    let truncated = request(&INVITE.replace("Content-Length: 4", "Content-Length: 2"));
    assert_eq!(&truncated.body[..], b"v=");

    check_error(
        &INVITE.replace("Content-Length: 4", "Content-Length: 5"),
        "Content-Length 5 but only 4 bytes",
    );
    check_error(
        &INVITE.replace("Content-Length: 4", "Content-Length: 4x"),
        "invalid Content-Length header: not a number",
    );
    check_error(
        &INVITE.replace("Content-Length: 4", "Content-Length: 4\r\nl: 4"),
        "duplicate Content-Length",
    );

    let missing = request(&INVITE.replace("Content-Length: 4\r\n", ""));
    assert_eq!(&missing.body[..], b"v=0\n");
    assert_eq!(missing.headers.content_length(), Some(4));
    assert!(missing
        .to_bytes()
        .windows(17)
        .any(|w| w == b"Content-Length: 4"));
}

/// §7.5: CRLFs before the start line are ignored; a bare LF or CR is refused
/// (no guessing about where a line ends); so is a header line without colon.
#[test]
fn line_breaks_are_crlf_only() {
    assert!(parse(format!("\r\n\r\n{INVITE}").as_bytes()).is_ok());
    check_error(
        &INVITE.replacen("Max-Forwards: 70\r\n", "Max-Forwards: 70\n", 1),
        "bare CR or LF",
    );
    check_error(
        &INVITE.replacen("Max-Forwards: 70\r\n", "Max-Forwards: 70\r", 1),
        "bare CR or LF",
    );
    check_error(
        &with_header("Max-Forwards:", "Max-Forwards 70\r\n"),
        "no colon",
    );
    check_error(
        &with_header("Max-Forwards:", "Max Forwards: 70\r\n"),
        "not a token",
    );
    check_error(
        &INVITE.replace("\r\n\r\nv=0\n", "\r\n"),
        "incomplete message",
    );
    let keepalive = parse(b"\r\n\r\n").unwrap_err();
    assert!(keepalive.is_keepalive());
    assert!(keepalive.reply("x").is_none());
}

/// §8.1.1: To, From, CSeq, Call-ID and Via are mandatory; single-valued ones
/// appear once; the CSeq method is the request method.
#[test]
fn mandatory_and_single_headers() {
    for (prefix, name) in [
        ("Via:", "Via"),
        ("To:", "To"),
        ("From:", "From"),
        ("Call-ID:", "Call-ID"),
        ("CSeq:", "CSeq"),
    ] {
        check_error(&with_header(prefix, ""), &format!("missing {name} header"));
    }
    check_error(
        &with_header(
            "To:",
            "To: <sip:a@example.com>\r\nt: <sip:b@example.com>\r\n",
        ),
        "duplicate To header",
    );
    check_error(
        &with_header("CSeq:", "CSeq: 1 BYE\r\n"),
        "does not match the request method INVITE",
    );
    check_error(
        &with_header("CSeq:", "CSeq: 4294967296 INVITE\r\n"),
        "above 2^32-1",
    );
    check_error(
        &with_header("Max-Forwards:", "Max-Forwards: 256\r\n"),
        "out of range",
    );
    check_error(
        &with_header("Call-ID:", "Call-ID: a b\r\n"),
        "invalid Call-ID",
    );
    check_error(
        &with_header("Call-ID:", "Call-ID: a@b@c\r\n"),
        "invalid Call-ID",
    );
    // Max-Forwards may be missing: a proxy adds it (§16.6 step 3).
    assert!(parse(with_header("Max-Forwards:", "").as_bytes()).is_ok());
}

/// §25.1: address, Via and URI grammar of the headers a proxy reads.
#[test]
fn header_grammar_errors_name_the_header() {
    for (line, expected) in [
        (
            "To: <sip:bob@biloxi.example.com\r\n",
            "invalid To header: unterminated '<'",
        ),
        (
            "To: sip:bob@biloxi.example.com?x=y\r\n",
            "must be enclosed in <>",
        ),
        (
            "To: Bob <bob@biloxi.example.com>\r\n",
            "invalid To header: missing scheme",
        ),
        ("To: <sip:bob@biloxi.example.com>;tag\r\n", ""),
        (
            "To: <sip:bob@biloxi.example.com>;=x\r\n",
            "empty or invalid parameter name",
        ),
        ("To: <sip:bob@>\r\n", "missing host"),
        ("To: <sip:bob@host:99999>\r\n", "port out of range"),
        (
            "Via: SIP/2.0 host\r\n",
            "expected '/' after the protocol version",
        ),
        (
            "Via: SIP/2.0/UDP\r\n",
            "expected white space before sent-by",
        ),
        (
            "Via: SIP/2.0/UDP host;branch=\r\n",
            "missing parameter value",
        ),
        (
            "Via: SIP/2.0/UDP host x\r\n",
            "expected ',' or ';' after a Via hop",
        ),
    ] {
        let prefix = &line[..line.find(':').unwrap() + 1];
        let text = with_header(prefix, line);
        if expected.is_empty() {
            assert!(parse(text.as_bytes()).is_ok(), "{line}");
        } else {
            check_error(&text, expected);
        }
    }
    check_error(
        &INVITE.replace(
            "Contact: <sip:alice@pc33.atlanta.example.com>",
            "Route: sip:p.example.com",
        ),
        "invalid Route header: URI must be enclosed in <>",
    );
}

/// §7.1, §7.2: start lines.
#[test]
fn start_lines() {
    let ok = response(
        "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
    );
    assert_eq!(
        (ok.status, &ok.reason[..]),
        (StatusCode::RINGING, &b"Ringing"[..])
    );
    assert!(
        ok.headers.cseq().unwrap().method == Method::Invite,
        "a response's CSeq method is free"
    );
    let tail = "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n";
    check_error(&format!("SIP/2.0 2000 OK\r\n{tail}"), "three digits");
    check_error(&format!("SIP/2.0 099 Odd\r\n{tail}"), "out of range");
    check_error(&format!("SIP/2.0 700 Odd\r\n{tail}"), "out of range");
    check_error(
        &format!("SIP/3.0 200 OK\r\n{tail}"),
        "unsupported SIP version SIP/3.0",
    );
    check_error(
        &format!("SIP/2.0 200 O\x01K\r\n{tail}"),
        "control character",
    );
    check_error(
        &INVITE.replacen("SIP/2.0\r\n", "HTTP/1.1\r\n", 1),
        "invalid SIP-Version",
    );
    check_error(
        &INVITE.replacen("INVITE sip", "INV@TE sip", 1),
        "method is not a token",
    );
    check_error(
        &INVITE.replacen("sip:bob@biloxi", "bob@biloxi", 1),
        "missing scheme",
    );
    // Methods are case-sensitive: "invite" is an extension method.
    let lower = request(
        &INVITE
            .replacen("INVITE sip", "invite sip", 1)
            .replace("314159 INVITE", "314159 invite"),
    );
    assert_eq!(lower.method.as_str(), "invite");
    assert_ne!(lower.method, Method::Invite);
    // Non-SIP Request-URIs are fine when well formed.
    assert!(parse(
        INVITE
            .replacen("sip:bob@biloxi.example.com", "tel:+1-201-555-0123", 1)
            .as_bytes()
    )
    .is_ok());
}

/// §18.1.1 (UDP messages fit a datagram) and DESIGN.md invariant 3: a message
/// above 64 KiB and more than 256 headers are refused.
#[test]
fn limits() {
    let big = format!("{}{}", INVITE, "x".repeat(MAX_MESSAGE_LEN));
    check_error(&big, "larger than 65535");
    let many = with_header("Max-Forwards:", &"X-A: 1\r\n".repeat(MAX_HEADERS + 1));
    check_error(&many, "more than 256 header fields");
}

// ---------------------------------------------------------------------------
// Partial parse and the 400
// ---------------------------------------------------------------------------

/// §8.2 / §8.2.6: a request that cannot be parsed but whose Via, From, To,
/// Call-ID and CSeq can be read is answered 400, naming what is wrong.
#[test]
fn bad_request_is_answered_with_the_headers_it_had() {
    let text = with_header("Max-Forwards:", "Max-Forwards: many\r\n");
    let err = parse(text.as_bytes()).unwrap_err();
    let reply = err.reply("srv1").expect("answerable");
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.reason_str(), "Invalid Max-Forwards");
    let reply = match parse(&reply.to_bytes()) {
        Ok(Message::Response(r)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        reply.headers.call_id(),
        Some("a84b4c76e66710@pc33.atlanta.example.com")
    );
    assert_eq!(reply.headers.cseq().unwrap().seq, 314159);
    assert_eq!(reply.headers.to().unwrap().tag(), Some("srv1"));
    assert_eq!(reply.headers.from().unwrap().tag(), Some("1928301774"));
    assert_eq!(
        reply.headers.top_via().unwrap().branch(),
        Some("z9hG4bK776asdhds")
    );
    assert!(reply.body.is_empty());

    // Not enough to answer: no Call-ID.
    let err = parse(with_header("Call-ID:", "").as_bytes()).unwrap_err();
    assert!(err.reply("t").is_none());
    // An ACK is never answered.
    let ack = INVITE
        .replacen("INVITE sip", "ACK sip", 1)
        .replace("314159 INVITE", "314159 ACK")
        .replace("Max-Forwards: 70", "Max-Forwards: x");
    assert!(parse(ack.as_bytes()).unwrap_err().reply("t").is_none());
    // A broken response is dropped.
    let bad_response = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: x INVITE\r\n\r\n";
    assert!(parse(bad_response.as_bytes())
        .unwrap_err()
        .reply("t")
        .is_none());
}

// ---------------------------------------------------------------------------
// Stream framing
// ---------------------------------------------------------------------------

/// §18.3: over a stream, Content-Length delimits messages; it is mandatory.
#[test]
fn frame_len_cuts_messages_off_a_stream() {
    let two = format!("{INVITE}{INVITE}");
    let first = frame_len(two.as_bytes()).unwrap().unwrap();
    assert_eq!(first, INVITE.len());
    assert_eq!(frame_len(&two.as_bytes()[..first - 1]).unwrap(), None);
    assert_eq!(frame_len(&two.as_bytes()[..10]).unwrap(), None);
    assert!(parse(&two.as_bytes()[first..]).is_ok());
    // Keep-alives (RFC 5626 §3.5.1) come off as their own frame.
    let ping = format!("\r\n\r\n{INVITE}");
    assert_eq!(frame_len(ping.as_bytes()).unwrap(), Some(4));
    assert!(parse(&ping.as_bytes()[..4]).unwrap_err().is_keepalive());
    // Folded Content-Length, compact form.
    let folded = INVITE.replace("Content-Length: 4", "l:\r\n 4");
    assert_eq!(frame_len(folded.as_bytes()).unwrap(), Some(folded.len()));
    let missing = INVITE.replace("Content-Length: 4\r\n", "");
    assert!(frame_len(missing.as_bytes())
        .unwrap_err()
        .to_string()
        .contains("missing Content-Length"));
    assert!(frame_len(&vec![b'a'; MAX_MESSAGE_LEN + 1]).is_err());
}

// ---------------------------------------------------------------------------
// Proxy edits
// ---------------------------------------------------------------------------

/// §16.6 step 8 and §16.7 step 3: Via pushed on top, popped from the top, even
/// when one line holds several hops.
#[test]
fn via_push_and_pop() {
    let mut r = request(&with_header(
        "Via:",
        "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bKa, SIP/2.0/UDP b.example.com;branch=z9hG4bKb\r\nVia: SIP/2.0/UDP c.example.com;branch=z9hG4bKc\r\n",
    ));
    r.headers
        .push_via("SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp");
    let hosts = |r: &Request| -> Vec<String> {
        r.headers
            .vias()
            .iter()
            .map(|v| v.host().to_owned())
            .collect()
    };
    assert_eq!(
        hosts(&r),
        [
            "proxy.example.com",
            "a.example.com",
            "b.example.com",
            "c.example.com"
        ]
    );
    assert_eq!(r.headers.pop_via().unwrap().host(), "proxy.example.com");
    assert_eq!(r.headers.pop_via().unwrap().host(), "a.example.com");
    assert_eq!(hosts(&r), ["b.example.com", "c.example.com"]);
    let again = request(std::str::from_utf8(&r.to_bytes()).unwrap());
    assert_eq!(hosts(&again), ["b.example.com", "c.example.com"]);
    assert_eq!(r.headers.pop_via().unwrap().host(), "b.example.com");
    assert_eq!(r.headers.pop_via().unwrap().host(), "c.example.com");
    assert!(r.headers.pop_via().is_none());
}

/// §16.6 step 4: Record-Route goes before existing entries; §16.4: a Route naming
/// us is popped.
#[test]
fn record_route_and_route() {
    let mut r = request(&with_header(
        "Contact:",
        "Record-Route: <sip:p2.example.com;lr>\r\nRoute: <sip:p1.example.com;lr>, <sip:p3.example.com;lr>\r\n",
    ));
    r.headers.insert_record_route("<sip:p1.example.com;lr>");
    let rr: Vec<String> = r
        .headers
        .record_routes()
        .iter()
        .map(|a| a.uri.to_string())
        .collect();
    assert_eq!(rr, ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]);
    let top = r.headers.pop_route().unwrap();
    assert!(top.uri.sip().unwrap().is_loose_router());
    assert_eq!(top.uri.sip().unwrap().host_str(), "p1.example.com");
    assert_eq!(r.headers.routes().len(), 1);
    assert_eq!(
        r.headers.pop_route().unwrap().uri.to_string(),
        "sip:p3.example.com;lr"
    );
    assert!(r.headers.routes().is_empty());

    let mut plain = request(INVITE);
    plain.headers.insert_record_route("<sip:p.example.com;lr>");
    assert_eq!(
        plain.headers.iter().nth(1).unwrap().kind(),
        HeaderName::RecordRoute
    );
}

/// §16.6 step 3 and §16.3 step 3: Max-Forwards decremented, added as 70 when
/// missing, and zero refused (the proxy answers 483).
#[test]
fn max_forwards_decrement() {
    let mut r = request(INVITE);
    assert_eq!(r.headers.decrement_max_forwards(), Ok(69));
    assert_eq!(r.headers.max_forwards(), Some(69));
    let mut missing = request(&with_header("Max-Forwards:", ""));
    assert_eq!(missing.headers.decrement_max_forwards(), Ok(69));
    let mut zero = request(&with_header("Max-Forwards:", "Max-Forwards: 0\r\n"));
    assert_eq!(zero.headers.decrement_max_forwards(), Err(TooManyHops));
}

// ---------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------

/// §8.2.6.2: a response copies Via, From, To, Call-ID and CSeq and adds a To
/// tag; §12.1.1: Record-Route copied into a 2xx to INVITE.
#[test]
fn response_to_a_request() {
    let mut invite = request(INVITE);
    invite.headers.insert_record_route("<sip:p.example.com;lr>");
    let ok = response_to(&invite, StatusCode::OK, Some("as83kd9bs"));
    let text = String::from_utf8(ok.to_bytes().to_vec()).unwrap();
    assert_eq!(
        text,
        "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Record-Route: <sip:p.example.com;lr>\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=as83kd9bs\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Content-Length: 0\r\n\r\n"
    );
    let trying = response_to(&invite, StatusCode::TRYING, Some("x"));
    assert_eq!(trying.headers.to().unwrap().tag(), None, "100 gets no tag");
    assert!(trying.headers.get(HeaderName::RecordRoute).is_none());
    let busy = response_to(&invite, StatusCode::BUSY_HERE, Some("x"));
    assert!(busy.headers.get(HeaderName::RecordRoute).is_none());
    assert_eq!(busy.reason_str(), "Busy Here");
}

fn new_options(cseq: u32) -> NewRequest {
    NewRequest {
        method: Method::Options,
        uri: Uri::parse("sip:trunk.example.net:5060").unwrap(),
        from: Uri::parse("sip:hotsite@site-a.example.com").unwrap(),
        from_tag: "f1".into(),
        to: Uri::parse("sip:trunk.example.net").unwrap(),
        call_id: "probe-1@site-a".into(),
        cseq,
        transport: "UDP".into(),
        sent_by: "192.0.2.10:5060".into(),
        branch: Branch::from_string("z9hG4bKprobe1".into()),
        max_forwards: 70,
        contact: None,
    }
}

/// §8.1.1: a new request has every mandatory header and parses back.
#[test]
fn new_request_is_complete() {
    let options = new_options(7).build();
    let text = String::from_utf8(options.to_bytes().to_vec()).unwrap();
    assert_eq!(
        text,
        "OPTIONS sip:trunk.example.net:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKprobe1;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:trunk.example.net>\r\n\
From: <sip:hotsite@site-a.example.com>;tag=f1\r\n\
Call-ID: probe-1@site-a\r\n\
CSeq: 7 OPTIONS\r\n\
Content-Length: 0\r\n\r\n"
    );
    assert_eq!(parse(&options.to_bytes()), Ok(Message::Request(options)));
}

/// §9.1: CANCEL copies the INVITE's top Via (same branch), Request-URI, To,
/// From, Call-ID, CSeq number and Route set.
#[test]
fn cancel_for_an_invite() {
    let mut invite = request(INVITE);
    invite
        .headers
        .push_via("SIP/2.0/UDP proxy.example.com;branch=z9hG4bKproxy1");
    invite.headers.insert(
        1,
        Header::new(HeaderName::Route, "<sip:next.example.com;lr>"),
    );
    let cancel = cancel_for(&invite).unwrap();
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(cancel.uri, invite.uri);
    assert_eq!(cancel.headers.vias().len(), 1);
    assert_eq!(cancel.branch().as_deref(), Some(&b"z9hG4bKproxy1"[..]));
    let cseq = cancel.headers.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (314159, Method::Cancel));
    assert_eq!(cancel.headers.routes().len(), 1);
    assert_eq!(cancel.headers.to(), invite.headers.to());
    assert!(parse(&cancel.to_bytes()).is_ok());
    assert!(matches!(
        cancel_for(&cancel),
        Err(BuildError::NotInvite(Method::Cancel))
    ));
}

/// §17.1.1.3: the ACK for a non-2xx takes To from the response (with its tag).
#[test]
fn ack_for_a_failure_response() {
    let invite = request(INVITE);
    let busy = response_to(&invite, StatusCode::BUSY_HERE, Some("b1"));
    let ack = ack_for(&invite, &busy).unwrap();
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.headers.to().unwrap().tag(), Some("b1"));
    assert_eq!(ack.branch(), invite.branch());
    assert_eq!(ack.headers.cseq().unwrap().to_string(), "314159 ACK");
    assert!(parse(&ack.to_bytes()).is_ok());
    let ok = response_to(&invite, StatusCode::OK, Some("b1"));
    assert!(matches!(
        ack_for(&invite, &ok),
        Err(BuildError::NotNon2xxFinal(_))
    ));
}

/// §8.1.1.7: branches start with the magic cookie and differ.
#[test]
fn branches_carry_the_magic_cookie() {
    let mut rng = hotsite_core::Rng::new(1);
    let a = Branch::generate(&mut rng);
    let b = Branch::generate(&mut rng);
    assert!(a.as_str().starts_with(BRANCH_MAGIC_COOKIE));
    assert_eq!(a.as_str().len(), 7 + 24);
    assert_ne!(a, b);
}

/// §7.3.1, §25.1: header constructors refuse names that are not tokens and
/// line breaks that are not folds (no header injection); URIs are checked.
#[test]
fn header_from_parts_checks_name_and_value() {
    assert!(Header::from_parts("X-Ok", "a\r\n b").is_some());
    assert!(Header::from_parts("X Bad", "a").is_none());
    assert!(Header::from_parts("X-Bad", "a\r\nInjected: 1").is_none());
    assert!(Header::from_parts("X-Bad", "a\nb").is_none());
    assert_eq!(
        Header::from_parts("v", "x").unwrap().kind(),
        HeaderName::Via
    );
    assert!(Uri::parse("sip:ok@example.com").is_ok());
    assert!(Uri::parse("sip:bad host").is_err());
    assert!(Uri::parse("<sip:x@y>").is_err());
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,12}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
        (0u8..=255, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        Just("[2001:db8::1]".to_owned()),
    ]
}

fn sip_uri() -> impl Strategy<Value = String> {
    (
        prop::option::of("[a-zA-Z0-9_.!~*'()&=+$,;?/%-]{1,12}"),
        host(),
        prop::option::of(1u16..=65535),
        prop::collection::vec(
            (
                "[a-z][a-z0-9-]{0,6}",
                prop::option::of("[a-zA-Z0-9.-]{1,8}"),
            ),
            0..3,
        ),
    )
        .prop_map(|(user, host, port, params)| {
            let mut s = String::from("sip:");
            if let Some(user) = user {
                s.push_str(&user);
                s.push('@');
            }
            s.push_str(&host);
            if let Some(port) = port {
                s.push_str(&format!(":{port}"));
            }
            for (name, value) in params {
                s.push(';');
                s.push_str(&name);
                if let Some(value) = value {
                    s.push('=');
                    s.push_str(&value);
                }
            }
            s
        })
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Invite),
        Just(Method::Ack),
        Just(Method::Bye),
        Just(Method::Cancel),
        Just(Method::Options),
        Just(Method::Register),
        token().prop_map(|t| Method::new(&t).unwrap()),
    ]
}

/// Unknown header values: printable text and UTF-8, possibly folded, no edge
/// white space.
fn other_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[!-~]([ -~]{0,30}[!-~])?",
        "[!-~]{1,10}\r\n [!-~]{1,10}",
        "[a-z]{1,5} [éü大]{1,3}",
        Just(String::new()),
    ]
}

prop_compose! {
    fn arb_request()(
        method in method(),
        uri in sip_uri(),
        vias in prop::collection::vec((prop_oneof![Just("UDP"), Just("TCP"), Just("TLS")], host(), prop::option::of(1u16..=65535), "[a-zA-Z0-9]{1,16}"), 1..4),
        from in sip_uri(),
        from_display in prop::option::of("[A-Za-z]{1,8}( [A-Za-z]{1,8})?"),
        from_tag in token(),
        to in sip_uri(),
        to_tag in prop::option::of(token()),
        call_id in "[a-zA-Z0-9.!%*_+`'~()<>:\\\\/\\[\\]?{}-]{1,20}(@[a-z0-9.]{1,12})?",
        seq in any::<u32>(),
        max_forwards in prop::option::of(any::<u8>()),
        routes in prop::collection::vec(sip_uri(), 0..3),
        others in prop::collection::vec(("X-[A-Za-z0-9-]{1,10}", other_value()), 0..5),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) -> Request {
        let mut r = Request::new(method.clone(), Uri::parse(uri).unwrap());
        for (transport, host, port, branch) in vias {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            r.headers.push(Header::new(HeaderName::Via, format!("SIP/2.0/{transport} {host}{port};branch=z9hG4bK{branch}")));
        }
        if let Some(mf) = max_forwards {
            r.headers.push(Header::new(HeaderName::MaxForwards, mf.to_string()));
        }
        let display = from_display.map(|d| format!("\"{d}\" ")).unwrap_or_default();
        r.headers.push(Header::new(HeaderName::From, format!("{display}<{from}>;tag={from_tag}")));
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        r.headers.push(Header::new(HeaderName::To, format!("<{to}>{to_tag}")));
        r.headers.push(Header::new(HeaderName::CallId, call_id));
        r.headers.push(Header::new(HeaderName::CSeq, format!("{seq} {method}")));
        if !routes.is_empty() {
            let list: Vec<String> = routes.iter().map(|u| format!("<{u}>")).collect();
            r.headers.push(Header::new(HeaderName::Route, list.join(", ")));
        }
        for (name, value) in others {
            r.headers.push(Header::from_parts(name, value).unwrap());
        }
        r.body = Bytes::from(body);
        r.headers.push(Header::new(HeaderName::ContentLength, r.body.len().to_string()));
        r
    }
}

proptest! {
    /// §7, §25.1: build → serialise → parse gives the same request, and the
    /// typed views agree with what was built.
    #[test]
    fn built_requests_round_trip(request in arb_request()) {
        let wire = request.to_bytes();
        let parsed = parse(&wire).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&wire))))?;
        prop_assert_eq!(&parsed, &Message::Request(request.clone()));
        prop_assert_eq!(parsed.to_bytes(), wire);
        prop_assert_eq!(request.headers.cseq().unwrap().method, request.method);
        prop_assert!(request.headers.top_via().unwrap().has_rfc3261_branch());
    }

    /// §8.2.6: a response built for any request round-trips too.
    #[test]
    fn responses_round_trip(request in arb_request(), code in 100u16..=699, tag in token()) {
        let response = response_to(&request, StatusCode::new(code).unwrap(), Some(&tag));
        let parsed = parse(&response.to_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed, Message::Response(response));
    }

    /// DESIGN.md invariant 3, RFC 4475 §1: arbitrary bytes never panic; whatever
    /// parses serialises to something that parses to the same message.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(message) = parse(&bytes) {
            prop_assert_eq!(parse(&message.to_bytes()), Ok(message));
        }
        let _ = frame_len(&bytes);
    }

    /// DESIGN.md invariant 3: valid messages with a few bytes changed, inserted or
    /// removed never panic, and still round-trip when they parse.
    #[test]
    fn mutated_messages_never_panic(
        request in arb_request(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut wire = request.to_bytes().to_vec();
        for (at, byte, op) in edits {
            if wire.is_empty() { break; }
            let i = at.index(wire.len());
            match op {
                0 => wire[i] = byte,
                1 => wire.insert(i, byte),
                _ => { wire.remove(i); }
            }
        }
        if let Ok(message) = parse(&wire) {
            prop_assert_eq!(parse(&message.to_bytes()), Ok(message));
        } else if let Err(e) = parse(&wire) {
            // Whatever the error, building the reply must not panic either.
            let _ = e.reply("t");
        }
    }
}

/// §7.3.1: every known name maps to itself from its long form, in any case.
#[test]
fn header_names_round_trip() {
    for kind in [
        HeaderName::Accept,
        HeaderName::Allow,
        HeaderName::AllowEvents,
        HeaderName::Authorization,
        HeaderName::CallId,
        HeaderName::Contact,
        HeaderName::ContentEncoding,
        HeaderName::ContentLength,
        HeaderName::ContentType,
        HeaderName::CSeq,
        HeaderName::Date,
        HeaderName::Event,
        HeaderName::Expires,
        HeaderName::From,
        HeaderName::MaxForwards,
        HeaderName::MinExpires,
        HeaderName::ProxyAuthenticate,
        HeaderName::ProxyAuthorization,
        HeaderName::ProxyRequire,
        HeaderName::Reason,
        HeaderName::RecordRoute,
        HeaderName::ReferTo,
        HeaderName::Require,
        HeaderName::RetryAfter,
        HeaderName::Route,
        HeaderName::Server,
        HeaderName::Subject,
        HeaderName::Supported,
        HeaderName::To,
        HeaderName::Unsupported,
        HeaderName::UserAgent,
        HeaderName::Via,
        HeaderName::Warning,
        HeaderName::WwwAuthenticate,
    ] {
        let name = kind.as_str().unwrap();
        assert_eq!(HeaderName::from_bytes(name.as_bytes()), kind, "{name}");
        assert_eq!(
            HeaderName::from_bytes(name.to_uppercase().as_bytes()),
            kind,
            "{name}"
        );
        assert_eq!(
            HeaderName::from_bytes(name.to_lowercase().as_bytes()),
            kind,
            "{name}"
        );
    }
    assert_eq!(HeaderName::from_bytes(b"X-Custom"), HeaderName::Other);
    assert_eq!(HeaderName::from_bytes(b"q"), HeaderName::Other);
}

/// §7.3.1: values built in code cannot inject header lines; `set` on an
/// unknown header replaces only that header.
#[test]
fn no_header_injection_from_built_values() {
    let h = Header::new(HeaderName::Subject, "hi\r\nInjected: 1\nx\r\n folded");
    assert_eq!(&h.value()[..], b"hi  Injected: 1 x\r\n folded");
    let mut ok = Response::new(StatusCode::OK);
    ok.reason = Bytes::from_static(b"OK\r\nX-Evil: 1");
    ok.headers.push(Header::new(
        HeaderName::Via,
        "SIP/2.0/UDP h;branch=z9hG4bK1",
    ));
    assert!(ok
        .to_bytes()
        .starts_with(b"SIP/2.0 200 OK  X-Evil: 1\r\nVia:"));

    let mut r = request(&with_header(
        "Max-Forwards:",
        "X-A: 1\r\nX-B: 2\r\nx-a: 3\r\n",
    ));
    r.headers.set(Header::from_parts("X-A", "9").unwrap());
    let unknown: Vec<String> = r
        .headers
        .iter()
        .filter(|h| h.kind() == HeaderName::Other)
        .map(|h| format!("{h:?}"))
        .collect();
    assert_eq!(unknown, ["X-A: 9", "X-B: 2"]);
    assert_eq!(r.headers.remove_named("x-b"), 1);
}

/// RFC 5626 §3.5.1: any run of line breaks alone is a keep-alive.
#[test]
fn line_breaks_alone_are_keepalives() {
    for input in [&b"\r\n"[..], b"\r\n\r\n", b"\n", b"\r", b"\r\n\r"] {
        assert!(parse(input).unwrap_err().is_keepalive(), "{input:?}");
        assert_eq!(frame_len(input).unwrap(), Some(input.len()));
    }
}
