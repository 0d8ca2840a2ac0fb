//! Voice: trunk groups and the priority failover proxy (SPEC V1–V4).
//!
//! [`routing`] is the policy, as plain state with time passed in: which trunks a
//! call tries and in what order, which answers move it to the next trunk, and
//! when a trunk is in or out of service (prober, registration, and the proxy's
//! own passive detection).

#![warn(missing_docs)]

pub mod routing;
