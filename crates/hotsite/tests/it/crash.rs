//! SPEC M8, M9, invariant 1: the gateway is killed with SIGKILL at random points
//! of a run and restarted on the same store, several times. Every message the
//! API acknowledged reaches a handset exactly once.

use std::process::Stdio;
use std::time::Duration;

use hotsite_core::Rng;
use hotsite_lab::{Lab, LabHandle};
use tokio::process::{Child, Command};

use crate::gateway::{batch, handsets, lab_config, post_until_accepted, temp_dir, TOKEN};

const BATCHES: u64 = 20;
const PER_BATCH: u64 = 500;
const KILLS: usize = 5;

pub(crate) fn config(lab: &LabHandle, api_port: u16, store: &std::path::Path) -> String {
    let mut text = format!(
        r#"
[site]
name = "crash-test"
[api]
listen = "127.0.0.1:{api_port}"
tokens = ["{TOKEN}"]
[store]
path = "{}"
[smpp]
system_id = "hotsite"
password = "secret"
enquire_link_interval = "500ms"
dead_peer_timeout = "1500ms"
response_timeout = "1s"
"#,
        store.display()
    );
    for (target, addr) in lab.smsc_addrs() {
        text.push_str(&format!(
            "[[smpp.smsc]]\nsite = \"{}\"\nname = \"{}\"\naddress = \"{addr}\"\n",
            target.site, target.name
        ));
    }
    text
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn spawn(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hotsite"))
        .arg("run")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_duplicates_nothing() {
    let dir = temp_dir("crash");
    let lab = Lab::start(lab_config(0.0, 0.0)).await.unwrap();
    let port = free_port();
    let config_path = dir.join("hotsite.toml");
    std::fs::write(&config_path, config(&lab, port, &dir.join("hotsite.db"))).unwrap();
    let api = format!("http://127.0.0.1:{port}");

    // The application: posts every batch until it is acknowledged, whatever
    // happens to the gateway meanwhile. Same keys on every retry (SPEC M8).
    let sender_api = api.clone();
    let sender = tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        for n in 0..BATCHES {
            post_until_accepted(
                &http,
                &sender_api,
                &batch(n * PER_BATCH..(n + 1) * PER_BATCH),
            )
            .await;
            // Paced so that the kills land while messages are still arriving.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });

    let mut rng = Rng::new(2026);
    for round in 0..KILLS {
        let mut child = spawn(&config_path);
        let alive = Duration::from_millis(300 + rng.below_or_equal(900));
        tokio::time::sleep(alive).await;
        child.start_kill().unwrap(); // SIGKILL
        let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(!status.success(), "round {round}: the gateway was killed");
        eprintln!(
            "round {round}: killed after {alive:?}; {} at the handsets so far",
            lab.stats().totals.unique
        );
    }
    let mut last = spawn(&config_path);
    tokio::time::timeout(Duration::from_secs(120), sender)
        .await
        .expect("every batch acknowledged")
        .unwrap();
    let total = BATCHES * PER_BATCH;
    let mut waited = 0;
    while lab.stats().totals.unique < total && waited < 600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = handsets(&lab);
    let lost: Vec<u64> = (0..total)
        .filter(|i| !seen.contains_key(i))
        .take(10)
        .collect();
    assert!(lost.is_empty(), "lost (first 10): {lost:?}");
    let twice: Vec<(u64, u64)> = seen
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(&i, &n)| (i, n))
        .take(10)
        .collect();
    assert!(twice.is_empty(), "delivered twice (first 10): {twice:?}");
    eprintln!(
        "{} unique, {} repeats dropped by the provider after {KILLS} kills",
        lab.stats().totals.unique,
        lab.stats().totals.duplicates_dropped
    );
    last.start_kill().unwrap();
    let _ = last.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
}
