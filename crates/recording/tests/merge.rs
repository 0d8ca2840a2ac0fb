//! The merge of the edge journal and the cloud recording, end to end on
//! files (SPEC R2 gap-free merge, R5 hold and DTMF, V3 regions).
//!
//! Calls are built from a deterministic noise-like signal per direction:
//! sample `k` of direction `d` is `sig(d, k)`, so the edge's packets, the
//! cloud's WAV and the expected output all derive from it.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use hotsite_recording::g711::Law;
use hotsite_recording::journal::{
    Direction, JournalConfig, JournalError, JournalWriter, SegmentLimits, JOURNAL_FILE,
};
use hotsite_recording::merge::dtmf::TelephoneEvent;
use hotsite_recording::merge::{
    merge, AlignMethod, CloudRecording, CloudSidecar, MergeError, MergeOptions, MergeReport,
};
use hotsite_recording::rtp::RtpPacket;
use hotsite_recording::wav::{WavError, WavReader, WavWriter};
use sha2::{Digest, Sha256};

const BASE_MS: u64 = 1_700_000_000_000;
const BASE_NS: u64 = BASE_MS * 1_000_000;
/// ns per sample at 8 kHz.
const NS: u64 = 125_000;
/// Samples per packet (20 ms).
const SPP: u64 = 160;
/// Network delay on top of packetization.
const DELAY_NS: u64 = 5_000_000;

fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hotsite-merge-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A call's directory, removed when the test is done with it.
struct Dir(PathBuf);

impl std::ops::Deref for Dir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Noise-like audio: one clear correlation peak.
fn sig(d: usize, k: u64) -> i16 {
    let mut x = (k as u32).wrapping_mul(2_654_435_761) ^ (d as u32 + 1).wrapping_mul(0x9e37_79b9);
    x ^= x >> 15;
    x = x.wrapping_mul(0x2c1b_3c6d);
    x ^= x >> 12;
    ((x >> 16) as i16) / 4
}

fn law(d: usize) -> Law {
    // a→b PCMU, b→a PCMA: both laws are decoded.
    if d == 0 {
        Law::Ulaw
    } else {
        Law::Alaw
    }
}

/// What the edge decodes for sample `k` of direction `d`.
fn expected(d: usize, k: u64) -> i16 {
    law(d).decode(law(d).encode(sig(d, k)))
}

/// The edge's wall-clock time of sample `k` (what the merge's anchor
/// gives): sent after its packet's 20 ms, plus the network delay.
fn edge_ns(k: u64) -> u64 {
    BASE_NS + (k + SPP) * NS + DELAY_NS
}

fn dir(d: usize) -> Direction {
    if d == 0 {
        Direction::AtoB
    } else {
        Direction::BtoA
    }
}

#[derive(Clone, Copy)]
struct Stream {
    ssrc: u32,
    seq0: u16,
    ts0: u32,
    /// Sample index at `ts0`.
    k0: u64,
}

impl Stream {
    fn new(ssrc: u32, seq0: u16, ts0: u32, k0: u64) -> Self {
        Stream {
            ssrc,
            seq0,
            ts0,
            k0,
        }
    }

    fn rtp(&self, k: u64, pt: u8, marker: bool, payload: &[u8]) -> Vec<u8> {
        let p = RtpPacket {
            marker,
            payload_type: pt,
            sequence: self.seq0.wrapping_add(((k - self.k0) / SPP) as u16),
            timestamp: self.ts0.wrapping_add((k - self.k0) as u32),
            ssrc: self.ssrc,
            csrc: &[],
            extension: None,
            payload,
            padding: 0,
        };
        let mut out = Vec::new();
        p.write_to(&mut out).unwrap();
        out
    }

    /// The G.711 packet of direction `d` whose first sample is `k`.
    fn audio(&self, d: usize, k: u64) -> Vec<u8> {
        let payload: Vec<u8> = (k..k + SPP).map(|i| law(d).encode(sig(d, i))).collect();
        self.rtp(k, law(d).payload_type(), false, &payload)
    }
}

/// Records of a call, written to a journal in arrival order.
struct Call {
    dir: Dir,
    records: Vec<(u64, Option<Direction>, Vec<u8>)>,
}

impl Call {
    fn new(name: &str) -> Self {
        let mut call = Call {
            dir: Dir(temp_dir(name)),
            records: Vec::new(),
        };
        call.note(
            BASE_NS,
            r#"{"type":"call","call_id":"merge@test","trunk":"t1","group":"g1","media_region":"eu-west","failover_region":"eu-central","started_unix_ms":1700000000000}"#,
        );
        call.note(BASE_NS + 1, &sdp("a", "sendrecv"));
        call.note(BASE_NS + 2, &sdp("b", "sendrecv"));
        call
    }

    fn note(&mut self, at: u64, json: &str) {
        self.records.push((at, None, json.as_bytes().to_vec()));
    }

    fn packet(&mut self, at: u64, d: usize, bytes: Vec<u8>) {
        self.records.push((at, Some(dir(d)), bytes));
    }

    /// Audio of direction `d` for samples `from..to` (whole packets), each
    /// arriving at `edge_ns` plus `jitter(k)` ns.
    fn audio(&mut self, d: usize, s: Stream, from: u64, to: u64, jitter: impl Fn(u64) -> u64) {
        for k in (from..to).step_by(SPP as usize) {
            self.packet(edge_ns(k) + jitter(k), d, s.audio(d, k));
        }
    }

    fn write(mut self) -> Dir {
        self.records.sort_by_key(|r| r.0);
        let config = JournalConfig {
            limits: SegmentLimits::default(),
            sync_on_seal: false,
        };
        let mut w = JournalWriter::create_with(&self.dir, "merge@test", config).unwrap();
        for (at, d, bytes) in &self.records {
            match d {
                Some(d) => {
                    w.append(*at, *d, bytes).unwrap();
                }
                None => w.append_note(*at, bytes).unwrap(),
            }
        }
        w.append_note(
            self.records.last().map_or(BASE_NS, |r| r.0),
            br#"{"type":"end","cause":"bye"}"#,
        )
        .unwrap();
        w.finish().unwrap();
        self.dir
    }
}

fn sdp(from: &str, direction: &str) -> String {
    format!(
        r#"{{"type":"sdp","from":"{from}","direction":"{direction}","payload_types":{{"0":"PCMU/8000","8":"PCMA/8000","101":"telephone-event/8000"}}}}"#
    )
}

/// A cloud recording of samples `0..len`: channel `d` holds `expected(d, k)`
/// unless `silent(d, k)`; the sidecar's start is off by `skew_ms`.
fn cloud(
    dir: &Path,
    len: u64,
    skew_ms: i64,
    silent: impl Fn(usize, u64) -> bool,
    channel: impl Fn(usize, u64) -> i16,
) -> CloudRecording {
    let wav = dir.join("cloud.wav");
    let file = std::fs::File::create(&wav).unwrap();
    let mut w = WavWriter::new(BufWriter::new(file), 2).unwrap();
    let mut block = Vec::new();
    for k in 0..len {
        for d in 0..2 {
            block.push(if silent(d, k) { 0 } else { channel(d, k) });
        }
        if block.len() >= 8000 {
            w.write_frames(&block).unwrap();
            block.clear();
        }
    }
    w.write_frames(&block).unwrap();
    w.finish().unwrap();
    let started = (edge_ns(0) / 1_000_000) as i64 + skew_ms;
    let sidecar = CloudSidecar {
        call_id: "merge@test".into(),
        started_unix_ms: started,
        sample_rate: 8000,
        channels: vec!["received".into(), "sent".into()],
    };
    std::fs::write(
        dir.join("cloud.json"),
        serde_json::to_vec(&sidecar).unwrap(),
    )
    .unwrap();
    CloudRecording::open(&wav, &dir.join("cloud.json")).unwrap()
}

fn run(journal: &Path, cloud: Option<&CloudRecording>) -> (MergeReport, [Vec<i16>; 2]) {
    let out = journal.join("merged.wav");
    let report = merge(journal, cloud, &out, &MergeOptions::default()).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(
        report.output.sha256,
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let mut r = WavReader::new(std::io::Cursor::new(bytes)).unwrap();
    let mut all = Vec::new();
    while r.read_frames(&mut all, 100_000).unwrap() > 0 {}
    let channels = [0, 1].map(|ch| all.iter().skip(ch).step_by(2).copied().collect());
    assert_eq!(report.output.frames as usize, all.len() / 2);
    // The report serializes (it goes into the manifest).
    serde_json::to_string(&report).unwrap();
    (report, channels)
}

/// A channel's spans as "Source:start-end" in ms.
fn spans(report: &MergeReport, ch: usize) -> String {
    report.channels[ch]
        .spans
        .iter()
        .map(|s| format!("{:?}:{}-{}", s.source, s.start_ms, s.end_ms))
        .collect::<Vec<_>>()
        .join(" ")
}

fn assert_samples(got: &[i16], d: usize, range: std::ops::Range<u64>) {
    for k in range {
        assert_eq!(got[k as usize], expected(d, k), "direction {d} sample {k}");
    }
}

fn no_jitter(_: u64) -> u64 {
    0
}

#[test]
fn edge_only_is_decoded_and_placed_r2() {
    let mut call = Call::new("edge-only");
    call.audio(0, Stream::new(0x1111, 100, 5000, 0), 0, 16_000, no_jitter);
    call.audio(1, Stream::new(0x2222, 60_000, 99, 0), 0, 16_000, no_jitter);
    let journal = call.write();
    let (report, out) = run(&journal, None);
    assert_eq!(spans(&report, 0), "Edge:0-2000");
    assert_eq!(spans(&report, 1), "Edge:0-2000");
    assert_samples(&out[0], 0, 0..16_000);
    assert_samples(&out[1], 1, 0..16_000);
    assert_eq!(report.output.start_unix_ms, (edge_ns(0) / 1_000_000) as i64);
    assert_eq!(report.packets[0].audio, 100);
    assert_eq!(report.packets[1].duplicates, 0);
    // V3: the call note's regions are in the report.
    let call = report.call.as_ref().unwrap();
    assert_eq!(call.media_region.as_deref(), Some("eu-west"));
    assert_eq!(call.failover_region.as_deref(), Some("eu-central"));
    assert_eq!(report.end_cause.as_deref(), Some("bye"));
    assert_eq!(report.journal.tail, "complete");
    assert!(report.cloud.is_none());
    assert!(report.holds.is_empty());
}

#[test]
fn jitter_and_reordering_do_not_move_audio_r2() {
    let clean = {
        let mut call = Call::new("clean");
        call.audio(0, Stream::new(1, 0, 0, 0), 0, 24_000, no_jitter);
        call.audio(1, Stream::new(2, 0, 0, 0), 0, 24_000, no_jitter);
        run(&call.write(), None)
    };
    // Up to 61 ms of jitter (packets overtake each other), the first
    // packet late and one later packet on time, and duplicates.
    let mut call = Call::new("jitter");
    let jitter = |k: u64| {
        if k == 800 {
            0
        } else {
            (1 + k * 7919 % 61) * 1_000_000
        }
    };
    call.audio(0, Stream::new(1, 0, 0, 0), 0, 24_000, jitter);
    // b→a on time: a wrong anchor for a→b would shift one channel against
    // the other.
    call.audio(1, Stream::new(2, 0, 0, 0), 0, 24_000, no_jitter);
    for k in [1600u64, 3200, 3360] {
        call.packet(
            edge_ns(k) + 70_000_000,
            0,
            Stream::new(1, 0, 0, 0).audio(0, k),
        );
    }
    let (report, out) = run(&call.write(), None);
    assert_eq!(out, clean.1, "jitter moved audio");
    assert_eq!(spans(&report, 0), "Edge:0-3000");
    assert_eq!(report.packets[0].duplicates, 3);
    assert_eq!(report.packets[0].late, 0);
}

#[test]
fn neither_source_is_a_listed_gap_r2() {
    let mut call = Call::new("gap");
    let s = Stream::new(1, 0, 0, 0);
    // 200 ms lost (10 packets) at 1 s.
    call.audio(0, s, 0, 8000, no_jitter);
    call.audio(0, s, 9600, 16_000, no_jitter);
    call.audio(1, Stream::new(2, 0, 0, 0), 0, 16_000, no_jitter);
    let (report, out) = run(&call.write(), None);
    assert_eq!(
        spans(&report, 0),
        "Edge:0-1000 Gap:1000-1200 Edge:1200-2000"
    );
    assert_eq!(report.channels[0].gap_ms, 200);
    let gap = report.channels[0].gaps[0];
    assert_eq!(gap.start_unix_ms, (edge_ns(8000) / 1_000_000) as i64);
    assert!(
        out[0][8000..9600].iter().all(|&s| s == 0),
        "nothing invented"
    );
    assert_samples(&out[0], 0, 9600..16_000);
    assert_eq!(spans(&report, 1), "Edge:0-2000");
}

#[test]
fn cloud_fills_an_edge_hole_aligned_by_correlation_r2() {
    let mut call = Call::new("fill");
    let s = Stream::new(1, 0, 0, 0);
    call.audio(0, s, 0, 40_000, no_jitter);
    call.audio(0, s, 41_600, 80_000, no_jitter); // 200 ms lost at 5 s
    call.audio(1, Stream::new(2, 0, 0, 0), 0, 80_000, no_jitter);
    let journal = call.write();
    // The sidecar's clock is 37 ms late.
    let c = cloud(&journal, 80_000, 37, |_, _| false, expected);
    let (report, out) = run(&journal, Some(&c));
    assert_eq!(
        spans(&report, 0),
        "Edge:0-5000 Cloud:5000-5200 Edge:5200-10000"
    );
    assert_samples(&out[0], 0, 0..80_000);
    let cr = report.cloud.as_ref().unwrap();
    assert_eq!(cr.method, AlignMethod::Correlation);
    assert!((cr.offset_ms + 37.0).abs() < 0.2, "offset {}", cr.offset_ms);
    assert!(cr.correlation.unwrap() > 0.95);
    assert_eq!(spans(&report, 1), "Edge:0-10000");
    // R3: the report goes into the signed manifest as it is, so it holds
    // integers only (the offset and correlation in thousandths).
    let json = serde_json::to_value(&report).unwrap();
    hotsite_recording::manifest::canonical::to_canonical(&json).expect("integers only");
    let offset = json["cloud"]["offset_ms_milli"].as_i64().unwrap();
    assert!((offset + 37_000).abs() < 200, "{offset}");
}

#[test]
fn a_cloud_zero_run_never_fills_a_hole_r2() {
    let mut call = Call::new("zero-run");
    let s = Stream::new(1, 0, 0, 0);
    call.audio(0, s, 0, 40_000, no_jitter);
    call.audio(0, s, 48_000, 80_000, no_jitter); // 1 s lost at 5 s
    call.audio(1, Stream::new(2, 0, 0, 0), 0, 80_000, no_jitter);
    let journal = call.write();
    // The cloud's handover silence (all zeros) covers 4.5 s to 6.5 s.
    let c = cloud(
        &journal,
        80_000,
        0,
        |_, k| (36_000..52_000).contains(&k),
        expected,
    );
    let (report, _) = run(&journal, Some(&c));
    assert_eq!(
        spans(&report, 0),
        "Edge:0-5000 Gap:5000-6000 Edge:6000-10000"
    );
}

#[test]
fn hold_comes_from_sdp_and_a_media_stop_is_a_gap_r5() {
    let mut call = Call::new("hold");
    let b = Stream::new(2, 0, 0, 0);
    call.audio(0, Stream::new(1, 0, 0, 0), 0, 64_000, no_jitter);
    call.audio(1, b, 0, 16_000, no_jitter);
    // a puts b on hold at 2 s (b stops sending), resumes at 4 s.
    call.note(edge_ns(16_000), &sdp("a", "sendonly"));
    call.note(edge_ns(16_000) + 1, &sdp("b", "recvonly"));
    call.note(edge_ns(32_000), &sdp("a", "sendrecv"));
    call.note(edge_ns(32_000) + 1, &sdp("b", "sendrecv"));
    call.audio(1, b, 32_000, 48_000, no_jitter);
    // b's media stops for 1 s at 6 s without any SDP: not hold.
    call.audio(1, b, 56_000, 64_000, no_jitter);
    let (report, _) = run(&call.write(), None);
    assert_eq!(
        spans(&report, 1),
        "Edge:0-2000 Hold:2000-4000 Edge:4000-6000 Gap:6000-7000 Edge:7000-8000"
    );
    assert_eq!(report.holds.len(), 1);
    let hold = &report.holds[0];
    assert_eq!(
        (hold.start_ms, hold.end_ms, hold.ended_by_sdp),
        (2000, 4000, true)
    );
    assert_eq!(report.channels[1].gap_ms, 1000);
    assert_eq!(report.channels[1].hold_ms, 2000);
    assert_eq!(spans(&report, 0), "Edge:0-8000");
}

#[test]
fn dtmf_in_the_failover_window_is_kept_r5() {
    let mut call = Call::new("dtmf");
    let a = Stream::new(1, 0, 0, 0);
    // The caller's audio, replaced by digit 5 from 1.0 s to 1.5 s.
    call.audio(0, a, 0, 8000, no_jitter);
    call.audio(0, a, 12_000, 32_000, no_jitter);
    for (i, duration) in (160..=4000u16).step_by(160).enumerate() {
        let ev = TelephoneEvent {
            event: 5,
            end: false,
            volume: 10,
            duration,
        };
        let pkt = a.rtp(8000, 101, i == 0, &ev.to_bytes());
        call.packet(edge_ns(8000 + u64::from(duration) - SPP), 0, pkt);
    }
    for r in 0..3u64 {
        let ev = TelephoneEvent {
            event: 5,
            end: true,
            volume: 10,
            duration: 4000,
        };
        call.packet(
            edge_ns(12_000) + r * 20_000_000,
            0,
            a.rtp(8000, 101, false, &ev.to_bytes()),
        );
    }
    call.audio(1, Stream::new(2, 0, 0, 0), 0, 32_000, no_jitter);
    let journal = call.write();
    // The cloud heard nothing from 0.5 s to 3.5 s (the failover window).
    let c = cloud(
        &journal,
        32_000,
        0,
        |_, k| (4000..28_000).contains(&k),
        expected,
    );
    let (report, _) = run(&journal, Some(&c));
    assert_eq!(report.dtmf.len(), 1, "{:?}", report.dtmf);
    let e = &report.dtmf[0];
    assert_eq!(
        (
            e.direction,
            e.digit.as_str(),
            e.start_ms,
            e.duration_ms,
            e.end,
            e.packets
        ),
        ("a_to_b", "5", 1000, 500, true, 28)
    );
    assert_eq!(e.start_unix_ms, (edge_ns(8000) / 1_000_000) as i64);
    assert_eq!(report.packets[0].telephone_event, 28);
}

#[test]
fn a_handover_with_new_ssrc_and_jumps_leaves_no_gap_r2() {
    let mut call = Call::new("handover");
    call.audio(0, Stream::new(1, 0, 0, 0), 0, 72_000, no_jitter);
    // b→a: SSRC 0xA until 3 s, then 0xB with jumped sequence and
    // timestamp, the next packet 20 ms later; at 6 s the same SSRC jumps
    // its timestamp again.
    call.audio(
        1,
        Stream::new(0xa, 65_000, 4_000_000_000, 0),
        0,
        24_000,
        no_jitter,
    );
    call.audio(
        1,
        Stream::new(0xb, 40_000, 3_000_000_000, 24_000),
        24_000,
        48_000,
        no_jitter,
    );
    call.audio(
        1,
        Stream::new(0xb, 41_200, 7_000, 48_000),
        48_000,
        72_000,
        no_jitter,
    );
    let (report, out) = run(&call.write(), None);
    assert_eq!(spans(&report, 1), "Edge:0-9000");
    assert_samples(&out[1], 1, 0..72_000);
    let epochs: Vec<_> = report
        .epochs
        .iter()
        .filter(|e| e.direction == "b_to_a")
        .map(|e| (e.ssrc, e.cause, e.audio_start_ms))
        .collect();
    assert_eq!(
        epochs,
        vec![
            (0xa, "first", Some(0)),
            (0xb, "new_ssrc", Some(3000)),
            (0xb, "jump", Some(6000))
        ]
    );
}

#[test]
fn the_providers_handover_gap_is_filled_where_the_edge_heard_audio_r2() {
    // The seed customers' case: the media server hands over at 10 s; its
    // stream stops for 17 s and resumes with a new SSRC; the cloud file has
    // 17 s of zeros in both channels. The edge heard the caller throughout.
    let mut call = Call::new("provider");
    call.audio(0, Stream::new(1, 0, 0, 0), 0, 240_000, no_jitter);
    call.audio(1, Stream::new(0xa, 0, 0, 0), 0, 80_000, no_jitter);
    call.audio(
        1,
        Stream::new(0xb, 30_000, 123_456, 216_000),
        216_000,
        240_000,
        no_jitter,
    );
    let journal = call.write();
    let c = cloud(
        &journal,
        240_000,
        -12,
        |_, k| (80_000..216_000).contains(&k),
        expected,
    );
    let (report, out) = run(&journal, Some(&c));
    assert_eq!(spans(&report, 0), "Edge:0-30000");
    assert_eq!(report.channels[0].gap_ms, 0);
    assert_samples(&out[0], 0, 0..240_000);
    assert_eq!(
        spans(&report, 1),
        "Edge:0-10000 Gap:10000-27000 Edge:27000-30000"
    );
    let cr = report.cloud.as_ref().unwrap();
    assert_eq!(cr.method, AlignMethod::Correlation);
    assert!((cr.offset_ms - 12.0).abs() < 0.2, "offset {}", cr.offset_ms);
    assert_eq!(cr.audio_ms, [13_000, 13_000]);
}

#[test]
fn an_undecodable_codec_is_listed_not_invented_r2() {
    let mut call = Call::new("g729");
    let s = Stream::new(1, 0, 0, 0);
    call.audio(0, s, 0, 8000, no_jitter);
    for k in (8000..16_000).step_by(SPP as usize) {
        call.packet(edge_ns(k), 0, s.rtp(k, 18, false, &[0x55; 20]));
    }
    call.audio(0, s, 16_000, 24_000, no_jitter);
    let (report, out) = run(&call.write(), None);
    assert_eq!(
        spans(&report, 0),
        "Edge:0-1000 Gap:1000-2000 Edge:2000-3000"
    );
    assert!(out[0][8000..16_000].iter().all(|&s| s == 0));
    assert_eq!(report.undecodable.len(), 1);
    let u = &report.undecodable[0];
    assert_eq!(
        (u.payload_type, u.encoding.as_deref(), u.packets),
        (18, Some("G729/8000"), 50)
    );
}

#[test]
fn without_a_confident_correlation_the_timestamp_anchor_is_used_and_said() {
    let mut call = Call::new("fallback");
    call.audio(0, Stream::new(1, 0, 0, 0), 0, 40_000, no_jitter);
    call.audio(1, Stream::new(2, 0, 0, 0), 0, 40_000, no_jitter);
    let journal = call.write();
    // The cloud recorded something else entirely.
    let c = cloud(&journal, 40_000, 0, |_, _| false, |d, k| sig(d + 7, k));
    let (report, _) = run(&journal, Some(&c));
    let cr = report.cloud.as_ref().unwrap();
    assert_eq!(cr.method, AlignMethod::Timestamp);
    assert_eq!(cr.offset_ms, 0.0);
    assert!(cr.correlation.unwrap() < 0.5);
    assert!(cr.note.is_some());
    assert!(report.warnings.iter().any(|w| w.contains("sidecar")));
}

#[test]
fn a_tampered_journal_is_refused_r3() {
    let mut call = Call::new("tampered");
    call.audio(0, Stream::new(1, 0, 0, 0), 0, 16_000, no_jitter);
    let journal = call.write();
    let path = journal.join(JOURNAL_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    let err = merge(
        &journal,
        None,
        &journal.join("m.wav"),
        &MergeOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            MergeError::Journal {
                source: JournalError::Tampered { .. } | JournalError::ChainBroken { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_bad_cloud_file_is_named() {
    let journal = {
        let mut call = Call::new("bad-cloud");
        call.audio(0, Stream::new(1, 0, 0, 0), 0, 1600, no_jitter);
        call.write()
    };
    let c = cloud(&journal, 100, 0, |_, _| false, expected);
    // A 16 kHz file where 8 kHz is expected.
    let mut bytes = std::fs::read(&c.wav).unwrap();
    bytes[24..28].copy_from_slice(&16_000u32.to_le_bytes());
    bytes[28..32].copy_from_slice(&64_000u32.to_le_bytes());
    std::fs::write(&c.wav, bytes).unwrap();
    let err = merge(
        &journal,
        Some(&c),
        &journal.join("m.wav"),
        &MergeOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            MergeError::CloudWav {
                source: WavError::WrongRate { rate: 16_000 },
                ..
            }
        ),
        "{err}"
    );
    let mut sidecar = c.sidecar.clone();
    sidecar.channels = vec!["left".into(), "right".into()];
    assert!(matches!(
        CloudRecording::new(c.wav.clone(), sidecar),
        Err(MergeError::CloudSidecar { .. })
    ));
}
