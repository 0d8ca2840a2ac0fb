//! Delivers stored MO messages and receipts to the customer's application as
//! signed webhook POSTs (SPEC M15), retried with backoff until a 2xx. Each
//! inbox row is delivered until acknowledged; repeats never reach the inbox
//! (SPEC M8), so the application sees each MO and receipt once — unless it
//! failed to answer a delivery in time, in which case the same `id` comes again
//! and the application dedupes on it.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hotsite_core::{Backoff, BackoffConfig};
use hotsite_store::{InboundKind, InboundUpdate, PendingInbound, Store};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::metrics::Metrics;
use crate::signing::{sign, SIGNATURE_HEADER};

/// Where and how to deliver.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The application's URL.
    pub url: String,
    /// HMAC-SHA256 secret for the signature header (SPEC M15).
    pub secret: Vec<u8>,
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

/// Runs until `shutdown`; `wake` is notified when something was stored.
pub async fn run_webhooks<S: Store>(
    store: S,
    config: WebhookConfig,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let http = match reqwest::Client::builder().timeout(config.timeout).build() {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(%error, "cannot build the webhook HTTP client; webhooks are not delivered");
            return;
        }
    };
    let mut seed = 1u64;
    loop {
        let due = match store
            .pending_inbound(clock::now_ms(), config.concurrency)
            .await
        {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, "cannot read the inbox");
                Vec::new()
            }
        };
        if due.is_empty() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            continue;
        }
        let mut attempts = tokio::task::JoinSet::new();
        let mut updates = Vec::new();
        // A receipt that overtook its submit response is offered only after the
        // store's correlation wait, or as soon as its message is known (SPEC M13).
        for row in due {
            let http = http.clone();
            let config = config.clone();
            seed += 1;
            attempts.spawn(async move {
                let ok = deliver(&http, &config, &row).await;
                (row, ok, seed)
            });
        }
        while let Some(Ok((row, ok, seed))) = attempts.join_next().await {
            let now = clock::now_ms();
            if ok {
                Metrics::inc(&metrics.webhooks_delivered_total);
                if row.kind == InboundKind::Receipt && row.message_id.is_none() {
                    Metrics::inc(&metrics.receipts_uncorrelated_delivered_total);
                }
                updates.push(InboundUpdate::Delivered {
                    id: row.id,
                    at_ms: now,
                });
            } else {
                Metrics::inc(&metrics.webhooks_failed_attempts_total);
                let delay = delay_for_attempt(config.backoff, row.attempts, seed);
                updates.push(InboundUpdate::Retry {
                    id: row.id,
                    next_attempt_at_ms: now + delay.as_millis() as i64,
                });
            }
        }
        // Recorded before the next round, retrying while the store cannot take it
        // (a full disk): what the application has is not offered to it again.
        let mut failures = 0u64;
        while let Err(error) = store.update_inbound(updates.clone()).await {
            if failures % 60 == 0 {
                tracing::error!(%error, "cannot record webhook results; retrying until the store takes them");
            }
            failures += 1;
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        if shutdown.is_cancelled() {
            return;
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

async fn deliver(http: &reqwest::Client, config: &WebhookConfig, row: &PendingInbound) -> bool {
    let Ok(body) = serde_json::to_vec(&WebhookBody::new(row)) else {
        return false;
    };
    let signature = sign(&config.secret, &body);
    let sent = http
        .post(&config.url)
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
