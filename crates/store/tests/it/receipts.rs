//! Receipts and MO: stored once, correlated by provider id, final state once.

use hotsite_store::{
    InboundInserted, InboundKind, InboundUpdate, MessageId, MessageState, StoreError,
};

use crate::{both_backends, history, message, mo, receipt, submitted};

both_backends! {
    /// SPEC M13 + M1: a receipt (from another site than the submit) after the submit
    /// response sets the final state and is recorded.
    async fn receipt_after_submit_sets_final_state(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let id = store.insert_messages(vec![message("k", 1)]).await.unwrap()[0].id();
        store.update(vec![submitted(id, "P-1", 2)]).await.unwrap();
        let inserted = store
            .insert_inbound(vec![receipt("dr-1", "P-1", 2, 3)])
            .await
            .unwrap();
        assert_eq!(inserted, vec![InboundInserted::Created(1)]);
        let view = store.message(id).await.unwrap().unwrap();
        assert_eq!(view.state, MessageState::Delivered);
        assert_eq!(
            history(&store, id).await,
            vec![
                "1 accepted key=k",
                "2 submitted site=a smsc=a1 provider_message_id=P-1",
                "3 receipt message_state=2 site=b smsc=b1 provider_message_id=P-1",
            ]
        );
        let pending = store.pending_inbound(3, 10).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].kind, InboundKind::Receipt);
        assert_eq!(pending[0].message_id, Some(id));
        assert_eq!(pending[0].message_state, Some(2));
        let stats = store.stats().await.unwrap();
        assert_eq!((stats.submitted, stats.final_states), (0, 1));
    }

    /// SPEC M13: receipts can arrive before the submit response is recorded; the mapping
    /// is applied when the `Submitted` update brings the provider id.
    async fn receipt_before_submit_is_applied_by_the_submit(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let id = store.insert_messages(vec![message("k", 1)]).await.unwrap()[0].id();
        store
            .insert_inbound(vec![
                receipt("dr-1", "P-9", 1, 2), // enroute
                receipt("dr-2", "P-9", 5, 3), // undeliverable
                receipt("dr-other", "P-unknown", 2, 3),
            ])
            .await
            .unwrap();
        // Uncorrelated receipts wait for their submit response (SPEC M13), counted.
        assert!(store.pending_inbound(10, 10).await.unwrap().is_empty());
        assert_eq!(store.stats().await.unwrap().receipts_uncorrelated, 3);
        assert_eq!(
            store.message(id).await.unwrap().unwrap().state,
            MessageState::Queued
        );

        store.update(vec![submitted(id, "P-9", 4)]).await.unwrap();
        let view = store.message(id).await.unwrap().unwrap();
        assert_eq!(view.state, MessageState::Undeliverable);
        assert_eq!(
            history(&store, id).await,
            vec![
                "1 accepted key=k",
                "4 submitted site=a smsc=a1 provider_message_id=P-9",
                "2 receipt message_state=1 site=b smsc=b1 provider_message_id=P-9",
                "3 receipt message_state=5 site=b smsc=b1 provider_message_id=P-9",
            ]
        );
        // Correlated: offered at once, with their message; the unknown one waits
        // out the correlation wait, then goes to the application uncorrelated.
        let ids = |pending: Vec<hotsite_store::PendingInbound>| {
            pending
                .iter()
                .map(|item| item.message_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(store.pending_inbound(10, 10).await.unwrap()),
            vec![Some(id), Some(id)]
        );
        assert_eq!(store.stats().await.unwrap().receipts_uncorrelated, 1);
        assert_eq!(store.inbound_message(1).await.unwrap(), Some(id));
        assert_eq!(store.inbound_message(3).await.unwrap(), None);
        assert_eq!(
            store.inbound_message(99).await.unwrap_err(),
            StoreError::UnknownInbound(99)
        );
        assert_eq!(
            ids(store.pending_inbound(3 + 60_000, 10).await.unwrap()),
            vec![Some(id), Some(id), None]
        );
        // A later receipt for it is recorded but is not applied twice.
        store
            .insert_inbound(vec![receipt("dr-3", "P-9", 2, 5)])
            .await
            .unwrap();
        assert_eq!(
            store.message(id).await.unwrap().unwrap().state,
            MessageState::Undeliverable
        );
        assert_eq!(history(&store, id).await.len(), 5);
    }

    /// SPEC M8 + M13: the same receipt received several times (several binds or sites)
    /// is stored once; distinct receipts are all recorded; the final state is set once.
    async fn duplicate_receipts_stored_once_distinct_ones_all_recorded(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let id = store.insert_messages(vec![message("k", 1)]).await.unwrap()[0].id();
        store.update(vec![submitted(id, "P-1", 2)]).await.unwrap();
        let first = store
            .insert_inbound(vec![
                receipt("dr-a", "P-1", 2, 3),
                receipt("dr-a", "P-1", 2, 3), // same batch
            ])
            .await
            .unwrap();
        assert_eq!(
            first,
            vec![InboundInserted::Created(1), InboundInserted::Duplicate(1)]
        );
        let second = store
            .insert_inbound(vec![
                receipt("dr-a", "P-1", 2, 4), // across batches
                receipt("dr-b", "P-1", 8, 5), // a different, later final receipt
            ])
            .await
            .unwrap();
        assert_eq!(
            second,
            vec![InboundInserted::Duplicate(1), InboundInserted::Created(2)]
        );
        let view = store.message(id).await.unwrap().unwrap();
        assert_eq!(view.state, MessageState::Delivered, "final state set once");
        assert_eq!(
            history(&store, id).await,
            vec![
                "1 accepted key=k",
                "2 submitted site=a smsc=a1 provider_message_id=P-1",
                "3 receipt message_state=2 site=b smsc=b1 provider_message_id=P-1",
                "5 receipt message_state=8 site=b smsc=b1 provider_message_id=P-1",
            ]
        );
        let stats = store.stats().await.unwrap();
        assert_eq!((stats.inbound_total, stats.inbound_pending), (2, 2));
    }

    /// SPEC M8: an MO reaches the application once; delivery retries are scheduled.
    async fn inbound_delivery_and_retry(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let inserted = store
            .insert_inbound(vec![mo("mo-1", 10), mo("mo-2", 11), mo("mo-1", 12)])
            .await
            .unwrap();
        assert_eq!(
            inserted,
            vec![
                InboundInserted::Created(1),
                InboundInserted::Created(2),
                InboundInserted::Duplicate(1)
            ]
        );
        // Not due before it arrived.
        assert_eq!(store.pending_inbound(10, 10).await.unwrap().len(), 1);
        let pending = store.pending_inbound(20, 10).await.unwrap();
        assert_eq!(pending.iter().map(|p| p.id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(pending[0].kind, InboundKind::Mo);
        assert_eq!(pending[0].body, b"hello");

        store
            .update_inbound(vec![
                InboundUpdate::Delivered { id: 1, at_ms: 20 },
                InboundUpdate::Retry {
                    id: 2,
                    next_attempt_at_ms: 50,
                },
            ])
            .await
            .unwrap();
        assert!(store.pending_inbound(49, 10).await.unwrap().is_empty());
        let due = store.pending_inbound(50, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].id, due[0].attempts), (2, 1));
        // Delivering twice is a no-op; an unknown id is an error and changes nothing.
        store
            .update_inbound(vec![InboundUpdate::Delivered { id: 1, at_ms: 60 }])
            .await
            .unwrap();
        let error = store
            .update_inbound(vec![
                InboundUpdate::Delivered { id: 2, at_ms: 60 },
                InboundUpdate::Delivered { id: 9, at_ms: 60 },
            ])
            .await
            .unwrap_err();
        assert_eq!(error, StoreError::UnknownInbound(9));
        let stats = store.stats().await.unwrap();
        assert_eq!((stats.inbound_total, stats.inbound_pending), (2, 1));
        assert_eq!(store.pending_inbound(60, 10).await.unwrap().len(), 1);
        // Limit is honoured.
        store
            .insert_inbound((3..10).map(|i| mo(&format!("mo-{i}"), 70)).collect())
            .await
            .unwrap();
        assert_eq!(store.pending_inbound(70, 3).await.unwrap().len(), 3);
        let _ = MessageId(0);
    }
}
