//! Moves queued messages from the store to their route's channels, and outcomes
//! back.
//!
//! The dispatcher pages through the queue in id order with a cursor (so a
//! backlog of millions never sits in memory), and gives each message a task that
//! owns it until its outcome is final: accepted, failed, or, after an ambiguous
//! or temporary outcome, sent again — on the same hop or, once the hop's budget
//! is spent, on the next hop of its route (SPEC M7, M8, M10, M11, M14). At most
//! `concurrency` messages are owned at once. Every outcome is written to the
//! store before anything else happens to the message; the store batches those
//! writes.
//!
//! Messages are claimed, not just read (SPEC M17): the store hands each to one
//! gateway under a lease that this process renews while the message's job runs
//! (`lease.rs`), so gateways sharing a queue never work on one message at once,
//! and a job sends only while its lease holds. When a page comes back empty the
//! cursor starts over, to find claims of a gateway that died and ran out.
//!
//! After a restart every message still `Queued` is picked up again (once the
//! dead process's leases ran out; on SQLite at once, its claims died with it)
//! on the hop it was on, including those that were on the wire when the
//! process died. They go out with the same reference (`user_message_reference`
//! over SMPP, `message_id` over HTTP, the message id in webhooks), so the
//! provider drops any repeat (SPEC M8, M9).

use std::sync::Arc;
use std::time::Duration;

use hotsite_core::{Backoff, BackoffConfig};
use hotsite_store::{MessageId, QueuedMessage, Resubmit, Store, StoreError, Update};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::channel::{HopState, SendOutcome};
use crate::clock;
use crate::lease::{run_renewals, Hold, Leases};
use crate::metrics::Metrics;
use crate::policy::{decide, AmbiguousPolicy, Next, Position};
use crate::route::Routes;

/// Settings of the dispatcher.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Messages owned at once (sent or waiting to be sent again).
    pub concurrency: usize,
    /// Messages read from the store per page.
    pub page: usize,
    /// The SMPP hop's ambiguous policy (SPEC M8), when routes are not configured.
    pub ambiguous: AmbiguousPolicy,
    /// The SMPP hop's budget: submits before a temporary refusal becomes a failure.
    pub retry_budget: u32,
    /// The SMPP hop's backoff between resends after a temporary refusal.
    pub backoff: BackoffConfig,
    /// `registered_delivery` of every submit: 1 asks for a final receipt.
    pub registered_delivery: u8,
    /// How long a claim on a message lasts unless renewed (SPEC M17): how soon
    /// another gateway sharing the store takes over the messages of one that
    /// died. Renewed every third of it.
    pub lease: Duration,
    /// This gateway's name in its lease owner (`name/host/pid/start`).
    pub name: String,
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
            lease: Duration::from_secs(30),
            name: "hotsite".to_owned(),
        }
    }
}

/// Runs until `shutdown`. `wake` is notified when new messages are stored.
/// Messages are claimed and their leases renewed as `owner` (SPEC M17; see
/// `lease::owner_name`).
pub async fn run_dispatcher<S: Store>(
    store: S,
    routes: Arc<Routes>,
    config: DispatcherConfig,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    owner: String,
    shutdown: CancellationToken,
) {
    let leases = Arc::new(Leases::new(owner, config.lease));
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let recorder = Recorder::start(store.clone());
    let renewals = {
        let store = store.clone();
        tokio::spawn(run_renewals(
            leases.clone(),
            "messages",
            move |lease, ids: Vec<i64>| {
                let store = store.clone();
                async move {
                    let ids = ids.into_iter().map(MessageId).collect();
                    let renewed = store.renew_queued(lease, ids).await?;
                    Ok(renewed.into_iter().map(|id| id.0).collect())
                }
            },
            shutdown.clone(),
        ))
    };
    let _renewals = AbortOnDrop(renewals);
    let mut cursor: Option<MessageId> = None;
    let mut cursor_from = clock::now_ms();
    let mut seed = 0u64;
    // Jobs stop at a send boundary on `shutdown`; `abort` ends those still
    // running when the drain's time is up.
    let abort = CancellationToken::new();
    loop {
        let now_ms = clock::now_ms();
        // From the start again every third of a lease: a page below the cursor
        // may have become claimable (a dead gateway's claims ran out, or ids
        // drawn before a later page committed after it), and a busy queue
        // would otherwise keep the cursor from ever wrapping.
        if now_ms.saturating_sub(cursor_from) >= leases.renew_every().as_millis() as i64 {
            cursor = None;
        }
        if cursor.is_none() {
            cursor_from = now_ms;
        }
        let lease = leases.lease(now_ms);
        let page = tokio::select! {
            () = shutdown.cancelled() => break,
            page = store.claim_queued(lease.clone(), cursor, config.page) => page,
        };
        let page = match page {
            Ok(page) => page,
            Err(error) => {
                tracing::error!(%error, "cannot read the queue; retrying in 1 s");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        if page.is_empty() {
            cursor = None;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = wake.notified() => {}
                // A notification lost between the read and the wait costs at most this.
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            continue;
        }
        // A claim of this gateway's own that ran out (renewals failing for a
        // while) comes back in a page while its job still runs: the claim is
        // renewed by this, and no second job starts.
        let page: Vec<QueuedMessage> = page
            .into_iter()
            .filter(|message| {
                let running = leases.holds(message.id.0);
                leases.hold([message.id.0], &lease);
                !running
            })
            .collect();
        let mut stopping = false;
        for message in page {
            cursor = Some(message.id);
            let held = Held {
                leases: leases.clone(),
                id: message.id,
                parked: false,
            };
            let slot = tokio::select! {
                () = shutdown.cancelled() => { stopping = true; break }
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
            };
            seed += 1;
            let job = Job {
                recorder: recorder.clone(),
                routes: routes.clone(),
                metrics: metrics.clone(),
                seed,
                held,
                shutdown: shutdown.clone(),
            };
            let abort = abort.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = abort.cancelled() => {}
                    () = job.own(message) => {}
                }
                drop(slot);
            });
        }
        if stopping {
            break;
        }
    }
    // Stopping: jobs end at their next send boundary, and a send under way
    // finishes and is recorded before the claims are given up (the gateway
    // releases them after this returns), so the other gateway never takes a
    // message whose submit answer this one holds unrecorded (SPEC M8, M17).
    let drained = tokio::time::timeout(
        DRAIN_LIMIT,
        slots.acquire_many(config.concurrency.min(u32::MAX as usize) as u32),
    )
    .await;
    if drained.is_err() {
        tracing::warn!(limit = ?DRAIN_LIMIT, "sends still under way at shutdown were cut off: their messages stay queued, sent again with the same reference");
        abort.cancel();
    }
}

/// How long a stopping dispatcher waits for the sends under way.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Stops a task (the renewals) when its owner stops.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A job's hold on its message: forgotten when the job ends, however it ends,
/// unless parked.
struct Held {
    leases: Arc<Leases>,
    id: MessageId,
    /// Kept (and renewed) after the job ends: see [`Held::park`].
    parked: bool,
}

/// Whether a job may send now.
enum Go {
    Send,
    /// Another gateway has the message: let it go.
    Lost,
    /// The gateway is stopping: the message stays queued.
    Stopping,
}

impl Held {
    /// Waits until the message may be sent: while its lease has time to
    /// spare, not once another gateway has it, nor once stopping.
    async fn may_send(&self, shutdown: &CancellationToken) -> Go {
        loop {
            if shutdown.is_cancelled() {
                return Go::Stopping;
            }
            match self.leases.check(self.id.0, clock::now_ms()) {
                Hold::Held => return Go::Send,
                Hold::Lost => return Go::Lost,
                // Renewals are failing: wait for one to succeed, or for the
                // store to say the message is another's.
                Hold::Expiring => tokio::select! {
                    () = shutdown.cancelled() => return Go::Stopping,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                },
            }
        }
    }

    /// The instant the message's send must have started by (the SMPP client
    /// drops a submit still queued then).
    fn send_before(&self) -> Option<std::time::Instant> {
        let at_ms = self.leases.send_before_ms(self.id.0)?;
        let left = at_ms.saturating_sub(clock::now_ms()).max(0) as u64;
        Some(clock::instant_in(Duration::from_millis(left)))
    }

    /// Keeps the claim after the job ends, renewed with the others, so the
    /// message is not claimed again (by this gateway or another) until a
    /// restart: for a message no configuration here can send.
    fn park(mut self) {
        self.parked = true;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.parked {
            self.leases.forget(self.id.0);
        }
    }
}

struct Job {
    recorder: Recorder,
    routes: Arc<Routes>,
    metrics: Arc<Metrics>,
    seed: u64,
    held: Held,
    /// The gateway is stopping: no new send starts.
    shutdown: CancellationToken,
}

impl Job {
    /// Sends `message` along its route until its outcome is final, recording
    /// every step.
    async fn own(self, mut message: QueuedMessage) {
        let Some(route) = self.routes.get(&message.route).cloned() else {
            // The configuration lost the route since the message was stored. It
            // stays queued (never dropped) until a configuration has it again,
            // and claimed by this gateway until it restarts (not claimed, and
            // noted, again every lease).
            tracing::error!(id = %message.id, route = %message.route, "message names an unknown route; left queued");
            self.recorder
                .record(
                    message.id,
                    vec![Update::Event {
                        id: message.id,
                        kind: "route_unknown".to_owned(),
                        detail: format!(
                            "route {:?} is not configured; left queued until it is",
                            message.route
                        ),
                        at_ms: clock::now_ms(),
                    }],
                )
                .await;
            self.held.park();
            return;
        };
        let (mut hop_index, _) = route.hop(message.hop);
        let mut attempt = message.attempts;
        let mut state = HopState::default();
        let mut backoff = Backoff::new(route.hop(hop_index).1.policy.backoff, self.seed);
        loop {
            let (_, hop) = route.hop(hop_index);
            match self.held.may_send(&self.shutdown).await {
                Go::Send => {}
                // Stays queued; its claim is given up with the others.
                Go::Stopping => return,
                Go::Lost => {
                    Metrics::inc(&self.metrics.leases_lost_total);
                    tracing::warn!(id = %message.id, "lease lost: another gateway has the message; not sent from here");
                    return;
                }
            }
            Metrics::inc(&self.metrics.submits_total);
            // Not started past the lease's margin, even if it waits in the
            // channel's queue meanwhile (every bind down, or this process
            // frozen): by then another gateway may have the message.
            let send_before = self.held.send_before();
            let Some(outcome) = hop.channel.send(&message, &mut state, send_before).await else {
                // The channel is shutting down, or the lease ran short before
                // the send could start: the message stays queued, claimed
                // until its lease runs out, then anyone's (said, and counted,
                // since it delays the message by up to a lease).
                if !self.shutdown.is_cancelled() {
                    Metrics::inc(&self.metrics.sends_expired_total);
                    tracing::warn!(id = %message.id, channel = %hop.channel_name, "not sent before its lease's deadline (the channel's queue was too slow); left for a later claim");
                }
                return;
            };
            attempt += 1;
            // Refusals the channel resent by itself (throttled, queue full): in the
            // history and the metrics like any other retry (SPEC M14, invariant 4).
            let now_ms = clock::now_ms();
            let mut updates: Vec<Update> = state
                .take_retried()
                .into_iter()
                .map(|retried| {
                    Metrics::inc(&self.metrics.submits_retried_total);
                    let kind = retried.kind.event_kind();
                    self.metrics.inc_labeled(
                        "channel_sends_total",
                        &[("channel", &hop.channel_name), ("outcome", kind)],
                    );
                    Update::Event {
                        id: message.id,
                        kind: kind.to_owned(),
                        detail: format!("{}: {}", retried.endpoint, retried.reason),
                        at_ms: now_ms,
                    }
                })
                .collect();
            self.metrics.inc_labeled(
                "channel_sends_total",
                &[("channel", &hop.channel_name), ("outcome", outcome.label())],
            );
            if let SendOutcome::Permanent { reason, .. } = &outcome {
                tracing::warn!(id = %message.id, channel = %hop.channel_name, %reason, "refused for good");
            }
            let position = Position {
                hop: hop_index,
                channel: &hop.channel_name,
                next_channel: route.next_channel(hop_index),
                attempt,
            };
            let decision = decide(
                message.id,
                outcome,
                position,
                &hop.policy,
                &mut backoff,
                now_ms,
            );
            if decision.ambiguous {
                Metrics::inc(&self.metrics.submits_ambiguous_total);
            }
            for update in &decision.updates {
                match update {
                    Update::Submitted { .. } => {
                        Metrics::inc(&self.metrics.messages_submitted_total)
                    }
                    Update::Failed { reason, .. } => {
                        tracing::warn!(id = %message.id, %reason, "message failed");
                        Metrics::inc(&self.metrics.messages_failed_total);
                    }
                    Update::Requeued { kind, .. } if kind != "ambiguous" => {
                        Metrics::inc(&self.metrics.submits_retried_total)
                    }
                    _ => {}
                }
            }
            if let Next::Hop(next) = decision.next {
                let (_, to) = route.hop(next);
                tracing::info!(id = %message.id, route = %route.name, from = %hop.channel_name, to = %to.channel_name, "fallback to the next hop");
                Metrics::inc(&self.metrics.messages_fallback_total);
                self.metrics.inc_labeled(
                    "route_fallbacks_total",
                    &[
                        ("route", &route.name),
                        ("from", &hop.channel_name),
                        ("to", &to.channel_name),
                    ],
                );
            }
            // Durable before anything else happens to the message.
            updates.extend(decision.updates);
            let resubmit = self.recorder.record(message.id, updates).await;
            if let Some(Resubmit { reference, .. }) = resubmit {
                // SPEC M16: the provider took it for a repeat of another message
                // and dropped it; the store kept it queued with a new reference.
                Metrics::inc(&self.metrics.reference_collisions_total);
                tracing::warn!(id = %message.id, old = ?message.reference, new = ?reference, "provider answered with another message's id: resubmitting with a new reference");
                message.reference = reference;
                continue;
            }
            match decision.next {
                Next::Done => return,
                Next::Retry(delay) if delay.is_zero() => {}
                Next::Retry(delay) => tokio::select! {
                    () = self.shutdown.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                },
                Next::Hop(next) => {
                    hop_index = next;
                    attempt = 0;
                    state = HopState::default();
                    backoff = Backoff::new(route.hop(next).1.policy.backoff, self.seed);
                }
            }
        }
    }
}

/// Writes the outcomes of every job, many per store request: one channel hop
/// and one reply per message instead of one store request each.
#[derive(Clone)]
struct Recorder {
    requests: mpsc::UnboundedSender<Record>,
}

/// One job's updates, and where to tell it they are durable (and whether its
/// message must be sent again).
type Record = (MessageId, Vec<Update>, oneshot::Sender<Option<Resubmit>>);

/// The most outcomes written in one store request.
const MAX_OUTCOMES_PER_WRITE: usize = 4096;

impl Recorder {
    fn start<S: Store>(store: S) -> Recorder {
        let (requests, mut incoming) = mpsc::unbounded_channel::<Record>();
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_OUTCOMES_PER_WRITE {
                    match incoming.try_recv() {
                        Ok(request) => batch.push(request),
                        Err(_) => break,
                    }
                }
                let mut updates = Vec::new();
                let mut waiting = Vec::with_capacity(batch.len());
                for (id, mut request, done) in batch {
                    updates.append(&mut request);
                    waiting.push((id, done));
                }
                let resubmits = write(&store, updates).await;
                for (id, done) in waiting {
                    let _ = done.send(resubmits.iter().find(|r| r.id == id).copied());
                }
            }
        });
        Recorder { requests }
    }

    /// Returns once `updates` (all about message `id`) are durable, in order (or
    /// the recorder is gone, at shutdown), with the resend the store asks for.
    async fn record(&self, id: MessageId, updates: Vec<Update>) -> Option<Resubmit> {
        let (done, written) = oneshot::channel();
        if self.requests.send((id, updates, done)).is_ok() {
            return written.await.ok().flatten();
        }
        None
    }
}

/// Writes `updates`, retrying while the store cannot take them (a full disk:
/// accepted work's outcomes are written once space returns, so a message that
/// reached the provider is not sent again, invariant 1). An update the store
/// refuses on its own (an unknown id) must not hold the others back: the batch
/// is then written one by one and the refused ones are logged.
async fn write<S: Store>(store: &S, updates: Vec<Update>) -> Vec<Resubmit> {
    match write_retrying(store, &updates).await {
        Ok(resubmits) => return resubmits,
        Err(_unknown) => {}
    }
    let mut resubmits = Vec::new();
    for update in updates {
        let id = update.id();
        match write_retrying(store, std::slice::from_ref(&update)).await {
            Ok(more) => resubmits.extend(more),
            Err(error) => tracing::error!(%id, %error, "outcome not recorded: no such message"),
        }
    }
    resubmits
}

/// `Err` only for an unknown message; every other failure is retried.
async fn write_retrying<S: Store>(
    store: &S,
    updates: &[Update],
) -> Result<Vec<Resubmit>, StoreError> {
    let mut failures = 0u64;
    loop {
        // One copy per attempt: the store takes its batch by value.
        match store.update(updates.to_vec()).await {
            Ok(resubmits) => {
                if failures > 0 {
                    tracing::info!(
                        count = updates.len(),
                        failures,
                        "outcomes recorded after retrying"
                    );
                }
                return Ok(resubmits);
            }
            Err(error @ StoreError::UnknownMessage(_)) => return Err(error),
            Err(error) => {
                // Every 30 s at most while the store stays unavailable.
                if failures % 60 == 0 {
                    tracing::error!(%error, count = updates.len(), "cannot record outcomes; retrying until the store takes them");
                }
                failures += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
