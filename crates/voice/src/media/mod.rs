//! Media anchoring: the RTP and RTCP of calls to trunk groups with
//! `media = "anchor"` pass through hotsite, so the edge can record them
//! (SPEC R1) and follow a cloud media server's handover.
//!
//! # Parts
//!
//! - [`sdp`]: SDP read and rewritten (pure).
//! - [`sessions`]: the anchored calls by Call-ID in the proxy core: ports,
//!   SDP both ways, hold (sans-IO; [`ports`] is its port range).
//! - [`call`]: one call's relay decisions: latching, re-latching after a
//!   handover, media timeout (sans-IO, time passed in).
//! - [`relay`]: the tokio side: binds the ports, runs one task per call
//!   that owns the call's sockets and a [`call::CallMedia`], and calls the
//!   [`MediaTap`].
//! - [`tap`]: what the recorder implements.
//!
//! # Flow
//!
//! ```text
//!  caller ──INVITE (SDP: caller's addr)──▶ proxy ──INVITE (SDP: ADDR:b-port)──▶ trunk
//!  caller ◀─18x/2xx (SDP: ADDR:a-port)─── proxy ◀──18x/2xx (SDP: trunk's addr)─ trunk
//!
//!  caller ──RTP──▶ a-port ─┐ relay task ┌─ b-port ──RTP──▶ trunk (latched address)
//!  caller ◀─RTP─── a-port ─┘  (tap sees └─ b-port ◀─RTP─── trunk
//!                             each packet)
//! ```
//!
//! Each leg of each stream has an RTP/RTCP port pair of ours; what arrives
//! on one leg's socket leaves from the other leg's socket of the same kind.
//! RTCP is relayed on its own pair too, and `a=rtcp-mux` lines pass through
//! untouched, so two far ends that agree to multiplex do so through the RTP
//! ports and two that do not use both. Payloads are never touched: G.711,
//! RFC 4733 telephone-events and every other codec pass as they came.
//!
//! # What anchoring refuses, strips and marks
//!
//! SRTP cannot be recorded: an offer with a secure profile (`RTP/SAVP`,
//! `RTP/SAVPF`, DTLS-SRTP) or `a=crypto` gets 488; an SRTP answer (which
//! cannot be refused) is relayed, counted and reported to the tap with
//! `SRTP/…` payload type names, which the merge lists as undecodable. ICE
//! lines are stripped from every anchored SDP, so both ends use our
//! address. Multipart bodies (SIP-I) get 488. Streams that are not RTP
//! (T.38 `udptl`, …) are relayed untouched, latching on any datagram.
//!
//! # What anchoring does not do (yet)
//!
//! A 2xx that comes after the call's media was released (a late 2xx from a
//! branch given up on, relayed because a proxy never swallows one) is
//! relayed unanchored; so is an SDP in a response or an ACK that cannot be
//! read (neither can be refused; both are counted as `sdp_unanchored`).
//! Late packets of a trunk tried before a failover could latch a stream
//! that has heard nothing yet from the trunk that answered (with
//! `strict_source`, only if they come from the IP the answering trunk's SDP
//! names). With `strict_source` (the default) a far end whose packets come
//! from another IP than its SDP names (a NAT) is not heard: such
//! deployments set `strict_source = false`.

pub mod call;
pub mod ports;
pub mod relay;
pub mod sdp;
pub mod sessions;
pub mod tap;

pub use call::{CallMedia, RelayTimers};
pub use ports::PortCounts;
pub use relay::{RelayCounters, RelayStats};
pub use sessions::{AnchorError, MediaOutput, MediaSessionStats, MediaSessions, MediaSetup};
pub use tap::{AnchoredCall, Leg, MediaDirection, MediaEnd, MediaTap};

/// Streams (m-lines) anchored per call at most; each holds two port pairs.
pub const MAX_STREAMS: usize = 4;
