//! Exponential backoff with full jitter.
//!
//! Full jitter (a uniform delay between zero and the exponential ceiling) spreads
//! retries of many clients that failed at the same moment, which plain exponential
//! backoff does not: they would all retry in lockstep and fail together again.

use std::time::Duration;

use crate::Rng;

/// How a [`Backoff`] grows. Defaults: 1 s initial ceiling, doubling, capped at 60 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Ceiling of the first delay.
    pub initial: Duration,
    /// The ceiling never grows past this.
    pub max: Duration,
    /// Factor applied to the ceiling after each attempt (at least 1).
    pub multiplier: u32,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2,
        }
    }
}

/// Why a [`BackoffConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackoffConfigError {
    /// The initial ceiling was zero: every retry would be immediate.
    #[error("initial delay must be greater than zero")]
    ZeroInitial,
    /// The cap was below the initial ceiling.
    #[error("max delay ({max:?}) must not be below the initial delay ({initial:?})")]
    MaxBelowInitial {
        /// The configured initial ceiling.
        initial: Duration,
        /// The configured cap.
        max: Duration,
    },
    /// The multiplier was zero.
    #[error("multiplier must be at least 1")]
    ZeroMultiplier,
}

impl BackoffConfig {
    /// Checks the bounds. Configuration loaders call this and name the key on error.
    pub fn validate(&self) -> Result<(), BackoffConfigError> {
        if self.initial.is_zero() {
            return Err(BackoffConfigError::ZeroInitial);
        }
        if self.max < self.initial {
            return Err(BackoffConfigError::MaxBelowInitial {
                initial: self.initial,
                max: self.max,
            });
        }
        if self.multiplier == 0 {
            return Err(BackoffConfigError::ZeroMultiplier);
        }
        Ok(())
    }
}

/// The delays before successive retries of one operation.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    ceiling: Duration,
    attempts: u32,
    rng: Rng,
}

impl Backoff {
    /// A backoff whose jitter sequence is fixed by `seed`.
    pub fn new(config: BackoffConfig, seed: u64) -> Backoff {
        Backoff {
            config,
            ceiling: config.initial,
            attempts: 0,
            rng: Rng::new(seed),
        }
    }

    /// The delay before the next retry: uniform in `[0, ceiling]`; then the ceiling grows.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.attempts = self.attempts.saturating_add(1);
        self.ceiling = ceiling
            .saturating_mul(self.config.multiplier)
            .min(self.config.max);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.below_or_equal(nanos))
    }

    /// The current ceiling: no delay handed out next will exceed it.
    pub fn ceiling(&self) -> Duration {
        self.ceiling
    }

    /// How many delays were handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.ceiling = self.config.initial;
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(initial_ms: u64, max_ms: u64) -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
            multiplier: 2,
        }
    }

    #[test]
    fn ceiling_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(config(100, 1000), 1);
        let ceilings: Vec<u128> = (0..6)
            .map(|_| {
                let c = backoff.ceiling().as_millis();
                backoff.next_delay();
                c
            })
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.attempts(), 6);
        backoff.reset();
        assert_eq!(backoff.ceiling(), Duration::from_millis(100));
        assert_eq!(backoff.attempts(), 0);
    }

    #[test]
    fn same_seed_gives_the_same_delays() {
        let mut a = Backoff::new(config(100, 10_000), 42);
        let mut b = Backoff::new(config(100, 10_000), 42);
        let mut c = Backoff::new(config(100, 10_000), 43);
        let da: Vec<_> = (0..8).map(|_| a.next_delay()).collect();
        let db: Vec<_> = (0..8).map(|_| b.next_delay()).collect();
        let dc: Vec<_> = (0..8).map(|_| c.next_delay()).collect();
        assert_eq!(da, db);
        assert_ne!(da, dc, "different seeds must not retry in lockstep");
    }

    #[test]
    fn validate_names_the_problem() {
        assert_eq!(
            config(0, 10).validate(),
            Err(BackoffConfigError::ZeroInitial)
        );
        assert!(matches!(
            config(100, 10).validate(),
            Err(BackoffConfigError::MaxBelowInitial { .. })
        ));
        let mut zero_multiplier = config(1, 10);
        zero_multiplier.multiplier = 0;
        assert_eq!(
            zero_multiplier.validate(),
            Err(BackoffConfigError::ZeroMultiplier)
        );
        assert_eq!(BackoffConfig::default().validate(), Ok(()));
    }

    proptest! {
        #[test]
        fn delays_never_exceed_the_ceiling(seed: u64, initial in 1u64..10_000, extra in 0u64..100_000) {
            let mut backoff = Backoff::new(config(initial, initial + extra), seed);
            for _ in 0..40 {
                let ceiling = backoff.ceiling();
                let delay = backoff.next_delay();
                prop_assert!(delay <= ceiling);
                prop_assert!(ceiling <= Duration::from_millis(initial + extra));
            }
        }
    }
}
