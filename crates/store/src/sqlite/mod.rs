//! The SQLite backend: one writer thread (group commit), a few reader threads, each
//! with its own connection to the same WAL-mode file.

mod claims;
mod lock;
mod read;
mod schema;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::oneshot;

use crate::error::StoreError;
use crate::types::{
    InboundInserted, InboundUpdate, Inserted, Lease, MessageId, MessageState, MessageView,
    NewInbound, NewMessage, PendingInbound, QueuedMessage, Resubmit, StoreStats, Update,
};
use crate::Store;

use self::claims::ClaimTable;
use self::writer::{Reply, WriteRequest, Writer};

/// How to open a [`SqliteStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// At most this many write requests go into one transaction (default 4096).
    pub max_batch: usize,
    /// `PRAGMA synchronous=FULL` (default, required for SPEC M9: every commit is
    /// fsynced). `false` means `NORMAL`: survives a crash of hotsite but not of the
    /// machine. For tests and benchmarks only.
    pub synchronous_full: bool,
    /// Read connections, each on its own thread (default 2).
    pub readers: usize,
    /// `PRAGMA max_page_count` on the write connection: a size limit for the database
    /// file, in pages (4 KiB by default). Reaching it refuses new work with
    /// [`StoreError::Full`], like a full disk. `None` (default): no limit but the disk.
    pub max_page_count: Option<u64>,
    /// A destination's `user_message_reference`s run on, one after the other, while
    /// it had a message within this many milliseconds (default 24 h, SPEC M16): a
    /// reference is used again for a destination only after 65,536 others.
    pub reference_window_ms: i64,
    /// A receipt that matches no message waits this long for its submit response
    /// before it is offered to the application, uncorrelated (default 60 s, SPEC M13).
    pub receipt_correlation_wait_ms: i64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_batch: 4096,
            synchronous_full: true,
            readers: 2,
            max_page_count: None,
            reference_window_ms: 24 * 3_600_000,
            receipt_correlation_wait_ms: 60_000,
        }
    }
}

/// The SQLite [`Store`]: cheap to clone, every clone shares the same writer and
/// readers. See the crate docs for the contract.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

struct Inner {
    path: PathBuf,
    writer: Option<mpsc::Sender<WriteRequest>>,
    readers: Option<mpsc::Sender<ReadJob>>,
    counters: Arc<Mutex<Counters>>,
    /// Leases on messages and inbound items (SPEC M17), in memory: see `claims.rs`.
    claims: Mutex<Claims>,
    threads: Vec<JoinHandle<()>>,
    /// Held until every thread has stopped (SPEC M17).
    lock: Option<lock::StoreLock>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channels ends the threads' loops; the writer finishes its batch.
        self.writer.take();
        self.readers.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        // Only now may another process open the file.
        self.lock.take();
    }
}

/// Who holds which queued message and inbound item.
#[derive(Debug, Default)]
struct Claims {
    messages: ClaimTable<i64>,
    inbound: ClaimTable<i64>,
}

/// Counts kept in memory: computed at open, moved by each committed transaction.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub(crate) states: [u64; 7],
    pub(crate) inbound_pending: u64,
    pub(crate) inbound_total: u64,
    pub(crate) commits: u64,
    pub(crate) receipts_uncorrelated: u64,
    /// Set by a write that failed for lack of space, cleared by the next commit
    /// that added rows.
    pub(crate) storage_full: bool,
}

impl Counters {
    fn stats(&self) -> StoreStats {
        let state = |state: MessageState| self.states[state.index()];
        StoreStats {
            queued: state(MessageState::Queued),
            submitted: state(MessageState::Submitted),
            final_states: MessageState::ALL
                .into_iter()
                .filter(|state| state.is_final())
                .map(state)
                .sum(),
            failed: state(MessageState::Failed),
            inbound_pending: self.inbound_pending,
            inbound_total: self.inbound_total,
            commits: self.commits,
            receipts_uncorrelated: self.receipts_uncorrelated,
            storage_full: self.storage_full,
            // Read from the database by `stats`, not counted.
            oldest_queued_at_ms: None,
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`: checks the schema version,
    /// creates the schema, switches to WAL, and starts the writer and reader threads.
    /// Refuses a file written by a newer version ([`StoreError::SchemaTooNew`]).
    pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let opening = || format!("opening {}", path.display());
        // Before the file is touched: one gateway per store (SPEC M17).
        let lock = lock::acquire(path)?;
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|error| map_error(&opening(), error))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|error| map_error(&opening(), error))?;
        // Reading the version first: a newer or foreign file is refused untouched.
        if schema::version(&conn)? > schema::SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: schema::version(&conn)?,
                supported: schema::SCHEMA_VERSION,
            });
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
            .map_err(|error| map_error(&opening(), error))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Io(format!(
                "{}: the file system does not support WAL (journal_mode is {mode})",
                opening()
            )));
        }
        schema::check_and_create(&mut conn)?;
        let synchronous = if options.synchronous_full {
            "FULL"
        } else {
            "NORMAL"
        };
        conn.execute_batch(&format!(
            "PRAGMA synchronous={synchronous}; PRAGMA temp_store=MEMORY; \
             PRAGMA cache_size=-8192;"
        ))
        .map_err(|error| map_error(&opening(), error))?;
        conn.set_prepared_statement_cache_capacity(64);
        let unlimited_pages: u64 = conn
            .query_row("PRAGMA max_page_count", [], |row| row.get(0))
            .map_err(|error| map_error(&opening(), error))?;
        if let Some(pages) = options.max_page_count {
            writer::set_max_page_count(&conn, pages)?;
        }
        let counters = Arc::new(Mutex::new(schema::count(&conn)?));

        let mut read_connections = Vec::new();
        for _ in 0..options.readers.max(1) {
            let reader = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .and_then(|reader| {
                reader.busy_timeout(std::time::Duration::from_secs(5))?;
                reader.execute_batch("PRAGMA query_only=ON; PRAGMA cache_size=-16384;")?;
                reader.set_prepared_statement_cache_capacity(32);
                Ok(reader)
            })
            .map_err(|error| map_error(&opening(), error))?;
            read_connections.push(reader);
        }

        let mut threads = Vec::new();
        let (write_sender, write_receiver) = mpsc::channel();
        let writer = Writer::new(
            conn,
            write_receiver,
            options.max_batch.max(1),
            unlimited_pages,
            Arc::clone(&counters),
            writer::Policy {
                reference_window_ms: options.reference_window_ms.max(0),
                correlation_wait_ms: options.receipt_correlation_wait_ms.max(0),
            },
        );
        threads.push(spawn("hotsite-store-writer".to_owned(), move || {
            writer.run()
        })?);
        let (read_sender, read_receiver) = mpsc::channel::<ReadJob>();
        let read_receiver = Arc::new(Mutex::new(read_receiver));
        for (index, reader) in read_connections.into_iter().enumerate() {
            let jobs = Arc::clone(&read_receiver);
            threads.push(spawn(format!("hotsite-store-reader-{index}"), move || {
                loop {
                    let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    match job {
                        Ok(job) => job(&reader),
                        Err(mpsc::RecvError) => return,
                    }
                }
            })?);
        }
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Some(write_sender),
                readers: Some(read_sender),
                counters,
                claims: Mutex::default(),
                threads,
                lock: Some(lock),
            }),
        })
    }

    /// See [`Store::insert_messages`].
    pub async fn insert_messages(
        &self,
        batch: Vec<NewMessage>,
    ) -> Result<Vec<Inserted>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|reply| WriteRequest::InsertMessages(batch, reply))
            .await
    }

    /// See [`Store::queued_after`].
    pub async fn queued_after(
        &self,
        after: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        self.read(move |conn| read::queued_after(conn, after, limit))
            .await
    }

    /// See [`Store::update`].
    pub async fn update(&self, updates: Vec<Update>) -> Result<Vec<Resubmit>, StoreError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        // Messages that leave the queue leave their claims behind.
        let leaving: Vec<MessageId> = updates
            .iter()
            .filter(|update| matches!(update, Update::Submitted { .. } | Update::Failed { .. }))
            .map(Update::id)
            .collect();
        let resubmits = self
            .write(|reply| WriteRequest::Update(updates, reply))
            .await?;
        if !leaving.is_empty() {
            let mut claims = self.claims();
            for id in leaving {
                if !resubmits.iter().any(|resubmit| resubmit.id == id) {
                    claims.messages.forget(id.0);
                }
            }
        }
        Ok(resubmits)
    }

    /// See [`Store::message`].
    pub async fn message(&self, id: MessageId) -> Result<Option<MessageView>, StoreError> {
        self.read(move |conn| read::message(conn, read::By::Id(id)))
            .await
    }

    /// See [`Store::message_by_key`].
    pub async fn message_by_key(&self, key: &str) -> Result<Option<MessageView>, StoreError> {
        let key = key.to_owned();
        self.read(move |conn| read::message(conn, read::By::Key(&key)))
            .await
    }

    /// See [`Store::insert_inbound`].
    pub async fn insert_inbound(
        &self,
        batch: Vec<NewInbound>,
    ) -> Result<Vec<InboundInserted>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|reply| WriteRequest::InsertInbound(batch, reply))
            .await
    }

    /// See [`Store::pending_inbound`].
    pub async fn pending_inbound(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingInbound>, StoreError> {
        self.read(move |conn| read::pending_inbound(conn, now_ms, limit))
            .await
    }

    /// See [`Store::update_inbound`].
    pub async fn update_inbound(&self, updates: Vec<InboundUpdate>) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = updates
            .iter()
            .map(|(InboundUpdate::Delivered { id, .. } | InboundUpdate::Retry { id, .. })| *id)
            .collect();
        self.write(|reply| WriteRequest::UpdateInbound(updates, reply))
            .await?;
        // Delivered, or given up until its retry is due.
        let mut claims = self.claims();
        for id in ids {
            claims.inbound.forget(id);
        }
        Ok(())
    }

    /// See [`Store::claim_queued`].
    pub async fn claim_queued(
        &self,
        lease: Lease,
        after: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        let mut claimed = Vec::new();
        let mut cursor = after;
        // Pages past the messages this process holds, which sit in the queue too.
        while claimed.len() < limit {
            let want = limit - claimed.len();
            let page = self.queued_after(cursor, want).await?;
            let exhausted = page.len() < want;
            let mut claims = self.claims();
            claims.messages.sweep(lease.now_ms);
            for message in page {
                cursor = Some(message.id);
                if claims.messages.try_claim(
                    message.id.0,
                    &lease.owner,
                    lease.now_ms,
                    lease.until_ms(),
                ) {
                    claimed.push(message);
                }
            }
            if exhausted {
                break;
            }
        }
        // The page was read before the claims were checked: a message whose
        // holder recorded its submit (and dropped its claim) in between is in
        // it. Only what is still queued now is handed out, so a message is
        // never sent twice from one process.
        if let (Some(first), Some(last)) = (claimed.first(), claimed.last()) {
            let (lo, hi) = (first.id.0, last.id.0);
            let queued = self
                .read(move |conn| read::queued_ids(conn, lo, hi))
                .await?;
            let mut claims = self.claims();
            claimed.retain(|message| {
                let keep = queued.binary_search(&message.id.0).is_ok();
                if !keep {
                    claims.messages.forget(message.id.0);
                }
                keep
            });
        }
        Ok(claimed)
    }

    /// See [`Store::renew_queued`].
    pub async fn renew_queued(
        &self,
        lease: Lease,
        ids: Vec<MessageId>,
    ) -> Result<Vec<MessageId>, StoreError> {
        let ids: Vec<i64> = ids.into_iter().map(|id| id.0).collect();
        let renewed = self
            .claims()
            .messages
            .renew(&lease.owner, &ids, lease.until_ms());
        Ok(renewed.into_iter().map(MessageId).collect())
    }

    /// See [`Store::claim_inbound`].
    pub async fn claim_inbound(
        &self,
        lease: Lease,
        limit: usize,
    ) -> Result<Vec<PendingInbound>, StoreError> {
        // Items held by a lease are due too and come first: read past them.
        let held = self.claims().inbound.len();
        let due = self
            .pending_inbound(lease.now_ms, limit.saturating_add(held))
            .await?;
        let mut claimed: Vec<PendingInbound> = {
            let mut claims = self.claims();
            claims.inbound.sweep(lease.now_ms);
            due.into_iter()
                .filter(|item| {
                    claims
                        .inbound
                        .try_claim(item.id, &lease.owner, lease.now_ms, lease.until_ms())
                })
                .take(limit)
                .collect()
        };
        // As in `claim_queued`: delivered or rescheduled since the read is not
        // handed out again.
        if let (Some(first), Some(last)) = (claimed.first(), claimed.last()) {
            let (lo, hi, now_ms) = (first.id, last.id, lease.now_ms);
            let due = self
                .read(move |conn| read::due_ids(conn, now_ms, lo, hi))
                .await?;
            let mut claims = self.claims();
            claimed.retain(|item| {
                let keep = due.binary_search(&item.id).is_ok();
                if !keep {
                    claims.inbound.forget(item.id);
                }
                keep
            });
        }
        Ok(claimed)
    }

    /// See [`Store::renew_inbound`].
    pub async fn renew_inbound(&self, lease: Lease, ids: Vec<i64>) -> Result<Vec<i64>, StoreError> {
        Ok(self
            .claims()
            .inbound
            .renew(&lease.owner, &ids, lease.until_ms()))
    }

    /// See [`Store::release_claims`].
    pub async fn release_claims(&self, owner: String) -> Result<(), StoreError> {
        let mut claims = self.claims();
        claims.messages.release(&owner);
        claims.inbound.release(&owner);
        Ok(())
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, Claims> {
        self.inner
            .claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// See [`Store::inbound_message`].
    pub async fn inbound_message(&self, id: i64) -> Result<Option<MessageId>, StoreError> {
        self.read(move |conn| read::inbound_message(conn, id)).await
    }

    /// See [`Store::stats`]. The counts are kept in memory; the queue's oldest
    /// message is one probe of the `messages_queued` index on a reader.
    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        let oldest_queued_at_ms = self.read(read::oldest_queued_at_ms).await?;
        let counters = self
            .inner
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats();
        Ok(StoreStats {
            oldest_queued_at_ms,
            ..counters
        })
    }

    /// Changes the size limit of [`SqliteOptions::max_page_count`] at run time
    /// (`None`: no limit but the disk). SQLite never lowers it below the pages in use.
    pub async fn set_max_page_count(&self, pages: Option<u64>) -> Result<(), StoreError> {
        self.write(|reply| WriteRequest::SetMaxPageCount(pages, reply))
            .await
    }

    async fn write<T>(
        &self,
        request: impl FnOnce(Reply<T>) -> WriteRequest,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let writer = self.inner.writer.as_ref().ok_or(StoreError::Closed)?;
        writer
            .send(request(reply))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let readers = self.inner.readers.as_ref().ok_or(StoreError::Closed)?;
        readers
            .send(Box::new(move |conn: &Connection| {
                let _ = reply.send(query(conn));
            }))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

impl Store for SqliteStore {
    fn insert_messages(
        &self,
        batch: Vec<NewMessage>,
    ) -> impl std::future::Future<Output = Result<Vec<Inserted>, StoreError>> + Send {
        SqliteStore::insert_messages(self, batch)
    }

    fn queued_after(
        &self,
        after: Option<MessageId>,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Vec<QueuedMessage>, StoreError>> + Send {
        SqliteStore::queued_after(self, after, limit)
    }

    fn update(
        &self,
        updates: Vec<Update>,
    ) -> impl std::future::Future<Output = Result<Vec<Resubmit>, StoreError>> + Send {
        SqliteStore::update(self, updates)
    }

    fn claim_queued(
        &self,
        lease: Lease,
        after: Option<MessageId>,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Vec<QueuedMessage>, StoreError>> + Send {
        SqliteStore::claim_queued(self, lease, after, limit)
    }

    fn renew_queued(
        &self,
        lease: Lease,
        ids: Vec<MessageId>,
    ) -> impl std::future::Future<Output = Result<Vec<MessageId>, StoreError>> + Send {
        SqliteStore::renew_queued(self, lease, ids)
    }

    fn claim_inbound(
        &self,
        lease: Lease,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Vec<PendingInbound>, StoreError>> + Send {
        SqliteStore::claim_inbound(self, lease, limit)
    }

    fn renew_inbound(
        &self,
        lease: Lease,
        ids: Vec<i64>,
    ) -> impl std::future::Future<Output = Result<Vec<i64>, StoreError>> + Send {
        SqliteStore::renew_inbound(self, lease, ids)
    }

    fn release_claims(
        &self,
        owner: String,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        SqliteStore::release_claims(self, owner)
    }

    fn message(
        &self,
        id: MessageId,
    ) -> impl std::future::Future<Output = Result<Option<MessageView>, StoreError>> + Send {
        SqliteStore::message(self, id)
    }

    fn message_by_key(
        &self,
        key: &str,
    ) -> impl std::future::Future<Output = Result<Option<MessageView>, StoreError>> + Send {
        SqliteStore::message_by_key(self, key)
    }

    fn insert_inbound(
        &self,
        batch: Vec<NewInbound>,
    ) -> impl std::future::Future<Output = Result<Vec<InboundInserted>, StoreError>> + Send {
        SqliteStore::insert_inbound(self, batch)
    }

    fn pending_inbound(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Vec<PendingInbound>, StoreError>> + Send {
        SqliteStore::pending_inbound(self, now_ms, limit)
    }

    fn update_inbound(
        &self,
        updates: Vec<InboundUpdate>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        SqliteStore::update_inbound(self, updates)
    }

    fn inbound_message(
        &self,
        id: i64,
    ) -> impl std::future::Future<Output = Result<Option<MessageId>, StoreError>> + Send {
        SqliteStore::inbound_message(self, id)
    }

    fn stats(&self) -> impl std::future::Future<Output = Result<StoreStats, StoreError>> + Send {
        SqliteStore::stats(self)
    }
}

fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(body)
        .map_err(|error| StoreError::Io(format!("starting a store thread: {error}")))
}

/// Maps a SQLite error to what a caller can act on; `context` says what the store
/// was doing.
pub(crate) fn map_error(context: &str, error: rusqlite::Error) -> StoreError {
    let detail = format!("{context}: {error}");
    let rusqlite::Error::SqliteFailure(failure, _) = &error else {
        return StoreError::Database(detail);
    };
    match failure.code {
        ErrorCode::DiskFull => StoreError::Full(detail),
        // SQLite reports some ENOSPC cases (growing the WAL or its index) as I/O
        // errors; errno is still the one of the failed call.
        ErrorCode::SystemIoFailure
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::StorageFull =>
        {
            StoreError::Full(detail)
        }
        ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => StoreError::Corrupt(detail),
        ErrorCode::SystemIoFailure | ErrorCode::CannotOpen => StoreError::Io(detail),
        _ => StoreError::Database(detail),
    }
}

/// `.context("what the store was doing")` for rusqlite results.
pub(crate) trait Context<T> {
    fn context(self, doing: &str) -> Result<T, StoreError>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn context(self, doing: &str) -> Result<T, StoreError> {
        self.map_err(|error| map_error(doing, error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn errors_map_to_what_a_caller_can_act_on() {
        use rusqlite::ffi;
        assert!(matches!(
            map_error("inserting", failure(ffi::SQLITE_FULL)),
            StoreError::Full(context) if context.starts_with("inserting: ")
        ));
        assert!(matches!(
            map_error("x", failure(ffi::SQLITE_CORRUPT)),
            StoreError::Corrupt(_)
        ));
        assert!(matches!(
            map_error("x", failure(ffi::SQLITE_NOTADB)),
            StoreError::Corrupt(_)
        ));
        assert!(matches!(
            map_error("x", failure(ffi::SQLITE_CANTOPEN)),
            StoreError::Io(_)
        ));
        assert!(matches!(
            map_error("x", failure(ffi::SQLITE_CONSTRAINT)),
            StoreError::Database(_)
        ));
    }

    #[test]
    fn stats_sum_final_states() {
        let mut counters = Counters::default();
        for state in MessageState::ALL {
            counters.states[state.index()] = 1 + state.index() as u64;
        }
        let stats = counters.stats();
        assert_eq!(stats.queued, 1);
        assert_eq!(stats.submitted, 2);
        assert_eq!(stats.final_states, 3 + 4 + 5 + 6 + 7);
        assert_eq!(stats.failed, 7);
    }
}
