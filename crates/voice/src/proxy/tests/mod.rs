//! The proxy core in simulated time: datagrams built with hotsite-sip's
//! builders go in, transmits come out, the clock only moves when a test says.
//! No sockets, no sleeps.

mod dialog;
mod failover;
mod health;
mod limits;
mod media;
mod ringing;
mod robustness;
mod tcp;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotsite_sip::message::{
    parse_bytes, response_to, Branch, Header, HeaderName, Message, Method, NewRequest, Request,
    Response, StatusCode, Uri,
};

use super::*;
use crate::routing::TrunkSpec;

const PROXY: &str = "10.0.0.1:5060";
const CALLER: &str = "10.0.0.9:5070";
const TRUNK1: &str = "10.0.1.1:5060";
const TRUNK2: &str = "10.0.1.2:5060";
const TRUNK3: &str = "10.0.1.3:5060";

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[allow(clippy::disallowed_methods)] // test epoch: only offsets from it matter
fn epoch() -> Instant {
    Instant::now()
}

fn trunk(name: &str, address: &str, priority: u32) -> TrunkSetup {
    TrunkSetup {
        spec: TrunkSpec {
            name: name.into(),
            carrier: format!("carrier-{name}"),
            priority,
            weight: 1,
            media_region: "eu-west".into(),
            failover_region: "eu-central".into(),
            probed: false,
            registered: false,
        },
        address: addr(address),
        transport: Transport::Udp,
        probe: None,
        register: None,
    }
}

/// Three trunks t1, t2, t3 by priority, one sequential group of all three,
/// no probes, default timers.
fn config() -> ProxyConfig {
    ProxyConfig {
        address: addr(PROXY),
        listen: addr(PROXY),
        trunks: vec![
            trunk("t1", TRUNK1, 10),
            trunk("t2", TRUNK2, 20),
            trunk("t3", TRUNK3, 30),
        ],
        groups: vec![GroupSetup {
            name: "pstn".into(),
            distribution: Distribution::Sequential,
            trunks: vec![0, 1, 2],
            max_attempts: 3,
            prefixes: Vec::new(),
            media: MediaMode::Direct,
        }],
        default_group: 0,
        invite_timeout: Duration::from_secs(2),
        invite_final_timeout: Duration::from_secs(120),
        t1: Duration::from_millis(500),
        passive_hold: Duration::from_secs(30),
        max_calls: 10_000,
        retry_after: Duration::from_secs(5),
        initial_capacity: INITIAL_CAPACITY,
        media: None,
    }
}

/// `config` with trunk 1 probed: OPTIONS every 5 s, 2 s to answer, out of
/// service after 3 failures, back after 2 answers (SPEC V2).
fn probed_t1(mut config: ProxyConfig) -> ProxyConfig {
    config.trunks[0].spec.probed = true;
    config.trunks[0].probe = Some(ProbeSetup {
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(2),
        fall: 3,
        rise: 2,
        only_2xx: false,
    });
    config
}

/// `config` with trunk 1 registration-based: its registrar at its address,
/// 600 s asked (SPEC V2).
fn registered_t1(mut config: ProxyConfig) -> ProxyConfig {
    config.trunks[0].spec.registered = true;
    config.trunks[0].register = Some(RegisterSetup {
        registrar: uri("sip:10.0.1.1"),
        user: "hotsite".into(),
        password: "secret".into(),
        expires: Duration::from_secs(600),
        address: addr(TRUNK1),
    });
    config
}

/// What the proxy sent in one step.
#[derive(Debug, Default)]
struct Sent(Vec<(Peer, Message)>);

impl Sent {
    fn to(&self, to: &str) -> Vec<&Message> {
        let to = addr(to);
        self.0
            .iter()
            .filter(|(peer, _)| peer.addr == to)
            .map(|(_, m)| m)
            .collect()
    }

    /// The transports of the messages to `to`.
    fn transports(&self, to: &str) -> Vec<Transport> {
        let to = addr(to);
        self.0
            .iter()
            .filter(|(peer, _)| peer.addr == to)
            .map(|(peer, _)| peer.transport)
            .collect()
    }

    fn requests(&self, to: &str) -> Vec<Request> {
        self.to(to)
            .into_iter()
            .filter_map(|m| match m {
                Message::Request(r) => Some(r.clone()),
                Message::Response(_) => None,
            })
            .collect()
    }

    fn responses(&self, to: &str) -> Vec<Response> {
        self.to(to)
            .into_iter()
            .filter_map(|m| match m {
                Message::Response(r) => Some(r.clone()),
                Message::Request(_) => None,
            })
            .collect()
    }

    /// The only message to `to`, a request.
    fn request(&self, to: &str) -> Request {
        let all = self.requests(to);
        assert_eq!(all.len(), 1, "one request to {to}: {self:#?}");
        assert_eq!(self.to(to).len(), 1, "only one message to {to}: {self:#?}");
        all.into_iter().next().unwrap()
    }

    /// The only message to `to`, a response.
    fn response(&self, to: &str) -> Response {
        let all = self.responses(to);
        assert_eq!(all.len(), 1, "one response to {to}: {self:#?}");
        assert_eq!(self.to(to).len(), 1, "only one message to {to}: {self:#?}");
        all.into_iter().next().unwrap()
    }

    /// The Call-IDs of the requests to `to`, in order.
    fn call_ids(&self, to: &str) -> Vec<String> {
        self.requests(to)
            .iter()
            .map(|r| r.headers.call_id().unwrap_or_default().to_owned())
            .collect()
    }

    fn statuses(&self, to: &str) -> Vec<u16> {
        self.responses(to)
            .iter()
            .map(|r| r.status.as_u16())
            .collect()
    }

    fn methods(&self, to: &str) -> Vec<String> {
        self.requests(to)
            .iter()
            .map(|r| r.method.to_string())
            .collect()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The proxy and a simulated clock.
struct Sim {
    proxy: Proxy,
    t0: Instant,
    now: Instant,
    events: Vec<ProxyEvent>,
    /// What the proxy asked of the media relay (binds excepted: the
    /// simulated driver binds every port at once, but those in
    /// `unbindable`).
    media: Vec<crate::media::MediaOutput>,
    unbindable: Vec<u16>,
}

impl Sim {
    fn new(config: ProxyConfig) -> Sim {
        Sim::start(config).0
    }

    /// The proxy and what it sent at start (first probes and REGISTERs).
    fn start(config: ProxyConfig) -> (Sim, Sent) {
        let t0 = epoch();
        let mut sim = Sim {
            proxy: Proxy::new(config, 7, t0),
            t0,
            now: t0,
            events: Vec::new(),
            media: Vec::new(),
            unbindable: Vec::new(),
        };
        let sent = sim.drain();
        (sim, sent)
    }

    fn drain(&mut self) -> Sent {
        while let Some(output) = self.proxy.poll_media() {
            match output {
                crate::media::MediaOutput::Bind(port) if self.unbindable.contains(&port) => {
                    self.proxy.handle_media_bind_failed(self.now, port)
                }
                crate::media::MediaOutput::Bind(port) => self.proxy.handle_media_bound(port),
                output => self.media.push(output),
            }
        }
        let mut sent = Sent::default();
        while let Some(Transmit { to, bytes }) = self.proxy.poll_transmit() {
            let message = parse_bytes(bytes).expect("the proxy sends what it can parse");
            sent.0.push((to, message));
        }
        while let Some(event) = self.proxy.poll_event() {
            self.events.push(event);
        }
        sent
    }

    /// A datagram from `from`; what the proxy sent in answer.
    fn send(&mut self, from: &str, bytes: impl Into<Bytes>) -> Sent {
        self.proxy
            .handle_datagram(self.now, addr(from), bytes.into());
        self.drain()
    }

    /// One message from a TCP connection from `from`.
    fn send_tcp(&mut self, from: &str, bytes: impl Into<Bytes>) -> Sent {
        self.proxy
            .handle_message(self.now, Peer::tcp(addr(from)), bytes.into());
        self.drain()
    }

    /// A new call from the caller to `+4420`, its branch made of the Call-ID;
    /// what the proxy sent.
    fn dial(&mut self, call_id: &str) -> Sent {
        let branch = format!("z9hG4bK{call_id}");
        self.send_request(CALLER, &invite(call_id, &branch, "+4420"))
    }

    fn send_request(&mut self, from: &str, request: &Request) -> Sent {
        self.send(from, request.to_bytes())
    }

    fn send_response(&mut self, from: &str, response: &Response) -> Sent {
        self.send(from, response.to_bytes())
    }

    /// Moves the clock to `t0 + at`, firing every deadline on the way at its
    /// time; what was sent meanwhile.
    fn run_until(&mut self, at: Duration) -> Sent {
        let target = self.t0 + at;
        let mut sent = Sent::default();
        while let Some(deadline) = self.proxy.poll_timeout() {
            if deadline > target {
                break;
            }
            self.now = self.now.max(deadline);
            self.proxy.handle_timeout(self.now);
            sent.0.extend(self.drain().0);
        }
        self.now = target;
        sent
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    fn take_events(&mut self) -> Vec<ProxyEvent> {
        std::mem::take(&mut self.events)
    }
}

fn uri(text: &str) -> Uri {
    Uri::parse(text.to_owned()).unwrap()
}

/// The caller's INVITE (hotsite-sip's builder: Via with `rport`).
fn invite(call_id: &str, branch: &str, user: &str) -> Request {
    invite_over("UDP", call_id, branch, user)
}

/// The caller's INVITE sent over `transport` (`UDP`, `TCP`: its Via says
/// so, and a TCP caller's Contact carries `transport=tcp`).
fn invite_over(transport: &str, call_id: &str, branch: &str, user: &str) -> Request {
    let contact = match transport {
        "TCP" => format!("sip:pbx@{CALLER};transport=tcp"),
        _ => format!("sip:pbx@{CALLER}"),
    };
    NewRequest {
        method: Method::Invite,
        uri: uri(&format!("sip:{user}@{PROXY}")),
        from: uri(&format!("sip:pbx@{CALLER}")),
        from_tag: "caller-tag".into(),
        to: uri(&format!("sip:{user}@{PROXY}")),
        call_id: call_id.into(),
        cseq: 1,
        transport: transport.into(),
        sent_by: CALLER.into(),
        branch: Branch::from_string(branch.into()),
        max_forwards: 70,
        contact: Some(uri(&contact)),
    }
    .build()
}

/// A request inside the dialog, as the caller's UA builds it from the 200
/// (§12.2.1.1): Request-URI the remote Contact, Route the Record-Route set
/// reversed, our Via over UDP.
fn in_dialog(method: Method, invite: &Request, ok: &Response, branch: &str, cseq: u32) -> Request {
    in_dialog_over("UDP", method, invite, ok, branch, cseq)
}

/// [`in_dialog`] with a Via naming `transport`.
fn in_dialog_over(
    transport: &str,
    method: Method,
    invite: &Request,
    ok: &Response,
    branch: &str,
    cseq: u32,
) -> Request {
    let contact = ok.headers.contacts()[0].uri.clone();
    let mut request = Request::new(method.clone(), contact);
    let h = &mut request.headers;
    h.push(Header::new(
        HeaderName::Via,
        format!("SIP/2.0/{transport} {CALLER};branch={branch}"),
    ));
    for route in ok.headers.record_routes().iter().rev() {
        h.push(Header::new(HeaderName::Route, format!("<{}>", route.uri)));
    }
    h.push(Header::new(HeaderName::MaxForwards, "70"));
    h.push(invite.headers.get(HeaderName::From).unwrap().clone());
    h.push(ok.headers.get(HeaderName::To).unwrap().clone());
    h.push(invite.headers.get(HeaderName::CallId).unwrap().clone());
    h.push(Header::new(HeaderName::CSeq, format!("{cseq} {method}")));
    request
}

/// A trunk's answer to a request it received, with its To tag and, for
/// 101–299, a Contact.
fn answer(request: &Request, status: u16, tag: &str, contact: &str) -> Response {
    let status = StatusCode::new(status).unwrap();
    let mut response = response_to(request, status, Some(tag));
    if status.as_u16() > 100 && status.as_u16() < 300 {
        response
            .headers
            .push(Header::new(HeaderName::Contact, format!("<sip:{contact}>")));
    }
    response
}

fn branch_of(message: &Request) -> String {
    message
        .headers
        .top_via()
        .unwrap()
        .branch()
        .unwrap()
        .to_owned()
}

fn trunk_events(events: &[ProxyEvent]) -> Vec<(String, HealthState)> {
    events
        .iter()
        .filter_map(|e| match e {
            ProxyEvent::Trunk(Event {
                target,
                kind: hotsite_core::EventKind::Health { to, .. },
                ..
            }) => Some((target.name.to_string(), *to)),
            _ => None,
        })
        .collect()
}

fn failovers(events: &[ProxyEvent]) -> Vec<&CallFailover> {
    events
        .iter()
        .filter_map(|e| match e {
            ProxyEvent::Failover(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn ended(events: &[ProxyEvent]) -> Vec<&CallEnded> {
    events
        .iter()
        .filter_map(|e| match e {
            ProxyEvent::CallEnded(c) => Some(c),
            _ => None,
        })
        .collect()
}
