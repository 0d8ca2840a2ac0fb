//! Pool policy tests in simulated time.

use std::collections::HashMap;

use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[allow(clippy::disallowed_methods)] // test epoch: only differences matter
fn epoch() -> Instant {
    Instant::now()
}

fn targets(sites: usize, per_site: usize) -> Vec<Target> {
    (0..sites)
        .flat_map(|s| {
            (0..per_site).map(move |i| Target::new(&format!("site{s}"), &format!("smsc{i}")))
        })
        .collect()
}

fn connects(pool: &mut Pool) -> Vec<InstanceId> {
    let mut ids = Vec::new();
    while let Some(output) = pool.poll_output() {
        if let PoolOutput::Connect(id) = output {
            ids.push(id);
        }
    }
    ids
}

/// SPEC M4: every instance of every site is bound at once, from the start.
#[test]
fn binds_every_instance_of_every_site_at_start() {
    let start = epoch();
    let mut pool = Pool::new(PoolConfig::default(), targets(2, 2), 1, start);
    assert_eq!(connects(&mut pool), [0, 1, 2, 3]);
    for id in 0..4 {
        pool.handle_bound(id, start + secs(1));
    }
    assert_eq!(pool.bound().collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert!(pool
        .status()
        .iter()
        .all(|s| s.health == HealthState::Up && s.bind_attempts == 1));
    assert_eq!(
        pool.poll_timeout(),
        None,
        "nothing to do while all are bound"
    );
}

/// SPEC M5, M7: a lost bind leaves the bound set at once, is reported down with
/// its cause, and is retried after interval + jitter, not before.
#[test]
fn lost_bind_is_retried_after_interval_plus_jitter() {
    let start = epoch();
    let mut pool = Pool::new(PoolConfig::default(), targets(1, 2), 7, start);
    connects(&mut pool);
    pool.handle_bound(0, start);
    pool.handle_bound(1, start);
    while pool.poll_output().is_some() {}

    let died = start + secs(600);
    pool.handle_closed(1, died, "peer silent for 30s");
    assert_eq!(pool.bound().collect::<Vec<_>>(), [0]);
    let outputs: Vec<_> = std::iter::from_fn(|| pool.poll_output()).collect();
    let PoolOutput::Event(Event {
        kind: EventKind::Health { from, to, cause },
        target,
        ..
    }) = &outputs[0]
    else {
        panic!("{outputs:?}")
    };
    assert_eq!(
        (*from, *to, cause.as_str()),
        (HealthState::Up, HealthState::Down, "peer silent for 30s")
    );
    assert_eq!(target.to_string(), "site0/smsc1");
    let retry_at = pool.poll_timeout().unwrap();
    assert!(
        retry_at >= died + secs(35) && retry_at <= died + secs(40),
        "{:?}",
        retry_at - died
    );
    pool.handle_timeout(retry_at - Duration::from_millis(1));
    assert!(connects(&mut pool).is_empty());
    pool.handle_timeout(retry_at);
    assert_eq!(connects(&mut pool), [1]);
}

/// SPEC M5: 100 sessions failing in lockstep, again and again, for two simulated
/// hours. No instance is ever attempted twice within 30 s, and the jitter spreads
/// the instances apart instead of rebinding them all at the same instant.
#[test]
fn rebind_pacing_over_100_sessions_in_lockstep_failures() {
    let start = epoch();
    let config = PoolConfig {
        rebind_interval: secs(30),
        rebind_jitter: secs(10),
    };
    let mut pool = Pool::new(config, targets(4, 25), 99, start);
    let mut attempts: HashMap<InstanceId, Vec<(Instant, bool)>> = HashMap::new();
    let mut now = start;
    let end = start + secs(2 * 3600);
    let mut steps = 0;
    while now < end {
        steps += 1;
        assert!(steps < 100_000, "simulation did not converge");
        for id in connects(&mut pool) {
            // The world: binds succeed in the first minute of every 10 minutes and
            // every session dies at the next whole 5 minutes: all in lockstep.
            let minute = (now - start).as_secs() / 60;
            let succeeds = minute % 10 == 0;
            attempts.entry(id).or_default().push((now, succeeds));
            if succeeds {
                pool.handle_bound(id, now);
            } else {
                pool.handle_closed(id, now, "connection refused");
            }
        }
        let lockstep_death = start + secs(((now - start).as_secs() / 300 + 1) * 300);
        let next = pool
            .poll_timeout()
            .map_or(lockstep_death, |t| t.min(lockstep_death));
        now = next.max(now);
        if now == lockstep_death {
            let bound: Vec<_> = pool.bound().collect();
            for id in bound {
                pool.handle_closed(id, now, "site died");
            }
            now += Duration::from_millis(1);
        }
        pool.handle_timeout(now);
    }
    assert_eq!(attempts.len(), 100, "every instance was attempted");
    let mut first_retry_offsets = std::collections::HashSet::new();
    for (id, times) in &attempts {
        assert!(
            times.len() > 100,
            "instance {id}: only {} attempts in 2 h",
            times.len()
        );
        assert!(
            times.iter().filter(|(_, ok)| *ok).count() >= 10,
            "instance {id} was bound in every up window"
        );
        for pair in times.windows(2) {
            let (gap, previous_failed) = (pair[1].0 - pair[0].0, !pair[0].1);
            assert!(gap >= secs(30), "instance {id}: attempts {gap:?} apart");
            if previous_failed {
                assert!(
                    gap <= secs(41),
                    "instance {id}: waited {gap:?} after a failure, longer than interval + jitter"
                );
            }
        }
        first_retry_offsets.insert(times[1].0 - start);
    }
    assert!(
        first_retry_offsets.len() > 50,
        "jitter must spread rebinds: {} distinct",
        first_retry_offsets.len()
    );
}

/// SPEC M5: a failed attempt right after an earlier one still waits the interval
/// from the earlier attempt.
#[test]
fn attempts_are_spaced_even_when_failures_come_late() {
    let start = epoch();
    let config = PoolConfig {
        rebind_interval: secs(30),
        rebind_jitter: Duration::ZERO,
    };
    let mut pool = Pool::new(config, targets(1, 1), 1, start);
    connects(&mut pool);
    // The connect hangs for 20 s before failing: the next attempt is 30 s after
    // the failure, so 50 s after the first attempt.
    pool.handle_closed(0, start + secs(20), "connect timeout");
    assert_eq!(pool.poll_timeout(), Some(start + secs(50)));
    // A duplicate close report changes nothing.
    pool.handle_closed(0, start + secs(21), "again");
    assert_eq!(pool.poll_timeout(), Some(start + secs(50)));
}

/// Different seeds, different jitter: two gateways do not rebind in lockstep.
#[test]
fn different_seeds_spread_rebinds() {
    let start = epoch();
    let retry = |seed| {
        let mut pool = Pool::new(PoolConfig::default(), targets(1, 1), seed, start);
        connects(&mut pool);
        pool.handle_closed(0, start, "refused");
        pool.poll_timeout().unwrap()
    };
    assert_eq!(retry(5), retry(5));
    assert_ne!(retry(5), retry(6));
}

/// SPEC M5: a configuration asking for rebinds under 30 s is refused, naming the key.
#[test]
fn config_under_30_seconds_is_rejected() {
    let too_fast = PoolConfig {
        rebind_interval: secs(29),
        rebind_jitter: secs(1),
    };
    let error = too_fast.validate().unwrap_err();
    assert_eq!(error.key(), "rebind_interval");
    assert!(error.to_string().contains("at least 30 s"), "{error}");
    let wild = PoolConfig {
        rebind_interval: secs(30),
        rebind_jitter: secs(31),
    };
    assert_eq!(wild.validate().unwrap_err().key(), "rebind_jitter");
    assert_eq!(PoolConfig::default().validate(), Ok(()));
}
