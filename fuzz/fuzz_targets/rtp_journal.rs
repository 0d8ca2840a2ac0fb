//! Feeds arbitrary bytes to the RTP/RTCP parser (RFC 3550, RFC 5761; SPEC
//! R1: packets come from the far side, whatever they hold) and to the edge
//! journal reader (SPEC R1, R3: a journal on disk may be torn or tampered
//! with). Neither may panic; an RTP packet that parses writes back to the
//! same bytes' header and payload.
#![no_main]

use hotsite_recording::journal::JournalReader;
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
    let _ = JournalReader::parse(bytes::Bytes::copy_from_slice(data));
});
