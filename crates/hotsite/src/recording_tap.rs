//! The voice proxy's media relay feeding the edge recorder (SPEC R1): the
//! relay's [`MediaTap`] turned into the recorder's journal calls and notes.
//! The two crates know nothing of each other; this is where they meet.

use std::sync::Arc;

use hotsite_recording::journal::Direction;
use hotsite_recording::recorder::Recorder;
use hotsite_voice::{AnchoredCall, Leg, MediaDirection, MediaEnd, MediaTap};
use serde_json::json;

/// Every anchored call's datagrams and SDPs, to the recorder.
pub(crate) struct RecorderTap(pub(crate) Recorder);

impl MediaTap for RecorderTap {
    fn call_anchored(&self, call: &AnchoredCall) {
        let note = json!({
            "type": "call",
            "call_id": &*call.call_id,
            "trunk": call.trunk,
            "group": call.group,
            "media_region": call.media_region,
            "failover_region": call.failover_region,
            "started_unix_ms": call.started_unix_ms,
        });
        self.0.call_started(
            &call.call_id,
            call.started_unix_ms.saturating_mul(1_000_000),
            note.to_string().into_bytes(),
        );
    }

    fn sdp(
        &self,
        call_id: &Arc<str>,
        from: Leg,
        at_unix_ns: u64,
        payload_types: &[(u8, String)],
        direction: MediaDirection,
    ) {
        let types: serde_json::Map<String, serde_json::Value> = payload_types
            .iter()
            .map(|(pt, name)| (pt.to_string(), json!(name)))
            .collect();
        let note = json!({
            "type": "sdp",
            "from": leg(from),
            "direction": match direction {
                MediaDirection::SendRecv => "sendrecv",
                MediaDirection::SendOnly => "sendonly",
                MediaDirection::RecvOnly => "recvonly",
                MediaDirection::Inactive => "inactive",
            },
            "payload_types": types,
        });
        self.0
            .note(call_id, at_unix_ns, note.to_string().into_bytes());
    }

    fn packet(&self, call_id: &Arc<str>, from: Leg, arrival_unix_ns: u64, datagram: &[u8]) {
        let direction = match from {
            Leg::A => Direction::AtoB,
            Leg::B => Direction::BtoA,
        };
        self.0.packet(call_id, direction, arrival_unix_ns, datagram);
    }

    fn call_ended(&self, call_id: &Arc<str>, at_unix_ns: u64, end: MediaEnd) {
        let cause = match end {
            MediaEnd::Bye => "bye",
            MediaEnd::Timeout => "timeout",
            MediaEnd::Cancelled => "cancel",
            MediaEnd::Failed => "error",
        };
        let note = json!({"type": "end", "cause": cause});
        self.0
            .call_ended(call_id, at_unix_ns, note.to_string().into_bytes());
    }
}

fn leg(leg: Leg) -> &'static str {
    match leg {
        Leg::A => "a",
        Leg::B => "b",
    }
}
