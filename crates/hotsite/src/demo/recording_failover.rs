//! `recording-failover`: calls recorded at the edge while the provider's
//! media server hands them over (SPEC R1–R5, V3).
//!
//! A lab cloud media server (`hotsite_lab::MediaServer`) answers the calls,
//! sends its test signal (660 Hz with a numbered marker every second) and
//! records what it hears and sends: the provider's "cloud recording". The
//! voice proxy anchors the calls' media (`media = "anchor"`), so every RTP
//! packet of both directions passes hotsite, whose recorder journals it
//! (R1). A lab caller (`hotsite_lab::MediaCaller`) places the calls with its
//! own signal (440 Hz, markers), sends a DTMF digit while the media server
//! is gone and puts the call on hold with `sendonly` after it is back.
//!
//! Eight seconds into the calls the media server hands every call over: its
//! stream stops for 15–20 s and resumes from another port with a new SSRC
//! and jumped sequence and timestamp; its recording of that span is silence,
//! as customers see. After the calls end, hotsite's pipeline takes each
//! call's cloud recording from the provider's archive, merges it with the
//! edge journal (R2), signs the manifest (R3) and uploads merged file,
//! journal, cloud copy and manifest to the archive folder (R4).
//!
//! The report per call: the cloud's gap, the merged file's gap in the
//! caller's direction (must be 0 ms: the edge heard it), checked twice — by
//! the merge's own spans and by finding the caller's markers in the merged
//! file — the media server's direction (nobody sent during the handover: a
//! listed gap, not invented audio, and not hold), the DTMF digit sent in the
//! window, the hold (from SDP only, R5), the manifest verified offline, a
//! flipped byte caught by the verifier, and the objects in the archive with
//! their Call-ID and start-time tags. It fails on any gap where the edge
//! heard audio, a failed verify, or a missing object.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use hotsite_lab::media::signal::{find_markers, holes};
use hotsite_lab::media::wav::decode_wav;
use hotsite_lab::{MediaCaller, MediaCallerConfig, MediaServer, MediaServerConfig};
use hotsite_recording::config::RecordingConfig;
use hotsite_recording::manifest::{keys, verify_files, verify_manifest, Files, VerifyingKey};
use hotsite_recording::service::{self, CallRecording};
use hotsite_voice::VoiceConfig;
use serde::Serialize;

use super::{Progress, Settings};
use crate::recording_tap::RecorderTap;

/// How long each call lasts from its answer.
const CALL: Duration = Duration::from_secs(40);
/// When the media server hands the calls over (after their answer).
const HANDOVER_AT: Duration = Duration::from_secs(8);
/// When the caller sends its DTMF digit: inside the handover's gap.
const DTMF_AT: Duration = Duration::from_secs(14);
/// When the caller puts the call on hold (after the gap), and for how long.
const HOLD_AT: Duration = Duration::from_secs(31);
const HOLD_FOR: Duration = Duration::from_secs(3);
/// How long the pipeline waits for the provider's archive.
const CLOUD_WAIT: &str = "15s";
/// A marker every second: a merged channel whose markers are all there has
/// no hole longer than the gap between two markers.
const MARKER_SPACING_MS: u64 = 1_000;

/// One call's part of the report.
#[derive(Debug, Serialize)]
struct CallReport {
    call_id: String,
    ok: bool,
    /// The media server's handover gap, as it reported it.
    cloud_gap_ms: u64,
    /// The cloud recording's holes in the caller's direction (its silence).
    cloud_holes_caller_ms: u64,
    /// Merged file, caller → provider: gaps the merge listed inside the
    /// call (R2: must be 0, the edge heard every packet).
    merged_gap_caller_ms: u64,
    /// The same from the signal: holes where the caller's tone or markers
    /// are missing in the merged file.
    merged_signal_holes_caller_ms: u64,
    /// Caller markers found in the merged file / expected.
    markers_found: usize,
    markers_expected: usize,
    /// Merged file, provider → caller: the handover's span nobody sent is a
    /// listed gap (nothing invented).
    merged_gap_provider_ms: u64,
    /// ms of the merged file filled from the cloud recording.
    cloud_filled_ms: u64,
    duration_ms: u64,
    /// SSRC epochs the edge saw from the provider (a handover adds one).
    handovers_seen: usize,
    dtmf_kept: usize,
    holds: usize,
    manifest: Option<PathBuf>,
    verified: Result<usize, String>,
    tamper_detected: Result<String, String>,
    archived: Vec<String>,
    tags_ok: bool,
    notes: Vec<String>,
}

/// The scenario's report.
#[derive(Debug, Serialize)]
pub(super) struct RecordingReport {
    scenario: &'static str,
    ok: bool,
    calls: u64,
    answered: usize,
    recorded: usize,
    dir: PathBuf,
    /// The site's signing key's public half (base64): what a verifier pins.
    public_key: String,
    per_call: Vec<CallReport>,
    notes: Vec<String>,
}

impl RecordingReport {}

impl super::report::OwnReport for RecordingReport {
    fn ok(&self) -> bool {
        self.ok
    }

    fn print(&self) {
        let verdict = if self.ok { "OK" } else { "FAILED" };
        println!(
            "hotsite demo {}: calls recorded at the edge through a media-server handover ({verdict})",
            self.scenario
        );
        let row = |label: &str, value: String| println!("  {label:<34} {value}");
        row(
            "calls placed / answered / recorded",
            format!("{} / {} / {}", self.calls, self.answered, self.recorded),
        );
        row("files", self.dir.display().to_string());
        for call in &self.per_call {
            println!(
                "  call {} ({})",
                call.call_id,
                if call.ok { "ok" } else { "FAILED" }
            );
            row(
                "  cloud recording's gap",
                format!("{} ms (handover)", call.cloud_gap_ms),
            );
            row(
                "  merged gap, caller → provider",
                format!(
                    "{} ms by the merge, {} ms by the signal ({}/{} markers)",
                    call.merged_gap_caller_ms,
                    call.merged_signal_holes_caller_ms,
                    call.markers_found,
                    call.markers_expected
                ),
            );
            row(
                "  merged gap, provider → caller",
                format!(
                    "{} ms listed (nobody sent: not filled, not hold)",
                    call.merged_gap_provider_ms
                ),
            );
            row(
                "  filled from the cloud",
                format!("{} ms", call.cloud_filled_ms),
            );
            row(
                "  handovers / DTMF kept / holds",
                format!(
                    "{} / {} / {}",
                    call.handovers_seen, call.dtmf_kept, call.holds
                ),
            );
            row(
                "  manifest verified",
                match &call.verified {
                    Ok(checks) => format!("yes ({checks} checks)"),
                    Err(e) => format!("NO: {e}"),
                },
            );
            row(
                "  flipped byte caught",
                match &call.tamper_detected {
                    Ok(what) => format!("yes: {what}"),
                    Err(e) => format!("NO: {e}"),
                },
            );
            row(
                "  archived (tags ok)",
                format!(
                    "{} objects ({})",
                    call.archived.len(),
                    if call.tags_ok { "yes" } else { "NO" }
                ),
            );
            for note in &call.notes {
                println!("    note: {note}");
            }
        }
        for note in &self.notes {
            println!("  note: {note}");
        }
        if let Some(call) = self.per_call.iter().find_map(|c| c.manifest.as_ref()) {
            println!(
                "  check it yourself: hotsite recording verify {}",
                call.display()
            );
        }
    }
}

pub(super) async fn run(
    settings: &Settings,
    progress: &Progress,
) -> anyhow::Result<RecordingReport> {
    let dir = std::env::temp_dir().join(format!("hotsite-demo-recording-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("cloud"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let key = dir.join("recording-key.pem");
    let signing = keys::generate_signing_key();
    keys::write_signing_key(&key, &signing).context("cannot write the demo's signing key")?;
    let public = signing.verifying_key();

    let server = MediaServer::start(MediaServerConfig::new(
        "cloud-media",
        SocketAddr::from(([127, 0, 0, 1], 0)),
        dir.join("cloud"),
    ))
    .await
    .context("cannot start the lab media server")?;
    let recording = recording_config(&dir, &key)?;
    let (recorder, _routes) = service::start(&recording, "a", &hotsite_host::Deps::detached())
        .await
        .context("cannot start recording")?;
    let tap = std::sync::Arc::new(RecorderTap(recorder.recorder()));
    let (voice, _) = hotsite_voice::start(
        &voice_config(server.local_addr())?,
        &hotsite_host::Deps::detached(),
        Some(tap),
    )
    .await
    .context("cannot start the voice proxy")?;
    progress.line(&format!(
        "voice proxy on {} (media anchored on 127.0.0.1:40000-40999), cloud media server on {}, files under {}",
        voice.local_addr(),
        server.local_addr(),
        dir.display()
    ));

    let calls = settings.messages;
    let mut caller_config =
        MediaCallerConfig::new(voice.local_addr(), calls, settings.rate.max(1) as f64, CALL);
    caller_config.dtmf = Some(hotsite_lab::media::DtmfPlan {
        at: DTMF_AT,
        digit: '5',
        duration: Duration::from_millis(200),
    });
    caller_config.hold = Some(hotsite_lab::media::HoldPlan {
        at: HOLD_AT,
        resume_after: Some(HOLD_FOR),
    });
    let caller = MediaCaller::start(caller_config)
        .await
        .context("cannot start the lab caller")?;
    progress.line(&format!(
        "{calls} calls of {} s; the media server hands them over {} s in (15-20 s gap); DTMF at {} s, hold at {} s",
        CALL.as_secs(),
        HANDOVER_AT.as_secs(),
        DTMF_AT.as_secs(),
        HOLD_AT.as_secs()
    ));

    // The handover, once every call has been up HANDOVER_AT.
    let deadline = crate::clock::now() + Duration::from_secs(30) + Duration::from_secs(calls);
    loop {
        let up: Vec<_> = server
            .calls()
            .into_iter()
            .filter(|c| c.state == "up")
            .collect();
        if up.len() as u64 >= calls
            && up
                .iter()
                .all(|c| c.duration_ms >= HANDOVER_AT.as_millis() as u64)
        {
            let started = server
                .handover(None, None)
                .map_err(|e| anyhow!("the media server refused the handover: {e}"))?;
            progress.line(&format!(
                "media server handing {} calls over",
                started.len()
            ));
            break;
        }
        if crate::clock::now() > deadline {
            return Err(anyhow!(
                "only {} of {calls} calls were up at the media server after 30 s",
                up.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let records = caller.wait().await;
    let answered = records.iter().filter(|r| r.call.answered()).count();
    progress.line(&format!(
        "{answered} of {calls} calls answered and hung up; merging, signing, uploading"
    ));

    // The pipeline: every answered call merged, signed and queued.
    let deadline = crate::clock::now() + Duration::from_secs(60);
    let done: Vec<CallRecording> = loop {
        let recent = recorder.recent();
        if recent.len() >= answered {
            break recent;
        }
        if crate::clock::now() > deadline {
            break recent;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The uploads, confirmed by the archive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut per_call = Vec::new();
    for record in &done {
        let info = server.call(&record.call_id);
        per_call.push(check_call(record, info.as_ref(), &dir, &public).await);
    }
    let mut notes = Vec::new();
    if done.len() < answered {
        notes.push(format!(
            "{} answered calls were not processed within 60 s",
            answered - done.len()
        ));
    }
    let ok = answered as u64 == calls && done.len() == answered && per_call.iter().all(|c| c.ok);
    hotsite_host::System::shutdown(Box::new(voice)).await;
    hotsite_host::System::shutdown(Box::new(recorder)).await;
    server.shutdown().await;
    Ok(RecordingReport {
        scenario: "recording-failover",
        ok,
        calls,
        answered,
        recorded: done.len(),
        dir,
        public_key: keys::public_key_base64(&public),
        per_call,
        notes,
    })
}

async fn check_call(
    record: &CallRecording,
    info: Option<&hotsite_lab::MediaCallInfo>,
    dir: &Path,
    key: &VerifyingKey,
) -> CallReport {
    let mut notes = Vec::new();
    let cloud_gap_ms = info
        .and_then(|i| i.handovers.first())
        .map_or(0, |h| h.gap_ms);
    if let Some(e) = &record.error {
        notes.push(format!("pipeline: {e}"));
    }
    // The cloud's own recording of the caller: silence through the gap.
    let cloud_holes_caller_ms = read_wav(&record.dir.join("cloud.wav"))
        .map(|channels| total(&holes(&channels[0], 8000)))
        .unwrap_or(0);
    // The merged file, from the signal: the caller's channel has every
    // marker and no hole.
    let (mut signal_holes, mut found, mut expected) = (u64::MAX, 0, 0);
    match read_wav(&record.dir.join("merged.wav")) {
        Ok(channels) => {
            let caller = &channels[0];
            signal_holes = total(&inner(&holes(caller, 8000), caller.len() as u64 / 8));
            let markers = find_markers(caller, 8000);
            found = markers.len();
            expected = (caller.len() as u64 / 8 / MARKER_SPACING_MS) as usize;
        }
        Err(e) => notes.push(format!("merged file: {e}")),
    }
    let verified = verify(record, key);
    let tamper_detected = tamper(record, dir);
    let (archived, tags_ok) = archived(dir, &record.call_id);
    // R5: the DTMF sent inside the gap is kept; the SDP hold is the one
    // hold; the provider's silent span is a listed gap, not hold.
    let r5 = record.dtmf >= 1
        && record.holds == 1
        && record.gap_ms[1] + 100 >= cloud_gap_ms
        && cloud_gap_ms > 0;
    if !r5 {
        notes.push(format!(
            "R5: {} DTMF kept, {} holds, provider-side gap {} ms for a {} ms handover",
            record.dtmf, record.holds, record.gap_ms[1], cloud_gap_ms
        ));
    }
    let ok = record.ok
        && r5
        && record.gap_ms[0] == 0
        && signal_holes == 0
        && found + 1 >= expected
        && verified.is_ok()
        && tamper_detected.is_ok()
        && archived.iter().any(|k| k.ends_with("manifest.json"))
        && archived.iter().any(|k| k.ends_with("merged.wav"))
        && tags_ok;
    CallReport {
        call_id: record.call_id.clone(),
        ok,
        cloud_gap_ms,
        cloud_holes_caller_ms,
        merged_gap_caller_ms: record.gap_ms[0],
        merged_signal_holes_caller_ms: signal_holes,
        markers_found: found,
        markers_expected: expected,
        merged_gap_provider_ms: record.gap_ms[1],
        cloud_filled_ms: record.cloud_filled_ms[0] + record.cloud_filled_ms[1],
        duration_ms: record.duration_ms,
        handovers_seen: record.handovers,
        dtmf_kept: record.dtmf,
        holds: record.holds,
        manifest: record.manifest.clone(),
        verified,
        tamper_detected,
        archived,
        tags_ok,
        notes,
    }
}

/// Offline verification of the manifest against the call's files (R3),
/// signed by the site's key (pinned: a manifest signed by anyone else
/// fails).
fn verify(record: &CallRecording, key: &VerifyingKey) -> Result<usize, String> {
    let path = record.manifest.as_ref().ok_or("no manifest")?;
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let manifest = verify_manifest(&bytes, Some(key)).map_err(|e| e.to_string())?;
    let files = Files::next_to(&manifest, &record.dir).map_err(|e| e.to_string())?;
    let report = verify_files(&manifest, &files).map_err(|e| e.to_string())?;
    Ok(report.checks.len())
}

/// A copy of the merged file with one byte flipped must fail verification,
/// naming the file (R3).
fn tamper(record: &CallRecording, dir: &Path) -> Result<String, String> {
    let path = record.manifest.as_ref().ok_or("no manifest")?;
    let manifest = verify_manifest(&std::fs::read(path).map_err(|e| e.to_string())?, None)
        .map_err(|e| e.to_string())?;
    let mut files = Files::next_to(&manifest, &record.dir).map_err(|e| e.to_string())?;
    let mut bytes = std::fs::read(&files.merged).map_err(|e| e.to_string())?;
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    let copy = dir.join("tampered-merged.wav");
    std::fs::write(&copy, &bytes).map_err(|e| e.to_string())?;
    files.merged = copy.clone();
    let result = verify_files(&manifest, &files);
    let _ = std::fs::remove_file(&copy);
    match result {
        Err(e) => Ok(e.to_string()),
        Ok(_) => Err("a flipped byte in the merged file passed verification".into()),
    }
}

/// The call's objects in the archive folder, and whether their tag
/// sidecars carry its Call-ID and start time (R4).
fn archived(dir: &Path, call_id: &str) -> (Vec<String>, bool) {
    let root = dir.join("rec").join("archive");
    let mut found = Vec::new();
    let mut tags_ok = true;
    let mut stack = vec![root.clone()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.to_string_lossy();
            if name.ends_with(".tags.json") {
                continue;
            }
            let tags = std::fs::read_to_string(format!("{name}.tags.json")).unwrap_or_default();
            if !tags.contains(call_id) {
                continue;
            }
            tags_ok &= tags.contains("start-time");
            found.push(
                path.strip_prefix(&root)
                    .unwrap_or(&path)
                    .display()
                    .to_string(),
            );
        }
    }
    found.sort();
    let ok = tags_ok && !found.is_empty();
    (found, ok)
}

fn read_wav(path: &Path) -> anyhow::Result<Vec<Vec<i16>>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let wav = decode_wav(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if wav.channels.len() != 2 {
        return Err(anyhow!(
            "{}: {} channels",
            path.display(),
            wav.channels.len()
        ));
    }
    Ok(wav.channels)
}

fn total(spans: &[(u64, u64)]) -> u64 {
    spans.iter().map(|(a, b)| b - a).sum()
}

/// Holes strictly inside `[0, len_ms]`: the first and last 40 ms are the
/// other direction starting or ending a packet apart, not a hole.
fn inner(spans: &[(u64, u64)], len_ms: u64) -> Vec<(u64, u64)> {
    spans
        .iter()
        .copied()
        .filter(|&(a, b)| a > 40 && b + 40 < len_ms)
        .collect()
}

fn recording_config(dir: &Path, key: &Path) -> anyhow::Result<RecordingConfig> {
    std::fs::create_dir_all(dir.join("rec").join("archive"))?;
    let text = format!(
        "dir = {:?}\nsigning_key = {:?}\ncloud_dir = {:?}\ncloud_wait = {CLOUD_WAIT:?}\n\n[upload.target]\nkind = \"local\"\ndir = {:?}\n",
        dir.join("rec"),
        key,
        dir.join("cloud"),
        dir.join("rec").join("archive"),
    );
    toml::from_str(&text).map_err(|e| anyhow!("the demo's [recording] section: {e}"))
}

fn voice_config(media_server: SocketAddr) -> anyhow::Result<VoiceConfig> {
    let text = format!(
        r#"[voice]
listen = "127.0.0.1:0"

[voice.media]
address = "127.0.0.1"
ports = "40000-40999"

[[voice.trunks]]
name = "cloud-media"
carrier = "ccaas"
address = "{media_server}"
priority = 1
media_region = "eu-west"
failover_region = "eu-central"
probe = {{ interval = "1s", timeout = "500ms", fall = 2, rise = 2 }}

[[voice.groups]]
name = "recorded"
trunks = ["cloud-media"]
media = "anchor"
"#
    );
    #[derive(serde::Deserialize)]
    struct Document {
        voice: VoiceConfig,
    }
    let document: Document =
        toml::from_str(&text).map_err(|error| anyhow!("the demo's [voice] section: {error}"))?;
    Ok(document.voice)
}
