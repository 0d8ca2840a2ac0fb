//! A contact-center platform placing calls: a user agent client that sends
//! paced INVITEs to one address (the proxy) and records how each call went.
//! The protocol is in the module docs of `sip`; [`Uac`] is the sans-IO core,
//! [`SipCaller`] its handle.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotsite_core::Rng;
use hotsite_sip::message::{
    ack_for, cancel_for, parse_bytes, response_to, Branch, Header, HeaderName, Message, Method,
    NewRequest, Request, Response, StatusCode, Uri,
};

use super::driver::{Endpoint, Running};
use super::wire::{addr_of, backoff, branch, sdp, set_sdp};
use super::SipError;
use crate::clock::Clock;

/// The media port written in the caller's SDP offers (nothing listens there).
const MEDIA_PORT: u16 = 30_000;

/// Most timer steps one call takes per wake-up (each moves its state or its
/// deadline forward; the bound only guards against a mistake spinning).
const MAX_STEPS: usize = 16;

/// How a caller places its calls. [`SipCallerConfig::new`] fills in the
/// defaults.
#[derive(Debug, Clone)]
pub struct SipCallerConfig {
    /// Where every INVITE goes (the proxy, or a trunk directly).
    pub proxy: SocketAddr,
    /// The UDP address to bind. Default: port 0 on loopback, of the proxy's
    /// address family.
    pub listen: SocketAddr,
    /// How many calls.
    pub calls: u64,
    /// Calls per second; 0 places them all at once.
    pub rate: f64,
    /// How long an answered call lasts before the caller's BYE. Default: 100 ms.
    pub hold: Duration,
    /// The called numbers: this prefix and the call's index in six digits.
    /// Default: `+4420`.
    pub number_prefix: String,
    /// Call this user instead of numbered ones: every call's Request-URI and
    /// To are `sip:TO_USER@HOST`. A media gateway calling an agent's DN
    /// through a site (SPEC S1) sets the DN here. Default: none.
    pub to_user: Option<String>,
    /// The host part of the Request-URI and To (`sip:USER@TO_HOST`), such as
    /// a site's domain. Default: none, the address of `proxy`.
    pub to_host: Option<String>,
    /// Cancel each call this long after its INVITE if it has no final answer
    /// by then (like a caller hanging up while it rings). Default: never.
    pub cancel_after: Option<Duration>,
    /// After a provisional answer, how long to wait for the final one before
    /// cancelling the call. Default: 32 s.
    pub final_timeout: Duration,
    /// RFC 3261 T1: timers A and E start at it; timers B and F are 64·T1.
    /// Default: 500 ms.
    pub t1: Duration,
    /// RFC 3261 T2: the longest retransmission interval of BYE and CANCEL.
    /// Default: 4 s.
    pub t2: Duration,
    /// Only this many calls are placed until [`SipCaller::allow`] lets more
    /// through. Default: none (every call).
    pub limit: Option<u64>,
    /// Seeds branches, tags and Call-IDs. Default: from the wall clock and the
    /// process id, so two runs never share a branch (RFC 3261 §8.1.1.7).
    pub seed: u64,
}

impl SipCallerConfig {
    /// `calls` calls at `rate` calls/s to `proxy`, everything else at its
    /// default.
    pub fn new(proxy: SocketAddr, calls: u64, rate: f64) -> SipCallerConfig {
        let listen = if proxy.is_ipv4() {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
        };
        SipCallerConfig {
            proxy,
            listen,
            calls,
            rate,
            hold: Duration::from_millis(100),
            number_prefix: "+4420".to_owned(),
            to_user: None,
            to_host: None,
            cancel_after: None,
            final_timeout: Duration::from_secs(32),
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            limit: None,
            seed: super::wire::fresh_seed(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), SipError> {
        let invalid = |what: &str| Err(SipError::Invalid(format!("sip caller {what}")));
        if !self.rate.is_finite() || self.rate < 0.0 {
            return invalid("rate: must be 0 or more calls per second");
        }
        if self.t1.is_zero() || self.t2 < self.t1 {
            return invalid("timers: t1 must be above zero and t2 at least t1");
        }
        if self.final_timeout.is_zero() {
            return invalid("final_timeout: must be above zero");
        }
        if Uri::parse(format!("sip:{}0@{}", self.number_prefix, self.proxy)).is_err() {
            return invalid("number_prefix: must fit a SIP URI's user part");
        }
        if let Some(user) = &self.to_user {
            let fits = !user.is_empty() && !user.contains(['@', ';', '?', '>', ' ']);
            if !fits || Uri::parse(format!("sip:{user}@{}", self.proxy)).is_err() {
                return invalid("to_user: must fit a SIP URI's user part");
            }
        }
        if let Some(host) = &self.to_host {
            let fits = !host.is_empty() && !host.contains(['@', ';', '?', '>', ' ']);
            if !fits || Uri::parse(format!("sip:u@{host}")).is_err() {
                return invalid("to_host: must be a SIP URI's host (and port)");
            }
        }
        Ok(())
    }
}

/// How one call went. Times are on tokio's clock; durations from `started`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// Its place in the sequence, from 0.
    pub index: u64,
    /// Its Call-ID.
    pub call_id: String,
    /// When its INVITE was first sent.
    pub started: Instant,
    /// From the INVITE to the first response of any kind.
    pub first_response: Option<Duration>,
    /// From the INVITE to its final answer (or to the local timeout).
    pub setup_time: Option<Duration>,
    /// The final answer's status; `408` when the caller gave up by itself
    /// (timer B, or no answer after its CANCEL). `None` while unanswered.
    pub status: Option<u16>,
    /// The caller gave up waiting (no final answer at all).
    pub timed_out: bool,
    /// The caller sent a CANCEL.
    pub cancelled: bool,
    /// INVITEs sent again by timer A.
    pub invite_retransmissions: u32,
    /// The Contact of the 2xx that set the call up: who answered (a lab trunk
    /// writes `sip:NAME@ADDR`).
    pub contact: Option<String>,
    /// The BYE's final answer; `None` if none was sent or none came (timer F).
    pub bye_status: Option<u16>,
    /// 2xx answers from a second dialog (another To tag), ACKed and hung up at
    /// once, as RFC 3261 §13.2.2.4 asks.
    pub extra_answers: u32,
    /// The call is over: failed, or answered and hung up (BYE answered or
    /// given up).
    pub finished: bool,
}

impl CallRecord {
    /// Whether the call was answered (2xx).
    pub fn answered(&self) -> bool {
        self.status
            .is_some_and(|status| (200..300).contains(&status))
    }

    /// Whether its BYE was answered 2xx.
    pub fn bye_completed(&self) -> bool {
        self.bye_status
            .is_some_and(|status| (200..300).contains(&status))
    }
}

/// Where a caller is, counted over its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallerProgress {
    /// Calls it will place.
    pub calls: u64,
    /// Calls placed (INVITE sent).
    pub placed: u64,
    /// Calls answered 2xx.
    pub answered: u64,
    /// Calls that ended with another final status or a local timeout.
    pub failed: u64,
    /// Calls placed with no final answer yet.
    pub awaiting_final: u64,
    /// Calls over.
    pub finished: u64,
}

/// What a [`Uac`] in media mode ([`Uac::enable_media`]) tells the media
/// layer above it (the lab's media caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UacEvent {
    /// Call `index` is due: it needs its SDP offer ([`Uac::place_with_offer`])
    /// before its INVITE can go.
    NeedOffer { index: u64 },
    /// Call `index` was answered 2xx; `body` is the SDP answer.
    Answered { index: u64, body: Bytes },
    /// A re-INVITE of call `index` got its final answer (`408` if none came).
    Reinvited {
        index: u64,
        status: u16,
        body: Bytes,
    },
    /// Call `index`'s media is over: its BYE went out, or it failed.
    Over { index: u64 },
}

/// A running caller. Dropping it stops the calls without waiting.
pub struct SipCaller {
    running: Running<Uac>,
}

impl SipCaller {
    /// Binds `config.listen` and starts placing calls. Must be called within
    /// a tokio runtime.
    pub async fn start(config: SipCallerConfig) -> Result<SipCaller, SipError> {
        config.validate()?;
        let epoch = Clock::start().now().into_std();
        let running = Running::bind("sip caller", config.listen, |addr| {
            Uac::new(&config, addr, epoch)
        })
        .await?;
        tracing::info!(
            addr = %running.local_addr(),
            proxy = %config.proxy,
            calls = config.calls,
            rate = config.rate,
            "sip caller started"
        );
        Ok(SipCaller { running })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.running.local_addr()
    }

    /// The counts so far.
    pub fn progress(&self) -> CallerProgress {
        self.running.with(|uac| uac.progress())
    }

    /// Every call placed so far, in order.
    pub fn records(&self) -> Vec<CallRecord> {
        self.running.with(|uac| uac.records().to_vec())
    }

    /// Lets calls up to `calls` (in all) be placed. Pacing resumes from now
    /// if the caller was waiting at its limit: no burst to catch up.
    pub fn allow(&self, calls: u64) {
        self.running.steer(|uac, now| uac.allow(calls, now));
    }

    /// Lets every call be placed.
    pub fn release(&self) {
        self.allow(u64::MAX);
    }

    /// Waits until every call is over (released or not: a caller held at its
    /// limit waits for [`SipCaller::allow`]), then returns the records.
    pub async fn wait(mut self) -> Vec<CallRecord> {
        self.running.finished().await;
        self.records()
    }

    /// Stops at once and returns the records as they are.
    pub async fn stop(self) -> Vec<CallRecord> {
        let records = self.records();
        self.running.shutdown().await;
        records
    }
}

/// The caller's core: datagrams and time in, datagrams out. No socket, no
/// clock.
pub(crate) struct Uac {
    proxy: SocketAddr,
    local: SocketAddr,
    calls: u64,
    rate: f64,
    hold: Duration,
    number_prefix: String,
    to_user: Option<String>,
    /// The host part of Request-URIs: `to_host`, else the proxy's address.
    to_host: String,
    cancel_after: Option<Duration>,
    final_timeout: Duration,
    t1: Duration,
    t2: Duration,
    rng: Rng,
    /// Starts every Call-ID of this caller.
    id_prefix: String,
    /// Calls that may be placed now.
    limit: u64,
    /// The next call to place.
    next: u64,
    /// Call `pace_from` is due at `pace_base`, the next ones 1/rate apart.
    pace_base: Instant,
    pace_from: u64,
    records: Vec<CallRecord>,
    live: HashMap<u64, Call>,
    /// INVITE and BYE branches → call index (CANCEL shares the INVITE's).
    by_branch: HashMap<String, u64>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    outbox: VecDeque<(SocketAddr, Bytes)>,
    finished: u64,
    /// Media mode: offers come from the layer above, which hears of answers,
    /// re-INVITEs and ends as [`UacEvent`]s.
    media: bool,
    events: VecDeque<UacEvent>,
}

/// A call in progress.
struct Call {
    invite: Request,
    invite_bytes: Bytes,
    branch: String,
    phase: Phase,
    /// When to cancel (`cancel_after`), if no final answer by then.
    cancel_at: Option<Instant>,
    cancel: Option<Retransmit>,
    bye: Option<Retransmit>,
    bye_branch: Option<String>,
    /// The ACK sent for the final answer: sent again when it is repeated.
    ack: Option<(SocketAddr, Bytes)>,
    /// When the first 2xx came: 2xx answers are ACKed for 64·T1 after it
    /// (§13.2.2.4), so the call is kept that long.
    answered_at: Option<Instant>,
    dialog: Option<Dialog>,
    /// The last CSeq number used in the dialog (the INVITE's is 1).
    cseq: u32,
    /// The latest re-INVITE (media mode: hold and resume).
    reinvite: Option<Reinvite>,
    /// Branches of every re-INVITE sent, forgotten with the call.
    reinvite_branches: Vec<String>,
    /// The deadline the timer heap holds an entry for.
    scheduled: Option<Instant>,
}

/// A re-INVITE within a call's dialog (§14.1), sent again until its final
/// answer or 64·T1.
struct Reinvite {
    request: Request,
    branch: String,
    retransmit: Retransmit,
    /// Its ACK, sent again if the final answer is repeated.
    ack: Option<(SocketAddr, Bytes)>,
    answered: bool,
}

enum Phase {
    /// INVITE sent, nothing heard: timers A and B.
    Calling {
        retransmit_at: Instant,
        interval: Duration,
        timeout_at: Instant,
    },
    /// A provisional came; the final answer is awaited until `give_up_at`
    /// (`final_timeout`, or 64·T1 after our CANCEL).
    Proceeding {
        give_up_at: Instant,
        cancelling: bool,
    },
    /// Answered and ACKed; the BYE goes at `bye_at`.
    Up { bye_at: Instant },
    /// BYE sent (see `Call::bye`).
    Ending,
    /// Over; kept a while to ACK repeated final answers.
    Over { forget_at: Instant },
}

/// A dialog as the caller sees it (§12.1.2).
struct Dialog {
    to_tag: String,
    to: Header,
    remote_target: Uri,
    /// Route values: the Record-Route, reversed.
    routes: Vec<String>,
    /// Where in-dialog requests go: the first route, else the remote target.
    next_hop: SocketAddr,
}

/// A non-INVITE request in flight: timers E and F.
struct Retransmit {
    to: SocketAddr,
    bytes: Bytes,
    retransmit_at: Instant,
    interval: Duration,
    timeout_at: Instant,
    done: bool,
}

impl Retransmit {
    fn new(now: Instant, to: SocketAddr, bytes: Bytes, t1: Duration) -> Retransmit {
        Retransmit {
            to,
            bytes,
            retransmit_at: now + t1,
            interval: t1,
            timeout_at: now + t1 * 64,
            done: false,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        (!self.done).then(|| self.retransmit_at.min(self.timeout_at))
    }

    /// Sends again when due; true when timer F fired.
    fn tick(
        &mut self,
        now: Instant,
        t2: Duration,
        outbox: &mut VecDeque<(SocketAddr, Bytes)>,
    ) -> bool {
        if self.done {
            return false;
        }
        if self.timeout_at <= now {
            self.done = true;
            return true;
        }
        if self.retransmit_at <= now {
            outbox.push_back((self.to, self.bytes.clone()));
            self.interval = backoff(self.interval, t2);
            self.retransmit_at = now + self.interval;
        }
        false
    }
}

impl Call {
    /// How long an ended call is kept: for an answered one, until 64·T1
    /// after its first 2xx, to ACK and hang up late 2xx from other dialogs.
    fn keep_until(&self, now: Instant, t1: Duration) -> Instant {
        self.answered_at.map_or(now, |at| now.max(at + t1 * 64))
    }

    fn deadline(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Calling {
                retransmit_at,
                timeout_at,
                ..
            } => Some(retransmit_at.min(timeout_at)),
            Phase::Proceeding {
                give_up_at,
                cancelling,
            } => Some(match self.cancel_at {
                Some(at) if !cancelling => at.min(give_up_at),
                _ => give_up_at,
            }),
            Phase::Up { bye_at } => Some(bye_at),
            Phase::Ending => None,
            Phase::Over { forget_at } => Some(forget_at),
        };
        [
            phase,
            self.cancel.as_ref().and_then(Retransmit::deadline),
            self.bye.as_ref().and_then(Retransmit::deadline),
            self.reinvite
                .as_ref()
                .and_then(|reinvite| reinvite.retransmit.deadline()),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

impl Uac {
    pub(crate) fn new(config: &SipCallerConfig, local: SocketAddr, now: Instant) -> Uac {
        let mut rng = Rng::new(config.seed);
        let id_prefix = format!("{:012x}", rng.next_u64() >> 16);
        Uac {
            proxy: config.proxy,
            local,
            calls: config.calls,
            rate: config.rate,
            hold: config.hold,
            number_prefix: config.number_prefix.clone(),
            to_user: config.to_user.clone(),
            to_host: config
                .to_host
                .clone()
                .unwrap_or_else(|| config.proxy.to_string()),
            cancel_after: config.cancel_after,
            final_timeout: config.final_timeout,
            t1: config.t1,
            t2: config.t2,
            rng,
            id_prefix,
            limit: config.limit.unwrap_or(config.calls).min(config.calls),
            next: 0,
            pace_base: now,
            pace_from: 0,
            records: Vec::new(),
            live: HashMap::new(),
            by_branch: HashMap::new(),
            timers: BinaryHeap::new(),
            outbox: VecDeque::new(),
            finished: 0,
            media: false,
            events: VecDeque::new(),
        }
    }

    /// Media mode, for the lab's media caller: each call due asks for its
    /// offer ([`UacEvent::NeedOffer`]) instead of writing a made-up one, and
    /// answers, re-INVITE outcomes and ends are reported as [`UacEvent`]s.
    pub(crate) fn enable_media(&mut self) {
        self.media = true;
    }

    pub(crate) fn poll_event(&mut self) -> Option<UacEvent> {
        self.events.pop_front()
    }

    /// Places call `index` with `offer` as its SDP, now. Calls are placed in
    /// order: false (nothing done) for any other than the next one asked for.
    pub(crate) fn place_with_offer(&mut self, now: Instant, index: u64, offer: Bytes) -> bool {
        if index as usize != self.records.len() || index >= self.next {
            return false;
        }
        self.place(index, now, offer);
        true
    }

    /// Gives up call `index` before its INVITE (no offer could be made): it
    /// is recorded as failed with `500`.
    pub(crate) fn abandon(&mut self, now: Instant, index: u64) {
        if index as usize != self.records.len() || index >= self.next {
            return;
        }
        let call_id = self.call_id(index);
        self.records.push(CallRecord {
            index,
            call_id,
            started: now,
            first_response: None,
            setup_time: Some(Duration::ZERO),
            status: Some(StatusCode::SERVER_INTERNAL_ERROR.as_u16()),
            timed_out: false,
            cancelled: false,
            invite_retransmissions: 0,
            contact: None,
            bye_status: None,
            extra_answers: 0,
            finished: true,
        });
        self.finished += 1;
    }

    /// Sends a re-INVITE with `offer` in call `index`'s dialog. False if the
    /// call is not up (answered, BYE not sent) or a re-INVITE is pending.
    pub(crate) fn reinvite(&mut self, now: Instant, index: u64, offer: Bytes) -> bool {
        let Some(mut call) = self.live.remove(&index) else {
            return false;
        };
        let idle = call.reinvite.as_ref().is_none_or(|r| r.answered);
        let up = matches!(call.phase, Phase::Up { .. });
        let sent = match call.dialog.take() {
            Some(dialog) if idle && up => {
                call.cseq += 1;
                let mut request = self.in_dialog(&call, &dialog, Method::Invite, call.cseq);
                request.headers.push(Header::new(
                    HeaderName::Contact,
                    format!("<sip:caller@{}>", self.local),
                ));
                set_sdp(&mut request.headers, &mut request.body, offer);
                let reinvite_branch = branch(&request.headers).unwrap_or_default();
                let bytes = request.to_bytes();
                self.outbox.push_back((dialog.next_hop, bytes.clone()));
                self.by_branch.insert(reinvite_branch.clone(), index);
                call.reinvite_branches.push(reinvite_branch.clone());
                call.reinvite = Some(Reinvite {
                    request,
                    branch: reinvite_branch,
                    retransmit: Retransmit::new(now, dialog.next_hop, bytes, self.t1),
                    ack: None,
                    answered: false,
                });
                call.dialog = Some(dialog);
                true
            }
            dialog => {
                call.dialog = dialog;
                false
            }
        };
        self.live.insert(index, call);
        self.schedule(index);
        sent
    }

    pub(crate) fn records(&self) -> &[CallRecord] {
        &self.records
    }

    pub(crate) fn progress(&self) -> CallerProgress {
        let answered = self.records.iter().filter(|r| r.answered()).count() as u64;
        let with_final = self.records.iter().filter(|r| r.status.is_some()).count() as u64;
        CallerProgress {
            calls: self.calls,
            placed: self.next,
            answered,
            failed: with_final - answered,
            awaiting_final: self.next - with_final,
            finished: self.finished,
        }
    }

    pub(crate) fn allow(&mut self, calls: u64, now: Instant) {
        let calls = calls.min(self.calls);
        if calls <= self.limit {
            return;
        }
        let waiting = self.next == self.limit && self.next < self.calls;
        if waiting && self.due(self.next) < now {
            self.pace_base = now;
            self.pace_from = self.next;
        }
        self.limit = calls;
    }

    /// When call `index` is to be placed.
    fn due(&self, index: u64) -> Instant {
        if self.rate <= 0.0 {
            return self.pace_base;
        }
        let after = index.saturating_sub(self.pace_from) as f64 / self.rate;
        self.pace_base + Duration::from_secs_f64(after)
    }

    fn call_id(&self, index: u64) -> String {
        format!("{}-{index}@{}", self.id_prefix, self.local.ip())
    }

    fn place(&mut self, index: u64, now: Instant, offer: Bytes) {
        let call_id = self.call_id(index);
        let branch = Branch::generate(&mut self.rng);
        let number = match &self.to_user {
            Some(user) => user.clone(),
            None => format!("{}{index:06}", self.number_prefix),
        };
        let target = uri(&format!("sip:{number}@{}", self.to_host));
        let me = uri(&format!("sip:caller@{}", self.local));
        let mut invite = NewRequest {
            method: Method::Invite,
            uri: target.clone(),
            from: me.clone(),
            from_tag: format!("{:x}", self.rng.next_u64() >> 16),
            to: target,
            call_id: call_id.clone(),
            cseq: 1,
            transport: "UDP".to_owned(),
            sent_by: self.local.to_string(),
            branch: branch.clone(),
            max_forwards: 70,
            contact: Some(me),
        }
        .build();
        set_sdp(&mut invite.headers, &mut invite.body, offer);
        let invite_bytes = invite.to_bytes();
        self.outbox.push_back((self.proxy, invite_bytes.clone()));
        self.records.push(CallRecord {
            index,
            call_id,
            started: now,
            first_response: None,
            setup_time: None,
            status: None,
            timed_out: false,
            cancelled: false,
            invite_retransmissions: 0,
            contact: None,
            bye_status: None,
            extra_answers: 0,
            finished: false,
        });
        self.by_branch.insert(branch.to_string(), index);
        self.live.insert(
            index,
            Call {
                invite,
                invite_bytes,
                branch: branch.to_string(),
                phase: Phase::Calling {
                    retransmit_at: now + self.t1,
                    interval: self.t1,
                    timeout_at: now + self.t1 * 64,
                },
                cancel_at: self.cancel_after.map(|after| now + after),
                cancel: None,
                bye: None,
                bye_branch: None,
                ack: None,
                answered_at: None,
                dialog: None,
                cseq: 1,
                reinvite: None,
                reinvite_branches: Vec::new(),
                scheduled: None,
            },
        );
        self.schedule(index);
    }

    /// Keeps the timer heap's entry for call `index` in step with its deadline.
    fn schedule(&mut self, index: u64) {
        if let Some(call) = self.live.get_mut(&index) {
            let deadline = call.deadline();
            if call.scheduled != deadline {
                call.scheduled = deadline;
                if let Some(at) = deadline {
                    self.timers.push(Reverse((at, index)));
                }
            }
        }
    }

    /// A request within the call's dialog (ACK or BYE), on a new branch.
    fn in_dialog(&mut self, call: &Call, dialog: &Dialog, method: Method, cseq: u32) -> Request {
        let branch = Branch::generate(&mut self.rng);
        let mut request = Request::new(method.clone(), dialog.remote_target.clone());
        let headers = &mut request.headers;
        headers.push(Header::new(
            HeaderName::Via,
            format!("SIP/2.0/UDP {};branch={branch};rport", self.local),
        ));
        headers.push(Header::new(
            HeaderName::MaxForwards,
            Bytes::from_static(b"70"),
        ));
        for route in &dialog.routes {
            headers.push(Header::new(HeaderName::Route, route.clone()));
        }
        if let Some(from) = call.invite.headers.get(HeaderName::From) {
            headers.push(from.clone());
        }
        headers.push(dialog.to.clone());
        if let Some(call_id) = call.invite.headers.get(HeaderName::CallId) {
            headers.push(call_id.clone());
        }
        headers.push(Header::new(HeaderName::CSeq, format!("{cseq} {method}")));
        headers.push(Header::new(
            HeaderName::ContentLength,
            Bytes::from_static(b"0"),
        ));
        request
    }

    fn finish(&mut self, index: u64) {
        let record = &mut self.records[index as usize];
        if !record.finished {
            record.finished = true;
            self.finished += 1;
            if self.media {
                self.events.push_back(UacEvent::Over { index });
            }
        }
    }

    fn on_response(&mut self, now: Instant, response: Response) {
        let Some(index) = branch(&response.headers).and_then(|b| self.by_branch.get(&b).copied())
        else {
            return;
        };
        let Some(cseq) = response.headers.cseq() else {
            return;
        };
        let Some(mut call) = self.live.remove(&index) else {
            return;
        };
        let response_branch = branch(&response.headers).unwrap_or_default();
        match cseq.method {
            Method::Invite if call.branch == response_branch => {
                self.on_invite_response(now, index, &mut call, response);
            }
            Method::Invite
                if call
                    .reinvite
                    .as_ref()
                    .is_some_and(|r| r.branch == response_branch) =>
            {
                self.on_reinvite_response(index, &mut call, response);
            }
            Method::Cancel if response.status.is_final() => {
                if let Some(cancel) = &mut call.cancel {
                    cancel.done = true;
                }
            }
            Method::Bye if response.status.is_final() => {
                if let Some(bye) = call.bye.as_mut().filter(|bye| !bye.done) {
                    bye.done = true;
                    self.records[index as usize].bye_status = Some(response.status.as_u16());
                    call.phase = Phase::Over {
                        forget_at: call.keep_until(now, self.t1),
                    };
                    self.finish(index);
                }
            }
            _ => {}
        }
        self.live.insert(index, call);
        self.schedule(index);
    }

    fn on_invite_response(
        &mut self,
        now: Instant,
        index: u64,
        call: &mut Call,
        response: Response,
    ) {
        let status = response.status;
        let record = &mut self.records[index as usize];
        record
            .first_response
            .get_or_insert(now.saturating_duration_since(record.started));
        let first_final = record.status.is_none() && status.is_final();
        if first_final {
            record.status = Some(status.as_u16());
            record.setup_time = Some(now.saturating_duration_since(record.started));
            if let Some(cancel) = &mut call.cancel {
                cancel.done = true;
            }
        }
        if status.is_provisional() {
            if let Phase::Calling { .. } = call.phase {
                call.phase = Phase::Proceeding {
                    give_up_at: now + self.final_timeout,
                    cancelling: false,
                };
            }
        } else if status.is_success() {
            let to_tag = response
                .headers
                .to()
                .and_then(|to| to.tag().map(str::to_owned))
                .unwrap_or_default();
            let dialog = dialog_from(&response, to_tag, self.proxy, &call.invite);
            if first_final {
                self.records[index as usize].contact = response
                    .headers
                    .contacts()
                    .first()
                    .map(|contact| contact.uri.to_string());
                if self.media {
                    self.events.push_back(UacEvent::Answered {
                        index,
                        body: response.body.clone(),
                    });
                }
                let ack = self.in_dialog(call, &dialog, Method::Ack, 1).to_bytes();
                self.outbox.push_back((dialog.next_hop, ack.clone()));
                call.ack = Some((dialog.next_hop, ack));
                call.answered_at = Some(now);
                let hang_up_now = matches!(
                    call.phase,
                    Phase::Proceeding {
                        cancelling: true,
                        ..
                    }
                );
                call.phase = Phase::Up {
                    bye_at: if hang_up_now { now } else { now + self.hold },
                };
                call.dialog = Some(dialog);
            } else if call
                .dialog
                .as_ref()
                .is_some_and(|d| d.to_tag == dialog.to_tag)
            {
                // The 200 again: our ACK was lost.
                if let Some((to, ack)) = call.ack.clone() {
                    self.outbox.push_back((to, ack));
                }
            } else {
                // Another dialog (a late answer from a trunk given up on):
                // ACK it and hang it up at once (§13.2.2.4).
                self.records[index as usize].extra_answers += 1;
                let ack = self.in_dialog(call, &dialog, Method::Ack, 1).to_bytes();
                let bye = self.in_dialog(call, &dialog, Method::Bye, 2).to_bytes();
                self.outbox.push_back((dialog.next_hop, ack));
                self.outbox.push_back((dialog.next_hop, bye));
            }
        } else if first_final {
            // The hop-by-hop ACK of a failure, on the INVITE's branch.
            if let Ok(ack) = ack_for(&call.invite, &response) {
                let ack = ack.to_bytes();
                self.outbox.push_back((self.proxy, ack.clone()));
                call.ack = Some((self.proxy, ack));
            }
            call.phase = Phase::Over {
                forget_at: now + self.t1 * 64,
            };
            self.finish(index);
        } else if let Some((to, ack)) = call.ack.clone() {
            // A repeated failure: our ACK was lost.
            if !status.is_success() {
                self.outbox.push_back((to, ack));
            }
        }
    }

    /// A response to the pending re-INVITE: provisionals are ignored (it is
    /// sent again until a final answer); the final one is ACKed — in the
    /// dialog for a 2xx, on its branch for a failure (§17.1.1.3) — and
    /// reported; a repeated final answer gets the ACK again.
    fn on_reinvite_response(&mut self, index: u64, call: &mut Call, response: Response) {
        let status = response.status;
        let Some(reinvite) = call.reinvite.as_ref() else {
            return;
        };
        if !status.is_final() {
            return;
        }
        if reinvite.answered {
            if let Some((to, ack)) = reinvite.ack.clone() {
                self.outbox.push_back((to, ack));
            }
            return;
        }
        let hop = reinvite.retransmit.to;
        let ack = if status.is_success() {
            let cseq = reinvite
                .request
                .headers
                .cseq()
                .map_or(call.cseq, |cseq| cseq.seq);
            call.dialog.as_ref().map(|dialog| {
                let ack = self.in_dialog(call, dialog, Method::Ack, cseq);
                (dialog.next_hop, ack.to_bytes())
            })
        } else {
            ack_for(&reinvite.request, &response)
                .ok()
                .map(|ack| (hop, ack.to_bytes()))
        };
        if let Some((to, bytes)) = &ack {
            self.outbox.push_back((*to, bytes.clone()));
        }
        if let Some(reinvite) = call.reinvite.as_mut() {
            reinvite.answered = true;
            reinvite.retransmit.done = true;
            reinvite.ack = ack;
        }
        self.events.push_back(UacEvent::Reinvited {
            index,
            status: status.as_u16(),
            body: response.body,
        });
    }

    fn send_cancel(&mut self, now: Instant, index: u64, call: &mut Call) {
        if let Ok(cancel) = cancel_for(&call.invite) {
            let bytes = cancel.to_bytes();
            self.outbox.push_back((self.proxy, bytes.clone()));
            call.cancel = Some(Retransmit::new(now, self.proxy, bytes, self.t1));
        }
        self.records[index as usize].cancelled = true;
        call.phase = Phase::Proceeding {
            give_up_at: now + self.t1 * 64,
            cancelling: true,
        };
    }

    /// Runs one call's due timers.
    fn fire(&mut self, now: Instant, index: u64) {
        let Some(mut call) = self.live.remove(&index) else {
            return;
        };
        let mut forget = false;
        for _ in 0..MAX_STEPS {
            if call.deadline().is_none_or(|at| at > now) || forget {
                break;
            }
            if let Some(cancel) = &mut call.cancel {
                cancel.tick(now, self.t2, &mut self.outbox);
            }
            if let Some(reinvite) = call.reinvite.as_mut().filter(|r| !r.answered) {
                if reinvite.retransmit.tick(now, self.t2, &mut self.outbox) {
                    // No final answer to the re-INVITE: the call goes on as it was.
                    reinvite.answered = true;
                    self.events.push_back(UacEvent::Reinvited {
                        index,
                        status: StatusCode::REQUEST_TIMEOUT.as_u16(),
                        body: Bytes::new(),
                    });
                }
            }
            if let Some(bye) = &mut call.bye {
                if bye.tick(now, self.t2, &mut self.outbox) {
                    // Timer F: the BYE went unanswered.
                    call.phase = Phase::Over {
                        forget_at: call.keep_until(now, self.t1),
                    };
                    self.finish(index);
                }
            }
            match call.phase {
                Phase::Calling {
                    retransmit_at,
                    interval,
                    timeout_at,
                } => {
                    if timeout_at <= now {
                        // Timer B: nothing at all came back.
                        let record = &mut self.records[index as usize];
                        record.status = Some(StatusCode::REQUEST_TIMEOUT.as_u16());
                        record.timed_out = true;
                        record.setup_time = Some(now.saturating_duration_since(record.started));
                        call.phase = Phase::Over { forget_at: now };
                        self.finish(index);
                    } else if retransmit_at <= now {
                        self.outbox
                            .push_back((self.proxy, call.invite_bytes.clone()));
                        self.records[index as usize].invite_retransmissions += 1;
                        let interval = backoff(interval, Duration::MAX);
                        call.phase = Phase::Calling {
                            retransmit_at: now + interval,
                            interval,
                            timeout_at,
                        };
                    }
                }
                Phase::Proceeding {
                    give_up_at,
                    cancelling,
                } => {
                    if give_up_at <= now && cancelling {
                        // No final answer even after the CANCEL (§9.1).
                        let record = &mut self.records[index as usize];
                        record.status = Some(StatusCode::REQUEST_TIMEOUT.as_u16());
                        record.timed_out = true;
                        record.setup_time = Some(now.saturating_duration_since(record.started));
                        if let Some(cancel) = &mut call.cancel {
                            cancel.done = true;
                        }
                        call.phase = Phase::Over { forget_at: now };
                        self.finish(index);
                    } else if !cancelling
                        && (give_up_at <= now || call.cancel_at.is_some_and(|at| at <= now))
                    {
                        self.send_cancel(now, index, &mut call);
                    }
                }
                Phase::Up { bye_at } if bye_at <= now => {
                    if let Some(dialog) = call.dialog.take() {
                        call.cseq += 1;
                        let bye = self.in_dialog(&call, &dialog, Method::Bye, call.cseq);
                        let bye_branch = branch(&bye.headers).unwrap_or_default();
                        let bytes = bye.to_bytes();
                        self.outbox.push_back((dialog.next_hop, bytes.clone()));
                        call.bye = Some(Retransmit::new(now, dialog.next_hop, bytes, self.t1));
                        self.by_branch.insert(bye_branch.clone(), index);
                        call.bye_branch = Some(bye_branch);
                        call.dialog = Some(dialog);
                    }
                    call.phase = Phase::Ending;
                    if self.media {
                        self.events.push_back(UacEvent::Over { index });
                    }
                }
                Phase::Over { forget_at } if forget_at <= now => forget = true,
                Phase::Up { .. } | Phase::Ending | Phase::Over { .. } => {}
            }
        }
        if forget {
            self.by_branch.remove(&call.branch);
            if let Some(bye_branch) = &call.bye_branch {
                self.by_branch.remove(bye_branch);
            }
            for reinvite_branch in &call.reinvite_branches {
                self.by_branch.remove(reinvite_branch);
            }
            return;
        }
        call.scheduled = None;
        self.live.insert(index, call);
        self.schedule(index);
    }

    /// Answers a request from the far end: OPTIONS 200, ACK nothing, anything
    /// else 501 (the caller's dialogs take no requests).
    fn on_request(&mut self, from: SocketAddr, request: Request) {
        let status = match request.method {
            Method::Ack => return,
            Method::Options => StatusCode::OK,
            _ => StatusCode::NOT_IMPLEMENTED,
        };
        let tag = format!("{:x}", self.rng.next_u64() >> 16);
        let answer = response_to(&request, status, Some(&tag));
        self.outbox.push_back((from, answer.to_bytes()));
    }
}

impl Endpoint for Uac {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: Bytes) {
        match parse_bytes(datagram) {
            Ok(Message::Response(response)) => self.on_response(now, response),
            Ok(Message::Request(request)) => self.on_request(from, request),
            Err(error) => tracing::debug!(%from, %error, "sip caller: unparsable datagram"),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        while self.next < self.limit && self.due(self.next) <= now {
            if self.media {
                self.events
                    .push_back(UacEvent::NeedOffer { index: self.next });
            } else {
                let offer = sdp(self.local, self.next, MEDIA_PORT);
                self.place(self.next, now, offer);
            }
            self.next += 1;
        }
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, index))) = self.timers.pop() else {
                break;
            };
            if self.live.get(&index).and_then(|call| call.scheduled) == Some(at) {
                self.fire(now, index);
            }
        }
    }

    fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        self.outbox.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let next_call = (self.next < self.limit).then(|| self.due(self.next));
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        [next_call, timer].into_iter().flatten().min()
    }

    fn is_finished(&self) -> bool {
        self.next == self.calls && self.finished == self.calls
    }
}

/// The dialog a 2xx answer sets up (§12.1.2): its To (with the tag), the
/// remote target (Contact), the route set (Record-Route reversed) and the
/// next hop of in-dialog requests.
fn dialog_from(response: &Response, to_tag: String, proxy: SocketAddr, invite: &Request) -> Dialog {
    let routes: Vec<_> = response.headers.record_routes().into_iter().rev().collect();
    let remote_target = response
        .headers
        .contacts()
        .into_iter()
        .next()
        .map_or_else(|| invite.uri.clone(), |contact| contact.uri);
    let next_hop = routes
        .first()
        .map_or_else(|| addr_of(&remote_target), |route| addr_of(&route.uri))
        .unwrap_or(proxy);
    let to = response
        .headers
        .get(HeaderName::To)
        .cloned()
        .unwrap_or_else(|| Header::new(HeaderName::To, Bytes::new()));
    Dialog {
        to_tag,
        to,
        remote_target,
        routes: routes
            .into_iter()
            .map(|route| format!("<{}>", route.uri))
            .collect(),
        next_hop,
    }
}

fn uri(text: &str) -> Uri {
    // Built from addresses and a validated prefix: always a valid URI.
    Uri::parse(text.to_owned()).unwrap_or_else(|_| Uri::parse("sip:invalid").expect("valid"))
}
