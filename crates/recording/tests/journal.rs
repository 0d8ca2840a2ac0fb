//! The edge journal on disk (SPEC R1 edge buffer, R3 chain of custody).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use hotsite_recording::journal::{
    verify_chain, Direction, Entry, JournalConfig, JournalError, JournalReader, JournalStream,
    JournalWriter, RecordKind, Segment, SegmentLimits, Tail, JOURNAL_FILE, MAX_NOTE,
};
use hotsite_recording::rtp::{EpochStart, RtpPacket, SeqUnwrap, TsUnwrap};
use proptest::prelude::*;

const MS: u64 = 1_000_000;

fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hotsite-recording-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn rtp(seq: u16, ts: u32, ssrc: u32, fill: u8, len: usize) -> Vec<u8> {
    let payload = vec![fill; len];
    let p = RtpPacket {
        marker: false,
        payload_type: 0,
        sequence: seq,
        timestamp: ts,
        ssrc,
        csrc: &[],
        extension: None,
        payload: &payload,
        padding: 0,
    };
    let mut out = Vec::new();
    p.write_to(&mut out).unwrap();
    out
}

fn direction(i: usize) -> Direction {
    if i % 2 == 0 {
        Direction::AtoB
    } else {
        Direction::BtoA
    }
}

fn limits(max_records: u64) -> JournalConfig {
    JournalConfig {
        limits: SegmentLimits {
            max_records,
            max_bytes: 0,
            max_span_ns: 0,
        },
        sync_on_seal: true,
    }
}

/// Writes `n` small packets, `per_segment` to a segment; finishes or only
/// syncs (a crash after the sync). Returns the directory and the packets.
fn write(
    name: &str,
    n: usize,
    per_segment: u64,
    finish: bool,
) -> (PathBuf, Vec<(u64, Direction, Vec<u8>)>) {
    let dir = temp_dir(name);
    let mut w =
        JournalWriter::create_with(&dir, "a84b4c76e66710@pc33", limits(per_segment)).unwrap();
    let mut sent = Vec::new();
    for i in 0..n {
        let p = rtp(i as u16, 160 * i as u32, 0x1234, i as u8, 8 + i % 5);
        let at = i as u64 * 10 * MS;
        w.append(at, direction(i), &p).unwrap();
        sent.push((at, direction(i), p));
    }
    if finish {
        w.finish().unwrap();
    } else {
        w.sync().unwrap();
    }
    (dir, sent)
}

fn read_bytes(dir: &std::path::Path) -> Vec<u8> {
    std::fs::read(dir.join(JOURNAL_FILE)).unwrap()
}

#[test]
fn round_trip_r1() {
    let dir = temp_dir("round-trip");
    let mut w = JournalWriter::create_with(&dir, "call-1@example.net", limits(100)).unwrap();
    let mut sent = Vec::new();
    for i in 0..1000usize {
        let p = rtp(i as u16, 160 * i as u32, 7, (i % 251) as u8, 160);
        w.append(i as u64 * 10 * MS, direction(i), &p).unwrap();
        sent.push(p);
    }
    let summary = w.finish().unwrap();
    assert_eq!((summary.records, summary.segments), (1000, 10));

    let j = JournalReader::open(&dir).unwrap();
    assert_eq!(j.call_id, "call-1@example.net");
    assert_eq!(j.tail, Tail::Complete);
    assert_eq!(j.records.len(), 1000);
    for (i, (r, p)) in j.records.iter().zip(&sent).enumerate() {
        assert_eq!(r.arrival_ns, i as u64 * 10 * MS);
        assert_eq!(r.direction, direction(i));
        assert_eq!(&r.packet[..], &p[..]);
    }
    assert_eq!(j.segments.len(), 10);
    assert!(j.segments.iter().all(|s| s.records == 100));
    assert!(j.unsealed().is_empty());
    // R3: the chain verifies and its head is what the writer reported.
    verify_chain(&j.genesis, &j.segments).unwrap();
    assert_eq!(j.chain().last(), Some(&summary.head));
    assert_eq!(summary.bytes, read_bytes(&dir).len() as u64);
    // The journal is never overwritten.
    assert!(matches!(
        JournalWriter::create(&dir, "call-1@example.net"),
        Err(JournalError::Io(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn segments_close_by_time_and_by_bytes() {
    let dir = temp_dir("limits");
    let config = JournalConfig {
        limits: SegmentLimits {
            max_records: 0,
            max_bytes: 0,
            max_span_ns: 1000 * MS,
        },
        sync_on_seal: false,
    };
    let mut w = JournalWriter::create_with(&dir, "t", config).unwrap();
    let mut seals = 0;
    for i in 0..150u64 {
        // 20 ms apart: 3 s in all.
        seals += usize::from(
            w.append(i * 20 * MS, Direction::AtoB, &[0x80, 0, 0, 1])
                .unwrap()
                .is_some(),
        );
    }
    w.finish().unwrap();
    let j = JournalReader::open(&dir).unwrap();
    assert_eq!(seals, 2);
    assert_eq!(j.segments.len(), 3);
    for s in &j.segments {
        let recs = &j.records[s.first_record..s.first_record + s.records];
        let span = recs.last().unwrap().arrival_ns - recs[0].arrival_ns;
        assert!(span < 1000 * MS, "segment {} spans {span} ns", s.index);
    }
    std::fs::remove_dir_all(&dir).unwrap();

    let dir = temp_dir("bytes");
    let config = JournalConfig {
        limits: SegmentLimits {
            max_records: 0,
            max_bytes: 1000,
            max_span_ns: 0,
        },
        sync_on_seal: false,
    };
    let mut w = JournalWriter::create_with(&dir, "t", config).unwrap();
    for i in 0..20u64 {
        // 200-byte packets, 218-byte frames: five to a segment.
        w.append(i, Direction::BtoA, &[0u8; 200]).unwrap();
    }
    w.finish().unwrap();
    let j = JournalReader::open(&dir).unwrap();
    assert_eq!(
        j.segments.iter().map(|s| s.records).collect::<Vec<_>>(),
        vec![5, 5, 5, 5]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_stopped_writer_leaves_an_unfinished_journal_r1() {
    let (dir, sent) = write("unfinished", 25, 10, false);
    let j = JournalReader::open(&dir).unwrap();
    assert_eq!(j.tail, Tail::Unfinished);
    assert_eq!(j.records.len(), 25);
    assert_eq!(j.segments.len(), 2);
    assert_eq!(j.unsealed().len(), 5);
    assert_eq!(&j.unsealed()[4].packet[..], &sent[24].2[..]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn torn_tail_at_every_byte_of_the_last_record_r1() {
    // R1: kill -9 loses at most the unsynced tail, and the journal says so.
    let (dir, sent) = write("torn", 25, 10, false);
    let full = read_bytes(&dir);
    let last_frame = 9 + 9 + sent[24].2.len();
    let start = full.len() - last_frame;
    for cut in start..full.len() {
        let j = JournalReader::parse(Bytes::copy_from_slice(&full[..cut])).unwrap();
        let want = if cut == start {
            Tail::Unfinished
        } else {
            Tail::TornTail {
                valid_bytes: start as u64,
                lost_bytes: (cut - start) as u64,
            }
        };
        assert_eq!(j.tail, want, "cut at {cut}");
        assert_eq!(j.records.len(), 24);
        assert_eq!(j.segments.len(), 2);
    }
    // A crash can also leave zeros where the tail was never written.
    let mut zeros = full.clone();
    zeros.extend_from_slice(&[0; 4096]);
    let j = JournalReader::parse(Bytes::from(zeros)).unwrap();
    assert_eq!(
        j.tail,
        Tail::TornTail {
            valid_bytes: full.len() as u64,
            lost_bytes: 4096
        }
    );
    assert_eq!(j.records.len(), 25);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_names_it_r3() {
    let (dir, _) = write("flip", 50, 10, true);
    let full = read_bytes(&dir);
    let j = JournalReader::parse(Bytes::from(full.clone())).unwrap();
    let seg = j.segments[1];
    let seal_frame = 9 + 96;
    // Every byte of segment 1's records and of its seal.
    for at in seg.offset as usize..(seg.offset + seg.len) as usize + seal_frame {
        for bit in [0x01u8, 0x80] {
            let mut bad = full.clone();
            bad[at] ^= bit;
            match JournalReader::parse(Bytes::from(bad)) {
                Err(JournalError::Tampered { segment, .. })
                | Err(JournalError::ChainBroken { segment, .. }) => {
                    assert_eq!(segment, 1, "byte {at}")
                }
                other => panic!("byte {at} bit {bit:#x}: {other:?}"),
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_record_with_a_recomputed_crc_fails_its_segment_hash_r3() {
    let (dir, _) = write("recrc", 30, 10, true);
    let mut bad = read_bytes(&dir);
    let j = JournalReader::parse(Bytes::from(bad.clone())).unwrap();
    // Change the payload of segment 2's first record and fix its CRC, as a
    // tamperer who knows the framing would.
    let at = j.segments[2].offset as usize;
    let len = u32::from_le_bytes(bad[at..at + 4].try_into().unwrap()) as usize;
    bad[at + 4 + len - 1] ^= 0xff;
    let crc = hotsite_recording::journal::crc32c(&bad[at..at + 4 + len]);
    bad[at + 4 + len..at + 8 + len].copy_from_slice(&crc.to_le_bytes());
    match JournalReader::parse(Bytes::from(bad)) {
        Err(JournalError::Tampered {
            segment: 2, what, ..
        }) => {
            assert_eq!(what, "segment hash differs from its seal")
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_removed_segment_breaks_the_chain_r3() {
    let (dir, _) = write("remove", 40, 10, false);
    let full = read_bytes(&dir);
    let j = JournalReader::parse(Bytes::from(full.clone())).unwrap();
    let s = j.segments[1];
    let end = (s.offset + s.len) as usize + 9 + 96;
    let mut cut = full[..s.offset as usize].to_vec();
    cut.extend_from_slice(&full[end..]);
    assert!(matches!(
        JournalReader::parse(Bytes::from(cut)),
        Err(JournalError::ChainBroken { segment: 1, .. })
    ));

    // verify_chain on lists from elsewhere: reordered or altered fails.
    verify_chain(&j.genesis, &j.segments).unwrap();
    let mut swapped = j.segments.clone();
    swapped.swap(1, 2);
    assert!(matches!(
        verify_chain(&j.genesis, &swapped),
        Err(JournalError::ChainBroken { segment: 1, .. })
    ));
    let mut altered = j.segments.clone();
    altered[2].hash[0] ^= 1;
    assert!(matches!(
        verify_chain(&j.genesis, &altered),
        Err(JournalError::ChainBroken { segment: 2, .. })
    ));
    // Another call's header gives another genesis: the chain is bound to it.
    let other =
        JournalReader::parse(Bytes::from(read_bytes(&write("other", 40, 10, false).0))).unwrap();
    assert_eq!(other.genesis, j.genesis); // same Call-ID in both
    let mut wrong = j.genesis;
    wrong[0] ^= 1;
    assert!(verify_chain(&wrong, &j.segments).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn data_after_the_end_record_is_refused() {
    let (dir, _) = write("after-end", 5, 10, true);
    let mut bytes = read_bytes(&dir);
    bytes.push(0);
    assert!(matches!(
        JournalReader::parse(Bytes::from(bytes)),
        Err(JournalError::AfterEnd { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn handover_jumps_read_back_as_a_new_epoch_r1() {
    // R1: the far side's SSRC, sequence and timestamp jump after a media
    // server handover; the journal keeps every packet and the unwrappers
    // start a new epoch instead of a gap of hours.
    let dir = temp_dir("handover");
    let mut w = JournalWriter::create(&dir, "handover").unwrap();
    let mut at = 0;
    for i in 0..100u32 {
        w.append(
            at,
            Direction::BtoA,
            &rtp(
                65500u16.wrapping_add(i as u16),
                (u32::MAX - 8000).wrapping_add(160 * i),
                0xaaaa,
                0x55,
                160,
            ),
        )
        .unwrap();
        at += 20 * MS;
    }
    at += 17_000 * MS; // the provider's 17 s gap
    for i in 0..100u32 {
        w.append(
            at,
            Direction::BtoA,
            &rtp(9000 + i as u16, 1_234_567 + 160 * i, 0xbbbb, 0xd5, 160),
        )
        .unwrap();
        at += 20 * MS;
    }
    w.finish().unwrap();

    let j = JournalReader::open(&dir).unwrap();
    let mut seq = SeqUnwrap::default();
    let mut ts = TsUnwrap::new(8000, 8000);
    let mut starts = Vec::new();
    let mut prev: Option<(u32, i64, i64)> = None;
    for r in &j.records {
        let p = RtpPacket::parse(&r.packet).unwrap();
        let s = seq.unwrap(p.ssrc, p.sequence);
        let t = ts.unwrap(p.ssrc, p.timestamp, r.arrival_ns);
        assert_eq!(s.epoch, t.epoch);
        if let Some(why) = s.started {
            starts.push((why, t.started));
        } else if let Some((epoch, ps, pt)) = prev {
            // Within an epoch: one step each, across the 16- and 32-bit wraps.
            assert_eq!((s.epoch, s.value, t.value), (epoch, ps + 1, pt + 160));
        }
        prev = Some((s.epoch, s.value, t.value));
    }
    assert_eq!(
        starts,
        vec![
            (EpochStart::First, Some(EpochStart::First)),
            (EpochStart::NewSsrc, Some(EpochStart::NewSsrc))
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// R1: truncation anywhere is a torn tail (or a clean stop), never an
    /// error and never a corrupt record: what is read is a prefix of what
    /// was written.
    #[test]
    fn truncation_anywhere_is_detected(n in 1usize..40, per in 1u64..12, finish: bool, frac in 0.0f64..1.0) {
        let (dir, sent) = write("prop", n, per, finish);
        let full = read_bytes(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let header = 10 + "a84b4c76e66710@pc33".len();
        let cut = header + ((full.len() - header) as f64 * frac) as usize;
        let j = JournalReader::parse(Bytes::copy_from_slice(&full[..cut])).unwrap();
        prop_assert!(j.records.len() <= sent.len());
        for (r, (at, d, p)) in j.records.iter().zip(&sent) {
            prop_assert_eq!((r.arrival_ns, r.direction, &r.packet[..]), (*at, *d, &p[..]));
        }
        match j.tail {
            Tail::TornTail { valid_bytes, lost_bytes } => {
                prop_assert_eq!(valid_bytes + lost_bytes, cut as u64);
                prop_assert!(lost_bytes > 0);
            }
            Tail::Unfinished => {}
            Tail::Complete => prop_assert!(false, "a cut journal cannot be complete"),
        }
        verify_chain(&j.genesis, &j.segments).unwrap();
    }
}

#[test]
fn notes_are_records_sealed_like_packets_r3() {
    let dir = temp_dir("notes");
    let mut w = JournalWriter::create_with(&dir, "notes@x", limits(3)).unwrap();
    let call = br#"{"type":"call","call_id":"notes@x","trunk":"t1","media_region":"eu-west","failover_region":"eu-central","started_unix_ms":1700000000000}"#;
    w.append_note(1_700_000_000_000 * MS, call).unwrap();
    for i in 0..4u64 {
        w.append(
            1_700_000_000_000 * MS + i * 20 * MS,
            Direction::AtoB,
            &rtp(i as u16, 160 * i as u32, 1, 0, 20),
        )
        .unwrap();
    }
    w.append_note(1_700_000_000_100 * MS, br#"{"type":"end","cause":"bye"}"#)
        .unwrap();
    assert!(matches!(
        w.append_note(0, &vec![b' '; MAX_NOTE + 1]),
        Err(JournalError::NoteTooLarge(_))
    ));
    assert!(matches!(
        w.append_note(0, &[0xff, 0xfe]),
        Err(JournalError::NoteNotUtf8)
    ));
    let summary = w.finish().unwrap();
    assert_eq!((summary.records, summary.segments), (6, 2));

    let j = JournalReader::open(&dir).unwrap();
    assert_eq!(j.tail, Tail::Complete);
    let kinds: Vec<_> = j.records.iter().map(|r| r.kind).collect();
    assert_eq!(kinds[0], RecordKind::Note);
    assert_eq!(kinds[5], RecordKind::Note);
    assert_eq!(&j.records[0].packet[..], &call[..]);
    assert_eq!(j.notes().count(), 2);
    // Segment 0 is the call note and two packets: notes count and hash.
    assert_eq!(j.segments[0].records, 3);

    // A changed byte inside the sealed call note is tampering with segment 0.
    let mut bad = read_bytes(&dir);
    let at = j.segments[0].offset as usize + 4 + 1 + 8 + 10;
    bad[at] ^= 0x20;
    assert!(matches!(
        JournalReader::parse(Bytes::from(bad)),
        Err(JournalError::Tampered { segment: 0, .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A reader that hands out at most `chunk` bytes per call, to exercise the
/// stream's buffering.
struct Trickle<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

type Flat = (
    String,
    Vec<(u64, Direction, RecordKind, Vec<u8>)>,
    Vec<Segment>,
    [u8; 32],
    Tail,
);

fn via_reader(bytes: &[u8]) -> Result<Flat, String> {
    let j = JournalReader::parse(Bytes::copy_from_slice(bytes)).map_err(|e| format!("{e:?}"))?;
    let records = j
        .records
        .iter()
        .map(|r| (r.arrival_ns, r.direction, r.kind, r.packet.to_vec()))
        .collect();
    Ok((j.call_id, records, j.segments, j.genesis, j.tail))
}

fn via_stream(bytes: &[u8], chunk: usize) -> Result<Flat, String> {
    let err = |e: JournalError| format!("{e:?}");
    let mut s = JournalStream::new(Trickle { data: bytes, chunk }).map_err(err)?;
    let mut records = Vec::new();
    let mut segments = Vec::new();
    while let Some(entry) = s.next_entry().map_err(err)? {
        match entry {
            Entry::Packet {
                arrival_ns,
                direction,
                packet,
            } => records.push((arrival_ns, direction, RecordKind::Packet, packet.to_vec())),
            Entry::Note { at_unix_ns, json } => {
                records.push((at_unix_ns, Direction::AtoB, RecordKind::Note, json.to_vec()))
            }
            Entry::Sealed(segment) => segments.push(segment),
        }
    }
    assert_eq!(s.records() as usize, records.len());
    assert_eq!(s.segments() as usize, segments.len());
    Ok((
        s.call_id().to_owned(),
        records,
        segments,
        *s.genesis(),
        s.tail().unwrap(),
    ))
}

/// Writes a journal of `n` records (every `note_every`-th a note) with
/// payloads up to `max_len` bytes.
fn mixed(
    name: &str,
    n: usize,
    per: u64,
    max_len: usize,
    note_every: usize,
    finish: bool,
) -> Vec<u8> {
    let dir = temp_dir(name);
    let mut w = JournalWriter::create_with(&dir, "mixed@example.net", limits(per)).unwrap();
    for i in 0..n {
        let at = 1_700_000_000_000 * MS + i as u64 * 20 * MS;
        if note_every > 0 && i % note_every == 0 {
            w.append_note(at, format!(r#"{{"type":"x","i":{i}}}"#).as_bytes())
                .unwrap();
        } else {
            let len = 8 + (i * 7919) % max_len.max(1);
            w.append(
                at,
                direction(i),
                &rtp(i as u16, 160 * i as u32, 9, i as u8, len),
            )
            .unwrap();
        }
    }
    if finish {
        w.finish().unwrap();
    } else {
        w.sync().unwrap();
    }
    let bytes = read_bytes(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    bytes
}

#[test]
fn the_stream_reads_a_journal_larger_than_its_buffer_r1_r3() {
    // About 1.2 MB: several buffer refills, frames across refill edges.
    let full = mixed("big", 3000, 50, 700, 97, true);
    assert!(full.len() > 1_000_000);
    let expect = via_reader(&full).unwrap();
    assert_eq!(expect.4, Tail::Complete);
    for chunk in [1 << 20, 4096, 333] {
        assert_eq!(via_stream(&full, chunk), Ok(expect.clone()));
    }
    // Tampering early, with the next seal ~ 1 MB later in the stream only
    // if seals were sparse: here, a flipped byte in segment 1; and a torn
    // tail at the end.
    let j = JournalReader::parse(Bytes::from(full.clone())).unwrap();
    let mut bad = full.clone();
    bad[j.segments[1].offset as usize + 20] ^= 1;
    let r = via_reader(&bad);
    assert!(r.as_ref().unwrap_err().contains("Tampered"), "{r:?}");
    assert_eq!(via_stream(&bad, 4096), r);
    let mut torn = full[..full.len() - 30].to_vec();
    torn.extend_from_slice(&[0; 300_000]);
    let r = via_reader(&torn);
    assert!(
        matches!(r, Ok((_, _, _, _, Tail::TornTail { .. }))),
        "{r:?}"
    );
    assert_eq!(via_stream(&torn, 5000), r);
}

#[test]
fn a_bad_frame_far_before_the_next_seal_is_tampering_r3() {
    // One segment of ~600 KB: a damaged record at its start is followed by
    // its seal only after more than the stream's buffer.
    let full = mixed("sparse", 1200, 0, 1000, 0, true);
    let mut bad = full.clone();
    let first_frame = 10 + "mixed@example.net".len();
    bad[first_frame + 12] ^= 0x40;
    let r = via_reader(&bad);
    assert!(r.as_ref().unwrap_err().contains("Tampered"), "{r:?}");
    assert_eq!(via_stream(&bad, 65_536), r);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// R1, R3: the streaming reader and the whole-file reader agree on
    /// every journal: intact, cut anywhere, with a flipped byte, or with
    /// garbage after it: same records, segments, chain, tail, or the same
    /// error.
    #[test]
    fn stream_and_reader_agree(
        n in 0usize..120,
        per in 0u64..20,
        max_len in 1usize..1500,
        note_every in 0usize..6,
        finish: bool,
        cut in 0.0f64..1.0,
        flip in proptest::option::of((0.0f64..1.0, 0u8..8)),
        garbage in proptest::collection::vec(any::<u8>(), 0..64),
        chunk in 1usize..5000,
    ) {
        let mut bytes = mixed("agree", n, per, max_len, note_every, finish);
        let keep = ((bytes.len() as f64) * (0.5 + cut / 2.0)) as usize;
        if cut < 0.3 {
            bytes.truncate(keep.max(1));
        }
        if let Some((at, bit)) = flip {
            let at = ((bytes.len() - 1) as f64 * at) as usize;
            bytes[at] ^= 1 << bit;
        }
        if cut > 0.8 {
            bytes.extend_from_slice(&garbage);
        }
        prop_assert_eq!(via_stream(&bytes, chunk), via_reader(&bytes));
    }
}
