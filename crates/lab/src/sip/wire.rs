//! Small pieces of SIP both peers need: SDP bodies, where a URI points, the
//! top Via's branch, and the retransmission schedule.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use hotsite_sip::message::{Header, HeaderName, Headers, Uri};

/// The default SIP port (§19.1.2).
const SIP_PORT: u16 = 5060;

/// A minimal SDP (RFC 4566) offer or answer: one PCMU audio stream at `addr`'s
/// IP. The media port is made up; nothing is sent to it.
pub(crate) fn sdp(addr: SocketAddr, session: u64, media_port: u16) -> Bytes {
    let family = if addr.is_ipv4() { "IP4" } else { "IP6" };
    let ip = addr.ip();
    Bytes::from(format!(
        "v=0\r\no=hotsite-lab {session} 1 IN {family} {ip}\r\ns=hotsite lab\r\n\
         c=IN {family} {ip}\r\nt=0 0\r\nm=audio {media_port} RTP/AVP 0\r\n\
         a=rtpmap:0 PCMU/8000\r\n"
    ))
}

/// Sets `body` as an SDP body (Content-Type; Content-Length follows the body
/// when the message is written).
pub(crate) fn set_sdp(headers: &mut Headers, body: &mut Bytes, sdp: Bytes) {
    headers.set(Header::new(
        HeaderName::ContentType,
        Bytes::from_static(b"application/sdp"),
    ));
    *body = sdp;
}

/// Where a SIP URI points: its host as an IP literal and its port (5060 if
/// none). Names are not resolved: `None`.
pub(crate) fn addr_of(uri: &Uri) -> Option<SocketAddr> {
    let sip = uri.sip()?;
    let host = sip.host_str();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, sip.port.unwrap_or(SIP_PORT)))
}

/// The top Via's branch.
pub(crate) fn branch(headers: &Headers) -> Option<String> {
    headers
        .top_via()
        .and_then(|via| via.branch().map(str::to_owned))
}

/// The next retransmission interval: doubled, at most `cap` (timers E and G;
/// timer A has no cap, pass `Duration::MAX`).
pub(crate) fn backoff(interval: Duration, cap: Duration) -> Duration {
    interval.saturating_mul(2).min(cap)
}

/// A seed for a new peer's branches, tags and Call-IDs: the wall clock, the
/// process id and a per-process counter, so two peers started in the same
/// millisecond (a demo starts several) never share one (RFC 3261 §8.1.1.7
/// wants them unique in space and time).
pub(crate) fn fresh_seed() -> u64 {
    static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    crate::clock::Clock::start().unix_ms()
        ^ (u64::from(std::process::id()) << 40)
        ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> Uri {
        Uri::parse(text.to_owned()).unwrap()
    }

    #[test]
    fn addr_of_takes_ip_literals_and_defaults_the_port() {
        assert_eq!(
            addr_of(&uri("sip:127.0.0.1:5070;lr")),
            Some("127.0.0.1:5070".parse().unwrap())
        );
        assert_eq!(
            addr_of(&uri("sip:bob@10.0.0.1")),
            Some("10.0.0.1:5060".parse().unwrap())
        );
        assert_eq!(
            addr_of(&uri("sip:[::1]:5080")),
            Some("[::1]:5080".parse().unwrap())
        );
        assert_eq!(addr_of(&uri("sip:carrier.example")), None);
        assert_eq!(addr_of(&uri("tel:+4420")), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let t1 = Duration::from_millis(500);
        let t2 = Duration::from_secs(4);
        let mut interval = t1;
        let mut seen = Vec::new();
        for _ in 0..5 {
            interval = backoff(interval, t2);
            seen.push(interval.as_millis());
        }
        assert_eq!(seen, [1000, 2000, 4000, 4000, 4000]);
        assert_eq!(backoff(t1, Duration::MAX), Duration::from_secs(1));
    }
}
