//! The durable upload queue (SPEC R4): one job file per job in a spool
//! directory, written before `enqueue` returns and removed only by
//! `mark_done`, which the uploader calls after the store confirmed every
//! object of the job.
//!
//! # On disk
//!
//! ```text
//! <dir>/00000000000000000042.job.json       a job waiting (job.rs has the format)
//! <dir>/00000000000000000043.job.json.tmp   an enqueue in progress (removed at open)
//! <dir>/corrupt/<name>                      a job file that could not be read,
//! <dir>/corrupt/<name>.why                  and why (one line)
//! ```
//!
//! An enqueue writes the `.tmp` file, fsyncs it, renames it to its name and
//! fsyncs the directory: after a crash a job is either whole or absent, and
//! one whose enqueue returned is there. A `.tmp` file found at open belongs
//! to an enqueue that never returned, so nobody was told it was queued; it is
//! removed. `mark_done` removes the file and fsyncs the directory; a crash
//! before that fsync brings the job back, and it is uploaded again (at least
//! once).
//!
//! One process owns a spool: two uploaders on one directory would both
//! upload every job (harmless, same keys and bytes, but wasteful).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::error::UploadError;
use super::job::{self, JobId, UploadJob};

const JOB_SUFFIX: &str = ".job.json";
const TMP_SUFFIX: &str = ".tmp";
const CORRUPT_DIR: &str = "corrupt";

/// Jobs a queue holds by default before it refuses more (DESIGN.md
/// invariant 6): about 100 MB of job files, weeks of recordings while a
/// store is down.
pub const DEFAULT_MAX_JOBS: usize = 100_000;

/// The durable queue of upload jobs in one spool directory.
#[derive(Debug)]
pub struct UploadQueue {
    dir: PathBuf,
    jobs: BTreeMap<JobId, UploadJob>,
    next_id: u64,
    max_jobs: usize,
    corrupt: Vec<UploadError>,
}

impl UploadQueue {
    /// Opens the spool at `dir` (created if missing) and reads every job
    /// waiting there. Job files that cannot be read are moved to
    /// `corrupt/` and listed in [`UploadQueue::corrupt`] (and logged); they
    /// never stop the others from loading.
    pub fn open(dir: impl Into<PathBuf>) -> Result<UploadQueue, UploadError> {
        let dir = dir.into();
        let spool = |op: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| UploadError::Spool { op, path, source }
        };
        fs::create_dir_all(&dir).map_err(spool("create", &dir))?;
        let mut queue = UploadQueue {
            dir,
            jobs: BTreeMap::new(),
            next_id: 1,
            max_jobs: DEFAULT_MAX_JOBS,
            corrupt: Vec::new(),
        };
        let entries = fs::read_dir(&queue.dir).map_err(spool("read", &queue.dir))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(spool("read", &queue.dir))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        for name in names {
            let path = queue.dir.join(&name);
            if name.ends_with(TMP_SUFFIX) {
                // An enqueue that never returned: nobody was told it was queued.
                match fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "upload queue: removed an unfinished enqueue")
                    }
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "upload queue: cannot remove an unfinished enqueue")
                    }
                }
            } else if let Some(stem) = name.strip_suffix(JOB_SUFFIX) {
                queue.load(&name, stem);
            }
        }
        if !queue.corrupt.is_empty() {
            sync_dir(&queue.dir)?;
        }
        queue.next_id = queue.jobs.keys().next_back().map_or(1, |id| id.0 + 1);
        tracing::info!(
            dir = %queue.dir.display(),
            pending = queue.jobs.len(),
            corrupt = queue.corrupt.len(),
            "upload queue opened"
        );
        Ok(queue)
    }

    fn load(&mut self, name: &str, stem: &str) {
        let path = self.dir.join(name);
        let loaded = match JobId::parse(stem) {
            None => Err(format!("{stem:?} is not a job id")),
            Some(id) => match fs::read(&path) {
                Err(error) => Err(format!("cannot read: {error}")),
                Ok(bytes) => job::decode(id, &bytes).map(|job| (id, job)),
            },
        };
        match loaded {
            Ok((id, job)) => {
                self.jobs.insert(id, job);
            }
            Err(reason) => {
                let error = self.move_aside(&path, name, reason);
                tracing::error!(%error, "upload queue: corrupt job file");
                self.corrupt.push(error);
            }
        }
    }

    /// Moves a corrupt job file to `corrupt/` with a note of why. If it
    /// cannot be moved it stays where it is, still never loaded.
    fn move_aside(&self, path: &Path, name: &str, reason: String) -> UploadError {
        let corrupt_dir = self.dir.join(CORRUPT_DIR);
        let mut target = corrupt_dir.join(name);
        let mut n = 1;
        while target.exists() && n < 1000 {
            target = corrupt_dir.join(format!("{name}.{n}"));
            n += 1;
        }
        let moved = fs::create_dir_all(&corrupt_dir).and_then(|()| fs::rename(path, &target));
        match moved {
            Ok(()) => {
                let mut why = target.clone().into_os_string();
                why.push(".why");
                let _ = fs::write(&why, format!("{reason}\n"));
                let _ = sync_dir(&corrupt_dir);
                UploadError::CorruptJob {
                    path: path.to_owned(),
                    moved_to: target,
                    reason,
                }
            }
            Err(error) => UploadError::CorruptJob {
                path: path.to_owned(),
                moved_to: path.to_owned(),
                reason: format!("{reason}; could not move it aside: {error}"),
            },
        }
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sets how many jobs the queue holds before [`UploadQueue::enqueue`]
    /// refuses with [`UploadError::QueueFull`]. Default: [`DEFAULT_MAX_JOBS`].
    pub fn set_max_jobs(&mut self, max_jobs: usize) {
        self.max_jobs = max_jobs;
    }

    /// Adds `job`, durably: when this returns `Ok` the job file is on disk
    /// (written, fsynced, renamed into place, directory fsynced) and survives
    /// a crash or `kill -9`. A job that could never upload (no objects, a bad
    /// key or tag) is refused with [`UploadError::InvalidJob`]; a full or
    /// read-only spool disk with [`UploadError::Spool`].
    pub fn enqueue(&mut self, job: UploadJob) -> Result<JobId, UploadError> {
        job.validate()?;
        if self.jobs.len() >= self.max_jobs {
            return Err(UploadError::QueueFull { max: self.max_jobs });
        }
        let id = JobId(self.next_id);
        let bytes = job::encode(id, &job)?;
        let path = self.job_path(id);
        let mut tmp = path.clone().into_os_string();
        tmp.push(TMP_SUFFIX);
        let tmp = PathBuf::from(tmp);
        if let Err(error) = write_durably(&tmp, &path, &self.dir, &bytes) {
            let _ = fs::remove_file(&tmp);
            // Renamed but the directory not synced: not acknowledged, so it
            // must not upload either (the caller may enqueue it again).
            let _ = fs::remove_file(&path);
            return Err(error);
        }
        self.next_id += 1;
        self.jobs.insert(id, job);
        tracing::debug!(job = %id, "upload job queued");
        Ok(id)
    }

    /// The jobs waiting, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = (JobId, &UploadJob)> {
        self.jobs.iter().map(|(id, job)| (*id, job))
    }

    /// A waiting job.
    pub fn job(&self, id: JobId) -> Option<&UploadJob> {
        self.jobs.get(&id)
    }

    /// How many jobs wait.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether no job waits.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Removes job `id` for good. Call it only once the store confirmed every
    /// object of the job.
    pub fn mark_done(&mut self, id: JobId) -> Result<(), UploadError> {
        if !self.jobs.contains_key(&id) {
            return Err(UploadError::UnknownJob(id));
        }
        let path = self.job_path(id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(UploadError::Spool {
                    op: "remove",
                    path,
                    source,
                })
            }
        }
        self.jobs.remove(&id);
        // If this fsync fails the job may come back after a crash and be
        // uploaded again: at least once, never lost.
        sync_dir(&self.dir)?;
        tracing::debug!(job = %id, "upload job done");
        Ok(())
    }

    /// The job files found corrupt at open, each an
    /// [`UploadError::CorruptJob`] naming the file, where it went and why.
    pub fn corrupt(&self) -> &[UploadError] {
        &self.corrupt
    }

    fn job_path(&self, id: JobId) -> PathBuf {
        self.dir.join(format!("{id}{JOB_SUFFIX}"))
    }
}

/// Writes `bytes` to `tmp`, fsyncs, renames to `path`, fsyncs `dir`.
fn write_durably(tmp: &Path, path: &Path, dir: &Path, bytes: &[u8]) -> Result<(), UploadError> {
    let err = |op: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| UploadError::Spool { op, path, source }
    };
    let mut file = File::create(tmp).map_err(err("create", tmp))?;
    file.write_all(bytes).map_err(err("write", tmp))?;
    file.sync_all().map_err(err("fsync", tmp))?;
    drop(file);
    fs::rename(tmp, path).map_err(err("rename", path))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), UploadError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| UploadError::Spool {
            op: "fsync",
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::upload::job::UploadObject;

    fn temp_dir(name: &str) -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hotsite-upload-queue-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn job(call: &str) -> UploadJob {
        UploadJob::new(
            call,
            UNIX_EPOCH + Duration::from_secs(1_777_636_800),
            vec![
                UploadObject::wav("/rec/merged.wav", format!("{call}/merged.wav")),
                UploadObject::json("/rec/manifest.json", format!("{call}/manifest.json")),
            ],
        )
    }

    #[test]
    fn r4_enqueued_jobs_survive_reopen_in_order_and_done_ones_do_not() {
        let dir = temp_dir("reopen");
        let mut queue = UploadQueue::open(&dir).unwrap();
        let a = queue.enqueue(job("a")).unwrap();
        let b = queue.enqueue(job("b")).unwrap();
        let c = queue.enqueue(job("c")).unwrap();
        assert!(a < b && b < c);
        queue.mark_done(b).unwrap();
        assert!(matches!(queue.mark_done(b), Err(UploadError::UnknownJob(id)) if id == b));
        drop(queue);

        let mut queue = UploadQueue::open(&dir).unwrap();
        let pending: Vec<_> = queue
            .pending()
            .map(|(id, j)| (id, j.call_id.clone()))
            .collect();
        assert_eq!(pending, [(a, "a".to_owned()), (c, "c".to_owned())]);
        assert_eq!(queue.job(c), Some(&job("c")));
        // New ids continue after the highest waiting one.
        let d = queue.enqueue(job("d")).unwrap();
        assert!(d > c);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn r4_an_unfinished_enqueue_is_removed_at_open() {
        let dir = temp_dir("tmp");
        let mut queue = UploadQueue::open(&dir).unwrap();
        let a = queue.enqueue(job("a")).unwrap();
        drop(queue);
        // A kill -9 between write and rename leaves this.
        let tmp = dir.join("00000000000000000002.job.json.tmp");
        fs::write(&tmp, b"{\"version\":1,\"id\":").unwrap();
        let queue = UploadQueue::open(&dir).unwrap();
        assert_eq!(queue.pending().map(|(id, _)| id).collect::<Vec<_>>(), [a]);
        assert!(queue.corrupt().is_empty());
        assert!(!tmp.exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn r4_corrupt_job_files_are_moved_aside_named_and_do_not_block_the_rest() {
        let dir = temp_dir("corrupt");
        let mut queue = UploadQueue::open(&dir).unwrap();
        let a = queue.enqueue(job("a")).unwrap();
        let b = queue.enqueue(job("b")).unwrap();
        let c = queue.enqueue(job("c")).unwrap();
        drop(queue);
        let b_path = dir.join(format!("{b}.job.json"));
        fs::write(&b_path, b"{\"version\":1, garbage").unwrap();
        fs::write(dir.join("not-an-id.job.json"), b"{}").unwrap();
        fs::write(dir.join("README"), b"operators' notes are left alone").unwrap();

        let queue = UploadQueue::open(&dir).unwrap();
        assert_eq!(
            queue.pending().map(|(id, _)| id).collect::<Vec<_>>(),
            [a, c]
        );
        assert_eq!(queue.corrupt().len(), 2);
        let messages: Vec<String> = queue.corrupt().iter().map(|e| e.to_string()).collect();
        assert!(
            messages
                .iter()
                .any(|m| m.contains(&format!("{b}.job.json")) && m.contains("not a job")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("is not a job id")),
            "{messages:?}"
        );
        assert!(!b_path.exists());
        let moved = dir.join("corrupt").join(format!("{b}.job.json"));
        assert_eq!(fs::read(&moved).unwrap(), b"{\"version\":1, garbage");
        let why =
            fs::read_to_string(dir.join("corrupt").join(format!("{b}.job.json.why"))).unwrap();
        assert!(why.contains("not a job"), "{why}");
        assert!(dir.join("README").exists());
        drop(queue);
        // Opening again finds nothing new to move.
        assert!(UploadQueue::open(&dir).unwrap().corrupt().is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn r4_enqueue_refuses_invalid_jobs_and_past_the_limit_without_writing() {
        let dir = temp_dir("limits");
        let mut queue = UploadQueue::open(&dir).unwrap();
        let mut bad = job("a");
        bad.objects.clear();
        assert!(matches!(
            queue.enqueue(bad),
            Err(UploadError::InvalidJob { .. })
        ));
        queue.set_max_jobs(1);
        queue.enqueue(job("a")).unwrap();
        assert!(matches!(
            queue.enqueue(job("b")),
            Err(UploadError::QueueFull { max: 1 })
        ));
        let files = fs::read_dir(&dir).unwrap().count();
        assert_eq!(files, 1);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn r4_spool_that_cannot_be_created_is_a_named_error() {
        let dir = temp_dir("file");
        fs::write(&dir, b"a file where the spool should be").unwrap();
        let error = UploadQueue::open(dir.join("q")).unwrap_err();
        assert!(
            matches!(error, UploadError::Spool { op: "create", .. }),
            "{error}"
        );
        fs::remove_file(dir).unwrap();
    }
}
