//! The one place the site driver reads the clock.
//!
//! tokio's clock, so that tests with a paused runtime control it too.

use std::time::{Instant, SystemTime};

/// Now, for feeding the site machine.
#[allow(clippy::disallowed_methods)] // the driver's clock module: the only reader of time
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Wall-clock time, to show monotonic instants as dates in status output.
#[allow(clippy::disallowed_methods)] // the driver's clock module: the only reader of time
pub(crate) fn wall() -> SystemTime {
    SystemTime::now()
}

/// A seed that differs between processes and starts: branches and tags must
/// be unique in space and time (RFC 3261 §8.1.1.7).
pub(crate) fn seed() -> u64 {
    let nanos = wall()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// Sleeps until `deadline`, or forever if there is none.
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
