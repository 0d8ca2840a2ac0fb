//! SDP reading and rewriting for media anchoring (SPEC R1: the edge can only
//! record what it relays; R5: hold is read from the direction attributes).

use proptest::prelude::*;

use super::*;

fn parse(text: &str) -> Result<Sdp, SdpError> {
    Sdp::parse(Bytes::copy_from_slice(text.as_bytes()))
}

fn ours() -> IpAddr {
    "203.0.113.5".parse().unwrap()
}

/// A PBX's offer: PCMU, PCMA and telephone-events, CRLF line ends.
const OFFER: &str = "v=0\r\n\
o=pbx 1 1 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 4000 RTP/AVP 0 8 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

#[test]
fn reads_connection_media_and_payload_types() {
    let sdp = parse(OFFER).unwrap();
    assert_eq!(
        sdp.session_connection(),
        Some("192.0.2.10".parse().unwrap())
    );
    assert_eq!(sdp.media().len(), 1);
    let audio = &sdp.media()[0];
    assert_eq!(
        (audio.kind.as_str(), audio.port, audio.proto.as_str()),
        ("audio", 4000, "RTP/AVP")
    );
    assert_eq!(audio.formats, ["0", "8", "101"]);
    assert_eq!(
        sdp.payload_types(),
        [
            (0, "PCMU/8000".to_owned()),
            (8, "PCMA/8000".to_owned()),
            (101, "telephone-event/8000".to_owned())
        ]
    );
    assert_eq!(sdp.rtp_addr(0), Some("192.0.2.10:4000".parse().unwrap()));
    assert_eq!(sdp.rtcp_addr(0), Some("192.0.2.10:4001".parse().unwrap()));
    assert_eq!(sdp.direction(), MediaDirection::SendRecv);
}

/// c= and the m= port are ours; every other line, line ends included, is
/// kept byte for byte.
#[test]
fn rewrite_puts_our_address_and_port_and_keeps_the_rest() {
    let sdp = parse(OFFER).unwrap();
    let out = String::from_utf8(rewrite(&sdp, ours(), &[Some(30_000)])).unwrap();
    assert_eq!(
        out,
        OFFER
            .replace("c=IN IP4 192.0.2.10", "c=IN IP4 203.0.113.5")
            .replace("m=audio 4000", "m=audio 30000")
    );
    // The origin line names the PBX still: only c= and m= steer media.
    assert!(out.contains("o=pbx 1 1 IN IP4 192.0.2.10\r\n"));
    // Rewriting with the SDP's own address and port gives it back unchanged.
    let same = rewrite(&sdp, "192.0.2.10".parse().unwrap(), &[Some(4000)]);
    assert_eq!(same, OFFER.as_bytes());
}

/// RFC 3605: a=rtcp gets our RTP port + 1, and our address when it names one.
#[test]
fn rtcp_attribute_follows_our_ports() {
    let text = "v=0\nc=IN IP4 192.0.2.10\nm=audio 4000 RTP/AVP 0\na=rtcp:5001 IN IP4 192.0.2.11\n";
    let sdp = parse(text).unwrap();
    assert_eq!(sdp.rtcp_addr(0), Some("192.0.2.11:5001".parse().unwrap()));
    let out = String::from_utf8(rewrite(&sdp, ours(), &[Some(30_010)])).unwrap();
    assert_eq!(
        out,
        "v=0\nc=IN IP4 203.0.113.5\nm=audio 30010 RTP/AVP 0\na=rtcp:30011 IN IP4 203.0.113.5\n"
    );
    let bare = parse("v=0\nc=IN IP4 192.0.2.10\nm=audio 4000 RTP/AVP 0\na=rtcp:4003\n").unwrap();
    assert_eq!(bare.rtcp_addr(0), Some("192.0.2.10:4003".parse().unwrap()));
    let out = String::from_utf8(rewrite(&bare, ours(), &[Some(30_010)])).unwrap();
    assert!(out.ends_with("a=rtcp:30011\n"), "{out}");
}

/// IPv6 in, IPv4 out and the other way round: the address type follows the
/// address written.
#[test]
fn ipv6_connections_are_read_and_written() {
    let text = "v=0\r\nc=IN IP6 2001:db8::10\r\nm=audio 4000 RTP/AVP 8\r\na=rtcp-mux\r\n";
    let sdp = parse(text).unwrap();
    assert_eq!(
        sdp.rtp_addr(0),
        Some("[2001:db8::10]:4000".parse().unwrap())
    );
    assert!(sdp.media()[0].rtcp_mux);
    let v4 = String::from_utf8(rewrite(&sdp, ours(), &[Some(30_000)])).unwrap();
    assert!(v4.contains("c=IN IP4 203.0.113.5\r\n"), "{v4}");
    let v6 = rewrite(&sdp, "2001:db8::5".parse().unwrap(), &[Some(30_000)]);
    let v6 = parse(std::str::from_utf8(&v6).unwrap()).unwrap();
    assert_eq!(v6.rtp_addr(0), Some("[2001:db8::5]:30000".parse().unwrap()));
}

/// A declined stream (port 0) stays declined, and an m-line we give no
/// port to is declined; media-level c= lines are rewritten too.
#[test]
fn port_zero_stays_zero() {
    let text = "v=0\nm=audio 4000 RTP/AVP 0\nc=IN IP4 192.0.2.10\nm=video 0 RTP/AVP 31\nm=image 5000 udptl t38\nc=IN IP4 192.0.2.12\n";
    let sdp = parse(text).unwrap();
    assert_eq!(sdp.rtp_addr(1), None);
    assert_eq!(sdp.stream_direction(1), MediaDirection::Inactive);
    let out = rewrite(&sdp, ours(), &[Some(30_000), Some(30_004), None]);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "v=0\nm=audio 30000 RTP/AVP 0\nc=IN IP4 203.0.113.5\nm=video 0 RTP/AVP 31\nm=image 0 udptl t38\nc=IN IP4 203.0.113.5\n"
    );
}

/// SPEC R5: hold is what the direction attributes say, at media or session
/// level, and an RFC 2543 hold (c=0.0.0.0) is kept as it is, not replaced
/// by our address (the far end must learn of the hold).
#[test]
fn hold_is_read_from_the_direction_attributes() {
    let media_level = parse(&OFFER.replace("a=sendrecv", "a=sendonly")).unwrap();
    assert_eq!(media_level.direction(), MediaDirection::SendOnly);
    let session_level =
        parse("v=0\nc=IN IP4 192.0.2.10\na=inactive\nm=audio 4000 RTP/AVP 0\n").unwrap();
    assert_eq!(session_level.direction(), MediaDirection::Inactive);
    let overridden =
        parse("v=0\nc=IN IP4 192.0.2.10\na=inactive\nm=audio 4000 RTP/AVP 0\na=recvonly\n")
            .unwrap();
    assert_eq!(overridden.direction(), MediaDirection::RecvOnly);

    let old_style = parse("v=0\nc=IN IP4 0.0.0.0\nm=audio 4000 RTP/AVP 0\n").unwrap();
    assert_eq!(old_style.direction(), MediaDirection::SendOnly);
    assert_eq!(old_style.rtp_addr(0), None);
    let out = String::from_utf8(rewrite(&old_style, ours(), &[Some(30_000)])).unwrap();
    assert_eq!(out, "v=0\nc=IN IP4 0.0.0.0\nm=audio 30000 RTP/AVP 0\n");
}

/// Every refusal names its line and what is wrong (it becomes the Warning
/// of a 488).
#[test]
fn bad_lines_are_named() {
    let cases = [
        ("", 0, "the body is empty"),
        ("o=x 1 1 IN IP4 1.2.3.4\nv=0\n", 1, "v=0"),
        ("v=0\nhello\n", 2, "not <type>=<value>"),
        (
            "v=0\nc=IN IP4 pbx.example\n",
            2,
            "host names are not anchored",
        ),
        ("v=0\nc=IN IP4 224.2.1.1/127\n", 2, "multicast"),
        ("v=0\nc=IN IP4 224.2.1.1\n", 2, "multicast"),
        ("v=0\nc=IN IP6 192.0.2.1\n", 2, "not an IPv6 address"),
        ("v=0\nc=ATM NSAP 47.0005\n", 2, "network type"),
        ("v=0\nc=IN IP4\n", 2, "IN IP4|IP6 <address>"),
        (
            "v=0\nc=IN IP4 1.2.3.4\nm=audio 70000 RTP/AVP 0\n",
            3,
            "0-65535",
        ),
        (
            "v=0\nc=IN IP4 1.2.3.4\nm=audio 4000/2 RTP/AVP 0\n",
            3,
            "port counts",
        ),
        (
            "v=0\nc=IN IP4 1.2.3.4\nm=audio 4000 RTP/AVP\n",
            3,
            "no formats",
        ),
        ("v=0\nm=audio 4000 RTP/AVP 0\n", 2, "no c= line"),
        (
            "v=0\nc=IN IP4 1.2.3.4\nm=audio 4000 RTP/AVP 0\na=rtcp:x\n",
            4,
            "a=rtcp's port",
        ),
        (
            "v=0\nc=IN IP4 1.2.3.4\nm=audio 4000 RTP/AVP 96\na=rtpmap:200 opus/48000\n",
            4,
            "0-127",
        ),
    ];
    for (text, line, fault) in cases {
        let error = parse(text).expect_err(text);
        assert_eq!(error.line, line, "{text:?}: {error}");
        assert!(error.to_string().contains(fault), "{text:?}: {error}");
    }
    let too_many = format!(
        "v=0\nc=IN IP4 1.2.3.4\n{}",
        "m=audio 4000 RTP/AVP 0\n".repeat(MAX_MEDIA_LINES + 1)
    );
    assert_eq!(parse(&too_many).unwrap_err().fault, SdpFault::TooManyMedia);
}

/// Lenient where it costs nothing: LF line ends, blank lines, unknown
/// types, no o=/s=/t=, a last line with no line end.
#[test]
fn tolerates_what_does_not_matter() {
    let sdp = parse("v=0\n\nx=whatever\nc=IN IP4 1.2.3.4\nm=audio 4000 RTP/AVP 0").unwrap();
    assert_eq!(sdp.rtp_addr(0), Some("1.2.3.4:4000".parse().unwrap()));
    let out = rewrite(&sdp, ours(), &[Some(30_000)]);
    assert_eq!(
        out,
        b"v=0\n\nx=whatever\nc=IN IP4 203.0.113.5\nm=audio 30000 RTP/AVP 0"
    );
}

/// Dynamic payload types without an rtpmap have no name; a non-audio stream's
/// formats are not the recording's.
#[test]
fn payload_type_names() {
    let sdp = parse(
        "v=0\nc=IN IP4 1.2.3.4\nm=audio 4000 RTP/AVP 96 18 97\na=rtpmap:96 opus/48000/2\nm=video 4002 RTP/AVP 31\n",
    )
    .unwrap();
    assert_eq!(
        sdp.payload_types(),
        [
            (96, "opus/48000/2".to_owned()),
            (18, "G729/8000".to_owned()),
            (97, String::new())
        ]
    );
}

proptest! {
    /// Parsing never panics, and a parsed SDP rewritten parses again with
    /// our ports where streams were active.
    #[test]
    fn rewrite_of_anything_parsed_parses(lines in proptest::collection::vec(
        prop_oneof![
            Just("c=IN IP4 192.0.2.1".to_owned()),
            Just("c=IN IP6 ::1".to_owned()),
            Just("c=IN IP4 0.0.0.0".to_owned()),
            Just("m=audio 4000 RTP/AVP 0 8".to_owned()),
            Just("m=audio 0 RTP/AVP 0".to_owned()),
            Just("a=rtcp:4001 IN IP4 192.0.2.2".to_owned()),
            Just("a=rtcp:9".to_owned()),
            Just("a=sendonly".to_owned()),
            Just("a=rtcp-mux".to_owned()),
            "[a-z]=[ -~]{0,20}",
        ], 0..12)) {
        let text = format!("v=0\r\n{}\r\n", lines.join("\r\n"));
        if let Ok(sdp) = parse(&text) {
            let ports: Vec<Option<u16>> = (0..sdp.media().len()).map(|i| Some(30_000 + 2 * i as u16)).collect();
            let out = rewrite(&sdp, ours(), &ports);
            let again = Sdp::parse(Bytes::from(out)).expect("a rewritten SDP parses");
            prop_assert_eq!(again.media().len(), sdp.media().len());
            for (i, media) in sdp.media().iter().enumerate() {
                let want = if media.port == 0 { 0 } else { 30_000 + 2 * i as u16 };
                prop_assert_eq!(again.media()[i].port, want);
            }
        }
    }
}

/// A repeated c= line (invalid, but seen) is rewritten too: no far-end
/// address is left for the other side to send to directly.
#[test]
fn every_connection_line_is_rewritten() {
    let text = "v=0\nc=IN IP4 192.0.2.1\nc=IN IP4 192.0.2.2\nm=audio 4000 RTP/AVP 0\nc=IN IP4 192.0.2.3\nc=IN IP4 192.0.2.4\na=rtcp:4001\na=rtcp:4005 IN IP4 192.0.2.5\n";
    let sdp = parse(text).unwrap();
    let out = String::from_utf8(rewrite(&sdp, ours(), &[Some(30_000)])).unwrap();
    assert!(!out.contains("192.0.2."), "{out}");
    assert_eq!(out.matches("203.0.113.5").count(), 5, "{out}");
    assert!(out.contains("a=rtcp:30001\n") && out.contains("a=rtcp:30001 IN IP4 203.0.113.5\n"));
}

/// SPEC R1: ICE lines go, at session and media level, with LF or CRLF
/// ends and on the last line without one; nothing else changes.
#[test]
fn rewrite_drops_the_ice_lines() {
    let text = "v=0\nc=IN IP4 192.0.2.10\na=ice-lite\na=ice-options:trickle\n\
                m=audio 4000 RTP/AVP 0\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef012345\n\
                a=ptime:20\na=remote-candidates:1 192.0.2.10 4000\na=candidate:1 1 UDP 1 192.0.2.10 4000 typ host";
    let sdp = parse(text).unwrap();
    let out = String::from_utf8(rewrite(&sdp, ours(), &[Some(30_000)])).unwrap();
    assert_eq!(
        out,
        "v=0\nc=IN IP4 203.0.113.5\nm=audio 30000 RTP/AVP 0\na=ptime:20\n"
    );
}

/// SPEC R1, R2: an SRTP stream (secure profile or `a=crypto`) is known as
/// such, and its payload types are named `SRTP/…`, never `PCMU/8000`.
#[test]
fn srtp_streams_are_marked() {
    let plain = parse(OFFER).unwrap();
    assert!(!plain.has_srtp());
    let savp = parse(&OFFER.replace("RTP/AVP", "RTP/SAVPF")).unwrap();
    assert!(savp.has_srtp() && savp.media()[0].is_rtp());
    assert_eq!(savp.payload_types()[0], (0, "SRTP/PCMU/8000".to_owned()));
    let sdes = parse(&format!(
        "{OFFER}a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:key\r\n"
    ))
    .unwrap();
    assert!(sdes.has_srtp());
    let t38 = parse("v=0\r\nc=IN IP4 192.0.2.10\r\nm=image 4000 udptl t38\r\n").unwrap();
    assert!(!t38.media()[0].is_rtp() && !t38.has_srtp());
}
