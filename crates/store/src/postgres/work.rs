//! One write transaction's work: the requests of a group commit, applied in
//! order, each kind set-based.
//!
//! Several gateways write the same tables (READ COMMITTED), so every check that
//! decides a write happens under a lock taken in an earlier statement (each
//! statement then reads a snapshot taken after the lock was granted):
//! - the messages a batch updates are row-locked first, in id order;
//! - provider keys (submit ↔ receipt correlation) and windowed MO identities are
//!   advisory-locked first, hashed, in sorted order;
//! - reference counters are row-locked by an upsert, destinations in sorted order;
//! - idempotency and exact dedupe keys are unique constraints.
//!
//! Consecutive requests of one kind are merged into one set, which changes
//! nothing: they are applied in order exactly as one request would be.

use std::collections::{HashMap, HashSet};

use futures_util::future::{try_join, try_join3};
use tokio_postgres::Client;

use super::error::{is_retryable, map_error};
use super::statements::Statements;
use crate::error::StoreError;
use crate::provider_id::{normalize, receipt_keys};
use crate::rules::{next_reference, windowed_key, windowed_range};
use crate::types::{
    InboundInserted, InboundKind, InboundUpdate, Inserted, MessageId, MessageState, NewInbound,
    NewMessage, Resubmit, Update,
};

pub(crate) type Reply<T> = tokio::sync::oneshot::Sender<Result<T, StoreError>>;

/// One caller's write, with where to send its answer.
pub(crate) enum WriteRequest {
    InsertMessages(Vec<NewMessage>, Reply<Vec<Inserted>>),
    Update(Vec<Update>, Reply<Vec<Resubmit>>),
    InsertInbound(Vec<NewInbound>, Reply<Vec<InboundInserted>>),
    UpdateInbound(Vec<InboundUpdate>, Reply<()>),
}

impl WriteRequest {
    fn kind(&self) -> u8 {
        match self {
            WriteRequest::InsertMessages(..) => 0,
            WriteRequest::Update(..) => 1,
            WriteRequest::InsertInbound(..) => 2,
            WriteRequest::UpdateInbound(..) => 3,
        }
    }
}

/// What one request produced inside a transaction, answered after the commit.
pub(crate) enum Output {
    Inserted(Vec<Inserted>),
    Inbound(Vec<InboundInserted>),
    Updated(Vec<Resubmit>),
    Done,
}

/// The time windows the writer applies (from [`PgOptions`](super::PgOptions)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub(crate) reference_window_ms: i64,
    pub(crate) correlation_wait_ms: i64,
}

/// A failed transaction: the error for the callers, and whether running the
/// same work again may succeed (it lost a deadlock or serialization race).
#[derive(Debug)]
pub(crate) struct TxError {
    pub(crate) error: StoreError,
    pub(crate) retryable: bool,
}

impl From<StoreError> for TxError {
    fn from(error: StoreError) -> Self {
        TxError {
            error,
            retryable: false,
        }
    }
}

/// `?` for driver results inside a transaction: keeps whether it may be retried.
trait Doing<T> {
    fn doing(self, doing: &str) -> Result<T, TxError>;
}

impl<T> Doing<T> for Result<T, tokio_postgres::Error> {
    fn doing(self, doing: &str) -> Result<T, TxError> {
        self.map_err(|error| TxError {
            retryable: is_retryable(&error),
            error: map_error(doing, &error),
        })
    }
}

/// Counter changes of one transaction, written to `counters` with it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Delta {
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

    /// Whether the transaction stored a new message or inbound row.
    pub(crate) fn added_rows(&self) -> bool {
        self.inbound_total > 0 || self.states.iter().sum::<i64>() > 0
    }

    /// The non-zero changes as (name, delta) columns, sorted by name.
    fn rows(&self) -> (Vec<String>, Vec<i64>) {
        let mut rows: Vec<(&str, i64)> = MessageState::ALL
            .into_iter()
            .map(|state| (state.as_str(), self.states[state.index()]))
            .chain([
                ("inbound_pending", self.inbound_pending),
                ("inbound_total", self.inbound_total),
                ("receipts_uncorrelated", self.receipts_uncorrelated),
            ])
            .filter(|(_, delta)| *delta != 0)
            .collect();
        rows.sort_unstable();
        rows.into_iter()
            .map(|(name, delta)| (name.to_owned(), delta))
            .unzip()
    }
}

/// A lock key's namespace: advisory locks are per database, the schema is part
/// of the key so stores in other schemas never wait on these.
fn lock_key(schema: &str, class: &str, key: &str) -> String {
    format!("{schema}\u{1f}{class}\u{1f}{key}")
}

/// One transaction in progress.
pub(crate) struct Work<'a> {
    pub(crate) client: &'a Client,
    pub(crate) st: &'a Statements,
    pub(crate) schema: &'a str,
    pub(crate) writer: &'a str,
    pub(crate) policy: Policy,
    pub(crate) delta: Delta,
    /// The latest time any request carried: "now" for pruning.
    pub(crate) latest_ms: i64,
    /// The messages the batch's updates name that exist (locked).
    existing: HashSet<i64>,
}

impl<'a> Work<'a> {
    pub(crate) fn new(
        client: &'a Client,
        st: &'a Statements,
        schema: &'a str,
        writer: &'a str,
        policy: Policy,
        latest_ms: i64,
    ) -> Work<'a> {
        Work {
            client,
            st,
            schema,
            writer,
            policy,
            delta: Delta::default(),
            latest_ms,
            existing: HashSet::new(),
        }
    }

    /// BEGIN, then every lock the requests need that can be known up front.
    pub(crate) async fn begin(&mut self, requests: &[&WriteRequest]) -> Result<(), TxError> {
        let mut keys = Vec::new();
        let mut ids = Vec::new();
        for request in requests {
            match request {
                WriteRequest::Update(updates, _) => {
                    for update in updates {
                        ids.push(update.id().0);
                        if let Update::Submitted {
                            provider_message_id,
                            ..
                        } = update
                        {
                            keys.push(lock_key(self.schema, "p", &normalize(provider_message_id)));
                        }
                    }
                }
                WriteRequest::InsertInbound(items, _) => {
                    for item in items {
                        if let (InboundKind::Receipt, Some(id)) =
                            (item.kind, &item.provider_message_id)
                        {
                            for key in receipt_keys(id, item.id_format) {
                                keys.push(lock_key(self.schema, "p", &key));
                            }
                        }
                        if item.dedupe_window_ms.is_some() {
                            keys.push(lock_key(self.schema, "m", &item.dedupe_key));
                        }
                    }
                }
                WriteRequest::InsertMessages(..) | WriteRequest::UpdateInbound(..) => {}
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let client = self.client;
        let st = self.st;
        let (_, _, locked) = try_join3(
            client.batch_execute("BEGIN"),
            async {
                if keys.is_empty() {
                    Ok(0)
                } else {
                    client.execute(&st.lock_keys, &[&keys]).await
                }
            },
            async {
                if ids.is_empty() {
                    Ok(Vec::new())
                } else {
                    client.query(&st.lock_messages, &[&ids]).await
                }
            },
        ).await
        .doing("starting a write transaction")?;
        for row in locked {
            self.existing
                .insert(row.try_get(0).doing("locking messages")?);
        }
        Ok(())
    }

    /// Applies the requests in order; answers one output per request.
    pub(crate) async fn apply(
        &mut self,
        requests: &[&WriteRequest],
    ) -> Result<Vec<Output>, TxError> {
        let mut outputs = Vec::with_capacity(requests.len());
        let mut start = 0;
        while start < requests.len() {
            let kind = requests[start].kind();
            let end = start
                + requests[start..]
                    .iter()
                    .take_while(|request| request.kind() == kind)
                    .count();
            let run = &requests[start..end];
            match run[0] {
                WriteRequest::InsertMessages(..) => {
                    let batch: Vec<&NewMessage> = run
                        .iter()
                        .flat_map(|request| match request {
                            WriteRequest::InsertMessages(batch, _) => batch.as_slice(),
                            _ => &[],
                        })
                        .collect();
                    let mut inserted = self.insert_messages(&batch).await?.into_iter();
                    for request in run {
                        if let WriteRequest::InsertMessages(batch, _) = request {
                            outputs.push(Output::Inserted(
                                inserted.by_ref().take(batch.len()).collect(),
                            ));
                        }
                    }
                }
                WriteRequest::Update(..) => {
                    let updates: Vec<&Update> = run
                        .iter()
                        .flat_map(|request| match request {
                            WriteRequest::Update(updates, _) => updates.as_slice(),
                            _ => &[],
                        })
                        .collect();
                    let mut resubmits = self.update(&updates).await?.into_iter();
                    for request in run {
                        if let WriteRequest::Update(updates, _) = request {
                            outputs.push(Output::Updated(
                                resubmits.by_ref().take(updates.len()).flatten().collect(),
                            ));
                        }
                    }
                }
                WriteRequest::InsertInbound(..) => {
                    let batch: Vec<&NewInbound> = run
                        .iter()
                        .flat_map(|request| match request {
                            WriteRequest::InsertInbound(batch, _) => batch.as_slice(),
                            _ => &[],
                        })
                        .collect();
                    let mut inserted = self.insert_inbound(&batch).await?.into_iter();
                    for request in run {
                        if let WriteRequest::InsertInbound(batch, _) = request {
                            outputs.push(Output::Inbound(
                                inserted.by_ref().take(batch.len()).collect(),
                            ));
                        }
                    }
                }
                WriteRequest::UpdateInbound(..) => {
                    let updates: Vec<InboundUpdate> = run
                        .iter()
                        .flat_map(|request| match request {
                            WriteRequest::UpdateInbound(updates, _) => updates.as_slice(),
                            _ => &[],
                        })
                        .copied()
                        .collect();
                    self.update_inbound(&updates).await?;
                    outputs.extend(run.iter().map(|_| Output::Done));
                }
            }
            start = end;
        }
        Ok(outputs)
    }

    /// Writes this transaction's counter changes and commits, in one round trip.
    pub(crate) async fn commit(&mut self, prune: Option<(&str, i64)>) -> Result<Option<String>, TxError> {
        let (names, deltas) = self.delta.rows();
        let client = self.client;
        let st = self.st;
        let writer = self.writer;
        let pruned = match prune {
            Some((after, stale_before_ms)) => {
                let row = client
                    .query_one(
                        &st.prune_destinations,
                        &[&after, &PRUNE_CHUNK, &stale_before_ms],
                    )
                    .await
                    .doing("pruning destination references")?;
                Some(
                    row.try_get::<_, Option<String>>(0)
                        .doing("pruning destination references")?
                        .unwrap_or_default(),
                )
            }
            None => None,
        };
        try_join(
            async {
                if names.is_empty() {
                    Ok(0)
                } else {
                    client
                        .execute(&st.add_counters, &[&writer, &names, &deltas])
                        .await
                }
            },
            client.batch_execute("COMMIT"),
        ).await
        .doing("committing")?;
        Ok(pruned)
    }

    async fn insert_messages(&mut self, batch: &[&NewMessage]) -> Result<Vec<Inserted>, TxError> {
        const DOING: &str = "inserting messages";
        // The first copy of each key is the one that may be stored.
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(batch.len());
        for (index, message) in batch.iter().enumerate() {
            first.entry(message.key.as_str()).or_insert(index);
            self.latest_ms = self.latest_ms.max(message.received_at_ms);
        }
        let keys: Vec<&str> = first.keys().copied().collect();
        let mut destinations: Vec<&str> = batch.iter().map(|m| m.destination.as_str()).collect();
        destinations.sort_unstable();
        destinations.dedup();
        let (existing_rows, counter_rows) = try_join(
            self.client.query(&self.st.ids_by_key, &[&keys]),
            self.client
                .query(&self.st.lock_destinations, &[&destinations]),
        ).await
        .doing(DOING)?;
        let mut ids: HashMap<String, i64> = HashMap::with_capacity(existing_rows.len());
        for row in &existing_rows {
            ids.insert(row.try_get(0).doing(DOING)?, row.try_get(1).doing(DOING)?);
        }
        let mut counters: HashMap<String, Option<(i64, i64)>> = HashMap::new();
        for row in &counter_rows {
            let updated_at_ms: i64 = row.try_get(2).doing(DOING)?;
            let last = (updated_at_ms != i64::MIN)
                .then(|| row.try_get(1).map(|last_ref| (last_ref, updated_at_ms)))
                .transpose()
                .doing(DOING)?;
            counters.insert(row.try_get(0).doing(DOING)?, last);
        }
        // SPEC M16: each new message takes its destination's next reference.
        let new: Vec<&NewMessage> = batch
            .iter()
            .enumerate()
            .filter(|(index, message)| {
                first.get(message.key.as_str()) == Some(index) && !ids.contains_key(&message.key)
            })
            .map(|(_, message)| *message)
            .collect();
        let mut references = Vec::with_capacity(new.len());
        let mut touched: Vec<&str> = Vec::new();
        for message in &new {
            let last = counters.entry(message.destination.clone()).or_insert(None);
            let (reference, updated_at_ms) = next_reference(
                &message.destination,
                *last,
                message.received_at_ms,
                self.policy.reference_window_ms,
            );
            *last = Some((reference, updated_at_ms));
            references.push(reference);
            touched.push(&message.destination);
        }
        touched.sort_unstable();
        touched.dedup();
        let (mut last_refs, mut updated) = (Vec::new(), Vec::new());
        for destination in &touched {
            let (last_ref, updated_at_ms) = counters
                .get(*destination)
                .copied()
                .flatten()
                .unwrap_or_default();
            last_refs.push(last_ref);
            updated.push(updated_at_ms);
        }
        let column = |f: &dyn Fn(&NewMessage) -> String| new.iter().map(|m| f(m)).collect::<Vec<_>>();
        let new_keys = column(&|m| m.key.clone());
        let sources = column(&|m| m.source.clone());
        let dests = column(&|m| m.destination.clone());
        let bodies: Vec<&[u8]> = new.iter().map(|m| m.body.as_slice()).collect();
        let codings: Vec<i64> = new.iter().map(|m| i64::from(m.data_coding)).collect();
        let routes = column(&|m| m.route.clone());
        let emails: Vec<Option<&str>> = new.iter().map(|m| m.email.as_deref()).collect();
        let ats: Vec<i64> = new.iter().map(|m| m.received_at_ms).collect();
        let (inserted_rows, _) = try_join(
            async {
                if new.is_empty() {
                    Ok(Vec::new())
                } else {
                    self.client
                        .query(
                            &self.st.insert_messages,
                            &[
                                &new_keys,
                                &sources,
                                &dests,
                                &bodies,
                                &codings,
                                &routes,
                                &emails,
                                &ats,
                                &references,
                            ],
                        )
                        .await
                }
            },
            async {
                if touched.is_empty() {
                    Ok(0)
                } else {
                    self.client
                        .execute(
                            &self.st.write_destinations,
                            &[&touched, &last_refs, &updated],
                        )
                        .await
                }
            },
        ).await
        .doing(DOING)?;
        let mut created: HashMap<String, i64> = HashMap::with_capacity(inserted_rows.len());
        for row in &inserted_rows {
            created.insert(row.try_get(0).doing(DOING)?, row.try_get(1).doing(DOING)?);
        }
        // Stored meanwhile by another gateway (its commit was awaited): existing.
        let raced: Vec<&str> = new
            .iter()
            .map(|m| m.key.as_str())
            .filter(|key| !created.contains_key(*key))
            .collect();
        if !raced.is_empty() {
            for row in self
                .client
                .query(&self.st.ids_by_key, &[&raced])
                .await
                .doing(DOING)?
            {
                ids.insert(row.try_get(0).doing(DOING)?, row.try_get(1).doing(DOING)?);
            }
        }
        for _ in 0..created.len() {
            self.delta.moved(None, MessageState::Queued);
        }
        batch
            .iter()
            .enumerate()
            .map(|(index, message)| {
                let key = message.key.as_str();
                match (created.get(key), ids.get(key)) {
                    (Some(id), _) if first.get(key) == Some(&index) => {
                        Ok(Inserted::Created(MessageId(*id)))
                    }
                    (Some(id), _) | (None, Some(id)) => Ok(Inserted::Existing(MessageId(*id))),
                    (None, None) => Err(TxError::from(StoreError::Database(format!(
                        "{DOING}: key {key:?} neither stored nor found"
                    )))),
                }
            })
            .collect()
    }

    /// Answers, per update, the resubmit it asks for.
    async fn update(&mut self, updates: &[&Update]) -> Result<Vec<Option<Resubmit>>, TxError> {
        // All or nothing: an unknown message fails the request before any change.
        if let Some(unknown) = updates
            .iter()
            .find(|update| !self.existing.contains(&update.id().0))
        {
            return Err(StoreError::UnknownMessage(unknown.id()).into());
        }
        let mut results = vec![None; updates.len()];
        let mut start = 0;
        while start < updates.len() {
            let (Update::Requeued { at_ms, .. }
            | Update::Failed { at_ms, .. }
            | Update::Fallback { at_ms, .. }
            | Update::Event { at_ms, .. }
            | Update::Submitted { at_ms, .. }) = updates[start];
            self.latest_ms = self.latest_ms.max(*at_ms);
            if !matches!(updates[start], Update::Submitted { .. }) {
                results[start] = self.update_one(updates[start]).await?;
                start += 1;
                continue;
            }
            // A run of submit responses on distinct messages with distinct
            // provider keys commutes: one set-based statement records them.
            let mut ids = HashSet::new();
            let mut keys = HashSet::new();
            let mut segment = Vec::new();
            for update in &updates[start..] {
                let Update::Submitted {
                    id,
                    provider_message_id,
                    site,
                    smsc,
                    at_ms,
                } = update
                else {
                    break;
                };
                let key = normalize(provider_message_id);
                if ids.contains(&id.0) || keys.contains(&key) {
                    break;
                }
                ids.insert(id.0);
                keys.insert(key.clone());
                self.latest_ms = self.latest_ms.max(*at_ms);
                segment.push(Submit {
                    id: *id,
                    provider_message_id,
                    site,
                    smsc,
                    at_ms: *at_ms,
                    key,
                });
            }
            let count = segment.len();
            let outcomes = self.submit_many(segment).await?;
            results[start..start + count].copy_from_slice(&outcomes);
            start += count;
        }
        Ok(results)
    }

    async fn submit_many(&mut self, segment: Vec<Submit<'_>>) -> Result<Vec<Option<Resubmit>>, TxError> {
        const DOING: &str = "recording submit responses";
        let ids: Vec<i64> = segment.iter().map(|s| s.id.0).collect();
        let provider_ids: Vec<&str> = segment.iter().map(|s| s.provider_message_id).collect();
        let sites: Vec<&str> = segment.iter().map(|s| s.site).collect();
        let smscs: Vec<&str> = segment.iter().map(|s| s.smsc).collect();
        let ats: Vec<i64> = segment.iter().map(|s| s.at_ms).collect();
        let keys: Vec<&str> = segment.iter().map(|s| s.key.as_str()).collect();
        let (recorded, stored) = try_join(
            self.client.query(
                &self.st.submit_unless_colliding,
                &[&ids, &provider_ids, &sites, &smscs, &ats, &keys],
            ),
            self.client.query(&self.st.stored_receipts, &[&keys]),
        ).await
        .doing(DOING)?;
        let mut submitted = HashSet::with_capacity(recorded.len());
        for row in &recorded {
            submitted.insert(row.try_get::<_, i64>(0).doing(DOING)?);
        }
        for _ in 0..submitted.len() {
            self.delta
                .moved(Some(MessageState::Queued), MessageState::Submitted);
        }
        let applied: Vec<&Submit<'_>> = segment
            .iter()
            .filter(|submit| submitted.contains(&submit.id.0))
            .collect();
        let stored = StoredReceipt::from_rows(&stored)?;
        self.apply_stored_receipts(&applied, stored).await?;
        // The rest, one by one as SQLite does: a collision, or not queued.
        let mut outcomes = Vec::with_capacity(segment.len());
        for submit in &segment {
            if submitted.contains(&submit.id.0) {
                outcomes.push(None);
            } else {
                outcomes.push(self.submit_slowly(submit).await?);
            }
        }
        Ok(outcomes)
    }

    /// A submit response the set-based statement did not record.
    async fn submit_slowly(&mut self, submit: &Submit<'_>) -> Result<Option<Resubmit>, TxError> {
        const DOING: &str = "recording a submit response";
        if let Some(resubmit) = self.collision(submit).await? {
            return Ok(Some(resubmit));
        }
        let recorded = self
            .client
            .query(
                &self.st.submit,
                &[
                    &[submit.id.0].as_slice(),
                    &[submit.provider_message_id].as_slice(),
                    &[submit.site].as_slice(),
                    &[submit.smsc].as_slice(),
                    &[submit.at_ms].as_slice(),
                    &[submit.key.as_str()].as_slice(),
                ],
            )
            .await
            .doing(DOING)?;
        if !recorded.is_empty() {
            self.delta
                .moved(Some(MessageState::Queued), MessageState::Submitted);
            let stored = self
                .client
                .query(&self.st.stored_receipts, &[&[submit.key.as_str()].as_slice()])
                .await
                .doing(DOING)?;
            let stored = StoredReceipt::from_rows(&stored)?;
            self.apply_stored_receipts(&[submit], stored).await?;
            return Ok(None);
        }
        let state = self.state(submit.id).await?;
        let detail = format!(
            "state={state} site={} smsc={} provider_message_id={}",
            submit.site, submit.smsc, submit.provider_message_id
        );
        try_join(
            self.client
                .execute(&self.st.touch, &[&submit.id.0, &submit.at_ms]),
            self.client.execute(
                &self.st.insert_event,
                &[&submit.id.0, &submit.at_ms, &"submit_ignored", &detail],
            ),
        ).await
        .doing(DOING)?;
        Ok(None)
    }

    /// SPEC M16: the provider answered with the id it gave another message to the
    /// same destination: it took this submit for a repeat and dropped it. See the
    /// SQLite writer's `collision`, which this mirrors.
    async fn collision(&mut self, submit: &Submit<'_>) -> Result<Option<Resubmit>, TxError> {
        const DOING: &str = "checking a provider id against other messages";
        let row = self
            .client
            .query_opt(&self.st.colliding_message, &[&submit.id.0, &submit.key])
            .await
            .doing(DOING)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let other: i64 = row.try_get(0).doing(DOING)?;
        let destination: String = row.try_get(1).doing(DOING)?;
        let old: Option<i64> = row.try_get(2).doing(DOING)?;
        let collisions: i64 = row.try_get(3).doing(DOING)?;
        if collisions >= 2 {
            // Sent without a reference and still answered with another message's
            // id: the provider's ids are not unique. Taken as sent.
            return Ok(None);
        }
        let id = submit.id;
        let old = match old {
            None => Some(id.legacy_reference()),
            Some(reference) => u16::try_from(reference).ok(),
        };
        let reference = if collisions == 0 {
            Some(self.allocate_reference(&destination, submit.at_ms).await? as u16)
        } else {
            None
        };
        let describe = |reference: Option<u16>| {
            reference.map_or_else(|| "no reference".to_owned(), |r| format!("reference {r}"))
        };
        let detail = format!(
            "the provider answered with provider_message_id={}, the id of message {other} to \
             the same destination: it took the submit with {} for a repeat and dropped it; \
             sending again with {}",
            submit.provider_message_id,
            describe(old),
            describe(reference)
        );
        try_join(
            self.client.execute(
                &self.st.new_reference,
                &[
                    &id.0,
                    &reference.map_or(-1, i64::from),
                    &(collisions + 1),
                    &submit.at_ms
                ],
            ),
            self.client.execute(
                &self.st.insert_event,
                &[&id.0, &submit.at_ms, &"reference_collision", &detail],
            ),
        ).await
        .doing(DOING)?;
        Ok(Some(Resubmit { id, reference }))
    }

    /// The next reference of one destination (SPEC M16).
    async fn allocate_reference(&mut self, destination: &str, at_ms: i64) -> Result<i64, TxError> {
        const DOING: &str = "allocating a message reference";
        let row = self
            .client
            .query_one(&self.st.lock_destinations, &[&[destination].as_slice()])
            .await
            .doing(DOING)?;
        let updated_at_ms: i64 = row.try_get(2).doing(DOING)?;
        let last = if updated_at_ms == i64::MIN {
            None
        } else {
            Some((row.try_get(1).doing(DOING)?, updated_at_ms))
        };
        let (reference, updated_at_ms) =
            next_reference(destination, last, at_ms, self.policy.reference_window_ms);
        self.client
            .execute(
                &self.st.write_destinations,
                &[
                    &[destination].as_slice(),
                    &[reference].as_slice(),
                    &[updated_at_ms].as_slice(),
                ],
            )
            .await
            .doing(DOING)?;
        Ok(reference)
    }

    /// Receipts that arrived before the submit responses: each goes to the first
    /// message (in request order) whose key it has, applied in arrival order, and
    /// is offered to the application with its message (SPEC M13).
    async fn apply_stored_receipts(
        &mut self,
        submits: &[&Submit<'_>],
        stored: Vec<StoredReceipt>,
    ) -> Result<(), TxError> {
        const DOING: &str = "applying stored receipts";
        if stored.is_empty() || submits.is_empty() {
            return Ok(());
        }
        let mut taken = HashSet::new();
        let mut assigned: Vec<(usize, &StoredReceipt)> = Vec::new();
        for (index, submit) in submits.iter().enumerate() {
            for receipt in &stored {
                if receipt.key == submit.key && taken.insert(receipt.inbound_id) {
                    assigned.push((index, receipt));
                }
            }
        }
        if assigned.is_empty() {
            return Ok(());
        }
        let inbound_ids: Vec<i64> = assigned.iter().map(|(_, r)| r.inbound_id).collect();
        let message_ids: Vec<i64> = assigned.iter().map(|(i, _)| submits[*i].id.0).collect();
        let ats: Vec<i64> = assigned.iter().map(|(i, _)| submits[*i].at_ms).collect();
        // Another gateway's submit under another of a receipt's keys may have
        // correlated it first: only what this statement correlated is applied.
        let correlated: HashSet<i64> = self
            .client
            .query(&self.st.correlate, &[&inbound_ids, &message_ids, &ats])
            .await
            .doing(DOING)?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()
            .doing(DOING)?;
        self.delta.receipts_uncorrelated -= correlated.len() as i64;
        let mut events = Events::default();
        let mut states = StateChanges::default();
        for (index, submit) in submits.iter().enumerate() {
            let mut state = MessageState::Submitted;
            let mut at_ms = None;
            for (_, receipt) in assigned
                .iter()
                .filter(|(i, r)| *i == index && correlated.contains(&r.inbound_id))
            {
                let provider_message_id = receipt
                    .provider_message_id
                    .as_deref()
                    .unwrap_or(&submit.key);
                events.push(
                    submit.id,
                    receipt.received_at_ms,
                    "receipt",
                    receipt_detail(
                        receipt.message_state,
                        &receipt.site,
                        &receipt.smsc,
                        provider_message_id,
                    ),
                );
                if let Some(to) = receipt.message_state.and_then(MessageState::from_receipt_state) {
                    if !state.is_final() {
                        self.delta.moved(Some(state), to);
                        state = to;
                    }
                }
                at_ms = Some(at_ms.unwrap_or(i64::MIN).max(receipt.received_at_ms));
            }
            if let Some(at_ms) = at_ms {
                states.push(submit.id, state, at_ms);
            }
        }
        let forget: Vec<i64> = correlated.into_iter().collect();
        try_join3(
            self.client.execute(&self.st.forget_receipt_keys, &[&forget]),
            events.write(self.client, self.st),
            states.write(self.client, self.st),
        ).await
        .doing(DOING)?;
        Ok(())
    }

    async fn state(&self, id: MessageId) -> Result<MessageState, TxError> {
        const DOING: &str = "reading a message's state";
        let row = self
            .client
            .query_opt(&self.st.message_state, &[&id.0])
            .await
            .doing(DOING)?;
        match row {
            Some(row) => parse_state(&row.try_get::<_, String>(0).doing(DOING)?),
            None => Err(StoreError::UnknownMessage(id).into()),
        }
    }

    /// Any update but a submit response, as the SQLite writer applies it.
    async fn update_one(&mut self, update: &Update) -> Result<Option<Resubmit>, TxError> {
        const DOING: &str = "updating a message";
        let (client, st) = (self.client, self.st);
        match update {
            Update::Submitted { .. } => unreachable!("submit responses go through submit_many"),
            Update::Requeued {
                id,
                kind,
                reason,
                at_ms,
            } => {
                try_join(
                    client.execute(&st.requeue, &[&id.0, at_ms]),
                    client.execute(&st.insert_event, &[&id.0, at_ms, kind, reason]),
                ).await
                .doing(DOING)?;
            }
            Update::Fallback {
                id,
                hop,
                reason,
                at_ms,
            } => {
                let moved = client
                    .execute(&st.fallback, &[&id.0, &i64::from(*hop), at_ms])
                    .await
                    .doing(DOING)?;
                if moved == 1 {
                    client
                        .execute(&st.insert_event, &[&id.0, at_ms, &"fallback", reason])
                        .await
                        .doing(DOING)?;
                } else {
                    let state = self.state(*id).await?;
                    let detail = format!("state={state}: {reason}");
                    try_join(
                        client.execute(&st.touch, &[&id.0, at_ms]),
                        client.execute(
                            &st.insert_event,
                            &[&id.0, at_ms, &"fallback_ignored", &detail]
                        ),
                    ).await
                    .doing(DOING)?;
                }
            }
            Update::Failed { id, reason, at_ms } => {
                let state = self.state(*id).await?;
                let mut changes = StateChanges::default();
                if state.is_final() {
                    changes.push(*id, state, *at_ms);
                } else {
                    self.delta.moved(Some(state), MessageState::Failed);
                    changes.push(*id, MessageState::Failed, *at_ms);
                }
                try_join(
                    changes.write(client, st),
                    client.execute(&st.insert_event, &[&id.0, at_ms, &"failed", reason]),
                ).await
                .doing(DOING)?;
            }
            Update::Event {
                id,
                kind,
                detail,
                at_ms,
            } => {
                try_join(
                    client.execute(&st.touch, &[&id.0, at_ms]),
                    client.execute(&st.insert_event, &[&id.0, at_ms, kind, detail]),
                ).await
                .doing(DOING)?;
            }
        }
        Ok(None)
    }

    async fn insert_inbound(
        &mut self,
        batch: &[&NewInbound],
    ) -> Result<Vec<InboundInserted>, TxError> {
        const DOING: &str = "inserting inbound items";
        let mut inserted = Vec::with_capacity(batch.len());
        let mut start = 0;
        while start < batch.len() {
            self.latest_ms = self.latest_ms.max(batch[start].received_at_ms);
            if let Some(window) = batch[start].dedupe_window_ms {
                // SPEC M8: a content key without an id is a repeat only within
                // its window of the first copy (the identity is locked).
                let item = batch[start];
                let (low, high) = windowed_range(&item.dedupe_key);
                let latest = self
                    .client
                    .query_opt(&self.st.latest_windowed, &[&low, &high])
                    .await
                    .doing(DOING)?;
                if let Some(row) = latest {
                    let id: i64 = row.try_get(0).doing(DOING)?;
                    let first_ms: i64 = row.try_get(1).doing(DOING)?;
                    if item.received_at_ms.saturating_sub(first_ms) <= window {
                        inserted.push(InboundInserted::Duplicate(id));
                        start += 1;
                        continue;
                    }
                }
                let key = windowed_key(&item.dedupe_key, item.received_at_ms);
                inserted.extend(self.insert_exact(&[(item, key)]).await?);
                start += 1;
                continue;
            }
            let end = start
                + batch[start..]
                    .iter()
                    .take_while(|item| item.dedupe_window_ms.is_none())
                    .count();
            let items: Vec<(&NewInbound, String)> = batch[start..end]
                .iter()
                .map(|item| {
                    self.latest_ms = self.latest_ms.max(item.received_at_ms);
                    (*item, item.dedupe_key.clone())
                })
                .collect();
            inserted.extend(self.insert_exact(&items).await?);
            start = end;
        }
        Ok(inserted)
    }

    /// Stores items under exact keys (a repeat answers the first copy's id) and
    /// correlates receipts with their messages (SPEC M8, M13, M1).
    async fn insert_exact(
        &mut self,
        items: &[(&NewInbound, String)],
    ) -> Result<Vec<InboundInserted>, TxError> {
        const DOING: &str = "inserting inbound items";
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(items.len());
        for (index, (_, key)) in items.iter().enumerate() {
            first.entry(key.as_str()).or_insert(index);
        }
        let keys: Vec<&str> = first.keys().copied().collect();
        // The keys a receipt's id may match under (SPEC M13), most likely first.
        let item_keys: Vec<Vec<String>> = items
            .iter()
            .map(|(item, _)| match (item.kind, &item.provider_message_id) {
                (InboundKind::Receipt, Some(id)) => receipt_keys(id, item.id_format),
                _ => Vec::new(),
            })
            .collect();
        let mut all_keys: Vec<&str> = item_keys.iter().flatten().map(String::as_str).collect();
        all_keys.sort_unstable();
        all_keys.dedup();
        let (existing_rows, message_rows) = try_join(
            self.client.query(&self.st.inbound_ids_by_key, &[&keys]),
            async {
                if all_keys.is_empty() {
                    Ok(Vec::new())
                } else {
                    self.client
                        .query(&self.st.messages_by_provider_keys, &[&all_keys])
                        .await
                }
            },
        ).await
        .doing(DOING)?;
        let mut ids: HashMap<String, i64> = HashMap::new();
        for row in &existing_rows {
            ids.insert(row.try_get(0).doing(DOING)?, row.try_get(1).doing(DOING)?);
        }
        let mut by_provider_key: HashMap<String, i64> = HashMap::new();
        for row in &message_rows {
            by_provider_key.insert(row.try_get(0).doing(DOING)?, row.try_get(1).doing(DOING)?);
        }
        // The items to store, with the message each receipt belongs to.
        let new: Vec<(usize, Option<i64>)> = items
            .iter()
            .enumerate()
            .filter(|(index, (_, key))| {
                first.get(key.as_str()) == Some(index) && !ids.contains_key(key)
            })
            .map(|(index, _)| {
                let message = item_keys[index]
                    .iter()
                    .find_map(|key| by_provider_key.get(key).copied());
                (index, message)
            })
            .collect();
        let mut message_ids: Vec<i64> = new.iter().filter_map(|(_, m)| *m).collect();
        message_ids.sort_unstable();
        message_ids.dedup();
        let column = |f: &dyn Fn(&NewInbound) -> String| {
            new.iter().map(|(i, _)| f(items[*i].0)).collect::<Vec<_>>()
        };
        let kinds = column(&|item| item.kind.as_str().to_owned());
        let dedupe_keys: Vec<&str> = new.iter().map(|(i, _)| items[*i].1.as_str()).collect();
        let provider_ids: Vec<Option<&str>> = new
            .iter()
            .map(|(i, _)| items[*i].0.provider_message_id.as_deref())
            .collect();
        let message_states: Vec<Option<i64>> = new
            .iter()
            .map(|(i, _)| items[*i].0.message_state.map(i64::from))
            .collect();
        let sources = column(&|item| item.source.clone());
        let destinations = column(&|item| item.destination.clone());
        let bodies: Vec<&[u8]> = new.iter().map(|(i, _)| items[*i].0.body.as_slice()).collect();
        let sites = column(&|item| item.site.clone());
        let smscs = column(&|item| item.smsc.clone());
        let received: Vec<i64> = new.iter().map(|(i, _)| items[*i].0.received_at_ms).collect();
        let messages: Vec<Option<i64>> = new.iter().map(|(_, m)| *m).collect();
        // A receipt that matches no message yet waits for its submit response
        // before it is offered to the application, uncorrelated (SPEC M13).
        let next_attempts: Vec<i64> = new
            .iter()
            .map(|(i, message)| {
                let item = items[*i].0;
                if item.kind == InboundKind::Receipt && message.is_none() {
                    item.received_at_ms
                        .saturating_add(self.policy.correlation_wait_ms)
                } else {
                    item.received_at_ms
                }
            })
            .collect();
        let (state_rows, inserted_rows) = try_join(
            async {
                if message_ids.is_empty() {
                    Ok(Vec::new())
                } else {
                    self.client
                        .query(&self.st.lock_message_states, &[&message_ids])
                        .await
                }
            },
            async {
                if new.is_empty() {
                    Ok(Vec::new())
                } else {
                    self.client
                        .query(
                            &self.st.insert_inbound,
                            &[
                                &kinds,
                                &dedupe_keys,
                                &provider_ids,
                                &message_states,
                                &sources,
                                &destinations,
                                &bodies,
                                &sites,
                                &smscs,
                                &received,
                                &messages,
                                &next_attempts,
                            ],
                        )
                        .await
                }
            },
        ).await
        .doing(DOING)?;
        let mut states: HashMap<i64, MessageState> = HashMap::new();
        for row in &state_rows {
            let state: String = row.try_get(1).doing(DOING)?;
            states.insert(row.try_get(0).doing(DOING)?, parse_state(&state)?);
        }
        let mut created: HashMap<String, i64> = HashMap::new();
        for row in &inserted_rows {
            created.insert(row.try_get(0).doing(DOING)?, row.try_get(1).doing(DOING)?);
        }
        // Stored meanwhile by another gateway (its commit was awaited): repeats.
        let raced: Vec<&str> = dedupe_keys
            .iter()
            .copied()
            .filter(|key| !created.contains_key(*key))
            .collect();
        if !raced.is_empty() {
            for row in self
                .client
                .query(&self.st.inbound_ids_by_key, &[&raced])
                .await
                .doing(DOING)?
            {
                ids.insert(row.try_get(0).doing(DOING)?, row.try_get(1).doing(DOING)?);
            }
        }
        self.delta.inbound_total += created.len() as i64;
        self.delta.inbound_pending += created.len() as i64;
        let mut events = Events::default();
        let mut touched: Vec<(MessageId, i64)> = Vec::new();
        let (mut receipt_key_keys, mut receipt_key_ids) = (Vec::new(), Vec::new());
        for (index, message) in &new {
            let (item, key) = &items[*index];
            let Some(inbound_id) = created.get(key.as_str()) else {
                continue;
            };
            match (message, &item.provider_message_id) {
                (Some(message), Some(provider_message_id)) => {
                    let id = MessageId(*message);
                    events.push(
                        id,
                        item.received_at_ms,
                        "receipt",
                        receipt_detail(
                            item.message_state,
                            &item.site,
                            &item.smsc,
                            provider_message_id,
                        ),
                    );
                    let state = states
                        .get_mut(message)
                        .ok_or_else(|| StoreError::UnknownMessage(id))?;
                    if let Some(to) = item
                        .message_state
                        .and_then(MessageState::from_receipt_state)
                    {
                        if !state.is_final() {
                            self.delta.moved(Some(*state), to);
                            *state = to;
                        }
                    }
                    touched.push((id, item.received_at_ms));
                }
                _ if item.kind == InboundKind::Receipt => {
                    // SPEC M13: kept, counted, and found by any of its keys
                    // when the submit response comes.
                    self.delta.receipts_uncorrelated += 1;
                    for key in &item_keys[*index] {
                        receipt_key_keys.push(key.as_str());
                        receipt_key_ids.push(*inbound_id);
                    }
                }
                _ => {}
            }
        }
        let mut changes = StateChanges::default();
        for (id, at_ms) in touched {
            changes.push(id, states[&id.0], at_ms);
        }
        try_join3(
            events.write(self.client, self.st),
            changes.write(self.client, self.st),
            async {
                if receipt_key_keys.is_empty() {
                    Ok(0)
                } else {
                    self.client
                        .execute(
                            &self.st.insert_receipt_keys,
                            &[&receipt_key_keys, &receipt_key_ids],
                        )
                        .await
                }
            },
        ).await
        .doing(DOING)?;
        items
            .iter()
            .enumerate()
            .map(|(index, (_, key))| {
                match (created.get(key.as_str()), ids.get(key.as_str())) {
                    (Some(id), _) if first.get(key.as_str()) == Some(&index) => {
                        Ok(InboundInserted::Created(*id))
                    }
                    (Some(id), _) | (None, Some(id)) => Ok(InboundInserted::Duplicate(*id)),
                    (None, None) => Err(TxError::from(StoreError::Database(format!(
                        "{DOING}: key {key:?} neither stored nor found"
                    )))),
                }
            })
            .collect()
    }

    async fn update_inbound(&mut self, updates: &[InboundUpdate]) -> Result<(), TxError> {
        const DOING: &str = "updating inbound items";
        let id = |update: &InboundUpdate| match update {
            InboundUpdate::Delivered { id, .. } | InboundUpdate::Retry { id, .. } => *id,
        };
        let mut seen = HashSet::new();
        let distinct = updates.iter().all(|update| seen.insert(id(update)));
        // Distinct items commute: one statement per kind. Otherwise in order.
        let chunks: Vec<&[InboundUpdate]> = if distinct {
            vec![updates]
        } else {
            updates.chunks(1).collect()
        };
        let mut changed = HashSet::new();
        for chunk in chunks {
            let (mut delivered, mut delivered_at) = (Vec::new(), Vec::new());
            let (mut retried, mut next_attempts) = (Vec::new(), Vec::new());
            for update in chunk {
                match *update {
                    InboundUpdate::Delivered { id, at_ms } => {
                        delivered.push(id);
                        delivered_at.push(at_ms);
                    }
                    InboundUpdate::Retry {
                        id,
                        next_attempt_at_ms,
                    } => {
                        retried.push(id);
                        next_attempts.push(next_attempt_at_ms);
                    }
                }
            }
            let (delivered_rows, retried_rows) = try_join(
                async {
                    if delivered.is_empty() {
                        Ok(Vec::new())
                    } else {
                        self.client
                            .query(&self.st.deliver_inbound, &[&delivered, &delivered_at])
                            .await
                    }
                },
                async {
                    if retried.is_empty() {
                        Ok(Vec::new())
                    } else {
                        self.client
                            .query(&self.st.retry_inbound, &[&retried, &next_attempts])
                            .await
                    }
                },
            ).await
            .doing(DOING)?;
            self.delta.inbound_pending -= delivered_rows.len() as i64;
            for row in delivered_rows.iter().chain(&retried_rows) {
                changed.insert(row.try_get::<_, i64>(0).doing(DOING)?);
            }
        }
        // Already delivered is fine (idempotent); unknown is a caller's mistake.
        let unchanged: Vec<i64> = updates
            .iter()
            .map(id)
            .filter(|id| !changed.contains(id))
            .collect();
        if !unchanged.is_empty() {
            let found: HashSet<i64> = self
                .client
                .query(&self.st.inbound_exists, &[&unchanged])
                .await
                .doing(DOING)?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()
                .doing(DOING)?;
            if let Some(unknown) = unchanged.iter().find(|id| !found.contains(id)) {
                return Err(StoreError::UnknownInbound(*unknown).into());
            }
        }
        Ok(())
    }
}

/// Destination counters pruned per chunk (see the SQLite writer).
pub(crate) const PRUNE_CHUNK: i64 = 2_000;

/// A submit response being recorded.
struct Submit<'a> {
    id: MessageId,
    provider_message_id: &'a str,
    site: &'a str,
    smsc: &'a str,
    at_ms: i64,
    /// `provider_message_id` normalized.
    key: String,
}

/// A receipt stored uncorrelated, found under `key`.
struct StoredReceipt {
    key: String,
    inbound_id: i64,
    message_state: Option<u8>,
    site: String,
    smsc: String,
    received_at_ms: i64,
    provider_message_id: Option<String>,
}

impl StoredReceipt {
    fn from_rows(rows: &[tokio_postgres::Row]) -> Result<Vec<StoredReceipt>, TxError> {
        const DOING: &str = "reading stored receipts";
        rows.iter()
            .map(|row| {
                let message_state: Option<i64> = row.try_get(2).doing(DOING)?;
                Ok(StoredReceipt {
                    key: row.try_get(0).doing(DOING)?,
                    inbound_id: row.try_get(1).doing(DOING)?,
                    message_state: message_state.and_then(|value| u8::try_from(value).ok()),
                    site: row.try_get(3).doing(DOING)?,
                    smsc: row.try_get(4).doing(DOING)?,
                    received_at_ms: row.try_get(5).doing(DOING)?,
                    provider_message_id: row.try_get(6).doing(DOING)?,
                })
            })
            .collect()
    }
}

fn receipt_detail(
    message_state: Option<u8>,
    site: &str,
    smsc: &str,
    provider_message_id: &str,
) -> String {
    let message_state = message_state.map_or_else(|| "-".to_owned(), |value| value.to_string());
    format!(
        "message_state={message_state} site={site} smsc={smsc} provider_message_id={provider_message_id}"
    )
}

/// History lines to insert, in order.
#[derive(Default)]
struct Events {
    message_ids: Vec<i64>,
    ats: Vec<i64>,
    kinds: Vec<&'static str>,
    details: Vec<String>,
}

impl Events {
    fn push(&mut self, id: MessageId, at_ms: i64, kind: &'static str, detail: String) {
        self.message_ids.push(id.0);
        self.ats.push(at_ms);
        self.kinds.push(kind);
        self.details.push(detail);
    }

    async fn write(&self, client: &Client, st: &Statements) -> Result<u64, tokio_postgres::Error> {
        if self.message_ids.is_empty() {
            return Ok(0);
        }
        client
            .execute(
                &st.insert_events,
                &[&self.message_ids, &self.ats, &self.kinds, &self.details],
            )
            .await
    }
}

/// New states and times of messages, one row per message (the last wins).
#[derive(Default)]
struct StateChanges {
    rows: Vec<(i64, MessageState, i64)>,
    index: HashMap<i64, usize>,
}

impl StateChanges {
    fn push(&mut self, id: MessageId, state: MessageState, at_ms: i64) {
        match self.index.get(&id.0) {
            Some(&index) => {
                let row = &mut self.rows[index];
                row.1 = state;
                row.2 = row.2.max(at_ms);
            }
            None => {
                self.index.insert(id.0, self.rows.len());
                self.rows.push((id.0, state, at_ms));
            }
        }
    }

    async fn write(&self, client: &Client, st: &Statements) -> Result<u64, tokio_postgres::Error> {
        if self.rows.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = self.rows.iter().map(|row| row.0).collect();
        let states: Vec<&str> = self.rows.iter().map(|row| row.1.as_str()).collect();
        let ats: Vec<i64> = self.rows.iter().map(|row| row.2).collect();
        client
            .execute(&st.set_messages, &[&ids, &states, &ats])
            .await
    }
}

fn parse_state(text: &str) -> Result<MessageState, TxError> {
    MessageState::parse(text).ok_or_else(|| {
        StoreError::Corrupt(format!("reading a message: unknown state {text:?}")).into()
    })
}
