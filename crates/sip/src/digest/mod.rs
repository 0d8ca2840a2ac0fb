//! HTTP Digest authentication for SIP (RFC 3261 §22.4, RFC 2617, RFC 7616,
//! RFC 8760): MD5 and SHA-256, their `-sess` variants, `qop=auth` and
//! `qop=auth-int`, client nonce and nonce count.

use std::fmt::{self, Write};

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::message::unquote;

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
    fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

/// Why a challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not a `Digest` challenge.
    #[error("not a Digest challenge")]
    NotDigest,
    /// A required parameter is missing.
    #[error("challenge without {0}")]
    Missing(&'static str),
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
        let text = std::str::from_utf8(value).map_err(|_| DigestError::Malformed("not UTF-8"))?;
        let text = text.trim_start();
        let (scheme, rest) =
            text.split_at(text.find([' ', '\t', '\r', '\n']).unwrap_or(text.len()));
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::NotDigest);
        }
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = Algorithm::Md5;
        let mut qop = None;
        let mut stale = false;
        for (name, value) in auth_params(rest)? {
            match name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "opaque" => opaque = Some(value),
                "algorithm" => {
                    algorithm = Algorithm::parse(&value)
                        .ok_or_else(|| DigestError::UnsupportedAlgorithm(value.clone()))?;
                }
                "qop" => {
                    let offered: Vec<String> = value
                        .split(',')
                        .map(|q| q.trim().to_ascii_lowercase())
                        .collect();
                    qop = if offered.iter().any(|q| q == "auth") {
                        Some(Qop::Auth)
                    } else if offered.iter().any(|q| q == "auth-int") {
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
        let h = |s: &str| self.algorithm.hex(s.as_bytes());
        let mut ha1 = h(&format!("{}:{}:{}", a.username, self.realm, a.password));
        if self.algorithm.is_session() {
            ha1 = h(&format!("{ha1}:{}:{}", self.nonce, a.cnonce));
        }
        let ha2 = match self.qop {
            Some(Qop::AuthInt) => h(&format!(
                "{}:{}:{}",
                a.method,
                a.uri,
                self.algorithm.hex(a.body)
            )),
            _ => h(&format!("{}:{}", a.method, a.uri)),
        };
        match self.qop {
            Some(qop) => h(&format!(
                "{ha1}:{}:{:08x}:{}:{}:{ha2}",
                self.nonce,
                a.nc,
                a.cnonce,
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

/// `#auth-param` after the scheme: `name=token` or `name="quoted"`, commas
/// between.
fn auth_params(s: &str) -> Result<Vec<(String, String)>, DigestError> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let skip = |i: &mut usize| {
        while *i < bytes.len() && matches!(bytes[*i], b' ' | b'\t' | b'\r' | b'\n' | b',') {
            *i += 1;
        }
    };
    loop {
        skip(&mut i);
        if i >= bytes.len() {
            return Ok(out);
        }
        let name_start = i;
        while i < bytes.len() && bytes[i] != b'=' && !matches!(bytes[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        let name = &s[name_start..i];
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' || name.is_empty() {
            return Err(DigestError::Malformed("expected name=value"));
        }
        i += 1;
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        let value_start = i;
        if bytes.get(i) == Some(&b'"') {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            if i >= bytes.len() {
                return Err(DigestError::Malformed("unterminated quoted value"));
            }
            i += 1;
        } else {
            while i < bytes.len() && !matches!(bytes[i], b',' | b' ' | b'\t') {
                i += 1;
            }
        }
        let raw = &bytes[value_start..i];
        let value = String::from_utf8_lossy(&unquote(raw)).into_owned();
        out.push((name.to_owned(), value));
    }
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

    /// RFC 2617 §3.2.1: what is not a well-formed Digest challenge is refused with
    /// the reason; `stale` and quoted-pairs are understood.
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
        let stale = Challenge::parse(br#"Digest realm="r", nonce="n", stale=TRUE"#).unwrap();
        assert!(stale.stale);
        let escaped = Challenge::parse(br#"Digest realm="a \"b\"", nonce="n""#).unwrap();
        assert_eq!(escaped.realm, "a \"b\"");
    }
}
