//! The lab's test signal and the detectors that find it again in a recording.
//!
//! Each direction of a lab call carries its own steady tone — the caller
//! [`Signal::CALLER`] 440 Hz, the media server [`Signal::MEDIA_SERVER`]
//! 660 Hz — so the two sides of a recording are told apart. At the start of
//! every second the tone gives way to a 100 ms **marker** that encodes the
//! second's index modulo 256:
//!
//! ```text
//! offset in the second   0 ms      20 ms                     100 ms          1000 ms
//!                        | sync    | 16 bits × 5 ms           | tone …        |
//! ```
//!
//! - sync: 160 samples of a fixed pseudo-noise sequence (±amplitude), found by
//!   normalised cross-correlation: it pins the marker to the sample;
//! - bits: 8 bits of the index (most significant first), then the same 8
//!   bits inverted as a check; each bit is 40 samples of a 1 kHz carrier
//!   (5 whole cycles) with its sign (BPSK).
//!
//! The signal is a pure function of the sample's offset from the start of the
//! stream ([`Signal::sample`]), so a sender can pick it up anywhere, and a
//! marker found at offset `o` with index `i` says "this is second `i` (mod
//! 256) of the sender's stream". [`find_markers`] is immune to a constant DC
//! offset, to gain, and to a G.711 round trip; [`coverage`] and [`holes`]
//! say, in 20 ms blocks, where one of the lab's signals is present. Only 8 kHz
//! is supported (G.711's rate); other rates find nothing.

use std::f64::consts::PI;

use hotsite_core::Rng;

/// The rate of every lab signal: G.711's.
pub const SAMPLE_RATE: u32 = 8_000;
/// A marker starts every this many samples (1 s).
pub const MARKER_PERIOD: usize = 8_000;
/// A marker lasts this many samples (100 ms).
pub const MARKER_LEN: usize = SYNC_LEN + BITS * BIT_LEN;
/// Peak amplitude of the tone and the marker (about −12 dBFS).
pub const AMPLITUDE: i16 = 8_000;

/// Samples of the sync sequence (20 ms).
const SYNC_LEN: usize = 160;
/// Bits in a marker: the index and its complement.
const BITS: usize = 16;
/// Samples per bit (5 ms: 5 cycles of the carrier).
const BIT_LEN: usize = 40;
/// The bits' carrier.
const CARRIER_HZ: f64 = 1_000.0;
/// Seeds the sync sequence; any fixed value would do.
const SYNC_SEED: u64 = 0x6d61_726b_6572_0001;
/// Coverage is judged in blocks of 20 ms: one packet.
const BLOCK: usize = 160;
/// The tones [`coverage`] recognises.
const TONES: [u32; 2] = [Signal::CALLER.tone_hz, Signal::MEDIA_SERVER.tone_hz];

/// One direction's test signal: a steady tone with a marker every second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    tone_hz: u32,
}

impl Signal {
    /// The caller's signal: 440 Hz.
    pub const CALLER: Signal = Signal { tone_hz: 440 };
    /// The media server's signal: 660 Hz.
    pub const MEDIA_SERVER: Signal = Signal { tone_hz: 660 };

    /// A signal with this tone. An integer frequency makes the tone repeat
    /// every second exactly, so every second's samples are the same but for
    /// the marker.
    pub fn new(tone_hz: u32) -> Signal {
        Signal { tone_hz }
    }

    /// Its tone's frequency.
    pub fn tone_hz(&self) -> u32 {
        self.tone_hz
    }

    /// Sample `n` of the stream (8 kHz).
    pub fn sample(&self, n: u64) -> i16 {
        let in_second = (n % MARKER_PERIOD as u64) as usize;
        if in_second < MARKER_LEN {
            let index = ((n / MARKER_PERIOD as u64) % 256) as u8;
            return marker_sample(index, in_second);
        }
        // An integer tone repeats every second: the phase needs only the
        // offset in the second, which keeps it exact for any `n`.
        let phase = 2.0 * PI * f64::from(self.tone_hz) * in_second as f64 / f64::from(SAMPLE_RATE);
        (f64::from(AMPLITUDE) * phase.sin()).round() as i16
    }

    /// Samples `start..start + out.len()` of the stream.
    pub fn fill(&self, start: u64, out: &mut [i16]) {
        for (offset, sample) in out.iter_mut().enumerate() {
            *sample = self.sample(start + offset as u64);
        }
    }

    /// Samples `start..start + len` of the stream.
    pub fn samples(&self, start: u64, len: usize) -> Vec<i16> {
        let mut out = vec![0; len];
        self.fill(start, &mut out);
        out
    }
}

/// Every marker in `samples` (8 kHz): its offset (the first sample of its
/// sync) and its index (the sender's second, modulo 256), in order.
///
/// A marker is a sync whose normalised correlation passes 0.5 and whose 16
/// bits all decode clearly with the second byte the complement of the first;
/// anything else (noise, a marker cut by a gap) is not reported.
pub fn find_markers(samples: &[i16], rate: u32) -> Vec<(usize, u8)> {
    if rate != SAMPLE_RATE || samples.len() < MARKER_LEN {
        return Vec::new();
    }
    let signal: Vec<f64> = samples.iter().map(|&s| f64::from(s)).collect();
    let sums = PrefixSums::new(&signal);
    let sync = sync_template();
    let sync_norm = sync.iter().map(|c| c * c).sum::<f64>().sqrt();
    let last_start = signal.len() - MARKER_LEN;
    let mut found = Vec::new();
    let mut position = 0;
    while position <= last_start {
        // A cheap test first: the sync is white noise, whose first
        // difference carries twice its variance; the tones and the carrier
        // carry far less. Only windows that pass are correlated.
        if !sums.looks_white(position, SYNC_LEN) {
            position += 1;
            continue;
        }
        // Correlate across the run of candidates and keep its peak.
        let mut best: Option<(usize, f64)> = None;
        let mut candidate = position;
        while candidate <= last_start && candidate < position + SYNC_LEN {
            if sums.looks_white(candidate, SYNC_LEN) {
                let score = correlation(&signal, &sums, candidate, &sync, sync_norm);
                if best.is_none_or(|(_, top)| score > top) {
                    best = Some((candidate, score));
                }
            }
            candidate += 1;
        }
        match best {
            Some((start, score)) if score > 0.5 => match decode_bits(&signal, &sums, start) {
                Some(index) => {
                    found.push((start, index));
                    position = start + MARKER_LEN;
                }
                None => position = candidate,
            },
            _ => position = candidate,
        }
    }
    found
}

/// Where one of the lab's signals (either tone, or a marker) is present in
/// `samples` (8 kHz), as `(start_ms, end_ms)` spans, in order, judged per
/// 20 ms block: a block counts when a lab tone carries most of its energy at
/// half the nominal level or more, or when it overlaps a marker.
pub fn coverage(samples: &[i16], rate: u32) -> Vec<(u64, u64)> {
    if rate != SAMPLE_RATE {
        return Vec::new();
    }
    let detector = ToneDetector::new();
    let mut present: Vec<bool> = samples
        .chunks(BLOCK)
        .map(|block| TONES.iter().any(|&hz| detector.dominates(block, hz)))
        .collect();
    for (offset, _) in find_markers(samples, rate) {
        let first = offset / BLOCK;
        let last = (offset + MARKER_LEN - 1) / BLOCK;
        for block in present.iter_mut().take(last + 1).skip(first) {
            *block = true;
        }
    }
    // A last block under 10 ms is too short to judge: it goes with the one
    // before, so a recording cut mid-packet has no sliver of a hole.
    if samples.len() % BLOCK != 0 && samples.len() % BLOCK < BLOCK / 2 && present.len() >= 2 {
        let last = present.len() - 1;
        present[last] = present[last - 1];
    }
    let total_ms = samples.len() as u64 * 1_000 / u64::from(SAMPLE_RATE);
    let mut spans = Vec::new();
    let mut open: Option<u64> = None;
    for (index, &here) in present.iter().enumerate() {
        let start_ms = index as u64 * 20;
        match (here, open) {
            (true, None) => open = Some(start_ms),
            (false, Some(start)) => {
                spans.push((start, start_ms));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(start) = open {
        spans.push((start, total_ms));
    }
    spans
}

/// The complement of [`coverage`] over the whole of `samples`: the spans
/// where none of the lab's signals is present, as `(start_ms, end_ms)`.
pub fn holes(samples: &[i16], rate: u32) -> Vec<(u64, u64)> {
    if rate != SAMPLE_RATE {
        return Vec::new();
    }
    let total_ms = samples.len() as u64 * 1_000 / u64::from(SAMPLE_RATE);
    let mut holes = Vec::new();
    let mut cursor = 0;
    for (start, end) in coverage(samples, rate) {
        if start > cursor {
            holes.push((cursor, start));
        }
        cursor = end;
    }
    if cursor < total_ms {
        holes.push((cursor, total_ms));
    }
    holes
}

/// Which lab tone (440 or 660 Hz) most 20 ms blocks of `samples` carry, if
/// any block carries one: tells a caller's channel from a media server's.
pub fn dominant_tone(samples: &[i16], rate: u32) -> Option<u32> {
    if rate != SAMPLE_RATE {
        return None;
    }
    let detector = ToneDetector::new();
    TONES
        .iter()
        .map(|&hz| {
            let blocks = samples
                .chunks(BLOCK)
                .filter(|block| detector.dominates(block, hz))
                .count();
            (blocks, hz)
        })
        .filter(|(blocks, _)| *blocks > 0)
        .max()
        .map(|(_, hz)| hz)
}

/// Sample `position` (0..MARKER_LEN) of the marker for `index`.
fn marker_sample(index: u8, position: usize) -> i16 {
    let amplitude = f64::from(AMPLITUDE);
    if position < SYNC_LEN {
        return (amplitude * sync_chip(position)).round() as i16;
    }
    let bit_index = (position - SYNC_LEN) / BIT_LEN;
    let in_bit = (position - SYNC_LEN) % BIT_LEN;
    let sign = if marker_bit(index, bit_index) {
        1.0
    } else {
        -1.0
    };
    (amplitude * sign * carrier(in_bit)).round() as i16
}

/// Bit `bit_index` (0..16) of the marker for `index`: the index, most
/// significant bit first, then its complement.
fn marker_bit(index: u8, bit_index: usize) -> bool {
    if bit_index < 8 {
        index >> (7 - bit_index) & 1 == 1
    } else {
        index >> (15 - bit_index) & 1 == 0
    }
}

/// Chip `position` of the sync sequence: +1 or −1.
fn sync_chip(position: usize) -> f64 {
    if Rng::new(SYNC_SEED ^ position as u64).next_u64() >> 63 == 1 {
        1.0
    } else {
        -1.0
    }
}

/// The sync sequence with its mean removed, so a correlation with it ignores
/// any constant offset of the signal.
fn sync_template() -> Vec<f64> {
    let chips: Vec<f64> = (0..SYNC_LEN).map(sync_chip).collect();
    let mean = chips.iter().sum::<f64>() / SYNC_LEN as f64;
    chips.into_iter().map(|chip| chip - mean).collect()
}

/// The bits' carrier at sample `position` of a bit: 5 whole cycles, so zero
/// mean over the bit.
fn carrier(position: usize) -> f64 {
    (2.0 * PI * CARRIER_HZ * position as f64 / f64::from(SAMPLE_RATE)).sin()
}

/// Normalised correlation of the window at `start` with the (zero-mean) sync.
fn correlation(
    signal: &[f64],
    sums: &PrefixSums,
    start: usize,
    sync: &[f64],
    sync_norm: f64,
) -> f64 {
    let deviation = sums.deviation(start, SYNC_LEN);
    if deviation <= 0.0 {
        return 0.0;
    }
    let dot: f64 = signal[start..start + SYNC_LEN]
        .iter()
        .zip(sync)
        .map(|(x, c)| x * c)
        .sum();
    dot / (deviation * sync_norm)
}

/// The index carried by the marker whose sync starts at `start`, if every bit
/// is clear and the check byte matches.
fn decode_bits(signal: &[f64], sums: &PrefixSums, start: usize) -> Option<u8> {
    let carrier_norm = (0..BIT_LEN)
        .map(|i| carrier(i) * carrier(i))
        .sum::<f64>()
        .sqrt();
    let mut bits = [false; BITS];
    for (bit_index, bit) in bits.iter_mut().enumerate() {
        let from = start + SYNC_LEN + bit_index * BIT_LEN;
        let deviation = sums.deviation(from, BIT_LEN);
        if deviation <= 0.0 {
            return None;
        }
        let dot: f64 = signal[from..from + BIT_LEN]
            .iter()
            .enumerate()
            .map(|(i, x)| x * carrier(i))
            .sum();
        let score = dot / (deviation * carrier_norm);
        if score.abs() < 0.5 {
            return None;
        }
        *bit = score > 0.0;
    }
    let byte = |bits: &[bool]| bits.iter().fold(0u8, |acc, &bit| acc << 1 | u8::from(bit));
    let index = byte(&bits[..8]);
    (byte(&bits[8..]) == !index).then_some(index)
}

/// Finds the lab's tones in blocks of up to 20 ms: the block's component at
/// the tone's exact frequency (a single DFT bin), with the cosines and sines
/// computed once.
struct ToneDetector {
    /// Per tone: its frequency and `(cos, sin)` of each sample's phase.
    bases: Vec<(u32, Vec<(f64, f64)>)>,
}

impl ToneDetector {
    fn new() -> ToneDetector {
        let bases = TONES
            .iter()
            .map(|&hz| {
                let omega = 2.0 * PI * f64::from(hz) / f64::from(SAMPLE_RATE);
                let basis = (0..BLOCK)
                    .map(|i| ((omega * i as f64).cos(), (omega * i as f64).sin()))
                    .collect();
                (hz, basis)
            })
            .collect();
        ToneDetector { bases }
    }

    /// Whether tone `hz` carries most of the block's energy (60 %), at half
    /// the lab's level or more.
    fn dominates(&self, block: &[i16], hz: u32) -> bool {
        let Some((_, basis)) = self.bases.iter().find(|(tone, _)| *tone == hz) else {
            return false;
        };
        if block.len() < BLOCK / 2 || block.len() > basis.len() {
            return false;
        }
        let n = block.len() as f64;
        let mean = block.iter().map(|&s| f64::from(s)).sum::<f64>() / n;
        let variance = block
            .iter()
            .map(|&s| (f64::from(s) - mean).powi(2))
            .sum::<f64>()
            / n;
        if variance <= 0.0 {
            return false;
        }
        let (mut re, mut im) = (0.0, 0.0);
        for (&sample, (cos, sin)) in block.iter().zip(basis) {
            let x = f64::from(sample) - mean;
            re += x * cos;
            im -= x * sin;
        }
        let amplitude = 2.0 * (re * re + im * im).sqrt() / n;
        let tone_power = amplitude * amplitude / 2.0;
        amplitude >= f64::from(AMPLITUDE) / 2.0 && tone_power >= 0.6 * variance
    }
}

/// Running sums of a signal, its square and its first difference squared:
/// the mean, deviation and "whiteness" of any window in constant time.
struct PrefixSums {
    sum: Vec<f64>,
    squares: Vec<f64>,
    differences: Vec<f64>,
}

impl PrefixSums {
    fn new(signal: &[f64]) -> PrefixSums {
        let mut sum = Vec::with_capacity(signal.len() + 1);
        let mut squares = Vec::with_capacity(signal.len() + 1);
        let mut differences = Vec::with_capacity(signal.len());
        let (mut s, mut q, mut d) = (0.0, 0.0, 0.0);
        sum.push(s);
        squares.push(q);
        differences.push(d);
        for (i, &x) in signal.iter().enumerate() {
            s += x;
            q += x * x;
            sum.push(s);
            squares.push(q);
            if i + 1 < signal.len() {
                let step = signal[i + 1] - x;
                d += step * step;
                differences.push(d);
            }
        }
        PrefixSums {
            sum,
            squares,
            differences,
        }
    }

    /// The square root of the window's energy around its mean.
    fn deviation(&self, start: usize, len: usize) -> f64 {
        let n = len as f64;
        let sum = self.sum[start + len] - self.sum[start];
        let squares = self.squares[start + len] - self.squares[start];
        (squares - sum * sum / n).max(0.0).sqrt()
    }

    /// Whether the window looks like loud white noise: its first differences
    /// carry more than 1.2 times its variance (white noise: 2; the 1 kHz
    /// carrier: 0.59; the tones: 0.26 and less) and it is not near silence.
    fn looks_white(&self, start: usize, len: usize) -> bool {
        let deviation = self.deviation(start, len);
        let floor = f64::from(AMPLITUDE) / 4.0 * (len as f64).sqrt();
        if deviation < floor {
            return false;
        }
        let steps = self.differences[start + len - 1] - self.differences[start];
        steps > 1.2 * deviation * deviation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};

    fn ulaw_round_trip(samples: &[i16]) -> Vec<i16> {
        samples
            .iter()
            .map(|&s| ulaw_decode(ulaw_encode(s)))
            .collect()
    }

    fn seconds(n: usize) -> usize {
        n * MARKER_PERIOD
    }

    #[test]
    fn markers_are_found_at_their_offsets_after_a_g711_round_trip_and_an_offset() {
        // 5 s of the caller's signal from second 3, after 1234 samples of
        // silence, through µ-law, with a constant DC offset added.
        let lead = 1_234;
        let mut recording = vec![0i16; lead];
        recording.extend(ulaw_round_trip(
            &Signal::CALLER.samples(seconds(3) as u64, seconds(5)),
        ));
        let recording: Vec<i16> = recording.iter().map(|s| s.saturating_add(900)).collect();
        let markers = find_markers(&recording, SAMPLE_RATE);
        let expected: Vec<(usize, u8)> = (0..5).map(|k| (lead + seconds(k), 3 + k as u8)).collect();
        assert_eq!(markers, expected);
    }

    #[test]
    fn markers_survive_a_law_and_half_the_level() {
        let signal = Signal::MEDIA_SERVER.samples(0, seconds(3));
        let recording: Vec<i16> = signal
            .iter()
            .map(|&s| alaw_decode(alaw_encode(s / 2)))
            .collect();
        assert_eq!(
            find_markers(&recording, SAMPLE_RATE),
            vec![(0, 0), (seconds(1), 1), (seconds(2), 2)]
        );
    }

    #[test]
    fn the_index_wraps_after_255() {
        let recording = ulaw_round_trip(&Signal::CALLER.samples(seconds(254) as u64, seconds(4)));
        let indexes: Vec<u8> = find_markers(&recording, SAMPLE_RATE)
            .into_iter()
            .map(|(_, index)| index)
            .collect();
        assert_eq!(indexes, vec![254, 255, 0, 1]);
    }

    #[test]
    fn noise_and_silence_hold_no_marker() {
        let mut rng = Rng::new(9);
        let noise: Vec<i16> = (0..seconds(3))
            .map(|_| (rng.below_or_equal(16_000) as i32 - 8_000) as i16)
            .collect();
        assert_eq!(find_markers(&noise, SAMPLE_RATE), Vec::new());
        assert_eq!(find_markers(&vec![0; seconds(2)], SAMPLE_RATE), Vec::new());
        assert_eq!(find_markers(&noise, 16_000), Vec::new());
    }

    /// SPEC R2: a 17 s hole (the provider's handover) is reported as a hole,
    /// with the signal on both sides, and the markers inside it are missing.
    #[test]
    fn a_17_s_hole_is_reported_as_a_hole() {
        let mut recording = ulaw_round_trip(&Signal::MEDIA_SERVER.samples(0, seconds(30)));
        let hole = seconds(5) + 4_000..seconds(22) + 4_000;
        recording[hole].fill(0);
        assert_eq!(holes(&recording, SAMPLE_RATE), vec![(5_500, 22_500)]);
        assert_eq!(
            coverage(&recording, SAMPLE_RATE),
            vec![(0, 5_500), (22_500, 30_000)]
        );
        let indexes: Vec<u8> = find_markers(&recording, SAMPLE_RATE)
            .into_iter()
            .map(|(_, index)| index)
            .collect();
        let expected: Vec<u8> = (0..=5).chain(23..30).collect();
        assert_eq!(indexes, expected);
    }

    #[test]
    fn a_sliver_at_the_end_is_judged_with_the_block_before() {
        let recording = Signal::CALLER.samples(0, 8_005);
        assert_eq!(holes(&recording, SAMPLE_RATE), Vec::new());
        assert_eq!(coverage(&recording, SAMPLE_RATE), vec![(0, 1_000)]);
    }

    #[test]
    fn noise_is_a_hole_too() {
        let mut recording = Signal::CALLER.samples(0, seconds(4));
        let mut rng = Rng::new(3);
        for sample in &mut recording[seconds(1)..seconds(2)] {
            *sample = (rng.below_or_equal(12_000) as i32 - 6_000) as i16;
        }
        assert_eq!(holes(&recording, SAMPLE_RATE), vec![(1_000, 2_000)]);
    }

    #[test]
    fn the_dominant_tone_tells_the_directions_apart() {
        let caller = Signal::CALLER.samples(0, seconds(2));
        let server = Signal::MEDIA_SERVER.samples(0, seconds(2));
        assert_eq!(dominant_tone(&caller, SAMPLE_RATE), Some(440));
        assert_eq!(dominant_tone(&server, SAMPLE_RATE), Some(660));
        assert_eq!(dominant_tone(&vec![0; 8_000], SAMPLE_RATE), None);
    }

    #[test]
    fn the_signal_is_the_same_wherever_it_is_picked_up() {
        let whole = Signal::CALLER.samples(0, 20_000);
        let part = Signal::CALLER.samples(7_777, 5_000);
        assert_eq!(&whole[7_777..12_777], &part[..]);
        assert_eq!(
            Signal::CALLER.sample(8_000 + 900),
            Signal::CALLER.sample(900)
        );
    }
}
