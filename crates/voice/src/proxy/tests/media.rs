//! Media anchoring in the proxy core (SPEC R1: the edge can only record the
//! calls it relays; R5: hold only from SDP; V1: failover keeps the
//! anchoring; V3: the trunk's regions reach the tap).

use std::net::IpAddr;

use crate::media::call::Protocol;
use crate::media::sdp::Sdp;
use crate::media::{Leg, MediaDirection, MediaEnd, MediaOutput, MediaSetup, RelayTimers};

use super::*;

/// Our media address (the proxy's IP).
const MEDIA_IP: &str = "10.0.0.1";

fn media_setup(first: u16, last: u16) -> MediaSetup {
    MediaSetup {
        address: MEDIA_IP.parse().unwrap(),
        first_port: first,
        last_port: last,
        timers: RelayTimers {
            timeout: Duration::from_secs(60),
            hold_timeout: Duration::from_secs(7200),
            relatch_after: Duration::from_millis(500),
        },
        strict_source: true,
    }
}

/// `config()` with its group anchored over ports 30000-30039 (20 pairs).
fn anchored() -> ProxyConfig {
    let mut config = config();
    config.groups[0].media = MediaMode::Anchor;
    config.media = Some(media_setup(30_000, 30_039));
    config
}

/// An SDP at `ip:port`, with `direction`.
fn sdp(ip: &str, port: u16, direction: &str) -> String {
    format!(
        "v=0\r\no=x 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
}

fn with_body<M: HasBody>(mut message: M, kind: &str, body: &str) -> M {
    message
        .headers_mut()
        .set(Header::new(HeaderName::ContentType, kind.to_owned()));
    *message.body_mut() = Bytes::copy_from_slice(body.as_bytes());
    message
}

fn with_sdp<M: HasBody>(message: M, body: &str) -> M {
    with_body(message, "application/sdp", body)
}

trait HasBody {
    fn headers_mut(&mut self) -> &mut hotsite_sip::message::Headers;
    fn body_mut(&mut self) -> &mut Bytes;
}

impl HasBody for Request {
    fn headers_mut(&mut self) -> &mut hotsite_sip::message::Headers {
        &mut self.headers
    }
    fn body_mut(&mut self) -> &mut Bytes {
        &mut self.body
    }
}

impl HasBody for Response {
    fn headers_mut(&mut self) -> &mut hotsite_sip::message::Headers {
        &mut self.headers
    }
    fn body_mut(&mut self) -> &mut Bytes {
        &mut self.body
    }
}

/// Where an SDP body sends RTP.
fn rtp_of(body: &Bytes) -> SocketAddr {
    Sdp::parse(body.clone()).unwrap().rtp_addr(0).unwrap()
}

fn direction_of(body: &Bytes) -> MediaDirection {
    Sdp::parse(body.clone()).unwrap().direction()
}

fn ours(port: u16) -> SocketAddr {
    SocketAddr::new(MEDIA_IP.parse::<IpAddr>().unwrap(), port)
}

/// The `[a, b]` RTP ports of the call's first stream, from its Open.
fn opened(sim: &Sim) -> (u64, [u16; 2]) {
    sim.media
        .iter()
        .find_map(|o| match o {
            MediaOutput::Open { id, streams, .. } => Some((*id, streams[0].unwrap())),
            _ => None,
        })
        .expect("an Open")
}

/// The tap-facing outputs, in order: Anchored(trunk), Sdp(from, direction),
/// Hold, Answered, Close.
fn tap_view(sim: &Sim) -> Vec<String> {
    sim.media
        .iter()
        .filter_map(|o| match o {
            MediaOutput::Anchored { info, .. } => Some(format!(
                "anchored {} {} {}/{}",
                info.trunk, info.group, info.media_region, info.failover_region
            )),
            MediaOutput::Sdp {
                from,
                direction,
                payload_types,
                ..
            } => Some(format!(
                "sdp {from:?} {direction:?} {}",
                payload_types
                    .iter()
                    .map(|(pt, name)| format!("{pt}:{name}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )),
            MediaOutput::Hold { on_hold, .. } => Some(format!("hold {on_hold}")),
            MediaOutput::Answered { .. } => Some("answered".into()),
            MediaOutput::Close { end, .. } => Some(format!("close {end:?}")),
            _ => None,
        })
        .collect()
}

fn remotes(sim: &Sim) -> Vec<(Leg, Option<SocketAddr>)> {
    sim.media
        .iter()
        .filter_map(|o| match o {
            MediaOutput::Remote { leg, rtp, .. } => Some((*leg, *rtp)),
            _ => None,
        })
        .collect()
}

/// A call anchored and answered by trunk 1: the caller's INVITE, what
/// trunk 1 got, and the 200 the caller got.
fn answered_call(sim: &mut Sim, call_id: &str) -> (Request, Request, Response) {
    let invite = with_sdp(
        invite(call_id, &format!("z9hG4bK{call_id}"), "+4420"),
        &sdp("10.0.0.9", 4000, "sendrecv"),
    );
    let to_trunk = sim.send_request(CALLER, &invite).request(TRUNK1);
    let ok = with_sdp(
        answer(&to_trunk, 200, "t1", TRUNK1),
        &sdp("10.0.1.1", 6000, "sendrecv"),
    );
    let to_caller = sim.send_response(TRUNK1, &ok).response(CALLER);
    (invite, to_trunk, to_caller)
}

/// SPEC R1: the INVITE reaches the trunk with our address and our b-side
/// port, the 18x and 200 reach the caller with our a-side port, the 200's
/// retransmission is rewritten identically, and everything else in the SDP
/// is as the parties wrote it. The tap hears of the call once, with the
/// trunk's regions (V3), and of each distinct SDP once.
#[test]
fn anchored_sdp_is_rewritten_both_ways() {
    let mut sim = Sim::new(anchored());
    let offer = sdp("10.0.0.9", 4000, "sendrecv");
    let invite = with_sdp(invite("m-1", "z9hG4bKm1", "+4420"), &offer);
    let to_trunk = sim.send_request(CALLER, &invite).request(TRUNK1);
    let (id, [a_port, b_port]) = opened(&sim);
    assert!((30_000..30_040).contains(&a_port) && (30_000..30_040).contains(&b_port));
    assert_ne!(a_port, b_port);
    assert_eq!(rtp_of(&to_trunk.body), ours(b_port));
    assert_eq!(
        String::from_utf8_lossy(&to_trunk.body),
        offer
            .replace("c=IN IP4 10.0.0.9", &format!("c=IN IP4 {MEDIA_IP}"))
            .replace("m=audio 4000", &format!("m=audio {b_port}")),
        "only c= and m= changed"
    );
    assert_eq!(
        to_trunk.headers.content_length(),
        Some(to_trunk.body.len()),
        "Content-Length follows the body"
    );
    assert_eq!(remotes(&sim), [(Leg::A, Some(addr("10.0.0.9:4000")))]);

    let progress = with_sdp(
        answer(&to_trunk, 183, "t1", TRUNK1),
        &sdp("10.0.1.1", 6000, "sendrecv"),
    );
    let early = sim.send_response(TRUNK1, &progress).response(CALLER);
    assert_eq!(early.status.as_u16(), 183);
    assert_eq!(rtp_of(&early.body), ours(a_port));

    let ok = with_sdp(
        answer(&to_trunk, 200, "t1", TRUNK1),
        &sdp("10.0.1.1", 6000, "sendrecv"),
    );
    let first = sim.send_response(TRUNK1, &ok).response(CALLER);
    let again = sim.send_response(TRUNK1, &ok).response(CALLER);
    assert_eq!(rtp_of(&first.body), ours(a_port));
    assert_eq!(
        first.body, again.body,
        "retransmission rewritten identically"
    );
    assert_eq!(
        remotes(&sim),
        [
            (Leg::A, Some(addr("10.0.0.9:4000"))),
            (Leg::B, Some(addr("10.0.1.1:6000")))
        ]
    );
    assert_eq!(
        tap_view(&sim),
        [
            "anchored t1 pstn eu-west/eu-central",
            "sdp A SendRecv 0:PCMU/8000,8:PCMA/8000,101:telephone-event/8000",
            "sdp B SendRecv 0:PCMU/8000,8:PCMA/8000,101:telephone-event/8000",
            "answered",
        ]
    );
    assert!(sim
        .media
        .iter()
        .all(|o| !matches!(o, MediaOutput::Open { id: other, .. } if *other != id)));
    assert_eq!(sim.proxy.media_stats().unwrap().sessions, 1);
}

/// SPEC V1: a failover sends the next trunk the same SDP (same b-side
/// port), the previous trunk's early-media address is forgotten, and the
/// call is anchored (reported) once.
#[test]
fn failover_keeps_the_anchoring() {
    let mut sim = Sim::new(anchored());
    let invite = with_sdp(
        invite("m-2", "z9hG4bKm2", "+4420"),
        &sdp("10.0.0.9", 4000, "sendrecv"),
    );
    let to_t1 = sim.send_request(CALLER, &invite).request(TRUNK1);
    let early = with_sdp(
        answer(&to_t1, 183, "t1", TRUNK1),
        &sdp("10.0.1.1", 6000, "sendrecv"),
    );
    sim.send_response(TRUNK1, &early);
    let to_t2 = sim
        .send_response(TRUNK1, &answer(&to_t1, 503, "t1", TRUNK1))
        .request(TRUNK2);
    assert_eq!(to_t2.body, to_t1.body, "same anchored offer on trunk 2");
    let ok = with_sdp(
        answer(&to_t2, 200, "t2", TRUNK2),
        &sdp("10.0.1.2", 7000, "sendrecv"),
    );
    let (_, [a_port, _]) = opened(&sim);
    let to_caller = sim.send_response(TRUNK2, &ok).response(CALLER);
    assert_eq!(rtp_of(&to_caller.body), ours(a_port));
    assert_eq!(
        remotes(&sim),
        [
            (Leg::A, Some(addr("10.0.0.9:4000"))),
            (Leg::B, Some(addr("10.0.1.1:6000"))),
            (Leg::B, None),
            (Leg::B, Some(addr("10.0.1.2:7000"))),
        ]
    );
    let view = tap_view(&sim);
    assert_eq!(view.iter().filter(|v| v.starts_with("anchored")).count(), 1);
    assert_eq!(view[0], "anchored t1 pstn eu-west/eu-central");
}

/// SPEC R5: a re-INVITE with sendonly is passed through (rewritten) and
/// reported as hold, its recvonly answer too; the resume ends the hold.
/// A re-INVITE from the trunk side goes to the caller with our a-side port.
#[test]
fn reinvite_sendonly_is_hold_and_resume_ends_it() {
    let mut sim = Sim::new(anchored());
    let (invite, _, ok) = answered_call(&mut sim, "m-3");
    let (_, [a_port, b_port]) = opened(&sim);

    let hold = with_sdp(
        in_dialog(Method::Invite, &invite, &ok, "z9hG4bKhold", 2),
        &sdp("10.0.0.9", 4000, "sendonly"),
    );
    let to_trunk = sim.send_request(CALLER, &hold).request(TRUNK1);
    assert_eq!(rtp_of(&to_trunk.body), ours(b_port));
    assert_eq!(direction_of(&to_trunk.body), MediaDirection::SendOnly);
    let held = with_sdp(
        answer(&to_trunk, 200, "t1", TRUNK1),
        &sdp("10.0.1.1", 6000, "recvonly"),
    );
    let to_caller = sim.send_response(TRUNK1, &held).response(CALLER);
    assert_eq!(rtp_of(&to_caller.body), ours(a_port));
    assert_eq!(direction_of(&to_caller.body), MediaDirection::RecvOnly);

    // The trunk side resumes.
    let mut resume = Request::new(Method::Invite, invite.headers.contacts()[0].uri.clone());
    let h = &mut resume.headers;
    h.push(Header::new(
        HeaderName::Via,
        format!("SIP/2.0/UDP {TRUNK1};branch=z9hG4bKresume"),
    ));
    h.push(Header::new(HeaderName::Route, format!("<sip:{PROXY};lr>")));
    h.push(Header::new(HeaderName::MaxForwards, "70"));
    h.push(Header::new(
        HeaderName::From,
        ok.headers.value(HeaderName::To).unwrap().clone(),
    ));
    h.push(Header::new(
        HeaderName::To,
        invite.headers.value(HeaderName::From).unwrap().clone(),
    ));
    h.push(invite.headers.get(HeaderName::CallId).unwrap().clone());
    h.push(Header::new(HeaderName::CSeq, "7 INVITE"));
    let resume = with_sdp(resume, &sdp("10.0.1.1", 6000, "sendrecv"));
    let to_caller = sim.send_request(TRUNK1, &resume).request(CALLER);
    assert_eq!(rtp_of(&to_caller.body), ours(a_port));
    let resumed = with_sdp(
        answer(&to_caller, 200, "caller-tag", CALLER),
        &sdp("10.0.0.9", 4000, "sendrecv"),
    );
    let to_trunk = sim.send_response(CALLER, &resumed).response(TRUNK1);
    assert_eq!(rtp_of(&to_trunk.body), ours(b_port));

    let view = tap_view(&sim);
    let after_answer: Vec<&str> = view
        .iter()
        .skip_while(|v| *v != "answered")
        .skip(1)
        .map(String::as_str)
        .collect();
    let pts = "0:PCMU/8000,8:PCMA/8000,101:telephone-event/8000";
    assert_eq!(
        after_answer,
        [
            format!("sdp A SendOnly {pts}"),
            "hold true".to_owned(),
            format!("sdp B RecvOnly {pts}"),
            format!("sdp B SendRecv {pts}"),
            format!("sdp A SendRecv {pts}"),
            "hold false".to_owned(),
        ]
    );
}

/// A BYE from either side releases the media; the ports come back when
/// the relay reports its sockets closed.
#[test]
fn bye_releases_the_media() {
    let mut sim = Sim::new(anchored());
    let (invite, _, ok) = answered_call(&mut sim, "m-4");
    let (id, _) = opened(&sim);
    let in_use = sim.proxy.media_stats().unwrap().ports.in_use;
    assert_eq!(in_use, 2);
    let bye = in_dialog(Method::Bye, &invite, &ok, "z9hG4bKbye4", 2);
    assert_eq!(sim.send_request(CALLER, &bye).methods(TRUNK1), ["BYE"]);
    assert_eq!(tap_view(&sim).last().unwrap(), "close Bye");
    assert_eq!(sim.proxy.media_stats().unwrap().sessions, 0);
    // Still held until the relay closed the sockets.
    assert_eq!(sim.proxy.media_stats().unwrap().ports.in_use, 2);
    sim.proxy.handle_media_ended(sim.now, id, false);
    assert_eq!(sim.proxy.media_stats().unwrap().ports.in_use, 0);
    // A second BYE (retransmission) finds nothing to release.
    sim.send_request(CALLER, &bye);
    let closes = sim
        .media
        .iter()
        .filter(|o| matches!(o, MediaOutput::Close { .. }))
        .count();
    assert_eq!(closes, 1);
}

/// An INVITE whose SDP cannot be anchored is refused with 488 and a
/// Warning naming the fault, and no trunk sees it (a call forwarded
/// unanchored would be missing from the recording); so is a multipart body.
#[test]
fn bad_sdp_gets_488_naming_the_fault() {
    let mut sim = Sim::new(anchored());
    let bad = with_sdp(
        invite("m-5", "z9hG4bKm5", "+4420"),
        "v=0\r\nc=IN IP4 pbx.example\r\nm=audio 4000 RTP/AVP 0\r\n",
    );
    let sent = sim.send_request(CALLER, &bad);
    let refused = sent.response(CALLER);
    assert_eq!(refused.status.as_u16(), 488);
    let warning =
        String::from_utf8_lossy(refused.headers.value(HeaderName::Warning).unwrap()).into_owned();
    assert!(
        warning.contains("SDP line 2") && warning.contains("host names"),
        "{warning}"
    );
    assert!(sent.to(TRUNK1).is_empty());

    let multipart = with_body(
        invite("m-6", "z9hG4bKm6", "+4420"),
        "multipart/mixed;boundary=x",
        "--x\r\n\r\n--x--\r\n",
    );
    let sent = sim.send_request(CALLER, &multipart);
    assert_eq!(sent.statuses(CALLER), [488]);
    assert!(sent.to(TRUNK1).is_empty());
    let stats = sim.proxy.media_stats().unwrap();
    assert_eq!((stats.sdp_rejected, stats.sessions), (2, 0));
    assert_eq!(stats.ports.in_use, 0, "nothing held");
}

/// A re-INVITE whose SDP cannot be anchored gets 488 and is not forwarded.
#[test]
fn bad_sdp_in_a_reinvite_gets_488() {
    let mut sim = Sim::new(anchored());
    let (invite, _, ok) = answered_call(&mut sim, "m-7");
    let bad = with_sdp(
        in_dialog(Method::Invite, &invite, &ok, "z9hG4bKbad7", 2),
        "v=0\r\nm=audio 4000 RTP/AVP 0\r\n",
    );
    let sent = sim.send_request(CALLER, &bad);
    assert_eq!(sent.statuses(CALLER), [488]);
    assert!(sent.to(TRUNK1).is_empty());
}

/// No port pairs left: 503 with a Warning, nothing forwarded.
#[test]
fn no_ports_gets_503() {
    let mut config = anchored();
    config.media = Some(media_setup(30_000, 30_003)); // two pairs: one call
    let mut sim = Sim::new(config);
    answered_call(&mut sim, "m-8");
    let second = with_sdp(
        invite("m-9", "z9hG4bKm9", "+4420"),
        &sdp("10.0.0.9", 4002, "sendrecv"),
    );
    let sent = sim.send_request(CALLER, &second);
    let refused = sent.response(CALLER);
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    let warning =
        String::from_utf8_lossy(refused.headers.value(HeaderName::Warning).unwrap()).into_owned();
    assert!(warning.contains("no media ports free"), "{warning}");
    assert!(sent.to(TRUNK1).is_empty());
    assert_eq!(sim.proxy.media_stats().unwrap().ports_exhausted, 1);
}

/// A port that cannot be bound is skipped: calls get others.
#[test]
fn unbindable_ports_are_skipped() {
    let mut config = anchored();
    config.media = Some(media_setup(30_000, 30_039));
    let t0 = epoch();
    let mut sim = Sim {
        proxy: Proxy::new(config, 7, t0),
        t0,
        now: t0,
        events: Vec::new(),
        media: Vec::new(),
        unbindable: vec![30_000, 30_002],
    };
    sim.drain();
    answered_call(&mut sim, "m-10");
    let (_, ports) = opened(&sim);
    assert!(
        !ports.contains(&30_000) && !ports.contains(&30_002),
        "{ports:?}"
    );
    assert_eq!(sim.proxy.media_stats().unwrap().bind_failures, 2);
}

/// The caller's CANCEL releases the media as cancelled; a refusal by the
/// called party as failed.
#[test]
fn unanswered_calls_release_their_media() {
    let mut sim = Sim::new(anchored());
    let first = with_sdp(
        invite("m-11", "z9hG4bKm11", "+4420"),
        &sdp("10.0.0.9", 4000, "sendrecv"),
    );
    let to_trunk = sim.send_request(CALLER, &first).request(TRUNK1);
    sim.send_response(TRUNK1, &answer(&to_trunk, 180, "t1", TRUNK1));
    let mut cancel = first.clone();
    cancel.method = Method::Cancel;
    cancel.body = Bytes::new();
    cancel.headers.remove_all(HeaderName::ContentType);
    cancel
        .headers
        .set(Header::new(HeaderName::CSeq, "1 CANCEL"));
    let to_trunk_cancel = sim.send_request(CALLER, &cancel).request(TRUNK1);
    assert_eq!(to_trunk_cancel.method, Method::Cancel);
    sim.send_response(TRUNK1, &answer(&to_trunk, 487, "t1", TRUNK1));
    assert_eq!(tap_view(&sim).last().unwrap(), "close Cancelled");

    let busy_invite = with_sdp(
        invite("m-12", "z9hG4bKm12", "+4420"),
        &sdp("10.0.0.9", 4002, "sendrecv"),
    );
    let to_trunk = sim.send_request(CALLER, &busy_invite).request(TRUNK1);
    sim.send_response(TRUNK1, &answer(&to_trunk, 486, "t1", TRUNK1));
    assert_eq!(tap_view(&sim).last().unwrap(), "close Failed");
    assert_eq!(sim.proxy.media_stats().unwrap().sessions, 0);
}

/// A late offer: the INVITE has no SDP (ports are reserved anyway), the
/// trunk's 200 carries the offer (rewritten with our a-side port) and the
/// caller's ACK the answer (rewritten with our b-side port).
#[test]
fn late_offer_is_anchored_in_the_200_and_the_ack() {
    let mut sim = Sim::new(anchored());
    let late = invite("m-13", "z9hG4bKm13", "+4420");
    let to_trunk = sim.send_request(CALLER, &late).request(TRUNK1);
    assert!(to_trunk.body.is_empty());
    let (_, [a_port, b_port]) = opened(&sim);
    let ok = with_sdp(
        answer(&to_trunk, 200, "t1", TRUNK1),
        &sdp("10.0.1.1", 6000, "sendrecv"),
    );
    let to_caller = sim.send_response(TRUNK1, &ok).response(CALLER);
    assert_eq!(rtp_of(&to_caller.body), ours(a_port));
    let ack = with_sdp(
        in_dialog(Method::Ack, &late, &to_caller, "z9hG4bKack13", 1),
        &sdp("10.0.0.9", 4000, "sendrecv"),
    );
    let to_trunk = sim.send_request(CALLER, &ack).request(TRUNK1);
    assert_eq!(rtp_of(&to_trunk.body), ours(b_port));
}

/// The relay's media timeout: released, an event naming the call and its
/// trunk, and a later BYE has nothing left to release.
#[test]
fn media_timeout_is_an_event_and_frees_the_ports() {
    let mut sim = Sim::new(anchored());
    let (invite, _, ok) = answered_call(&mut sim, "m-14");
    let (id, _) = opened(&sim);
    sim.proxy.handle_media_ended(sim.now, id, true);
    sim.drain();
    let timeouts: Vec<_> = sim
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            ProxyEvent::MediaTimeout(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(timeouts.len(), 1);
    assert_eq!(timeouts[0].call_id, "m-14");
    assert_eq!(
        timeouts[0].trunk,
        Some(("t1".to_owned(), "carrier-t1".to_owned()))
    );
    let stats = sim.proxy.media_stats().unwrap();
    assert_eq!(
        (stats.timeouts, stats.sessions, stats.ports.in_use),
        (1, 0, 0)
    );
    let bye = in_dialog(Method::Bye, &invite, &ok, "z9hG4bKbye14", 2);
    assert_eq!(sim.send_request(CALLER, &bye).methods(TRUNK1), ["BYE"]);
    assert!(!sim
        .media
        .iter()
        .any(|o| matches!(o, MediaOutput::Close { .. })));
    let event = Proxy::media_timeout_event(&timeouts[0]);
    assert_eq!(event.kind.name(), "media_timeout");
}

/// Direct groups are untouched byte for byte: no ports, no rewrite, even
/// when another group anchors.
#[test]
fn direct_groups_are_untouched() {
    let mut config = anchored();
    config.groups[0].media = MediaMode::Direct;
    config.groups.push(GroupSetup {
        name: "recorded".into(),
        distribution: Distribution::Sequential,
        trunks: vec![1],
        max_attempts: 1,
        prefixes: vec!["+49".into()],
        media: MediaMode::Anchor,
    });
    let mut sim = Sim::new(config);
    let (_, to_trunk, to_caller) = answered_call(&mut sim, "m-15");
    assert_eq!(rtp_of(&to_trunk.body), addr("10.0.0.9:4000"));
    assert_eq!(rtp_of(&to_caller.body), addr("10.0.1.1:6000"));
    assert!(sim.media.is_empty(), "{:?}", sim.media);

    let mut plain = Sim::new(config_without_media());
    let (invite, to_trunk, _) = answered_call(&mut plain, "m-16");
    assert_eq!(to_trunk.body, invite.body);
    assert!(plain.proxy.media_stats().is_none());
}

fn config_without_media() -> ProxyConfig {
    config()
}

/// The released call's Close carries its end; MediaEnd values map as the
/// tap documents.
#[test]
fn close_names_the_end() {
    let mut sim = Sim::new(anchored());
    let (invite, _, ok) = answered_call(&mut sim, "m-17");
    let bye = in_dialog(Method::Bye, &invite, &ok, "z9hG4bKbye17", 2);
    sim.send_request(CALLER, &bye);
    assert!(sim.media.iter().any(|o| matches!(
        o,
        MediaOutput::Close {
            end: MediaEnd::Bye,
            ..
        }
    )));
}

/// The hold state a relay task would have after these outputs, as a
/// `CallMedia` answered at `t0`: its media timeout (SPEC R5: 60 s, or 2 h
/// on hold).
fn timeout_after(sim: &Sim, t0: Instant) -> Duration {
    let mut media = crate::media::CallMedia::new(media_setup(30_000, 30_039).timers, 1);
    media.answered(t0);
    for output in &sim.media {
        if let MediaOutput::Hold { on_hold, .. } = output {
            media.set_hold(*on_hold);
        }
    }
    media.poll_timeout().unwrap() - t0
}

/// SPEC R5: a `sendonly` re-INVITE that the trunk refuses (488) is not a
/// hold. It went on rewritten and was reported, then the refusal undid it:
/// the caller's address is back, the hold ends (the media timeout is
/// `timeout` again, not `hold_timeout`) and the tap's last SDP from the
/// caller says sendrecv, so the merge takes no later gap for a hold.
/// The same offer sent again is applied again (not served from a cache of
/// the refused one), and a 491 (glare) undoes it too.
#[test]
fn a_refused_reinvite_is_undone() {
    let mut sim = Sim::new(anchored());
    let (invite, _, ok) = answered_call(&mut sim, "m-20");
    let t0 = sim.now;
    let hold = with_sdp(
        in_dialog(Method::Invite, &invite, &ok, "z9hG4bKhold20", 2),
        &sdp("10.0.0.99", 4100, "sendonly"),
    );
    let to_trunk = sim.send_request(CALLER, &hold).request(TRUNK1);
    assert_eq!(direction_of(&to_trunk.body), MediaDirection::SendOnly);
    assert_eq!(timeout_after(&sim, t0), Duration::from_secs(7200));
    let refused = sim
        .send_response(TRUNK1, &answer(&to_trunk, 488, "t1", TRUNK1))
        .response(CALLER);
    assert_eq!(refused.status.as_u16(), 488, "relayed to the caller");

    let pts = "0:PCMU/8000,8:PCMA/8000,101:telephone-event/8000";
    let view = tap_view(&sim);
    let after_answer: Vec<&str> = view
        .iter()
        .skip_while(|v| *v != "answered")
        .skip(1)
        .map(String::as_str)
        .collect();
    assert_eq!(
        after_answer,
        [
            format!("sdp A SendOnly {pts}"),
            "hold true".to_owned(),
            format!("sdp A SendRecv {pts}"),
            "hold false".to_owned(),
        ]
    );
    assert_eq!(timeout_after(&sim, t0), Duration::from_secs(60));
    assert_eq!(
        remotes(&sim)
            .into_iter()
            .filter(|(leg, _)| *leg == Leg::A)
            .collect::<Vec<_>>(),
        [
            (Leg::A, Some(addr("10.0.0.9:4000"))),
            (Leg::A, Some(addr("10.0.0.99:4100"))),
            (Leg::A, Some(addr("10.0.0.9:4000"))),
        ],
        "the caller's media goes back where it went"
    );
    assert_eq!(sim.proxy.media_stats().unwrap().offers_refused, 1);

    // The same offer again, refused with 491 (glare): applied, then undone.
    sim.media.clear();
    let again = with_sdp(
        in_dialog(Method::Invite, &invite, &ok, "z9hG4bKhold21", 3),
        &sdp("10.0.0.99", 4100, "sendonly"),
    );
    let to_trunk = sim.send_request(CALLER, &again).request(TRUNK1);
    sim.send_response(TRUNK1, &answer(&to_trunk, 491, "t1", TRUNK1));
    assert_eq!(
        tap_view(&sim),
        [
            format!("sdp A SendOnly {pts}"),
            "hold true".to_owned(),
            format!("sdp A SendRecv {pts}"),
            "hold false".to_owned(),
        ]
    );
    // An accepted one is committed: its 2xx, then a stray 500 retransmitted
    // to nothing, change nothing.
    sim.media.clear();
    let third = with_sdp(
        in_dialog(Method::Invite, &invite, &ok, "z9hG4bKhold22", 4),
        &sdp("10.0.0.99", 4100, "sendonly"),
    );
    let to_trunk = sim.send_request(CALLER, &third).request(TRUNK1);
    sim.send_response(
        TRUNK1,
        &with_sdp(
            answer(&to_trunk, 200, "t1", TRUNK1),
            &sdp("10.0.1.1", 6000, "recvonly"),
        ),
    );
    sim.send_response(TRUNK1, &answer(&to_trunk, 500, "t1", TRUNK1));
    assert_eq!(
        tap_view(&sim),
        [
            format!("sdp A SendOnly {pts}"),
            "hold true".to_owned(),
            format!("sdp B RecvOnly {pts}"),
        ]
    );
    assert_eq!(timeout_after(&sim, t0), Duration::from_secs(7200));
}

/// SPEC R1: SRTP cannot be recorded. An INVITE or re-INVITE offering it
/// (a secure profile, or `a=crypto` on RTP/AVP) gets 488 with a Warning
/// that says so, and is not forwarded; a 2xx answering with SRTP (which
/// cannot be refused) is anchored, counted, and reported with `SRTP/`
/// payload type names, which the merge lists as undecodable.
#[test]
fn srtp_is_refused_or_marked() {
    let mut sim = Sim::new(anchored());
    let savp = sdp("10.0.0.9", 4000, "sendrecv").replace("RTP/AVP", "RTP/SAVP")
        + "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
    let sent = sim.send_request(
        CALLER,
        &with_sdp(invite("m-21", "z9hG4bKm21", "+4420"), &savp),
    );
    let refused = sent.response(CALLER);
    assert_eq!(refused.status.as_u16(), 488);
    let warning =
        String::from_utf8_lossy(refused.headers.value(HeaderName::Warning).unwrap()).into_owned();
    assert!(
        warning.contains("anchored groups record G.711 over RTP/AVP; SRTP cannot be recorded"),
        "{warning}"
    );
    assert!(sent.to(TRUNK1).is_empty());

    let (reinvited, _, ok) = answered_call(&mut sim, "m-22");
    let crypto = sdp("10.0.0.9", 4000, "sendrecv")
        + "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
    let sent = sim.send_request(
        CALLER,
        &with_sdp(
            in_dialog(Method::Invite, &reinvited, &ok, "z9hG4bKsrtp22", 2),
            &crypto,
        ),
    );
    assert_eq!(sent.statuses(CALLER), [488]);
    assert!(sent.to(TRUNK1).is_empty());

    // A trunk that answers a plain offer with SRTP anyway.
    sim.media.clear();
    let offer = with_sdp(
        invite("m-23", "z9hG4bKm23", "+4420"),
        &sdp("10.0.0.9", 4000, "sendrecv"),
    );
    let to_trunk = sim.send_request(CALLER, &offer).request(TRUNK1);
    let ok = with_sdp(
        answer(&to_trunk, 200, "t1", TRUNK1),
        &sdp("10.0.1.1", 6000, "sendrecv").replace("RTP/AVP", "RTP/SAVP"),
    );
    assert_eq!(sim.send_response(TRUNK1, &ok).statuses(CALLER), [200]);
    assert!(tap_view(&sim).contains(
        &"sdp B SendRecv 0:SRTP/PCMU/8000,8:SRTP/PCMA/8000,101:SRTP/telephone-event/8000"
            .to_owned()
    ));
    let stats = sim.proxy.media_stats().unwrap();
    assert_eq!((stats.srtp_unrecordable, stats.sdp_rejected), (1, 2));
}

/// ICE would connect the two ends around the relay (SPEC R1: the edge
/// would record nothing): an anchored SDP goes on without its ICE lines.
#[test]
fn ice_lines_are_stripped() {
    let mut sim = Sim::new(anchored());
    let offer = sdp("10.0.0.9", 4000, "sendrecv")
        + "a=ice-ufrag:F7gI\r\na=ice-pwd:x9cml/YzichV2+XlhiMu8g\r\na=ice-options:trickle\r\n\
           a=candidate:1 1 UDP 2130706431 10.0.0.9 4000 typ host\r\n\
           a=candidate:2 1 UDP 1694498815 192.0.2.3 45664 typ srflx raddr 10.0.0.9 rport 4000\r\n\
           a=end-of-candidates\r\na=ptime:20\r\n";
    let to_trunk = sim
        .send_request(
            CALLER,
            &with_sdp(invite("m-24", "z9hG4bKm24", "+4420"), &offer),
        )
        .request(TRUNK1);
    let body = String::from_utf8_lossy(&to_trunk.body).into_owned();
    for gone in ["ice-", "candidate", "10.0.0.9 ", "192.0.2.3"] {
        assert!(!body.contains(gone), "{gone:?} left in {body}");
    }
    assert!(body.ends_with("a=sendrecv\r\na=ptime:20\r\n"), "{body}");
}

/// SPEC V3: a failover moves the call to trunk 2, and the tap hears of the
/// move with trunk 2's name and regions (the recording names the trunk
/// that carried the call); a late 2xx from trunk 1 moves it back.
#[test]
fn failover_is_reported_as_a_move() {
    let mut config = anchored();
    config.trunks[1].spec.media_region = "us-east".into();
    config.trunks[1].spec.failover_region = "us-west".into();
    let mut sim = Sim::new(config);
    let invite = with_sdp(
        invite("m-25", "z9hG4bKm25", "+4420"),
        &sdp("10.0.0.9", 4000, "sendrecv"),
    );
    let to_t1 = sim.send_request(CALLER, &invite).request(TRUNK1);
    let to_t2 = sim
        .send_response(TRUNK1, &answer(&to_t1, 503, "t1", TRUNK1))
        .request(TRUNK2);
    let ok = with_sdp(
        answer(&to_t2, 200, "t2", TRUNK2),
        &sdp("10.0.1.2", 7000, "sendrecv"),
    );
    sim.send_response(TRUNK2, &ok);
    let moves: Vec<String> = sim
        .media
        .iter()
        .filter_map(|o| match o {
            MediaOutput::Anchored { info, .. } => Some(format!("anchored {}", info.trunk)),
            MediaOutput::Moved { info, .. } => Some(format!(
                "moved {} {} {}/{}",
                info.trunk, info.group, info.media_region, info.failover_region
            )),
            _ => None,
        })
        .collect();
    assert_eq!(moves, ["anchored t1", "moved t2 pstn us-east/us-west"]);
}

/// T.38: a re-INVITE that turns the audio stream into `m=image … udptl`
/// tells the relay the stream is no longer RTP (so any datagram latches
/// and counts as media); refused (488, a far end without fax), the stream
/// is RTP again.
#[test]
fn t38_streams_are_not_rtp_until_refused() {
    let mut sim = Sim::new(anchored());
    let (invite, _, ok) = answered_call(&mut sim, "m-26");
    sim.media.clear();
    let t38 = "v=0\r\no=x 1 2 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
               m=image 4000 udptl t38\r\na=T38FaxVersion:0\r\n";
    let to_trunk = sim
        .send_request(
            CALLER,
            &with_sdp(
                in_dialog(Method::Invite, &invite, &ok, "z9hG4bKfax26", 2),
                t38,
            ),
        )
        .request(TRUNK1);
    assert!(String::from_utf8_lossy(&to_trunk.body).contains("udptl t38"));
    sim.send_response(TRUNK1, &answer(&to_trunk, 488, "t1", TRUNK1));
    let protocols: Vec<Protocol> = sim
        .media
        .iter()
        .filter_map(|o| match o {
            MediaOutput::Protocol { protocol, .. } => Some(*protocol),
            _ => None,
        })
        .collect();
    assert_eq!(protocols, [Protocol::Other, Protocol::Rtp]);
}
