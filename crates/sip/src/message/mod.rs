//! SIP messages (RFC 3261 §7): parsing, typed views, building and serialising.
//!
//! A parsed message keeps the bytes it arrived in (one [`Bytes`] buffer, every
//! header a slice of it). Header fields are stored as received, name and value;
//! the fields a proxy reads have typed views on [`Headers`] (`top_via`, `cseq`,
//! `from`, `to`, `call_id`, `max_forwards`, `routes`, `record_routes`,
//! `contacts`) that parse on demand. [`parse`] checks all of those once, so a
//! message that parsed answers them; everything else passes through untouched.
//!
//! Serialising writes the start line, every field as `name: value` in order and
//! the body. `Content-Length` is made to match the body: the first one is kept if
//! it is right and rewritten if not, further ones dropped, a missing one added.

mod build;
mod grammar;
mod headers;
mod method;
mod name_addr;
mod parse;
mod uri;
mod via;

#[cfg(test)]
mod tests;

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

pub use build::{ack_for, cancel_for, response_to, BuildError, NewRequest};
pub use grammar::unquote;
pub use headers::{CSeq, Header, HeaderName, Headers, TooManyHops};
pub use method::{ExtensionMethod, Method, StatusCode};
pub use name_addr::NameAddr;
pub use parse::{
    frame_len, parse, parse_bytes, ParseError, ParseErrorKind, Partial, MAX_HEADERS,
    MAX_MESSAGE_LEN,
};
pub use uri::{Params, SipUri, Uri, UriError};
pub use via::{Branch, Via, BRANCH_MAGIC_COOKIE};

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The Request-URI.
    pub uri: Uri,
    /// The header fields, in order.
    pub headers: Headers,
    /// The body (Content-Length is derived from it when serialising).
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The reason phrase as received (may be empty, may be UTF-8).
    pub reason: Bytes,
    /// The header fields, in order.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Message {
    /// The header fields.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }

    /// Serialises into `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Message::Request(r) => r.encode(out),
            Message::Response(r) => r.encode(out),
        }
    }

    /// Serialises into a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

impl Request {
    /// A request with no headers and no body; see [`NewRequest`] for a complete one.
    pub fn new(method: Method, uri: Uri) -> Request {
        Request {
            method,
            uri,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Serialises into `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let line = self.method.as_str().len() + self.uri.as_bytes().len() + 11;
        out.reserve(line + encoded_len(&self.headers, &self.body));
        out.put_slice(self.method.as_str().as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.uri.as_bytes());
        out.put_slice(b" SIP/2.0\r\n");
        encode_rest(&self.headers, &self.body, out);
    }

    /// Serialises into a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }

    /// The top Via's branch, used to match transactions.
    pub fn branch(&self) -> Option<Bytes> {
        self.headers.top_via().and_then(|v| v.branch)
    }
}

impl Response {
    /// A response with the canonical reason phrase, no headers and no body; see
    /// [`response_to`] for one answering a request.
    pub fn new(status: StatusCode) -> Response {
        Response {
            status,
            reason: Bytes::from_static(status.canonical_reason().as_bytes()),
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Serialises into `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(14 + self.reason.len() + encoded_len(&self.headers, &self.body));
        out.put_slice(b"SIP/2.0 ");
        put_decimal(out, usize::from(self.status.as_u16()));
        out.put_u8(b' ');
        if memchr::memchr2(b'\r', b'\n', &self.reason).is_some() {
            // A reason phrase is one line: never let it start a header.
            out.extend(
                self.reason
                    .iter()
                    .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
        } else {
            out.put_slice(&self.reason);
        }
        out.put_slice(b"\r\n");
        encode_rest(&self.headers, &self.body, out);
    }

    /// Serialises into a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }

    /// The reason phrase as text (lossy).
    pub fn reason_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.reason)
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.uri)
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason_str())
    }
}

fn encoded_len(headers: &Headers, body: &Bytes) -> usize {
    headers
        .iter()
        .map(|h| h.name().len() + h.value().len() + 4)
        .sum::<usize>()
        + body.len()
        + 24
}

fn encode_rest(headers: &Headers, body: &Bytes, out: &mut BytesMut) {
    let mut wrote_length = false;
    for h in headers {
        if h.kind() == HeaderName::ContentLength {
            if wrote_length {
                continue;
            }
            wrote_length = true;
            if headers::parse_content_length(h.value()) != Ok(body.len()) {
                out.put_slice(h.name());
                out.put_slice(b": ");
                put_decimal(out, body.len());
                out.put_slice(b"\r\n");
                continue;
            }
        }
        out.put_slice(h.name());
        out.put_slice(b": ");
        out.put_slice(h.value());
        out.put_slice(b"\r\n");
    }
    if !wrote_length {
        out.put_slice(b"Content-Length: ");
        put_decimal(out, body.len());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    out.put_slice(body);
}

fn put_decimal(out: &mut BytesMut, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}
