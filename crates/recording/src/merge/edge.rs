//! The edge journal's packets on the merged timeline (SPEC R1, R2).
//!
//! Both passes over the journal classify every packet the same way
//! ([`DirTracker`]): the payload type through the SDP notes seen so far,
//! then the extended sequence number and timestamp of `rtp.rs`, whose
//! epochs change with a new SSRC or a jump (a media server's handover).
//!
//! Placement: within an epoch a sample's place is its RTP timestamp plus
//! the epoch's anchor, the smallest (arrival − timestamp) of its audio
//! packets, i.e. the least-delayed packet. So jitter never moves audio, and
//! no packet lands after its own arrival time, which is what lets the
//! second pass write out everything older than the latest arrival minus
//! the lateness allowance.

use crate::g711::Law;
use crate::journal::Direction;
use crate::rtp::{classify, EpochStart, Extended, PacketKind, RtpPacket, SeqUnwrap, TsUnwrap};

use super::dtmf::TelephoneEvent;
use super::notes::{PayloadKind, PayloadTypes};
use super::Channels;

/// Nanoseconds per sample at 8 kHz.
pub(crate) const NS: i64 = 125_000;

/// `x / d` rounded half up (exact for multiples).
pub(crate) fn round_div(x: i64, d: i64) -> i64 {
    (x + d / 2).div_euclid(d)
}

/// A time in ns since the Unix epoch as i64 (saturating).
pub(crate) fn ns(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// Where a packet is in its stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamPos {
    pub ssrc: u32,
    /// The timestamp epoch: placement is per epoch.
    pub epoch: u32,
    pub started: Option<EpochStart>,
    /// For duplicate detection.
    pub seq: Extended,
    /// Extended timestamp (of the packet's current media time: for a
    /// telephone-event, its start plus its duration).
    pub ts: i64,
}

/// A packet as the merge sees it.
pub(crate) enum Classified<'a> {
    Audio(StreamPos, Law, &'a [u8]),
    ComfortNoise(StreamPos),
    /// Position, the raw start timestamp, the event.
    Event(StreamPos, u32, TelephoneEvent),
    Undecodable(u8),
    Rtcp,
    NotRtp,
    Malformed,
}

/// One direction's counters; the same packets in the same order give the
/// same epochs in both passes.
pub(crate) struct DirTracker {
    seq: SeqUnwrap,
    ts: TsUnwrap,
}

impl DirTracker {
    pub(crate) fn new() -> Self {
        DirTracker {
            seq: SeqUnwrap::default(),
            // One second of skew: jitter and reordering stay in an epoch; a
            // handover's fresh timestamp or a sender that paused its clock
            // starts a new one, anchored by arrival.
            ts: TsUnwrap::new(8000, 8000),
        }
    }

    pub(crate) fn classify<'a>(
        &mut self,
        types: &PayloadTypes,
        direction: Direction,
        arrival_ns: u64,
        packet: &'a [u8],
    ) -> Classified<'a> {
        match classify(packet) {
            PacketKind::Rtcp => return Classified::Rtcp,
            PacketKind::Other => return Classified::NotRtp,
            PacketKind::Rtp => {}
        }
        let Ok(p) = RtpPacket::parse(packet) else {
            return Classified::Malformed;
        };
        let kind = types.kind(direction, p.payload_type);
        // Telephone-events repeat their start timestamp for the whole
        // event; start + duration is where the event is now, which keeps a
        // long key press from looking like a timestamp jump.
        let (media_ts, event) = match kind {
            PayloadKind::G711(_) | PayloadKind::ComfortNoise => (p.timestamp, None),
            PayloadKind::TelephoneEvent => match TelephoneEvent::parse(p.payload) {
                Some(ev) => (p.timestamp.wrapping_add(u32::from(ev.duration)), Some(ev)),
                None => return Classified::Malformed,
            },
            PayloadKind::Other => return Classified::Undecodable(p.payload_type),
        };
        let seq = self.seq.unwrap(p.ssrc, p.sequence);
        let ts = self.ts.unwrap(p.ssrc, media_ts, arrival_ns);
        let pos = StreamPos {
            ssrc: p.ssrc,
            epoch: ts.epoch,
            started: ts.started,
            seq,
            ts: ts.value,
        };
        match (kind, event) {
            (PayloadKind::G711(law), _) => Classified::Audio(pos, law, p.payload),
            (_, Some(ev)) => Classified::Event(pos, p.timestamp, ev),
            _ => Classified::ComfortNoise(pos),
        }
    }
}

/// One timestamp epoch of one direction, as the first pass saw it.
#[derive(Debug, Clone)]
pub(crate) struct EpochInfo {
    pub ssrc: u32,
    pub started: EpochStart,
    pub first_arrival_ns: u64,
    pub packets: u64,
    min_delay_audio: Option<i64>,
    min_delay_any: i64,
    /// Lowest timestamp and highest timestamp + samples of its audio.
    pub audio: Option<(i64, i64)>,
}

impl EpochInfo {
    pub(crate) fn new(pos: &StreamPos, arrival_ns: u64) -> Self {
        EpochInfo {
            ssrc: pos.ssrc,
            started: pos.started.unwrap_or(EpochStart::First),
            first_arrival_ns: arrival_ns,
            packets: 0,
            min_delay_audio: None,
            min_delay_any: i64::MAX,
            audio: None,
        }
    }

    /// Takes a packet of this epoch; `samples` for audio.
    pub(crate) fn packet(&mut self, pos: &StreamPos, arrival_ns: u64, samples: Option<usize>) {
        let delay = ns(arrival_ns).saturating_sub(pos.ts.saturating_mul(NS));
        self.packets += 1;
        self.min_delay_any = self.min_delay_any.min(delay);
        if let Some(n) = samples {
            self.min_delay_audio = Some(self.min_delay_audio.map_or(delay, |d| d.min(delay)));
            let end = pos.ts + n as i64;
            self.audio = Some(match self.audio {
                Some((lo, hi)) => (lo.min(pos.ts), hi.max(end)),
                None => (pos.ts, end),
            });
        }
    }

    /// Wall-clock ns of timestamp 0 of this epoch: a sample with timestamp
    /// `t` is at `anchor_ns + t * NS`.
    pub(crate) fn anchor_ns(&self) -> i64 {
        self.min_delay_audio.unwrap_or(self.min_delay_any)
    }
}

/// A stretch of one direction's decoded audio from the first pass, for
/// aligning the cloud recording.
#[derive(Debug, Clone)]
pub(crate) struct Capture {
    pub direction: usize,
    pub epoch: u32,
    pub base_ts: i64,
    pub samples: Vec<i16>,
    covered: Vec<bool>,
    /// Furthest sample placed + 1.
    extent: usize,
    pub first_arrival_ns: u64,
}

impl Capture {
    /// Enough of it heard (90 %), and not near-silent (RMS ≥ 50 of 32767):
    /// something correlation can find.
    fn usable(&self) -> bool {
        let n = self.extent;
        if n < 8000 {
            return false;
        }
        let covered = self.covered[..n].iter().filter(|&&c| c).count();
        let energy: f64 = self.samples[..n]
            .iter()
            .map(|&s| f64::from(s) * f64::from(s))
            .sum();
        covered * 10 >= n * 9 && energy / n as f64 >= 2500.0
    }
}

/// Picks a few stretches of clear audio per direction during the first
/// pass, spaced out so that one of them is likely outside the cloud's gap.
pub(crate) struct Capturer {
    window: usize,
    spacing_ns: u64,
    max: usize,
    active: [Option<Capture>; 2],
    next_start_ns: [u64; 2],
    pub done: Vec<Capture>,
    count: [usize; 2],
    scratch: Vec<i16>,
}

impl Capturer {
    pub(crate) fn new(window: usize, spacing_ns: u64, max: usize) -> Self {
        Capturer {
            window,
            spacing_ns,
            max,
            active: [None, None],
            next_start_ns: [0, 0],
            done: Vec::new(),
            count: [0, 0],
            scratch: Vec::new(),
        }
    }

    pub(crate) fn audio(
        &mut self,
        d: usize,
        pos: &StreamPos,
        law: Law,
        payload: &[u8],
        arrival_ns: u64,
    ) {
        if self.window == 0 {
            return;
        }
        if let Some(c) = &self.active[d] {
            if c.epoch != pos.epoch {
                self.active[d] = None;
            } else if pos.ts - c.base_ts >= self.window as i64 {
                self.complete(d, arrival_ns);
            }
        }
        if self.active[d].is_none()
            && self.count[d] < self.max
            && arrival_ns >= self.next_start_ns[d]
        {
            self.active[d] = Some(Capture {
                direction: d,
                epoch: pos.epoch,
                base_ts: pos.ts,
                samples: vec![0; self.window],
                covered: vec![false; self.window],
                extent: 0,
                first_arrival_ns: arrival_ns,
            });
        }
        let Some(c) = &mut self.active[d] else {
            return;
        };
        let at = pos.ts - c.base_ts;
        if at < 0 {
            return;
        }
        let at = at as usize;
        let n = payload.len().min(self.window - at);
        self.scratch.resize(n, 0);
        law.decode_into(&payload[..n], &mut self.scratch);
        c.samples[at..at + n].copy_from_slice(&self.scratch);
        c.covered[at..at + n].fill(true);
        c.extent = c.extent.max(at + n);
    }

    fn complete(&mut self, d: usize, arrival_ns: u64) {
        if let Some(mut c) = self.active[d].take() {
            if c.usable() {
                c.samples.truncate(c.extent);
                c.covered = Vec::new();
                self.done.push(c);
                self.count[d] += 1;
                self.next_start_ns[d] = arrival_ns.saturating_add(self.spacing_ns);
            }
        }
    }

    /// The end of the journal: a stretch under way counts if long enough.
    pub(crate) fn finish(&mut self) -> Vec<Capture> {
        for d in 0..2 {
            self.complete(d, u64::MAX);
        }
        let mut done = std::mem::take(&mut self.done);
        done.sort_by_key(|c| c.first_arrival_ns);
        done
    }
}

/// Recent extended sequence numbers of one direction, to count duplicates
/// in bounded memory (a ring of 1024 bits).
#[derive(Debug, Clone, Default)]
pub(crate) struct SeqWindow {
    epoch: Option<u32>,
    highest: i64,
    bits: [u64; 16],
}

impl SeqWindow {
    const SPAN: i64 = 1024;

    fn slot(seq: i64) -> (usize, u64) {
        let i = seq.rem_euclid(Self::SPAN) as usize;
        (i / 64, 1 << (i % 64))
    }

    /// Whether (epoch, seq) was seen already; records it.
    pub(crate) fn seen(&mut self, epoch: u32, seq: i64) -> bool {
        if self.epoch != Some(epoch) {
            self.epoch = Some(epoch);
            self.highest = seq;
            self.bits = [0; 16];
        } else if seq > self.highest {
            let clear = (seq - self.highest).min(Self::SPAN);
            for s in seq - clear + 1..=seq {
                let (w, b) = Self::slot(s);
                self.bits[w] &= !b;
            }
            self.highest = seq;
        } else if self.highest - seq >= Self::SPAN {
            return false;
        }
        let (w, b) = Self::slot(seq);
        let dup = self.bits[w] & b != 0;
        self.bits[w] |= b;
        dup
    }
}

/// How a packet's samples went into the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Placed {
    /// Some samples fell before what was already written out.
    pub late: bool,
    /// Samples that were there already (first heard wins).
    pub overlap: usize,
    /// Too far ahead of the window to hold (a timestamp the arrival time
    /// cannot explain); dropped.
    pub ahead: bool,
}

/// The edge's decoded samples of both channels not yet written out, from
/// output sample `base` on.
pub(crate) struct EdgeWindow {
    base: i64,
    values: [Vec<i16>; 2],
    covered: [Vec<bool>; 2],
    max_len: usize,
}

impl EdgeWindow {
    pub(crate) fn new(max_len: usize) -> Self {
        EdgeWindow {
            base: 0,
            values: [Vec::new(), Vec::new()],
            covered: [Vec::new(), Vec::new()],
            max_len,
        }
    }

    pub(crate) fn base(&self) -> i64 {
        self.base
    }

    /// Puts `samples` at output sample `pos` of channel `ch`.
    pub(crate) fn place(&mut self, ch: usize, pos: i64, samples: &[i16]) -> Placed {
        let mut placed = Placed::default();
        let start = pos - self.base;
        let end = start + samples.len() as i64;
        if end <= 0 {
            placed.late = true;
            return placed;
        }
        if end > self.max_len as i64 {
            placed.ahead = true;
            return placed;
        }
        let skip = if start < 0 {
            placed.late = true;
            (-start) as usize
        } else {
            0
        };
        let (start, end) = (start.max(0) as usize, end as usize);
        if self.values[ch].len() < end {
            self.values[ch].resize(end, 0);
            self.covered[ch].resize(end, false);
        }
        let values = &mut self.values[ch][start..end];
        let covered = &mut self.covered[ch][start..end];
        let samples = &samples[skip..];
        if !covered.iter().any(|&c| c) {
            values.copy_from_slice(samples);
            covered.fill(true);
        } else {
            for ((v, c), &s) in values.iter_mut().zip(covered.iter_mut()).zip(samples) {
                if *c {
                    placed.overlap += 1;
                } else {
                    *v = s;
                    *c = true;
                }
            }
        }
        placed
    }

    /// Both channels' samples and coverage for `[base, base + n)`.
    pub(crate) fn block(&mut self, n: usize) -> Channels<'_> {
        for ch in 0..2 {
            if self.values[ch].len() < n {
                self.values[ch].resize(n, 0);
                self.covered[ch].resize(n, false);
            }
        }
        let [v0, v1] = &self.values;
        let [c0, c1] = &self.covered;
        [(&v0[..n], &c0[..n]), (&v1[..n], &c1[..n])]
    }

    /// Drops the first `n` samples (written out).
    pub(crate) fn advance(&mut self, n: usize) {
        for ch in 0..2 {
            let n = n.min(self.values[ch].len());
            self.values[ch].drain(..n);
            self.covered[ch].drain(..n);
        }
        self.base += n as i64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_in_a_bounded_window() {
        let mut w = SeqWindow::default();
        assert!(!w.seen(0, 10));
        assert!(!w.seen(0, 12));
        assert!(!w.seen(0, 11)); // reordered, new
        assert!(w.seen(0, 11)); // duplicate
        assert!(w.seen(0, 10));
        assert!(!w.seen(0, 3000)); // a jump clears the ring
        assert!(!w.seen(0, 12 + 1024 * 2)); // the slot of 12, reused
        assert!(!w.seen(1, 10)); // a new epoch starts over
    }

    #[test]
    fn first_heard_wins_and_late_is_counted() {
        let mut w = EdgeWindow::new(1000);
        assert_eq!(w.place(0, 10, &[1; 20]), Placed::default());
        let p = w.place(0, 20, &[2; 20]);
        assert_eq!(p.overlap, 10);
        let [(v, c), _] = w.block(50);
        assert_eq!(&v[8..12], &[0, 0, 1, 1]);
        assert_eq!(&v[28..32], &[1, 1, 2, 2]);
        assert!(!c[9] && c[10] && c[39] && !c[40]);
        w.advance(30);
        assert!(w.place(0, 0, &[3; 30]).late);
        let p = w.place(0, 25, &[4; 10]);
        assert!(p.late);
        assert!(w.place(1, 30 + 1000, &[5; 1]).ahead);
    }
}
