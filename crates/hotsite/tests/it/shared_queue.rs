//! SPEC M17, M8: gateways that share one store split its queue by claims. Two
//! gateways in one process on one store and one lab: every message is sent by
//! one of them, once; a gateway that stops gives its claims up, so the other
//! finishes its work at once instead of after the lease. (Two processes on one
//! PostgreSQL database, with `kill -9` and a stalled gateway: `shared_store.rs`.)

use std::net::SocketAddr;
use std::time::Duration;

use hotsite_core::HealthState;
use hotsite_messaging::webhook::WebhookConfig;
use hotsite_messaging::GatewayConfig;
use hotsite_store::SqliteOptions;

use crate::failover::client_config;
use crate::gateway::{
    batch, handsets, lab_config, metrics_text, post_until_accepted, serve, setup_with,
    wait_until, SECRET,
};

/// The value of the counter whose name ends with `suffix` in `/metrics`.
async fn counter(http: &reqwest::Client, api: &str, suffix: &str) -> u64 {
    metrics_text(http, api)
        .await
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.split_once(' ')?;
            name.ends_with(suffix).then(|| value.parse().ok())?
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_store_send_each_message_once_and_hand_over_on_stop() {
    // A long lease: any handover seen here is the stopping gateway's release,
    // not its claims running out.
    let lease = Duration::from_secs(120);
    let a = setup_with(
        "shared-queue",
        lab_config(0.0, 0.0),
        SqliteOptions::default(),
        |config| {
            config.dispatcher.name = "a".into();
            config.dispatcher.lease = lease;
        },
    )
    .await;
    let app_addr = a.app.start().await;
    let config_b = GatewayConfig {
        inbox: Default::default(),
        smpp: Some(client_config(&a.lab)),
        default_from: "hotsite".into(),
        channels: Vec::new(),
        routes: Vec::new(),
        default_route: None,
        dispatcher: hotsite_messaging::dispatcher::DispatcherConfig {
            name: "b".into(),
            lease,
            ..Default::default()
        },
        webhook: Some(WebhookConfig {
            url: format!("http://{app_addr}/hook"),
            secret: SECRET.into(),
            timeout: Duration::from_secs(2),
            backoff: Default::default(),
            concurrency: 16,
        }),
    };
    let b = serve(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        config_b,
        a.store.clone(),
    )
    .await;
    let api_b = format!("http://{}", b.local_addr());
    wait_until(Duration::from_secs(5), "b bound everywhere", || {
        b.client()
            .expect("SMPP configured")
            .status()
            .iter()
            .all(|bind| bind.pool.health == HealthState::Up)
    })
    .await;

    // Half through each gateway's API, interleaved.
    let http = reqwest::Client::new();
    for first in (0..4_000).step_by(500) {
        let api = if first % 1_000 == 0 { &a.api } else { &api_b };
        post_until_accepted(&http, api, &batch(first..first + 500)).await;
    }
    wait_until(Duration::from_secs(60), "4,000 at the handsets", || {
        handsets(&a.lab).len() == 4_000
    })
    .await;
    let seen = handsets(&a.lab);
    assert!(seen.values().all(|&count| count == 1), "a message twice");
    let sent_a = counter(&http, &a.api, "messages_submitted_total").await;
    let sent_b = counter(&http, &api_b, "messages_submitted_total").await;
    assert_eq!(sent_a + sent_b, 4_000, "a {sent_a} + b {sent_b}");
    assert!(sent_a > 0 && sent_b > 0, "both took part: a {sent_a}, b {sent_b}");

    // The SMSCs answer slowly, so a holds what it claims with its submits on
    // the wire; then a stops. b must finish a's messages long before the
    // 120 s lease: a gave its claims up.
    let targets: Vec<_> = a.lab.smsc_addrs().into_iter().map(|(target, _)| target).collect();
    for target in &targets {
        a.lab
            .set_fault(target, hotsite_lab::Fault::Slow { delay_ms: 1_500 })
            .unwrap();
    }
    post_until_accepted(&http, &a.api, &batch(4_000..4_200)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queued = a.store.stats().await.expect("stats").queued;
    assert!(queued > 0, "a holds messages while the SMSCs are slow");
    let crate::gateway::Setup { lab, gateway, .. } = a;
    gateway.shutdown().await;
    for target in &targets {
        lab.set_fault(target, hotsite_lab::Fault::Recover).unwrap();
    }
    let took = wait_until(Duration::from_secs(60), "b delivers a's 200", || {
        handsets(&lab).len() == 4_200
    })
    .await;
    assert!(took < lease / 2, "handed over on stop, not after the lease: {took:?}");
    // A submit on the wire when a stopped is the ambiguous case (SPEC M8): b
    // sends it again with the same reference and the lab drops the repeat.
    let twice: Vec<_> = handsets(&lab)
        .into_iter()
        .filter(|(_, count)| *count > 1)
        .collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    b.shutdown().await;
}
