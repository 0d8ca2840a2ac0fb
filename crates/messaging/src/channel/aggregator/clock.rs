//! The one place the aggregator channel reads the clock.
//!
//! Monotonic time is tokio's, so a test with a paused runtime controls it too;
//! the wall clock only turns instants into timestamps for the status.

use std::time::{Duration, Instant};

/// Now, for feeding the state machines ([`super::failover`], [`super::dns`]).
#[allow(clippy::disallowed_methods)] // the aggregator driver's clock module
pub(super) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// How long until `deadline` of the `std` clock, which is what the DNS resolver
/// stamps its answers with. The state machines run on [`now`] (tokio's clock,
/// which a paused test moves on its own), so an answer's expiry is carried over
/// as a remaining duration.
#[allow(clippy::disallowed_methods)] // the aggregator driver's clock module
pub(super) fn until_std(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Milliseconds since the Unix epoch of `at`, an instant of [`now`]'s clock.
#[allow(clippy::disallowed_methods)] // the aggregator driver's clock module
pub(super) fn wall_ms(at: Instant) -> i64 {
    let wall_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let age = now().saturating_duration_since(at).as_millis() as i64;
    wall_now - age
}

/// Sleeps until `deadline`, or forever if there is none.
pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
