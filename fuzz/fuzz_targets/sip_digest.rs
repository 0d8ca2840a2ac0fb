//! Feeds arbitrary bytes to the Digest parsers (SPEC S8): a phone's credentials
//! (`Credentials::parse`) and, through the same `#auth-param` grammar, a trunk's
//! challenge (`Challenge::parse`). Neither may panic; credentials that parse
//! keep `cnonce` and `nc` with `qop`, and verifying them must not panic either.
#![no_main]

use hotsite_sip::digest::{verify, verify_ha1, Challenge, Credentials, NonceIssuer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Challenge::parse(data);
    if let Ok(credentials) = Credentials::parse(data) {
        assert_eq!(credentials.qop.is_some(), credentials.cnonce.is_some());
        assert_eq!(credentials.qop.is_some(), credentials.nc.is_some());
        let _ = verify(&credentials, "REGISTER", "password", "realm");
        let _ = verify_ha1(&credentials, "REGISTER", "00112233445566778899aabbccddeeff");
        let _ = NonceIssuer::new([0; 32]).check(&credentials.nonce, 0, 60);
    }
});
