//! The aggregator channel's settings, with the defaults of SPEC M3 and M12 and
//! a `validate` whose errors name the key.

use std::net::SocketAddr;
use std::time::Duration;

use hotsite_core::config::{check_http_url, duration, Issues};
use hotsite_core::Secret;
use serde::Deserialize;

/// One HTTP channel to an aggregator (`[[channels]] kind = "http"`).
///
/// Durations are written as humantime strings (`"30s"`, `"500ms"`, `"2m"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorConfig {
    /// The channel's name, for logs, status and metrics.
    pub name: String,
    /// The aggregator's site URLs in order: `urls[0]` is the primary (SPEC M3).
    /// With one URL whose DNS record moves on failure, that is the single-URL
    /// mode of SPEC M2.
    pub urls: Vec<SiteUrl>,
    /// The account's login (form field `login`).
    pub login: String,
    /// The account's password (form field `password`). Never logged.
    pub password: Secret,
    /// Ask for a delivery receipt (`receipt=1`). Default: true.
    #[serde(default = "yes")]
    pub receipt: bool,
    /// The provider's priority, 0 to 3. Default: 0.
    #[serde(default)]
    pub priority: u8,
    /// No complete answer within this is a `timeout`. Default: 10 s.
    #[serde(default = "default_request_timeout", deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// After a failure, the same message goes to the same URL again after this
    /// (SPEC M3). Default: 30 s.
    #[serde(default = "default_resubmit_delay", deserialize_with = "duration")]
    pub resubmit_delay: Duration,
    /// How many times a message is resubmitted to a failing URL before the URL
    /// is marked down and the message goes to the next one. Default: 1.
    #[serde(default = "one")]
    pub resubmits_per_url: u32,
    /// How often a URL marked down is probed (SPEC M12). Default: 5 s.
    #[serde(default = "default_probe_interval", deserialize_with = "duration")]
    pub probe_interval: Duration,
    /// A probe with no answer within this failed. Default: 2 s.
    #[serde(default = "default_probe_timeout", deserialize_with = "duration")]
    pub probe_timeout: Duration,
    /// Consecutive good probes that bring a URL back up. Default: 2.
    #[serde(default = "two")]
    pub rise: u32,
    /// The DNS server to ask (`"127.0.0.1:5353"`, the lab's). Default: the
    /// system's resolver configuration (`/etc/resolv.conf`).
    #[serde(default)]
    pub dns_server: Option<SocketAddr>,
    /// Provider codes to treat as permanent refusals, on top of the built-in
    /// table (see [`super::answer`]). Default: none.
    #[serde(default)]
    pub permanent_codes: Vec<i64>,
    /// Provider codes to treat as "try again later" (like code 21), on top of
    /// the built-in table. Default: none.
    #[serde(default)]
    pub retry_codes: Vec<i64>,
}

/// One site's URL of the aggregator.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteUrl {
    /// The provider's site it belongs to: the `site` of an accepted message.
    pub site: String,
    /// Where messages are POSTed (`http://host:port/sms/send`).
    pub url: String,
    /// What the prober GETs; default: `url` itself. Any answer below 500 means
    /// the site is alive.
    #[serde(default)]
    pub health_url: Option<String>,
}

/// Why an [`AggregatorConfig`] or its channel was refused.
#[derive(Debug, thiserror::Error)]
pub enum AggregatorConfigError {
    /// Some keys have values out of bounds.
    #[error("{}", display_issues(.0))]
    Invalid(Vec<ConfigIssue>),
    /// No DNS server was configured and the system's configuration cannot be read.
    #[error("dns_server: not set, and the system resolver configuration cannot be read: {0}")]
    SystemResolver(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

pub use hotsite_core::ConfigIssue;

fn display_issues(issues: &[ConfigIssue]) -> String {
    ConfigIssue::join(issues, "; ")
}

/// Shortest accepted timer: anything below this is a typo (`"30"` read as a
/// unit-less zero, `"3ms"` for `"3s"`), and would hammer the provider.
const MIN_TIMER: Duration = Duration::from_millis(100);

impl AggregatorConfig {
    /// A config with every optional key at its default.
    pub fn new(name: &str, urls: Vec<SiteUrl>, login: &str, password: &str) -> AggregatorConfig {
        AggregatorConfig {
            name: name.to_owned(),
            urls,
            login: login.to_owned(),
            password: password.into(),
            receipt: true,
            priority: 0,
            request_timeout: default_request_timeout(),
            resubmit_delay: default_resubmit_delay(),
            resubmits_per_url: 1,
            probe_interval: default_probe_interval(),
            probe_timeout: default_probe_timeout(),
            rise: 2,
            dns_server: None,
            permanent_codes: Vec::new(),
            retry_codes: Vec::new(),
        }
    }

    /// Checks every key; the error lists each bad one.
    pub fn validate(&self) -> Result<(), AggregatorConfigError> {
        let mut issues = Issues::new();
        if self.name.trim().is_empty() {
            issues.add("name", "must not be empty");
        }
        if self.urls.is_empty() {
            issues.add("urls", "at least one URL is required");
        }
        for (index, site_url) in self.urls.iter().enumerate() {
            if site_url.site.trim().is_empty() {
                issues.add(&format!("urls[{index}].site"), "must not be empty");
            }
            if let Err(reason) = check_http_url(&site_url.url) {
                issues.add(&format!("urls[{index}].url"), reason);
            }
            if let Some(health_url) = &site_url.health_url {
                if let Err(reason) = check_http_url(health_url) {
                    issues.add(&format!("urls[{index}].health_url"), reason);
                }
            }
            if let Some(first) = self.urls[..index]
                .iter()
                .position(|earlier| earlier.url == site_url.url)
            {
                issues.add(
                    &format!("urls[{index}].url"),
                    format!("same as urls[{first}].url"),
                );
            }
        }
        if self.login.is_empty() {
            issues.add("login", "must not be empty");
        }
        if self.priority > 3 {
            issues.add("priority", format!("must be 0 to 3, got {}", self.priority));
        }
        issues.timer(
            "request_timeout",
            self.request_timeout,
            MIN_TIMER,
            Duration::from_secs(300),
        );
        issues.timer(
            "resubmit_delay",
            self.resubmit_delay,
            MIN_TIMER,
            Duration::from_secs(3600),
        );
        issues.timer(
            "probe_interval",
            self.probe_interval,
            MIN_TIMER,
            Duration::from_secs(3600),
        );
        issues.timer(
            "probe_timeout",
            self.probe_timeout,
            MIN_TIMER,
            Duration::from_secs(300),
        );
        if self.resubmits_per_url > 10 {
            issues.add(
                "resubmits_per_url",
                format!("must be 0 to 10, got {}", self.resubmits_per_url),
            );
        }
        if !(1..=100).contains(&self.rise) {
            issues.add("rise", format!("must be 1 to 100, got {}", self.rise));
        }
        for (key, codes) in [
            ("permanent_codes", &self.permanent_codes),
            ("retry_codes", &self.retry_codes),
        ] {
            if codes.contains(&0) {
                issues.add(key, "code 0 means accepted and cannot be overridden");
            }
        }
        for code in &self.permanent_codes {
            if self.retry_codes.contains(code) {
                issues.add(
                    "retry_codes",
                    format!("code {code} is also in permanent_codes"),
                );
            }
        }
        issues.finish().map_err(AggregatorConfigError::Invalid)
    }

    /// The `health_url` of `urls[index]`, or its `url`.
    pub(super) fn health_url(&self, index: usize) -> &str {
        let site_url = &self.urls[index];
        site_url.health_url.as_deref().unwrap_or(&site_url.url)
    }
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

fn two() -> u32 {
    2
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_resubmit_delay() -> Duration {
    Duration::from_secs(30)
}

fn default_probe_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_probe_timeout() -> Duration {
    Duration::from_secs(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(site: &str, url: &str) -> SiteUrl {
        SiteUrl {
            site: site.into(),
            url: url.into(),
            health_url: None,
        }
    }

    fn issues(config: &AggregatorConfig) -> Vec<String> {
        match config.validate() {
            Ok(()) => Vec::new(),
            Err(AggregatorConfigError::Invalid(issues)) => {
                issues.iter().map(ToString::to_string).collect()
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        let config = AggregatorConfig::new(
            "agg",
            vec![site("a", "http://a.example/sms/send")],
            "user",
            "secret",
        );
        assert_eq!(issues(&config), Vec::<String>::new());
        assert_eq!(config.resubmit_delay, Duration::from_secs(30));
        assert_eq!(config.probe_interval, Duration::from_secs(5));
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn errors_name_the_key() {
        let mut config = AggregatorConfig::new(
            "agg",
            vec![
                site("a", "http://a.example/sms/send"),
                site("b", "ftp://b.example/"),
                site("", "http://a.example/sms/send"),
            ],
            "user",
            "secret",
        );
        config.urls[0].health_url = Some("nope".into());
        config.priority = 5;
        config.resubmit_delay = Duration::from_millis(5);
        config.rise = 0;
        config.permanent_codes = vec![0, 21];
        config.retry_codes = vec![21];
        assert_eq!(
            issues(&config),
            [
                "urls[0].health_url: not an http(s) URL: \"nope\"",
                "urls[1].url: not an http(s) URL: \"ftp://b.example/\"",
                "urls[2].site: must not be empty",
                "urls[2].url: same as urls[0].url",
                "priority: must be 0 to 3, got 5",
                "resubmit_delay: must be at least 100ms, got 5ms",
                "rise: must be 1 to 100, got 0",
                "permanent_codes: code 0 means accepted and cannot be overridden",
                "retry_codes: code 21 is also in permanent_codes",
            ]
        );
    }

    #[test]
    fn deserializes_with_defaults_and_humantime_durations() {
        let config: AggregatorConfig = serde_json::from_str(
            r#"{
                "name": "agg",
                "urls": [{"site": "a", "url": "http://a.example/sms/send"},
                         {"site": "b", "url": "http://b.example/sms/send",
                          "health_url": "http://b.example/health"}],
                "login": "user", "password": "secret",
                "resubmit_delay": "500ms", "dns_server": "127.0.0.1:5353"
            }"#,
        )
        .unwrap();
        assert_eq!(config.resubmit_delay, Duration::from_millis(500));
        assert_eq!(config.request_timeout, Duration::from_secs(10));
        assert!(config.receipt);
        assert_eq!(config.resubmits_per_url, 1);
        assert_eq!(config.dns_server, Some("127.0.0.1:5353".parse().unwrap()));
        assert_eq!(config.health_url(1), "http://b.example/health");
        assert_eq!(config.health_url(0), "http://a.example/sms/send");
        let error = serde_json::from_str::<AggregatorConfig>(
            r#"{"name": "agg", "urls": [], "login": "u", "password": "p", "probe_interval": "5"}"#,
        )
        .unwrap_err();
        assert!(error.to_string().contains("is not a duration"), "{error}");
    }
}
