//! URIs: kept as the bytes that arrived, with a parsed view of SIP and SIPS URIs
//! (RFC 3261 §19.1) on demand.

use std::fmt;

use bytes::Bytes;

use super::grammar::{
    ascii, find_param, is_scheme, is_uri_header, is_uri_param, is_uri_password, is_uri_user,
    Cursor, ParamIter,
};

/// A URI as it appeared in a message (Request-URI, inside `<>` of a name-addr).
///
/// Kept verbatim: a proxy forwards URIs it does not own byte for byte, escapes
/// included. [`Uri::sip`] parses SIP and SIPS URIs into their parts.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Uri(Bytes);

impl Uri {
    /// Checks `text` and wraps it. SIP and SIPS URIs must parse (§19.1); other
    /// schemes need a valid scheme and no white space, quotes or angle brackets.
    pub fn parse(text: impl Into<Bytes>) -> Result<Uri, UriError> {
        let bytes = text.into();
        validate(&bytes)?;
        Ok(Uri(bytes))
    }

    /// Wraps bytes the caller already validated.
    pub(crate) fn from_validated(bytes: Bytes) -> Uri {
        Uri(bytes)
    }

    /// The URI as it appeared.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The scheme, as written (`sip`, `sips`, `tel`, …).
    pub fn scheme(&self) -> &str {
        let end = self.0.iter().position(|&b| b == b':').unwrap_or(0);
        ascii(&self.0[..end])
    }

    /// The parts of a SIP or SIPS URI; `None` for other schemes.
    pub fn sip(&self) -> Option<SipUri> {
        SipUri::parse(&self.0).ok()
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uri({self})")
    }
}

/// Why a URI was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid URI: {0}")]
pub struct UriError(pub &'static str);

/// The parts of a SIP or SIPS URI, as slices of the original bytes (escapes kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The user part (may carry `;` parameters of a telephone-subscriber).
    pub user: Option<Bytes>,
    /// The password after `user:`, which RFC 3261 advises against.
    pub password: Option<Bytes>,
    /// Host name, IPv4 address or bracketed IPv6 reference.
    pub host: Bytes,
    /// The port, if given.
    pub port: Option<u16>,
    /// The URI parameters from the first `;` on (empty if none).
    pub params: Bytes,
    /// The headers after `?` (not allowed in a Request-URI).
    pub headers: Option<Bytes>,
}

impl SipUri {
    /// Parses `sip:` / `sips:` URI bytes.
    pub fn parse(bytes: &Bytes) -> Result<SipUri, UriError> {
        let r = SipRanges::parse(bytes)?;
        let slice = |(a, b): (usize, usize)| bytes.slice(a..b);
        Ok(SipUri {
            secure: r.secure,
            user: r.user.map(slice),
            password: r.password.map(slice),
            host: slice(r.host),
            port: r.port,
            params: slice(r.params),
            headers: r.headers.map(slice),
        })
    }

    /// The host as text.
    pub fn host_str(&self) -> &str {
        ascii(&self.host)
    }

    /// A URI parameter by case-insensitive name: `Some(None)` if present
    /// without a value.
    pub fn param(&self, name: &str) -> Option<Option<&[u8]>> {
        // URI parameters use the same `;name=value` shape as header parameters,
        // but with a wider character set: scan them directly.
        self.params
            .split(|&b| b == b';')
            .skip(1)
            .map(|p| match p.iter().position(|&b| b == b'=') {
                Some(eq) => (&p[..eq], Some(&p[eq + 1..])),
                None => (p, None),
            })
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Whether the URI carries `lr` (a loose router, RFC 3261 §16.12).
    pub fn is_loose_router(&self) -> bool {
        self.param("lr").is_some()
    }

    /// The `transport` parameter, if any.
    pub fn transport(&self) -> Option<&str> {
        self.param("transport").flatten().map(ascii)
    }
}

/// Where the parts of a SIP URI are: the parser behind [`SipUri`], which
/// validation uses without building anything.
pub(crate) struct SipRanges {
    pub(crate) secure: bool,
    pub(crate) user: Option<(usize, usize)>,
    pub(crate) password: Option<(usize, usize)>,
    pub(crate) host: (usize, usize),
    pub(crate) port: Option<u16>,
    pub(crate) params: (usize, usize),
    pub(crate) headers: Option<(usize, usize)>,
}

impl SipRanges {
    pub(crate) fn parse(s: &[u8]) -> Result<SipRanges, UriError> {
        let colon = memchr::memchr(b':', s).ok_or(UriError("missing scheme"))?;
        let scheme = &s[..colon];
        let secure = if scheme.eq_ignore_ascii_case(b"sip") {
            false
        } else if scheme.eq_ignore_ascii_case(b"sips") {
            true
        } else {
            return Err(UriError("not a SIP URI"));
        };
        let rest = colon + 1;
        // '@' may appear only as the userinfo separator: neither user, password,
        // parameters nor headers allow it unescaped.
        let (user, password, host_start) = match memchr::memchr(b'@', &s[rest..]) {
            Some(at) => {
                let info = &s[rest..rest + at];
                let (user_end, password) = match memchr::memchr(b':', info) {
                    Some(c) => (rest + c, Some((rest + c + 1, rest + at))),
                    None => (rest + at, None),
                };
                if user_end == rest {
                    return Err(UriError("empty user part"));
                }
                if !s[rest..user_end].iter().all(|&b| is_uri_user(b)) {
                    return Err(UriError("invalid character in user part"));
                }
                if let Some((a, b)) = password {
                    if !s[a..b].iter().all(|&c| is_uri_password(c)) {
                        return Err(UriError("invalid character in password"));
                    }
                }
                (Some((rest, user_end)), password, rest + at + 1)
            }
            None => (None, None, rest),
        };
        let mut c = Cursor::new(s);
        c.pos = host_start;
        let host = c.host().map_err(UriError)?;
        let port = if c.eat(b':') {
            Some(c.port().map_err(UriError)?)
        } else {
            None
        };
        let params_start = c.pos;
        while c.eat(b';') {
            let (a, b) = c.take_while(is_uri_param);
            if a == b {
                return Err(UriError("empty URI parameter"));
            }
            if c.eat(b'=') {
                let (a, b) = c.take_while(is_uri_param);
                if a == b {
                    return Err(UriError("empty URI parameter value"));
                }
            }
        }
        let params = (params_start, c.pos);
        let headers = if c.eat(b'?') {
            let (a, b) = c.take_while(is_uri_header);
            if a == b {
                return Err(UriError("empty URI headers"));
            }
            Some((a, b))
        } else {
            None
        };
        if !c.at_end() {
            return Err(UriError("invalid character in SIP URI"));
        }
        Ok(SipRanges {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }
}

/// Checks URI bytes: see [`Uri::parse`]. Returns whether the URI has
/// headers (`?…`, only possible for SIP URIs).
pub(crate) fn validate(bytes: &[u8]) -> Result<bool, UriError> {
    let colon = memchr::memchr(b':', bytes).ok_or(UriError("missing scheme"))?;
    let scheme = &bytes[..colon];
    if !is_scheme(scheme) {
        return Err(UriError("invalid scheme"));
    }
    if scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips") {
        SipRanges::parse(bytes).map(|r| r.headers.is_some())
    } else if bytes.len() > colon + 1
        && bytes[colon + 1..]
            .iter()
            .all(|&b| (0x21..=0x7E).contains(&b) && !matches!(b, b'<' | b'>' | b'"'))
    {
        Ok(false)
    } else {
        Err(UriError("invalid character in URI"))
    }
}

/// Header parameters of a name-addr or Via (`;tag=…;lr`), kept as text.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Params(pub(crate) Bytes);

impl Params {
    /// A parameter by case-insensitive name: `Some(None)` if present without a
    /// value. Quoted values keep their quotes (see [`unquote`](super::unquote)).
    pub fn get(&self, name: &str) -> Option<Option<&[u8]>> {
        find_param(&self.0, name)
    }

    /// Every parameter in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        ParamIter::new(&self.0)
    }

    /// The parameters as written, from the first `;`.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Params({:?})", String::from_utf8_lossy(&self.0))
    }
}
