//! Finding a call's cloud recording where the provider's archive puts them
//! (`cloud_dir/*/cloud.json` beside `cloud.wav`), by the Call-ID in the
//! sidecar: the provider names its files its own way.

use std::path::{Path, PathBuf};

/// The WAV and sidecar of `call_id`'s cloud recording in `cloud_dir`, if
/// one is there. Unreadable sidecars are skipped (a file still being
/// written); a directory that cannot be listed is `None`.
pub(super) fn find(cloud_dir: &Path, call_id: &str) -> Option<(PathBuf, PathBuf)> {
    let entries = std::fs::read_dir(cloud_dir).ok()?;
    for entry in entries.flatten() {
        let dir = entry.path();
        let sidecar = dir.join("cloud.json");
        let wav = dir.join("cloud.wav");
        let Ok(bytes) = std::fs::read(&sidecar) else {
            continue;
        };
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        if json.get("call_id").and_then(|v| v.as_str()) == Some(call_id) && wav.is_file() {
            return Some((wav, sidecar));
        }
    }
    None
}
