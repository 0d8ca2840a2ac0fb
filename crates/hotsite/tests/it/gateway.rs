//! The messaging gateway end to end on loopback: HTTP API → durable store →
//! SMPP binds on every SMSC of every site → the simulated aggregator, and MO/DR
//! back to a signed webhook receiver.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::failover::client_config;
use hotsite_core::{HealthState, Target};
use hotsite_host::{Deps, HostConfig, Single};
use hotsite_lab::{Fault, Lab, LabConfig, LabHandle, MoRequest};
use hotsite_messaging::signing::{verify, SIGNATURE_HEADER};
use hotsite_messaging::webhook::WebhookConfig;
use hotsite_messaging::{GatewayConfig, GatewayHandle, GatewayView};
use hotsite_store::{SqliteOptions, SqliteStore};
use serde_json::{json, Value};

pub(crate) const TOKEN: &str = "test-token-0001";
pub(crate) const SECRET: &str = "test-webhook-secret-01";

pub(crate) fn lab_config(duplicate: f64, other_site: f64) -> LabConfig {
    let mut config = LabConfig::two_sites_two_smscs();
    config.seed = 11;
    config.receipts.delay_ms = 5;
    config.receipts.duplicate_probability = duplicate;
    config.receipts.other_site_probability = other_site;
    config
}

#[allow(clippy::disallowed_methods)] // test clock: measures real loopback time
pub(crate) fn now() -> Instant {
    Instant::now()
}

pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hotsite-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The customer's application: checks signatures, counts each id.
#[derive(Clone, Default)]
pub(crate) struct App {
    pub(crate) received: Arc<Mutex<Vec<Value>>>,
    bad_signatures: Arc<Mutex<u64>>,
}

impl App {
    pub(crate) async fn start(&self) -> SocketAddr {
        let app = self.clone();
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let app = app.clone();
                    async move {
                        let signature = headers
                            .get(SIGNATURE_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        if !verify(SECRET.as_bytes(), &body, signature) {
                            *app.bad_signatures.lock().unwrap() += 1;
                            return axum::http::StatusCode::UNAUTHORIZED;
                        }
                        app.received
                            .lock()
                            .unwrap()
                            .push(serde_json::from_slice(&body).unwrap());
                        axum::http::StatusCode::OK
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }

    pub(crate) fn ids(&self) -> Vec<i64> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_i64().unwrap())
            .collect()
    }
}

/// The gateway behind a host of its own, as `hotsite run` serves it; reads
/// like the gateway through [`GatewayView`].
pub(crate) type Served = Single<GatewayView>;

/// Starts the gateway on `store` behind a host listening on `listen`.
pub(crate) async fn serve(listen: SocketAddr, config: GatewayConfig, store: SqliteStore) -> Served {
    let host = HostConfig {
        listen,
        server: Default::default(),
        tokens: vec![TOKEN.into()],
    };
    let start = |deps: Deps| async move { hotsite_messaging::start(config, store, &deps).await };
    Single::start(host, start, GatewayHandle::view)
        .await
        .unwrap()
}

pub(crate) struct Setup {
    pub(crate) lab: LabHandle,
    pub(crate) gateway: Served,
    pub(crate) store: SqliteStore,
    pub(crate) api: String,
    pub(crate) app: App,
    _dir: RemovedOnDrop,
}

/// A test's folder, removed when the test ends (pass or fail).
pub(crate) struct RemovedOnDrop(pub(crate) PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn setup(name: &str, lab: LabConfig, options: SqliteOptions) -> Setup {
    setup_with(name, lab, options, |_| {}).await
}

/// [`setup`], with the gateway's configuration changed by `tweak` first.
pub(crate) async fn setup_with(
    name: &str,
    lab: LabConfig,
    options: SqliteOptions,
    tweak: impl FnOnce(&mut GatewayConfig),
) -> Setup {
    let dir = temp_dir(name);
    let lab = Lab::start(lab).await.unwrap();
    let app = App::default();
    let app_addr = app.start().await;
    let store = SqliteStore::open(&dir.join("hotsite.db"), options).unwrap();
    let mut config = GatewayConfig {
        inbox: Default::default(),
        smpp: Some(client_config(&lab)),
        default_from: "hotsite".into(),
        channels: Vec::new(),
        routes: Vec::new(),
        default_route: None,
        dispatcher: Default::default(),
        webhook: Some(WebhookConfig {
            url: format!("http://{app_addr}/hook"),
            secret: SECRET.into(),
            timeout: Duration::from_secs(2),
            backoff: Default::default(),
            concurrency: 16,
        }),
    };
    tweak(&mut config);
    let gateway = serve(SocketAddr::from(([127, 0, 0, 1], 0)), config, store.clone()).await;
    let api = format!("http://{}", gateway.local_addr());
    let setup = Setup {
        lab,
        gateway,
        store,
        api,
        app,
        _dir: RemovedOnDrop(dir),
    };
    wait_until(Duration::from_secs(5), "all four bound", || {
        setup
            .gateway
            .client()
            .expect("SMPP configured")
            .status()
            .iter()
            .all(|b| b.pool.health == HealthState::Up)
    })
    .await;
    setup
}

pub(crate) async fn wait_until(
    limit: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> Duration {
    let start = now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

pub(crate) fn batch(range: std::ops::Range<u64>) -> Value {
    json!({ "messages": range.map(|i| json!({ "id": format!("m-{i}"), "to": format!("+4917{i:08}"), "text": format!("gateway test #{i}") })).collect::<Vec<_>>() })
}

/// The gateway's `/metrics` text.
pub(crate) async fn metrics_text(http: &reqwest::Client, api: &str) -> String {
    http.get(format!("{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Posts until 202 (the same keys every time: SPEC M8 makes that safe).
pub(crate) async fn post_until_accepted(http: &reqwest::Client, api: &str, body: &Value) {
    for _ in 0..200 {
        if let Ok(response) = http
            .post(format!("{api}/v1/messages"))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
        {
            if response.status() == 202 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the API never accepted the batch");
}

/// Per message index, how many times it reached a handset.
pub(crate) fn handsets(lab: &LabHandle) -> HashMap<u64, u64> {
    let mut seen = HashMap::new();
    for message in lab.handset_log() {
        if let Some(index) = message
            .text
            .strip_prefix("gateway test #")
            .and_then(|n| n.parse().ok())
        {
            *seen.entry(index).or_default() += 1;
        }
    }
    seen
}

/// SPEC M1, M4, M7, M8, M9: a whole site dies during a 10,000-message run, and an
/// SMSC of the other site is blackholed: every message reaches a handset once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_death_during_10k_run_loses_and_duplicates_nothing() {
    let s = setup("site-death", lab_config(0.0, 0.0), SqliteOptions::default()).await;
    let http = reqwest::Client::new();
    for first in (0..10_000).step_by(500) {
        post_until_accepted(&http, &s.api, &batch(first..first + 500)).await;
        if first == 3_000 {
            s.lab
                .set_fault(&Target::new("a", "a1"), Fault::Die)
                .unwrap();
            s.lab
                .set_fault(&Target::new("a", "a2"), Fault::Die)
                .unwrap();
        }
        if first == 6_000 {
            s.lab
                .set_fault(&Target::new("b", "b1"), Fault::Blackhole)
                .unwrap();
        }
    }
    // A bound against a hang, not a speed check (that is `hotsite bench`'s):
    // with the whole suite running in parallel on two cores this run took
    // over 30 s once.
    wait_until(Duration::from_secs(90), "10,000 at the handsets", || {
        s.lab.stats().totals.unique >= 10_000
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = handsets(&s.lab);
    assert_eq!(seen.len(), 10_000, "lost: {}", 10_000 - seen.len());
    assert!(
        seen.values().all(|&n| n == 1),
        "a message reached a handset twice"
    );
    let stats = s.store.stats().await.unwrap();
    assert_eq!((stats.queued, stats.failed), (0, 0));
    let status = s.gateway.client().expect("the demo has SMPP").status();
    let down: Vec<String> = status
        .iter()
        .filter(|b| b.pool.health == HealthState::Down)
        .map(|b| b.pool.target.to_string())
        .collect();
    assert_eq!(down, ["a/a1", "a/a2", "b/b1"]);
    s.gateway.shutdown().await;
}

/// SPEC M4, M7: a blackholed SMSC (TCP up, nothing answered) is routed around
/// within its dead-peer timeout; its in-flight messages go out elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackholed_smsc_is_routed_around_within_the_dead_peer_timeout() {
    let s = setup("blackhole", lab_config(0.0, 0.0), SqliteOptions::default()).await;
    let http = reqwest::Client::new();
    let b2 = Target::new("b", "b2");
    s.lab.set_fault(&b2, Fault::Blackhole).unwrap();
    let out = wait_until(Duration::from_secs(3), "b2 out of service", || {
        s.gateway
            .client()
            .expect("SMPP configured")
            .status()
            .iter()
            .any(|b| b.pool.target == b2 && b.pool.health == HealthState::Down)
    });
    post_until_accepted(&http, &s.api, &batch(0..300)).await;
    let out = out.await;
    assert!(out <= Duration::from_millis(1500 + 700), "took {out:?}");
    wait_until(Duration::from_secs(10), "300 delivered", || {
        s.lab.stats().totals.unique >= 300
    })
    .await;
    let seen = handsets(&s.lab);
    assert_eq!(seen.len(), 300);
    assert!(seen.values().all(|&n| n == 1));
    s.gateway.shutdown().await;
}

/// SPEC M1, M6, M13, M8, M15: every receipt comes back through the other site and
/// twice; each message still gets its final state once, every receipt is in its
/// history, and the application gets each receipt once, signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_through_the_other_site_and_twice_reach_the_app_once() {
    let s = setup("receipts", lab_config(1.0, 1.0), SqliteOptions::default()).await;
    let http = reqwest::Client::new();
    post_until_accepted(&http, &s.api, &batch(0..200)).await;
    wait_until(Duration::from_secs(10), "200 receipts at the app", || {
        s.app.ids().len() >= 200
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids = s.app.ids();
    let unique: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!((ids.len(), unique.len()), (200, 200), "each receipt once");
    assert_eq!(*s.app.bad_signatures.lock().unwrap(), 0);
    let received = s.app.received.lock().unwrap().clone();
    assert!(received
        .iter()
        .all(|r| r["type"] == "receipt" && r["state"] == 2 && r["message_id"].is_i64()));
    // The receipt came through the other site than the submit.
    let response: Value = http
        .get(format!("{}/v1/messages/1", s.api))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["state"], "Delivered");
    let receipt_site = response["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "receipt")
        .unwrap()["detail"]
        .clone();
    assert!(
        !receipt_site
            .as_str()
            .unwrap()
            .contains(&format!("site={} ", response["site"].as_str().unwrap())),
        "{response}"
    );
    let stats = s.store.stats().await.unwrap();
    assert_eq!(stats.inbound_total, 200, "repeats stored once (SPEC M8)");
    s.gateway.shutdown().await;
}

/// SPEC M1, M6, M8: an MO delivered through several binds reaches the app once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mo_through_several_binds_reaches_the_app_once() {
    let s = setup("mo", lab_config(0.0, 0.0), SqliteOptions::default()).await;
    for site in ["a", "b", "a"] {
        s.lab
            .send_mo(MoRequest {
                from: "4917099999".into(),
                to: "hotsite".into(),
                text: "STOP".into(),
                site: Some(site.into()),
                system_id: None,
            })
            .unwrap();
    }
    wait_until(Duration::from_secs(5), "MO at the app", || {
        !s.app.ids().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = s.app.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(
        (received[0]["type"].as_str(), received[0]["text"].as_str()),
        (Some("mo"), Some("STOP"))
    );
    assert_eq!(
        s.lab.stats().totals.mo_acked,
        3,
        "every copy was acknowledged after it was stored"
    );
    s.gateway.shutdown().await;
}

/// Invariant 3, SPEC M8: bad input gets a clear 4xx and stores nothing; a repeated
/// idempotency key is accepted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_changes_nothing() {
    let s = setup("bad-input", lab_config(0.0, 0.0), SqliteOptions::default()).await;
    let http = reqwest::Client::new();
    let post = |body: Value, token: Option<&str>| {
        let mut request = http.post(format!("{}/v1/messages", s.api)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let response = post(json!({ "to": "1", "text": "x" }), None).await.unwrap();
    assert_eq!(response.status(), 401);
    let response = post(json!({ "to": "1", "text": "x" }), Some("wrong-token"))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = post(json!({ "messages": [{ "to": "+4917000", "text": "fine" }, { "to": "not a number", "text": "" }] }), Some(TOKEN)).await.unwrap();
    assert_eq!(response.status(), 400);
    let errors: Value = response.json().await.unwrap();
    let fields: Vec<(i64, &str)> = errors["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_i64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(fields, [(1, "to"), (1, "text")]);
    let response = post(
        json!({ "to": "+4917000", "text": "x", "encoding": "klingon" }),
        Some(TOKEN),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    let raw = http
        .post(format!("{}/v1/messages", s.api))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let stats = s.store.stats().await.unwrap();
    assert_eq!(
        stats.queued + stats.submitted + stats.final_states + stats.failed,
        0,
        "nothing stored"
    );

    let once = json!({ "id": "order-1", "to": "+4917000", "text": "once" });
    let first: Value = post(once.clone(), Some(TOKEN))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second: Value = post(once, Some(TOKEN)).await.unwrap().json().await.unwrap();
    assert_eq!(first["messages"][0]["status"], "accepted");
    assert_eq!(second["messages"][0]["status"], "duplicate");
    assert_eq!(first["messages"][0]["id"], second["messages"][0]["id"]);
    wait_until(Duration::from_secs(5), "delivered", || {
        s.lab.stats().totals.unique >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.lab.stats().totals.unique, 1);
    let missing = http
        .get(format!("{}/v1/messages/999999", s.api))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    s.gateway.shutdown().await;
}

/// Issue 16: `GET /v1/queue/history` has the queue's past from the gateway's
/// start (a sample at once, then every 5 s) with the throughput between
/// samples, and a sample taken now; it needs the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_history_has_depth_and_throughput_since_start() {
    let s = setup(
        "queue-history",
        lab_config(0.0, 0.0),
        SqliteOptions::default(),
    )
    .await;
    let http = reqwest::Client::new();
    let history = |query: &'static str| {
        http.get(format!("{}/v1/queue/history{query}", s.api))
            .bearer_auth(TOKEN)
            .send()
    };
    let first: Value = history("").await.unwrap().json().await.unwrap();
    assert_eq!(first["interval_ms"], 5_000);
    assert_eq!(first["window_ms"], 900_000);
    let samples = first["samples"].as_array().unwrap();
    assert!(!samples.is_empty(), "a sample from the start: {first}");
    assert_eq!(samples[0]["submitted"], 0);
    assert_eq!(samples[0]["submitted_per_s"], Value::Null);
    let started_ms = samples[0]["at_ms"].as_i64().unwrap();

    post_until_accepted(&http, &s.api, &batch(0..40)).await;
    wait_until(Duration::from_secs(10), "all 40 sent", || {
        s.gateway
            .metrics()
            .messages_submitted_total
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 40
    })
    .await;
    let current: Value = history("").await.unwrap().json().await.unwrap();
    assert_eq!(current["now"]["accepted"], 40, "{current}");
    assert_eq!(current["now"]["submitted"], 40, "{current}");
    assert_eq!(current["now"]["queued"], 0, "{current}");
    // The next 5 s sample carries the 40 as a rate.
    let until = now() + Duration::from_secs(8);
    let sample = loop {
        let after: Value = history_after(&http, &s.api, started_ms).await;
        if let Some(sample) = after["samples"]
            .as_array()
            .and_then(|samples| samples.first())
        {
            break sample.clone();
        }
        assert!(now() < until, "no sample after the first within 8 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let at_ms = sample["at_ms"].as_i64().unwrap();
    let rate = sample["submitted_per_s"].as_f64().unwrap();
    let expected = 40.0 * 1000.0 / (at_ms - started_ms) as f64;
    assert!((rate - expected).abs() < 1e-9, "{sample}");
    assert!((4_000..=6_000).contains(&(at_ms - started_ms)), "{sample}");

    let refused = http
        .get(format!("{}/v1/queue/history", s.api))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let bad = history("?after=3").await.unwrap();
    assert_eq!(bad.status(), 400);
    s.gateway.shutdown().await;
}

async fn history_after(http: &reqwest::Client, api: &str, after_ms: i64) -> Value {
    http.get(format!("{api}/v1/queue/history?after_ms={after_ms}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Invariant 1: a full store refuses new work with a clear error (507) and keeps
/// and delivers everything it accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_store_refuses_new_work_and_keeps_what_it_accepted() {
    let options = SqliteOptions {
        max_page_count: Some(64),
        ..SqliteOptions::default()
    };
    let s = setup("full", lab_config(0.0, 0.0), options).await;
    let http = reqwest::Client::new();
    let mut accepted = 0u64;
    let mut refused = None;
    for first in (0..100_000u64).step_by(100) {
        let response = http
            .post(format!("{}/v1/messages", s.api))
            .bearer_auth(TOKEN)
            .json(&batch(first..first + 100))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            202 => accepted += 100,
            507 => {
                refused = Some(response.json::<Value>().await.unwrap());
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let refused = refused.expect("the store filled up");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("storage is full"),
        "{refused}"
    );
    assert!(accepted > 0);
    wait_until(
        Duration::from_secs(20),
        "every accepted message delivered",
        || s.lab.stats().totals.unique >= accepted,
    )
    .await;
    let seen = handsets(&s.lab);
    assert_eq!(seen.len() as u64, accepted);
    assert!((0..accepted).all(|i| seen.get(&i) == Some(&1)));
    s.gateway.shutdown().await;
}
