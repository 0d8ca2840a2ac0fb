//! The vocabulary every hotsite system shares.
//!
//! Every system in hotsite has one shape (DESIGN.md): targets are probed, their
//! [`Health`] decides which of them may carry work, a policy picks one, and every
//! decision is an [`Event`]. This crate holds that vocabulary once.
//!
//! The crate is pure: it owns no socket, no task and no clock. Time comes in as a
//! `now: Instant` parameter, randomness from a seeded [`Rng`], so every test that
//! uses it is exact.

#![warn(missing_docs)]

mod backoff;
pub mod config;
mod event;
mod health;
mod rng;
mod secret;
mod target;

pub use backoff::{Backoff, BackoffConfig, BackoffConfigError};
pub use config::ConfigIssue;
pub use event::{DesktopDecision, Event, EventKind};
pub use health::{Health, HealthConfig, HealthState, HealthTransition};
pub use rng::Rng;
pub use secret::Secret;
pub use target::{SiteName, Target};
