//! The upload of recordings to object storage (SPEC R4).
//!
//! A recording (merged WAV and manifest) becomes an [`UploadJob`] in a
//! durable [`UploadQueue`] (a spool directory, e.g.
//! `<recordings dir>/upload-queue/`); an [`Uploader`] PUTs its objects to
//! the configured store ([`StoreTarget`]: a local folder, or S3 with tags
//! and Object Lock retention) through `object_store`.
//!
//! # Guarantees
//!
//! - **Durable before acknowledged.** [`UploadQueue::enqueue`] returns once
//!   the job file is written, fsynced, renamed into place and the directory
//!   fsynced. A crash or `kill -9` after that keeps the job; one before it
//!   leaves nothing (the caller was not told the job was queued).
//! - **Done only when confirmed.** A job leaves the queue
//!   ([`UploadQueue::mark_done`]) only after the store answered every one
//!   of its PUTs with success (S3: a 2xx, with the body's SHA-256 checked
//!   by S3; local: the file written, fsynced and renamed into place).
//! - **At least once.** A restart re-reads the spool and uploads every job
//!   not marked done, including objects already stored before the crash:
//!   a PUT of the same key with the same bytes is idempotent (on a
//!   versioned bucket, as Object Lock requires, it adds an identical
//!   version, locked like the first).
//! - **Files stay local.** The uploader reads the job's files and never
//!   deletes them; a failed upload (store unreachable, 5xx, full or
//!   read-only disk, missing folder) leaves the job queued and retries it
//!   with exponential backoff and full jitter, every failure named in the
//!   log (`tracing`) and counted in [`Uploader::stats`].
//! - **Corrupt job files** are moved to `corrupt/` with a `.why` note and
//!   reported ([`UploadQueue::corrupt`], `UploadStats::corrupt_jobs`), never
//!   dropped silently and never in the way of the other jobs.
//!
//! # Layout
//!
//! - [`job`]: the job, its validation and its file format.
//! - [`queue`]: the spool (plain `std::fs`).
//! - [`schedule`]: which job uploads next and when a failed one is retried;
//!   sans-IO, tested with fake time.
//! - `store`: the PUTs through `object_store` (Object Lock headers there).
//! - `driver`: the tokio task ([`Uploader`]); `clock`: its clock.

mod clock;
mod config;
mod driver;
mod error;
pub mod job;
pub mod queue;
pub mod schedule;
mod store;

pub use config::{LockMode, ObjectLock, StoreTarget, UploadConfig};
pub use driver::Uploader;
pub use error::{FailureScope, UploadError};
pub use job::{s3_tag_value, JobId, UploadJob, UploadObject, TAG_CALL_ID, TAG_START_TIME};
pub use queue::{UploadQueue, DEFAULT_MAX_JOBS};
pub use schedule::UploadStats;
