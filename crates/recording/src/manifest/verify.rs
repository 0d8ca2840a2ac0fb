//! Offline verification of a manifest and its files (SPEC R3): the
//! signature, then every file, stopping at and naming the first bad thing.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::build::{hash_file, read_journal, segment_entries, tail_state, BuildError};
use super::{
    hex, keys, short, strip, to_canonical, CanonicalError, EdgeSource, Manifest, SegmentEntry,
    SignatureBlock, TailState, TimestampError, MANIFEST_VERSION, MAX_MANIFEST_BYTES, SIGNATURE_ALG,
};
use crate::journal::{verify_chain, JournalError, Segment, MAGIC};

/// The first thing that is wrong with a manifest or its files.
#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("manifest is {0} bytes, more than the {MAX_MANIFEST_BYTES} read")]
    TooLarge(usize),
    #[error("manifest is not JSON: {0}")]
    Json(serde_json::Error),
    #[error("manifest format version {0} is not supported (this verifier reads version {MANIFEST_VERSION})")]
    Version(String),
    #[error("manifest is not signed (no signature block)")]
    Unsigned,
    #[error("signature block: {0}")]
    SignatureBlock(String),
    #[error("signature algorithm {0:?} is not supported (only Ed25519)")]
    Algorithm(String),
    #[error("signature block's key_id {manifest} is not its public key's ({computed})")]
    KeyIdDiffers { manifest: String, computed: String },
    /// A key was pinned and the manifest is signed by another.
    #[error("signed by key_id {found}, not by the pinned key {pinned}: refused")]
    KeyNotPinned { pinned: String, found: String },
    #[error("signature invalid: the manifest was changed after it was signed")]
    SignatureInvalid,
    #[error("manifest has no canonical form: {0}")]
    Canonical(CanonicalError),
    /// Signed, but not a manifest this verifier understands.
    #[error("manifest format: {0}")]
    Format(String),
    #[error("timestamp: {0}")]
    Timestamp(TimestampError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot tell which of the manifest's files {path} is (expected a journal directory or file, or one named {expected})")]
    UnknownFile { path: PathBuf, expected: String },
    #[error("{file}: the manifest's segment list is out of order at segment {segment} ({what})")]
    SegmentList {
        file: String,
        segment: u64,
        what: &'static str,
    },
    #[error("chain broken at segment {segment} of the manifest's list for {file}: {what}")]
    ManifestChain {
        file: String,
        segment: u64,
        what: &'static str,
    },
    #[error("segment {segment} of {file}: beyond the end of the file ({size} bytes)")]
    SegmentBeyondEnd {
        file: String,
        segment: u64,
        size: u64,
    },
    #[error(
        "segment {segment} of {file}: hash differs (manifest {}, file {})",
        short(manifest),
        short(found)
    )]
    SegmentHash {
        file: String,
        segment: u64,
        manifest: String,
        found: String,
    },
    #[error("{}", describe_journal_error(file, source))]
    Journal { file: String, source: JournalError },
    #[error("{file}: Call-ID differs (manifest {manifest:?}, journal {found:?})")]
    CallId {
        file: String,
        manifest: String,
        found: String,
    },
    #[error(
        "{file}: header differs from the manifest's genesis (manifest {}, file {})",
        short(manifest),
        short(found)
    )]
    Genesis {
        file: String,
        manifest: String,
        found: String,
    },
    #[error("{file}: holds {found} sealed segments, the manifest lists {manifest}")]
    SegmentCount {
        file: String,
        manifest: usize,
        found: usize,
    },
    #[error("segment {segment} of {file}: {field} differs (manifest {manifest}, journal's own seal {found})")]
    SegmentDiffers {
        file: String,
        segment: u64,
        field: &'static str,
        manifest: String,
        found: String,
    },
    #[error("{file}: tail differs (manifest {manifest}, journal {found})")]
    Tail {
        file: String,
        manifest: String,
        found: String,
    },
    #[error("{file}: size differs (manifest {manifest} bytes, file {found} bytes)")]
    Size {
        file: String,
        manifest: u64,
        found: u64,
    },
    #[error(
        "{file}: SHA-256 differs (manifest {}, file {})",
        short(manifest),
        short(found)
    )]
    Hash {
        file: String,
        manifest: String,
        found: String,
    },
}

fn describe_journal_error(file: &str, error: &JournalError) -> String {
    match error {
        JournalError::Tampered {
            segment,
            offset,
            what,
        } => format!("segment {segment} of {file}: {what} (byte {offset})"),
        JournalError::ChainBroken { segment, what } => {
            format!("chain broken at segment {segment} of {file}: {what}")
        }
        other => format!("{file}: {other}"),
    }
}

/// One passed check, printed as `item: detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked (a file name, or "signature").
    pub item: String,
    pub detail: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.item, self.detail)
    }
}

/// Every check passed, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub checks: Vec<Check>,
}

/// Where the manifest's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// The journal file (not its directory).
    pub journal: PathBuf,
    pub merged: PathBuf,
    /// One per `sources.cloud` entry, in order.
    pub cloud: Vec<PathBuf>,
}

impl Files {
    /// The files by their manifest names in `dir` (the manifest's directory).
    pub fn next_to(manifest: &Manifest, dir: &Path) -> Result<Files, VerifyError> {
        Ok(Files {
            journal: dir.join(plain_name(&manifest.sources.edge.file)?),
            merged: dir.join(plain_name(&manifest.merged.file)?),
            cloud: manifest
                .sources
                .cloud
                .iter()
                .map(|c| Ok(dir.join(plain_name(&c.file)?)))
                .collect::<Result<_, VerifyError>>()?,
        })
    }

    /// As [`next_to`](Self::next_to), with the `given` paths in place of
    /// those they stand for: a directory is the journal's (the file by its
    /// manifest name inside), a file starting with the journal magic is the
    /// journal, any other file is the one of the manifest with its name.
    pub fn resolve(
        manifest: &Manifest,
        dir: &Path,
        given: &[PathBuf],
    ) -> Result<Files, VerifyError> {
        let mut files = Files::next_to(manifest, dir)?;
        let edge = &manifest.sources.edge.file;
        for path in given {
            if path.is_dir() {
                files.journal = path.join(edge);
                continue;
            }
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name == manifest.merged.file {
                files.merged = path.clone();
            } else if let Some(i) = manifest.sources.cloud.iter().position(|c| c.file == name) {
                files.cloud[i] = path.clone();
            } else if name == edge.as_str() || starts_with_magic(path)? {
                files.journal = path.clone();
            } else {
                let mut expected = vec![edge.as_str(), manifest.merged.file.as_str()];
                expected.extend(manifest.sources.cloud.iter().map(|c| c.file.as_str()));
                return Err(VerifyError::UnknownFile {
                    path: path.clone(),
                    expected: expected.join(", "),
                });
            }
        }
        Ok(files)
    }
}

/// A manifest's file name must be a name, not a path: a manifest does not
/// get to make the verifier read files elsewhere.
fn plain_name(name: &str) -> Result<&str, VerifyError> {
    let plain =
        !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    if plain {
        Ok(name)
    } else {
        Err(VerifyError::Format(format!(
            "file name {name:?} is not a plain file name"
        )))
    }
}

fn starts_with_magic(path: &Path) -> Result<bool, VerifyError> {
    use std::io::Read;
    let mut head = [0u8; 8];
    let mut file = std::fs::File::open(path).map_err(|source| VerifyError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(file.read_exact(&mut head).is_ok() && head == MAGIC)
}

/// Checks a manifest's bytes offline (SPEC R3), in this order: JSON, format
/// version, signature block and key id, the pinned key (if `trusted` is
/// given; otherwise the embedded key is used and the caller should say it
/// is not pinned), the Ed25519 signature over the canonical form without
/// `signature` and `timestamp`, the format, and the timestamp's imprint.
pub fn verify_manifest(
    manifest_bytes: &[u8],
    trusted_public_key: Option<&VerifyingKey>,
) -> Result<Manifest, VerifyError> {
    if manifest_bytes.len() > MAX_MANIFEST_BYTES {
        return Err(VerifyError::TooLarge(manifest_bytes.len()));
    }
    let value: Value = serde_json::from_slice(manifest_bytes).map_err(VerifyError::Json)?;
    let Value::Object(members) = &value else {
        return Err(VerifyError::Format("not a JSON object".into()));
    };
    // The version first: another version may sign differently.
    match members.get("version") {
        Some(Value::Number(n)) if n.as_u64() == Some(u64::from(MANIFEST_VERSION)) => {}
        Some(other) => return Err(VerifyError::Version(other.to_string())),
        None => return Err(VerifyError::Version("(missing)".into())),
    }
    let block = members.get("signature").ok_or(VerifyError::Unsigned)?;
    let block: SignatureBlock = serde_json::from_value(block.clone())
        .map_err(|error| VerifyError::SignatureBlock(error.to_string()))?;
    if block.alg != SIGNATURE_ALG {
        return Err(VerifyError::Algorithm(block.alg));
    }
    let public = keys::public_key_from_base64(&block.public_key)
        .map_err(|reason| VerifyError::SignatureBlock(format!("public_key: {reason}")))?;
    let computed = keys::key_id(&public);
    if block.key_id != computed {
        return Err(VerifyError::KeyIdDiffers {
            manifest: block.key_id,
            computed,
        });
    }
    if let Some(trusted) = trusted_public_key {
        if trusted != &public {
            return Err(VerifyError::KeyNotPinned {
                pinned: keys::key_id(trusted),
                found: computed,
            });
        }
    }
    let signature = BASE64.decode(&block.signature).map_err(|error| {
        VerifyError::SignatureBlock(format!("signature is not base64: {error}"))
    })?;
    let signature = Signature::from_slice(&signature).map_err(|_| {
        VerifyError::SignatureBlock(format!(
            "signature is {} bytes, Ed25519 has 64",
            signature.len()
        ))
    })?;
    let mut unsigned = value.clone();
    strip(&mut unsigned, &["signature", "timestamp"]);
    let signed_bytes = to_canonical(&unsigned).map_err(VerifyError::Canonical)?;
    // Strict: refuses the malleable and small-order forms plain verify allows.
    public
        .verify_strict(&signed_bytes, &signature)
        .map_err(|_| VerifyError::SignatureInvalid)?;

    let has_timestamp = members.contains_key("timestamp");
    let mut without_timestamp = value.clone();
    strip(&mut without_timestamp, &["timestamp"]);
    let manifest: Manifest =
        serde_json::from_value(value).map_err(|error| VerifyError::Format(error.to_string()))?;
    if let (true, Some(timestamp)) = (has_timestamp, &manifest.timestamp) {
        let digest: [u8; 32] =
            Sha256::digest(to_canonical(&without_timestamp).map_err(VerifyError::Canonical)?)
                .into();
        timestamp.check(&digest).map_err(VerifyError::Timestamp)?;
    }
    Ok(manifest)
}

/// Checks the files against a verified manifest (SPEC R3): the journal's
/// segments against the manifest's list (by hash, then by the journal's own
/// seals and chain), its tail and whole-file hash; the merged file's and the
/// cloud files' size and SHA-256. Stops at and names the first bad thing.
pub fn verify_files(manifest: &Manifest, files: &Files) -> Result<VerifyReport, VerifyError> {
    verify_files_with(manifest, files, &mut |_| {})
}

/// As [`verify_files`], calling `on_check` as each check passes (so a
/// command line can print the passed checks before the failure).
pub fn verify_files_with(
    manifest: &Manifest,
    files: &Files,
    on_check: &mut dyn FnMut(&Check),
) -> Result<VerifyReport, VerifyError> {
    let mut report = VerifyReport::default();
    let mut pass = |item: &str, detail: String| {
        let check = Check {
            item: item.to_owned(),
            detail,
        };
        on_check(&check);
        report.checks.push(check);
    };
    check_journal(manifest, &files.journal, &mut pass)?;
    let merged = &manifest.merged;
    check_file(&merged.file, &files.merged, merged.size, &merged.sha256)?;
    pass(
        &merged.file,
        format!(
            "size and SHA-256 match ({} bytes, {})",
            merged.size,
            short(&merged.sha256)
        ),
    );
    if files.cloud.len() != manifest.sources.cloud.len() {
        return Err(VerifyError::Format(format!(
            "{} cloud files given for the manifest's {}",
            files.cloud.len(),
            manifest.sources.cloud.len()
        )));
    }
    for (cloud, path) in manifest.sources.cloud.iter().zip(&files.cloud) {
        check_file(&cloud.file, path, cloud.size, &cloud.sha256)?;
        pass(
            &cloud.file,
            format!(
                "size and SHA-256 match ({} bytes, {})",
                cloud.size,
                short(&cloud.sha256)
            ),
        );
    }
    Ok(report)
}

fn io_error(error: BuildError) -> VerifyError {
    match error {
        BuildError::Io { path, source } => VerifyError::Io { path, source },
        other => VerifyError::Format(other.to_string()),
    }
}

fn check_file(name: &str, path: &Path, size: u64, sha256: &str) -> Result<(), VerifyError> {
    let (found_size, found) = hash_file(path).map_err(io_error)?;
    let found = hex(&found);
    // The hash first: a changed byte is the common case, and a size change
    // changes the hash too, so name the size then.
    if found != sha256 {
        if found_size != size {
            return Err(VerifyError::Size {
                file: name.to_owned(),
                manifest: size,
                found: found_size,
            });
        }
        return Err(VerifyError::Hash {
            file: name.to_owned(),
            manifest: sha256.to_owned(),
            found,
        });
    }
    if found_size != size {
        return Err(VerifyError::Size {
            file: name.to_owned(),
            manifest: size,
            found: found_size,
        });
    }
    Ok(())
}

fn check_journal(
    manifest: &Manifest,
    path: &Path,
    pass: &mut dyn FnMut(&str, String),
) -> Result<(), VerifyError> {
    let edge = &manifest.sources.edge;
    let file = edge.file.as_str();

    // 1. The manifest's own list: in order and chained from its genesis.
    let listed = listed_segments(edge)?;
    let genesis = parse_hash(&edge.genesis, "sources.edge.genesis")?;
    verify_chain(&genesis, &listed).map_err(|error| match error {
        JournalError::ChainBroken { segment, what } => VerifyError::ManifestChain {
            file: file.to_owned(),
            segment,
            what,
        },
        other => VerifyError::Format(other.to_string()),
    })?;
    pass(
        file,
        format!(
            "the manifest's {} segments form an unbroken chain{}",
            listed.len(),
            listed
                .last()
                .map(|s| format!(" (head {})", short(&hex(&s.seal))))
                .unwrap_or_default()
        ),
    );

    // 2. Each listed segment's bytes in the file.
    let (bytes, journal) = match read_journal(path) {
        Ok(read) => (Some(read.0), Ok(read.1)),
        Err(BuildError::Journal { source, .. }) => (None, Err(source)),
        Err(other) => return Err(io_error(other)),
    };
    // The reader refused the file: hash the listed ranges anyway, so that a
    // changed byte is named by the segment it is in.
    let bytes = match bytes {
        Some(bytes) => bytes,
        None => bytes::Bytes::from(std::fs::read(path).map_err(|source| VerifyError::Io {
            path: path.to_owned(),
            source,
        })?),
    };
    for s in &listed {
        let end = s.offset.saturating_add(s.len);
        if end > bytes.len() as u64 {
            return Err(VerifyError::SegmentBeyondEnd {
                file: file.to_owned(),
                segment: s.index,
                size: bytes.len() as u64,
            });
        }
        let found: [u8; 32] = Sha256::digest(&bytes[s.offset as usize..end as usize]).into();
        if found != s.hash {
            return Err(VerifyError::SegmentHash {
                file: file.to_owned(),
                segment: s.index,
                manifest: hex(&s.hash),
                found: hex(&found),
            });
        }
    }
    pass(
        file,
        format!("{} segments hash as the manifest lists them", listed.len()),
    );

    // 3. The header (Call-ID), which seal_{-1} binds; before the reader,
    //    which would only see the chain break at segment 0.
    let header = header_of(&bytes);
    let found_genesis = hex(&Sha256::digest(header));
    if found_genesis != edge.genesis {
        let call_id = header.get(10..).map(String::from_utf8_lossy);
        if let Some(found) = call_id.filter(|id| *id != manifest.call_id) {
            return Err(VerifyError::CallId {
                file: file.to_owned(),
                manifest: manifest.call_id.clone(),
                found: found.into_owned(),
            });
        }
        return Err(VerifyError::Genesis {
            file: file.to_owned(),
            manifest: edge.genesis.clone(),
            found: found_genesis,
        });
    }

    // 4. The journal's own seals and chain, which the writer made as it went.
    let journal = journal.map_err(|source| VerifyError::Journal {
        file: file.to_owned(),
        source,
    })?;
    if journal.call_id != manifest.call_id {
        return Err(VerifyError::CallId {
            file: file.to_owned(),
            manifest: manifest.call_id.clone(),
            found: journal.call_id,
        });
    }
    let own = segment_entries(&journal);
    for (m, j) in edge.segments.iter().zip(&own) {
        let fields: [(&'static str, String, String); 6] = [
            ("index", m.index.to_string(), j.index.to_string()),
            ("offset", m.offset.to_string(), j.offset.to_string()),
            ("length", m.length.to_string(), j.length.to_string()),
            ("record count", m.records.to_string(), j.records.to_string()),
            ("hash", m.hash.clone(), j.hash.clone()),
            ("seal", m.seal.clone(), j.seal.clone()),
        ];
        if let Some((field, manifest, found)) = fields.into_iter().find(|(_, a, b)| a != b) {
            return Err(VerifyError::SegmentDiffers {
                file: file.to_owned(),
                segment: m.index,
                field,
                manifest: short(&manifest),
                found: short(&found),
            });
        }
    }
    if own.len() != edge.segments.len() {
        return Err(VerifyError::SegmentCount {
            file: file.to_owned(),
            manifest: edge.segments.len(),
            found: own.len(),
        });
    }
    pass(
        file,
        format!(
            "its own seals and chain match the manifest (Call-ID {:?})",
            journal.call_id
        ),
    );
    let tail = tail_state(&journal);
    if tail != edge.tail {
        return Err(VerifyError::Tail {
            file: file.to_owned(),
            manifest: describe_tail(&edge.tail),
            found: describe_tail(&tail),
        });
    }
    pass(file, format!("tail {}", describe_tail(&tail)));

    // 5. The whole file: the end record and any unsealed tail.
    let found = hex(&Sha256::digest(&bytes));
    if found != edge.sha256 {
        return Err(VerifyError::Hash {
            file: file.to_owned(),
            manifest: edge.sha256.clone(),
            found,
        });
    }
    if bytes.len() as u64 != edge.size {
        return Err(VerifyError::Size {
            file: file.to_owned(),
            manifest: edge.size,
            found: bytes.len() as u64,
        });
    }
    pass(
        file,
        format!(
            "size and SHA-256 match ({} bytes, {})",
            edge.size,
            short(&edge.sha256)
        ),
    );
    Ok(())
}

/// The journal header's bytes: magic, Call-ID length, Call-ID (as much of
/// it as the file has).
fn header_of(bytes: &[u8]) -> &[u8] {
    let len = match bytes.get(8..10) {
        Some(l) => 10 + usize::from(u16::from_le_bytes([l[0], l[1]])),
        None => bytes.len(),
    };
    &bytes[..len.min(bytes.len())]
}

fn describe_tail(tail: &TailState) -> String {
    match tail {
        TailState::Complete => "complete".into(),
        TailState::Unfinished { unsealed_records } => {
            format!("unfinished ({unsealed_records} unsealed records)")
        }
        TailState::Torn {
            unsealed_records,
            valid_bytes,
            lost_bytes,
        } => format!(
            "torn by a crash ({unsealed_records} unsealed records, {lost_bytes} bytes lost after byte {valid_bytes})"
        ),
    }
}

/// The manifest's segments as the journal's type, checked to be in order
/// and not overlapping.
fn listed_segments(edge: &EdgeSource) -> Result<Vec<Segment>, VerifyError> {
    let mut out = Vec::with_capacity(edge.segments.len());
    let mut end = 0u64;
    for (i, s) in edge.segments.iter().enumerate() {
        let SegmentEntry {
            index,
            offset,
            length,
            records,
            hash,
            seal,
        } = s;
        let list_error = |what| VerifyError::SegmentList {
            file: edge.file.clone(),
            segment: *index,
            what,
        };
        if *index != i as u64 {
            return Err(list_error("index out of sequence"));
        }
        if *offset < end {
            return Err(list_error("overlaps the previous segment"));
        }
        end = offset
            .checked_add(*length)
            .ok_or_else(|| list_error("offset and length overflow"))?;
        out.push(Segment {
            index: *index,
            first_record: 0,
            records: usize::try_from(*records).map_err(|_| list_error("record count too large"))?,
            offset: *offset,
            len: *length,
            hash: parse_hash(hash, "sources.edge.segments[].hash")?,
            seal: parse_hash(seal, "sources.edge.segments[].seal")?,
        });
    }
    Ok(out)
}

fn parse_hash(text: &str, field: &str) -> Result<[u8; 32], VerifyError> {
    let bad = || VerifyError::Format(format!("{field} {text:?} is not 64 lower-case hex digits"));
    if text.len() != 64 || !text.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = &text[2 * i..2 * i + 2];
        if !pair
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad());
        }
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}
