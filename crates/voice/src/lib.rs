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
//! - [`driver`] binds the UDP socket and the TCP listener (one port) and runs
//!   the proxy on tokio; it is the only part that does I/O or reads the clock
//!   (through `hotsite_host::clock`).

#![warn(missing_docs)]

pub mod config;
pub mod driver;
pub mod proxy;
pub mod routing;
mod system;

pub use config::{VoiceConfig, VoiceConfigError};
pub use driver::{start, TrunkStatusView, VoiceError, VoiceHandle, VoiceMetrics};
pub use proxy::{Proxy, ProxyConfig, ProxyEvent};
pub use system::SYSTEM;
