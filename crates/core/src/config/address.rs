//! Network addresses in config files.

use std::net::SocketAddr;

/// `ip:port` with an IP literal (`[::1]:5060` for IPv6); names are not
/// resolved, so a config that loads binds and sends where it says.
pub fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .map_err(|_| format!("{text:?} is not ip:port (names are not resolved)"))
}

/// `host:port` with a host (a name or an IP) and a port from 1 to 65535: a
/// peer that is resolved when it is connected to.
pub fn check_host_port(address: &str) -> Result<(), String> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("{address:?} must be host:port"));
    };
    if host.is_empty() {
        return Err(format!("{address:?} has no host"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{address:?} has no valid port (1-65535)")),
        Ok(_) => Ok(()),
    }
}
