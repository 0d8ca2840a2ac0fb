//! The recorder's writer thread: owns every open journal.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use super::{call_dir, clock, Counters, Finished, Lost, Msg, Overflow, RecorderConfig};
use crate::journal::{JournalConfig, JournalError, JournalWriter};

/// How long the writer naps between batches while datagrams flow (see
/// `Writer::run`). At 100,000 datagrams/s, 100 queue up meanwhile, far from
/// `queue_capacity`; a journal's record lands this much later at most.
const NAP: std::time::Duration = std::time::Duration::from_millis(1);

struct Open {
    writer: Option<JournalWriter>,
    packets: u64,
    dir: std::path::PathBuf,
    dirty: bool,
}

pub(super) fn spawn(
    config: RecorderConfig,
    rx: Receiver<Msg>,
    overflow: Overflow,
    counters: Arc<Counters>,
    lost: Lost,
    finished: UnboundedSender<Finished>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("hotsite-recorder".into())
        .spawn(move || {
            Writer {
                config,
                counters,
                lost,
                finished,
                calls: HashMap::new(),
            }
            .run(rx, overflow)
        })
}

struct Writer {
    config: RecorderConfig,
    counters: Arc<Counters>,
    lost: Lost,
    finished: UnboundedSender<Finished>,
    calls: HashMap<Arc<str>, Open>,
}

impl Writer {
    /// Blocks on the queue only when it found it empty. While datagrams
    /// flow it takes everything queued, then naps for [`NAP`]: a receiver
    /// blocked in `recv` makes every sender's `try_send` wake it (a futex
    /// syscall on the relay's per-packet path, and a context switch here,
    /// per datagram), whereas a napping one is woken by its timer once per
    /// batch. The nap ends at the next sync, so `sync_interval` holds.
    /// Control messages that found the queue full wait in `overflow`: they
    /// are handled once everything queued before them is.
    fn run(mut self, rx: Receiver<Msg>, overflow: Overflow) {
        let mut next_sync = clock::now() + self.config.sync_interval;
        let mut busy = false;
        'run: loop {
            if busy {
                busy = false;
                loop {
                    match rx.try_recv() {
                        Ok(Msg::Stop) => break 'run,
                        Ok(msg) => {
                            self.handle(msg);
                            busy = true;
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => break 'run,
                    }
                }
            } else {
                let wait = next_sync.saturating_duration_since(clock::now());
                match rx.recv_timeout(wait) {
                    Ok(Msg::Stop) => break,
                    Ok(msg) => {
                        self.handle(msg);
                        busy = true;
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            if overflow.active.load(std::sync::atomic::Ordering::Acquire) {
                // Everything queued before the overflow began comes first;
                // nothing new enters the queue while the list is not empty.
                while let Ok(msg) = rx.try_recv() {
                    if matches!(msg, Msg::Stop) {
                        break 'run;
                    }
                    self.handle(msg);
                }
                let waiting: Vec<Msg> = match overflow.list.lock() {
                    Ok(mut list) => {
                        overflow
                            .active
                            .store(false, std::sync::atomic::Ordering::Release);
                        list.drain(..).collect()
                    }
                    Err(_) => Vec::new(),
                };
                for msg in waiting {
                    if matches!(msg, Msg::Stop) {
                        break 'run;
                    }
                    self.handle(msg);
                }
                busy = true;
            }
            if clock::now() >= next_sync {
                self.sync_all();
                next_sync = clock::now() + self.config.sync_interval;
            }
            if busy {
                std::thread::sleep(NAP.min(next_sync.saturating_duration_since(clock::now())));
            }
        }
        // Calls still open are cut short by the shutdown: finish them so
        // what they have is sealed and the pipeline can take it.
        let open: Vec<Arc<str>> = self.calls.keys().cloned().collect();
        for call_id in open {
            let note = br#"{"type":"end","cause":"shutdown"}"#.to_vec();
            self.end(call_id, clock::wall_ns(), note);
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Start {
                call_id,
                at_unix_ns,
                note,
            } => self.start(call_id, at_unix_ns, note),
            Msg::Note {
                call_id,
                at_unix_ns,
                note,
            } => {
                if let Some(open) = self.calls.get_mut(&call_id) {
                    let result = open
                        .writer
                        .as_mut()
                        .map(|w| w.append_note(at_unix_ns, &note));
                    self.check(&call_id, result.map(|r| r.map(|_| ())));
                }
            }
            Msg::Packet {
                call_id,
                direction,
                at_unix_ns,
                datagram,
            } => {
                let Some(open) = self.calls.get_mut(&call_id) else {
                    self.counters
                        .dropped_unknown_call
                        .fetch_add(1, Ordering::Relaxed);
                    return;
                };
                open.dirty = true;
                let result = open
                    .writer
                    .as_mut()
                    .map(|w| w.append(at_unix_ns, direction, &datagram));
                if let Some(Ok(Some(_))) = &result {
                    self.counters
                        .segments_sealed
                        .fetch_add(1, Ordering::Relaxed);
                }
                if let Some(Ok(_)) = &result {
                    open.packets += 1;
                    self.counters.packets.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .bytes
                        .fetch_add(datagram.len() as u64, Ordering::Relaxed);
                }
                self.check(&call_id, result.map(|r| r.map(|_| ())));
            }
            Msg::End {
                call_id,
                at_unix_ns,
                note,
            } => self.end(call_id, at_unix_ns, note),
            Msg::Stop => {}
        }
    }

    fn start(&mut self, call_id: Arc<str>, at_unix_ns: u64, note: Vec<u8>) {
        if self.calls.contains_key(&call_id) {
            tracing::warn!(call_id = %call_id, "call anchored twice: keeping the first journal");
            return;
        }
        // A retried INVITE (after a 401/407) keeps its Call-ID and may start
        // in the same millisecond: its journal gets a folder of its own.
        let base = call_dir(&self.config.dir, &call_id, at_unix_ns / 1_000_000);
        let dir = (1..)
            .map(|n| {
                if n == 1 {
                    base.clone()
                } else {
                    base.with_file_name(format!(
                        "{}-{n}",
                        base.file_name().and_then(|f| f.to_str()).unwrap_or("call")
                    ))
                }
            })
            .find(|d| !d.exists())
            .unwrap_or(base);
        let config = JournalConfig {
            limits: self.config.limits,
            sync_on_seal: true,
        };
        let writer = match JournalWriter::create_with(&dir, &call_id, config) {
            Ok(mut writer) => match writer.append_note(at_unix_ns, &note) {
                Ok(()) => Some(writer),
                Err(e) => {
                    self.write_error(&call_id, &e);
                    None
                }
            },
            Err(e) => {
                self.write_error(&call_id, &e);
                None
            }
        };
        self.counters.calls_started.fetch_add(1, Ordering::Relaxed);
        self.counters.calls_open.fetch_add(1, Ordering::Relaxed);
        self.calls.insert(
            call_id,
            Open {
                writer,
                packets: 0,
                dir,
                dirty: false,
            },
        );
    }

    fn end(&mut self, call_id: Arc<str>, at_unix_ns: u64, note: Vec<u8>) {
        let Some(mut open) = self.calls.remove(&call_id) else {
            return;
        };
        self.counters.calls_open.fetch_sub(1, Ordering::Relaxed);
        self.counters.calls_finished.fetch_add(1, Ordering::Relaxed);
        let lost = self
            .lost
            .lock()
            .ok()
            .and_then(|mut lost| lost.remove(&call_id))
            .unwrap_or(0);
        let summary = open.writer.take().and_then(|mut writer| {
            let mut result = Ok(());
            if lost > 0 {
                let loss = format!(
                    r#"{{"type":"loss","datagrams":{lost},"cause":"recorder queue full"}}"#
                );
                result = writer.append_note(at_unix_ns, loss.as_bytes());
            }
            let result = result
                .and_then(|()| writer.append_note(at_unix_ns, &note))
                .and_then(|()| writer.finish());
            match result {
                Ok(summary) => Some(summary),
                Err(e) => {
                    self.write_error(&call_id, &e);
                    None
                }
            }
        });
        let _ = self.finished.send(Finished {
            call_id,
            dir: open.dir,
            summary,
            packets: Some(open.packets),
        });
    }

    fn sync_all(&mut self) {
        let mut failed = Vec::new();
        for (call_id, open) in &mut self.calls {
            if !open.dirty {
                continue;
            }
            open.dirty = false;
            if let Some(writer) = open.writer.as_mut() {
                if let Err(e) = writer.sync() {
                    failed.push((call_id.clone(), e));
                }
            }
        }
        for (call_id, e) in failed {
            self.check(&call_id, Some(Err(e)));
        }
    }

    /// A failed write stops the call's writer (the journal keeps what it
    /// had; its reader reports the tail).
    fn check(&mut self, call_id: &Arc<str>, result: Option<Result<(), JournalError>>) {
        if let Some(Err(e)) = result {
            self.write_error(call_id, &e);
            if let Some(open) = self.calls.get_mut(call_id) {
                open.writer = None;
            }
        }
    }

    fn write_error(&self, call_id: &str, e: &JournalError) {
        self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(call_id, error = %e, "edge journal write failed: the call's recording stops here (R1)");
    }
}
