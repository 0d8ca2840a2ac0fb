//! `hotsite recording verify` and `keygen` as a user runs them (SPEC R3): a
//! real journal, a merged file and a signed manifest verify; a changed byte
//! in the merged file or in segment 2, a changed manifest field and a wrong
//! pinned key each fail, naming what.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use hotsite_recording::journal::{Direction, JournalConfig, JournalWriter, SegmentLimits};
use hotsite_recording::manifest::{keys, CallInfo, ManifestBuilder, MANIFEST_FILE};

use crate::cli::hotsite;

/// A directory of its own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("hotsite-recording-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `hotsite recording ARGS…`: (exit code, stdout, stderr).
async fn recording(args: &[&OsStr]) -> (Option<i32>, String, String) {
    let output = hotsite()
        .arg("recording")
        .args(args)
        .output()
        .await
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

/// `hotsite recording keygen --out PATH`: the public key and key id printed.
async fn keygen(path: &Path) -> (String, String) {
    let (code, stdout, stderr) =
        recording(&["keygen".as_ref(), "--out".as_ref(), path.as_ref()]).await;
    assert_eq!(code, Some(0), "{stdout} {stderr}");
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
            .trim()
            .to_owned()
    };
    (field("public_key:"), field("key_id:"))
}

/// A call directory: a journal of 45 packets in 5 sealed segments, a merged
/// WAV (bytes only: hashing does not look inside), a manifest signed with
/// the key at `key`.
fn write_call(dir: &Path, key: &Path) {
    let config = JournalConfig {
        limits: SegmentLimits {
            max_records: 10,
            max_bytes: 0,
            max_span_ns: 0,
        },
        sync_on_seal: false,
    };
    let call_id = "4f1c2a@edge.example.net";
    let mut writer = JournalWriter::create_with(dir, call_id, config).unwrap();
    for i in 0..45u8 {
        let mut packet = vec![0x80, 0, 0, i, 0, 0, 0, 0, 0, 0, 0, 1];
        packet.extend([i; 160]);
        writer
            .append(u64::from(i) * 20_000_000, Direction::AtoB, &packet)
            .unwrap();
    }
    writer.finish().unwrap();
    let wav: Vec<u8> = (0..64_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("merged.wav"), wav).unwrap();
    let call = CallInfo {
        call_id: call_id.into(),
        started_unix_ms: 1_775_000_000_000,
        ended_unix_ms: 1_775_000_000_900,
        trunk: "carrier-a".into(),
        group: "pstn".into(),
        media_region: "eu-west".into(),
        failover_region: "eu-central".into(),
    };
    let mut manifest = ManifestBuilder::new(call, dir, &dir.join("merged.wav"), 8000, 2)
        .merge_report(serde_json::json!({"filled": [], "gaps": []}))
        .build()
        .unwrap();
    manifest
        .sign(&keys::load_signing_key(key).unwrap())
        .unwrap();
    std::fs::write(dir.join(MANIFEST_FILE), manifest.to_json().unwrap()).unwrap();
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

/// The offset of a byte in the middle of segment `n`, from the manifest.
fn inside_segment(manifest: &Path, n: usize) -> usize {
    let value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    let segment = &value["sources"]["edge"]["segments"][n];
    let offset = segment["offset"].as_u64().unwrap();
    let length = segment["length"].as_u64().unwrap();
    (offset + length / 2) as usize
}

#[tokio::test]
async fn keygen_writes_a_private_key_once() {
    let dir = TempDir::new("keygen");
    let path = dir.0.join("key.pem");
    let (public_key, key_id) = keygen(&path).await;
    let key = keys::load_signing_key(&path).unwrap();
    assert_eq!(public_key, keys::public_key_base64(&key.verifying_key()));
    assert_eq!(key_id, keys::key_id(&key.verifying_key()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (code, _, stderr) = recording(&["keygen".as_ref(), "--out".as_ref(), path.as_ref()]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("already exists"), "{stderr}");
}

/// SPEC R3: verify passes on an untouched call, then names each kind of
/// tampering.
#[tokio::test]
async fn verify_names_the_first_bad_item() {
    let dir = TempDir::new("verify");
    let key = dir.0.join("key.pem");
    let (public_key, key_id) = keygen(&key).await;
    let call = dir.0.join("call");
    write_call(&call, &key);
    let manifest = call.join(MANIFEST_FILE);
    let verify = |extra: Vec<&OsStr>| {
        let mut args: Vec<OsString> = vec!["verify".into(), manifest.clone().into()];
        args.extend(extra.into_iter().map(OsStr::to_owned));
        async move {
            let args: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
            recording(&args).await
        }
    };

    // Untouched, embedded key: passes, and says the key is not pinned.
    let (code, stdout, stderr) = verify(vec![]).await;
    assert_eq!(code, Some(0), "{stdout} {stderr}");
    assert!(
        stdout.contains(&format!("signed by key_id {key_id}, not pinned")),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok   journal.hsj: 5 segments hash as the manifest lists them"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok   merged.wav: size and SHA-256 match"),
        "{stdout}"
    );
    assert!(stdout.contains("verified: all 8 checks passed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");

    // Pinned to its own key: passes, pinned.
    let (code, stdout, _) = verify(vec!["--public-key".as_ref(), public_key.as_ref()]).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("signed by key_id {key_id}, pinned")),
        "{stdout}"
    );

    // Pinned to another key: refused.
    let other = dir.0.join("other.pem");
    let (other_public, other_id) = keygen(&other).await;
    let (code, stdout, _) = verify(vec!["--public-key".as_ref(), other_public.as_ref()]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "FAIL signed by key_id {key_id}, not by the pinned key {other_id}: refused"
        )),
        "{stdout}"
    );

    // The files given explicitly, from elsewhere: passes.
    let elsewhere = dir.0.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::copy(call.join("merged.wav"), elsewhere.join("merged.wav")).unwrap();
    let (code, stdout, _) =
        verify(vec![elsewhere.join("merged.wav").as_ref(), call.as_ref()]).await;
    assert_eq!(code, Some(0), "{stdout}");

    // A flipped byte in the merged file: names it.
    flip(&call.join("merged.wav"), 1234);
    let (code, stdout, _) = verify(vec![]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL merged.wav: SHA-256 differs (manifest "),
        "{stdout}"
    );
    // The journal's checks passed before it.
    assert!(
        stdout.contains("ok   journal.hsj: size and SHA-256 match"),
        "{stdout}"
    );
    flip(&call.join("merged.wav"), 1234);

    // A flipped byte inside segment 2 of the journal: names segment 2.
    let at = inside_segment(&manifest, 2);
    flip(&call.join("journal.hsj"), at);
    let (code, stdout, _) = verify(vec![]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL segment 2 of journal.hsj: hash differs (manifest "),
        "{stdout}"
    );
    flip(&call.join("journal.hsj"), at);

    // A changed manifest field: signature invalid.
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"eu-central\"", "\"us-east\"")).unwrap();
    let (code, stdout, _) = verify(vec![]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("FAIL signature invalid"), "{stdout}");
    std::fs::write(&manifest, text).unwrap();

    // A --public-key that is no key: a usage error, exit 2.
    let (code, _, stderr) = verify(vec!["--public-key".as_ref(), "not-a-key".as_ref()]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--public-key"), "{stderr}");

    // Restored: passes again.
    let (code, stdout, _) = verify(vec![]).await;
    assert_eq!(code, Some(0), "{stdout}");
}
