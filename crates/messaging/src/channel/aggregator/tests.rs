//! Loopback tests of the driver: small axum servers play the aggregator's
//! sites, a tiny UDP responder plays its DNS. Waits are bounded polls; a sleep
//! only stands for the caller honouring `retry_after`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawForm, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hotsite_store::{MessageId, QueuedMessage};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use super::*;

/// What a test site answers to a submit.
#[derive(Debug, Clone)]
enum Reply {
    /// HTTP `status` with the provider's JSON and this code; the provider id is
    /// `<site>-<message_id>` unless given.
    Code {
        status: u16,
        code: i64,
        provider_id: Option<&'static str>,
    },
    /// HTTP `status` with a plain body and an optional `Retry-After`.
    Plain {
        status: u16,
        body: &'static str,
        retry_after: Option<&'static str>,
    },
    /// Never answers.
    Hang,
}

fn accept() -> Reply {
    Reply::Code {
        status: 200,
        code: 0,
        provider_id: None,
    }
}

fn code(code: i64) -> Reply {
    Reply::Code {
        status: 200,
        code,
        provider_id: None,
    }
}

fn plain(status: u16) -> Reply {
    Reply::Plain {
        status,
        body: "down",
        retry_after: None,
    }
}

/// One simulated site of the aggregator.
struct Site {
    name: &'static str,
    addr: SocketAddr,
    reply: Mutex<Reply>,
    /// What probes (`GET`) get.
    health: AtomicU16,
    forms: Mutex<Vec<HashMap<String, String>>>,
    probes: AtomicUsize,
}

impl Site {
    async fn start(name: &'static str, reply: Reply) -> Arc<Site> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Site::serve(name, listener, reply)
    }

    fn serve(name: &'static str, listener: TcpListener, reply: Reply) -> Arc<Site> {
        let site = Arc::new(Site {
            name,
            addr: listener.local_addr().unwrap(),
            reply: Mutex::new(reply),
            health: AtomicU16::new(200),
            forms: Mutex::new(Vec::new()),
            probes: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/sms/send", post(submit).get(health))
            .with_state(Arc::clone(&site));
        tokio::spawn(async move { axum::serve(listener, app).await });
        site
    }

    fn url(&self) -> String {
        format!("http://{}/sms/send", self.addr)
    }

    fn set(&self, reply: Reply, health: u16) {
        *self.reply.lock().unwrap() = reply;
        self.health.store(health, Ordering::SeqCst);
    }

    fn submits(&self) -> usize {
        self.forms.lock().unwrap().len()
    }
}

async fn submit(State(site): State<Arc<Site>>, RawForm(body): RawForm) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let message_id = form.get("message_id").cloned().unwrap_or_default();
    site.forms.lock().unwrap().push(form);
    let reply = site.reply.lock().unwrap().clone();
    match reply {
        Reply::Code {
            status,
            code,
            provider_id,
        } => {
            let provider_id = match (code, provider_id) {
                (_, Some(id)) => serde_json::Value::from(id),
                (0 | 14, None) => format!("{}-{message_id}", site.name).into(),
                _ => serde_json::Value::Null,
            };
            let body = serde_json::json!({
                "code": code,
                "description": "test",
                "message_id": message_id,
                "provider_id": provider_id,
            });
            (StatusCode::from_u16(status).unwrap(), body.to_string()).into_response()
        }
        Reply::Plain {
            status,
            body,
            retry_after,
        } => {
            let mut headers = HeaderMap::new();
            if let Some(value) = retry_after {
                headers.insert("retry-after", value.parse().unwrap());
            }
            (StatusCode::from_u16(status).unwrap(), headers, body).into_response()
        }
        Reply::Hang => std::future::pending().await,
    }
}

async fn health(State(site): State<Arc<Site>>) -> StatusCode {
    site.probes.fetch_add(1, Ordering::SeqCst);
    StatusCode::from_u16(site.health.load(Ordering::SeqCst)).unwrap()
}

/// A config over `urls` with short timers, so tests run in milliseconds.
fn config(urls: &[(&str, String)]) -> AggregatorConfig {
    let urls = urls
        .iter()
        .map(|(site, url)| SiteUrl {
            site: (*site).to_owned(),
            url: url.clone(),
            health_url: None,
        })
        .collect();
    let mut config = AggregatorConfig::new("agg", urls, "user", "secret");
    config.request_timeout = Duration::from_secs(2);
    config.resubmit_delay = Duration::from_millis(200);
    config.probe_interval = Duration::from_millis(100);
    config.probe_timeout = Duration::from_millis(500);
    config
}

fn start(config: AggregatorConfig) -> Arc<AggregatorChannel> {
    AggregatorChannel::start(
        config,
        hotsite_host::Deps::detached().events("messaging"),
        CancellationToken::new(),
    )
    .unwrap()
}

/// Message `id` with a UCS-2 body (data_coding 8), as the API stores it.
fn message(id: i64, text: &str) -> QueuedMessage {
    QueuedMessage {
        id: MessageId(id),
        source: "Shop".into(),
        destination: "+33600000001".into(),
        body: text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        data_coding: 8,
        reference: Some((id & 0xFFFF) as u16),
        attempts: 0,
        route: String::new(),
        hop: 0,
        email: None,
    }
}

async fn send_once(channel: &AggregatorChannel, id: i64) -> SendOutcome {
    channel
        .send(&message(id, "hi"), &mut AggregatorCursor::default())
        .await
}

/// Polls `condition` every 20 ms for at most 5 s.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..250 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[track_caller]
fn assert_retry(outcome: &SendOutcome, kind: RetryKind, retry_after: Option<Duration>) {
    match outcome {
        SendOutcome::Retry {
            kind: got_kind,
            retry_after: got_after,
            ..
        } => assert_eq!((*got_kind, *got_after), (kind, retry_after), "{outcome:?}"),
        other => panic!("expected a retry, got {other:?}"),
    }
}

/// The form carries every field of the provider's API, the text decoded from
/// the stored coding and our id as `message_id`; an accepted answer names the
/// site, the URL and the provider's id. An IP-literal URL uses no DNS.
#[tokio::test]
async fn form_fields_arrive_as_specified() {
    let site = Site::start("a", accept()).await;
    let mut config = config(&[("site-a", site.url())]);
    config.priority = 2;
    let channel = start(config);
    let outcome = channel
        .send(&message(42, "Привет €"), &mut AggregatorCursor::default())
        .await;
    assert_eq!(
        outcome,
        SendOutcome::Accepted {
            site: "site-a".into(),
            endpoint: site.url(),
            provider_id: "a-42".into(),
        }
    );
    let form = site.forms.lock().unwrap()[0].clone();
    let expected: HashMap<String, String> = [
        ("login", "user"),
        ("password", "secret"),
        ("phone_number", "+33600000001"),
        ("sender", "Shop"),
        ("message", "Привет €"),
        ("message_id", "42"),
        ("receipt", "1"),
        ("priority", "2"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    assert_eq!(form, expected);
    let status = channel.status();
    assert!(status.urls[0].dns.is_none());
    assert_eq!(status.counters.accepted, 1);
}

/// SPEC M14 end to end: permanent codes, a duplicate of our own earlier send
/// accepted with the original id, throttling and internal errors retried on
/// the same URL without marking it down; an unreadable answer is a failure of
/// the URL (SPEC M3), resubmitted after the delay.
#[tokio::test]
async fn provider_codes_map_end_to_end() {
    let site = Site::start("a", code(11)).await;
    let other = Site::start("b", accept()).await;
    let channel = start(config(&[("a", site.url()), ("b", other.url())]));

    let outcome = send_once(&channel, 1).await;
    assert!(
        matches!(&outcome, SendOutcome::Permanent { reason, .. } if reason.starts_with("code 11 (invalid sender)")),
        "{outcome:?}"
    );
    site.set(
        Reply::Code {
            status: 200,
            code: 14,
            provider_id: Some("original-7"),
        },
        200,
    );
    let outcome = send_once(&channel, 2).await;
    assert!(
        matches!(&outcome, SendOutcome::Accepted { provider_id, site, .. } if provider_id == "original-7" && site == "a"),
        "{outcome:?}"
    );
    for _ in 0..3 {
        site.set(code(20), 200);
        assert_retry(&send_once(&channel, 3).await, RetryKind::Throttled, None);
        site.set(code(21), 200);
        assert_retry(
            &send_once(&channel, 3).await,
            RetryKind::ProviderError,
            None,
        );
    }
    site.set(
        Reply::Code {
            status: 400,
            code: 30,
            provider_id: None,
        },
        200,
    );
    let outcome = send_once(&channel, 4).await;
    assert!(
        matches!(&outcome, SendOutcome::Permanent { reason, .. } if reason.starts_with("code 30")),
        "{outcome:?}"
    );
    site.set(
        Reply::Plain {
            status: 200,
            body: "<html>",
            retry_after: None,
        },
        200,
    );
    assert_retry(
        &send_once(&channel, 5).await,
        RetryKind::ProviderError,
        Some(Duration::from_millis(200)),
    );
    let status = channel.status();
    assert!(status.urls[0].up, "provider codes never mark a URL down");
    assert_eq!(status.counters.duplicates, 1);
    assert_eq!(status.counters.provider_retries, 6);
    assert_eq!(other.submits(), 0);
}

/// SPEC M10: a 429 honours Retry-After.
#[tokio::test]
async fn throttled_429_honours_retry_after() {
    let site = Site::start(
        "a",
        Reply::Plain {
            status: 429,
            body: "slow down",
            retry_after: Some("7"),
        },
    )
    .await;
    let channel = start(config(&[("a", site.url())]));
    assert_retry(
        &send_once(&channel, 1).await,
        RetryKind::Throttled,
        Some(Duration::from_secs(7)),
    );
    assert!(channel.status().urls[0].up);
}

/// SPEC M3, M10: no answer within the request timeout is a timeout, resubmitted
/// to the same URL after the delay (the resend carries the same message_id).
#[tokio::test]
async fn hanging_site_gives_timeout() {
    let site = Site::start("a", Reply::Hang).await;
    let mut config = config(&[("a", site.url())]);
    config.request_timeout = Duration::from_millis(300);
    let channel = start(config);
    let outcome = send_once(&channel, 1).await;
    assert_retry(
        &outcome,
        RetryKind::Timeout,
        Some(Duration::from_millis(200)),
    );
}

/// SPEC M3, M10: a refused connection is a transport failure.
#[tokio::test]
async fn refused_port_gives_transport_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let channel = start(config(&[("a", format!("http://{addr}/sms/send"))]));
    let outcome = send_once(&channel, 1).await;
    assert_retry(
        &outcome,
        RetryKind::TransportFailure,
        Some(Duration::from_millis(200)),
    );
}

/// SPEC M3, M12: the primary answers 503: the message is resubmitted to it
/// after the delay, then goes at once to the alternate; new messages skip the
/// primary while it is down; probes bring it back after `rise` good answers
/// and new messages return to it.
#[tokio::test]
async fn primary_503_fails_over_and_traffic_returns() {
    let primary = Site::start("a", plain(503)).await;
    primary.set(plain(503), 503);
    let alternate = Site::start("b", accept()).await;
    let channel = start(config(&[("a", primary.url()), ("b", alternate.url())]));

    let mut cursor = AggregatorCursor::default();
    let first = message(1, "hi");
    let outcome = channel.send(&first, &mut cursor).await;
    assert_retry(
        &outcome,
        RetryKind::TransportFailure,
        Some(Duration::from_millis(200)),
    );
    assert!(
        channel.status().urls[0].up,
        "one failure is not a dead site"
    );
    // The route honours retry_after.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let outcome = channel.send(&first, &mut cursor).await;
    assert_retry(&outcome, RetryKind::TransportFailure, Some(Duration::ZERO));
    assert_eq!(primary.submits(), 2);
    let status = channel.status();
    assert!(!status.urls[0].up);
    assert!(
        status.urls[0]
            .cause
            .as_deref()
            .unwrap()
            .contains("HTTP 503"),
        "{status:?}"
    );
    assert_eq!(status.recent_events[0].to, "down");
    let outcome = channel.send(&first, &mut cursor).await;
    assert!(
        matches!(&outcome, SendOutcome::Accepted { site, provider_id, .. } if site == "b" && provider_id == "b-1"),
        "{outcome:?}"
    );

    // New messages skip the primary while it is down.
    let outcome = send_once(&channel, 2).await;
    assert!(matches!(&outcome, SendOutcome::Accepted { site, .. } if site == "b"));
    assert_eq!(primary.submits(), 2);

    primary.set(accept(), 200);
    eventually("the primary to be up", || channel.status().urls[0].up).await;
    assert!(primary.probes.load(Ordering::SeqCst) >= 2);
    let outcome = send_once(&channel, 3).await;
    assert!(
        matches!(&outcome, SendOutcome::Accepted { site, .. } if site == "a"),
        "{outcome:?}"
    );
    let status = channel.status();
    let transitions: Vec<(&str, &str)> = status
        .recent_events
        .iter()
        .map(|event| (event.from, event.to))
        .collect();
    assert_eq!(
        transitions,
        [("up", "down"), ("down", "probing"), ("probing", "up")]
    );
    assert_eq!(status.counters.failovers, 1);
}

/// SPEC M3: when every URL fails, the message is left to the route's backoff
/// (no retry_after) and the alert is raised, in the status too.
#[tokio::test]
async fn every_url_failing_raises_the_alert() {
    let a = Site::start("a", plain(500)).await;
    let b = Site::start("b", plain(502)).await;
    a.set(plain(500), 500);
    b.set(plain(502), 502);
    let mut config = config(&[("a", a.url()), ("b", b.url())]);
    config.resubmits_per_url = 0;
    let channel = start(config);
    let mut cursor = AggregatorCursor::default();
    let first = message(1, "hi");
    assert_retry(
        &channel.send(&first, &mut cursor).await,
        RetryKind::TransportFailure,
        Some(Duration::ZERO),
    );
    let outcome = channel.send(&first, &mut cursor).await;
    assert_retry(&outcome, RetryKind::TransportFailure, None);
    assert!(
        matches!(&outcome, SendOutcome::Retry { reason, .. } if reason.contains("every URL failed")),
        "{outcome:?}"
    );
    let status = channel.status();
    assert!(status.all_down_alert);
    assert_eq!(status.counters.all_failed, 1);
    assert!(status.urls.iter().all(|url| !url.up));
    // Probes keep failing: they come back as failed, and nothing comes up.
    eventually("failed probes", || {
        channel.status().counters.probes_failed >= 4
    })
    .await;
    assert!(channel.status().all_down_alert);
}

/// SPEC M2: a host name is re-resolved by its TTL; when its record moves, new
/// messages go to the new address within about one TTL, on a new client (new
/// connection pool), although the old site still answers.
#[tokio::test]
async fn moved_dns_record_is_followed_within_its_ttl() {
    let old_site = Site::start("old", accept()).await;
    let port = old_site.addr.port();
    let Ok(listener) = TcpListener::bind(("127.0.0.2", port)).await else {
        eprintln!("127.0.0.2:{port} is not available on this host: skipping");
        return;
    };
    let new_site = Site::serve("new", listener, accept());
    let record = Arc::new(Mutex::new(Ipv4Addr::new(127, 0, 0, 1)));
    let queries = Arc::new(AtomicUsize::new(0));
    let dns_server = dns_responder(Arc::clone(&record), Arc::clone(&queries)).await;
    let mut config = config(&[("a", format!("http://sms.test:{port}/sms/send"))]);
    config.dns_server = Some(dns_server);
    let channel = start(config);

    let outcome = send_once(&channel, 1).await;
    assert!(
        matches!(&outcome, SendOutcome::Accepted { provider_id, .. } if provider_id == "old-1"),
        "{outcome:?}"
    );
    let dns = channel.status().urls[0].dns.clone().unwrap();
    assert_eq!(
        (dns.host.as_str(), dns.addrs.clone()),
        ("sms.test", vec!["127.0.0.1".to_owned()])
    );
    assert_eq!(dns.clients_built, 1);

    *record.lock().unwrap() = Ipv4Addr::new(127, 0, 0, 2);
    #[allow(clippy::disallowed_methods)] // test epoch: only the elapsed time matters
    let moved_at = std::time::Instant::now();
    let mut id = 2;
    loop {
        let outcome = send_once(&channel, id).await;
        match &outcome {
            SendOutcome::Accepted { provider_id, .. } if provider_id.starts_with("new-") => break,
            SendOutcome::Accepted { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            moved_at.elapsed() < Duration::from_secs(3),
            "still on the old address 3 s after a move with a 1 s TTL"
        );
        id += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dns = channel.status().urls[0].dns.clone().unwrap();
    assert_eq!(dns.addrs, ["127.0.0.2"]);
    assert_eq!(dns.clients_built, 2);
    assert!(queries.load(Ordering::SeqCst) >= 2);
    assert!(old_site.submits() >= 1);
    assert_eq!(new_site.submits(), 1);
}

/// SPEC M2: many sends needing the same resolution at once all get an answer:
/// one resolves, the others wait for it or use the last answer (a regression
/// test for a lock held across the wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_share_one_resolution() {
    let site = Site::start("only", accept()).await;
    let record = Arc::new(Mutex::new(Ipv4Addr::new(127, 0, 0, 1)));
    let queries = Arc::new(AtomicUsize::new(0));
    let dns_server = dns_responder(Arc::clone(&record), Arc::clone(&queries)).await;
    let port = site.addr.port();
    let mut config = config(&[("a", format!("http://sms.test:{port}/sms/send"))]);
    config.dns_server = Some(dns_server);
    let channel = start(config);
    for round in 0..3i64 {
        let sends = (0..32i64).map(|i| {
            let channel = Arc::clone(&channel);
            tokio::spawn(async move { send_once(&channel, round * 100 + i).await })
        });
        let outcomes =
            tokio::time::timeout(Duration::from_secs(10), futures_join_all(sends.collect()))
                .await
                .expect("every send answered within 10 s");
        for outcome in outcomes {
            assert!(
                matches!(outcome, SendOutcome::Accepted { .. }),
                "{outcome:?}"
            );
        }
        // Past the 1 s TTL, so the next round resolves again, concurrently.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    assert!(queries.load(Ordering::SeqCst) >= 3);
}

async fn futures_join_all(handles: Vec<tokio::task::JoinHandle<SendOutcome>>) -> Vec<SendOutcome> {
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(handle.await.unwrap());
    }
    outcomes
}

/// A minimal DNS server: answers every A question with `record`, TTL 1 s, and
/// any other question with no records.
async fn dns_responder(record: Arc<Mutex<Ipv4Addr>>, queries: Arc<AtomicUsize>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = [0u8; 512];
        while let Ok((len, peer)) = socket.recv_from(&mut buffer).await {
            let address = *record.lock().unwrap();
            if let Some(reply) = dns_reply(&buffer[..len], address) {
                queries.fetch_add(1, Ordering::SeqCst);
                let _ = socket.send_to(&reply, peer).await;
            }
        }
    });
    addr
}

/// The reply to a one-question query (RFC 1035 section 4.1).
fn dns_reply(query: &[u8], address: Ipv4Addr) -> Option<Vec<u8>> {
    // The question starts after the 12-byte header: labels up to the empty
    // one, then QTYPE and QCLASS.
    let mut end = 12;
    loop {
        let len = usize::from(*query.get(end)?);
        end += 1 + len;
        if len == 0 {
            break;
        }
    }
    let question = query.get(12..end + 4)?;
    let is_a = question[question.len() - 4..question.len() - 2] == [0, 1];
    let mut reply = Vec::with_capacity(64);
    reply.extend_from_slice(&query[..2]); // the query's id
    reply.extend_from_slice(&[0x81, 0x80]); // a response, recursion available, no error
    reply.extend_from_slice(&[0, 1, 0, u8::from(is_a), 0, 0, 0, 0]); // 1 question, 0-1 answer
    reply.extend_from_slice(question);
    if is_a {
        // A pointer to the question's name, type A, class IN, TTL 1, 4 bytes.
        reply.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4]);
        reply.extend_from_slice(&address.octets());
    }
    Some(reply)
}
