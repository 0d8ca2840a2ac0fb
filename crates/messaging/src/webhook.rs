//! Delivers stored MO messages and receipts to the customer's application as
//! signed webhook POSTs (SPEC M15), retried with backoff until a 2xx. Each
//! inbox row is delivered until acknowledged; repeats never reach the inbox
//! (SPEC M8), so the application sees each MO and receipt once — unless it
//! failed to answer a delivery in time, in which case the same `id` comes again
//! and the application dedupes on it.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hotsite_core::{Backoff, BackoffConfig, Secret};
use hotsite_store::{InboundKind, InboundUpdate, PendingInbound, Store, StoreError};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::lease::{run_renewals, Hold, Leases};
use crate::metrics::Metrics;
use crate::signing::{sign, SIGNATURE_HEADER};

/// Where and how to deliver.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The application's URL.
    pub url: String,
    /// HMAC-SHA256 secret for the signature header (SPEC M15).
    pub secret: Secret,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Backoff between attempts of one delivery.
    pub backoff: BackoffConfig,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

/// The JSON body of a webhook.
#[derive(Debug, Serialize)]
pub struct WebhookBody<'a> {
    /// `mo` or `receipt`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Stable id of this MO or receipt: repeats of a delivery carry the same.
    pub id: i64,
    /// For receipts: our message id, if correlated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<i64>,
    /// For receipts: `false` when its id matched no message within the store's
    /// correlation wait (SPEC M13): passed on, not dropped, and flagged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlated: Option<bool>,
    /// For receipts: the SMSC's message id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<&'a str>,
    /// For receipts: `message_state` (2 delivered, 5 undeliverable, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<u8>,
    /// Sender.
    pub from: &'a str,
    /// Recipient.
    pub to: &'a str,
    /// The body, as text when it is valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    /// The body, base64, always.
    pub body_base64: String,
    /// The provider's site and SMSC it arrived through.
    pub site: &'a str,
    /// The SMSC instance.
    pub smsc: &'a str,
    /// When hotsite received it (ms since the epoch).
    pub received_at_ms: i64,
}

impl<'a> WebhookBody<'a> {
    /// The body for one inbox row.
    pub fn new(row: &'a PendingInbound) -> WebhookBody<'a> {
        WebhookBody {
            kind: match row.kind {
                InboundKind::Mo => "mo",
                InboundKind::Receipt => "receipt",
            },
            id: row.id,
            message_id: row.message_id.map(|id| id.0),
            correlated: (row.kind == InboundKind::Receipt).then_some(row.message_id.is_some()),
            provider_message_id: row.provider_message_id.as_deref(),
            state: row.message_state,
            from: &row.source,
            to: &row.destination,
            text: std::str::from_utf8(&row.body).ok(),
            body_base64: STANDARD.encode(&row.body),
            site: &row.site,
            smsc: &row.smsc,
            received_at_ms: row.received_at_ms,
        }
    }
}

/// Inbox rows read per page. Big enough that a page outlasts the commit of the
/// previous page's results, so deliveries never wait for an fsync.
const PAGE: usize = 1024;
/// Rows held at most (read, being delivered, or delivered and not yet recorded).
const MAX_HELD: usize = 4 * PAGE;
/// How long to wait before reading again when nothing was due, unless woken.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// What the one store request in progress answered.
enum StoreDone {
    Read(
        Result<Vec<PendingInbound>, StoreError>,
        hotsite_store::Lease,
    ),
    Recorded(Vec<InboundUpdate>, Result<(), StoreError>),
}

/// What woke the loop.
enum Event {
    Store(StoreDone),
    Delivered(Result<(PendingInbound, bool, u64), tokio::task::JoinError>),
    Wake,
    Shutdown,
}

type StoreFuture<'s> = Pin<Box<dyn Future<Output = StoreDone> + Send + 's>>;

/// Runs until `shutdown`; `wake` is notified when something was stored.
///
/// A pipeline, so that the rate is not one page per commit: pages of [`PAGE`]
/// rows are read, `concurrency` POSTs are in flight, and finished rows are
/// recorded in batches while the next rows are being posted. One store request
/// at a time, reads and records alternating: a read therefore starts after the
/// previous record committed, and every row read but not yet recorded is `held`
/// and skipped by later reads. So a row is offered once in normal operation
/// (SPEC M15: again only after a failed attempt, or after a crash before its
/// record), and marked delivered only after the application's 2xx.
///
/// Rows are claimed under a lease of `owner` (SPEC M17), renewed while held: of
/// gateways sharing a store, one sends each webhook. A row whose lease is lost
/// or about to run out (renewals failing) is not posted from here.
pub async fn run_webhooks<S: Store>(
    store: S,
    config: WebhookConfig,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    owner: String,
    lease: Duration,
    shutdown: CancellationToken,
) {
    let http = match reqwest::Client::builder().timeout(config.timeout).build() {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(%error, "cannot build the webhook HTTP client; webhooks are not delivered");
            return;
        }
    };
    // Parsed once, not on every POST.
    let url = match reqwest::Url::parse(&config.url) {
        Ok(url) => url,
        Err(error) => {
            tracing::error!(%error, url = %config.url, "the webhook URL is not valid; webhooks are not delivered");
            return;
        }
    };
    let config = Arc::new(config);
    let concurrency = config.concurrency.max(1);
    let leases = Arc::new(Leases::new(owner, lease));
    let renewals = {
        let store = store.clone();
        tokio::spawn(run_renewals(
            leases.clone(),
            "webhooks",
            move |lease, ids| {
                let store = store.clone();
                async move { store.renew_inbound(lease, ids).await }
            },
            shutdown.clone(),
        ))
    };
    let _renewals = crate::dispatcher::AbortOnDrop(renewals);
    let store = &store;
    let mut seed = 1u64;
    let mut held: HashSet<i64> = HashSet::new();
    let mut queue: VecDeque<PendingInbound> = VecDeque::new();
    let mut attempts = tokio::task::JoinSet::new();
    let mut finished: Vec<InboundUpdate> = Vec::new();
    let mut request: Option<StoreFuture<'_>> = None;
    let mut last_was_record = true;
    let mut record_failures = 0u64;
    // Nothing more was due at the last read: wait for a wake or the poll interval.
    let mut idle = false;
    let mut poll = Box::pin(tokio::time::sleep(IDLE_POLL));
    let mut stopping = false;
    loop {
        while !stopping && attempts.len() < concurrency {
            let Some(row) = queue.pop_front() else { break };
            if leases.check(row.id, clock::now_ms()) != Hold::Held {
                // Another gateway has it, or may soon: its claim runs out in
                // the store and whoever claims it next posts it.
                Metrics::inc(&metrics.leases_lost_total);
                held.remove(&row.id);
                leases.forget(row.id);
                continue;
            }
            let http = http.clone();
            let config = config.clone();
            let url = url.clone();
            seed += 1;
            attempts.spawn(async move {
                let ok = deliver(&http, &config, url, &row).await;
                (row, ok, seed)
            });
        }
        if request.is_none() {
            let want_read = !stopping && !idle && queue.len() < PAGE / 2 && held.len() < MAX_HELD;
            if want_read && (finished.is_empty() || last_was_record) {
                // Held rows are claimed: the store hands out a page of others.
                last_was_record = false;
                let lease = leases.lease(clock::now_ms());
                request = Some(Box::pin(async move {
                    StoreDone::Read(store.claim_inbound(lease.clone(), PAGE).await, lease)
                }));
            } else if !finished.is_empty() {
                let updates = std::mem::take(&mut finished);
                let pause = record_failures > 0;
                last_was_record = true;
                request = Some(Box::pin(async move {
                    if pause {
                        tokio::time::sleep(IDLE_POLL).await;
                    }
                    let result = store.update_inbound(updates.clone()).await;
                    StoreDone::Recorded(updates, result)
                }));
            }
        }
        if stopping && request.is_none() && attempts.is_empty() {
            return;
        }
        let event = tokio::select! {
            done = async { request.as_mut().expect("guarded").await }, if request.is_some() => {
                Event::Store(done)
            }
            Some(joined) = attempts.join_next(), if !attempts.is_empty() => Event::Delivered(joined),
            () = wake.notified(), if idle => Event::Wake,
            () = &mut poll, if idle => Event::Wake,
            () = shutdown.cancelled(), if !stopping => Event::Shutdown,
        };
        match event {
            Event::Store(done) => {
                request = None;
                match done {
                    StoreDone::Read(Ok(due), lease) => {
                        idle = due.len() < PAGE;
                        if idle {
                            poll.set(tokio::time::sleep(IDLE_POLL));
                        }
                        leases.hold(due.iter().map(|row| row.id), &lease);
                        for row in due {
                            if held.insert(row.id) {
                                queue.push_back(row);
                            }
                        }
                    }
                    StoreDone::Read(Err(error), _) => {
                        tracing::error!(%error, "cannot read the inbox");
                        idle = true;
                        poll.set(tokio::time::sleep(IDLE_POLL));
                    }
                    StoreDone::Recorded(updates, Ok(())) => {
                        record_failures = 0;
                        for update in &updates {
                            let (InboundUpdate::Delivered { id, .. }
                            | InboundUpdate::Retry { id, .. }) = update;
                            held.remove(id);
                            leases.forget(*id);
                        }
                    }
                    // Retried until the store takes them (a full disk): what the
                    // application has is not offered to it again.
                    StoreDone::Recorded(mut updates, Err(error)) => {
                        if record_failures % 60 == 0 {
                            tracing::error!(%error, "cannot record webhook results; retrying until the store takes them");
                        }
                        record_failures += 1;
                        if stopping {
                            return;
                        }
                        updates.append(&mut finished);
                        finished = updates;
                    }
                }
            }
            Event::Delivered(Ok((row, ok, seed))) => {
                let now = clock::now_ms();
                if ok {
                    Metrics::inc(&metrics.webhooks_delivered_total);
                    if row.kind == InboundKind::Receipt && row.message_id.is_none() {
                        Metrics::inc(&metrics.receipts_uncorrelated_delivered_total);
                    }
                    finished.push(InboundUpdate::Delivered {
                        id: row.id,
                        at_ms: now,
                    });
                } else {
                    Metrics::inc(&metrics.webhooks_failed_attempts_total);
                    let delay = delay_for_attempt(config.backoff, row.attempts, seed);
                    finished.push(InboundUpdate::Retry {
                        id: row.id,
                        next_attempt_at_ms: now + delay.as_millis() as i64,
                    });
                }
            }
            Event::Delivered(Err(error)) => {
                // Its row stays held: offered again after a restart.
                tracing::error!(%error, "a webhook delivery task failed");
            }
            Event::Wake => idle = false,
            Event::Shutdown => {
                // Deliveries under way finish and are recorded; nothing new starts.
                stopping = true;
                queue.clear();
            }
        }
    }
}

/// The backoff delay before attempt `attempts + 1` (full jitter).
fn delay_for_attempt(config: BackoffConfig, attempts: u32, seed: u64) -> Duration {
    let mut backoff = Backoff::new(config, seed);
    for _ in 0..attempts.min(32) {
        backoff.next_delay();
    }
    backoff.next_delay()
}

async fn deliver(
    http: &reqwest::Client,
    config: &WebhookConfig,
    url: reqwest::Url,
    row: &PendingInbound,
) -> bool {
    let Ok(body) = serde_json::to_vec(&WebhookBody::new(row)) else {
        return false;
    };
    let signature = sign(config.secret.expose().as_bytes(), &body);
    let sent = http
        .post(url)
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => true,
        Ok(response) => {
            tracing::debug!(status = %response.status(), id = row.id, "webhook refused");
            false
        }
        Err(error) => {
            tracing::debug!(%error, id = row.id, "webhook failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC M15, issue 11: the signing secret never shows in a logged config.
    #[test]
    fn debug_never_shows_the_secret() {
        let config = WebhookConfig {
            url: "http://app.example/hotsite".into(),
            secret: "webhook-secret-0123456789".into(),
            timeout: Duration::from_secs(5),
            backoff: BackoffConfig {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(300),
                multiplier: 2,
            },
            concurrency: 16,
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("webhook-secret"), "{shown}");
        assert!(shown.contains("app.example"), "{shown}");
    }
    use hotsite_store::MessageId;

    fn row(
        kind: InboundKind,
        message_id: Option<MessageId>,
        received_at_ms: i64,
    ) -> PendingInbound {
        PendingInbound {
            id: 1,
            kind,
            provider_message_id: Some("00ab".into()),
            message_state: Some(2),
            message_id,
            source: "4917".into(),
            destination: "hotsite".into(),
            body: b"id:1 stat:DELIVRD".to_vec(),
            site: "a".into(),
            smsc: "a1".into(),
            attempts: 0,
            received_at_ms,
        }
    }

    /// SPEC M13: a receipt says whether it found its message; an MO says nothing.
    #[test]
    fn receipts_say_whether_they_are_correlated() {
        let body = |row: &PendingInbound| serde_json::to_value(WebhookBody::new(row)).unwrap();
        let uncorrelated = body(&row(InboundKind::Receipt, None, 1_000));
        assert_eq!(uncorrelated["correlated"], false);
        assert!(uncorrelated.get("message_id").is_none());
        let correlated = body(&row(InboundKind::Receipt, Some(MessageId(4)), 1_000));
        assert_eq!(correlated["correlated"], true);
        assert!(body(&row(InboundKind::Mo, None, 1_000))
            .get("correlated")
            .is_none());
    }

    /// SPEC M15: the body names what it is and carries the raw body in base64.
    #[test]
    fn webhook_body_shape() {
        let row = row(InboundKind::Receipt, Some(MessageId(4)), 1_000);
        let json = serde_json::to_value(WebhookBody::new(&row)).unwrap();
        assert_eq!(json["type"], "receipt");
        assert_eq!(json["message_id"], 4);
        assert_eq!(json["provider_message_id"], "00ab");
        assert_eq!(json["state"], 2);
        assert_eq!(json["text"], "id:1 stat:DELIVRD");
        assert_eq!(json["body_base64"], STANDARD.encode(b"id:1 stat:DELIVRD"));
    }
}
