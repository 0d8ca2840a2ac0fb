//! Appending to a journal (SPEC R1). Plain `std::fs`; time comes in as each
//! packet's arrival time, so the writer reads no clock.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{
    chain_seal, genesis, header_bytes, push_frame, Direction, JournalError, JOURNAL_FILE, KIND_END,
    KIND_NOTE, KIND_PACKET, KIND_SEAL, MAX_NOTE, MAX_PACKET,
};

/// When the writer seals the open segment by itself. A limit of 0 is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentLimits {
    /// Seal once the segment holds this many records. Default 500.
    pub max_records: u64,
    /// Seal once the segment's frames reach this many bytes. Default 1 MiB.
    pub max_bytes: u64,
    /// Seal before a record arriving this long after the segment's first
    /// record. Default 5 s.
    pub max_span_ns: u64,
}

impl Default for SegmentLimits {
    fn default() -> Self {
        SegmentLimits {
            max_records: 500,
            max_bytes: 1 << 20,
            max_span_ns: 5_000_000_000,
        }
    }
}

/// How a journal is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalConfig {
    pub limits: SegmentLimits,
    /// fsync after each seal, so a sealed segment survives a crash (and a
    /// damaged seal can only mean tampering). Default true.
    pub sync_on_seal: bool,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            limits: SegmentLimits::default(),
            sync_on_seal: true,
        }
    }
}

/// What [`JournalWriter::finish`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Records written: packets and notes.
    pub records: u64,
    pub segments: u64,
    /// The last seal (the chain's head), or seal_{-1} if nothing was sealed.
    pub head: [u8; 32],
    pub bytes: u64,
}

struct OpenSegment {
    offset: u64,
    bytes: u64,
    records: u64,
    first_arrival_ns: Option<u64>,
    hasher: Sha256,
}

impl OpenSegment {
    fn new(offset: u64) -> Self {
        OpenSegment {
            offset,
            bytes: 0,
            records: 0,
            first_arrival_ns: None,
            hasher: Sha256::new(),
        }
    }
}

/// Appends records of one call to its journal.
///
/// Frames are built in memory and written to the file as they come; what
/// has not been [`sync`](JournalWriter::sync)ed may be lost by a crash, and
/// the reader then reports a torn tail.
pub struct JournalWriter {
    file: File,
    path: PathBuf,
    config: JournalConfig,
    offset: u64,
    segment: OpenSegment,
    next_index: u64,
    head: [u8; 32],
    records: u64,
    frame: Vec<u8>,
    /// Set by a failed write or sync: the file may end in a partial frame, and
    /// appending after it would put that damage mid-file, where the reader
    /// would take it for tampering. So a failed writer writes nothing more.
    failed: bool,
}

impl JournalWriter {
    /// Creates `dir` (if needed) and a new journal in it, with default
    /// configuration. Fails if the journal already exists.
    pub fn create(dir: &Path, call_id: &str) -> Result<Self, JournalError> {
        Self::create_with(dir, call_id, JournalConfig::default())
    }

    /// As [`create`](Self::create), with `config`.
    pub fn create_with(
        dir: &Path,
        call_id: &str,
        config: JournalConfig,
    ) -> Result<Self, JournalError> {
        let header = header_bytes(call_id)?;
        fs::create_dir_all(dir)?;
        let path = dir.join(JOURNAL_FILE);
        let mut file = File::options().write(true).create_new(true).open(&path)?;
        file.write_all(&header)?;
        file.sync_all()?;
        // The new file's directory entry must be durable too.
        File::open(dir)?.sync_all()?;
        let offset = header.len() as u64;
        Ok(JournalWriter {
            file,
            path,
            config,
            offset,
            segment: OpenSegment::new(offset),
            next_index: 0,
            head: genesis(&header),
            records: 0,
            frame: Vec::with_capacity(256),
            failed: false,
        })
    }

    /// The journal file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one packet that arrived at `arrival_ns` (ns since the Unix
    /// epoch, the edge's wall clock). Seals the open segment first if the
    /// record would exceed its time span, and after if it reached its count
    /// or size; returns the seal written, if any (the last one when two
    /// were).
    pub fn append(
        &mut self,
        arrival_ns: u64,
        direction: Direction,
        packet: &[u8],
    ) -> Result<Option<[u8; 32]>, JournalError> {
        if packet.len() > MAX_PACKET {
            return Err(JournalError::PacketTooLarge(packet.len()));
        }
        self.append_record(
            arrival_ns,
            KIND_PACKET,
            &[&arrival_ns.to_le_bytes(), &[direction.to_byte()], packet],
        )
    }

    /// Appends a note written at `at_unix_ns` (ns since the Unix epoch):
    /// UTF-8 JSON of at most [`MAX_NOTE`] bytes about the call (its trunk
    /// and regions, an SDP a leg sent, how it ended; SPEC R5, V3). A note is
    /// a record like a packet: counted, hashed and sealed in its segment.
    pub fn append_note(&mut self, at_unix_ns: u64, json: &[u8]) -> Result<(), JournalError> {
        if json.len() > MAX_NOTE {
            return Err(JournalError::NoteTooLarge(json.len()));
        }
        if std::str::from_utf8(json).is_err() {
            return Err(JournalError::NoteNotUtf8);
        }
        self.append_record(at_unix_ns, KIND_NOTE, &[&at_unix_ns.to_le_bytes(), json])?;
        Ok(())
    }

    fn append_record(
        &mut self,
        at_ns: u64,
        kind: u8,
        body: &[&[u8]],
    ) -> Result<Option<[u8; 32]>, JournalError> {
        let limits = self.config.limits;
        let mut sealed = None;
        if let Some(first) = self.segment.first_arrival_ns {
            if limits.max_span_ns > 0 && at_ns.saturating_sub(first) >= limits.max_span_ns {
                sealed = self.seal_segment()?;
            }
        }
        self.frame.clear();
        push_frame(&mut self.frame, kind, body);
        self.write_frame()?;
        let len = self.frame.len() as u64;
        self.offset += len;
        let seg = &mut self.segment;
        seg.hasher.update(&self.frame);
        seg.bytes += len;
        seg.records += 1;
        seg.first_arrival_ns.get_or_insert(at_ns);
        self.records += 1;
        if (limits.max_records > 0 && seg.records >= limits.max_records)
            || (limits.max_bytes > 0 && seg.bytes >= limits.max_bytes)
        {
            sealed = self.seal_segment()?;
        }
        Ok(sealed)
    }

    /// Seals the open segment (SPEC R3) and returns its seal; `None` if it is
    /// empty. Syncs when the configuration says so.
    pub fn seal_segment(&mut self) -> Result<Option<[u8; 32]>, JournalError> {
        if self.segment.records == 0 {
            return Ok(None);
        }
        let seg = std::mem::replace(&mut self.segment, OpenSegment::new(0));
        let hash: [u8; 32] = seg.hasher.finalize().into();
        let index = self.next_index;
        let seal = chain_seal(&self.head, &hash, index);
        self.frame.clear();
        push_frame(
            &mut self.frame,
            KIND_SEAL,
            &[
                &index.to_le_bytes(),
                &seg.offset.to_le_bytes(),
                &seg.bytes.to_le_bytes(),
                &seg.records.to_le_bytes(),
                &hash,
                &seal,
            ],
        );
        self.write_frame()?;
        self.offset += self.frame.len() as u64;
        self.segment = OpenSegment::new(self.offset);
        self.next_index += 1;
        self.head = seal;
        if self.config.sync_on_seal {
            self.sync()?;
        }
        Ok(Some(seal))
    }

    /// Makes everything appended so far durable (fsync of the data).
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.check()?;
        // After a failed fsync the kernel may have dropped the dirty pages;
        // retrying would report success for data that is gone.
        let result = self.file.flush().and_then(|()| self.file.sync_data());
        self.failed |= result.is_err();
        Ok(result?)
    }

    fn check(&self) -> Result<(), JournalError> {
        if self.failed {
            return Err(JournalError::WriterFailed);
        }
        Ok(())
    }

    fn write_frame(&mut self) -> Result<(), JournalError> {
        self.check()?;
        let result = self.file.write_all(&self.frame);
        self.failed |= result.is_err();
        Ok(result?)
    }

    /// Seals the open segment, writes the end record and syncs.
    pub fn finish(mut self) -> Result<Summary, JournalError> {
        self.seal_segment()?;
        self.frame.clear();
        push_frame(
            &mut self.frame,
            KIND_END,
            &[&self.records.to_le_bytes(), &self.next_index.to_le_bytes()],
        );
        self.write_frame()?;
        self.offset += self.frame.len() as u64;
        self.sync()?;
        Ok(Summary {
            records: self.records,
            segments: self.next_index,
            head: self.head,
            bytes: self.offset,
        })
    }
}
