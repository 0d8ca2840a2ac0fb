//! HMAC-SHA256 signatures of callback and webhook bodies (SPEC M15):
//! `X-Hub-Signature-256: sha256=<base64 of HMAC-SHA256(secret, body)>`, standard
//! base64 with padding. The lab keeps its own copy rather than depend on a
//! system crate, so a bug in hotsite's signing cannot hide behind the same bug here.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header that carries the signature.
pub(crate) const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The header value for `body` under `secret`.
pub(crate) fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = new_mac(secret);
    mac.update(body);
    format!("sha256={}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Whether `header` is a valid signature of `body` under `secret`, in constant time.
pub(crate) fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(encoded) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = STANDARD.decode(encoded) else {
        return false;
    };
    let mut mac = new_mac(secret);
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn new_mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length: longer ones are hashed, shorter padded.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC M15: RFC 4231 test case 2, base64 of the expected MAC.
    #[test]
    fn signature_matches_rfc_4231_vector() {
        let header = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            header,
            "sha256=W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="
        );
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &header));
    }

    /// SPEC M15: another body, another secret or a mangled header fail.
    #[test]
    fn tampering_is_detected() {
        let header = sign(b"secret", b"a=1");
        assert!(!verify(b"secret", b"a=2", &header));
        assert!(!verify(b"other", b"a=1", &header));
        assert!(!verify(b"secret", b"a=1", "sha1=abc"));
        assert!(!verify(b"secret", b"a=1", "sha256=!!!"));
        assert!(!verify(b"secret", b"a=1", ""));
    }
}
