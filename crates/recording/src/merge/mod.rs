//! The gap-free merge (SPEC R2, R5, V3): after the call, the edge journal
//! and the cloud recording become one continuous WAV (8 kHz, 16-bit,
//! channel 0 a→b, channel 1 b→a) from the first to the last audio of either
//! source, and a [`MergeReport`] listing every span's source and every gap.
//!
//! Rules (see [`decide`]): edge audio wherever the edge has packets (G.711
//! decoded, placed by RTP timestamp within a stream epoch anchored by
//! arrival time, so jitter and reordering do not move it and a handover's
//! new SSRC and jumped timestamp start a new epoch, not a gap); else cloud
//! audio where the cloud has real audio (an all-zero run of 200 ms or more
//! is not audio); else a gap, written as silence and listed — nothing is
//! invented. Hold comes from SDP notes only; DTMF from the edge's
//! telephone-events, kept whatever the cloud has (R5).
//!
//! Streaming, in bounded memory (the README gives the figures):
//!
//! 1. Pass 1 over the journal ([`JournalStream`], checked as it is read):
//!    notes, stream epochs and their anchors, a few stretches of clear audio
//!    for the alignment.
//! 2. One pass over the cloud WAV: its length and where its audio is.
//! 3. Alignment: the sidecar's start time, refined by cross-correlating
//!    the captured stretches with the cloud (±`search_ms`).
//! 4. Pass 2 over the journal: packets are decoded into a window of a few
//!    seconds; whatever is older than the latest arrival minus
//!    `max_lateness_ms` is decided frame by frame, written and hashed.
//!
//! Sans-IO where it matters: the decisions ([`decide`]), holds and payload
//! types ([`notes`]), DTMF ([`dtmf`]), the silence gate and correlation
//! ([`cloud::SilenceGate`], [`align`]) are pure; this module moves bytes.

pub mod align;
pub mod cloud;
pub mod decide;
pub mod dtmf;
mod edge;
pub mod notes;
pub mod report;

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::journal::{Entry, JournalError, JournalStream, Tail};
use crate::rtp::EpochStart;
use crate::wav::{WavError, WavWriter, SAMPLE_RATE};

pub use cloud::{CloudRecording, CloudSidecar, SilenceGate};
pub use decide::{decide, plan, FrameAvailability, SampleSpan, Source, FRAME};
pub use report::*;

use cloud::{CloudFeed, CloudScan};
use dtmf::DtmfTracker;
use edge::{
    ns, round_div, Capture, Capturer, Classified, DirTracker, EdgeWindow, EpochInfo, SeqWindow, NS,
};
use notes::{dir_index, CallNote, Hold, HoldTracker, Note, PayloadTypes};

/// Samples written per block in pass 2 (1 s; a whole number of frames).
const BLOCK: usize = 8000;
/// Epochs per direction a merge accepts: a real call has a handful; a
/// stream changing SSRC on every packet is refused rather than tracked in
/// unbounded memory.
pub const MAX_EPOCHS: usize = 65_536;
/// Alignment stretches captured per direction.
const CAPTURES: usize = 3;
/// Time between captured stretches of one direction.
const CAPTURE_SPACING_NS: u64 = 60_000_000_000;
/// Undecodable packets of one payload type closer than this are one span.
const UNDECODABLE_JOIN_NS: u64 = 1_000_000_000;

const DIRECTIONS: [&str; 2] = ["a_to_b", "b_to_a"];

/// A block of both channels: samples, and whether each is there.
type Channels<'a> = [(&'a [i16], &'a [bool]); 2];

/// How a merge runs. `Default` gives the values documented per field.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOptions {
    /// How far around the sidecar's time the correlation searches. 500.
    pub search_ms: u32,
    /// Length of an audio stretch correlated. 4000.
    pub align_window_ms: u32,
    /// Normalized correlation at or above which the offset is trusted.
    /// 0.5.
    pub min_correlation: f32,
    /// How far behind the latest arrival a packet may be placed (jitter,
    /// reordering); older ones are counted late. 2000.
    pub max_lateness_ms: u32,
    /// An all-zero run of the cloud this long or longer is not audio. 200.
    pub cloud_silence_ms: u32,
    /// The longest merged file accepted, in seconds. 12 h.
    pub max_duration_s: u64,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            search_ms: 500,
            align_window_ms: 4000,
            min_correlation: 0.5,
            max_lateness_ms: 2000,
            cloud_silence_ms: 200,
            max_duration_s: 12 * 3600,
        }
    }
}

/// Why a merge failed.
#[derive(Debug, Error)]
pub enum MergeError {
    /// The journal cannot be read, or is tampered with (SPEC R3): a merge
    /// of a tampered journal is refused.
    #[error("journal {path}: {source}")]
    Journal { path: PathBuf, source: JournalError },
    #[error("cloud recording {path}: {source}")]
    CloudWav { path: PathBuf, source: WavError },
    #[error("cloud sidecar {path}: {what}")]
    CloudSidecar { path: PathBuf, what: String },
    #[error("merged file {path}: {source}")]
    Output { path: PathBuf, source: WavError },
    #[error("the merged file would last {seconds} s, above the limit of {limit} s")]
    TooLong { seconds: u64, limit: u64 },
    #[error("direction {direction} has more than {limit} stream epochs")]
    TooManyEpochs {
        direction: &'static str,
        limit: usize,
    },
}

/// Merges the journal at `journal` (a call directory or the journal file)
/// with the cloud recording, if any, into `out_wav`; returns the report.
/// Memory is bounded independently of the call's length (see the module
/// docs).
pub fn merge(
    journal: &Path,
    cloud: Option<&CloudRecording>,
    out_wav: &Path,
    opts: &MergeOptions,
) -> Result<MergeReport, MergeError> {
    let scan = scan_journal(journal, opts)?;
    let min_run = u64::from(opts.cloud_silence_ms) * 8;
    let cloud_scan = cloud.map(|c| cloud::scan(&c.wav, min_run)).transpose()?;
    let alignment = match (cloud, &cloud_scan) {
        (Some(c), Some(s)) => Some(align_cloud(&scan, c, s, opts)?),
        _ => None,
    };
    let timeline = Timeline::new(&scan, cloud, cloud_scan.as_ref(), alignment.as_ref(), opts)?;
    let feed = match (cloud, &cloud_scan) {
        (Some(c), Some(s)) => CloudFeed::open(&c.wav, timeline.cloud_shift, s.frames, min_run)?,
        _ => CloudFeed::none(),
    };
    let rendered = render(journal, &timeline, feed, out_wav, opts)?;
    tracing::info!(
        call_id = %scan.call_id,
        frames = timeline.frames,
        gaps = rendered.spans.iter().flatten().filter(|s| s.source == Source::Gap).count(),
        "merged recording"
    );
    Ok(build_report(
        journal, out_wav, scan, cloud, cloud_scan, alignment, &timeline, rendered,
    ))
}

/// What pass 1 found.
struct Scan {
    call_id: String,
    tail: Tail,
    records: u64,
    segments: u64,
    sealed_records: u64,
    notes: u64,
    unreadable_notes: u64,
    call: Option<CallNote>,
    end_cause: Option<String>,
    holds: Vec<Hold>,
    epochs: [Vec<EpochInfo>; 2],
    captures: Vec<Capture>,
    undecodable: Vec<Undecodable>,
    first_ns: Option<u64>,
}

struct Undecodable {
    direction: usize,
    payload_type: u8,
    encoding: Option<String>,
    start_ns: u64,
    end_ns: u64,
    packets: u64,
}

fn open_journal(path: &Path) -> Result<JournalStream<File>, MergeError> {
    JournalStream::open(path).map_err(|source| MergeError::Journal {
        path: path.to_owned(),
        source,
    })
}

/// Pass 1 (see the module docs).
fn scan_journal(path: &Path, opts: &MergeOptions) -> Result<Scan, MergeError> {
    let journal_err = |source| MergeError::Journal {
        path: path.to_owned(),
        source,
    };
    let mut stream = open_journal(path)?;
    let mut types = PayloadTypes::default();
    let mut dirs = [DirTracker::new(), DirTracker::new()];
    let mut holds = HoldTracker::default();
    let mut capturer = Capturer::new(
        opts.align_window_ms as usize * 8,
        CAPTURE_SPACING_NS,
        CAPTURES,
    );
    let mut epochs: [Vec<EpochInfo>; 2] = [Vec::new(), Vec::new()];
    let mut undecodable: Vec<Undecodable> = Vec::new();
    let mut open_undecodable: [Option<Undecodable>; 2] = [None, None];
    let (mut notes, mut unreadable_notes, mut sealed_records) = (0, 0, 0);
    let (mut call, mut end_cause) = (None, None);
    let (mut first_ns, mut last_ns) = (None::<u64>, 0u64);

    while let Some(entry) = stream.next_entry().map_err(journal_err)? {
        match entry {
            Entry::Note { at_unix_ns, json } => {
                notes += 1;
                first_ns.get_or_insert(at_unix_ns);
                last_ns = last_ns.max(at_unix_ns);
                match Note::parse(json) {
                    Some(Note::Call(c)) => call = Some(c),
                    Some(Note::Sdp(sdp)) => {
                        types.sdp(sdp.from, &sdp.payload_types);
                        holds.sdp(at_unix_ns, sdp.from, sdp.direction);
                    }
                    Some(Note::End(end)) => end_cause = Some(end.cause),
                    Some(Note::Other) => {}
                    None => unreadable_notes += 1,
                }
            }
            Entry::Packet {
                arrival_ns,
                direction,
                packet,
            } => {
                first_ns.get_or_insert(arrival_ns);
                last_ns = last_ns.max(arrival_ns);
                let d = dir_index(direction);
                let classified = dirs[d].classify(&types, direction, arrival_ns, packet);
                let (pos, samples) = match &classified {
                    Classified::Audio(pos, law, payload) => {
                        capturer.audio(d, pos, *law, payload, arrival_ns);
                        (pos, Some(payload.len()))
                    }
                    Classified::ComfortNoise(pos) | Classified::Event(pos, ..) => (pos, None),
                    Classified::Undecodable(pt) => {
                        let pt = *pt;
                        match &mut open_undecodable[d] {
                            Some(u)
                                if u.payload_type == pt
                                    && arrival_ns.saturating_sub(u.end_ns)
                                        <= UNDECODABLE_JOIN_NS =>
                            {
                                u.end_ns = arrival_ns;
                                u.packets += 1;
                            }
                            open => {
                                if let Some(done) = open.take() {
                                    undecodable.push(done);
                                }
                                *open = Some(Undecodable {
                                    direction: d,
                                    payload_type: pt,
                                    encoding: types.name(direction, pt).map(str::to_owned),
                                    start_ns: arrival_ns,
                                    end_ns: arrival_ns,
                                    packets: 1,
                                });
                            }
                        }
                        continue;
                    }
                    _ => continue,
                };
                let list = &mut epochs[d];
                if pos.epoch as usize == list.len() {
                    if list.len() == MAX_EPOCHS {
                        return Err(MergeError::TooManyEpochs {
                            direction: DIRECTIONS[d],
                            limit: MAX_EPOCHS,
                        });
                    }
                    list.push(EpochInfo::new(pos, arrival_ns));
                }
                if let Some(epoch) = list.get_mut(pos.epoch as usize) {
                    epoch.packet(pos, arrival_ns, samples);
                }
            }
            Entry::Sealed(segment) => sealed_records += segment.records as u64,
        }
    }
    undecodable.extend(open_undecodable.into_iter().flatten());
    undecodable.sort_by_key(|u| u.start_ns);
    Ok(Scan {
        call_id: stream.call_id().to_owned(),
        tail: stream.tail().unwrap_or(Tail::Unfinished),
        records: stream.records(),
        segments: stream.segments(),
        sealed_records,
        notes,
        unreadable_notes,
        call,
        end_cause,
        holds: holds.finish(last_ns),
        epochs,
        captures: capturer.finish(),
        undecodable,
        first_ns,
    })
}

/// How the cloud's timeline sits on the edge's.
struct Alignment {
    method: AlignMethod,
    offset_ns: i64,
    correlation: Option<f32>,
    ambiguous: bool,
    window: Option<AlignWindow>,
    tried: u32,
    note: Option<String>,
}

/// Step 3: correlates each captured stretch with the cloud channel of the
/// same direction around the sidecar's time; keeps the best.
fn align_cloud(
    scan: &Scan,
    cloud: &CloudRecording,
    cloud_scan: &CloudScan,
    opts: &MergeOptions,
) -> Result<Alignment, MergeError> {
    let started_ns = cloud.sidecar.started_unix_ms.saturating_mul(1_000_000);
    let search = opts.search_ms as usize * 8;
    let mut reader = cloud::open_wav(&cloud.wav)?;
    let mut best: Option<(align::Match, &Capture, i64)> = None;
    let mut tried = 0;
    let mut frames = Vec::new();
    for capture in &scan.captures {
        let Some(epoch) = scan.epochs[capture.direction].get(capture.epoch as usize) else {
            continue;
        };
        let start_ns = epoch.anchor_ns() + capture.base_ts * NS;
        let nominal = round_div(start_ns - started_ns, NS);
        let len = capture.samples.len() + 2 * search;
        let from = nominal - search as i64;
        // The cloud stretch, zeros outside the file.
        let mut stretch = vec![0f32; len];
        let lo = from.max(0);
        let hi = (from + len as i64).min(cloud_scan.frames as i64);
        if lo < hi {
            reader
                .seek_frame(lo as u64)
                .map_err(|source| MergeError::CloudWav {
                    path: cloud.wav.clone(),
                    source,
                })?;
            frames.clear();
            match reader.read_frames(&mut frames, (hi - lo) as usize) {
                Ok(_) | Err(WavError::Truncated { .. }) => {}
                Err(source) => {
                    return Err(MergeError::CloudWav {
                        path: cloud.wav.clone(),
                        source,
                    })
                }
            }
            let ch = capture.direction;
            for (i, pair) in frames.chunks_exact(2).enumerate() {
                stretch[(lo - from) as usize + i] = f32::from(pair[ch]);
            }
        }
        tried += 1;
        let edge: Vec<f32> = capture.samples.iter().map(|&s| f32::from(s)).collect();
        let Some(found) = align::find(&edge, &stretch, search, 0.02) else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, ..)| found.score > b.score) {
            best = Some((found, capture, start_ns));
        }
        if found.score >= 0.9 {
            break;
        }
    }
    let window = |c: &Capture, start_ns: i64| AlignWindow {
        direction: DIRECTIONS[c.direction],
        start_unix_ms: start_ns.div_euclid(1_000_000),
        duration_ms: c.samples.len() as u64 / 8,
    };
    Ok(match best {
        Some((m, c, start_ns)) if m.score >= opts.min_correlation => Alignment {
            method: AlignMethod::Correlation,
            // Cloud frame (nominal + lag) holds the stretch's first sample:
            // the cloud's audio is `lag` samples earlier than its sidecar
            // says.
            offset_ns: -m.lag * NS,
            correlation: Some(m.score),
            ambiguous: m.ambiguous,
            window: Some(window(c, start_ns)),
            tried,
            note: None,
        },
        Some((m, c, start_ns)) => Alignment {
            method: AlignMethod::Timestamp,
            offset_ns: 0,
            correlation: Some(m.score),
            ambiguous: m.ambiguous,
            window: Some(window(c, start_ns)),
            tried,
            note: Some(format!(
                "best correlation {:.2} is below {:.2}: the sidecar's start time is used",
                m.score, opts.min_correlation
            )),
        },
        None => Alignment {
            method: AlignMethod::Timestamp,
            offset_ns: 0,
            correlation: None,
            ambiguous: false,
            window: None,
            tried,
            note: Some(if scan.captures.is_empty() {
                "the edge has no stretch of clear audio to correlate: the sidecar's start time is used".into()
            } else {
                "the cloud is silent where the edge has audio: the sidecar's start time is used"
                    .into()
            }),
        },
    })
}

/// Where everything lands in the merged file, in samples from its start.
struct Timeline {
    /// Wall-clock ns of sample 0.
    t0_ns: i64,
    frames: u64,
    /// Per direction, per epoch: output sample of timestamp 0.
    offsets: [Vec<i64>; 2],
    /// Output sample of cloud frame 0.
    cloud_shift: i64,
    /// Hold periods in output samples, with their report.
    holds: Vec<(i64, i64)>,
}

impl Timeline {
    fn new(
        scan: &Scan,
        cloud: Option<&CloudRecording>,
        cloud_scan: Option<&CloudScan>,
        alignment: Option<&Alignment>,
        opts: &MergeOptions,
    ) -> Result<Self, MergeError> {
        let cloud_origin_ns = cloud.map(|c| {
            c.sidecar.started_unix_ms.saturating_mul(1_000_000)
                + alignment.map_or(0, |a| a.offset_ns)
        });
        // The first and last audio of either source, in wall-clock ns.
        let mut first: Option<i64> = None;
        let mut note = |t: i64| first = Some(first.map_or(t, |f| f.min(t)));
        for epoch in scan.epochs.iter().flatten() {
            if let Some((lo, _)) = epoch.audio {
                note(epoch.anchor_ns() + lo * NS);
            }
        }
        let cloud_audio = cloud_scan.and_then(|s| s.audio);
        if let (Some(origin), Some((lo, _))) = (cloud_origin_ns, cloud_audio) {
            note(origin + lo as i64 * NS);
        }
        let t0_ns = first.unwrap_or_else(|| scan.first_ns.map_or(0, ns));
        let offsets = [0, 1].map(|d| {
            scan.epochs[d]
                .iter()
                .map(|e| round_div(e.anchor_ns() - t0_ns, NS))
                .collect::<Vec<_>>()
        });
        let cloud_shift = cloud_origin_ns.map_or(0, |o| round_div(o - t0_ns, NS));
        let mut end = 0i64;
        for (epochs, offsets) in scan.epochs.iter().zip(&offsets) {
            for (epoch, offset) in epochs.iter().zip(offsets) {
                if let Some((_, hi)) = epoch.audio {
                    end = end.max(offset + hi);
                }
            }
        }
        if let Some((_, hi)) = cloud_audio {
            end = end.max(cloud_shift + hi as i64);
        }
        let frames = end.max(0) as u64;
        let limit = opts.max_duration_s;
        if frames > limit.saturating_mul(u64::from(SAMPLE_RATE)) {
            return Err(MergeError::TooLong {
                seconds: frames / u64::from(SAMPLE_RATE),
                limit,
            });
        }
        let holds = scan
            .holds
            .iter()
            .map(|h| {
                (
                    round_div(ns(h.start_unix_ns) - t0_ns, NS),
                    round_div(ns(h.end_unix_ns) - t0_ns, NS),
                )
            })
            .collect();
        Ok(Timeline {
            t0_ns,
            frames,
            offsets,
            cloud_shift,
            holds,
        })
    }

    fn unix_ms(&self, sample: i64) -> i64 {
        (self.t0_ns + sample * NS).div_euclid(1_000_000)
    }

    fn on_hold(&self, sample: i64) -> bool {
        self.holds.iter().any(|&(s, e)| s <= sample && sample < e)
    }
}

/// What pass 2 produced.
struct Rendered {
    spans: [Vec<SampleSpan>; 2],
    dtmf: Vec<dtmf::Dtmf>,
    packets: [PacketStats; 2],
    sha256: [u8; 32],
}

/// Pass 2 (see the module docs).
fn render(
    path: &Path,
    timeline: &Timeline,
    mut feed: CloudFeed,
    out_wav: &Path,
    opts: &MergeOptions,
) -> Result<Rendered, MergeError> {
    let out_err = |source: WavError| MergeError::Output {
        path: out_wav.to_owned(),
        source,
    };
    let journal_err = |source| MergeError::Journal {
        path: path.to_owned(),
        source,
    };
    let file = File::create(out_wav).map_err(|e| out_err(e.into()))?;
    let mut writer =
        WavWriter::with_frames(BufWriter::with_capacity(1 << 20, file), 2, timeline.frames)
            .map_err(out_err)?;
    let mut stream = open_journal(path)?;
    let lateness = i64::from(opts.max_lateness_ms) * 8;
    let mut window = EdgeWindow::new(lateness as usize + 4 * BLOCK + 60 * 8000);
    let mut types = PayloadTypes::default();
    let mut dirs = [DirTracker::new(), DirTracker::new()];
    let mut seen = [SeqWindow::default(), SeqWindow::default()];
    let mut dtmf = DtmfTracker::default();
    let mut packets = [0, 1].map(|d| PacketStats {
        direction: DIRECTIONS[d],
        ..PacketStats::default()
    });
    let mut spans = [decide::Spans::default(), decide::Spans::default()];
    let mut decoded = Vec::with_capacity(1024);
    let mut out = Block {
        path: out_wav.to_owned(),
        ..Block::default()
    };
    let n_total = timeline.frames as i64;

    while let Some(entry) = stream.next_entry().map_err(journal_err)? {
        let arrival_ns = match entry {
            Entry::Note { at_unix_ns, json } => {
                if let Some(Note::Sdp(sdp)) = Note::parse(json) {
                    types.sdp(sdp.from, &sdp.payload_types);
                }
                at_unix_ns
            }
            Entry::Sealed(_) => continue,
            Entry::Packet {
                arrival_ns,
                direction,
                packet,
            } => {
                let d = dir_index(direction);
                let stats = &mut packets[d];
                stats.records += 1;
                match dirs[d].classify(&types, direction, arrival_ns, packet) {
                    Classified::Audio(pos, law, payload) => {
                        stats.audio += 1;
                        if seen[d].seen(pos.seq.epoch, pos.seq.value) {
                            stats.duplicates += 1;
                        } else if let Some(&offset) = timeline.offsets[d].get(pos.epoch as usize) {
                            decoded.resize(payload.len(), 0);
                            law.decode_into(payload, &mut decoded);
                            let placed = window.place(d, offset + pos.ts, &decoded);
                            stats.late += u64::from(placed.late);
                            stats.ahead += u64::from(placed.ahead);
                            stats.overlapping_samples += placed.overlap as u64;
                        }
                    }
                    Classified::ComfortNoise(_) => stats.comfort_noise += 1,
                    Classified::Event(pos, start_ts, ev) => {
                        stats.telephone_event += 1;
                        if let Some(&offset) = timeline.offsets[d].get(pos.epoch as usize) {
                            let start = offset + pos.ts - i64::from(ev.duration);
                            dtmf.packet(d, pos.ssrc, start_ts, start, ev);
                        }
                    }
                    Classified::Undecodable(_) => stats.undecodable += 1,
                    Classified::Rtcp => stats.rtcp += 1,
                    Classified::NotRtp => stats.not_rtp += 1,
                    Classified::Malformed => stats.malformed += 1,
                }
                arrival_ns
            }
        };
        // Everything older than this arrival minus the allowance is final.
        let ready = (round_div(ns(arrival_ns) - timeline.t0_ns, NS) - lateness).min(n_total);
        while window.base() + BLOCK as i64 <= ready {
            out.flush(
                BLOCK,
                timeline,
                &mut window,
                &mut feed,
                &mut spans,
                &mut writer,
            )?;
        }
    }
    while window.base() < n_total {
        let n = (n_total - window.base()).min(BLOCK as i64) as usize;
        out.flush(n, timeline, &mut window, &mut feed, &mut spans, &mut writer)?;
    }
    let (_, summary) = writer.finish().map_err(out_err)?;
    Ok(Rendered {
        spans: spans.map(decide::Spans::into_vec),
        dtmf: dtmf.finish(),
        packets,
        sha256: summary.sha256.unwrap_or_default(),
    })
}

/// The buffers of one written block.
#[derive(Default)]
struct Block {
    path: PathBuf,
    channels: [Vec<i16>; 2],
    interleaved: Vec<i16>,
}

impl Block {
    /// Decides, writes and drops the next `n` samples of both channels.
    fn flush<W: std::io::Write + std::io::Seek>(
        &mut self,
        n: usize,
        timeline: &Timeline,
        window: &mut EdgeWindow,
        feed: &mut CloudFeed,
        spans: &mut [decide::Spans; 2],
        writer: &mut WavWriter<W>,
    ) -> Result<(), MergeError> {
        let base = window.base();
        let cloud = feed.block(n)?;
        let edge = window.block(n);
        for ch in 0..2 {
            let (edge_values, edge_covered) = edge[ch];
            let (cloud_values, cloud_audio) = cloud[ch];
            let out = &mut self.channels[ch];
            out.clear();
            out.resize(n, 0);
            for f in (0..n).step_by(FRAME as usize) {
                let len = (n - f).min(FRAME as usize);
                let (mut edge_n, mut cloud_n) = (0u16, 0u16);
                for i in f..f + len {
                    if edge_covered[i] {
                        out[i] = edge_values[i];
                        edge_n += 1;
                    } else if cloud_audio[i] {
                        out[i] = cloud_values[i];
                        cloud_n += 1;
                    }
                }
                let frame = FrameAvailability {
                    samples: len as u16,
                    edge: edge_n,
                    cloud_only: cloud_n,
                    on_hold: timeline.on_hold(base + f as i64),
                };
                spans[ch].push(decide(&frame), (base + f as i64) as u64, len as u64);
            }
        }
        self.interleaved.clear();
        self.interleaved.extend(
            self.channels[0]
                .iter()
                .zip(&self.channels[1])
                .flat_map(|(&a, &b)| [a, b]),
        );
        writer
            .write_frames(&self.interleaved)
            .map_err(|source| MergeError::Output {
                path: self.path.clone(),
                source,
            })?;
        window.advance(n);
        feed.advance(n);
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    journal: &Path,
    out_wav: &Path,
    scan: Scan,
    cloud: Option<&CloudRecording>,
    cloud_scan: Option<CloudScan>,
    alignment: Option<Alignment>,
    timeline: &Timeline,
    rendered: Rendered,
) -> MergeReport {
    let mut warnings = Vec::new();
    let (tail, lost_bytes) = match scan.tail {
        Tail::Complete => ("complete", 0),
        Tail::Unfinished => ("unfinished", 0),
        Tail::TornTail { lost_bytes, .. } => {
            warnings.push(format!(
                "the journal's tail is torn: {lost_bytes} bytes after the last whole record were lost"
            ));
            ("torn_tail", lost_bytes)
        }
    };
    let span = |s: &SampleSpan| Span {
        source: s.source,
        start_ms: s.start / 8,
        end_ms: s.end / 8,
        start_unix_ms: timeline.unix_ms(s.start as i64),
        end_unix_ms: timeline.unix_ms(s.end as i64),
    };
    let channels = [0usize, 1]
        .map(|ch| {
            let spans: Vec<Span> = rendered.spans[ch].iter().map(span).collect();
            let ms = |source| {
                rendered.spans[ch]
                    .iter()
                    .filter(|s| s.source == source)
                    .map(|s| (s.end - s.start) / 8)
                    .sum()
            };
            ChannelReport {
                channel: ch as u16,
                direction: DIRECTIONS[ch],
                gaps: spans
                    .iter()
                    .filter(|s| s.source == Source::Gap)
                    .copied()
                    .collect(),
                spans,
                edge_ms: ms(Source::Edge),
                cloud_ms: ms(Source::Cloud),
                gap_ms: ms(Source::Gap),
                hold_ms: ms(Source::Hold),
            }
        })
        .to_vec();
    let cloud_report = match (cloud, cloud_scan, alignment) {
        (Some(c), Some(s), Some(a)) => {
            if s.truncated {
                warnings.push("the cloud WAV ends before the length its header gives".into());
            }
            if c.sidecar.call_id != scan.call_id {
                warnings.push(format!(
                    "the cloud sidecar's Call-ID {:?} differs from the journal's {:?}",
                    c.sidecar.call_id, scan.call_id
                ));
            }
            if let Some(note) = &a.note {
                warnings.push(note.clone());
            }
            Some(CloudReport {
                path: c.wav.display().to_string(),
                call_id: c.sidecar.call_id.clone(),
                started_unix_ms: c.sidecar.started_unix_ms,
                frames: s.frames,
                truncated: s.truncated,
                method: a.method,
                offset_ms: a.offset_ns as f64 / 1e6,
                correlation: a.correlation,
                ambiguous: a.ambiguous,
                window: a.window,
                stretches_tried: a.tried,
                note: a.note,
                audio_ms: s.audio_frames.map(|f| f / 8),
            })
        }
        _ => None,
    };
    if scan.unreadable_notes > 0 {
        warnings.push(format!(
            "{} notes are not JSON of a known shape",
            scan.unreadable_notes
        ));
    }
    let holds = scan
        .holds
        .iter()
        .zip(&timeline.holds)
        .map(|(h, &(start, end))| HoldReport {
            by: h.by,
            direction: h.direction,
            start_unix_ms: ns(h.start_unix_ns).div_euclid(1_000_000),
            end_unix_ms: ns(h.end_unix_ns).div_euclid(1_000_000),
            start_ms: start.div_euclid(8),
            end_ms: end.div_euclid(8),
            ended_by_sdp: h.ended_by_sdp,
        })
        .collect();
    let dtmf = rendered
        .dtmf
        .iter()
        .map(|e| DtmfReport {
            direction: DIRECTIONS[e.direction],
            event: e.event,
            digit: dtmf::digit(e.event),
            start_ms: e.start.div_euclid(8),
            start_unix_ms: timeline.unix_ms(e.start),
            duration_ms: u64::from(e.duration) / 8,
            end: e.end,
            volume: e.volume,
            packets: e.packets,
        })
        .collect();
    let mut epochs = Vec::new();
    for (d, direction) in DIRECTIONS.into_iter().enumerate() {
        for (i, e) in scan.epochs[d].iter().enumerate() {
            epochs.push(EpochReport {
                direction,
                epoch: i as u32,
                ssrc: e.ssrc,
                cause: match e.started {
                    EpochStart::First => "first",
                    EpochStart::NewSsrc => "new_ssrc",
                    EpochStart::Jump => "jump",
                },
                first_arrival_unix_ms: ns(e.first_arrival_ns).div_euclid(1_000_000),
                audio_start_ms: e
                    .audio
                    .map(|(lo, _)| (timeline.offsets[d][i] + lo).div_euclid(8)),
                packets: e.packets,
            });
        }
    }
    let undecodable = scan
        .undecodable
        .iter()
        .map(|u| UndecodableReport {
            direction: DIRECTIONS[u.direction],
            payload_type: u.payload_type,
            encoding: u.encoding.clone(),
            start_unix_ms: ns(u.start_ns).div_euclid(1_000_000),
            end_unix_ms: ns(u.end_ns).div_euclid(1_000_000),
            packets: u.packets,
        })
        .collect();
    let frames = timeline.frames;
    MergeReport {
        call_id: scan.call_id,
        call: scan.call,
        end_cause: scan.end_cause,
        output: OutputReport {
            path: out_wav.display().to_string(),
            sample_rate: SAMPLE_RATE,
            channels: DIRECTIONS,
            frames,
            duration_ms: frames / 8,
            start_unix_ms: timeline.unix_ms(0),
            end_unix_ms: timeline.unix_ms(frames as i64),
            sha256: hex(&rendered.sha256),
        },
        journal: JournalReport {
            path: journal.display().to_string(),
            tail,
            lost_bytes,
            records: scan.records,
            segments: scan.segments,
            unsealed_records: scan.records - scan.sealed_records,
            notes: scan.notes,
            unreadable_notes: scan.unreadable_notes,
        },
        cloud: cloud_report,
        channels,
        holds,
        dtmf,
        epochs,
        undecodable,
        packets: rendered.packets.to_vec(),
        warnings,
    }
}
