//! The recorder's notes in the journal (kind 4) as the merge reads them: the
//! call's trunk and regions (V3), the SDP each leg sent (payload types, and
//! hold, SPEC R5), how the call ended. Unknown note types are skipped.
//!
//! Hold comes from SDP only (R5): a leg whose latest SDP is `sendonly` or
//! `inactive` holds the call until that leg's SDP says otherwise. Silence
//! and missing packets never make a hold.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::g711::Law;
use crate::journal::Direction;

/// `{"type":"call", …}`: who and where (SPEC V3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallNote {
    #[serde(default)]
    pub call_id: Option<String>,
    #[serde(default)]
    pub trunk: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub media_region: Option<String>,
    #[serde(default)]
    pub failover_region: Option<String>,
    #[serde(default)]
    pub started_unix_ms: Option<i64>,
}

/// A call leg: `a` the caller's or PBX's side, `b` the trunk's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Leg {
    A,
    B,
}

/// An SDP media direction attribute (RFC 4566 §6, RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpDirection {
    Sendrecv,
    Sendonly,
    Recvonly,
    Inactive,
}

/// `{"type":"sdp", …}`: the SDP an offer or answer from leg `from` carried.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SdpNote {
    pub from: Leg,
    pub direction: SdpDirection,
    /// Payload type number (as a string, JSON keys are) to "name/rate".
    #[serde(default)]
    pub payload_types: BTreeMap<String, String>,
}

/// `{"type":"end", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EndNote {
    pub cause: String,
}

/// A note as the merge reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Note {
    Call(CallNote),
    Sdp(SdpNote),
    End(EndNote),
    /// A type the merge does not use.
    #[serde(other)]
    Other,
}

impl Note {
    /// Parses a note's JSON; `None` if it is not a note of a known shape.
    pub fn parse(json: &[u8]) -> Option<Note> {
        serde_json::from_slice(json).ok()
    }
}

/// What a payload type carries, as far as the merge cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// G.711 audio: decoded.
    G711(Law),
    /// Comfort noise (RFC 3389): the sender's silence, no samples.
    ComfortNoise,
    /// RFC 4733 telephone-events (DTMF).
    TelephoneEvent,
    /// Any other codec, or an unknown number: listed as undecodable, never
    /// invented (R2).
    Other,
}

fn kind_of(name: &str) -> PayloadKind {
    let mut parts = name.split('/');
    let encoding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let rate = parts.next().map(str::trim);
    match (encoding.as_str(), rate) {
        ("pcmu", Some("8000")) => PayloadKind::G711(Law::Ulaw),
        ("pcma", Some("8000")) => PayloadKind::G711(Law::Alaw),
        ("cn", Some("8000")) => PayloadKind::ComfortNoise,
        ("telephone-event", Some("8000")) => PayloadKind::TelephoneEvent,
        _ => PayloadKind::Other,
    }
}

/// The static payload types of RFC 3551 table 4 that a call may carry.
fn static_name(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU/8000",
        3 => "GSM/8000",
        4 => "G723/8000",
        8 => "PCMA/8000",
        9 => "G722/8000",
        13 => "CN/8000",
        18 => "G729/8000",
        _ => return None,
    })
}

/// Payload type numbers to encodings, from the legs' SDP notes.
///
/// RTP sent a→b uses the numbers b's SDP declared (RFC 3264 §5.1: an SDP
/// lists what its sender receives); the other leg's map and the static
/// table of RFC 3551 are the fallbacks.
#[derive(Debug, Clone)]
pub struct PayloadTypes {
    names: [BTreeMap<u8, String>; 2],
    kinds: [[PayloadKind; 128]; 2],
}

impl Default for PayloadTypes {
    fn default() -> Self {
        let mut types = PayloadTypes {
            names: [BTreeMap::new(), BTreeMap::new()],
            kinds: [[PayloadKind::Other; 128]; 2],
        };
        types.rebuild();
        types
    }
}

impl PayloadTypes {
    /// Takes the payload types of an SDP note from `leg`; entries that are
    /// not a number 0–127 are ignored.
    pub fn sdp(&mut self, leg: Leg, payload_types: &BTreeMap<String, String>) {
        let map = &mut self.names[leg_index(leg)];
        for (pt, name) in payload_types {
            if let Ok(pt) = pt.trim().parse::<u8>() {
                if pt < 128 {
                    map.insert(pt, name.clone());
                }
            }
        }
        self.rebuild();
    }

    fn rebuild(&mut self) {
        for direction in [Direction::AtoB, Direction::BtoA] {
            for pt in 0..128u8 {
                self.kinds[dir_index(direction)][usize::from(pt)] =
                    self.name(direction, pt).map_or(PayloadKind::Other, kind_of);
            }
        }
    }

    /// What payload type `pt` carries on packets going `direction`.
    pub fn kind(&self, direction: Direction, pt: u8) -> PayloadKind {
        self.kinds[dir_index(direction)][usize::from(pt & 0x7f)]
    }

    /// The encoding name ("PCMU/8000") of `pt` going `direction`, if known.
    pub fn name(&self, direction: Direction, pt: u8) -> Option<&str> {
        let (receiver, sender) = match direction {
            Direction::AtoB => (1, 0),
            Direction::BtoA => (0, 1),
        };
        self.names[receiver]
            .get(&pt)
            .or_else(|| self.names[sender].get(&pt))
            .map(String::as_str)
            .or_else(|| static_name(pt))
    }
}

pub(crate) fn leg_index(leg: Leg) -> usize {
    match leg {
        Leg::A => 0,
        Leg::B => 1,
    }
}

pub(crate) fn dir_index(direction: Direction) -> usize {
    match direction {
        Direction::AtoB => 0,
        Direction::BtoA => 1,
    }
}

/// A time the call was on hold, from SDP (R5). Times in ns since the Unix
/// epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    /// The leg whose SDP put the call on hold, and the direction it sent.
    pub by: Leg,
    pub direction: SdpDirection,
    /// False when the call ended (or the journal did) while on hold.
    pub ended_by_sdp: bool,
}

/// Follows the legs' SDP directions and lists the holds (R5). Fed only SDP
/// notes: nothing about packets or silence reaches it.
#[derive(Debug, Default)]
pub struct HoldTracker {
    holding: [Option<SdpDirection>; 2],
    open: Option<(u64, Leg, SdpDirection)>,
    holds: Vec<Hold>,
}

impl HoldTracker {
    /// An SDP from `from` with `direction` at `at_unix_ns`.
    pub fn sdp(&mut self, at_unix_ns: u64, from: Leg, direction: SdpDirection) {
        let holds = matches!(direction, SdpDirection::Sendonly | SdpDirection::Inactive);
        self.holding[leg_index(from)] = holds.then_some(direction);
        match (self.open, self.holding.iter().any(Option::is_some)) {
            (None, true) => self.open = Some((at_unix_ns, from, direction)),
            (Some((start, by, direction)), false) => {
                self.holds.push(Hold {
                    start_unix_ns: start,
                    end_unix_ns: at_unix_ns,
                    by,
                    direction,
                    ended_by_sdp: true,
                });
                self.open = None;
            }
            _ => {}
        }
    }

    /// Whether SDP has the call on hold now.
    pub fn on_hold(&self) -> bool {
        self.open.is_some()
    }

    /// The holds, one still open closed at `end_unix_ns` (the call's end).
    pub fn finish(mut self, end_unix_ns: u64) -> Vec<Hold> {
        if let Some((start, by, direction)) = self.open.take() {
            self.holds.push(Hold {
                start_unix_ns: start,
                end_unix_ns: end_unix_ns.max(start),
                by,
                direction,
                ended_by_sdp: false,
            });
        }
        self.holds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_recorders_notes_and_skips_unknown_ones() {
        let call = br#"{"type":"call","call_id":"c1","trunk":"t1","group":"g","media_region":"eu-west","failover_region":"eu-central","started_unix_ms":1700000000000}"#;
        match Note::parse(call) {
            Some(Note::Call(c)) => {
                assert_eq!(c.media_region.as_deref(), Some("eu-west"));
                assert_eq!(c.failover_region.as_deref(), Some("eu-central"));
                assert_eq!(c.started_unix_ms, Some(1_700_000_000_000));
            }
            other => panic!("{other:?}"),
        }
        let sdp = br#"{"type":"sdp","from":"b","direction":"sendonly","payload_types":{"0":"PCMU/8000","101":"telephone-event/8000"}}"#;
        assert!(matches!(
            Note::parse(sdp),
            Some(Note::Sdp(SdpNote {
                from: Leg::B,
                direction: SdpDirection::Sendonly,
                ..
            }))
        ));
        assert_eq!(
            Note::parse(br#"{"type":"end","cause":"bye"}"#),
            Some(Note::End(EndNote {
                cause: "bye".into()
            }))
        );
        assert_eq!(
            Note::parse(br#"{"type":"rtcp-stats","x":1}"#),
            Some(Note::Other)
        );
        assert_eq!(Note::parse(b"not json"), None);
    }

    #[test]
    fn payload_types_follow_the_receivers_sdp() {
        let mut types = PayloadTypes::default();
        assert_eq!(types.kind(Direction::AtoB, 0), PayloadKind::G711(Law::Ulaw));
        assert_eq!(types.kind(Direction::AtoB, 8), PayloadKind::G711(Law::Alaw));
        assert_eq!(types.kind(Direction::AtoB, 18), PayloadKind::Other);
        assert_eq!(types.kind(Direction::AtoB, 101), PayloadKind::Other);
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        types.sdp(
            Leg::B,
            &map(&[("101", "telephone-event/8000"), ("96", "opus/48000/2")]),
        );
        types.sdp(Leg::A, &map(&[("100", "telephone-event/8000")]));
        assert_eq!(
            types.kind(Direction::AtoB, 101),
            PayloadKind::TelephoneEvent
        );
        assert_eq!(
            types.kind(Direction::BtoA, 100),
            PayloadKind::TelephoneEvent
        );
        // The other leg's map is the fallback.
        assert_eq!(
            types.kind(Direction::BtoA, 101),
            PayloadKind::TelephoneEvent
        );
        assert_eq!(types.kind(Direction::AtoB, 96), PayloadKind::Other);
        assert_eq!(types.name(Direction::AtoB, 96), Some("opus/48000/2"));
        assert_eq!(types.name(Direction::AtoB, 18), Some("G729/8000"));
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn sendonly_holds_until_sendrecv_r5() {
        let mut h = HoldTracker::default();
        h.sdp(0, Leg::A, SdpDirection::Sendrecv);
        h.sdp(S, Leg::B, SdpDirection::Sendrecv);
        assert!(!h.on_hold());
        h.sdp(10 * S, Leg::A, SdpDirection::Sendonly);
        // The answer (recvonly) does not end it.
        h.sdp(10 * S + 1, Leg::B, SdpDirection::Recvonly);
        assert!(h.on_hold());
        h.sdp(30 * S, Leg::A, SdpDirection::Sendrecv);
        h.sdp(30 * S + 1, Leg::B, SdpDirection::Sendrecv);
        h.sdp(40 * S, Leg::B, SdpDirection::Inactive);
        let holds = h.finish(50 * S);
        assert_eq!(
            holds,
            vec![
                Hold {
                    start_unix_ns: 10 * S,
                    end_unix_ns: 30 * S,
                    by: Leg::A,
                    direction: SdpDirection::Sendonly,
                    ended_by_sdp: true
                },
                Hold {
                    start_unix_ns: 40 * S,
                    end_unix_ns: 50 * S,
                    by: Leg::B,
                    direction: SdpDirection::Inactive,
                    ended_by_sdp: false
                }
            ]
        );
    }

    #[test]
    fn both_legs_holding_ends_when_both_resume_r5() {
        let mut h = HoldTracker::default();
        h.sdp(S, Leg::A, SdpDirection::Inactive);
        h.sdp(2 * S, Leg::B, SdpDirection::Sendonly);
        h.sdp(3 * S, Leg::A, SdpDirection::Sendrecv);
        assert!(h.on_hold(), "b still holds");
        h.sdp(4 * S, Leg::B, SdpDirection::Sendrecv);
        let holds = h.finish(5 * S);
        assert_eq!(holds.len(), 1);
        assert_eq!((holds[0].start_unix_ns, holds[0].end_unix_ns), (S, 4 * S));
    }
}
