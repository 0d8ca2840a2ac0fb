//! The one place the host and the systems' drivers read the clock: tokio's
//! monotonic clock (so tests with a paused runtime control it too) for
//! feeding state machines, the wall clock for dates in the API (event times
//! are milliseconds since the Unix epoch, as every other `*_ms` field).
//! Systems' sans-IO cores never call these; their tokio drivers do.

use std::time::{Instant, SystemTime};

/// Now, for feeding a state machine.
#[allow(clippy::disallowed_methods)] // the clock module: the only reader of time
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Wall-clock time, to show monotonic instants as dates in status output.
#[allow(clippy::disallowed_methods)] // the clock module: the only reader of time
pub fn wall() -> SystemTime {
    SystemTime::now()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    wall()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A seed that differs between processes and starts: branches and tags must
/// be unique in space and time (RFC 3261 §8.1.1.7).
pub fn seed() -> u64 {
    let nanos = wall()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// Sleeps until `deadline`, or forever if there is none.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
