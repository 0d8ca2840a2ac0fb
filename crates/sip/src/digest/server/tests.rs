//! The registrar's side of Digest (SPEC S8) against the RFCs' examples and
//! against our own client.

use proptest::prelude::*;

use super::*;
use crate::digest::{Answer, Challenge};

const SECRET: [u8; 32] = [7; 32];
const NOW: u64 = 1_750_000_000;
const MAX_AGE: u64 = 300;
const REALM: &str = "hotsite.example";
const URI: &str = "sip:hotsite.example";

/// RFC 2617 §3.5: the example `Authorization`, MD5 with `qop=auth`.
const RFC2617: &[u8] = br#"Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#;

/// RFC 7616 §3.9.1: the example `Authorization`, for `algorithm` and the
/// `response` the RFC gives for it.
fn rfc7616(algorithm: &str, response: &str) -> Credentials {
    Credentials::parse(
        format!(
            "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
             uri=\"/dir/index.html\", algorithm={algorithm}, \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, \
             cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, \
             response=\"{response}\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
        )
        .as_bytes(),
    )
    .unwrap()
}

/// What a phone sends, answering our challenge with our client.
fn phone(challenge: &Challenge, password: &str, nc: u32) -> String {
    challenge.answer(&Answer {
        username: "agent \"7\"",
        password,
        method: "REGISTER",
        uri: URI,
        body: b"",
        cnonce: "c\\nonce",
        nc,
    })
}

fn our_challenge(issuer: &NonceIssuer, algorithm: Algorithm, now: u64) -> Challenge {
    Challenge::parse(challenge(REALM, &issuer.issue(now), algorithm, false).as_bytes()).unwrap()
}

/// RFC 2617 §3.5 known answer (SPEC S8): the example credentials parse, verify
/// with the password, and with the stored HA1 instead.
#[test]
fn rfc2617_known_answer() {
    let credentials = Credentials::parse(RFC2617).unwrap();
    assert_eq!(
        credentials,
        Credentials {
            username: "Mufasa".into(),
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            uri: "/dir/index.html".into(),
            response: "6629fae49393a05397450978507c4ef1".into(),
            algorithm: Algorithm::Md5,
            cnonce: Some("0a4f113b".into()),
            opaque: Some("5ccc069c403ebaf9f0171e9517f40e41".into()),
            qop: Some(Qop::Auth),
            nc: Some(1),
        }
    );
    assert_eq!(
        verify(&credentials, "GET", "Circle Of Life", "testrealm@host.com"),
        Ok(())
    );
    assert_eq!(
        verify(&credentials, "GET", "Circle of Life", "testrealm@host.com"),
        Err(VerifyError::WrongResponse)
    );
    let ha1 = "939e7578ed9e3c518a452acee763bce9";
    assert_eq!(
        super::ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life"
        ),
        ha1
    );
    assert_eq!(verify_ha1(&credentials, "GET", ha1), Ok(()));
    assert_eq!(
        verify_ha1(&credentials, "GET", &ha1.to_ascii_uppercase()),
        Ok(())
    );
    assert_eq!(
        verify_ha1(&credentials, "POST", ha1),
        Err(VerifyError::WrongResponse)
    );
}

/// RFC 7616 §3.9.1 known answers (SPEC S8): SHA-256 and MD5 for the same
/// exchange; each response verifies only under its own algorithm.
#[test]
fn rfc7616_known_answers() {
    let sha = rfc7616(
        "SHA-256",
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
    );
    assert_eq!(sha.algorithm, Algorithm::Sha256);
    assert_eq!(
        verify(&sha, "GET", "Circle of Life", "http-auth@example.org"),
        Ok(())
    );
    let md5 = rfc7616("MD5", "8ca523f5e9506fed4657c9700eebdbec");
    assert_eq!(
        verify(&md5, "GET", "Circle of Life", "http-auth@example.org"),
        Ok(())
    );
    let swapped = rfc7616(
        "SHA-256-sess",
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
    );
    assert_eq!(
        verify(&swapped, "GET", "Circle of Life", "http-auth@example.org"),
        Err(VerifyError::WrongResponse)
    );
    // An MD5 HA1 cannot check SHA-256 credentials, and the other way round.
    let md5_ha1 = super::ha1(
        Algorithm::Md5,
        "Mufasa",
        "http-auth@example.org",
        "Circle of Life",
    );
    assert_eq!(
        verify_ha1(&sha, "GET", &md5_ha1),
        Err(VerifyError::UnsupportedAlgorithm(Algorithm::Sha256))
    );
    assert_eq!(verify_ha1(&md5, "GET", &md5_ha1), Ok(()));
    let sha_ha1 = super::ha1(
        Algorithm::Sha256,
        "Mufasa",
        "http-auth@example.org",
        "Circle of Life",
    );
    assert_eq!(verify_ha1(&sha, "GET", &sha_ha1), Ok(()));
    assert_eq!(
        verify_ha1(&md5, "GET", &sha_ha1),
        Err(VerifyError::UnsupportedAlgorithm(Algorithm::Md5))
    );
}

/// SPEC S8, RFC 7616 §3.3: the challenge a registrar sends, as written.
#[test]
fn challenge_value() {
    assert_eq!(
        challenge("a \"b\"", "n1", Algorithm::Sha256, false),
        r#"Digest realm="a \"b\"", nonce="n1", algorithm=SHA-256, qop="auth""#
    );
    assert_eq!(
        challenge("r", "n2", Algorithm::Md5, true),
        r#"Digest realm="r", nonce="n2", algorithm=MD5, qop="auth", stale=true"#
    );
}

/// SPEC S8: our challenge, answered by our client, verifies for every
/// algorithm, with `qop=auth` and without qop; a wrong password, realm or
/// method is refused.
#[test]
fn round_trip_with_our_client() {
    let issuer = NonceIssuer::new(SECRET);
    for algorithm in [
        Algorithm::Md5,
        Algorithm::Md5Sess,
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
    ] {
        let mut challenge = our_challenge(&issuer, algorithm, NOW);
        assert_eq!(
            (challenge.algorithm, challenge.qop, challenge.stale),
            (algorithm, Some(Qop::Auth), false)
        );
        let mut answers = vec![phone(&challenge, "s3cret", 1)];
        if !algorithm.is_session() {
            // An RFC 2069-style phone that ignores qop.
            challenge.qop = None;
            answers.push(phone(&challenge, "s3cret", 1));
        }
        for answer in answers {
            let credentials = Credentials::parse(answer.as_bytes()).unwrap();
            assert_eq!(credentials.username, "agent \"7\"");
            assert_eq!(credentials.algorithm, algorithm);
            assert_eq!(
                issuer.check(&credentials.nonce, NOW + 1, MAX_AGE),
                NonceCheck::Valid
            );
            assert_eq!(verify(&credentials, "REGISTER", "s3cret", REALM), Ok(()));
            let stored = super::ha1(algorithm, "agent \"7\"", REALM, "s3cret");
            assert_eq!(verify_ha1(&credentials, "REGISTER", &stored), Ok(()));
            assert_eq!(
                verify(&credentials, "REGISTER", "s3cret!", REALM),
                Err(VerifyError::WrongResponse),
                "{answer}"
            );
            assert_eq!(
                verify(&credentials, "INVITE", "s3cret", REALM),
                Err(VerifyError::WrongResponse)
            );
            assert_eq!(
                verify(&credentials, "REGISTER", "s3cret", "other.example"),
                Err(VerifyError::WrongRealm)
            );
        }
    }
}

/// SPEC S8: credentials altered on the way (URI, nonce, nonce count, client
/// nonce) no longer verify; a nonce that is not ours is invalid.
#[test]
fn tampered_credentials_are_refused() {
    let issuer = NonceIssuer::new(SECRET);
    let challenge = our_challenge(&issuer, Algorithm::Sha256, NOW);
    let answer = phone(&challenge, "pw", 1);
    let other_nonce = issuer.issue(NOW + 1);
    for (from, to) in [
        (
            format!("uri=\"{URI}\""),
            "uri=\"sip:evil.example\"".to_owned(),
        ),
        (challenge.nonce.clone(), other_nonce),
        ("nc=00000001".into(), "nc=00000002".into()),
        ("cnonce=\"c\\\\nonce\"".into(), "cnonce=\"other\"".into()),
    ] {
        assert!(answer.contains(&from), "{from} not in {answer}");
        let tampered = Credentials::parse(answer.replace(&from, &to).as_bytes()).unwrap();
        assert_eq!(
            verify(&tampered, "REGISTER", "pw", REALM),
            Err(VerifyError::WrongResponse),
            "{to}"
        );
    }
    assert_eq!(
        verify(
            &Credentials::parse(answer.as_bytes()).unwrap(),
            "REGISTER",
            "pw",
            REALM
        ),
        Ok(())
    );
    // A nonce with one digit changed, from another secret, or made up.
    let nonce = issuer.issue(NOW);
    let mut flipped = nonce.clone().into_bytes();
    flipped[20] = if flipped[20] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    let foreign = NonceIssuer::new([8; 32]).issue(NOW);
    for bad in [
        flipped.as_str(),
        &foreign,
        &nonce[..46],
        &nonce.to_ascii_uppercase(),
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "",
        "é",
    ] {
        assert_eq!(
            issuer.check(bad, NOW, MAX_AGE),
            NonceCheck::Invalid,
            "{bad}"
        );
    }
}

/// SPEC S8, RFC 7616 §3.3: a nonce is valid up to its maximum age, stale
/// after (and if the clock went back); the stale challenge tells our client so.
#[test]
fn nonces_expire() {
    let issuer = NonceIssuer::new(SECRET);
    let nonce = issuer.issue(NOW);
    assert_eq!(nonce.len(), 48);
    assert_eq!(u64::from_str_radix(&nonce[..16], 16), Ok(NOW));
    assert_ne!(nonce, issuer.issue(NOW + 1));
    assert_eq!(issuer.check(&nonce, NOW, MAX_AGE), NonceCheck::Valid);
    assert_eq!(
        issuer.check(&nonce, NOW + MAX_AGE, MAX_AGE),
        NonceCheck::Valid
    );
    assert_eq!(
        issuer.check(&nonce, NOW + MAX_AGE + 1, MAX_AGE),
        NonceCheck::Stale
    );
    assert_eq!(issuer.check(&nonce, NOW - 1, MAX_AGE), NonceCheck::Stale);
    assert_eq!(
        issuer.check(&issuer.issue(u64::MAX), 0, u64::MAX),
        NonceCheck::Stale
    );
    let stale =
        Challenge::parse(challenge(REALM, &issuer.issue(NOW), Algorithm::Md5, true).as_bytes())
            .unwrap();
    assert!(stale.stale);
}

/// RFC 7616 §3.4, RFC 7235 §2.1: what is wrong is named, never guessed.
#[test]
fn malformed_credentials_are_errors() {
    let valid = "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", \
                 response=\"00112233445566778899aabbccddeeff\"";
    assert!(Credentials::parse(valid.as_bytes()).is_ok());
    let parse = |s: &str| Credentials::parse(s.as_bytes());
    for name in ["username", "realm", "nonce", "uri", "response"] {
        let without: Vec<&str> = valid["Digest ".len()..]
            .split(", ")
            .filter(|p| !p.starts_with(name))
            .collect();
        assert_eq!(
            parse(&format!("Digest {}", without.join(", "))),
            Err(DigestError::Missing(name))
        );
    }
    let with = |extra: &str| parse(&format!("{valid}, {extra}"));
    assert_eq!(
        with("REALM=\"r\""),
        Err(DigestError::Duplicate("realm".into()))
    );
    assert_eq!(with("x=1, x=2"), Err(DigestError::Duplicate("x".into())));
    assert_eq!(
        with("qop=auth, cnonce=\"c\""),
        Err(DigestError::Missing("nc"))
    );
    assert_eq!(
        with("qop=auth, nc=00000001"),
        Err(DigestError::Missing("cnonce"))
    );
    assert_eq!(
        with("qop=auth, cnonce=\"c\", nc=0000000A"),
        Err(DigestError::Invalid("nc"))
    );
    assert_eq!(
        with("qop=auth, cnonce=\"c\", nc=1"),
        Err(DigestError::Invalid("nc"))
    );
    assert!(matches!(
        with("cnonce=\"c\""),
        Err(DigestError::Malformed(_))
    ));
    assert_eq!(with("algorithm=MD5-sess"), Err(DigestError::Missing("qop")));
    assert_eq!(
        with("algorithm=SHA-256"),
        Err(DigestError::Invalid("response"))
    );
    assert_eq!(
        with("algorithm=SHA-512-256"),
        Err(DigestError::UnsupportedAlgorithm("SHA-512-256".into()))
    );
    assert_eq!(
        with("qop=auth-conf"),
        Err(DigestError::UnsupportedQop("auth-conf".into()))
    );
    assert_eq!(
        parse(&valid.replace("00112233", "0011223g")),
        Err(DigestError::Invalid("response"))
    );
    // A quoted token is the same token (RFC 7235 §2.2); unknown parameters
    // are ignored; the response is kept in lower case.
    let quoted =
        with("algorithm=\"md5\", qop=\"auth\", cnonce=\"c\", nc=\"000000ff\", userhash=false")
            .unwrap();
    assert_eq!(
        (quoted.algorithm, quoted.qop, quoted.nc),
        (Algorithm::Md5, Some(Qop::Auth), Some(255))
    );
    assert_eq!(
        parse(&valid.replace("aabbccddeeff", "AABBCCDDEEFF"))
            .unwrap()
            .response,
        "00112233445566778899aabbccddeeff"
    );
    // auth-int is read but not verified: the body is not given.
    let int = with("qop=auth-int, cnonce=\"c\", nc=00000001").unwrap();
    assert_eq!(
        verify(&int, "REGISTER", "pw", "r"),
        Err(VerifyError::UnsupportedQop)
    );
    // The grammar.
    for bad in [
        &b"Basic dXNlcjpwdw=="[..],
        b"",
        b"Digest",
        b"Digest username",
        b"Digest username=",
        b"Digest username=\"u",
        b"Digest username=\"u\\",
        b"Digest username=\"u\" realm=\"r\"",
        b"Digest username=a@b",
        b"Digest username=\"a\x01b\"",
        b"Digest username=\"a\\\xc3\xa9\"",
        b"Digest username=\"\xff\"",
        b"Digest =\"u\"",
        b"Digest username==u",
    ] {
        assert!(
            Credentials::parse(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(
        Credentials::parse(b"Basic dXNlcjpwdw=="),
        Err(DigestError::NotDigest)
    );
    assert_eq!(
        Credentials::parse(b"Digest username=\"u\" realm=\"r\""),
        Err(DigestError::Malformed(
            "expected a comma between parameters"
        ))
    );
    assert_eq!(
        Credentials::parse(b"Digest username=\"a\x01b\""),
        Err(DigestError::Malformed("control character in quoted string"))
    );
}

/// Mutates a valid header value: `(index, byte, op)` replaces, inserts or
/// removes a byte.
fn mutate(value: &str, edits: Vec<(prop::sample::Index, u8, u8)>) -> Vec<u8> {
    let mut bytes = value.as_bytes().to_vec();
    for (at, byte, op) in edits {
        if bytes.is_empty() {
            break;
        }
        let i = at.index(bytes.len());
        match op {
            0 => bytes[i] = byte,
            1 => bytes.insert(i, byte),
            _ => {
                bytes.remove(i);
            }
        }
    }
    bytes
}

/// Printable text with the characters quoting must handle.
fn text() -> impl Strategy<Value = String> {
    "[ -~]{0,24}"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// SPEC S8 (input from any phone): arbitrary bytes never panic the parser.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(credentials) = Credentials::parse(&bytes) {
            let _ = verify(&credentials, "REGISTER", "pw", "r");
        }
    }

    /// SPEC S8: valid credentials with a few bytes changed, inserted or
    /// removed never panic the parser, nor the verifier when they parse.
    #[test]
    fn mutated_credentials_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        if let Ok(credentials) = Credentials::parse(&mutate(std::str::from_utf8(RFC2617).unwrap(), edits)) {
            let _ = verify(&credentials, "GET", "Circle Of Life", "testrealm@host.com");
            let _ = verify_ha1(&credentials, "GET", "939e7578ed9e3c518a452acee763bce9");
        }
    }

    /// SPEC S8: whatever printable user name, password, realm, URI and client
    /// nonce, what our client answers to our challenge verifies, and with
    /// another password does not.
    #[test]
    fn any_text_round_trips(
        username in text(), password in text(), realm in text(), uri in text(), cnonce in text(),
        sha in any::<bool>(),
    ) {
        let issuer = NonceIssuer::new(SECRET);
        let algorithm = if sha { Algorithm::Sha256 } else { Algorithm::Md5 };
        let challenge = Challenge::parse(challenge(&realm, &issuer.issue(NOW), algorithm, false).as_bytes()).unwrap();
        prop_assert_eq!(&challenge.realm, &realm);
        let answer = |password: &str| challenge.answer(&Answer {
            username: &username, password, method: "REGISTER", uri: &uri, body: b"", cnonce: &cnonce, nc: 3,
        });
        let credentials = Credentials::parse(answer(&password).as_bytes()).unwrap();
        prop_assert_eq!((&credentials.username, &credentials.uri, credentials.nc), (&username, &uri, Some(3)));
        prop_assert_eq!(verify(&credentials, "REGISTER", &password, &realm), Ok(()));
        let wrong = format!("{password}x");
        let credentials = Credentials::parse(answer(&wrong).as_bytes()).unwrap();
        prop_assert_eq!(verify(&credentials, "REGISTER", &password, &realm), Err(VerifyError::WrongResponse));
    }
}
