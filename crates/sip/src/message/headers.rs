//! Header fields: kept as received (name and value bytes), with typed views of
//! the ones a proxy reads.

use std::fmt;

use bytes::Bytes;

use super::grammar::{is_token_str, is_word, parse_digits, trim_lws, Cursor};
use super::method::Method;
use super::name_addr::{self, AddrForm, NameAddr};
use super::via::{self, Via};

/// The header fields hotsite knows by name; everything else is [`HeaderName::Other`].
///
/// Names compare case-insensitively and compact forms (`v`, `i`, `f`, `t`, `m`,
/// `l`, `c`, `k`, `s`, `e`, `o`, `r`, `u`) map to their long form (§7.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderName {
    /// `Accept`.
    Accept,
    /// `Allow`.
    Allow,
    /// `Allow-Events` (`u`).
    AllowEvents,
    /// `Authorization`.
    Authorization,
    /// `Call-ID` (`i`).
    CallId,
    /// `Contact` (`m`).
    Contact,
    /// `Content-Encoding` (`e`).
    ContentEncoding,
    /// `Content-Length` (`l`).
    ContentLength,
    /// `Content-Type` (`c`).
    ContentType,
    /// `CSeq`.
    CSeq,
    /// `Date`.
    Date,
    /// `Event` (`o`).
    Event,
    /// `Expires`.
    Expires,
    /// `From` (`f`).
    From,
    /// `Max-Forwards`.
    MaxForwards,
    /// `Min-Expires`.
    MinExpires,
    /// `Proxy-Authenticate`.
    ProxyAuthenticate,
    /// `Proxy-Authorization`.
    ProxyAuthorization,
    /// `Proxy-Require`.
    ProxyRequire,
    /// `Reason`.
    Reason,
    /// `Record-Route`.
    RecordRoute,
    /// `Refer-To` (`r`).
    ReferTo,
    /// `Require`.
    Require,
    /// `Retry-After`.
    RetryAfter,
    /// `Route`.
    Route,
    /// `Server`.
    Server,
    /// `Subject` (`s`).
    Subject,
    /// `Supported` (`k`).
    Supported,
    /// `To` (`t`).
    To,
    /// `Unsupported`.
    Unsupported,
    /// `User-Agent`.
    UserAgent,
    /// `Via` (`v`).
    Via,
    /// `Warning`.
    Warning,
    /// `WWW-Authenticate`.
    WwwAuthenticate,
    /// Any other header; its name is in [`Header::name`].
    Other,
}

/// Long names, in the order of the enum, for lookups and output.
const NAMES: &[(HeaderName, &str)] = &[
    (HeaderName::Accept, "Accept"),
    (HeaderName::Allow, "Allow"),
    (HeaderName::AllowEvents, "Allow-Events"),
    (HeaderName::Authorization, "Authorization"),
    (HeaderName::CallId, "Call-ID"),
    (HeaderName::Contact, "Contact"),
    (HeaderName::ContentEncoding, "Content-Encoding"),
    (HeaderName::ContentLength, "Content-Length"),
    (HeaderName::ContentType, "Content-Type"),
    (HeaderName::CSeq, "CSeq"),
    (HeaderName::Date, "Date"),
    (HeaderName::Event, "Event"),
    (HeaderName::Expires, "Expires"),
    (HeaderName::From, "From"),
    (HeaderName::MaxForwards, "Max-Forwards"),
    (HeaderName::MinExpires, "Min-Expires"),
    (HeaderName::ProxyAuthenticate, "Proxy-Authenticate"),
    (HeaderName::ProxyAuthorization, "Proxy-Authorization"),
    (HeaderName::ProxyRequire, "Proxy-Require"),
    (HeaderName::Reason, "Reason"),
    (HeaderName::RecordRoute, "Record-Route"),
    (HeaderName::ReferTo, "Refer-To"),
    (HeaderName::Require, "Require"),
    (HeaderName::RetryAfter, "Retry-After"),
    (HeaderName::Route, "Route"),
    (HeaderName::Server, "Server"),
    (HeaderName::Subject, "Subject"),
    (HeaderName::Supported, "Supported"),
    (HeaderName::To, "To"),
    (HeaderName::Unsupported, "Unsupported"),
    (HeaderName::UserAgent, "User-Agent"),
    (HeaderName::Via, "Via"),
    (HeaderName::Warning, "Warning"),
    (HeaderName::WwwAuthenticate, "WWW-Authenticate"),
];

impl HeaderName {
    /// Classifies a header name as received: case-insensitive, compact forms
    /// included.
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        if name.len() == 1 {
            return match name[0].to_ascii_lowercase() {
                b'i' => HeaderName::CallId,
                b'm' => HeaderName::Contact,
                b'e' => HeaderName::ContentEncoding,
                b'l' => HeaderName::ContentLength,
                b'c' => HeaderName::ContentType,
                b'f' => HeaderName::From,
                b's' => HeaderName::Subject,
                b'k' => HeaderName::Supported,
                b't' => HeaderName::To,
                b'v' => HeaderName::Via,
                b'o' => HeaderName::Event,
                b'r' => HeaderName::ReferTo,
                b'u' => HeaderName::AllowEvents,
                _ => HeaderName::Other,
            };
        }
        // Candidates by length, then one case-insensitive comparison each.
        let candidates: &[(HeaderName, &str)] = match name.len() {
            2 => &[(HeaderName::To, "To")],
            3 => &[(HeaderName::Via, "Via")],
            4 => &[
                (HeaderName::From, "From"),
                (HeaderName::CSeq, "CSeq"),
                (HeaderName::Date, "Date"),
            ],
            5 => &[
                (HeaderName::Route, "Route"),
                (HeaderName::Allow, "Allow"),
                (HeaderName::Event, "Event"),
            ],
            6 => &[
                (HeaderName::Accept, "Accept"),
                (HeaderName::Server, "Server"),
                (HeaderName::Reason, "Reason"),
            ],
            7 => &[
                (HeaderName::CallId, "Call-ID"),
                (HeaderName::Contact, "Contact"),
                (HeaderName::Expires, "Expires"),
                (HeaderName::Require, "Require"),
                (HeaderName::Subject, "Subject"),
                (HeaderName::Warning, "Warning"),
            ],
            8 => &[(HeaderName::ReferTo, "Refer-To")],
            9 => &[(HeaderName::Supported, "Supported")],
            10 => &[(HeaderName::UserAgent, "User-Agent")],
            11 => &[
                (HeaderName::MinExpires, "Min-Expires"),
                (HeaderName::RetryAfter, "Retry-After"),
                (HeaderName::Unsupported, "Unsupported"),
            ],
            12 => &[
                (HeaderName::MaxForwards, "Max-Forwards"),
                (HeaderName::ContentType, "Content-Type"),
                (HeaderName::RecordRoute, "Record-Route"),
                (HeaderName::AllowEvents, "Allow-Events"),
            ],
            13 => &[
                (HeaderName::Authorization, "Authorization"),
                (HeaderName::ProxyRequire, "Proxy-Require"),
            ],
            14 => &[(HeaderName::ContentLength, "Content-Length")],
            16 => &[
                (HeaderName::ContentEncoding, "Content-Encoding"),
                (HeaderName::WwwAuthenticate, "WWW-Authenticate"),
            ],
            18 => &[(HeaderName::ProxyAuthenticate, "Proxy-Authenticate")],
            19 => &[(HeaderName::ProxyAuthorization, "Proxy-Authorization")],
            _ => &[],
        };
        candidates
            .iter()
            .find(|(_, long)| long.as_bytes().eq_ignore_ascii_case(name))
            .map_or(HeaderName::Other, |(kind, _)| *kind)
    }

    /// The long form, or `None` for [`HeaderName::Other`].
    pub fn as_str(self) -> Option<&'static str> {
        NAMES.iter().find(|(k, _)| *k == self).map(|(_, n)| *n)
    }
}

/// One header field line: the name as received and the value as received
/// (folding kept, leading and trailing white space removed).
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    kind: HeaderName,
    name: Bytes,
    value: Bytes,
}

impl Header {
    /// A header field with a known name, written in its long form. A CR or LF
    /// in `value` that is not part of a fold becomes a space: a value can never
    /// start a header of its own (use [`Header::from_parts`] to refuse instead).
    pub fn new(kind: HeaderName, value: impl Into<Bytes>) -> Header {
        let name = kind.as_str().unwrap_or("X-Unknown");
        Header {
            kind,
            name: Bytes::from_static(name.as_bytes()),
            value: sanitize(value.into()),
        }
    }

    /// A header field by name; `None` if the name is not a token or the value
    /// contains a line break that is not a fold.
    pub fn from_parts(name: impl Into<Bytes>, value: impl Into<Bytes>) -> Option<Header> {
        let name = name.into();
        let value = value.into();
        if !is_token_str(&name) || !is_valid_value(&value) {
            return None;
        }
        Some(Header {
            kind: HeaderName::from_bytes(&name),
            name,
            value,
        })
    }

    pub(crate) fn from_parsed(kind: HeaderName, name: Bytes, value: Bytes) -> Header {
        Header { kind, name, value }
    }

    /// Which header this is.
    pub fn kind(&self) -> HeaderName {
        self.kind
    }

    /// The name as received (`v`, `VIA`, `Via`, …).
    pub fn name(&self) -> &Bytes {
        &self.name
    }

    /// The value as received.
    pub fn value(&self) -> &Bytes {
        &self.value
    }

    /// Whether the header's name is `name`, compared as SIP does (case
    /// insensitive, compact forms equal to long ones).
    pub fn is(&self, name: &str) -> bool {
        let kind = HeaderName::from_bytes(name.as_bytes());
        if kind == HeaderName::Other {
            self.kind == HeaderName::Other && self.name.eq_ignore_ascii_case(name.as_bytes())
        } else {
            self.kind == kind
        }
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            String::from_utf8_lossy(&self.name),
            String::from_utf8_lossy(&self.value)
        )
    }
}

/// `value` with every CR or LF that is not part of a fold replaced by a space.
pub(crate) fn sanitize(value: Bytes) -> Bytes {
    if memchr::memchr2(b'\r', b'\n', &value).is_none() || is_valid_value(&value) {
        return value;
    }
    let mut out = value.to_vec();
    let mut i = 0;
    while i < out.len() {
        let fold = out[i] == b'\r'
            && out.get(i + 1) == Some(&b'\n')
            && out.get(i + 2).is_some_and(|&b| b == b' ' || b == b'\t');
        if fold {
            i += 3;
            continue;
        }
        if out[i] == b'\r' || out[i] == b'\n' {
            out[i] = b' ';
        }
        i += 1;
    }
    Bytes::from(out)
}

/// A value may contain CRLF only as a fold (followed by SP or HT).
fn is_valid_value(value: &[u8]) -> bool {
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b'\r' => {
                if value.get(i + 1) != Some(&b'\n')
                    || !value.get(i + 2).is_some_and(|&b| b == b' ' || b == b'\t')
                {
                    return false;
                }
                i += 2;
            }
            b'\n' => return false,
            _ => i += 1,
        }
    }
    true
}

/// `CSeq: 4711 INVITE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CSeq {
    /// The sequence number.
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

pub(crate) fn parse_cseq(value: &Bytes) -> Result<CSeq, &'static str> {
    let mut c = Cursor::new(value);
    c.skip_lws();
    let (a, b) = c.take_while(|b| b.is_ascii_digit());
    if a == b {
        return Err("missing sequence number");
    }
    let seq = parse_digits(&value[a..b])
        .and_then(|n| u32::try_from(n).ok())
        .ok_or("sequence number above 2^32-1")?;
    if !c.skip_lws() {
        return Err("expected white space between number and method");
    }
    let (ma, mb) = c.token().ok_or("missing method")?;
    c.skip_lws();
    if !c.at_end() {
        return Err("unexpected text after the method");
    }
    let method =
        Method::known(&value[ma..mb]).unwrap_or_else(|| Method::from_token(value.slice(ma..mb)));
    Ok(CSeq { seq, method })
}

pub(crate) fn parse_call_id(value: &[u8]) -> Result<(), &'static str> {
    // callid = word [ "@" word ]
    let mut parts = value.splitn(2, |&b| b == b'@');
    let first = parts.next().unwrap_or_default();
    let valid = |w: &[u8]| !w.is_empty() && w.iter().all(|&b| is_word(b));
    if !valid(first) || !parts.next().is_none_or(valid) {
        return Err("invalid Call-ID");
    }
    Ok(())
}

fn parse_number(value: &[u8], max: u64) -> Result<u64, &'static str> {
    let digits = trim_lws(value);
    let n = parse_digits(digits).ok_or("not a number")?;
    if n > max {
        return Err("number out of range");
    }
    Ok(n)
}

pub(crate) fn parse_max_forwards(value: &[u8]) -> Result<u8, &'static str> {
    parse_number(value, 255).map(|n| n as u8)
}

pub(crate) fn parse_content_length(value: &[u8]) -> Result<usize, &'static str> {
    parse_number(value, u32::MAX as u64).map(|n| n as usize)
}

/// The header fields of a message, in order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<Header>,
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.fields).finish()
    }
}

impl Headers {
    /// No headers.
    pub fn new() -> Headers {
        Headers { fields: Vec::new() }
    }

    pub(crate) fn with_capacity(n: usize) -> Headers {
        Headers {
            fields: Vec::with_capacity(n),
        }
    }

    /// Every field in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.fields.iter()
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The first field of a kind (for [`HeaderName::Other`], the first unknown
    /// one: see [`Headers::get_named`]).
    pub fn get(&self, kind: HeaderName) -> Option<&Header> {
        self.fields.iter().find(|h| h.kind == kind)
    }

    /// Every field of a kind, in order.
    pub fn get_all(&self, kind: HeaderName) -> impl Iterator<Item = &Header> {
        self.fields.iter().filter(move |h| h.kind == kind)
    }

    /// The first field with this name (see [`Header::is`]).
    pub fn get_named(&self, name: &str) -> Option<&Header> {
        self.fields.iter().find(|h| h.is(name))
    }

    /// Appends a field.
    pub fn push(&mut self, header: Header) {
        self.fields.push(header);
    }

    /// Inserts a field at `index` (clamped to the end).
    pub fn insert(&mut self, index: usize, header: Header) {
        let index = index.min(self.fields.len());
        self.fields.insert(index, header);
    }

    /// Replaces every field with `header`'s name (see [`Header::is`]) with
    /// `header`, at the position of the first one (or at the end).
    pub fn set(&mut self, header: Header) {
        let same = |h: &Header| {
            h.kind == header.kind
                && (h.kind != HeaderName::Other || h.name.eq_ignore_ascii_case(&header.name))
        };
        match self.fields.iter().position(same) {
            Some(i) => {
                let mut seen = false;
                self.fields.retain(|h| {
                    if !same(h) {
                        return true;
                    }
                    let keep = !seen;
                    seen = true;
                    keep
                });
                self.fields[i] = header;
            }
            None => self.fields.push(header),
        }
    }

    /// Removes every field with this name (see [`Header::is`]); returns how many
    /// there were.
    pub fn remove_named(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        self.fields.retain(|h| !h.is(name));
        before - self.fields.len()
    }

    /// Removes every field of a kind (for [`HeaderName::Other`]: every unknown
    /// field; see [`Headers::remove_named`]); returns how many there were.
    pub fn remove_all(&mut self, kind: HeaderName) -> usize {
        let before = self.fields.len();
        self.fields.retain(|h| h.kind != kind);
        before - self.fields.len()
    }

    /// Removes the field at `index`.
    pub fn remove(&mut self, index: usize) -> Header {
        self.fields.remove(index)
    }

    /// Position of the first field of a kind.
    pub fn position(&self, kind: HeaderName) -> Option<usize> {
        self.fields.iter().position(|h| h.kind == kind)
    }

    /// The raw value of the first field of a kind.
    pub fn value(&self, kind: HeaderName) -> Option<&Bytes> {
        self.get(kind).map(|h| &h.value)
    }

    // -- Typed views ------------------------------------------------------------

    /// The Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.value(HeaderName::CallId)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The Call-ID as bytes (shared, no copy).
    pub fn call_id_bytes(&self) -> Option<&Bytes> {
        self.value(HeaderName::CallId)
    }

    /// The CSeq.
    pub fn cseq(&self) -> Option<CSeq> {
        self.value(HeaderName::CSeq)
            .and_then(|v| parse_cseq(v).ok())
    }

    /// The From address.
    pub fn from(&self) -> Option<NameAddr> {
        self.value(HeaderName::From)
            .and_then(|v| name_addr::parse_single(v).ok().map(|r| r.build(v)))
    }

    /// The To address.
    pub fn to(&self) -> Option<NameAddr> {
        self.value(HeaderName::To)
            .and_then(|v| name_addr::parse_single(v).ok().map(|r| r.build(v)))
    }

    /// Max-Forwards.
    pub fn max_forwards(&self) -> Option<u8> {
        self.value(HeaderName::MaxForwards)
            .and_then(|v| parse_max_forwards(v).ok())
    }

    /// Content-Length.
    pub fn content_length(&self) -> Option<usize> {
        self.value(HeaderName::ContentLength)
            .and_then(|v| parse_content_length(v).ok())
    }

    /// The topmost Via hop.
    pub fn top_via(&self) -> Option<Via> {
        let value = self.value(HeaderName::Via)?;
        let mut top = None;
        let _ = via::parse_list(value, |_, v| {
            if top.is_none() {
                top = Some(v);
            }
        });
        top.map(|v| v.build(value))
    }

    /// Every Via hop, top first.
    pub fn vias(&self) -> Vec<Via> {
        let mut out = Vec::new();
        for h in self.get_all(HeaderName::Via) {
            let _ = via::parse_list(&h.value, |_, v| out.push(v.build(&h.value)));
        }
        out
    }

    /// Every Contact address, in order (empty for `Contact: *`).
    pub fn contacts(&self) -> Vec<NameAddr> {
        self.addresses(HeaderName::Contact, AddrForm::NameAddrOrSpec)
    }

    /// Whether the Contact is the wildcard `*`.
    pub fn contact_is_star(&self) -> bool {
        self.value(HeaderName::Contact)
            .is_some_and(|v| name_addr::is_star(v))
    }

    /// Every Route entry, in order.
    pub fn routes(&self) -> Vec<NameAddr> {
        self.addresses(HeaderName::Route, AddrForm::NameAddrOnly)
    }

    /// Every Record-Route entry, in order.
    pub fn record_routes(&self) -> Vec<NameAddr> {
        self.addresses(HeaderName::RecordRoute, AddrForm::NameAddrOnly)
    }

    /// The first Route entry.
    pub fn top_route(&self) -> Option<NameAddr> {
        let value = self.value(HeaderName::Route)?;
        let mut top = None;
        let _ = name_addr::parse_list(value, AddrForm::NameAddrOnly, |_, a| {
            if top.is_none() {
                top = Some(a);
            }
        });
        top.map(|a| a.build(value))
    }

    fn addresses(&self, kind: HeaderName, form: AddrForm) -> Vec<NameAddr> {
        let mut out = Vec::new();
        for h in self.get_all(kind) {
            if name_addr::is_star(&h.value) {
                continue;
            }
            let _ = name_addr::parse_list(&h.value, form, |_, a| out.push(a.build(&h.value)));
        }
        out
    }

    // -- Changes a proxy makes -------------------------------------------------

    /// Puts a new Via hop on top (§16.6 step 8): a new `Via:` line before any
    /// existing one.
    pub fn push_via(&mut self, value: impl Into<Bytes>) {
        let index = self.position(HeaderName::Via).unwrap_or(0);
        self.insert(index, Header::new(HeaderName::Via, value));
    }

    /// Removes the topmost Via hop (§16.7 step 3) and returns it. A line with
    /// several hops keeps the others.
    pub fn pop_via(&mut self) -> Option<Via> {
        let index = self.position(HeaderName::Via)?;
        let value = self.fields[index].value.clone();
        let mut first = None;
        let mut rest_start = None;
        via::parse_list(&value, |range, v| {
            if first.is_none() {
                first = Some((range, v));
            } else if rest_start.is_none() {
                rest_start = Some(range.0);
            }
        })
        .ok()?;
        let (_, top) = first?;
        let top = top.build(&value);
        match rest_start {
            Some(start) => self.fields[index].value = value.slice(start..),
            None => {
                self.fields.remove(index);
            }
        }
        Some(top)
    }

    /// Removes the first Route entry (§16.4: a loose route naming this proxy) and
    /// returns it.
    pub fn pop_route(&mut self) -> Option<NameAddr> {
        let index = self.position(HeaderName::Route)?;
        let value = self.fields[index].value.clone();
        let mut first = None;
        let mut rest_start = None;
        name_addr::parse_list(&value, AddrForm::NameAddrOnly, |range, a| {
            if first.is_none() {
                first = Some(a);
            } else if rest_start.is_none() {
                rest_start = Some(range.0);
            }
        })
        .ok()?;
        match rest_start {
            Some(start) => self.fields[index].value = value.slice(start..),
            None => {
                self.fields.remove(index);
            }
        }
        first.map(|a| a.build(&value))
    }

    /// Adds a Record-Route entry before any existing one (§16.6 step 4).
    /// `value` is the whole entry, e.g. `<sip:proxy.example.com;lr>`.
    pub fn insert_record_route(&mut self, value: impl Into<Bytes>) {
        let header = Header::new(HeaderName::RecordRoute, value);
        match self.position(HeaderName::RecordRoute) {
            Some(index) => self.insert(index, header),
            None => {
                // Keep routing headers together, after the Vias.
                let after_vias = self
                    .fields
                    .iter()
                    .rposition(|h| h.kind == HeaderName::Via)
                    .map_or(0, |i| i + 1);
                self.insert(after_vias, header);
            }
        }
    }

    /// Decrements Max-Forwards before forwarding (§16.6 step 3): a missing one is
    /// added as 70 and then decremented. Errors when it is already zero (the
    /// proxy answers 483, §16.3 step 3).
    pub fn decrement_max_forwards(&mut self) -> Result<u8, TooManyHops> {
        let current = self.max_forwards().unwrap_or(70);
        if current == 0 {
            return Err(TooManyHops);
        }
        let next = current - 1;
        self.set(Header::new(
            HeaderName::MaxForwards,
            Bytes::from(next.to_string()),
        ));
        Ok(next)
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;

    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

/// Max-Forwards reached zero: the request must not be forwarded (§16.3 step 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Max-Forwards is zero: too many hops")]
pub struct TooManyHops;

/// Whether a byte may start a folded continuation line.
pub(crate) fn is_fold_start(b: u8) -> bool {
    b == b' ' || b == b'\t'
}
