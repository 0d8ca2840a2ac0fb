//! The one place the upload driver reads the clock.
//!
//! Monotonic time is tokio's, so a test with a paused runtime controls it;
//! wall time only dates Object Lock retention.

use std::time::{Instant, SystemTime};

/// Now, for the schedule.
#[allow(clippy::disallowed_methods)] // the upload driver's clock module
pub(super) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The wall clock, to tell whether a retention date has passed.
#[allow(clippy::disallowed_methods)] // the upload driver's clock module
pub(super) fn wall_now() -> SystemTime {
    SystemTime::now()
}

/// Sleeps until `deadline`, or forever if there is none.
pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
