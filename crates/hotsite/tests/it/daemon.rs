//! `hotsite run` as a child process: its API address (read from the line it
//! prints) and everything it writes, kept for the test to read.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// A running `hotsite run`.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    /// `host:port` of the API.
    pub(crate) addr: String,
    pub(crate) stdout: Arc<Mutex<String>>,
    pub(crate) stderr: Arc<Mutex<String>>,
}

/// Spawns `command` (which runs `hotsite run`, killed on drop) and waits up to
/// 30 s for its `API on http://…` line.
pub(crate) async fn spawn(mut command: Command) -> Daemon {
    let mut child = command
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = keep(child.stderr.take().unwrap(), None);
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let stdout = keep(child.stdout.take().unwrap(), Some(addr_tx));
    let addr = match tokio::time::timeout(Duration::from_secs(30), addr_rx).await {
        Ok(Ok(addr)) => addr,
        _ => panic!(
            "hotsite run printed no API address: {}{}",
            stdout.lock().unwrap(),
            stderr.lock().unwrap()
        ),
    };
    Daemon {
        child,
        addr,
        stdout,
        stderr,
    }
}

/// Reads `from` to its end into the returned buffer (so the child never blocks
/// on a full pipe), sending the API address to `addr` when it goes by.
fn keep(
    from: impl AsyncRead + Unpin + Send + 'static,
    mut addr: Option<tokio::sync::oneshot::Sender<String>>,
) -> Arc<Mutex<String>> {
    let kept = Arc::new(Mutex::new(String::new()));
    let into = kept.clone();
    let mut lines = BufReader::new(from).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some((_, found)) = line.split_once("API on http://") {
                if let Some(addr) = addr.take() {
                    let _ = addr.send(found.trim().to_owned());
                }
            }
            let mut kept = into.lock().unwrap_or_else(|e| e.into_inner());
            kept.push_str(&line);
            kept.push('\n');
        }
    });
    kept
}
