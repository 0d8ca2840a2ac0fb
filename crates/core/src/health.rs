//! Up/down health with rise and fall thresholds.
//!
//! One failed probe must not take a target out of service (a lost packet is not a
//! dead site), and one good answer must not put a flapping target back. A target
//! goes down after `fall` consecutive failures and comes back up after `rise`
//! consecutive successes; while it is down and collecting successes it is
//! `Probing`.

use std::time::Instant;

/// Thresholds of a [`Health`]. Defaults: down after 3 failures, up after 2 successes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// Consecutive successes that bring a down target back up (at least 1).
    pub rise: u32,
    /// Consecutive failures that take an up target down (at least 1).
    pub fall: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig { rise: 2, fall: 3 }
    }
}

/// Where a target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthState {
    /// In service: work may go to it.
    Up,
    /// Out of service: no work goes to it.
    Down,
    /// Out of service, with some successes towards `rise`.
    Probing,
}

impl HealthState {
    /// Whether work may be sent to a target in this state.
    pub fn is_usable(self) -> bool {
        self == HealthState::Up
    }
}

/// A change of [`HealthState`], with the time it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthTransition {
    /// State before.
    pub from: HealthState,
    /// State after.
    pub to: HealthState,
    /// When the observation that caused it was made.
    pub at: Instant,
}

/// The health of one target.
#[derive(Debug, Clone)]
pub struct Health {
    config: HealthConfig,
    state: HealthState,
    successes: u32,
    failures: u32,
    since: Instant,
}

impl Health {
    /// A target starting in `initial` at `now`. Thresholds of zero are treated as one.
    pub fn new(config: HealthConfig, initial: HealthState, now: Instant) -> Health {
        Health {
            config: HealthConfig {
                rise: config.rise.max(1),
                fall: config.fall.max(1),
            },
            state: initial,
            successes: 0,
            failures: 0,
            since: now,
        }
    }

    /// The current state.
    pub fn state(&self) -> HealthState {
        self.state
    }

    /// When the current state began.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// Records a good observation (a probe answered, a bind accepted).
    pub fn record_success(&mut self, now: Instant) -> Option<HealthTransition> {
        self.failures = 0;
        if self.state == HealthState::Up {
            return None;
        }
        self.successes += 1;
        let to = if self.successes >= self.config.rise {
            HealthState::Up
        } else {
            HealthState::Probing
        };
        self.move_to(to, now)
    }

    /// Records a bad observation (a probe timed out, a bind was refused).
    pub fn record_failure(&mut self, now: Instant) -> Option<HealthTransition> {
        self.successes = 0;
        match self.state {
            HealthState::Up => {
                self.failures += 1;
                if self.failures >= self.config.fall {
                    self.move_to(HealthState::Down, now)
                } else {
                    None
                }
            }
            HealthState::Probing => self.move_to(HealthState::Down, now),
            HealthState::Down => None,
        }
    }

    /// Takes the target down at once, whatever the thresholds say: the connection
    /// is gone, there is nothing to wait for.
    pub fn force_down(&mut self, now: Instant) -> Option<HealthTransition> {
        self.successes = 0;
        self.failures = 0;
        self.move_to(HealthState::Down, now)
    }

    fn move_to(&mut self, to: HealthState, now: Instant) -> Option<HealthTransition> {
        if to == self.state {
            return None;
        }
        let from = self.state;
        self.state = to;
        self.since = now;
        if to == HealthState::Up {
            self.successes = 0;
        }
        Some(HealthTransition { from, to, at: now })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;
    use std::time::Duration;

    /// Runs a script of `<second> ok|fail|kill` lines and returns the transitions.
    #[track_caller]
    fn check(config: HealthConfig, initial: HealthState, script: &str, expected: &str) {
        #[allow(clippy::disallowed_methods)] // test epoch: only differences matter
        let start = Instant::now();
        let mut health = Health::new(config, initial, start);
        let mut transcript = String::new();
        for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (at, what) = line.split_once(' ').unwrap();
            let now = start + Duration::from_secs(at.parse().unwrap());
            let transition = match what {
                "ok" => health.record_success(now),
                "fail" => health.record_failure(now),
                "kill" => health.force_down(now),
                other => panic!("unknown step {other}"),
            };
            if let Some(t) = transition {
                writeln!(transcript, "{at} {:?} -> {:?}", t.from, t.to).unwrap();
                assert_eq!(t.at, now);
            }
        }
        assert_eq!(transcript.trim(), expected.trim());
    }

    #[test]
    fn falls_after_threshold_and_rises_through_probing() {
        check(
            HealthConfig { rise: 2, fall: 3 },
            HealthState::Up,
            "
            1 fail
            2 fail
            3 ok
            4 fail
            5 fail
            6 fail
            7 ok
            8 fail
            9 ok
            10 ok
            ",
            "
6 Up -> Down
7 Down -> Probing
8 Probing -> Down
9 Down -> Probing
10 Probing -> Up
            ",
        );
    }

    #[test]
    fn force_down_ignores_thresholds() {
        check(
            HealthConfig { rise: 1, fall: 5 },
            HealthState::Up,
            "
            1 kill
            2 kill
            3 ok
            ",
            "
1 Up -> Down
3 Down -> Up
            ",
        );
    }

    #[test]
    fn zero_thresholds_act_as_one() {
        check(
            HealthConfig { rise: 0, fall: 0 },
            HealthState::Down,
            "
            1 ok
            2 fail
            ",
            "
1 Down -> Up
2 Up -> Down
            ",
        );
    }
}
