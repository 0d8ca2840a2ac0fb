//! When `hotsite status --follow` asks again: status refreshes (on events,
//! debounced, and periodically), reconnects (bounded backoff) and the
//! queue's throughput between samples. Pure: `now` is always an argument.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Events come in bursts (a site failing takes its binds down one after
/// the other): the status is read again at most this often.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(250);
/// The status is read at least this often, events or not (queue depth and
/// ages move without events).
pub(crate) const PERIOD: Duration = Duration::from_secs(2);
/// The first reconnect waits this long, each next one twice as long…
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// …up to this.
const MAX_RETRY: Duration = Duration::from_secs(5);
/// Queue samples older than this do not count for the rate.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// A rate needs samples at least this far apart, or it is noise.
const RATE_MIN_SPAN: Duration = Duration::from_secs(1);

/// When the status is due again.
#[derive(Debug, Clone)]
pub(crate) struct Refresh {
    last: Instant,
    /// An event arrived since the last read.
    wanted: bool,
}

impl Refresh {
    /// After a read at `now`.
    pub(crate) fn new(now: Instant) -> Refresh {
        Refresh {
            last: now,
            wanted: false,
        }
    }

    /// An event arrived: read soon.
    pub(crate) fn event(&mut self) {
        self.wanted = true;
    }

    /// The status was read at `now`.
    pub(crate) fn read(&mut self, now: Instant) {
        self.last = now;
        self.wanted = false;
    }

    /// When to read next (maybe already past).
    pub(crate) fn deadline(&self) -> Instant {
        self.last + if self.wanted { DEBOUNCE } else { PERIOD }
    }
}

/// Waits between reconnects: doubling, bounded, reset by a good connect.
#[derive(Debug, Clone, Default)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// How long to wait before the next attempt; counts a failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = FIRST_RETRY
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX_RETRY);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// Failed attempts in a row so far.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Connected: the next failure starts from the first delay again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Messages leaving the queue per second, from the status's counters.
#[derive(Debug, Clone, Default)]
pub(crate) struct Throughput {
    /// (when, messages that left the queue so far), oldest first.
    samples: VecDeque<(Instant, u64)>,
}

impl Throughput {
    /// Records a sample of `/v1/status`'s queue, read at `now`.
    pub(crate) fn record(&mut self, now: Instant, queue: &serde_json::Value) {
        // Submitted and final together only grow: every message that left
        // the queue is in one of them.
        let (Some(submitted), Some(done)) = (queue["submitted"].as_u64(), queue["final"].as_u64())
        else {
            return;
        };
        let left = submitted + done;
        if self.samples.back().is_some_and(|&(_, last)| left < last) {
            // Fewer than before: another store; start over.
            self.samples.clear();
        }
        self.samples.push_back((now, left));
        while self
            .samples
            .front()
            .is_some_and(|&(at, _)| now.saturating_duration_since(at) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Messages per second over the kept samples, once they span a second.
    pub(crate) fn per_second(&self) -> Option<f64> {
        let (&(first_at, first), &(last_at, last)) = (self.samples.front()?, self.samples.back()?);
        let span = last_at.saturating_duration_since(first_at);
        (span >= RATE_MIN_SPAN).then(|| (last - first) as f64 / span.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[allow(clippy::disallowed_methods)] // a fixed origin; only offsets from it are compared
    fn origin() -> Instant {
        Instant::now()
    }

    /// A burst of events gives one read per 250 ms, not one per event; no
    /// events still give one read per 2 s.
    #[test]
    fn events_pull_the_next_read_forward_to_the_debounce() {
        let t0 = origin();
        let mut refresh = Refresh::new(t0);
        assert_eq!(refresh.deadline(), t0 + PERIOD);
        refresh.event();
        refresh.event();
        assert_eq!(refresh.deadline(), t0 + DEBOUNCE);
        refresh.read(t0 + ms(260));
        assert_eq!(refresh.deadline(), t0 + ms(260) + PERIOD);
        // Long after the last read, an event is due at once.
        refresh.read(t0 + ms(300));
        refresh.event();
        assert!(refresh.deadline() <= t0 + ms(3000));
    }

    #[test]
    fn reconnects_back_off_to_a_bound_and_start_over_after_a_connect() {
        let mut backoff = Backoff::default();
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        assert_eq!(
            delays,
            [
                ms(250),
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(5000),
                ms(5000),
                ms(5000)
            ]
        );
        assert_eq!(backoff.failures(), 8);
        for _ in 0..100 {
            assert!(backoff.next_delay() <= MAX_RETRY);
        }
        backoff.reset();
        assert_eq!(backoff.next_delay(), ms(250));
    }

    #[test]
    fn throughput_is_messages_leaving_the_queue_per_second() {
        let t0 = origin();
        let mut throughput = Throughput::default();
        throughput.record(t0, &json!({"queued": 50, "submitted": 10, "final": 90}));
        assert_eq!(throughput.per_second(), None, "one sample is no rate");
        throughput.record(
            t0 + ms(500),
            &json!({"queued": 40, "submitted": 15, "final": 95}),
        );
        assert_eq!(throughput.per_second(), None, "half a second is noise");
        throughput.record(
            t0 + ms(2000),
            &json!({"queued": 0, "submitted": 20, "final": 130}),
        );
        assert_eq!(throughput.per_second(), Some(25.0));
        // Old samples leave the window.
        throughput.record(
            t0 + ms(11_000),
            &json!({"queued": 0, "submitted": 0, "final": 150}),
        );
        assert_eq!(throughput.per_second(), Some(0.0));
        // A smaller total is another store: no negative rate.
        throughput.record(t0 + ms(13_000), &json!({"submitted": 0, "final": 3}));
        assert_eq!(throughput.per_second(), None);
        // A status without a queue (no messaging) is no sample.
        throughput.record(t0 + ms(14_000), &serde_json::Value::Null);
        assert_eq!(throughput.per_second(), None);
    }
}
