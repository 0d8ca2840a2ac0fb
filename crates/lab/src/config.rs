//! The lab's configuration: which sites and SMSC instances to simulate, which
//! accounts may bind, how receipts misbehave, and the optional HTTP API sites,
//! webhook receivers, DNS server and SMTP sink, agent phones, inter-site
//! links and cloud media servers.
//!
//! Parsed from TOML under a top-level `[lab]` table and validated before any
//! socket is opened, so a bad file fails with an error naming the key
//! (`lab.receipts.duplicate_probability: must be between 0 and 1, got 1.5`)
//! instead of half a lab.

use std::collections::HashSet;
use std::net::SocketAddr;

use hotsite_smpp::pdu::MessageState;
use serde::{Deserialize, Serialize};

mod peers;
mod servers;
#[cfg(test)]
mod tests;

pub use peers::{LabLinkConfig, LabMediaServerConfig, LabPhoneConfig};
pub(crate) use servers::normalize_dns_name;
pub use servers::{
    DnsConfig, DnsRecordConfig, HttpConfig, HttpSiteConfig, SmtpConfig, WebhookConfig,
};

/// SMPP 3.4 limit on `system_id` (without the terminating NUL).
const MAX_SYSTEM_ID_LEN: usize = 15;
/// SMPP 3.4 limit on `password` (without the terminating NUL).
const MAX_PASSWORD_LEN: usize = 8;
/// Receipts later than this are a typo, not a simulation.
const MAX_RECEIPT_DELAY_MS: u64 = 600_000;
/// Longest `retry_interval_ms` and `response_timeout_ms`: more is a typo.
const MAX_DELIVERY_WAIT_MS: u64 = 600_000;
/// Most `retry_attempts`: more is a typo (or a lab that never lets go).
const MAX_RETRY_ATTEMPTS: u64 = 10_000;

/// The whole lab: the control API, the accounts, the receipt behaviour, the
/// SMPP sites, and the optional HTTP API, webhook receivers, DNS and SMTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabConfig {
    /// Address of the HTTP control API. Port 0 picks a free port. Defaults to
    /// `127.0.0.1:0`.
    #[serde(default = "default_control")]
    pub control: SocketAddr,
    /// Seeds every random choice (receipt duplication, cross-site receipts,
    /// throttling), so a run can be replayed. Defaults to 1.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Accounts allowed to bind, on every SMSC instance of every site, and to
    /// log in to the HTTP API (`login` = `system_id`). Needed when there are
    /// SMPP or HTTP sites.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    /// How delivery receipts are sent.
    #[serde(default)]
    pub receipts: ReceiptConfig,
    /// How long repeats of a `user_message_reference` are recognised (`[lab.dedupe]`).
    #[serde(default)]
    pub dedupe: DedupeConfig,
    /// How refused or unanswered `deliver_sm` are retried (`[lab.deliveries]`).
    #[serde(default)]
    pub deliveries: DeliveryConfig,
    /// The provider's SMPP sites, each with its SMSC instances.
    #[serde(default)]
    pub sites: Vec<SiteConfig>,
    /// The provider's HTTP API: its sites and the callback URLs (`[lab.http]`).
    #[serde(default)]
    pub http: Option<HttpConfig>,
    /// Webhook receivers: the digital channels' endpoints (`[[lab.webhooks]]`).
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// An authoritative DNS server for the HTTP API's names (`[lab.dns]`).
    #[serde(default)]
    pub dns: Option<DnsConfig>,
    /// An SMTP sink for the e-mail fallback channel (`[lab.smtp]`).
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// Agent phones registering at the sites (`[[lab.phones]]`, SPEC S8).
    #[serde(default)]
    pub phones: Vec<LabPhoneConfig>,
    /// Inter-site links that can be cut (`[[lab.links]]`, SPEC S4).
    #[serde(default)]
    pub links: Vec<LabLinkConfig>,
    /// The provider's cloud media servers (`[[lab.media_servers]]`, SPEC
    /// R1–R5).
    #[serde(default)]
    pub media_servers: Vec<LabMediaServerConfig>,
}

/// One account (`system_id` and `password` of the bind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The account name, at most 15 characters.
    pub system_id: String,
    /// The password, at most 8 characters.
    pub password: String,
}

/// Delivery receipt behaviour. The defaults describe a well-behaved provider:
/// receipts after 20 ms, never duplicated, always on the submitting site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptConfig {
    /// Delay between the `submit_sm_resp` and the receipt. Defaults to 20.
    #[serde(default = "default_receipt_delay_ms")]
    pub delay_ms: u64,
    /// Probability that a receipt is sent twice (SPEC M13). Defaults to 0.
    #[serde(default)]
    pub duplicate_probability: f64,
    /// Probability that a receipt goes out on a bind of another site than the
    /// one that took the submit (SPEC M1, M6). Defaults to 0.
    #[serde(default)]
    pub other_site_probability: f64,
    /// The final state every receipt reports. Defaults to `delivered`.
    #[serde(default)]
    pub final_state: FinalState,
    /// How `submit_sm_resp.message_id` (and `data_sm_resp`) writes the
    /// provider's serial number (SPEC M13). Defaults to `hex`.
    #[serde(default)]
    pub submit_id_format: IdFormat,
    /// How the receipt's `receipted_message_id` TLV and the `id:` of its text
    /// write their numbers (SPEC M13). Defaults to `hex`.
    #[serde(default)]
    pub receipt_id_format: IdFormat,
    /// The provider's first message serial. Defaults to 1; real SMSCs' ids are
    /// large numbers, and with small ones a decimal spelling of one id is the hex
    /// spelling of another (`16` is 0x16 and 0x10), which hides how a gateway
    /// reads them.
    #[serde(default = "default_first_serial")]
    pub first_serial: u64,
}

fn default_first_serial() -> u64 {
    1
}

/// How an SMSC writes a message id: one serial number, several spellings
/// (SPEC M13: "the receipt's id may differ from the submit response's in case,
/// in leading zeros, or be decimal where the other is hex").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdFormat {
    /// 8 lowercase hex digits, zero-padded (`0000002a`).
    #[default]
    Hex,
    /// 8 uppercase hex digits, zero-padded (`0000002A`).
    HexUpper,
    /// Lowercase hex without leading zeros (`2a`).
    HexUnpadded,
    /// Decimal without leading zeros (`42`).
    Decimal,
    /// 20 decimal digits, zero-padded (`00000000000000000042`).
    DecimalPadded,
}

impl IdFormat {
    /// `serial` written in this format.
    pub fn render(self, serial: u64) -> String {
        match self {
            IdFormat::Hex => format!("{serial:08x}"),
            IdFormat::HexUpper => format!("{serial:08X}"),
            IdFormat::HexUnpadded => format!("{serial:x}"),
            IdFormat::Decimal => format!("{serial}"),
            IdFormat::DecimalPadded => format!("{serial:020}"),
        }
    }
}

/// How long the provider remembers a `user_message_reference` (`[lab.dedupe]`,
/// SPEC M8, M16).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// For how many milliseconds after a message is accepted a repeat of its
    /// (account, destination, `user_message_reference`) is dropped and answered
    /// with its id; a repeat later than that is a new message. 0, the default,
    /// remembers forever.
    #[serde(default)]
    pub reference_memory_ms: u64,
}

/// How `deliver_sm` (receipts and MOs) that are refused or unanswered are sent
/// again (`[lab.deliveries]`, SPEC M6, M8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Wait between a failed attempt (a non-zero `command_status`, or no answer
    /// within `response_timeout_ms`) and the next. Defaults to 1000.
    #[serde(default = "default_retry_interval_ms")]
    pub retry_interval_ms: u64,
    /// Attempts after the first; once they are spent the delivery is dropped
    /// and counted in `deliveries_abandoned`. 0 never retries. Defaults to 20.
    #[serde(default = "default_retry_attempts")]
    pub retry_attempts: u32,
    /// How long a `deliver_sm` may wait for its `deliver_sm_resp` before it
    /// counts as failed. Defaults to 10000.
    #[serde(default = "default_response_timeout_ms")]
    pub response_timeout_ms: u64,
}

/// The final state a receipt reports, in `message_state` and in the text's `stat:`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalState {
    /// `DELIVRD`, message_state 2.
    #[default]
    Delivered,
    /// `EXPIRED`, message_state 3.
    Expired,
    /// `UNDELIV`, message_state 5.
    Undeliverable,
    /// `REJECTD`, message_state 8.
    Rejected,
}

/// One site of the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// The site's name, unique in the lab.
    pub name: String,
    /// The site's SMSC instances.
    pub smsc: Vec<SmscConfig>,
}

/// One SMSC instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmscConfig {
    /// The instance's name, unique within its site. Also the `system_id` of its
    /// bind responses, so at most 15 characters.
    pub name: String,
    /// Where the instance listens. Port 0 picks a free port.
    pub listen: SocketAddr,
}

/// A configuration that cannot be used, naming the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The text is not valid TOML, or does not have the expected shape.
    #[error("lab config: {0}")]
    Parse(String),
    /// A value is out of bounds or inconsistent with another one.
    #[error("{key}: {reason}")]
    Invalid {
        /// Path of the offending key, such as `lab.sites[1].smsc[0].name`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// The file's shape: everything lives under `[lab]`, so the lab's settings can
/// share a file with other tools' tables later without ambiguity.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabFile {
    lab: LabConfig,
}

impl LabConfig {
    /// A lab on loopback with ephemeral ports: the given sites and SMSC names, the
    /// account `hotsite`/`secret`, well-behaved receipts. For tests, the demo and
    /// benchmarks.
    pub fn loopback(sites: &[(&str, &[&str])]) -> LabConfig {
        LabConfig {
            control: default_control(),
            seed: default_seed(),
            accounts: vec![AccountConfig {
                system_id: "hotsite".to_owned(),
                password: "secret".to_owned(),
            }],
            receipts: ReceiptConfig::default(),
            dedupe: DedupeConfig::default(),
            deliveries: DeliveryConfig::default(),
            sites: sites
                .iter()
                .map(|(site, smscs)| SiteConfig {
                    name: (*site).to_owned(),
                    smsc: smscs
                        .iter()
                        .map(|name| SmscConfig {
                            name: (*name).to_owned(),
                            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                        })
                        .collect(),
                })
                .collect(),
            http: None,
            webhooks: Vec::new(),
            dns: None,
            smtp: None,
            phones: Vec::new(),
            links: Vec::new(),
            media_servers: Vec::new(),
        }
    }

    /// Two sites, `a` (`a1`, `a2`) and `b` (`b1`, `b2`), as [`LabConfig::loopback`].
    pub fn two_sites_two_smscs() -> LabConfig {
        LabConfig::loopback(&[("a", &["a1", "a2"]), ("b", &["b1", "b2"])])
    }

    /// Parses a `[lab]` TOML document and validates it.
    pub fn from_toml_str(text: &str) -> Result<LabConfig, ConfigError> {
        let file: LabFile =
            toml::from_str(text).map_err(|error| ConfigError::Parse(error.to_string()))?;
        file.lab.validate()?;
        Ok(file.lab)
    }

    /// Checks every bound and cross-reference; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let http_sites = self.http.as_ref().map_or(0, |http| http.sites.len());
        if self.sites.is_empty()
            && http_sites == 0
            && self.webhooks.is_empty()
            && self.dns.is_none()
            && self.smtp.is_none()
            && self.phones.is_empty()
            && self.links.is_empty()
            && self.media_servers.is_empty()
        {
            return Err(ConfigError::invalid(
                "lab.sites",
                "at least one site is needed (or an HTTP site, webhook receiver, \
                 DNS server, SMTP sink, phone, link or media server)",
            ));
        }
        if !self.sites.is_empty() || http_sites > 0 {
            self.validate_accounts()?;
        }
        self.receipts.validate()?;
        self.deliveries.validate()?;
        let mut fixed_addrs = FixedAddrs::default();
        if self.control.port() != 0 {
            fixed_addrs.claim("lab.control".to_owned(), self.control)?;
        }
        self.validate_sites(&mut fixed_addrs)?;
        if let Some(http) = &self.http {
            http.validate(&mut fixed_addrs)?;
        }
        servers::validate_webhooks(&self.webhooks, &mut fixed_addrs)?;
        // UDP ports are another namespace than TCP's.
        let mut fixed_udp_addrs = FixedAddrs::default();
        if let Some(dns) = &self.dns {
            dns.validate()?;
            fixed_udp_addrs.claim("lab.dns.listen".to_owned(), dns.listen)?;
        }
        if let Some(smtp) = &self.smtp {
            smtp.validate(&mut fixed_addrs)?;
        }
        peers::validate_phones(&self.phones, &mut fixed_udp_addrs)?;
        peers::validate_links(&self.links, &mut fixed_addrs, &mut fixed_udp_addrs)?;
        peers::validate_media_servers(&self.media_servers, &mut fixed_udp_addrs)?;
        Ok(())
    }

    fn validate_accounts(&self) -> Result<(), ConfigError> {
        if self.accounts.is_empty() {
            return Err(ConfigError::invalid(
                "lab.accounts",
                "at least one account is needed, or no bind can succeed",
            ));
        }
        let mut seen = HashSet::new();
        for (index, account) in self.accounts.iter().enumerate() {
            let key = format!("lab.accounts[{index}]");
            if account.system_id.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{key}.system_id"),
                    "must not be empty",
                ));
            }
            if account.system_id.len() > MAX_SYSTEM_ID_LEN {
                return Err(ConfigError::invalid(
                    format!("{key}.system_id"),
                    format!(
                        "must be at most {MAX_SYSTEM_ID_LEN} characters (SMPP 3.4), got {}",
                        account.system_id.len()
                    ),
                ));
            }
            if account.password.len() > MAX_PASSWORD_LEN {
                return Err(ConfigError::invalid(
                    format!("{key}.password"),
                    format!(
                        "must be at most {MAX_PASSWORD_LEN} characters (SMPP 3.4), got {}",
                        account.password.len()
                    ),
                ));
            }
            if !seen.insert(account.system_id.as_str()) {
                return Err(ConfigError::invalid(
                    format!("{key}.system_id"),
                    format!("duplicate account {:?}", account.system_id),
                ));
            }
        }
        Ok(())
    }

    fn validate_sites(&self, fixed_addrs: &mut FixedAddrs) -> Result<(), ConfigError> {
        let mut site_names = HashSet::new();
        for (site_index, site) in self.sites.iter().enumerate() {
            let site_key = format!("lab.sites[{site_index}]");
            check_name(&format!("{site_key}.name"), &site.name)?;
            if !site_names.insert(site.name.as_str()) {
                return Err(ConfigError::invalid(
                    format!("{site_key}.name"),
                    format!("duplicate site name {:?}", site.name),
                ));
            }
            if site.smsc.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{site_key}.smsc"),
                    format!("site {:?} needs at least one SMSC instance", site.name),
                ));
            }
            let mut smsc_names = HashSet::new();
            for (smsc_index, smsc) in site.smsc.iter().enumerate() {
                let smsc_key = format!("{site_key}.smsc[{smsc_index}]");
                check_name(&format!("{smsc_key}.name"), &smsc.name)?;
                if smsc.name.len() > MAX_SYSTEM_ID_LEN {
                    return Err(ConfigError::invalid(
                        format!("{smsc_key}.name"),
                        format!(
                            "must be at most {MAX_SYSTEM_ID_LEN} characters (it is the \
                             system_id of the instance's bind responses), got {}",
                            smsc.name.len()
                        ),
                    ));
                }
                if !smsc_names.insert(smsc.name.as_str()) {
                    return Err(ConfigError::invalid(
                        format!("{smsc_key}.name"),
                        format!(
                            "duplicate SMSC name {:?} in site {:?}",
                            smsc.name, site.name
                        ),
                    ));
                }
                fixed_addrs.claim(format!("{smsc_key}.listen"), smsc.listen)?;
            }
        }
        Ok(())
    }
}

impl ReceiptConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_probability(
            "lab.receipts.duplicate_probability",
            self.duplicate_probability,
        )?;
        check_probability(
            "lab.receipts.other_site_probability",
            self.other_site_probability,
        )?;
        if self.delay_ms > MAX_RECEIPT_DELAY_MS {
            return Err(ConfigError::invalid(
                "lab.receipts.delay_ms",
                format!(
                    "must be at most {MAX_RECEIPT_DELAY_MS}, got {}",
                    self.delay_ms
                ),
            ));
        }
        Ok(())
    }
}

impl Default for ReceiptConfig {
    fn default() -> ReceiptConfig {
        ReceiptConfig {
            delay_ms: default_receipt_delay_ms(),
            duplicate_probability: 0.0,
            other_site_probability: 0.0,
            final_state: FinalState::default(),
            submit_id_format: IdFormat::default(),
            receipt_id_format: IdFormat::default(),
            first_serial: default_first_serial(),
        }
    }
}

impl DeliveryConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range(
            "lab.deliveries.retry_interval_ms",
            self.retry_interval_ms,
            1,
            MAX_DELIVERY_WAIT_MS,
        )?;
        check_range(
            "lab.deliveries.response_timeout_ms",
            self.response_timeout_ms,
            1,
            MAX_DELIVERY_WAIT_MS,
        )?;
        check_range(
            "lab.deliveries.retry_attempts",
            u64::from(self.retry_attempts),
            0,
            MAX_RETRY_ATTEMPTS,
        )
    }
}

impl Default for DeliveryConfig {
    fn default() -> DeliveryConfig {
        DeliveryConfig {
            retry_interval_ms: default_retry_interval_ms(),
            retry_attempts: default_retry_attempts(),
            response_timeout_ms: default_response_timeout_ms(),
        }
    }
}

/// Checks `min <= value <= max`; `key` names it in the error.
fn check_range(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("must be between {min} and {max}, got {value}"),
        ))
    }
}

impl FinalState {
    /// The `message_state` TLV value.
    pub fn message_state(self) -> MessageState {
        match self {
            FinalState::Delivered => MessageState::Delivered,
            FinalState::Expired => MessageState::Expired,
            FinalState::Undeliverable => MessageState::Undeliverable,
            FinalState::Rejected => MessageState::Rejected,
        }
    }

    /// The `stat:` word of the receipt text.
    pub fn stat(self) -> &'static str {
        match self {
            FinalState::Delivered => "DELIVRD",
            FinalState::Expired => "EXPIRED",
            FinalState::Undeliverable => "UNDELIV",
            FinalState::Rejected => "REJECTD",
        }
    }
}

/// The fixed addresses of one transport (TCP or UDP) claimed so far, with the
/// key that claimed each: they must be distinct (port 0 is a fresh port every
/// time).
#[derive(Default)]
pub(crate) struct FixedAddrs {
    claimed: Vec<(SocketAddr, String)>,
}

impl FixedAddrs {
    /// Claims `addr` for `key`, unless its port is 0; an address claimed twice
    /// is an error naming both keys.
    pub(crate) fn claim(&mut self, key: String, addr: SocketAddr) -> Result<(), ConfigError> {
        if addr.port() == 0 {
            return Ok(());
        }
        if let Some((_, other)) = self.claimed.iter().find(|(claimed, _)| *claimed == addr) {
            return Err(ConfigError::invalid(
                key,
                format!("address {addr} is already used by {other}"),
            ));
        }
        self.claimed.push((addr, key));
        Ok(())
    }
}

/// Checks that `value` is a probability; `key` names it in the error.
pub(crate) fn check_probability(key: &str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("must be between 0 and 1, got {value}"),
        ))
    }
}

/// Site and instance names appear in URL paths of the control API and in
/// `site/name` target strings, so they are kept to a safe alphabet.
pub(crate) fn check_name(key: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::invalid(key, "must not be empty"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    if !name.chars().all(allowed) {
        return Err(ConfigError::invalid(
            key,
            format!(
                "{name:?} may only contain ASCII letters, digits, '-', '_' and '.' \
                 (it appears in control API paths)"
            ),
        ));
    }
    Ok(())
}

fn default_control() -> SocketAddr {
    loopback_any_port()
}

/// `127.0.0.1:0`: loopback, a free port.
pub(crate) fn loopback_any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn default_seed() -> u64 {
    1
}

fn default_receipt_delay_ms() -> u64 {
    20
}

fn default_retry_interval_ms() -> u64 {
    1000
}

fn default_retry_attempts() -> u32 {
    20
}

fn default_response_timeout_ms() -> u64 {
    10_000
}
