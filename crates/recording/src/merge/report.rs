//! What a merge did, for the manifest and for people (SPEC R2, R3, R5, V3):
//! every span of each channel with its source, the gaps, how the cloud was
//! aligned, holds, DTMF, stream epochs (handovers), packet counts and the
//! merged file's SHA-256. Times are given twice: ms from the merged file's
//! start, and ms since the Unix epoch.

use serde::Serialize;

use super::decide::Source;
use super::notes::{CallNote, Leg, SdpDirection};

/// The merge's report.
#[derive(Debug, Clone, Serialize)]
pub struct MergeReport {
    pub call_id: String,
    /// The recorder's call note: trunk, group, media and failover region
    /// (V3); `None` if the journal has none.
    pub call: Option<CallNote>,
    /// From the end note: bye, timeout, cancel, error.
    pub end_cause: Option<String>,
    pub output: OutputReport,
    pub journal: JournalReport,
    pub cloud: Option<CloudReport>,
    /// Channel 0 (a→b), then channel 1 (b→a).
    pub channels: Vec<ChannelReport>,
    /// From SDP only (R5).
    pub holds: Vec<HoldReport>,
    /// From the edge's telephone-event packets (R5), by start.
    pub dtmf: Vec<DtmfReport>,
    /// Stream epochs per direction: the first, then each new SSRC or
    /// timestamp jump (a media server's handover).
    pub epochs: Vec<EpochReport>,
    /// Packets of codecs the merge does not decode, by arrival time; their
    /// audio is not invented (R2): the cloud or a gap covers them.
    pub undecodable: Vec<UndecodableReport>,
    /// Per direction.
    pub packets: Vec<PacketStats>,
    /// Things a reader should know: a torn journal tail, a fallback
    /// alignment, a cloud file shorter than its header, another Call-ID.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputReport {
    pub path: String,
    pub sample_rate: u32,
    /// `["a_to_b", "b_to_a"]`.
    pub channels: [&'static str; 2],
    pub frames: u64,
    pub duration_ms: u64,
    /// Wall-clock time of the first sample (the first audio of either
    /// source), and of the end.
    pub start_unix_ms: i64,
    pub end_unix_ms: i64,
    /// SHA-256 of the whole file, lowercase hex.
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct JournalReport {
    pub path: String,
    /// `complete`, `unfinished` or `torn_tail`.
    pub tail: &'static str,
    /// Bytes a torn tail lost.
    pub lost_bytes: u64,
    pub records: u64,
    pub segments: u64,
    /// Records after the last seal: CRC-checked but not in the chain.
    pub unsealed_records: u64,
    pub notes: u64,
    /// Notes that are not JSON of a known shape.
    pub unreadable_notes: u64,
}

/// How the cloud's timeline was aligned with the edge's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlignMethod {
    /// Cross-correlation found the offset confidently.
    Correlation,
    /// The sidecar's start time alone (no confident correlation).
    Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct CloudReport {
    pub path: String,
    pub call_id: String,
    /// The sidecar's time of the first sample.
    pub started_unix_ms: i64,
    /// Whole frames read.
    pub frames: u64,
    /// The file ends before its header's length.
    pub truncated: bool,
    pub method: AlignMethod,
    /// Correction applied to the sidecar's time: the cloud's first sample
    /// is at `started_unix_ms + offset_ms`. Written in thousandths of a ms
    /// (`offset_ms_milli`): the manifest holds integers only (RFC 8785
    /// without floats).
    #[serde(rename = "offset_ms_milli", serialize_with = "milli")]
    pub offset_ms: f64,
    /// The best normalized cross-correlation found (−1 to 1), if any
    /// stretch could be correlated; written in thousandths
    /// (`correlation_milli`).
    #[serde(rename = "correlation_milli", serialize_with = "milli_opt")]
    pub correlation: Option<f32>,
    /// The best match had rivals (a periodic signal); the one nearest the
    /// sidecar's time was kept.
    pub ambiguous: bool,
    /// The stretch the correlation used.
    pub window: Option<AlignWindow>,
    /// Stretches tried.
    pub stretches_tried: u32,
    /// Why the method is `timestamp`, when it is.
    pub note: Option<String>,
    /// Frames with real audio (not in a ≥ 200 ms zero run) per channel.
    pub audio_ms: [u64; 2],
}

#[derive(Debug, Clone, Serialize)]
pub struct AlignWindow {
    pub direction: &'static str,
    pub start_unix_ms: i64,
    pub duration_ms: u64,
}

/// A run of one channel from one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    pub source: Source,
    pub start_ms: u64,
    pub end_ms: u64,
    pub start_unix_ms: i64,
    pub end_unix_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChannelReport {
    pub channel: u16,
    /// `a_to_b` or `b_to_a`.
    pub direction: &'static str,
    /// The whole channel, start to end, in order.
    pub spans: Vec<Span>,
    /// The spans whose source is `gap` (R2: listed, nothing invented).
    pub gaps: Vec<Span>,
    pub edge_ms: u64,
    pub cloud_ms: u64,
    pub gap_ms: u64,
    pub hold_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HoldReport {
    pub by: Leg,
    pub direction: SdpDirection,
    pub start_unix_ms: i64,
    pub end_unix_ms: i64,
    /// Relative to the merged file's start; may be negative or past its end.
    pub start_ms: i64,
    pub end_ms: i64,
    /// False when the call ended on hold.
    pub ended_by_sdp: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DtmfReport {
    pub direction: &'static str,
    /// RFC 4733 event code.
    pub event: u8,
    /// "0"–"9", "*", "#", "A"–"D", "flash".
    pub digit: String,
    pub start_ms: i64,
    pub start_unix_ms: i64,
    pub duration_ms: u64,
    /// An end packet was seen.
    pub end: bool,
    pub volume: u8,
    /// Packets of the event, retransmissions included.
    pub packets: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct EpochReport {
    pub direction: &'static str,
    pub epoch: u32,
    pub ssrc: u32,
    /// `first`, `new_ssrc` or `jump`.
    pub cause: &'static str,
    pub first_arrival_unix_ms: i64,
    /// Where its audio starts in the merged file, if it has audio.
    pub audio_start_ms: Option<i64>,
    pub packets: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct UndecodableReport {
    pub direction: &'static str,
    pub payload_type: u8,
    /// From the SDP notes or RFC 3551's static table, if known.
    pub encoding: Option<String>,
    pub start_unix_ms: i64,
    pub end_unix_ms: i64,
    pub packets: u64,
}

/// Packet counts of one direction.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PacketStats {
    pub direction: &'static str,
    /// Journal records of this direction.
    pub records: u64,
    pub audio: u64,
    pub comfort_noise: u64,
    pub telephone_event: u64,
    pub undecodable: u64,
    pub rtcp: u64,
    /// Not RTP or RTCP (STUN, DTLS…).
    pub not_rtp: u64,
    /// RTP that does not parse.
    pub malformed: u64,
    /// Audio packets with a sequence number already seen.
    pub duplicates: u64,
    /// Audio packets arriving after their place was written out (more than
    /// the lateness allowance behind).
    pub late: u64,
    /// Audio packets whose timestamp is further ahead of their arrival than
    /// the window holds; dropped.
    pub ahead: u64,
    /// Samples a packet offered where another packet's were already.
    pub overlapping_samples: u64,
}

/// A measurement with a fraction as an integer count of thousandths.
fn milli<S: serde::Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64((value * 1000.0).round() as i64)
}

fn milli_opt<S: serde::Serializer>(value: &Option<f32>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => milli(&f64::from(*v), s),
        None => s.serialize_none(),
    }
}
