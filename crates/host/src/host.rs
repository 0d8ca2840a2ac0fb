//! The host's lifecycle: bind the listener first (a port conflict fails
//! before any system starts), start systems with [`Deps`], serve, and on
//! shutdown stop the listener, then each system in reverse start order.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hotsite_core::Secret;
use prometheus_client::registry::Registry;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::events::EventBus;
use crate::http::server::{serve, ServerConfig};
use crate::http::{app, openapi_document, HostState, Tokens};
use crate::metrics::ServerMetrics;
use crate::{Deps, HttpRoutes, System};

/// The host's settings (`[api]` of the config).
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// Its bounds: connections, header, idle and request timeouts.
    pub server: ServerConfig,
    /// Bearer tokens accepted on every system's API routes.
    pub tokens: Vec<Secret>,
}

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The API port could not be bound.
    #[error("cannot listen on {addr} for the HTTP API: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Two systems claim the same route, status key or OpenAPI path.
    #[error("systems overlap: {0}")]
    Overlap(String),
}

/// A host being assembled: its port is bound, systems are being added.
pub struct Host {
    config: HostConfig,
    listener: TcpListener,
    local_addr: SocketAddr,
    bus: EventBus,
    registry: Registry,
    server_metrics: ServerMetrics,
    systems: Vec<Box<dyn System>>,
    api: Router,
    open: Router,
    openapi: Vec<Value>,
}

impl Host {
    /// Binds the API port; nothing is served until [`Host::serve`].
    pub async fn bind(config: HostConfig) -> Result<Host, HostError> {
        let listen_error = |source| HostError::Listen {
            addr: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        let bus = EventBus::new();
        let mut registry = crate::metrics::registry();
        bus.register_metrics(&mut registry);
        let server_metrics = ServerMetrics::default();
        server_metrics.register(&mut registry);
        Ok(Host {
            config,
            listener,
            local_addr,
            bus,
            registry,
            server_metrics,
            systems: Vec::new(),
            api: Router::new(),
            open: Router::new(),
            openapi: Vec::new(),
        })
    }

    /// Where the API listens (the real port when `listen` asked for port 0),
    /// for systems whose config refers back to it (callback URLs).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What a system needs from the host at start.
    pub fn deps(&self) -> Deps {
        Deps::new(self.bus.clone())
    }

    /// Adds a started system: its metrics are registered now, its routes
    /// served from [`Host::serve`] on. Systems are shut down in reverse of
    /// the order they were added.
    pub fn add(&mut self, system: Box<dyn System>, routes: HttpRoutes) {
        system.register_metrics(&mut self.registry);
        let api = std::mem::take(&mut self.api);
        self.api = api.merge(routes.api);
        let open = std::mem::take(&mut self.open);
        self.open = open.merge(routes.open);
        if !routes.openapi.is_null() {
            self.openapi.push(routes.openapi);
        }
        self.systems.push(system);
    }

    /// Serves every system's routes and the host's endpoints until
    /// [`RunningHost::shutdown`].
    pub fn serve(self) -> Result<RunningHost, HostError> {
        let openapi = openapi_document(&self.openapi).map_err(HostError::Overlap)?;
        let systems = Arc::new(self.systems);
        let shutdown = CancellationToken::new();
        let state = Arc::new(HostState {
            systems: systems.clone(),
            registry: self.registry,
            bus: self.bus.clone(),
            openapi,
            shutdown: shutdown.clone(),
        });
        let tokens = Tokens(Arc::new(self.config.tokens));
        let router = app(state, tokens, self.api, self.open);
        let server = tokio::spawn(serve(
            self.listener,
            router,
            self.config.server,
            self.server_metrics,
            shutdown.clone(),
        ));
        tracing::info!(listen = %self.local_addr, systems = ?systems.iter().map(|s| s.name()).collect::<Vec<_>>(), "host serving");
        Ok(RunningHost {
            local_addr: self.local_addr,
            bus: self.bus,
            systems,
            shutdown,
            server,
        })
    }
}

/// The serving host.
pub struct RunningHost {
    local_addr: SocketAddr,
    bus: EventBus,
    systems: Arc<Vec<Box<dyn System>>>,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
}

impl RunningHost {
    /// Where the API listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The event stream (tests and tools subscribe here).
    pub fn events(&self) -> &EventBus {
        &self.bus
    }

    /// Stops in order: the listener first (no new request reaches a system
    /// that is stopping; requests in progress get a few seconds, event
    /// streams end), then each system in reverse start order.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        // The server's connections held the other references; they are gone.
        let systems = match Arc::try_unwrap(self.systems) {
            Ok(systems) => systems,
            Err(_) => {
                tracing::error!(
                    "a request outlived the HTTP server; systems are left to stop on drop"
                );
                return;
            }
        };
        for system in systems.into_iter().rev() {
            let name = system.name();
            tracing::info!(system = name, "stopping");
            system.shutdown().await;
            tracing::info!(system = name, "stopped");
        }
    }
}
