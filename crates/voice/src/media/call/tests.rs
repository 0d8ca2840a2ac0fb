//! Latching, re-latching after a media server's handover, and media
//! timeouts, in simulated time (SPEC R1, R5, V3).

use super::*;

const A_RTP: usize = 0;
const A_RTCP: usize = 1;
const B_RTP: usize = 2;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[allow(clippy::disallowed_methods)] // test epoch: only offsets from it matter
fn epoch() -> Instant {
    Instant::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn timers() -> RelayTimers {
    RelayTimers {
        timeout: Duration::from_secs(60),
        hold_timeout: Duration::from_secs(7200),
        relatch_after: ms(500),
    }
}

/// An RTP packet (version 2, PCMU).
const RTP: [u8; 12] = [0x80, 0, 0, 1, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef];
/// An RTCP sender report header.
const RTCP: [u8; 8] = [0x80, 200, 0, 6, 0xde, 0xad, 0xbe, 0xef];

/// A call whose caller is at 192.0.2.10:4000 and whose trunk's SDP said
/// 198.51.100.7:6000.
fn call() -> CallMedia {
    let mut media = CallMedia::new(timers(), 1);
    media.set_remote(
        0,
        Leg::A,
        Some(addr("192.0.2.10:4000")),
        Some(addr("192.0.2.10:4001")),
    );
    media.set_remote(
        0,
        Leg::B,
        Some(addr("198.51.100.7:6000")),
        Some(addr("198.51.100.7:6001")),
    );
    media
}

fn relayed_to(verdict: Verdict) -> Option<SocketAddr> {
    match verdict {
        Verdict::Relay { to, .. } => to,
        Verdict::Refused | Verdict::ForeignSource => panic!("refused: {verdict:?}"),
    }
}

/// Before anything is heard, media goes where the SDPs said; the first
/// packet latches its socket to its real source (with `strict_source` off:
/// a NAT the SDP did not know of), and the other leg's media now goes
/// there.
#[test]
fn first_packet_latches_and_symmetric_rtp_follows_it() {
    let t0 = epoch();
    let mut media = call().with_strict_source(false);
    assert_eq!(media.remote(B_RTP), Some(addr("198.51.100.7:6000")));
    let from_caller = media.handle_packet(t0, A_RTP, addr("192.0.2.10:4000"), &RTP);
    assert_eq!(
        from_caller,
        Verdict::Relay {
            to: Some(addr("198.51.100.7:6000")),
            latch: Some(Latch::Latched)
        }
    );
    let natted = addr("198.51.100.99:31000");
    let from_trunk = media.handle_packet(t0 + ms(5), B_RTP, natted, &RTP);
    assert_eq!(
        from_trunk,
        Verdict::Relay {
            to: Some(addr("192.0.2.10:4000")),
            latch: Some(Latch::Latched)
        }
    );
    let next = media.handle_packet(t0 + ms(20), A_RTP, addr("192.0.2.10:4000"), &RTP);
    assert_eq!(
        next,
        Verdict::Relay {
            to: Some(natted),
            latch: None
        }
    );
    // RTCP latches its own socket and goes to the other leg's RTCP address.
    let rtcp = media.handle_packet(t0 + ms(30), A_RTCP, addr("192.0.2.10:4001"), &RTCP);
    assert_eq!(relayed_to(rtcp), Some(addr("198.51.100.7:6001")));
}

/// No hijack: while the latched source is alive, packets from anyone else
/// are refused (neither relayed nor recorded), even well-formed RTP.
#[test]
fn a_second_source_is_refused_while_the_latched_one_is_active() {
    let t0 = epoch();
    let mut media = call();
    let server = addr("198.51.100.7:6000");
    let intruder = addr("203.0.113.66:5555");
    for i in 0..50u32 {
        let at = t0 + ms(20) * i;
        assert!(matches!(
            media.handle_packet(at, B_RTP, server, &RTP),
            Verdict::Relay { .. }
        ));
        assert_eq!(
            media.handle_packet(at + ms(10), B_RTP, intruder, &RTP),
            Verdict::Refused,
            "packet {i}"
        );
    }
    // Silent for less than relatch_after: still refused.
    let last = t0 + ms(20) * 49;
    assert_eq!(
        media.handle_packet(last + ms(499), B_RTP, intruder, &RTP),
        Verdict::Refused
    );
    assert_eq!(media.remote(B_RTP), Some(server));
}

/// SPEC R1: the cloud media server's handover. Its stream stops, then
/// resumes from another port (new SSRC, jumped sequence): once the old
/// source has been silent for relatch_after the new one is latched, and
/// the caller's audio goes to it, with no re-INVITE.
#[test]
fn handover_relatches_after_silence_and_flows_both_ways() {
    let t0 = epoch();
    let mut media = call();
    let old = addr("198.51.100.7:6000");
    let new = addr("198.51.100.7:6788");
    media.handle_packet(t0, B_RTP, old, &RTP);
    // The gap: the new source shows up 15 s later.
    let resumed = t0 + Duration::from_secs(15);
    let mut jumped = RTP;
    jumped[2..4].copy_from_slice(&0x9000u16.to_be_bytes());
    jumped[8..12].copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(
        media.handle_packet(resumed, B_RTP, new, &jumped),
        Verdict::Relay {
            to: Some(addr("192.0.2.10:4000")),
            latch: Some(Latch::Relatched)
        }
    );
    let caller = media.handle_packet(resumed + ms(3), A_RTP, addr("192.0.2.10:4000"), &RTP);
    assert_eq!(relayed_to(caller), Some(new), "caller's audio follows");
    // The old source coming back now is the intruder.
    assert_eq!(
        media.handle_packet(resumed + ms(20), B_RTP, old, &RTP),
        Verdict::Refused
    );
}

/// The relatch threshold is exactly relatch_after of silence.
#[test]
fn relatch_waits_for_relatch_after() {
    let t0 = epoch();
    let mut media = call();
    let old = addr("198.51.100.7:6000");
    let new = addr("198.51.100.7:6788");
    media.handle_packet(t0, B_RTP, old, &RTP);
    assert_eq!(
        media.handle_packet(t0 + ms(499), B_RTP, new, &RTP),
        Verdict::Refused
    );
    assert!(matches!(
        media.handle_packet(t0 + ms(500), B_RTP, new, &RTP),
        Verdict::Relay {
            latch: Some(Latch::Relatched),
            ..
        }
    ));
}

/// Garbage that is not RTP/RTCP version 2 never latches or re-latches.
#[test]
fn only_rtp_or_rtcp_latches() {
    let t0 = epoch();
    let mut media = call();
    let stun = [0u8, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42];
    assert_eq!(
        media.handle_packet(t0, B_RTP, addr("198.51.100.7:6000"), &stun),
        Verdict::Refused
    );
    media.handle_packet(t0, B_RTP, addr("198.51.100.7:6000"), &RTP);
    assert_eq!(
        media.handle_packet(t0 + ms(900), B_RTP, addr("203.0.113.66:1"), &stun),
        Verdict::Refused
    );
}

/// A re-INVITE that moves a leg's media replaces its address and undoes
/// the latch; the same address again keeps the latch.
#[test]
fn a_new_sdp_address_undoes_the_latch() {
    let t0 = epoch();
    let mut media = call().with_strict_source(false);
    let natted = addr("198.51.100.99:31000");
    media.handle_packet(t0, B_RTP, natted, &RTP);
    media.set_remote(
        0,
        Leg::B,
        Some(addr("198.51.100.7:6000")),
        Some(addr("198.51.100.7:6001")),
    );
    assert_eq!(media.remote(B_RTP), Some(natted), "same SDP: latch kept");
    media.set_remote(
        0,
        Leg::B,
        Some(addr("198.51.100.8:7000")),
        Some(addr("198.51.100.8:7001")),
    );
    assert_eq!(media.remote(B_RTP), Some(addr("198.51.100.8:7000")));
    let moved = media.handle_packet(t0 + ms(1), B_RTP, addr("198.51.100.8:7000"), &RTP);
    assert!(matches!(
        moved,
        Verdict::Relay {
            latch: Some(Latch::Latched),
            ..
        }
    ));
}

/// Before the trunk's SDP is known (no answer yet) the caller's packets
/// are accepted (and recorded) but have nowhere to go.
#[test]
fn unknown_far_end_is_accepted_with_nowhere_to_go() {
    let t0 = epoch();
    let mut media = CallMedia::new(timers(), 1);
    media.set_remote(0, Leg::A, Some(addr("192.0.2.10:4000")), None);
    assert_eq!(
        media.handle_packet(t0, A_RTP, addr("192.0.2.10:4000"), &RTP),
        Verdict::Relay {
            to: None,
            latch: Some(Latch::Latched)
        }
    );
}

/// No RTP from either leg of an answered call for `timeout` ends its
/// media; RTP from one leg alone keeps it; nothing is armed before the
/// answer (a call ringing for two minutes is not timed out).
#[test]
fn media_timeout_after_silence_from_both_legs() {
    let t0 = epoch();
    let mut media = call();
    assert_eq!(media.poll_timeout(), None, "not armed before the answer");
    media.answered(t0 + Duration::from_secs(100));
    let answered = t0 + Duration::from_secs(100);
    assert_eq!(
        media.poll_timeout(),
        Some(answered + Duration::from_secs(60))
    );
    // One-way audio keeps the call alive.
    let mut at = answered;
    for _ in 0..200 {
        at += Duration::from_secs(1);
        media.handle_packet(at, A_RTP, addr("192.0.2.10:4000"), &RTP);
        assert!(!media.handle_timeout(at));
    }
    // RTCP alone does not.
    let mut rtcp_at = at;
    for _ in 0..59 {
        rtcp_at += Duration::from_secs(1);
        media.handle_packet(rtcp_at, A_RTCP, addr("192.0.2.10:4001"), &RTCP);
    }
    assert!(!media.handle_timeout(at + Duration::from_secs(59)));
    assert!(media.handle_timeout(at + Duration::from_secs(60)));
}

/// SPEC R5: on hold (from SDP only) the limit is hold_timeout; silence
/// alone never makes a call "on hold".
#[test]
fn hold_timeout_applies_only_when_sdp_says_hold() {
    let t0 = epoch();
    let mut media = call();
    media.answered(t0);
    media.handle_packet(t0, A_RTP, addr("192.0.2.10:4000"), &RTP);
    media.set_hold(true);
    assert!(!media.handle_timeout(t0 + Duration::from_secs(3600)));
    assert!(!media.handle_timeout(t0 + Duration::from_secs(7199)));
    assert!(media.handle_timeout(t0 + Duration::from_secs(7200)));
    media.set_hold(false);
    assert_eq!(media.poll_timeout(), Some(t0 + Duration::from_secs(60)));
}

/// rtcp-mux: RTCP on the RTP port is relayed but does not count as RTP.
#[test]
fn muxed_rtcp_is_relayed_but_is_not_rtp() {
    let t0 = epoch();
    let mut media = call();
    media.answered(t0);
    let verdict = media.handle_packet(
        t0 + Duration::from_secs(30),
        A_RTP,
        addr("192.0.2.10:4000"),
        &RTCP,
    );
    assert!(matches!(verdict, Verdict::Relay { .. }));
    assert_eq!(media.poll_timeout(), Some(t0 + Duration::from_secs(60)));
}

/// Streams added by a re-offer get their own sockets.
#[test]
fn added_streams_have_their_own_endpoints() {
    let t0 = epoch();
    let mut media = call();
    media.add_stream();
    assert_eq!(media.streams(), 2);
    let index = socket_index(1, Leg::A, Kind::Rtp);
    assert_eq!(index, 4);
    assert_eq!(socket_leg(index), Leg::A);
    assert_eq!(socket_leg(socket_index(1, Leg::B, Kind::Rtcp)), Leg::B);
    media.set_remote(1, Leg::B, Some(addr("198.51.100.7:6002")), None);
    media.set_remote(1, Leg::A, Some(addr("192.0.2.10:4002")), None);
    assert_eq!(
        relayed_to(media.handle_packet(t0, index, addr("192.0.2.10:4002"), &RTP)),
        Some(addr("198.51.100.7:6002"))
    );
}

/// Security (RTP bleed), SPEC R1: with `strict_source` (the default) a
/// source on another IP than the leg's SDP named is refused and reported
/// as foreign: before anything is latched, and after any silence, however
/// long; the same IP from another port after `relatch_after` of silence is
/// a media server's handover and is followed.
#[test]
fn strict_source_refuses_other_ips_even_after_silence() {
    let t0 = epoch();
    let mut media = call();
    let stranger = addr("198.51.100.99:6000");
    assert_eq!(
        media.handle_packet(t0, B_RTP, stranger, &RTP),
        Verdict::ForeignSource,
        "not latched yet: only the SDP's IP may latch"
    );
    media.handle_packet(t0 + ms(1), B_RTP, addr("198.51.100.7:6000"), &RTP);
    let silent = t0 + Duration::from_secs(30);
    assert_eq!(
        media.handle_packet(silent, B_RTP, stranger, &RTP),
        Verdict::ForeignSource,
        "30 s of silence do not let another IP in"
    );
    assert_eq!(media.remote(B_RTP), Some(addr("198.51.100.7:6000")));
    assert_eq!(
        media.handle_packet(silent + ms(1), B_RTP, addr("198.51.100.7:7010"), &RTP),
        Verdict::Relay {
            to: Some(addr("192.0.2.10:4000")),
            latch: Some(Latch::Relatched)
        },
        "same host, another port: a handover"
    );
    // Without strict_source, today's behaviour: any source after silence.
    let mut open = call().with_strict_source(false);
    open.handle_packet(t0, B_RTP, addr("198.51.100.7:6000"), &RTP);
    assert!(matches!(
        open.handle_packet(silent, B_RTP, stranger, &RTP),
        Verdict::Relay {
            latch: Some(Latch::Relatched),
            ..
        }
    ));
}

/// An RFC 2543 hold (`c=0.0.0.0`) takes the leg's address away, but the
/// holder still sends (music on hold): its IP stays the one a strict
/// socket accepts.
#[test]
fn strict_source_keeps_the_ip_through_a_0000_hold() {
    let t0 = epoch();
    let mut media = call();
    media.set_remote(0, Leg::B, None, None);
    assert!(matches!(
        media.handle_packet(t0, B_RTP, addr("198.51.100.7:6000"), &RTP),
        Verdict::Relay {
            latch: Some(Latch::Latched),
            ..
        }
    ));
}

/// A stream that is not RTP (T.38 fax over `udptl`) latches on any
/// datagram from the far end, whose first byte is no RTP version, and its
/// datagrams keep the media timeout away (a fax is not silence).
#[test]
fn non_rtp_streams_latch_on_any_datagram() {
    let t0 = epoch();
    let mut media = call();
    media.set_protocol(0, Protocol::Other);
    media.answered(t0);
    // A UDPTL packet: sequence number 0, then an IFP.
    let udptl = [0x00, 0x00, 0x06, 0xd0, 0x01, 0x01, 0x80, 0x00];
    assert_eq!(
        media.handle_packet(t0 + ms(10), B_RTP, addr("198.51.100.7:6000"), &udptl),
        Verdict::Relay {
            to: Some(addr("192.0.2.10:4000")),
            latch: Some(Latch::Latched)
        }
    );
    let mut at = t0;
    for _ in 0..120 {
        at += Duration::from_secs(1);
        assert!(matches!(
            media.handle_packet(at, A_RTP, addr("192.0.2.10:4000"), &udptl[..3]),
            Verdict::Relay { .. }
        ));
        assert!(!media.handle_timeout(at));
    }
    // Back to RTP (the fax ended with a re-INVITE to audio): version
    // checks again.
    media.set_protocol(0, Protocol::Rtp);
    assert_eq!(
        media.handle_packet(at + ms(600), B_RTP, addr("198.51.100.7:6002"), &udptl),
        Verdict::Refused
    );
}
