//! SplitMix64, the generator behind the retry jitter.
//!
//! The same algorithm as `hotsite_core::Rng`, kept here (eight lines) so this
//! crate stays dependency-free and so the JavaScript twin has one short,
//! fixed definition to match: `web/switchover.js` computes the same sequence
//! with BigInt, which is what lets the transcripts pin exact jittered times.

/// A deterministic 64-bit generator. Not for cryptography.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..=max`, by multiply-shift (no division, so the
    /// JavaScript twin computes it exactly with BigInt). One draw per call,
    /// even for `max == 0`, so the sequence does not depend on the options.
    pub(crate) fn below_or_equal(&mut self, max: u64) -> u64 {
        let draw = self.next_u64();
        ((u128::from(draw) * (u128::from(max) + 1)) >> 64) as u64
    }
}
