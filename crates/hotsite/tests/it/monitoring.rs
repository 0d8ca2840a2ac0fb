//! Issue 16, the monitoring kit in `deploy/`: the Prometheus alert rules
//! pass `promtool check rules` and their unit tests (`promtool test rules`);
//! each alert has a severity, a summary, a description and a runbook line in
//! the README; and every metric the rules and the Grafana dashboard name is on
//! the `/metrics` of a real `hotsite run` with every system configured
//! (messaging with SMPP binds to the lab, an HTTP aggregator, a digital
//! channel and e-mail; voice with trunk groups and anchored, recorded media;
//! the site with a peer; the desktop service), read with the Prometheus
//! project's OpenMetrics parser. Names are taken from the PromQL by a lexer
//! ([`promql::metric_names`]), not by a pattern over the text.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::Duration;

use hotsite_lab::{AccountConfig, Lab, LabConfig, SipTrunk, SipTrunkConfig};
use hotsite_recording::manifest::keys;
use serde_json::{json, Value};
use tokio::process::Command;

use crate::daemon;
use crate::desktop::{free_udp, hash};
use crate::gateway::{now, temp_dir, RemovedOnDrop};
use crate::host::openmetrics_families;

const RULES: &str = "deploy/prometheus/hotsite-alerts.yml";
const RULE_TESTS: &str = "deploy/prometheus/hotsite-alerts.test.yml";
const DASHBOARD: &str = "deploy/grafana/hotsite-dashboard.json";

/// Names the rules and the dashboard may select that are not hotsite's:
/// Prometheus's own per-target series.
const NOT_HOTSITE: &[&str] = &["up"];

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A YAML file as JSON, read by PyYAML (the interop requirements install it).
fn yaml(path: &Path) -> Value {
    let output = StdCommand::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(path)
        .output()
        .expect("python3 with PyYAML (tests/interop/requirements.txt)");
    assert!(
        output.status.success(),
        "{} is not YAML: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every alerting rule of the rules file.
fn alert_rules() -> Vec<Value> {
    let rules = yaml(&repo().join(RULES));
    let rules: Vec<Value> = rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(!rules.is_empty(), "no rule in {RULES}");
    rules
}

/// Every PromQL expression of the rules and the dashboard, with where it is.
fn expressions() -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = alert_rules()
        .iter()
        .map(|rule| {
            (
                format!("{RULES}: {}", rule["alert"].as_str().unwrap_or("?")),
                rule["expr"]
                    .as_str()
                    .expect("every rule has an expr")
                    .to_owned(),
            )
        })
        .collect();
    let text = std::fs::read_to_string(repo().join(DASHBOARD)).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if variable["type"] != "query" {
            continue;
        }
        let name = variable["name"].as_str().unwrap_or("?");
        let query = match &variable["query"] {
            Value::String(query) => query.clone(),
            query => query["query"].as_str().unwrap_or_default().to_owned(),
        };
        found.push((format!("{DASHBOARD}: variable {name}"), query));
    }
    let mut panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect();
    // Rows may hold their panels (collapsed rows do).
    let mut i = 0;
    while i < panels.len() {
        if let Some(inner) = panels[i]["panels"].as_array() {
            panels.extend(inner);
        }
        i += 1;
    }
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(
                !expr.trim().is_empty(),
                "panel {title:?}: a target without expr"
            );
            found.push((format!("{DASHBOARD}: panel {title:?}"), expr.to_owned()));
        }
    }
    found
}

/// Every metric name the rules and the dashboard select, with where.
fn referenced_names() -> BTreeMap<String, Vec<String>> {
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (place, expr) in expressions() {
        let found = promql::metric_names(&expr).unwrap_or_else(|e| panic!("{place}: {e}: {expr}"));
        assert!(!found.is_empty(), "{place}: selects no metric: {expr}");
        for name in found {
            names.entry(name).or_default().push(place.clone());
        }
    }
    names
}

/// The names a scrape stores, from the families of [`openmetrics_families`]:
/// each sample's name, and for a family without samples the names its type
/// gives them (a counter `x` is stored as `x_total`; OpenMetrics writes
/// counter families without the suffix).
fn exposed_names(families: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (family, body) in families.as_object().expect("families") {
        let samples = body["samples"].as_array().cloned().unwrap_or_default();
        for sample in &samples {
            names.insert(sample[0].as_str().unwrap().to_owned());
        }
        if samples.is_empty() {
            let suffixes: &[&str] = match body["type"].as_str().unwrap_or_default() {
                "counter" => &["_total"],
                "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|suffix| format!("{family}{suffix}")));
        }
    }
    names
}

/// The referenced names that a scrape of `/metrics` would not find: a
/// `hotsite_` name not exposed (misspelt, or a counter named without
/// `_total`), or another name that is not Prometheus's own ([`NOT_HOTSITE`]).
fn missing_names(
    referenced: &BTreeMap<String, Vec<String>>,
    exposed: &BTreeSet<String>,
) -> Vec<String> {
    referenced
        .iter()
        .filter(|(name, _)| {
            if name.starts_with("hotsite_") {
                !exposed.contains(*name)
            } else {
                !NOT_HOTSITE.contains(&name.as_str())
            }
        })
        .map(|(name, places)| format!("{name} (in {})", places.join("; ")))
        .collect()
}

/// A README heading's anchor as GitHub makes it.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// `promtool`, from Debian's `prometheus` package; `None` (with a note) when
/// it is not installed, a failure under CI.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("promtool"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing and CI is set: install Debian's prometheus package \
             (apt-get install prometheus; scripts/test does)"
        );
        eprintln!(
            "NOTE: promtool is missing: the alert rules are NOT checked by promtool \
             (apt-get install prometheus; scripts/test does)"
        );
    }
    found
}

fn run_promtool(promtool: &Path, args: &[&str]) -> String {
    let output = StdCommand::new(promtool)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool {}: {text}",
        args.join(" ")
    );
    println!("promtool {}:\n{text}", args.join(" "));
    text
}

/// Issue 16: `promtool check rules` accepts the rules file (every rule), and
/// `promtool test rules` passes the rules' unit tests, in which every alert
/// fires at least once (and series that must not fire it are beside).
#[test]
fn promtool_checks_the_rules_and_runs_their_unit_tests() {
    let Some(promtool) = promtool() else {
        return;
    };
    let rules = alert_rules();
    let checked = run_promtool(&promtool, &["check", "rules", RULES]);
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", rules.len())),
        "{checked}"
    );
    let tested = run_promtool(&promtool, &["test", "rules", RULE_TESTS]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// Issue 16: each alert has `for`, a severity, a summary, a description and a
/// `runbook_url` naming a heading of the README's runbook; and the unit tests
/// make each one fire at least once.
#[test]
fn every_alert_has_a_severity_a_runbook_line_and_a_firing_test() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let anchors: BTreeSet<String> = readme
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .map(|heading| anchor(heading.trim_start_matches('#')))
        .collect();
    let tests = yaml(&repo().join(RULE_TESTS));
    let fired: BTreeSet<&str> = tests["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .flat_map(|test| test["alert_rule_test"].as_array().into_iter().flatten())
        .filter(|case| case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()))
        .filter_map(|case| case["alertname"].as_str())
        .collect();
    for rule in alert_rules() {
        let name = rule["alert"].as_str().expect("only alerting rules");
        assert!(rule["for"].is_string(), "{name}: no `for`");
        assert!(
            matches!(
                rule["labels"]["severity"].as_str(),
                Some("critical" | "warning")
            ),
            "{name}: severity must be critical or warning"
        );
        for key in ["summary", "description"] {
            assert!(
                rule["annotations"][key]
                    .as_str()
                    .is_some_and(|text| !text.trim().is_empty()),
                "{name}: no {key}"
            );
        }
        let runbook = rule["annotations"]["runbook_url"].as_str().unwrap_or("");
        let target = runbook
            .strip_prefix("README.md#")
            .unwrap_or_else(|| panic!("{name}: runbook_url {runbook:?} is not README.md#…"));
        assert_eq!(target, anchor(name), "{name}: runbook_url");
        assert!(
            anchors.contains(target),
            "{name}: README.md has no heading {name} (anchor #{target})"
        );
        assert!(fired.contains(name), "{name}: no promtool case fires it");
    }
}

/// The checker catches what it is for: a misspelt name, a counter named
/// without `_total`, a name that is neither hotsite's nor Prometheus's;
/// and it accepts a counter family declared without samples by its
/// `_total` name.
#[test]
fn the_name_check_catches_a_misspelt_metric() {
    let families = json!({
        "hotsite_queue_depth": {"type": "gauge", "samples": [["hotsite_queue_depth", {}, 3.0]]},
        "hotsite_messages_accepted": {"type": "counter", "samples": [["hotsite_messages_accepted_total", {}, 1.0]]},
        "hotsite_events": {"type": "counter", "samples": []},
    });
    let exposed = exposed_names(&families);
    let mut referenced = BTreeMap::new();
    for expr in [
        "hotsite_queue_dept > 100",
        "rate(hotsite_messages_accepted[5m])",
        "sum by (system) (rate(hotsite_events_total[5m])) and hotsite_queue_depth",
        "up == 0 or upp == 0",
    ] {
        for name in promql::metric_names(expr).unwrap() {
            referenced
                .entry(name)
                .or_insert_with(Vec::new)
                .push(expr.to_owned());
        }
    }
    let missing = missing_names(&referenced, &exposed);
    let missing: Vec<&str> = missing
        .iter()
        .map(|m| m.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        missing,
        ["hotsite_messages_accepted", "hotsite_queue_dept", "upp"]
    );
}

/// `hotsite run` with every system, and one message on each kind of route.
struct Everything {
    daemon: daemon::Daemon,
    api: String,
    lab: hotsite_lab::LabHandle,
    _trunk: SipTrunk,
    peer: SocketAddr,
    _dir: RemovedOnDrop,
}

const TOKEN: &str = "tok-monitoring-5b8e2c";

async fn start_everything() -> Everything {
    let dir = temp_dir("monitoring");
    let mut lab_config = LabConfig::two_sites_two_smscs();
    lab_config.accounts = vec![AccountConfig {
        system_id: "hotsite".into(),
        password: "pw-mon1".into(),
    }];
    let lab = Lab::start(lab_config).await.unwrap();
    let trunk = SipTrunk::start(SipTrunkConfig::new(
        "t1",
        SocketAddr::from(([127, 0, 0, 1], 0)),
    ))
    .await
    .unwrap();
    let smscs: String = lab
        .smsc_addrs()
        .iter()
        .map(|(target, addr)| {
            format!(
                "[[smpp.smsc]]\nsite = \"{}\"\nname = \"{}\"\naddress = \"{addr}\"\n\n",
                target.site, target.name
            )
        })
        .collect();
    let key = dir.join("key.pem");
    keys::write_signing_key(&key, &keys::generate_signing_key()).unwrap();
    // Nothing answers at the peer's address: the link is out of service.
    let peer = free_udp();
    let config = format!(
        r#"
[site]
name = "a"
listen = "{sip}"
dr_peer_trunk = "{peer}"
oos_check = "200ms"
oos_force = "1s"

[[site.dns]]
dn = "1001"
password = "phone-secret-1"

[[site.agents]]
id = "alice"

[api]
listen = "127.0.0.1:0"
tokens = ["{TOKEN}"]
header_timeout = "500ms"

[store]
path = "{db}"

[webhook]
url = "http://127.0.0.1:9/hotsite"
secret = "whsec-monitoring-0123456789"

[smpp]
system_id = "hotsite"
password = "pw-mon1"

{smscs}
[[channels]]
name = "agg"
kind = "http"
login = "hotsite"
password = "agg-pw"
callback_secret = "agg-callback-secret"
urls = [{{ site = "agg-a", url = "http://127.0.0.1:9/sms/send" }}]

[[channels]]
name = "chat"
kind = "webhook"
url = "http://127.0.0.1:9/chat"
secret = "chat-secret-0123456789"
retry_budget = 1
retry_initial = "10ms"
retry_max = "10ms"

[[channels]]
name = "mail"
kind = "email"
host = "127.0.0.1"
port = 9
security = "starttls"
username = "hotsite"
password = "mail-pw"
from = "hotsite@example.com"
default_to = "ops@example.com"

[[routes]]
name = "sms"
hops = ["smpp"]

[[routes]]
name = "agg"
hops = ["agg"]

[[routes]]
name = "chat"
hops = ["chat", "mail"]

[voice]
listen = "127.0.0.1:0"

[voice.media]
address = "127.0.0.1"
ports = "42400-42499"

[[voice.trunks]]
name = "t1"
carrier = "carrier-1"
address = "{trunk}"
priority = 10
media_region = "eu-west"
failover_region = "eu-central"
probe = {{ interval = "200ms", timeout = "200ms", fall = 2, rise = 2 }}

[[voice.trunks]]
name = "t2"
carrier = "carrier-2"
address = "127.0.0.1:9"
priority = 20
media_region = "eu-west"
failover_region = "eu-central"
probe = {{ interval = "200ms", timeout = "200ms", fall = 2, rise = 2 }}

[[voice.groups]]
name = "outbound"
trunks = ["t1", "t2"]

[[voice.groups]]
name = "recorded"
trunks = ["t2"]
media = "anchor"

[recording]
dir = "{rec}"
signing_key = "{key}"
cloud_dir = "{cloud}"

[desktop]

[[desktop.sites]]
name = "a"
url = "ws://127.0.0.1:1/v1/desktop"

[[desktop.sites]]
name = "b"
url = "ws://127.0.0.1:2/v1/desktop"

[[desktop.people]]
user = "alice"
password_hash = "{phc}"
agent = "alice"
dn = "1001"
preferred_site = "a"
secondary_site = "b"
"#,
        sip = free_udp(),
        db = dir.join("hotsite.db").display(),
        trunk = trunk.local_addr(),
        rec = dir.join("rec").display(),
        key = key.display(),
        cloud = dir.join("cloud").display(),
        phc = hash("alice's desktop password"),
    );
    std::fs::create_dir_all(dir.join("cloud")).unwrap();
    let path = dir.join("hotsite.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hotsite"));
    command.arg("run").arg("--config").arg(&path);
    let daemon = daemon::spawn(command).await;
    let api = format!("http://{}", daemon.addr);
    Everything {
        daemon,
        api,
        lab,
        _trunk: trunk,
        peer,
        _dir: RemovedOnDrop(dir),
    }
}

impl Everything {
    async fn get(&self, path: &str) -> String {
        reqwest::Client::new()
            .get(format!("{}{path}", self.api))
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn send(&self, body: Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/messages", self.api))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202, "{body}");
    }

    async fn stop(mut self) {
        if let Some(pid) = self.daemon.child.id() {
            let _ = StdCommand::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), self.daemon.child.wait()).await;
        self.lab.shutdown().await;
    }
}

/// The one sample of `family` whose labels include `labels`.
fn sample(families: &Value, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    families[family]["samples"]
        .as_array()?
        .iter()
        .find(|s| labels.iter().all(|(k, v)| s[1][*k] == *v))
        .and_then(|s| s[2].as_f64())
}

/// Issue 16: every metric the alert rules and the dashboard select is on the
/// `/metrics` of a real `hotsite run` running every system, after one
/// message on each kind of route (an SMS the lab accepts, one for the HTTP
/// aggregator that is down, one whose chat hop falls back to e-mail); and
/// the gauges added for the alerts read what they should: the queue's age,
/// a trunk group's trunks in service, the peer link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_dashboard_name_is_on_a_real_metrics_page() {
    let referenced = referenced_names();
    assert!(
        referenced.len() >= 40,
        "the rules and dashboard select only {} names: {referenced:?}",
        referenced.len()
    );
    let site = start_everything().await;
    let start = now();
    site.send(json!({"to": "4917012345678", "text": "an sms"}))
        .await;
    site.send(json!({"to": "4917012345678", "text": "for the aggregator", "route": "agg"}))
        .await;
    site.send(json!({"to": "4917012345678", "text": "a chat", "route": "chat"}))
        .await;
    let queued_at = now();
    // A request head that never ends: closed at api.header_timeout, which
    // makes the first sample of hotsite_http_connections_closed_total.
    let mut half_sent = tokio::net::TcpStream::connect(site.daemon.addr.as_str())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut half_sent, b"GET /metrics HTTP/1.1\r\n")
        .await
        .unwrap();
    // Bounded wait for the state every family needs: binds and the trunk up,
    // the voice proxy's first counters, a send and a fallback counted, the
    // peer declared out of service, and the queue at least a second old.
    let deadline = now() + Duration::from_secs(30);
    let (text, families) = loop {
        let text = site.get("/metrics").await;
        let families = openmetrics_families(&text);
        let ready = sample(&families, "hotsite_binds_up", &[]) == Some(4.0)
            && sample(&families, "hotsite_trunk_in_service", &[("trunk", "t1")]) == Some(1.0)
            && sample(&families, "hotsite_trunk_in_service", &[("trunk", "t2")]) == Some(0.0)
            && families["hotsite_voice_calls_in_progress"].is_object()
            && families["hotsite_voice_media_calls"].is_object()
            && sample(
                &families,
                "hotsite_channel_sends",
                &[("channel", "smpp"), ("outcome", "accepted")],
            )
            .is_some()
            && sample(&families, "hotsite_route_fallbacks", &[("route", "chat")]).is_some()
            && sample(&families, "hotsite_queue_oldest_age_seconds", &[]).is_some_and(|a| a >= 1.0)
            && sample(&families, "hotsite_site_peer_link_up", &[]) == Some(0.0)
            && sample(
                &families,
                "hotsite_http_connections_closed",
                &[("reason", "header_timeout")],
            )
            .is_some();
        if ready {
            break (text, families);
        }
        assert!(
            now() < deadline,
            "/metrics not complete within 30 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let exposed = exposed_names(&families);
    let missing = missing_names(&referenced, &exposed);
    assert!(
        missing.is_empty(),
        "named by the rules or the dashboard but not on /metrics:\n{}\n\n/metrics:\n{text}",
        missing.join("\n")
    );
    // The alerts' own gauges, read against what the test did.
    let age = sample(&families, "hotsite_queue_oldest_age_seconds", &[]).unwrap();
    assert!(
        age <= start.elapsed().as_secs_f64() + 1.0 && age >= 1.0,
        "queue age {age} s; the first queued message is {:?} old",
        queued_at.elapsed()
    );
    assert!(sample(&families, "hotsite_queue_depth", &[]).unwrap() >= 1.0);
    let group = |name: &str| {
        (
            sample(
                &families,
                "hotsite_trunk_group_trunks_in_service",
                &[("group", name)],
            ),
            sample(&families, "hotsite_trunk_group_trunks", &[("group", name)]),
        )
    };
    assert_eq!(group("outbound"), (Some(1.0), Some(2.0)));
    assert_eq!(group("recorded"), (Some(0.0), Some(1.0)));
    let peer = site.peer.to_string();
    assert_eq!(
        sample(&families, "hotsite_site_peer_link_up", &[("peer", &peer)]),
        Some(0.0)
    );
    assert!(sample(&families, "hotsite_inbound_pending", &[]).is_some());
    drop(half_sent);
    site.stop().await;
}

/// The metric names of PromQL expressions (and of Grafana's templating
/// queries over them): a lexer that knows strings, comments, label matchers,
/// grouping label lists, functions, keywords, durations and Grafana's `$`
/// variables, so that only vector selectors are taken.
pub(crate) mod promql {
    use std::collections::BTreeSet;

    /// What a `(` opened.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Group {
        /// A function's or aggregation's arguments, or plain grouping.
        Args,
        /// `by (…)`, `without (…)`, `on (…)`, `ignoring (…)`,
        /// `group_left (…)`, `group_right (…)`: label names.
        Labels,
        /// Grafana's `label_values(metric, label)`: after the comma, a label.
        LabelValues { past_metric: bool },
    }

    /// Keywords that open a list of label names.
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];

    /// Keywords, aggregation operators (which may take `by (…)` before
    /// their arguments: `sum by (job) (x)`) and literals: never metric names.
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "atan2",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];

    /// The names of the series `expr` selects, or why it cannot be read
    /// (an unterminated string, unbalanced brackets).
    pub(crate) fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
        let chars: Vec<char> = expr.chars().collect();
        let mut names = BTreeSet::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut braces = 0usize;
        let mut next_group = Group::Args;
        let mut i = 0;
        let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
        let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
        while i < chars.len() {
            let c = chars[i];
            match c {
                '#' => {
                    while i < chars.len() && chars[i] != '\n' {
                        i += 1;
                    }
                }
                '"' | '\'' | '`' => {
                    let quote = c;
                    i += 1;
                    loop {
                        match chars.get(i) {
                            None => return Err(format!("unterminated string from {quote}")),
                            Some('\\') if quote != '`' => i += 2,
                            Some(&q) if q == quote => break,
                            Some(_) => i += 1,
                        }
                    }
                }
                '$' => {
                    // Grafana: `${name}`, `${name:format}`, `$name`, `$__interval`.
                    if chars.get(i + 1) == Some(&'{') {
                        while i < chars.len() && chars[i] != '}' {
                            i += 1;
                        }
                        if i == chars.len() {
                            return Err("unterminated ${…}".into());
                        }
                    } else {
                        while i + 1 < chars.len() && ident_char(chars[i + 1]) {
                            i += 1;
                        }
                    }
                }
                c if c.is_ascii_digit()
                    || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
                {
                    // Numbers and durations: 300, 0.5, 1e3, 5m, 1h30m.
                    while i + 1 < chars.len()
                        && (chars[i + 1].is_ascii_alphanumeric() || chars[i + 1] == '.')
                    {
                        i += 1;
                    }
                }
                c if ident_start(c) => {
                    let begin = i;
                    while i + 1 < chars.len() && ident_char(chars[i + 1]) {
                        i += 1;
                    }
                    let word: String = chars[begin..=i].iter().collect();
                    let mut j = i + 1;
                    while j < chars.len() && chars[j].is_whitespace() {
                        j += 1;
                    }
                    let opens = chars.get(j) == Some(&'(');
                    let top = groups.last().copied();
                    if braces > 0 {
                        // A label name in a matcher.
                    } else if LABEL_LISTS.contains(&word.as_str()) {
                        if opens {
                            next_group = Group::Labels;
                        }
                    } else if KEYWORDS.contains(&word.as_str()) {
                    } else if opens {
                        next_group = if word == "label_values" {
                            Group::LabelValues { past_metric: false }
                        } else {
                            Group::Args
                        };
                    } else if top == Some(Group::Labels)
                        || top == Some(Group::LabelValues { past_metric: true })
                    {
                        // A label name in a grouping list.
                    } else {
                        names.insert(word);
                    }
                }
                '(' => {
                    groups.push(next_group);
                    next_group = Group::Args;
                }
                ')' => {
                    groups.pop().ok_or("unbalanced )")?;
                }
                '{' => braces += 1,
                '}' => braces = braces.checked_sub(1).ok_or("unbalanced }")?,
                ',' => {
                    if let Some(Group::LabelValues { past_metric }) = groups.last_mut() {
                        *past_metric = true;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        if braces > 0 || !groups.is_empty() {
            return Err("unbalanced brackets".into());
        }
        Ok(names)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn names(expr: &str) -> Vec<String> {
            metric_names(expr).unwrap().into_iter().collect()
        }

        /// Only selectors: not functions, keywords, label names (in matchers
        /// or grouping lists), strings, comments, durations or Grafana
        /// variables.
        #[test]
        fn only_selectors_are_names() {
            let expr = r#"
              sum by (instance, site) (
                rate(hotsite_messages_accepted_total{instance=~"$instance", site="hotsite_in_a_string"}[$__rate_interval])
              ) / on (instance) group_left (channel) hotsite_binds_up  # hotsite_in_a_comment
              and ignoring (job) label_replace(hotsite_binds == 0, "channel", "smpp", "", "")
              or hotsite_queue_depth offset 5m > bool 3e2
              unless max without (hotsite_label_name) (hotsite_x:recorded{a='it\'s'} @ 1700000000)
            "#;
            assert_eq!(
                names(expr),
                [
                    "hotsite_binds",
                    "hotsite_binds_up",
                    "hotsite_messages_accepted_total",
                    "hotsite_queue_depth",
                    "hotsite_x:recorded"
                ]
            );
            assert_eq!(
                names(r#"label_values(hotsite_bind_up{instance=~"${instance:regex}"}, site)"#),
                ["hotsite_bind_up"]
            );
            assert_eq!(names("up{job=\"hotsite\"} == 0"), ["up"]);
        }

        #[test]
        fn malformed_expressions_are_refused() {
            for expr in [
                "sum(hotsite_x",
                "hotsite_x{a=\"b\"",
                "hotsite_x{a=\"b}",
                "hotsite_x)",
            ] {
                assert!(metric_names(expr).is_err(), "{expr}");
            }
        }
    }
}
