//! One HTTP/1.1 connection of an HTTP server: hyper serves it, each request
//! first meets the server's fault, then the server's axum router.
//!
//! The lab runs its own accept loop and hyper connection (not `axum::serve`)
//! because its faults need the socket: a reset is a close with `SO_LINGER` 0,
//! and a dying server must reset the connections it has. The stream is wrapped
//! in [`ResetOnDrop`], so whoever drops the connection, a reset requested before
//! goes out as an RST.

use std::convert::Infallible;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{service_fn, Service};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::http::{HttpFault, ServerRef};
use crate::shared::Shared;

/// Largest body read before a hang or a reset: they only need to have read
/// the request, and a lab does not buffer megabytes to ignore them.
const FAULT_BODY_LIMIT: usize = 1 << 20;

/// Serves one connection until the peer closes it, a fault resets it, or
/// `kill` (the server's death, the lab's shutdown) resets it.
pub(crate) async fn connection(
    shared: Arc<Shared>,
    server: ServerRef,
    stream: TcpStream,
    router: Router,
    kill: CancellationToken,
) {
    let reset = Arc::new(AtomicBool::new(false));
    let abort = kill.child_token();
    let io = TokioIo::new(ResetOnDrop {
        stream,
        reset: Arc::clone(&reset),
        kill: kill.clone(),
    });
    let faults = FaultGate {
        shared,
        server,
        reset,
        abort: abort.clone(),
    };
    let app = TowerToHyperService::new(router);
    let service = service_fn(move |request: Request<Incoming>| {
        let faults = faults.clone();
        let app = app.clone();
        async move { faults.handle(request, app).await }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(io, service);
    let served = pin!(served);
    tokio::select! {
        result = served => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended");
            }
        }
        () = abort.cancelled() => tracing::debug!("connection reset"),
    }
}

/// Applies the server's fault to each request of one connection.
#[derive(Clone)]
struct FaultGate {
    shared: Arc<Shared>,
    server: ServerRef,
    /// Set before `abort` when a fault resets the connection.
    reset: Arc<AtomicBool>,
    /// Cancelled to drop the connection at once.
    abort: CancellationToken,
}

impl FaultGate {
    async fn handle(
        &self,
        request: Request<Incoming>,
        app: TowerToHyperService<Router>,
    ) -> Result<Response<Body>, Infallible> {
        let server = self.shared.http_server(self.server);
        server.transport().requests += 1;
        match server.fault() {
            Some(HttpFault::Status {
                code,
                retry_after_s,
            }) => {
                *server.transport().injected.entry(code).or_default() += 1;
                return Ok(injected_status(code, retry_after_s));
            }
            Some(HttpFault::Hang) => {
                let mut faults = server.watch_fault();
                read_body(request).await;
                server.transport().hung += 1;
                // Never answer. Once the fault changes the connection is
                // closed (FIN, unanswered), so hung connections do not pile
                // up after the client gave up; dying or stopping resets it.
                let _ = faults
                    .wait_for(|fault| !matches!(fault, Some(HttpFault::Hang)))
                    .await;
                self.abort.cancel();
                return std::future::pending().await;
            }
            Some(HttpFault::Reset) => {
                read_body(request).await;
                server.transport().reset += 1;
                self.reset.store(true, Ordering::SeqCst);
                self.abort.cancel();
                return std::future::pending().await;
            }
            Some(HttpFault::Slow { delay_ms }) => {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            // Throttle and internal errors are the HTTP API's answers, applied
            // by its handler; a dead server has no requests.
            Some(
                HttpFault::Throttle { .. }
                | HttpFault::InternalError { .. }
                | HttpFault::Die
                | HttpFault::Recover,
            )
            | None => {}
        }
        app.call(request).await
    }
}

/// Reads and drops a request body, so a hang or reset comes after the whole
/// request as the brief of each fault says.
async fn read_body(request: Request<Incoming>) {
    let body = Body::new(request.into_body());
    if let Err(error) = axum::body::to_bytes(body, FAULT_BODY_LIMIT).await {
        tracing::debug!(%error, "request body not read whole");
    }
}

/// The answer of [`HttpFault::Status`].
fn injected_status(code: u16, retry_after_s: Option<u64>) -> Response<Body> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({ "error": format!("injected fault: status {code}") });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(seconds) = retry_after_s {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// A connection's stream that closes with an RST (`SO_LINGER` 0) when a reset
/// was requested or its server was killed, and with a FIN otherwise.
struct ResetOnDrop {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
    kill: CancellationToken,
}

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) || self.kill.is_cancelled() {
            if let Err(error) = self.stream.set_zero_linger() {
                tracing::debug!(%error, "cannot set SO_LINGER 0");
            }
        }
    }
}

impl AsyncRead for ResetOnDrop {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResetOnDrop {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
