//! The REGISTER client for registration-based trunks (SPEC V2: such a trunk is
//! out of service while unregistered; RFC 3261 §10.2).
//!
//! ```text
//!  new() ─▶ Registering ──2xx──▶ Registered ──refresh due──▶ (REGISTER again)
//!             │  ▲  401/407: answer the Digest challenge, 423: raise Expires
//!             ▼  │
//!           Failed ──retry due (backoff)──┘        unregister() ─▶ Unregistering ─▶ Unregistered
//! ```
//!
//! Every REGISTER runs as a client non-INVITE transaction (retransmitted over
//! UDP). One Call-ID and From tag for the client's life, CSeq counting up
//! (§10.2.4). The granted time is the `expires` of our Contact in the 2xx, else
//! the Expires header, else what we asked; the binding is refreshed after
//! `refresh_percent` of it (half by default). A challenge is answered with
//! Digest (MD5 or SHA-256, `qop=auth`, see [`crate::digest`]) and the
//! credentials are sent again with refreshes (nonce count up) so a refresh
//! usually takes one round trip. Failures are retried after a backoff of
//! 50–100 % of an exponentially growing ceiling (RFC 5626 §4.5).
//!
//! Health follows registration: up when registered, down on any failure or when
//! the binding expires, each change an [`Event`] with its cause and time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotsite_core::{
    Backoff, BackoffConfig, BackoffConfigError, Event, EventKind, Health, HealthConfig,
    HealthState, HealthTransition, Rng, Secret, Target,
};

use crate::digest::{Answer, Challenge};
use crate::message::{
    Branch, Header, HeaderName, Method, NewRequest, Request, Response, StatusCode, Uri,
};
use crate::transaction::{ClientNonInvite, TransactionConfig, TransactionEvent, TransactionKey};

/// A user name and password for Digest authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The authentication user name (often, not always, the AOR's user).
    pub username: String,
    /// The password (never shown by `{:?}`).
    pub password: Secret,
}

/// How to register. Defaults from [`RegisterConfig::new`]: 3600 s asked,
/// refresh at 50 %, retries from 30 s up to 30 min.
#[derive(Debug, Clone)]
pub struct RegisterConfig {
    /// The Request-URI: the registrar's domain (`sip:provider.example.com`).
    pub registrar: Uri,
    /// The address of record, in To and From.
    pub aor: Uri,
    /// Where calls for the AOR should come: our Contact.
    pub contact: Uri,
    /// The binding lifetime we ask for.
    pub expires: Duration,
    /// Credentials for Digest challenges; none means a challenge fails.
    pub credentials: Option<Credentials>,
    /// Refresh after this share of the granted time (1–95 %).
    pub refresh_percent: u8,
    /// Delay between failed attempts.
    pub retry: BackoffConfig,
    /// Transaction timers and transport reliability.
    pub transaction: TransactionConfig,
    /// The transport named in Via.
    pub transport: String,
    /// `host[:port]` where answers should come (Via sent-by).
    pub sent_by: String,
}

impl RegisterConfig {
    /// Defaults for registering `contact` as `aor` at `registrar`.
    pub fn new(registrar: Uri, aor: Uri, contact: Uri, sent_by: &str) -> RegisterConfig {
        RegisterConfig {
            registrar,
            aor,
            contact,
            expires: Duration::from_secs(3600),
            credentials: None,
            refresh_percent: 50,
            retry: BackoffConfig {
                initial: Duration::from_secs(30),
                max: Duration::from_secs(1800),
                multiplier: 2,
            },
            transaction: TransactionConfig::default(),
            transport: "UDP".into(),
            sent_by: sent_by.into(),
        }
    }

    /// Checks the bounds; errors name the setting.
    pub fn validate(&self) -> Result<(), RegisterConfigError> {
        if self.expires < Duration::from_secs(1) {
            return Err(RegisterConfigError::Expires(self.expires));
        }
        if !(1..=95).contains(&self.refresh_percent) {
            return Err(RegisterConfigError::RefreshPercent(self.refresh_percent));
        }
        self.retry.validate().map_err(RegisterConfigError::Retry)
    }
}

/// A [`RegisterConfig`] out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterConfigError {
    /// Less than a second.
    #[error("must be at least 1 s, got {0:?}")]
    Expires(Duration),
    /// Outside 1–95.
    #[error("must be between 1 and 95, got {0}")]
    RefreshPercent(u8),
    /// The backoff is invalid.
    #[error(transparent)]
    Retry(BackoffConfigError),
}

impl RegisterConfigError {
    /// The setting the error is about, as named in configuration files.
    pub fn key(&self) -> &'static str {
        match self {
            RegisterConfigError::Expires(_) => "expires",
            RegisterConfigError::RefreshPercent(_) => "refresh_percent",
            RegisterConfigError::Retry(_) => "retry",
        }
    }
}

/// Where the registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    /// A REGISTER is under way and no binding is known to exist.
    Registering,
    /// Bound until `expires_at` (a refresh may be under way).
    Registered {
        /// When the binding lapses unless refreshed.
        expires_at: Instant,
    },
    /// The last attempt failed; the next one is at `retry_at`.
    Failed {
        /// When the next attempt starts.
        retry_at: Instant,
    },
    /// Removing the binding.
    Unregistering,
    /// Done: the binding was removed (or the attempt to remove it ended).
    Unregistered,
}

/// What the client reports.
#[derive(Debug, Clone, PartialEq)]
pub enum RegisterEvent {
    /// The registrar accepted the binding.
    Registered {
        /// When.
        at: Instant,
        /// For how long.
        expires: Duration,
    },
    /// An attempt failed; another follows after `retry_in`.
    Failed {
        /// When.
        at: Instant,
        /// Why, in words an operator understands.
        cause: String,
        /// Until the next attempt.
        retry_in: Duration,
    },
    /// The binding was removed on request.
    Unregistered {
        /// When.
        at: Instant,
    },
    /// The trunk's health changed (SPEC V2).
    Health(Event),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register,
    Unregister,
}

struct InFlight {
    transaction: ClientNonInvite,
    key: TransactionKey,
    purpose: Purpose,
    request: Request,
}

struct Auth {
    challenge: Challenge,
    /// `Proxy-Authorization` (after 407) rather than `Authorization` (401).
    proxy: bool,
    nc: u32,
}

/// A REGISTER client for one trunk. See the module docs.
pub struct RegisterClient {
    config: RegisterConfig,
    target: Target,
    rng: Rng,
    backoff: Backoff,
    health: Health,
    state: RegistrationState,
    call_id: String,
    from_tag: String,
    cseq: u32,
    expires: u32,
    in_flight: Option<InFlight>,
    auth: Option<Auth>,
    /// Challenges answered since the last success: bounds auth loops.
    auth_rounds: u32,
    refresh_at: Option<Instant>,
    transmits: VecDeque<Bytes>,
    events: VecDeque<RegisterEvent>,
}

impl RegisterClient {
    /// Starts registering at `now`. `seed` makes branches, tags, Call-ID,
    /// cnonces and retry jitter; it must differ between processes.
    pub fn new(config: RegisterConfig, target: Target, seed: u64, now: Instant) -> RegisterClient {
        let mut rng = Rng::new(seed);
        let call_id = format!("{:016x}.reg@{}", rng.next_u64(), config.sent_by);
        let from_tag = format!("{:016x}", rng.next_u64());
        let backoff = Backoff::new(config.retry, rng.next_u64());
        let expires = u32::try_from(config.expires.as_secs())
            .unwrap_or(u32::MAX)
            .max(1);
        let mut client = RegisterClient {
            health: Health::new(HealthConfig { rise: 1, fall: 1 }, HealthState::Down, now),
            config,
            target,
            rng,
            backoff,
            state: RegistrationState::Registering,
            call_id,
            from_tag,
            cseq: 0,
            expires,
            in_flight: None,
            auth: None,
            auth_rounds: 0,
            refresh_at: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        client.send(now, Purpose::Register);
        client
    }

    /// Offers a response that arrived; `true` if it answered our REGISTER.
    pub fn handle_response(&mut self, now: Instant, response: &Response) -> bool {
        let Some(key) = TransactionKey::for_response(response) else {
            return false;
        };
        let Some(in_flight) = self.in_flight.as_mut().filter(|f| f.key == key) else {
            return false;
        };
        in_flight.transaction.handle_response(now, response.clone());
        self.drive(now);
        true
    }

    /// The transport could not send the REGISTER.
    pub fn handle_transport_error(&mut self, now: Instant) {
        if let Some(in_flight) = self.in_flight.as_mut() {
            in_flight.transaction.handle_transport_error(now);
            self.drive(now);
        }
    }

    /// Retransmissions, transaction timeouts, refreshes, retries and expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(in_flight) = self.in_flight.as_mut() {
            in_flight.transaction.handle_timeout(now);
            self.drive(now);
        }
        if let RegistrationState::Registered { expires_at } = self.state {
            if expires_at <= now {
                self.state = RegistrationState::Registering;
                self.refresh_at = None;
                let transition = self.health.force_down(now);
                self.report(
                    transition,
                    "registration expired without a successful refresh",
                );
            }
        }
        match self.state {
            RegistrationState::Registered { .. }
                if self.in_flight.is_none() && self.refresh_at.is_some_and(|t| t <= now) =>
            {
                self.refresh_at = None;
                self.send(now, Purpose::Register);
            }
            RegistrationState::Failed { retry_at }
                if retry_at <= now && self.in_flight.is_none() =>
            {
                self.state = RegistrationState::Registering;
                self.send(now, Purpose::Register);
            }
            RegistrationState::Registering if self.in_flight.is_none() => {
                self.send(now, Purpose::Register);
            }
            _ => {}
        }
    }

    /// Removes the binding (REGISTER with Expires: 0) and stops.
    pub fn unregister(&mut self, now: Instant) {
        if matches!(
            self.state,
            RegistrationState::Unregistering | RegistrationState::Unregistered
        ) {
            return;
        }
        self.state = RegistrationState::Unregistering;
        self.refresh_at = None;
        self.in_flight = None;
        self.auth_rounds = 0;
        self.send(now, Purpose::Unregister);
    }

    /// The next bytes to send to the registrar.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// The next thing to report.
    pub fn poll_event(&mut self) -> Option<RegisterEvent> {
        self.events.pop_front()
    }

    /// When [`RegisterClient::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let transaction = self
            .in_flight
            .as_ref()
            .and_then(|f| f.transaction.poll_timeout());
        let own = match self.state {
            RegistrationState::Registered { expires_at } => match self.refresh_at {
                Some(refresh) if self.in_flight.is_none() => Some(refresh.min(expires_at)),
                _ => Some(expires_at),
            },
            RegistrationState::Failed { retry_at } => Some(retry_at),
            _ => None,
        };
        [transaction, own].into_iter().flatten().min()
    }

    /// The registration state.
    pub fn state(&self) -> RegistrationState {
        self.state
    }

    /// Whether the trunk is registered now (SPEC V2: in service).
    pub fn is_registered(&self) -> bool {
        matches!(self.state, RegistrationState::Registered { .. })
    }

    /// The trunk's health.
    pub fn health(&self) -> HealthState {
        self.health.state()
    }

    fn send(&mut self, now: Instant, purpose: Purpose) {
        self.cseq = self.cseq.wrapping_add(1).max(1);
        let expires = match purpose {
            Purpose::Register => self.expires,
            Purpose::Unregister => 0,
        };
        let mut request = NewRequest {
            method: Method::Register,
            uri: self.config.registrar.clone(),
            from: self.config.aor.clone(),
            from_tag: self.from_tag.clone(),
            to: self.config.aor.clone(),
            call_id: self.call_id.clone(),
            cseq: self.cseq,
            transport: self.config.transport.clone(),
            sent_by: self.config.sent_by.clone(),
            branch: Branch::generate(&mut self.rng),
            max_forwards: 70,
            contact: Some(self.config.contact.clone()),
        }
        .build();
        let at = request
            .headers
            .position(HeaderName::ContentLength)
            .unwrap_or(0);
        request
            .headers
            .insert(at, Header::new(HeaderName::Expires, expires.to_string()));
        if let (Some(auth), Some(credentials)) = (self.auth.as_mut(), &self.config.credentials) {
            auth.nc += 1;
            let cnonce = format!("{:016x}", self.rng.next_u64());
            let uri = self.config.registrar.to_string();
            let value = auth.challenge.answer(&Answer {
                username: &credentials.username,
                password: credentials.password.expose(),
                method: Method::Register.as_str(),
                uri: &uri,
                body: &request.body,
                cnonce: &cnonce,
                nc: auth.nc,
            });
            let kind = if auth.proxy {
                HeaderName::ProxyAuthorization
            } else {
                HeaderName::Authorization
            };
            request.headers.insert(at, Header::new(kind, value));
        }
        let Some(key) = TransactionKey::client(&request) else {
            return;
        };
        self.in_flight = Some(InFlight {
            transaction: ClientNonInvite::new(now, request.clone(), self.config.transaction),
            key,
            purpose,
            request,
        });
        self.drive(now);
    }

    /// Drains the REGISTER transaction and acts on how it ended.
    fn drive(&mut self, now: Instant) {
        let Some(in_flight) = self.in_flight.as_mut() else {
            return;
        };
        while let Some(bytes) = in_flight.transaction.poll_transmit() {
            self.transmits.push_back(bytes);
        }
        let purpose = in_flight.purpose;
        let mut ended = None;
        while let Some(event) = in_flight.transaction.poll_event() {
            match event {
                TransactionEvent::Final(response) => ended = Some(Ok(response)),
                TransactionEvent::Timeout => {
                    ended = Some(Err("no answer to REGISTER".to_owned()));
                }
                TransactionEvent::TransportError => {
                    ended = Some(Err("transport error sending REGISTER".to_owned()));
                }
                TransactionEvent::Provisional(_) | TransactionEvent::Ack(_) => {}
            }
        }
        let Some(ended) = ended else {
            return;
        };
        let request = self.in_flight.take().map(|f| f.request);
        match (purpose, ended) {
            (Purpose::Unregister, Ok(response)) if self.challenged(&response) => {
                self.send(now, Purpose::Unregister);
            }
            (Purpose::Unregister, _) => {
                self.state = RegistrationState::Unregistered;
                self.auth = None;
                let transition = self.health.force_down(now);
                self.report(transition, "unregistered on request");
                self.events
                    .push_back(RegisterEvent::Unregistered { at: now });
            }
            (Purpose::Register, Err(cause)) => self.fail(now, cause),
            (Purpose::Register, Ok(response)) => self.registered_or_not(now, response, request),
        }
    }

    /// Whether a 401/407 can be answered: stores the challenge if so.
    fn challenged(&mut self, response: &Response) -> bool {
        let status = response.status;
        if status != StatusCode::UNAUTHORIZED && status != StatusCode::PROXY_AUTHENTICATION_REQUIRED
        {
            return false;
        }
        if self.config.credentials.is_none() || self.auth_rounds >= 3 {
            return false;
        }
        let proxy = status == StatusCode::PROXY_AUTHENTICATION_REQUIRED;
        let kind = if proxy {
            HeaderName::ProxyAuthenticate
        } else {
            HeaderName::WwwAuthenticate
        };
        let Some(challenge) =
            Challenge::choose(response.headers.get_all(kind).map(|h| &h.value()[..]))
        else {
            return false;
        };
        // The same nonce refused again, not stale: the credentials are wrong.
        let same_nonce = self
            .auth
            .as_ref()
            .is_some_and(|a| a.challenge.nonce == challenge.nonce && a.nc > 0);
        if same_nonce && !challenge.stale {
            return false;
        }
        self.auth_rounds += 1;
        self.auth = Some(Auth {
            challenge,
            proxy,
            nc: 0,
        });
        true
    }

    fn registered_or_not(&mut self, now: Instant, response: Response, request: Option<Request>) {
        let status = response.status;
        if status.is_success() {
            let granted = self.granted(&response, request.as_ref());
            if granted == 0 {
                self.fail(now, "registrar granted no time (expires=0)".to_owned());
                return;
            }
            let expires = Duration::from_secs(u64::from(granted));
            let expires_at = now + expires;
            self.state = RegistrationState::Registered { expires_at };
            self.refresh_at = Some(now + expires * u32::from(self.config.refresh_percent) / 100);
            self.auth_rounds = 0;
            self.backoff.reset();
            let transition = self.health.record_success(now);
            let cause = format!(
                "REGISTER answered {status} {} for {granted} s",
                status.canonical_reason()
            );
            self.report(transition, &cause);
            self.events
                .push_back(RegisterEvent::Registered { at: now, expires });
            return;
        }
        if self.challenged(&response) {
            self.send(now, Purpose::Register);
            return;
        }
        if status == StatusCode::INTERVAL_TOO_BRIEF {
            let min = response
                .headers
                .value(HeaderName::MinExpires)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse::<u32>().ok());
            if let Some(min) = min.filter(|&m| m > self.expires) {
                self.expires = min;
                self.send(now, Purpose::Register);
                return;
            }
        }
        let cause = match status {
            StatusCode::UNAUTHORIZED | StatusCode::PROXY_AUTHENTICATION_REQUIRED
                if self.config.credentials.is_none() =>
            {
                format!("REGISTER answered {status}: authentication required, no credentials configured")
            }
            StatusCode::UNAUTHORIZED | StatusCode::PROXY_AUTHENTICATION_REQUIRED => {
                format!("REGISTER answered {status}: credentials rejected")
            }
            _ => format!(
                "REGISTER answered {status} {}",
                String::from_utf8_lossy(&response.reason)
            ),
        };
        self.fail(now, cause);
    }

    /// The granted lifetime: our Contact's `expires`, else Expires, else asked.
    fn granted(&self, response: &Response, request: Option<&Request>) -> u32 {
        let ours = self.config.contact.sip();
        let contact_expires = response.headers.contacts().into_iter().find_map(|c| {
            let theirs = c.uri.sip()?;
            let ours = ours.as_ref()?;
            let same = theirs.host.eq_ignore_ascii_case(&ours.host)
                && theirs.port == ours.port
                && theirs.user == ours.user;
            if !same {
                return None;
            }
            let value = c.params.get("expires")??;
            std::str::from_utf8(value).ok()?.trim().parse::<u32>().ok()
        });
        let header_expires = || {
            response
                .headers
                .value(HeaderName::Expires)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse::<u32>().ok())
        };
        let asked = request
            .and_then(|r| r.headers.value(HeaderName::Expires))
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(self.expires);
        contact_expires.or_else(header_expires).unwrap_or(asked)
    }

    fn fail(&mut self, now: Instant, cause: String) {
        // 50–100 % of the ceiling (RFC 5626 §4.5): never a near-zero retry.
        let ceiling = self.backoff.ceiling();
        let retry_in = ceiling / 2 + self.backoff.next_delay() / 2;
        let retry_at = now + retry_in;
        self.state = RegistrationState::Failed { retry_at };
        self.refresh_at = None;
        self.auth_rounds = 0;
        let transition = self.health.record_failure(now);
        self.report(transition, &cause);
        self.events.push_back(RegisterEvent::Failed {
            at: now,
            cause,
            retry_in,
        });
    }

    fn report(&mut self, transition: Option<HealthTransition>, cause: &str) {
        if let Some(t) = transition {
            self.events.push_back(RegisterEvent::Health(Event {
                at: t.at,
                target: self.target.clone(),
                kind: EventKind::Health {
                    from: t.from,
                    to: t.to,
                    cause: cause.to_owned(),
                },
            }));
        }
    }
}

#[cfg(test)]
mod tests;
