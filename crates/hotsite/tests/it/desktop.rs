//! The desktop service through `hotsite run` (SPEC D1–D6 with S1, S7, S8):
//! a real WebSocket client against the daemon's `/v1/desktop`, the lab's
//! phones registering at the site, and the lab's link between two peered
//! sites. Every wait is bounded.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hotsite_lab::{Link, LinkConfig, SipPhone, SipPhoneConfig};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::daemon::{self, Daemon};
use crate::gateway::{now, temp_dir};

pub(crate) const TOKEN: &str = "desktop-test-token";
const PHONE_PASSWORD: &str = "phone-secret-1";
pub(crate) const PASSWORD: &str = "alice's desktop password";
const APP: &str = "hotsite-web-desktop";
/// Longest a test waits for one expected frame.
const FRAME_WAIT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) fn free_udp() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The PHC string of `password`, from `hotsite desktop hash-password`.
pub(crate) fn hash(password: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hotsite"))
        .args(["desktop", "hash-password"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let phc = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    phc
}

pub(crate) struct Site {
    pub(crate) daemon: Daemon,
    sip: SocketAddr,
}

/// Where a site's API listens and the two sites' desktop URLs it lists.
pub(crate) struct Endpoints<'a> {
    pub(crate) api: SocketAddr,
    pub(crate) urls: &'a [(String, String); 2],
}

impl Site {
    async fn start(
        dir: &Path,
        name: &str,
        sip: SocketAddr,
        peer: Option<SocketAddr>,
        phc: &str,
        desktop_extra: &str,
    ) -> Site {
        // The URLs only matter to a desktop that switches: placeholders.
        let urls = [
            ("a".to_owned(), "ws://127.0.0.1:1/v1/desktop".to_owned()),
            ("b".to_owned(), "ws://127.0.0.1:2/v1/desktop".to_owned()),
        ];
        let api = SocketAddr::from(([127, 0, 0, 1], 0));
        let endpoints = Endpoints { api, urls: &urls };
        Site::start_at(dir, name, sip, peer, phc, desktop_extra, endpoints).await
    }

    /// A site (one DN 1001, agent alice, person alice preferring a) whose
    /// API and desktop URLs are `endpoints`.
    pub(crate) async fn start_at(
        dir: &Path,
        name: &str,
        sip: SocketAddr,
        peer: Option<SocketAddr>,
        phc: &str,
        desktop_extra: &str,
        endpoints: Endpoints<'_>,
    ) -> Site {
        let Endpoints { api, urls } = endpoints;
        let (a_url, b_url) = (&urls[0].1, &urls[1].1);
        let peer = peer
            .map(|p| format!("dr_peer_trunk = \"{p}\"\n"))
            .unwrap_or_default();
        let config = format!(
            r#"[site]
name = "{name}"
listen = "{sip}"
{peer}oos_check = "200ms"
oos_force = "1s"
peer_rise = 2

[[site.dns]]
dn = "1001"
password = "{PHONE_PASSWORD}"

[[site.agents]]
id = "alice"

[api]
listen = "{api}"
tokens = ["{TOKEN}"]

[desktop]
{desktop_extra}
[[desktop.sites]]
name = "a"
url = "{a_url}"

[[desktop.sites]]
name = "b"
url = "{b_url}"

[[desktop.people]]
user = "alice"
password_hash = "{phc}"
agent = "alice"
dn = "1001"
preferred_site = "a"
secondary_site = "b"
"#
        );
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        let check = std::process::Command::new(env!("CARGO_BIN_EXE_hotsite"))
            .arg("check-config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "check-config: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let mut command = Command::new(env!("CARGO_BIN_EXE_hotsite"));
        command
            .arg("run")
            .arg("--config")
            .arg(&path)
            .env("HOTSITE_LOG", "info");
        let daemon = daemon::spawn(command).await;
        Site { daemon, sip }
    }

    fn url(&self) -> String {
        format!("ws://{}/v1/desktop", self.daemon.addr)
    }

    async fn connect(&self) -> Ws {
        let (ws, response) = tokio_tungstenite::connect_async(self.url()).await.unwrap();
        assert_eq!(response.status(), 101);
        ws
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::Client::new()
            .get(format!("http://{}{path}", self.daemon.addr))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits (bounded) until the DN is in service at this site.
    async fn wait_dn(&self, in_service: bool) {
        let deadline = now() + Duration::from_secs(10);
        loop {
            let site = self.get("/v1/site").await;
            let found = site["dns"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| d["dn"] == "1001" && d["in_service"] == true);
            if found == in_service {
                return;
            }
            assert!(now() < deadline, "DN 1001 in service {in_service}: {site}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_mode(&self, mode: &str) {
        let deadline = now() + Duration::from_secs(10);
        loop {
            let site = self.get("/v1/site").await;
            if site["mode"] == mode {
                return;
            }
            assert!(now() < deadline, "mode {mode}: {site}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn phone(registrar: SocketAddr) -> SipPhone {
    let config = SipPhoneConfig::new("1001", PHONE_PASSWORD, "hotsite", vec![registrar]);
    SipPhone::start(config).await.unwrap()
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next frame that is not `stats`: a JSON message, or the close frame
/// as `{"close": code}`.
async fn next(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(FRAME_WAIT, ws.next())
            .await
            .expect("a frame within the wait");
        match frame {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                if value["type"] != "stats" {
                    return value;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                return json!({"close": frame.map(|f| u16::from(f.code))})
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => return json!({"error": error.to_string()}),
            None => return json!({"close": null}),
        }
    }
}

/// Frames until one of `kind` (others are skipped), bounded.
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    let deadline = now() + FRAME_WAIT;
    loop {
        assert!(now() < deadline, "no {kind} frame");
        let value = next(ws).await;
        if value["type"] == kind || value.get("close").is_some() {
            return value;
        }
    }
}

async fn hello(ws: &mut Ws, id: u64, application: &str, password: &str) -> Value {
    send(
        ws,
        json!({"type": "hello", "id": id, "application": application, "user": "alice", "password": password}),
    )
    .await;
    next(ws).await
}

/// SPEC D1, D2: hello answers the person's sites and both endpoints; wrong
/// passwords and unknown applications are refused, the third failure closes;
/// nothing but hello before hello; bad JSON is named and the connection
/// stays; an oversized frame closes with 1009; the web desktop is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_refusals_bad_frames_and_assets() {
    let dir = temp_dir("desktop-hello");
    let a = Site::start(&dir, "a", free_udp(), None, &hash(PASSWORD), "").await;

    let mut ws = a.connect().await;
    send(&mut ws, json!({"type": "login", "id": 1})).await;
    let answer = next(&mut ws).await;
    assert_eq!(
        (answer["id"].clone(), answer["code"].clone()),
        (json!(1), json!("hello_expected"))
    );
    let answer = hello(&mut ws, 2, APP, PASSWORD).await;
    assert_eq!(answer["type"], "result", "{answer}");
    assert_eq!(answer["id"], 2);
    assert_eq!(answer["protocol"], 1);
    assert_eq!(answer["site"], "a");
    assert_eq!(answer["person"]["preferred_site"], "a");
    assert_eq!(answer["person"]["secondary_site"], "b");
    assert_eq!(
        answer["sites"][1],
        json!({"name": "b", "url": "ws://127.0.0.1:2/v1/desktop"})
    );
    assert_eq!(
        answer["services"],
        json!({"configuration": "on", "telephony": "on", "statistics": "on"})
    );
    assert_eq!(
        answer["agent"],
        json!({"id": "alice", "dn": null, "state": "logged_out"})
    );
    assert_eq!(answer["dn"], json!({"dn": "1001", "in_service": false}));
    // Bad input: named, and the connection stays (DESIGN.md invariant 3).
    ws.send(Message::Text("{\"type\": \"ping\", \"id\": ".into()))
        .await
        .unwrap();
    let answer = next(&mut ws).await;
    assert_eq!(answer["code"], "bad_request");
    assert!(
        answer["message"].as_str().unwrap().contains("not JSON"),
        "{answer}"
    );
    send(&mut ws, json!({"type": "dance", "id": 3})).await;
    let answer = next(&mut ws).await;
    assert_eq!(
        (answer["id"].clone(), answer["code"].clone()),
        (json!(3), json!("bad_request"))
    );
    assert!(
        answer["message"].as_str().unwrap().contains("\"dance\""),
        "{answer}"
    );
    send(&mut ws, json!({"type": "ping", "id": 4})).await;
    assert_eq!(next(&mut ws).await, json!({"type": "result", "id": 4}));
    // Statistics (D5) once a second.
    let stats = tokio::time::timeout(FRAME_WAIT, async {
        loop {
            if let Some(Ok(Message::Text(text))) = ws.next().await {
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                if value["type"] == "stats" {
                    return value;
                }
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(stats["agents_logged_in"], 0, "{stats}");
    // Over 16 KiB: closed with 1009.
    let big = format!(
        "{{\"type\":\"ping\",\"id\":5,\"pad\":\"{}\"}}",
        "x".repeat(17 * 1024)
    );
    let _ = ws.send(Message::Text(big.into())).await;
    assert_eq!(next(&mut ws).await, json!({"close": 1009}));

    // Refusals: wrong password, unknown application, then the third closes.
    let mut ws = a.connect().await;
    let answer = hello(&mut ws, 1, APP, "wrong").await;
    assert_eq!(
        (answer["id"].clone(), answer["code"].clone()),
        (json!(1), json!("bad_credentials"))
    );
    let answer = hello(&mut ws, 2, "someone-elses-app", PASSWORD).await;
    assert_eq!(answer["code"], "unknown_application", "{answer}");
    let answer = hello(&mut ws, 3, APP, "").await;
    assert_eq!(answer["code"], "bad_credentials");
    let answer = next(&mut ws).await;
    assert_eq!(answer["code"], "too_many_attempts", "{answer}");
    assert!(
        answer.get("id").is_none(),
        "an error that ends the connection has no id"
    );
    assert_eq!(
        next(&mut ws).await,
        json!({"close": u16::from(CloseCode::Policy)})
    );

    // The web desktop, on an open route.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{}", a.daemon.addr);
    let page = client.get(format!("{base}/desktop/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.text().await.unwrap().contains("desktop.js"));
    // desktop.js imports the machine: both served, as modules.
    let desktop_js = client
        .get(format!("{base}/desktop/desktop.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(desktop_js.status(), 200);
    assert!(desktop_js.text().await.unwrap().contains("./switchover.js"));
    let script = client
        .get(format!("{base}/desktop/switchover.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let redirect = client.get(format!("{base}/desktop")).send().await.unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/desktop/");
    let status = a.get("/v1/status").await;
    assert_eq!(
        status["desktop"]["hellos"]["bad_credentials"], 2,
        "{status}"
    );
    assert_eq!(status["desktop"]["closed"]["too_big"], 1, "{status}");
}

/// SPEC D4, S8, S7 with D6: with the phone registered, login answers the
/// agent and an `agent` event follows; ready likewise; a drain logs the
/// agent out with graceful_shutdown_logout, then the connection closes with
/// 1001 as the process stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_ready_events_and_drain() {
    let dir = temp_dir("desktop-login");
    let a = Site::start(&dir, "a", free_udp(), None, &hash(PASSWORD), "").await;
    let _phone = phone(a.sip).await;
    a.wait_dn(true).await;
    let mut ws = a.connect().await;
    let answer = hello(&mut ws, 1, APP, PASSWORD).await;
    assert_eq!(
        answer["dn"],
        json!({"dn": "1001", "in_service": true}),
        "{answer}"
    );
    send(&mut ws, json!({"type": "login", "id": 2})).await;
    let answer = next_of(&mut ws, "result").await;
    assert_eq!(
        answer["agent"],
        json!({"id": "alice", "dn": "1001", "state": "not_ready"}),
        "{answer}"
    );
    let event = next_of(&mut ws, "agent").await;
    assert_eq!(event["agent"]["state"], "not_ready", "{event}");
    send(&mut ws, json!({"type": "ready", "id": 4})).await;
    let answer = next_of(&mut ws, "result").await;
    assert_eq!(answer["agent"]["state"], "ready", "{answer}");
    let event = next_of(&mut ws, "agent").await;
    assert_eq!(event["agent"]["state"], "ready", "{event}");
    let drain = reqwest::Client::new()
        .post(format!("http://{}/v1/site/drain", a.daemon.addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(drain.status(), 202);
    let event = next_of(&mut ws, "logged_out").await;
    assert_eq!(event["reason"], "graceful_shutdown_logout", "{event}");
    assert_eq!(event["agent"]["state"], "logged_out");
    // No call left: the process stops, and says so to the desktop.
    let mut closed = next(&mut ws).await;
    while closed.get("close").is_none() {
        closed = next(&mut ws).await;
    }
    assert_eq!(closed, json!({"close": 1001}));
    let mut child = a.daemon.child;
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the drained site exits")
        .unwrap();
    assert!(exit.success());
}

/// SPEC D6 with S8 and S1: peered, the phone unregisters at a: the desktop
/// gets `dn` out of service and `logged_out` with dr-force_logout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peered_dn_out_of_service_forces_the_logout() {
    let dir = temp_dir("desktop-peered");
    let phc = hash(PASSWORD);
    let (a_sip, b_sip) = (free_udp(), free_udp());
    let link = Link::start(LinkConfig::new("ab", a_sip, b_sip))
        .await
        .unwrap();
    let a = Site::start(&dir, "a", a_sip, Some(link.a_addr()), &phc, "").await;
    let b = Site::start(&dir, "b", b_sip, Some(link.b_addr()), &phc, "").await;
    a.wait_mode("peered").await;
    b.wait_mode("peered").await;
    let phone = phone(a.sip).await;
    a.wait_dn(true).await;
    let mut ws = a.connect().await;
    hello(&mut ws, 1, APP, PASSWORD).await;
    // At b the phone is not registered: while peered, b refuses (S3).
    let mut at_b = b.connect().await;
    hello(&mut at_b, 1, APP, PASSWORD).await;
    send(&mut at_b, json!({"type": "login", "id": 2})).await;
    let answer = next_of(&mut at_b, "error").await;
    assert_eq!(answer["code"], "dn_out_of_service", "{answer}");
    send(&mut ws, json!({"type": "login", "id": 2})).await;
    let answer = next_of(&mut ws, "result").await;
    assert_eq!(answer["agent"]["dn"], "1001", "{answer}");
    phone.unregister();
    let event = next_of(&mut ws, "dn").await;
    assert_eq!(event["in_service"], false, "{event}");
    let event = next_of(&mut ws, "logged_out").await;
    assert_eq!(event["reason"], "dr-force_logout", "{event}");
}

/// DESIGN.md invariant 6: past desktop.max_connections the upgrade gets 503
/// with Retry-After; a slot freed is taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_with_503() {
    let dir = temp_dir("desktop-limit");
    let a = Site::start(
        &dir,
        "a",
        free_udp(),
        None,
        &hash(PASSWORD),
        "max_connections = 2\n",
    )
    .await;
    let first = a.connect().await;
    let _second = a.connect().await;
    match tokio_tungstenite::connect_async(a.url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers()["retry-after"], "1");
        }
        other => panic!("expected a 503, got {:?}", other.map(|(_, r)| r.status())),
    }
    drop(first);
    let deadline = now() + Duration::from_secs(5);
    loop {
        match tokio_tungstenite::connect_async(a.url()).await {
            Ok(_) => break,
            Err(_) if now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(error) => panic!("the freed slot was not taken again: {error}"),
        }
    }
}

/// D8 (and the switchover storm): a hello answer carries a session token; a
/// later hello with it is taken without the password, at this site or at
/// another with the same `session_key`; an altered token or one from another
/// key gets `bad_session`, and the password still works on that connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_tokens_spare_the_password() {
    let dir = temp_dir("desktop-session");
    let phc = hash(PASSWORD);
    let key = r#"session_key = "one key for both sites of the pair""#;
    let a = Site::start(&dir, "a", free_udp(), None, &phc, key).await;
    let b = Site::start(&dir, "b", free_udp(), None, &phc, key).await;
    let other = Site::start(
        &temp_dir("desktop-session-other"),
        "a",
        free_udp(),
        None,
        &phc,
        "",
    )
    .await;

    let mut ws = a.connect().await;
    let answer = hello(&mut ws, 1, APP, PASSWORD).await;
    let token = answer["session"]["token"].as_str().unwrap().to_owned();
    let expires = answer["session"]["expires_ms"].clone();
    assert!(
        answer["session"]["expires_ms"].as_i64().unwrap() > 0,
        "{answer}"
    );
    let with_token = |id: u64, token: &str| json!({"type": "hello", "id": id, "application": APP, "user": "alice", "token": token});
    for site in [&a, &b] {
        let mut ws = site.connect().await;
        send(&mut ws, with_token(1, &token)).await;
        let answer = next(&mut ws).await;
        assert_eq!(answer["type"], "result", "{answer}");
        assert_eq!(answer["person"]["agent"], "alice");
        // A token sign-in does not extend the session (session_ttl holds).
        assert_eq!(answer["session"]["expires_ms"], expires, "{answer}");
    }
    let altered = format!("{}x", &token[..token.len() - 1]);
    for (site, token) in [(&a, altered.as_str()), (&other, token.as_str())] {
        let mut ws = site.connect().await;
        send(&mut ws, with_token(1, token)).await;
        let answer = next(&mut ws).await;
        assert_eq!(answer["code"], "bad_session", "{answer}");
        let answer = hello(&mut ws, 2, APP, PASSWORD).await;
        assert_eq!(answer["type"], "result", "{answer}");
    }
    let status = b.get("/v1/status").await;
    assert_eq!(status["desktop"]["hellos"]["session"], 1, "{status}");
    assert_eq!(status["desktop"]["hellos"]["ok"], 0, "{status}");
}
