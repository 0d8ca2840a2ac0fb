//! The writer task: owns one connection and commits in groups.
//!
//! Loop: wait for one request, take every other request already waiting (up to
//! `max_batch`), run them all in ONE transaction, then answer each. If the
//! transaction loses a deadlock or serialization race to another gateway, it is
//! run again (a few times). If it fails otherwise, it is rolled back and each
//! request is run again in a transaction of its own, so the error reaches only
//! the request that caused it (a full disk or a lost server fails them all
//! alike). A lost connection is dropped and made again on the next batch: while
//! the server is out of reach each batch fails at once with
//! [`StoreError::Unavailable`] (within the connect timeout), and writes resume by
//! themselves when it is back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_postgres::{Client, NoTls};

use super::error::{is_unavailable, map_error, Context};
use super::options::Target;
use super::statements::Statements;
use super::work::{Output, Policy, TxError, Work, WriteRequest};
use crate::error::StoreError;

/// What the handles and the writer share: the counts kept per handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) commits: AtomicU64,
    /// Set by a write that failed for lack of space, cleared by the next commit
    /// that added rows (as in SQLite).
    pub(crate) storage_full: AtomicBool,
}

/// A live connection with the writer's statements prepared on it.
pub(crate) struct Connection {
    client: Client,
    statements: Statements,
}

/// How many times a batch that lost a deadlock or serialization race is run again.
const RACE_RETRIES: usize = 5;

/// Destination counters are pruned every this many commits (see the SQLite writer).
const PRUNE_EVERY: u64 = 64;

pub(crate) struct Writer {
    pub(crate) target: Target,
    pub(crate) requests: mpsc::UnboundedReceiver<WriteRequest>,
    pub(crate) max_batch: usize,
    pub(crate) policy: Policy,
    pub(crate) shared: Arc<Shared>,
    /// This writer's rows in `counters`.
    pub(crate) name: String,
    pub(crate) connection: Option<Connection>,
    pub(crate) prune: Prune,
}

/// Where the pruning of stale destination counters goes on.
#[derive(Debug, Default)]
pub(crate) struct Prune {
    commits: u64,
    after: String,
    latest_ms: i64,
}

/// Connects one client within the connect timeout, its connection driven by a
/// task of its own.
pub(crate) async fn connect(target: &Target, doing: &str) -> Result<Client, StoreError> {
    let timeout = target
        .config
        .get_connect_timeout()
        .copied()
        .unwrap_or(std::time::Duration::from_secs(5));
    let connecting = target.config.connect(NoTls);
    let (client, connection) = match tokio::time::timeout(timeout, connecting).await {
        Ok(result) => result.context(doing)?,
        Err(_) => {
            return Err(StoreError::Unavailable(format!(
                "{doing}: no answer from {} within {timeout:?}",
                target.describe()
            )))
        }
    };
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "store connection ended");
        }
    });
    Ok(client)
}

impl Connection {
    pub(crate) async fn new(client: Client) -> Result<Connection, StoreError> {
        let statements = Statements::prepare(&client)
            .await
            .context("preparing the writer's statements")?;
        Ok(Connection { client, statements })
    }
}

impl Writer {
    pub(crate) async fn run(mut self) {
        while let Some(first) = self.requests.recv().await {
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match self.requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.process(batch).await;
        }
    }

    async fn process(&mut self, batch: Vec<WriteRequest>) {
        let all: Vec<&WriteRequest> = batch.iter().collect();
        match self.transaction(&all).await {
            Ok(outputs) => {
                for (request, output) in batch.into_iter().zip(outputs) {
                    answer(request, Ok(output));
                }
            }
            Err(error)
                if batch.len() == 1
                    || matches!(error, StoreError::Full(_) | StoreError::Unavailable(_)) =>
            {
                for request in batch {
                    answer(request, Err(error.clone()));
                }
            }
            Err(error) => {
                tracing::warn!(
                    %error,
                    requests = batch.len(),
                    "group commit failed; retrying its requests one by one"
                );
                for request in batch {
                    let result = self
                        .transaction(&[&request])
                        .await
                        .map(|mut outputs| outputs.pop().unwrap_or(Output::Done));
                    answer(request, result);
                }
            }
        }
    }

    /// Runs `requests` in one transaction and commits it (again after a lost
    /// race); on any error nothing of them is kept.
    async fn transaction(&mut self, requests: &[&WriteRequest]) -> Result<Vec<Output>, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.try_transaction(requests).await;
            match result {
                Ok(outputs) => return Ok(outputs),
                Err(TxError {
                    retryable: true,
                    error,
                }) if attempt <= RACE_RETRIES => {
                    tracing::debug!(%error, attempt, "write transaction lost a race; running it again");
                }
                Err(TxError { error, .. }) => {
                    if let StoreError::Full(_) = error {
                        self.shared.storage_full.store(true, Ordering::Relaxed);
                    }
                    return Err(error);
                }
            }
        }
    }

    async fn try_transaction(&mut self, requests: &[&WriteRequest]) -> Result<Vec<Output>, TxError> {
        if self
            .connection
            .as_ref()
            .is_none_or(|connection| connection.client.is_closed())
        {
            self.connection = None;
            let client = connect(&self.target, "reconnecting the writer").await?;
            self.connection = Some(Connection::new(client).await?);
            tracing::info!(target = %self.target.describe(), "store writer connected");
        }
        let Some(connection) = self.connection.as_ref() else {
            return Err(StoreError::Closed.into());
        };
        let mut work = Work::new(
            &connection.client,
            &connection.statements,
            &self.target.schema,
            &self.name,
            self.policy,
            self.prune.latest_ms,
        );
        let result = async {
            work.begin(requests).await?;
            let outputs = work.apply(requests).await?;
            let prune = (self.prune.commits % PRUNE_EVERY == PRUNE_EVERY - 1).then(|| {
                (
                    self.prune.after.as_str(),
                    work.latest_ms
                        .saturating_sub(self.policy.reference_window_ms),
                )
            });
            let pruned = work.commit(prune).await?;
            Ok::<_, TxError>((outputs, pruned))
        }
        .await;
        let latest_ms = work.latest_ms;
        let delta = work.delta.clone();
        match result {
            Ok((outputs, pruned)) => {
                self.prune.latest_ms = latest_ms;
                self.prune.commits += 1;
                if let Some(after) = pruned {
                    self.prune.after = after;
                }
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                // Only new rows prove there is room again (see the SQLite writer).
                if delta.added_rows() {
                    self.shared.storage_full.store(false, Ordering::Relaxed);
                }
                Ok(outputs)
            }
            Err(mut failure) => {
                self.roll_back(&mut failure).await;
                Err(failure)
            }
        }
    }

    /// Ends a failed transaction. A connection that is gone (or failing) is
    /// dropped, to be made again by the next batch; the outcome of a COMMIT cut
    /// off with it is unknown, which `Unavailable` says (contract item 9).
    async fn roll_back(&mut self, failure: &mut TxError) {
        let Some(connection) = self.connection.as_ref() else {
            return;
        };
        if connection.client.is_closed() || matches!(failure.error, StoreError::Unavailable(_)) {
            self.connection = None;
            if !matches!(failure.error, StoreError::Unavailable(_)) {
                failure.error = StoreError::Unavailable(failure.error.to_string());
            }
            failure.retryable = false;
            return;
        }
        if let Err(error) = connection.client.batch_execute("ROLLBACK").await {
            tracing::warn!(%error, "rolling back a failed write transaction failed; reconnecting");
            self.connection = None;
            if is_unavailable(&error) {
                failure.error = map_error("rolling back", &error);
                failure.retryable = false;
            }
        }
    }
}

fn answer(request: WriteRequest, result: Result<Output, StoreError>) {
    // A caller that stopped waiting is not an error: its write stands (or not) anyway.
    match request {
        WriteRequest::InsertMessages(_, reply) => {
            let _ = reply.send(result.map(|output| match output {
                Output::Inserted(inserted) => inserted,
                Output::Inbound(_) | Output::Updated(_) | Output::Done => Vec::new(),
            }));
        }
        WriteRequest::InsertInbound(_, reply) => {
            let _ = reply.send(result.map(|output| match output {
                Output::Inbound(inserted) => inserted,
                Output::Inserted(_) | Output::Updated(_) | Output::Done => Vec::new(),
            }));
        }
        WriteRequest::Update(_, reply) => {
            let _ = reply.send(result.map(|output| match output {
                Output::Updated(resubmits) => resubmits,
                Output::Inserted(_) | Output::Inbound(_) | Output::Done => Vec::new(),
            }));
        }
        WriteRequest::UpdateInbound(_, reply) => {
            let _ = reply.send(result.map(|_| ()));
        }
    }
}
