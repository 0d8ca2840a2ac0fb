//! The `[recording]` section of `hotsite.toml` (SPEC R1–R4).
//!
//! ```toml
//! [recording]
//! dir = "/var/lib/hotsite/recordings"   # journals, merged files, manifests, upload spool
//! signing_key = "/etc/hotsite/recording-key.pem"   # hotsite recording keygen --out …
//! sync_interval = "200ms"                # the most a crash loses of a journal (R1)
//! cloud_dir = "/mnt/provider-archive"    # where the provider's cloud recordings appear
//! cloud_wait = "60s"                     # how long to wait for one after the call
//! tsa_url = "http://tsa.example/tsr"     # optional RFC 3161 timestamp of each manifest
//!
//! [recording.upload.target]              # default: a local folder, <dir>/archive
//! kind = "s3"
//! bucket = "recordings"
//! region = "eu-west-1"
//! access_key_id = "…"
//! secret_access_key = "…"
//! object_lock = { mode = "compliance", retain_days = 2555 }
//! ```
//!
//! Which calls are recorded is the voice proxy's choice: the trunk groups
//! with `media = "anchor"`.

use std::path::PathBuf;
use std::time::Duration;

use hotsite_core::config::{duration, Issues};
use serde::Deserialize;

use crate::upload::{StoreTarget, UploadConfig};

/// The `[recording]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// Where calls' directories, the upload spool and (by default) the
    /// archive live. Default: `recordings`.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// The Ed25519 key manifests are signed with (PKCS#8 PEM, mode 0600;
    /// `hotsite recording keygen --out FILE` writes one). Required: an
    /// unsigned manifest proves nothing (R3).
    pub signing_key: PathBuf,
    /// Every open journal is fsynced this often (R1). Default: 200 ms.
    #[serde(default = "default_sync_interval", deserialize_with = "duration")]
    pub sync_interval: Duration,
    /// Datagrams waiting for the journal writer; beyond this they are dropped,
    /// counted and noted in the call's journal. Default: 65,536.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Where the provider's cloud recordings appear (`*/cloud.json` beside
    /// `cloud.wav`). None: merges use the edge recording alone.
    #[serde(default)]
    pub cloud_dir: Option<PathBuf>,
    /// How long after a call to wait for its cloud recording. Default: 60 s.
    #[serde(default = "default_cloud_wait", deserialize_with = "duration")]
    pub cloud_wait: Duration,
    /// An RFC 3161 time-stamping authority for each manifest. None: no
    /// timestamp. A TSA that fails leaves the manifest signed, without one.
    #[serde(default)]
    pub tsa_url: Option<String>,
    /// Where merged files and manifests go (R4). Default: the folder
    /// `<dir>/archive`.
    #[serde(default)]
    pub upload: Option<UploadConfig>,
}

fn default_dir() -> PathBuf {
    PathBuf::from("recordings")
}
fn default_sync_interval() -> Duration {
    Duration::from_millis(200)
}
fn default_queue_capacity() -> usize {
    65_536
}
fn default_cloud_wait() -> Duration {
    Duration::from_secs(60)
}

impl RecordingConfig {
    /// The upload settings, the local archive folder by default: `<dir>/archive`,
    /// made absolute against the working directory when `dir` is relative (the
    /// uploader's jobs name absolute paths; a relative `dir` such as the
    /// example's `"recordings"` must not keep `hotsite run` from starting).
    pub fn upload(&self) -> UploadConfig {
        self.upload.clone().unwrap_or_else(|| {
            let archive = self.dir.join("archive");
            UploadConfig::new(StoreTarget::Local {
                dir: std::path::absolute(&archive).unwrap_or(archive),
            })
        })
    }

    /// Checks values; every issue names its key under `recording.`.
    pub fn validate(&self, issues: &mut Issues) {
        if self.sync_interval.is_zero() || self.sync_interval > Duration::from_secs(10) {
            issues.add(
                "recording.sync_interval",
                "must be between 1 ms and 10 s (the most a crash loses)",
            );
        }
        if !(1_024..=4_194_304).contains(&self.queue_capacity) {
            issues.add(
                "recording.queue_capacity",
                "must be between 1,024 and 4,194,304",
            );
        }
        if self.cloud_wait > Duration::from_secs(24 * 3600) {
            issues.add("recording.cloud_wait", "must be at most 24 h");
        }
        if let Some(url) = &self.tsa_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                issues.add(
                    "recording.tsa_url",
                    format!("{url:?} is not an http(s) URL"),
                );
            }
        }
        if let Some(upload) = &self.upload {
            if let Err(e) = upload.validate() {
                issues.add("recording.upload", e.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC R4: a relative `dir` (the example's `"recordings"`) still gives an
    /// archive folder the uploader accepts; before, `hotsite run` refused to
    /// start with "recordings/archive is not an absolute path" while
    /// `check-config` said ok.
    #[test]
    fn a_relative_dir_gives_an_absolute_default_archive() {
        let config: RecordingConfig =
            toml::from_str("dir = \"recordings\"\nsigning_key = \"key.pem\"\n").unwrap();
        let upload = config.upload();
        let StoreTarget::Local { dir } = &upload.target else {
            panic!("the default is a local folder");
        };
        assert!(dir.is_absolute(), "{}", dir.display());
        assert!(dir.ends_with("recordings/archive"), "{}", dir.display());
        upload
            .validate()
            .expect("the default upload settings are valid");
        let mut issues = Issues::new();
        config.validate(&mut issues);
        assert!(issues.is_empty(), "{issues:?}");
    }
}
