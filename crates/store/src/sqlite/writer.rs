//! The writer thread: owns the only write connection and commits in groups.
//!
//! Loop: block for one request, take every other request already waiting (up to
//! `max_batch`), run them all in ONE `BEGIN IMMEDIATE … COMMIT`, then answer each.
//! While it fsyncs, the next group gathers in the channel. If the group fails, it is
//! rolled back and each request is run again in a transaction of its own, so the
//! error reaches only the request that caused it (a full disk fails them all alike).
//! Counters move only after a commit.

use std::sync::{mpsc, Arc, Mutex, PoisonError};

use rusqlite::{params, CachedStatement, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use super::{Context, Counters};
use crate::error::StoreError;
use crate::provider_id::{normalize, receipt_keys};
use crate::rules::{reference_seed, windowed_key};
use crate::types::{
    InboundInserted, InboundKind, InboundUpdate, Inserted, MessageId, MessageState, NewInbound,
    NewMessage, Resubmit, Update,
};

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One caller's write, with where to send its answer.
pub(crate) enum WriteRequest {
    InsertMessages(Vec<NewMessage>, Reply<Vec<Inserted>>),
    Update(Vec<Update>, Reply<Vec<Resubmit>>),
    InsertInbound(Vec<NewInbound>, Reply<Vec<InboundInserted>>),
    UpdateInbound(Vec<InboundUpdate>, Reply<()>),
    SetMaxPageCount(Option<u64>, Reply<()>),
}

/// What one request produced inside a transaction, answered after the commit.
enum Output {
    Inserted(Vec<Inserted>),
    Inbound(Vec<InboundInserted>),
    Updated(Vec<Resubmit>),
    Done,
}

pub(crate) struct Writer {
    conn: Connection,
    requests: mpsc::Receiver<WriteRequest>,
    max_batch: usize,
    unlimited_pages: u64,
    counters: Arc<Mutex<Counters>>,
    policy: Policy,
    /// Where the pruning of stale destination counters goes on.
    prune: Prune,
    /// The highest `events.id` committed, known because this is the only writer;
    /// `None` until read, and again after a rollback (the ids it used are free).
    last_event: Option<i64>,
}

/// The time windows the writer applies (from [`SqliteOptions`](super::SqliteOptions)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// A destination's references run on while it had a message this recently.
    pub(crate) reference_window_ms: i64,
    /// How long a receipt that matches no message waits for its submit response
    /// before it is delivered to the application uncorrelated.
    pub(crate) correlation_wait_ms: i64,
}

/// Destination counters older than the reference window are deleted a chunk at a
/// time, every [`PRUNE_EVERY`] commits, so the table holds only the destinations
/// of the window and no commit pays for a long scan.
#[derive(Debug, Default)]
struct Prune {
    commits: u64,
    after: String,
    latest_ms: i64,
}

const PRUNE_EVERY: u64 = 64;
const PRUNE_CHUNK: i64 = 2_000;

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        requests: mpsc::Receiver<WriteRequest>,
        max_batch: usize,
        unlimited_pages: u64,
        counters: Arc<Mutex<Counters>>,
        policy: Policy,
    ) -> Writer {
        Writer {
            conn,
            requests,
            max_batch,
            unlimited_pages,
            counters,
            policy,
            prune: Prune::default(),
            last_event: None,
        }
    }

    pub(crate) fn run(mut self) {
        while let Ok(first) = self.requests.recv() {
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match self.requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.process(batch);
        }
    }

    fn process(&mut self, batch: Vec<WriteRequest>) {
        let mut writes = Vec::with_capacity(batch.len());
        for request in batch {
            match request {
                // Not data: run at once, outside any transaction.
                WriteRequest::SetMaxPageCount(pages, reply) => {
                    let pages = pages.unwrap_or(self.unlimited_pages);
                    let _ = reply.send(set_max_page_count(&self.conn, pages));
                }
                write => writes.push(write),
            }
        }
        if writes.is_empty() {
            return;
        }
        match self.transaction(&writes) {
            Ok(outputs) => {
                for (request, output) in writes.into_iter().zip(outputs) {
                    answer(request, Ok(output));
                }
            }
            Err(error) if writes.len() == 1 => {
                for request in writes {
                    answer(request, Err(error.clone()));
                }
            }
            Err(error) => {
                tracing::warn!(
                    %error,
                    requests = writes.len(),
                    "group commit failed; retrying its requests one by one"
                );
                for request in writes {
                    let result = self
                        .transaction(std::slice::from_ref(&request))
                        .map(|mut outputs| outputs.pop().unwrap_or(Output::Done));
                    answer(request, result);
                }
            }
        }
    }

    /// Runs `requests` in one transaction and commits it; on any error, nothing of
    /// them is kept.
    fn transaction(&mut self, requests: &[WriteRequest]) -> Result<Vec<Output>, StoreError> {
        let result = self.try_transaction(requests);
        if result.is_err() {
            self.last_event = None;
        }
        if let Err(StoreError::Full(_)) = &result {
            self.counters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .storage_full = true;
        }
        result
    }

    fn try_transaction(&mut self, requests: &[WriteRequest]) -> Result<Vec<Output>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("starting a write transaction")?;
        let last_event = match self.last_event {
            Some(id) => id,
            None => tx
                .query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |row| {
                    row.get(0)
                })
                .context("reading the last event id")?,
        };
        // Committed counters only move on this thread, after a commit: the copy
        // plus this transaction's own delta is exact while it runs.
        let receipts_uncorrelated = self
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .receipts_uncorrelated;
        let mut work = Work {
            conn: &tx,
            delta: Delta::default(),
            last_event,
            policy: self.policy,
            latest_ms: self.prune.latest_ms,
            receipts_uncorrelated,
        };
        let mut outputs = Vec::with_capacity(requests.len());
        for request in requests {
            outputs.push(work.apply(request)?);
        }
        let delta = work.delta;
        let last_event = work.last_event;
        self.prune.latest_ms = work.latest_ms;
        self.prune.commits += 1;
        if self.prune.commits % PRUNE_EVERY == 0 {
            self.prune.after = prune_destinations(
                &tx,
                &self.prune.after,
                self.prune.latest_ms - self.policy.reference_window_ms,
            )?;
        }
        tx.commit().context("committing")?;
        self.last_event = Some(last_event);
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        delta.apply_to(&mut counters);
        counters.commits += 1;
        // Only new rows prove there is room again: an update can rewrite pages
        // in place (or reuse WAL frames) on a disk that refuses every insert,
        // and a batch of repeats (a provider resending receipts it already
        // delivered) commits without writing a row.
        if delta.added_rows() {
            counters.storage_full = false;
        }
        Ok(outputs)
    }
}

/// Deletes the counters of destinations with no message within the window, in
/// the next chunk of destinations after `after` (in key order); returns where the
/// next chunk starts (empty: from the beginning).
fn prune_destinations(
    conn: &Connection,
    after: &str,
    stale_before_ms: i64,
) -> Result<String, StoreError> {
    const DOING: &str = "pruning destination references";
    let last: Option<String> = conn
        .query_row(
            "SELECT MAX(destination) FROM (SELECT destination FROM destination_refs
             WHERE destination > ?1 ORDER BY destination LIMIT ?2)",
            params![after, PRUNE_CHUNK],
            |row| row.get(0),
        )
        .context(DOING)?;
    let Some(last) = last else {
        return Ok(String::new()); // the end: start over
    };
    conn.execute(
        "DELETE FROM destination_refs
         WHERE destination > ?1 AND destination <= ?2 AND updated_at_ms < ?3",
        params![after, last, stale_before_ms],
    )
    .context(DOING)?;
    Ok(last)
}

pub(crate) fn set_max_page_count(conn: &Connection, pages: u64) -> Result<(), StoreError> {
    conn.query_row(&format!("PRAGMA max_page_count={pages}"), [], |_| Ok(()))
        .context("setting max_page_count")
}

fn answer(request: WriteRequest, result: Result<Output, StoreError>) {
    // A caller that stopped waiting is not an error: its write stands (or not) anyway.
    match request {
        WriteRequest::InsertMessages(_, reply) => {
            let _ = reply.send(result.map(|output| match output {
                Output::Inserted(inserted) => inserted,
                Output::Inbound(_) | Output::Updated(_) | Output::Done => Vec::new(),
            }));
        }
        WriteRequest::InsertInbound(_, reply) => {
            let _ = reply.send(result.map(|output| match output {
                Output::Inbound(inserted) => inserted,
                Output::Inserted(_) | Output::Updated(_) | Output::Done => Vec::new(),
            }));
        }
        WriteRequest::Update(_, reply) => {
            let _ = reply.send(result.map(|output| match output {
                Output::Updated(resubmits) => resubmits,
                Output::Inserted(_) | Output::Inbound(_) | Output::Done => Vec::new(),
            }));
        }
        WriteRequest::UpdateInbound(_, reply) | WriteRequest::SetMaxPageCount(_, reply) => {
            let _ = reply.send(result.map(|_| ()));
        }
    }
}

/// Counter changes of one transaction, applied only if it commits.
#[derive(Debug, Default)]
struct Delta {
    states: [i64; 7],
    inbound_pending: i64,
    inbound_total: i64,
    receipts_uncorrelated: i64,
}

impl Delta {
    fn moved(&mut self, from: Option<MessageState>, to: MessageState) {
        if let Some(from) = from {
            self.states[from.index()] -= 1;
        }
        self.states[to.index()] += 1;
    }

    /// Whether the transaction stored a new message or inbound row (messages
    /// are never deleted, so the states' net change counts new ones).
    fn added_rows(&self) -> bool {
        self.inbound_total > 0 || self.states.iter().sum::<i64>() > 0
    }

    fn apply_to(&self, counters: &mut Counters) {
        fn add(count: &mut u64, delta: i64) {
            *count = count.saturating_add_signed(delta);
        }
        for (count, delta) in counters.states.iter_mut().zip(self.states) {
            add(count, delta);
        }
        add(&mut counters.inbound_pending, self.inbound_pending);
        add(&mut counters.inbound_total, self.inbound_total);
        add(
            &mut counters.receipts_uncorrelated,
            self.receipts_uncorrelated,
        );
    }
}

const INSERT_MESSAGE: &str = "INSERT INTO messages
    (key, source, destination, body, data_coding, route, email, state, attempts,
     created_at_ms, updated_at_ms, reference)
    VALUES (?1, ?2, ?3, ?4, ?5, ?7, ?8, 'Queued', 0, ?6, ?6, ?9)
    ON CONFLICT(key) DO NOTHING";
/// The next reference of a destination (SPEC M16): one after the last while the
/// destination had a message within the window, else a fresh start.
const ALLOCATE_REFERENCE: &str = "INSERT INTO destination_refs
    (destination, last_ref, updated_at_ms) VALUES (?1, ?2, ?3)
    ON CONFLICT(destination) DO UPDATE SET
        last_ref = CASE WHEN updated_at_ms >= ?4 THEN (last_ref + 1) % 65536 ELSE ?2 END,
        updated_at_ms = MAX(updated_at_ms, ?3)
    RETURNING last_ref";
const MESSAGE_ID_BY_KEY: &str = "SELECT id FROM messages WHERE key = ?1";
const MESSAGE_STATE: &str = "SELECT state FROM messages WHERE id = ?1";
const SUBMIT: &str = "UPDATE messages SET state = 'Submitted', provider_message_id = ?2,
    site = ?3, smsc = ?4, submitted_at_ms = ?5, submitted_after_event = ?6,
    updated_at_ms = MAX(updated_at_ms, ?5), provider_key = ?7
    WHERE id = ?1 AND state = 'Queued'";
/// [`SUBMIT`] when no [`COLLIDING_MESSAGE`] exists, in one statement.
const SUBMIT_UNLESS_COLLIDING: &str = "UPDATE messages SET state = 'Submitted',
    provider_message_id = ?2, site = ?3, smsc = ?4, submitted_at_ms = ?5,
    submitted_after_event = ?6, updated_at_ms = MAX(updated_at_ms, ?5), provider_key = ?7
    WHERE id = ?1 AND state = 'Queued' AND NOT EXISTS (SELECT 1 FROM messages AS other
        WHERE other.provider_key = ?7 AND other.id <> ?1
          AND other.destination = messages.destination)";
/// Another message to the same destination that the provider already gave this
/// id: the provider took the submit for a repeat of that one (SPEC M16).
const COLLIDING_MESSAGE: &str = "SELECT other.id, mine.destination, mine.reference,
    mine.ref_collisions
    FROM messages AS mine JOIN messages AS other
      ON other.provider_key = ?2 AND other.id <> mine.id
     AND other.destination = mine.destination
    WHERE mine.id = ?1 AND mine.state = 'Queued' LIMIT 1";
const NEW_REFERENCE: &str = "UPDATE messages SET reference = ?2, ref_collisions = ?3,
    updated_at_ms = MAX(updated_at_ms, ?4) WHERE id = ?1";
const REQUEUE: &str = "UPDATE messages SET attempts = attempts + 1,
    updated_at_ms = MAX(updated_at_ms, ?2) WHERE id = ?1";
const FALLBACK: &str = "UPDATE messages SET hop = ?2, attempts = 0,
    updated_at_ms = MAX(updated_at_ms, ?3) WHERE id = ?1 AND state = 'Queued'";
const TOUCH: &str = "UPDATE messages SET updated_at_ms = MAX(updated_at_ms, ?2) WHERE id = ?1";
const SET_STATE: &str = "UPDATE messages SET state = ?2, updated_at_ms = MAX(updated_at_ms, ?3)
    WHERE id = ?1";
const INSERT_EVENT: &str =
    "INSERT INTO events (message_id, at_ms, kind, detail) VALUES (?1, ?2, ?3, ?4)";
const MESSAGE_BY_PROVIDER_KEY: &str = "SELECT id, state FROM messages
    WHERE provider_key = ?1 ORDER BY id DESC LIMIT 1";
const INSERT_INBOUND: &str = "INSERT INTO inbound
    (kind, dedupe_key, provider_message_id, message_state, source, destination, body,
     site, smsc, received_at_ms, message_id, attempts, next_attempt_at_ms)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, ?12)
    ON CONFLICT(dedupe_key) DO NOTHING";
const INBOUND_ID_BY_KEY: &str = "SELECT id FROM inbound WHERE dedupe_key = ?1";
/// The newest copy stored under a windowed key (`identity@received_at`).
const LATEST_WINDOWED: &str = "SELECT id, received_at_ms FROM inbound
    WHERE dedupe_key > ?1 AND dedupe_key < ?2 ORDER BY dedupe_key DESC LIMIT 1";
const INSERT_RECEIPT_KEY: &str = "INSERT INTO receipt_keys (key, inbound_id) VALUES (?1, ?2)";
const UNCORRELATED_RECEIPTS: &str = "SELECT inbound.id, inbound.message_state, inbound.site,
    inbound.smsc, inbound.received_at_ms, inbound.provider_message_id
    FROM receipt_keys JOIN inbound ON inbound.id = receipt_keys.inbound_id
    WHERE receipt_keys.key = ?1 AND inbound.message_id IS NULL
    ORDER BY inbound.id";
/// Correlated at last: offered to the application now, with its message.
const CORRELATE: &str = "UPDATE inbound SET message_id = ?2,
    next_attempt_at_ms = MIN(next_attempt_at_ms, ?3) WHERE id = ?1";
const FORGET_RECEIPT_KEYS: &str = "DELETE FROM receipt_keys WHERE inbound_id = ?1";
const INBOUND_DELIVERED: &str =
    "UPDATE inbound SET delivered_at_ms = ?2 WHERE id = ?1 AND delivered_at_ms IS NULL";
const INBOUND_RETRY: &str = "UPDATE inbound SET attempts = attempts + 1,
    next_attempt_at_ms = ?2 WHERE id = ?1 AND delivered_at_ms IS NULL";
const INBOUND_EXISTS: &str = "SELECT 1 FROM inbound WHERE id = ?1";

/// One transaction's work in progress.
struct Work<'c> {
    conn: &'c Connection,
    delta: Delta,
    /// The highest `events.id` so far: where a `submitted` line falls in the history.
    last_event: i64,
    policy: Policy,
    /// The latest time any request carried: "now" for pruning.
    latest_ms: i64,
    /// Uncorrelated receipts committed when the transaction began.
    receipts_uncorrelated: u64,
}

/// A receipt being applied to its message.
struct Receipt<'a> {
    message_state: Option<u8>,
    site: &'a str,
    smsc: &'a str,
    provider_message_id: &'a str,
    received_at_ms: i64,
}

/// A submit response being recorded.
struct Submit<'a> {
    id: MessageId,
    provider_message_id: &'a str,
    site: &'a str,
    smsc: &'a str,
    at_ms: i64,
    /// `provider_message_id` normalized.
    key: &'a str,
}

impl<'c> Work<'c> {
    fn statement(&self, sql: &str) -> Result<CachedStatement<'c>, StoreError> {
        self.conn
            .prepare_cached(sql)
            .context("preparing a statement")
    }

    fn apply(&mut self, request: &WriteRequest) -> Result<Output, StoreError> {
        match request {
            WriteRequest::InsertMessages(batch, _) => {
                self.insert_messages(batch).map(Output::Inserted)
            }
            WriteRequest::Update(updates, _) => {
                let mut resubmits = Vec::new();
                for update in updates {
                    if let Some(resubmit) = self.update(update)? {
                        resubmits.push(resubmit);
                    }
                }
                Ok(Output::Updated(resubmits))
            }
            WriteRequest::InsertInbound(batch, _) => {
                self.insert_inbound(batch).map(Output::Inbound)
            }
            WriteRequest::UpdateInbound(updates, _) => {
                for update in updates {
                    self.update_inbound(*update)?;
                }
                Ok(Output::Done)
            }
            WriteRequest::SetMaxPageCount(..) => Ok(Output::Done),
        }
    }

    fn insert_messages(&mut self, batch: &[NewMessage]) -> Result<Vec<Inserted>, StoreError> {
        const DOING: &str = "inserting messages";
        let mut insert = self.statement(INSERT_MESSAGE)?;
        let mut by_key = None;
        let mut inserted = Vec::with_capacity(batch.len());
        for message in batch {
            self.latest_ms = self.latest_ms.max(message.received_at_ms);
            let reference =
                self.allocate_reference(&message.destination, message.received_at_ms)?;
            let changed = insert
                .execute(params![
                    message.key,
                    message.source,
                    message.destination,
                    message.body,
                    message.data_coding,
                    message.received_at_ms,
                    message.route,
                    message.email,
                    reference,
                ])
                .context(DOING)?;
            if changed == 1 {
                self.delta.moved(None, MessageState::Queued);
                inserted.push(Inserted::Created(MessageId(self.conn.last_insert_rowid())));
            } else {
                if by_key.is_none() {
                    by_key = Some(self.statement(MESSAGE_ID_BY_KEY)?);
                }
                let statement = by_key.as_mut().expect("prepared just above");
                let id = statement
                    .query_row([&message.key], |row| row.get(0))
                    .context(DOING)?;
                inserted.push(Inserted::Existing(MessageId(id)));
            }
        }
        Ok(inserted)
    }

    /// The next `user_message_reference` for `destination` (SPEC M16).
    fn allocate_reference(&mut self, destination: &str, at_ms: i64) -> Result<i64, StoreError> {
        self.statement(ALLOCATE_REFERENCE)?
            .query_row(
                params![
                    destination,
                    reference_seed(destination, at_ms),
                    at_ms,
                    at_ms.saturating_sub(self.policy.reference_window_ms)
                ],
                |row| row.get(0),
            )
            .context("allocating a message reference")
    }

    /// Records a submit response with `sql` (one of the `SUBMIT` statements) if
    /// it applies; then the message is `Submitted` and the receipts that were
    /// waiting for it are applied. `false`: it changed nothing.
    fn submit(&mut self, sql: &str, submit: &Submit<'_>) -> Result<bool, StoreError> {
        let changed = self
            .statement(sql)?
            .execute(params![
                submit.id.0,
                submit.provider_message_id,
                submit.site,
                submit.smsc,
                submit.at_ms,
                self.last_event,
                submit.key
            ])
            .context("updating a message")?;
        if changed == 0 {
            return Ok(false);
        }
        self.delta
            .moved(Some(MessageState::Queued), MessageState::Submitted);
        self.apply_stored_receipts(submit.id, submit.key, submit.at_ms)?;
        Ok(true)
    }

    /// `Some` when the update asks the caller to send the message again.
    fn update(&mut self, update: &Update) -> Result<Option<Resubmit>, StoreError> {
        const DOING: &str = "updating a message";
        let (Update::Submitted { at_ms, .. }
        | Update::Requeued { at_ms, .. }
        | Update::Failed { at_ms, .. }
        | Update::Fallback { at_ms, .. }
        | Update::Event { at_ms, .. }) = update;
        self.latest_ms = self.latest_ms.max(*at_ms);
        match update {
            Update::Submitted {
                id,
                provider_message_id,
                site,
                smsc,
                at_ms,
            } => {
                let key = normalize(provider_message_id);
                let submit = Submit {
                    id: *id,
                    provider_message_id,
                    site,
                    smsc,
                    at_ms: *at_ms,
                    key: &key,
                };
                // The common case in one statement: recorded unless another
                // message to the destination has the key. Otherwise nothing
                // changed, and the full check below decides as if it had not run.
                if self.submit(SUBMIT_UNLESS_COLLIDING, &submit)? {
                    return Ok(None);
                }
                if let Some(resubmit) = self.collision(*id, &key, provider_message_id, *at_ms)? {
                    return Ok(Some(resubmit));
                }
                if !self.submit(SUBMIT, &submit)? {
                    let state = self.state(*id)?;
                    self.add_event(
                        *id,
                        *at_ms,
                        "submit_ignored",
                        &format!(
                            "state={state} site={site} smsc={smsc} \
                             provider_message_id={provider_message_id}"
                        ),
                    )?;
                    self.touch(*id, *at_ms)?;
                }
                Ok(None)
            }
            Update::Requeued {
                id,
                kind,
                reason,
                at_ms,
            } => {
                let changed = self
                    .statement(REQUEUE)?
                    .execute(params![id.0, at_ms])
                    .context(DOING)?;
                if changed == 0 {
                    return Err(StoreError::UnknownMessage(*id));
                }
                self.add_event(*id, *at_ms, kind, reason)?;
                Ok(None)
            }
            Update::Fallback {
                id,
                hop,
                reason,
                at_ms,
            } => {
                let changed = self
                    .statement(FALLBACK)?
                    .execute(params![id.0, hop, at_ms])
                    .context(DOING)?;
                if changed == 1 {
                    self.add_event(*id, *at_ms, "fallback", reason)?;
                } else {
                    let state = self.state(*id)?;
                    self.touch(*id, *at_ms)?;
                    self.add_event(
                        *id,
                        *at_ms,
                        "fallback_ignored",
                        &format!("state={state}: {reason}"),
                    )?;
                }
                Ok(None)
            }
            Update::Failed { id, reason, at_ms } => {
                let state = self.state(*id)?;
                if state.is_final() {
                    self.touch(*id, *at_ms)?;
                } else {
                    self.set_state(*id, state, MessageState::Failed, *at_ms)?;
                }
                self.add_event(*id, *at_ms, "failed", reason)?;
                Ok(None)
            }
            Update::Event {
                id,
                kind,
                detail,
                at_ms,
            } => {
                self.touch(*id, *at_ms)?;
                self.add_event(*id, *at_ms, kind, detail)?;
                Ok(None)
            }
        }
    }

    /// SPEC M16: the provider answered with the id it gave another message to the
    /// same destination, so it took this submit for a repeat of that message and
    /// dropped it. This one is not sent: it stays `Queued` with a fresh reference
    /// (the destination's next), or with none after a second collision (every
    /// reference the provider remembers for the destination may be taken).
    fn collision(
        &mut self,
        id: MessageId,
        key: &str,
        provider_message_id: &str,
        at_ms: i64,
    ) -> Result<Option<Resubmit>, StoreError> {
        const DOING: &str = "checking a provider id against other messages";
        let found: Option<(i64, String, Option<i64>, u32)> = self
            .statement(COLLIDING_MESSAGE)?
            .query_row(params![id.0, key], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()
            .context(DOING)?;
        let Some((other, destination, old, collisions)) = found else {
            return Ok(None);
        };
        if collisions >= 2 {
            // Sent without a reference and still answered with another message's
            // id: the provider's ids are not unique, not a dropped repeat. Taken
            // as sent, or the message would be resent for ever.
            return Ok(None);
        }
        let old = match old {
            None => Some(id.legacy_reference()),
            Some(reference) => u16::try_from(reference).ok(),
        };
        let reference = if collisions == 0 {
            Some(self.allocate_reference(&destination, at_ms)? as u16)
        } else {
            None
        };
        self.statement(NEW_REFERENCE)?
            .execute(params![
                id.0,
                reference.map_or(-1, i64::from),
                collisions + 1,
                at_ms
            ])
            .context(DOING)?;
        let describe = |reference: Option<u16>| {
            reference.map_or_else(|| "no reference".to_owned(), |r| format!("reference {r}"))
        };
        self.add_event(
            id,
            at_ms,
            "reference_collision",
            &format!(
                "the provider answered with provider_message_id={provider_message_id}, the id of \
                 message {other} to the same destination: it took the submit with {} for a \
                 repeat and dropped it; sending again with {}",
                describe(old),
                describe(reference)
            ),
        )?;
        Ok(Some(Resubmit { id, reference }))
    }

    /// Receipts that arrived before the submit response: applied now, in arrival
    /// order, and offered to the application with their message.
    fn apply_stored_receipts(
        &mut self,
        id: MessageId,
        key: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        const DOING: &str = "applying stored receipts";
        // Every uncorrelated receipt is counted (committed + this transaction's
        // own): none at all, none to look up.
        if self
            .receipts_uncorrelated
            .saturating_add_signed(self.delta.receipts_uncorrelated)
            == 0
        {
            return Ok(());
        }
        type Row = (i64, Option<u8>, String, String, i64, Option<String>);
        let stored: Vec<Row> = self
            .statement(UNCORRELATED_RECEIPTS)?
            .query_map([key], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ))
            })
            .context(DOING)?
            .collect::<Result<_, _>>()
            .context(DOING)?;
        let mut state = MessageState::Submitted;
        for (inbound_id, message_state, site, smsc, received_at_ms, provider_message_id) in stored {
            self.statement(CORRELATE)?
                .execute(params![inbound_id, id.0, at_ms])
                .context(DOING)?;
            self.statement(FORGET_RECEIPT_KEYS)?
                .execute([inbound_id])
                .context(DOING)?;
            self.delta.receipts_uncorrelated -= 1;
            state = self.apply_receipt(
                id,
                state,
                &Receipt {
                    message_state,
                    site: &site,
                    smsc: &smsc,
                    provider_message_id: provider_message_id.as_deref().unwrap_or(key),
                    received_at_ms,
                },
            )?;
        }
        Ok(())
    }

    /// Records the receipt on its message and sets the final state it means, unless the
    /// message is final already (SPEC M13: every receipt recorded, final state once).
    fn apply_receipt(
        &mut self,
        id: MessageId,
        state: MessageState,
        receipt: &Receipt<'_>,
    ) -> Result<MessageState, StoreError> {
        let message_state = receipt
            .message_state
            .map_or_else(|| "-".to_owned(), |value| value.to_string());
        self.add_event(
            id,
            receipt.received_at_ms,
            "receipt",
            &format!(
                "message_state={message_state} site={} smsc={} provider_message_id={}",
                receipt.site, receipt.smsc, receipt.provider_message_id
            ),
        )?;
        match receipt
            .message_state
            .and_then(MessageState::from_receipt_state)
        {
            Some(to) if !state.is_final() => {
                self.set_state(id, state, to, receipt.received_at_ms)?;
                Ok(to)
            }
            _ => {
                self.touch(id, receipt.received_at_ms)?;
                Ok(state)
            }
        }
    }

    fn insert_inbound(&mut self, batch: &[NewInbound]) -> Result<Vec<InboundInserted>, StoreError> {
        const DOING: &str = "inserting inbound items";
        let mut inserted = Vec::with_capacity(batch.len());
        for item in batch {
            self.latest_ms = self.latest_ms.max(item.received_at_ms);
            // SPEC M8: a content key without an id is a repeat only within its
            // window of the first copy, wherever the clock stands.
            let dedupe_key = match item.dedupe_window_ms {
                None => item.dedupe_key.clone(),
                Some(window) => {
                    let latest: Option<(i64, i64)> = self
                        .statement(LATEST_WINDOWED)?
                        .query_row(
                            params![
                                format!("{}@", item.dedupe_key),
                                format!("{}@~", item.dedupe_key)
                            ],
                            |row| Ok((row.get(0)?, row.get(1)?)),
                        )
                        .optional()
                        .context(DOING)?;
                    if let Some((id, first_ms)) = latest {
                        if item.received_at_ms.saturating_sub(first_ms) <= window {
                            inserted.push(InboundInserted::Duplicate(id));
                            continue;
                        }
                    }
                    windowed_key(&item.dedupe_key, item.received_at_ms)
                }
            };
            // Correlate now if the submit response is already recorded (SPEC M1: from
            // whichever site or bind the receipt came), under every key the
            // provider's way of writing ids allows (SPEC M13).
            let keys = match (&item.kind, &item.provider_message_id) {
                (InboundKind::Receipt, Some(id)) => receipt_keys(id, item.id_format),
                _ => Vec::new(),
            };
            let mut message = None;
            for key in &keys {
                message = self
                    .statement(MESSAGE_BY_PROVIDER_KEY)?
                    .query_row([key], |row| {
                        Ok((MessageId(row.get(0)?), row.get::<_, String>(1)?))
                    })
                    .optional()
                    .context(DOING)?;
                if message.is_some() {
                    break;
                }
            }
            let receipt = item.kind == InboundKind::Receipt;
            // A receipt that matches no message yet waits for its submit response
            // before it is offered to the application, uncorrelated.
            let next_attempt_at_ms = if receipt && message.is_none() {
                item.received_at_ms
                    .saturating_add(self.policy.correlation_wait_ms)
            } else {
                item.received_at_ms
            };
            let changed = self
                .statement(INSERT_INBOUND)?
                .execute(params![
                    item.kind.as_str(),
                    dedupe_key,
                    item.provider_message_id,
                    item.message_state,
                    item.source,
                    item.destination,
                    item.body,
                    item.site,
                    item.smsc,
                    item.received_at_ms,
                    message.as_ref().map(|(id, _)| id.0),
                    next_attempt_at_ms,
                ])
                .context(DOING)?;
            if changed == 0 {
                let id = self
                    .statement(INBOUND_ID_BY_KEY)?
                    .query_row([&dedupe_key], |row| row.get(0))
                    .context(DOING)?;
                inserted.push(InboundInserted::Duplicate(id));
                continue;
            }
            let inbound_id = self.conn.last_insert_rowid();
            inserted.push(InboundInserted::Created(inbound_id));
            self.delta.inbound_pending += 1;
            self.delta.inbound_total += 1;
            match (message, &item.provider_message_id) {
                (Some((id, state)), Some(provider_message_id)) => {
                    let state = parse_state(&state)?;
                    self.apply_receipt(
                        id,
                        state,
                        &Receipt {
                            message_state: item.message_state,
                            site: &item.site,
                            smsc: &item.smsc,
                            provider_message_id,
                            received_at_ms: item.received_at_ms,
                        },
                    )?;
                }
                _ if receipt => {
                    // SPEC M13: kept, counted, and found by any of its keys when
                    // the submit response comes.
                    self.delta.receipts_uncorrelated += 1;
                    for key in &keys {
                        self.statement(INSERT_RECEIPT_KEY)?
                            .execute(params![key, inbound_id])
                            .context(DOING)?;
                    }
                }
                _ => {}
            }
        }
        Ok(inserted)
    }

    fn update_inbound(&mut self, update: InboundUpdate) -> Result<(), StoreError> {
        const DOING: &str = "updating an inbound item";
        let (id, changed) = match update {
            InboundUpdate::Delivered { id, at_ms } => {
                let changed = self
                    .statement(INBOUND_DELIVERED)?
                    .execute(params![id, at_ms])
                    .context(DOING)?;
                if changed == 1 {
                    self.delta.inbound_pending -= 1;
                }
                (id, changed)
            }
            InboundUpdate::Retry {
                id,
                next_attempt_at_ms,
            } => {
                let changed = self
                    .statement(INBOUND_RETRY)?
                    .execute(params![id, next_attempt_at_ms])
                    .context(DOING)?;
                (id, changed)
            }
        };
        if changed == 0 {
            // Already delivered is fine (idempotent); unknown is a caller's mistake.
            let exists = self
                .statement(INBOUND_EXISTS)?
                .query_row([id], |_| Ok(()))
                .optional()
                .context(DOING)?;
            if exists.is_none() {
                return Err(StoreError::UnknownInbound(id));
            }
        }
        Ok(())
    }

    fn state(&self, id: MessageId) -> Result<MessageState, StoreError> {
        let text: Option<String> = self
            .statement(MESSAGE_STATE)?
            .query_row([id.0], |row| row.get(0))
            .optional()
            .context("reading a message's state")?;
        match text {
            Some(text) => parse_state(&text),
            None => Err(StoreError::UnknownMessage(id)),
        }
    }

    fn set_state(
        &mut self,
        id: MessageId,
        from: MessageState,
        to: MessageState,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.statement(SET_STATE)?
            .execute(params![id.0, to.as_str(), at_ms])
            .context("setting a message's state")?;
        self.delta.moved(Some(from), to);
        Ok(())
    }

    fn touch(&self, id: MessageId, at_ms: i64) -> Result<(), StoreError> {
        let changed = self
            .statement(TOUCH)?
            .execute(params![id.0, at_ms])
            .context("updating a message")?;
        if changed == 0 {
            return Err(StoreError::UnknownMessage(id));
        }
        Ok(())
    }

    fn add_event(
        &mut self,
        id: MessageId,
        at_ms: i64,
        kind: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.statement(INSERT_EVENT)?
            .execute(params![id.0, at_ms, kind, detail])
            .context("recording an event")?;
        self.last_event = self.conn.last_insert_rowid();
        Ok(())
    }
}

fn parse_state(text: &str) -> Result<MessageState, StoreError> {
    MessageState::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("reading a message: unknown state {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::schema::plan;

    /// The per-message statements go through an index, never a scan.
    #[test]
    fn hot_statements_use_their_indexes() {
        for (sql, index) in [
            (MESSAGE_ID_BY_KEY, "sqlite_autoindex_messages_1"),
            (MESSAGE_BY_PROVIDER_KEY, "messages_provider"),
            (LATEST_WINDOWED, "sqlite_autoindex_inbound_1"),
            (COLLIDING_MESSAGE, "messages_provider"),
            (FORGET_RECEIPT_KEYS, "receipt_keys_inbound"),
            (INBOUND_ID_BY_KEY, "sqlite_autoindex_inbound_1"),
            (UNCORRELATED_RECEIPTS, "receipt_keys_key"),
            (SUBMIT, "INTEGER PRIMARY KEY"),
            (SUBMIT_UNLESS_COLLIDING, "messages_provider"),
            (MESSAGE_STATE, "INTEGER PRIMARY KEY"),
        ] {
            let plan = plan(sql);
            assert!(plan.contains(index), "{sql}\n{plan}");
            assert!(!plan.contains("SCAN"), "{sql}\n{plan}");
        }
    }
}
