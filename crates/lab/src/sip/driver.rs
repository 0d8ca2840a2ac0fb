//! Runs a SIP peer's core on a UDP socket: one task per peer that only moves
//! datagrams and time (DESIGN.md). The core sits behind a mutex so that its
//! handle can read counters and steer it (faults, holds) between datagrams.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::SipError;
use crate::clock::Clock;
use crate::port::lock;

/// Most datagrams taken per wake-up before the answers go out.
const MAX_BATCH: usize = 64;

/// Pause after a failed receive, so a lasting error does not spin (on Linux an
/// earlier send's ICMP "port unreachable" can surface on the next receive).
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(1);

/// A sans-IO SIP peer, as the driver sees it.
pub(crate) trait Endpoint: Send + 'static {
    /// One datagram from `from`.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: Bytes);
    /// Runs whatever is due at `now`.
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send, and where.
    fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)>;
    /// When [`Endpoint::handle_timeout`] is due next (possibly early).
    fn poll_timeout(&self) -> Option<Instant>;
    /// Whether the peer is done: the driver then stops.
    fn is_finished(&self) -> bool;
}

/// A peer's core running on its socket(s): the handle the SIP peers and the
/// media peers (`media/driver.rs`, which starts its own task) share.
pub(crate) struct Running<M> {
    core: Arc<Mutex<M>>,
    clock: Clock,
    local_addr: SocketAddr,
    wake: Arc<Notify>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl<M: Endpoint> Running<M> {
    /// Binds `listen`, builds the core for the bound address, and starts.
    pub(crate) async fn bind(
        what: &str,
        listen: SocketAddr,
        core: impl FnOnce(SocketAddr) -> M,
    ) -> Result<Running<M>, SipError> {
        let (socket, local_addr) = bind_udp(what, listen).await?;
        let clock = Clock::start();
        Ok(Running::start(
            local_addr,
            clock,
            core(local_addr),
            |core, wake, stop| run(socket, clock, core, wake, stop),
        ))
    }
}

/// Binds the UDP socket a peer listens on; the error names the peer.
pub(crate) async fn bind_udp(
    what: &str,
    listen: SocketAddr,
) -> Result<(UdpSocket, SocketAddr), SipError> {
    let bind_error = |source| SipError::Bind {
        what: what.to_owned(),
        addr: listen,
        source,
    };
    let socket = UdpSocket::bind(listen).await.map_err(bind_error)?;
    let local_addr = socket.local_addr().map_err(bind_error)?;
    Ok((socket, local_addr))
}

impl<M: Send + 'static> Running<M> {
    /// Puts `core` behind the handle and spawns the task `task` makes of it.
    pub(crate) fn start<F>(
        local_addr: SocketAddr,
        clock: Clock,
        core: M,
        task: impl FnOnce(Arc<Mutex<M>>, Arc<Notify>, CancellationToken) -> F,
    ) -> Running<M>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let core = Arc::new(Mutex::new(core));
        let wake = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(task(Arc::clone(&core), Arc::clone(&wake), stop.clone()));
        Running {
            core,
            clock,
            local_addr,
            wake,
            stop,
            task: Some(task),
        }
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Reads the core at the current time, between datagrams.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&M, Instant) -> R) -> R {
        f(&lock(&self.core), self.clock.now().into_std())
    }

    /// Reads or changes the core between datagrams.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut M) -> R) -> R {
        f(&mut lock(&self.core))
    }

    /// Changes the core with the current time, then has the task look at its
    /// deadline again.
    pub(crate) fn steer<R>(&self, f: impl FnOnce(&mut M, Instant) -> R) -> R {
        let result = f(&mut lock(&self.core), self.clock.now().into_std());
        self.wake.notify_one();
        result
    }

    /// Waits until the core is finished (or the task stopped).
    pub(crate) async fn finished(&mut self) {
        if let Some(task) = self.task.as_mut() {
            let _ = task.await;
            self.task = None;
        }
    }

    /// Stops the task and waits for it.
    pub(crate) async fn shutdown(mut self) {
        self.stop.cancel();
        self.finished().await;
    }
}

impl<M> Drop for Running<M> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn run<M: Endpoint>(
    socket: UdpSocket,
    clock: Clock,
    core: Arc<Mutex<M>>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut buffer = vec![0u8; 65_535];
    let mut outbox = Vec::new();
    let now = || clock.now().into_std();
    loop {
        let (deadline, finished) = {
            let mut core = lock(&core);
            let now = now();
            if core.poll_timeout().is_some_and(|at| at <= now) {
                core.handle_timeout(now);
            }
            outbox.extend(std::iter::from_fn(|| core.poll_transmit()));
            (core.poll_timeout(), core.is_finished())
        };
        for (to, bytes) in outbox.drain(..) {
            if let Err(error) = socket.send_to(&bytes, to).await {
                tracing::debug!(%to, %error, "sip send failed");
            }
        }
        if finished {
            return;
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            () = wake.notified() => {}
            received = socket.recv_from(&mut buffer) => match received {
                Ok((len, from)) => {
                    let mut core = lock(&core);
                    core.handle_datagram(now(), from, Bytes::copy_from_slice(&buffer[..len]));
                    for _ in 1..MAX_BATCH {
                        match socket.try_recv_from(&mut buffer) {
                            Ok((len, from)) => core.handle_datagram(
                                now(),
                                from,
                                Bytes::copy_from_slice(&buffer[..len]),
                            ),
                            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                            Err(error) => {
                                tracing::debug!(%error, "sip receive failed");
                                break;
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "sip receive failed");
                    tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                }
            },
            () = sleep_until(deadline) => {}
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
