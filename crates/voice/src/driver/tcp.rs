//! TCP for the voice driver: one task per connection, and the table of open
//! connections by remote address.
//!
//! The proxy core names a TCP peer by its remote address
//! ([`Peer`](crate::proxy::Peer)); this table finds the connection for it, or
//! opens one (to a trunk, or to a caller's Contact for an in-dialog request).
//! A connection's task frames messages out of the stream with hotsite-sip's
//! `frame_len` (Content-Length is mandatory on streams, RFC 3261 §18.3) and
//! hands them to the driver's loop; a second task writes what the loop sends
//! it, in order. A connection that cannot be opened in time, whose write
//! fails, or whose peer stops reading (its write queue full) is reported as
//! [`TcpInput::Unreachable`] so the proxy moves its calls on at once; one
//! that ends (closed by the peer, or idle for [`IDLE_TIMEOUT`]) is reported
//! as [`TcpInput::Closed`] and forgotten: the next request to that address
//! opens a new one. Responses are only ever sent on an open connection: the
//! one the request came on is named by its source address, an ephemeral port
//! nobody listens on once the connection is gone (RFC 3261 §18.2.2's
//! fallback to the sent-by port is not done).
//!
//! Connections peers open to us are capped at [`MAX_ACCEPTED`], so they can
//! never use up what the connections to trunks need.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hotsite_sip::message::frame_len;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Messages waiting to be written on one connection; beyond this the peer is
/// not reading: it is reported unreachable and further messages to it are
/// dropped until the connection ends.
const WRITE_QUEUE: usize = 1024;

/// Connections peers opened to us, at most: beyond it new ones are closed at
/// once.
pub(super) const MAX_ACCEPTED: usize = 4096;

/// A connection on which nothing arrives for this long is closed (probes
/// keep a trunk's connection busier than that; Kamailio's
/// `tcp_connection_lifetime` defaults to the same).
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

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
    accepted: bool,
    /// Reported unreachable for a full queue already.
    stalled: bool,
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
        let accepted = self.open.values().filter(|c| c.accepted).count();
        if accepted >= MAX_ACCEPTED {
            tracing::warn!(%peer, limit = MAX_ACCEPTED, "TCP connection refused: too many accepted");
            return;
        }
        let _ = stream.set_nodelay(true);
        let (outgoing, queue) = mpsc::channel(WRITE_QUEUE);
        let id = self.id();
        // A live connection to the same address (ours to a trunk that also
        // connects from its listening port) keeps carrying what we send;
        // this one is read only, and its task ends on its own.
        let live = self
            .open
            .get(&peer)
            .is_some_and(|conn| !conn.outgoing.is_closed());
        if !live {
            self.open.insert(
                peer,
                Conn {
                    id,
                    outgoing,
                    accepted: true,
                    stalled: false,
                },
            );
        }
        tokio::spawn(run(stream, peer, id, queue, self.inputs.clone()));
    }

    /// Sends `bytes` to `peer` on its connection. A request opens one if
    /// there is none; a response without one is dropped (see the module
    /// docs).
    pub(super) fn send(&mut self, peer: SocketAddr, bytes: Bytes) {
        let bytes = match self.open.get_mut(&peer) {
            Some(conn) => match conn.outgoing.try_send(bytes) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::debug!(%peer, "TCP write queue full: message dropped");
                    if !conn.stalled {
                        conn.stalled = true;
                        let _ = self.inputs.try_send(TcpInput::Unreachable(
                            peer,
                            format!("TCP peer not reading ({WRITE_QUEUE} messages queued)"),
                        ));
                    }
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(bytes)) => {
                    self.open.remove(&peer);
                    bytes
                }
            },
            None => bytes,
        };
        if bytes.starts_with(b"SIP/2.0 ") {
            tracing::debug!(%peer, "response dropped: its TCP connection is gone");
            return;
        }
        let (outgoing, queue) = mpsc::channel(WRITE_QUEUE);
        let _ = outgoing.try_send(bytes);
        let id = self.id();
        self.open.insert(
            peer,
            Conn {
                id,
                outgoing,
                accepted: false,
                stalled: false,
            },
        );
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
        match tokio::time::timeout(IDLE_TIMEOUT, reader.read_buf(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TCP read failed");
                break;
            }
            Err(_) => {
                tracing::debug!(%peer, "TCP connection idle: closed");
                break;
            }
        }
    }
    writing.abort();
    let _ = inputs.send(TcpInput::Closed(peer, id)).await;
}
