//! RTP packets (RFC 3550) and RFC 4733 telephone-events, as the lab's media
//! peers write and read them. Pure; the lab's own, so that it checks
//! hotsite's relay rather than agree with it.

use bytes::{BufMut, Bytes, BytesMut};

/// Samples (and timestamp units) per 20 ms packet at 8 kHz.
pub const SAMPLES_PER_PACKET: usize = 160;

/// The fixed part of an RTP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// The payload type (0 PCMU, 8 PCMA, a dynamic one for telephone-event).
    pub payload_type: u8,
    /// The marker bit: the first packet of a talkspurt, or of an event.
    pub marker: bool,
    /// The sequence number.
    pub sequence: u16,
    /// The timestamp (8 kHz units for the lab's payloads).
    pub timestamp: u32,
    /// The synchronisation source.
    pub ssrc: u32,
}

/// One RFC 4733 telephone-event payload (4 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// The event: 0–9 digits, 10 `*`, 11 `#`, 12–15 `A`–`D`.
    pub event: u8,
    /// The E bit: the event is over (sent three times).
    pub end: bool,
    /// Volume in −dBm0 (0–63).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

/// An RTP packet: version 2, no padding, extension or CSRC.
pub fn build_packet(header: &RtpHeader, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(12 + payload.len());
    out.put_u8(0x80);
    out.put_u8(u8::from(header.marker) << 7 | (header.payload_type & 0x7F));
    out.put_u16(header.sequence);
    out.put_u32(header.timestamp);
    out.put_u32(header.ssrc);
    out.put_slice(payload);
    out.freeze()
}

/// The header and payload of an RTP packet; `None` for anything else (RTCP
/// multiplexed on the port included: payload types 72–76 are RTCP's 200–204).
pub fn parse_packet(datagram: &[u8]) -> Option<(RtpHeader, &[u8])> {
    if datagram.len() < 12 || datagram[0] >> 6 != 2 {
        return None;
    }
    let payload_type = datagram[1] & 0x7F;
    if (72..=76).contains(&payload_type) {
        return None;
    }
    let csrc_count = usize::from(datagram[0] & 0x0F);
    let mut start = 12 + 4 * csrc_count;
    if datagram[0] & 0x10 != 0 {
        let words = datagram.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    let mut end = datagram.len();
    if datagram[0] & 0x20 != 0 {
        let padding = usize::from(*datagram.last()?);
        end = end.checked_sub(padding)?;
    }
    let payload = datagram.get(start..end)?;
    let header = RtpHeader {
        payload_type,
        marker: datagram[1] & 0x80 != 0,
        sequence: u16::from_be_bytes([datagram[2], datagram[3]]),
        timestamp: u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]),
        ssrc: u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]),
    };
    Some((header, payload))
}

impl TelephoneEvent {
    /// The event code of a DTMF key (`0`–`9`, `*`, `#`, `A`–`D`).
    pub fn code(digit: char) -> Option<u8> {
        match digit.to_ascii_uppercase() {
            '0'..='9' => Some(digit as u8 - b'0'),
            '*' => Some(10),
            '#' => Some(11),
            key @ 'A'..='D' => Some(key as u8 - b'A' + 12),
            _ => None,
        }
    }

    /// The DTMF key of an event code, if it is one.
    pub fn digit(event: u8) -> Option<char> {
        match event {
            0..=9 => Some(char::from(b'0' + event)),
            10 => Some('*'),
            11 => Some('#'),
            12..=15 => Some(char::from(b'A' + event - 12)),
            _ => None,
        }
    }

    /// The 4-byte payload.
    pub fn encode(&self) -> [u8; 4] {
        let duration = self.duration.to_be_bytes();
        [
            self.event,
            u8::from(self.end) << 7 | (self.volume & 0x3F),
            duration[0],
            duration[1],
        ]
    }

    /// Reads a payload (extra bytes, such as a second event, are ignored).
    pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
        let bytes = payload.get(..4)?;
        Some(TelephoneEvent {
            event: bytes[0],
            end: bytes[1] & 0x80 != 0,
            volume: bytes[1] & 0x3F,
            duration: u16::from_be_bytes([bytes[2], bytes[3]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_round_trips() {
        let header = RtpHeader {
            payload_type: 8,
            marker: true,
            sequence: 65_535,
            timestamp: 0xDEAD_BEEF,
            ssrc: 42,
        };
        let bytes = build_packet(&header, &[1, 2, 3]);
        assert_eq!(&bytes[..2], &[0x80, 0x88]);
        assert_eq!(parse_packet(&bytes), Some((header, &[1u8, 2, 3][..])));
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        let mut bytes = vec![0xB1, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        bytes.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        bytes.extend_from_slice(&[0xBE, 0xDE, 0, 1, 7, 7, 7, 7]); // one extension word
        bytes.extend_from_slice(&[5, 6]); // payload
        bytes.extend_from_slice(&[0, 2]); // two bytes of padding
        let (header, payload) = parse_packet(&bytes).unwrap();
        assert_eq!((header.sequence, header.timestamp, header.ssrc), (1, 2, 3));
        assert_eq!(payload, &[5, 6]);
    }

    #[test]
    fn rtcp_and_garbage_are_not_rtp() {
        let rtcp = [0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(parse_packet(&rtcp), None);
        assert_eq!(parse_packet(b"hello there!"), None);
        assert_eq!(parse_packet(&[0x80, 0]), None);
        let mut padded_too_much = vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        padded_too_much.push(200);
        assert_eq!(parse_packet(&padded_too_much), None);
    }

    #[test]
    fn telephone_events_round_trip() {
        let event = TelephoneEvent {
            event: TelephoneEvent::code('#').unwrap(),
            end: true,
            volume: 10,
            duration: 800,
        };
        assert_eq!(event.encode(), [11, 0x8A, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::parse(&event.encode()), Some(event));
        assert_eq!(TelephoneEvent::digit(11), Some('#'));
        assert_eq!(TelephoneEvent::code('d'), Some(15));
        assert_eq!(TelephoneEvent::code('x'), None);
        assert_eq!(TelephoneEvent::parse(&[1, 2]), None);
    }
}
