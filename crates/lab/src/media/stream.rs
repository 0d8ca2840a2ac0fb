//! One side of a call's audio: the paced G.711 stream it sends
//! ([`Outgoing`]) and the tracks it records ([`Track`]). Pure: times are
//! passed in.

use std::ops::Range;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotsite_core::Rng;

use super::g711::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};
use super::rtp::{build_packet, RtpHeader, TelephoneEvent, SAMPLES_PER_PACKET};
use super::sdp::Codec;
use super::signal::{Signal, SAMPLE_RATE};

/// The packet interval: 20 ms, 160 samples.
pub(crate) const PTIME: Duration = Duration::from_millis(20);

/// The longest a track records: 2 hours (a lab call is minutes; the bound
/// keeps a forgotten call from eating the machine).
const MAX_TRACK_SAMPLES: usize = SAMPLE_RATE as usize * 7_200;

/// A packet of one stream that lands further than this from where its
/// timestamp puts it (relative to the previous one) is placed by its arrival
/// instead: 100 ms, well beyond loopback jitter, well below a handover gap.
const RESYNC_SAMPLES: i64 = 800;

/// The sample offset of `at` on a timeline that starts at `start` (8 kHz).
pub(crate) fn position(start: Instant, at: Instant) -> usize {
    let nanos = at.saturating_duration_since(start).as_nanos();
    usize::try_from(nanos * u128::from(SAMPLE_RATE) / 1_000_000_000).unwrap_or(usize::MAX)
}

/// A G.711 payload's samples.
pub(crate) fn decode(codec: Codec, payload: &[u8]) -> Vec<i16> {
    match codec {
        Codec::Pcmu => payload.iter().map(|&b| ulaw_decode(b)).collect(),
        Codec::Pcma => payload.iter().map(|&b| alaw_decode(b)).collect(),
    }
}

/// What one side sends: its signal in G.711, one packet every 20 ms on a
/// schedule that starts at `start` (packet `k` is due at `start + k·20 ms`
/// and carries samples `k·160..(k+1)·160` of the signal, so the signal's
/// markers count seconds since `start`).
pub(crate) struct Outgoing {
    signal: Signal,
    codec: Codec,
    start: Instant,
    /// The next packet's index on the schedule.
    next: u64,
    ssrc: u32,
    /// The next packet's sequence number.
    sequence: u16,
    /// The timestamp of schedule index 0.
    timestamp_base: u32,
    /// The next packet sent starts a talkspurt (marker bit): the first one,
    /// and the first after a pause.
    talkspurt: bool,
}

/// One audio packet sent.
pub(crate) struct SentPacket {
    pub(crate) bytes: Bytes,
    /// Its samples after the G.711 round trip: what a recorder hears.
    pub(crate) samples: Vec<i16>,
    /// Its index on the schedule.
    pub(crate) index: u64,
}

impl Outgoing {
    /// A stream starting at `start`, with a random SSRC, sequence number and
    /// timestamp (RFC 3550 §5.1).
    pub(crate) fn new(signal: Signal, codec: Codec, start: Instant, rng: &mut Rng) -> Outgoing {
        Outgoing {
            signal,
            codec,
            start,
            next: 0,
            ssrc: rng.next_u64() as u32,
            sequence: rng.next_u64() as u16,
            timestamp_base: rng.next_u64() as u32,
            talkspurt: true,
        }
    }

    /// When the next packet is due.
    pub(crate) fn due(&self) -> Instant {
        self.start + Duration::from_millis(20 * self.next)
    }

    pub(crate) fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The timestamp of the next packet due.
    pub(crate) fn timestamp(&self) -> u32 {
        self.timestamp_of(self.next)
    }

    fn timestamp_of(&self, index: u64) -> u32 {
        self.timestamp_base
            .wrapping_add((index as u32).wrapping_mul(SAMPLES_PER_PACKET as u32))
    }

    /// Builds the next packet and moves the schedule on.
    pub(crate) fn send_next(&mut self) -> SentPacket {
        let index = self.next;
        let mut samples = vec![0i16; SAMPLES_PER_PACKET];
        self.signal
            .fill(index * SAMPLES_PER_PACKET as u64, &mut samples);
        let payload: Vec<u8> = match self.codec {
            Codec::Pcmu => samples.iter().map(|&s| ulaw_encode(s)).collect(),
            Codec::Pcma => samples.iter().map(|&s| alaw_encode(s)).collect(),
        };
        let header = RtpHeader {
            payload_type: self.codec.payload_type(),
            marker: self.talkspurt,
            sequence: self.sequence,
            timestamp: self.timestamp_of(index),
            ssrc: self.ssrc,
        };
        self.talkspurt = false;
        self.sequence = self.sequence.wrapping_add(1);
        self.next += 1;
        SentPacket {
            bytes: build_packet(&header, &payload),
            samples: decode(self.codec, &payload),
            index,
        }
    }

    /// Lets the next packet's slot pass unsent (hold, a handover gap): the
    /// schedule and timestamps move on, the sequence does not, and the next
    /// packet sent starts a talkspurt.
    pub(crate) fn skip_next(&mut self) {
        self.next += 1;
        self.talkspurt = true;
    }

    /// Becomes another sender, as after a media-server handover: a new SSRC,
    /// and the sequence and timestamp jumped ahead by these amounts.
    pub(crate) fn rebase(&mut self, ssrc: u32, sequence_jump: u16, timestamp_jump: u32) {
        self.ssrc = ssrc;
        self.sequence = self.sequence.wrapping_add(sequence_jump);
        self.timestamp_base = self.timestamp_base.wrapping_add(timestamp_jump);
        self.talkspurt = true;
    }

    /// An RFC 4733 event packet in this stream (its own sequence number; the
    /// audio schedule does not move).
    pub(crate) fn event_packet(
        &mut self,
        payload_type: u8,
        event: TelephoneEvent,
        event_timestamp: u32,
        marker: bool,
    ) -> Bytes {
        let header = RtpHeader {
            payload_type,
            marker,
            sequence: self.sequence,
            timestamp: event_timestamp,
            ssrc: self.ssrc,
        };
        self.sequence = self.sequence.wrapping_add(1);
        build_packet(&header, &event.encode())
    }
}

/// One channel of a recording: samples on a timeline, silence where nothing
/// was written.
#[derive(Default)]
pub(crate) struct Track {
    samples: Vec<i16>,
    /// The last packet placed by [`Track::place`]: its stream, timestamp and
    /// position.
    anchor: Option<(u32, u32, usize)>,
    /// Samples not recorded because the track was full.
    overflow: u64,
}

impl Track {
    /// Writes `samples` at `position`, over whatever was there.
    pub(crate) fn write(&mut self, position: usize, samples: &[i16]) {
        let end = position
            .saturating_add(samples.len())
            .min(MAX_TRACK_SAMPLES);
        if end <= position {
            self.overflow += samples.len() as u64;
            return;
        }
        if self.samples.len() < end {
            self.samples.resize(end, 0);
        }
        let fits = end - position;
        self.samples[position..end].copy_from_slice(&samples[..fits]);
        self.overflow += (samples.len() - fits) as u64;
    }

    /// Places a received packet as a real-time recorder does: after the
    /// previous packet of the same stream by their timestamps' difference
    /// (so jitter does not smear it), unless that lands more than 100 ms from
    /// where it arrived (a gap, a new stream, a jump): then where it arrived.
    pub(crate) fn place(&mut self, arrival: usize, ssrc: u32, timestamp: u32, samples: &[i16]) {
        let predicted = self.anchor.and_then(|(last_ssrc, last_ts, last_pos)| {
            let step = i64::from(timestamp.wrapping_sub(last_ts) as i32);
            let position = last_pos as i64 + step;
            (last_ssrc == ssrc
                && position >= 0
                && (position - arrival as i64).abs() <= RESYNC_SAMPLES)
                .then_some(position as usize)
        });
        let position = predicted.unwrap_or(arrival);
        self.write(position, samples);
        self.anchor = Some((ssrc, timestamp, position));
    }

    /// Overwrites `range` with noise: the corrupt segment a provider's
    /// recorder leaves.
    pub(crate) fn fill_noise(&mut self, range: Range<usize>, rng: &mut Rng) {
        let noise: Vec<i16> = range
            .clone()
            .map(|_| (rng.below_or_equal(12_000) as i32 - 6_000) as i16)
            .collect();
        self.write(range.start, &noise);
    }

    pub(crate) fn samples(&self) -> &[i16] {
        &self.samples
    }

    pub(crate) fn overflow(&self) -> u64 {
        self.overflow
    }

    /// The samples, cut or padded with silence to `len`.
    pub(crate) fn into_samples(mut self, len: usize) -> Vec<i16> {
        self.samples.resize(len.min(MAX_TRACK_SAMPLES), 0);
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::parse_packet;
    use crate::media::signal::find_markers;

    #[allow(clippy::disallowed_methods)] // test epoch: only offsets from it matter
    fn epoch() -> Instant {
        Instant::now()
    }

    #[test]
    fn packets_follow_the_schedule_and_carry_the_signal() {
        let start = epoch();
        let mut outgoing = Outgoing::new(Signal::CALLER, Codec::Pcmu, start, &mut Rng::new(1));
        let mut track = Track::default();
        let mut first = None;
        for _ in 0..50 {
            let packet = outgoing.send_next();
            first.get_or_insert(parse_packet(&packet.bytes).unwrap().0);
            track.write(packet.index as usize * 160, &packet.samples);
        }
        let first = first.unwrap();
        assert!(first.marker, "the first packet starts a talkspurt");
        let (first_sequence, first_timestamp) = (first.sequence, first.timestamp);
        outgoing.skip_next();
        let resumed = outgoing.send_next();
        let (header, payload) = parse_packet(&resumed.bytes).unwrap();
        assert!(
            header.marker,
            "the first packet after a pause starts a talkspurt"
        );
        assert_eq!(header.sequence, first_sequence.wrapping_add(50));
        assert_eq!(header.timestamp, first_timestamp.wrapping_add(51 * 160));
        assert_eq!(payload.len(), 160);
        assert_eq!(outgoing.due(), start + Duration::from_millis(52 * 20));
        assert_eq!(find_markers(track.samples(), 8_000), vec![(0, 0)]);
    }

    #[test]
    fn a_rebase_jumps_the_sequence_and_timestamp_and_changes_the_source() {
        let mut outgoing =
            Outgoing::new(Signal::MEDIA_SERVER, Codec::Pcma, epoch(), &mut Rng::new(2));
        let before = parse_packet(&outgoing.send_next().bytes).unwrap().0;
        outgoing.rebase(77, 1_000, 20_000);
        let after = parse_packet(&outgoing.send_next().bytes).unwrap().0;
        assert_eq!(after.ssrc, 77);
        assert!(after.marker);
        assert_eq!(after.sequence, before.sequence.wrapping_add(1_001));
        assert_eq!(after.timestamp, before.timestamp.wrapping_add(20_160));
    }

    #[test]
    fn received_packets_are_placed_by_timestamp_within_jitter_and_by_arrival_beyond() {
        let mut track = Track::default();
        let packet = [1i16; 160];
        track.place(1_000, 5, 100, &packet);
        // 3 ms late: still right after the first.
        track.place(1_184, 5, 260, &packet);
        assert_eq!(track.samples().len(), 1_320);
        // A gap of 2 s with the timestamps running on: placed by timestamp,
        // which agrees with the arrival.
        track.place(17_320, 5, 260 + 16_160, &packet);
        assert_eq!(track.samples().len(), 17_480);
        // A new stream after a gap: by arrival.
        track.place(30_000, 6, 9, &packet);
        assert_eq!(track.samples().len(), 30_160);
        assert!(track.samples()[17_480..30_000].iter().all(|&s| s == 0));
        // The same stream with a timestamp jump: by arrival.
        track.place(30_160, 6, 9 + 50_000, &packet);
        assert_eq!(track.samples().len(), 30_320);
    }

    #[test]
    fn positions_are_samples_since_the_start() {
        let start = epoch();
        assert_eq!(
            position(start, start + Duration::from_millis(1_500)),
            12_000
        );
        assert_eq!(position(start + Duration::from_secs(1), start), 0);
    }
}
