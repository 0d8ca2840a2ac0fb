//! Feeds arbitrary bytes to the reader of the peer site's agent claims (SPEC
//! S1, S4: the body of a `MESSAGE` over the inter-site trunk). It may refuse,
//! never panic; a batch that parses is version 1.
#![no_main]

use hotsite_site::claims::ClaimBatch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = ClaimBatch::parse(data) {
        assert_eq!(batch.v, 1);
    }
});
