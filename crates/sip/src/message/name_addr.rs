//! `name-addr` / `addr-spec` with header parameters: From, To, Contact, Route,
//! Record-Route (RFC 3261 §20.10, §20.20, §20.30, §20.34, §20.39).
//!
//! The scanners work on byte ranges, so that validating a message builds
//! nothing; [`AddrRanges::build`] makes the shared-slice [`NameAddr`] when a
//! caller asks.

use bytes::Bytes;

use super::grammar::{ascii, is_lws, is_scheme, is_token, Cursor};
use super::uri::{validate, Params, Uri};

/// An address with its header parameters: `"Alice" <sip:alice@example.com>;tag=1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name as written (quotes kept), if any.
    pub display: Option<Bytes>,
    /// The address.
    pub uri: Uri,
    /// Header parameters (`tag`, `expires`, `q`, `lr` of a Route, …).
    pub params: Params,
}

impl NameAddr {
    /// The `tag` parameter (From, To).
    pub fn tag(&self) -> Option<&str> {
        self.params.get("tag").flatten().map(ascii)
    }
}

/// How strict the address grammar is for one header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddrForm {
    /// From, To, Contact: `name-addr` or a bare `addr-spec`.
    NameAddrOrSpec,
    /// Route, Record-Route: `name-addr` only (the URI must be in `<>`).
    NameAddrOnly,
}

/// Where the parts of one address are in its header value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AddrRanges {
    display: Option<(usize, usize)>,
    uri: (usize, usize),
    params: (usize, usize),
}

impl AddrRanges {
    pub(crate) fn build(&self, value: &Bytes) -> NameAddr {
        NameAddr {
            display: self.display.map(|(a, b)| value.slice(a..b)),
            uri: Uri::from_validated(value.slice(self.uri.0..self.uri.1)),
            params: Params(value.slice(self.params.0..self.params.1)),
        }
    }
}

/// Parses one address at the cursor, leaving it after the parameters.
fn parse_one(c: &mut Cursor<'_>, form: AddrForm) -> Result<AddrRanges, &'static str> {
    c.skip_lws();
    let mut display = None;
    match c.peek() {
        Some(b'"') => {
            display = Some(c.quoted_string()?);
            c.skip_lws();
        }
        Some(b'<') => {}
        Some(b) if is_token(b) => {
            let start = c.pos;
            let first = c.token().ok_or("invalid address")?;
            if c.peek() == Some(b':') && is_scheme(&c.s[first.0..first.1]) {
                // A bare addr-spec: the URI runs to white space, `;` or `,`; a URI
                // with `;`, `,` or `?` would have to be in `<>` (§20.10).
                if form == AddrForm::NameAddrOnly {
                    return Err("URI must be enclosed in <>");
                }
                c.pos = start;
                let (a, b) = c.take_while(|b| !is_lws(b) && b != b';' && b != b',');
                if validate(&c.s[a..b]).map_err(|e| e.0)? {
                    return Err("URI with headers must be enclosed in <>");
                }
                let params = c.params(|_, _| ())?;
                return Ok(AddrRanges {
                    display: None,
                    uri: (a, b),
                    params,
                });
            }
            // A display name of tokens: `*(token LWS)`, then `<`.
            let mut end = first.1;
            loop {
                c.skip_lws();
                match c.peek() {
                    Some(b'<') => break,
                    Some(b) if is_token(b) => {
                        let (_, b) = c.token().ok_or("invalid display name")?;
                        end = b;
                    }
                    _ => return Err("invalid display name (quote it, or put the URI in <>)"),
                }
            }
            display = Some((start, end));
        }
        _ => return Err("expected an address"),
    }
    if !c.eat(b'<') {
        return Err("expected '<' after the display name");
    }
    let (a, b) = c.take_while(|b| b != b'>' && !is_lws(b) && b != b'<');
    if !c.eat(b'>') {
        return Err(if c.at_end() {
            "unterminated '<'"
        } else {
            "white space or '<' inside <>"
        });
    }
    validate(&c.s[a..b]).map_err(|e| e.0)?;
    let params = c.params(|_, _| ())?;
    Ok(AddrRanges {
        display,
        uri: (a, b),
        params,
    })
}

/// A single-valued address header (From, To): the whole value.
pub(crate) fn parse_single(value: &[u8]) -> Result<AddrRanges, &'static str> {
    let mut c = Cursor::new(value);
    let addr = parse_one(&mut c, AddrForm::NameAddrOrSpec)?;
    c.skip_lws();
    if !c.at_end() {
        return Err("unexpected text after the address");
    }
    Ok(addr)
}

/// A comma-separated address list (Contact, Route, Record-Route). Calls `f`
/// with each element's byte range in `value` and its parts.
pub(crate) fn parse_list(
    value: &[u8],
    form: AddrForm,
    mut f: impl FnMut((usize, usize), AddrRanges),
) -> Result<(), &'static str> {
    let mut c = Cursor::new(value);
    loop {
        c.skip_lws();
        let start = c.pos;
        let addr = parse_one(&mut c, form)?;
        f((start, c.pos), addr);
        c.skip_lws();
        if c.at_end() {
            return Ok(());
        }
        if !c.eat(b',') {
            return Err("expected ',' between addresses");
        }
    }
}

/// Whether a Contact value is the wildcard `*` (REGISTER removing all bindings).
pub(crate) fn is_star(value: &[u8]) -> bool {
    super::grammar::trim_lws(value) == b"*"
}
