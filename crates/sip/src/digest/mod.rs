//! HTTP Digest authentication for SIP (RFC 3261 §22.4, RFC 2617, RFC 7616,
//! RFC 8760): MD5 and SHA-256, their `-sess` variants, `qop=auth` and
//! `qop=auth-int`, client nonce and nonce count.
//!
//! The client side ([`Challenge`], [`Answer`]) answers a trunk's challenge to
//! our REGISTER (SPEC V2); the server side ([`Credentials`], [`NonceIssuer`],
//! [`challenge`], [`verify`]) lets a registrar authenticate the agent phones
//! that register with us (SPEC S8). Both hash through the same code, and both
//! read parameters with one strict `#auth-param` parser.

use std::fmt::{self, Write};

use md5::Md5;
use sha2::{Digest, Sha256};

mod server;

pub use server::{
    challenge, verify, verify_ha1, Credentials, NonceCheck, NonceIssuer, VerifyError,
};

/// The hash a challenge asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5` (the default when a challenge names none).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 8760).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
}

impl Algorithm {
    fn parse(name: &str) -> Option<Algorithm> {
        match name.to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "MD5-SESS" => Some(Algorithm::Md5Sess),
            "SHA-256" => Some(Algorithm::Sha256),
            "SHA-256-SESS" => Some(Algorithm::Sha256Sess),
            _ => None,
        }
    }

    /// The name as written in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn is_session(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Preference when a server offers several challenges (RFC 8760 §2.4:
    /// the strongest one the client supports).
    fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 1,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 2,
        }
    }

    /// Lower-case hex of the hash of `data`.
    pub fn hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => to_hex(&Md5::digest(data)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => to_hex(&Sha256::digest(data)),
        }
    }

    /// How many hex digits [`Algorithm::hex`] writes.
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 32,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 64,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The quality of protection chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    /// `auth`: method and URI are covered.
    Auth,
    /// `auth-int`: the body too.
    AuthInt,
}

impl Qop {
    fn parse(name: &str) -> Option<Qop> {
        match name.to_ascii_lowercase().as_str() {
            "auth" => Some(Qop::Auth),
            "auth-int" => Some(Qop::AuthInt),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

/// Why a challenge cannot be answered, or credentials cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not the `Digest` scheme.
    #[error("not Digest authentication")]
    NotDigest,
    /// A required parameter is missing.
    #[error("no {0} parameter")]
    Missing(&'static str),
    /// A parameter given twice (RFC 7235 §2.1: each name at most once).
    #[error("parameter {0} given twice")]
    Duplicate(String),
    /// A parameter whose value does not follow its grammar (e.g. `nc` not
    /// eight lower-case hex digits, `response` not a hash in hex).
    #[error("invalid {0} parameter")]
    Invalid(&'static str),
    /// An algorithm we do not implement.
    #[error("unsupported digest algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// A `qop` list with neither `auth` nor `auth-int`.
    #[error("unsupported qop {0}")]
    UnsupportedQop(String),
    /// The parameters do not follow `name=value, …`.
    #[error("malformed challenge: {0}")]
    Malformed(&'static str),
}

/// A `WWW-Authenticate` or `Proxy-Authenticate` Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The protection space.
    pub realm: String,
    /// The server's nonce.
    pub nonce: String,
    /// Returned unchanged.
    pub opaque: Option<String>,
    /// The hash.
    pub algorithm: Algorithm,
    /// The qop to answer with, if the server offered any.
    pub qop: Option<Qop>,
    /// The previous credentials were right but their nonce expired: answer
    /// again without asking anyone (RFC 2617 §3.2.1).
    pub stale: bool,
}

impl Challenge {
    /// Parses a challenge header value: `Digest realm="…", nonce="…", …`.
    pub fn parse(value: &[u8]) -> Result<Challenge, DigestError> {
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = Algorithm::Md5;
        let mut qop = None;
        let mut stale = false;
        for (name, value) in digest_params(value)? {
            match name.as_str() {
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "opaque" => opaque = Some(value),
                "algorithm" => {
                    algorithm = Algorithm::parse(&value)
                        .ok_or_else(|| DigestError::UnsupportedAlgorithm(value.clone()))?;
                }
                "qop" => {
                    let offered: Vec<Option<Qop>> =
                        value.split(',').map(|q| Qop::parse(q.trim())).collect();
                    qop = if offered.contains(&Some(Qop::Auth)) {
                        Some(Qop::Auth)
                    } else if offered.contains(&Some(Qop::AuthInt)) {
                        Some(Qop::AuthInt)
                    } else {
                        return Err(DigestError::UnsupportedQop(value));
                    };
                }
                "stale" => stale = value.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        Ok(Challenge {
            realm: realm.ok_or(DigestError::Missing("realm"))?,
            nonce: nonce.ok_or(DigestError::Missing("nonce"))?,
            opaque,
            algorithm,
            qop,
            stale,
        })
    }

    /// The strongest challenge we can answer among several header values.
    pub fn choose<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Option<Challenge> {
        values
            .into_iter()
            .filter_map(|v| Challenge::parse(v).ok())
            .max_by_key(|c| c.algorithm.strength())
    }

    /// The `Authorization` / `Proxy-Authorization` value answering this
    /// challenge for a request.
    pub fn answer(&self, answer: &Answer<'_>) -> String {
        let response = self.response(answer);
        let mut out = String::with_capacity(256);
        let _ = write!(
            out,
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm={}",
            escape(answer.username),
            escape(&self.realm),
            escape(&self.nonce),
            escape(answer.uri),
            response,
            self.algorithm,
        );
        if let Some(qop) = self.qop {
            let _ = write!(
                out,
                ", cnonce=\"{}\", qop={}, nc={:08x}",
                escape(answer.cnonce),
                qop.as_str(),
                answer.nc
            );
        }
        if let Some(opaque) = &self.opaque {
            let _ = write!(out, ", opaque=\"{}\"", escape(opaque));
        }
        out
    }

    /// The `response` hash (RFC 2617 §3.2.2.1, RFC 7616 §3.4.1).
    pub fn response(&self, a: &Answer<'_>) -> String {
        let nc = format!("{:08x}", a.nc);
        let exchange = Exchange {
            algorithm: self.algorithm,
            nonce: &self.nonce,
            cnonce: a.cnonce,
            qop: self.qop.map(|qop| (qop, nc.as_str())),
            method: a.method,
            uri: a.uri,
            body: a.body,
        };
        exchange.response(&ha1(self.algorithm, a.username, &self.realm, a.password))
    }
}

/// `H(username:realm:password)`, before any `-sess` step: what a registrar may
/// store instead of the password (RFC 7616 §3.4.2).
fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hex(format!("{username}:{realm}:{password}").as_bytes())
}

/// Everything but HA1 that goes into a `response` hash; the client fills it
/// from a challenge and its answer, the server from received credentials.
struct Exchange<'a> {
    algorithm: Algorithm,
    nonce: &'a str,
    cnonce: &'a str,
    /// The qop, with the nonce count exactly as written in `nc`.
    qop: Option<(Qop, &'a str)>,
    method: &'a str,
    uri: &'a str,
    body: &'a [u8],
}

impl Exchange<'_> {
    /// The `response` hash from HA1 (RFC 2617 §3.2.2.1-3, RFC 7616 §3.4.1-3).
    fn response(&self, ha1: &str) -> String {
        let h = |s: &str| self.algorithm.hex(s.as_bytes());
        let session;
        let ha1 = if self.algorithm.is_session() {
            session = h(&format!("{ha1}:{}:{}", self.nonce, self.cnonce));
            &session
        } else {
            ha1
        };
        let ha2 = match self.qop {
            Some((Qop::AuthInt, _)) => h(&format!(
                "{}:{}:{}",
                self.method,
                self.uri,
                self.algorithm.hex(self.body)
            )),
            _ => h(&format!("{}:{}", self.method, self.uri)),
        };
        match self.qop {
            Some((qop, nc)) => h(&format!(
                "{ha1}:{}:{nc}:{}:{}:{ha2}",
                self.nonce,
                self.cnonce,
                qop.as_str()
            )),
            None => h(&format!("{ha1}:{}:{ha2}", self.nonce)),
        }
    }
}

/// What the client contributes to an answer.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// The user name.
    pub username: &'a str,
    /// The password.
    pub password: &'a str,
    /// The request method (`REGISTER`).
    pub method: &'a str,
    /// The digest-uri: the Request-URI.
    pub uri: &'a str,
    /// The body (for `auth-int`).
    pub body: &'a [u8],
    /// The client nonce.
    pub cnonce: &'a str,
    /// How many requests used this nonce, this one included.
    pub nc: u32,
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The parameters of a `Digest` header value: the scheme, then
/// [`auth_params`].
fn digest_params(value: &[u8]) -> Result<Vec<(String, String)>, DigestError> {
    let text = std::str::from_utf8(value).map_err(|_| DigestError::Malformed("not UTF-8"))?;
    let text = text.trim_start();
    let (scheme, rest) = text.split_at(text.find([' ', '\t', '\r', '\n']).unwrap_or(text.len()));
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(DigestError::NotDigest);
    }
    auth_params(rest)
}

/// `#auth-param` after the scheme (RFC 7235 §2.1, RFC 3261 §25.1): `name=token`
/// or `name="quoted-string"`, commas between (empty list elements allowed), LWS
/// around. Names come back in lower case, each at most once; quoted values
/// unescaped. A token and the same text quoted mean the same thing (RFC 7235
/// §2.2), so callers do not tell them apart.
fn auth_params(s: &str) -> Result<Vec<(String, String)>, DigestError> {
    let bytes = s.as_bytes();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    loop {
        skip_lws(bytes, &mut i);
        while bytes.get(i) == Some(&b',') {
            i += 1;
            skip_lws(bytes, &mut i);
        }
        if i >= bytes.len() {
            return Ok(out);
        }
        let name = token(s, &mut i)
            .ok_or(DigestError::Malformed("expected a parameter name"))?
            .to_ascii_lowercase();
        skip_lws(bytes, &mut i);
        if bytes.get(i) != Some(&b'=') {
            return Err(DigestError::Malformed("expected name=value"));
        }
        i += 1;
        skip_lws(bytes, &mut i);
        let value = if bytes.get(i) == Some(&b'"') {
            quoted_string(bytes, &mut i)?
        } else {
            token(s, &mut i)
                .ok_or(DigestError::Malformed(
                    "expected a token or a quoted string",
                ))?
                .to_owned()
        };
        if out.iter().any(|(seen, _)| *seen == name) {
            return Err(DigestError::Duplicate(name));
        }
        out.push((name, value));
        skip_lws(bytes, &mut i);
        match bytes.get(i) {
            None => return Ok(out),
            Some(b',') => i += 1,
            Some(_) => {
                return Err(DigestError::Malformed(
                    "expected a comma between parameters",
                ))
            }
        }
    }
}

/// Linear white space; CR and LF too, as a value may still be folded.
fn skip_lws(bytes: &[u8], i: &mut usize) {
    while bytes
        .get(*i)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        *i += 1;
    }
}

/// RFC 3261 §25.1 `token`, if one starts at `i`.
fn token<'a>(s: &'a str, i: &mut usize) -> Option<&'a str> {
    let start = *i;
    while s.as_bytes().get(*i).is_some_and(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
    }) {
        *i += 1;
    }
    (*i > start).then(|| &s[start..*i])
}

/// RFC 3261 §25.1 `quoted-string` starting at the `"` at `i`, unescaped:
/// `qdtext` is anything but `"`, `\` and controls (tab aside); a quoted-pair
/// escapes one ASCII character other than CR and LF.
fn quoted_string(bytes: &[u8], i: &mut usize) -> Result<String, DigestError> {
    *i += 1;
    let mut out = Vec::new();
    loop {
        let b = *bytes
            .get(*i)
            .ok_or(DigestError::Malformed("unterminated quoted string"))?;
        *i += 1;
        match b {
            b'"' => break,
            b'\\' => match bytes.get(*i) {
                Some(&e) if e.is_ascii() && e != b'\r' && e != b'\n' => {
                    out.push(e);
                    *i += 1;
                }
                _ => return Err(DigestError::Malformed("bad escape in quoted string")),
            },
            b'\t' => out.push(b),
            _ if b.is_ascii_control() => {
                return Err(DigestError::Malformed("control character in quoted string"))
            }
            _ => out.push(b),
        }
    }
    // Only ASCII bytes were unescaped, so a UTF-8 input stays UTF-8.
    String::from_utf8(out).map_err(|_| DigestError::Malformed("not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5: the example request and its response hash.
    #[test]
    fn rfc2617_example() {
        let challenge = Challenge::parse(
            br#"Digest
                 realm="testrealm@host.com",
                 qop="auth,auth-int",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        assert_eq!(challenge.algorithm, Algorithm::Md5);
        assert_eq!(challenge.qop, Some(Qop::Auth));
        let answer = Answer {
            username: "Mufasa",
            password: "Circle Of Life",
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
            cnonce: "0a4f113b",
            nc: 1,
        };
        assert_eq!(
            challenge.response(&answer),
            "6629fae49393a05397450978507c4ef1"
        );
        assert_eq!(
            challenge.answer(&answer),
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
             response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, \
             cnonce=\"0a4f113b\", qop=auth, nc=00000001, \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""
        );
    }

    /// RFC 7616 §3.9.1: the same exchange with SHA-256 and with MD5.
    #[test]
    fn rfc7616_sha256_example() {
        let answer = Answer {
            username: "Mufasa",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            nc: 1,
        };
        let challenge = |algorithm| {
            Challenge::parse(
                format!(
                    "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
                     algorithm={algorithm}, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
                     opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
                )
                .as_bytes(),
            )
            .unwrap()
        };
        assert_eq!(
            challenge("SHA-256").response(&answer),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        assert_eq!(
            challenge("MD5").response(&answer),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    /// RFC 2617 §3.2.2.1: without qop the response is H(HA1:nonce:HA2); -sess
    /// folds the nonces into HA1.
    #[test]
    fn no_qop_and_sess_variants() {
        let answer = Answer {
            username: "u",
            password: "p",
            method: "REGISTER",
            uri: "sip:example.com",
            body: b"",
            cnonce: "c",
            nc: 1,
        };
        let plain = Challenge::parse(br#"Digest realm="r", nonce="n""#).unwrap();
        let h = |s: &str| Algorithm::Md5.hex(s.as_bytes());
        let expected = h(&format!(
            "{}:n:{}",
            h("u:r:p"),
            h("REGISTER:sip:example.com")
        ));
        assert_eq!(plain.response(&answer), expected);
        assert!(!plain.answer(&answer).contains("qop"));

        let sess =
            Challenge::parse(br#"Digest realm="r", nonce="n", algorithm=MD5-sess, qop=auth"#)
                .unwrap();
        let ha1 = h(&format!("{}:n:c", h("u:r:p")));
        let expected = h(&format!(
            "{ha1}:n:00000001:c:auth:{}",
            h("REGISTER:sip:example.com")
        ));
        assert_eq!(sess.response(&answer), expected);
    }

    /// RFC 8760 §2.4: of several challenges, the strongest is answered.
    #[test]
    fn choose_prefers_sha256() {
        let md5 = br#"Digest realm="r", nonce="a", algorithm=MD5"#;
        let sha = br#"Digest realm="r", nonce="b", algorithm=SHA-256"#;
        let unknown = br#"Digest realm="r", nonce="c", algorithm=SHA-512-256"#;
        let chosen = Challenge::choose([&md5[..], &unknown[..], &sha[..]]).unwrap();
        assert_eq!(
            (chosen.algorithm, chosen.nonce.as_str()),
            (Algorithm::Sha256, "b")
        );
        assert_eq!(
            Challenge::parse(unknown),
            Err(DigestError::UnsupportedAlgorithm("SHA-512-256".into()))
        );
    }

    /// RFC 2617 §3.2.1, RFC 7235 §2.1: what is not a well-formed Digest challenge
    /// is refused with the reason; `stale` and quoted-pairs are understood.
    #[test]
    fn malformed_challenges_are_errors() {
        assert_eq!(
            Challenge::parse(b"Basic realm=\"x\""),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            Challenge::parse(br#"Digest nonce="n""#),
            Err(DigestError::Missing("realm"))
        );
        assert!(matches!(
            Challenge::parse(br#"Digest realm="r", nonce="n"#),
            Err(DigestError::Malformed(_))
        ));
        assert!(matches!(
            Challenge::parse(br#"Digest realm="r", nonce="n", qop="x""#),
            Err(DigestError::UnsupportedQop(_))
        ));
        assert_eq!(
            Challenge::parse(br#"Digest realm="r", nonce="a", Nonce="b""#),
            Err(DigestError::Duplicate("nonce".into()))
        );
        assert!(matches!(
            Challenge::parse(br#"Digest realm="r" nonce="n""#),
            Err(DigestError::Malformed(_))
        ));
        let stale = Challenge::parse(br#"Digest realm="r", nonce="n", stale=TRUE"#).unwrap();
        assert!(stale.stale);
        let escaped = Challenge::parse(br#"Digest realm="a \"b\"", nonce="n""#).unwrap();
        assert_eq!(escaped.realm, "a \"b\"");
    }
}
