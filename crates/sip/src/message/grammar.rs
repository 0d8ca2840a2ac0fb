//! Character classes and a small cursor shared by the header parsers
//! (RFC 3261 §25.1).
//!
//! Header values reach these scanners already framed: every CRLF inside a value is
//! a fold (followed by SP or HT), so linear white space is simply "SP, HT, CR or
//! LF" here.

/// A 256-entry membership table for one character class.
type Class = [bool; 256];

const fn class(extra: &[u8], alphanum: bool) -> Class {
    let mut table = [false; 256];
    if alphanum {
        let mut b = b'0';
        while b <= b'9' {
            table[b as usize] = true;
            b += 1;
        }
        b = b'a';
        while b <= b'z' {
            table[b as usize] = true;
            table[(b - 32) as usize] = true;
            b += 1;
        }
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
}

/// `token` (RFC 3261 §25.1).
static TOKEN: Class = class(b"-.!%*_+`'~", true);
/// `word`, the characters of a Call-ID.
static WORD: Class = class(b"-.!%*_+`'~()<>:\\\"/[]?{}", true);
/// `user` in a SIP URI: unreserved, escaped and user-unreserved.
static URI_USER: Class = class(b"-_.!~*'()%&=+$,;?/", true);
/// `password` in a SIP URI.
static URI_PASSWORD: Class = class(b"-_.!~*'()%&=+$,", true);
/// `paramchar` in SIP URI parameters.
static URI_PARAM: Class = class(b"[]/:&+$-_.!~*'()%", true);
/// `hname` / `hvalue` characters in SIP URI headers.
static URI_HEADER: Class = class(b"[]/?:+$-_.!~*'()%=&", true);
/// Characters of a host name (letters, digits, '-', '.').
static HOSTNAME: Class = class(b"-.", true);

pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[b as usize]
}

pub(crate) fn is_word(b: u8) -> bool {
    WORD[b as usize]
}

pub(crate) fn is_uri_user(b: u8) -> bool {
    URI_USER[b as usize]
}

pub(crate) fn is_uri_password(b: u8) -> bool {
    URI_PASSWORD[b as usize]
}

pub(crate) fn is_uri_param(b: u8) -> bool {
    URI_PARAM[b as usize]
}

pub(crate) fn is_uri_header(b: u8) -> bool {
    URI_HEADER[b as usize]
}

pub(crate) fn is_hostname(b: u8) -> bool {
    HOSTNAME[b as usize]
}

pub(crate) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Linear white space inside an already framed value.
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Whether `s` is a non-empty `token`.
pub(crate) fn is_token_str(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token(b))
}

/// Whether `s` is a URI scheme: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
pub(crate) fn is_scheme(s: &[u8]) -> bool {
    match s.split_first() {
        Some((first, rest)) => {
            first.is_ascii_alphabetic()
                && rest
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        }
        None => false,
    }
}

/// `s` without leading and trailing linear white space.
pub(crate) fn trim_lws(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_lws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_lws(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// The range of `s` without leading and trailing linear white space.
pub(crate) fn trim_lws_range(s: &[u8]) -> (usize, usize) {
    let start = s.iter().position(|&b| !is_lws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_lws(b)).map_or(start, |i| i + 1);
    (start, end)
}

/// Parses `1*DIGIT` (leading zeros allowed) into a `u64`, refusing overflow.
pub(crate) fn parse_digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut value: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// Text of a token-like slice that the parser already checked to be ASCII.
pub(crate) fn ascii(s: &[u8]) -> &str {
    std::str::from_utf8(s).unwrap_or_default()
}

/// A position in a header value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor<'a> {
    pub(crate) s: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a [u8]) -> Cursor<'a> {
        Cursor { s, pos: 0 }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    /// Consumes `b` if it is next.
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skips linear white space; true if there was any.
    pub(crate) fn skip_lws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_lws) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// `SWS b SWS` (SEMI, COLON, EQUAL, SLASH, COMMA): consumes it if present,
    /// otherwise leaves the cursor where it was.
    pub(crate) fn separator(&mut self, b: u8) -> bool {
        let start = self.pos;
        self.skip_lws();
        if self.eat(b) {
            self.skip_lws();
            true
        } else {
            self.pos = start;
            false
        }
    }

    /// Consumes bytes while `pred` holds; returns the range.
    pub(crate) fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> (usize, usize) {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
        (start, self.pos)
    }

    /// `token`: one or more token characters.
    pub(crate) fn token(&mut self) -> Option<(usize, usize)> {
        let range = self.take_while(is_token);
        (range.1 > range.0).then_some(range)
    }

    /// `quoted-string`, the cursor on its opening quote. Returns the range
    /// including both quotes.
    pub(crate) fn quoted_string(&mut self) -> Result<(usize, usize), &'static str> {
        let start = self.pos;
        if !self.eat(b'"') {
            return Err("expected a quoted string");
        }
        loop {
            match self.peek() {
                None => return Err("unterminated quoted string"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok((start, self.pos));
                }
                Some(b'\\') => {
                    // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                    match self.s.get(self.pos + 1) {
                        Some(&c) if c <= 0x7F && c != b'\r' && c != b'\n' => self.pos += 2,
                        _ => return Err("invalid escape in quoted string"),
                    }
                }
                // qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
                Some(c) if is_lws(c) || c >= 0x21 => self.pos += 1,
                Some(_) => return Err("control character in quoted string"),
            }
        }
    }

    /// `host`: a host name, an IPv4 address or an IPv6 reference in brackets.
    pub(crate) fn host(&mut self) -> Result<(usize, usize), &'static str> {
        let start = self.pos;
        if self.eat(b'[') {
            let (a, b) = self.take_while(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.');
            if b == a || !self.eat(b']') {
                return Err("invalid IPv6 reference");
            }
            return Ok((start, self.pos));
        }
        let range = self.take_while(is_hostname);
        if range.1 == range.0 {
            return Err("missing host");
        }
        Ok(range)
    }

    /// `port`: 1 to 5 digits, at most 65535.
    pub(crate) fn port(&mut self) -> Result<u16, &'static str> {
        let (a, b) = self.take_while(|c| c.is_ascii_digit());
        if b == a || b - a > 5 {
            return Err("invalid port");
        }
        parse_digits(&self.s[a..b])
            .and_then(|p| u16::try_from(p).ok())
            .ok_or("port out of range")
    }

    /// `gen-value = token / host / quoted-string`.
    pub(crate) fn gen_value(&mut self) -> Result<(usize, usize), &'static str> {
        match self.peek() {
            Some(b'"') => self.quoted_string(),
            Some(b'[') => self.host(),
            _ => self.token().ok_or("missing parameter value"),
        }
    }

    /// `*( SEMI generic-param )`: returns the range from the first `;` to the end
    /// of the last parameter (empty if there are none). `on_param` sees each
    /// parameter's name and value ranges.
    pub(crate) fn params(
        &mut self,
        mut on_param: impl FnMut(&'a [u8], Option<(usize, usize)>),
    ) -> Result<(usize, usize), &'static str> {
        let start = self.pos;
        let mut end = self.pos;
        while self.separator(b';') {
            let (a, b) = self.token().ok_or("empty or invalid parameter name")?;
            let value = if self.separator(b'=') {
                Some(self.gen_value()?)
            } else {
                None
            };
            on_param(&self.s[a..b], value);
            end = self.pos;
        }
        self.pos = end;
        let skipped = self.s[start..end]
            .iter()
            .take_while(|&&b| is_lws(b))
            .count();
        Ok((start + skipped, end))
    }
}

/// An iterator over `*( SEMI generic-param )` text that was validated earlier:
/// yields each name and its value (quotes kept).
#[derive(Debug, Clone)]
pub(crate) struct ParamIter<'a> {
    cursor: Cursor<'a>,
}

impl<'a> ParamIter<'a> {
    pub(crate) fn new(s: &'a [u8]) -> ParamIter<'a> {
        ParamIter {
            cursor: Cursor::new(s),
        }
    }
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        let c = &mut self.cursor;
        if !c.separator(b';') {
            return None;
        }
        let (a, b) = c.token()?;
        let value = if c.separator(b'=') {
            let (va, vb) = c.gen_value().ok()?;
            Some(&c.s[va..vb])
        } else {
            None
        };
        Some((&c.s[a..b], value))
    }
}

/// Finds a parameter by case-insensitive name: `Some(None)` for a parameter
/// without a value.
pub(crate) fn find_param<'a>(params: &'a [u8], name: &str) -> Option<Option<&'a [u8]>> {
    ParamIter::new(params)
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v)
}

/// The content of a quoted string with quoted-pairs resolved, or the input if it
/// is not quoted.
pub fn unquote(s: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if s.len() >= 2 && s[0] == b'"' && s[s.len() - 1] == b'"' {
        let inner = &s[1..s.len() - 1];
        if !inner.contains(&b'\\') {
            return std::borrow::Cow::Borrowed(inner);
        }
        let mut out = Vec::with_capacity(inner.len());
        let mut escaped = false;
        for &b in inner {
            if escaped {
                out.push(b);
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else {
                out.push(b);
            }
        }
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}
