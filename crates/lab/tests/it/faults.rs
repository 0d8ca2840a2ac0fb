//! Fault injection, one test per fault.

use std::io;
use std::time::Duration;

use hotsite_lab::Fault;
use hotsite_smpp::pdu::{BindKind, Body, CommandStatus, Pdu};

use crate::client::{sms, Client, RecvError, QUIET, TIMEOUT};
use crate::TestLab;

// SPEC M4, M7: a dead host resets its sessions and refuses connections; after
// recovery the same port takes binds again.
#[tokio::test]
async fn die_resets_sessions_and_refuses_connections_until_recover() {
    let lab = TestLab::plain().await;
    let addr = lab.addr("a", "a1");
    let target = lab.target("a", "a1");
    let mut client = Client::bound(addr, BindKind::Transceiver).await;

    lab.lab.set_fault(&target, Fault::Die).expect("die");
    match client.recv(TIMEOUT).await {
        Err(RecvError::Io(error)) => assert_eq!(error.kind(), io::ErrorKind::ConnectionReset),
        other => panic!("expected a reset, got {other:?}"),
    }
    let refused = Client::connect(addr)
        .await
        .err()
        .expect("connect must fail");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    let stats = lab.lab.stats();
    assert_eq!(stats.smsc[0].fault, Some(Fault::Die));
    assert_eq!(stats.smsc[0].bound_sessions, 0);

    lab.lab.set_fault(&target, Fault::Recover).expect("recover");
    let mut client = Client::bound(addr, BindKind::Transceiver).await;
    assert!(client
        .submit(sms("33600000001", "back", None))
        .await
        .status
        .is_ok());
    assert_eq!(lab.lab.stats().smsc[0].fault, None);
    lab.shutdown().await;
}

// SPEC M12: a silent path answers nothing, on old and new sessions alike, but
// still accepts TCP connections.
#[tokio::test]
async fn blackhole_answers_nothing_until_recover() {
    let lab = TestLab::plain().await;
    let addr = lab.addr("a", "a1");
    let target = lab.target("a", "a1");
    let mut client = Client::bound(addr, BindKind::Transceiver).await;

    lab.lab
        .set_fault(&target, Fault::Blackhole)
        .expect("blackhole");
    let sequence = client.next_sequence();
    client
        .send(&Pdu::request(sequence, Body::EnquireLink))
        .await;
    assert!(
        matches!(
            client.recv(Duration::from_millis(300)).await,
            Err(RecvError::Timeout)
        ),
        "enquire_link must go unanswered"
    );
    let mut newcomer = Client::connect(addr).await.expect("TCP still accepted");
    let bind_sequence = newcomer.next_sequence();
    newcomer
        .send(&Pdu::request(
            bind_sequence,
            Body::bind(
                BindKind::Transceiver,
                hotsite_smpp::pdu::Bind {
                    system_id: "hotsite".into(),
                    password: "secret".into(),
                    interface_version: 0x34,
                    ..Default::default()
                },
            ),
        ))
        .await;
    assert!(matches!(
        newcomer.recv(QUIET).await,
        Err(RecvError::Timeout)
    ));

    // Once the path heals, what was sent meanwhile is answered.
    lab.lab.set_fault(&target, Fault::Recover).expect("recover");
    let resp = client
        .response_to(sequence, TIMEOUT)
        .await
        .expect("late answer");
    assert_eq!(resp.body, Body::EnquireLinkResp);
    let resp = newcomer
        .response_to(bind_sequence, TIMEOUT)
        .await
        .expect("late bind");
    assert!(resp.status.is_ok());
    lab.shutdown().await;
}

// SPEC M12: a slow SMSC answers, late.
#[tokio::test]
async fn slow_delays_every_response() {
    let lab = TestLab::plain().await;
    let target = lab.target("b", "b1");
    let mut client = Client::bound(lab.addr("b", "b1"), BindKind::Transceiver).await;
    lab.lab
        .set_fault(&target, Fault::Slow { delay_ms: 300 })
        .expect("slow");
    let sequence = client.next_sequence();
    client
        .send(&Pdu::request(sequence, Body::EnquireLink))
        .await;
    assert!(matches!(
        client.recv(Duration::from_millis(150)).await,
        Err(RecvError::Timeout)
    ));
    let resp = client
        .response_to(sequence, TIMEOUT)
        .await
        .expect("late answer");
    assert_eq!(resp.body, Body::EnquireLinkResp);
    assert_eq!(
        lab.lab.stats().smsc[1].fault,
        Some(Fault::Slow { delay_ms: 300 })
    );
    lab.shutdown().await;
}

// SPEC M14: throttling is an answer, not a delivery.
#[tokio::test]
async fn throttle_answers_rthrottled_and_delivers_nothing() {
    let lab = TestLab::plain().await;
    let target = lab.target("a", "a1");
    let mut client = Client::bound(lab.addr("a", "a1"), BindKind::Transceiver).await;
    lab.lab
        .set_fault(&target, Fault::Throttle { probability: 1.0 })
        .expect("throttle");
    let resp = client.submit(sms("33600000001", "too fast", Some(3))).await;
    assert_eq!(resp.status, CommandStatus::ESME_RTHROTTLED);
    assert!(client.next_deliver(QUIET).await.is_none(), "no receipt");
    let stats = lab.lab.stats();
    assert_eq!(
        (
            stats.totals.submits,
            stats.totals.throttled,
            stats.totals.unique
        ),
        (1, 1, 0)
    );
    assert!(lab.lab.handset_log().is_empty());

    // The throttled reference was not taken: the retry is a first delivery.
    lab.lab.set_fault(&target, Fault::Recover).expect("recover");
    let resp = client.submit(sms("33600000001", "too fast", Some(3))).await;
    assert!(resp.status.is_ok());
    let stats = lab.lab.stats();
    assert_eq!(
        (stats.totals.unique, stats.totals.duplicates_dropped),
        (1, 0)
    );
    lab.shutdown().await;
}

// SPEC M5, M14: an SMSC refusing binds keeps its existing sessions.
#[tokio::test]
async fn reject_binds_fails_new_binds_only() {
    let lab = TestLab::plain().await;
    let addr = lab.addr("a", "a1");
    let target = lab.target("a", "a1");
    let mut existing = Client::bound(addr, BindKind::Transceiver).await;
    lab.lab
        .set_fault(&target, Fault::RejectBinds)
        .expect("reject_binds");

    let mut client = Client::connect(addr).await.expect("connect");
    let resp = client
        .bind(BindKind::Transceiver, "hotsite", "secret")
        .await;
    assert_eq!(resp.status, CommandStatus::ESME_RBINDFAIL);
    client
        .closed(TIMEOUT)
        .await
        .expect("closed after rejection");

    assert!(existing
        .submit(sms("33600000001", "still here", None))
        .await
        .status
        .is_ok());
    let stats = lab.lab.stats();
    assert_eq!(stats.smsc[0].bound_sessions, 1);
    assert_eq!(stats.smsc[0].bind_attempts, 2);
    lab.shutdown().await;
}

// SPEC M1, M7: receipts avoid a dead site and go out through a live one.
#[tokio::test]
async fn receipts_avoid_a_dead_site() {
    let lab = TestLab::start("delay_ms = 100").await;
    let mut a1 = Client::bound(lab.addr("a", "a1"), BindKind::Transceiver).await;
    let mut b1 = Client::bound(lab.addr("b", "b1"), BindKind::Receiver).await;
    let resp = a1.submit(sms("33600000001", "survive", None)).await;
    assert!(resp.status.is_ok());
    // Site a dies before the receipt is due.
    lab.lab
        .set_fault(&lab.target("a", "a1"), Fault::Die)
        .expect("die");
    let receipt = b1.next_deliver(TIMEOUT).await.expect("receipt via b");
    assert!(receipt.is_receipt());
    lab.shutdown().await;
}

// SPEC M4: faults are validated.
#[tokio::test]
async fn invalid_faults_are_refused() {
    let lab = TestLab::plain().await;
    let target = lab.target("a", "a1");
    let error = lab
        .lab
        .set_fault(&target, Fault::Throttle { probability: 1.5 })
        .expect_err("out of bounds");
    assert_eq!(
        error.to_string(),
        "invalid fault: probability: must be between 0 and 1, got 1.5"
    );
    let error = lab
        .lab
        .set_fault(&lab.target("a", "zz"), Fault::Die)
        .expect_err("unknown");
    assert_eq!(error.to_string(), "unknown smsc a/zz");
    lab.shutdown().await;
}

// SPEC M5: a host can flap; fault changes are synchronous and work from any
// thread, so a death and a recovery back to back leave a listening port.
#[tokio::test]
async fn die_and_recover_back_to_back_from_another_thread() {
    let lab = TestLab::plain().await;
    let addr = lab.addr("b", "b1");
    let target = lab.target("b", "b1");
    let lab = std::sync::Arc::new(lab);
    let flapper = std::sync::Arc::clone(&lab);
    std::thread::spawn(move || {
        for _ in 0..5 {
            flapper.lab.set_fault(&target, Fault::Die).expect("die");
            flapper
                .lab
                .set_fault(&target, Fault::Recover)
                .expect("recover");
        }
    })
    .join()
    .expect("no panic");
    let mut client = Client::bound(addr, BindKind::Transceiver).await;
    assert!(client.request(Body::EnquireLink).await.is_ok());
    assert_eq!(lab.lab.stats().smsc[1].fault, None);
}
