//! The binary as a user runs it: exit codes, messages, printed addresses.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

pub(crate) fn hotsite() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hotsite"));
    command.kill_on_drop(true).stdin(Stdio::null());
    command
}

pub(crate) fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A file in a folder of its own, removed when dropped.
pub(crate) struct TempFile(std::path::PathBuf);

impl TempFile {
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub(crate) fn temp_file(name: &str, text: &str) -> TempFile {
    let dir = std::env::temp_dir().join(format!("hotsite-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    TempFile(path)
}

/// Runs `hotsite check-config FILE`: (exit code, stdout, stderr).
pub(crate) async fn check_config(file: &std::path::Path) -> (Option<i32>, String, String) {
    let output = hotsite()
        .arg("check-config")
        .arg(file)
        .output()
        .await
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

#[tokio::test]
async fn check_config_accepts_the_examples() {
    // A build without the lab refuses lab files (production_build.rs).
    let names: &[&str] = if cfg!(feature = "lab") {
        &["hotsite.toml", "lab.toml"]
    } else {
        &["hotsite.toml"]
    };
    for name in names {
        let (code, stdout, stderr) = check_config(&examples().join(name)).await;
        assert_eq!(code, Some(0), "{name}: {stdout} {stderr}");
        assert!(stdout.contains(": ok ("), "{stdout}");
    }
}

/// SPEC M5: a rebind interval under 30 s is refused at load; the error names the key.
#[tokio::test]
async fn check_config_rejects_fast_rebind_naming_the_key() {
    let text = std::fs::read_to_string(examples().join("hotsite.toml"))
        .unwrap()
        .replace("rebind_interval = \"35s\"", "rebind_interval = \"10s\"")
        .replace("window = 10 ", "window = 0 ");
    let path = temp_file("fast-rebind.toml", &text);
    let (code, _, stderr) = check_config(path.path()).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("smpp.rebind_interval: must be at least 30 s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("smpp.window"),
        "every problem is reported: {stderr}"
    );
}

#[tokio::test]
async fn check_config_reports_unreadable_and_malformed_files() {
    let (code, _, stderr) = check_config(std::path::Path::new("/nonexistent/hotsite.toml")).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("cannot read"), "{stderr}");

    let path = temp_file(
        "bad-lab.toml",
        "[lab]\nseed = 1\naccounts = []\n\n[[lab.sites]]\nname = \"a\"\n\n[[lab.sites.smsc]]\nname = \"a1\"\nlisten = \"127.0.0.1:0\"\n",
    );
    let (code, _, stderr) = check_config(path.path()).await;
    assert_eq!(code, Some(2), "{stderr}");
    if cfg!(feature = "lab") {
        assert!(stderr.contains("lab.accounts"), "{stderr}");
    } else {
        assert!(
            stderr.contains("this build of hotsite has no lab"),
            "{stderr}"
        );
    }
}

/// `hotsite run` on a file it cannot read exits 2, as on an invalid one: the
/// systemd unit's `RestartPreventExitStatus=2` does not restart it in a loop.
#[tokio::test]
async fn run_on_an_unreadable_config_exits_2() {
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        hotsite()
            .args(["run", "--config", "/nonexistent/hotsite.toml"])
            .output(),
    )
    .await
    .expect("exits at once")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot read /nonexistent/hotsite.toml"),
        "{stderr}"
    );
}

/// `hotsite run`, `send` and `status` as a user runs them: a message sent twice
/// with one key is accepted once (SPEC M8) and delivered; status shows the binds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_send_and_status_work_together() {
    use crate::crash::{config, free_port, spawn};
    let dir = crate::gateway::temp_dir("cli-run");
    let lab = hotsite_lab::Lab::start(crate::gateway::lab_config(0.0, 0.0))
        .await
        .unwrap();
    let port = free_port();
    let config_path = dir.join("hotsite.toml");
    // With a voice proxy whose one trunk never answers its OPTIONS: it goes out
    // of service, and `hotsite status` and /metrics say so (SPEC V2, V3).
    let silent_trunk = free_port();
    let voice = format!(
        "\n[voice]\nlisten = \"127.0.0.1:{}\"\n\n[[voice.trunks]]\nname = \"t1\"\n\
         address = \"127.0.0.1:{silent_trunk}\"\nmedia_region = \"eu-west\"\n\
         failover_region = \"eu-central\"\n\
         probe = {{ interval = \"200ms\", timeout = \"150ms\", fall = 1, rise = 1 }}\n",
        free_port()
    );
    std::fs::write(
        &config_path,
        config(&lab, port, &dir.join("hotsite.db")) + &voice,
    )
    .unwrap();
    let mut gateway = spawn(&config_path);
    let http = reqwest::Client::new();
    let mut healthy = false;
    for _ in 0..100 {
        if let Ok(response) = http
            .get(format!("http://127.0.0.1:{port}/v1/health"))
            .send()
            .await
        {
            if response.status() == 200
                && response.json::<serde_json::Value>().await.unwrap()["binds_up"] == 4
            {
                healthy = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "the gateway came up with four binds");
    let send = || {
        hotsite()
            .arg("send")
            .arg("--config")
            .arg(&config_path)
            .args([
                "--to",
                "+4917012345678",
                "--text",
                "from the cli",
                "--key",
                "cli-1",
            ])
            .output()
    };
    let first = send().await.unwrap();
    let second = send().await.unwrap();
    assert!(
        String::from_utf8_lossy(&first.stdout).starts_with("accepted message 1"),
        "{first:?}"
    );
    assert!(
        String::from_utf8_lossy(&second.stdout).starts_with("duplicate message 1"),
        "{second:?}"
    );
    let bad = hotsite()
        .arg("send")
        .arg("--config")
        .arg(&config_path)
        .args(["--to", "nope", "--text", "x"])
        .output()
        .await
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("\"field\": \"to\""),
        "{bad:?}"
    );
    let status = hotsite()
        .arg("status")
        .arg("--config")
        .arg(&config_path)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{status:?}");
    for smsc in ["a/a1", "a/a2", "b/b1", "b/b2"] {
        assert!(text.contains(smsc), "{text}");
    }
    assert!(text.contains("trunks:") && text.contains("t1"), "{text}");
    let mut out_of_service = false;
    for _ in 0..50 {
        let metrics = http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains(
            "hotsite_trunk_in_service{trunk=\"t1\",carrier=\"t1\",media_region=\"eu-west\",failover_region=\"eu-central\"} 0",
        ) {
            out_of_service = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(out_of_service, "the unanswered trunk went out of service");
    let status = hotsite()
        .arg("status")
        .arg("--config")
        .arg(&config_path)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.lines()
            .any(|line| line.trim_start().starts_with("t1 ") && line.contains(" OUT ")),
        "{text}"
    );
    for _ in 0..50 {
        if lab.stats().totals.unique == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(lab.stats().totals.unique, 1);
    gateway.start_kill().unwrap();
    let _ = gateway.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
}
