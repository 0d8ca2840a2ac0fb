//! One bind to one SMSC instance, as a sans-IO state machine.
//!
//! ```text
//!   new() ──▶ Binding ──bind_resp OK──▶ Bound ──unbind()──▶ Unbinding ──▶ Closed
//!                │                        │                               ▲
//!                └── rejected / timeout ──┴── peer silent, peer unbind, ──┘
//!                                             garbage framing, TCP lost
//! ```
//!
//! The driver feeds bytes with [`Session::handle_input`], calls
//! [`Session::handle_timeout`] when [`Session::poll_timeout`] says so, writes what
//! [`Session::poll_transmit`] returns and reads outcomes from
//! [`Session::poll_event`]. After every call that mutates the session, drain both
//! `poll_transmit` and `poll_event`.
//!
//! What the session guarantees:
//! - at most `window` submits are outstanding (sent, no response yet);
//! - every submit gets exactly one outcome: accepted, rejected, throttled (to be
//!   sent again, SPEC M14), timed out, or handed back in [`SessionEvent::Closed`]
//!   as *ambiguous* (sent, never answered; SPEC M8) or *unsent* (never left);
//! - a peer that answers nothing for `dead_peer_timeout` is declared dead even
//!   while the TCP connection stays up (a blackholed SMSC; SPEC M4, M7);
//! - a `deliver_sm` is answered only when the caller says so
//!   ([`Session::respond_deliver`]), so an MO or receipt is acknowledged only
//!   after it is stored.

mod config;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::pdu::{
    frame_len, Bind, Body, CommandStatus, DecodeError, EncodeError, MessageIdResp, Outcome, Pdu,
    ShortMessage,
};

pub use config::{SessionConfig, SessionConfigError};

/// The caller's handle on one submit; returned with its outcome.
pub type SubmitId = u64;

/// The largest sequence number; the next one is 1 again (SMPP 3.4, 5.1.2.4).
pub const MAX_SEQUENCE: u32 = 0x7FFF_FFFF;

/// How many timed-out submits are remembered, so that a late answer can still be
/// reported. Bounded: a peer that never answers must not grow our memory.
const LATE_MEMORY: usize = 1024;

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// The bind request is out; waiting for its response.
    Binding,
    /// Bound: submits may be sent.
    Bound,
    /// We sent `unbind`; waiting for its response.
    Unbinding,
    /// Over. Nothing more will happen.
    Closed,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The SMSC refused the bind.
    BindRejected(CommandStatus),
    /// No bind response within `response_timeout`.
    BindTimeout,
    /// Nothing received for `dead_peer_timeout` (SPEC M4).
    PeerSilent(Duration),
    /// The SMSC sent `unbind`.
    PeerUnbound,
    /// We unbound (or the unbind response did not come in time).
    Unbound,
    /// The TCP connection closed or failed.
    ConnectionLost,
    /// The driver could not open the connection at all.
    Connect(String),
    /// The peer's framing cannot be trusted any more.
    Protocol(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::BindRejected(status) => write!(f, "bind rejected: {status}"),
            CloseReason::BindTimeout => f.write_str("no bind response"),
            CloseReason::PeerSilent(after) => write!(f, "peer silent for {after:?}"),
            CloseReason::PeerUnbound => f.write_str("peer unbound"),
            CloseReason::Unbound => f.write_str("unbound"),
            CloseReason::ConnectionLost => f.write_str("connection lost"),
            CloseReason::Connect(why) => write!(f, "cannot connect: {why}"),
            CloseReason::Protocol(what) => write!(f, "protocol error: {what}"),
        }
    }
}

/// What the session tells its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The bind was accepted.
    Bound {
        /// The SMSC's `system_id`.
        system_id: String,
    },
    /// `submit_sm_resp` with `ESME_ROK`.
    SubmitAccepted {
        /// The caller's id.
        id: SubmitId,
        /// The SMSC's message id, which receipts will carry (SPEC M13).
        message_id: String,
    },
    /// The SMSC asked us to slow down; the message was not taken and must be sent
    /// again (SPEC M14). The session pauses itself: see [`Session::can_submit`].
    SubmitThrottled {
        /// The caller's id.
        id: SubmitId,
        /// `ESME_RTHROTTLED` or `ESME_RMSGQFUL`.
        status: CommandStatus,
        /// How long this session sends no submit.
        pause: Duration,
    },
    /// The SMSC refused the submit. [`CommandStatus::outcome`] says whether to
    /// retry or fail the message.
    SubmitRejected {
        /// The caller's id.
        id: SubmitId,
        /// The answer.
        status: CommandStatus,
    },
    /// No response within `response_timeout`: the outcome is unknown (SPEC M8).
    SubmitTimedOut {
        /// The caller's id.
        id: SubmitId,
    },
    /// A response came for a submit that had already timed out.
    SubmitAnsweredLate {
        /// The caller's id.
        id: SubmitId,
        /// The answer.
        status: CommandStatus,
        /// The SMSC's message id (empty on error).
        message_id: String,
    },
    /// An MO message or a delivery receipt. Answer it with
    /// [`Session::respond_deliver`] once it is safely stored.
    Deliver {
        /// Sequence number to answer.
        sequence: u32,
        /// The message; `data_sm` arrives here too, its body in `message_payload`.
        message: ShortMessage,
    },
    /// The session is over.
    Closed {
        /// Why.
        reason: CloseReason,
        /// Submits that were sent and never answered: outcome unknown (SPEC M8).
        ambiguous: Vec<SubmitId>,
        /// Submits that never left: safe to send anywhere.
        unsent: Vec<SubmitId>,
    },
}

/// Why [`Session::submit`] refused a message. The message was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The session is not bound.
    #[error("session is not bound ({0:?})")]
    NotBound(SessionState),
    /// `window` submits are already outstanding.
    #[error("window of {0} outstanding submits is full")]
    WindowFull(usize),
    /// The SMSC throttled us; no submit before the pause ends.
    #[error("throttled by the SMSC for another {0:?}")]
    Throttled(Duration),
    /// The message cannot be encoded.
    #[error("message cannot be encoded: {0}")]
    Encode(#[from] EncodeError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Bind,
    EnquireLink,
    Unbind,
    Submit(SubmitId),
}

#[derive(Debug)]
struct Pending {
    request: Request,
    deadline: Instant,
}

struct Outgoing {
    bytes: Bytes,
    submit: Option<SubmitId>,
}

/// One SMPP session. See the module docs.
pub struct Session {
    config: SessionConfig,
    state: SessionState,
    next_sequence: u32,
    pending: HashMap<u32, Pending>,
    submits_in_flight: usize,
    enquire_link_outstanding: bool,
    /// Deliveries waiting for the caller's answer, and whether each was a `data_sm`.
    deliveries: HashMap<u32, bool>,
    timed_out: VecDeque<(u32, SubmitId)>,
    last_received: Instant,
    throttled_until: Option<Instant>,
    throttle_pause: Duration,
    unbind_deadline: Option<Instant>,
    read_buffer: BytesMut,
    transmit: VecDeque<Outgoing>,
    events: VecDeque<SessionEvent>,
}

impl Session {
    /// A session on a freshly connected transport; the bind request is queued.
    pub fn new(config: SessionConfig, now: Instant) -> Session {
        let mut session = Session {
            throttle_pause: config.throttle_pause,
            config,
            state: SessionState::Binding,
            next_sequence: 1,
            pending: HashMap::new(),
            submits_in_flight: 0,
            enquire_link_outstanding: false,
            deliveries: HashMap::new(),
            timed_out: VecDeque::new(),
            last_received: now,
            throttled_until: None,
            unbind_deadline: None,
            read_buffer: BytesMut::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        };
        let bind = Bind {
            system_id: session.config.system_id.clone(),
            password: session.config.password.expose().to_owned(),
            system_type: session.config.system_type.clone(),
            interface_version: 0x34,
            addr_ton: 0,
            addr_npi: 0,
            address_range: String::new(),
        };
        let body = Body::bind(session.config.bind_kind, bind);
        if let Err(error) = session.send_request(now, Request::Bind, body) {
            // The config validated the field lengths, so this means a bug upstream;
            // close rather than hang in Binding.
            session.close(CloseReason::Protocol(format!(
                "cannot encode bind: {error}"
            )));
        }
        session
    }

    /// The current state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Submits sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.submits_in_flight
    }

    /// The configured window.
    pub fn window(&self) -> usize {
        self.config.window
    }

    /// Whether [`Session::submit`] would take a message now.
    pub fn can_submit(&self, now: Instant) -> bool {
        self.state == SessionState::Bound
            && self.submits_in_flight < self.config.window
            && self.throttled_until.is_none_or(|until| until <= now)
    }

    /// Sends a `submit_sm`. Returns its sequence number.
    pub fn submit(
        &mut self,
        now: Instant,
        id: SubmitId,
        message: ShortMessage,
    ) -> Result<u32, SubmitError> {
        if self.state != SessionState::Bound {
            return Err(SubmitError::NotBound(self.state));
        }
        if self.submits_in_flight >= self.config.window {
            return Err(SubmitError::WindowFull(self.config.window));
        }
        if let Some(until) = self.throttled_until.filter(|until| *until > now) {
            return Err(SubmitError::Throttled(until - now));
        }
        let sequence = self.send_request(now, Request::Submit(id), Body::SubmitSm(message))?;
        self.submits_in_flight += 1;
        Ok(sequence)
    }

    /// Answers the `deliver_sm` (or `data_sm`) numbered `sequence`. `ESME_ROK`
    /// once it is stored; a temporary error (e.g. `ESME_RX_T_APPN`) makes the SMSC
    /// deliver it again later. Unknown sequence numbers are ignored.
    pub fn respond_deliver(&mut self, sequence: u32, status: CommandStatus) {
        let Some(was_data_sm) = self.deliveries.remove(&sequence) else {
            return;
        };
        if self.state == SessionState::Closed {
            return;
        }
        let resp = MessageIdResp::default();
        let body = if was_data_sm {
            Body::DataSmResp(resp)
        } else {
            Body::DeliverSmResp(resp)
        };
        self.send_response(sequence, status, body);
    }

    /// Starts a graceful unbind. Outstanding submits are still answered meanwhile.
    pub fn unbind(&mut self, now: Instant) {
        match self.state {
            SessionState::Bound | SessionState::Binding => {
                self.state = SessionState::Unbinding;
                self.unbind_deadline = Some(now + self.config.response_timeout);
                if self
                    .send_request(now, Request::Unbind, Body::Unbind)
                    .is_err()
                {
                    self.close(CloseReason::Unbound);
                }
            }
            SessionState::Unbinding | SessionState::Closed => {}
        }
    }

    /// The transport is gone (EOF, reset, write error).
    pub fn handle_disconnect(&mut self) {
        self.close(CloseReason::ConnectionLost);
    }

    /// Feeds bytes read from the transport.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.state == SessionState::Closed {
            return;
        }
        self.read_buffer.extend_from_slice(bytes);
        loop {
            let len = match frame_len(&self.read_buffer) {
                Ok(Some(len)) => len,
                Ok(None) => return,
                Err(error) => {
                    self.close(CloseReason::Protocol(error.to_string()));
                    return;
                }
            };
            let frame = self.read_buffer.split_to(len);
            self.last_received = now;
            match Pdu::decode(&frame) {
                Ok(pdu) => self.handle_pdu(now, pdu),
                Err(error) => self.handle_garbage(now, &frame, &error),
            }
            if self.state == SessionState::Closed {
                return;
            }
        }
    }

    /// Runs the timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == SessionState::Closed {
            return;
        }
        if self.unbind_deadline.is_some_and(|deadline| deadline <= now) {
            self.close(CloseReason::Unbound);
            return;
        }
        let mut expired: Vec<(u32, Request, Instant)> = self
            .pending
            .iter()
            .filter(|(_, pending)| pending.deadline <= now)
            .map(|(sequence, pending)| (*sequence, pending.request, pending.deadline))
            .collect();
        expired.sort_unstable_by_key(|(sequence, _, deadline)| (*deadline, *sequence));
        for (sequence, request, deadline) in expired {
            if request == Request::Bind {
                self.close(CloseReason::BindTimeout);
                return;
            }
            let sent_at = deadline - self.config.response_timeout;
            if matches!(request, Request::Submit(_)) && self.last_received <= sent_at {
                // Not a word from the peer since this submit left: the peer, not
                // the submit, is the problem. Feeding it more messages would only
                // make more of them ambiguous (SPEC M7), so the bind ends now.
                let silent = now.saturating_duration_since(self.last_received);
                self.close(CloseReason::PeerSilent(silent));
                return;
            }
            self.pending.remove(&sequence);
            match request {
                Request::Submit(id) => {
                    self.submits_in_flight -= 1;
                    self.remember_timed_out(sequence, id);
                    self.events.push_back(SessionEvent::SubmitTimedOut { id });
                }
                // Whether the peer is dead is the dead-peer timer's call; an
                // unanswered enquire_link only allows the next one to be sent.
                Request::EnquireLink => self.enquire_link_outstanding = false,
                Request::Unbind | Request::Bind => {}
            }
        }
        if self.state != SessionState::Bound {
            return;
        }
        let silent = now.saturating_duration_since(self.last_received);
        if silent >= self.config.dead_peer_timeout {
            self.close(CloseReason::PeerSilent(silent));
            return;
        }
        if !self.enquire_link_outstanding && silent >= self.config.enquire_link_interval {
            // An empty body always encodes.
            let _ = self.send_request(now, Request::EnquireLink, Body::EnquireLink);
            self.enquire_link_outstanding = true;
        }
        if self.throttled_until.is_some_and(|until| until <= now) {
            self.throttled_until = None;
        }
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == SessionState::Closed {
            return None;
        }
        let mut next = self.pending.values().map(|pending| pending.deadline).min();
        let mut consider = |deadline: Option<Instant>| {
            if let Some(deadline) = deadline {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
            }
        };
        consider(self.unbind_deadline);
        if self.state == SessionState::Bound {
            consider(Some(self.last_received + self.config.dead_peer_timeout));
            if !self.enquire_link_outstanding {
                consider(Some(self.last_received + self.config.enquire_link_interval));
            }
            consider(self.throttled_until);
        }
        next
    }

    /// The next bytes to write to the transport. Once taken, they count as sent.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front().map(|outgoing| outgoing.bytes)
    }

    /// The next event for the caller.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    fn allocate_sequence(&mut self) -> u32 {
        loop {
            let sequence = self.next_sequence;
            self.next_sequence = if sequence >= MAX_SEQUENCE {
                1
            } else {
                sequence + 1
            };
            // After a wrap, skip numbers still waiting for an answer.
            if !self.pending.contains_key(&sequence) {
                return sequence;
            }
        }
    }

    fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        body: Body,
    ) -> Result<u32, EncodeError> {
        let sequence = self.allocate_sequence();
        let bytes = Pdu::request(sequence, body).encode()?;
        self.pending.insert(
            sequence,
            Pending {
                request,
                deadline: now + self.config.response_timeout,
            },
        );
        let submit = match request {
            Request::Submit(id) => Some(id),
            _ => None,
        };
        self.transmit.push_back(Outgoing { bytes, submit });
        Ok(sequence)
    }

    fn send_response(&mut self, sequence: u32, status: CommandStatus, body: Body) {
        // Responses we build have no variable-length fields over their limits.
        if let Ok(bytes) = Pdu::response(sequence, status, body).encode() {
            self.transmit.push_back(Outgoing {
                bytes,
                submit: None,
            });
        }
    }

    fn handle_garbage(&mut self, now: Instant, frame: &[u8], error: &DecodeError) {
        let Some(sequence) = error.sequence() else {
            self.close(CloseReason::Protocol(error.to_string()));
            return;
        };
        // A response is never nacked (some SMSCs unbind on that). If it answers
        // something we asked, settle it from the header: an accepted submit with
        // an unreadable body is still accepted, not ambiguous (SPEC M8).
        let command_id = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if command_id & 0x8000_0000 == 0 {
            self.send_response(sequence, error.nack_status(), Body::GenericNack);
            return;
        }
        let status = CommandStatus(u32::from_be_bytes([
            frame[8], frame[9], frame[10], frame[11],
        ]));
        let Some(pending) = self.pending.remove(&sequence) else {
            return;
        };
        match pending.request {
            Request::Submit(id) => {
                self.submits_in_flight -= 1;
                let body = Body::SubmitSmResp(MessageIdResp::default());
                self.handle_submit_response(now, id, Pdu::response(sequence, status, body));
            }
            Request::Bind => {
                let body = Body::BindTransceiverResp(Default::default());
                self.handle_bind_response(Pdu::response(sequence, status, body));
            }
            Request::EnquireLink => self.enquire_link_outstanding = false,
            Request::Unbind => self.close(CloseReason::Unbound),
        }
    }

    fn handle_pdu(&mut self, now: Instant, pdu: Pdu) {
        if pdu.body.is_response() {
            self.handle_response(now, pdu);
        } else {
            self.handle_request(pdu);
        }
    }

    fn handle_request(&mut self, pdu: Pdu) {
        let sequence = pdu.sequence;
        match pdu.body {
            Body::EnquireLink => {
                self.send_response(sequence, CommandStatus::ESME_ROK, Body::EnquireLinkResp)
            }
            Body::Unbind => {
                self.send_response(sequence, CommandStatus::ESME_ROK, Body::UnbindResp);
                self.close(CloseReason::PeerUnbound);
            }
            Body::DeliverSm(message) if self.state == SessionState::Bound => {
                self.deliveries.insert(sequence, false);
                self.events
                    .push_back(SessionEvent::Deliver { sequence, message });
            }
            Body::DataSm(data) if self.state == SessionState::Bound => {
                self.deliveries.insert(sequence, true);
                let message = ShortMessage {
                    service_type: data.service_type,
                    source: data.source,
                    destination: data.destination,
                    esm_class: data.esm_class,
                    registered_delivery: data.registered_delivery,
                    data_coding: data.data_coding,
                    tlvs: data.tlvs,
                    ..ShortMessage::default()
                };
                self.events
                    .push_back(SessionEvent::Deliver { sequence, message });
            }
            Body::DeliverSm(_) | Body::DataSm(_) => {
                self.send_response(sequence, CommandStatus::ESME_RINVBNDSTS, Body::GenericNack)
            }
            // An ESME is not asked to bind or take submits.
            _ => self.send_response(sequence, CommandStatus::ESME_RINVCMDID, Body::GenericNack),
        }
    }

    fn handle_response(&mut self, now: Instant, pdu: Pdu) {
        let Some(pending) = self.pending.remove(&pdu.sequence) else {
            self.handle_late_response(pdu);
            return;
        };
        match pending.request {
            Request::Bind => self.handle_bind_response(pdu),
            Request::EnquireLink => self.enquire_link_outstanding = false,
            Request::Unbind => self.close(CloseReason::Unbound),
            Request::Submit(id) => {
                self.submits_in_flight -= 1;
                self.handle_submit_response(now, id, pdu);
            }
        }
    }

    fn handle_bind_response(&mut self, pdu: Pdu) {
        let is_nack = matches!(pdu.body, Body::GenericNack);
        let system_id = match pdu.body {
            Body::BindReceiverResp(resp)
            | Body::BindTransmitterResp(resp)
            | Body::BindTransceiverResp(resp) => resp.system_id,
            _ => String::new(),
        };
        if self.state == SessionState::Unbinding {
            // We asked to leave while the bind was on its way: stay leaving.
            return;
        }
        if pdu.status.is_ok() && !is_nack {
            self.state = SessionState::Bound;
            self.events.push_back(SessionEvent::Bound { system_id });
        } else {
            let status = if pdu.status.is_ok() {
                CommandStatus::ESME_RBINDFAIL
            } else {
                pdu.status
            };
            self.close(CloseReason::BindRejected(status));
        }
    }

    fn handle_submit_response(&mut self, now: Instant, id: SubmitId, pdu: Pdu) {
        let is_nack = matches!(pdu.body, Body::GenericNack);
        let message_id = match pdu.body {
            Body::SubmitSmResp(resp) | Body::DataSmResp(resp) => resp.message_id,
            _ => String::new(),
        };
        let status = match pdu.status {
            // A generic_nack with ROK makes no sense; treat it as a system error.
            CommandStatus::ESME_ROK if is_nack => CommandStatus::ESME_RSYSERR,
            status => status,
        };
        match status.outcome() {
            Outcome::Accepted => {
                self.throttle_pause = self.config.throttle_pause;
                self.events
                    .push_back(SessionEvent::SubmitAccepted { id, message_id });
            }
            Outcome::Throttled => {
                let pause = self.throttle_pause;
                self.throttle_pause = (pause * 2).min(self.config.throttle_pause_max);
                let until = now + pause;
                self.throttled_until = Some(self.throttled_until.map_or(until, |t| t.max(until)));
                self.events
                    .push_back(SessionEvent::SubmitThrottled { id, status, pause });
            }
            Outcome::Retry if status == CommandStatus::ESME_RINVBNDSTS => {
                // The SMSC no longer considers this bind bound: rebind. The
                // message was refused, so it is safe to send elsewhere.
                let reason = format!("SMSC answered {status}: the bind is not bound on its side");
                self.close_with(CloseReason::Protocol(reason), vec![id]);
            }
            Outcome::Retry | Outcome::Permanent => {
                self.events
                    .push_back(SessionEvent::SubmitRejected { id, status });
            }
        }
    }

    fn handle_late_response(&mut self, pdu: Pdu) {
        let Some(index) = self
            .timed_out
            .iter()
            .position(|(sequence, _)| *sequence == pdu.sequence)
        else {
            // An answer to nothing we asked: nothing to do.
            return;
        };
        let (_, id) = self.timed_out.remove(index).unwrap_or((0, 0));
        let message_id = match pdu.body {
            Body::SubmitSmResp(resp) => resp.message_id,
            _ => String::new(),
        };
        self.events.push_back(SessionEvent::SubmitAnsweredLate {
            id,
            status: pdu.status,
            message_id,
        });
    }

    fn remember_timed_out(&mut self, sequence: u32, id: SubmitId) {
        if self.timed_out.len() == LATE_MEMORY {
            self.timed_out.pop_front();
        }
        self.timed_out.push_back((sequence, id));
    }

    fn close(&mut self, reason: CloseReason) {
        self.close_with(reason, Vec::new());
    }

    /// Closes; `refused` are submits the SMSC answered without taking them.
    fn close_with(&mut self, reason: CloseReason, refused: Vec<SubmitId>) {
        if self.state == SessionState::Closed {
            return;
        }
        self.state = SessionState::Closed;
        let mut unsent = refused;
        unsent.extend(self.transmit.iter().filter_map(|outgoing| outgoing.submit));
        // Submits stay unsent; a last answer (our unbind_resp) may still go out
        // unless the transport is already gone.
        if reason == CloseReason::ConnectionLost {
            self.transmit.clear();
        } else {
            self.transmit.retain(|outgoing| outgoing.submit.is_none());
        }
        let mut ambiguous: Vec<(u32, SubmitId)> = self
            .pending
            .drain()
            .filter_map(|(sequence, pending)| match pending.request {
                Request::Submit(id) if !unsent.contains(&id) => Some((sequence, id)),
                _ => None,
            })
            .collect();
        // Sequence order is send order (modulo wrap): hand back in that order.
        ambiguous.sort_unstable();
        self.submits_in_flight = 0;
        self.deliveries.clear();
        self.read_buffer.clear();
        self.unbind_deadline = None;
        self.events.push_back(SessionEvent::Closed {
            reason,
            ambiguous: ambiguous.into_iter().map(|(_, id)| id).collect(),
            unsent,
        });
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.state)
            .field("in_flight", &self.submits_in_flight)
            .field("throttled_until", &self.throttled_until)
            .finish_non_exhaustive()
    }
}
