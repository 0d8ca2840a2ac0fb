//! `[[channels]]` and `[[routes]]`: the channels other than the SMPP binds, and
//! the fallback chains over them (SPEC M10, M11).
//!
//! Every channel entry has `name` and `kind` and the retry settings of its hop
//! (`retry_budget`, `retry_initial`, `retry_max`); the other keys depend on the
//! kind and are checked by that kind's own settings, with unknown keys refused.

use std::time::Duration;

use hotsite_core::config::{check_http_url, Issues, WrittenDuration};
use hotsite_core::{BackoffConfig, Secret};
use hotsite_messaging::channel::aggregator::{AggregatorConfig, AggregatorConfigError};
use hotsite_messaging::channel::digital::DigitalConfig;
use hotsite_messaging::channel::email::EmailConfig;
use hotsite_messaging::gateway::{ChannelConfig, RouteConfig};
use hotsite_messaging::policy::{AmbiguousPolicy, HopPolicy};
use serde::Deserialize;

use super::RouteEntry;

/// One `[[channels]]` entry as written, checked by [`validate`] entry by entry
/// so that the problems of every entry are reported together. `{:?}` shows its
/// keys, not their values: some of them are secrets.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub(crate) struct ChannelTable(pub(crate) toml::Table);

impl std::fmt::Debug for ChannelTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |key: &str| self.0.get(key).and_then(toml::Value::as_str);
        f.debug_struct("ChannelTable")
            .field("name", &text("name"))
            .field("kind", &text("kind"))
            .field("keys", &self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The channel kinds, as written in `kind`.
const KINDS: &str = "\"http\", \"webhook\", \"email\"";

/// The SMPP binds' channel name.
const SMPP: &str = "smpp";

/// Settings every channel has: the retry policy of its hop.
#[derive(Debug)]
struct Common {
    name: String,
    kind: String,
    policy: HopPolicy,
}

/// Validates `[[channels]]` and `[[routes]]` into the gateway's settings,
/// adding every problem to `issues`.
pub(crate) fn validate(
    entries: &[ChannelTable],
    routes: &[RouteEntry],
    smpp_ambiguous: Option<AmbiguousPolicy>,
    issues: &mut Issues,
) -> (Vec<(String, ChannelConfig)>, Vec<RouteConfig>) {
    let mut channels: Vec<(String, ChannelConfig, HopPolicy)> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let key = format!("channels[{i}]");
        let mut table = entry.0.clone();
        let Some(common) = common(&key, &mut table, issues) else {
            continue;
        };
        if common.name == SMPP || channels.iter().any(|(name, ..)| *name == common.name) {
            issues.add(
                &format!("{key}.name"),
                format!(
                    "{:?} is already a channel (\"smpp\" is the SMPP binds)",
                    common.name
                ),
            );
            continue;
        }
        let config = match common.kind.as_str() {
            "webhook" => webhook(&key, &common.name, table, issues).map(ChannelConfig::Digital),
            "email" => email(&key, table, issues).map(ChannelConfig::Email),
            "http" => http(&key, &common.name, table, issues),
            other => {
                issues.add(
                    &format!("{key}.kind"),
                    format!("unknown kind {other:?}; one of {KINDS}"),
                );
                None
            }
        };
        if let Some(config) = config {
            channels.push((common.name, config, common.policy));
        }
    }
    let mut route_configs = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        if route.name.trim().is_empty() || route.name.len() > 64 {
            issues.add(&format!("{key}.name"), "must be 1 to 64 characters");
        }
        if routes[..i].iter().any(|other| other.name == route.name) {
            issues.add(
                &format!("{key}.name"),
                format!("route {:?} is defined twice", route.name),
            );
        }
        if route.hops.is_empty() {
            issues.add(
                &format!("{key}.hops"),
                "list at least one channel, e.g. [\"primary-chat\", \"email\"]",
            );
        }
        let mut hops = Vec::new();
        for (h, hop) in route.hops.iter().enumerate() {
            if hop == SMPP {
                match smpp_ambiguous {
                    Some(ambiguous) => hops.push((hop.clone(), smpp_policy(ambiguous))),
                    None => issues.add(
                        &format!("{key}.hops[{h}]"),
                        "\"smpp\" needs an [smpp] section",
                    ),
                }
                continue;
            }
            match channels.iter().find(|(name, ..)| name == hop) {
                Some((_, _, policy)) => hops.push((hop.clone(), *policy)),
                None => issues.add(
                    &format!("{key}.hops[{h}]"),
                    format!("no channel named {hop:?} in [[channels]] (or \"smpp\")"),
                ),
            }
        }
        route_configs.push(RouteConfig {
            name: route.name.clone(),
            hops,
        });
    }
    let channels = channels
        .into_iter()
        .map(|(name, config, _)| (name, config))
        .collect();
    (channels, route_configs)
}

/// The SMPP hop's policy in a route: the dispatcher's budget and backoff, and
/// `smpp.ambiguous`.
fn smpp_policy(ambiguous: AmbiguousPolicy) -> HopPolicy {
    let dispatcher = hotsite_messaging::dispatcher::DispatcherConfig::default();
    HopPolicy {
        budget: Some(dispatcher.retry_budget),
        backoff: dispatcher.backoff,
        ambiguous,
    }
}

/// Takes `name`, `kind` and the retry keys out of `table`.
fn common(key: &str, table: &mut toml::Table, issues: &mut Issues) -> Option<Common> {
    let mut text = |field: &str, table: &mut toml::Table| -> Option<String> {
        match table.remove(field) {
            Some(toml::Value::String(value)) if !value.trim().is_empty() => Some(value),
            Some(_) => {
                issues.add(&format!("{key}.{field}"), "must be a non-empty string");
                None
            }
            None => {
                issues.add(&format!("{key}.{field}"), "required");
                None
            }
        }
    };
    let name = text("name", table);
    let kind = text("kind", table);
    let (name, kind) = (name?, kind?);
    let defaults = default_policy(&kind);
    let mut policy = defaults;
    match table.remove("retry_budget") {
        None => {}
        Some(toml::Value::Integer(0)) => policy.budget = None,
        Some(toml::Value::Integer(n)) if (1..=1_000_000).contains(&n) => {
            policy.budget = Some(n as u32)
        }
        Some(_) => issues.add(
            &format!("{key}.retry_budget"),
            "must be 0 (never move on) or a number of sends from 1 to 1000000",
        ),
    }
    let mut duration =
        |field: &str, into: &mut Duration, table: &mut toml::Table| match table.remove(field) {
            None => {}
            Some(toml::Value::String(text)) => {
                let key = format!("{key}.{field}");
                let written = WrittenDuration::new(&text);
                if let Some(parsed) = issues.positive_duration(&key, &written, "1s") {
                    *into = parsed;
                }
            }
            Some(_) => issues.add(
                &format!("{key}.{field}"),
                "must be a duration such as \"1s\"",
            ),
        };
    duration("retry_initial", &mut policy.backoff.initial, table);
    duration("retry_max", &mut policy.backoff.max, table);
    if policy.backoff.max < policy.backoff.initial {
        issues.add(
            &format!("{key}.retry_max"),
            "must not be less than retry_initial",
        );
    }
    Some(Common { name, kind, policy })
}

/// The hop policy a channel kind starts from.
fn default_policy(kind: &str) -> HopPolicy {
    let backoff = BackoffConfig {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
        multiplier: 2,
    };
    HopPolicy {
        // An HTTP aggregator keeps a message queued until a site takes it
        // (SPEC M3); a digital channel hands it on after a few tries (SPEC M11).
        budget: match kind {
            "http" => None,
            "email" => Some(10),
            _ => Some(5),
        },
        backoff,
        ambiguous: AmbiguousPolicy::Resubmit,
    }
}

/// `kind = "webhook"`: a digital channel (SPEC M10, M15).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookEntry {
    url: String,
    secret: Option<Secret>,
    timeout: Option<WrittenDuration>,
}

fn webhook(
    key: &str,
    name: &str,
    table: toml::Table,
    issues: &mut Issues,
) -> Option<DigitalConfig> {
    let entry: WebhookEntry = parse_kind(key, table, issues)?;
    let before = issues.len();
    if let Err(reason) = check_http_url(&entry.url) {
        issues.add(&format!("{key}.url"), reason);
    }
    if let Some(secret) = &entry.secret {
        issues.secret(
            &format!("{key}.secret"),
            secret,
            16,
            "it signs every message, SPEC M15",
        );
    }
    let timeout = match &entry.timeout {
        Some(written) => issues
            .positive_duration(&format!("{key}.timeout"), written, "5s")
            .unwrap_or_default(),
        None => Duration::from_secs(10),
    };
    let ok = issues.len() == before;
    ok.then(|| DigitalConfig {
        name: name.to_owned(),
        url: entry.url,
        secret: entry.secret,
        timeout,
    })
}

/// `kind = "http"`: an SMS aggregator's HTTP API (SPEC M2, M3); the keys are
/// [`AggregatorConfig`]'s plus `callback_secret` for its receipts and MO.
fn http(
    key: &str,
    name: &str,
    mut table: toml::Table,
    issues: &mut Issues,
) -> Option<ChannelConfig> {
    let callback_secret = match table.remove("callback_secret") {
        None => None,
        Some(value) => {
            let key = format!("{key}.callback_secret");
            let secret = issues.check(
                &key,
                Secret::deserialize(value).map_err(|error| error.message().trim().to_owned()),
            )?;
            let before = issues.len();
            issues.secret(&key, &secret, 16, "it signs every callback, SPEC M15");
            if issues.len() > before {
                return None;
            }
            Some(secret)
        }
    };
    table.insert("name".to_owned(), toml::Value::String(name.to_owned()));
    let config: AggregatorConfig = parse_kind(key, table, issues)?;
    match config.validate() {
        Ok(()) => Some(ChannelConfig::Http {
            config,
            callback_secret,
        }),
        Err(AggregatorConfigError::Invalid(found)) => {
            issues.extend_under(key, found);
            None
        }
        Err(other) => {
            issues.add(key, other.to_string());
            None
        }
    }
}

/// `kind = "email"`: SMTP (SPEC M11); the keys are [`EmailConfig`]'s.
fn email(key: &str, table: toml::Table, issues: &mut Issues) -> Option<EmailConfig> {
    let config: EmailConfig = parse_kind(key, table, issues)?;
    match config.validate() {
        Ok(()) => Some(config),
        Err(error) => {
            // The channel names its keys `email.*`; here they live in the entry.
            let found = error.issues.into_iter().map(|mut issue| {
                if let Some(field) = issue.key.strip_prefix("email.") {
                    issue.key = field.to_owned();
                }
                issue
            });
            issues.extend_under(key, found);
            None
        }
    }
}

/// The kind-specific keys of a channel entry, with unknown keys named.
fn parse_kind<T: for<'de> Deserialize<'de>>(
    key: &str,
    table: toml::Table,
    issues: &mut Issues,
) -> Option<T> {
    // The path inside the entry, so a type error names its key (config.rs
    // `parse_error`).
    match serde_path_to_error::deserialize::<_, T>(toml::Value::Table(table)) {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            let path = error.path().to_string();
            let key = if path == "." {
                key.to_owned()
            } else {
                format!("{key}.{path}")
            };
            issues.add(&key, error.into_inner().message().trim().to_owned());
            None
        }
    }
}
