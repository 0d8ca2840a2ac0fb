//! The relay's tokio side: binds the media ports the proxy core asks for,
//! runs one task per anchored call, and calls the [`MediaTap`].
//!
//! # One task per call
//!
//! A call's task owns its sockets (four per stream) and its
//! [`CallMedia`] (latching, timeout), so the per-packet path takes no lock
//! and shares no cache line with other calls: the task waits on all its
//! sockets at once (`poll_recv_from` on each, which costs no syscall for a
//! socket tokio knows is not readable), and after a wake-up reads every
//! readable socket until it would block (at most [`DRAIN_BUDGET`] datagrams)
//! before waiting again. Per datagram: one `recvfrom` into the task's
//! buffer, [`CallMedia::handle_packet`] (a few compares), the tap's
//! `packet` (given the datagram before it is forwarded, whatever happens
//! to the forwarding), one non-blocking `sendto` from the other leg's
//! socket. No allocation: the buffer is the task's, made once. The clocks
//! are read once per wake-up, not per datagram. A full send buffer drops
//! the datagram (counted) rather than delay the call's other packets: late
//! RTP is useless. Counters are added to shared atomics once per wake-up.
//!
//! One task per socket would need the other leg's latched address across
//! tasks (a lock or atomics per packet); one task for all calls would need
//! a poll set of its own. Per call, everything a datagram needs is local.
//!
//! # Order of the tap's calls
//!
//! Everything about a call reaches its task through one channel, in the
//! order the core decided it, and the task makes every tap call itself:
//! `call_anchored`, then `sdp` and `packet` as they come, then `call_ended`
//! as the last thing before its sockets close. Datagrams that arrive before
//! the call was anchored (before its INVITE left for a trunk: in practice
//! never) are relayed but not tapped.
//!
//! One Call-ID can have two tasks at once: the media of an INVITE refused
//! with 401/407 is being closed while the caller's new INVITE (same
//! Call-ID) is anchored again. The tap keys calls by Call-ID, so the new
//! task waits for the old one to end (its `call_ended` made) before it does
//! anything; the old one ends as soon as it reads its `Close`.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use hotsite_host::clock;
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::call::{socket_leg, CallMedia, Latch, Protocol, RelayTimers, Verdict};
use super::sessions::{AnchorInfo, MediaOutput, MediaSetup};
use super::tap::{AnchoredCall, Leg, MediaDirection, MediaEnd, MediaTap};
use crate::proxy::Proxy;

/// The largest datagram relayed whole; RTP stays under the path MTU, so
/// this is room to spare (a longer one would be cut).
pub const MAX_DATAGRAM: usize = 2048;

/// Datagrams read per wake-up of a call's task at most, before it lets the
/// other tasks run.
pub const DRAIN_BUDGET: usize = 64;

/// The relay's counters since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Datagrams from leg a relayed to leg b.
    pub packets_a_to_b: u64,
    /// Their bytes.
    pub bytes_a_to_b: u64,
    /// Datagrams from leg b relayed to leg a.
    pub packets_b_to_a: u64,
    /// Their bytes.
    pub bytes_b_to_a: u64,
    /// Datagrams refused: not from the latched source (or not RTP/RTCP).
    pub refused: u64,
    /// Datagrams refused because their source IP is neither the one the
    /// leg's SDP named nor the latched one (`strict_source`).
    pub refused_foreign: u64,
    /// Datagrams accepted with nowhere to go yet (the other leg's address
    /// unknown), or that could not be sent (send buffer full, error).
    pub undeliverable: u64,
    /// Sockets latched to their first source.
    pub latches: u64,
    /// Sockets re-latched to a new source after silence (handovers).
    pub relatches: u64,
}

/// The relay tasks' shared counters; a reader of them for status and
/// metrics (read at scrape time: media flows without waking the proxy).
#[derive(Clone, Default)]
pub struct RelayCounters(Arc<Counters>);

impl RelayCounters {
    /// The counters now.
    pub fn stats(&self) -> RelayStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let c = &self.0;
        RelayStats {
            packets_a_to_b: load(&c.packets[0]),
            bytes_a_to_b: load(&c.bytes[0]),
            packets_b_to_a: load(&c.packets[1]),
            bytes_b_to_a: load(&c.bytes[1]),
            refused: load(&c.refused),
            refused_foreign: load(&c.refused_foreign),
            undeliverable: load(&c.undeliverable),
            latches: load(&c.latches),
            relatches: load(&c.relatches),
        }
    }
}

#[derive(Default)]
struct Counters {
    packets: [AtomicU64; 2],
    bytes: [AtomicU64; 2],
    refused: AtomicU64,
    refused_foreign: AtomicU64,
    undeliverable: AtomicU64,
    latches: AtomicU64,
    relatches: AtomicU64,
}

/// One task's counts since its last flush.
#[derive(Default)]
struct LocalCounts {
    packets: [u64; 2],
    bytes: [u64; 2],
    refused: u64,
    refused_foreign: u64,
    undeliverable: u64,
    latches: u64,
    relatches: u64,
}

impl LocalCounts {
    fn flush(&mut self, into: &Counters) {
        let add = |counter: &AtomicU64, n: u64| {
            if n != 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        };
        for leg in 0..2 {
            add(&into.packets[leg], self.packets[leg]);
            add(&into.bytes[leg], self.bytes[leg]);
        }
        add(&into.refused, self.refused);
        add(&into.refused_foreign, self.refused_foreign);
        add(&into.undeliverable, self.undeliverable);
        add(&into.latches, self.latches);
        add(&into.relatches, self.relatches);
        *self = LocalCounts::default();
    }
}

/// What a call's task is told.
enum Command {
    Anchored {
        info: AnchorInfo,
        started_unix_ms: u64,
    },
    Moved {
        info: AnchorInfo,
        at_unix_ns: u64,
    },
    AddStream {
        stream: usize,
        sockets: [Option<UdpSocket>; 4],
    },
    Protocol {
        stream: usize,
        protocol: Protocol,
    },
    Remote {
        stream: usize,
        leg: Leg,
        rtp: Option<SocketAddr>,
        rtcp: Option<SocketAddr>,
    },
    Sdp {
        from: Leg,
        at_unix_ns: u64,
        payload_types: Vec<(u8, String)>,
        direction: MediaDirection,
    },
    Hold(bool),
    Answered(Instant),
    Close {
        end: MediaEnd,
        at_unix_ns: u64,
    },
}

/// A call's task ended and closed its sockets; `true` if by media timeout.
pub(crate) type Ended = (u64, bool);

/// The relay, owned by the voice driver's task.
pub(crate) struct Relay {
    address: IpAddr,
    timers: RelayTimers,
    strict_source: bool,
    tap: Option<Arc<dyn MediaTap>>,
    /// Bound pairs not yet given to a call, by RTP port.
    ready: HashMap<u16, [UdpSocket; 2]>,
    calls: HashMap<u64, mpsc::UnboundedSender<Command>>,
    /// The last task of each Call-ID whose task has not reported its end
    /// yet, and each such task's Call-ID (see "Order of the tap's calls").
    last_task: HashMap<Arc<str>, (u64, tokio::task::JoinHandle<()>)>,
    call_ids: HashMap<u64, Arc<str>>,
    ended_tx: mpsc::UnboundedSender<Ended>,
    ended_rx: mpsc::UnboundedReceiver<Ended>,
    counters: Arc<Counters>,
    /// Bind failures since the last warning, and when that was.
    bind_failures: u64,
    warned_at: Option<Instant>,
}

/// At most one warning about unbindable ports per this.
const WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl Relay {
    pub(crate) fn new(setup: &MediaSetup, tap: Option<Arc<dyn MediaTap>>) -> Relay {
        let (ended_tx, ended_rx) = mpsc::unbounded_channel();
        Relay {
            address: setup.address,
            timers: setup.timers,
            strict_source: setup.strict_source,
            tap,
            ready: HashMap::new(),
            calls: HashMap::new(),
            last_task: HashMap::new(),
            call_ids: HashMap::new(),
            ended_tx,
            ended_rx,
            counters: Arc::new(Counters::default()),
            bind_failures: 0,
            warned_at: None,
        }
    }

    /// Does what the proxy's media outputs say (binds, tasks, commands),
    /// feeding bind results back until it has nothing more.
    pub(crate) fn service(&mut self, proxy: &mut Proxy) {
        if !proxy.has_media_output() {
            return;
        }
        let (now, wall) = (clock::now(), clock::wall());
        let unix_ns = |at: Instant| unix_ns(wall, now, at);
        while let Some(output) = proxy.poll_media() {
            match output {
                MediaOutput::Bind(port) => match bind_pair(self.address, port) {
                    Ok(pair) => {
                        self.ready.insert(port, pair);
                        proxy.handle_media_bound(port);
                    }
                    Err(error) => {
                        // Once per 10 s at most: a range another program
                        // holds would otherwise log a line per pair.
                        self.bind_failures += 1;
                        if self
                            .warned_at
                            .is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY)
                        {
                            tracing::warn!(
                                port,
                                %error,
                                failures = self.bind_failures,
                                "media port pair cannot be bound; skipped for a minute"
                            );
                            self.warned_at = Some(now);
                            self.bind_failures = 0;
                        }
                        proxy.handle_media_bind_failed(now, port);
                    }
                },
                MediaOutput::Open {
                    id,
                    call_id,
                    streams,
                } => {
                    let mut sockets = Vec::with_capacity(streams.len() * 4);
                    for pairs in &streams {
                        sockets.extend(self.take_stream(*pairs));
                    }
                    let (commands, received) = mpsc::unbounded_channel();
                    // The same Call-ID's previous task, if still running,
                    // ends before this one starts (the tap's order).
                    let before = self.last_task.remove(&call_id).map(|(_, task)| task);
                    let task = CallTask {
                        id,
                        call_id: call_id.clone(),
                        media: CallMedia::new(self.timers, streams.len())
                            .with_strict_source(self.strict_source),
                        sockets,
                        tap: self.tap.clone(),
                        anchored: None,
                        counters: self.counters.clone(),
                        local: LocalCounts::default(),
                    };
                    let handle = tokio::spawn(task.run(received, self.ended_tx.clone(), before));
                    self.calls.insert(id, commands);
                    self.call_ids.insert(id, call_id.clone());
                    self.last_task.insert(call_id, (id, handle));
                }
                MediaOutput::Moved { id, at, info } => self.tell(
                    id,
                    Command::Moved {
                        info,
                        at_unix_ns: unix_ns(at),
                    },
                ),
                MediaOutput::Protocol {
                    id,
                    stream,
                    protocol,
                } => self.tell(id, Command::Protocol { stream, protocol }),
                MediaOutput::AddStream { id, stream, ports } => {
                    let sockets = self.take_stream(Some(ports));
                    self.tell(id, Command::AddStream { stream, sockets });
                }
                MediaOutput::Remote {
                    id,
                    stream,
                    leg,
                    rtp,
                    rtcp,
                } => self.tell(
                    id,
                    Command::Remote {
                        stream,
                        leg,
                        rtp,
                        rtcp,
                    },
                ),
                MediaOutput::Anchored { id, at, info } => self.tell(
                    id,
                    Command::Anchored {
                        info,
                        started_unix_ms: unix_ns(at) / 1_000_000,
                    },
                ),
                MediaOutput::Sdp {
                    id,
                    from,
                    at,
                    payload_types,
                    direction,
                } => self.tell(
                    id,
                    Command::Sdp {
                        from,
                        at_unix_ns: unix_ns(at),
                        payload_types,
                        direction,
                    },
                ),
                MediaOutput::Hold { id, on_hold } => self.tell(id, Command::Hold(on_hold)),
                MediaOutput::Answered { id, at } => self.tell(id, Command::Answered(at)),
                MediaOutput::Close { id, at, end } => {
                    // A task that already ended (its own timeout) has
                    // reported that; the core frees its ports either way.
                    self.tell(
                        id,
                        Command::Close {
                            end,
                            at_unix_ns: unix_ns(at),
                        },
                    );
                    self.calls.remove(&id);
                }
            }
        }
    }

    /// The next call task that ended (waits forever if none will).
    pub(crate) async fn ended(&mut self) -> Ended {
        match self.ended_rx.recv().await {
            Some(ended) => ended,
            // Cannot happen: the relay holds a sender.
            None => std::future::pending().await,
        }
    }

    /// A task reported its end: it is forgotten.
    pub(crate) fn forget(&mut self, id: u64) {
        self.calls.remove(&id);
        if let Some(call_id) = self.call_ids.remove(&id) {
            if self
                .last_task
                .get(&call_id)
                .is_some_and(|(last, _)| *last == id)
            {
                self.last_task.remove(&call_id);
            }
        }
    }

    /// A reader of the counters.
    pub(crate) fn counters(&self) -> RelayCounters {
        RelayCounters(self.counters.clone())
    }

    fn tell(&self, id: u64, command: Command) {
        if let Some(commands) = self.calls.get(&id) {
            // A task that has ended drops its receiver; nothing to tell it.
            let _ = commands.send(command);
        }
    }

    /// The four sockets of a stream (`[a, b]` pairs), from the ready ones.
    fn take_stream(&mut self, pairs: Option<[u16; 2]>) -> [Option<UdpSocket>; 4] {
        let Some([a, b]) = pairs else {
            return [None, None, None, None];
        };
        let mut take = |port: u16| match self.ready.remove(&port) {
            Some([rtp, rtcp]) => [Some(rtp), Some(rtcp)],
            None => {
                tracing::error!(port, "media port pair given to a call was not bound");
                [None, None]
            }
        };
        let [a_rtp, a_rtcp] = take(a);
        let [b_rtp, b_rtcp] = take(b);
        [a_rtp, a_rtcp, b_rtp, b_rtcp]
    }
}

/// One call's task state.
struct CallTask {
    id: u64,
    call_id: Arc<str>,
    media: CallMedia,
    /// By socket index (`call.rs`): stream * 4 + leg * 2 + kind.
    sockets: Vec<Option<UdpSocket>>,
    tap: Option<Arc<dyn MediaTap>>,
    /// When the call was anchored (ms since the Unix epoch), once it is.
    anchored: Option<u64>,
    counters: Arc<Counters>,
    local: LocalCounts,
}

impl CallTask {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        ended: mpsc::UnboundedSender<Ended>,
        before: Option<tokio::task::JoinHandle<()>>,
    ) {
        if let Some(before) = before {
            // Ends once it reads the Close it was sent; it cannot fail
            // but by a panic, which is no reason to stop this call.
            let _ = before.await;
        }
        let mut buf = vec![0u8; MAX_DATAGRAM].into_boxed_slice();
        let sleep = tokio::time::sleep_until(clock::now().into());
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        let mut next = 0;
        let (end, at_unix_ns, timed_out) = loop {
            // The deadline only moves later while RTP flows: the timer is
            // set again only when it fires or comes earlier (hold ends).
            if let Some(at) = self.media.poll_timeout() {
                if armed.is_none_or(|armed| at < armed) {
                    sleep.as_mut().reset(at.into());
                    armed = Some(at);
                }
            }
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(Command::Close { end, at_unix_ns }) => break (end, at_unix_ns, false),
                    Some(command) => self.apply(command),
                    // The voice system stopped.
                    None => break (MediaEnd::Failed, unix_ns_now(), false),
                },
                () = &mut sleep, if armed.is_some() => {
                    armed = None;
                    if self.media.handle_timeout(clock::now()) {
                        tracing::info!(call_id = %self.call_id, "media timeout: no RTP from either leg");
                        break (MediaEnd::Timeout, unix_ns_now(), true);
                    }
                },
                (index, received) = poll_fn(|cx| poll_sockets(cx, &self.sockets, &mut buf, &mut next)) => {
                    let now = clock::now();
                    let arrival = if self.tap.is_some() { unix_ns_now() } else { 0 };
                    match received {
                        Ok((len, from)) => self.on_datagram(now, arrival, index, from, &buf[..len]),
                        Err(error) => tracing::debug!(%error, "media receive failed"),
                    }
                    self.drain(now, arrival, &mut buf);
                    self.local.flush(&self.counters);
                },
            }
        };
        if self.anchored.is_some() {
            if let Some(tap) = &self.tap {
                tap.call_ended(&self.call_id, at_unix_ns, end);
            }
        }
        self.local.flush(&self.counters);
        self.sockets.clear();
        let _ = ended.send((self.id, timed_out));
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Anchored {
                info,
                started_unix_ms,
            } => {
                self.anchored = Some(started_unix_ms);
                if let Some(tap) = &self.tap {
                    tap.call_anchored(&AnchoredCall {
                        call_id: self.call_id.clone(),
                        trunk: info.trunk.to_string(),
                        group: info.group.to_string(),
                        media_region: info.media_region.to_string(),
                        failover_region: info.failover_region.to_string(),
                        started_unix_ms,
                    });
                }
            }
            Command::Moved { info, at_unix_ns } => {
                if let (Some(started_unix_ms), Some(tap)) = (self.anchored, &self.tap) {
                    tap.call_moved(
                        &AnchoredCall {
                            call_id: self.call_id.clone(),
                            trunk: info.trunk.to_string(),
                            group: info.group.to_string(),
                            media_region: info.media_region.to_string(),
                            failover_region: info.failover_region.to_string(),
                            started_unix_ms,
                        },
                        at_unix_ns,
                    );
                }
            }
            Command::Protocol { stream, protocol } => self.media.set_protocol(stream, protocol),
            Command::AddStream { stream, sockets } => {
                while self.media.streams() <= stream {
                    self.media.add_stream();
                }
                self.sockets.resize_with(self.media.streams() * 4, || None);
                for (offset, socket) in sockets.into_iter().enumerate() {
                    self.sockets[stream * 4 + offset] = socket;
                }
            }
            Command::Remote {
                stream,
                leg,
                rtp,
                rtcp,
            } => self.media.set_remote(stream, leg, rtp, rtcp),
            Command::Sdp {
                from,
                at_unix_ns,
                payload_types,
                direction,
            } => {
                if let (Some(_), Some(tap)) = (self.anchored, &self.tap) {
                    tap.sdp(&self.call_id, from, at_unix_ns, &payload_types, direction);
                }
            }
            Command::Hold(on_hold) => self.media.set_hold(on_hold),
            Command::Answered(at) => self.media.answered(at),
            Command::Close { .. } => {}
        }
    }

    /// Reads every readable socket until it would block, within the budget.
    fn drain(&mut self, now: Instant, arrival: u64, buf: &mut [u8]) {
        let mut budget = DRAIN_BUDGET;
        loop {
            let mut got = false;
            for index in 0..self.sockets.len() {
                let Some(socket) = &self.sockets[index] else {
                    continue;
                };
                match socket.try_recv_from(buf) {
                    Ok((len, from)) => {
                        self.on_datagram(now, arrival, index, from, &buf[..len]);
                        got = true;
                        budget -= 1;
                        if budget == 0 {
                            return;
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => tracing::debug!(%error, "media receive failed"),
                }
            }
            if !got {
                return;
            }
        }
    }

    fn on_datagram(
        &mut self,
        now: Instant,
        arrival: u64,
        index: usize,
        from: SocketAddr,
        datagram: &[u8],
    ) {
        let to = match self.media.handle_packet(now, index, from, datagram) {
            Verdict::Refused => {
                self.local.refused += 1;
                return;
            }
            Verdict::ForeignSource => {
                self.local.refused_foreign += 1;
                tracing::debug!(call_id = %self.call_id, index, %from, "media from a foreign IP refused");
                return;
            }
            Verdict::Relay { to, latch } => {
                match latch {
                    Some(Latch::Latched) => self.local.latches += 1,
                    Some(Latch::Relatched) => {
                        self.local.relatches += 1;
                        tracing::debug!(call_id = %self.call_id, index, %from, "media source re-latched");
                    }
                    None => {}
                }
                to
            }
        };
        let leg = socket_leg(index);
        if self.anchored.is_some() {
            if let Some(tap) = &self.tap {
                tap.packet(&self.call_id, leg, arrival, datagram);
            }
        }
        let out = self.sockets.get(index ^ 2).and_then(Option::as_ref);
        match (to, out) {
            (Some(to), Some(out)) if out.try_send_to(datagram, to).is_ok() => {
                self.local.packets[leg.index()] += 1;
                self.local.bytes[leg.index()] += datagram.len() as u64;
            }
            _ => self.local.undeliverable += 1,
        }
    }
}

/// The first socket with a datagram, starting after the last one served
/// (so one busy socket cannot starve the others).
fn poll_sockets(
    cx: &mut Context<'_>,
    sockets: &[Option<UdpSocket>],
    buf: &mut [u8],
    next: &mut usize,
) -> Poll<(usize, io::Result<(usize, SocketAddr)>)> {
    let count = sockets.len();
    for offset in 0..count {
        let index = (*next + offset) % count;
        let Some(socket) = &sockets[index] else {
            continue;
        };
        let mut read = ReadBuf::new(buf);
        if let Poll::Ready(result) = socket.poll_recv_from(cx, &mut read) {
            *next = (index + 1) % count;
            return Poll::Ready((index, result.map(|from| (read.filled().len(), from))));
        }
    }
    Poll::Pending
}

/// Binds a pair (RTP on `port`, RTCP on the next) at `ip`.
fn bind_pair(ip: IpAddr, port: u16) -> io::Result<[UdpSocket; 2]> {
    let rtcp_port = port
        .checked_add(1)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no port after 65535"))?;
    let bind = |port: u16| -> io::Result<UdpSocket> {
        let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, port))?;
        socket.set_nonblocking(true)?;
        UdpSocket::from_std(socket)
    };
    Ok([bind(port)?, bind(rtcp_port)?])
}

fn unix_ns_now() -> u64 {
    system_ns(clock::wall())
}

fn system_ns(wall: SystemTime) -> u64 {
    wall.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `at` on the wall clock, knowing that `now` is `wall`.
fn unix_ns(wall: SystemTime, now: Instant, at: Instant) -> u64 {
    let wall = system_ns(wall);
    if at <= now {
        wall.saturating_sub(u64::try_from((now - at).as_nanos()).unwrap_or(u64::MAX))
    } else {
        wall.saturating_add(u64::try_from((at - now).as_nanos()).unwrap_or(u64::MAX))
    }
}
