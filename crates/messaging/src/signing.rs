//! HMAC-SHA256 webhook signatures (SPEC M15): `X-Hub-Signature-256: sha256=<base64>`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header hotsite signs with and checks.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

/// The header value for `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Whether `header` is a valid signature of `body` under `secret`. Constant time.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(encoded) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = STANDARD.decode(encoded) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
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

    /// SPEC M15: a changed body, another secret or a mangled header fail.
    #[test]
    fn tampering_is_detected() {
        let header = sign(b"secret", b"{\"a\":1}");
        assert!(!verify(b"secret", b"{\"a\":2}", &header));
        assert!(!verify(b"other", b"{\"a\":1}", &header));
        assert!(!verify(b"secret", b"{\"a\":1}", "sha1=abc"));
        assert!(!verify(b"secret", b"{\"a\":1}", "sha256=!!!"));
    }
}
