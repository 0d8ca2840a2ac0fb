//! The edge journal (SPEC R1, R3): every packet of a call, both directions,
//! appended to local disk as it arrives, in segments sealed with SHA-256 and
//! chained, so that a crash loses at most the unsynced tail (and the reader
//! says so) and a changed byte in a sealed segment is named, never read as
//! data.
//!
//! One call is one directory holding one file, [`JOURNAL_FILE`]. The format
//! (all integers little-endian) is in the crate's README.md:
//!
//! ```text
//! header  magic "HSJRNL\0\x01" (8) | call-id length u16 | call-id (UTF-8)
//! frame   len u32 (= 1 + body) | kind u8 | body | CRC-32C u32 over len, kind, body
//! packet  kind 1: arrival ns u64 | direction u8 (0 a→b, 1 b→a) | packet bytes
//! seal    kind 2: index u64 | segment offset u64 | segment length u64 |
//!         records u64 | segment hash [32] | seal [32]
//! end     kind 3: records u64 | segments u64
//! note    kind 4: time ns u64 | UTF-8 JSON (≤ 64 KiB)
//! ```
//!
//! Times are nanoseconds since the Unix epoch, the edge's wall clock when the
//! packet arrived or the note was written. Records are packets and notes
//! alike: both are counted, hashed and sealed in their segment.
//!
//! segment hash = SHA-256 of the segment's record frames exactly as on disk;
//! seal_n = SHA-256(seal_{n-1} || segment hash || n as u64 LE), and
//! seal_{-1} = SHA-256 of the header bytes, binding the chain to the Call-ID.
//!
//! The CRC finds a torn tail; the seals find tampering. An unsealed tail has
//! only the CRC: the manifest (R3) covers sealed segments; the merge uses
//! the unsealed records too and reports how many there were.

mod crc;
mod reader;
mod stream;
mod verify;
mod writer;

pub use crc::crc32c;
pub use reader::{verify_chain, Journal, JournalReader, Record, RecordKind, Segment, Tail};
pub use stream::{Entry, JournalStream};
pub use writer::{JournalConfig, JournalWriter, SegmentLimits, Summary};

use sha2::{Digest, Sha256};
use thiserror::Error;

/// The journal file's name inside a call's directory.
pub const JOURNAL_FILE: &str = "journal.hsj";
/// The header's first 8 bytes: name and format version 1.
pub const MAGIC: [u8; 8] = *b"HSJRNL\x00\x01";
/// The largest packet a record holds (a UDP payload).
pub const MAX_PACKET: usize = 65_535;
/// The longest Call-ID in a header.
pub const MAX_CALL_ID: usize = 1024;
/// The largest note's JSON (64 KiB). A note frame is then exactly as long as
/// the largest packet frame, so one frame length limit serves both.
pub const MAX_NOTE: usize = 65_536;

pub(crate) const KIND_PACKET: u8 = 1;
pub(crate) const KIND_SEAL: u8 = 2;
pub(crate) const KIND_END: u8 = 3;
pub(crate) const KIND_NOTE: u8 = 4;
/// Frame bytes around the body: len, kind, CRC.
pub(crate) const FRAME_OVERHEAD: usize = 4 + 1 + 4;
pub(crate) const PACKET_HEAD: usize = 8 + 1;
pub(crate) const NOTE_HEAD: usize = 8;
/// The largest frame length field: kind plus the largest body.
pub(crate) const MAX_FRAME_LEN: usize = 1 + PACKET_HEAD + MAX_PACKET;
const _: () = assert!(1 + NOTE_HEAD + MAX_NOTE <= MAX_FRAME_LEN);
pub(crate) const SEAL_BODY: usize = 8 * 4 + 32 + 32;
pub(crate) const END_BODY: usize = 16;

/// Which way a packet went, from the edge's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From leg a (the caller's or PBX's side) to leg b (the trunk, the
    /// cloud media server).
    AtoB,
    /// From leg b to leg a.
    BtoA,
}

impl Direction {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Direction::AtoB => 0,
            Direction::BtoA => 1,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Direction::AtoB),
            1 => Some(Direction::BtoA),
            _ => None,
        }
    }
}

/// Why a journal could not be written or read.
#[derive(Debug, Error)]
pub enum JournalError {
    #[error("journal I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The header is missing, truncated or not ours.
    #[error("bad journal header: {0}")]
    BadHeader(&'static str),
    #[error("Call-ID of {0} bytes is longer than {MAX_CALL_ID}")]
    CallIdTooLong(usize),
    #[error("packet of {0} bytes is larger than {MAX_PACKET}")]
    PacketTooLarge(usize),
    #[error("note of {0} bytes is larger than {MAX_NOTE}")]
    NoteTooLarge(usize),
    #[error("note is not UTF-8")]
    NoteNotUtf8,
    /// A sealed segment's bytes do not match its seal: a changed, removed or
    /// inserted byte (SPEC R3).
    #[error("segment {segment} tampered with ({what}) at byte {offset}")]
    Tampered {
        segment: u64,
        offset: u64,
        what: &'static str,
    },
    /// A seal does not follow from the previous one (SPEC R3): a segment was
    /// removed, reordered or re-sealed.
    #[error("hash chain broken at segment {segment}: {what}")]
    ChainBroken { segment: u64, what: &'static str },
    /// An earlier write or sync of this writer failed; it writes no more.
    #[error("an earlier write or sync of the journal failed; the writer is stopped")]
    WriterFailed,
    /// Bytes after the end record.
    #[error("data after the end record at byte {offset}")]
    AfterEnd { offset: u64 },
}

/// seal_n = SHA-256(seal_{n-1} || segment hash || n as u64 LE).
pub fn chain_seal(prev: &[u8; 32], segment_hash: &[u8; 32], index: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(segment_hash);
    h.update(index.to_le_bytes());
    h.finalize().into()
}

/// The header's bytes for `call_id`.
pub(crate) fn header_bytes(call_id: &str) -> Result<Vec<u8>, JournalError> {
    let len = u16::try_from(call_id.len())
        .ok()
        .filter(|&l| usize::from(l) <= MAX_CALL_ID)
        .ok_or(JournalError::CallIdTooLong(call_id.len()))?;
    let mut out = Vec::with_capacity(10 + call_id.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(call_id.as_bytes());
    Ok(out)
}

/// seal_{-1}: the hash of the header.
pub(crate) fn genesis(header: &[u8]) -> [u8; 32] {
    Sha256::digest(header).into()
}

/// Appends one frame to `out`.
pub(crate) fn push_frame(out: &mut Vec<u8>, kind: u8, body: &[&[u8]]) {
    let start = out.len();
    let body_len: usize = body.iter().map(|b| b.len()).sum();
    // Callers bound the body (MAX_PACKET); the cast cannot truncate.
    out.extend_from_slice(&((1 + body_len) as u32).to_le_bytes());
    out.push(kind);
    for part in body {
        out.extend_from_slice(part);
    }
    let crc = crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}
