//! Reading a journal as a stream, in bounded memory (SPEC R1, R3): records
//! and seals one by one from any [`Read`], with the same checks as
//! [`JournalReader`](super::JournalReader) (CRC, segment hashes, the chain,
//! the tail), so a merge of an hours-long call never holds the journal.
//!
//! Memory: one buffer of [`BUFFER`] bytes, enough for the largest frame.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use super::verify::{
    frame_at, header_call_id, header_len, later_seal_in, tampered_frame, Checked, Verifier,
    SEAL_FRAME,
};
use super::{
    genesis, Direction, JournalError, Segment, Tail, FRAME_OVERHEAD, JOURNAL_FILE, MAX_FRAME_LEN,
    NOTE_HEAD, PACKET_HEAD,
};

/// The read buffer's size: four of the largest frames.
pub(crate) const BUFFER: usize = 4 * (MAX_FRAME_LEN + 8);

/// One entry of a journal, borrowed from the stream's buffer until the next
/// call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    /// A packet (kind 1); `arrival_ns` is ns since the Unix epoch.
    Packet {
        arrival_ns: u64,
        direction: Direction,
        packet: &'a [u8],
    },
    /// A note (kind 4): the recorder's JSON about the call.
    Note { at_unix_ns: u64, json: &'a [u8] },
    /// A seal that checked out: the records since the previous one form
    /// this segment. `first_record` counts records from the journal's start,
    /// as [`Journal::records`](super::Journal::records) would index them.
    Sealed(Segment),
}

/// Reads a journal entry by entry. After [`next_entry`](Self::next_entry)
/// returns `Ok(None)`, [`tail`](Self::tail) says how the journal ended. After
/// an error the stream yields nothing more.
pub struct JournalStream<R> {
    src: R,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`; `buf[start]` is at file offset `pos`.
    start: usize,
    end: usize,
    pos: u64,
    eof: bool,
    call_id: String,
    genesis: [u8; 32],
    verifier: Verifier,
    tail: Option<Tail>,
    stopped: bool,
}

/// Where an entry's bytes are in the buffer, so the verifier's borrow ends
/// before the buffer position moves.
enum Found {
    Packet(u64, Direction, usize, usize),
    Note(u64, usize, usize),
    Sealed(Segment),
    End,
    Damaged,
}

impl JournalStream<File> {
    /// Opens the journal of a call directory, or the journal file itself.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let file = if path.is_dir() {
            File::open(path.join(JOURNAL_FILE))?
        } else {
            File::open(path)?
        };
        Self::new(file)
    }
}

impl<R: Read> JournalStream<R> {
    /// Reads and checks the header.
    pub fn new(src: R) -> Result<Self, JournalError> {
        let mut stream = JournalStream {
            src,
            buf: vec![0; BUFFER],
            start: 0,
            end: 0,
            pos: 0,
            eof: false,
            call_id: String::new(),
            genesis: [0; 32],
            verifier: Verifier::new(&[]),
            tail: None,
            stopped: false,
        };
        stream.fill_to(10)?;
        let len = match header_len(stream.unread())? {
            Some(len) => len,
            None if stream.unread().len() < 10 => {
                return Err(JournalError::BadHeader("shorter than magic and length"))
            }
            None => {
                let want = 10 + usize::from(u16::from_le_bytes([stream.buf[8], stream.buf[9]]));
                stream.fill_to(want)?;
                header_len(stream.unread())?.ok_or(JournalError::BadHeader("Call-ID cut short"))?
            }
        };
        let header = &stream.buf[..len];
        stream.call_id = header_call_id(header)?;
        stream.genesis = genesis(header);
        stream.verifier = Verifier::new(header);
        stream.start = len;
        stream.pos = len as u64;
        Ok(stream)
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// seal_{-1}: the hash of the header.
    pub fn genesis(&self) -> &[u8; 32] {
        &self.genesis
    }

    /// How the journal ended, once [`next_entry`](Self::next_entry) has
    /// returned `Ok(None)`.
    pub fn tail(&self) -> Option<Tail> {
        self.tail
    }

    /// Records (packets and notes) read so far.
    pub fn records(&self) -> u64 {
        self.verifier.records()
    }

    /// Segments sealed so far.
    pub fn segments(&self) -> u64 {
        self.verifier.index()
    }

    /// The next packet, note or seal; `Ok(None)` at the end of the journal
    /// (see [`tail`](Self::tail)). Errors are those of
    /// [`JournalReader::parse`](super::JournalReader::parse).
    pub fn next_entry(&mut self) -> Result<Option<Entry<'_>>, JournalError> {
        let found = loop {
            if self.stopped || self.tail.is_some() {
                return Ok(None);
            }
            match self.step() {
                Ok(Found::End) => continue,
                Ok(found) => break found,
                Err(e) => {
                    self.stopped = true;
                    return Err(e);
                }
            }
        };
        Ok(Some(match found {
            Found::Packet(arrival_ns, direction, from, to) => Entry::Packet {
                arrival_ns,
                direction,
                packet: &self.buf[from..to],
            },
            Found::Note(at_unix_ns, from, to) => Entry::Note {
                at_unix_ns,
                json: &self.buf[from..to],
            },
            Found::Sealed(segment) => Entry::Sealed(segment),
            Found::Damaged => {
                let index = self.verifier.index();
                match self.damaged(index) {
                    Ok(tail) => {
                        self.tail = Some(tail);
                        return Ok(None);
                    }
                    Err(e) => {
                        self.stopped = true;
                        return Err(e);
                    }
                }
            }
            Found::End => unreachable!("handled in the loop"),
        }))
    }

    /// Reads one frame and checks it.
    fn step(&mut self) -> Result<Found, JournalError> {
        self.fill_to(4)?;
        if self.start == self.end {
            self.tail = Some(if self.verifier.ended() {
                Tail::Complete
            } else {
                Tail::Unfinished
            });
            return Ok(Found::End);
        }
        if self.verifier.ended() {
            return Err(JournalError::AfterEnd { offset: self.pos });
        }
        if let Some(len) = self.unread().get(..4) {
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
            if (1..=MAX_FRAME_LEN).contains(&len) {
                self.fill_to(len + 8)?;
            }
        }
        let Some((kind, body, next)) = frame_at(&self.buf[self.start..self.end], 0) else {
            return Ok(Found::Damaged);
        };
        let at = self.start;
        // The body runs from after len and kind to before the CRC.
        let body_end = at + next - 4;
        let frame = &self.buf[at..at + next];
        let found = match self.verifier.frame(self.pos, frame, kind, body)? {
            Checked::Packet {
                arrival_ns,
                direction,
                ..
            } => Found::Packet(arrival_ns, direction, at + 5 + PACKET_HEAD, body_end),
            Checked::Note { at_unix_ns, .. } => {
                Found::Note(at_unix_ns, at + 5 + NOTE_HEAD, body_end)
            }
            Checked::Sealed(segment) => Found::Sealed(segment),
            Checked::End => Found::End,
            Checked::Damaged => return Ok(Found::Damaged),
        };
        self.start += next;
        self.pos += next as u64;
        Ok(found)
    }

    /// A bad frame at the current position, in segment `index`: tampering if
    /// a whole seal or end record follows anywhere after it, else a torn
    /// tail. Scans the rest of the stream in buffer-sized windows.
    fn damaged(&mut self, index: u64) -> Result<Tail, JournalError> {
        let bad_at = self.pos;
        // The next offset to check, relative to `start`.
        let mut from = 1;
        loop {
            let avail = self.end - self.start;
            let unread = &self.buf[self.start..self.end];
            if self.eof {
                if later_seal_in(unread, from, avail.saturating_sub(FRAME_OVERHEAD), index) {
                    return Err(tampered_frame(index, bad_at));
                }
                return Ok(Tail::TornTail {
                    valid_bytes: bad_at,
                    lost_bytes: self.pos - bad_at + avail as u64,
                });
            }
            // Offsets whose longest candidate (a seal) is wholly buffered.
            let upto = (avail + 1).saturating_sub(SEAL_FRAME);
            if from < upto {
                if later_seal_in(unread, from, upto, index) {
                    return Err(tampered_frame(index, bad_at));
                }
                self.start += upto;
                self.pos += upto as u64;
                from = 0;
            }
            self.fill_to(self.end - self.start + 1)?;
        }
    }

    fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads until `n` bytes are unread or the source ends.
    fn fill_to(&mut self, n: usize) -> Result<(), JournalError> {
        let n = n.min(self.buf.len());
        if self.end - self.start >= n || self.eof {
            return Ok(());
        }
        if self.buf.len() - self.start < n {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end - self.start < n {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(read) => self.end += read,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
