//! Claims on shared work (SPEC M17), through one handle with two owners (the
//! PostgreSQL tests with two handles, i.e. two gateways, are in `pg.rs`).

use hotsite_store::{InboundUpdate, Inserted, Lease, MessageId, MessageState};

use crate::{both_backends, history, message, mo, submitted};

pub(crate) fn lease(owner: &str, now_ms: i64, duration_ms: i64) -> Lease {
    Lease {
        owner: owner.to_owned(),
        now_ms,
        duration_ms,
    }
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> i64) -> Vec<i64> {
    items.iter().map(id).collect()
}

both_backends! {
    /// SPEC M17, M8: a claimed message is no one else's until its lease runs
    /// out; then another owner takes it, the first one's renewal answers that
    /// it lost it, and the first one's late submit response is only history:
    /// the message is recorded as sent once.
    async fn a_claim_holds_until_its_lease_runs_out(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let inserted: Vec<MessageId> = store
            .insert_messages((0..3).map(|i| message(&format!("k{i}"), 1)).collect())
            .await
            .unwrap()
            .into_iter()
            .map(Inserted::id)
            .collect();
        let a = store.claim_queued(lease("a", 1_000, 500), None, 2).await.unwrap();
        assert_eq!(ids(&a, |q| q.id.0), [inserted[0].0, inserted[1].0]);
        assert_eq!(a[0].body, b"body of k0");
        // b finds only what a does not hold, the owner itself neither.
        let b = store.claim_queued(lease("b", 1_200, 500), None, 10).await.unwrap();
        assert_eq!(ids(&b, |q| q.id.0), [inserted[2].0]);
        assert!(store
            .claim_queued(lease("a", 1_500, 500), None, 10)
            .await
            .unwrap()
            .is_empty(), "held until 1500 inclusive, by a and b");
        // a's lease ran out: b takes them.
        let b = store.claim_queued(lease("b", 1_501, 500), None, 10).await.unwrap();
        assert_eq!(ids(&b, |q| q.id.0), [inserted[0].0, inserted[1].0]);
        assert_eq!(
            store.renew_queued(lease("a", 1_600, 500), vec![inserted[0], inserted[1]]).await.unwrap(),
            Vec::<MessageId>::new(),
            "a lost both"
        );
        assert_eq!(
            store.renew_queued(lease("b", 1_600, 500), vec![inserted[1], inserted[0]]).await.unwrap(),
            vec![inserted[1], inserted[0]],
        );
        store.update(vec![submitted(inserted[0], "P-b", 1_700)]).await.unwrap();
        store.update(vec![submitted(inserted[0], "P-a", 1_800)]).await.unwrap();
        let view = store.message(inserted[0]).await.unwrap().unwrap();
        assert_eq!(view.state, MessageState::Submitted);
        assert_eq!(view.provider_message_id.as_deref(), Some("P-b"));
        let lines = history(&store, inserted[0]).await;
        assert_eq!(lines.iter().filter(|line| line.contains(" submitted ")).count(), 1, "{lines:?}");
        assert!(lines.last().unwrap().contains("submit_ignored"), "{lines:?}");
        // Submitted, it is nobody's to renew any more.
        assert!(store
            .renew_queued(lease("b", 1_900, 500), vec![inserted[0]])
            .await
            .unwrap()
            .is_empty());
    }

    /// SPEC M17: a renewal keeps the work past the first lease; a release (a
    /// gateway stopping) hands it over at once; the cursor and limit page.
    async fn renew_keeps_and_release_hands_over(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let inserted: Vec<MessageId> = store
            .insert_messages((0..4).map(|i| message(&format!("k{i}"), 1)).collect())
            .await
            .unwrap()
            .into_iter()
            .map(Inserted::id)
            .collect();
        let first = store.claim_queued(lease("a", 1_000, 100), None, 1).await.unwrap();
        assert_eq!(ids(&first, |q| q.id.0), [inserted[0].0]);
        let next = store
            .claim_queued(lease("a", 1_000, 100), Some(inserted[0]), 2)
            .await
            .unwrap();
        assert_eq!(ids(&next, |q| q.id.0), [inserted[1].0, inserted[2].0]);
        assert_eq!(
            store
                .renew_queued(lease("a", 1_050, 1_000), vec![inserted[0], inserted[3]])
                .await
                .unwrap(),
            vec![inserted[0]],
            "never claimed is not renewed"
        );
        // At 1 200 only the renewed one is still a's.
        let b = store.claim_queued(lease("b", 1_200, 100), None, 10).await.unwrap();
        assert_eq!(ids(&b, |q| q.id.0), [inserted[1].0, inserted[2].0, inserted[3].0]);
        store.release_claims("b".to_owned()).await.unwrap();
        let a = store.claim_queued(lease("a", 1_201, 100), None, 10).await.unwrap();
        assert_eq!(ids(&a, |q| q.id.0), [inserted[1].0, inserted[2].0, inserted[3].0]);
        // queued_after is a plain read: claims do not hide anything from it.
        assert_eq!(store.queued_after(None, 10).await.unwrap().len(), 4);
    }

    /// SPEC M17, M8: inbound items likewise: one owner at a time, due ones only;
    /// a retry gives the claim up, a delivered item is claimed by no one.
    async fn inbound_claims_follow_the_same_rules(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let ids_in: Vec<i64> = store
            .insert_inbound((0..3).map(|i| mo(&format!("mo-{i}"), 100)).collect())
            .await
            .unwrap()
            .into_iter()
            .map(|inserted| inserted.id())
            .collect();
        assert!(store.claim_inbound(lease("a", 99, 500), 10).await.unwrap().is_empty(), "not due");
        let a = store.claim_inbound(lease("a", 1_000, 500), 2).await.unwrap();
        assert_eq!(ids(&a, |i| i.id), ids_in[..2]);
        assert_eq!(a[0].body, b"hello");
        let b = store.claim_inbound(lease("b", 1_100, 500), 10).await.unwrap();
        assert_eq!(ids(&b, |i| i.id), ids_in[2..]);
        // a delivers the first and gives the second up until 1 200.
        store
            .update_inbound(vec![
                InboundUpdate::Delivered { id: ids_in[0], at_ms: 1_150 },
                InboundUpdate::Retry { id: ids_in[1], next_attempt_at_ms: 1_200 },
            ])
            .await
            .unwrap();
        assert!(store.claim_inbound(lease("b", 1_199, 500), 10).await.unwrap().is_empty());
        let b = store.claim_inbound(lease("b", 1_200, 500), 10).await.unwrap();
        assert_eq!(ids(&b, |i| i.id), [ids_in[1]]);
        assert_eq!(b[0].attempts, 1);
        assert_eq!(
            store.renew_inbound(lease("a", 1_300, 500), vec![ids_in[0], ids_in[1]]).await.unwrap(),
            Vec::<i64>::new(),
            "delivered, and lost to b"
        );
        assert_eq!(
            store.renew_inbound(lease("b", 1_300, 500), vec![ids_in[2], ids_in[1]]).await.unwrap(),
            vec![ids_in[2], ids_in[1]]
        );
        // b's claims run to 1 800; after that anyone but the delivered one.
        assert!(store.claim_inbound(lease("a", 1_800, 500), 10).await.unwrap().is_empty());
        let a = store.claim_inbound(lease("a", 1_801, 500), 10).await.unwrap();
        assert_eq!(ids(&a, |i| i.id), ids_in[1..]);
        store.release_claims("a".to_owned()).await.unwrap();
        assert_eq!(store.claim_inbound(lease("b", 1_802, 500), 10).await.unwrap().len(), 2);
    }
}
