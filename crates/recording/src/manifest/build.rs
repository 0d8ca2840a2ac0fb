//! Making the unsigned manifest of a call from its files (SPEC R3, V3).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::{
    hex, CloudSource, EdgeSource, Manifest, MergedFile, SegmentEntry, Sources, TailState,
    MANIFEST_VERSION,
};
use crate::journal::{Journal, JournalError, JournalReader, Tail, JOURNAL_FILE};

/// What the call was: the manifest's metadata (SPEC V3 for the regions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    pub call_id: String,
    pub started_unix_ms: u64,
    pub ended_unix_ms: u64,
    pub trunk: String,
    pub group: String,
    pub media_region: String,
    pub failover_region: String,
}

/// Why a manifest could not be made.
#[derive(Debug, Error)]
pub enum BuildError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal {path}: {source}")]
    Journal { path: PathBuf, source: JournalError },
    /// The journal belongs to another call.
    #[error("journal's Call-ID {journal:?} is not the call's {call:?}")]
    CallIdDiffers { journal: String, call: String },
    /// A file's name cannot be written in the manifest.
    #[error("{0}: file name is not UTF-8")]
    FileName(PathBuf),
}

struct MergedInput {
    path: PathBuf,
    sample_rate: u32,
    channels: u16,
}

/// Collects a call's files and makes its unsigned [`Manifest`].
///
/// ```ignore
/// let mut manifest = ManifestBuilder::new(call, &call_dir, &merged_wav, 8000, 2)
///     .cloud(&cloud_wav, cloud_started_unix_ms)
///     .merge_report(report_json)
///     .build()?;
/// manifest.sign(&key)?;
/// std::fs::write(call_dir.join(MANIFEST_FILE), manifest.to_json()?)?;
/// ```
///
/// Files are named in the manifest by their file names alone: the verifier
/// looks for them next to the manifest unless told otherwise.
pub struct ManifestBuilder {
    call: CallInfo,
    journal_dir: PathBuf,
    merged: MergedInput,
    cloud: Vec<(PathBuf, u64)>,
    merge: Value,
}

impl ManifestBuilder {
    /// A call whose journal is in `journal_dir` (the call's directory) and
    /// whose merged recording is `merged` (`sample_rate` Hz, `channels`).
    pub fn new(
        call: CallInfo,
        journal_dir: &Path,
        merged: &Path,
        sample_rate: u32,
        channels: u16,
    ) -> Self {
        ManifestBuilder {
            call,
            journal_dir: journal_dir.to_owned(),
            merged: MergedInput {
                path: merged.to_owned(),
                sample_rate,
                channels,
            },
            cloud: Vec::new(),
            merge: Value::Object(Default::default()),
        }
    }

    /// Adds a cloud recording that starts at `started_unix_ms`.
    pub fn cloud(mut self, path: &Path, started_unix_ms: u64) -> Self {
        self.cloud.push((path.to_owned(), started_unix_ms));
        self
    }

    /// The merge's report (spans, gaps, holds, DTMF, handovers), embedded as
    /// is. Default: `{}`.
    pub fn merge_report(mut self, report: Value) -> Self {
        self.merge = report;
        self
    }

    /// Reads and hashes every file. The journal must be readable (not
    /// tampered with) and belong to the call.
    pub fn build(self) -> Result<Manifest, BuildError> {
        let journal_path = self.journal_dir.join(JOURNAL_FILE);
        let edge = edge_source(&journal_path, &self.call.call_id)?;
        let (size, sha256) = hash_file(&self.merged.path)?;
        let merged = MergedFile {
            file: file_name(&self.merged.path)?,
            size,
            sha256: hex(&sha256),
            sample_rate: self.merged.sample_rate,
            channels: self.merged.channels,
        };
        let cloud = self
            .cloud
            .iter()
            .map(|(path, started_unix_ms)| {
                let (size, sha256) = hash_file(path)?;
                Ok(CloudSource {
                    file: file_name(path)?,
                    size,
                    sha256: hex(&sha256),
                    started_unix_ms: *started_unix_ms,
                })
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        let call = self.call;
        Ok(Manifest {
            version: MANIFEST_VERSION,
            call_id: call.call_id,
            started_unix_ms: call.started_unix_ms,
            ended_unix_ms: call.ended_unix_ms,
            trunk: call.trunk,
            group: call.group,
            media_region: call.media_region,
            failover_region: call.failover_region,
            sources: Sources { edge, cloud },
            merged,
            merge: self.merge,
            signature: None,
            timestamp: None,
        })
    }
}

/// The journal's entry: whole-file hash, genesis, segments, tail.
fn edge_source(path: &Path, call_id: &str) -> Result<EdgeSource, BuildError> {
    let (bytes, journal) = read_journal(path)?;
    if journal.call_id != call_id {
        return Err(BuildError::CallIdDiffers {
            journal: journal.call_id,
            call: call_id.to_owned(),
        });
    }
    Ok(EdgeSource {
        file: file_name(path)?,
        size: bytes.len() as u64,
        sha256: hex(&Sha256::digest(&bytes)),
        genesis: hex(&journal.genesis),
        segments: segment_entries(&journal),
        tail: tail_state(&journal),
    })
}

/// The journal file's bytes and the journal read from them. The journal
/// reader holds the file in memory; the bytes are shared, not copied.
pub(super) fn read_journal(path: &Path) -> Result<(Bytes, Journal), BuildError> {
    let bytes = Bytes::from(std::fs::read(path).map_err(|source| BuildError::Io {
        path: path.to_owned(),
        source,
    })?);
    let journal = JournalReader::parse(bytes.clone()).map_err(|source| BuildError::Journal {
        path: path.to_owned(),
        source,
    })?;
    Ok((bytes, journal))
}

pub(super) fn segment_entries(journal: &Journal) -> Vec<SegmentEntry> {
    journal
        .segments
        .iter()
        .map(|s| SegmentEntry {
            index: s.index,
            offset: s.offset,
            length: s.len,
            records: s.records as u64,
            hash: hex(&s.hash),
            seal: hex(&s.seal),
        })
        .collect()
}

pub(super) fn tail_state(journal: &Journal) -> TailState {
    let unsealed_records = journal.unsealed().len() as u64;
    match journal.tail {
        Tail::Complete => TailState::Complete,
        Tail::Unfinished => TailState::Unfinished { unsealed_records },
        Tail::TornTail {
            valid_bytes,
            lost_bytes,
        } => TailState::Torn {
            unsealed_records,
            valid_bytes,
            lost_bytes,
        },
    }
}

/// Size and SHA-256 of a file, read in 64 KiB chunks (bounded memory).
pub(super) fn hash_file(path: &Path) -> Result<(u64, [u8; 32]), BuildError> {
    let io = |source| BuildError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hasher.finalize().into()))
}

fn file_name(path: &Path) -> Result<String, BuildError> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| BuildError::FileName(path.to_owned()))
}
