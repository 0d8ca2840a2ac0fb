//! RFC 3261 §17 transactions as sans-IO state machines, with the RFC 6026
//! corrections (the `Accepted` states and timers L and M).
//!
//! ```text
//!  client INVITE      Calling ─1xx─▶ Proceeding ─300-699─▶ Completed ─D─▶ Terminated
//!  (A, B, D, M)          │ └──────────2xx──────────┴─▶ Accepted ─M─▶ Terminated
//!                        └─B (no answer)─▶ Terminated
//!  client non-INVITE  Trying ─1xx─▶ Proceeding ─final─▶ Completed ─K─▶ Terminated
//!  (E, F, K)             └────────F (no final)────────▶ Terminated
//!  server INVITE      Proceeding ─300-699─▶ Completed ─ACK─▶ Confirmed ─I─▶ Terminated
//!  (G, H, I, L)          └─2xx─▶ Accepted ─L─▶ Terminated     └─H (no ACK)─▶ Terminated
//!  server non-INVITE  Trying ─1xx─▶ Proceeding ─final─▶ Completed ─J─▶ Terminated
//! ```
//!
//! Every machine has the same shape (DESIGN.md, "Protocol logic is sans-IO"):
//! `new(now, …)`, `handle_response` / `handle_request` / `respond`,
//! `handle_timeout(now)` when [`poll_timeout`](ClientInvite::poll_timeout) says,
//! `handle_transport_error(now)`, and then drain `poll_transmit` (bytes to send
//! to the transaction's peer) and `poll_event`. A terminated transaction can be
//! dropped. Which transaction a message belongs to is decided by the caller with
//! [`TransactionKey`] (§17.1.3, §17.2.3).
//!
//! Timers with a zero duration over reliable transports (D, I, J, K) fire within
//! the call that starts them. A caller that calls `handle_timeout` late gets
//! every timer that is due, and retransmissions restart from `now`.

mod client;
mod server;

#[cfg(test)]
mod tests;

use std::time::Duration;

use bytes::Bytes;

use crate::message::{Method, Request, Response};

pub use client::{ClientInvite, ClientInviteState, ClientNonInvite, ClientNonInviteState};
pub use server::{
    RespondError, ServerInvite, ServerInviteState, ServerNonInvite, ServerNonInviteState,
};

/// Timer values and transport (§17.1.1.1, table 4 of RFC 3261).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionConfig {
    /// RTT estimate: first retransmission interval. Default 500 ms.
    pub t1: Duration,
    /// Longest retransmission interval of non-INVITE requests and INVITE
    /// responses. Default 4 s.
    pub t2: Duration,
    /// How long the network may hold a message. Default 5 s.
    pub t4: Duration,
    /// The transport is reliable (TCP, TLS, SCTP): no retransmissions, and the
    /// wait states D, I, J, K last zero.
    pub reliable: bool,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            reliable: false,
        }
    }
}

impl TransactionConfig {
    /// 64·T1: timers B, F, H, J, L, M.
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer A / E / G initial value: T1, or none over a reliable transport.
    fn first_retransmit(&self) -> Option<Duration> {
        (!self.reliable).then_some(self.t1)
    }

    /// Timer D: at least 32 s over UDP, zero otherwise.
    fn timer_d(&self) -> Duration {
        if self.reliable {
            Duration::ZERO
        } else {
            self.timeout().max(Duration::from_secs(32))
        }
    }

    /// Timers I and K: T4 over UDP, zero otherwise.
    fn timer_i_k(&self) -> Duration {
        if self.reliable {
            Duration::ZERO
        } else {
            self.t4
        }
    }

    /// Timer J: 64·T1 over UDP, zero otherwise.
    fn timer_j(&self) -> Duration {
        if self.reliable {
            Duration::ZERO
        } else {
            self.timeout()
        }
    }
}

/// What a transaction tells its user (the TU: proxy core, prober, registrar
/// client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionEvent {
    /// A 1xx arrived (client).
    Provisional(Response),
    /// A final response arrived (client). For INVITE, a 300–699 has been ACKed
    /// already; a 2xx is the TU's to ACK, and every retransmitted 2xx is passed
    /// up again (RFC 6026 §8.4: a proxy forwards each).
    Final(Response),
    /// No final response (client: timer B or F) or no ACK (server INVITE:
    /// timer H).
    Timeout,
    /// The transport reported an error sending to the peer (§17.1.4, §17.2.4).
    TransportError,
    /// An ACK matched a server INVITE transaction that sent a 2xx (RFC 6026
    /// §8.7): it belongs to the TU.
    Ack(Request),
}

/// What identifies a transaction (§17.1.3, §17.2.3): the top Via branch and
/// the CSeq method, plus the Via sent-by on the server side. ACK takes the
/// INVITE's key. Requests with a pre-RFC 3261 branch (no magic cookie) get a
/// key from Request-URI, From tag, Call-ID, CSeq number and top Via instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    branch: Bytes,
    sent_by: Option<Bytes>,
    method: Method,
}

impl TransactionKey {
    /// The key of a client transaction sending `request`, which a response
    /// matches with [`TransactionKey::for_response`].
    pub fn client(request: &Request) -> Option<TransactionKey> {
        Some(TransactionKey {
            branch: request.headers.top_via()?.branch?,
            sent_by: None,
            method: request.method.clone(),
        })
    }

    /// The client transaction a response belongs to (§17.1.3): top Via branch
    /// and CSeq method.
    pub fn for_response(response: &Response) -> Option<TransactionKey> {
        Some(TransactionKey {
            branch: response.headers.top_via()?.branch?,
            sent_by: None,
            method: response.headers.cseq()?.method,
        })
    }

    /// The server transaction a request belongs to (§17.2.3). ACK maps to the
    /// INVITE it acknowledges; CANCEL has its own transaction (see
    /// [`TransactionKey::with_method`] to find the INVITE it cancels).
    pub fn for_request(request: &Request) -> Option<TransactionKey> {
        let via = request.headers.top_via()?;
        let method = match request.method {
            Method::Ack => Method::Invite,
            ref other => other.clone(),
        };
        if via.has_rfc3261_branch() {
            let mut sent_by = via.host.to_ascii_lowercase();
            if let Some(port) = via.port {
                sent_by.extend_from_slice(format!(":{port}").as_bytes());
            }
            return Some(TransactionKey {
                branch: via.branch?,
                sent_by: Some(Bytes::from(sent_by)),
                method,
            });
        }
        // §17.2.3, RFC 2543 matching: the INVITE's To tag is absent while its
        // ACK's is not, so the To tag is left out.
        let mut legacy = b"\0rfc2543".to_vec();
        for part in [
            &request.uri.as_bytes()[..],
            request.headers.from()?.tag()?.as_bytes(),
            request.headers.call_id()?.as_bytes(),
            request.headers.cseq()?.seq.to_string().as_bytes(),
            &request.headers.value(crate::message::HeaderName::Via)?[..],
        ] {
            legacy.push(0);
            legacy.extend_from_slice(part);
        }
        Some(TransactionKey {
            branch: Bytes::from(legacy),
            sent_by: None,
            method,
        })
    }

    /// The same key for another method: the INVITE a CANCEL targets (§9.2).
    pub fn with_method(&self, method: Method) -> TransactionKey {
        TransactionKey {
            method,
            ..self.clone()
        }
    }

    /// The method part.
    pub fn method(&self) -> &Method {
        &self.method
    }
}

/// ACK starts no transaction (§17): the TU sends the ACK for a 2xx itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ACK is not sent or received in a transaction of its own")]
pub struct AckIsNotATransaction;

/// A client transaction of either kind.
#[derive(Debug)]
pub enum ClientTransaction {
    /// For INVITE.
    Invite(ClientInvite),
    /// For any other method but ACK.
    NonInvite(ClientNonInvite),
}

impl ClientTransaction {
    /// Starts the right machine for `request` and queues its first transmission.
    pub fn new(
        now: std::time::Instant,
        request: Request,
        config: TransactionConfig,
    ) -> Result<ClientTransaction, AckIsNotATransaction> {
        Ok(match request.method {
            Method::Ack => return Err(AckIsNotATransaction),
            Method::Invite => ClientTransaction::Invite(ClientInvite::new(now, request, config)),
            _ => ClientTransaction::NonInvite(ClientNonInvite::new(now, request, config)),
        })
    }

    /// A response for this transaction.
    pub fn handle_response(&mut self, now: std::time::Instant, response: Response) {
        match self {
            ClientTransaction::Invite(t) => t.handle_response(now, response),
            ClientTransaction::NonInvite(t) => t.handle_response(now, response),
        }
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: std::time::Instant) {
        match self {
            ClientTransaction::Invite(t) => t.handle_timeout(now),
            ClientTransaction::NonInvite(t) => t.handle_timeout(now),
        }
    }

    /// The transport could not send.
    pub fn handle_transport_error(&mut self, now: std::time::Instant) {
        match self {
            ClientTransaction::Invite(t) => t.handle_transport_error(now),
            ClientTransaction::NonInvite(t) => t.handle_transport_error(now),
        }
    }

    /// Bytes to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        match self {
            ClientTransaction::Invite(t) => t.poll_transmit(),
            ClientTransaction::NonInvite(t) => t.poll_transmit(),
        }
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        match self {
            ClientTransaction::Invite(t) => t.poll_event(),
            ClientTransaction::NonInvite(t) => t.poll_event(),
        }
    }

    /// When to call `handle_timeout`.
    pub fn poll_timeout(&self) -> Option<std::time::Instant> {
        match self {
            ClientTransaction::Invite(t) => t.poll_timeout(),
            ClientTransaction::NonInvite(t) => t.poll_timeout(),
        }
    }

    /// Whether the transaction is over and can be dropped.
    pub fn is_terminated(&self) -> bool {
        match self {
            ClientTransaction::Invite(t) => t.is_terminated(),
            ClientTransaction::NonInvite(t) => t.is_terminated(),
        }
    }

    /// The request it sends.
    pub fn request(&self) -> &Request {
        match self {
            ClientTransaction::Invite(t) => t.request(),
            ClientTransaction::NonInvite(t) => t.request(),
        }
    }
}

/// A server transaction of either kind.
#[derive(Debug)]
pub enum ServerTransaction {
    /// For INVITE.
    Invite(ServerInvite),
    /// For any other method but ACK.
    NonInvite(ServerNonInvite),
}

impl ServerTransaction {
    /// Starts the right machine for a request that matched no transaction.
    pub fn new(
        now: std::time::Instant,
        request: Request,
        config: TransactionConfig,
    ) -> Result<ServerTransaction, AckIsNotATransaction> {
        Ok(match request.method {
            Method::Ack => return Err(AckIsNotATransaction),
            Method::Invite => ServerTransaction::Invite(ServerInvite::new(now, request, config)),
            _ => ServerTransaction::NonInvite(ServerNonInvite::new(now, request, config)),
        })
    }

    /// A request that matched this transaction (a retransmission, or an ACK).
    pub fn handle_request(&mut self, now: std::time::Instant, request: Request) {
        match self {
            ServerTransaction::Invite(t) => t.handle_request(now, request),
            ServerTransaction::NonInvite(t) => t.handle_request(now, request),
        }
    }

    /// The TU's response.
    pub fn respond(
        &mut self,
        now: std::time::Instant,
        response: Response,
    ) -> Result<(), RespondError> {
        match self {
            ServerTransaction::Invite(t) => t.respond(now, response),
            ServerTransaction::NonInvite(t) => t.respond(now, response),
        }
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: std::time::Instant) {
        match self {
            ServerTransaction::Invite(t) => t.handle_timeout(now),
            ServerTransaction::NonInvite(t) => t.handle_timeout(now),
        }
    }

    /// The transport could not send.
    pub fn handle_transport_error(&mut self, now: std::time::Instant) {
        match self {
            ServerTransaction::Invite(t) => t.handle_transport_error(now),
            ServerTransaction::NonInvite(t) => t.handle_transport_error(now),
        }
    }

    /// Bytes to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        match self {
            ServerTransaction::Invite(t) => t.poll_transmit(),
            ServerTransaction::NonInvite(t) => t.poll_transmit(),
        }
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        match self {
            ServerTransaction::Invite(t) => t.poll_event(),
            ServerTransaction::NonInvite(t) => t.poll_event(),
        }
    }

    /// When to call `handle_timeout`.
    pub fn poll_timeout(&self) -> Option<std::time::Instant> {
        match self {
            ServerTransaction::Invite(t) => t.poll_timeout(),
            ServerTransaction::NonInvite(t) => t.poll_timeout(),
        }
    }

    /// Whether the transaction is over and can be dropped.
    pub fn is_terminated(&self) -> bool {
        match self {
            ServerTransaction::Invite(t) => t.is_terminated(),
            ServerTransaction::NonInvite(t) => t.is_terminated(),
        }
    }
}

/// One running timer: when it fires and, for retransmission timers, the
/// current interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timer {
    at: std::time::Instant,
    interval: Duration,
}

impl Timer {
    fn after(now: std::time::Instant, interval: Duration) -> Timer {
        Timer {
            at: now + interval,
            interval,
        }
    }
}

/// The earliest of some optional deadlines.
fn earliest(timers: &[Option<Timer>]) -> Option<std::time::Instant> {
    timers.iter().flatten().map(|t| t.at).min()
}

/// Whether a timer is due at `now`.
fn due(timer: Option<Timer>, now: std::time::Instant) -> bool {
    timer.is_some_and(|t| t.at <= now)
}
