//! The optional servers beside the SMSC instances: the HTTP API's sites and its
//! callbacks (`[lab.http]`), webhook receivers (`[[lab.webhooks]]`), the DNS
//! server (`[lab.dns]`) and the SMTP sink (`[lab.smtp]`). Every section is
//! optional, so configurations written before them keep working.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::{check_name, loopback_any_port, ConfigError, FixedAddrs};

/// Callback retry intervals longer than this are a typo.
const MAX_CALLBACK_RETRY_MS: u64 = 60_000;
/// More attempts than this would keep a lab busy long after any test.
const MAX_CALLBACK_ATTEMPTS: u32 = 1_000;
/// Per-attempt callback timeouts longer than this are a typo.
const MAX_CALLBACK_TIMEOUT_MS: u64 = 60_000;
/// A day: longer TTLs defeat the point of moving records (SPEC M2).
const MAX_DNS_TTL_S: u32 = 86_400;
/// RFC 1035, 2.3.4.
const MAX_DNS_NAME_LEN: usize = 253;
/// RFC 1035, 2.3.4.
const MAX_DNS_LABEL_LEN: usize = 63;
/// Smallest SMTP message limit: below it even headers do not fit.
const MIN_SMTP_MESSAGE_BYTES: usize = 1_024;
/// Largest SMTP message limit: the sink keeps every mail in memory.
const MAX_SMTP_MESSAGE_BYTES: usize = 64 << 20;

/// The provider's HTTP API (`[lab.http]`): its sites and where it posts
/// delivery receipts and MOs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The sites, one HTTP server each (`[[lab.http.sites]]`).
    pub sites: Vec<HttpSiteConfig>,
    /// Where delivery receipts are posted (hotsite's DR callback URL). Without
    /// it, `receipt=1` asks for nothing.
    #[serde(default)]
    pub dr_url: Option<String>,
    /// Where MOs are posted (hotsite's MO callback URL).
    #[serde(default)]
    pub mo_url: Option<String>,
    /// When set, callbacks carry `X-Hub-Signature-256: sha256=<base64 HMAC>`
    /// of their body (SPEC M15).
    #[serde(default)]
    pub callback_secret: Option<String>,
    /// Every site listens on the same port, each at its own address (so one
    /// DNS name can move between them, SPEC M2). With port 0 the lab picks one
    /// free port for all. Defaults to false.
    #[serde(default)]
    pub shared_port: bool,
    /// Pause between attempts of a callback answered non-2xx or not
    /// answered. Defaults to 200.
    #[serde(default = "default_callback_retry_ms")]
    pub callback_retry_ms: u64,
    /// Attempts per callback before giving up. Defaults to 50.
    #[serde(default = "default_callback_max_attempts")]
    pub callback_max_attempts: u32,
    /// How long one attempt waits for an answer. Defaults to 2000.
    #[serde(default = "default_callback_timeout_ms")]
    pub callback_timeout_ms: u64,
}

/// One site of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSiteConfig {
    /// The site's name, unique among HTTP sites; the `site` of its callbacks.
    pub name: String,
    /// Where it listens. Port 0 picks a free port. Defaults to `127.0.0.1:0`.
    #[serde(default = "loopback_any_port")]
    pub listen: SocketAddr,
}

/// A webhook receiver (`[[lab.webhooks]]`): a digital channel's endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The receiver's name, unique among receivers.
    pub name: String,
    /// Where it listens. Port 0 picks a free port. Defaults to `127.0.0.1:0`.
    #[serde(default = "loopback_any_port")]
    pub listen: SocketAddr,
    /// When set, requests must carry a valid `X-Hub-Signature-256` (SPEC M15).
    #[serde(default)]
    pub secret: Option<String>,
}

/// The authoritative DNS server (`[lab.dns]`), UDP only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Where it listens (UDP). Port 0 picks a free port. Defaults to `127.0.0.1:0`.
    #[serde(default = "loopback_any_port")]
    pub listen: SocketAddr,
    /// The TTL of every answer, in seconds. Defaults to 1.
    #[serde(default = "default_dns_ttl_s")]
    pub ttl_s: u32,
    /// The names it knows (`[[lab.dns.records]]`); others are NXDOMAIN.
    #[serde(default)]
    pub records: Vec<DnsRecordConfig>,
}

/// One name and its addresses: IPv4 ones answer A queries, IPv6 ones AAAA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsRecordConfig {
    /// The name, such as `sms.lab.test` (case-insensitive, trailing dot optional).
    pub name: String,
    /// Its addresses; none answers NOERROR with no data.
    pub addrs: Vec<IpAddr>,
}

/// The SMTP sink (`[lab.smtp]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Where it listens. Port 0 picks a free port. Defaults to `127.0.0.1:0`.
    #[serde(default = "loopback_any_port")]
    pub listen: SocketAddr,
    /// Largest message accepted, in bytes of DATA. Defaults to 1 MiB.
    #[serde(default = "default_smtp_max_message_bytes")]
    pub max_message_bytes: usize,
}

impl HttpConfig {
    /// Sites on `127.0.0.1` with free ports of their own, no callbacks.
    pub fn loopback(sites: &[&str]) -> HttpConfig {
        HttpConfig {
            sites: sites
                .iter()
                .map(|name| HttpSiteConfig {
                    name: (*name).to_owned(),
                    listen: loopback_any_port(),
                })
                .collect(),
            dr_url: None,
            mo_url: None,
            callback_secret: None,
            shared_port: false,
            callback_retry_ms: default_callback_retry_ms(),
            callback_max_attempts: default_callback_max_attempts(),
            callback_timeout_ms: default_callback_timeout_ms(),
        }
    }

    /// Sites at their own loopback addresses (`127.0.0.1`, `127.0.0.2`, …:
    /// Linux answers on all of 127/8) sharing one free port, so a URL
    /// `http://NAME:PORT/` reaches whichever site the DNS record names (SPEC M2).
    pub fn shared_port(sites: &[(&str, IpAddr)]) -> HttpConfig {
        let mut config = HttpConfig::loopback(&[]);
        config.shared_port = true;
        config.sites = sites
            .iter()
            .map(|(name, ip)| HttpSiteConfig {
                name: (*name).to_owned(),
                listen: SocketAddr::new(*ip, 0),
            })
            .collect();
        config
    }

    pub(super) fn validate(&self, fixed_addrs: &mut FixedAddrs) -> Result<(), ConfigError> {
        if self.sites.is_empty() {
            return Err(ConfigError::invalid(
                "lab.http.sites",
                "at least one HTTP site is needed",
            ));
        }
        let mut names = HashSet::new();
        let mut ips = HashSet::new();
        for (index, site) in self.sites.iter().enumerate() {
            let key = format!("lab.http.sites[{index}]");
            check_name(&format!("{key}.name"), &site.name)?;
            if !names.insert(site.name.as_str()) {
                return Err(ConfigError::invalid(
                    format!("{key}.name"),
                    format!("duplicate HTTP site name {:?}", site.name),
                ));
            }
            let listen_key = format!("{key}.listen");
            if self.shared_port {
                let first = self.sites[0].listen;
                if site.listen.port() != first.port() {
                    return Err(ConfigError::invalid(
                        listen_key,
                        format!(
                            "with shared_port every site listens on the same port: \
                             {} has port {}, lab.http.sites[0].listen has {}",
                            site.listen,
                            site.listen.port(),
                            first.port()
                        ),
                    ));
                }
                if !ips.insert(site.listen.ip()) {
                    return Err(ConfigError::invalid(
                        listen_key,
                        format!(
                            "with shared_port every site needs its own address, and {} \
                             is taken by another site",
                            site.listen.ip()
                        ),
                    ));
                }
            }
            fixed_addrs.claim(listen_key, site.listen)?;
        }
        if let Some(url) = &self.dr_url {
            check_url("lab.http.dr_url", url)?;
        }
        if let Some(url) = &self.mo_url {
            check_url("lab.http.mo_url", url)?;
        }
        if self.callback_secret.as_deref() == Some("") {
            return Err(ConfigError::invalid(
                "lab.http.callback_secret",
                "must not be empty (leave it out to send unsigned callbacks)",
            ));
        }
        check_range(
            "lab.http.callback_retry_ms",
            self.callback_retry_ms,
            1,
            MAX_CALLBACK_RETRY_MS,
        )?;
        check_range(
            "lab.http.callback_max_attempts",
            u64::from(self.callback_max_attempts),
            1,
            u64::from(MAX_CALLBACK_ATTEMPTS),
        )?;
        check_range(
            "lab.http.callback_timeout_ms",
            self.callback_timeout_ms,
            1,
            MAX_CALLBACK_TIMEOUT_MS,
        )
    }
}

impl WebhookConfig {
    /// A receiver on `127.0.0.1` with a free port.
    pub fn loopback(name: &str, secret: Option<&str>) -> WebhookConfig {
        WebhookConfig {
            name: name.to_owned(),
            listen: loopback_any_port(),
            secret: secret.map(str::to_owned),
        }
    }
}

pub(super) fn validate_webhooks(
    webhooks: &[WebhookConfig],
    fixed_addrs: &mut FixedAddrs,
) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    for (index, webhook) in webhooks.iter().enumerate() {
        let key = format!("lab.webhooks[{index}]");
        check_name(&format!("{key}.name"), &webhook.name)?;
        if !names.insert(webhook.name.as_str()) {
            return Err(ConfigError::invalid(
                format!("{key}.name"),
                format!("duplicate webhook receiver name {:?}", webhook.name),
            ));
        }
        if webhook.secret.as_deref() == Some("") {
            return Err(ConfigError::invalid(
                format!("{key}.secret"),
                "must not be empty (leave it out to accept unsigned requests)",
            ));
        }
        fixed_addrs.claim(format!("{key}.listen"), webhook.listen)?;
    }
    Ok(())
}

impl DnsConfig {
    /// A server on `127.0.0.1` with a free port, the default TTL (1 s), and
    /// these records.
    pub fn loopback(records: &[(&str, &[IpAddr])]) -> DnsConfig {
        DnsConfig {
            listen: loopback_any_port(),
            ttl_s: default_dns_ttl_s(),
            records: records
                .iter()
                .map(|(name, addrs)| DnsRecordConfig {
                    name: (*name).to_owned(),
                    addrs: addrs.to_vec(),
                })
                .collect(),
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check_range(
            "lab.dns.ttl_s",
            u64::from(self.ttl_s),
            0,
            u64::from(MAX_DNS_TTL_S),
        )?;
        let mut names = HashSet::new();
        for (index, record) in self.records.iter().enumerate() {
            let key = format!("lab.dns.records[{index}].name");
            let name = normalize_dns_name(&record.name)
                .map_err(|reason| ConfigError::invalid(&key, reason))?;
            if !names.insert(name) {
                return Err(ConfigError::invalid(
                    key,
                    format!("duplicate name {:?}", record.name),
                ));
            }
        }
        Ok(())
    }
}

/// The lower-case form of a DNS name without its trailing dot, or why it is
/// not a name the server can answer for.
pub(crate) fn normalize_dns_name(name: &str) -> Result<String, String> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if trimmed.len() > MAX_DNS_NAME_LEN {
        return Err(format!(
            "must be at most {MAX_DNS_NAME_LEN} characters, got {}",
            trimmed.len()
        ));
    }
    for label in trimmed.split('.') {
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if label.is_empty() || label.len() > MAX_DNS_LABEL_LEN || !label.chars().all(allowed) {
            return Err(format!(
                "{name:?} is not a DNS name: labels are 1 to {MAX_DNS_LABEL_LEN} ASCII \
                 letters, digits, '-' or '_'"
            ));
        }
    }
    Ok(trimmed.to_ascii_lowercase())
}

impl SmtpConfig {
    /// A sink on `127.0.0.1` with a free port and the default size limit.
    pub fn loopback() -> SmtpConfig {
        SmtpConfig {
            listen: loopback_any_port(),
            max_message_bytes: default_smtp_max_message_bytes(),
        }
    }

    pub(super) fn validate(&self, fixed_addrs: &mut FixedAddrs) -> Result<(), ConfigError> {
        check_range(
            "lab.smtp.max_message_bytes",
            self.max_message_bytes as u64,
            MIN_SMTP_MESSAGE_BYTES as u64,
            MAX_SMTP_MESSAGE_BYTES as u64,
        )?;
        fixed_addrs.claim("lab.smtp.listen".to_owned(), self.listen)
    }
}

fn check_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|error| ConfigError::invalid(key, format!("{url:?}: {error}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(
            key,
            format!("{url:?}: must be an http:// or https:// URL"),
        ));
    }
    Ok(())
}

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

fn default_callback_retry_ms() -> u64 {
    200
}

fn default_callback_max_attempts() -> u32 {
    50
}

fn default_callback_timeout_ms() -> u64 {
    2_000
}

fn default_dns_ttl_s() -> u32 {
    1
}

fn default_smtp_max_message_bytes() -> usize {
    1 << 20
}
