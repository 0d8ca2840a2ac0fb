//! REGISTER client tests in simulated time (SPEC V2, RFC 3261 §10.2, RFC 2617,
//! RFC 5626 §4.5), against a scripted registrar.

use md5::{Digest, Md5};

use super::*;
use crate::message::{parse, response_to, Message};

#[allow(clippy::disallowed_methods)] // test epoch: only differences matter
fn epoch() -> Instant {
    Instant::now()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// RFC 2617 §3.5's example values, as a registrar would send them.
const REALM: &str = "testrealm@host.com";
const NONCE: &str = "dcd98b7102dd2f0e8b11d0f600bfb0c093";
const OPAQUE: &str = "5ccc069c403ebaf9f0171e9517f40e41";

fn config(credentials: bool) -> RegisterConfig {
    let mut config = RegisterConfig::new(
        Uri::parse("sip:registrar.example.net").unwrap(),
        Uri::parse("sip:hotsite@example.net").unwrap(),
        Uri::parse("sip:hotsite@192.0.2.10:5060").unwrap(),
        "192.0.2.10:5060",
    );
    config.expires = secs(600);
    if credentials {
        config.credentials = Some(Credentials {
            username: "Mufasa".into(),
            password: "Circle Of Life".into(),
        });
    }
    config
}

fn client(credentials: bool, now: Instant) -> RegisterClient {
    RegisterClient::new(
        config(credentials),
        Target::new("site-a", "trunk-reg"),
        7,
        now,
    )
}

/// The REGISTER the client sent last (retransmissions skipped).
fn sent(client: &mut RegisterClient) -> Request {
    let mut last = None;
    while let Some(bytes) = client.poll_transmit() {
        last = Some(bytes);
    }
    match parse(&last.expect("a REGISTER was sent")) {
        Ok(Message::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn events(client: &mut RegisterClient) -> Vec<RegisterEvent> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

fn health_changes(events: &[RegisterEvent]) -> Vec<(HealthState, HealthState, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            RegisterEvent::Health(Event {
                kind: EventKind::Health { from, to, cause },
                ..
            }) => Some((*from, *to, cause.clone())),
            _ => None,
        })
        .collect()
}

fn challenge(register: &Request, status: StatusCode, extra: &str) -> Response {
    let mut response = response_to(register, status, Some("reg"));
    let kind = if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
        HeaderName::ProxyAuthenticate
    } else {
        HeaderName::WwwAuthenticate
    };
    response.headers.insert(
        1,
        Header::new(
            kind,
            format!("Digest realm=\"{REALM}\", qop=\"auth,auth-int\", nonce=\"{NONCE}\", opaque=\"{OPAQUE}\"{extra}"),
        ),
    );
    response
}

fn ok(register: &Request, contact_expires: Option<u32>) -> Response {
    let mut response = response_to(register, StatusCode::OK, Some("reg"));
    let expires = contact_expires
        .map(|e| format!(";expires={e}"))
        .unwrap_or_default();
    response.headers.insert(
        1,
        Header::new(
            HeaderName::Contact,
            format!("<sip:hotsite@192.0.2.10:5060>{expires}"),
        ),
    );
    response
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Authorization fields as a map.
fn auth_fields(value: &[u8]) -> std::collections::HashMap<String, String> {
    let text = std::str::from_utf8(value).unwrap();
    let text = text.strip_prefix("Digest ").unwrap();
    text.split(", ")
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.trim_matches('"').to_owned())
        })
        .collect()
}

/// RFC 3261 §10.2 and RFC 2617 §3.2.2: a 401 is answered with Digest
/// credentials computed from the challenge (the RFC 2617 §3.5 values with
/// REGISTER and the registrar's URI), and the 2xx registers the trunk (SPEC V2).
#[test]
fn digest_challenge_then_registered() {
    let start = epoch();
    let mut c = client(true, start);
    let first = sent(&mut c);
    assert_eq!(first.method, Method::Register);
    assert_eq!(first.headers.value(HeaderName::Expires).unwrap(), "600");
    assert!(first.headers.get(HeaderName::Authorization).is_none());
    assert_eq!(c.state(), RegistrationState::Registering);

    assert!(c.handle_response(
        start + secs(1),
        &challenge(&first, StatusCode::UNAUTHORIZED, "")
    ));
    let second = sent(&mut c);
    assert_eq!(
        second.headers.call_id(),
        first.headers.call_id(),
        "same Call-ID"
    );
    assert_eq!(
        second.headers.cseq().unwrap().seq,
        first.headers.cseq().unwrap().seq + 1
    );
    assert_ne!(second.branch(), first.branch(), "a new transaction");
    let fields = auth_fields(second.headers.value(HeaderName::Authorization).unwrap());
    assert_eq!(fields["username"], "Mufasa");
    assert_eq!(fields["realm"], REALM);
    assert_eq!(fields["nonce"], NONCE);
    assert_eq!(fields["uri"], "sip:registrar.example.net");
    assert_eq!(fields["qop"], "auth");
    assert_eq!(fields["nc"], "00000001");
    assert_eq!(fields["opaque"], OPAQUE);
    assert_eq!(fields["algorithm"], "MD5");
    // The registrar's check, written out from RFC 2617 §3.2.2.1.
    let ha1 = md5_hex(&format!("Mufasa:{REALM}:Circle Of Life"));
    let ha2 = md5_hex("REGISTER:sip:registrar.example.net");
    let expected = md5_hex(&format!(
        "{ha1}:{NONCE}:00000001:{}:auth:{ha2}",
        fields["cnonce"]
    ));
    assert_eq!(fields["response"], expected);

    assert!(c.handle_response(start + secs(2), &ok(&second, Some(300))));
    let events = events(&mut c);
    assert_eq!(
        health_changes(&events),
        [(
            HealthState::Down,
            HealthState::Up,
            "REGISTER answered 200 OK for 300 s".to_owned()
        )]
    );
    assert!(events.contains(&RegisterEvent::Registered {
        at: start + secs(2),
        expires: secs(300)
    }));
    assert!(c.is_registered());
    assert_eq!(c.health(), HealthState::Up);
}

/// §10.2.4: the binding is refreshed at half the granted time, with the same
/// Call-ID, CSeq counting up, and the credentials sent again (nonce count 2).
#[test]
fn refresh_at_half_the_granted_time() {
    let start = epoch();
    let mut c = client(true, start);
    let first = sent(&mut c);
    c.handle_response(start, &challenge(&first, StatusCode::UNAUTHORIZED, ""));
    let second = sent(&mut c);
    c.handle_response(start + secs(1), &ok(&second, Some(300)));
    events(&mut c);
    assert_eq!(c.poll_timeout(), Some(start + secs(151)));
    c.handle_timeout(start + secs(151));
    let refresh = sent(&mut c);
    assert_eq!(refresh.headers.call_id(), first.headers.call_id());
    assert_eq!(refresh.headers.cseq().unwrap().seq, 3);
    let fields = auth_fields(refresh.headers.value(HeaderName::Authorization).unwrap());
    assert_eq!(fields["nc"], "00000002");
    c.handle_response(start + secs(152), &ok(&refresh, None));
    let events = events(&mut c);
    assert!(health_changes(&events).is_empty(), "stays up");
    assert_eq!(
        c.state(),
        RegistrationState::Registered {
            expires_at: start + secs(152) + secs(600)
        },
        "no Contact expires: the asked 600 s"
    );
}

/// RFC 2617 §3.2.1: a stale nonce is answered again without failing; the same
/// nonce refused twice means the credentials are wrong.
#[test]
fn stale_nonce_retries_wrong_password_fails() {
    let start = epoch();
    let mut c = client(true, start);
    let first = sent(&mut c);
    c.handle_response(start, &challenge(&first, StatusCode::UNAUTHORIZED, ""));
    let second = sent(&mut c);
    c.handle_response(
        start,
        &challenge(&second, StatusCode::UNAUTHORIZED, ", stale=true"),
    );
    let third = sent(&mut c);
    assert!(third.headers.get(HeaderName::Authorization).is_some());
    assert!(events(&mut c).is_empty());

    c.handle_response(start, &challenge(&third, StatusCode::UNAUTHORIZED, ""));
    let events = events(&mut c);
    let failed = events
        .iter()
        .find_map(|e| match e {
            RegisterEvent::Failed { cause, .. } => Some(cause.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(failed, "REGISTER answered 401: credentials rejected");
    assert!(matches!(c.state(), RegistrationState::Failed { .. }));
}

/// RFC 3261 §22.3: a 407 is answered with Proxy-Authorization.
#[test]
fn proxy_challenge_uses_proxy_authorization() {
    let start = epoch();
    let mut c = client(true, start);
    let first = sent(&mut c);
    c.handle_response(
        start,
        &challenge(&first, StatusCode::PROXY_AUTHENTICATION_REQUIRED, ""),
    );
    let second = sent(&mut c);
    assert!(second.headers.get(HeaderName::ProxyAuthorization).is_some());
    assert!(second.headers.get(HeaderName::Authorization).is_none());
}

/// RFC 3261 §22.2, SPEC V2: a challenge without credentials configured fails
/// with a cause that says so.
#[test]
fn challenge_without_credentials_fails() {
    let start = epoch();
    let mut c = client(false, start);
    let first = sent(&mut c);
    c.handle_response(start, &challenge(&first, StatusCode::UNAUTHORIZED, ""));
    assert!(c.poll_transmit().is_none());
    let events = events(&mut c);
    assert!(events.iter().any(|e| matches!(e,
        RegisterEvent::Failed { cause, .. } if cause.contains("no credentials configured"))));
}

/// §10.2.8: 423 Interval Too Brief is retried at once with Min-Expires.
#[test]
fn interval_too_brief_raises_expires() {
    let start = epoch();
    let mut c = client(false, start);
    let first = sent(&mut c);
    let mut brief = response_to(&first, StatusCode::INTERVAL_TOO_BRIEF, Some("reg"));
    brief
        .headers
        .insert(1, Header::new(HeaderName::MinExpires, "1800"));
    c.handle_response(start, &brief);
    let second = sent(&mut c);
    assert_eq!(second.headers.value(HeaderName::Expires).unwrap(), "1800");
    assert!(events(&mut c).is_empty());
}

/// SPEC V2 and RFC 5626 §4.5: a refused REGISTER takes the trunk out of service
/// and is retried after 50–100 % of a doubling ceiling (30 s, 60 s, …); a later
/// success brings it back.
#[test]
fn failures_back_off_and_recover() {
    let start = epoch();
    let mut c = client(false, start);
    let mut now = start;
    let mut retry_ins = Vec::new();
    for _ in 0..4 {
        let register = sent(&mut c);
        c.handle_response(
            now,
            &response_to(&register, StatusCode::FORBIDDEN, Some("r")),
        );
        let RegistrationState::Failed { retry_at } = c.state() else {
            panic!("{:?}", c.state())
        };
        retry_ins.push(retry_at - now);
        assert_eq!(c.poll_timeout(), Some(retry_at));
        now = retry_at;
        c.handle_timeout(now);
    }
    for (i, retry_in) in retry_ins.iter().enumerate() {
        let ceiling = secs(30 << i);
        assert!(
            *retry_in >= ceiling / 2 && *retry_in <= ceiling,
            "{i}: {retry_in:?}"
        );
    }
    let events = events(&mut c);
    assert!(events.iter().any(|e| matches!(e,
        RegisterEvent::Failed { cause, .. } if cause == "REGISTER answered 403 Forbidden")));
    assert!(health_changes(&events).is_empty(), "was never up");

    let register = sent(&mut c);
    c.handle_response(now, &ok(&register, None));
    assert_eq!(
        health_changes(&events_of(&mut c)),
        [(
            HealthState::Down,
            HealthState::Up,
            "REGISTER answered 200 OK for 600 s".into()
        )]
    );
}

fn events_of(c: &mut RegisterClient) -> Vec<RegisterEvent> {
    events(c)
}

/// SPEC V2: a registrar that stops answering takes the trunk out of service
/// when the refresh times out (timer F, 32 s), with the cause.
#[test]
fn unanswered_refresh_takes_the_trunk_down() {
    let start = epoch();
    let mut c = client(false, start);
    let first = sent(&mut c);
    c.handle_response(start, &ok(&first, Some(120)));
    events(&mut c);
    let mut now = start;
    while let Some(at) = c.poll_timeout() {
        if at > start + secs(200) {
            break;
        }
        now = at;
        c.handle_timeout(now);
        while c.poll_transmit().is_some() {}
        if !c.is_registered() {
            break;
        }
    }
    assert_eq!(
        now,
        start + secs(60 + 32),
        "refresh at 60 s, timer F 32 s later"
    );
    assert_eq!(
        health_changes(&events(&mut c)),
        [(
            HealthState::Up,
            HealthState::Down,
            "no answer to REGISTER".into()
        )]
    );
}

/// SPEC V2: a binding that lapses before a refresh succeeds takes the trunk
/// down at its expiry.
#[test]
fn binding_expiry_takes_the_trunk_down() {
    let start = epoch();
    let mut c = client(false, start);
    let first = sent(&mut c);
    c.handle_response(start, &ok(&first, Some(40)));
    events(&mut c);
    c.handle_timeout(start + secs(20));
    let refresh = sent(&mut c);
    c.handle_response(
        start + secs(21),
        &response_to(&refresh, StatusCode::TRYING, None),
    );
    c.handle_timeout(start + secs(40));
    assert_eq!(
        health_changes(&events(&mut c)),
        [(
            HealthState::Up,
            HealthState::Down,
            "registration expired without a successful refresh".into()
        )]
    );
    assert!(!c.is_registered());
}

/// §10.2.2: unregistering sends Expires: 0 and ends in Unregistered.
#[test]
fn unregister_removes_the_binding() {
    let start = epoch();
    let mut c = client(false, start);
    let first = sent(&mut c);
    c.handle_response(start, &ok(&first, None));
    events(&mut c);
    c.unregister(start + secs(5));
    let bye = sent(&mut c);
    assert_eq!(bye.headers.value(HeaderName::Expires).unwrap(), "0");
    c.handle_response(
        start + secs(6),
        &response_to(&bye, StatusCode::OK, Some("r")),
    );
    let events = events(&mut c);
    assert!(events.contains(&RegisterEvent::Unregistered {
        at: start + secs(6)
    }));
    assert_eq!(
        health_changes(&events),
        [(
            HealthState::Up,
            HealthState::Down,
            "unregistered on request".into()
        )]
    );
    assert_eq!(c.state(), RegistrationState::Unregistered);
    assert_eq!(c.poll_timeout(), None);
}

/// §17.1.3: responses to other transactions are not claimed.
#[test]
fn foreign_responses_are_not_claimed() {
    let start = epoch();
    let mut c = client(false, start);
    let first = sent(&mut c);
    let mut other = response_to(&first, StatusCode::OK, None);
    other.headers.pop_via();
    other
        .headers
        .push_via("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKsomeoneelse");
    assert!(!c.handle_response(start, &other));
}

/// DESIGN.md (configuration errors name their key); SPEC V2 settings.
#[test]
fn config_validation_names_the_key() {
    let mut c = config(false);
    assert_eq!(c.validate(), Ok(()));
    c.refresh_percent = 0;
    assert_eq!(c.validate().unwrap_err().key(), "refresh_percent");
    c.refresh_percent = 50;
    c.expires = Duration::ZERO;
    assert_eq!(c.validate().unwrap_err().key(), "expires");
    c.expires = secs(60);
    c.retry.initial = Duration::ZERO;
    assert_eq!(c.validate().unwrap_err().key(), "retry");
}
