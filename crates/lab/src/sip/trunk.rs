//! A carrier's SIP trunk: a user agent server that answers calls, and can die
//! silently or start refusing on command. The protocol is in the module docs
//! of `sip`; [`Uas`] is the sans-IO core, [`SipTrunk`] its handle. Agent
//! phones (`phone`) answer their calls with the same core, set to answer,
//! refuse busy or ring unanswered ([`PhoneAnswer`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotsite_sip::message::{
    parse_bytes, response_to, Header, HeaderName, Message, Method, ParseError, Request, Response,
    StatusCode,
};
use serde::Serialize;

use super::driver::{Endpoint, Running};
use super::phone::PhoneAnswer;
use super::wire::{backoff, branch, sdp, set_sdp};
use super::SipError;

/// What a trunk answers `Allow` with.
const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS";

/// The media port written in the trunk's SDP answers (nothing listens there).
const MEDIA_PORT: u16 = 40_000;

/// How a trunk starts. [`SipTrunkConfig::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct SipTrunkConfig {
    /// Its name: in logs, To tags and the Contact user part.
    pub name: String,
    /// The UDP address to bind (port 0: any free port).
    pub listen: SocketAddr,
    /// From the INVITE to `180 Ringing`. Default: 0 (sent with the 100).
    pub ring_delay: Duration,
    /// From the 180 to `200 OK`. Default: 20 ms.
    pub answer_delay: Duration,
    /// RFC 3261 T1: first retransmission interval of final answers; 64·T1 is
    /// how long they are retransmitted without an ACK. Default: 500 ms.
    pub t1: Duration,
    /// RFC 3261 T2: the longest retransmission interval. Default: 4 s.
    pub t2: Duration,
}

impl SipTrunkConfig {
    /// A trunk named `name` on `listen` with every other setting at its default.
    pub fn new(name: &str, listen: SocketAddr) -> SipTrunkConfig {
        SipTrunkConfig {
            name: name.to_owned(),
            listen,
            ring_delay: Duration::ZERO,
            answer_delay: Duration::from_millis(20),
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
        }
    }

    fn validate(&self) -> Result<(), SipError> {
        if self.name.is_empty() {
            return Err(SipError::Invalid(
                "sip trunk name: must not be empty".into(),
            ));
        }
        if self.t1.is_zero() || self.t2 < self.t1 {
            return Err(SipError::Invalid(format!(
                "sip trunk {}: t1 must be above zero and t2 at least t1",
                self.name
            )));
        }
        Ok(())
    }
}

/// What a trunk does wrong. Setting one replaces the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "fault", content = "status", rename_all = "snake_case")]
pub enum TrunkFault {
    /// Dies silently: reads every datagram and answers nothing, not even
    /// retransmissions of earlier answers. INVITEs are still logged (as
    /// `dropped`).
    Silent,
    /// Answers every new INVITE with `100 Trying`, then this final status
    /// (300–699, e.g. 503), and every OPTIONS with the same status.
    Reject(u16),
    /// Healthy.
    Recover,
}

/// A trunk's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrunkStats {
    /// INVITE transactions received (unique by branch), dropped ones included.
    pub invites: u64,
    /// Retransmitted INVITEs, answered with the last response again.
    pub invite_retransmissions: u64,
    /// Calls answered `200 OK`, counted when the 200 leaves: one due while
    /// the trunk is silent counts when a repetition gets out after `Recover`,
    /// if one does (a partition healed: the answer reaches the proxy late).
    pub answered: u64,
    /// INVITEs answered with the [`TrunkFault::Reject`] status, or `486 Busy
    /// Here` by a phone set to [`PhoneAnswer::Busy`].
    pub rejected: u64,
    /// INVITEs ended by CANCEL (`487`).
    pub cancelled: u64,
    /// ACKs of a `200 OK` (first of each call).
    pub acks: u64,
    /// ACKs of a final failure (on the INVITE's branch; first of each).
    pub failure_acks: u64,
    /// Final answers given up after 64·T1 without an ACK.
    pub ack_timeouts: u64,
    /// BYEs that ended a call (`200`).
    pub byes: u64,
    /// OPTIONS answered.
    pub options: u64,
    /// Datagrams dropped while [`TrunkFault::Silent`].
    pub dropped: u64,
    /// Datagrams that did not parse.
    pub malformed: u64,
    /// Now: INVITEs without a final answer yet.
    pub pending: u64,
    /// Now: answered calls not yet ended by BYE.
    pub dialogs: u64,
}

/// One INVITE transaction as it reached the trunk or phone (retransmissions
/// are not listed again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedInvite {
    /// The call.
    pub call_id: String,
    /// The top Via's branch (one per attempt of the proxy on this trunk).
    pub branch: String,
    /// The address it came from: which proxy, or which site (SPEC S1), sent it.
    pub from: SocketAddr,
    /// When it arrived, on tokio's clock (not in JSON).
    #[serde(skip)]
    pub at: Instant,
    /// It arrived while the trunk was [`TrunkFault::Silent`], and was dropped.
    pub dropped: bool,
}

/// What a [`Uas`] in media mode ([`Uas::enable_media`]) tells the media
/// layer above it (the lab's media server): offers to answer, calls that
/// start and end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UasEvent {
    /// An INVITE (a new call, or a re-INVITE of one) waits for its SDP
    /// answer ([`Uas::answer_invite`]) or a refusal ([`Uas::refuse_invite`]):
    /// no 200 goes out before.
    Offer {
        /// The INVITE transaction (its branch).
        key: String,
        call_id: String,
        /// The INVITE's body: the offer.
        body: Bytes,
        /// A re-INVITE within an answered call.
        reinvite: bool,
    },
    /// The 200 answering a new call's INVITE left (not for re-INVITEs).
    Answered { call_id: String },
    /// The call is over: a BYE, a CANCEL before the answer, or no ACK for
    /// the 200 within 64·T1.
    Ended { call_id: String },
}

/// A running trunk. Dropping it stops the task without waiting;
/// [`SipTrunk::shutdown`] waits.
pub struct SipTrunk {
    name: String,
    running: Running<Uas>,
}

impl SipTrunk {
    /// Binds `config.listen` and starts answering. Must be called within a
    /// tokio runtime.
    pub async fn start(config: SipTrunkConfig) -> Result<SipTrunk, SipError> {
        config.validate()?;
        let name = config.name.clone();
        let running = Running::bind(&format!("sip trunk {name}"), config.listen, |addr| {
            Uas::new(&config, addr)
        })
        .await?;
        tracing::info!(trunk = %name, addr = %running.local_addr(), "sip trunk listening");
        Ok(SipTrunk { name, running })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.running.local_addr()
    }

    /// Injects `fault` from now on. A [`TrunkFault::Reject`] status outside
    /// 300–699 is refused.
    pub fn set_fault(&self, fault: TrunkFault) -> Result<(), SipError> {
        if let TrunkFault::Reject(status) = fault {
            if !(300..=699).contains(&status) {
                return Err(SipError::Invalid(format!(
                    "fault: reject status {status} is not a final failure (300-699)"
                )));
            }
        }
        tracing::info!(trunk = %self.name, ?fault, "sip trunk fault");
        self.running.with(|uas| uas.set_fault(fault));
        Ok(())
    }

    /// The fault in force.
    pub fn fault(&self) -> TrunkFault {
        self.running.with(|uas| uas.fault())
    }

    /// The counters.
    pub fn stats(&self) -> TrunkStats {
        self.running.with(|uas| uas.stats())
    }

    /// Every INVITE transaction received, in order of arrival. Grows with the
    /// calls: the trunk is for tests and demos.
    pub fn invite_log(&self) -> Vec<ReceivedInvite> {
        self.running.with(|uas| uas.log().to_vec())
    }

    /// Stops the trunk and waits for its task.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// The trunk's core: datagrams and time in, datagrams out. No socket, no clock.
pub(crate) struct Uas {
    name: String,
    contact: String,
    addr: SocketAddr,
    ring_delay: Duration,
    answer_delay: Duration,
    t1: Duration,
    t2: Duration,
    fault: TrunkFault,
    /// How new INVITEs are answered: always [`PhoneAnswer::Answer`] for a trunk.
    answer: PhoneAnswer,
    /// Media mode: SDP answers come from the layer above, re-INVITEs are
    /// answered, and [`UasEvent`]s are reported.
    media: bool,
    events: VecDeque<UasEvent>,
    /// INVITE transactions by branch, until 64·T1 after their end.
    invites: HashMap<String, InviteTx>,
    /// Every INVITE branch ever seen, so retransmissions count once.
    seen: HashSet<String>,
    /// Answered calls not yet ended: Call-ID → their INVITE's branch.
    dialogs: HashMap<String, String>,
    /// Answers to OPTIONS, BYE and CANCEL by method and branch, repeated for
    /// retransmissions for 64·T1.
    answers: HashMap<String, Bytes>,
    answers_expiry: VecDeque<(Instant, String)>,
    /// Deadlines of INVITE transactions (lazy: see `InviteTx::scheduled`).
    timers: BinaryHeap<Reverse<(Instant, String)>>,
    outbox: VecDeque<(SocketAddr, Bytes)>,
    log: Vec<ReceivedInvite>,
    stats: TrunkStats,
    tags: u64,
}

/// One INVITE received and what became of it.
struct InviteTx {
    invite: Request,
    peer: SocketAddr,
    to_tag: String,
    /// The last response sent: repeated for retransmitted INVITEs.
    last: Option<Bytes>,
    /// Its 200 has left the trunk (not dropped by a silence).
    answer_sent: bool,
    /// The 200's body: `None` for the trunk's fixed SDP answer.
    answer_body: Option<Bytes>,
    /// The 200 may go when due: false in media mode until the answer is
    /// given.
    answer_ready: bool,
    /// A re-INVITE of an answered call (media mode).
    reinvite: bool,
    state: TxState,
    /// The deadline the timer heap holds an entry for; heap entries at other
    /// times are stale.
    scheduled: Option<Instant>,
}

enum TxState {
    /// Not answered yet; `answer_at` is `None` for a phone that rings
    /// unanswered ([`PhoneAnswer::NoAnswer`]) until the call is cancelled.
    Proceeding {
        ring_at: Option<Instant>,
        answer_at: Option<Instant>,
    },
    /// A final answer sent, retransmitted until the ACK (timer G), for at most
    /// 64·T1 (timer H; for a 200 the UAS core does the same, §13.3.1.4).
    Completed {
        status: StatusCode,
        retransmit_at: Instant,
        interval: Duration,
        give_up_at: Instant,
    },
    /// Over; kept to absorb retransmissions.
    Done { forget_at: Instant },
}

impl InviteTx {
    fn deadline(&self) -> Option<Instant> {
        match self.state {
            TxState::Proceeding { ring_at, answer_at } => {
                let answer_at = answer_at.filter(|_| self.answer_ready);
                [ring_at, answer_at].into_iter().flatten().min()
            }
            TxState::Completed {
                retransmit_at,
                give_up_at,
                ..
            } => Some(retransmit_at.min(give_up_at)),
            TxState::Done { forget_at } => Some(forget_at),
        }
    }

    /// A response to the INVITE, remembered as the last one sent.
    fn respond(&mut self, status: StatusCode, contact: &str, addr: SocketAddr) -> Bytes {
        let tag = (status != StatusCode::TRYING).then_some(self.to_tag.as_str());
        let mut response = response_to(&self.invite, status, tag);
        let code = status.as_u16();
        if (101..300).contains(&code) {
            response
                .headers
                .push(Header::new(HeaderName::Contact, contact.to_owned()));
        }
        if status.is_success() {
            let session = self.to_tag.len() as u64 ^ u64::from(addr.port());
            let body = self
                .answer_body
                .clone()
                .unwrap_or_else(|| sdp(addr, session, MEDIA_PORT));
            set_sdp(&mut response.headers, &mut response.body, body);
        }
        let bytes = response.to_bytes();
        self.last = Some(bytes.clone());
        bytes
    }

    fn completed(&mut self, status: StatusCode, now: Instant, t1: Duration) {
        self.state = TxState::Completed {
            status,
            retransmit_at: now + t1,
            interval: t1,
            give_up_at: now + t1 * 64,
        };
    }
}

impl Uas {
    pub(crate) fn new(config: &SipTrunkConfig, addr: SocketAddr) -> Uas {
        let user = token(&config.name);
        Uas {
            name: user.clone(),
            contact: format!("<sip:{user}@{addr}>"),
            addr,
            ring_delay: config.ring_delay,
            answer_delay: config.answer_delay,
            t1: config.t1,
            t2: config.t2,
            fault: TrunkFault::Recover,
            answer: PhoneAnswer::Answer,
            media: false,
            events: VecDeque::new(),
            invites: HashMap::new(),
            seen: HashSet::new(),
            dialogs: HashMap::new(),
            answers: HashMap::new(),
            answers_expiry: VecDeque::new(),
            timers: BinaryHeap::new(),
            outbox: VecDeque::new(),
            log: Vec::new(),
            stats: TrunkStats::default(),
            tags: 0,
        }
    }

    pub(crate) fn set_fault(&mut self, fault: TrunkFault) {
        self.fault = fault;
    }

    pub(crate) fn fault(&self) -> TrunkFault {
        self.fault
    }

    /// How new INVITEs are answered from now on; calls already ringing keep
    /// their course.
    pub(crate) fn set_answer(&mut self, answer: PhoneAnswer) {
        self.answer = answer;
    }

    pub(crate) fn answer_mode(&self) -> PhoneAnswer {
        self.answer
    }

    /// Media mode, for the lab's media server: every INVITE's 200 waits for
    /// [`Uas::answer_invite`] (or is refused by [`Uas::refuse_invite`]),
    /// re-INVITEs of answered calls are offered up the same way (instead of
    /// `501`), and [`UasEvent`]s say what happens to calls.
    pub(crate) fn enable_media(&mut self) {
        self.media = true;
    }

    pub(crate) fn poll_event(&mut self) -> Option<UasEvent> {
        self.events.pop_front()
    }

    /// Gives the SDP answer of INVITE `key`: its 200 goes when due (at once
    /// for a re-INVITE). Ignored if the INVITE is no longer waiting.
    pub(crate) fn answer_invite(&mut self, key: &str, body: Bytes) {
        if let Some(tx) = self.invites.get_mut(key) {
            if matches!(tx.state, TxState::Proceeding { .. }) {
                tx.answer_body = Some(body);
                tx.answer_ready = true;
                self.schedule(key);
            }
        }
    }

    /// Refuses INVITE `key` with a final `status` (300–699), such as `488`
    /// for an offer that cannot be answered. Ignored if the INVITE is no
    /// longer waiting.
    pub(crate) fn refuse_invite(&mut self, now: Instant, key: &str, status: StatusCode) {
        let Some(tx) = self.invites.get_mut(key) else {
            return;
        };
        if !matches!(tx.state, TxState::Proceeding { .. }) || status.as_u16() < 300 {
            return;
        }
        let bytes = tx.respond(status, &self.contact, self.addr);
        tx.completed(status, now, self.t1);
        let peer = tx.peer;
        self.stats.rejected += 1;
        self.send(peer, bytes);
        self.schedule(key);
    }

    pub(crate) fn stats(&self) -> TrunkStats {
        let pending = self
            .invites
            .values()
            .filter(|tx| matches!(tx.state, TxState::Proceeding { .. }))
            .count();
        TrunkStats {
            pending: pending as u64,
            dialogs: self.dialogs.len() as u64,
            ..self.stats.clone()
        }
    }

    pub(crate) fn log(&self) -> &[ReceivedInvite] {
        &self.log
    }

    fn new_tag(&mut self) -> String {
        self.tags += 1;
        format!("{}-{:x}", self.name, self.tags)
    }

    fn silent(&self) -> bool {
        self.fault == TrunkFault::Silent
    }

    fn send(&mut self, to: SocketAddr, bytes: Bytes) {
        if !self.silent() {
            self.outbox.push_back((to, bytes));
        }
    }

    /// Logs an INVITE the first time its branch is seen; true if it was new.
    fn note_invite(
        &mut self,
        now: Instant,
        from: SocketAddr,
        request: &Request,
        key: &str,
        dropped: bool,
    ) -> bool {
        if !self.seen.insert(key.to_owned()) {
            return false;
        }
        self.stats.invites += 1;
        self.log.push(ReceivedInvite {
            call_id: request.headers.call_id().unwrap_or_default().to_owned(),
            branch: key.to_owned(),
            from,
            at: now,
            dropped,
        });
        true
    }

    /// Keeps the timer heap's entry for `key` in step with its deadline.
    fn schedule(&mut self, key: &str) {
        if let Some(tx) = self.invites.get_mut(key) {
            let deadline = tx.deadline();
            if tx.scheduled != deadline {
                tx.scheduled = deadline;
                if let Some(at) = deadline {
                    self.timers.push(Reverse((at, key.to_owned())));
                }
            }
        }
    }

    fn on_invite(&mut self, now: Instant, from: SocketAddr, request: Request, key: String) {
        if let Some(tx) = self.invites.get(&key) {
            self.stats.invite_retransmissions += 1;
            if let Some(last) = tx.last.clone() {
                self.send(from, last);
            }
            return;
        }
        self.note_invite(now, from, &request, &key, false);
        let to_tag = request
            .headers
            .to()
            .and_then(|to| to.tag().map(str::to_owned));
        let in_dialog = to_tag.is_some();
        let call_id = request.headers.call_id().unwrap_or_default().to_owned();
        if self.media && in_dialog {
            self.on_reinvite(now, from, request, key, call_id);
            return;
        }
        let offer = self.media.then(|| request.body.clone());
        let mut tx = InviteTx {
            invite: request,
            peer: from,
            to_tag: self.new_tag(),
            last: None,
            answer_sent: false,
            answer_body: None,
            answer_ready: !self.media,
            reinvite: false,
            state: TxState::Done { forget_at: now },
            scheduled: None,
        };
        let trying = tx.respond(StatusCode::TRYING, &self.contact, self.addr);
        self.send(from, trying);
        let refusal = match self.fault {
            // Re-INVITEs are not part of the lab's calls.
            _ if in_dialog => Some(StatusCode::NOT_IMPLEMENTED),
            TrunkFault::Reject(status) => StatusCode::new(status),
            TrunkFault::Silent | TrunkFault::Recover => {
                (self.answer == PhoneAnswer::Busy).then_some(StatusCode::BUSY_HERE)
            }
        };
        match refusal {
            Some(status) => {
                let bytes = tx.respond(status, &self.contact, self.addr);
                self.send(from, bytes);
                tx.completed(status, now, self.t1);
                self.stats.rejected += 1;
            }
            None => {
                // In media mode the offer is checked first: a refusal
                // (488) must not follow a 180.
                let ring_at = if self.ring_delay.is_zero() && !self.media {
                    let ringing = tx.respond(StatusCode::RINGING, &self.contact, self.addr);
                    self.send(from, ringing);
                    None
                } else {
                    Some(now + self.ring_delay)
                };
                let answers = self.answer != PhoneAnswer::NoAnswer;
                tx.state = TxState::Proceeding {
                    ring_at,
                    answer_at: answers.then(|| now + self.ring_delay + self.answer_delay),
                };
                if let Some(body) = offer {
                    self.events.push_back(UasEvent::Offer {
                        key: key.clone(),
                        call_id,
                        body,
                        reinvite: false,
                    });
                }
            }
        }
        self.invites.insert(key.clone(), tx);
        self.schedule(&key);
    }

    /// A re-INVITE in media mode: offered up and answered at once, in the
    /// call's dialog (its To tag); `481` for a dialog the UAS does not have.
    fn on_reinvite(
        &mut self,
        now: Instant,
        from: SocketAddr,
        request: Request,
        key: String,
        call_id: String,
    ) {
        let to_tag = request
            .headers
            .to()
            .and_then(|to| to.tag().map(str::to_owned))
            .unwrap_or_default();
        let body = request.body.clone();
        let mut tx = InviteTx {
            invite: request,
            peer: from,
            to_tag,
            last: None,
            answer_sent: false,
            answer_body: None,
            answer_ready: false,
            reinvite: true,
            state: TxState::Proceeding {
                ring_at: None,
                answer_at: Some(now),
            },
            scheduled: None,
        };
        let trying = tx.respond(StatusCode::TRYING, &self.contact, self.addr);
        self.send(from, trying);
        if self.dialogs.contains_key(&call_id) {
            self.events.push_back(UasEvent::Offer {
                key: key.clone(),
                call_id,
                body,
                reinvite: true,
            });
        } else {
            let status = StatusCode::CALL_DOES_NOT_EXIST;
            let bytes = tx.respond(status, &self.contact, self.addr);
            self.send(from, bytes);
            tx.completed(status, now, self.t1);
        }
        self.invites.insert(key.clone(), tx);
        self.schedule(&key);
    }

    fn on_ack(&mut self, now: Instant, request: &Request, key: &str) {
        let forget_at = now + self.t1 * 64;
        // The ACK of a failure is part of the INVITE transaction (same branch).
        if let Some(tx) = self.invites.get_mut(key) {
            if let TxState::Completed { status, .. } = tx.state {
                if !status.is_success() {
                    tx.state = TxState::Done { forget_at };
                    self.stats.failure_acks += 1;
                    self.schedule(key);
                    return;
                }
            }
        }
        // The ACK of a 200 is a transaction of its own, matched by the call.
        let Some(call_id) = request.headers.call_id() else {
            return;
        };
        let Some(invite_key) = self.dialogs.get(call_id).cloned() else {
            return;
        };
        if let Some(tx) = self.invites.get_mut(&invite_key) {
            if let TxState::Completed { status, .. } = tx.state {
                if status.is_success() {
                    tx.state = TxState::Done { forget_at };
                    self.stats.acks += 1;
                    self.schedule(&invite_key);
                }
            }
        }
    }

    fn on_bye(&mut self, now: Instant, request: &Request) -> Response {
        let call_id = request.headers.call_id().unwrap_or_default();
        match self.dialogs.remove(call_id) {
            Some(invite_key) => {
                // A BYE before the ACK: the ACK was lost; stop resending the 200.
                if let Some(tx) = self.invites.get_mut(&invite_key) {
                    if matches!(tx.state, TxState::Completed { .. }) {
                        tx.state = TxState::Done {
                            forget_at: now + self.t1 * 64,
                        };
                        self.schedule(&invite_key);
                    }
                }
                self.stats.byes += 1;
                if self.media {
                    self.events.push_back(UasEvent::Ended {
                        call_id: call_id.to_owned(),
                    });
                }
                response_to(request, StatusCode::OK, None)
            }
            None => response_to(request, StatusCode::CALL_DOES_NOT_EXIST, None),
        }
    }

    fn on_cancel(&mut self, now: Instant, from: SocketAddr, request: &Request, key: &str) {
        let Some(tx) = self.invites.get_mut(key) else {
            let answer = response_to(request, StatusCode::CALL_DOES_NOT_EXIST, None);
            self.answer(now, from, request, key, answer);
            return;
        };
        let to_tag = tx.to_tag.clone();
        let pending = matches!(tx.state, TxState::Proceeding { .. });
        let ends_call = self.media && !tx.reinvite;
        let terminated = pending.then(|| {
            let bytes = tx.respond(StatusCode::REQUEST_TERMINATED, &self.contact, self.addr);
            tx.completed(StatusCode::REQUEST_TERMINATED, now, self.t1);
            (tx.peer, bytes)
        });
        let answer = response_to(request, StatusCode::OK, Some(&to_tag));
        self.answer(now, from, request, key, answer);
        if let Some((peer, bytes)) = terminated {
            self.stats.cancelled += 1;
            if ends_call {
                let call_id = request.headers.call_id().unwrap_or_default().to_owned();
                self.events.push_back(UasEvent::Ended { call_id });
            }
            self.send(peer, bytes);
            self.schedule(key);
        }
    }

    /// Sends a non-INVITE answer and keeps it for retransmissions.
    fn answer(
        &mut self,
        now: Instant,
        from: SocketAddr,
        request: &Request,
        key: &str,
        response: Response,
    ) {
        let bytes = response.to_bytes();
        let cache_key = format!("{} {key}", request.method);
        self.answers.insert(cache_key.clone(), bytes.clone());
        self.answers_expiry
            .push_back((now + self.t1 * 64, cache_key));
        self.send(from, bytes);
    }

    fn expire_answers(&mut self, now: Instant) {
        while let Some((at, _)) = self.answers_expiry.front() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.answers_expiry.pop_front() {
                self.answers.remove(&key);
            }
        }
    }

    /// Runs one transaction's due timers.
    fn fire(&mut self, now: Instant, key: &str) {
        let Some(tx) = self.invites.get_mut(key) else {
            return;
        };
        let mut out = Vec::new();
        let mut forget = false;
        while tx.deadline().is_some_and(|at| at <= now) && !forget {
            match tx.state {
                TxState::Proceeding { ring_at, answer_at } => {
                    if ring_at.is_some_and(|at| at <= now) {
                        out.push(tx.respond(StatusCode::RINGING, &self.contact, self.addr));
                        tx.state = TxState::Proceeding {
                            ring_at: None,
                            answer_at,
                        };
                    } else if answer_at.is_some_and(|at| at <= now) && tx.answer_ready {
                        out.push(tx.respond(StatusCode::OK, &self.contact, self.addr));
                        tx.completed(StatusCode::OK, now, self.t1);
                        if let Some(call_id) = tx.invite.headers.call_id() {
                            self.dialogs.insert(call_id.to_owned(), key.to_owned());
                            if self.media && !tx.reinvite {
                                self.events.push_back(UasEvent::Answered {
                                    call_id: call_id.to_owned(),
                                });
                            }
                        }
                    }
                }
                TxState::Completed {
                    status,
                    retransmit_at,
                    interval,
                    give_up_at,
                } => {
                    if give_up_at <= now {
                        self.stats.ack_timeouts += 1;
                        if self.media && status.is_success() && !tx.reinvite {
                            // A real UAS would send a BYE (§13.3.1.4); the
                            // lab ends the call and keeps what it recorded.
                            if let Some(call_id) = tx.invite.headers.call_id() {
                                self.events.push_back(UasEvent::Ended {
                                    call_id: call_id.to_owned(),
                                });
                            }
                        }
                        tx.state = TxState::Done { forget_at: now };
                    } else if retransmit_at <= now {
                        out.extend(tx.last.clone());
                        let interval = backoff(interval, self.t2);
                        tx.state = TxState::Completed {
                            status,
                            retransmit_at: now + interval,
                            interval,
                            give_up_at,
                        };
                    }
                }
                TxState::Done { .. } => forget = true,
            }
        }
        let silent = self.fault == TrunkFault::Silent;
        if !silent && !tx.answer_sent && !out.is_empty() && !tx.reinvite {
            if let TxState::Completed { status, .. } = tx.state {
                if status.is_success() {
                    // The 200 (or, after a silence, its first repetition) is out.
                    tx.answer_sent = true;
                    self.stats.answered += 1;
                }
            }
        }
        let peer = tx.peer;
        for bytes in out {
            self.send(peer, bytes);
        }
        if forget {
            self.invites.remove(key);
        } else {
            self.schedule(key);
        }
    }
}

impl Uas {
    /// A datagram that did not parse: a keep-alive is ignored, anything else
    /// counted and answered `400` if its headers could be read.
    pub(crate) fn handle_unparsable(&mut self, from: SocketAddr, error: &ParseError) {
        if error.is_keepalive() {
            return;
        }
        self.stats.malformed += 1;
        let tag = self.new_tag();
        if let Some(reply) = error.reply(&tag) {
            self.send(from, reply.to_bytes());
        }
    }

    /// A request from `from` (parsed by the caller, so that a phone can share
    /// its socket between this core and its registrations).
    pub(crate) fn handle_request(&mut self, now: Instant, from: SocketAddr, request: Request) {
        self.expire_answers(now);
        let key = branch(&request.headers).unwrap_or_else(|| {
            // RFC 2543 peers: no usable branch; Call-ID and CSeq stand in.
            let cseq = request.headers.cseq().map_or(0, |c| c.seq);
            format!("{}-{cseq}", request.headers.call_id().unwrap_or_default())
        });
        if self.silent() {
            self.stats.dropped += 1;
            if request.method == Method::Invite {
                self.note_invite(now, from, &request, &key, true);
            }
            return;
        }
        if request.method != Method::Invite && request.method != Method::Ack {
            let cache_key = format!("{} {key}", request.method);
            if let Some(bytes) = self.answers.get(&cache_key).cloned() {
                self.send(from, bytes);
                return;
            }
        }
        match request.method {
            Method::Invite => self.on_invite(now, from, request, key),
            Method::Ack => self.on_ack(now, &request, &key),
            Method::Bye => {
                let answer = self.on_bye(now, &request);
                self.answer(now, from, &request, &key, answer);
            }
            Method::Cancel => self.on_cancel(now, from, &request, &key),
            Method::Options => {
                self.stats.options += 1;
                let status = match self.fault {
                    TrunkFault::Reject(status) => {
                        StatusCode::new(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
                    }
                    TrunkFault::Silent | TrunkFault::Recover => StatusCode::OK,
                };
                let tag = self.new_tag();
                let mut answer = response_to(&request, status, Some(&tag));
                answer.headers.push(Header::new(
                    HeaderName::Allow,
                    Bytes::from_static(ALLOW.as_bytes()),
                ));
                self.answer(now, from, &request, &key, answer);
            }
            _ => {
                let tag = self.new_tag();
                let mut answer = response_to(&request, StatusCode::METHOD_NOT_ALLOWED, Some(&tag));
                answer.headers.push(Header::new(
                    HeaderName::Allow,
                    Bytes::from_static(ALLOW.as_bytes()),
                ));
                self.answer(now, from, &request, &key, answer);
            }
        }
    }
}

impl Endpoint for Uas {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: Bytes) {
        match parse_bytes(datagram) {
            Ok(Message::Request(request)) => self.handle_request(now, from, request),
            // A UAS sends no requests: a response is a stray.
            Ok(Message::Response(_)) => {}
            Err(error) => self.handle_unparsable(from, &error),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.expire_answers(now);
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.timers.pop() else {
                break;
            };
            let current = self.invites.get(&key).and_then(|tx| tx.scheduled);
            if current == Some(at) {
                if let Some(tx) = self.invites.get_mut(&key) {
                    tx.scheduled = None;
                }
                self.fire(now, &key);
            }
        }
    }

    fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        self.outbox.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    fn is_finished(&self) -> bool {
        false
    }
}

/// `text` with every character a SIP token (and a URI user part) does not
/// allow replaced by `-`.
fn token(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-.!%*_+~".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}
