//! The few bits of RFC 1035 an authoritative server for A/AAAA needs: read a
//! query's header and single question, write an answer that echoes both.
//! Pure, and never panics on any input: a datagram is read with bounds checks
//! only.

use std::net::IpAddr;

/// Size of the DNS header.
const HEADER_LEN: usize = 12;
/// Longest name on the wire (RFC 1035, 3.1).
const MAX_NAME_WIRE_LEN: usize = 255;
/// Largest UDP answer without EDNS (RFC 1035, 4.2.1).
pub(crate) const MAX_UDP_ANSWER: usize = 512;

/// QR: the message is a response.
const FLAG_QR: u16 = 0x8000;
/// The opcode bits.
const OPCODE_MASK: u16 = 0x7800;
/// AA: the answer is authoritative.
const FLAG_AA: u16 = 0x0400;
/// TC: the answer was truncated.
const FLAG_TC: u16 = 0x0200;
/// RD: recursion desired, echoed.
const FLAG_RD: u16 = 0x0100;

/// Record types and classes the server knows.
pub(crate) const TYPE_A: u16 = 1;
pub(crate) const TYPE_AAAA: u16 = 28;
pub(crate) const TYPE_ANY: u16 = 255;
pub(crate) const CLASS_IN: u16 = 1;
pub(crate) const CLASS_ANY: u16 = 255;

/// Response codes (RFC 1035, 4.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rcode {
    NoError = 0,
    FormErr = 1,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
}

/// A query with one readable question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query<'a> {
    pub(crate) id: u16,
    pub(crate) flags: u16,
    /// The question as it came (name, type, class), echoed in the answer.
    pub(crate) question: &'a [u8],
    /// The name in lower case, dotted, without the root's dot.
    pub(crate) name: String,
    pub(crate) qtype: u16,
    pub(crate) qclass: u16,
}

/// What a datagram is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Datagram<'a> {
    /// A standard query with one question.
    Query(Query<'a>),
    /// A query the server can only answer with an error (FORMERR, NOTIMP),
    /// header echoed, no question.
    Bad { id: u16, flags: u16, rcode: Rcode },
    /// Not worth an answer: shorter than a header, or a response.
    Ignore,
}

/// Reads a datagram.
pub(crate) fn parse(packet: &[u8]) -> Datagram<'_> {
    let Some(header) = packet.get(..HEADER_LEN) else {
        return Datagram::Ignore;
    };
    let id = u16::from_be_bytes([header[0], header[1]]);
    let flags = u16::from_be_bytes([header[2], header[3]]);
    if flags & FLAG_QR != 0 {
        // Answering responses could make two servers talk forever.
        return Datagram::Ignore;
    }
    let bad = |rcode| Datagram::Bad { id, flags, rcode };
    if flags & OPCODE_MASK != 0 {
        return bad(Rcode::NotImp);
    }
    let qdcount = u16::from_be_bytes([header[4], header[5]]);
    if qdcount != 1 {
        return bad(Rcode::FormErr);
    }
    let Some((name, name_len)) = read_name(&packet[HEADER_LEN..]) else {
        return bad(Rcode::FormErr);
    };
    let question_end = HEADER_LEN + name_len + 4;
    let Some(question) = packet.get(HEADER_LEN..question_end) else {
        return bad(Rcode::FormErr);
    };
    let fixed = &question[name_len..];
    Datagram::Query(Query {
        id,
        flags,
        question,
        name,
        qtype: u16::from_be_bytes([fixed[0], fixed[1]]),
        qclass: u16::from_be_bytes([fixed[2], fixed[3]]),
    })
}

/// Reads an uncompressed name (a question's name is never compressed: nothing
/// precedes it to point at); returns it and its length on the wire.
fn read_name(wire: &[u8]) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut at = 0;
    loop {
        let len = usize::from(*wire.get(at)?);
        if len == 0 {
            at += 1;
            break;
        }
        // 0xC0: a compression pointer; 0x40, 0x80: reserved label types.
        if len > 63 {
            return None;
        }
        let label = wire.get(at + 1..at + 1 + len)?;
        if !name.is_empty() {
            name.push('.');
        }
        name.extend(
            label
                .iter()
                .map(|byte| char::from(byte.to_ascii_lowercase())),
        );
        at += 1 + len;
        if at > MAX_NAME_WIRE_LEN {
            return None;
        }
    }
    Some((name, at))
}

/// An answer to `query`: `rcode`, and one record per address of `addrs` (the
/// caller picks the ones of the asked type), each with `ttl`. Records that do
/// not fit a 512-byte datagram are left out and TC is set.
pub(crate) fn answer(query: &Query<'_>, rcode: Rcode, addrs: &[IpAddr], ttl: u32) -> Vec<u8> {
    let mut records = Vec::new();
    let mut truncated = false;
    let room = MAX_UDP_ANSWER.saturating_sub(HEADER_LEN + query.question.len());
    let mut count: u16 = 0;
    for addr in addrs {
        let mut record = Vec::with_capacity(28);
        // The name: a pointer to the question's, at offset 12.
        record.extend_from_slice(&[0xC0, 0x0C]);
        let (rtype, data): (u16, Vec<u8>) = match addr {
            IpAddr::V4(v4) => (TYPE_A, v4.octets().to_vec()),
            IpAddr::V6(v6) => (TYPE_AAAA, v6.octets().to_vec()),
        };
        record.extend_from_slice(&rtype.to_be_bytes());
        record.extend_from_slice(&CLASS_IN.to_be_bytes());
        record.extend_from_slice(&ttl.to_be_bytes());
        // 4 or 16 bytes: always fits.
        record.extend_from_slice(&(data.len() as u16).to_be_bytes());
        record.extend_from_slice(&data);
        if records.len() + record.len() > room || count == u16::MAX {
            truncated = true;
            break;
        }
        records.extend_from_slice(&record);
        count += 1;
    }
    let mut flags = FLAG_QR | (query.flags & (OPCODE_MASK | FLAG_RD)) | FLAG_AA | rcode as u16;
    if truncated {
        flags |= FLAG_TC;
    }
    let mut packet = Vec::with_capacity(HEADER_LEN + query.question.len() + records.len());
    packet.extend_from_slice(&query.id.to_be_bytes());
    packet.extend_from_slice(&flags.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    packet.extend_from_slice(&count.to_be_bytes()); // ANCOUNT
    packet.extend_from_slice(&0u16.to_be_bytes()); // NSCOUNT
    packet.extend_from_slice(&0u16.to_be_bytes()); // ARCOUNT
    packet.extend_from_slice(query.question);
    packet.extend_from_slice(&records);
    packet
}

/// An error answer without a question: the header echoed with `rcode`.
pub(crate) fn error(id: u16, flags: u16, rcode: Rcode) -> Vec<u8> {
    let flags = FLAG_QR | (flags & (OPCODE_MASK | FLAG_RD)) | rcode as u16;
    let mut packet = Vec::with_capacity(HEADER_LEN);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&flags.to_be_bytes());
    packet.extend_from_slice(&[0; 8]);
    packet
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    /// A query for `name` of `qtype`, class IN, RD set.
    pub(crate) fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut packet = id.to_be_bytes().to_vec();
        packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            packet.push(label.len() as u8);
            packet.extend_from_slice(label.as_bytes());
        }
        packet.push(0);
        packet.extend_from_slice(&qtype.to_be_bytes());
        packet.extend_from_slice(&CLASS_IN.to_be_bytes());
        packet
    }

    #[test]
    fn reads_a_query_and_answers_with_the_question_echoed() {
        let packet = query(0xBEEF, "SMS.Lab.test", TYPE_A);
        let Datagram::Query(parsed) = parse(&packet) else {
            panic!("not a query");
        };
        assert_eq!(parsed.name, "sms.lab.test");
        assert_eq!(
            (parsed.id, parsed.qtype, parsed.qclass),
            (0xBEEF, TYPE_A, CLASS_IN)
        );
        let addr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let answer = answer(&parsed, Rcode::NoError, &[addr], 1);
        assert_eq!(&answer[..2], &[0xBE, 0xEF], "id");
        assert_eq!(&answer[2..4], &[0x85, 0x00], "QR, AA, RD, NOERROR");
        assert_eq!(&answer[4..12], &[0, 1, 0, 1, 0, 0, 0, 0], "counts");
        let question_end = packet.len();
        assert_eq!(
            &answer[12..question_end],
            &packet[12..],
            "question echoed as sent"
        );
        assert_eq!(
            &answer[question_end..],
            &[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 127, 0, 0, 2],
            "A record, TTL 1"
        );
    }

    #[test]
    fn errors_keep_the_id_and_nxdomain_is_authoritative() {
        let packet = query(7, "nowhere.test", TYPE_AAAA);
        let Datagram::Query(parsed) = parse(&packet) else {
            panic!("not a query");
        };
        let nx = answer(&parsed, Rcode::NxDomain, &[], 1);
        assert_eq!(&nx[2..4], &[0x85, 0x03]);
        assert_eq!(&nx[6..8], &[0, 0], "no answers");
        assert_eq!(
            error(9, 0x0100, Rcode::FormErr),
            [0, 9, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let aaaa = answer(&parsed, Rcode::NoError, &[v6], 5);
        assert_eq!(aaaa.len(), packet.len() + 28);
    }

    #[test]
    fn garbage_is_ignored_or_formerr_never_a_panic() {
        assert_eq!(parse(b""), Datagram::Ignore);
        assert_eq!(parse(&[0; 11]), Datagram::Ignore);
        let mut response = query(1, "a.test", TYPE_A);
        response[2] |= 0x80;
        assert_eq!(
            parse(&response),
            Datagram::Ignore,
            "responses are not answered"
        );
        let mut truncated = query(1, "a.test", TYPE_A);
        truncated.truncate(truncated.len() - 2);
        assert!(matches!(
            parse(&truncated),
            Datagram::Bad {
                rcode: Rcode::FormErr,
                ..
            }
        ));
        let mut pointer = query(1, "a.test", TYPE_A);
        pointer[12] = 0xC0;
        assert!(matches!(
            parse(&pointer),
            Datagram::Bad {
                rcode: Rcode::FormErr,
                ..
            }
        ));
        let mut two_questions = query(1, "a.test", TYPE_A);
        two_questions[5] = 2;
        assert!(matches!(
            parse(&two_questions),
            Datagram::Bad {
                rcode: Rcode::FormErr,
                ..
            }
        ));
        let mut notify = query(1, "a.test", TYPE_A);
        notify[2] |= 4 << 3;
        assert!(matches!(
            parse(&notify),
            Datagram::Bad {
                rcode: Rcode::NotImp,
                ..
            }
        ));
        // Every prefix and a few corruptions of a real query: no panic.
        let packet = query(3, "sms.lab.test", TYPE_A);
        for len in 0..=packet.len() {
            let _ = parse(&packet[..len]);
        }
        let mut state = 0x1234_5678_u32;
        for _ in 0..2_000 {
            let mut noisy = packet.clone();
            for _ in 0..3 {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let at = (state >> 8) as usize % noisy.len();
                noisy[at] = (state >> 24) as u8;
            }
            if let Datagram::Query(parsed) = parse(&noisy) {
                let _ = answer(
                    &parsed,
                    Rcode::NoError,
                    &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
                    1,
                );
            }
        }
    }

    #[test]
    fn answers_that_do_not_fit_are_truncated() {
        let packet = query(1, "many.test", TYPE_A);
        let Datagram::Query(parsed) = parse(&packet) else {
            panic!("not a query");
        };
        let addrs: Vec<IpAddr> = (0..100u8)
            .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 1, n)))
            .collect();
        let answer = answer(&parsed, Rcode::NoError, &addrs, 1);
        assert!(answer.len() <= MAX_UDP_ANSWER);
        assert_eq!(answer[2] & 0x02, 0x02, "TC set");
    }
}
