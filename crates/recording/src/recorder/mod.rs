//! The edge recorder (SPEC R1): every anchored call's datagrams, both
//! directions, appended to the call's journal as they arrive, on the
//! recorder's own thread, independent of any upstream link.
//!
//! The media relay hands each datagram to [`Recorder::packet`], which copies
//! it into a bounded queue and returns at once: the relay never waits for the
//! disk. One thread (`hotsite-recorder`) owns every open [`JournalWriter`]:
//! it appends, seals segments as their limits say (fsync on each seal), and
//! fsyncs every open journal each `sync_interval`, so a `kill -9` or a power
//! loss loses at most the last interval's tail, which the journal's reader
//! reports as an unfinished or torn tail (never misread).
//!
//! A full queue drops the datagram and counts it (`dropped_queue_full`), and
//! the call's journal gets a `loss` note at its end with the count: the
//! recording says it is incomplete rather than pretending. A call's start,
//! notes and end are never dropped and never block the caller (a tokio
//! task): when the queue is full they wait in an overflow list, in order,
//! and datagrams are dropped until the writer has caught up with it.
//!
//! A `kill -9` loses what was still queued (at most `queue_capacity`
//! datagrams, normally a few ms of traffic) and nothing the writer wrote:
//! frames go to the file (page cache) as they are taken from the queue. A
//! power loss also loses what was not yet fsynced (at most `sync_interval`).
//! Either way the journal's reader reports the tail as unfinished or torn.
//!
//! When a call ends its journal is finished (sealed, end record, synced) and
//! a [`Finished`] goes to the channel given at start; the processing
//! pipeline takes it from there.

pub(crate) mod clock;
mod thread;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::journal::{Direction, SegmentLimits, Summary};

/// How the recorder writes.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// Where call directories are created (`<dir>/<call dir>/journal.hsj`).
    pub dir: PathBuf,
    /// Datagrams (and notes) waiting for the writer thread; beyond this they
    /// are dropped and counted. Default 65,536 (1.3 s of 1,000 calls).
    pub queue_capacity: usize,
    /// Every open journal is fsynced this often (the most a crash loses).
    /// Default 200 ms.
    pub sync_interval: Duration,
    /// When segments are sealed (R3).
    pub limits: SegmentLimits,
}

impl RecorderConfig {
    /// Defaults under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> RecorderConfig {
        RecorderConfig {
            dir: dir.into(),
            queue_capacity: 65_536,
            sync_interval: Duration::from_millis(200),
            limits: SegmentLimits::default(),
        }
    }
}

/// A call's journal, finished: handed to the pipeline.
#[derive(Debug, Clone)]
pub struct Finished {
    pub call_id: Arc<str>,
    /// The call's directory (holds `journal.hsj`).
    pub dir: PathBuf,
    /// What was written; `None` if the journal's writer failed (the journal
    /// on disk is then read for what it has).
    pub summary: Option<Summary>,
    /// Datagrams journaled; `None` when not known (a call a previous run
    /// left, taken up at start).
    pub packets: Option<u64>,
}

/// The recorder's counters (a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RecorderStats {
    pub calls_open: u64,
    pub calls_started: u64,
    pub calls_finished: u64,
    pub packets: u64,
    pub bytes: u64,
    pub segments_sealed: u64,
    pub dropped_queue_full: u64,
    pub dropped_unknown_call: u64,
    pub write_errors: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub calls_open: AtomicU64,
    pub calls_started: AtomicU64,
    pub calls_finished: AtomicU64,
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub segments_sealed: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_unknown_call: AtomicU64,
    pub write_errors: AtomicU64,
}

/// Control messages that found the queue full, in order, and whether there
/// are any (datagrams check the flag, not the lock).
#[derive(Clone, Default)]
pub(crate) struct Overflow {
    pub list: Arc<std::sync::Mutex<std::collections::VecDeque<Msg>>>,
    pub active: Arc<std::sync::atomic::AtomicBool>,
}

/// Datagrams dropped per call because the queue was full: touched only on
/// that path and at the call's end.
pub(crate) type Lost = Arc<std::sync::Mutex<std::collections::HashMap<Arc<str>, u64>>>;

pub(crate) enum Msg {
    Start {
        call_id: Arc<str>,
        at_unix_ns: u64,
        note: Vec<u8>,
    },
    Note {
        call_id: Arc<str>,
        at_unix_ns: u64,
        note: Vec<u8>,
    },
    Packet {
        call_id: Arc<str>,
        direction: Direction,
        at_unix_ns: u64,
        datagram: Bytes,
    },
    End {
        call_id: Arc<str>,
        at_unix_ns: u64,
        note: Vec<u8>,
    },
    Stop,
}

/// The recorder's handle: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Recorder {
    tx: SyncSender<Msg>,
    overflow: Overflow,
    counters: Arc<Counters>,
    lost: Lost,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Recorder {
    /// Starts the writer thread. Finished journals are sent to `finished`.
    pub fn start(
        config: RecorderConfig,
        finished: tokio::sync::mpsc::UnboundedSender<Finished>,
    ) -> std::io::Result<Recorder> {
        std::fs::create_dir_all(&config.dir)?;
        let (tx, rx) = mpsc::sync_channel(config.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let lost = Lost::default();
        let overflow = Overflow::default();
        let thread = thread::spawn(
            config,
            rx,
            overflow.clone(),
            counters.clone(),
            lost.clone(),
            finished,
        )?;
        Ok(Recorder {
            tx,
            overflow,
            counters,
            lost,
            thread: Arc::new(std::sync::Mutex::new(Some(thread))),
        })
    }

    /// A call's media was anchored: its journal is created and `note` (the
    /// call's metadata, JSON) is its first record. Never dropped, never
    /// blocks.
    pub fn call_started(&self, call_id: &Arc<str>, at_unix_ns: u64, note: Vec<u8>) {
        self.control(Msg::Start {
            call_id: call_id.clone(),
            at_unix_ns,
            note,
        });
    }

    /// A signalling note for the call (an SDP's direction and payload types).
    /// Never dropped (hold, R5, depends on them), never blocks.
    pub fn note(&self, call_id: &Arc<str>, at_unix_ns: u64, note: Vec<u8>) {
        self.control(Msg::Note {
            call_id: call_id.clone(),
            at_unix_ns,
            note,
        });
    }

    /// One datagram of the call. Never blocks: a full queue drops it and
    /// counts the drop.
    pub fn packet(
        &self,
        call_id: &Arc<str>,
        direction: Direction,
        at_unix_ns: u64,
        datagram: &[u8],
    ) {
        let msg = Msg::Packet {
            call_id: call_id.clone(),
            direction,
            at_unix_ns,
            datagram: Bytes::copy_from_slice(datagram),
        };
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(Msg::Packet { call_id, .. })) => {
                self.counters
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
                // The writer thread cannot be told now (the queue is full);
                // it takes the call's count at the call's end.
                if let Ok(mut lost) = self.lost.lock() {
                    *lost.entry(call_id).or_insert(0) += 1;
                }
            }
            Err(_) => {}
        }
    }

    /// The call ended: its journal gets `note` (the end cause), is finished
    /// and handed to the pipeline.
    pub fn call_ended(&self, call_id: &Arc<str>, at_unix_ns: u64, note: Vec<u8>) {
        self.control(Msg::End {
            call_id: call_id.clone(),
            at_unix_ns,
            note,
        });
    }

    /// A start, note, end or stop: into the queue if it has room and
    /// nothing is waiting before it, else onto the overflow list, in order.
    fn control(&self, msg: Msg) {
        let Ok(mut waiting) = self.overflow.list.lock() else {
            return;
        };
        if !waiting.is_empty() {
            waiting.push_back(msg);
            return;
        }
        match self.tx.try_send(msg) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(msg)) => {
                waiting.push_back(msg);
                self.overflow.active.store(true, Ordering::Release);
            }
        }
    }

    /// The counters now.
    pub fn stats(&self) -> RecorderStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RecorderStats {
            calls_open: get(&c.calls_open),
            calls_started: get(&c.calls_started),
            calls_finished: get(&c.calls_finished),
            packets: get(&c.packets),
            bytes: get(&c.bytes),
            segments_sealed: get(&c.segments_sealed),
            dropped_queue_full: get(&c.dropped_queue_full),
            dropped_unknown_call: get(&c.dropped_unknown_call),
            write_errors: get(&c.write_errors),
        }
    }

    /// Finishes every open journal (their calls are cut short: each gets an
    /// `end` note with cause `shutdown`) and stops the thread. Blocking: call
    /// from `spawn_blocking` in async code.
    pub fn stop(&self) {
        self.control(Msg::Stop);
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

/// The directory name of a call: the start time (so a listing sorts by time)
/// and the Call-ID with every byte outside `[A-Za-z0-9._-]` replaced, cut to
/// 96 bytes, so any Call-ID makes a safe, unique-enough name.
pub fn call_dir_name(call_id: &str, started_unix_ms: u64) -> String {
    let mut name = format!("{started_unix_ms}-");
    for c in call_id.chars().take(96) {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            name.push(c);
        } else {
            name.push('_');
        }
    }
    name
}

/// Where `call_dir_name` puts a call under `root`.
pub fn call_dir(root: &Path, call_id: &str, started_unix_ms: u64) -> PathBuf {
    root.join(call_dir_name(call_id, started_unix_ms))
}

#[cfg(test)]
mod tests;
