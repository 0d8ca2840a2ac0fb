//! A TCP port that can die and come back: the lifecycle every TCP server of
//! the lab shares (SMSC instances, HTTP sites, webhook receivers, the SMTP sink).
//!
//! A server lives as a sequence of *lives*: a listener and the connections it
//! accepted, sharing one kill token. Dying closes the listener on the spot (the
//! accept loop only borrows it while polling), so connects are refused as soon
//! as the fault change returns, and cancels the token, which resets the
//! connections a moment later. Coming back binds the same address again.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

/// Backlog of every listener: generous, so bursts of reconnects are not refused.
const LISTEN_BACKLOG: u32 = 1024;

/// Pause after a failed `accept` (out of file descriptors, say), so the loop
/// does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Where a life's listener lives, so that it can be closed synchronously.
pub(crate) type ListenerSlot = Arc<Mutex<Option<TcpListener>>>;

/// A server's address and its current life (`None` while dead). The life's
/// lock also serialises fault changes.
pub(crate) struct Port {
    /// The address it listens on, in every life.
    pub(crate) addr: SocketAddr,
    life: Mutex<Option<Life>>,
}

/// A listener and its connections.
pub(crate) struct Life {
    /// Cancelled when the server dies: ends the accept loop and resets connections.
    pub(crate) kill: CancellationToken,
    /// The listener, lent to the accept loop one poll at a time.
    pub(crate) listener: ListenerSlot,
}

impl Port {
    /// A port at `addr` (the bound address, never port 0), not yet alive.
    pub(crate) fn new(addr: SocketAddr) -> Port {
        Port {
            addr,
            life: Mutex::new(None),
        }
    }

    /// The current life, under the lock that serialises fault changes.
    pub(crate) fn life(&self) -> MutexGuard<'_, Option<Life>> {
        lock(&self.life)
    }

    /// Ends the current life, if any: the port refuses connects when it returns.
    pub(crate) fn die(&self) {
        if let Some(life) = self.life().take() {
            life.end();
        }
    }
}

impl Life {
    /// A life on `listener`, killed with `parent` (the lab's shutdown token).
    pub(crate) fn new(listener: TcpListener, parent: &CancellationToken) -> Life {
        Life {
            kill: parent.child_token(),
            listener: Arc::new(Mutex::new(Some(listener))),
        }
    }

    /// Closes the listener now and tells the connections to reset.
    pub(crate) fn end(self) {
        drop(lock(&self.listener).take());
        self.kill.cancel();
    }
}

/// A listener with `SO_REUSEADDR`, so a recovered server gets its port back
/// even if its old connections linger in the kernel.
pub(crate) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accepts connections from `slot` and hands each to `on_accept`, until `kill`
/// is cancelled or the listener is taken out of `slot` (which is how a death
/// closes the port at once). `what` names the server in logs.
pub(crate) async fn accept_loop(
    what: &str,
    slot: ListenerSlot,
    kill: CancellationToken,
    mut on_accept: impl FnMut(TcpStream, SocketAddr),
) {
    loop {
        let accepted = tokio::select! {
            () = kill.cancelled() => break,
            accepted = poll_fn(|cx| poll_accept(&slot, cx)) => accepted,
        };
        match accepted {
            None => break,
            Some(Ok((stream, peer))) => on_accept(stream, peer),
            Some(Err(error)) => {
                tracing::warn!(server = what, %error, "accept failed");
                tokio::select! {
                    () = kill.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                }
            }
        }
    }
    // Whoever ends the loop, the port closes now.
    drop(lock(&slot).take());
    tracing::info!(server = what, "stopped listening");
}

/// Polls the listener in `slot`, holding its lock only for the poll; `None`
/// once the listener was taken away.
fn poll_accept(
    slot: &ListenerSlot,
    cx: &mut Context<'_>,
) -> Poll<Option<io::Result<(TcpStream, SocketAddr)>>> {
    let listener = lock(slot);
    match listener.as_ref() {
        Some(listener) => listener.poll_accept(cx).map(Some),
        None => Poll::Ready(None),
    }
}

/// Locks a mutex that guards plain data. A panic while it was held (a bug)
/// leaves data still worth reading, so poisoning is ignored.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
