//! MO messages and delivery receipts from every bind of every site into the
//! durable inbox (SPEC M1, M6, M13), and bind events onto the host's event
//! stream.
//!
//! A `deliver_sm` is answered `ESME_ROK` only after it is stored; if the store
//! refuses it, the answer is a temporary error and the SMSC delivers it again.
//! Repeats (the same receipt or MO through several binds or sites) are stored
//! once, by dedupe key (SPEC M8).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hotsite_core::{Event, EventKind, HealthState, Target};
use hotsite_host::Events;
use hotsite_smpp::driver::ClientEvent;
use hotsite_smpp::pdu::{CommandStatus, ShortMessage};
use hotsite_store::{InboundInserted, InboundKind, NewInbound, ReceiptIdFormat, Store};
use tokio::sync::{mpsc, Notify};

use crate::clock;
use crate::metrics::Metrics;

/// How the inbox reads what SMSCs deliver.
#[derive(Debug, Clone)]
pub struct InboxConfig {
    /// How each SMSC instance writes a receipt's id relative to its submit
    /// responses (SPEC M13); instances not named write it the same way.
    pub receipt_id_formats: HashMap<Target, ReceiptIdFormat>,
    /// An MO (which SMPP gives no id) received again within this window of its
    /// first copy is a repeat (SPEC M8).
    pub mo_dedupe_window: Duration,
}

impl Default for InboxConfig {
    fn default() -> Self {
        InboxConfig {
            receipt_id_formats: HashMap::new(),
            mo_dedupe_window: Duration::from_secs(600),
        }
    }
}

impl InboxConfig {
    fn id_format(&self, target: &Target) -> ReceiptIdFormat {
        self.receipt_id_formats
            .get(target)
            .copied()
            .unwrap_or_default()
    }

    fn mo_window_ms(&self) -> i64 {
        i64::try_from(self.mo_dedupe_window.as_millis()).unwrap_or(i64::MAX)
    }
}

/// The most events handled before their deliveries are stored together.
const MAX_EVENTS_PER_BATCH: usize = 1024;

/// Consumes the SMPP client's events until the client is gone. Deliveries that
/// arrive together are stored in one request (one commit), then acknowledged.
pub async fn run_inbox<S: Store>(
    store: S,
    config: InboxConfig,
    mut events: mpsc::Receiver<ClientEvent>,
    metrics: Arc<Metrics>,
    events_out: Events,
    wake_webhooks: Arc<Notify>,
) {
    while let Some(first) = events.recv().await {
        let now = clock::now_ms();
        let mut items = Vec::new();
        let mut acks = Vec::new();
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(event) = next.take() {
            match event {
                ClientEvent::Pool(event) => record_pool_event(event, &metrics, &events_out),
                ClientEvent::AnsweredLate {
                    target,
                    status,
                    message_id,
                } => {
                    tracing::info!(%target, %status, %message_id, "a submit reported ambiguous was answered late");
                }
                ClientEvent::Deliver {
                    target,
                    message,
                    ack,
                } => {
                    Metrics::inc(&metrics.inbound_received_total);
                    items.push(to_inbound(
                        &message,
                        target.site.as_str(),
                        &target.name,
                        now,
                        config.id_format(&target),
                        config.mo_window_ms(),
                    ));
                    acks.push(ack);
                }
            }
            taken += 1;
            if taken < MAX_EVENTS_PER_BATCH {
                next = events.try_recv().ok();
            }
        }
        if items.is_empty() {
            continue;
        }
        // Stored concurrently with the next events: the store groups requests too.
        let store = store.clone();
        let metrics = metrics.clone();
        let wake = wake_webhooks.clone();
        tokio::spawn(async move {
            match store.insert_inbound(items).await {
                Ok(inserted) => {
                    let repeats = inserted
                        .iter()
                        .filter(|i| matches!(i, InboundInserted::Duplicate(_)))
                        .count();
                    Metrics::add(&metrics.inbound_duplicate_total, repeats as u64);
                    for ack in acks {
                        ack.accept();
                    }
                    wake.notify_one();
                }
                Err(error) => {
                    tracing::error!(%error, "cannot store MO or receipts; the SMSC will deliver them again");
                    for ack in acks {
                        ack.respond(CommandStatus::ESME_RX_T_APPN);
                    }
                }
            }
        });
    }
}

/// Counts a bind going out of service and publishes every pool decision on
/// the host's event stream (DESIGN.md invariant 4), which logs it.
fn record_pool_event(event: Event, metrics: &Metrics, events_out: &Events) {
    if let EventKind::Health {
        to: HealthState::Down,
        ..
    } = event.kind
    {
        Metrics::inc(&metrics.bind_failovers_total);
    }
    events_out.publish(event);
}

/// The inbox row for a `deliver_sm`, with the key its repeats share.
pub fn to_inbound(
    message: &ShortMessage,
    site: &str,
    smsc: &str,
    now_ms: i64,
    id_format: ReceiptIdFormat,
    mo_window_ms: i64,
) -> NewInbound {
    let body = message.body().to_vec();
    let (kind, dedupe_key, provider_message_id, message_state, window) = if message.is_receipt() {
        let provider_message_id = message.tlvs.receipted_message_id().map(str::to_owned);
        let state = message.tlvs.message_state().map(|s| s.as_u8());
        // SPEC M13: matched by receipted_message_id and message_state, never by
        // the carrier's id inside the text. One MT may have several receipts
        // (enroute, delivered): the state is part of the key.
        // The id as the provider means it (SPEC M13): the same receipt written in
        // another case or padding through another site is a repeat.
        let key = match &provider_message_id {
            Some(id) => format!(
                "dr:{}:{}",
                hotsite_store::provider_id::normalize(id),
                state.unwrap_or(0)
            ),
            None => format!("dr-text:{:016x}", fnv1a(&body)),
        };
        (InboundKind::Receipt, key, provider_message_id, state, None)
    } else {
        // SMPP 3.4 gives an MO no id. A resend of the same MO (same sender,
        // recipient, body and segment) within the window of its first copy is
        // taken as a repeat, wherever the clock stands (the store slides the
        // window); the same text sent again later is a new message.
        let sar = message
            .tlvs
            .sar()
            .map_or(String::new(), |(r, t, s)| format!(":{r}/{t}/{s}"));
        let mut identity = Vec::new();
        identity.extend_from_slice(message.source.addr.as_bytes());
        identity.push(0);
        identity.extend_from_slice(message.destination.addr.as_bytes());
        identity.push(0);
        identity.extend_from_slice(&body);
        let key = format!("mo:{:016x}{sar}", fnv1a(&identity));
        (InboundKind::Mo, key, None, None, Some(mo_window_ms))
    };
    NewInbound {
        kind,
        dedupe_key,
        provider_message_id,
        message_state,
        source: message.source.addr.clone(),
        destination: message.destination.addr.clone(),
        body,
        site: site.to_owned(),
        smsc: smsc.to_owned(),
        received_at_ms: now_ms,
        id_format,
        dedupe_window_ms: window,
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use hotsite_smpp::pdu::{MessageState, Tlvs};

    fn receipt(id: &str, state: MessageState, text: &str) -> ShortMessage {
        let mut tlvs = Tlvs::default();
        tlvs.set_receipted_message_id(id);
        tlvs.set_message_state(state);
        ShortMessage {
            esm_class: ShortMessage::ESM_CLASS_RECEIPT,
            short_message: Bytes::copy_from_slice(text.as_bytes()),
            tlvs,
            ..Default::default()
        }
    }

    /// SPEC M13: receipts are keyed by receipted_message_id and state, not by text.
    #[test]
    fn receipt_key_uses_tlvs_not_text() {
        let a = to_inbound(
            &receipt("00ab", MessageState::Delivered, "id:999 stat:DELIVRD"),
            "a",
            "a1",
            0,
            ReceiptIdFormat::Same,
            600_000,
        );
        let b = to_inbound(
            &receipt(
                "00ab",
                MessageState::Delivered,
                "id:123 stat:DELIVRD other text",
            ),
            "b",
            "b2",
            5,
            ReceiptIdFormat::Same,
            600_000,
        );
        let c = to_inbound(
            &receipt("00ab", MessageState::Enroute, "id:999"),
            "a",
            "a1",
            0,
            ReceiptIdFormat::Same,
            600_000,
        );
        assert_eq!(a.kind, InboundKind::Receipt);
        assert_eq!(a.provider_message_id.as_deref(), Some("00ab"));
        assert_eq!(a.message_state, Some(2));
        assert_eq!(
            a.dedupe_key, b.dedupe_key,
            "the same receipt through another site is a repeat"
        );
        assert_ne!(
            a.dedupe_key, c.dedupe_key,
            "another state is another receipt"
        );
    }

    /// SPEC M8: the same MO through two binds is one MO; another text is another.
    #[test]
    fn mo_key_identifies_resends() {
        let mo = |text: &str| ShortMessage {
            short_message: Bytes::copy_from_slice(text.as_bytes()),
            ..Default::default()
        };
        let inbound = |text: &str, site: &str, at_ms: i64| {
            to_inbound(&mo(text), site, "x1", at_ms, ReceiptIdFormat::Same, 600_000)
        };
        let a = inbound("yes", "a", 599_000);
        // Across the boundary of the old fixed ten-minute buckets.
        let b = inbound("yes", "b", 601_000);
        let c = inbound("no", "a", 599_000);
        assert_eq!(a.kind, InboundKind::Mo);
        assert_eq!(a.dedupe_key, b.dedupe_key);
        assert_ne!(a.dedupe_key, c.dedupe_key);
        // The store decides "within the window" from the first copy's time.
        assert_eq!(a.dedupe_window_ms, Some(600_000));
    }
}
