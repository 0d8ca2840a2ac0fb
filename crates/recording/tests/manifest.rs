//! The custody manifest (SPEC R3, V3): built from a real journal and files,
//! signed, verified offline; every kind of tampering is refused and named.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use hotsite_recording::journal::{Direction, JournalConfig, JournalWriter, SegmentLimits};
use hotsite_recording::manifest::canonical::CanonicalError;
use hotsite_recording::manifest::timestamp::parse_response;
use hotsite_recording::manifest::{
    keys, verify_files, verify_files_with, verify_manifest, BuildError, CallInfo, Files,
    ManifestBuilder, ManifestError, TailState, Timestamp, TimestampError, VerifyError,
    MANIFEST_FILE,
};
use serde_json::{json, Value};

const CALL_ID: &str = "a84b4c76e66710@pc33.example.com";

fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hotsite-manifest-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fixed key: Ed25519 signatures are deterministic, so manifests are too.
fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn call_info() -> CallInfo {
    CallInfo {
        call_id: CALL_ID.into(),
        started_unix_ms: 1_775_000_000_000,
        ended_unix_ms: 1_775_000_090_000,
        trunk: "carrier-a-1".into(),
        group: "pstn".into(),
        media_region: "eu-west".into(),
        failover_region: "eu-central".into(),
    }
}

/// The merge's report as the merge would embed it (shape only).
fn merge_report() -> Value {
    json!({
        "filled": [
            {"channel": 0, "source": "edge", "start_ms": 0, "end_ms": 30_000},
            {"channel": 0, "source": "cloud", "start_ms": 30_000, "end_ms": 90_000}
        ],
        "gaps": [{"channel": 1, "start_ms": 41_000, "end_ms": 41_060}],
        "holds": [],
        "dtmf": [{"digit": "5", "start_ms": 33_000, "end_ms": 33_120}],
        "handovers": [{"at_ms": 30_000, "gap_ms": 17_000}]
    })
}

/// A finished call: a journal of 45 packets in 5 segments (10, 10, 10, 10,
/// 5), a merged WAV and a cloud WAV (bytes only: hashing does not care), a
/// signed manifest. Returns the directory.
fn call(name: &str, finish: bool) -> PathBuf {
    let dir = temp_dir(name);
    let config = JournalConfig {
        limits: SegmentLimits {
            max_records: 10,
            max_bytes: 0,
            max_span_ns: 0,
        },
        sync_on_seal: false,
    };
    let mut writer = JournalWriter::create_with(&dir, CALL_ID, config).unwrap();
    for i in 0..45u64 {
        let direction = if i % 2 == 0 {
            Direction::AtoB
        } else {
            Direction::BtoA
        };
        let mut packet = vec![0x80, 0, 0, i as u8, 0, 0, 0, 0, 0, 0, 0, 7];
        packet.extend(std::iter::repeat_n(i as u8, 160));
        writer.append(i * 20_000_000, direction, &packet).unwrap();
    }
    if finish {
        writer.finish().unwrap();
    } else {
        writer.sync().unwrap();
    }
    std::fs::write(dir.join("merged.wav"), wav_bytes(1)).unwrap();
    std::fs::write(dir.join("cloud.wav"), wav_bytes(2)).unwrap();
    let mut manifest = ManifestBuilder::new(call_info(), &dir, &dir.join("merged.wav"), 8000, 2)
        .cloud(&dir.join("cloud.wav"), 1_775_000_000_250)
        .merge_report(merge_report())
        .build()
        .unwrap();
    manifest.sign(&key(1)).unwrap();
    std::fs::write(dir.join(MANIFEST_FILE), manifest.to_json().unwrap()).unwrap();
    dir
}

fn wav_bytes(seed: u8) -> Vec<u8> {
    let mut bytes = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
    bytes.extend((0..100_000u32).map(|i| (i as u8).wrapping_mul(seed)));
    bytes
}

fn manifest_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join(MANIFEST_FILE)).unwrap()
}

/// Verifies the manifest in `dir` and its files next to it.
fn verify(dir: &Path) -> Result<Vec<String>, VerifyError> {
    let manifest = verify_manifest(&manifest_bytes(dir), None)?;
    let files = Files::next_to(&manifest, dir)?;
    let report = verify_files(&manifest, &files)?;
    Ok(report.checks.iter().map(ToString::to_string).collect())
}

fn flip(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at as usize] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

fn manifest_value(dir: &Path) -> Value {
    serde_json::from_slice(&manifest_bytes(dir)).unwrap()
}

fn write_value(dir: &Path, value: &Value) {
    std::fs::write(
        dir.join(MANIFEST_FILE),
        serde_json::to_vec_pretty(value).unwrap(),
    )
    .unwrap();
}

/// R3, V3: what the manifest holds, and that an untouched call verifies.
#[test]
fn untouched_call_verifies_r3() {
    let dir = call("untouched", true);
    let checks = verify(&dir).unwrap();
    assert_eq!(
        checks.len(),
        7,
        "journal: chain, hashes, own seals, tail, file; merged; cloud: {checks:#?}"
    );
    assert!(checks[0].starts_with("journal.hsj: the manifest's 5 segments form an unbroken chain"));
    assert!(checks[5].starts_with("merged.wav: size and SHA-256 match"));
    assert!(checks[6].starts_with("cloud.wav: size and SHA-256 match"));

    let manifest = verify_manifest(&manifest_bytes(&dir), Some(&key(1).verifying_key())).unwrap();
    assert_eq!(manifest.call_id, CALL_ID);
    assert_eq!(manifest.media_region, "eu-west");
    assert_eq!(manifest.failover_region, "eu-central");
    let edge = &manifest.sources.edge;
    assert_eq!(
        edge.segments.iter().map(|s| s.records).collect::<Vec<_>>(),
        [10, 10, 10, 10, 5]
    );
    assert_eq!(edge.tail, TailState::Complete);
    assert_eq!(manifest.merged.sample_rate, 8000);
    assert_eq!(manifest.merge, merge_report());
    let signature = manifest.signature.as_ref().unwrap();
    assert_eq!(signature.alg, "Ed25519");
    assert_eq!(signature.key_id, keys::key_id(&key(1).verifying_key()));
    assert_eq!(signature.key_id.len(), 32);

    // The file is the canonical form: parsing and re-canonicalizing is the
    // identity, and members are sorted.
    let bytes = manifest_bytes(&dir);
    assert_eq!(manifest.to_json().unwrap(), bytes);
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("{\"call_id\":"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// R3: a changed byte in the merged file is named.
#[test]
fn changed_merged_file_is_named_r3() {
    let dir = call("merged", true);
    flip(&dir.join("merged.wav"), 5000);
    let error = verify(&dir).unwrap_err();
    assert!(
        matches!(&error, VerifyError::Hash { file, .. } if file == "merged.wav"),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .starts_with("merged.wav: SHA-256 differs (manifest "),
        "{error}"
    );
    // The passed checks come before it: the journal was fine.
    let manifest = verify_manifest(&manifest_bytes(&dir), None).unwrap();
    let mut passed = Vec::new();
    let result = verify_files_with(
        &manifest,
        &Files::next_to(&manifest, &dir).unwrap(),
        &mut |c| passed.push(c.item.clone()),
    );
    assert!(result.is_err());
    assert_eq!(passed, ["journal.hsj"; 5]);

    // A shorter file says so.
    let path = dir.join("cloud.wav");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    flip(&dir.join("merged.wav"), 5000);
    let error = verify(&dir).unwrap_err();
    assert!(
        matches!(&error, VerifyError::Size { file, .. } if file == "cloud.wav"),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// R3: a changed byte inside a sealed segment names that segment, with
/// both hashes.
#[test]
fn changed_segment_is_named_r3() {
    let dir = call("segment", true);
    let manifest = verify_manifest(&manifest_bytes(&dir), None).unwrap();
    let s2 = &manifest.sources.edge.segments[2];
    flip(&dir.join("journal.hsj"), s2.offset + s2.length / 2);
    let error = verify(&dir).unwrap_err();
    assert!(
        matches!(&error, VerifyError::SegmentHash { segment: 2, file, .. } if file == "journal.hsj"),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.starts_with("segment 2 of journal.hsj: hash differs (manifest "),
        "{text}"
    );
    assert!(text.contains(&s2.hash[..16]), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// R3: a changed seal record (between segments) is caught by the journal's
/// own chain and named; so is a changed header (Call-ID).
#[test]
fn changed_seal_or_header_is_named_r3() {
    let dir = call("seal", true);
    let manifest = verify_manifest(&manifest_bytes(&dir), None).unwrap();
    let s1 = &manifest.sources.edge.segments[1];
    // The seal frame follows the segment's frames; flip a byte of its hash.
    flip(&dir.join("journal.hsj"), s1.offset + s1.length + 5 + 32 + 3);
    let error = verify(&dir).unwrap_err();
    assert!(matches!(&error, VerifyError::Journal { .. }), "{error}");
    assert!(
        error.to_string().starts_with("segment 1 of journal.hsj: "),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let dir = call("header", true);
    // The header: magic (8), length (2), Call-ID; change its first letter.
    flip(&dir.join("journal.hsj"), 10);
    let error = verify(&dir).unwrap_err();
    assert!(matches!(&error, VerifyError::CallId { .. }), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// R3: a truncated journal names the first segment it lost.
#[test]
fn truncated_journal_names_the_lost_segment_r3() {
    let dir = call("truncated", true);
    let manifest = verify_manifest(&manifest_bytes(&dir), None).unwrap();
    let s3 = &manifest.sources.edge.segments[3];
    let path = dir.join("journal.hsj");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..(s3.offset + 10) as usize]).unwrap();
    let error = verify(&dir).unwrap_err();
    assert!(
        matches!(&error, VerifyError::SegmentBeyondEnd { segment: 3, .. }),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// R3: any change to the manifest, known member or new, breaks the
/// signature; a wrong pinned key is refused before that.
#[test]
fn changed_manifest_is_refused_r3() {
    let dir = call("fields", true);
    let original = manifest_value(&dir);

    let mut changed = original.clone();
    changed["failover_region"] = json!("us-east");
    write_value(&dir, &changed);
    assert!(matches!(verify(&dir), Err(VerifyError::SignatureInvalid)));

    let mut changed = original.clone();
    changed["merge"]["gaps"] = json!([]);
    write_value(&dir, &changed);
    assert!(matches!(verify(&dir), Err(VerifyError::SignatureInvalid)));

    let mut changed = original.clone();
    changed["note"] = json!("added later");
    write_value(&dir, &changed);
    assert!(matches!(verify(&dir), Err(VerifyError::SignatureInvalid)));

    // Pretty-printed but unchanged still verifies: the canonical form is
    // what is signed.
    write_value(&dir, &original);
    verify(&dir).unwrap();

    // The key id must be the key's.
    let mut changed = original.clone();
    changed["signature"]["key_id"] = json!("00112233445566778899aabbccddeeff");
    write_value(&dir, &changed);
    assert!(matches!(
        verify(&dir),
        Err(VerifyError::KeyIdDiffers { .. })
    ));

    // Pinned to another key: refused, naming both key ids.
    write_value(&dir, &original);
    let error = verify_manifest(&manifest_bytes(&dir), Some(&key(2).verifying_key())).unwrap_err();
    assert!(matches!(error, VerifyError::KeyNotPinned { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains(&keys::key_id(&key(1).verifying_key())),
        "{error}"
    );

    // Unsigned.
    let mut changed = original.clone();
    changed.as_object_mut().unwrap().remove("signature");
    write_value(&dir, &changed);
    assert!(matches!(verify(&dir), Err(VerifyError::Unsigned)));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// R3: someone who drops a segment from the list and signs again with their
/// own key is refused by a pinned key, and without one the list's chain no
/// longer holds.
#[test]
fn dropped_segment_is_refused_r3() {
    let dir = call("dropped", true);
    let mut manifest = verify_manifest(&manifest_bytes(&dir), None).unwrap();
    manifest.sources.edge.segments.remove(2);
    manifest.sign(&key(9)).unwrap();
    std::fs::write(dir.join(MANIFEST_FILE), manifest.to_json().unwrap()).unwrap();
    assert!(matches!(
        verify_manifest(&manifest_bytes(&dir), Some(&key(1).verifying_key())),
        Err(VerifyError::KeyNotPinned { .. })
    ));
    let error = verify(&dir).unwrap_err();
    assert!(
        matches!(error, VerifyError::SegmentList { segment: 3, .. }),
        "{error}"
    );

    // Renumbered so the list is in order: the chain breaks at segment 2.
    for (i, s) in manifest.sources.edge.segments.iter_mut().enumerate() {
        s.index = i as u64;
    }
    manifest.sign(&key(9)).unwrap();
    std::fs::write(dir.join(MANIFEST_FILE), manifest.to_json().unwrap()).unwrap();
    let error = verify(&dir).unwrap_err();
    assert!(
        matches!(error, VerifyError::ManifestChain { segment: 2, .. }),
        "{error}"
    );
    assert!(
        error.to_string().starts_with("chain broken at segment 2"),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// R1, R3: a journal still being written (no end record) is described as
/// such; appending to it afterwards is caught.
#[test]
fn unfinished_journal_r3() {
    let dir = call("unfinished", false);
    let manifest = verify_manifest(&manifest_bytes(&dir), None).unwrap();
    assert_eq!(
        manifest.sources.edge.tail,
        TailState::Unfinished {
            unsealed_records: 5
        }
    );
    verify(&dir).unwrap();
    let path = dir.join("journal.hsj");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 3); // tear the last record
    std::fs::write(&path, &bytes).unwrap();
    let error = verify(&dir).unwrap_err();
    assert!(matches!(error, VerifyError::Tail { .. }), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Files given by path: a directory is the journal's, a renamed journal is
/// found by its magic, a file of another name is refused by name.
#[test]
fn files_given_by_path() {
    let dir = call("paths", true);
    let manifest = verify_manifest(&manifest_bytes(&dir), None).unwrap();
    let elsewhere = temp_dir("paths-elsewhere");
    std::fs::copy(dir.join("journal.hsj"), elsewhere.join("copy.hsj")).unwrap();
    std::fs::copy(dir.join("merged.wav"), elsewhere.join("merged.wav")).unwrap();
    let files = Files::resolve(
        &manifest,
        Path::new("/nonexistent"),
        &[
            elsewhere.join("copy.hsj"),
            elsewhere.join("merged.wav"),
            dir.join("cloud.wav"),
        ],
    )
    .unwrap();
    assert_eq!(files.journal, elsewhere.join("copy.hsj"));
    verify_files(&manifest, &files).unwrap();

    let files = Files::resolve(
        &manifest,
        Path::new("/nonexistent"),
        std::slice::from_ref(&dir),
    )
    .unwrap();
    assert_eq!(files.journal, dir.join("journal.hsj"));

    std::fs::write(elsewhere.join("other.wav"), b"x").unwrap();
    assert!(matches!(
        Files::resolve(&manifest, &dir, &[elsewhere.join("other.wav")]),
        Err(VerifyError::UnknownFile { .. })
    ));

    // A manifest may not point outside its directory.
    let mut evil = manifest.clone();
    evil.merged.file = "../../etc/passwd".into();
    assert!(matches!(
        Files::next_to(&evil, &dir),
        Err(VerifyError::Format(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&elsewhere).unwrap();
}

/// The builder refuses another call's journal and a merge report with a
/// float (no canonical form here).
#[test]
fn builder_refuses_r3() {
    let dir = call("builder", true);
    let other = CallInfo {
        call_id: "someone-else".into(),
        ..call_info()
    };
    assert!(matches!(
        ManifestBuilder::new(other, &dir, &dir.join("merged.wav"), 8000, 2).build(),
        Err(BuildError::CallIdDiffers { .. })
    ));
    let mut manifest = ManifestBuilder::new(call_info(), &dir, &dir.join("merged.wav"), 8000, 2)
        .merge_report(json!({"correlation": 0.93}))
        .build()
        .unwrap();
    assert!(manifest.sources.cloud.is_empty());
    match manifest.sign(&key(1)) {
        Err(ManifestError::Canonical(CanonicalError::NotAnInteger { path, .. })) => {
            assert_eq!(path, "/merge/correlation")
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

const RESP: &[u8] = include_bytes!("data/tsa/resp.tsr");
const DIGEST: &str = include_str!("data/tsa/digest.txt");
const NONCE: &str = include_str!("data/tsa/nonce.txt");

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// openssl's token with its imprint replaced by `digest`: a real token's
/// structure (its CMS signature no longer matches, which is not checked
/// here; module docs of `timestamp`).
fn token_for(digest: &[u8; 32]) -> Vec<u8> {
    let mut token = parse_response(RESP).unwrap();
    let fixture = unhex(DIGEST.trim());
    let at = token
        .windows(32)
        .position(|w| w == fixture.as_slice())
        .unwrap();
    token[at..at + 32].copy_from_slice(digest);
    token
}

/// R3: a timestamp over the signed manifest verifies offline by its
/// imprint; one over something else is refused.
#[test]
fn timestamp_imprint_is_checked_r3() {
    let dir = call("timestamp", true);
    let mut manifest = verify_manifest(&manifest_bytes(&dir), None).unwrap();
    let digest = manifest.timestamp_digest().unwrap();
    let info = hotsite_recording::manifest::timestamp::parse_token(&token_for(&digest)).unwrap();
    manifest.timestamp = Some(Timestamp {
        tsa_url: "http://tsa.test/".into(),
        hash_alg: "SHA-256".into(),
        nonce: NONCE.trim().into(),
        gen_time: info.gen_time,
        token: BASE64.encode(token_for(&digest)),
    });
    std::fs::write(dir.join(MANIFEST_FILE), manifest.to_json().unwrap()).unwrap();
    let verified = verify_manifest(&manifest_bytes(&dir), None).unwrap();
    assert_eq!(verified.timestamp, manifest.timestamp);
    verify(&dir).unwrap();

    // A token for another digest.
    let mut other = digest;
    other[31] ^= 1;
    manifest.timestamp.as_mut().unwrap().token = BASE64.encode(token_for(&other));
    std::fs::write(dir.join(MANIFEST_FILE), manifest.to_json().unwrap()).unwrap();
    let error = verify(&dir).unwrap_err();
    assert!(
        matches!(
            error,
            VerifyError::Timestamp(TimestampError::ImprintDiffers { .. })
        ),
        "{error}"
    );

    // Signing again drops the timestamp (it covered the old signature).
    manifest.sign(&key(1)).unwrap();
    assert!(manifest.timestamp.is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}
