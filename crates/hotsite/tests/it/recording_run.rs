//! Recording through `hotsite run` (SPEC R1–R5): a lab caller through the
//! anchored voice proxy to a lab cloud media server, the process killed
//! with SIGKILL mid-call and started again; and the `recording-failover`
//! demo end to end (handover mid-call, merged gap, hold, DTMF, verify).

// Test deadlines read the wall clock.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hotsite_lab::{MediaCaller, MediaCallerConfig, MediaServer, MediaServerConfig};
use hotsite_recording::journal::{JournalReader, RecordKind, Tail, JOURNAL_FILE};
use hotsite_recording::manifest::keys;
use serde_json::Value;
use tokio::process::Command;

use crate::daemon;

const TOKEN: &str = "tok-rec-7d2c91e0a4b3";

/// The media port range of [`config`]: a SIP port inside it is refused.
const MEDIA_PORTS: std::ops::RangeInclusive<u16> = 41_000..=41_199;

/// A free UDP port for `voice.listen` outside [`MEDIA_PORTS`] (a random one
/// fell inside it once in CI: the config was refused).
fn free_sip_port() -> SocketAddr {
    for _ in 0..100 {
        let addr = crate::desktop::free_udp();
        if !MEDIA_PORTS.contains(&addr.port()) {
            return addr;
        }
    }
    panic!("no free UDP port outside the media range");
}

fn config(dir: &Path, voice: SocketAddr, media_server: SocketAddr) -> PathBuf {
    let key = dir.join("key.pem");
    if !key.exists() {
        keys::write_signing_key(&key, &keys::generate_signing_key()).unwrap();
    }
    let text = format!(
        r#"[site]
name = "a"

[api]
listen = "127.0.0.1:0"
tokens = ["{TOKEN}"]

[voice]
listen = "{voice}"

[voice.media]
address = "127.0.0.1"
ports = "{media_first}-{media_last}"

[[voice.trunks]]
name = "cloud-media"
carrier = "ccaas"
address = "{media_server}"
priority = 1
media_region = "eu-west"
failover_region = "eu-central"

[[voice.groups]]
name = "recorded"
trunks = ["cloud-media"]
media = "anchor"

[recording]
dir = "{rec}"
signing_key = "{key}"
sync_interval = "100ms"
cloud_dir = "{cloud}"
cloud_wait = "1s"
"#,
        rec = dir.join("rec").display(),
        key = key.display(),
        cloud = dir.join("cloud").display(),
        media_first = MEDIA_PORTS.start(),
        media_last = MEDIA_PORTS.end(),
    );
    let path = dir.join("hotsite.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn start(config: &Path) -> daemon::Daemon {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hotsite"));
    command.arg("run").arg("--config").arg(config);
    daemon::spawn(command).await
}

async fn get(addr: &str, path: &str) -> Value {
    let body = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

/// The one call directory under `rec/calls`.
fn call_dir(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir.join("rec").join("calls"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join(JOURNAL_FILE).is_file())
}

/// R1: `kill -9` in the middle of a recorded call keeps what the recorder
/// had synced (at most `sync_interval` is lost, and the journal says its
/// tail is cut); the next start takes the call up, merges and signs what
/// there is, and the manifest says the tail was cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_mid_call_keeps_the_synced_journal_and_a_restart_merges_it_r1_r3() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("cloud")).unwrap();
    let server = MediaServer::start(MediaServerConfig::new(
        "cloud-media",
        SocketAddr::from(([127, 0, 0, 1], 0)),
        dir.join("cloud"),
    ))
    .await
    .unwrap();
    let voice = free_sip_port();
    let config = config(dir, voice, server.local_addr());
    let mut daemon = start(&config).await;
    let caller = MediaCaller::start(MediaCallerConfig::new(
        voice,
        1,
        1.0,
        Duration::from_secs(30),
    ))
    .await
    .unwrap();
    // Three seconds of audio both ways through hotsite's relay.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let up = server
            .calls()
            .iter()
            .any(|c| c.state == "up" && c.duration_ms >= 3_000 && c.packets_received >= 100);
        if up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the call was not up with audio within 20 s: {:?}\n{}",
            server.calls(),
            daemon.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.child.start_kill().unwrap(); // SIGKILL
    let _ = daemon.child.wait().await;
    let call = call_dir(dir).expect("the call's journal exists");
    let journal = JournalReader::open(&call).expect("a cut journal still reads");
    assert!(
        matches!(journal.tail, Tail::Unfinished | Tail::TornTail { .. }),
        "the journal says its tail was cut: {:?}",
        journal.tail
    );
    let packets = journal
        .records
        .iter()
        .filter(|r| r.kind == RecordKind::Packet)
        .count();
    // 3 s at 50 packets/s each way; the last sync_interval (100 ms) and
    // the writer's queue may be lost, no more.
    assert!(
        packets >= 250,
        "{packets} packets journaled before the kill"
    );
    assert!(!call.join("manifest.json").exists());

    // The restart takes the call up.
    let daemon = start(&config).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let recording = loop {
        let list = get(&daemon.addr, "/v1/recordings").await;
        if let Some(first) = list["recordings"].as_array().and_then(|r| r.first()) {
            break first.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the cut call was not processed after the restart: {}",
            daemon.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(recording["ok"], true, "{recording}");
    assert_eq!(recording["gap_ms"][0], 0, "{recording}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(call.join("manifest.json")).unwrap()).unwrap();
    let tail = &manifest["sources"]["edge"]["tail"]["state"];
    assert!(tail == "unfinished" || tail == "torn", "{tail}");
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_hotsite"))
        .args(["recording", "verify"])
        .arg(call.join("manifest.json"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let status = get(&daemon.addr, "/v1/status").await;
    assert_eq!(status["recording"]["processed"], 1, "{status}");
    drop(daemon);
    caller.stop().await;
    server.shutdown().await;
}

/// R1–R5 end to end: `hotsite demo --scenario recording-failover`. The
/// media server hands the call over mid-call (15–20 s gap, new port, SSRC,
/// sequence and timestamp); the merged file has no gap where the edge heard
/// audio (the merge's spans and the caller's markers agree), the provider's
/// silent span is a listed gap and not hold, the hold the caller made with
/// `sendonly` is the one hold, the DTMF sent in the gap is kept, the
/// manifest verifies and a flipped byte is caught, and the files are in the
/// archive with their tags.
#[cfg(feature = "lab")]
#[test]
fn the_recording_failover_demo_fills_the_providers_gap_r1_r2_r3_r4_r5() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hotsite"))
        .args([
            "demo",
            "--scenario",
            "recording-failover",
            "--calls",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let call = &report["per_call"][0];
    assert_eq!(report["ok"], true, "{report}");
    let cloud_gap = call["cloud_gap_ms"].as_u64().unwrap();
    assert!((15_000..=20_000).contains(&cloud_gap), "{call}");
    assert!(
        call["cloud_holes_caller_ms"].as_u64().unwrap() >= 14_000,
        "the cloud lost the caller: {call}"
    );
    assert_eq!(call["merged_gap_caller_ms"], 0, "{call}");
    assert_eq!(call["merged_signal_holes_caller_ms"], 0, "{call}");
    assert!(
        call["merged_gap_provider_ms"].as_u64().unwrap() + 100 >= cloud_gap,
        "{call}"
    );
    assert_eq!(
        call["holds"], 1,
        "only the SDP hold, not the media stop: {call}"
    );
    assert_eq!(call["dtmf_kept"], 1, "{call}");
    assert_eq!(call["handovers_seen"], 1, "{call}");
    assert!(call["verified"]["Ok"].as_u64().is_some(), "{call}");
    assert!(
        call["tamper_detected"]["Ok"]
            .as_str()
            .is_some_and(|e| e.contains("merged.wav")),
        "{call}"
    );
    assert_eq!(call["tags_ok"], true, "{call}");
    if let Some(dir) = report["dir"].as_str() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// `check-config --runtime` loads the recording's signing key as the daemon
/// would: a key others can read is refused, naming the key (R3).
#[test]
fn check_config_runtime_loads_the_signing_key_r3() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let config = config(
        tmp.path(),
        free_sip_port(),
        SocketAddr::from(([127, 0, 0, 1], 9)),
    );
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hotsite"))
            .args(["check-config", "--runtime"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let ok = check();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let key = tmp.path().join("key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = check();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("recording.signing_key"), "{stderr}");
}
