//! The provider's shared brain: accounts, message ids, dedupe, the handset log,
//! the counters, and which bound session carries each receipt or MO. The HTTP
//! API's sites share it too (`submit_http`), so ids, dedupe and the handset log
//! are one for both protocols, as in a real aggregator's message store.
//!
//! It does no I/O and reads no clock (times come in as parameters): sessions
//! call it under one lock and act on what it returns. Handing a delivery to a
//! session is a non-blocking channel send, so the lock is never held across an
//! await.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use hotsite_core::{Rng, SiteName, Target};
use hotsite_smpp::pdu::{Address, CommandStatus, ShortMessage};
use tokio::sync::mpsc;

#[cfg(test)]
use crate::config::IdFormat;
use crate::config::{DeliveryConfig, LabConfig, ReceiptConfig};
use crate::fault::Fault;
use crate::http::HttpFault;
use crate::smpp::receipt::{body_text, receipt_message, ReceiptFacts};
use crate::stats::{SmscStats, TotalStats};
use crate::traffic::{HandsetMessage, Protocol};

/// Identifies one TCP session across the lab.
pub(crate) type SessionId = u64;

/// A `deliver_sm` the provider owes some bind of an account.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// Receipt or MO: decides which counters it moves.
    pub(crate) kind: DeliveryKind,
    /// Only binds of this account may carry it.
    pub(crate) system_id: String,
    /// Which sites' binds may carry it.
    pub(crate) route: Route,
    /// The `deliver_sm` body.
    pub(crate) message: ShortMessage,
    /// Attempts made after the first, which failed (SPEC M6, M8).
    pub(crate) retries: u32,
}

/// What a [`Delivery`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeliveryKind {
    /// A delivery receipt.
    Receipt,
    /// A mobile-originated message.
    Mo,
}

/// Which binds may carry a delivery.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    /// A receipt: the submitting site, or with `other_site_probability` another
    /// one (SPEC M1, M6); whichever has a bind if only one does.
    Prefer(SiteName),
    /// Only binds of this site.
    Only(SiteName),
    /// A retry: a bind of this site (the one that failed it) if there is
    /// one, else any bind (SPEC M6).
    SameSiteFirst(SiteName),
    /// Any bind.
    Any,
}

/// A session that completed a bind.
pub(crate) struct BoundSession {
    /// Index of its SMSC instance.
    pub(crate) instance: usize,
    /// The account it bound as.
    pub(crate) system_id: String,
    /// Receiver or transceiver: may carry receipts and MOs.
    pub(crate) receives: bool,
    /// Where its deliveries go.
    pub(crate) inbox: mpsc::UnboundedSender<Delivery>,
}

/// A submit, from `submit_sm` or `data_sm`.
pub(crate) struct Submission {
    /// `source_addr`.
    pub(crate) source: Address,
    /// `destination_addr`.
    pub(crate) destination: Address,
    /// `data_coding`.
    pub(crate) data_coding: u8,
    /// `short_message` or `message_payload`.
    pub(crate) body: Bytes,
    /// The `user_message_reference` TLV: the dedupe key with the account and
    /// destination (SPEC M8).
    pub(crate) user_message_reference: Option<u16>,
    /// `registered_delivery`.
    pub(crate) registered_delivery: u8,
}

/// What the provider makes of a submit.
#[derive(Debug)]
pub(crate) enum SubmitOutcome {
    /// Answer `ESME_RTHROTTLED`; the message was not taken.
    Throttled,
    /// A repeat of an accepted message: answer its original id, deliver nothing.
    Duplicate {
        /// The id the first submit got.
        message_id: String,
    },
    /// A new message, now on a handset.
    Accepted {
        /// Its id.
        message_id: String,
        /// Receipts to route after the configured delay: none, one, or two.
        receipts: Vec<Delivery>,
    },
}

/// An HTTP API submit that passed validation.
pub(crate) struct HttpSubmission<'a> {
    /// The HTTP site that took it.
    pub(crate) site: &'a str,
    /// `login`, an account's `system_id`.
    pub(crate) login: &'a str,
    /// `phone_number`.
    pub(crate) phone_number: &'a str,
    /// `sender`.
    pub(crate) sender: &'a str,
    /// `message`.
    pub(crate) message: &'a str,
    /// `message_id`: the dedupe key with the login.
    pub(crate) client_message_id: &'a str,
}

/// What the provider makes of an HTTP API submit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HttpSubmitOutcome {
    /// Code 20: not taken.
    Throttled,
    /// Code 21: not taken.
    InternalError,
    /// Code 14: a repeat of an accepted message, not delivered again.
    Duplicate {
        /// The id the first submit got.
        provider_id: String,
    },
    /// Code 0: a new message, now on a handset.
    Accepted {
        /// Its id.
        provider_id: String,
    },
}

/// The dedupe key: account, destination, `user_message_reference`.
type DedupeKey = (String, String, u16);

/// What the provider remembers of an accepted reference (SPEC M8, M16).
struct Remembered {
    /// The id its submit got, as the response wrote it.
    message_id: String,
    /// When it was accepted, in microseconds since the lab started.
    accepted_us: u64,
}

/// State and counters of one SMSC instance.
struct InstanceState {
    target: Target,
    fault: Option<Fault>,
    counters: SmscStats,
}

/// See the module docs.
pub(crate) struct Provider {
    accounts: HashMap<String, String>,
    /// The account MOs use when the request names none.
    default_account: String,
    receipts: ReceiptConfig,
    deliveries: DeliveryConfig,
    rng: Rng,
    next_message_id: u64,
    next_session_id: SessionId,
    dedupe: HashMap<DedupeKey, Remembered>,
    /// How long a reference is remembered, in microseconds; `None`: forever.
    reference_memory_us: Option<u64>,
    /// Accepted references oldest first, so expired ones are forgotten and the
    /// memory stays bounded (only with a finite memory).
    dedupe_expiry: VecDeque<(u64, DedupeKey)>,
    /// The HTTP API's dedupe: (login, client `message_id`) → provider id.
    http_dedupe: HashMap<(String, String), String>,
    handsets: Vec<HandsetMessage>,
    totals: TotalStats,
    instances: Vec<InstanceState>,
    /// Ordered, so that a seed gives the same choices every run.
    bound: BTreeMap<SessionId, BoundSession>,
    pending: VecDeque<Delivery>,
}

impl Provider {
    /// A provider for `config`; `addrs` are the instances' listening addresses,
    /// in configuration order.
    pub(crate) fn new(config: &LabConfig, addrs: &[(Target, std::net::SocketAddr)]) -> Provider {
        let instances = addrs
            .iter()
            .map(|(target, addr)| InstanceState {
                target: target.clone(),
                fault: None,
                counters: SmscStats {
                    site: target.site.to_string(),
                    name: target.name.to_string(),
                    addr: *addr,
                    fault: None,
                    bound_sessions: 0,
                    connections: 0,
                    bind_attempts: 0,
                    bind_attempt_ms: Vec::new(),
                    submits: 0,
                    unique: 0,
                    duplicates_dropped: 0,
                    throttled: 0,
                    receipts_sent: 0,
                    mo_sent: 0,
                },
            })
            .collect();
        Provider {
            accounts: config
                .accounts
                .iter()
                .map(|account| (account.system_id.clone(), account.password.clone()))
                .collect(),
            default_account: config
                .accounts
                .first()
                .map(|account| account.system_id.clone())
                .unwrap_or_default(),
            receipts: config.receipts.clone(),
            deliveries: config.deliveries.clone(),
            rng: Rng::new(config.seed),
            next_message_id: config.receipts.first_serial,
            next_session_id: 1,
            dedupe: HashMap::new(),
            reference_memory_us: match config.dedupe.reference_memory_ms {
                0 => None,
                ms => Some(ms.saturating_mul(1000)),
            },
            dedupe_expiry: VecDeque::new(),
            http_dedupe: HashMap::new(),
            handsets: Vec::new(),
            totals: TotalStats::default(),
            instances,
            bound: BTreeMap::new(),
            pending: VecDeque::new(),
        }
    }

    /// A fresh session id.
    pub(crate) fn new_session_id(&mut self) -> SessionId {
        let id = self.next_session_id;
        self.next_session_id += 1;
        id
    }

    /// Records the fault in force at `instance`. After a recovery, pending
    /// deliveries may have a bind again.
    pub(crate) fn set_fault(&mut self, instance: usize, fault: Option<Fault>) {
        self.instances[instance].fault = fault;
        if fault.is_none() {
            self.flush_pending();
        }
    }

    /// Whether `system_id` is an account.
    pub(crate) fn has_account(&self, system_id: &str) -> bool {
        self.accounts.contains_key(system_id)
    }

    /// The account MOs use by default.
    pub(crate) fn default_account(&self) -> &str {
        &self.default_account
    }

    /// Counts an accepted TCP connection.
    pub(crate) fn record_connection(&mut self, instance: usize) {
        self.instances[instance].counters.connections += 1;
    }

    /// Counts a bind request that arrived `at_ms` after the lab started.
    pub(crate) fn record_bind_attempt(&mut self, instance: usize, at_ms: u64) {
        let counters = &mut self.instances[instance].counters;
        counters.bind_attempts += 1;
        counters.bind_attempt_ms.push(at_ms);
    }

    /// The status a bind request gets: `ESME_ROK` or why not.
    pub(crate) fn check_bind(
        &self,
        instance: usize,
        system_id: &str,
        password: &str,
    ) -> CommandStatus {
        if self.instances[instance].fault == Some(Fault::RejectBinds) {
            return CommandStatus::ESME_RBINDFAIL;
        }
        match self.accounts.get(system_id) {
            None => CommandStatus::ESME_RINVSYSID,
            Some(expected) if expected != password => CommandStatus::ESME_RINVPASWD,
            Some(_) => CommandStatus::ESME_ROK,
        }
    }

    /// Registers a bound session; a receiving one gets the pending deliveries
    /// of its account.
    pub(crate) fn register(&mut self, session: SessionId, bound: BoundSession) {
        let receives = bound.receives;
        self.bound.insert(session, bound);
        if receives {
            self.flush_pending();
        }
    }

    /// Forgets a session: nothing is routed to it any more.
    pub(crate) fn unregister(&mut self, session: SessionId) {
        self.bound.remove(&session);
    }

    /// Decides what a submit from `system_id` at `instance` becomes. `now_unix`
    /// dates the receipt; `received_us` (since the lab started) is when the
    /// submit arrived, kept in the handset log.
    pub(crate) fn submit(
        &mut self,
        instance: usize,
        system_id: &str,
        submission: Submission,
        now_unix: u64,
        received_us: u64,
    ) -> SubmitOutcome {
        self.totals.submits += 1;
        self.instances[instance].counters.submits += 1;

        if let Some(Fault::Throttle { probability }) = self.instances[instance].fault {
            if self.rng.unit() < probability {
                self.totals.throttled += 1;
                self.instances[instance].counters.throttled += 1;
                return SubmitOutcome::Throttled;
            }
        }

        // The provider's dedupe (SPEC M8): a resubmit with the same reference,
        // on any bind of any site, is answered but not delivered again.
        let key = submission.user_message_reference.map(|reference| {
            (
                system_id.to_owned(),
                submission.destination.addr.clone(),
                reference,
            )
        });
        // Within `reference_memory_ms` only (SPEC M16): past it a reference is
        // free again and the submit is a new message.
        self.forget_references(received_us);
        if let Some(remembered) = key
            .as_ref()
            .and_then(|key| self.dedupe.get(key))
            .filter(|remembered| self.remembers(remembered, received_us))
        {
            let message_id = remembered.message_id.clone();
            self.totals.duplicates_dropped += 1;
            self.instances[instance].counters.duplicates_dropped += 1;
            return SubmitOutcome::Duplicate { message_id };
        }

        let serial = self.next_serial();
        // One serial, spelt per format: the receipt may write it unlike the
        // submit response (SPEC M13).
        let message_id = self.receipts.submit_id_format.render(serial);
        let receipt_id = self.receipts.receipt_id_format.render(serial);
        if let Some(key) = key {
            if self.reference_memory_us.is_some() {
                self.dedupe_expiry.push_back((received_us, key.clone()));
            }
            self.dedupe.insert(
                key,
                Remembered {
                    message_id: message_id.clone(),
                    accepted_us: received_us,
                },
            );
        }
        self.totals.unique += 1;
        self.instances[instance].counters.unique += 1;

        let text = body_text(submission.data_coding, &submission.body);
        let target = self.instances[instance].target.clone();
        let receipts = if self.wants_receipt(submission.registered_delivery) {
            // The carrier's id, deliberately unlike the submit_sm_resp id (SPEC M13).
            let carrier_id = format!("{}", 4_100_000_000 + serial);
            let message = receipt_message(&ReceiptFacts {
                message_id: &receipt_id,
                carrier_id: &carrier_id,
                handset: &submission.destination,
                submitter: &submission.source,
                text: &text,
                submitted_unix: now_unix,
                done_unix: now_unix + self.receipts.delay_ms / 1000,
                state: self.receipts.final_state,
            });
            let receipt = Delivery {
                kind: DeliveryKind::Receipt,
                system_id: system_id.to_owned(),
                route: Route::Prefer(target.site.clone()),
                message,
                retries: 0,
            };
            let copies = if self.rng.unit() < self.receipts.duplicate_probability {
                2
            } else {
                1
            };
            vec![receipt; copies]
        } else {
            Vec::new()
        };

        self.handsets.push(HandsetMessage {
            destination: submission.destination.addr,
            source: submission.source.addr,
            text,
            user_message_reference: submission.user_message_reference,
            message_id: message_id.clone(),
            receipt_id,
            system_id: system_id.to_owned(),
            site: target.site.to_string(),
            smsc: target.name.to_string(),
            received_us,
            protocol: Protocol::Smpp,
            client_message_id: None,
        });
        SubmitOutcome::Accepted {
            message_id,
            receipts,
        }
    }

    /// Whether a reference accepted at `remembered.accepted_us` is still
    /// remembered at `now_us`.
    fn remembers(&self, remembered: &Remembered, now_us: u64) -> bool {
        self.reference_memory_us
            .is_none_or(|memory_us| now_us < remembered.accepted_us.saturating_add(memory_us))
    }

    /// Forgets the references accepted `reference_memory_ms` or more before
    /// `now_us`, so a finite memory holds only what it may still match.
    fn forget_references(&mut self, now_us: u64) {
        let Some(memory_us) = self.reference_memory_us else {
            return;
        };
        while let Some((accepted_us, _)) = self.dedupe_expiry.front() {
            if now_us < accepted_us.saturating_add(memory_us) {
                break;
            }
            let Some((accepted_us, key)) = self.dedupe_expiry.pop_front() else {
                break;
            };
            // A later message with the same key replaced the entry: keep that one.
            if self
                .dedupe
                .get(&key)
                .is_some_and(|remembered| remembered.accepted_us == accepted_us)
            {
                self.dedupe.remove(&key);
            }
        }
    }

    fn next_serial(&mut self) -> u64 {
        let serial = self.next_message_id;
        self.next_message_id += 1;
        serial
    }

    /// A fresh id, unique across the lab (MOs of the HTTP API use them).
    pub(crate) fn new_message_id(&mut self) -> String {
        format!("{:08x}", self.next_serial())
    }

    /// Whether `login` and `password` are an account's.
    pub(crate) fn check_login(&self, login: &str, password: &str) -> bool {
        self.accounts
            .get(login)
            .is_some_and(|expected| expected == password)
    }

    /// Decides what an HTTP API submit that passed validation becomes: counted
    /// like an SMPP submit in the totals, delivered to the handset once per
    /// (login, client `message_id`) (SPEC M8). `fault` is the site's fault in
    /// force; `received_us` is when the request arrived.
    pub(crate) fn submit_http(
        &mut self,
        submission: HttpSubmission<'_>,
        fault: Option<HttpFault>,
        received_us: u64,
    ) -> HttpSubmitOutcome {
        self.totals.submits += 1;
        match fault {
            Some(HttpFault::Throttle { probability }) if self.rng.unit() < probability => {
                self.totals.throttled += 1;
                return HttpSubmitOutcome::Throttled;
            }
            Some(HttpFault::InternalError { probability }) if self.rng.unit() < probability => {
                return HttpSubmitOutcome::InternalError;
            }
            _ => {}
        }
        let key = (
            submission.login.to_owned(),
            submission.client_message_id.to_owned(),
        );
        if let Some(provider_id) = self.http_dedupe.get(&key) {
            self.totals.duplicates_dropped += 1;
            return HttpSubmitOutcome::Duplicate {
                provider_id: provider_id.clone(),
            };
        }
        let provider_id = self.new_message_id();
        self.http_dedupe.insert(key, provider_id.clone());
        self.totals.unique += 1;
        self.handsets.push(HandsetMessage {
            destination: submission.phone_number.to_owned(),
            source: submission.sender.to_owned(),
            text: submission.message.to_owned(),
            user_message_reference: None,
            message_id: provider_id.clone(),
            receipt_id: provider_id.clone(),
            system_id: submission.login.to_owned(),
            site: submission.site.to_owned(),
            smsc: String::new(),
            received_us,
            protocol: Protocol::Http,
            client_message_id: Some(submission.client_message_id.to_owned()),
        });
        HttpSubmitOutcome::Accepted { provider_id }
    }

    /// Which HTTP site posts a delivery receipt for a message taken by site
    /// `origin` of `site_count`, and how many identical copies: usually the
    /// same site once; another site with `other_site_probability` (SPEC M1);
    /// twice with `duplicate_probability` (SPEC M13).
    pub(crate) fn http_receipt_plan(&mut self, origin: usize, site_count: usize) -> (usize, u8) {
        let mut site = origin;
        if site_count > 1 && self.rng.unit() < self.receipts.other_site_probability {
            let others = u64::try_from(site_count - 2).unwrap_or(0);
            let pick = usize::try_from(self.rng.below_or_equal(others)).unwrap_or(0);
            // Skip over the origin: `pick` indexes the other sites.
            site = if pick >= origin { pick + 1 } else { pick };
        }
        let copies = if self.rng.unit() < self.receipts.duplicate_probability {
            2
        } else {
            1
        };
        (site, copies)
    }

    /// The final state receipts report.
    pub(crate) fn final_state(&self) -> crate::config::FinalState {
        self.receipts.final_state
    }

    /// `registered_delivery` bits 0–1 (SMPP 3.4, 5.2.17): 1 asks for a receipt
    /// on any final state, 2 only on failure; 3 is reserved and read as 1.
    fn wants_receipt(&self, registered_delivery: u8) -> bool {
        match registered_delivery & 0x03 {
            0 => false,
            2 => self.receipts.final_state != crate::config::FinalState::Delivered,
            _ => true,
        }
    }

    /// Hands `delivery` to a suitable bound session, or keeps it until one binds.
    /// Returns the instance that got it.
    pub(crate) fn route(&mut self, delivery: Delivery) -> Option<Target> {
        let Some(session) = self.choose_session(&delivery) else {
            self.pending.push_back(delivery);
            return None;
        };
        let bound = &self.bound[&session];
        let target = self.instances[bound.instance].target.clone();
        match bound.inbox.send(delivery) {
            Ok(()) => Some(target),
            // The session is ending; its cleanup unregisters it shortly.
            Err(mpsc::error::SendError(delivery)) => {
                self.pending.push_back(delivery);
                None
            }
        }
    }

    /// Routes again every pending delivery that now has a bind.
    fn flush_pending(&mut self) {
        let waiting = std::mem::take(&mut self.pending);
        for delivery in waiting {
            self.route(delivery);
        }
    }

    fn choose_session(&mut self, delivery: &Delivery) -> Option<SessionId> {
        let candidates: Vec<(SessionId, &SiteName)> = self
            .bound
            .iter()
            .filter(|(_, bound)| bound.receives && bound.system_id == delivery.system_id)
            .filter(|(_, bound)| {
                // A dead or silent instance cannot carry anything.
                !matches!(
                    self.instances[bound.instance].fault,
                    Some(Fault::Die | Fault::Blackhole)
                )
            })
            .map(|(id, bound)| (*id, &self.instances[bound.instance].target.site))
            .collect();
        let pool: Vec<SessionId> = match &delivery.route {
            Route::Any => candidates.iter().map(|(id, _)| *id).collect(),
            Route::Only(site) => candidates
                .iter()
                .filter(|(_, candidate_site)| *candidate_site == site)
                .map(|(id, _)| *id)
                .collect(),
            Route::SameSiteFirst(site) => {
                let same: Vec<SessionId> = candidates
                    .iter()
                    .filter(|(_, candidate_site)| *candidate_site == site)
                    .map(|(id, _)| *id)
                    .collect();
                if same.is_empty() {
                    candidates.iter().map(|(id, _)| *id).collect()
                } else {
                    same
                }
            }
            Route::Prefer(site) => {
                let (same, other): (Vec<_>, Vec<_>) = candidates
                    .iter()
                    .partition(|(_, candidate_site)| *candidate_site == site);
                let go_other = !other.is_empty()
                    && (same.is_empty() || self.rng.unit() < self.receipts.other_site_probability);
                let chosen = if go_other { other } else { same };
                chosen.iter().map(|(id, _)| *id).collect()
            }
        };
        let last = u64::try_from(pool.len().checked_sub(1)?).ok()?;
        let index = usize::try_from(self.rng.below_or_equal(last)).ok()?;
        pool.get(index).copied()
    }

    /// Counts a `deliver_sm` written on a session of `instance`.
    pub(crate) fn record_sent(&mut self, instance: usize, kind: DeliveryKind) {
        let counters = &mut self.instances[instance].counters;
        match kind {
            DeliveryKind::Receipt => {
                self.totals.receipts_sent += 1;
                counters.receipts_sent += 1;
            }
            DeliveryKind::Mo => {
                self.totals.mo_sent += 1;
                counters.mo_sent += 1;
            }
        }
    }

    /// Decides the fate of a `deliver_sm` that failed on a session of
    /// `instance`: answered with a non-zero `command_status`, or not answered
    /// within `deliveries.response_timeout_ms`. Like a real SMSC the provider
    /// sends it again (SPEC M6, M8: the client may have failed to store it):
    /// returns it, to be routed again after `deliveries.retry_interval_ms`, on
    /// a bind of the same site if there is one. After `retry_attempts` retries
    /// it is dropped and counted; `None`.
    pub(crate) fn delivery_failed(
        &mut self,
        instance: usize,
        mut delivery: Delivery,
    ) -> Option<Delivery> {
        if delivery.retries >= self.deliveries.retry_attempts {
            self.totals.deliveries_abandoned += 1;
            return None;
        }
        delivery.retries += 1;
        self.totals.deliveries_retried += 1;
        if !matches!(delivery.route, Route::Only(_)) {
            delivery.route = Route::SameSiteFirst(self.instances[instance].target.site.clone());
        }
        Some(delivery)
    }

    /// Counts a `deliver_sm_resp`.
    pub(crate) fn record_acked(&mut self, kind: DeliveryKind) {
        match kind {
            DeliveryKind::Receipt => self.totals.receipts_acked += 1,
            DeliveryKind::Mo => self.totals.mo_acked += 1,
        }
    }

    /// Every distinct message that reached a handset, oldest first.
    pub(crate) fn handsets(&self) -> &[HandsetMessage] {
        &self.handsets
    }

    /// The counters, with `at_ms` stamped by the caller.
    pub(crate) fn stats(&self) -> (TotalStats, Vec<SmscStats>) {
        let mut totals = self.totals.clone();
        totals.pending_deliveries = self.pending.len() as u64;
        totals.references_remembered = self.dedupe.len() as u64;
        let smsc = self
            .instances
            .iter()
            .enumerate()
            .map(|(index, instance)| {
                let mut counters = instance.counters.clone();
                counters.fault = instance.fault;
                counters.bound_sessions = self
                    .bound
                    .values()
                    .filter(|bound| bound.instance == index)
                    .count() as u64;
                counters
            })
            .collect();
        (totals, smsc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Provider {
        provider_with(LabConfig::loopback(&[("a", &["a1"])]))
    }

    fn provider_with(config: LabConfig) -> Provider {
        let addrs = [(Target::new("a", "a1"), "127.0.0.1:1".parse().expect("addr"))];
        Provider::new(&config, &addrs)
    }

    fn submission(to: &str, reference: u16) -> Submission {
        Submission {
            source: Address {
                ton: 5,
                npi: 0,
                addr: "ACME".to_owned(),
            },
            destination: Address {
                ton: 1,
                npi: 1,
                addr: to.to_owned(),
            },
            data_coding: 0,
            body: Bytes::from_static(b"hello"),
            user_message_reference: Some(reference),
            registered_delivery: 0,
        }
    }

    // The handset log keeps when each distinct message arrived; a repeat
    // (SPEC M8) neither adds an entry nor moves the first one's time.
    #[test]
    fn handset_log_records_the_arrival_time_of_each_distinct_message() {
        let mut provider = provider();
        let first = provider.submit(0, "hotsite", submission("4470001", 1), 0, 1_250);
        assert!(matches!(first, SubmitOutcome::Accepted { .. }), "{first:?}");
        let again = provider.submit(0, "hotsite", submission("4470001", 1), 0, 9_000);
        assert!(
            matches!(again, SubmitOutcome::Duplicate { .. }),
            "{again:?}"
        );
        provider.submit(0, "hotsite", submission("4470002", 2), 0, 2_500);
        let log = provider.handsets();
        assert_eq!(log.len(), 2);
        assert_eq!(
            (log[0].destination.as_str(), log[0].received_us),
            ("4470001", 1_250)
        );
        assert_eq!(
            (log[1].destination.as_str(), log[1].received_us),
            ("4470002", 2_500)
        );
    }

    // SPEC M13: the submit response and the receipt write the same serial each
    // in its own format; the handset log keeps both spellings.
    #[test]
    fn submit_and_receipt_ids_follow_their_formats() {
        let cases = [
            (IdFormat::Hex, IdFormat::HexUpper, "0000002a", "0000002A"),
            (IdFormat::HexUpper, IdFormat::Hex, "0000002A", "0000002a"),
            (IdFormat::Hex, IdFormat::HexUnpadded, "0000002a", "2a"),
            (IdFormat::Hex, IdFormat::Decimal, "0000002a", "42"),
            (
                IdFormat::Decimal,
                IdFormat::DecimalPadded,
                "42",
                "00000000000000000042",
            ),
            (IdFormat::HexUnpadded, IdFormat::Hex, "2a", "0000002a"),
        ];
        for (submit_format, receipt_format, submit_id, receipt_id) in cases {
            let mut config = LabConfig::loopback(&[("a", &["a1"])]);
            config.receipts.submit_id_format = submit_format;
            config.receipts.receipt_id_format = receipt_format;
            let mut provider = provider_with(config);
            // Serial 42: 41 messages before this one.
            for n in 0..41 {
                provider.submit(0, "hotsite", submission(&format!("44{n}"), 1), 0, 0);
            }
            let mut wanted = submission("4470001", 1);
            wanted.registered_delivery = 1;
            let SubmitOutcome::Accepted {
                message_id,
                receipts,
            } = provider.submit(0, "hotsite", wanted, 0, 0)
            else {
                panic!("not accepted");
            };
            let case = format!("{submit_format:?}/{receipt_format:?}");
            assert_eq!(message_id, submit_id, "{case}");
            assert_eq!(receipts.len(), 1, "{case}");
            assert_eq!(
                receipts[0].message.tlvs.receipted_message_id(),
                Some(receipt_id),
                "{case}"
            );
            let logged = provider.handsets().last().expect("logged");
            assert_eq!(
                (logged.message_id.as_str(), logged.receipt_id.as_str()),
                (submit_id, receipt_id),
                "{case}"
            );
            // A repeat is answered in the submit format too (SPEC M8).
            let again = provider.submit(0, "hotsite", submission("4470001", 1), 0, 0);
            assert!(
                matches!(&again, SubmitOutcome::Duplicate { message_id } if message_id == submit_id),
                "{case}: {again:?}"
            );
        }
    }

    // SPEC M8, M16: a repeat within `reference_memory_ms` is dropped and
    // answered with the original id; past it the reference is free again and
    // the submit is a new message, which the memory then holds.
    #[test]
    fn a_repeat_is_dropped_within_the_reference_memory_only() {
        let mut config = LabConfig::loopback(&[("a", &["a1"])]);
        config.dedupe.reference_memory_ms = 1_000;
        let mut provider = provider_with(config);
        let SubmitOutcome::Accepted {
            message_id: first, ..
        } = provider.submit(0, "hotsite", submission("4470001", 9), 0, 0)
        else {
            panic!("first not accepted");
        };
        // 999.999 ms later: still remembered.
        let within = provider.submit(0, "hotsite", submission("4470001", 9), 0, 999_999);
        assert!(
            matches!(&within, SubmitOutcome::Duplicate { message_id } if *message_id == first),
            "{within:?}"
        );
        // 1 s after the first was accepted: forgotten, a new message.
        let after = provider.submit(0, "hotsite", submission("4470001", 9), 0, 1_000_000);
        let SubmitOutcome::Accepted {
            message_id: second, ..
        } = after
        else {
            panic!("not a new message: {after:?}");
        };
        assert_ne!(second, first);
        // The new message is remembered from its own acceptance.
        let again = provider.submit(0, "hotsite", submission("4470001", 9), 0, 1_500_000);
        assert!(
            matches!(&again, SubmitOutcome::Duplicate { message_id } if *message_id == second),
            "{again:?}"
        );
        let (totals, _) = provider.stats();
        assert_eq!((totals.unique, totals.duplicates_dropped), (2, 2));
        assert_eq!(provider.handsets().len(), 2);
    }

    // SPEC M8, M16: by default (memory 0) a reference is remembered forever.
    #[test]
    fn the_default_memory_is_forever() {
        let mut provider = provider();
        provider.submit(0, "hotsite", submission("4470001", 9), 0, 0);
        let much_later = 30 * 24 * 3_600 * 1_000_000;
        let again = provider.submit(0, "hotsite", submission("4470001", 9), 0, much_later);
        assert!(
            matches!(again, SubmitOutcome::Duplicate { .. }),
            "{again:?}"
        );
    }

    // SPEC M16: a finite memory forgets what it may no longer match, so it
    // holds about one memory's worth of references, however long the run.
    #[test]
    fn a_finite_memory_stays_bounded() {
        let mut config = LabConfig::loopback(&[("a", &["a1"])]);
        config.dedupe.reference_memory_ms = 100;
        let mut provider = provider_with(config);
        // One distinct reference every millisecond for 5 s.
        for n in 0..5_000_u16 {
            let at_us = u64::from(n) * 1_000;
            provider.submit(0, "hotsite", submission("4470001", n), 0, at_us);
        }
        let (totals, _) = provider.stats();
        assert_eq!(totals.unique, 5_000);
        assert_eq!(totals.references_remembered, 100);
    }

    fn receipt_delivery(site: &str) -> Delivery {
        Delivery {
            kind: DeliveryKind::Receipt,
            system_id: "hotsite".to_owned(),
            route: Route::Prefer(SiteName::new(site)),
            message: ShortMessage::default(),
            retries: 0,
        }
    }

    // SPEC M6, M8: a failed deliver_sm is given back for `retry_attempts`
    // retries, each counted, then dropped and counted as abandoned.
    #[test]
    fn a_failed_delivery_is_retried_until_its_attempts_are_spent() {
        let mut config = LabConfig::loopback(&[("a", &["a1"])]);
        config.deliveries.retry_attempts = 3;
        let mut provider = provider_with(config);
        let mut delivery = receipt_delivery("a");
        for retry in 1..=3 {
            delivery = provider
                .delivery_failed(0, delivery)
                .unwrap_or_else(|| panic!("retry {retry} abandoned"));
            assert_eq!(delivery.retries, retry);
            assert!(
                matches!(&delivery.route, Route::SameSiteFirst(site) if site.as_str() == "a"),
                "{:?}",
                delivery.route
            );
        }
        assert!(
            provider.delivery_failed(0, delivery).is_none(),
            "4th failure"
        );
        let (totals, _) = provider.stats();
        assert_eq!(
            (totals.deliveries_retried, totals.deliveries_abandoned),
            (3, 1)
        );
    }

    // SPEC M6, M8: `retry_attempts = 0` never retries.
    #[test]
    fn zero_retry_attempts_abandon_at_the_first_failure() {
        let mut config = LabConfig::loopback(&[("a", &["a1"])]);
        config.deliveries.retry_attempts = 0;
        let mut provider = provider_with(config);
        assert!(provider.delivery_failed(0, receipt_delivery("a")).is_none());
        let (totals, _) = provider.stats();
        assert_eq!(
            (totals.deliveries_retried, totals.deliveries_abandoned),
            (0, 1)
        );
    }

    // SPEC M6: a retry goes out on a bind of the site that failed it while it
    // has one, else on any bind of the account; an MO restricted to one site
    // stays there.
    #[test]
    fn a_retry_prefers_the_same_site_then_any() {
        let config = LabConfig::loopback(&[("a", &["a1"]), ("b", &["b1"])]);
        let addrs = [
            (Target::new("a", "a1"), "127.0.0.1:1".parse().expect("addr")),
            (Target::new("b", "b1"), "127.0.0.1:2".parse().expect("addr")),
        ];
        let mut provider = Provider::new(&config, &addrs);
        let mut inboxes = Vec::new();
        for instance in 0..2 {
            let (inbox, receiver) = mpsc::unbounded_channel();
            let session = provider.new_session_id();
            provider.register(
                session,
                BoundSession {
                    instance,
                    system_id: "hotsite".to_owned(),
                    receives: true,
                    inbox,
                },
            );
            inboxes.push((session, receiver));
        }
        // Failed on b1: goes back to b while b has a bind, every time.
        for _ in 0..20 {
            let retry = provider
                .delivery_failed(1, receipt_delivery("a"))
                .expect("retried");
            let target = provider.route(retry).expect("routed");
            assert_eq!(target.site.as_str(), "b");
        }
        // b has no bind any more: any site will do.
        provider.unregister(inboxes[1].0);
        let retry = provider
            .delivery_failed(1, receipt_delivery("a"))
            .expect("retried");
        assert_eq!(provider.route(retry).expect("routed").site.as_str(), "a");
        // An MO for site b only waits for b.
        let mut mo = receipt_delivery("b");
        mo.kind = DeliveryKind::Mo;
        mo.route = Route::Only(SiteName::new("b"));
        let retry = provider.delivery_failed(1, mo).expect("retried");
        assert!(provider.route(retry).is_none(), "pending until b binds");
    }
}
