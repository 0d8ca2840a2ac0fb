//! The one place the binary reads the clock (for reports and progress).

use std::time::Instant;

/// Now, on tokio's clock.
#[allow(clippy::disallowed_methods)] // the binary's clock module: the only reader of time here
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
