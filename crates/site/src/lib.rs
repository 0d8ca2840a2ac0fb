//! Site business continuity (SPEC S1–S8): one site of a peer pair. Agent
//! phones register here, agents log in here, and calls for their DNs reach
//! them here, or go over the inter-site trunk to the peer.
//!
//! - [`registrar`]: REGISTER with digest auth per DN, bindings and expiry;
//!   DNs in and out of service (S8).
//! - [`agents`]: login, Ready/NotReady, busy, after-call work, logout
//!   reasons (S1, S3, S7).
//! - [`peer`]: the peer link's health by OPTIONS, `oos_check` / `oos_force`
//!   (S3, S4).
//! - [`claims`]: one site at a time per agent across the pair: logins
//!   claimed at the peer, resync when peering resumes (S1, S4).
//! - [`decide`]: where a new call goes, one pure function over the facts
//!   (S1, S6, S7).
//! - `calls.rs`: the transaction-stateful proxy to phones and to the peer.
//! - [`machine`]: [`Site`], all of the above as one sans-IO state machine,
//!   with the rules that join them (mode, forced logout, drain).
//! - [`config`]: the `[site]` section, validated with errors naming keys.
//! - [`driver`]: the UDP socket and the tokio task; `system.rs` the site as
//!   a host system (`/v1/agents`, `/v1/site`, status, metrics, events).

#![warn(missing_docs)]

pub mod agents;
mod calls;
pub mod claims;
pub mod config;
pub mod decide;
pub mod driver;
pub mod machine;
pub mod peer;
pub mod registrar;
mod system;

pub use calls::{CallStats, MAX_CALL_DURATION};
pub use config::{DrForward, SiteConfig, SiteConfigError};
pub use driver::{start, DrainWatch, SiteClient, SiteError, SiteHandle, SiteRequestError};
pub use machine::{Mode, Site, SiteStats, SiteStatus, FORWARDED_HEADER};
pub use system::SYSTEM;
