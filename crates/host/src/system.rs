//! What a system gives the host, and what the host gives a system.
//!
//! A system (messaging, voice, and later site continuity, desktops,
//! recording) is started by the binary with its own config and the host's
//! [`Deps`]; it returns a handle implementing [`System`] and its [`HttpRoutes`].
//! The host serves the routes on its one listener, asks the handle for its
//! part of `/v1/status` and `/v1/health`, lets it register its metrics, and
//! shuts it down in reverse start order. A system never binds the host's port
//! and never writes metrics text of its own.

use std::future::Future;
use std::pin::Pin;

use axum::Router;
use prometheus_client::registry::Registry;
use serde_json::{Map, Value};

use crate::events::{EventBus, Events};

/// A boxed future, so that [`System`] can be used as `dyn System`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the host hands every system at start.
#[derive(Clone)]
pub struct Deps {
    bus: EventBus,
}

impl Deps {
    /// Deps over the process's event stream.
    pub fn new(bus: EventBus) -> Deps {
        Deps { bus }
    }

    /// Deps whose events go to a stream of their own (tests, tools that run
    /// one system without a host).
    pub fn detached() -> Deps {
        Deps::new(EventBus::new())
    }

    /// The publisher of `system`'s events.
    pub fn events(&self, system: &'static str) -> Events {
        self.bus.publisher(system)
    }

    /// The process's event stream.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }
}

/// A system's part of `/v1/health`.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// Whether it can take new work; `false` makes `/v1/health` answer 503,
    /// so a load balancer sends new work to another site.
    pub ready: bool,
    /// Its fields in the health body (`store`, `binds_up`, …).
    pub fields: Map<String, Value>,
}

/// A running system, as the host sees it.
pub trait System: Send + Sync + 'static {
    /// Its name: the `system` of its events, its key in `/v1/status`'s
    /// `systems` list.
    fn name(&self) -> &'static str;

    /// Its keys of `/v1/status` (`binds`, `queue`, … for messaging; `trunks`
    /// for voice). Keys must be unique across systems: a key a second system
    /// repeats is logged as an error and the first system's value is kept.
    fn status(&self) -> BoxFuture<'_, Map<String, Value>>;

    /// Its part of `/v1/health`.
    fn health(&self) -> BoxFuture<'_, Health>;

    /// Registers its metrics (counters it keeps, collectors that read its
    /// state at scrape time), each named `hotsite_…` by the registry.
    fn register_metrics(&self, registry: &mut Registry);

    /// Called before every scrape of `/metrics`: for values that must be read
    /// asynchronously (the store's queue depth). Nothing by default.
    fn refresh_metrics(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Stops taking work and waits until it has stopped: called once, after
    /// the HTTP listener has stopped, in reverse start order.
    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// The HTTP routes a system adds to the host's listener.
#[derive(Default)]
pub struct HttpRoutes {
    /// Routes behind the host's bearer-token check (`/v1/messages`).
    pub api: Router,
    /// Routes that authenticate their own way (provider callbacks checked by
    /// signature) or need none.
    pub open: Router,
    /// The routes' OpenAPI 3.1 fragment: `paths` and `components`, merged by
    /// the host into `/v1/openapi.json`.
    pub openapi: Value,
}
