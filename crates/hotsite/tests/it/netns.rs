//! The inter-site link cut for real (SPEC S3, S4): two `hotsite run`
//! processes, sites `a` and `b`, each in its own network namespace, joined
//! only by a veth pair that carries their inter-site SIP trunk. Taking one
//! end of the veth down is a link failure both sites see the way they would
//! in production: the peer's OPTIONS probes go unanswered (on `a` the send
//! fails with "network unreachable", on `b` the datagrams vanish).
//!
//! Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for `ip netns`), iproute2 and
//! python3, as CI has them (`.ci/run` runs `scripts/test` as root, which
//! installs iproute2). Without them the test fails and says so, rather than
//! passing without having run.
//!
//! The test process stays in the root namespace and cannot reach a
//! namespace's loopback, where each API listens. Rather than a second veth
//! pair per namespace to the root namespace (addresses and routes in the
//! host's own namespace, where they could clash with the machine's network),
//! everything that talks to a site runs inside its namespace through `ip
//! netns exec`: `hotsite site status --json` (the operator's own client, and
//! fast enough to poll) for `GET /v1/site`, and python3 for `GET /v1/events`
//! and for the gateway's INVITEs. The veth addresses (10.77.0.1/30 and
//! 10.77.0.2/30) exist only inside the two namespaces, so they clash neither
//! with the host's network nor with a concurrent run's.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use crate::daemon::{self, Daemon};
use crate::gateway::{now, temp_dir, RemovedOnDrop, TOKEN};

/// `oos_check`: the sites probe each other this often.
const OOS_CHECK: Duration = Duration::from_millis(200);
/// `oos_force`: several probes long, so a single lost probe never counts.
const OOS_FORCE: Duration = Duration::from_millis(1500);
/// `peer_rise`.
const PEER_RISE: u32 = 2;
/// Scheduling slack on a loaded CI machine, on top of the configured timers.
const SLACK: Duration = Duration::from_secs(2);
/// How long a wait for both sites to be in a mode may poll. The modes' own
/// timing is checked on the events' timestamps, not on when a poll saw them.
const POLL_WITHIN: Duration = Duration::from_secs(10);
/// The DN the gateway calls: configured at both sites, registered at
/// neither, `dr_forward = "oos"`: forwarded whenever the site is peered.
const DN: &str = "1001";
const SIP_PORT: u16 = 5070;

const NOT_ROOT: &str = "this test puts two sites in network namespaces (ip netns, veth) and needs \
    root (CAP_NET_ADMIN and CAP_SYS_ADMIN), as CI runs it (.ci/run → scripts/test); run it as root \
    or leave it out with `cargo test -- --skip netns::`";

/// Two network namespaces joined by a veth pair, deleted on drop (which also
/// destroys the veth). Declared before the daemons running inside, so that
/// those are dropped, that is killed, first.
struct Namespaces {
    names: [String; 2],
    devices: [String; 2],
}

impl Namespaces {
    /// `hotsite-it-PID-a` and `…-b` with veth ends `hsPIDa` (10.77.0.1/30)
    /// and `hsPIDb` (10.77.0.2/30), both up, loopback up in both.
    fn create() -> Namespaces {
        if effective_uid() != Some(0) {
            panic!("not root: {NOT_ROOT}");
        }
        let pid = std::process::id();
        let namespaces = Namespaces {
            names: [format!("hotsite-it-{pid}-a"), format!("hotsite-it-{pid}-b")],
            // At most 15 bytes (IFNAMSIZ): "hs" + at most 7 digits + 1.
            devices: [format!("hs{pid}a"), format!("hs{pid}b")],
        };
        for name in &namespaces.names {
            // Left by an earlier run with this pid that was killed before
            // its drop ran; no live process can own this pid's names.
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
            ip(&["netns", "add", name]);
        }
        let [ns_a, ns_b] = &namespaces.names;
        let [dev_a, dev_b] = &namespaces.devices;
        ip(&[
            "link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b, "netns",
            ns_b,
        ]);
        for index in 0..2 {
            let (ns, dev) = (&namespaces.names[index], &namespaces.devices[index]);
            let address = format!("{}/30", sip_ip(index));
            ip(&["-n", ns, "addr", "add", &address, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        namespaces
    }

    /// Sets site `index`'s end of the veth down (`false`) or up (`true`).
    fn set_link(&self, index: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&[
            "-n",
            &self.names[index],
            "link",
            "set",
            &self.devices[index],
            state,
        ]);
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", name])
                .status();
        }
    }
}

/// Runs `ip ARGS` to completion; panics with what it said if it fails.
fn ip(args: &[&str]) {
    let output = std::process::Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run ip ({error}): install iproute2 (scripts/test installs it)")
        });
    assert!(
        output.status.success(),
        "ip {} failed ({}): {}\n{NOT_ROOT}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// The effective uid, from `/proc/self/status` (std has no geteuid).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Site `index`'s SIP address (on its veth end).
fn sip_ip(index: usize) -> String {
    format!("10.77.0.{}", index + 1)
}

fn site_name(index: usize) -> &'static str {
    ["a", "b"][index]
}

/// One site: its namespace, config file and the running `hotsite run`.
struct Site {
    index: usize,
    namespace: String,
    config: PathBuf,
    daemon: Daemon,
}

/// Starts site `index` in its namespace: SIP on its veth address, the peer
/// trunk at the other's, the API on the namespace's loopback.
async fn start_site(namespaces: &Namespaces, index: usize, dir: &std::path::Path) -> Site {
    let name = site_name(index);
    let config = format!(
        r#"
[site]
name = "{name}"
listen = "{ip}:{SIP_PORT}"
dr_peer_trunk = "{peer}:{SIP_PORT}"
dr_forward = "oos"
oos_check = "{check}ms"
oos_force = "{force}ms"
peer_rise = {PEER_RISE}

[[site.dns]]
dn = "{DN}"
password = "phone-secret-1"

[[site.agents]]
id = "alice"

[api]
listen = "127.0.0.1:0"
tokens = ["{TOKEN}"]

[store]
path = "{store}"
"#,
        ip = sip_ip(index),
        peer = sip_ip(1 - index),
        check = OOS_CHECK.as_millis(),
        force = OOS_FORCE.as_millis(),
        store = dir.join(format!("{name}.db")).display(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let namespace = namespaces.names[index].clone();
    let mut command = Command::new("ip");
    // `ip netns exec` execs the program: the child is hotsite itself.
    command
        .args(["netns", "exec", &namespace])
        .arg(env!("CARGO_BIN_EXE_hotsite"))
        .arg("run")
        .arg("--config")
        .arg(&path)
        .env("HOTSITE_LOG", "info")
        .env("NO_COLOR", "1");
    Site {
        index,
        namespace,
        config: path,
        daemon: daemon::spawn(command).await,
    }
}

impl Site {
    fn name(&self) -> &'static str {
        site_name(self.index)
    }

    /// Runs `program ARGS` in this site's namespace (at most 30 s) and
    /// returns its stdout; panics with its stderr and the site's log if it
    /// fails.
    async fn run_inside(&self, program: &str, args: &[&str]) -> String {
        let output = tokio::time::timeout(
            Duration::from_secs(30),
            Command::new("ip")
                .args(["netns", "exec", &self.namespace, program])
                .args(args)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{program} in site {}: no exit within 30 s", self.name()))
        .unwrap_or_else(|error| panic!("cannot run ip netns exec {program}: {error}"));
        assert!(
            output.status.success(),
            "{program} {args:?} in site {}'s namespace failed ({}): {}{}\nsite log:\n{}",
            self.name(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// `GET /v1/site`, through `hotsite site status --json`.
    async fn status(&self) -> Value {
        let api = format!("http://{}", self.daemon.addr);
        let config = self.config.display().to_string();
        let text = self
            .run_inside(
                env!("CARGO_BIN_EXE_hotsite"),
                &[
                    "site", "status", "--json", "--config", &config, "--api", &api, "--token",
                    TOKEN,
                ],
            )
            .await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// The site system's events (`GET /v1/events?system=site`), oldest first.
    async fn events(&self) -> Vec<Value> {
        let url = format!(
            "http://{}/v1/events?system=site&limit=1000",
            self.daemon.addr
        );
        let text = self
            .run_inside(python3(), &["-c", HTTP_GET, &url, TOKEN])
            .await;
        let answer: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        answer["events"].as_array().unwrap().clone()
    }

    /// A media gateway in this site's namespace calls [`DN`] at this site:
    /// the final answer's status code and Warning.
    async fn call(&self) -> (u16, String) {
        let ip = sip_ip(self.index);
        let text = self
            .run_inside(python3(), &["-c", SIP_CALL, &ip, &SIP_PORT.to_string(), DN])
            .await;
        let (code, warning) = text.trim().split_once('\t').unwrap_or((text.trim(), ""));
        let code = code
            .parse()
            .unwrap_or_else(|_| panic!("gateway said {text:?}"));
        (code, warning.to_owned())
    }

    fn log(&self) -> String {
        let stderr = self.daemon.stderr.lock().unwrap().clone();
        let start = stderr.len().saturating_sub(6000);
        let start = (start..stderr.len())
            .find(|&i| stderr.is_char_boundary(i))
            .unwrap_or(stderr.len());
        stderr[start..].to_owned()
    }
}

/// `python3`, checked once for a clear message.
fn python3() -> &'static str {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    CHECKED.get_or_init(|| {
        std::process::Command::new("python3")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .expect("python3 (scripts/test needs it too): it talks to the sites inside their namespaces");
    });
    "python3"
}

/// `python3 -c HTTP_GET URL TOKEN`: prints the body of an authenticated GET.
const HTTP_GET: &str = r#"
import sys, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
with urllib.request.urlopen(request, timeout=10) as answer:
    sys.stdout.write(answer.read().decode())
"#;

/// `python3 -c SIP_CALL IP PORT DN`: a gateway's INVITE for DN to the site
/// at IP:PORT over UDP, retransmitted as RFC 3261 timer A says until a
/// response arrives; ACKs a failure; prints "CODE<TAB>WARNING" of the final
/// answer. Gives up after 10 s (exit 1).
const SIP_CALL: &str = r#"
import socket, sys, time, uuid
host, port, dn = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((host, 0))
local = "%s:%d" % sock.getsockname()
branch, tag, call_id = "z9hG4bK" + uuid.uuid4().hex, uuid.uuid4().hex[:8], uuid.uuid4().hex
def request(method, to):
    return (f"{method} sip:{dn}@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local};branch={branch}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:gateway@{local}>;tag={tag}\r\n"
            f"To: {to}\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: 1 {method}\r\n"
            f"Contact: <sip:gateway@{local}>\r\n"
            "Content-Length: 0\r\n\r\n").encode()
invite = request("INVITE", f"<sip:{dn}@{host}:{port}>")
deadline = time.monotonic() + 10
interval, next_send, provisional = 0.5, 0.0, False
while time.monotonic() < deadline:
    now = time.monotonic()
    if not provisional and now >= next_send:
        sock.sendto(invite, (host, port))
        next_send, interval = now + interval, min(interval * 2, 4)
    wake = deadline if provisional else min(deadline, next_send)
    sock.settimeout(max(0.01, wake - now))
    try:
        data = sock.recv(65535).decode("utf-8", "replace")
    except socket.timeout:
        continue
    lines = data.split("\r\n")
    parts = lines[0].split(" ", 2)
    if parts[0] != "SIP/2.0":
        continue
    code = int(parts[1])
    if code < 200:
        provisional = True
        continue
    headers = {}
    for line in lines[1:]:
        if not line:
            break
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    if code >= 300:
        sock.sendto(request("ACK", headers.get("to", "")), (host, port))
    print(f"{code}\t{headers.get('warning', '')}")
    sys.exit(0)
print("no final answer within 10 s")
sys.exit(1)
"#;

/// Polls both sites until each reports `mode` (at most [`POLL_WITHIN`]).
async fn wait_for_mode(sites: &[Site; 2], mode: &str, when: &str) {
    let start = now();
    loop {
        let statuses = [sites[0].status().await, sites[1].status().await];
        if statuses.iter().all(|status| status["mode"] == mode) {
            return;
        }
        if start.elapsed() > POLL_WITHIN {
            panic!(
                "{when}: not both {mode} within {POLL_WITHIN:?}:\n\
                 a: {}\nb: {}\nsite a log:\n{}\nsite b log:\n{}",
                statuses[0],
                statuses[1],
                sites[0].log(),
                sites[1].log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn wall_ms() -> i64 {
    #[allow(clippy::disallowed_methods)] // event times are wall-clock ms
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The mode a `site_mode` event's text names ("a/site: mode peered (…)").
fn event_mode(event: &Value) -> &str {
    let text = event["text"].as_str().unwrap_or_default();
    text.split_once(": mode ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .unwrap_or_default()
}

fn ms(duration: Duration) -> i64 {
    duration.as_millis() as i64
}

/// SPEC S4 then S3: two peered sites whose link is cut (the veth taken down
/// in site a's namespace) each detect the peer out of service by themselves,
/// `oos_force` after the last answered probe and not before, and run in
/// single-site mode: a call for a DN with `dr_forward = "oos"` and no phone,
/// forwarded to the peer while peered, is now answered locally at each site
/// and forwarded by neither. With the link back both peer again within
/// `peer_rise` probes, and forward again. Each site's `site_mode` events are
/// exactly peered → single_site → peered, with the peer's `health` down
/// event naming `oos_force` as the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_cut_between_namespaces_makes_both_sites_single_site_then_peer_again() {
    let namespaces = Namespaces::create();
    let dir = temp_dir("netns");
    let _dir = RemovedOnDrop(dir.clone());
    // Dropped before `namespaces` (declared after it): killed first.
    let sites = [
        start_site(&namespaces, 0, &dir).await,
        start_site(&namespaces, 1, &dir).await,
    ];

    wait_for_mode(&sites, "peered", "after start").await;
    for site in &sites {
        let (code, warning) = site.call().await;
        assert!(
            code == 480 && warning.contains("forwarded by the peer site"),
            "peered: site {}'s call is answered by the peer, where the DN has no phone \
             either; got {code} {warning:?}",
            site.name()
        );
        assert_eq!(
            site.status().await["calls"]["forwarded"],
            1,
            "peered: site {} forwards a call for a DN without a phone (SPEC S1, S6)",
            site.name()
        );
    }

    // The cut, in site a's namespace; b sees its end lose carrier.
    let cut_from_ms = wall_ms();
    namespaces.set_link(0, false);
    let cut_done_ms = wall_ms();
    wait_for_mode(&sites, "single_site", "after the cut").await;
    for site in &sites {
        let before = site.status().await["calls"].clone();
        let (code, warning) = site.call().await;
        let after = site.status().await["calls"].clone();
        assert!(
            code == 480 && warning.contains("no phone registered at this site"),
            "single-site: site {} answers the call itself (SPEC S3); got {code} {warning:?}",
            site.name()
        );
        assert_eq!(
            (&after["forwarded"], &after["offered"]),
            (&before["forwarded"], &json_add(&before["offered"], 1)),
            "single-site: site {} took the call and forwarded nothing (SPEC S3)",
            site.name()
        );
    }

    let up_from_ms = wall_ms();
    namespaces.set_link(0, true);
    wait_for_mode(&sites, "peered", "after the link is back").await;
    for site in &sites {
        let (code, warning) = site.call().await;
        assert!(
            code == 480 && warning.contains("forwarded by the peer site"),
            "peered again: site {}'s call goes to the peer; got {code} {warning:?}",
            site.name()
        );
        assert_eq!(
            site.status().await["calls"]["forwarded"],
            2,
            "peered again: site {} forwards again (SPEC S4: peering resumes)",
            site.name()
        );
    }

    for site in &sites {
        let events = site.events().await;
        let modes: Vec<&Value> = events
            .iter()
            .filter(|event| event["kind"] == "site_mode")
            .collect();
        let names: Vec<&str> = modes.iter().map(|event| event_mode(event)).collect();
        assert_eq!(
            names,
            ["peered", "single_site", "peered"],
            "site {}'s modes: {modes:#?}",
            site.name()
        );
        let single_ms = modes[1]["at_ms"].as_i64().unwrap();
        // Not before oos_force: the last probe answered before the cut is at
        // most about oos_check older than the cut. Half of oos_force leaves
        // room for probes delayed on a loaded machine.
        assert!(
            single_ms - cut_done_ms >= ms(OOS_FORCE) / 2,
            "site {} went single-site {} ms after the cut: before oos_force ({OOS_FORCE:?})",
            site.name(),
            single_ms - cut_done_ms
        );
        assert!(
            single_ms - cut_from_ms <= ms(OOS_FORCE + OOS_CHECK + SLACK),
            "site {} went single-site {} ms after the cut, more than oos_force + oos_check \
             + {SLACK:?}",
            site.name(),
            single_ms - cut_from_ms
        );
        let peered_again_ms = modes[2]["at_ms"].as_i64().unwrap();
        eprintln!(
            "site {}: single-site {} ms after the cut, peered {} ms after the link came back",
            site.name(),
            single_ms - cut_from_ms,
            peered_again_ms - up_from_ms
        );
        assert!(
            peered_again_ms - up_from_ms <= ms(OOS_CHECK * (PEER_RISE + 1) + SLACK),
            "site {} peered again {} ms after the link came back",
            site.name(),
            peered_again_ms - up_from_ms
        );
        let peer_down: Vec<&Value> = events
            .iter()
            .filter(|event| {
                event["kind"] == "health"
                    && event["state"] == "down"
                    && event["at_ms"].as_i64() >= Some(cut_from_ms)
            })
            .collect();
        assert!(
            peer_down.len() == 1
                && peer_down[0]["cause"]
                    .as_str()
                    .is_some_and(|cause| cause.contains("(oos_force)")),
            "site {}: the peer out of service once, for silence: {peer_down:#?}",
            site.name()
        );
    }
}

/// `value + add` for a JSON counter.
fn json_add(value: &Value, add: u64) -> Value {
    Value::from(value.as_u64().unwrap() + add)
}
