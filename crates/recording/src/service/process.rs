//! The blocking steps of one call's processing (R2, R3): the cloud copy
//! taken in, the merge, the manifest built and signed. Each step's output is
//! written to a temporary name and renamed, so a crash leaves either the
//! whole file or none, and a restart redoes only what is missing.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::manifest::{CallInfo, Manifest, ManifestBuilder, SigningKey};
use crate::merge::{self, CloudRecording, MergeOptions, MergeReport};

/// The merged file's name in a call's directory.
pub const MERGED_FILE: &str = "merged.wav";
/// The signed manifest's name in a call's directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The cloud recording's copy in a call's directory.
pub const CLOUD_FILE: &str = "cloud.wav";
/// Its sidecar's copy.
pub const CLOUD_SIDECAR: &str = "cloud.json";
/// Written once the call's upload job is in the durable queue: the call
/// needs nothing more from this process.
pub const QUEUED_MARKER: &str = "upload-queued";

/// Written for a call attempt that carried no media: nothing to merge.
pub const NO_MEDIA_MARKER: &str = "no-media";

/// Why a call could not be processed.
#[derive(Debug, Error)]
pub enum ProcessError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("merge: {0}")]
    Merge(#[from] merge::MergeError),
    #[error("manifest: {0}")]
    Build(#[from] crate::manifest::BuildError),
    #[error("manifest: {0}")]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error("merge report: {0}")]
    Report(#[from] serde_json::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProcessError + '_ {
    move |source| ProcessError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What processing one call produced.
#[derive(Debug, Clone)]
pub struct Processed {
    pub manifest: Manifest,
    pub report: MergeReport,
}

/// Copies the provider's cloud recording (WAV and sidecar) into the call's
/// directory, so the directory verifies on its own (R3). Both are copied to
/// temporary names first, then the sidecar is renamed into place and the WAV
/// last: a `cloud.wav` in the directory means both are there. On failure
/// nothing is left behind, so the merge uses the edge alone.
pub fn take_cloud(dir: &Path, wav: &Path, sidecar: &Path) -> Result<(), ProcessError> {
    let result = copy_cloud(dir, wav, sidecar);
    if result.is_err() {
        drop_cloud(dir);
    }
    result
}

fn copy_cloud(dir: &Path, wav: &Path, sidecar: &Path) -> Result<(), ProcessError> {
    let mut staged = Vec::new();
    for (from, name) in [(sidecar, CLOUD_SIDECAR), (wav, CLOUD_FILE)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        fs::copy(from, &tmp).map_err(io(from))?;
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io(&tmp))?;
        staged.push((tmp, dir.join(name)));
    }
    for (tmp, to) in staged {
        fs::rename(&tmp, &to).map_err(io(&to))?;
    }
    sync_dir(dir)
}

/// Removes a cloud copy that is not whole (a crash between its renames, a
/// failed copy): the call is then merged from the edge alone.
pub fn drop_cloud(dir: &Path) {
    for name in [CLOUD_FILE, CLOUD_SIDECAR] {
        let _ = fs::remove_file(dir.join(format!(".{name}.tmp")));
    }
    if !dir.join(CLOUD_SIDECAR).exists() {
        let _ = fs::remove_file(dir.join(CLOUD_FILE));
    }
    if !dir.join(CLOUD_FILE).exists() {
        let _ = fs::remove_file(dir.join(CLOUD_SIDECAR));
    }
}

/// The cloud recording copied into `dir`, if there is one.
pub fn cloud_in(dir: &Path) -> Result<Option<CloudRecording>, ProcessError> {
    let wav = dir.join(CLOUD_FILE);
    let sidecar = dir.join(CLOUD_SIDECAR);
    if !wav.exists() || !sidecar.exists() {
        return Ok(None);
    }
    Ok(Some(CloudRecording::open(&wav, &sidecar)?))
}

/// Merges the call in `dir` and writes its signed manifest (the merge and
/// its report first, then the manifest over every file).
pub fn merge_and_sign(
    dir: &Path,
    key: &SigningKey,
    options: &MergeOptions,
) -> Result<Processed, ProcessError> {
    let cloud = cloud_in(dir)?;
    let merged = dir.join(MERGED_FILE);
    let tmp = dir.join(format!(".{MERGED_FILE}.tmp"));
    let mut report = merge::merge(dir, cloud.as_ref(), &tmp, options)?;
    fs::rename(&tmp, &merged).map_err(io(&merged))?;
    report.output.path = MERGED_FILE.to_owned();
    let call = report.call.clone().unwrap_or_default();
    let info = CallInfo {
        call_id: report.call_id.clone(),
        started_unix_ms: call
            .started_unix_ms
            .map_or(report.output.start_unix_ms, |ms| {
                ms.min(report.output.start_unix_ms)
            })
            .max(0) as u64,
        ended_unix_ms: report.output.end_unix_ms.max(0) as u64,
        trunk: call.trunk.unwrap_or_default(),
        group: call.group.unwrap_or_default(),
        media_region: call.media_region.unwrap_or_default(),
        failover_region: call.failover_region.unwrap_or_default(),
    };
    let mut builder = ManifestBuilder::new(info, dir, &merged, 8000, 2)
        .merge_report(serde_json::to_value(&report)?);
    if let Some(cloud) = &cloud {
        builder = builder.cloud(&cloud.wav, cloud.sidecar.started_unix_ms.max(0) as u64);
    }
    let mut manifest = builder.build()?;
    manifest.sign(key)?;
    Ok(Processed { manifest, report })
}

/// Writes the manifest (canonical JSON) atomically.
pub fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<PathBuf, ProcessError> {
    let path = dir.join(MANIFEST_FILE);
    write_atomic(dir, &path, &manifest.to_json()?)?;
    Ok(path)
}

/// Marks the call's upload as durably queued.
pub fn mark_queued(dir: &Path) -> Result<(), ProcessError> {
    write_atomic(dir, &dir.join(QUEUED_MARKER), b"")
}

/// Marks a call attempt without media as done.
pub fn mark_no_media(dir: &Path) -> Result<(), ProcessError> {
    write_atomic(dir, &dir.join(NO_MEDIA_MARKER), b"")
}

fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), ProcessError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), ProcessError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cloud copy that fails half-way leaves nothing behind, so the merge
    /// uses the edge alone instead of failing on a WAV without its sidecar.
    #[test]
    fn a_failed_cloud_copy_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let wav = tmp.path().join("provider.wav");
        std::fs::write(&wav, b"RIFF").unwrap();
        let dir = tmp.path().join("call");
        std::fs::create_dir_all(&dir).unwrap();
        let missing = tmp.path().join("gone.json");
        assert!(take_cloud(&dir, &wav, &missing).is_err());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        assert!(cloud_in(&dir).unwrap().is_none());
    }

    /// A crash between the two renames of an older layout (a WAV without
    /// its sidecar) is cleaned up at the next look.
    #[test]
    fn a_wav_without_its_sidecar_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(CLOUD_FILE), b"RIFF").unwrap();
        assert!(cloud_in(tmp.path()).unwrap().is_none());
        drop_cloud(tmp.path());
        assert!(!tmp.path().join(CLOUD_FILE).exists());
    }
}
