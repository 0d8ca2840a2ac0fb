//! The trunk failover proxy: a transaction-stateful SIP proxy core, sans-IO
//! (SPEC V1–V4).
//!
//! The customer's PBX or SBC sends its outbound calls to hotsite as if hotsite
//! were the carrier; hotsite forwards each INVITE to a trunk of the call's
//! group and, when that trunk fails, to the next one *within the same call
//! attempt* (SPEC V1), so the caller never sees the failure, only a little
//! post-dial delay.
//!
//! # Shape
//!
//! [`Proxy`] owns no socket and reads no clock (DESIGN.md, "Protocol logic is
//! sans-IO"). The driver feeds it [`Proxy::handle_message`] (a UDP datagram
//! or a message framed out of a TCP stream; [`Proxy::handle_datagram`] for
//! UDP), [`Proxy::handle_unreachable`] and [`Proxy::handle_timeout`], and
//! after each call drains [`Proxy::poll_transmit`] (messages and where to
//! send them), [`Proxy::poll_event`] and [`Proxy::poll_timeout`]. Everything
//! one input causes is queued before the call returns: a 503 from trunk 1 and
//! the INVITE to trunk 2 are one `handle_message` apart from nothing.
//!
//! # The INVITE from the caller (no To tag)
//!
//! - A server INVITE transaction (hotsite-sip) answers `100 Trying` at once,
//!   absorbs retransmissions (repeating the last provisional) and, after a
//!   non-2xx final answer, retransmits it until the caller's ACK, which it
//!   absorbs.
//! - The request is forwarded once per attempt (§16.6): Max-Forwards
//!   decremented (483 at zero), a Route naming us consumed, our
//!   `Record-Route: <sip:ADDR;lr>` added so in-dialog requests come back
//!   through us, `received`/`rport` added to the caller's Via when needed, our
//!   Via pushed with a fresh branch, and the datagram sent to the trunk's
//!   address with the Request-URI untouched (like Kamailio's `ds_select_dst`).
//!   A client INVITE transaction per attempt retransmits it (timer A, over UDP
//!   only) and ACKs non-2xx answers hop by hop.
//! - The trunks come from [`Trunks::plan`](crate::routing::Trunks::plan) over
//!   the call's group: the group whose `prefixes` match the Request-URI user
//!   part (longest wins), else the default group; at most `max_attempts`
//!   trunks (SPEC V4 for the order).
//!
//! # Failover within the attempt (SPEC V1)
//!
//! A trunk's 408 or 5xx ([`fails_over`](crate::routing::fails_over)), or no
//! reply at all within `invite_timeout` (Kamailio's `fr_timer`, default 2 s),
//! sends the INVITE to the next trunk of the plan at once, on a new branch.
//! The called party's own answers (486, 404, 603, …) go back to the caller
//! unchanged: trying another carrier would ring the same busy line.
//!
//! Health is learnt *passively* from the calls, narrowly: only an INVITE with
//! no reply at all marks its trunk out of service
//! ([`Trunks::handle_invite_timeout`](crate::routing::Trunks::handle_invite_timeout)),
//! or, over TCP, a connection to it that cannot be opened or breaks
//! ([`Trunks::handle_unreachable`](crate::routing::Trunks::handle_unreachable)),
//! so the next calls skip it at once instead of each waiting `invite_timeout`
//! until the prober notices. A trunk that answered provisionally is alive: if
//! the final answer then does not come within `invite_final_timeout` (ring
//! time, default 120 s), the branch is cancelled and the caller gets 408, and
//! the trunk is *not* marked. (Kamailio marks a destination on every failure
//! route, so a ring timeout on a recovered node knocks it down again: see
//! `peers/sip/README.md`.)
//!
//! When every trunk of the plan failed, the caller gets the last trunk's final
//! answer, or `408` with a `Warning` naming the trunk that did not answer.
//!
//! A branch given up for silence is not retransmitted any more, but kept until
//! its timer B would have fired so late answers still match it: a late
//! provisional is cancelled, a late failure is ACKed and dropped, a late 2xx is
//! relayed to the caller (a proxy never swallows a 2xx; the caller ends the
//! extra dialog).
//!
//! # Answers
//!
//! 18x go back through the server transaction; 100 is hop by hop and stops
//! there. 2xx (and each retransmission of it) is relayed statelessly along the
//! Via, as RFC 6026 asks: the call's state is then dropped at once and only a
//! small tombstone of its key stays for 64·T1 to absorb INVITE
//! retransmissions. Non-2xx finals are ACKed by the client transaction and
//! either trigger the failover or go back through the server transaction.
//!
//! A trunk taken out of service for not answering (its prober, another
//! call's silent INVITE, a refused connection) also moves the calls
//! *ringing* on it, once nothing at all has come from the trunk (on any call,
//! probe or connection) for `invite_timeout`: each is cancelled there and
//! tried on the next trunk of its plan at once. A dead trunk's ringing calls
//! would otherwise wait the whole ring time and fail. A trunk that still
//! answers something keeps them (looked at again when it has been silent
//! that long); so does a call with no trunk left to try, and a trunk out of
//! service only for its registration. This never marks a trunk. If the trunk
//! was alive after all and its 200 crosses the CANCEL, the caller may get
//! two answers (the proxy never swallows a 2xx) and ends one, as with any
//! late 2xx.
//!
//! # Transports
//!
//! Every input and output names its [`Peer`]: UDP or TCP and an address. A
//! request over TCP is answered on its connection (§18.2.2: its Via gets
//! `received` and `rport` with the connection's port, so a 2xx relayed along
//! the Via later finds it too) and our Record-Route then says
//! `transport=tcp`; trunks are reached over their configured transport, with
//! our Via naming it; transactions over TCP are not retransmitted and their
//! wait states last zero (hotsite-sip's `reliable`). In-dialog requests go over
//! the next hop URI's `transport` parameter, else a trunk's own transport at a
//! trunk's address, else UDP. When the driver cannot reach a trunk (a TCP
//! connection refused, timed out or broken: [`Proxy::handle_unreachable`]),
//! the calls trying it move on at once and it is marked like a silent trunk.
//!
//! # CANCEL
//!
//! The caller's CANCEL gets 200 at once and stops the failover. The current
//! branch is cancelled once it has had a provisional (§9.1 forbids earlier);
//! before that the CANCEL waits for the first provisional, or the branch is
//! given up at its `invite_timeout` and the caller gets 487 from us. The
//! trunk's 487 goes back to the caller. A CANCEL matching no call gets 481.
//!
//! # In-dialog requests (To tag present) and their responses
//!
//! Forwarded statelessly by loose routing (§16.4, §16.12): the top Route must
//! name us and is removed; the request goes to the next Route, or to the
//! Request-URI, whose host must be an IP literal (nothing is resolved: a name
//! gets 404, or is dropped for an ACK). Our Via's branch is a hash of the
//! incoming top Via (§16.11), so retransmissions keep their branch. A request
//! with a To tag and no Route naming us is not ours to route: 481, ACKs
//! dropped. An ACK matching a call's INVITE transaction (a non-2xx was
//! answered) is absorbed there instead. Responses matching no transaction are
//! relayed statelessly: our Via (checked to be ours) is popped and the
//! response goes to the next Via's `received`/`rport` or sent-by.
//!
//! # Media anchoring
//!
//! For a group with `media = "anchor"` the SDP of its calls is rewritten so
//! RTP and RTCP pass through hotsite (`crate::media`; where and when:
//! `media.rs`). The media session is keyed by Call-ID and outlives the
//! call's transaction state (dropped at the 2xx, above): it lives until a
//! BYE, a final non-2xx or CANCEL, or the relay's media timeout. Direct
//! groups' messages are untouched.
//!
//! # Everything else
//!
//! - OPTIONS outside a dialog is answered 200 by the proxy itself, whatever its
//!   Request-URI: the proxy routes only INVITE outside dialogs, so an OPTIONS
//!   sent to it is a health check of hotsite. Other out-of-dialog requests get
//!   405 with `Allow`.
//! - Trunk health (SPEC V2): one hotsite-sip
//!   [`Prober`](hotsite_sip::prober::Prober) per probed trunk and one
//!   [`RegisterClient`](hotsite_sip::register::RegisterClient) per registration-based trunk share the socket;
//!   their requests leave through [`Proxy::poll_transmit`], answers to them
//!   are recognised by CSeq method and branch, and their health changes feed
//!   [`Trunks`]. Every change of a trunk's service
//!   state is a [`ProxyEvent::Trunk`].
//! - Malformed datagrams: a request whose Via, From, To, Call-ID and CSeq
//!   could be read gets 400 (or 505) naming the problem in the reason phrase
//!   and a `Warning`, sent back to the source address; anything else is
//!   dropped and counted. Nothing panics on input.
//!
//! # Memory
//!
//! State lives in maps keyed by branch (client side) and by call, and is
//! removed as soon as its transaction ends: a branch when its client
//! transaction is over, a call when its server transaction is, a successful
//! call at its 2xx. Deadlines live in one lazy heap (`timers.rs`). A call holds
//! the caller's INVITE once (headers are slices of the datagram it came in)
//! plus one copy per attempt with our Via.
//!
//! At most `max_calls` calls are held: past it a new INVITE is answered 503
//! with `Retry-After` statelessly (DESIGN.md invariant 6). After a burst the
//! tables are cut down and regrown, and [`Proxy::take_released`] tells the
//! driver the burst's memory can go back to the OS (`limits.rs`).
//!
//! # Not yet
//!
//! TLS; RFC 3261 §18.2.2's fallback to the sent-by port for a response whose
//! TCP connection is gone (it is dropped); DNS names for next hops; strict routers (§16.4's Request-URI
//! rewrite, §16.12's `lr`-less next hop, both treated as loose routers);
//! forking to several trunks at once; PRACK-aware reliability of provisionals
//! (PRACK is forwarded like any in-dialog request).

mod dialog;
mod health;
mod invite;
mod limits;
mod media;
mod timers;
mod trunk;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotsite_core::{Event, HealthState, Rng, Secret};
use hotsite_sip::message::{
    parse_bytes, response_to, Header, HeaderName, Message, Method, ParseError, Request, StatusCode,
    Uri, Via,
};
use hotsite_sip::proxy::{self as wire, ServerKey, Us};
use hotsite_sip::transaction::TransactionConfig;

use crate::media::{MediaSessions, MediaSetup};
use crate::routing::{Cause, Distribution, TrunkSpec, Trunks};

use self::invite::{Branch, Call};
use self::timers::{TimerRef, Timers};
use self::trunk::ProxyTrunk;

pub use self::limits::{COMPACT_EVERY, WARN_EVERY};
pub use self::media::{MediaMode, MediaTimeout};
pub use hotsite_sip::proxy::{Peer, Transmit, Transport};

/// What the proxy core needs to run; built from `[voice]` by
/// [`VoiceConfig::proxy_config`](crate::config::VoiceConfig::proxy_config).
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Our address in Via, Record-Route and probes (the public address).
    pub address: SocketAddr,
    /// The address the socket is bound to (a Route naming it is ours too).
    pub listen: SocketAddr,
    /// The trunks.
    pub trunks: Vec<TrunkSetup>,
    /// The trunk groups (at least one).
    pub groups: Vec<GroupSetup>,
    /// The group for calls no group's prefixes match.
    pub default_group: usize,
    /// No reply at all within this → next trunk, trunk marked (SPEC V1, V2).
    pub invite_timeout: Duration,
    /// After a provisional, the final answer must come within this.
    pub invite_final_timeout: Duration,
    /// RFC 3261 T1.
    pub t1: Duration,
    /// How long a passive mark holds a trunk without a prober.
    pub passive_hold: Duration,
    /// Calls held at once at most; an INVITE beyond gets 503 with
    /// `Retry-After` and leaves no state (DESIGN.md invariant 6).
    pub max_calls: usize,
    /// The `Retry-After` of that 503 (whole seconds are sent, at least 1).
    pub retry_after: Duration,
    /// Entries the state maps and the timer queue are sized for at start, and
    /// never shrunk below ([`INITIAL_CAPACITY`] from config; tests use less).
    pub initial_capacity: usize,
    /// The media relay's address, ports and timers; `Some` when a group
    /// anchors media (`media.rs`).
    pub media: Option<MediaSetup>,
}

/// One trunk.
#[derive(Debug, Clone)]
pub struct TrunkSetup {
    /// What the routing policy knows of it.
    pub spec: TrunkSpec,
    /// Where its INVITEs and probes go.
    pub address: SocketAddr,
    /// Over what (its probes and REGISTERs too).
    pub transport: Transport,
    /// OPTIONS probing, if any.
    pub probe: Option<ProbeSetup>,
    /// Registration, if it is registration-based.
    pub register: Option<RegisterSetup>,
}

/// How a trunk is probed (SPEC V2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSetup {
    /// Between probes.
    pub interval: Duration,
    /// A probe's time to answer.
    pub timeout: Duration,
    /// Failures that take the trunk down.
    pub fall: u32,
    /// Successes that bring it back.
    pub rise: u32,
    /// Only 2xx counts as alive.
    pub only_2xx: bool,
}

/// How a registration-based trunk registers (SPEC V2).
#[derive(Debug, Clone)]
pub struct RegisterSetup {
    /// The REGISTER Request-URI.
    pub registrar: Uri,
    /// User name (address of record and Digest).
    pub user: String,
    /// Digest password.
    pub password: Secret,
    /// Binding lifetime asked for.
    pub expires: Duration,
    /// Where REGISTERs go.
    pub address: SocketAddr,
}

/// One trunk group.
#[derive(Debug, Clone)]
pub struct GroupSetup {
    /// Its name.
    pub name: String,
    /// Sequential or random (SPEC V4).
    pub distribution: Distribution,
    /// Trunk indexes.
    pub trunks: Vec<usize>,
    /// Trunks per call at most.
    pub max_attempts: usize,
    /// Request-URI user prefixes that select it.
    pub prefixes: Vec<String>,
    /// Whether its calls' media is anchored (`media.rs`).
    pub media: MediaMode,
}

/// A trunk as events and status name it, with its regions (SPEC V3: reports
/// carry both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkRef {
    /// Index in the configuration.
    pub index: usize,
    /// Name.
    pub name: Arc<str>,
    /// Carrier.
    pub carrier: Arc<str>,
    /// Media region.
    pub media_region: Arc<str>,
    /// Failover region.
    pub failover_region: Arc<str>,
}

/// What the proxy reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ProxyEvent {
    /// A trunk went out of or back into service (SPEC V2), with its cause.
    Trunk(Event),
    /// A call moved to the next trunk within its attempt (SPEC V1).
    Failover(CallFailover),
    /// A call got its final answer (for metrics and reports).
    CallEnded(CallEnded),
    /// An anchored call's media timed out and was released (its
    /// signalling is left alone).
    MediaTimeout(MediaTimeout),
}

/// One failover of one call (SPEC V1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailover {
    /// When.
    pub at: Instant,
    /// The call.
    pub call_id: String,
    /// The trunk that failed.
    pub from: TrunkRef,
    /// The trunk tried next.
    pub to: TrunkRef,
    /// What the failed trunk did (`503 Service Unavailable`, `no reply within 2.0 s`).
    pub cause: String,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// A trunk answered 2xx.
    Answered,
    /// The called side refused (486, 404, 603, …): no failover.
    Rejected,
    /// Every trunk tried failed (5xx, 408, no reply).
    Failed,
    /// The caller cancelled.
    Cancelled,
    /// A trunk rang but gave no final answer within `invite_final_timeout`.
    RingTimeout,
}

/// A call's final answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEnded {
    /// When.
    pub at: Instant,
    /// The call.
    pub call_id: String,
    /// Its trunk group.
    pub group: Arc<str>,
    /// The trunk that gave (or failed to give) the answer; none if no trunk
    /// was tried.
    pub trunk: Option<TrunkRef>,
    /// The status sent to the caller.
    pub status: u16,
    /// How it ended.
    pub outcome: CallOutcome,
    /// Trunks tried.
    pub attempts: u32,
    /// From the INVITE to the final answer.
    pub setup_time: Duration,
}

/// Counters since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Datagrams handled.
    pub datagrams: u64,
    /// New calls (INVITEs that started a server transaction).
    pub calls: u64,
    /// Calls answered 2xx.
    pub answered: u64,
    /// Calls refused by the called side.
    pub rejected: u64,
    /// Calls every trunk failed.
    pub failed: u64,
    /// Calls cancelled by the caller.
    pub cancelled: u64,
    /// Calls ended by the ring timeout.
    pub ring_timeouts: u64,
    /// Moves to the next trunk within a call (SPEC V1).
    pub failovers: u64,
    /// INVITEs with no reply at all within `invite_timeout`.
    pub invite_timeouts: u64,
    /// Ringing calls moved to the next trunk because theirs stopped answering.
    pub ringing_rerouted: u64,
    /// Trunk service state changes (SPEC V2).
    pub trunk_state_changes: u64,
    /// Retransmitted INVITEs absorbed.
    pub retransmissions_absorbed: u64,
    /// ACKs for non-2xx answers absorbed.
    pub acks_absorbed: u64,
    /// In-dialog requests forwarded.
    pub in_dialog_forwarded: u64,
    /// Responses relayed statelessly (2xx to INVITE, in-dialog answers).
    pub responses_relayed: u64,
    /// Answers the proxy made itself without a transaction (OPTIONS, CANCEL,
    /// 400, 404, 405, 481, 483).
    pub local_replies: u64,
    /// Datagrams that did not parse.
    pub malformed: u64,
    /// Datagrams dropped (malformed with nothing to answer, stray responses,
    /// ACKs with nowhere to go).
    pub dropped: u64,
    /// CRLF keep-alives.
    pub keepalives: u64,
    /// New INVITEs answered 503 because `max_calls` calls were held
    /// (retransmissions of a refused INVITE count again: each is refused).
    pub refused_over_capacity: u64,
}

/// Per-trunk counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrunkStats {
    /// INVITEs sent to it (first transmissions).
    pub attempts: u64,
    /// Calls it answered 2xx.
    pub answered: u64,
    /// Calls that left it for the next trunk.
    pub failed_over: u64,
    /// INVITEs it did not reply to within `invite_timeout`.
    pub no_reply: u64,
}

/// One trunk's state, for `hotsite status` and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkStatus {
    /// Name, carrier and regions.
    pub trunk: TrunkRef,
    /// Where it is.
    pub address: SocketAddr,
    /// Over what.
    pub transport: Transport,
    /// Whether calls go to it.
    pub in_service: bool,
    /// Since when.
    pub since: Instant,
    /// Why it is out of service (empty when in service).
    pub causes: Vec<Cause>,
    /// The last change's cause, in words.
    pub detail: String,
    /// The prober's view, if probed.
    pub probe: Option<HealthState>,
    /// Whether registered, if registration-based.
    pub registered: Option<bool>,
    /// Its counters.
    pub stats: TrunkStats,
}

/// How much state the proxy holds, for tests and gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Calls with a live server transaction.
    pub calls: usize,
    /// Client INVITE transactions (branches).
    pub branches: usize,
    /// Keys of answered calls kept to absorb INVITE retransmissions.
    pub tombstones: usize,
    /// Queued deadlines, stale ones included.
    pub timers: usize,
    /// Room in the largest of the state maps and queues (entries): back to
    /// the initial size a little after a burst has ended.
    pub capacity: usize,
}

/// Entries the state maps and the timer queue are sized for at start.
///
/// A completed branch and a call's tombstone stay 64·T1 (32 s), so 2,000
/// calls/s that fail over hold ≈ 64,000 of each. Growing a map past a power
/// of two rehashes every entry in one step: measured at 12.6 ms at ≈ 56,000
/// branches (benches/failover.rs, `latency_from_start`), over the 5 ms the
/// issue allows a failover. Sized up front (≈ 8 MB), the proxy meets that
/// load without growing; beyond it the maps grow as usual, and shrink back
/// to this size when the burst is over (`limits.rs`).
pub const INITIAL_CAPACITY: usize = 65_536;

/// The proxy core. See the module docs.
pub struct Proxy {
    us: Us,
    agent: String,
    /// `SIP/2.0/UDP ADDR;branch=` and the same for TCP, by [`Transport`].
    via_prefix: [Bytes; 2],
    /// Our Record-Route, plain and with `transport=tcp` (for TCP callers).
    record_route: [Bytes; 2],
    to_tag: String,
    tx_config: TransactionConfig,
    invite_timeout: Duration,
    invite_final_timeout: Duration,
    /// The routing policy: which trunks are in service, call plans.
    trunks: Trunks,
    /// Everything else kept per trunk, by trunk index (`trunk.rs`).
    per_trunk: Vec<ProxyTrunk>,
    /// Trunk by address (its own and its registrar's).
    trunk_index: HashMap<SocketAddr, usize>,
    groups: Vec<GroupSetup>,
    group_names: Vec<Arc<str>>,
    default_group: usize,
    rng: Rng,
    next_call: u64,
    // Boxed: a call is ≈700 bytes and a branch ≈950; unboxed, growing a map
    // past ≈56k live branches moved ≈50 MB in one go (a 70 ms stall measured
    // by benches/failover.rs), boxed it moves 40-byte entries.
    calls: HashMap<u64, Box<Call>>,
    call_keys: HashMap<ServerKey, u64>,
    branches: HashMap<Bytes, Box<Branch>>,
    tombstones: HashSet<ServerKey>,
    tombstone_queue: VecDeque<(Instant, ServerKey)>,
    timers: Timers,
    /// Trunks just taken out of service for not answering, whose ringing
    /// calls [`Proxy::reroute_ringing`] looks at before the input's handling
    /// ends.
    stopped_answering: Vec<usize>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ProxyEvent>,
    stats: ProxyStats,
    /// The call cap, its refusal and the shrinking of the state after a
    /// burst (`limits.rs`).
    limits: limits::Limits,
    /// The anchored calls' media, when a group anchors (`media.rs`).
    media: Option<MediaSessions>,
}

impl Proxy {
    /// A proxy for `config`, starting at `now`. `seed` makes branches, tags and
    /// random plans; it must differ between processes (the driver seeds it
    /// from the clock and the process id). Probers and registrations start at
    /// once: their first requests are waiting in [`Proxy::poll_transmit`].
    pub fn new(config: ProxyConfig, seed: u64, now: Instant) -> Proxy {
        let mut rng = Rng::new(seed);
        let address = config.address;
        let tx_config = TransactionConfig {
            t1: config.t1,
            t2: TransactionConfig::default().t2.max(config.t1),
            ..TransactionConfig::default()
        };
        // Probers and registrations are added by `start_health`.
        let per_trunk = config
            .trunks
            .iter()
            .enumerate()
            .map(|(index, t)| ProxyTrunk {
                trunk_ref: TrunkRef {
                    index,
                    name: t.spec.name.as_str().into(),
                    carrier: t.spec.carrier.as_str().into(),
                    media_region: t.spec.media_region.as_str().into(),
                    failover_region: t.spec.failover_region.as_str().into(),
                },
                peer: Peer {
                    transport: t.transport,
                    addr: t.address,
                },
                heard_at: now,
                stats: TrunkStats::default(),
                prober: None,
                registration: None,
            })
            .collect();
        let trunks = Trunks::new(
            config.trunks.iter().map(|t| t.spec.clone()).collect(),
            config.passive_hold,
            now,
        );
        let limits = limits::Limits::new(&config, now);
        let mut proxy = Proxy {
            us: Us::new(address, config.listen),
            agent: address.to_string(),
            via_prefix: [
                Bytes::from(format!("SIP/2.0/UDP {address};branch=")),
                Bytes::from(format!("SIP/2.0/TCP {address};branch=")),
            ],
            record_route: [
                Bytes::from(format!("<sip:{address};lr>")),
                Bytes::from(format!("<sip:{address};transport=tcp;lr>")),
            ],
            to_tag: format!("hs{:012x}", rng.next_u64() >> 16),
            tx_config,
            invite_timeout: config.invite_timeout,
            invite_final_timeout: config.invite_final_timeout,
            trunks,
            trunk_index: config
                .trunks
                .iter()
                .enumerate()
                .flat_map(|(index, t)| {
                    let registrar = t.register.as_ref().map(|r| (r.address, index));
                    std::iter::once((t.address, index)).chain(registrar)
                })
                .collect(),
            per_trunk,
            group_names: config
                .groups
                .iter()
                .map(|g| g.name.as_str().into())
                .collect(),
            default_group: config
                .default_group
                .min(config.groups.len().saturating_sub(1)),
            groups: config.groups,
            next_call: 1,
            calls: HashMap::with_capacity(config.initial_capacity),
            call_keys: HashMap::with_capacity(config.initial_capacity),
            branches: HashMap::with_capacity(config.initial_capacity),
            tombstones: HashSet::with_capacity(config.initial_capacity),
            tombstone_queue: VecDeque::with_capacity(config.initial_capacity),
            timers: Timers::with_capacity(config.initial_capacity),
            stopped_answering: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: ProxyStats::default(),
            limits,
            rng,
            media: config.media.map(MediaSessions::new),
        };
        proxy.start_health(&config.trunks, now);
        proxy
    }

    /// One UDP datagram from `from`: [`Proxy::handle_message`] over UDP.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: Bytes) {
        self.handle_message(now, Peer::udp(from), datagram);
    }

    /// One message from `from`: a UDP datagram, or one message framed out of
    /// a TCP stream (hotsite-sip's `frame_len`). Whatever it causes is queued
    /// before this returns (transmits, events, timers).
    pub fn handle_message(&mut self, now: Instant, from: Peer, message: Bytes) {
        self.stats.datagrams += 1;
        if let Some(&trunk) = self.trunk_index.get(&from.addr) {
            self.per_trunk[trunk].heard_at = now;
        }
        match parse_bytes(message) {
            Ok(Message::Request(request)) => self.on_request(now, from, request),
            Ok(Message::Response(response)) => self.on_response(now, response),
            Err(error) => self.on_malformed(from, &error),
        }
        self.reroute_ringing(now);
    }

    /// Fires every deadline due at `now`: retransmissions, `invite_timeout`,
    /// ring timeouts, transaction ends, probes and registrations.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, _)) = self.tombstone_queue.front() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.tombstone_queue.pop_front() {
                self.tombstones.remove(&key);
            }
        }
        while let Some((at, owner)) = self.timers.pop_due(now) {
            match owner {
                TimerRef::Call(id) => {
                    if let Some(call) = self.calls.get_mut(&id) {
                        if call.scheduled == Some(at) {
                            call.scheduled = None;
                            self.drive_call(now, id, true);
                        }
                    }
                }
                TimerRef::Branch(id) => {
                    if let Some(branch) = self.branches.get_mut(&id) {
                        if branch.scheduled == Some(at) {
                            branch.scheduled = None;
                            self.drive_branch(now, &id, true);
                        }
                    }
                }
            }
        }
        self.trunks.handle_timeout(now);
        if let Some(media) = &mut self.media {
            media.handle_timeout(now);
        }
        self.drain_trunk_events();
        self.drive_health(now, true);
        self.reroute_ringing(now);
        self.compact_if_due(now);
    }

    /// The next message to send and where. Changes after every
    /// `handle_message`, `handle_unreachable` and `handle_timeout`.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<ProxyEvent> {
        self.events.pop_front()
    }

    /// When [`Proxy::handle_timeout`] must be called next (possibly a little
    /// early: then it finds nothing due).
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.timers.peek(),
            self.tombstone_queue.front().map(|(at, _)| *at),
            self.trunks.poll_timeout(),
            self.health_timeout(),
            Some(self.limits.next_compact),
            self.media.as_ref().and_then(MediaSessions::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The driver could not deliver to `to`: over TCP, the connection could
    /// not be opened or broke while sending (`reason` says which, for the
    /// trunk's status). If `to` is a trunk, the calls trying it move to their
    /// next trunk at once, it is marked out of service (SPEC V1, V2), and its
    /// probe or REGISTER in flight fails. Other peers (a caller that hung up
    /// its connection) need nothing: their transactions time out.
    pub fn handle_unreachable(&mut self, now: Instant, to: Peer, reason: &str) {
        if let Some(trunk) = self.per_trunk.iter().position(|state| state.peer == to) {
            self.trunk_unreachable(now, trunk, reason);
            if let Some(prober) = &mut self.per_trunk[trunk].prober {
                prober.handle_transport_error(now, 0);
            }
        }
        // Registrars may live at another address than their trunk.
        let registrations = self.per_trunk.iter_mut().filter_map(|state| {
            state
                .registration
                .as_mut()
                .filter(|registration| registration.address == to)
        });
        for registration in registrations {
            registration.client.handle_transport_error(now);
        }
        self.drive_health(now, false);
        self.reroute_ringing(now);
    }

    /// Removes every registration (REGISTER with Expires: 0); the requests are
    /// in [`Proxy::poll_transmit`]. For a clean shutdown.
    pub fn unregister_all(&mut self, now: Instant) {
        let registrations = self
            .per_trunk
            .iter_mut()
            .filter_map(|state| state.registration.as_mut());
        for registration in registrations {
            registration.client.unregister(now);
        }
        self.drive_health(now, false);
    }

    /// Counters since the start.
    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }

    /// How much state is held.
    pub fn sizes(&self) -> Sizes {
        Sizes {
            calls: self.calls.len(),
            branches: self.branches.len(),
            tombstones: self.tombstones.len(),
            timers: self.timers.len(),
            capacity: self.capacities().into_iter().max().unwrap_or(0),
        }
    }

    /// The trunk table (routing policy and state).
    pub fn trunks(&self) -> &Trunks {
        &self.trunks
    }

    /// Every trunk's state and counters.
    pub fn trunk_status(&self) -> Vec<TrunkStatus> {
        (0..self.trunks.len())
            .map(|index| {
                let state = self.trunks.state(index);
                let trunk = &self.per_trunk[index];
                TrunkStatus {
                    trunk: trunk.trunk_ref.clone(),
                    address: trunk.peer.addr,
                    transport: trunk.peer.transport,
                    in_service: state.in_service,
                    since: state.since,
                    causes: state.causes,
                    detail: state.detail,
                    probe: trunk.prober.as_ref().and_then(|prober| prober.health(0)),
                    registered: trunk
                        .registration
                        .as_ref()
                        .map(|registration| registration.client.is_registered()),
                    stats: trunk.stats,
                }
            })
            .collect()
    }

    fn on_request(&mut self, now: Instant, from: Peer, request: Request) {
        // The parser checked Via, From and To: these views answer.
        let Some(via) = request.headers.top_via() else {
            self.stats.dropped += 1;
            return;
        };
        let to_tag = request
            .headers
            .to()
            .is_some_and(|to| to.tag().is_some_and(|tag| !tag.is_empty()));
        match request.method {
            Method::Invite if !to_tag => self.on_invite(now, from, request, via),
            Method::Cancel => self.on_cancel(now, from, request, via),
            Method::Ack => {
                if !self.absorb_ack(now, &request, &via) {
                    self.forward_in_dialog(now, from, request, via);
                }
            }
            Method::Options if !to_tag => {
                self.reply(from, &request, &via, StatusCode::OK, None);
            }
            _ if to_tag => self.forward_in_dialog(now, from, request, via),
            _ => {
                let text = format!(
                    "this proxy routes only INVITE outside a dialog, not {}",
                    request.method
                );
                self.reply(
                    from,
                    &request,
                    &via,
                    StatusCode::METHOD_NOT_ALLOWED,
                    Some(&text),
                );
            }
        }
    }

    fn on_response(&mut self, now: Instant, response: hotsite_sip::message::Response) {
        let (Some(via), Some(cseq)) = (response.headers.top_via(), response.headers.cseq()) else {
            self.stats.dropped += 1;
            return;
        };
        if let Some(branch) = &via.branch {
            if let Some(branch) = self
                .branches
                .get_key_value(&branch[..])
                .map(|(k, _)| k.clone())
            {
                match cseq.method {
                    Method::Invite => self.on_branch_response(now, &branch, response),
                    Method::Cancel => self.on_cancel_response(now, &branch, response),
                    _ => self.stats.dropped += 1,
                }
                return;
            }
        }
        let claimed = match cseq.method {
            Method::Options => self.offer_probe_response(now, &response),
            Method::Register => self.offer_register_response(now, &response),
            _ => false,
        };
        if !claimed {
            self.relay_response(now, response, &via, &cseq.method);
        }
    }

    fn on_malformed(&mut self, from: Peer, error: &ParseError) {
        if error.is_keepalive() {
            self.stats.keepalives += 1;
            return;
        }
        self.stats.malformed += 1;
        match error.reply(&self.to_tag) {
            Some(mut response) => {
                response
                    .headers
                    .push(wire::warning(&self.agent, &error.to_string()));
                let bytes = response.to_bytes();
                // The answer echoes Via, From, To, Call-ID and CSeq as they
                // came; if they cannot be read back, neither can the sender.
                if parse_bytes(bytes.clone()).is_err() {
                    tracing::debug!(%from, %error, "malformed request dropped: its answer would not parse");
                    self.stats.dropped += 1;
                    return;
                }
                tracing::debug!(%from, %error, "malformed request answered {}", response.status);
                self.stats.local_replies += 1;
                // The Via may be what is broken: answer the source address.
                self.send(from, bytes);
            }
            None => {
                tracing::debug!(%from, %error, "malformed datagram dropped");
                self.stats.dropped += 1;
            }
        }
    }

    /// Answers a request ourselves, without a transaction (nothing for ACK).
    fn reply(
        &mut self,
        from: Peer,
        request: &Request,
        via: &Via,
        status: StatusCode,
        warning: Option<&str>,
    ) {
        self.reply_to(wire::reply_addr(via, from), request, status, warning);
    }

    fn reply_to(
        &mut self,
        addr: Peer,
        request: &Request,
        status: StatusCode,
        warning: Option<&str>,
    ) {
        if request.method == Method::Ack {
            return;
        }
        let mut response = response_to(request, status, Some(&self.to_tag));
        if let Some(text) = warning {
            response.headers.push(wire::warning(&self.agent, text));
        }
        if status == StatusCode::METHOD_NOT_ALLOWED || request.method == Method::Options {
            response.headers.push(Header::new(
                HeaderName::Allow,
                Bytes::from_static(b"INVITE, ACK, CANCEL, BYE, OPTIONS"),
            ));
        }
        self.stats.local_replies += 1;
        self.send(addr, response.to_bytes());
    }

    fn send(&mut self, to: Peer, bytes: Bytes) {
        self.transmits.push_back(Transmit { to, bytes });
    }

    /// Our Via up to the branch value, for a message sent over `transport`.
    fn via_prefix(&self, transport: Transport) -> &Bytes {
        &self.via_prefix[transport as usize]
    }

    /// The transaction timers for `transport` (no retransmissions over TCP).
    fn tx_config_for(&self, transport: Transport) -> TransactionConfig {
        TransactionConfig {
            reliable: transport.is_reliable(),
            ..self.tx_config
        }
    }

    fn drain_trunk_events(&mut self) {
        while let Some(event) = self.trunks.poll_event() {
            self.stats.trunk_state_changes += 1;
            tracing::info!(%event, "trunk state");
            self.events.push_back(ProxyEvent::Trunk(event));
        }
    }

    /// The group for a Request-URI: longest matching prefix of its user part,
    /// else the default group.
    fn select_group(&self, uri: &Uri) -> usize {
        if self.groups.iter().all(|g| g.prefixes.is_empty()) {
            return self.default_group;
        }
        let user: Option<Bytes> = match uri.sip() {
            Some(sip) => sip.user,
            None if uri.scheme().eq_ignore_ascii_case("tel") => {
                let bytes = uri.as_bytes();
                let start = bytes.iter().position(|&b| b == b':').map_or(0, |i| i + 1);
                let end = bytes[start..]
                    .iter()
                    .position(|&b| b == b';')
                    .map_or(bytes.len(), |i| start + i);
                Some(bytes.slice(start..end))
            }
            None => None,
        };
        let Some(user) = user else {
            return self.default_group;
        };
        let mut best: Option<(usize, usize)> = None;
        for (index, group) in self.groups.iter().enumerate() {
            for prefix in &group.prefixes {
                if user.starts_with(prefix.as_bytes())
                    && best.is_none_or(|(_, len)| prefix.len() > len)
                {
                    best = Some((index, prefix.len()));
                }
            }
        }
        best.map_or(self.default_group, |(index, _)| index)
    }
}
