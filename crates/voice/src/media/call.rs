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
//! where packets arrive: the first RTP or RTCP packet (version 2) latches it,
//! whatever its source (NAT rewrites addresses SDP cannot know of).
//!
//! Once latched, a packet from another source is refused (not relayed, not
//! recorded) while the latched source is alive: nobody can hijack a call's
//! media by sending to its port. When the latched source has been silent for
//! `relatch_after` (500 ms by default), the next RTP/RTCP packet from a new
//! source re-latches the socket to it. This is how a cloud media server's
//! handover is followed without a re-INVITE: its stream stops, then resumes
//! from another port with a new SSRC and jumped sequence and timestamp, and
//! both directions keep flowing (SPEC R1: the edge keeps recording). The
//! packets' contents are never looked at beyond the first two bytes.
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

use std::net::SocketAddr;
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
    endpoints: Vec<Endpoint>,
    answered_at: Option<Instant>,
    last_rtp: Option<Instant>,
    on_hold: bool,
}

impl CallMedia {
    /// A call with `streams` streams, nothing known of its far ends.
    pub fn new(timers: RelayTimers, streams: usize) -> CallMedia {
        CallMedia {
            timers,
            endpoints: vec![Endpoint::default(); streams * 4],
            answered_at: None,
            last_rtp: None,
            on_hold: false,
        }
    }

    /// One more stream (a re-offer added an m-line); its index is the
    /// number of streams before.
    pub fn add_stream(&mut self) {
        self.endpoints
            .extend(std::iter::repeat_n(Endpoint::default(), 4));
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
        let Some(endpoint) = self.endpoints.get_mut(index) else {
            return Verdict::Refused;
        };
        // RTP and RTCP are version 2; nothing else may take a socket over.
        let versioned = datagram.len() >= 8 && datagram[0] >> 6 == 2;
        let latch = match endpoint.latched {
            Some(latched) if latched == source => None,
            Some(_) => {
                let silent = endpoint
                    .heard_at
                    .is_none_or(|at| now.saturating_duration_since(at) >= relatch_after);
                if !(versioned && silent) {
                    return Verdict::Refused;
                }
                Some(Latch::Relatched)
            }
            None if versioned => Some(Latch::Latched),
            None => return Verdict::Refused,
        };
        if latch.is_some() {
            endpoint.latched = Some(source);
        }
        endpoint.heard_at = Some(now);
        // RTCP on the RTP port (rtcp-mux, RFC 5761 §4): packet types 192-223.
        let rtp = index & 1 == 0 && !(datagram.len() >= 2 && (192..=223).contains(&datagram[1]));
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
