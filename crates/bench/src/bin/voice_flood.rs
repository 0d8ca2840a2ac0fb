//! The voice proxy's memory under a flood of INVITEs whose trunks never
//! answer (DESIGN.md invariant 6; issue 10): the process's resident memory
//! (RSS) idle, at the peak of the flood, and while it settles after.
//!
//! ```sh
//! cargo run --release -p hotsite-bench --bin voice_flood -- [INVITES] [MAX_CALLS] [SETTLE_SECONDS] [ROUNDS]
//! ```
//!
//! Defaults: 20,000 INVITEs, `max_calls` 10,000 (the default), 60 s, one
//! round (more rounds flood again after each settling, to see whether what
//! stays grows). The
//! proxy runs in this process on a two-worker tokio runtime as in hotsite,
//! with default timers, two trunks that read and drop everything (no
//! probes), and one caller on 127.0.0.1 that sends the INVITEs as fast as
//! the socket takes them and never ACKs. Prints RSS (VmRSS of
//! /proc/self/status) and the proxy's state every 5 s. Linux only.
//!
//! # Against a running daemon
//!
//! ```sh
//! voice_flood --target 127.0.0.1:PORT --pid PID --trunks 127.0.0.1:T1,127.0.0.1:T2 \
//!       [--metrics 127.0.0.1:API_PORT] [--every SECONDS] [--idle-wait SECONDS] \
//!       [INVITES] [MAX_CALLS] [SETTLE_SECONDS] [ROUNDS]
//! ```
//!
//! Floods the proxy listening at `--target` (a `hotsite run` with a
//! `[voice]` section) and samples the RSS of process `--pid` instead of its
//! own. The silent trunks are then UDP sockets this program binds at the
//! `--trunks` addresses, which the daemon's config must name as its
//! `[[voice.trunks]]` with `probe = { enabled = false }`. With `--metrics`
//! (the daemon's `api.listen`) it also reads the calls held and refused from
//! its `/metrics`. `MAX_CALLS` is then only what the daemon was configured
//! with, for the printout. Samples every `--every` seconds (default 10),
//! after waiting `--idle-wait` seconds (default 5) for the idle figure.
//! crates/bench/voice/daemon_flood.sh runs the whole measurement.

use std::error::Error;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hotsite_sip::message::{parse_bytes, Branch, HeaderName, Message, Method, NewRequest, Uri};
use hotsite_voice::config::TrunkConfig;
use hotsite_voice::{VoiceConfig, VoiceHandle};
use tokio::net::UdpSocket;

/// The program's stopwatch.
#[allow(clippy::disallowed_methods)] // a benchmark program: its own driver
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

/// Memory figures of a process, in KiB, from `/proc/PID/status`.
#[derive(Clone, Copy, Default)]
struct Rss {
    /// `VmRSS`.
    rss: u64,
    /// `VmHWM`: the kernel's high-water mark of RSS.
    hwm: u64,
    /// `RssAnon`: heap, stacks.
    anon: u64,
    /// `RssFile`: the program's code and libraries.
    file: u64,
}

/// Whose memory is measured: this process (`None`) or another one.
fn read_rss(pid: Option<u32>) -> Rss {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Rss {
        rss: field("VmRSS:"),
        hwm: field("VmHWM:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
    }
}

/// glibc's view of the heap, in KiB: bytes in use (`uordblks` plus
/// `hblkhd`, the mmapped blocks) and free but kept (`fordblks`). Tells live
/// memory from memory the allocator holds on to.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn malloc_kib() -> (u64, u64) {
    // SAFETY: mallinfo2 only reads glibc's counters under its locks.
    #[allow(unsafe_code)]
    let info = unsafe { libc::mallinfo2() };
    (
        ((info.uordblks + info.hblkhd) / 1024) as u64,
        (info.fordblks / 1024) as u64,
    )
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn malloc_kib() -> (u64, u64) {
    (0, 0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A trunk that never answers: reads and drops.
async fn black_hole(at: &str) -> Result<SocketAddr, Box<dyn Error>> {
    let socket = UdpSocket::bind(at).await?;
    let addr = socket.local_addr()?;
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while socket.recv_from(&mut buf).await.is_ok() {}
    });
    Ok(addr)
}

/// Responses the caller got, by kind.
#[derive(Default)]
struct Seen {
    trying: AtomicU64,
    refused: AtomicU64,
    refused_with_retry_after: AtomicU64,
    other_final: AtomicU64,
}

impl Seen {
    /// INVITEs answered at once: each gets one `100 Trying` or one 503.
    fn answered(&self) -> u64 {
        self.trying.load(Ordering::Relaxed) + self.refused.load(Ordering::Relaxed)
    }
}

fn invite(me: SocketAddr, proxy: SocketAddr, n: u64) -> Bytes {
    let uri = |text: String| Uri::parse(text).unwrap();
    NewRequest {
        method: Method::Invite,
        uri: uri(format!("sip:+4420{n}@{proxy}")),
        from: uri(format!("sip:flood@{me}")),
        from_tag: format!("f{n}"),
        to: uri(format!("sip:+4420{n}@{proxy}")),
        call_id: format!("flood-{n}"),
        cseq: 1,
        transport: "UDP".into(),
        sent_by: me.to_string(),
        branch: Branch::from_string(format!("z9hG4bKflood{n}")),
        max_forwards: 70,
        contact: Some(uri(format!("sip:flood@{me}"))),
    }
    .build()
    .to_bytes()
}

/// The proxy under test.
enum Target {
    /// Started here, on this process's runtime.
    InProcess(VoiceHandle),
    /// A daemon: its SIP address, its PID, and its HTTP API for `/metrics`.
    External {
        proxy: SocketAddr,
        pid: u32,
        metrics: Option<SocketAddr>,
    },
}

/// The proxy's state as far as it can be seen from here.
#[derive(Default)]
struct State {
    /// Datagrams the proxy read (in process only).
    datagrams: Option<u64>,
    calls: Option<usize>,
    branches: Option<usize>,
    timers: Option<usize>,
    capacity: Option<usize>,
    admitted: Option<u64>,
    refused: Option<u64>,
}

impl Target {
    fn proxy(&self) -> SocketAddr {
        match self {
            Target::InProcess(handle) => handle.local_addr(),
            Target::External { proxy, .. } => *proxy,
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Target::InProcess(_) => None,
            Target::External { pid, .. } => Some(*pid),
        }
    }

    fn rss(&self) -> Rss {
        read_rss(self.pid())
    }

    fn state(&self) -> State {
        match self {
            Target::InProcess(handle) => {
                let m = handle.metrics();
                State {
                    datagrams: Some(m.stats.datagrams),
                    calls: Some(m.sizes.calls),
                    branches: Some(m.sizes.branches),
                    timers: Some(m.sizes.timers),
                    capacity: Some(m.sizes.capacity),
                    admitted: Some(m.stats.calls),
                    refused: Some(m.stats.refused_over_capacity),
                }
            }
            Target::External {
                metrics: Some(api), ..
            } => {
                let text = scrape(*api).unwrap_or_default();
                let gauge = |name: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                        .and_then(|v| v.trim().parse::<f64>().ok())
                };
                State {
                    calls: gauge("hotsite_voice_calls_in_progress").map(|v| v as usize),
                    refused: gauge("hotsite_voice_calls_refused_total").map(|v| v as u64),
                    ..State::default()
                }
            }
            Target::External { metrics: None, .. } => State::default(),
        }
    }

    /// How far the proxy has got with what was sent: datagrams it read in
    /// process, INVITEs it answered otherwise.
    fn progress(&self, seen: &Seen) -> u64 {
        self.state().datagrams.unwrap_or_else(|| seen.answered())
    }
}

/// `GET /metrics` of the daemon's API, blocking, with a short timeout
/// (called at most every few seconds, outside the flood's loop).
fn scrape(api: SocketAddr) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect_timeout(&api, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "?".to_owned(), |v| v.to_string())
}

fn main() -> Result<(), Box<dyn Error>> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}

/// The command line: `--name value` options anywhere, the rest positional.
struct Args {
    invites: u64,
    max_calls: usize,
    settle: u64,
    rounds: u64,
    target: Option<SocketAddr>,
    pid: Option<u32>,
    trunks: Vec<String>,
    metrics: Option<SocketAddr>,
    every: Option<u64>,
    idle_wait: u64,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut positional = Vec::new();
    let mut args = Args {
        invites: 20_000,
        max_calls: 10_000,
        settle: 60,
        rounds: 1,
        target: None,
        pid: None,
        trunks: Vec::new(),
        metrics: None,
        every: None,
        idle_wait: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let Some(name) = arg.strip_prefix("--") else {
            positional.push(arg);
            continue;
        };
        let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
        match name {
            "target" => args.target = Some(value.parse()?),
            "pid" => args.pid = Some(value.parse()?),
            "trunks" => args.trunks = value.split(',').map(str::to_owned).collect(),
            "metrics" => args.metrics = Some(value.parse()?),
            "every" => args.every = Some(value.parse()?),
            "idle-wait" => args.idle_wait = value.parse()?,
            _ => return Err(format!("unknown option --{name}").into()),
        }
    }
    let mut positional = positional.into_iter();
    if let Some(v) = positional.next() {
        args.invites = v.parse()?;
    }
    if let Some(v) = positional.next() {
        args.max_calls = v.parse()?;
    }
    if let Some(v) = positional.next() {
        args.settle = v.parse()?;
    }
    if let Some(v) = positional.next() {
        args.rounds = v.parse()?;
    }
    if args.target.is_some() != args.pid.is_some() {
        return Err("--target and --pid go together".into());
    }
    if args.target.is_some() && args.trunks.len() != 2 {
        return Err("--target needs --trunks ADDR,ADDR (the daemon's two trunks)".into());
    }
    Ok(args)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let (invites, max_calls, settle, rounds) =
        (args.invites, args.max_calls, args.settle, args.rounds);

    let target = match (args.target, args.pid) {
        (Some(proxy), Some(pid)) => {
            for at in &args.trunks {
                black_hole(at).await?;
            }
            Target::External {
                proxy,
                pid,
                metrics: args.metrics,
            }
        }
        _ => {
            let mut trunks = Vec::new();
            for (i, priority) in [10, 20].into_iter().enumerate() {
                let mut trunk = TrunkConfig::new(
                    &format!("t{}", i + 1),
                    &black_hole("127.0.0.1:0").await?.to_string(),
                    priority,
                );
                trunk.probe.enabled = false;
                trunks.push(trunk);
            }
            let mut config = VoiceConfig::new("127.0.0.1:0", trunks);
            config.max_calls = max_calls;
            Target::InProcess(
                hotsite_voice::start(&config, &hotsite_host::Deps::detached(), None)
                    .await?
                    .0,
            )
        }
    };
    let external = target.pid().is_some();
    let every = args.every.unwrap_or(if external { 10 } else { 5 }).max(1);
    let proxy = target.proxy();
    let whose = match target.pid() {
        Some(pid) => format!("PID {pid} (proxy at {proxy})"),
        None => "this process".to_owned(),
    };

    tokio::time::sleep(Duration::from_secs(if external {
        args.idle_wait
    } else {
        2
    }))
    .await;
    let idle_rss = target.rss();
    let idle = idle_rss.rss;
    let heap = if external {
        String::new()
    } else {
        let (used, free) = malloc_kib();
        format!("; malloc in use {:.1}, free {:.1}", mib(used), mib(free))
    };
    println!(
        "idle ({whose}): RSS {:.1} MiB (anon {:.1}, file {:.1}{heap}) ({invites} INVITEs to come, max_calls {max_calls})",
        mib(idle),
        mib(idle_rss.anon),
        mib(idle_rss.file),
    );

    // A large receive buffer: the answers must not be lost at the caller.
    let caller = {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
        socket.set_recv_buffer_size(4 << 20)?;
        socket.set_nonblocking(true)?;
        socket.bind(&"127.0.0.1:0".parse::<SocketAddr>()?.into())?;
        Arc::new(UdpSocket::from_std(socket.into())?)
    };
    let me = caller.local_addr()?;
    let seen = Arc::new(Seen::default());
    tokio::spawn({
        let (caller, seen) = (caller.clone(), seen.clone());
        async move {
            let mut buf = vec![0u8; 65_535];
            while let Ok((n, _)) = caller.recv_from(&mut buf).await {
                let Ok(Message::Response(r)) = parse_bytes(Bytes::copy_from_slice(&buf[..n]))
                else {
                    continue;
                };
                match r.status.as_u16() {
                    100 => seen.trying.fetch_add(1, Ordering::Relaxed),
                    503 if r.headers.value(HeaderName::RetryAfter).is_some() => {
                        seen.refused.fetch_add(1, Ordering::Relaxed);
                        seen.refused_with_retry_after
                            .fetch_add(1, Ordering::Relaxed)
                    }
                    503 => seen.refused.fetch_add(1, Ordering::Relaxed),
                    _ => seen.other_final.fetch_add(1, Ordering::Relaxed),
                };
            }
        }
    });

    for round in 1..=rounds {
        let base = (round - 1) * invites;
        let started = now();
        let mut peak_calls = 0;
        let mut peak_rss = idle;
        // Against a daemon, progress is what it answered, which starts at
        // what earlier rounds got answered, not at what they sent.
        let offset = if external {
            base.saturating_sub(seen.answered())
        } else {
            0
        };
        for n in 0..invites {
            caller.send_to(&invite(me, proxy, base + n), proxy).await?;
            if n % 250 == 249 {
                // As fast as the proxy takes them, no faster: more than 2,000
                // datagrams ahead would overflow its socket buffer and the flood
                // would test the kernel, not the proxy. At most 10 s per step.
                let waited = now();
                while (base + n + 1).saturating_sub(target.progress(&seen) + offset) > 2_000
                    && waited.elapsed() < Duration::from_secs(10)
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                if !external {
                    peak_calls = peak_calls.max(target.state().calls.unwrap_or(0));
                }
                peak_rss = peak_rss.max(target.rss().rss);
            }
        }
        let sent_in = started.elapsed();
        // The proxy's last batch, and the peak it reaches right after.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if !external {
                peak_calls = peak_calls.max(target.state().calls.unwrap_or(0));
            }
            peak_rss = peak_rss.max(target.rss().rss);
        }
        let s = target.state();
        peak_calls = peak_calls.max(s.calls.unwrap_or(0));
        println!(
            "flood: {invites} INVITEs sent in {:.2} s; proxy (since it started): {} admitted, {} refused over the cap; \
             caller (all rounds): {} 100 Trying, {} 503 ({} with Retry-After), {} other responses; calls held {}",
            sent_in.as_secs_f64(),
            opt(s.admitted),
            opt(s.refused),
            seen.trying.load(Ordering::Relaxed),
            seen.refused.load(Ordering::Relaxed),
            seen.refused_with_retry_after.load(Ordering::Relaxed),
            seen.other_final.load(Ordering::Relaxed),
            opt(s.calls),
        );

        let flood_end = now();
        let mut last = idle;
        let mut at_60 = None;
        for step in 1..=settle.div_ceil(every) {
            let at = Duration::from_secs((step * every).min(settle));
            tokio::time::sleep_until((flood_end + at).into()).await;
            let s = target.state();
            let r = target.rss();
            last = r.rss;
            if at.as_secs() == 60 {
                at_60 = Some(last);
            }
            peak_calls = peak_calls.max(s.calls.unwrap_or(0));
            let heap = if external {
                String::new()
            } else {
                let (used, free) = malloc_kib();
                format!("; malloc in use {:.1}, free {:.1}", mib(used), mib(free))
            };
            // Of the state, what can be seen: all of it in process, the
            // calls held (from /metrics) of a daemon.
            let state = if external {
                format!("calls {}", opt(s.calls))
            } else {
                format!(
                    "calls {} branches {} timers {} capacity {}",
                    opt(s.calls),
                    opt(s.branches),
                    opt(s.timers),
                    opt(s.capacity)
                )
            };
            println!(
                "+{:>2} s: RSS {:.1} MiB ({:+.0} % of idle; anon {:.1}, file {:.1}{heap}); {state}; \
                 other responses so far {} (final answers and their retransmissions, never ACKed)",
                at.as_secs(),
                mib(last),
                (last as f64 / idle as f64 - 1.0) * 100.0,
                mib(r.anon),
                mib(r.file),
                seen.other_final.load(Ordering::Relaxed),
            );
        }
        // The kernel's high-water mark of RSS: the true peak of the first
        // round (of a daemon: since it started, so also what it did before).
        let hwm = target.rss().hwm;
        if round == 1 {
            peak_rss = peak_rss.max(hwm);
        }
        let sixty = at_60.map_or_else(String::new, |at| {
            format!(
                "+60 s {:.1} MiB ({:+.0} % of idle), ",
                mib(at),
                (at as f64 / idle as f64 - 1.0) * 100.0
            )
        });
        println!(
            "result (round {round}): idle {:.1} MiB, peak {:.1} MiB (VmHWM {:.1}), {sixty}+{settle} s {:.1} MiB ({:+.0} % of idle); \
             peak calls held {peak_calls} (max_calls {max_calls})",
            mib(idle),
            mib(peak_rss),
            mib(hwm),
            mib(last),
            (last as f64 / idle as f64 - 1.0) * 100.0
        );
    }
    if let Target::InProcess(handle) = target {
        handle.shutdown().await;
    }
    Ok(())
}
