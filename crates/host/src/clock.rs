//! The one place the host reads the wall clock: event times in the API are
//! milliseconds since the Unix epoch, as every other `*_ms` field of the API.

#[allow(clippy::disallowed_methods)] // the host's clock module
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
