//! Wires one site's messaging gateway together: the SMPP client bound to every
//! SMSC of every site, the other channels, the routes over them, the dispatcher,
//! the inbox, webhooks and the HTTP routes it hands the host.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use hotsite_core::Secret;
use hotsite_host::{BoxFuture, Deps, Events, HttpRoutes};
use hotsite_smpp::driver::{ClientConfig, SmppClient};
use hotsite_store::{Store, StoreError, StoreStats};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{ApiState, ChannelStatus};
use crate::channel::aggregator::{AggregatorChannel, AggregatorConfig, AggregatorConfigError};
use crate::channel::digital::{DigitalChannel, DigitalConfig, DigitalConfigError};
use crate::channel::email::{EmailChannel, EmailConfig, EmailConfigError};
use crate::channel::passive::PassiveHealth;
use crate::channel::smpp::SmppChannel;
use crate::channel::Channel;
use crate::dispatcher::{run_dispatcher, DispatcherConfig};
use crate::history::QueueSampler;
use crate::inbox::{run_inbox, InboxConfig};
use crate::metrics::Metrics;
use crate::policy::HopPolicy;
use crate::route::{Hop, Route, Routes, SMPP_CHANNEL};
use crate::webhook::{run_webhooks, WebhookConfig};

/// A channel other than SMPP, by kind.
#[derive(Debug, Clone)]
pub enum ChannelConfig {
    /// A digital channel's webhook (SPEC M10).
    Digital(DigitalConfig),
    /// E-mail over SMTP, the usual last hop (SPEC M11).
    Email(EmailConfig),
    /// An SMS aggregator's HTTP API (SPEC M2, M3), whose receipts and MO come
    /// back as callbacks, signed with `callback_secret` when it is set.
    Http {
        /// The API's sites and settings.
        config: AggregatorConfig,
        /// The secret callbacks' signatures must verify with (SPEC M15).
        callback_secret: Option<Secret>,
    },
}

impl ChannelConfig {
    /// Whether the provider behind it POSTs receipts and MO to hotsite, and
    /// the secret their signature must verify with (SPEC M15), if any.
    fn callbacks(&self) -> Option<Option<Vec<u8>>> {
        match self {
            ChannelConfig::Digital(_) | ChannelConfig::Email(_) => None,
            ChannelConfig::Http {
                callback_secret, ..
            } => Some(
                callback_secret
                    .as_ref()
                    .map(|secret| secret.expose().as_bytes().to_vec()),
            ),
        }
    }
}

/// One route: a name and its hops, first to last (SPEC M11).
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The name messages ask for.
    pub name: String,
    /// Channel name and policy of each hop.
    pub hops: Vec<(String, HopPolicy)>,
}

/// Everything the gateway needs besides its store.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// SMPP binds to every SMSC of every site: the channel named `smpp`.
    pub smpp: Option<ClientConfig>,
    /// The other channels, by name.
    pub channels: Vec<(String, ChannelConfig)>,
    /// The routes. Empty: one route `sms` with the SMPP channel as its only hop,
    /// with the dispatcher's budget, backoff and ambiguous policy.
    pub routes: Vec<RouteConfig>,
    /// The route of messages that name none; the first route when `None`.
    pub default_route: Option<String>,
    /// Sender used when a message names none.
    pub default_from: String,
    /// Dispatcher settings.
    pub dispatcher: DispatcherConfig,
    /// Where MO and receipts go; without it they are stored and kept.
    pub webhook: Option<WebhookConfig>,
    /// How deliveries from the SMSCs are read (receipt id formats, MO window).
    pub inbox: InboxConfig,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The SMPP settings cannot be run.
    #[error(transparent)]
    Smpp(#[from] hotsite_smpp::driver::ClientConfigError),
    /// A digital channel cannot be built.
    #[error("channels.{name}: {source}")]
    Digital {
        /// The channel.
        name: String,
        /// What is wrong.
        source: DigitalConfigError,
    },
    /// The e-mail channel cannot be built.
    #[error("channels.{name}: {source}")]
    Email {
        /// The channel.
        name: String,
        /// What is wrong.
        source: EmailConfigError,
    },
    /// An HTTP aggregator channel cannot be built.
    #[error("channels.{name}: {source}")]
    Http {
        /// The channel.
        name: String,
        /// What is wrong.
        source: AggregatorConfigError,
    },
    /// The routes do not fit the channels.
    #[error("routes: {0}")]
    Routes(String),
}

/// The store's statistics, read for status, health and metrics.
pub(crate) type StatsReader =
    Arc<dyn Fn() -> BoxFuture<'static, Result<StoreStats, StoreError>> + Send + Sync>;

/// A running gateway: the messaging system's handle (see [`crate::system`]
/// for what it gives the host).
pub struct GatewayHandle {
    pub(crate) view: GatewayView,
    pub(crate) routes: Arc<Routes>,
    pub(crate) stats: StatsReader,
    pub(crate) events: Events,
    pub(crate) scraped: Arc<crate::system::Scraped>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    /// Gives up this process's claims once its tasks have stopped.
    release: ReleaseClaims,
    owner: String,
}

/// Gives up every claim of this gateway (SPEC M17).
type ReleaseClaims = Arc<dyn Fn() -> BoxFuture<'static, Result<(), StoreError>> + Send + Sync>;

/// The name of this system's events and status section.
pub const SYSTEM: &str = "messaging";

/// Starts the gateway on `store`: the SMPP binds, the channels, the
/// dispatcher, the inbox and webhooks. Returns its handle and its HTTP routes
/// for the host to serve.
pub async fn start<S: Store>(
    config: GatewayConfig,
    store: S,
    deps: &Deps,
) -> Result<(GatewayHandle, HttpRoutes), GatewayError> {
    let events_out = deps.events(SYSTEM);
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    let (client, events) = match config.smpp.clone() {
        Some(smpp) => {
            let (client, events, client_task) = SmppClient::start(smpp)?;
            tasks.push(client_task);
            (Some(client), events)
        }
        // Nothing ever arrives over SMPP; the inbox still serves HTTP callbacks.
        None => (None, mpsc::channel(1).1),
    };
    let (routes, channel_status) = build_routes(&config, client.as_ref(), &events_out, &shutdown)?;
    let routes = Arc::new(routes);
    let metrics = Arc::new(Metrics::default());
    let wake_dispatcher = Arc::new(Notify::new());
    let wake_webhooks = Arc::new(Notify::new());
    tasks.push(tokio::spawn(run_inbox(
        store.clone(),
        config.inbox.clone(),
        events,
        metrics.clone(),
        events_out.clone(),
        wake_webhooks.clone(),
    )));
    let callback_channels = config
        .channels
        .iter()
        .filter_map(|(name, channel)| Some((name.clone(), channel.callbacks()?)))
        .collect();
    // One owner for every claim of this process (SPEC M17).
    let owner = crate::lease::owner_name(&config.dispatcher.name);
    tasks.push(tokio::spawn(run_dispatcher(
        store.clone(),
        routes.clone(),
        config.dispatcher.clone(),
        metrics.clone(),
        wake_dispatcher.clone(),
        owner.clone(),
        shutdown.clone(),
    )));
    if let Some(webhook) = config.webhook.clone() {
        tasks.push(tokio::spawn(run_webhooks(
            store.clone(),
            webhook,
            metrics.clone(),
            wake_webhooks.clone(),
            owner.clone(),
            config.dispatcher.lease,
            shutdown.clone(),
        )));
    }
    let release: ReleaseClaims = {
        let store = store.clone();
        let owner = owner.clone();
        Arc::new(move || {
            let (store, owner) = (store.clone(), owner.clone());
            Box::pin(async move { store.release_claims(owner).await })
        })
    };
    let stats: StatsReader = {
        let store = store.clone();
        Arc::new(move || {
            let store = store.clone();
            Box::pin(async move { store.stats().await })
        })
    };
    // The queue's recent past, for the console's chart (GET /v1/queue/history).
    let queue_history = Arc::new(QueueSampler::new(stats.clone(), metrics.clone()));
    tasks.push(tokio::spawn(queue_history.clone().run(shutdown.clone())));
    let state = Arc::new(ApiState {
        store,
        queue_history,
        default_from: config.default_from.clone(),
        metrics: metrics.clone(),
        routes: routes.clone(),
        wake: wake_dispatcher,
        callback_channels,
        wake_webhooks: wake_webhooks.clone(),
        key_counter: AtomicU64::new(0),
    });
    let handle = GatewayHandle {
        view: GatewayView {
            client,
            channel_status,
            metrics,
        },
        routes,
        stats,
        events: events_out,
        scraped: Arc::default(),
        shutdown,
        tasks,
        release,
        owner,
    };
    Ok((handle, crate::api::routes(state)))
}

/// What a test, demo or tool in the same process may read of a running
/// gateway after its handle went to the host: binds, channels, counters.
#[derive(Clone)]
pub struct GatewayView {
    pub(crate) client: Option<SmppClient>,
    pub(crate) channel_status: Vec<(String, ChannelStatus)>,
    pub(crate) metrics: Arc<Metrics>,
}

impl GatewayView {
    /// The SMPP client (status, binds), when SMPP is configured.
    pub fn client(&self) -> Option<&SmppClient> {
        self.client.as_ref()
    }

    /// The status of channel `name` (an HTTP aggregator's sites and their
    /// health), as `/v1/status` shows it under `channels`.
    pub fn channel_status(&self, name: &str) -> Option<serde_json::Value> {
        self.channel_status
            .iter()
            .find(|(channel, _)| channel == name)
            .map(|(_, status)| status())
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

impl GatewayHandle {
    /// A view that stays readable after the handle is given to the host.
    pub fn view(&self) -> GatewayView {
        self.view.clone()
    }

    /// Stops taking work, unbinds, and waits for every task. Messages not yet
    /// submitted stay queued in the store for the next start, or for another
    /// gateway sharing the store: this one's claims are given up (SPEC M17).
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        if let Some(client) = &self.view.client {
            client.shutdown().await;
        }
        for task in self.tasks {
            let _ = task.await;
        }
        if let Err(error) = (self.release)().await {
            tracing::warn!(%error, owner = %self.owner, "cannot give up this gateway's claims; others take its work when the leases run out");
        }
    }
}

/// A channel's `/v1/status` entry read from its passive health.
fn passive_status(health: &Arc<PassiveHealth>) -> ChannelStatus {
    let health = health.clone();
    Arc::new(move || health.status())
}

/// `scheme://host[:port]` of a webhook URL: its path and query may carry the
/// endpoint's secret (many chat platforms put the token there), so the status
/// never shows them.
fn origin_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => parsed.origin().ascii_serialization(),
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

/// Builds every channel and the routes over them. Checked again here (the
/// binary's config validation names the keys first) so a library user gets a
/// clear error too.
fn build_routes(
    config: &GatewayConfig,
    client: Option<&SmppClient>,
    events: &Events,
    shutdown: &CancellationToken,
) -> Result<(Routes, Vec<(String, ChannelStatus)>), GatewayError> {
    let mut channels: HashMap<String, Channel> = HashMap::new();
    let mut status: Vec<(String, ChannelStatus)> = Vec::new();
    if let Some(client) = client {
        let smpp = SmppChannel::new(client.clone(), config.dispatcher.registered_delivery);
        channels.insert(SMPP_CHANNEL.to_owned(), Channel::Smpp(smpp));
    }
    for (name, channel) in &config.channels {
        if channels.contains_key(name) {
            return Err(GatewayError::Routes(format!(
                "channel name {name:?} is used twice (\"smpp\" is the SMPP binds)"
            )));
        }
        let built = match channel {
            ChannelConfig::Digital(digital) => {
                let channel = DigitalChannel::new(digital.clone()).map_err(|source| {
                    GatewayError::Digital {
                        name: name.clone(),
                        source,
                    }
                })?;
                let health = Arc::new(PassiveHealth::new(
                    name,
                    "digital",
                    origin_of(&digital.url),
                    events.clone(),
                ));
                status.push((name.clone(), passive_status(&health)));
                Channel::Digital(Arc::new(channel), health)
            }
            ChannelConfig::Http { config, .. } => {
                let channel =
                    AggregatorChannel::start(config.clone(), events.clone(), shutdown.clone())
                        .map_err(|source| GatewayError::Http {
                            name: name.clone(),
                            source,
                        })?;
                let for_status = channel.clone();
                status.push((
                    name.clone(),
                    Arc::new(move || serde_json::to_value(for_status.status()).unwrap_or_default()),
                ));
                Channel::Http(channel)
            }
            ChannelConfig::Email(email) => {
                let channel =
                    EmailChannel::new(email.clone()).map_err(|source| GatewayError::Email {
                        name: name.clone(),
                        source,
                    })?;
                let health = Arc::new(PassiveHealth::new(
                    name,
                    "email",
                    channel.endpoint().to_owned(),
                    events.clone(),
                ));
                status.push((name.clone(), passive_status(&health)));
                Channel::Email(Arc::new(channel), health)
            }
        };
        channels.insert(name.clone(), built);
    }
    let route_configs = if config.routes.is_empty() {
        vec![RouteConfig {
            name: "sms".to_owned(),
            hops: vec![(
                SMPP_CHANNEL.to_owned(),
                HopPolicy {
                    budget: Some(config.dispatcher.retry_budget),
                    backoff: config.dispatcher.backoff,
                    ambiguous: config.dispatcher.ambiguous,
                },
            )],
        }]
    } else {
        config.routes.clone()
    };
    let mut routes = Vec::new();
    for route in &route_configs {
        if route.hops.is_empty() {
            return Err(GatewayError::Routes(format!(
                "route {:?} has no hops",
                route.name
            )));
        }
        let mut hops = Vec::new();
        for (channel_name, policy) in &route.hops {
            let channel = channels.get(channel_name).ok_or_else(|| {
                GatewayError::Routes(format!(
                    "route {:?} names channel {channel_name:?}, which is not configured",
                    route.name
                ))
            })?;
            hops.push(Hop {
                channel_name: channel_name.clone(),
                channel: channel.clone(),
                policy: *policy,
            });
        }
        routes.push(Route {
            name: route.name.clone(),
            hops,
        });
    }
    let default = match &config.default_route {
        Some(name) if !route_configs.iter().any(|route| &route.name == name) => {
            return Err(GatewayError::Routes(format!(
                "default route {name:?} is not defined"
            )))
        }
        Some(name) => name.clone(),
        None => route_configs[0].name.clone(),
    };
    Ok((Routes::new(routes, &default), status))
}
