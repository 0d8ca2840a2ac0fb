//! SIP for hotsite: what the trunk proxy (`hotsite-voice`) and the site proxy
//! build on.
//!
//! - [`message`]: parsing (`parse`, `parse_bytes`, `frame_len` for streams),
//!   typed views of the headers a proxy reads, builders (responses, OPTIONS,
//!   REGISTER, CANCEL, the ACK for a failure), the proxy's edits (Via push/pop,
//!   Record-Route, Route pop, Max-Forwards) and serialisation.
//! - [`transaction`]: the four RFC 3261 §17 transaction state machines, with
//!   the RFC 6026 corrections, and the keys that match messages to them.
//! - [`prober`]: trunk health by OPTIONS (SPEC V2, S4).
//! - [`register`]: the REGISTER client for registration-based trunks (SPEC V2),
//!   with [`digest`] authentication (MD5, SHA-256).
//! - [`proxy`]: the RFC 3261 proxy pieces both proxies share: [`proxy::Transport`],
//!   [`proxy::Peer`] and [`proxy::Transmit`], transaction keys, `received`/`rport`,
//!   where responses go, next hops, branches, Warning, and our own addresses.
//! - [`digest`]: also the registrar's side, challenge, nonces and verify (SPEC S8).
//!
//! Everything here is sans-IO (DESIGN.md): no socket, no task, no clock. Time
//! comes in as `now: Instant`, randomness from a seeded `hotsite_core::Rng`;
//! bytes go in through `handle_*` and come out of `poll_transmit`, with
//! `poll_event` and `poll_timeout` beside them, as in `hotsite-smpp`.
//!
//! # Why our own parser
//!
//! A proxy forwards most of a message untouched and reads a dozen headers of
//! it; what it must not do is crash on, or mis-frame, hostile input. We weighed
//! `rsip` 0.4 (the parser `rsipstack` uses) against a parser of our own over
//! `bytes::Bytes`, on RFC 4475's torture messages and on speed:
//!
//! | | RFC 4475 §3.1.1 valid (13) | §3.1.2 invalid (19) | INVITE parse+serialise | 200 OK |
//! |---|---|---|---|---|
//! | `rsip` 0.4 | 7 parse; refuses `wsinv`, `intmeth`, `esc01`, `esc02`, `longreq`, `semiuri` | accepts 12 (headers are parsed lazily, so e.g. `badinv01`, `clerr`, `ncl`, `quotbal` pass) | ≈ 5.0 µs | ≈ 2.7 µs |
//! | ours | 13 parse and round-trip | refuses 18; `baddate` accepted on purpose | ≈ 1.5 µs | ≈ 1.5 µs |
//!
//! (One core of the project's machine, release build; `benches/parse.rs` for
//! ours, the same messages through `rsip::SipMessage::try_from` and
//! `to_string` for rsip.) `rsip` refuses valid messages a trunk may well send
//! (unknown methods, folded headers, LWS around separators) and lets invalid
//! ones through to whoever reads them later; its typed model also allocates a
//! `String` per part. So the parser is ours: one buffer per message, every
//! header a shared slice of it (no copy), typed views parsed on demand, and the
//! headers a proxy relies on validated once at parse time. The transaction,
//! probing and registration logic would have been ours in any case.
//!
//! Strictness follows RFC 3261 where it matters to framing and routing: CRLF
//! line ends only (a bare CR or LF is refused), folding joined, compact forms
//! and any case for names, list values split at top-level commas only (not in
//! quotes or `<>`), Content-Length checked against the datagram (larger: 400;
//! smaller: the rest ignored, §18.3) and required on streams, single spaces in
//! the Request-Line, no headers in a Request-URI, the Via/From/To/Call-ID/CSeq/
//! Max-Forwards/Content-Length/Contact/Route/Record-Route grammars checked,
//! CSeq method equal to the request method. A refused request whose Via, From,
//! To, Call-ID and CSeq were readable gets a ready-made 400 (505 for another
//! version) from [`message::ParseError::reply`]; anything else is dropped.
//! `tests/torture.rs` lists what happens to each RFC 4475 message.
//!
//! # Transactions
//!
//! [`transaction::ClientInvite`] (timers A, B, D, M),
//! [`transaction::ClientNonInvite`] (E, F, K), [`transaction::ServerInvite`]
//! (100 Trying after 200 ms, G, H, I, L) and [`transaction::ServerNonInvite`]
//! (J), each `new(now, …)`, `handle_response`/`handle_request`/`respond`,
//! `handle_timeout(now)`, `handle_transport_error(now)`, then `poll_transmit`
//! (bytes for the peer) and `poll_event` ([`transaction::TransactionEvent`]:
//! `Provisional`, `Final`, `Timeout`, `TransportError`, `Ack`). T1, T2, T4 and
//! reliable/unreliable transport are in [`transaction::TransactionConfig`].
//! [`transaction::TransactionKey`] matches responses (§17.1.3) and requests
//! (§17.2.3) to them; the caller keeps the map.

#![warn(missing_docs)]

pub mod digest;
pub mod message;
pub mod prober;
pub mod proxy;
pub mod register;
pub mod transaction;
