//! [`SmppClient`]: the pool policy plus one running session per bound instance,
//! with submits spread over whatever is bound right now.
//!
//! One task owns the [`ClientPolicy`] (the pool, the shared queue and the
//! dispatch rules); each connection runs in its own task ([`run_session`]). This
//! file only moves reports, commands and time between them: which bind gets a
//! submit, how throttling pauses a bind and where a dead bind's submits go are
//! decided in [`crate::client_policy`]. Ambiguous submits (sent, never answered)
//! are handed to the caller, who owns the resubmit policy (SPEC M8).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotsite_core::{Event, Target};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::clock;
use super::session::{run_session, ReportSink, SessionCommand, SessionReport};
use crate::client_policy::{ClientOutput, ClientPolicy, Pending, QueuedSubmit, Refusal, Unsent};
use crate::pdu::{CommandStatus, ShortMessage};
use crate::pool::{InstanceId, InstanceStatus, PoolConfig, PoolConfigError};
use crate::session::{
    CloseReason, Session, SessionConfig, SessionConfigError, SessionEvent, SubmitError, SubmitId,
};

/// Everything an [`SmppClient`] needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Settings of every session.
    pub session: SessionConfig,
    /// Rebind pacing.
    pub pool: PoolConfig,
    /// Every SMSC instance of every site, with its `host:port`.
    pub instances: Vec<(Target, String)>,
    /// How long a TCP connect may take.
    pub connect_timeout: Duration,
    /// Seeds the rebind jitter.
    pub seed: u64,
}

/// How a submit ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// The SMSC took it.
    Accepted {
        /// The instance that took it.
        target: Target,
        /// The SMSC's message id, which receipts will carry (SPEC M13).
        message_id: String,
    },
    /// The SMSC refused it; [`CommandStatus::outcome`] says whether a retry may help.
    Rejected {
        /// The instance that refused it.
        target: Target,
        /// The answer.
        status: CommandStatus,
    },
    /// The message cannot be put on the wire (a field too long, an embedded NUL);
    /// nothing was sent, and sending it again will not help.
    Invalid {
        /// What is wrong with it.
        reason: String,
    },
    /// Sent, never answered: the SMSC may or may not have it (SPEC M8).
    Ambiguous {
        /// The instance it was sent to.
        target: Target,
        /// What happened to the session or request.
        cause: String,
    },
}

/// A [`ClientConfig`] that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientConfigError {
    /// A session setting is out of bounds.
    #[error("smpp.{key}: {source}", key = .source.key())]
    Session {
        /// What is wrong.
        #[from]
        source: SessionConfigError,
    },
    /// A pacing setting is out of bounds.
    #[error("smpp.{key}: {source}", key = .source.key())]
    Pool {
        /// What is wrong.
        #[from]
        source: PoolConfigError,
    },
    /// Nothing to bind to.
    #[error("smpp.smsc: no SMSC instance configured")]
    NoInstances,
}

/// The client is gone (shut down, or its task ended).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the SMPP client has shut down")]
pub struct ClientClosed;

/// What the client tells its owner besides submit outcomes.
#[derive(Debug)]
pub enum ClientEvent {
    /// A bind or health change, a retry, work handed back (invariant 4).
    Pool(Event),
    /// An MO or a receipt, from any bind of any site (SPEC M1, M6). Answer it with
    /// [`DeliverAck`] once it is stored.
    Deliver {
        /// The instance it came from.
        target: Target,
        /// The message.
        message: ShortMessage,
        /// The answer to send.
        ack: DeliverAck,
    },
    /// A response to a submit that had already been reported ambiguous.
    AnsweredLate {
        /// The instance.
        target: Target,
        /// The answer.
        status: CommandStatus,
        /// The SMSC's message id.
        message_id: String,
    },
}

/// The answer owed to one `deliver_sm`. Dropped unanswered, it answers
/// `ESME_RX_T_APPN` (temporary error), so the SMSC delivers it again later:
/// nothing is acknowledged that was not handled.
#[derive(Debug)]
pub struct DeliverAck {
    sequence: u32,
    session: mpsc::UnboundedSender<SessionCommand>,
    answered: bool,
}

impl DeliverAck {
    /// Acknowledges with `ESME_ROK`.
    pub fn accept(self) {
        self.respond(CommandStatus::ESME_ROK);
    }

    /// Answers with `status`.
    pub fn respond(mut self, status: CommandStatus) {
        self.answered = true;
        let _ = self.session.send(SessionCommand::RespondDeliver {
            sequence: self.sequence,
            status,
        });
    }
}

impl Drop for DeliverAck {
    fn drop(&mut self) {
        if !self.answered {
            let _ = self.session.send(SessionCommand::RespondDeliver {
                sequence: self.sequence,
                status: CommandStatus::ESME_RX_T_APPN,
            });
        }
    }
}

/// One instance as shown by [`SmppClient::status`].
#[derive(Debug, Clone, PartialEq)]
pub struct BindStatus {
    /// The pool's view: bind state, health, attempts, last failure.
    pub pool: InstanceStatus,
    /// Where it is.
    pub address: String,
    /// Submits outstanding on it now.
    pub in_flight: usize,
}

// Submit is nearly every command: boxing it would cost an allocation per message
// to save bytes on the rare shutdown.
#[allow(clippy::large_enum_variant)]
enum Command {
    Submit(Queued),
    Shutdown(oneshot::Sender<()>),
}

struct Queued {
    message: ShortMessage,
    reply: oneshot::Sender<SubmitReport>,
    /// Not put on the wire from this instant on (the caller's right to send it
    /// ends then: a lease on the message, SPEC M17).
    send_before: Option<Instant>,
}

impl QueuedSubmit for Queued {
    fn is_abandoned(&self) -> bool {
        self.reply.is_closed()
            || self
                .send_before
                .is_some_and(|deadline| clock::now() >= deadline)
    }
}

/// How a submit ended, with the refusals retried on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitReport {
    /// The outcome.
    pub outcome: SubmitOutcome,
    /// Temporary refusals before it, oldest first.
    pub refusals: Vec<Refusal>,
}

/// A handle on the running client. Cheap to clone.
#[derive(Clone)]
pub struct SmppClient {
    commands: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<Vec<BindStatus>>,
}

impl SmppClient {
    /// Starts binding to every instance. Events arrive on the returned receiver;
    /// if it is dropped or lags past 4096 events, events are dropped (deliveries
    /// are then answered with a temporary error and come again).
    pub fn start(
        config: ClientConfig,
    ) -> Result<(SmppClient, mpsc::Receiver<ClientEvent>, JoinHandle<()>), ClientConfigError> {
        config.session.validate()?;
        config.pool.validate()?;
        if config.instances.is_empty() {
            return Err(ClientConfigError::NoInstances);
        }
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::channel(4096);
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let now = clock::now();
        let targets = config.instances.iter().map(|(t, _)| t.clone()).collect();
        let policy = ClientPolicy::new(
            config.pool,
            targets,
            config.session.window,
            config.seed,
            now,
        );
        let instances = config
            .instances
            .iter()
            .map(|(_, address)| Slot {
                address: address.clone(),
                session: None,
            })
            .collect();
        let (status_tx, status_rx) = watch::channel(Vec::new());
        let driver = Driver {
            config,
            policy,
            instances,
            events: events_tx,
            reports_tx,
            status: status_tx,
        };
        // Callers see every instance from the start, not an empty list.
        driver.publish_status();
        let task = tokio::spawn(driver.run(commands_rx, reports_rx));
        Ok((
            SmppClient {
                commands: commands_tx,
                status: status_rx,
            },
            events_rx,
            task,
        ))
    }

    /// Submits one message on whichever instance is bound and has room, waiting
    /// for a bind if none is. Throttling and unsent submits are retried inside;
    /// the outcome is accepted, rejected or ambiguous.
    pub async fn submit(&self, message: ShortMessage) -> Result<SubmitOutcome, ClientClosed> {
        Ok(self.submit_reporting(message).await?.outcome)
    }

    /// [`submit`](Self::submit), also telling which temporary refusals (throttled,
    /// queue full) were retried on the way, so the caller can record them.
    pub async fn submit_reporting(
        &self,
        message: ShortMessage,
    ) -> Result<SubmitReport, ClientClosed> {
        self.submit_reporting_before(message, None).await
    }

    /// [`submit_reporting`](Self::submit_reporting), but never put on the wire
    /// at or after `send_before`: a submit still queued then (every bind down or
    /// full, or the process was frozen) is dropped unsent and the caller gets
    /// [`ClientClosed`]. A gateway sharing its queue passes the end of its lease
    /// on the message, so it never sends what another gateway took over (SPEC M17).
    pub async fn submit_reporting_before(
        &self,
        message: ShortMessage,
        send_before: Option<Instant>,
    ) -> Result<SubmitReport, ClientClosed> {
        let (reply, outcome) = oneshot::channel();
        self.commands
            .send(Command::Submit(Queued {
                message,
                reply,
                send_before,
            }))
            .map_err(|_| ClientClosed)?;
        outcome.await.map_err(|_| ClientClosed)
    }

    /// Every instance, bound or not.
    pub fn status(&self) -> Vec<BindStatus> {
        self.status.borrow().clone()
    }

    /// Waits until the status changes.
    pub async fn status_changed(&mut self) -> Result<Vec<BindStatus>, ClientClosed> {
        self.status.changed().await.map_err(|_| ClientClosed)?;
        Ok(self.status.borrow_and_update().clone())
    }

    /// Unbinds every session and stops. Queued submits are dropped unsent (their
    /// callers get [`ClientClosed`]).
    pub async fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Shutdown(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

/// One instance's IO: where it is and the channel to its session task.
struct Slot {
    address: String,
    session: Option<mpsc::UnboundedSender<SessionCommand>>,
}

struct Driver {
    config: ClientConfig,
    policy: ClientPolicy<Queued>,
    instances: Vec<Slot>,
    events: mpsc::Sender<ClientEvent>,
    reports_tx: mpsc::UnboundedSender<(InstanceId, SessionReport)>,
    status: watch::Sender<Vec<BindStatus>>,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut reports: mpsc::UnboundedReceiver<(InstanceId, SessionReport)>,
    ) {
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        loop {
            self.drain_outputs();
            self.dispatch();
            self.publish_status();
            if shutdown.is_some() && self.instances.iter().all(|slot| slot.session.is_none()) {
                break;
            }
            let deadline = self.policy.poll_timeout();
            tokio::select! {
                Some((id, report)) = reports.recv() => self.handle_report(id, report),
                command = commands.recv(), if shutdown.is_none() => match command {
                    Some(Command::Submit(queued)) => self.policy.handle_submit(queued),
                    Some(Command::Shutdown(done)) => {
                        shutdown = Some(done);
                        self.begin_shutdown();
                    }
                    None => {
                        let (done, _) = oneshot::channel();
                        shutdown = Some(done);
                        self.begin_shutdown();
                    }
                },
                () = clock::sleep_until(deadline) => self.policy.handle_timeout(clock::now()),
            }
        }
        if let Some(done) = shutdown {
            let _ = done.send(());
        }
    }

    fn begin_shutdown(&mut self) {
        // Work queued or handed back from now on is dropped: its callers get
        // `ClientClosed`, and nothing goes out after our unbind.
        self.policy.handle_shutdown();
        for slot in &mut self.instances {
            // Dropping the sender makes the session unbind and end.
            slot.session = slot
                .session
                .take()
                .filter(|tx| tx.send(SessionCommand::Unbind).is_ok());
        }
    }

    fn drain_outputs(&mut self) {
        while let Some(output) = self.policy.poll_output() {
            match output {
                ClientOutput::Connect(id) => self.connect(id),
                ClientOutput::Event(event) => self.emit(event),
            }
        }
    }

    fn emit(&self, event: Event) {
        tracing::info!(target: "hotsite::smpp", "{event}");
        let _ = self.events.try_send(ClientEvent::Pool(event));
    }

    fn connect(&mut self, id: InstanceId) {
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let slot = &mut self.instances[id];
        slot.session = Some(commands_tx);
        let address = slot.address.clone();
        let session_config = self.config.session.clone();
        let connect_timeout = self.config.connect_timeout;
        let write_timeout = session_config.response_timeout;
        let reports = self.reports_tx.clone();
        let sink = TaggedSink {
            id,
            reports,
            closed_seen: Arc::new(AtomicBool::new(false)),
        };
        let closed_seen = sink.closed_seen.clone();
        let guard = sink.reports.clone();
        tokio::spawn(async move {
            let run = async move {
                match tokio::time::timeout(connect_timeout, TcpStream::connect(&address)).await {
                    Ok(Ok(stream)) => {
                        let session = Session::new(session_config, clock::now());
                        run_session(stream, session, commands_rx, sink, write_timeout).await;
                    }
                    Ok(Err(error)) => {
                        let reason = CloseReason::Connect(format!("{address}: {error}"));
                        sink.report(closed(reason));
                    }
                    Err(_) => {
                        let reason = CloseReason::Connect(format!("{address}: timed out"));
                        sink.report(closed(reason));
                    }
                }
            };
            // In its own task, so that a panic there still reaches the check below.
            let _ = tokio::spawn(run).await;
            if !closed_seen.load(Ordering::Acquire) {
                // The session task died without closing (a bug): the pool must
                // still learn the bind is gone, or it waits forever.
                let reason = CloseReason::Protocol("session task ended unexpectedly".into());
                let _ = guard.send((id, closed(reason)));
            }
        });
    }

    fn handle_report(&mut self, id: InstanceId, report: SessionReport) {
        let now = clock::now();
        let target = self.policy.target(id);
        match report {
            SessionReport::Refused {
                id: submit,
                error: SubmitError::Encode(error),
            } => {
                let reason = error.to_string();
                self.finish(id, submit, SubmitOutcome::Invalid { reason });
            }
            // The bind changed state under the submit (its close report is on
            // the way): the message never left, so it may go anywhere.
            SessionReport::Refused { id: submit, error } => {
                let why = match error {
                    SubmitError::Throttled(remaining) => Unsent::Throttled(remaining),
                    _ => Unsent::NotTaken,
                };
                self.policy.handle_unsent(now, submit, why);
            }
            SessionReport::Event(event) => match event {
                SessionEvent::Bound { .. } => self.policy.handle_bound(now, id),
                SessionEvent::SubmitAccepted {
                    id: submit,
                    message_id,
                } => {
                    if message_id.is_empty() {
                        // Receipts for it can never be matched (SPEC M13).
                        tracing::warn!(target: "hotsite::smpp", smsc = %target, "submit accepted without a message id");
                    }
                    self.finish(id, submit, SubmitOutcome::Accepted { target, message_id });
                }
                SessionEvent::SubmitRejected { id: submit, status } => {
                    self.finish(id, submit, SubmitOutcome::Rejected { target, status });
                }
                SessionEvent::SubmitTimedOut { id: submit } => {
                    let cause = "no submit_sm_resp within the response timeout".to_owned();
                    self.finish(id, submit, SubmitOutcome::Ambiguous { target, cause });
                }
                SessionEvent::SubmitThrottled {
                    id: submit,
                    pause,
                    status,
                } => self.policy.handle_throttled(now, id, submit, status, pause),
                SessionEvent::SubmitAnsweredLate {
                    status, message_id, ..
                } => {
                    let _ = self.events.try_send(ClientEvent::AnsweredLate {
                        target,
                        status,
                        message_id,
                    });
                }
                SessionEvent::Deliver { sequence, message } => {
                    let Some(session) = self.instances[id].session.clone() else {
                        return;
                    };
                    let ack = DeliverAck {
                        sequence,
                        session,
                        answered: false,
                    };
                    // If the owner lags, the ack drops and answers a temporary error.
                    let _ = self.events.try_send(ClientEvent::Deliver {
                        target,
                        message,
                        ack,
                    });
                }
                SessionEvent::Closed {
                    reason,
                    ambiguous,
                    unsent,
                } => {
                    self.instances[id].session = None;
                    let cause = reason.to_string();
                    let ambiguous = self
                        .policy
                        .handle_closed(now, id, &cause, &ambiguous, &unsent);
                    for pending in ambiguous {
                        let cause = format!("session closed before any response: {reason}");
                        let target = target.clone();
                        reply(pending, SubmitOutcome::Ambiguous { target, cause });
                    }
                }
            },
        }
    }

    fn finish(&mut self, instance: InstanceId, submit: SubmitId, outcome: SubmitOutcome) {
        if let Some(pending) = self.policy.handle_answered(instance, submit) {
            reply(pending, outcome);
        }
    }

    /// Hands the submits the policy assigns to their sessions.
    fn dispatch(&mut self) {
        let now = clock::now();
        while let Some(assignment) = self.policy.poll_submit(now) {
            let submit = assignment.submit;
            let message = assignment.work.message.clone();
            let sent = self.instances[assignment.instance]
                .session
                .as_ref()
                .is_some_and(|tx| {
                    tx.send(SessionCommand::Submit {
                        id: submit,
                        message,
                    })
                    .is_ok()
                });
            if !sent {
                self.policy.handle_send_failed(submit);
                return;
            }
        }
    }

    fn publish_status(&self) {
        let pool = self.policy.pool().status();
        let status: Vec<BindStatus> = pool
            .into_iter()
            .zip(&self.instances)
            .enumerate()
            .map(|(id, (pool, slot))| BindStatus {
                pool,
                address: slot.address.clone(),
                in_flight: self.policy.in_flight(id),
            })
            .collect();
        self.status.send_if_modified(|current| {
            if *current == status {
                false
            } else {
                *current = status;
                true
            }
        });
    }
}

fn reply(pending: Pending<Queued>, outcome: SubmitOutcome) {
    let _ = pending.work.reply.send(SubmitReport {
        outcome,
        refusals: pending.refusals,
    });
}

/// Tags a session's reports with its instance and sends them straight to the
/// client's task (no forwarding task in between: one hop less per PDU).
struct TaggedSink {
    id: InstanceId,
    reports: mpsc::UnboundedSender<(InstanceId, SessionReport)>,
    closed_seen: Arc<AtomicBool>,
}

impl ReportSink for TaggedSink {
    fn report(&self, report: SessionReport) -> bool {
        if matches!(report, SessionReport::Event(SessionEvent::Closed { .. })) {
            self.closed_seen.store(true, Ordering::Release);
        }
        self.reports.send((self.id, report)).is_ok()
    }
}

fn closed(reason: CloseReason) -> SessionReport {
    SessionReport::Event(SessionEvent::Closed {
        reason,
        ambiguous: Vec::new(),
        unsent: Vec::new(),
    })
}
