//! The `[voice]` section of `hotsite.toml`: the proxy's address, its trunks and
//! trunk groups, and its timers (SPEC V1–V4).
//!
//! ```toml
//! [voice]
//! listen = "0.0.0.0:5060"
//! public_address = "203.0.113.5:5060"   # Via and Record-Route; default: listen
//! invite_timeout = "2s"                 # no reply at all → next trunk (SPEC V1)
//! invite_final_timeout = "120s"         # after a provisional: ring time
//! max_calls = 10000                     # calls held at once; beyond: 503 (DESIGN.md inv. 6)
//! retry_after = "5s"                    # the Retry-After of that 503
//!
//! [[voice.trunks]]
//! name = "carrier-a-1"
//! carrier = "carrier-a"
//! address = "192.0.2.10:5060"
//! priority = 10
//! media_region = "eu-west"
//! failover_region = "eu-central"
//! probe = { interval = "5s", fall = 3, rise = 2 }
//!
//! [[voice.groups]]
//! name = "pstn"
//! trunks = ["carrier-a-1", "carrier-b-1"]
//! distribution = "sequential"
//! media = "anchor"                      # RTP through hotsite (default "direct")
//!
//! [voice.media]                         # used by groups with media = "anchor"
//! address = "203.0.113.5"               # bound and written into SDP; default: public_address's IP
//! ports = "30000-39999"                 # RTP on even ports, RTCP on the next
//! timeout = "60s"                       # no RTP from either leg of an answered call
//! hold_timeout = "2h"                   # the same while on hold (SDP sendonly/inactive)
//! relatch_after = "500ms"               # a silent source may be replaced by a new one
//! strict_source = true                  # only the SDP's IP may (re-)latch; false behind NATs
//! ```
//!
//! Durations are humantime strings (`"2s"`, `"500ms"`). Serde rejects unknown
//! keys and bad types; [`VoiceConfig::validate`] checks values and cross
//! references, and every error names its key (`voice.trunks[1].address: "x" is
//! not ip:port`). [`VoiceConfig::proxy_config`] turns a valid section into the
//! typed [`ProxyConfig`] the proxy core takes, which has no serde in it.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hotsite_core::config::{duration, parse_socket_addr as parse_addr, Issues};
use hotsite_core::Secret;
use hotsite_sip::message::Uri;
use serde::Deserialize;

use crate::media::{MediaSetup, RelayTimers};
use crate::proxy::{
    GroupSetup, MediaMode, ProbeSetup, ProxyConfig, RegisterSetup, Transport, TrunkSetup,
    INITIAL_CAPACITY,
};
use crate::routing::{Distribution, TrunkSpec};

/// The `[voice]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceConfig {
    /// The address the proxy binds, for UDP and TCP alike. Default:
    /// `0.0.0.0:5060`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The address written into Via and Record-Route, and where trunks and
    /// callers send to: `ip:port`. Default: `listen` (which must then name a
    /// specific IP, not `0.0.0.0`).
    #[serde(default)]
    pub public_address: Option<String>,
    /// No reply at all (not even 100) from a trunk within this → the next trunk
    /// of the plan, and the trunk is marked out of service (SPEC V1, V2).
    /// Kamailio's `fr_timer`. Default: 2 s.
    #[serde(default = "default_invite_timeout", deserialize_with = "duration")]
    pub invite_timeout: Duration,
    /// After a provisional answer, how long to wait for the final one before
    /// cancelling the branch and answering 408 (ring time; never marks the
    /// trunk). Kamailio's `fr_inv_timer`. Default: 120 s.
    #[serde(
        default = "default_invite_final_timeout",
        deserialize_with = "duration"
    )]
    pub invite_final_timeout: Duration,
    /// RFC 3261 T1, the first retransmission interval over UDP. Default: 500 ms.
    #[serde(default = "default_t1", deserialize_with = "duration")]
    pub t1: Duration,
    /// How long a passive mark (an unanswered INVITE) keeps a trunk *without a
    /// prober* out of service; probed trunks come back when their prober sees
    /// them. Default: 30 s.
    #[serde(default = "default_passive_hold", deserialize_with = "duration")]
    pub passive_hold: Duration,
    /// Calls the proxy holds state for at once: from the INVITE until its
    /// transaction ends (for a call answered with an error, until the
    /// caller's ACK, plus timer I over UDP). An INVITE beyond this is answered
    /// `503 Service Unavailable` with `Retry-After` at once and leaves no
    /// state (DESIGN.md invariant 6: a flood must not grow the proxy without
    /// bound). 1 to 1,000,000. Default: 10,000.
    #[serde(default = "default_max_calls")]
    pub max_calls: usize,
    /// The `Retry-After` of that 503: when the caller may try again. Whole
    /// seconds, 1 s to 1 h. Default: 5 s.
    #[serde(default = "default_retry_after", deserialize_with = "duration")]
    pub retry_after: Duration,
    /// The group for calls that match no group's `prefixes`. Default: the
    /// first group.
    #[serde(default)]
    pub default_group: Option<String>,
    /// The trunks (at least one).
    pub trunks: Vec<TrunkConfig>,
    /// The trunk groups. Default: one group `default` with every trunk,
    /// sequential.
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
    /// The media relay for groups with `media = "anchor"`.
    #[serde(default)]
    pub media: MediaConfig,
}

/// `[voice.media]`: the media relay of groups with `media = "anchor"`
/// (`crate::media`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// The IP the media ports are bound to and every anchored SDP names
    /// (`c=`). Default: the IP of `public_address`, else of `listen`.
    #[serde(default)]
    pub address: Option<String>,
    /// The port range, `"first-last"`: each call takes two pairs per stream
    /// (RTP on an even port, RTCP on the next), so N ports carry N/4
    /// single-stream calls. Default: `"30000-39999"`.
    #[serde(default = "default_media_ports")]
    pub ports: String,
    /// No RTP from either leg of an answered call for this → its media is
    /// released (the signalling is left alone). 1 s to 24 h. Default: 60 s.
    #[serde(default = "default_media_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// The same while the call is on hold (SDP `sendonly`/`inactive`; SPEC
    /// R5). At least `timeout`, at most 7 days. Default: 2 h.
    #[serde(default = "default_hold_timeout", deserialize_with = "duration")]
    pub hold_timeout: Duration,
    /// A far end's source silent this long may be replaced by a new one
    /// (a media server's handover: another port, new SSRC). Shorter than two
    /// packet intervals would let another source take the stream between
    /// packets. 20 ms to 10 s. Default: 500 ms.
    #[serde(default = "default_relatch_after", deserialize_with = "duration")]
    pub relatch_after: Duration,
    /// Only a source whose IP is the one the leg's SDP named (or the one
    /// already latched) may latch or re-latch a stream; packets from other
    /// IPs are refused and counted (`refused_foreign`), so nobody elsewhere
    /// can take a silent stream over ("RTP bleed"). A media server's
    /// handover (another port on the same host) is still followed. `false`
    /// latches any source after `relatch_after` of silence: needed when a
    /// far end's SDP names an address its packets do not come from (behind
    /// a NAT). Default: true.
    #[serde(default = "default_strict_source")]
    pub strict_source: bool,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            address: None,
            ports: default_media_ports(),
            timeout: default_media_timeout(),
            hold_timeout: default_hold_timeout(),
            relatch_after: default_relatch_after(),
            strict_source: default_strict_source(),
        }
    }
}

/// A group's `media`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaModeConfig {
    /// SDP untouched; media goes between the caller and the trunk.
    #[default]
    Direct,
    /// RTP and RTCP through hotsite (`[voice.media]`).
    Anchor,
}

/// One trunk (`[[voice.trunks]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// Its name, unique.
    pub name: String,
    /// The carrier it belongs to (events show it as the site). Default: the name.
    #[serde(default)]
    pub carrier: Option<String>,
    /// Where INVITEs and probes go: `ip:port` (names are not resolved).
    pub address: String,
    /// `udp` (default) or `tcp`: how its INVITEs, probes and REGISTERs go.
    #[serde(default = "default_transport")]
    pub transport: String,
    /// Lower is preferred (SPEC V1). Default: 10.
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// Share under `random` distribution, at least 1 (SPEC V4). Default: 1.
    #[serde(default = "one_u32")]
    pub weight: u32,
    /// Where the trunk's media is anchored (SPEC V3).
    pub media_region: String,
    /// Where its media goes when that region fails (SPEC V3).
    pub failover_region: String,
    /// OPTIONS probing (SPEC V2). Default: on, every 5 s.
    #[serde(default)]
    pub probe: ProbeConfig,
    /// Keep a REGISTER alive; the trunk is out of service while unregistered
    /// (SPEC V2). Default: none.
    #[serde(default)]
    pub register: Option<RegisterConfig>,
}

/// `voice.trunks[i].probe`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Whether the trunk is probed. Default: true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Between two probes. Default: 5 s.
    #[serde(default = "default_probe_interval", deserialize_with = "duration")]
    pub interval: Duration,
    /// A probe with no final answer within this failed (at most `interval`).
    /// Default: 2 s.
    #[serde(default = "default_probe_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Consecutive failures that take the trunk out of service. Default: 3.
    #[serde(default = "three")]
    pub fall: u32,
    /// Consecutive successes that bring it back. Default: 2.
    #[serde(default = "two")]
    pub rise: u32,
    /// Only 2xx counts as alive; by default any final answer does (a 404 or
    /// 503 to OPTIONS still proves the trunk is there). Default: false.
    #[serde(default)]
    pub only_2xx: bool,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            enabled: true,
            interval: default_probe_interval(),
            timeout: default_probe_timeout(),
            fall: 3,
            rise: 2,
            only_2xx: false,
        }
    }
}

/// `voice.trunks[i].register`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterConfig {
    /// The registrar's SIP URI, the REGISTER's Request-URI
    /// (`sip:sip.carrier.example`). The address of record is
    /// `sip:USER@` its host.
    pub registrar: String,
    /// The user name (address of record and Digest user name).
    pub user: String,
    /// The Digest password. Never logged.
    #[serde(default)]
    pub password: Secret,
    /// The binding lifetime asked for. Default: 3600 s.
    #[serde(default = "default_register_expires", deserialize_with = "duration")]
    pub expires: Duration,
    /// Where REGISTERs go, `ip:port`. Default: the trunk's address.
    #[serde(default)]
    pub address: Option<String>,
}

/// One trunk group (`[[voice.groups]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Its name, unique.
    pub name: String,
    /// `sequential` (priority order, the default) or `random` (SPEC V4).
    #[serde(default)]
    pub distribution: DistributionConfig,
    /// Its trunks, by name.
    pub trunks: Vec<String>,
    /// At most this many trunks per call. Default: every trunk of the group.
    #[serde(default)]
    pub max_attempts: Option<usize>,
    /// Calls whose Request-URI user part starts with one of these go to this
    /// group (longest prefix wins over all groups). Default: none.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// `direct` (the default: SDP untouched) or `anchor` (RTP and RTCP pass
    /// through hotsite, `[voice.media]`, so the edge can record them).
    #[serde(default)]
    pub media: MediaModeConfig,
}

/// How a group spreads calls (SPEC V4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistributionConfig {
    /// Priority order.
    #[default]
    Sequential,
    /// Weighted random order over the in-service trunks.
    Random,
}

/// Why a `[voice]` section was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoiceConfigError {
    /// Some keys have bad values; each issue names its key.
    #[error("{}", display_issues(.0))]
    Invalid(Vec<ConfigIssue>),
}

impl VoiceConfigError {
    /// The issues, for callers that list them one per line.
    pub fn issues(&self) -> &[ConfigIssue] {
        match self {
            VoiceConfigError::Invalid(issues) => issues,
        }
    }
}

pub use hotsite_core::ConfigIssue;

fn display_issues(issues: &[ConfigIssue]) -> String {
    ConfigIssue::join(issues, "; ")
}

/// Shortest timer accepted: anything below is a typo (`"2ms"` for `"2s"`).
const MIN_TIMER: Duration = Duration::from_millis(100);

impl VoiceConfig {
    /// A section with one trunk and every optional key at its default; for
    /// tests and examples.
    pub fn new(listen: &str, trunks: Vec<TrunkConfig>) -> VoiceConfig {
        VoiceConfig {
            listen: listen.to_owned(),
            public_address: None,
            invite_timeout: default_invite_timeout(),
            invite_final_timeout: default_invite_final_timeout(),
            t1: default_t1(),
            passive_hold: default_passive_hold(),
            max_calls: default_max_calls(),
            retry_after: default_retry_after(),
            default_group: None,
            trunks,
            groups: Vec::new(),
            media: MediaConfig::default(),
        }
    }

    /// Checks every key; the error lists each bad one.
    pub fn validate(&self) -> Result<(), VoiceConfigError> {
        let mut issues = Issues::default();
        let listen = parse_addr(&self.listen);
        match &listen {
            Err(reason) => issues.add("voice.listen", reason.clone()),
            Ok(addr) if addr.ip().is_unspecified() && self.public_address.is_none() => issues.add(
                "voice.public_address",
                format!(
                    "required when voice.listen ({}) is not a specific address: \
                     Via and Record-Route must name where to reach the proxy",
                    self.listen
                ),
            ),
            Ok(_) => {}
        }
        if let Some(public) = &self.public_address {
            match parse_addr(public) {
                Err(reason) => issues.add("voice.public_address", reason),
                Ok(addr) if addr.ip().is_unspecified() || addr.port() == 0 => issues.add(
                    "voice.public_address",
                    format!("{public:?} must name a specific IP and port"),
                ),
                Ok(_) => {}
            }
        }
        issues.timer("voice.t1", self.t1, MIN_TIMER, Duration::from_secs(5));
        issues.timer(
            "voice.invite_timeout",
            self.invite_timeout,
            MIN_TIMER,
            self.t1 * 64,
        );
        issues.timer(
            "voice.invite_final_timeout",
            self.invite_final_timeout,
            self.invite_timeout.max(MIN_TIMER),
            Duration::from_secs(3600),
        );
        issues.timer(
            "voice.passive_hold",
            self.passive_hold,
            Duration::from_secs(1),
            Duration::from_secs(86_400),
        );
        if !(1..=MAX_CALLS_LIMIT).contains(&self.max_calls) {
            issues.add(
                "voice.max_calls",
                format!("must be 1 to {MAX_CALLS_LIMIT}, got {}", self.max_calls),
            );
        }
        issues.timer(
            "voice.retry_after",
            self.retry_after,
            Duration::from_secs(1),
            Duration::from_secs(3600),
        );
        if self.retry_after.subsec_nanos() != 0 {
            issues.add(
                "voice.retry_after",
                format!(
                    "must be whole seconds (Retry-After counts seconds), got {:?}",
                    self.retry_after
                ),
            );
        }
        if self.trunks.is_empty() {
            issues.add("voice.trunks", "at least one trunk is required");
        }
        let mut names = HashSet::new();
        for (index, trunk) in self.trunks.iter().enumerate() {
            let key = |field: &str| format!("voice.trunks[{index}].{field}");
            if trunk.name.trim().is_empty() {
                issues.add(&key("name"), "must not be empty");
            } else if !names.insert(trunk.name.as_str()) {
                issues.add(
                    &key("name"),
                    format!("{:?} is used by another trunk", trunk.name),
                );
            }
            match parse_addr(&trunk.address) {
                Err(reason) => issues.add(&key("address"), reason),
                Ok(addr) => {
                    let ours = [Some(self.listen.as_str()), self.public_address.as_deref()]
                        .into_iter()
                        .flatten()
                        .filter_map(|text| parse_addr(text).ok())
                        .any(|proxy| proxy == addr);
                    if ours {
                        issues.add(
                            &key("address"),
                            format!("{:?} is the proxy's own address", trunk.address),
                        );
                    }
                }
            }
            if Transport::parse(trunk.transport.as_bytes()).is_none() {
                issues.add(
                    &key("transport"),
                    format!("{:?} is not \"udp\" or \"tcp\"", trunk.transport),
                );
            }
            if trunk.weight == 0 {
                issues.add(&key("weight"), "must be at least 1");
            }
            for (field, value) in [
                ("media_region", &trunk.media_region),
                ("failover_region", &trunk.failover_region),
            ] {
                if value.trim().is_empty() {
                    issues.add(&key(field), "must not be empty (SPEC V3)");
                }
            }
            let probe = &trunk.probe;
            if probe.enabled {
                issues.timer(
                    &key("probe.interval"),
                    probe.interval,
                    MIN_TIMER,
                    Duration::from_secs(3600),
                );
                if probe.timeout < MIN_TIMER || probe.timeout > probe.interval {
                    issues.add(
                        &key("probe.timeout"),
                        format!(
                            "must be at least {MIN_TIMER:?} and at most probe.interval ({:?}), got {:?}",
                            probe.interval, probe.timeout
                        ),
                    );
                }
                for (field, value) in [("probe.fall", probe.fall), ("probe.rise", probe.rise)] {
                    if !(1..=100).contains(&value) {
                        issues.add(&key(field), format!("must be 1 to 100, got {value}"));
                    }
                }
            }
            if let Some(register) = &trunk.register {
                if let Err(reason) = registrar_uri(&register.registrar) {
                    issues.add(&key("register.registrar"), reason);
                }
                if register.user.trim().is_empty() {
                    issues.add(&key("register.user"), "must not be empty");
                }
                issues.timer(
                    &key("register.expires"),
                    register.expires,
                    Duration::from_secs(1),
                    Duration::from_secs(86_400),
                );
                if let Some(address) = &register.address {
                    if let Err(reason) = parse_addr(address) {
                        issues.add(&key("register.address"), reason);
                    }
                }
            }
        }
        let mut group_names = HashSet::new();
        for (index, group) in self.groups.iter().enumerate() {
            let key = |field: &str| format!("voice.groups[{index}].{field}");
            if group.name.trim().is_empty() {
                issues.add(&key("name"), "must not be empty");
            } else if !group_names.insert(group.name.as_str()) {
                issues.add(
                    &key("name"),
                    format!("{:?} is used by another group", group.name),
                );
            }
            if group.trunks.is_empty() {
                issues.add(&key("trunks"), "at least one trunk is required");
            }
            let mut seen = HashSet::new();
            for (i, name) in group.trunks.iter().enumerate() {
                if !names.contains(name.as_str()) {
                    issues.add(
                        &format!("voice.groups[{index}].trunks[{i}]"),
                        format!("no trunk is named {name:?}"),
                    );
                } else if !seen.insert(name.as_str()) {
                    issues.add(
                        &format!("voice.groups[{index}].trunks[{i}]"),
                        format!("{name:?} is listed twice"),
                    );
                }
            }
            if let Some(max) = group.max_attempts {
                if max == 0 || max > group.trunks.len().max(1) {
                    issues.add(
                        &key("max_attempts"),
                        format!(
                            "must be 1 to the group's {} trunks, got {max}",
                            group.trunks.len()
                        ),
                    );
                }
            }
            for (i, prefix) in group.prefixes.iter().enumerate() {
                if prefix.is_empty() {
                    issues.add(
                        &format!("voice.groups[{index}].prefixes[{i}]"),
                        "must not be empty (use voice.default_group)",
                    );
                }
            }
        }
        if let Some(default) = &self.default_group {
            let known = if self.groups.is_empty() {
                default == "default"
            } else {
                group_names.contains(default.as_str())
            };
            if !known {
                issues.add(
                    "voice.default_group",
                    format!("no group is named {default:?}"),
                );
            }
        }
        self.validate_media(&mut issues);
        issues.finish().map_err(VoiceConfigError::Invalid)
    }

    /// Whether a group anchors media.
    pub fn anchors_media(&self) -> bool {
        self.groups
            .iter()
            .any(|g| g.media == MediaModeConfig::Anchor)
    }

    /// `[voice.media]`: its values always; what it must agree with (an
    /// address, the SIP port) only when a group anchors.
    fn validate_media(&self, issues: &mut Issues) {
        let media = &self.media;
        let range = match parse_port_range(&media.ports) {
            Ok(range) => Some(range),
            Err(reason) => {
                issues.add("voice.media.ports", reason);
                None
            }
        };
        issues.timer(
            "voice.media.timeout",
            media.timeout,
            Duration::from_secs(1),
            Duration::from_secs(86_400),
        );
        issues.timer(
            "voice.media.hold_timeout",
            media.hold_timeout,
            media.timeout.max(Duration::from_secs(1)),
            Duration::from_secs(7 * 86_400),
        );
        issues.timer(
            "voice.media.relatch_after",
            media.relatch_after,
            Duration::from_millis(20),
            Duration::from_secs(10),
        );
        if let Some(address) = &media.address {
            match address.parse::<IpAddr>() {
                Err(_) => issues.add(
                    "voice.media.address",
                    format!("{address:?} is not an IP address"),
                ),
                Ok(ip) if ip.is_unspecified() || ip.is_multicast() => issues.add(
                    "voice.media.address",
                    format!("{address:?} must be one unicast address: it is written into SDP"),
                ),
                Ok(_) => {}
            }
        }
        if !self.anchors_media() {
            return;
        }
        if let (Some((first, last)), Ok(listen)) = (range, parse_addr(&self.listen)) {
            if (first..=last).contains(&listen.port()) {
                issues.add(
                    "voice.media.ports",
                    format!(
                        "{:?} includes the SIP port of voice.listen ({})",
                        media.ports,
                        listen.port()
                    ),
                );
            }
        }
    }

    /// The listen address, once [`VoiceConfig::validate`] passed.
    pub fn listen_addr(&self) -> Result<SocketAddr, VoiceConfigError> {
        parse_addr(&self.listen)
            .map_err(|reason| VoiceConfigError::Invalid(vec![issue("voice.listen", reason)]))
    }

    /// The typed configuration of the proxy core. `bound` is the address the
    /// socket actually got (the port may have been 0): it is the public
    /// address unless `public_address` is set.
    pub fn proxy_config(&self, bound: SocketAddr) -> Result<ProxyConfig, VoiceConfigError> {
        self.validate()?;
        let invalid =
            |key: &str, reason: String| VoiceConfigError::Invalid(vec![issue(key, reason)]);
        let address = match &self.public_address {
            Some(public) => parse_addr(public).map_err(|r| invalid("voice.public_address", r))?,
            None => bound,
        };
        let mut trunks = Vec::with_capacity(self.trunks.len());
        for (index, trunk) in self.trunks.iter().enumerate() {
            let key = |field: &str| format!("voice.trunks[{index}].{field}");
            let trunk_address =
                parse_addr(&trunk.address).map_err(|r| invalid(&key("address"), r))?;
            let register = match &trunk.register {
                None => None,
                Some(register) => Some(RegisterSetup {
                    registrar: registrar_uri(&register.registrar)
                        .map_err(|r| invalid(&key("register.registrar"), r))?,
                    user: register.user.clone(),
                    password: register.password.clone(),
                    expires: register.expires,
                    address: match &register.address {
                        Some(a) => {
                            parse_addr(a).map_err(|r| invalid(&key("register.address"), r))?
                        }
                        None => trunk_address,
                    },
                }),
            };
            trunks.push(TrunkSetup {
                spec: TrunkSpec {
                    name: trunk.name.clone(),
                    carrier: trunk.carrier.clone().unwrap_or_else(|| trunk.name.clone()),
                    priority: trunk.priority,
                    weight: trunk.weight,
                    media_region: trunk.media_region.clone(),
                    failover_region: trunk.failover_region.clone(),
                    probed: trunk.probe.enabled,
                    registered: register.is_some(),
                },
                address: trunk_address,
                transport: Transport::parse(trunk.transport.as_bytes())
                    .ok_or_else(|| invalid(&key("transport"), "not \"udp\" or \"tcp\"".into()))?,
                probe: trunk.probe.enabled.then_some(ProbeSetup {
                    interval: trunk.probe.interval,
                    timeout: trunk.probe.timeout,
                    fall: trunk.probe.fall,
                    rise: trunk.probe.rise,
                    only_2xx: trunk.probe.only_2xx,
                }),
                register,
            });
        }
        let index_of = |name: &str| self.trunks.iter().position(|t| t.name == name);
        let groups: Vec<GroupSetup> = if self.groups.is_empty() {
            vec![GroupSetup {
                name: "default".into(),
                distribution: Distribution::Sequential,
                trunks: (0..self.trunks.len()).collect(),
                max_attempts: self.trunks.len(),
                prefixes: Vec::new(),
                media: MediaMode::Direct,
            }]
        } else {
            self.groups
                .iter()
                .map(|group| GroupSetup {
                    name: group.name.clone(),
                    distribution: match group.distribution {
                        DistributionConfig::Sequential => Distribution::Sequential,
                        DistributionConfig::Random => Distribution::Random,
                    },
                    trunks: group.trunks.iter().filter_map(|n| index_of(n)).collect(),
                    max_attempts: group.max_attempts.unwrap_or(group.trunks.len()),
                    prefixes: group.prefixes.clone(),
                    media: match group.media {
                        MediaModeConfig::Direct => MediaMode::Direct,
                        MediaModeConfig::Anchor => MediaMode::Anchor,
                    },
                })
                .collect()
        };
        let default_group = self
            .default_group
            .as_deref()
            .and_then(|name| groups.iter().position(|g| g.name == name))
            .unwrap_or(0);
        let media = match self.anchors_media() {
            false => None,
            true => {
                let (first_port, last_port) = parse_port_range(&self.media.ports)
                    .map_err(|r| invalid("voice.media.ports", r))?;
                let media_address = match &self.media.address {
                    Some(text) => text.parse::<IpAddr>().map_err(|_| {
                        invalid(
                            "voice.media.address",
                            format!("{text:?} is not an IP address"),
                        )
                    })?,
                    None => address.ip(),
                };
                if media_address.is_unspecified() {
                    return Err(invalid(
                        "voice.media.address",
                        "required: the proxy's address is not a specific IP".into(),
                    ));
                }
                Some(MediaSetup {
                    address: media_address,
                    first_port,
                    last_port,
                    timers: RelayTimers {
                        timeout: self.media.timeout,
                        hold_timeout: self.media.hold_timeout,
                        relatch_after: self.media.relatch_after,
                    },
                    strict_source: self.media.strict_source,
                })
            }
        };
        Ok(ProxyConfig {
            address,
            listen: bound,
            trunks,
            groups,
            default_group,
            invite_timeout: self.invite_timeout,
            invite_final_timeout: self.invite_final_timeout,
            t1: self.t1,
            passive_hold: self.passive_hold,
            max_calls: self.max_calls,
            retry_after: self.retry_after,
            initial_capacity: INITIAL_CAPACITY,
            media,
        })
    }
}

impl TrunkConfig {
    /// A trunk with every optional key at its default; for tests and examples.
    pub fn new(name: &str, address: &str, priority: u32) -> TrunkConfig {
        TrunkConfig {
            name: name.to_owned(),
            carrier: None,
            address: address.to_owned(),
            transport: default_transport(),
            priority,
            weight: 1,
            media_region: "local".into(),
            failover_region: "local".into(),
            probe: ProbeConfig::default(),
            register: None,
        }
    }
}

fn issue(key: &str, reason: String) -> ConfigIssue {
    ConfigIssue::new(key, reason)
}

fn registrar_uri(text: &str) -> Result<Uri, String> {
    let uri = Uri::parse(text.to_owned()).map_err(|e| format!("{text:?}: {e}"))?;
    if uri.sip().is_none() {
        return Err(format!("{text:?} is not a sip: URI"));
    }
    Ok(uri)
}

/// `"first-last"`: at least two RTP/RTCP pairs (one call).
fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let parsed = text.split_once('-').and_then(|(first, last)| {
        Some((
            first.trim().parse::<u16>().ok()?,
            last.trim().parse::<u16>().ok()?,
        ))
    });
    match parsed {
        None => Err(format!("{text:?} is not \"first-last\" (ports 1-65535)")),
        Some((first, last)) if first == 0 || first >= last => {
            Err(format!("{text:?}: the first port must be 1 or more and below the last"))
        }
        // RTP ports are even: an odd first port starts the pairs one later.
        Some((first, last)) if u32::from(first) + u32::from(first % 2) + 3 > u32::from(last) => {
            Err(format!(
                "{text:?}: at least two RTP/RTCP pairs (an even port and the next) are needed for one call"
            ))
        }
        Some(range) => Ok(range),
    }
}

fn default_media_ports() -> String {
    "30000-39999".into()
}

fn default_media_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_hold_timeout() -> Duration {
    Duration::from_secs(7200)
}

fn default_relatch_after() -> Duration {
    Duration::from_millis(500)
}

fn default_strict_source() -> bool {
    true
}

fn default_listen() -> String {
    "0.0.0.0:5060".into()
}

fn default_transport() -> String {
    "udp".into()
}

fn default_priority() -> u32 {
    10
}

fn default_invite_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_invite_final_timeout() -> Duration {
    Duration::from_secs(120)
}

fn default_t1() -> Duration {
    Duration::from_millis(500)
}

fn default_passive_hold() -> Duration {
    Duration::from_secs(30)
}

fn default_max_calls() -> usize {
    10_000
}

/// The largest `max_calls` accepted: each call holds a few KiB (its INVITE
/// once per attempt), so this is already gigabytes.
const MAX_CALLS_LIMIT: usize = 1_000_000;

fn default_retry_after() -> Duration {
    Duration::from_secs(5)
}

fn default_probe_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_probe_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_register_expires() -> Duration {
    Duration::from_secs(3600)
}

fn yes() -> bool {
    true
}

fn one_u32() -> u32 {
    1
}

fn two() -> u32 {
    2
}

fn three() -> u32 {
    3
}

#[cfg(test)]
mod tests;
