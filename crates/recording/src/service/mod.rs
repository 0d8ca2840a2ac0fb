//! The recording system (SPEC R1–R4) as the host runs it: the edge
//! [`Recorder`] the voice proxy's media relay feeds, and the pipeline that
//! takes each finished call through the merge, the signed manifest and the
//! upload queue.
//!
//! ```text
//! relay ─ MediaTap ─▶ Recorder (thread: journals, fsync each sync_interval)
//!                        │ Finished
//!                        ▼
//!   pipeline: wait for the cloud recording (cloud_dir, ≤ cloud_wait) ─▶ copy it in
//!             ─▶ merge (blocking pool) ─▶ manifest, signed (+ RFC 3161) ─▶ manifest.json
//!             ─▶ Uploader::enqueue (durable) ─▶ upload-queued marker
//! ```
//!
//! Every step writes its file atomically; a call directory without the
//! `upload-queued` marker is taken up again at the next start, from the
//! first step whose file is missing. So a `kill -9` at any point loses at
//! most the journal's unsynced tail, and the journal says so.

mod cloud;
pub mod process;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use hotsite_core::{Event, EventKind, Target};
use hotsite_host::{BoxFuture, Deps, Events, Health, HttpRoutes, System};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use serde_json::{json, Map, Value};
use thiserror::Error;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::RecordingConfig;
use crate::journal::JOURNAL_FILE;
use crate::manifest::{keys, SigningKey};
use crate::merge::{MergeOptions, Source};
use crate::recorder::{Finished, Recorder, RecorderConfig};
use crate::upload::{UploadJob, UploadObject, UploadQueue, Uploader};
use process::{MANIFEST_FILE, MERGED_FILE, NO_MEDIA_MARKER, QUEUED_MARKER};

/// How many processed calls `/v1/recordings` lists.
const RECENT: usize = 256;
/// How often the cloud archive is looked at while waiting.
const CLOUD_POLL: Duration = Duration::from_millis(250);

/// Why the recording system could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("recording.dir {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("recording.signing_key: {0}")]
    Key(#[from] keys::KeyError),
    #[error("recording.upload: {0}")]
    Upload(#[from] crate::upload::UploadError),
}

/// One processed call, as `/v1/recordings` and the demo see it.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecording {
    pub call_id: String,
    pub dir: PathBuf,
    pub ok: bool,
    /// The pipeline's error, if it failed.
    pub error: Option<String>,
    /// Per channel: ms no source had *between* the channel's first and last
    /// audio (the manifest lists every gap; one direction starting or ending
    /// a few ms after the other is not a hole in the recording).
    pub gap_ms: [u64; 2],
    /// Per channel: ms filled from the cloud recording.
    pub cloud_filled_ms: [u64; 2],
    /// Whether a cloud recording was found in time.
    pub cloud: bool,
    pub duration_ms: u64,
    pub dtmf: usize,
    pub holds: usize,
    pub handovers: usize,
    pub manifest: Option<PathBuf>,
    pub upload_job: Option<u64>,
}

#[derive(Default)]
struct Shared {
    recent: Mutex<VecDeque<CallRecording>>,
    processed: Gauge,
    failed: Gauge,
    waiting: Gauge,
    no_media: Gauge,
}

/// The running recording system.
pub struct RecordingHandle {
    recorder: Recorder,
    uploader: Arc<Uploader>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    pipeline: Option<tokio::task::JoinHandle<()>>,
}

struct Pipeline {
    config: RecordingConfig,
    key: Arc<SigningKey>,
    uploader: Arc<Uploader>,
    shared: Arc<Shared>,
    events: Events,
    merges: Arc<Semaphore>,
    site: String,
    /// The provider's archive, indexed once for every waiting call.
    cloud: Option<Arc<Mutex<cloud::CloudIndex>>>,
}

/// Starts the recorder, the uploader (resuming its durable queue) and the
/// pipeline (resuming calls a previous run left unfinished).
pub async fn start(
    config: &RecordingConfig,
    site: &str,
    deps: &Deps,
) -> Result<(RecordingHandle, HttpRoutes), StartError> {
    let calls = config.dir.join("calls");
    let spool = config.dir.join("upload-queue");
    for dir in [&calls, &spool] {
        std::fs::create_dir_all(dir).map_err(|source| StartError::Dir {
            path: dir.clone(),
            source,
        })?;
    }
    let upload = config.upload();
    if let crate::upload::StoreTarget::Local { dir } = &upload.target {
        if config.upload.is_none() {
            std::fs::create_dir_all(dir).map_err(|source| StartError::Dir {
                path: dir.clone(),
                source,
            })?;
        }
    }
    let key = Arc::new(keys::load_signing_key(&config.signing_key)?);
    let queue = UploadQueue::open(&spool)?;
    let uploader = Arc::new(Uploader::start(queue, &upload)?);
    let (finished_tx, finished_rx) = mpsc::unbounded_channel();
    let mut recorder_config = RecorderConfig::new(&calls);
    recorder_config.sync_interval = config.sync_interval;
    recorder_config.queue_capacity = config.queue_capacity;
    let recorder = Recorder::start(recorder_config, finished_tx.clone()).map_err(|source| {
        StartError::Dir {
            path: calls.clone(),
            source,
        }
    })?;
    // Calls a previous run recorded but did not see through.
    for dir in unfinished(&calls) {
        let call_id = journal_call_id(&dir).unwrap_or_default();
        let _ = finished_tx.send(Finished {
            call_id: Arc::from(call_id.as_str()),
            dir,
            summary: None,
            packets: None,
        });
    }
    let shared = Arc::new(Shared::default());
    let stop = CancellationToken::new();
    let pipeline = Pipeline {
        config: config.clone(),
        key,
        uploader: uploader.clone(),
        shared: shared.clone(),
        events: deps.events("recording"),
        merges: Arc::new(Semaphore::new(1)),
        site: site.to_owned(),
        cloud: config
            .cloud_dir
            .clone()
            .map(|dir| Arc::new(Mutex::new(cloud::CloudIndex::new(dir)))),
    };
    let task = tokio::spawn(pipeline.run(finished_rx, stop.clone()));
    let routes = HttpRoutes {
        api: Router::new()
            .route("/v1/recordings", get(list))
            .with_state(shared.clone()),
        open: Router::new(),
        openapi: openapi(),
    };
    Ok((
        RecordingHandle {
            recorder,
            uploader,
            shared,
            stop,
            pipeline: Some(task),
        },
        routes,
    ))
}

impl RecordingHandle {
    /// The recorder the media relay feeds.
    pub fn recorder(&self) -> Recorder {
        self.recorder.clone()
    }

    /// Processed calls, newest last.
    pub fn recent(&self) -> Vec<CallRecording> {
        self.shared
            .recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

async fn list(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let recent: Vec<CallRecording> = shared
        .recent
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default();
    Json(json!({ "recordings": recent }))
}

/// Call directories under `calls` whose upload is not queued yet, oldest
/// first (their names start with the call's start time).
fn unfinished(calls: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(calls)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.join(JOURNAL_FILE).is_file()
                        && !p.join(QUEUED_MARKER).exists()
                        && !p.join(NO_MEDIA_MARKER).exists()
                })
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// The Call-ID in a journal's header.
fn journal_call_id(dir: &Path) -> Option<String> {
    let stream = crate::journal::JournalStream::open(&dir.join(JOURNAL_FILE)).ok()?;
    Some(stream.call_id().to_owned())
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Pipeline {
    async fn run(self, mut finished: mpsc::UnboundedReceiver<Finished>, stop: CancellationToken) {
        let this = Arc::new(self);
        let mut calls = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                next = finished.recv() => match next {
                    Some(done) => {
                        let this = this.clone();
                        let stop = stop.clone();
                        calls.spawn(async move { this.call(done, stop).await });
                    }
                    None => break,
                },
                Some(_) = calls.join_next(), if !calls.is_empty() => {}
            }
        }
        // Calls in progress stop at their next step; their directories are
        // taken up again at the next start.
        calls.abort_all();
        while calls.join_next().await.is_some() {}
    }

    async fn call(&self, done: Finished, stop: CancellationToken) {
        let dir = done.dir.clone();
        let call_id = done.call_id.to_string();
        if done.packets == Some(0) {
            // An attempt that never carried media (refused, cancelled,
            // answered elsewhere): its journal holds only notes. Nothing to
            // merge or upload; it is marked so a restart does not take it up.
            self.shared.no_media.inc();
            let d = dir.clone();
            let _ = tokio::task::spawn_blocking(move || process::mark_no_media(&d)).await;
            tracing::debug!(
                call_id,
                "no media: journal kept, nothing merged or uploaded"
            );
            return;
        }
        let outcome = self.see_through(&done, &stop).await;
        let record = match outcome {
            Ok(record) => {
                self.shared.processed.inc();
                record
            }
            Err(Stopped) if stop.is_cancelled() => return,
            Err(Stopped) => unreachable_record(&call_id, &dir),
        };
        if !record.ok {
            self.shared.failed.inc();
        }
        if let Ok(mut recent) = self.shared.recent.lock() {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(record);
        }
    }

    async fn see_through(
        &self,
        done: &Finished,
        stop: &CancellationToken,
    ) -> Result<CallRecording, Stopped> {
        let dir = done.dir.clone();
        let call_id = done.call_id.to_string();
        let mut record = CallRecording {
            call_id: call_id.clone(),
            dir: dir.clone(),
            ok: false,
            error: None,
            gap_ms: [0; 2],
            cloud_filled_ms: [0; 2],
            cloud: false,
            duration_ms: 0,
            dtmf: 0,
            holds: 0,
            handovers: 0,
            manifest: None,
            upload_job: None,
        };
        // 1. The cloud recording, if the provider's archive has it in time
        // (a copy a crash left half-done is dropped first).
        process::drop_cloud(&dir);
        if !dir.join(process::CLOUD_FILE).exists() && self.cloud.is_some() {
            self.shared.waiting.inc();
            let found = self.wait_for_cloud(&call_id, stop).await;
            self.shared.waiting.dec();
            match found? {
                Some((wav, sidecar)) => {
                    let d = dir.clone();
                    let r = tokio::task::spawn_blocking(move || {
                        process::take_cloud(&d, &wav, &sidecar)
                    })
                    .await;
                    if let Ok(Err(e)) | Err(e) = r.map_err(|e| process::ProcessError::Io {
                        path: dir.clone(),
                        source: std::io::Error::other(e.to_string()),
                    }) {
                        tracing::warn!(call_id, error = %e, "cloud recording not taken in: merging the edge alone");
                    }
                }
                None => {
                    tracing::warn!(call_id, wait = ?self.config.cloud_wait, "no cloud recording in time: merging the edge alone")
                }
            }
        }
        record.cloud = dir.join(process::CLOUD_FILE).exists();
        // 2. Merge and manifest (blocking, one merge at a time: CPU-bound).
        let processed = {
            let _permit = self.merges.acquire().await.map_err(|_| Stopped)?;
            let d = dir.clone();
            let key = self.key.clone();
            tokio::task::spawn_blocking(move || {
                process::merge_and_sign(&d, &key, &MergeOptions::default())
            })
            .await
        };
        let mut processed = match processed {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Ok(self.failed(record, "merge", e.to_string())),
            Err(e) => return Ok(self.failed(record, "merge", e.to_string())),
        };
        if let Some(url) = &self.config.tsa_url {
            if let Err(e) = processed.manifest.request_timestamp(url).await {
                tracing::warn!(call_id, error = %e, "no RFC 3161 timestamp: the manifest stays signed without one");
            }
        }
        let report = &processed.report;
        for (i, channel) in report.channels.iter().enumerate().take(2) {
            record.gap_ms[i] = interior_gap_ms(&channel.spans);
            record.cloud_filled_ms[i] = channel.cloud_ms;
        }
        record.duration_ms = report.output.duration_ms;
        record.dtmf = report.dtmf.len();
        record.holds = report.holds.len();
        record.handovers = report.epochs.len().saturating_sub(2);
        let d = dir.clone();
        let manifest = processed.manifest.clone();
        let written =
            tokio::task::spawn_blocking(move || process::write_manifest(&d, &manifest)).await;
        let manifest_path = match written {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Ok(self.failed(record, "manifest", e.to_string())),
            Err(e) => return Ok(self.failed(record, "manifest", e.to_string())),
        };
        record.manifest = Some(manifest_path.clone());
        // 3. The upload, durably queued (R4).
        let started = UNIX_EPOCH + Duration::from_millis(processed.manifest.started_unix_ms);
        let prefix = object_prefix(&self.site, started, &dir);
        let mut objects = vec![
            UploadObject::wav(dir.join(MERGED_FILE), format!("{prefix}/{MERGED_FILE}")),
            UploadObject {
                path: dir.join(JOURNAL_FILE),
                key: format!("{prefix}/{JOURNAL_FILE}"),
                content_type: "application/octet-stream".into(),
            },
        ];
        if record.cloud {
            objects.push(UploadObject::wav(
                dir.join(process::CLOUD_FILE),
                format!("{prefix}/{}", process::CLOUD_FILE),
            ));
            objects.push(UploadObject::json(
                dir.join(process::CLOUD_SIDECAR),
                format!("{prefix}/{}", process::CLOUD_SIDECAR),
            ));
        }
        // The manifest last: in the bucket, it means the rest is there.
        objects.push(UploadObject::json(
            manifest_path,
            format!("{prefix}/{MANIFEST_FILE}"),
        ));
        let mut job = UploadJob::new(call_id.clone(), started, objects);
        job.extra_tags.insert("site".into(), self.site.clone());
        match self.uploader.enqueue(job).await {
            Ok(id) => record.upload_job = Some(id.0),
            Err(e) => return Ok(self.failed(record, "upload queue", e.to_string())),
        }
        let d = dir.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || process::mark_queued(&d)).await {
            tracing::warn!(call_id, error = %e, "upload queued but its marker not written: a restart queues it again (same objects)");
        }
        record.ok = true;
        self.publish(
            &call_id,
            "processed",
            format!(
                "merged {} ms, gaps {}/{} ms, cloud {}, upload job {}",
                record.duration_ms,
                record.gap_ms[0],
                record.gap_ms[1],
                if record.cloud { "used" } else { "absent" },
                record.upload_job.unwrap_or(0)
            ),
        );
        Ok(record)
    }

    async fn wait_for_cloud(
        &self,
        call_id: &str,
        stop: &CancellationToken,
    ) -> Result<Option<(PathBuf, PathBuf)>, Stopped> {
        let Some(index) = self.cloud.clone() else {
            return Ok(None);
        };
        let deadline = crate::recorder::clock::now() + self.config.cloud_wait;
        loop {
            let (index, id) = (index.clone(), call_id.to_owned());
            let found = tokio::task::spawn_blocking(move || {
                let now = crate::recorder::clock::now();
                index.lock().ok()?.take(&id, now, CLOUD_POLL)
            })
            .await;
            if let Ok(Some(found)) = found {
                return Ok(Some(found));
            }
            if crate::recorder::clock::now() >= deadline {
                return Ok(None);
            }
            tokio::select! {
                () = stop.cancelled() => return Err(Stopped),
                () = tokio::time::sleep(CLOUD_POLL) => {}
            }
        }
    }

    fn failed(&self, mut record: CallRecording, step: &str, error: String) -> CallRecording {
        tracing::error!(call_id = %record.call_id, step, error, "recording not processed; its directory is kept and retried at the next start");
        self.publish(&record.call_id, "failed", format!("{step}: {error}"));
        record.error = Some(format!("{step}: {error}"));
        record
    }

    fn publish(&self, call_id: &str, stage: &str, detail: String) {
        self.events.publish(Event {
            at: crate::recorder::clock::now(),
            target: Target::new(&self.site, "recording"),
            kind: EventKind::Recording {
                call_id: call_id.to_owned(),
                stage: stage.to_owned(),
                detail,
            },
        });
    }
}

/// The ms of gap spans that have audio (edge or cloud) on both sides.
fn interior_gap_ms(spans: &[crate::merge::Span]) -> u64 {
    let audio = |s: &crate::merge::Span| matches!(s.source, Source::Edge | Source::Cloud);
    let (Some(first), Some(last)) = (spans.iter().position(audio), spans.iter().rposition(audio))
    else {
        return 0;
    };
    spans[first..=last]
        .iter()
        .filter(|s| s.source == Source::Gap)
        .map(|s| s.end_ms - s.start_ms)
        .sum()
}

/// The pipeline was stopped mid-call.
struct Stopped;

fn unreachable_record(call_id: &str, dir: &Path) -> CallRecording {
    CallRecording {
        call_id: call_id.to_owned(),
        dir: dir.to_owned(),
        ok: false,
        error: Some("stopped".into()),
        gap_ms: [0; 2],
        cloud_filled_ms: [0; 2],
        cloud: false,
        duration_ms: 0,
        dtmf: 0,
        holds: 0,
        handovers: 0,
        manifest: None,
        upload_job: None,
    }
}

/// `<site>/<YYYY-MM-DD>/<call dir name>`: browsable by day, unique per call.
fn object_prefix(site: &str, started: SystemTime, dir: &Path) -> String {
    let days = unix_ms(started) / 86_400_000;
    let (y, m, d) = civil_from_days(days as i64);
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("call");
    format!("{site}/{y:04}-{m:02}-{d:02}/{name}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl System for RecordingHandle {
    fn name(&self) -> &'static str {
        "recording"
    }

    fn status(&self) -> BoxFuture<'_, Map<String, Value>> {
        Box::pin(async move {
            let mut map = Map::new();
            map.insert(
                "recording".into(),
                json!({
                    "recorder": self.recorder.stats(),
                    "processed": self.shared.processed.get(),
                    "failed": self.shared.failed.get(),
                    "waiting_for_cloud": self.shared.waiting.get(),
                    "no_media": self.shared.no_media.get(),
                    "upload": serde_json::to_value(self.uploader.stats()).unwrap_or(Value::Null),
                }),
            );
            map
        })
    }

    fn health(&self) -> BoxFuture<'_, Health> {
        Box::pin(async move {
            let stats = self.recorder.stats();
            let mut fields = Map::new();
            fields.insert("recording_calls_open".into(), json!(stats.calls_open));
            fields.insert("recording_write_errors".into(), json!(stats.write_errors));
            Health {
                ready: true,
                fields,
            }
        })
    }

    fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "recording_processed",
            "Calls merged, signed and queued for upload (R2-R4)",
            self.shared.processed.clone(),
        );
        registry.register(
            "recording_failed",
            "Calls whose merge, manifest or upload queueing failed",
            self.shared.failed.clone(),
        );
        registry.register(
            "recording_no_media",
            "Anchored call attempts that carried no media (nothing merged or uploaded)",
            self.shared.no_media.clone(),
        );
        registry.register(
            "recording_waiting_for_cloud",
            "Calls waiting for their cloud recording",
            self.shared.waiting.clone(),
        );
    }

    fn shutdown(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.stop.cancel();
            if let Some(task) = self.pipeline.take() {
                let _ = task.await;
            }
            let recorder = self.recorder.clone();
            let _ = tokio::task::spawn_blocking(move || recorder.stop()).await;
            if let Ok(uploader) = Arc::try_unwrap(self.uploader) {
                uploader.shutdown().await;
            }
        })
    }
}

fn openapi() -> Value {
    json!({
        "paths": {
            "/v1/recordings": {
                "get": {
                    "summary": "Recently processed calls: merged gaps, cloud use, manifest, upload job (SPEC R2-R4)",
                    "responses": { "200": { "description": "The list, oldest first" } }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_to_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_426), (2025, 12, 4));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn object_keys_are_per_site_and_day() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_806_400_000 + 3_600_000);
        assert_eq!(
            object_prefix("a", t, Path::new("/x/calls/1764810000000-c_1")),
            "a/2025-12-04/1764810000000-c_1"
        );
    }
}
