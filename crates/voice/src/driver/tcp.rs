//! TCP for the voice driver: one task per connection, and the table of open
//! connections by remote address.
//!
//! The proxy core names a TCP peer by its remote address
//! ([`Peer`](crate::proxy::Peer)); this table finds the connection for it, or
//! opens one (to a trunk, or to a caller's Contact for an in-dialog request).
//! A connection's task frames messages out of the stream with hotsite-sip's
//! `frame_len` (Content-Length is mandatory on streams, RFC 3261 §18.3) and
//! hands them to the driver's loop; a second task writes what the loop sends
//! it, in order. A connection that cannot be opened in time, or whose write
//! fails, is reported as [`TcpInput::Unreachable`] so the proxy moves its
//! calls on at once; one that ends is reported as [`TcpInput::Closed`] and
//! forgotten (the next message to that address opens a new one).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hotsite_sip::message::frame_len;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Messages waiting to be written on one connection; beyond this the peer is
/// not reading and further messages to it are dropped (UDP would lose them
/// too; the transactions' timeouts deal with either).
const WRITE_QUEUE: usize = 1024;

/// Connections at most (accepted and opened together): beyond it new
/// accepted connections are closed at once.
pub(super) const MAX_CONNECTIONS: usize = 4096;

/// What the connection tasks tell the driver's loop.
#[derive(Debug)]
pub(super) enum TcpInput {
    /// One framed message (or a keep-alive's CRLFs) from `0`.
    Message(SocketAddr, Bytes),
    /// `0` could not be reached: the connection was refused, timed out or a
    /// write failed. Messages queued for it are lost.
    Unreachable(SocketAddr, String),
    /// Connection `1` to `0` ended.
    Closed(SocketAddr, u64),
}

struct Conn {
    id: u64,
    outgoing: mpsc::Sender<Bytes>,
}

/// The open connections, by remote address.
pub(super) struct Connections {
    open: HashMap<SocketAddr, Conn>,
    inputs: mpsc::Sender<TcpInput>,
    next_id: u64,
    connect_timeout: Duration,
}

impl Connections {
    /// `inputs`: where every connection's messages and ends go.
    /// `connect_timeout`: how long opening a connection may take before its
    /// peer is reported unreachable.
    pub(super) fn new(inputs: mpsc::Sender<TcpInput>, connect_timeout: Duration) -> Connections {
        Connections {
            open: HashMap::new(),
            inputs,
            next_id: 1,
            connect_timeout,
        }
    }

    /// How many are open (or opening).
    pub(super) fn len(&self) -> usize {
        self.open.len()
    }

    /// A connection a peer opened to us.
    pub(super) fn accepted(&mut self, stream: TcpStream, peer: SocketAddr) {
        if self.open.len() >= MAX_CONNECTIONS {
            tracing::warn!(%peer, limit = MAX_CONNECTIONS, "TCP connection refused: too many open");
            return;
        }
        let _ = stream.set_nodelay(true);
        let (outgoing, queue) = mpsc::channel(WRITE_QUEUE);
        let id = self.id();
        // A peer that connects again replaces its old entry; the old
        // connection's task still ends on its own.
        self.open.insert(peer, Conn { id, outgoing });
        tokio::spawn(run(stream, peer, id, queue, self.inputs.clone()));
    }

    /// Sends `bytes` to `peer` on its connection, opening one if there is
    /// none.
    pub(super) fn send(&mut self, peer: SocketAddr, bytes: Bytes) {
        let bytes = match self.open.get(&peer) {
            Some(conn) => match conn.outgoing.try_send(bytes) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::debug!(%peer, "TCP write queue full: message dropped");
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(bytes)) => {
                    self.open.remove(&peer);
                    bytes
                }
            },
            None => bytes,
        };
        if self.open.len() >= MAX_CONNECTIONS {
            let _ = self.inputs.try_send(TcpInput::Unreachable(
                peer,
                format!("too many TCP connections open ({MAX_CONNECTIONS})"),
            ));
            return;
        }
        let (outgoing, queue) = mpsc::channel(WRITE_QUEUE);
        let _ = outgoing.try_send(bytes);
        let id = self.id();
        self.open.insert(peer, Conn { id, outgoing });
        let inputs = self.inputs.clone();
        let timeout = self.connect_timeout;
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(timeout, TcpStream::connect(peer)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    let _ = inputs
                        .send(TcpInput::Unreachable(peer, format!("TCP connect: {error}")))
                        .await;
                    let _ = inputs.send(TcpInput::Closed(peer, id)).await;
                    return;
                }
                Err(_) => {
                    let reason = format!(
                        "TCP connect: no answer within {:.1} s",
                        timeout.as_secs_f64()
                    );
                    let _ = inputs.send(TcpInput::Unreachable(peer, reason)).await;
                    let _ = inputs.send(TcpInput::Closed(peer, id)).await;
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            tracing::debug!(%peer, "TCP connection opened");
            run(stream, peer, id, queue, inputs).await;
        });
    }

    /// Connection `id` to `peer` ended: forgotten, unless a newer one took
    /// its place.
    pub(super) fn closed(&mut self, peer: SocketAddr, id: u64) {
        if self.open.get(&peer).is_some_and(|conn| conn.id == id) {
            self.open.remove(&peer);
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// One connection: reads and frames here, writes in a task of its own.
async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    mut queue: mpsc::Receiver<Bytes>,
    inputs: mpsc::Sender<TcpInput>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let writer_inputs = inputs.clone();
    let writing = tokio::spawn(async move {
        while let Some(bytes) = queue.recv().await {
            if let Err(error) = writer.write_all(&bytes).await {
                let _ = writer_inputs
                    .send(TcpInput::Unreachable(peer, format!("TCP write: {error}")))
                    .await;
                return;
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut buf = BytesMut::with_capacity(8 * 1024);
    'read: loop {
        loop {
            match frame_len(&buf) {
                Ok(Some(len)) => {
                    let message = buf.split_to(len).freeze();
                    if inputs.send(TcpInput::Message(peer, message)).await.is_err() {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    // A stream out of step cannot be resynchronised.
                    tracing::debug!(%peer, %error, "TCP stream unreadable: connection closed");
                    break 'read;
                }
            }
        }
        buf.reserve(8 * 1024);
        match reader.read_buf(&mut buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%peer, %error, "TCP read failed");
                break;
            }
        }
    }
    writing.abort();
    let _ = inputs.send(TcpInput::Closed(peer, id)).await;
}
