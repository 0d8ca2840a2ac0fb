//! RTP packets (RFC 3550 §5.1), RTP/RTCP demultiplexing (RFC 5761 §4) and
//! extended sequence and timestamp counters that survive wraparound and a
//! media-server handover (SPEC R1).
//!
//! [`RtpPacket::parse`] is a zero-copy view: it borrows the CSRC list, the
//! header extension and the payload from the buffer and checks every length
//! against it, so hostile input yields an [`RtpError`], never a panic.

use thiserror::Error;

/// Length of the fixed RTP header (RFC 3550 §5.1).
pub const FIXED_HEADER_LEN: usize = 12;

/// What a datagram on a media port is (RFC 5761 §4: with RTP and RTCP on one
/// port, a second byte whose low 7 bits are 64–95 marks RTCP, i.e. RTCP packet
/// types 192–223).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// Version 2 and a payload type outside 64–95.
    Rtp,
    /// Version 2 and a payload type in 64–95 (RTCP packet types 192–223).
    Rtcp,
    /// Shorter than two bytes or not version 2 (e.g. STUN, DTLS).
    Other,
}

/// Classifies a datagram by its first two bytes (RFC 5761 §4).
pub fn classify(buf: &[u8]) -> PacketKind {
    if buf.len() < 2 || buf[0] >> 6 != 2 {
        return PacketKind::Other;
    }
    if (64..=95).contains(&(buf[1] & 0x7f)) {
        PacketKind::Rtcp
    } else {
        PacketKind::Rtp
    }
}

/// Why bytes are not an RTP packet; each names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtpError {
    /// Fewer bytes than the fixed header.
    #[error("too short: {len} bytes, the fixed RTP header needs 12")]
    TooShort { len: usize },
    /// The version field is not 2.
    #[error("RTP version {0}, expected 2")]
    Version(u8),
    /// The payload type is in RFC 5761's RTCP range.
    #[error("payload type {0} is in the RTCP range 64-95 (RFC 5761 section 4)")]
    Rtcp(u8),
    /// The CSRC list runs past the end of the packet.
    #[error("CSRC count {count} needs {needed} header bytes, the packet has {len}")]
    CsrcBeyondPacket {
        count: u8,
        needed: usize,
        len: usize,
    },
    /// The header extension (its 4-byte header or its data) runs past the end.
    #[error("header extension needs {needed} bytes, the packet has {len}")]
    ExtensionBeyondPacket { needed: usize, len: usize },
    /// The padding count is larger than what follows the header.
    #[error(
        "padding of {padding} bytes is beyond the packet: only {available} bytes follow the header"
    )]
    PaddingBeyondPacket { padding: usize, available: usize },
    /// The P bit is set but the last byte (which counts itself) is 0.
    #[error("padding bit set but the padding count is 0")]
    ZeroPadding,
    /// A packet value that cannot be written (serialisation only).
    #[error("cannot encode: {0}")]
    Unencodable(&'static str),
}

/// An RTP header extension (RFC 3550 §5.3.1): 16 profile-defined bits and
/// data whose length is a multiple of 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderExtension<'a> {
    pub profile: u16,
    pub data: &'a [u8],
}

/// A parsed RTP packet borrowing from its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// The CSRC list, 4 bytes per entry, big-endian (see [`RtpPacket::csrcs`]).
    pub csrc: &'a [u8],
    pub extension: Option<HeaderExtension<'a>>,
    pub payload: &'a [u8],
    /// Padding bytes at the end, counting the count byte itself; 0 when the
    /// P bit is clear.
    pub padding: u8,
}

impl<'a> RtpPacket<'a> {
    /// Parses and checks an RTP packet (RFC 3550 §5.1, §5.3.1; RTCP rejected
    /// per RFC 5761 §4).
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let len = buf.len();
        if len < FIXED_HEADER_LEN {
            return Err(RtpError::TooShort { len });
        }
        let version = buf[0] >> 6;
        if version != 2 {
            return Err(RtpError::Version(version));
        }
        let has_padding = buf[0] & 0x20 != 0;
        let has_extension = buf[0] & 0x10 != 0;
        let count = buf[0] & 0x0f;
        let marker = buf[1] & 0x80 != 0;
        let payload_type = buf[1] & 0x7f;
        if (64..=95).contains(&payload_type) {
            return Err(RtpError::Rtcp(payload_type));
        }
        let sequence = u16::from_be_bytes([buf[2], buf[3]]);
        let timestamp = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);

        let mut at = FIXED_HEADER_LEN + 4 * usize::from(count);
        if at > len {
            return Err(RtpError::CsrcBeyondPacket {
                count,
                needed: at,
                len,
            });
        }
        let csrc = &buf[FIXED_HEADER_LEN..at];

        let extension = if has_extension {
            if at + 4 > len {
                return Err(RtpError::ExtensionBeyondPacket {
                    needed: at + 4,
                    len,
                });
            }
            let profile = u16::from_be_bytes([buf[at], buf[at + 1]]);
            let words = usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]]));
            let end = at + 4 + 4 * words;
            if end > len {
                return Err(RtpError::ExtensionBeyondPacket { needed: end, len });
            }
            let data = &buf[at + 4..end];
            at = end;
            Some(HeaderExtension { profile, data })
        } else {
            None
        };

        let mut end = len;
        let mut padding = 0;
        if has_padding {
            let available = len - at;
            // The count byte is the packet's last byte; `available` may be 0.
            let count = match buf.get(len - 1) {
                Some(&c) if available > 0 => c,
                _ => {
                    return Err(RtpError::PaddingBeyondPacket {
                        padding: 1,
                        available,
                    })
                }
            };
            if count == 0 {
                return Err(RtpError::ZeroPadding);
            }
            if usize::from(count) > available {
                return Err(RtpError::PaddingBeyondPacket {
                    padding: usize::from(count),
                    available,
                });
            }
            padding = count;
            end = len - usize::from(count);
        }

        Ok(RtpPacket {
            marker,
            payload_type,
            sequence,
            timestamp,
            ssrc,
            csrc,
            extension,
            payload: &buf[at..end],
            padding,
        })
    }

    /// The CSRC identifiers.
    pub fn csrcs(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.csrc
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// Appends the packet's wire form to `out`. Padding bytes before the
    /// count byte are written as zeros (RFC 3550 leaves their value open).
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), RtpError> {
        if self.payload_type > 127 || (64..=95).contains(&self.payload_type) {
            return Err(RtpError::Unencodable("payload type above 127 or in 64-95"));
        }
        if self.csrc.len() % 4 != 0 || self.csrc.len() > 15 * 4 {
            return Err(RtpError::Unencodable(
                "CSRC list not a whole number of entries or above 15",
            ));
        }
        let words = match self.extension {
            Some(ext) if ext.data.len() % 4 != 0 => {
                return Err(RtpError::Unencodable(
                    "extension data not a multiple of 4 bytes",
                ))
            }
            Some(ext) => Some(
                u16::try_from(ext.data.len() / 4)
                    .map_err(|_| RtpError::Unencodable("extension data above 65535 words"))?,
            ),
            None => None,
        };
        let b0 = 0x80
            | if self.padding > 0 { 0x20 } else { 0 }
            | if words.is_some() { 0x10 } else { 0 }
            | (self.csrc.len() / 4) as u8;
        out.push(b0);
        out.push(if self.marker { 0x80 } else { 0 } | self.payload_type);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(self.csrc);
        if let (Some(ext), Some(words)) = (self.extension, words) {
            out.extend_from_slice(&ext.profile.to_be_bytes());
            out.extend_from_slice(&words.to_be_bytes());
            out.extend_from_slice(ext.data);
        }
        out.extend_from_slice(self.payload);
        if self.padding > 0 {
            out.extend(std::iter::repeat_n(0, usize::from(self.padding) - 1));
            out.push(self.padding);
        }
        Ok(())
    }
}

/// Why a packet began a new stream epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochStart {
    /// The first packet seen.
    First,
    /// The SSRC changed (e.g. a media-server handover, SPEC R1).
    NewSsrc,
    /// Same SSRC, but the counter jumped beyond the limits.
    Jump,
}

/// A counter value extended past its wire width, within a stream epoch.
///
/// Values are comparable only within one epoch: a handover restarts the
/// count at the new stream's raw value instead of producing a huge gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extended {
    /// 0 for the first stream, +1 for each new SSRC or jump.
    pub epoch: u32,
    /// The extended value; may be below the epoch's first raw value for
    /// packets reordered before it.
    pub value: i64,
    /// `Some` on the packet that began this epoch.
    pub started: Option<EpochStart>,
}

#[derive(Debug, Clone, Copy)]
struct SeqState {
    ssrc: u32,
    epoch: u32,
    highest: i64,
}

/// Extended RTP sequence numbers (RFC 3550 §A.1), robust to wraparound and
/// to a source change (SPEC R1).
///
/// A new SSRC, or a step further than `max_dropout` forward or
/// `max_misorder` backward from the highest number seen, starts a new epoch.
/// Unlike RFC 3550 §A.1 it does not wait for a second sequential packet to
/// confirm the new stream: the journal keeps every packet anyway, and the
/// epoch is a label for the merge, not a filter.
#[derive(Debug, Clone)]
pub struct SeqUnwrap {
    max_dropout: i64,
    max_misorder: i64,
    state: Option<SeqState>,
}

impl Default for SeqUnwrap {
    fn default() -> Self {
        SeqUnwrap::new(Self::MAX_DROPOUT, Self::MAX_MISORDER)
    }
}

impl SeqUnwrap {
    /// RFC 3550 §A.1's MAX_DROPOUT.
    pub const MAX_DROPOUT: u16 = 3000;
    /// RFC 3550 §A.1's MAX_MISORDER.
    pub const MAX_MISORDER: u16 = 100;

    /// Limits above 32767 are capped there: past half the sequence space the
    /// direction of a step is ambiguous.
    pub fn new(max_dropout: u16, max_misorder: u16) -> Self {
        SeqUnwrap {
            max_dropout: i64::from(max_dropout.min(i16::MAX as u16)),
            max_misorder: i64::from(max_misorder.min(i16::MAX as u16)),
            state: None,
        }
    }

    /// Extends `seq` of a packet from `ssrc`.
    pub fn unwrap(&mut self, ssrc: u32, seq: u16) -> Extended {
        let (epoch, why) = match self.state {
            None => (0, EpochStart::First),
            Some(s) if s.ssrc != ssrc => (s.epoch + 1, EpochStart::NewSsrc),
            Some(s) => {
                let delta = i64::from(seq.wrapping_sub(s.highest as u16) as i16);
                if delta > self.max_dropout || -delta > self.max_misorder {
                    (s.epoch + 1, EpochStart::Jump)
                } else {
                    let value = s.highest + delta;
                    if delta > 0 {
                        self.state = Some(SeqState {
                            highest: value,
                            ..s
                        });
                    }
                    return Extended {
                        epoch: s.epoch,
                        value,
                        started: None,
                    };
                }
            }
        };
        let value = i64::from(seq);
        self.state = Some(SeqState {
            ssrc,
            epoch,
            highest: value,
        });
        Extended {
            epoch,
            value,
            started: Some(why),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct TsState {
    ssrc: u32,
    epoch: u32,
    highest: i64,
    arrival_ns: u64,
}

/// Extended RTP timestamps, robust to wraparound and to a source change
/// (SPEC R1).
///
/// A timestamp is expected to advance with arrival time at the clock rate
/// (arrival times are inputs, sans-IO). The raw value is extended to the
/// 32-bit congruent value nearest that expectation; if it is more than
/// `max_skew` clock units away, or the SSRC changed, a new epoch starts.
/// So a long silence with a continuous clock stays one epoch, while a
/// handover's fresh random timestamp does not become a gap of hours.
#[derive(Debug, Clone)]
pub struct TsUnwrap {
    clock_rate: u32,
    max_skew: i64,
    state: Option<TsState>,
}

impl TsUnwrap {
    /// `max_skew` in clock units; e.g. one second is `clock_rate`.
    pub fn new(clock_rate: u32, max_skew: u32) -> Self {
        TsUnwrap {
            clock_rate,
            max_skew: i64::from(max_skew),
            state: None,
        }
    }

    /// Extends `ts` of a packet from `ssrc` that arrived at `arrival_ns`
    /// (ns since the call started).
    pub fn unwrap(&mut self, ssrc: u32, ts: u32, arrival_ns: u64) -> Extended {
        let start = match self.state {
            None => EpochStart::First,
            Some(s) if s.ssrc != ssrc => EpochStart::NewSsrc,
            Some(s) => {
                let elapsed = i128::from(arrival_ns.saturating_sub(s.arrival_ns));
                let advance = elapsed * i128::from(self.clock_rate) / 1_000_000_000;
                let expected = s.highest + i64::try_from(advance).unwrap_or(i64::MAX / 2);
                let skew = i64::from(ts.wrapping_sub(expected as u32) as i32);
                if skew.abs() <= self.max_skew {
                    let value = expected + skew;
                    if value >= s.highest {
                        self.state = Some(TsState {
                            highest: value,
                            arrival_ns,
                            ..s
                        });
                    }
                    return Extended {
                        epoch: s.epoch,
                        value,
                        started: None,
                    };
                }
                EpochStart::Jump
            }
        };
        let epoch = self.state.map_or(0, |s| s.epoch + 1);
        let value = i64::from(ts);
        self.state = Some(TsState {
            ssrc,
            epoch,
            highest: value,
            arrival_ns,
        });
        Extended {
            epoch,
            value,
            started: Some(start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn packet(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
        let p = RtpPacket {
            marker: false,
            payload_type: 0,
            sequence: seq,
            timestamp: ts,
            ssrc,
            csrc: &[],
            extension: None,
            payload: &[0xff; 160],
            padding: 0,
        };
        let mut out = Vec::new();
        p.write_to(&mut out).unwrap();
        out
    }

    #[test]
    fn parses_a_full_header() {
        let buf = [
            0xb1, 0x88, 0x12, 0x34, 0, 0, 0x01, 0x00, 0xde, 0xad, 0xbe,
            0xef, // fixed, P X CC=1, M, PT 8
            0, 0, 0, 7, // CSRC 7
            0xbe, 0xde, 0, 1, 1, 2, 3, 4, // extension, one word
            9, 9, // payload
            0, 0, 3, // padding 3
        ];
        let p = RtpPacket::parse(&buf).unwrap();
        assert!(p.marker);
        assert_eq!(p.payload_type, 8);
        assert_eq!(p.sequence, 0x1234);
        assert_eq!(p.timestamp, 256);
        assert_eq!(p.ssrc, 0xdead_beef);
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![7]);
        assert_eq!(
            p.extension,
            Some(HeaderExtension {
                profile: 0xbede,
                data: &[1, 2, 3, 4]
            })
        );
        assert_eq!(p.payload, &[9, 9]);
        assert_eq!(p.padding, 3);
        let mut out = Vec::new();
        p.write_to(&mut out).unwrap();
        assert_eq!(out, buf);
    }

    #[test]
    fn names_what_is_wrong() {
        let ok = packet(1, 2, 3);
        assert_eq!(
            RtpPacket::parse(&ok[..11]),
            Err(RtpError::TooShort { len: 11 })
        );
        let mut v1 = ok.clone();
        v1[0] = 0x40;
        assert_eq!(RtpPacket::parse(&v1), Err(RtpError::Version(1)));
        let mut rtcp = ok.clone();
        rtcp[1] = 200; // SR: PT 72 with the marker bit
        assert_eq!(RtpPacket::parse(&rtcp), Err(RtpError::Rtcp(72)));
        let mut cc = ok[..20].to_vec();
        cc[0] = 0x8f;
        assert_eq!(
            RtpPacket::parse(&cc),
            Err(RtpError::CsrcBeyondPacket {
                count: 15,
                needed: 72,
                len: 20
            })
        );
        let mut ext = ok[..20].to_vec();
        ext[0] = 0x90;
        ext[14] = 0;
        ext[15] = 2; // two words, 8 bytes: 12 + 4 + 8 = 24 > 20
        assert_eq!(
            RtpPacket::parse(&ext),
            Err(RtpError::ExtensionBeyondPacket {
                needed: 24,
                len: 20
            })
        );
        let mut pad = ok[..20].to_vec();
        pad[0] = 0xa0;
        pad[19] = 9; // 8 bytes follow the header
        assert_eq!(
            RtpPacket::parse(&pad),
            Err(RtpError::PaddingBeyondPacket {
                padding: 9,
                available: 8
            })
        );
        pad[19] = 0;
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::ZeroPadding));
        let mut bare = ok[..12].to_vec();
        bare[0] = 0xa0;
        assert!(matches!(
            RtpPacket::parse(&bare),
            Err(RtpError::PaddingBeyondPacket { available: 0, .. })
        ));
    }

    #[test]
    fn classifies_by_payload_type_range() {
        assert_eq!(classify(&packet(1, 2, 3)), PacketKind::Rtp);
        assert_eq!(classify(&[0x80, 200]), PacketKind::Rtcp); // SR
        assert_eq!(classify(&[0x81, 223]), PacketKind::Rtcp);
        assert_eq!(classify(&[0x80, 191]), PacketKind::Rtp); // PT 63, marker
        assert_eq!(classify(&[0x80, 224]), PacketKind::Rtp); // PT 96, marker
        assert_eq!(classify(&[0x00, 0x01]), PacketKind::Other); // STUN
        assert_eq!(classify(&[0x80]), PacketKind::Other);
    }

    #[test]
    fn sequence_wraps_within_an_epoch() {
        let mut u = SeqUnwrap::default();
        let first = u.unwrap(1, 65534);
        assert_eq!(first.started, Some(EpochStart::First));
        assert_eq!(u.unwrap(1, 65535).value, 65535);
        assert_eq!(u.unwrap(1, 1).value, 65537); // one lost across the wrap
        assert_eq!(u.unwrap(1, 0).value, 65536); // reordered, still epoch 0
        assert_eq!(u.unwrap(1, 2).epoch, 0);
    }

    #[test]
    fn handover_starts_a_new_sequence_epoch_not_a_gap() {
        // SPEC R1: after a handover the far side resumes with a new SSRC and
        // a jumped sequence; or, some servers, the same SSRC and a jump.
        let mut u = SeqUnwrap::default();
        for s in 100..110 {
            u.unwrap(0xaaaa, s);
        }
        let after = u.unwrap(0xbbbb, 40_000);
        assert_eq!(after.epoch, 1);
        assert_eq!(after.started, Some(EpochStart::NewSsrc));
        assert_eq!(after.value, 40_000);
        assert_eq!(u.unwrap(0xbbbb, 40_001).value, 40_001);
        let jump = u.unwrap(0xbbbb, 10);
        assert_eq!((jump.epoch, jump.started), (2, Some(EpochStart::Jump)));
        // A loss of up to MAX_DROPOUT is a gap, not a new epoch.
        let gap = u.unwrap(0xbbbb, 10 + 2999);
        assert_eq!((gap.epoch, gap.value, gap.started), (2, 3009, None));
        // A packet too far behind is a jump too (a backwards handover).
        assert_eq!(u.unwrap(0xbbbb, 3009 - 101).started, Some(EpochStart::Jump));
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn timestamp_wraps_and_follows_arrival_time() {
        let mut u = TsUnwrap::new(8000, 8000);
        let first = u.unwrap(1, u32::MAX - 159, 0);
        assert_eq!(first.started, Some(EpochStart::First));
        let next = u.unwrap(1, 0, 20 * MS);
        assert_eq!((next.epoch, next.value), (0, 1 << 32));
        // 15 s of silence with a continuous clock (DTX): one epoch.
        let later = u.unwrap(1, 120_000, 15_020 * MS);
        assert_eq!(
            (later.epoch, later.value, later.started),
            (0, (1 << 32) + 120_000, None)
        );
        // Reordered by 40 ms: small negative skew, same epoch.
        let late = u.unwrap(1, 120_000 - 320, 15_030 * MS);
        assert_eq!((late.epoch, late.value), (0, (1 << 32) + 120_000 - 320));
    }

    #[test]
    fn handover_starts_a_new_timestamp_epoch() {
        // SPEC R1: same SSRC, timestamp jumped by a server handover.
        let mut u = TsUnwrap::new(8000, 8000);
        for i in 0..10u32 {
            u.unwrap(7, 1000 + 160 * i, u64::from(i) * 20 * MS);
        }
        let jumped = u.unwrap(7, 3_000_000_000, 17_000 * MS);
        assert_eq!(
            (jumped.epoch, jumped.value, jumped.started),
            (1, 3_000_000_000, Some(EpochStart::Jump))
        );
        let steady = u.unwrap(7, 3_000_000_160, 17_020 * MS);
        assert_eq!((steady.epoch, steady.started), (1, None));
        let new_ssrc = u.unwrap(8, 5, 17_040 * MS);
        assert_eq!(
            (new_ssrc.epoch, new_ssrc.started),
            (2, Some(EpochStart::NewSsrc))
        );
    }

    fn valid_packet() -> impl Strategy<Value = Vec<u8>> {
        (
            any::<bool>(),
            (0u8..128).prop_filter("not RTCP", |pt| !(64..=95).contains(pt)),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..=15)
                .prop_map(|c| c.iter().flat_map(|b| [0, 0, 0, *b]).collect::<Vec<u8>>()),
            proptest::option::of((
                any::<u16>(),
                proptest::collection::vec(any::<u8>(), 0..8)
                    .prop_map(|w| w.iter().flat_map(|b| [*b; 4]).collect::<Vec<u8>>()),
            )),
            proptest::collection::vec(any::<u8>(), 0..300),
            0u8..=255,
        )
            .prop_map(|(marker, pt, seq, ts, ssrc, csrc, ext, payload, padding)| {
                let p = RtpPacket {
                    marker,
                    payload_type: pt,
                    sequence: seq,
                    timestamp: ts,
                    ssrc,
                    csrc: &csrc,
                    extension: ext.as_ref().map(|(profile, data)| HeaderExtension {
                        profile: *profile,
                        data,
                    }),
                    payload: &payload,
                    padding,
                };
                let mut out = Vec::new();
                p.write_to(&mut out).unwrap();
                out
            })
    }

    proptest! {
        #[test]
        fn parse_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(p) = RtpPacket::parse(&buf) {
                let mut out = Vec::new();
                p.write_to(&mut out).unwrap();
                prop_assert_eq!(out.len(), buf.len());
            }
        }

        #[test]
        fn serialize_parse_round_trip(buf in valid_packet()) {
            let p = RtpPacket::parse(&buf).unwrap();
            let mut out = Vec::new();
            p.write_to(&mut out).unwrap();
            prop_assert_eq!(&out, &buf);
            prop_assert_eq!(classify(&buf), PacketKind::Rtp);
        }

        #[test]
        fn in_order_sequences_stay_in_one_epoch(start in any::<u16>(), n in 1i64..3000) {
            // Consecutive numbers across any wrap: values count up by one.
            let mut u = SeqUnwrap::default();
            let base = u.unwrap(5, start).value;
            for i in 1..n {
                let e = u.unwrap(5, start.wrapping_add(i as u16));
                prop_assert_eq!((e.epoch, e.value), (0, base + i));
            }
        }
    }
}
