//! Voice: trunk groups and the priority failover proxy (SPEC V1–V4).
//!
//! - [`routing`] is the policy, as plain state with time passed in: which
//!   trunks a call tries and in what order, which answers move it to the next
//!   trunk, and when a trunk is in or out of service (prober, registration,
//!   and the proxy's own passive detection).
//! - [`proxy`] is the transaction-stateful SIP proxy core, sans-IO: the
//!   caller's INVITE is forwarded to the trunks of its group one after the
//!   other within the same call attempt (SPEC V1), trunks are probed and
//!   registered through the same socket (SPEC V2), and every decision is an
//!   event.
//! - [`config`] is the `[voice]` section of `hotsite.toml`, validated with
//!   errors that name their key, and turned into a [`proxy::ProxyConfig`].
//! - [`media`] anchors the media of groups with `media = "anchor"`: SDP
//!   rewritten both ways, RTP and RTCP relayed with symmetric latching that
//!   follows a media server's handover, every packet handed to a
//!   [`MediaTap`] (the edge recorder, SPEC R1).
//! - [`driver`] binds the UDP socket and the TCP listener (one port) and runs
//!   the proxy on tokio; it and the media relay (`media::relay`) are the only
//!   parts that do I/O or read the clock (through `hotsite_host::clock`).

#![warn(missing_docs)]

pub mod config;
pub mod driver;
pub mod media;
pub mod proxy;
pub mod routing;
mod system;

pub use config::{VoiceConfig, VoiceConfigError};
pub use driver::{
    start, GroupTrunks, MediaMetrics, TrunkStatusView, VoiceError, VoiceHandle, VoiceMetrics,
};
pub use media::{AnchoredCall, Leg, MediaDirection, MediaEnd, MediaTap};
pub use proxy::{Proxy, ProxyConfig, ProxyEvent};
pub use system::SYSTEM;
