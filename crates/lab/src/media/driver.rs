//! Runs a media peer's core (the media server, the media caller) on its
//! sockets: one SIP socket, any number of RTP sockets the core opens and
//! closes, the timer, and the files it writes. The task only moves datagrams,
//! time and bytes (DESIGN.md); every decision is the core's.
//!
//! RTP sockets are bound on the SIP socket's IP when the core asks
//! ([`Output::OpenSocket`]), at once and before anything else reaches the
//! core, so a core can put the port in an SDP answer it is about to send.
//! As a real media endpoint does, each takes an even port and the next one
//! for RTCP (RFC 3550 §11; the lab sends no RTCP, but what arrives there
//! reaches the core, which counts it as stray rather than have the sender
//! get ICMP errors). Each socket has a reader task that stamps arrivals with
//! the lab's clock and hands them to the loop. Files are written off the runtime
//! (`spawn_blocking`), each through a temporary name and a rename, so a
//! reader never sees half a file; the core hears when they are on disk.
//! Stopping the task first lets the core end its calls
//! ([`MediaEndpoint::shut_down`]) and waits for their files.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::sip::driver::{bind_udp, Running};

use crate::clock::Clock;
use crate::port::lock;
use crate::sip::SipError;

/// Most datagrams taken per wake-up before the core's output goes out.
const MAX_BATCH: usize = 256;
/// Datagrams the RTP readers may queue for the loop.
const RTP_QUEUE: usize = 4_096;
/// Pause after a failed receive, so a lasting error does not spin.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(1);
/// Tries at an even port with a free odd one above before RTP goes on any
/// port alone.
const PAIR_TRIES: usize = 16;

/// A core's name for one of its RTP sockets.
pub(crate) type SocketId = u64;

/// What a media core asks its driver to do.
#[derive(Debug)]
pub(crate) enum Output {
    /// Send a SIP datagram from the SIP socket.
    Sip { to: SocketAddr, bytes: Bytes },
    /// Send an RTP datagram from an RTP socket.
    Rtp {
        socket: SocketId,
        to: SocketAddr,
        bytes: Bytes,
    },
    /// Bind a new RTP socket and report it with [`MediaEndpoint::socket_opened`].
    OpenSocket { socket: SocketId },
    /// Close an RTP socket.
    CloseSocket { socket: SocketId },
    /// Write these files (each whole, in order) and report with
    /// [`MediaEndpoint::files_written`].
    WriteFiles {
        id: u64,
        files: Vec<(PathBuf, Vec<u8>)>,
    },
}

/// A sans-IO media peer, as the driver sees it.
pub(crate) trait MediaEndpoint: Send + 'static {
    /// One SIP datagram from `from`.
    fn handle_sip(&mut self, now: Instant, from: SocketAddr, datagram: Bytes);
    /// One datagram on RTP socket `socket`, from `from`, arrived at `now`.
    fn handle_rtp(&mut self, now: Instant, socket: SocketId, from: SocketAddr, datagram: &[u8]);
    /// Runs whatever is due at `now`.
    fn handle_timeout(&mut self, now: Instant);
    /// A socket asked for is bound (its address), or could not be.
    fn socket_opened(&mut self, now: Instant, socket: SocketId, bound: Result<SocketAddr, String>);
    /// Files asked for are written, or could not be.
    fn files_written(&mut self, now: Instant, id: u64, written: Result<(), String>);
    /// The lab stops: end what is under way (writing what must be written).
    fn shut_down(&mut self, now: Instant);
    fn poll_output(&mut self) -> Option<Output>;
    /// When [`MediaEndpoint::handle_timeout`] is due next (possibly early).
    fn poll_timeout(&self) -> Option<Instant>;
    /// Whether the peer is done: the driver then stops.
    fn is_finished(&self) -> bool;
}

impl<M: MediaEndpoint> Running<M> {
    /// Binds the SIP socket on `listen`, builds the core for the bound
    /// address, the current time and the wall clock (Unix ms), and starts
    /// the media driver's task.
    pub(crate) async fn bind_media(
        what: &str,
        listen: SocketAddr,
        core: impl FnOnce(SocketAddr, Instant, u64) -> M,
    ) -> Result<Running<M>, SipError> {
        let (socket, local_addr) = bind_udp(what, listen).await?;
        let clock = Clock::start();
        let core = core(local_addr, clock.now().into_std(), clock.unix_ms());
        Ok(Running::start(
            local_addr,
            clock,
            core,
            |core, wake, stop| run(socket, clock, core, wake, stop),
        ))
    }
}

/// One datagram from an RTP reader: its socket, source, bytes and arrival.
type Arrival = (SocketId, SocketAddr, Bytes, Instant);

/// The driver's side of the RTP sockets.
struct RtpSockets {
    sockets: HashMap<SocketId, (Arc<UdpSocket>, CancellationToken)>,
    arrivals: mpsc::Sender<Arrival>,
    clock: Clock,
    /// Cancels every reader when the driver stops.
    stop: CancellationToken,
}

impl RtpSockets {
    /// Binds an RTP socket (and its RTCP neighbour) on `ip` and starts
    /// their readers.
    fn open(&mut self, socket: SocketId, ip: std::net::IpAddr) -> Result<SocketAddr, String> {
        let (rtp, rtcp) = bind_pair(ip).map_err(|error| error.to_string())?;
        let tokio_socket = |std_socket: std::net::UdpSocket| {
            std_socket.set_nonblocking(true)?;
            UdpSocket::from_std(std_socket).map(Arc::new)
        };
        let rtp = tokio_socket(rtp).map_err(|error| error.to_string())?;
        let addr = rtp.local_addr().map_err(|error| error.to_string())?;
        let reader_stop = self.stop.child_token();
        let readers = [
            Some(Arc::clone(&rtp)),
            rtcp.and_then(|s| tokio_socket(s).ok()),
        ];
        for udp in readers.into_iter().flatten() {
            tokio::spawn(read_rtp(
                socket,
                udp,
                self.arrivals.clone(),
                self.clock,
                reader_stop.clone(),
            ));
        }
        self.sockets.insert(socket, (rtp, reader_stop));
        Ok(addr)
    }

    fn close(&mut self, socket: SocketId) {
        if let Some((_, reader_stop)) = self.sockets.remove(&socket) {
            reader_stop.cancel();
        }
    }

    fn get(&self, socket: SocketId) -> Option<Arc<UdpSocket>> {
        self.sockets.get(&socket).map(|(s, _)| Arc::clone(s))
    }
}

/// A datagram to send, from the SIP socket (`None`) or an RTP socket.
type Datagram = (Option<Arc<UdpSocket>>, SocketAddr, Bytes);

async fn run<M: MediaEndpoint>(
    sip: UdpSocket,
    clock: Clock,
    core: Arc<Mutex<M>>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let sip_ip = sip
        .local_addr()
        .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), |a| {
            a.ip()
        });
    let (arrivals_tx, mut arrivals) = mpsc::channel::<Arrival>(RTP_QUEUE);
    let readers_stop = CancellationToken::new();
    let mut rtp = RtpSockets {
        sockets: HashMap::new(),
        arrivals: arrivals_tx,
        clock,
        stop: readers_stop.clone(),
    };
    let mut writes: JoinSet<(u64, Result<(), String>)> = JoinSet::new();
    let mut sends: Vec<Datagram> = Vec::new();
    let mut buffer = vec![0u8; 65_535];
    let now = || clock.now().into_std();
    loop {
        let (deadline, finished) = {
            let mut core = lock(&core);
            let now = now();
            if core.poll_timeout().is_some_and(|at| at <= now) {
                core.handle_timeout(now);
            }
            drain(&mut *core, now, sip_ip, &mut rtp, &mut writes, &mut sends);
            (core.poll_timeout(), core.is_finished())
        };
        send_all(&sip, &mut sends).await;
        if finished {
            break;
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => {
                // End the calls (their files are written now) before stopping.
                {
                    let mut core = lock(&core);
                    let now = now();
                    core.shut_down(now);
                    drain(&mut *core, now, sip_ip, &mut rtp, &mut writes, &mut sends);
                }
                send_all(&sip, &mut sends).await;
                break;
            }
            () = wake.notified() => {}
            received = sip.recv_from(&mut buffer) => match received {
                Ok((len, from)) => {
                    let mut core = lock(&core);
                    core.handle_sip(now(), from, Bytes::copy_from_slice(&buffer[..len]));
                    for _ in 1..MAX_BATCH {
                        match sip.try_recv_from(&mut buffer) {
                            Ok((len, from)) => core.handle_sip(
                                now(),
                                from,
                                Bytes::copy_from_slice(&buffer[..len]),
                            ),
                            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                            Err(error) => {
                                tracing::debug!(%error, "media sip receive failed");
                                break;
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "media sip receive failed");
                    tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                }
            },
            Some((socket, from, bytes, at)) = arrivals.recv() => {
                let mut core = lock(&core);
                core.handle_rtp(at, socket, from, &bytes);
                for _ in 1..MAX_BATCH {
                    match arrivals.try_recv() {
                        Ok((socket, from, bytes, at)) => core.handle_rtp(at, socket, from, &bytes),
                        Err(_) => break,
                    }
                }
            }
            Some(written) = writes.join_next(), if !writes.is_empty() => {
                let (id, result) = written.unwrap_or_else(|error| (0, Err(error.to_string())));
                lock(&core).files_written(now(), id, result);
            }
            () = sleep_until(deadline) => {}
        }
    }
    // Whatever is still being written is waited for, so a stopped peer has
    // its files on disk.
    while let Some(written) = writes.join_next().await {
        let (id, result) = written.unwrap_or_else(|error| (0, Err(error.to_string())));
        lock(&core).files_written(now(), id, result);
    }
    readers_stop.cancel();
}

/// Moves the core's output into the world: datagrams to `sends`, sockets
/// opened (and reported to the core at once) or closed, files handed to
/// blocking tasks.
fn drain<M: MediaEndpoint>(
    core: &mut M,
    now: Instant,
    ip: std::net::IpAddr,
    rtp: &mut RtpSockets,
    writes: &mut JoinSet<(u64, Result<(), String>)>,
    sends: &mut Vec<Datagram>,
) {
    while let Some(output) = core.poll_output() {
        match output {
            Output::Sip { to, bytes } => sends.push((None, to, bytes)),
            Output::Rtp { socket, to, bytes } => match rtp.get(socket) {
                Some(socket) => sends.push((Some(socket), to, bytes)),
                None => tracing::debug!(socket, "media: send on a closed socket"),
            },
            Output::OpenSocket { socket } => {
                let bound = rtp.open(socket, ip);
                if let Err(error) = &bound {
                    tracing::warn!(%error, "media: cannot bind an RTP socket");
                }
                core.socket_opened(now, socket, bound);
            }
            Output::CloseSocket { socket } => rtp.close(socket),
            Output::WriteFiles { id, files } => {
                writes.spawn_blocking(move || (id, write_files(files)));
            }
        }
    }
}

async fn send_all(sip: &UdpSocket, sends: &mut Vec<Datagram>) {
    for (socket, to, bytes) in sends.drain(..) {
        let sent = match &socket {
            Some(socket) => socket.send_to(&bytes, to).await,
            None => sip.send_to(&bytes, to).await,
        };
        if let Err(error) = sent {
            tracing::debug!(%to, %error, "media send failed");
        }
    }
}

/// An even port for RTP with the next one bound for RTCP; after
/// [`PAIR_TRIES`] misses, RTP alone on any free port.
fn bind_pair(
    ip: std::net::IpAddr,
) -> io::Result<(std::net::UdpSocket, Option<std::net::UdpSocket>)> {
    for _ in 0..PAIR_TRIES {
        let rtp = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 {
            continue;
        }
        if let Ok(rtcp) = std::net::UdpSocket::bind(SocketAddr::new(ip, port + 1)) {
            return Ok((rtp, Some(rtcp)));
        }
    }
    Ok((std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?, None))
}

/// Writes each file through a temporary name and a rename.
fn write_files(files: Vec<(PathBuf, Vec<u8>)>) -> Result<(), String> {
    for (path, bytes) in files {
        let fail = |error: io::Error| format!("{}: {error}", path.display());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        let mut temporary = path.clone().into_os_string();
        temporary.push(".part");
        std::fs::write(&temporary, &bytes).map_err(fail)?;
        std::fs::rename(&temporary, &path).map_err(fail)?;
    }
    Ok(())
}

async fn read_rtp(
    socket: SocketId,
    udp: Arc<UdpSocket>,
    arrivals: mpsc::Sender<Arrival>,
    clock: Clock,
    stop: CancellationToken,
) {
    let mut buffer = vec![0u8; 2_048];
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            received = udp.recv_from(&mut buffer) => match received {
                Ok((len, from)) => {
                    let arrival = (socket, from, Bytes::copy_from_slice(&buffer[..len]), clock.now().into_std());
                    if arrivals.send(arrival).await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "media rtp receive failed");
                    tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                }
            },
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
