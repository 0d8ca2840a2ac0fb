//! hotsite's side of the HTTP API's callbacks, for the tests: an HTTP server
//! that records every POST (path, signature header, body, decoded fields) and
//! answers 200, or 503 to the first `fail_first` requests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Router;
use tokio::net::TcpListener;

/// One POST the sink received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Posted {
    pub(crate) path: String,
    pub(crate) signature: Option<String>,
    pub(crate) body: String,
    pub(crate) fields: HashMap<String, String>,
}

#[derive(Default)]
struct Inner {
    posted: Mutex<Vec<Posted>>,
    requests: AtomicUsize,
    fail_first: AtomicUsize,
}

#[derive(Clone)]
pub(crate) struct CallbackSink {
    inner: Arc<Inner>,
    pub(crate) addr: SocketAddr,
}

impl CallbackSink {
    pub(crate) async fn start() -> CallbackSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let addr = listener.local_addr().expect("sink addr");
        let inner = Arc::new(Inner::default());
        let router = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&inner));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        CallbackSink { inner, addr }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next `count` requests 503 (they are still counted, not recorded).
    pub(crate) fn fail_first(&self, count: usize) {
        self.inner.fail_first.store(count, Ordering::SeqCst);
    }

    /// Every request, failed or recorded.
    pub(crate) fn requests(&self) -> usize {
        self.inner.requests.load(Ordering::SeqCst)
    }

    /// The POSTs answered 200 whose path is `path`, in arrival order.
    pub(crate) fn posted(&self, path: &str) -> Vec<Posted> {
        let posted = self.inner.posted.lock().expect("sink lock");
        posted
            .iter()
            .filter(|posted| posted.path == path)
            .cloned()
            .collect()
    }

    /// Polls until `count` POSTs reached `path`; panics after about 2 s.
    pub(crate) async fn wait_for(&self, path: &str, count: usize) -> Vec<Posted> {
        for _ in 0..200 {
            let posted = self.posted(path);
            if posted.len() >= count {
                return posted;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!(
            "timed out waiting for {count} POSTs to {path}: {:#?}",
            self.posted(path)
        );
    }
}

async fn record(
    State(inner): State<Arc<Inner>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    inner.requests.fetch_add(1, Ordering::SeqCst);
    let failing = inner
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    if failing {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let body = String::from_utf8(body.to_vec()).expect("callbacks are UTF-8");
    let posted = Posted {
        path: uri.path().to_owned(),
        signature: headers
            .get("x-hub-signature-256")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        fields: decode_form(&body),
        body,
    };
    inner.posted.lock().expect("sink lock").push(posted);
    StatusCode::OK
}

/// A lenient form decoder: good enough for bodies the lab encodes.
pub(crate) fn decode_form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                index += 2;
            }
            other => out.push(other),
        }
        index += 1;
    }
    String::from_utf8(out).expect("UTF-8 field")
}

/// The signature the lab must send for `body` under `secret` (SPEC M15),
/// computed independently of the lab's code.
pub(crate) fn expected_signature(secret: &str, body: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}
