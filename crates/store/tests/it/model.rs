//! Model test (STYLE.md, after vector's disk buffer): random sequences of operations
//! run against the real store and against a plain in-memory model; states, counts,
//! queue, pending inbound and every history must match, across reopens.
//! Covers SPEC M8 (keys and dedupe keys accepted once), M9 (reopen keeps everything)
//! and M13 (receipts before/after the submit, recorded all, final state once).

use std::collections::HashMap;
use std::path::Path;

use hotsite_store::{
    EventRecord, InboundInserted, InboundKind, InboundUpdate, Inserted, MessageId, MessageState,
    MessageView, NewInbound, NewMessage, PendingInbound, PgStore, ReceiptIdFormat, SqliteOptions,
    SqliteStore, Update,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::{AnyStore, Opts, PgSchema};

#[derive(Debug, Clone)]
enum Op {
    Insert(Vec<(u8, u8)>),
    Submit { message: u8, site: u8 },
    Requeue { message: u8 },
    Fallback { message: u8 },
    Fail { message: u8 },
    Event { message: u8 },
    Receipt { target: u8, state: u8, dedupe: u8 },
    Mo { dedupe: u8 },
    Delivered { item: u8 },
    Retry { item: u8, delay: u8 },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec((0..12u8, any::<u8>()), 1..5).prop_map(Op::Insert),
        4 => (any::<u8>(), 0..2u8).prop_map(|(message, site)| Op::Submit { message, site }),
        1 => any::<u8>().prop_map(|message| Op::Requeue { message }),
        1 => any::<u8>().prop_map(|message| Op::Fallback { message }),
        1 => any::<u8>().prop_map(|message| Op::Fail { message }),
        1 => any::<u8>().prop_map(|message| Op::Event { message }),
        4 => (0..14u8, prop::sample::select(vec![1u8, 2, 3, 5, 6, 8]), 0..20u8)
            .prop_map(|(target, state, dedupe)| Op::Receipt { target, state, dedupe }),
        1 => (0..6u8).prop_map(|dedupe| Op::Mo { dedupe }),
        1 => any::<u8>().prop_map(|item| Op::Delivered { item }),
        1 => (any::<u8>(), 0..3u8).prop_map(|(item, delay)| Op::Retry { item, delay }),
        1 => Just(Op::Reopen),
    ]
}

struct ModelMessage {
    new: NewMessage,
    state: MessageState,
    attempts: u32,
    hop: u32,
    submitted: Option<(String, String, String)>,
    updated_at_ms: i64,
    events: Vec<EventRecord>,
}

struct ModelInbound {
    new: NewInbound,
    message_id: Option<MessageId>,
    delivered: bool,
    attempts: u32,
    next_attempt_at_ms: i64,
}

#[derive(Default)]
struct Model {
    messages: Vec<ModelMessage>,
    by_key: HashMap<String, MessageId>,
    inbound: Vec<ModelInbound>,
    by_dedupe: HashMap<String, i64>,
}

fn event(at_ms: i64, kind: &str, detail: String) -> EventRecord {
    EventRecord {
        at_ms,
        kind: kind.to_owned(),
        detail,
    }
}

impl Model {
    fn message(&mut self, id: MessageId) -> &mut ModelMessage {
        &mut self.messages[id.0 as usize - 1]
    }

    fn pick(&self, index: u8) -> Option<MessageId> {
        (!self.messages.is_empty())
            .then(|| MessageId(i64::from(index) % self.messages.len() as i64 + 1))
    }

    fn insert(&mut self, batch: &[NewMessage]) -> Vec<Inserted> {
        batch
            .iter()
            .map(|new| match self.by_key.get(&new.key) {
                Some(id) => Inserted::Existing(*id),
                None => {
                    let id = MessageId(self.messages.len() as i64 + 1);
                    self.by_key.insert(new.key.clone(), id);
                    self.messages.push(ModelMessage {
                        new: new.clone(),
                        state: MessageState::Queued,
                        attempts: 0,
                        hop: 0,
                        submitted: None,
                        updated_at_ms: new.received_at_ms,
                        events: vec![event(
                            new.received_at_ms,
                            "accepted",
                            format!("key={}", new.key),
                        )],
                    });
                    Inserted::Created(id)
                }
            })
            .collect()
    }

    fn touch(&mut self, id: MessageId, at_ms: i64) {
        let message = self.message(id);
        message.updated_at_ms = message.updated_at_ms.max(at_ms);
    }

    fn update(&mut self, update: &Update) {
        match update {
            Update::Submitted {
                id,
                provider_message_id,
                site,
                smsc,
                at_ms,
            } => {
                let message = self.message(*id);
                if message.state == MessageState::Queued {
                    message.state = MessageState::Submitted;
                    message.submitted =
                        Some((provider_message_id.clone(), site.clone(), smsc.clone()));
                    message.events.push(event(
                        *at_ms,
                        "submitted",
                        format!(
                            "site={site} smsc={smsc} provider_message_id={provider_message_id}"
                        ),
                    ));
                    self.touch(*id, *at_ms);
                    let waiting: Vec<usize> = (0..self.inbound.len())
                        .filter(|&i| {
                            let item = &self.inbound[i];
                            item.new.kind == InboundKind::Receipt
                                && item.message_id.is_none()
                                && item.new.provider_message_id.as_ref()
                                    == Some(provider_message_id)
                        })
                        .collect();
                    for index in waiting {
                        self.inbound[index].message_id = Some(*id);
                        let receipt = self.inbound[index].new.clone();
                        self.apply_receipt(*id, &receipt);
                    }
                } else {
                    let state = message.state;
                    message.events.push(event(
                        *at_ms,
                        "submit_ignored",
                        format!(
                            "state={state} site={site} smsc={smsc} provider_message_id={provider_message_id}"
                        ),
                    ));
                    self.touch(*id, *at_ms);
                }
            }
            Update::Requeued {
                id,
                kind,
                reason,
                at_ms,
            } => {
                let message = self.message(*id);
                message.attempts += 1;
                message.events.push(event(*at_ms, kind, reason.clone()));
                self.touch(*id, *at_ms);
            }
            Update::Fallback {
                id,
                hop,
                reason,
                at_ms,
            } => {
                let message = self.message(*id);
                if message.state == MessageState::Queued {
                    message.hop = *hop;
                    message.attempts = 0;
                    message
                        .events
                        .push(event(*at_ms, "fallback", reason.clone()));
                } else {
                    let detail = format!("state={}: {reason}", message.state);
                    message
                        .events
                        .push(event(*at_ms, "fallback_ignored", detail));
                }
                self.touch(*id, *at_ms);
            }
            Update::Failed { id, reason, at_ms } => {
                let message = self.message(*id);
                if !message.state.is_final() {
                    message.state = MessageState::Failed;
                }
                message.events.push(event(*at_ms, "failed", reason.clone()));
                self.touch(*id, *at_ms);
            }
            Update::Event {
                id,
                kind,
                detail,
                at_ms,
            } => {
                self.message(*id)
                    .events
                    .push(event(*at_ms, kind, detail.clone()));
                self.touch(*id, *at_ms);
            }
        }
    }

    fn apply_receipt(&mut self, id: MessageId, receipt: &NewInbound) {
        let message = self.message(id);
        message.events.push(event(
            receipt.received_at_ms,
            "receipt",
            format!(
                "message_state={} site={} smsc={} provider_message_id={}",
                receipt.message_state.unwrap(),
                receipt.site,
                receipt.smsc,
                receipt.provider_message_id.as_deref().unwrap()
            ),
        ));
        if let Some(to) = receipt
            .message_state
            .and_then(MessageState::from_receipt_state)
        {
            if !message.state.is_final() {
                message.state = to;
            }
        }
        self.touch(id, receipt.received_at_ms);
    }

    fn insert_inbound(&mut self, batch: &[NewInbound]) -> Vec<InboundInserted> {
        let mut out = Vec::new();
        for new in batch {
            if let Some(id) = self.by_dedupe.get(&new.dedupe_key) {
                out.push(InboundInserted::Duplicate(*id));
                continue;
            }
            let id = self.inbound.len() as i64 + 1;
            self.by_dedupe.insert(new.dedupe_key.clone(), id);
            let message_id = match (&new.kind, &new.provider_message_id) {
                (InboundKind::Receipt, Some(pid)) => self
                    .messages
                    .iter()
                    .rposition(|m| m.submitted.as_ref().is_some_and(|(p, _, _)| p == pid))
                    .map(|index| MessageId(index as i64 + 1)),
                _ => None,
            };
            self.inbound.push(ModelInbound {
                new: new.clone(),
                message_id,
                delivered: false,
                attempts: 0,
                next_attempt_at_ms: new.received_at_ms,
            });
            if let Some(message_id) = message_id {
                self.apply_receipt(message_id, new);
            }
            out.push(InboundInserted::Created(id));
        }
        out
    }

    fn update_inbound(&mut self, update: InboundUpdate) {
        match update {
            InboundUpdate::Delivered { id, .. } => {
                self.inbound[id as usize - 1].delivered = true;
            }
            InboundUpdate::Retry {
                id,
                next_attempt_at_ms,
            } => {
                let item = &mut self.inbound[id as usize - 1];
                if !item.delivered {
                    item.attempts += 1;
                    item.next_attempt_at_ms = next_attempt_at_ms;
                }
            }
        }
    }

    fn view(&self, index: usize) -> MessageView {
        let message = &self.messages[index];
        let (provider_message_id, site, smsc) = match &message.submitted {
            Some((p, s, c)) => (Some(p.clone()), Some(s.clone()), Some(c.clone())),
            None => (None, None, None),
        };
        MessageView {
            id: MessageId(index as i64 + 1),
            key: message.new.key.clone(),
            source: message.new.source.clone(),
            destination: message.new.destination.clone(),
            body: message.new.body.clone(),
            data_coding: message.new.data_coding,
            state: message.state,
            attempts: message.attempts,
            route: message.new.route.clone(),
            hop: message.hop,
            email: message.new.email.clone(),
            provider_message_id,
            site,
            smsc,
            created_at_ms: message.new.received_at_ms,
            updated_at_ms: message.updated_at_ms,
            events: message.events.clone(),
        }
    }

    fn pending(&self, now_ms: i64) -> Vec<PendingInbound> {
        self.inbound
            .iter()
            .enumerate()
            .filter(|(_, item)| !item.delivered && item.next_attempt_at_ms <= now_ms)
            .map(|(index, item)| PendingInbound {
                id: index as i64 + 1,
                kind: item.new.kind,
                provider_message_id: item.new.provider_message_id.clone(),
                message_state: item.new.message_state,
                message_id: item.message_id,
                source: item.new.source.clone(),
                destination: item.new.destination.clone(),
                body: item.new.body.clone(),
                site: item.new.site.clone(),
                smsc: item.new.smsc.clone(),
                attempts: item.attempts,
                received_at_ms: item.new.received_at_ms,
            })
            .collect()
    }
}

/// Where a case's store lives.
#[derive(Clone, Copy)]
enum Place<'a> {
    Sqlite(&'a Path),
    /// One schema for every case, emptied before each.
    Pg(&'a PgSchema),
}

impl Place<'_> {
    async fn open(self) -> AnyStore {
        match self {
            // NORMAL keeps the model test fast; durability across reopen is what
            // it checks.
            Place::Sqlite(path) => AnyStore::Sqlite(
                SqliteStore::open(
                    path,
                    SqliteOptions {
                        synchronous_full: false,
                        readers: 1,
                        // The model offers receipts at once; the wait for a late
                        // submit response has tests of its own (receipts.rs).
                        receipt_correlation_wait_ms: 0,
                        ..SqliteOptions::default()
                    },
                )
                .unwrap(),
            ),
            Place::Pg(schema) => AnyStore::Pg(
                PgStore::connect(schema.options(Opts {
                    receipt_correlation_wait_ms: 0,
                    ..Opts::default()
                }))
                .await
                .unwrap(),
            ),
        }
    }
}

async fn check(store: &AnyStore, model: &Model, now_ms: i64) {
    for index in 0..model.messages.len() {
        let expected = model.view(index);
        let actual = store.message(expected.id).await.unwrap();
        assert_eq!(actual.as_ref(), Some(&expected));
        let by_key = store.message_by_key(&expected.key).await.unwrap();
        assert_eq!(by_key.as_ref(), Some(&expected));
    }
    // The queue, paged with a cursor.
    let mut queue = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.queued_after(cursor, 3).await.unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some(last.id);
        queue.extend(
            page.into_iter()
                .map(|q| (q.id, q.attempts, q.hop, q.route, q.email)),
        );
    }
    let expected_queue: Vec<_> = (0..model.messages.len())
        .map(|index| model.view(index))
        .filter(|view| view.state == MessageState::Queued)
        // References are allocated per destination (tests in references.rs).
        .map(|view| (view.id, view.attempts, view.hop, view.route, view.email))
        .collect();
    assert_eq!(queue, expected_queue);
    assert_eq!(
        store.pending_inbound(now_ms, 10_000).await.unwrap(),
        model.pending(now_ms)
    );
    let stats = store.stats().await.unwrap();
    let count = |wanted: &dyn Fn(MessageState) -> bool| {
        model.messages.iter().filter(|m| wanted(m.state)).count() as u64
    };
    assert_eq!(stats.queued, count(&|s| s == MessageState::Queued));
    // The first-accepted message still queued: ids ascend in acceptance order.
    assert_eq!(
        stats.oldest_queued_at_ms,
        model
            .messages
            .iter()
            .find(|m| m.state == MessageState::Queued)
            .map(|m| m.new.received_at_ms)
    );
    assert_eq!(stats.submitted, count(&|s| s == MessageState::Submitted));
    assert_eq!(stats.failed, count(&|s| s == MessageState::Failed));
    assert_eq!(stats.final_states, count(&|s| s.is_final()));
    assert_eq!(stats.inbound_total, model.inbound.len() as u64);
    assert_eq!(
        stats.inbound_pending,
        model.inbound.iter().filter(|i| !i.delivered).count() as u64
    );
}

async fn run(ops: Vec<Op>, place: Place<'_>) {
    let mut store = place.open().await;
    if let Place::Pg(schema) = place {
        // A fresh case: no rows, ids from 1, as a new file.
        schema
            .client()
            .await
            .batch_execute(
                "TRUNCATE messages, events, inbound, receipt_keys, destination_refs, counters \
                 RESTART IDENTITY",
            )
            .await
            .unwrap();
    }
    let mut model = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        let now = step as i64 * 10 + 10;
        match op {
            Op::Insert(keys) => {
                let batch: Vec<NewMessage> = keys
                    .into_iter()
                    .map(|(key, body)| NewMessage {
                        key: format!("key-{key}"),
                        source: "src".to_owned(),
                        destination: format!("+46{key}"),
                        body: vec![body; usize::from(body % 7)],
                        data_coding: body % 3,
                        route: if key % 2 == 0 {
                            String::new()
                        } else {
                            "chat".to_owned()
                        },
                        email: (key % 3 == 0).then(|| format!("u{key}@example.com")),
                        received_at_ms: now,
                    })
                    .collect();
                let actual = store.insert_messages(batch.clone()).await.unwrap();
                assert_eq!(actual, model.insert(&batch));
            }
            Op::Submit { message, site } => {
                let Some(id) = model.pick(message) else {
                    continue;
                };
                let update = Update::Submitted {
                    id,
                    provider_message_id: format!("P{}", id.0),
                    site: format!("site{site}"),
                    smsc: format!("smsc{site}"),
                    at_ms: now,
                };
                store.update(vec![update.clone()]).await.unwrap();
                model.update(&update);
            }
            Op::Requeue { message }
            | Op::Fallback { message }
            | Op::Fail { message }
            | Op::Event { message } => {
                let Some(id) = model.pick(message) else {
                    continue;
                };
                let update = match op {
                    Op::Requeue { .. } => Update::Requeued {
                        id,
                        kind: if step % 2 == 0 { "requeued" } else { "timeout" }.to_owned(),
                        reason: format!("ambiguous at {now}"),
                        at_ms: now,
                    },
                    Op::Fallback { .. } => Update::Fallback {
                        id,
                        hop: (step % 3) as u32 + 1,
                        reason: format!("budget spent at {now}"),
                        at_ms: now,
                    },
                    Op::Fail { .. } => Update::Failed {
                        id,
                        reason: "rejected".to_owned(),
                        at_ms: now,
                    },
                    _ => Update::Event {
                        id,
                        kind: "failover".to_owned(),
                        detail: format!("step {step}"),
                        at_ms: now,
                    },
                };
                store.update(vec![update.clone()]).await.unwrap();
                model.update(&update);
            }
            Op::Receipt {
                target,
                state,
                dedupe,
            } => {
                let batch = vec![NewInbound {
                    kind: InboundKind::Receipt,
                    dedupe_key: format!("dr-{target}-{dedupe}"),
                    provider_message_id: Some(format!("P{target}")),
                    message_state: Some(state),
                    source: "+46".to_owned(),
                    destination: "src".to_owned(),
                    body: vec![state],
                    site: "siteX".to_owned(),
                    smsc: format!("smsc{dedupe}"),
                    received_at_ms: now,
                    id_format: ReceiptIdFormat::Same,
                    dedupe_window_ms: None,
                }];
                let actual = store.insert_inbound(batch.clone()).await.unwrap();
                assert_eq!(actual, model.insert_inbound(&batch));
            }
            Op::Mo { dedupe } => {
                let batch = vec![NewInbound {
                    kind: InboundKind::Mo,
                    dedupe_key: format!("mo-{dedupe}"),
                    provider_message_id: None,
                    message_state: None,
                    source: "+46".to_owned(),
                    destination: "123".to_owned(),
                    body: vec![dedupe],
                    site: "siteY".to_owned(),
                    smsc: "smscY".to_owned(),
                    received_at_ms: now,
                    id_format: ReceiptIdFormat::Same,
                    dedupe_window_ms: None,
                }];
                let actual = store.insert_inbound(batch.clone()).await.unwrap();
                assert_eq!(actual, model.insert_inbound(&batch));
            }
            Op::Delivered { item } | Op::Retry { item, .. } => {
                if model.inbound.is_empty() {
                    continue;
                }
                let id = i64::from(item) % model.inbound.len() as i64 + 1;
                let update = match op {
                    Op::Retry { delay, .. } => InboundUpdate::Retry {
                        id,
                        next_attempt_at_ms: now + i64::from(delay) * 10,
                    },
                    _ => InboundUpdate::Delivered { id, at_ms: now },
                };
                store.update_inbound(vec![update]).await.unwrap();
                model.update_inbound(update);
            }
            Op::Reopen => {
                drop(store);
                store = place.open().await;
                check(&store, &model, now).await;
            }
        }
        let stats = store.stats().await.unwrap();
        assert_eq!(stats.inbound_total, model.inbound.len() as u64);
        assert_eq!(
            stats.queued + stats.submitted + stats.final_states,
            model.messages.len() as u64
        );
    }
    check(&store, &model, i64::MAX).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_store_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.db");
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(run(ops, Place::Sqlite(&path)));
    }
}

/// The same model against PostgreSQL: fewer cases (a connect per reopen costs
/// more than opening a file), one schema emptied between cases.
#[test]
fn pg_store_matches_model() {
    let Some(schema) = PgSchema::create() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 32,
        // The SQLite half keeps the regression seeds (same operations).
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(op(), 1..60), |ops| {
        runtime.block_on(run(ops, Place::Pg(&schema)));
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
