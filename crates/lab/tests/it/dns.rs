//! The DNS server, through a real resolver (hickory), and the HTTP API's
//! single URL whose record moves between sites on one port (SPEC M2).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    NameServerConfig, NameServerConfigGroup, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;
use hotsite_lab::{DnsConfig, HttpConfig, Lab, LabConfig, LabHandle};
use serde_json::json;
use tokio::net::UdpSocket;

use crate::http_lab::{client, sms, submit};

const NAME: &str = "sms.lab.test.";
const SITE_A: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const SITE_B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A lab with DNS (TTL 1 s, `sms.lab.test` → 127.0.0.1) and two HTTP sites on
/// one port, `a` at 127.0.0.1 and `b` at 127.0.0.2.
async fn dns_lab() -> LabHandle {
    let mut config = LabConfig::loopback(&[]);
    config.http = Some(HttpConfig::shared_port(&[("a", SITE_A), ("b", SITE_B)]));
    config.dns = Some(DnsConfig::loopback(&[(NAME, &[SITE_A])]));
    Lab::start(config).await.expect("lab starts")
}

/// A resolver that asks only the lab's server, over UDP, and never reads
/// /etc/hosts.
fn resolver(server: SocketAddr) -> TokioResolver {
    let nameservers: NameServerConfigGroup =
        vec![NameServerConfig::new(server, Protocol::Udp)].into();
    let config = ResolverConfig::from_parts(None, Vec::new(), nameservers);
    let mut options = ResolverOpts::default();
    options.use_hosts_file = ResolveHosts::Never;
    options.timeout = Duration::from_millis(500);
    options.attempts = 2;
    TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
        .with_options(options)
        .build()
}

async fn resolve(resolver: &TokioResolver, name: &str) -> Vec<IpAddr> {
    resolver
        .lookup_ip(name)
        .await
        .expect("resolves")
        .iter()
        .collect()
}

/// SPEC M2: the record moves; a resolver keeps its answer for the TTL, then
/// asks again and gets the new address.
#[tokio::test]
async fn a_moved_record_is_seen_after_its_ttl() {
    let lab = dns_lab().await;
    let server = lab.dns_addr().expect("dns");
    let resolver = resolver(server);
    let resolved_at = test_clock();
    assert_eq!(resolve(&resolver, NAME).await, [SITE_A]);
    let asked = lab.dns_queries(NAME);
    assert!(asked >= 1, "{asked}");

    lab.set_dns(NAME, vec![SITE_B]).expect("move");
    // Within the TTL the cached answer stands and the server is not asked
    // (checked only if this machine was quick enough to still be within it).
    let cached = resolve(&resolver, NAME).await;
    if test_clock() - resolved_at < Duration::from_millis(800) {
        assert_eq!(cached, [SITE_A]);
        assert_eq!(lab.dns_queries(NAME), asked);
    }

    // After it (1 s), the resolver asks again: poll, bounded.
    let mut moved = false;
    for _ in 0..60 {
        if resolve(&resolver, NAME).await == [SITE_B] {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(moved, "still {:?}", resolve(&resolver, NAME).await);
    assert!(lab.dns_queries("SMS.LAB.TEST") > asked);
    lab.shutdown().await;
}

/// SPEC M2: unknown names are NXDOMAIN; an IPv4-only name has no AAAA.
#[tokio::test]
async fn unknown_names_are_nxdomain_and_aaaa_is_empty() {
    let lab = dns_lab().await;
    let resolver = resolver(lab.dns_addr().expect("dns"));
    let error = resolver
        .lookup_ip("nowhere.lab.test.")
        .await
        .expect_err("unknown");
    assert!(error.is_nx_domain(), "{error:?}");
    let error = resolver
        .ipv6_lookup(NAME)
        .await
        .expect_err("no AAAA record");
    assert!(
        error.is_no_records_found() && !error.is_nx_domain(),
        "{error:?}"
    );
    let stats = lab.stats();
    let dns = stats.dns.expect("dns stats");
    assert!(dns.nxdomain >= 1, "{dns:?}");
    assert!(dns
        .queries
        .get("nowhere.lab.test")
        .is_some_and(|count| *count >= 1));
    lab.shutdown().await;
}

/// RFC 1035: garbage is ignored or answered FORMERR with its id, and the
/// server keeps answering.
#[tokio::test]
async fn garbage_never_stops_the_server() {
    let lab = dns_lab().await;
    let server = lab.dns_addr().expect("dns");
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.send_to(b"\x00", server).await.expect("send");
    // A header announcing one question, and no question.
    socket
        .send_to(&[0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0], server)
        .await
        .expect("send");
    let mut buffer = [0u8; 512];
    let (len, _) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buffer))
        .await
        .expect("an answer")
        .expect("recv");
    assert_eq!(
        &buffer[..4],
        &[0xAB, 0xCD, 0x81, 0x01],
        "id, QR, RD, FORMERR"
    );
    assert_eq!(len, 12);
    let resolver = resolver(server);
    assert_eq!(resolve(&resolver, NAME).await, [SITE_A]);
    let dns = lab.stats().dns.expect("dns stats");
    assert_eq!((dns.ignored, dns.errors), (1, 1));
    lab.shutdown().await;
}

/// SPEC M2: one URL, `http://NAME:PORT/sms/send`, reaches site a, then site b
/// once the record moved (through the control API) and its TTL passed.
#[tokio::test]
async fn one_url_follows_the_record_between_sites_on_one_port() {
    let lab = dns_lab().await;
    let addrs = lab.http_site_addrs();
    assert_eq!(addrs[0].1.port(), addrs[1].1.port(), "{addrs:?}");
    assert_eq!((addrs[0].1.ip(), addrs[1].1.ip()), (SITE_A, SITE_B));
    let port = addrs[0].1.port();
    let resolver = resolver(lab.dns_addr().expect("dns"));
    let http = client();
    let url_now = |ip: IpAddr| format!("http://{}/sms/send", SocketAddr::new(ip, port));

    let ip = resolve(&resolver, NAME).await[0];
    let (_, answer) = submit(&http, &url_now(ip), &sms("dns-1", &[])).await;
    assert_eq!(answer["code"], 0, "{answer}");

    let control = format!("http://{}/v1/dns/records", lab.control_addr());
    let response = http
        .post(&control)
        .json(&json!({"name": "SMS.lab.test", "addrs": ["127.0.0.2"]}))
        .send()
        .await
        .expect("POST /v1/dns/records");
    assert_eq!(response.status(), 200);
    let mut ip = resolve(&resolver, NAME).await[0];
    for _ in 0..60 {
        if ip == SITE_B {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        ip = resolve(&resolver, NAME).await[0];
    }
    assert_eq!(ip, SITE_B);
    let (_, answer) = submit(&http, &url_now(ip), &sms("dns-2", &[])).await;
    assert_eq!(answer["code"], 0, "{answer}");

    let sites: Vec<String> = lab.handset_log().into_iter().map(|m| m.site).collect();
    assert_eq!(sites, ["a", "b"]);
    let bad = http
        .post(&control)
        .json(&json!({"name": "bad..name", "addrs": []}))
        .send()
        .await
        .expect("POST");
    assert_eq!(bad.status(), 400);
    lab.shutdown().await;
}

// The test's stopwatch: real loopback time (clippy.toml allows test clocks).
#[allow(clippy::disallowed_methods)]
fn test_clock() -> std::time::Instant {
    std::time::Instant::now()
}
