//! `hotsite run` under systemd's notification protocol (sd_notify(3), issue
//! 16): the test plays systemd's side, a datagram socket named by
//! `NOTIFY_SOCKET`. READY=1 comes only when the API answers; WATCHDOG=1
//! while the host answers its own health; STOPPING=1 at SIGTERM, and at the
//! start of a site drain (SPEC S7) with the drain's time asked for.

use std::path::Path;
use std::time::Duration;

use tokio::net::UnixDatagram;
use tokio::process::Command;

use crate::daemon::{self, Daemon};
use crate::desktop::free_udp;
use crate::gateway::temp_dir;

const TOKEN: &str = "notify-test-token";

/// systemd's end: the socket and every datagram read so far.
struct Manager {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Manager {
    fn bind(path: &Path) -> Manager {
        Manager {
            socket: UnixDatagram::bind(path).unwrap(),
            seen: Vec::new(),
        }
    }

    /// The next datagram, within `limit`.
    async fn next(&mut self, limit: Duration) -> Option<String> {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(limit, self.socket.recv(&mut buf))
            .await
            .ok()?
            .unwrap();
        let text = String::from_utf8(buf[..n].to_vec()).unwrap();
        self.seen.push(text.clone());
        Some(text)
    }

    /// Reads until a datagram has `line` among its lines (at most 200
    /// datagrams, each within `limit`); that datagram.
    async fn until(&mut self, line: &str, limit: Duration) -> String {
        for _ in 0..200 {
            match self.next(limit).await {
                Some(text) if text.lines().any(|l| l == line) => return text,
                Some(_) => {}
                None => break,
            }
        }
        panic!(
            "no {line} within {limit:?} of the last datagram; got {:?}",
            self.seen
        );
    }
}

/// A single site (no peer) with a short drain timeout, started with
/// `NOTIFY_SOCKET` and a 400 ms watchdog.
async fn start(dir: &Path) -> (Manager, Daemon) {
    let notify_path = dir.join("notify.sock");
    let manager = Manager::bind(&notify_path);
    let config = format!(
        "[site]\nname = \"notify-test\"\nlisten = \"{}\"\ndrain_timeout = \"5s\"\n\n\
         [[site.dns]]\ndn = \"1001\"\npassword = \"phone-secret-1\"\n\n\
         [[site.agents]]\nid = \"alice\"\n\n\
         [api]\nlisten = \"127.0.0.1:0\"\ntokens = [\"{TOKEN}\"]\n",
        free_udp()
    );
    let path = dir.join("hotsite.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hotsite"));
    command
        .arg("run")
        .arg("--config")
        .arg(&path)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .env("HOTSITE_LOG", "info");
    let daemon = daemon::spawn(command).await;
    (manager, daemon)
}

fn terminate(daemon: &Daemon) {
    let pid = daemon.child.id().expect("still running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn exit_code(daemon: &mut Daemon) -> Option<i32> {
    tokio::time::timeout(Duration::from_secs(20), daemon.child.wait())
        .await
        .expect("hotsite run stopped within 20 s")
        .unwrap()
        .code()
}

/// READY=1 is sent when `/v1/health` already answers, with the API address
/// and the systems in STATUS=; WATCHDOG=1 follows every quarter interval;
/// SIGTERM gives STOPPING=1 and a clean exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_when_serving_watchdog_while_alive_stopping_at_sigterm() {
    let dir = temp_dir("notify-sigterm");
    let (mut manager, mut daemon) = start(&dir).await;
    let ready = manager.until("READY=1", Duration::from_secs(30)).await;
    // At this moment, not after a retry: the health endpoint answers.
    let health = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{}/v1/health", daemon.addr))
        .send()
        .await
        .expect("/v1/health answers when READY=1 arrives");
    assert_eq!(health.status(), 200);
    assert!(
        ready.contains(&format!(
            "STATUS=serving the API on http://{}; systems: site",
            daemon.addr
        )),
        "{ready}"
    );
    assert!(
        manager.seen.iter().all(|m| !m.contains("STOPPING")),
        "{:?}",
        manager.seen
    );
    // 400 ms interval: a ping every 100 ms while the host answers.
    for _ in 0..3 {
        manager.until("WATCHDOG=1", Duration::from_secs(2)).await;
    }
    terminate(&daemon);
    let stopping = manager.until("STOPPING=1", Duration::from_secs(10)).await;
    assert!(
        stopping.contains("STATUS=stopping: signal received"),
        "{stopping}"
    );
    assert_eq!(exit_code(&mut daemon).await, Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A drain asked through the API (SPEC S7) says STOPPING=1 with
/// STATUS=draining at its start and asks systemd for the drain's time
/// (5 s + the 90 s stop margin) with EXTEND_TIMEOUT_USEC; with no call left
/// the process then stops by itself, cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_drain_says_stopping_and_asks_for_its_time() {
    let dir = temp_dir("notify-drain");
    let (mut manager, mut daemon) = start(&dir).await;
    manager.until("READY=1", Duration::from_secs(30)).await;
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("http://{}/v1/site/drain", daemon.addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    let draining = manager.until("STOPPING=1", Duration::from_secs(10)).await;
    assert!(
        draining.contains("STATUS=draining: ") && draining.contains("after 5s"),
        "{draining}"
    );
    manager
        .until("EXTEND_TIMEOUT_USEC=95000000", Duration::from_secs(5))
        .await;
    let drained = manager.until("STOPPING=1", Duration::from_secs(15)).await;
    assert!(drained.contains("STATUS=stopping: drained"), "{drained}");
    assert_eq!(exit_code(&mut daemon).await, Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
