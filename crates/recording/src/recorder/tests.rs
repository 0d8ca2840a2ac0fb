use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::journal::{JournalReader, Record, RecordKind, Tail};

fn packets(records: &[Record]) -> Vec<&Record> {
    records
        .iter()
        .filter(|r| r.kind == RecordKind::Packet)
        .collect()
}

fn recorder(dir: &Path) -> (Recorder, tokio::sync::mpsc::UnboundedReceiver<Finished>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut config = RecorderConfig::new(dir);
    config.sync_interval = Duration::from_millis(10);
    (Recorder::start(config, tx).expect("recorder starts"), rx)
}

fn finished(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Finished>) -> Finished {
    // Bounded: the writer thread answers within milliseconds.
    for _ in 0..500 {
        if let Ok(f) = rx.try_recv() {
            return f;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no finished journal within 5 s");
}

/// R1: both directions of a call, in arrival order, with the call's notes,
/// end up in its journal, which is complete after the call ends.
#[test]
fn a_calls_datagrams_both_ways_are_journaled_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (rec, mut rx) = recorder(tmp.path());
    let call: Arc<str> = Arc::from("abc@host/1");
    let t0 = 1_764_000_000_000_000_000u64;
    rec.call_started(
        &call,
        t0,
        br#"{"type":"call","call_id":"abc@host/1"}"#.to_vec(),
    );
    for i in 0..1200u64 {
        let dir = if i % 2 == 0 {
            Direction::AtoB
        } else {
            Direction::BtoA
        };
        rec.packet(&call, dir, t0 + i * 10_000_000, &i.to_be_bytes());
    }
    rec.call_ended(
        &call,
        t0 + 12_000_000_000,
        br#"{"type":"end","cause":"bye"}"#.to_vec(),
    );
    let done = finished(&mut rx);
    assert_eq!(&*done.call_id, "abc@host/1");
    assert!(done.dir.starts_with(tmp.path()));
    let name = done.dir.file_name().unwrap().to_str().unwrap();
    assert_eq!(name, "1764000000000-abc_host_1");
    let summary = done.summary.expect("journal finished");
    assert!(
        summary.segments >= 3,
        "1,200 records seal at least 3 segments of 500"
    );
    let journal = JournalReader::open(&done.dir).unwrap();
    assert_eq!(journal.tail, Tail::Complete);
    let packets = packets(&journal.records);
    assert_eq!(packets.len(), 1200);
    assert_eq!(journal.notes().count(), 2, "the call note and the end note");
    for (i, r) in packets.iter().enumerate() {
        assert_eq!(&r.packet[..], &(i as u64).to_be_bytes());
    }
    let stats = rec.stats();
    assert_eq!(
        (stats.packets, stats.calls_finished, stats.calls_open),
        (1200, 1, 0)
    );
    rec.stop();
}

/// A datagram of a call that was never anchored is counted, not written.
#[test]
fn datagrams_of_unknown_calls_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let (rec, _rx) = recorder(tmp.path());
    rec.packet(&Arc::from("nobody"), Direction::AtoB, 1, b"x");
    rec.stop();
    assert_eq!(rec.stats().dropped_unknown_call, 1);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// Stopping with calls open finishes their journals (sealed, complete) and
/// hands them to the pipeline.
#[test]
fn stop_finishes_open_calls() {
    let tmp = tempfile::tempdir().unwrap();
    let (rec, mut rx) = recorder(tmp.path());
    let call: Arc<str> = Arc::from("open-call");
    rec.call_started(&call, 5_000_000, b"{}".to_vec());
    rec.packet(&call, Direction::BtoA, 6_000_000, b"rtp");
    rec.stop();
    let done = finished(&mut rx);
    let journal = JournalReader::open(&done.dir).unwrap();
    assert_eq!(journal.tail, Tail::Complete);
    assert_eq!(packets(&journal.records).len(), 1);
    let end = journal.notes().last().expect("an end note");
    assert_eq!(&end.packet[..], br#"{"type":"end","cause":"shutdown"}"#);
}

/// A journal that cannot be created (the recordings folder was replaced by
/// a file: an unmounted disk, say) is an error counted and logged; the call
/// is still handed on, without a summary.
#[test]
fn a_journal_that_cannot_be_written_is_counted_and_handed_on() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("calls");
    let (rec, mut rx) = recorder(&root);
    let call: Arc<str> = Arc::from("blocked");
    std::fs::remove_dir(&root).unwrap();
    std::fs::write(&root, b"a file, not a dir").unwrap();
    rec.call_started(&call, 7_000_000, b"{}".to_vec());
    rec.packet(&call, Direction::AtoB, 8_000_000, b"rtp");
    rec.call_ended(&call, 9_000_000, b"{}".to_vec());
    let done = finished(&mut rx);
    assert!(done.summary.is_none());
    assert!(rec.stats().write_errors >= 1);
    rec.stop();
}

#[test]
fn call_dir_names_are_safe_and_sortable() {
    assert_eq!(call_dir_name("a/b\\c@d e", 12), "12-a_b_c_d_e");
    assert_eq!(call_dir_name("..", 1), "1-..");
    let long = "x".repeat(500);
    assert_eq!(call_dir_name(&long, 1).len(), 2 + 96);
}

/// R1, R5: a queue far too small for the burst drops datagrams (counted,
/// and noted in the journal) but never a call's start, notes or end, and
/// never reorders them: the journal is complete with every note.
#[test]
fn a_full_queue_drops_datagrams_but_never_a_calls_start_notes_or_end() {
    let tmp = tempfile::tempdir().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut config = RecorderConfig::new(tmp.path());
    config.queue_capacity = 2;
    let rec = Recorder::start(config, tx).unwrap();
    let call: Arc<str> = Arc::from("burst");
    rec.call_started(&call, 1_000, br#"{"type":"call"}"#.to_vec());
    let sent = 20_000u64;
    for i in 0..sent {
        rec.packet(&call, Direction::AtoB, 2_000 + i, &[0x80; 172]);
        if i == sent / 2 {
            rec.note(
                &call,
                2_000 + i,
                br#"{"type":"sdp","from":"a","direction":"sendonly"}"#.to_vec(),
            );
        }
    }
    rec.call_ended(
        &call,
        10_000_000,
        br#"{"type":"end","cause":"bye"}"#.to_vec(),
    );
    let done = finished(&mut rx);
    let journal = JournalReader::open(&done.dir).unwrap();
    assert_eq!(journal.tail, Tail::Complete);
    let stats = rec.stats();
    let written = packets(&journal.records).len() as u64;
    assert_eq!(
        written + stats.dropped_queue_full,
        sent,
        "every datagram written or counted"
    );
    let notes: Vec<String> = journal
        .notes()
        .map(|n| String::from_utf8_lossy(&n.packet).into_owned())
        .collect();
    assert!(notes[0].contains(r#""type":"call""#), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("sendonly")), "{notes:?}");
    assert!(
        notes.last().unwrap().contains(r#""type":"end""#),
        "{notes:?}"
    );
    if stats.dropped_queue_full > 0 {
        let loss = format!(r#""datagrams":{}"#, stats.dropped_queue_full);
        assert!(
            notes.iter().any(|n| n.contains(&loss)),
            "the loss is noted: {notes:?}"
        );
    }
    // The note sent mid-burst sits between the datagrams sent around it.
    let at = journal
        .notes()
        .find(|n| n.packet.windows(8).any(|w| w == b"sendonly"))
        .unwrap()
        .arrival_ns;
    assert_eq!(at, 2_000 + sent / 2);
    rec.stop();
}

/// A retried INVITE (same Call-ID, same millisecond) gets a journal of its
/// own instead of failing to create one over the first (R1).
#[test]
fn a_retry_with_the_same_call_id_and_millisecond_gets_its_own_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let (rec, mut rx) = recorder(tmp.path());
    let call: Arc<str> = Arc::from("retried@pbx");
    rec.call_started(&call, 5_000_000, b"{}".to_vec());
    rec.call_ended(&call, 5_000_001, b"{}".to_vec());
    let first = finished(&mut rx);
    rec.call_started(&call, 5_000_002, b"{}".to_vec());
    rec.packet(&call, Direction::AtoB, 5_000_003, b"rtp");
    rec.call_ended(&call, 5_000_004, b"{}".to_vec());
    let second = finished(&mut rx);
    assert_ne!(first.dir, second.dir);
    assert_eq!(second.packets, Some(1));
    assert!(second.summary.is_some(), "the retry's journal was written");
    assert_eq!(rec.stats().write_errors, 0);
    rec.stop();
}
