//! The `[site]` section of `hotsite.toml`: this site's name and, when
//! `listen` is set, business continuity: its SIP address, its peer, its DNs
//! and agents, and the options (SPEC S1–S8). Without `listen` the section is
//! only the site's name (messaging and voice read it) and no site system runs.
//!
//! ```toml
//! [site]
//! name = "a"                         # this site, as events and the peer see it
//! listen = "10.0.0.5:5070"           # SIP (UDP) for phones, gateways and the peer
//! domain = "cc.example"              # digest realm and the phones' domain
//! dr_peer_trunk = "10.1.0.5:5070"    # the peer site; unset = single-site mode (S6)
//! dr_forward = "off"                 # off | no-agent | oos (S6)
//! oos_check = "2s"                   # OPTIONS to the peer this often (S4)
//! oos_force = "6s"                   # no answer this long: peer out of service (S4)
//! peer_rise = 2                      # answered probes before peering again
//! shutdown_sip_reject_code = 603     # drain: new INVITEs get this; 300-302 → 302 (S7)
//! drain_timeout = "10m"              # drain: stop even with calls left after this
//!
//! [[site.dns]]
//! dn = "1001"
//! password = "a secret for the phone's digest"
//! dr_forward = "oos"                 # overrides the site default
//!
//! [[site.agents]]
//! id = "alice"
//! ```
//!
//! The platform's option names are kept with `_` for `-` (`dr-forward` is
//! `dr_forward`), as every other key of `hotsite.toml`. Serde rejects unknown
//! keys; [`SiteConfig::validate`] checks values and cross references, every
//! error naming its key.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use hotsite_core::config::{duration, parse_socket_addr, ConfigIssue, Issues};
use hotsite_core::Secret;
use serde::Deserialize;

/// When a call for a DN goes to the peer site instead of this site's phone
/// (SPEC S6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DrForward {
    /// Never: deliver locally (the default).
    #[default]
    Off,
    /// When no agent is logged in on the DN at this site.
    NoAgent,
    /// When the DN's phone is out of service at this site (no registration).
    Oos,
}

impl DrForward {
    /// As written in config and shown in status.
    pub fn as_str(self) -> &'static str {
        match self {
            DrForward::Off => "off",
            DrForward::NoAgent => "no-agent",
            DrForward::Oos => "oos",
        }
    }
}

/// The `[site]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// This site's name (events, status, the header on forwarded calls).
    pub name: String,
    /// The SIP address (UDP) phones register at and calls for DNs arrive at.
    /// Unset: no business continuity at this site (the other keys must then
    /// be unset too).
    #[serde(default)]
    pub listen: Option<String>,
    /// Written into Via, Record-Route and Contact: `ip:port`. Default: `listen`
    /// (which must then name a specific IP).
    #[serde(default)]
    pub public_address: Option<String>,
    /// The phones' SIP domain and the digest realm. Default: `hotsite`.
    #[serde(default = "default_domain")]
    pub domain: String,
    /// The peer site's SIP address, `ip:port` (the inter-site trunk). Unset:
    /// single-site mode, nothing is ever forwarded (SPEC S6).
    #[serde(default)]
    pub dr_peer_trunk: Option<String>,
    /// The site default of `dr-forward` (SPEC S6). Default: `off`.
    #[serde(default)]
    pub dr_forward: DrForward,
    /// How often the peer is probed with OPTIONS (SPEC S4). 100 ms to 60 s.
    /// Default: 2 s.
    #[serde(default = "default_oos_check", deserialize_with = "duration")]
    pub oos_check: Duration,
    /// The peer is out of service after this long without an answer (SPEC
    /// S4). At least `oos_check`, at most 10 min. Default: 6 s.
    #[serde(default = "default_oos_force", deserialize_with = "duration")]
    pub oos_force: Duration,
    /// Consecutive answered probes before a peer out of service is peered
    /// with again. 1 to 100. Default: 2.
    #[serde(default = "default_peer_rise")]
    pub peer_rise: u32,
    /// What new INVITEs get while the site drains (SPEC S7): 300–302 is
    /// answered `302` with the peer trunk as Contact, anything else in
    /// 400–699 as it is. Default: 603.
    #[serde(default = "default_reject_code")]
    pub shutdown_sip_reject_code: u16,
    /// A drain stops the site after this even if calls are left. 1 s to 24 h.
    /// Default: 10 min.
    #[serde(default = "default_drain_timeout", deserialize_with = "duration")]
    pub drain_timeout: Duration,
    /// Shortest registration accepted; shorter gets `423` (RFC 3261 §10.3).
    /// Default: 10 s.
    #[serde(default = "default_min_expires", deserialize_with = "duration")]
    pub min_expires: Duration,
    /// Longest registration granted (longer is cut to this). Default: 1 h.
    #[serde(default = "default_max_expires", deserialize_with = "duration")]
    pub max_expires: Duration,
    /// A phone (or the peer) that sends no reply at all to an INVITE within
    /// this: the next contact, or the caller gets 408. Default: 2 s.
    #[serde(default = "default_invite_timeout", deserialize_with = "duration")]
    pub invite_timeout: Duration,
    /// After a provisional, how long a call may ring before it is cancelled
    /// and the caller gets 408. Default: 60 s.
    #[serde(default = "default_ring_timeout", deserialize_with = "duration")]
    pub ring_timeout: Duration,
    /// After-call work: an agent whose call ended is `after_call_work` for
    /// this long before Ready again. Default: 0 (none).
    #[serde(default, deserialize_with = "duration")]
    pub wrap_up: Duration,
    /// Calls held at once; beyond, new INVITEs get 503 with Retry-After
    /// (DESIGN.md invariant 6). 1 to 1,000,000. Default: 10,000.
    #[serde(default = "default_max_calls")]
    pub max_calls: usize,
    /// The DNs (agents' extensions) this site serves.
    #[serde(default)]
    pub dns: Vec<DnConfig>,
    /// The agents who may log in here.
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
}

/// One DN (`[[site.dns]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnConfig {
    /// The number: digits, `*`, `#`, `+` (the user part of its address).
    pub dn: String,
    /// The phone's digest password (at least 8 characters). Never logged.
    pub password: Secret,
    /// Overrides the site's `dr_forward` for this DN (SPEC S6).
    #[serde(default)]
    pub dr_forward: Option<DrForward>,
}

/// One agent (`[[site.agents]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent's id (login name).
    pub id: String,
}

/// Why a `[site]` section was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", ConfigIssue::join(.0, "; "))]
pub struct SiteConfigError(pub Vec<ConfigIssue>);

fn default_domain() -> String {
    "hotsite".to_owned()
}
fn default_oos_check() -> Duration {
    Duration::from_secs(2)
}
fn default_oos_force() -> Duration {
    Duration::from_secs(6)
}
fn default_peer_rise() -> u32 {
    2
}
fn default_reject_code() -> u16 {
    603
}
fn default_drain_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_min_expires() -> Duration {
    Duration::from_secs(10)
}
fn default_max_expires() -> Duration {
    Duration::from_secs(3600)
}
fn default_invite_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_ring_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_max_calls() -> usize {
    10_000
}

/// Most DNs and agents one site takes (each DN keeps at most
/// [`crate::registrar::MAX_BINDINGS`] bindings).
pub const MAX_ENTRIES: usize = 100_000;

impl SiteConfig {
    /// A section with every optional key at its default; for tests and examples.
    pub fn new(name: &str, listen: &str) -> SiteConfig {
        SiteConfig {
            name: name.to_owned(),
            listen: Some(listen.to_owned()),
            public_address: None,
            domain: default_domain(),
            dr_peer_trunk: None,
            dr_forward: DrForward::Off,
            oos_check: default_oos_check(),
            oos_force: default_oos_force(),
            peer_rise: default_peer_rise(),
            shutdown_sip_reject_code: default_reject_code(),
            drain_timeout: default_drain_timeout(),
            min_expires: default_min_expires(),
            max_expires: default_max_expires(),
            invite_timeout: default_invite_timeout(),
            ring_timeout: default_ring_timeout(),
            wrap_up: Duration::ZERO,
            max_calls: default_max_calls(),
            dns: Vec::new(),
            agents: Vec::new(),
        }
    }

    /// Whether business continuity runs at this site (`listen` is set).
    pub fn enabled(&self) -> bool {
        self.listen.is_some()
    }

    /// The address bound.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        match &self.listen {
            Some(listen) => parse_socket_addr(listen),
            None => Err("site.listen is not set".to_owned()),
        }
    }

    /// The address written into our messages.
    pub fn public_addr(&self) -> Result<SocketAddr, String> {
        match &self.public_address {
            Some(public) => parse_socket_addr(public),
            None => self.listen_addr(),
        }
    }

    /// The peer trunk's address, if one is configured.
    pub fn peer_addr(&self) -> Option<Result<SocketAddr, String>> {
        self.dr_peer_trunk.as_deref().map(parse_socket_addr)
    }

    /// Checks every key; the error lists each bad one.
    pub fn validate(&self) -> Result<(), SiteConfigError> {
        let mut issues = Issues::new();
        if !self.enabled() {
            if !self.dns.is_empty() || !self.agents.is_empty() || self.dr_peer_trunk.is_some() {
                issues.add(
                    "site.listen",
                    "required when site.dns, site.agents or site.dr_peer_trunk are set: \
                     the SIP address phones, gateways and the peer reach this site at",
                );
            }
            return issues.finish().map_err(SiteConfigError);
        }
        if !is_token(&self.name) {
            issues.add(
                "site.name",
                format!(
                    "{:?} must be 1 to 32 letters, digits, '-' or '_'",
                    self.name
                ),
            );
        }
        let listen = issues.check("site.listen", self.listen_addr());
        if let Some(public) = &self.public_address {
            match parse_socket_addr(public) {
                Err(reason) => issues.add("site.public_address", reason),
                Ok(addr) if addr.ip().is_unspecified() || addr.port() == 0 => issues.add(
                    "site.public_address",
                    format!("{public:?} must name a specific IP and port"),
                ),
                Ok(_) => {}
            }
        } else if listen.is_some_and(|addr| addr.ip().is_unspecified() || addr.port() == 0) {
            issues.add(
                "site.public_address",
                format!(
                    "required when site.listen ({}) is not a specific address and port: \
                     phones and the peer must be told where to reach this site",
                    self.listen.as_deref().unwrap_or_default()
                ),
            );
        }
        if self.domain.is_empty()
            || !self
                .domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        {
            issues.add(
                "site.domain",
                format!(
                    "{:?} must be a host name (letters, digits, '-', '.')",
                    self.domain
                ),
            );
        }
        if let Some(Err(reason)) = self.peer_addr() {
            issues.add("site.dr_peer_trunk", reason);
        }
        if let (Some(Ok(peer)), Ok(public)) = (self.peer_addr(), self.public_addr()) {
            if peer == public {
                issues.add(
                    "site.dr_peer_trunk",
                    format!("{peer} is this site's own address: calls would loop"),
                );
            }
        }
        issues.timer(
            "site.oos_check",
            self.oos_check,
            Duration::from_millis(100),
            Duration::from_secs(60),
        );
        issues.timer(
            "site.oos_force",
            self.oos_force,
            self.oos_check,
            Duration::from_secs(600),
        );
        if !(1..=100).contains(&self.peer_rise) {
            issues.add(
                "site.peer_rise",
                format!("must be 1 to 100, got {}", self.peer_rise),
            );
        }
        if !(300..=302).contains(&self.shutdown_sip_reject_code)
            && !(400..=699).contains(&self.shutdown_sip_reject_code)
        {
            issues.add(
                "site.shutdown_sip_reject_code",
                format!(
                    "must be 300 to 302 (redirect to the peer) or 400 to 699, got {}",
                    self.shutdown_sip_reject_code
                ),
            );
        }
        if (300..=302).contains(&self.shutdown_sip_reject_code) && self.dr_peer_trunk.is_none() {
            issues.add(
                "site.shutdown_sip_reject_code",
                "a redirect (300-302) needs site.dr_peer_trunk to redirect to",
            );
        }
        issues.timer(
            "site.drain_timeout",
            self.drain_timeout,
            Duration::from_secs(1),
            Duration::from_secs(86_400),
        );
        issues.timer(
            "site.min_expires",
            self.min_expires,
            Duration::from_secs(1),
            Duration::from_secs(3600),
        );
        issues.timer(
            "site.max_expires",
            self.max_expires,
            self.min_expires,
            Duration::from_secs(86_400),
        );
        issues.timer(
            "site.invite_timeout",
            self.invite_timeout,
            Duration::from_millis(100),
            Duration::from_secs(32),
        );
        issues.timer(
            "site.ring_timeout",
            self.ring_timeout,
            self.invite_timeout,
            Duration::from_secs(3600),
        );
        if self.wrap_up > Duration::from_secs(3600) {
            issues.add("site.wrap_up", "must be at most 1 h");
        }
        if !(1..=1_000_000).contains(&self.max_calls) {
            issues.add(
                "site.max_calls",
                format!("must be 1 to 1000000, got {}", self.max_calls),
            );
        }
        if self.dns.len() > MAX_ENTRIES || self.agents.len() > MAX_ENTRIES {
            issues.add(
                "site.dns",
                format!("at most {MAX_ENTRIES} DNs and {MAX_ENTRIES} agents"),
            );
        }
        let mut seen = HashSet::new();
        for (i, dn) in self.dns.iter().enumerate() {
            let key = format!("site.dns[{i}]");
            if dn.dn.is_empty()
                || dn.dn.len() > 32
                || !dn
                    .dn
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"*#+".contains(&b))
            {
                issues.add(
                    &format!("{key}.dn"),
                    format!("{:?} must be 1 to 32 digits, '*', '#' or '+'", dn.dn),
                );
            }
            if !seen.insert(dn.dn.as_str()) {
                issues.add(&format!("{key}.dn"), format!("{} is listed twice", dn.dn));
            }
            issues.secret(
                &format!("{key}.password"),
                &dn.password,
                8,
                "the phone's digest password",
            );
        }
        let mut seen = HashSet::new();
        for (i, agent) in self.agents.iter().enumerate() {
            let key = format!("site.agents[{i}].id");
            if !is_token(&agent.id) {
                issues.add(
                    &key,
                    format!("{:?} must be 1 to 32 letters, digits, '-' or '_'", agent.id),
                );
            }
            if !seen.insert(agent.id.as_str()) {
                issues.add(&key, format!("{} is listed twice", agent.id));
            }
        }
        issues.finish().map_err(SiteConfigError)
    }
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests;
