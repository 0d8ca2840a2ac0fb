//! Agent desktops (SPEC D1–D8).
//!
//! - [`switchover`]: the switchover machine, sans-IO. It decides which site a
//!   desktop talks to, when it logs the agent in, when it only warns and when
//!   it switches over, and gives every decision a reason (D7). Time is a plain
//!   millisecond count passed in by the driver, randomness (retry jitter) a
//!   seeded generator, so a run is exact and repeatable.
//!
//! - [`service`]: the desktop service on the host's listener: the WebSocket
//!   endpoint of `PROTOCOL.md` (`GET /v1/desktop`) and the web desktop's
//!   files (`/desktop/`), driving the site through its client.
//!
//! The same machine exists in JavaScript (`web/switchover.js`) for the web
//! desktop. Both are driven by the transcript files in `transcripts/`
//! (inputs at given times → the exact decisions expected), so they cannot
//! drift; `README.md` says how to run both suites.

#![warn(missing_docs)]

pub mod service;
pub mod switchover;

pub use switchover::{
    Input, InputError, Listener, LogoutReason, Millis, Options, OptionsError, Output, Reason,
    Switchover,
};
