//! Recording continuity for hotsite (SPEC R1–R5, V3).
//!
//! - [`rtp`]: a zero-copy RTP packet view (RFC 3550 §5.1) with errors that
//!   name what is wrong, RTP/RTCP demultiplexing (RFC 5761 §4), and extended
//!   sequence and timestamp counters that survive wraparound and a media
//!   server's handover (new SSRC, jumped sequence and timestamp; SPEC R1).
//! - [`journal`]: the edge journal (SPEC R1, R3): packets of both directions
//!   and the recorder's notes appended as they arrive, framed with CRC-32C,
//!   grouped in segments sealed with SHA-256 into a hash chain; a whole-file
//!   and a streaming reader return the records, the segments, the chain and
//!   what happened to the tail (complete, unfinished or torn by a crash), and
//!   name a tampered segment.
//! - [`recorder`]: the edge recorder (R1): the media relay's datagrams, per
//!   call, to journals on a writer thread, fsynced every `sync_interval`.
//! - [`g711`], [`wav`], [`merge`]: the gap-free merge of the edge journal
//!   with the provider's cloud recording (R2, R5), streaming, in bounded
//!   memory.
//! - [`manifest`]: the custody manifest (SPEC R3, V3): call metadata, the
//!   sources with the journal's segment chain, the merged file's hash, the
//!   merge's report; RFC 8785 canonical JSON signed with Ed25519, an
//!   optional RFC 3161 timestamp, and offline verification that names the
//!   first bad segment or file.
//! - [`upload`]: the durable upload queue to object storage (R4).
//! - [`config`], [`service`]: the `[recording]` section and the system the
//!   host runs: recorder, then per finished call the cloud recording taken
//!   in, the merge, the signed manifest and the upload job.
//!
//! The decisions are sans-IO (DESIGN.md): arrival times are inputs, the
//! merge's choices, the upload schedule and the journal's checks are pure.
//! Files go through plain `std::fs` on a writer thread or the blocking pool;
//! the uploader and the pipeline are tokio tasks.

pub mod config;
pub mod g711;
pub mod journal;
pub mod manifest;
pub mod merge;
pub mod recorder;
pub mod rtp;
pub mod service;
pub mod upload;
pub mod wav;
