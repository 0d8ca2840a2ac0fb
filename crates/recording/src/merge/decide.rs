//! Which source fills each 20 ms frame of a channel (SPEC R2, R5). Pure:
//! the merge counts, per frame, the samples the edge has and the samples
//! only the cloud has, and asks [`decide`]; [`Spans`] joins equal decisions
//! into the spans the report lists.
//!
//! The rules: the edge wherever it has packets; else the cloud where it has
//! real audio (its all-zero runs of 200 ms or more are not audio, see
//! [`SilenceGate`](super::cloud::SilenceGate)); else nothing, which is a
//! gap, or hold when SDP said the call was on hold (R5: never from silence).
//! Samples are taken the same way one by one (edge, else cloud, else
//! silence); the frame's label is what most of it is, and a frame at least
//! half without audio is listed as a gap, so a gap is never hidden by
//! rounding (R2: nothing invented, every gap listed).

use serde::Serialize;

/// Samples per frame: 20 ms at 8 kHz.
pub const FRAME: u64 = 160;

/// Where a span's audio comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The edge journal's packets (SPEC R1).
    Edge,
    /// The cloud recording, where the edge has no packets.
    Cloud,
    /// Neither source has audio: written as silence, listed as a gap.
    Gap,
    /// Neither source has audio while SDP put the call on hold (R5).
    Hold,
}

/// What one frame of one channel has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameAvailability {
    /// The frame's length in samples ([`FRAME`], less at the file's end).
    pub samples: u16,
    /// Samples the edge has (decoded packets).
    pub edge: u16,
    /// Samples the edge lacks and the cloud has as real audio.
    pub cloud_only: u16,
    /// SDP had the call on hold at the frame's start (R5).
    pub on_hold: bool,
}

impl FrameAvailability {
    /// A whole frame that the edge has or not, and the cloud has or not.
    pub fn whole(edge: bool, cloud: bool, on_hold: bool) -> Self {
        let samples = FRAME as u16;
        FrameAvailability {
            samples,
            edge: if edge { samples } else { 0 },
            cloud_only: if cloud && !edge { samples } else { 0 },
            on_hold,
        }
    }
}

/// The source a frame is listed under.
pub fn decide(f: &FrameAvailability) -> Source {
    let without = f
        .samples
        .saturating_sub(f.edge.saturating_add(f.cloud_only));
    if 2 * u32::from(without) >= u32::from(f.samples) {
        if f.on_hold {
            Source::Hold
        } else {
            Source::Gap
        }
    } else if f.edge >= f.cloud_only {
        Source::Edge
    } else {
        Source::Cloud
    }
}

/// A run of samples from one source: `start..end` in samples from the
/// merged file's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleSpan {
    pub source: Source,
    pub start: u64,
    pub end: u64,
}

/// Joins consecutive frames of the same source.
#[derive(Debug, Default)]
pub struct Spans {
    spans: Vec<SampleSpan>,
}

impl Spans {
    /// Adds `len` samples at `start` (the end of the previous ones).
    pub fn push(&mut self, source: Source, start: u64, len: u64) {
        match self.spans.last_mut() {
            Some(last) if last.source == source && last.end == start => last.end += len,
            _ => self.spans.push(SampleSpan {
                source,
                start,
                end: start + len,
            }),
        }
    }

    pub fn into_vec(self) -> Vec<SampleSpan> {
        self.spans
    }
}

/// The spans of a channel whose frames, from sample 0, have `frames`.
pub fn plan(frames: &[FrameAvailability]) -> Vec<SampleSpan> {
    let mut spans = Spans::default();
    let mut at = 0;
    for f in frames {
        spans.push(decide(f), at, u64::from(f.samples));
        at += u64::from(f.samples);
    }
    spans.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames from a script: `e` edge, `c` cloud only, `b` both, `.`
    /// neither; upper case (and `h` for neither) while SDP has the call on
    /// hold.
    fn frames(script: &str) -> Vec<FrameAvailability> {
        script
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| {
                let hold = c.is_ascii_uppercase() || c == 'h';
                match c.to_ascii_lowercase() {
                    'e' => FrameAvailability::whole(true, false, hold),
                    'c' => FrameAvailability::whole(false, true, hold),
                    'b' => FrameAvailability::whole(true, true, hold),
                    '.' | 'h' => FrameAvailability::whole(false, false, hold),
                    other => panic!("bad script char {other}"),
                }
            })
            .collect()
    }

    /// The spans as "source frames" pairs.
    fn check(script: &str, expected: &str) {
        let spans = plan(&frames(script));
        let got: Vec<String> = spans
            .iter()
            .map(|s| format!("{:?}:{}", s.source, (s.end - s.start) / FRAME))
            .collect();
        assert_eq!(got.join(" "), expected, "script {script}");
    }

    #[test]
    fn edge_only_is_one_edge_span_r2() {
        check("eeeeeeeeee", "Edge:10");
        // The edge wins wherever it has packets, even where the cloud has
        // audio too.
        check("bbbbbeeeee", "Edge:10");
    }

    #[test]
    fn cloud_fills_an_edge_hole_r2() {
        check("bbbbccccbbbb", "Edge:4 Cloud:4 Edge:4");
    }

    #[test]
    fn neither_is_a_listed_gap_r2() {
        check("ee....ee", "Edge:2 Gap:4 Edge:2");
        check("....", "Gap:4");
    }

    #[test]
    fn hold_only_from_sdp_r5() {
        // No audio while SDP says hold: hold. The same silence without a
        // hold note: a gap (media loss is never hold).
        check("ee....ee", "Edge:2 Gap:4 Edge:2");
        check("eEhhhhee", "Edge:2 Hold:4 Edge:2");
        // Music on hold is audio: listed by its source, not as hold.
        check("eEEEEe", "Edge:6");
    }

    #[test]
    fn partial_frames_r2() {
        let f = |edge, cloud_only| FrameAvailability {
            samples: 160,
            edge,
            cloud_only,
            on_hold: false,
        };
        // Half or more without audio: listed as a gap, never hidden.
        assert_eq!(decide(&f(80, 0)), Source::Gap);
        assert_eq!(decide(&f(81, 0)), Source::Edge);
        assert_eq!(decide(&f(40, 60)), Source::Cloud);
        assert_eq!(decide(&f(60, 60)), Source::Edge);
        // The last frame of a file may be short.
        let short = FrameAvailability {
            samples: 10,
            edge: 10,
            cloud_only: 0,
            on_hold: false,
        };
        assert_eq!(decide(&short), Source::Edge);
    }
}
