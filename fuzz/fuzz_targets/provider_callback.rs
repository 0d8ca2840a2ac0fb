//! Feeds arbitrary bodies to the parsers of an HTTP provider's callbacks
//! (receipts and MO, `POST /v1/callbacks/{channel}/...`) and of its submit
//! answers. They may refuse anything, never panic, and what they accept must
//! be within the documented limits.
#![no_main]

use hotsite_messaging::callback::{mo, receipt};
use hotsite_messaging::channel::aggregator::answer::{classify, CodeOverrides};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(row) = receipt("agg", data, 1) {
        assert!(row.message_state.is_some_and(|state| (1..=8).contains(&state)));
        assert!(row.dedupe_key.len() < 2_000);
    }
    if let Ok(row) = mo("agg", data, 1) {
        assert!(!row.source.is_empty() && !row.destination.is_empty());
        assert!(row.body.len() <= 8 * 1024);
    }
    let status = data.first().map_or(200, |b| 100 + u16::from(*b) * 2);
    let _ = classify(status, None, data, "17", &CodeOverrides::default());
});
