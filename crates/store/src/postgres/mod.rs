//! The PostgreSQL backend: one writer task with its own connection (group
//! commit, set-based statements, pipelined), a pool of read connections, and
//! claims (SPEC M17) as row updates with `FOR UPDATE SKIP LOCKED`. Several
//! gateways may share one schema: see `work.rs` for what keeps that exact.

mod claims;
mod error;
mod options;
mod read;
mod schema;
mod statements;
mod work;
mod writer;

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;

pub use self::options::PgOptions;

use self::error::map_pool_error;
use self::options::Target;
use self::work::{Policy, Reply, WriteRequest};
use self::writer::{Connection, Prune, Shared, Writer};
use crate::error::StoreError;
use crate::types::{
    InboundInserted, InboundUpdate, Inserted, Lease, MessageId, MessageView, NewInbound,
    NewMessage, PendingInbound, QueuedMessage, Resubmit, StoreStats, Update,
};
use crate::Store;

/// The PostgreSQL [`Store`]: cheap to clone, every clone shares the same writer
/// task and read pool. Several gateways (processes) may connect to the same
/// schema at once. See the crate docs for the contract.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: mpsc::UnboundedSender<WriteRequest>,
    pool: Pool,
    shared: Arc<Shared>,
    /// `user@host:port/db`, for messages and Debug (never the password).
    target: String,
    schema: String,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.inner.target)
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

/// Runs a read on a pooled connection; a connection found dead (the server
/// restarted, or an administrator ended it) is thrown away and the read is
/// tried once more on a new one.
macro_rules! read {
    ($self:ident, $doing:expr, |$client:ident| $body:expr) => {{
        let mut tried = false;
        loop {
            let $client = $self.reader($doing).await?;
            let result = $body;
            match result {
                Err(StoreError::Unavailable(_)) if !tried => {
                    tried = true;
                    drop(Object::take($client));
                }
                other => break other,
            }
        }
    }};
}

impl PgStore {
    /// Connects: checks the options, creates the schema if it is missing (or
    /// refuses one written by a newer hotsite with [`StoreError::SchemaTooNew`],
    /// changing nothing), and starts the writer task and the read pool on the
    /// current tokio runtime.
    pub async fn connect(options: PgOptions) -> Result<PgStore, StoreError> {
        let target = Target::new(&options)?;
        let mut client = writer::connect(&target, "connecting").await?;
        schema::migrate(&mut client, &target.schema).await?;
        schema::fold_counters(&client).await;
        let name = schema::writer_name(&client).await?;
        let connection = Connection::new(client).await?;

        let manager = Manager::from_config(
            target.config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let timeout = Some(options.connect_timeout);
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .build()
            .map_err(|error| StoreError::InvalidOptions(format!("read pool: {error}")))?;

        let shared = Arc::new(Shared::default());
        let (sender, receiver) = mpsc::unbounded_channel();
        let writer = Writer {
            target: target.clone(),
            requests: receiver,
            max_batch: options.max_batch.max(1),
            policy: Policy {
                reference_window_ms: options.reference_window_ms.max(0),
                correlation_wait_ms: options.receipt_correlation_wait_ms.max(0),
            },
            shared: Arc::clone(&shared),
            name,
            connection: Some(connection),
            prune: Prune::default(),
        };
        tokio::spawn(writer.run());
        Ok(PgStore {
            inner: Arc::new(Inner {
                writer: sender,
                pool,
                shared,
                target: target.describe(),
                schema: target.schema,
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
        read!(self, "reading the queue", |client| read::queued_after(
            &client, after, limit
        )
        .await)
    }

    /// See [`Store::update`].
    pub async fn update(&self, updates: Vec<Update>) -> Result<Vec<Resubmit>, StoreError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|reply| WriteRequest::Update(updates, reply))
            .await
    }

    /// See [`Store::message`].
    pub async fn message(&self, id: MessageId) -> Result<Option<MessageView>, StoreError> {
        read!(self, "reading a message", |client| read::message(
            &client,
            read::By::Id(id)
        )
        .await)
    }

    /// See [`Store::message_by_key`].
    pub async fn message_by_key(&self, key: &str) -> Result<Option<MessageView>, StoreError> {
        read!(self, "reading a message", |client| read::message(
            &client,
            read::By::Key(key.to_owned())
        )
        .await)
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
        read!(self, "reading pending inbound items", |client| {
            read::pending_inbound(&client, now_ms, limit).await
        })
    }

    /// See [`Store::update_inbound`].
    pub async fn update_inbound(&self, updates: Vec<InboundUpdate>) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        self.write(|reply| WriteRequest::UpdateInbound(updates, reply))
            .await
    }

    /// See [`Store::inbound_message`].
    pub async fn inbound_message(&self, id: i64) -> Result<Option<MessageId>, StoreError> {
        read!(self, "reading an inbound item", |client| {
            read::inbound_message(&client, id).await
        })
    }

    /// See [`Store::claim_queued`].
    pub async fn claim_queued(
        &self,
        lease: Lease,
        after: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        read!(self, "claiming queued messages", |client| {
            claims::claim_queued(&client, &lease, after, limit).await
        })
    }

    /// See [`Store::renew_queued`].
    pub async fn renew_queued(
        &self,
        lease: Lease,
        ids: Vec<MessageId>,
    ) -> Result<Vec<MessageId>, StoreError> {
        read!(self, "renewing claims on messages", |client| {
            claims::renew_queued(&client, &lease, &ids).await
        })
    }

    /// See [`Store::claim_inbound`].
    pub async fn claim_inbound(
        &self,
        lease: Lease,
        limit: usize,
    ) -> Result<Vec<PendingInbound>, StoreError> {
        read!(self, "claiming inbound items", |client| {
            claims::claim_inbound(&client, &lease, limit).await
        })
    }

    /// See [`Store::renew_inbound`].
    pub async fn renew_inbound(&self, lease: Lease, ids: Vec<i64>) -> Result<Vec<i64>, StoreError> {
        read!(self, "renewing claims on inbound items", |client| {
            claims::renew_inbound(&client, &lease, &ids).await
        })
    }

    /// See [`Store::release_claims`].
    pub async fn release_claims(&self, owner: String) -> Result<(), StoreError> {
        read!(self, "releasing claims", |client| {
            claims::release(&client, &owner).await
        })
    }

    /// See [`Store::stats`]. Sums the counters every writer keeps (no count of
    /// the tables); `commits` and `storage_full` are this handle's.
    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        let mut stats = read!(self, "reading the counters", |client| read::stats(&client)
            .await)?;
        stats.commits = self.inner.shared.commits.load(Ordering::Relaxed);
        stats.storage_full = self.inner.shared.storage_full.load(Ordering::Relaxed);
        Ok(stats)
    }

    async fn reader(&self, doing: &str) -> Result<Object, StoreError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|error| map_pool_error(doing, error))
    }

    async fn write<T>(
        &self,
        request: impl FnOnce(Reply<T>) -> WriteRequest,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .writer
            .send(request(reply))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

impl Store for PgStore {
    fn insert_messages(
        &self,
        batch: Vec<NewMessage>,
    ) -> impl std::future::Future<Output = Result<Vec<Inserted>, StoreError>> + Send {
        PgStore::insert_messages(self, batch)
    }

    fn queued_after(
        &self,
        after: Option<MessageId>,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Vec<QueuedMessage>, StoreError>> + Send {
        PgStore::queued_after(self, after, limit)
    }

    fn claim_queued(
        &self,
        lease: Lease,
        after: Option<MessageId>,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Vec<QueuedMessage>, StoreError>> + Send {
        PgStore::claim_queued(self, lease, after, limit)
    }

    fn renew_queued(
        &self,
        lease: Lease,
        ids: Vec<MessageId>,
    ) -> impl std::future::Future<Output = Result<Vec<MessageId>, StoreError>> + Send {
        PgStore::renew_queued(self, lease, ids)
    }

    fn claim_inbound(
        &self,
        lease: Lease,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Vec<PendingInbound>, StoreError>> + Send {
        PgStore::claim_inbound(self, lease, limit)
    }

    fn renew_inbound(
        &self,
        lease: Lease,
        ids: Vec<i64>,
    ) -> impl std::future::Future<Output = Result<Vec<i64>, StoreError>> + Send {
        PgStore::renew_inbound(self, lease, ids)
    }

    fn release_claims(
        &self,
        owner: String,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        PgStore::release_claims(self, owner)
    }

    fn update(
        &self,
        updates: Vec<Update>,
    ) -> impl std::future::Future<Output = Result<Vec<Resubmit>, StoreError>> + Send {
        PgStore::update(self, updates)
    }

    fn message(
        &self,
        id: MessageId,
    ) -> impl std::future::Future<Output = Result<Option<MessageView>, StoreError>> + Send {
        PgStore::message(self, id)
    }

    fn message_by_key(
        &self,
        key: &str,
    ) -> impl std::future::Future<Output = Result<Option<MessageView>, StoreError>> + Send {
        PgStore::message_by_key(self, key)
    }

    fn insert_inbound(
        &self,
        batch: Vec<NewInbound>,
    ) -> impl std::future::Future<Output = Result<Vec<InboundInserted>, StoreError>> + Send {
        PgStore::insert_inbound(self, batch)
    }

    fn pending_inbound(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Vec<PendingInbound>, StoreError>> + Send {
        PgStore::pending_inbound(self, now_ms, limit)
    }

    fn update_inbound(
        &self,
        updates: Vec<InboundUpdate>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        PgStore::update_inbound(self, updates)
    }

    fn inbound_message(
        &self,
        id: i64,
    ) -> impl std::future::Future<Output = Result<Option<MessageId>, StoreError>> + Send {
        PgStore::inbound_message(self, id)
    }

    fn stats(&self) -> impl std::future::Future<Output = Result<StoreStats, StoreError>> + Send {
        PgStore::stats(self)
    }
}
