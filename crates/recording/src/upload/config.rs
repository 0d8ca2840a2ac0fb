//! The upload's configuration (SPEC R4): where recordings go and how
//! failed uploads are retried.
//!
//! ```toml
//! [recording.upload]
//! max_concurrent = 2          # default
//! retry_initial = "1s"        # default: first retry within 1 s ...
//! retry_max = "5m"            # ... the ceiling doubles up to 5 min (full jitter)
//! request_timeout = "5m"      # default: one PUT, body included
//! connect_timeout = "10s"     # default
//!
//! [recording.upload.target]   # the default kind: a local folder
//! kind = "local"
//! dir = "/var/lib/hotsite/recordings/uploaded"
//!
//! # or S3 (or an S3-compatible store):
//! # kind = "s3"
//! # bucket = "call-recordings"
//! # region = "eu-west-1"
//! # endpoint = "https://s3.eu-west-1.amazonaws.com"   # optional: S3-compatible stores
//! # access_key_id = "AKIA..."
//! # secret_access_key = "..."
//! # prefix = "site-a"                                  # optional, default none
//! # allow_http = false                                 # default
//! # object_lock = { mode = "compliance", retain_days = 2557 }   # optional
//! ```

use std::path::PathBuf;
use std::time::Duration;

use hotsite_core::config::duration;
use hotsite_core::{BackoffConfig, Secret};
use serde::Deserialize;

use super::error::UploadError;
use super::schedule::ScheduleConfig;

/// The upload section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadConfig {
    /// Where objects go.
    pub target: StoreTarget,
    /// Uploads at once, 1 to 64. Default: 2.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// Ceiling of the first retry's delay. Default: 1 s.
    #[serde(default = "default_retry_initial", deserialize_with = "duration")]
    pub retry_initial: Duration,
    /// The retry ceiling doubles up to this. Default: 5 min.
    #[serde(default = "default_retry_max", deserialize_with = "duration")]
    pub retry_max: Duration,
    /// Longest a PUT may take, body included. Default: 5 min.
    #[serde(default = "default_request_timeout", deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Longest a connect may take. Default: 10 s.
    #[serde(default = "default_connect_timeout", deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// Seeds the retry jitter (differ per site so sites do not retry in
    /// lockstep). Default: 0.
    #[serde(default)]
    pub seed: u64,
}

/// Where uploaded recordings go.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StoreTarget {
    /// A local folder (object_store's `LocalFileSystem`, every write
    /// fsynced). It has no object tags: each object gets a sidecar
    /// `<key>.tags.json` with its tags, content type, SHA-256 and retention
    /// date (not enforced: a folder has no Object Lock).
    Local {
        /// The folder; it must exist (it is not created: a missing folder is
        /// usually an unmounted share).
        dir: PathBuf,
    },
    /// S3 or an S3-compatible store.
    S3 {
        /// The bucket.
        bucket: String,
        /// Its region.
        region: String,
        /// The endpoint, for S3-compatible stores; default: AWS's.
        #[serde(default)]
        endpoint: Option<String>,
        /// Access key id.
        access_key_id: String,
        /// Secret access key.
        secret_access_key: Secret,
        /// Put before every key, `/`-separated. Default: none.
        #[serde(default)]
        prefix: String,
        /// Allow an `http://` endpoint (a test store). Default: false.
        #[serde(default)]
        allow_http: bool,
        /// S3 Object Lock retention of every object (the bucket must have
        /// Object Lock enabled). Default: none.
        #[serde(default)]
        object_lock: Option<ObjectLock>,
    },
}

/// S3 Object Lock retention for every uploaded object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectLock {
    /// Governance or compliance mode.
    pub mode: LockMode,
    /// Objects are locked until this many days after the call started (or
    /// the job's own `retention_until`, if later). 1 to 36,500.
    pub retain_days: u32,
}

/// S3 Object Lock's retention modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    /// Users with `s3:BypassGovernanceRetention` may still delete.
    Governance,
    /// Nobody, not even the account's root user, may delete before the date.
    Compliance,
}

impl LockMode {
    /// The value of `x-amz-object-lock-mode`.
    pub fn header_value(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

fn default_max_concurrent() -> usize {
    2
}
fn default_retry_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(300)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

impl UploadConfig {
    /// A config with the defaults for `target`.
    pub fn new(target: StoreTarget) -> UploadConfig {
        UploadConfig {
            target,
            max_concurrent: default_max_concurrent(),
            retry_initial: default_retry_initial(),
            retry_max: default_retry_max(),
            request_timeout: default_request_timeout(),
            connect_timeout: default_connect_timeout(),
            seed: 0,
        }
    }

    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), UploadError> {
        let bad = |key: &'static str, reason: String| Err(UploadError::Config { key, reason });
        if !(1..=64).contains(&self.max_concurrent) {
            return bad(
                "max_concurrent",
                format!("{} is not 1 to 64", self.max_concurrent),
            );
        }
        if let Err(e) = self.backoff().validate() {
            return bad("retry_initial", e.to_string());
        }
        if self.request_timeout.is_zero() {
            return bad("request_timeout", "must be more than zero".into());
        }
        if self.connect_timeout.is_zero() {
            return bad("connect_timeout", "must be more than zero".into());
        }
        match &self.target {
            StoreTarget::Local { dir } => {
                if !dir.is_absolute() {
                    return bad(
                        "target.dir",
                        format!("{} is not an absolute path", dir.display()),
                    );
                }
            }
            StoreTarget::S3 {
                bucket,
                region,
                endpoint,
                access_key_id,
                secret_access_key,
                allow_http,
                object_lock,
                prefix,
            } => {
                let prefix = prefix.trim_matches('/');
                if prefix.len() > 100 {
                    return bad(
                        "target.prefix",
                        format!("is {} bytes (at most 100)", prefix.len()),
                    );
                }
                if !prefix.is_empty() {
                    if let Err(e) = object_store::path::Path::parse(prefix) {
                        return bad("target.prefix", e.to_string());
                    }
                }
                if bucket.is_empty() {
                    return bad("target.bucket", "is empty".into());
                }
                if region.is_empty() {
                    return bad("target.region", "is empty".into());
                }
                if access_key_id.is_empty() {
                    return bad("target.access_key_id", "is empty".into());
                }
                if secret_access_key.expose().is_empty() {
                    return bad("target.secret_access_key", "is empty".into());
                }
                if let Some(endpoint) = endpoint {
                    if endpoint.starts_with("http://") {
                        if !allow_http {
                            return bad(
                                "target.endpoint",
                                format!("{endpoint} is http:// but allow_http is false"),
                            );
                        }
                    } else if !endpoint.starts_with("https://") {
                        return bad(
                            "target.endpoint",
                            format!("{endpoint} is not an http(s) URL"),
                        );
                    }
                }
                if let Some(lock) = object_lock {
                    if !(1..=36_500).contains(&lock.retain_days) {
                        return bad(
                            "target.object_lock.retain_days",
                            format!("{} is not 1 to 36500", lock.retain_days),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) fn backoff(&self) -> BackoffConfig {
        BackoffConfig {
            initial: self.retry_initial,
            max: self.retry_max,
            multiplier: 2,
        }
    }

    pub(crate) fn schedule(&self) -> ScheduleConfig {
        ScheduleConfig {
            backoff: self.backoff(),
            max_concurrent: self.max_concurrent,
            seed: self.seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r4_config_reads_both_targets_with_defaults() {
        let local: UploadConfig =
            serde_json::from_str(r#"{"target":{"kind":"local","dir":"/srv/rec"}}"#).unwrap();
        assert!(
            matches!(&local.target, StoreTarget::Local { dir } if dir == &PathBuf::from("/srv/rec"))
        );
        assert_eq!(local.max_concurrent, 2);
        assert_eq!(local.retry_max, Duration::from_secs(300));
        local.validate().unwrap();

        let s3: UploadConfig = serde_json::from_str(
            r#"{"retry_initial":"500ms","target":{"kind":"s3","bucket":"b","region":"eu-west-1",
                "endpoint":"http://127.0.0.1:9000","access_key_id":"k","secret_access_key":"s",
                "allow_http":true,"object_lock":{"mode":"compliance","retain_days":2557}}}"#,
        )
        .unwrap();
        assert_eq!(s3.retry_initial, Duration::from_millis(500));
        let StoreTarget::S3 {
            object_lock,
            prefix,
            ..
        } = &s3.target
        else {
            panic!("s3 expected");
        };
        assert_eq!(
            *object_lock,
            Some(ObjectLock {
                mode: LockMode::Compliance,
                retain_days: 2557
            })
        );
        assert_eq!(prefix, "");
        s3.validate().unwrap();
        // The secret never shows in Debug.
        assert!(!format!("{s3:?}").contains("\"s\""));
    }

    #[test]
    fn r4_config_errors_name_the_key() {
        let unknown = serde_json::from_str::<UploadConfig>(
            r#"{"target":{"kind":"local","dir":"/srv","bucket":"x"}}"#,
        );
        assert!(unknown.unwrap_err().to_string().contains("bucket"));
        let key_of = |json: &str| match serde_json::from_str::<UploadConfig>(json)
            .unwrap()
            .validate()
        {
            Err(UploadError::Config { key, .. }) => key,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            key_of(r#"{"target":{"kind":"local","dir":"rel"}}"#),
            "target.dir"
        );
        assert_eq!(
            key_of(r#"{"max_concurrent":0,"target":{"kind":"local","dir":"/srv"}}"#),
            "max_concurrent"
        );
        let s3 = |extra: &str| {
            format!(
                r#"{{"target":{{"kind":"s3","bucket":"b","region":"r","access_key_id":"k","secret_access_key":"s"{extra}}}}}"#
            )
        };
        assert_eq!(
            key_of(&s3(r#","endpoint":"http://127.0.0.1:1""#)),
            "target.endpoint"
        );
        assert_eq!(key_of(&s3(r#","endpoint":"ftp://x""#)), "target.endpoint");
        assert_eq!(key_of(&s3(r#","prefix":"a//b""#)), "target.prefix");
        assert_eq!(
            key_of(&s3(
                r#","object_lock":{"mode":"governance","retain_days":0}"#
            )),
            "target.object_lock.retain_days"
        );
        assert_eq!(
            key_of(&s3(r#","bucket":"""#).replace(r#""bucket":"b","#, "")),
            "target.bucket"
        );
    }
}
