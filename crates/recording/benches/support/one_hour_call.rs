//! A long two-direction call on disk, for the merge benchmark and the
//! memory measurement (SPEC R2; issue 14's target). Shared by
//! `benches/merge.rs` and `examples/merge_call.rs`.
//!
//! 50 packets/s each way, PCMU, 160-byte payloads, arrival jitter 0–14 ms;
//! b→a hands over at half time (new SSRC, sequence and timestamp jumps,
//! no pause at the edge); a→b loses every 100th packet in the first tenth
//! (the cloud fills those); the cloud WAV has the same audio with 17 s of
//! zeros from half time, and a sidecar whose clock is 23 ms late.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use hotsite_recording::g711::Law;
use hotsite_recording::journal::{Direction, JournalConfig, JournalWriter};
use hotsite_recording::merge::{CloudRecording, CloudSidecar};
use hotsite_recording::rtp::RtpPacket;
use hotsite_recording::wav::WavWriter;

const BASE_NS: u64 = 1_700_000_000_000_000_000;
const NS: u64 = 125_000;
const SPP: u64 = 160;

/// Noise-like audio, different per direction.
fn sig(d: u64, k: u64) -> i16 {
    let mut x = (k as u32).wrapping_mul(2_654_435_761) ^ ((d as u32) + 1).wrapping_mul(0x9e37_79b9);
    x ^= x >> 15;
    x = x.wrapping_mul(0x2c1b_3c6d);
    x ^= x >> 12;
    ((x >> 16) as i16) / 4
}

fn edge_ns(k: u64) -> u64 {
    BASE_NS + (k + SPP) * NS + 5_000_000
}

pub(crate) struct OneHourCall {
    pub(crate) journal: PathBuf,
    pub(crate) cloud: CloudRecording,
    pub(crate) seconds: u64,
}

/// Writes a call of `seconds` into `dir` (journal directory and cloud
/// files), streaming: memory does not grow with `seconds`.
pub(crate) fn generate(dir: &Path, seconds: u64) -> OneHourCall {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let journal = dir.join("call");
    let config = JournalConfig {
        sync_on_seal: false,
        ..JournalConfig::default()
    };
    let mut w = JournalWriter::create_with(&journal, "bench@hotsite", config).unwrap();
    w.append_note(
        BASE_NS,
        br#"{"type":"call","call_id":"bench@hotsite","trunk":"t1","group":"g1","media_region":"eu-west","failover_region":"eu-central","started_unix_ms":1700000000000}"#,
    )
    .unwrap();
    let samples = seconds * 8000;
    let handover = samples / 2 / SPP * SPP;
    let lossy_until = samples / 10;
    let law = Law::Ulaw;
    let mut payload = vec![0u8; SPP as usize];
    let mut out = Vec::with_capacity(200);
    let mut jitter_state = 12345u32;
    for (slot, k) in (0..samples).step_by(SPP as usize).enumerate() {
        let mut pair: [(u64, u64, Vec<u8>); 2] = Default::default();
        for d in 0..2u64 {
            for (i, p) in payload.iter_mut().enumerate() {
                *p = law.encode(sig(d, k + i as u64));
            }
            let (ssrc, seq, ts) = if d == 1 && k >= handover {
                let n = (k - handover) / SPP;
                (
                    0xbbbb,
                    20_000u16.wrapping_add(n as u16),
                    3_000_000_000u32.wrapping_add((k - handover) as u32),
                )
            } else {
                (
                    0xaaaa + d as u32,
                    (slot as u16).wrapping_add(1000 * d as u16),
                    77u32.wrapping_add(k as u32),
                )
            };
            let packet = RtpPacket {
                marker: false,
                payload_type: 0,
                sequence: seq,
                timestamp: ts,
                ssrc,
                csrc: &[],
                extension: None,
                payload: &payload,
                padding: 0,
            };
            out.clear();
            packet.write_to(&mut out).unwrap();
            jitter_state = jitter_state
                .wrapping_mul(1_664_525)
                .wrapping_add(1_013_904_223);
            let jitter = u64::from(jitter_state >> 28) * 1_000_000; // 0–15 ms
            pair[d as usize] = (edge_ns(k) + jitter, d, out.clone());
        }
        pair.sort_by_key(|p| p.0);
        for (at, d, bytes) in pair {
            if d == 0 && k < lossy_until && slot % 100 == 50 {
                continue;
            }
            let direction = if d == 0 {
                Direction::AtoB
            } else {
                Direction::BtoA
            };
            w.append(at, direction, &bytes).unwrap();
        }
    }
    w.append_note(edge_ns(samples), br#"{"type":"end","cause":"bye"}"#)
        .unwrap();
    w.finish().unwrap();

    let wav = dir.join("cloud.wav");
    let file = std::fs::File::create(&wav).unwrap();
    let mut cw = WavWriter::new(BufWriter::with_capacity(1 << 20, file), 2).unwrap();
    let silent = handover..handover + 17 * 8000;
    let mut block = Vec::with_capacity(16_000);
    for k in 0..samples {
        for d in 0..2 {
            block.push(if silent.contains(&k) {
                0
            } else {
                law.decode(law.encode(sig(d, k)))
            });
        }
        if block.len() == 16_000 {
            cw.write_frames(&block).unwrap();
            block.clear();
        }
    }
    cw.write_frames(&block).unwrap();
    cw.finish().unwrap();
    generate_paths(dir, seconds)
}

/// The paths (and sidecar) of a call [`generate`] wrote into `dir`.
pub(crate) fn generate_paths(dir: &Path, seconds: u64) -> OneHourCall {
    let sidecar = CloudSidecar {
        call_id: "bench@hotsite".into(),
        started_unix_ms: (edge_ns(0) / 1_000_000) as i64 + 23,
        sample_rate: 8000,
        channels: vec!["received".into(), "sent".into()],
    };
    OneHourCall {
        journal: dir.join("call"),
        cloud: CloudRecording::new(dir.join("cloud.wav"), sidecar).unwrap(),
        seconds,
    }
}
