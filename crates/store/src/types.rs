//! The values that cross the [`Store`](crate::Store) boundary. No I/O here.

use std::fmt;
use std::str::FromStr;

use crate::provider_id::ReceiptIdFormat;

/// A stored message's id: ascending in acceptance order, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub i64);

impl MessageId {
    /// The reference of a message stored before references were allocated per
    /// destination (schema version 2 and older): `id & 0xFFFF`.
    pub fn legacy_reference(self) -> u16 {
        (self.0 & 0xFFFF) as u16
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A message accepted from the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Idempotency key: unique; the same key is accepted once (SPEC M8).
    pub key: String,
    /// Sender address.
    pub source: String,
    /// Recipient address.
    pub destination: String,
    /// Encoded body.
    pub body: Vec<u8>,
    /// SMPP `data_coding` of `body`.
    pub data_coding: u8,
    /// The route (fallback chain) it takes; empty for the default route.
    pub route: String,
    /// The recipient's e-mail address, for an e-mail hop of its route (SPEC M11).
    pub email: Option<String>,
    /// When the application handed it over.
    pub received_at_ms: i64,
}

/// What [`Store::insert_messages`](crate::Store::insert_messages) did with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored now, with this id.
    Created(MessageId),
    /// The same key was already stored (maybe earlier in the same batch): nothing
    /// changed, this is its id (SPEC M8).
    Existing(MessageId),
}

impl Inserted {
    /// The message's id, new or existing.
    pub fn id(self) -> MessageId {
        match self {
            Inserted::Created(id) | Inserted::Existing(id) => id,
        }
    }
}

/// Where a message is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageState {
    /// Waiting to be submitted (also while in flight without a response).
    Queued,
    /// A provider answered the submit; waiting for a final receipt.
    Submitted,
    /// Final: a receipt said delivered (SMPP message_state 2).
    Delivered,
    /// Final: a receipt said undeliverable (5).
    Undeliverable,
    /// Final: a receipt said expired (3).
    Expired,
    /// Final: a receipt said rejected (8).
    Rejected,
    /// Final: failed permanently in the gateway (provider rejection, policy).
    Failed,
}

impl MessageState {
    /// Every state, in a fixed order.
    pub const ALL: [MessageState; 7] = [
        MessageState::Queued,
        MessageState::Submitted,
        MessageState::Delivered,
        MessageState::Undeliverable,
        MessageState::Expired,
        MessageState::Rejected,
        MessageState::Failed,
    ];

    /// The text stored in the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Queued => "Queued",
            MessageState::Submitted => "Submitted",
            MessageState::Delivered => "Delivered",
            MessageState::Undeliverable => "Undeliverable",
            MessageState::Expired => "Expired",
            MessageState::Rejected => "Rejected",
            MessageState::Failed => "Failed",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn parse(text: &str) -> Option<MessageState> {
        MessageState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
    }

    /// Final states never change again.
    pub fn is_final(self) -> bool {
        !matches!(self, MessageState::Queued | MessageState::Submitted)
    }

    /// The final state an SMPP receipt's `message_state` means, if any: 2 delivered,
    /// 3 expired, 5 undeliverable, 8 rejected. Other values (enroute, accepted,
    /// unknown, deleted…) do not end the message.
    pub fn from_receipt_state(message_state: u8) -> Option<MessageState> {
        match message_state {
            2 => Some(MessageState::Delivered),
            3 => Some(MessageState::Expired),
            5 => Some(MessageState::Undeliverable),
            8 => Some(MessageState::Rejected),
            _ => None,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageState {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        MessageState::parse(text).ok_or_else(|| UnknownName(text.to_owned()))
    }
}

/// A state or kind name that is not one this crate knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown name {0:?}")]
pub struct UnknownName(pub String);

/// A message waiting to be submitted, as the dispatcher needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// Its id (the paging cursor).
    pub id: MessageId,
    /// Sender address.
    pub source: String,
    /// Recipient address.
    pub destination: String,
    /// Encoded body.
    pub body: Vec<u8>,
    /// SMPP `data_coding`.
    pub data_coding: u8,
    /// The `user_message_reference` sent on every submit (SPEC M8, M16): allocated
    /// per destination when the message was accepted, replaced only after the
    /// provider took it for another message's repeat. `None`: send without one
    /// (every reference of the destination is taken, see the crate docs).
    pub reference: Option<u16>,
    /// How many times it was requeued on its current hop.
    pub attempts: u32,
    /// The route (fallback chain) it takes; empty for the default route.
    pub route: String,
    /// Which hop of the route it is on (0 = the first provider).
    pub hop: u32,
    /// The recipient's e-mail address, for an e-mail hop.
    pub email: Option<String>,
}

/// A change to a stored message, applied by [`Store::update`](crate::Store::update).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// The provider answered the submit. Only from `Queued`: sets `Submitted`, records
    /// the provider id (which correlates receipts), site and SMSC, and applies any
    /// receipt that arrived before. On another state: a `submit_ignored` event only.
    Submitted {
        /// The message.
        id: MessageId,
        /// The provider's id for it (`message_id` of `submit_sm_resp`).
        provider_message_id: String,
        /// The site that answered.
        site: String,
        /// The SMSC / endpoint that answered.
        smsc: String,
        /// When the response arrived.
        at_ms: i64,
    },
    /// The submit failed in a way worth retrying, or its outcome is unknown: the
    /// message stays as it is (normally `Queued`), `attempts` += 1, and an event of
    /// `kind` records the reason.
    Requeued {
        /// The message.
        id: MessageId,
        /// The event's kind: `requeued`, or what went wrong (`transport_failure`,
        /// `timeout`, `throttled`, … SPEC M10).
        kind: String,
        /// Why.
        reason: String,
        /// When.
        at_ms: i64,
    },
    /// Permanent failure: state `Failed` unless already final; a `failed` event.
    Failed {
        /// The message.
        id: MessageId,
        /// Why.
        reason: String,
        /// When.
        at_ms: i64,
    },
    /// The message's hop spent its budget: it moves to hop `hop` of its route with
    /// `attempts` back to 0, and a `fallback` event records why (SPEC M11). Only on
    /// a `Queued` message; on another state, a `fallback_ignored` event only.
    Fallback {
        /// The message.
        id: MessageId,
        /// The hop it moves to.
        hop: u32,
        /// Why, and from where to where.
        reason: String,
        /// When.
        at_ms: i64,
    },
    /// Any other history line (failover, throttled, …). Changes nothing else.
    Event {
        /// The message.
        id: MessageId,
        /// Short machine-readable kind, e.g. `failover`.
        kind: String,
        /// Human-readable detail.
        detail: String,
        /// When.
        at_ms: i64,
    },
}

impl Update {
    /// The message this update is about.
    pub fn id(&self) -> MessageId {
        match self {
            Update::Submitted { id, .. }
            | Update::Requeued { id, .. }
            | Update::Fallback { id, .. }
            | Update::Failed { id, .. }
            | Update::Event { id, .. } => *id,
        }
    }
}

/// A message whose submit response named another message's provider id: the
/// provider took it for a repeat of that message and dropped it (SPEC M16). It
/// stays `Queued` and must be sent again with `reference`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resubmit {
    /// The message.
    pub id: MessageId,
    /// Its new `user_message_reference`; `None`: send it without one.
    pub reference: Option<u16>,
}

/// One line of a message's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// When it happened.
    pub at_ms: i64,
    /// `accepted`, `submitted`, `submit_ignored`, `requeued`, `failed`, `receipt`, or
    /// a kind given in [`Update::Event`].
    pub kind: String,
    /// Human-readable detail.
    pub detail: String,
}

/// A stored message with its complete history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageView {
    /// Its id.
    pub id: MessageId,
    /// Its idempotency key.
    pub key: String,
    /// Sender address.
    pub source: String,
    /// Recipient address.
    pub destination: String,
    /// Encoded body.
    pub body: Vec<u8>,
    /// SMPP `data_coding`.
    pub data_coding: u8,
    /// Current state.
    pub state: MessageState,
    /// How many times it was requeued on its current hop.
    pub attempts: u32,
    /// The route it takes; empty for the default route.
    pub route: String,
    /// The hop of the route it is on.
    pub hop: u32,
    /// The recipient's e-mail address, if given.
    pub email: Option<String>,
    /// The provider's id, once submitted.
    pub provider_message_id: Option<String>,
    /// The site that accepted the submit.
    pub site: Option<String>,
    /// The SMSC / endpoint that accepted the submit.
    pub smsc: Option<String>,
    /// When it was accepted.
    pub created_at_ms: i64,
    /// When it last changed.
    pub updated_at_ms: i64,
    /// Complete history, in the order it was recorded (see the crate docs).
    pub events: Vec<EventRecord>,
}

/// What kind of inbound item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InboundKind {
    /// A mobile-originated message.
    Mo,
    /// A delivery receipt.
    Receipt,
}

impl InboundKind {
    /// The text stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            InboundKind::Mo => "Mo",
            InboundKind::Receipt => "Receipt",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn parse(text: &str) -> Option<InboundKind> {
        match text {
            "Mo" => Some(InboundKind::Mo),
            "Receipt" => Some(InboundKind::Receipt),
            _ => None,
        }
    }
}

/// An MO or receipt as received from any site and bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInbound {
    /// MO or receipt.
    pub kind: InboundKind,
    /// Unique per item: the same key received again is stored once (SPEC M8).
    pub dedupe_key: String,
    /// For receipts: the `receipted_message_id` (SPEC M13), which correlates it.
    pub provider_message_id: Option<String>,
    /// For receipts: the SMPP `message_state`.
    pub message_state: Option<u8>,
    /// Sender address.
    pub source: String,
    /// Recipient address.
    pub destination: String,
    /// Body (for receipts, the receipt text).
    pub body: Vec<u8>,
    /// The site it came from.
    pub site: String,
    /// The SMSC / endpoint it came from.
    pub smsc: String,
    /// When it arrived.
    pub received_at_ms: i64,
    /// For receipts: how the SMSC writes `provider_message_id` relative to the
    /// submit response's id (SPEC M13).
    pub id_format: ReceiptIdFormat,
    /// `None`: `dedupe_key` is an exact identity, a repeat years later is still
    /// a repeat (receipts, MO with a provider id). `Some(w)`: the key identifies
    /// content without an id (an SMPP MO); a repeat is one only within `w` ms of
    /// the first copy (a sliding window, SPEC M8).
    pub dedupe_window_ms: Option<i64>,
}

/// What [`Store::insert_inbound`](crate::Store::insert_inbound) did with one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundInserted {
    /// Stored now, with this id.
    Created(i64),
    /// The same `dedupe_key` was already stored: nothing changed, this is its id.
    Duplicate(i64),
}

impl InboundInserted {
    /// The item's id, new or existing.
    pub fn id(self) -> i64 {
        match self {
            InboundInserted::Created(id) | InboundInserted::Duplicate(id) => id,
        }
    }
}

/// An inbound item not yet delivered to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingInbound {
    /// Its id.
    pub id: i64,
    /// MO or receipt.
    pub kind: InboundKind,
    /// For receipts: the `receipted_message_id`.
    pub provider_message_id: Option<String>,
    /// For receipts: the SMPP `message_state`.
    pub message_state: Option<u8>,
    /// For receipts: the message it belongs to, once the provider id is known.
    pub message_id: Option<MessageId>,
    /// Sender address.
    pub source: String,
    /// Recipient address.
    pub destination: String,
    /// Body.
    pub body: Vec<u8>,
    /// The site it came from.
    pub site: String,
    /// The SMSC / endpoint it came from.
    pub smsc: String,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// When it arrived.
    pub received_at_ms: i64,
}

/// A change to an inbound item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundUpdate {
    /// The application has it: never offered again.
    Delivered {
        /// The item.
        id: i64,
        /// When.
        at_ms: i64,
    },
    /// Delivery failed: `attempts` += 1, offered again from `next_attempt_at_ms`.
    Retry {
        /// The item.
        id: i64,
        /// When to try again.
        next_attempt_at_ms: i64,
    },
}

/// A gateway's hold on shared work (SPEC M17): who holds it, and for how long from
/// now. Work claimed under a lease is offered to no one else until the lease runs
/// out; the holder renews it while it works and gives it up when done. Stores
/// shared by several gateways (PostgreSQL) keep claims in the database; a store
/// only one process can open (SQLite, locked) keeps them in memory, since a
/// restart ends every claim of the process anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The holder: one gateway process (its site, host, pid and start time), so a
    /// restarted gateway never mistakes the claims of its predecessor for its own.
    pub owner: String,
    /// Now, by the holder's clock (ms since the Unix epoch).
    pub now_ms: i64,
    /// The claim runs out at `now_ms + duration_ms` unless renewed.
    pub duration_ms: i64,
}

impl Lease {
    /// When a claim taken or renewed under this lease runs out.
    pub fn until_ms(&self) -> i64 {
        self.now_ms.saturating_add(self.duration_ms.max(0))
    }
}

/// Counts, for metrics and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Messages `Queued`.
    pub queued: u64,
    /// When the first-accepted message still `Queued` was accepted (its
    /// `created_at_ms`, ms since the epoch); `None` with an empty queue. For
    /// the queue's age (`hotsite_queue_oldest_age_seconds`): a message requeued
    /// after a submit keeps its acceptance time. Read through the
    /// `messages_queued` partial index (its first entry: no scan), on both
    /// backends; ids ascend in acceptance order, so the first queued id is the
    /// longest-waiting message.
    pub oldest_queued_at_ms: Option<i64>,
    /// Messages `Submitted`, waiting for a final receipt.
    pub submitted: u64,
    /// Messages in a final state (including `Failed`).
    pub final_states: u64,
    /// Messages `Failed`.
    pub failed: u64,
    /// Inbound items not yet delivered to the application.
    pub inbound_pending: u64,
    /// Inbound items stored.
    pub inbound_total: u64,
    /// Receipts stored that match no message yet (SPEC M13): kept, and applied if
    /// their message's submit response is recorded later.
    pub receipts_uncorrelated: u64,
    /// Write transactions committed since this handle was opened: with group commit,
    /// far fewer than write requests.
    pub commits: u64,
    /// The last write failed because the disk (or the size limit) is full, and no
    /// write adding rows (messages, MO, receipts) has committed since: new work is
    /// refused with [`StoreError::Full`]
    /// (DESIGN.md invariant 1). Health and status report it as degraded.
    ///
    /// [`StoreError::Full`]: crate::StoreError::Full
    pub storage_full: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_text_round_trips_and_finality() {
        for state in MessageState::ALL {
            assert_eq!(MessageState::parse(state.as_str()), Some(state));
            assert_eq!(state.as_str().parse::<MessageState>(), Ok(state));
        }
        assert_eq!(MessageState::parse("queued"), None);
        assert!("Sent".parse::<MessageState>().is_err());
        let finals: Vec<_> = MessageState::ALL
            .into_iter()
            .filter(|state| state.is_final())
            .collect();
        assert_eq!(
            finals,
            [
                MessageState::Delivered,
                MessageState::Undeliverable,
                MessageState::Expired,
                MessageState::Rejected,
                MessageState::Failed
            ]
        );
    }

    /// SPEC M13: the SMPP message_state values that end a message.
    #[test]
    fn receipt_states() {
        let mapped: Vec<_> = (0..=9)
            .map(|value| (value, MessageState::from_receipt_state(value)))
            .filter_map(|(value, state)| state.map(|state| (value, state)))
            .collect();
        assert_eq!(
            mapped,
            [
                (2, MessageState::Delivered),
                (3, MessageState::Expired),
                (5, MessageState::Undeliverable),
                (8, MessageState::Rejected)
            ]
        );
    }

    #[test]
    fn legacy_reference_is_the_low_16_bits_of_the_id() {
        assert_eq!(MessageId(1).legacy_reference(), 1);
        assert_eq!(MessageId(0x1_0005).legacy_reference(), 5);
        assert_eq!(MessageId(0xFFFF).legacy_reference(), 0xFFFF);
        assert_eq!(MessageId(42).to_string(), "42");
        assert!(MessageId(1) < MessageId(2));
    }

    #[test]
    fn inbound_kind_text_round_trips() {
        for kind in [InboundKind::Mo, InboundKind::Receipt] {
            assert_eq!(InboundKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(InboundKind::parse("DR"), None);
    }
}
