//! Accepting messages, paging the queue, updates.

use hotsite_store::{Inserted, MessageId, MessageState, StoreError, Update};

use crate::{both_backends, history, message, submitted, AnyStore};

async fn insert_one(store: &AnyStore, key: &str, at_ms: i64) -> Inserted {
    store
        .insert_messages(vec![message(key, at_ms)])
        .await
        .expect("insert")[0]
}

both_backends! {
    /// SPEC M8: a message accepted once (same idempotency key) is accepted once — within
    /// one batch and across batches.
    async fn same_key_is_accepted_once(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let first = store
            .insert_messages(vec![message("k1", 1), message("k2", 1), message("k1", 1)])
            .await
            .unwrap();
        let (id1, id2) = (MessageId(1), MessageId(2));
        assert_eq!(
            first,
            vec![
                Inserted::Created(id1),
                Inserted::Created(id2),
                Inserted::Existing(id1)
            ]
        );
        let mut changed = message("k2", 99);
        changed.body = b"a different body".to_vec();
        let again = store.insert_messages(vec![changed]).await.unwrap();
        assert_eq!(again, vec![Inserted::Existing(id2)]);
        // The first acceptance stands, untouched.
        let view = store.message_by_key("k2").await.unwrap().unwrap();
        assert_eq!(view.id, id2);
        assert_eq!(view.body, b"body of k2");
        assert_eq!(view.created_at_ms, 1);
        assert_eq!(store.stats().await.unwrap().queued, 2);
        assert_eq!(store.message_by_key("nope").await.unwrap(), None);
        assert_eq!(store.message(MessageId(77)).await.unwrap(), None);
    }

    async fn queue_pages_in_id_order_and_loses_submitted_and_failed(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let batch = (0..10).map(|i| message(&format!("m{i}"), i)).collect();
        let ids: Vec<MessageId> = store
            .insert_messages(batch)
            .await
            .unwrap()
            .into_iter()
            .map(Inserted::id)
            .collect();

        // Page through with a cursor, three at a time.
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.queued_after(cursor, 3).await.unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 3);
            cursor = page.last().map(|queued| queued.id);
            seen.extend(page);
        }
        assert_eq!(seen.iter().map(|q| q.id).collect::<Vec<_>>(), ids);
        assert!(seen[4].reference.is_some(), "every message has a reference");
        assert_eq!(seen[4].body, b"body of m4");

        store
            .update(vec![
                submitted(ids[0], "p0", 100),
                Update::Failed {
                    id: ids[1],
                    reason: "invalid destination".to_owned(),
                    at_ms: 101,
                },
                Update::Requeued {
                    id: ids[2],
                    kind: "requeued".to_owned(),
                    reason: "bind lost before response".to_owned(),
                    at_ms: 102,
                },
                Update::Requeued {
                    id: ids[2],
                    kind: "requeued".to_owned(),
                    reason: "timeout".to_owned(),
                    at_ms: 103,
                },
            ])
            .await
            .unwrap();
        let queued = store.queued_after(None, 100).await.unwrap();
        assert_eq!(
            queued.iter().map(|q| q.id).collect::<Vec<_>>(),
            ids[2..].to_vec(),
            "Submitted and Failed leave the queue; Requeued stays"
        );
        assert_eq!(queued[0].attempts, 2);
        assert_eq!(queued[1].attempts, 0);
        // Cursor past the end.
        assert!(store
            .queued_after(Some(ids[9]), 10)
            .await
            .unwrap()
            .is_empty());

        let stats = store.stats().await.unwrap();
        assert_eq!(
            (
                stats.queued,
                stats.submitted,
                stats.failed,
                stats.final_states
            ),
            (8, 1, 1, 1)
        );
        assert_eq!(
            history(&store, ids[2]).await,
            vec![
                "2 accepted key=m2",
                "102 requeued bind lost before response",
                "103 requeued timeout"
            ]
        );
        let view = store.message(ids[0]).await.unwrap().unwrap();
        assert_eq!(view.state, MessageState::Submitted);
        assert_eq!(view.provider_message_id.as_deref(), Some("p0"));
        assert_eq!(view.site.as_deref(), Some("a"));
        assert_eq!(view.smsc.as_deref(), Some("a1"));
        assert_eq!(view.updated_at_ms, 100);
    }

    /// SPEC M10, M11: a retry records its own kind of event; a fallback moves the message
    /// to the next hop of its route with a fresh budget, only while it is queued.
    async fn fallback_moves_a_queued_message_to_the_next_hop(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let mut chat = message("chat", 1);
        chat.route = "chat".to_owned();
        chat.email = Some("ann@example.com".to_owned());
        let ids: Vec<MessageId> = store
            .insert_messages(vec![chat, message("done", 1)])
            .await
            .unwrap()
            .into_iter()
            .map(Inserted::id)
            .collect();
        store
            .update(vec![
                Update::Requeued {
                    id: ids[0],
                    kind: "transport_failure".to_owned(),
                    reason: "primary-chat answered 503".to_owned(),
                    at_ms: 2,
                },
                Update::Fallback {
                    id: ids[0],
                    hop: 1,
                    reason: "primary-chat -> secondary-chat".to_owned(),
                    at_ms: 3,
                },
                submitted(ids[1], "p1", 4),
                Update::Fallback {
                    id: ids[1],
                    hop: 1,
                    reason: "late".to_owned(),
                    at_ms: 5,
                },
            ])
            .await
            .unwrap();
        let queued = store.queued_after(None, 10).await.unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(
            (queued[0].route.as_str(), queued[0].hop, queued[0].attempts),
            ("chat", 1, 0)
        );
        assert_eq!(queued[0].email.as_deref(), Some("ann@example.com"));
        assert_eq!(
            history(&store, ids[0]).await,
            vec![
                "1 accepted key=chat",
                "2 transport_failure primary-chat answered 503",
                "3 fallback primary-chat -> secondary-chat",
            ]
        );
        let done = store.message(ids[1]).await.unwrap().unwrap();
        assert_eq!((done.state, done.hop), (MessageState::Submitted, 0));
        assert_eq!(
            history(&store, ids[1]).await.last().unwrap(),
            "5 fallback_ignored state=Submitted: late"
        );
    }

    /// SPEC M8: a message that has a submit response is never submitted again — a second
    /// `Submitted` changes nothing but the history. Final states never change.
    async fn submitted_only_from_queued_and_final_is_final(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let id = insert_one(&store, "k", 1).await.id();
        store.update(vec![submitted(id, "p1", 2)]).await.unwrap();
        store.update(vec![submitted(id, "p2", 3)]).await.unwrap();
        store
            .update(vec![
                Update::Failed {
                    id,
                    reason: "rejected by policy".to_owned(),
                    at_ms: 4,
                },
                Update::Failed {
                    id,
                    reason: "again".to_owned(),
                    at_ms: 5,
                },
                Update::Event {
                    id,
                    kind: "failover".to_owned(),
                    detail: "site a -> b".to_owned(),
                    at_ms: 6,
                },
            ])
            .await
            .unwrap();
        let view = store.message(id).await.unwrap().unwrap();
        assert_eq!(view.state, MessageState::Failed);
        assert_eq!(view.provider_message_id.as_deref(), Some("p1"));
        assert_eq!(
            history(&store, id).await,
            vec![
                "1 accepted key=k",
                "2 submitted site=a smsc=a1 provider_message_id=p1",
                "3 submit_ignored state=Submitted site=a smsc=a1 provider_message_id=p2",
                "4 failed rejected by policy",
                "5 failed again",
                "6 failover site a -> b",
            ]
        );
        let stats = store.stats().await.unwrap();
        assert_eq!(
            (stats.submitted, stats.failed, stats.final_states),
            (0, 1, 1)
        );
    }

    /// An update batch is all or nothing: an unknown id fails it and nothing is applied.
    async fn update_with_unknown_id_changes_nothing(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let id = insert_one(&store, "k", 1).await.id();
        let error = store
            .update(vec![
                submitted(id, "p1", 2),
                Update::Requeued {
                    id: MessageId(999),
                    kind: "requeued".to_owned(),
                    reason: "x".to_owned(),
                    at_ms: 3,
                },
            ])
            .await
            .unwrap_err();
        assert_eq!(error, StoreError::UnknownMessage(MessageId(999)));
        let view = store.message(id).await.unwrap().unwrap();
        assert_eq!(view.state, MessageState::Queued);
        assert_eq!(view.events.len(), 1);
        assert_eq!(store.stats().await.unwrap().queued, 1);
    }

    /// Reads see every write that returned `Ok` (read connections are separate).
    async fn reads_see_acknowledged_writes(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        for i in 0..50 {
            let id = insert_one(&store, &format!("k{i}"), i).await.id();
            let view = store.message(id).await.unwrap().expect("visible at once");
            assert_eq!(view.state, MessageState::Queued);
            store
                .update(vec![submitted(id, &format!("p{i}"), i)])
                .await
                .unwrap();
            let view = store.message(id).await.unwrap().unwrap();
            assert_eq!(view.state, MessageState::Submitted);
        }
    }

    /// The queue's age (`hotsite_queue_oldest_age_seconds`, issue 16): the
    /// acceptance time of the first-accepted message still queued — a retry
    /// keeps it, a submit or a failure moves it on, an empty queue has none,
    /// and a reopen reads it from the database.
    async fn stats_name_the_oldest_queued_message(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let oldest = |stats: hotsite_store::StoreStats| stats.oldest_queued_at_ms;
        assert_eq!(oldest(store.stats().await.unwrap()), None);
        let ids: Vec<MessageId> = store
            .insert_messages(vec![message("k1", 10), message("k2", 20), message("k3", 30)])
            .await
            .unwrap()
            .iter()
            .map(|inserted| inserted.id())
            .collect();
        assert_eq!(oldest(store.stats().await.unwrap()), Some(10));
        store.update(vec![submitted(ids[0], "p1", 40)]).await.unwrap();
        assert_eq!(oldest(store.stats().await.unwrap()), Some(20));
        store
            .update(vec![Update::Requeued {
                id: ids[1],
                kind: "timeout".to_owned(),
                reason: "no response".to_owned(),
                at_ms: 50,
            }])
            .await
            .unwrap();
        assert_eq!(
            oldest(store.stats().await.unwrap()),
            Some(20),
            "a retried message has waited since it was accepted"
        );
        let store = store.reopen().await;
        assert_eq!(oldest(store.stats().await.unwrap()), Some(20));
        store
            .update(vec![Update::Failed {
                id: ids[1],
                reason: "invalid destination".to_owned(),
                at_ms: 60,
            }])
            .await
            .unwrap();
        assert_eq!(oldest(store.stats().await.unwrap()), Some(30));
        store.update(vec![submitted(ids[2], "p3", 70)]).await.unwrap();
        let stats = store.stats().await.unwrap();
        assert_eq!((stats.queued, oldest(stats)), (0, None));
    }
}
