//! Feeds arbitrary bytes to the SDP parser of media anchoring
//! (`hotsite_voice::media::sdp`; SPEC R1: every anchored call's SDP comes
//! from outside). Parsing may not panic; an SDP that parses, rewritten with
//! our address and ports, parses again with the same m-lines, our ports on
//! the active ones and port 0 kept on the declined ones, and rewriting that
//! again with the same values changes nothing.
#![no_main]

use bytes::Bytes;
use hotsite_voice::media::sdp::{rewrite, Sdp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = Sdp::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    let _ = (sdp.direction(), sdp.payload_types());
    for ours in ["203.0.113.5", "2001:db8::5"] {
        let ours = ours.parse().unwrap();
        let ports: Vec<Option<u16>> = (0..sdp.media().len())
            .map(|i| (i % 3 != 2).then_some(30_000 + 2 * i as u16))
            .collect();
        let out = rewrite(&sdp, ours, &ports);
        let again = Sdp::parse(Bytes::from(out.clone()))
            .unwrap_or_else(|e| panic!("a rewritten SDP does not parse: {e}"));
        assert_eq!(again.media().len(), sdp.media().len());
        for (i, (before, after)) in sdp.media().iter().zip(again.media()).enumerate() {
            let want = match ports[i] {
                Some(port) if before.port != 0 => port,
                _ => 0,
            };
            assert_eq!(after.port, want, "m-line {i}");
        }
        assert_eq!(rewrite(&again, ours, &ports), out, "rewriting is stable");
    }
});
