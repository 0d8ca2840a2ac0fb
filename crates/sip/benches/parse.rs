//! Parse and serialise cost of the messages a trunk proxy handles most: an
//! INVITE with SDP as a carrier sends it, and the 200 OK that answers it.
//! `cargo bench -p hotsite-sip --bench parse`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use hotsite_sip::message::{parse, Message};

const INVITE: &str = "INVITE sip:+4930123456@trunk.example.net:5060;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-524287-1---4f1b0c2a8e9d7f61;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:+4989555000@198.51.100.20:5060;transport=udp>\r\n\
To: <sip:+4930123456@trunk.example.net>\r\n\
From: \"Contact Center\" <sip:+4989555000@cc.example.com>;tag=8d2f7c41\r\n\
Call-ID: 7f3e9a1c2b4d6e8f0a1b3c5d7e9f1a2b@198.51.100.20\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, UPDATE, PRACK, INFO\r\n\
Supported: replaces, timer, 100rel\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Min-SE: 90\r\n\
User-Agent: hotsite-bench/0.0\r\n\
P-Asserted-Identity: <sip:+4989555000@cc.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 240\r\n\
\r\n\
v=0\r\n\
o=- 3961249123 3961249123 IN IP4 198.51.100.20\r\n\
s=-\r\n\
c=IN IP4 198.51.100.20\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 8 0 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

const OK: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-524287-1---4f1b0c2a8e9d7f61;rport=5060;received=198.51.100.20\r\n\
Record-Route: <sip:203.0.113.5;lr>\r\n\
Contact: <sip:+4930123456@203.0.113.7:5060>\r\n\
To: <sip:+4930123456@trunk.example.net>;tag=as5f3e1d02\r\n\
From: \"Contact Center\" <sip:+4989555000@cc.example.com>;tag=8d2f7c41\r\n\
Call-ID: 7f3e9a1c2b4d6e8f0a1b3c5d7e9f1a2b@198.51.100.20\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK\r\n\
Supported: replaces, timer\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Require: timer\r\n\
Server: carrier-sbc\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 182\r\n\
\r\n\
v=0\r\n\
o=- 1 1 IN IP4 203.0.113.7\r\n\
s=-\r\n\
c=IN IP4 203.0.113.7\r\n\
t=0 0\r\n\
m=audio 30000 RTP/AVP 8 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=sendrecv\r\n";

fn bench(c: &mut Criterion) {
    for (name, text) in [("invite", INVITE), ("200_ok", OK)] {
        // As a driver has it: a datagram in a receive buffer, copied once into
        // the message's own shared buffer by `parse`.
        let wire = text.as_bytes();
        let parsed = parse(wire).expect("benchmark message parses");
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
        group.bench_function("parse", |b| b.iter(|| parse(black_box(wire)).unwrap()));
        group.bench_function("serialise", |b| b.iter(|| black_box(&parsed).to_bytes()));
        group.bench_function("parse+serialise", |b| {
            b.iter(|| parse(black_box(wire)).unwrap().to_bytes())
        });
        // What a stateful proxy does to each message on the way through.
        group.bench_function("proxy_hop", |b| {
            b.iter(|| match parse(black_box(wire)).unwrap() {
                Message::Request(mut r) => {
                    let _ = r.headers.top_via();
                    r.headers.decrement_max_forwards().unwrap();
                    r.headers.insert_record_route("<sip:203.0.113.5;lr>");
                    r.headers
                        .push_via("SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKproxyhop1");
                    r.to_bytes()
                }
                Message::Response(mut r) => {
                    r.headers.pop_via();
                    let _ = r.headers.cseq();
                    r.to_bytes()
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
