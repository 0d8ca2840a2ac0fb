//! The inter-site link: a relay on loopback between two sites that the lab
//! can cut and restore, so that a link failure (SPEC S4: the peer trunk's
//! OPTIONS go unanswered while both sites stay up) is testable without root
//! or packet filters.
//!
//! # Shape
//!
//! ```text
//!  site A ──▶ a_addr ┐             ┌ b_addr ──▶ site B (b_target)
//!  (a_target) ◀──────┘  the relay  └──────────◀ site B
//! ```
//!
//! The relay has one address facing each site, `a_addr` (bound at
//! `a_listen`) and `b_addr` (at `b_listen`), each a UDP socket and a TCP
//! listener on the same port. Each site configures the relay's address facing
//! it as its peer trunk: site A sends to `a_addr`, site B to `b_addr`.
//!
//! - UDP: a datagram arriving at `a_addr` (from anyone) is sent from `b_addr`
//!   to `b_target`, and one arriving at `b_addr` is sent from `a_addr` to
//!   `a_target`. Site B so sees A's requests come from `b_addr` (its peer
//!   trunk), and its answers, sent back there, reach A from `a_addr` (A's peer
//!   trunk). Stateless: requests either way and their answers all work, as
//!   long as each site sends from its SIP socket (`a_target`, `b_target`).
//! - TCP: a connection accepted at `a_addr` is matched by one to `b_target`
//!   (and `b_addr` to `a_target`), and bytes are pumped both ways through
//!   bounded buffers until either side closes (half-closes are passed on).
//!   A target that refuses gets the accepted connection reset.
//!
//! # Cut and restore
//!
//! [`Link::cut`]: every datagram is read and dropped (counted), both ways;
//! every relayed TCP connection is reset (RST) and both listeners close, so
//! new connects are refused. [`Link::restore`]: datagrams flow again and the
//! listeners listen again on the same ports. A datagram already read when the
//! cut comes may still go out.
//!
//! # What the sites must do
//!
//! SIP answers follow the top Via, whose sent-by names the sender's *own*
//! address (`a_target`), not the relay. A site behind the relay must answer
//! requests to their source address, `rport` style (RFC 3581; hotsite's
//! proxies and the lab's peers do): one that answered to the Via sent-by
//! (RFC 3261 §18.2.2 without rport) would bypass the relay, and a cut would
//! not stop its answers. The same holds for in-dialog requests: a Contact or
//! Record-Route naming a site's own address sends ACK and BYE around the
//! relay; sites must route them over the peer trunk (or record-route with
//! the address the peer knows) for a cut to reach them.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::port::{self, lock, Life, ListenerSlot, Port};

/// Largest UDP payload: one buffer per direction.
const MAX_DATAGRAM: usize = 65_535;

/// Per-direction buffer of a relayed TCP connection.
const TCP_BUFFER: usize = 16 * 1024;

/// How long a relayed connect to the target may take before the accepted
/// connection is reset.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause after a failed receive, so a lasting error does not spin (an
/// earlier send's ICMP "port unreachable" surfaces on the next receive).
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(1);

/// Tries at binding a TCP listener on the UDP socket's port when the port
/// was chosen by the system (it may be taken for TCP).
const BIND_ATTEMPTS: usize = 16;

/// How a link starts. [`LinkConfig::new`] fills in the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    /// Its name, in logs and the control API.
    pub name: String,
    /// Where the relay faces site A (UDP and TCP; port 0: a free port):
    /// site A's peer trunk address.
    pub a_listen: SocketAddr,
    /// Site A's SIP address: where what arrives at `b_listen` goes.
    pub a_target: SocketAddr,
    /// Where the relay faces site B: site B's peer trunk address.
    pub b_listen: SocketAddr,
    /// Site B's SIP address: where what arrives at `a_listen` goes.
    pub b_target: SocketAddr,
}

impl LinkConfig {
    /// A link named `name` between sites at `a_target` and `b_target`, facing
    /// each on a free loopback port.
    pub fn new(name: &str, a_target: SocketAddr, b_target: SocketAddr) -> LinkConfig {
        let any = |target: SocketAddr| {
            if target.is_ipv4() {
                SocketAddr::from(([127, 0, 0, 1], 0))
            } else {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
            }
        };
        LinkConfig {
            name: name.to_owned(),
            a_listen: any(a_target),
            a_target,
            b_listen: any(b_target),
            b_target,
        }
    }
}

/// Why a link could not start or listen again.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A socket could not be bound.
    #[error("link {name}: cannot bind {addr} (side {side}): {source}")]
    Bind {
        /// The link.
        name: String,
        /// `a` or `b`.
        side: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
}

/// Whether a link carries traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Relaying.
    Up,
    /// Cut: dropping datagrams, refusing connections.
    Cut,
}

/// What crossed a link one way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DirectionStats {
    /// Datagrams sent on.
    pub datagrams_relayed: u64,
    /// Datagrams read and dropped while cut.
    pub datagrams_dropped: u64,
    /// Datagrams that could not be sent on (the target's port closed, say).
    pub send_errors: u64,
    /// TCP connections accepted and connected to the target.
    pub connections_relayed: u64,
    /// TCP connections reset because the target could not be reached.
    pub connections_failed: u64,
    /// Relayed TCP connections reset by a cut.
    pub connections_reset: u64,
}

/// A link's state and counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    /// Its name.
    pub name: String,
    /// Up or cut.
    pub state: LinkState,
    /// The relay's address facing site A (site A's peer trunk).
    pub a_addr: SocketAddr,
    /// The relay's address facing site B (site B's peer trunk).
    pub b_addr: SocketAddr,
    /// Site A's address.
    pub a_target: SocketAddr,
    /// Site B's address.
    pub b_target: SocketAddr,
    /// Cuts so far.
    pub cuts: u64,
    /// From site A to site B (arriving at `a_addr`).
    pub a_to_b: DirectionStats,
    /// From site B to site A (arriving at `b_addr`).
    pub b_to_a: DirectionStats,
}

/// A running link. Dropping it stops every task and closes every socket
/// without waiting; [`Link::shutdown`] waits.
pub struct Link {
    inner: Arc<Inner>,
}

/// One way across: traffic arriving on one side goes out of the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    AToB,
    BToA,
}

/// What the tasks share.
struct Inner {
    config: LinkConfig,
    /// Read by every datagram; changed only under `changes`.
    cut: AtomicBool,
    /// Serialises cuts and restores.
    changes: Mutex<()>,
    counters: Mutex<Counters>,
    /// The TCP listeners facing A and B.
    a_port: Port,
    b_port: Port,
    runtime: Handle,
    tasks: TaskTracker,
    stop: CancellationToken,
}

#[derive(Default)]
struct Counters {
    cuts: u64,
    a_to_b: DirectionStats,
    b_to_a: DirectionStats,
}

impl Counters {
    fn way(&mut self, direction: Direction) -> &mut DirectionStats {
        match direction {
            Direction::AToB => &mut self.a_to_b,
            Direction::BToA => &mut self.b_to_a,
        }
    }
}

impl Link {
    /// Binds both sides (UDP and TCP on one port each) and starts relaying.
    /// Must be called within a tokio runtime.
    pub async fn start(config: LinkConfig) -> Result<Link, LinkError> {
        let (a_udp, a_tcp) = bind_side(&config.name, "a", config.a_listen).await?;
        let (b_udp, b_tcp) = bind_side(&config.name, "b", config.b_listen).await?;
        let a_addr = a_tcp.local_addr().map_err(bind_error(&config, "a"))?;
        let b_addr = b_tcp.local_addr().map_err(bind_error(&config, "b"))?;
        let inner = Arc::new(Inner {
            config,
            cut: AtomicBool::new(false),
            changes: Mutex::new(()),
            counters: Mutex::new(Counters::default()),
            a_port: Port::new(a_addr),
            b_port: Port::new(b_addr),
            runtime: Handle::current(),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        });
        let (a_udp, b_udp) = (Arc::new(a_udp), Arc::new(b_udp));
        inner.tasks.spawn(pump_udp(
            Arc::clone(&inner),
            Direction::AToB,
            Arc::clone(&a_udp),
            Arc::clone(&b_udp),
        ));
        inner
            .tasks
            .spawn(pump_udp(Arc::clone(&inner), Direction::BToA, b_udp, a_udp));
        *inner.a_port.life() = Some(spawn_accept(&inner, Direction::AToB, a_tcp));
        *inner.b_port.life() = Some(spawn_accept(&inner, Direction::BToA, b_tcp));
        tracing::info!(
            link = %inner.config.name,
            %a_addr,
            a_target = %inner.config.a_target,
            %b_addr,
            b_target = %inner.config.b_target,
            "link relaying"
        );
        Ok(Link { inner })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// The relay's address facing site A: site A's peer trunk (UDP and TCP).
    pub fn a_addr(&self) -> SocketAddr {
        self.inner.a_port.addr
    }

    /// The relay's address facing site B: site B's peer trunk (UDP and TCP).
    pub fn b_addr(&self) -> SocketAddr {
        self.inner.b_port.addr
    }

    /// Cuts the link both ways: when it returns, datagrams are dropped and
    /// both TCP listeners are closed; relayed connections are reset a moment
    /// later. Cutting a cut link does nothing.
    pub fn cut(&self) {
        let _change = lock(&self.inner.changes);
        if self.inner.cut.swap(true, Ordering::SeqCst) {
            return;
        }
        lock(&self.inner.counters).cuts += 1;
        self.inner.a_port.die();
        self.inner.b_port.die();
        tracing::info!(link = %self.inner.config.name, "link cut");
    }

    /// Restores a cut link: datagrams flow again and the TCP listeners listen
    /// again on their ports. Restoring a link that is up does nothing. Fails
    /// if a port was taken meanwhile (the link then stays cut).
    pub fn restore(&self) -> Result<(), LinkError> {
        let inner = &self.inner;
        let _change = lock(&inner.changes);
        if !inner.cut.load(Ordering::SeqCst) || inner.stop.is_cancelled() {
            return Ok(());
        }
        let _runtime = inner.runtime.enter();
        let a_listener = port::listen(inner.a_port.addr).map_err(bind_error(&inner.config, "a"))?;
        let b_listener = port::listen(inner.b_port.addr).map_err(bind_error(&inner.config, "b"))?;
        *inner.a_port.life() = Some(spawn_accept(inner, Direction::AToB, a_listener));
        *inner.b_port.life() = Some(spawn_accept(inner, Direction::BToA, b_listener));
        inner.cut.store(false, Ordering::SeqCst);
        tracing::info!(link = %inner.config.name, "link restored");
        Ok(())
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        self.inner.cut.load(Ordering::SeqCst)
    }

    /// The state and counters.
    pub fn stats(&self) -> LinkStats {
        let inner = &self.inner;
        let counters = lock(&inner.counters);
        LinkStats {
            name: inner.config.name.clone(),
            state: if self.is_cut() {
                LinkState::Cut
            } else {
                LinkState::Up
            },
            a_addr: inner.a_port.addr,
            b_addr: inner.b_port.addr,
            a_target: inner.config.a_target,
            b_target: inner.config.b_target,
            cuts: counters.cuts,
            a_to_b: counters.a_to_b,
            b_to_a: counters.b_to_a,
        }
    }

    /// Stops relaying, resets every connection, and waits for every task.
    pub async fn shutdown(self) {
        self.inner.stop_all();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.inner.stop_all();
    }
}

impl Inner {
    fn stop_all(&self) {
        self.stop.cancel();
        self.a_port.die();
        self.b_port.die();
    }

    /// The side a direction's traffic goes to.
    fn target(&self, direction: Direction) -> SocketAddr {
        match direction {
            Direction::AToB => self.config.b_target,
            Direction::BToA => self.config.a_target,
        }
    }

    fn count(&self, direction: Direction, f: impl FnOnce(&mut DirectionStats)) {
        f(lock(&self.counters).way(direction));
    }
}

fn bind_error<'a>(
    config: &'a LinkConfig,
    side: &'static str,
) -> impl Fn(io::Error) -> LinkError + 'a {
    move |source| LinkError::Bind {
        name: config.name.clone(),
        side,
        addr: match side {
            "a" => config.a_listen,
            _ => config.b_listen,
        },
        source,
    }
}

/// A UDP socket at `listen` and a TCP listener on the same port. With port 0
/// the system's choice for UDP may be taken for TCP: then another is tried.
async fn bind_side(
    name: &str,
    side: &'static str,
    listen: SocketAddr,
) -> Result<(UdpSocket, TcpListener), LinkError> {
    let error = |source| LinkError::Bind {
        name: name.to_owned(),
        side,
        addr: listen,
        source,
    };
    let mut last = None;
    for _ in 0..BIND_ATTEMPTS {
        let udp = UdpSocket::bind(listen).await.map_err(error)?;
        let addr = udp.local_addr().map_err(error)?;
        match port::listen(addr) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(source) if listen.port() == 0 && source.kind() == io::ErrorKind::AddrInUse => {
                last = Some(source);
            }
            Err(source) => return Err(error(source)),
        }
    }
    Err(error(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::AddrInUse, "no port free for UDP and TCP")
    })))
}

/// Relays datagrams arriving at `from` out of `to`, or drops them while cut.
async fn pump_udp(
    inner: Arc<Inner>,
    direction: Direction,
    from: Arc<UdpSocket>,
    to: Arc<UdpSocket>,
) {
    let target = inner.target(direction);
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            () = inner.stop.cancelled() => return,
            received = from.recv_from(&mut buffer) => received,
        };
        let len = match received {
            Ok((len, _)) => len,
            Err(error) => {
                tracing::debug!(link = %inner.config.name, %error, "link receive failed");
                tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                continue;
            }
        };
        if inner.cut.load(Ordering::SeqCst) {
            inner.count(direction, |way| way.datagrams_dropped += 1);
            continue;
        }
        match to.send_to(&buffer[..len], target).await {
            Ok(_) => inner.count(direction, |way| way.datagrams_relayed += 1),
            Err(error) => {
                tracing::debug!(link = %inner.config.name, %target, %error, "link send failed");
                inner.count(direction, |way| way.send_errors += 1);
            }
        }
    }
}

/// A life of one side's TCP listener: its accept loop, killed by a cut.
fn spawn_accept(inner: &Arc<Inner>, direction: Direction, listener: TcpListener) -> Life {
    let _runtime = inner.runtime.enter();
    let life = Life::new(listener, &inner.stop);
    inner.tasks.spawn(accept_loop(
        Arc::clone(inner),
        direction,
        Arc::clone(&life.listener),
        life.kill.clone(),
    ));
    life
}

async fn accept_loop(
    inner: Arc<Inner>,
    direction: Direction,
    slot: ListenerSlot,
    kill: CancellationToken,
) {
    let what = format!("link {}", inner.config.name);
    let connection_kill = kill.clone();
    port::accept_loop(&what, slot, kill, |stream, _peer| {
        let relay = relay_tcp(
            Arc::clone(&inner),
            direction,
            stream,
            connection_kill.clone(),
        );
        inner.tasks.spawn(relay);
    })
    .await;
}

/// Connects to the target and pumps bytes both ways until either side is
/// done, or resets both ends when `kill` fires (a cut).
async fn relay_tcp(
    inner: Arc<Inner>,
    direction: Direction,
    mut accepted: TcpStream,
    kill: CancellationToken,
) {
    let target = inner.target(direction);
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target));
    let connected = tokio::select! {
        () = kill.cancelled() => None,
        connected = connect => Some(connected),
    };
    let mut outgoing = match connected {
        Some(Ok(Ok(stream))) => stream,
        Some(Ok(Err(error))) => {
            tracing::debug!(link = %inner.config.name, %target, %error, "link connect failed");
            inner.count(direction, |way| way.connections_failed += 1);
            reset(&accepted);
            return;
        }
        Some(Err(_)) => {
            tracing::debug!(link = %inner.config.name, %target, "link connect timed out");
            inner.count(direction, |way| way.connections_failed += 1);
            reset(&accepted);
            return;
        }
        None => {
            reset(&accepted);
            return;
        }
    };
    inner.count(direction, |way| way.connections_relayed += 1);
    let pumped = tokio::select! {
        () = kill.cancelled() => None,
        pumped = tokio::io::copy_bidirectional_with_sizes(
            &mut accepted,
            &mut outgoing,
            TCP_BUFFER,
            TCP_BUFFER,
        ) => Some(pumped),
    };
    match pumped {
        None => {
            // A cut (or shutdown): both ends see a reset, as on a broken path.
            if !inner.stop.is_cancelled() {
                inner.count(direction, |way| way.connections_reset += 1);
            }
            reset(&accepted);
            reset(&outgoing);
        }
        Some(Ok(_)) => {}
        Some(Err(error)) => {
            tracing::debug!(link = %inner.config.name, %error, "link connection ended");
            // One end failed: the other learns it the same way.
            reset(&accepted);
            reset(&outgoing);
        }
    }
}

/// Makes the coming close of `stream` a reset (RST), not an orderly FIN.
fn reset(stream: &TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        tracing::debug!(%error, "cannot set SO_LINGER 0");
    }
}
