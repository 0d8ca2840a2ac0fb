//! The peer link's health (SPEC S3, S4): OPTIONS over the inter-site trunk
//! every `oos_check`; the peer is out of service once nothing has answered
//! for `oos_force`, and in service again after `peer_rise` answered probes in
//! a row.
//!
//! Only a 2xx counts: a peer that answers 503 (it is draining, SPEC S7) is
//! alive but must not be sent calls. Probes are not retransmitted: over UDP a
//! lost probe is covered by the next one, `oos_check` later, and `oos_force`
//! spans several probes. A site cannot tell a dead peer from a cut link; it
//! does not need to (ARCHITECTURE.md, "no split brain"): either way it stops
//! forwarding and serves only its own agents.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hotsite_core::Rng;
use hotsite_sip::message::{Branch, Method, NewRequest, Response, Uri};

/// How many unanswered probes are remembered for matching late answers.
const OUTSTANDING: usize = 16;

/// What the link thinks of the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Answering: calls may be forwarded (peered mode).
    InService,
    /// Silent for `oos_force`, answering with an error, or not heard yet
    /// (single-site mode).
    OutOfService,
}

/// A change of the peer's state, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerChange {
    /// The state after.
    pub state: PeerState,
    /// Why, for the event.
    pub cause: String,
}

/// How the peer is probed (from `[site]`).
#[derive(Debug, Clone, Copy)]
pub struct PeerTimers {
    /// Between probes (`oos_check`).
    pub check: Duration,
    /// Silence before out of service (`oos_force`).
    pub force: Duration,
    /// Answered probes in a row before in service again (`peer_rise`).
    pub rise: u32,
}

/// Probing of the peer site.
#[derive(Debug)]
pub struct PeerLink {
    peer: SocketAddr,
    sent_by: String,
    from: Uri,
    to: Uri,
    check: Duration,
    force: Duration,
    rise: u32,
    state: PeerState,
    /// The last 2xx to a probe (or the start, so a peer is not declared dead
    /// before it had `oos_force` to answer).
    last_ok: Instant,
    answered_in_row: u32,
    next_probe: Instant,
    outstanding: VecDeque<String>,
    cseq: u32,
    call_id: String,
    changes: Vec<PeerChange>,
    probes_sent: u64,
    answers: u64,
}

impl PeerLink {
    /// A link to `peer`, probed from `us` (Via sent-by). Starts out of
    /// service: the site peers only once the peer has answered.
    pub fn new(
        now: Instant,
        us: SocketAddr,
        peer: SocketAddr,
        site: &str,
        timers: PeerTimers,
        rng: &mut Rng,
    ) -> PeerLink {
        let PeerTimers { check, force, rise } = timers;
        let from = Uri::parse(format!("sip:{site}@{us}")).unwrap_or_else(|_| unreachable_uri());
        let to = Uri::parse(format!("sip:{peer}")).unwrap_or_else(|_| unreachable_uri());
        PeerLink {
            peer,
            sent_by: us.to_string(),
            from,
            to,
            check,
            force,
            rise: rise.max(1),
            state: PeerState::OutOfService,
            last_ok: now,
            answered_in_row: 0,
            next_probe: now,
            outstanding: VecDeque::with_capacity(OUTSTANDING),
            cseq: 0,
            call_id: format!("peer-{:016x}@{us}", rng.next_u64()),
            changes: Vec::new(),
            probes_sent: 0,
            answers: 0,
        }
    }

    /// The peer's address.
    pub fn addr(&self) -> SocketAddr {
        self.peer
    }

    /// In or out of service.
    pub fn state(&self) -> PeerState {
        self.state
    }

    /// When the peer last answered a probe with 2xx.
    pub fn last_ok(&self) -> Instant {
        self.last_ok
    }

    /// Probes sent and 2xx answers received.
    pub fn counts(&self) -> (u64, u64) {
        (self.probes_sent, self.answers)
    }

    /// A probe to send now, if one is due; bytes for the peer's address.
    pub fn poll_probe(&mut self, now: Instant, rng: &mut Rng) -> Option<bytes::Bytes> {
        if now < self.next_probe {
            return None;
        }
        self.next_probe = now + self.check;
        self.cseq = self.cseq.wrapping_add(1);
        let branch = Branch::generate(rng);
        let request = NewRequest {
            method: Method::Options,
            uri: self.to.clone(),
            from: self.from.clone(),
            from_tag: format!("{:08x}", rng.next_u64() as u32),
            to: self.to.clone(),
            call_id: self.call_id.clone(),
            cseq: self.cseq,
            transport: "UDP".to_owned(),
            sent_by: self.sent_by.clone(),
            branch: branch.clone(),
            max_forwards: 70,
            contact: None,
        }
        .build();
        if self.outstanding.len() == OUTSTANDING {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back(branch.as_str().to_owned());
        self.probes_sent += 1;
        Some(request.to_bytes())
    }

    /// A response: true if it answered one of our probes (then it is ours
    /// and goes no further).
    pub fn handle_response(&mut self, now: Instant, response: &Response) -> bool {
        let Some(branch) = response
            .headers
            .top_via()
            .and_then(|via| via.branch().map(str::to_owned))
        else {
            return false;
        };
        let Some(index) = self.outstanding.iter().position(|b| *b == branch) else {
            return false;
        };
        let status = response.status.as_u16();
        if status < 200 {
            return true;
        }
        self.outstanding.remove(index);
        if (200..300).contains(&status) {
            self.answers += 1;
            self.last_ok = now;
            self.answered_in_row += 1;
            if self.state == PeerState::OutOfService && self.answered_in_row >= self.rise {
                self.set(
                    PeerState::InService,
                    format!("{} probes answered in a row", self.answered_in_row),
                );
            }
        } else {
            self.answered_in_row = 0;
            if self.state == PeerState::InService {
                self.set(
                    PeerState::OutOfService,
                    format!("the peer answered a probe with {status} (draining or failing)"),
                );
            }
        }
        true
    }

    /// Time passed: out of service once silent for `oos_force`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_ok) >= self.force {
            self.answered_in_row = 0;
            if self.state == PeerState::InService {
                self.set(
                    PeerState::OutOfService,
                    format!("no answer for {:?} (oos_force)", self.force),
                );
            }
        }
    }

    /// The next probe, or the moment the peer would be out of service.
    pub fn poll_timeout(&self) -> Instant {
        match self.state {
            PeerState::InService => self.next_probe.min(self.last_ok + self.force),
            PeerState::OutOfService => self.next_probe,
        }
    }

    /// The changes since the last call.
    pub fn take_changes(&mut self) -> Vec<PeerChange> {
        std::mem::take(&mut self.changes)
    }

    fn set(&mut self, state: PeerState, cause: String) {
        self.state = state;
        self.changes.push(PeerChange { state, cause });
    }
}

fn unreachable_uri() -> Uri {
    // `sip:` + a socket address always parses; kept total anyway.
    Uri::parse("sip:invalid").expect("a constant URI")
}
