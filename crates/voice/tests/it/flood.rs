//! A flood of INVITEs at a trunk that never answers, through the real UDP
//! driver on loopback (DESIGN.md invariant 6; issue 10): past `max_calls`
//! every INVITE gets 503 with Retry-After and the proxy holds no more calls;
//! when the flood's calls have ended its state is back to idle.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hotsite_sip::message::{parse_bytes, Branch, HeaderName, Message, Method, NewRequest, Uri};
use hotsite_voice::config::{TrunkConfig, VoiceConfig};
use tokio::net::UdpSocket;

const INVITES: u64 = 4_000;
const MAX_CALLS: usize = 1_000;

/// The test's stopwatch.
#[allow(clippy::disallowed_methods)] // a test timing a real exchange
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

/// A trunk that reads and drops everything.
async fn black_hole() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while socket.recv_from(&mut buf).await.is_ok() {}
    });
    addr
}

/// A UDP socket on 127.0.0.1 with a receive buffer for the whole flood's
/// answers.
fn caller_socket() -> UdpSocket {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    socket.set_recv_buffer_size(4 << 20).unwrap();
    socket.set_nonblocking(true).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    UdpSocket::from_std(socket.into()).unwrap()
}

fn invite(me: SocketAddr, proxy: SocketAddr, call_id: &str) -> Bytes {
    let uri = |text: String| Uri::parse(text).unwrap();
    NewRequest {
        method: Method::Invite,
        uri: uri(format!("sip:+4420@{proxy}")),
        from: uri(format!("sip:flood@{me}")),
        from_tag: "f".into(),
        to: uri(format!("sip:+4420@{proxy}")),
        call_id: call_id.into(),
        cseq: 1,
        transport: "UDP".into(),
        sent_by: me.to_string(),
        branch: Branch::from_string(format!("z9hG4bK{call_id}")),
        max_forwards: 70,
        contact: Some(uri(format!("sip:flood@{me}"))),
    }
    .build()
    .to_bytes()
}

/// What the caller got, by Call-ID.
#[derive(Default)]
struct Answers {
    trying: HashSet<String>,
    /// 503 with `Retry-After: 7`.
    refused: HashSet<String>,
    /// 503 without it, or with another value.
    bad_refusals: usize,
}

/// SPEC V1 under a flood (DESIGN.md invariant 6): 4,000 INVITEs with
/// `max_calls` 1,000 at a trunk that never answers. The first 1,000 are
/// admitted (100 Trying), the other 3,000 get `503` with `Retry-After` and
/// never become calls; the proxy never holds more than 1,000. When the
/// calls have ended (408, then timer H) its state is back to idle: no call,
/// branch or tombstone, and its tables at their initial size again; a new
/// call is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_max_calls_is_refused_with_503_and_the_state_returns_to_idle() {
    let mut trunk = TrunkConfig::new("t1", &black_hole().await.to_string(), 10);
    trunk.probe.enabled = false;
    let mut config = VoiceConfig::new("127.0.0.1:0", vec![trunk]);
    config.max_calls = MAX_CALLS;
    config.retry_after = Duration::from_secs(7);
    config.invite_timeout = Duration::from_millis(300);
    // Timer H (64·T1, no ACK from the flood) ends the calls after 6.4 s.
    config.t1 = Duration::from_millis(100);
    let handle = hotsite_voice::start(&config, &hotsite_host::Deps::detached(), None)
        .await
        .unwrap()
        .0;
    let proxy = handle.local_addr();
    let idle = handle.metrics().sizes;

    let caller = Arc::new(caller_socket());
    let me = caller.local_addr().unwrap();
    let answers = Arc::new(Mutex::new(Answers::default()));
    let reader = tokio::spawn({
        let (caller, answers) = (caller.clone(), answers.clone());
        async move {
            let mut buf = vec![0u8; 65_535];
            while let Ok((n, _)) = caller.recv_from(&mut buf).await {
                let Ok(Message::Response(r)) = parse_bytes(Bytes::copy_from_slice(&buf[..n]))
                else {
                    continue;
                };
                let call_id = r.headers.call_id().unwrap_or_default().to_owned();
                let mut answers = answers.lock().unwrap();
                match r.status.as_u16() {
                    100 => {
                        answers.trying.insert(call_id);
                    }
                    503 if r.headers.value(HeaderName::RetryAfter).map(|v| &v[..])
                        == Some(&b"7"[..]) =>
                    {
                        answers.refused.insert(call_id);
                    }
                    503 => answers.bad_refusals += 1,
                    _ => {}
                }
            }
        }
    });

    let mut peak_calls = 0;
    for n in 0..INVITES {
        caller
            .send_to(&invite(me, proxy, &format!("flood-{n}")), proxy)
            .await
            .unwrap();
        if n % 100 == 99 {
            // At most 1,000 datagrams ahead of the proxy: the flood must
            // reach it, not overflow its socket buffer.
            let waited = now();
            while (n + 1).saturating_sub(handle.metrics().stats.datagrams) > 1_000 {
                assert!(waited.elapsed() < Duration::from_secs(20), "proxy stuck");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            peak_calls = peak_calls.max(handle.metrics().sizes.calls);
        }
    }

    // Every INVITE answered: 100 or 503.
    let waited = now();
    loop {
        {
            let answers = answers.lock().unwrap();
            if answers.trying.len() + answers.refused.len() >= INVITES as usize {
                break;
            }
        }
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "every INVITE answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let answers = answers.lock().unwrap();
        assert_eq!(answers.bad_refusals, 0);
        assert_eq!(answers.trying.len(), MAX_CALLS);
        assert_eq!(answers.refused.len(), INVITES as usize - MAX_CALLS);
        assert!(
            answers.trying.is_disjoint(&answers.refused),
            "a refused INVITE never became a call"
        );
        assert!(answers.trying.contains("flood-0") && answers.refused.contains("flood-3999"));
    }
    let stats = handle.metrics().stats;
    assert_eq!(stats.calls, MAX_CALLS as u64);
    assert_eq!(stats.refused_over_capacity, INVITES - MAX_CALLS as u64);
    assert!(peak_calls <= MAX_CALLS, "{peak_calls}");

    // The calls end at ≈7 s; the state is looked at every 10 s: cut down
    // after the burst, then regrown to its initial size.
    let waited = now();
    let mut sizes = handle.metrics().sizes;
    while sizes != idle {
        assert!(
            waited.elapsed() < Duration::from_secs(45),
            "back to idle {idle:?}: {sizes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        sizes = handle.metrics().sizes;
    }

    caller
        .send_to(&invite(me, proxy, "after"), proxy)
        .await
        .unwrap();
    let waited = now();
    while !answers.lock().unwrap().trying.contains("after") {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "a new call admitted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reader.abort();
    handle.shutdown().await;
}
