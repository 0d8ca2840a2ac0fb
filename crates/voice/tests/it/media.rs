//! Media anchoring on loopback with real RTP through real sockets: a caller
//! and a trunk exchange audio through the relay, the trunk's media server
//! hands over (new port, new SSRC, jumped sequence) and audio keeps flowing
//! both ways without a re-INVITE, and a tap counts every packet per leg
//! (SPEC R1, R5, V3).

use super::driver::Caller;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hotsite_sip::message::{
    parse_bytes, response_to, Header, HeaderName, Message, Method, Request, Response, StatusCode,
};
use hotsite_voice::config::{GroupConfig, MediaModeConfig, TrunkConfig, VoiceConfig};
use hotsite_voice::{AnchoredCall, Leg, MediaDirection, MediaEnd, MediaTap, ProxyEvent};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// An SDP as the tap heard of it: leg, direction, payload types.
type SdpSeen = (Leg, MediaDirection, Vec<(u8, String)>);

/// What the tap saw.
#[derive(Default)]
struct Seen {
    anchored: Vec<AnchoredCall>,
    moved: Vec<AnchoredCall>,
    /// The tap's calls about calls, in order: "anchored ID", "moved ID
    /// TRUNK", "ended ID".
    log: Vec<String>,
    sdp: Vec<SdpSeen>,
    /// By Call-ID and leg index (a = 0, b = 1).
    packets: HashMap<(Arc<str>, usize), usize>,
    ended: Vec<(Arc<str>, MediaEnd)>,
}

/// A tap that counts (SPEC R1: the recorder's view of the call); its
/// `call_ended` takes the given time (needs the multi-thread runtime when
/// not zero).
#[derive(Default)]
struct CountingTap(Mutex<Seen>, Duration);

impl MediaTap for CountingTap {
    fn call_anchored(&self, call: &AnchoredCall) {
        let mut seen = self.0.lock().unwrap();
        seen.log.push(format!("anchored {}", call.call_id));
        seen.anchored.push(call.clone());
    }

    fn call_moved(&self, call: &AnchoredCall, _at_unix_ns: u64) {
        let mut seen = self.0.lock().unwrap();
        seen.log
            .push(format!("moved {} {}", call.call_id, call.trunk));
        seen.moved.push(call.clone());
    }

    fn sdp(
        &self,
        _call_id: &Arc<str>,
        from: Leg,
        _at_unix_ns: u64,
        payload_types: &[(u8, String)],
        direction: MediaDirection,
    ) {
        self.0
            .lock()
            .unwrap()
            .sdp
            .push((from, direction, payload_types.to_vec()));
    }

    fn packet(&self, call_id: &Arc<str>, from: Leg, _arrival_unix_ns: u64, _datagram: &[u8]) {
        *self
            .0
            .lock()
            .unwrap()
            .packets
            .entry((call_id.clone(), from.index()))
            .or_default() += 1;
    }

    fn call_ended(&self, call_id: &Arc<str>, _at_unix_ns: u64, end: MediaEnd) {
        // A recorder finishing a journal may take a moment (fsync): long
        // enough for another task's call to overtake this one if nothing
        // orders them. `block_in_place` lets this worker's other tasks
        // (the proxy's driver) run on meanwhile, as they would if the
        // runtime had put them elsewhere.
        if !self.1.is_zero() {
            tokio::task::block_in_place(|| std::thread::sleep(self.1));
        }
        let mut seen = self.0.lock().unwrap();
        seen.log.push(format!("ended {call_id}"));
        seen.ended.push((call_id.clone(), end));
    }
}

impl CountingTap {
    fn packets(&self, call_id: &str, leg: Leg) -> usize {
        let seen = self.0.lock().unwrap();
        seen.packets
            .iter()
            .filter(|((id, l), _)| &**id == call_id && *l == leg.index())
            .map(|(_, n)| *n)
            .sum()
    }

    fn ended(&self) -> Vec<(String, MediaEnd)> {
        let seen = self.0.lock().unwrap();
        seen.ended
            .iter()
            .map(|(id, end)| (id.to_string(), *end))
            .collect()
    }
}

fn sdp(rtp: SocketAddr) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
        ip = rtp.ip(),
        port = rtp.port()
    )
}

/// Where an SDP body sends RTP.
fn rtp_target(body: &[u8]) -> SocketAddr {
    let text = String::from_utf8_lossy(body);
    let ip = text
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .unwrap()
        .trim();
    let port = text
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap();
    format!("{ip}:{port}").parse().unwrap()
}

fn set_sdp<T>(headers: &mut hotsite_sip::message::Headers, body: &mut Bytes, sdp: T)
where
    T: Into<Bytes>,
{
    headers.set(Header::new(HeaderName::ContentType, "application/sdp"));
    *body = sdp.into();
}

/// An RTP packet: PCMU, `seq`, `ssrc`, a payload that names both.
fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut packet = vec![0x80, 0];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend(std::iter::repeat_n(0xd5, 160));
    packet
}

fn seq_ssrc(packet: &[u8]) -> (u16, u32) {
    (
        u16::from_be_bytes([packet[2], packet[3]]),
        u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
    )
}

/// The next datagram on `socket` within 2 s, and where it came from.
async fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 2048];
    let (n, from) = timeout(Duration::from_secs(2), socket.recv_from(&mut buf))
        .await
        .expect("a datagram within 2 s")
        .unwrap();
    buf.truncate(n);
    (buf, from)
}

/// Nothing on `socket` for `wait`.
async fn silent(socket: &UdpSocket, wait: Duration) -> bool {
    let mut buf = vec![0u8; 2048];
    timeout(wait, socket.recv_from(&mut buf)).await.is_err()
}

/// A SIP trunk on 127.0.0.1: answers INVITE with 200 and an SDP naming
/// `media` (re-INVITEs too), BYE with 200; reports each INVITE's SDP.
async fn sip_trunk(media: SocketAddr) -> (SocketAddr, mpsc::UnboundedReceiver<Bytes>) {
    scripted_trunk(media, Vec::new()).await
}

/// [`sip_trunk`] whose first INVITEs (by CSeq, so retransmissions get
/// the same) are answered with `first` statuses in turn (407, 503, …),
/// and the rest with 200.
async fn scripted_trunk(
    media: SocketAddr,
    first: Vec<u16>,
) -> (SocketAddr, mpsc::UnboundedReceiver<Bytes>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let (offers, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        let mut script = first.into_iter();
        let mut answered: HashMap<(String, u32), u16> = HashMap::new();
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(Message::Request(request)) = parse_bytes(Bytes::copy_from_slice(&buf[..n]))
            else {
                continue;
            };
            let answer = match request.method {
                Method::Invite => {
                    let key = (
                        request.headers.call_id().unwrap_or_default().to_owned(),
                        request.headers.cseq().map_or(0, |c| c.seq),
                    );
                    let status = *answered
                        .entry(key)
                        .or_insert_with(|| script.next().unwrap_or(200));
                    if status != 200 {
                        let mut refused =
                            response_to(&request, StatusCode::new(status).unwrap(), Some("trunk"));
                        if status == 407 {
                            refused.headers.push(Header::new(
                                HeaderName::ProxyAuthenticate,
                                "Digest realm=\"trunk\", nonce=\"n1\"",
                            ));
                        }
                        let _ = socket.send_to(&refused.to_bytes(), from).await;
                        continue;
                    }
                    let _ = offers.send(request.body.clone());
                    let mut ok = response_to(&request, StatusCode::OK, Some("trunk"));
                    ok.headers.push(Header::new(
                        HeaderName::Contact,
                        format!("<sip:callee@{addr}>"),
                    ));
                    set_sdp(&mut ok.headers, &mut ok.body, sdp(media));
                    ok
                }
                Method::Ack => continue,
                _ => response_to(&request, StatusCode::OK, Some("trunk")),
            };
            let _ = socket.send_to(&answer.to_bytes(), from).await;
        }
    });
    (addr, received)
}

/// The caller's SIP side: the driver tests' caller with SDP in its INVITEs.
impl Caller {
    fn invite_sdp(&self, call_id: &str, media: SocketAddr) -> Request {
        self.invite_sdp_cseq(call_id, media, 1)
    }

    /// The INVITE again with CSeq `cseq` and its own branch (a retry after
    /// a 401/407 challenge keeps the Call-ID and From tag).
    fn invite_sdp_cseq(&self, call_id: &str, media: SocketAddr, cseq: u32) -> Request {
        let mut invite =
            self.new_invite(call_id, "caller", cseq, &format!("z9hG4bK{call_id}-{cseq}"));
        set_sdp(&mut invite.headers, &mut invite.body, sdp(media));
        invite
    }

    /// The final response to what was sent last.
    async fn final_answer(&self) -> Response {
        self.final_response().await.1
    }

    /// The ACK of a non-2xx final answer (§17.1.1.3: the INVITE's branch,
    /// the answer's To).
    fn ack_refused(&self, invite: &Request, refused: &Response) -> Request {
        let mut ack = Request::new(Method::Ack, invite.uri.clone());
        let h = &mut ack.headers;
        h.push(invite.headers.get(HeaderName::Via).unwrap().clone());
        h.push(Header::new(HeaderName::MaxForwards, "70"));
        h.push(invite.headers.get(HeaderName::From).unwrap().clone());
        h.push(refused.headers.get(HeaderName::To).unwrap().clone());
        h.push(invite.headers.get(HeaderName::CallId).unwrap().clone());
        let seq = invite.headers.cseq().unwrap().seq;
        h.push(Header::new(HeaderName::CSeq, format!("{seq} ACK")));
        ack
    }
}

/// A port range of 64 for this process's relay: media ports cannot be
/// ephemeral (they are configured), so each test process takes its own
/// stretch above the usual ephemeral range's start, and a port another
/// program holds is skipped by the relay anyway.
fn media_ports(slot: u32) -> String {
    let base = 40_000 + (std::process::id() % 150) * 128 + slot * 64;
    format!("{base}-{}", base + 63)
}

fn anchored_config(trunk: SocketAddr, slot: u32) -> VoiceConfig {
    let mut trunk = TrunkConfig::new("t1", &trunk.to_string(), 10);
    trunk.media_region = "eu-west".into();
    trunk.failover_region = "eu-central".into();
    trunk.probe.enabled = false;
    let mut config = VoiceConfig::new("127.0.0.1:0", vec![trunk]);
    config.groups = vec![GroupConfig {
        name: "recorded".into(),
        distribution: Default::default(),
        trunks: vec!["t1".into()],
        max_attempts: None,
        prefixes: Vec::new(),
        media: MediaModeConfig::Anchor,
    }];
    config.media.ports = media_ports(slot);
    config.media.relatch_after = Duration::from_millis(100);
    config
}

/// Waits (bounded) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} within 2 s");
}

/// SPEC R1: a call through an anchored group; RTP both ways through our
/// ports (symmetric: each far end hears from where it sends to); the
/// trunk's media server hands over after a 300 ms gap from another port
/// with a new SSRC and a jumped sequence, and audio keeps flowing both ways
/// with no re-INVITE; an old source that comes back is not let in; the tap
/// counted every accepted packet per leg; BYE ends the media.
#[tokio::test]
async fn rtp_flows_both_ways_through_a_handover() {
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (trunk, mut offers) = sip_trunk(server_rtp.local_addr().unwrap()).await;
    let tap = Arc::new(CountingTap::default());
    let handle = hotsite_voice::start(
        &anchored_config(trunk, 0),
        &hotsite_host::Deps::detached(),
        Some(tap.clone()),
    )
    .await
    .unwrap()
    .0;
    let caller = Caller::new(handle.local_addr()).await;
    let invite = caller.invite_sdp("media-1", caller_rtp.local_addr().unwrap());
    caller.send(&invite).await;
    let ok = caller.final_answer().await;
    assert_eq!(ok.status, StatusCode::OK);
    caller
        .send(&caller.in_dialog(Method::Ack, &invite, &ok, 1))
        .await;
    let offer = timeout(Duration::from_secs(2), offers.recv())
        .await
        .unwrap()
        .unwrap();
    // Both SDPs name our ports, not the far ends'.
    let b_side = rtp_target(&offer);
    let a_side = rtp_target(&ok.body);
    assert_ne!(b_side, caller_rtp.local_addr().unwrap());
    assert_ne!(a_side, server_rtp.local_addr().unwrap());
    assert_eq!(a_side.ip(), b_side.ip());

    // Audio both ways, 20 packets each.
    let (mut from_caller, mut from_server) = (0usize, 0usize);
    for seq in 0..20u16 {
        caller_rtp.send_to(&rtp(seq, 0xca11), a_side).await.unwrap();
        from_caller += 1;
        server_rtp.send_to(&rtp(seq, 0x5e41), b_side).await.unwrap();
        from_server += 1;
        let (packet, source) = recv(&server_rtp).await;
        assert_eq!(seq_ssrc(&packet), (seq, 0xca11));
        assert_eq!(
            source, b_side,
            "symmetric: the server hears from where it sends"
        );
        let (packet, source) = recv(&caller_rtp).await;
        assert_eq!(seq_ssrc(&packet), (seq, 0x5e41));
        assert_eq!(source, a_side);
    }

    // The handover: the server goes quiet for 300 ms (relatch_after is
    // 100 ms), then resumes from a new port, new SSRC, jumped sequence.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resumed_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    resumed_rtp
        .send_to(&rtp(40_000, 0xbeef), b_side)
        .await
        .unwrap();
    from_server += 1;
    let (packet, _) = recv(&caller_rtp).await;
    assert_eq!(
        seq_ssrc(&packet),
        (40_000, 0xbeef),
        "the caller hears the new stream"
    );
    for seq in 20..40u16 {
        caller_rtp.send_to(&rtp(seq, 0xca11), a_side).await.unwrap();
        from_caller += 1;
        let (packet, source) = recv(&resumed_rtp).await;
        assert_eq!(
            seq_ssrc(&packet),
            (seq, 0xca11),
            "the caller's audio follows"
        );
        assert_eq!(source, b_side);
        resumed_rtp
            .send_to(&rtp(40_000 + seq, 0xbeef), b_side)
            .await
            .unwrap();
        from_server += 1;
        let (packet, _) = recv(&caller_rtp).await;
        assert_eq!(seq_ssrc(&packet).1, 0xbeef);
        // The old source, back while the new one is alive: refused.
        if seq == 30 {
            server_rtp.send_to(&rtp(99, 0x5e41), b_side).await.unwrap();
        }
    }
    assert!(
        silent(&caller_rtp, Duration::from_millis(100)).await,
        "the old source was not let in"
    );
    assert!(silent(&server_rtp, Duration::from_millis(10)).await);

    until("the tap's counts", || {
        tap.packets("media-1", Leg::A) == from_caller
            && tap.packets("media-1", Leg::B) == from_server
    })
    .await;
    let media = handle.metrics().media.expect("media metrics");
    assert_eq!(media.relay.packets_a_to_b, from_caller as u64);
    assert_eq!(media.relay.packets_b_to_a, from_server as u64);
    assert_eq!(media.relay.relatches, 1);
    assert_eq!(media.relay.refused, 1);
    {
        let seen = tap.0.lock().unwrap();
        assert_eq!(seen.anchored.len(), 1);
        let call = &seen.anchored[0];
        assert_eq!(
            (&*call.call_id, call.trunk.as_str(), call.group.as_str()),
            ("media-1", "t1", "recorded")
        );
        assert_eq!(
            (call.media_region.as_str(), call.failover_region.as_str()),
            ("eu-west", "eu-central")
        );
        let legs: Vec<(Leg, MediaDirection)> = seen.sdp.iter().map(|(l, d, _)| (*l, *d)).collect();
        assert_eq!(
            legs,
            [
                (Leg::A, MediaDirection::SendRecv),
                (Leg::B, MediaDirection::SendRecv)
            ]
        );
        assert_eq!(
            seen.sdp[0].2,
            [
                (0, "PCMU/8000".into()),
                (101, "telephone-event/8000".into())
            ]
        );
    }

    caller
        .send(&caller.in_dialog(Method::Bye, &invite, &ok, 2))
        .await;
    until("the media released", || {
        tap.ended() == [("media-1".to_owned(), MediaEnd::Bye)]
    })
    .await;
    until("the ports back", || {
        handle
            .metrics()
            .media
            .is_some_and(|m| m.sessions.sessions == 0 && m.sessions.ports.in_use == 0)
    })
    .await;
    handle.shutdown().await;
}

/// No RTP after the answer for `timeout` (1 s here): the media is released
/// as timed out, the tap hears it once, an event says so; the signalling
/// is left alone.
#[tokio::test]
async fn silence_times_the_media_out() {
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (trunk, _offers) = sip_trunk(server_rtp.local_addr().unwrap()).await;
    let tap = Arc::new(CountingTap::default());
    let mut config = anchored_config(trunk, 1);
    config.media.timeout = Duration::from_secs(1);
    let handle = hotsite_voice::start(&config, &hotsite_host::Deps::detached(), Some(tap.clone()))
        .await
        .unwrap()
        .0;
    let mut events = handle.subscribe();
    let caller = Caller::new(handle.local_addr()).await;
    let invite = caller.invite_sdp("media-2", caller_rtp.local_addr().unwrap());
    caller.send(&invite).await;
    assert_eq!(caller.final_answer().await.status, StatusCode::OK);
    let event = timeout(Duration::from_secs(3), async {
        loop {
            if let Ok(ProxyEvent::MediaTimeout(timeout)) = events.recv().await {
                return timeout;
            }
        }
    })
    .await
    .expect("a media timeout within 3 s");
    assert_eq!(event.call_id, "media-2");
    assert_eq!(tap.ended(), [("media-2".to_owned(), MediaEnd::Timeout)]);
    until("the timeout counted", || {
        handle
            .metrics()
            .media
            .is_some_and(|m| m.sessions.timeouts == 1 && m.sessions.sessions == 0)
    })
    .await;
    handle.shutdown().await;
}

/// A media address that is not this host's is refused at start, naming the
/// key, rather than failing every port pair one by one.
#[tokio::test]
async fn a_foreign_media_address_is_refused_at_start() {
    let mut config = anchored_config("127.0.0.1:9".parse().unwrap(), 2);
    config.media.address = Some("192.0.2.77".into());
    let error = match hotsite_voice::start(&config, &hotsite_host::Deps::detached(), None).await {
        Ok(_) => panic!("started with a foreign media address"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.starts_with("voice.media.address: cannot bind"),
        "{error}"
    );
}

/// The tap's order per Call-ID: an INVITE challenged with 407 ends its
/// media, and the caller's retry (same Call-ID, CSeq 2) anchors it again.
/// The tap keys calls by Call-ID (the recorder does), so it must hear the
/// first call's end before the second's start, even when the first call's
/// end takes a while (the tap here takes 150 ms in `call_ended`, as a
/// recorder's fsync might) and the runtime has threads to overtake it
/// with (SPEC R1: otherwise the recorder keeps the first journal and
/// drops the real call's packets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenged_invite_ends_before_its_retry_is_anchored() {
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (trunk, _offers) = scripted_trunk(server_rtp.local_addr().unwrap(), vec![407]).await;
    let tap = Arc::new(CountingTap(Mutex::default(), Duration::from_millis(150)));
    let handle = hotsite_voice::start(
        &anchored_config(trunk, 3),
        &hotsite_host::Deps::detached(),
        Some(tap.clone()),
    )
    .await
    .unwrap()
    .0;
    let caller = Caller::new(handle.local_addr()).await;
    let first = caller.invite_sdp("media-407", caller_rtp.local_addr().unwrap());
    caller.send(&first).await;
    let challenge = caller.final_answer().await;
    assert_eq!(challenge.status.as_u16(), 407);
    caller.send(&caller.ack_refused(&first, &challenge)).await;
    let retry = caller.invite_sdp_cseq("media-407", caller_rtp.local_addr().unwrap(), 2);
    caller.send(&retry).await;
    let ok = loop {
        let response = caller.final_answer().await;
        if response.headers.cseq().unwrap().seq == 2 {
            break response;
        }
    };
    assert_eq!(ok.status, StatusCode::OK);
    caller
        .send(&caller.in_dialog(Method::Bye, &retry, &ok, 3))
        .await;
    until("both calls ended", || tap.ended().len() == 2).await;
    let log = tap.0.lock().unwrap().log.clone();
    assert_eq!(
        log,
        [
            "anchored media-407",
            "ended media-407",
            "anchored media-407",
            "ended media-407"
        ]
    );
    handle.shutdown().await;
}

/// SPEC V3 through the relay: trunk 1 answers 503, the call fails over to
/// trunk 2, and the tap hears `call_moved` with trunk 2's name and regions
/// after `call_anchored` named trunk 1.
#[tokio::test]
async fn a_failover_reaches_the_tap_as_a_move() {
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (first, _) = scripted_trunk(server_rtp.local_addr().unwrap(), vec![503]).await;
    let (second, _) = sip_trunk(server_rtp.local_addr().unwrap()).await;
    let mut config = anchored_config(first, 4);
    let mut t2 = TrunkConfig::new("t2", &second.to_string(), 20);
    t2.media_region = "us-east".into();
    t2.failover_region = "us-west".into();
    t2.probe.enabled = false;
    config.trunks.push(t2);
    config.groups[0].trunks.push("t2".into());
    let tap = Arc::new(CountingTap::default());
    let handle = hotsite_voice::start(&config, &hotsite_host::Deps::detached(), Some(tap.clone()))
        .await
        .unwrap()
        .0;
    let caller = Caller::new(handle.local_addr()).await;
    let invite = caller.invite_sdp("media-moved", caller_rtp.local_addr().unwrap());
    caller.send(&invite).await;
    let ok = caller.final_answer().await;
    assert_eq!(ok.status, StatusCode::OK);
    until("the move", || !tap.0.lock().unwrap().moved.is_empty()).await;
    {
        let seen = tap.0.lock().unwrap();
        assert_eq!(seen.anchored[0].trunk, "t1");
        let moved = &seen.moved[0];
        assert_eq!(
            (
                &*moved.call_id,
                moved.trunk.as_str(),
                moved.media_region.as_str(),
                moved.failover_region.as_str()
            ),
            ("media-moved", "t2", "us-east", "us-west")
        );
        assert_eq!(moved.started_unix_ms, seen.anchored[0].started_unix_ms);
    }
    caller
        .send(&caller.in_dialog(Method::Bye, &invite, &ok, 2))
        .await;
    until("the media released", || tap.ended().len() == 1).await;
    handle.shutdown().await;
}

/// Security (RTP bleed): with `strict_source` (the default) a sender on
/// another IP (127.0.0.2) than the caller's SDP named (127.0.0.1) cannot
/// take the caller's stream, not even after it has been silent longer
/// than `relatch_after`; it is counted as foreign. The caller's own host
/// from another port after the silence is followed (a handover).
#[tokio::test]
async fn a_foreign_ip_cannot_take_a_silent_stream() {
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let stranger = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let (trunk, _offers) = sip_trunk(server_rtp.local_addr().unwrap()).await;
    let tap = Arc::new(CountingTap::default());
    let handle = hotsite_voice::start(
        &anchored_config(trunk, 5),
        &hotsite_host::Deps::detached(),
        Some(tap.clone()),
    )
    .await
    .unwrap()
    .0;
    let caller = Caller::new(handle.local_addr()).await;
    let invite = caller.invite_sdp("media-bleed", caller_rtp.local_addr().unwrap());
    caller.send(&invite).await;
    let ok = caller.final_answer().await;
    let a_side = rtp_target(&ok.body);
    caller_rtp.send_to(&rtp(1, 0xca11), a_side).await.unwrap();
    assert_eq!(seq_ssrc(&recv(&server_rtp).await.0), (1, 0xca11));
    // Silent for 300 ms (relatch_after is 100 ms): the stranger tries.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for seq in 0..5u16 {
        stranger.send_to(&rtp(seq, 0xbad), a_side).await.unwrap();
    }
    assert!(
        silent(&server_rtp, Duration::from_millis(200)).await,
        "nothing from 127.0.0.2 reached the trunk"
    );
    // The caller's host from another port: a handover, followed.
    let moved = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    moved.send_to(&rtp(2, 0xca12), a_side).await.unwrap();
    assert_eq!(seq_ssrc(&recv(&server_rtp).await.0), (2, 0xca12));
    let relay = handle.metrics().media.expect("media metrics").relay;
    assert_eq!((relay.refused_foreign, relay.relatches), (5, 1));
    assert_eq!(
        tap.packets("media-bleed", Leg::A),
        2,
        "the stranger's packets are not recorded"
    );
    caller
        .send(&caller.in_dialog(Method::Bye, &invite, &ok, 2))
        .await;
    until("the media released", || tap.ended().len() == 1).await;
    handle.shutdown().await;
}
