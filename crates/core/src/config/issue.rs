//! One problem in a configuration: the key and why. Every system's config
//! validation reports these (SPEC: "config validation rejects values outside
//! the stated bounds with an error that names the key"), so the binary can list
//! them all at once whichever crate found them.

use std::fmt;

/// One bad key and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The key: full (`voice.trunks[1].address`), or relative to a section
    /// that the caller prefixes (`urls[1].url`).
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigIssue {
    /// An issue with `key`.
    pub fn new(key: &str, reason: impl Into<String>) -> ConfigIssue {
        ConfigIssue {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    /// `issues`, each as `key: reason`, joined with `separator`.
    pub fn join(issues: &[ConfigIssue], separator: &str) -> String {
        let lines: Vec<String> = issues.iter().map(ToString::to_string).collect();
        lines.join(separator)
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_name_their_keys() {
        let issues = [
            ConfigIssue::new("a.b", "must be set"),
            ConfigIssue::new("c", "too long"),
        ];
        assert_eq!(
            ConfigIssue::join(&issues, "; "),
            "a.b: must be set; c: too long"
        );
    }
}
