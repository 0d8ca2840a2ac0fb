//! The machine's options, with their defaults and validation.

use serde::{Deserialize, Serialize};

use super::Millis;

/// Default `site_timeout_ms`: 30 s of telephony OFF before switching over
/// (the platform's own desktop waits 60 s; a desktop that waits half as long
/// brings its agent back sooner, and 30 s still rides out a server restart).
pub const DEFAULT_SITE_TIMEOUT_MS: Millis = 30_000;
/// Default `retry_delay_ms`: 2 s between reconnect attempts.
pub const DEFAULT_RETRY_DELAY_MS: Millis = 2_000;
/// Default `retry_jitter_ms`: up to 1 s more, at random, so thousands of
/// desktops of a failed site do not retry or switch over in lockstep.
pub const DEFAULT_RETRY_JITTER_MS: Millis = 1_000;
/// No duration option may exceed one day: a larger value is a typo (seconds
/// given as milliseconds the other way round), and it keeps every deadline
/// exact in JavaScript numbers.
pub const MAX_DURATION_MS: Millis = 86_400_000;

/// How a [`Switchover`](super::Switchover) behaves. In JSON every field but
/// `sites` may be left out for its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The two sites of the pair, by name (e.g. `["a", "b"]`).
    pub sites: [String; 2],
    /// How long telephony may stay OFF before the desktop switches over (D4).
    /// `null` or 0: never switch over for this reason. Default
    /// [`DEFAULT_SITE_TIMEOUT_MS`].
    #[serde(default = "default_site_timeout")]
    pub site_timeout_ms: Option<Millis>,
    /// How long to wait for the phone after a `dr-force_logout` before
    /// switching over (D6). `null` or 0 (the default): wait for ever.
    #[serde(default)]
    pub site_sip_register_timeout_ms: Option<Millis>,
    /// The fixed part of the delay before a reconnect attempt. Default
    /// [`DEFAULT_RETRY_DELAY_MS`].
    #[serde(default = "default_retry_delay")]
    pub retry_delay_ms: Millis,
    /// The random part: each retry adds a uniform `0..=retry_jitter_ms`, and
    /// each switchover's connect is spread over `0..=retry_jitter_ms`.
    /// Default [`DEFAULT_RETRY_JITTER_MS`].
    #[serde(default = "default_retry_jitter")]
    pub retry_jitter_ms: Millis,
    /// Whether the preferred site may be cached between starts (D3). Even
    /// when true, a start with `hot_seating` does not use or update the cache.
    /// Default true.
    #[serde(default = "default_cache_preferred_site")]
    pub cache_preferred_site: bool,
}

fn default_site_timeout() -> Option<Millis> {
    Some(DEFAULT_SITE_TIMEOUT_MS)
}

fn default_retry_delay() -> Millis {
    DEFAULT_RETRY_DELAY_MS
}

fn default_retry_jitter() -> Millis {
    DEFAULT_RETRY_JITTER_MS
}

fn default_cache_preferred_site() -> bool {
    true
}

/// Why [`Options`] were refused. Each names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// A site name was empty.
    #[error("sites: a site name must not be empty")]
    EmptySiteName,
    /// Both sites had the same name.
    #[error("sites: both sites are named {0:?}; the pair needs two different names")]
    SameSites(String),
    /// `retry_delay_ms` was 0: a dead site would be retried in a tight loop.
    #[error("retry_delay_ms must be greater than 0, or a dead site is retried in a tight loop")]
    ZeroRetryDelay,
    /// A duration was above [`MAX_DURATION_MS`].
    #[error("{key} is {value} ms, above the maximum of {max} ms (one day)", max = MAX_DURATION_MS)]
    TooLong {
        /// The option's name.
        key: &'static str,
        /// Its value.
        value: Millis,
    },
    /// `site_timeout_ms` was set below `retry_delay_ms`: the site would be
    /// given up before its first retry.
    #[error(
        "site_timeout_ms ({site_timeout_ms}) must be at least retry_delay_ms ({retry_delay_ms}), \
         or the site is given up before its first retry"
    )]
    SiteTimeoutBelowRetryDelay {
        /// The configured site timeout.
        site_timeout_ms: Millis,
        /// The configured retry delay.
        retry_delay_ms: Millis,
    },
}

impl OptionsError {
    /// A stable code, the same as the JavaScript twin's `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            OptionsError::EmptySiteName => "empty_site_name",
            OptionsError::SameSites(_) => "same_sites",
            OptionsError::ZeroRetryDelay => "zero_retry_delay",
            OptionsError::TooLong { .. } => "too_long",
            OptionsError::SiteTimeoutBelowRetryDelay { .. } => "site_timeout_below_retry_delay",
        }
    }
}

impl Options {
    /// The defaults, for the two sites named `site_a` and `site_b`.
    pub fn with_defaults(site_a: &str, site_b: &str) -> Options {
        Options {
            sites: [site_a.to_owned(), site_b.to_owned()],
            site_timeout_ms: default_site_timeout(),
            site_sip_register_timeout_ms: None,
            retry_delay_ms: DEFAULT_RETRY_DELAY_MS,
            retry_jitter_ms: DEFAULT_RETRY_JITTER_MS,
            cache_preferred_site: true,
        }
    }

    /// Checks the options; [`Switchover::new`](super::Switchover::new) calls it.
    /// The checks run in a fixed order (the JavaScript twin's order), so the
    /// first fault found is the one reported.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.sites.iter().any(String::is_empty) {
            return Err(OptionsError::EmptySiteName);
        }
        if self.sites[0] == self.sites[1] {
            return Err(OptionsError::SameSites(self.sites[0].clone()));
        }
        if self.retry_delay_ms == 0 {
            return Err(OptionsError::ZeroRetryDelay);
        }
        let durations = [
            ("site_timeout_ms", self.site_timeout_ms),
            (
                "site_sip_register_timeout_ms",
                self.site_sip_register_timeout_ms,
            ),
            ("retry_delay_ms", Some(self.retry_delay_ms)),
            ("retry_jitter_ms", Some(self.retry_jitter_ms)),
        ];
        for (key, value) in durations {
            if let Some(value) = value.filter(|value| *value > MAX_DURATION_MS) {
                return Err(OptionsError::TooLong { key, value });
            }
        }
        if let Some(site_timeout_ms) = self.site_timeout() {
            if site_timeout_ms < self.retry_delay_ms {
                return Err(OptionsError::SiteTimeoutBelowRetryDelay {
                    site_timeout_ms,
                    retry_delay_ms: self.retry_delay_ms,
                });
            }
        }
        Ok(())
    }

    /// The telephony OFF deadline, if any: 0 means none (D4).
    pub(crate) fn site_timeout(&self) -> Option<Millis> {
        self.site_timeout_ms.filter(|ms| *ms > 0)
    }

    /// The wait for the phone, if bounded: 0 means unbounded (D6).
    pub(crate) fn site_sip_register_timeout(&self) -> Option<Millis> {
        self.site_sip_register_timeout_ms.filter(|ms| *ms > 0)
    }
}
