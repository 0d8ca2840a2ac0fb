//! Feeds arbitrary bodies and Idempotency-Key headers to the API's request
//! parser (`POST /v1/messages`). It may refuse anything, never panic, and what
//! it accepts must respect the documented limits.
#![no_main]

use hotsite_messaging::request::{parse, MAX_BATCH, MAX_BODY_OCTETS, MAX_KEY_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte picks whether a header key is given; the rest splits into key and body.
    let (key, body) = match data.split_first() {
        Some((&flag, rest)) if flag & 1 == 1 => {
            let cut = usize::from(flag >> 1).min(rest.len());
            (std::str::from_utf8(&rest[..cut]).ok(), &rest[cut..])
        }
        Some((_, rest)) => (None, rest),
        None => (None, data),
    };
    match parse(body, key, "hotsite") {
        Ok(messages) => {
            assert!(!messages.is_empty() && messages.len() <= MAX_BATCH);
            for message in messages {
                assert!(!message.body.is_empty() && message.body.len() <= MAX_BODY_OCTETS);
                assert!(!message.to.is_empty() && message.to.len() <= 15);
                assert!(message.to.bytes().all(|b| b.is_ascii_digit()));
                if let Some(key) = message.key {
                    assert!(!key.is_empty() && key.len() <= MAX_KEY_LEN + 8);
                }
            }
        }
        Err(errors) => assert!(!errors.is_empty()),
    }
});
