//! Calls: the caller's INVITE server transaction, one client INVITE
//! transaction per attempt, and the failover between them (SPEC V1).
//!
//! A call's attempts run one at a time. `Call::current` is the branch in
//! progress; when it ends, [`Proxy::advance`] either starts the next trunk of
//! the plan or gives the caller its final answer, so an unfinished call always
//! has a live branch, and every live branch has a deadline.
//!
//! A branch's life (its client transaction runs alongside):
//!
//! ```text
//!  Calling ──1xx──▶ Ringing ──final──▶ Done (ACKed by the transaction; removed
//!    │                 │                      when it ends, timer D)
//!    │ invite_timeout  │ invite_final_timeout, caller's CANCEL, or the call
//!    ▼                 ▼ ended elsewhere
//!  Abandoned         Cancelling ──final or 64·T1──▶ removed
//!  (no retransmissions; a late 1xx is cancelled, a late failure ACKed,
//!   a late 2xx relayed; removed at 64·T1 after sending)
//! ```
//!
//! A 2xx ends the branch and the call at once (see the module docs of
//! [`super`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use hotsite_sip::message::{cancel_for, response_to, Method, Request, Response, StatusCode, Via};
use hotsite_sip::proxy::{self as wire, Peer, ServerKey, Transmit};
use hotsite_sip::transaction::{ClientInvite, ClientNonInvite, ServerInvite, TransactionEvent};

use super::timers::TimerRef;
use super::{CallEnded, CallFailover, CallOutcome, MediaMode, Proxy, ProxyEvent};
use crate::media::MediaEnd;
use crate::routing::{fails_over, BranchReply};

/// One call: the caller's INVITE transaction and its plan.
pub(crate) struct Call {
    key: ServerKey,
    /// Holds the caller's INVITE as forwarded (Via stamped, Max-Forwards
    /// decremented, Record-Route added): each attempt copies it.
    server: ServerInvite,
    caller: Peer,
    group: usize,
    plan: Vec<usize>,
    /// How many trunks of the plan were started.
    tried: usize,
    current: Option<Bytes>,
    cancelled: bool,
    finished: bool,
    last_failure: Option<Failure>,
    started: Instant,
    pub(crate) scheduled: Option<Instant>,
}

/// Why the last attempt failed.
enum Failure {
    /// A 408 or 5xx (our Via already popped).
    Final { trunk: usize, response: Response },
    /// No reply at all.
    NoReply { trunk: usize, waited: Duration },
    /// It rang, then the trunk was taken out of service for not answering
    /// (probes or another call's silent INVITE) and this branch had heard
    /// nothing from it for `silent` either.
    StoppedAnswering { trunk: usize, silent: Duration },
    /// The transport could not reach it (over TCP: no connection).
    Unreachable { trunk: usize, reason: String },
}

impl Call {
    /// Its Call-ID, for events.
    fn call_id(&self) -> String {
        self.server
            .request()
            .headers
            .call_id()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Failure {
    fn trunk(&self) -> usize {
        match self {
            Failure::Final { trunk, .. }
            | Failure::NoReply { trunk, .. }
            | Failure::StoppedAnswering { trunk, .. }
            | Failure::Unreachable { trunk, .. } => *trunk,
        }
    }

    fn describe(&self) -> String {
        match self {
            Failure::Final { response, .. } => {
                format!("{} {}", response.status, response.reason_str())
            }
            Failure::NoReply { waited, .. } => {
                format!("no reply within {:.1} s", waited.as_secs_f64())
            }
            Failure::Unreachable { reason, .. } => format!("unreachable: {reason}"),
            Failure::StoppedAnswering { silent, .. } => format!(
                "out of service while ringing, silent for {:.1} s",
                silent.as_secs_f64()
            ),
        }
    }
}

/// One INVITE sent to one trunk.
pub(crate) struct Branch {
    call: u64,
    trunk: usize,
    tx: ClientInvite,
    cancel: Option<ClientNonInvite>,
    sent_at: Instant,
    /// The last answer from the trunk on this branch (`sent_at` until one).
    heard_at: Instant,
    /// While ringing on a trunk that stopped answering: when to look again
    /// (see [`Proxy::reroute_ringing`]).
    recheck: Option<Instant>,
    phase: Phase,
    pub(crate) scheduled: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Sent, nothing heard; gives up at `until` (invite_timeout).
    Calling { until: Instant },
    /// A provisional came; the final must come by `until`.
    Ringing { until: Instant },
    /// CANCEL sent; waiting for the final answer until `until`.
    Cancelling { until: Instant },
    /// Given up for silence: not retransmitted, kept to match late answers.
    Abandoned { until: Instant },
    /// A final answer came; the transaction absorbs its retransmissions.
    Done,
}

impl Phase {
    fn deadline(self) -> Option<Instant> {
        match self {
            Phase::Calling { until }
            | Phase::Ringing { until }
            | Phase::Cancelling { until }
            | Phase::Abandoned { until } => Some(until),
            Phase::Done => None,
        }
    }
}

impl Proxy {
    /// An INVITE without a To tag: a retransmission, or a new call.
    pub(super) fn on_invite(&mut self, now: Instant, from: Peer, mut request: Request, via: Via) {
        let Some(key) = ServerKey::of(&request, &via) else {
            self.reply(
                from,
                &request,
                &via,
                StatusCode::BAD_REQUEST,
                Some("no Via branch and no From tag: the transaction cannot be identified"),
            );
            return;
        };
        if let Some(&id) = self.call_keys.get(&key) {
            self.stats.retransmissions_absorbed += 1;
            if let Some(call) = self.calls.get_mut(&id) {
                call.server.handle_request(now, request);
            }
            self.drive_call(now, id, false);
            return;
        }
        if self.tombstones.contains(&key) {
            self.stats.retransmissions_absorbed += 1;
            return;
        }
        // A new call from a trunk would go straight back out to the trunks:
        // inbound calls are not routed (yet), and this also stops a loop
        // through a trunk that points back at us.
        let sent_by =
            wire::parse_ip(&via.host).map(|ip| SocketAddr::new(ip, via.port.unwrap_or(5060)));
        if self.trunk_index.contains_key(&from.addr)
            || sent_by.is_some_and(|addr| self.trunk_index.contains_key(&addr))
        {
            self.reply(
                from,
                &request,
                &via,
                StatusCode::FORBIDDEN,
                Some("calls from a trunk are not routed by this proxy"),
            );
            return;
        }
        // Past the cap, refused before anything is kept (DESIGN.md invariant
        // 6): no trunk sees it, and its retransmissions are refused again.
        if self.at_capacity() {
            self.refuse_over_capacity(now, from, &request, &via);
            return;
        }
        let caller = wire::stamp_via(&mut request.headers, &via, from);
        if request.headers.decrement_max_forwards().is_err() {
            self.reply_to(caller, &request, StatusCode::TOO_MANY_HOPS, None);
            return;
        }
        // A preloaded Route naming us is ours to consume (§16.4).
        self.us.pop_routes(&mut request.headers);
        request
            .headers
            .insert_record_route(self.record_route[caller.transport as usize].clone());
        let group = self.select_group(&request.uri);
        // Anchored before the transaction holds the INVITE, so every
        // attempt carries the same SDP (`media.rs`).
        if self
            .groups
            .get(group)
            .is_some_and(|g| g.media == MediaMode::Anchor)
        {
            if let Err((status, text)) = self.anchor_invite(now, &mut request) {
                self.reply_to(caller, &request, status, Some(&text));
                return;
            }
        }
        let Some(setup) = self.groups.get(group) else {
            self.reply_to(
                caller,
                &request,
                StatusCode::SERVICE_UNAVAILABLE,
                Some("no trunk group is configured"),
            );
            return;
        };
        let plan = self.trunks.plan(
            &setup.trunks,
            setup.distribution,
            setup.max_attempts,
            &mut self.rng,
        );
        let trying = response_to(&request, StatusCode::TRYING, None);
        let mut server = ServerInvite::new(now, request, self.tx_config_for(caller.transport));
        // Answered at once: the caller stops retransmitting (§16.2).
        let _ = server.respond(now, trying);
        let id = self.next_call;
        self.next_call += 1;
        self.calls.insert(
            id,
            Box::new(Call {
                key: key.clone(),
                server,
                caller,
                group,
                plan,
                tried: 0,
                current: None,
                cancelled: false,
                finished: false,
                last_failure: None,
                started: now,
                scheduled: None,
            }),
        );
        self.call_keys.insert(key, id);
        self.stats.calls += 1;
        self.note_admitted();
        self.drive_call(now, id, false);
        self.advance(now, id);
    }

    /// The caller's CANCEL (§9.2, §16.10).
    pub(super) fn on_cancel(&mut self, now: Instant, from: Peer, request: Request, via: Via) {
        let key = ServerKey::of(&request, &via);
        let call = key
            .as_ref()
            .and_then(|key| self.call_keys.get(key).copied());
        let Some(id) = call else {
            if key.is_some_and(|key| self.tombstones.contains(&key)) {
                // Answered already: the CANCEL has no effect (§9.2).
                self.reply(from, &request, &via, StatusCode::OK, None);
            } else {
                self.reply(from, &request, &via, StatusCode::CALL_DOES_NOT_EXIST, None);
            }
            return;
        };
        self.reply(from, &request, &via, StatusCode::OK, None);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.finished || call.cancelled {
            return;
        }
        call.cancelled = true;
        // Before any provisional, the CANCEL waits (§9.1): the first
        // provisional sends it, or the branch's invite_timeout ends it.
        if let Some(branch) = call.current.clone() {
            if self
                .branches
                .get(&branch)
                .is_some_and(|b| matches!(b.phase, Phase::Ringing { .. }))
            {
                self.send_cancel(now, &branch);
                self.drive_branch(now, &branch, false);
            }
        }
    }

    /// An ACK matching a call's INVITE transaction: the caller acknowledges
    /// our non-2xx answer. Returns false if it matches none.
    pub(super) fn absorb_ack(&mut self, now: Instant, request: &Request, via: &Via) -> bool {
        let Some(id) =
            ServerKey::of(request, via).and_then(|key| self.call_keys.get(&key).copied())
        else {
            return false;
        };
        self.stats.acks_absorbed += 1;
        if let Some(call) = self.calls.get_mut(&id) {
            call.server.handle_request(now, request.clone());
        }
        self.drive_call(now, id, false);
        true
    }

    /// A response to one of our INVITEs.
    pub(super) fn on_branch_response(&mut self, now: Instant, id: &Bytes, response: Response) {
        let Some(branch) = self.branches.get_mut(id) else {
            return;
        };
        branch.heard_at = now;
        branch.tx.handle_response(now, response);
        self.drive_branch(now, id, false);
    }

    /// A response to one of our CANCELs: the transaction absorbs it.
    pub(super) fn on_cancel_response(&mut self, now: Instant, id: &Bytes, response: Response) {
        if let Some(cancel) = self.branches.get_mut(id).and_then(|b| b.cancel.as_mut()) {
            cancel.handle_response(now, response);
        }
        self.drive_branch(now, id, false);
    }

    /// Sends the call's server transaction output, reports its end, removes
    /// it when it is over, and queues its next deadline. `fire`: its timers
    /// are due.
    pub(super) fn drive_call(&mut self, now: Instant, id: u64, fire: bool) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if fire {
            call.server.handle_timeout(now);
        }
        while let Some(bytes) = call.server.poll_transmit() {
            self.transmits.push_back(Transmit {
                to: call.caller,
                bytes,
            });
        }
        while let Some(event) = call.server.poll_event() {
            if event == TransactionEvent::Timeout {
                tracing::debug!(caller = %call.caller, "no ACK from the caller for our final answer");
            }
        }
        if call.server.is_terminated() {
            let key = call.key.clone();
            self.calls.remove(&id);
            self.call_keys.remove(&key);
            return;
        }
        self.timers
            .schedule(&mut call.scheduled, call.server.poll_timeout(), || {
                TimerRef::Call(id)
            });
    }

    /// Makes sure an unfinished call has a branch in progress: the next trunk
    /// of the plan, or the final answer when none is left.
    pub(super) fn advance(&mut self, now: Instant, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.finished || call.current.is_some() {
            return;
        }
        if call.cancelled {
            let response = self.local_answer(id, StatusCode::REQUEST_TERMINATED, None);
            self.answer(now, id, response, CallOutcome::Cancelled, None);
            return;
        }
        if call.tried < call.plan.len() {
            self.start_branch(now, id);
            return;
        }
        let (response, trunk) = match call.last_failure.take() {
            Some(Failure::Final { trunk, response }) => (response, Some(trunk)),
            Some(failure) => {
                // No final answer to pass on: 503 if the trunk could not be
                // reached at all, else 408 (it did not answer in time).
                let status = match failure {
                    Failure::Unreachable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::REQUEST_TIMEOUT,
                };
                let trunk = failure.trunk();
                let text = format!(
                    "trunk {}: {}; no trunk left",
                    self.per_trunk[trunk].trunk_ref.name,
                    failure.describe()
                );
                (self.local_answer(id, status, Some(&text)), Some(trunk))
            }
            None => {
                let text = format!("group {}: no trunk to try", self.group_names[call.group]);
                let response = self.local_answer(id, StatusCode::SERVICE_UNAVAILABLE, Some(&text));
                (response, None)
            }
        };
        self.answer(now, id, response, CallOutcome::Failed, trunk);
    }

    /// The report of a call's end.
    fn ended(
        &self,
        call: &Call,
        now: Instant,
        trunk: Option<usize>,
        status: StatusCode,
        outcome: CallOutcome,
    ) -> CallEnded {
        CallEnded {
            at: now,
            call_id: call.call_id(),
            group: self.group_names[call.group].clone(),
            trunk: trunk.map(|t| self.per_trunk[t].trunk_ref.clone()),
            status: status.as_u16(),
            outcome,
            attempts: call.tried as u32,
            setup_time: now.saturating_duration_since(call.started),
        }
    }

    /// A response of our own to the caller's INVITE.
    fn local_answer(&self, id: u64, status: StatusCode, warning: Option<&str>) -> Response {
        let call = &self.calls[&id];
        let mut response = response_to(call.server.request(), status, Some(&self.to_tag));
        if let Some(text) = warning {
            response.headers.push(wire::warning(&self.agent, text));
        }
        response
    }

    /// Gives the caller its final non-2xx answer through the server
    /// transaction.
    fn answer(
        &mut self,
        now: Instant,
        id: u64,
        response: Response,
        outcome: CallOutcome,
        trunk: Option<usize>,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.finished = true;
        if let Some(media) = &mut self.media {
            let end = match outcome {
                CallOutcome::Cancelled => MediaEnd::Cancelled,
                _ => MediaEnd::Failed,
            };
            let call_id = call.server.request().headers.call_id().unwrap_or_default();
            media.release(now, call_id, end);
        }
        let status = response.status;
        if let Err(error) = call.server.respond(now, response) {
            tracing::debug!(%error, "final answer refused by the server transaction");
        }
        let ended = self.ended(&self.calls[&id], now, trunk, status, outcome);
        match outcome {
            CallOutcome::Answered => self.stats.answered += 1,
            CallOutcome::Rejected => self.stats.rejected += 1,
            CallOutcome::Failed => self.stats.failed += 1,
            CallOutcome::Cancelled => self.stats.cancelled += 1,
            CallOutcome::RingTimeout => self.stats.ring_timeouts += 1,
        }
        self.events.push_back(ProxyEvent::CallEnded(ended));
        self.drive_call(now, id, false);
    }

    /// Sends the call's INVITE to the next trunk of its plan.
    fn start_branch(&mut self, now: Instant, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let trunk = call.plan[call.tried];
        call.tried += 1;
        let branch = wire::stateful_branch(&mut self.rng);
        let mut request = call.server.request().clone();
        let transport = self.per_trunk[trunk].peer.transport;
        if transport != call.caller.transport {
            // Two transports, two Record-Route entries (RFC 5658): each side
            // reaches us over its own. The held request has the caller's;
            // the trunk's goes on top, where the trunk reads first.
            request
                .headers
                .insert_record_route(self.record_route[transport as usize].clone());
        }
        let prefix = &self.via_prefix[transport as usize];
        let mut via = BytesMut::with_capacity(prefix.len() + branch.len());
        via.put_slice(prefix);
        via.put_slice(&branch);
        request.headers.push_via(via.freeze());
        call.current = Some(branch.clone());
        if let Some(failure) = &call.last_failure {
            let from = failure.trunk();
            let failover = CallFailover {
                at: now,
                call_id: call.call_id(),
                from: self.per_trunk[from].trunk_ref.clone(),
                to: self.per_trunk[trunk].trunk_ref.clone(),
                cause: failure.describe(),
            };
            tracing::debug!(
                call_id = %failover.call_id,
                from = %failover.from.name,
                to = %failover.to.name,
                cause = %failover.cause,
                "failover"
            );
            self.stats.failovers += 1;
            self.per_trunk[from].stats.failed_over += 1;
            self.events.push_back(ProxyEvent::Failover(failover));
        }
        self.per_trunk[trunk].stats.attempts += 1;
        if let (Some(media), Some(call)) = (&mut self.media, self.calls.get(&id)) {
            let call_id = call.server.request().headers.call_id().unwrap_or_default();
            Proxy::anchor_attempt(
                media,
                now,
                call_id,
                &self.group_names[call.group],
                &self.per_trunk[trunk].trunk_ref,
            );
        }
        self.branches.insert(
            branch.clone(),
            Box::new(Branch {
                call: id,
                trunk,
                tx: ClientInvite::new(now, request, self.tx_config_for(transport)),
                cancel: None,
                sent_at: now,
                heard_at: now,
                recheck: None,
                phase: Phase::Calling {
                    until: now + self.invite_timeout,
                },
                scheduled: None,
            }),
        );
        self.drive_branch(now, &branch, false);
    }

    /// Runs a branch: its transactions' output, their events, its phase
    /// deadline; removes it when it is over and queues its next deadline.
    /// `fire`: its timers are due.
    pub(super) fn drive_branch(&mut self, now: Instant, id: &Bytes, fire: bool) {
        if fire {
            let Some(branch) = self.branches.get_mut(id) else {
                return;
            };
            // An abandoned INVITE is not retransmitted any more.
            if !matches!(branch.phase, Phase::Abandoned { .. }) {
                branch.tx.handle_timeout(now);
            }
            if let Some(cancel) = branch.cancel.as_mut() {
                cancel.handle_timeout(now);
            }
        }
        self.flush_branch(id);
        while let Some(event) = self.branches.get_mut(id).and_then(|b| b.tx.poll_event()) {
            self.on_branch_event(now, id, event);
        }
        if self
            .branches
            .get(id)
            .is_some_and(|b| b.recheck.is_some_and(|at| at <= now))
        {
            self.recheck_ringing(now, id);
        }
        let due = self
            .branches
            .get(id)
            .and_then(|b| b.phase.deadline().map(|until| (b.phase, until)));
        if let Some((phase, until)) = due {
            if until <= now {
                match phase {
                    Phase::Calling { .. } => self.no_reply(now, id),
                    Phase::Ringing { .. } => self.ring_timeout(now, id),
                    Phase::Cancelling { .. } => self.cancel_expired(now, id),
                    Phase::Abandoned { .. } => {
                        self.branches.remove(id);
                    }
                    Phase::Done => {}
                }
            }
        }
        self.flush_branch(id);
        let Some(branch) = self.branches.get_mut(id) else {
            return;
        };
        let over = branch.phase == Phase::Done
            && branch.tx.is_terminated()
            && branch.cancel.as_ref().is_none_or(|c| c.is_terminated());
        if over {
            self.branches.remove(id);
            return;
        }
        let tx = match branch.phase {
            Phase::Abandoned { .. } => None,
            _ => branch.tx.poll_timeout(),
        };
        let next = [
            branch.phase.deadline(),
            branch.recheck,
            tx,
            branch.cancel.as_ref().and_then(|c| c.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min();
        self.timers
            .schedule(&mut branch.scheduled, next, || TimerRef::Branch(id.clone()));
    }

    /// Queues what the branch's transactions want sent to the trunk.
    fn flush_branch(&mut self, id: &Bytes) {
        let Some(branch) = self.branches.get_mut(id) else {
            return;
        };
        let to = self.per_trunk[branch.trunk].peer;
        while let Some(bytes) = branch.tx.poll_transmit() {
            self.transmits.push_back(Transmit { to, bytes });
        }
        if let Some(cancel) = branch.cancel.as_mut() {
            while let Some(bytes) = cancel.poll_transmit() {
                self.transmits.push_back(Transmit { to, bytes });
            }
            // 200 to our CANCEL, or its timeout: nothing to do either way.
            while cancel.poll_event().is_some() {}
        }
    }

    fn on_branch_event(&mut self, now: Instant, id: &Bytes, event: TransactionEvent) {
        match event {
            TransactionEvent::Provisional(response) => self.on_provisional(now, id, response),
            TransactionEvent::Final(response) if response.status.is_success() => {
                self.on_success(now, id, response)
            }
            TransactionEvent::Final(response) => self.on_failure(now, id, response),
            TransactionEvent::Timeout | TransactionEvent::TransportError => {
                // Timer B (only when invite_timeout is longer) or a transport
                // error: the same as no reply.
                let Some(branch) = self.branches.get_mut(id) else {
                    return;
                };
                if matches!(branch.phase, Phase::Calling { .. }) {
                    self.no_reply(now, id);
                    return;
                }
                branch.phase = Phase::Done;
                let (call, trunk, sent_at) = (branch.call, branch.trunk, branch.sent_at);
                if self.is_live(call, id) {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.current = None;
                        c.last_failure = Some(Failure::NoReply {
                            trunk,
                            waited: now.saturating_duration_since(sent_at),
                        });
                    }
                    self.advance(now, call);
                }
            }
            TransactionEvent::Ack(_) => {}
        }
    }

    /// Whether the branch is its call's attempt in progress, and the call is
    /// still waiting for its answer.
    fn is_live(&self, call: u64, id: &Bytes) -> bool {
        self.calls
            .get(&call)
            .is_some_and(|c| !c.finished && c.current.as_ref() == Some(id))
    }

    fn on_provisional(&mut self, now: Instant, id: &Bytes, mut response: Response) {
        let Some(branch) = self.branches.get_mut(id) else {
            return;
        };
        let call = branch.call;
        match branch.phase {
            Phase::Calling { .. } => {
                branch.phase = Phase::Ringing {
                    until: now + self.invite_final_timeout,
                }
            }
            Phase::Ringing { .. } => {}
            // A late provisional on a branch given up for silence: cancel it.
            Phase::Abandoned { .. } => {
                self.send_cancel(now, id);
                return;
            }
            Phase::Cancelling { .. } | Phase::Done => return,
        }
        let live = self.is_live(call, id);
        let cancelled = self.calls.get(&call).is_some_and(|c| c.cancelled);
        if !live || cancelled {
            // The caller cancelled before this provisional, or the call ended
            // elsewhere: now the branch may be cancelled (§9.1).
            self.send_cancel(now, id);
            return;
        }
        // 100 is hop by hop (§16.7 step 5).
        if response.status == StatusCode::TRYING {
            return;
        }
        response.headers.pop_via();
        self.anchor_response(now, &mut response, &Method::Invite);
        if let Some(c) = self.calls.get_mut(&call) {
            if let Err(error) = c.server.respond(now, response) {
                tracing::debug!(%error, "provisional refused by the server transaction");
            }
        }
        self.drive_call(now, call, false);
    }

    /// A 2xx: relayed statelessly; the call is answered and its state dropped.
    fn on_success(&mut self, now: Instant, id: &Bytes, response: Response) {
        let Some(branch) = self.branches.remove(id) else {
            return;
        };
        let status = response.status;
        // A 2xx from another trunk than the last one tried (a late one):
        // the call moved back to it (SPEC V3).
        if let (Some(media), Some(call)) = (&mut self.media, self.calls.get(&branch.call)) {
            let call_id = call.server.request().headers.call_id().unwrap_or_default();
            Proxy::anchor_answered_by(
                media,
                now,
                call_id,
                &self.group_names[call.group],
                &self.per_trunk[branch.trunk].trunk_ref,
            );
        }
        // Its retransmissions now match no branch and are relayed the same way.
        if let Some(via) = response.headers.top_via() {
            self.relay_response(now, response, &via, &Method::Invite);
        }
        let Some(call) = self.calls.get_mut(&branch.call) else {
            return;
        };
        if call.finished {
            return;
        }
        call.finished = true;
        let other = call.current.take().filter(|current| current != id);
        let Some(call) = self.calls.remove(&branch.call) else {
            return;
        };
        let ended = self.ended(
            &call,
            now,
            Some(branch.trunk),
            status,
            CallOutcome::Answered,
        );
        let key = call.key.clone();
        self.call_keys.remove(&key);
        // The server transaction is gone: a tombstone absorbs retransmitted
        // INVITEs for as long as it would have (timer L, RFC 6026).
        self.tombstones.insert(key.clone());
        self.tombstone_queue
            .push_back((now + self.tx_config.timeout(), key));
        self.stats.answered += 1;
        self.per_trunk[branch.trunk].stats.answered += 1;
        self.events.push_back(ProxyEvent::CallEnded(ended));
        // A late 2xx from a branch given up on while another rings: the other
        // one is cancelled (§16.7 step 10).
        if let Some(other) = other {
            if self
                .branches
                .get(&other)
                .is_some_and(|b| matches!(b.phase, Phase::Ringing { .. }))
            {
                self.send_cancel(now, &other);
                self.drive_branch(now, &other, false);
            }
        }
    }

    /// A non-2xx final answer, already ACKed by the transaction: the next
    /// trunk for 408 and 5xx (SPEC V1), else the answer goes to the caller.
    fn on_failure(&mut self, now: Instant, id: &Bytes, mut response: Response) {
        let Some(branch) = self.branches.get_mut(id) else {
            return;
        };
        let previous = std::mem::replace(&mut branch.phase, Phase::Done);
        let (call_id, trunk) = (branch.call, branch.trunk);
        if matches!(previous, Phase::Abandoned { .. }) || !self.is_live(call_id, id) {
            return;
        }
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        call.current = None;
        response.headers.pop_via();
        let status = response.status;
        if call.cancelled {
            self.answer(now, call_id, response, CallOutcome::Cancelled, Some(trunk));
        } else if fails_over(status.as_u16()) {
            call.last_failure = Some(Failure::Final { trunk, response });
            self.advance(now, call_id);
        } else {
            self.answer(now, call_id, response, CallOutcome::Rejected, Some(trunk));
        }
    }

    /// No reply at all within invite_timeout (or timer B): the trunk is
    /// marked (passive detection, SPEC V2) and the call moves on (SPEC V1).
    fn no_reply(&mut self, now: Instant, id: &Bytes) {
        let Some(branch) = self.branches.get_mut(id) else {
            return;
        };
        if !matches!(branch.phase, Phase::Calling { .. }) {
            return;
        }
        // Kept until its timer B would have fired, to match late answers.
        branch.phase = Phase::Abandoned {
            until: (branch.sent_at + self.tx_config.timeout()).max(now),
        };
        let (call, trunk, sent_at) = (branch.call, branch.trunk, branch.sent_at);
        self.stats.invite_timeouts += 1;
        self.per_trunk[trunk].stats.no_reply += 1;
        if self
            .trunks
            .handle_invite_timeout(trunk, sent_at, BranchReply::Nothing, now)
        {
            self.stopped_answering.push(trunk);
        }
        self.drain_trunk_events();
        if !self.is_live(call, id) {
            return;
        }
        if let Some(c) = self.calls.get_mut(&call) {
            c.current = None;
            c.last_failure = Some(Failure::NoReply {
                trunk,
                waited: now.saturating_duration_since(sent_at),
            });
        }
        self.advance(now, call);
    }

    /// A provisional came but no final within invite_final_timeout: the
    /// branch is cancelled and the caller gets 408. The trunk is alive (it
    /// answered), so it is not marked.
    fn ring_timeout(&mut self, now: Instant, id: &Bytes) {
        let Some(branch) = self.branches.get(id) else {
            return;
        };
        let (call, trunk) = (branch.call, branch.trunk);
        let live = self.is_live(call, id);
        self.send_cancel(now, id);
        if !live {
            return;
        }
        if let Some(c) = self.calls.get_mut(&call) {
            c.current = None;
        }
        let text = format!(
            "trunk {}: no final answer within {:.0} s of its provisional",
            self.per_trunk[trunk].trunk_ref.name,
            self.invite_final_timeout.as_secs_f64()
        );
        let response = self.local_answer(call, StatusCode::REQUEST_TIMEOUT, Some(&text));
        self.answer(now, call, response, CallOutcome::RingTimeout, Some(trunk));
    }

    /// A cancelled branch got no final answer within 64·T1: given up; a
    /// caller still waiting gets 487 from us.
    fn cancel_expired(&mut self, now: Instant, id: &Bytes) {
        let Some(branch) = self.branches.remove(id) else {
            return;
        };
        if self.is_live(branch.call, id) {
            if let Some(c) = self.calls.get_mut(&branch.call) {
                c.current = None;
            }
            self.advance(now, branch.call);
        }
    }

    /// Sends CANCEL for a branch that had a provisional (once).
    fn send_cancel(&mut self, now: Instant, id: &Bytes) {
        let Some(trunk) = self.branches.get(id).map(|b| b.trunk) else {
            return;
        };
        let config = self.tx_config_for(self.per_trunk[trunk].peer.transport);
        let Some(branch) = self.branches.get_mut(id) else {
            return;
        };
        if branch.cancel.is_some() || branch.phase == Phase::Done {
            return;
        }
        match cancel_for(branch.tx.request()) {
            Ok(cancel) => {
                branch.recheck = None;
                branch.cancel = Some(ClientNonInvite::new(now, cancel, config));
                branch.phase = Phase::Cancelling {
                    until: now + self.tx_config.timeout(),
                };
            }
            Err(error) => tracing::debug!(%error, "cannot build CANCEL"),
        }
    }
}

impl Proxy {
    /// Calls ringing on trunks that were just taken out of service for not
    /// answering move to the next trunk of their plan (SPEC V1, V2).
    ///
    /// A trunk that dies silently leaves its ringing calls with nothing to
    /// wait for: their 200 will never come, and without this they would hold
    /// the caller for the whole ring time (`invite_final_timeout`) and then
    /// fail. So when a trunk is marked down by its prober or by another
    /// call's unanswered INVITE, each of its ringing branches that has heard
    /// nothing from it for `invite_timeout` is cancelled and its call tries
    /// the next trunk at once; one that heard from it more recently (the
    /// trunk was alive after the evidence began) is looked at again when it
    /// has been silent that long, and moved then if the trunk is still out.
    /// A trunk out of service only for its registration keeps its calls.
    ///
    /// This never marks a trunk (the stale-call rule of SPEC V2 stands), and
    /// calls still trying the trunk (no reply yet) are left to their own
    /// `invite_timeout`, which already bounds their delay.
    pub(super) fn reroute_ringing(&mut self, now: Instant) {
        if self.stopped_answering.is_empty() {
            return;
        }
        let mut trunks = std::mem::take(&mut self.stopped_answering);
        trunks.sort_unstable();
        trunks.dedup();
        let ringing: Vec<Bytes> = self
            .branches
            .iter()
            .filter(|(_, b)| {
                matches!(b.phase, Phase::Ringing { .. }) && trunks.binary_search(&b.trunk).is_ok()
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ringing {
            self.recheck_ringing(now, &id);
            self.drive_branch(now, &id, false);
        }
    }

    /// One ringing branch on a trunk that may have stopped answering: moved
    /// on, looked at again later, or left alone (see
    /// [`Proxy::reroute_ringing`]).
    fn recheck_ringing(&mut self, now: Instant, id: &Bytes) {
        let Some(branch) = self.branches.get_mut(id) else {
            return;
        };
        branch.recheck = None;
        let (call, trunk) = (branch.call, branch.trunk);
        // The last word from the trunk on this branch or any other way
        // (another call, a probe): a trunk that still answers something is
        // not dead, whatever marked it (a dropped INVITE, probes answered
        // with a non-2xx).
        let heard_at = branch.heard_at.max(self.per_trunk[trunk].heard_at);
        if !matches!(branch.phase, Phase::Ringing { .. })
            || !self.trunks.stopped_answering(trunk)
            || !self.is_live(call, id)
        {
            return;
        }
        // With no trunk left to try, moving the call would only end it.
        if self
            .calls
            .get(&call)
            .is_none_or(|c| c.tried >= c.plan.len())
        {
            return;
        }
        let quiet_until = heard_at + self.invite_timeout;
        if quiet_until > now {
            if let Some(branch) = self.branches.get_mut(id) {
                branch.recheck = Some(quiet_until);
            }
            return;
        }
        self.send_cancel(now, id);
        self.stats.ringing_rerouted += 1;
        if let Some(c) = self.calls.get_mut(&call) {
            c.current = None;
            c.last_failure = Some(Failure::StoppedAnswering {
                trunk,
                silent: now.saturating_duration_since(heard_at),
            });
        }
        self.advance(now, call);
    }
}

impl Proxy {
    /// Calls trying a trunk the transport cannot reach move on at once (SPEC
    /// V1), and the trunk is marked like a silent one (SPEC V2): over TCP a
    /// refused or broken connection is known in a moment, so nobody waits
    /// `invite_timeout` for it. See [`Proxy::handle_unreachable`].
    pub(super) fn trunk_unreachable(&mut self, now: Instant, trunk: usize, reason: &str) {
        let trying: Vec<Bytes> = self
            .branches
            .iter()
            .filter(|(_, b)| b.trunk == trunk && matches!(b.phase, Phase::Calling { .. }))
            .map(|(id, _)| id.clone())
            .collect();
        let detail = format!("{}: {reason}", self.per_trunk[trunk].peer);
        if self.trunks.handle_unreachable(trunk, &detail, now) {
            self.stopped_answering.push(trunk);
        }
        self.drain_trunk_events();
        for id in trying {
            let Some(branch) = self.branches.get_mut(&id) else {
                continue;
            };
            // The INVITE may have gone out before the connection broke: the
            // branch is kept like one given up for silence, so a late 1xx is
            // cancelled and a late 2xx relayed.
            branch.phase = Phase::Abandoned {
                until: (branch.sent_at + self.tx_config.timeout()).max(now),
            };
            let call = branch.call;
            self.per_trunk[trunk].stats.no_reply += 1;
            if self.is_live(call, &id) {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.current = None;
                    c.last_failure = Some(Failure::Unreachable {
                        trunk,
                        reason: reason.to_owned(),
                    });
                }
                self.advance(now, call);
            }
            self.drive_branch(now, &id, false);
        }
    }
}
