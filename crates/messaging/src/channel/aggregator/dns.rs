//! Names re-resolved by their TTL (SPEC M2), and one connection pool per answer.
//!
//! A provider with one URL fails over by moving its DNS record, so an address
//! cached forever would keep sending to the dead site. Two things keep hotsite
//! on the record:
//!
//! - **The answer expires with its TTL.** [`HostCache`] (pure, time passed in)
//!   holds the last answer and its `valid_until`; a send after that resolves
//!   again first. A failing resolution is retried at most once per
//!   [`RESOLVE_RETRY_INTERVAL`], and meanwhile the last answer is used for at
//!   most [`STALE_GRACE`] past its expiry: a DNS blip must not stop traffic to
//!   a site that is up, but a stale address must not outlive a real move by
//!   long either. After that, sends fail as transport failures (and fail over,
//!   SPEC M3) until resolution works again.
//! - **Pooled connections follow the answer.** HTTP keep-alive would otherwise
//!   keep using a connection to the old address long after the record moved.
//!   Each answer gets its own `reqwest::Client` (its own pool) built with
//!   `resolve_to_addrs(host, addrs)`; when a refresh returns a different set of
//!   addresses, a new client replaces it. Requests in flight finish on the old
//!   one, which is dropped with its last clone.
//!
//! A URL whose host is an IP address uses one client and no DNS at all.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;

use super::clock;
use super::config::AggregatorConfigError;
use super::DnsStatus;

/// How long past its TTL the last answer is still used while resolution fails.
pub const STALE_GRACE: Duration = Duration::from_secs(30);

/// A failed resolution is tried again no sooner than this: a dead DNS server
/// must not cost a query (and its timeout) for every message.
pub const RESOLVE_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Upper bound on one resolution, whatever the resolver's own retries.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// One DNS answer: the host's addresses until `valid_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The addresses, sorted, without repeats.
    pub addrs: Vec<IpAddr>,
    /// When the record's TTL runs out.
    pub valid_until: Instant,
}

/// What a send must do before it can use the host's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The answer is within its TTL: use it.
    Use,
    /// Resolve first: there is no answer, or its TTL ran out.
    Resolve,
    /// Resolution fails and was tried too recently; the expired answer is
    /// within [`STALE_GRACE`]: use it.
    UseStale,
    /// Resolution fails and was tried too recently; there is no usable answer.
    Unavailable,
}

/// What a successful resolution changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// The first answer.
    First,
    /// The same addresses: keep the client and its pooled connections.
    Same,
    /// Different addresses: a new client (a new pool) is needed.
    Moved {
        /// The addresses before.
        from: Vec<IpAddr>,
    },
}

/// The last DNS answer of one host and the resolution failures since (pure).
#[derive(Debug, Clone, Default)]
pub struct HostCache {
    current: Option<Resolved>,
    retry_not_before: Option<Instant>,
    last_error: Option<String>,
    resolutions: u64,
    failures: u64,
}

impl HostCache {
    /// Whether the answer's TTL ran out (or there is none).
    pub fn needs_refresh(&self, now: Instant) -> bool {
        self.current
            .as_ref()
            .is_none_or(|resolved| now >= resolved.valid_until)
    }

    /// What a send at `now` must do.
    pub fn plan(&self, now: Instant) -> Plan {
        if !self.needs_refresh(now) {
            return Plan::Use;
        }
        match self.retry_not_before {
            Some(not_before) if now < not_before => self.fallback(now),
            _ => Plan::Resolve,
        }
    }

    /// A resolution answered `addrs`, valid until `valid_until`.
    pub fn handle_answer(&mut self, mut addrs: Vec<IpAddr>, valid_until: Instant) -> Refreshed {
        addrs.sort();
        addrs.dedup();
        self.resolutions += 1;
        self.retry_not_before = None;
        self.last_error = None;
        let refreshed = match &self.current {
            None => Refreshed::First,
            Some(previous) if previous.addrs == addrs => Refreshed::Same,
            Some(previous) => Refreshed::Moved {
                from: previous.addrs.clone(),
            },
        };
        self.current = Some(Resolved { addrs, valid_until });
        refreshed
    }

    /// A resolution at `now` failed: returns whether the last answer may still
    /// be used ([`Plan::UseStale`]) or not ([`Plan::Unavailable`]).
    pub fn handle_failure(&mut self, error: String, now: Instant) -> Plan {
        self.resolutions += 1;
        self.failures += 1;
        self.last_error = Some(error);
        self.retry_not_before = Some(now + RESOLVE_RETRY_INTERVAL);
        self.fallback(now)
    }

    /// The last answer, expired or not.
    pub fn current(&self) -> Option<&Resolved> {
        self.current.as_ref()
    }

    /// Why the last resolution failed, if it did.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Whether the last answer, expired or not, is within [`STALE_GRACE`].
    pub fn within_grace(&self, now: Instant) -> bool {
        self.current
            .as_ref()
            .is_some_and(|resolved| now < resolved.valid_until + STALE_GRACE)
    }

    fn fallback(&self, now: Instant) -> Plan {
        if self.within_grace(now) {
            Plan::UseStale
        } else {
            Plan::Unavailable
        }
    }
}

/// The resolver: the given server over UDP, or the system's configuration.
pub(super) fn resolver(
    dns_server: Option<SocketAddr>,
) -> Result<TokioResolver, AggregatorConfigError> {
    let mut builder = match dns_server {
        Some(server) => TokioResolver::builder_with_config(
            ResolverConfig::from_parts(
                None,
                Vec::new(),
                vec![NameServerConfig::new(server, Protocol::Udp)],
            ),
            TokioConnectionProvider::default(),
        ),
        None => TokioResolver::builder_tokio()
            .map_err(|error| AggregatorConfigError::SystemResolver(error.to_string()))?,
    };
    let options = builder.options_mut();
    // [`HostCache`] is the cache: it must see every TTL as the server gave
    // it, not an answer the resolver kept for itself.
    options.cache_size = 0;
    options.timeout = Duration::from_secs(2);
    options.attempts = 2;
    Ok(builder.build())
}

/// Builds a client; with `pinned`, the host's name goes to those addresses only
/// (the port comes from the URL).
fn build_client(
    request_timeout: Duration,
    pinned: Option<(&str, &[IpAddr])>,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .timeout(request_timeout)
        // A redirect is not the provider's API answering (and would turn the
        // POST into a GET): it is reported as an abnormal answer.
        .redirect(reqwest::redirect::Policy::none());
    if let Some((host, addrs)) = pinned {
        let addrs: Vec<SocketAddr> = addrs.iter().map(|ip| SocketAddr::new(*ip, 0)).collect();
        builder = builder.resolve_to_addrs(host, &addrs);
    }
    builder.build()
}

/// The HTTP client for one host of the configured URLs.
pub(super) enum HostClient {
    /// An IP address: one client, no DNS.
    Literal(reqwest::Client),
    /// A name: re-resolved by its TTL, one client per answer.
    Named(NamedHost),
}

/// A host name and its current client.
pub(super) struct NamedHost {
    host: String,
    resolver: Arc<TokioResolver>,
    request_timeout: Duration,
    /// One resolution at a time: the sends that find the answer expired wait
    /// for the one resolving, then use its answer.
    refresh: tokio::sync::Mutex<()>,
    state: Mutex<NamedState>,
}

struct NamedState {
    cache: HostCache,
    client: Option<reqwest::Client>,
    clients_built: u64,
}

impl HostClient {
    /// The client for a URL's host: `domain` is its name (`Url::domain`), none
    /// for an IP address.
    pub(super) fn new(
        domain: Option<&str>,
        resolver: Option<&Arc<TokioResolver>>,
        request_timeout: Duration,
    ) -> Result<HostClient, AggregatorConfigError> {
        match (domain, resolver) {
            (Some(name), Some(resolver)) => Ok(HostClient::Named(NamedHost {
                host: name.to_owned(),
                resolver: Arc::clone(resolver),
                request_timeout,
                refresh: tokio::sync::Mutex::new(()),
                state: Mutex::new(NamedState {
                    cache: HostCache::default(),
                    client: None,
                    clients_built: 0,
                }),
            })),
            _ => build_client(request_timeout, None)
                .map(HostClient::Literal)
                .map_err(|error| AggregatorConfigError::Client(error.to_string())),
        }
    }

    /// A client to send with now, or why there is none (resolution failed).
    pub(super) async fn client(&self) -> Result<reqwest::Client, String> {
        match self {
            HostClient::Literal(client) => Ok(client.clone()),
            HostClient::Named(named) => named.client().await,
        }
    }

    /// What the status shows; `None` for an IP address.
    pub(super) fn status(&self) -> Option<DnsStatus> {
        match self {
            HostClient::Literal(_) => None,
            HostClient::Named(named) => Some(named.status()),
        }
    }
}

impl NamedHost {
    async fn client(&self) -> Result<reqwest::Client, String> {
        if let Some(client) = self.fresh_client(clock::now()) {
            return Ok(client);
        }
        let _resolving = match self.refresh.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Another send is resolving. Rather than wait for it (seconds,
                // when the DNS server is down), use the last answer while it is
                // within the grace: it was current a moment ago.
                if let Some(client) = self.client_within_grace(clock::now()) {
                    return Ok(client);
                }
                self.refresh.lock().await
            }
        };
        // Another send may have resolved while this one waited.
        let now = clock::now();
        // The plan is read first: a guard in the match's scrutinee would live
        // through the arms, and the arms lock again (std's Mutex deadlocks).
        let plan = self.lock().cache.plan(now);
        match plan {
            Plan::Use | Plan::UseStale => return self.current_client(),
            Plan::Unavailable => return Err(self.unavailable()),
            Plan::Resolve => {}
        }
        let answer =
            tokio::time::timeout(RESOLVE_TIMEOUT, self.resolver.lookup_ip(self.host.as_str()))
                .await;
        let now = clock::now();
        let answer = match answer {
            Ok(Ok(lookup)) => {
                let addrs: Vec<IpAddr> = lookup.iter().collect();
                if addrs.is_empty() {
                    Err("no addresses in the answer".to_owned())
                } else {
                    let valid_until = now + clock::until_std(lookup.valid_until());
                    Ok((addrs, valid_until))
                }
            }
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {RESOLVE_TIMEOUT:?}")),
        };
        let mut state = self.lock();
        match answer {
            Ok((addrs, valid_until)) => {
                let refreshed = state.cache.handle_answer(addrs, valid_until);
                let resolved = state.cache.current().expect("just answered").clone();
                if refreshed != Refreshed::Same || state.client.is_none() {
                    let client =
                        build_client(self.request_timeout, Some((&self.host, &resolved.addrs)))
                            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
                    state.client = Some(client);
                    state.clients_built += 1;
                    match refreshed {
                        Refreshed::Moved { from } => tracing::warn!(
                            host = %self.host, ?from, to = ?resolved.addrs,
                            "DNS record moved: new connections go to the new addresses"
                        ),
                        _ => tracing::info!(
                            host = %self.host, addrs = ?resolved.addrs, "resolved"
                        ),
                    }
                }
                Ok(state.client.clone().expect("built above"))
            }
            Err(error) => {
                let plan = state.cache.handle_failure(error.clone(), now);
                tracing::warn!(host = %self.host, %error, stale = (plan == Plan::UseStale), "cannot resolve");
                match (plan, &state.client) {
                    (Plan::UseStale, Some(client)) => Ok(client.clone()),
                    _ => Err(format!("cannot resolve {}: {error}", self.host)),
                }
            }
        }
    }

    fn fresh_client(&self, now: Instant) -> Option<reqwest::Client> {
        let state = self.lock();
        match state.cache.plan(now) {
            Plan::Use => state.client.clone(),
            _ => None,
        }
    }

    fn client_within_grace(&self, now: Instant) -> Option<reqwest::Client> {
        let state = self.lock();
        if state.cache.within_grace(now) {
            state.client.clone()
        } else {
            None
        }
    }

    fn current_client(&self) -> Result<reqwest::Client, String> {
        self.lock().client.clone().ok_or_else(|| self.unavailable())
    }

    fn unavailable(&self) -> String {
        let state = self.lock();
        let error = state.cache.last_error().unwrap_or("no answer yet");
        format!("cannot resolve {}: {error}", self.host)
    }

    fn status(&self) -> DnsStatus {
        let now = clock::now();
        let state = self.lock();
        let current = state.cache.current();
        DnsStatus {
            host: self.host.clone(),
            addrs: current
                .map(|resolved| resolved.addrs.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            valid_for_ms: current.map(|resolved| {
                resolved
                    .valid_until
                    .saturating_duration_since(now)
                    .as_millis() as u64
            }),
            last_error: state.cache.last_error().map(str::to_owned),
            resolutions: state.cache.resolutions,
            resolution_failures: state.cache.failures,
            clients_built: state.clients_built,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NamedState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// SPEC M2: an answer is used until its TTL runs out, never after: the next
    /// send resolves again.
    #[test]
    fn answer_expires_with_its_ttl() {
        #[allow(clippy::disallowed_methods)] // test epoch: only differences matter
        let start = Instant::now();
        let mut cache = HostCache::default();
        assert!(cache.needs_refresh(start));
        assert_eq!(cache.plan(start), Plan::Resolve);
        assert_eq!(
            cache.handle_answer(
                vec![ip("10.0.0.2"), ip("10.0.0.1"), ip("10.0.0.2")],
                start + secs(60)
            ),
            Refreshed::First
        );
        assert_eq!(
            cache.current().unwrap().addrs,
            [ip("10.0.0.1"), ip("10.0.0.2")]
        );
        assert_eq!(cache.plan(start + secs(59)), Plan::Use);
        assert!(!cache.needs_refresh(start + secs(59)));
        assert!(cache.needs_refresh(start + secs(60)));
        assert_eq!(cache.plan(start + secs(60)), Plan::Resolve);
        // The same addresses keep the client; others need a new one.
        assert_eq!(
            cache.handle_answer(vec![ip("10.0.0.1"), ip("10.0.0.2")], start + secs(120)),
            Refreshed::Same
        );
        assert_eq!(
            cache.handle_answer(vec![ip("10.0.0.3")], start + secs(181)),
            Refreshed::Moved {
                from: vec![ip("10.0.0.1"), ip("10.0.0.2")]
            }
        );
        assert_eq!(cache.plan(start + secs(180)), Plan::Use);
        assert_eq!(cache.plan(start + secs(181)), Plan::Resolve);
    }

    /// SPEC M2: a TTL of zero means every send resolves.
    #[test]
    fn zero_ttl_is_never_cached() {
        #[allow(clippy::disallowed_methods)] // test epoch: only differences matter
        let start = Instant::now();
        let mut cache = HostCache::default();
        cache.handle_answer(vec![ip("10.0.0.1")], start);
        assert_eq!(cache.plan(start), Plan::Resolve);
    }

    /// When resolution fails, it is retried at most once per
    /// RESOLVE_RETRY_INTERVAL, and the last answer is used for at most
    /// STALE_GRACE past its TTL.
    #[test]
    fn failures_are_paced_and_stale_answers_bounded() {
        #[allow(clippy::disallowed_methods)] // test epoch: only differences matter
        let start = Instant::now();
        let mut cache = HostCache::default();
        // No answer ever: nothing to fall back on.
        assert_eq!(
            cache.handle_failure("refused".into(), start),
            Plan::Unavailable
        );
        assert_eq!(
            cache.plan(start + Duration::from_millis(999)),
            Plan::Unavailable
        );
        assert_eq!(cache.plan(start + secs(1)), Plan::Resolve);
        assert_eq!(cache.last_error(), Some("refused"));

        cache.handle_answer(vec![ip("10.0.0.1")], start + secs(11));
        assert_eq!(cache.last_error(), None);
        let expired = start + secs(11);
        assert_eq!(cache.plan(expired), Plan::Resolve);
        assert_eq!(
            cache.handle_failure("timeout".into(), expired),
            Plan::UseStale
        );
        assert!(cache.within_grace(expired + STALE_GRACE - Duration::from_millis(1)));
        assert!(!cache.within_grace(expired + STALE_GRACE));
        assert_eq!(
            cache.plan(expired + Duration::from_millis(500)),
            Plan::UseStale
        );
        assert_eq!(cache.plan(expired + secs(1)), Plan::Resolve);
        let late = expired + STALE_GRACE;
        assert_eq!(
            cache.handle_failure("timeout".into(), late),
            Plan::Unavailable
        );
        assert_eq!(
            cache.plan(late + Duration::from_millis(10)),
            Plan::Unavailable
        );
        // Recovery clears the error and the pacing.
        cache.handle_answer(vec![ip("10.0.0.1")], late + secs(20));
        assert_eq!(cache.plan(late + secs(2)), Plan::Use);
        assert_eq!(cache.failures, 3);
        assert_eq!(cache.resolutions, 5);
    }
}
