//! G.711 (ITU-T, 1988): µ-law (RTP payload type 0, PCMU) and A-law (payload
//! type 8, PCMA), 16-bit linear samples in and out.
//!
//! The lab keeps its own codec rather than share hotsite-recording's: a test
//! peer that shares the code under test would share its bugs too (the same
//! reason the SIP peers keep their own transaction timers). The algorithms are
//! the classic Sun Microsystems reference ones (`g711.c`), which every
//! implementation agrees with bit for bit.

/// The µ-law bias added before the segment search.
const ULAW_BIAS: i32 = 0x84;
/// The largest magnitude µ-law encodes without clipping.
const ULAW_CLIP: i32 = 32_635;

/// Linear values of every µ-law byte.
const ULAW_DECODE: [i16; 256] = ulaw_table();
/// Linear values of every A-law byte.
const ALAW_DECODE: [i16; 256] = alaw_table();

/// One 16-bit linear sample as a µ-law byte.
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut magnitude = i32::from(sample);
    let sign = if magnitude < 0 {
        magnitude = -magnitude;
        0x80
    } else {
        0
    };
    magnitude = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && magnitude & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// One µ-law byte as a 16-bit linear sample.
pub fn ulaw_decode(byte: u8) -> i16 {
    ULAW_DECODE[usize::from(byte)]
}

/// One 16-bit linear sample as an A-law byte.
pub fn alaw_encode(sample: i16) -> u8 {
    // A-law works on 13 bits; the ones' complement of negatives keeps the
    // segments symmetric.
    let mut value = i32::from(sample) >> 3;
    let mask = if value >= 0 {
        0xD5
    } else {
        value = -value - 1;
        0x55
    };
    let segment_ends = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let Some(segment) = segment_ends.iter().position(|&end| value <= end) else {
        return (0x7F ^ mask) as u8;
    };
    let shift = if segment < 2 { 1 } else { segment };
    let byte = ((segment as i32) << 4) | ((value >> shift) & 0x0F);
    (byte ^ mask) as u8
}

/// One A-law byte as a 16-bit linear sample.
pub fn alaw_decode(byte: u8) -> i16 {
    ALAW_DECODE[usize::from(byte)]
}

const fn ulaw_value(byte: u8) -> i16 {
    let byte = !byte;
    let exponent = (byte >> 4) & 0x07;
    let mantissa = (byte & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if byte & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_value(byte: u8) -> i16 {
    let byte = byte ^ 0x55;
    let mut magnitude = ((byte & 0x0F) as i32) << 4;
    let segment = ((byte & 0x70) >> 4) as i32;
    magnitude += match segment {
        0 => 8,
        _ => 0x108,
    };
    if segment > 1 {
        magnitude <<= segment - 1;
    }
    if byte & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn ulaw_table() -> [i16; 256] {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = ulaw_value(byte as u8);
        byte += 1;
    }
    table
}

const fn alaw_table() -> [i16; 256] {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = alaw_value(byte as u8);
        byte += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_has_the_reference_codes() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
    }

    #[test]
    fn extremes_clip_to_the_largest_codes() {
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_decode(0x80), 32_124);
        assert_eq!(ulaw_decode(0x00), -32_124);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(alaw_decode(0xAA), 32_256);
        assert_eq!(alaw_decode(0x2A), -32_256);
    }

    #[test]
    fn every_code_decodes_and_encodes_back_to_itself() {
        for byte in 0..=255u8 {
            // µ-law has two zeros (0x7F and 0xFF); both decode to 0, which encodes 0xFF.
            if byte != 0x7F {
                assert_eq!(ulaw_encode(ulaw_decode(byte)), byte, "ulaw {byte:#04x}");
            }
            assert_eq!(alaw_encode(alaw_decode(byte)), byte, "alaw {byte:#04x}");
        }
    }

    #[test]
    fn a_round_trip_keeps_the_error_within_the_segment_step() {
        for sample in (i16::MIN..=i16::MAX).step_by(7) {
            let ulaw = i32::from(ulaw_decode(ulaw_encode(sample)));
            let alaw = i32::from(alaw_decode(alaw_encode(sample)));
            let magnitude = i32::from(sample).abs().min(32_000);
            // Each segment doubles the step: the error stays within ~1/16 of the value.
            let bound = magnitude / 16 + 16;
            assert!(
                (ulaw - i32::from(sample)).abs() <= bound,
                "ulaw {sample} → {ulaw}"
            );
            assert!(
                (alaw - i32::from(sample)).abs() <= bound,
                "alaw {sample} → {alaw}"
            );
        }
    }
}
