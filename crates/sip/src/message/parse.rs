//! Parsing a message from bytes (RFC 3261 §7, §18.3).
//!
//! Two passes over one buffer. Framing splits the start line and the header
//! lines (CRLF only; a bare CR or LF is refused; a line starting with SP or HT
//! continues the previous one) and finds the body. Validation then checks the
//! start line and every header a proxy relies on — Via, From, To, Call-ID, CSeq,
//! Max-Forwards, Content-Length, Contact, Route, Record-Route — so that the
//! typed views answer for a message that parsed. Other headers pass untouched.
//!
//! Datagram rules (§18.3): a Content-Length larger than the body is an error,
//! octets after the body are ignored, a missing Content-Length means "the rest of
//! the datagram" (and one is added, so the message can be sent over a stream).
//! For streams, [`frame_len`] cuts one message off a buffer and requires a
//! Content-Length.

use bytes::Bytes;

use super::grammar::{is_token_str, is_ws, trim_lws_range};
use super::headers::{
    is_fold_start, parse_call_id, parse_content_length, parse_cseq, parse_max_forwards, Header,
    HeaderName, Headers,
};
use super::method::{Method, StatusCode};
use super::name_addr::{self, AddrForm};
use super::uri::{validate, Uri};
use super::via;
use super::{Message, Request, Response};

/// The largest message accepted: the largest UDP payload.
pub const MAX_MESSAGE_LEN: usize = 65_535;

/// The most header fields accepted in one message.
pub const MAX_HEADERS: usize = 256;

/// Parses one message from a datagram (or a frame cut by [`frame_len`]).
/// Copies the input once; see [`parse_bytes`] to parse a buffer in place.
pub fn parse(datagram: &[u8]) -> Result<Message, ParseError> {
    parse_bytes(Bytes::copy_from_slice(datagram))
}

/// Parses one message; headers and body are slices of `buf`.
pub fn parse_bytes(buf: Bytes) -> Result<Message, ParseError> {
    if buf.len() > MAX_MESSAGE_LEN {
        return Err(ParseError::bare(ParseErrorKind::TooLarge(MAX_MESSAGE_LEN)));
    }
    let framed = frame(&buf).map_err(ParseError::bare)?;
    let headers = framed.headers(&buf);
    let first_line = &buf[framed.start_line.0..framed.start_line.1];
    let is_request = !starts_with_ignore_case(first_line, b"SIP/");
    match validate_message(&buf, &framed, headers) {
        Ok(message) => Ok(message),
        Err((kind, headers)) => {
            let method = if is_request {
                first_line
                    .split(|&b| b == b' ')
                    .next()
                    .filter(|m| is_token_str(m))
                    .map(|m| Method::from_token(Bytes::copy_from_slice(m)))
            } else {
                None
            };
            Err(ParseError {
                kind,
                partial: Some(Box::new(Partial::collect(is_request, method, &headers))),
            })
        }
    }
}

/// For stream transports (TCP, TLS): the length of the first message in `buf`,
/// `Ok(None)` if more bytes are needed. Leading CRLFs (keep-alives, RFC 5626
/// §3.5.1) come back as a frame of their own, which [`parse`] reports as
/// [`ParseErrorKind::Empty`]. A message on a stream must carry Content-Length
/// (§18.3).
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let crlfs = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if crlfs > 0 {
        return Ok(Some(crlfs));
    }
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_MESSAGE_LEN {
            return Err(ParseError::bare(ParseErrorKind::TooLarge(MAX_MESSAGE_LEN)));
        }
        return Ok(None);
    };
    let head = &buf[..head_end + 2];
    let mut length = None;
    let mut lines = head.split(|&b| b == b'\n').skip(1).peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || is_fold_start(line[0]) {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim_end_ws(&line[..colon]);
        if HeaderName::from_bytes(name) != HeaderName::ContentLength {
            continue;
        }
        let mut value = line[colon + 1..].to_vec();
        while let Some(next) = lines.peek() {
            if next.first().is_some_and(|&b| is_fold_start(b)) {
                value.extend_from_slice(next.strip_suffix(b"\r").unwrap_or(next));
                lines.next();
            } else {
                break;
            }
        }
        let n = parse_content_length(&value).map_err(|reason| {
            ParseError::bare(ParseErrorKind::InvalidHeader {
                header: "Content-Length".into(),
                reason,
            })
        })?;
        length = Some(n);
        break;
    }
    let length =
        length.ok_or_else(|| ParseError::bare(ParseErrorKind::MissingHeader("Content-Length")))?;
    let total = head_end + 4 + length;
    if total > MAX_MESSAGE_LEN {
        return Err(ParseError::bare(ParseErrorKind::TooLarge(MAX_MESSAGE_LEN)));
    }
    Ok((buf.len() >= total).then_some(total))
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    kind: ParseErrorKind,
    partial: Option<Box<Partial>>,
}

/// What was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Nothing but CRLFs: a keep-alive, not a message.
    #[error("no message, only line breaks (keep-alive)")]
    Empty,
    /// Larger than [`MAX_MESSAGE_LEN`].
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
    /// The header section does not end (no empty line).
    #[error("incomplete message: {0}")]
    Incomplete(&'static str),
    /// A CR or LF that is not part of a CRLF.
    #[error("bare CR or LF in the start line or headers")]
    BareLineBreak,
    /// A header line that is not `name: value`.
    #[error("invalid header line: {0}")]
    InvalidHeaderLine(&'static str),
    /// More than [`MAX_HEADERS`] fields.
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
    /// The Request-Line is not `Method SP Request-URI SP SIP/2.0`.
    #[error("invalid Request-Line: {0}")]
    InvalidRequestLine(&'static str),
    /// The Status-Line is not `SIP/2.0 SP 3DIGIT SP Reason-Phrase`.
    #[error("invalid Status-Line: {0}")]
    InvalidStatusLine(&'static str),
    /// Not SIP/2.0 (answered 505, §8.2.2).
    #[error("unsupported SIP version {0}")]
    UnsupportedVersion(String),
    /// A header a proxy relies on does not follow its grammar.
    #[error("invalid {header} header: {reason}")]
    InvalidHeader {
        /// The header's name as received.
        header: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header that may appear once appears twice.
    #[error("duplicate {0} header")]
    DuplicateHeader(&'static str),
    /// A mandatory header is missing (§8.1.1).
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// The CSeq method is not the request's method (§8.1.1.5).
    #[error("CSeq method {cseq} does not match the request method {method}")]
    MethodMismatch {
        /// The request method.
        method: String,
        /// The CSeq method.
        cseq: String,
    },
    /// Content-Length says more than the datagram holds (§18.3).
    #[error("Content-Length {declared} but only {available} bytes of body")]
    BodyTooShort {
        /// What Content-Length says.
        declared: usize,
        /// What arrived.
        available: usize,
    },
}

impl ParseErrorKind {
    /// A short reason phrase for the error response.
    fn reason_phrase(&self) -> String {
        match self {
            ParseErrorKind::InvalidHeader { header, .. } => format!("Invalid {header}"),
            ParseErrorKind::DuplicateHeader(h) => format!("Duplicate {h}"),
            ParseErrorKind::MissingHeader(h) => format!("Missing {h}"),
            ParseErrorKind::MethodMismatch { .. } => "CSeq Method Mismatch".into(),
            ParseErrorKind::BodyTooShort { .. } => "Content-Length Larger Than Body".into(),
            ParseErrorKind::InvalidRequestLine(_) => "Invalid Request-Line".into(),
            ParseErrorKind::UnsupportedVersion(_) => "Version Not Supported".into(),
            _ => "Bad Request".into(),
        }
    }
}

impl ParseError {
    fn bare(kind: ParseErrorKind) -> ParseError {
        ParseError {
            kind,
            partial: None,
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// Whether the input was only a keep-alive (CRLFs): not an error to log.
    pub fn is_keepalive(&self) -> bool {
        self.kind == ParseErrorKind::Empty
    }

    /// What could be read of a message whose framing was sound.
    pub fn partial(&self) -> Option<&Partial> {
        self.partial.as_deref()
    }

    /// The status to answer with: 505 for another SIP version, 400 otherwise.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ParseErrorKind::UnsupportedVersion(_) => StatusCode::VERSION_NOT_SUPPORTED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The response a server sends back (§8.2: 400 naming the problem, or 505),
    /// if the message was a request other than ACK and its Via, From, To, Call-ID
    /// and CSeq could be read. `to_tag` is added to To if it has none. `None`
    /// means: drop it (responses, ACKs, garbage).
    pub fn reply(&self, to_tag: &str) -> Option<Response> {
        let partial = self.partial.as_deref()?;
        partial.reply(self.status(), &self.kind.reason_phrase(), to_tag)
    }
}

/// The headers of a refused message needed to answer it (§8.2.6): every Via,
/// From, To, Call-ID and CSeq, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial {
    /// Whether it was a request (start line not `SIP/…`).
    pub is_request: bool,
    /// The request method, if the start line had a readable one.
    pub method: Option<Method>,
    /// Via, From, To, Call-ID and CSeq fields, in order.
    pub headers: Headers,
}

impl Partial {
    fn collect(is_request: bool, method: Option<Method>, headers: &Headers) -> Partial {
        let mut kept = Headers::with_capacity(6);
        for h in headers {
            if matches!(
                h.kind(),
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
            ) {
                kept.push(h.clone());
            }
        }
        Partial {
            is_request,
            method,
            headers: kept,
        }
    }

    fn reply(&self, status: StatusCode, reason: &str, to_tag: &str) -> Option<Response> {
        if !self.is_request {
            return None;
        }
        let cseq_is_ack = self.headers.value(HeaderName::CSeq).is_some_and(|v| {
            v.split(|&b| super::grammar::is_lws(b))
                .rfind(|w| !w.is_empty())
                .is_some_and(|w| w == b"ACK")
        });
        if self.method == Some(Method::Ack) || (self.method.is_none() && cseq_is_ack) {
            return None;
        }
        for kind in [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            self.headers.get(kind)?;
        }
        let mut response = Response::new(status);
        response.reason = Bytes::from(reason.to_owned());
        for h in &self.headers {
            if h.kind() == HeaderName::To && !to_tag.is_empty() {
                let has_tag = self.headers.to().is_some_and(|to| to.tag().is_some());
                if !has_tag && self.headers.to().is_some() {
                    let mut value = h.value().to_vec();
                    value.extend_from_slice(b";tag=");
                    value.extend_from_slice(to_tag.as_bytes());
                    response
                        .headers
                        .push(Header::new(HeaderName::To, Bytes::from(value)));
                    continue;
                }
            }
            response.headers.push(h.clone());
        }
        Some(response)
    }
}

// ---------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------

struct Framed {
    start_line: (usize, usize),
    /// (name, value) ranges of each field.
    fields: Vec<((usize, usize), (usize, usize))>,
    body_start: usize,
}

impl Framed {
    fn headers(&self, buf: &Bytes) -> Headers {
        let mut headers = Headers::with_capacity(self.fields.len() + 1);
        for &((na, nb), (va, vb)) in &self.fields {
            let written = &buf[na..nb];
            let kind = HeaderName::from_bytes(written);
            // A name written in its canonical form shares a static string: one
            // reference count less per header.
            let name = match kind.as_str() {
                Some(long) if long.as_bytes() == written => Bytes::from_static(long.as_bytes()),
                _ => buf.slice(na..nb),
            };
            headers.push(Header::from_parsed(kind, name, buf.slice(va..vb)));
        }
        headers
    }
}

/// The end of the line starting at `from` (the index of its CR), `Ok(None)` if
/// there is no CRLF, an error for a CR or LF that is not a CRLF.
fn line_end(buf: &[u8], from: usize) -> Result<Option<usize>, ParseErrorKind> {
    match memchr::memchr2(b'\r', b'\n', &buf[from..]) {
        None => Ok(None),
        Some(i) => {
            let at = from + i;
            if buf[at] == b'\r' && buf.get(at + 1) == Some(&b'\n') {
                Ok(Some(at))
            } else if buf[at] == b'\r' && at + 1 == buf.len() {
                Ok(None)
            } else {
                Err(ParseErrorKind::BareLineBreak)
            }
        }
    }
}

fn frame(buf: &[u8]) -> Result<Framed, ParseErrorKind> {
    // §7.5: CRLFs before the start line are ignored.
    let mut start = 0;
    while buf[start..].starts_with(b"\r\n") {
        start += 2;
    }
    if buf[start..].iter().all(|&b| b == b'\r' || b == b'\n') {
        return Err(ParseErrorKind::Empty);
    }
    let first_end = line_end(buf, start)?.ok_or(ParseErrorKind::Incomplete("no end of line"))?;
    let mut fields: Vec<((usize, usize), (usize, usize))> = Vec::with_capacity(16);
    let mut pos = first_end + 2;
    loop {
        if pos >= buf.len() {
            return Err(ParseErrorKind::Incomplete(
                "no empty line after the headers",
            ));
        }
        let end = line_end(buf, pos)?.ok_or(ParseErrorKind::Incomplete(
            "no empty line after the headers",
        ))?;
        if end == pos {
            pos += 2;
            break;
        }
        if is_fold_start(buf[pos]) {
            // A continuation line: the previous field's value runs on.
            let last = fields.last_mut().ok_or(ParseErrorKind::InvalidHeaderLine(
                "continuation before any header",
            ))?;
            last.1 .1 = end;
        } else {
            let colon = memchr::memchr(b':', &buf[pos..end])
                .ok_or(ParseErrorKind::InvalidHeaderLine("no colon"))?;
            let name = trim_end_ws(&buf[pos..pos + colon]);
            if !is_token_str(name) {
                return Err(ParseErrorKind::InvalidHeaderLine(
                    "header name is not a token",
                ));
            }
            if fields.len() == MAX_HEADERS {
                return Err(ParseErrorKind::TooManyHeaders(MAX_HEADERS));
            }
            fields.push(((pos, pos + name.len()), (pos + colon + 1, end)));
        }
        pos = end + 2;
    }
    for field in &mut fields {
        let (va, vb) = field.1;
        let (a, b) = trim_lws_range(&buf[va..vb]);
        field.1 = (va + a, va + b);
    }
    Ok(Framed {
        start_line: (start, first_end),
        fields,
        body_start: pos,
    })
}

fn trim_end_ws(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|&b| !is_ws(b)).map_or(0, |i| i + 1);
    &s[..end]
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

enum StartLine {
    Request(Method, Uri),
    Response(StatusCode, (usize, usize)),
}

fn check_version(version: &[u8]) -> Result<(), ParseErrorKind> {
    if version.eq_ignore_ascii_case(b"SIP/2.0") {
        return Ok(());
    }
    let looks_like_sip = starts_with_ignore_case(version, b"SIP/")
        && version[4..]
            .iter()
            .all(|&b| b.is_ascii_digit() || b == b'.')
        && version[4..].contains(&b'.');
    if looks_like_sip {
        Err(ParseErrorKind::UnsupportedVersion(
            String::from_utf8_lossy(version).into_owned(),
        ))
    } else {
        Err(ParseErrorKind::InvalidRequestLine("invalid SIP-Version"))
    }
}

fn parse_start_line(buf: &Bytes, (a, b): (usize, usize)) -> Result<StartLine, ParseErrorKind> {
    let line = &buf[a..b];
    if starts_with_ignore_case(line, b"SIP/") {
        // SIP-Version SP Status-Code SP Reason-Phrase; the phrase may hold spaces.
        let sp = line
            .iter()
            .position(|&b| b == b' ')
            .ok_or(ParseErrorKind::InvalidStatusLine("no status code"))?;
        match check_version(&line[..sp]) {
            Ok(()) => {}
            Err(ParseErrorKind::InvalidRequestLine(r)) => {
                return Err(ParseErrorKind::InvalidStatusLine(r))
            }
            Err(e) => return Err(e),
        }
        let rest = &line[sp + 1..];
        let code_end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let code = &rest[..code_end];
        if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
            return Err(ParseErrorKind::InvalidStatusLine(
                "status code is not three digits",
            ));
        }
        let n = u16::from(code[0] - b'0') * 100
            + u16::from(code[1] - b'0') * 10
            + u16::from(code[2] - b'0');
        let status = StatusCode::new(n).ok_or(ParseErrorKind::InvalidStatusLine(
            "status code out of range",
        ))?;
        let reason_start = (a + sp + 1 + code_end + 1).min(b);
        let reason = &buf[reason_start..b];
        if reason
            .iter()
            .any(|&c| (c < 0x20 && c != b'\t') || c == 0x7F)
        {
            return Err(ParseErrorKind::InvalidStatusLine(
                "control character in the reason phrase",
            ));
        }
        return Ok(StartLine::Response(status, (reason_start, b)));
    }
    // Method SP Request-URI SP SIP-Version, single spaces, nothing else (§7.1).
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseErrorKind::InvalidRequestLine(
            "expected Method SP Request-URI SP SIP-Version, single spaces",
        ));
    };
    if !is_token_str(method) {
        return Err(ParseErrorKind::InvalidRequestLine("method is not a token"));
    }
    check_version(version)?;
    let uri_start = a + method.len() + 1;
    let has_headers = validate(uri).map_err(|e| ParseErrorKind::InvalidRequestLine(e.0))?;
    let uri = buf.slice(uri_start..uri_start + uri.len());
    if has_headers {
        // §19.1.5: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
        return Err(ParseErrorKind::InvalidRequestLine(
            "headers are not allowed in a Request-URI",
        ));
    }
    let method =
        Method::known(method).unwrap_or_else(|| Method::from_token(buf.slice(a..a + method.len())));
    Ok(StartLine::Request(method, Uri::from_validated(uri)))
}

#[derive(Default)]
struct Seen {
    via: bool,
    from: bool,
    to: bool,
    call_id: bool,
    cseq: Option<super::headers::CSeq>,
    max_forwards: bool,
    content_length: Option<usize>,
}

fn once(seen: &mut bool, name: &'static str) -> Result<(), ParseErrorKind> {
    if std::mem::replace(seen, true) {
        return Err(ParseErrorKind::DuplicateHeader(name));
    }
    Ok(())
}

fn check_headers(headers: &Headers) -> Result<Seen, ParseErrorKind> {
    let mut seen = Seen::default();
    for h in headers {
        let invalid = |reason| ParseErrorKind::InvalidHeader {
            header: String::from_utf8_lossy(h.name()).into_owned(),
            reason,
        };
        let value = h.value();
        match h.kind() {
            HeaderName::Via => {
                via::parse_list(value, |_, _| ()).map_err(invalid)?;
                seen.via = true;
            }
            HeaderName::From => {
                once(&mut seen.from, "From")?;
                name_addr::parse_single(value).map_err(invalid)?;
            }
            HeaderName::To => {
                once(&mut seen.to, "To")?;
                name_addr::parse_single(value).map_err(invalid)?;
            }
            HeaderName::CallId => {
                once(&mut seen.call_id, "Call-ID")?;
                parse_call_id(value).map_err(invalid)?;
            }
            HeaderName::CSeq => {
                if seen.cseq.is_some() {
                    return Err(ParseErrorKind::DuplicateHeader("CSeq"));
                }
                seen.cseq = Some(parse_cseq(value).map_err(invalid)?);
            }
            HeaderName::MaxForwards => {
                once(&mut seen.max_forwards, "Max-Forwards")?;
                parse_max_forwards(value).map_err(invalid)?;
            }
            HeaderName::ContentLength => {
                if seen.content_length.is_some() {
                    return Err(ParseErrorKind::DuplicateHeader("Content-Length"));
                }
                seen.content_length = Some(parse_content_length(value).map_err(invalid)?);
            }
            HeaderName::Contact if !name_addr::is_star(value) => {
                name_addr::parse_list(value, AddrForm::NameAddrOrSpec, |_, _| ())
                    .map_err(invalid)?;
            }
            HeaderName::Route | HeaderName::RecordRoute => {
                name_addr::parse_list(value, AddrForm::NameAddrOnly, |_, _| ()).map_err(invalid)?;
            }
            _ => {}
        }
    }
    Ok(seen)
}

fn validate_message(
    buf: &Bytes,
    framed: &Framed,
    mut headers: Headers,
) -> Result<Message, (ParseErrorKind, Headers)> {
    let start = match parse_start_line(buf, framed.start_line) {
        Ok(start) => start,
        Err(kind) => return Err((kind, headers)),
    };
    let seen = match check_headers(&headers) {
        Ok(seen) => seen,
        Err(kind) => return Err((kind, headers)),
    };
    for (present, name) in [
        (seen.via, "Via"),
        (seen.from, "From"),
        (seen.to, "To"),
        (seen.call_id, "Call-ID"),
        (seen.cseq.is_some(), "CSeq"),
    ] {
        if !present {
            return Err((ParseErrorKind::MissingHeader(name), headers));
        }
    }
    if let (StartLine::Request(method, _), Some(cseq)) = (&start, &seen.cseq) {
        if *method != cseq.method {
            return Err((
                ParseErrorKind::MethodMismatch {
                    method: method.to_string(),
                    cseq: cseq.method.to_string(),
                },
                headers,
            ));
        }
    }
    let available = buf.len() - framed.body_start;
    let body = match seen.content_length {
        Some(declared) if declared > available => {
            return Err((
                ParseErrorKind::BodyTooShort {
                    declared,
                    available,
                },
                headers,
            ));
        }
        // §18.3: octets after the body are ignored.
        Some(declared) => buf.slice(framed.body_start..framed.body_start + declared),
        None => {
            let body = buf.slice(framed.body_start..);
            headers.push(Header::new(
                HeaderName::ContentLength,
                Bytes::from(body.len().to_string()),
            ));
            body
        }
    };
    Ok(match start {
        StartLine::Request(method, uri) => Message::Request(Request {
            method,
            uri,
            headers,
            body,
        }),
        StartLine::Response(status, (ra, rb)) => Message::Response(Response {
            status,
            reason: buf.slice(ra..rb),
            headers,
            body,
        }),
    })
}
