//! RFC 3261 proxy building blocks shared by the proxies built on this crate:
//! the trunk proxy in `hotsite-voice` (SPEC V1–V4) and the site proxy that
//! rings agents' phones (SPEC S1–S8).
//!
//! - [`Transport`], [`Peer`] and [`Transmit`]: where a message comes from or
//!   goes; the core names the transport, the driver owns the sockets.
//! - Transaction and routing helpers on a message: [`ServerKey`] (the key of a
//!   caller's INVITE server transaction, §17.2.3), [`stamp_via`] and
//!   [`reply_addr`] (`received`/`rport`, §18.2.1, RFC 3581), [`response_addr`]
//!   (where a response goes after our Via is popped, §18.2.2), [`uri_addr`]
//!   (the next hop of a Route entry or Request-URI), [`parse_ip`], branches
//!   ([`stateful_branch`], [`is_stateful_branch`], [`stateless_branch`]),
//!   [`warning`], and [`Us`], the proxy's own addresses (which Route entries
//!   and Via hops are ours).
//!
//! Pure functions and plain values: no state is kept here, that is each
//! proxy's own.

mod transport;
mod wire;

pub use transport::{Peer, Transmit, Transport};
pub use wire::{
    is_stateful_branch, parse_ip, reply_addr, response_addr, stamp_via, stateful_branch,
    stateless_branch, uri_addr, warning, ServerKey, Us,
};

#[cfg(test)]
mod tests;
