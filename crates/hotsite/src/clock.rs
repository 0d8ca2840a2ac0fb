//! The one place the binary reads the clock (for reports, progress and the
//! ages and rates `hotsite status` shows).

use std::time::Instant;

/// Now, on tokio's clock.
#[allow(clippy::disallowed_methods)] // the binary's clock module: the only reader of time here
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Wall-clock now in ms since the Unix epoch, the unit of the API's times.
#[allow(clippy::disallowed_methods)] // the binary's clock module: the only reader of time here
pub(crate) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}
