//! PUTs of a job's objects through `object_store` (SPEC R4): S3 with tags,
//! a SHA-256 checksum and Object Lock retention, or a local folder with a
//! tags sidecar. A PUT counts only once the store answered it with success.
//!
//! # Object Lock on S3
//!
//! `object_store` 0.14 has no option for `x-amz-object-lock-mode` and
//! `x-amz-object-lock-retain-until-date`, but it adds a client's
//! `ClientOptions::default_headers` to every request *before* signing
//! (SigV4 covers them, as S3 requires of `x-amz-*` headers). So an upload
//! with retention uses a client built for that retention, whose default
//! headers carry the mode and date. S3 refuses Object Lock PUTs without
//! `Content-MD5` or `x-amz-sdk-checksum-algorithm`: every client computes
//! SHA-256 (`x-amz-checksum-sha256`, which S3 checks against the body) and
//! says so in `x-amz-sdk-checksum-algorithm: SHA256`.

use std::error::Error as _;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder, Checksum};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, ClientOptions, HeaderMap, HeaderValue, ObjectStore, PutOptions,
    PutPayload, RetryConfig, TagSet,
};
use sha2::{Digest, Sha256};

use super::config::{LockMode, ObjectLock, StoreTarget, UploadConfig};
use super::error::UploadError;
use super::job::{
    format_time, format_time_seconds_up, s3_tag_value, JobId, UploadJob, UploadObject,
};

/// The local target's sidecar of an object's tags: `<key>.tags.json`.
pub(crate) const TAGS_SIDECAR_SUFFIX: &str = ".tags.json";

const DAY: Duration = Duration::from_secs(86_400);

/// S3 Object Lock retention of one upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retention {
    pub(crate) mode: LockMode,
    pub(crate) until: SystemTime,
}

/// The retention of job `id` on a target with `lock`, uploaded at `now`:
/// the later of the job's `retention_until` and `retain_days` after the
/// call's start. `None` without a lock and no retention asked, or when the
/// date has passed (an expired retention protects nothing; S3 refuses a
/// date in the past). A job asking for retention on a target without a lock
/// is an error, never a silent upload without one.
pub(crate) fn retention(
    id: JobId,
    job: &UploadJob,
    lock: Option<&ObjectLock>,
    now: SystemTime,
) -> Result<Option<Retention>, UploadError> {
    let Some(lock) = lock else {
        return match job.retention_until {
            None => Ok(None),
            Some(until) => Err(UploadError::RetentionNotConfigured {
                job: id,
                until: format_time(until).unwrap_or_default(),
            }),
        };
    };
    let by_policy = job
        .start_time
        .checked_add(DAY * lock.retain_days)
        .unwrap_or(job.start_time);
    let until = job.retention_until.map_or(by_policy, |u| u.max(by_policy));
    if until <= now {
        tracing::warn!(
            job = %id,
            until = %format_time(until).unwrap_or_default(),
            "retention date has passed: uploading without Object Lock"
        );
        return Ok(None);
    }
    Ok(Some(Retention {
        mode: lock.mode,
        until,
    }))
}

/// The configured store.
#[derive(Debug)]
pub(crate) struct Store {
    target: StoreTarget,
    config: UploadConfig,
    /// The S3 client for uploads without retention.
    s3: Option<Arc<AmazonS3>>,
    /// The client of the last retention used: a job's objects share one.
    locked: Mutex<Option<(Retention, Arc<AmazonS3>)>>,
}

impl Store {
    /// The store of `config` (validated here). Nothing is contacted yet.
    pub(crate) fn new(config: &UploadConfig) -> Result<Store, UploadError> {
        config.validate()?;
        let s3 = match &config.target {
            StoreTarget::S3 { .. } => Some(Arc::new(build_s3(config, None)?)),
            StoreTarget::Local { .. } => None,
        };
        Ok(Store {
            target: config.target.clone(),
            config: config.clone(),
            s3,
            locked: Mutex::new(None),
        })
    }

    /// The store as logs name it.
    pub(crate) fn describe(&self) -> String {
        match &self.target {
            StoreTarget::Local { dir } => format!("file://{}", dir.display()),
            StoreTarget::S3 { bucket, prefix, .. } => {
                format!("s3://{bucket}/{}", prefix.trim_matches('/'))
            }
        }
    }

    /// The object lock of an S3 target.
    pub(crate) fn object_lock(&self) -> Option<&ObjectLock> {
        match &self.target {
            StoreTarget::S3 { object_lock, .. } => object_lock.as_ref(),
            StoreTarget::Local { .. } => None,
        }
    }

    /// Whether retention is only recorded (the local folder), not enforced.
    pub(crate) fn is_local(&self) -> bool {
        matches!(self.target, StoreTarget::Local { .. })
    }

    /// PUTs `object` of `job` with `bytes`; `Ok` only once the store
    /// confirmed it.
    pub(crate) async fn put(
        &self,
        job: &UploadJob,
        object: &UploadObject,
        bytes: Bytes,
        retention: Option<Retention>,
    ) -> Result<(), UploadError> {
        match &self.target {
            StoreTarget::Local { dir } => self.put_local(dir, job, object, bytes).await,
            StoreTarget::S3 { prefix, .. } => {
                let key = prefixed(prefix, &object.key);
                let client = match retention {
                    None => self.s3.clone().ok_or_else(|| UploadError::Config {
                        key: "target",
                        reason: "no S3 client".into(),
                    })?,
                    Some(retention) => self.locked_client(retention)?,
                };
                let mut tags = TagSet::default();
                for (name, value) in job.tags() {
                    tags.push(&name, &s3_tag_value(&value));
                }
                let mut attributes = Attributes::new();
                attributes.insert(Attribute::ContentType, object.content_type.clone().into());
                let options = PutOptions {
                    tags,
                    attributes,
                    ..PutOptions::default()
                };
                let path = object_path(&key)?;
                client
                    .put_opts(&path, PutPayload::from_bytes(bytes), options)
                    .await
                    .map(drop)
                    .map_err(|source| UploadError::Store {
                        target: self.describe(),
                        key,
                        source,
                    })
            }
        }
    }

    /// A client whose PUTs carry `retention` (object_store signs a client's
    /// default headers, not per-request ones).
    fn locked_client(&self, retention: Retention) -> Result<Arc<AmazonS3>, UploadError> {
        let mut locked = self.locked.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached, client)) = locked.as_ref() {
            if *cached == retention {
                return Ok(client.clone());
            }
        }
        let client = Arc::new(build_s3(&self.config, Some(retention))?);
        *locked = Some((retention, client.clone()));
        Ok(client)
    }

    async fn put_local(
        &self,
        dir: &std::path::Path,
        job: &UploadJob,
        object: &UploadObject,
        bytes: Bytes,
    ) -> Result<(), UploadError> {
        if !dir.is_dir() {
            return Err(UploadError::TargetMissing {
                dir: dir.to_owned(),
            });
        }
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|source| self.local_error(dir, &object.key, source))?
            .with_fsync(true);
        let sidecar = local_sidecar(job, object, &bytes);
        let path = object_path(&object.key)?;
        store
            .put_opts(&path, PutPayload::from_bytes(bytes), PutOptions::default())
            .await
            .map_err(|source| self.local_error(dir, &object.key, source))?;
        let sidecar_key = format!("{}{TAGS_SIDECAR_SUFFIX}", object.key);
        store
            .put_opts(
                &object_path(&sidecar_key)?,
                PutPayload::from(sidecar),
                PutOptions::default(),
            )
            .await
            .map_err(|source| self.local_error(dir, &sidecar_key, source))?;
        Ok(())
    }

    /// Names a local failure by its I/O cause: a full disk, a read-only or
    /// forbidden folder, a folder that went away.
    fn local_error(
        &self,
        dir: &std::path::Path,
        key: &str,
        source: object_store::Error,
    ) -> UploadError {
        let dir = dir.to_owned();
        let key = key.to_owned();
        match io_cause(&source) {
            Some(io::ErrorKind::StorageFull) => UploadError::TargetFull { dir, key, source },
            Some(io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied) => {
                UploadError::TargetNotWritable { dir, key, source }
            }
            Some(io::ErrorKind::NotFound) if !dir.is_dir() => UploadError::TargetMissing { dir },
            _ => UploadError::Store {
                target: self.describe(),
                key,
                source,
            },
        }
    }
}

/// The first `io::Error` in `error`'s chain, by kind.
fn io_cause(error: &object_store::Error) -> Option<io::ErrorKind> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = error.source();
    let mut depth = 0;
    while let Some(cause) = next {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        depth += 1;
        if depth > 16 {
            break;
        }
        next = cause.source();
    }
    None
}

fn object_path(key: &str) -> Result<ObjectPath, UploadError> {
    ObjectPath::parse(key).map_err(|e| UploadError::InvalidJob {
        reason: format!("key {key:?}: {e}"),
    })
}

fn prefixed(prefix: &str, key: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}/{key}")
    }
}

/// The local target's stand-in for object tags and metadata.
fn local_sidecar(job: &UploadJob, object: &UploadObject, bytes: &[u8]) -> Vec<u8> {
    let tags: serde_json::Map<String, serde_json::Value> = job
        .tags()
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    let sha256: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sidecar = serde_json::json!({
        "tags": tags,
        "content_type": object.content_type,
        "sha256": sha256,
        "size": bytes.len(),
        "retention_until": job.retention_until.and_then(|t| format_time(t).ok()),
    });
    let mut out = serde_json::to_vec_pretty(&sidecar).unwrap_or_default();
    out.push(b'\n');
    out
}

/// An S3 client; with `retention`, one whose every PUT carries it.
fn build_s3(config: &UploadConfig, retention: Option<Retention>) -> Result<AmazonS3, UploadError> {
    let StoreTarget::S3 {
        bucket,
        region,
        endpoint,
        access_key_id,
        secret_access_key,
        allow_http,
        ..
    } = &config.target
    else {
        return Err(UploadError::Config {
            key: "target.kind",
            reason: "not s3".into(),
        });
    };
    let header = |key: &'static str, value: &str| {
        HeaderValue::from_str(value).map_err(|e| UploadError::Config {
            key,
            reason: e.to_string(),
        })
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-amz-sdk-checksum-algorithm",
        HeaderValue::from_static("SHA256"),
    );
    if let Some(retention) = retention {
        let until =
            format_time_seconds_up(retention.until).map_err(|reason| UploadError::Config {
                key: "target.object_lock",
                reason: format!("retain-until date: {reason}"),
            })?;
        headers.insert(
            "x-amz-object-lock-mode",
            HeaderValue::from_static(retention.mode.header_value()),
        );
        headers.insert(
            "x-amz-object-lock-retain-until-date",
            header("target.object_lock", &until)?,
        );
    }
    let client = ClientOptions::new()
        .with_allow_http(*allow_http)
        .with_timeout(config.request_timeout)
        .with_connect_timeout(config.connect_timeout)
        .with_default_headers(headers);
    // The upload queue retries with its own backoff; a PUT is one attempt.
    let retry = RetryConfig {
        max_retries: 0,
        retry_timeout: config.request_timeout,
        ..RetryConfig::default()
    };
    let mut builder = AmazonS3Builder::new()
        .with_client_options(client)
        .with_bucket_name(bucket)
        .with_region(region)
        .with_access_key_id(access_key_id)
        .with_secret_access_key(secret_access_key.expose())
        .with_allow_http(*allow_http)
        .with_checksum_algorithm(Checksum::SHA256)
        .with_retry(retry);
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    builder.build().map_err(|e| UploadError::Config {
        key: "target",
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::upload::job::UploadObject;

    fn job(start_secs: u64) -> UploadJob {
        UploadJob::new(
            "c@h",
            UNIX_EPOCH + Duration::from_secs(start_secs),
            vec![UploadObject::wav("/r/m.wav", "m.wav")],
        )
    }

    const LOCK: ObjectLock = ObjectLock {
        mode: LockMode::Governance,
        retain_days: 10,
    };

    #[test]
    fn r4_retention_is_the_later_of_policy_and_job() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let policy = UNIX_EPOCH + Duration::from_secs(1_000 + 10 * 86_400);
        let r = retention(JobId(1), &job(1_000), Some(&LOCK), now)
            .unwrap()
            .unwrap();
        assert_eq!((r.mode, r.until), (LockMode::Governance, policy));

        let mut longer = job(1_000);
        longer.retention_until = Some(policy + DAY);
        let r = retention(JobId(1), &longer, Some(&LOCK), now)
            .unwrap()
            .unwrap();
        assert_eq!(r.until, policy + DAY);

        let mut shorter = job(1_000);
        shorter.retention_until = Some(now + DAY);
        let r = retention(JobId(1), &shorter, Some(&LOCK), now)
            .unwrap()
            .unwrap();
        assert_eq!(r.until, policy, "a job never shortens the policy");
    }

    #[test]
    fn r4_retention_without_a_lock_is_an_error_and_a_past_date_is_none() {
        let now = UNIX_EPOCH + Duration::from_secs(100 * 86_400);
        assert_eq!(retention(JobId(1), &job(0), None, now).unwrap(), None);
        let mut asks = job(0);
        asks.retention_until = Some(now + DAY);
        assert!(matches!(
            retention(JobId(1), &asks, None, now),
            Err(UploadError::RetentionNotConfigured { .. })
        ));
        // Started 100 days ago, 10 days of retention: nothing left to lock.
        assert_eq!(
            retention(JobId(1), &job(0), Some(&LOCK), now).unwrap(),
            None
        );
    }

    /// Real S3 refuses `x-amz-*` headers that SigV4 did not sign (moto does
    /// not check): the Object Lock and checksum headers must be in
    /// `SignedHeaders`.
    #[tokio::test]
    async fn r4_object_lock_headers_are_sent_and_signed() {
        use std::io::{Read, Write};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "request head cut short");
                request.extend_from_slice(&buf[..n]);
            }
            conn.write_all(b"HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            String::from_utf8_lossy(&request).to_lowercase()
        });
        let config = UploadConfig::new(StoreTarget::S3 {
            bucket: "rec".into(),
            region: "eu-west-1".into(),
            endpoint: Some(endpoint),
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            prefix: String::new(),
            allow_http: true,
            object_lock: Some(LOCK),
        });
        let store = Store::new(&config).unwrap();
        let job = job(1_777_636_800);
        let retention = Retention {
            mode: LockMode::Compliance,
            until: UNIX_EPOCH + Duration::from_millis(2_000_000_000_500),
        };
        store
            .put(
                &job,
                &job.objects[0],
                Bytes::from_static(b"RIFF"),
                Some(retention),
            )
            .await
            .unwrap();
        let head = server.join().unwrap();
        assert!(
            head.contains("x-amz-object-lock-mode: compliance"),
            "{head}"
        );
        assert!(
            head.contains("x-amz-object-lock-retain-until-date: 2033-05-18t03:33:21z"),
            "{head}"
        );
        assert!(
            head.contains("x-amz-sdk-checksum-algorithm: sha256"),
            "{head}"
        );
        assert!(head.contains("x-amz-checksum-sha256: "), "{head}");
        assert!(
            head.contains("x-amz-tagging: call-id=c%40h&start-time="),
            "{head}"
        );
        let signed = head
            .split("signedheaders=")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap_or_default();
        for header in [
            "x-amz-checksum-sha256",
            "x-amz-object-lock-mode",
            "x-amz-object-lock-retain-until-date",
            "x-amz-sdk-checksum-algorithm",
            "x-amz-tagging",
        ] {
            assert!(
                signed.split(';').any(|h| h == header),
                "{header} not signed: {signed}"
            );
        }
    }

    #[test]
    fn keys_get_the_prefix() {
        assert_eq!(prefixed("", "a/b.wav"), "a/b.wav");
        assert_eq!(prefixed("/site-a/", "a/b.wav"), "site-a/a/b.wav");
    }
}
