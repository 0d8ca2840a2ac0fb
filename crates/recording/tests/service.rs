//! The recording system end to end, without the voice proxy: datagrams fed
//! to its recorder as the media relay would (SPEC R1), then the pipeline's
//! merge (R2), signed manifest (R3) and upload to the local archive (R4),
//! and a restart that takes up a call the previous run left unfinished.

// Test deadlines read the wall clock; the system under test reads its own.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotsite_host::Deps;
use hotsite_recording::config::RecordingConfig;
use hotsite_recording::g711::ulaw_encode;
use hotsite_recording::journal::{Direction, JournalWriter};
use hotsite_recording::manifest::{keys, verify_files, verify_manifest, Files};
use hotsite_recording::recorder::{call_dir, Recorder};
use hotsite_recording::service::{self, CallRecording, RecordingHandle};

const T0_NS: u64 = 1_764_806_400_000_000_000;

fn config(root: &Path, cloud_wait: &str) -> RecordingConfig {
    let key = root.join("key.pem");
    if !key.exists() {
        keys::write_signing_key(&key, &keys::generate_signing_key()).unwrap();
    }
    let text = format!(
        "dir = {:?}\nsigning_key = {:?}\nsync_interval = \"20ms\"\ncloud_dir = {:?}\ncloud_wait = {cloud_wait:?}\n",
        root.join("rec"),
        key,
        root.join("cloud"),
    );
    std::fs::create_dir_all(root.join("cloud")).unwrap();
    toml::from_str(&text).expect("a valid [recording] section")
}

/// 20 ms of a 440 Hz tone (a→b) or 660 Hz (b→a), µ-law.
fn payload(i: u64, hz: f64) -> Vec<u8> {
    (0..160)
        .map(|n| {
            let t = (i * 160 + n) as f64 / 8000.0;
            ulaw_encode((8000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16)
        })
        .collect()
}

fn rtp(seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

const CALL_NOTE: &str = r#"{"type":"call","call_id":"call-1@pbx","trunk":"carrier-a-1","group":"pstn","media_region":"eu-west","failover_region":"eu-central","started_unix_ms":1764806400000}"#;
const SDP_NOTE_A: &str =
    r#"{"type":"sdp","from":"a","direction":"sendrecv","payload_types":{"0":"PCMU/8000"}}"#;
const SDP_NOTE_B: &str =
    r#"{"type":"sdp","from":"b","direction":"sendrecv","payload_types":{"0":"PCMU/8000"}}"#;

/// Feeds `seconds` of a two-way call to the recorder, as the relay would.
fn feed(recorder: &Recorder, call_id: &Arc<str>, seconds: u64) {
    recorder.call_started(call_id, T0_NS, CALL_NOTE.as_bytes().to_vec());
    recorder.note(call_id, T0_NS, SDP_NOTE_A.as_bytes().to_vec());
    recorder.note(call_id, T0_NS, SDP_NOTE_B.as_bytes().to_vec());
    for i in 0..seconds * 50 {
        let at = T0_NS + i * 20_000_000;
        let ts = (i * 160) as u32;
        recorder.packet(
            call_id,
            Direction::AtoB,
            at,
            &rtp(i as u16, ts, 0xa, &payload(i, 440.0)),
        );
        recorder.packet(
            call_id,
            Direction::BtoA,
            at + 1_000_000,
            &rtp(i as u16, ts, 0xb, &payload(i, 660.0)),
        );
    }
    recorder.call_ended(
        call_id,
        T0_NS + seconds * 1_000_000_000,
        br#"{"type":"end","cause":"bye"}"#.to_vec(),
    );
}

async fn processed(handle: &RecordingHandle, calls: usize) -> Vec<CallRecording> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recent = handle.recent();
        if recent.len() >= calls {
            return recent;
        }
        assert!(
            Instant::now() < deadline,
            "{calls} calls not processed within 30 s: {recent:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn archived(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root.join("rec").join("archive"), &mut out);
    out.sort();
    out
}

/// R1–R4: a call's datagrams become a journal, the journal a merged WAV with
/// no gap, a signed manifest that verifies offline, and objects in the
/// archive (the manifest last, with the Call-ID and start time in the tags).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_call_is_merged_signed_and_archived_r1_r2_r3_r4() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), "100ms");
    let (handle, _routes) = service::start(&config, "a", &Deps::detached())
        .await
        .unwrap();
    let call: Arc<str> = Arc::from("call-1@pbx");
    feed(&handle.recorder(), &call, 6);
    let done = processed(&handle, 1).await;
    let record = &done[0];
    assert!(record.ok, "{record:?}");
    assert_eq!(record.call_id, "call-1@pbx");
    assert_eq!(
        record.gap_ms,
        [0, 0],
        "the edge heard every frame of both directions"
    );
    assert!(
        !record.cloud,
        "no cloud recording appeared within cloud_wait"
    );
    assert!(
        (5_900..=6_100).contains(&record.duration_ms),
        "{}",
        record.duration_ms
    );
    // R3: the manifest verifies offline against the call's directory.
    let manifest_path = record.manifest.clone().expect("a manifest");
    let bytes = std::fs::read(&manifest_path).unwrap();
    let manifest = verify_manifest(&bytes, None).expect("signature valid");
    assert_eq!(manifest.call_id, "call-1@pbx");
    assert_eq!(
        (
            manifest.media_region.as_str(),
            manifest.failover_region.as_str()
        ),
        ("eu-west", "eu-central"),
        "V3"
    );
    let files = Files::next_to(&manifest, &record.dir).unwrap();
    verify_files(&manifest, &files).expect("files verify");
    // R4: the merged file, the journal and the manifest are in the archive
    // once the uploader confirmed them.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let names: Vec<String> = archived(tmp.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        if names.iter().any(|n| n == "manifest.json") {
            assert!(names.iter().any(|n| n == "merged.wav"), "{names:?}");
            assert!(names.iter().any(|n| n == "journal.hsj"), "{names:?}");
            let tags = archived(tmp.path())
                .into_iter()
                .find(|p| p.to_string_lossy().ends_with("manifest.json.tags.json"))
                .expect("the local archive's tag sidecar");
            let tags = std::fs::read_to_string(tags).unwrap();
            assert!(
                tags.contains("call-1@pbx") && tags.contains("2025-12-04T00:00:00"),
                "{tags}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing archived within 20 s: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(record.dir.join("upload-queued").exists());
    hotsite_host::System::shutdown(Box::new(handle)).await;
}

/// A call the previous run recorded but never merged (the process died
/// after the call) is taken up at the next start (R1, R4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_left_unprocessed_by_a_crash_is_taken_up_at_start_r1_r4() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), "0s");
    let dir = call_dir(&config.dir.join("calls"), "left@pbx", 1_764_806_400_000);
    let mut writer = JournalWriter::create(&dir, "left@pbx").unwrap();
    writer
        .append_note(
            T0_NS,
            CALL_NOTE.replace("call-1@pbx", "left@pbx").as_bytes(),
        )
        .unwrap();
    for i in 0..150u64 {
        writer
            .append(
                T0_NS + i * 20_000_000,
                Direction::AtoB,
                &rtp(i as u16, (i * 160) as u32, 7, &payload(i, 440.0)),
            )
            .unwrap();
    }
    writer.sync().unwrap();
    // No finish(): as a kill -9 leaves it (unfinished tail).
    drop(writer);
    let (handle, _routes) = service::start(&config, "a", &Deps::detached())
        .await
        .unwrap();
    let done = processed(&handle, 1).await;
    assert!(done[0].ok, "{:?}", done[0]);
    assert_eq!(done[0].call_id, "left@pbx");
    let bytes = std::fs::read(done[0].manifest.as_ref().unwrap()).unwrap();
    let manifest = verify_manifest(&bytes, None).unwrap();
    let tail = serde_json::to_value(manifest.sources.edge.tail).unwrap();
    assert_eq!(
        tail["state"], "unfinished",
        "the manifest says the journal's tail was cut: {tail}"
    );
    hotsite_host::System::shutdown(Box::new(handle)).await;
}

/// An anchored attempt that never carried media (refused, cancelled) is
/// neither merged nor uploaded, and not taken up again at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_without_media_is_not_merged_nor_uploaded() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), "0s");
    let (handle, _routes) = service::start(&config, "a", &Deps::detached())
        .await
        .unwrap();
    let call: Arc<str> = Arc::from("refused@pbx");
    let recorder = handle.recorder();
    recorder.call_started(&call, T0_NS, CALL_NOTE.as_bytes().to_vec());
    recorder.call_ended(
        &call,
        T0_NS + 1,
        br#"{"type":"end","cause":"error"}"#.to_vec(),
    );
    let dir = call_dir(&config.dir.join("calls"), "refused@pbx", T0_NS / 1_000_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dir.join("no-media").exists() {
        assert!(Instant::now() < deadline, "no no-media marker within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(handle.recent().is_empty());
    assert!(!dir.join("merged.wav").exists());
    hotsite_host::System::shutdown(Box::new(handle)).await;
    // A restart does not take it up.
    let (handle, _routes) = service::start(&config, "a", &Deps::detached())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(handle.recent().is_empty());
    assert!(!dir.join("merged.wav").exists());
    hotsite_host::System::shutdown(Box::new(handle)).await;
}
