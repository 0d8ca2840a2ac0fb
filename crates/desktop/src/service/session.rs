//! Session tokens: a desktop that said `hello` with its password gets a
//! token, and says `hello` with the token when it reconnects or switches
//! over (D4, D8).
//!
//! Why: a password check is an Argon2id hash, made slow on purpose (tens of
//! milliseconds of CPU and 19 MiB each). When a site fails, every desktop
//! of that site arrives at the other within `retry_jitter`; thousands of
//! password checks there would take longer than the `site_timeout` + 2 s
//! the agents are promised. A token check is one HMAC.
//!
//! A token is `v1.<expiry ms>.<HMAC-SHA256, base64url>` over the user, the
//! expiry and a fingerprint of the user's stored password hash, keyed by
//! `desktop.session_key`. With the same key at both sites (like the people
//! themselves, the key must be the same in both files) a token from one
//! site is good at the other. Changing a password (its hash) voids the
//! user's tokens; changing the key voids all. Without a key each site makes
//! one at start: tokens then work only at the site and run that issued them.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Why a token is not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not of the form `v1.<ms>.<mac>`.
    #[error("not a session token")]
    Malformed,
    /// Past its expiry.
    #[error("the session token has expired")]
    Expired,
    /// Made with another key, for another user, or before a password change.
    #[error("the session token is not valid here")]
    Invalid,
}

/// Issues and checks tokens with one key.
#[derive(Clone)]
pub struct Sessions {
    key: Vec<u8>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions { key: <hidden> }")
    }
}

impl Sessions {
    /// Tokens keyed by `key` (`desktop.session_key`), or by a random key of
    /// this run when there is none.
    pub fn new(key: Option<&str>) -> Sessions {
        let key = match key {
            Some(key) => key.as_bytes().to_vec(),
            None => {
                let mut key = vec![0u8; 32];
                OsRng.fill_bytes(&mut key);
                key
            }
        };
        Sessions { key }
    }

    fn mac(&self, user: &str, expires_ms: i64, phc: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        let fingerprint = Sha256::digest(phc.as_bytes());
        mac.update(b"hotsite-desktop-session v1\n");
        mac.update(user.as_bytes());
        mac.update(b"\n");
        mac.update(expires_ms.to_string().as_bytes());
        mac.update(b"\n");
        mac.update(&fingerprint);
        mac
    }

    /// A token for `user` (whose stored hash is `phc`) good until
    /// `expires_ms` (wall clock, ms since the Unix epoch).
    pub fn issue(&self, user: &str, phc: &str, expires_ms: i64) -> String {
        let tag = self.mac(user, expires_ms, phc).finalize().into_bytes();
        format!("v1.{expires_ms}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Whether `token` is good for `user` at `now_ms`; its expiry if so.
    pub fn check(
        &self,
        token: &str,
        user: &str,
        phc: &str,
        now_ms: i64,
    ) -> Result<i64, SessionError> {
        let mut parts = token.split('.');
        let (Some("v1"), Some(expires), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SessionError::Malformed);
        };
        // Digits only: `+5` or `005` would parse, but are not what we issue.
        if expires.is_empty()
            || !expires.bytes().all(|b| b.is_ascii_digit())
            || expires.starts_with('0')
        {
            return Err(SessionError::Malformed);
        }
        let expires_ms: i64 = expires.parse().map_err(|_| SessionError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| SessionError::Malformed)?;
        // The MAC first, in constant time: an expiry is only news if the
        // token is ours.
        self.mac(user, expires_ms, phc)
            .verify_slice(&tag)
            .map_err(|_| SessionError::Invalid)?;
        if now_ms >= expires_ms {
            return Err(SessionError::Expired);
        }
        Ok(expires_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

    /// D8: a token from one site is good at the other when both share the
    /// key; not for another user, after a password change, with another
    /// key, after expiry, or altered.
    #[test]
    fn tokens_are_checked() {
        let a = Sessions::new(Some("the same key at both sites, 32+ bytes"));
        let b = Sessions::new(Some("the same key at both sites, 32+ bytes"));
        let token = a.issue("alice", PHC, 10_000);
        assert_eq!(b.check(&token, "alice", PHC, 9_999), Ok(10_000));
        assert_eq!(
            b.check(&token, "alice", PHC, 10_000),
            Err(SessionError::Expired)
        );
        assert_eq!(b.check(&token, "bob", PHC, 1), Err(SessionError::Invalid));
        assert_eq!(
            b.check(
                &token,
                "alice",
                "$argon2id$v=19$m=19456,t=2,p=1$b3RoZXI$aGFzaA",
                1
            ),
            Err(SessionError::Invalid),
            "a password change voids the token"
        );
        let other = Sessions::new(Some("another key entirely, also 32 bytes"));
        assert_eq!(
            other.check(&token, "alice", PHC, 1),
            Err(SessionError::Invalid)
        );
        let random = Sessions::new(None);
        assert_eq!(
            random.check(&token, "alice", PHC, 1),
            Err(SessionError::Invalid)
        );
        // A later expiry written into the token breaks its MAC.
        let stretched = token.replacen("10000", "99999", 1);
        assert_eq!(
            b.check(&stretched, "alice", PHC, 1),
            Err(SessionError::Invalid)
        );
        for bad in [
            "",
            "v1",
            "v2.1.x",
            "v1.soon.AAAA",
            "v1.+1.AAAA",
            "v1.01.AAAA",
            "v1.1.not*base64",
            "v1.1.AAAA.extra",
        ] {
            assert_eq!(
                b.check(bad, "alice", PHC, 1),
                Err(SessionError::Malformed),
                "{bad}"
            );
        }
    }
}
