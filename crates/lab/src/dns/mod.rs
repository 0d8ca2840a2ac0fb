//! A tiny authoritative DNS server on UDP, for the HTTP API's single URL whose
//! record moves on failure (SPEC M2).
//!
//! - A query for a known name answers its IPv4 addresses (A) or IPv6 addresses
//!   (AAAA), each with the configured TTL; a type it has no address of
//!   (AAAA for an IPv4-only name, MX, …) answers NOERROR with no records.
//! - An unknown name answers NXDOMAIN; every answer is authoritative (AA) and
//!   echoes the id, opcode, RD and the question as sent (RFC 1035).
//! - Another class than IN (or ANY) is REFUSED; a malformed question FORMERR;
//!   another opcode NOTIMP. Datagrams shorter than a header, and responses, are
//!   ignored. Nothing a datagram holds can stop the server.
//! - [`LabHandle::set_dns`](crate::LabHandle::set_dns) moves a record at run
//!   time; queries are counted per name so tests see re-resolution.
//!
//! UDP only: answers never exceed 512 bytes (extra records are cut, with TC).

mod codec;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::{normalize_dns_name, LabConfig};
use crate::lab::LabError;
use crate::port::lock;
use crate::shared::Shared;
use crate::stats::DnsStats;
use codec::{Datagram, Rcode, CLASS_ANY, CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_ANY};

/// Largest datagram read: queries are small; anything longer is cut, and
/// garbage anyway.
const MAX_QUERY: usize = 4096;

/// Pause after a failed receive.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// The DNS server's records and counters.
pub(crate) struct DnsServer {
    pub(crate) addr: SocketAddr,
    ttl_s: u32,
    state: Mutex<DnsState>,
}

#[derive(Debug, Default)]
struct DnsState {
    records: BTreeMap<String, Vec<IpAddr>>,
    queries: BTreeMap<String, u64>,
    answered: u64,
    nxdomain: u64,
    errors: u64,
    ignored: u64,
}

/// Binds the server's socket, if `[lab.dns]` is configured.
pub(crate) fn bind(config: &LabConfig) -> Result<Option<(DnsServer, UdpSocket)>, LabError> {
    let Some(dns) = &config.dns else {
        return Ok(None);
    };
    let listen_error = |source| LabError::Listen {
        what: "dns".to_owned(),
        addr: dns.listen,
        source,
    };
    let socket = UdpSocket::bind(dns.listen).map_err(listen_error)?;
    let addr = socket.local_addr().map_err(listen_error)?;
    let records = dns
        .records
        .iter()
        .filter_map(|record| {
            // Validated already: every name normalizes.
            let name = normalize_dns_name(&record.name).ok()?;
            Some((name, record.addrs.clone()))
        })
        .collect();
    let server = DnsServer {
        addr,
        ttl_s: dns.ttl_s,
        state: Mutex::new(DnsState {
            records,
            ..DnsState::default()
        }),
    };
    Ok(Some((server, socket)))
}

/// Serves queries on `socket` until the lab shuts down.
pub(crate) fn start(shared: &Arc<Shared>, socket: UdpSocket) -> Result<(), LabError> {
    let Some(dns) = &shared.dns else {
        return Ok(());
    };
    let addr = dns.addr;
    let listen_error = |source| LabError::Listen {
        what: "dns".to_owned(),
        addr,
        source,
    };
    socket.set_nonblocking(true).map_err(listen_error)?;
    let _runtime = shared.runtime.enter();
    let socket = tokio::net::UdpSocket::from_std(socket).map_err(listen_error)?;
    let task_shared = Arc::clone(shared);
    shared.tasks.spawn(async move {
        tokio::select! {
            () = task_shared.shutdown.cancelled() => {}
            () = serve(&task_shared, &socket) => {}
        }
    });
    tracing::info!(%addr, "dns listening");
    Ok(())
}

async fn serve(shared: &Shared, socket: &tokio::net::UdpSocket) {
    let Some(dns) = &shared.dns else {
        return;
    };
    let mut buffer = vec![0; MAX_QUERY];
    loop {
        let (len, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) => {
                // On Linux a previous answer's ICMP "port unreachable" can
                // surface here; the socket itself is fine. The pause keeps a
                // lasting error from spinning.
                tracing::debug!(%error, "dns receive failed");
                tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                continue;
            }
        };
        if let Some(answer) = dns.handle(&buffer[..len]) {
            if let Err(error) = socket.send_to(&answer, peer).await {
                tracing::debug!(%error, %peer, "dns answer not sent");
            }
        }
    }
}

impl DnsServer {
    /// The answer to one datagram, if it deserves one.
    fn handle(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let mut state = lock(&self.state);
        let query = match codec::parse(packet) {
            Datagram::Ignore => {
                state.ignored += 1;
                return None;
            }
            Datagram::Bad { id, flags, rcode } => {
                state.errors += 1;
                return Some(codec::error(id, flags, rcode));
            }
            Datagram::Query(query) => query,
        };
        *state.queries.entry(query.name.clone()).or_default() += 1;
        if query.qclass != CLASS_IN && query.qclass != CLASS_ANY {
            state.errors += 1;
            return Some(codec::answer(&query, Rcode::Refused, &[], self.ttl_s));
        }
        let Some(addrs) = state.records.get(&query.name) else {
            state.nxdomain += 1;
            return Some(codec::answer(&query, Rcode::NxDomain, &[], self.ttl_s));
        };
        let wanted: Vec<IpAddr> = addrs
            .iter()
            .copied()
            .filter(|addr| match query.qtype {
                TYPE_A => addr.is_ipv4(),
                TYPE_AAAA => addr.is_ipv6(),
                TYPE_ANY => true,
                _ => false,
            })
            .collect();
        state.answered += 1;
        Some(codec::answer(&query, Rcode::NoError, &wanted, self.ttl_s))
    }

    /// Points `name` at `addrs`, adding it if new. Returns the normalized name.
    pub(crate) fn set(&self, name: &str, addrs: Vec<IpAddr>) -> Result<String, LabError> {
        let name = normalize_dns_name(name).map_err(LabError::InvalidDns)?;
        tracing::info!(%name, ?addrs, "dns record set");
        lock(&self.state).records.insert(name.clone(), addrs);
        Ok(name)
    }

    /// How many queries named `name` (any case, trailing dot or not).
    pub(crate) fn queries(&self, name: &str) -> u64 {
        let name = normalize_dns_name(name).unwrap_or_default();
        lock(&self.state).queries.get(&name).copied().unwrap_or(0)
    }

    pub(crate) fn stats(&self) -> DnsStats {
        let state = lock(&self.state);
        DnsStats {
            addr: self.addr,
            ttl_s: self.ttl_s,
            records: state.records.clone(),
            queries: state.queries.clone(),
            answered: state.answered,
            nxdomain: state.nxdomain,
            errors: state.errors,
            ignored: state.ignored,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::config::DnsConfig;

    fn server() -> DnsServer {
        let mut config = LabConfig::loopback(&[]);
        let addr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
        config.dns = Some(DnsConfig::loopback(&[("sms.lab.test", &[addr])]));
        let (server, _socket) = bind(&config).expect("bind").expect("configured");
        server
    }

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut packet = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            packet.push(label.len() as u8);
            packet.extend_from_slice(label.as_bytes());
        }
        packet.extend_from_slice(&[0, (qtype >> 8) as u8, qtype as u8, 0, 1]);
        packet
    }

    /// SPEC M2: known names answer, others are NXDOMAIN, every query is counted.
    #[test]
    fn answers_known_names_and_counts_queries() {
        let server = server();
        let a = server
            .handle(&query("sms.lab.test", TYPE_A))
            .expect("answer");
        assert_eq!((a[3] & 0x0F, a[7]), (0, 1), "NOERROR, one record");
        let aaaa = server
            .handle(&query("SMS.lab.test", TYPE_AAAA))
            .expect("answer");
        assert_eq!((aaaa[3] & 0x0F, aaaa[7]), (0, 0), "NOERROR, no record");
        let nx = server.handle(&query("other.test", TYPE_A)).expect("answer");
        assert_eq!(nx[3] & 0x0F, 3, "NXDOMAIN");
        assert_eq!(server.handle(b"junk"), None);
        assert_eq!(server.queries("sms.lab.test."), 2);
        server
            .set(
                "sms.lab.test",
                vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))],
            )
            .expect("set");
        let moved = server
            .handle(&query("sms.lab.test", TYPE_A))
            .expect("answer");
        assert_eq!(&moved[moved.len() - 4..], &[127, 0, 0, 2]);
        let stats = server.stats();
        assert_eq!((stats.answered, stats.nxdomain, stats.ignored), (3, 1, 1));
    }
}
