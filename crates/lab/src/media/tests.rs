//! The media caller and the media server cores against each other in
//! simulated time: SIP and RTP delivered at once, sockets and files faked,
//! no sleeps. A 30 s call with a default-length handover (15–20 s) runs in
//! well under a second, so these tests use the real gap lengths the seed
//! customers see (SPEC R1, R2, R5).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotsite_sip::message::{parse_bytes, Branch, Message, Method, NewRequest, Uri};

use super::caller::{CallerCore, DtmfPlan, HoldPlan, MediaCallerConfig};
use super::driver::{MediaEndpoint, Output, SocketId};
use super::server::{MediaCallInfo, MediaServerConfig, ServerCore};
use super::signal::{find_markers, holes, SAMPLE_RATE};
use super::wav::decode_wav;
use super::Direction;

const CALLER_SIP: &str = "127.0.0.1:5070";
const SERVER_SIP: &str = "127.0.0.2:5080";
const RECORDINGS: &str = "/recordings";

#[allow(clippy::disallowed_methods)] // test epoch: only offsets from it matter
fn epoch() -> Instant {
    Instant::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    Caller,
    Server,
}

/// A caller and a media server wired directly, with fake sockets and files.
struct Sim {
    start: Instant,
    now: Instant,
    caller: CallerCore,
    server: ServerCore,
    /// Bound RTP sockets, both ways.
    by_addr: HashMap<SocketAddr, (Side, SocketId)>,
    by_socket: HashMap<(Side, SocketId), SocketAddr>,
    next_port: u16,
    files: HashMap<PathBuf, Vec<u8>>,
    /// SIP datagrams the server sent, in order (for status checks).
    server_sent: Vec<Bytes>,
}

impl Sim {
    fn new(caller: MediaCallerConfig, server: MediaServerConfig) -> Sim {
        let start = epoch();
        Sim {
            start,
            now: start,
            caller: CallerCore::new(&caller, CALLER_SIP.parse().unwrap(), start),
            server: ServerCore::new(
                &server,
                SERVER_SIP.parse().unwrap(),
                start,
                1_700_000_000_000,
            ),
            by_addr: HashMap::new(),
            by_socket: HashMap::new(),
            next_port: 40_000,
            files: HashMap::new(),
            server_sent: Vec::new(),
        }
    }

    /// One call of `duration` from the caller to the server; T1 = 50 ms.
    fn one_call(
        duration: Duration,
        configure: impl FnOnce(&mut MediaCallerConfig, &mut MediaServerConfig),
    ) -> Sim {
        let mut caller = MediaCallerConfig::new(SERVER_SIP.parse().unwrap(), 1, 1.0, duration);
        caller.sip.listen = CALLER_SIP.parse().unwrap();
        caller.sip.t1 = ms(50);
        caller.sip.t2 = ms(400);
        caller.sip.seed = 1;
        let mut server = MediaServerConfig::new("cloud", SERVER_SIP.parse().unwrap(), RECORDINGS);
        server.t1 = ms(50);
        server.t2 = ms(400);
        server.seed = 7;
        configure(&mut caller, &mut server);
        Sim::new(caller, server)
    }

    fn endpoint(&mut self, side: Side) -> &mut dyn MediaEndpoint {
        match side {
            Side::Caller => &mut self.caller,
            Side::Server => &mut self.server,
        }
    }

    /// Delivers everything either side has to send, until both are quiet.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for side in [Side::Caller, Side::Server] {
                while let Some(output) = self.endpoint(side).poll_output() {
                    moved = true;
                    self.deliver(side, output);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the peers never settled");
    }

    fn deliver(&mut self, side: Side, output: Output) {
        let now = self.now;
        let other = match side {
            Side::Caller => Side::Server,
            Side::Server => Side::Caller,
        };
        match output {
            Output::Sip { to, bytes } => {
                let from: SocketAddr = match side {
                    Side::Caller => CALLER_SIP,
                    Side::Server => SERVER_SIP,
                }
                .parse()
                .unwrap();
                if side == Side::Server {
                    self.server_sent.push(bytes.clone());
                }
                let expected: SocketAddr = match other {
                    Side::Caller => CALLER_SIP,
                    Side::Server => SERVER_SIP,
                }
                .parse()
                .unwrap();
                assert_eq!(to, expected, "SIP goes to the other peer");
                self.endpoint(other).handle_sip(now, from, bytes);
            }
            Output::Rtp { socket, to, bytes } => {
                let from = self.by_socket[&(side, socket)];
                if let Some(&(target_side, target)) = self.by_addr.get(&to) {
                    assert_eq!(target_side, other);
                    self.endpoint(other).handle_rtp(now, target, from, &bytes);
                }
            }
            Output::OpenSocket { socket } => {
                let ip = match side {
                    Side::Caller => [127, 0, 0, 1],
                    Side::Server => [127, 0, 0, 2],
                };
                let addr = SocketAddr::from((ip, self.next_port));
                self.next_port += 2;
                self.by_addr.insert(addr, (side, socket));
                self.by_socket.insert((side, socket), addr);
                self.endpoint(side).socket_opened(now, socket, Ok(addr));
            }
            Output::CloseSocket { socket } => {
                if let Some(addr) = self.by_socket.get(&(side, socket)) {
                    self.by_addr.remove(addr);
                }
            }
            Output::WriteFiles { id, files } => {
                self.files.extend(files);
                self.endpoint(side).files_written(now, id, Ok(()));
            }
        }
    }

    /// Runs until `at` (from the start) or until the caller is finished.
    fn run_until(&mut self, at: Duration) {
        let limit = self.start + at;
        for _ in 0..1_000_000 {
            self.settle();
            if self.caller.is_finished() {
                return;
            }
            let next = [self.caller.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|next| *next <= limit) else {
                self.now = self.now.max(limit);
                self.settle();
                return;
            };
            self.now = self.now.max(next);
            for side in [Side::Caller, Side::Server] {
                let now = self.now;
                if self
                    .endpoint(side)
                    .poll_timeout()
                    .is_some_and(|at| at <= now)
                {
                    self.endpoint(side).handle_timeout(now);
                }
            }
        }
        panic!("the simulation did not reach {at:?}");
    }

    /// Runs until the caller is done (every call hung up and answered).
    fn finish(&mut self) {
        self.run_until(Duration::from_secs(600));
        assert!(self.caller.is_finished(), "the caller finished");
    }

    fn server_call(&self) -> MediaCallInfo {
        let calls = self.server.calls(self.now);
        assert_eq!(calls.len(), 1, "{calls:#?}");
        calls[0].clone()
    }

    /// The cloud recording's two channels and its sidecar.
    fn cloud_recording(&self, call_id: &str) -> (Vec<i16>, Vec<i16>, String) {
        let dir = PathBuf::from(RECORDINGS).join(super::sanitise_call_id(call_id));
        let wav = decode_wav(&self.files[&dir.join("cloud.wav")]).unwrap();
        assert_eq!(wav.sample_rate, SAMPLE_RATE);
        assert_eq!(wav.channels.len(), 2);
        let json = String::from_utf8(self.files[&dir.join("cloud.json")].clone()).unwrap();
        let mut channels = wav.channels.into_iter();
        (channels.next().unwrap(), channels.next().unwrap(), json)
    }

    fn server_statuses(&self) -> Vec<u16> {
        self.server_sent
            .iter()
            .filter_map(|bytes| match parse_bytes(bytes.clone()) {
                Ok(Message::Response(response)) => Some(response.status.as_u16()),
                _ => None,
            })
            .collect()
    }
}

/// Marker indexes of a channel, in order.
fn indexes(samples: &[i16]) -> Vec<u8> {
    find_markers(samples, SAMPLE_RATE)
        .into_iter()
        .map(|(_, index)| index)
        .collect()
}

/// Whether `value` is within `tolerance` of `expected`.
fn near(value: u64, expected: u64, tolerance: u64) -> bool {
    value.abs_diff(expected) <= tolerance
}

/// SPEC R1, R2: a handover with the default gap (15–20 s, seeded) leaves
/// that gap in both channels of the cloud recording, and the caller sees the
/// stream resume from another port with a new SSRC and jumped numbering —
/// and keeps receiving to the end.
#[test]
fn a_default_handover_leaves_its_gap_in_the_cloud_recording_and_a_new_stream_at_the_caller() {
    let mut sim = Sim::one_call(Duration::from_secs(30), |_, _| {});
    sim.run_until(ms(5_000));
    let started = sim.server.handover(sim.now, None, None).unwrap();
    assert_eq!(started.len(), 1);
    let gap_ms = started[0].gap_ms;
    assert!((15_000..=20_000).contains(&gap_ms), "seeded gap {gap_ms}");
    sim.finish();

    let call = sim.server_call();
    assert_eq!(call.state, "ended");
    let handover = &call.handovers[0];
    let resumed_ms = handover.ended_ms.unwrap();
    assert_eq!(resumed_ms, handover.started_ms + gap_ms);
    assert_ne!(handover.to_port, handover.from_port);
    assert!(handover.to_port.is_some());
    assert_ne!(Some(handover.old_ssrc), handover.new_ssrc);
    assert!(
        call.packets_ignored > 0,
        "the caller's packets in the gap were ignored"
    );

    let (received, sent, json) = sim.cloud_recording(&call.call_id);
    let gap = (handover.started_ms, resumed_ms);
    for channel in [&received, &sent] {
        let found = holes(channel, SAMPLE_RATE);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            near(found[0].0, gap.0, 40) && near(found[0].1, gap.1, 40),
            "{found:?} vs {gap:?}"
        );
    }
    // The caller's signal (ch0) and the server's (ch1), second by second,
    // but for the gap's seconds.
    let outside_gap = |second: &u64| *second * 1_000 + 100 <= gap.0 || *second * 1_000 >= gap.1;
    let expected: Vec<u8> = (0..30).filter(outside_gap).map(|s| s as u8).collect();
    assert_eq!(indexes(&sent), expected);
    assert_eq!(indexes(&received), expected);
    for (offset, index) in find_markers(&sent, SAMPLE_RATE) {
        assert_eq!(
            offset,
            usize::from(index) * 8_000,
            "ch1 is on the server's send slots"
        );
    }
    assert_eq!(
        json,
        format!(
            r#"{{"call_id":"{}","started_unix_ms":{},"sample_rate":8000,"channels":["received","sent"]}}"#,
            call.call_id,
            call.started_unix_ms.unwrap()
        )
    );

    let record = &sim.caller.records(sim.now)[0];
    assert_eq!(record.call.status, Some(200));
    assert_eq!(record.streams.len(), 2, "{:#?}", record.streams);
    let (before, after) = (&record.streams[0], &record.streams[1]);
    assert_ne!(
        before.source, after.source,
        "another port after the handover"
    );
    assert_eq!(after.source.port(), handover.to_port.unwrap());
    assert_ne!(before.ssrc, after.ssrc);
    let sequence_jump = after
        .first_sequence
        .wrapping_sub(before.last_sequence)
        .wrapping_sub(1);
    assert!(
        (1_000..=30_000).contains(&sequence_jump),
        "sequence jump {sequence_jump}"
    );
    let slots = u32::try_from((resumed_ms - handover.started_ms) / 20).unwrap();
    let timestamp_jump = after
        .first_timestamp
        .wrapping_sub(before.last_timestamp)
        .wrapping_sub(160 * slots);
    assert!(
        (1_000..=30_000).contains(&timestamp_jump),
        "timestamp jump {timestamp_jump}"
    );
    assert!(near(after.first_ms - before.last_ms, gap_ms, 40));
    assert!(
        after.last_ms >= 29_900,
        "the caller keeps receiving to the end"
    );
    assert_eq!(record.holes.len(), 1, "{:?}", record.holes);
    assert!(near(record.holes[0].1 - record.holes[0].0, gap_ms, 40));
}

/// SPEC R5 (DTMF is kept): a digit sent outside the gap is logged once, with
/// its end; one sent in the gap is not (the media server is moving).
#[test]
fn dtmf_is_logged_once_per_event_outside_the_gap_only() {
    let mut sim = Sim::one_call(Duration::from_secs(8), |caller, _| {
        caller.dtmf = Some(DtmfPlan {
            at: ms(1_000),
            digit: '#',
            duration: ms(100),
        });
    });
    sim.finish();
    let dtmf = sim.server_call().dtmf;
    assert_eq!(dtmf.len(), 1, "{dtmf:?}");
    assert_eq!(dtmf[0].digit, Some('#'));
    assert!(near(dtmf[0].at_ms, 1_000, 40), "{dtmf:?}");
    assert_eq!(
        (dtmf[0].duration_ms, dtmf[0].ended, dtmf[0].packets),
        (100, true, 7)
    );
    let sent = &sim.caller.records(sim.now)[0].dtmf_sent;
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].digit, sent[0].packets), ('#', 7));

    let mut in_gap = Sim::one_call(Duration::from_secs(8), |caller, _| {
        caller.dtmf = Some(DtmfPlan {
            at: ms(3_000),
            digit: '1',
            duration: ms(100),
        });
    });
    in_gap.run_until(ms(2_000));
    in_gap
        .server
        .handover(in_gap.now, None, Some(ms(2_000)))
        .unwrap();
    in_gap.finish();
    assert_eq!(in_gap.server_call().dtmf, Vec::new());
    assert_eq!(in_gap.caller.records(in_gap.now)[0].dtmf_sent.len(), 1);
}

/// SPEC R5 (hold comes from SDP): a re-INVITE with `sendonly` is answered
/// `recvonly` and the server stops sending; `sendrecv` resumes it. The
/// server still records what the held caller sends.
#[test]
fn a_sendonly_reinvite_is_answered_recvonly_and_stops_the_servers_stream() {
    let mut sim = Sim::one_call(Duration::from_secs(6), |caller, _| {
        caller.hold = Some(HoldPlan {
            at: ms(1_000),
            resume_after: Some(ms(2_000)),
        });
    });
    sim.finish();
    let record = &sim.caller.records(sim.now)[0];
    let holds: Vec<_> = record
        .holds
        .iter()
        .map(|h| (h.offered, h.status, h.answered))
        .collect();
    assert_eq!(
        holds,
        vec![
            (Direction::Sendonly, Some(200), Some(Direction::Recvonly)),
            (Direction::Sendrecv, Some(200), Some(Direction::Sendrecv)),
        ]
    );
    assert_eq!(record.holes.len(), 1, "{:?}", record.holes);
    // The resume lands a tick into second 3, whose marker is then cut: the
    // hole may end at the marker's end.
    assert!(
        near(record.holes[0].0, 1_000, 40) && near(record.holes[0].1, 3_000, 120),
        "{:?}",
        record.holes
    );
    let call = sim.server_call();
    let directions: Vec<_> = call
        .directions
        .iter()
        .map(|d| (d.offered, d.answered))
        .collect();
    assert_eq!(
        directions,
        vec![
            (Direction::Sendonly, Direction::Recvonly),
            (Direction::Sendrecv, Direction::Sendrecv),
        ]
    );
    let (received, sent, _) = sim.cloud_recording(&call.call_id);
    assert_eq!(
        holes(&received, SAMPLE_RATE),
        Vec::new(),
        "the held caller kept sending"
    );
    assert_eq!(holes(&sent, SAMPLE_RATE).len(), 1);
}

/// With `corrupt`, the gap holds noise in both channels: still a hole, not
/// silence.
#[test]
fn a_corrupt_gap_is_noise() {
    let mut sim = Sim::one_call(Duration::from_secs(6), |_, server| server.corrupt = true);
    sim.run_until(ms(2_000));
    sim.server.handover(sim.now, None, Some(ms(1_500))).unwrap();
    sim.finish();
    let call = sim.server_call();
    let (received, sent, _) = sim.cloud_recording(&call.call_id);
    for channel in [&received, &sent] {
        let found = holes(channel, SAMPLE_RATE);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            near(found[0].0, 2_000, 40) && near(found[0].1, 3_500, 40),
            "{found:?}"
        );
        let middle = &channel[20_000..26_000];
        assert!(
            middle.iter().filter(|&&s| s != 0).count() > 5_000,
            "noise, not silence"
        );
    }
}

/// A handover of an unknown call, or one not up, is refused; "all" with no
/// call up starts none.
#[test]
fn handovers_of_calls_that_are_not_up_are_refused() {
    let mut sim = Sim::one_call(Duration::from_secs(1), |_, _| {});
    assert_eq!(
        sim.server.handover(sim.now, None, None).unwrap(),
        Vec::new()
    );
    assert!(sim.server.handover(sim.now, Some("nope"), None).is_err());
    sim.run_until(ms(500));
    let call_id = sim.server_call().call_id;
    sim.server
        .handover(sim.now, Some(&call_id), Some(ms(100)))
        .unwrap();
    assert!(matches!(
        sim.server.handover(sim.now, Some(&call_id), None),
        Err(super::MediaError::InHandover(_))
    ));
    sim.finish();
    assert!(matches!(
        sim.server.handover(sim.now, Some(&call_id), None),
        Err(super::MediaError::NotUp { .. })
    ));
}

fn invite(body: &str) -> Bytes {
    let target = Uri::parse(format!("sip:cloud@{SERVER_SIP}")).unwrap();
    let mut invite = NewRequest {
        method: Method::Invite,
        uri: target.clone(),
        from: Uri::parse(format!("sip:probe@{CALLER_SIP}")).unwrap(),
        from_tag: "t1".to_owned(),
        to: target,
        call_id: "bad-sdp@test".to_owned(),
        cseq: 1,
        transport: "UDP".to_owned(),
        sent_by: CALLER_SIP.to_owned(),
        branch: Branch::from_string("z9hG4bK-bad-sdp".to_owned()),
        max_forwards: 70,
        contact: None,
    }
    .build();
    invite.body = Bytes::from(body.to_owned());
    invite.to_bytes()
}

/// An offer the server cannot answer gets `488`, and no call or socket.
#[test]
fn a_bad_offer_is_refused_with_488() {
    for body in [
        "",
        "not sdp at all",
        "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
        "v=0\r\nc=IN IP4 127.0.0.1\r\nm=video 4000 RTP/AVP 96\r\n",
    ] {
        let mut sim = Sim::one_call(Duration::from_secs(1), |_, _| {});
        let now = sim.now;
        sim.server
            .handle_sip(now, CALLER_SIP.parse().unwrap(), invite(body));
        while let Some(output) = sim.server.poll_output() {
            match output {
                Output::Sip { bytes, .. } => sim.server_sent.push(bytes),
                Output::OpenSocket { .. } => panic!("no socket for a refused offer"),
                _ => {}
            }
        }
        assert_eq!(sim.server_statuses(), vec![100, 488], "body {body:?}");
        assert_eq!(sim.server.calls(now), Vec::new());
        assert_eq!(sim.server.stats().refused_offers, 1);
    }
}
