//! systemd's service notifications (sd_notify(3)) from `hotsite run`, over
//! the standard library's Unix datagram socket: the protocol is one datagram
//! of `KEY=value` lines, which needs neither libsystemd nor a crate.
//!
//! - `READY=1` (with `STATUS=` naming the API address and the systems) once
//!   the host serves and every system has started: `Type=notify` units
//!   count as started from then on, so a unit ordered after hotsite finds its
//!   API answering.
//! - `STOPPING=1` when a signal or a site drain (SPEC S7) starts the shutdown.
//!   A drain also says `STATUS=draining …` and asks for its time with
//!   `EXTEND_TIMEOUT_USEC` (`site.drain_timeout` plus [`STOP_MARGIN`]):
//!   systemd arms `TimeoutStopSec=` at `STOPPING=1`, and a drain waits for
//!   calls to end.
//! - `WATCHDOG=1` when systemd asks for it (`WATCHDOG_USEC`, and
//!   `WATCHDOG_PID` is this process or unset): every quarter of the interval,
//!   *if the host answered its own `GET /v1/health` over loopback* within
//!   that quarter. Any HTTP status counts: a 503 (a system not ready, the
//!   connection cap reached) is a live process that a restart would not
//!   help; no answer at all (a stuck runtime, a dead accept loop, a system
//!   whose health never returns) is what the watchdog is for. A quarter, not
//!   sd_watchdog_enabled(3)'s half, so that one slow probe is not a restart:
//!   systemd acts only after a whole interval without a ping. Once the
//!   shutdown has begun the listener is closed, and pings go on without
//!   probing while the runtime turns.
//!
//! Without `NOTIFY_SOCKET` nothing is sent. An unusable one is logged once
//! and ignored: hotsite runs the same with or without systemd.

use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Time asked for beyond `site.drain_timeout`: the host's own shutdown after
/// the drain (HTTP grace, unbinding, in-flight webhooks), as the unit's
/// `TimeoutStopSec=` sizes it for a signal.
pub(crate) const STOP_MARGIN: Duration = Duration::from_secs(90);

/// A datagram never waits longer than this for the socket's buffer.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Where `NOTIFY_SOCKET` says to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SocketName {
    /// A socket file: `/run/systemd/notify`.
    Path(PathBuf),
    /// A Linux abstract socket, written `@name` (the `@` stands for the
    /// leading NUL byte).
    Abstract(Vec<u8>),
}

/// Reads `NOTIFY_SOCKET`: `None` when unset or empty.
pub(crate) fn parse_socket(value: Option<&OsStr>) -> Result<Option<SocketName>, String> {
    use std::os::unix::ffi::OsStrExt;
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    match bytes[0] {
        b'/' => Ok(Some(SocketName::Path(PathBuf::from(value)))),
        b'@' if bytes.len() > 1 => Ok(Some(SocketName::Abstract(bytes[1..].to_vec()))),
        _ => Err(format!(
            "NOTIFY_SOCKET={}: not an absolute path or an @abstract name (other kinds, e.g. vsock:, are not supported)",
            value.to_string_lossy()
        )),
    }
}

/// The watchdog interval systemd asks this process for: `WATCHDOG_USEC`,
/// unless `WATCHDOG_PID` names another process (a child that inherited the
/// variables must not answer for its parent).
pub(crate) fn watchdog_interval(
    usec: Option<&str>,
    pid: Option<&str>,
    own_pid: u32,
) -> Result<Option<Duration>, String> {
    let Some(usec) = usec else {
        return Ok(None);
    };
    if let Some(pid) = pid {
        match pid.trim().parse::<u32>() {
            Ok(pid) if pid == own_pid => {}
            Ok(_) => return Ok(None),
            Err(_) => return Err(format!("WATCHDOG_PID={pid}: not a process id")),
        }
    }
    match usec.trim().parse::<u64>() {
        Ok(0) | Err(_) => Err(format!(
            "WATCHDOG_USEC={usec}: not a positive number of microseconds"
        )),
        Ok(usec) => Ok(Some(Duration::from_micros(usec))),
    }
}

/// One notification: `KEY=value` lines, each ended by a newline. A value
/// keeps to one line (a newline in it would start another assignment).
pub(crate) fn message(assignments: &[(&str, &str)]) -> String {
    let mut text = String::new();
    for (key, value) in assignments {
        text.push_str(key);
        text.push('=');
        text.extend(value.chars().map(|c| if c == '\n' { ' ' } else { c }));
        text.push('\n');
    }
    text
}

/// `READY=1` with what is serving.
pub(crate) fn ready_message(api: SocketAddr, systems: &[&str]) -> String {
    let systems = if systems.is_empty() {
        "none".to_owned()
    } else {
        systems.join(", ")
    };
    message(&[
        ("READY", "1"),
        (
            "STATUS",
            &format!("serving the API on http://{api}; systems: {systems}"),
        ),
    ])
}

/// `STOPPING=1` and why.
pub(crate) fn stopping_message(why: &str) -> String {
    message(&[("STOPPING", "1"), ("STATUS", &format!("stopping: {why}"))])
}

/// `STOPPING=1` for a site drain (SPEC S7).
pub(crate) fn draining_message(drain_timeout: Duration) -> String {
    message(&[
        ("STOPPING", "1"),
        (
            "STATUS",
            &format!(
                "draining: new calls refused or sent to the peer, agents logged out as their calls end; stops when no call is left or after {}",
                humantime::format_duration(drain_timeout)
            ),
        ),
    ])
}

/// `EXTEND_TIMEOUT_USEC` for the drain and the stop after it. Sent apart
/// from `STOPPING=1`, after it: the extension applies to the state systemd
/// is in when it reads it.
pub(crate) fn extend_message(time: Duration) -> String {
    message(&[("EXTEND_TIMEOUT_USEC", &time.as_micros().to_string())])
}

/// The notifications of this process: a no-op without `NOTIFY_SOCKET`.
#[derive(Clone)]
pub(crate) struct Notify {
    to: Option<Arc<Socket>>,
}

struct Socket {
    socket: UnixDatagram,
    name: SocketName,
    /// A failed send is logged once: the next ones would say the same.
    failed: AtomicBool,
}

impl Notify {
    /// From `NOTIFY_SOCKET`; an unusable value is logged and ignored.
    pub(crate) fn from_env() -> Notify {
        let name = match parse_socket(std::env::var_os("NOTIFY_SOCKET").as_deref()) {
            Ok(name) => name,
            Err(error) => {
                tracing::warn!("{error}; no service notifications");
                None
            }
        };
        Notify::to(name)
    }

    /// To `name` (`None`: nowhere).
    pub(crate) fn to(name: Option<SocketName>) -> Notify {
        let to = name.and_then(|name| match Socket::new(name) {
            Ok(socket) => Some(Arc::new(socket)),
            Err(error) => {
                tracing::warn!(%error, "cannot open a socket for service notifications");
                None
            }
        });
        Notify { to }
    }

    /// Whether notifications go anywhere.
    pub(crate) fn enabled(&self) -> bool {
        self.to.is_some()
    }

    /// Sends one notification (nothing when disabled).
    pub(crate) fn send(&self, text: &str) {
        if let Some(socket) = &self.to {
            socket.send(text);
        }
    }

    /// The host serves `api` and `systems` have started.
    pub(crate) fn ready(&self, api: SocketAddr, systems: &[&str]) {
        self.send(&ready_message(api, systems));
    }

    /// A signal (or the end of a drain) starts the shutdown.
    pub(crate) fn stopping(&self, why: &str) {
        self.send(&stopping_message(why));
    }

    /// A site drain has started: it may take `drain_timeout`.
    pub(crate) fn draining(&self, drain_timeout: Duration) {
        self.send(&draining_message(drain_timeout));
        self.send(&extend_message(drain_timeout + STOP_MARGIN));
    }

    /// Starts the watchdog if systemd asked for one, probing the host at
    /// `api`; pings stop when the returned handle is dropped.
    pub(crate) fn watchdog(&self, api: SocketAddr) -> Option<Watchdog> {
        if !self.enabled() {
            return None;
        }
        let interval = match watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        ) {
            Ok(interval) => interval?,
            Err(error) => {
                tracing::warn!("{error}; no watchdog pings");
                return None;
            }
        };
        Some(Watchdog::start(self.clone(), interval, loopback(api)))
    }
}

impl Socket {
    fn new(name: SocketName) -> std::io::Result<Socket> {
        let socket = UnixDatagram::unbound()?;
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        Ok(Socket {
            socket,
            name,
            failed: AtomicBool::new(false),
        })
    }

    fn send(&self, text: &str) {
        let sent = match &self.name {
            SocketName::Path(path) => self.socket.send_to(text.as_bytes(), path),
            SocketName::Abstract(name) => self.send_abstract(text, name),
        };
        match sent {
            Ok(_) => tracing::debug!(message = text.trim_end(), "service notification sent"),
            Err(error) => {
                if !self.failed.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, socket = ?self.name, "cannot send a service notification");
                }
            }
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn send_abstract(&self, text: &str, name: &[u8]) -> std::io::Result<usize> {
        #[cfg(target_os = "android")]
        use std::os::android::net::SocketAddrExt;
        #[cfg(target_os = "linux")]
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        self.socket.send_to_addr(text.as_bytes(), &addr)
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn send_abstract(&self, _text: &str, _name: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "abstract sockets are Linux only",
        ))
    }
}

/// Where the watchdog asks: `api`, or the loopback address of its family
/// when the API listens on every address.
fn loopback(api: SocketAddr) -> SocketAddr {
    match api.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), api.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), api.port())
        }
        _ => api,
    }
}

/// The watchdog's task; aborted when dropped.
pub(crate) struct Watchdog {
    probing: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Watchdog {
    fn start(notify: Notify, interval: Duration, api: SocketAddr) -> Watchdog {
        let period = interval / 4;
        let probing = Arc::new(AtomicBool::new(true));
        let task = tokio::spawn(ping(notify, period, api, probing.clone()));
        tracing::info!(?interval, %api, "watchdog: pinging while the host answers its own /v1/health");
        Watchdog { probing, task }
    }

    /// The host is shutting down: its listener closes, so pings go on without
    /// probing while the runtime turns.
    pub(crate) fn shutting_down(&self) {
        self.probing.store(false, Ordering::Relaxed);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn ping(notify: Notify, period: Duration, api: SocketAddr, probing: Arc<AtomicBool>) {
    // No proxy: the variables meant for outgoing requests must not send the
    // process's question about itself elsewhere.
    let http = match reqwest::Client::builder()
        .no_proxy()
        .timeout(period)
        .build()
    {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(%error, "watchdog: cannot build its HTTP client; no pings");
            return;
        }
    };
    let url = format!("http://{api}/v1/health");
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if probing.load(Ordering::Relaxed) {
            if let Err(error) = http.get(&url).send().await {
                tracing::warn!(%error, "watchdog: the host did not answer its own /v1/health; no ping");
                continue;
            }
        }
        notify.send(&message(&[("WATCHDOG", "1")]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_socket_is_a_path_or_an_abstract_name() {
        let parse = |v: &str| parse_socket(Some(OsStr::new(v)));
        assert_eq!(parse_socket(None), Ok(None));
        assert_eq!(parse(""), Ok(None));
        assert_eq!(
            parse("/run/systemd/notify"),
            Ok(Some(SocketName::Path("/run/systemd/notify".into())))
        );
        assert_eq!(
            parse("@/org/freedesktop/systemd1/notify/123"),
            Ok(Some(SocketName::Abstract(
                b"/org/freedesktop/systemd1/notify/123".to_vec()
            )))
        );
        for unsupported in ["@", "relative/notify", "vsock:2:1234"] {
            let error = parse(unsupported).unwrap_err();
            assert!(error.contains(unsupported), "{error}");
        }
    }

    #[test]
    fn watchdog_interval_is_for_this_process_only() {
        let second = Some(Duration::from_secs(1));
        assert_eq!(watchdog_interval(None, None, 7), Ok(None));
        assert_eq!(watchdog_interval(Some("1000000"), None, 7), Ok(second));
        assert_eq!(watchdog_interval(Some("1000000"), Some("7"), 7), Ok(second));
        // Inherited from a parent: not ours to answer.
        assert_eq!(watchdog_interval(Some("1000000"), Some("8"), 7), Ok(None));
        for bad in ["0", "-5", "soon", ""] {
            assert!(watchdog_interval(Some(bad), None, 7).is_err(), "{bad}");
        }
        assert!(watchdog_interval(Some("1000000"), Some("me"), 7).is_err());
    }

    #[test]
    fn messages_are_key_value_lines() {
        assert_eq!(
            message(&[("READY", "1"), ("STATUS", "two\nlines")]),
            "READY=1\nSTATUS=two lines\n"
        );
        let ready = ready_message("127.0.0.1:28080".parse().unwrap(), &["voice", "messaging"]);
        assert_eq!(
            ready,
            "READY=1\nSTATUS=serving the API on http://127.0.0.1:28080; systems: voice, messaging\n"
        );
        assert_eq!(
            stopping_message("SIGTERM"),
            "STOPPING=1\nSTATUS=stopping: SIGTERM\n"
        );
        let draining = draining_message(Duration::from_secs(600));
        assert!(
            draining.starts_with("STOPPING=1\nSTATUS=draining: ")
                && draining.ends_with("after 10m\n"),
            "{draining}"
        );
        assert_eq!(
            extend_message(Duration::from_secs(690)),
            "EXTEND_TIMEOUT_USEC=690000000\n"
        );
    }

    #[test]
    fn the_watchdog_asks_loopback_when_the_api_listens_everywhere() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(loopback(addr("0.0.0.0:80")), addr("127.0.0.1:80"));
        assert_eq!(loopback(addr("[::]:80")), addr("[::1]:80"));
        assert_eq!(loopback(addr("10.0.0.5:80")), addr("10.0.0.5:80"));
    }

    /// A host stand-in on loopback: answers every connection with `answer`
    /// (nothing at all: `None`).
    async fn host(answer: Option<&'static str>) -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                match answer {
                    Some(answer) => {
                        let _ = stream.write_all(answer.as_bytes()).await;
                    }
                    None => held.push(stream),
                }
            }
        });
        addr
    }

    /// The datagrams `receiver` gets within `window`.
    async fn received(receiver: &tokio::net::UnixDatagram, window: Duration) -> Vec<String> {
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        let _ = tokio::time::timeout(window, async {
            loop {
                let n = receiver.recv(&mut buf).await.unwrap();
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        })
        .await;
        got
    }

    /// The watchdog pings while the host answers its health, whatever the
    /// status (503 too); not while it does not answer; and without probing
    /// once the shutdown has begun.
    #[tokio::test]
    async fn the_watchdog_pings_only_while_the_host_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = tokio::net::UnixDatagram::bind(&path).unwrap();
        let notify = Notify::to(Some(SocketName::Path(path)));
        let interval = Duration::from_millis(400);

        let busy = host(Some(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ))
        .await;
        let watchdog = Watchdog::start(notify.clone(), interval, busy);
        // A ping every 100 ms: 2 s leaves room for a loaded CI machine.
        let pings = received(&receiver, Duration::from_secs(2)).await;
        assert!(
            pings.len() >= 3 && pings.iter().all(|p| p == "WATCHDOG=1\n"),
            "{pings:?}"
        );
        drop(watchdog);

        let stuck = host(None).await;
        let watchdog = Watchdog::start(notify.clone(), interval, stuck);
        let pings = received(&receiver, Duration::from_millis(700)).await;
        assert!(
            pings.is_empty(),
            "pinged for a host that never answers: {pings:?}"
        );
        watchdog.shutting_down();
        let pings = received(&receiver, Duration::from_secs(2)).await;
        assert!(!pings.is_empty(), "no pings while shutting down");
    }

    #[test]
    fn notifications_reach_a_socket_file_and_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let notify = Notify::to(Some(SocketName::Path(path)));
        notify.ready("127.0.0.1:1".parse().unwrap(), &["site"]);
        let mut buf = [0u8; 512];
        let n = receiver.recv(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"READY=1\n"));
        // Without a socket, nothing (and no panic).
        Notify::to(None).stopping("test");

        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("hotsite-notify-test-{}", std::process::id());
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            let receiver = UnixDatagram::bind_addr(&addr).unwrap();
            receiver
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let notify = Notify::to(parse_socket(Some(OsStr::new(&format!("@{name}")))).unwrap());
            notify.stopping("test");
            let n = receiver.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"STOPPING=1\nSTATUS=stopping: test\n");
        }
    }
}
