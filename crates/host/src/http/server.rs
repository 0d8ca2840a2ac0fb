//! Serves the HTTP API's router on its listener with every resource a stranger
//! can hold bounded (DESIGN.md invariant 6): connections (a cap under the
//! process's file limit), time to send a request head, keep-alive idle time,
//! and time to handle a request.
//!
//! The policy (who may stay, who is closed for whom) is the sans-IO
//! [`admission`] table; this driver accepts, reads the clock, and moves bytes
//! with hyper. Replaces `axum::serve`, which has none of these bounds: with
//! the file limit reached it stops serving everyone, silently.

pub mod admission;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metrics::ServerMetrics;
use admission::{Admission, CloseReason, ConnId, Connections, Limits, LogLimiter};

/// The API server's bounds (`[api]` of the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Connections open at once; clamped at start under the process's soft
    /// file limit (see [`admission::clamp_to_file_limit`]).
    pub max_connections: usize,
    /// Time a client has to send a whole request head.
    pub header_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Time to handle a whole request, body included: past it the answer is
    /// `408` (the body had not arrived) or `503` (hotsite was too slow).
    pub request_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// How long a refused connection may take to receive its 503.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Refusals being written at once; past it a refused connection is just closed
/// (each one holds a file descriptor while its 503 is written).
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// Pause after an accept error such as EMFILE, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// How long shutdown waits for requests in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The one place the server reads the clock.
mod clock {
    use std::time::Instant;

    #[allow(clippy::disallowed_methods)] // the HTTP server driver's clock module
    pub(super) fn now() -> Instant {
        Instant::now()
    }
}

/// What every connection task shares.
struct Server {
    config: ServerConfig,
    metrics: ServerMetrics,
    table: Mutex<Table>,
}

struct Table {
    connections: Connections,
    /// Closes a connection evicted for a new one.
    evict: HashMap<ConnId, CancellationToken>,
}

impl Server {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn closed(&self, id: ConnId, reason: Option<CloseReason>) {
        let mut table = self.table();
        table.connections.closed(id);
        table.evict.remove(&id);
        self.metrics
            .connections_open
            .set(table.connections.len() as i64);
        drop(table);
        if let Some(reason) = reason {
            self.count(reason);
        }
    }

    fn count(&self, reason: CloseReason) {
        self.metrics
            .connections_closed
            .get_or_create(&[("reason", reason.label())])
            .inc();
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets requests in
/// progress finish (for a few seconds) and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    config: ServerConfig,
    metrics: ServerMetrics,
    shutdown: CancellationToken,
) {
    let soft_limit = soft_file_limit();
    let max_connections = admission::clamp_to_file_limit(config.max_connections, soft_limit);
    if max_connections < config.max_connections {
        tracing::warn!(
            configured = config.max_connections,
            max_connections,
            file_limit = soft_limit,
            reserve = admission::FILE_RESERVE,
            "api.max_connections lowered to fit the process's open-file limit (ulimit -n), with a reserve for the store, binds and outgoing HTTP"
        );
    }
    let limits = Limits {
        max_connections,
        header_timeout: config.header_timeout,
        idle_timeout: config.idle_timeout,
    };
    let server = Arc::new(Server {
        config,
        metrics,
        table: Mutex::new(Table {
            connections: Connections::new(limits),
            evict: HashMap::new(),
        }),
    });
    let router = TowerToHyperService::new(router);
    let mut connections = JoinSet::new();
    let mut refusals = JoinSet::new();
    let mut accept_errors = LogLimiter::new(Duration::from_secs(5));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            Some(_) = refusals.join_next(), if !refusals.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                // EMFILE, ENFILE, ENOBUFS: the process or the host is out of
                // something. Spinning on accept would burn a core and help nobody.
                if let Some(suppressed) = accept_errors.allow(clock::now()) {
                    tracing::error!(%error, suppressed, "HTTP API cannot accept connections; pausing");
                }
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (id, cancel) = {
            let mut table = server.table();
            let admission = table.connections.admit(clock::now());
            let id = match admission {
                Admission::Admit(id) => id,
                Admission::AdmitEvicting { id, evict } => {
                    if let Some(token) = table.evict.remove(&evict) {
                        token.cancel();
                    }
                    server.count(CloseReason::Evicted);
                    id
                }
                Admission::Refuse => {
                    drop(table);
                    server.count(CloseReason::Refused);
                    if refusals.len() < MAX_REFUSALS_IN_FLIGHT {
                        refusals.spawn(refuse(stream));
                    }
                    continue;
                }
            };
            let cancel = CancellationToken::new();
            table.evict.insert(id, cancel.clone());
            server
                .metrics
                .connections_open
                .set(table.connections.len() as i64);
            (id, cancel)
        };
        connections.spawn(connection(
            server.clone(),
            id,
            stream,
            router.clone(),
            cancel,
            shutdown.clone(),
        ));
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

/// Errors of one connection, not of the listener: accept again at once.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// A short 503 for a connection over the cap, then close.
async fn refuse(mut stream: TcpStream) {
    let body = r#"{"error":"too many connections: every connection is busy; retry shortly"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Per-connection state shared with its reader and its requests.
struct ConnState {
    server: Arc<Server>,
    id: ConnId,
    /// No byte of the next request head read yet.
    awaiting_head: AtomicBool,
    /// Rung when the phase changes, so the deadline is computed again.
    changed: Notify,
}

impl ConnState {
    fn head_started(&self) {
        if self.awaiting_head.swap(false, Ordering::AcqRel) {
            self.server
                .table()
                .connections
                .head_started(self.id, clock::now());
            self.changed.notify_one();
        }
    }
}

async fn connection(
    server: Arc<Server>,
    id: ConnId,
    stream: TcpStream,
    router: TowerToHyperService<Router>,
    evicted: CancellationToken,
    shutdown: CancellationToken,
) {
    let state = Arc::new(ConnState {
        server: server.clone(),
        id,
        awaiting_head: AtomicBool::new(true),
        changed: Notify::new(),
    });
    let io = TokioIo::new(WatchedIo {
        inner: stream,
        state: state.clone(),
    });
    let for_requests = state.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        handle(for_requests.clone(), router.clone(), request)
    });
    // With upgrades: a WebSocket (the desktop service's `/v1/desktop`)
    // takes the socket over after its 101; the connection then leaves this
    // table, and the system that upgraded it bounds its own connections.
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(conn);
    let mut shutting_down = false;
    let reason = loop {
        let deadline = server.table().connections.deadline(id);
        let sleep = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = conn.as_mut() => break None,
            () = evicted.cancelled() => {
                // Already out of the table and counted by the accept loop.
                server.closed(id, None);
                return;
            }
            () = shutdown.cancelled(), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
            () = state.changed.notified() => {}
            () = sleep => {
                if let Some(reason) = server.table().connections.expired(id, clock::now()) {
                    break Some(reason);
                }
            }
        }
    };
    server.closed(id, reason);
}

/// One request, under the request timeout.
async fn handle(
    state: Arc<ConnState>,
    router: TowerToHyperService<Router>,
    request: Request<Incoming>,
) -> Result<Response, Infallible> {
    let server = &state.server;
    server.table().connections.request_started(state.id);
    state.changed.notify_one();
    let received = Arc::new(AtomicBool::new(request.body().is_end_stream()));
    let request = request.map(|body| {
        Body::new(TrackedBody {
            inner: body,
            received: received.clone(),
        })
    });
    let timeout = server.config.request_timeout;
    let response = match tokio::time::timeout(timeout, router.call(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => {
            server.metrics.requests_timed_out.inc();
            timed_out(received.load(Ordering::Acquire), timeout)
        }
    };
    // The request is finished when its answer has been written, not when its
    // head is ready: a streamed answer (`/v1/events/stream`) keeps the
    // connection busy, so neither the idle timeout nor eviction cuts it.
    Ok(response.map(|body| {
        Body::new(AnswerBody {
            inner: body,
            state: Some(state),
        })
    }))
}

/// The answer's body; when it is dropped (written whole, or the connection
/// gone) the connection waits for its next request head again.
struct AnswerBody {
    inner: Body,
    state: Option<Arc<ConnState>>,
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            state.awaiting_head.store(true, Ordering::Release);
            state
                .server
                .table()
                .connections
                .request_finished(state.id, clock::now());
            state.changed.notify_one();
        }
    }
}

impl HttpBody for AnswerBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The answer to a request cut off by the request timeout: `408` while the
/// client had not sent its whole body, `503` when hotsite was the slow one.
/// The connection is closed after it (its body may be half read).
fn timed_out(body_received: bool, timeout: Duration) -> Response {
    let shown = humantime::format_duration(timeout);
    let (status, message) = if body_received {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request was not handled within api.request_timeout ({shown}); retry shortly"
            ),
        )
    } else {
        (
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body was not received within api.request_timeout ({shown})"),
        )
    };
    let mut response = (status, Json(json!({ "error": message }))).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The request body, noting when its last byte has arrived.
struct TrackedBody {
    inner: Incoming,
    received: Arc<AtomicBool>,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.received.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noting the first byte of each request head.
struct WatchedIo {
    inner: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.head_started();
        }
        polled
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The process's soft limit on open files (`ulimit -n`); `None` when unknown
/// or unlimited. Read from `/proc/self/limits`: std has no getrlimit and the
/// workspace forbids `unsafe`; off Linux the cap is taken as configured.
fn soft_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_soft_file_limit(&limits)
}

fn parse_soft_file_limit(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_soft_file_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63445                63445                processes \n\
                      Max open files            512                  4096                 files     \n";
        assert_eq!(parse_soft_file_limit(limits), Some(512));
        let unlimited =
            "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(parse_soft_file_limit(unlimited), None);
        assert_eq!(parse_soft_file_limit(""), None);
    }

    /// Invariant 6: a request cut off while its body was still arriving is the
    /// client's fault (408); one cut off after it is hotsite's (503, retry).
    #[test]
    fn timed_out_requests_say_whose_fault_it_was() {
        let response = timed_out(false, Duration::from_secs(2));
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        let response = timed_out(true, Duration::from_secs(2));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
