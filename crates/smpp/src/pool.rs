//! The bind-to-all pool policy: one session per SMSC instance of every site, all
//! bound at once (SPEC M4), each lost one rebound no sooner than the pacing
//! allows (SPEC M5).
//!
//! Pure: the driver tells the pool when a bind came up or went away, and the pool
//! says when to connect which instance. It never connects by itself.
//!
//! Pacing: after a bind attempt fails or a bound session dies at `t`, the next
//! attempt to that instance is at `t + rebind_interval + jitter`, with jitter
//! uniform in `[0, rebind_jitter]` from a seeded generator. Attempts to one
//! instance are therefore always at least `rebind_interval` (≥ 30 s, enforced by
//! [`PoolConfig::validate`]) apart, and gateways seeded differently spread out
//! instead of rebinding in lockstep.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hotsite_core::{
    Event, EventKind, Health, HealthConfig, HealthState, HealthTransition, Rng, Target,
};

/// The shortest rebind interval any configuration may ask for (SPEC M5).
pub const MIN_REBIND_INTERVAL: Duration = Duration::from_secs(30);

/// Pacing settings. Defaults: 35 s interval, up to 5 s jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Least time between two bind attempts to one instance (at least 30 s).
    pub rebind_interval: Duration,
    /// Most random delay added to each interval.
    pub rebind_jitter: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            rebind_interval: Duration::from_secs(35),
            rebind_jitter: Duration::from_secs(5),
        }
    }
}

/// A [`PoolConfig`] out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolConfigError {
    /// SPEC M5: providers ask for no more than one rebind per 30 s per instance.
    #[error(
        "must be at least 30 s (SPEC M5: at most one rebind per 30 s per SMSC instance), got {0:?}"
    )]
    RebindIntervalTooShort(Duration),
    /// Jitter larger than the interval would make pacing unpredictable.
    #[error("must not exceed rebind_interval ({interval:?}), got {jitter:?}")]
    RebindJitterTooLarge {
        /// The configured jitter.
        jitter: Duration,
        /// The configured interval.
        interval: Duration,
    },
}

impl PoolConfigError {
    /// The setting the error is about, as named in configuration files.
    pub fn key(&self) -> &'static str {
        match self {
            PoolConfigError::RebindIntervalTooShort(_) => "rebind_interval",
            PoolConfigError::RebindJitterTooLarge { .. } => "rebind_jitter",
        }
    }
}

impl PoolConfig {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), PoolConfigError> {
        if self.rebind_interval < MIN_REBIND_INTERVAL {
            return Err(PoolConfigError::RebindIntervalTooShort(
                self.rebind_interval,
            ));
        }
        if self.rebind_jitter > self.rebind_interval {
            return Err(PoolConfigError::RebindJitterTooLarge {
                jitter: self.rebind_jitter,
                interval: self.rebind_interval,
            });
        }
        Ok(())
    }
}

/// Index of an instance in the pool, in the order the targets were given.
pub type InstanceId = usize;

/// What the pool asks of its driver.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolOutput {
    /// Open a connection to this instance and bind.
    Connect(InstanceId),
    /// Something worth logging, counting and showing (invariant 4).
    Event(Event),
}

/// Where one instance's bind stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindState {
    /// No session; the next attempt is due at `retry_at`.
    Idle {
        /// When the next attempt may start.
        retry_at: Instant,
    },
    /// A connection and bind are under way.
    Connecting,
    /// Bound: messages may go here.
    Bound,
}

/// A snapshot of one instance, for status output.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceStatus {
    /// Which instance.
    pub target: Target,
    /// Its bind.
    pub bind: BindState,
    /// Up or down, and since when.
    pub health: HealthState,
    /// When `health` last changed.
    pub since: Instant,
    /// Bind attempts since the pool started.
    pub bind_attempts: u64,
    /// Why the last session or attempt ended, if one did.
    pub last_failure: Option<String>,
}

struct Instance {
    target: Target,
    bind: BindState,
    health: Health,
    bind_attempts: u64,
    attempts_since_up: u32,
    last_attempt: Option<Instant>,
    last_failure: Option<String>,
}

/// The pool policy. See the module docs.
pub struct Pool {
    config: PoolConfig,
    instances: Vec<Instance>,
    rng: Rng,
    outputs: VecDeque<PoolOutput>,
}

impl Pool {
    /// A pool over `targets`, every one due for its first bind at `now` (SPEC M4:
    /// all instances of all sites at once). `seed` fixes the jitter sequence.
    pub fn new(config: PoolConfig, targets: Vec<Target>, seed: u64, now: Instant) -> Pool {
        let instances = targets
            .into_iter()
            .map(|target| Instance {
                target,
                bind: BindState::Idle { retry_at: now },
                health: Health::new(HealthConfig { rise: 1, fall: 1 }, HealthState::Down, now),
                bind_attempts: 0,
                attempts_since_up: 0,
                last_attempt: None,
                last_failure: None,
            })
            .collect();
        let mut pool = Pool {
            config,
            instances,
            rng: Rng::new(seed),
            outputs: VecDeque::new(),
        };
        pool.handle_timeout(now);
        pool
    }

    /// Starts every attempt that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (id, instance) in self.instances.iter_mut().enumerate() {
            let BindState::Idle { retry_at } = instance.bind else {
                continue;
            };
            if retry_at > now {
                continue;
            }
            // Belt and braces for SPEC M5: whatever the caller did, two attempts
            // to one instance are never closer than the interval.
            if let Some(last) = instance.last_attempt {
                if now < last + self.config.rebind_interval {
                    instance.bind = BindState::Idle {
                        retry_at: last + self.config.rebind_interval,
                    };
                    continue;
                }
            }
            instance.bind = BindState::Connecting;
            instance.last_attempt = Some(now);
            instance.bind_attempts += 1;
            instance.attempts_since_up += 1;
            self.outputs.push_back(PoolOutput::Event(Event {
                at: now,
                target: instance.target.clone(),
                kind: EventKind::ConnectAttempt {
                    attempt: instance.attempts_since_up,
                },
            }));
            self.outputs.push_back(PoolOutput::Connect(id));
        }
    }

    /// The driver's session to `id` is bound.
    pub fn handle_bound(&mut self, id: InstanceId, now: Instant) {
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        instance.bind = BindState::Bound;
        instance.attempts_since_up = 0;
        let transition = instance.health.record_success(now);
        let target = instance.target.clone();
        self.report_health(target, transition, "bound");
    }

    /// The driver's attempt or session to `id` ended, for `cause`.
    pub fn handle_closed(&mut self, id: InstanceId, now: Instant, cause: &str) {
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        if matches!(instance.bind, BindState::Idle { .. }) {
            return;
        }
        let jitter_nanos = u64::try_from(self.config.rebind_jitter.as_nanos()).unwrap_or(u64::MAX);
        let delay = self.config.rebind_interval
            + Duration::from_nanos(self.rng.below_or_equal(jitter_nanos));
        // Measured from the later of the failure and the last attempt, so that two
        // attempts are always at least `rebind_interval` apart (SPEC M5).
        let from = instance.last_attempt.map_or(now, |last| last.max(now));
        let retry_at = from + delay;
        instance.bind = BindState::Idle { retry_at };
        instance.last_failure = Some(cause.to_owned());
        let transition = instance.health.force_down(now);
        let target = instance.target.clone();
        self.report_health(target.clone(), transition, cause);
        self.outputs.push_back(PoolOutput::Event(Event {
            at: now,
            target,
            kind: EventKind::RetryScheduled {
                after: retry_at - now,
                cause: cause.to_owned(),
            },
        }));
    }

    fn report_health(&mut self, target: Target, transition: Option<HealthTransition>, cause: &str) {
        if let Some(transition) = transition {
            self.outputs.push_back(PoolOutput::Event(Event {
                at: transition.at,
                target,
                kind: EventKind::Health {
                    from: transition.from,
                    to: transition.to,
                    cause: cause.to_owned(),
                },
            }));
        }
    }

    /// The next thing for the driver to do or report.
    pub fn poll_output(&mut self) -> Option<PoolOutput> {
        self.outputs.pop_front()
    }

    /// When [`Pool::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.instances
            .iter()
            .filter_map(|instance| match instance.bind {
                BindState::Idle { retry_at } => Some(retry_at),
                BindState::Connecting | BindState::Bound => None,
            })
            .min()
    }

    /// The instances, in the order given to [`Pool::new`].
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.instances.iter().map(|instance| &instance.target)
    }

    /// Instances that are bound now: the only ones messages may go to (SPEC M7).
    pub fn bound(&self) -> impl Iterator<Item = InstanceId> + '_ {
        self.instances
            .iter()
            .enumerate()
            .filter(|(_, instance)| instance.bind == BindState::Bound)
            .map(|(id, _)| id)
    }

    /// A snapshot of every instance.
    pub fn status(&self) -> Vec<InstanceStatus> {
        self.instances
            .iter()
            .map(|instance| InstanceStatus {
                target: instance.target.clone(),
                bind: instance.bind,
                health: instance.health.state(),
                since: instance.health.since(),
                bind_attempts: instance.bind_attempts,
                last_failure: instance.last_failure.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
