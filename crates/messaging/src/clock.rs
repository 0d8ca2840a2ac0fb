//! The one place the messaging drivers read the wall clock (for stored timestamps).

/// Milliseconds since the Unix epoch.
#[allow(clippy::disallowed_methods)] // the messaging drivers' clock module
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The monotonic instant `after` from now (tokio's clock, as the SMPP driver's).
#[allow(clippy::disallowed_methods)] // the messaging drivers' clock module
pub(crate) fn instant_in(after: std::time::Duration) -> std::time::Instant {
    tokio::time::Instant::now().into_std() + after
}

/// The monotonic clock now (tokio's, so a paused test clock moves it).
#[allow(clippy::disallowed_methods)] // the messaging drivers' clock module
pub(crate) fn monotonic_now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
