//! hotsite-lab: a simulated SMS aggregator with several hot sites, speaking real
//! SMPP 3.4 over TCP on loopback, with fault injection.
//!
//! Tests, benchmarks and `hotsite demo` point hotsite at a lab to show the
//! messaging behaviours of SPEC M1–M14 against a provider that misbehaves on
//! command: binds to every instance of every site (M4), rebind pacing (M5),
//! receipts and MOs on any bind of any site (M1, M6), dead, silent, slow and
//! throttling SMSCs (M7, M14), and exactly-once delivery to handsets despite
//! resubmits (M8). The lab is never part of the systems themselves.
//!
//! # Layout
//!
//! - `config`: [`LabConfig`], parsed from TOML and validated before any port opens.
//! - `lab`: [`Lab::start`] and the [`LabHandle`] that steers and stops a lab.
//! - `smpp`: the SMSC instances: `listener` (one life of a port), `session` (one
//!   bind), `provider` (accounts, message ids, dedupe, receipt routing: no I/O),
//!   `receipt` (receipt PDUs and their text).
//! - `fault`: [`Fault`], what can be injected.
//! - `control`: the HTTP control API.
//! - `stats`, `traffic`: what the lab reports ([`LabStats`], [`HandsetMessage`])
//!   and the MOs it is asked to send ([`MoRequest`]).
//! - `clock`: the only module that reads the clock.
//!
//! # The provider it imitates
//!
//! - Binds (`bind_transmitter`, `bind_receiver`, `bind_transceiver`) are checked
//!   against the accounts: unknown `system_id` → `ESME_RINVSYSID`, wrong password
//!   → `ESME_RINVPASWD`, and the connection is closed. A second bind on a bound
//!   session → `ESME_RALYBND`; a submit before binding → `ESME_RINVBNDSTS`.
//! - `enquire_link` is answered; `unbind` is answered, then the connection
//!   closes. A complete frame that does not decode is answered `generic_nack`
//!   with the decoder's status and the frame's sequence; a frame whose length
//!   prefix is impossible closes the connection.
//! - `submit_sm` and `data_sm` get a message id unique across the lab. A repeat
//!   of (`system_id`, `destination_addr`, `user_message_reference`) on any
//!   instance of any site is answered `ESME_ROK` with the *original* id and
//!   counted in `duplicates_dropped`, not delivered again (SPEC M8).
//! - A message with `registered_delivery` 1 gets a receipt `receipts.delay_ms`
//!   after its response: `deliver_sm` with `esm_class` 0x04, `receipted_message_id`
//!   = the submit's id, `message_state` = the final state, and a classic text
//!   `id:<carrier id> sub:001 dlvrd:001 submit date:… done date:… stat:DELIVRD
//!   err:000 text:…` whose id is the *carrier's*, not the submit's (SPEC M13).
//!   It goes on a receiver or transceiver of the same account: usually of the
//!   same site, with `other_site_probability` of another; with
//!   `duplicate_probability` twice. With no bind up it waits for one. A
//!   session that ends with receipts unwritten or unanswered hands them to
//!   another bind, as an SMSC retries.
//! - MOs (control API or [`LabHandle::send_mo`]) go to any receiver or
//!   transceiver of the account (optionally of one site), or wait for one.
//! - All randomness comes from one seeded `hotsite_core::Rng`.
//!
//! # Configuration
//!
//! ```toml
//! [lab]
//! control = "127.0.0.1:28700"     # HTTP control API (port 0: ephemeral; default 127.0.0.1:0)
//! seed = 1                        # default 1
//!
//! [[lab.accounts]]                # at least one
//! system_id = "hotsite"           # at most 15 characters
//! password = "secret"             # at most 8 characters
//!
//! [lab.receipts]                  # optional; defaults shown
//! delay_ms = 20                   # after the submit_sm_resp
//! duplicate_probability = 0.0     # a receipt is sent twice
//! other_site_probability = 0.0    # a receipt goes out on another site's bind
//! final_state = "delivered"       # or "expired", "undeliverable", "rejected"
//!
//! [[lab.sites]]
//! name = "a"
//! [[lab.sites.smsc]]
//! name = "a1"                     # unique in its site, at most 15 characters
//! listen = "127.0.0.1:28775"      # port 0: ephemeral
//! ```
//!
//! `examples/lab.toml` in the workspace is a ready two-site lab.
//!
//! # Control API
//!
//! JSON in and out; errors are `{"error": "..."}`, 404 for an unknown site or
//! instance, 400 for a bad body.
//!
//! ```sh
//! # Counters: totals (submits, unique, duplicates_dropped, throttled,
//! # receipts_sent, receipts_acked, mo_sent, mo_acked, pending_deliveries) and,
//! # per instance, site, name, addr, fault, bound_sessions, connections,
//! # bind_attempts, bind_attempt_ms (ms since lab start), submits, ...
//! curl -s 127.0.0.1:28700/v1/stats
//!
//! # Faults, per instance; each replaces the previous one.
//! curl -s -XPOST 127.0.0.1:28700/v1/smsc/a/a1/fault -d '{"fault":"die"}'
//! curl -s -XPOST 127.0.0.1:28700/v1/smsc/a/a1/fault -d '{"fault":"blackhole"}'
//! curl -s -XPOST 127.0.0.1:28700/v1/smsc/a/a1/fault -d '{"fault":"slow","delay_ms":200}'
//! curl -s -XPOST 127.0.0.1:28700/v1/smsc/a/a1/fault -d '{"fault":"throttle","probability":1.0}'
//! curl -s -XPOST 127.0.0.1:28700/v1/smsc/a/a1/fault -d '{"fault":"reject_binds"}'
//! curl -s -XPOST 127.0.0.1:28700/v1/smsc/a/a1/fault -d '{"fault":"recover"}'
//!
//! # An MO from a handset; "site" and "system_id" are optional.
//! # Answers {"status":"routed","site":"a","smsc":"a1"} or {"status":"pending"}.
//! curl -s -XPOST 127.0.0.1:28700/v1/mo -d '{"from":"33612345678","to":"36000","text":"STOP","site":"a"}'
//!
//! # Every distinct message that reached a handset (the last N with ?limit=N).
//! curl -s '127.0.0.1:28700/v1/handsets?limit=10'
//! ```
//!
//! Faults ([`Fault`]): `die` resets every session (RST) and closes the port;
//! `blackhole` keeps and accepts connections but reads and answers nothing;
//! `slow` delays every response; `throttle` answers that fraction of submits
//! `ESME_RTHROTTLED`; `reject_binds` answers binds `ESME_RBINDFAIL` while bound
//! sessions carry on; `recover` makes the instance healthy and, after `die`,
//! listens on the same port again. Any fault but `die` set on a dead instance
//! brings it back up with that fault.
//!
//! # From Rust
//!
//! ```ignore
//! let lab = Lab::start(LabConfig::from_toml_str(&text)?).await?;
//! let (target, addr) = lab.smsc_addrs()[0].clone();
//! lab.set_fault(&target, Fault::Die)?;   // the port is closed when it returns
//! assert_eq!(lab.stats().totals.unique, 0);
//! lab.shutdown().await;
//! ```

#![warn(missing_docs)]

mod clock;
mod config;
mod control;
mod fault;
mod lab;
mod smpp;
mod stats;
mod traffic;

pub use config::{
    AccountConfig, ConfigError, FinalState, LabConfig, ReceiptConfig, SiteConfig, SmscConfig,
};
pub use fault::{Fault, InvalidFault, MAX_SLOW_DELAY_MS};
pub use lab::{Lab, LabError, LabHandle};
pub use stats::{LabStats, SmscStats, TotalStats};
pub use traffic::{HandsetMessage, MoDispatch, MoRequest};
