//! Two `hotsite run` sites on loopback, the lab's link relay between them,
//! the lab's phones and a media-gateway caller: link cut and restore, and a
//! drain that ends the process (SPEC S1, S3, S4, S6, S7, S8).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hotsite_lab::{Link, LinkConfig, SipCaller, SipCallerConfig, SipPhone, SipPhoneConfig};
use serde_json::{json, Value};
use tokio::process::Command;

use crate::daemon::{self, Daemon};
use crate::desktop::free_udp;
use crate::gateway::{now, temp_dir};

const TOKEN: &str = "site-test-token";
const PASSWORD: &str = "phone-secret-1";

struct Site {
    daemon: Daemon,
    sip: SocketAddr,
    api: String,
}

impl Site {
    async fn start(
        dir: &Path,
        name: &str,
        sip: SocketAddr,
        peer: Option<SocketAddr>,
        extra: &str,
    ) -> Site {
        let peer = peer
            .map(|p| format!("dr_peer_trunk = \"{p}\"\n"))
            .unwrap_or_default();
        let config = format!(
            r#"[site]
name = "{name}"
listen = "{sip}"
{peer}dr_forward = "oos"
oos_check = "200ms"
oos_force = "1s"
peer_rise = 2
{extra}
[[site.dns]]
dn = "1001"
password = "{PASSWORD}"

[[site.dns]]
dn = "1002"
password = "{PASSWORD}"

[[site.agents]]
id = "alice"

[[site.agents]]
id = "bob"

[api]
listen = "127.0.0.1:0"
tokens = ["{TOKEN}"]
"#
        );
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_hotsite"));
        command
            .arg("run")
            .arg("--config")
            .arg(&path)
            .env("HOTSITE_LOG", "info");
        let daemon = daemon::spawn(command).await;
        let api = format!("http://{}", daemon.addr);
        Site { daemon, sip, api }
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}{path}", self.api))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.api))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn site(&self) -> Value {
        self.get("/v1/site").await
    }

    /// Waits (bounded) until `/v1/site` satisfies `done`; how long it took.
    async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Duration {
        let start = now();
        loop {
            let site = self.site().await;
            if done(&site) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}: {site}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn mode(site: &Value) -> &str {
    site["mode"].as_str().unwrap_or("?")
}

fn dn_in_service(site: &Value, dn: &str) -> bool {
    site["dns"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|d| d["dn"] == dn && d["in_service"] == true)
}

async fn phone(dn: &str, registrar: SocketAddr) -> SipPhone {
    let mut config = SipPhoneConfig::new(dn, PASSWORD, "hotsite", vec![registrar]);
    config.expires = Duration::from_secs(60);
    SipPhone::start(config).await.unwrap()
}

/// `calls` calls from a media gateway to `dn` at `site`; their final statuses.
async fn call(site: SocketAddr, dn: &str, calls: u64) -> Vec<Option<u16>> {
    let mut config = SipCallerConfig::new(site, calls, 20.0);
    config.to_user = Some(dn.to_owned());
    config.hold = Duration::from_millis(50);
    let caller = SipCaller::start(config).await.unwrap();
    let records = tokio::time::timeout(Duration::from_secs(30), caller.wait())
        .await
        .expect("the calls ended within 30 s");
    records.iter().map(|r| r.status).collect()
}

/// SPEC S1, S6, S4, S3: peered, a call at a for a DN whose phone is at b is
/// forwarded over the link and answered by the phone at b. The link is cut:
/// both sites go single-site within oos_force + oos_check (+ slack), every
/// call is served locally or refused, none is forwarded over the cut link.
/// An agent logged in at both meanwhile is kept by the newer login when the
/// link is restored (resync), and a login while peered is claimed at the
/// peer: no agent at two sites once peered (S1 "one site at a time").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_cut_makes_both_sites_single_and_local() {
    let dir = temp_dir("site-link");
    let (a_sip, b_sip) = (free_udp(), free_udp());
    let link = Link::start(LinkConfig::new("ab", a_sip, b_sip))
        .await
        .unwrap();
    let a = Site::start(&dir, "a", a_sip, Some(link.a_addr()), "").await;
    let b = Site::start(&dir, "b", b_sip, Some(link.b_addr()), "").await;
    let phone_a = phone("1001", a.sip).await;
    let phone_b = phone("1002", b.sip).await;
    for site in [&a, &b] {
        site.wait_for("peered", Duration::from_secs(10), |s| mode(s) == "peered")
            .await;
    }
    a.wait_for("1001 registered at a", Duration::from_secs(10), |s| {
        dn_in_service(s, "1001")
    })
    .await;
    b.wait_for("1002 registered at b", Duration::from_secs(10), |s| {
        dn_in_service(s, "1002")
    })
    .await;
    let (code, agent) = a
        .post("/v1/agents/alice/login", json!({"dn": "1001"}))
        .await;
    assert_eq!((code, agent["state"].clone()), (200, json!("not_ready")));
    // Peered: alice's phone is not at b, so b refuses her (SPEC S3 by mode).
    let (code, _) = b
        .post("/v1/agents/alice/login", json!({"dn": "1001"}))
        .await;
    assert_eq!(code, 409);

    // DN 1002's phone is at b only: a forwards (dr-forward oos).
    assert_eq!(call(a.sip, "1002", 2).await, [Some(200), Some(200)]);
    assert_eq!(a.site().await["calls"]["forwarded"], 2);
    let invites = phone_b.invite_log();
    assert_eq!(invites.len(), 2);
    assert!(
        invites.iter().all(|i| i.from == b.sip),
        "delivered by b: {invites:?}"
    );

    // Cut.
    let cut_at = now();
    link.cut();
    let limit = Duration::from_millis(1000 + 200 + 1500);
    for site in [&a, &b] {
        site.wait_for("single-site after the cut", limit, |s| {
            mode(s) == "single_site"
        })
        .await;
    }
    let detected = cut_at.elapsed();
    let forwarded_before = a.site().await["calls"]["forwarded"].clone();
    let relayed_before = link.stats().a_to_b.datagrams_relayed;
    // Local calls complete at each site; a call at a for b's phone is not
    // forwarded: a has no phone for it (480).
    assert_eq!(call(a.sip, "1001", 2).await, [Some(200), Some(200)]);
    assert_eq!(call(b.sip, "1002", 2).await, [Some(200), Some(200)]);
    assert_eq!(call(a.sip, "1002", 1).await, [Some(480)]);
    assert_eq!(a.site().await["calls"]["forwarded"], forwarded_before);
    assert_eq!(
        link.stats().a_to_b.datagrams_relayed,
        relayed_before,
        "nothing crossed the cut link"
    );
    assert_eq!(
        phone_b.invite_log().len(),
        4,
        "b's phone: the 2 forwarded before the cut and b's own 2, not a's"
    );
    // Single-site mode: agents log in whatever their endpoint's state (S3),
    // and alice stays where she is.
    let (code, _) = b.post("/v1/agents/bob/login", json!({"dn": "1001"})).await;
    assert_eq!(code, 200, "single-site: login without a registered phone");
    let a_agents = a.get("/v1/agents").await;
    let b_agents = b.get("/v1/agents").await;
    let logged_in = |agents: &Value, id: &str| {
        agents["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == id && x["state"] != "logged_out")
    };
    assert!(logged_in(&a_agents, "alice") && !logged_in(&b_agents, "alice"));
    assert!(logged_in(&b_agents, "bob") && !logged_in(&a_agents, "bob"));
    // Her desktop lost a and logged her in at b too: allowed while the
    // sites cannot see each other (S3).
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (code, _) = b
        .post("/v1/agents/alice/login", json!({"dn": "1002"}))
        .await;
    assert_eq!(code, 200);

    // Restore: peered again, after peer_rise answered probes.
    link.restore().unwrap();
    for site in [&a, &b] {
        site.wait_for("peered after the restore", Duration::from_secs(5), |s| {
            mode(s) == "peered"
        })
        .await;
    }
    // S1, S4: one site at a time. The resync keeps alice at b, where her
    // login is the newer, and logs her out at a with peer_login.
    let agent_at = |site: &Value, id: &str| {
        site["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .map(|x| x["state"] != "logged_out")
            .unwrap()
    };
    a.wait_for(
        "alice out at a after the resync",
        Duration::from_secs(5),
        |s| !agent_at(s, "alice"),
    )
    .await;
    assert!(agent_at(&b.site().await, "alice"), "alice kept at b");
    assert!(agent_at(&b.site().await, "bob"), "bob only ever at b");
    // Peered: bob logs in at a, where 1001's phone is: b lets him go.
    let (code, _) = a.post("/v1/agents/bob/login", json!({"dn": "1001"})).await;
    assert_eq!(code, 200);
    b.wait_for(
        "bob out at b after a's claim",
        Duration::from_secs(5),
        |s| !agent_at(s, "bob"),
    )
    .await;
    for (site, id) in [(&a, "alice"), (&b, "bob")] {
        let logouts = site.get("/v1/events?system=site&kind=agent_logout").await;
        assert!(
            logouts["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["text"]
                    .as_str()
                    .is_some_and(|t| t.contains(id) && t.contains("peer_login"))),
            "{id}: {logouts}"
        );
    }
    assert!(a.site().await["agent_claims"]["yielded"] == 1);
    assert!(b.site().await["agent_claims"]["yielded"] == 1);
    let events = a.get("/v1/events?system=site&kind=site_mode").await;
    let modes: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(modes.len() >= 3, "peered, single_site, peered: {modes:?}");
    eprintln!("link cut detected by both sites within {detected:?}");
    phone_a.shutdown().await;
    phone_b.shutdown().await;
}

/// SPEC S7: `hotsite site drain`: a new call gets 603, the idle agent is
/// logged out at once with graceful_shutdown_logout, the busy one when its
/// call ends, and the process exits by itself when no call is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_rejects_logs_out_and_exits_when_the_last_call_ends() {
    let dir = temp_dir("site-drain");
    let a = Site::start(&dir, "a", free_udp(), None, "").await;
    let _p1 = phone("1001", a.sip).await;
    let _p2 = phone("1002", a.sip).await;
    a.wait_for("phones registered", Duration::from_secs(10), |s| {
        dn_in_service(s, "1001") && dn_in_service(s, "1002")
    })
    .await;
    for (agent, dn) in [("alice", "1001"), ("bob", "1002")] {
        assert_eq!(
            a.post(&format!("/v1/agents/{agent}/login"), json!({"dn": dn}))
                .await
                .0,
            200
        );
        assert_eq!(
            a.post(&format!("/v1/agents/{agent}/ready"), json!({}))
                .await
                .0,
            200
        );
    }
    // A long call to alice.
    let mut config = SipCallerConfig::new(a.sip, 1, 1.0);
    config.to_user = Some("1001".to_owned());
    config.hold = Duration::from_secs(3);
    let long_call = SipCaller::start(config).await.unwrap();
    a.wait_for("alice busy", Duration::from_secs(5), |s| {
        s["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == "alice" && x["state"] == "busy")
    })
    .await;
    let drain = std::process::Command::new(env!("CARGO_BIN_EXE_hotsite"))
        .args(["site", "drain", "--config"])
        .arg(dir.join("a.toml"))
        .args(["--api", &a.api])
        .output()
        .unwrap();
    assert!(
        drain.status.success(),
        "{}",
        String::from_utf8_lossy(&drain.stderr)
    );
    assert!(String::from_utf8_lossy(&drain.stdout).contains("draining"));
    let agents = a.get("/v1/agents").await;
    let state = |id: &str| {
        agents["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state("bob"), json!("logged_out"), "idle: out at once");
    assert_eq!(
        state("alice"),
        json!("busy"),
        "busy: out when the call ends"
    );
    assert_eq!(call(a.sip, "1002", 1).await, [Some(603)]);
    let events = a.get("/v1/events?system=site&kind=agent_logout").await;
    let reasons: Vec<String> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["target"].as_str().unwrap_or("?"),
                e["cause"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert_eq!(reasons, ["a/agent/bob graceful_shutdown_logout"]);
    let records = tokio::time::timeout(Duration::from_secs(10), long_call.wait())
        .await
        .unwrap();
    assert_eq!(records[0].status, Some(200));
    assert!(
        records[0].bye_completed(),
        "the BYE was answered through the draining site"
    );
    let mut child = a.daemon.child;
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the drained process exits by itself")
        .unwrap();
    assert!(exit.success(), "{exit}");
    let log = a.daemon.stderr.lock().unwrap().clone();
    assert!(log.contains("drained"), "{log}");
    assert!(
        log.contains("agent alice on DN 1001 logged_out (graceful_shutdown_logout)"),
        "alice logged out when her call ended: {log}"
    );
}
