//! References per destination and collisions (SPEC M16), provider ids compared
//! as providers write them (SPEC M13), MO repeats in a sliding window (SPEC M8),
//! one owner per store (SPEC M17).

use hotsite_store::{
    InboundInserted, InboundKind, Inserted, MessageId, MessageState, NewInbound, NewMessage,
    ReceiptIdFormat, Resubmit, SqliteOptions, SqliteStore, StoreError,
};

use crate::{both_backends, message, mo, receipt, submitted, AnyStore, Opts};

fn to(destination: &str, key: &str, at_ms: i64) -> NewMessage {
    NewMessage {
        destination: destination.to_owned(),
        ..message(key, at_ms)
    }
}

async fn references(store: &AnyStore) -> Vec<(MessageId, Option<u16>)> {
    store
        .queued_after(None, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|queued| (queued.id, queued.reference))
        .collect()
}

fn receipt_as(provider_message_id: &str, format: ReceiptIdFormat, key: &str) -> NewInbound {
    NewInbound {
        id_format: format,
        ..receipt(key, provider_message_id, 2, 10)
    }
}

fn windowed_mo(at_ms: i64) -> NewInbound {
    NewInbound {
        dedupe_window_ms: Some(600_000),
        ..mo("mo:identity", at_ms)
    }
}

/// SPEC M17: a SQLite store open in one place cannot be opened again until closed
/// (PostgreSQL is shared on purpose: `pg::two_stores_on_one_schema_work_together`).
#[tokio::test]
async fn sqlite_a_store_in_use_is_refused_naming_its_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hotsite.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let error = SqliteStore::open(&path, SqliteOptions::default()).unwrap_err();
    assert!(
        matches!(&error, StoreError::Locked { holder, .. } if holder.contains("pid ")),
        "{error:?}"
    );
    drop(store);
    SqliteStore::open(&path, SqliteOptions::default()).unwrap();
}

both_backends! {
    /// SPEC M16: a destination's references run one after the other, so none is used
    /// again for it before 65,536 others; another destination has its own sequence.
    async fn references_run_in_sequence_per_destination(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let batch: Vec<NewMessage> = (0..65_537)
            .map(|n| to("+4670000001", &format!("k{n}"), 1_000 + n))
            .chain([to("+4670000002", "other", 2_000)])
            .collect();
        store.insert_messages(batch).await.unwrap();
        let refs = references(&store).await;
        let one: Vec<u16> = refs[..65_537].iter().map(|(_, r)| r.unwrap()).collect();
        for pair in one.windows(2) {
            assert_eq!(pair[1], pair[0].wrapping_add(1), "{pair:?}");
        }
        let distinct: std::collections::HashSet<u16> = one[..65_536].iter().copied().collect();
        assert_eq!(
            distinct.len(),
            65_536,
            "no reference twice in 65,536 messages"
        );
        // The 65,537th is the first reference again: the documented limit.
        assert_eq!(one[65_536], one[0]);
        assert!(refs[65_537].1.is_some());
    }

    /// SPEC M16: after the window without a message, a destination starts afresh;
    /// within it, the sequence goes on.
    async fn a_destination_quiet_for_the_window_starts_afresh(backend: Backend) {
        let opts = Opts {
            reference_window_ms: 10_000,
            ..Opts::default()
        };
        let Some(store) = backend.open(opts).await else {
            return;
        };
        for (key, at_ms) in [("a", 1_000), ("b", 5_000), ("c", 16_000)] {
            store
                .insert_messages(vec![to("+4671", key, at_ms)])
                .await
                .unwrap();
        }
        let refs: Vec<u16> = references(&store)
            .await
            .into_iter()
            .map(|(_, r)| r.unwrap())
            .collect();
        assert_eq!(refs[1], refs[0].wrapping_add(1));
        // 11 s after the last one: a new start, not merely the next.
        assert_ne!(refs[2], refs[1].wrapping_add(1));
    }

    /// SPEC M16: a submit answered with another message's provider id (same
    /// destination) was taken for a repeat and dropped: not recorded as sent; the
    /// message gets a fresh reference, then none after a second collision, and a
    /// real answer after that is recorded as usual.
    async fn an_answer_naming_another_message_is_a_collision(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let ids: Vec<MessageId> = store
            .insert_messages(vec![
                to("+4672", "first", 1),
                to("+4672", "second", 2),
                to("+4673", "elsewhere", 3),
            ])
            .await
            .unwrap()
            .into_iter()
            .map(Inserted::id)
            .collect();
        let before = references(&store).await;
        store
            .update(vec![submitted(ids[0], "0000ABCD", 4)])
            .await
            .unwrap();
        // The provider answers the second with the first's id, written another way.
        let resubmits = store
            .update(vec![submitted(ids[1], "abcd", 5)])
            .await
            .unwrap();
        assert_eq!(resubmits.len(), 1);
        let Resubmit { id, reference } = resubmits[0];
        assert_eq!(id, ids[1]);
        let fresh = reference.expect("a fresh reference first");
        assert_ne!(Some(fresh), before[1].1);
        let view = store.message(ids[1]).await.unwrap().unwrap();
        assert_eq!(view.state, MessageState::Queued);
        assert_eq!(view.provider_message_id, None);
        let event = view.events.last().unwrap();
        assert_eq!(event.kind, "reference_collision");
        assert!(
            event.detail.contains(&format!("message {}", ids[0])),
            "{}",
            event.detail
        );
        assert_eq!(
            references(&store).await[0],
            (ids[1], Some(fresh)),
            "the queue hands out the new reference"
        );
        // Again: no reference at all.
        let resubmits = store
            .update(vec![submitted(ids[1], "ABCD", 6)])
            .await
            .unwrap();
        assert_eq!(
            resubmits,
            vec![Resubmit {
                id: ids[1],
                reference: None
            }]
        );
        assert_eq!(references(&store).await[0], (ids[1], None));
        // Its own id at last.
        assert!(store
            .update(vec![submitted(ids[1], "abce", 7)])
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store.message(ids[1]).await.unwrap().unwrap().state,
            MessageState::Submitted
        );
        // Another destination may carry the same id: not a collision.
        assert!(store
            .update(vec![submitted(ids[2], "abcd", 8)])
            .await
            .unwrap()
            .is_empty());
        // The same message answered again with its own id is no collision either.
        let own = store
            .update(vec![submitted(ids[0], "abcd", 9)])
            .await
            .unwrap();
        assert!(own.is_empty());
    }

    /// SPEC M13: receipts whose id is upper case, zero-padded or decimal (for a hex
    /// submit id) all find their message, under the SMSC's format or `auto`.
    async fn receipts_match_ids_written_another_way(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let ids: Vec<MessageId> = store
            .insert_messages(
                (0..5)
                    .map(|n| to(&format!("+4674{n}"), &format!("m{n}"), 1))
                    .collect(),
            )
            .await
            .unwrap()
            .into_iter()
            .map(Inserted::id)
            .collect();
        // 0x1a2b = 6699, 0x1a2c = 6700, 0x1a2d = 6701.
        let submits = ["00001a2b", "1A2C", "00001a2d", "1a2e", "9999"];
        for (id, provider_id) in ids.iter().zip(submits) {
            store
                .update(vec![submitted(*id, provider_id, 2)])
                .await
                .unwrap();
        }
        store
            .insert_inbound(vec![
                receipt_as("1A2B", ReceiptIdFormat::Same, "r0"),
                receipt_as("00000000001a2c", ReceiptIdFormat::Same, "r1"),
                receipt_as("6701", ReceiptIdFormat::Decimal, "r2"),
                receipt_as("00000000000000006702", ReceiptIdFormat::Auto, "r3"),
                // Hex for a decimal submit id: 0x270f = 9999.
                receipt_as("270F", ReceiptIdFormat::Hex, "r4"),
            ])
            .await
            .unwrap();
        for id in &ids {
            let view = store.message(*id).await.unwrap().unwrap();
            assert_eq!(
                view.state,
                MessageState::Delivered,
                "{id}: {:?}",
                view.events
            );
        }
        let pending = store.pending_inbound(10, 10).await.unwrap();
        assert_eq!(
            pending.iter().map(|p| p.message_id).collect::<Vec<_>>(),
            ids.iter().copied().map(Some).collect::<Vec<_>>()
        );
        assert_eq!(store.stats().await.unwrap().receipts_uncorrelated, 0);
    }

    /// SPEC M13: the same receipts without the format setting are kept uncorrelated
    /// (counted), not dropped, and reach the application after the wait.
    async fn a_receipt_in_an_unknown_format_is_kept_and_counted(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let id = store.insert_messages(vec![message("k", 1)]).await.unwrap()[0].id();
        store.update(vec![submitted(id, "1a2b", 2)]).await.unwrap();
        store
            .insert_inbound(vec![receipt_as("6699", ReceiptIdFormat::Same, "r")])
            .await
            .unwrap();
        assert_eq!(
            store.message(id).await.unwrap().unwrap().state,
            MessageState::Submitted
        );
        assert_eq!(store.stats().await.unwrap().receipts_uncorrelated, 1);
        assert!(store.pending_inbound(10, 10).await.unwrap().is_empty());
        let later = store.pending_inbound(10 + 60_000, 10).await.unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].kind, InboundKind::Receipt);
        assert_eq!(later[0].message_id, None);
    }

    /// SPEC M8: an MO without an id is a repeat within the window of its first copy,
    /// wherever the clock stands (the old fixed 10-minute buckets split 599 s and
    /// 601 s); a copy after the window is a new message.
    async fn mo_repeats_are_found_in_a_sliding_window(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let first = store
            .insert_inbound(vec![windowed_mo(599_000)])
            .await
            .unwrap();
        let InboundInserted::Created(first_id) = first[0] else {
            panic!("{first:?}");
        };
        let repeats = store
            .insert_inbound(vec![windowed_mo(601_000), windowed_mo(1_199_000)])
            .await
            .unwrap();
        assert_eq!(
            repeats,
            vec![
                InboundInserted::Duplicate(first_id),
                InboundInserted::Duplicate(first_id)
            ]
        );
        let later = store
            .insert_inbound(vec![windowed_mo(1_199_001), windowed_mo(1_200_000)])
            .await
            .unwrap();
        let InboundInserted::Created(second_id) = later[0] else {
            panic!("{later:?}");
        };
        assert_eq!(later[1], InboundInserted::Duplicate(second_id));
        assert_eq!(store.stats().await.unwrap().inbound_total, 2);
    }

    /// SPEC M16: the counters of destinations quiet for longer than the window are
    /// pruned as commits go by, a chunk at a time; those within it are kept.
    async fn stale_destination_counters_are_pruned(backend: Backend) {
        let opts = Opts {
            reference_window_ms: 10_000,
            ..Opts::default()
        };
        let Some(store) = backend.open(opts).await else {
            return;
        };
        for n in 0..5 {
            store
                .insert_messages(vec![to(&format!("+4675{n}"), &format!("old{n}"), 1_000)])
                .await
                .unwrap();
        }
        // 200 commits later, 20 s on: the old five are stale, the new one is not.
        for n in 0..200 {
            store
                .insert_messages(vec![to("+4676", &format!("new{n}"), 21_000 + n)])
                .await
                .unwrap();
        }
        let left = store
            .query_texts("SELECT destination FROM destination_refs ORDER BY destination")
            .await;
        assert_eq!(left, ["+4676"]);
    }
}
