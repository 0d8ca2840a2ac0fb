//! The sites' neighbours for business continuity (SPEC S1–S8): agent phones
//! (`[[lab.phones]]`) and inter-site links (`[[lab.links]]`); and the
//! provider's cloud media servers for recording continuity
//! (`[[lab.media_servers]]`, SPEC R1–R5). All optional; the lab starts them
//! with itself and steers them through the control API.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{check_name, check_range, loopback_any_port, ConfigError, FixedAddrs};
use crate::link::LinkConfig;
use crate::media::MediaServerConfig;
use crate::sip::{PhoneAnswer, SipPhoneConfig};

/// Longest registration asked for: a day (as `SipPhoneConfig`).
const MAX_EXPIRES_S: u64 = 86_400;
/// Longest ring or answer delay: more is a typo.
const MAX_DELAY_MS: u64 = 600_000;
/// Longest retry ceiling: an hour.
const MAX_RETRY_MS: u64 = 3_600_000;
/// Largest T1: more is a typo.
const MAX_T1_MS: u64 = 10_000;
/// Longest handover gap: ten minutes is already no handover.
const MAX_GAP_MS: u64 = 600_000;

/// An agent phone (`[[lab.phones]]`): a SIP user agent for one DN that
/// registers at one site or two (SPEC S8) and answers calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabPhoneConfig {
    /// The DN, unique among phones; it names the phone in the control API.
    pub dn: String,
    /// The Digest password.
    pub password: String,
    /// The registrars' domain (`REGISTER sip:DOMAIN`, `To: <sip:DN@DOMAIN>`).
    pub domain: String,
    /// Where it registers: one site, or two (dual registration). Defaults to
    /// none: the phone only answers calls sent to it.
    #[serde(default)]
    pub registrars: Vec<SocketAddr>,
    /// The binding lifetime it asks for, 1 to 86400 s. Defaults to 60.
    #[serde(default = "default_expires_s")]
    pub expires_s: u64,
    /// Where it listens (UDP). Defaults to `127.0.0.1:0`.
    #[serde(default = "loopback_any_port")]
    pub listen: SocketAddr,
    /// How it answers calls: `answer`, `busy` or `no_answer`. Defaults to
    /// `answer`.
    #[serde(default)]
    pub answer: PhoneAnswer,
    /// From the INVITE to `180 Ringing`. Defaults to 0.
    #[serde(default)]
    pub ring_delay_ms: u64,
    /// From the 180 to `200 OK`. Defaults to 20.
    #[serde(default = "default_answer_delay_ms")]
    pub answer_delay_ms: u64,
    /// First retry ceiling after a failed REGISTER (doubling). Defaults to 1000.
    #[serde(default = "default_retry_ms")]
    pub retry_ms: u64,
    /// The retry ceiling's limit. Defaults to 30000.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// RFC 3261 T1 (64·T1 without an answer fails a REGISTER). Defaults to 500.
    #[serde(default = "default_t1_ms")]
    pub t1_ms: u64,
}

/// An inter-site link (`[[lab.links]]`): a relay the lab can cut (SPEC S4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabLinkConfig {
    /// The link's name, unique among links; it names the link in the control
    /// API.
    pub name: String,
    /// Where the relay faces site A (UDP and TCP): site A's peer trunk.
    /// Defaults to `127.0.0.1:0`.
    #[serde(default = "loopback_any_port")]
    pub a_listen: SocketAddr,
    /// Site A's SIP address.
    pub a_target: SocketAddr,
    /// Where the relay faces site B: site B's peer trunk. Defaults to
    /// `127.0.0.1:0`.
    #[serde(default = "loopback_any_port")]
    pub b_listen: SocketAddr,
    /// Site B's SIP address.
    pub b_target: SocketAddr,
}

/// A provider's cloud media server (`[[lab.media_servers]]`): answers calls
/// with RTP, records them, and hands them over on command (SPEC R1–R5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabMediaServerConfig {
    /// Its name, unique among media servers; it names it in the control API.
    pub name: String,
    /// Its SIP address (UDP); RTP uses free ports on the same IP. Defaults
    /// to `127.0.0.1:0`.
    #[serde(default = "loopback_any_port")]
    pub listen: SocketAddr,
    /// Where the cloud recordings go (`<recordings>/<Call-ID>/cloud.wav`
    /// and `cloud.json`); created if missing.
    pub recordings: PathBuf,
    /// A handover's gap when the command gives none, 0 to 600000. Unset (the
    /// default): random between `gap_min_ms` and `gap_max_ms`.
    #[serde(default)]
    pub gap_ms: Option<u64>,
    /// Defaults to 15000.
    #[serde(default = "default_gap_min_ms")]
    pub gap_min_ms: u64,
    /// Defaults to 20000.
    #[serde(default = "default_gap_max_ms")]
    pub gap_max_ms: u64,
    /// The recording of a gap is noise instead of silence. Defaults to false.
    #[serde(default)]
    pub corrupt: bool,
    /// Seeds SSRCs, numbering, jumps, gaps and noise. Defaults to 1.
    #[serde(default = "default_media_seed")]
    pub seed: u64,
    /// From the INVITE to `180 Ringing`. Defaults to 0.
    #[serde(default)]
    pub ring_delay_ms: u64,
    /// From the 180 to `200 OK`. Defaults to 20.
    #[serde(default = "default_answer_delay_ms")]
    pub answer_delay_ms: u64,
    /// RFC 3261 T1. Defaults to 500.
    #[serde(default = "default_t1_ms")]
    pub t1_ms: u64,
}

impl LabMediaServerConfig {
    /// Media server `name` on a free loopback port, recording into
    /// `recordings`, with every other setting at its default.
    pub fn loopback(name: &str, recordings: impl Into<PathBuf>) -> LabMediaServerConfig {
        LabMediaServerConfig {
            name: name.to_owned(),
            listen: loopback_any_port(),
            recordings: recordings.into(),
            gap_ms: None,
            gap_min_ms: default_gap_min_ms(),
            gap_max_ms: default_gap_max_ms(),
            corrupt: false,
            seed: default_media_seed(),
            ring_delay_ms: 0,
            answer_delay_ms: default_answer_delay_ms(),
            t1_ms: default_t1_ms(),
        }
    }

    /// The media server's own configuration.
    pub fn media_server_config(&self) -> MediaServerConfig {
        let mut config = MediaServerConfig::new(&self.name, self.listen, self.recordings.clone());
        config.gap = self.gap_ms.map(Duration::from_millis);
        config.gap_min = Duration::from_millis(self.gap_min_ms);
        config.gap_max = Duration::from_millis(self.gap_max_ms);
        config.corrupt = self.corrupt;
        config.seed = self.seed;
        config.ring_delay = Duration::from_millis(self.ring_delay_ms);
        config.answer_delay = Duration::from_millis(self.answer_delay_ms);
        config.t1 = Duration::from_millis(self.t1_ms);
        config.t2 = config.t2.max(config.t1);
        config
    }
}

impl LabPhoneConfig {
    /// Phone `dn` on a free loopback port, registering at `registrars`, with
    /// every other setting at its default.
    pub fn loopback(
        dn: &str,
        password: &str,
        domain: &str,
        registrars: &[SocketAddr],
    ) -> LabPhoneConfig {
        LabPhoneConfig {
            dn: dn.to_owned(),
            password: password.to_owned(),
            domain: domain.to_owned(),
            registrars: registrars.to_vec(),
            expires_s: default_expires_s(),
            listen: loopback_any_port(),
            answer: PhoneAnswer::default(),
            ring_delay_ms: 0,
            answer_delay_ms: default_answer_delay_ms(),
            retry_ms: default_retry_ms(),
            retry_max_ms: default_retry_max_ms(),
            t1_ms: default_t1_ms(),
        }
    }

    /// The phone's own configuration (its seed from the wall clock, so two
    /// runs never share a Call-ID).
    pub fn phone_config(&self) -> SipPhoneConfig {
        let mut config = SipPhoneConfig::new(
            &self.dn,
            &self.password,
            &self.domain,
            self.registrars.clone(),
        );
        config.expires = Duration::from_secs(self.expires_s);
        config.listen = self.listen;
        config.answer = self.answer;
        config.ring_delay = Duration::from_millis(self.ring_delay_ms);
        config.answer_delay = Duration::from_millis(self.answer_delay_ms);
        config.retry = Duration::from_millis(self.retry_ms);
        config.retry_max = Duration::from_millis(self.retry_max_ms);
        config.t1 = Duration::from_millis(self.t1_ms);
        config.t2 = config.t2.max(config.t1);
        config
    }
}

impl LabLinkConfig {
    /// A link named `name` between `a_target` and `b_target`, facing each on
    /// a free loopback port.
    pub fn loopback(name: &str, a_target: SocketAddr, b_target: SocketAddr) -> LabLinkConfig {
        LabLinkConfig {
            name: name.to_owned(),
            a_listen: loopback_any_port(),
            a_target,
            b_listen: loopback_any_port(),
            b_target,
        }
    }

    /// The link's own configuration.
    pub fn link_config(&self) -> LinkConfig {
        LinkConfig {
            name: self.name.clone(),
            a_listen: self.a_listen,
            a_target: self.a_target,
            b_listen: self.b_listen,
            b_target: self.b_target,
        }
    }
}

/// Checks `[[lab.phones]]`; their listen addresses are claimed among the UDP
/// ones.
pub(super) fn validate_phones(
    phones: &[LabPhoneConfig],
    udp_addrs: &mut FixedAddrs,
) -> Result<(), ConfigError> {
    let mut dns = HashSet::new();
    for (index, phone) in phones.iter().enumerate() {
        let key = format!("lab.phones[{index}]");
        check_name(&format!("{key}.dn"), &phone.dn)?;
        if !dns.insert(phone.dn.as_str()) {
            return Err(ConfigError::invalid(
                format!("{key}.dn"),
                format!("duplicate phone DN {:?}", phone.dn),
            ));
        }
        let host = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
        if phone.domain.is_empty() || !phone.domain.chars().all(host) {
            return Err(ConfigError::invalid(
                format!("{key}.domain"),
                format!("{:?} is not a SIP host (name or address)", phone.domain),
            ));
        }
        for (registrar_index, registrar) in phone.registrars.iter().enumerate() {
            if phone.registrars[..registrar_index].contains(registrar) {
                return Err(ConfigError::invalid(
                    format!("{key}.registrars[{registrar_index}]"),
                    format!("{registrar} is listed twice"),
                ));
            }
        }
        check_range(
            &format!("{key}.expires_s"),
            phone.expires_s,
            1,
            MAX_EXPIRES_S,
        )?;
        check_range(
            &format!("{key}.ring_delay_ms"),
            phone.ring_delay_ms,
            0,
            MAX_DELAY_MS,
        )?;
        check_range(
            &format!("{key}.answer_delay_ms"),
            phone.answer_delay_ms,
            0,
            MAX_DELAY_MS,
        )?;
        check_range(&format!("{key}.retry_ms"), phone.retry_ms, 1, MAX_RETRY_MS)?;
        check_range(
            &format!("{key}.retry_max_ms"),
            phone.retry_max_ms,
            phone.retry_ms,
            MAX_RETRY_MS,
        )?;
        check_range(&format!("{key}.t1_ms"), phone.t1_ms, 1, MAX_T1_MS)?;
        // Whatever the phone itself refuses (a domain that is no URI host).
        phone
            .phone_config()
            .validate()
            .map_err(|error| ConfigError::invalid(key.clone(), error.to_string()))?;
        udp_addrs.claim(format!("{key}.listen"), phone.listen)?;
    }
    Ok(())
}

/// Checks `[[lab.links]]`; their listen addresses are claimed among both the
/// TCP and the UDP ones (a link relays both).
pub(super) fn validate_links(
    links: &[LabLinkConfig],
    tcp_addrs: &mut FixedAddrs,
    udp_addrs: &mut FixedAddrs,
) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    for (index, link) in links.iter().enumerate() {
        let key = format!("lab.links[{index}]");
        check_name(&format!("{key}.name"), &link.name)?;
        if !names.insert(link.name.as_str()) {
            return Err(ConfigError::invalid(
                format!("{key}.name"),
                format!("duplicate link name {:?}", link.name),
            ));
        }
        for (side, listen) in [("a_listen", link.a_listen), ("b_listen", link.b_listen)] {
            tcp_addrs.claim(format!("{key}.{side}"), listen)?;
            udp_addrs.claim(format!("{key}.{side}"), listen)?;
        }
        if link.a_target == link.b_target {
            return Err(ConfigError::invalid(
                format!("{key}.b_target"),
                format!("{} is a_target too: a link joins two sites", link.b_target),
            ));
        }
    }
    Ok(())
}

/// Checks `[[lab.media_servers]]`; their listen addresses are claimed among
/// the UDP ones.
pub(super) fn validate_media_servers(
    servers: &[LabMediaServerConfig],
    udp_addrs: &mut FixedAddrs,
) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    for (index, server) in servers.iter().enumerate() {
        let key = format!("lab.media_servers[{index}]");
        check_name(&format!("{key}.name"), &server.name)?;
        if !names.insert(server.name.as_str()) {
            return Err(ConfigError::invalid(
                format!("{key}.name"),
                format!("duplicate media server name {:?}", server.name),
            ));
        }
        if server.recordings.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                format!("{key}.recordings"),
                "must name a directory",
            ));
        }
        if let Some(gap_ms) = server.gap_ms {
            check_range(&format!("{key}.gap_ms"), gap_ms, 0, MAX_GAP_MS)?;
        }
        check_range(
            &format!("{key}.gap_min_ms"),
            server.gap_min_ms,
            0,
            MAX_GAP_MS,
        )?;
        check_range(
            &format!("{key}.gap_max_ms"),
            server.gap_max_ms,
            server.gap_min_ms,
            MAX_GAP_MS,
        )?;
        check_range(
            &format!("{key}.ring_delay_ms"),
            server.ring_delay_ms,
            0,
            MAX_DELAY_MS,
        )?;
        check_range(
            &format!("{key}.answer_delay_ms"),
            server.answer_delay_ms,
            0,
            MAX_DELAY_MS,
        )?;
        check_range(&format!("{key}.t1_ms"), server.t1_ms, 1, MAX_T1_MS)?;
        udp_addrs.claim(format!("{key}.listen"), server.listen)?;
    }
    Ok(())
}

fn default_gap_min_ms() -> u64 {
    15_000
}

fn default_gap_max_ms() -> u64 {
    20_000
}

fn default_media_seed() -> u64 {
    1
}

fn default_expires_s() -> u64 {
    60
}

fn default_answer_delay_ms() -> u64 {
    20
}

fn default_retry_ms() -> u64 {
    1_000
}

fn default_retry_max_ms() -> u64 {
    30_000
}

fn default_t1_ms() -> u64 {
    500
}
