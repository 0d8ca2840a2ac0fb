//! The `[desktop]` section of `hotsite.toml`: the desktop service (SPEC
//! D1–D6) on the host's listener.
//!
//! ```toml
//! [desktop]
//! applications = ["hotsite-web-desktop", "hotsite-desktops"]  # default
//! max_connections = 10000                                     # default
//! hello_timeout = "10s"                                       # default
//! idle_timeout = "60s"                                        # default
//!
//! [[desktop.sites]]                   # both sites of the pair
//! name = "a"
//! url = "ws://10.0.0.5:8080/v1/desktop"
//!
//! [[desktop.sites]]
//! name = "b"
//! url = "ws://10.1.0.5:8080/v1/desktop"
//!
//! [[desktop.people]]
//! user = "alice"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$..."   # hotsite desktop hash-password
//! agent = "alice"                     # in [[site.agents]]
//! dn = "1001"                         # in [[site.dns]]
//! preferred_site = "a"
//! secondary_site = "b"
//! ```
//!
//! Serde rejects unknown keys; [`DesktopConfig::validate`] checks values and
//! cross references (sites, agents, DNs), every error naming its key.

use std::collections::HashSet;
use std::time::Duration;

use hotsite_core::config::{duration, ConfigIssue, Issues};
use hotsite_site::SiteConfig;
use serde::Deserialize;

use super::password;

/// The `[desktop]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesktopConfig {
    /// Application names a desktop may say in `hello` (D1). Default:
    /// `["hotsite-web-desktop", "hotsite-desktops"]`.
    #[serde(default = "default_applications")]
    pub applications: Vec<String>,
    /// Desktop connections open at once; beyond, the upgrade gets 503 with
    /// Retry-After (DESIGN.md invariant 6). 1 to 1,000,000. Default: 10,000.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Time from the upgrade to a successful `hello`. 1 s to 5 min. Default: 10 s.
    #[serde(default = "default_hello_timeout", deserialize_with = "duration")]
    pub hello_timeout: Duration,
    /// A connection without a frame this long is closed (clients ping every
    /// 5 s). 10 s to 1 h. Default: 60 s.
    #[serde(default = "default_idle_timeout", deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// The key of session tokens (`session.rs`): the same at both sites, so
    /// that a desktop switching over says `hello` with its token instead of
    /// its password. At least 32 characters. Unset: each site makes one at
    /// start, and tokens work only at the site that issued them.
    #[serde(default)]
    pub session_key: Option<hotsite_core::Secret>,
    /// How long a session token is good for. 1 min to 7 days. Default: 12 h.
    #[serde(default = "default_session_ttl", deserialize_with = "duration")]
    pub session_ttl: Duration,
    /// Both sites of the pair and their desktop endpoints (D1).
    #[serde(default)]
    pub sites: Vec<SiteEntry>,
    /// The people who may sign in, each with an agent, a DN and sites (D2).
    #[serde(default)]
    pub people: Vec<Person>,
}

/// One site (`[[desktop.sites]]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SiteEntry {
    /// The site's name, as in its `[site] name`.
    pub name: String,
    /// Its desktop endpoint: `ws://` or `wss://…/v1/desktop`.
    pub url: String,
}

/// One person (`[[desktop.people]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// The user name said in `hello`.
    pub user: String,
    /// The password as an Argon2id PHC string (`hotsite desktop
    /// hash-password`); never the password itself.
    pub password_hash: String,
    /// The agent the person logs in as (in `[[site.agents]]`).
    pub agent: String,
    /// The person's DN (in `[[site.dns]]`).
    pub dn: String,
    /// The site the person works at when it is up (D2).
    pub preferred_site: String,
    /// The other site.
    pub secondary_site: String,
}

/// Why a `[desktop]` section was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", ConfigIssue::join(.0, "; "))]
pub struct DesktopConfigError(pub Vec<ConfigIssue>);

fn default_applications() -> Vec<String> {
    vec![
        "hotsite-web-desktop".to_owned(),
        "hotsite-desktops".to_owned(),
    ]
}
fn default_max_connections() -> usize {
    10_000
}
fn default_hello_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_session_ttl() -> Duration {
    Duration::from_secs(12 * 3600)
}

/// The shortest `desktop.session_key`: 256 bits of text.
pub const MIN_SESSION_KEY: usize = 32;

/// Most desktop connections a site takes (each holds a socket and a task).
pub const MAX_CONNECTIONS: usize = 1_000_000;

impl DesktopConfig {
    /// A section with every optional key at its default and no sites or
    /// people; for tests.
    pub fn new() -> DesktopConfig {
        DesktopConfig {
            applications: default_applications(),
            max_connections: default_max_connections(),
            hello_timeout: default_hello_timeout(),
            idle_timeout: default_idle_timeout(),
            session_key: None,
            session_ttl: default_session_ttl(),
            sites: Vec::new(),
            people: Vec::new(),
        }
    }

    /// The person signing in as `user`.
    pub fn person(&self, user: &str) -> Option<&Person> {
        self.people.iter().find(|person| person.user == user)
    }

    /// Checks every key against itself and against `[site]` (this site's
    /// name, its agents and DNs); the error lists each bad one.
    pub fn validate(&self, site: &SiteConfig) -> Result<(), DesktopConfigError> {
        let mut issues = Issues::new();
        if !site.enabled() {
            issues.add(
                "desktop",
                "requires business continuity at this site (site.listen, [[site.agents]], \
                 [[site.dns]]): desktops log agents in there",
            );
        }
        if self.applications.is_empty() {
            issues.add(
                "desktop.applications",
                "list at least one application name desktops may use",
            );
        }
        let mut seen = HashSet::new();
        for (i, name) in self.applications.iter().enumerate() {
            if name.trim().is_empty() || name.len() > 64 {
                issues.add(
                    &format!("desktop.applications[{i}]"),
                    "must be 1 to 64 characters",
                );
            } else if !seen.insert(name.as_str()) {
                issues.add(
                    &format!("desktop.applications[{i}]"),
                    format!("{name:?} is listed twice"),
                );
            }
        }
        if self.max_connections == 0 || self.max_connections > MAX_CONNECTIONS {
            issues.add(
                "desktop.max_connections",
                format!("{} must be 1 to {MAX_CONNECTIONS}", self.max_connections),
            );
        }
        issues.timer(
            "desktop.hello_timeout",
            self.hello_timeout,
            Duration::from_secs(1),
            Duration::from_secs(300),
        );
        issues.timer(
            "desktop.idle_timeout",
            self.idle_timeout,
            Duration::from_secs(10),
            Duration::from_secs(3600),
        );
        issues.timer(
            "desktop.session_ttl",
            self.session_ttl,
            Duration::from_secs(60),
            Duration::from_secs(7 * 24 * 3600),
        );
        if let Some(key) = &self.session_key {
            if key.expose().len() < MIN_SESSION_KEY {
                issues.add(
                    "desktop.session_key",
                    format!(
                        "must be at least {MIN_SESSION_KEY} bytes (it signs session tokens; use the same key at both sites)"
                    ),
                );
            }
        }
        self.validate_sites(site, &mut issues);
        self.validate_people(site, &mut issues);
        issues.finish().map_err(DesktopConfigError)
    }

    fn validate_sites(&self, site: &SiteConfig, issues: &mut Issues) {
        if self.sites.len() != 2 {
            issues.add(
                "desktop.sites",
                format!(
                    "list both sites of the pair, each with name and url ({} listed)",
                    self.sites.len()
                ),
            );
        }
        for (i, entry) in self.sites.iter().enumerate() {
            let key = format!("desktop.sites[{i}]");
            if entry.name.trim().is_empty() {
                issues.add(&format!("{key}.name"), "must not be empty");
            } else if self.sites[..i].iter().any(|other| other.name == entry.name) {
                issues.add(
                    &format!("{key}.name"),
                    format!("{:?} is listed twice", entry.name),
                );
            }
            match url::Url::parse(&entry.url) {
                Ok(url) if matches!(url.scheme(), "ws" | "wss") && url.host().is_some() => {}
                _ => issues.add(
                    &format!("{key}.url"),
                    format!(
                        "{:?} is not a ws:// or wss:// URL (e.g. ws://10.0.0.5:8080/v1/desktop)",
                        entry.url
                    ),
                ),
            }
        }
        if self.sites.len() == 2 && !self.sites.iter().any(|entry| entry.name == site.name) {
            issues.add(
                "desktop.sites",
                format!(
                    "this site ({:?}, site.name) must be one of the two",
                    site.name
                ),
            );
        }
    }

    fn validate_people(&self, site: &SiteConfig, issues: &mut Issues) {
        let agents: HashSet<&str> = site.agents.iter().map(|a| a.id.as_str()).collect();
        let dns: HashSet<&str> = site.dns.iter().map(|d| d.dn.as_str()).collect();
        let sites: HashSet<&str> = self.sites.iter().map(|s| s.name.as_str()).collect();
        let mut users = HashSet::new();
        for (i, person) in self.people.iter().enumerate() {
            let key = format!("desktop.people[{i}]");
            if person.user.trim().is_empty() || person.user.len() > 128 {
                issues.add(&format!("{key}.user"), "must be 1 to 128 characters");
            } else if !users.insert(person.user.as_str()) {
                issues.add(
                    &format!("{key}.user"),
                    format!("{:?} is listed twice", person.user),
                );
            }
            if let Err(reason) = password::check_phc(&person.password_hash) {
                issues.add(&format!("{key}.password_hash"), reason);
            }
            if !agents.contains(person.agent.as_str()) {
                issues.add(
                    &format!("{key}.agent"),
                    format!("{:?} is not in [[site.agents]]", person.agent),
                );
            }
            if !dns.contains(person.dn.as_str()) {
                issues.add(
                    &format!("{key}.dn"),
                    format!("{:?} is not in [[site.dns]]", person.dn),
                );
            }
            for (field, name) in [
                ("preferred_site", &person.preferred_site),
                ("secondary_site", &person.secondary_site),
            ] {
                if !sites.contains(name.as_str()) {
                    issues.add(
                        &format!("{key}.{field}"),
                        format!("{name:?} is not in [[desktop.sites]]"),
                    );
                }
            }
            if person.preferred_site == person.secondary_site {
                issues.add(
                    &format!("{key}.secondary_site"),
                    "must differ from preferred_site",
                );
            }
        }
    }
}

impl Default for DesktopConfig {
    fn default() -> Self {
        DesktopConfig::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

    fn site() -> SiteConfig {
        toml::from_str(
            r#"
            name = "a"
            listen = "127.0.0.1:5070"
            dns = [{ dn = "1001", password = "phone-secret" }]
            agents = [{ id = "alice" }]
            "#,
        )
        .unwrap()
    }

    fn desktop(text: &str) -> Result<DesktopConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[track_caller]
    fn check(text: &str, expected: &[&str]) {
        let config = desktop(text).unwrap();
        let keys: Vec<String> = match config.validate(&site()) {
            Ok(()) => Vec::new(),
            Err(error) => error.0.iter().map(|issue| issue.to_string()).collect(),
        };
        assert_eq!(keys.len(), expected.len(), "{keys:#?}");
        for (issue, wanted) in keys.iter().zip(expected) {
            assert!(
                issue.contains(wanted),
                "{issue:?} should contain {wanted:?}"
            );
        }
    }

    fn valid() -> String {
        format!(
            r#"
            sites = [{{ name = "a", url = "ws://127.0.0.1:8080/v1/desktop" }},
                     {{ name = "b", url = "wss://b.example/v1/desktop" }}]
            [[people]]
            user = "alice"
            password_hash = "{HASH}"
            agent = "alice"
            dn = "1001"
            preferred_site = "a"
            secondary_site = "b"
            "#
        )
    }

    /// SPEC D1, D2: the defaults, and a valid section.
    #[test]
    fn defaults_and_a_valid_section() {
        check(&valid(), &[]);
        let config = desktop(&valid()).unwrap();
        assert_eq!(
            config.applications,
            ["hotsite-web-desktop", "hotsite-desktops"]
        );
        assert_eq!(config.max_connections, 10_000);
        assert_eq!(config.hello_timeout, Duration::from_secs(10));
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.person("alice").unwrap().dn, "1001");
        assert!(config.person("bob").is_none());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = desktop("max_conections = 5").unwrap_err();
        assert!(error.contains("max_conections"), "{error}");
        let error = desktop(&valid().replace("user = ", "usr = ")).unwrap_err();
        assert!(error.contains("usr"), "{error}");
    }

    /// Every error names its key (DESIGN.md, config).
    #[test]
    fn bad_values_name_their_keys() {
        check(
            &format!("applications = []\nmax_connections = 0\nhello_timeout = \"0s\"\nidle_timeout = \"2h\"\nsession_key = \"short\"\nsession_ttl = \"30d\"\n{}", valid()),
            &[
                "desktop.applications:",
                "desktop.max_connections:",
                "desktop.hello_timeout:",
                "desktop.idle_timeout:",
                "desktop.session_ttl:",
                "desktop.session_key: must be at least 32 bytes",
            ],
        );
        check(
            &valid().replace("ws://127.0.0.1:8080/v1/desktop", "http://x/"),
            &["desktop.sites[0].url:"],
        );
        check(
            &valid().replace(r#"name = "a""#, r#"name = "c""#),
            &[
                "desktop.sites: this site (\"a\"",
                "desktop.people[0].preferred_site: \"a\" is not in [[desktop.sites]]",
            ],
        );
        check(
            &valid()
                .replace(HASH, "hunter2")
                .replace(r#"agent = "alice""#, r#"agent = "bob""#)
                .replace(r#"dn = "1001""#, r#"dn = "1009""#)
                .replace(r#"secondary_site = "b""#, r#"secondary_site = "a""#),
            &[
                "desktop.people[0].password_hash: not a PHC string",
                "desktop.people[0].agent: \"bob\" is not in [[site.agents]]",
                "desktop.people[0].dn: \"1009\" is not in [[site.dns]]",
                "desktop.people[0].secondary_site: must differ",
            ],
        );
        let twice = format!(
            "{}{}",
            valid(),
            valid()
                .split("[[people]]")
                .nth(1)
                .map(|p| format!("[[people]]{p}"))
                .unwrap()
        );
        check(
            &twice,
            &["desktop.people[1].user: \"alice\" is listed twice"],
        );
    }

    #[test]
    fn the_pair_needs_both_sites_and_business_continuity() {
        check("", &["desktop.sites: list both sites of the pair"]);
        let mut without = site();
        without.listen = None;
        without.dns.clear();
        without.agents.clear();
        let error = DesktopConfig::new().validate(&without).unwrap_err();
        assert!(
            error.0[0]
                .to_string()
                .starts_with("desktop: requires business continuity"),
            "{error}"
        );
    }
}
