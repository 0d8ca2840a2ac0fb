//! Integration tests of `hotsite-store`, one suite run against both backends:
//! every backend-neutral test exists twice, as `<test>::sqlite` (a database file
//! in a temporary directory) and `<test>::pg` (a schema of its own in the
//! PostgreSQL of `HOTSITE_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`, dropped when the test ends).
//!
//! Without a reachable PostgreSQL the `pg` half is skipped with a note, unless
//! `CI` is set or `HOTSITE_TEST_PG=require`: then it fails.

mod durability;
mod leases;
mod messages;
mod model;
mod pg;
mod receipts;
mod references;

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use hotsite_store::{
    InboundInserted, InboundKind, InboundUpdate, Inserted, Lease, MessageId, MessageView,
    NewInbound, NewMessage, PendingInbound, PgOptions, PgStore, QueuedMessage, ReceiptIdFormat,
    Resubmit, SqliteOptions, SqliteStore, Store, StoreError, StoreStats, Update,
};
use tempfile::TempDir;

/// Generates `<name>::sqlite` and `<name>::pg` from `async fn <name>(backend: Backend)`.
macro_rules! both_backends {
    ($($(#[$attr:meta])* async fn $name:ident($backend:ident: Backend) $body:block)*) => {$(
        $(#[$attr])*
        async fn $name($backend: crate::Backend) $body

        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(crate::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pg() {
                super::$name(crate::Backend::Pg).await
            }
        }
    )*};
}
pub(crate) use both_backends;

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Pg,
}

/// The options both backends share.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opts {
    pub(crate) reference_window_ms: i64,
    pub(crate) receipt_correlation_wait_ms: i64,
}

impl Default for Opts {
    fn default() -> Self {
        let defaults = SqliteOptions::default();
        Opts {
            reference_window_ms: defaults.reference_window_ms,
            receipt_correlation_wait_ms: defaults.receipt_correlation_wait_ms,
        }
    }
}

impl Backend {
    /// A fresh, empty store; `None` when the PostgreSQL half is skipped.
    pub(crate) async fn fresh(self) -> Option<TestStore> {
        self.open(Opts::default()).await
    }

    pub(crate) async fn open(self, opts: Opts) -> Option<TestStore> {
        let place = match self {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("hotsite.db");
                Place::Sqlite {
                    _dir: Arc::new(dir),
                    path,
                }
            }
            Backend::Pg => Place::Pg(Arc::new(PgSchema::create()?)),
        };
        let store = place.open(opts).await.expect("open");
        Some(TestStore { store, place, opts })
    }
}

/// A store of either backend, used through the [`Store`] trait.
#[derive(Clone, Debug)]
pub(crate) enum AnyStore {
    Sqlite(SqliteStore),
    Pg(PgStore),
}

macro_rules! delegate {
    ($(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        impl AnyStore {
            $(pub(crate) async fn $name(&self $(, $arg: $ty)*) -> Result<$ret, StoreError> {
                match self {
                    AnyStore::Sqlite(store) => Store::$name(store $(, $arg)*).await,
                    AnyStore::Pg(store) => Store::$name(store $(, $arg)*).await,
                }
            })*
        }
    };
}

delegate! {
    fn insert_messages(&self, batch: Vec<NewMessage>) -> Vec<Inserted>;
    fn queued_after(&self, after: Option<MessageId>, limit: usize) -> Vec<QueuedMessage>;
    fn claim_queued(&self, lease: Lease, after: Option<MessageId>, limit: usize) -> Vec<QueuedMessage>;
    fn renew_queued(&self, lease: Lease, ids: Vec<MessageId>) -> Vec<MessageId>;
    fn claim_inbound(&self, lease: Lease, limit: usize) -> Vec<PendingInbound>;
    fn renew_inbound(&self, lease: Lease, ids: Vec<i64>) -> Vec<i64>;
    fn release_claims(&self, owner: String) -> ();
    fn update(&self, updates: Vec<Update>) -> Vec<Resubmit>;
    fn message(&self, id: MessageId) -> Option<MessageView>;
    fn message_by_key(&self, key: &str) -> Option<MessageView>;
    fn insert_inbound(&self, batch: Vec<NewInbound>) -> Vec<InboundInserted>;
    fn pending_inbound(&self, now_ms: i64, limit: usize) -> Vec<PendingInbound>;
    fn update_inbound(&self, updates: Vec<InboundUpdate>) -> ();
    fn inbound_message(&self, id: i64) -> Option<MessageId>;
    fn stats(&self) -> StoreStats;
}

/// Where a test store lives: kept (and cleaned up) as long as the test runs.
#[derive(Clone)]
enum Place {
    Sqlite { _dir: Arc<TempDir>, path: PathBuf },
    Pg(Arc<PgSchema>),
}

impl Place {
    async fn open(&self, opts: Opts) -> Result<AnyStore, StoreError> {
        match self {
            Place::Sqlite { path, .. } => SqliteStore::open(
                path,
                SqliteOptions {
                    reference_window_ms: opts.reference_window_ms,
                    receipt_correlation_wait_ms: opts.receipt_correlation_wait_ms,
                    ..SqliteOptions::default()
                },
            )
            .map(AnyStore::Sqlite),
            Place::Pg(schema) => PgStore::connect(schema.options(opts))
                .await
                .map(AnyStore::Pg),
        }
    }
}

/// A test's store, with where it lives.
pub(crate) struct TestStore {
    store: AnyStore,
    place: Place,
    opts: Opts,
}

impl Deref for TestStore {
    type Target = AnyStore;

    fn deref(&self) -> &AnyStore {
        &self.store
    }
}

impl TestStore {
    /// Closes the store and opens it again where it was (SPEC M9).
    pub(crate) async fn reopen(self) -> TestStore {
        let TestStore { store, place, opts } = self;
        drop(store);
        let store = place.open(opts).await.expect("reopen");
        TestStore { store, place, opts }
    }

    /// Runs one SQL query that answers text rows, on the store's own tables.
    pub(crate) async fn query_texts(&self, sql: &str) -> Vec<String> {
        match &self.place {
            Place::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                let mut statement = conn.prepare(sql).unwrap();
                let rows = statement
                    .query_map([], |row| row.get(0))
                    .unwrap()
                    .collect::<Result<Vec<String>, _>>()
                    .unwrap();
                rows
            }
            Place::Pg(schema) => schema
                .client()
                .await
                .query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect(),
        }
    }
}

/// The PostgreSQL the `pg` tests use.
pub(crate) fn pg_url() -> String {
    std::env::var("HOTSITE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// `url` with its connections named `name` (so a test ends only its own).
fn with_application_name(url: &str, name: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}application_name={name}")
    } else {
        format!("{url} application_name={name}")
    }
}

/// Runs `body` on a runtime of its own, in a thread of its own: for work done
/// outside the test's runtime (the first reachability check, dropping schemas
/// from `Drop`).
fn on_own_runtime<T: Send + 'static>(
    body: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>
        + Send
        + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(body())
    })
    .join()
    .expect("helper thread")
}

async fn admin_client(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(std::time::Duration::from_secs(3));
    config.application_name("hotsite-test-admin");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Whether the PostgreSQL half runs: checked once per process. Schemas left by
/// test processes that died are dropped on the way.
fn pg_available() -> bool {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    let url = pg_url();
    let outcome = AVAILABLE.get_or_init(|| {
        let url = url.clone();
        on_own_runtime(move || {
            Box::pin(async move {
                let client = admin_client(&url)
                    .await
                    .map_err(|error| error.to_string())?;
                let stale = client
                    .query(
                        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'hs\\_test\\_%'",
                        &[],
                    )
                    .await
                    .map_err(|error| error.to_string())?;
                for row in stale {
                    let schema: String = row.get(0);
                    let pid = schema
                        .split('_')
                        .nth(2)
                        .and_then(|pid| pid.parse::<u32>().ok());
                    let alive = pid
                        .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
                    if !alive {
                        let _ = client
                            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                            .await;
                    }
                }
                Ok(())
            })
        })
    });
    match outcome {
        Ok(()) => true,
        Err(error) => {
            let required = std::env::var_os("CI").is_some()
                || std::env::var("HOTSITE_TEST_PG").is_ok_and(|value| value == "require");
            assert!(
                !required,
                "PostgreSQL half required (CI or HOTSITE_TEST_PG=require) but there is no \
                 server at {url}: {error}"
            );
            eprintln!(
                "PostgreSQL half skipped: no server at {url}; start one or set \
                 HOTSITE_TEST_PG_URL (HOTSITE_TEST_PG=require makes this fail)"
            );
            false
        }
    }
}

/// A schema of its own for one test, dropped (with every connection to it
/// ended) when the test ends, pass or fail.
pub(crate) struct PgSchema {
    pub(crate) name: String,
    /// The URL with `application_name` = the schema's name.
    pub(crate) url: String,
}

impl PgSchema {
    /// `None` when the PostgreSQL half is skipped.
    pub(crate) fn create() -> Option<PgSchema> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        if !pg_available() {
            return None;
        }
        let name = format!(
            "hs_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let url = with_application_name(&pg_url(), &name);
        Some(PgSchema { name, url })
    }

    pub(crate) fn options(&self, opts: Opts) -> PgOptions {
        PgOptions {
            url: self.url.clone(),
            schema: Some(self.name.clone()),
            reference_window_ms: opts.reference_window_ms,
            receipt_correlation_wait_ms: opts.receipt_correlation_wait_ms,
            ..PgOptions::default()
        }
    }

    /// A plain connection with the schema on its `search_path` (not named after
    /// the schema: ending the store's connections leaves it alone).
    pub(crate) async fn client(&self) -> tokio_postgres::Client {
        let client = admin_client(&pg_url()).await.expect("connect");
        client
            .batch_execute(&format!("SET search_path = {}", self.name))
            .await
            .unwrap();
        client
    }

    /// Ends every connection of the stores on this schema (as an administrator
    /// or a server restart would); answers how many.
    pub(crate) async fn terminate_connections(&self) -> i64 {
        let client = admin_client(&pg_url()).await.expect("connect");
        client
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE application_name = $1 AND pid <> pg_backend_pid()",
                &[&self.name],
            )
            .await
            .unwrap()
            .len() as i64
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        let url = pg_url();
        on_own_runtime(move || {
            Box::pin(async move {
                let Ok(client) = admin_client(&url).await else {
                    return;
                };
                let _ = client
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE application_name = $1 AND pid <> pg_backend_pid()",
                        &[&name],
                    )
                    .await;
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await;
            })
        });
    }
}

pub(crate) fn message(key: &str, at_ms: i64) -> NewMessage {
    NewMessage {
        key: key.to_owned(),
        source: "hotsite".to_owned(),
        destination: format!("+4670{key}"),
        body: format!("body of {key}").into_bytes(),
        data_coding: 0,
        route: String::new(),
        email: None,
        received_at_ms: at_ms,
    }
}

pub(crate) fn receipt(
    dedupe_key: &str,
    provider_message_id: &str,
    state: u8,
    at_ms: i64,
) -> NewInbound {
    NewInbound {
        kind: InboundKind::Receipt,
        dedupe_key: dedupe_key.to_owned(),
        provider_message_id: Some(provider_message_id.to_owned()),
        message_state: Some(state),
        source: "+467000".to_owned(),
        destination: "hotsite".to_owned(),
        body: format!("id:{provider_message_id} stat:{state}").into_bytes(),
        site: "b".to_owned(),
        smsc: "b1".to_owned(),
        received_at_ms: at_ms,
        id_format: ReceiptIdFormat::Same,
        dedupe_window_ms: None,
    }
}

pub(crate) fn mo(dedupe_key: &str, at_ms: i64) -> NewInbound {
    NewInbound {
        kind: InboundKind::Mo,
        dedupe_key: dedupe_key.to_owned(),
        provider_message_id: None,
        message_state: None,
        source: "+467001".to_owned(),
        destination: "12345".to_owned(),
        body: b"hello".to_vec(),
        site: "a".to_owned(),
        smsc: "a1".to_owned(),
        received_at_ms: at_ms,
        id_format: ReceiptIdFormat::Same,
        dedupe_window_ms: None,
    }
}

pub(crate) fn submitted(id: MessageId, provider_message_id: &str, at_ms: i64) -> Update {
    Update::Submitted {
        id,
        provider_message_id: provider_message_id.to_owned(),
        site: "a".to_owned(),
        smsc: "a1".to_owned(),
        at_ms,
    }
}

/// `at kind detail` lines of a message's history, for compact assertions.
pub(crate) async fn history(store: &AnyStore, id: MessageId) -> Vec<String> {
    store
        .message(id)
        .await
        .expect("read")
        .expect("message exists")
        .events
        .into_iter()
        .map(|event| format!("{} {} {}", event.at_ms, event.kind, event.detail))
        .collect()
}
