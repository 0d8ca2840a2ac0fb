//! Counting at the lab: waiting for arrivals, matching them to messages,
//! percentiles, and the progress line on stderr.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotsite_lab::LabHandle;

use super::clock;
use super::driver::{index_of, Driven};

/// How long to keep watching after everything arrived, for late duplicates.
const GRACE: Duration = Duration::from_secs(1);
/// Give up when the lab's counters have not moved for this long.
const IDLE: Duration = Duration::from_secs(15);

/// Waits until `expected` distinct messages reached the lab (then `GRACE`
/// more), the counters stop moving for `IDLE`, or `limit` passes.
/// Returns whether all arrived.
pub(crate) async fn settle(lab: &LabHandle, expected: u64, limit: Duration) -> bool {
    let start = clock();
    let deadline = start + limit;
    let mut done_at: Option<Instant> = None;
    let mut last_seen = u64::MAX;
    let mut last_change = start;
    loop {
        let totals = lab.stats().totals;
        let now = clock();
        if totals.unique >= expected {
            let done = *done_at.get_or_insert(now);
            if now.duration_since(done) >= GRACE {
                return true;
            }
        }
        if totals.submits != last_seen {
            last_seen = totals.submits;
            last_change = now;
        } else if now.duration_since(last_change) >= IDLE {
            return done_at.is_some();
        }
        if now >= deadline {
            return done_at.is_some();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What reached the lab, matched to the driver's messages `0..total`.
pub(crate) struct Arrivals {
    /// Distinct messages of this run at the lab.
    pub(crate) unique: u64,
    /// Submits of an already-arrived message: repeats in the handset log (no
    /// dedupe key, e.g. Kannel) plus those the lab dropped by reference.
    pub(crate) duplicates: u64,
    /// Handset messages that are not this run's.
    pub(crate) foreign: u64,
    pub(crate) first: Option<Instant>,
    pub(crate) last: Option<Instant>,
    /// First arrival of each message, by number.
    pub(crate) at: Vec<Option<Instant>>,
}

pub(crate) fn arrivals(lab: &LabHandle, total: u64) -> Arrivals {
    let epoch = lab.epoch();
    let dropped = lab.stats().totals.duplicates_dropped;
    let log = lab.handset_log();
    let mut arrivals = Arrivals {
        unique: 0,
        duplicates: dropped,
        foreign: 0,
        first: None,
        last: None,
        at: vec![None; usize::try_from(total).unwrap_or(usize::MAX)],
    };
    for message in &log {
        let slot = index_of(&message.destination)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| arrivals.at.get_mut(i));
        let Some(slot) = slot else {
            arrivals.foreign += 1;
            continue;
        };
        if slot.is_some() {
            arrivals.duplicates += 1;
            continue;
        }
        let at = epoch + Duration::from_micros(message.received_us);
        *slot = Some(at);
        arrivals.unique += 1;
        arrivals.first = Some(arrivals.first.map_or(at, |first| first.min(at)));
        arrivals.last = Some(arrivals.last.map_or(at, |last| last.max(at)));
    }
    arrivals
}

/// Latencies in microseconds (signed: a submit may reach the lab before the
/// driver has read the 202 of its request).
pub(crate) struct Latencies {
    /// 202 arrival at the driver → submit_sm at the lab.
    pub(crate) from_accept: Vec<i64>,
    /// Request written by the driver → submit_sm at the lab.
    pub(crate) from_request: Vec<i64>,
}

fn signed_us(from: Instant, to: Instant) -> i64 {
    match to.checked_duration_since(from) {
        Some(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        None => -i64::try_from(from.duration_since(to).as_micros()).unwrap_or(i64::MAX),
    }
}

pub(crate) fn latencies(driven: &Driven, arrivals: &Arrivals) -> Latencies {
    let mut out = Latencies {
        from_accept: Vec::new(),
        from_request: Vec::new(),
    };
    for accept in &driven.accepts {
        for i in accept.first..accept.first + accept.count {
            let at = usize::try_from(i)
                .ok()
                .and_then(|i| arrivals.at.get(i).copied().flatten());
            if let Some(at) = at {
                out.from_accept.push(signed_us(accept.at, at));
                out.from_request.push(signed_us(accept.sent, at));
            }
        }
    }
    out.from_accept.sort_unstable();
    out.from_request.sort_unstable();
    out
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
pub(crate) fn quantile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A progress line on stderr, refreshed every second (every 5 s as plain
/// lines when stderr is not a terminal), until stopped.
pub(crate) struct Progress {
    task: tokio::task::JoinHandle<()>,
    tty: bool,
}

impl Progress {
    pub(crate) fn start(
        label: String,
        total: u64,
        accepted: Arc<AtomicU64>,
        lab: Arc<LabHandle>,
    ) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let start = clock();
        let task = tokio::spawn(async move {
            let period = if tty { 1 } else { 5 };
            // Bounded by the caller's `stop` (abort); at most one line per period.
            loop {
                tokio::time::sleep(Duration::from_secs(period)).await;
                let totals = lab.stats().totals;
                let line = format!(
                    "{label}: {}/{total} accepted, {} at the lab, {:.0} s",
                    accepted.load(Ordering::Relaxed),
                    totals.unique,
                    clock().duration_since(start).as_secs_f64()
                );
                if tty {
                    eprint!("\r{line}   ");
                } else {
                    eprintln!("{line}");
                }
            }
        });
        Progress { task, tty }
    }

    pub(crate) fn stop(self) {
        self.task.abort();
        if self.tty {
            eprint!("\r{:100}\r", "");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let values: Vec<i64> = (1..=100).collect();
        assert_eq!(quantile(&values, 0.5), Some(50));
        assert_eq!(quantile(&values, 0.99), Some(99));
        assert_eq!(quantile(&values, 1.0), Some(100));
        assert_eq!(quantile(&values, 0.0), Some(1));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn signed_latency() {
        let a = clock();
        let b = a + Duration::from_micros(1500);
        assert_eq!(signed_us(a, b), 1500);
        assert_eq!(signed_us(b, a), -1500);
    }
}
