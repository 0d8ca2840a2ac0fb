//! The anchored calls, keyed by Call-ID, as the proxy core sees them:
//! their ports, their SDP both ways, their hold state. Sans-IO: the proxy
//! feeds SDP bodies and call events in, and the driver drains
//! [`MediaOutput`]s (binds, sockets to hand to a call's relay task, far-end
//! addresses, reports for the tap).
//!
//! # Rewriting follows the direction, not the offer/answer role
//!
//! An SDP from leg a (the caller) goes to leg b with our b-side ports in it
//! (the trunk sends there), and tells us where leg a's media goes; an SDP
//! from leg b goes to leg a with our a-side ports. That holds for an offer
//! and an answer alike, so every order works the same way: the INVITE's
//! offer and the 18x/2xx answer, a late offer (an INVITE without SDP: the
//! 2xx carries the trunk's offer and the ACK the caller's answer), re-INVITEs
//! and UPDATEs from either side and their answers. A body equal to the last
//! one from the same leg is rewritten from a cache, identically (2xx
//! retransmissions), and not reported again.
//!
//! # Streams
//!
//! Stream `i` is m-line `i`. A stream gets two port pairs (one per leg) the
//! first time an SDP has a port for it, at most [`MAX_STREAMS`] per call.
//! The INVITE's offer must get all of them (else 503) and may not have more
//! active streams than that (else 488); a later SDP whose new stream finds
//! no pair, or is one too many, has it declined (port 0), which the other
//! side answers with port 0 too. An INVITE without SDP gets one stream at
//! once, so a late offer finds its ports.
//!
//! # Hold
//!
//! From the SDP only (SPEC R5): the call is on hold while the last SDP from
//! either leg says `sendonly`, `recvonly` or `inactive` (a hold offer and its
//! answer both do; a resume offer and its answer both say `sendrecv`).
//!
//! # Offers that are refused
//!
//! An offer in an in-dialog INVITE or UPDATE ([`SdpRole::Offer`]) is
//! applied at once (the rewritten SDP must go on, and media may follow the
//! new addresses before the answer), but what the leg had before it is
//! kept as that leg's *pending* offer. The 2xx to the request, or an SDP
//! answer from the other leg, commits it; a non-2xx final answer (488,
//! 491 glare, 500, …: [`MediaSessions::offer_refused`]) restores what the
//! leg had: its addresses, its direction, the hold state, the stream
//! protocols, and, if the refused offer was reported to the tap, a new
//! `Sdp` report with the restored payload types and direction (SPEC R5: a
//! refused `sendonly` re-INVITE is not a hold, and the merge must not take
//! the later silence for one).
//!
//! # SRTP
//!
//! Anchored calls are recorded, and SRTP payloads cannot be (SPEC R1,
//! R2): an INVITE or in-dialog offer with a secure profile or `a=crypto` is
//! refused ([`AnchorError::Srtp`], a 488). An SRTP answer cannot be refused:
//! it is anchored, counted (`srtp_unrecordable`) and reported with its
//! payload type names prefixed `SRTP/`, which the merge lists as
//! undecodable rather than decode.
//!
//! # Life
//!
//! [`MediaSessions::open`] at the INVITE; [`MediaSessions::attempt`] when it
//! goes to a trunk (the first time the call is *anchored*, reported to the
//! tap; a failover forgets what the previous trunk's SDP said and is
//! reported as [`MediaOutput::Moved`], as is a 2xx from another trunk than
//! the last one tried, [`MediaSessions::answered_by`]: SPEC V3, the
//! recording names the trunk that carried the call); released by
//! [`MediaSessions::release`] (BYE, a final non-2xx, CANCEL) or by the relay
//! task's media timeout ([`MediaSessions::handle_ended`]). The ports go back
//! to the pool when the task reports its sockets closed.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::call::{Protocol, RelayTimers};
use super::ports::{PortCounts, PortPool};
use super::sdp::{rewrite, Sdp, SdpError};
use super::tap::{Leg, MediaDirection, MediaEnd};
use super::MAX_STREAMS;

/// `[voice.media]`, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSetup {
    /// Bound, and written into every anchored SDP.
    pub address: IpAddr,
    /// The port range's first port.
    pub first_port: u16,
    /// Its last port.
    pub last_port: u16,
    /// The relay's timers.
    pub timers: RelayTimers,
    /// Only the IP a leg's SDP named may latch its sockets
    /// (`[voice.media] strict_source`, `crate::media::call`).
    pub strict_source: bool,
}

/// The trunk an anchored call was sent to, and its group (SPEC V3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorInfo {
    /// The trunk's name.
    pub trunk: Arc<str>,
    /// Its carrier.
    pub carrier: Arc<str>,
    /// The group.
    pub group: Arc<str>,
    /// The trunk's media region.
    pub media_region: Arc<str>,
    /// The trunk's failover region.
    pub failover_region: Arc<str>,
}

/// What the driver must do for the media. Outputs about one call come in
/// order: `Open` first, `Close` last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaOutput {
    /// Bind the pair at this RTP port (and the next one), then report it
    /// with `handle_media_bound` or `handle_media_bind_failed`.
    Bind(u16),
    /// A call's media starts: give its relay task the sockets of these
    /// pairs (`[a, b]` RTP ports by stream; `None` for a stream without
    /// ports).
    Open {
        /// The call's media id.
        id: u64,
        /// Its Call-ID.
        call_id: Arc<str>,
        /// Its pairs by stream.
        streams: Vec<Option<[u16; 2]>>,
    },
    /// A later SDP added a stream with these pairs (`[a, b]`).
    AddStream {
        /// The call's media id.
        id: u64,
        /// The stream (m-line) index.
        stream: usize,
        /// Its pairs.
        ports: [u16; 2],
    },
    /// A leg's SDP names these far-end addresses for a stream.
    Remote {
        /// The call's media id.
        id: u64,
        /// The stream.
        stream: usize,
        /// The leg.
        leg: Leg,
        /// Where its RTP goes (none: declined or on hold with `0.0.0.0`).
        rtp: Option<SocketAddr>,
        /// Where its RTCP goes.
        rtcp: Option<SocketAddr>,
    },
    /// The call moved to another trunk (a failover, or a 2xx from another
    /// trunk than the last one tried): SPEC V3.
    Moved {
        /// The call's media id.
        id: u64,
        /// When.
        at: Instant,
        /// The trunk and group now.
        info: AnchorInfo,
    },
    /// What a stream carries changed (its m-line's protocol: RTP, or not,
    /// like T.38's `udptl`).
    Protocol {
        /// The call's media id.
        id: u64,
        /// The stream.
        stream: usize,
        /// Its protocol now.
        protocol: Protocol,
    },
    /// The call was anchored (its INVITE went to its first trunk).
    Anchored {
        /// The call's media id.
        id: u64,
        /// When.
        at: Instant,
        /// The trunk and group.
        info: AnchorInfo,
    },
    /// An SDP from a leg was anchored: for the tap.
    Sdp {
        /// The call's media id.
        id: u64,
        /// Which leg sent it.
        from: Leg,
        /// When.
        at: Instant,
        /// Its audio payload types and their names.
        payload_types: Vec<(u8, String)>,
        /// Its direction (SPEC R5).
        direction: MediaDirection,
    },
    /// The call's hold state changed (from SDP, SPEC R5).
    Hold {
        /// The call's media id.
        id: u64,
        /// On hold now.
        on_hold: bool,
    },
    /// The call was answered (2xx): the media timeout is armed.
    Answered {
        /// The call's media id.
        id: u64,
        /// When.
        at: Instant,
    },
    /// Stop the call's relay, report `end` to the tap, close its sockets,
    /// then report `handle_media_ended`.
    Close {
        /// The call's media id.
        id: u64,
        /// When.
        at: Instant,
        /// Why.
        end: MediaEnd,
    },
}

/// Why an INVITE could not be anchored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    /// Its SDP cannot be read: 488.
    #[error(transparent)]
    Sdp(#[from] SdpError),
    /// More active streams than we anchor: 488.
    #[error("{0} active media streams; at most {MAX_STREAMS} are anchored per call")]
    TooManyStreams(usize),
    /// An offer for SRTP (a secure profile or `a=crypto`): 488 (SPEC R1).
    #[error("anchored groups record G.711 over RTP/AVP; SRTP cannot be recorded")]
    Srtp,
    /// No port pairs free: 503.
    #[error("no media ports free in {first}-{last}")]
    NoPorts {
        /// The range's first port.
        first: u16,
        /// Its last port.
        last: u16,
    },
}

/// A call's media ended by the relay's timeout (SPEC R5: never taken for
/// hold), for the proxy's event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// The Call-ID.
    pub call_id: Arc<str>,
    /// The trunk it was last sent to.
    pub trunk: Option<AnchorInfo>,
}

/// Counters and sizes of the core's media side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaSessionStats {
    /// Calls anchored now.
    pub sessions: usize,
    /// Calls anchored since the start.
    pub anchored: u64,
    /// INVITEs and in-dialog requests refused (488) for their SDP.
    pub sdp_rejected: u64,
    /// SDPs in responses and ACKs that could not be read, relayed as they
    /// came (a 2xx cannot be refused).
    pub sdp_unanchored: u64,
    /// INVITEs refused (503) for want of ports.
    pub ports_exhausted: u64,
    /// SRTP answers anchored (a 2xx cannot be refused): relayed, recorded
    /// encrypted, reported as `SRTP/…` payload types.
    pub srtp_unrecordable: u64,
    /// Offers undone by a non-2xx final answer to their request.
    pub offers_refused: u64,
    /// Calls whose media timed out.
    pub timeouts: u64,
    /// Port pairs by state.
    pub ports: PortCounts,
    /// Pairs that failed to bind.
    pub bind_failures: u64,
}

/// Where an SDP came from, for what it commits (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpRole {
    /// An offer in an in-dialog INVITE or UPDATE: refusable (SRTP), and
    /// undone if the request gets a non-2xx final answer.
    Offer,
    /// In a response: applied, and commits the other leg's pending offer.
    Response,
    /// In an ACK or PRACK: applied as it is (it cannot be refused).
    Other,
}

/// What a leg had before its pending offer (see the module docs).
struct Committed {
    last_sdp: Option<(Bytes, Bytes)>,
    remotes: Vec<(Option<SocketAddr>, Option<SocketAddr>)>,
    direction: MediaDirection,
    reported: Option<Report>,
    protocols: Vec<Protocol>,
}

/// An SDP as last reported to the tap: payload types and direction.
type Report = (Vec<(u8, String)>, MediaDirection);

struct Session {
    call_id: Arc<str>,
    /// The caller's From tag: a request with it comes from leg a.
    a_tag: Bytes,
    /// `[a, b]` RTP ports by stream.
    streams: Vec<Option<[u16; 2]>>,
    /// The far ends' addresses as last sent to the driver, by leg, by stream.
    remotes: [Vec<(Option<SocketAddr>, Option<SocketAddr>)>; 2],
    /// The last SDP from each leg, as received and as rewritten.
    last_sdp: [Option<(Bytes, Bytes)>; 2],
    direction: [MediaDirection; 2],
    /// What each stream carries (from the last SDP for it).
    protocols: Vec<Protocol>,
    /// The last SDP report to the tap from each leg.
    reported: [Option<Report>; 2],
    /// Each leg's state before its pending offer.
    pending: [Option<Box<Committed>>; 2],
    on_hold: bool,
    answered: bool,
    /// The trunk of the last attempt; `None` until the first.
    trunk: Option<AnchorInfo>,
    /// Tap reports waiting for the call to be anchored.
    deferred: Vec<MediaOutput>,
}

/// The table. See the module docs.
pub struct MediaSessions {
    setup: MediaSetup,
    pool: PortPool,
    by_call_id: HashMap<Arc<str>, u64>,
    sessions: HashMap<u64, Session>,
    /// Pairs of released calls whose sockets are still open.
    closing: HashMap<u64, Vec<u16>>,
    next_id: u64,
    outputs: VecDeque<MediaOutput>,
    stats: MediaSessionStats,
}

impl MediaSessions {
    /// An empty table over `setup`'s port range; the first binds are
    /// waiting in [`MediaSessions::poll_output`].
    pub fn new(setup: MediaSetup) -> MediaSessions {
        MediaSessions {
            pool: PortPool::new(setup.first_port, setup.last_port),
            setup,
            by_call_id: HashMap::new(),
            sessions: HashMap::new(),
            closing: HashMap::new(),
            next_id: 1,
            outputs: VecDeque::new(),
            stats: MediaSessionStats::default(),
        }
    }

    /// The setup.
    pub fn setup(&self) -> &MediaSetup {
        &self.setup
    }

    /// Whether any call is anchored (a cheap test before looking at a
    /// message's Call-ID).
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Whether the call is anchored.
    pub fn contains(&self, call_id: &str) -> bool {
        self.by_call_id.contains_key(call_id)
    }

    /// Anchors a new call: its INVITE's body (`None`: a late offer) comes
    /// from leg a, whose From tag is `a_tag`. Returns the body to forward.
    /// A Call-ID already anchored (a new INVITE after a challenge, say)
    /// keeps its session and ports.
    pub fn open(
        &mut self,
        now: Instant,
        call_id: &str,
        a_tag: &[u8],
        body: Option<&Bytes>,
    ) -> Result<Option<Bytes>, AnchorError> {
        if let Some(&id) = self.by_call_id.get(call_id) {
            return match body {
                Some(body) => self
                    .anchor(now, id, Leg::A, body, SdpRole::Offer)
                    .inspect_err(|_| self.stats.sdp_rejected += 1)
                    .map(Some),
                None => Ok(None),
            };
        }
        let sdp = match body {
            Some(body) => Some(Sdp::parse(body.clone()).inspect_err(|_| {
                self.stats.sdp_rejected += 1;
            })?),
            None => None,
        };
        if sdp.as_ref().is_some_and(Sdp::has_srtp) {
            self.stats.sdp_rejected += 1;
            return Err(AnchorError::Srtp);
        }
        // Ports for every active stream of the offer (one for a late offer).
        let wanted: Vec<usize> = match &sdp {
            Some(sdp) => sdp
                .media()
                .iter()
                .enumerate()
                .filter(|(_, m)| m.port != 0)
                .map(|(i, _)| i)
                .collect(),
            None => vec![0],
        };
        if wanted.len() > MAX_STREAMS {
            self.stats.sdp_rejected += 1;
            return Err(AnchorError::TooManyStreams(wanted.len()));
        }
        let mut streams: Vec<Option<[u16; 2]>> = Vec::new();
        for &index in &wanted {
            match self.take_pairs() {
                Some(pairs) => {
                    streams.resize(index + 1, None);
                    streams[index] = Some(pairs);
                }
                None => {
                    for pairs in streams.iter().flatten() {
                        self.pool.give_back(pairs[0]);
                        self.pool.give_back(pairs[1]);
                    }
                    self.stats.ports_exhausted += 1;
                    return Err(AnchorError::NoPorts {
                        first: self.setup.first_port,
                        last: self.setup.last_port,
                    });
                }
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let call_id: Arc<str> = call_id.into();
        self.outputs.push_back(MediaOutput::Open {
            id,
            call_id: call_id.clone(),
            streams: streams.clone(),
        });
        let count = streams.len();
        self.sessions.insert(
            id,
            Session {
                call_id: call_id.clone(),
                a_tag: Bytes::copy_from_slice(a_tag),
                streams,
                remotes: [vec![(None, None); count], vec![(None, None); count]],
                last_sdp: [None, None],
                direction: [MediaDirection::SendRecv; 2],
                protocols: vec![Protocol::Rtp; count],
                reported: [None, None],
                pending: [None, None],
                on_hold: false,
                answered: false,
                trunk: None,
                deferred: Vec::new(),
            },
        );
        self.by_call_id.insert(call_id, id);
        self.stats.anchored += 1;
        match (body, sdp) {
            (Some(body), Some(sdp)) => self.anchor_parsed(now, id, Leg::A, body, sdp).map(Some),
            _ => Ok(None),
        }
    }

    /// The call's INVITE goes to a trunk: the first time, the call is
    /// anchored (reported to the tap); after a failover, what the previous
    /// trunk's SDP said is forgotten (the next trunk answers with its own).
    pub fn attempt(&mut self, now: Instant, call_id: &str, info: AnchorInfo) {
        let Some(&id) = self.by_call_id.get(call_id) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        if session.trunk.is_none() {
            self.outputs.push_back(MediaOutput::Anchored {
                id,
                at: now,
                info: info.clone(),
            });
            self.outputs.extend(session.deferred.drain(..));
        } else {
            if session
                .trunk
                .as_ref()
                .is_some_and(|t| t.trunk != info.trunk)
            {
                self.outputs.push_back(MediaOutput::Moved {
                    id,
                    at: now,
                    info: info.clone(),
                });
            }
            session.last_sdp[Leg::B.index()] = None;
            session.direction[Leg::B.index()] = MediaDirection::SendRecv;
            session.reported[Leg::B.index()] = None;
            session.pending[Leg::B.index()] = None;
            for (stream, remote) in session.remotes[Leg::B.index()].iter_mut().enumerate() {
                if *remote != (None, None) {
                    *remote = (None, None);
                    self.outputs.push_back(MediaOutput::Remote {
                        id,
                        stream,
                        leg: Leg::B,
                        rtp: None,
                        rtcp: None,
                    });
                }
            }
            Self::update_hold(&mut self.outputs, id, session);
        }
        session.trunk = Some(info);
    }

    /// The call was answered by `info`'s trunk: if that is not the trunk
    /// last tried (a late 2xx from a trunk given up on), the call moved
    /// back to it (SPEC V3).
    pub fn answered_by(&mut self, now: Instant, call_id: &str, info: AnchorInfo) {
        let Some(&id) = self.by_call_id.get(call_id) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        if session
            .trunk
            .as_ref()
            .is_some_and(|t| t.trunk != info.trunk)
        {
            self.outputs.push_back(MediaOutput::Moved {
                id,
                at: now,
                info: info.clone(),
            });
            session.trunk = Some(info);
        }
    }

    /// Which leg a message of an anchored call comes from, by its From tag:
    /// a request carrying the caller's tag comes from leg a, a response to
    /// such a request from leg b. `None`: the call is not anchored.
    pub fn leg_of(&self, call_id: &str, from_tag: &[u8], response: bool) -> Option<Leg> {
        let session = self.sessions.get(self.by_call_id.get(call_id)?)?;
        let requester = if session.a_tag[..] == *from_tag {
            Leg::A
        } else {
            Leg::B
        };
        Some(if response {
            requester.other()
        } else {
            requester
        })
    }

    /// An SDP from `from` in an anchored call, in the `role` it came in:
    /// the body to forward instead. `Ok(None)`: the call is not anchored.
    pub fn sdp_from(
        &mut self,
        now: Instant,
        call_id: &str,
        from: Leg,
        body: &Bytes,
        role: SdpRole,
    ) -> Result<Option<Bytes>, AnchorError> {
        let Some(&id) = self.by_call_id.get(call_id) else {
            return Ok(None);
        };
        self.anchor(now, id, from, body, role).map(Some)
    }

    /// A final answer from `from` to the other leg's in-dialog INVITE or
    /// UPDATE: a 2xx (`accepted`) commits that leg's pending offer, any
    /// other undoes it (see the module docs; SPEC R5).
    pub fn offer_answered(&mut self, now: Instant, call_id: &str, from: Leg, accepted: bool) {
        let Some(&id) = self.by_call_id.get(call_id) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let offerer = from.other().index();
        let Some(saved) = session.pending[offerer].take() else {
            return;
        };
        if accepted {
            return;
        }
        self.stats.offers_refused += 1;
        let leg = from.other();
        session.last_sdp[offerer] = saved.last_sdp;
        for stream in 0..session.remotes[offerer].len() {
            let before = saved.remotes.get(stream).copied().unwrap_or((None, None));
            if session.remotes[offerer][stream] != before {
                session.remotes[offerer][stream] = before;
                self.outputs.push_back(MediaOutput::Remote {
                    id,
                    stream,
                    leg,
                    rtp: before.0,
                    rtcp: before.1,
                });
            }
        }
        for stream in 0..session.protocols.len() {
            let before = saved.protocols.get(stream).copied().unwrap_or_default();
            if session.protocols[stream] != before {
                session.protocols[stream] = before;
                self.outputs.push_back(MediaOutput::Protocol {
                    id,
                    stream,
                    protocol: before,
                });
            }
        }
        session.direction[offerer] = saved.direction;
        if session.reported[offerer] != saved.reported {
            if let Some((payload_types, direction)) = saved.reported.clone() {
                let report = MediaOutput::Sdp {
                    id,
                    from: leg,
                    at: now,
                    payload_types,
                    direction,
                };
                if session.trunk.is_some() {
                    self.outputs.push_back(report);
                } else {
                    session.deferred.push(report);
                }
            }
            session.reported[offerer] = saved.reported;
        }
        Self::update_hold(&mut self.outputs, id, session);
    }

    /// Counts an SDP that was relayed unanchored (in a response or ACK,
    /// which cannot be refused).
    pub fn note_unanchored(&mut self) {
        self.stats.sdp_unanchored += 1;
    }

    /// Counts an in-dialog request refused for its SDP.
    pub fn note_rejected(&mut self) {
        self.stats.sdp_rejected += 1;
    }

    /// The call was answered (2xx): its media timeout is armed.
    pub fn answered(&mut self, now: Instant, call_id: &str) {
        let Some(&id) = self.by_call_id.get(call_id) else {
            return;
        };
        if let Some(session) = self.sessions.get_mut(&id) {
            if !session.answered {
                session.answered = true;
                self.outputs
                    .push_back(MediaOutput::Answered { id, at: now });
            }
        }
    }

    /// The call's media is over (BYE, final non-2xx, CANCEL).
    pub fn release(&mut self, now: Instant, call_id: &str, end: MediaEnd) {
        let Some(id) = self.by_call_id.remove(call_id) else {
            return;
        };
        if let Some(session) = self.sessions.remove(&id) {
            self.closing.insert(id, ports_of(&session));
            self.outputs
                .push_back(MediaOutput::Close { id, at: now, end });
        }
    }

    /// The relay task of call `id` ended and closed its sockets, because it
    /// was told to or because its media timed out (`timed_out`). Its ports
    /// go back to the pool; a timeout returns what the proxy reports.
    pub fn handle_ended(&mut self, id: u64, timed_out: bool) -> Option<TimedOut> {
        if let Some(ports) = self.closing.remove(&id) {
            for port in ports {
                self.pool.release(port);
            }
            return None;
        }
        let session = self.sessions.remove(&id)?;
        self.by_call_id.remove(&session.call_id);
        for port in ports_of(&session) {
            self.pool.release(port);
        }
        if !timed_out {
            return None;
        }
        self.stats.timeouts += 1;
        Some(TimedOut {
            call_id: session.call_id,
            trunk: session.trunk,
        })
    }

    /// The driver bound the pair at `port`.
    pub fn handle_bound(&mut self, port: u16) {
        self.pool.handle_bound(port);
    }

    /// The driver could not bind the pair at `port`: it rests and another
    /// is bound instead.
    pub fn handle_bind_failed(&mut self, now: Instant, port: u16) {
        self.pool.handle_bind_failed(now, port);
    }

    /// Rested pairs come back.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.pool.handle_timeout(now);
    }

    /// When [`MediaSessions::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pool.poll_timeout()
    }

    /// The next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<MediaOutput> {
        if let Some(port) = self.pool.poll_bind() {
            return Some(MediaOutput::Bind(port));
        }
        self.outputs.pop_front()
    }

    /// Whether [`MediaSessions::poll_output`] has something.
    pub fn has_output(&self) -> bool {
        self.pool.wants_bind() || !self.outputs.is_empty()
    }

    /// Counters and sizes.
    pub fn stats(&self) -> MediaSessionStats {
        MediaSessionStats {
            sessions: self.sessions.len(),
            ports: self.pool.counts(),
            bind_failures: self.pool.bind_failures(),
            ..self.stats
        }
    }

    fn take_pairs(&mut self) -> Option<[u16; 2]> {
        let a = self.pool.take()?;
        match self.pool.take() {
            Some(b) => Some([a, b]),
            None => {
                self.pool.give_back(a);
                None
            }
        }
    }

    fn anchor(
        &mut self,
        now: Instant,
        id: u64,
        from: Leg,
        body: &Bytes,
        role: SdpRole,
    ) -> Result<Bytes, AnchorError> {
        if let Some((received, rewritten)) = self
            .sessions
            .get(&id)
            .and_then(|s| s.last_sdp[from.index()].as_ref())
        {
            if received == body {
                let rewritten = rewritten.clone();
                if role == SdpRole::Response {
                    self.commit(id, from.other());
                }
                return Ok(rewritten);
            }
        }
        let sdp = Sdp::parse(body.clone())?;
        if sdp.has_srtp() {
            if role == SdpRole::Offer {
                return Err(AnchorError::Srtp);
            }
            tracing::warn!(leg = ?from, "SRTP answer anchored: its media is recorded encrypted (undecodable)");
            self.stats.srtp_unrecordable += 1;
        }
        if let Some(session) = self.sessions.get_mut(&id) {
            let leg = from.index();
            match role {
                // What the leg had, to restore if the offer is refused (a
                // new offer from the leg means its previous one is over).
                SdpRole::Offer => {
                    session.pending[leg] = Some(Box::new(Committed {
                        last_sdp: session.last_sdp[leg].clone(),
                        remotes: session.remotes[leg].clone(),
                        direction: session.direction[leg],
                        reported: session.reported[leg].clone(),
                        protocols: session.protocols.clone(),
                    }));
                }
                // An answer commits the other leg's offer (a reliable
                // provisional's, or the 2xx's).
                SdpRole::Response => session.pending[from.other().index()] = None,
                SdpRole::Other => {}
            }
        }
        self.anchor_parsed(now, id, from, body, sdp)
    }

    fn commit(&mut self, id: u64, leg: Leg) {
        if let Some(session) = self.sessions.get_mut(&id) {
            session.pending[leg.index()] = None;
        }
    }

    fn anchor_parsed(
        &mut self,
        now: Instant,
        id: u64,
        from: Leg,
        body: &Bytes,
        sdp: Sdp,
    ) -> Result<Bytes, AnchorError> {
        // New streams first: they need ports before the rewrite.
        let mut new_streams = Vec::new();
        if let Some(session) = self.sessions.get(&id) {
            let held = session.streams.iter().flatten().count();
            for (index, media) in sdp.media().iter().enumerate() {
                let known = session.streams.get(index).is_some_and(Option::is_some);
                if media.port != 0 && !known && held + new_streams.len() < MAX_STREAMS {
                    new_streams.push(index);
                }
            }
        }
        let mut added = Vec::new();
        for index in new_streams {
            if let Some(pairs) = self.take_pairs() {
                added.push((index, pairs));
            }
        }
        let address = self.setup.address;
        let Some(session) = self.sessions.get_mut(&id) else {
            return Ok(body.clone());
        };
        for (stream, ports) in added {
            if session.streams.len() <= stream {
                session.streams.resize(stream + 1, None);
                for remotes in &mut session.remotes {
                    remotes.resize(stream + 1, (None, None));
                }
            }
            session.streams[stream] = Some(ports);
            self.outputs
                .push_back(MediaOutput::AddStream { id, stream, ports });
        }
        if session.protocols.len() < session.streams.len() {
            session
                .protocols
                .resize(session.streams.len(), Protocol::Rtp);
        }
        let ports: Vec<Option<u16>> = session
            .streams
            .iter()
            .map(|pairs| pairs.map(|p| p[from.other().index()]))
            .collect();
        let rewritten = Bytes::from(rewrite(&sdp, address, &ports));
        session.last_sdp[from.index()] = Some((body.clone(), rewritten.clone()));
        for stream in 0..session.streams.len() {
            if session.streams[stream].is_none() || stream >= sdp.media().len() {
                continue;
            }
            let protocol = match sdp.media()[stream].is_rtp() {
                true => Protocol::Rtp,
                false => Protocol::Other,
            };
            if sdp.media()[stream].port != 0 && session.protocols[stream] != protocol {
                session.protocols[stream] = protocol;
                self.outputs.push_back(MediaOutput::Protocol {
                    id,
                    stream,
                    protocol,
                });
            }
            let remote = (sdp.rtp_addr(stream), sdp.rtcp_addr(stream));
            if session.remotes[from.index()][stream] != remote {
                session.remotes[from.index()][stream] = remote;
                self.outputs.push_back(MediaOutput::Remote {
                    id,
                    stream,
                    leg: from,
                    rtp: remote.0,
                    rtcp: remote.1,
                });
            }
        }
        let direction = sdp.direction();
        session.direction[from.index()] = direction;
        let payload_types = sdp.payload_types();
        session.reported[from.index()] = Some((payload_types.clone(), direction));
        let report = MediaOutput::Sdp {
            id,
            from,
            at: now,
            payload_types,
            direction,
        };
        if session.trunk.is_some() {
            self.outputs.push_back(report);
        } else {
            session.deferred.push(report);
        }
        Self::update_hold(&mut self.outputs, id, session);
        Ok(rewritten)
    }

    fn update_hold(outputs: &mut VecDeque<MediaOutput>, id: u64, session: &mut Session) {
        let on_hold = session
            .direction
            .iter()
            .any(|d| *d != MediaDirection::SendRecv);
        if on_hold != session.on_hold {
            session.on_hold = on_hold;
            outputs.push_back(MediaOutput::Hold { id, on_hold });
        }
    }
}

fn ports_of(session: &Session) -> Vec<u16> {
    session
        .streams
        .iter()
        .flatten()
        .flatten()
        .copied()
        .collect()
}

#[cfg(test)]
mod tests;
