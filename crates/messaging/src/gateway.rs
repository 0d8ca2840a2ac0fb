//! Wires one site's messaging gateway together: the SMPP client bound to every
//! SMSC of every site, the dispatcher, the inbox, webhooks and the HTTP API.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use hotsite_smpp::driver::{ClientConfig, SmppClient};
use hotsite_store::Store;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{router, ApiState};
use crate::dispatcher::{run_dispatcher, DispatcherConfig};
use crate::inbox::{run_inbox, RecentEvents};
use crate::metrics::Metrics;
use crate::webhook::{run_webhooks, WebhookConfig};

/// Everything the gateway needs besides its store.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// SMPP binds to every SMSC of every site.
    pub smpp: ClientConfig,
    /// Where the HTTP API listens.
    pub api_listen: SocketAddr,
    /// Accepted bearer tokens.
    pub tokens: Vec<String>,
    /// Sender used when a message names none.
    pub default_from: String,
    /// Dispatcher settings.
    pub dispatcher: DispatcherConfig,
    /// Where MO and receipts go; without it they are stored and kept.
    pub webhook: Option<WebhookConfig>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The SMPP settings cannot be run.
    #[error(transparent)]
    Smpp(#[from] hotsite_smpp::driver::ClientConfigError),
    /// The API port could not be bound.
    #[error("cannot listen on {addr} for the HTTP API: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A running gateway.
pub struct GatewayHandle {
    api_addr: SocketAddr,
    client: SmppClient,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts the gateway on `store`. The API port is bound before anything else
/// starts, so a port conflict fails fast.
pub async fn start<S: Store>(
    config: GatewayConfig,
    store: S,
) -> Result<GatewayHandle, GatewayError> {
    let listener = TcpListener::bind(config.api_listen)
        .await
        .map_err(|source| GatewayError::Listen {
            addr: config.api_listen,
            source,
        })?;
    let api_addr = listener
        .local_addr()
        .map_err(|source| GatewayError::Listen {
            addr: config.api_listen,
            source,
        })?;
    let (client, events, client_task) = SmppClient::start(config.smpp.clone())?;
    let metrics = Arc::new(Metrics::default());
    let recent = Arc::new(RecentEvents::default());
    let wake_dispatcher = Arc::new(Notify::new());
    let wake_webhooks = Arc::new(Notify::new());
    let shutdown = CancellationToken::new();
    let mut tasks = vec![client_task];
    tasks.push(tokio::spawn(run_inbox(
        store.clone(),
        events,
        metrics.clone(),
        recent.clone(),
        wake_webhooks.clone(),
    )));
    tasks.push(tokio::spawn(run_dispatcher(
        store.clone(),
        client.clone(),
        config.dispatcher.clone(),
        metrics.clone(),
        wake_dispatcher.clone(),
        shutdown.clone(),
    )));
    if let Some(webhook) = config.webhook.clone() {
        tasks.push(tokio::spawn(run_webhooks(
            store.clone(),
            webhook,
            metrics.clone(),
            wake_webhooks,
            shutdown.clone(),
        )));
    }
    let state = Arc::new(ApiState {
        store,
        tokens: config.tokens.clone(),
        default_from: config.default_from.clone(),
        metrics: metrics.clone(),
        client: client.clone(),
        recent,
        wake: wake_dispatcher,
        key_counter: AtomicU64::new(0),
    });
    let app = router(state);
    let api_shutdown = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(async move { api_shutdown.cancelled().await });
        if let Err(error) = serve.await {
            tracing::error!(%error, "HTTP API stopped");
        }
    }));
    Ok(GatewayHandle {
        api_addr,
        client,
        metrics,
        shutdown,
        tasks,
    })
}

impl GatewayHandle {
    /// Where the HTTP API listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The SMPP client (status, binds).
    pub fn client(&self) -> &SmppClient {
        &self.client
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops taking work, unbinds, and waits for every task. Messages not yet
    /// submitted stay queued in the store for the next start.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.client.shutdown().await;
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
