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
        self.0.call_started(
            &call.call_id,
            call.started_unix_ms.saturating_mul(1_000_000),
            call_note(call),
        );
    }

    /// Another `call` note with the trunk the call moved to: the merge keeps
    /// the last call note it reads, so the manifest names the trunk (and its
    /// regions) that carried the call, not the first one tried (SPEC V3).
    fn call_moved(&self, call: &AnchoredCall, at_unix_ns: u64) {
        self.0.note(&call.call_id, at_unix_ns, call_note(call));
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

/// `{"type":"call", …}`: who and where (SPEC V3), as the merge reads it.
fn call_note(call: &AnchoredCall) -> Vec<u8> {
    json!({
        "type": "call",
        "call_id": &*call.call_id,
        "trunk": call.trunk,
        "group": call.group,
        "media_region": call.media_region,
        "failover_region": call.failover_region,
        "started_unix_ms": call.started_unix_ms,
    })
    .to_string()
    .into_bytes()
}

fn leg(leg: Leg) -> &'static str {
    match leg {
        Leg::A => "a",
        Leg::B => "b",
    }
}

#[cfg(test)]
mod tests {
    use hotsite_recording::journal::JournalReader;
    use hotsite_recording::merge::notes::Note;
    use hotsite_recording::recorder::RecorderConfig;

    use super::*;

    fn call(trunk: &str, media_region: &str, failover_region: &str) -> AnchoredCall {
        AnchoredCall {
            call_id: "tap-1".into(),
            trunk: trunk.into(),
            group: "pstn".into(),
            media_region: media_region.into(),
            failover_region: failover_region.into(),
            started_unix_ms: 1_700_000_000_000,
        }
    }

    /// SPEC V3: a call anchored on trunk t1 that moved (failover) to t2:
    /// the journal's last call note, the one the merge and the signed
    /// manifest take, names t2 and its regions, with the call's start.
    #[test]
    fn a_move_writes_the_answering_trunks_call_note_last() {
        let dir = tempfile::tempdir().unwrap();
        let (finished_tx, mut finished) = tokio::sync::mpsc::unbounded_channel();
        let recorder = Recorder::start(RecorderConfig::new(dir.path()), finished_tx).unwrap();
        let tap = RecorderTap(recorder.clone());
        tap.call_anchored(&call("t1", "eu-west", "eu-central"));
        let moved = call("t2", "us-east", "us-west");
        tap.call_moved(&moved, 1_700_000_001_000_000_000);
        tap.call_ended(&moved.call_id, 1_700_000_002_000_000_000, MediaEnd::Bye);
        let done = finished.blocking_recv().expect("the journal finished");
        recorder.stop();
        let journal = JournalReader::open(&done.dir).unwrap();
        let last_call = journal
            .notes()
            .filter_map(|note| match Note::parse(&note.packet) {
                Some(Note::Call(call)) => Some(call),
                _ => None,
            })
            .last()
            .expect("a call note");
        assert_eq!(
            (
                last_call.trunk.as_deref(),
                last_call.media_region.as_deref(),
                last_call.failover_region.as_deref(),
                last_call.started_unix_ms
            ),
            (
                Some("t2"),
                Some("us-east"),
                Some("us-west"),
                Some(1_700_000_000_000)
            )
        );
    }
}
