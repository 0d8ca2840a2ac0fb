//! The SIP peers over real UDP sockets on loopback: a caller straight to a
//! trunk, healthy, rejecting, silent and cancelled, with the trunk's counters
//! and receive log (the answers and silences SPEC V1 and V2 fail over on).
//! Short timers (T1 = 20 ms, so timer B is 1.28 s) keep each test under 2 s.

use std::net::SocketAddr;
use std::time::Duration;

use hotsite_lab::{SipCaller, SipCallerConfig, SipTrunk, SipTrunkConfig, TrunkFault, TrunkStats};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const T1: Duration = Duration::from_millis(20);
const LIMIT: Duration = Duration::from_secs(5);

async fn trunk(name: &str) -> SipTrunk {
    let mut config = SipTrunkConfig::new(name, "127.0.0.1:0".parse().unwrap());
    config.t1 = T1;
    config.t2 = Duration::from_millis(160);
    SipTrunk::start(config).await.unwrap()
}

fn caller_config(to: SocketAddr, calls: u64) -> SipCallerConfig {
    let mut config = SipCallerConfig::new(to, calls, 50.0);
    config.t1 = T1;
    config.t2 = Duration::from_millis(160);
    config.hold = Duration::from_millis(20);
    config
}

/// The trunk's counters once `done` holds (the last ACK or BYE may still be
/// on its way when the caller ends); panics after about 1 s.
async fn stats_until(trunk: &SipTrunk, done: impl Fn(&TrunkStats) -> bool) -> TrunkStats {
    for _ in 0..100 {
        let stats = trunk.stats();
        if done(&stats) {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the trunk's counters did not settle: {:?}", trunk.stats());
}

async fn calls(config: SipCallerConfig) -> Vec<hotsite_lab::CallRecord> {
    let caller = SipCaller::start(config).await.unwrap();
    timeout(LIMIT, caller.wait())
        .await
        .expect("the calls end in time")
}

/// SPEC V1 (the healthy path a proxy relays): every call is answered, ACKed
/// and hung up; the trunk logs each INVITE once with its receive time.
#[tokio::test]
async fn calls_to_a_healthy_trunk_complete() {
    let trunk = trunk("trunk-1").await;
    let records = calls(caller_config(trunk.local_addr(), 3)).await;
    assert_eq!(records.len(), 3);
    for record in &records {
        assert_eq!(record.status, Some(200), "{record:?}");
        assert!(record.bye_completed() && record.finished, "{record:?}");
        let setup = record.setup_time.unwrap();
        assert!(
            setup >= Duration::from_millis(20),
            "answer delay: {setup:?}"
        );
        assert!(record.first_response.unwrap() <= setup);
    }
    let stats = stats_until(&trunk, |s| s.byes == 3).await;
    assert_eq!(
        (stats.invites, stats.answered, stats.acks, stats.byes),
        (3, 3, 3, 3),
        "{stats:?}"
    );
    assert_eq!((stats.pending, stats.dialogs, stats.dropped), (0, 0, 0));
    let log = trunk.invite_log();
    let logged: Vec<&str> = log.iter().map(|i| i.call_id.as_str()).collect();
    let placed: Vec<&str> = records.iter().map(|r| r.call_id.as_str()).collect();
    assert_eq!(logged, placed);
    for (invite, record) in log.iter().zip(&records) {
        assert!(invite.at >= record.started && !invite.dropped);
        assert!(invite.branch.starts_with("z9hG4bK"));
    }
    trunk.shutdown().await;
}

/// SPEC V1: a trunk answering 503 (after 100 Trying): the caller gets the
/// 503 and ACKs it; after `Recover` calls are answered again.
#[tokio::test]
async fn a_rejecting_trunk_answers_503_and_is_acked() {
    let trunk = trunk("trunk-1").await;
    trunk.set_fault(TrunkFault::Reject(503)).unwrap();
    let records = calls(caller_config(trunk.local_addr(), 2)).await;
    for record in &records {
        assert_eq!(record.status, Some(503), "{record:?}");
        assert!(record.finished && !record.timed_out && record.bye_status.is_none());
    }
    let stats = stats_until(&trunk, |s| s.failure_acks == 2).await;
    assert_eq!(
        (
            stats.invites,
            stats.rejected,
            stats.failure_acks,
            stats.pending
        ),
        (2, 2, 2, 0),
        "{stats:?}"
    );
    trunk.set_fault(TrunkFault::Recover).unwrap();
    let records = calls(caller_config(trunk.local_addr(), 1)).await;
    assert_eq!(records[0].status, Some(200));
    trunk.shutdown().await;
}

/// A trunk that dies silently answers nothing: the caller retransmits and
/// gives up at 64·T1 (timer B) with a local 408; the trunk still logs the
/// INVITE (once, marked dropped) so a report can tell which calls tried it.
#[tokio::test]
async fn a_silent_trunk_times_the_caller_out() {
    let trunk = trunk("trunk-1").await;
    trunk.set_fault(TrunkFault::Silent).unwrap();
    assert_eq!(trunk.fault(), TrunkFault::Silent);
    let records = calls(caller_config(trunk.local_addr(), 1)).await;
    let record = &records[0];
    assert_eq!(record.status, Some(408));
    assert!(record.timed_out && record.first_response.is_none());
    assert!(record.invite_retransmissions >= 5, "{record:?}");
    let setup = record.setup_time.unwrap();
    assert!(
        setup >= T1 * 64 && setup < T1 * 64 + Duration::from_millis(500),
        "{setup:?}"
    );
    let stats = trunk.stats();
    assert_eq!(stats.invites, 1);
    assert_eq!(stats.dropped, u64::from(record.invite_retransmissions) + 1);
    let log = trunk.invite_log();
    assert_eq!(log.len(), 1);
    assert!(log[0].dropped);
    assert_eq!(log[0].call_id, record.call_id);
    trunk.shutdown().await;
}

/// The caller hangs up while the trunk rings: 200 for the CANCEL, 487 for the
/// INVITE, ACKed.
#[tokio::test]
async fn a_cancelled_call_ends_with_487() {
    let mut config = SipTrunkConfig::new("trunk-1", "127.0.0.1:0".parse().unwrap());
    config.t1 = T1;
    config.answer_delay = Duration::from_secs(30);
    let trunk = SipTrunk::start(config).await.unwrap();
    let mut caller = caller_config(trunk.local_addr(), 1);
    caller.cancel_after = Some(Duration::from_millis(100));
    let records = calls(caller).await;
    let record = &records[0];
    assert_eq!(record.status, Some(487), "{record:?}");
    assert!(record.cancelled && record.finished && !record.timed_out);
    let setup = record.setup_time.unwrap();
    assert!(setup >= Duration::from_millis(100), "{setup:?}");
    let stats = stats_until(&trunk, |s| s.failure_acks == 1).await;
    assert_eq!(
        (
            stats.cancelled,
            stats.failure_acks,
            stats.answered,
            stats.pending
        ),
        (1, 1, 0, 0),
        "{stats:?}"
    );
    trunk.shutdown().await;
}

/// SPEC V2: what a prober sees. OPTIONS get 200 from a healthy trunk, 503
/// from a rejecting one, nothing from a silent one; a fault's status must be
/// a final failure.
#[tokio::test]
async fn options_show_the_trunk_state() {
    let trunk = trunk("trunk-1").await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = socket.local_addr().unwrap();
    let to = trunk.local_addr();
    let mut answers = Vec::new();
    for (fault, branch) in [
        (TrunkFault::Recover, "a"),
        (TrunkFault::Reject(503), "b"),
        (TrunkFault::Silent, "c"),
    ] {
        trunk.set_fault(fault).unwrap();
        let options = format!(
            "OPTIONS sip:trunk@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\nTo: <sip:trunk@{to}>\r\nFrom: <sip:probe@{me}>;tag=p\r\n\
             Call-ID: probe-{branch}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        socket.send_to(options.as_bytes(), to).await.unwrap();
        let mut buffer = vec![0u8; 4096];
        let answer = timeout(Duration::from_millis(300), socket.recv_from(&mut buffer)).await;
        answers.push(match answer {
            Ok(Ok((len, _))) => {
                let text = String::from_utf8_lossy(&buffer[..len]).into_owned();
                text.lines().next().unwrap_or_default().to_owned()
            }
            _ => "nothing".to_owned(),
        });
    }
    assert_eq!(
        answers,
        [
            "SIP/2.0 200 OK",
            "SIP/2.0 503 Service Unavailable",
            "nothing"
        ]
    );
    assert!(trunk.set_fault(TrunkFault::Reject(200)).is_err());
    assert!(trunk.set_fault(TrunkFault::Reject(180)).is_err());
    assert_eq!(trunk.fault(), TrunkFault::Silent);
    trunk.shutdown().await;
}

/// A caller held at its limit waits; released, it places the rest at its
/// rate, and each call's start follows the pace.
#[tokio::test]
async fn a_held_caller_resumes_when_released() {
    let trunk = trunk("trunk-1").await;
    let mut config = caller_config(trunk.local_addr(), 4);
    config.limit = Some(2);
    let caller = SipCaller::start(config).await.unwrap();
    let mut progress = caller.progress();
    for _ in 0..100 {
        progress = caller.progress();
        if progress.finished == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!((progress.placed, progress.finished), (2, 2), "{progress:?}");
    assert_eq!(progress.awaiting_final, 0);
    caller.release();
    let records = timeout(LIMIT, caller.wait()).await.unwrap();
    assert_eq!(records.len(), 4);
    assert!(records.iter().all(|r| r.status == Some(200)));
    // 50 calls/s: 20 ms apart, also after the hold.
    let gap = records[3].started - records[2].started;
    assert!(gap >= Duration::from_millis(19), "{gap:?}");
    trunk.shutdown().await;
}
