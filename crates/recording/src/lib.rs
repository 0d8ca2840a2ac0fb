//! Recording continuity for hotsite (SPEC R1–R5), first slice.
//!
//! - [`rtp`]: a zero-copy RTP packet view (RFC 3550 §5.1) with errors that
//!   name what is wrong, RTP/RTCP demultiplexing (RFC 5761 §4), and extended
//!   sequence and timestamp counters that survive wraparound and a media
//!   server's handover (new SSRC, jumped sequence and timestamp; SPEC R1).
//! - [`journal`]: the edge journal (SPEC R1, R3): packets of both directions
//!   appended as they arrive, framed with CRC-32C, grouped in segments sealed
//!   with SHA-256 into a hash chain; the reader returns the records, the
//!   segments, the chain and what happened to the tail (complete, unfinished
//!   or torn by a crash), and names a tampered segment.
//! - [`manifest`]: the custody manifest (SPEC R3, V3): call metadata, the
//!   sources with the journal's segment chain, the merged file's hash, the
//!   merge's report; RFC 8785 canonical JSON signed with Ed25519, an
//!   optional RFC 3161 timestamp, and offline verification that names the
//!   first bad segment or file.
//!
//! The logic is sans-IO (DESIGN.md): arrival times are inputs, nothing reads
//! a clock. The journal's writer and reader and the manifest's hashing use
//! plain `std::fs`; the manifest's optional RFC 3161 timestamp is one HTTP
//! request (reqwest). The tokio driver, the merge (R2) and the upload (R4)
//! come next (README.md).

pub mod g711;
pub mod journal;
pub mod manifest;
pub mod merge;
pub mod rtp;
pub mod upload;
pub mod wav;
