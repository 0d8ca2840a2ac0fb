//! Calls to agents through the site (SPEC S1, S6, S7): the transaction-stateful
//! proxy between a media gateway (or trunk) and the DN's phone, or the peer
//! site.
//!
//! - A new INVITE is answered `100` at once by a server INVITE transaction
//!   (`hotsite_sip::transaction`), which also absorbs its retransmissions and
//!   retransmits our final answer until the caller's ACK.
//! - [`decide`](crate::decide::decide) says where it goes. *Local*: to the
//!   DN's registered contacts, newest first, one after the other (the
//!   Request-URI becomes the contact, as a registrar's location lookup does);
//!   a contact that answers nothing within `invite_timeout`, or answers 408 or
//!   5xx, hands the call to the next. *Forward*: once, to the peer site, with
//!   [`FORWARDED_HEADER`](crate::machine::FORWARDED_HEADER) naming this site
//!   so the peer never sends it back. *Reject* / *Redirect*: a final answer
//!   with a `Warning` saying why.
//! - Every request we send out carries `Record-Route: <sip:US;lr>`, so the
//!   dialog's ACK, re-INVITEs and BYE come through us: a BYE ends the call
//!   for the agent (busy → idle; a drain's pending logout happens then).
//! - Provisionals go back through the server transaction; a 2xx (and each
//!   retransmission of it) too, in its Accepted state (RFC 6026); other finals
//!   are ACKed hop by hop by the client transaction.
//! - CANCEL from the caller gets 200; the ringing leg is cancelled (a leg not
//!   yet ringing is cancelled when its first provisional comes, §9.1).
//! - A leg given up for silence is kept until its transaction ends: a late
//!   provisional is cancelled, a late 2xx is relayed (a proxy never swallows
//!   a 2xx), a late failure dropped after its ACK.
//!
//! UDP only: phones, gateways and the peer trunk reach a site over UDP in
//! this version.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotsite_core::{Event, EventKind, Target};
use hotsite_sip::message::{
    cancel_for, response_to, Header, HeaderName, Method, Request, Response, StatusCode, Uri,
};
use hotsite_sip::proxy::{
    response_addr, stamp_via, stateful_branch, stateless_branch, uri_addr, warning, Peer, ServerKey,
};
use hotsite_sip::transaction::{
    ClientInvite, ClientNonInvite, ServerInvite, TransactionConfig, TransactionEvent,
};

use crate::decide::{decide, CallFacts, Decision};
use crate::machine::{Site, FORWARDED_HEADER};

/// An answered call with no BYE seen for this long is taken as over (a
/// phone that vanished mid-call must not keep its agent busy for ever).
pub const MAX_CALL_DURATION: Duration = Duration::from_secs(4 * 3600);

/// How often stale dialogs are looked for.
const DIALOG_SWEEP: Duration = Duration::from_secs(60);

/// Call counters for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// New INVITEs received.
    pub offered: u64,
    /// Delivered to a phone here and answered.
    pub answered_local: u64,
    /// Sent to the peer site (SPEC S1, S6).
    pub forwarded: u64,
    /// Forwarded and answered at the peer.
    pub answered_forwarded: u64,
    /// Finished with a final answer other than 2xx.
    pub failed: u64,
    /// Refused while draining (SPEC S7).
    pub drain_rejected: u64,
    /// Refused over `max_calls`.
    pub over_capacity: u64,
}

impl CallStats {
    /// Every counter with its outcome name, for `/v1/site` and `/metrics`.
    pub fn outcomes(&self) -> [(&'static str, u64); 7] {
        [
            ("offered", self.offered),
            ("answered_local", self.answered_local),
            ("forwarded", self.forwarded),
            ("answered_forwarded", self.answered_forwarded),
            ("failed", self.failed),
            ("drain_rejected", self.drain_rejected),
            ("over_capacity", self.over_capacity),
        ]
    }
}

/// Where one leg goes.
#[derive(Debug, Clone)]
struct Hop {
    /// The new Request-URI (a contact), or none to keep the caller's.
    uri: Option<Uri>,
    addr: SocketAddr,
}

#[derive(Debug)]
struct Leg {
    call: u64,
    tx: ClientInvite,
    ringing: bool,
    /// No reply at all by then → given up (Calling); ringing too long by then
    /// → cancelled (Ringing).
    deadline: Instant,
    cancel: Option<ClientNonInvite>,
    abandoned: bool,
    addr: SocketAddr,
}

#[derive(Debug)]
struct Call {
    key: ServerKey,
    server: ServerInvite,
    caller: SocketAddr,
    call_id: String,
    dn: String,
    hops: Vec<Hop>,
    tried: usize,
    current: Option<Bytes>,
    legs: Vec<Bytes>,
    forwarded: bool,
    cancelled: bool,
    answered: bool,
    finished: bool,
    last_failure: Option<Response>,
    scheduled: Option<Instant>,
}

#[derive(Debug)]
struct Dialog {
    dn: String,
    local: bool,
    since: Instant,
    /// When a BYE went through: the agent is free from then on, but the call
    /// counts (for a drain) until the BYE's answer has gone back too, or
    /// 64·T1 passed.
    bye_at: Option<Instant>,
}

/// The calls of a site.
#[derive(Debug)]
pub(crate) struct Calls {
    via_prefix: String,
    record_route: Bytes,
    tx: TransactionConfig,
    invite_timeout: Duration,
    ring_timeout: Duration,
    max_calls: usize,
    calls: HashMap<u64, Call>,
    keys: HashMap<ServerKey, u64>,
    legs: HashMap<Bytes, Leg>,
    dialogs: HashMap<String, Dialog>,
    /// Calls without a final answer yet (kept as a count: checked on every
    /// INVITE against `max_calls`, while answered calls stay in `calls` for
    /// their transactions' last 64·T1).
    unfinished: usize,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    next_sweep: Option<Instant>,
    next_id: u64,
    stats: CallStats,
    events: Vec<Event>,
}

impl Calls {
    pub(crate) fn new(
        public: SocketAddr,
        tx: TransactionConfig,
        invite_timeout: Duration,
        ring_timeout: Duration,
        max_calls: usize,
    ) -> Calls {
        Calls {
            via_prefix: format!("SIP/2.0/UDP {public};rport;branch="),
            record_route: Bytes::from(format!("<sip:{public};lr>")),
            tx,
            invite_timeout,
            ring_timeout,
            max_calls,
            calls: HashMap::new(),
            keys: HashMap::new(),
            legs: HashMap::new(),
            dialogs: HashMap::new(),
            unfinished: 0,
            timers: BinaryHeap::new(),
            next_sweep: None,
            next_id: 0,
            stats: CallStats::default(),
            events: Vec::new(),
        }
    }

    /// Calls not finished yet plus answered calls not hung up.
    pub(crate) fn active(&self) -> usize {
        self.unfinished + self.dialogs.len()
    }

    pub(crate) fn stats(&self) -> CallStats {
        self.stats
    }

    /// Calls without a final answer yet (ringing, or trying the next hop).
    pub(crate) fn waiting(&self) -> usize {
        self.unfinished
    }

    /// Answered calls not hung up.
    pub(crate) fn answered(&self) -> usize {
        self.dialogs.len()
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        [timer, self.next_sweep].into_iter().flatten().min()
    }

    pub(crate) fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    fn schedule(&mut self, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let mut next = call.server.poll_timeout();
        for branch in &call.legs {
            if let Some(leg) = self.legs.get(branch) {
                let leg_next = [
                    leg.tx.poll_timeout(),
                    // An abandoned leg's deadline has passed: only its
                    // transaction's timers are left to wait for.
                    (!leg.abandoned).then_some(leg.deadline),
                    leg.cancel.as_ref().and_then(ClientNonInvite::poll_timeout),
                ]
                .into_iter()
                .flatten()
                .min();
                next = [next, leg_next].into_iter().flatten().min();
            }
        }
        if let Some(at) = next {
            if call.scheduled.is_none_or(|s| at < s) {
                call.scheduled = Some(at);
                self.timers.push(Reverse((at, id)));
            }
        }
    }
}

impl Site {
    /// A new INVITE (no To tag), or a retransmission of one.
    pub(crate) fn on_invite(&mut self, now: Instant, from: SocketAddr, mut request: Request) {
        let Some(via) = request.headers.top_via() else {
            self.dropped += 1;
            return;
        };
        let Some(key) = ServerKey::of(&request, &via) else {
            self.refuse(
                from,
                &request,
                StatusCode::BAD_REQUEST,
                "no Via branch and no From tag",
            );
            return;
        };
        if let Some(&id) = self.calls.keys.get(&key) {
            if let Some(call) = self.calls.calls.get_mut(&id) {
                call.server.handle_request(now, request);
            }
            self.drive(now, id);
            return;
        }
        if self.calls.unfinished >= self.calls.max_calls {
            self.calls.stats.over_capacity += 1;
            let mut response = response_to(&request, StatusCode::SERVICE_UNAVAILABLE, Some("cap"));
            response
                .headers
                .push(Header::new(HeaderName::RetryAfter, "5"));
            response.headers.push(warning(
                "hotsite",
                "too many calls at this site (max_calls)",
            ));
            self.reply_at(from, &request, response);
            return;
        }
        let caller = stamp_via(&mut request.headers, &via, Peer::udp(from)).addr;
        if request.headers.decrement_max_forwards().is_err() {
            self.refuse(
                from,
                &request,
                StatusCode::TOO_MANY_HOPS,
                "Max-Forwards reached 0",
            );
            return;
        }
        self.us.pop_routes(&mut request.headers);
        let dn = request
            .uri
            .sip()
            .and_then(|sip| sip.user.map(|u| String::from_utf8_lossy(&u).into_owned()))
            .unwrap_or_default();
        let from_peer = request.headers.get_named(FORWARDED_HEADER).is_some();
        let facts = CallFacts {
            known_dn: self.registrar.is_known(&dn),
            dr_forward: self.dr_forward_of(&dn),
            agent_here: self.agents.on_dn(&dn).is_some(),
            dn_in_service: self.registrar.in_service(&dn),
            peered: self.peered(),
            from_peer,
            draining: self.mode() == crate::machine::Mode::Draining,
        };
        self.calls.stats.offered += 1;
        let call_id = request.headers.call_id().unwrap_or_default().to_owned();
        let decision = decide(facts, self.reject_code);
        let hops = match &decision {
            Decision::Local => self
                .registrar
                .bindings(&dn)
                .iter()
                .map(|b| Hop {
                    uri: Some(b.uri.clone()),
                    addr: b.addr,
                })
                .collect(),
            Decision::Forward(_) => match &self.peer {
                Some(peer) => vec![Hop {
                    uri: None,
                    addr: peer.addr(),
                }],
                None => Vec::new(),
            },
            Decision::Reject(..) | Decision::Redirect => Vec::new(),
        };
        request
            .headers
            .insert_record_route(self.calls.record_route.clone());
        if let Decision::Forward(why) = decision {
            request
                .headers
                .push(Header::from_parts(FORWARDED_HEADER, self.name.clone()).expect("a token"));
            self.calls.stats.forwarded += 1;
            self.calls.events.push(Event {
                at: now,
                target: Target::new(&self.name, &format!("dn/{dn}")),
                kind: EventKind::Rerouted {
                    item: call_id.clone(),
                    to: self.peer_target(),
                    cause: why.to_owned(),
                },
            });
        }
        let trying = response_to(&request, StatusCode::TRYING, None);
        let mut server = ServerInvite::new(now, request, self.calls.tx);
        let _ = server.respond(now, trying);
        let id = self.calls.next_id;
        self.calls.next_id += 1;
        self.calls.calls.insert(
            id,
            Call {
                key: key.clone(),
                server,
                caller,
                call_id,
                dn: dn.clone(),
                hops,
                tried: 0,
                current: None,
                legs: Vec::new(),
                forwarded: matches!(decision, Decision::Forward(_)),
                cancelled: false,
                answered: false,
                finished: false,
                last_failure: None,
                scheduled: None,
            },
        );
        self.calls.keys.insert(key, id);
        self.calls.unfinished += 1;
        match decision {
            Decision::Local | Decision::Forward(_) => self.next_hop(now, id),
            Decision::Reject(code, why) => {
                if facts.draining {
                    self.calls.stats.drain_rejected += 1;
                }
                let status = StatusCode::new(code).unwrap_or(StatusCode::DECLINE);
                self.finish_with(now, id, status, Some(why));
            }
            Decision::Redirect => {
                self.calls.stats.drain_rejected += 1;
                self.redirect(now, id, &dn);
            }
        }
        self.drive(now, id);
    }

    /// The drain's 302 to the peer (SPEC S7).
    fn redirect(&mut self, now: Instant, id: u64, dn: &str) {
        let contact = self.peer_contact(dn);
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let mut response = response_to(
            call.server.request(),
            StatusCode::MOVED_TEMPORARILY,
            Some("hsd"),
        );
        if let Some(contact) = contact {
            response
                .headers
                .push(Header::new(HeaderName::Contact, format!("<{contact}>")));
        }
        response.headers.push(warning(
            "hotsite",
            "this site is draining: call the peer site",
        ));
        let _ = call.server.respond(now, response);
        if !std::mem::replace(&mut call.finished, true) {
            self.calls.unfinished -= 1;
        }
        self.calls.stats.failed += 1;
    }

    /// Sends the call to its next hop, or gives the caller the final answer.
    fn next_hop(&mut self, now: Instant, id: u64) {
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if call.cancelled || call.finished {
            return;
        }
        if call.tried >= call.hops.len() {
            match call.last_failure.take() {
                Some(mut response) => {
                    response.headers.pop_via();
                    let _ = call.server.respond(now, response);
                    if !std::mem::replace(&mut call.finished, true) {
                        self.calls.unfinished -= 1;
                    }
                    self.calls.stats.failed += 1;
                }
                None => {
                    let why = if call.forwarded {
                        "the peer site did not answer"
                    } else if call.hops.is_empty() {
                        "the DN has no phone registered at this site"
                    } else {
                        "the DN's phone did not answer"
                    };
                    let status = if call.hops.is_empty() {
                        StatusCode::TEMPORARILY_UNAVAILABLE
                    } else {
                        StatusCode::REQUEST_TIMEOUT
                    };
                    self.finish_with(now, id, status, Some(why));
                }
            }
            return;
        }
        let hop = call.hops[call.tried].clone();
        call.tried += 1;
        let mut request = call.server.request().clone();
        if let Some(uri) = hop.uri {
            request.uri = uri;
        }
        let branch = stateful_branch(&mut self.rng);
        let mut via = String::with_capacity(self.calls.via_prefix.len() + branch.len());
        via.push_str(&self.calls.via_prefix);
        via.push_str(std::str::from_utf8(&branch).unwrap_or_default());
        request.headers.push_via(Bytes::from(via));
        let tx = ClientInvite::new(now, request, self.calls.tx);
        call.current = Some(branch.clone());
        call.legs.push(branch.clone());
        self.calls.legs.insert(
            branch,
            Leg {
                call: id,
                tx,
                ringing: false,
                deadline: now + self.calls.invite_timeout,
                cancel: None,
                abandoned: false,
                addr: hop.addr,
            },
        );
    }

    /// Answers the caller with a final status made here.
    fn finish_with(&mut self, now: Instant, id: u64, status: StatusCode, why: Option<&str>) {
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if call.finished {
            return;
        }
        let mut response = response_to(call.server.request(), status, Some("hsf"));
        if let Some(why) = why {
            response.headers.push(warning("hotsite", why));
        }
        let _ = call.server.respond(now, response);
        if !std::mem::replace(&mut call.finished, true) {
            self.calls.unfinished -= 1;
        }
        self.calls.stats.failed += 1;
    }

    /// The caller's CANCEL (§9.2, §16.10).
    pub(crate) fn on_cancel(&mut self, now: Instant, from: SocketAddr, request: Request) {
        let id = request
            .headers
            .top_via()
            .and_then(|via| ServerKey::of(&request, &via))
            .and_then(|key| self.calls.keys.get(&key).copied());
        let Some(id) = id else {
            self.refuse(
                from,
                &request,
                StatusCode::CALL_DOES_NOT_EXIST,
                "no such call",
            );
            return;
        };
        let ok = response_to(&request, StatusCode::OK, Some("hsc"));
        self.reply_at(from, &request, ok);
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if call.finished || call.cancelled {
            return;
        }
        call.cancelled = true;
        if let Some(branch) = call.current.clone() {
            if self.calls.legs.get(&branch).is_some_and(|leg| leg.ringing) {
                self.send_cancel(now, &branch);
            }
        }
        self.drive(now, id);
    }

    /// An ACK: for our non-2xx answer (absorbed by the call's server
    /// transaction), else in-dialog (the 2xx's ACK, routed through us).
    pub(crate) fn on_ack(&mut self, now: Instant, from: SocketAddr, request: Request) {
        let id = request
            .headers
            .top_via()
            .and_then(|via| ServerKey::of(&request, &via))
            .and_then(|key| self.calls.keys.get(&key).copied());
        match id {
            Some(id)
                if self
                    .calls
                    .calls
                    .get(&id)
                    .is_some_and(|c| c.finished && !c.answered) =>
            {
                if let Some(call) = self.calls.calls.get_mut(&id) {
                    call.server.handle_request(now, request);
                }
                self.drive(now, id);
            }
            _ => self.forward_in_dialog(now, from, request),
        }
    }

    fn send_cancel(&mut self, now: Instant, branch: &Bytes) {
        let Some(leg) = self.calls.legs.get_mut(branch) else {
            return;
        };
        if leg.cancel.is_some() {
            return;
        }
        if let Ok(cancel) = cancel_for(leg.tx.request()) {
            leg.cancel = Some(ClientNonInvite::new(now, cancel, self.calls.tx));
        }
    }

    /// A response from a phone, the peer or a caller's side.
    pub(crate) fn relay_response(&mut self, now: Instant, from: SocketAddr, response: Response) {
        let Some(via) = response.headers.top_via() else {
            self.dropped += 1;
            return;
        };
        if !self.us.is_via(&via) {
            self.dropped += 1;
            return;
        }
        let branch = via.branch().map(|b| Bytes::copy_from_slice(b.as_bytes()));
        let is_cancel = response
            .headers
            .cseq()
            .is_some_and(|cseq| cseq.method == Method::Cancel);
        if let Some(branch) = branch.filter(|b| self.calls.legs.contains_key(b)) {
            let Some(leg) = self.calls.legs.get_mut(&branch) else {
                return;
            };
            let id = leg.call;
            if is_cancel {
                if let Some(cancel) = &mut leg.cancel {
                    cancel.handle_response(now, response);
                }
            } else {
                leg.tx.handle_response(now, response);
            }
            self.drive(now, id);
            return;
        }
        // No leg: a 2xx retransmitted after its leg ended, or the answer to an
        // in-dialog request we forwarded statelessly: along the Via.
        let _ = from;
        let mut response = response;
        response.headers.pop_via();
        let Some(next) = response.headers.top_via().and_then(|v| response_addr(&v)) else {
            self.dropped += 1;
            return;
        };
        if response
            .headers
            .cseq()
            .is_some_and(|cseq| cseq.method == Method::Bye)
            && response.status.as_u16() >= 200
        {
            if let Some(call_id) = response.headers.call_id().map(str::to_owned) {
                self.end_dialog(now, &call_id);
                self.calls.dialogs.remove(&call_id);
            }
        }
        self.send_to(next.addr, response.to_bytes());
    }

    /// Feeds a call's transactions the time and their events, sends what
    /// they want sent, and drops the call when everything in it is over.
    pub(crate) fn drive(&mut self, now: Instant, id: u64) {
        // Bounded: each round either handles an event or stops.
        for _ in 0..64 {
            if !self.drive_once(now, id) {
                break;
            }
        }
        let done = self.calls.calls.get(&id).is_some_and(|call| {
            call.server.is_terminated()
                && call.legs.iter().all(|b| {
                    self.calls
                        .legs
                        .get(b)
                        .is_none_or(|leg| leg.tx.is_terminated())
                })
        });
        if done {
            if let Some(call) = self.calls.calls.remove(&id) {
                if !call.finished {
                    self.calls.unfinished -= 1;
                }
                self.calls.keys.remove(&call.key);
                for branch in call.legs {
                    self.calls.legs.remove(&branch);
                }
            }
            return;
        }
        self.calls.schedule(id);
    }

    fn drive_once(&mut self, now: Instant, id: u64) -> bool {
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return false;
        };
        let mut progressed = false;
        while let Some(bytes) = call.server.poll_transmit() {
            self.transmits.push_back((call.caller, bytes));
        }
        while call.server.poll_event().is_some() {}
        // By index: a leg's event may add the next leg (no copy of the list
        // per wake-up; `Bytes` clones are reference counts).
        for i in 0.. {
            let Some(branch) = self
                .calls
                .calls
                .get(&id)
                .and_then(|c| c.legs.get(i))
                .cloned()
            else {
                break;
            };
            let Some(leg) = self.calls.legs.get_mut(&branch) else {
                continue;
            };
            while let Some(bytes) = leg.tx.poll_transmit() {
                self.transmits.push_back((leg.addr, bytes));
            }
            if let Some(cancel) = &mut leg.cancel {
                while let Some(bytes) = cancel.poll_transmit() {
                    self.transmits.push_back((leg.addr, bytes));
                }
                while cancel.poll_event().is_some() {}
            }
            if let Some(event) = leg.tx.poll_event() {
                self.on_leg_event(now, id, &branch, event);
                progressed = true;
            }
        }
        progressed
    }

    fn on_leg_event(&mut self, now: Instant, id: u64, branch: &Bytes, event: TransactionEvent) {
        let Some(leg) = self.calls.legs.get_mut(branch) else {
            return;
        };
        let abandoned = leg.abandoned;
        match event {
            TransactionEvent::Provisional(response) => {
                if !leg.ringing {
                    leg.ringing = true;
                    leg.deadline = now + self.calls.ring_timeout;
                }
                let cancelled = self.calls.calls.get(&id).is_some_and(|c| c.cancelled);
                if abandoned || cancelled {
                    self.send_cancel(now, branch);
                    return;
                }
                if response.status == StatusCode::TRYING {
                    return;
                }
                let mut response = response;
                response.headers.pop_via();
                if let Some(call) = self.calls.calls.get_mut(&id) {
                    let _ = call.server.respond(now, response);
                }
            }
            TransactionEvent::Final(response) if response.status.as_u16() < 300 => {
                let mut response = response;
                response.headers.pop_via();
                let Some(call) = self.calls.calls.get_mut(&id) else {
                    return;
                };
                if !call.answered {
                    call.answered = true;
                    if !std::mem::replace(&mut call.finished, true) {
                        self.calls.unfinished -= 1;
                    }
                    let local = !call.forwarded;
                    if local {
                        self.calls.stats.answered_local += 1;
                    } else {
                        self.calls.stats.answered_forwarded += 1;
                    }
                    let dn = call.dn.clone();
                    self.calls.dialogs.insert(
                        call.call_id.clone(),
                        Dialog {
                            dn: dn.clone(),
                            local,
                            since: now,
                            bye_at: None,
                        },
                    );
                    if self.calls.next_sweep.is_none() {
                        self.calls.next_sweep = Some(now + DIALOG_SWEEP);
                    }
                    if local {
                        self.agents.call_started(now, &dn);
                    }
                }
                // Each 2xx, first or retransmitted, goes to the caller
                // (RFC 6026: the server transaction is Accepted).
                if call.server.respond(now, response.clone()).is_err() {
                    if let Some(next) = response.headers.top_via().and_then(|v| response_addr(&v)) {
                        self.transmits.push_back((next.addr, response.to_bytes()));
                    }
                }
            }
            TransactionEvent::Final(response) => {
                if abandoned {
                    return;
                }
                let Some(call) = self.calls.calls.get_mut(&id) else {
                    return;
                };
                if call.answered || call.finished {
                    return;
                }
                let status = response.status.as_u16();
                let next = !call.cancelled
                    && !call.forwarded
                    && (status == 408 || (500..600).contains(&status));
                call.last_failure = Some(response);
                if !next {
                    // No other contact: `next_hop` relays this answer.
                    call.tried = call.hops.len();
                }
                self.next_hop(now, id);
            }
            TransactionEvent::Timeout | TransactionEvent::TransportError => {
                self.give_up_leg(now, id, branch);
            }
            TransactionEvent::Ack(_) => {}
        }
    }

    /// A leg that never answered: the next hop, or 408 / 487.
    fn give_up_leg(&mut self, now: Instant, id: u64, branch: &Bytes) {
        let Some(leg) = self.calls.legs.get_mut(branch) else {
            return;
        };
        if leg.abandoned {
            return;
        }
        leg.abandoned = true;
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if call.current.as_ref() != Some(branch) || call.finished {
            return;
        }
        call.current = None;
        if call.cancelled {
            self.finish_with(now, id, StatusCode::REQUEST_TERMINATED, None);
        } else {
            self.next_hop(now, id);
        }
    }

    /// Time passed for the calls.
    pub(crate) fn calls_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(Reverse((at, id))) = self.calls.timers.peek().copied() {
            if at > now {
                break;
            }
            self.calls.timers.pop();
            if let Some(call) = self.calls.calls.get_mut(&id) {
                if call.scheduled == Some(at) {
                    call.scheduled = None;
                }
                due.push(id);
            }
        }
        due.sort_unstable();
        due.dedup();
        for id in due {
            self.call_timers(now, id);
            self.drive(now, id);
        }
        if self.calls.next_sweep.is_some_and(|at| at <= now) {
            let bye_wait = self.calls.tx.timeout();
            let stale: Vec<String> = self
                .calls
                .dialogs
                .iter()
                .filter(|(_, d)| {
                    now.saturating_duration_since(d.since) >= MAX_CALL_DURATION
                        || d.bye_at
                            .is_some_and(|at| now.saturating_duration_since(at) >= bye_wait)
                })
                .map(|(call_id, _)| call_id.clone())
                .collect();
            for call_id in stale {
                self.end_dialog(now, &call_id);
                self.calls.dialogs.remove(&call_id);
            }
            self.calls.next_sweep = (!self.calls.dialogs.is_empty()).then_some(now + DIALOG_SWEEP);
        }
    }

    fn call_timers(&mut self, now: Instant, id: u64) {
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        call.server.handle_timeout(now);
        for i in 0.. {
            let Some(branch) = self
                .calls
                .calls
                .get(&id)
                .and_then(|c| c.legs.get(i))
                .cloned()
            else {
                break;
            };
            let Some(leg) = self.calls.legs.get_mut(&branch) else {
                continue;
            };
            leg.tx.handle_timeout(now);
            if let Some(cancel) = &mut leg.cancel {
                cancel.handle_timeout(now);
            }
            if leg.abandoned || leg.deadline > now {
                continue;
            }
            if leg.ringing {
                // Rang too long: cancel it and answer 408.
                leg.abandoned = true;
                self.send_cancel(now, &branch);
                let current = self
                    .calls
                    .calls
                    .get(&id)
                    .is_some_and(|c| c.current.as_ref() == Some(&branch));
                if current {
                    self.finish_with(
                        now,
                        id,
                        StatusCode::REQUEST_TIMEOUT,
                        Some("no answer within ring_timeout"),
                    );
                }
            } else {
                self.give_up_leg(now, id, &branch);
            }
        }
    }

    /// A request inside a dialog: by loose routing (§16.4, §16.12), through
    /// the Route set our Record-Route made.
    pub(crate) fn forward_in_dialog(
        &mut self,
        now: Instant,
        from: SocketAddr,
        mut request: Request,
    ) {
        let is_ack = request.method == Method::Ack;
        let Some(via) = request.headers.top_via() else {
            self.dropped += 1;
            return;
        };
        if self.us.pop_routes(&mut request.headers) == 0 {
            if is_ack {
                self.dropped += 1;
            } else {
                self.refuse(
                    from,
                    &request,
                    StatusCode::CALL_DOES_NOT_EXIST,
                    "in-dialog request without a Route naming this site",
                );
            }
            return;
        }
        let next = match request.headers.top_route() {
            Some(route) => uri_addr(&route.uri),
            None => uri_addr(&request.uri),
        };
        let dest = match next {
            Ok((addr, _)) if addr != self.us.public && addr != self.us.listen => addr,
            Ok(_) | Err(_) => {
                if !is_ack {
                    self.refuse(
                        from,
                        &request,
                        StatusCode::NOT_FOUND,
                        "no next hop this site can reach",
                    );
                } else {
                    self.dropped += 1;
                }
                return;
            }
        };
        if request.headers.decrement_max_forwards().is_err() {
            if !is_ack {
                self.refuse(
                    from,
                    &request,
                    StatusCode::TOO_MANY_HOPS,
                    "Max-Forwards reached 0",
                );
            }
            return;
        }
        let _ = stamp_via(&mut request.headers, &via, Peer::udp(from));
        let branch = stateless_branch(&request, &via);
        let mut top = String::with_capacity(self.calls.via_prefix.len() + branch.len());
        top.push_str(&self.calls.via_prefix);
        top.push_str(std::str::from_utf8(&branch).unwrap_or_default());
        request.headers.push_via(Bytes::from(top));
        if request.method == Method::Bye {
            if let Some(call_id) = request.headers.call_id().map(str::to_owned) {
                self.end_dialog(now, &call_id);
                if self
                    .calls
                    .next_sweep
                    .is_none_or(|at| at > now + self.calls.tx.timeout())
                {
                    self.calls.next_sweep = Some(now + self.calls.tx.timeout());
                }
            }
        }
        self.send_to(dest, request.to_bytes());
    }

    /// The call is over for its agent (a BYE, or it outlived
    /// [`MAX_CALL_DURATION`]); the dialog itself stays until its BYE is
    /// answered. Only once per call.
    fn end_dialog(&mut self, now: Instant, call_id: &str) {
        if let Some(dialog) = self.calls.dialogs.get_mut(call_id) {
            if dialog.bye_at.is_some() {
                return;
            }
            dialog.bye_at = Some(now);
            if dialog.local {
                let dn = dialog.dn.clone();
                self.agents.call_ended(now, &dn);
            }
        }
    }
}
