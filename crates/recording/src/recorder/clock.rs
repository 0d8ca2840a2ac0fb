//! The one place the recorder's writer thread and the recording pipeline
//! read the clock.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Monotonic now, for the sync schedule and events.
#[allow(clippy::disallowed_methods)] // the recorder's clock module
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// Wall-clock ns since the Unix epoch (a journal's note times).
#[allow(clippy::disallowed_methods)] // the recorder's clock module
pub(crate) fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
