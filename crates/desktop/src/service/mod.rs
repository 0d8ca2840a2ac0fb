//! The desktop service (SPEC D1–D6, `PROTOCOL.md`): one WebSocket per
//! desktop at `GET /v1/desktop` on the host's listener, and the web
//! desktop's files at `/desktop/`. Both are open routes: a desktop
//! authenticates inside the protocol (`hello`), not with the API's tokens.
//!
//! - [`config`]: the `[desktop]` section, validated against `[site]`.
//! - [`password`]: Argon2id PHC strings; checks on the blocking pool, a few
//!   at a time.
//! - [`protocol`]: the messages, pure.
//! - [`session`]: session tokens, so that a reconnect or a switchover says
//!   `hello` with one HMAC instead of a password hash (D4, D8).
//! - `connection.rs`: one task per connection: `hello`, then requests to the
//!   site through its [`SiteClient`], the person's agent and DN events from
//!   the host's event stream, `stats` every second, `service` changes.
//! - `assets.rs`: the embedded web desktop.
//!
//! One task polls the site's numbers once a second for every connection
//! (a `watch`), so 10,000 desktops cost the site one request a second, not
//! 10,000; the same poll tells whether the site system answers (the
//! `service` state of telephony and statistics).

mod assets;
pub mod config;
mod connection;
pub mod password;
pub mod protocol;
mod router;
pub mod session;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use hotsite_host::metrics::{self, Collector, Encoder, Registry};
use hotsite_host::{BoxFuture, Deps, Health, HttpRoutes, System};
use hotsite_site::{SiteClient, SiteStats};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{DesktopConfig, DesktopConfigError, Person, SiteEntry};

/// The name of this system's status section.
pub const SYSTEM: &str = "desktop";

/// Largest frame taken; a larger one closes the connection with 1009.
pub const MAX_FRAME: usize = 16 * 1024;

/// A connection's read buffer (tungstenite's default: 128 KiB).
const READ_BUFFER: usize = 4 * 1024;

/// What a connection may hold of unsent frames (a desktop that stopped
/// reading); beyond, sends fail and the connection ends.
const MAX_WRITE_BUFFER: usize = 64 * 1024;

/// How often `stats` is sent (and the site polled for it).
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Failed `hello`s before the connection is closed.
pub const MAX_HELLO_ATTEMPTS: u32 = 3;

/// How long shutdown waits for connections to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) config: DesktopConfig,
    /// The people by user name: a hello looks one up (5,000 people and a
    /// switchover storm make a scan of the list add up).
    pub(crate) people: HashMap<String, Person>,
    pub(crate) site_name: String,
    pub(crate) site: SiteClient,
    pub(crate) verifier: password::Verifier,
    pub(crate) sessions: session::Sessions,
    pub(crate) router: Arc<router::Router>,
    /// The desktops' decisions go out here (system `desktop`, D7).
    pub(crate) events: hotsite_host::Events,
    pub(crate) stats: watch::Receiver<Option<SiteStats>>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) counters: Counters,
    connections: Arc<Semaphore>,
    /// Each connection holds a clone; shutdown drops this one and waits
    /// until every clone is gone (mini-redis's shutdown).
    done: Mutex<Option<mpsc::Sender<()>>>,
}

/// What the service counts, for status and metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hello_ok: AtomicU64,
    pub(crate) hello_session: AtomicU64,
    pub(crate) hello_bad_session: AtomicU64,
    pub(crate) hello_bad_credentials: AtomicU64,
    pub(crate) hello_unknown_application: AtomicU64,
    pub(crate) closed_too_many_attempts: AtomicU64,
    pub(crate) closed_hello_timeout: AtomicU64,
    pub(crate) closed_idle: AtomicU64,
    pub(crate) closed_too_big: AtomicU64,
    pub(crate) refused: AtomicU64,
}

impl Counters {
    fn hellos(&self) -> [(&'static str, u64); 5] {
        [
            ("ok", self.hello_ok.load(Ordering::Relaxed)),
            ("session", self.hello_session.load(Ordering::Relaxed)),
            (
                "bad_session",
                self.hello_bad_session.load(Ordering::Relaxed),
            ),
            (
                "bad_credentials",
                self.hello_bad_credentials.load(Ordering::Relaxed),
            ),
            (
                "unknown_application",
                self.hello_unknown_application.load(Ordering::Relaxed),
            ),
        ]
    }

    fn closes(&self) -> [(&'static str, u64); 4] {
        [
            (
                "too_many_attempts",
                self.closed_too_many_attempts.load(Ordering::Relaxed),
            ),
            (
                "hello_timeout",
                self.closed_hello_timeout.load(Ordering::Relaxed),
            ),
            ("idle", self.closed_idle.load(Ordering::Relaxed)),
            ("too_big", self.closed_too_big.load(Ordering::Relaxed)),
        ]
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum DesktopError {
    /// `[desktop]` is invalid.
    #[error(transparent)]
    Config(#[from] DesktopConfigError),
}

/// The running service, as the host sees it.
pub struct DesktopService {
    shared: Arc<Shared>,
    finished: mpsc::Receiver<()>,
    poller: JoinHandle<()>,
}

impl fmt::Debug for DesktopService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DesktopService")
            .field("connections", &self.shared.open_connections())
            .finish_non_exhaustive()
    }
}

/// Starts the service for the site `site_name` (this site, one of
/// `config.sites`) driving the site through `site`. `config` must be valid
/// for that site's `[site]` (checked by the binary with
/// [`DesktopConfig::validate`]).
pub async fn start(
    config: &DesktopConfig,
    site_name: &str,
    site: SiteClient,
    deps: &Deps,
) -> Result<(DesktopService, HttpRoutes), DesktopError> {
    let (stats_tx, stats) = watch::channel(site.stats().await.ok());
    let shutdown = CancellationToken::new();
    let (done, finished) = mpsc::channel(1);
    let concurrency = std::thread::available_parallelism().map_or(2, |n| n.get());
    let shared = Arc::new(Shared {
        config: config.clone(),
        people: config
            .people
            .iter()
            .map(|person| (person.user.clone(), person.clone()))
            .collect(),
        site_name: site_name.to_owned(),
        site: site.clone(),
        verifier: password::Verifier::new(concurrency),
        sessions: session::Sessions::new(config.session_key.as_ref().map(|k| k.expose())),
        router: Arc::new(router::Router::default()),
        events: deps.events(SYSTEM),
        stats,
        shutdown: shutdown.clone(),
        counters: Counters::default(),
        connections: Arc::new(Semaphore::new(config.max_connections)),
        done: Mutex::new(Some(done)),
    });
    tokio::spawn(
        shared
            .router
            .clone()
            .run(deps.bus().clone(), shutdown.clone()),
    );
    let poller = tokio::spawn(poll_stats(site, stats_tx, shutdown));
    let open = Router::new()
        .route("/v1/desktop", get(upgrade))
        .with_state(shared.clone())
        .merge(assets::routes());
    let routes = HttpRoutes {
        api: Router::new(),
        open,
        openapi: openapi(),
    };
    Ok((
        DesktopService {
            shared,
            finished,
            poller,
        },
        routes,
    ))
}

impl Shared {
    fn open_connections(&self) -> usize {
        self.config.max_connections - self.connections.available_permits()
    }

    fn done(&self) -> Option<mpsc::Sender<()>> {
        self.done.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The site's numbers once a second; `None` while the site does not answer.
async fn poll_stats(
    site: SiteClient,
    stats: watch::Sender<Option<SiteStats>>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(STATS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = site.stats().await.ok();
        stats.send_if_modified(|current| {
            let changed = *current != now;
            *current = now;
            changed
        });
    }
}

/// `GET /v1/desktop`: the upgrade, unless every connection is taken.
async fn upgrade(
    State(shared): State<Arc<Shared>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return hotsite_host::http::error(
                rejection.status(),
                format!(
                    "GET /v1/desktop is a WebSocket endpoint (PROTOCOL.md): {}",
                    rejection.body_text()
                ),
            )
        }
    };
    // DESIGN.md invariant 6: past the bound a clear refusal, before any
    // memory is spent on the connection.
    let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
        shared.counters.refused.fetch_add(1, Ordering::Relaxed);
        return unavailable(format!(
            "too many desktop connections (desktop.max_connections = {}); retry shortly",
            shared.config.max_connections
        ));
    };
    let Some(done) = shared.done() else {
        return unavailable("the desktop service is stopping; connect to the other site".into());
    };
    // Memory per desktop (the issue measures it): tungstenite's defaults are
    // 128 KiB read and 128 KiB write buffers per connection, sized for bulk
    // transfer. Desktop frames are small (at most MAX_FRAME) and every send
    // is flushed at once, so small buffers lose nothing; a desktop that
    // stops reading holds at most MAX_WRITE_BUFFER before sends fail.
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_frame_size(MAX_FRAME)
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| async move {
            connection::run(socket, shared, done).await;
            drop(permit);
        })
}

fn unavailable(message: String) -> Response {
    let mut response = hotsite_host::http::error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn openapi() -> Value {
    json!({
        "paths": {
            "/v1/desktop": {"get": {
                "summary": "Agent desktop WebSocket (PROTOCOL.md, SPEC D1-D6); no bearer token: desktops authenticate with hello",
                "security": [],
                "responses": {
                    "101": {"description": "Switching to the desktop protocol"},
                    "503": {"description": "desktop.max_connections reached; Retry-After"}
                }
            }},
            "/desktop/": {"get": {
                "summary": "The web desktop (static files)",
                "security": [],
                "responses": {"200": {"description": "index.html"}}
            }}
        }
    })
}

impl System for DesktopService {
    fn name(&self) -> &'static str {
        SYSTEM
    }

    fn status(&self) -> BoxFuture<'_, Map<String, Value>> {
        let shared = &self.shared;
        let mut hellos = Map::new();
        for (outcome, n) in shared.counters.hellos() {
            hellos.insert(outcome.into(), json!(n));
        }
        let mut closed = Map::new();
        for (reason, n) in shared.counters.closes() {
            closed.insert(reason.into(), json!(n));
        }
        let mut section = Map::new();
        section.insert(
            "desktop".into(),
            json!({
                "connections": shared.open_connections(),
                "max_connections": shared.config.max_connections,
                "refused": shared.counters.refused.load(Ordering::Relaxed),
                "hellos": hellos,
                "closed": closed,
                "telephony": if shared.stats.borrow().is_some() { "on" } else { "off" },
            }),
        );
        Box::pin(async move { section })
    }

    fn health(&self) -> BoxFuture<'_, Health> {
        let mut fields = Map::new();
        fields.insert(
            "desktop_connections".into(),
            json!(self.shared.open_connections()),
        );
        // Desktops never make the site unready: the site's own health says
        // whether it takes work.
        Box::pin(async move {
            Health {
                ready: true,
                fields,
            }
        })
    }

    fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(DesktopCollector {
            shared: self.shared.clone(),
        }));
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let DesktopService {
                shared,
                mut finished,
                poller,
            } = *self;
            shared.shutdown.cancel();
            shared.done.lock().unwrap_or_else(|e| e.into_inner()).take();
            drop(shared);
            // Every connection closes with 1001 after sending the events it
            // already had (a drain's logouts); the stragglers are left.
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, finished.recv()).await;
            let _ = poller.await;
        })
    }
}

/// Reads the counters at scrape time.
struct DesktopCollector {
    shared: Arc<Shared>,
}

impl fmt::Debug for DesktopCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DesktopCollector").finish_non_exhaustive()
    }
}

impl Collector for DesktopCollector {
    fn encode(&self, mut encoder: Encoder) -> fmt::Result {
        let encoder = &mut encoder;
        let shared = &self.shared;
        metrics::gauge(
            encoder,
            "desktop_connections",
            "Desktop WebSocket connections open at this site (SPEC D1).",
            shared.open_connections() as i64,
        )?;
        metrics::counter(
            encoder,
            "desktop_connections_refused",
            "Desktop upgrades refused with 503: desktop.max_connections reached.",
            shared.counters.refused.load(Ordering::Relaxed),
        )?;
        metrics::counter_family(
            encoder,
            "desktop_hellos",
            "Desktop hellos by outcome: ok (password), session (token), bad_credentials, bad_session, unknown_application (SPEC D1, D8).",
            shared
                .counters
                .hellos()
                .into_iter()
                .map(|(outcome, n)| ([("outcome", outcome)], n)),
        )?;
        metrics::counter_family(
            encoder,
            "desktop_closed",
            "Desktop connections closed by the service, by reason: too_many_attempts, hello_timeout, idle, too_big.",
            shared
                .counters
                .closes()
                .into_iter()
                .map(|(reason, n)| ([("reason", reason)], n)),
        )?;
        Ok(())
    }
}
