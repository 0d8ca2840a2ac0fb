//! The HTTP routes end to end on loopback: the aggregator's HTTP API with site
//! failover and a moving DNS record, digital channels' webhooks falling back to
//! a secondary provider and then to e-mail (a real SMTP server, aiosmtpd), and
//! the provider's receipt and MO callbacks back into the inbox.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use hotsite_core::BackoffConfig;
use hotsite_lab::{
    HttpConfig, HttpFault, HttpMoRequest, HttpSiteConfig, Lab, LabConfig, LabHandle, Protocol,
};
use hotsite_messaging::channel::aggregator::{AggregatorConfig, SiteUrl};
use hotsite_messaging::channel::digital::DigitalConfig;
use hotsite_messaging::channel::email::{EmailConfig, Security};
use hotsite_messaging::gateway::{ChannelConfig, RouteConfig};
use hotsite_messaging::policy::{AmbiguousPolicy, HopPolicy};
use hotsite_messaging::webhook::WebhookConfig;
use hotsite_messaging::GatewayConfig;
use hotsite_store::{MessageId, MessageState, SqliteOptions, SqliteStore};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::gateway::{
    now, post_until_accepted, serve, temp_dir, wait_until, App, RemovedOnDrop, Served, SECRET,
};

const CALLBACK_SECRET: &str = "provider-callback-secret";

struct Setup {
    lab: LabHandle,
    gateway: Served,
    store: SqliteStore,
    api: String,
    app: App,
    _dir: RemovedOnDrop,
}

fn policy(budget: Option<u32>, initial_ms: u64, max_ms: u64) -> HopPolicy {
    HopPolicy {
        budget,
        backoff: BackoffConfig {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
            multiplier: 2,
        },
        ambiguous: AmbiguousPolicy::Resubmit,
    }
}

/// A lab with the HTTP API's sites (no SMSCs) whose callbacks come to `api`.
fn http_lab(sites: Vec<HttpSiteConfig>, shared_port: bool) -> LabConfig {
    let mut lab = LabConfig::loopback(&[]);
    lab.seed = 5;
    lab.receipts.delay_ms = 5;
    let mut http = HttpConfig::loopback(&[]);
    http.sites = sites;
    http.shared_port = shared_port;
    http.callback_secret = Some(CALLBACK_SECRET.to_owned());
    lab.http = Some(http);
    lab
}

fn site(name: &str, ip: [u8; 4]) -> HttpSiteConfig {
    HttpSiteConfig {
        name: name.to_owned(),
        listen: SocketAddr::from((ip, 0)),
    }
}

/// The gateway on its own store, an app for receipts and MO, and the lab's
/// callbacks pointed at the gateway's API.
async fn setup(
    name: &str,
    mut lab: LabConfig,
    channels: impl FnOnce(&LabHandle) -> Vec<(String, ChannelConfig)>,
    routes: Vec<RouteConfig>,
) -> Setup {
    let dir = temp_dir(name);
    // The gateway's API port is needed in the lab's config: pick it first.
    let api_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api_addr = api_listener.local_addr().unwrap();
    drop(api_listener);
    if let Some(http) = &mut lab.http {
        http.dr_url = Some(format!("http://{api_addr}/v1/callbacks/agg/receipt"));
        http.mo_url = Some(format!("http://{api_addr}/v1/callbacks/agg/mo"));
    }
    let lab = Lab::start(lab).await.unwrap();
    let app = App::default();
    let app_addr = app.start().await;
    let store = SqliteStore::open(&dir.join("hotsite.db"), SqliteOptions::default()).unwrap();
    let config = GatewayConfig {
        inbox: Default::default(),
        smpp: None,
        channels: channels(&lab),
        routes,
        default_route: None,
        default_from: "hotsite".into(),
        dispatcher: Default::default(),
        webhook: Some(WebhookConfig {
            url: format!("http://{app_addr}/hook"),
            secret: SECRET.into(),
            timeout: Duration::from_secs(2),
            backoff: Default::default(),
            concurrency: 16,
        }),
    };
    let gateway = serve(api_addr, config, store.clone()).await;
    Setup {
        api: format!("http://{}", gateway.local_addr()),
        lab,
        gateway,
        store,
        app,
        _dir: RemovedOnDrop(dir),
    }
}

fn aggregator(name: &str, urls: Vec<SiteUrl>) -> AggregatorConfig {
    let mut config = AggregatorConfig::new(name, urls, "hotsite", "secret");
    config.resubmit_delay = Duration::from_millis(500);
    config.request_timeout = Duration::from_millis(500);
    config.probe_interval = Duration::from_millis(100);
    config.probe_timeout = Duration::from_millis(200);
    config.rise = 2;
    config
}

/// One URL per HTTP site of the lab, in its order (the first is the primary).
fn site_urls(lab: &LabHandle) -> Vec<SiteUrl> {
    lab.http_site_addrs()
        .into_iter()
        .map(|(name, addr)| SiteUrl {
            site: name,
            url: format!("http://{addr}/sms/send"),
            health_url: None,
        })
        .collect()
}

fn http_channel(config: AggregatorConfig) -> Vec<(String, ChannelConfig)> {
    vec![(
        "agg".to_owned(),
        ChannelConfig::Http {
            config,
            callback_secret: Some(CALLBACK_SECRET.into()),
        },
    )]
}

fn route(name: &str, hops: Vec<(&str, HopPolicy)>) -> Vec<RouteConfig> {
    vec![RouteConfig {
        name: name.to_owned(),
        hops: hops
            .into_iter()
            .map(|(channel, policy)| (channel.to_owned(), policy))
            .collect(),
    }]
}

fn messages(prefix: &str, range: std::ops::Range<u64>, extra: Value) -> Value {
    json!({ "messages": range.map(|i| {
        let mut message = json!({
            "id": format!("{prefix}-{i}"),
            "to": format!("+4670{i:07}"),
            "text": format!("{prefix} #{i}"),
        });
        for (key, value) in extra.as_object().unwrap() {
            message[key] = value.clone();
        }
        message
    }).collect::<Vec<_>>() })
}

/// The message ids of the keys `{prefix}-{i}`.
async fn ids(store: &SqliteStore, prefix: &str, range: std::ops::Range<u64>) -> Vec<MessageId> {
    let mut ids = Vec::new();
    for i in range {
        let view = store
            .message_by_key(&format!("{prefix}-{i}"))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{prefix}-{i} stored"));
        ids.push(view.id);
    }
    ids
}

/// Waits until every message of `ids` has left the queue.
async fn wait_final(store: &SqliteStore, ids: &[MessageId], limit: Duration) {
    let start = now();
    loop {
        let mut queued = 0;
        for id in ids {
            let view = store.message(*id).await.unwrap().unwrap();
            if view.state == MessageState::Queued {
                queued += 1;
            }
        }
        if queued == 0 {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{queued} of {} still queued after {limit:?}",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every message of `ids` has its final receipt (SPEC M13).
async fn wait_delivered(store: &SqliteStore, ids: &[MessageId], limit: Duration) {
    let start = now();
    for id in ids {
        loop {
            let view = store.message(*id).await.unwrap().unwrap();
            if view.state == MessageState::Delivered {
                break;
            }
            assert!(
                start.elapsed() < limit,
                "message {id} is {} after {limit:?}: {:#?}",
                view.state,
                view.events
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Per text prefix, how many times each text reached a handset over HTTP, and
/// at which site.
fn http_handsets(lab: &LabHandle, prefix: &str) -> HashMap<String, Vec<String>> {
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for message in lab.handset_log() {
        if message.protocol == Protocol::Http && message.text.starts_with(prefix) {
            seen.entry(message.text.clone())
                .or_default()
                .push(message.site.clone());
        }
    }
    seen
}

/// The aggregator channel's status, as the API serves it under `channels`.
fn aggregator_status(s: &Setup) -> Value {
    s.gateway.channel_status("agg").expect("agg has a status")
}

/// SPEC M3, M8, M12: the primary site answers 503, then hangs: every message
/// is resubmitted to it once after the resubmit delay, then goes to the
/// alternate; new messages skip the primary while it is down; none is lost or
/// delivered twice. Once the primary answers probes again, traffic returns to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_503_then_hang_fails_over_and_traffic_returns() {
    let lab = http_lab(
        vec![site("a", [127, 0, 0, 1]), site("b", [127, 0, 0, 1])],
        false,
    );
    let s = setup(
        "http-failover",
        lab,
        |lab| http_channel(aggregator("agg", site_urls(lab))),
        route("sms", vec![("agg", policy(None, 100, 1_000))]),
    )
    .await;
    let http = reqwest::Client::new();

    // Primary up: traffic goes to it.
    post_until_accepted(&http, &s.api, &messages("warm", 0..10, json!({}))).await;
    let warm = ids(&s.store, "warm", 0..10).await;
    wait_final(&s.store, &warm, Duration::from_secs(10)).await;
    let seen = http_handsets(&s.lab, "warm");
    assert_eq!(seen.len(), 10);
    assert!(seen.values().all(|sites| sites == &["a"]), "{seen:?}");

    // The primary answers 503: resubmitted once after 500 ms, then to b.
    s.lab
        .set_http_site_fault(
            "a",
            HttpFault::Status {
                code: 503,
                retry_after_s: None,
            },
        )
        .unwrap();
    post_until_accepted(&http, &s.api, &messages("fail", 0..20, json!({}))).await;
    let fail = ids(&s.store, "fail", 0..20).await;
    wait_final(&s.store, &fail, Duration::from_secs(10)).await;
    // Every message failed on the primary first and waited the resubmit delay
    // before it went anywhere else; the first to fail there twice marked the
    // primary down, and the others then went straight to the alternate.
    let mut resubmitted_to_primary = 0;
    for id in &fail {
        let view = s.store.message(*id).await.unwrap().unwrap();
        let steps: Vec<&hotsite_store::EventRecord> =
            view.events.iter().filter(|e| e.kind != "receipt").collect();
        let kinds: Vec<&str> = steps.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds.first(), Some(&"accepted"));
        assert_eq!(
            kinds.get(1),
            Some(&"transport_failure"),
            "{:#?}",
            view.events
        );
        assert_eq!(kinds.last(), Some(&"submitted"), "{:#?}", view.events);
        assert!(kinds.len() <= 4, "{:#?}", view.events);
        if kinds.len() == 4 {
            assert_eq!(kinds[2], "transport_failure");
            resubmitted_to_primary += 1;
        }
        let waited = steps[steps.len() - 1].at_ms - steps[1].at_ms;
        assert!(
            waited >= 450,
            "went on after {waited} ms; resubmit delay 500 ms"
        );
        assert_eq!(view.site.as_deref(), Some("b"));
    }
    assert!(
        resubmitted_to_primary >= 1,
        "the same URL was tried again first"
    );

    // Then it hangs: new messages skip it (it is known down) and go to b at once.
    s.lab.set_http_site_fault("a", HttpFault::Hang).unwrap();
    post_until_accepted(&http, &s.api, &messages("hang", 0..20, json!({}))).await;
    let hang = ids(&s.store, "hang", 0..20).await;
    wait_final(&s.store, &hang, Duration::from_secs(10)).await;
    for id in &hang {
        let view = s.store.message(*id).await.unwrap().unwrap();
        assert!(
            matches!(
                view.state,
                MessageState::Submitted | MessageState::Delivered
            ),
            "{:#?}",
            view.events
        );
        assert_eq!(view.site.as_deref(), Some("b"), "{:#?}", view.events);
    }
    let status = aggregator_status(&s);
    assert_eq!(status["urls"][0]["up"], false, "{status:#}");
    let metrics = crate::gateway::metrics_text(&http, &s.api).await;
    assert!(
        metrics.contains("hotsite_http_site_up{channel=\"agg\",site=\"a\"} 0\n")
            && metrics.contains("hotsite_http_site_up{channel=\"agg\",site=\"b\"} 1\n")
            && metrics.contains("hotsite_http_all_sites_down{channel=\"agg\"} 0\n"),
        "{metrics}"
    );

    // Nothing lost, nothing twice.
    for prefix in ["fail", "hang"] {
        let seen = http_handsets(&s.lab, prefix);
        assert_eq!(seen.len(), 20, "{prefix}: {seen:?}");
        assert!(
            seen.values().all(|sites| sites.len() == 1),
            "{prefix}: {seen:?}"
        );
    }

    // The primary recovers: after `rise` good probes, traffic returns to it.
    s.lab.set_http_site_fault("a", HttpFault::Recover).unwrap();
    wait_until(Duration::from_secs(10), "primary back up", || {
        aggregator_status(&s)["urls"][0]["up"] == true
    })
    .await;
    post_until_accepted(&http, &s.api, &messages("back", 0..10, json!({}))).await;
    let back = ids(&s.store, "back", 0..10).await;
    wait_final(&s.store, &back, Duration::from_secs(10)).await;
    let seen = http_handsets(&s.lab, "back");
    assert_eq!(seen.len(), 10);
    assert!(seen.values().all(|sites| sites == &["a"]), "{seen:?}");
    s.gateway.shutdown().await;
    s.lab.shutdown().await;
}

/// SPEC M2: one URL whose DNS record moves: new submits reach the new address
/// within one TTL (1 s here), with both sites up, so only re-resolution can
/// move the traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_dns_record_takes_effect_within_one_ttl() {
    let mut lab = http_lab(
        vec![site("a", [127, 0, 0, 1]), site("b", [127, 0, 0, 2])],
        true,
    );
    lab.dns = Some(hotsite_lab::DnsConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ttl_s: 1,
        records: vec![hotsite_lab::DnsRecordConfig {
            name: "sms.lab.test".to_owned(),
            addrs: vec![IpAddr::from([127, 0, 0, 1])],
        }],
    });
    let s = setup(
        "dns-move",
        lab,
        |lab| {
            let port = lab.http_site_addrs()[0].1.port();
            let mut config = aggregator(
                "agg",
                vec![SiteUrl {
                    site: "sms".to_owned(),
                    url: format!("http://sms.lab.test:{port}/sms/send"),
                    health_url: None,
                }],
            );
            config.dns_server = lab.dns_addr();
            http_channel(config)
        },
        route("sms", vec![("agg", policy(None, 100, 1_000))]),
    )
    .await;
    let http = reqwest::Client::new();
    post_until_accepted(&http, &s.api, &messages("before", 0..5, json!({}))).await;
    let before = ids(&s.store, "before", 0..5).await;
    wait_final(&s.store, &before, Duration::from_secs(10)).await;
    assert!(http_handsets(&s.lab, "before")
        .values()
        .all(|sites| sites == &["a"]));

    s.lab
        .set_dns("sms.lab.test", vec![IpAddr::from([127, 0, 0, 2])])
        .unwrap();
    let moved = now();
    // One message every 100 ms for 2.5 s; every one sent more than one TTL
    // (plus 300 ms for the request itself) after the move must reach b.
    let mut sent_at = Vec::new();
    for i in 0..25u64 {
        sent_at.push(moved.elapsed());
        post_until_accepted(&http, &s.api, &messages("after", i..i + 1, json!({}))).await;
        let id = ids(&s.store, "after", i..i + 1).await;
        wait_final(&s.store, &id, Duration::from_secs(5)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = http_handsets(&s.lab, "after");
    assert_eq!(seen.len(), 25);
    for (i, at) in sent_at.iter().enumerate() {
        let sites = &seen[&format!("after #{i}")];
        assert_eq!(sites.len(), 1, "after #{i} delivered twice");
        if *at > Duration::from_millis(1_300) {
            assert_eq!(sites[0], "b", "after #{i} sent {at:?} after the move");
        }
    }
    assert!(
        s.lab.dns_queries("sms.lab.test") >= 2,
        "the name was resolved again"
    );
    s.gateway.shutdown().await;
    s.lab.shutdown().await;
}

/// `tests/interop/smtp_server.py`: aiosmtpd, a real SMTP server.
struct SmtpServer {
    port: u16,
    mails: tokio::sync::mpsc::UnboundedReceiver<Value>,
    _child: tokio::process::Child,
}

impl SmtpServer {
    async fn start() -> SmtpServer {
        let python = std::env::var("HOTSITE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/smtp_server.py");
        let mut child = tokio::process::Command::new(python)
            .arg(script)
            .arg("0")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 with tests/interop/requirements.txt installed");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready: Value = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("smtp_server.py ready within 20 s")
            .unwrap()
            .map(|line| serde_json::from_str(&line).unwrap())
            .expect("a ready line (is aiosmtpd installed?)");
        let port = ready["port"].as_u64().unwrap() as u16;
        let (sender, mails) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let event: Value = serde_json::from_str(&line).unwrap_or_default();
                if event["event"] == "mail" && sender.send(event).is_err() {
                    break;
                }
            }
        });
        SmtpServer {
            port,
            mails,
            _child: child,
        }
    }
}

/// SPEC M10, M11, M15: both chat providers answer 503: each message is retried
/// on the primary within its budget (`transport_failure` events), moves to the
/// secondary, then to e-mail, which a real SMTP server receives; every hop is
/// an event and a metric. The webhooks were signed; nothing reached a chat
/// endpoint, so nothing was delivered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_503s_fall_back_to_secondary_then_email() {
    let mut smtp = SmtpServer::start().await;
    let mut lab = LabConfig::loopback(&[]);
    for name in ["primary-chat", "secondary-chat"] {
        lab.webhooks.push(hotsite_lab::WebhookConfig {
            name: name.to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            secret: Some(format!("{name}-signing-secret")),
        });
    }
    let smtp_port = smtp.port;
    let s = setup(
        "digital-fallback",
        lab,
        |lab| {
            let mut channels: Vec<(String, ChannelConfig)> = lab
                .webhook_addrs()
                .into_iter()
                .map(|(name, addr)| {
                    let config = DigitalConfig {
                        name: name.clone(),
                        url: format!("http://{addr}/messages"),
                        secret: Some(format!("{name}-signing-secret").into()),
                        timeout: Duration::from_secs(2),
                    };
                    (name, ChannelConfig::Digital(config))
                })
                .collect();
            let mut email = EmailConfig::new("127.0.0.1", "Hotsite <hotsite@example.com>");
            email.port = Some(smtp_port);
            email.security = Security::None;
            email.timeout = Duration::from_secs(5);
            channels.push(("mail".to_owned(), ChannelConfig::Email(email)));
            channels
        },
        route(
            "chat",
            vec![
                ("primary-chat", policy(Some(3), 20, 100)),
                ("secondary-chat", policy(Some(2), 20, 100)),
                ("mail", policy(Some(3), 20, 100)),
            ],
        ),
    )
    .await;
    for name in ["primary-chat", "secondary-chat"] {
        s.lab
            .set_webhook_fault(
                name,
                HttpFault::Status {
                    code: 503,
                    retry_after_s: None,
                },
            )
            .unwrap();
    }
    let http = reqwest::Client::new();
    post_until_accepted(
        &http,
        &s.api,
        &messages("chat", 0..5, json!({ "email": "ann@example.com" })),
    )
    .await;
    let chat = ids(&s.store, "chat", 0..5).await;
    wait_final(&s.store, &chat, Duration::from_secs(20)).await;
    let mut mailed = HashMap::new();
    while mailed.len() < 5 {
        let mail = tokio::time::timeout(Duration::from_secs(10), smtp.mails.recv())
            .await
            .expect("a mail within 10 s")
            .unwrap();
        assert_eq!(mail["rcpt_tos"], json!(["ann@example.com"]));
        let id: i64 = mail["x_hotsite_message_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        *mailed.entry(id).or_insert(0) += 1;
    }
    for id in &chat {
        assert_eq!(mailed.get(&id.0), Some(&1), "message {id} mailed once");
        let view = s.store.message(*id).await.unwrap().unwrap();
        assert_eq!(view.state, MessageState::Submitted);
        assert_eq!(view.site.as_deref(), Some("email"));
        assert_eq!(view.hop, 2);
        let kinds: Vec<&str> = view.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "accepted",
                "transport_failure",
                "transport_failure",
                "transport_failure",
                "fallback",
                "transport_failure",
                "transport_failure",
                "fallback",
                "submitted"
            ],
            "{:#?}",
            view.events
        );
    }
    for name in ["primary-chat", "secondary-chat"] {
        assert!(s.lab.webhook_log(name).unwrap().is_empty());
    }
    let metrics = crate::gateway::metrics_text(&http, &s.api).await;
    assert!(
        metrics.contains(
            "hotsite_route_fallbacks_total{route=\"chat\",from=\"primary-chat\",to=\"secondary-chat\"} 5"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "hotsite_route_fallbacks_total{route=\"chat\",from=\"secondary-chat\",to=\"mail\"} 5"
        ),
        "{metrics}"
    );

    // The channels' endpoints as the operator sees them (SPEC M10): both chat
    // endpoints out of service after three failed sends in a row, with the
    // cause, on the status, the metrics and the event stream; the mail relay
    // in service.
    for name in ["primary-chat", "secondary-chat"] {
        let status = s.gateway.channel_status(name).expect("a digital status");
        assert_eq!(status["kind"], "digital", "{status}");
        assert_eq!(status["health"], "down", "{status}");
        assert!(
            status["last_failure"]["cause"]
                .as_str()
                .is_some_and(|cause| cause.contains("503")),
            "{status}"
        );
        // The webhook's path may hold its secret: only the origin is shown.
        assert!(
            !status["url"].as_str().unwrap().contains("/messages"),
            "{status}"
        );
        assert!(
            metrics.contains(&format!(
                "hotsite_channel_up{{channel=\"{name}\",kind=\"digital\"}} 0"
            )),
            "{metrics}"
        );
    }
    let mail = s.gateway.channel_status("mail").expect("a mail status");
    assert_eq!(
        (mail["kind"].as_str(), mail["health"].as_str()),
        (Some("email"), Some("up")),
        "{mail}"
    );
    assert_eq!(mail["sends"], 5, "{mail}");
    let events: Value = http
        .get(format!(
            "{}/v1/events?kind=health&target=primary-chat",
            s.api
        ))
        .bearer_auth(crate::gateway::TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let down = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["state"] == "down")
        .unwrap_or_else(|| panic!("no down event for primary-chat: {events}"));
    assert_eq!(down["target"], "primary-chat/digital", "{down}");
    assert!(
        down["cause"]
            .as_str()
            .unwrap()
            .starts_with("3 sends in a row failed"),
        "{down}"
    );

    // The primary recovers: new messages go to it, signed, once each.
    s.lab
        .set_webhook_fault("primary-chat", HttpFault::Recover)
        .unwrap();
    post_until_accepted(&http, &s.api, &messages("ok", 0..5, json!({}))).await;
    let ok = ids(&s.store, "ok", 0..5).await;
    wait_final(&s.store, &ok, Duration::from_secs(10)).await;
    let log = s.lab.webhook_log("primary-chat").unwrap();
    let mut delivered: Vec<String> = log.iter().map(|m| m.id.clone()).collect();
    delivered.sort();
    let mut expected: Vec<String> = ok.iter().map(|id| id.0.to_string()).collect();
    expected.sort();
    assert_eq!(delivered, expected);
    let primary = s.gateway.channel_status("primary-chat").unwrap();
    assert_eq!(
        primary["health"], "up",
        "back in service after a delivered send: {primary}"
    );
    s.gateway.shutdown().await;
    s.lab.shutdown().await;
}

/// SPEC M1, M8, M13, M15: receipts posted twice and from the other site, and an
/// MO posted twice, reach the application once each; every message gets its
/// final state from its receipt; unsigned callbacks are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_callbacks_reach_the_application_once() {
    let mut lab = http_lab(
        vec![site("a", [127, 0, 0, 1]), site("b", [127, 0, 0, 1])],
        false,
    );
    lab.receipts.duplicate_probability = 1.0;
    lab.receipts.other_site_probability = 0.5;
    let s = setup(
        "http-callbacks",
        lab,
        |lab| http_channel(aggregator("agg", site_urls(lab))),
        route("sms", vec![("agg", policy(None, 100, 1_000))]),
    )
    .await;
    let http = reqwest::Client::new();
    post_until_accepted(&http, &s.api, &messages("dr", 0..50, json!({}))).await;
    let dr = ids(&s.store, "dr", 0..50).await;
    wait_delivered(&s.store, &dr, Duration::from_secs(20)).await;
    for _ in 0..3 {
        s.lab
            .send_http_mo(HttpMoRequest {
                from: "46701234567".to_owned(),
                to: "12345".to_owned(),
                text: "STOP".to_owned(),
                site: Some("b".to_owned()),
                duplicate: true,
            })
            .unwrap();
    }
    wait_until(
        Duration::from_secs(20),
        "50 receipts and 3 MO at the app",
        || s.app.ids().len() >= 53,
    )
    .await;
    // Let any straggling repeat arrive before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = s.app.received.lock().unwrap().clone();
    let mut receipts = HashMap::new();
    let mut mos = 0;
    for item in &received {
        match item["type"].as_str() {
            Some("receipt") => *receipts.entry(item["message_id"].as_i64()).or_insert(0) += 1,
            Some("mo") => mos += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(receipts.len(), 50, "{receipts:?}");
    assert!(receipts.values().all(|n| *n == 1), "{receipts:?}");
    assert_eq!(mos, 3, "three distinct MO, each posted twice, once each");
    // A callback without a valid signature is refused.
    let refused = http
        .post(format!("{}/v1/callbacks/agg/receipt", s.api))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("message_id=1&provider_id=x&status=DELIVRD")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    // SPEC M13: a signed receipt for a provider id no message has is kept and
    // answered as uncorrelated; one for a known id names its message.
    let post_receipt = |body: String| {
        let signature =
            hotsite_messaging::signing::sign(CALLBACK_SECRET.as_bytes(), body.as_bytes());
        http.post(format!("{}/v1/callbacks/agg/receipt", s.api))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(hotsite_messaging::signing::SIGNATURE_HEADER, signature)
            .body(body)
            .send()
    };
    let unknown: Value =
        post_receipt("message_id=999999&provider_id=nobody-knows&status=DELIVRD".into())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(unknown["stored"], "new", "{unknown}");
    assert_eq!(unknown["correlated"], false, "{unknown}");
    let view = s.store.message(dr[0]).await.unwrap().unwrap();
    let provider_id = view.provider_message_id.expect("submitted");
    let body = format!(
        "message_id={}&provider_id={provider_id}&status=ENROUTE",
        dr[0].0
    );
    let known: Value = post_receipt(body).await.unwrap().json().await.unwrap();
    assert_eq!(
        (known["correlated"].as_bool(), known["message_id"].as_i64()),
        (Some(true), Some(dr[0].0)),
        "{known}"
    );
    s.gateway.shutdown().await;
    s.lab.shutdown().await;
}
