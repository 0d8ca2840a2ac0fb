//! The uploader: a tokio task that moves jobs from the queue to the store
//! as the [`Schedule`] decides, and marks a job done only after the store
//! confirmed every object of it (SPEC R4).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::clock;
use super::config::UploadConfig;
use super::error::UploadError;
use super::job::{JobId, UploadJob};
use super::queue::UploadQueue;
use super::schedule::{Schedule, UploadStats};
use super::store::{self, Store};

/// A running uploader. Dropping it stops the task (as [`Uploader::shutdown`]
/// does, without waiting): jobs not yet confirmed stay in the queue.
#[derive(Debug)]
pub struct Uploader {
    queue: Arc<Mutex<UploadQueue>>,
    new_jobs: mpsc::UnboundedSender<(JobId, Arc<UploadJob>)>,
    stats: watch::Receiver<UploadStats>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The result of one upload attempt of one job.
struct Attempt {
    id: JobId,
    /// Objects the store confirmed in this attempt.
    confirmed: Vec<usize>,
    result: Result<(), UploadError>,
}

impl Uploader {
    /// Starts uploading `queue`'s jobs, and those enqueued later through
    /// [`Uploader::enqueue`], to `config`'s store. Must be called inside a
    /// tokio runtime. Fails only on a bad config; the store is not contacted
    /// until the first upload.
    pub fn start(queue: UploadQueue, config: &UploadConfig) -> Result<Uploader, UploadError> {
        let store = Arc::new(Store::new(config)?);
        let mut schedule = Schedule::new(config.schedule());
        let mut jobs = HashMap::new();
        for (id, job) in queue.pending() {
            schedule.add(id, job.objects.len());
            jobs.insert(id, Arc::new(job.clone()));
        }
        let corrupt = queue.corrupt().len() as u64;
        let (stats_tx, stats) = watch::channel(UploadStats {
            corrupt_jobs: corrupt,
            ..schedule.stats()
        });
        let (new_jobs, new_jobs_rx) = mpsc::unbounded_channel();
        let queue = Arc::new(Mutex::new(queue));
        let shutdown = CancellationToken::new();
        tracing::info!(store = %store.describe(), pending = jobs.len(), "uploader started");
        let driver = Driver {
            queue: queue.clone(),
            store,
            schedule,
            jobs,
            corrupt,
            stats: stats_tx,
        };
        let task = tokio::spawn(driver.run(new_jobs_rx, shutdown.clone()));
        Ok(Uploader {
            queue,
            new_jobs,
            stats,
            shutdown,
            task: Some(task),
        })
    }

    /// Queues `job` durably (see [`UploadQueue::enqueue`]) and wakes the
    /// uploader. When this returns `Ok` the job survives a crash.
    pub async fn enqueue(&self, job: UploadJob) -> Result<JobId, UploadError> {
        let queue = self.queue.clone();
        let job = Arc::new(job);
        let queued = job.clone();
        // The spool's fsyncs block: not on a runtime worker.
        let id = tokio::task::spawn_blocking(move || lock(&queue).enqueue((*queued).clone()))
            .await
            .map_err(|e| UploadError::Spool {
                op: "enqueue",
                path: Default::default(),
                source: std::io::Error::other(e.to_string()),
            })??;
        // A stopped driver finds the job in the spool at the next start.
        let _ = self.new_jobs.send((id, job));
        Ok(id)
    }

    /// The counters now: pending, in flight, uploaded, failed attempts,
    /// corrupt job files, whether the store is down, the last error.
    pub fn stats(&self) -> UploadStats {
        self.stats.borrow().clone()
    }

    /// The counters as they change (for status pages and tests).
    pub fn subscribe(&self) -> watch::Receiver<UploadStats> {
        self.stats.clone()
    }

    /// Stops the uploader and waits for it. Uploads in flight are abandoned:
    /// their jobs stay queued and are uploaded again at the next start.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn lock(queue: &Mutex<UploadQueue>) -> MutexGuard<'_, UploadQueue> {
    // A panic while holding the lock leaves the queue's memory as it was
    // before the failed call: each call changes it only after its I/O.
    queue
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Driver {
    queue: Arc<Mutex<UploadQueue>>,
    store: Arc<Store>,
    schedule: Schedule,
    jobs: HashMap<JobId, Arc<UploadJob>>,
    corrupt: u64,
    stats: watch::Sender<UploadStats>,
}

impl Driver {
    async fn run(
        mut self,
        mut new_jobs: mpsc::UnboundedReceiver<(JobId, Arc<UploadJob>)>,
        shutdown: CancellationToken,
    ) {
        let mut uploads: JoinSet<Attempt> = JoinSet::new();
        let mut running: HashMap<tokio::task::Id, JobId> = HashMap::new();
        loop {
            let now = clock::now();
            while let Some(start) = self.schedule.poll_start(now) {
                let Some(job) = self.jobs.get(&start.id).cloned() else {
                    continue;
                };
                let handle =
                    uploads.spawn(upload(self.store.clone(), start.id, job, start.objects));
                running.insert(handle.id(), start.id);
            }
            self.publish();
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some((id, job)) = new_jobs.recv() => {
                    self.schedule.add(id, job.objects.len());
                    self.jobs.insert(id, job);
                }
                Some(joined) = uploads.join_next_with_id() => {
                    let attempt = match joined {
                        Ok((task, attempt)) => {
                            running.remove(&task);
                            attempt
                        }
                        Err(error) => {
                            let Some(id) = running.remove(&error.id()) else { continue };
                            Attempt {
                                id,
                                confirmed: Vec::new(),
                                result: Err(UploadError::Spool {
                                    op: "upload",
                                    path: Default::default(),
                                    source: std::io::Error::other(error.to_string()),
                                }),
                            }
                        }
                    };
                    self.finish(attempt).await;
                }
                () = clock::sleep_until(self.schedule.poll_timeout()) => {}
            }
        }
        // Abandoned uploads: their jobs stay in the spool.
        uploads.shutdown().await;
        tracing::info!("uploader stopped");
    }

    async fn finish(&mut self, attempt: Attempt) {
        let Attempt {
            id,
            confirmed,
            result,
        } = attempt;
        for index in &confirmed {
            self.schedule.object_uploaded(id, *index);
        }
        let result = match result {
            Ok(()) => {
                // Only now, with every object confirmed, does the job leave
                // the spool.
                let queue = self.queue.clone();
                tokio::task::spawn_blocking(move || lock(&queue).mark_done(id))
                    .await
                    .unwrap_or_else(|e| {
                        Err(UploadError::Spool {
                            op: "remove",
                            path: Default::default(),
                            source: std::io::Error::other(e.to_string()),
                        })
                    })
            }
            Err(error) => Err(error),
        };
        match result {
            Ok(()) => {
                let objects = self.jobs.remove(&id).map_or(0, |j| j.objects.len());
                self.schedule.job_uploaded(id);
                tracing::info!(job = %id, objects, store = %self.store.describe(), "recording uploaded");
            }
            Err(error) => {
                let now = clock::now();
                let scope = error.scope();
                let retry_at = self.schedule.job_failed(now, id, scope, error.to_string());
                tracing::warn!(
                    job = %id,
                    %error,
                    scope = ?scope,
                    retry_in_ms = retry_at.saturating_duration_since(now).as_millis() as u64,
                    "upload failed; the files stay local and the job is retried"
                );
            }
        }
    }

    fn publish(&self) {
        let stats = UploadStats {
            corrupt_jobs: self.corrupt,
            ..self.schedule.stats()
        };
        self.stats.send_if_modified(|current| {
            if *current == stats {
                false
            } else {
                *current = stats;
                true
            }
        });
    }
}

/// One attempt at job `id`'s `objects`, in order; stops at the first
/// failure.
async fn upload(store: Arc<Store>, id: JobId, job: Arc<UploadJob>, objects: Vec<usize>) -> Attempt {
    let mut confirmed = Vec::new();
    let result = async {
        let retention = if store.is_local() {
            // A folder has no Object Lock: the sidecar records the date.
            None
        } else {
            store::retention(id, &job, store.object_lock(), clock::wall_now())?
        };
        for index in objects {
            let object = &job.objects[index];
            let path = object.path.clone();
            let bytes = tokio::task::spawn_blocking(move || std::fs::read(&path))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
                .map_err(|source| UploadError::SourceFile {
                    job: id,
                    path: object.path.clone(),
                    source,
                })?;
            store
                .put(&job, object, Bytes::from(bytes), retention)
                .await?;
            tracing::debug!(job = %id, key = %object.key, "object confirmed by the store");
            confirmed.push(index);
        }
        Ok(())
    }
    .await;
    Attempt {
        id,
        confirmed,
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::FailureScope;

    #[test]
    fn failure_scopes_split_store_from_job() {
        let store = UploadError::TargetMissing { dir: "/x".into() };
        assert_eq!(store.scope(), FailureScope::Store);
        let job = UploadError::SourceFile {
            job: JobId(1),
            path: "/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(job.scope(), FailureScope::Job);
    }
}
