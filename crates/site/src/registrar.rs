//! The registrar for agent phones (SPEC S8, RFC 3261 §10.3): REGISTER with
//! digest authentication per DN, contact bindings with expiry, un-REGISTER
//! (one contact or `*`), several contacts per DN. A phone may register here
//! and at the peer at once (dual registration); each site knows only its own
//! bindings.
//!
//! A DN is in service while it has at least one binding here. The change
//! both ways is a [`DnChange`] (`DNOutOfService` / `DNBackInService` on the
//! event stream); at start every DN is out of service, without an event.
//!
//! Nonces are stateless (`hotsite_sip::digest`): a timestamp and its MAC
//! under a key made at start, so the registrar keeps nothing per challenge
//! and a flood of unauthenticated REGISTERs costs no memory. A nonce older
//! than [`NONCE_MAX_AGE`] is answered `401` with `stale=true`, and the phone
//! retries without asking its user.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hotsite_sip::digest::{self, Credentials, NonceCheck, NonceIssuer};
use hotsite_sip::message::{response_to, Header, HeaderName, Request, Response, StatusCode, Uri};
use hotsite_sip::proxy::uri_addr;

/// Most bindings one DN keeps; a REGISTER that would add more gets `403`.
pub const MAX_BINDINGS: usize = 10;

/// How long a nonce is good for.
pub const NONCE_MAX_AGE: Duration = Duration::from_secs(300);

/// One contact binding of a DN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI as registered (the Request-URI of calls to it).
    pub uri: Uri,
    /// Where calls to it are sent: the URI's address, or the REGISTER's
    /// source when the URI names a host we would have to resolve.
    pub addr: SocketAddr,
    /// The REGISTER's Call-ID and CSeq (RFC 3261 §10.3 step 7: an older
    /// CSeq of the same Call-ID is stale).
    pub call_id: String,
    /// See `call_id`.
    pub cseq: u32,
    /// When it expires.
    pub expires_at: Instant,
}

/// A DN entering or leaving service (SPEC S8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnChange {
    /// The DN.
    pub dn: String,
    /// In service after the change.
    pub in_service: bool,
    /// Why.
    pub cause: String,
}

#[derive(Debug)]
struct Dn {
    password: String,
    bindings: Vec<Binding>,
}

/// Counters for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistrarStats {
    /// REGISTERs answered 200.
    pub registered: u64,
    /// Challenged (401 without a usable Authorization).
    pub challenged: u64,
    /// Refused: wrong credentials, unknown DN, bad request.
    pub refused: u64,
    /// Bindings that expired.
    pub expired: u64,
}

impl RegistrarStats {
    /// Every counter with its outcome name, for `/v1/site` and `/metrics`.
    pub fn outcomes(&self) -> [(&'static str, u64); 4] {
        [
            ("registered", self.registered),
            ("challenged", self.challenged),
            ("refused", self.refused),
            ("expired", self.expired),
        ]
    }
}

/// The registrar.
#[derive(Debug)]
pub struct Registrar {
    realm: String,
    dns: HashMap<String, Dn>,
    min_expires: Duration,
    max_expires: Duration,
    nonces: NonceIssuer,
    epoch: Instant,
    /// (expiry, DN): looked at when due; stale entries are skipped.
    expiries: BinaryHeap<Reverse<(Instant, String)>>,
    changes: Vec<DnChange>,
    stats: RegistrarStats,
}

impl Registrar {
    /// A registrar for `dns` (DN, password), under `realm`. `key` keys the
    /// nonces (random per start).
    pub fn new(
        now: Instant,
        realm: &str,
        dns: impl IntoIterator<Item = (String, String)>,
        min_expires: Duration,
        max_expires: Duration,
        key: [u8; 32],
    ) -> Registrar {
        Registrar {
            realm: realm.to_owned(),
            dns: dns
                .into_iter()
                .map(|(dn, password)| {
                    (
                        dn,
                        Dn {
                            password,
                            bindings: Vec::new(),
                        },
                    )
                })
                .collect(),
            min_expires,
            max_expires,
            nonces: NonceIssuer::new(key),
            epoch: now,
            expiries: BinaryHeap::new(),
            changes: Vec::new(),
            stats: RegistrarStats::default(),
        }
    }

    /// Whether `dn` is configured.
    pub fn is_known(&self, dn: &str) -> bool {
        self.dns.contains_key(dn)
    }

    /// Whether `dn` has a binding.
    pub fn in_service(&self, dn: &str) -> bool {
        self.dns.get(dn).is_some_and(|d| !d.bindings.is_empty())
    }

    /// The bindings of `dn`, newest first.
    pub fn bindings(&self, dn: &str) -> &[Binding] {
        self.dns.get(dn).map_or(&[], |d| &d.bindings)
    }

    /// Every DN, sorted, with its bindings.
    pub fn list(&self) -> Vec<(&str, &[Binding])> {
        let mut all: Vec<_> = self
            .dns
            .iter()
            .map(|(dn, d)| (dn.as_str(), d.bindings.as_slice()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all
    }

    /// Counters.
    pub fn stats(&self) -> RegistrarStats {
        self.stats
    }

    /// A REGISTER from `from`: the response to send back.
    pub fn handle_register(
        &mut self,
        now: Instant,
        from: SocketAddr,
        request: &Request,
    ) -> Response {
        match self.register(now, from, request) {
            Ok(response) => response,
            Err(refusal) => {
                match refusal.status {
                    StatusCode::UNAUTHORIZED => self.stats.challenged += 1,
                    _ => self.stats.refused += 1,
                }
                refusal.into_response(request)
            }
        }
    }

    fn register(
        &mut self,
        now: Instant,
        from: SocketAddr,
        request: &Request,
    ) -> Result<Response, Refusal> {
        let to = request
            .headers
            .to()
            .ok_or_else(|| Refusal::bad("no To header"))?;
        let dn = to
            .uri
            .sip()
            .and_then(|sip| sip.user.map(|u| String::from_utf8_lossy(&u).into_owned()))
            .ok_or_else(|| Refusal::bad("the To URI has no user part (the DN)"))?;
        if !self.dns.contains_key(&dn) {
            return Err(Refusal::new(
                StatusCode::NOT_FOUND,
                format!("DN {dn} is not configured at this site"),
            ));
        }
        self.authenticate(now, request, &dn)?;
        let call_id = request
            .headers
            .call_id()
            .ok_or_else(|| Refusal::bad("no Call-ID"))?
            .to_owned();
        let cseq = request
            .headers
            .cseq()
            .ok_or_else(|| Refusal::bad("no CSeq"))?
            .seq;
        let default_expires = match request.headers.value(HeaderName::Expires) {
            Some(value) => Some(
                parse_expires(value)
                    .ok_or_else(|| Refusal::bad("the Expires header is not a number of seconds"))?,
            ),
            None => None,
        };
        let was_in_service = self.in_service(&dn);
        if request.headers.contact_is_star() {
            // `Contact: *` removes every binding, and only with Expires: 0
            // (§10.3 step 6).
            if default_expires != Some(0) || request.headers.contacts().len() > 1 {
                return Err(Refusal::bad(
                    "Contact: * needs Expires: 0 and no other contact",
                ));
            }
            if let Some(entry) = self.dns.get_mut(&dn) {
                entry.bindings.clear();
            }
        } else {
            let mut updates = Vec::new();
            for contact in request.headers.contacts() {
                let expires = match contact.params.get("expires") {
                    Some(Some(value)) => parse_expires(value).ok_or_else(|| {
                        Refusal::bad("a Contact's expires parameter is not a number of seconds")
                    })?,
                    _ => default_expires.unwrap_or(3600),
                };
                let expires = Duration::from_secs(expires);
                if !expires.is_zero() && expires < self.min_expires {
                    return Err(Refusal::new(
                        StatusCode::INTERVAL_TOO_BRIEF,
                        format!(
                            "registrations shorter than {:?} are refused",
                            self.min_expires
                        ),
                    )
                    .with(Header::new(
                        HeaderName::MinExpires,
                        self.min_expires.as_secs().to_string(),
                    )));
                }
                let addr = match uri_addr(&contact.uri) {
                    Ok((addr, _)) => addr,
                    Err(_) => from,
                };
                updates.push((contact.uri.clone(), addr, expires.min(self.max_expires)));
            }
            let entry = self.dns.get_mut(&dn).expect("checked above");
            for (uri, addr, expires) in updates {
                let existing = entry.bindings.iter().position(|b| b.uri == uri);
                if let Some(i) = existing {
                    let binding = &entry.bindings[i];
                    if binding.call_id == call_id && binding.cseq >= cseq {
                        // A retransmission or a REGISTER overtaken by a newer
                        // one: the newer state stands.
                        continue;
                    }
                    entry.bindings.remove(i);
                }
                if expires.is_zero() {
                    continue;
                }
                if entry.bindings.len() >= MAX_BINDINGS {
                    return Err(Refusal::new(
                        StatusCode::FORBIDDEN,
                        format!("DN {dn} has {MAX_BINDINGS} contacts already"),
                    ));
                }
                let expires_at = now + expires;
                entry.bindings.insert(
                    0,
                    Binding {
                        uri,
                        addr,
                        call_id: call_id.clone(),
                        cseq,
                        expires_at,
                    },
                );
                self.expiries.push(Reverse((expires_at, dn.clone())));
            }
        }
        self.stats.registered += 1;
        let now_in_service = self.in_service(&dn);
        if was_in_service != now_in_service {
            let cause = if now_in_service {
                format!("registered from {from}")
            } else {
                format!("unregistered from {from}")
            };
            self.changes.push(DnChange {
                dn: dn.clone(),
                in_service: now_in_service,
                cause,
            });
        }
        let mut response = response_to(request, StatusCode::OK, Some(&format!("r{cseq}")));
        for binding in self.bindings(&dn) {
            let left = binding.expires_at.saturating_duration_since(now).as_secs();
            response.headers.push(Header::new(
                HeaderName::Contact,
                format!("<{}>;expires={left}", binding.uri),
            ));
        }
        Ok(response)
    }

    fn authenticate(&self, now: Instant, request: &Request, dn: &str) -> Result<(), Refusal> {
        let secs = now.saturating_duration_since(self.epoch).as_secs();
        let challenge = |stale: bool| {
            Refusal::new(StatusCode::UNAUTHORIZED, String::new()).with(Header::new(
                HeaderName::WwwAuthenticate,
                digest::challenge(
                    &self.realm,
                    &self.nonces.issue(secs),
                    digest::Algorithm::Md5,
                    stale,
                ),
            ))
        };
        let Some(value) = request.headers.value(HeaderName::Authorization) else {
            return Err(challenge(false));
        };
        let credentials = Credentials::parse(value).map_err(|error| {
            Refusal::bad(&format!("the Authorization header cannot be read: {error}"))
        })?;
        if credentials.username != dn {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "the digest user name is not the DN being registered".to_owned(),
            ));
        }
        match self
            .nonces
            .check(&credentials.nonce, secs, NONCE_MAX_AGE.as_secs())
        {
            NonceCheck::Valid => {}
            NonceCheck::Stale => return Err(challenge(true)),
            NonceCheck::Invalid => return Err(challenge(false)),
        }
        let password = &self.dns[dn].password;
        digest::verify(&credentials, "REGISTER", password, &self.realm)
            .map_err(|_| Refusal::new(StatusCode::FORBIDDEN, "wrong credentials".to_owned()))
    }

    /// Expires bindings that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.expiries.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, dn))) = self.expiries.pop() else {
                break;
            };
            let Some(entry) = self.dns.get_mut(&dn) else {
                continue;
            };
            let before = entry.bindings.len();
            entry.bindings.retain(|b| b.expires_at > now);
            let expired = before - entry.bindings.len();
            self.stats.expired += expired as u64;
            if expired > 0 && before > 0 && entry.bindings.is_empty() {
                self.changes.push(DnChange {
                    dn: dn.clone(),
                    in_service: false,
                    cause: "registration expired".to_owned(),
                });
            }
        }
    }

    /// The next expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.expiries.peek().map(|Reverse((at, _))| *at)
    }

    /// The changes since the last call.
    pub fn take_changes(&mut self) -> Vec<DnChange> {
        std::mem::take(&mut self.changes)
    }
}

fn parse_expires(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A refused REGISTER: the status, a reason for the Warning, extra headers.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    reason: String,
    headers: Vec<Header>,
}

impl Refusal {
    fn new(status: StatusCode, reason: String) -> Refusal {
        Refusal {
            status,
            reason,
            headers: Vec::new(),
        }
    }

    fn bad(reason: &str) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, reason.to_owned())
    }

    fn with(mut self, header: Header) -> Refusal {
        self.headers.push(header);
        self
    }

    fn into_response(self, request: &Request) -> Response {
        let mut response = response_to(request, self.status, Some("r0"));
        for header in self.headers {
            response.headers.push(header);
        }
        if !self.reason.is_empty() {
            response
                .headers
                .push(hotsite_sip::proxy::warning("hotsite", &self.reason));
        }
        response
    }
}
