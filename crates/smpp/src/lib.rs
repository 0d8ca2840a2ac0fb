//! SMPP 3.4 for hotsite: the codec, one bind's session state machine, the
//! bind-to-all pool policy, and (feature `driver`) a thin tokio driver.
//!
//! Everything but [`driver`] is sans-IO (DESIGN.md): it owns no socket, task or
//! clock. Time comes in as `now: Instant`; bytes go in through `handle_input` and
//! come out through `poll_transmit`.

#![warn(missing_docs)]

pub mod client_policy;
#[cfg(feature = "driver")]
pub mod driver;
pub mod pdu;
pub mod pool;
pub mod session;
