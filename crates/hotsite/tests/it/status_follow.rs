//! `hotsite status --follow` as an operator runs it (issue 16): the real
//! binary, piped, against a `hotsite run` gateway bound to the lab's SMSCs.
//! An SMSC killed through the lab shows up as an event line with its cause
//! and as a picture with that bind out of service; a gateway that restarts
//! is followed again; a refused token is an error, not a retry loop.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hotsite_core::Target;
use hotsite_lab::{Fault, Lab, LabHandle};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;

use crate::cli::hotsite;
use crate::crash::{config, free_port, spawn};
use crate::gateway::{lab_config, now, temp_dir, RemovedOnDrop};

/// A lab and a `hotsite run` bound to its four SMSCs (SPEC M4).
struct Gateway {
    lab: LabHandle,
    child: Child,
    config: PathBuf,
    port: u16,
    _dir: RemovedOnDrop,
}

impl Gateway {
    async fn start(name: &str) -> Gateway {
        let dir = temp_dir(name);
        let lab = Lab::start(lab_config(0.0, 0.0)).await.unwrap();
        let port = free_port();
        let config_path = dir.join("hotsite.toml");
        std::fs::write(&config_path, config(&lab, port, &dir.join("hotsite.db"))).unwrap();
        let child = spawn(&config_path);
        let gateway = Gateway {
            lab,
            child,
            config: config_path,
            port,
            _dir: RemovedOnDrop(dir),
        };
        gateway.wait_for_binds(4).await;
        gateway
    }

    /// Until `/v1/health` says `up` binds are up (SPEC M4), 20 s at most.
    async fn wait_for_binds(&self, up: u64) {
        let http = reqwest::Client::new();
        let deadline = now() + Duration::from_secs(20);
        while now() < deadline {
            if let Ok(response) = http
                .get(format!("http://127.0.0.1:{}/v1/health", self.port))
                .send()
                .await
            {
                if let Ok(health) = response.json::<serde_json::Value>().await {
                    if health["binds_up"] == up {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the gateway did not have {up} binds up within 20 s");
    }

    /// Kills the gateway (SIGKILL) and starts it again on the same config
    /// and port: its event numbers start over.
    async fn restart(&mut self) {
        self.child.start_kill().unwrap();
        let _ = self.child.wait().await;
        self.child = spawn(&self.config);
    }
}

/// `hotsite status --follow --config FILE ARGS…`, piped, its output kept.
struct Follower {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Follower {
    fn start(config: &Path, args: &[&str]) -> Follower {
        let mut child = hotsite()
            .args(["status", "--follow", "--config"])
            .arg(config)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = keep(child.stdout.take().unwrap());
        let stderr = keep(child.stderr.take().unwrap());
        Follower {
            child,
            stdout,
            stderr,
        }
    }

    fn output(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits up to `limit` for `test` to hold of the output so far.
    async fn wait_for(&self, what: &str, limit: Duration, test: impl Fn(&str) -> bool) {
        let deadline = now() + limit;
        while now() < deadline {
            if test(&self.output()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "not within {limit:?}: {what}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.output(),
            self.stderr.lock().unwrap()
        );
    }

    /// SIGTERM by PID, as a service manager stops it: it must leave with 0.
    async fn terminate(mut self) {
        let pid = self.child.id().expect("still running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .expect("stopped within 5 s of SIGTERM")
            .unwrap();
        assert!(
            exit.success(),
            "SIGTERM ends --follow with 0: {exit:?}\n{}",
            self.stderr.lock().unwrap()
        );
    }
}

/// Reads `from` to its end into the returned buffer, so the child never
/// blocks on a full pipe.
fn keep(from: impl AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<String>> {
    let kept = Arc::new(Mutex::new(String::new()));
    let into = kept.clone();
    let mut lines = BufReader::new(from).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut kept = into.lock().unwrap_or_else(|e| e.into_inner());
            kept.push_str(&line);
            kept.push('\n');
        }
    });
    kept
}

/// The event line of `target` going down, with a cause after the state.
fn down_event_line<'a>(output: &'a str, target: &str) -> Option<&'a str> {
    output.lines().find(|line| {
        let mut words = line.split_whitespace();
        line.starts_with("event ")
            && words.any(|word| word == target)
            && line
                .split_once("health down")
                .is_some_and(|(_, cause)| !cause.trim().is_empty())
    })
}

/// The bind line of `smsc` in the last picture printed after `after`.
fn bind_line_after<'a>(output: &'a str, after: &str, smsc: &str) -> Option<&'a str> {
    let (_, rest) = output.split_once(after)?;
    let (_, last_picture) = rest.rsplit_once("\nhotsite status · ")?;
    last_picture
        .lines()
        .find(|line| line.trim_start().starts_with(&format!("{smsc} ")))
}

/// SPEC M4, DESIGN.md invariant 4 (issue 16): with the binds up, an SMSC
/// killed through the lab's faults shows within 10 s as an event line
/// (time, system, target, state, cause) and a new picture in which that
/// bind is DOWN with its cause; a `--system` filter keeps it out of another
/// follower's output. The gateway restarted under it: the follower says it
/// reconnects, notices the restart, and carries on until SIGTERM (exit 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_shows_a_killed_smsc_live_and_outlives_a_gateway_restart() {
    let mut gateway = Gateway::start("status-follow").await;
    let follower = Follower::start(&gateway.config, &[]);
    let voice_only = Follower::start(&gateway.config, &["--system", "voice"]);
    follower
        .wait_for(
            "a first picture, all binds up",
            Duration::from_secs(10),
            |out| out.contains("smsc binds: 4 of 4 up") && out.contains("timeline (newest last):"),
        )
        .await;
    voice_only
        .wait_for(
            "the filtered follower's picture",
            Duration::from_secs(10),
            |out| out.contains("timeline (newest last; only voice):"),
        )
        .await;

    gateway
        .lab
        .set_fault(&Target::new("a", "a1"), Fault::Die)
        .unwrap();
    follower
        .wait_for(
            "an event line of a/a1 going down, with its cause",
            Duration::from_secs(10),
            |out| down_event_line(out, "a/a1").is_some(),
        )
        .await;
    let event = down_event_line(&follower.output(), "a/a1")
        .unwrap()
        .to_owned();
    assert!(event.contains(" UTC  messaging  a/a1 "), "{event}");
    follower
        .wait_for(
            "a picture after the event with a/a1 DOWN",
            Duration::from_secs(10),
            |out| {
                bind_line_after(out, &event, "a/a1").is_some_and(|line| line.contains(" DOWN "))
                    && out
                        .split_once(&event)
                        .is_some_and(|(_, after)| after.contains("smsc binds: 3 of 4 up"))
            },
        )
        .await;
    let output = follower.output();
    let bind = bind_line_after(&output, &event, "a/a1").unwrap();
    let cause = event.split_once("health down").unwrap().1.trim();
    assert!(
        bind.ends_with(cause),
        "the bind says why it is down: {bind} / {event}"
    );
    assert!(
        output.contains("  provider site a: 1 of 2 up"),
        "binds are grouped by provider site: {output}"
    );

    // The gateway goes away and comes back with its events numbered anew.
    gateway.restart().await;
    follower
        .wait_for("a reconnecting notice", Duration::from_secs(10), |out| {
            out.contains("\nreconnecting… (attempt 1")
        })
        .await;
    // a/a1 is still dead: three binds.
    gateway.wait_for_binds(3).await;
    follower
        .wait_for(
            "the restart noticed and the stream followed again",
            Duration::from_secs(15),
            |out| {
                out.contains("\nthe gateway restarted (its events are numbered anew)")
                    && out.contains("\nreconnected\n")
            },
        )
        .await;

    let filtered = voice_only.output();
    assert!(
        !filtered.lines().any(|line| line.starts_with("event ")),
        "--system voice shows no messaging event: {filtered}"
    );
    assert!(
        voice_only
            .stderr
            .lock()
            .unwrap()
            .contains("runs no system \"voice\""),
        "a system the gateway does not run is named on stderr"
    );
    // Shown with --nocapture: what an operator would have seen.
    eprintln!("{}", follower.output());
    follower.terminate().await;
    voice_only.terminate().await;
    gateway.child.start_kill().unwrap();
    let _ = gateway.child.wait().await;
}

/// A wrong token is not worth retrying: `--follow` says the gateway refused
/// it, names the status, and exits non-zero at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_with_a_refused_token_exits_non_zero_saying_why() {
    let mut gateway = Gateway::start("status-follow-token").await;
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        hotsite()
            .args(["status", "--follow", "--token", "not-the-token", "--config"])
            .arg(&gateway.config)
            .output(),
    )
    .await
    .expect("exits at once, without retrying")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{output:?}");
    assert!(
        stderr.contains("the gateway refused the token (401 Unauthorized: unknown bearer token)"),
        "{stderr}"
    );
    assert!(stderr.contains("--token"), "says how to fix it: {stderr}");
    assert!(output.stdout.is_empty(), "no picture: {output:?}");
    gateway.child.start_kill().unwrap();
    let _ = gateway.child.wait().await;
}
