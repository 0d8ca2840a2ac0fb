//! The media tap: how the recorder (SPEC R1) sees an anchored call.
//!
//! The voice system calls a [`MediaTap`] for every anchored call, in this
//! order and from one task per call, so a tap sees one call's calls in
//! order and never concurrently: [`MediaTap::call_anchored`] once, then
//! [`MediaTap::sdp`], [`MediaTap::packet`] and [`MediaTap::call_moved`] as
//! they come, then [`MediaTap::call_ended`] once. Different calls are
//! tapped from different tasks at the same time. Times are wall-clock
//! nanoseconds (milliseconds for the start) since the Unix epoch, read by
//! the driver.
//!
//! The tap keys calls by Call-ID, and one Call-ID can be anchored twice in
//! a row: an INVITE refused with 401/407 ends its media, and the caller's
//! new INVITE with credentials (the same Call-ID) anchors it again. The
//! second's `call_anchored` is then made only after the first's
//! `call_ended`, so a tap never has two calls open under one Call-ID.

use std::sync::Arc;

/// Which side of the anchored call: a = the caller (PBX/SBC) side, b = the trunk side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// The caller's side (the PBX or SBC that sent the INVITE).
    A,
    /// The trunk's side (the carrier, or the cloud media server behind it).
    B,
}

/// The direction an SDP asks for (RFC 3264 §5.1, §8.4): `SendOnly` and
/// `Inactive` are how a party puts the call on hold (SPEC R5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaDirection {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

/// An anchored call as the recorder files it (SPEC V3: the trunk's regions).
#[derive(Debug, Clone)]
pub struct AnchoredCall {
    /// The SIP Call-ID.
    pub call_id: Arc<str>,
    /// The trunk its INVITE went to (for `call_anchored`, the first one;
    /// for `call_moved`, the one it moved to: SPEC V3).
    pub trunk: String,
    /// The trunk group.
    pub group: String,
    /// The trunk's media region (SPEC V3).
    pub media_region: String,
    /// The trunk's failover region (SPEC V3).
    pub failover_region: String,
    /// When the call was anchored, ms since the Unix epoch (the same in
    /// `call_moved`).
    pub started_unix_ms: u64,
}

/// How an anchored call's media ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEnd {
    /// A BYE from either side.
    Bye,
    /// No RTP from either leg for `voice.media.timeout` (or `hold_timeout`
    /// on hold); the signalling is left alone.
    Timeout,
    /// The caller cancelled before an answer.
    Cancelled,
    /// The call never got a 2xx (refused, failed on every trunk), or the
    /// voice system stopped.
    Failed,
}

/// What the recorder implements to see anchored calls. See the module docs
/// for the order of calls.
pub trait MediaTap: Send + Sync + 'static {
    /// The call's first SDP was anchored (its INVITE forwarded to a trunk with our SDP). Called once per call.
    fn call_anchored(&self, call: &AnchoredCall);
    /// The call moved to another trunk: a failover within the attempt, or
    /// a 2xx from another trunk than the last one tried. `call` names the
    /// trunk now, its group and regions (SPEC V3: the recording must name
    /// the trunk that carried the call, not the first one tried). Called
    /// after `call_anchored`, any number of times; `at_unix_ns` is when.
    fn call_moved(&self, call: &AnchoredCall, at_unix_ns: u64);
    /// An SDP from `from` was anchored (offer or answer, initial or re-INVITE): its payload types (pt, "PCMU/8000") and direction (SPEC R5: hold comes only from here).
    fn sdp(
        &self,
        call_id: &Arc<str>,
        from: Leg,
        at_unix_ns: u64,
        payload_types: &[(u8, String)],
        direction: MediaDirection,
    );
    /// One datagram received on the call's ports from leg `from` (RTP or RTCP), before it is forwarded. Must not block.
    fn packet(&self, call_id: &Arc<str>, from: Leg, arrival_unix_ns: u64, datagram: &[u8]);
    /// The call's media was released (BYE, media timeout, the call never answered, …). Called once per anchored call.
    fn call_ended(&self, call_id: &Arc<str>, at_unix_ns: u64, end: MediaEnd);
}

impl Leg {
    /// The other side.
    pub fn other(self) -> Leg {
        match self {
            Leg::A => Leg::B,
            Leg::B => Leg::A,
        }
    }

    /// 0 for a, 1 for b: an index into per-leg arrays.
    pub fn index(self) -> usize {
        match self {
            Leg::A => 0,
            Leg::B => 1,
        }
    }
}
