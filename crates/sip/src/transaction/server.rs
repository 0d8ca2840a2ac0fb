//! Server transactions (§17.2; RFC 6026 §8.5–8.7 for the Accepted state).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{due, earliest, Timer, TransactionConfig, TransactionEvent};
use crate::message::{response_to, Method, Request, Response, StatusCode};

/// The TU answered at a moment the transaction cannot send that answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot send a {status} response in the {state} state")]
pub struct RespondError {
    /// The refused status.
    pub status: StatusCode,
    /// The state the transaction was in.
    pub state: &'static str,
}

/// How long a server INVITE transaction waits for the TU before answering 100
/// Trying itself (§17.2.1).
const TRYING_AFTER: Duration = Duration::from_millis(200);

/// Where a server INVITE transaction is (§17.2.1, RFC 6026 §8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerInviteState {
    /// Waiting for the TU's final answer; provisionals may have been sent.
    Proceeding,
    /// A 300–699 was sent; retransmitting it (timer G) until the ACK (or H).
    Completed,
    /// The ACK came; absorbing ACK retransmissions (timer I).
    Confirmed,
    /// A 2xx was sent; the TU retransmits it, ACKs go to the TU (timer L).
    Accepted,
    /// Over.
    Terminated,
}

impl ServerInviteState {
    fn name(self) -> &'static str {
        match self {
            ServerInviteState::Proceeding => "Proceeding",
            ServerInviteState::Completed => "Completed",
            ServerInviteState::Confirmed => "Confirmed",
            ServerInviteState::Accepted => "Accepted",
            ServerInviteState::Terminated => "Terminated",
        }
    }
}

/// A server INVITE transaction: 100 Trying after 200 ms of TU silence, timers G
/// (retransmit a failure over UDP, doubling up to T2), H (give up waiting for the
/// ACK), I (absorb ACKs), L (absorb INVITEs after a 2xx).
#[derive(Debug)]
pub struct ServerInvite {
    config: TransactionConfig,
    request: Request,
    state: ServerInviteState,
    last_response: Option<Bytes>,
    timer_trying: Option<Timer>,
    timer_g: Option<Timer>,
    timer_h: Option<Timer>,
    timer_i: Option<Timer>,
    timer_l: Option<Timer>,
    transmits: VecDeque<Bytes>,
    events: VecDeque<TransactionEvent>,
}

impl ServerInvite {
    /// A new transaction for an INVITE that matched none; the TU answers with
    /// [`ServerInvite::respond`].
    pub fn new(now: Instant, request: Request, config: TransactionConfig) -> ServerInvite {
        ServerInvite {
            config,
            request,
            state: ServerInviteState::Proceeding,
            last_response: None,
            timer_trying: Some(Timer::after(now, TRYING_AFTER)),
            timer_g: None,
            timer_h: None,
            timer_i: None,
            timer_l: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The TU's response to send.
    pub fn respond(&mut self, now: Instant, response: Response) -> Result<(), RespondError> {
        let status = response.status;
        match self.state {
            ServerInviteState::Proceeding => {
                self.timer_trying = None;
                let bytes = response.to_bytes();
                self.transmits.push_back(bytes.clone());
                self.last_response = Some(bytes);
                if status.is_success() {
                    self.state = ServerInviteState::Accepted;
                    self.timer_l = Some(Timer::after(now, self.config.timeout()));
                } else if status.is_final() {
                    self.state = ServerInviteState::Completed;
                    self.timer_g = self.config.first_retransmit().map(|t| Timer::after(now, t));
                    self.timer_h = Some(Timer::after(now, self.config.timeout()));
                }
            }
            // RFC 6026 §8.7: the TU's own 2xx retransmissions go through.
            ServerInviteState::Accepted if status.is_success() => {
                self.transmits.push_back(response.to_bytes());
            }
            state => {
                return Err(RespondError {
                    status,
                    state: state.name(),
                })
            }
        }
        self.handle_timeout(now);
        Ok(())
    }

    /// A request that matched this transaction: a retransmitted INVITE or an ACK.
    pub fn handle_request(&mut self, now: Instant, request: Request) {
        match (request.method == Method::Ack, self.state) {
            // A retransmitted INVITE: repeat the last answer (§17.2.1).
            (false, ServerInviteState::Proceeding | ServerInviteState::Completed) => {
                if let Some(last) = &self.last_response {
                    self.transmits.push_back(last.clone());
                }
            }
            (true, ServerInviteState::Completed) => {
                self.state = ServerInviteState::Confirmed;
                self.timer_g = None;
                self.timer_h = None;
                self.timer_i = Some(Timer::after(now, self.config.timer_i_k()));
            }
            (true, ServerInviteState::Accepted) => {
                self.events.push_back(TransactionEvent::Ack(request));
            }
            // Confirmed absorbs ACKs; Accepted absorbs INVITEs (RFC 6026 §8.7).
            _ => {}
        }
        self.handle_timeout(now);
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if due(self.timer_trying, now) {
            self.timer_trying = None;
            if self.state == ServerInviteState::Proceeding && self.last_response.is_none() {
                let trying = response_to(&self.request, StatusCode::TRYING, None).to_bytes();
                self.transmits.push_back(trying.clone());
                self.last_response = Some(trying);
            }
        }
        if due(self.timer_h, now) {
            self.events.push_back(TransactionEvent::Timeout);
            self.terminate();
            return;
        }
        if due(self.timer_g, now) {
            if let (Some(g), Some(last)) = (self.timer_g, &self.last_response) {
                self.transmits.push_back(last.clone());
                self.timer_g = Some(Timer::after(now, (g.interval * 2).min(self.config.t2)));
            }
        }
        if due(self.timer_i, now) || due(self.timer_l, now) {
            self.terminate();
        }
    }

    /// The transport failed to send (§17.2.4).
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if self.state == ServerInviteState::Terminated {
            return;
        }
        self.events.push_back(TransactionEvent::TransportError);
        self.terminate();
    }

    fn terminate(&mut self) {
        self.state = ServerInviteState::Terminated;
        self.timer_trying = None;
        self.timer_g = None;
        self.timer_h = None;
        self.timer_i = None;
        self.timer_l = None;
    }

    /// The next bytes to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }

    /// When [`ServerInvite::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[
            self.timer_trying,
            self.timer_g,
            self.timer_h,
            self.timer_i,
            self.timer_l,
        ])
    }

    /// The state.
    pub fn state(&self) -> ServerInviteState {
        self.state
    }

    /// Whether it is over.
    pub fn is_terminated(&self) -> bool {
        self.state == ServerInviteState::Terminated
    }

    /// The INVITE.
    pub fn request(&self) -> &Request {
        &self.request
    }
}

/// Where a server non-INVITE transaction is (§17.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerNonInviteState {
    /// Waiting for the TU; retransmissions absorbed.
    Trying,
    /// A provisional was sent; retransmissions get it again.
    Proceeding,
    /// A final was sent; retransmissions get it again (timer J).
    Completed,
    /// Over.
    Terminated,
}

impl ServerNonInviteState {
    fn name(self) -> &'static str {
        match self {
            ServerNonInviteState::Trying => "Trying",
            ServerNonInviteState::Proceeding => "Proceeding",
            ServerNonInviteState::Completed => "Completed",
            ServerNonInviteState::Terminated => "Terminated",
        }
    }
}

/// A server non-INVITE transaction: timer J (absorb retransmitted requests).
#[derive(Debug)]
pub struct ServerNonInvite {
    config: TransactionConfig,
    request: Request,
    state: ServerNonInviteState,
    last_response: Option<Bytes>,
    timer_j: Option<Timer>,
    transmits: VecDeque<Bytes>,
    events: VecDeque<TransactionEvent>,
}

impl ServerNonInvite {
    /// A new transaction for a request that matched none.
    pub fn new(_now: Instant, request: Request, config: TransactionConfig) -> ServerNonInvite {
        ServerNonInvite {
            config,
            request,
            state: ServerNonInviteState::Trying,
            last_response: None,
            timer_j: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The TU's response to send.
    pub fn respond(&mut self, now: Instant, response: Response) -> Result<(), RespondError> {
        match self.state {
            ServerNonInviteState::Trying | ServerNonInviteState::Proceeding => {
                let bytes = response.to_bytes();
                self.transmits.push_back(bytes.clone());
                self.last_response = Some(bytes);
                if response.status.is_final() {
                    self.state = ServerNonInviteState::Completed;
                    self.timer_j = Some(Timer::after(now, self.config.timer_j()));
                } else {
                    self.state = ServerNonInviteState::Proceeding;
                }
            }
            state => {
                return Err(RespondError {
                    status: response.status,
                    state: state.name(),
                })
            }
        }
        self.handle_timeout(now);
        Ok(())
    }

    /// A retransmission of the request.
    pub fn handle_request(&mut self, now: Instant, _request: Request) {
        if matches!(
            self.state,
            ServerNonInviteState::Proceeding | ServerNonInviteState::Completed
        ) {
            if let Some(last) = &self.last_response {
                self.transmits.push_back(last.clone());
            }
        }
        self.handle_timeout(now);
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if due(self.timer_j, now) {
            self.terminate();
        }
    }

    /// The transport failed to send (§17.2.4).
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if self.state == ServerNonInviteState::Terminated {
            return;
        }
        self.events.push_back(TransactionEvent::TransportError);
        self.terminate();
    }

    fn terminate(&mut self) {
        self.state = ServerNonInviteState::Terminated;
        self.timer_j = None;
    }

    /// The next bytes to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }

    /// When [`ServerNonInvite::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[self.timer_j])
    }

    /// The state.
    pub fn state(&self) -> ServerNonInviteState {
        self.state
    }

    /// Whether it is over.
    pub fn is_terminated(&self) -> bool {
        self.state == ServerNonInviteState::Terminated
    }

    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }
}
