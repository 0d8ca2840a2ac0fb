//! The driver against two UDP "trunks" on loopback (SPEC V1, V2).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hotsite_sip::message::{
    parse_bytes, response_to, Branch, Header, HeaderName, Message, Method, NewRequest, Request,
    Response, StatusCode, Uri,
};
use hotsite_voice::config::{TrunkConfig, VoiceConfig};
use hotsite_voice::routing::Cause;
use hotsite_voice::ProxyEvent;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// How a test trunk answers INVITEs.
#[derive(Clone, Copy)]
enum Behaviour {
    /// 503 Service Unavailable.
    Unavailable,
    /// 100, 180, 200 (with Contact and the Record-Route echoed).
    Answer,
    /// Nothing (but OPTIONS are answered).
    Silent,
}

/// A trunk on 127.0.0.1: answers INVITE as told, OPTIONS and BYE with 200,
/// absorbs ACK. Returns its address and how many INVITEs it saw.
async fn trunk(behaviour: Behaviour) -> (SocketAddr, JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(Message::Request(request)) = parse_bytes(Bytes::copy_from_slice(&buf[..n]))
            else {
                continue;
            };
            let answers: Vec<Response> = match (&request.method, behaviour) {
                (Method::Invite, Behaviour::Unavailable) => {
                    vec![response_to(
                        &request,
                        StatusCode::SERVICE_UNAVAILABLE,
                        Some("u"),
                    )]
                }
                (Method::Invite, Behaviour::Answer) => {
                    [StatusCode::TRYING, StatusCode::RINGING, StatusCode::OK]
                        .into_iter()
                        .map(|status| {
                            let mut response = response_to(&request, status, Some("a"));
                            response.headers.push(Header::new(
                                HeaderName::Contact,
                                format!("<sip:callee@{addr}>"),
                            ));
                            response
                        })
                        .collect()
                }
                (Method::Invite, Behaviour::Silent) | (Method::Ack, _) => Vec::new(),
                _ => vec![response_to(&request, StatusCode::OK, Some("o"))],
            };
            for answer in answers {
                let _ = socket.send_to(&answer.to_bytes(), from).await;
            }
        }
    });
    (addr, task)
}

fn uri(text: &str) -> Uri {
    Uri::parse(text.to_owned()).unwrap()
}

/// The caller's side: sends an INVITE and collects responses (the media
/// tests add their SDP INVITEs to it).
pub(crate) struct Caller {
    pub(crate) socket: UdpSocket,
    pub(crate) proxy: SocketAddr,
}

impl Caller {
    pub(crate) async fn new(proxy: SocketAddr) -> Caller {
        Caller {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            proxy,
        }
    }

    fn invite(&self, call_id: &str) -> Request {
        self.new_invite(call_id, "c", 1, &format!("z9hG4bK{call_id}"))
    }

    /// An INVITE to +4420 from the PBX, without a body.
    pub(crate) fn new_invite(
        &self,
        call_id: &str,
        from_tag: &str,
        cseq: u32,
        branch: &str,
    ) -> Request {
        let me = self.socket.local_addr().unwrap();
        NewRequest {
            method: Method::Invite,
            uri: uri(&format!("sip:+4420@{}", self.proxy)),
            from: uri(&format!("sip:pbx@{me}")),
            from_tag: from_tag.into(),
            to: uri(&format!("sip:+4420@{}", self.proxy)),
            call_id: call_id.into(),
            cseq,
            transport: "UDP".into(),
            sent_by: me.to_string(),
            branch: Branch::from_string(branch.to_owned()),
            max_forwards: 70,
            contact: Some(uri(&format!("sip:pbx@{me}"))),
        }
        .build()
    }

    pub(crate) async fn send(&self, request: &Request) {
        self.socket
            .send_to(&request.to_bytes(), self.proxy)
            .await
            .unwrap();
    }

    /// The next response, within 5 s.
    pub(crate) async fn response(&self) -> Response {
        let mut buf = vec![0u8; 65_535];
        loop {
            let (n, _) = timeout(Duration::from_secs(5), self.socket.recv_from(&mut buf))
                .await
                .expect("a response within 5 s")
                .unwrap();
            if let Ok(Message::Response(response)) = parse_bytes(Bytes::copy_from_slice(&buf[..n]))
            {
                return response;
            }
        }
    }

    /// Responses until a final one.
    pub(crate) async fn final_response(&self) -> (Vec<u16>, Response) {
        let mut seen = Vec::new();
        loop {
            let response = self.response().await;
            seen.push(response.status.as_u16());
            if response.status.is_final() {
                return (seen, response);
            }
        }
    }

    /// ACK or BYE along the Record-Route set of `ok`.
    pub(crate) fn in_dialog(
        &self,
        method: Method,
        invite: &Request,
        ok: &Response,
        cseq: u32,
    ) -> Request {
        let me = self.socket.local_addr().unwrap();
        let mut request = Request::new(method.clone(), ok.headers.contacts()[0].uri.clone());
        let h = &mut request.headers;
        h.push(Header::new(
            HeaderName::Via,
            format!("SIP/2.0/UDP {me};branch=z9hG4bK{method}{cseq}"),
        ));
        for route in ok.headers.record_routes() {
            h.push(Header::new(HeaderName::Route, format!("<{}>", route.uri)));
        }
        h.push(Header::new(HeaderName::MaxForwards, "70"));
        h.push(invite.headers.get(HeaderName::From).unwrap().clone());
        h.push(ok.headers.get(HeaderName::To).unwrap().clone());
        h.push(invite.headers.get(HeaderName::CallId).unwrap().clone());
        h.push(Header::new(HeaderName::CSeq, format!("{cseq} {method}")));
        request
    }
}

fn config(trunks: &[(&str, SocketAddr, u32)]) -> VoiceConfig {
    let trunks = trunks
        .iter()
        .map(|(name, addr, priority)| {
            let mut trunk = TrunkConfig::new(name, &addr.to_string(), *priority);
            trunk.probe.interval = Duration::from_millis(200);
            trunk.probe.timeout = Duration::from_millis(150);
            trunk
        })
        .collect();
    let mut config = VoiceConfig::new("127.0.0.1:0", trunks);
    config.invite_timeout = Duration::from_millis(300);
    config.t1 = Duration::from_millis(100);
    config
}

/// SPEC V1 end to end: trunk 1 answers 503, trunk 2 answers the same call;
/// ACK and BYE follow the Record-Route through the proxy; counters and the
/// failover event tell the story.
#[tokio::test]
async fn a_503_fails_over_to_the_second_trunk_over_udp() {
    let (t1, _t1_task) = trunk(Behaviour::Unavailable).await;
    let (t2, _t2_task) = trunk(Behaviour::Answer).await;
    let handle = hotsite_voice::start(
        &config(&[("t1", t1, 10), ("t2", t2, 20)]),
        &hotsite_host::Deps::detached(),
        None,
    )
    .await
    .unwrap()
    .0;
    let mut events = handle.subscribe();
    let caller = Caller::new(handle.local_addr()).await;

    let invite = caller.invite("udp-1");
    caller.send(&invite).await;
    let (seen, ok) = caller.final_response().await;
    assert_eq!(seen, [100, 180, 200]);
    assert_eq!(ok.headers.vias().len(), 1);
    assert_eq!(ok.headers.record_routes().len(), 1);

    caller
        .send(&caller.in_dialog(Method::Ack, &invite, &ok, 1))
        .await;
    caller
        .send(&caller.in_dialog(Method::Bye, &invite, &ok, 2))
        .await;
    let bye_ok = caller.response().await;
    assert_eq!(bye_ok.status, StatusCode::OK);
    assert_eq!(bye_ok.headers.cseq().unwrap().method, Method::Bye);

    let mut failover = None;
    while failover.is_none() {
        let event = timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("the failover event")
            .unwrap();
        if let ProxyEvent::Failover(f) = event {
            failover = Some(f);
        }
    }
    let failover = failover.unwrap();
    assert_eq!((&*failover.from.name, &*failover.to.name), ("t1", "t2"));

    // Counters are published after each batch.
    let mut stats = handle.metrics().stats;
    for _ in 0..50 {
        if stats.in_dialog_forwarded == 2 && stats.responses_relayed >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        stats = handle.metrics().stats;
    }
    assert_eq!((stats.calls, stats.answered, stats.failovers), (1, 1, 1));
    assert_eq!(stats.in_dialog_forwarded, 2);
    let status = handle.status();
    assert_eq!(status.len(), 2);
    assert!(status.iter().all(|t| t.in_service), "503 marks nothing");
    handle.shutdown().await;
}

/// SPEC V2: a trunk that does not answer INVITEs is marked out of service by
/// the first unanswered one; the call still completes on trunk 2, and status
/// shows why.
#[tokio::test]
async fn a_silent_trunk_is_marked_and_the_call_completes_elsewhere() {
    let (t1, _t1_task) = trunk(Behaviour::Silent).await;
    let (t2, _t2_task) = trunk(Behaviour::Answer).await;
    let handle = hotsite_voice::start(
        &config(&[("t1", t1, 10), ("t2", t2, 20)]),
        &hotsite_host::Deps::detached(),
        None,
    )
    .await
    .unwrap()
    .0;
    let caller = Caller::new(handle.local_addr()).await;
    caller.send(&caller.invite("udp-2")).await;
    let (seen, _) = caller.final_response().await;
    assert_eq!(seen, [100, 180, 200]);

    let mut t1_status = handle.status()[0].clone();
    for _ in 0..50 {
        if !t1_status.in_service {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        t1_status = handle.status()[0].clone();
    }
    assert!(!t1_status.in_service);
    assert_eq!(t1_status.causes, [Cause::Passive]);
    assert!(
        t1_status.detail.contains("INVITE unanswered"),
        "{}",
        t1_status.detail
    );
    assert_eq!(t1_status.stats.no_reply, 1);

    // t1 still answers OPTIONS: its prober brings it back.
    let mut back = false;
    for _ in 0..100 {
        if handle.status()[0].in_service {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(back, "the prober's next answer clears the passive mark");
    handle.shutdown().await;
}

/// The test's stopwatch.
#[allow(clippy::disallowed_methods)] // a test timing a real exchange
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

/// What a TCP test trunk saw.
#[derive(Default)]
struct TcpTrunkLog {
    connections: usize,
    invites: usize,
    byes: usize,
}

/// A trunk over TCP on 127.0.0.1: answers INVITE with 100/180/200 (Contact
/// with `transport=tcp`), OPTIONS and BYE with 200, absorbs ACK, on the
/// connection each request came on. Stopping the task closes the listener
/// and every connection.
async fn tcp_trunk() -> (
    SocketAddr,
    std::sync::Arc<std::sync::Mutex<TcpTrunkLog>>,
    JoinHandle<()>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(TcpTrunkLog::default()));
    let task = tokio::spawn({
        let log = log.clone();
        async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                log.lock().unwrap().connections += 1;
                let log = log.clone();
                connections.spawn(async move {
                    let mut buf = bytes::BytesMut::new();
                    loop {
                        while let Ok(Some(len)) = hotsite_sip::message::frame_len(&buf) {
                            let frame = buf.split_to(len).freeze();
                            let Ok(Message::Request(request)) = parse_bytes(frame) else {
                                continue;
                            };
                            let statuses: &[StatusCode] = match request.method {
                                Method::Invite => {
                                    log.lock().unwrap().invites += 1;
                                    &[StatusCode::TRYING, StatusCode::RINGING, StatusCode::OK]
                                }
                                Method::Ack => &[],
                                Method::Bye => {
                                    log.lock().unwrap().byes += 1;
                                    &[StatusCode::OK]
                                }
                                _ => &[StatusCode::OK],
                            };
                            for &status in statuses {
                                let mut response = response_to(&request, status, Some("tcp"));
                                if request.method == Method::Invite {
                                    response.headers.push(Header::new(
                                        HeaderName::Contact,
                                        format!("<sip:callee@{addr};transport=tcp>"),
                                    ));
                                }
                                if stream.write_all(&response.to_bytes()).await.is_err() {
                                    return;
                                }
                            }
                        }
                        match stream.read_buf(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                });
            }
        }
    });
    (addr, log, task)
}

/// Over TCP end to end (issue: "over UDP and TCP"; SPEC V1, V2): a UDP caller,
/// trunk 1 over TCP, trunk 2 over UDP. Five calls go through trunk 1 on one
/// connection, each with two Record-Route entries (the sides' transports
/// differ, RFC 5658) so the caller's ACK and BYE reach trunk 1 over TCP.
/// Then trunk 1 goes away (listener and connections closed): the next call's
/// connection is refused, the call moves to trunk 2 at once, not after
/// invite_timeout, and trunk 1 is out of service with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_trunk_carries_calls_on_one_connection_and_refusal_fails_over_at_once() {
    let (t1, log, t1_task) = tcp_trunk().await;
    let (t2, _t2_task) = trunk(Behaviour::Answer).await;
    let mut voice = config(&[("t1", t1, 10), ("t2", t2, 20)]);
    voice.trunks[0].transport = "tcp".into();
    // The call, not a probe, is to find trunk 1 gone.
    voice.trunks[0].probe.interval = Duration::from_secs(30);
    voice.trunks[0].probe.timeout = Duration::from_secs(2);
    // Long enough that a wait for it would show in the setup time.
    voice.invite_timeout = Duration::from_secs(3);
    let handle = hotsite_voice::start(&voice, &hotsite_host::Deps::detached(), None)
        .await
        .unwrap()
        .0;
    let mut events = handle.subscribe();
    let caller = Caller::new(handle.local_addr()).await;

    for n in 0..5 {
        let invite = caller.invite(&format!("tcp-call-{n}"));
        caller.send(&invite).await;
        let (seen, ok) = caller.final_response().await;
        assert_eq!(seen, [100, 180, 200]);
        assert_eq!(ok.headers.record_routes().len(), 2, "{ok:?}");
        caller
            .send(&caller.in_dialog(Method::Ack, &invite, &ok, 1))
            .await;
        caller
            .send(&caller.in_dialog(Method::Bye, &invite, &ok, 2))
            .await;
        let bye_ok = caller.response().await;
        assert_eq!(bye_ok.headers.cseq().unwrap().method, Method::Bye);
        assert_eq!(bye_ok.status, StatusCode::OK);
    }
    {
        let log = log.lock().unwrap();
        assert_eq!((log.invites, log.byes), (5, 5));
        assert_eq!(log.connections, 1, "one connection for calls and probes");
    }

    t1_task.abort();
    let _ = t1_task.await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = now();
    caller.send(&caller.invite("tcp-call-refused")).await;
    let (seen, _) = caller.final_response().await;
    let setup = started.elapsed();
    assert_eq!(seen, [100, 180, 200]);
    assert!(
        setup < Duration::from_secs(2),
        "moved on at the refusal, not after invite_timeout: {setup:?}"
    );
    let mut unreachable = None;
    while let Ok(Ok(event)) = timeout(Duration::from_secs(2), events.recv()).await {
        if let ProxyEvent::Failover(f) = event {
            if f.call_id == "tcp-call-refused" {
                unreachable = Some(f.cause);
                break;
            }
        }
    }
    let cause = unreachable.expect("a failover event for the refused call");
    assert!(cause.starts_with("unreachable: TCP connect"), "{cause}");
    let t1_status = handle
        .status()
        .into_iter()
        .find(|t| t.name == "t1")
        .unwrap();
    assert!(!t1_status.in_service, "{t1_status:?}");
    handle.shutdown().await;
}
