//! Interop: third-party SMPP implementations from PyPI as peers, so that our
//! client and our lab are not only ever tested against each other.
//!
//! The Python scripts live in `tests/interop/` (pinned in its `requirements.txt`:
//! `pip install -r tests/interop/requirements.txt`). The interpreter is `python3`,
//! or `$HOTSITE_PYTHON` when set. Every child process is killed when its handle
//! drops, so a failed assertion never leaves one behind; every wait is bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hotsite_core::{HealthState, Target};
use hotsite_lab::{Lab, LabConfig};
use hotsite_smpp::driver::{ClientConfig, ClientEvent, SmppClient, SubmitOutcome};
use hotsite_smpp::pdu::{Address, MessageState, ShortMessage};
use hotsite_smpp::pool::{BindState, PoolConfig};
use hotsite_smpp::session::SessionConfig;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Upper bound on any single wait on a peer.
const WAIT: Duration = Duration::from_secs(5);

/// `ESME_RINVPASWD`, what the lab answers a bind with a wrong password.
const ESME_RINVPASWD: u64 = 0x0E;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop")
        .join(name)
}

fn python() -> Command {
    let interpreter = std::env::var("HOTSITE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut command = Command::new(interpreter);
    command
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn spawn(command: &mut Command, what: &str) -> Child {
    command.spawn().unwrap_or_else(|error| {
        panic!(
            "cannot start {what}: {error} (needs python3 with the packages of \
             tests/interop/requirements.txt)"
        )
    })
}

/// `python3 tests/interop/smpplib_client.py HOST PORT N` against one lab SMSC.
///
/// SPEC M4 (a transceiver bind accepted, a wrong password refused), M13 (every
/// submit gets its own message id and a receipt carrying it in
/// `receipted_message_id` with `message_state`), M8 (a resubmit with the same
/// `user_message_reference` is answered with the original id and not delivered
/// again), and a clean unbind. The third-party peer is the ESME: **smpplib**
/// (PyPI `smpplib`), against our in-process lab.
#[tokio::test]
async fn smpplib_client_against_lab() {
    const N: usize = 5;
    let config = LabConfig::from_toml_str(
        r#"
        [lab]
        seed = 7
        accounts = [{ system_id = "hotsite", password = "secret" }]

        [lab.receipts]
        delay_ms = 20
        duplicate_probability = 0.0
        other_site_probability = 0.0

        [[lab.sites]]
        name = "east"
        smsc = [{ name = "smsc1", listen = "127.0.0.1:0" }]

        [[lab.sites]]
        name = "west"
        smsc = [{ name = "smsc1", listen = "127.0.0.1:0" }]
        "#,
    )
    .expect("lab config");
    let lab = Lab::start(config).await.expect("lab starts");
    let (target, addr) = lab.smsc_addrs()[0].clone();

    let child = spawn(
        python().arg(script("smpplib_client.py")).args([
            addr.ip().to_string(),
            addr.port().to_string(),
            N.to_string(),
        ]),
        "smpplib_client.py",
    );
    // Dropping the future on timeout drops the child, which kills it.
    let output = timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("smpplib_client.py finishes within 30 s")
        .expect("smpplib_client.py runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "smpplib_client.py failed: {}\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    let summary: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("bad summary ({error}): {stdout}\nstderr: {stderr}"));
    let context = format!("summary: {summary:#}\nstderr: {stderr}");
    assert!(summary.get("error").is_none(), "script error\n{context}");

    // The wrong password is refused, with the status that says why.
    assert_eq!(
        summary["wrong_password"]["refused"], true,
        "wrong password accepted\n{context}"
    );
    assert_eq!(
        summary["wrong_password"]["status"].as_u64(),
        Some(ESME_RINVPASWD),
        "{context}"
    );
    // The right one is accepted; the bind_resp names the instance.
    assert_eq!(summary["bind"]["ok"], true, "{context}");
    assert_eq!(summary["bind"]["status"].as_u64(), Some(0), "{context}");
    assert_eq!(
        summary["bind"]["system_id"].as_str(),
        Some(&*target.name.to_string()),
        "{context}"
    );

    // Every submit accepted, each with its own id.
    let submits = summary["submits"].as_array().expect("submits");
    assert_eq!(submits.len(), N, "{context}");
    let mut ids = Vec::new();
    for submit in submits {
        assert_eq!(submit["status"].as_u64(), Some(0), "{submit}\n{context}");
        let id = submit["message_id"].as_str().expect("a message id");
        assert!(!id.is_empty(), "{context}");
        ids.push(id.to_owned());
    }
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), N, "message ids are not distinct\n{context}");

    // One receipt per message, matched by receipted_message_id (SPEC M13).
    let receipts = summary["receipts"].as_array().expect("receipts");
    assert_eq!(receipts.len(), N, "{context}");
    let mut receipted = BTreeSet::new();
    for receipt in receipts {
        assert_eq!(receipt["esm_class"].as_u64(), Some(0x04), "{context}");
        assert_eq!(
            receipt["message_state"].as_u64(),
            Some(u64::from(MessageState::Delivered.as_u8())),
            "{context}"
        );
        let id = receipt["receipted_message_id"]
            .as_str()
            .expect("receipted_message_id TLV");
        receipted.insert(id.to_owned());
    }
    assert_eq!(receipted, ids.iter().cloned().collect(), "{context}");

    // The resubmit: the original id, no second delivery, no second receipt (SPEC M8).
    let resubmit = &summary["resubmit"];
    assert_eq!(resubmit["status"].as_u64(), Some(0), "{context}");
    assert_eq!(resubmit["message_id"].as_str(), Some(&*ids[0]), "{context}");
    assert_eq!(
        resubmit["receipts_after"].as_array().map(Vec::len),
        Some(0),
        "the repeat got a receipt\n{context}"
    );
    assert_eq!(
        summary["other_deliveries"].as_array().map(Vec::len),
        Some(0),
        "{context}"
    );
    assert_eq!(summary["unbind"]["status"].as_u64(), Some(0), "{context}");

    // The lab's own view agrees.
    let stats = lab.stats();
    assert_eq!(stats.totals.unique, N as u64, "{stats:#?}");
    assert_eq!(stats.totals.duplicates_dropped, 1, "{stats:#?}");
    assert_eq!(stats.totals.submits, N as u64 + 1, "{stats:#?}");
    assert_eq!(stats.totals.receipts_sent, N as u64, "{stats:#?}");
    assert_eq!(stats.smsc[0].bind_attempts, 2, "{stats:#?}");
    assert_eq!(stats.smsc[1].bind_attempts, 0, "{stats:#?}");
    let handsets = lab.handset_log();
    assert_eq!(handsets.len(), N, "{handsets:#?}");
    for (index, (handset, submit)) in handsets.iter().zip(submits).enumerate() {
        assert_eq!(handset.text, format!("smpplib interop {index}"));
        assert_eq!(Some(&*handset.message_id), submit["message_id"].as_str());
        assert_eq!(
            handset.user_message_reference.map(u64::from),
            submit["user_message_reference"].as_u64()
        );
        assert_eq!(handset.system_id, "hotsite");
    }
    lab.shutdown().await;
}

/// The Python SMSC of `tests/interop/python_smsc.py`: its JSON event lines, as
/// they arrive, and its stderr for failure messages.
struct PySmsc {
    child: Child,
    port: u16,
    lines: mpsc::UnboundedReceiver<Value>,
    log: Vec<Value>,
    stderr: Arc<Mutex<String>>,
}

impl PySmsc {
    async fn start() -> PySmsc {
        let mut child = spawn(
            python()
                .arg(script("python_smsc.py"))
                .args(["--lifetime", "60"]),
            "python_smsc.py",
        );
        let stdout = child.stdout.take().expect("stdout piped");
        let mut stderr_pipe = child.stderr.take().expect("stderr piped");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_sink = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut chunk = [0_u8; 4096];
            while let Ok(read) = stderr_pipe.read(&mut chunk).await {
                if read == 0 {
                    break;
                }
                if let Ok(mut sink) = stderr_sink.lock() {
                    sink.push_str(&String::from_utf8_lossy(&chunk[..read]));
                }
            }
        });
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "event": "unparsed", "line": line }));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let mut smsc = PySmsc {
            child,
            port: 0,
            lines,
            log: Vec::new(),
            stderr,
        };
        smsc.wait_for("the listening line", Duration::from_secs(10), |log| {
            !log.is_empty()
        })
        .await;
        smsc.port = smsc.log[0]["port"]
            .as_u64()
            .and_then(|port| u16::try_from(port).ok())
            .unwrap_or_else(|| panic!("first line is not the port: {}", smsc.dump()));
        smsc
    }

    /// Reads event lines until `done(log)` holds; panics after `limit`.
    async fn wait_for(&mut self, what: &str, limit: Duration, done: impl Fn(&[Value]) -> bool) {
        let waited = timeout(limit, async {
            while !done(&self.log) {
                match self.lines.recv().await {
                    Some(line) => self.log.push(line),
                    None => return false,
                }
            }
            true
        })
        .await;
        match waited {
            Ok(true) => {}
            Ok(false) => panic!("python_smsc.py ended before {what}\n{}", self.dump()),
            Err(_) => panic!("timed out waiting for {what}\n{}", self.dump()),
        }
    }

    /// Takes in whatever lines have arrived, without waiting.
    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
    }

    fn events(&self, kind: &str) -> Vec<&Value> {
        self.log
            .iter()
            .filter(|event| event["event"] == kind)
            .collect()
    }

    fn count(log: &[Value], kind: &str) -> usize {
        log.iter().filter(|event| event["event"] == kind).count()
    }

    fn dump(&self) -> String {
        let lines: Vec<String> = self.log.iter().map(Value::to_string).collect();
        let stderr = self
            .stderr
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default();
        format!(
            "python_smsc.py stdout:\n{}\nstderr:\n{stderr}",
            lines.join("\n")
        )
    }
}

/// Waits until the only instance is bound and up; panics after `limit`.
async fn wait_bound(client: &mut SmppClient, limit: Duration) {
    let bound = timeout(limit, async {
        loop {
            let status = client.status();
            if status.first().is_some_and(|s| {
                s.pool.bind == BindState::Bound && s.pool.health == HealthState::Up
            }) {
                return;
            }
            if let Err(closed) = client.status_changed().await {
                panic!("client closed while binding: {closed}");
            }
        }
    })
    .await;
    if bound.is_err() {
        panic!("not bound within {limit:?}: {:#?}", client.status());
    }
}

/// Our client for the one Python SMSC, with a 1 s enquire_link interval and a
/// 3 s dead-peer timeout.
fn client_config(port: u16, password: &str) -> ClientConfig {
    let mut session = SessionConfig::new("hotsite", password);
    session.enquire_link_interval = Duration::from_secs(1);
    session.dead_peer_timeout = Duration::from_secs(3);
    session.response_timeout = Duration::from_secs(3);
    ClientConfig {
        session,
        pool: PoolConfig::default(),
        instances: vec![(Target::new("py", "smsc1"), format!("127.0.0.1:{port}"))],
        connect_timeout: Duration::from_secs(2),
        seed: 1,
    }
}

fn message(index: u16) -> ShortMessage {
    let mut message = ShortMessage {
        source: Address {
            ton: 5,
            npi: 0,
            addr: "HOTSITE".to_owned(),
        },
        destination: Address {
            ton: 1,
            npi: 1,
            addr: format!("46701{index:06}"),
        },
        registered_delivery: 1,
        short_message: format!("hotsite interop {index}").into_bytes().into(),
        ..ShortMessage::default()
    };
    message.tlvs.set_user_message_reference(20_000 + index);
    message
}

/// Our `SmppClient` against `python3 tests/interop/python_smsc.py`.
///
/// SPEC M4 (transceiver bind to the instance, kept alive by enquire_link: with a
/// 1 s interval and a 3 s dead-peer timeout the session stays bound through 4 s
/// of idleness only because the peer answers), M6 (receipts taken on the bind,
/// acknowledged), M13 (receipts matched by `receipted_message_id`, state from
/// `message_state`, while the receipt text carries another id), M8 (the
/// `user_message_reference` reaches the SMSC intact), M5 (a refused bind is not
/// retried at once), and a clean unbind on shutdown. The third-party peer is the
/// SMSC: **smppy** (PyPI `smppy`) with its **smpppdu** codec; see the script for
/// what it adds to smppy.
#[tokio::test]
async fn our_client_against_smppy_server() {
    const N: u16 = 3;
    let mut smsc = PySmsc::start().await;

    let (mut client, mut events, join) =
        SmppClient::start(client_config(smsc.port, "secret")).unwrap();
    wait_bound(&mut client, WAIT).await;
    smsc.wait_for("the bind", WAIT, |log| PySmsc::count(log, "bind") == 1)
        .await;
    assert_eq!(smsc.events("bind")[0]["ok"], true, "{}", smsc.dump());

    // Submits all at once, so that several may share a TCP segment.
    let submitted = timeout(WAIT, async {
        tokio::join!(
            client.submit(message(0)),
            client.submit(message(1)),
            client.submit(message(2)),
        )
    })
    .await;
    let Ok((first, second, third)) = submitted else {
        panic!("submits not answered\n{}", smsc.dump());
    };
    let mut accepted = BTreeMap::new();
    for (index, outcome) in [first, second, third].into_iter().enumerate() {
        match outcome {
            Ok(SubmitOutcome::Accepted { target, message_id }) => {
                assert_eq!(target, Target::new("py", "smsc1"));
                accepted.insert(index, message_id);
            }
            other => panic!("submit {index}: {other:?}\n{}", smsc.dump()),
        }
    }

    // The SMSC saw exactly those submits, intact.
    smsc.wait_for("the submits", WAIT, |log| {
        PySmsc::count(log, "submit") >= usize::from(N)
    })
    .await;
    let submits = smsc.events("submit");
    assert_eq!(submits.len(), usize::from(N), "{}", smsc.dump());
    let mut seen = BTreeMap::new();
    for submit in &submits {
        let text = submit["text"].as_str().expect("text");
        let index: usize = text
            .strip_prefix("hotsite interop ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected text {text:?}\n{}", smsc.dump()));
        assert_eq!(submit["source"], "HOTSITE", "{}", smsc.dump());
        assert_eq!(
            submit["destination"].as_str(),
            Some(&*format!("46701{index:06}")),
            "{}",
            smsc.dump()
        );
        assert_eq!(
            submit["user_message_reference"].as_u64(),
            Some(20_000 + index as u64),
            "{}",
            smsc.dump()
        );
        assert_eq!(submit["wants_receipt"], true, "{}", smsc.dump());
        seen.insert(
            index,
            submit["message_id"].as_str().unwrap_or("").to_owned(),
        );
    }
    assert_eq!(
        seen,
        accepted,
        "our outcomes do not carry the SMSC's ids\n{}",
        smsc.dump()
    );

    // One receipt per submit, on the same bind, matched by the TLV (SPEC M13).
    let mut receipted = BTreeSet::new();
    let received = timeout(WAIT, async {
        while receipted.len() < usize::from(N) {
            let Some(event) = events.recv().await else {
                panic!("client events closed");
            };
            if let ClientEvent::Deliver {
                target,
                message,
                ack,
            } = event
            {
                assert_eq!(target, Target::new("py", "smsc1"));
                assert!(message.is_receipt(), "not a receipt: {message:?}");
                assert_eq!(message.tlvs.message_state(), Some(MessageState::Delivered));
                let id = message
                    .tlvs
                    .receipted_message_id()
                    .expect("receipted_message_id")
                    .to_owned();
                // The text's id is the carrier's, not ours (SPEC M13).
                let body = String::from_utf8_lossy(message.body()).into_owned();
                assert!(!body.contains(&format!("id:{id} ")), "{body}");
                ack.accept();
                assert!(receipted.insert(id.clone()), "receipt for {id} twice");
            }
        }
    })
    .await;
    assert!(
        received.is_ok(),
        "receipts missing, got {receipted:?}\n{}",
        smsc.dump()
    );
    assert_eq!(
        receipted,
        accepted.values().cloned().collect::<BTreeSet<_>>()
    );
    smsc.wait_for("the deliver_sm_resps", WAIT, |log| {
        PySmsc::count(log, "deliver_sm_resp") >= usize::from(N)
    })
    .await;
    for resp in smsc.events("deliver_sm_resp") {
        assert_eq!(resp["status"], "ESME_ROK", "{}", smsc.dump());
    }

    // Keep-alive: 4 s idle is past the 3 s dead-peer timeout; the session only
    // survives because smppy answers our enquire_links.
    smsc.drain();
    let enquires_before = smsc.events("enquire_link").len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    smsc.drain();
    let status = client.status();
    assert_eq!(
        status[0].pool.bind,
        BindState::Bound,
        "{status:#?}\n{}",
        smsc.dump()
    );
    assert_eq!(status[0].pool.health, HealthState::Up, "{status:#?}");
    assert_eq!(status[0].pool.bind_attempts, 1, "rebound: {status:#?}");
    let enquires = smsc.events("enquire_link").len() - enquires_before;
    assert!(
        enquires >= 2,
        "{enquires} enquire_link in 4 s with a 1 s interval\n{}",
        smsc.dump()
    );
    assert!(smsc.events("connection_lost").is_empty(), "{}", smsc.dump());
    assert!(smsc.events("error").is_empty(), "{}", smsc.dump());

    // Shutdown unbinds.
    timeout(WAIT, client.shutdown())
        .await
        .expect("shutdown within 5 s");
    timeout(WAIT, join)
        .await
        .expect("client task ends")
        .expect("client task did not panic");
    smsc.wait_for("the unbind", WAIT, |log| {
        PySmsc::count(log, "unbind") == 1 && PySmsc::count(log, "connection_lost") == 1
    })
    .await;

    // A wrong password: smppy refuses (ESME_RBINDFAIL); the client gives up the
    // connection and does not retry at once (SPEC M5 paces rebinds).
    let (intruder, _intruder_events, intruder_join) =
        SmppClient::start(client_config(smsc.port, "wrong")).unwrap();
    smsc.wait_for("the refused bind and its disconnect", WAIT, |log| {
        log.iter().any(|e| e["event"] == "bind" && e["ok"] == false)
            && PySmsc::count(log, "connection_lost") == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = intruder.status();
    assert_ne!(status[0].pool.bind, BindState::Bound, "{status:#?}");
    assert_ne!(status[0].pool.health, HealthState::Up, "{status:#?}");
    assert_eq!(status[0].pool.bind_attempts, 1, "{status:#?}");
    assert!(status[0].pool.last_failure.is_some(), "{status:#?}");
    timeout(WAIT, intruder.shutdown())
        .await
        .expect("shutdown within 5 s");
    timeout(WAIT, intruder_join)
        .await
        .expect("client task ends")
        .expect("client task did not panic");

    smsc.drain();
    assert!(smsc.events("error").is_empty(), "{}", smsc.dump());
    let _ = smsc.child.start_kill();
    let _ = timeout(WAIT, smsc.child.wait()).await;
}
