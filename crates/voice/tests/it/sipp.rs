//! The proxy between real SIP peers: SIPp (Debian's `sip-tester`) as the caller
//! and as the trunks, with the scenarios of `tests/sipp/` (SPEC V1, V2).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hotsite_voice::config::{TrunkConfig, VoiceConfig};
use tokio::process::{Child, Command};

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../tests/sipp/{name}"))
}

/// A free UDP port on 127.0.0.1 (bound, read, released).
fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A SIPp trunk: answers calls by `scenario`, OPTIONS with `-aa`.
fn trunk(scenario_file: &str, port: u16) -> Child {
    trunk_over(scenario_file, port, "u1")
}

/// A SIPp trunk over SIPp's transport mode `mode` (`u1` UDP, `t1` TCP).
fn trunk_over(scenario_file: &str, port: u16, mode: &str) -> Child {
    Command::new("sipp")
        .arg("-sf")
        .arg(scenario(scenario_file))
        .args(["-t", mode])
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-aa",
            "-nostdin",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp (Debian package sip-tester; scripts/test installs it)")
}

/// What the SIPp caller counted.
#[derive(Debug)]
struct Calls {
    successful: u64,
    failed: u64,
}

/// Places `calls` calls at `rate` per second through `proxy` with SIPp's
/// `tests/sipp/uac.xml`, and reads its statistics file.
async fn place_calls(proxy: SocketAddr, rate: u32, calls: u32, dir: &Path) -> Calls {
    place_calls_over(proxy, rate, calls, dir, "u1").await
}

/// [`place_calls`] over SIPp's transport mode `mode` (`u1` UDP, `t1` TCP).
async fn place_calls_over(
    proxy: SocketAddr,
    rate: u32,
    calls: u32,
    dir: &Path,
    mode: &str,
) -> Calls {
    let stats = dir.join(format!("uac-{}.csv", free_port()));
    let status = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new("sipp")
            .arg("-sf")
            .arg(scenario("uac.xml"))
            .args(["-t", mode])
            // Free for TCP too: over `t1` SIPp binds a TCP port, and one
            // free only for UDP failed SIPp at start (exit 254, no call) in CI.
            .args(["-i", "127.0.0.1", "-p", &free_port_both().to_string()])
            .args(["-r", &rate.to_string(), "-m", &calls.to_string()])
            .args([
                "-d",
                "0",
                "-nostdin",
                "-timeout",
                "90s",
                "-trace_stat",
                "-stf",
            ])
            .arg(&stats)
            .arg(proxy.to_string())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status(),
    )
    .await
    .expect("SIPp caller finished within 120 s")
    .expect("sipp runs");
    let text = std::fs::read_to_string(&stats).expect("SIPp statistics file");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(';').collect();
    let last: Vec<&str> = lines.last().unwrap().split(';').collect();
    let column = |name: &str| -> u64 {
        let index = header.iter().position(|h| *h == name).unwrap();
        last[index].trim().parse().unwrap()
    };
    let calls = Calls {
        successful: column("SuccessfulCall(C)"),
        failed: column("FailedCall(C)"),
    };
    assert!(
        status.success() == (calls.failed == 0),
        "sipp exit {status} vs {calls:?}"
    );
    calls
}

/// The handle's status is refreshed every 250 ms: wait for the last calls to
/// show in it.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hotsite-sipp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(trunks: &[(&str, u16, u32)]) -> VoiceConfig {
    let trunks = trunks
        .iter()
        .map(|(name, port, priority)| {
            let mut trunk = TrunkConfig::new(name, &format!("127.0.0.1:{port}"), *priority);
            trunk.probe.interval = Duration::from_millis(500);
            trunk.probe.timeout = Duration::from_millis(400);
            trunk.probe.fall = 2;
            trunk.probe.rise = 2;
            trunk
        })
        .collect();
    // Port 0: the proxy picks one free for both UDP and TCP (a port free for
    // UDP alone may be taken for TCP).
    VoiceConfig::new("127.0.0.1:0", trunks)
}

/// SPEC V1: trunk 1 (preferred) answers every INVITE with 503: every call is
/// completed through trunk 2 within the same attempt, none fails; trunk 1 stays
/// in service (it answers, so it is alive) and each call tried it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trunk_503_calls_complete_via_the_next_trunk() {
    let dir = temp_dir("503");
    let (p1, p2) = (free_port(), free_port());
    let _t1 = trunk("uas_503.xml", p1);
    let _t2 = trunk("uas.xml", p2);
    let proxy = hotsite_voice::start(
        &config(&[("t1", p1, 10), ("t2", p2, 20)]),
        &hotsite_host::Deps::detached(),
        None,
    )
    .await
    .unwrap()
    .0;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = place_calls(proxy.local_addr(), 100, 200, &dir).await;
    assert_eq!((calls.successful, calls.failed), (200, 0), "{calls:?}");
    settle().await;
    let status = proxy.status();
    let t1 = status.iter().find(|t| t.name == "t1").unwrap();
    let t2 = status.iter().find(|t| t.name == "t2").unwrap();
    assert!(t1.in_service, "a trunk answering 503 is alive: {t1:?}");
    assert_eq!(t1.stats.attempts, 200, "{t1:?}");
    assert_eq!(t1.stats.failed_over, 200, "{t1:?}");
    assert_eq!(t2.stats.answered, 200, "{t2:?}");
    assert_eq!(proxy.metrics().stats.failovers, 200);
    proxy.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// SPEC V1, V2: trunk 1 is killed between two runs of calls: calls that try it
/// before it is known down fail over within their attempt (none fails), it is
/// out of service within one transaction timeout (no probe needed), and the
/// next calls skip it. It comes back: after the prober's recovery threshold it
/// takes traffic again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_trunk_is_routed_around_and_takes_traffic_again_after_recovery() {
    let dir = temp_dir("kill");
    let (p1, p2) = (free_port(), free_port());
    let mut t1 = trunk("uas.xml", p1);
    let _t2 = trunk("uas.xml", p2);
    let mut voice = config(&[("t1", p1, 10), ("t2", p2, 20)]);
    // Only passive detection may take it out: probes that would notice first
    // are slowed down.
    voice.trunks[0].probe.interval = Duration::from_secs(10);
    voice.trunks[0].probe.timeout = Duration::from_secs(2);
    let proxy = hotsite_voice::start(&voice, &hotsite_host::Deps::detached(), None)
        .await
        .unwrap()
        .0;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let calls = place_calls(proxy.local_addr(), 100, 100, &dir).await;
    assert_eq!((calls.successful, calls.failed), (100, 0), "{calls:?}");
    settle().await;
    let answered_by_t1 = |proxy: &hotsite_voice::VoiceHandle| {
        proxy
            .status()
            .iter()
            .find(|t| t.name == "t1")
            .unwrap()
            .stats
            .answered
    };
    assert_eq!(
        answered_by_t1(&proxy),
        100,
        "the preferred trunk takes the calls"
    );

    // Silently dead: the port drops every datagram (SIPp killed, nothing sent back).
    t1.kill().await.unwrap();
    // 300 calls over 6 s: the first 2 s of them may try t1 (one invite_timeout).
    let calls = place_calls(proxy.local_addr(), 50, 300, &dir).await;
    assert_eq!((calls.successful, calls.failed), (300, 0), "{calls:?}");
    settle().await;
    let status = proxy.status();
    let s1 = status.iter().find(|t| t.name == "t1").unwrap();
    assert!(!s1.in_service, "{s1:?}");
    assert!(s1.detail.contains("INVITE unanswered"), "{s1:?}");
    // Calls sent while it was not yet known down waited one invite_timeout (2 s)
    // and went to t2 (≈ 100 at 50 calls/s); after that, none tried it.
    assert!(
        (1..=120).contains(&s1.stats.no_reply) && s1.stats.attempts == 100 + s1.stats.no_reply,
        "only the calls of the first invite_timeout tried the dead trunk: {s1:?}"
    );

    // Back: after `rise` answered probes it is in service and preferred again.
    let _t1 = trunk("uas.xml", p1);
    let mut back = false;
    for _ in 0..300 {
        if proxy
            .status()
            .iter()
            .any(|t| t.name == "t1" && t.in_service)
        {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "t1 back in service within 30 s of its return");
    let before = answered_by_t1(&proxy);
    let calls = place_calls(proxy.local_addr(), 100, 50, &dir).await;
    assert_eq!((calls.successful, calls.failed), (50, 0), "{calls:?}");
    settle().await;
    assert_eq!(answered_by_t1(&proxy) - before, 50, "traffic is back on t1");
    proxy.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits (up to 5 s) until a TCP connection to `port` is accepted.
async fn wait_listening(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on TCP port {port} after 5 s");
}

/// A free port for both UDP and TCP on 127.0.0.1.
fn free_port_both() -> u16 {
    for _ in 0..50 {
        let port = free_port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// TCP end to end (issue: "over UDP and TCP"; SPEC V1, V2): SIPp calls over
/// TCP, both trunks are SIPp over TCP. Trunk 1 takes the first calls; then
/// it is killed, so its port refuses connections: the next call's connection
/// attempt fails, that call moves to trunk 2 at once (no invite_timeout to
/// wait), trunk 1 is out of service with the reason, and every call
/// completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_calls_and_a_trunk_that_refuses_connections() {
    let dir = temp_dir("tcp");
    let (p1, p2) = (free_port_both(), free_port_both());
    let mut t1 = trunk_over("uas.xml", p1, "t1");
    let _t2 = trunk_over("uas.xml", p2, "t1");
    // Started before they listen, the proxy would find both trunks refusing
    // connections and mark them (rightly).
    for port in [p1, p2] {
        wait_listening(port).await;
    }
    let mut voice = config(&[("t1", p1, 10), ("t2", p2, 20)]);
    for trunk in &mut voice.trunks {
        trunk.transport = "tcp".into();
        trunk.probe.interval = Duration::from_secs(10);
        trunk.probe.timeout = Duration::from_secs(2);
    }
    let proxy = hotsite_voice::start(&voice, &hotsite_host::Deps::detached(), None)
        .await
        .unwrap()
        .0;
    let mut events = proxy.subscribe();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let calls = place_calls_over(proxy.local_addr(), 50, 50, &dir, "t1").await;
    assert_eq!((calls.successful, calls.failed), (50, 0), "{calls:?}");
    settle().await;
    let t1_status = |proxy: &hotsite_voice::VoiceHandle| {
        proxy.status().into_iter().find(|t| t.name == "t1").unwrap()
    };
    assert_eq!(
        t1_status(&proxy).stats.answered,
        50,
        "{:?}",
        t1_status(&proxy)
    );
    assert_eq!(
        t1_status(&proxy).transport,
        hotsite_voice::proxy::Transport::Tcp
    );

    t1.kill().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = place_calls_over(proxy.local_addr(), 50, 100, &dir, "t1").await;
    assert_eq!((calls.successful, calls.failed), (100, 0), "{calls:?}");
    settle().await;
    let s1 = t1_status(&proxy);
    assert!(!s1.in_service, "{s1:?}");
    assert!(s1.detail.contains("TCP connect"), "{s1:?}");
    let mut unreachable = 0;
    let mut silent = 0;
    while let Ok(event) = events.try_recv() {
        if let hotsite_voice::ProxyEvent::Failover(failover) = event {
            if failover.cause.starts_with("unreachable") {
                unreachable += 1;
            } else if failover.cause.starts_with("no reply") {
                silent += 1;
            }
        }
    }
    assert!(unreachable >= 1, "a refused connection moved a call on");
    assert_eq!(silent, 0, "no call waited for invite_timeout");
    proxy.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
