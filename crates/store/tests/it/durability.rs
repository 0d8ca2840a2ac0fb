//! SPEC M9 and DESIGN invariant 1: what was acknowledged survives; a full disk
//! refuses new work and loses nothing.

use std::path::{Path, PathBuf};

use hotsite_store::{
    InboundUpdate, Inserted, MessageId, MessageState, SqliteOptions, SqliteStore, StoreError,
    StoreStats, Update,
};
use tempfile::TempDir;
use tokio::task::JoinSet;

use crate::{both_backends, message, mo, receipt, submitted, AnyStore};

/// A SQLite store in its own directory, for the tests of the file itself.
fn temp_store(options: SqliteOptions) -> (TempDir, PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hotsite.db");
    let store = SqliteStore::open(&path, options).expect("open");
    (dir, path, store)
}

fn store() -> (TempDir, PathBuf, SqliteStore) {
    temp_store(SqliteOptions::default())
}

fn reopen(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default()).expect("reopen")
}

fn without_commits(stats: StoreStats) -> StoreStats {
    StoreStats {
        commits: 0,
        ..stats
    }
}

/// DESIGN invariant 1: a full database refuses new work with `Full`, keeps every
/// committed message readable, and accepts work again once space is freed.
/// (`max_page_count` plays the full disk: SQLite answers SQLITE_FULL exactly as it
/// does on ENOSPC.)
#[tokio::test]
async fn sqlite_full_database_refuses_new_work_and_keeps_committed_work() {
    let (_dir, path, store) = temp_store(SqliteOptions {
        max_page_count: Some(64),
        ..SqliteOptions::default()
    });
    let mut accepted = Vec::new();
    // Fill it: batches of twenty until one is refused, then single messages.
    for batch_size in [20, 1] {
        let error = loop {
            let batch = (0..batch_size)
                .map(|i| {
                    let mut new = message(&format!("k{}-{i}", accepted.len()), 1);
                    new.body = vec![b'x'; 1000];
                    new
                })
                .collect();
            match store.insert_messages(batch).await {
                Ok(inserted) => accepted.extend(inserted.into_iter().map(Inserted::id)),
                Err(error) => break error,
            }
            assert!(accepted.len() < 10_000, "never filled up");
        };
        assert!(matches!(error, StoreError::Full(_)), "{error:?}");
        assert!(error.to_string().contains("new work refused"), "{error}");
    }
    assert!(!accepted.is_empty());

    // Concurrent requests in the same group: all refused, none half-applied.
    let big = |key: String| {
        let mut new = message(&key, 2);
        new.body = vec![b'y'; 4000];
        new
    };
    let (a, b) = tokio::join!(
        store.insert_messages(vec![big("late-a".into())]),
        store.insert_messages(vec![big("late-b".into())]),
    );
    assert!(matches!(a, Err(StoreError::Full(_))), "{a:?}");
    assert!(matches!(b, Err(StoreError::Full(_))), "{b:?}");
    // Health says so (invariant 1), and an update that fits changes nothing of it:
    // only new rows prove there is room again.
    assert!(store.stats().await.unwrap().storage_full);
    let _ = store
        .update(vec![Update::Requeued {
            id: accepted[0],
            kind: "requeued".into(),
            reason: "x".into(),
            at_ms: 3,
        }])
        .await;
    assert!(store.stats().await.unwrap().storage_full);
    // Nor does a repeat of a stored message (a client resending after a 507,
    // SPEC M8): it commits without a new row.
    let mut repeat = message("k0-0", 1);
    repeat.body = vec![b'x'; 1000];
    if let Ok(inserted) = store.insert_messages(vec![repeat]).await {
        assert!(
            matches!(inserted[..], [Inserted::Existing(_)]),
            "{inserted:?}"
        );
    }
    assert!(store.stats().await.unwrap().storage_full);

    // Everything acknowledged is intact and readable, also after a reopen.
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.queued, accepted.len() as u64);
    let queued = store.queued_after(None, 100_000).await.unwrap();
    assert_eq!(queued.iter().map(|q| q.id).collect::<Vec<_>>(), accepted);
    assert!(store.message_by_key("late-a").await.unwrap().is_none());
    drop(store);
    let store = SqliteStore::open(
        &path,
        SqliteOptions {
            max_page_count: Some(64),
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        store.queued_after(None, 100_000).await.unwrap().len(),
        accepted.len()
    );
    assert!(matches!(
        store.insert_messages(vec![big("late-c".into())]).await,
        Err(StoreError::Full(_))
    ));

    // Space freed: new work is accepted again.
    store.set_max_page_count(None).await.unwrap();
    let inserted = store
        .insert_messages(vec![big("late-a".into())])
        .await
        .unwrap();
    assert!(matches!(inserted[..], [Inserted::Created(_)]));
    assert_eq!(
        store.stats().await.unwrap().queued,
        accepted.len() as u64 + 1
    );
    assert!(!store.stats().await.unwrap().storage_full);
}

/// A file written by a newer hotsite is refused, with a clear error, untouched.
#[tokio::test]
async fn sqlite_newer_schema_version_is_refused() {
    let (_dir, path, store) = store();
    store.insert_messages(vec![message("k", 1)]).await.unwrap();
    drop(store);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 4).unwrap();
    }
    let error = SqliteStore::open(&path, SqliteOptions::default()).unwrap_err();
    assert_eq!(
        error,
        StoreError::SchemaTooNew {
            found: 4,
            supported: 3
        }
    );
    assert!(error.to_string().contains("upgrade hotsite"), "{error}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 4);
}

/// Messages `a` and `b`; `a` submitted with `provider_message_id`.
async fn two_messages_first_submitted(
    store: &SqliteStore,
    provider_message_id: &str,
) -> Vec<MessageId> {
    let ids: Vec<MessageId> = store
        .insert_messages(vec![message("a", 1), message("b", 2)])
        .await
        .unwrap()
        .into_iter()
        .map(Inserted::id)
        .collect();
    store
        .update(vec![submitted(ids[0], provider_message_id, 3)])
        .await
        .unwrap();
    ids
}

/// Turns a current file back into exactly what version 2 wrote.
fn downgrade_to_v2(conn: &rusqlite::Connection) {
    conn.execute_batch(
        "DROP INDEX messages_provider;
         ALTER TABLE messages DROP COLUMN reference;
         ALTER TABLE messages DROP COLUMN provider_key;
         ALTER TABLE messages DROP COLUMN ref_collisions;
         CREATE INDEX messages_provider ON messages(provider_message_id)
             WHERE provider_message_id IS NOT NULL;
         DROP TABLE destination_refs;
         DROP TABLE receipt_keys;
         DROP INDEX inbound_uncorrelated;
         CREATE INDEX inbound_uncorrelated ON inbound(provider_message_id)
             WHERE kind = 'Receipt' AND message_id IS NULL;",
    )
    .unwrap();
    conn.pragma_update(None, "user_version", 2).unwrap();
}

/// A version 2 file is upgraded in place (SPEC M13, M16): its messages keep the
/// reference they were sent with (`id & 0xFFFF`), a submitted message's provider
/// id is found in any case or padding, and a receipt stored uncorrelated is
/// applied by the submit response that comes after the upgrade.
#[tokio::test]
async fn sqlite_version_2_file_is_upgraded() {
    let (_dir, path, store) = store();
    let ids = two_messages_first_submitted(&store, "00AB").await;
    store
        .insert_inbound(vec![crate::receipt("dr-b", "CD", 2, 4)])
        .await
        .unwrap();
    drop(store);
    downgrade_to_v2(&rusqlite::Connection::open(&path).unwrap());
    let store = reopen(&path);
    let queued = store.queued_after(None, 10).await.unwrap();
    assert_eq!(queued[0].reference, Some(ids[1].legacy_reference()));
    assert_eq!(store.stats().await.unwrap().receipts_uncorrelated, 1);
    // The old message's id, written another way by its receipt.
    store
        .insert_inbound(vec![crate::receipt("dr-a", "ab", 2, 5)])
        .await
        .unwrap();
    let first = store.message(ids[0]).await.unwrap().unwrap();
    assert_eq!(first.state, MessageState::Delivered);
    // The receipt stored before the upgrade, found by its key.
    store
        .update(vec![submitted(ids[1], "0cd", 6)])
        .await
        .unwrap();
    let second = store.message(ids[1]).await.unwrap().unwrap();
    assert_eq!(second.state, MessageState::Delivered);
    assert_eq!(store.stats().await.unwrap().receipts_uncorrelated, 0);
}

/// A file written by the previous version (1, before routes) is upgraded in place:
/// its queued messages keep their place and take the default route's first hop.
#[tokio::test]
async fn sqlite_version_1_file_is_upgraded() {
    let (_dir, path, store) = store();
    let ids = two_messages_first_submitted(&store, "p-a").await;
    drop(store);
    {
        // Exactly what version 1 had: no route, hop or email columns.
        let conn = rusqlite::Connection::open(&path).unwrap();
        downgrade_to_v2(&conn);
        for column in ["route", "hop", "email"] {
            conn.execute_batch(&format!("ALTER TABLE messages DROP COLUMN {column}"))
                .unwrap();
        }
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let store = reopen(&path);
    let queued = store.queued_after(None, 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].id, ids[1]);
    assert_eq!(
        (
            queued[0].route.as_str(),
            queued[0].hop,
            queued[0].email.as_deref()
        ),
        ("", 0, None)
    );
    let first = store.message(ids[0]).await.unwrap().unwrap();
    assert_eq!(first.state, MessageState::Submitted);
    assert_eq!(first.provider_message_id.as_deref(), Some("p-a"));
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 3);
}

/// A file that is not a database is reported as corrupt, not overwritten.
#[test]
fn sqlite_foreign_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a.db");
    std::fs::write(&path, vec![b'#'; 8192]).unwrap();
    let error = SqliteStore::open(&path, SqliteOptions::default()).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
    assert_eq!(std::fs::read(&path).unwrap(), vec![b'#'; 8192]);
}

/// DESIGN invariant 1 on a real full disk (ENOSPC from a 1 MiB tmpfs), not only a
/// size limit. Needs root to mount; skipped (with a note) where mounting fails.
#[tokio::test]
async fn sqlite_real_full_disk_refuses_new_work_and_keeps_committed_work() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mount) = Tmpfs::mount(dir.path(), "1m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let path = dir.path().join("full.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let mut accepted = Vec::new();
    for batch_size in [50, 1] {
        let error = loop {
            let batch = (0..batch_size)
                .map(|i| {
                    let mut new = message(&format!("k{}-{i}", accepted.len()), 1);
                    new.body = vec![b'x'; 500];
                    new
                })
                .collect();
            match store.insert_messages(batch).await {
                Ok(inserted) => accepted.extend(inserted.into_iter().map(Inserted::id)),
                Err(error) => break error,
            }
            assert!(accepted.len() < 100_000, "never filled up");
        };
        assert!(matches!(error, StoreError::Full(_)), "{error:?}");
    }
    assert!(!accepted.is_empty());
    let queued = store.queued_after(None, 100_000).await.unwrap();
    assert_eq!(queued.iter().map(|q| q.id).collect::<Vec<_>>(), accepted);

    // Space freed: work is accepted again, and everything survives a reopen.
    mount.resize("8m");
    let more = store
        .insert_messages(vec![message("after", 2)])
        .await
        .unwrap();
    assert!(matches!(more[..], [Inserted::Created(_)]));
    drop(store);
    let store = reopen(&path);
    assert_eq!(
        store.queued_after(None, 100_000).await.unwrap().len(),
        accepted.len() + 1
    );
    drop(store);
    drop(mount);
}

/// A tmpfs mounted for one test, unmounted on drop (also when the test fails).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(dir.to_owned()))
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

both_backends! {
    /// SPEC M9: everything acknowledged is there after the store is closed and reopened.
    async fn committed_work_survives_reopen(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let ids: Vec<MessageId> = store
            .insert_messages((0..100).map(|i| message(&format!("k{i}"), i)).collect())
            .await
            .unwrap()
            .into_iter()
            .map(Inserted::id)
            .collect();
        store
            .update(vec![
                submitted(ids[0], "P-0", 200),
                Update::Requeued {
                    id: ids[1],
                    kind: "requeued".to_owned(),
                    reason: "ambiguous".to_owned(),
                    at_ms: 201,
                },
            ])
            .await
            .unwrap();
        store
            .insert_inbound(vec![receipt("dr", "P-0", 2, 202), mo("mo", 203)])
            .await
            .unwrap();
        store
            .update_inbound(vec![InboundUpdate::Delivered { id: 2, at_ms: 204 }])
            .await
            .unwrap();
        let mut before = Vec::new();
        for id in &ids {
            before.push(store.message(*id).await.unwrap().unwrap());
        }
        let stats = store.stats().await.unwrap();
        let pending = store.pending_inbound(1000, 10).await.unwrap();
        let store = store.reopen().await;
        for (id, view) in ids.iter().zip(&before) {
            assert_eq!(store.message(*id).await.unwrap().as_ref(), Some(view));
        }
        assert_eq!(before[0].state, MessageState::Delivered);
        assert_eq!(
            without_commits(store.stats().await.unwrap()),
            without_commits(stats)
        );
        assert_eq!(store.pending_inbound(1000, 10).await.unwrap(), pending);
        assert_eq!(store.queued_after(None, 1000).await.unwrap().len(), 99);
        // Ids keep ascending after a reopen; keys stay unique.
        let again = store
            .insert_messages(vec![message("k5", 9), message("new", 9)])
            .await
            .unwrap();
        assert_eq!(
            again,
            vec![
                Inserted::Existing(ids[5]),
                Inserted::Created(MessageId(101))
            ]
        );
    }

    /// Group commit: 1000 concurrent single-message inserts share a few transactions.
    async fn concurrent_inserts_are_committed_in_groups(backend: Backend) {
        let Some(store) = backend.fresh().await else {
            return;
        };
        let before = store.stats().await.unwrap().commits;
        let mut tasks = JoinSet::new();
        for i in 0..1000 {
            let store: AnyStore = (*store).clone();
            tasks.spawn(async move {
                store
                    .insert_messages(vec![message(&format!("k{i}"), i)])
                    .await
                    .unwrap()
            });
        }
        let mut created = 0;
        while let Some(result) = tasks.join_next().await {
            assert!(matches!(result.unwrap()[..], [Inserted::Created(_)]));
            created += 1;
        }
        assert_eq!(created, 1000);
        let stats = store.stats().await.unwrap();
        let commits = stats.commits - before;
        assert_eq!(stats.queued, 1000);
        assert!(
            commits <= 100,
            "1000 concurrent requests took {commits} commits: not grouped"
        );
    }
}
