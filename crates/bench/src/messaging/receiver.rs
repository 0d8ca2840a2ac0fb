//! The bench's application: an HTTP receiver in this process for delivery
//! receipts, counted per message, so a product that does not get its receipts
//! through is reported instead of silently counted.
//!
//! - hotsite posts its signed JSON webhook (`POST /hotsite/<gateway>`, SPEC
//!   M15; each gateway of a run has its own number in the path, so receipts
//!   are also counted per gateway); a receipt's `from` is the handset, i.e.
//!   the bench's destination of the message, which gives its number.
//! - Kannel's smsbox calls the `dlr-url` of each message (`GET
//!   /kannel?i=<number>&t=<%d: DLR type>`); types 1 (delivered), 2 (failed)
//!   and 16 (SMSC reject) are final.
//!
//! The signature is not checked: the bench measures, the tests check M15.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::clock;
use super::driver::index_of;

/// Kannel DLR types that end a message: delivered, failed, SMSC reject.
const KANNEL_FINAL: u32 = 1 | 2 | 16;

#[derive(Default)]
struct Counts {
    /// Final receipts per message number (saturating).
    per_message: Vec<u8>,
    /// Every callback, final or not.
    callbacks: u64,
    /// Non-final callbacks (Kannel intermediate DLRs; hotsite MOs).
    intermediate: u64,
    /// Receipts for no message of this run.
    foreign: u64,
    /// Messages with at least one final receipt.
    distinct: u64,
    /// Final receipts after the first of their message.
    duplicates: u64,
    /// Receipts that say the message was not delivered.
    not_delivered: u64,
    /// Final receipts posted by each hotsite gateway (index: gateway − 1).
    by_gateway: Vec<u64>,
    last: Option<Instant>,
}

impl Counts {
    fn record(&mut self, index: Option<u64>, delivered: bool) {
        self.callbacks += 1;
        let slot = index
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.per_message.get_mut(i));
        let Some(slot) = slot else {
            self.foreign += 1;
            return;
        };
        if *slot == 0 {
            self.distinct += 1;
        } else {
            self.duplicates += 1;
        }
        *slot = slot.saturating_add(1);
        if !delivered {
            self.not_delivered += 1;
        }
        self.last = Some(clock());
    }
}

/// What the receiver counted in one run.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ReceiptCounts {
    pub(crate) callbacks: u64,
    pub(crate) distinct: u64,
    pub(crate) duplicates: u64,
    pub(crate) not_delivered: u64,
    pub(crate) intermediate: u64,
    pub(crate) foreign: u64,
    /// Final receipts posted by each hotsite gateway, in gateway order.
    pub(crate) by_gateway: Vec<u64>,
    #[serde(skip)]
    pub(crate) last: Option<Instant>,
}

/// The receiver: listening until dropped.
pub(crate) struct Receiver {
    addr: SocketAddr,
    counts: Arc<Mutex<Counts>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Deserialize)]
struct HotsiteBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    state: Option<u8>,
}

#[derive(Deserialize)]
struct KannelDlr {
    i: u64,
    t: u32,
}

type Shared = Arc<Mutex<Counts>>;

/// The highest gateway number the receiver counts separately.
const MAX_GATEWAYS: usize = 8;

async fn hotsite(
    State(counts): State<Shared>,
    Path(gateway): Path<usize>,
    body: axum::body::Bytes,
) -> StatusCode {
    let Ok(body) = serde_json::from_slice::<HotsiteBody>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
    if body.kind != "receipt" {
        counts.callbacks += 1;
        counts.intermediate += 1;
        return StatusCode::OK;
    }
    if let Some(i) = gateway.checked_sub(1).filter(|&i| i < MAX_GATEWAYS) {
        if counts.by_gateway.len() <= i {
            counts.by_gateway.resize(i + 1, 0);
        }
        counts.by_gateway[i] += 1;
    }
    let index = index_of(&body.from).or_else(|| index_of(&body.to));
    // SMPP message_state 2 = DELIVERED.
    counts.record(index, body.state == Some(2));
    StatusCode::OK
}

async fn kannel(State(counts): State<Shared>, Query(dlr): Query<KannelDlr>) -> StatusCode {
    let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
    if dlr.t & KANNEL_FINAL == 0 {
        counts.callbacks += 1;
        counts.intermediate += 1;
        return StatusCode::OK;
    }
    counts.record(Some(dlr.i), dlr.t & 1 != 0);
    StatusCode::OK
}

impl Receiver {
    /// Listens on a free loopback port for receipts of messages `0..total`.
    pub(crate) async fn start(total: u64) -> anyhow::Result<Receiver> {
        let counts: Shared = Arc::new(Mutex::new(Counts {
            per_message: vec![0; usize::try_from(total)?],
            ..Counts::default()
        }));
        let app = Router::new()
            .route("/hotsite/{gateway}", post(hotsite))
            .route("/kannel", get(kannel))
            .with_state(Arc::clone(&counts));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("receipt receiver stopped: {error}");
            }
        });
        Ok(Receiver { addr, counts, task })
    }

    /// hotsite's `[webhook] url` for gateway number `gateway` (from 1).
    pub(crate) fn hotsite_url(&self, gateway: usize) -> String {
        format!("http://{}/hotsite/{gateway}", self.addr)
    }

    /// Kannel's `dlr-url` base; the driver appends `?i=<n>&t=%d`.
    pub(crate) fn kannel_url(&self) -> String {
        format!("http://{}/kannel", self.addr)
    }

    pub(crate) fn counts(&self) -> ReceiptCounts {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        ReceiptCounts {
            callbacks: c.callbacks,
            distinct: c.distinct,
            duplicates: c.duplicates,
            not_delivered: c.not_delivered,
            intermediate: c.intermediate,
            foreign: c.foreign,
            by_gateway: c.by_gateway.clone(),
            last: c.last,
        }
    }

    /// Waits until `expected` messages have a final receipt, the count stops
    /// moving for `idle`, or `limit` passes. Returns whether all came.
    pub(crate) async fn settle(&self, expected: u64, idle: Duration, limit: Duration) -> bool {
        let start = clock();
        let mut last_seen = u64::MAX;
        let mut last_change = start;
        loop {
            let now = clock();
            let counts = self.counts();
            if counts.distinct >= expected {
                return true;
            }
            if counts.callbacks != last_seen {
                last_seen = counts.callbacks;
                last_change = now;
            } else if now.duration_since(last_change) >= idle {
                return false;
            }
            if now.duration_since(start) >= limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SPEC M13 (one final receipt per message, repeats recorded): the bench
    // counts distinct messages with a receipt, so a product that loses or
    // repeats receipts is reported, not counted as delivered.
    #[test]
    fn receipts_are_counted_per_message() {
        let mut counts = Counts {
            per_message: vec![0; 3],
            ..Counts::default()
        };
        counts.record(Some(0), true);
        counts.record(Some(0), true);
        counts.record(Some(2), false);
        counts.record(Some(7), true);
        counts.record(None, true);
        assert_eq!(counts.callbacks, 5);
        assert_eq!(counts.distinct, 2);
        assert_eq!(counts.duplicates, 1);
        assert_eq!(counts.not_delivered, 1);
        assert_eq!(counts.foreign, 2);
    }
}
