//! Finding a call's cloud recording where the provider's archive puts them
//! (`cloud_dir/*/cloud.json` beside `cloud.wav`), by the Call-ID in the
//! sidecar: the provider names its files its own way.
//!
//! One index for every waiting call: a scan reads only the sidecars of
//! folders it has not indexed yet, so a large archive costs one directory
//! listing per scan, not one read per recording per waiting call.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The archive's folders indexed by the Call-ID of their sidecar.
pub(super) struct CloudIndex {
    dir: PathBuf,
    /// Folders whose sidecar was read (and those without a usable one are
    /// read again: a recording may still be being written).
    seen: HashSet<PathBuf>,
    by_call: HashMap<String, (PathBuf, PathBuf)>,
    last_scan: Option<Instant>,
}

impl CloudIndex {
    pub(super) fn new(dir: PathBuf) -> CloudIndex {
        CloudIndex {
            dir,
            seen: HashSet::new(),
            by_call: HashMap::new(),
            last_scan: None,
        }
    }

    /// The WAV and sidecar of `call_id`'s recording, scanning the archive
    /// again if the last scan is older than `every`. A found recording is
    /// taken out of the index (each call takes its own once).
    pub(super) fn take(
        &mut self,
        call_id: &str,
        now: Instant,
        every: Duration,
    ) -> Option<(PathBuf, PathBuf)> {
        if let Some(found) = self.by_call.remove(call_id) {
            return Some(found);
        }
        if self
            .last_scan
            .is_some_and(|last| now.saturating_duration_since(last) < every)
        {
            return None;
        }
        self.last_scan = Some(now);
        self.scan();
        self.by_call.remove(call_id)
    }

    fn scan(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let folder = entry.path();
            if self.seen.contains(&folder) {
                continue;
            }
            let sidecar = folder.join("cloud.json");
            let wav = folder.join("cloud.wav");
            let Ok(bytes) = std::fs::read(&sidecar) else {
                continue;
            };
            let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            let Some(call_id) = json.get("call_id").and_then(|v| v.as_str()) else {
                continue;
            };
            if !wav.is_file() {
                continue;
            }
            self.seen.insert(folder);
            self.by_call.insert(call_id.to_owned(), (wav, sidecar));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn put(dir: &Path, folder: &str, call_id: &str) {
        let f = dir.join(folder);
        std::fs::create_dir_all(&f).unwrap();
        std::fs::write(f.join("cloud.wav"), b"RIFF").unwrap();
        std::fs::write(
            f.join("cloud.json"),
            format!(r#"{{"call_id":"{call_id}","started_unix_ms":1,"sample_rate":8000,"channels":["received","sent"]}}"#),
        )
        .unwrap();
    }

    #[test]
    fn finds_by_call_id_and_rescans_only_when_due() {
        let tmp = tempfile::tempdir().unwrap();
        put(tmp.path(), "x1", "a@h");
        let mut index = CloudIndex::new(tmp.path().to_owned());
        let t0 = crate::recorder::clock::now();
        let every = Duration::from_millis(250);
        assert!(index.take("b@h", t0, every).is_none());
        put(tmp.path(), "x2", "b@h");
        // Not due yet: the new folder is not seen.
        assert!(index
            .take("b@h", t0 + Duration::from_millis(100), every)
            .is_none());
        let (wav, _) = index
            .take("b@h", t0 + every, every)
            .expect("found after the rescan");
        assert!(wav.ends_with("x2/cloud.wav"));
        // a@h was indexed by the first scan: found without a scan.
        assert!(index.take("a@h", t0 + every, every).is_some());
        // Taken once.
        assert!(index.take("a@h", t0 + every * 4, every).is_none());
    }
}
