//! The inter-site link over real sockets (SPEC S4): UDP and TCP relayed both
//! ways, dropped and reset while cut, relayed again once restored. Two plain
//! sockets stand for the sites.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hotsite_lab::{Link, LinkConfig, LinkState, LinkStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::timeout;

use crate::client::{QUIET, TIMEOUT};

async fn udp() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// The next datagram and its source; panics after `TIMEOUT`.
async fn receive(socket: &UdpSocket) -> (String, SocketAddr) {
    let mut buffer = [0; 1500];
    let (len, from) = timeout(TIMEOUT, socket.recv_from(&mut buffer))
        .await
        .expect("a datagram in time")
        .unwrap();
    (String::from_utf8_lossy(&buffer[..len]).into_owned(), from)
}

/// True if nothing arrives within `QUIET`.
async fn nothing_arrives(socket: &UdpSocket) -> bool {
    let mut buffer = [0; 1500];
    timeout(QUIET, socket.recv_from(&mut buffer)).await.is_err()
}

/// The link's counters once `done` holds; panics after about 800 ms.
async fn stats_until(link: &Link, done: impl Fn(&LinkStats) -> bool) -> LinkStats {
    for _ in 0..80 {
        let stats = link.stats();
        if done(&stats) {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the link's counters did not settle: {:#?}", link.stats());
}

/// SPEC S4: each site talks to the relay's address facing it, sees the other
/// site's traffic come from there, and answers to it; a cut drops every
/// datagram both ways, a restore lets them through again.
#[tokio::test]
async fn udp_is_relayed_both_ways_dropped_while_cut_and_relayed_again() {
    let (site_a, site_b) = (udp().await, udp().await);
    let link = Link::start(LinkConfig::new(
        "ab",
        site_a.local_addr().unwrap(),
        site_b.local_addr().unwrap(),
    ))
    .await
    .unwrap();
    let (a_addr, b_addr) = (link.a_addr(), link.b_addr());

    site_a.send_to(b"OPTIONS from a", a_addr).await.unwrap();
    assert_eq!(
        receive(&site_b).await,
        ("OPTIONS from a".to_owned(), b_addr)
    );
    site_b.send_to(b"200 from b", b_addr).await.unwrap();
    assert_eq!(receive(&site_a).await, ("200 from b".to_owned(), a_addr));
    site_b.send_to(b"INVITE from b", b_addr).await.unwrap();
    assert_eq!(receive(&site_a).await, ("INVITE from b".to_owned(), a_addr));

    link.cut();
    assert!(link.is_cut());
    site_a.send_to(b"lost a", a_addr).await.unwrap();
    site_b.send_to(b"lost b", b_addr).await.unwrap();
    assert!(nothing_arrives(&site_b).await, "cut: nothing reaches b");
    assert!(nothing_arrives(&site_a).await, "cut: nothing reaches a");
    let stats = link.stats();
    assert_eq!(stats.state, LinkState::Cut);
    assert_eq!(
        (
            stats.a_to_b.datagrams_dropped,
            stats.b_to_a.datagrams_dropped
        ),
        (1, 1)
    );

    link.restore().unwrap();
    site_a.send_to(b"back", a_addr).await.unwrap();
    assert_eq!(receive(&site_b).await, ("back".to_owned(), b_addr));
    site_b.send_to(b"back too", b_addr).await.unwrap();
    assert_eq!(receive(&site_a).await, ("back too".to_owned(), a_addr));
    let stats = stats_until(&link, |s| s.b_to_a.datagrams_relayed == 3).await;
    assert_eq!(stats.state, LinkState::Up);
    assert_eq!(stats.a_to_b.datagrams_relayed, 2);
    assert_eq!(stats.cuts, 1);
    link.shutdown().await;
}

/// Reads until `want` bytes came; panics after `TIMEOUT`.
async fn read_text(stream: &mut TcpStream, want: usize) -> String {
    let mut buffer = vec![0; want];
    timeout(TIMEOUT, stream.read_exact(&mut buffer))
        .await
        .expect("bytes in time")
        .unwrap();
    String::from_utf8(buffer).unwrap()
}

/// What a read gets once the relay gave up on the connection.
async fn read_error(stream: &mut TcpStream) -> io::Result<usize> {
    let mut buffer = [0; 16];
    timeout(TIMEOUT, stream.read(&mut buffer))
        .await
        .expect("the connection ends in time")
}

async fn accept(listener: &TcpListener) -> TcpStream {
    timeout(TIMEOUT, listener.accept())
        .await
        .expect("a connection in time")
        .unwrap()
        .0
}

/// SPEC S4 over TCP: connections either way are relayed; a cut resets them
/// at both ends and refuses new ones; after a restore they work again.
#[tokio::test]
async fn tcp_is_relayed_reset_by_a_cut_and_relayed_again() {
    let site_a = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site_b = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let link = Link::start(LinkConfig::new(
        "ab",
        site_a.local_addr().unwrap(),
        site_b.local_addr().unwrap(),
    ))
    .await
    .unwrap();

    let mut from_a = TcpStream::connect(link.a_addr()).await.unwrap();
    let mut at_b = accept(&site_b).await;
    from_a.write_all(b"hello b").await.unwrap();
    assert_eq!(read_text(&mut at_b, 7).await, "hello b");
    at_b.write_all(b"hello a").await.unwrap();
    assert_eq!(read_text(&mut from_a, 7).await, "hello a");

    link.cut();
    for (stream, side) in [(&mut from_a, "a"), (&mut at_b, "b")] {
        let error = read_error(stream)
            .await
            .expect_err("a reset, not a clean close");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "side {side}");
    }
    let refused = TcpStream::connect(link.a_addr())
        .await
        .expect_err("refused");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    assert!(TcpStream::connect(link.b_addr()).await.is_err());

    link.restore().unwrap();
    let mut from_b = TcpStream::connect(link.b_addr()).await.unwrap();
    let mut at_a = accept(&site_a).await;
    from_b.write_all(b"again").await.unwrap();
    assert_eq!(read_text(&mut at_a, 5).await, "again");
    // A clean close is passed on as one.
    drop(from_b);
    assert_eq!(read_error(&mut at_a).await.unwrap(), 0);

    let stats = stats_until(&link, |s| s.b_to_a.connections_relayed == 1).await;
    assert_eq!(stats.a_to_b.connections_relayed, 1);
    assert_eq!(stats.a_to_b.connections_reset, 1);
    link.shutdown().await;
}

/// A site that is down behind the link: the relay accepts, cannot connect,
/// and resets the accepted connection.
#[tokio::test]
async fn a_connection_to_a_dead_site_is_reset() {
    let site_a = udp().await;
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let link = Link::start(LinkConfig::new(
        "ab",
        site_a.local_addr().unwrap(),
        dead_addr,
    ))
    .await
    .unwrap();
    let mut from_a = TcpStream::connect(link.a_addr()).await.unwrap();
    let ended = read_error(&mut from_a).await;
    assert!(
        ended
            .as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset),
        "{ended:?}"
    );
    let stats = stats_until(&link, |s| s.a_to_b.connections_failed == 1).await;
    assert_eq!(stats.a_to_b.connections_relayed, 0);
    link.shutdown().await;
}
