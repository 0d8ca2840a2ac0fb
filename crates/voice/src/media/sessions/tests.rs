//! The anchored calls' table without the proxy: ports, SDP both ways, hold
//! (SPEC R1, R5), in simulated time.

use std::time::Duration;

use super::*;

#[allow(clippy::disallowed_methods)] // test epoch: only offsets from it matter
fn epoch() -> Instant {
    Instant::now()
}

fn setup(first: u16, last: u16) -> MediaSetup {
    MediaSetup {
        address: "203.0.113.5".parse().unwrap(),
        first_port: first,
        last_port: last,
        timers: RelayTimers {
            timeout: Duration::from_secs(60),
            hold_timeout: Duration::from_secs(7200),
            relatch_after: Duration::from_millis(500),
        },
        strict_source: true,
    }
}

fn info() -> AnchorInfo {
    AnchorInfo {
        trunk: "t1".into(),
        carrier: "c1".into(),
        group: "pstn".into(),
        media_region: "eu-west".into(),
        failover_region: "eu-central".into(),
    }
}

fn body(ip: &str, port: u16, direction: &str) -> Bytes {
    Bytes::from(format!(
        "v=0\r\nc=IN IP4 {ip}\r\nm=audio {port} RTP/AVP 0 8\r\na={direction}\r\n"
    ))
}

/// The table with a simulated driver that binds every port asked (but
/// those in `unbindable`) and keeps the other outputs.
struct Table {
    sessions: MediaSessions,
    outputs: Vec<MediaOutput>,
    unbindable: Vec<u16>,
    now: Instant,
}

impl Table {
    fn new(first: u16, last: u16) -> Table {
        Table::with_unbindable(first, last, Vec::new())
    }

    fn with_unbindable(first: u16, last: u16, unbindable: Vec<u16>) -> Table {
        let mut table = Table {
            sessions: MediaSessions::new(setup(first, last)),
            outputs: Vec::new(),
            unbindable,
            now: epoch(),
        };
        table.drive();
        table
    }

    fn drive(&mut self) {
        while let Some(output) = self.sessions.poll_output() {
            match output {
                MediaOutput::Bind(port) if self.unbindable.contains(&port) => {
                    self.sessions.handle_bind_failed(self.now, port)
                }
                MediaOutput::Bind(port) => self.sessions.handle_bound(port),
                other => self.outputs.push(other),
            }
        }
    }

    fn open(&mut self, call_id: &str, offer: Option<Bytes>) -> Result<Option<Bytes>, AnchorError> {
        let result = self
            .sessions
            .open(self.now, call_id, b"a-tag", offer.as_ref());
        self.drive();
        result
    }

    fn pairs(&self, call: u64) -> Vec<Option<[u16; 2]>> {
        self.outputs
            .iter()
            .find_map(|o| match o {
                MediaOutput::Open { id, streams, .. } if *id == call => Some(streams.clone()),
                _ => None,
            })
            .unwrap()
    }

    fn last_id(&self) -> u64 {
        self.outputs
            .iter()
            .rev()
            .find_map(|o| match o {
                MediaOutput::Open { id, .. } => Some(*id),
                _ => None,
            })
            .unwrap()
    }
}

fn port_of(body: &Bytes) -> u16 {
    Sdp::parse(body.clone()).unwrap().media()[0].port
}

/// Pairs are even RTP ports with RTCP on the next, taken bound, released
/// only when the relay closed them, and given back at the end of the line.
#[test]
fn ports_are_allocated_and_released_round_robin() {
    let mut table = Table::new(30_001, 30_019); // pairs 30002..=30018
    assert_eq!(table.sessions.stats().ports.total, 9);
    table
        .open("c1", Some(body("192.0.2.1", 4000, "sendrecv")))
        .unwrap();
    let id = table.last_id();
    let [a, b] = table.pairs(id)[0].unwrap();
    assert_eq!((a, b), (30_002, 30_004));
    assert_eq!(table.sessions.stats().ports.in_use, 2);
    table.sessions.release(table.now, "c1", MediaEnd::Bye);
    table.drive();
    assert_eq!(table.sessions.stats().ports.in_use, 2, "until closed");
    assert_eq!(table.sessions.handle_ended(id, false), None);
    table.drive();
    assert_eq!(table.sessions.stats().ports.in_use, 0);
    // The next call takes the next ports, not the ones just released.
    table
        .open("c2", Some(body("192.0.2.1", 4000, "sendrecv")))
        .unwrap();
    let [a2, b2] = table.pairs(table.last_id())[0].unwrap();
    assert!(a2 != a && a2 != b && b2 != a && b2 != b, "{a2} {b2}");
}

/// Exhaustion: an offer that finds no pairs is refused and holds nothing.
#[test]
fn exhaustion_refuses_and_holds_nothing() {
    let mut table = Table::new(30_000, 30_007); // 4 pairs: two calls
    table
        .open("c1", Some(body("192.0.2.1", 4000, "sendrecv")))
        .unwrap();
    table
        .open("c2", Some(body("192.0.2.1", 4002, "sendrecv")))
        .unwrap();
    let refused = table.open("c3", Some(body("192.0.2.1", 4004, "sendrecv")));
    assert!(
        matches!(refused, Err(AnchorError::NoPorts { .. })),
        "{refused:?}"
    );
    let stats = table.sessions.stats();
    assert_eq!(
        (stats.sessions, stats.ports_exhausted, stats.ports.in_use),
        (2, 1, 4)
    );
    // One pair left over would not do either (a call needs two).
    let mut odd = Table::new(30_000, 30_005); // 3 pairs
    odd.open("c1", Some(body("192.0.2.1", 4000, "sendrecv")))
        .unwrap();
    assert!(odd.open("c2", None).is_err());
    assert_eq!(odd.sessions.stats().ports.in_use, 2);
}

/// A pair that fails to bind rests and is tried again later; calls get
/// the others.
#[test]
fn unbindable_pairs_rest_and_come_back() {
    let mut table = Table::with_unbindable(30_000, 30_039, vec![30_000]);
    table
        .open("c1", Some(body("192.0.2.1", 4000, "sendrecv")))
        .unwrap();
    assert_eq!(table.pairs(table.last_id())[0], Some([30_002, 30_004]));
    let stats = table.sessions.stats();
    assert_eq!((stats.bind_failures, stats.ports.resting), (1, 1));
    assert_eq!(
        table.sessions.poll_timeout(),
        Some(table.now + super::super::ports::BAD_PORT_REST)
    );
    table.unbindable.clear();
    table.now += super::super::ports::BAD_PORT_REST;
    table.sessions.handle_timeout(table.now);
    table.drive();
    assert_eq!(table.sessions.stats().ports.resting, 0);
}

/// SPEC R1: SDP from leg a is rewritten with the b-side port (the trunk
/// sends there), from leg b with the a-side port; the far ends' addresses
/// are passed on; the same body again is served from the cache and not
/// reported twice.
#[test]
fn rewriting_follows_the_direction() {
    let mut table = Table::new(30_000, 30_039);
    let offer = table
        .open("c1", Some(body("192.0.2.1", 4000, "sendrecv")))
        .unwrap()
        .unwrap();
    let id = table.last_id();
    let [a, b] = table.pairs(id)[0].unwrap();
    assert_eq!(port_of(&offer), b);
    table.sessions.attempt(table.now, "c1", info());
    let answer = body("198.51.100.7", 6000, "sendrecv");
    let rewritten = table
        .sessions
        .sdp_from(table.now, "c1", Leg::B, &answer, SdpRole::Response)
        .unwrap()
        .unwrap();
    assert_eq!(port_of(&rewritten), a);
    let again = table
        .sessions
        .sdp_from(table.now, "c1", Leg::B, &answer, SdpRole::Response)
        .unwrap()
        .unwrap();
    assert_eq!(again, rewritten);
    table.drive();
    let reports = table
        .outputs
        .iter()
        .filter(|o| matches!(o, MediaOutput::Sdp { .. }))
        .count();
    assert_eq!(reports, 2, "one per distinct SDP: {:?}", table.outputs);
    let remotes: Vec<_> = table
        .outputs
        .iter()
        .filter_map(|o| match o {
            MediaOutput::Remote { leg, rtp, rtcp, .. } => Some((*leg, *rtp, *rtcp)),
            _ => None,
        })
        .collect();
    assert_eq!(
        remotes,
        [
            (
                Leg::A,
                Some("192.0.2.1:4000".parse().unwrap()),
                Some("192.0.2.1:4001".parse().unwrap())
            ),
            (
                Leg::B,
                Some("198.51.100.7:6000".parse().unwrap()),
                Some("198.51.100.7:6001".parse().unwrap())
            ),
        ]
    );
}

/// The tap's order: nothing tap-facing before the call is anchored, then
/// Anchored and the offer's report.
#[test]
fn reports_wait_for_the_anchoring() {
    let mut table = Table::new(30_000, 30_039);
    table
        .open("c1", Some(body("192.0.2.1", 4000, "sendrecv")))
        .unwrap();
    assert!(!table
        .outputs
        .iter()
        .any(|o| matches!(o, MediaOutput::Sdp { .. } | MediaOutput::Anchored { .. })));
    table.sessions.attempt(table.now, "c1", info());
    table.drive();
    let kinds: Vec<&str> = table
        .outputs
        .iter()
        .map(|o| match o {
            MediaOutput::Open { .. } => "open",
            MediaOutput::Remote { .. } => "remote",
            MediaOutput::Anchored { .. } => "anchored",
            MediaOutput::Sdp { .. } => "sdp",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["open", "remote", "anchored", "sdp"]);
}

/// SPEC R5: hold while the last SDP of either leg is not sendrecv; the
/// resume offer and its answer end it. Silence has no say here.
#[test]
fn hold_comes_from_sdp_directions() {
    let mut table = Table::new(30_000, 30_039);
    table
        .open("c1", Some(body("192.0.2.1", 4000, "sendrecv")))
        .unwrap();
    table.sessions.attempt(table.now, "c1", info());
    let steps = [
        (Leg::B, "sendrecv"),
        (Leg::A, "sendonly"),
        (Leg::B, "recvonly"),
        (Leg::A, "sendrecv"),
        (Leg::B, "sendrecv"),
        (Leg::B, "inactive"),
    ];
    for (leg, direction) in steps {
        table
            .sessions
            .sdp_from(
                table.now,
                "c1",
                leg,
                &body("192.0.2.9", 4000, direction),
                SdpRole::Response,
            )
            .unwrap();
    }
    table.drive();
    let holds: Vec<bool> = table
        .outputs
        .iter()
        .filter_map(|o| match o {
            MediaOutput::Hold { on_hold, .. } => Some(*on_hold),
            _ => None,
        })
        .collect();
    assert_eq!(holds, [true, false, true]);
}

/// Streams: the offer's active m-lines get ports (at most MAX_STREAMS, or
/// 488), a later SDP that adds a stream gets new ones, and a declined
/// stream stays declined.
#[test]
fn streams_are_added_and_bounded() {
    let mut table = Table::new(30_000, 30_099);
    let five = "v=0\r\nc=IN IP4 192.0.2.1\r\n".to_owned()
        + &"m=audio 4000 RTP/AVP 0\r\n".repeat(MAX_STREAMS + 1);
    assert_eq!(
        table.open("c0", Some(Bytes::from(five))),
        Err(AnchorError::TooManyStreams(MAX_STREAMS + 1))
    );
    let two = Bytes::from_static(
        b"v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n",
    );
    table.open("c1", Some(two)).unwrap();
    let id = table.last_id();
    assert_eq!(table.pairs(id).len(), 1);
    let with_video = Bytes::from_static(
        b"v=0\r\nc=IN IP4 198.51.100.7\r\nm=audio 6000 RTP/AVP 0\r\nm=video 6002 RTP/AVP 31\r\n",
    );
    let out = table
        .sessions
        .sdp_from(table.now, "c1", Leg::B, &with_video, SdpRole::Response)
        .unwrap()
        .unwrap();
    table.drive();
    let added = table
        .outputs
        .iter()
        .find_map(|o| match o {
            MediaOutput::AddStream { stream, ports, .. } => Some((*stream, *ports)),
            _ => None,
        })
        .unwrap();
    assert_eq!(added.0, 1);
    let sdp = Sdp::parse(out).unwrap();
    assert_eq!(
        sdp.media()[1].port,
        added.1[0],
        "the a-side port of the new stream"
    );
}

/// A second INVITE with the same Call-ID (after a 401/407 challenge, the
/// first one's media still open) keeps the session and its ports.
#[test]
fn same_call_id_keeps_its_session() {
    let mut table = Table::new(30_000, 30_039);
    let first = table
        .open("c1", Some(body("192.0.2.1", 4000, "sendrecv")))
        .unwrap()
        .unwrap();
    let second = table
        .open("c1", Some(body("192.0.2.1", 4000, "sendrecv")))
        .unwrap()
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(table.sessions.stats().sessions, 1);
}

/// Which leg a message comes from, by From tag.
#[test]
fn legs_by_from_tag() {
    let mut table = Table::new(30_000, 30_039);
    table.open("c1", None).unwrap();
    assert_eq!(table.sessions.leg_of("c1", b"a-tag", false), Some(Leg::A));
    assert_eq!(table.sessions.leg_of("c1", b"a-tag", true), Some(Leg::B));
    assert_eq!(table.sessions.leg_of("c1", b"callee", false), Some(Leg::B));
    assert_eq!(table.sessions.leg_of("c1", b"callee", true), Some(Leg::A));
    assert_eq!(table.sessions.leg_of("other", b"a-tag", false), None);
}

/// The relay's timeout ends a session the core still held: reported once,
/// ports back; a release after that finds nothing.
#[test]
fn a_timeout_from_the_relay_releases() {
    let mut table = Table::new(30_000, 30_039);
    table
        .open("c1", Some(body("192.0.2.1", 4000, "sendrecv")))
        .unwrap();
    table.sessions.attempt(table.now, "c1", info());
    let id = table.last_id();
    let timed_out = table.sessions.handle_ended(id, true).unwrap();
    assert_eq!(&*timed_out.call_id, "c1");
    assert_eq!(timed_out.trunk, Some(info()));
    table.sessions.release(table.now, "c1", MediaEnd::Bye);
    table.drive();
    assert!(!table
        .outputs
        .iter()
        .any(|o| matches!(o, MediaOutput::Close { .. })));
    let stats = table.sessions.stats();
    assert_eq!(
        (stats.timeouts, stats.sessions, stats.ports.in_use),
        (1, 0, 0)
    );
}
