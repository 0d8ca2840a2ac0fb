//! Sockets the SIP systems share (voice's trunk proxy, the site's registrar
//! and proxy).

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// The UDP buffers asked for. At 5,000 calls/s (35,000 datagrams/s in) a
/// 10 ms scheduling gap is 350 datagrams, more than the kernel's default
/// 208 KiB holds; a registration storm at a site is the same shape.
pub const UDP_BUFFER: usize = 4 << 20;

/// A non-blocking UDP socket bound to `addr` with [`UDP_BUFFER`] receive and
/// send buffers (the kernel caps them at `net.core.rmem_max` / `wmem_max`;
/// a refusal is logged, not fatal).
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(error) = socket.set_recv_buffer_size(UDP_BUFFER) {
        tracing::warn!(%error, "cannot enlarge the UDP receive buffer");
    }
    if let Err(error) = socket.set_send_buffer_size(UDP_BUFFER) {
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
