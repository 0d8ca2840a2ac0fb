//! The host's lifecycle: bind the listener first (a port conflict fails
//! before any system starts), start systems with [`Deps`], serve, and on
//! shutdown stop the listener, then each system in reverse start order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
            streams: Default::default(),
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
        // The server's connections held the other references. Those it cut
        // off after its grace period are aborted, and an aborted task lets go
        // of its references on the runtime's next turns: wait for that, briefly.
        let mut systems = self.systems;
        for _ in 0..SYSTEMS_RELEASE_TURNS {
            match Arc::try_unwrap(systems) {
                Ok(owned) => return stop_in_reverse(owned).await,
                Err(shared) => systems = shared,
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::error!(
            "a request outlived the HTTP server by a second; systems stop when the process ends"
        );
    }
}

/// How many 10 ms turns shutdown waits for aborted requests to let go of the
/// systems.
const SYSTEMS_RELEASE_TURNS: usize = 100;

/// Stops each system, last started first.
async fn stop_in_reverse(systems: Vec<Box<dyn System>>) {
    for system in systems.into_iter().rev() {
        let name = system.name();
        tracing::info!(system = name, "stopping");
        system.shutdown().await;
        tracing::info!(system = name, "stopped");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::{json, Map};

    use super::*;
    use crate::{BoxFuture, Health};

    /// A system that answers from fixed values and notes when it stops.
    struct Fake {
        name: &'static str,
        ready: bool,
        stopped: Arc<Mutex<Vec<&'static str>>>,
    }

    impl System for Fake {
        fn name(&self) -> &'static str {
            self.name
        }

        fn status(&self) -> BoxFuture<'_, serde_json::Map<String, Value>> {
            let mut keys = Map::new();
            keys.insert(self.name.into(), json!("here"));
            keys.insert("shared".into(), json!(self.name));
            Box::pin(async move { keys })
        }

        fn health(&self) -> BoxFuture<'_, Health> {
            let mut fields = Map::new();
            fields.insert(format!("{}_ready", self.name), json!(self.ready));
            let ready = self.ready;
            Box::pin(async move { Health { ready, fields } })
        }

        fn register_metrics(&self, _: &mut prometheus_client::registry::Registry) {}

        fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
            Box::pin(async move { self.stopped.lock().unwrap().push(self.name) })
        }
    }

    /// DESIGN.md "The host": each system's status keys and health fields in one
    /// answer (a key repeated by a later system does not replace the first's),
    /// 503 while one system is not ready, the token checked on status, and
    /// shutdown in reverse start order.
    /// A host on a free port with two [`Fake`] systems, `second` not ready.
    async fn serve_fakes(stopped: &Arc<Mutex<Vec<&'static str>>>) -> RunningHost {
        let mut host = Host::bind(HostConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            server: Default::default(),
            tokens: vec![Secret::new("token-123456")],
        })
        .await
        .unwrap();
        for (name, ready) in [("first", true), ("second", false)] {
            let system = Fake {
                name,
                ready,
                stopped: stopped.clone(),
            };
            host.add(Box::new(system), HttpRoutes::default());
        }
        host.serve().unwrap()
    }

    #[tokio::test]
    async fn systems_share_one_front_door_and_stop_in_reverse_order() {
        let stopped = Arc::new(Mutex::new(Vec::new()));
        let host = serve_fakes(&stopped).await;
        let base = format!("http://{}", host.local_addr());
        let http = reqwest::Client::new();
        let status: Value = http
            .get(format!("{base}/v1/status"))
            .bearer_auth("token-123456")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            status,
            json!({"first": "here", "second": "here", "shared": "first", "systems": ["first", "second"]})
        );
        let unauthorized = http.get(format!("{base}/v1/status")).send().await.unwrap();
        assert_eq!(unauthorized.status().as_u16(), 401);
        let health = http.get(format!("{base}/v1/health")).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 503);
        assert_eq!(
            health.json::<Value>().await.unwrap(),
            json!({"first_ready": true, "second_ready": false})
        );
        host.shutdown().await;
        assert_eq!(*stopped.lock().unwrap(), ["second", "first"]);
    }

    /// DESIGN.md invariant 6: event streams outlive the request timeout, so
    /// they have a cap of their own: past it a clear 503 with Retry-After; a
    /// stream that ends gives its place back.
    #[tokio::test]
    async fn event_streams_are_capped_with_a_clear_refusal() {
        let stopped = Arc::new(Mutex::new(Vec::new()));
        let host = serve_fakes(&stopped).await;
        let url = format!("http://{}/v1/events/stream", host.local_addr());
        let http = reqwest::Client::new();
        let open = || http.get(&url).bearer_auth("token-123456").send();
        let mut streams = Vec::new();
        for _ in 0..crate::http::events::MAX_STREAMS {
            let stream = open().await.unwrap();
            assert_eq!(stream.status().as_u16(), 200);
            streams.push(stream);
        }
        let refused = open().await.unwrap();
        assert_eq!(refused.status().as_u16(), 503);
        assert_eq!(refused.headers()["retry-after"], "5");
        let body: Value = refused.json().await.unwrap();
        assert!(body["error"]
            .as_str()
            .unwrap()
            .contains("event streams are open"));
        drop(streams.pop());
        let mut reopened = None;
        for _ in 0..100 {
            let stream = open().await.unwrap();
            if stream.status().as_u16() == 200 {
                reopened = Some(stream);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(reopened.is_some(), "a closed stream's place is given back");
        drop((streams, reopened));
        host.shutdown().await;
    }
}
