//! The media peers over real UDP on loopback: the caller with media straight
//! to the cloud media server (no proxy), two-way audio, a handover mid-call
//! with a short gap, DTMF, hold by re-INVITE, a bad offer, and the cloud
//! recording's files (SPEC R1, R2, R5). Waits poll with deadlines; the
//! longest test is one 4 s call.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hotsite_lab::media::signal::{dominant_tone, find_markers, holes};
use hotsite_lab::media::wav::decode_wav;
use hotsite_lab::media::{
    sanitise_call_id, Direction, DtmfPlan, HoldPlan, MediaCallInfo, MediaCaller, MediaCallerConfig,
    MediaServer, MediaServerConfig, RecordingPaths,
};
use hotsite_lab::{Lab, LabConfig};
use tokio::net::UdpSocket;
use tokio::time::{sleep, timeout};

const LIMIT: Duration = Duration::from_secs(20);
/// Polls: every 10 ms, at most this many times (20 s).
const POLLS: usize = 2_000;
const POLL: Duration = Duration::from_millis(10);

/// A fresh directory for one test's recordings, removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("hotsite-lab-media-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn server(recordings: &Path) -> MediaServer {
    let mut config = MediaServerConfig::new("cloud", "127.0.0.1:0".parse().unwrap(), recordings);
    config.t1 = Duration::from_millis(50);
    config.t2 = Duration::from_millis(400);
    MediaServer::start(config).await.unwrap()
}

fn caller_config(server: &MediaServer, duration: Duration) -> MediaCallerConfig {
    let mut config = MediaCallerConfig::new(server.local_addr(), 1, 1.0, duration);
    config.sip.t1 = Duration::from_millis(50);
    config.sip.t2 = Duration::from_millis(400);
    config
}

/// Polls `server`'s only call until `done` holds; panics after `LIMIT`.
pub(crate) async fn call_until(
    server: &MediaServer,
    what: &str,
    done: impl Fn(&MediaCallInfo) -> bool,
) -> MediaCallInfo {
    for _ in 0..POLLS {
        if let Some(call) = server.calls().into_iter().next() {
            if done(&call) {
                return call;
            }
        }
        sleep(POLL).await;
    }
    panic!("timed out waiting for {what}: {:#?}", server.calls());
}

/// The recording's channels and sidecar text, once on disk.
async fn recording(
    server: &MediaServer,
    call_id: &str,
) -> (RecordingPaths, Vec<i16>, Vec<i16>, String) {
    let call = call_until(server, "the recording", |call| call.recording.is_some()).await;
    assert_eq!(call.call_id, call_id);
    let paths = call.recording.unwrap();
    let wav = decode_wav(&std::fs::read(&paths.wav).unwrap()).unwrap();
    assert_eq!((wav.sample_rate, wav.channels.len()), (8_000, 2));
    let json = std::fs::read_to_string(&paths.json).unwrap();
    let mut channels = wav.channels.into_iter();
    (
        paths,
        channels.next().unwrap(),
        channels.next().unwrap(),
        json,
    )
}

fn near(value: u64, expected: u64, tolerance: u64) -> bool {
    value.abs_diff(expected) <= tolerance
}

/// SPEC R1, R2, R5: two-way audio straight to the media server; a handover
/// at about 1.2 s with a 1.5 s gap: the cloud recording has a hole of the
/// gap in both channels, the caller sees the stream resume from another
/// port with a new SSRC and jumped sequence and timestamp and keeps
/// receiving; the DTMF digit sent before is logged; BYE writes the files,
/// the sidecar exactly as agreed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handover_mid_call_leaves_the_gap_in_the_cloud_recording_and_a_new_stream() {
    let dir = TempDir::new("handover");
    let server = server(dir.path()).await;
    let mut config = caller_config(&server, Duration::from_secs(4));
    config.dtmf = Some(DtmfPlan {
        at: Duration::from_millis(500),
        digit: '5',
        duration: Duration::from_millis(100),
    });
    let caller = MediaCaller::start(config).await.unwrap();
    call_until(&server, "1.2 s of call", |call| call.duration_ms >= 1_200).await;
    let gap = Duration::from_millis(1_500);
    let started = server.handover(None, Some(gap)).unwrap();
    assert_eq!(started.len(), 1);
    let records = timeout(LIMIT, caller.wait()).await.expect("the call ends");
    let record = &records[0];
    assert_eq!(record.call.status, Some(200));
    assert!(record.call.bye_completed());

    let call_id = record.call.call_id.clone();
    let (paths, received, sent, json) = recording(&server, &call_id).await;
    assert_eq!(paths.dir, dir.path().join(sanitise_call_id(&call_id)));
    let call = server.call(&call_id).unwrap();
    assert_eq!(
        json,
        format!(
            r#"{{"call_id":"{call_id}","started_unix_ms":{},"sample_rate":8000,"channels":["received","sent"]}}"#,
            call.started_unix_ms.unwrap()
        )
    );
    assert_eq!(
        dominant_tone(&received, 8_000),
        Some(440),
        "ch0: what the caller sent"
    );
    assert_eq!(
        dominant_tone(&sent, 8_000),
        Some(660),
        "ch1: what the server sent"
    );

    let handover = &call.handovers[0];
    let (gap_start, gap_end) = (handover.started_ms, handover.ended_ms.unwrap());
    assert_eq!(gap_end - gap_start, 1_500);
    // RTP on an even port, RTCP's beside it (RFC 3550 §11).
    assert_eq!(handover.from_port.map(|port| port % 2), Some(0));
    for (name, channel) in [("received", &received), ("sent", &sent)] {
        let found = holes(channel, 8_000);
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        assert!(
            near(found[0].0, gap_start, 120) && near(found[0].1, gap_end, 120),
            "{name}: {found:?} vs {gap_start}..{gap_end}"
        );
    }
    for (name, channel) in [("received", &received), ("sent", &sent)] {
        let markers = find_markers(channel, 8_000);
        let seconds: Vec<u8> = markers.iter().map(|(_, index)| *index).collect();
        assert!(
            seconds.starts_with(&[0, 1]) && seconds.contains(&3),
            "{name}: {seconds:?}"
        );
        assert!(!seconds.contains(&2), "{name}: second 2 is in the gap");
        for (offset, index) in markers {
            // Each direction's second k sits at k s on the recording's
            // timeline (the caller started on the 200, a moment later).
            let at_ms = offset as u64 / 8;
            assert!(
                near(at_ms, u64::from(index) * 1_000, 100),
                "{name}: marker {index} at {at_ms} ms"
            );
        }
    }
    assert_eq!(call.dtmf.len(), 1, "{:?}", call.dtmf);
    assert_eq!((call.dtmf[0].digit, call.dtmf[0].ended), (Some('5'), true));
    assert!(near(call.dtmf[0].at_ms, 500, 100), "{:?}", call.dtmf);
    assert!(
        call.packets_ignored > 50,
        "the caller's packets in the gap: {}",
        call.packets_ignored
    );

    assert_eq!(record.streams.len(), 2, "{:#?}", record.streams);
    let (before, after) = (&record.streams[0], &record.streams[1]);
    assert_ne!(before.source.port(), after.source.port());
    assert_eq!(Some(after.source.port()), handover.to_port);
    assert_ne!(before.ssrc, after.ssrc);
    let sequence_jump = after
        .first_sequence
        .wrapping_sub(before.last_sequence)
        .wrapping_sub(1);
    assert!(
        (1_000..=30_000).contains(&sequence_jump),
        "sequence jump {sequence_jump}"
    );
    let timestamp_step = after.first_timestamp.wrapping_sub(before.last_timestamp);
    assert!(
        (12_000 + 1_000..=12_000 + 30_000 + 400).contains(&timestamp_step),
        "timestamp step {timestamp_step} over a 1.5 s gap"
    );
    assert!(near(after.first_ms - before.last_ms, 1_500, 120));
    assert!(
        after.last_ms >= 3_800,
        "the caller keeps receiving: {after:?}"
    );
    assert!(
        record.packets_received >= 100 && record.packets_sent >= 190,
        "{record:?}"
    );
    assert_eq!(record.holes.len(), 1, "{:?}", record.holes);
    assert!(
        near(record.holes[0].1 - record.holes[0].0, 1_500, 150),
        "{:?}",
        record.holes
    );
    assert_eq!(record.dtmf_sent[0].packets, 7);
    server.shutdown().await;
}

/// SPEC R5: hold comes from SDP. A re-INVITE with `sendonly` is answered
/// `recvonly`, and the server's stream stops until the `sendrecv` one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sendonly_reinvite_is_answered_recvonly() {
    let dir = TempDir::new("hold");
    let server = server(dir.path()).await;
    let mut config = caller_config(&server, Duration::from_millis(2_500));
    config.hold = Some(HoldPlan {
        at: Duration::from_millis(400),
        resume_after: Some(Duration::from_millis(1_000)),
    });
    let records = timeout(LIMIT, MediaCaller::start(config).await.unwrap().wait())
        .await
        .expect("the call ends");
    let record = &records[0];
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
    assert!(
        near(record.holes[0].0, 400, 100) && near(record.holes[0].1, 1_400, 200),
        "{:?}",
        record.holes
    );
    let call = call_until(&server, "the end", |call| call.state == "ended").await;
    let directions: Vec<_> = call
        .directions
        .iter()
        .map(|d| (d.offered, d.answered))
        .collect();
    assert_eq!(
        directions,
        vec![
            (Direction::Sendonly, Direction::Recvonly),
            (Direction::Sendrecv, Direction::Sendrecv)
        ]
    );
    server.shutdown().await;
}

/// An INVITE whose SDP offers no G.711 gets `100` then `488`, and no call.
#[tokio::test]
async fn a_bad_offer_gets_488() {
    let dir = TempDir::new("bad-offer");
    let server = server(dir.path()).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = socket.local_addr().unwrap();
    let to = server.local_addr();
    let body = "v=0\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    let invite = format!(
        "INVITE sip:cloud@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKbad\r\n\
         Max-Forwards: 70\r\nTo: <sip:cloud@{to}>\r\nFrom: <sip:probe@{me}>;tag=p\r\n\
         Call-ID: bad-offer\r\nCSeq: 1 INVITE\r\nContact: <sip:probe@{me}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.send_to(invite.as_bytes(), to).await.unwrap();
    let mut statuses = Vec::new();
    let mut buffer = vec![0u8; 4096];
    while statuses
        .last()
        .is_none_or(|status: &String| status.starts_with("SIP/2.0 1"))
    {
        let (len, _) = timeout(Duration::from_secs(2), socket.recv_from(&mut buffer))
            .await
            .expect("an answer")
            .unwrap();
        let text = String::from_utf8_lossy(&buffer[..len]).into_owned();
        statuses.push(text.lines().next().unwrap_or_default().to_owned());
    }
    assert_eq!(
        statuses,
        vec!["SIP/2.0 100 Trying", "SIP/2.0 488 Not Acceptable Here"]
    );
    assert_eq!(server.calls(), Vec::new());
    assert_eq!(server.stats().refused_offers, 1);
    server.shutdown().await;
}

/// A server stopped with a call up writes that call's recording first.
#[tokio::test]
async fn shutting_down_writes_the_recordings_of_calls_up() {
    let dir = TempDir::new("shutdown");
    let server = server(dir.path()).await;
    let caller = MediaCaller::start(caller_config(&server, Duration::from_secs(30)))
        .await
        .unwrap();
    let call = call_until(&server, "300 ms of call", |call| call.duration_ms >= 300).await;
    server.shutdown().await;
    let dir = dir.path().join(sanitise_call_id(&call.call_id));
    let wav = decode_wav(&std::fs::read(dir.join("cloud.wav")).unwrap()).unwrap();
    assert!(wav.channels[1].len() >= 2_400);
    assert!(dir.join("cloud.json").exists());
    caller.stop().await;
}

/// SPEC R1, R2: a lab's `[[lab.media_servers]]` starts with the lab and is
/// steered through the control API: calls listed, a handover by Call-ID with
/// the configured gap (refused again while in the gap, 404 for an unknown
/// call or server), and the recording served as a provider's archive would:
/// its paths, the WAV and the sidecar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_media_server_is_steered_and_serves_recordings_over_the_control_api() {
    let dir = TempDir::new("lab");
    let text = format!(
        "[lab]\n[[lab.media_servers]]\nname = \"cloud\"\nrecordings = \"{}\"\ngap_ms = 800\n\
         t1_ms = 50\n",
        dir.path().display()
    );
    let lab = Lab::start(LabConfig::from_toml_str(&text).unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{}/v1/media_servers", lab.control_addr());
    let (name, addr) = lab.media_server_addrs()[0].clone();
    assert_eq!(name, "cloud");
    let status = |response: &reqwest::Response| response.status().as_u16();

    let missing = http.get(format!("{base}/nope/calls")).send().await.unwrap();
    assert_eq!(status(&missing), 404);
    let none = http
        .post(format!("{base}/cloud/handover"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(&none), 200);
    let none: serde_json::Value = none.json().await.unwrap();
    assert_eq!(none["handovers"], serde_json::json!([]));

    let mut config = MediaCallerConfig::new(addr, 1, 1.0, Duration::from_millis(2_500));
    config.sip.t1 = Duration::from_millis(50);
    let caller = MediaCaller::start(config).await.unwrap();
    let mut call_id = None;
    for _ in 0..POLLS {
        let calls: serde_json::Value = http
            .get(format!("{base}/cloud/calls"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if calls[0]["state"] == "up" && calls[0]["duration_ms"].as_u64() >= Some(500) {
            call_id = calls[0]["call_id"].as_str().map(str::to_owned);
            break;
        }
        sleep(POLL).await;
    }
    let call_id = call_id.expect("the call came up");
    let handover = http
        .post(format!("{base}/cloud/handover"))
        .body(format!(r#"{{"call_id":"{call_id}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(status(&handover), 200);
    let handover: serde_json::Value = handover.json().await.unwrap();
    assert_eq!(handover["handovers"][0]["call_id"], call_id.as_str());
    assert_eq!(handover["handovers"][0]["gap_ms"], 800);
    let again = http
        .post(format!(
            "{base}/cloud/handover?call_id={call_id}&gap_ms=100"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(status(&again), 409, "already in a handover");
    let unknown = http
        .post(format!("{base}/cloud/handover"))
        .body(r#"{"call_id":"nope"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(status(&unknown), 404);
    let bad = http
        .post(format!("{base}/cloud/handover"))
        .body(r#"{"gap":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(status(&bad), 400);

    let records = timeout(LIMIT, caller.wait()).await.expect("the call ends");
    assert_eq!(records[0].streams.len(), 2, "{:#?}", records[0].streams);
    let recording_url = format!("{base}/cloud/recordings/{call_id}");
    let mut paths = None;
    for _ in 0..POLLS {
        let response = http.get(&recording_url).send().await.unwrap();
        if status(&response) == 200 {
            paths = Some(response.json::<serde_json::Value>().await.unwrap());
            break;
        }
        assert_eq!(status(&response), 404);
        sleep(POLL).await;
    }
    let paths = paths.expect("the recording is served");
    let dir_name = dir.path().join(sanitise_call_id(&call_id));
    assert_eq!(
        paths["wav"],
        dir_name.join("cloud.wav").display().to_string()
    );
    let wav = http
        .get(format!("{recording_url}?file=wav"))
        .send()
        .await
        .unwrap();
    assert_eq!(wav.headers()["content-type"], "audio/wav");
    let wav = decode_wav(&wav.bytes().await.unwrap()).unwrap();
    let found = holes(&wav.channels[0], 8_000);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(near(found[0].1 - found[0].0, 800, 120), "{found:?}");
    let json = http
        .get(format!("{recording_url}?file=json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(json.starts_with(&format!(r#"{{"call_id":"{call_id}","started_unix_ms":"#)));
    assert!(json.ends_with(r#","sample_rate":8000,"channels":["received","sent"]}"#));
    let odd = http
        .get(format!("{recording_url}?file=mp3"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(&odd), 400);
    let late = http
        .post(format!("{base}/cloud/handover"))
        .body(format!(r#"{{"call_id":"{call_id}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(status(&late), 409, "the call is over");
    let listed: serde_json::Value = http.get(&base).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed[0]["stats"]["handovers"], 1);
    assert_eq!(
        lab.media_server_calls("cloud").unwrap()[0].handovers.len(),
        1
    );
    lab.shutdown().await;
}
