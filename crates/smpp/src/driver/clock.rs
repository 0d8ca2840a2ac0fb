//! The one place the SMPP driver reads the clock.
//!
//! tokio's clock, so that tests with a paused runtime control it too.

use std::time::Instant;

/// Now, for feeding the state machines.
#[allow(clippy::disallowed_methods)] // the driver's clock module: the only reader of time
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Sleeps until `deadline`, or forever if there is none.
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
