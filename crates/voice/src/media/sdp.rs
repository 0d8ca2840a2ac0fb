//! SDP (RFC 8866, formerly RFC 4566), read just enough to anchor media, and
//! rewritten so both legs send their RTP to us. Pure: bytes in, bytes out.
//!
//! What is read: the session- and media-level `c=` (`IN IP4` or `IN IP6`
//! and a unicast IP literal: a host name or a multicast group cannot be
//! anchored, so they are errors), the `m=` lines (media, port, protocol,
//! formats), `a=rtpmap`, `a=rtcp` (RFC 3605), the direction attributes
//! (`sendrecv`, `sendonly`, `recvonly`, `inactive`, at session or media
//! level; RFC 3264 §5.1), `a=rtcp-mux` (RFC 5761) and `a=crypto` (RFC 4568,
//! only noticed: SRTP cannot be recorded). Every other line is kept byte for
//! byte, line endings included (CRLF or LF, as they came), except the ICE
//! lines, which [`rewrite`] drops.
//!
//! Parsing is lenient where leniency costs nothing (blank lines, unknown
//! line types, missing `o=`/`s=`/`t=`: the far end judges those) and strict
//! where the anchoring depends on it: an error names the line (1-based) and
//! the fault, and becomes the `Warning` of a 488.
//!
//! [`rewrite`] splices our address into every `c=` (a `0.0.0.0` or `::`
//! one is left alone: it is an RFC 2543 hold, which must reach the far end),
//! our ports into the `m=` lines and `a=rtcp` (RTP port + 1, and our address
//! if the attribute names one). A port 0 m-line (a declined stream) stays 0.
//! It drops the ICE lines (RFC 8839: `a=candidate`, `a=ice-ufrag`,
//! `a=ice-pwd`, `a=ice-options`, `a=ice-lite`, `a=ice-mismatch`,
//! `a=end-of-candidates`, `a=remote-candidates`): with them the two ICE
//! agents would find each other's candidates and connect around the relay,
//! and the edge would record nothing (SPEC R1). Without them both ends fall
//! back to the `c=`/`m=` address, ours.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use bytes::Bytes;

use super::tap::MediaDirection;

/// The most m-lines read; a longer SDP is refused (a stranger's bound,
/// DESIGN.md invariant 6; real calls have one or two).
pub const MAX_MEDIA_LINES: usize = 32;

/// A parsed SDP. Holds its body (a cheap clone of the SIP body) and where
/// in it the rewritable tokens are.
#[derive(Debug, Clone)]
pub struct Sdp {
    body: Bytes,
    connection: Option<Connection>,
    direction: Option<MediaDirection>,
    media: Vec<Media>,
    /// Every `c=` line, at any level (a repeated one too): all are
    /// rewritten, so no far-end address leaks past us.
    all_connections: Vec<Connection>,
    /// Every `a=rtcp`, with its m-line.
    all_rtcp: Vec<(usize, Rtcp)>,
    /// The ICE lines, line ending included: dropped by [`rewrite`].
    ice_lines: Vec<Range<usize>>,
}

/// One `c=` line: `IN IP4 192.0.2.1` or `IN IP6 2001:db8::1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The address.
    pub addr: IpAddr,
    /// The bytes of `IP4 192.0.2.1` (address type and address) in the body.
    span: Range<usize>,
}

/// One `m=` line and its media-level attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `audio`, `video`, `image`, …
    pub kind: String,
    /// The RTP port; 0 for a declined stream.
    pub port: u16,
    port_span: Range<usize>,
    /// `RTP/AVP`, `udptl`, …
    pub proto: String,
    /// The formats (payload type numbers for RTP).
    pub formats: Vec<String>,
    /// Its own `c=`, if any (else the session's applies).
    pub connection: Option<Connection>,
    /// `a=rtcp` (RFC 3605), if any.
    pub rtcp: Option<Rtcp>,
    /// Its direction attribute, if any (else the session's applies).
    pub direction: Option<MediaDirection>,
    /// Whether `a=rtcp-mux` is present.
    pub rtcp_mux: bool,
    /// `a=rtpmap` entries: payload type and `encoding/rate[/params]`.
    pub rtpmap: Vec<(u8, String)>,
    /// Whether an `a=crypto` (SDES keys for SRTP, RFC 4568) is present.
    pub crypto: bool,
    /// Its line number (1-based), for errors.
    pub line: usize,
}

impl Media {
    /// Whether the stream is SRTP: a secure profile (`RTP/SAVP`,
    /// `RTP/SAVPF`, `UDP/TLS/RTP/SAVP[F]`: DTLS-SRTP) or SDES keys
    /// (`a=crypto`). Its payloads cannot be recorded as audio.
    pub fn is_srtp(&self) -> bool {
        self.crypto || self.proto.to_ascii_uppercase().contains("SAVP")
    }

    /// Whether the stream carries RTP (`RTP/AVP`, `RTP/AVPF`, the secure
    /// ones): else (T.38's `udptl`, …) its datagrams are not RTP and are
    /// relayed as they come, whatever their first bytes.
    pub fn is_rtp(&self) -> bool {
        self.proto.to_ascii_uppercase().contains("RTP/")
    }
}

/// `a=rtcp:PORT [IN IP4 ADDR]` (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    /// The RTCP port.
    pub port: u16,
    port_span: Range<usize>,
    /// The address, if the attribute names one.
    pub connection: Option<Connection>,
}

/// Why an SDP was refused: which line (1-based; 0 for the body as a whole),
/// what it said, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SDP line {line} {text:?}: {fault}")]
pub struct SdpError {
    /// The line number, 1-based (0: the body as a whole).
    pub line: usize,
    /// The line as received (at most 80 characters, lossy UTF-8).
    pub text: String,
    /// What is wrong.
    pub fault: SdpFault,
}

/// What is wrong with an SDP line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpFault {
    /// Nothing but blank lines.
    #[error("the body is empty")]
    Empty,
    /// The first line is not `v=0`.
    #[error("the first line must be v=0")]
    NoVersion,
    /// Not `<letter>=<value>`.
    #[error("not <type>=<value>")]
    NotTypeValue,
    /// A `c=` or `a=rtcp` address that is not `IN IP4|IP6 <unicast IP>`.
    #[error("{0}")]
    Address(&'static str),
    /// An `m=` line that cannot be read.
    #[error("{0}")]
    MediaLine(&'static str),
    /// An `a=` line we read that cannot be read.
    #[error("{0}")]
    Attribute(&'static str),
    /// A stream with a port and no `c=` for it, at either level.
    #[error("no c= line applies to this stream (RFC 8866 §5.7)")]
    NoConnection,
    /// More than [`MAX_MEDIA_LINES`] m-lines.
    #[error("more than {MAX_MEDIA_LINES} m= lines")]
    TooManyMedia,
}

impl Sdp {
    /// Parses an SDP body. Never panics; see the module docs for what is
    /// checked.
    pub fn parse(body: Bytes) -> Result<Sdp, SdpError> {
        let mut sdp = Sdp {
            body: body.clone(),
            connection: None,
            direction: None,
            media: Vec::new(),
            all_connections: Vec::new(),
            all_rtcp: Vec::new(),
            ice_lines: Vec::new(),
        };
        let mut seen_version = false;
        let mut line_number = 0;
        let mut start = 0;
        while start < body.len() {
            let end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |i| start + i);
            let mut content_end = end;
            if content_end > start && body[content_end - 1] == b'\r' {
                content_end -= 1;
            }
            line_number += 1;
            let line = start..content_end;
            start = end + 1;
            if line.is_empty() {
                continue;
            }
            let error = |fault| SdpError {
                line: line_number,
                text: excerpt(&body[line.clone()]),
                fault,
            };
            let bytes = &body[line.clone()];
            if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_alphabetic() {
                return Err(error(SdpFault::NotTypeValue));
            }
            if !seen_version {
                if bytes != b"v=0" {
                    return Err(error(SdpFault::NoVersion));
                }
                seen_version = true;
                continue;
            }
            let value = line.start + 2..line.end;
            match bytes[0] {
                b'c' => {
                    let connection = connection(&body, value).map_err(error)?;
                    sdp.all_connections.push(connection.clone());
                    match sdp.media.last_mut() {
                        Some(media) => media.connection = Some(connection),
                        None => sdp.connection = Some(connection),
                    }
                }
                b'm' => {
                    if sdp.media.len() == MAX_MEDIA_LINES {
                        return Err(error(SdpFault::TooManyMedia));
                    }
                    let media = media_line(&body, value, line_number).map_err(error)?;
                    sdp.media.push(media);
                }
                b'a' => {
                    if is_ice_attribute(&body[value.clone()]) {
                        sdp.ice_lines.push(line.start..(end + 1).min(body.len()));
                    }
                    sdp.attribute(value).map_err(error)?
                }
                _ => {}
            }
        }
        if !seen_version {
            return Err(SdpError {
                line: 0,
                text: String::new(),
                fault: SdpFault::Empty,
            });
        }
        if sdp.connection.is_none() {
            if let Some(media) = sdp
                .media
                .iter()
                .find(|m| m.port != 0 && m.connection.is_none())
            {
                let text = body
                    .split(|&b| b == b'\n')
                    .nth(media.line - 1)
                    .map(|line| excerpt(line.strip_suffix(b"\r").unwrap_or(line)))
                    .unwrap_or_default();
                return Err(SdpError {
                    line: media.line,
                    text,
                    fault: SdpFault::NoConnection,
                });
            }
        }
        Ok(sdp)
    }

    /// The body as received.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The m-lines, in order.
    pub fn media(&self) -> &[Media] {
        &self.media
    }

    /// The session-level `c=` address, if any.
    pub fn session_connection(&self) -> Option<IpAddr> {
        self.connection.as_ref().map(|c| c.addr)
    }

    /// The address a stream's RTP goes to (its `c=`, else the session's,
    /// and its port); none for a declined stream (port 0) or an RFC 2543
    /// hold (`0.0.0.0`).
    pub fn rtp_addr(&self, stream: usize) -> Option<SocketAddr> {
        let media = self.media.get(stream)?;
        let ip = self.stream_ip(media)?;
        (media.port != 0).then(|| SocketAddr::new(ip, media.port))
    }

    /// The address a stream's RTCP goes to: `a=rtcp`'s port and address if
    /// given, else the RTP port + 1 (RFC 3605 §2.1). With `a=rtcp-mux`
    /// negotiated RTCP travels on the RTP port instead, and nothing arrives
    /// on ours to send there.
    pub fn rtcp_addr(&self, stream: usize) -> Option<SocketAddr> {
        let media = self.media.get(stream)?;
        let ip = self.stream_ip(media)?;
        if media.port == 0 {
            return None;
        }
        match &media.rtcp {
            Some(rtcp) => {
                let ip = rtcp.connection.as_ref().map_or(ip, |c| c.addr);
                (!ip.is_unspecified() && rtcp.port != 0).then(|| SocketAddr::new(ip, rtcp.port))
            }
            None => media
                .port
                .checked_add(1)
                .map(|port| SocketAddr::new(ip, port)),
        }
    }

    /// A stream's direction (RFC 3264 §5.1): its own attribute, else the
    /// session's, else `sendrecv`; with a `0.0.0.0` connection (RFC 2543
    /// hold, RFC 3264 §8.4) the party does not receive, so `sendrecv`
    /// becomes `sendonly` and `recvonly` becomes `inactive`. A declined
    /// stream (port 0) is inactive.
    pub fn stream_direction(&self, stream: usize) -> MediaDirection {
        let Some(media) = self.media.get(stream) else {
            return self.direction.unwrap_or(MediaDirection::SendRecv);
        };
        if media.port == 0 {
            return MediaDirection::Inactive;
        }
        let direction = media
            .direction
            .or(self.direction)
            .unwrap_or(MediaDirection::SendRecv);
        let held = media
            .connection
            .as_ref()
            .or(self.connection.as_ref())
            .is_some_and(|c| c.addr.is_unspecified());
        match (held, direction) {
            (true, MediaDirection::SendRecv) => MediaDirection::SendOnly,
            (true, MediaDirection::RecvOnly) => MediaDirection::Inactive,
            (_, direction) => direction,
        }
    }

    /// The call's direction as this SDP states it (SPEC R5: hold is read
    /// from here): the first active audio stream's, else the first active
    /// stream's, else the session's.
    pub fn direction(&self) -> MediaDirection {
        let active = |kind: Option<&str>| {
            self.media
                .iter()
                .position(|m| m.port != 0 && kind.is_none_or(|k| m.kind.eq_ignore_ascii_case(k)))
        };
        match active(Some("audio")).or_else(|| active(None)) {
            Some(stream) => self.stream_direction(stream),
            None if self.media.is_empty() => self.direction.unwrap_or(MediaDirection::SendRecv),
            None => MediaDirection::Inactive,
        }
    }

    /// The payload types of the active audio streams, in order, with their
    /// names (`"PCMU/8000"`): from `a=rtpmap`, else RFC 3551's static table
    /// (0 PCMU/8000, 8 PCMA/8000, …), else empty. A stream that is SRTP
    /// ([`Media::is_srtp`]) has its names prefixed `SRTP/` (`"SRTP/PCMU/8000"`):
    /// its payloads are encrypted, and the merge must list them as
    /// undecodable rather than decode noise as µ-law (SPEC R1, R2).
    pub fn payload_types(&self) -> Vec<(u8, String)> {
        let mut types = Vec::new();
        for media in &self.media {
            if media.port == 0 || !media.kind.eq_ignore_ascii_case("audio") {
                continue;
            }
            for format in &media.formats {
                let Ok(pt) = format.parse::<u8>() else {
                    continue;
                };
                if pt > 127 || types.iter().any(|(seen, _)| *seen == pt) {
                    continue;
                }
                let name = media
                    .rtpmap
                    .iter()
                    .find(|(n, _)| *n == pt)
                    .map(|(_, name)| name.clone())
                    .or_else(|| static_payload_type(pt).map(str::to_owned))
                    .unwrap_or_default();
                let name = if media.is_srtp() {
                    format!("SRTP/{name}")
                } else {
                    name
                };
                types.push((pt, name));
            }
        }
        types
    }

    /// Whether an active stream is SRTP (see [`Media::is_srtp`]).
    pub fn has_srtp(&self) -> bool {
        self.media.iter().any(|m| m.port != 0 && m.is_srtp())
    }

    fn stream_ip(&self, media: &Media) -> Option<IpAddr> {
        let ip = media.connection.as_ref().or(self.connection.as_ref())?.addr;
        (!ip.is_unspecified()).then_some(ip)
    }

    fn attribute(&mut self, value: Range<usize>) -> Result<(), SdpFault> {
        let bytes = &self.body[value.clone()];
        let (name, rest) = match memchr::memchr(b':', bytes) {
            Some(colon) => (&bytes[..colon], Some(value.start + colon + 1..value.end)),
            None => (bytes, None),
        };
        let direction = match name {
            b"sendrecv" => Some(MediaDirection::SendRecv),
            b"sendonly" => Some(MediaDirection::SendOnly),
            b"recvonly" => Some(MediaDirection::RecvOnly),
            b"inactive" => Some(MediaDirection::Inactive),
            _ => None,
        };
        if let Some(direction) = direction {
            match self.media.last_mut() {
                Some(media) => media.direction = Some(direction),
                None => self.direction = Some(direction),
            }
            return Ok(());
        }
        // The rest are media-level attributes; at session level they are
        // kept as they are.
        let index = self.media.len().wrapping_sub(1);
        let Some(media) = self.media.last_mut() else {
            return Ok(());
        };
        match (name, rest) {
            (b"rtcp-mux", _) => media.rtcp_mux = true,
            (b"crypto", _) => media.crypto = true,
            (b"rtcp", Some(rest)) => {
                let rtcp = rtcp(&self.body, rest)?;
                self.all_rtcp.push((index, rtcp.clone()));
                media.rtcp = Some(rtcp);
            }
            (b"rtcp", None) => return Err(SdpFault::Attribute("a=rtcp without a port")),
            (b"rtpmap", Some(rest)) => {
                let text = &self.body[rest];
                let space = memchr::memchr(b' ', text).ok_or(SdpFault::Attribute(
                    "a=rtpmap needs <payload type> <encoding>",
                ))?;
                let pt = number(&text[..space])
                    .filter(|&pt| pt <= 127)
                    .ok_or(SdpFault::Attribute("a=rtpmap's payload type is not 0-127"))?;
                let name = String::from_utf8_lossy(&text[space + 1..])
                    .trim()
                    .to_owned();
                media.rtpmap.push((pt as u8, name));
            }
            _ => {}
        }
        Ok(())
    }
}

/// The body with our address in every `c=` (but `0.0.0.0`/`::`), and
/// `ports[i]` in m-line `i` (its `a=rtcp` gets the port + 1, and our address
/// if it names one). A port 0 m-line stays 0; an m-line with no port given
/// (`None`, or beyond `ports`) becomes 0, declined. Everything else is kept
/// byte for byte.
pub fn rewrite(sdp: &Sdp, ours: IpAddr, ports: &[Option<u16>]) -> Vec<u8> {
    let address = address_tokens(ours);
    let mut edits: Vec<(Range<usize>, Vec<u8>)> =
        Vec::with_capacity(sdp.all_connections.len() + 3 * sdp.media.len() + sdp.ice_lines.len());
    for line in &sdp.ice_lines {
        edits.push((line.clone(), Vec::new()));
    }
    let connection_edit = |connection: &Connection, edits: &mut Vec<_>| {
        if !connection.addr.is_unspecified() {
            edits.push((connection.span.clone(), address.clone()));
        }
    };
    for connection in &sdp.all_connections {
        connection_edit(connection, &mut edits);
    }
    let new_port = |index: usize| match (sdp.media.get(index), ports.get(index).copied().flatten())
    {
        (Some(media), Some(port)) if media.port != 0 => port,
        _ => 0,
    };
    for (index, media) in sdp.media.iter().enumerate() {
        edits.push((
            media.port_span.clone(),
            new_port(index).to_string().into_bytes(),
        ));
    }
    for (index, rtcp) in &sdp.all_rtcp {
        let port = new_port(*index);
        if port != 0 {
            edits.push((
                rtcp.port_span.clone(),
                port.saturating_add(1).to_string().into_bytes(),
            ));
            if let Some(connection) = &rtcp.connection {
                connection_edit(connection, &mut edits);
            }
        }
    }
    edits.sort_by_key(|(span, _)| span.start);
    let body = &sdp.body[..];
    let mut out = Vec::with_capacity(body.len() + 16 * edits.len());
    let mut at = 0;
    for (span, replacement) in edits {
        out.extend_from_slice(&body[at..span.start]);
        out.extend_from_slice(&replacement);
        at = span.end;
    }
    out.extend_from_slice(&body[at..]);
    out
}

/// Whether an attribute (the value of an `a=` line) is one of ICE's
/// (RFC 8839 §5), which [`rewrite`] drops.
fn is_ice_attribute(value: &[u8]) -> bool {
    let name = memchr::memchr(b':', value).map_or(value, |colon| &value[..colon]);
    matches!(
        name,
        b"candidate"
            | b"ice-ufrag"
            | b"ice-pwd"
            | b"ice-options"
            | b"ice-lite"
            | b"ice-mismatch"
            | b"ice-pacing"
            | b"end-of-candidates"
            | b"remote-candidates"
    )
}

/// RFC 3551's static payload types (audio and video), by number.
pub fn static_payload_type(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU/8000",
        3 => "GSM/8000",
        4 => "G723/8000",
        5 => "DVI4/8000",
        6 => "DVI4/16000",
        7 => "LPC/8000",
        8 => "PCMA/8000",
        9 => "G722/8000",
        10 => "L16/44100/2",
        11 => "L16/44100",
        12 => "QCELP/8000",
        13 => "CN/8000",
        14 => "MPA/90000",
        15 => "G728/8000",
        16 => "DVI4/11025",
        17 => "DVI4/22050",
        18 => "G729/8000",
        25 => "CelB/90000",
        26 => "JPEG/90000",
        28 => "nv/90000",
        31 => "H261/90000",
        32 => "MPV/90000",
        33 => "MP2T/90000",
        34 => "H263/90000",
        _ => return None,
    })
}

/// `IP4 192.0.2.1` or `IP6 2001:db8::1`.
fn address_tokens(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => format!("IP4 {v4}").into_bytes(),
        IpAddr::V6(v6) => format!("IP6 {v6}").into_bytes(),
    }
}

/// The space-separated tokens of `span` in `body`, as spans.
fn tokens(body: &[u8], span: Range<usize>) -> impl Iterator<Item = Range<usize>> + '_ {
    let start = span.start;
    body[span]
        .split(|&b| b == b' ')
        .scan(start, |at, token| {
            let range = *at..*at + token.len();
            *at += token.len() + 1;
            Some(range)
        })
        .filter(|range| !range.is_empty())
}

/// `IN IP4 ADDR` (the value of `c=`, or the tail of `a=rtcp`).
fn connection(body: &[u8], value: Range<usize>) -> Result<Connection, SdpFault> {
    let mut parts = tokens(body, value);
    let (Some(net), Some(kind), Some(addr)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SdpFault::Address("must be IN IP4|IP6 <address>"));
    };
    if parts.next().is_some() {
        return Err(SdpFault::Address("unexpected text after the address"));
    }
    if &body[net] != b"IN" {
        return Err(SdpFault::Address("the network type is not IN"));
    }
    let text = std::str::from_utf8(&body[addr.clone()])
        .map_err(|_| SdpFault::Address("the address is not text"))?;
    if text.contains('/') {
        return Err(SdpFault::Address(
            "a multicast address (with a TTL or count) cannot be anchored",
        ));
    }
    let ip: IpAddr = match &body[kind.clone()] {
        b"IP4" => text
            .parse::<std::net::Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| SdpFault::Address("not an IPv4 address (host names are not anchored)"))?,
        b"IP6" => text
            .parse::<std::net::Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| SdpFault::Address("not an IPv6 address (host names are not anchored)"))?,
        _ => return Err(SdpFault::Address("the address type is not IP4 or IP6")),
    };
    if ip.is_multicast() {
        return Err(SdpFault::Address("a multicast address cannot be anchored"));
    }
    Ok(Connection {
        addr: ip,
        span: kind.start..addr.end,
    })
}

/// `MEDIA PORT PROTO FMT...`.
fn media_line(body: &[u8], value: Range<usize>, line: usize) -> Result<Media, SdpFault> {
    let mut parts = tokens(body, value);
    let (Some(kind), Some(port_span), Some(proto)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(SdpFault::MediaLine(
            "must be <media> <port> <proto> <formats>",
        ));
    };
    if memchr::memchr(b'/', &body[port_span.clone()]).is_some() {
        return Err(SdpFault::MediaLine(
            "port counts (4000/2) cannot be anchored",
        ));
    }
    let port = number(&body[port_span.clone()])
        .and_then(|n| u16::try_from(n).ok())
        .ok_or(SdpFault::MediaLine("the port is not a number 0-65535"))?;
    let formats: Vec<String> = parts.map(|f| lossy(&body[f])).collect();
    if formats.is_empty() {
        return Err(SdpFault::MediaLine("no formats"));
    }
    Ok(Media {
        kind: lossy(&body[kind]),
        port,
        port_span,
        proto: lossy(&body[proto]),
        formats,
        connection: None,
        rtcp: None,
        direction: None,
        rtcp_mux: false,
        rtpmap: Vec::new(),
        crypto: false,
        line,
    })
}

/// `PORT [IN IP4 ADDR]`, the value of `a=rtcp`.
fn rtcp(body: &[u8], value: Range<usize>) -> Result<Rtcp, SdpFault> {
    let mut parts = tokens(body, value.clone());
    let port_span = parts
        .next()
        .ok_or(SdpFault::Attribute("a=rtcp without a port"))?;
    let port = number(&body[port_span.clone()])
        .and_then(|n| u16::try_from(n).ok())
        .ok_or(SdpFault::Attribute("a=rtcp's port is not a number 0-65535"))?;
    let connection = match parts.next() {
        None => None,
        Some(rest) => Some(connection(body, rest.start..value.end)?),
    };
    Ok(Rtcp {
        port,
        port_span,
        connection,
    })
}

/// A decimal number of at most 9 digits.
fn number(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 9 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        bytes
            .iter()
            .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')),
    )
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests;
