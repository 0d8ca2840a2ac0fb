//! The queue's recent past, for `GET /v1/queue/history` and the operator
//! console's chart: a sample every [`SAMPLE_INTERVAL`] over the last
//! [`WINDOW`], so a page opened mid-incident shows how the queue got where it
//! is, without Prometheus.
//!
//! [`QueueHistory`] is a plain ring: time is passed in, nothing is read from
//! the clock or the store. [`QueueSampler`] is the thin driver around it: it
//! reads the store's depth, the gateway's counters and the clock, and its
//! task pushes a sample per interval for as long as the gateway runs.
//!
//! Throughput is derived from this process's counters (monotonic since
//! start), not from the store's per-state counts: another gateway sharing the
//! store, or rows removed from it, would make those move for reasons other
//! than this gateway's work. The depth is the store's (every gateway's queue).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::gateway::StatsReader;
use crate::metrics::Metrics;

/// How often the sampler takes a sample.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// How far back the ring reaches.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Samples kept: the window, plus one so the oldest point still has a rate.
pub const CAPACITY: usize = (WINDOW.as_secs() / SAMPLE_INTERVAL.as_secs()) as usize + 1;

/// The counters one sample reads (cumulative since the gateway started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Messages accepted through the API (`messages_accepted_total`).
    pub accepted: u64,
    /// Messages accepted by an SMSC or another channel (`messages_submitted_total`).
    pub submitted: u64,
    /// Messages failed for good (`messages_failed_total`).
    pub failed: u64,
}

impl Totals {
    /// The gateway's counters now.
    pub fn read(metrics: &Metrics) -> Totals {
        Totals {
            accepted: metrics.messages_accepted_total.load(Ordering::Relaxed),
            submitted: metrics.messages_submitted_total.load(Ordering::Relaxed),
            failed: metrics.messages_failed_total.load(Ordering::Relaxed),
        }
    }
}

/// One sample: when, the queue's depth, and the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// When it was taken, ms since the Unix epoch.
    pub at_ms: i64,
    /// Messages queued in the store; `None` when the store could not be read
    /// (a gap in the chart, not a zero).
    pub queued: Option<u64>,
    /// The counters.
    #[serde(flatten)]
    pub totals: Totals,
}

/// A sample with the rates since the one before it, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// The sample.
    #[serde(flatten)]
    pub sample: Sample,
    /// Messages accepted per second since the previous sample.
    pub accepted_per_s: Option<f64>,
    /// Messages submitted per second since the previous sample.
    pub submitted_per_s: Option<f64>,
    /// Messages failed per second since the previous sample.
    pub failed_per_s: Option<f64>,
}

/// The last [`CAPACITY`] samples, oldest first. Memory is bounded by the
/// capacity, whatever the caller pushes.
#[derive(Debug, Clone)]
pub struct QueueHistory {
    samples: VecDeque<Sample>,
    capacity: usize,
}

impl Default for QueueHistory {
    fn default() -> Self {
        QueueHistory::new(CAPACITY)
    }
}

impl QueueHistory {
    /// An empty ring of `capacity` samples (at least 1).
    pub fn new(capacity: usize) -> QueueHistory {
        let capacity = capacity.max(1);
        QueueHistory {
            samples: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Adds a sample, dropping the oldest when full. A sample not later than
    /// the newest (the wall clock stepped back) replaces samples from its
    /// time on, so times stay increasing and rates never divide by zero or
    /// by a negative span.
    pub fn push(&mut self, sample: Sample) {
        while self
            .samples
            .back()
            .is_some_and(|last| last.at_ms >= sample.at_ms)
        {
            self.samples.pop_back();
        }
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample was taken yet.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples taken after `after_ms` (all when `None`), oldest first,
    /// each with its rates since the sample before it (held or not returned).
    pub fn points(&self, after_ms: Option<i64>) -> Vec<Point> {
        let mut previous: Option<&Sample> = None;
        let mut points = Vec::new();
        for sample in &self.samples {
            if after_ms.is_none_or(|after| sample.at_ms > after) {
                points.push(point(previous, sample));
            }
            previous = Some(sample);
        }
        points
    }
}

/// `sample` with its rates since `previous`: none for the first sample, and
/// none when a counter went down (it cannot within one process; a guard, not
/// a case).
pub fn point(previous: Option<&Sample>, sample: &Sample) -> Point {
    let rate = |before: u64, now: u64| {
        let previous = previous?;
        let span_ms = sample.at_ms - previous.at_ms;
        (span_ms > 0 && now >= before).then(|| (now - before) as f64 * 1000.0 / span_ms as f64)
    };
    let before = previous.map(|p| p.totals).unwrap_or_default();
    Point {
        sample: *sample,
        accepted_per_s: rate(before.accepted, sample.totals.accepted),
        submitted_per_s: rate(before.submitted, sample.totals.submitted),
        failed_per_s: rate(before.failed, sample.totals.failed),
    }
}

/// The ring with what fills it: the store's depth, the gateway's counters
/// and a clock. Shared by the sampling task and the API.
pub struct QueueSampler {
    history: Mutex<QueueHistory>,
    stats: StatsReader,
    metrics: Arc<Metrics>,
    /// The wall clock at start, and the monotonic instant it was read at:
    /// samples are spaced by the monotonic clock (a wall clock stepped by NTP
    /// does not bend the rates) and dated from the wall clock.
    epoch_ms: i64,
    epoch: std::time::Instant,
}

impl QueueSampler {
    /// A sampler with an empty ring.
    pub(crate) fn new(stats: StatsReader, metrics: Arc<Metrics>) -> QueueSampler {
        QueueSampler {
            history: Mutex::new(QueueHistory::default()),
            stats,
            metrics,
            epoch_ms: clock::now_ms(),
            epoch: clock::monotonic_now(),
        }
    }

    /// Now, in ms since the epoch, on this sampler's clock.
    fn now_ms(&self) -> i64 {
        let elapsed = clock::monotonic_now().saturating_duration_since(self.epoch);
        self.epoch_ms + elapsed.as_millis() as i64
    }

    /// A sample taken now: the store's depth (`None` when it cannot be read
    /// within `timeout`) and the counters. Not added to the ring.
    pub async fn sample(&self, timeout: Duration) -> Sample {
        let queued = match tokio::time::timeout(timeout, (self.stats)()).await {
            Ok(Ok(stats)) => Some(stats.queued),
            Ok(Err(_)) | Err(_) => None,
        };
        Sample {
            at_ms: self.now_ms(),
            queued,
            totals: Totals::read(&self.metrics),
        }
    }

    /// The ring's samples after `after_ms`, with their rates.
    pub fn points(&self, after_ms: Option<i64>) -> Vec<Point> {
        self.history().points(after_ms)
    }

    fn history(&self) -> std::sync::MutexGuard<'_, QueueHistory> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pushes a sample every [`SAMPLE_INTERVAL`] (the first at once) until
    /// `shutdown`. A store read slower than the interval gives a gap, not a
    /// stalled sampler.
    pub(crate) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let sample = tokio::select! {
                () = shutdown.cancelled() => return,
                sample = self.sample(SAMPLE_INTERVAL) => sample,
            };
            self.history().push(sample);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: i64, queued: u64, submitted: u64) -> Sample {
        Sample {
            at_ms,
            queued: Some(queued),
            totals: Totals {
                accepted: submitted * 2,
                submitted,
                failed: 0,
            },
        }
    }

    /// Bounded memory: fifteen minutes of 5 s samples and one more; a
    /// day of pushes keeps exactly that, the newest.
    #[test]
    fn keeps_the_last_fifteen_minutes_and_no_more() {
        assert_eq!(CAPACITY, 181);
        let mut history = QueueHistory::default();
        let step = SAMPLE_INTERVAL.as_millis() as i64;
        let day = 24 * 60 * 60 * 1000 / step;
        for i in 0..day {
            history.push(sample(i * step, i as u64, i as u64));
        }
        assert_eq!(history.len(), CAPACITY);
        let points = history.points(None);
        assert_eq!(points.len(), CAPACITY);
        assert_eq!(points.last().unwrap().sample.at_ms, (day - 1) * step);
        let span = points.last().unwrap().sample.at_ms - points[0].sample.at_ms;
        assert_eq!(span, WINDOW.as_millis() as i64);
    }

    /// Rates are per second over the real span between samples, whatever
    /// the spacing (a late tick); the first sample has none.
    #[test]
    fn rates_are_per_second_between_samples() {
        let mut history = QueueHistory::new(10);
        history.push(sample(1_000, 5, 100));
        history.push(sample(6_000, 3, 150)); // 50 in 5 s
        history.push(sample(16_000, 0, 150)); // none in 10 s
        let points = history.points(None);
        assert_eq!(points[0].submitted_per_s, None);
        assert_eq!(points[0].accepted_per_s, None);
        assert_eq!(points[1].submitted_per_s, Some(10.0));
        assert_eq!(points[1].accepted_per_s, Some(20.0));
        assert_eq!(points[1].failed_per_s, Some(0.0));
        assert_eq!(points[2].submitted_per_s, Some(0.0));
        assert_eq!(points[2].sample.queued, Some(0));
    }

    /// `after_ms` returns only newer samples, the first of them still with
    /// its rate (from the sample before, which is not returned).
    #[test]
    fn after_returns_newer_samples_with_their_rates() {
        let mut history = QueueHistory::new(10);
        for (i, at) in [1_000, 6_000, 11_000].into_iter().enumerate() {
            history.push(sample(at, 0, 10 * i as u64));
        }
        let points = history.points(Some(6_000));
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].sample.at_ms, 11_000);
        assert_eq!(points[0].submitted_per_s, Some(2.0));
        assert!(history.points(Some(11_000)).is_empty());
    }

    /// A wall clock stepped back: the samples from the new time on are
    /// replaced, so times keep increasing and no rate is negative.
    #[test]
    fn a_clock_stepped_back_replaces_later_samples() {
        let mut history = QueueHistory::new(10);
        history.push(sample(1_000, 0, 0));
        history.push(sample(6_000, 0, 10));
        history.push(sample(11_000, 0, 20));
        history.push(sample(6_000, 0, 30));
        let at: Vec<i64> = history
            .points(None)
            .iter()
            .map(|p| p.sample.at_ms)
            .collect();
        assert_eq!(at, [1_000, 6_000]);
        assert_eq!(history.points(None)[1].submitted_per_s, Some(6.0));
    }

    /// An unreadable store is a gap (null), and counters that went down give
    /// no rate rather than a huge or negative one.
    #[test]
    fn gaps_and_counters_going_down_give_no_value() {
        let mut history = QueueHistory::new(10);
        history.push(sample(1_000, 4, 10));
        history.push(Sample {
            queued: None,
            ..sample(2_000, 0, 5)
        });
        let points = history.points(None);
        assert_eq!(points[1].sample.queued, None);
        assert_eq!(points[1].submitted_per_s, None);
        let json = serde_json::to_value(points[1]).unwrap();
        assert_eq!(json["queued"], serde_json::Value::Null);
        assert_eq!(json["submitted"], 5);
        assert_eq!(json["at_ms"], 2_000);
    }

    /// The task: a sample at once, then one per interval (tokio's paused
    /// clock, which also spaces the samples' times), and it stops with the
    /// gateway.
    #[tokio::test(start_paused = true)]
    async fn the_sampler_samples_every_interval_until_shutdown() {
        let metrics = Arc::new(Metrics::default());
        let stats: StatsReader = Arc::new(|| {
            Box::pin(async {
                Ok(hotsite_store::StoreStats {
                    queued: 7,
                    ..Default::default()
                })
            })
        });
        let sampler = Arc::new(QueueSampler::new(stats, metrics.clone()));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(sampler.clone().run(shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(sampler.points(None).len(), 1);
        Metrics::add(&metrics.messages_submitted_total, 10);
        tokio::time::sleep(SAMPLE_INTERVAL * 2).await;
        let points = sampler.points(None);
        assert_eq!(points.len(), 3);
        assert_eq!(points[2].sample.queued, Some(7));
        assert_eq!(points[2].sample.totals.submitted, 10);
        assert_eq!(points[1].sample.at_ms - points[0].sample.at_ms, 5_000);
        assert_eq!(points[1].submitted_per_s, Some(2.0));
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the sampler stops with the gateway")
            .unwrap();
    }
}
