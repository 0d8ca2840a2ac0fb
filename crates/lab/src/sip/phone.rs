//! An agent's phone: a SIP user agent for one DN that registers at one site
//! or at both (SPEC S8) and answers the calls the sites send it. The protocol
//! is in the module docs of `sip`; [`Phone`] is the sans-IO core, [`SipPhone`]
//! its handle.
//!
//! The core is two reused parts on one socket: one
//! `hotsite_sip::register::RegisterClient` per registrar (REGISTER, Digest,
//! refresh, retry), and the trunk's [`Uas`] for the calls. A phone is the
//! registrar's peer, not the proxy's: sharing hotsite's REGISTER *client*
//! shares nothing with the site's registrar, which is the code under test.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotsite_core::{BackoffConfig, Rng, Secret, Target};
use hotsite_sip::message::{parse_bytes, Message, StatusCode, Uri};
use hotsite_sip::register::{
    Credentials, RegisterClient, RegisterConfig, RegisterEvent, RegistrationState,
};
use hotsite_sip::transaction::TransactionConfig;
use serde::{Deserialize, Serialize};

use super::driver::{Endpoint, Running};
use super::trunk::{ReceivedInvite, SipTrunkConfig, TrunkStats, Uas};
use super::wire::branch;
use super::SipError;
use crate::clock::Clock;

#[cfg(test)]
mod tests;

/// Longest registration a phone asks for: a day. More is a typo.
const MAX_EXPIRES: Duration = Duration::from_secs(86_400);

/// How a phone answers new calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneAnswer {
    /// `100`, `180`, then `200 OK` with SDP after the answer delay.
    #[default]
    Answer,
    /// `100`, then `486 Busy Here`.
    Busy,
    /// `100`, `180`, then nothing: it rings until the caller cancels (`487`).
    NoAnswer,
}

/// A command to a phone, as the control API takes it:
/// `{"command":"stop_registering"}`, `{"command":"busy"}`,
/// `{"command":"set_registrars","registrars":["127.0.0.1:5060"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum PhoneCommand {
    /// [`SipPhone::stop_registering`].
    StopRegistering,
    /// [`SipPhone::unregister`].
    Unregister,
    /// [`SipPhone::resume`].
    Resume,
    /// [`SipPhone::set_answer`] with [`PhoneAnswer::Answer`].
    Answer,
    /// [`SipPhone::set_answer`] with [`PhoneAnswer::Busy`].
    Busy,
    /// [`SipPhone::set_answer`] with [`PhoneAnswer::NoAnswer`].
    NoAnswer,
    /// [`SipPhone::set_registrars`].
    SetRegistrars {
        /// The registrars from now on.
        registrars: Vec<SocketAddr>,
    },
}

/// How a phone starts. [`SipPhoneConfig::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct SipPhoneConfig {
    /// The DN (the agent's extension): the user part of To, From and Contact,
    /// and the Digest user name.
    pub dn: String,
    /// The Digest password.
    pub password: String,
    /// The registrars' domain: the REGISTER's Request-URI is `sip:DOMAIN`,
    /// To and From `<sip:DN@DOMAIN>`.
    pub domain: String,
    /// Where it registers: one site, or two for dual registration (SPEC S8).
    /// Empty: nowhere (calls sent straight to it are still answered).
    pub registrars: Vec<SocketAddr>,
    /// The binding lifetime it asks for (`Expires`), in whole seconds; it
    /// refreshes after half of what the registrar grants. Default: 60 s.
    pub expires: Duration,
    /// The UDP address to bind. Default: port 0 on loopback, of the first
    /// registrar's address family.
    pub listen: SocketAddr,
    /// How it answers calls. Default: [`PhoneAnswer::Answer`].
    pub answer: PhoneAnswer,
    /// From the INVITE to `180 Ringing`. Default: 0 (sent with the 100).
    pub ring_delay: Duration,
    /// From the 180 to `200 OK`. Default: 20 ms.
    pub answer_delay: Duration,
    /// After a failed REGISTER, the next comes after 50–100 % of a ceiling
    /// that starts here and doubles. Default: 1 s.
    pub retry: Duration,
    /// The ceiling's limit. Default: 30 s.
    pub retry_max: Duration,
    /// RFC 3261 T1, for REGISTER transactions (timer F = 64·T1 declares a
    /// silent registrar failed) and for the answers to calls. Default: 500 ms.
    pub t1: Duration,
    /// RFC 3261 T2. Default: 4 s.
    pub t2: Duration,
    /// Seeds branches, tags, Call-IDs and cnonces. Default: from the wall
    /// clock and the process id, so two runs never share a Call-ID.
    pub seed: u64,
}

impl SipPhoneConfig {
    /// Phone `dn` with `password`, registering at `registrars` in `domain`,
    /// everything else at its default.
    pub fn new(
        dn: &str,
        password: &str,
        domain: &str,
        registrars: Vec<SocketAddr>,
    ) -> SipPhoneConfig {
        let listen = match registrars.first() {
            Some(addr) if addr.is_ipv6() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
            _ => SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        SipPhoneConfig {
            dn: dn.to_owned(),
            password: password.to_owned(),
            domain: domain.to_owned(),
            registrars,
            expires: Duration::from_secs(60),
            listen,
            answer: PhoneAnswer::Answer,
            ring_delay: Duration::ZERO,
            answer_delay: Duration::from_millis(20),
            retry: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            seed: super::wire::fresh_seed(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), SipError> {
        let invalid = |what: String| Err(SipError::Invalid(format!("sip phone {what}")));
        // Characters a URI user part and a token (the answers' Contact and
        // tags) both take as they are.
        let user_part = |c: char| c.is_ascii_alphanumeric() || "-_.!~*+".contains(c);
        if self.dn.is_empty() || !self.dn.chars().all(user_part) {
            return invalid(format!(
                "dn {:?}: must be ASCII letters, digits and -_.!~*+",
                self.dn
            ));
        }
        let dn = &self.dn;
        let host_part = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
        if self.domain.is_empty()
            || !self.domain.chars().all(host_part)
            || Uri::parse(format!("sip:{}", self.domain)).is_err()
        {
            return invalid(format!(
                "{dn} domain {:?}: must be a SIP URI host",
                self.domain
            ));
        }
        if self.expires < Duration::from_secs(1) || self.expires > MAX_EXPIRES {
            return invalid(format!(
                "{dn} expires: must be 1 s to {} s, got {:?}",
                MAX_EXPIRES.as_secs(),
                self.expires
            ));
        }
        if self.retry.is_zero() || self.retry_max < self.retry {
            return invalid(format!(
                "{dn} retry: must be above zero and retry_max at least retry"
            ));
        }
        if self.t1.is_zero() || self.t2 < self.t1 {
            return invalid(format!(
                "{dn} timers: t1 must be above zero and t2 at least t1"
            ));
        }
        check_registrars(&self.registrars)
            .map_err(|reason| SipError::Invalid(format!("sip phone {dn} registrars: {reason}")))
    }
}

fn check_registrars(registrars: &[SocketAddr]) -> Result<(), String> {
    for (index, addr) in registrars.iter().enumerate() {
        if registrars[..index].contains(addr) {
            return Err(format!("{addr} is listed twice"));
        }
    }
    Ok(())
}

/// Where a phone's registration at one registrar stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationStatus {
    /// A REGISTER is under way and no binding is known.
    Registering,
    /// The registrar holds a binding, refreshed at half its lifetime.
    Registered,
    /// The last attempt failed (no answer, or a refusal); it is retried.
    Failed,
    /// A REGISTER with `Expires: 0` is under way.
    Unregistering,
    /// The binding was removed on command; nothing more is sent.
    Unregistered,
    /// Stopped on command ([`SipPhone::stop_registering`]): nothing more is
    /// sent, and the binding lapses at the registrar when it expires.
    Stopped,
    /// No longer one of the phone's registrars ([`SipPhone::set_registrars`]):
    /// left alone, its binding lapses.
    Dropped,
}

/// A phone's counters for one registrar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistrarStats {
    /// The registrar's address.
    pub registrar: SocketAddr,
    /// Where the registration stands.
    pub state: RegistrationStatus,
    /// REGISTER requests sent (new transactions: first tries, refreshes,
    /// answers to challenges, retries, `Expires: 0`).
    pub sent: u64,
    /// REGISTERs sent again within their transaction (no answer yet).
    pub retransmissions: u64,
    /// Registrations accepted (2xx granting time).
    pub ok: u64,
    /// `401`/`407` challenges received.
    pub challenged: u64,
    /// Attempts that failed: refused, wrong credentials, or unanswered.
    pub failed: u64,
    /// Bindings removed by [`SipPhone::unregister`].
    pub unregistered: u64,
    /// The lifetime the registrar granted last, in seconds.
    pub granted_s: Option<u64>,
    /// Why the last attempt failed.
    pub last_failure: Option<String>,
}

/// A phone's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhoneStats {
    /// Its DN.
    pub dn: String,
    /// Its bound address: the Contact it registers.
    pub addr: SocketAddr,
    /// How it answers new calls.
    pub answer: PhoneAnswer,
    /// Whether it keeps its registrations up (false after
    /// [`SipPhone::stop_registering`] or [`SipPhone::unregister`], until
    /// [`SipPhone::resume`]).
    pub registering: bool,
    /// Every registrar it has used, current ones first in their order, then
    /// dropped ones.
    pub registrars: Vec<RegistrarStats>,
    /// The calls (the trunk's counters: `invites` received, `answered`,
    /// `rejected` busy, `cancelled`, `byes`, …).
    pub calls: TrunkStats,
    /// Every INVITE received, with its Call-ID and source address: which site
    /// delivered each call.
    pub invites: Vec<ReceivedInvite>,
}

/// A running phone. Dropping it stops the task without waiting (and without
/// unregistering); [`SipPhone::shutdown`] waits.
pub struct SipPhone {
    dn: String,
    running: Running<Phone>,
}

impl SipPhone {
    /// Binds `config.listen` and registers at once. Must be called within a
    /// tokio runtime.
    pub async fn start(config: SipPhoneConfig) -> Result<SipPhone, SipError> {
        config.validate()?;
        let now = Clock::start().now().into_std();
        let dn = config.dn.clone();
        let running = Running::bind(&format!("sip phone {dn}"), config.listen, |addr| {
            Phone::new(&config, addr, now)
        })
        .await?;
        tracing::info!(
            phone = %dn,
            addr = %running.local_addr(),
            registrars = ?config.registrars,
            "sip phone started"
        );
        Ok(SipPhone { dn, running })
    }

    /// Its DN.
    pub fn dn(&self) -> &str {
        &self.dn
    }

    /// The bound address (the Contact it registers).
    pub fn local_addr(&self) -> SocketAddr {
        self.running.local_addr()
    }

    /// Stops refreshing (and retrying) every registration: nothing more is
    /// sent, so the bindings expire at the registrars (SPEC S8: the DN goes
    /// out of service). Calls are still answered.
    pub fn stop_registering(&self) {
        tracing::info!(phone = %self.dn, "sip phone stops registering");
        self.running.steer(|phone, _| phone.stop_registering());
    }

    /// Removes every binding (REGISTER with `Expires: 0`, authenticated if
    /// challenged), then stays unregistered until [`SipPhone::resume`].
    pub fn unregister(&self) {
        tracing::info!(phone = %self.dn, "sip phone unregisters");
        self.running.steer(Phone::unregister);
    }

    /// Registers again at once at every registrar (after a stop, an
    /// unregistration, or to refresh early).
    pub fn resume(&self) {
        tracing::info!(phone = %self.dn, "sip phone resumes registering");
        self.running.steer(Phone::resume);
    }

    /// Registers at `registrars` from now on: new ones at once (if the phone
    /// is registering; else at the next [`SipPhone::resume`]), ones kept as
    /// they are. Registrars left out are not contacted again, not even to
    /// unregister (their site may be down): their bindings lapse. Only an
    /// unregistration already under way there is let finish. Switching sites is `set_registrars(vec![other])`
    /// (SPEC S2, single registration). A registrar listed twice is refused.
    pub fn set_registrars(&self, registrars: Vec<SocketAddr>) -> Result<(), SipError> {
        check_registrars(&registrars).map_err(|reason| {
            SipError::Invalid(format!("sip phone {} registrars: {reason}", self.dn))
        })?;
        tracing::info!(phone = %self.dn, ?registrars, "sip phone switches registrars");
        self.running
            .steer(|phone, now| phone.set_registrars(now, &registrars));
        Ok(())
    }

    /// How new calls are answered from now on.
    pub fn set_answer(&self, answer: PhoneAnswer) {
        tracing::info!(phone = %self.dn, ?answer, "sip phone answer mode");
        self.running.with(|phone| phone.uas.set_answer(answer));
    }

    /// How new calls are answered.
    pub fn answer(&self) -> PhoneAnswer {
        self.running.with(|phone| phone.uas.answer_mode())
    }

    /// Runs `command` (the control API's way in).
    pub fn command(&self, command: PhoneCommand) -> Result<(), SipError> {
        match command {
            PhoneCommand::StopRegistering => self.stop_registering(),
            PhoneCommand::Unregister => self.unregister(),
            PhoneCommand::Resume => self.resume(),
            PhoneCommand::Answer => self.set_answer(PhoneAnswer::Answer),
            PhoneCommand::Busy => self.set_answer(PhoneAnswer::Busy),
            PhoneCommand::NoAnswer => self.set_answer(PhoneAnswer::NoAnswer),
            PhoneCommand::SetRegistrars { registrars } => self.set_registrars(registrars)?,
        }
        Ok(())
    }

    /// The counters.
    pub fn stats(&self) -> PhoneStats {
        self.running.with(|phone| phone.stats())
    }

    /// Every INVITE received, in order of arrival (also in [`PhoneStats`]).
    pub fn invite_log(&self) -> Vec<ReceivedInvite> {
        self.running.with(|phone| phone.uas.log().to_vec())
    }

    /// Stops the phone (without unregistering) and waits for its task.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// The phone's core: datagrams and time in, datagrams out. No socket, no
/// clock.
pub(crate) struct Phone {
    dn: String,
    password: String,
    domain: String,
    addr: SocketAddr,
    expires: Duration,
    retry: BackoffConfig,
    transaction: TransactionConfig,
    rng: Rng,
    /// Answers the calls.
    uas: Uas,
    /// False once stopped or unregistered on command, until resumed.
    registering: bool,
    /// Every registrar used so far, in order of first use.
    registrations: Vec<Registration>,
    /// REGISTERs to send, with their registrar.
    outbox: VecDeque<(SocketAddr, Bytes)>,
}

/// The phone's registration at one registrar.
struct Registration {
    registrar: SocketAddr,
    /// One of the phone's current registrars.
    listed: bool,
    /// `None` while stopped or dropped: nothing is sent.
    client: Option<RegisterClient>,
    /// The branch of the last REGISTER sent: tells a new request from a
    /// retransmission (one transaction at a time).
    last_branch: Option<String>,
    stats: RegistrarStats,
}

impl Registration {
    fn status(&self) -> RegistrationStatus {
        match &self.client {
            _ if !self.listed => RegistrationStatus::Dropped,
            None => RegistrationStatus::Stopped,
            Some(client) => match client.state() {
                RegistrationState::Registering => RegistrationStatus::Registering,
                RegistrationState::Registered { .. } => RegistrationStatus::Registered,
                RegistrationState::Failed { .. } => RegistrationStatus::Failed,
                RegistrationState::Unregistering => RegistrationStatus::Unregistering,
                RegistrationState::Unregistered => RegistrationStatus::Unregistered,
            },
        }
    }

    /// Moves what the client wants sent to `outbox` and counts what it
    /// reports.
    fn drain(&mut self, dn: &str, outbox: &mut VecDeque<(SocketAddr, Bytes)>) {
        let Some(client) = self.client.as_mut() else {
            return;
        };
        while let Some(bytes) = client.poll_transmit() {
            let sent_branch = match parse_bytes(bytes.clone()) {
                Ok(Message::Request(request)) => branch(&request.headers),
                _ => None,
            };
            if sent_branch.is_some() && sent_branch == self.last_branch {
                self.stats.retransmissions += 1;
            } else {
                self.stats.sent += 1;
                self.last_branch = sent_branch;
            }
            outbox.push_back((self.registrar, bytes));
        }
        while let Some(event) = client.poll_event() {
            let registrar = self.registrar;
            match event {
                RegisterEvent::Registered { expires, .. } => {
                    self.stats.ok += 1;
                    self.stats.granted_s = Some(expires.as_secs());
                    tracing::debug!(phone = %dn, %registrar, ?expires, "sip phone registered");
                }
                RegisterEvent::Failed { cause, .. } => {
                    self.stats.failed += 1;
                    tracing::info!(phone = %dn, %registrar, %cause, "sip phone registration failed");
                    self.stats.last_failure = Some(cause);
                }
                RegisterEvent::Unregistered { .. } => {
                    self.stats.unregistered += 1;
                    tracing::info!(phone = %dn, %registrar, "sip phone unregistered");
                }
                RegisterEvent::Health(_) => {}
            }
        }
    }
}

impl Phone {
    pub(crate) fn new(config: &SipPhoneConfig, addr: SocketAddr, now: Instant) -> Phone {
        let mut calls = SipTrunkConfig::new(&config.dn, addr);
        calls.ring_delay = config.ring_delay;
        calls.answer_delay = config.answer_delay;
        calls.t1 = config.t1;
        calls.t2 = config.t2;
        let mut uas = Uas::new(&calls, addr);
        uas.set_answer(config.answer);
        let mut phone = Phone {
            dn: config.dn.clone(),
            password: config.password.clone(),
            domain: config.domain.clone(),
            addr,
            expires: config.expires,
            retry: BackoffConfig {
                initial: config.retry,
                max: config.retry_max,
                multiplier: 2,
            },
            transaction: TransactionConfig {
                t1: config.t1,
                t2: config.t2,
                ..TransactionConfig::default()
            },
            rng: Rng::new(config.seed),
            uas,
            registering: true,
            registrations: Vec::new(),
            outbox: VecDeque::new(),
        };
        phone.set_registrars(now, &config.registrars);
        phone
    }

    pub(crate) fn stats(&self) -> PhoneStats {
        PhoneStats {
            dn: self.dn.clone(),
            addr: self.addr,
            answer: self.uas.answer_mode(),
            registering: self.registering,
            registrars: self
                .registrations
                .iter()
                .map(|registration| RegistrarStats {
                    state: registration.status(),
                    ..registration.stats.clone()
                })
                .collect(),
            calls: self.uas.stats(),
            invites: self.uas.log().to_vec(),
        }
    }

    /// A REGISTER client for `registrar`, its first REGISTER queued.
    fn client(&mut self, now: Instant) -> RegisterClient {
        // Validated: the DN is a URI user part, the domain a URI host.
        let uri = |text: String| Uri::parse(text).expect("validated SIP URI");
        let mut config = RegisterConfig::new(
            uri(format!("sip:{}", self.domain)),
            uri(format!("sip:{}@{}", self.dn, self.domain)),
            uri(format!("sip:{}@{}", self.dn, self.addr)),
            &self.addr.to_string(),
        );
        config.expires = self.expires;
        config.credentials = Some(Credentials {
            username: self.dn.clone(),
            password: Secret::new(self.password.clone()),
        });
        config.retry = self.retry;
        config.transaction = self.transaction;
        let target = Target::new("phone", &self.dn);
        RegisterClient::new(config, target, self.rng.next_u64(), now)
    }

    fn drain_all(&mut self) {
        for registration in &mut self.registrations {
            registration.drain(&self.dn, &mut self.outbox);
        }
    }

    pub(crate) fn stop_registering(&mut self) {
        self.registering = false;
        for registration in &mut self.registrations {
            registration.client = None;
        }
    }

    pub(crate) fn unregister(&mut self, now: Instant) {
        self.registering = false;
        for index in 0..self.registrations.len() {
            if !self.registrations[index].listed {
                continue;
            }
            if self.registrations[index].client.is_none() {
                // Stopped: a fresh client, its first REGISTER never sent.
                let mut client = self.client(now);
                while client.poll_transmit().is_some() {}
                self.registrations[index].client = Some(client);
            }
            if let Some(client) = self.registrations[index].client.as_mut() {
                client.unregister(now);
            }
        }
        self.drain_all();
    }

    pub(crate) fn resume(&mut self, now: Instant) {
        self.registering = true;
        for index in 0..self.registrations.len() {
            if self.registrations[index].listed {
                let client = self.client(now);
                self.registrations[index].client = Some(client);
            }
        }
        self.drain_all();
    }

    pub(crate) fn set_registrars(&mut self, now: Instant, registrars: &[SocketAddr]) {
        for registration in &mut self.registrations {
            if !registrars.contains(&registration.registrar) {
                registration.listed = false;
                // An unregistration under way is let finish (it was asked for).
                let unregistering = registration
                    .client
                    .as_ref()
                    .is_some_and(|client| client.state() == RegistrationState::Unregistering);
                if !unregistering {
                    registration.client = None;
                }
            }
        }
        for &registrar in registrars {
            let index = match self
                .registrations
                .iter()
                .position(|r| r.registrar == registrar)
            {
                Some(index) => index,
                None => {
                    self.registrations.push(Registration {
                        registrar,
                        listed: false,
                        client: None,
                        last_branch: None,
                        stats: RegistrarStats {
                            registrar,
                            state: RegistrationStatus::Stopped,
                            sent: 0,
                            retransmissions: 0,
                            ok: 0,
                            challenged: 0,
                            failed: 0,
                            unregistered: 0,
                            granted_s: None,
                            last_failure: None,
                        },
                    });
                    self.registrations.len() - 1
                }
            };
            if self.registrations[index].listed {
                continue;
            }
            self.registrations[index].listed = true;
            if self.registering {
                let client = self.client(now);
                self.registrations[index].client = Some(client);
            }
        }
        // Current registrars first, in the order given.
        self.registrations.sort_by_key(|r| {
            registrars
                .iter()
                .position(|addr| *addr == r.registrar)
                .unwrap_or(usize::MAX)
        });
        self.drain_all();
    }
}

impl Endpoint for Phone {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: Bytes) {
        match parse_bytes(datagram) {
            Ok(Message::Request(request)) => self.uas.handle_request(now, from, request),
            Ok(Message::Response(response)) => {
                let status = response.status;
                for registration in &mut self.registrations {
                    let Some(client) = registration.client.as_mut() else {
                        continue;
                    };
                    if client.handle_response(now, &response) {
                        if status == StatusCode::UNAUTHORIZED
                            || status == StatusCode::PROXY_AUTHENTICATION_REQUIRED
                        {
                            registration.stats.challenged += 1;
                        }
                        registration.drain(&self.dn, &mut self.outbox);
                        return;
                    }
                }
                tracing::debug!(phone = %self.dn, %from, %status, "sip phone: stray response");
            }
            Err(error) => self.uas.handle_unparsable(from, &error),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.uas.handle_timeout(now);
        for registration in &mut self.registrations {
            let Some(client) = registration.client.as_mut() else {
                continue;
            };
            if client.poll_timeout().is_some_and(|at| at <= now) {
                client.handle_timeout(now);
                registration.drain(&self.dn, &mut self.outbox);
            }
        }
    }

    fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        self.outbox.pop_front().or_else(|| self.uas.poll_transmit())
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let registrations = self
            .registrations
            .iter()
            .filter_map(|r| r.client.as_ref()?.poll_timeout());
        registrations.chain(self.uas.poll_timeout()).min()
    }

    fn is_finished(&self) -> bool {
        false
    }
}
