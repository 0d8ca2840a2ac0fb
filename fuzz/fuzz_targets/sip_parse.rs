//! Feeds arbitrary bytes to the SIP parser (datagram and stream framing). Neither
//! may panic; a message that parses must serialise to bytes that parse to the
//! same message, and serialising that again must give the same bytes. A refused
//! message's error reply, if any, must serialise too.
#![no_main]

use hotsite_sip::message::{frame_len, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(len)) = frame_len(data) {
        assert!(len <= data.len());
        check(&data[..len]);
    }
    check(data);
});

fn check(datagram: &[u8]) {
    match parse(datagram) {
        Ok(message) => {
            let wire = message.to_bytes();
            let again = parse(&wire)
                .unwrap_or_else(|e| panic!("serialised message does not parse: {e}: {message:?}"));
            assert_eq!(again, message, "round trip changed the message");
            assert_eq!(again.to_bytes(), wire, "serialising is not stable");
        }
        Err(error) => {
            if let Some(reply) = error.reply("fuzz") {
                let _ = reply.to_bytes();
            }
        }
    }
}
