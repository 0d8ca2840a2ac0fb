//! Small pieces of RFC 3261 a proxy applies to messages: transaction keys,
//! `received`/`rport` (§18.2.1, RFC 3581), where responses go (§18.2.2),
//! next-hop addresses, branches, and who "we" are.

use std::net::{IpAddr, SocketAddr};

use crate::message::{Header, HeaderName, Headers, Request, Uri, Via, BRANCH_MAGIC_COOKIE};
use bytes::{BufMut, Bytes, BytesMut};
use hotsite_core::Rng;
use sha2::{Digest, Sha256};

use super::transport::{Peer, Transport};

/// What identifies the caller's INVITE server transaction (§17.2.3): the top
/// Via branch and sent-by, or for pre-RFC 3261 clients (no magic cookie) the
/// Request-URI, From tag, Call-ID, CSeq number and top Via. ACK and CANCEL
/// map to the INVITE's key. The bytes are copied, so a key kept after the call
/// (a tombstone) does not hold the datagram it came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerKey(Box<[u8]>);

impl ServerKey {
    /// The key of `request`, whose top Via is `via`; `None` when a part the
    /// key needs is missing (no branch, or for an old client no From tag,
    /// Call-ID or CSeq).
    pub fn of(request: &Request, via: &Via) -> Option<ServerKey> {
        let mut key = Vec::with_capacity(64);
        if via.has_rfc3261_branch() {
            key.extend_from_slice(via.branch.as_ref()?);
            key.push(0);
            key.extend(via.host.iter().map(u8::to_ascii_lowercase));
            key.push(b':');
            key.extend_from_slice(via.port.unwrap_or(5060).to_string().as_bytes());
        } else {
            key.extend_from_slice(b"\0rfc2543");
            let from_tag = request.headers.from()?.tag()?.as_bytes().to_vec();
            for part in [
                &request.uri.as_bytes()[..],
                &from_tag[..],
                request.headers.call_id_bytes()?,
                request.headers.cseq()?.seq.to_string().as_bytes(),
                request.headers.value(HeaderName::Via)?,
            ] {
                key.push(0);
                key.extend_from_slice(part);
            }
        }
        Some(ServerKey(key.into_boxed_slice()))
    }
}

/// An IP literal from a URI or Via host (`[::1]` brackets allowed).
pub fn parse_ip(host: &[u8]) -> Option<IpAddr> {
    let host = std::str::from_utf8(host).ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.parse().ok()
}

/// Where the responses to a request that came from `from` go (§18.2.2 with
/// RFC 3581): over TCP, back on the connection it came on; over UDP with
/// `rport`, back to the source address and port; otherwise to the source IP
/// (the `received` address) at the sent-by port.
pub fn reply_addr(via: &Via, from: Peer) -> Peer {
    if from.transport == Transport::Tcp || via.rport().is_some() {
        from
    } else {
        Peer::udp(SocketAddr::new(from.addr.ip(), via.port.unwrap_or(5060)))
    }
}

/// Adds `received` (and `rport`) to the top Via when RFC 3261 §18.2.1 and
/// RFC 3581 §4 ask for it: the sent-by host is not the source IP, or the
/// client asked for `rport`; and over TCP always, with the connection's port
/// as `rport`, so that a 2xx relayed along the Via after the call's state is
/// gone (RFC 6026) finds the same connection. The common UDP case (an IP
/// sent-by equal to the source, no `rport`) edits nothing. Returns where
/// responses go.
pub fn stamp_via(headers: &mut Headers, via: &Via, from: Peer) -> Peer {
    let addr = reply_addr(via, from);
    let rport = via.rport().is_some() || from.transport == Transport::Tcp;
    if !rport && parse_ip(&via.host) == Some(from.addr.ip()) {
        return addr;
    }
    let from = from.addr;
    let mut value = BytesMut::with_capacity(96 + via.params.as_bytes().len());
    value.put_slice(&via.protocol);
    value.put_u8(b'/');
    value.put_slice(&via.transport);
    value.put_u8(b' ');
    value.put_slice(&via.host);
    if let Some(port) = via.port {
        value.put_slice(format!(":{port}").as_bytes());
    }
    for (name, param) in via.params.iter() {
        if name.eq_ignore_ascii_case(b"received") || name.eq_ignore_ascii_case(b"rport") {
            continue;
        }
        value.put_u8(b';');
        value.put_slice(name);
        if let Some(param) = param {
            value.put_u8(b'=');
            value.put_slice(param);
        }
    }
    value.put_slice(format!(";received={}", from.ip()).as_bytes());
    if rport {
        value.put_slice(format!(";rport={}", from.port()).as_bytes());
    }
    headers.pop_via();
    headers.push_via(value.freeze());
    addr
}

/// Where a response goes after we popped our Via: over the Via's transport,
/// to its `received` (or host, if an IP) and `rport` (or port, or 5060).
/// `None` when the host is a name (we resolve nothing) or the transport is
/// one we do not speak.
pub fn response_addr(via: &Via) -> Option<Peer> {
    let transport = Transport::parse(&via.transport)?;
    let ip = match via.received() {
        Some(received) => parse_ip(received.as_bytes())?,
        None => parse_ip(&via.host)?,
    };
    let port = match via.rport() {
        Some(Some(port)) => port,
        _ => via.port.unwrap_or(5060),
    };
    Some(Peer {
        transport,
        addr: SocketAddr::new(ip, port),
    })
}

/// The address a SIP URI points at (a Route entry or a Request-URI): its
/// `maddr` or host, which must be an IP literal, and its port or 5060; with
/// the transport its `transport` parameter names, if any.
pub fn uri_addr(uri: &Uri) -> Result<(SocketAddr, Option<Transport>), &'static str> {
    let sip = uri.sip().ok_or("not a sip: URI")?;
    if sip.secure {
        return Err("sips: needs TLS, which this proxy does not speak yet");
    }
    let transport = match sip.param("transport") {
        Some(Some(name)) => {
            Some(Transport::parse(name).ok_or("the URI's transport is not one this proxy speaks")?)
        }
        _ => None,
    };
    let host = match sip.param("maddr") {
        Some(Some(maddr)) => maddr,
        _ => &sip.host[..],
    };
    let ip =
        parse_ip(host).ok_or("the host is a name, not an IP address (names are not resolved)")?;
    Ok((SocketAddr::new(ip, sip.port.unwrap_or(5060)), transport))
}

/// Our addresses: the public one (Via, Record-Route) and the bound one.
#[derive(Debug, Clone)]
pub struct Us {
    /// The address we put in Via and Record-Route, and answer to.
    pub public: SocketAddr,
    /// The address the socket is bound to (it names us too, unless it is the
    /// unspecified address).
    pub listen: SocketAddr,
}

impl Us {
    /// Us at `public` (Via, Record-Route), bound at `listen`.
    pub fn new(public: SocketAddr, listen: SocketAddr) -> Us {
        Us { public, listen }
    }

    fn is(&self, ip: Option<IpAddr>, port: Option<u16>) -> bool {
        let Some(ip) = ip else {
            return false;
        };
        let addr = SocketAddr::new(ip, port.unwrap_or(5060));
        addr == self.public || (addr == self.listen && !self.listen.ip().is_unspecified())
    }

    /// Whether a URI (a Route entry) names this proxy.
    pub fn is_uri(&self, uri: &Uri) -> bool {
        uri.sip()
            .is_some_and(|sip| self.is(parse_ip(&sip.host), sip.port))
    }

    /// Removes the Route entries naming us from the top of `headers` (one,
    /// or two when the dialog was double record-routed); how many.
    pub fn pop_routes(&self, headers: &mut Headers) -> usize {
        let mut popped = 0;
        while headers
            .top_route()
            .is_some_and(|route| self.is_uri(&route.uri))
        {
            headers.pop_route();
            popped += 1;
        }
        popped
    }

    /// Whether a Via hop is one this proxy pushed.
    pub fn is_via(&self, via: &Via) -> bool {
        self.is(parse_ip(&via.host), via.port)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Stateful branches (one per request forwarded statefully) carry this after the
/// magic cookie; their late non-2xx answers are never relayed statelessly.
const STATEFUL_MARK: &[u8] = b"hs";
/// Branches of statelessly forwarded requests carry this.
const STATELESS_MARK: &[u8] = b"hd";

/// A fresh branch for a request forwarded statefully (in `hotsite-voice`, an
/// INVITE to a trunk): 96 random bits.
pub fn stateful_branch(rng: &mut Rng) -> Bytes {
    let a = rng.next_u64();
    let b = rng.next_u64() as u32;
    Bytes::from(format!("{BRANCH_MAGIC_COOKIE}hs{a:016x}{b:08x}"))
}

/// Whether a branch is one of our stateful ones.
pub fn is_stateful_branch(branch: &[u8]) -> bool {
    branch
        .strip_prefix(BRANCH_MAGIC_COOKIE.as_bytes())
        .is_some_and(|rest| rest.starts_with(STATEFUL_MARK))
}

/// The branch for a request forwarded statelessly (§16.11): a hash of what
/// identifies the incoming transaction, so a retransmission gets the same
/// branch and the next hop sees a retransmission too. The method is left out
/// so that the ACK for a non-2xx answer to a re-INVITE gets the re-INVITE's
/// branch, as §17.1.1.3 requires.
pub fn stateless_branch(request: &Request, via: &Via) -> Bytes {
    let mut hash = Sha256::new();
    if via.has_rfc3261_branch() {
        if let Some(branch) = &via.branch {
            hash.update(branch);
        }
        hash.update([0]);
        hash.update(&via.host);
        hash.update(via.port.unwrap_or(5060).to_be_bytes());
    } else {
        for part in [
            request.uri.as_bytes().as_ref(),
            request
                .headers
                .value(HeaderName::From)
                .map_or(&[][..], |v| v),
            request.headers.value(HeaderName::To).map_or(&[][..], |v| v),
            request
                .headers
                .value(HeaderName::CallId)
                .map_or(&[][..], |v| v),
            request
                .headers
                .value(HeaderName::Via)
                .map_or(&[][..], |v| v),
        ] {
            hash.update(part);
            hash.update([0]);
        }
        if let Some(cseq) = request.headers.cseq() {
            hash.update(cseq.seq.to_be_bytes());
        }
    }
    let digest = hash.finalize();
    let mut branch = BytesMut::with_capacity(BRANCH_MAGIC_COOKIE.len() + 2 + 32);
    branch.put_slice(BRANCH_MAGIC_COOKIE.as_bytes());
    branch.put_slice(STATELESS_MARK);
    for byte in &digest[..16] {
        branch.put_u8(HEX[usize::from(byte >> 4)]);
        branch.put_u8(HEX[usize::from(byte & 0x0f)]);
    }
    branch.freeze()
}

/// `Warning: 399 host "text"` (§20.43), quotes and backslashes in the text
/// replaced so the header stays valid.
pub fn warning(agent: &str, text: &str) -> Header {
    let clean: String = text
        .chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' | '\r' | '\n' => ' ',
            c => c,
        })
        .collect();
    Header::new(HeaderName::Warning, format!("399 {agent} \"{clean}\""))
}
