//! hotsite-lab: a simulated SMS aggregator with several hot sites, speaking real
//! SMPP 3.4 and a real HTTP API over TCP on loopback, with fault injection; and
//! around it the other far ends hotsite talks to: webhook receivers (digital
//! channels), an authoritative DNS server and an SMTP sink.
//!
//! Tests, benchmarks and `hotsite demo` point hotsite at a lab to show the
//! messaging behaviours of SPEC M1–M15 against peers that misbehave on
//! command: binds to every instance of every site (M4), rebind pacing (M5),
//! receipts and MOs on any bind or site (M1, M6, M13), dead, silent, slow,
//! resetting and throttling servers (M3, M7, M10, M14), a single URL whose DNS
//! record moves (M2), exactly-once delivery to handsets despite resubmits over
//! SMPP and HTTP alike (M8), signed callbacks and webhooks (M15), and an
//! e-mail fallback (M11). The lab is never part of the systems themselves.
//!
//! For the voice proxy (SPEC V1–V4), [`sip`] has SIP peers on UDP: carrier
//! trunks ([`SipTrunk`]) that answer calls and die silently or answer 503 on
//! command, and a caller ([`SipCaller`]) that places paced calls through the
//! proxy and records each one's setup time and outcome. They run on their
//! own, outside [`Lab`].
//!
//! For the sites' business continuity (SPEC S1–S8): agent phones
//! ([`SipPhone`]) that register at one site or both with Digest, stop
//! refreshing on command (their DN goes out of service, S8), switch sites
//! (S2) and answer, refuse or ignore calls, logging which site sent each; the
//! caller calls one DN through a site (`to_user`, S1); and an inter-site link
//! ([`Link`]), a UDP and TCP relay the lab cuts and restores (S4). They run
//! on their own, or in a lab (`[[lab.phones]]`, `[[lab.links]]`) steered by
//! the control API.
//!
//! For recording continuity (SPEC R1–R5), [`media`] has a provider's cloud
//! media server ([`MediaServer`]): it answers calls with real G.711 RTP,
//! records what it receives and sends as the "cloud recording" (a WAV and a
//! JSON sidecar per call), and on command hands a call over — the stream
//! stops for a gap (15–20 s by default), then resumes from another port with
//! a new SSRC and jumped sequence and timestamp. A caller with media
//! ([`MediaCaller`]) sends a test signal with markers, records what comes
//! back, sends DTMF and holds by re-INVITE; `media::signal` finds the markers
//! and the holes in any recording again. They run on their own, or in a lab
//! (`[[lab.media_servers]]`) steered by the control API.
//!
//! # Layout
//!
//! - `config`: [`LabConfig`], parsed from TOML and validated before any port
//!   opens; `config/servers.rs` holds the optional sections (HTTP, webhooks,
//!   DNS, SMTP), `config/peers.rs` the phones and links.
//! - `lab`: [`Lab::start`] and the [`LabHandle`] that steers and stops a lab.
//! - `shared`: what every task shares; `port`: a TCP port that can die and come
//!   back (every TCP server's lifecycle).
//! - `smpp`: the SMSC instances: `listener` (one life of a port), `session` (one
//!   bind), `provider` (accounts, message ids, dedupe, receipt routing, the
//!   handset log, for SMPP and HTTP: no I/O), `receipt` (receipt PDUs and
//!   their text).
//! - `http`: the HTTP API's sites (`aggregator`: `POST /sms/send`, its codes;
//!   `callbacks`: receipts and MOs posted to hotsite, retried; `form`;
//!   `signing`), webhook receivers (`webhook`), and what they share: `serve`
//!   (one connection, its faults) and `fault` ([`HttpFault`]). The wire
//!   contract is in `src/http/mod.rs`'s header, summarized below.
//! - `dns`: the DNS server (`codec`: RFC 1035, pure).
//! - `smtp`: the SMTP sink (`session`: the protocol, pure).
//! - `fault`: [`Fault`], what can be injected into SMSC instances.
//! - `control`: the HTTP control API.
//! - `stats`, `traffic`: what the lab reports ([`LabStats`], [`HandsetMessage`],
//!   [`WebhookMessage`], [`SmtpMail`]) and the MOs it is asked to send
//!   ([`MoRequest`], [`HttpMoRequest`]).
//! - `sip`: SIP trunks and a caller for the voice proxy, agent phones for the
//!   sites (`trunk`, `caller`, `phone`: sans-IO cores; `driver`: their UDP
//!   task; `wire`: SDP and addressing).
//! - `link`: the inter-site link, a relay that can be cut (SPEC S4).
//! - `media`: the cloud media server and the caller with media (SPEC R1–R5):
//!   `signal`, `g711`, `rtp`, `sdp`, `stream`, `wav` (pure); `server` and
//!   `caller` (sans-IO cores on the SIP trunk's and caller's cores in media
//!   mode); `driver` (their UDP task, RTP sockets, files).
//! - `peers`: the phones, links and media servers a lab runs.
//! - `clock`: the only module that reads the clock.
//!
//! # The provider it imitates
//!
//! ## Over SMPP
//!
//! - Binds (`bind_transmitter`, `bind_receiver`, `bind_transceiver`) are checked
//!   against the accounts: unknown `system_id` → `ESME_RINVSYSID`, wrong password
//!   → `ESME_RINVPASWD`, and the connection is closed. A second bind on a bound
//!   session → `ESME_RALYBND`; a submit before binding → `ESME_RINVBNDSTS`.
//! - `enquire_link` is answered; `unbind` is answered, then the connection
//!   closes. A complete frame that does not decode is answered `generic_nack`
//!   with the decoder's status and the frame's sequence; a frame whose length
//!   prefix is impossible closes the connection.
//! - `submit_sm` and `data_sm` get a message id unique across the lab: one
//!   serial number per message, written per `receipts.submit_id_format` in the
//!   response and per `receipts.receipt_id_format` in the receipt's
//!   `receipted_message_id` (SPEC M13: case, leading zeros, hex or decimal may
//!   differ); [`HandsetMessage`] keeps both (`message_id`, `receipt_id`). The
//!   HTTP API always writes `hex`. A repeat
//!   of (`system_id`, `destination_addr`, `user_message_reference`) on any
//!   instance of any site is answered `ESME_ROK` with the *original* id and
//!   counted in `duplicates_dropped`, not delivered again (SPEC M8) — within
//!   `dedupe.reference_memory_ms` of the original's acceptance (forever by
//!   default); later it is a new message (SPEC M16). Expired references are
//!   forgotten (`references_remembered` counts those held).
//! - A message with `registered_delivery` 1 gets a receipt `receipts.delay_ms`
//!   after its response: `deliver_sm` with `esm_class` 0x04, `receipted_message_id`
//!   = the submit's id (in `receipt_id_format`), `message_state` = the final state, and a classic text
//!   `id:<carrier id> sub:001 dlvrd:001 submit date:… done date:… stat:DELIVRD
//!   err:000 text:…` whose id is the *carrier's*, not the submit's (SPEC M13).
//!   It goes on a receiver or transceiver of the same account: usually of the
//!   same site, with `other_site_probability` of another; with
//!   `duplicate_probability` twice. With no bind up it waits for one. A
//!   session that ends with receipts unwritten or unanswered hands them to
//!   another bind, as an SMSC retries.
//! - A receipt or MO `deliver_sm` answered with a non-zero `command_status`
//!   (or a `generic_nack`), or not answered within
//!   `deliveries.response_timeout_ms`, is delivered again
//!   `deliveries.retry_interval_ms` later with a new sequence number, on a
//!   bind of the same account, of the same site while it has one (an MO for
//!   one site stays on it); after `deliveries.retry_attempts` retries it is
//!   dropped. Counted in `deliveries_retried` and `deliveries_abandoned`
//!   (SPEC M6, M8). A response that comes after the timeout is ignored: the
//!   retry goes out anyway, as from a real SMSC.
//! - MOs (control API or [`LabHandle::send_mo`]) go to any receiver or
//!   transceiver of the account (optionally of one site), or wait for one.
//! - All randomness comes from one seeded `hotsite_core::Rng`.
//!
//! ## Over HTTP (the full contract is in `src/http/mod.rs`)
//!
//! - `POST /sms/send`, a form with `login`, `password`, `phone_number`,
//!   `sender`, `message`, `message_id` (the client's id, its dedupe key),
//!   `receipt` (0/1), `priority` (0–3). The answer is JSON `{"code", "description",
//!   "message_id", "provider_id"}`: 0 accepted; 10 authentication failed; 11
//!   invalid sender; 12 invalid destination; 13 message too long; 14 duplicate,
//!   with the *original* `provider_id`, not delivered again; 20 throttled; 21
//!   internal error (HTTP 200 for all of these); 30 missing field and 31
//!   malformed request (HTTP 400).
//! - Accepted messages join the same handset log and counters as SMPP's
//!   ([`HandsetMessage::protocol`] tells them apart).
//! - With `receipt=1` and `lab.http.dr_url`, a form POST `message_id`,
//!   `provider_id`, `status` (`DELIVRD`, or the `final_state`'s word), `site`,
//!   `done_at` (unix ms), after `receipts.delay_ms`; twice with
//!   `duplicate_probability`, from another site with `other_site_probability`.
//!   MOs ([`LabHandle::send_http_mo`]) post `message_id`, `from`, `to`,
//!   `message`, `site` to `lab.http.mo_url`. With `callback_secret` both carry
//!   `X-Hub-Signature-256: sha256=<base64 HMAC-SHA256>`; both are retried until
//!   answered 2xx.
//!
//! ## Around it
//!
//! - Webhook receivers take a JSON `POST` with an `"id"` on any path, check the
//!   signature when they have a secret (401), log each id once and answer
//!   `{"id": "<receiver's id>"}`, repeats included.
//! - The DNS server answers A/AAAA for its records with their TTL, NXDOMAIN
//!   for other names; [`LabHandle::set_dns`] moves a record. HTTP sites can
//!   share one port at several loopback addresses (`lab.http.shared_port`), so
//!   one URL `http://NAME:PORT/` follows the record (SPEC M2).
//! - The SMTP sink takes plain SMTP and records every mail.
//!
//! # Configuration
//!
//! ```toml
//! [lab]
//! control = "127.0.0.1:28700"     # HTTP control API (port 0: ephemeral; default 127.0.0.1:0)
//! seed = 1                        # default 1
//!
//! [[lab.accounts]]                # needed with SMPP or HTTP sites
//! system_id = "hotsite"           # at most 15 characters; the HTTP API's login
//! password = "secret"             # at most 8 characters
//!
//! [lab.receipts]                  # optional; defaults shown; SMPP and HTTP
//! delay_ms = 20                   # after the submit's answer
//! duplicate_probability = 0.0     # a receipt is sent twice
//! other_site_probability = 0.0    # a receipt goes out through another site
//! final_state = "delivered"       # or "expired", "undeliverable", "rejected"
//! submit_id_format = "hex"        # submit_sm_resp.message_id (SPEC M13): "hex" (0000002a),
//!                                 # "hex_upper" (0000002A), "hex_unpadded" (2a),
//!                                 # "decimal" (42), "decimal_padded" (20 digits)
//! receipt_id_format = "hex"       # the receipt's receipted_message_id, same choices
//!
//! [lab.dedupe]                    # optional; SMPP user_message_reference (SPEC M8, M16)
//! reference_memory_ms = 0         # a repeat this long after the original is a new
//!                                 # message; 0 (default): remembered forever
//!
//! [lab.deliveries]                # optional; deliver_sm retries (SPEC M6, M8); defaults shown
//! retry_interval_ms = 1000        # 1–600000: after a failed attempt, the next
//! retry_attempts = 20             # 0–10000 retries after the first; 0: never retry
//! response_timeout_ms = 10000     # 1–600000: unanswered this long, an attempt failed
//!
//! [[lab.sites]]                   # SMPP sites (optional if anything else is configured)
//! name = "a"
//! [[lab.sites.smsc]]
//! name = "a1"                     # unique in its site, at most 15 characters
//! listen = "127.0.0.1:28775"      # port 0: ephemeral
//!
//! [lab.http]                      # optional: the HTTP API
//! dr_url = "http://127.0.0.1:8080/callbacks/dr"   # optional: receipts go here
//! mo_url = "http://127.0.0.1:8080/callbacks/mo"   # optional: MOs go here
//! callback_secret = "s3cret"      # optional: sign callbacks (SPEC M15)
//! shared_port = true              # default false: every site on one port, own address
//! callback_retry_ms = 200         # defaults shown
//! callback_max_attempts = 50
//! callback_timeout_ms = 2000
//! [[lab.http.sites]]
//! name = "a"
//! listen = "127.0.0.1:28780"      # default 127.0.0.1:0
//! [[lab.http.sites]]
//! name = "b"
//! listen = "127.0.0.2:28780"      # 127.0.0.2 needs no setup on Linux
//!
//! [[lab.webhooks]]                # optional: digital channels' endpoints
//! name = "primary-chat"
//! listen = "127.0.0.1:28790"      # default 127.0.0.1:0
//! secret = "hook-secret"          # optional: require signed requests
//!
//! [lab.dns]                       # optional: authoritative DNS on UDP
//! listen = "127.0.0.1:28753"      # default 127.0.0.1:0
//! ttl_s = 1                       # default 1
//! [[lab.dns.records]]
//! name = "sms.lab.test"
//! addrs = ["127.0.0.1"]           # IPv4 answer A, IPv6 AAAA
//!
//! [lab.smtp]                      # optional: SMTP sink
//! listen = "127.0.0.1:28725"      # default 127.0.0.1:0
//! max_message_bytes = 1048576     # default 1 MiB
//!
//! [[lab.phones]]                  # optional: agent phones (SPEC S8)
//! dn = "1001"                     # unique; the user part, the Digest user name
//! password = "pw-1001"            # Digest password
//! domain = "site.lab"             # REGISTER sip:DOMAIN, To <sip:DN@DOMAIN>
//! registrars = ["127.0.0.1:5060", "127.0.0.1:5062"]   # one site, or both; default none
//! expires_s = 60                  # defaults shown; refreshed at half the granted time
//! listen = "127.0.0.1:0"          # UDP
//! answer = "answer"               # or "busy" (486), "no_answer" (rings until cancelled)
//! ring_delay_ms = 0
//! answer_delay_ms = 20
//! retry_ms = 1000                 # after a failed REGISTER: 50-100 % of a doubling
//! retry_max_ms = 30000            # ceiling from retry_ms to retry_max_ms
//! t1_ms = 500                     # 64·T1 unanswered fails a REGISTER
//!
//! [[lab.links]]                   # optional: inter-site links (SPEC S4)
//! name = "ab"
//! a_listen = "127.0.0.1:0"        # default; site a's peer trunk (UDP and TCP)
//! a_target = "127.0.0.1:5060"     # site a's SIP address
//! b_listen = "127.0.0.1:0"        # default; site b's peer trunk
//! b_target = "127.0.0.1:5062"     # site b's SIP address
//!
//! [[lab.media_servers]]           # optional: cloud media servers (SPEC R1–R5)
//! name = "cloud"                  # unique; names it in the control API
//! listen = "127.0.0.1:0"          # SIP (UDP); RTP on free port pairs of the same IP
//! recordings = "/var/tmp/cloud"   # <recordings>/<Call-ID>/cloud.wav and cloud.json
//! gap_ms = 17000                  # optional: a handover's gap; unset: random in
//! gap_min_ms = 15000              #   gap_min_ms..=gap_max_ms (defaults shown), seeded
//! gap_max_ms = 20000
//! corrupt = false                 # the gap is recorded as noise instead of silence
//! seed = 1                        # SSRCs, numbering, jumps, gaps, noise
//! ring_delay_ms = 0               # defaults shown
//! answer_delay_ms = 20
//! t1_ms = 500
//! ```
//!
//! `examples/lab.toml` in the workspace is a ready two-site lab.
//!
//! # Control API
//!
//! JSON in and out; errors are `{"error": "..."}`, 404 for an unknown site,
//! instance, receiver, phone, link or media server (or a server that is not
//! configured), 400 for a bad body.
//!
//! ```sh
//! # Counters: totals (submits, unique, duplicates_dropped, throttled,
//! # receipts_sent, receipts_acked, mo_sent, mo_acked, pending_deliveries,
//! # references_remembered, deliveries_retried, deliveries_abandoned); per
//! # SMSC instance (smsc), per HTTP site (http_sites: transport, accepted,
//! # duplicates_dropped, codes, callbacks), per webhook receiver (webhooks),
//! # dns and smtp.
//! curl -s 127.0.0.1:28700/v1/stats
//!
//! # SMSC faults, per instance; each replaces the previous one.
//! curl -s -XPOST 127.0.0.1:28700/v1/smsc/a/a1/fault -d '{"fault":"die"}'
//! curl -s -XPOST 127.0.0.1:28700/v1/smsc/a/a1/fault -d '{"fault":"blackhole"}'
//! curl -s -XPOST 127.0.0.1:28700/v1/smsc/a/a1/fault -d '{"fault":"slow","delay_ms":200}'
//! curl -s -XPOST 127.0.0.1:28700/v1/smsc/a/a1/fault -d '{"fault":"throttle","probability":1.0}'
//! curl -s -XPOST 127.0.0.1:28700/v1/smsc/a/a1/fault -d '{"fault":"reject_binds"}'
//! curl -s -XPOST 127.0.0.1:28700/v1/smsc/a/a1/fault -d '{"fault":"recover"}'
//!
//! # HTTP faults, per HTTP site or webhook receiver.
//! curl -s -XPOST 127.0.0.1:28700/v1/http/sites/a/fault -d '{"fault":"die"}'
//! curl -s -XPOST 127.0.0.1:28700/v1/http/sites/a/fault -d '{"fault":"hang"}'
//! curl -s -XPOST 127.0.0.1:28700/v1/http/sites/a/fault -d '{"fault":"slow","delay_ms":500}'
//! curl -s -XPOST 127.0.0.1:28700/v1/http/sites/a/fault -d '{"fault":"status","code":429,"retry_after_s":2}'
//! curl -s -XPOST 127.0.0.1:28700/v1/http/sites/a/fault -d '{"fault":"reset"}'
//! curl -s -XPOST 127.0.0.1:28700/v1/http/sites/a/fault -d '{"fault":"throttle","probability":1.0}'
//! curl -s -XPOST 127.0.0.1:28700/v1/http/sites/a/fault -d '{"fault":"internal_error","probability":0.5}'
//! curl -s -XPOST 127.0.0.1:28700/v1/webhooks/primary-chat/fault -d '{"fault":"status","code":503}'
//! curl -s -XPOST 127.0.0.1:28700/v1/webhooks/primary-chat/fault -d '{"fault":"recover"}'
//!
//! # SMTP faults: die, status (MAIL FROM answered with the code), recover.
//! curl -s -XPOST 127.0.0.1:28700/v1/smtp/fault -d '{"fault":"status","code":451}'
//!
//! # An MO from a handset over SMPP; "site" and "system_id" are optional.
//! # Answers {"status":"routed","site":"a","smsc":"a1"} or {"status":"pending"}.
//! curl -s -XPOST 127.0.0.1:28700/v1/mo -d '{"from":"33612345678","to":"36000","text":"STOP","site":"a"}'
//!
//! # An MO posted to lab.http.mo_url; "site" and "duplicate" are optional.
//! # Answers {"message_id":"0000002a","site":"a","copies":1}.
//! curl -s -XPOST 127.0.0.1:28700/v1/http/mo -d '{"from":"33612345678","to":"36000","text":"STOP"}'
//!
//! # Move a DNS record; read records and query counts.
//! curl -s -XPOST 127.0.0.1:28700/v1/dns/records -d '{"name":"sms.lab.test","addrs":["127.0.0.2"]}'
//! curl -s 127.0.0.1:28700/v1/dns
//!
//! # What arrived (the last N with ?limit=N): handsets (SMPP and HTTP),
//! # a webhook receiver's messages, the SMTP sink's mails.
//! curl -s '127.0.0.1:28700/v1/handsets?limit=10'
//! curl -s '127.0.0.1:28700/v1/webhooks/primary-chat/messages?limit=10'
//! curl -s '127.0.0.1:28700/v1/smtp/mails?limit=10'
//!
//! # Phones (SPEC S8): registrations per registrar (state, sent, ok,
//! # challenged, failed, …), calls, and every INVITE's Call-ID and source.
//! curl -s 127.0.0.1:28700/v1/phones
//! # Commands: stop_registering (the binding lapses), unregister (Expires: 0),
//! # resume, answer, busy, no_answer, set_registrars. Answers the command
//! # with "phone".
//! curl -s -XPOST 127.0.0.1:28700/v1/phones/1001/command -d '{"command":"stop_registering"}'
//! curl -s -XPOST 127.0.0.1:28700/v1/phones/1001/command -d '{"command":"busy"}'
//! curl -s -XPOST 127.0.0.1:28700/v1/phones/1001/command \
//!      -d '{"command":"set_registrars","registrars":["127.0.0.1:5062"]}'
//!
//! # Links (SPEC S4): addresses, state, counters per direction; cut and
//! # restore answer the link's stats.
//! curl -s 127.0.0.1:28700/v1/links
//! curl -s -XPOST 127.0.0.1:28700/v1/links/ab/cut
//! curl -s -XPOST 127.0.0.1:28700/v1/links/ab/restore
//!
//! # Media servers (SPEC R1–R5): name, address and counters of each; one's
//! # calls (state, RTP addresses, packets, handovers with their times in ms
//! # into the recording, DTMF, re-INVITE directions, recording paths).
//! curl -s 127.0.0.1:28700/v1/media_servers
//! curl -s 127.0.0.1:28700/v1/media_servers/cloud/calls
//! # Hand over one call (or, without call_id, every call up); gap_ms
//! # overrides the server's gap. In a JSON body or the query. Answers
//! # {"media_server":"cloud","handovers":[{"call_id","gap_ms","started_ms"}]};
//! # 404 for an unknown call, 409 for a call not up or already in a gap.
//! curl -s -XPOST 127.0.0.1:28700/v1/media_servers/cloud/handover \
//!      -d '{"call_id":"a1b2-0@127.0.0.1","gap_ms":2000}'
//! curl -s -XPOST '127.0.0.1:28700/v1/media_servers/cloud/handover?gap_ms=17000'
//! # A call's cloud recording, as the provider's archive serves it: its
//! # paths ({"call_id","dir","wav","json"}), or the file (?file=wav: audio/wav,
//! # ?file=json: the sidecar); 404 until written (when the call ends).
//! curl -s 127.0.0.1:28700/v1/media_servers/cloud/recordings/a1b2-0@127.0.0.1
//! curl -s -o cloud.wav '127.0.0.1:28700/v1/media_servers/cloud/recordings/a1b2-0@127.0.0.1?file=wav'
//! ```
//!
//! SMSC faults ([`Fault`]): `die` resets every session (RST) and closes the
//! port; `blackhole` keeps and accepts connections but reads and answers
//! nothing; `slow` delays every response; `throttle` answers that fraction of
//! submits `ESME_RTHROTTLED`; `reject_binds` answers binds `ESME_RBINDFAIL`
//! while bound sessions carry on; `recover` makes the instance healthy and,
//! after `die`, listens on the same port again. Any fault but `die` set on a
//! dead instance brings it back up with that fault.
//!
//! HTTP faults ([`HttpFault`]) apply to the next request: `die` closes the port
//! and resets open connections; `hang` reads requests and never answers (hung
//! connections close when the fault changes); `slow` delays answers; `status`
//! answers every request with that status (and `Retry-After`); `reset` reads
//! the request, then resets the connection (RST); `throttle` and
//! `internal_error` (HTTP sites only) answer codes 20 and 21; `recover` heals.
//!
//! # From Rust
//!
//! ```ignore
//! let lab = Lab::start(LabConfig::from_toml_str(&text)?).await?;
//! let (target, addr) = lab.smsc_addrs()[0].clone();
//! lab.set_fault(&target, Fault::Die)?;   // the port is closed when it returns
//! let (site, http_addr) = lab.http_site_addrs()[0].clone();
//! lab.set_http_site_fault(&site, HttpFault::Status { code: 503, retry_after_s: None })?;
//! lab.set_dns("sms.lab.test", vec!["127.0.0.2".parse()?])?;
//! assert_eq!(lab.stats().totals.unique, 0);
//! lab.shutdown().await;
//! ```

#![warn(missing_docs)]

mod clock;
mod config;
mod control;
mod dns;
mod fault;
mod http;
mod lab;
mod link;
pub mod media;
mod peers;
mod port;
mod shared;
pub mod sip;
mod smpp;
mod smtp;
mod stats;
mod traffic;

pub use config::{
    AccountConfig, ConfigError, DedupeConfig, DeliveryConfig, DnsConfig, DnsRecordConfig,
    FinalState, HttpConfig, HttpSiteConfig, IdFormat, LabConfig, LabLinkConfig,
    LabMediaServerConfig, LabPhoneConfig, ReceiptConfig, SiteConfig, SmscConfig, SmtpConfig,
    WebhookConfig,
};
pub use fault::{Fault, InvalidFault, MAX_SLOW_DELAY_MS};
pub use http::{HttpFault, MAX_RETRY_AFTER_S};
pub use lab::{Lab, LabError, LabHandle};
pub use link::{DirectionStats, Link, LinkConfig, LinkError, LinkState, LinkStats};
pub use media::{
    MediaCallInfo, MediaCallRecord, MediaCaller, MediaCallerConfig, MediaError, MediaServer,
    MediaServerConfig, MediaServerStats,
};
pub use sip::{
    CallRecord, CallerProgress, PhoneAnswer, PhoneCommand, PhoneStats, ReceivedInvite,
    RegistrarStats, RegistrationStatus, SipCaller, SipCallerConfig, SipError, SipPhone,
    SipPhoneConfig, SipTrunk, SipTrunkConfig, TrunkFault, TrunkStats,
};
pub use smtp::SmtpFault;
pub use stats::{
    CallbackStats, DnsStats, HttpSiteStats, HttpTransportStats, LabStats, SmscStats, SmtpStats,
    TotalStats, WebhookStats,
};
pub use traffic::{
    HandsetMessage, HttpMoDispatch, HttpMoRequest, MoDispatch, MoRequest, Protocol, SmtpMail,
    WebhookMessage,
};
