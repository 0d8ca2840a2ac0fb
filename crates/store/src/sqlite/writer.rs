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
use crate::types::{
    InboundInserted, InboundKind, InboundUpdate, Inserted, MessageId, MessageState, NewInbound,
    NewMessage, Update,
};

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One caller's write, with where to send its answer.
pub(crate) enum WriteRequest {
    InsertMessages(Vec<NewMessage>, Reply<Vec<Inserted>>),
    Update(Vec<Update>, Reply<()>),
    InsertInbound(Vec<NewInbound>, Reply<Vec<InboundInserted>>),
    UpdateInbound(Vec<InboundUpdate>, Reply<()>),
    SetMaxPageCount(Option<u64>, Reply<()>),
}

/// What one request produced inside a transaction, answered after the commit.
enum Output {
    Inserted(Vec<Inserted>),
    Inbound(Vec<InboundInserted>),
    Done,
}

pub(crate) struct Writer {
    conn: Connection,
    requests: mpsc::Receiver<WriteRequest>,
    max_batch: usize,
    unlimited_pages: u64,
    counters: Arc<Mutex<Counters>>,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        requests: mpsc::Receiver<WriteRequest>,
        max_batch: usize,
        unlimited_pages: u64,
        counters: Arc<Mutex<Counters>>,
    ) -> Writer {
        Writer {
            conn,
            requests,
            max_batch,
            unlimited_pages,
            counters,
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
        let last_event = tx
            .query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |row| {
                row.get(0)
            })
            .context("reading the last event id")?;
        let mut work = Work {
            conn: &tx,
            delta: Delta::default(),
            last_event,
        };
        let mut outputs = Vec::with_capacity(requests.len());
        for request in requests {
            outputs.push(work.apply(request)?);
        }
        let delta = work.delta;
        tx.commit().context("committing")?;
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        delta.apply_to(&mut counters);
        counters.commits += 1;
        counters.storage_full = false;
        Ok(outputs)
    }
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
                Output::Inbound(_) | Output::Done => Vec::new(),
            }));
        }
        WriteRequest::InsertInbound(_, reply) => {
            let _ = reply.send(result.map(|output| match output {
                Output::Inbound(inserted) => inserted,
                Output::Inserted(_) | Output::Done => Vec::new(),
            }));
        }
        WriteRequest::Update(_, reply)
        | WriteRequest::UpdateInbound(_, reply)
        | WriteRequest::SetMaxPageCount(_, reply) => {
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
}

impl Delta {
    fn moved(&mut self, from: Option<MessageState>, to: MessageState) {
        if let Some(from) = from {
            self.states[from.index()] -= 1;
        }
        self.states[to.index()] += 1;
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
    }
}

const INSERT_MESSAGE: &str = "INSERT INTO messages
    (key, source, destination, body, data_coding, route, email, state, attempts,
     created_at_ms, updated_at_ms)
    VALUES (?1, ?2, ?3, ?4, ?5, ?7, ?8, 'Queued', 0, ?6, ?6)
    ON CONFLICT(key) DO NOTHING";
const MESSAGE_ID_BY_KEY: &str = "SELECT id FROM messages WHERE key = ?1";
const MESSAGE_STATE: &str = "SELECT state FROM messages WHERE id = ?1";
const SUBMIT: &str = "UPDATE messages SET state = 'Submitted', provider_message_id = ?2,
    site = ?3, smsc = ?4, submitted_at_ms = ?5, submitted_after_event = ?6,
    updated_at_ms = MAX(updated_at_ms, ?5)
    WHERE id = ?1 AND state = 'Queued'";
const REQUEUE: &str = "UPDATE messages SET attempts = attempts + 1,
    updated_at_ms = MAX(updated_at_ms, ?2) WHERE id = ?1";
const FALLBACK: &str = "UPDATE messages SET hop = ?2, attempts = 0,
    updated_at_ms = MAX(updated_at_ms, ?3) WHERE id = ?1 AND state = 'Queued'";
const TOUCH: &str = "UPDATE messages SET updated_at_ms = MAX(updated_at_ms, ?2) WHERE id = ?1";
const SET_STATE: &str = "UPDATE messages SET state = ?2, updated_at_ms = MAX(updated_at_ms, ?3)
    WHERE id = ?1";
const INSERT_EVENT: &str =
    "INSERT INTO events (message_id, at_ms, kind, detail) VALUES (?1, ?2, ?3, ?4)";
const MESSAGE_BY_PROVIDER_ID: &str = "SELECT id, state FROM messages
    WHERE provider_message_id = ?1 ORDER BY id DESC LIMIT 1";
const INSERT_INBOUND: &str = "INSERT INTO inbound
    (kind, dedupe_key, provider_message_id, message_state, source, destination, body,
     site, smsc, received_at_ms, message_id, attempts, next_attempt_at_ms)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, ?10)
    ON CONFLICT(dedupe_key) DO NOTHING";
const INBOUND_ID_BY_KEY: &str = "SELECT id FROM inbound WHERE dedupe_key = ?1";
const UNCORRELATED_RECEIPTS: &str = "SELECT id, message_state, site, smsc, received_at_ms
    FROM inbound
    WHERE kind = 'Receipt' AND message_id IS NULL AND provider_message_id = ?1
    ORDER BY id";
const CORRELATE: &str = "UPDATE inbound SET message_id = ?2 WHERE id = ?1";
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
}

/// A receipt being applied to its message.
struct Receipt<'a> {
    message_state: Option<u8>,
    site: &'a str,
    smsc: &'a str,
    provider_message_id: &'a str,
    received_at_ms: i64,
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
                for update in updates {
                    self.update(update)?;
                }
                Ok(Output::Done)
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

    fn update(&mut self, update: &Update) -> Result<(), StoreError> {
        const DOING: &str = "updating a message";
        match update {
            Update::Submitted {
                id,
                provider_message_id,
                site,
                smsc,
                at_ms,
            } => {
                let changed = self
                    .statement(SUBMIT)?
                    .execute(params![
                        id.0,
                        provider_message_id,
                        site,
                        smsc,
                        at_ms,
                        self.last_event
                    ])
                    .context(DOING)?;
                if changed == 1 {
                    self.delta
                        .moved(Some(MessageState::Queued), MessageState::Submitted);
                    self.apply_stored_receipts(*id, provider_message_id)
                } else {
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
                    self.touch(*id, *at_ms)
                }
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
                self.add_event(*id, *at_ms, kind, reason)
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
                    self.add_event(*id, *at_ms, "fallback", reason)
                } else {
                    let state = self.state(*id)?;
                    self.touch(*id, *at_ms)?;
                    self.add_event(
                        *id,
                        *at_ms,
                        "fallback_ignored",
                        &format!("state={state}: {reason}"),
                    )
                }
            }
            Update::Failed { id, reason, at_ms } => {
                let state = self.state(*id)?;
                if state.is_final() {
                    self.touch(*id, *at_ms)?;
                } else {
                    self.set_state(*id, state, MessageState::Failed, *at_ms)?;
                }
                self.add_event(*id, *at_ms, "failed", reason)
            }
            Update::Event {
                id,
                kind,
                detail,
                at_ms,
            } => {
                self.touch(*id, *at_ms)?;
                self.add_event(*id, *at_ms, kind, detail)
            }
        }
    }

    /// Receipts that arrived before the submit response: applied now, in arrival order.
    fn apply_stored_receipts(
        &mut self,
        id: MessageId,
        provider_message_id: &str,
    ) -> Result<(), StoreError> {
        const DOING: &str = "applying stored receipts";
        let stored: Vec<(i64, Option<u8>, String, String, i64)> = self
            .statement(UNCORRELATED_RECEIPTS)?
            .query_map([provider_message_id], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            })
            .context(DOING)?
            .collect::<Result<_, _>>()
            .context(DOING)?;
        let mut state = MessageState::Submitted;
        for (inbound_id, message_state, site, smsc, received_at_ms) in stored {
            self.statement(CORRELATE)?
                .execute(params![inbound_id, id.0])
                .context(DOING)?;
            state = self.apply_receipt(
                id,
                state,
                &Receipt {
                    message_state,
                    site: &site,
                    smsc: &smsc,
                    provider_message_id,
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
            // Correlate now if the submit response is already recorded (SPEC M1: from
            // whichever site or bind the receipt came).
            let message = match (&item.kind, &item.provider_message_id) {
                (InboundKind::Receipt, Some(provider_message_id)) => self
                    .statement(MESSAGE_BY_PROVIDER_ID)?
                    .query_row([provider_message_id], |row| {
                        Ok((MessageId(row.get(0)?), row.get::<_, String>(1)?))
                    })
                    .optional()
                    .context(DOING)?,
                _ => None,
            };
            let changed = self
                .statement(INSERT_INBOUND)?
                .execute(params![
                    item.kind.as_str(),
                    item.dedupe_key,
                    item.provider_message_id,
                    item.message_state,
                    item.source,
                    item.destination,
                    item.body,
                    item.site,
                    item.smsc,
                    item.received_at_ms,
                    message.as_ref().map(|(id, _)| id.0),
                ])
                .context(DOING)?;
            if changed == 0 {
                let id = self
                    .statement(INBOUND_ID_BY_KEY)?
                    .query_row([&item.dedupe_key], |row| row.get(0))
                    .context(DOING)?;
                inserted.push(InboundInserted::Duplicate(id));
                continue;
            }
            inserted.push(InboundInserted::Created(self.conn.last_insert_rowid()));
            self.delta.inbound_pending += 1;
            self.delta.inbound_total += 1;
            if let (Some((id, state)), Some(provider_message_id)) =
                (message, &item.provider_message_id)
            {
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
            (MESSAGE_BY_PROVIDER_ID, "messages_provider"),
            (INBOUND_ID_BY_KEY, "sqlite_autoindex_inbound_1"),
            (UNCORRELATED_RECEIPTS, "inbound_uncorrelated"),
            (SUBMIT, "INTEGER PRIMARY KEY"),
            (MESSAGE_STATE, "INTEGER PRIMARY KEY"),
        ] {
            let plan = plan(sql);
            assert!(plan.contains(index), "{sql}\n{plan}");
            assert!(!plan.contains("SCAN"), "{sql}\n{plan}");
        }
    }
}
