//! The voice proxy's memory under a flood of INVITEs whose trunks never
//! answer (DESIGN.md invariant 6; issue 10): the process's resident memory
//! (RSS) idle, at the peak of the flood, and while it settles after.
//!
//! ```sh
//! cargo run --release -p hotsite-voice --example flood -- [INVITES] [MAX_CALLS] [SETTLE_SECONDS] [ROUNDS]
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

use std::error::Error;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hotsite_sip::message::{parse_bytes, Branch, HeaderName, Message, Method, NewRequest, Uri};
use hotsite_voice::config::TrunkConfig;
use hotsite_voice::VoiceConfig;
use tokio::net::UdpSocket;

/// The example's stopwatch.
#[allow(clippy::disallowed_methods)] // an example program: its own driver
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

/// `VmRSS` and `VmHWM` (peak) of this process, in KiB.
fn rss_kib() -> (u64, u64) {
    let (rss, hwm, _, _) = rss_detail_kib();
    (rss, hwm)
}

/// `VmRSS`, `VmHWM`, and of the RSS: `RssAnon` (heap, stacks) and
/// `RssFile` (the program's code and libraries), in KiB.
fn rss_detail_kib() -> (u64, u64, u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (
        field("VmRSS:"),
        field("VmHWM:"),
        field("RssAnon:"),
        field("RssFile:"),
    )
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
async fn black_hole() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while socket.recv_from(&mut buf).await.is_ok() {}
    });
    addr
}

/// Responses the caller got, by kind.
#[derive(Default)]
struct Seen {
    trying: AtomicU64,
    refused: AtomicU64,
    refused_with_retry_after: AtomicU64,
    other_final: AtomicU64,
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

fn main() -> Result<(), Box<dyn Error>> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let invites: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let max_calls: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let settle: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(60);
    let rounds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);

    let mut trunks = Vec::new();
    for (i, priority) in [10, 20].into_iter().enumerate() {
        let mut trunk = TrunkConfig::new(
            &format!("t{}", i + 1),
            &black_hole().await.to_string(),
            priority,
        );
        trunk.probe.enabled = false;
        trunks.push(trunk);
    }
    let mut config = VoiceConfig::new("127.0.0.1:0", trunks);
    config.max_calls = max_calls;
    let handle = hotsite_voice::start(&config).await?;
    let proxy = handle.local_addr();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, _, anon, file) = rss_detail_kib();
    let (used, free) = malloc_kib();
    println!(
        "idle: RSS {:.1} MiB (anon {:.1}, file {:.1}; malloc in use {:.1}, free {:.1}) ({invites} INVITEs to come, max_calls {max_calls})",
        mib(idle),
        mib(anon),
        mib(file),
        mib(used),
        mib(free),
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
        for n in 0..invites {
            caller.send_to(&invite(me, proxy, base + n), proxy).await?;
            if n % 250 == 249 {
                // As fast as the proxy takes them, no faster: more than 2,000
                // datagrams ahead would overflow its socket buffer and the flood
                // would test the kernel, not the proxy. At most 10 s per step.
                let waited = now();
                while (base + n + 1).saturating_sub(handle.metrics().stats.datagrams) > 2_000
                    && waited.elapsed() < Duration::from_secs(10)
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                peak_calls = peak_calls.max(handle.metrics().sizes.calls);
                peak_rss = peak_rss.max(rss_kib().0);
            }
        }
        let sent_in = started.elapsed();
        // The proxy's last batch, and the peak it reaches right after.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            peak_calls = peak_calls.max(handle.metrics().sizes.calls);
            peak_rss = peak_rss.max(rss_kib().0);
        }
        let m = handle.metrics();
        println!(
            "flood: {invites} INVITEs sent in {:.2} s; proxy: {} admitted, {} refused over the cap; \
             caller got {} 100 Trying, {} 503 ({} with Retry-After); peak calls held {peak_calls}",
            sent_in.as_secs_f64(),
            m.stats.calls,
            m.stats.refused_over_capacity,
            seen.trying.load(Ordering::Relaxed),
            seen.refused.load(Ordering::Relaxed),
            seen.refused_with_retry_after.load(Ordering::Relaxed),
        );

        let flood_end = now();
        let mut last = idle;
        for step in 1..=settle.div_ceil(5) {
            let at = Duration::from_secs((step * 5).min(settle));
            tokio::time::sleep_until((flood_end + at).into()).await;
            let m = handle.metrics();
            let (rss, _, anon, file) = rss_detail_kib();
            let (used, free) = malloc_kib();
            last = rss;
            peak_calls = peak_calls.max(m.sizes.calls);
            println!(
                "+{:>2} s: RSS {:.1} MiB (anon {:.1}, file {:.1}; malloc in use {:.1}, free {:.1}); calls {} branches {} timers {} capacity {}",
                at.as_secs(),
                mib(last),
                mib(anon),
                mib(file),
                mib(used),
                mib(free),
                m.sizes.calls,
                m.sizes.branches,
                m.sizes.timers,
                m.sizes.capacity,
            );
        }
        // The true peak: the kernel's high-water mark of RSS.
        peak_rss = peak_rss.max(rss_kib().1);
        println!(
            "result (round {round}): idle {:.1} MiB, peak {:.1} MiB, +{settle} s {:.1} MiB ({:+.0} % of idle); \
             peak calls held {peak_calls} (max_calls {max_calls})",
            mib(idle),
            mib(peak_rss),
            mib(last),
            (last as f64 / idle as f64 - 1.0) * 100.0
        );
    }
    handle.shutdown().await;
    Ok(())
}
