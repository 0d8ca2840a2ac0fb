//! Moves queued messages from the store to the SMPP binds, and outcomes back.
//!
//! The dispatcher pages through the queue in id order with a cursor (so a
//! backlog of millions never sits in memory), and gives each message a task that
//! owns it until its outcome is final: accepted, failed, or, after an ambiguous
//! or temporary outcome, sent again (SPEC M7, M8, M14). At most `concurrency`
//! messages are owned at once. Every outcome is written to the store before the
//! message's slot is released; the store batches those writes.
//!
//! After a restart the cursor starts over: every message still `Queued` is
//! picked up again, including those that were on the wire when the process
//! died. They go out with the same `user_message_reference`, so the provider
//! drops any repeat (SPEC M8, M9).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hotsite_core::{Backoff, BackoffConfig};
use hotsite_smpp::driver::SmppClient;
use hotsite_smpp::pdu::{tag, Address, ShortMessage, Tlvs};
use hotsite_store::{MessageId, QueuedMessage, Store, StoreError, Update};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::metrics::Metrics;
use crate::policy::{decide, AmbiguousPolicy};

/// Settings of the dispatcher.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Messages owned at once (sent or waiting to be sent again).
    pub concurrency: usize,
    /// Messages read from the store per page.
    pub page: usize,
    /// What to do with ambiguous submits (SPEC M8).
    pub ambiguous: AmbiguousPolicy,
    /// Submits per message before a temporary refusal becomes a failure.
    pub retry_budget: u32,
    /// Backoff between resends after a temporary refusal.
    pub backoff: BackoffConfig,
    /// `registered_delivery` of every submit: 1 asks for a final receipt.
    pub registered_delivery: u8,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            concurrency: 512,
            page: 1_000,
            ambiguous: AmbiguousPolicy::Resubmit,
            retry_budget: 50,
            backoff: BackoffConfig {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(60),
                multiplier: 2,
            },
            registered_delivery: 1,
        }
    }
}

/// Runs until `shutdown`. `wake` is notified when new messages are stored.
pub async fn run_dispatcher<S: Store>(
    store: S,
    client: SmppClient,
    config: DispatcherConfig,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let recorder = Recorder::start(store.clone());
    let mut cursor: Option<MessageId> = None;
    let mut seed = 0u64;
    loop {
        let page = tokio::select! {
            () = shutdown.cancelled() => return,
            page = store.queued_after(cursor, config.page) => page,
        };
        let page = match page {
            Ok(page) => page,
            Err(error) => {
                tracing::error!(%error, "cannot read the queue; retrying in 1 s");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        if page.is_empty() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = wake.notified() => {}
                // A notification lost between the read and the wait costs at most this.
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            continue;
        }
        for message in page {
            cursor = Some(message.id);
            let slot = tokio::select! {
                () = shutdown.cancelled() => return,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
            };
            seed += 1;
            let job = Job {
                recorder: recorder.clone(),
                client: client.clone(),
                config: config.clone(),
                metrics: metrics.clone(),
                backoff: Backoff::new(config.backoff, seed),
            };
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = job.own(message) => {}
                }
                drop(slot);
            });
        }
    }
}

struct Job {
    recorder: Recorder,
    client: SmppClient,
    config: DispatcherConfig,
    metrics: Arc<Metrics>,
    backoff: Backoff,
}

impl Job {
    /// Sends `message` until its outcome is final, recording every step.
    async fn own(mut self, message: QueuedMessage) {
        let short_message = to_short_message(&message, self.config.registered_delivery);
        let mut attempt = message.attempts;
        loop {
            Metrics::inc(&self.metrics.submits_total);
            let Ok(outcome) = self.client.submit(short_message.clone()).await else {
                return; // the client is shutting down; the message stays queued
            };
            attempt += 1;
            let decision = decide(
                message.id,
                outcome,
                self.config.ambiguous,
                self.config.retry_budget,
                attempt,
                &mut self.backoff,
                clock::now_ms(),
            );
            if decision.ambiguous {
                Metrics::inc(&self.metrics.submits_ambiguous_total);
            }
            match &decision.update {
                Update::Submitted { .. } => Metrics::inc(&self.metrics.messages_submitted_total),
                Update::Failed { reason, .. } => {
                    tracing::warn!(id = %message.id, %reason, "message failed");
                    Metrics::inc(&self.metrics.messages_failed_total);
                }
                Update::Requeued { .. } if !decision.ambiguous => {
                    Metrics::inc(&self.metrics.submits_retried_total)
                }
                _ => {}
            }
            // Durable before anything else happens to the message.
            self.recorder.record(decision.update).await;
            match decision.retry_after {
                None => return,
                Some(delay) if delay.is_zero() => {}
                Some(delay) => tokio::time::sleep(delay).await,
            }
        }
    }
}

/// Writes the outcomes of every job, many per store request: one channel hop
/// and one reply per message instead of one store request each.
#[derive(Clone)]
struct Recorder {
    requests: mpsc::UnboundedSender<(Update, oneshot::Sender<()>)>,
}

/// The most outcomes written in one store request.
const MAX_OUTCOMES_PER_WRITE: usize = 4096;

impl Recorder {
    fn start<S: Store>(store: S) -> Recorder {
        let (requests, mut incoming) = mpsc::unbounded_channel::<(Update, oneshot::Sender<()>)>();
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_OUTCOMES_PER_WRITE {
                    match incoming.try_recv() {
                        Ok(request) => batch.push(request),
                        Err(_) => break,
                    }
                }
                let (updates, done): (Vec<Update>, Vec<_>) = batch.into_iter().unzip();
                write(&store, updates).await;
                for done in done {
                    let _ = done.send(());
                }
            }
        });
        Recorder { requests }
    }

    /// Returns once `update` is durable (or the recorder is gone, at shutdown).
    async fn record(&self, update: Update) {
        let (done, written) = oneshot::channel();
        if self.requests.send((update, done)).is_ok() {
            let _ = written.await;
        }
    }
}

/// Writes `updates`, retrying while the store is unavailable. An update the
/// store refuses on its own (an unknown id) must not hold the others back: the
/// batch is then written one by one and the refused ones are logged.
async fn write<S: Store>(store: &S, updates: Vec<Update>) {
    loop {
        match store.update(updates.clone()).await {
            Ok(()) => return,
            Err(StoreError::UnknownMessage(_)) => break,
            Err(error) => {
                tracing::error!(%error, count = updates.len(), "cannot record outcomes; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    for update in updates {
        let id = update.id();
        if let Err(error) = store.update(vec![update]).await {
            tracing::error!(%id, %error, "outcome not recorded; the message is resent after a restart");
        }
    }
}

/// The `submit_sm` for a stored message: its stable reference on every send.
fn to_short_message(message: &QueuedMessage, registered_delivery: u8) -> ShortMessage {
    let mut tlvs = Tlvs::default();
    tlvs.set_user_message_reference(message.reference);
    let (short_message, payload) = if message.body.len() <= 254 {
        (Bytes::copy_from_slice(&message.body), None)
    } else {
        (Bytes::new(), Some(Bytes::copy_from_slice(&message.body)))
    };
    if let Some(payload) = payload {
        tlvs.set(tag::MESSAGE_PAYLOAD, payload);
    }
    let numeric = message.source.bytes().all(|b| b.is_ascii_digit());
    ShortMessage {
        source: Address {
            // International number, or alphanumeric sender.
            ton: if numeric { 1 } else { 5 },
            npi: if numeric { 1 } else { 0 },
            addr: message.source.clone(),
        },
        destination: Address {
            ton: 1,
            npi: 1,
            addr: message.destination.clone(),
        },
        registered_delivery,
        data_coding: message.data_coding,
        short_message,
        tlvs,
        ..ShortMessage::default()
    }
}
