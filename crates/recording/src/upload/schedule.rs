//! Which upload runs next and when a failed one is retried (SPEC R4).
//! Sans-IO: time comes in as `now`, nothing here reads a clock or a file.
//!
//! - Jobs start oldest first, at most `max_concurrent` at a time.
//! - A job whose own upload failed (its file is unreadable) waits out its
//!   own backoff; the other jobs go on.
//! - A failure of the store (unreachable, 5xx, full or read-only disk)
//!   would fail every job, so the whole queue waits out the store's
//!   backoff; then one job at a time probes the store until one succeeds.
//!   A store down for an hour costs one attempt per backoff ceiling, not
//!   one per job.
//!
//! Backoffs are exponential with full jitter ([`hotsite_core::Backoff`]);
//! each job's jitter is seeded from the schedule's seed and its id, so jobs
//! failing together do not retry in lockstep.

use std::collections::BTreeMap;
use std::time::Instant;

use hotsite_core::{Backoff, BackoffConfig};

use super::error::FailureScope;
use super::job::JobId;

/// How the schedule runs uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// Backoff of a failed job, and of the store after a store failure.
    pub backoff: BackoffConfig,
    /// Uploads at once (at least 1).
    pub max_concurrent: usize,
    /// Seeds the jitter.
    pub seed: u64,
}

/// An upload to run now: job `id`'s objects at these indexes (the ones the
/// store has not confirmed yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The job.
    pub id: JobId,
    /// Indexes into the job's objects, in order.
    pub objects: Vec<usize>,
}

/// Counters of the upload queue, as [`Uploader::stats`](super::Uploader::stats) reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UploadStats {
    /// Jobs waiting, including those uploading now.
    pub pending: usize,
    /// Jobs uploading now.
    pub in_flight: usize,
    /// Jobs the store confirmed completely since start.
    pub uploaded_jobs: u64,
    /// Objects the store confirmed since start.
    pub uploaded_objects: u64,
    /// Upload attempts that failed since start.
    pub failed_attempts: u64,
    /// Job files found corrupt and moved aside at open.
    pub corrupt_jobs: u64,
    /// Whether the last attempt failed because of the store (the queue is
    /// backing off as a whole).
    pub store_down: bool,
    /// The last failure, named.
    pub last_error: Option<String>,
}

#[derive(Debug)]
struct Entry {
    objects: usize,
    confirmed: Vec<bool>,
    in_flight: bool,
    /// Not before this (the job's own backoff).
    not_before: Option<Instant>,
    backoff: Backoff,
}

/// The upload schedule.
#[derive(Debug)]
pub struct Schedule {
    config: ScheduleConfig,
    jobs: BTreeMap<JobId, Entry>,
    store_backoff: Backoff,
    /// After a store failure: nothing starts before this; then one job at a
    /// time until one succeeds.
    store_wait: Option<Instant>,
    store_down: bool,
    in_flight: usize,
    stats: UploadStats,
}

impl Schedule {
    /// An empty schedule.
    pub fn new(config: ScheduleConfig) -> Schedule {
        Schedule {
            config: ScheduleConfig {
                max_concurrent: config.max_concurrent.max(1),
                ..config
            },
            jobs: BTreeMap::new(),
            store_backoff: Backoff::new(config.backoff, config.seed),
            store_wait: None,
            store_down: false,
            in_flight: 0,
            stats: UploadStats::default(),
        }
    }

    /// Adds job `id` with `objects` objects, ready now. Adding a job the
    /// schedule has does nothing.
    pub fn add(&mut self, id: JobId, objects: usize) {
        let seed = self.config.seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.jobs.entry(id).or_insert_with(|| Entry {
            objects,
            confirmed: vec![false; objects],
            in_flight: false,
            not_before: None,
            backoff: Backoff::new(self.config.backoff, seed),
        });
    }

    /// Whether the schedule holds job `id`.
    pub fn contains(&self, id: JobId) -> bool {
        self.jobs.contains_key(&id)
    }

    /// The next upload to run now, if any; it is in flight until
    /// [`Schedule::job_uploaded`] or [`Schedule::job_failed`].
    pub fn poll_start(&mut self, now: Instant) -> Option<Start> {
        if self.in_flight >= self.limit() || self.store_wait.is_some_and(|at| now < at) {
            return None;
        }
        let (&id, entry) = self
            .jobs
            .iter_mut()
            .find(|(_, e)| !e.in_flight && e.not_before.is_none_or(|at| at <= now))?;
        entry.in_flight = true;
        self.in_flight += 1;
        let objects = (0..entry.objects)
            .filter(|&i| !entry.confirmed[i])
            .collect();
        Some(Start { id, objects })
    }

    /// The store confirmed object `index` of job `id`: a retry skips it.
    pub fn object_uploaded(&mut self, id: JobId, index: usize) {
        if let Some(done) = self
            .jobs
            .get_mut(&id)
            .and_then(|e| e.confirmed.get_mut(index))
        {
            if !*done {
                *done = true;
                self.stats.uploaded_objects += 1;
            }
        }
    }

    /// Every object of job `id` is confirmed and the job is marked done: it
    /// leaves the schedule, and the store is up.
    pub fn job_uploaded(&mut self, id: JobId) {
        if let Some(entry) = self.jobs.remove(&id) {
            if entry.in_flight {
                self.in_flight -= 1;
            }
            self.stats.uploaded_jobs += 1;
        }
        self.store_backoff.reset();
        self.store_wait = None;
        self.store_down = false;
    }

    /// Job `id`'s attempt failed with `error`; returns when the job may run
    /// again.
    pub fn job_failed(
        &mut self,
        now: Instant,
        id: JobId,
        scope: FailureScope,
        error: String,
    ) -> Instant {
        self.stats.failed_attempts += 1;
        self.stats.last_error = Some(error);
        let Some(entry) = self.jobs.get_mut(&id) else {
            return now;
        };
        if entry.in_flight {
            entry.in_flight = false;
            self.in_flight -= 1;
        }
        match scope {
            FailureScope::Store => {
                // Every job would fail alike: the queue waits as a whole,
                // the job keeps its place at the front.
                // Uploads failing together (one outage) never shorten the
                // wait an earlier one set.
                let at =
                    (now + self.store_backoff.next_delay()).max(self.store_wait.unwrap_or(now));
                self.store_wait = Some(at);
                self.store_down = true;
                at
            }
            FailureScope::Job => {
                let at = now + entry.backoff.next_delay();
                entry.not_before = Some(at);
                at
            }
        }
    }

    /// When [`Schedule::poll_start`] may have something to start, if it has
    /// nothing now and no upload's end is awaited first.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight >= self.limit() {
            return None;
        }
        let earliest_job = self
            .jobs
            .values()
            .filter(|e| !e.in_flight)
            .map(|e| e.not_before)
            .min()?;
        Some(match (earliest_job, self.store_wait) {
            (Some(job), Some(store)) => job.max(store),
            (Some(at), None) | (None, Some(at)) => at,
            // Ready now: the caller polls again at once.
            (None, None) => return None,
        })
    }

    /// The counters now.
    pub fn stats(&self) -> UploadStats {
        UploadStats {
            pending: self.jobs.len(),
            in_flight: self.in_flight,
            store_down: self.store_down,
            ..self.stats.clone()
        }
    }

    /// Uploads allowed at once: one while probing a store that was down.
    fn limit(&self) -> usize {
        if self.store_down {
            1
        } else {
            self.config.max_concurrent
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;
    use std::time::Duration;

    use super::*;

    fn config(max_concurrent: usize) -> ScheduleConfig {
        ScheduleConfig {
            backoff: BackoffConfig {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60),
                multiplier: 2,
            },
            max_concurrent,
            seed: 7,
        }
    }

    /// Runs `script` against a schedule: each line is `<second> <input>`;
    /// after each line every upload that can start is started and listed.
    /// Inputs: `add N`, `ok N` (all objects confirmed), `object N I`,
    /// `fail-store N`, `fail-job N`, `tick`.
    #[track_caller]
    fn check(max_concurrent: usize, script: &str, expected: &str) {
        let start = epoch();
        let mut schedule = Schedule::new(config(max_concurrent));
        let mut transcript = String::new();
        for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at: f64 = words[0].parse().unwrap();
            let now = start + Duration::from_secs_f64(at);
            let n = |i: usize| JobId(words[i].parse().unwrap());
            match words[1] {
                "add" => schedule.add(n(2), 2),
                "ok" => schedule.job_uploaded(n(2)),
                "object" => schedule.object_uploaded(n(2), words[3].parse().unwrap()),
                "fail-store" => {
                    let retry = schedule.job_failed(now, n(2), FailureScope::Store, "down".into());
                    writeln!(
                        transcript,
                        "{at} {} retry at {:.3}",
                        n(2).0,
                        (retry - start).as_secs_f64()
                    )
                    .unwrap();
                }
                "fail-job" => {
                    let retry = schedule.job_failed(now, n(2), FailureScope::Job, "gone".into());
                    writeln!(
                        transcript,
                        "{at} {} retry at {:.3}",
                        n(2).0,
                        (retry - start).as_secs_f64()
                    )
                    .unwrap();
                }
                "tick" => {}
                other => panic!("unknown input {other}"),
            }
            while let Some(started) = schedule.poll_start(now) {
                writeln!(
                    transcript,
                    "{at} start {} {:?}",
                    started.id.0, started.objects
                )
                .unwrap();
            }
        }
        assert_eq!(
            transcript.trim(),
            expected.trim(),
            "transcript:\n{transcript}"
        );
    }

    #[allow(clippy::disallowed_methods)] // test epoch: only offsets from it matter
    fn epoch() -> Instant {
        Instant::now()
    }

    #[test]
    fn r4_jobs_start_oldest_first_within_the_concurrency_limit() {
        check(
            2,
            "
            0 add 3
            0 add 1
            0 add 2
            1 ok 1
            2 ok 3
            ",
            "
0 start 3 [0, 1]
0 start 1 [0, 1]
1 start 2 [0, 1]
            ",
        );
    }

    #[test]
    fn r4_a_store_failure_holds_the_whole_queue_then_probes_with_one_job() {
        // Jobs 1 and 2 fail on the store together: nothing starts before the
        // later retry time, then one job probes; once it succeeds the queue
        // runs at full width again.
        check(
            2,
            "
            0 add 1
            0 add 2
            0 add 3
            0 fail-store 1
            0 fail-store 2
            0.3 tick
            0.5 tick
            1 tick
            1.9 ok 1
            ",
            "
0 start 1 [0, 1]
0 start 2 [0, 1]
0 1 retry at 0.390
0 2 retry at 0.390
0.5 start 1 [0, 1]
1.9 start 2 [0, 1]
1.9 start 3 [0, 1]
            ",
        );
    }

    #[test]
    fn r4_a_job_failure_backs_off_that_job_only_and_keeps_confirmed_objects() {
        // Job 1's second file is unreadable: job 1 waits out its own backoff
        // while job 3 starts at once; its retry skips the confirmed object.
        check(
            2,
            "
            0 add 1
            0 add 2
            0 object 1 0
            0 fail-job 1
            0.5 add 3
            0.6 ok 2
            0.9 tick
            1 tick
            ",
            "
0 start 1 [0, 1]
0 start 2 [0, 1]
0 1 retry at 0.924
0.5 start 3 [0, 1]
1 start 1 [1]
            ",
        );
    }

    #[test]
    fn r4_backoff_grows_and_resets_after_a_success() {
        let start = epoch();
        let mut schedule = Schedule::new(config(1));
        schedule.add(JobId(1), 1);
        let mut now = start;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let started = schedule
                .poll_start(now)
                .expect("the job starts once its wait is over");
            let retry = schedule.job_failed(now, started.id, FailureScope::Store, "refused".into());
            assert_eq!(
                schedule.poll_start(now),
                None,
                "nothing starts before the retry time"
            );
            assert_eq!(schedule.poll_timeout(), Some(retry));
            waits.push(retry - now);
            now = retry;
        }
        // Full jitter under a doubling ceiling capped at 60 s.
        let ceilings = [1, 2, 4, 8, 16, 32, 60, 60];
        for (wait, ceiling) in waits.iter().zip(ceilings) {
            assert!(*wait <= Duration::from_secs(ceiling), "{waits:?}");
        }
        assert!(
            waits[6] > Duration::from_secs(2),
            "the ceiling grew: {waits:?}"
        );
        let stats = schedule.stats();
        assert_eq!(
            (stats.failed_attempts, stats.pending, stats.store_down),
            (8, 1, true)
        );
        assert_eq!(stats.last_error.as_deref(), Some("refused"));

        let started = schedule.poll_start(now).unwrap();
        schedule.object_uploaded(started.id, 0);
        schedule.job_uploaded(started.id);
        let stats = schedule.stats();
        assert_eq!(
            (
                stats.uploaded_jobs,
                stats.uploaded_objects,
                stats.pending,
                stats.store_down
            ),
            (1, 1, 0, false)
        );
        // The next failure starts from the initial ceiling again.
        schedule.add(JobId(2), 1);
        let started = schedule.poll_start(now).unwrap();
        let retry = schedule.job_failed(now, started.id, FailureScope::Store, "refused".into());
        assert!(retry - now <= Duration::from_secs(1));
    }

    #[test]
    fn r4_simulated_hour_of_store_outage_costs_few_attempts_and_loses_no_job() {
        // 200 jobs, the store down for an hour: attempts stay near one per
        // backoff ceiling (60 s), and every job completes after.
        let start = epoch();
        let mut schedule = Schedule::new(config(4));
        for id in 1..=200 {
            schedule.add(JobId(id), 2);
        }
        let up_at = start + Duration::from_secs(3600);
        let mut now = start;
        let mut steps = 0;
        while schedule.stats().pending > 0 {
            steps += 1;
            assert!(steps < 10_000, "bounded");
            while let Some(started) = schedule.poll_start(now) {
                if now < up_at {
                    schedule.job_failed(now, started.id, FailureScope::Store, "unreachable".into());
                } else {
                    for i in started.objects {
                        schedule.object_uploaded(started.id, i);
                    }
                    schedule.job_uploaded(started.id);
                }
            }
            match schedule.poll_timeout() {
                Some(at) => now = now.max(at),
                None => assert_eq!(schedule.stats().pending, 0),
            }
        }
        let stats = schedule.stats();
        assert_eq!(stats.uploaded_jobs, 200);
        assert_eq!(stats.uploaded_objects, 400);
        assert!(
            stats.failed_attempts < 200,
            "{} attempts during the outage",
            stats.failed_attempts
        );
        assert!(
            now < up_at + Duration::from_secs(61),
            "resumed within a ceiling of the store coming back"
        );
    }
}
