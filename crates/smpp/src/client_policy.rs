//! The SMPP client's policy: which bound instance gets the next submit, how a
//! throttled bind is paused, and what happens to the submits of a bind that dies.
//!
//! Pure (DESIGN.md): it owns no socket, task or clock. The driver
//! (`driver::SmppClient`) tells it what happened through the `handle_*` methods,
//! with `now` passed in, and acts on what the `poll_*` methods return:
//!
//! - [`ClientPolicy::poll_output`]: connect an instance, report an event;
//! - [`ClientPolicy::poll_submit`]: hand this submit to that instance's session;
//! - [`ClientPolicy::poll_timeout`]: when to call [`ClientPolicy::handle_timeout`].
//!
//! It wraps the bind-to-all [`Pool`] (SPEC M4, M5) and adds the dispatch rules:
//!
//! - **Selection.** Submits wait in one queue shared by all binds and go to the
//!   bound instance with the fewest outstanding submits, below the session's
//!   window and not paused; ties rotate so equal binds share the load. A message
//!   is never parked behind a dead bind (SPEC M7).
//! - **Throttling.** A bind the SMSC throttled (`ESME_RTHROTTLED`, `ESME_RMSGQFUL`)
//!   gets no submit until its pause ends; the message goes back to the front of
//!   the queue and the refusal is noted on it (SPEC M14). A pause never shortens
//!   one already running.
//! - **Orphans.** When a bind dies, its unsent submits (and those handed to it
//!   after it had closed) go back to the front of the queue for any other bind;
//!   its ambiguous ones (sent, never answered) are returned to the owner, who
//!   owns the resubmit policy (SPEC M7, M8).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use hotsite_core::{Event, EventKind, Target};

use crate::pdu::CommandStatus;
use crate::pool::{InstanceId, Pool, PoolConfig, PoolOutput};
use crate::session::SubmitId;

/// A submit as the policy queues it: the owner's work item plus what happened
/// to it so far.
#[derive(Debug)]
pub struct Pending<W> {
    /// The owner's item (the message and whoever waits for its outcome).
    pub work: W,
    /// Temporary refusals met on the way, oldest first.
    pub refusals: Vec<Refusal>,
}

/// A temporary refusal that the client retried by itself: the SMSC throttled
/// the bind or its queue was full (SPEC M14). The message went back to the front
/// of the queue; the caller learns of it only to record it (invariant 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The instance that refused.
    pub target: Target,
    /// `ESME_RTHROTTLED` or `ESME_RMSGQFUL`.
    pub status: CommandStatus,
    /// How long the bind pauses before its next submit.
    pub pause: Duration,
}

/// A queued item the policy can ask about.
pub trait QueuedSubmit {
    /// Nobody waits for the outcome any more: the item is dropped unsent
    /// instead of being dispatched.
    fn is_abandoned(&self) -> bool;
}

/// What the policy asks of its driver, besides submits.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientOutput {
    /// Open a connection to this instance and bind.
    Connect(InstanceId),
    /// Something worth logging, counting and showing (invariant 4).
    Event(Event),
}

/// One submit to hand to a session, from [`ClientPolicy::poll_submit`].
#[derive(Debug)]
pub struct Assignment<'a, W> {
    /// The bound instance chosen.
    pub instance: InstanceId,
    /// The id the session must report the outcome under.
    pub submit: SubmitId,
    /// The item to send.
    pub work: &'a W,
}

/// Why a session refused a submit that was handed to it, unsent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsent {
    /// The session's bind changed under it (unbinding, closing, window full).
    NotTaken,
    /// The session is still paused by the SMSC for this long.
    Throttled(Duration),
}

#[derive(Debug, Default)]
struct Slot {
    /// A session task exists for this instance (from its connect to its close).
    connected: bool,
    in_flight: usize,
    throttled_until: Option<Instant>,
}

/// The client policy. See the module docs.
pub struct ClientPolicy<W> {
    pool: Pool,
    window: usize,
    slots: Vec<Slot>,
    queue: VecDeque<Pending<W>>,
    waiting: HashMap<SubmitId, (InstanceId, Pending<W>)>,
    next_id: SubmitId,
    rotate: usize,
    stopping: bool,
    outputs: VecDeque<ClientOutput>,
}

impl<W: QueuedSubmit> ClientPolicy<W> {
    /// A policy over `targets`, each due for its first bind at `now` (SPEC M4).
    /// `window` is the session's limit of outstanding submits; `seed` fixes the
    /// rebind jitter.
    pub fn new(
        config: PoolConfig,
        targets: Vec<Target>,
        window: usize,
        seed: u64,
        now: Instant,
    ) -> ClientPolicy<W> {
        let slots = targets.iter().map(|_| Slot::default()).collect();
        let mut policy = ClientPolicy {
            pool: Pool::new(config, targets, seed, now),
            window,
            slots,
            queue: VecDeque::new(),
            waiting: HashMap::new(),
            next_id: 1,
            rotate: 0,
            stopping: false,
            outputs: VecDeque::new(),
        };
        policy.take_pool_outputs();
        policy
    }

    /// A new submit joins the back of the shared queue.
    pub fn handle_submit(&mut self, work: W) {
        if self.stopping {
            return;
        }
        self.queue.push_back(Pending {
            work,
            refusals: Vec::new(),
        });
    }

    /// The session to `instance` is bound: submits may go there.
    pub fn handle_bound(&mut self, now: Instant, instance: InstanceId) {
        self.pool.handle_bound(instance, now);
        self.take_pool_outputs();
    }

    /// The session answered `submit` for good (accepted, rejected, timed out, or
    /// it cannot be encoded). Returns the item, for the owner to report.
    pub fn handle_answered(
        &mut self,
        instance: InstanceId,
        submit: SubmitId,
    ) -> Option<Pending<W>> {
        if let Some(slot) = self.slots.get_mut(instance) {
            slot.in_flight = slot.in_flight.saturating_sub(1);
        }
        self.waiting.remove(&submit).map(|(_, pending)| pending)
    }

    /// The session refused `submit` without sending it: the message never left,
    /// so it goes back to the front of the queue for any bind.
    pub fn handle_unsent(&mut self, now: Instant, submit: SubmitId, why: Unsent) {
        // Already handed back if the session's close came first.
        let Some((instance, pending)) = self.waiting.remove(&submit) else {
            return;
        };
        let slot = &mut self.slots[instance];
        slot.in_flight = slot.in_flight.saturating_sub(1);
        if let Unsent::Throttled(remaining) = why {
            // The session's pause outlasts ours: adopt it, or the message would
            // bounce between us and the session.
            slot.pause_until(now + remaining);
        }
        self.requeue_front(pending);
    }

    /// The SMSC answered `submit` with a throttling status (SPEC M14): the bind
    /// pauses for `pause`, and the message goes back to the front of the queue.
    pub fn handle_throttled(
        &mut self,
        now: Instant,
        instance: InstanceId,
        submit: SubmitId,
        status: CommandStatus,
        pause: Duration,
    ) {
        let Some(slot) = self.slots.get_mut(instance) else {
            return;
        };
        slot.in_flight = slot.in_flight.saturating_sub(1);
        // Never earlier than a pause already running: the session keeps the
        // later of the two, and so must we.
        slot.pause_until(now + pause);
        let target = self.target(instance);
        if let Some((_, mut pending)) = self.waiting.remove(&submit) {
            pending.refusals.push(Refusal {
                target: target.clone(),
                status,
                pause,
            });
            self.requeue_front(pending);
        }
        self.outputs.push_back(ClientOutput::Event(Event {
            at: now,
            target,
            kind: EventKind::Throttled { pause },
        }));
    }

    /// The attempt or session to `instance` ended, for `cause`. Its unsent
    /// submits, and any handed to it after it closed, go back to the front of
    /// the queue in their order (SPEC M7); its `ambiguous` ones are returned, in
    /// their order, for the owner's resubmit policy (SPEC M8).
    pub fn handle_closed(
        &mut self,
        now: Instant,
        instance: InstanceId,
        cause: &str,
        ambiguous: &[SubmitId],
        unsent: &[SubmitId],
    ) -> Vec<Pending<W>> {
        let Some(slot) = self.slots.get_mut(instance) else {
            return Vec::new();
        };
        *slot = Slot::default();
        if !ambiguous.is_empty() || !unsent.is_empty() {
            self.outputs.push_back(ClientOutput::Event(Event {
                at: now,
                target: self.target(instance),
                kind: EventKind::WorkHandedBack {
                    ambiguous: ambiguous.len(),
                    unsent: unsent.len(),
                },
            }));
        }
        for submit in unsent.iter().rev() {
            if let Some((_, pending)) = self.waiting.remove(submit) {
                self.requeue_front(pending);
            }
        }
        let ambiguous = ambiguous
            .iter()
            .filter_map(|submit| self.waiting.remove(submit))
            .map(|(_, pending)| pending)
            .collect();
        // Submits handed to the session task after it had closed never reached
        // the session: nothing was sent, so they may go anywhere.
        let orphans: Vec<SubmitId> = self
            .waiting
            .iter()
            .filter(|(_, (owner, _))| *owner == instance)
            .map(|(submit, _)| *submit)
            .collect();
        for submit in orphans {
            if let Some((_, pending)) = self.waiting.remove(&submit) {
                self.requeue_front(pending);
            }
        }
        self.pool.handle_closed(instance, now, cause);
        self.take_pool_outputs();
        ambiguous
    }

    /// The driver could not hand `submit` to its session (the session task is
    /// gone; its close report is on the way): the message never left.
    pub fn handle_send_failed(&mut self, submit: SubmitId) {
        if let Some((instance, pending)) = self.waiting.remove(&submit) {
            let slot = &mut self.slots[instance];
            slot.in_flight = slot.in_flight.saturating_sub(1);
            self.requeue_front(pending);
        }
    }

    /// Ends pauses that are over and starts the bind attempts that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        for slot in &mut self.slots {
            if slot.throttled_until.is_some_and(|until| until <= now) {
                slot.throttled_until = None;
            }
        }
        self.pool.handle_timeout(now);
        self.take_pool_outputs();
    }

    /// The client is stopping: queued submits are dropped unsent (their owners
    /// learn the client closed), nothing more is dispatched, and no timer runs.
    /// Answers and closes still come in and are handled as usual.
    pub fn handle_shutdown(&mut self) {
        self.stopping = true;
        self.queue.clear();
    }

    /// The next thing for the driver to do or report.
    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        self.outputs.pop_front()
    }

    /// The next submit to send, if a bound instance has room for it now. The
    /// driver hands it to that instance's session, or calls
    /// [`handle_send_failed`](Self::handle_send_failed) if it cannot.
    pub fn poll_submit(&mut self, now: Instant) -> Option<Assignment<'_, W>> {
        if self.stopping {
            return None;
        }
        let instance = self.choose(now)?;
        let pending = loop {
            let pending = self.queue.pop_front()?;
            if !pending.work.is_abandoned() {
                break pending;
            }
        };
        self.rotate = self.rotate.wrapping_add(1);
        let submit = self.next_id;
        self.next_id += 1;
        self.slots[instance].in_flight += 1;
        let (_, pending) = self
            .waiting
            .entry(submit)
            .insert_entry((instance, pending))
            .into_mut();
        Some(Assignment {
            instance,
            submit,
            work: &pending.work,
        })
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next: the
    /// end of the first pause or the next bind attempt. None once stopping.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopping {
            return None;
        }
        let pauses = self.slots.iter().filter_map(|slot| slot.throttled_until);
        pauses.chain(self.pool.poll_timeout()).min()
    }

    /// The bind-to-all pool, for status.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Submits outstanding on `instance` now.
    pub fn in_flight(&self, instance: InstanceId) -> usize {
        self.slots.get(instance).map_or(0, |slot| slot.in_flight)
    }

    /// Submits waiting for a bind.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The instance's target.
    pub fn target(&self, instance: InstanceId) -> Target {
        self.pool
            .targets()
            .nth(instance)
            .cloned()
            .unwrap_or_else(|| Target::new("?", "?"))
    }

    /// The bound instance with room and no pause that has the fewest
    /// outstanding submits; ties rotate so equal binds share the load.
    fn choose(&self, now: Instant) -> Option<InstanceId> {
        let count = self.slots.len().max(1);
        self.pool
            .bound()
            .filter(|&id| {
                let slot = &self.slots[id];
                slot.connected
                    && slot.in_flight < self.window
                    && slot.throttled_until.is_none_or(|until| until <= now)
            })
            .min_by_key(|&id| {
                (
                    self.slots[id].in_flight,
                    (id + count - self.rotate % count) % count,
                )
            })
    }

    fn requeue_front(&mut self, pending: Pending<W>) {
        if !self.stopping {
            self.queue.push_front(pending);
        }
    }

    fn take_pool_outputs(&mut self) {
        while let Some(output) = self.pool.poll_output() {
            self.outputs.push_back(match output {
                PoolOutput::Connect(id) => {
                    // A fresh session: nothing outstanding, no pause.
                    if let Some(slot) = self.slots.get_mut(id) {
                        *slot = Slot {
                            connected: true,
                            ..Slot::default()
                        };
                    }
                    ClientOutput::Connect(id)
                }
                PoolOutput::Event(event) => ClientOutput::Event(event),
            });
        }
    }
}

impl Slot {
    fn pause_until(&mut self, until: Instant) {
        self.throttled_until = Some(self.throttled_until.map_or(until, |t| t.max(until)));
    }
}

#[cfg(test)]
mod tests;
