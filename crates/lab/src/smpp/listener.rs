//! One life of an SMSC instance's listener: accept connections until killed.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::smpp::session::Session;
use crate::smpp::{ListenerSlot, Shared};

/// Pause after a failed `accept` (out of file descriptors, say), so the loop
/// does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Accepts connections for instance `index` and runs a [`Session`] for each,
/// until `kill` is cancelled or the listener is taken out of `slot` (which is
/// how a death closes the port at once).
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    index: usize,
    slot: ListenerSlot,
    kill: CancellationToken,
) {
    let target = shared.instances[index].target.clone();
    tracing::info!(smsc = %target, addr = %shared.instances[index].addr, "listening");
    loop {
        let accepted = tokio::select! {
            () = kill.cancelled() => break,
            accepted = poll_fn(|cx| poll_accept(&slot, cx)) => accepted,
        };
        match accepted {
            None => break,
            Some(Ok((stream, peer))) => {
                shared.provider().record_connection(index);
                let span = tracing::info_span!("session", smsc = %target, %peer);
                let session = Session::new(Arc::clone(&shared), index, stream, kill.clone());
                shared.tasks.spawn(session.run().instrument(span));
            }
            Some(Err(error)) => {
                tracing::warn!(smsc = %target, %error, "accept failed");
                tokio::select! {
                    () = kill.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                }
            }
        }
    }
    // Whoever ends the loop, the port closes now.
    drop(slot.lock().unwrap_or_else(PoisonError::into_inner).take());
    tracing::info!(smsc = %target, "stopped listening");
}

/// Polls the listener in `slot`, holding its lock only for the poll; `None`
/// once the listener was taken away.
fn poll_accept(
    slot: &ListenerSlot,
    cx: &mut Context<'_>,
) -> Poll<Option<io::Result<(TcpStream, SocketAddr)>>> {
    let listener = slot.lock().unwrap_or_else(PoisonError::into_inner);
    match listener.as_ref() {
        Some(listener) => listener.poll_accept(cx).map(Some),
        None => Poll::Ready(None),
    }
}
