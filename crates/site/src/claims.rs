//! One site at a time per agent, across the pair (SPEC S1: "an agent is
//! logged in at one site at a time"; S4: no split brain).
//!
//! While peered, a login here is *claimed* at the peer: a SIP `MESSAGE` over
//! the inter-site trunk naming the agent, and the peer logs the agent out if
//! it had it, with reason `peer_login` (the agent's desktop is here now).
//!
//! In single-site mode both sites may let the same agent log in (SPEC S3:
//! nothing may depend on the other site). So when peering resumes, each site
//! claims every agent logged in at it as a `sync`: a site holding a claimed
//! agent keeps it only if its own login is the newer one. Logins are
//! compared by wall-clock milliseconds, ties broken by site name, and both
//! sites compare the same two numbers, so exactly one of them keeps the
//! agent whatever the skew between their clocks. A fresh claim always wins:
//! it is a login that has just happened, and comparing it by clock would let
//! a skewed clock keep a stale login.
//!
//! Claims are retransmitted until the peer answers (T1 doubling to T2, given
//! up after 64·T1 as a SIP transaction would): unlike a lost probe, a lost
//! claim would leave an agent at two sites until the next resync. The
//! receiver remembers the Call-IDs it applied, so a retransmission is
//! answered but not applied twice (a late copy must not log out an agent
//! who logged in again since).

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotsite_core::Rng;
use hotsite_sip::message::{Branch, Header, HeaderName, Method, NewRequest, Response, Uri};
use serde::{Deserialize, Serialize};

/// The body's media type; a `MESSAGE` with any other is not a claim.
pub const CONTENT_TYPE: &str = "application/x-hotsite-claims+json";

/// The body format's version.
const VERSION: u32 = 1;

/// Claims per `MESSAGE` are packed up to this many body bytes, so that a
/// request stays well inside one UDP datagram on a 1,500-byte path.
const MAX_BODY: usize = 1_000;

/// Retransmission: first after T1, doubling up to T2, given up at 64·T1
/// (RFC 3261 §17.1.2's timers E, F).
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const GIVE_UP: Duration = Duration::from_secs(32);

/// Requests in flight at most; beyond it the oldest is given up (a resync
/// of many thousand agents is sent in full, then answers pace the rest).
const MAX_PENDING: usize = 4_096;

/// Applied claims remembered for this long (longer than a sender retries).
const REMEMBER: Duration = Duration::from_secs(64);
/// ... and at most this many.
const REMEMBER_MAX: usize = 16_384;

/// A fresh login, or the resync after peering resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimKind {
    /// An agent just logged in at the sender: the receiver yields.
    Fresh,
    /// Every agent logged in at the sender, after peering resumed: the
    /// newer login keeps the agent.
    Sync,
}

/// One agent logged in at the sending site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The agent's id.
    pub agent: String,
    /// The DN it is logged in on (for the receiver's log and events).
    pub dn: String,
    /// When it logged in, wall-clock milliseconds since the Unix epoch at
    /// the sending site.
    pub since_ms: i64,
}

/// A `MESSAGE` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimBatch {
    /// The format's version (1).
    pub v: u32,
    /// The sending site's name (the tie-break).
    pub site: String,
    /// Fresh or sync.
    pub kind: ClaimKind,
    /// The agents.
    pub claims: Vec<Claim>,
}

/// Why a claim request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// The body is not a claim batch.
    #[error("claims body: {0}")]
    Body(String),
    /// A version this site does not speak.
    #[error("claims body: version {0}, this site speaks version 1")]
    Version(u32),
}

impl ClaimBatch {
    /// Parses a `MESSAGE` body.
    pub fn parse(body: &[u8]) -> Result<ClaimBatch, ClaimError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| ClaimError::Body(e.to_string()))?;
        // The version first: a newer peer's body may have fields this one
        // does not know, and should be told so, not that a field is wrong.
        match value.get("v").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(VERSION) => {}
            Some(v) => return Err(ClaimError::Version(u32::try_from(v).unwrap_or(u32::MAX))),
            None => return Err(ClaimError::Body("no version \"v\"".to_owned())),
        }
        serde_json::from_value(value).map_err(|e| ClaimError::Body(e.to_string()))
    }
}

/// Whether this site gives up its login of an agent the peer claims.
///
/// A fresh claim always wins. A sync claim wins when the peer's login is
/// newer, `(since_ms, site)` compared as a pair; a peer with our own name
/// (both sites misconfigured alike) wins too, so that the agent ends logged
/// out at both rather than in at both.
pub fn yields(kind: ClaimKind, ours: (i64, &str), theirs: (i64, &str)) -> bool {
    match kind {
        ClaimKind::Fresh => true,
        ClaimKind::Sync => theirs.1 == ours.1 || theirs > ours,
    }
}

#[derive(Debug)]
struct Pending {
    /// The agent of a fresh claim (fresh claims name one agent): if it
    /// logs out here before the peer answered, the claim is dropped.
    fresh_for: Option<String>,
    branch: String,
    bytes: Bytes,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

/// Counters for the status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClaimStats {
    /// Claim requests sent (not counting retransmissions).
    pub sent: u64,
    /// Of them, answered 2xx.
    pub answered: u64,
    /// Of them, refused or never answered.
    pub abandoned: u64,
    /// Claim requests received from the peer and applied.
    pub received: u64,
    /// Agents logged out here because the peer claimed them.
    pub yielded: u64,
}

impl ClaimStats {
    /// The counters by name, for `/v1/site` and `/metrics`.
    pub fn outcomes(&self) -> [(&'static str, u64); 5] {
        [
            ("sent", self.sent),
            ("answered", self.answered),
            ("abandoned", self.abandoned),
            ("received", self.received),
            ("yielded", self.yielded),
        ]
    }
}

/// Claims to the peer, kept until answered.
#[derive(Debug)]
pub struct ClaimSender {
    peer: SocketAddr,
    site: String,
    sent_by: String,
    from: Uri,
    to: Uri,
    cseq: u32,
    pending: VecDeque<Pending>,
    stats: ClaimStats,
}

impl ClaimSender {
    /// Claims from site `site` at `us` to the peer at `peer`.
    pub fn new(us: SocketAddr, peer: SocketAddr, site: &str) -> ClaimSender {
        let uri = |text: String| Uri::parse(text).unwrap_or_else(|_| fallback_uri());
        ClaimSender {
            peer,
            site: site.to_owned(),
            sent_by: us.to_string(),
            from: uri(format!("sip:{site}@{us}")),
            to: uri(format!("sip:claims@{peer}")),
            cseq: 0,
            pending: VecDeque::new(),
            stats: ClaimStats::default(),
        }
    }

    /// Where claims go.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Counters (the receiving side's are kept by the machine and merged).
    pub fn stats(&self) -> ClaimStats {
        self.stats
    }

    /// Claims `claims`, packed into as few requests as fit; the bytes to
    /// send now (each also kept for retransmission).
    pub fn send(
        &mut self,
        now: Instant,
        kind: ClaimKind,
        claims: Vec<Claim>,
        rng: &mut Rng,
    ) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut batch = Vec::new();
        let mut size = 0;
        for claim in claims {
            // The JSON of one claim is its fields plus some 40 bytes.
            let len = claim.agent.len() + claim.dn.len() + 60;
            if !batch.is_empty() && size + len > MAX_BODY {
                out.push(self.request(now, kind, std::mem::take(&mut batch), rng));
                size = 0;
            }
            size += len;
            batch.push(claim);
        }
        if !batch.is_empty() {
            out.push(self.request(now, kind, batch, rng));
        }
        out
    }

    fn request(
        &mut self,
        now: Instant,
        kind: ClaimKind,
        claims: Vec<Claim>,
        rng: &mut Rng,
    ) -> Bytes {
        self.cseq = self.cseq.wrapping_add(1);
        let branch = Branch::generate(rng);
        let mut request = NewRequest {
            method: Method::new("MESSAGE").unwrap_or(Method::Options),
            uri: self.to.clone(),
            from: self.from.clone(),
            from_tag: format!("{:08x}", rng.next_u64() as u32),
            to: self.to.clone(),
            call_id: format!("claim-{:016x}@{}", rng.next_u64(), self.sent_by),
            cseq: self.cseq,
            transport: "UDP".to_owned(),
            sent_by: self.sent_by.clone(),
            branch: branch.clone(),
            max_forwards: 70,
            contact: None,
        }
        .build();
        let fresh_for = match (kind, claims.as_slice()) {
            (ClaimKind::Fresh, [claim]) => Some(claim.agent.clone()),
            _ => None,
        };
        let body = ClaimBatch {
            v: VERSION,
            site: self.site.clone(),
            kind,
            claims,
        };
        request
            .headers
            .push(Header::new(HeaderName::ContentType, CONTENT_TYPE));
        request.body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let bytes = request.to_bytes();
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
            self.stats.abandoned += 1;
        }
        self.pending.push_back(Pending {
            fresh_for,
            branch: branch.as_str().to_owned(),
            bytes: bytes.clone(),
            next: now + T1,
            interval: T1,
            give_up: now + GIVE_UP,
        });
        self.stats.sent += 1;
        bytes
    }

    /// `agent` logged out here: a fresh claim of it still unanswered must
    /// not reach the peer late (its first copy lost, a retransmission
    /// arriving after the agent logged in there would log out that newer
    /// login).
    pub fn forget_fresh(&mut self, agent: &str) {
        let before = self.pending.len();
        self.pending
            .retain(|p| p.fresh_for.as_deref() != Some(agent));
        self.stats.abandoned += (before - self.pending.len()) as u64;
    }

    /// A response: true if it answered one of our claims.
    pub fn handle_response(&mut self, response: &Response) -> bool {
        // Most responses here are calls'; only ours are MESSAGE.
        if self.pending.is_empty()
            || response
                .headers
                .cseq()
                .is_none_or(|cseq| cseq.method.as_str() != "MESSAGE")
        {
            return false;
        }
        let Some(branch) = response
            .headers
            .top_via()
            .and_then(|via| via.branch().map(str::to_owned))
        else {
            return false;
        };
        let Some(index) = self.pending.iter().position(|p| p.branch == branch) else {
            return false;
        };
        let status = response.status.as_u16();
        if status < 200 {
            return true;
        }
        self.pending.remove(index);
        if (200..300).contains(&status) {
            self.stats.answered += 1;
        } else {
            // An old peer without claims (405), or one that refuses ours
            // (403: we are not its peer trunk): retrying would not help.
            self.stats.abandoned += 1;
            tracing::warn!(status, peer = %self.peer, "the peer refused an agent claim");
        }
        true
    }

    /// Retransmissions due at `now`, and claims given up.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Bytes> {
        let before = self.pending.len();
        self.pending.retain(|p| p.give_up > now);
        let given_up = before - self.pending.len();
        if given_up > 0 {
            self.stats.abandoned += given_up as u64;
            tracing::warn!(given_up, peer = %self.peer, "agent claims never answered; the next resync repeats them");
        }
        let mut out = Vec::new();
        for pending in &mut self.pending {
            if pending.next <= now {
                out.push(pending.bytes.clone());
                pending.interval = (pending.interval * 2).min(T2);
                pending.next = (now + pending.interval).min(pending.give_up);
            }
        }
        out
    }

    /// The next retransmission or give-up.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // Usually empty: no scan on the site's every wake-up.
        if self.pending.is_empty() {
            return None;
        }
        self.pending.iter().map(|p| p.next.min(p.give_up)).min()
    }

    /// Drops every claim in flight (the peer went out of service: the
    /// resync when it is back repeats what matters).
    pub fn clear(&mut self) {
        self.stats.abandoned += self.pending.len() as u64;
        self.pending.clear();
    }
}

/// Call-IDs of claims already applied, for a while.
#[derive(Debug, Default)]
pub struct Applied {
    order: VecDeque<(Instant, String)>,
    set: HashSet<String>,
}

impl Applied {
    /// Whether `call_id` was applied; remembers it if not.
    pub fn first_time(&mut self, now: Instant, call_id: &str) -> bool {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < REMEMBER && self.order.len() < REMEMBER_MAX {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        if self.set.contains(call_id) {
            return false;
        }
        self.set.insert(call_id.to_owned());
        self.order.push_back((now, call_id.to_owned()));
        true
    }
}

fn fallback_uri() -> Uri {
    // `sip:` + a name and a socket address parses unless the name has
    // characters a URI's user part may not; the From is cosmetic here.
    Uri::parse("sip:claims.invalid").expect("a constant URI")
}

#[cfg(test)]
mod tests;
