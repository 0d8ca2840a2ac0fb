//! SIP peers for the voice proxy (SPEC V1–V4) and for the sites' business
//! continuity (SPEC S1–S8): carrier trunks that answer calls and can die on
//! command, a caller that places calls through the proxy the way a
//! contact-center platform (or a media gateway) does, and agent phones that
//! register at one site or both and answer the calls the sites send them.
//! UDP on loopback, real SIP (RFC 3261) built and parsed with `hotsite-sip`'s
//! message layer.
//!
//! # Shape
//!
//! Each peer is a sans-IO core (DESIGN.md) that takes datagrams and `now` and
//! hands back datagrams and its next deadline: `trunk::Uas` (a user agent
//! server), `caller::Uac` (a user agent client) and `phone::Phone` (a `Uas`
//! for its calls beside REGISTER clients). `driver` runs any of them on a UDP
//! socket; [`SipTrunk`], [`SipCaller`] and [`SipPhone`] are the handles. The
//! call cores keep their own, deliberately small, transaction timers rather
//! than reuse `hotsite_sip::transaction`: a test peer that shares the proxy's
//! transaction code would share its bugs too. The phone's registrations do
//! reuse `hotsite_sip::register::RegisterClient` (and its Digest): the code
//! under test there is the site's registrar, which shares none of it.
//!
//! The lab's media peers (`crate::media`, SPEC R1–R5) run these same cores in
//! *media mode*: `Uas::enable_media` has every INVITE's 200 wait for an SDP
//! answer from the layer above (or a refusal such as `488`), answers
//! re-INVITEs in the dialog instead of `501`, and reports offers, answered
//! calls and ends as `UasEvent`s; `Uac::enable_media` has each call ask for
//! its offer, reports answers, re-INVITE outcomes and ends as `UacEvent`s,
//! and sends re-INVITEs (`Uac::reinvite`). Without it nothing changes.
//!
//! # The trunk ([`SipTrunk`], a UAS)
//!
//! - `OPTIONS` → `200` (with `Allow`).
//! - `INVITE` → `100 Trying` at once; `180 Ringing` after `ring_delay`
//!   (default 0: with the 100); `200 OK` `answer_delay` after the 180
//!   (default 20 ms), with a To tag, `Contact: <sip:NAME@ADDR>` and a small
//!   SDP answer. The 200 is sent again at T1, 2·T1, … (at most T2 apart) until
//!   the ACK (matched by Call-ID: a 2xx's ACK is a new transaction), for at
//!   most 64·T1. A retransmitted INVITE (same branch) gets the last response
//!   again, and is counted once.
//! - `ACK` is absorbed. `BYE` → `200` and the dialog ends (`481` for an
//!   unknown one). `CANCEL` of an INVITE not yet answered → `200` for the
//!   CANCEL and `487` for the INVITE (retransmitted until its ACK, like every
//!   final answer); of an answered one → `200` and nothing else; unknown →
//!   `481`. A retransmitted OPTIONS, BYE or CANCEL gets the same answer again.
//! - Other methods → `405` with `Allow`; an unparsable request whose headers
//!   could be read → `400`; anything else unreadable is dropped.
//! - Responses go back to the address the request came from.
//!
//! Faults ([`TrunkFault`], settable at any time, each replacing the last):
//! `Silent` — the trunk dies silently: every datagram is read and dropped,
//! nothing is answered or retransmitted (INVITEs that arrive are still logged,
//! marked `dropped`, so a report can tell which calls tried the dead trunk);
//! `Reject(status)` — every new INVITE gets `100` then `status` (say 503), and
//! OPTIONS get the same `status`, so a prober that counts only 2xx sees it
//! too (hotsite's prober by default counts any answer as alive); `Recover` —
//! healthy again. Calls already under way carry on through `Reject`;
//! through `Silent` their answers and retransmissions are dropped, and those
//! still being retransmitted go out again after `Recover` (a partition that
//! healed: the far end had answered meanwhile).
//!
//! # The caller ([`SipCaller`], a UAC)
//!
//! Places `calls` calls at `rate` calls/s to one address (the proxy): an INVITE
//! with a fresh `z9hG4bK` branch, From tag and Call-ID, CSeq 1, Contact,
//! Max-Forwards 70 and an SDP offer, sent again by timer A (T1, doubling)
//! until any response, and given up by timer B (64·T1) as a local `408`.
//! After a provisional it waits for the final answer up to `final_timeout`,
//! then cancels. On a 2xx it ACKs along the dialog's route set (the
//! Record-Route, reversed: the proxy, since it record-routes), holds the call
//! for `hold`, then sends BYE the same way and waits for its answer (timer E,
//! timer F = 64·T1). A non-2xx final answer gets the hop-by-hop ACK (same
//! branch as the INVITE). A 2xx from a second dialog (another To tag, say a
//! late answer from a trunk the proxy gave up on) is ACKed and hung up at
//! once (§13.2.2.4). With `cancel_after`, each call is cancelled that
//! long after its INVITE if no final answer came (after its first
//! provisional, §9.1). Requests from the far end get 200 (OPTIONS) or 501.
//! Each call ends with a [`CallRecord`]: start, first response, setup time
//! (INVITE → final answer), status, who answered (the 2xx's Contact), the
//! BYE's answer. Every
//! call ends within a bounded time (the sum of its timers), so the caller
//! finishes.
//!
//! The traffic can be held at a call count ([`SipCaller::allow`]) and
//! released; pacing resumes from the release, with no burst to catch up.
//!
//! The called user is the call's number (`number_prefix` and the index) in
//! `sip:NUMBER@PROXY`; a media gateway calling an agent sets `to_user` to the
//! DN (and `to_host` to the site's domain if the site wants one): every call
//! goes to `sip:DN@HOST` (SPEC S1).
//!
//! # The phone ([`SipPhone`], an agent's endpoint, SPEC S8)
//!
//! One UDP socket, one DN. For each registrar (one site, or two: dual
//! registration) a REGISTER client: `REGISTER sip:DOMAIN` with
//! `To`/`From: <sip:DN@DOMAIN>`, `Contact: <sip:DN@ADDR>` (its own address),
//! `Expires: N` (default 60), one Call-ID per client with CSeq counting up.
//! A `401`/`407` is answered with Digest (user name = DN, MD5 or SHA-256,
//! `qop=auth`), and the credentials go along with refreshes. The granted time
//! is the 200's `expires` on our Contact, else its `Expires`; the binding is
//! refreshed after half of it. Failures (a refusal, or no answer within
//! 64·T1) are retried after 50–100 % of a ceiling doubling from `retry` to
//! `retry_max`. Responses are matched to their REGISTER by transaction (Via
//! branch), so a registrar behind a relay answering from another address is
//! still understood.
//!
//! Calls are answered by the trunk's core (`100`, `180`, `200` with SDP, 200
//! repeated until the ACK, `BYE` → `200`, `CANCEL` → `200` + `487`,
//! `OPTIONS` → `200`), as [`PhoneAnswer`] says: `answer`, `busy` (`486 Busy
//! Here` after the 100) or `no_answer` (rings until cancelled). Every INVITE
//! is logged with its Call-ID and source address, so a test can tell which
//! site delivered each call (SPEC S1, S2, S4).
//!
//! Commands: `stop_registering` (no more refreshes: the binding expires at the
//! registrar, and the DN goes out of service, SPEC S8), `unregister`
//! (`Expires: 0`), `resume` (register again at once), `set_registrars` (switch
//! sites, SPEC S2; registrars left out are not contacted again and their
//! bindings lapse), `set_answer`. The phone never fails over by itself: a test
//! says when it switches.
//!
//! # From Rust
//!
//! ```ignore
//! let trunk = SipTrunk::start(SipTrunkConfig::new("trunk-1", "127.0.0.1:0".parse()?)).await?;
//! let caller = SipCaller::start(SipCallerConfig::new(trunk.local_addr(), 10, 50.0)).await?;
//! trunk.set_fault(TrunkFault::Silent)?;   // dies silently
//! trunk.set_fault(TrunkFault::Recover)?;
//! let records = caller.wait().await;
//! assert!(records.iter().all(|call| call.status == Some(200)));
//! trunk.shutdown().await;
//!
//! let phone = SipPhone::start(SipPhoneConfig::new("1001", "pw", "site.lab", vec![site_a, site_b])).await?;
//! phone.stop_registering();              // its bindings lapse: DN out of service
//! phone.set_registrars(vec![site_b])?;   // single registration, at site b
//! phone.resume();
//! let mut gateway = SipCallerConfig::new(site_b, 1, 1.0);
//! gateway.to_user = Some("1001".to_owned());
//! let records = SipCaller::start(gateway).await?.wait().await;
//! assert_eq!(phone.invite_log()[0].call_id, records[0].call_id);
//! ```

pub(crate) mod caller;
pub(crate) mod driver;
mod phone;
pub(crate) mod trunk;
mod wire;

#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;

pub use caller::{CallRecord, CallerProgress, SipCaller, SipCallerConfig};
pub use phone::{
    PhoneAnswer, PhoneCommand, PhoneStats, RegistrarStats, RegistrationStatus, SipPhone,
    SipPhoneConfig,
};
pub use trunk::{ReceivedInvite, SipTrunk, SipTrunkConfig, TrunkFault, TrunkStats};

/// Why a SIP peer could not start, or a request to it was refused.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    /// The UDP socket could not be bound.
    #[error("{what}: cannot bind UDP {addr}: {source}")]
    Bind {
        /// Which peer (`sip trunk NAME`, `sip caller`, `sip phone DN`).
        what: String,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// A setting is out of bounds.
    #[error("invalid {0}")]
    Invalid(String),
}
