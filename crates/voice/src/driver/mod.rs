//! The tokio driver: one UDP socket and one TCP listener on the same port,
//! one task for the [`Proxy`] (and two per TCP connection, in `tcp.rs`).
//!
//! The task only moves bytes and time (DESIGN.md): it waits for a datagram, a
//! message from a TCP connection (`tcp.rs` frames them) or the proxy's next
//! deadline, feeds the proxy, and sends what the proxy wants sent, over UDP or
//! on the TCP connection to the peer (opened when there is none; a peer that
//! cannot be reached is reported to the proxy, which moves its calls on). Datagrams are drained in batches (`try_recv_from` until the socket
//! would block, at most [`MAX_BATCH`]) so one wake-up serves many messages
//! under load, and sends go out with `try_send_to`, awaiting only when the
//! socket buffer is full. Each datagram is copied once out of the receive
//! buffer into its own allocation, which the parsed message then slices (so
//! a long call holds only its own INVITE, not a shared receive block).
//!
//! [`VoiceHandle`] is what the rest of hotsite sees: the bound address, the
//! trunks' status (SPEC V2, V3), counters, a stream of [`ProxyEvent`]s, and
//! shutdown. Status and counters are published by the task after each batch
//! (trunk status at most every [`STATUS_EVERY`], and at once when a trunk
//! changes state).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hotsite_core::{Event, EventKind, Target};
use hotsite_host::{Deps, Events, HttpRoutes};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::{VoiceConfig, VoiceConfigError};
use crate::media::relay::{Relay, RelayCounters, RelayStats};
use crate::media::{MediaSessionStats, MediaTap};
use crate::proxy::{Peer, Proxy, ProxyEvent, ProxyStats, Sizes, Transmit, Transport, TrunkStats};
use crate::routing::Cause;
use hotsite_host::clock;

use self::tcp::{Connections, TcpInput};

mod memory;
mod tcp;

/// Most datagrams handled per wake-up before the answers are sent.
pub const MAX_BATCH: usize = 64;

/// How long accepting TCP connections pauses after an error.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// How stale the published trunk status may get (its counters; state changes
/// are published at once).
pub const STATUS_EVERY: Duration = Duration::from_millis(250);

/// Why the voice proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    /// The `[voice]` section is invalid.
    #[error(transparent)]
    Config(#[from] VoiceConfigError),
    /// The socket could not be bound.
    #[error("voice.listen: cannot bind {transport} {addr}: {source}")]
    Bind {
        /// `UDP` or `TCP`.
        transport: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The media address cannot be bound (not an address of this host).
    #[error("voice.media.address: cannot bind UDP on {addr}: {source}")]
    MediaBind {
        /// The address.
        addr: std::net::IpAddr,
        /// Why.
        source: io::Error,
    },
    /// Another socket error.
    #[error("voice: {0}")]
    Io(#[from] io::Error),
}

/// One trunk as `hotsite status` shows it (SPEC V2, V3).
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkStatusView {
    /// Name.
    pub name: String,
    /// Carrier.
    pub carrier: String,
    /// Address.
    pub address: SocketAddr,
    /// `udp` or `tcp`.
    pub transport: Transport,
    /// Whether calls go to it.
    pub in_service: bool,
    /// Since when (wall clock).
    pub since: SystemTime,
    /// Why it is out of service.
    pub causes: Vec<Cause>,
    /// The last change's cause in words.
    pub detail: String,
    /// Media region (SPEC V3).
    pub media_region: String,
    /// Failover region (SPEC V3).
    pub failover_region: String,
    /// Whether registered, for registration-based trunks.
    pub registered: Option<bool>,
    /// Its counters.
    pub stats: TrunkStats,
}

/// A trunk group and the names of its trunks (the configured ones, or the
/// group `default` with every trunk), for the groups' metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTrunks {
    /// The group's name.
    pub name: String,
    /// Its trunks' names.
    pub trunks: Vec<String>,
}

/// The proxy's counters and state sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoiceMetrics {
    /// Counters since the start.
    pub stats: ProxyStats,
    /// State held now.
    pub sizes: Sizes,
    /// The media relay's, when a group anchors media.
    pub media: Option<MediaMetrics>,
}

/// The media side's counters: the anchored calls and their ports (the
/// proxy core's) and the packets relayed (the relay tasks').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaMetrics {
    /// Anchored calls, SDP refusals, timeouts, ports.
    pub sessions: MediaSessionStats,
    /// Packets and bytes relayed per direction, drops, latches.
    pub relay: RelayStats,
}

#[derive(Default)]
struct Shared {
    status: Vec<TrunkStatusView>,
    /// The counters as of `status`.
    status_stats: Option<ProxyStats>,
    metrics: Option<VoiceMetrics>,
}

/// The running proxy. Dropping it stops the task too; [`VoiceHandle::shutdown`]
/// also waits for it, and for the unregistrations to be handed over: sent,
/// over UDP; over TCP queued to the connection's writer, best effort.
pub struct VoiceHandle {
    local_addr: SocketAddr,
    /// The trunk groups and their trunks' names, as configured.
    groups: Arc<[GroupTrunks]>,
    shared: Arc<Mutex<Shared>>,
    /// The media relay's packet counters, read live.
    relay: Option<RelayCounters>,
    events: broadcast::Sender<ProxyEvent>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl VoiceHandle {
    /// The address the sockets are bound to (UDP and TCP: the same port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Every trunk's state (at most [`STATUS_EVERY`] old).
    pub fn status(&self) -> Vec<TrunkStatusView> {
        self.shared
            .lock()
            .map(|s| s.status.clone())
            .unwrap_or_default()
    }

    /// The trunk groups, as configured.
    pub fn groups(&self) -> Arc<[GroupTrunks]> {
        Arc::clone(&self.groups)
    }

    /// A reader of [`VoiceHandle::status`] that outlives the borrow of the
    /// handle: for the API of the same process.
    pub fn status_reader(&self) -> impl Fn() -> Vec<TrunkStatusView> + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        move || shared.lock().map(|s| s.status.clone()).unwrap_or_default()
    }

    /// Counters (calls, failovers, trunk state changes, …) as of the last
    /// batch; the media relay's packet counters as of now.
    pub fn metrics(&self) -> VoiceMetrics {
        let metrics = self.shared.lock().ok().and_then(|s| s.metrics);
        with_relay(metrics, self.relay.as_ref()).unwrap_or(VoiceMetrics {
            stats: ProxyStats::default(),
            sizes: Sizes {
                calls: 0,
                branches: 0,
                tombstones: 0,
                timers: 0,
                capacity: 0,
            },
            media: None,
        })
    }

    /// A reader of [`VoiceHandle::metrics`] that outlives the borrow of the
    /// handle: for the API's `/metrics` in the same process.
    pub fn metrics_reader(&self) -> impl Fn() -> Option<VoiceMetrics> + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        let relay = self.relay.clone();
        move || with_relay(shared.lock().ok().and_then(|s| s.metrics), relay.as_ref())
    }

    /// Every event of the proxy from now on, typed (trunk state changes,
    /// failovers, call ends), for tools in the same process (the demo's
    /// report). The decisions among them are also published once on the
    /// host's event stream, which is what the log, metrics and API read.
    /// A receiver that falls more than 1,024 events behind loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<ProxyEvent> {
        self.events.subscribe()
    }

    /// Stops the proxy: registrations are removed (best effort: the REGISTERs
    /// are sent, their answers not awaited) and the task ends.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// The published metrics with the relay's counters read now.
fn with_relay(
    metrics: Option<VoiceMetrics>,
    relay: Option<&RelayCounters>,
) -> Option<VoiceMetrics> {
    let mut metrics = metrics?;
    if let (Some(media), Some(relay)) = (&mut metrics.media, relay) {
        media.relay = relay.stats();
    }
    Some(metrics)
}

impl Drop for VoiceHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

/// Validates `config`, binds its socket and starts the proxy task. Its trunk
/// changes, call failovers and media timeouts are published through `deps`'
/// event stream; the routes (`GET /v1/trunks`) are for the host to serve.
/// `tap` sees the media of every anchored call (groups with `media =
/// "anchor"`; see [`MediaTap`]); with `None` the media is relayed and not
/// recorded.
pub async fn start(
    config: &VoiceConfig,
    deps: &Deps,
    tap: Option<Arc<dyn MediaTap>>,
) -> Result<(VoiceHandle, HttpRoutes), VoiceError> {
    config.validate()?;
    // A flood's memory must go back when it is over (DESIGN.md invariant 6).
    memory::configure();
    let listen = config.listen_addr()?;
    let (socket, listener) = bind_both(listen)?;
    let local_addr = socket.local_addr()?;
    let proxy_config = config.proxy_config(local_addr)?;
    if let Some(setup) = &proxy_config.media {
        // A media address that is not this host's would fail every pair
        // of the range, one by one: refused at start instead.
        std::net::UdpSocket::bind(SocketAddr::new(setup.address, 0)).map_err(|source| {
            VoiceError::MediaBind {
                addr: setup.address,
                source,
            }
        })?;
    }
    let relay = proxy_config
        .media
        .as_ref()
        .map(|setup| Relay::new(setup, tap));
    let relay_counters = relay.as_ref().map(Relay::counters);
    let groups = proxy_config
        .groups
        .iter()
        .map(|group| GroupTrunks {
            name: group.name.clone(),
            trunks: group
                .trunks
                .iter()
                .map(|&index| proxy_config.trunks[index].spec.name.clone())
                .collect(),
        })
        .collect();
    let proxy = Proxy::new(proxy_config, clock::seed(), clock::now());
    let shared = Arc::new(Mutex::new(Shared::default()));
    let (events, _) = broadcast::channel(1024);
    let (stop, stopped) = oneshot::channel();
    let span = tracing::info_span!("voice", listen = %local_addr);
    tracing::info!(parent: &span, trunks = proxy.trunks().len(), "voice proxy started");
    let task = tokio::spawn({
        let shared = shared.clone();
        let events = events.clone();
        let sockets = Sockets {
            udp: socket,
            tcp: listener,
            connect_timeout: config.invite_timeout,
        };
        let published = deps.events(crate::system::SYSTEM);
        tracing::Instrument::instrument(
            run(sockets, proxy, relay, shared, (events, published), stopped),
            span,
        )
    });
    let handle = VoiceHandle {
        local_addr,
        groups,
        shared,
        relay: relay_counters,
        events,
        shutdown: Some(stop),
        task: Some(task),
    };
    let routes = crate::system::routes(&handle);
    Ok((handle, routes))
}

/// The UDP socket and the TCP listener, on the same port. With port 0 the
/// port the UDP socket got may be taken for TCP: then another is tried.
fn bind_both(listen: SocketAddr) -> Result<(UdpSocket, TcpListener), VoiceError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let socket = hotsite_host::net::bind_udp(listen).map_err(|source| VoiceError::Bind {
            transport: "UDP",
            addr: listen,
            source,
        })?;
        let addr = socket.local_addr()?;
        match bind_tcp(addr) {
            Ok(listener) => return Ok((socket, listener)),
            Err(_) if listen.port() == 0 && attempts < 20 => continue,
            Err(source) => {
                return Err(VoiceError::Bind {
                    transport: "TCP",
                    addr,
                    source,
                })
            }
        }
    }
}

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

struct Sockets {
    udp: UdpSocket,
    tcp: TcpListener,
    connect_timeout: Duration,
}

async fn run(
    sockets: Sockets,
    mut proxy: Proxy,
    mut relay: Option<Relay>,
    shared: Arc<Mutex<Shared>>,
    events: (broadcast::Sender<ProxyEvent>, Events),
    mut stopped: oneshot::Receiver<()>,
) {
    let Sockets {
        udp: socket,
        tcp: listener,
        connect_timeout,
    } = sockets;
    let (tcp_inputs, mut tcp_received) = mpsc::channel(4 * MAX_BATCH);
    let mut connections = Connections::new(tcp_inputs, connect_timeout);
    let mut buf = vec![0u8; 65_535];
    let mut published: Option<Instant> = None;
    let mut trunk_changed = true;
    let mut accept_paused_until: Option<Instant> = None;
    // Whatever the proxy queued at start (first probes, REGISTERs, the
    // first media ports to bind).
    service_media(&mut relay, &mut proxy);
    flush(&socket, &mut connections, &mut proxy).await;
    loop {
        trunk_changed |= drain_events(&mut proxy, &events);
        // A status not published because it was too fresh is published when
        // it is due, even if nothing else happens by then.
        let refresh = publish(&proxy, &shared, &mut published, &mut trunk_changed);
        if accept_paused_until.is_some_and(|at| clock::now() >= at) {
            accept_paused_until = None;
        }
        let deadline = [proxy.poll_timeout(), refresh, accept_paused_until]
            .into_iter()
            .flatten()
            .min();
        // Not `biased`: under a UDP flood the TCP inputs and accepts must
        // still get their turn.
        tokio::select! {
            _ = &mut stopped => break,
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => {
                    proxy.handle_datagram(clock::now(), from, Bytes::copy_from_slice(&buf[..n]));
                    // After every message: an INVITE takes the media ports
                    // bound ahead, and the next one must find them again.
                    service_media(&mut relay, &mut proxy);
                    for _ in 1..MAX_BATCH {
                        match socket.try_recv_from(&mut buf) {
                            Ok((n, from)) => {
                                proxy.handle_datagram(
                                    clock::now(),
                                    from,
                                    Bytes::copy_from_slice(&buf[..n]),
                                );
                                service_media(&mut relay, &mut proxy);
                            }
                            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                            Err(error) => {
                                tracing::debug!(%error, "receive failed");
                                break;
                            }
                        }
                    }
                }
                Err(error) => tracing::debug!(%error, "receive failed"),
            },
            Some(input) = tcp_received.recv() => {
                on_tcp(&mut proxy, &mut connections, input);
                service_media(&mut relay, &mut proxy);
                for _ in 1..MAX_BATCH {
                    match tcp_received.try_recv() {
                        Ok(input) => {
                            on_tcp(&mut proxy, &mut connections, input);
                            service_media(&mut relay, &mut proxy);
                        }
                        Err(_) => break,
                    }
                }
            },
            (id, timed_out) = media_ended(&mut relay) => {
                if let Some(relay) = &mut relay {
                    relay.forget(id);
                }
                proxy.handle_media_ended(clock::now(), id, timed_out);
            },
            accepted = listener.accept(), if accept_paused_until.is_none_or(|at| clock::now() >= at) => {
                match accepted {
                    Ok((stream, peer)) => {
                        accept_paused_until = None;
                        connections.accepted(stream, peer);
                    }
                    Err(error) => {
                        // Out of file descriptors, typically: accept would
                        // fail again at once, so it waits a little.
                        tracing::warn!(%error, "TCP accept failed; accepting again in 100 ms");
                        accept_paused_until = Some(clock::now() + ACCEPT_PAUSE);
                    }
                }
            },
            () = clock::sleep_until(deadline) => {}
        }
        let now = clock::now();
        if proxy.poll_timeout().is_some_and(|at| at <= now) {
            proxy.handle_timeout(now);
            if proxy.take_released() {
                memory::release();
            }
        }
        service_media(&mut relay, &mut proxy);
        flush(&socket, &mut connections, &mut proxy).await;
    }
    proxy.unregister_all(clock::now());
    flush(&socket, &mut connections, &mut proxy).await;
    drain_events(&mut proxy, &events);
    tracing::info!(tcp_connections = connections.len(), "voice proxy stopped");
}

/// Does what the proxy asked of the media relay, if any group anchors.
fn service_media(relay: &mut Option<Relay>, proxy: &mut Proxy) {
    if let Some(relay) = relay {
        relay.service(proxy);
    }
}

/// The next anchored call whose relay task ended (never, without a relay).
async fn media_ended(relay: &mut Option<Relay>) -> (u64, bool) {
    match relay {
        Some(relay) => relay.ended().await,
        None => std::future::pending().await,
    }
}

fn on_tcp(proxy: &mut Proxy, connections: &mut Connections, input: TcpInput) {
    match input {
        TcpInput::Message(from, bytes) => {
            proxy.handle_message(clock::now(), Peer::tcp(from), bytes)
        }
        TcpInput::Unreachable(to, reason) => {
            tracing::debug!(%to, %reason, "TCP peer unreachable");
            proxy.handle_unreachable(clock::now(), Peer::tcp(to), &reason);
        }
        TcpInput::Closed(peer, id) => connections.closed(peer, id),
    }
}

/// Sends everything the proxy queued.
async fn flush(socket: &UdpSocket, connections: &mut Connections, proxy: &mut Proxy) {
    while let Some(Transmit { to, bytes }) = proxy.poll_transmit() {
        if to.transport == Transport::Tcp {
            connections.send(to.addr, bytes);
            continue;
        }
        let addr = to.addr;
        match socket.try_send_to(&bytes, addr) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                if let Err(error) = socket.send_to(&bytes, addr).await {
                    tracing::debug!(%addr, %error, "send failed");
                }
            }
            Err(error) => tracing::debug!(%addr, %error, "send failed"),
        }
    }
}

/// Publishes the proxy's decisions (trunk state changes, call failovers) on
/// the host's event stream, which logs them (DESIGN.md invariant 4), and
/// hands every event to in-process subscribers; true if a trunk changed state.
fn drain_events(
    proxy: &mut Proxy,
    (feed, published): &(broadcast::Sender<ProxyEvent>, Events),
) -> bool {
    let mut trunk_changed = false;
    while let Some(event) = proxy.poll_event() {
        match &event {
            ProxyEvent::Trunk(change) => {
                published.publish(change.clone());
                trunk_changed = true;
            }
            ProxyEvent::Failover(failover) => {
                published.publish(Event {
                    at: failover.at,
                    target: Target::new(&failover.from.carrier, &failover.from.name),
                    kind: EventKind::Rerouted {
                        item: failover.call_id.clone(),
                        to: Target::new(&failover.to.carrier, &failover.to.name),
                        cause: failover.cause.clone(),
                    },
                });
            }
            ProxyEvent::MediaTimeout(timeout) => {
                published.publish(Proxy::media_timeout_event(timeout));
            }
            ProxyEvent::CallEnded(_) => {}
        }
        if feed.receiver_count() > 0 {
            let _ = feed.send(event);
        }
    }
    trunk_changed
}

/// Publishes the counters, and the trunk status if it is due; returns when
/// the status is due if it was left unpublished.
fn publish(
    proxy: &Proxy,
    shared: &Mutex<Shared>,
    published: &mut Option<Instant>,
    trunk_changed: &mut bool,
) -> Option<Instant> {
    let now = clock::now();
    let status_due = *trunk_changed || published.is_none_or(|at| now >= at + STATUS_EVERY);
    let status = status_due.then(|| {
        let wall = clock::wall();
        proxy
            .trunk_status()
            .into_iter()
            .map(|t| TrunkStatusView {
                name: t.trunk.name.to_string(),
                carrier: t.trunk.carrier.to_string(),
                address: t.address,
                transport: t.transport,
                in_service: t.in_service,
                since: wall - now.saturating_duration_since(t.since),
                causes: t.causes,
                detail: t.detail,
                media_region: t.trunk.media_region.to_string(),
                failover_region: t.trunk.failover_region.to_string(),
                registered: t.registered,
                stats: t.stats,
            })
            .collect()
    });
    let Ok(mut shared) = shared.lock() else {
        return None;
    };
    // The relay's counters are read live by the handle.
    let media = proxy.media_stats().map(|sessions| MediaMetrics {
        sessions,
        relay: RelayStats::default(),
    });
    let metrics = Some(VoiceMetrics {
        stats: *proxy.stats(),
        sizes: proxy.sizes(),
        media,
    });
    let stale = shared.status_stats != Some(*proxy.stats());
    shared.metrics = metrics;
    match status {
        Some(status) => {
            shared.status = status;
            shared.status_stats = Some(*proxy.stats());
            *published = Some(now);
            *trunk_changed = false;
            None
        }
        // Something happened since the last status: a new one is owed.
        None if stale => published.map(|at| at + STATUS_EVERY),
        None => None,
    }
}
