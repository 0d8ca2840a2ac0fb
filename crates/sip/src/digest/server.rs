//! The registrar's side of Digest (SPEC S8: agent phones register with us):
//! challenge, read the credentials, check the nonce, verify the response
//! (RFC 3261 §22.4, RFC 2617, RFC 7616, RFC 8760).
//!
//! Nonces are stateless: a timestamp and its HMAC-SHA256 under a secret, so
//! any process holding the secret (both sites, if they share it) can check
//! them and nothing is stored per phone. The price is that an overheard
//! REGISTER can be replayed until its nonce expires; a caller that cares keeps
//! the highest `nc` per nonce itself.
//!
//! A registrar, for a REGISTER:
//! 1. without credentials: 401 with `WWW-Authenticate:`
//!    [`challenge`]`(realm, &issuer.issue(now), algorithm, false)`;
//! 2. [`Credentials::parse`] the `Authorization` value (an error: 400 or a
//!    fresh 401);
//! 3. [`NonceIssuer::check`] the nonce; `Invalid`: a fresh 401;
//! 4. [`verify`] (or [`verify_ha1`]), and compare `credentials.uri` with the
//!    Request-URI and `credentials.username` with the user it expects
//!    (RFC 2617 §3.2.2.5, which this module cannot see);
//! 5. verified but `Stale`: 401 with `stale=true`, so the phone retries
//!    with the new nonce without asking anyone (RFC 7616 §3.3); verified and
//!    `Valid`: accepted.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{digest_params, escape, ha1, to_hex, Algorithm, DigestError, Exchange, Qop};

/// An `Authorization` / `Proxy-Authorization` Digest value (RFC 7616 §3.4),
/// as sent by a phone answering our [`challenge`] (SPEC S8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name, as the phone sent it.
    pub username: String,
    /// The protection space the phone answered for.
    pub realm: String,
    /// The server nonce answered, from our challenge if it is genuine.
    pub nonce: String,
    /// The digest-uri; should equal the Request-URI.
    pub uri: String,
    /// The response hash, lower-case hex of the algorithm's length.
    pub response: String,
    /// The hash (`MD5` when the value names none).
    pub algorithm: Algorithm,
    /// The client nonce; present exactly when `qop` is.
    pub cnonce: Option<String>,
    /// Returned unchanged from the challenge.
    pub opaque: Option<String>,
    /// The qop chosen; `None` for an RFC 2069-style answer.
    pub qop: Option<Qop>,
    /// The nonce count; present exactly when `qop` is.
    pub nc: Option<u32>,
}

impl Credentials {
    /// Parses a header value: `Digest username="…", realm="…", nonce="…",
    /// uri="…", response="…"` with, optionally, `algorithm`, `opaque`, and
    /// `qop`, `cnonce` and `nc` together. Strict: the `#auth-param` grammar
    /// (RFC 7235 §2.1, RFC 3261 §25.1), each parameter once, `nc` eight
    /// lower-case hex digits, `response` a hash of the algorithm's length; the
    /// error names what is wrong. Unknown parameters are ignored. Never panics.
    pub fn parse(value: &[u8]) -> Result<Credentials, DigestError> {
        let mut username = None;
        let mut realm = None;
        let mut nonce = None;
        let mut uri = None;
        let mut response = None;
        let mut algorithm = Algorithm::Md5;
        let mut cnonce = None;
        let mut opaque = None;
        let mut qop = None;
        let mut nc = None;
        for (name, value) in digest_params(value)? {
            match name.as_str() {
                "username" => username = Some(value),
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "uri" => uri = Some(value),
                "response" => response = Some(value),
                "algorithm" => {
                    algorithm = Algorithm::parse(&value)
                        .ok_or_else(|| DigestError::UnsupportedAlgorithm(value.clone()))?;
                }
                "cnonce" => cnonce = Some(value),
                "opaque" => opaque = Some(value),
                "qop" => {
                    qop = Some(Qop::parse(&value).ok_or(DigestError::UnsupportedQop(value))?);
                }
                "nc" => nc = Some(parse_nc(&value).ok_or(DigestError::Invalid("nc"))?),
                _ => {}
            }
        }
        let credentials = Credentials {
            username: username.ok_or(DigestError::Missing("username"))?,
            realm: realm.ok_or(DigestError::Missing("realm"))?,
            nonce: nonce.ok_or(DigestError::Missing("nonce"))?,
            uri: uri.ok_or(DigestError::Missing("uri"))?,
            response: response.ok_or(DigestError::Missing("response"))?,
            algorithm,
            cnonce,
            opaque,
            qop,
            nc,
        };
        credentials.check_consistency()
    }

    /// What the grammar alone does not say: the response's length, and
    /// RFC 2617 §3.2.2: `cnonce` and `nc` go with `qop`, and `-sess` needs
    /// `cnonce`.
    fn check_consistency(mut self) -> Result<Credentials, DigestError> {
        if self.response.len() != self.algorithm.hex_len()
            || !self.response.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(DigestError::Invalid("response"));
        }
        self.response.make_ascii_lowercase();
        if self.qop.is_some() {
            if self.cnonce.is_none() {
                return Err(DigestError::Missing("cnonce"));
            }
            if self.nc.is_none() {
                return Err(DigestError::Missing("nc"));
            }
        } else if self.cnonce.is_some() || self.nc.is_some() {
            return Err(DigestError::Malformed("cnonce or nc without qop"));
        } else if self.algorithm.is_session() {
            return Err(DigestError::Missing("qop"));
        }
        Ok(self)
    }
}

/// RFC 7616 §3.4 `nc-value = 8LHEX`: exactly as the client wrote it, since
/// the response hashes the text.
fn parse_nc(value: &str) -> Option<u32> {
    if value.len() != 8
        || !value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    u32::from_str_radix(value, 16).ok()
}

/// The `WWW-Authenticate` value for a 401 (RFC 7616 §3.3, SPEC S8): `Digest
/// realm="…", nonce="…", algorithm=…, qop="auth"`, and `stale=true` when the
/// last credentials were right but their nonce had expired. `realm` is
/// configuration, printable text; `"` and `\` in it are escaped.
pub fn challenge(realm: &str, nonce: &str, algorithm: Algorithm, stale: bool) -> String {
    let mut out = format!(
        "Digest realm=\"{}\", nonce=\"{}\", algorithm={algorithm}, qop=\"auth\"",
        escape(realm),
        escape(nonce),
    );
    if stale {
        out.push_str(", stale=true");
    }
    out
}

/// Why credentials are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The credentials answer another realm's challenge.
    #[error("credentials for another realm")]
    WrongRealm,
    /// The stored HA1 is not a hash of the credentials' algorithm (an MD5
    /// HA1 cannot check SHA-256 credentials).
    #[error("no HA1 for algorithm {0}")]
    UnsupportedAlgorithm(Algorithm),
    /// `qop=auth-int`: it covers the body, which is not given here (our
    /// challenge offers `auth` only).
    #[error("qop=auth-int is not verified")]
    UnsupportedQop,
    /// The response hash does not match: wrong password, or the credentials
    /// were altered or made for another request.
    #[error("wrong digest response")]
    WrongResponse,
}

/// Checks credentials for a request against the user's password (SPEC S8):
/// the realm must be `expected_realm`, then as [`verify_ha1`]. `qop=auth` and
/// no qop; MD5, SHA-256 and their `-sess`. The nonce is checked apart, by
/// [`NonceIssuer::check`].
pub fn verify(
    credentials: &Credentials,
    method: &str,
    password: &str,
    expected_realm: &str,
) -> Result<(), VerifyError> {
    if credentials.realm != expected_realm {
        return Err(VerifyError::WrongRealm);
    }
    let ha1 = ha1(
        credentials.algorithm,
        &credentials.username,
        &credentials.realm,
        password,
    );
    verify_ha1(credentials, method, &ha1)
}

/// Checks credentials against a stored HA1 instead of a password, so that a
/// registrar need not keep passwords (SPEC S8): `ha1_hex` is the hex of
/// `H(username:realm:password)` with the hash of `credentials.algorithm`
/// (MD5 for `MD5` and `MD5-sess`, SHA-256 for the others; RFC 7616 §3.4.2).
/// The realm is inside HA1, so credentials for another realm come out as
/// [`VerifyError::WrongResponse`]. The hashes are compared in constant time.
pub fn verify_ha1(
    credentials: &Credentials,
    method: &str,
    ha1_hex: &str,
) -> Result<(), VerifyError> {
    if credentials.qop == Some(Qop::AuthInt) {
        return Err(VerifyError::UnsupportedQop);
    }
    if ha1_hex.len() != credentials.algorithm.hex_len() {
        return Err(VerifyError::UnsupportedAlgorithm(credentials.algorithm));
    }
    let nc = credentials.nc.map(|nc| format!("{nc:08x}"));
    let exchange = Exchange {
        algorithm: credentials.algorithm,
        nonce: &credentials.nonce,
        cnonce: credentials.cnonce.as_deref().unwrap_or(""),
        qop: credentials.qop.zip(nc.as_deref()),
        method,
        uri: &credentials.uri,
        body: b"",
    };
    let expected = exchange.response(&ha1_hex.to_ascii_lowercase());
    if constant_time_eq(expected.as_bytes(), credentials.response.as_bytes()) {
        Ok(())
    } else {
        Err(VerifyError::WrongResponse)
    }
}

/// Equality whose time does not depend on where the inputs differ, so that
/// timing does not reveal how much of a forged response was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What [`NonceIssuer::check`] makes of a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Ours, and younger than the maximum age.
    Valid,
    /// Ours but too old (or from a later clock): if the response is right,
    /// challenge again with `stale=true`.
    Stale,
    /// Not a nonce we issued.
    Invalid,
}

/// Bytes of HMAC-SHA256 kept in a nonce: 128 bits leave forgery hopeless and
/// keep the nonce at 48 hex digits.
const TAG_LEN: usize = 16;

/// Bytes of the timestamp in a nonce.
const STAMP_LEN: usize = 8;

/// Issues and checks stateless nonces (SPEC S8): the hex of the issue time in
/// seconds (big-endian `u64`) followed by the first 16 bytes of
/// HMAC-SHA256(secret, time). Sans-IO: time is passed in.
#[derive(Clone)]
pub struct NonceIssuer {
    /// Keyed once; cloned per nonce.
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for NonceIssuer {
    /// Without the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceIssuer").finish_non_exhaustive()
    }
}

impl NonceIssuer {
    /// An issuer keyed with `secret` (random, kept for as long as nonces
    /// issued with it should be accepted).
    pub fn new(secret: [u8; 32]) -> NonceIssuer {
        NonceIssuer {
            mac: Hmac::new_from_slice(&secret).expect("HMAC takes keys of any length"),
        }
    }

    /// A nonce issued at `now_secs` (Unix seconds).
    pub fn issue(&self, now_secs: u64) -> String {
        let stamp = now_secs.to_be_bytes();
        let mut nonce = to_hex(&stamp);
        nonce.push_str(&to_hex(&self.tag(&stamp)[..TAG_LEN]));
        nonce
    }

    /// Whether `nonce` is one of ours, issued at most `max_age_secs` before
    /// `now_secs`. One issued after `now_secs` (the clock stepped back) is
    /// `Stale`, so the phone simply gets a fresh one.
    pub fn check(&self, nonce: &str, now_secs: u64, max_age_secs: u64) -> NonceCheck {
        let Some(raw) = from_lower_hex(nonce, STAMP_LEN + TAG_LEN) else {
            return NonceCheck::Invalid;
        };
        let (stamp, tag) = raw.split_at(STAMP_LEN);
        let mut mac = self.mac.clone();
        mac.update(stamp);
        if mac.verify_truncated_left(tag).is_err() {
            return NonceCheck::Invalid;
        }
        let mut issued = [0; STAMP_LEN];
        issued.copy_from_slice(stamp);
        match now_secs.checked_sub(u64::from_be_bytes(issued)) {
            Some(age) if age <= max_age_secs => NonceCheck::Valid,
            _ => NonceCheck::Stale,
        }
    }

    fn tag(&self, stamp: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(stamp);
        mac.finalize().into_bytes().into()
    }
}

/// `len` bytes from exactly `2 * len` lower-case hex digits (what
/// [`to_hex`] writes), else `None`.
fn from_lower_hex(s: &str, len: usize) -> Option<Vec<u8>> {
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    if s.len() != 2 * len {
        return None;
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests;
