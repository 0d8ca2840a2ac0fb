//! What `hotsite desktops` measures, as pure functions over numbers it has
//! read: memory and CPU of a site process (from `/proc/PID/status` and
//! `/proc/PID/stat`), connection attempts per second (peak over any 1 s
//! window of 100 ms buckets) against the cap the jitter implies, and
//! summaries of times.

use serde::Serialize;

/// Clock ticks per second of `utime`/`stime` in `/proc/PID/stat`: Linux's
/// `USER_HZ`, which the kernel's user ABI fixes at 100 whatever its own HZ.
pub(crate) const USER_HZ: f64 = 100.0;

/// Width of a connection-attempt bucket, in milliseconds.
pub(crate) const BUCKET_MS: u64 = 100;
/// Buckets in the window the peak rate is taken over (1 s).
const WINDOW_BUCKETS: usize = 10;

/// Resident memory of process `pid` in KiB (`VmRSS`), if it is alive.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// CPU time (user + system) used so far by process `pid`, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat)
}

/// `VmRSS:   12345 kB` out of `/proc/PID/status`, in KiB.
pub(crate) fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value),
        Some(_) => None,
    }
}

/// `utime + stime` (fields 14 and 15) out of `/proc/PID/stat`. The command
/// name (field 2) is in parentheses and may hold spaces or parentheses, so
/// the fields are counted from the last `)`.
pub(crate) fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field N is rest[N - 3].
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// Connection attempts counted in [`BUCKET_MS`] buckets from an origin.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Attempts {
    buckets: Vec<u64>,
}

impl Attempts {
    /// One attempt `at_ms` after the origin.
    pub(crate) fn add(&mut self, at_ms: u64) {
        let bucket = (at_ms / BUCKET_MS) as usize;
        if self.buckets.len() <= bucket {
            self.buckets.resize(bucket + 1, 0);
        }
        self.buckets[bucket] += 1;
    }

    /// All attempts.
    pub(crate) fn total(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The most attempts in any 1 s window made of whole buckets (a sliding
    /// window, moved one bucket at a time): attempts per second at the peak.
    pub(crate) fn peak_per_s(&self) -> u64 {
        if self.buckets.len() <= WINDOW_BUCKETS {
            return self.total();
        }
        self.buckets
            .windows(WINDOW_BUCKETS)
            .map(|window| window.iter().sum())
            .max()
            .unwrap_or(0)
    }

    /// The buckets, from the origin.
    pub(crate) fn buckets(&self) -> &[u64] {
        &self.buckets
    }
}

/// The cap on connection attempts per second at the surviving site that
/// the jitter implies: `switching` desktops spread their connects
/// uniformly over `retry_jitter`, so on average `switching / jitter` per
/// second arrive; twice that leaves room for chance and for retries. None
/// without jitter (nothing spreads the attempts: no cap can be promised).
pub(crate) fn attempt_cap_per_s(switching: u64, retry_jitter_ms: u64) -> Option<f64> {
    (retry_jitter_ms > 0).then(|| 2.0 * switching as f64 / (retry_jitter_ms as f64 / 1000.0))
}

/// A set of durations in seconds, summarised.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Times {
    /// How many.
    pub(crate) count: u64,
    pub(crate) min_s: Option<f64>,
    pub(crate) p50_s: Option<f64>,
    pub(crate) p90_s: Option<f64>,
    pub(crate) p99_s: Option<f64>,
    pub(crate) max_s: Option<f64>,
}

impl Times {
    /// Summarises `values` (seconds).
    pub(crate) fn of(mut values: Vec<f64>) -> Times {
        values.sort_by(f64::total_cmp);
        // Nearest rank: the smallest value with at least q of them at or below.
        let rank = |q: f64| -> Option<f64> {
            let n = values.len();
            (n > 0).then(|| {
                let index = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
                round_ms(values[index])
            })
        };
        Times {
            count: values.len() as u64,
            min_s: values.first().copied().map(round_ms),
            p50_s: rank(0.5),
            p90_s: rank(0.9),
            p99_s: rank(0.99),
            max_s: values.last().copied().map(round_ms),
        }
    }
}

/// Seconds rounded to the millisecond (reports, not arithmetic).
pub(crate) fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\thotsite\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(12_345));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None);
    }

    /// The command name may hold spaces and parentheses: fields count from
    /// the last `)`.
    #[test]
    fn cpu_ticks_are_utime_plus_stime() {
        let stat = "4242 (hot site (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 6 0 100 1000000 3000";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1 2"), None);
    }

    /// This process's own numbers are there (Linux).
    #[test]
    fn this_process_has_rss_and_cpu() {
        let pid = std::process::id();
        assert!(rss_kib(pid).is_some_and(|kib| kib > 0));
        assert!(cpu_ticks(pid).is_some());
    }

    /// The peak is over any 1 s window of 100 ms buckets, sliding by one
    /// bucket, not over fixed seconds: 10 attempts at 0.5–0.95 s and 10 at
    /// 1.0–1.45 s are 20 in one second although each fixed second has 10.
    #[test]
    fn the_peak_is_the_busiest_sliding_second() {
        let mut attempts = Attempts::default();
        for i in 0..10 {
            attempts.add(500 + i * 50);
            attempts.add(1_000 + i * 50);
        }
        attempts.add(5_000);
        assert_eq!(attempts.total(), 21);
        assert_eq!(attempts.peak_per_s(), 20);
        assert_eq!(attempts.buckets()[5], 2);
        assert_eq!(attempts.buckets().len(), 51);
    }

    #[test]
    fn spread_attempts_peak_near_their_average_rate() {
        let mut attempts = Attempts::default();
        // 400 attempts evenly over 4 s: 100 per second.
        for i in 0..400 {
            attempts.add(i * 10);
        }
        assert_eq!(attempts.peak_per_s(), 100);
    }

    #[test]
    fn few_buckets_peak_at_their_total() {
        let mut attempts = Attempts::default();
        assert_eq!(attempts.peak_per_s(), 0);
        attempts.add(0);
        attempts.add(950);
        assert_eq!(attempts.peak_per_s(), 2);
    }

    /// The cap: twice the average rate of `switching` connects spread over
    /// the jitter; none without jitter.
    #[test]
    fn the_cap_is_twice_the_jittered_average() {
        assert_eq!(attempt_cap_per_s(2_500, 2_000), Some(2_500.0));
        assert_eq!(attempt_cap_per_s(20, 500), Some(80.0));
        assert_eq!(attempt_cap_per_s(100, 0), None);
    }

    #[test]
    fn times_are_summarised_by_nearest_rank() {
        let times = Times::of((1..=100).map(|i| i as f64 / 10.0).rev().collect());
        assert_eq!(times.count, 100);
        assert_eq!(times.min_s, Some(0.1));
        assert_eq!(times.p50_s, Some(5.0));
        assert_eq!(times.p90_s, Some(9.0));
        assert_eq!(times.p99_s, Some(9.9));
        assert_eq!(times.max_s, Some(10.0));
        assert_eq!(Times::of(Vec::new()).max_s, None);
    }
}
