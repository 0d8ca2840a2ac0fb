//! The cloud recording as the merge reads it (SPEC R2): a 2-channel 8 kHz
//! WAV (channel 0 what the cloud received, = edge a→b; channel 1 what it
//! sent, = edge b→a) and its sidecar giving the wall-clock time of the first
//! sample. Across a media-server handover the provider's file holds 15–20 s
//! of digital silence: an all-zero run of 200 ms or more is "no audio"
//! ([`SilenceGate`]), so it never fills a hole in the edge recording.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Channels, MergeError};
use crate::wav::{WavError, WavReader, SAMPLE_RATE};

/// The sidecar JSON next to a cloud WAV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudSidecar {
    pub call_id: String,
    /// Wall-clock time of the WAV's first sample, ms since the Unix epoch.
    pub started_unix_ms: i64,
    pub sample_rate: u32,
    /// Must be `["received", "sent"]`.
    pub channels: Vec<String>,
}

/// A cloud recording: the WAV and its sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudRecording {
    pub wav: PathBuf,
    pub sidecar: CloudSidecar,
}

impl CloudRecording {
    /// Reads the sidecar at `sidecar` for the WAV at `wav` and checks it.
    pub fn open(wav: &Path, sidecar: &Path) -> Result<Self, MergeError> {
        let bad = |what: String| MergeError::CloudSidecar {
            path: sidecar.to_owned(),
            what,
        };
        let bytes = std::fs::read(sidecar).map_err(|e| bad(e.to_string()))?;
        let parsed: CloudSidecar =
            serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        Self::new(wav.to_owned(), parsed).map_err(|e| match e {
            MergeError::CloudSidecar { what, .. } => bad(what),
            other => other,
        })
    }

    /// A recording whose sidecar is already read; checks rate and channels.
    pub fn new(wav: PathBuf, sidecar: CloudSidecar) -> Result<Self, MergeError> {
        let bad = |what: String| MergeError::CloudSidecar {
            path: wav.with_extension("json"),
            what,
        };
        if sidecar.sample_rate != SAMPLE_RATE {
            return Err(bad(format!(
                "sample_rate {}, expected {SAMPLE_RATE}",
                sidecar.sample_rate
            )));
        }
        if sidecar.channels != ["received", "sent"] {
            return Err(bad(format!(
                "channels {:?}, expected [\"received\", \"sent\"]",
                sidecar.channels
            )));
        }
        Ok(CloudRecording { wav, sidecar })
    }
}

/// Marks a channel's samples as audio or not: zeros in a run of at least
/// `min_run` samples are not audio; shorter zero runs (a zero crossing, a
/// pause inside speech) are. Decisions lag the input by less than
/// `min_run` samples.
#[derive(Debug, Clone)]
pub struct SilenceGate {
    min_run: u64,
    /// Zeros seen and not yet decided.
    pending: u64,
    in_long_run: bool,
}

impl SilenceGate {
    pub fn new(min_run: u64) -> Self {
        SilenceGate {
            min_run: min_run.max(1),
            pending: 0,
            in_long_run: false,
        }
    }

    /// Takes `samples` and appends the decisions it can make to `audio`.
    pub fn push(&mut self, samples: &[i16], audio: &mut Vec<bool>) {
        for &s in samples {
            if s != 0 {
                if self.pending > 0 {
                    audio.extend(std::iter::repeat_n(true, self.pending as usize));
                    self.pending = 0;
                }
                self.in_long_run = false;
                audio.push(true);
            } else if self.in_long_run {
                audio.push(false);
            } else {
                self.pending += 1;
                if self.pending >= self.min_run {
                    audio.extend(std::iter::repeat_n(false, self.pending as usize));
                    self.pending = 0;
                    self.in_long_run = true;
                }
            }
        }
    }

    /// The end of the samples: a short zero run left is audio.
    pub fn finish(&mut self, audio: &mut Vec<bool>) {
        audio.extend(std::iter::repeat_n(true, self.pending as usize));
        self.pending = 0;
        self.in_long_run = false;
    }
}

/// Frames read at a time.
const CHUNK: usize = 8192;

pub(crate) fn open_wav(path: &Path) -> Result<WavReader<BufReader<File>>, MergeError> {
    let wrap = |source: WavError| MergeError::CloudWav {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(|e| wrap(e.into()))?;
    let reader = WavReader::new(BufReader::with_capacity(1 << 16, file)).map_err(wrap)?;
    if reader.channels() != 2 {
        return Err(wrap(WavError::WrongChannels {
            channels: reader.channels(),
        }));
    }
    Ok(reader)
}

/// What a first pass over the cloud WAV found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CloudScan {
    /// Whole frames in the file.
    pub frames: u64,
    /// The file ends before its header's length.
    pub truncated: bool,
    /// First and last+1 frame with audio in either channel.
    pub audio: Option<(u64, u64)>,
    /// Frames with audio, per channel.
    pub audio_frames: [u64; 2],
}

/// Notes the audio among `flags`, the decisions for frames from `at` on.
fn note_audio(ch: usize, at: u64, flags: &[bool], out: &mut CloudScan) {
    if let Some(first) = flags.iter().position(|&a| a) {
        let last = flags.iter().rposition(|&a| a).unwrap_or(first);
        let (lo, hi) = (at + first as u64, at + last as u64 + 1);
        out.audio = Some(match out.audio {
            Some((a, b)) => (a.min(lo), b.max(hi)),
            None => (lo, hi),
        });
        out.audio_frames[ch] += flags.iter().filter(|&&a| a).count() as u64;
    }
}

/// Reads the whole WAV once, in chunks: its length and where its audio is.
pub(crate) fn scan(path: &Path, min_run: u64) -> Result<CloudScan, MergeError> {
    let mut reader = open_wav(path)?;
    let mut gates = [SilenceGate::new(min_run), SilenceGate::new(min_run)];
    let mut decided: [Vec<bool>; 2] = [Vec::new(), Vec::new()];
    // Index of decided[ch][0] in frames.
    let mut decided_at = [0u64; 2];
    let mut out = CloudScan::default();
    let mut interleaved = Vec::with_capacity(2 * CHUNK);
    let mut channel = Vec::with_capacity(CHUNK);
    loop {
        interleaved.clear();
        let n = match reader.read_frames(&mut interleaved, CHUNK) {
            Ok(n) => n,
            Err(WavError::Truncated { .. }) => {
                out.truncated = true;
                0
            }
            Err(source) => {
                return Err(MergeError::CloudWav {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        for ch in 0..2 {
            channel.clear();
            channel.extend(interleaved.iter().skip(ch).step_by(2));
            if n == 0 {
                gates[ch].finish(&mut decided[ch]);
            } else {
                gates[ch].push(&channel, &mut decided[ch]);
            }
            note_audio(ch, decided_at[ch], &decided[ch], &mut out);
            decided_at[ch] += decided[ch].len() as u64;
            decided[ch].clear();
        }
        out.frames += n as u64;
        if n == 0 {
            return Ok(out);
        }
    }
}

/// The cloud's samples and audio flags along the merged timeline, read
/// ahead only as far as the silence gates need (less than their `min_run`
/// past the block asked for): output sample `s` is cloud frame `s - shift`;
/// outside the file there is no audio.
pub(crate) struct CloudFeed {
    reader: Option<WavReader<BufReader<File>>>,
    path: PathBuf,
    shift: i64,
    frames: u64,
    gates: [SilenceGate; 2],
    /// Output index of `values[ch][0]` and `audio[ch][0]`.
    base: i64,
    values: [Vec<i16>; 2],
    /// Decided flags; per channel they may lag `values` by the gate's
    /// pending zeros.
    audio: [Vec<bool>; 2],
    /// Output index of the next sample to read or pad.
    next: i64,
    finished: bool,
    interleaved: Vec<i16>,
    channel: Vec<i16>,
}

impl CloudFeed {
    /// A feed with no cloud recording: no audio anywhere.
    pub(crate) fn none() -> Self {
        Self::with(None, PathBuf::new(), 0, 0, 1)
    }

    /// Cloud frame 0 lands on output sample `shift`; the file has `frames`
    /// whole frames (as the scan found).
    pub(crate) fn open(
        path: &Path,
        shift: i64,
        frames: u64,
        min_run: u64,
    ) -> Result<Self, MergeError> {
        let reader = open_wav(path)?;
        let mut feed = Self::with(Some(reader), path.to_owned(), shift, frames, min_run);
        // Frames before output sample 0 only feed the gates (a zero run
        // that started before the merged file does not restart at it).
        feed.base = shift.min(0);
        feed.next = feed.base;
        while feed.base < 0 {
            let n = (-feed.base).min(CHUNK as i64) as usize;
            feed.block(n)?;
            feed.advance(n);
        }
        Ok(feed)
    }

    fn with(
        reader: Option<WavReader<BufReader<File>>>,
        path: PathBuf,
        shift: i64,
        frames: u64,
        min_run: u64,
    ) -> Self {
        CloudFeed {
            reader,
            path,
            shift,
            frames,
            gates: [SilenceGate::new(min_run), SilenceGate::new(min_run)],
            base: 0,
            values: [Vec::new(), Vec::new()],
            audio: [Vec::new(), Vec::new()],
            next: 0,
            finished: false,
            interleaved: Vec::with_capacity(2 * CHUNK),
            channel: Vec::with_capacity(CHUNK),
        }
    }

    /// Output index up to which both channels' flags are decided.
    fn decided(&self) -> i64 {
        self.base + self.audio[0].len().min(self.audio[1].len()) as i64
    }

    /// Reads until the audio flags reach output sample `upto` (exclusive).
    fn fill(&mut self, upto: i64) -> Result<(), MergeError> {
        while self.decided() < upto {
            let frame = self.next - self.shift;
            if self.reader.is_none() || frame < 0 {
                // No cloud, or not yet: no audio, and the gates are fresh.
                let stop = match self.reader {
                    None => upto,
                    Some(_) => upto.min(self.shift),
                };
                self.pad(stop - self.next);
            } else if frame >= self.frames as i64 || self.finished {
                if !self.finished {
                    for ch in 0..2 {
                        self.gates[ch].finish(&mut self.audio[ch]);
                    }
                    self.finished = true;
                }
                self.pad(upto - self.next);
            } else {
                let want = (self.frames as i64 - frame).min(CHUNK as i64) as usize;
                self.interleaved.clear();
                let read = match self.reader.as_mut() {
                    Some(r) => r.read_frames(&mut self.interleaved, want),
                    None => Ok(0),
                };
                let n = match read {
                    Ok(n) => n,
                    // The scan saw the same end; stop here as it did.
                    Err(WavError::Truncated { .. }) => 0,
                    Err(source) => {
                        return Err(MergeError::CloudWav {
                            path: self.path.clone(),
                            source,
                        })
                    }
                };
                if n == 0 {
                    self.frames = frame as u64;
                    continue;
                }
                for ch in 0..2 {
                    self.channel.clear();
                    self.channel
                        .extend(self.interleaved.iter().skip(ch).step_by(2));
                    self.values[ch].extend_from_slice(&self.channel);
                    self.gates[ch].push(&self.channel, &mut self.audio[ch]);
                }
                self.next += n as i64;
            }
        }
        Ok(())
    }

    /// `n` samples with no cloud audio; only where no gate has zeros
    /// pending, so values and flags stay in step.
    fn pad(&mut self, n: i64) {
        let n = n.max(0) as usize;
        for ch in 0..2 {
            self.values[ch].resize(self.values[ch].len() + n, 0);
            self.audio[ch].resize(self.audio[ch].len() + n, false);
        }
        self.next += n as i64;
    }

    /// The cloud's samples and audio flags for output `[base, base + n)`.
    pub(crate) fn block(&mut self, n: usize) -> Result<Channels<'_>, MergeError> {
        self.fill(self.base + n as i64)?;
        let [v0, v1] = &self.values;
        let [a0, a1] = &self.audio;
        Ok([(&v0[..n], &a0[..n]), (&v1[..n], &a1[..n])])
    }

    /// Drops the first `n` samples (written out).
    pub(crate) fn advance(&mut self, n: usize) {
        for ch in 0..2 {
            self.values[ch].drain(..n);
            self.audio[ch].drain(..n);
        }
        self.base += n as i64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(samples: &[i16], min_run: u64) -> Vec<bool> {
        let mut g = SilenceGate::new(min_run);
        let mut out = Vec::new();
        // In two pieces, to cross a push boundary.
        let (a, b) = samples.split_at(samples.len() / 3);
        g.push(a, &mut out);
        g.push(b, &mut out);
        g.finish(&mut out);
        assert_eq!(out.len(), samples.len());
        out
    }

    #[test]
    fn a_long_zero_run_is_not_audio_r2() {
        // 200 ms at 8 kHz is 1600 samples: the provider's handover silence.
        let mut s = vec![100i16; 1000];
        s.extend(vec![0; 1600]);
        s.extend(vec![-100; 1000]);
        let a = gate(&s, 1600);
        assert!(a[..1000].iter().all(|&x| x));
        assert!(a[1000..2600].iter().all(|&x| !x));
        assert!(a[2600..].iter().all(|&x| x));
    }

    #[test]
    fn short_zero_runs_are_audio_r2() {
        // Zero crossings and 199 ms pauses inside speech stay audio.
        let mut s = vec![5i16, 0, -5, 0, 0, 7];
        s.extend(vec![0; 1599]);
        s.push(3);
        s.extend(vec![0; 10]); // at the very end: still short
        assert!(gate(&s, 1600).iter().all(|&x| x));
    }
}
