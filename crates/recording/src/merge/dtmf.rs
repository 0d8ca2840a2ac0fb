//! DTMF from RFC 4733 telephone-event packets in the edge journal (SPEC R5:
//! DTMF sent during the failover window is kept, whatever the cloud
//! recorded). One event is one (SSRC, RTP timestamp): its packets repeat the
//! start timestamp with a growing duration, and the end packet is sent three
//! times (RFC 4733 §2.5.1.4); they become one event.

use std::collections::VecDeque;

/// The payload of a telephone-event packet (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// 0–9, 10 `*`, 11 `#`, 12–15 A–D, 16 flash.
    pub event: u8,
    pub end: bool,
    /// Power level in −dBm0, 0–63.
    pub volume: u8,
    /// Since the event's start, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// The first event block of a payload; `None` if shorter than 4 bytes.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let b = payload.get(..4)?;
        Some(TelephoneEvent {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3f,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// Its four bytes (tests and the lab send them).
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            if self.end { 0x80 } else { 0 } | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }
}

/// The DTMF digit or signal name of an event code.
pub fn digit(event: u8) -> String {
    match event {
        0..=9 => char::from(b'0' + event).to_string(),
        10 => "*".into(),
        11 => "#".into(),
        12..=15 => char::from(b'A' + event - 12).to_string(),
        16 => "flash".into(),
        other => format!("event {other}"),
    }
}

/// One DTMF event as heard at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dtmf {
    /// 0 for a→b, 1 for b→a.
    pub direction: usize,
    pub ssrc: u32,
    pub event: u8,
    /// Where the event starts, in samples from the merged file's start
    /// (from its RTP timestamp in its stream epoch).
    pub start: i64,
    /// The longest duration seen, in samples.
    pub duration: u32,
    /// Whether an end packet was seen.
    pub end: bool,
    pub volume: u8,
    /// Packets carrying it, retransmissions included.
    pub packets: u32,
}

/// How many recently closed events are remembered, so a late end
/// retransmission does not open the same event again.
const RECENT: usize = 16;

/// Collects DTMF events, one per (direction, SSRC, timestamp).
#[derive(Debug, Default)]
pub struct DtmfTracker {
    open: [Option<(u32, Dtmf)>; 2],
    recent: VecDeque<(usize, u32, u32)>,
    events: Vec<Dtmf>,
}

impl DtmfTracker {
    /// A telephone-event packet going `direction` (0 a→b, 1 b→a) from `ssrc`
    /// with RTP timestamp `ts`, whose event starts at sample `start`.
    pub fn packet(&mut self, direction: usize, ssrc: u32, ts: u32, start: i64, ev: TelephoneEvent) {
        if let Some((open_ts, open)) = &mut self.open[direction] {
            if *open_ts == ts && open.ssrc == ssrc {
                open.duration = open.duration.max(u32::from(ev.duration));
                open.end |= ev.end;
                open.packets += 1;
                return;
            }
        }
        if self.recent.contains(&(direction, ssrc, ts)) {
            return;
        }
        self.close(direction);
        self.open[direction] = Some((
            ts,
            Dtmf {
                direction,
                ssrc,
                event: ev.event,
                start,
                duration: u32::from(ev.duration),
                end: ev.end,
                volume: ev.volume,
                packets: 1,
            },
        ));
    }

    fn close(&mut self, direction: usize) {
        if let Some((ts, event)) = self.open[direction].take() {
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back((direction, event.ssrc, ts));
            self.events.push(event);
        }
    }

    /// The events, by start.
    pub fn finish(mut self) -> Vec<Dtmf> {
        self.close(0);
        self.close(1);
        self.events.sort_by_key(|e| (e.start, e.direction));
        self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: u8, duration: u16, end: bool) -> TelephoneEvent {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
    }

    #[test]
    fn payload_round_trip() {
        let e = ev(11, 1280, true);
        assert_eq!(TelephoneEvent::parse(&e.to_bytes()), Some(e));
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), None);
        assert_eq!(digit(10), "*");
        assert_eq!(digit(13), "B");
    }

    #[test]
    fn end_retransmissions_make_one_event_r5() {
        let mut t = DtmfTracker::default();
        // Digit 5: start, two updates, the end three times (RFC 4733).
        for d in [160, 320, 480] {
            t.packet(0, 7, 8000, 100, ev(5, d, false));
        }
        for _ in 0..3 {
            t.packet(0, 7, 8000, 100, ev(5, 640, true));
        }
        // Digit 9 on the other direction meanwhile, then digit 1 again.
        t.packet(1, 9, 500, 120, ev(9, 160, true));
        t.packet(0, 7, 9600, 1700, ev(1, 320, true));
        // A late retransmission of digit 5's end: not a new event.
        t.packet(0, 7, 8000, 100, ev(5, 640, true));
        let events = t.finish();
        let brief: Vec<_> = events
            .iter()
            .map(|e| (e.direction, e.event, e.start, e.duration, e.end, e.packets))
            .collect();
        assert_eq!(
            brief,
            vec![
                (0, 5, 100, 640, true, 6),
                (1, 9, 120, 160, true, 1),
                (0, 1, 1700, 320, true, 1)
            ]
        );
    }
}
