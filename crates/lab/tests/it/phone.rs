//! Agent phones over real UDP on loopback (SPEC S8): registering with Digest
//! at a registrar written here, refreshing, stopping on command so the
//! binding lapses, and answering calls from a caller. Short timers (expiries
//! of 1 s) keep each test within a few seconds; every wait is bounded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hotsite_lab::{
    PhoneAnswer, PhoneStats, RegistrationStatus, SipCaller, SipCallerConfig, SipPhone,
    SipPhoneConfig,
};
use hotsite_sip::digest::{Answer, Challenge};
use hotsite_sip::message::{
    parse_bytes, response_to, Header, HeaderName, Message, Request, StatusCode,
};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

pub(crate) const DOMAIN: &str = "site.lab";
pub(crate) const PASSWORD: &str = "pw-1001";
const NONCE: &str = "n0nce";
const LIMIT: Duration = Duration::from_secs(5);

#[allow(clippy::disallowed_methods)] // the tests' own clock, for intervals only
fn now() -> Instant {
    Instant::now()
}

/// One REGISTER as the registrar saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) at: Instant,
    pub(crate) from: SocketAddr,
    pub(crate) expires: u32,
    /// `None` without credentials (challenged); else whether they were right,
    /// as `Challenge::response` computes them.
    pub(crate) authorized: Option<bool>,
    pub(crate) contact: String,
    pub(crate) to: String,
}

/// A registrar in a few lines, on a UDP socket: a REGISTER without
/// credentials gets a `401` Digest challenge (MD5, `qop=auth`); one with
/// credentials is checked with `hotsite_sip::digest` and gets `200` with
/// `Contact: …;expires=` the lesser of what was asked and `grant`, or `403`.
pub(crate) struct Registrar {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Registrar {
    pub(crate) async fn start(dn: &'static str, grant: u32) -> Registrar {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            let mut buffer = vec![0; 65_535];
            loop {
                let Ok((len, from)) = socket.recv_from(&mut buffer).await else {
                    continue;
                };
                let Ok(Message::Request(request)) =
                    parse_bytes(bytes::Bytes::copy_from_slice(&buffer[..len]))
                else {
                    continue;
                };
                let (seen, answer) = answer(dn, grant, from, &request);
                log.lock().unwrap().push(seen);
                let _ = socket.send_to(&answer, from).await;
            }
        });
        Registrar { addr, seen, task }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The REGISTERs seen once `done` holds; panics after `LIMIT`.
    pub(crate) async fn seen_until(&self, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let start = now();
        while now() - start < LIMIT {
            let seen = self.seen();
            if done(&seen) {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the registrar did not see it: {:#?}", self.seen());
    }
}

impl Drop for Registrar {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn challenge_header() -> String {
    format!("Digest realm=\"{DOMAIN}\", nonce=\"{NONCE}\", qop=\"auth\", algorithm=MD5")
}

fn answer(dn: &str, grant: u32, from: SocketAddr, request: &Request) -> (Seen, bytes::Bytes) {
    let text = |name| {
        request
            .headers
            .value(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let expires: u32 = text(HeaderName::Expires).unwrap().trim().parse().unwrap();
    let contact = request
        .headers
        .contacts()
        .first()
        .map(|c| c.uri.to_string())
        .unwrap_or_default();
    let mut seen = Seen {
        at: now(),
        from,
        expires,
        authorized: None,
        contact: contact.clone(),
        to: request.headers.to().unwrap().uri.to_string(),
    };
    let Some(authorization) = text(HeaderName::Authorization) else {
        let mut challenge = response_to(request, StatusCode::UNAUTHORIZED, Some("r"));
        challenge
            .headers
            .push(Header::new(HeaderName::WwwAuthenticate, challenge_header()));
        return (seen, challenge.to_bytes());
    };
    let params: HashMap<&str, &str> = authorization
        .strip_prefix("Digest ")
        .unwrap()
        .split(", ")
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap();
            (name, value.trim_matches('"'))
        })
        .collect();
    let uri = format!("sip:{DOMAIN}");
    let expected = Challenge::parse(challenge_header().as_bytes())
        .unwrap()
        .response(&Answer {
            username: dn,
            password: PASSWORD,
            method: "REGISTER",
            uri: &uri,
            body: b"",
            cnonce: params["cnonce"],
            nc: u32::from_str_radix(params["nc"], 16).unwrap(),
        });
    let authorized =
        params["username"] == dn && params["uri"] == uri && params["response"] == expected;
    seen.authorized = Some(authorized);
    if !authorized {
        return (
            seen,
            response_to(request, StatusCode::FORBIDDEN, Some("r")).to_bytes(),
        );
    }
    let mut ok = response_to(request, StatusCode::OK, Some("r"));
    if expires > 0 {
        ok.headers.push(Header::new(
            HeaderName::Contact,
            format!("<{contact}>;expires={}", expires.min(grant)),
        ));
    }
    (seen, ok.to_bytes())
}

pub(crate) fn phone_config(registrars: Vec<SocketAddr>) -> SipPhoneConfig {
    let mut config = SipPhoneConfig::new("1001", PASSWORD, DOMAIN, registrars);
    config.expires = Duration::from_secs(2);
    config.t1 = Duration::from_millis(20);
    config.t2 = Duration::from_millis(160);
    config
}

/// The phone's counters once `done` holds; panics after about 1 s.
async fn stats_until(phone: &SipPhone, done: impl Fn(&PhoneStats) -> bool) -> PhoneStats {
    for _ in 0..100 {
        let stats = phone.stats();
        if done(&stats) {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the phone's counters did not settle: {:#?}", phone.stats());
}

/// SPEC S8: the phone registers with Digest (the registrar checks the
/// Authorization with `Challenge::response`), refreshes before the granted
/// second runs out, and once told to stop sends nothing more, so its binding
/// lapses; resumed, it registers again at once.
#[tokio::test]
async fn a_phone_registers_refreshes_and_stops_on_command() {
    let registrar = Registrar::start("1001", 1).await;
    let phone = SipPhone::start(phone_config(vec![registrar.addr()]))
        .await
        .unwrap();
    let me = phone.local_addr();
    // The challenge, the first registration, then two refreshes.
    let seen = registrar.seen_until(|seen| seen.len() >= 4).await;
    assert_eq!(seen[0].authorized, None, "first without credentials");
    for register in &seen {
        assert_eq!(register.from, me);
        assert_eq!(register.contact, format!("sip:1001@{me}"));
        assert_eq!(register.to, format!("sip:1001@{DOMAIN}"));
        assert_eq!(register.expires, 2, "asks what it is configured to");
    }
    for register in &seen[1..] {
        assert_eq!(register.authorized, Some(true), "{register:?}");
    }
    for pair in seen[1..].windows(2) {
        let interval = pair[1].at - pair[0].at;
        // Half of the granted second (not of the 2 s asked), before expiry.
        assert!(
            interval >= Duration::from_millis(400) && interval < Duration::from_secs(1),
            "refresh after {interval:?}"
        );
    }
    // The registrar saw the third authorized REGISTER; its 200 may still be
    // on the way to the phone.
    let mut stats = phone.stats();
    for _ in 0..100 {
        if stats.registrars[0].ok >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        stats = phone.stats();
    }
    let registration = &stats.registrars[0];
    assert_eq!(registration.state, RegistrationStatus::Registered);
    assert_eq!(registration.challenged, 1);
    assert_eq!(registration.granted_s, Some(1));
    assert!(registration.ok >= 3, "{registration:?}");

    phone.stop_registering();
    let stopped_at = registrar.seen().len();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        registrar.seen().len(),
        stopped_at,
        "no REGISTER after the stop: the binding lapses"
    );
    assert_eq!(
        phone.stats().registrars[0].state,
        RegistrationStatus::Stopped
    );

    phone.resume();
    let seen = registrar
        .seen_until(|seen| seen.len() >= stopped_at + 2)
        .await;
    assert_eq!(seen[stopped_at].authorized, None);
    assert_eq!(seen[stopped_at + 1].authorized, Some(true));
    stats_until(&phone, |s| {
        s.registrars[0].state == RegistrationStatus::Registered
    })
    .await;
    phone.shutdown().await;
}

/// SPEC S8 dual registration: the phone keeps a binding at both sites.
#[tokio::test]
async fn a_phone_registers_at_both_sites() {
    let site_a = Registrar::start("1001", 60).await;
    let site_b = Registrar::start("1001", 60).await;
    let phone = SipPhone::start(phone_config(vec![site_a.addr(), site_b.addr()]))
        .await
        .unwrap();
    for site in [&site_a, &site_b] {
        site.seen_until(|seen| seen.iter().any(|s| s.authorized == Some(true)))
            .await;
    }
    let stats = stats_until(&phone, |s| {
        s.registrars
            .iter()
            .all(|r| r.state == RegistrationStatus::Registered)
    })
    .await;
    let registrars: Vec<SocketAddr> = stats.registrars.iter().map(|r| r.registrar).collect();
    assert_eq!(registrars, [site_a.addr(), site_b.addr()]);
    phone.shutdown().await;
}

/// A call straight from a caller (a media gateway) to the phone: answered,
/// ACKed and hung up; the phone logs its Call-ID and where it came from.
/// Then busy (486) and no answer (ringing until the caller cancels, 487).
#[tokio::test]
async fn a_phone_answers_calls_as_told() {
    let phone = SipPhone::start(phone_config(Vec::new())).await.unwrap();
    let call = |answer_within: Option<Duration>| {
        let mut config = SipCallerConfig::new(phone.local_addr(), 1, 10.0);
        config.to_user = Some("1001".to_owned());
        config.t1 = Duration::from_millis(20);
        config.t2 = Duration::from_millis(160);
        config.hold = Duration::from_millis(20);
        config.cancel_after = answer_within;
        config
    };
    let caller = SipCaller::start(call(None)).await.unwrap();
    let caller_addr = caller.local_addr();
    let records = timeout(LIMIT, caller.wait()).await.expect("the call ends");
    assert_eq!(records[0].status, Some(200), "{:?}", records[0]);
    assert!(records[0].bye_completed());
    let contact = format!("sip:1001@{}", phone.local_addr());
    assert_eq!(records[0].contact.as_deref(), Some(contact.as_str()));
    let stats = stats_until(&phone, |s| s.calls.byes == 1).await;
    assert_eq!((stats.calls.invites, stats.calls.answered), (1, 1));
    assert_eq!(stats.invites[0].call_id, records[0].call_id);
    assert_eq!(stats.invites[0].from, caller_addr);

    phone.set_answer(PhoneAnswer::Busy);
    let caller = SipCaller::start(call(None)).await.unwrap();
    let records = timeout(LIMIT, caller.wait()).await.expect("the call ends");
    assert_eq!(records[0].status, Some(486));

    phone.set_answer(PhoneAnswer::NoAnswer);
    assert_eq!(phone.answer(), PhoneAnswer::NoAnswer);
    let caller = SipCaller::start(call(Some(Duration::from_millis(200))))
        .await
        .unwrap();
    let records = timeout(LIMIT, caller.wait()).await.expect("the call ends");
    assert_eq!(records[0].status, Some(487));
    assert!(records[0].cancelled);
    let log = phone.invite_log();
    assert_eq!(log.len(), 3);
    phone.shutdown().await;
}
