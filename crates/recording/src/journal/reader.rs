//! Reading a journal back (SPEC R1, R3): records, sealed segments, the hash
//! chain and what happened to the tail.

use std::path::Path;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{
    chain_seal, crc32c, genesis, Direction, JournalError, END_BODY, FRAME_OVERHEAD, JOURNAL_FILE,
    KIND_END, KIND_PACKET, KIND_SEAL, MAGIC, MAX_CALL_ID, MAX_PACKET, PACKET_HEAD, SEAL_BODY,
};

/// One packet as journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Nanoseconds since the call started.
    pub arrival_ns: u64,
    pub direction: Direction,
    /// The packet's bytes, a slice of the journal read into memory.
    pub packet: Bytes,
}

/// A sealed segment (SPEC R3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub index: u64,
    /// Index of its first record in [`Journal::records`].
    pub first_record: usize,
    pub records: usize,
    /// Byte offset and length of its packet frames in the file.
    pub offset: u64,
    pub len: u64,
    /// SHA-256 of its packet frames.
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
    /// Every intact record, in file order, sealed or not.
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
    /// Reads the journal in the call directory `dir`.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        let data = std::fs::read(dir.join(JOURNAL_FILE))?;
        Self::parse(Bytes::from(data))
    }

    /// Reads a journal from its bytes.
    pub fn parse(data: Bytes) -> Result<Journal, JournalError> {
        let (call_id, mut pos) = parse_header(&data)?;
        let genesis = genesis(&data[..pos]);
        let mut prev = genesis;
        let mut records = Vec::new();
        let mut segments: Vec<Segment> = Vec::new();
        let mut seg_offset = pos;
        let mut seg_first = 0usize;
        let mut hasher = Sha256::new();
        let mut ended = false;

        let tail = loop {
            let index = segments.len() as u64;
            if pos == data.len() {
                break if ended {
                    Tail::Complete
                } else {
                    Tail::Unfinished
                };
            }
            if ended {
                return Err(JournalError::AfterEnd { offset: pos as u64 });
            }
            let Some((kind, body, next)) = frame_at(&data, pos) else {
                break damaged(&data, pos, index)?;
            };
            match kind {
                KIND_PACKET => {
                    let Some(direction) = Direction::from_byte(body[8]) else {
                        break damaged(&data, pos, index)?;
                    };
                    let arrival_ns = u64::from_le_bytes(le8(&body[..8]));
                    let start = pos + FRAME_OVERHEAD - 4 + PACKET_HEAD;
                    records.push(Record {
                        arrival_ns,
                        direction,
                        packet: data.slice(start..start + body.len() - PACKET_HEAD),
                    });
                    hasher.update(&data[pos..next]);
                }
                KIND_SEAL => {
                    let field = |i: usize| u64::from_le_bytes(le8(&body[8 * i..8 * i + 8]));
                    let tampered = |what| JournalError::Tampered {
                        segment: index,
                        offset: pos as u64,
                        what,
                    };
                    if field(0) != index {
                        return Err(JournalError::ChainBroken {
                            segment: index,
                            what: "segment index out of sequence",
                        });
                    }
                    let count = records.len() - seg_first;
                    if field(1) != seg_offset as u64
                        || field(2) != (pos - seg_offset) as u64
                        || field(3) != count as u64
                    {
                        return Err(tampered("seal's offset, length or count differ"));
                    }
                    let hash: [u8; 32] = std::mem::take(&mut hasher).finalize().into();
                    if hash[..] != body[32..64] {
                        return Err(tampered("segment hash differs from its seal"));
                    }
                    let seal = chain_seal(&prev, &hash, index);
                    if seal[..] != body[64..96] {
                        return Err(JournalError::ChainBroken {
                            segment: index,
                            what:
                                "seal does not follow from the previous seal and the segment hash",
                        });
                    }
                    segments.push(Segment {
                        index,
                        first_record: seg_first,
                        records: count,
                        offset: seg_offset as u64,
                        len: (pos - seg_offset) as u64,
                        hash,
                        seal,
                    });
                    prev = seal;
                    seg_offset = next;
                    seg_first = records.len();
                }
                KIND_END => {
                    let total = u64::from_le_bytes(le8(&body[..8]));
                    let sealed = u64::from_le_bytes(le8(&body[8..16]));
                    if seg_first != records.len()
                        || total != records.len() as u64
                        || sealed != index
                    {
                        return Err(JournalError::Tampered {
                            segment: index,
                            offset: pos as u64,
                            what: "end record's counts differ from the journal",
                        });
                    }
                    ended = true;
                }
                _ => break damaged(&data, pos, index)?,
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

fn le8(b: &[u8]) -> [u8; 8] {
    let mut out = [0; 8];
    out.copy_from_slice(&b[..8]);
    out
}

fn parse_header(data: &[u8]) -> Result<(String, usize), JournalError> {
    if data.len() < MAGIC.len() + 2 {
        return Err(JournalError::BadHeader("shorter than magic and length"));
    }
    if data[..8] != MAGIC {
        return Err(JournalError::BadHeader(
            "not a hotsite journal of format version 1",
        ));
    }
    let len = usize::from(u16::from_le_bytes([data[8], data[9]]));
    if len > MAX_CALL_ID {
        return Err(JournalError::BadHeader("Call-ID length above the limit"));
    }
    let end = 10 + len;
    let id = data
        .get(10..end)
        .ok_or(JournalError::BadHeader("Call-ID cut short"))?;
    let id = std::str::from_utf8(id).map_err(|_| JournalError::BadHeader("Call-ID not UTF-8"))?;
    Ok((id.to_owned(), end))
}

/// The frame at `pos` if it is whole, its CRC matches and its body has the
/// length its kind needs: (kind, body, offset of the next frame).
fn frame_at(data: &[u8], pos: usize) -> Option<(u8, &[u8], usize)> {
    let len = u32::from_le_bytes(data.get(pos..pos + 4)?.try_into().ok()?) as usize;
    if len == 0 || len > 1 + PACKET_HEAD + MAX_PACKET {
        return None;
    }
    let crc_at = pos + 4 + len;
    let crc = u32::from_le_bytes(data.get(crc_at..crc_at + 4)?.try_into().ok()?);
    if crc32c(&data[pos..crc_at]) != crc {
        return None;
    }
    let kind = data[pos + 4];
    let body = &data[pos + 5..crc_at];
    let fits = match kind {
        KIND_PACKET => body.len() >= PACKET_HEAD,
        KIND_SEAL => body.len() == SEAL_BODY,
        KIND_END => body.len() == END_BODY,
        _ => true,
    };
    fits.then_some((kind, body, crc_at + 4))
}

/// A bad frame at `pos`, in the segment `index` being read. If a whole seal
/// or end record follows, the writer went on past this frame, so it was
/// changed afterwards: tampering with that segment (sealed frames are synced
/// before anything after them is written, with the default configuration).
/// Otherwise it is the unsynced tail a crash tore.
fn damaged(data: &[u8], pos: usize, index: u64) -> Result<Tail, JournalError> {
    let seal_len = (1 + SEAL_BODY as u32).to_le_bytes();
    let end_len = (1 + END_BODY as u32).to_le_bytes();
    let later = (pos + 1..data.len().saturating_sub(FRAME_OVERHEAD)).find(|&o| {
        // Cheap filter first: only a seal's or end record's length and kind.
        let head = &data[o..o + 5];
        let candidate = (head[..4] == seal_len && head[4] == KIND_SEAL)
            || (head[..4] == end_len && head[4] == KIND_END);
        candidate
            && match frame_at(data, o) {
                Some((KIND_SEAL, body, _)) => u64::from_le_bytes(le8(body)) >= index,
                Some((KIND_END, _, _)) => true,
                _ => false,
            }
    });
    match later {
        Some(_) => Err(JournalError::Tampered {
            segment: index,
            offset: pos as u64,
            what: "a record or seal does not pass its check but later seals exist",
        }),
        None => Ok(Tail::TornTail {
            valid_bytes: pos as u64,
            lost_bytes: (data.len() - pos) as u64,
        }),
    }
}
