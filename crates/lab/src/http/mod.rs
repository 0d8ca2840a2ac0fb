//! The HTTP servers: the provider's HTTP API (one server per site) and webhook
//! receivers (the digital channels' endpoints), with the same faults for both.
//!
//! # The HTTP API (what hotsite's HTTP client is written against)
//!
//! `POST /sms/send` with `Content-Type: application/x-www-form-urlencoded`
//! (parameters such as `; charset=utf-8` allowed) and the fields:
//!
//! | field          | meaning |
//! |----------------|---------|
//! | `login`        | an account's `system_id` (`[[lab.accounts]]`) |
//! | `password`     | its password |
//! | `phone_number` | the handset: 6 to 16 digits, optional leading `+` |
//! | `sender`       | 1 to 16 digits (optional leading `+`), or 1 to 11 ASCII letters, digits and spaces |
//! | `message`      | UTF-8 text, at most 1600 characters |
//! | `message_id`   | the client's id, 1 to 64 characters: the dedupe key with `login` |
//! | `receipt`      | `0` or `1`, default `0`: post a delivery receipt to `dr_url` |
//! | `priority`     | `0` to `3`, default `0` (accepted and ignored) |
//!
//! Every answer is JSON: `{"code": <int>, "description": "<text>", "message_id":
//! "<the client's message_id, or null if unreadable>", "provider_id": "<lab id
//! or null>"}`, with HTTP 200 except for codes 30 and 31 (HTTP 400); injected
//! faults aside (see below). Checks run in the order of the table below; the
//! first failure answers.
//!
//! | code | HTTP | meaning | provider_id |
//! |------|------|---------|-------------|
//! | 30 | 400 | `missing field <name>`: a required field absent, or `login`/`message_id` empty (checked in the order above) | null |
//! | 31 | 400 | malformed request: wrong content type, bad escape, not UTF-8, a field twice, `receipt`/`priority` out of range, `message_id` too long | null |
//! | 10 | 200 | authentication failed | null |
//! | 11 | 200 | invalid sender | null |
//! | 12 | 200 | invalid destination | null |
//! | 13 | 200 | message too long | null |
//! | 20 | 200 | throttled (fault `throttle`), not taken | null |
//! | 21 | 200 | internal error (fault `internal_error`), not taken | null |
//! | 14 | 200 | duplicate: (`login`, `message_id`) was accepted before, on any site; nothing is delivered again | the *original* id |
//! | 0  | 200 | accepted: delivered to the handset once | a new id, unique in the lab |
//!
//! Other paths answer 404 and other methods 405 (axum's plain answers).
//!
//! # Callbacks (what hotsite's callback endpoints receive)
//!
//! `POST` with `Content-Type: application/x-www-form-urlencoded`, and when
//! `lab.http.callback_secret` is set `X-Hub-Signature-256: sha256=<base64 of
//! HMAC-SHA256(secret, body)>` (standard base64, padded; SPEC M15).
//!
//! - Delivery receipt, to `lab.http.dr_url`, `lab.receipts.delay_ms` after an
//!   accepted submit with `receipt=1`: `message_id=<client id>&provider_id=<lab
//!   id>&status=<DELIVRD|EXPIRED|UNDELIV|REJECTD>&site=<site>&done_at=<unix ms>`.
//!   `status` follows `lab.receipts.final_state`. `site` is the site that took
//!   the message, or with `lab.receipts.other_site_probability` another HTTP
//!   site (SPEC M1); with `duplicate_probability` the same body is posted twice,
//!   concurrently (SPEC M13).
//! - MO, to `lab.http.mo_url`, on [`LabHandle::send_http_mo`] or `POST
//!   /v1/http/mo`: `message_id=<lab MO id>&from=<handset>&to=<number>&message=<text>&site=<site>`,
//!   optionally twice with the same body.
//!
//! Every callback runs in its own task (callbacks overlap). An answer other
//! than 2xx, a timeout (`callback_timeout_ms`) or a connection failure is
//! retried every `callback_retry_ms`, up to `callback_max_attempts` attempts.
//!
//! # Webhook receivers
//!
//! `POST` on any path with a JSON object body holding at least `"id"` (a
//! string or a number) and usually `"from"`, `"to"`, `"text"`. With a `secret`
//! the `X-Hub-Signature-256` header must sign the body, else 401. A new `id` is
//! logged ([`WebhookMessage`]) and answered 200 `{"id": "<receiver's id>"}`; a
//! repeated `id` is answered 200 with the same receiver id, counted as a
//! duplicate, and not logged again. A body that is not such an object: 400;
//! another method: 405. Errors are `{"error": "..."}`.
//!
//! # Faults
//!
//! [`HttpFault`], per server, through [`LabHandle::set_http_site_fault`],
//! [`LabHandle::set_webhook_fault`] or the control API. A fault applies to the
//! next request, on new and kept-alive connections alike.
//!
//! [`LabHandle::send_http_mo`]: crate::LabHandle::send_http_mo
//! [`LabHandle::set_http_site_fault`]: crate::LabHandle::set_http_site_fault
//! [`LabHandle::set_webhook_fault`]: crate::LabHandle::set_webhook_fault
//! [`WebhookMessage`]: crate::WebhookMessage

pub(crate) mod aggregator;
pub(crate) mod callbacks;
mod fault;
pub(crate) mod form;
mod serve;
pub(crate) mod signing;
pub(crate) mod webhook;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use fault::{HttpFault, MAX_RETRY_AFTER_S};

use crate::config::{HttpConfig, LabConfig};
use crate::lab::LabError;
use crate::port::{self, lock, Life, Port};
use crate::shared::Shared;
use crate::stats::{HttpSiteStats, HttpTransportStats, WebhookStats};
use aggregator::SiteCounters;
use webhook::ReceiverState;

/// How many times a shared port picked by the kernel is tried again when
/// another site's address already has it.
const SHARED_PORT_TRIES: usize = 8;

/// What every HTTP server has: an address that can die, a fault, counters.
pub(crate) struct HttpServer {
    /// `http site a`, `webhook primary-chat`: for logs and errors.
    pub(crate) what: String,
    pub(crate) name: String,
    pub(crate) port: Port,
    /// Watched by hung requests, which end when the fault changes.
    fault: watch::Sender<Option<HttpFault>>,
    transport: Mutex<HttpTransportStats>,
}

/// One site of the HTTP API.
pub(crate) struct AggregatorSite {
    pub(crate) server: HttpServer,
    pub(crate) counters: Mutex<SiteCounters>,
}

/// One webhook receiver.
pub(crate) struct WebhookReceiver {
    pub(crate) server: HttpServer,
    pub(crate) secret: Option<Vec<u8>>,
    pub(crate) state: Mutex<ReceiverState>,
}

/// Which HTTP server: its role and its index among the servers of that role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerRef {
    Site(usize),
    Webhook(usize),
}

impl HttpServer {
    fn new(what: String, name: &str, addr: SocketAddr) -> HttpServer {
        HttpServer {
            what,
            name: name.to_owned(),
            port: Port::new(addr),
            fault: watch::Sender::new(None),
            transport: Mutex::new(HttpTransportStats::default()),
        }
    }

    /// The fault in force.
    pub(crate) fn fault(&self) -> Option<HttpFault> {
        *self.fault.borrow()
    }

    /// A receiver of fault changes.
    pub(crate) fn watch_fault(&self) -> watch::Receiver<Option<HttpFault>> {
        self.fault.subscribe()
    }

    /// The transport counters, under their lock.
    pub(crate) fn transport(&self) -> MutexGuard<'_, HttpTransportStats> {
        lock(&self.transport)
    }
}

impl Shared {
    /// The HTTP server `server`.
    pub(crate) fn http_server(&self, server: ServerRef) -> &HttpServer {
        match server {
            ServerRef::Site(index) => &self.http_sites[index].server,
            ServerRef::Webhook(index) => &self.webhooks[index].server,
        }
    }

    /// The HTTP API site named `name`.
    pub(crate) fn http_site_index(&self, name: &str) -> Option<usize> {
        self.http_sites
            .iter()
            .position(|site| site.server.name == name)
    }

    /// The webhook receiver named `name`.
    pub(crate) fn webhook_index(&self, name: &str) -> Option<usize> {
        self.webhooks
            .iter()
            .position(|receiver| receiver.server.name == name)
    }

    /// Puts an HTTP server into `fault`, replacing the previous one. After
    /// [`HttpFault::Die`] returns the port refuses connections; any other fault
    /// on a dead server brings it back with that fault.
    pub(crate) fn set_http_fault(
        self: &Arc<Self>,
        server_ref: ServerRef,
        fault: HttpFault,
    ) -> Result<(), LabError> {
        fault.validate()?;
        let server = self.http_server(server_ref);
        if fault.is_aggregator_only() && matches!(server_ref, ServerRef::Webhook(_)) {
            return Err(crate::fault::InvalidFault {
                field: "fault",
                reason: "throttle and internal_error are HTTP API result codes: \
                         only for HTTP API sites"
                    .to_owned(),
            }
            .into());
        }
        let mut life = server.port.life();
        tracing::info!(server = %server.what, ?fault, "fault");
        let in_force = match fault {
            HttpFault::Recover => None,
            other => Some(other),
        };
        if fault == HttpFault::Die {
            // The life ends first: hung requests that wake on the fault change
            // must find their connection killed, so it is reset, not closed.
            if let Some(life) = life.take() {
                life.end();
            }
            server.fault.send_replace(in_force);
            return Ok(());
        }
        // The port is taken first, so a failure leaves the server dead, as reported.
        let listener = if life.is_none() {
            let _runtime = self.runtime.enter();
            Some(
                port::listen(server.port.addr).map_err(|source| LabError::Listen {
                    what: server.what.clone(),
                    addr: server.port.addr,
                    source,
                })?,
            )
        } else {
            None
        };
        server.fault.send_replace(in_force);
        if let Some(listener) = listener {
            *life = Some(self.spawn_http_life(server_ref, listener));
        }
        Ok(())
    }

    fn spawn_http_life(self: &Arc<Self>, server_ref: ServerRef, listener: TcpListener) -> Life {
        let _runtime = self.runtime.enter();
        let life = Life::new(listener, &self.shutdown);
        self.tasks.spawn(accept_loop(
            Arc::clone(self),
            server_ref,
            Arc::clone(&life.listener),
            life.kill.clone(),
        ));
        life
    }

    /// A snapshot of every HTTP API site's counters.
    pub(crate) fn http_site_stats(&self) -> Vec<HttpSiteStats> {
        self.http_sites
            .iter()
            .map(|site| {
                let counters = lock(&site.counters).clone();
                HttpSiteStats {
                    name: site.server.name.clone(),
                    addr: site.server.port.addr,
                    fault: site.server.fault(),
                    transport: site.server.transport().clone(),
                    accepted: counters.accepted,
                    duplicates_dropped: counters.duplicates_dropped,
                    codes: counters.codes,
                    callbacks: counters.callbacks,
                }
            })
            .collect()
    }

    /// A snapshot of every webhook receiver's counters.
    pub(crate) fn webhook_stats(&self) -> Vec<WebhookStats> {
        self.webhooks
            .iter()
            .map(|receiver| {
                let state = lock(&receiver.state);
                WebhookStats {
                    name: receiver.server.name.clone(),
                    addr: receiver.server.port.addr,
                    fault: receiver.server.fault(),
                    transport: receiver.server.transport().clone(),
                    accepted: state.log.len() as u64,
                    duplicates: state.duplicates,
                    unauthorized: state.unauthorized,
                    rejected: state.rejected,
                }
            })
            .collect()
    }
}

/// Binds every HTTP API site's port, in configuration order.
pub(crate) fn bind_sites(
    config: &LabConfig,
) -> Result<(Vec<AggregatorSite>, Vec<TcpListener>), LabError> {
    let Some(http) = &config.http else {
        return Ok((Vec::new(), Vec::new()));
    };
    let listeners = if http.shared_port {
        bind_shared_port(http)?
    } else {
        http.sites
            .iter()
            .map(|site| bind_one(&format!("http site {}", site.name), site.listen))
            .collect::<Result<Vec<_>, _>>()?
    };
    let sites = http
        .sites
        .iter()
        .zip(&listeners)
        .map(|(site, (_, addr))| AggregatorSite {
            server: HttpServer::new(format!("http site {}", site.name), &site.name, *addr),
            counters: Mutex::new(SiteCounters::default()),
        })
        .collect();
    Ok((
        sites,
        listeners
            .into_iter()
            .map(|(listener, _)| listener)
            .collect(),
    ))
}

/// Binds every site at its own address on one port: the configured one, or
/// the one the kernel gives the first site. Another program may hold that port
/// on a later site's address, so a kernel-picked port is tried a few times.
fn bind_shared_port(http: &HttpConfig) -> Result<Vec<(TcpListener, SocketAddr)>, LabError> {
    let Some(first) = http.sites.first() else {
        return Ok(Vec::new());
    };
    let picked_by_kernel = first.listen.port() == 0;
    let mut tries = 0;
    loop {
        tries += 1;
        let (listener, addr) = bind_one(&format!("http site {}", first.name), first.listen)?;
        let mut bound = vec![(listener, addr)];
        let mut conflict = None;
        for site in &http.sites[1..] {
            let wanted = SocketAddr::new(site.listen.ip(), addr.port());
            match port::listen(wanted) {
                Ok(listener) => bound.push((listener, wanted)),
                Err(source) => {
                    conflict = Some((site, wanted, source));
                    break;
                }
            }
        }
        let Some((site, wanted, source)) = conflict else {
            return Ok(bound);
        };
        let retry = picked_by_kernel
            && source.kind() == io::ErrorKind::AddrInUse
            && tries < SHARED_PORT_TRIES;
        if !retry {
            return Err(LabError::Listen {
                what: format!("http site {} (shared port)", site.name),
                addr: wanted,
                source,
            });
        }
        tracing::debug!(
            port = addr.port(),
            "shared port taken on another address; trying another"
        );
    }
}

fn bind_one(what: &str, addr: SocketAddr) -> Result<(TcpListener, SocketAddr), LabError> {
    let listen_error = |source| LabError::Listen {
        what: what.to_owned(),
        addr,
        source,
    };
    let listener = port::listen(addr).map_err(listen_error)?;
    let bound = listener.local_addr().map_err(listen_error)?;
    Ok((listener, bound))
}

/// Binds every webhook receiver's port, in configuration order.
pub(crate) fn bind_webhooks(
    config: &LabConfig,
) -> Result<(Vec<WebhookReceiver>, Vec<TcpListener>), LabError> {
    let mut receivers = Vec::new();
    let mut listeners = Vec::new();
    for webhook in &config.webhooks {
        let what = format!("webhook {}", webhook.name);
        let (listener, addr) = bind_one(&what, webhook.listen)?;
        receivers.push(WebhookReceiver {
            server: HttpServer::new(what, &webhook.name, addr),
            secret: webhook
                .secret
                .as_ref()
                .map(|secret| secret.as_bytes().to_vec()),
            state: Mutex::new(ReceiverState::default()),
        });
        listeners.push(listener);
    }
    Ok((receivers, listeners))
}

/// Starts the first life of every HTTP server.
pub(crate) fn start(shared: &Arc<Shared>, sites: Vec<TcpListener>, webhooks: Vec<TcpListener>) {
    let servers = sites
        .into_iter()
        .enumerate()
        .map(|(index, listener)| (ServerRef::Site(index), listener))
        .chain(
            webhooks
                .into_iter()
                .enumerate()
                .map(|(index, listener)| (ServerRef::Webhook(index), listener)),
        );
    for (server_ref, listener) in servers {
        let life = shared.spawn_http_life(server_ref, listener);
        *shared.http_server(server_ref).port.life() = Some(life);
    }
}

/// One life of an HTTP server: serves each connection with its router.
async fn accept_loop(
    shared: Arc<Shared>,
    server_ref: ServerRef,
    slot: port::ListenerSlot,
    kill: CancellationToken,
) {
    let server = shared.http_server(server_ref);
    tracing::info!(server = %server.what, addr = %server.port.addr, "listening");
    let router = match server_ref {
        ServerRef::Site(index) => aggregator::router(Arc::clone(&shared), index),
        ServerRef::Webhook(index) => webhook::router(Arc::clone(&shared), index),
    };
    let connection_kill = kill.clone();
    port::accept_loop(&server.what, slot, kill, |stream, peer| {
        server.transport().connections += 1;
        let span = tracing::info_span!("http", server = %server.what, %peer);
        let connection = serve::connection(
            Arc::clone(&shared),
            server_ref,
            stream,
            router.clone(),
            connection_kill.clone(),
        );
        shared.tasks.spawn(connection.instrument(span));
    })
    .await;
}
