//! The lab's only reads of the clock.
//!
//! `clippy.toml` bans `Instant::now` and `SystemTime::now` everywhere (time is an
//! input, DESIGN.md); a driver reads the clock in exactly one module, and this is
//! the lab's. The monotonic clock is tokio's, so tests that pause tokio time
//! drive the lab too.

use std::time::{Duration, UNIX_EPOCH};

use tokio::time::Instant;

/// Monotonic time since the lab started, and wall-clock time for receipt texts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock whose epoch is now.
    pub(crate) fn start() -> Clock {
        Clock { start: now() }
    }

    /// The instant the lab started: the epoch of [`Clock::elapsed_ms`] and
    /// [`Clock::elapsed_us`].
    pub(crate) fn epoch(&self) -> Instant {
        self.start
    }

    /// Microseconds since the lab started.
    pub(crate) fn elapsed_us(&self) -> u64 {
        u64::try_from(now().duration_since(self.start).as_micros()).unwrap_or(u64::MAX)
    }

    /// The current instant.
    pub(crate) fn now(&self) -> Instant {
        now()
    }

    /// Milliseconds since the lab started: the time base of the stats, so tests
    /// can check rebind pacing (SPEC M5) without sharing an `Instant`.
    pub(crate) fn elapsed_ms(&self) -> u64 {
        u64::try_from(now().duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    /// Milliseconds since the Unix epoch: `done_at` of HTTP receipts, arrival
    /// times of webhook messages and mails. A clock set before 1970 reads as
    /// the epoch.
    pub(crate) fn unix_ms(&self) -> u64 {
        let since_epoch = wall_clock()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
    }

    /// Seconds since the Unix epoch, for the dates in receipt texts. A clock set
    /// before 1970 reads as the epoch: the dates are decoration, never parsed.
    pub(crate) fn unix_seconds(&self) -> u64 {
        wall_clock()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs()
    }
}

// The lab is a driver: this module is its one permitted clock read (clippy.toml).
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

// Receipt texts and callbacks carry wall-clock dates like a real provider's;
// only this reads them.
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> std::time::SystemTime {
    std::time::SystemTime::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn elapsed_us_counts_from_the_epoch() {
        let clock = Clock::start();
        assert_eq!(clock.epoch(), clock.now());
        tokio::time::advance(Duration::from_micros(1_500)).await;
        assert_eq!(clock.elapsed_us(), 1_500);
        assert_eq!(clock.elapsed_ms(), 1);
        assert_eq!(clock.now().duration_since(clock.epoch()).as_micros(), 1_500);
    }
}
