//! The site machine in simulated time, transcript style (SPEC S1, S3, S4,
//! S6, S7, S8): SIP in as text, SIP and events out, time moved by hand.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotsite_core::{Event, EventKind};
use hotsite_sip::digest::{Answer, Challenge};
use hotsite_sip::message::{parse, HeaderName, Message, Request, Response};

use super::*;
use crate::config::{AgentConfig, DnConfig, DrForward, SiteConfig};

const SITE: &str = "127.0.0.1:5070";
const PEER: &str = "127.0.0.1:6070";
const GATEWAY: &str = "127.0.0.1:7000";
const PASSWORD: &str = "phone-secret-1";

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn phone(dn: &str) -> SocketAddr {
    addr(&format!(
        "127.0.0.1:{}",
        8000 + dn.parse::<u16>().unwrap() % 1000
    ))
}

fn config(peer: bool, mode: DrForward) -> SiteConfig {
    let mut config = SiteConfig::new("a", SITE);
    if peer {
        config.dr_peer_trunk = Some(PEER.to_owned());
    }
    config.dr_forward = mode;
    config.oos_check = Duration::from_secs(1);
    config.oos_force = Duration::from_secs(3);
    config.peer_rise = 2;
    for dn in ["1001", "1002"] {
        config.dns.push(DnConfig {
            dn: dn.to_owned(),
            password: PASSWORD.into(),
            dr_forward: None,
        });
    }
    for id in ["alice", "bob"] {
        config.agents.push(AgentConfig { id: id.to_owned() });
    }
    config
}

struct Harness {
    site: Site,
    now: Instant,
    out: Vec<(SocketAddr, Message)>,
    events: Vec<Event>,
    seq: u32,
}

impl Harness {
    #[allow(clippy::disallowed_methods)] // test epoch: only offsets from it matter
    fn new(config: SiteConfig) -> Harness {
        let now = Instant::now();
        let mut site = Site::new(&config, now, 7).unwrap();
        site.handle_timeout(now);
        let mut h = Harness {
            site,
            now,
            out: Vec::new(),
            events: Vec::new(),
            seq: 0,
        };
        h.collect();
        h
    }

    fn collect(&mut self) {
        while let Some((to, bytes)) = self.site.poll_transmit() {
            self.out
                .push((to, parse(&bytes).expect("the site sends valid SIP")));
        }
        while let Some(event) = self.site.poll_event() {
            self.events.push(event);
        }
    }

    fn send(&mut self, from: SocketAddr, text: &str) {
        let text = text.replace("\r\n", "\n").replace('\n', "\r\n");
        self.site
            .handle_datagram(self.now, from, Bytes::from(text.into_bytes()));
        self.collect();
    }

    fn send_message(&mut self, from: SocketAddr, message: &Message) {
        let bytes = match message {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        };
        self.site.handle_datagram(self.now, from, bytes);
        self.collect();
    }

    /// Moves time forward, firing every deadline on the way.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        for _ in 0..100_000 {
            match self.site.poll_timeout() {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    self.site.handle_timeout(self.now);
                    self.collect();
                    // Every deadline handled moves on: a deadline still due
                    // after its timeout ran would make the driver spin.
                    assert!(
                        self.site.poll_timeout().is_none_or(|next| next > self.now),
                        "the site still wants to wake at {:?} after handling it",
                        self.site
                            .poll_timeout()
                            .map(|next| next.saturating_duration_since(self.now))
                    );
                }
                _ => break,
            }
        }
        self.now = until;
        self.site.handle_timeout(self.now);
        self.collect();
    }

    fn take_out(&mut self) -> Vec<(SocketAddr, Message)> {
        std::mem::take(&mut self.out)
    }

    fn take_events(&mut self) -> Vec<String> {
        std::mem::take(&mut self.events)
            .into_iter()
            .map(|e| match &e.kind {
                EventKind::Agent {
                    agent,
                    state,
                    reason,
                    ..
                } => {
                    format!("{} {agent} {state} {reason}", e.kind.name())
                }
                EventKind::DnService { dn, .. } => format!("{} {dn}", e.kind.name()),
                EventKind::SiteMode { mode, .. } => format!("site_mode {mode}"),
                EventKind::Health { to, .. } => format!("peer {to:?}"),
                EventKind::Rerouted { item, .. } => format!("forwarded {item}"),
                _ => e.to_string(),
            })
            .collect()
    }

    fn responses_to(&mut self, to: SocketAddr) -> Vec<Response> {
        let (mine, rest): (Vec<_>, Vec<_>) =
            self.take_out().into_iter().partition(|(a, _)| *a == to);
        self.out = rest;
        mine.into_iter()
            .filter_map(|(_, m)| match m {
                Message::Response(r) => Some(r),
                Message::Request(_) => None,
            })
            .collect()
    }

    fn requests_to(&mut self, to: SocketAddr) -> Vec<Request> {
        let (mine, rest): (Vec<_>, Vec<_>) = self
            .take_out()
            .into_iter()
            .partition(|(a, m)| *a == to && matches!(m, Message::Request(_)));
        self.out = rest;
        mine.into_iter()
            .filter_map(|(_, m)| match m {
                Message::Request(r) => Some(r),
                Message::Response(_) => None,
            })
            .collect()
    }

    fn register_with(&mut self, dn: &str, expires: u32, password: &str) -> Response {
        self.seq += 1;
        let from = phone(dn);
        let build = |seq: u32, auth: Option<&str>| {
            format!(
                "REGISTER sip:{SITE} SIP/2.0\n\
                 Via: SIP/2.0/UDP {from};branch=z9hG4bKreg{dn}x{seq};rport\n\
                 Max-Forwards: 70\n\
                 From: <sip:{dn}@hotsite>;tag=ph{dn}\n\
                 To: <sip:{dn}@hotsite>\n\
                 Call-ID: reg-{dn}@{from}\n\
                 CSeq: {seq} REGISTER\n\
                 Contact: <sip:{dn}@{from}>\n\
                 Expires: {expires}\n\
                 {}Content-Length: 0\n\n",
                auth.map(|a| format!("Authorization: {a}\n"))
                    .unwrap_or_default()
            )
        };
        let seq = self.seq * 2;
        self.send(from, &build(seq, None));
        let challenge = self.responses_to(from).pop().expect("an answer");
        if challenge.status.as_u16() != 401 {
            return challenge;
        }
        let header = challenge
            .headers
            .value(HeaderName::WwwAuthenticate)
            .expect("a challenge");
        let challenge = Challenge::parse(header).expect("our challenge parses");
        let uri = format!("sip:{SITE}");
        let authorization = challenge.answer(&Answer {
            username: dn,
            password,
            method: "REGISTER",
            uri: &uri,
            body: b"",
            cnonce: "c0ffee",
            nc: 1,
        });
        self.send(from, &build(seq + 1, Some(&authorization)));
        self.responses_to(from).pop().expect("an answer")
    }

    fn register(&mut self, dn: &str, expires: u32) -> Response {
        self.register_with(dn, expires, PASSWORD)
    }

    /// Answers every pending probe to the peer with `status`.
    fn peer_answers(&mut self, status: u16) {
        let peer = addr(PEER);
        for probe in self.requests_to(peer) {
            if probe.method != hotsite_sip::message::Method::Options {
                continue;
            }
            let response = hotsite_sip::message::response_to(
                &probe,
                hotsite_sip::message::StatusCode::new(status).unwrap(),
                Some("p"),
            );
            self.send_message(peer, &Message::Response(response));
        }
    }

    /// Probes answered until the site is peered.
    fn peer_up(&mut self) {
        for _ in 0..5 {
            self.peer_answers(200);
            if self.site.mode() == Mode::Peered {
                return;
            }
            self.advance(Duration::from_secs(1));
        }
        panic!("never peered");
    }

    fn invite(&mut self, dn: &str, call: &str, extra: &str) {
        let gw = addr(GATEWAY);
        self.send(
            gw,
            &format!(
                "INVITE sip:{dn}@{SITE} SIP/2.0\n\
                 Via: SIP/2.0/UDP {GATEWAY};branch=z9hG4bK{call}\n\
                 Max-Forwards: 70\n\
                 From: <sip:caller@{GATEWAY}>;tag=gw{call}\n\
                 To: <sip:{dn}@{SITE}>\n\
                 Call-ID: {call}\n\
                 CSeq: 1 INVITE\n\
                 Contact: <sip:caller@{GATEWAY}>\n\
                 {extra}Content-Length: 0\n\n"
            ),
        );
    }

    fn status_to_gateway(&mut self) -> Vec<u16> {
        self.responses_to(addr(GATEWAY))
            .iter()
            .map(|r| r.status.as_u16())
            .collect()
    }

    /// The phone answers the INVITE it got: 180 then 200.
    fn phone_answers(&mut self, dn: &str) -> Request {
        let invite = self
            .requests_to(phone(dn))
            .into_iter()
            .find(|r| r.method == hotsite_sip::message::Method::Invite)
            .expect("an INVITE at the phone");
        for status in [180, 200] {
            let mut response = hotsite_sip::message::response_to(
                &invite,
                hotsite_sip::message::StatusCode::new(status).unwrap(),
                Some("ph"),
            );
            response.headers.push(hotsite_sip::message::Header::new(
                HeaderName::Contact,
                format!("<sip:{dn}@{}>", phone(dn)),
            ));
            self.send_message(phone(dn), &Message::Response(response));
        }
        invite
    }

    /// The gateway hangs up an answered call through the site.
    fn bye(&mut self, dn: &str, call: &str) {
        let gw = addr(GATEWAY);
        self.send(
            gw,
            &format!(
                "BYE sip:{dn}@{} SIP/2.0\n\
                 Via: SIP/2.0/UDP {GATEWAY};branch=z9hG4bKbye{call}\n\
                 Route: <sip:{SITE};lr>\n\
                 Max-Forwards: 70\n\
                 From: <sip:caller@{GATEWAY}>;tag=gw{call}\n\
                 To: <sip:{dn}@{SITE}>;tag=ph\n\
                 Call-ID: {call}\n\
                 CSeq: 2 BYE\n\
                 Content-Length: 0\n\n",
                phone(dn)
            ),
        );
    }
}

/// SPEC S8: REGISTER is challenged, then bound; the binding's expiry takes
/// the DN out of service, a new REGISTER brings it back; each is an event.
#[test]
fn registration_challenge_binding_expiry_and_return() {
    let mut h = Harness::new(config(false, DrForward::Off));
    let ok = h.register("1001", 60);
    assert_eq!(ok.status.as_u16(), 200);
    let contact =
        String::from_utf8_lossy(ok.headers.value(HeaderName::Contact).unwrap()).into_owned();
    assert!(contact.contains("expires=60"), "{contact}");
    assert_eq!(h.take_events(), ["dn_back_in_service 1001"]);
    assert!(h.site.registrar.in_service("1001"));
    h.advance(Duration::from_secs(59));
    assert!(h.take_events().is_empty());
    h.advance(Duration::from_secs(2));
    assert_eq!(h.take_events(), ["dn_out_of_service 1001"]);
    assert_eq!(h.register("1001", 60).status.as_u16(), 200);
    assert_eq!(h.take_events(), ["dn_back_in_service 1001"]);
}

/// SPEC S8, bad input: a wrong password, an unknown DN, a too short expiry,
/// and an un-REGISTER.
#[test]
fn registrar_refusals_and_unregister() {
    let mut h = Harness::new(config(false, DrForward::Off));
    assert_eq!(
        h.register_with("1001", 60, "wrong-password")
            .status
            .as_u16(),
        403
    );
    assert!(!h.site.registrar.in_service("1001"));
    assert_eq!(h.register("1999", 60).status.as_u16(), 404);
    let brief = h.register("1001", 2);
    assert_eq!(brief.status.as_u16(), 423);
    assert_eq!(
        brief
            .headers
            .value(HeaderName::MinExpires)
            .unwrap()
            .as_ref(),
        b"10"
    );
    assert!(h.take_events().is_empty());
    assert_eq!(h.register("1001", 60).status.as_u16(), 200);
    assert_eq!(h.register("1001", 0).status.as_u16(), 200);
    assert_eq!(
        h.take_events(),
        ["dn_back_in_service 1001", "dn_out_of_service 1001"]
    );
    // Garbage is dropped without a crash or an answer.
    h.send(phone("1001"), "\u{1}\u{2} not SIP at all");
    assert!(h.take_out().is_empty());
}

/// SPEC S1, S6: a call for a DN whose phone is registered here goes to the
/// phone (Request-URI = its contact, Record-Route us); the agent is busy
/// until the BYE, which is routed through the site.
#[test]
fn a_local_call_makes_the_agent_busy_until_the_bye() {
    let mut h = Harness::new(config(false, DrForward::Off));
    h.register("1001", 600);
    h.site.login(h.now, "alice", "1001").unwrap();
    h.site.set_ready(h.now, "alice", true).unwrap();
    h.collect();
    h.take_events();
    h.invite("1001", "call-1", "");
    assert_eq!(h.status_to_gateway(), [100]);
    let invite = h.phone_answers("1001");
    assert_eq!(
        invite.uri.to_string(),
        format!("sip:1001@{}", phone("1001"))
    );
    let rr = String::from_utf8_lossy(invite.headers.value(HeaderName::RecordRoute).unwrap())
        .into_owned();
    assert_eq!(rr, format!("<sip:{SITE};lr>"));
    assert_eq!(h.status_to_gateway(), [180, 200]);
    assert_eq!(h.take_events(), ["agent_state alice busy call answered"]);
    h.bye("1001", "call-1");
    let bye = h.requests_to(phone("1001"));
    assert_eq!(bye.len(), 1, "the BYE goes on to the phone");
    assert_eq!(h.take_events(), ["agent_state alice ready call ended"]);
}

/// SPEC S6 with S1: `no-agent` forwards to the peer when no agent is logged
/// in on the DN here, carrying the header that stops it coming back.
#[test]
fn no_agent_forwards_to_the_peer_when_peered() {
    let mut h = Harness::new(config(true, DrForward::NoAgent));
    h.register("1001", 600);
    h.peer_up();
    h.take_events();
    h.invite("1001", "call-2", "");
    let forwarded = h.requests_to(addr(PEER));
    let invite = forwarded
        .iter()
        .find(|r| r.method == hotsite_sip::message::Method::Invite)
        .expect("forwarded to the peer");
    assert_eq!(
        invite
            .headers
            .get_named(FORWARDED_HEADER)
            .unwrap()
            .value()
            .as_ref(),
        b"a"
    );
    assert_eq!(invite.uri.to_string(), format!("sip:1001@{SITE}"));
    assert_eq!(h.take_events(), ["forwarded call-2"]);
    // With an agent here, the same DN is delivered locally.
    h.site.login(h.now, "alice", "1001").unwrap();
    h.invite("1001", "call-3", "");
    assert!(h
        .requests_to(addr(PEER))
        .iter()
        .all(|r| r.method != hotsite_sip::message::Method::Invite));
    assert_eq!(h.requests_to(phone("1001")).len(), 1);
}

/// SPEC S1: a call the peer forwarded is never sent back: with no phone
/// here either it gets 480 with a Warning, not a loop.
#[test]
fn a_forwarded_call_is_not_forwarded_back() {
    let mut h = Harness::new(config(true, DrForward::Oos));
    h.peer_up();
    h.invite("1001", "call-4", &format!("{FORWARDED_HEADER}: b\n"));
    let answers = h.responses_to(addr(GATEWAY));
    let last = answers.last().unwrap();
    assert_eq!(last.status.as_u16(), 480);
    assert!(last.headers.value(HeaderName::Warning).is_some());
    assert!(h
        .requests_to(addr(PEER))
        .iter()
        .all(|r| r.method != hotsite_sip::message::Method::Invite));
}

/// SPEC S4, S3: the peer silent for oos_force → single-site mode (an event
/// each), no forwarding; answering again for peer_rise probes → peered.
#[test]
fn peer_loss_and_return_switch_the_mode() {
    let mut h = Harness::new(config(true, DrForward::Oos));
    assert_eq!(
        h.site.mode(),
        Mode::SingleSite,
        "not peered before the peer answers"
    );
    h.peer_up();
    assert_eq!(h.take_events(), ["peer Up", "site_mode peered"]);
    let silent_from = h.now;
    // Silence: probes go unanswered.
    let mut detected = None;
    for _ in 0..100 {
        h.advance(Duration::from_millis(100));
        h.take_out();
        if h.site.mode() == Mode::SingleSite {
            detected = Some(h.now - silent_from);
            break;
        }
    }
    let detected = detected.expect("the peer was never declared out of service");
    assert!(
        detected <= Duration::from_secs(3) + Duration::from_secs(1),
        "detected after {detected:?}: more than oos_force + oos_check"
    );
    assert_eq!(h.take_events(), ["peer Down", "site_mode single_site"]);
    // No forwarding in single-site mode: the unregistered DN gets 480 here.
    h.invite("1002", "call-5", "");
    assert_eq!(h.status_to_gateway().last(), Some(&480));
    h.peer_up();
    assert_eq!(h.take_events(), ["peer Up", "site_mode peered"]);
}

/// SPEC S7 via S4: a peer that answers its probes with 503 (it is
/// draining) is out of service for forwarding.
#[test]
fn a_peer_answering_503_is_not_forwarded_to() {
    let mut h = Harness::new(config(true, DrForward::Oos));
    h.peer_up();
    h.advance(Duration::from_secs(1));
    h.peer_answers(503);
    assert_eq!(h.site.mode(), Mode::SingleSite);
}

/// SPEC S8 with D6, S3: in peered mode the agent of a DN that goes out of
/// service is logged out with dr-force_logout; in single-site mode never.
#[test]
fn forced_logout_only_when_peered() {
    let mut h = Harness::new(config(true, DrForward::Off));
    h.peer_up();
    h.register("1001", 10);
    h.site.login(h.now, "alice", "1001").unwrap();
    h.collect();
    h.take_events();
    // Keep the peer answering while the phone's registration runs out.
    for _ in 0..11 {
        h.advance(Duration::from_secs(1));
        h.peer_answers(200);
    }
    assert_eq!(
        h.take_events(),
        [
            "dn_out_of_service 1001",
            "agent_logout alice logged_out dr-force_logout"
        ]
    );

    let mut h = Harness::new(config(false, DrForward::Off));
    h.register("1001", 10);
    h.site.login(h.now, "alice", "1001").unwrap();
    h.collect();
    h.take_events();
    h.advance(Duration::from_secs(11));
    assert_eq!(h.take_events(), ["dn_out_of_service 1001"]);
    assert_eq!(
        h.site.agent(h.now, "alice").unwrap().dn.as_deref(),
        Some("1001")
    );
}

/// SPEC S3: while peered an agent logs in only where the phone is
/// registered; in single-site mode whatever the DN's state.
#[test]
fn login_rules_by_mode() {
    let mut h = Harness::new(config(true, DrForward::Off));
    h.peer_up();
    assert_eq!(
        h.site.login(h.now, "alice", "1001"),
        Err(AgentError::DnOutOfService("1001".into()))
    );
    h.register("1001", 600);
    h.site.login(h.now, "alice", "1001").unwrap();
    assert!(matches!(
        h.site.login(h.now, "bob", "1001"),
        Err(AgentError::DnTaken { .. })
    ));
    assert!(matches!(
        h.site.login(h.now, "carol", "1002"),
        Err(AgentError::UnknownAgent(_))
    ));
    assert!(matches!(
        h.site.login(h.now, "bob", "1999"),
        Err(AgentError::UnknownDn(_))
    ));
    let mut single = Harness::new(config(false, DrForward::Off));
    single.site.login(single.now, "alice", "1001").unwrap();
}

/// SPEC S7: drain → new calls 603, every agent NotReady, idle agents out at
/// once, the busy one when its call ends; drained when no call is left.
#[test]
fn drain_with_idle_and_busy_agents() {
    let mut h = Harness::new(config(false, DrForward::Off));
    h.register("1001", 600);
    h.register("1002", 600);
    h.site.login(h.now, "alice", "1001").unwrap();
    h.site.login(h.now, "bob", "1002").unwrap();
    h.site.set_ready(h.now, "alice", true).unwrap();
    h.site.set_ready(h.now, "bob", true).unwrap();
    h.invite("1001", "call-6", "");
    h.phone_answers("1001");
    h.take_out();
    h.take_events();
    h.site.drain(h.now);
    h.collect();
    // Alice is busy: NotReady changes nothing she shows, her logout waits.
    assert_eq!(
        h.take_events(),
        [
            "site_mode draining",
            "agent_state bob not_ready set not ready",
            "agent_logout bob logged_out graceful_shutdown_logout",
        ]
    );
    assert!(!h.site.drained(h.now), "a call is still up");
    h.invite("1002", "call-7", "");
    assert_eq!(h.status_to_gateway().last(), Some(&603));
    h.bye("1001", "call-6");
    assert_eq!(
        h.take_events(),
        ["agent_logout alice logged_out graceful_shutdown_logout"]
    );
    h.advance(Duration::from_secs(40));
    assert!(h.site.drained(h.now));
}

/// SPEC S7: with a 3xx reject code the caller is redirected to the peer.
#[test]
fn drain_redirects_to_the_peer_with_302() {
    let mut config = config(true, DrForward::Off);
    config.shutdown_sip_reject_code = 302;
    let mut h = Harness::new(config);
    h.site.drain(h.now);
    h.invite("1001", "call-8", "");
    let answers = h.responses_to(addr(GATEWAY));
    let last = answers.last().unwrap();
    assert_eq!(last.status.as_u16(), 302);
    let contact =
        String::from_utf8_lossy(last.headers.value(HeaderName::Contact).unwrap()).into_owned();
    assert_eq!(contact, format!("<sip:1001@{PEER}>"));
}

/// SPEC S1: a forward the peer does not answer at all ends in 408 with a
/// Warning after invite_timeout, not a retry loop.
#[test]
fn an_unanswered_forward_gets_a_clear_final_answer() {
    let mut h = Harness::new(config(true, DrForward::Oos));
    h.peer_up();
    h.invite("1002", "call-9", "");
    h.take_out();
    h.advance(Duration::from_secs(3));
    let answers = h.responses_to(addr(GATEWAY));
    let last = answers.last().expect("a final answer");
    assert_eq!(last.status.as_u16(), 408);
    let warning =
        String::from_utf8_lossy(last.headers.value(HeaderName::Warning).unwrap()).into_owned();
    assert!(warning.contains("peer site did not answer"), "{warning}");
}

/// Bad input: an INVITE for an unknown DN gets 404; one for a DN with no
/// phone gets 480; neither leaves a call behind once ACKed.
#[test]
fn unknown_and_unregistered_dns() {
    let mut h = Harness::new(config(false, DrForward::Off));
    h.invite("4444", "call-10", "");
    assert_eq!(h.status_to_gateway(), [100, 404]);
    h.invite("1001", "call-11", "");
    assert_eq!(h.status_to_gateway(), [100, 480]);
    h.advance(Duration::from_secs(40));
    assert_eq!(h.site.status(h.now).active_calls, 0);
}

/// SPEC S7 with after-call work: an agent wrapping up is not on a call, so a
/// drain logs them out at once; the wrap-up ends by itself otherwise.
#[test]
fn drain_logs_out_an_agent_in_after_call_work_at_once() {
    let mut config = config(false, DrForward::Off);
    config.wrap_up = Duration::from_secs(30);
    let mut h = Harness::new(config);
    h.register("1001", 600);
    h.site.login(h.now, "alice", "1001").unwrap();
    h.site.set_ready(h.now, "alice", true).unwrap();
    h.invite("1001", "call-12", "");
    h.phone_answers("1001");
    h.bye("1001", "call-12");
    h.collect();
    assert_eq!(
        h.site.agent(h.now, "alice").unwrap().state,
        crate::agents::AgentState::AfterCallWork
    );
    h.take_events();
    h.site.drain(h.now);
    h.collect();
    assert_eq!(
        h.take_events(),
        [
            "site_mode draining",
            "agent_logout alice logged_out graceful_shutdown_logout",
        ]
    );

    // Without a drain, the wrap-up ends after wrap_up and the agent is Ready.
    let mut config = crate::config::SiteConfig::new("a", SITE);
    config.wrap_up = Duration::from_secs(30);
    config.dns.push(DnConfig {
        dn: "1001".into(),
        password: PASSWORD.into(),
        dr_forward: None,
    });
    config.agents.push(AgentConfig { id: "alice".into() });
    let mut h = Harness::new(config);
    h.register("1001", 600);
    h.site.login(h.now, "alice", "1001").unwrap();
    h.site.set_ready(h.now, "alice", true).unwrap();
    h.invite("1001", "call-13", "");
    h.phone_answers("1001");
    h.bye("1001", "call-13");
    h.collect();
    h.take_events();
    h.advance(Duration::from_secs(31));
    assert_eq!(h.take_events(), ["agent_state alice ready wrap-up over"]);
}

/// Bad input (SPEC S8): REGISTERs the registrar cannot act on get a 4xx that
/// says why, and store nothing.
#[test]
fn malformed_registers_are_refused_clearly() {
    let mut h = Harness::new(config(false, DrForward::Off));
    let from = phone("1001");
    let register = |to: &str, extra: &str| {
        format!(
            "REGISTER sip:{SITE} SIP/2.0\n\
             Via: SIP/2.0/UDP {from};branch=z9hG4bKbad{}\n\
             Max-Forwards: 70\n\
             From: <sip:1001@hotsite>;tag=x\n\
             To: {to}\n\
             Call-ID: bad-{}@{from}\n\
             CSeq: 1 REGISTER\n\
             {extra}Content-Length: 0\n\n",
            to.len() + extra.len(),
            to.len() + extra.len()
        )
    };
    // No user part in To: not a DN.
    h.send(
        from,
        &register("<sip:hotsite>", "Contact: <sip:1001@127.0.0.1:9>\n"),
    );
    let answer = h.responses_to(from).pop().unwrap();
    assert_eq!(answer.status.as_u16(), 400);
    assert!(answer.headers.value(HeaderName::Warning).is_some());
    // An Authorization that is not Digest.
    h.send(
        from,
        &register(
            "<sip:1001@hotsite>",
            "Contact: <sip:1001@127.0.0.1:9>\nAuthorization: Basic dXNlcjpwYXNz\n",
        ),
    );
    assert_eq!(h.responses_to(from).pop().unwrap().status.as_u16(), 400);
    // A forged nonce.
    h.send(
        from,
        &register(
            "<sip:1001@hotsite>",
            "Contact: <sip:1001@127.0.0.1:9>\nAuthorization: Digest username=\"1001\", realm=\"hotsite\", nonce=\"00\", uri=\"sip:x\", response=\"00000000000000000000000000000000\"\n",
        ),
    );
    assert_eq!(
        h.responses_to(from).pop().unwrap().status.as_u16(),
        401,
        "challenged again"
    );
    assert!(!h.site.registrar.in_service("1001"));
    assert_eq!(h.site.registrar.stats().registered, 0);
}

/// A MESSAGE as the peer sends claims (`claims.rs`).
fn claims_from(h: &mut Harness, from: SocketAddr, call: &str, content_type: &str, body: &str) {
    let text = format!(
        "MESSAGE sip:claims@{SITE} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK{call};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:b@{from}>;tag=b1\r\n\
         To: <sip:claims@{SITE}>\r\n\
         Call-ID: {call}\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    h.site
        .handle_datagram(h.now, from, Bytes::from(text.into_bytes()));
    h.collect();
}

fn claim_body(kind: &str, agent: &str, since_ms: i64) -> String {
    format!(
        r#"{{"v":1,"site":"b","kind":"{kind}","claims":[{{"agent":"{agent}","dn":"1001","since_ms":{since_ms}}}]}}"#
    )
}

/// The peer claims `agent` afresh in a MESSAGE with Call-ID `call`; the
/// statuses the site answered.
fn fresh_claim_from_peer(h: &mut Harness, call: &str, agent: &str) -> Vec<u16> {
    let peer = addr(PEER);
    claims_from(
        h,
        peer,
        call,
        crate::claims::CONTENT_TYPE,
        &claim_body("fresh", agent, 0),
    );
    h.responses_to(peer)
        .iter()
        .map(|r| r.status.as_u16())
        .collect()
}

/// `agent` logs in on `dn`, its claim answered, the events taken.
fn log_in_claimed(h: &mut Harness, agent: &str, dn: &str) {
    h.site.login(h.now, agent, dn).unwrap();
    h.collect();
    claims_sent(h, true);
    h.take_events();
}

/// The claims the site sent to the peer, answered 200 unless `answer` is
/// false.
fn claims_sent(h: &mut Harness, answer: bool) -> Vec<crate::claims::ClaimBatch> {
    let peer = addr(PEER);
    let (claims, rest): (Vec<_>, Vec<_>) = h.take_out().into_iter().partition(|(to, m)| {
        *to == peer && matches!(m, Message::Request(r) if r.method.as_str() == "MESSAGE")
    });
    h.out = rest;
    let mut batches = Vec::new();
    for (_, message) in claims {
        let Message::Request(request) = message else {
            continue;
        };
        batches.push(crate::claims::ClaimBatch::parse(&request.body).unwrap());
        if answer {
            let ok = hotsite_sip::message::response_to(
                &request,
                hotsite_sip::message::StatusCode::OK,
                Some("p"),
            );
            h.send_message(peer, &Message::Response(ok));
        }
    }
    batches
}

/// SPEC S1 (one site at a time): while peered, a login here is claimed at
/// the peer; in single-site mode it is not (nothing may depend on the peer,
/// S3), and the claim is repeated until answered.
#[test]
fn a_login_while_peered_is_claimed_at_the_peer() {
    let mut h = Harness::new(config(true, DrForward::Off));
    h.peer_up();
    assert!(claims_sent(&mut h, true).is_empty(), "nobody to claim yet");
    h.register("1001", 600);
    h.site.login(h.now, "alice", "1001").unwrap();
    h.collect();
    let sent = claims_sent(&mut h, false);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, crate::claims::ClaimKind::Fresh);
    assert_eq!(sent[0].site, "a");
    assert_eq!(sent[0].claims[0].agent, "alice");
    // Unanswered: sent again after T1; answered: no more.
    h.advance(Duration::from_millis(500));
    let again = claims_sent(&mut h, true);
    h.peer_answers(200);
    assert_eq!(again, sent);
    for _ in 0..5 {
        h.advance(Duration::from_secs(1));
        assert!(claims_sent(&mut h, true).is_empty());
        h.peer_answers(200);
    }
    assert_eq!(h.site.mode(), Mode::Peered);
    assert_eq!(h.site.status(h.now).claims.answered, 1);
    // Logging in again on the same DN is no new login: no claim.
    h.site.login(h.now, "alice", "1001").unwrap();
    h.collect();
    assert!(claims_sent(&mut h, true).is_empty());

    let mut single = Harness::new(config(true, DrForward::Off));
    single.site.login(single.now, "alice", "1001").unwrap();
    single.collect();
    assert!(claims_sent(&mut single, true).is_empty());
}

/// SPEC S1: the peer's fresh claim logs the agent out here with
/// `peer_login`; a retransmission of it, arriving after the agent logged in
/// here again, is answered but not applied again.
#[test]
fn a_claim_from_the_peer_logs_the_agent_out_here() {
    let mut h = Harness::new(config(true, DrForward::Off));
    h.peer_up();
    h.register("1001", 600);
    log_in_claimed(&mut h, "alice", "1001");
    assert_eq!(fresh_claim_from_peer(&mut h, "claim-1", "alice"), [200]);
    assert_eq!(
        h.take_events(),
        ["agent_logout alice logged_out peer_login"]
    );
    assert_eq!(h.site.agent(h.now, "alice").unwrap().dn, None);

    log_in_claimed(&mut h, "alice", "1001");
    assert_eq!(fresh_claim_from_peer(&mut h, "claim-1", "alice"), [200]);
    assert!(
        h.take_events().is_empty(),
        "a retransmission is not applied twice"
    );
    assert_eq!(
        h.site.agent(h.now, "alice").unwrap().dn.as_deref(),
        Some("1001")
    );
    // A claim for an agent not logged in here changes nothing.
    fresh_claim_from_peer(&mut h, "claim-2", "bob");
    assert!(h.take_events().is_empty());
    let status = h.site.status(h.now).claims;
    assert_eq!((status.received, status.yielded), (2, 1));
}

/// SPEC S3 then S4: in single-site mode both sites may let an agent in;
/// when peering resumes each claims all its logins, and the newer login
/// keeps the agent.
#[test]
fn peering_resumed_resyncs_and_the_newer_login_wins() {
    let mut h = Harness::new(config(true, DrForward::Off));
    // Single-site (the peer not heard yet): logins at will, no claims.
    h.site.login(h.now, "alice", "1001").unwrap();
    h.advance(Duration::from_secs(10));
    h.site.login(h.now, "bob", "1002").unwrap();
    h.collect();
    assert!(claims_sent(&mut h, true).is_empty());
    let alice_ms = 0;
    let bob_ms = 10_000;
    h.take_events();
    h.peer_up();
    let sync = claims_sent(&mut h, true);
    assert_eq!(sync.len(), 1);
    assert_eq!(sync[0].kind, crate::claims::ClaimKind::Sync);
    let mine: Vec<(String, i64)> = sync[0]
        .claims
        .iter()
        .map(|c| (c.agent.clone(), c.since_ms))
        .collect();
    assert_eq!(
        mine,
        [("alice".to_owned(), alice_ms), ("bob".to_owned(), bob_ms)]
    );
    h.take_events();
    // The peer's sync: alice logged in there later (ours is older: we
    // yield), bob earlier (ours is newer: we keep him).
    let peer = addr(PEER);
    let body = format!(
        r#"{{"v":1,"site":"b","kind":"sync","claims":[
            {{"agent":"alice","dn":"1001","since_ms":{}}},
            {{"agent":"bob","dn":"1002","since_ms":{}}}]}}"#,
        alice_ms + 5_000,
        bob_ms - 5_000
    );
    claims_from(&mut h, peer, "sync-1", crate::claims::CONTENT_TYPE, &body);
    assert_eq!(
        h.take_events(),
        ["agent_logout alice logged_out peer_login"]
    );
    assert_eq!(
        h.site.agent(h.now, "bob").unwrap().dn.as_deref(),
        Some("1002")
    );
    // Peer lost and back: another resync, of bob only.
    h.advance(Duration::from_secs(5));
    h.take_out();
    assert_eq!(h.site.mode(), Mode::SingleSite);
    h.peer_up();
    let sync = claims_sent(&mut h, true);
    assert_eq!(sync.len(), 1);
    assert_eq!(sync[0].claims.len(), 1);
    assert_eq!(sync[0].claims[0].agent, "bob");
}

/// Bad claims: from anyone but the peer trunk, of another media type, or
/// not a claim batch → a clear SIP refusal, nobody logged out.
#[test]
fn bad_claims_are_refused_and_change_nothing() {
    let mut h = Harness::new(config(true, DrForward::Off));
    h.peer_up();
    h.register("1001", 600);
    log_in_claimed(&mut h, "alice", "1001");
    let stranger = addr("127.0.0.1:9999");
    let peer = addr(PEER);
    let body = claim_body("fresh", "alice", 0);
    let cases: [(SocketAddr, &str, &str, u16, &str); 4] = [
        (
            stranger,
            crate::claims::CONTENT_TYPE,
            &body,
            403,
            "peer trunk",
        ),
        (peer, "text/plain", &body, 415, "Content-Type"),
        (
            peer,
            crate::claims::CONTENT_TYPE,
            "{\"v\":1",
            400,
            "claims body",
        ),
        (
            peer,
            crate::claims::CONTENT_TYPE,
            r#"{"v":9,"site":"b","kind":"fresh","claims":[]}"#,
            400,
            "version 9",
        ),
    ];
    for (i, (from, content_type, body, status, why)) in cases.into_iter().enumerate() {
        claims_from(&mut h, from, &format!("bad-{i}"), content_type, body);
        let answers = h.responses_to(from);
        assert_eq!(answers.len(), 1, "case {i}");
        assert_eq!(answers[0].status.as_u16(), status, "case {i}");
        let warning = answers[0].headers.value(HeaderName::Warning).unwrap();
        assert!(
            String::from_utf8_lossy(warning).contains(why),
            "case {i}: {warning:?}"
        );
    }
    assert!(h.take_events().is_empty());
    assert_eq!(
        h.site.agent(h.now, "alice").unwrap().dn.as_deref(),
        Some("1001")
    );
    // Without a peer trunk there is no one to take claims from.
    let mut single = Harness::new(config(false, DrForward::Off));
    claims_from(&mut single, peer, "c", crate::claims::CONTENT_TYPE, &body);
    assert_eq!(single.responses_to(peer)[0].status.as_u16(), 403);
}

/// The desktops' statistics (SPEC D5) and DN state (SPEC S8) read from the
/// machine: agents logged in and Ready, a call waiting while it rings, then
/// active once answered.
#[test]
fn stats_and_dn_state_for_desktops() {
    let mut h = Harness::new(config(false, DrForward::Off));
    assert_eq!(h.site.dn_in_service("1001"), Some(false));
    assert_eq!(h.site.dn_in_service("9999"), None);
    h.register("1001", 600);
    assert_eq!(h.site.dn_in_service("1001"), Some(true));
    h.site.login(h.now, "alice", "1001").unwrap();
    assert_eq!(
        h.site.stats(h.now),
        SiteStats {
            agents_logged_in: 1,
            ..SiteStats::default()
        }
    );
    h.site.set_ready(h.now, "alice", true).unwrap();
    h.collect();
    h.invite("1001", "call-1", "");
    assert_eq!(
        h.site.stats(h.now),
        SiteStats {
            agents_logged_in: 1,
            agents_ready: 1,
            calls_waiting: 1,
            calls_active: 0,
        }
    );
    h.phone_answers("1001");
    assert_eq!(
        h.site.stats(h.now),
        SiteStats {
            agents_logged_in: 1,
            agents_ready: 0,
            calls_waiting: 0,
            calls_active: 1,
        }
    );
}

/// SPEC S1: a fresh claim whose first copy was lost is not retransmitted
/// after its agent logged out here (the agent moved to the peer, whose own
/// claim logged it out here): a late copy would log out the newer login.
#[test]
fn a_fresh_claim_is_dropped_when_its_agent_leaves() {
    let mut h = Harness::new(config(true, DrForward::Off));
    h.peer_up();
    h.register("1001", 600);
    h.site.login(h.now, "alice", "1001").unwrap();
    h.collect();
    let lost = claims_sent(&mut h, false);
    assert_eq!(lost.len(), 1, "the first copy, lost");
    // The peer's own fresh claim: alice logged in there since.
    claims_from(
        &mut h,
        addr(PEER),
        "peer-claim",
        crate::claims::CONTENT_TYPE,
        &claim_body("fresh", "alice", 1),
    );
    assert_eq!(h.site.agent(h.now, "alice").unwrap().dn, None);
    for _ in 0..40 {
        h.advance(Duration::from_secs(1));
        assert!(claims_sent(&mut h, false).is_empty(), "no late copy");
        h.peer_answers(200);
    }
    assert_eq!(h.site.status(h.now).claims.abandoned, 1);
}

/// SPEC S1: a claim for an agent on a call here logs it out when the call
/// ends, not in the middle of it.
#[test]
fn a_claimed_agent_on_a_call_is_logged_out_when_the_call_ends() {
    let mut h = Harness::new(config(true, DrForward::Off));
    h.peer_up();
    h.register("1001", 600);
    h.site.login(h.now, "alice", "1001").unwrap();
    h.site.set_ready(h.now, "alice", true).unwrap();
    h.collect();
    claims_sent(&mut h, true);
    h.invite("1001", "call-1", "");
    h.phone_answers("1001");
    h.take_events();
    claims_from(
        &mut h,
        addr(PEER),
        "claim-busy",
        crate::claims::CONTENT_TYPE,
        &claim_body("fresh", "alice", 0),
    );
    assert!(h.take_events().is_empty(), "not during the call");
    assert_eq!(
        h.site.agent(h.now, "alice").unwrap().state,
        AgentState::Busy
    );
    h.bye("1001", "call-1");
    assert_eq!(
        h.take_events(),
        ["agent_logout alice logged_out peer_login"]
    );
}
