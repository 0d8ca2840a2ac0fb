//! G.711 µ-law (PCMU) and A-law (PCMA) (ITU-T G.711; RFC 3551 §4.5.14):
//! decode by 256-entry tables built at compile time, encode by the segment
//! search of the ITU/Sun reference code. The merge decodes the edge's RTP
//! with these (SPEC R2); tests and the lab encode with them.

/// Which G.711 law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law, RTP payload type 0 (PCMU).
    Ulaw,
    /// A-law, RTP payload type 8 (PCMA).
    Alaw,
}

impl Law {
    /// The static RTP payload type (RFC 3551 table 4).
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Ulaw => 0,
            Law::Alaw => 8,
        }
    }

    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Law::Ulaw => ULAW_TO_LINEAR[usize::from(byte)],
            Law::Alaw => ALAW_TO_LINEAR[usize::from(byte)],
        }
    }

    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Ulaw => ulaw_encode(sample),
            Law::Alaw => alaw_encode(sample),
        }
    }

    /// Decodes `payload` into `out`, one sample per byte; `out` must be at
    /// least as long as `payload`.
    pub fn decode_into(self, payload: &[u8], out: &mut [i16]) {
        let table = match self {
            Law::Ulaw => &ULAW_TO_LINEAR,
            Law::Alaw => &ALAW_TO_LINEAR,
        };
        for (o, &b) in out.iter_mut().zip(payload) {
            *o = table[usize::from(b)];
        }
    }
}

const fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let t = ((((u & 0x0f) as i32) << 3) + 0x84) << ((u & 0x70) >> 4);
    if u & 0x80 != 0 {
        (0x84 - t) as i16
    } else {
        (t - 0x84) as i16
    }
}

const fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let mut t = ((a & 0x0f) as i32) << 4;
    let seg = (a & 0x70) >> 4;
    t += match seg {
        0 => 8,
        _ => 0x108,
    };
    if seg > 1 {
        t <<= seg - 1;
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

const fn table(law: Law) -> [i16; 256] {
    let mut out = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        out[i] = match law {
            Law::Ulaw => ulaw_to_linear(i as u8),
            Law::Alaw => alaw_to_linear(i as u8),
        };
        i += 1;
    }
    out
}

/// µ-law byte to 16-bit linear sample.
pub const ULAW_TO_LINEAR: [i16; 256] = table(Law::Ulaw);
/// A-law byte to 16-bit linear sample.
pub const ALAW_TO_LINEAR: [i16; 256] = table(Law::Alaw);

/// The first segment whose end is at or above `value`; 8 if none.
fn segment(value: i32, ends: &[i32; 8]) -> u8 {
    ends.iter().position(|&end| value <= end).unwrap_or(8) as u8
}

/// 16-bit linear sample to µ-law (14-bit magnitude, bias 0x84, clip 8159).
pub fn ulaw_encode(sample: i16) -> u8 {
    const ENDS: [i32; 8] = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];
    let mut v = i32::from(sample) >> 2;
    let mask = if v < 0 {
        v = -v;
        0x7f
    } else {
        0xff
    };
    v = v.min(8159) + (0x84 >> 2);
    match segment(v, &ENDS) {
        8 => 0x7f ^ mask,
        seg => ((seg << 4) | ((v >> (seg + 1)) & 0x0f) as u8) ^ mask,
    }
}

/// 16-bit linear sample to A-law (13-bit magnitude).
pub fn alaw_encode(sample: i16) -> u8 {
    const ENDS: [i32; 8] = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];
    let mut v = i32::from(sample) >> 3;
    let mask = if v >= 0 {
        0xd5
    } else {
        v = -v - 1;
        0x55
    };
    match segment(v, &ENDS) {
        8 => 0x7f ^ mask,
        seg => {
            let shift = if seg < 2 { 1 } else { seg };
            ((seg << 4) | ((v >> shift) & 0x0f) as u8) ^ mask
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ulaw_values() {
        // G.711 table 2a / the reference decoder: 0xff and 0x7f are the two
        // zeros, 0x80 and 0x00 the extremes.
        assert_eq!(ULAW_TO_LINEAR[0xff], 0);
        assert_eq!(ULAW_TO_LINEAR[0x7f], 0);
        assert_eq!(ULAW_TO_LINEAR[0x80], 32124);
        assert_eq!(ULAW_TO_LINEAR[0x00], -32124);
        assert_eq!(ULAW_TO_LINEAR[0xfe], 8);
        assert_eq!(ULAW_TO_LINEAR[0xef], 132);
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_encode(1000), 0xce);
        assert_eq!(ulaw_encode(-1000), 0x4e);
    }

    #[test]
    fn known_alaw_values() {
        assert_eq!(ALAW_TO_LINEAR[0xd5], 8);
        assert_eq!(ALAW_TO_LINEAR[0x55], -8);
        assert_eq!(ALAW_TO_LINEAR[0xaa], 32256);
        assert_eq!(ALAW_TO_LINEAR[0x2a], -32256);
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xaa);
        assert_eq!(alaw_encode(i16::MIN), 0x2a);
        assert_eq!(alaw_encode(1000), 0xfa);
        assert_eq!(alaw_encode(-1000), 0x7a);
    }

    #[test]
    fn every_code_round_trips() {
        for law in [Law::Ulaw, Law::Alaw] {
            for b in 0..=255u8 {
                let s = law.decode(b);
                let again = law.decode(law.encode(s));
                // µ-law has two zeros (0xff, 0x7f); both decode to 0.
                assert_eq!(again, s, "{law:?} {b:#04x}");
            }
        }
    }

    #[test]
    fn encoding_is_monotonic_and_close() {
        for law in [Law::Ulaw, Law::Alaw] {
            let mut prev = i32::MIN;
            for s in (i16::MIN..=i16::MAX).step_by(7) {
                let d = i32::from(law.decode(law.encode(s)));
                assert!(d >= prev, "{law:?} not monotonic at {s}");
                // The quantisation step is at most 1/16 of the magnitude,
                // plus the clip at the extremes.
                let err = (d - i32::from(s)).abs();
                assert!(
                    err <= i32::from(s).abs() / 16 + 16 || i32::from(s).abs() > 32_000,
                    "{law:?} {s} -> {d}"
                );
                prev = d;
            }
        }
    }
}
