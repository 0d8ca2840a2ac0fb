//! The gateway's configuration file (`hotsite.toml`): parsing and validation.
//!
//! The file is read with `deny_unknown_fields`, then validated into the typed
//! settings of each state machine before any socket opens. Every error names the
//! key and the reason; all errors are reported at once, not one per run.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;


use hotsite_core::config::{
    check_host_port, check_http_url, parse_socket_addr, Issues, WrittenDuration,
};
use hotsite_core::{BackoffConfig, Secret, Target};
use hotsite_host::{HostConfig, ServerConfig};
use hotsite_messaging::dispatcher::DispatcherConfig;
use hotsite_messaging::inbox::InboxConfig;
use hotsite_messaging::policy::AmbiguousPolicy;
use hotsite_messaging::webhook::WebhookConfig;
use hotsite_messaging::GatewayConfig;
use hotsite_smpp::driver::ClientConfig;
use hotsite_smpp::pdu::BindKind;
use hotsite_smpp::pool::PoolConfig;
use hotsite_smpp::session::SessionConfig;
use hotsite_store::ReceiptIdFormat;
use serde::Deserialize;

/// `hotsite.toml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// The site this instance of hotsite runs at: its name and, with
    /// `listen`, business continuity (SPEC S1–S8).
    pub(crate) site: hotsite_site::SiteConfig,
    /// SMPP connections to the aggregator: the channel named `smpp`.
    pub(crate) smpp: Option<SmppSection>,
    /// The other channels: HTTP aggregators, digital channels' webhooks, e-mail.
    #[serde(default)]
    pub(crate) channels: Vec<channels::ChannelTable>,
    /// Fallback chains over the channels (SPEC M11).
    #[serde(default)]
    pub(crate) routes: Vec<RouteEntry>,
    /// Which route messages take when they name none.
    #[serde(default)]
    pub(crate) routing: RoutingSection,
    /// The trunk failover proxy (SPEC V1–V4); none: no voice at this site.
    pub(crate) voice: Option<hotsite_voice::VoiceConfig>,
    /// The HTTP API.
    pub(crate) api: ApiSection,
    /// The durable store.
    #[serde(default)]
    pub(crate) store: StoreSection,
    /// Where MO and receipts are delivered.
    pub(crate) webhook: Option<WebhookSection>,
    /// The desktop service (SPEC D1–D6); needs business continuity.
    pub(crate) desktop: Option<hotsite_desktop::service::DesktopConfig>,
    /// Recording continuity (SPEC R1–R4) of the voice proxy's anchored
    /// calls; needs `[voice]`.
    pub(crate) recording: Option<hotsite_recording::config::RecordingConfig>,
}

/// `[[routes]]`: one fallback chain.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteEntry {
    /// The name messages ask for (`"route": "chat"`).
    pub(crate) name: String,
    /// Channel names, first to last.
    pub(crate) hops: Vec<String>,
}

/// `[routing]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoutingSection {
    /// The route of messages that name none; the first `[[routes]]` entry (or
    /// `sms`, the SMPP binds alone, when there are no routes) by default.
    pub(crate) default_route: Option<String>,
}

/// `[api]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiSection {
    /// `host:port` to listen on.
    pub(crate) listen: String,
    /// Bearer tokens accepted.
    pub(crate) tokens: Vec<Secret>,
    /// Sender used when a message names none.
    #[serde(default = "default_from")]
    pub(crate) default_from: String,
    /// Connections open at once (default 1024), lowered at start to fit the
    /// process's open-file limit (DESIGN.md invariant 6).
    pub(crate) max_connections: Option<usize>,
    /// Time a client has to send a whole request head (default 10s).
    pub(crate) header_timeout: Option<WrittenDuration>,
    /// Time a keep-alive connection may wait for its next request (default 60s).
    pub(crate) idle_timeout: Option<WrittenDuration>,
    /// Time to handle a whole request, body included (default 30s).
    pub(crate) request_timeout: Option<WrittenDuration>,
}

impl ApiSection {
    /// The API server's bounds, adding every problem to `issues`.
    fn server(&self, issues: &mut Issues) -> ServerConfig {
        let mut server = ServerConfig::default();
        if let Some(max) = self.max_connections {
            if max == 0 {
                issues.add("api.max_connections", "must be at least 1");
            }
            server.max_connections = max;
        }
        let timeouts = [
            (
                "header_timeout",
                &self.header_timeout,
                &mut server.header_timeout,
            ),
            ("idle_timeout", &self.idle_timeout, &mut server.idle_timeout),
            (
                "request_timeout",
                &self.request_timeout,
                &mut server.request_timeout,
            ),
        ];
        for (key, written, into) in timeouts {
            let Some(written) = written else { continue };
            if let Some(parsed) = issues.positive_duration(&format!("api.{key}"), written, "10s") {
                *into = parsed;
            }
        }
        server
    }
}

fn yes() -> bool {
    true
}

fn default_from() -> String {
    "hotsite".to_owned()
}

/// `[webhook]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookSection {
    /// The application's URL for MO and receipts.
    pub(crate) url: String,
    /// HMAC-SHA256 secret of the signature header (SPEC M15).
    pub(crate) secret: Secret,
    /// Per-request timeout.
    pub(crate) timeout: Option<WrittenDuration>,
}

/// `[smpp]`. Durations are strings such as `"35s"` or `"500ms"`; a bad one is
/// reported with the section's other problems, not alone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SmppSection {
    pub(crate) system_id: String,
    pub(crate) password: Secret,
    #[serde(default)]
    pub(crate) system_type: String,
    #[serde(default)]
    pub(crate) bind: BindName,
    pub(crate) window: Option<usize>,
    pub(crate) enquire_link_interval: Option<WrittenDuration>,
    pub(crate) dead_peer_timeout: Option<WrittenDuration>,
    pub(crate) response_timeout: Option<WrittenDuration>,
    pub(crate) connect_timeout: Option<WrittenDuration>,
    pub(crate) throttle_pause: Option<WrittenDuration>,
    pub(crate) throttle_pause_max: Option<WrittenDuration>,
    pub(crate) rebind_interval: Option<WrittenDuration>,
    pub(crate) rebind_jitter: Option<WrittenDuration>,
    /// Seeds the rebind jitter; defaults to a hash of the site name so that
    /// gateways of different sites do not rebind in lockstep.
    pub(crate) seed: Option<u64>,
    /// Ask for a delivery receipt on every message (`registered_delivery` 1).
    #[serde(default = "yes")]
    pub(crate) receipts: bool,
    /// What to do with a submit whose outcome is unknown (SPEC M8):
    /// `resubmit` (default) or `fail`.
    #[serde(default)]
    pub(crate) ambiguous: AmbiguousName,
    /// A destination's `user_message_reference`s run on in sequence while it had
    /// a message this recently (SPEC M16); default `"24h"`.
    pub(crate) reference_window: Option<WrittenDuration>,
    /// An MO received again within this long of its first copy is a repeat
    /// (SPEC M8); default `"10m"`.
    pub(crate) mo_dedupe_window: Option<WrittenDuration>,
    /// How long a receipt that matches no message waits for its submit response
    /// before the application gets it uncorrelated (SPEC M13); default `"60s"`.
    pub(crate) receipt_correlation_wait: Option<WrittenDuration>,
    /// Every SMSC instance of every site of the aggregator (SPEC M4).
    #[serde(default)]
    pub(crate) smsc: Vec<SmscEntry>,
}

/// The bind kind, as written in the file.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BindName {
    #[default]
    Transceiver,
    Transmitter,
    Receiver,
}

/// The ambiguous-submit policy, as written in the file.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AmbiguousName {
    #[default]
    Resubmit,
    Hold,
    Fail,
}

/// `[[smpp.smsc]]`: one SMSC instance.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SmscEntry {
    /// The provider's site the instance belongs to.
    pub(crate) site: String,
    /// The instance's name, unique within its site.
    pub(crate) name: String,
    /// `host:port`.
    pub(crate) address: String,
    /// How the instance writes a receipt's `receipted_message_id` relative to
    /// the `message_id` of its submit responses (SPEC M13): `same` (default; case
    /// and leading zeros never matter), `decimal` (hex ids come back in decimal),
    /// `hex` (decimal ids come back in hex) or `auto` (tries all three).
    #[serde(default)]
    pub(crate) receipt_id_format: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// This site's name.
    pub(crate) site: String,
    /// The host: the HTTP API's address, bounds and tokens (`[api]`).
    pub(crate) host: HostConfig,
    /// The gateway's settings, SMPP client included.
    pub(crate) gateway: GatewayConfig,
    /// The store: an SQLite file, or a PostgreSQL database shared by gateways.
    pub(crate) store: StoreChoice,
    /// The trunk failover proxy, validated.
    pub(crate) voice: Option<hotsite_voice::VoiceConfig>,
    /// Business continuity (SPEC S1–S8), validated; none without
    /// `site.listen`.
    pub(crate) continuity: Option<hotsite_site::SiteConfig>,
    /// The desktop service, validated against `[site]`; runs after the site.
    pub(crate) desktop: Option<hotsite_desktop::service::DesktopConfig>,
    /// Recording of the anchored calls, validated; needs `[voice]`.
    pub(crate) recording: Option<hotsite_recording::config::RecordingConfig>,
    /// Whether messaging runs: `[smpp]` or `[[routes]]` are configured. A
    /// site may run only voice or business continuity.
    pub(crate) messaging: bool,
}

/// One problem in a configuration file: the key and why.
pub(crate) use hotsite_core::ConfigIssue;

/// Every problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) struct ConfigError(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl ConfigError {
    fn single(key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError(vec![ConfigIssue {
            key: key.to_owned(),
            reason: reason.into(),
        }])
    }
}

impl Config {
    /// One line on what the gateway sends with: SMSC instances and provider
    /// sites, other channels, and the routes with their hops.
    pub(crate) fn summary(&self) -> String {
        let gateway = &self.gateway;
        let mut parts = Vec::new();
        if let Some(smpp) = &gateway.smpp {
            let sites: HashSet<_> = smpp.instances.iter().map(|(t, _)| t.site.clone()).collect();
            parts.push(format!(
                "{} SMSC instances on {} provider sites",
                smpp.instances.len(),
                sites.len()
            ));
        }
        if !gateway.channels.is_empty() {
            let names: Vec<&str> = gateway.channels.iter().map(|(n, _)| n.as_str()).collect();
            parts.push(format!("channels {}", names.join(", ")));
        }
        let routes: Vec<String> = gateway
            .routes
            .iter()
            .map(|route| {
                let hops: Vec<&str> = route.hops.iter().map(|(n, _)| n.as_str()).collect();
                format!("{} ({})", route.name, hops.join(" -> "))
            })
            .collect();
        match gateway
            .default_route
            .as_deref()
            .or(routes.first().map(|_| gateway.routes[0].name.as_str()))
        {
            Some(default) => parts.push(format!("routes {}; default {default}", routes.join(", "))),
            None if self.messaging => parts.push("route sms (smpp)".to_owned()),
            None => parts.push("no messaging".to_owned()),
        }
        if let Some(site) = &self.continuity {
            parts.push(format!(
                "business continuity on {} ({}, {} DNs, {} agents)",
                site.listen.as_deref().unwrap_or("?"),
                site.dr_peer_trunk
                    .as_deref()
                    .map_or("single-site".to_owned(), |peer| format!("peer {peer}")),
                site.dns.len(),
                site.agents.len()
            ));
        }
        if let Some(desktop) = &self.desktop {
            parts.push(format!(
                "desktops at /v1/desktop ({} people, at most {} connections)",
                desktop.people.len(),
                desktop.max_connections
            ));
        }
        parts.join("; ")
    }

    /// Parses and validates `hotsite.toml` text.
    pub(crate) fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        // serde_path_to_error records the key path serde was in when it
        // failed; toml's own error names only the line, and for a type error
        // not even the key (`invalid type: string "x", expected usize`).
        let file: ConfigFile = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|error| parse_error(text, error))?;
        file.validate()
    }
}

impl ConfigFile {
    /// Turns the file into typed settings, or lists everything wrong with it.
    pub(crate) fn validate(self) -> Result<Config, ConfigError> {
        let mut issues = Issues::new();
        if self.site.name.trim().is_empty() {
            issues.add("site.name", "must not be empty");
        }
        let smpp = self
            .smpp
            .as_ref()
            .map(|section| section.validate(&self.site.name, &mut issues));
        let api_listen = issues.check("api.listen", parse_socket_addr(&self.api.listen));
        let api_server = self.api.server(&mut issues);
        if self.api.tokens.is_empty() || self.api.tokens.iter().any(|t| t.expose().len() < 8) {
            issues.add(
                "api.tokens",
                "list at least one bearer token, each at least 8 characters",
            );
        }
        let mut webhook = None;
        if let Some(section) = &self.webhook {
            if let Err(reason) = check_http_url(&section.url) {
                issues.add("webhook.url", reason);
            }
            issues.secret(
                "webhook.secret",
                &section.secret,
                16,
                "it signs every webhook, SPEC M15",
            );
            let timeout = match &section.timeout {
                Some(written) => issues
                    .positive_duration("webhook.timeout", written, "5s")
                    .unwrap_or_default(),
                None => Duration::from_secs(5),
            };
            webhook = Some(WebhookConfig {
                url: section.url.clone(),
                secret: section.secret.clone(),
                timeout,
                backoff: BackoffConfig {
                    initial: Duration::from_secs(1),
                    max: Duration::from_secs(300),
                    multiplier: 2,
                },
                concurrency: 16,
            });
        }
        let mut dispatcher = DispatcherConfig::default();
        if let Some(smpp) = &smpp {
            dispatcher.ambiguous = smpp.ambiguous;
            dispatcher.registered_delivery = u8::from(smpp.receipts);
        }
        let (channels, routes) = channels::validate(
            &self.channels,
            &self.routes,
            smpp.as_ref().map(|smpp| smpp.ambiguous),
            &mut issues,
        );
        let default_route = self.routing.default_route.clone();
        if let Some(name) = &default_route {
            let known = if self.routes.is_empty() {
                name == "sms" && self.smpp.is_some()
            } else {
                self.routes.iter().any(|route| &route.name == name)
            };
            if !known {
                issues.add(
                    "routing.default_route",
                    format!("{name:?} is not a route defined in [[routes]]"),
                );
            }
        }
        let messaging = self.smpp.is_some() || !self.routes.is_empty();
        if !messaging && self.voice.is_none() && !self.site.enabled() {
            issues.add(
                "smpp",
                "nothing to run: configure [smpp], or [[channels]] and [[routes]] \
                 (messaging), [voice] (trunks) or site.listen (business continuity)",
            );
        }
        if let Err(error) = self.site.validate() {
            issues.extend_under("", error.0.iter().cloned());
        }
        if let Some(Err(error)) = self.desktop.as_ref().map(|d| d.validate(&self.site)) {
            issues.extend_under("", error.0.iter().cloned());
        }
        if let Some(Err(error)) = self.voice.as_ref().map(|voice| voice.validate()) {
            issues.extend_under("", error.issues().iter().cloned());
        }
        if let Some(recording) = &self.recording {
            recording.validate(&mut issues);
            if self.voice.is_none() {
                issues.add(
                    "recording",
                    "records the voice proxy's anchored calls: configure [voice] \
                     with a group whose media = \"anchor\"",
                );
            }
        }
        let (mut store, lease) = self.store.validate(&mut issues);
        dispatcher.lease = lease;
        dispatcher.name = self.site.name.clone();
        if let Err(issues) = issues.finish() {
            return Err(ConfigError(issues));
        }
        let inbox = match &smpp {
            Some(smpp) => {
                match &mut store {
                    StoreChoice::Sqlite { options, .. } => {
                        options.reference_window_ms = millis(smpp.reference_window);
                        options.receipt_correlation_wait_ms = millis(smpp.correlation_wait);
                    }
                    StoreChoice::Postgres(options) => {
                        options.reference_window_ms = millis(smpp.reference_window);
                        options.receipt_correlation_wait_ms = millis(smpp.correlation_wait);
                    }
                }
                smpp.inbox.clone()
            }
            None => InboxConfig::default(),
        };
        let gateway = GatewayConfig {
            inbox,
            smpp: smpp.map(|smpp| smpp.client.expect("valid when there are no issues")),
            channels,
            routes,
            default_route,
            default_from: self.api.default_from,
            dispatcher,
            webhook,
        };
        let host = HostConfig {
            listen: api_listen.expect("checked above"),
            server: api_server,
            tokens: self.api.tokens,
        };
        Ok(Config {
            site: self.site.name.clone(),
            host,
            gateway,
            store,
            voice: self.voice,
            continuity: self.site.enabled().then(|| self.site.clone()),
            desktop: self.desktop,
            recording: self.recording,
            messaging,
        })
    }
}

/// The SMPP channel's validated settings.
pub(crate) struct SmppSettings {
    /// The client's settings; `None` when something was wrong (then `issues`
    /// says what).
    pub(crate) client: Option<ClientConfig>,
    pub(crate) ambiguous: AmbiguousPolicy,
    pub(crate) receipts: bool,
    pub(crate) inbox: InboxConfig,
    pub(crate) reference_window: Duration,
    pub(crate) correlation_wait: Duration,
}

impl SmppSection {
    /// Validates `[smpp]`, adding every problem to `issues`.
    fn validate(&self, site: &str, issues: &mut Issues) -> SmppSettings {
        let smpp = self;
        let before = issues.len();
        let mut session = SessionConfig::new(&smpp.system_id, smpp.password.expose());
        session.system_type = smpp.system_type.clone();
        session.bind_kind = match smpp.bind {
            BindName::Transceiver => BindKind::Transceiver,
            BindName::Transmitter => BindKind::Transmitter,
            BindName::Receiver => BindKind::Receiver,
        };
        if let Some(window) = smpp.window {
            session.window = window;
        }
        let mut duration = |key: &str, value: &Option<WrittenDuration>, into: &mut Duration| {
            if let Some(written) = value {
                if let Some(parsed) = issues.duration(&format!("smpp.{key}"), written) {
                    *into = parsed;
                }
            }
        };
        duration(
            "enquire_link_interval",
            &smpp.enquire_link_interval,
            &mut session.enquire_link_interval,
        );
        duration(
            "dead_peer_timeout",
            &smpp.dead_peer_timeout,
            &mut session.dead_peer_timeout,
        );
        duration(
            "response_timeout",
            &smpp.response_timeout,
            &mut session.response_timeout,
        );
        duration(
            "throttle_pause",
            &smpp.throttle_pause,
            &mut session.throttle_pause,
        );
        duration(
            "throttle_pause_max",
            &smpp.throttle_pause_max,
            &mut session.throttle_pause_max,
        );
        let mut pool = PoolConfig::default();
        duration(
            "rebind_interval",
            &smpp.rebind_interval,
            &mut pool.rebind_interval,
        );
        duration(
            "rebind_jitter",
            &smpp.rebind_jitter,
            &mut pool.rebind_jitter,
        );
        let mut connect_timeout = Duration::from_secs(5);
        duration(
            "connect_timeout",
            &smpp.connect_timeout,
            &mut connect_timeout,
        );
        let mut reference_window = Duration::from_secs(24 * 3600);
        duration(
            "reference_window",
            &smpp.reference_window,
            &mut reference_window,
        );
        let mut inbox = InboxConfig::default();
        duration(
            "mo_dedupe_window",
            &smpp.mo_dedupe_window,
            &mut inbox.mo_dedupe_window,
        );
        let mut correlation_wait = Duration::from_secs(60);
        duration(
            "receipt_correlation_wait",
            &smpp.receipt_correlation_wait,
            &mut correlation_wait,
        );
        for (key, value, max) in [
            (
                "reference_window",
                reference_window,
                Duration::from_secs(30 * 86_400),
            ),
            (
                "mo_dedupe_window",
                inbox.mo_dedupe_window,
                Duration::from_secs(86_400),
            ),
            (
                "receipt_correlation_wait",
                correlation_wait,
                Duration::from_secs(86_400),
            ),
        ] {
            if value.is_zero() || value > max {
                issues.add(
                    &format!("smpp.{key}"),
                    format!(
                        "must be greater than zero and at most {}, got {}",
                        humantime::format_duration(max),
                        humantime::format_duration(value)
                    ),
                );
            }
        }
        if issues.len() == before {
            if let Err(error) = session.validate() {
                issues.add(&format!("smpp.{}", error.key()), error.to_string());
            }
            if let Err(error) = pool.validate() {
                issues.add(&format!("smpp.{}", error.key()), error.to_string());
            }
            if connect_timeout.is_zero() {
                issues.add("smpp.connect_timeout", "must be greater than zero");
            }
        }
        if smpp.smsc.is_empty() {
            issues.add(
                "smpp.smsc",
                "list at least one SMSC instance ([[smpp.smsc]] with site, name, address)",
            );
        }
        let mut seen = HashSet::new();
        let mut instances = Vec::new();
        for (i, entry) in smpp.smsc.iter().enumerate() {
            let key = format!("smpp.smsc[{i}]");
            if entry.site.trim().is_empty() {
                issues.add(&format!("{key}.site"), "must not be empty");
            }
            if entry.name.trim().is_empty() {
                issues.add(&format!("{key}.name"), "must not be empty");
            }
            if !seen.insert((entry.site.as_str(), entry.name.as_str())) {
                issues.add(
                    &format!("{key}.name"),
                    format!("{}/{} is listed twice", entry.site, entry.name),
                );
            }
            if let Err(reason) = check_host_port(&entry.address) {
                issues.add(&format!("{key}.address"), reason);
            }
            if let Some(text) = &entry.receipt_id_format {
                match text.parse::<ReceiptIdFormat>() {
                    Ok(format) => {
                        inbox
                            .receipt_id_formats
                            .insert(Target::new(&entry.site, &entry.name), format);
                    }
                    Err(reason) => issues.add(&format!("{key}.receipt_id_format"), reason),
                }
            }
            instances.push((Target::new(&entry.site, &entry.name), entry.address.clone()));
        }
        let ambiguous = match smpp.ambiguous {
            AmbiguousName::Resubmit => AmbiguousPolicy::Resubmit,
            AmbiguousName::Fail => AmbiguousPolicy::Fail,
            AmbiguousName::Hold => {
                issues.add(
                        "smpp.ambiguous",
                        "\"hold\" is not possible over SMPP: a submit without a response has no message id, so no receipt can be matched to it; use \"resubmit\" or \"fail\"",
                    );
                AmbiguousPolicy::Fail
            }
        };

        let client = (issues.len() == before).then(|| ClientConfig {
            session,
            pool,
            instances,
            connect_timeout,
            seed: smpp.seed.unwrap_or_else(|| fnv1a(site.as_bytes())),
        });
        SmppSettings {
            client,
            ambiguous,
            receipts: smpp.receipts,
            inbox,
            reference_window,
            correlation_wait,
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A parse error of `text` as one issue: the full key path (`api.max_connections`,
/// `smpp.smsc[1].address`) when serde was inside a key, and the line.
pub(crate) fn parse_error(
    text: &str,
    error: serde_path_to_error::Error<toml::de::Error>,
) -> ConfigError {
    let path = error.path().to_string();
    let error = error.into_inner();
    let line = error.span().map(|span| line_of(text, span.start));
    let message = error.message().trim();
    match (path.as_str(), line) {
        ("." | "", Some(line)) => ConfigError::single(&format!("line {line}"), message),
        ("." | "", None) => ConfigError::single("file", message),
        (path, Some(line)) => ConfigError::single(path, format!("{message} (line {line})")),
        (path, None) => ConfigError::single(path, message),
    }
}

/// The 1-based line of byte `offset` in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A stable hash for default seeds (FNV-1a): the same site always gets the same
/// jitter sequence, different sites get different ones.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

mod channels;
mod store;
pub(crate) use store::StoreChoice;
use store::StoreSection;
#[cfg(test)]
mod tests;
