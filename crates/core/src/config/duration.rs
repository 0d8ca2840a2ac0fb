//! Durations as written in config files: humantime strings (`"500ms"`,
//! `"30s"`, `"2m"`, `"1h 30m"`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration that is not one, with the text and humantime's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration ({reason}); write e.g. \"30s\", \"500ms\", \"2m\"")]
pub struct DurationError {
    text: String,
    reason: String,
}

/// Parses a humantime duration (`"500ms"`, `"30s"`, `"2m"`, `"1h 30m"`).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(text).map_err(|error| DurationError {
        text: text.to_owned(),
        reason: error.to_string(),
    })
}

/// Serde's `deserialize_with` for a [`Duration`] written as a humantime
/// string; a bad one stops the parse with [`DurationError`]'s text.
pub fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// A duration as written, parsed but not yet judged: a bad text does not stop
/// the parse, so the section's other problems are reported with it
/// ([`Issues::duration`](super::Issues::duration)). A value that is not a
/// string still does.
#[derive(Clone, PartialEq, Eq)]
pub struct WrittenDuration {
    text: String,
    parsed: Result<Duration, DurationError>,
}

impl WrittenDuration {
    /// Parses `text`.
    pub fn new(text: &str) -> WrittenDuration {
        WrittenDuration {
            text: text.to_owned(),
            parsed: parse_duration(text),
        }
    }

    /// The text as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The duration, or why the text is none.
    pub fn parsed(&self) -> Result<Duration, &DurationError> {
        self.parsed.as_ref().copied()
    }
}

impl fmt::Debug for WrittenDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl<'de> Deserialize<'de> for WrittenDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<WrittenDuration, D::Error> {
        String::deserialize(deserializer).map(|text| WrittenDuration::new(&text))
    }
}
