//! The gateway against SMSCs that behave like real ones, not like our lab's
//! defaults (issue 10): receipt ids written another way, references remembered
//! for ever, throttling, deliveries retried after an error, a full disk, and a
//! second gateway on the same store.

use std::collections::HashSet;
use std::time::Duration;

use hotsite_core::Target;
use hotsite_lab::{Fault, IdFormat, LabConfig};
use hotsite_store::{MessageState, ReceiptIdFormat, SqliteOptions};
use serde_json::{json, Value};

use crate::gateway::{
    handsets, lab_config, post_until_accepted, setup_with, wait_until, Setup, TOKEN,
};

fn lab_with_ids(submit: IdFormat, receipt: IdFormat) -> LabConfig {
    let mut lab = lab_config(0.0, 0.0);
    lab.receipts.submit_id_format = submit;
    lab.receipts.receipt_id_format = receipt;
    // Ids as large as real ones: 0x10000000 and up (decimal 268435456 and up),
    // so no decimal spelling of one id is the hex spelling of another.
    lab.receipts.first_serial = 0x1000_0000;
    lab
}

/// Sets one receipt id format for every SMSC of the lab.
fn every_smsc(setup: &mut hotsite_messaging::GatewayConfig, format: ReceiptIdFormat) {
    let targets: Vec<Target> = setup
        .smpp
        .as_ref()
        .expect("SMPP configured")
        .instances
        .iter()
        .map(|(target, _)| target.clone())
        .collect();
    for target in targets {
        setup.inbox.receipt_id_formats.insert(target, format);
    }
}

fn batch_to(destination: &str, range: std::ops::Range<u64>) -> Value {
    json!({ "messages": range.map(|i| json!({
        "id": format!("m-{i}"),
        "to": destination,
        "text": format!("gateway test #{i}"),
    })).collect::<Vec<_>>() })
}

/// Waits until every message of the store is `Delivered`.
async fn all_delivered(s: &Setup, count: u64, limit: Duration) {
    let deadline = crate::gateway::now() + limit;
    loop {
        let stats = s.store.stats().await.unwrap();
        if stats.final_states >= count {
            assert_eq!(stats.failed, 0, "{stats:?}");
            return;
        }
        assert!(
            crate::gateway::now() < deadline,
            "not every message delivered within {limit:?}: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SPEC M13: receipts whose `receipted_message_id` is written in upper case,
/// zero-padded, or in decimal for a hex submit id all find their message, with
/// the SMSC's format set (or `auto`); each message ends Delivered, every receipt
/// reaches the application correlated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_with_ids_written_another_way_are_matched() {
    let cases = [
        (IdFormat::Hex, IdFormat::HexUpper, ReceiptIdFormat::Same),
        (IdFormat::HexUnpadded, IdFormat::Hex, ReceiptIdFormat::Same),
        (IdFormat::Hex, IdFormat::Decimal, ReceiptIdFormat::Decimal),
        (
            IdFormat::HexUpper,
            IdFormat::DecimalPadded,
            ReceiptIdFormat::Auto,
        ),
        (IdFormat::Decimal, IdFormat::HexUpper, ReceiptIdFormat::Hex),
    ];
    for (index, (submit, receipt, format)) in cases.into_iter().enumerate() {
        let s = setup_with(
            &format!("ids-{index}"),
            lab_with_ids(submit, receipt),
            SqliteOptions::default(),
            |config| every_smsc(config, format),
        )
        .await;
        let http = reqwest::Client::new();
        post_until_accepted(&http, &s.api, &crate::gateway::batch(0..30)).await;
        all_delivered(&s, 30, Duration::from_secs(15)).await;
        wait_until(Duration::from_secs(10), "30 receipts at the app", || {
            s.app.ids().len() >= 30
        })
        .await;
        let received = s.app.received.lock().unwrap().clone();
        assert!(
            received
                .iter()
                .all(|r| r["message_id"].is_i64() && r["correlated"] == true),
            "{submit:?}/{receipt:?} under {format:?}: {received:?}"
        );
        let stats = s.store.stats().await.unwrap();
        assert_eq!(stats.receipts_uncorrelated, 0, "{submit:?}/{receipt:?}");
        s.gateway.shutdown().await;
    }
}

/// SPEC M13: without the SMSC's format, decimal receipts for hex ids match
/// nothing: they are kept, counted (store, `/metrics`), and reach the
/// application after the correlation wait flagged `correlated: false`, never
/// dropped; the messages stay Submitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_receipts_are_kept_counted_and_flagged() {
    let options = SqliteOptions {
        receipt_correlation_wait_ms: 500,
        ..SqliteOptions::default()
    };
    let s = setup_with(
        "ids-unmatched",
        lab_with_ids(IdFormat::Hex, IdFormat::Decimal),
        options,
        |_| {},
    )
    .await;
    let http = reqwest::Client::new();
    post_until_accepted(&http, &s.api, &crate::gateway::batch(0..10)).await;
    wait_until(Duration::from_secs(10), "10 receipts at the app", || {
        s.app.ids().len() >= 10
    })
    .await;
    let received = s.app.received.lock().unwrap().clone();
    assert!(
        received
            .iter()
            .all(|r| r["correlated"] == false && r.get("message_id").is_none()),
        "{received:?}"
    );
    let stats = s.store.stats().await.unwrap();
    assert_eq!((stats.submitted, stats.receipts_uncorrelated), (10, 10));
    // Counted once the application's answer is in (a moment after it has them).
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = crate::gateway::metrics_text(&http, &s.api).await;
        if metrics.contains("hotsite_receipts_uncorrelated_delivered_total 10") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains("hotsite_receipts_uncorrelated_delivered_total 10"),
        "{metrics}"
    );
    s.gateway.shutdown().await;
}

/// SPEC M16, M8: 70,000 messages to one destination through a provider that
/// remembers every `user_message_reference` for ever. Past 65,536 the provider
/// drops each new submit as a repeat and answers with the earlier message's id;
/// the gateway sees that, sends it again with a fresh reference, then without
/// one: 0 lost, 0 twice at the handset, every message Delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seventy_thousand_messages_to_one_destination_all_delivered() {
    const COUNT: u64 = 70_000;
    let mut lab = lab_config(0.0, 0.0);
    lab.receipts.delay_ms = 0;
    let s = setup_with(
        "70k-one-destination",
        lab,
        SqliteOptions::default(),
        |config| {
            // Receipts are checked in the store, not through the application.
            config.webhook = None;
            config.dispatcher.concurrency = 2_048;
        },
    )
    .await;
    let http = reqwest::Client::new();
    for first in (0..COUNT).step_by(1_000) {
        post_until_accepted(
            &http,
            &s.api,
            &batch_to("+4917000000001", first..first + 1_000),
        )
        .await;
    }
    all_delivered(&s, COUNT, Duration::from_secs(240)).await;
    let stats = s.store.stats().await.unwrap();
    assert_eq!(stats.queued + stats.submitted, 0, "{stats:?}");
    let seen = handsets(&s.lab);
    assert_eq!(
        seen.len() as u64,
        COUNT,
        "lost: {}",
        COUNT - seen.len() as u64
    );
    assert!(
        seen.values().all(|&n| n == 1),
        "a message reached the handset twice"
    );
    assert!(
        s.lab.stats().totals.duplicates_dropped >= COUNT - 65_536,
        "the provider dropped the reused references"
    );
    // A message past the wrap says what happened in its history.
    let view = s
        .store
        .message_by_key("m-69999")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(view.state, MessageState::Delivered);
    assert!(
        view.events.iter().any(|e| e.kind == "reference_collision"),
        "{:?}",
        view.events
    );
    s.gateway.shutdown().await;
}

/// SPEC M14, invariant 4: an SMSC that throttles slows the bind down and the
/// message goes out later; each refusal is in the message's history and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_refusals_are_in_the_history_and_the_metrics() {
    let s = setup_with(
        "throttled",
        lab_config(0.0, 0.0),
        SqliteOptions::default(),
        |config| {
            let session = &mut config.smpp.as_mut().expect("SMPP").session;
            session.throttle_pause = Duration::from_millis(50);
            session.throttle_pause_max = Duration::from_millis(200);
        },
    )
    .await;
    for (target, _) in s.lab.smsc_addrs() {
        s.lab
            .set_fault(&target, Fault::Throttle { probability: 0.5 })
            .unwrap();
    }
    let http = reqwest::Client::new();
    post_until_accepted(&http, &s.api, &crate::gateway::batch(0..40)).await;
    wait_until(Duration::from_secs(30), "40 at the handsets", || {
        s.lab.stats().totals.unique >= 40
    })
    .await;
    let mut throttled = 0;
    for id in 1..=40 {
        let view = s
            .store
            .message(hotsite_store::MessageId(id))
            .await
            .unwrap()
            .unwrap();
        throttled += view
            .events
            .iter()
            .filter(|e| e.kind == "throttled" && e.detail.contains("ESME_RTHROTTLED"))
            .count();
    }
    assert!(throttled > 0, "no throttled event in any history");
    let metrics = crate::gateway::metrics_text(&http, &s.api).await;
    let retried: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("hotsite_submits_retried_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        retried >= throttled as u64,
        "{retried} < {throttled}\n{metrics}"
    );
    assert!(
        metrics.contains("hotsite_channel_sends_total{channel=\"smpp\",outcome=\"throttled\"}"),
        "{metrics}"
    );
    s.gateway.shutdown().await;
}

/// Invariant 1, SPEC M6, M8, M9, M13: the disk fills up after the submits went
/// out and before their receipts came. Receipts that cannot be stored are
/// refused, and the provider delivers them again; outcome writes wait for space.
/// When space returns every message is Delivered, none was sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_delays_but_loses_and_repeats_nothing() {
    let mut lab = lab_config(0.0, 0.0);
    lab.receipts.delay_ms = 1_500;
    lab.deliveries.retry_interval_ms = 200;
    lab.deliveries.retry_attempts = 1_000;
    let s = setup_with("full-disk", lab, SqliteOptions::default(), |_| {}).await;
    let http = reqwest::Client::new();
    post_until_accepted(&http, &s.api, &crate::gateway::batch(0..200)).await;
    wait_until(Duration::from_secs(10), "200 at the handsets", || {
        s.lab.stats().totals.unique >= 200
    })
    .await;
    // Full: the limit at the pages in use, then what is free inside is taken by
    // new messages until the store refuses them (507).
    s.store.set_max_page_count(Some(1)).await.unwrap();
    let mut next = 200;
    loop {
        let response = http
            .post(format!("{}/v1/messages", s.api))
            .bearer_auth(TOKEN)
            .json(&crate::gateway::batch(next..next + 50))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            202 => next += 50,
            507 => break,
            other => panic!("unexpected {other}"),
        }
        assert!(next < 20_000, "the store never filled up");
    }
    let accepted = next;
    wait_until(
        Duration::from_secs(10),
        "receipts refused and retried",
        || s.lab.stats().totals.deliveries_retried > 0,
    )
    .await;
    let health = |http: reqwest::Client| {
        let url = format!("{}/v1/health", s.api);
        async move {
            let response = http.get(url).send().await.unwrap();
            let code = response.status().as_u16();
            (
                code,
                response.json::<Value>().await.unwrap()["store"].clone(),
            )
        }
    };
    // A small row can still fit in a page freed by an update, and such a commit
    // proves room for a moment; the flag follows the store, so it is polled
    // while receipts keep being refused rather than read once.
    let start = crate::gateway::now();
    loop {
        let full = s.store.stats().await.unwrap().storage_full;
        if full && health(http.clone()).await == (503, json!("degraded: storage full")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "health never said what the API does (storage full, 503)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Space returns.
    s.store.set_max_page_count(None).await.unwrap();
    all_delivered(&s, accepted, Duration::from_secs(30)).await;
    let stats = s.store.stats().await.unwrap();
    assert!(!stats.storage_full);
    assert_eq!(health(http.clone()).await, (200, json!("ok")));
    let seen = handsets(&s.lab);
    assert_eq!(seen.len() as u64, accepted);
    assert!(seen.values().all(|&n| n == 1), "a message was sent twice");
    wait_until(Duration::from_secs(10), "every receipt at the app", || {
        s.app.ids().len() as u64 >= accepted
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids = s.app.ids();
    let unique: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(
        (ids.len() as u64, unique.len() as u64),
        (accepted, accepted),
        "each receipt once"
    );
    assert_eq!(s.lab.stats().totals.deliveries_abandoned, 0);
    s.gateway.shutdown().await;
}

/// SPEC M17: a second gateway on a store already in use refuses to start and
/// names the process that holds it; the first carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_the_same_store_refuses_to_start() {
    use crate::crash::{config, free_port, spawn};
    let dir = crate::gateway::temp_dir("second-gateway");
    let lab = hotsite_lab::Lab::start(lab_config(0.0, 0.0)).await.unwrap();
    let store = dir.join("hotsite.db");
    let first_port = free_port();
    let first_config = dir.join("first.toml");
    std::fs::write(&first_config, config(&lab, first_port, &store)).unwrap();
    let mut first = spawn(&first_config);
    let http = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{first_port}/v1/health");
    let mut up = false;
    for _ in 0..100 {
        if http.get(&health).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the first gateway came up");
    let second_config = dir.join("second.toml");
    std::fs::write(&second_config, config(&lab, free_port(), &store)).unwrap();
    let second = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hotsite"))
            .arg("run")
            .arg("--config")
            .arg(&second_config)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the second gateway exits at once")
    .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        stderr.contains("in use by another process")
            && stderr.contains(&format!("pid {}", first.id().unwrap())),
        "{stderr}"
    );
    assert!(
        http.get(&health).send().await.is_ok(),
        "the first still serves"
    );
    first.start_kill().unwrap();
    let _ = first.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
}
