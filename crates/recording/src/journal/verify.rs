//! The checks both readers share (SPEC R1, R3): one frame's framing and CRC,
//! the segment hashes and seals as frames go by, and the search that tells
//! a torn tail from tampering. [`JournalReader`](super::JournalReader) runs
//! them over bytes in memory, [`JournalStream`](super::JournalStream) over a
//! bounded buffer; keeping them here is what makes the two agree.

use sha2::{Digest, Sha256};

use super::{
    chain_seal, crc32c, genesis, Direction, JournalError, Segment, END_BODY, FRAME_OVERHEAD,
    KIND_END, KIND_NOTE, KIND_PACKET, KIND_SEAL, MAGIC, MAX_CALL_ID, MAX_FRAME_LEN, MAX_NOTE,
    NOTE_HEAD, PACKET_HEAD, SEAL_BODY,
};

/// A seal frame's length: a later seal or end record is at most this long.
pub(crate) const SEAL_FRAME: usize = FRAME_OVERHEAD + SEAL_BODY;

pub(crate) fn le8(b: &[u8]) -> [u8; 8] {
    let mut out = [0; 8];
    out.copy_from_slice(&b[..8]);
    out
}

/// The header's length if `data` starts with a whole header: magic, length,
/// Call-ID. `Ok(None)` when more bytes are needed to tell.
pub(crate) fn header_len(data: &[u8]) -> Result<Option<usize>, JournalError> {
    if data.len() < MAGIC.len() + 2 {
        return Ok(None);
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
    Ok((data.len() >= 10 + len).then_some(10 + len))
}

/// The Call-ID of a whole header (see [`header_len`]).
pub(crate) fn header_call_id(header: &[u8]) -> Result<String, JournalError> {
    std::str::from_utf8(&header[10..])
        .map(str::to_owned)
        .map_err(|_| JournalError::BadHeader("Call-ID not UTF-8"))
}

/// The frame at `pos` if it is whole, its CRC matches and its body has the
/// length its kind needs: (kind, body, offset of the next frame). `data` must
/// hold the whole frame or everything up to the end of the file.
pub(crate) fn frame_at(data: &[u8], pos: usize) -> Option<(u8, &[u8], usize)> {
    let len = u32::from_le_bytes(data.get(pos..pos + 4)?.try_into().ok()?) as usize;
    if len == 0 || len > MAX_FRAME_LEN {
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
        KIND_NOTE => body.len() >= NOTE_HEAD && body.len() - NOTE_HEAD <= MAX_NOTE,
        _ => true,
    };
    fits.then_some((kind, body, crc_at + 4))
}

/// Whether a whole seal (of segment `index` or later) or end record starts
/// at some offset in `from..upto` of `data`: after a bad frame, that means
/// the writer went on past it, so the bad frame was changed afterwards.
/// `data` must hold [`SEAL_FRAME`] bytes past `upto`, or reach the file's end.
pub(crate) fn later_seal_in(data: &[u8], from: usize, upto: usize, index: u64) -> bool {
    let seal_len = (1 + SEAL_BODY as u32).to_le_bytes();
    let end_len = (1 + END_BODY as u32).to_le_bytes();
    (from..upto).any(|o| {
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
    })
}

/// The error for a bad frame at `offset` when a seal follows it.
pub(crate) fn tampered_frame(segment: u64, offset: u64) -> JournalError {
    JournalError::Tampered {
        segment,
        offset,
        what: "a record or seal does not pass its check but later seals exist",
    }
}

/// What an intact frame was.
pub(crate) enum Checked<'a> {
    Packet {
        arrival_ns: u64,
        direction: Direction,
        /// The packet's bytes, inside the frame's body.
        packet: &'a [u8],
    },
    Note {
        at_unix_ns: u64,
        json: &'a [u8],
    },
    Sealed(Segment),
    End,
    /// Whole and with a good CRC, but not a record we know (an unknown kind
    /// or direction byte): handled like a frame that fails its CRC.
    Damaged,
}

/// The segment hashes, seals and counts, checked frame by frame (SPEC R3).
pub(crate) struct Verifier {
    prev: [u8; 32],
    /// Records (packets and notes) before the open segment.
    sealed_records: u64,
    /// Records in the open segment.
    open_records: u64,
    seg_offset: u64,
    hasher: Sha256,
    segments: u64,
    ended: bool,
}

impl Verifier {
    /// For a journal whose whole header is `header`.
    pub(crate) fn new(header: &[u8]) -> Self {
        Verifier {
            prev: genesis(header),
            sealed_records: 0,
            open_records: 0,
            seg_offset: header.len() as u64,
            hasher: Sha256::new(),
            segments: 0,
            ended: false,
        }
    }

    /// Index of the segment being read (the next to be sealed).
    pub(crate) fn index(&self) -> u64 {
        self.segments
    }

    pub(crate) fn records(&self) -> u64 {
        self.sealed_records + self.open_records
    }

    pub(crate) fn ended(&self) -> bool {
        self.ended
    }

    /// Takes the frame `frame` at file offset `pos`, which [`frame_at`]
    /// accepted as (`kind`, `body`).
    pub(crate) fn frame<'a>(
        &mut self,
        pos: u64,
        frame: &[u8],
        kind: u8,
        body: &'a [u8],
    ) -> Result<Checked<'a>, JournalError> {
        let index = self.segments;
        match kind {
            KIND_PACKET => {
                let Some(direction) = Direction::from_byte(body[8]) else {
                    return Ok(Checked::Damaged);
                };
                self.hasher.update(frame);
                self.open_records += 1;
                Ok(Checked::Packet {
                    arrival_ns: u64::from_le_bytes(le8(body)),
                    direction,
                    packet: &body[PACKET_HEAD..],
                })
            }
            KIND_NOTE => {
                self.hasher.update(frame);
                self.open_records += 1;
                Ok(Checked::Note {
                    at_unix_ns: u64::from_le_bytes(le8(body)),
                    json: &body[NOTE_HEAD..],
                })
            }
            KIND_SEAL => {
                let field = |i: usize| u64::from_le_bytes(le8(&body[8 * i..8 * i + 8]));
                let tampered = |what| JournalError::Tampered {
                    segment: index,
                    offset: pos,
                    what,
                };
                if field(0) != index {
                    return Err(JournalError::ChainBroken {
                        segment: index,
                        what: "segment index out of sequence",
                    });
                }
                if field(1) != self.seg_offset
                    || field(2) != pos - self.seg_offset
                    || field(3) != self.open_records
                {
                    return Err(tampered("seal's offset, length or count differ"));
                }
                let hash: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
                if hash[..] != body[32..64] {
                    return Err(tampered("segment hash differs from its seal"));
                }
                let seal = chain_seal(&self.prev, &hash, index);
                if seal[..] != body[64..96] {
                    return Err(JournalError::ChainBroken {
                        segment: index,
                        what: "seal does not follow from the previous seal and the segment hash",
                    });
                }
                let segment = Segment {
                    index,
                    first_record: self.sealed_records as usize,
                    records: self.open_records as usize,
                    offset: self.seg_offset,
                    len: pos - self.seg_offset,
                    hash,
                    seal,
                };
                self.prev = seal;
                self.seg_offset = pos + frame.len() as u64;
                self.sealed_records += self.open_records;
                self.open_records = 0;
                self.segments += 1;
                Ok(Checked::Sealed(segment))
            }
            KIND_END => {
                let total = u64::from_le_bytes(le8(&body[..8]));
                let sealed = u64::from_le_bytes(le8(&body[8..16]));
                if self.open_records != 0 || total != self.records() || sealed != index {
                    return Err(JournalError::Tampered {
                        segment: index,
                        offset: pos,
                        what: "end record's counts differ from the journal",
                    });
                }
                self.ended = true;
                Ok(Checked::End)
            }
            _ => Ok(Checked::Damaged),
        }
    }
}
