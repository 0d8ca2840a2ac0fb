//! A caller with media: the SIP caller's [`Uac`] in media mode, with a real
//! RTP socket per call. The behaviour is in the module docs of `media`;
//! [`CallerCore`] is the sans-IO core, [`MediaCaller`] its handle.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotsite_core::Rng;
use serde::Serialize;

use super::driver::{MediaEndpoint, Output, SocketId};
use super::rtp::{parse_packet, TelephoneEvent};
use super::sdp::{Codec, Description, Direction, SessionDescription, TELEPHONE_EVENT_PT};
use super::signal::{holes, Signal, SAMPLE_RATE};
use super::stream::{decode, position, Outgoing, Track, PTIME};
use super::MediaError;
use crate::sip::caller::{Uac, UacEvent};
use crate::sip::driver::Endpoint;
use crate::sip::driver::Running;
use crate::sip::{CallRecord, CallerProgress, SipCallerConfig};

/// How a media caller places its calls: the SIP caller's settings (its
/// `hold` is each call's duration, from the answer to the BYE), and what
/// happens during each call.
#[derive(Debug, Clone)]
pub struct MediaCallerConfig {
    /// Where, how many, how fast, how long.
    pub sip: SipCallerConfig,
    /// Send one DTMF digit (RFC 4733) in every call. Default: none.
    pub dtmf: Option<DtmfPlan>,
    /// Put every call on hold (re-INVITE `sendonly`) and maybe resume it
    /// (re-INVITE `sendrecv`). Default: none.
    pub hold: Option<HoldPlan>,
}

/// A DTMF digit to send in each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPlan {
    /// From the call's answer.
    pub at: Duration,
    /// `0`–`9`, `*`, `#`, `A`–`D`.
    pub digit: char,
    /// How long the key is held (a multiple of 20 ms; at least 20 ms).
    pub duration: Duration,
}

/// A hold in each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldPlan {
    /// From the call's answer: the re-INVITE with `a=sendonly`.
    pub at: Duration,
    /// From the hold: the re-INVITE with `a=sendrecv`. `None`: held to the end.
    pub resume_after: Option<Duration>,
}

impl MediaCallerConfig {
    /// `calls` calls at `rate` calls/s to `target` (a media server, or the
    /// proxy in front of one), each lasting `duration` from its answer.
    pub fn new(target: SocketAddr, calls: u64, rate: f64, duration: Duration) -> MediaCallerConfig {
        let mut sip = SipCallerConfig::new(target, calls, rate);
        sip.hold = duration;
        MediaCallerConfig {
            sip,
            dtmf: None,
            hold: None,
        }
    }

    fn validate(&self) -> Result<(), MediaError> {
        self.sip.validate()?;
        if let Some(dtmf) = &self.dtmf {
            if TelephoneEvent::code(dtmf.digit).is_none() {
                return Err(MediaError::Invalid(format!(
                    "media caller dtmf digit {:?}: must be 0-9, *, #, A-D",
                    dtmf.digit
                )));
            }
            if dtmf.duration < PTIME {
                return Err(MediaError::Invalid(
                    "media caller dtmf duration: at least 20 ms".into(),
                ));
            }
        }
        Ok(())
    }
}

/// One stream the caller received: a run of packets with one SSRC from one
/// source. A media-server handover shows as a new one (SPEC R1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedStream {
    /// Its synchronisation source.
    pub ssrc: u32,
    /// Where the packets came from.
    pub source: SocketAddr,
    /// The first packet's sequence number.
    pub first_sequence: u16,
    /// The last packet's sequence number.
    pub last_sequence: u16,
    /// The first packet's timestamp.
    pub first_timestamp: u32,
    /// The last packet's timestamp.
    pub last_timestamp: u32,
    /// Arrival of the first packet, in ms from the call's answer.
    pub first_ms: u64,
    /// Arrival of the last packet, in ms from the call's answer.
    pub last_ms: u64,
    /// Audio packets in the stream.
    pub packets: u64,
}

/// A DTMF digit sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DtmfSent {
    /// The key.
    pub digit: char,
    /// Its first packet, in ms from the call's answer.
    pub at_ms: u64,
    /// Packets sent for it (3 of them end packets).
    pub packets: u32,
}

/// A re-INVITE sent (hold or resume) and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HoldRecord {
    /// In ms from the call's answer.
    pub at_ms: u64,
    /// `sendonly` (hold) or `sendrecv` (resume).
    pub offered: Direction,
    /// The final answer's status, once it came (`408`: none did).
    pub status: Option<u16>,
    /// The direction of the answer's SDP.
    pub answered: Option<Direction>,
}

/// How one call went, SIP and media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaCallRecord {
    /// The SIP side, as [`crate::SipCaller`] records it.
    pub call: CallRecord,
    /// The caller's RTP socket.
    pub local_rtp: Option<SocketAddr>,
    /// Where the answer said to send RTP.
    pub remote_rtp: Option<SocketAddr>,
    /// The codec the answer chose.
    pub codec: Option<Codec>,
    /// The answer's telephone-event payload type, if it has one.
    pub telephone_event: Option<u8>,
    /// Why no media flowed, if the answer could not be used.
    pub media_error: Option<String>,
    /// Audio packets sent (DTMF packets are in `dtmf_sent`).
    pub packets_sent: u64,
    /// Audio packets received.
    pub packets_received: u64,
    /// The streams received, in order.
    pub streams: Vec<ReceivedStream>,
    /// The received recording's length: from the answer to the end (or now).
    pub received_ms: u64,
    /// Where the received audio lacks the far end's signal
    /// ([`crate::media::signal::holes`]), in ms from the answer.
    pub holes: Vec<(u64, u64)>,
    /// The DTMF digits sent.
    pub dtmf_sent: Vec<DtmfSent>,
    /// The re-INVITEs sent (hold, resume) and their answers.
    pub holds: Vec<HoldRecord>,
    /// Its media is over (BYE sent, or the call failed).
    pub over: bool,
}

/// A running media caller. Dropping it stops the calls without waiting.
pub struct MediaCaller {
    running: Running<CallerCore>,
}

impl MediaCaller {
    /// Binds `config.sip.listen` and starts placing calls. Must be called
    /// within a tokio runtime.
    pub async fn start(config: MediaCallerConfig) -> Result<MediaCaller, MediaError> {
        config.validate()?;
        let running = Running::bind_media("media caller", config.sip.listen, |addr, now, _| {
            CallerCore::new(&config, addr, now)
        })
        .await?;
        tracing::info!(
            addr = %running.local_addr(),
            target = %config.sip.proxy,
            calls = config.sip.calls,
            "media caller started"
        );
        Ok(MediaCaller { running })
    }

    /// Its SIP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.running.local_addr()
    }

    /// The SIP side's counts so far.
    pub fn progress(&self) -> CallerProgress {
        self.running.read(|core, _| core.uac.progress())
    }

    /// Every call placed so far, in order.
    pub fn records(&self) -> Vec<MediaCallRecord> {
        self.running.read(|core, now| core.records(now))
    }

    /// What call `index` received, decoded, on its timeline (sample 0: the
    /// answer).
    pub fn received_audio(&self, index: u64) -> Option<Vec<i16>> {
        self.running
            .read(|core, now| core.received_audio(index, now))
    }

    /// Waits until every call is over, then returns the records.
    pub async fn wait(mut self) -> Vec<MediaCallRecord> {
        self.running.finished().await;
        self.records()
    }

    /// Stops at once and returns the records as they are.
    pub async fn stop(self) -> Vec<MediaCallRecord> {
        let records = self.records();
        self.running.shutdown().await;
        records
    }
}

/// The media caller's core: the SIP caller plus each call's RTP. No socket,
/// no clock.
pub(crate) struct CallerCore {
    uac: Uac,
    dtmf: Option<DtmfPlan>,
    hold: Option<HoldPlan>,
    rng: Rng,
    /// Media state by call index (created when the call asks for its offer).
    calls: Vec<CallerCall>,
    sockets: HashMap<SocketId, usize>,
    next_socket: SocketId,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    outputs: VecDeque<Output>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for its RTP socket.
    Opening,
    /// INVITE sent.
    Calling,
    Up,
    Over,
}

enum DtmfState {
    Idle,
    Pending {
        at: Instant,
    },
    /// Sending: `tick` packets sent so far, of an event that lasts `ticks`.
    Sending {
        timestamp: u32,
        tick: u32,
        ticks: u32,
    },
    Done,
}

enum HoldState {
    Idle,
    Pending { at: Instant },
    Held { resume_at: Option<Instant> },
    Done,
}

struct CallerCall {
    index: u64,
    stage: Stage,
    socket: SocketId,
    local_rtp: Option<SocketAddr>,
    session_id: u64,
    sdp_version: u64,
    remote: Option<SocketAddr>,
    codec: Option<Codec>,
    telephone_event: Option<u8>,
    media_error: Option<String>,
    answered: Option<Instant>,
    over_at: Option<Instant>,
    outgoing: Option<Outgoing>,
    received: Track,
    streams: Vec<ReceivedStream>,
    packets_sent: u64,
    packets_received: u64,
    dtmf: DtmfState,
    dtmf_sent: Vec<DtmfSent>,
    hold: HoldState,
    holds: Vec<HoldRecord>,
    scheduled: Option<Instant>,
}

impl CallerCall {
    fn deadline(&self) -> Option<Instant> {
        if self.stage != Stage::Up {
            return None;
        }
        self.outgoing.as_ref().map(Outgoing::due)
    }

    fn ms(&self, at: Instant) -> u64 {
        self.answered.map_or(0, |answered| {
            u64::try_from(at.saturating_duration_since(answered).as_millis()).unwrap_or(u64::MAX)
        })
    }
}

impl CallerCore {
    pub(crate) fn new(config: &MediaCallerConfig, local: SocketAddr, now: Instant) -> CallerCore {
        let mut uac = Uac::new(&config.sip, local, now);
        uac.enable_media();
        CallerCore {
            uac,
            dtmf: config.dtmf,
            hold: config.hold,
            rng: Rng::new(config.sip.seed ^ 0x006d_6564_6961),
            calls: Vec::new(),
            sockets: HashMap::new(),
            next_socket: 0,
            timers: BinaryHeap::new(),
            outputs: VecDeque::new(),
        }
    }

    pub(crate) fn records(&self, now: Instant) -> Vec<MediaCallRecord> {
        let sip = self.uac.records();
        self.calls
            .iter()
            .filter_map(|call| {
                let record = sip.get(call.index as usize)?.clone();
                let end = call.over_at.unwrap_or(now);
                let audio = self.timeline(call, end);
                Some(MediaCallRecord {
                    call: record,
                    local_rtp: call.local_rtp,
                    remote_rtp: call.remote,
                    codec: call.codec,
                    telephone_event: call.telephone_event,
                    media_error: call.media_error.clone(),
                    packets_sent: call.packets_sent,
                    packets_received: call.packets_received,
                    streams: call.streams.clone(),
                    received_ms: audio.len() as u64 * 1_000 / u64::from(SAMPLE_RATE),
                    holes: holes(&audio, SAMPLE_RATE),
                    dtmf_sent: call.dtmf_sent.clone(),
                    holds: call.holds.clone(),
                    over: call.stage == Stage::Over,
                })
            })
            .collect()
    }

    pub(crate) fn received_audio(&self, index: u64, now: Instant) -> Option<Vec<i16>> {
        let call = self.calls.get(usize::try_from(index).ok()?)?;
        Some(self.timeline(call, call.over_at.unwrap_or(now)))
    }

    /// The received track from the answer to `end`.
    fn timeline(&self, call: &CallerCall, end: Instant) -> Vec<i16> {
        let len = call.answered.map_or(0, |answered| position(answered, end));
        let mut audio = call.received.samples().to_vec();
        audio.resize(len, 0);
        audio
    }

    fn offer(&self, index: usize, direction: Direction) -> Option<Bytes> {
        let call = &self.calls[index];
        Some(
            Description {
                user: "hotsite-lab-caller",
                session_id: call.session_id,
                version: call.sdp_version,
                rtp: call.local_rtp?,
                codecs: &[Codec::Pcmu, Codec::Pcma],
                telephone_event: Some(TELEPHONE_EVENT_PT),
                direction,
            }
            .to_bytes(),
        )
    }

    /// Moves the SIP core's datagrams out and acts on its events.
    fn pump(&mut self, now: Instant) {
        loop {
            while let Some((to, bytes)) = self.uac.poll_transmit() {
                self.outputs.push_back(Output::Sip { to, bytes });
            }
            let Some(event) = self.uac.poll_event() else {
                break;
            };
            match event {
                UacEvent::NeedOffer { index } => {
                    let socket = self.next_socket;
                    self.next_socket += 1;
                    let slot = self.calls.len();
                    self.calls.push(CallerCall {
                        index,
                        stage: Stage::Opening,
                        socket,
                        local_rtp: None,
                        session_id: self.rng.next_u64() >> 16,
                        sdp_version: 1,
                        remote: None,
                        codec: None,
                        telephone_event: None,
                        media_error: None,
                        answered: None,
                        over_at: None,
                        outgoing: None,
                        received: Track::default(),
                        streams: Vec::new(),
                        packets_sent: 0,
                        packets_received: 0,
                        dtmf: DtmfState::Idle,
                        dtmf_sent: Vec::new(),
                        hold: HoldState::Idle,
                        holds: Vec::new(),
                        scheduled: None,
                    });
                    self.sockets.insert(socket, slot);
                    self.outputs.push_back(Output::OpenSocket { socket });
                }
                UacEvent::Answered { index, body } => self.on_answered(now, index, &body),
                UacEvent::Reinvited {
                    index,
                    status,
                    body,
                } => {
                    if let Some(call) = self.call_mut(index) {
                        let answered = SessionDescription::parse(&body)
                            .ok()
                            .map(|sdp| sdp.direction);
                        if let Some(hold) = call.holds.iter_mut().rev().find(|h| h.status.is_none())
                        {
                            hold.status = Some(status);
                            hold.answered = answered;
                        }
                    }
                }
                UacEvent::Over { index } => self.on_over(now, index),
            }
        }
    }

    fn slot(&self, index: u64) -> Option<usize> {
        // Calls ask for offers in order, so the slot is the index; checked.
        let slot = usize::try_from(index).ok()?;
        (self.calls.get(slot)?.index == index).then_some(slot)
    }

    fn call_mut(&mut self, index: u64) -> Option<&mut CallerCall> {
        let slot = self.slot(index)?;
        self.calls.get_mut(slot)
    }

    fn on_answered(&mut self, now: Instant, index: u64, body: &[u8]) {
        let Some(slot) = self.slot(index) else {
            return;
        };
        let dtmf = self.dtmf;
        let hold = self.hold;
        let negotiated = SessionDescription::parse(body).and_then(|sdp| sdp.negotiate_as_offerer());
        let outgoing = match &negotiated {
            Ok(negotiated) => Some(Outgoing::new(
                Signal::CALLER,
                negotiated.codec,
                now,
                &mut self.rng,
            )),
            Err(_) => None,
        };
        let call = &mut self.calls[slot];
        call.stage = Stage::Up;
        call.answered = Some(now);
        match negotiated {
            Ok(negotiated) => {
                call.remote = negotiated.remote;
                call.codec = Some(negotiated.codec);
                call.telephone_event = negotiated.telephone_event;
                call.outgoing = outgoing;
            }
            Err(error) => {
                tracing::warn!(call = index, %error, "media caller: unusable SDP answer");
                call.media_error = Some(error.to_string());
            }
        }
        if let Some(plan) = dtmf {
            call.dtmf = DtmfState::Pending { at: now + plan.at };
        }
        if let Some(plan) = hold {
            call.hold = HoldState::Pending { at: now + plan.at };
        }
        self.schedule(slot);
    }

    fn on_over(&mut self, now: Instant, index: u64) {
        let Some(slot) = self.slot(index) else {
            return;
        };
        let call = &mut self.calls[slot];
        if call.stage == Stage::Over {
            return;
        }
        if call.stage == Stage::Up {
            // Packets due up to the BYE go out.
            self.run_call(now, slot);
        }
        let call = &mut self.calls[slot];
        call.stage = Stage::Over;
        call.over_at = Some(now);
        if self.sockets.remove(&call.socket).is_some() {
            self.outputs.push_back(Output::CloseSocket {
                socket: call.socket,
            });
        }
    }

    /// Sends what is due for call `slot` up to `now`: audio, DTMF, and the
    /// hold's re-INVITEs, on the 20 ms ticks.
    fn run_call(&mut self, now: Instant, slot: usize) {
        loop {
            let call = &mut self.calls[slot];
            if call.stage != Stage::Up {
                return;
            }
            let Some(outgoing) = call.outgoing.as_mut() else {
                return;
            };
            let due = outgoing.due();
            if due > now {
                return;
            }
            // The tick's hold step first: a re-INVITE is SIP, not RTP.
            let reinvite = match call.hold {
                HoldState::Pending { at } if at <= due => Some(Direction::Sendonly),
                HoldState::Held {
                    resume_at: Some(at),
                } if at <= due => Some(Direction::Sendrecv),
                _ => None,
            };
            let event_timestamp = outgoing.timestamp();
            let Some(to) = call.remote else {
                outgoing.skip_next();
                continue;
            };
            let packet = outgoing.send_next();
            call.packets_sent += 1;
            self.outputs.push_back(Output::Rtp {
                socket: call.socket,
                to,
                bytes: packet.bytes,
            });
            self.send_dtmf(slot, due, event_timestamp, to);
            if let Some(direction) = reinvite {
                self.send_reinvite(now, slot, due, direction);
            }
        }
    }

    /// The DTMF packets of the tick at `due`, if a digit is being sent.
    fn send_dtmf(&mut self, slot: usize, due: Instant, timestamp: u32, to: SocketAddr) {
        let Some(plan) = self.dtmf else {
            return;
        };
        let call = &mut self.calls[slot];
        let (Some(payload_type), Some(outgoing)) = (call.telephone_event, call.outgoing.as_mut())
        else {
            return;
        };
        let Some(event) = TelephoneEvent::code(plan.digit) else {
            return;
        };
        if let DtmfState::Pending { at } = call.dtmf {
            if at <= due {
                let ticks = (plan.duration.as_millis() / PTIME.as_millis()).max(1) as u32;
                call.dtmf = DtmfState::Sending {
                    timestamp,
                    tick: 0,
                    ticks,
                };
                call.dtmf_sent.push(DtmfSent {
                    digit: plan.digit,
                    at_ms: call.answered.map_or(0, |answered| {
                        due.saturating_duration_since(answered).as_millis() as u64
                    }),
                    packets: 0,
                });
            }
        }
        let DtmfState::Sending {
            timestamp,
            tick,
            ticks,
        } = call.dtmf
        else {
            return;
        };
        // Ticks 0..ticks-1 report the duration so far; the last three, with
        // the E bit, the whole duration (RFC 4733 §2.5.1.4).
        let end = tick + 1 >= ticks;
        let units = if end { ticks } else { tick + 1 } * 160;
        let packet = outgoing.event_packet(
            payload_type,
            TelephoneEvent {
                event,
                end,
                volume: 10,
                duration: units.min(u32::from(u16::MAX)) as u16,
            },
            timestamp,
            tick == 0,
        );
        self.outputs.push_back(Output::Rtp {
            socket: call.socket,
            to,
            bytes: packet,
        });
        if let Some(sent) = call.dtmf_sent.last_mut() {
            sent.packets += 1;
        }
        call.dtmf = if tick + 1 >= ticks + 2 {
            DtmfState::Done
        } else {
            DtmfState::Sending {
                timestamp,
                tick: tick + 1,
                ticks,
            }
        };
    }

    fn send_reinvite(&mut self, now: Instant, slot: usize, due: Instant, direction: Direction) {
        let resume_after = self.hold.and_then(|plan| plan.resume_after);
        self.calls[slot].sdp_version += 1;
        let Some(offer) = self.offer(slot, direction) else {
            return;
        };
        let index = self.calls[slot].index;
        if !self.uac.reinvite(now, index, offer) {
            // One is pending (or the call is ending): try on a later tick.
            return;
        }
        let call = &mut self.calls[slot];
        let at_ms = call.ms(due);
        call.holds.push(HoldRecord {
            at_ms,
            offered: direction,
            status: None,
            answered: None,
        });
        call.hold = match direction {
            Direction::Sendonly => HoldState::Held {
                resume_at: resume_after.map(|after| due + after),
            },
            _ => HoldState::Done,
        };
        tracing::info!(
            call = index,
            direction = direction.as_str(),
            "media caller: re-INVITE"
        );
    }

    /// Keeps the timer heap's entry for call `slot` in step with its deadline.
    fn schedule(&mut self, slot: usize) {
        let call = &mut self.calls[slot];
        let deadline = call.deadline();
        if call.scheduled != deadline {
            call.scheduled = deadline;
            if let Some(at) = deadline {
                self.timers.push(Reverse((at, slot)));
            }
        }
    }

    fn on_rtp(&mut self, now: Instant, slot: usize, from: SocketAddr, datagram: &[u8]) {
        let call = &mut self.calls[slot];
        let Some(answered) = call.answered.filter(|_| call.stage == Stage::Up) else {
            return;
        };
        let Some((header, payload)) = parse_packet(datagram) else {
            return;
        };
        let Some(codec) = Codec::from_payload_type(header.payload_type) else {
            return;
        };
        call.packets_received += 1;
        let at_ms = call.ms(now);
        match call.streams.last_mut() {
            Some(stream) if stream.ssrc == header.ssrc && stream.source == from => {
                stream.last_sequence = header.sequence;
                stream.last_timestamp = header.timestamp;
                stream.last_ms = at_ms;
                stream.packets += 1;
            }
            _ => call.streams.push(ReceivedStream {
                ssrc: header.ssrc,
                source: from,
                first_sequence: header.sequence,
                last_sequence: header.sequence,
                first_timestamp: header.timestamp,
                last_timestamp: header.timestamp,
                first_ms: at_ms,
                last_ms: at_ms,
                packets: 1,
            }),
        }
        let samples = decode(codec, payload);
        call.received.place(
            position(answered, now),
            header.ssrc,
            header.timestamp,
            &samples,
        );
    }
}

impl MediaEndpoint for CallerCore {
    fn handle_sip(&mut self, now: Instant, from: SocketAddr, datagram: Bytes) {
        self.uac.handle_datagram(now, from, datagram);
        self.pump(now);
    }

    fn handle_rtp(&mut self, now: Instant, socket: SocketId, from: SocketAddr, datagram: &[u8]) {
        if let Some(&slot) = self.sockets.get(&socket) {
            self.on_rtp(now, slot, from, datagram);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.uac.poll_timeout().is_some_and(|at| at <= now) {
            self.uac.handle_timeout(now);
        }
        self.pump(now);
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, slot))) = self.timers.pop() else {
                break;
            };
            if self.calls[slot].scheduled == Some(at) {
                self.calls[slot].scheduled = None;
                self.run_call(now, slot);
                self.schedule(slot);
            }
        }
        // A re-INVITE sent by a tick goes out with it.
        self.pump(now);
    }

    fn socket_opened(&mut self, now: Instant, socket: SocketId, bound: Result<SocketAddr, String>) {
        let Some(&slot) = self.sockets.get(&socket) else {
            return;
        };
        let index = self.calls[slot].index;
        match bound {
            Ok(addr) => {
                self.calls[slot].local_rtp = Some(addr);
                self.calls[slot].stage = Stage::Calling;
                let placed = self
                    .offer(slot, Direction::Sendrecv)
                    .is_some_and(|offer| self.uac.place_with_offer(now, index, offer));
                if !placed {
                    self.calls[slot].stage = Stage::Over;
                    self.uac.abandon(now, index);
                }
            }
            Err(error) => {
                self.calls[slot].media_error = Some(format!("no RTP socket: {error}"));
                self.calls[slot].stage = Stage::Over;
                self.sockets.remove(&socket);
                self.uac.abandon(now, index);
            }
        }
        self.pump(now);
    }

    fn files_written(&mut self, _now: Instant, _id: u64, _written: Result<(), String>) {}

    fn shut_down(&mut self, now: Instant) {
        for slot in 0..self.calls.len() {
            let index = self.calls[slot].index;
            self.on_over(now, index);
        }
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.timers.peek().map(|Reverse((at, _))| *at);
        [self.uac.poll_timeout(), calls].into_iter().flatten().min()
    }

    fn is_finished(&self) -> bool {
        self.uac.is_finished() && self.calls.iter().all(|call| call.stage == Stage::Over)
    }
}
