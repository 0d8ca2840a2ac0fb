//! RFC 4475 §3.1.1 and §3.1.2: the SIP torture test messages against
//! `hotsite_sip::message::parse`.
//!
//! The messages are in `tests/torture/{valid,invalid}/*.txt`, typed from the
//! RFC in its own notation (§2): `<allOneLine>` joins lines, `<hex>` gives
//! octets, `<repeat count=N>` repeats text, and every line ends in CRLF. See
//! `tests/torture/README.md`.
//!
//! Every valid message must parse and survive serialise → parse unchanged; every
//! invalid one must be refused (answered 400 or 505, or dropped) — except
//! `baddate`, which we accept on purpose (see `INVALID`).

use std::path::Path;

use bytes::Bytes;
use hotsite_sip::message::{
    parse, parse_bytes, HeaderName, Message, Method, ParseErrorKind, Request, Response, StatusCode,
};

// ---------------------------------------------------------------------------
// The RFC's notation
// ---------------------------------------------------------------------------

/// Decodes a message written in RFC 4475's notation into its octets.
fn decode(text: &str) -> Vec<u8> {
    // <allOneLine> … </allOneLine>: the lines inside are one line.
    let mut joined = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<allOneLine>\n") {
        joined.push_str(&rest[..start]);
        let inner = &rest[start + "<allOneLine>\n".len()..];
        let end = inner
            .find("\n</allOneLine>")
            .expect("unterminated <allOneLine>");
        joined.push_str(&inner[..end].replace('\n', ""));
        rest = &inner[end + "\n</allOneLine>".len()..];
    }
    joined.push_str(rest);
    let crlf = joined.replace('\n', "\r\n");

    // <hex> … </hex> and <repeat count=N> … </repeat>.
    let mut out = Vec::new();
    let mut rest = crlf.as_str();
    loop {
        let hex = rest.find("<hex>");
        let repeat = rest.find("<repeat count=");
        let next = match (hex, repeat) {
            (Some(h), Some(r)) => Some(h.min(r)),
            (h, r) => h.or(r),
        };
        let Some(at) = next else {
            out.extend_from_slice(rest.as_bytes());
            return out;
        };
        out.extend_from_slice(&rest.as_bytes()[..at]);
        rest = &rest[at..];
        if let Some(body) = rest.strip_prefix("<hex>") {
            let end = body.find("</hex>").expect("unterminated <hex>");
            let digits: Vec<u8> = body[..end]
                .bytes()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            assert!(digits.len() % 2 == 0, "odd hex");
            for pair in digits.chunks(2) {
                let s = std::str::from_utf8(pair).unwrap();
                out.push(u8::from_str_radix(s, 16).expect("hex digit"));
            }
            rest = &body[end + "</hex>".len()..];
        } else {
            let body = &rest["<repeat count=".len()..];
            let close = body.find('>').unwrap();
            let count: usize = body[..close].parse().expect("repeat count");
            let body = &body[close + 1..];
            let end = body.find("</repeat>").expect("unterminated <repeat>");
            for _ in 0..count {
                out.extend_from_slice(&body.as_bytes()[..end]);
            }
            rest = &body[end + "</repeat>".len()..];
        }
    }
}

fn load(dir: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/torture")
        .join(dir)
        .join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    decode(&text)
}

/// Parses a valid message and checks serialise → parse gives it back.
#[track_caller]
fn valid(name: &str) -> Message {
    let wire = load("valid", name);
    let message = parse(&wire).unwrap_or_else(|e| panic!("{name} must parse: {e}"));
    let again = parse(&message.to_bytes())
        .unwrap_or_else(|e| panic!("{name} re-serialised must parse: {e}"));
    assert_eq!(again, message, "{name}: round trip changed the message");
    message
}

#[track_caller]
fn request(name: &str) -> Request {
    match valid(name) {
        Message::Request(r) => r,
        Message::Response(r) => panic!("{name} is a request, parsed as {r}"),
    }
}

#[track_caller]
fn response(name: &str) -> Response {
    match valid(name) {
        Message::Response(r) => r,
        Message::Request(r) => panic!("{name} is a response, parsed as {r}"),
    }
}

fn value(message: &Request, name: &str) -> Bytes {
    message
        .headers
        .get_named(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .value()
        .clone()
}

// ---------------------------------------------------------------------------
// §3.1.1 Valid messages
// ---------------------------------------------------------------------------

/// RFC 4475 §3.1.1.1 (wsinv): folding everywhere, LWS around every separator,
/// mixed compact and long names in odd case, leading zeros, unknown headers.
#[test]
fn wsinv_short_tortuous_invite() {
    let r = request("wsinv");
    assert_eq!(r.method, Method::Invite);
    let h = &r.headers;
    let vias = h.vias();
    assert_eq!(vias.len(), 3, "{vias:?}");
    assert_eq!(vias[0].branch(), Some("390skdjuw"));
    assert!(!vias[0].has_rfc3261_branch(), "pre-3261 branch");
    assert_eq!(vias[0].host(), "192.0.2.2");
    assert_eq!(
        (vias[1].transport(), vias[1].host()),
        ("TCP", "spindle.example.com")
    );
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(h.to().unwrap().tag(), Some("1918181833n"));
    let from = h.from().unwrap();
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(
        &from.display.as_ref().unwrap()[..],
        br#""J Rosenberg \\\"""#
    );
    assert_eq!(h.max_forwards(), Some(68));
    let cseq = h.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    assert_eq!(h.call_id(), Some("wsinv.ndaksdj@192.0.2.1"));
    assert_eq!(r.body.len(), 150);
    assert_eq!(&value(&r, "Subject")[..], b"");
    assert_eq!(
        &value(&r, "NewFangledHeader")[..],
        b"newfangled value\r\n continued newfangled value"
    );
    assert_eq!(&value(&r, "UnknownHeaderWithUnusualValue")[..], b";;,,;;,;");
    let route = h.top_route().unwrap();
    assert!(route.uri.sip().unwrap().is_loose_router());
    let contact = &h.contacts()[0];
    assert_eq!(contact.params.get("newparam"), Some(Some(&b"newvalue"[..])));
    assert_eq!(contact.params.get("secondparam"), Some(None));
    assert_eq!(contact.params.get("q"), Some(Some(&b"0.33"[..])));
    let uri = r.uri.sip().unwrap();
    assert_eq!(uri.param("unknownparam"), Some(None));
}

/// RFC 4475 §3.1.1.2 (intmeth): every token character in a method, unusual
/// but legal URI, branch, tags and Call-ID, a quoted NUL, UTF-8 values.
#[test]
fn intmeth_wide_range_of_valid_characters() {
    let r = request("intmeth");
    assert_eq!(
        r.method.as_str(),
        "!interesting-Method0123456789_*+`.%indeed'~"
    );
    assert!(matches!(r.method, Method::Extension(_)));
    let uri = r.uri.sip().unwrap();
    assert_eq!(
        &uri.user.as_ref().unwrap()[..],
        b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    );
    assert_eq!(
        &uri.password.as_ref().unwrap()[..],
        b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    );
    assert_eq!(uri.host_str(), "example.com");
    let h = &r.headers;
    assert_eq!(h.top_via().unwrap().branch(), Some("z9hG4bK-.!%66*_+`'~"));
    assert_eq!(h.from().unwrap().tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        &h.from().unwrap().display.unwrap()[..],
        b"token1~` token2'+_ token3*%!.-"
    );
    assert!(h.to().unwrap().display.unwrap().contains(&0));
    assert_eq!(
        h.call_id(),
        Some("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
    );
    assert_eq!(h.cseq().unwrap().method, r.method);
    assert_eq!(h.max_forwards(), Some(255));
    assert_eq!(
        &value(&r, "extensionHeader-!.%*+_`'~")[..],
        "\u{feff}大停電".as_bytes()
    );
}

/// RFC 4475 §3.1.1.3 (esc01): % escapes in user parts and URI parameters are
/// kept as they are (a proxy forwards them untouched).
#[test]
fn esc01_valid_escaping() {
    let r = request("esc01");
    let uri = r.uri.sip().unwrap();
    assert_eq!(
        &uri.user.as_ref().unwrap()[..],
        b"sips%3Auser%40example.com"
    );
    assert_eq!(uri.host_str(), "example.net");
    assert_eq!(
        r.headers.call_id(),
        Some("esc01.239409asdfakjkn23onasd0-3234")
    );
    let contact = r.headers.contacts().remove(0).uri.sip().unwrap();
    assert_eq!(contact.param("%6C%72"), Some(None));
    assert_eq!(
        contact.param("n%61me"),
        Some(Some(&b"v%61lue%25%34%31"[..]))
    );
    assert_eq!(
        r.headers
            .get(HeaderName::ContentType)
            .unwrap()
            .name()
            .as_ref(),
        b"C"
    );
    assert_eq!(r.body.len(), 150);
}

/// RFC 4475 §3.1.1.4 (escnull): escaped NULs in URIs are just text.
#[test]
fn escnull_escaped_nulls_in_uris() {
    let r = request("escnull");
    let contacts = r.headers.contacts();
    assert_eq!(contacts.len(), 2);
    assert_eq!(&contacts[1].uri.sip().unwrap().user.unwrap()[..], b"%00%00");
    assert_eq!(r.headers.content_length(), Some(0));
}

/// RFC 4475 §3.1.1.5 (esc02): % is not an escape in a method or a header
/// name: RE%47IST%45R is an unknown method, C%6Fntact an unknown header.
#[test]
fn esc02_percent_that_is_not_an_escape() {
    let r = request("esc02");
    assert_ne!(r.method, Method::Register);
    assert_eq!(r.method.as_str(), "RE%47IST%45R");
    assert_eq!(r.headers.contacts().len(), 2, "two Contacts, not three");
    assert_eq!(
        r.headers.get_named("C%6Fntact").unwrap().kind(),
        HeaderName::Other
    );
    assert_eq!(&r.headers.to().unwrap().display.unwrap()[..], br#""%Z%45""#);
}

/// RFC 4475 §3.1.1.6 (lwsdisp): no LWS between display name and `<`.
#[test]
fn lwsdisp_no_space_before_angle_bracket() {
    let r = request("lwsdisp");
    let from = r.headers.from().unwrap();
    assert_eq!(&from.display.as_ref().unwrap()[..], b"caller");
    assert_eq!(from.tag(), Some("323"));
}

/// RFC 4475 §3.1.1.7 (longreq): long values, 34 Via hops written with every
/// case and spacing of the name.
#[test]
fn longreq_long_values() {
    let r = request("longreq");
    let vias = r.headers.vias();
    assert_eq!(vias.len(), 34);
    for (i, via) in vias.iter().take(33).enumerate() {
        assert_eq!(via.host(), format!("sip{}.example.com", 33 - i));
    }
    let long_branch = format!("very{}branchvalue", "long".repeat(50));
    assert_eq!(vias[33].branch(), Some(long_branch.as_str()));
    assert_eq!(vias[33].received(), Some("192.0.2.5"));
    let tag = format!("12{}424", "982".repeat(50));
    assert_eq!(r.headers.from().unwrap().tag(), Some(tag.as_str()));
    assert_eq!(
        r.headers.call_id().unwrap(),
        format!("longreq.one{}longcallid", "really".repeat(20))
    );
    let to = r.headers.to().unwrap().uri.sip().unwrap();
    assert_eq!(to.port, Some(6000));
    assert_eq!(r.body.len(), 150);
}

/// RFC 4475 §3.1.1.8 (dblreq): octets after Content-Length in a datagram are
/// ignored (§18.3) and not forwarded.
#[test]
fn dblreq_extra_octets_after_the_body_are_ignored() {
    let r = request("dblreq");
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
    assert!(!r.to_bytes().windows(6).any(|w| w == b"INVITE"));
}

/// RFC 4475 §3.1.1.9 (semiuri): `;` parameters inside the user part.
#[test]
fn semiuri_parameters_in_the_user_part() {
    let r = request("semiuri");
    let uri = r.uri.sip().unwrap();
    assert_eq!(&uri.user.as_ref().unwrap()[..], b"user;par=u%40example.net");
    assert_eq!(uri.host_str(), "example.com");
    assert!(uri.params.is_empty());
}

/// RFC 4475 §3.1.1.10 (transports): unknown transports are fine.
#[test]
fn transports_varied_and_unknown() {
    let r = request("transports");
    let transports: Vec<String> = r
        .headers
        .vias()
        .iter()
        .map(|v| v.transport().to_owned())
        .collect();
    assert_eq!(transports, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    assert_eq!(
        r.headers.call_id(),
        Some("transports.kijh4akdnaqjkwendsasfdj")
    );
}

/// RFC 4475 §3.1.1.11 (mpart01): a binary body with NULs, framed by
/// Content-Length alone.
#[test]
fn mpart01_multipart_binary_body() {
    let r = request("mpart01");
    assert_eq!(r.body.len(), 553);
    assert!(r.body.contains(&0));
    assert!(r.body.ends_with(b"--7a9cbec02ceef655--\r\n"));
    assert_eq!(r.headers.top_via().unwrap().rport(), Some(None));
    assert_eq!(r.headers.top_via().unwrap().port, Some(5070));
}

/// RFC 4475 §3.1.1.12 (unreason): a reason phrase with UTF-8 and `*`.
#[test]
fn unreason_unusual_reason_phrase() {
    let r = response("unreason");
    assert_eq!(r.status, StatusCode::OK);
    let reason = std::str::from_utf8(&r.reason).unwrap();
    assert!(reason.starts_with("= 2**3 * 5**2 но сто девяносто девять"));
    assert_eq!(r.body.len(), 154);
}

/// RFC 4475 §3.1.1.13 (noreason): an empty reason phrase.
#[test]
fn noreason_empty_reason_phrase() {
    let r = response("noreason");
    assert_eq!(r.status, StatusCode::TRYING);
    assert!(r.reason.is_empty());
}

// ---------------------------------------------------------------------------
// §3.1.2 Invalid messages
// ---------------------------------------------------------------------------

/// What we do with each invalid message.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Refused, and answered with this status (a request we could read enough of).
    Answer(u16),
    /// Refused and dropped (a response: nobody to answer).
    Drop,
    /// Accepted on purpose; the reason is in `INVALID`.
    Accept,
}

/// RFC 4475 §3.1.2, message by message, with what the RFC asks for.
const INVALID: &[(&str, Expect)] = &[
    // 3.1.2.1: stray `;` and `,` in Via and Contact: 400.
    ("badinv01", Expect::Answer(400)),
    // 3.1.2.2: Content-Length larger than the datagram's body: 400 over UDP.
    ("clerr", Expect::Answer(400)),
    // 3.1.2.3: negative Content-Length: 400.
    ("ncl", Expect::Answer(400)),
    // 3.1.2.4: CSeq above 2^32-1 (and Max-Forwards 300): 400.
    ("scalar02", Expect::Answer(400)),
    // 3.1.2.5: a response with an overlarge CSeq: discarded.
    ("scalarlg", Expect::Drop),
    // 3.1.2.6: unterminated quoted display name: 400.
    ("quotbal", Expect::Answer(400)),
    // 3.1.2.7: Request-URI in <>: 400.
    ("ltgtruri", Expect::Answer(400)),
    // 3.1.2.8: white space inside the Request-URI: 400.
    ("lwsruri", Expect::Answer(400)),
    // 3.1.2.9: several SP between Request-Line elements: rejecting is allowed.
    ("lwsstart", Expect::Answer(400)),
    // 3.1.2.10: SP after SIP/2.0: rejecting is allowed.
    ("trws", Expect::Answer(400)),
    // 3.1.2.11: escaped headers in the Request-URI: 400 is acceptable.
    ("escruri", Expect::Answer(400)),
    // 3.1.2.12: a Date in EST. The RFC says not to reject unless the Date matters
    // to the element; to a proxy it does not, so the Date passes through opaque.
    ("baddate", Expect::Accept),
    // 3.1.2.13: a bare URI with `?` headers in Contact: 400.
    ("regbadct", Expect::Answer(400)),
    // 3.1.2.14: spaces inside <> in To: 400.
    ("badaspec", Expect::Answer(400)),
    // 3.1.2.15: unquoted display names with `,`: 400.
    ("baddn", Expect::Answer(400)),
    // 3.1.2.16: SIP/7.0: 505 Version Not Supported.
    ("badvers", Expect::Answer(505)),
    // 3.1.2.17: CSeq method differs from the request method: 400.
    ("mismatch01", Expect::Answer(400)),
    // 3.1.2.18: unknown method with a different CSeq method: 501 or 400; a
    // parser cannot tell "unknown" from "mismatched", so 400.
    ("mismatch02", Expect::Answer(400)),
    // 3.1.2.19: status code 4294967301: dropped.
    ("bigcode", Expect::Drop),
];

/// RFC 4475 §3.1.2: each invalid message is refused as the table says, and a
/// refused request is answered with its Via, Call-ID, CSeq and From copied and a
/// To tag added (RFC 3261 §8.2.6). Run with `--nocapture` for the list.
#[test]
fn invalid_messages_are_refused_as_the_rfc_asks() {
    let mut failures = Vec::new();
    for &(name, expect) in INVALID {
        let wire = load("invalid", name);
        let got = match parse(&wire) {
            Ok(_) => Expect::Accept,
            Err(e) => match e.reply("hs1") {
                Some(reply) => {
                    // The reply copies the offending headers as received (the
                    // client matches on them), so it need not parse itself.
                    let wire = reply.to_bytes();
                    let status_line = format!("SIP/2.0 {} ", reply.status);
                    assert!(wire.starts_with(status_line.as_bytes()));
                    assert!(reply.headers.get(HeaderName::CallId).is_some());
                    assert!(reply.headers.get(HeaderName::CSeq).is_some());
                    assert!(reply.headers.get(HeaderName::Via).is_some());
                    println!("{name}: {} {} ({e})", reply.status, reply.reason_str());
                    Expect::Answer(reply.status.as_u16())
                }
                None => {
                    println!("{name}: dropped ({e})");
                    Expect::Drop
                }
            },
        };
        if got != expect {
            failures.push(format!("{name}: expected {expect:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// RFC 4475 §3.1.2.2: the error names the mismatch.
#[test]
fn clerr_error_names_the_lengths() {
    let err = parse(&load("invalid", "clerr")).unwrap_err();
    assert!(matches!(
        err.kind(),
        ParseErrorKind::BodyTooShort { declared: 9999, .. }
    ));
}

/// RFC 4475 §3.1.2.4: the 400 is for the CSeq, named in the reason phrase.
#[test]
fn scalar02_reply_names_the_cseq() {
    let err = parse(&load("invalid", "scalar02")).unwrap_err();
    let reply = err.reply("t").unwrap();
    assert_eq!(reply.reason_str(), "Invalid CSeq");
    assert_eq!(reply.headers.to().unwrap().tag(), Some("t"));
}

/// RFC 4475 §3.1.2.16: 505, not 400.
#[test]
fn badvers_is_answered_505() {
    let err = parse(&load("invalid", "badvers")).unwrap_err();
    assert!(matches!(err.kind(), ParseErrorKind::UnsupportedVersion(v) if v == "SIP/7.0"));
    assert_eq!(
        err.reply("x").unwrap().status,
        StatusCode::VERSION_NOT_SUPPORTED
    );
}

/// RFC 4475 §1 and DESIGN.md invariant 3: every torture message, cut at every
/// length, neither panics nor parses into something that does not serialise back.
#[test]
fn truncations_of_every_message_never_panic() {
    for dir in ["valid", "invalid"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/torture")
            .join(dir);
        for entry in std::fs::read_dir(path).unwrap() {
            let path = entry.unwrap().path();
            let wire = decode(&std::fs::read_to_string(&path).unwrap());
            for cut in 0..=wire.len() {
                if let Ok(message) = parse_bytes(Bytes::copy_from_slice(&wire[..cut])) {
                    assert_eq!(parse(&message.to_bytes()).as_ref(), Ok(&message));
                }
            }
        }
    }
}
