//! One anchored call's relay decisions, sans-IO: where each datagram goes,
//! which sources are accepted (symmetric RTP latching), and when the call's
//! media has timed out. Time is passed in; the relay task (`relay.rs`) owns
//! one of these and its sockets.
//!
//! # Sockets
//!
//! A call has, per stream (m-line), four sockets, indexed
//! `stream * 4 + leg * 2 + kind` (leg a = 0, b = 1; RTP = 0, RTCP = 1): what
//! arrives on a socket of one leg leaves from the same kind of socket of the
//! other leg (`index ^ 2`), so each far end sends to and hears from one
//! address of ours (symmetric RTP, RFC 4961).
//!
//! # Latching
//!
//! Each socket's remote address starts as the one the leg's SDP gave (so
//! media can flow before the far end sends anything) and is then learnt from
//! where packets arrive: the first RTP or RTCP packet (version 2) latches it.
//!
//! Which sources may be learnt depends on `strict_source` (`[voice.media]`,
//! default on). Strict: only a source whose IP is the one the leg's SDP
//! gave for that socket (or the IP it is latched to) may latch or re-latch
//! it; a packet from any other IP is refused and counted
//! ([`Verdict::ForeignSource`]), however long the stream has been silent.
//! A media server's handover, which moves ports on the same host, is
//! followed; an SDP that names a private address behind a NAT is not (the
//! packets come from the NAT's public IP): such callers need
//! `strict_source = false`, which latches any source, as a NAT would need.
//!
//! Once latched, a packet from another source is refused (not relayed, not
//! recorded) while the latched source is alive. When the latched source has
//! been silent for `relatch_after` (500 ms by default), the next RTP/RTCP
//! packet from an acceptable new source re-latches the socket to it. This
//! is how a cloud media server's handover is followed without a re-INVITE:
//! its stream stops, then resumes from another port with a new SSRC and
//! jumped sequence and timestamp, and both directions keep flowing (SPEC
//! R1: the edge keeps recording).
//!
//! What holds, then: while the latched source sends, nobody else's packets
//! reach the other leg or the recording. In a gap of `relatch_after`, with
//! `strict_source` only a sender on the far end's own IP can take the
//! stream over (a spoofed source address can, as with any UDP media without
//! SRTP); without it, any sender that knows the port can ("RTP bleed").
//!
//! A stream whose protocol is not RTP (T.38's `m=image … udptl`,
//! [`Protocol::Other`]) has no version bits to check: any datagram from an
//! acceptable source latches it, and its datagrams keep the media timeout
//! away as RTP does. Only the first two bytes of a packet are ever looked
//! at, and only for RTP streams.
//!
//! A new SDP address for a leg (a re-INVITE that moves the media) replaces
//! the remote and undoes the latch; the same address again changes nothing.
//!
//! # Timeout
//!
//! Armed when the call is answered (before that, the INVITE transaction
//! bounds the call): no RTP from either leg for `timeout` (60 s), or
//! `hold_timeout` (2 h) while the SDP says the call is on hold (SPEC R5:
//! hold is taken only from signalling), ends the call's media. Only RTP
//! counts: RTCP keeps flowing on a dead call's far ends. The signalling is
//! not touched: hotsite is a proxy, not a party to the dialog, so it does
//! not send BYE; the media is released and a `media_timeout` event says so.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::tap::Leg;

/// The relay's timers (`[voice.media]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayTimers {
    /// No RTP from either leg of an answered call for this → released.
    pub timeout: Duration,
    /// The same while the call is on hold.
    pub hold_timeout: Duration,
    /// A latched source silent this long may be replaced by a new one.
    pub relatch_after: Duration,
}

/// RTP or RTCP, the two sockets of a stream's leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The even port.
    Rtp,
    /// The odd port.
    Rtcp,
}

/// The socket index of a stream's leg and kind (see the module docs).
pub fn socket_index(stream: usize, leg: Leg, kind: Kind) -> usize {
    stream * 4 + leg.index() * 2 + kind as usize
}

/// The leg a socket belongs to.
pub fn socket_leg(index: usize) -> Leg {
    if index & 2 == 0 {
        Leg::A
    } else {
        Leg::B
    }
}

/// What a stream carries, from its m-line's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RTP and RTCP (`RTP/AVP` and its profiles): sources latch on
    /// version-2 packets only.
    #[default]
    Rtp,
    /// Anything else (`udptl` for T.38 fax, …): any datagram counts.
    Other,
}

/// What to do with one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted from the leg: record it, and send it from the other leg's
    /// socket (`index ^ 2`) to `to`, if the other leg's address is known.
    Relay {
        /// Where the other leg's media goes.
        to: Option<SocketAddr>,
        /// This packet latched or re-latched its socket.
        latch: Option<Latch>,
    },
    /// Not from the latched source (or not RTP/RTCP from an unknown one):
    /// dropped, not recorded.
    Refused,
    /// From an IP that is neither the one the leg's SDP gave nor the
    /// latched one, with `strict_source` on: dropped, not recorded.
    ForeignSource,
}

/// A change of a socket's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latch {
    /// The first source heard.
    Latched,
    /// A new source after the latched one was silent for `relatch_after`.
    Relatched,
}

#[derive(Debug, Clone, Copy, Default)]
struct Endpoint {
    /// Where the leg's SDP says to send.
    sdp: Option<SocketAddr>,
    /// The IP the leg's SDP last named (kept through an RFC 2543 hold's
    /// `0.0.0.0`, whose sender still sends): the source IP a strict socket
    /// accepts besides the latched one.
    sdp_ip: Option<IpAddr>,
    /// Where packets come from, once heard.
    latched: Option<SocketAddr>,
    heard_at: Option<Instant>,
}

impl Endpoint {
    fn remote(&self) -> Option<SocketAddr> {
        self.latched.or(self.sdp)
    }
}

/// One call's relay state. See the module docs.
#[derive(Debug)]
pub struct CallMedia {
    timers: RelayTimers,
    strict_source: bool,
    endpoints: Vec<Endpoint>,
    /// By stream.
    protocols: Vec<Protocol>,
    answered_at: Option<Instant>,
    last_rtp: Option<Instant>,
    on_hold: bool,
}

impl CallMedia {
    /// A call with `streams` streams, nothing known of its far ends, with
    /// `strict_source` on (see the module docs).
    pub fn new(timers: RelayTimers, streams: usize) -> CallMedia {
        CallMedia {
            timers,
            strict_source: true,
            endpoints: vec![Endpoint::default(); streams * 4],
            protocols: vec![Protocol::Rtp; streams],
            answered_at: None,
            last_rtp: None,
            on_hold: false,
        }
    }

    /// Whether only the SDP's (or the latched) IP may latch a socket
    /// (`[voice.media] strict_source`; see the module docs).
    pub fn with_strict_source(mut self, strict: bool) -> CallMedia {
        self.strict_source = strict;
        self
    }

    /// One more stream (a re-offer added an m-line); its index is the
    /// number of streams before.
    pub fn add_stream(&mut self) {
        self.endpoints
            .extend(std::iter::repeat_n(Endpoint::default(), 4));
        self.protocols.push(Protocol::Rtp);
    }

    /// What a stream carries (its m-line's protocol, from the last SDP).
    pub fn set_protocol(&mut self, stream: usize, protocol: Protocol) {
        if let Some(slot) = self.protocols.get_mut(stream) {
            *slot = protocol;
        }
    }

    /// Streams held.
    pub fn streams(&self) -> usize {
        self.endpoints.len() / 4
    }

    /// A leg's SDP named these addresses for a stream (none: declined, or
    /// on hold with `0.0.0.0`). A changed address undoes the latch.
    pub fn set_remote(
        &mut self,
        stream: usize,
        leg: Leg,
        rtp: Option<SocketAddr>,
        rtcp: Option<SocketAddr>,
    ) {
        for (kind, addr) in [(Kind::Rtp, rtp), (Kind::Rtcp, rtcp)] {
            if let Some(endpoint) = self.endpoints.get_mut(socket_index(stream, leg, kind)) {
                if endpoint.sdp != addr {
                    *endpoint = Endpoint {
                        sdp: addr,
                        sdp_ip: addr.map(|a| a.ip()).or(endpoint.sdp_ip),
                        latched: None,
                        heard_at: None,
                    };
                }
            }
        }
    }

    /// Where a socket's packets go now (the latched source, else the SDP's).
    pub fn remote(&self, index: usize) -> Option<SocketAddr> {
        self.endpoints.get(index).and_then(Endpoint::remote)
    }

    /// The call's hold state, from SDP only (SPEC R5).
    pub fn set_hold(&mut self, on_hold: bool) {
        self.on_hold = on_hold;
    }

    /// The call was answered: the media timeout is armed from now.
    pub fn answered(&mut self, now: Instant) {
        self.answered_at.get_or_insert(now);
    }

    /// One datagram arrived on socket `index` from `source`.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        index: usize,
        source: SocketAddr,
        datagram: &[u8],
    ) -> Verdict {
        let relatch_after = self.timers.relatch_after;
        let strict = self.strict_source;
        let rtp_stream = self.protocols.get(index / 4).copied() != Some(Protocol::Other);
        let Some(endpoint) = self.endpoints.get_mut(index) else {
            return Verdict::Refused;
        };
        // RTP and RTCP are version 2; nothing else may take a socket over.
        // A stream that is not RTP has nothing to check.
        let versioned = !rtp_stream || (datagram.len() >= 8 && datagram[0] >> 6 == 2);
        let latch = match endpoint.latched {
            Some(latched) if latched == source => None,
            latched => {
                let silent = endpoint
                    .heard_at
                    .is_none_or(|at| now.saturating_duration_since(at) >= relatch_after);
                if !(versioned && silent) {
                    return Verdict::Refused;
                }
                let ip = source.ip();
                if strict
                    && endpoint.sdp_ip != Some(ip)
                    && latched.is_none_or(|latched| latched.ip() != ip)
                {
                    return Verdict::ForeignSource;
                }
                Some(if latched.is_some() {
                    Latch::Relatched
                } else {
                    Latch::Latched
                })
            }
        };
        if latch.is_some() {
            endpoint.latched = Some(source);
        }
        endpoint.heard_at = Some(now);
        // RTCP on the RTP port (rtcp-mux, RFC 5761 §4): packet types
        // 192-223. On a stream that is not RTP every datagram is media.
        let muxed_rtcp = rtp_stream && datagram.len() >= 2 && (192..=223).contains(&datagram[1]);
        let rtp = index & 1 == 0 && !muxed_rtcp;
        if rtp && versioned {
            self.last_rtp = Some(now);
        }
        Verdict::Relay {
            to: self.endpoints.get(index ^ 2).and_then(Endpoint::remote),
            latch,
        }
    }

    /// When the media times out if no RTP comes (none before the answer).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let answered = self.answered_at?;
        let last = self.last_rtp.map_or(answered, |rtp| rtp.max(answered));
        let limit = if self.on_hold {
            self.timers.hold_timeout
        } else {
            self.timers.timeout
        };
        Some(last + limit)
    }

    /// Whether the media has timed out at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        self.poll_timeout().is_some_and(|at| at <= now)
    }
}

#[cfg(test)]
mod tests;
