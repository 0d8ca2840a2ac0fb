//! The aggregator's HTTP API as a channel: one message, one form POST to one of
//! the aggregator's site URLs (SPEC M2, M3, M12, M14).
//!
//! ```text
//!  send(message, cursor) ─▶ failover.choose ─▶ POST urls[i] (DNS by TTL) ─▶ answer::classify
//!                                  ▲                                           │
//!                                  └──── handle_answer / handle_url_failure ◀──────────┘ ─▶ SendOutcome
//!  prober task: failover.start_due_probes ─▶ GET health_url ─▶ failover.handle_probe
//! ```
//!
//! - **What an answer means** is [`answer::classify`], a pure function of the
//!   status, the `Retry-After` header and the body (SPEC M14).
//! - **Which URL** is [`failover::UrlFailover`], a pure state machine (SPEC M3,
//!   M12): resubmit to the same URL after `resubmit_delay`, then fail over at
//!   once, then leave the message to the route's backoff and raise the alert;
//!   URLs marked down are probed until `rise` good answers bring them back.
//!   The channel says *when* to send again through `retry_after`; the route
//!   policy (which owns retries, backoff and the next hop) follows it.
//! - **Where a name points** is [`dns`] (SPEC M2): re-resolved by its TTL, one
//!   connection pool per answer.
//!
//! The provider dedupes on our `message_id` (the message's id, the same on
//! every resend, SPEC M8). That is why a timeout or a reset connection is
//! retried (the resend is dropped as a duplicate if the first got through,
//! SPEC M3, M10) rather than reported as ambiguous, and why code 14
//! ("duplicate") is a success.
//!
//! This driver only moves data and time: it reads the clock in [`clock`] and
//! keeps the state machines behind short, never-awaited locks.

pub mod answer;
mod clock;
mod config;
pub mod dns;
pub mod failover;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hotsite_core::{Event, EventKind, HealthState, Target};
use hotsite_host::Events;
use hotsite_store::QueuedMessage;
use reqwest::header::RETRY_AFTER;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::{CancellationToken, DropGuard};

use self::answer::{CodeOverrides, Verdict};
use self::dns::HostClient;
use self::failover::{FailoverConfig, Step, UrlAnswer, UrlFailover};
use super::error_chain;
use super::{text_of, RetryKind, SendOutcome};

pub use self::config::{AggregatorConfig, AggregatorConfigError, ConfigIssue, SiteUrl};
pub use self::failover::AggregatorCursor;

/// The most of an answer's body that is read: the provider's JSON is small, and
/// anything longer is not it (and is reported as an abnormal answer).
const MAX_BODY: usize = 64 * 1024;

/// How many health changes the status keeps.
const RECENT_EVENTS: usize = 32;

/// One aggregator reached over its HTTP API, with client-side failover over its
/// site URLs. Built by [`AggregatorChannel::start`]; dropping it (or cancelling
/// the shutdown token) stops its prober.
pub struct AggregatorChannel {
    shared: Arc<Shared>,
    _prober: DropGuard,
}

struct Shared {
    config: AggregatorConfig,
    overrides: CodeOverrides,
    failover: Mutex<UrlFailover>,
    /// Per URL: which of `hosts` its `url` and its `health_url` use.
    endpoints: Vec<Endpoint>,
    /// One per distinct host of the URLs.
    hosts: Vec<HostClient>,
    wake_prober: Notify,
    /// Where its decisions go: the host's one event stream, also the source
    /// of `recent_events` in its status.
    events: Events,
    counters: Counters,
}

struct Endpoint {
    submit_host: usize,
    health_host: usize,
}

#[derive(Default)]
struct Counters {
    sends: AtomicU64,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    permanent: AtomicU64,
    provider_retries: AtomicU64,
}

/// What the status API shows of one aggregator channel.
#[derive(Debug, Clone, Serialize)]
pub struct AggregatorStatus {
    /// The channel's name.
    pub name: String,
    /// Every URL failed some message in its round (SPEC M3), and since then no
    /// URL came back up and no message was accepted.
    pub all_down_alert: bool,
    /// The URLs in order (the primary first).
    pub urls: Vec<UrlStatus>,
    /// Counts since start.
    pub counters: AggregatorCounters,
    /// The latest health changes, oldest first.
    pub recent_events: Vec<StatusEvent>,
}

/// One URL in [`AggregatorStatus`].
#[derive(Debug, Clone, Serialize)]
pub struct UrlStatus {
    /// The provider's site.
    pub site: String,
    /// The submit URL.
    pub url: String,
    /// Whether new messages go to it.
    pub up: bool,
    /// `up`, `down`, or `probing` (down, collecting good probes).
    pub state: &'static str,
    /// When it entered `state` (ms since the epoch).
    pub since_ms: i64,
    /// Why it is down.
    pub cause: Option<String>,
    /// Its last probe.
    pub last_probe: Option<ProbeStatus>,
    /// Its host's DNS answer; none for an IP address.
    pub dns: Option<DnsStatus>,
}

/// The last probe of a URL.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeStatus {
    /// When it came back (ms since the epoch).
    pub at_ms: i64,
    /// Whether the URL answered below 500 in time.
    pub alive: bool,
    /// The status it answered, or why it failed.
    pub detail: String,
}

/// A host name's DNS state (SPEC M2).
#[derive(Debug, Clone, Serialize)]
pub struct DnsStatus {
    /// The name.
    pub host: String,
    /// Its addresses in the last answer.
    pub addrs: Vec<String>,
    /// How long the last answer is still valid (0: it expired).
    pub valid_for_ms: Option<u64>,
    /// Why the last resolution failed, if it did.
    pub last_error: Option<String>,
    /// Resolutions tried.
    pub resolutions: u64,
    /// Resolutions that failed.
    pub resolution_failures: u64,
    /// HTTP clients (connection pools) built: one per different answer.
    pub clients_built: u64,
}

/// Counts since the channel started.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AggregatorCounters {
    /// Sends tried.
    pub sends: u64,
    /// Messages accepted (including duplicates).
    pub accepted: u64,
    /// Accepted as duplicates of an earlier attempt (code 14).
    pub duplicates: u64,
    /// Refused for good.
    pub permanent: u64,
    /// Provider asked to try again later (throttled, internal error, 429).
    pub provider_retries: u64,
    /// Sends a URL failed (no connection or answer, 408/5xx, abnormal answer).
    pub url_failures: u64,
    /// Resubmits to the same URL.
    pub resubmits: u64,
    /// Messages moved to another URL.
    pub failovers: u64,
    /// Rounds in which every URL failed (each raised the alert).
    pub all_failed: u64,
    /// Probes done.
    pub probes: u64,
    /// Probes that failed.
    pub probes_failed: u64,
}

/// A health change of a URL.
#[derive(Debug, Clone, Serialize)]
pub struct StatusEvent {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// The provider's site.
    pub site: String,
    /// The URL.
    pub url: String,
    /// `up`, `down` or `probing`.
    pub from: &'static str,
    /// `up`, `down` or `probing`.
    pub to: &'static str,
    /// Why.
    pub cause: String,
}

impl AggregatorChannel {
    /// Validates `config`, builds the HTTP clients and the DNS resolver, and
    /// spawns the prober, which runs until `shutdown` is cancelled or the
    /// channel is dropped. Must be called inside a tokio runtime.
    pub fn start(
        config: AggregatorConfig,
        events: Events,
        shutdown: CancellationToken,
    ) -> Result<Arc<AggregatorChannel>, AggregatorConfigError> {
        config.validate()?;
        let parsed: Vec<(reqwest::Url, reqwest::Url)> = (0..config.urls.len())
            .map(|index| {
                let parse = |text: &str| reqwest::Url::parse(text).expect("validated");
                (
                    parse(&config.urls[index].url),
                    parse(config.health_url(index)),
                )
            })
            .collect();
        let needs_dns = parsed
            .iter()
            .any(|(url, health)| url.domain().is_some() || health.domain().is_some());
        let resolver = if needs_dns {
            Some(Arc::new(dns::resolver(config.dns_server)?))
        } else {
            None
        };
        let mut host_names: Vec<String> = Vec::new();
        let mut hosts = Vec::new();
        let mut host_of = |url: &reqwest::Url| -> Result<usize, AggregatorConfigError> {
            let name = url.host_str().unwrap_or_default().to_ascii_lowercase();
            if let Some(index) = host_names.iter().position(|known| *known == name) {
                return Ok(index);
            }
            hosts.push(HostClient::new(
                url.domain(),
                resolver.as_ref(),
                config.request_timeout,
            )?);
            host_names.push(name);
            Ok(hosts.len() - 1)
        };
        let mut endpoints = Vec::new();
        for (url, health) in &parsed {
            endpoints.push(Endpoint {
                submit_host: host_of(url)?,
                health_host: host_of(health)?,
            });
        }
        let failover_config = FailoverConfig {
            resubmit_delay: config.resubmit_delay,
            resubmits_per_url: config.resubmits_per_url,
            probe_interval: config.probe_interval,
            rise: config.rise,
        };
        let targets = config
            .urls
            .iter()
            .map(|site_url| Target::new(&site_url.site, &site_url.url))
            .collect();
        let failover = UrlFailover::new(failover_config, targets, clock::now());
        let shared = Arc::new(Shared {
            overrides: CodeOverrides {
                permanent: config.permanent_codes.clone(),
                retry: config.retry_codes.clone(),
            },
            config,
            failover: Mutex::new(failover),
            endpoints,
            hosts,
            wake_prober: Notify::new(),
            events,
            counters: Counters::default(),
        });
        let prober_shutdown = shutdown.child_token();
        tokio::spawn(run_prober(Arc::clone(&shared), prober_shutdown.clone()));
        Ok(Arc::new(AggregatorChannel {
            shared,
            _prober: prober_shutdown.drop_guard(),
        }))
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// Sends `message` once, to the URL its `cursor` says, and says what came
    /// of it. The caller keeps one `AggregatorCursor::default()` per message
    /// for the life of its attempt on this hop and calls `send` again after the
    /// `retry_after` of a `Retry` (`None`: after the route's backoff).
    pub async fn send(
        &self,
        message: &QueuedMessage,
        cursor: &mut AggregatorCursor,
    ) -> SendOutcome {
        let shared = &self.shared;
        let index = shared.lock_failover().choose(cursor);
        let site_url = &shared.config.urls[index];
        shared.counters.sends.fetch_add(1, Ordering::Relaxed);
        let verdict = shared.submit(index, message).await;
        let endpoint = site_url.url.clone();
        match verdict {
            Verdict::Accepted {
                provider_id,
                duplicate,
            } => {
                shared
                    .lock_failover()
                    .handle_answer(cursor, index, UrlAnswer::Accepted);
                shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
                if duplicate {
                    shared.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        channel = %shared.config.name, message = %message.id, %provider_id,
                        "the provider already had this message_id: an earlier send got through"
                    );
                }
                SendOutcome::Accepted {
                    site: site_url.site.clone(),
                    endpoint,
                    provider_id,
                }
            }
            Verdict::Permanent { reason } => {
                shared
                    .lock_failover()
                    .handle_answer(cursor, index, UrlAnswer::NotAccepted);
                shared.counters.permanent.fetch_add(1, Ordering::Relaxed);
                SendOutcome::Permanent { endpoint, reason }
            }
            Verdict::ProviderRetry {
                kind,
                reason,
                retry_after,
            } => {
                shared
                    .lock_failover()
                    .handle_answer(cursor, index, UrlAnswer::NotAccepted);
                shared
                    .counters
                    .provider_retries
                    .fetch_add(1, Ordering::Relaxed);
                SendOutcome::Retry {
                    endpoint,
                    kind,
                    reason,
                    retry_after,
                }
            }
            Verdict::UrlFailure { kind, reason } => {
                let (step, events) = {
                    let mut failover = shared.lock_failover();
                    let step = failover.handle_url_failure(cursor, index, &reason, clock::now());
                    (step, drain_events(&mut failover))
                };
                if !events.is_empty() {
                    // A URL went down: the prober schedules its probes.
                    shared.wake_prober.notify_one();
                }
                shared.record_events(events);
                let plan = match step {
                    Step::ResubmitAfter(delay) => {
                        format!("resubmitting to the same URL in {delay:?}")
                    }
                    Step::Alternate(next) => {
                        let next = &shared.config.urls[next];
                        tracing::warn!(
                            channel = %shared.config.name, message = %message.id,
                            from = %site_url.url, to = %next.url, %reason,
                            "failing over to the next URL"
                        );
                        format!("failing over to {} ({}) at once", next.site, next.url)
                    }
                    Step::AllFailed => {
                        tracing::error!(
                            channel = %shared.config.name, message = %message.id, %reason,
                            "ALERT: every URL of the aggregator failed; the message stays queued \
                             and is retried by the route's backoff"
                        );
                        "every URL failed: alert raised, retrying after the route's backoff".into()
                    }
                };
                SendOutcome::Retry {
                    endpoint,
                    kind,
                    reason: format!("{reason}; {plan}"),
                    retry_after: step.retry_after(),
                }
            }
        }
    }

    /// The URLs' health, the DNS answers, the alert and the counters.
    pub fn status(&self) -> AggregatorStatus {
        let shared = &self.shared;
        let failover = shared.lock_failover();
        let urls = failover
            .urls()
            .zip(&shared.config.urls)
            .zip(&shared.endpoints)
            .map(|((view, site_url), endpoint)| UrlStatus {
                site: site_url.site.clone(),
                url: site_url.url.clone(),
                up: view.state.is_usable(),
                state: state_name(view.state),
                since_ms: clock::wall_ms(view.since),
                cause: view.cause.map(str::to_owned),
                last_probe: view.last_probe.map(|probe| ProbeStatus {
                    at_ms: clock::wall_ms(probe.at),
                    alive: probe.alive,
                    detail: probe.detail.clone(),
                }),
                dns: shared.hosts[endpoint.submit_host].status(),
            })
            .collect();
        let counts = failover.counters();
        let c = &shared.counters;
        AggregatorStatus {
            name: shared.config.name.clone(),
            all_down_alert: failover.all_failed_alert(),
            urls,
            counters: AggregatorCounters {
                sends: c.sends.load(Ordering::Relaxed),
                accepted: c.accepted.load(Ordering::Relaxed),
                duplicates: c.duplicates.load(Ordering::Relaxed),
                permanent: c.permanent.load(Ordering::Relaxed),
                provider_retries: c.provider_retries.load(Ordering::Relaxed),
                url_failures: counts.url_failures,
                resubmits: counts.resubmits,
                failovers: counts.failovers,
                all_failed: counts.all_failed,
                probes: counts.probes,
                probes_failed: counts.probes_failed,
            },
            recent_events: shared.recent_events(),
        }
    }
}

impl std::fmt::Debug for AggregatorChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregatorChannel")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock_failover(&self) -> MutexGuard<'_, UrlFailover> {
        self.failover.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// POSTs the form to `urls[index]` and classifies what came back.
    async fn submit(&self, index: usize, message: &QueuedMessage) -> Verdict {
        let config = &self.config;
        let url = &config.urls[index].url;
        let client = match self.hosts[self.endpoints[index].submit_host].client().await {
            Ok(client) => client,
            Err(error) => {
                return Verdict::UrlFailure {
                    kind: RetryKind::TransportFailure,
                    reason: error,
                }
            }
        };
        let message_id = message.id.to_string();
        let text = text_of(message);
        let priority = config.priority.to_string();
        let form = [
            ("login", config.login.as_str()),
            ("password", config.password.expose()),
            ("phone_number", message.destination.as_str()),
            ("sender", message.source.as_str()),
            ("message", text.as_str()),
            ("message_id", message_id.as_str()),
            ("receipt", if config.receipt { "1" } else { "0" }),
            ("priority", priority.as_str()),
        ];
        let response = match client.post(url).form(&form).send().await {
            Ok(response) => response,
            Err(error) => return self.transport_failure(&error),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = match read_body(response).await {
            Ok(body) => body,
            Err(error) => return self.transport_failure(&error),
        };
        answer::classify(
            status,
            retry_after.as_deref(),
            &body,
            &message_id,
            &self.overrides,
        )
    }

    /// No answer. A timeout may come after the provider got the request: that
    /// is still a retry, not ambiguous, because the resend carries the same
    /// `message_id` and the provider drops it as a duplicate (code 14 with the
    /// original id) if the first got through (SPEC M3, M8, M10).
    fn transport_failure(&self, error: &reqwest::Error) -> Verdict {
        if error.is_timeout() {
            Verdict::UrlFailure {
                kind: RetryKind::Timeout,
                reason: format!("no answer within {:?}", self.config.request_timeout),
            }
        } else {
            Verdict::UrlFailure {
                kind: RetryKind::TransportFailure,
                reason: format!("cannot reach it: {}", error_chain(error)),
            }
        }
    }

    /// GETs the health URL of `urls[index]`: alive when it answers below 500
    /// within `probe_timeout`.
    async fn probe(&self, index: usize) -> (bool, String) {
        let url = self.config.health_url(index);
        let client = match self.hosts[self.endpoints[index].health_host].client().await {
            Ok(client) => client,
            Err(error) => return (false, error),
        };
        let request = client.get(url).timeout(self.config.probe_timeout);
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                (status.as_u16() < 500, format!("HTTP {}", status.as_u16()))
            }
            Err(error) if error.is_timeout() => (
                false,
                format!("no answer within {:?}", self.config.probe_timeout),
            ),
            Err(error) => (false, format!("cannot reach it: {}", error_chain(&error))),
        }
    }

    /// Publishes health changes on the event stream (DESIGN.md, invariant 4:
    /// every failover decision is an event with cause and time), which logs them.
    fn record_events(&self, events: Vec<Event>) {
        for event in events {
            if matches!(event.kind, EventKind::Health { .. }) {
                self.events.publish(event);
            }
        }
    }

    /// This channel's latest health changes, oldest first, read back from the
    /// event stream.
    fn recent_events(&self) -> Vec<StatusEvent> {
        let ours = |target: &Target| {
            self.config
                .urls
                .iter()
                .any(|u| target.site.as_str() == u.site && *target.name == *u.url)
        };
        self.events
            .bus()
            .recent_where(RECENT_EVENTS, |record| {
                record.system == self.events.system()
                    && matches!(record.event.kind, EventKind::Health { .. })
                    && ours(&record.event.target)
            })
            .iter()
            .filter_map(|record| {
                let EventKind::Health { from, to, cause } = &record.event.kind else {
                    return None;
                };
                Some(StatusEvent {
                    at_ms: record.at_ms,
                    site: record.event.target.site.to_string(),
                    url: record.event.target.name.to_string(),
                    from: state_name(*from),
                    to: state_name(*to),
                    cause: cause.clone(),
                })
            })
            .collect()
    }
}

/// Probes the URLs that are down, each every `probe_interval`, until shutdown.
async fn run_prober(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut probes: JoinSet<(usize, bool, String)> = JoinSet::new();
    loop {
        let (due, deadline) = {
            let mut failover = shared.lock_failover();
            (
                failover.start_due_probes(clock::now()),
                failover.poll_timeout(),
            )
        };
        for index in due {
            let shared = Arc::clone(&shared);
            probes.spawn(async move {
                let (alive, detail) = shared.probe(index).await;
                (index, alive, detail)
            });
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = shared.wake_prober.notified() => {}
            Some(joined) = probes.join_next() => {
                // A probe cannot panic short of a bug in the HTTP client; if one
                // did, its URL would stay "in flight" and unprobed, so say so.
                match joined {
                    Ok((index, alive, detail)) => {
                        let events = {
                            let mut failover = shared.lock_failover();
                            failover.handle_probe(index, alive, detail, clock::now());
                            drain_events(&mut failover)
                        };
                        shared.record_events(events);
                    }
                    Err(error) => tracing::error!(
                        channel = %shared.config.name, %error, "a probe task failed"
                    ),
                }
            }
            () = clock::sleep_until(deadline) => {}
        }
    }
}

fn drain_events(failover: &mut UrlFailover) -> Vec<Event> {
    std::iter::from_fn(|| failover.poll_event()).collect()
}

/// Reads at most [`MAX_BODY`] bytes of the answer.
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_BODY {
            break;
        }
    }
    Ok(body)
}

fn state_name(state: HealthState) -> &'static str {
    match state {
        HealthState::Up => "up",
        HealthState::Down => "down",
        HealthState::Probing => "probing",
    }
}
