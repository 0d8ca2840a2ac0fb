//! PostgreSQL only: several gateways on one schema (SPEC M1, M6, M8, M13, M16,
//! M17), schema versions, reconnection, options.

use std::collections::HashSet;
use std::time::Duration;

use hotsite_store::{
    InboundInserted, Inserted, MessageId, MessageState, NewInbound, PgOptions, PgStore, StoreError,
    Update,
};
use tokio::task::JoinSet;

use crate::leases::lease;
use crate::{history, message, mo, receipt, submitted, Opts, PgSchema};

/// A schema and two stores on it: two gateways sharing one database.
async fn two_gateways() -> Option<(PgSchema, PgStore, PgStore)> {
    let schema = PgSchema::create()?;
    let a = PgStore::connect(schema.options(Opts::default()))
        .await
        .unwrap();
    let b = PgStore::connect(schema.options(Opts::default()))
        .await
        .unwrap();
    Some((schema, a, b))
}

/// SPEC M8, M17: two gateways insert the same idempotency keys at the same time:
/// each key is stored once, one gateway answers Created and the other Existing
/// with the same id; the counts (kept per writer) add up on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_same_key_from_two_gateways_is_accepted_once() {
    let Some((_schema, a, b)) = two_gateways().await else {
        return;
    };
    let mut tasks = JoinSet::new();
    for (name, store) in [("a", a.clone()), ("b", b.clone())] {
        tasks.spawn(async move {
            let mut answers = Vec::new();
            for round in 0..20 {
                let batch = (0..10)
                    .map(|i| message(&format!("k{round}-{i}"), round))
                    .collect();
                answers.extend(store.insert_messages(batch).await.unwrap());
            }
            (name, answers)
        });
    }
    let mut answers = Vec::new();
    while let Some(done) = tasks.join_next().await {
        answers.push(done.unwrap());
    }
    answers.sort_by_key(|(name, _)| *name);
    let (a_answers, b_answers) = (&answers[0].1, &answers[1].1);
    assert_eq!(a_answers.len(), 200);
    for (from_a, from_b) in a_answers.iter().zip(b_answers) {
        assert_eq!(from_a.id(), from_b.id(), "{from_a:?} {from_b:?}");
        let created = [from_a, from_b]
            .iter()
            .filter(|answer| matches!(answer, Inserted::Created(_)))
            .count();
        assert_eq!(created, 1, "{from_a:?} {from_b:?}");
    }
    for store in [&a, &b] {
        let stats = store.stats().await.unwrap();
        assert_eq!(stats.queued, 200);
        assert_eq!(store.queued_after(None, 1_000).await.unwrap().len(), 200);
    }
}

/// SPEC M1, M6, M13: submits recorded at gateway a while gateway b stores their
/// receipts at the same moment: every receipt ends up correlated with its
/// message (none is left waiting), each message's final state is set once, and
/// each receipt is recorded once in its history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_receipts_at_one_gateway_for_submits_at_another_are_all_correlated() {
    let Some((_schema, a, b)) = two_gateways().await else {
        return;
    };
    const N: usize = 300;
    let ids: Vec<MessageId> = a
        .insert_messages((0..N).map(|i| message(&format!("m{i}"), 1)).collect())
        .await
        .unwrap()
        .into_iter()
        .map(Inserted::id)
        .collect();
    let mut tasks = JoinSet::new();
    // Many small requests on both sides, interleaved: a receipt may come before,
    // during or after its submit's transaction.
    for chunk in 0..10 {
        let a = a.clone();
        let submits: Vec<Update> = ids[chunk * 30..(chunk + 1) * 30]
            .iter()
            .map(|id| submitted(*id, &format!("P{}", id.0), 2))
            .collect();
        tasks.spawn(async move {
            for pair in submits.chunks(3) {
                a.update(pair.to_vec()).await.unwrap();
            }
        });
        let b = b.clone();
        let receipts: Vec<NewInbound> = ids[chunk * 30..(chunk + 1) * 30]
            .iter()
            .map(|id| receipt(&format!("dr-{}", id.0), &format!("P{}", id.0), 2, 3))
            .collect();
        tasks.spawn(async move {
            for pair in receipts.chunks(3) {
                b.insert_inbound(pair.to_vec()).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    for id in &ids {
        let view = a.message(*id).await.unwrap().unwrap();
        assert_eq!(
            view.state,
            MessageState::Delivered,
            "{id}: {:?}",
            view.events
        );
        let receipts = view.events.iter().filter(|e| e.kind == "receipt").count();
        assert_eq!(receipts, 1, "{id}: {:?}", view.events);
    }
    let pending = b.pending_inbound(3, 10_000).await.unwrap();
    assert_eq!(
        pending.len(),
        N,
        "every receipt offered at once, correlated"
    );
    for item in &pending {
        let expected = item.provider_message_id.as_deref().unwrap()[1..]
            .parse()
            .unwrap();
        assert_eq!(item.message_id, Some(MessageId(expected)));
    }
    let stats = b.stats().await.unwrap();
    assert_eq!(
        (
            stats.receipts_uncorrelated,
            stats.final_states,
            stats.submitted
        ),
        (0, N as u64, 0)
    );
}

/// SPEC M8: the same windowed MO (no provider id) stored from both gateways at
/// once is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_windowed_mo_from_two_gateways_is_stored_once() {
    let Some((_schema, a, b)) = two_gateways().await else {
        return;
    };
    for round in 0..20 {
        let windowed = |at_ms| NewInbound {
            dedupe_window_ms: Some(600_000),
            ..mo(&format!("mo:identity-{round}"), at_ms)
        };
        let (from_a, from_b) = tokio::join!(
            a.insert_inbound(vec![windowed(1_000)]),
            b.insert_inbound(vec![windowed(1_001)]),
        );
        let (from_a, from_b) = (from_a.unwrap()[0], from_b.unwrap()[0]);
        assert_eq!(from_a.id(), from_b.id(), "{from_a:?} {from_b:?}");
        let created = [from_a, from_b]
            .iter()
            .filter(|answer| matches!(answer, InboundInserted::Created(_)))
            .count();
        assert_eq!(created, 1, "{from_a:?} {from_b:?}");
    }
    assert_eq!(a.stats().await.unwrap().inbound_total, 20);
}

/// SPEC M17, M8: two gateways share the queue through claims: what a holds b
/// cannot take until a's lease runs out; then b takes it, a's renewal says a
/// lost it, and a's late submit response does not record a second send. The
/// same for inbound items; a release hands work over at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_two_gateways_share_work_through_leases() {
    let Some((_schema, a, b)) = two_gateways().await else {
        return;
    };
    let ids: Vec<MessageId> = a
        .insert_messages((0..4).map(|i| message(&format!("k{i}"), 1)).collect())
        .await
        .unwrap()
        .into_iter()
        .map(Inserted::id)
        .collect();
    let held = a
        .claim_queued(lease("gw-a", 1_000, 500), None, 2)
        .await
        .unwrap();
    assert_eq!(held.iter().map(|q| q.id).collect::<Vec<_>>(), ids[..2]);
    let taken = b
        .claim_queued(lease("gw-b", 1_100, 500), None, 10)
        .await
        .unwrap();
    assert_eq!(taken.iter().map(|q| q.id).collect::<Vec<_>>(), ids[2..]);
    // a's lease runs out (b's clock says so): b takes a's messages.
    let taken = b
        .claim_queued(lease("gw-b", 1_501, 500), None, 10)
        .await
        .unwrap();
    assert_eq!(taken.iter().map(|q| q.id).collect::<Vec<_>>(), ids[..2]);
    assert!(a
        .renew_queued(lease("gw-a", 1_502, 500), ids[..2].to_vec())
        .await
        .unwrap()
        .is_empty());
    b.update(vec![submitted(ids[0], "P-b", 1_600)])
        .await
        .unwrap();
    a.update(vec![submitted(ids[0], "P-a", 1_700)])
        .await
        .unwrap();
    let view = b.message(ids[0]).await.unwrap().unwrap();
    assert_eq!(view.provider_message_id.as_deref(), Some("P-b"));
    let lines = history(&crate::AnyStore::Pg(a.clone()), ids[0]).await;
    assert_eq!(
        lines
            .iter()
            .filter(|line| line.contains(" submitted "))
            .count(),
        1
    );
    assert!(
        lines.last().unwrap().contains("submit_ignored"),
        "{lines:?}"
    );

    // Inbound: b holds one; a cannot take it; a release hands it over at once.
    let inbound = a.insert_inbound(vec![mo("mo-1", 10)]).await.unwrap()[0].id();
    assert_eq!(
        b.claim_inbound(lease("gw-b", 2_000, 60_000), 10)
            .await
            .unwrap()
            .iter()
            .map(|item| item.id)
            .collect::<Vec<_>>(),
        [inbound]
    );
    assert!(a
        .claim_inbound(lease("gw-a", 2_001, 500), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(a
        .renew_inbound(lease("gw-a", 2_001, 500), vec![inbound])
        .await
        .unwrap()
        .is_empty());
    b.release_claims("gw-b".to_owned()).await.unwrap();
    assert_eq!(
        a.claim_inbound(lease("gw-a", 2_002, 500), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // b's remaining queue claims went with its release too.
    assert_eq!(
        a.claim_queued(lease("gw-a", 2_003, 500), None, 10)
            .await
            .unwrap()
            .iter()
            .map(|q| q.id)
            .collect::<Vec<_>>(),
        ids[1..]
    );
}

/// SPEC M17: many claimers at once never get the same message twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_concurrent_claims_never_overlap() {
    let Some((_schema, a, b)) = two_gateways().await else {
        return;
    };
    a.insert_messages((0..200).map(|i| message(&format!("k{i}"), 1)).collect())
        .await
        .unwrap();
    let mut tasks = JoinSet::new();
    for owner in 0..6 {
        let store = if owner % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..20 {
                let page = store
                    .claim_queued(lease(&format!("gw-{owner}"), 1_000, 60_000), None, 7)
                    .await
                    .unwrap();
                if page.is_empty() {
                    break;
                }
                mine.extend(page.into_iter().map(|q| q.id));
            }
            mine
        });
    }
    let mut seen = HashSet::new();
    while let Some(done) = tasks.join_next().await {
        for id in done.unwrap() {
            assert!(seen.insert(id), "{id} claimed twice");
        }
    }
    assert_eq!(seen.len(), 200);
}

/// A schema written by a newer hotsite is refused, with a clear error, untouched.
#[tokio::test]
async fn pg_newer_schema_version_is_refused() {
    let Some(schema) = PgSchema::create() else {
        return;
    };
    let store = PgStore::connect(schema.options(Opts::default()))
        .await
        .unwrap();
    store.insert_messages(vec![message("k", 1)]).await.unwrap();
    drop(store);
    let client = schema.client().await;
    client
        .batch_execute("UPDATE schema_version SET version = 99")
        .await
        .unwrap();
    let error = PgStore::connect(schema.options(Opts::default()))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        StoreError::SchemaTooNew {
            found: 99,
            supported: 1
        }
    );
    assert!(error.to_string().contains("upgrade hotsite"), "{error}");
    let version: i64 = client
        .query_one("SELECT version FROM schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 99);
    let writers: i64 = client
        .query_one("SELECT COUNT(*) FROM counters", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(writers, 1, "the refused store wrote nothing");
}

/// SPEC M9: an administrator ends every connection of the store (as a server
/// restart would): the next write answers Unavailable or succeeds on a new
/// connection; writes and reads work again by themselves, and nothing that was
/// acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_lost_connections_are_made_again() {
    let Some(schema) = PgSchema::create() else {
        return;
    };
    let store = PgStore::connect(schema.options(Opts::default()))
        .await
        .unwrap();
    let before: Vec<MessageId> = store
        .insert_messages((0..10).map(|i| message(&format!("k{i}"), 1)).collect())
        .await
        .unwrap()
        .into_iter()
        .map(Inserted::id)
        .collect();
    assert_eq!(store.queued_after(None, 100).await.unwrap().len(), 10);
    assert!(
        schema.terminate_connections().await >= 2,
        "writer and a reader"
    );
    let mut outcomes = Vec::new();
    let mut written = None;
    for attempt in 0..50 {
        match store
            .insert_messages(vec![message(&format!("after-{attempt}"), 2)])
            .await
        {
            Ok(inserted) => {
                written = Some(inserted[0].id());
                break;
            }
            Err(error) => {
                assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
                assert!(error.to_string().contains("committed work is intact"));
                outcomes.push(error);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let written = written.expect("writes resume by themselves");
    assert!(outcomes.len() <= 1, "{outcomes:?}");
    // Reads come back too (a dead pooled connection is replaced).
    let queued = store.queued_after(None, 100).await.unwrap();
    assert_eq!(queued.len(), 11);
    assert_eq!(
        queued.iter().map(|q| q.id).collect::<Vec<_>>()[..10],
        before[..]
    );
    assert!(store.message(written).await.unwrap().is_some());
    assert_eq!(store.stats().await.unwrap().queued, 11);
}

/// No server at the address: the store says so at once, as Unavailable.
#[tokio::test]
async fn pg_no_server_is_unavailable_within_the_timeout() {
    let error = PgStore::connect(PgOptions {
        url: "postgres://postgres@127.0.0.1:9/test".to_owned(),
        connect_timeout: Duration::from_secs(2),
        ..PgOptions::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

/// TLS is not supported yet: a URL asking for it is refused before connecting,
/// never quietly served in clear; a schema name must be a plain identifier.
#[tokio::test]
async fn pg_options_are_checked_before_connecting() {
    for (url, schema) in [
        ("postgres://postgres@127.0.0.1:9/test?sslmode=require", None),
        (
            "postgres://postgres@127.0.0.1:9/test",
            Some("bad-name; drop".to_owned()),
        ),
    ] {
        let error = PgStore::connect(PgOptions {
            url: url.to_owned(),
            schema,
            ..PgOptions::default()
        })
        .await
        .unwrap_err();
        assert!(matches!(error, StoreError::InvalidOptions(_)), "{error:?}");
    }
}

/// Issue 16: the queue's oldest message, read at every scrape of `/metrics`,
/// is one probe of the `messages_queued` partial index under the planner
/// settings the store runs it with (read.rs's `OLDEST_QUEUED` in a
/// transaction with index-only plans): no scan of the table, no sort.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_oldest_queued_probes_the_partial_index() {
    let Some(schema) = PgSchema::create() else {
        return;
    };
    let _store = PgStore::connect(schema.options(Opts::default()))
        .await
        .unwrap();
    let client = schema.client().await;
    client
        .batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        .await
        .unwrap();
    let plan: Vec<String> = client
        .query(
            "EXPLAIN SELECT created_at_ms FROM messages
             WHERE state = 'Queued' ORDER BY id LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("messages_queued"), "{plan}");
    assert!(!plan.contains("Sort"), "{plan}");
}
