//! The messaging gateway of one site: the MT pipeline from the HTTP API through
//! the durable store to SMPP binds on every SMSC of every site, and MO/DR back
//! to the customer's application (SPEC M1, M4–M9, M12–M15).
//!
//! ```text
//!  POST /v1/messages ─▶ store (durable, batched commit) ─▶ 202
//!                            │ queued_after(cursor)
//!                            ▼
//!                       dispatcher ─▶ SmppClient ─▶ bound SMSCs (all sites)
//!                            ▲ outcome → policy → store update
//!  SMSCs ─deliver_sm─▶ inbox (dedupe, durable) ─▶ ack ─▶ webhooks (signed, retried)
//! ```
//!
//! Decisions are pure ([`policy`], [`request`], [`signing`]); the drivers
//! ([`dispatcher`], [`inbox`], [`webhook`], [`api`]) move data and time. The
//! gateway is one of the host's systems: [`start`] returns its handle and
//! routes (`hotsite_host::System`, `hotsite_host::Routes`).

#![warn(missing_docs)]

pub mod api;
pub mod callback;
pub mod channel;
mod clock;
pub mod dispatcher;
pub mod gateway;
pub mod history;
pub mod inbox;
mod lease;
pub mod metrics;
pub mod policy;
pub mod request;
pub mod route;
pub mod signing;
mod system;
pub mod webhook;

pub use gateway::{start, GatewayConfig, GatewayError, GatewayHandle, GatewayView, SYSTEM};
