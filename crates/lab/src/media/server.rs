//! The cloud media server: a SIP UAS (the trunk's [`Uas`] in media mode)
//! that answers calls with real RTP, records both directions, and hands calls
//! over on command (SPEC R1, R2, R5). The behaviour is in the module docs of
//! `media`; [`ServerCore`] is the sans-IO core, [`MediaServer`] its handle.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotsite_core::Rng;
use hotsite_sip::message::StatusCode;
use serde::Serialize;

use super::driver::{MediaEndpoint, Output, SocketId};
use super::rtp::{parse_packet, TelephoneEvent};
use super::sdp::{Codec, Description, Direction, SessionDescription};
use super::signal::{Signal, SAMPLE_RATE};
use super::stream::{decode, position, Outgoing, Track};
use super::wav::{encode_wav, CloudRecordingMeta};
use super::MediaError;
use crate::sip::driver::Endpoint;
use crate::sip::driver::Running;
use crate::sip::trunk::{SipTrunkConfig, TrunkStats, Uas, UasEvent};

/// The recording's file names inside its call's directory.
pub const CLOUD_WAV: &str = "cloud.wav";
/// See [`CLOUD_WAV`].
pub const CLOUD_JSON: &str = "cloud.json";

/// Most DTMF events logged per call.
const MAX_DTMF_EVENTS: usize = 1_000;
/// A handover jumps the sequence number and timestamp by a random amount in
/// this range, as a new media server's stream would.
const JUMP_MIN: u64 = 1_000;
const JUMP_MAX: u64 = 30_000;

/// How a media server starts. [`MediaServerConfig::new`] fills in the
/// defaults.
#[derive(Debug, Clone)]
pub struct MediaServerConfig {
    /// Its name: in logs, To tags and the Contact user part.
    pub name: String,
    /// The UDP address of its SIP socket (port 0: any free port); RTP
    /// sockets are bound on the same IP, on free ports.
    pub listen: SocketAddr,
    /// Where recordings go: `<recordings>/<sanitised Call-ID>/cloud.wav` and
    /// `cloud.json` ([`sanitise_call_id`]).
    pub recordings: PathBuf,
    /// A handover's gap when the command gives none. `None` (default): a
    /// random length in `gap_min..=gap_max`, from the seed.
    pub gap: Option<Duration>,
    /// Default: 15 s.
    pub gap_min: Duration,
    /// Default: 20 s.
    pub gap_max: Duration,
    /// The recording of a gap is noise instead of silence: the corrupt
    /// segment some providers leave. Default: false.
    pub corrupt: bool,
    /// Seeds SSRCs, sequence numbers, timestamps, jumps, gaps and noise.
    /// Default: 1.
    pub seed: u64,
    /// From the INVITE to `180 Ringing`. Default: 0 (sent with the 100).
    pub ring_delay: Duration,
    /// From the 180 to `200 OK`. Default: 20 ms.
    pub answer_delay: Duration,
    /// RFC 3261 T1. Default: 500 ms.
    pub t1: Duration,
    /// RFC 3261 T2. Default: 4 s.
    pub t2: Duration,
}

impl MediaServerConfig {
    /// A media server named `name` on `listen`, recording into `recordings`,
    /// everything else at its default.
    pub fn new(
        name: &str,
        listen: SocketAddr,
        recordings: impl Into<PathBuf>,
    ) -> MediaServerConfig {
        MediaServerConfig {
            name: name.to_owned(),
            listen,
            recordings: recordings.into(),
            gap: None,
            gap_min: Duration::from_secs(15),
            gap_max: Duration::from_secs(20),
            corrupt: false,
            seed: 1,
            ring_delay: Duration::ZERO,
            answer_delay: Duration::from_millis(20),
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), MediaError> {
        let invalid = |what: String| {
            Err(MediaError::Invalid(format!(
                "media server {}: {what}",
                self.name
            )))
        };
        if self.name.is_empty() {
            return Err(MediaError::Invalid(
                "media server name: must not be empty".into(),
            ));
        }
        if self.gap_min > self.gap_max {
            return invalid("gap_min must be at most gap_max".into());
        }
        if self.t1.is_zero() || self.t2 < self.t1 {
            return invalid("t1 must be above zero and t2 at least t1".into());
        }
        Ok(())
    }

    fn trunk_config(&self) -> SipTrunkConfig {
        let mut config = SipTrunkConfig::new(&self.name, self.listen);
        config.ring_delay = self.ring_delay;
        config.answer_delay = self.answer_delay;
        config.t1 = self.t1;
        config.t2 = self.t2;
        config
    }
}

/// Where a call's recording is on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingPaths {
    /// `<recordings>/<sanitised Call-ID>`.
    pub dir: PathBuf,
    /// `dir/cloud.wav`.
    pub wav: PathBuf,
    /// `dir/cloud.json`.
    pub json: PathBuf,
}

/// One handover of a call. Times are milliseconds from the call's start (the
/// `200 OK`, sample 0 of the recording).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandoverInfo {
    /// When the stream stopped.
    pub started_ms: u64,
    /// The same instant in Unix milliseconds.
    pub started_unix_ms: u64,
    /// When it resumed; `None` while the gap lasts. Earlier than
    /// `started_ms + gap_ms` if the call ended in the gap.
    pub ended_ms: Option<u64>,
    /// The gap asked for.
    pub gap_ms: u64,
    /// The local RTP port before.
    pub from_port: Option<u16>,
    /// The local RTP port after (`None` while the gap lasts, or if the new
    /// socket could not be bound: the old one was kept).
    pub to_port: Option<u16>,
    /// The SSRC before.
    pub old_ssrc: u32,
    /// The SSRC after (`None` while the gap lasts).
    pub new_ssrc: Option<u32>,
    /// How far the sequence number jumped beyond its normal course.
    pub sequence_jump: Option<u16>,
    /// How far the timestamp jumped beyond its normal course.
    pub timestamp_jump: Option<u32>,
}

/// One RFC 4733 event received (the end packets repeat it: logged once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DtmfEvent {
    /// The event code (0–9, 10 `*`, 11 `#`, 12–15 `A`–`D`, more for other
    /// tones).
    pub event: u8,
    /// The DTMF key, if it is one.
    pub digit: Option<char>,
    /// Its first packet's arrival, in milliseconds from the call's start.
    pub at_ms: u64,
    /// The longest duration its packets gave, in milliseconds.
    pub duration_ms: u64,
    /// An end packet (E bit) arrived.
    pub ended: bool,
    /// Packets of this event received.
    pub packets: u32,
}

/// A re-INVITE's offer and the server's answer (hold comes only from SDP,
/// SPEC R5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectionChange {
    /// Milliseconds from the call's start.
    pub at_ms: u64,
    /// The offer's direction.
    pub offered: Direction,
    /// The server's answer.
    pub answered: Direction,
}

/// A call as the media server sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaCallInfo {
    /// The call's SIP Call-ID.
    pub call_id: String,
    /// `offered` (INVITE not answered yet), `up`, `ended` or `failed`
    /// (cancelled or refused before the answer).
    pub state: &'static str,
    /// When its `200 OK` left: sample 0 of the recording (Unix ms).
    pub started_unix_ms: Option<u64>,
    /// From the 200 to the end (or to now).
    pub duration_ms: u64,
    /// The socket it sends from now.
    pub local_rtp: Option<SocketAddr>,
    /// Where it sends: the offer's address, then wherever RTP comes from
    /// (symmetric RTP).
    pub remote_rtp: Option<SocketAddr>,
    /// The codec chosen from the offer.
    pub codec: Codec,
    /// The offer's telephone-event payload type, if it had one.
    pub telephone_event: Option<u8>,
    /// Its side's direction (from the last answer).
    pub direction: Direction,
    /// RTP packets sent.
    pub packets_sent: u64,
    /// RTP packets received and recorded (DTMF included).
    pub packets_received: u64,
    /// Packets that arrived during a handover gap and were ignored.
    pub packets_ignored: u64,
    /// Its handovers, in order.
    pub handovers: Vec<HandoverInfo>,
    /// The RFC 4733 events received outside gaps.
    pub dtmf: Vec<DtmfEvent>,
    /// Its re-INVITEs' directions (hold and resume).
    pub directions: Vec<DirectionChange>,
    /// Once the files are on disk.
    pub recording: Option<RecordingPaths>,
    /// Why the files could not be written.
    pub recording_error: Option<String>,
}

/// A media server's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MediaServerStats {
    /// The SIP side's counters.
    pub sip: TrunkStats,
    /// Calls answered.
    pub calls: u64,
    /// Calls up now.
    pub active: u64,
    /// INVITEs refused for their SDP (`488`).
    pub refused_offers: u64,
    /// Handovers started.
    pub handovers: u64,
    /// RTP packets sent.
    pub rtp_sent: u64,
    /// RTP packets received in calls up, outside gaps.
    pub rtp_received: u64,
    /// RTP ignored during handover gaps.
    pub rtp_ignored: u64,
    /// Datagrams that were no RTP of a call up (RTCP, strays, late ones).
    pub rtp_stray: u64,
    /// DTMF events logged.
    pub dtmf_events: u64,
    /// Recordings on disk.
    pub recordings_written: u64,
    /// Recordings that could not be written.
    pub recording_errors: u64,
}

/// One handover started by [`MediaServer::handover`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandoverStarted {
    /// The call.
    pub call_id: String,
    /// Its gap.
    pub gap_ms: u64,
    /// Milliseconds from the call's start.
    pub started_ms: u64,
}

/// A running media server. Dropping it stops the task (writing the
/// recordings of calls still up); [`MediaServer::shutdown`] also waits.
pub struct MediaServer {
    name: String,
    running: Running<ServerCore>,
}

impl MediaServer {
    /// Binds `config.listen` and starts answering. Must be called within a
    /// tokio runtime.
    pub async fn start(config: MediaServerConfig) -> Result<MediaServer, MediaError> {
        config.validate()?;
        let name = config.name.clone();
        let running = Running::bind_media(
            &format!("media server {name}"),
            config.listen,
            |addr, now, unix_ms| ServerCore::new(&config, addr, now, unix_ms),
        )
        .await?;
        tracing::info!(
            media_server = %name,
            addr = %running.local_addr(),
            recordings = %config.recordings.display(),
            "media server listening"
        );
        Ok(MediaServer { name, running })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its SIP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.running.local_addr()
    }

    /// Every call so far, in order of arrival.
    pub fn calls(&self) -> Vec<MediaCallInfo> {
        self.running.read(|core, now| core.calls(now))
    }

    /// One call by Call-ID.
    pub fn call(&self, call_id: &str) -> Option<MediaCallInfo> {
        self.running.read(|core, now| core.call(call_id, now))
    }

    /// Where call `call_id`'s recording is, once it is on disk.
    pub fn recording(&self, call_id: &str) -> Option<RecordingPaths> {
        self.call(call_id).and_then(|call| call.recording)
    }

    /// Hands call `call_id` over (or every call up, with `None`): its stream
    /// stops for `gap` (default: the configured one), then resumes from
    /// another port with a new SSRC and jumped sequence and timestamp.
    pub fn handover(
        &self,
        call_id: Option<&str>,
        gap: Option<Duration>,
    ) -> Result<Vec<HandoverStarted>, MediaError> {
        self.running
            .steer(|core, now| core.handover(now, call_id, gap))
    }

    /// The counters.
    pub fn stats(&self) -> MediaServerStats {
        self.running.read(|core, _| core.stats())
    }

    /// Stops: calls still up end, their recordings are written; waits for it.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// `call_id` as a directory name: every byte outside `A–Z a–z 0–9 . _ -`
/// becomes `_`, a leading `.` too (no `.`, `..` or hidden names), an empty
/// one is `_`, and it is cut at 128 bytes.
pub fn sanitise_call_id(call_id: &str) -> String {
    let mut name: String = call_id
        .bytes()
        .take(128)
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-' {
                char::from(b)
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with('.') {
        name.replace_range(..1, "_");
    }
    if name.is_empty() {
        name.push('_');
    }
    name
}

/// The media server's core: SIP datagrams, RTP datagrams and time in;
/// datagrams, sockets and files out. No socket, no clock.
pub(crate) struct ServerCore {
    name: String,
    uas: Uas,
    recordings: PathBuf,
    gap: Option<Duration>,
    gap_min: Duration,
    gap_max: Duration,
    corrupt: bool,
    rng: Rng,
    /// An instant and its Unix time, to date recordings.
    wall: (Instant, u64),
    calls: Vec<ServerCall>,
    /// Call-ID → index in `calls` (the latest call with that id).
    by_call_id: HashMap<String, usize>,
    /// RTP socket → index in `calls`.
    sockets: HashMap<SocketId, usize>,
    next_socket: SocketId,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Files being written → index in `calls`.
    writes: HashMap<u64, usize>,
    next_write: u64,
    outputs: VecDeque<Output>,
    stats: MediaServerStats,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CallState {
    /// INVITE received; the 200 waits for the RTP socket (`key`: the INVITE).
    Offered {
        key: String,
    },
    Up,
    Ended,
    Failed,
}

struct ServerCall {
    call_id: String,
    state: CallState,
    codec: Codec,
    telephone_event: Option<u8>,
    /// Where RTP goes.
    remote: Option<SocketAddr>,
    /// Where the last SDP said RTP goes (a re-INVITE that changes it wins
    /// over the latched source).
    sdp_remote: Option<SocketAddr>,
    direction: Direction,
    /// Every RTP socket the call has had (all keep receiving), with its
    /// address once bound.
    sockets: Vec<(SocketId, Option<SocketAddr>)>,
    /// The one it sends from.
    sending: SocketId,
    session_id: u64,
    sdp_version: u64,
    /// When the 200 left: sample 0.
    started: Option<Instant>,
    started_unix_ms: Option<u64>,
    ended: Option<Instant>,
    outgoing: Option<Outgoing>,
    received: Track,
    sent: Track,
    gap: Option<Gap>,
    handovers: Vec<HandoverInfo>,
    dtmf: Vec<DtmfEvent>,
    /// (SSRC, timestamp) of each logged event, in step with `dtmf`.
    dtmf_keys: Vec<(u32, u32)>,
    directions: Vec<DirectionChange>,
    packets_sent: u64,
    packets_received: u64,
    packets_ignored: u64,
    recording: Option<RecordingPaths>,
    recording_error: Option<String>,
    /// The deadline the timer heap holds an entry for.
    scheduled: Option<Instant>,
}

/// A handover under way.
struct Gap {
    started: Instant,
    until: Instant,
    /// The socket the stream resumes from.
    socket: SocketId,
}

impl ServerCall {
    fn deadline(&self) -> Option<Instant> {
        if self.state != CallState::Up {
            return None;
        }
        let next_packet = self.outgoing.as_ref().map(Outgoing::due);
        let gap_end = self.gap.as_ref().map(|gap| gap.until);
        [next_packet, gap_end].into_iter().flatten().min()
    }

    fn ms(&self, at: Instant) -> u64 {
        self.started.map_or(0, |started| {
            u64::try_from(at.saturating_duration_since(started).as_millis()).unwrap_or(u64::MAX)
        })
    }

    fn local_addr(&self, socket: SocketId) -> Option<SocketAddr> {
        self.sockets
            .iter()
            .find(|(id, _)| *id == socket)
            .and_then(|(_, addr)| *addr)
    }

    fn state_name(&self) -> &'static str {
        match self.state {
            CallState::Offered { .. } => "offered",
            CallState::Up => "up",
            CallState::Ended => "ended",
            CallState::Failed => "failed",
        }
    }
}

impl ServerCore {
    pub(crate) fn new(
        config: &MediaServerConfig,
        sip_addr: SocketAddr,
        now: Instant,
        unix_ms: u64,
    ) -> ServerCore {
        let mut uas = Uas::new(&config.trunk_config(), sip_addr);
        uas.enable_media();
        ServerCore {
            name: config.name.clone(),
            uas,
            recordings: config.recordings.clone(),
            gap: config.gap,
            gap_min: config.gap_min,
            gap_max: config.gap_max,
            corrupt: config.corrupt,
            rng: Rng::new(config.seed),
            wall: (now, unix_ms),
            calls: Vec::new(),
            by_call_id: HashMap::new(),
            sockets: HashMap::new(),
            next_socket: 0,
            timers: BinaryHeap::new(),
            writes: HashMap::new(),
            next_write: 0,
            outputs: VecDeque::new(),
            stats: MediaServerStats::default(),
        }
    }

    fn unix_ms(&self, at: Instant) -> u64 {
        let (anchor, unix_ms) = self.wall;
        let since = at.saturating_duration_since(anchor).as_millis();
        let before = anchor.saturating_duration_since(at).as_millis();
        (u128::from(unix_ms) + since).saturating_sub(before) as u64
    }

    pub(crate) fn calls(&self, now: Instant) -> Vec<MediaCallInfo> {
        self.calls.iter().map(|call| self.info(call, now)).collect()
    }

    pub(crate) fn call(&self, call_id: &str, now: Instant) -> Option<MediaCallInfo> {
        let index = *self.by_call_id.get(call_id)?;
        Some(self.info(&self.calls[index], now))
    }

    fn info(&self, call: &ServerCall, now: Instant) -> MediaCallInfo {
        MediaCallInfo {
            call_id: call.call_id.clone(),
            state: call.state_name(),
            started_unix_ms: call.started_unix_ms,
            duration_ms: call.ms(call.ended.unwrap_or(now)),
            local_rtp: call.local_addr(call.sending),
            remote_rtp: call.remote,
            codec: call.codec,
            telephone_event: call.telephone_event,
            direction: call.direction,
            packets_sent: call.packets_sent,
            packets_received: call.packets_received,
            packets_ignored: call.packets_ignored,
            handovers: call.handovers.clone(),
            dtmf: call.dtmf.clone(),
            directions: call.directions.clone(),
            recording: call.recording.clone(),
            recording_error: call.recording_error.clone(),
        }
    }

    pub(crate) fn stats(&self) -> MediaServerStats {
        MediaServerStats {
            sip: self.uas.stats(),
            active: self
                .calls
                .iter()
                .filter(|call| call.state == CallState::Up)
                .count() as u64,
            ..self.stats.clone()
        }
    }

    /// Starts a handover of one call, or of every call up (see
    /// [`MediaServer::handover`]).
    pub(crate) fn handover(
        &mut self,
        now: Instant,
        call_id: Option<&str>,
        gap: Option<Duration>,
    ) -> Result<Vec<HandoverStarted>, MediaError> {
        let targets: Vec<usize> = match call_id {
            Some(call_id) => {
                let index = *self
                    .by_call_id
                    .get(call_id)
                    .ok_or_else(|| MediaError::UnknownCall(call_id.to_owned()))?;
                let call = &self.calls[index];
                if call.state != CallState::Up {
                    return Err(MediaError::NotUp {
                        call_id: call_id.to_owned(),
                        state: call.state_name(),
                    });
                }
                if call.gap.is_some() {
                    return Err(MediaError::InHandover(call_id.to_owned()));
                }
                vec![index]
            }
            None => (0..self.calls.len())
                .filter(|&i| self.calls[i].state == CallState::Up && self.calls[i].gap.is_none())
                .collect(),
        };
        let mut started = Vec::new();
        for index in targets {
            // Packets due before the command go out first.
            self.run_call(now, index);
            let gap = gap.or(self.gap).unwrap_or_else(|| {
                let spread = self.gap_max.saturating_sub(self.gap_min).as_millis() as u64;
                self.gap_min + Duration::from_millis(self.rng.below_or_equal(spread))
            });
            let socket = self.open_socket(index);
            let started_unix_ms = self.unix_ms(now);
            let call = &mut self.calls[index];
            call.gap = Some(Gap {
                started: now,
                until: now + gap,
                socket,
            });
            let gap_ms = gap.as_millis() as u64;
            call.handovers.push(HandoverInfo {
                started_ms: call.ms(now),
                started_unix_ms,
                ended_ms: None,
                gap_ms,
                from_port: call.local_addr(call.sending).map(|addr| addr.port()),
                to_port: None,
                old_ssrc: call.outgoing.as_ref().map_or(0, Outgoing::ssrc),
                new_ssrc: None,
                sequence_jump: None,
                timestamp_jump: None,
            });
            tracing::info!(
                media_server = %self.name,
                call_id = %call.call_id,
                gap_ms,
                "media handover: stream stopped"
            );
            self.stats.handovers += 1;
            started.push(HandoverStarted {
                call_id: call.call_id.clone(),
                gap_ms,
                started_ms: call.ms(now),
            });
            self.schedule(index);
        }
        Ok(started)
    }

    fn open_socket(&mut self, index: usize) -> SocketId {
        let socket = self.next_socket;
        self.next_socket += 1;
        self.sockets.insert(socket, index);
        self.calls[index].sockets.push((socket, None));
        self.outputs.push_back(Output::OpenSocket { socket });
        socket
    }

    /// Moves the SIP core's datagrams out and acts on its events.
    fn pump(&mut self, now: Instant) {
        loop {
            while let Some((to, bytes)) = self.uas.poll_transmit() {
                self.outputs.push_back(Output::Sip { to, bytes });
            }
            let Some(event) = self.uas.poll_event() else {
                break;
            };
            match event {
                UasEvent::Offer {
                    key,
                    call_id,
                    body,
                    reinvite: false,
                } => self.on_offer(now, key, call_id, &body),
                UasEvent::Offer {
                    key,
                    call_id,
                    body,
                    reinvite: true,
                } => self.on_reoffer(now, &key, &call_id, &body),
                UasEvent::Answered { call_id } => self.on_answered(now, &call_id),
                UasEvent::Ended { call_id } => {
                    if let Some(&index) = self.by_call_id.get(&call_id) {
                        self.end_call(now, index);
                    }
                }
            }
        }
    }

    fn on_offer(&mut self, now: Instant, key: String, call_id: String, body: &[u8]) {
        if let Some(&index) = self.by_call_id.get(&call_id) {
            if matches!(
                self.calls[index].state,
                CallState::Offered { .. } | CallState::Up
            ) {
                // Another INVITE for a call under way (a proxy forking to us
                // twice): a merged request (§8.2.2.2).
                let loop_detected = StatusCode::new(482).unwrap_or(StatusCode::BAD_REQUEST);
                self.uas.refuse_invite(now, &key, loop_detected);
                return;
            }
        }
        let negotiated =
            match SessionDescription::parse(body).and_then(|offer| offer.negotiate_as_answerer()) {
                Ok(negotiated) => negotiated,
                Err(error) => {
                    tracing::info!(media_server = %self.name, %call_id, %error, "offer refused");
                    self.stats.refused_offers += 1;
                    let not_acceptable = StatusCode::new(488).unwrap_or(StatusCode::BAD_REQUEST);
                    self.uas.refuse_invite(now, &key, not_acceptable);
                    return;
                }
            };
        let index = self.calls.len();
        let session_id = self.rng.next_u64() >> 16;
        self.calls.push(ServerCall {
            call_id: call_id.clone(),
            state: CallState::Offered { key },
            codec: negotiated.codec,
            telephone_event: negotiated.telephone_event,
            remote: negotiated.remote,
            sdp_remote: negotiated.remote,
            direction: negotiated.remote_direction.answer(),
            sockets: Vec::new(),
            sending: 0,
            session_id,
            sdp_version: 1,
            started: None,
            started_unix_ms: None,
            ended: None,
            outgoing: None,
            received: Track::default(),
            sent: Track::default(),
            gap: None,
            handovers: Vec::new(),
            dtmf: Vec::new(),
            dtmf_keys: Vec::new(),
            directions: Vec::new(),
            packets_sent: 0,
            packets_received: 0,
            packets_ignored: 0,
            recording: None,
            recording_error: None,
            scheduled: None,
        });
        self.by_call_id.insert(call_id, index);
        let socket = self.open_socket(index);
        self.calls[index].sending = socket;
    }

    /// The SDP answer of call `index`, from the socket it sends from now.
    fn answer_sdp(&self, index: usize) -> Option<Bytes> {
        let call = &self.calls[index];
        let rtp = call.local_addr(call.sending)?;
        Some(
            Description {
                user: "hotsite-lab-media",
                session_id: call.session_id,
                version: call.sdp_version,
                rtp,
                codecs: &[call.codec],
                telephone_event: call.telephone_event,
                direction: call.direction,
            }
            .to_bytes(),
        )
    }

    fn on_reoffer(&mut self, now: Instant, key: &str, call_id: &str, body: &[u8]) {
        let not_acceptable = StatusCode::new(488).unwrap_or(StatusCode::BAD_REQUEST);
        let Some(&index) = self.by_call_id.get(call_id) else {
            self.uas
                .refuse_invite(now, key, StatusCode::CALL_DOES_NOT_EXIST);
            return;
        };
        let negotiated =
            match SessionDescription::parse(body).and_then(|offer| offer.negotiate_as_answerer()) {
                Ok(negotiated) => negotiated,
                Err(error) => {
                    tracing::info!(media_server = %self.name, %call_id, %error, "re-offer refused");
                    self.stats.refused_offers += 1;
                    self.uas.refuse_invite(now, key, not_acceptable);
                    return;
                }
            };
        // Packets due before the change go out under the old direction.
        self.run_call(now, index);
        let call = &mut self.calls[index];
        if negotiated.remote != call.sdp_remote {
            call.sdp_remote = negotiated.remote;
            call.remote = negotiated.remote;
        }
        let answered = negotiated.remote_direction.answer();
        call.direction = answered;
        call.sdp_version += 1;
        call.directions.push(DirectionChange {
            at_ms: call.ms(now),
            offered: negotiated.remote_direction,
            answered,
        });
        tracing::info!(
            media_server = %self.name,
            %call_id,
            offered = negotiated.remote_direction.as_str(),
            answered = answered.as_str(),
            "re-INVITE answered"
        );
        match self.answer_sdp(index) {
            Some(sdp) => self.uas.answer_invite(key, sdp),
            None => self
                .uas
                .refuse_invite(now, key, StatusCode::SERVICE_UNAVAILABLE),
        }
        self.schedule(index);
    }

    fn on_answered(&mut self, now: Instant, call_id: &str) {
        let Some(&index) = self.by_call_id.get(call_id) else {
            return;
        };
        if !matches!(self.calls[index].state, CallState::Offered { .. }) {
            return;
        }
        let started_unix_ms = self.unix_ms(now);
        let outgoing = Outgoing::new(
            Signal::MEDIA_SERVER,
            self.calls[index].codec,
            now,
            &mut self.rng,
        );
        let call = &mut self.calls[index];
        call.state = CallState::Up;
        call.started = Some(now);
        call.started_unix_ms = Some(started_unix_ms);
        call.outgoing = Some(outgoing);
        self.stats.calls += 1;
        tracing::info!(
            media_server = %self.name,
            %call_id,
            remote = ?call.remote,
            "media call up"
        );
        self.schedule(index);
    }

    /// Sends what is due for call `index` up to `now`, ending its gap when
    /// its time comes.
    fn run_call(&mut self, now: Instant, index: usize) {
        if self.calls[index].state != CallState::Up {
            return;
        }
        loop {
            let call = &mut self.calls[index];
            let Some(due) = call.outgoing.as_ref().map(Outgoing::due) else {
                return;
            };
            let gap_until = call.gap.as_ref().map(|gap| gap.until);
            if let Some(until) = gap_until.filter(|until| *until <= now && *until <= due) {
                self.end_gap(index, until);
                continue;
            }
            if due > now {
                return;
            }
            let Some(outgoing) = call.outgoing.as_mut() else {
                return;
            };
            match call.remote {
                Some(to) if gap_until.is_none() && call.direction.sends() => {
                    let packet = outgoing.send_next();
                    call.sent.write(
                        packet.index as usize * packet.samples.len(),
                        &packet.samples,
                    );
                    call.packets_sent += 1;
                    self.stats.rtp_sent += 1;
                    self.outputs.push_back(Output::Rtp {
                        socket: call.sending,
                        to,
                        bytes: packet.bytes,
                    });
                }
                _ => outgoing.skip_next(),
            }
        }
    }

    /// The stream resumes as another media server's: from the new socket
    /// (if it could be bound), with a new SSRC and jumped numbering.
    fn end_gap(&mut self, index: usize, at: Instant) {
        let ssrc = self.rng.next_u64() as u32;
        let sequence_jump = (JUMP_MIN + self.rng.below_or_equal(JUMP_MAX - JUMP_MIN)) as u16;
        let timestamp_jump = (JUMP_MIN + self.rng.below_or_equal(JUMP_MAX - JUMP_MIN)) as u32;
        let call = &mut self.calls[index];
        let Some(gap) = call.gap.take() else {
            return;
        };
        let to_port = call.local_addr(gap.socket).map(|addr| addr.port());
        if to_port.is_some() {
            call.sending = gap.socket;
        }
        if let Some(outgoing) = call.outgoing.as_mut() {
            outgoing.rebase(ssrc, sequence_jump, timestamp_jump);
        }
        let ended_ms = call.ms(at);
        if let Some(handover) = call.handovers.last_mut() {
            handover.ended_ms = Some(ended_ms);
            handover.to_port = to_port;
            handover.new_ssrc = Some(ssrc);
            handover.sequence_jump = Some(sequence_jump);
            handover.timestamp_jump = Some(timestamp_jump);
        }
        tracing::info!(
            media_server = %self.name,
            call_id = %call.call_id,
            ?to_port,
            "media handover: stream resumed"
        );
    }

    fn end_call(&mut self, now: Instant, index: usize) {
        match self.calls[index].state {
            CallState::Offered { .. } => {
                self.calls[index].state = CallState::Failed;
                self.calls[index].ended = Some(now);
                self.close_sockets(index);
            }
            CallState::Up => {
                self.run_call(now, index);
                let call = &mut self.calls[index];
                if call.gap.take().is_some() {
                    // Ended in the gap: the gap ends with the call.
                    let ended_ms = call.ms(now);
                    if let Some(handover) = call.handovers.last_mut() {
                        handover.ended_ms = Some(ended_ms);
                    }
                }
                call.state = CallState::Ended;
                call.ended = Some(now);
                tracing::info!(
                    media_server = %self.name,
                    call_id = %call.call_id,
                    sent = call.packets_sent,
                    received = call.packets_received,
                    "media call ended"
                );
                self.close_sockets(index);
                self.write_recording(now, index);
            }
            CallState::Ended | CallState::Failed => {}
        }
    }

    /// Closes the call's sockets (their addresses stay in its record).
    fn close_sockets(&mut self, index: usize) {
        for (socket, _) in &self.calls[index].sockets {
            if self.sockets.remove(socket).is_some() {
                self.outputs
                    .push_back(Output::CloseSocket { socket: *socket });
            }
        }
    }

    /// Builds the call's WAV and sidecar and asks for them to be written.
    fn write_recording(&mut self, now: Instant, index: usize) {
        let corrupt = self.corrupt;
        let call = &mut self.calls[index];
        let (Some(started), Some(started_unix_ms)) = (call.started, call.started_unix_ms) else {
            return;
        };
        let len = position(started, now);
        let mut received = std::mem::take(&mut call.received);
        let mut sent = std::mem::take(&mut call.sent);
        if corrupt {
            let rate = u64::from(SAMPLE_RATE);
            for handover in &call.handovers {
                let start = (handover.started_ms * rate / 1_000) as usize;
                let end = handover
                    .ended_ms
                    .map_or(len, |ms| (ms * rate / 1_000) as usize)
                    .min(len);
                if start < end {
                    received.fill_noise(start..end, &mut self.rng);
                    sent.fill_noise(start..end, &mut self.rng);
                }
            }
        }
        if received.overflow() + sent.overflow() > 0 {
            tracing::warn!(call_id = %call.call_id, "media recording cut at its length limit");
        }
        let received = received.into_samples(len);
        let sent = sent.into_samples(len);
        let wav = encode_wav(SAMPLE_RATE, &[&received, &sent]);
        let json = CloudRecordingMeta::new(&call.call_id, started_unix_ms).to_json();
        let dir = self.recordings.join(sanitise_call_id(&call.call_id));
        let paths = RecordingPaths {
            wav: dir.join(CLOUD_WAV),
            json: dir.join(CLOUD_JSON),
            dir,
        };
        let id = self.next_write;
        self.next_write += 1;
        self.writes.insert(id, index);
        // The sidecar goes last: once it is there, the WAV is whole.
        self.outputs.push_back(Output::WriteFiles {
            id,
            files: vec![(paths.wav, wav), (paths.json, json.into_bytes())],
        });
    }

    /// Keeps the timer heap's entry for call `index` in step with its deadline.
    fn schedule(&mut self, index: usize) {
        let call = &mut self.calls[index];
        let deadline = call.deadline();
        if call.scheduled != deadline {
            call.scheduled = deadline;
            if let Some(at) = deadline {
                self.timers.push(Reverse((at, index)));
            }
        }
    }

    fn on_rtp(&mut self, now: Instant, index: usize, from: SocketAddr, datagram: &[u8]) {
        let call = &mut self.calls[index];
        let Some(started) = call.started.filter(|_| call.state == CallState::Up) else {
            self.stats.rtp_stray += 1;
            return;
        };
        if call
            .gap
            .as_ref()
            .is_some_and(|gap| now >= gap.started && now < gap.until)
        {
            // The media server is moving: what arrives meanwhile is lost.
            call.packets_ignored += 1;
            self.stats.rtp_ignored += 1;
            return;
        }
        let Some((header, payload)) = parse_packet(datagram) else {
            self.stats.rtp_stray += 1;
            return;
        };
        if call.remote != Some(from) {
            // Symmetric RTP: answer to where the stream comes from.
            tracing::debug!(call_id = %call.call_id, %from, "media: latched the peer's RTP source");
            call.remote = Some(from);
        }
        if Some(header.payload_type) == call.telephone_event {
            let Some(event) = TelephoneEvent::parse(payload) else {
                self.stats.rtp_stray += 1;
                return;
            };
            call.packets_received += 1;
            self.stats.rtp_received += 1;
            let key = (header.ssrc, header.timestamp);
            let duration_ms = u64::from(event.duration) * 1_000 / u64::from(SAMPLE_RATE);
            match call.dtmf_keys.iter().position(|k| *k == key) {
                Some(i) => {
                    let logged = &mut call.dtmf[i];
                    logged.duration_ms = logged.duration_ms.max(duration_ms);
                    logged.ended |= event.end;
                    logged.packets += 1;
                }
                None if call.dtmf.len() < MAX_DTMF_EVENTS => {
                    call.dtmf_keys.push(key);
                    call.dtmf.push(DtmfEvent {
                        event: event.event,
                        digit: TelephoneEvent::digit(event.event),
                        at_ms: call.ms(now),
                        duration_ms,
                        ended: event.end,
                        packets: 1,
                    });
                    self.stats.dtmf_events += 1;
                    tracing::info!(call_id = %call.call_id, event = event.event, "media: DTMF received");
                }
                None => {}
            }
            return;
        }
        let Some(codec) = Codec::from_payload_type(header.payload_type) else {
            self.stats.rtp_stray += 1;
            return;
        };
        call.packets_received += 1;
        self.stats.rtp_received += 1;
        let samples = decode(codec, payload);
        call.received.place(
            position(started, now),
            header.ssrc,
            header.timestamp,
            &samples,
        );
    }
}

impl MediaEndpoint for ServerCore {
    fn handle_sip(&mut self, now: Instant, from: SocketAddr, datagram: Bytes) {
        self.uas.handle_datagram(now, from, datagram);
        self.pump(now);
    }

    fn handle_rtp(&mut self, now: Instant, socket: SocketId, from: SocketAddr, datagram: &[u8]) {
        match self.sockets.get(&socket) {
            Some(&index) => self.on_rtp(now, index, from, datagram),
            None => self.stats.rtp_stray += 1,
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.uas.handle_timeout(now);
        self.pump(now);
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, index))) = self.timers.pop() else {
                break;
            };
            if self.calls[index].scheduled == Some(at) {
                self.calls[index].scheduled = None;
                self.run_call(now, index);
                self.schedule(index);
            }
        }
    }

    fn socket_opened(&mut self, now: Instant, socket: SocketId, bound: Result<SocketAddr, String>) {
        let Some(&index) = self.sockets.get(&socket) else {
            return;
        };
        let call = &mut self.calls[index];
        match bound {
            Ok(addr) => {
                if let Some(entry) = call.sockets.iter_mut().find(|(id, _)| *id == socket) {
                    entry.1 = Some(addr);
                }
            }
            Err(error) => {
                tracing::warn!(call_id = %call.call_id, %error, "media: no RTP socket");
                call.sockets.retain(|(id, _)| *id != socket);
                self.sockets.remove(&socket);
            }
        }
        let call = &self.calls[index];
        if let CallState::Offered { key } = &call.state {
            if call.sending == socket {
                let key = key.clone();
                match self.answer_sdp(index) {
                    Some(sdp) => self.uas.answer_invite(&key, sdp),
                    None => {
                        self.uas
                            .refuse_invite(now, &key, StatusCode::SERVICE_UNAVAILABLE);
                        self.calls[index].state = CallState::Failed;
                    }
                }
                self.pump(now);
            }
        }
    }

    fn files_written(&mut self, _now: Instant, id: u64, written: Result<(), String>) {
        let Some(index) = self.writes.remove(&id) else {
            return;
        };
        let call = &mut self.calls[index];
        let dir = self.recordings.join(sanitise_call_id(&call.call_id));
        match written {
            Ok(()) => {
                self.stats.recordings_written += 1;
                call.recording = Some(RecordingPaths {
                    wav: dir.join(CLOUD_WAV),
                    json: dir.join(CLOUD_JSON),
                    dir,
                });
            }
            Err(error) => {
                tracing::warn!(call_id = %call.call_id, %error, "media: recording not written");
                self.stats.recording_errors += 1;
                call.recording_error = Some(error);
            }
        }
    }

    fn shut_down(&mut self, now: Instant) {
        for index in 0..self.calls.len() {
            self.end_call(now, index);
        }
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.timers.peek().map(|Reverse((at, _))| *at);
        [self.uas.poll_timeout(), calls].into_iter().flatten().min()
    }

    fn is_finished(&self) -> bool {
        false
    }
}
