//! The HTTP control API.

use hotsite_lab::{Fault, HandsetMessage, LabStats};
use hotsite_smpp::pdu::BindKind;
use serde_json::{json, Value};

use crate::client::{sms, Client};
use crate::TestLab;

impl TestLab {
    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = self.http.get(self.url(path)).send().await.expect("GET");
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("JSON body")
    }
}

// SPEC M4, M8: the counters tests and the demo read.
#[tokio::test]
async fn stats_report_totals_and_every_instance() {
    let lab = TestLab::plain().await;
    let mut client = Client::bound(lab.addr("a", "a1"), BindKind::Transmitter).await;
    assert!(client
        .submit(sms("33600000001", "counted", Some(1)))
        .await
        .status
        .is_ok());
    assert!(client
        .submit(sms("33600000001", "counted", Some(1)))
        .await
        .status
        .is_ok());

    let raw: Value = lab.get("/v1/stats").await;
    for key in [
        "unique",
        "duplicates_dropped",
        "submits",
        "receipts_sent",
        "receipts_acked",
        "mo_sent",
        "mo_acked",
        // SPEC M16, M6, M8: the lab's issue-10 counters.
        "references_remembered",
        "deliveries_retried",
        "deliveries_abandoned",
    ] {
        assert!(raw["totals"][key].is_u64(), "totals.{key} in {raw}");
    }
    assert_eq!(raw["totals"]["unique"], 1);
    assert_eq!(raw["totals"]["duplicates_dropped"], 1);
    let a1 = &raw["smsc"][0];
    assert_eq!(
        (a1["site"].as_str(), a1["name"].as_str()),
        (Some("a"), Some("a1"))
    );
    assert_eq!(a1["addr"], lab.addr("a", "a1").to_string());
    assert_eq!(a1["fault"], Value::Null);
    assert_eq!(a1["bound_sessions"], 1);
    assert_eq!(a1["bind_attempts"], 1);
    assert_eq!(a1["submits"], 2);

    let typed: LabStats = lab.get("/v1/stats").await;
    assert_eq!(typed.smsc.len(), 2);
    lab.shutdown().await;
}

// SPEC M4, M7: faults over HTTP, read back in the stats in the same shape.
#[tokio::test]
async fn faults_are_set_over_http() {
    let lab = TestLab::plain().await;
    let addr = lab.addr("b", "b1");
    let (status, body) = lab
        .post("/v1/smsc/b/b1/fault", r#"{"fault":"slow","delay_ms":200}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    let stats: Value = lab.get("/v1/stats").await;
    assert_eq!(
        stats["smsc"][1]["fault"],
        json!({"fault": "slow", "delay_ms": 200})
    );

    let (status, _) = lab.post("/v1/smsc/b/b1/fault", r#"{"fault":"die"}"#).await;
    assert_eq!(status, 200);
    assert!(Client::connect(addr).await.is_err(), "dead");
    let (status, _) = lab
        .post("/v1/smsc/b/b1/fault", r#"{"fault":"recover"}"#)
        .await;
    assert_eq!(status, 200);
    Client::bound(addr, BindKind::Transceiver).await;
    assert_eq!(lab.lab.stats().smsc[1].fault, None);

    for body in [
        r#"{"fault":"blackhole"}"#,
        r#"{"fault":"throttle","probability":0.5}"#,
        r#"{"fault":"reject_binds"}"#,
    ] {
        let (status, answer) = lab.post("/v1/smsc/a/a1/fault", body).await;
        assert_eq!(status, 200, "{body}: {answer}");
    }
    assert_eq!(lab.lab.stats().smsc[0].fault, Some(Fault::RejectBinds));
    lab.shutdown().await;
}

// An unknown instance is a 404 naming it; a bad body is a 400.
#[tokio::test]
async fn bad_requests_get_json_errors() {
    let lab = TestLab::plain().await;
    let (status, body) = lab.post("/v1/smsc/a/zz/fault", r#"{"fault":"die"}"#).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "unknown smsc a/zz");
    let (status, body) = lab.post("/v1/smsc/c/a1/fault", r#"{"fault":"die"}"#).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown smsc c/a1"))
    );

    for bad in [
        "not json",
        r#"{"fault":"explode"}"#,
        r#"{"fault":"slow"}"#,
        r#"{"fault":"die","extra":1}"#,
        r#"{"fault":"die","delay_ms":5}"#,
    ] {
        let (status, body) = lab.post("/v1/smsc/a/a1/fault", bad).await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    let (status, body) = lab
        .post(
            "/v1/smsc/a/a1/fault",
            r#"{"fault":"throttle","probability":2.0}"#,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "invalid fault: probability: must be between 0 and 1, got 2"
    );

    let (status, body) = lab
        .post("/v1/mo", r#"{"from":"1","to":"2","text":"x","site":"zz"}"#)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown site \"zz\""))
    );
    let (status, _) = lab.post("/v1/mo", r#"{"from":"1"}"#).await;
    assert_eq!(status, 400);
    let (status, _) = lab
        .post(
            "/v1/mo",
            r#"{"from":"123456789012345678901","to":"2","text":"x"}"#,
        )
        .await;
    assert_eq!(status, 400);
    let response = lab
        .http
        .get(lab.url("/v1/handsets?limit=many"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 400);
    // Nothing was changed by the refused requests.
    assert!(lab.lab.stats().smsc.iter().all(|smsc| smsc.fault.is_none()));
    lab.shutdown().await;
}

// SPEC M8: the handset log shows what reached handsets, once each.
#[tokio::test]
async fn handset_log_lists_unique_messages_with_a_limit() {
    let lab = TestLab::plain().await;
    let mut client = Client::bound(lab.addr("a", "a1"), BindKind::Transmitter).await;
    for (reference, text) in [(1, "first"), (2, "second"), (2, "second"), (3, "third")] {
        assert!(client
            .submit(sms("33600000001", text, Some(reference)))
            .await
            .status
            .is_ok());
    }
    let all: Vec<HandsetMessage> = lab.get("/v1/handsets").await;
    let texts: Vec<_> = all.iter().map(|message| message.text.as_str()).collect();
    assert_eq!(texts, ["first", "second", "third"]);
    assert_eq!(all, lab.lab.handset_log());
    let last: Vec<HandsetMessage> = lab.get("/v1/handsets?limit=2").await;
    let texts: Vec<_> = last.iter().map(|message| message.text.as_str()).collect();
    assert_eq!(texts, ["second", "third"]);
    lab.shutdown().await;
}

/// A lab with phone `1001` registering at `registrar` and link `ab` between
/// `a_target` and `b_target`, nothing else.
async fn peers_lab(
    registrar: std::net::SocketAddr,
    a_target: std::net::SocketAddr,
    b_target: std::net::SocketAddr,
) -> TestLab {
    let text = format!(
        r#"
[lab]
[[lab.phones]]
dn = "1001"
password = "{password}"
domain = "{domain}"
registrars = ["{registrar}"]
t1_ms = 20

[[lab.links]]
name = "ab"
a_target = "{a_target}"
b_target = "{b_target}"
"#,
        password = crate::phone::PASSWORD,
        domain = crate::phone::DOMAIN,
    );
    let config = hotsite_lab::LabConfig::from_toml_str(&text).expect("test config is valid");
    TestLab {
        lab: hotsite_lab::Lab::start(config).await.expect("lab starts"),
        http: reqwest::Client::new(),
    }
}

// SPEC S8: phones are listed with their registrations and calls, and take
// commands: how to answer, stop registering (the binding lapses), resume.
#[tokio::test]
async fn phones_are_listed_and_commanded_over_http() {
    let registrar = crate::phone::Registrar::start("1001", 60).await;
    let unused = "127.0.0.1:9".parse().unwrap();
    let lab = peers_lab(registrar.addr(), unused, "127.0.0.1:10".parse().unwrap()).await;
    registrar
        .seen_until(|seen| seen.iter().any(|s| s.authorized == Some(true)))
        .await;
    let phone_addr = lab.lab.phone_addrs()[0].1;
    let mut phones: Value = Value::Null;
    for _ in 0..80 {
        phones = lab.get("/v1/phones").await;
        if phones[0]["registrars"][0]["state"] == "registered" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let phone = &phones[0];
    assert_eq!(phone["dn"], "1001");
    assert_eq!(phone["addr"], phone_addr.to_string());
    assert_eq!(
        (phone["answer"].as_str(), phone["registering"].as_bool()),
        (Some("answer"), Some(true))
    );
    let registration = &phone["registrars"][0];
    assert_eq!(registration["registrar"], registrar.addr().to_string());
    assert_eq!(registration["state"], "registered", "{phones}");
    assert_eq!(
        (
            registration["challenged"].as_u64(),
            registration["ok"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(registration["granted_s"], 60);
    assert_eq!(phone["calls"]["invites"], 0);
    assert_eq!(phone["invites"], json!([]));

    let (status, body) = lab
        .post("/v1/phones/1001/command", r#"{"command":"busy"}"#)
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"command": "busy", "phone": "1001"}))
    );
    assert_eq!(
        lab.lab.phone_stats()[0].answer,
        hotsite_lab::PhoneAnswer::Busy
    );

    let (status, _) = lab
        .post(
            "/v1/phones/1001/command",
            r#"{"command":"stop_registering"}"#,
        )
        .await;
    assert_eq!(status, 200);
    let phones: Value = lab.get("/v1/phones").await;
    assert_eq!(phones[0]["registering"], false);
    assert_eq!(phones[0]["registrars"][0]["state"], "stopped");

    let before = registrar.seen().len();
    let (status, _) = lab
        .post("/v1/phones/1001/command", r#"{"command":"resume"}"#)
        .await;
    assert_eq!(status, 200);
    registrar.seen_until(|seen| seen.len() >= before + 2).await;

    let (status, body) = lab
        .post("/v1/phones/9999/command", r#"{"command":"resume"}"#)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown phone \"9999\""))
    );
    for bad in [
        "not json",
        r#"{"command":"explode"}"#,
        r#"{"command":"set_registrars"}"#,
        r#"{"command":"set_registrars","registrars":["127.0.0.1:5060","127.0.0.1:5060"]}"#,
    ] {
        let (status, body) = lab.post("/v1/phones/1001/command", bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    lab.shutdown().await;
}

// SPEC S4: links are listed with their addresses and counters, and cut and
// restored over HTTP.
#[tokio::test]
async fn links_are_cut_and_restored_over_http() {
    let site_a = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let site_b = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let registrar = crate::phone::Registrar::start("1001", 60).await;
    let lab = peers_lab(
        registrar.addr(),
        site_a.local_addr().unwrap(),
        site_b.local_addr().unwrap(),
    )
    .await;
    let links: Value = lab.get("/v1/links").await;
    let link = &links[0];
    assert_eq!(
        (link["name"].as_str(), link["state"].as_str()),
        (Some("ab"), Some("up"))
    );
    assert_eq!(link["a_target"], site_a.local_addr().unwrap().to_string());
    let a_addr: std::net::SocketAddr = link["a_addr"].as_str().unwrap().parse().unwrap();
    let mut buffer = [0; 64];

    let (status, body) = lab.post("/v1/links/ab/cut", "").await;
    assert_eq!((status, body["state"].as_str()), (200, Some("cut")));
    site_a.send_to(b"lost", a_addr).await.unwrap();
    let quiet = tokio::time::timeout(crate::client::QUIET, site_b.recv_from(&mut buffer)).await;
    assert!(quiet.is_err(), "cut: nothing gets across");
    let links: Value = lab.get("/v1/links").await;
    assert_eq!(links[0]["a_to_b"]["datagrams_dropped"], 1);
    assert_eq!(links[0]["cuts"], 1);

    let (status, body) = lab.post("/v1/links/ab/restore", "").await;
    assert_eq!((status, body["state"].as_str()), (200, Some("up")));
    site_a.send_to(b"across", a_addr).await.unwrap();
    let (len, _) = tokio::time::timeout(crate::client::TIMEOUT, site_b.recv_from(&mut buffer))
        .await
        .expect("restored: it gets across")
        .unwrap();
    assert_eq!(&buffer[..len], b"across");
    assert_eq!(lab.lab.link_stats()[0].a_to_b.datagrams_relayed, 1);

    for path in ["/v1/links/zz/cut", "/v1/links/zz/restore"] {
        let (status, body) = lab.post(path, "").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("unknown link \"zz\""))
        );
    }
    lab.shutdown().await;
}
