//! Client transactions (§17.1; RFC 6026 §8.4 for the Accepted state).

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::{due, earliest, Timer, TransactionConfig, TransactionEvent};
use crate::message::{ack_for, Request, Response};

/// Where a client INVITE transaction is (§17.1.1.2, RFC 6026 §8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientInviteState {
    /// INVITE sent, nothing heard.
    Calling,
    /// A provisional response came.
    Proceeding,
    /// A 300–699 came and was ACKed; absorbing its retransmissions (timer D).
    Completed,
    /// A 2xx came; further 2xx are passed up (timer M).
    Accepted,
    /// Over.
    Terminated,
}

/// A client INVITE transaction: timers A (retransmit over UDP, doubling), B
/// (give up), D (absorb retransmitted failures), M (absorb 2xx).
#[derive(Debug)]
pub struct ClientInvite {
    config: TransactionConfig,
    request: Request,
    wire: Bytes,
    state: ClientInviteState,
    timer_a: Option<Timer>,
    timer_b: Option<Timer>,
    timer_d: Option<Timer>,
    timer_m: Option<Timer>,
    ack: Option<Bytes>,
    transmits: VecDeque<Bytes>,
    events: VecDeque<TransactionEvent>,
}

impl ClientInvite {
    /// Sends `request` (an INVITE) and starts timers A and B.
    pub fn new(now: Instant, request: Request, config: TransactionConfig) -> ClientInvite {
        let wire = request.to_bytes();
        ClientInvite {
            config,
            request,
            transmits: VecDeque::from([wire.clone()]),
            wire,
            state: ClientInviteState::Calling,
            timer_a: config.first_retransmit().map(|t| Timer::after(now, t)),
            timer_b: Some(Timer::after(now, config.timeout())),
            timer_d: None,
            timer_m: None,
            ack: None,
            events: VecDeque::new(),
        }
    }

    /// A response matched to this transaction.
    pub fn handle_response(&mut self, now: Instant, response: Response) {
        let status = response.status;
        match self.state {
            ClientInviteState::Calling | ClientInviteState::Proceeding => {
                // Any response stops retransmission; a provisional one stops
                // timer B too (the INVITE then waits for the TU, §17.1.1.2).
                self.timer_a = None;
                self.timer_b = None;
                if status.is_provisional() {
                    self.state = ClientInviteState::Proceeding;
                    self.events
                        .push_back(TransactionEvent::Provisional(response));
                } else if status.is_success() {
                    self.state = ClientInviteState::Accepted;
                    self.timer_m = Some(Timer::after(now, self.config.timeout()));
                    self.events.push_back(TransactionEvent::Final(response));
                } else {
                    match ack_for(&self.request, &response) {
                        Ok(ack) => {
                            let bytes = ack.to_bytes();
                            self.transmits.push_back(bytes.clone());
                            self.ack = Some(bytes);
                        }
                        // The request was an INVITE and the status ≥ 300: an ACK
                        // can only fail for a response without To, which the
                        // parser does not let through. Nothing to send then.
                        Err(_) => self.ack = None,
                    }
                    self.state = ClientInviteState::Completed;
                    self.timer_d = Some(Timer::after(now, self.config.timer_d()));
                    self.events.push_back(TransactionEvent::Final(response));
                }
            }
            ClientInviteState::Completed => {
                // A retransmitted failure: ACK it again, tell nobody.
                if status.as_u16() >= 300 {
                    if let Some(ack) = &self.ack {
                        self.transmits.push_back(ack.clone());
                    }
                }
            }
            ClientInviteState::Accepted => {
                if status.is_success() {
                    self.events.push_back(TransactionEvent::Final(response));
                }
            }
            ClientInviteState::Terminated => {}
        }
        self.handle_timeout(now);
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if due(self.timer_b, now) {
            self.timer_b = None;
            self.timer_a = None;
            self.events.push_back(TransactionEvent::Timeout);
            self.terminate();
            return;
        }
        if due(self.timer_a, now) {
            if let Some(a) = self.timer_a {
                self.transmits.push_back(self.wire.clone());
                self.timer_a = Some(Timer::after(now, a.interval * 2));
            }
        }
        if due(self.timer_d, now) || due(self.timer_m, now) {
            self.terminate();
        }
    }

    /// The transport failed to send (§17.1.1.2): the TU hears of it at once.
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if self.state == ClientInviteState::Terminated {
            return;
        }
        self.events.push_back(TransactionEvent::TransportError);
        self.terminate();
    }

    fn terminate(&mut self) {
        self.state = ClientInviteState::Terminated;
        self.timer_a = None;
        self.timer_b = None;
        self.timer_d = None;
        self.timer_m = None;
    }

    /// The next bytes to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }

    /// When [`ClientInvite::handle_timeout`] must be called; `None` when nothing
    /// is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[self.timer_a, self.timer_b, self.timer_d, self.timer_m])
    }

    /// The state.
    pub fn state(&self) -> ClientInviteState {
        self.state
    }

    /// Whether it is over.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientInviteState::Terminated
    }

    /// The INVITE.
    pub fn request(&self) -> &Request {
        &self.request
    }
}

/// Where a client non-INVITE transaction is (§17.1.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientNonInviteState {
    /// Request sent, nothing heard.
    Trying,
    /// A provisional response came.
    Proceeding,
    /// A final response came; absorbing retransmissions (timer K).
    Completed,
    /// Over.
    Terminated,
}

/// A client non-INVITE transaction: timers E (retransmit over UDP, doubling up
/// to T2), F (give up), K (absorb retransmitted finals).
#[derive(Debug)]
pub struct ClientNonInvite {
    config: TransactionConfig,
    request: Request,
    wire: Bytes,
    state: ClientNonInviteState,
    timer_e: Option<Timer>,
    timer_f: Option<Timer>,
    timer_k: Option<Timer>,
    transmits: VecDeque<Bytes>,
    events: VecDeque<TransactionEvent>,
}

impl ClientNonInvite {
    /// Sends `request` and starts timers E and F.
    pub fn new(now: Instant, request: Request, config: TransactionConfig) -> ClientNonInvite {
        let wire = request.to_bytes();
        ClientNonInvite {
            config,
            request,
            transmits: VecDeque::from([wire.clone()]),
            wire,
            state: ClientNonInviteState::Trying,
            timer_e: config.first_retransmit().map(|t| Timer::after(now, t)),
            timer_f: Some(Timer::after(now, config.timeout())),
            timer_k: None,
            events: VecDeque::new(),
        }
    }

    /// A response matched to this transaction.
    pub fn handle_response(&mut self, now: Instant, response: Response) {
        match self.state {
            ClientNonInviteState::Trying | ClientNonInviteState::Proceeding => {
                if response.status.is_provisional() {
                    self.state = ClientNonInviteState::Proceeding;
                    self.events
                        .push_back(TransactionEvent::Provisional(response));
                } else {
                    self.state = ClientNonInviteState::Completed;
                    self.timer_e = None;
                    self.timer_f = None;
                    self.timer_k = Some(Timer::after(now, self.config.timer_i_k()));
                    self.events.push_back(TransactionEvent::Final(response));
                }
            }
            ClientNonInviteState::Completed | ClientNonInviteState::Terminated => {}
        }
        self.handle_timeout(now);
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if due(self.timer_f, now) {
            self.events.push_back(TransactionEvent::Timeout);
            self.terminate();
            return;
        }
        if due(self.timer_e, now) {
            if let Some(e) = self.timer_e {
                self.transmits.push_back(self.wire.clone());
                // Trying: double up to T2; Proceeding: T2 (§17.1.2.2).
                let next = match self.state {
                    ClientNonInviteState::Proceeding => self.config.t2,
                    _ => (e.interval * 2).min(self.config.t2),
                };
                self.timer_e = Some(Timer::after(now, next));
            }
        }
        if due(self.timer_k, now) {
            self.terminate();
        }
    }

    /// The transport failed to send (§17.1.2.2).
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if self.state == ClientNonInviteState::Terminated {
            return;
        }
        self.events.push_back(TransactionEvent::TransportError);
        self.terminate();
    }

    fn terminate(&mut self) {
        self.state = ClientNonInviteState::Terminated;
        self.timer_e = None;
        self.timer_f = None;
        self.timer_k = None;
    }

    /// The next bytes to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }

    /// When [`ClientNonInvite::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[self.timer_e, self.timer_f, self.timer_k])
    }

    /// The state.
    pub fn state(&self) -> ClientNonInviteState {
        self.state
    }

    /// Whether it is over.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientNonInviteState::Terminated
    }

    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }
}
