//! [`Site`]: one site of the peer pair as one sans-IO state machine (SPEC
//! S1–S8). Datagrams, operator and desktop requests and the time go in;
//! datagrams, events and the next deadline come out. It owns the
//! [`Registrar`], the [`Agents`], the [`PeerLink`] and the calls (`calls.rs`),
//! and applies the rules that join them:
//!
//! - the mode is `draining` once a drain started, else `peered` while the
//!   peer answers its probes, else `single_site` (no peer trunk, or the peer
//!   out of service: SPEC S3, S4);
//! - in peered mode, a DN that loses its last registration logs its agent
//!   out with `dr-force_logout` (SPEC S8 with D6); never in single-site mode;
//! - in peered mode an agent logs in only on a DN registered here; in
//!   single-site mode whatever the DN's state (SPEC S3);
//! - while peered, a login here is claimed at the peer, which logs the
//!   agent out there; when peering resumes both sites exchange their logins
//!   and the newer one keeps the agent (`claims.rs`, SPEC S1, S4);
//! - a drain sets every agent NotReady, logs idle ones out at once and busy
//!   ones when their call ends, rejects new calls, and is over when no call
//!   is left or `drain_timeout` passed (SPEC S7).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotsite_core::{Event, EventKind, HealthState, Rng, Target};
use hotsite_sip::message::{
    parse_bytes, response_to, Header, HeaderName, Message, Method, Request, Response, StatusCode,
    Uri,
};
use hotsite_sip::proxy::{warning, Us};
use hotsite_sip::transaction::TransactionConfig;

use crate::agents::{AgentError, AgentState, AgentView, Agents, LogoutReason};
use crate::calls::{CallStats, Calls};
use crate::claims::{Applied, Claim, ClaimBatch, ClaimKind, ClaimSender, ClaimStats};
use crate::config::{DrForward, SiteConfig, SiteConfigError};
use crate::peer::{PeerLink, PeerState, PeerTimers};
use crate::registrar::{Binding, Registrar, RegistrarStats};

/// The header a forwarded call carries: the forwarding site's name. A site
/// never forwards a call that has it (SPEC S1: no loop).
pub const FORWARDED_HEADER: &str = "X-Hotsite-Forwarded-By";

/// The site's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The peer answers: business-continuity forwarding on.
    Peered,
    /// No peer, or the peer is out of service (SPEC S3).
    SingleSite,
    /// Draining (SPEC S7).
    Draining,
}

impl Mode {
    /// As in the API and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Peered => "peered",
            Mode::SingleSite => "single_site",
            Mode::Draining => "draining",
        }
    }
}

/// What the API shows of the site.
#[derive(Debug, Clone)]
pub struct SiteStatus {
    /// This site's name.
    pub name: String,
    /// The mode.
    pub mode: Mode,
    /// The peer's address and state, if one is configured.
    pub peer: Option<(SocketAddr, PeerState)>,
    /// Peer probes sent and answered.
    pub peer_probes: (u64, u64),
    /// Every configured DN: its number, effective dr-forward, bindings.
    pub dns: Vec<(String, DrForward, Vec<Binding>)>,
    /// Every configured agent.
    pub agents: Vec<AgentView>,
    /// Registrar counters.
    pub registrar: RegistrarStats,
    /// Call counters.
    pub calls: CallStats,
    /// Calls held now (ringing or answered and not yet hung up).
    pub active_calls: usize,
    /// When a drain started has to stop at the latest.
    pub drain_deadline: Option<Instant>,
    /// Agent claims to and from the peer.
    pub claims: ClaimStats,
}

/// A small live snapshot of the site, for the desktops' statistics service
/// (SPEC D5): cheap to take, unlike [`SiteStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SiteStats {
    /// Agents logged in at this site.
    pub agents_logged_in: usize,
    /// Agents Ready now.
    pub agents_ready: usize,
    /// Calls for DNs without a final answer yet (ringing or being tried).
    pub calls_waiting: usize,
    /// Answered calls not hung up yet.
    pub calls_active: usize,
}

/// One site.
#[derive(Debug)]
pub struct Site {
    pub(crate) name: String,
    pub(crate) us: Us,
    pub(crate) registrar: Registrar,
    pub(crate) agents: Agents,
    pub(crate) peer: Option<PeerLink>,
    claims: Option<ClaimSender>,
    applied: Applied,
    claims_in: ClaimStats,
    /// An instant and the wall clock's milliseconds then: logins are
    /// compared across sites by wall-clock time (`claims.rs`).
    wall_origin: (Instant, i64),
    pub(crate) calls: Calls,
    pub(crate) dr_forward: DrForward,
    pub(crate) dn_forward: HashMap<String, DrForward>,
    pub(crate) reject_code: u16,
    pub(crate) rng: Rng,
    pub(crate) transmits: VecDeque<(SocketAddr, Bytes)>,
    events: VecDeque<Event>,
    mode: Mode,
    drain_timeout: Duration,
    drain_deadline: Option<Instant>,
    /// `drain_timeout` has passed.
    drain_over: bool,
    pub(crate) dropped: u64,
}

impl Site {
    /// A site from its (valid) config. `seed` makes branches, tags and the
    /// nonce key unique per start.
    pub fn new(config: &SiteConfig, now: Instant, seed: u64) -> Result<Site, SiteConfigError> {
        config.validate()?;
        let public = config
            .public_addr()
            .map_err(|e| issue("site.public_address", e))?;
        let listen = config.listen_addr().map_err(|e| issue("site.listen", e))?;
        let mut rng = Rng::new(seed);
        let mut key = [0u8; 32];
        for chunk in key.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let registrar = Registrar::new(
            now,
            &config.domain,
            config
                .dns
                .iter()
                .map(|dn| (dn.dn.clone(), dn.password.expose().to_owned())),
            config.min_expires,
            config.max_expires,
            key,
        );
        let peer = match config.peer_addr() {
            Some(Ok(addr)) => Some(PeerLink::new(
                now,
                public,
                addr,
                &config.name,
                PeerTimers {
                    check: config.oos_check,
                    force: config.oos_force,
                    rise: config.peer_rise,
                },
                &mut rng,
            )),
            Some(Err(e)) => return Err(issue("site.dr_peer_trunk", e)),
            None => None,
        };
        let tx = TransactionConfig::default();
        let claims = peer
            .as_ref()
            .map(|peer| ClaimSender::new(public, peer.addr(), &config.name));
        Ok(Site {
            name: config.name.clone(),
            us: Us::new(public, listen),
            registrar,
            agents: Agents::new(config.agents.iter().map(|a| a.id.clone()), config.wrap_up),
            peer,
            claims,
            applied: Applied::default(),
            claims_in: ClaimStats::default(),
            wall_origin: (now, 0),
            calls: Calls::new(
                public,
                tx,
                config.invite_timeout,
                config.ring_timeout,
                config.max_calls,
            ),
            dr_forward: config.dr_forward,
            dn_forward: config
                .dns
                .iter()
                .filter_map(|dn| dn.dr_forward.map(|mode| (dn.dn.clone(), mode)))
                .collect(),
            reject_code: config.shutdown_sip_reject_code,
            rng,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            mode: Mode::SingleSite,
            drain_timeout: config.drain_timeout,
            drain_deadline: None,
            drain_over: false,
            dropped: 0,
        })
    }

    /// Sets the wall clock: `wall_ms` (milliseconds since the Unix epoch)
    /// is the time at `now`. Without it, logins compare by time since
    /// start, which only tests may rely on.
    pub fn with_wall_clock(mut self, now: Instant, wall_ms: i64) -> Site {
        self.wall_origin = (now, wall_ms);
        self
    }

    fn wall_ms(&self, at: Instant) -> i64 {
        let (origin, ms) = self.wall_origin;
        if at >= origin {
            ms.saturating_add(at.duration_since(origin).as_millis() as i64)
        } else {
            ms.saturating_sub(origin.duration_since(at).as_millis() as i64)
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether the peer answers (forwarding allowed).
    pub fn peered(&self) -> bool {
        self.mode == Mode::Peered
    }

    /// A drain started and is over: no call left, or its time is up.
    pub fn drained(&self, now: Instant) -> bool {
        self.drain_deadline
            .is_some_and(|deadline| self.calls.active() == 0 || now >= deadline)
    }

    /// The `dr-forward` of `dn`.
    pub fn dr_forward_of(&self, dn: &str) -> DrForward {
        self.dn_forward.get(dn).copied().unwrap_or(self.dr_forward)
    }

    /// A datagram from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: Bytes) {
        let message = match parse_bytes(datagram) {
            Ok(message) => message,
            Err(error) => {
                if error.is_keepalive() {
                    return;
                }
                // A refused request whose headers could be read gets its 400;
                // anything else is dropped (and counted).
                match error.reply(&format!("{:08x}", self.rng.next_u64() as u32)) {
                    Some(reply) => self.send_to(from, reply.to_bytes()),
                    None => self.dropped += 1,
                }
                return;
            }
        };
        match message {
            Message::Request(request) => self.on_request(now, from, request),
            Message::Response(response) => self.on_response(now, from, response),
        }
        self.settle(now);
    }

    fn on_request(&mut self, now: Instant, from: SocketAddr, request: Request) {
        let in_dialog = request.headers.to().is_some_and(|to| to.tag().is_some());
        match request.method {
            Method::Register => {
                let response = self.registrar.handle_register(now, from, &request);
                self.reply_at(from, &request, response);
            }
            Method::Ack => self.on_ack(now, from, request),
            Method::Cancel => self.on_cancel(now, from, request),
            Method::Invite if !in_dialog => self.on_invite(now, from, request),
            Method::Options if !in_dialog && !self.routes_elsewhere(&request) => {
                // Our liveness for the peer's probes: a draining site says 503
                // so that the peer stops forwarding to it (SPEC S7).
                let status = if self.mode == Mode::Draining {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                };
                let mut response = response_to(&request, status, Some("opt"));
                response.headers.push(Header::new(HeaderName::Allow, ALLOW));
                self.reply_at(from, &request, response);
            }
            Method::Extension(_) if request.method.as_str() == "MESSAGE" && !in_dialog => {
                self.on_claims(now, from, &request)
            }
            _ if in_dialog => self.forward_in_dialog(now, from, request),
            _ => {
                let mut response =
                    response_to(&request, StatusCode::METHOD_NOT_ALLOWED, Some("na"));
                response.headers.push(Header::new(HeaderName::Allow, ALLOW));
                self.reply_at(from, &request, response);
            }
        }
    }

    /// An OPTIONS with a Route past us is someone else's (left to the
    /// in-dialog path, which refuses it without a dialog).
    fn routes_elsewhere(&self, request: &Request) -> bool {
        request
            .headers
            .top_route()
            .is_some_and(|route| !self.us.is_uri(&route.uri))
    }

    fn on_response(&mut self, now: Instant, from: SocketAddr, response: Response) {
        if let Some(peer) = &mut self.peer {
            if peer.handle_response(now, &response) {
                return;
            }
        }
        if let Some(claims) = &mut self.claims {
            if claims.handle_response(&response) {
                return;
            }
        }
        self.relay_response(now, from, response);
    }

    /// Sends `response` to the source of `request` (RFC 3581 when asked).
    pub(crate) fn reply_at(&mut self, from: SocketAddr, request: &Request, response: Response) {
        let to = request.headers.top_via().map_or(from, |via| {
            hotsite_sip::proxy::reply_addr(&via, hotsite_sip::proxy::Peer::udp(from)).addr
        });
        self.send_to(to, response.to_bytes());
    }

    /// A final answer made here, with a Warning saying why.
    pub(crate) fn refuse(
        &mut self,
        from: SocketAddr,
        request: &Request,
        status: StatusCode,
        why: &str,
    ) {
        let mut response = response_to(request, status, Some("hsr"));
        response.headers.push(warning("hotsite", why));
        self.reply_at(from, request, response);
    }

    pub(crate) fn send_to(&mut self, to: SocketAddr, bytes: Bytes) {
        self.transmits.push_back((to, bytes));
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.registrar.handle_timeout(now);
        self.agents.handle_timeout(now);
        if let Some(peer) = &mut self.peer {
            peer.handle_timeout(now);
            let rng = &mut self.rng;
            if let Some(probe) = peer.poll_probe(now, rng) {
                let addr = peer.addr();
                self.transmits.push_back((addr, probe));
            }
        }
        if let Some(claims) = &mut self.claims {
            let peer = claims.peer();
            for bytes in claims.handle_timeout(now) {
                self.transmits.push_back((peer, bytes));
            }
        }
        self.calls_timeout(now);
        if self.drain_deadline.is_some_and(|deadline| now >= deadline) {
            self.drain_over = true;
        }
        self.settle(now);
    }

    /// The next deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.registrar.poll_timeout(),
            self.agents.poll_timeout(),
            self.peer.as_ref().map(PeerLink::poll_timeout),
            self.claims.as_ref().and_then(ClaimSender::poll_timeout),
            self.calls.poll_timeout(),
            // Once passed, the drain is over (`drained`): nothing more to wake for.
            self.drain_deadline.filter(|_| !self.drain_over),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A datagram to send.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        self.transmits.pop_front()
    }

    /// An event for the host's stream.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Logs `agent` in on `dn` (SPEC S1, S3).
    pub fn login(&mut self, now: Instant, agent: &str, dn: &str) -> Result<(), AgentError> {
        if !self.agents.is_known(agent) {
            return Err(AgentError::UnknownAgent(agent.to_owned()));
        }
        if !self.registrar.is_known(dn) {
            return Err(AgentError::UnknownDn(dn.to_owned()));
        }
        if self.mode == Mode::Draining {
            return Err(AgentError::Draining);
        }
        if self.mode == Mode::Peered && !self.registrar.in_service(dn) {
            return Err(AgentError::DnOutOfService(dn.to_owned()));
        }
        let fresh = self.agents.since(agent).is_none();
        let result = self.agents.login(now, agent, dn);
        if result.is_ok() && fresh && self.mode == Mode::Peered {
            let since_ms = self.wall_ms(now);
            self.claim(
                now,
                ClaimKind::Fresh,
                vec![Claim {
                    agent: agent.to_owned(),
                    dn: dn.to_owned(),
                    since_ms,
                }],
            );
        }
        self.settle(now);
        result
    }

    /// Ready (true) or NotReady.
    pub fn set_ready(&mut self, now: Instant, agent: &str, ready: bool) -> Result<(), AgentError> {
        if ready && self.mode == Mode::Draining {
            return Err(AgentError::Draining);
        }
        let result = self.agents.set_ready(now, agent, ready);
        self.settle(now);
        result
    }

    /// Logs `agent` out; `reason` is `manual` or `supervisor`.
    pub fn logout(&mut self, now: Instant, agent: &str, reason: &str) -> Result<(), AgentError> {
        let reason = LogoutReason::requested(reason)
            .ok_or_else(|| AgentError::BadReason(reason.to_owned()))?;
        let result = self.agents.logout(agent, reason);
        self.settle(now);
        result
    }

    /// Starts a drain (SPEC S7); a second call changes nothing.
    pub fn drain(&mut self, now: Instant) {
        if self.drain_deadline.is_some() {
            return;
        }
        self.drain_deadline = Some(now + self.drain_timeout);
        self.agents.drain(now);
        self.settle(now);
    }

    /// One agent.
    pub fn agent(&self, now: Instant, id: &str) -> Option<AgentView> {
        self.agents.is_known(id).then(|| self.agents.view(now, id))
    }

    /// Whether `dn`'s phone is registered here (SPEC S8); `None` for a DN
    /// that is not configured.
    pub fn dn_in_service(&self, dn: &str) -> Option<bool> {
        self.registrar
            .is_known(dn)
            .then(|| self.registrar.in_service(dn))
    }

    /// The desktops' live numbers (SPEC D5).
    pub fn stats(&self, now: Instant) -> SiteStats {
        SiteStats {
            agents_logged_in: self.agents.logged_in(),
            agents_ready: self.agents.ready(now),
            calls_waiting: self.calls.waiting(),
            calls_active: self.calls.answered(),
        }
    }

    /// What the API shows.
    pub fn status(&self, now: Instant) -> SiteStatus {
        SiteStatus {
            name: self.name.clone(),
            mode: self.mode,
            peer: self.peer.as_ref().map(|p| (p.addr(), p.state())),
            peer_probes: self.peer.as_ref().map_or((0, 0), PeerLink::counts),
            dns: self
                .registrar
                .list()
                .into_iter()
                .map(|(dn, bindings)| (dn.to_owned(), self.dr_forward_of(dn), bindings.to_vec()))
                .collect(),
            agents: self.agents.list(now),
            registrar: self.registrar.stats(),
            calls: self.calls.stats(),
            active_calls: self.calls.active(),
            drain_deadline: self.drain_deadline,
            claims: {
                let out = self
                    .claims
                    .as_ref()
                    .map(ClaimSender::stats)
                    .unwrap_or_default();
                ClaimStats {
                    received: self.claims_in.received,
                    yielded: self.claims_in.yielded,
                    ..out
                }
            },
        }
    }

    /// Sends claims to the peer (none without one).
    fn claim(&mut self, now: Instant, kind: ClaimKind, claims: Vec<Claim>) {
        let Some(sender) = &mut self.claims else {
            return;
        };
        if claims.is_empty() {
            return;
        }
        let peer = sender.peer();
        for bytes in sender.send(now, kind, claims, &mut self.rng) {
            self.transmits.push_back((peer, bytes));
        }
    }

    /// Every agent logged in here, claimed at the peer (peering resumed).
    fn claim_all(&mut self, now: Instant) {
        let mut claims: Vec<Claim> = self
            .agents
            .logins()
            .map(|(agent, dn, since)| Claim {
                agent: agent.to_owned(),
                dn: dn.to_owned(),
                since_ms: self.wall_ms(since),
            })
            .collect();
        claims.sort_by(|a, b| a.agent.cmp(&b.agent));
        self.claim(now, ClaimKind::Sync, claims);
    }

    /// A `MESSAGE` from the peer claiming agents (SPEC S1, S4).
    fn on_claims(&mut self, now: Instant, from: SocketAddr, request: &Request) {
        if self.claims.as_ref().map(ClaimSender::peer) != Some(from) {
            return self.refuse(
                from,
                request,
                StatusCode::FORBIDDEN,
                "agent claims are taken only from the peer trunk (site.dr_peer_trunk)",
            );
        }
        let content_type = request.headers.value(HeaderName::ContentType);
        if content_type
            .is_none_or(|t| !t.eq_ignore_ascii_case(crate::claims::CONTENT_TYPE.as_bytes()))
        {
            return self.refuse(
                from,
                request,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!(
                    "MESSAGE is taken only with Content-Type {}",
                    crate::claims::CONTENT_TYPE
                ),
            );
        }
        let batch = match ClaimBatch::parse(&request.body) {
            Ok(batch) => batch,
            Err(error) => {
                return self.refuse(from, request, StatusCode::BAD_REQUEST, &error.to_string())
            }
        };
        let call_id = request.headers.call_id().unwrap_or_default();
        if self.applied.first_time(now, call_id) {
            self.claims_in.received += 1;
            for claim in &batch.claims {
                let Some(since) = self.agents.since(&claim.agent) else {
                    continue;
                };
                let ours = (self.wall_ms(since), self.name.as_str());
                // An agent on a call here is logged out when the call ends:
                // the peer's login does not cut a conversation short.
                if crate::claims::yields(batch.kind, ours, (claim.since_ms, &batch.site))
                    && self
                        .agents
                        .logout_when_idle(&claim.agent, LogoutReason::PeerLogin)
                        .is_ok()
                {
                    self.claims_in.yielded += 1;
                    tracing::info!(
                        agent = %claim.agent,
                        peer_site = %batch.site,
                        peer_dn = %claim.dn,
                        kind = ?batch.kind,
                        "agent logged in at the peer: logged out here"
                    );
                }
            }
        }
        let response = response_to(request, StatusCode::OK, Some("clm"));
        self.reply_at(from, request, response);
    }

    /// Applies the cross-cutting rules after any input and turns every
    /// change into an event, in the order they happened.
    fn settle(&mut self, now: Instant) {
        for change in self
            .peer
            .as_mut()
            .map(PeerLink::take_changes)
            .unwrap_or_default()
        {
            let (from, to) = match change.state {
                PeerState::InService => (HealthState::Down, HealthState::Up),
                PeerState::OutOfService => (HealthState::Up, HealthState::Down),
            };
            self.events.push_back(Event {
                at: now,
                target: self.peer_target(),
                kind: EventKind::Health {
                    from,
                    to,
                    cause: change.cause,
                },
            });
        }
        let mode = if self.drain_deadline.is_some() {
            Mode::Draining
        } else if self
            .peer
            .as_ref()
            .is_some_and(|p| p.state() == PeerState::InService)
        {
            Mode::Peered
        } else {
            Mode::SingleSite
        };
        if mode != self.mode {
            let cause = match mode {
                Mode::Draining => "drain requested".to_owned(),
                Mode::Peered => "the peer answers its probes".to_owned(),
                Mode::SingleSite => {
                    "the peer is out of service: forwarding off, no forced logout".to_owned()
                }
            };
            let resumed = mode == Mode::Peered;
            if mode != Mode::Peered {
                // The peer is gone or we are draining: the resync when
                // peering resumes repeats what matters.
                if let Some(claims) = &mut self.claims {
                    claims.clear();
                }
            }
            self.mode = mode;
            if resumed {
                self.claim_all(now);
            }
            self.events.push_back(Event {
                at: now,
                target: self.site_target(),
                kind: EventKind::SiteMode {
                    mode: mode.as_str(),
                    cause,
                },
            });
        }
        for change in self.registrar.take_changes() {
            self.events.push_back(Event {
                at: now,
                target: Target::new(&self.name, &format!("dn/{}", change.dn)),
                kind: EventKind::DnService {
                    dn: change.dn.clone(),
                    in_service: change.in_service,
                    cause: change.cause,
                },
            });
            // SPEC S8 with D6: only peered; in single-site mode the agent
            // stays (SPEC S3).
            if !change.in_service && self.mode == Mode::Peered {
                if let Some(agent) = self.agents.on_dn(&change.dn).map(str::to_owned) {
                    let _ = self.agents.logout(&agent, LogoutReason::DrForceLogout);
                }
            }
        }
        for change in self.agents.take_changes() {
            if change.state == AgentState::LoggedOut {
                if let Some(claims) = &mut self.claims {
                    claims.forget_fresh(&change.agent);
                }
            }
            self.events.push_back(Event {
                at: now,
                target: Target::new(&self.name, &format!("agent/{}", change.agent)),
                kind: EventKind::Agent {
                    agent: change.agent,
                    dn: change.dn,
                    state: change.state.as_str(),
                    reason: change.reason,
                },
            });
        }
        for event in self.calls.take_events() {
            self.events.push_back(event);
        }
    }

    pub(crate) fn site_target(&self) -> Target {
        Target::new(&self.name, "site")
    }

    pub(crate) fn peer_target(&self) -> Target {
        Target::new(
            &self.name,
            &format!(
                "peer/{}",
                self.peer
                    .as_ref()
                    .map_or_else(String::new, |p| p.addr().to_string())
            ),
        )
    }

    /// The Contact of a drain's redirect: the DN at the peer.
    pub(crate) fn peer_contact(&self, dn: &str) -> Option<Uri> {
        let peer = self.peer.as_ref()?;
        Uri::parse(format!("sip:{dn}@{}", peer.addr())).ok()
    }
}

/// The methods this site answers.
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE";

fn issue(key: &str, reason: String) -> SiteConfigError {
    SiteConfigError(vec![hotsite_core::ConfigIssue::new(key, reason)])
}

#[cfg(test)]
mod tests;
