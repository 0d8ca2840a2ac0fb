//! The issue accumulator: every check of a section adds to one list, so all
//! problems are reported at once, each with its full key.

use std::time::Duration;

use super::{ConfigIssue, WrittenDuration};
use crate::Secret;

/// Every problem found so far, each with its key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Issues(Vec<ConfigIssue>);

impl Issues {
    /// No issues yet.
    pub fn new() -> Issues {
        Issues::default()
    }

    /// Adds an issue with `key`.
    pub fn add(&mut self, key: &str, reason: impl Into<String>) {
        self.0.push(ConfigIssue::new(key, reason));
    }

    /// Adds `found`, each key under `prefix` (`channels[1]` and `urls[0].url`
    /// make `channels[1].urls[0].url`; an empty prefix keeps the keys).
    pub fn extend_under(&mut self, prefix: &str, found: impl IntoIterator<Item = ConfigIssue>) {
        for issue in found {
            let key = if prefix.is_empty() {
                issue.key
            } else {
                format!("{prefix}.{}", issue.key)
            };
            self.0.push(ConfigIssue {
                key,
                reason: issue.reason,
            });
        }
    }

    /// The value of `result`, or its error added as the issue of `key`.
    pub fn check<T>(&mut self, key: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|reason| self.add(key, reason)).ok()
    }

    /// `value` when it is a duration; else an issue of `key`.
    pub fn duration(&mut self, key: &str, value: &WrittenDuration) -> Option<Duration> {
        match value.parsed() {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                self.add(key, error.to_string());
                None
            }
        }
    }

    /// `value` when it is a duration above zero; else an issue of `key`
    /// naming `example` (`"5s"`).
    pub fn positive_duration(
        &mut self,
        key: &str,
        value: &WrittenDuration,
        example: &str,
    ) -> Option<Duration> {
        match value.parsed() {
            Ok(parsed) if !parsed.is_zero() => Some(parsed),
            _ => {
                self.add(
                    key,
                    format!(
                        "{:?} is not a positive duration such as {example:?}",
                        value.text()
                    ),
                );
                None
            }
        }
    }

    /// Adds an issue of `key` unless `min <= value <= max`.
    pub fn timer(&mut self, key: &str, value: Duration, min: Duration, max: Duration) {
        if value < min {
            self.add(key, format!("must be at least {min:?}, got {value:?}"));
        } else if value > max {
            self.add(key, format!("must be at most {max:?}, got {value:?}"));
        }
    }

    /// Adds an issue of `key` unless `secret` has at least `min_len` bytes;
    /// `why` says what it protects (`it signs every webhook, SPEC M15`). The
    /// issue never contains the secret.
    pub fn secret(&mut self, key: &str, secret: &Secret, min_len: usize, why: &str) {
        if secret.expose().len() < min_len {
            self.add(
                key,
                format!("must be at least {min_len} characters ({why})"),
            );
        }
    }

    /// How many issues were found so far: a check can compare it before and
    /// after to learn whether it found any.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The issues found.
    pub fn as_slice(&self) -> &[ConfigIssue] {
        &self.0
    }

    /// Ok when nothing was found, else every issue.
    pub fn finish(self) -> Result<(), Vec<ConfigIssue>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}
