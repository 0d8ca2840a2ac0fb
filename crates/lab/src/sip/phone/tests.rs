//! The phone's core against registrars written here, in simulated time: no
//! sockets, no sleeps. Each test reads as a transcript of the REGISTERs and
//! their answers (SPEC S8: a phone keeps its binding alive at one site or
//! both, and a binding it stops refreshing expires).

use std::collections::HashMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hotsite_sip::digest::{Answer, Challenge};
use hotsite_sip::message::{
    parse_bytes, response_to, Header, HeaderName, Message, Request, Response, StatusCode,
};

use super::*;

const PHONE: &str = "127.0.0.1:5070";
const SITE_A: &str = "127.0.0.1:5060";
const SITE_B: &str = "127.0.0.1:5062";
const DOMAIN: &str = "site.lab";
const PASSWORD: &str = "pw-1001";
const NONCE: &str = "n0nce";

#[allow(clippy::disallowed_methods)] // test epoch: only offsets from it matter
fn epoch() -> Instant {
    Instant::now()
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A registrar in a few lines: a REGISTER without credentials gets a `401`
/// Digest challenge (MD5, `qop=auth`); one with credentials is checked with
/// `hotsite_sip::digest` (`Challenge::response`) and gets `200` with
/// `Contact: …;expires=` the lesser of what was asked and `grant`, or `403`.
struct Registrar {
    name: &'static str,
    addr: SocketAddr,
    password: &'static str,
    grant: u32,
    /// Answers nothing.
    silent: bool,
}

impl Registrar {
    fn new(name: &'static str, addr: SocketAddr, grant: u32) -> Registrar {
        Registrar {
            name,
            addr,
            password: PASSWORD,
            grant,
            silent: false,
        }
    }

    /// The `WWW-Authenticate` value of its 401.
    fn challenge_header() -> String {
        format!("Digest realm=\"{DOMAIN}\", nonce=\"{NONCE}\", qop=\"auth\", algorithm=MD5")
    }

    fn challenge() -> Challenge {
        Challenge::parse(Registrar::challenge_header().as_bytes()).unwrap()
    }

    /// The answer, and how the request looked: `expires=N` and `nc=N` when
    /// it carried credentials.
    fn answer(&self, request: &Request) -> (String, Option<Response>) {
        let expires: u32 = header(request, HeaderName::Expires).parse().unwrap();
        let authorization = request
            .headers
            .get(HeaderName::Authorization)
            .map(|h| String::from_utf8_lossy(h.value()).into_owned());
        let mut seen = format!("REGISTER expires={expires}");
        if self.silent {
            return (seen, None);
        }
        let Some(authorization) = authorization else {
            let mut challenge = response_to(request, StatusCode::UNAUTHORIZED, Some("r"));
            challenge.headers.push(Header::new(
                HeaderName::WwwAuthenticate,
                Registrar::challenge_header(),
            ));
            return (seen, Some(challenge));
        };
        let params = auth_params(&authorization);
        let nc = u32::from_str_radix(&params["nc"], 16).unwrap();
        write!(seen, " nc={nc}").unwrap();
        let expected = Registrar::challenge().response(&Answer {
            username: "1001",
            password: self.password,
            method: "REGISTER",
            uri: &format!("sip:{DOMAIN}"),
            body: b"",
            cnonce: &params["cnonce"],
            nc,
        });
        let valid = params["username"] == "1001"
            && params["uri"] == format!("sip:{DOMAIN}")
            && params["response"] == expected;
        if !valid {
            return (
                seen,
                Some(response_to(request, StatusCode::FORBIDDEN, Some("r"))),
            );
        }
        let mut ok = response_to(request, StatusCode::OK, Some("r"));
        if expires > 0 {
            let contact = request.headers.contacts()[0].uri.to_string();
            let granted = expires.min(self.grant);
            ok.headers.push(Header::new(
                HeaderName::Contact,
                format!("<{contact}>;expires={granted}"),
            ));
        }
        (seen, Some(ok))
    }
}

fn header(request: &Request, name: HeaderName) -> String {
    String::from_utf8_lossy(request.headers.value(name).unwrap()).into_owned()
}

/// `name="value"` and `name=value` pairs after `Digest ` (no commas inside
/// values: enough for what the phone writes).
fn auth_params(value: &str) -> HashMap<String, String> {
    value
        .strip_prefix("Digest ")
        .unwrap()
        .split(", ")
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap();
            (name.to_owned(), value.trim_matches('"').to_owned())
        })
        .collect()
}

/// A phone and its registrars, with a transcript.
struct Sim {
    phone: Phone,
    registrars: Vec<Registrar>,
    start: Instant,
    now: Instant,
    transcript: String,
}

impl Sim {
    fn new(registrars: Vec<Registrar>, configure: impl FnOnce(&mut SipPhoneConfig)) -> Sim {
        let start = epoch();
        let addrs = registrars.iter().map(|r| r.addr).collect();
        let mut config = SipPhoneConfig::new("1001", PASSWORD, DOMAIN, addrs);
        config.listen = addr(PHONE);
        config.seed = 1;
        configure(&mut config);
        Sim {
            phone: Phone::new(&config, addr(PHONE), start),
            registrars,
            start,
            now: start,
            transcript: String::new(),
        }
    }

    fn at(&self) -> u128 {
        self.now.duration_since(self.start).as_millis()
    }

    /// Delivers every datagram at once, then moves time to the next
    /// deadline, until `until` (from the start).
    fn run_until(&mut self, until: Duration) {
        let end = self.start + until;
        for _ in 0..10_000 {
            while let Some((to, bytes)) = self.phone.poll_transmit() {
                let registrar = self
                    .registrars
                    .iter()
                    .find(|r| r.addr == to)
                    .unwrap_or_else(|| panic!("sent to {to}, no registrar there"));
                let Ok(Message::Request(request)) = parse_bytes(bytes) else {
                    panic!("the phone sends requests");
                };
                let (seen, answer) = registrar.answer(&request);
                let name = registrar.name;
                let at = self.at();
                writeln!(self.transcript, "{at:>6} phone>{name} {seen}").unwrap();
                if let Some(answer) = answer {
                    let granted = answer
                        .headers
                        .contacts()
                        .first()
                        .and_then(|c| {
                            let value = c.params.get("expires").flatten()?;
                            Some(format!(" expires={}", String::from_utf8_lossy(value)))
                        })
                        .unwrap_or_default();
                    let status = answer.status.as_u16();
                    writeln!(self.transcript, "{at:>6} {name}>phone {status}{granted}").unwrap();
                    self.phone.handle_datagram(self.now, to, answer.to_bytes());
                }
            }
            match self.phone.poll_timeout() {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    self.phone.handle_timeout(self.now);
                }
                _ => {
                    self.now = self.now.max(end);
                    return;
                }
            }
        }
        panic!("the simulation did not settle");
    }

    /// The transcript since the last check, compared line by line.
    #[track_caller]
    fn check(&mut self, expected: &str) {
        let expected: Vec<&str> = expected
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let actual: Vec<&str> = self.transcript.lines().map(str::trim).collect();
        assert_eq!(actual, expected, "\n{}", self.transcript);
        self.transcript.clear();
    }

    fn registrar_stats(&self, registrar: &str) -> RegistrarStats {
        self.phone
            .stats()
            .registrars
            .into_iter()
            .find(|r| r.registrar == addr(registrar))
            .unwrap()
    }
}

/// SPEC S8: the phone answers the challenge with Digest (checked by the
/// registrar with `Challenge::response`), reads the granted time from the
/// 200's Contact (10 s, less than the 60 it asked) and refreshes after half
/// of it, with the same credentials and the nonce count going up.
#[test]
fn a_phone_registers_with_digest_and_refreshes_at_half_the_granted_time() {
    let mut sim = Sim::new(vec![Registrar::new("a", addr(SITE_A), 10)], |_| {});
    sim.run_until(secs(12));
    sim.check(
        "
             0 phone>a REGISTER expires=60
             0 a>phone 401
             0 phone>a REGISTER expires=60 nc=1
             0 a>phone 200 expires=10
          5000 phone>a REGISTER expires=60 nc=2
          5000 a>phone 200 expires=10
         10000 phone>a REGISTER expires=60 nc=3
         10000 a>phone 200 expires=10
        ",
    );
    let stats = sim.registrar_stats(SITE_A);
    assert_eq!(stats.state, RegistrationStatus::Registered);
    assert_eq!(
        (stats.sent, stats.ok, stats.challenged, stats.failed),
        (4, 3, 1, 0)
    );
    assert_eq!(stats.granted_s, Some(10));
    assert!(sim.phone.stats().registering);
}

/// A wrong password: the registrar refuses the credentials (403), the phone
/// counts a failure and tries again later.
#[test]
fn refused_credentials_are_a_failure_retried_later() {
    let mut registrar = Registrar::new("a", addr(SITE_A), 10);
    registrar.password = "other";
    let mut sim = Sim::new(vec![registrar], |config| {
        config.retry = secs(4);
        config.retry_max = secs(4);
    });
    sim.run_until(secs(1));
    sim.check(
        "
             0 phone>a REGISTER expires=60
             0 a>phone 401
             0 phone>a REGISTER expires=60 nc=1
             0 a>phone 403
        ",
    );
    let stats = sim.registrar_stats(SITE_A);
    assert_eq!((stats.state, stats.failed), (RegistrationStatus::Failed, 1));
    assert!(stats.last_failure.unwrap().contains("403"));
    // 50–100 % of the 4 s ceiling later, it tries again (with the same
    // credentials, refused again).
    sim.run_until(Duration::from_millis(1_990));
    assert_eq!(sim.registrar_stats(SITE_A).sent, 2);
    sim.run_until(Duration::from_millis(4_010));
    let stats = sim.registrar_stats(SITE_A);
    assert_eq!((stats.sent, stats.failed), (3, 2), "{}", sim.transcript);
}

/// SPEC S8: stopped, the phone sends nothing more, so its binding expires at
/// the registrar; resumed, it registers at once (a new client: challenged
/// again).
#[test]
fn a_stopped_phone_sends_nothing_until_resumed() {
    let mut sim = Sim::new(vec![Registrar::new("a", addr(SITE_A), 10)], |_| {});
    sim.run_until(secs(1));
    sim.transcript.clear();
    sim.phone.stop_registering();
    sim.run_until(secs(100));
    sim.check("");
    assert_eq!(
        sim.registrar_stats(SITE_A).state,
        RegistrationStatus::Stopped
    );
    assert!(!sim.phone.stats().registering);
    sim.phone.resume(sim.now);
    sim.run_until(secs(101));
    sim.check(
        "
        100000 phone>a REGISTER expires=60
        100000 a>phone 401
        100000 phone>a REGISTER expires=60 nc=1
        100000 a>phone 200 expires=10
        ",
    );
    assert_eq!(
        sim.registrar_stats(SITE_A).state,
        RegistrationStatus::Registered
    );
}

/// Unregistering sends `Expires: 0` with the credentials, then nothing more;
/// from a stopped phone it is challenged first.
#[test]
fn unregister_removes_the_binding_and_stays_quiet() {
    let mut sim = Sim::new(vec![Registrar::new("a", addr(SITE_A), 10)], |_| {});
    sim.run_until(secs(1));
    sim.transcript.clear();
    sim.phone.unregister(sim.now);
    sim.run_until(secs(60));
    sim.check(
        "
          1000 phone>a REGISTER expires=0 nc=2
          1000 a>phone 200
        ",
    );
    let stats = sim.registrar_stats(SITE_A);
    assert_eq!(
        (stats.state, stats.unregistered),
        (RegistrationStatus::Unregistered, 1)
    );
    sim.phone.resume(sim.now);
    sim.run_until(secs(61));
    sim.transcript.clear();
    sim.phone.stop_registering();
    sim.phone.unregister(sim.now);
    sim.run_until(secs(120));
    sim.check(
        "
         61000 phone>a REGISTER expires=0
         61000 a>phone 401
         61000 phone>a REGISTER expires=0 nc=1
         61000 a>phone 200
        ",
    );
}

/// Leaving a registrar while unregistering there lets the unregistration
/// finish (through its challenge), then nothing more goes there.
#[test]
fn an_unregistration_under_way_outlives_a_switch() {
    let mut sim = Sim::new(vec![Registrar::new("a", addr(SITE_A), 10)], |_| {});
    sim.run_until(secs(1));
    sim.transcript.clear();
    sim.phone.stop_registering();
    sim.phone.unregister(sim.now);
    sim.phone.set_registrars(sim.now, &[]);
    sim.run_until(secs(60));
    sim.check(
        "
          1000 phone>a REGISTER expires=0
          1000 a>phone 401
          1000 phone>a REGISTER expires=0 nc=1
          1000 a>phone 200
        ",
    );
    let stats = sim.registrar_stats(SITE_A);
    assert_eq!(
        (stats.state, stats.unregistered),
        (RegistrationStatus::Dropped, 1)
    );
}

/// SPEC S8 dual registration: one binding at each site, refreshed apart.
/// SPEC S2: switching to one site leaves the other alone (its binding
/// lapses); switching back registers there at once.
#[test]
fn dual_registration_and_switching_sites() {
    let mut sim = Sim::new(
        vec![
            Registrar::new("a", addr(SITE_A), 10),
            Registrar::new("b", addr(SITE_B), 20),
        ],
        |_| {},
    );
    sim.run_until(secs(1));
    sim.check(
        "
             0 phone>a REGISTER expires=60
             0 a>phone 401
             0 phone>b REGISTER expires=60
             0 b>phone 401
             0 phone>a REGISTER expires=60 nc=1
             0 a>phone 200 expires=10
             0 phone>b REGISTER expires=60 nc=1
             0 b>phone 200 expires=20
        ",
    );
    sim.phone.set_registrars(sim.now, &[addr(SITE_B)]);
    sim.run_until(secs(12));
    sim.check(
        "
         10000 phone>b REGISTER expires=60 nc=2
         10000 b>phone 200 expires=20
        ",
    );
    let stats = sim.phone.stats();
    let states: Vec<_> = stats
        .registrars
        .iter()
        .map(|r| (r.registrar, r.state))
        .collect();
    assert_eq!(
        states,
        [
            (addr(SITE_B), RegistrationStatus::Registered),
            (addr(SITE_A), RegistrationStatus::Dropped),
        ]
    );
    sim.phone.set_registrars(sim.now, &[addr(SITE_A)]);
    sim.run_until(secs(13));
    sim.check(
        "
         12000 phone>a REGISTER expires=60
         12000 a>phone 401
         12000 phone>a REGISTER expires=60 nc=1
         12000 a>phone 200 expires=10
        ",
    );
    assert_eq!(sim.registrar_stats(SITE_A).ok, 2);
}

/// A silent registrar (a failed site, SPEC S2): the REGISTER is sent again
/// (timer E) until 64·T1, counted as a failure, and retried.
#[test]
fn a_silent_registrar_is_retried_after_the_transaction_times_out() {
    let mut registrar = Registrar::new("a", addr(SITE_A), 10);
    registrar.silent = true;
    let mut sim = Sim::new(vec![registrar], |config| {
        config.t1 = Duration::from_millis(50);
        config.t2 = Duration::from_millis(400);
    });
    sim.run_until(Duration::from_millis(3_100));
    let stats = sim.registrar_stats(SITE_A);
    assert_eq!((stats.sent, stats.failed), (1, 0), "{stats:?}");
    // At 50, 150, 350, 750 ms (T1 doubling), then every 400 ms (T2) to 2750.
    assert_eq!(stats.retransmissions, 9, "{}", sim.transcript);
    sim.run_until(Duration::from_millis(3_300));
    let stats = sim.registrar_stats(SITE_A);
    assert_eq!(stats.failed, 1);
    assert_eq!(stats.last_failure.as_deref(), Some("no answer to REGISTER"));
    sim.run_until(Duration::from_millis(4_300));
    assert_eq!(sim.registrar_stats(SITE_A).sent, 2);
}

/// Calls are answered by the trunk's core, as the answer mode says, while
/// registrations go on.
#[test]
fn a_busy_phone_refuses_calls_with_486() {
    let mut sim = Sim::new(Vec::new(), |config| config.answer = PhoneAnswer::Busy);
    let invite = format!(
        "INVITE sip:1001@{PHONE} SIP/2.0\r\nVia: SIP/2.0/UDP {SITE_A};branch=z9hG4bKx1\r\n\
         Max-Forwards: 70\r\nTo: <sip:1001@{DOMAIN}>\r\nFrom: <sip:gw@{SITE_A}>;tag=1\r\n\
         Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    sim.phone
        .handle_datagram(sim.now, addr(SITE_A), invite.into());
    let answers: Vec<u16> = std::iter::from_fn(|| sim.phone.poll_transmit())
        .map(|(to, bytes)| {
            assert_eq!(to, addr(SITE_A));
            match parse_bytes(bytes) {
                Ok(Message::Response(response)) => response.status.as_u16(),
                _ => panic!("a response"),
            }
        })
        .collect();
    assert_eq!(answers, [100, 486]);
    let stats = sim.phone.stats();
    assert_eq!((stats.calls.invites, stats.calls.rejected), (1, 1));
    assert_eq!(stats.invites[0].call_id, "c1");
    assert_eq!(stats.invites[0].from, addr(SITE_A));
    assert_eq!(stats.answer, PhoneAnswer::Busy);
}
