//! Media for recording continuity (SPEC R1–R5): a provider's cloud media
//! server that records calls and hands them over on command, a caller that
//! carries real audio, and the test signal both send so that any recording
//! can be checked for gaps afterwards.
//!
//! # Shape
//!
//! Pure parts: `g711` (µ-law and A-law), `signal` (the test signal, its
//! markers and the detectors), `rtp` (RTP and RFC 4733 events), `sdp` (offer
//! and answer of one audio stream), `stream` (a paced outgoing stream and a
//! recording track), `wav` (the cloud recording's files). The peers are
//! sans-IO cores like the SIP peers' (DESIGN.md): `server::ServerCore` (the
//! SIP trunk's `Uas` in media mode plus each call's RTP) and
//! `caller::CallerCore` (the SIP caller's `Uac` in media mode plus each
//! call's RTP). `driver` runs either on a SIP socket and the RTP sockets the
//! core asks for; [`MediaServer`] and [`MediaCaller`] are the handles.
//!
//! # The test signal ([`signal`])
//!
//! Caller 440 Hz, media server 660 Hz; every second starts with a 100 ms
//! marker carrying the second's index mod 256 (a pseudo-noise sync and 16
//! BPSK bits: the index and its complement). The signal is a function of the
//! sample offset from the sender's start, so a marker at offset `o` with
//! index `i` dates that spot: "second `i` of the sender's stream".
//! [`signal::find_markers`] finds markers after G.711, a gain or a DC offset;
//! [`signal::coverage`] and [`signal::holes`] say in 20 ms blocks where a lab
//! signal is (absent: silence, noise, anything else).
//!
//! # The media server ([`MediaServer`], a provider's cloud media server)
//!
//! SIP, on UDP, with the trunk's transaction behaviour (see `sip`): `100`,
//! `180`, then `200 OK` with an SDP answer once its RTP socket is bound; the
//! 200 repeated until the ACK; `BYE` → `200`; `CANCEL` → `200` + `487`;
//! `OPTIONS` → `200`.
//!
//! - **Offer/answer.** The offer's one `m=audio` stream must be RTP/AVP with
//!   PCMU or PCMA (static or mapped), and a connection address; anything else
//!   (no body, no audio, no common codec, garbage) gets `488 Not Acceptable
//!   Here`. The answer picks PCMU if offered, else PCMA, keeps the offer's
//!   telephone-event payload type if any, gives the server's RTP address and
//!   `a=ptime:20`, and mirrors the direction (`sendonly` → `recvonly`, …).
//!   A re-INVITE is answered at once the same way, from the socket the call
//!   sends from now (hold comes only from SDP, SPEC R5); a bad re-offer gets
//!   `488` and the call goes on as it was. A second INVITE for a call under
//!   way (same Call-ID, new transaction) gets `482`.
//! - **RTP.** Per call from the moment the 200 leaves: one packet every
//!   20 ms (160 bytes of G.711 of [`signal::Signal::MEDIA_SERVER`]), random
//!   SSRC, sequence and timestamp, marker bit on the first packet (and the
//!   first after any pause), to the offer's address — from the call's own
//!   socket, and symmetric: the peer is latched to wherever RTP comes from.
//!   While its direction is `recvonly`/`inactive` it sends nothing (the
//!   schedule and timestamps run on). Anything received is recorded; RFC 4733
//!   events (the offer's telephone-event type) are logged per call, once per
//!   event ([`DtmfEvent`]).
//! - **The cloud recording.** `<recordings>/<sanitised Call-ID>/cloud.wav`
//!   and `cloud.json` ([`wav`] has the exact format), written when the call
//!   ends (BYE; also no ACK within 64·T1, or the server stopping). One
//!   timeline from the moment the 200 left: channel 0 what it received,
//!   placed by arrival (a real-time recorder: within 100 ms of where the
//!   previous packet of the stream puts it, it follows on by timestamp; else
//!   where it arrived), channel 1 what it sent, placed by its send slot;
//!   silence where nothing was. The directory name is
//!   [`sanitise_call_id`].
//! - **Handover** ([`MediaServer::handover`], per call or all calls): the
//!   stream stops for the gap (the command's, else the configured `gap`,
//!   else random in `gap_min..=gap_max`, 15–20 s, seeded). During the gap it
//!   sends nothing and ignores what arrives (counted in `packets_ignored`,
//!   DTMF included: the server is moving); the recording holds silence there,
//!   or noise with `corrupt`. Then the stream resumes from a *new* local port
//!   with a new SSRC, the sequence number and timestamp jumped by 1000–30000
//!   beyond their course, and the marker bit; the old socket keeps receiving
//!   (the advertised address stays valid). Each handover is listed with its
//!   times (ms into the recording), ports, SSRCs and jumps ([`HandoverInfo`]).
//!
//! # The caller with media ([`MediaCaller`])
//!
//! The SIP caller (paced calls, timers, CANCEL, BYE: see `sip`) with a real
//! RTP socket per call on its SIP socket's IP: the INVITE offers PCMU, PCMA
//! and telephone-event 101 (`sendrecv`); from the 2xx it sends
//! [`signal::Signal::CALLER`] to the answer's address every 20 ms until its
//! BYE (the call lasts `sip.hold` from the answer), records what comes back
//! by arrival, and notes each received stream (SSRC and source: a handover
//! shows as a new one, [`ReceivedStream`]). Optionally a DTMF digit at a
//! given time ([`DtmfPlan`]: event packets every 20 ms, the last three with
//! the E bit, beside the audio) and a hold ([`HoldPlan`]: a re-INVITE with
//! `a=sendonly`, then optionally one with `a=sendrecv`; the caller keeps
//! sending). [`MediaCallRecord`] holds per call: packets sent and received,
//! the streams, the holes in the received audio ([`signal::holes`]), DTMF
//! sent and the re-INVITEs with their answers.
//!
//! # From Rust
//!
//! ```ignore
//! let server = MediaServer::start(MediaServerConfig::new("cloud", "127.0.0.1:0".parse()?, dir)).await?;
//! let mut config = MediaCallerConfig::new(server.local_addr(), 1, 1.0, Duration::from_secs(6));
//! config.dtmf = Some(DtmfPlan { at: Duration::from_millis(500), digit: '5', duration: Duration::from_millis(100) });
//! let caller = MediaCaller::start(config).await?;
//! // … once the call is up:
//! server.handover(None, Some(Duration::from_secs(2)))?;
//! let records = caller.wait().await;
//! let paths = server.recording(&records[0].call.call_id).unwrap();
//! let wav = media::wav::decode_wav(&std::fs::read(paths.wav)?)?;
//! let markers = media::signal::find_markers(&wav.channels[0], 8_000);
//! ```

mod caller;
mod driver;
pub mod g711;
pub mod rtp;
mod sdp;
mod server;
pub mod signal;
mod stream;
pub mod wav;

#[cfg(test)]
mod tests;

pub use caller::{
    DtmfPlan, DtmfSent, HoldPlan, HoldRecord, MediaCallRecord, MediaCaller, MediaCallerConfig,
    ReceivedStream,
};
pub use sdp::{Codec, Direction, SdpError};
pub use server::{
    sanitise_call_id, DirectionChange, DtmfEvent, HandoverInfo, HandoverStarted, MediaCallInfo,
    MediaServer, MediaServerConfig, MediaServerStats, RecordingPaths, CLOUD_JSON, CLOUD_WAV,
};

use crate::sip::SipError;

/// Why a media peer could not start, or a request to it was refused.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Its SIP side could not start (a socket that cannot be bound, a bad
    /// SIP setting).
    #[error(transparent)]
    Sip(#[from] SipError),
    /// A setting is out of bounds.
    #[error("invalid {0}")]
    Invalid(String),
    /// No call has this Call-ID.
    #[error("unknown call {0:?}")]
    UnknownCall(String),
    /// The call is not up: not answered yet, or over.
    #[error("call {call_id:?} is not up (it is {state})")]
    NotUp {
        /// The call.
        call_id: String,
        /// `offered`, `ended` or `failed`.
        state: &'static str,
    },
    /// The call is in a handover's gap already.
    #[error("call {0:?} is already in a handover")]
    InHandover(String),
}
