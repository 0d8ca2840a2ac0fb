//! What can go wrong with an upload, named (SPEC R4).

use std::io;
use std::path::PathBuf;

use super::job::JobId;

/// Why an upload, the queue or the store's configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The spool directory could not be read or written (a full or
    /// read-only disk here refuses new work, it drops nothing).
    #[error("upload queue {path}: cannot {op}: {source}")]
    Spool {
        /// What the queue was doing (`create`, `write`, `fsync`, `rename`, …).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A job file that does not parse or does not describe a valid job. It is
    /// moved aside (`corrupt/` in the spool) and never uploaded.
    #[error("upload queue: job file {path} is corrupt ({reason}); moved to {moved_to}")]
    CorruptJob {
        /// Where it was.
        path: PathBuf,
        /// Where it is now.
        moved_to: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A job refused at enqueue: it would never upload.
    #[error("upload job refused: {reason}")]
    InvalidJob {
        /// What is wrong with it.
        reason: String,
    },
    /// The queue holds its limit of jobs (DESIGN.md invariant 6).
    #[error("upload queue is full ({max} jobs waiting)")]
    QueueFull {
        /// The limit.
        max: usize,
    },
    /// `mark_done` of a job the queue does not hold.
    #[error("upload queue has no job {0}")]
    UnknownJob(JobId),
    /// A job's local file could not be read: it stays queued.
    #[error("job {job}: cannot read {path}: {source}")]
    SourceFile {
        /// The job.
        job: JobId,
        /// The local file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The local target's directory does not exist. It is not created: a
    /// missing directory is usually an unmounted share, and writing to the
    /// mount point would hide the recordings from it.
    #[error("local store {dir} does not exist (not mounted?)")]
    TargetMissing {
        /// The configured directory.
        dir: PathBuf,
    },
    /// The local target's disk is full.
    #[error("local store {dir} is full, {key} not written: {source}")]
    TargetFull {
        /// The configured directory.
        dir: PathBuf,
        /// The object key.
        key: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// The local target is read-only or not writable by us.
    #[error("local store {dir} is not writable, {key} not written: {source}")]
    TargetNotWritable {
        /// The configured directory.
        dir: PathBuf,
        /// The object key.
        key: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// The store did not confirm a PUT: unreachable, a timeout, a 5xx or a
    /// refusal. The job stays queued and is retried.
    #[error("store {target}: PUT {key} not confirmed: {source}")]
    Store {
        /// The store (`s3://bucket/prefix`, `file:///dir`).
        target: String,
        /// The object key.
        key: String,
        /// The store's error, with the HTTP status or I/O cause.
        source: object_store::Error,
    },
    /// A job asks for retention but the S3 target has no `object_lock`: an
    /// upload without the lock would silently weaken the job's retention.
    #[error("job {job} asks for retention until {until} but the S3 target has no object_lock configured")]
    RetentionNotConfigured {
        /// The job.
        job: JobId,
        /// The asked retain-until date, RFC 3339.
        until: String,
    },
    /// The store's configuration is unusable.
    #[error("upload target: {key}: {reason}")]
    Config {
        /// The config key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Whether a failure is the store's (every job would fail now: back off the
/// whole queue) or one job's (its file is gone: back off that job only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureScope {
    /// The store or the spool: unreachable, full, read-only, refused.
    Store,
    /// This job only.
    Job,
}

impl UploadError {
    /// Whose failure this is, for the retry schedule.
    pub fn scope(&self) -> FailureScope {
        match self {
            UploadError::SourceFile { .. }
            | UploadError::RetentionNotConfigured { .. }
            | UploadError::InvalidJob { .. }
            | UploadError::CorruptJob { .. }
            | UploadError::UnknownJob(_) => FailureScope::Job,
            UploadError::Spool { .. }
            | UploadError::QueueFull { .. }
            | UploadError::TargetMissing { .. }
            | UploadError::TargetFull { .. }
            | UploadError::TargetNotWritable { .. }
            | UploadError::Store { .. }
            | UploadError::Config { .. } => FailureScope::Store,
        }
    }
}
