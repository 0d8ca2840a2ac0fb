//! The durable store of the messaging gateway: accepted messages, their history, and
//! inbound MO / delivery receipts.
//!
//! Only this crate writes queued work (ARCHITECTURE.md). Read this header before the
//! code: it is the contract, and the on-disk format.
//!
//! # Contract
//!
//! 1. **Acknowledged means on stable storage (SPEC M9).** Every write method
//!    ([`Store::insert_messages`], [`Store::update`], [`Store::insert_inbound`],
//!    [`Store::update_inbound`]) returns `Ok` only after the transaction holding its
//!    request has committed. The SQLite backend runs in WAL mode with
//!    `PRAGMA synchronous=FULL`, so a commit has fsynced the WAL: a crash, a `kill -9`
//!    or a power cut after `Ok` loses nothing. An `Err` means the request changed
//!    nothing (each request is applied all-or-nothing).
//! 2. **Group commit.** One writer thread owns the only write connection. It takes
//!    every write request waiting in its channel (up to [`SqliteOptions::max_batch`])
//!    into ONE transaction, commits once, then answers each request. Durability costs
//!    one fsync per batch, not per message: while the writer fsyncs, the next batch
//!    queues up. If a batch fails, it is rolled back and its requests are retried
//!    one transaction each, so one bad request never fails its neighbours.
//! 3. **Readers never wait for the writer.** Reads run on separate read connections
//!    (WAL lets them read the last committed state during a write), on their own
//!    threads. A read issued after a write returned `Ok` sees that write.
//! 4. **Exactly-once acceptance (SPEC M8).** A message's idempotency `key` and an
//!    inbound item's `dedupe_key` are unique constraints: the same key inserted again,
//!    in the same batch or years later, answers [`Inserted::Existing`] /
//!    [`InboundInserted::Duplicate`] with the first id and changes nothing.
//! 5. **Receipts (SPEC M13, M1).** Every distinct receipt is stored and recorded as a
//!    `receipt` event of its message; the first one carrying a final `message_state`
//!    (2 delivered, 3 expired, 5 undeliverable, 8 rejected) sets the message's final
//!    state, once; later ones never overwrite it. A receipt is matched to its message
//!    by `provider_message_id` (the SMPP `receipted_message_id`), whichever site or
//!    bind it came from, compared as the provider means it: normalized (case,
//!    blanks, leading zeros) and read per the SMSC's [`ReceiptIdFormat`] (decimal
//!    for hex, hex for decimal, or `auto`), see [`provider_id`]. A receipt that
//!    matches no message is kept uncorrelated, counted
//!    ([`StoreStats::receipts_uncorrelated`]), found under each of its keys and
//!    applied, in arrival order, by the [`Update::Submitted`] that brings its
//!    provider id; it is offered to the application only then, or after
//!    [`SqliteOptions::receipt_correlation_wait_ms`] without a message.
//! 6. **A full disk refuses new work; it never drops accepted work (DESIGN.md,
//!    invariant 1).** `SQLITE_FULL` (and an I/O error caused by `ENOSPC`) surfaces as
//!    [`StoreError::Full`]; the failed request is rolled back, everything committed
//!    before stays readable, and writes work again once space is freed.
//!    [`StoreStats::storage_full`] says so from the failure to the next commit that
//!    adds rows.
//! 7. **Time is an input.** The store never reads the clock: every write carries its
//!    wall-clock time as `*_ms: i64` (milliseconds since the Unix epoch).
//! 8. **Bounded memory.** Nothing is cached per message. The dispatcher pages through
//!    the queue with [`Store::queued_after`] and a cursor, so a backlog of millions
//!    never sits in RAM. Counters for [`Store::stats`] are kept in memory, counted
//!    once at open and then moved by each committed transaction.
//! 9. **Cancellation.** Dropping a write future does not cancel the write: it may
//!    still commit. The caller learns the outcome by repeating the request with the
//!    same key (which is exactly what idempotency keys are for).
//! 10. **References (SPEC M16).** Each message gets its `user_message_reference`
//!     when it is accepted: the next of its destination's sequence while the
//!     destination had a message within [`SqliteOptions::reference_window_ms`]
//!     (default 24 h), else a fresh start. So a reference comes back for a
//!     destination only after 65,536 other messages to it. A destination that gets
//!     more than 65,536 messages inside the window reuses its references, oldest
//!     first; a provider that remembers them drops such a submit as a repeat and
//!     answers with the earlier message's id. An [`Update::Submitted`] whose
//!     provider id is another message's to the same destination is therefore not
//!     recorded as sent: the message stays `Queued` with the destination's next
//!     reference, and after a second such answer with none (sent without the TLV,
//!     so the provider cannot drop it, nor a resend of it after an ambiguous
//!     submit); [`Store::update`] returns it as a [`Resubmit`] and its history
//!     has a `reference_collision` line. A third such answer is taken as sent (the
//!     provider's ids are then not unique).
//! 11. **One owner (SPEC M17).** [`SqliteStore::open`] takes an exclusive `flock`
//!     on `<database>.lock` before it touches the file, and holds it until the last
//!     handle is dropped: a second process gets [`StoreError::Locked`] naming the
//!     holder. The kernel releases it when the process ends, `kill -9` included.
//! 12. **MO repeats in a sliding window (SPEC M8).** An inbound item with
//!     [`NewInbound::dedupe_window_ms`] is a repeat when a copy with the same key
//!     was stored within that window before it (the first copy's time counts).
//!
//! Dropping the last clone of a [`SqliteStore`] closes the channels and joins the
//! writer and reader threads (the writer finishes the batch it holds first).
//!
//! # Message life cycle
//!
//! ```text
//!  insert ──▶ Queued ──Submitted──▶ Submitted ──final receipt──▶ Delivered | Expired |
//!              │  ▲                    │                          Undeliverable | Rejected
//!              │  ├─Requeued (attempts+1, stays Queued)
//!              │  └─Fallback (next hop of the route, attempts=0, stays Queued)
//!              └────────Failed (from any non-final state)──────▶ Failed
//! ```
//!
//! `Submitted` applies only to a `Queued` message (SPEC M8: a message that has a
//! submit response is never submitted again); on any other state it is recorded as a
//! `submit_ignored` event and changes nothing else. Final states never change.
//!
//! # History
//!
//! [`MessageView::events`] is the complete history in the order it was recorded:
//! `accepted` (from `created_at_ms`), then every event, with the `submitted` line
//! (site, smsc, provider id) at the point where the submit response was recorded.
//! To keep the hot path at one INSERT plus one UPDATE per message, `accepted` and
//! `submitted` are not event rows: they are derived from columns of `messages`, and
//! `submitted_after_event` remembers where `submitted` falls among the event rows.
//!
//! # On-disk format (SQLite, `PRAGMA user_version = 3`)
//!
//! One database file plus its `-wal` and `-shm` files. Times are integer
//! milliseconds since the Unix epoch. States and kinds are stored as text
//! ([`MessageState::as_str`], [`InboundKind::as_str`]).
//!
//! ```sql
//! CREATE TABLE messages (
//!     id                    INTEGER PRIMARY KEY,   -- MessageId, ascending, never reused
//!     key                   TEXT NOT NULL UNIQUE,  -- idempotency key (SPEC M8)
//!     source                TEXT NOT NULL,
//!     destination           TEXT NOT NULL,
//!     body                  BLOB NOT NULL,
//!     data_coding           INTEGER NOT NULL,
//!     state                 TEXT NOT NULL,         -- MessageState::as_str
//!     attempts              INTEGER NOT NULL,      -- Requeued count
//!     provider_message_id   TEXT,                  -- from the submit response
//!     site                  TEXT,
//!     smsc                  TEXT,
//!     submitted_at_ms       INTEGER,
//!     submitted_after_event INTEGER,               -- events.id before the submit
//!     created_at_ms         INTEGER NOT NULL,
//!     updated_at_ms         INTEGER NOT NULL,
//!     route                 TEXT NOT NULL DEFAULT '', -- fallback chain; '' = default
//!     hop                   INTEGER NOT NULL DEFAULT 0, -- current hop of the route
//!     email                 TEXT,                  -- for an e-mail hop (SPEC M11)
//!     reference             INTEGER,               -- SPEC M16; NULL: id & 0xFFFF
//!                                                  -- (written by version 2), -1: none
//!     provider_key          TEXT,                  -- provider_message_id normalized
//!     ref_collisions        INTEGER NOT NULL DEFAULT 0
//! );
//! CREATE INDEX messages_queued   ON messages(id) WHERE state = 'Queued';
//! CREATE INDEX messages_provider ON messages(provider_key)
//!     WHERE provider_key IS NOT NULL;
//!
//! CREATE TABLE destination_refs (             -- SPEC M16: each destination's last
//!     destination TEXT PRIMARY KEY,           -- reference, pruned a chunk at a
//!     last_ref INTEGER NOT NULL,              -- time once older than the window
//!     updated_at_ms INTEGER NOT NULL          -- (one B-tree: a new destination
//! ) WITHOUT ROWID;                            -- costs one insert, not two)
//! CREATE TABLE receipt_keys (                 -- every key an uncorrelated receipt
//!     key TEXT NOT NULL, inbound_id INTEGER NOT NULL   -- may match (SPEC M13)
//! );
//! CREATE INDEX receipt_keys_key ON receipt_keys(key);
//! CREATE INDEX receipt_keys_inbound ON receipt_keys(inbound_id);
//!
//! CREATE TABLE events (
//!     id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL,
//!     at_ms INTEGER NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL
//! );
//! CREATE INDEX events_message ON events(message_id);
//!
//! CREATE TABLE inbound (
//!     id                  INTEGER PRIMARY KEY,
//!     kind                TEXT NOT NULL,           -- 'Mo' | 'Receipt'
//!     dedupe_key          TEXT NOT NULL UNIQUE,    -- SPEC M8: stored once
//!     provider_message_id TEXT,                    -- receipted_message_id
//!     message_state       INTEGER,                 -- SMPP message_state
//!     source TEXT NOT NULL, destination TEXT NOT NULL, body BLOB NOT NULL,
//!     site TEXT NOT NULL, smsc TEXT NOT NULL,
//!     received_at_ms      INTEGER NOT NULL,
//!     message_id          INTEGER,                 -- set once correlated
//!     delivered_at_ms     INTEGER,                 -- NULL until the app has it
//!     attempts            INTEGER NOT NULL,
//!     next_attempt_at_ms  INTEGER NOT NULL
//! );
//! CREATE INDEX inbound_pending      ON inbound(id, next_attempt_at_ms)
//!     WHERE delivered_at_ms IS NULL;
//! CREATE INDEX inbound_uncorrelated ON inbound(id)
//!     WHERE kind = 'Receipt' AND message_id IS NULL;
//! ```
//!
//! An inbound item with a dedupe window is stored under `key@<20-digit time>`,
//! so the newest copy of a key is one step down the unique index.
//!
//! A file whose `user_version` is newer than this code knows is refused with
//! [`StoreError::SchemaTooNew`]; nothing is written to it. Older files are upgraded
//! in place at open, in one transaction: version 1 (before routes) gets the route
//! columns and its messages stay on the default route's first hop; version 2 gets
//! the reference and provider-key columns and tables, its messages keep the
//! reference they were sent with (`id & 0xFFFF`), and the normalized keys of its
//! provider ids and uncorrelated receipts are filled in.
//!
//! Provider message ids are assumed unique per gateway (they come from one provider
//! platform, whose sites share an id space), except for the repeats of SPEC M16
//! above. If two messages ever carry the same one, a receipt goes to the newest.

#![warn(missing_docs)]

mod error;
mod postgres;
pub mod provider_id;
mod rules;
mod sqlite;
mod types;

pub use error::StoreError;
pub use postgres::{PgOptions, PgStore};
pub use provider_id::ReceiptIdFormat;
pub use sqlite::{SqliteOptions, SqliteStore};
pub use types::{
    EventRecord, InboundInserted, InboundKind, InboundUpdate, Inserted, Lease, MessageId,
    MessageState, MessageView, NewInbound, NewMessage, PendingInbound, QueuedMessage, Resubmit,
    StoreStats, UnknownName, Update,
};

use std::future::Future;

/// The durable store, as every backend offers it (SQLite now, PostgreSQL later).
///
/// Write methods are durable when they return `Ok` (see the crate docs). Every method
/// takes and returns owned data, so a handle can be cloned into any task.
pub trait Store: Clone + Send + Sync + 'static {
    /// Accepts a batch of new messages, in order. Durable when `Ok` (SPEC M9). A key
    /// already stored, or repeated earlier in the same batch, answers
    /// [`Inserted::Existing`] with the first id (SPEC M8).
    fn insert_messages(
        &self,
        batch: Vec<NewMessage>,
    ) -> impl Future<Output = Result<Vec<Inserted>, StoreError>> + Send;

    /// Up to `limit` `Queued` messages with `id > after`, in ascending id order: page
    /// through the queue by passing the last id seen.
    fn queued_after(
        &self,
        after: Option<MessageId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<QueuedMessage>, StoreError>> + Send;

    /// Claims up to `limit` `Queued` messages with `id > after` that no lease holds
    /// (never claimed, or the claim ran out before `lease.now_ms`, whoever held it)
    /// for `lease.owner` until [`Lease::until_ms`], in ascending id order (SPEC M17:
    /// gateways sharing a queue never work on the same message at once). Page with
    /// the last id returned; start again from `None` when a page comes back empty,
    /// since claims below the cursor may have run out since.
    fn claim_queued(
        &self,
        lease: Lease,
        after: Option<MessageId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<QueuedMessage>, StoreError>> + Send;

    /// Extends `lease.owner`'s claims on these messages to [`Lease::until_ms`] and
    /// answers the ids renewed: those still `Queued` and still claimed by the
    /// owner, whether or not the claim had run out meanwhile (no one else took
    /// it). An id not answered is lost: another gateway has it, or it is no
    /// longer queued; its holder must not send it.
    fn renew_queued(
        &self,
        lease: Lease,
        ids: Vec<MessageId>,
    ) -> impl Future<Output = Result<Vec<MessageId>, StoreError>> + Send;

    /// Claims up to `limit` inbound items not yet delivered to the application,
    /// due (`next_attempt_at_ms <= lease.now_ms`) and held by no lease, in
    /// ascending id order: one gateway sends each webhook (SPEC M15, M17).
    /// [`InboundUpdate::Retry`] gives the claim up.
    fn claim_inbound(
        &self,
        lease: Lease,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<PendingInbound>, StoreError>> + Send;

    /// As [`renew_queued`](Store::renew_queued), for inbound items not yet
    /// delivered.
    fn renew_inbound(
        &self,
        lease: Lease,
        ids: Vec<i64>,
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;

    /// Gives up every claim of `owner` (a gateway stopping): the other gateways
    /// may take its work at once instead of after the lease.
    fn release_claims(&self, owner: String) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Applies state changes and history lines, all or nothing. Durable when `Ok`.
    /// An update naming an unknown message fails the call with
    /// [`StoreError::UnknownMessage`] and changes nothing. Answers the messages
    /// that must be sent again: an [`Update::Submitted`] whose provider id is
    /// another message's (SPEC M16) is not recorded as sent.
    fn update(
        &self,
        updates: Vec<Update>,
    ) -> impl Future<Output = Result<Vec<Resubmit>, StoreError>> + Send;

    /// One message with its complete history, or `None`.
    fn message(
        &self,
        id: MessageId,
    ) -> impl Future<Output = Result<Option<MessageView>, StoreError>> + Send;

    /// One message by its idempotency key, or `None`.
    fn message_by_key(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<MessageView>, StoreError>> + Send;

    /// Stores MO and receipts, each once per `dedupe_key` (SPEC M8), and applies
    /// receipts to their messages (SPEC M13). Durable when `Ok`.
    fn insert_inbound(
        &self,
        batch: Vec<NewInbound>,
    ) -> impl Future<Output = Result<Vec<InboundInserted>, StoreError>> + Send;

    /// Up to `limit` inbound items not yet delivered to the application whose next
    /// attempt is due (`next_attempt_at_ms <= now_ms`), in ascending id order.
    fn pending_inbound(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<PendingInbound>, StoreError>> + Send;

    /// Marks inbound items delivered or schedules their retry, all or nothing.
    /// Delivering an item twice is a no-op. Durable when `Ok`.
    fn update_inbound(
        &self,
        updates: Vec<InboundUpdate>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The message inbound item `id` (a receipt) is correlated with: `None` while
    /// it matches none (SPEC M13) or for an MO; [`StoreError::UnknownInbound`]
    /// for an unknown id.
    fn inbound_message(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<Option<MessageId>, StoreError>> + Send;

    /// Counts of messages by state and of inbound items.
    fn stats(&self) -> impl Future<Output = Result<StoreStats, StoreError>> + Send;
}
