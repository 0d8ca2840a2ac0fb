//! The tokio driver: one UDP socket, one task, one [`Proxy`].
//!
//! The task only moves bytes and time (DESIGN.md): it waits for a datagram or
//! the proxy's next deadline, feeds the proxy, and sends what the proxy wants
//! sent. Datagrams are drained in batches (`try_recv_from` until the socket
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
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use crate::clock;
use crate::config::{VoiceConfig, VoiceConfigError};
use crate::proxy::{Proxy, ProxyEvent, ProxyStats, Sizes, TrunkStats};
use crate::routing::Cause;

/// Most datagrams handled per wake-up before the answers are sent.
pub const MAX_BATCH: usize = 64;

/// The UDP buffers asked for: at 5,000 calls/s (35,000 datagrams/s in) a
/// 10 ms scheduling gap is 350 datagrams, more than the kernel's default
/// 208 KiB holds.
pub const SOCKET_BUFFER: usize = 4 << 20;

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
    #[error("voice.listen: cannot bind UDP {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
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

/// The proxy's counters and state sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoiceMetrics {
    /// Counters since the start.
    pub stats: ProxyStats,
    /// State held now.
    pub sizes: Sizes,
}

#[derive(Default)]
struct Shared {
    status: Vec<TrunkStatusView>,
    metrics: Option<VoiceMetrics>,
}

/// The running proxy. Dropping it stops the task too; [`VoiceHandle::shutdown`]
/// also waits for it (and for the unregistrations to be sent).
pub struct VoiceHandle {
    local_addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    events: broadcast::Sender<ProxyEvent>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl VoiceHandle {
    /// The address the socket is bound to.
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

    /// A reader of [`VoiceHandle::status`] that outlives the borrow of the
    /// handle: for the API of the same process.
    pub fn status_reader(&self) -> impl Fn() -> Vec<TrunkStatusView> + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        move || shared.lock().map(|s| s.status.clone()).unwrap_or_default()
    }

    /// Counters (calls, failovers, trunk state changes, …) as of the last batch.
    pub fn metrics(&self) -> VoiceMetrics {
        self.shared
            .lock()
            .ok()
            .and_then(|s| s.metrics)
            .unwrap_or(VoiceMetrics {
                stats: ProxyStats::default(),
                sizes: Sizes {
                    calls: 0,
                    branches: 0,
                    tombstones: 0,
                    timers: 0,
                },
            })
    }

    /// Every event from now on (trunk state changes, failovers, call ends).
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

impl Drop for VoiceHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

/// Validates `config`, binds its socket and starts the proxy task.
pub async fn start(config: &VoiceConfig) -> Result<VoiceHandle, VoiceError> {
    config.validate()?;
    let listen = config.listen_addr()?;
    let socket = bind(listen).map_err(|source| VoiceError::Bind {
        addr: listen,
        source,
    })?;
    let local_addr = socket.local_addr()?;
    let proxy = Proxy::new(
        config.proxy_config(local_addr)?,
        clock::seed(),
        clock::now(),
    );
    let shared = Arc::new(Mutex::new(Shared::default()));
    let (events, _) = broadcast::channel(1024);
    let (stop, stopped) = oneshot::channel();
    let span = tracing::info_span!("voice", listen = %local_addr);
    tracing::info!(parent: &span, trunks = proxy.trunks().len(), "voice proxy started");
    let task = tokio::spawn({
        let shared = shared.clone();
        let events = events.clone();
        tracing::Instrument::instrument(run(socket, proxy, shared, events, stopped), span)
    });
    Ok(VoiceHandle {
        local_addr,
        shared,
        events,
        shutdown: Some(stop),
        task: Some(task),
    })
}

/// A non-blocking UDP socket with [`SOCKET_BUFFER`] receive and send
/// buffers (the kernel caps them at `net.core.rmem_max` / `wmem_max`).
fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(error) = socket.set_recv_buffer_size(SOCKET_BUFFER) {
        tracing::warn!(%error, "cannot enlarge the UDP receive buffer");
    }
    if let Err(error) = socket.set_send_buffer_size(SOCKET_BUFFER) {
        tracing::warn!(%error, "cannot enlarge the UDP send buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    tracing::debug!(
        receive = socket.recv_buffer_size().unwrap_or_default(),
        send = socket.send_buffer_size().unwrap_or_default(),
        "UDP socket buffers"
    );
    UdpSocket::from_std(socket.into())
}

async fn run(
    socket: UdpSocket,
    mut proxy: Proxy,
    shared: Arc<Mutex<Shared>>,
    events: broadcast::Sender<ProxyEvent>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut buf = vec![0u8; 65_535];
    let mut published: Option<Instant> = None;
    let mut trunk_changed = true;
    // Whatever the proxy queued at start (first probes, REGISTERs).
    flush(&socket, &mut proxy).await;
    loop {
        trunk_changed |= drain_events(&mut proxy, &events);
        publish(&proxy, &shared, &mut published, &mut trunk_changed);
        let deadline = proxy.poll_timeout();
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => {
                    proxy.handle_datagram(clock::now(), from, Bytes::copy_from_slice(&buf[..n]));
                    for _ in 1..MAX_BATCH {
                        match socket.try_recv_from(&mut buf) {
                            Ok((n, from)) => proxy.handle_datagram(
                                clock::now(),
                                from,
                                Bytes::copy_from_slice(&buf[..n]),
                            ),
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
            () = clock::sleep_until(deadline) => {}
        }
        let now = clock::now();
        if proxy.poll_timeout().is_some_and(|at| at <= now) {
            proxy.handle_timeout(now);
        }
        flush(&socket, &mut proxy).await;
    }
    proxy.unregister_all(clock::now());
    flush(&socket, &mut proxy).await;
    drain_events(&mut proxy, &events);
    tracing::info!("voice proxy stopped");
}

/// Sends everything the proxy queued.
async fn flush(socket: &UdpSocket, proxy: &mut Proxy) {
    while let Some((addr, bytes)) = proxy.poll_transmit() {
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

/// Logs and broadcasts the proxy's events; true if a trunk changed state.
fn drain_events(proxy: &mut Proxy, events: &broadcast::Sender<ProxyEvent>) -> bool {
    let mut trunk_changed = false;
    while let Some(event) = proxy.poll_event() {
        match &event {
            ProxyEvent::Trunk(change) => {
                // Every trunk state change is logged with its cause (DESIGN.md,
                // invariant 4); `hotsite status` and /metrics show the state.
                tracing::warn!(event = %change, "trunk state changed");
                trunk_changed = true;
            }
            ProxyEvent::Failover(failover) => tracing::info!(
                call_id = %failover.call_id,
                from = %failover.from.name,
                to = %failover.to.name,
                cause = %failover.cause,
                "call failed over to the next trunk"
            ),
            ProxyEvent::CallEnded(_) => {}
        }
        if events.receiver_count() > 0 {
            let _ = events.send(event);
        }
    }
    trunk_changed
}

fn publish(
    proxy: &Proxy,
    shared: &Mutex<Shared>,
    published: &mut Option<Instant>,
    trunk_changed: &mut bool,
) {
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
        return;
    };
    shared.metrics = Some(VoiceMetrics {
        stats: *proxy.stats(),
        sizes: proxy.sizes(),
    });
    if let Some(status) = status {
        shared.status = status;
        *published = Some(now);
        *trunk_changed = false;
    }
}
