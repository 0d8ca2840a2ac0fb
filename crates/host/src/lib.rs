//! The host: what every hotsite system of one site's process shares
//! (DESIGN.md, "The host").
//!
//! ```text
//!  binary ── Host::bind(config) ── deps() ──▶ system::start(config, deps) ─▶ (handle, HttpRoutes)
//!                │                                                              │
//!                └── add(handle, routes) ◀──────────────────────────────────────┘
//!                └── serve(): one listener ── auth ── systems' api routes
//!                                          ├─ systems' open routes (callbacks)
//!                                          └─ /v1/status /v1/health /metrics
//!                                             /v1/openapi.json /v1/events(/stream)
//!  systems ── Events::publish(Event) ──▶ EventBus ──▶ log, hotsite_events_total,
//!                                                     ring, live subscribers (SSE)
//! ```
//!
//! A sixth system plugs in by implementing [`System`] and returning
//! [`HttpRoutes`]; it never binds a port for these endpoints and never writes
//! metrics text. Why a crate and not a module of the binary: systems
//! implement [`System`] and publish through [`Events`], so the trait and the
//! stream must live below them; the binary only wires.

#![warn(missing_docs)]

pub mod clock;
pub mod events;
mod host;
pub mod http;
pub mod metrics;
pub mod net;
mod single;
mod system;

pub use events::{EventBus, Events, Filter, Record};
pub use host::{Host, HostConfig, HostError, RunningHost};
pub use http::server::ServerConfig;
pub use single::{Single, StartError};
pub use system::{BoxFuture, Deps, Health, HttpRoutes, System};
