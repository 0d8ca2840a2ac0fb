//! Just enough DER (X.690) for RFC 3161: a writer for the request and a
//! bounds-checked reader that walks the reply to the TSTInfo. Single-byte
//! tags only (every tag RFC 3161 and CMS use here is one); definite lengths
//! only (DER has no other).

use thiserror::Error;

pub(crate) const BOOLEAN: u8 = 0x01;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const NULL: u8 = 0x05;
pub(crate) const OID: u8 = 0x06;
pub(crate) const UTF8_STRING: u8 = 0x0c;
pub(crate) const GENERALIZED_TIME: u8 = 0x18;
pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;
/// `[0]` constructed, context-specific (EXPLICIT [0], or IMPLICIT [0] of a
/// constructed type).
pub(crate) const CONTEXT_0: u8 = 0xa0;

/// DER that is not what RFC 3161 says is there.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("DER: {what}")]
pub struct DerError {
    pub what: &'static str,
}

fn err(what: &'static str) -> DerError {
    DerError { what }
}

/// Appends tag, length and `content`.
pub(crate) fn write_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

/// tag, length and `content` as a new vector.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    write_tlv(&mut out, tag, content);
    out
}

/// The content octets of a non-negative INTEGER: big-endian, minimal, with
/// a leading zero when the top bit would otherwise make it negative.
pub(crate) fn unsigned_integer(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(7);
    let mut out = Vec::with_capacity(9);
    if bytes[skip] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(&bytes[skip..]);
    out
}

/// The value of a non-negative INTEGER's content octets, if it fits a u64.
pub(crate) fn integer_to_u64(content: &[u8]) -> Option<u64> {
    let first = *content.first()?;
    if first & 0x80 != 0 {
        return None; // negative
    }
    let digits = if first == 0 { &content[1..] } else { content };
    if digits.len() > 8 {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)))
}

/// Reads consecutive TLVs from a slice.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// The next element: (tag, content).
    pub(crate) fn read(&mut self) -> Result<(u8, &'a [u8]), DerError> {
        let (&tag, rest) = self.data.split_first().ok_or(err("element missing"))?;
        if tag & 0x1f == 0x1f {
            return Err(err("multi-byte tag"));
        }
        let (&first, rest) = rest.split_first().ok_or(err("length missing"))?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 {
                return Err(err("indefinite length"));
            }
            if n > 4 || rest.len() < n {
                return Err(err("length field too long or cut short"));
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |l, &b| (l << 8) | usize::from(b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err(err("element longer than its enclosing data"));
        }
        let (content, rest) = rest.split_at(len);
        self.data = rest;
        Ok((tag, content))
    }

    /// The next element whole (tag, length and content): (tag, element).
    pub(crate) fn read_whole(&mut self) -> Result<(u8, &'a [u8]), DerError> {
        let before = self.data;
        let (tag, _) = self.read()?;
        Ok((tag, &before[..before.len() - self.data.len()]))
    }

    /// The next element's content, which must have `tag`.
    pub(crate) fn expect(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8], DerError> {
        match self.read() {
            Ok((t, content)) if t == tag => Ok(content),
            Ok(_) => Err(err(what)),
            Err(e) => Err(e),
        }
    }

    /// The next element's content if it has `tag`; nothing read otherwise.
    pub(crate) fn optional(&mut self, tag: u8) -> Result<Option<&'a [u8]>, DerError> {
        if self.peek_tag() == Some(tag) {
            return self.read().map(|(_, content)| Some(content));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// X.690 §8.3: minimal two's complement, positive.
    #[test]
    fn integers() {
        assert_eq!(unsigned_integer(0), [0]);
        assert_eq!(unsigned_integer(1), [1]);
        assert_eq!(unsigned_integer(0x7f), [0x7f]);
        assert_eq!(unsigned_integer(0x80), [0, 0x80]);
        assert_eq!(unsigned_integer(0x0100), [1, 0]);
        assert_eq!(
            unsigned_integer(0x8c80_6884_3819_bc07),
            [0, 0x8c, 0x80, 0x68, 0x84, 0x38, 0x19, 0xbc, 0x07]
        );
        for n in [0, 1, 0x7f, 0x80, 0xffff, u64::MAX, 0x8c80_6884_3819_bc07] {
            assert_eq!(integer_to_u64(&unsigned_integer(n)), Some(n));
        }
        assert_eq!(integer_to_u64(&[0xff]), None);
        assert_eq!(integer_to_u64(&[1, 0, 0, 0, 0, 0, 0, 0, 0]), None);
    }

    /// X.690 §8.1.3: short form below 128, long form with minimal octets.
    #[test]
    fn lengths() {
        assert_eq!(tlv(OCTET_STRING, &[7; 3])[..2], [0x04, 3]);
        assert_eq!(tlv(OCTET_STRING, &[7; 0x80])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(
            tlv(OCTET_STRING, &[7; 0x1234])[..4],
            [0x04, 0x82, 0x12, 0x34]
        );
        let long = tlv(SEQUENCE, &[0; 300]);
        let mut r = Reader::new(&long);
        assert_eq!(r.read().unwrap().1.len(), 300);
        assert!(r.is_empty());
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x80],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x82, 0x01],
            &[0x30, 0x05, 1, 2],
            &[0x1f, 0x01, 0x00],
        ] {
            assert!(Reader::new(bad).read().is_err(), "{bad:?}");
        }
    }
}
