//! Reading a journal back (SPEC R1, R3): records, sealed segments, the hash
//! chain and what happened to the tail.

use std::path::Path;

use super::verify::{
    frame_at, header_call_id, header_len, later_seal_in, tampered_frame, Checked, Verifier,
};
use super::{
    chain_seal, genesis, Direction, JournalError, FRAME_OVERHEAD, JOURNAL_FILE, NOTE_HEAD,
    PACKET_HEAD,
};
use bytes::Bytes;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// An RTP or RTCP packet (kind 1).
    Packet,
    /// A note (kind 4): JSON the recorder wrote about the call (its trunk
    /// and regions, the SDP each leg sent, how it ended).
    Note,
}

/// One record as journaled: a packet, or a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Nanoseconds since the Unix epoch: the edge's wall clock when the
    /// packet arrived or the note was written.
    pub arrival_ns: u64,
    /// The packet's direction; notes have none and read as `AtoB`.
    pub direction: Direction,
    /// The packet's bytes, or the note's JSON: a slice of the journal read
    /// into memory.
    pub packet: Bytes,
    pub kind: RecordKind,
}

/// A sealed segment (SPEC R3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub index: u64,
    /// Index of its first record in [`Journal::records`].
    pub first_record: usize,
    /// Its records, packets and notes.
    pub records: usize,
    /// Byte offset and length of its record frames in the file.
    pub offset: u64,
    pub len: u64,
    /// SHA-256 of its record frames.
    pub hash: [u8; 32],
    /// Its link in the chain.
    pub seal: [u8; 32],
}

/// How the journal ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// The writer finished: everything is sealed and the end record is there.
    Complete,
    /// The file ends on a whole frame but without the end record: the writer
    /// stopped (or is still writing) between frames. Records after the last
    /// seal are intact (CRC) but unsealed.
    Unfinished,
    /// The file ends in a damaged or partial frame, with no seal after it: a
    /// crash lost the unsynced tail. `valid_bytes` were read, `lost_bytes`
    /// after them were not.
    TornTail { valid_bytes: u64, lost_bytes: u64 },
}

/// A journal as read.
#[derive(Debug, Clone)]
pub struct Journal {
    pub call_id: String,
    /// Every intact record (packets and notes), in file order, sealed or not.
    pub records: Vec<Record>,
    pub segments: Vec<Segment>,
    /// seal_{-1}: the hash of the header.
    pub genesis: [u8; 32],
    pub tail: Tail,
}

impl Journal {
    /// The seals, segment 0 first.
    pub fn chain(&self) -> Vec<[u8; 32]> {
        self.segments.iter().map(|s| s.seal).collect()
    }

    /// Records after the last seal: intact by CRC, not covered by the chain.
    pub fn unsealed(&self) -> &[Record] {
        let sealed = self
            .segments
            .last()
            .map_or(0, |s| s.first_record + s.records);
        &self.records[sealed..]
    }

    /// The notes, in file order.
    pub fn notes(&self) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(|r| r.kind == RecordKind::Note)
    }
}

/// Checks that the segments' seals follow from `genesis` and their hashes,
/// with indexes 0, 1, 2… (SPEC R3). The reader does this as it reads; this is
/// for segment lists that come from elsewhere (a manifest).
pub fn verify_chain(genesis: &[u8; 32], segments: &[Segment]) -> Result<(), JournalError> {
    let mut prev = *genesis;
    for (i, s) in segments.iter().enumerate() {
        if s.index != i as u64 {
            return Err(JournalError::ChainBroken {
                segment: i as u64,
                what: "segment index out of sequence",
            });
        }
        if chain_seal(&prev, &s.hash, s.index) != s.seal {
            return Err(JournalError::ChainBroken {
                segment: s.index,
                what: "seal does not follow from the previous seal and the segment hash",
            });
        }
        prev = s.seal;
    }
    Ok(())
}

/// Opens journals.
pub struct JournalReader;

impl JournalReader {
    /// Reads the journal in the call directory `dir` into memory. For a long
    /// call, [`JournalStream`](super::JournalStream) reads it in bounded
    /// memory with the same checks.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        let data = std::fs::read(dir.join(JOURNAL_FILE))?;
        Self::parse(Bytes::from(data))
    }

    /// Reads a journal from its bytes.
    pub fn parse(data: Bytes) -> Result<Journal, JournalError> {
        let mut pos = match header_len(&data)? {
            Some(len) => len,
            None if data.len() < 10 => {
                return Err(JournalError::BadHeader("shorter than magic and length"))
            }
            None => return Err(JournalError::BadHeader("Call-ID cut short")),
        };
        let call_id = header_call_id(&data[..pos])?;
        let genesis = genesis(&data[..pos]);
        let mut verifier = Verifier::new(&data[..pos]);
        let mut records = Vec::new();
        let mut segments: Vec<Segment> = Vec::new();

        let tail = loop {
            if pos == data.len() {
                break if verifier.ended() {
                    Tail::Complete
                } else {
                    Tail::Unfinished
                };
            }
            if verifier.ended() {
                return Err(JournalError::AfterEnd { offset: pos as u64 });
            }
            let Some((kind, body, next)) = frame_at(&data, pos) else {
                break damaged(&data, pos, verifier.index())?;
            };
            // Where the body starts in `data`, to slice records zero-copy.
            let body_at = pos + 5;
            match verifier.frame(pos as u64, &data[pos..next], kind, body)? {
                Checked::Packet {
                    arrival_ns,
                    direction,
                    packet,
                } => {
                    let start = body_at + PACKET_HEAD;
                    records.push(Record {
                        arrival_ns,
                        direction,
                        packet: data.slice(start..start + packet.len()),
                        kind: RecordKind::Packet,
                    });
                }
                Checked::Note { at_unix_ns, json } => {
                    let start = body_at + NOTE_HEAD;
                    records.push(Record {
                        arrival_ns: at_unix_ns,
                        direction: Direction::AtoB,
                        packet: data.slice(start..start + json.len()),
                        kind: RecordKind::Note,
                    });
                }
                Checked::Sealed(segment) => segments.push(segment),
                Checked::End => {}
                Checked::Damaged => break damaged(&data, pos, verifier.index())?,
            }
            pos = next;
        };

        Ok(Journal {
            call_id,
            records,
            segments,
            genesis,
            tail,
        })
    }
}

/// A bad frame at `pos`, in the segment `index` being read. If a whole seal
/// or end record follows, the writer went on past this frame, so it was
/// changed afterwards: tampering with that segment (sealed frames are synced
/// before anything after them is written, with the default configuration).
/// Otherwise it is the unsynced tail a crash tore.
fn damaged(data: &[u8], pos: usize, index: u64) -> Result<Tail, JournalError> {
    if later_seal_in(
        data,
        pos + 1,
        data.len().saturating_sub(FRAME_OVERHEAD),
        index,
    ) {
        return Err(tampered_frame(index, pos as u64));
    }
    Ok(Tail::TornTail {
        valid_bytes: pos as u64,
        lost_bytes: (data.len() - pos) as u64,
    })
}
