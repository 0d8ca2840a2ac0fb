//! The host as an operator meets it (issue 11; DESIGN.md "The host",
//! invariant 4): the real binary (`hotsite run`) with messaging and voice
//! behind one listener, against the lab's SMSCs and SIP trunks. One
//! `/metrics` that the Prometheus project's own parser accepts, names with
//! quotes and backslashes included; both systems' failover decisions in one
//! event ring and one live stream; no configured secret anywhere in what the
//! process prints or answers.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hotsite_core::Target;
use hotsite_lab::{
    AccountConfig, Fault, Lab, LabConfig, LabHandle, SipTrunk, SipTrunkConfig, TrunkFault,
};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::daemon;
use crate::gateway::{now, temp_dir, RemovedOnDrop};

/// An SMSC instance name that needs escaping in a label value.
const SMSC: &str = r#"smsc "1" \ east"#;
/// A trunk name that needs escaping too.
const TRUNK: &str = r#"edge "one" \ trunk"#;

/// Every secret of the configuration: none may appear in any output.
const API_TOKEN: &str = "tok-4f1d9a77c2e84b1f";
const SMPP_PASSWORD: &str = "Pw7c1e9x";
const WEBHOOK_SECRET: &str = "whsec-0b8e5d3a71c94f26aa";
const AGG_PASSWORD: &str = "aggpw-5e2c7b19d04a";
const CALLBACK_SECRET: &str = "cbsec-93d1f0a6e2b74c58";
const CHAT_SECRET: &str = "chatsec-61a8c4e07d3b92f5";
const MAIL_PASSWORD: &str = "mailpw-2f7b9d04c6e1";
const REGISTER_PASSWORD: &str = "regpw-8c3e1a5f70d2";
/// A webhook whose path is its secret, as many chat platforms' are.
const CHAT_PATH_TOKEN: &str = "T0CHAT/B0HOOK/path-token-5e1f";
const SECRETS: [&str; 9] = [
    API_TOKEN,
    SMPP_PASSWORD,
    WEBHOOK_SECRET,
    AGG_PASSWORD,
    CALLBACK_SECRET,
    CHAT_SECRET,
    MAIL_PASSWORD,
    REGISTER_PASSWORD,
    CHAT_PATH_TOKEN,
];

/// `hotsite run` with messaging (two SMSCs of the lab, an HTTP aggregator, a
/// chat webhook and e-mail) and voice (a lab trunk, and a registering trunk
/// whose registrar does not answer), its output kept.
struct Site {
    child: Child,
    api: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    lab: LabHandle,
    trunk: SipTrunk,
    started_ms: i64,
    _dir: RemovedOnDrop,
}

fn wall_ms() -> i64 {
    #[allow(clippy::disallowed_methods)] // event times are wall-clock ms
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn start(name: &str) -> Site {
    let started_ms = wall_ms();
    let dir = temp_dir(name);
    let mut lab_config = LabConfig::two_sites_two_smscs();
    lab_config.accounts = vec![AccountConfig {
        system_id: "hotsite".into(),
        password: SMPP_PASSWORD.into(),
    }];
    let lab = Lab::start(lab_config).await.unwrap();
    let trunk = SipTrunk::start(SipTrunkConfig::new(
        "t1",
        SocketAddr::from(([127, 0, 0, 1], 0)),
    ))
    .await
    .unwrap();
    let smscs: Vec<String> = lab
        .smsc_addrs()
        .iter()
        .enumerate()
        .map(|(i, (target, addr))| {
            // The first instance gets the name that needs escaping.
            let name = if i == 0 {
                SMSC.to_owned()
            } else {
                target.name.to_string()
            };
            format!(
                "[[smpp.smsc]]\nsite = \"{}\"\nname = '{name}'\naddress = \"{addr}\"\n",
                target.site
            )
        })
        .collect();
    let config = format!(
        r#"
[site]
name = "it"

[api]
listen = "127.0.0.1:0"
tokens = ["{API_TOKEN}"]

[store]
path = "{db}"

[webhook]
url = "http://127.0.0.1:9/hotsite"
secret = "{WEBHOOK_SECRET}"

[smpp]
system_id = "hotsite"
password = "{SMPP_PASSWORD}"

{smscs}

[[channels]]
name = "agg"
kind = "http"
login = "hotsite"
password = "{AGG_PASSWORD}"
callback_secret = "{CALLBACK_SECRET}"
urls = [{{ site = "a", url = "http://127.0.0.1:9/sms/send" }}]

[[channels]]
name = "chat"
kind = "webhook"
url = "http://127.0.0.1:9/hooks/{CHAT_PATH_TOKEN}"
secret = "{CHAT_SECRET}"

[[channels]]
name = "mail"
kind = "email"
host = "127.0.0.1"
port = 9
security = "starttls"
username = "hotsite"
password = "{MAIL_PASSWORD}"
from = "hotsite@example.com"
default_to = "ops@example.com"

[[routes]]
name = "sms"
hops = ["smpp"]

[[routes]]
name = "chat"
hops = ["chat", "mail"]

[voice]
listen = "127.0.0.1:0"

[[voice.trunks]]
name = '{TRUNK}'
carrier = "carrier-1"
address = "{trunk}"
priority = 10
media_region = "eu-west"
failover_region = "eu-central"
probe = {{ interval = "200ms", timeout = "200ms", fall = 2, rise = 2 }}

[[voice.trunks]]
name = "registering"
carrier = "carrier-2"
address = "127.0.0.1:9"
priority = 20
media_region = "eu-west"
failover_region = "eu-central"
register = {{ registrar = "sip:127.0.0.1:9", user = "hotsite", password = "{REGISTER_PASSWORD}" }}

[[voice.groups]]
name = "outbound"
distribution = "sequential"
trunks = ['{TRUNK}', "registering"]
"#,
        db = dir.join("hotsite.db").display(),
        smscs = smscs.join("\n"),
        trunk = trunk.local_addr(),
    );
    let path = dir.join("hotsite.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hotsite"));
    command
        .arg("run")
        .arg("--config")
        .arg(&path)
        // Everything the process logs, secrets would show here first.
        .env("HOTSITE_LOG", "debug");
    let daemon = daemon::spawn(command).await;
    let site = Site {
        api: format!("http://{}", daemon.addr),
        child: daemon.child,
        stdout: daemon.stdout,
        stderr: daemon.stderr,
        lab,
        trunk,
        started_ms,
        _dir: RemovedOnDrop(dir),
    };
    let deadline = now() + Duration::from_secs(10);
    loop {
        let status: Value =
            serde_json::from_str(&site.text("/v1/status").await.1).unwrap_or(Value::Null);
        let binds_up = status["binds"]
            .as_array()
            .is_some_and(|b| b.len() == 4 && b.iter().all(|b| b["health"] == "Up"));
        let trunk_up = status["trunks"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["name"] == TRUNK && t["in_service"] == true)
        });
        if binds_up && trunk_up {
            break;
        }
        assert!(
            now() < deadline,
            "every SMSC bound and the trunk in service within 10 s: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    site
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

impl Site {
    async fn text(&self, path: &str) -> (u16, String) {
        let response = client()
            .get(format!("{}{path}", self.api))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// The lab's target of the SMSC configured as [`SMSC`].
    fn escaped_smsc(&self) -> Target {
        self.lab.smsc_addrs()[0].0.clone()
    }

    async fn stop(mut self) -> String {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
        self.lab.shutdown().await;
        let stdout = self.stdout.lock().unwrap().clone();
        let stderr = self.stderr.lock().unwrap().clone();
        stdout + &stderr
    }
}

/// `/metrics` as the Prometheus project's own parser
/// (`prometheus_client.openmetrics.parser`) reads it: each family by name,
/// with its `type` and its `samples` as `[name, labels, value]`. Panics, with
/// the page, when the parser refuses it.
pub(crate) fn openmetrics_families(text: &str) -> Value {
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    out[family.name] = {"type": family.type, "samples": [[s.name, s.labels, s.value] for s in family.samples]}
print(json.dumps(out))
"#;
    let mut python = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with prometheus_client (scripts/test installs it)");
    use std::io::Write;
    python
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let parsed = python.wait_with_output().unwrap();
    assert!(
        parsed.status.success(),
        "the OpenMetrics parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    serde_json::from_slice(&parsed.stdout).unwrap()
}

/// SPEC M4, V2 (bind and trunk state in metrics), issue 11: one `/metrics`
/// for both systems that the Prometheus project's parser
/// (`prometheus_client.openmetrics.parser`) accepts, with the SMSC and trunk
/// names, quotes and backslashes included, read back exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_metrics_page_parses_with_names_escaped() {
    let site = start("host-metrics").await;
    let (code, text) = site.text("/metrics").await;
    assert_eq!(code, 200, "{text}");
    let families = openmetrics_families(&text);
    let sample = |family: &str, label: &str, value: &str| {
        families[family]["samples"]
            .as_array()
            .unwrap_or_else(|| panic!("no family {family} in {families}"))
            .iter()
            .find(|s| s[1][label] == value)
            .map(|s| s[2].as_f64().unwrap())
            .unwrap_or_else(|| panic!("no {family}{{{label}={value:?}}} in {text}"))
    };
    // Voice and messaging on one page, each name exactly as configured.
    assert_eq!(sample("hotsite_trunk_in_service", "trunk", TRUNK), 1.0);
    assert_eq!(sample("hotsite_bind_up", "smsc", SMSC), 1.0);
    assert_eq!(families["hotsite_trunk_attempts"]["type"], "counter");
    assert_eq!(families["hotsite_messages_accepted"]["type"], "counter");
    assert_eq!(families["hotsite_binds_up"]["type"], "gauge");
    assert_eq!(families["hotsite_http_connections_open"]["type"], "gauge");
    assert!(text.contains(r#"trunk="edge \"one\" \\ trunk""#), "{text}");
    site.stop().await;
}

/// SPEC M4, V2, DESIGN.md invariant 4: an SMSC and a trunk die; both decisions,
/// each with its cause and time, are in `GET /v1/events` and were pushed on
/// the live stream (`GET /v1/events/stream`) opened before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smsc_and_a_trunk_failing_are_in_one_event_stream() {
    let site = start("host-events").await;
    // The live stream first, as a dashboard would hold it.
    let mut stream = client()
        .get(format!("{}/v1/events/stream?kind=health", site.api))
        .bearer_auth(API_TOKEN)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let killed_ms = wall_ms();
    site.lab
        .set_fault(&site.escaped_smsc(), Fault::Die)
        .unwrap();
    site.trunk.set_fault(TrunkFault::Silent).unwrap();

    let smsc_target = format!("{}/{SMSC}", site.escaped_smsc().site);
    let trunk_target = format!("carrier-1/{TRUNK}");
    let is_down = |event: &Value, target: &str| {
        event["target"] == target
            && event["kind"] == "health"
            && event["state"] == "down"
            && event["cause"].as_str().is_some_and(|c| !c.is_empty())
            && event["at_ms"].as_i64().is_some_and(|t| t >= killed_ms)
    };
    // Pushed live: read the stream until both went by (10 s at most).
    let mut seen = String::new();
    let mut live: Vec<Value> = Vec::new();
    let deadline = now() + Duration::from_secs(10);
    while !(live.iter().any(|e| is_down(e, &smsc_target))
        && live.iter().any(|e| is_down(e, &trunk_target)))
    {
        let left = deadline.saturating_duration_since(now());
        assert!(
            !left.is_zero(),
            "not both on the stream within 10 s: {seen}"
        );
        let Ok(Ok(Some(chunk))) = tokio::time::timeout(left, stream.chunk()).await else {
            panic!("the stream ended or stalled: {seen}");
        };
        seen.push_str(&String::from_utf8_lossy(&chunk));
        live = seen
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str(data.trim()).ok())
            .collect();
    }
    assert!(seen.contains("event: health"), "{seen}");
    assert!(seen.contains("id: "), "{seen}");

    // And in the ring, each system's under its name, filterable.
    for (system, target) in [("messaging", &smsc_target), ("voice", &trunk_target)] {
        let (code, body) = site
            .text(&format!("/v1/events?system={system}&since_ms={killed_ms}"))
            .await;
        assert_eq!(code, 200, "{body}");
        let events: Value = serde_json::from_str(&body).unwrap();
        let events = events["events"].as_array().unwrap();
        assert!(
            events.iter().any(|e| is_down(e, target)),
            "{system}: no down event for {target} in {body}"
        );
        assert!(events.iter().all(|e| e["system"] == system), "{body}");
        assert!(events
            .iter()
            .all(|e| e["at_ms"].as_i64().unwrap() >= killed_ms));
    }
    // The time filter is a filter: nothing from before the start.
    let (_, body) = site
        .text(&format!("/v1/events?until_ms={}", site.started_ms - 1))
        .await;
    assert_eq!(body, r#"{"events":[]}"#);
    // A bad query is refused, naming what the query takes.
    let (code, body) = site.text("/v1/events?colour=red").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("system, target, kind"), "{body}");
    site.stop().await;
}

/// SPEC M15 (signing secrets), issue 11 "Secrets everywhere": with the log
/// at debug, no configured
/// secret appears in what the process prints, in `/v1/status`, `/metrics`,
/// `/v1/health`, the OpenAPI document, the event ring, or any error body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_printed_or_answered() {
    let site = start("host-secrets").await;
    let http = client();
    let mut answers = String::new();
    for path in [
        "/v1/status",
        "/v1/health",
        "/metrics",
        "/v1/openapi.json",
        "/v1/events?limit=4096",
        "/v1/trunks",
        "/v1/queue/history",
        "/console/",
        "/console/console.js",
        "/v1/messages/999",
        "/v1/messages/abc",
        "/v1/nowhere",
        "/v1/events?since_ms=yesterday",
    ] {
        answers.push_str(&site.text(path).await.1);
    }
    let errors = [
        // Wrong and missing token.
        http.get(format!("{}/v1/status", site.api))
            .bearer_auth("tok-guess")
            .send()
            .await
            .unwrap(),
        http.post(format!("{}/v1/messages", site.api))
            .body("{}")
            .send()
            .await
            .unwrap(),
        // Invalid messages and an unknown route.
        http.post(format!("{}/v1/messages", site.api))
            .bearer_auth(API_TOKEN)
            .body(r#"{"to": "", "text": 5}"#)
            .send()
            .await
            .unwrap(),
        http.post(format!("{}/v1/messages", site.api))
            .bearer_auth(API_TOKEN)
            .json(&serde_json::json!({"to": "4917012345678", "text": "x", "route": "nope"}))
            .send()
            .await
            .unwrap(),
        // A callback with a bad signature, and one for no channel.
        http.post(format!("{}/v1/callbacks/agg/receipt", site.api))
            .header("X-Hub-Signature-256", "sha256=00")
            .body("message_id=1&status=DELIVRD")
            .send()
            .await
            .unwrap(),
        http.post(format!("{}/v1/callbacks/none/mo", site.api))
            .body("x=1")
            .send()
            .await
            .unwrap(),
    ];
    for response in errors {
        assert!(response.status().is_client_error(), "{response:?}");
        answers.push_str(&response.text().await.unwrap());
    }
    // Work that reaches the channels with secrets: an SMS and a chat message
    // (its webhook and e-mail both fail, with errors logged).
    for body in [
        serde_json::json!({"to": "4917012345678", "text": "hello"}),
        serde_json::json!({"to": "4917012345678", "text": "hi", "route": "chat"}),
    ] {
        let response = http
            .post(format!("{}/v1/messages", site.api))
            .bearer_auth(API_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
        answers.push_str(&response.text().await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The chat webhook's failed send is in the channel's status (its cause)
    // and, with the next ones, on the event stream: without its URL.
    let status = site.text("/v1/status").await.1;
    assert!(
        status.contains("cannot reach it"),
        "the chat send failed: {status}"
    );
    answers.push_str(&status);
    answers.push_str(&site.text("/v1/events?limit=4096").await.1);
    let output = site.stop().await;
    assert!(
        output.contains("DEBUG"),
        "the log ran at debug level: {output}"
    );
    for secret in SECRETS {
        assert!(
            !output.contains(secret),
            "{secret} is in the process's output"
        );
        assert!(!answers.contains(secret), "{secret} is in an HTTP answer");
    }
}
