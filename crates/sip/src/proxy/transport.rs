//! Where a message comes from or goes: a transport and an address.
//!
//! A proxy core names the transport of every input and output; the driver
//! owns the sockets. Over UDP a peer is an address; over TCP it is a
//! connection, named by its remote address: answers to a request that came
//! over TCP go back on the connection it came on (RFC 3261 §18.2.2), and
//! requests to a TCP trunk go on the connection to its address, which the
//! driver opens when there is none.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

/// A SIP transport the proxies speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// UDP: messages retransmitted by the transactions.
    Udp,
    /// TCP: reliable, no retransmissions; messages framed by Content-Length.
    Tcp,
}

impl Transport {
    /// As in a Via header: `UDP`, `TCP`.
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// As in a URI's `transport` parameter and in config: `udp`, `tcp`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }

    /// From a Via's transport or a URI's `transport` parameter (any case);
    /// `None` for transports the proxies do not speak (TLS, SCTP, WS).
    pub fn parse(name: &[u8]) -> Option<Transport> {
        if name.eq_ignore_ascii_case(b"udp") {
            Some(Transport::Udp)
        } else if name.eq_ignore_ascii_case(b"tcp") {
            Some(Transport::Tcp)
        } else {
            None
        }
    }

    /// Whether the transactions may rely on it (no retransmissions).
    pub fn is_reliable(self) -> bool {
        self == Transport::Tcp
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The far end of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Over what.
    pub transport: Transport,
    /// The remote address (over TCP: of the connection).
    pub addr: SocketAddr,
}

impl Peer {
    /// A UDP peer.
    pub fn udp(addr: SocketAddr) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr,
        }
    }

    /// A TCP peer.
    pub fn tcp(addr: SocketAddr) -> Peer {
        Peer {
            transport: Transport::Tcp,
            addr,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

/// One message for the driver to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where.
    pub to: Peer,
    /// The whole message.
    pub bytes: Bytes,
}
