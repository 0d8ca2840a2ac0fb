//! The caller and the trunk cores against each other in simulated time: no
//! sockets, no sleeps. Each test reads as a transcript of what crossed the
//! wire and when (SPEC V1: the answers a trunk gives and the timeouts a caller
//! sees are what the voice proxy fails over on).

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotsite_sip::message::{parse_bytes, Message, Response};

use super::caller::{SipCallerConfig, Uac};
use super::driver::Endpoint;
use super::phone::PhoneAnswer;
use super::trunk::{SipTrunkConfig, TrunkFault, Uas};
use super::wire::addr_of;

const CALLER: &str = "127.0.0.1:5070";
const TRUNK: &str = "127.0.0.1:5080";

#[allow(clippy::disallowed_methods)] // test epoch: only offsets from it matter
fn epoch() -> Instant {
    Instant::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A caller and a trunk wired directly, with a transcript.
struct Sim {
    caller: Uac,
    trunk: Uas,
    start: Instant,
    now: Instant,
    transcript: String,
    /// Messages (as [`summary`] writes them) to lose once each, in order.
    lose: Vec<&'static str>,
}

impl Sim {
    fn new(caller: SipCallerConfig, trunk: SipTrunkConfig) -> Sim {
        let start = epoch();
        Sim {
            caller: Uac::new(&caller, CALLER.parse().unwrap(), start),
            trunk: Uas::new(&trunk, TRUNK.parse().unwrap()),
            start,
            now: start,
            transcript: String::new(),
            lose: Vec::new(),
        }
    }

    /// One call, direct to the trunk, with test timers (T1 = 50 ms).
    fn one_call(configure: impl FnOnce(&mut SipCallerConfig, &mut SipTrunkConfig)) -> Sim {
        let mut caller = SipCallerConfig::new(TRUNK.parse().unwrap(), 1, 10.0);
        caller.listen = CALLER.parse().unwrap();
        caller.t1 = ms(50);
        caller.t2 = ms(400);
        caller.seed = 1;
        let mut trunk = SipTrunkConfig::new("trunk-1", TRUNK.parse().unwrap());
        trunk.t1 = ms(50);
        trunk.t2 = ms(400);
        configure(&mut caller, &mut trunk);
        Sim::new(caller, trunk)
    }

    fn log(&mut self, from: &str, to: &str, bytes: &Bytes) -> bool {
        let text = summary(bytes);
        let lost = match self.lose.first() {
            Some(first) if *first == text => {
                self.lose.remove(0);
                true
            }
            _ => false,
        };
        let at = self.now.duration_since(self.start).as_millis();
        let suffix = if lost { " (lost)" } else { "" };
        writeln!(self.transcript, "{at:>5} {from}>{to} {text}{suffix}").unwrap();
        !lost
    }

    /// Delivers every datagram at once, then moves time to the next deadline,
    /// until both peers are idle or `limit` has passed.
    fn run(&mut self, limit: Duration) {
        let caller_addr: SocketAddr = CALLER.parse().unwrap();
        let trunk_addr: SocketAddr = TRUNK.parse().unwrap();
        for _ in 0..100_000 {
            for _ in 0..1_000 {
                let mut moved = false;
                while let Some((to, bytes)) = self.caller.poll_transmit() {
                    assert_eq!(to, trunk_addr);
                    moved = true;
                    if self.log("caller", "trunk", &bytes) {
                        self.trunk.handle_datagram(self.now, caller_addr, bytes);
                    }
                }
                while let Some((to, bytes)) = self.trunk.poll_transmit() {
                    assert_eq!(to, caller_addr);
                    moved = true;
                    if self.log("trunk", "caller", &bytes) {
                        self.caller.handle_datagram(self.now, trunk_addr, bytes);
                    }
                }
                if !moved {
                    break;
                }
            }
            let next = [self.caller.poll_timeout(), self.trunk.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= self.start + limit => {
                    self.now = self.now.max(at);
                    if self.caller.poll_timeout().is_some_and(|at| at <= self.now) {
                        self.caller.handle_timeout(self.now);
                    }
                    if self.trunk.poll_timeout().is_some_and(|at| at <= self.now) {
                        self.trunk.handle_timeout(self.now);
                    }
                }
                _ => return,
            }
        }
        panic!("the simulation did not settle");
    }

    #[track_caller]
    fn check(&self, expected: &str) {
        let expected: Vec<&str> = expected
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let actual: Vec<&str> = self.transcript.lines().map(str::trim).collect();
        assert_eq!(actual, expected, "\n{}", self.transcript);
    }
}

/// `INVITE`, `200 (BYE)`: a request's method, a response's status and method.
fn summary(bytes: &Bytes) -> String {
    match parse_bytes(bytes.clone()) {
        Ok(Message::Request(request)) => request.method.to_string(),
        Ok(Message::Response(response)) => status_line(&response),
        Err(error) => format!("garbage: {error}"),
    }
}

fn status_line(response: &Response) -> String {
    let method = response
        .headers
        .cseq()
        .map(|cseq| cseq.method.to_string())
        .unwrap_or_default();
    format!("{} ({method})", response.status.as_u16())
}

/// SPEC V1: a healthy trunk answers 100 and 180 at once, 200 after the answer
/// delay; the caller ACKs, holds, hangs up.
#[test]
fn a_call_is_answered_acked_and_hung_up() {
    let mut sim = Sim::one_call(|_, _| {});
    sim.run(Duration::from_secs(10));
    sim.check(
        "
        0 caller>trunk INVITE
        0 trunk>caller 100 (INVITE)
        0 trunk>caller 180 (INVITE)
       20 trunk>caller 200 (INVITE)
       20 caller>trunk ACK
      120 caller>trunk BYE
      120 trunk>caller 200 (BYE)
        ",
    );
    let record = &sim.caller.records()[0];
    assert_eq!(record.status, Some(200));
    assert_eq!(record.first_response, Some(Duration::ZERO));
    assert_eq!(record.setup_time, Some(ms(20)));
    assert!(record.bye_completed() && record.finished);
    assert_eq!(
        record.contact.as_deref(),
        Some("sip:trunk-1@127.0.0.1:5080")
    );
    assert!(sim.caller.is_finished());
    let stats = sim.trunk.stats();
    assert_eq!(
        (stats.invites, stats.answered, stats.acks, stats.byes),
        (1, 1, 1, 1)
    );
    assert_eq!((stats.pending, stats.dialogs), (0, 0));
    assert_eq!(sim.trunk.log().len(), 1);
    assert!(!sim.trunk.log()[0].dropped);
}

/// A lost ACK: the trunk sends its 200 again after T1, the caller ACKs again.
#[test]
fn a_lost_ack_brings_the_200_again() {
    let mut sim = Sim::one_call(|_, _| {});
    sim.lose = vec!["ACK"];
    sim.run(Duration::from_secs(10));
    sim.check(
        "
        0 caller>trunk INVITE
        0 trunk>caller 100 (INVITE)
        0 trunk>caller 180 (INVITE)
       20 trunk>caller 200 (INVITE)
       20 caller>trunk ACK (lost)
       70 trunk>caller 200 (INVITE)
       70 caller>trunk ACK
      120 caller>trunk BYE
      120 trunk>caller 200 (BYE)
        ",
    );
    assert_eq!(sim.trunk.stats().acks, 1);
}

/// Lost provisionals: the caller retransmits its INVITE (timer A); the trunk
/// counts the call once and repeats its last answer.
#[test]
fn a_retransmitted_invite_gets_the_last_answer_again() {
    let mut sim = Sim::one_call(|_, trunk| trunk.answer_delay = ms(120));
    sim.lose = vec!["100 (INVITE)", "180 (INVITE)"];
    sim.run(Duration::from_secs(10));
    sim.check(
        "
        0 caller>trunk INVITE
        0 trunk>caller 100 (INVITE) (lost)
        0 trunk>caller 180 (INVITE) (lost)
       50 caller>trunk INVITE
       50 trunk>caller 180 (INVITE)
      120 trunk>caller 200 (INVITE)
      120 caller>trunk ACK
      220 caller>trunk BYE
      220 trunk>caller 200 (BYE)
        ",
    );
    let stats = sim.trunk.stats();
    assert_eq!((stats.invites, stats.invite_retransmissions), (1, 1));
    let record = &sim.caller.records()[0];
    assert_eq!(record.invite_retransmissions, 1);
    assert_eq!(record.first_response, Some(ms(50)));
}

/// SPEC V1: a rejecting trunk answers 100, then 503, which the caller ACKs on
/// the INVITE's branch; its OPTIONS get 503 too.
#[test]
fn a_rejecting_trunk_answers_503_and_the_caller_acks_it() {
    let mut sim = Sim::one_call(|_, _| {});
    sim.trunk.set_fault(TrunkFault::Reject(503));
    sim.run(Duration::from_secs(10));
    sim.check(
        "
        0 caller>trunk INVITE
        0 trunk>caller 100 (INVITE)
        0 trunk>caller 503 (INVITE)
        0 caller>trunk ACK
        ",
    );
    let record = &sim.caller.records()[0];
    assert_eq!((record.status, record.bye_status), (Some(503), None));
    assert!(record.finished && !record.timed_out);
    let stats = sim.trunk.stats();
    assert_eq!((stats.invites, stats.rejected, stats.pending), (1, 1, 0));
    // The ACK ended the trunk's retransmissions: nothing more came.
    assert!(sim.transcript.lines().count() == 4);
}

/// A silent trunk: the caller sends its INVITE at 0, T1, 3·T1, … and gives
/// up at 64·T1 (timer B) with a local 408; the trunk logged the call once.
#[test]
fn a_silent_trunk_makes_the_caller_time_out() {
    let mut sim = Sim::one_call(|_, _| {});
    sim.trunk.set_fault(TrunkFault::Silent);
    sim.run(Duration::from_secs(10));
    sim.check(
        "
        0 caller>trunk INVITE
       50 caller>trunk INVITE
      150 caller>trunk INVITE
      350 caller>trunk INVITE
      750 caller>trunk INVITE
     1550 caller>trunk INVITE
     3150 caller>trunk INVITE
        ",
    );
    let record = &sim.caller.records()[0];
    assert_eq!(record.status, Some(408));
    assert!(record.timed_out && record.finished);
    assert_eq!(record.setup_time, Some(ms(3_200)));
    assert_eq!(record.first_response, None);
    let stats = sim.trunk.stats();
    assert_eq!((stats.invites, stats.dropped), (1, 7));
    assert!(sim.trunk.log()[0].dropped);
}

/// A trunk that goes silent while a call rings: its 200 is lost, and so are
/// its repetitions, until it recovers; the next repetition gets out (a
/// partition healed) and only then counts as answered.
#[test]
fn an_answer_lost_in_a_silence_gets_out_after_the_recovery() {
    let mut sim = Sim::one_call(|_, trunk| trunk.answer_delay = ms(100));
    sim.run(ms(40));
    sim.trunk.set_fault(TrunkFault::Silent);
    sim.run(ms(600));
    assert_eq!(sim.trunk.stats().answered, 0);
    assert_eq!(sim.trunk.stats().dialogs, 1);
    sim.trunk.set_fault(TrunkFault::Recover);
    sim.run(Duration::from_secs(10));
    sim.check(
        "
        0 caller>trunk INVITE
        0 trunk>caller 100 (INVITE)
        0 trunk>caller 180 (INVITE)
      850 trunk>caller 200 (INVITE)
      850 caller>trunk ACK
      950 caller>trunk BYE
      950 trunk>caller 200 (BYE)
        ",
    );
    let stats = sim.trunk.stats();
    assert_eq!((stats.answered, stats.acks, stats.byes), (1, 1, 1));
    assert_eq!(sim.caller.records()[0].setup_time, Some(ms(850)));
}

/// The caller hangs up while it rings: CANCEL gets 200, the INVITE 487,
/// which is ACKed.
#[test]
fn a_cancel_ends_a_ringing_call_with_487() {
    let mut sim = Sim::one_call(|caller, trunk| {
        trunk.answer_delay = Duration::from_secs(5);
        caller.cancel_after = Some(ms(300));
    });
    sim.run(Duration::from_secs(10));
    sim.check(
        "
        0 caller>trunk INVITE
        0 trunk>caller 100 (INVITE)
        0 trunk>caller 180 (INVITE)
      300 caller>trunk CANCEL
      300 trunk>caller 200 (CANCEL)
      300 trunk>caller 487 (INVITE)
      300 caller>trunk ACK
        ",
    );
    let record = &sim.caller.records()[0];
    assert_eq!(record.status, Some(487));
    assert!(record.cancelled && record.finished);
    let stats = sim.trunk.stats();
    assert_eq!((stats.cancelled, stats.answered, stats.pending), (1, 0, 0));
}

/// No final answer within `final_timeout` after a provisional: the caller
/// cancels the call by itself.
#[test]
fn a_call_that_rings_too_long_is_cancelled() {
    let mut sim = Sim::one_call(|caller, trunk| {
        trunk.ring_delay = ms(10);
        trunk.answer_delay = Duration::from_secs(60);
        caller.final_timeout = ms(500);
    });
    sim.run(Duration::from_secs(10));
    sim.check(
        "
        0 caller>trunk INVITE
        0 trunk>caller 100 (INVITE)
       10 trunk>caller 180 (INVITE)
      500 caller>trunk CANCEL
      500 trunk>caller 200 (CANCEL)
      500 trunk>caller 487 (INVITE)
      500 caller>trunk ACK
        ",
    );
    assert_eq!(sim.caller.records()[0].status, Some(487));
}

/// A lost BYE is sent again (timer E); a trunk that recovers in time answers.
#[test]
fn a_bye_is_retransmitted_until_answered() {
    let mut sim = Sim::one_call(|_, _| {});
    sim.lose = vec!["BYE", "BYE"];
    sim.run(Duration::from_secs(10));
    sim.check(
        "
        0 caller>trunk INVITE
        0 trunk>caller 100 (INVITE)
        0 trunk>caller 180 (INVITE)
       20 trunk>caller 200 (INVITE)
       20 caller>trunk ACK
      120 caller>trunk BYE (lost)
      170 caller>trunk BYE (lost)
      270 caller>trunk BYE
      270 trunk>caller 200 (BYE)
        ",
    );
    assert!(sim.caller.records()[0].bye_completed());
}

/// Calls are paced at the rate; held at the limit, then released: pacing
/// resumes from the release, with no burst.
#[test]
fn calls_are_paced_held_and_released() {
    let mut caller = SipCallerConfig::new(TRUNK.parse().unwrap(), 4, 10.0);
    caller.listen = CALLER.parse().unwrap();
    caller.limit = Some(2);
    caller.hold = Duration::ZERO;
    caller.seed = 1;
    let mut trunk = SipTrunkConfig::new("trunk-1", TRUNK.parse().unwrap());
    trunk.answer_delay = Duration::ZERO;
    let mut sim = Sim::new(caller, trunk);
    sim.run(Duration::from_secs(10));
    assert_eq!(sim.caller.progress().placed, 2);
    assert!(!sim.caller.is_finished());
    sim.now = sim.start + Duration::from_secs(1);
    sim.caller.allow(4, sim.now);
    sim.run(Duration::from_secs(10));
    let starts: Vec<u128> = sim
        .caller
        .records()
        .iter()
        .map(|r| r.started.duration_since(sim.start).as_millis())
        .collect();
    assert_eq!(starts, [0, 100, 1_000, 1_100]);
    assert!(sim.caller.is_finished());
    let progress = sim.caller.progress();
    assert_eq!(
        (progress.answered, progress.failed, progress.finished),
        (4, 0, 4)
    );
    // Every call had its own Call-ID, From tag and branch.
    let log = sim.trunk.log();
    let mut call_ids: Vec<&str> = log.iter().map(|i| i.call_id.as_str()).collect();
    call_ids.dedup();
    assert_eq!(call_ids.len(), 4);
}

/// OPTIONS: 200 from a healthy trunk, nothing from a silent one.
#[test]
fn options_follow_the_fault() {
    let mut trunk = Uas::new(
        &SipTrunkConfig::new("trunk-1", TRUNK.parse().unwrap()),
        TRUNK.parse().unwrap(),
    );
    let now = epoch();
    let options = |branch: &str| {
        Bytes::from(format!(
            "OPTIONS sip:trunk@{TRUNK} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\nTo: <sip:trunk@{TRUNK}>\r\nFrom: <sip:p@{CALLER}>;tag=1\r\n\
             Call-ID: o-{branch}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ))
    };
    let from: SocketAddr = CALLER.parse().unwrap();
    let mut answers = Vec::new();
    for (fault, branch) in [
        (TrunkFault::Recover, "a"),
        (TrunkFault::Reject(503), "b"),
        (TrunkFault::Silent, "c"),
        (TrunkFault::Recover, "a"),
    ] {
        trunk.set_fault(fault);
        trunk.handle_datagram(now, from, options(branch));
        let answer = trunk.poll_transmit().map(|(_, bytes)| summary(&bytes));
        answers.push(answer.unwrap_or_else(|| "nothing".to_owned()));
    }
    // The last one is a retransmission of the first: the same answer again.
    assert_eq!(
        answers,
        ["200 (OPTIONS)", "503 (OPTIONS)", "nothing", "200 (OPTIONS)"]
    );
    assert_eq!(trunk.stats().options, 2);
}

/// In-dialog requests follow the Record-Route: the first route is the next
/// hop, the Contact the Request-URI.
#[test]
fn the_route_set_decides_the_next_hop() {
    let caller = SipCallerConfig::new("127.0.0.1:5060".parse().unwrap(), 1, 10.0);
    let mut uac = Uac::new(&caller, CALLER.parse().unwrap(), epoch());
    uac.handle_timeout(epoch() + Duration::from_secs(1));
    let (_, invite) = uac.poll_transmit().unwrap();
    let Ok(Message::Request(invite)) = parse_bytes(invite) else {
        panic!("an INVITE");
    };
    let mut ok =
        hotsite_sip::message::response_to(&invite, hotsite_sip::message::StatusCode::OK, Some("t"));
    ok.headers.push(hotsite_sip::message::Header::new(
        hotsite_sip::message::HeaderName::RecordRoute,
        "<sip:127.0.0.1:5060;lr>",
    ));
    ok.headers.push(hotsite_sip::message::Header::new(
        hotsite_sip::message::HeaderName::Contact,
        format!("<sip:trunk-1@{TRUNK}>"),
    ));
    uac.handle_datagram(epoch(), TRUNK.parse().unwrap(), ok.to_bytes());
    let (to, ack) = uac.poll_transmit().unwrap();
    assert_eq!(to, "127.0.0.1:5060".parse().unwrap());
    let Ok(Message::Request(ack)) = parse_bytes(ack) else {
        panic!("an ACK");
    };
    assert_eq!(ack.uri.to_string(), format!("sip:trunk-1@{TRUNK}"));
    let routes = ack.headers.routes();
    assert_eq!(routes.len(), 1);
    assert_eq!(addr_of(&routes[0].uri), Some(to));
    assert_eq!(ack.headers.to().unwrap().tag(), Some("t"));
    assert_ne!(
        ack.branch(),
        invite.branch(),
        "a 2xx's ACK is a new transaction"
    );
}

/// A 2xx from another dialog (a late answer from a trunk the proxy gave up
/// on) is ACKed and hung up at once, also after the call itself is over
/// (§13.2.2.4: for 64·T1 after the first 2xx).
#[test]
fn a_late_answer_from_another_dialog_is_acked_and_hung_up() {
    use hotsite_sip::message::{response_to, Header, HeaderName, StatusCode};

    let start = epoch();
    let mut config = SipCallerConfig::new(TRUNK.parse().unwrap(), 1, 10.0);
    config.hold = Duration::ZERO;
    let mut uac = Uac::new(&config, CALLER.parse().unwrap(), start);
    uac.handle_timeout(start);
    let (_, invite) = uac.poll_transmit().unwrap();
    let Ok(Message::Request(invite)) = parse_bytes(invite) else {
        panic!("an INVITE");
    };
    let answer = |tag: &str| {
        let mut ok = response_to(&invite, StatusCode::OK, Some(tag));
        ok.headers.push(Header::new(
            HeaderName::Contact,
            format!("<sip:trunk@{TRUNK}>"),
        ));
        ok.to_bytes()
    };
    let sent = |uac: &mut Uac| -> Vec<String> {
        std::iter::from_fn(|| uac.poll_transmit())
            .map(|(_, bytes)| summary(&bytes))
            .collect()
    };
    let trunk: SocketAddr = TRUNK.parse().unwrap();
    uac.handle_datagram(start, trunk, answer("a"));
    assert_eq!(sent(&mut uac), ["ACK"]);
    uac.handle_timeout(start);
    let (_, bye) = uac.poll_transmit().unwrap();
    assert_eq!(summary(&bye), "BYE");
    // The BYE's answer carries the BYE's branch.
    let Ok(Message::Request(bye)) = parse_bytes(bye) else {
        panic!("a BYE");
    };
    let bye_ok = response_to(&bye, StatusCode::OK, None);
    uac.handle_datagram(start, trunk, bye_ok.to_bytes());
    assert!(uac.is_finished());
    // A second later, another dialog's 200 for the same INVITE.
    let later = start + Duration::from_secs(1);
    uac.handle_timeout(later);
    uac.handle_datagram(later, trunk, answer("b"));
    assert_eq!(sent(&mut uac), ["ACK", "BYE"]);
    let record = &uac.records()[0];
    assert_eq!((record.extra_answers, record.bye_status), (1, Some(200)));
    // Forgotten 64·T1 after the first 2xx.
    uac.handle_timeout(start + Duration::from_secs(33));
    uac.handle_datagram(later, trunk, answer("c"));
    assert!(sent(&mut uac).is_empty());
}

/// SPEC S8 (an agent's phone uses this core): busy, the INVITE gets 100 then
/// `486 Busy Here`, ACKed; OPTIONS are still answered 200.
#[test]
fn a_busy_answer_is_486() {
    let mut sim = Sim::one_call(|_, _| {});
    sim.trunk.set_answer(PhoneAnswer::Busy);
    sim.run(Duration::from_secs(10));
    sim.check(
        "
        0 caller>trunk INVITE
        0 trunk>caller 100 (INVITE)
        0 trunk>caller 486 (INVITE)
        0 caller>trunk ACK
        ",
    );
    assert_eq!(sim.caller.records()[0].status, Some(486));
    let stats = sim.trunk.stats();
    assert_eq!(
        (stats.rejected, stats.failure_acks, stats.answered),
        (1, 1, 0)
    );
}

/// No answer: it rings until the caller gives up and cancels (487); nothing
/// is scheduled meanwhile, so the ringing lasts as long as the caller waits.
#[test]
fn no_answer_rings_until_cancelled() {
    let mut sim = Sim::one_call(|caller, _| caller.cancel_after = Some(ms(5_000)));
    sim.trunk.set_answer(PhoneAnswer::NoAnswer);
    sim.run(ms(4_000));
    assert_eq!(sim.trunk.stats().pending, 1);
    assert_eq!(
        sim.trunk.poll_timeout(),
        None,
        "nothing to do while ringing"
    );
    sim.run(Duration::from_secs(10));
    sim.check(
        "
        0 caller>trunk INVITE
        0 trunk>caller 100 (INVITE)
        0 trunk>caller 180 (INVITE)
     5000 caller>trunk CANCEL
     5000 trunk>caller 200 (CANCEL)
     5000 trunk>caller 487 (INVITE)
     5000 caller>trunk ACK
        ",
    );
    let stats = sim.trunk.stats();
    assert_eq!((stats.cancelled, stats.answered, stats.pending), (1, 0, 0));
}

/// SPEC S1: a media gateway calls an agent's DN through a site: the
/// Request-URI and To name the DN (and the site's domain when given).
#[test]
fn a_caller_can_call_one_dn() {
    let mut config = SipCallerConfig::new(TRUNK.parse().unwrap(), 2, 0.0);
    config.to_user = Some("1001".to_owned());
    let mut uac = Uac::new(&config, CALLER.parse().unwrap(), epoch());
    uac.handle_timeout(epoch());
    let uris: Vec<(String, String)> = std::iter::from_fn(|| uac.poll_transmit())
        .map(|(_, bytes)| match parse_bytes(bytes) {
            Ok(Message::Request(invite)) => (
                invite.uri.to_string(),
                invite.headers.to().unwrap().uri.to_string(),
            ),
            _ => panic!("an INVITE"),
        })
        .collect();
    let dn = format!("sip:1001@{TRUNK}");
    assert_eq!(uris, [(dn.clone(), dn.clone()), (dn.clone(), dn)]);

    config.to_host = Some("site-a.lab".to_owned());
    let mut uac = Uac::new(&config, CALLER.parse().unwrap(), epoch());
    uac.handle_timeout(epoch());
    let (to, invite) = uac.poll_transmit().unwrap();
    assert_eq!(to, TRUNK.parse().unwrap(), "still sent to the proxy");
    let Ok(Message::Request(invite)) = parse_bytes(invite) else {
        panic!("an INVITE");
    };
    assert_eq!(invite.uri.to_string(), "sip:1001@site-a.lab");
}
