//! Feeds arbitrary bytes to the SMPP framer and decoder. Neither may panic, and
//! any PDU the decoder accepts must re-encode to bytes that decode to the same PDU
//! (Latin-1 strings may be too long to re-encode as UTF-8).
#![no_main]

use hotsite_smpp::pdu::{frame_len, Pdu};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Framing: whatever it says must be consistent with the input.
    if let Ok(Some(len)) = frame_len(data) {
        assert!(len <= data.len());
        // The frame it delimits must not panic the decoder either.
        check(&data[..len]);
    }
    check(data);
});

fn check(frame: &[u8]) {
    let Ok(pdu) = Pdu::decode(frame) else {
        return;
    };
    // Strings that were not UTF-8 are read as Latin-1 and grow when re-encoded as
    // UTF-8, possibly past a field's limit: the only input allowed not to re-encode.
    let non_ascii = frame.iter().any(|&b| b >= 0x80);
    let wire = match pdu.encode() {
        Ok(wire) => wire,
        Err(e) => {
            assert!(non_ascii, "decoded PDU does not re-encode: {e}: {pdu:?}");
            return;
        }
    };
    assert_eq!(frame_len(&wire), Ok(Some(wire.len())));
    let again = Pdu::decode(&wire)
        .unwrap_or_else(|e| panic!("re-encoded PDU does not decode: {e}: {pdu:?}"));
    assert_eq!(again, pdu, "round trip changed the PDU");
    // Canonical input re-encodes byte for byte; the only normalisation allowed is
    // an error response whose empty body gains its empty C-string.
    if wire.len() == frame.len() {
        assert_eq!(&wire[..], frame, "same length, different bytes");
    } else if !non_ascii {
        assert_eq!(frame.len(), 16, "only an empty body may be normalised");
        assert_eq!(wire.len(), 17);
    }
}
