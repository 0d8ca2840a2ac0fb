//! Bind-to-all failover against the simulated aggregator, over real sockets.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hotsite_core::{HealthState, Target};
use hotsite_lab::{Fault, Lab, LabConfig, LabHandle};
use hotsite_smpp::driver::{BindStatus, ClientConfig, SmppClient, SubmitOutcome};
use hotsite_smpp::pdu::{Address, ShortMessage, Tlvs};
use hotsite_smpp::pool::PoolConfig;
use hotsite_smpp::session::SessionConfig;

const DEAD_PEER: Duration = Duration::from_millis(1500);
const REBIND: Duration = Duration::from_secs(30);

#[allow(clippy::disallowed_methods)] // test clock: measures real loopback time
fn now() -> Instant {
    Instant::now()
}

/// Short timers for loopback tests; rebind pacing at the 30 s minimum (SPEC M5).
pub(crate) fn client_config(lab: &LabHandle) -> ClientConfig {
    let mut session = SessionConfig::new("hotsite", "secret");
    session.enquire_link_interval = Duration::from_millis(500);
    session.dead_peer_timeout = DEAD_PEER;
    session.response_timeout = Duration::from_secs(1);
    ClientConfig {
        session,
        pool: PoolConfig {
            rebind_interval: REBIND,
            rebind_jitter: Duration::from_secs(1),
        },
        instances: lab
            .smsc_addrs()
            .into_iter()
            .map(|(t, a)| (t, a.to_string()))
            .collect(),
        connect_timeout: Duration::from_secs(1),
        seed: 3,
    }
}

fn health(status: &[BindStatus], site: &str, name: &str) -> HealthState {
    let target = Target::new(site, name);
    status
        .iter()
        .find(|s| s.pool.target == target)
        .map(|s| s.pool.health)
        .expect("known target")
}

/// Polls `client.status()` until `done` holds, or fails after `limit`.
async fn wait_for(
    client: &SmppClient,
    limit: Duration,
    what: &str,
    done: impl Fn(&[BindStatus]) -> bool,
) -> Duration {
    let start = now();
    loop {
        if done(&client.status()) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}: {:#?}",
            client.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A lab with two sites of two SMSCs each, and a client bound to all four (SPEC M4).
async fn bound_to_all() -> (LabHandle, SmppClient) {
    let lab = Lab::start(LabConfig::two_sites_two_smscs()).await.unwrap();
    let (client, _events, _task) = SmppClient::start(client_config(&lab)).unwrap();
    wait_for(&client, Duration::from_secs(5), "all four bound", |s| {
        s.iter().all(|b| b.pool.health == HealthState::Up)
    })
    .await;
    (lab, client)
}

fn message(index: u16) -> ShortMessage {
    let mut tlvs = Tlvs::default();
    tlvs.set_user_message_reference(index);
    ShortMessage {
        destination: Address {
            ton: 1,
            npi: 1,
            addr: format!("49170000{index:04}"),
        },
        short_message: Bytes::from(format!("failover test {index}")),
        tlvs,
        ..ShortMessage::default()
    }
}

/// SPEC M4, M5, M7: four SMSC instances on two sites, all bound at once; one is
/// killed and one blackholed. The dead one is out of service at once, the
/// blackholed one within the dead-peer timeout; messages keep flowing through the
/// two live binds; after recovery both are rebound, never sooner than the pacing
/// allows (30 s between bind attempts per instance, checked on the lab's side).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_blackholed_smscs_are_routed_around_and_rebound_with_pacing() {
    let (lab, client) = bound_to_all().await;

    let (a1, b1) = (Target::new("a", "a1"), Target::new("b", "b1"));
    lab.set_fault(&a1, Fault::Die).unwrap();
    lab.set_fault(&b1, Fault::Blackhole).unwrap();
    let faulted = now();
    let killed_after = wait_for(&client, Duration::from_secs(1), "killed a1 down", |s| {
        health(s, "a", "a1") == HealthState::Down
    })
    .await;
    let blackholed_after = wait_for(
        &client,
        DEAD_PEER + Duration::from_millis(700),
        "blackholed b1 down",
        |s| health(s, "b", "b1") == HealthState::Down,
    )
    .await;
    let status = client.status();
    assert_eq!(health(&status, "a", "a2"), HealthState::Up);
    assert_eq!(health(&status, "b", "b2"), HealthState::Up);
    eprintln!(
        "a1 (killed) down after {killed_after:?}, b1 (blackholed) down after {blackholed_after:?}"
    );

    // SPEC M7: nothing is parked behind the dead binds.
    for index in 0..40 {
        let outcome = tokio::time::timeout(Duration::from_secs(2), client.submit(message(index)))
            .await
            .unwrap()
            .unwrap();
        let SubmitOutcome::Accepted { target, .. } = outcome else {
            panic!("{outcome:?}")
        };
        assert!(
            target.name.as_ref() == "a2" || target.name.as_ref() == "b2",
            "sent to {target}"
        );
    }

    lab.set_fault(&a1, Fault::Recover).unwrap();
    lab.set_fault(&b1, Fault::Recover).unwrap();
    wait_for(
        &client,
        REBIND + Duration::from_secs(8),
        "a1 and b1 rebound",
        |s| s.iter().all(|b| b.pool.health == HealthState::Up),
    )
    .await;
    let rebound_after = faulted.elapsed();
    assert!(
        rebound_after >= REBIND,
        "rebound {rebound_after:?} after the failure: faster than the pacing"
    );

    // The lab saw every bind attempt: none closer than 30 s to the previous one.
    let stats = lab.stats();
    for smsc in &stats.smsc {
        for pair in smsc.bind_attempt_ms.windows(2) {
            assert!(
                pair[1] - pair[0] >= 30_000,
                "{}/{}: bind attempts {} ms apart",
                smsc.site,
                smsc.name,
                pair[1] - pair[0]
            );
        }
    }
    let attempts = |name: &str| {
        stats
            .smsc
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .bind_attempts
    };
    assert_eq!(attempts("a2"), 1, "a healthy instance is bound once");
    assert!(attempts("a1") >= 2 && attempts("b1") >= 2);
    assert_eq!(stats.totals.unique, 40);
    assert_eq!(stats.totals.duplicates_dropped, 0);
    client.shutdown().await;
    lab.shutdown().await;
}

/// Invariant 3: a message that cannot be encoded is refused with a reason and
/// does not block the queue behind it; a bad bind password keeps the instance
/// down (and retried only at the paced interval), while the rest carry traffic.
#[tokio::test]
async fn unencodable_message_is_invalid_and_does_not_block_the_queue() {
    let (lab, client) = bound_to_all().await;
    let mut too_long = message(1);
    too_long.short_message = Bytes::from(vec![b'x'; 300]);
    let outcome = tokio::time::timeout(Duration::from_secs(2), client.submit(too_long))
        .await
        .unwrap()
        .unwrap();
    let SubmitOutcome::Invalid { reason } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(reason.contains("short_message"), "{reason}");
    let outcome = tokio::time::timeout(Duration::from_secs(2), client.submit(message(2)))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(outcome, SubmitOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    client.shutdown().await;
    lab.shutdown().await;
}

/// SPEC M4, M5: a refused bind (wrong password) leaves that client's instances
/// down with the SMSC's reason, and they are not retried before the interval.
#[tokio::test]
async fn rejected_bind_is_reported_and_paced() {
    let lab = Lab::start(LabConfig::two_sites_two_smscs()).await.unwrap();
    let mut config = client_config(&lab);
    config.session.password = "wrong".into();
    let (client, _events, _task) = SmppClient::start(config).unwrap();
    wait_for(&client, Duration::from_secs(5), "every bind refused", |s| {
        s.iter().all(|b| b.pool.last_failure.is_some())
    })
    .await;
    for bind in client.status() {
        assert_eq!(bind.pool.health, HealthState::Down);
        let failure = bind.pool.last_failure.unwrap();
        assert!(failure.contains("ESME_RINVPASWD"), "{failure}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        lab.stats().smsc.iter().all(|s| s.bind_attempts == 1),
        "no rebind before the interval"
    );
    client.shutdown().await;
    lab.shutdown().await;
}

/// SPEC M7: every submit handed to a session task gets exactly one report, even
/// when the connection is already gone: nothing is lost between the pool and a
/// dying bind, and what never left comes back to be sent elsewhere.
#[tokio::test]
async fn submits_queued_to_a_dying_session_are_handed_back() {
    use hotsite_smpp::driver::{run_session, SessionCommand, SessionReport};
    use hotsite_smpp::session::{Session, SessionEvent};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stream, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    drop(accepted.unwrap()); // the SMSC side goes away at once
    let (commands, commands_rx) = tokio::sync::mpsc::unbounded_channel();
    let (reports_tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    for id in 0..5u64 {
        commands
            .send(SessionCommand::Submit {
                id,
                message: message(id as u16),
            })
            .unwrap();
    }
    let session = Session::new(SessionConfig::new("hotsite", "secret"), now());
    tokio::time::timeout(
        Duration::from_secs(5),
        run_session(
            stream.unwrap(),
            session,
            commands_rx,
            reports_tx,
            Duration::from_secs(1),
        ),
    )
    .await
    .expect("the session ends when its peer is gone");
    let mut refused = Vec::new();
    let mut closed = 0;
    while let Ok(report) = reports.try_recv() {
        match report {
            SessionReport::Refused { id, .. } => refused.push(id),
            SessionReport::Event(SessionEvent::Closed {
                ambiguous, unsent, ..
            }) => {
                assert!(ambiguous.is_empty() && unsent.is_empty());
                closed += 1;
            }
            SessionReport::Event(other) => panic!("unexpected {other:?}"),
        }
    }
    refused.sort_unstable();
    assert_eq!(refused, [0, 1, 2, 3, 4]);
    assert_eq!(closed, 1);
    assert!(
        commands.send(SessionCommand::Unbind).is_err(),
        "a closed session takes no more commands"
    );
}

/// SPEC M14: an SMSC that answers ESME_RTHROTTLED is paused (1 s, doubling),
/// not failed: its messages go out through the other binds, none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_smsc_is_paused_and_its_messages_go_elsewhere() {
    let (lab, client) = bound_to_all().await;
    lab.set_fault(
        &Target::new("a", "a1"),
        Fault::Throttle { probability: 1.0 },
    )
    .unwrap();
    let mut sends = tokio::task::JoinSet::new();
    for index in 0..200u16 {
        let client = client.clone();
        sends.spawn(async move {
            tokio::time::timeout(Duration::from_secs(5), client.submit(message(index))).await
        });
    }
    while let Some(outcome) = sends.join_next().await {
        let outcome = outcome.unwrap().expect("no message waits long").unwrap();
        let SubmitOutcome::Accepted { target, .. } = outcome else {
            panic!("{outcome:?}")
        };
        assert_ne!(
            target.name.as_ref(),
            "a1",
            "the throttling SMSC took nothing"
        );
    }
    let stats = lab.stats();
    let a1 = stats.smsc.iter().find(|s| s.name == "a1").unwrap();
    assert!(
        a1.throttled >= 1 && a1.throttled <= 40,
        "a1 was asked {} times: not paused",
        a1.throttled
    );
    assert_eq!(stats.totals.unique, 200);
    assert_eq!(
        client
            .status()
            .iter()
            .filter(|b| b.pool.health == HealthState::Up)
            .count(),
        4,
        "throttling never unbinds"
    );
    client.shutdown().await;
    lab.shutdown().await;
}
