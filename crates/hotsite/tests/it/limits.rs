//! The HTTP API's bounds as a stranger meets them (DESIGN.md invariant 6): the
//! real binary (`hotsite run`) under a small open-file limit, idle and
//! half-sent connections, slow bodies, oversized and conflicting requests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::daemon;
use crate::gateway::{now, temp_dir, RemovedOnDrop, TOKEN};

/// `hotsite run` as a child process, its API address and its log.
struct Running {
    _child: Child,
    api: String,
    addr: String,
    stderr: Arc<Mutex<String>>,
    _dir: RemovedOnDrop,
}

/// Starts `hotsite run` with `ulimit -n files` and these `[api]` timeouts. An
/// HTTP aggregator channel (nothing listens at its URL: messages stay queued)
/// takes callbacks at `/v1/callbacks/agg/...`.
async fn start(name: &str, files: u32, header: &str, request: &str) -> Running {
    start_with(name, files, header, request, "").await
}

/// [`start`], with more `[api]` lines.
async fn start_with(name: &str, files: u32, header: &str, request: &str, api: &str) -> Running {
    let dir = temp_dir(name);
    let config = format!(
        r#"
[site]
name = "it"

[api]
listen = "127.0.0.1:0"
tokens = ["{TOKEN}"]
header_timeout = "{header}"
idle_timeout = "5s"
request_timeout = "{request}"
{api}

[store]
path = "{db}"

[[channels]]
name = "agg"
kind = "http"
login = "hotsite"
password = "secret"
urls = [{{ site = "a", url = "http://127.0.0.1:9/sms/send" }}]

[[routes]]
name = "sms"
hops = ["agg"]
"#,
        db = dir.join("hotsite.db").display()
    );
    let path = dir.join("hotsite.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!(
            "ulimit -n {files} && exec \"$0\" run --config \"$1\""
        ))
        .arg(env!("CARGO_BIN_EXE_hotsite"))
        .arg(&path)
        .env("HOTSITE_LOG", "warn");
    let daemon = daemon::spawn(command).await;
    Running {
        api: format!("http://{}", daemon.addr),
        addr: daemon.addr,
        stderr: daemon.stderr,
        _child: daemon.child,
        _dir: RemovedOnDrop(dir),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The value of metric line `name` (labels included) in `/metrics`, 0 if absent.
async fn metric(running: &Running, name: &str) -> u64 {
    let text = client()
        .get(format!("{}/metrics", running.api))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |value| value.parse().unwrap())
}

/// Writes `bytes` on a new connection and reads the answer until the server
/// closes it (at most `within`): (status code, body).
async fn raw(addr: &str, bytes: &[u8], within: Duration) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if let Some(head_end) = find(&answer, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&answer[..head_end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .and_then(|n| n.trim().parse::<usize>().ok());
                if length.is_some_and(|length| answer.len() >= head_end + 4 + length) {
                    break;
                }
            }
        }
    })
    .await
    .expect("an answer in time");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if status == 503 {
        // Every 503 of the server says when to come back.
        assert!(head.to_lowercase().contains("retry-after: 1"), "{head}");
    }
    (status, body.to_owned())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether the server closes `stream` within `within` (EOF or reset).
async fn closed_within(mut stream: TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Invariant 6, SPEC M9: with the process's file limit at 512, 600 idle
/// connections (100 of them with half a request head) do not starve the API:
/// health answers at once, a message is accepted (202), connections over the
/// cap push out the idle ones, and the half-sent ones are closed by the
/// header timeout. Before: health and POST timed out, nothing logged.
#[tokio::test]
async fn six_hundred_idle_connections_under_a_512_file_limit_do_not_starve_the_api() {
    let running = start("limits-idle", 512, "4s", "10s").await;
    let mut half_sent = Vec::new();
    for _ in 0..100 {
        let mut stream = TcpStream::connect(&running.addr).await.unwrap();
        stream
            .write_all(b"POST /v1/messages HTTP/1.1\r\nHost: hotsite\r\nContent-Ty")
            .await
            .unwrap();
        half_sent.push(stream);
    }
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(TcpStream::connect(&running.addr).await.unwrap());
    }

    let started = now();
    let health = client()
        .get(format!("{}/v1/health", running.api))
        .send()
        .await
        .expect("health answers despite 600 idle connections");
    assert_eq!(health.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let accepted = client()
        .post(format!("{}/v1/messages", running.api))
        .bearer_auth(TOKEN)
        .json(&json!({ "to": "+4917012345678", "text": "through the crowd" }))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);

    assert!(
        metric(
            &running,
            "hotsite_http_connections_closed_total{reason=\"evicted\"}"
        )
        .await
            > 0,
        "the cap was reached and idle connections made room"
    );
    assert!(metric(&running, "hotsite_http_connections_open").await <= 384);
    let log = running.stderr.lock().unwrap().clone();
    assert!(log.contains("api.max_connections lowered"), "{log}");

    let mut closing = tokio::task::JoinSet::new();
    for stream in half_sent {
        closing.spawn(closed_within(stream, Duration::from_secs(20)));
    }
    while let Some(closed) = closing.join_next().await {
        assert!(closed.unwrap(), "a half-sent head is closed");
    }
    assert!(
        metric(
            &running,
            "hotsite_http_connections_closed_total{reason=\"header_timeout\"}"
        )
        .await
            >= 100
    );
    drop(idle);
}

/// Invariant 6, SPEC M13: the provider callback routes are served by the same
/// server: a callback whose body never arrives is answered 408 (JSON) after
/// the request timeout, a half-sent head is closed after the header timeout.
#[tokio::test]
async fn callback_routes_are_served_under_the_same_limits() {
    let running = start("limits-callbacks", 1024, "2s", "1s").await;
    let started = now();
    let (status, body) = raw(
        &running.addr,
        b"POST /v1/callbacks/agg/mo HTTP/1.1\r\nHost: hotsite\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nmessage_id",
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(status, 408, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("api.request_timeout"),
        "{body}"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(
        metric(&running, "hotsite_http_requests_timed_out_total").await,
        1
    );

    let started = now();
    let mut half = TcpStream::connect(&running.addr).await.unwrap();
    half.write_all(b"POST /v1/callbacks/agg/receipt HTTP/1.1\r\nHost: hot")
        .await
        .unwrap();
    assert!(closed_within(half, Duration::from_secs(15)).await);
    assert!(started.elapsed() >= Duration::from_millis(1500));

    // A keep-alive connection is served, then closed after api.idle_timeout (5s).
    let mut kept = TcpStream::connect(&running.addr).await.unwrap();
    kept.write_all(b"GET /v1/health HTTP/1.1\r\nHost: hotsite\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), kept.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let served = now();
    assert!(closed_within(kept, Duration::from_secs(20)).await);
    assert!(
        served.elapsed() >= Duration::from_secs(4),
        "{:?}",
        served.elapsed()
    );
    assert!(
        metric(
            &running,
            "hotsite_http_connections_closed_total{reason=\"idle\"}"
        )
        .await
            >= 1
    );
}

/// SPEC M8, invariant 3: a key reused for a different message is refused with
/// 409 naming the original (alone and in a batch) and nothing of it is stored;
/// the same message again stays an idempotent repeat; `bearer` in any case is
/// accepted; a non-ASCII key, an oversized body get accurate JSON errors; a
/// 9,000-byte MO is stored.
#[tokio::test]
async fn api_refusals_are_accurate_json() {
    let running = start("limits-errors", 1024, "10s", "10s").await;
    let http = client();
    let post = |key: &str, body: Value| {
        http.post(format!("{}/v1/messages", running.api))
            .header("Authorization", format!("bearer {TOKEN}"))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = json!({ "to": "+4917012345678", "text": "first" });
    let answer = post("k-1", first.clone()).await.unwrap();
    assert_eq!(answer.status(), 202, "lower-case bearer scheme");
    let id = answer.json::<Value>().await.unwrap()["messages"][0]["id"].clone();
    let again = post("k-1", first.clone()).await.unwrap();
    assert_eq!(again.status(), 202);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["messages"][0]["status"], "duplicate");

    let other = json!({ "to": "+4917012345678", "text": "second" });
    let conflict = post("k-1", other).await.unwrap();
    assert_eq!(conflict.status(), 409);
    let conflict: Value = conflict.json().await.unwrap();
    assert_eq!(conflict["messages"][0]["status"], "conflict");
    assert_eq!(conflict["messages"][0]["id"], id);
    assert!(
        conflict["error"]
            .as_str()
            .unwrap()
            .contains(&format!("message {id}")),
        "{conflict}"
    );
    let stored: Value = http
        .get(format!("{}/v1/messages/{id}", running.api))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["text"], "first", "the original is kept: {stored}");

    let batch = |second: &str| {
        json!({ "messages": [
            { "to": "+4917012345678", "text": "one" },
            { "to": "+4917012345678", "text": second },
        ]})
    };
    assert_eq!(post("b-1", batch("two")).await.unwrap().status(), 202);
    let answer = post("b-1", batch("deux")).await.unwrap();
    assert_eq!(answer.status(), 409);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["messages"][0]["status"], "duplicate", "{answer}");
    assert_eq!(answer["messages"][1]["status"], "conflict", "{answer}");
    assert_eq!(
        metric(&running, "hotsite_messages_accepted_total").await,
        3,
        "nothing of a conflicting message is stored"
    );

    let non_ascii = http
        .post(format!("{}/v1/messages", running.api))
        .bearer_auth(TOKEN)
        .header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes("ключ".as_bytes()).unwrap(),
        )
        .json(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(non_ascii.status(), 400);
    let non_ascii: Value = non_ascii.json().await.unwrap();
    assert_eq!(non_ascii["errors"][0]["field"], "Idempotency-Key");
    assert!(
        non_ascii["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("visible ASCII"),
        "{non_ascii}"
    );

    let (status, body) = raw(
        &running.addr,
        format!(
            "POST /v1/messages HTTP/1.1\r\nHost: hotsite\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 3000000\r\n\r\n"
        )
        .as_bytes(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("2097152 bytes"),
        "{body}"
    );

    let mo = format!(
        "message_id=M1&from=4670111&to=12345&message={}",
        "a".repeat(8_950)
    );
    let stored = http
        .post(format!("{}/v1/callbacks/agg/mo", running.api))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(mo)
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 200, "a 9,000-byte MO is stored");
}

/// Invariant 6: at the cap with every connection busy (requests whose bodies
/// are still arriving), a new connection is answered at once with a short 503
/// JSON with Retry-After and closed, not left waiting.
#[tokio::test]
async fn at_the_cap_with_every_connection_busy_a_new_one_gets_503() {
    let running = start_with("limits-refuse", 1024, "10s", "20s", "max_connections = 2").await;
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&running.addr).await.unwrap();
        stream
            .write_all(b"POST /v1/callbacks/agg/mo HTTP/1.1\r\nHost: hotsite\r\nContent-Length: 100\r\n\r\nmessage_id")
            .await
            .unwrap();
        busy.push(stream);
    }
    // Both heads must be read before the third connection comes: until then
    // they count as idle and the newcomer would push one out. Generous.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut refused = None;
    for _ in 0..50 {
        let (status, body) = raw(
            &running.addr,
            b"GET /v1/health HTTP/1.1\r\nHost: hotsite\r\n\r\n",
            Duration::from_secs(10),
        )
        .await;
        if status == 503 {
            refused = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body: Value = serde_json::from_str(&refused.expect("a 503 at the cap")).unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("too many connections"),
        "{body}"
    );
    drop(busy);
    let mut served = false;
    for _ in 0..50 {
        if let Ok(answer) = client()
            .get(format!("{}/v1/health", running.api))
            .send()
            .await
        {
            served = answer.status() == 200;
            if served {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "served again once the busy connections are gone");
    assert!(
        metric(
            &running,
            "hotsite_http_connections_closed_total{reason=\"refused\"}"
        )
        .await
            >= 1
    );
}
