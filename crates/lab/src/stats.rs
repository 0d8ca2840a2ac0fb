//! What the lab counted: the numbers tests and `hotsite demo` assert on.
//!
//! `unique` is the number that matters for SPEC M8: every message that reached a
//! handset, once. `duplicates_dropped` counts the repeats the provider recognised
//! by `user_message_reference` and answered with the original message id.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::fault::Fault;
use crate::http::HttpFault;
use crate::smtp::SmtpFault;

/// A snapshot of the lab's counters (`GET /v1/stats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabStats {
    /// Milliseconds since the lab started, when the snapshot was taken.
    pub at_ms: u64,
    /// Sums over every SMSC instance and HTTP API site.
    pub totals: TotalStats,
    /// One entry per SMSC instance, in configuration order.
    pub smsc: Vec<SmscStats>,
    /// One entry per HTTP API site, in configuration order.
    #[serde(default)]
    pub http_sites: Vec<HttpSiteStats>,
    /// One entry per webhook receiver, in configuration order.
    #[serde(default)]
    pub webhooks: Vec<WebhookStats>,
    /// The DNS server's counters, if it runs.
    #[serde(default)]
    pub dns: Option<DnsStats>,
    /// The SMTP sink's counters, if it runs.
    #[serde(default)]
    pub smtp: Option<SmtpStats>,
}

/// Lab-wide counters. Submits, `unique`, `duplicates_dropped` and `throttled`
/// count SMPP and the HTTP API alike, so delivery reports read the same for both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalStats {
    /// `submit_sm`, `data_sm` and HTTP submits that passed validation
    /// (throttled and duplicates included).
    pub submits: u64,
    /// Distinct messages that reached a handset.
    pub unique: u64,
    /// Repeats of an already-accepted `user_message_reference` (SMPP) or
    /// `message_id` (HTTP), not delivered again.
    pub duplicates_dropped: u64,
    /// Submits answered `ESME_RTHROTTLED` or code 20.
    pub throttled: u64,
    /// Receipt `deliver_sm` written to a session (each copy and each resend counts).
    pub receipts_sent: u64,
    /// `deliver_sm_resp` received for receipts.
    pub receipts_acked: u64,
    /// MO `deliver_sm` written to a session.
    pub mo_sent: u64,
    /// `deliver_sm_resp` received for MOs.
    pub mo_acked: u64,
    /// Receipts and MOs waiting for a suitable bind.
    pub pending_deliveries: u64,
    /// (account, destination, `user_message_reference`) keys the provider
    /// remembers now: bounded by `dedupe.reference_memory_ms` when it is set
    /// (SPEC M16).
    #[serde(default)]
    pub references_remembered: u64,
    /// `deliver_sm` (receipts and MOs) scheduled to go out again after a
    /// non-zero `command_status` or no answer in time (SPEC M6, M8).
    #[serde(default)]
    pub deliveries_retried: u64,
    /// `deliver_sm` dropped after their last attempt failed.
    #[serde(default)]
    pub deliveries_abandoned: u64,
}

/// Counters and state of one SMSC instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmscStats {
    /// The instance's site.
    pub site: String,
    /// The instance's name within its site.
    pub name: String,
    /// Where it listens (also while dead: the port it will listen on again).
    pub addr: SocketAddr,
    /// The fault in force, or `None` when healthy.
    pub fault: Option<Fault>,
    /// Sessions currently bound.
    pub bound_sessions: u64,
    /// TCP connections accepted.
    pub connections: u64,
    /// Bind requests received, successful or not.
    pub bind_attempts: u64,
    /// When each bind request arrived, in milliseconds since the lab started,
    /// so tests can check rebind pacing (SPEC M5).
    pub bind_attempt_ms: Vec<u64>,
    /// `submit_sm` and `data_sm` received.
    pub submits: u64,
    /// Distinct messages accepted here.
    pub unique: u64,
    /// Repeats answered with the original message id.
    pub duplicates_dropped: u64,
    /// Submits answered `ESME_RTHROTTLED`.
    pub throttled: u64,
    /// Receipts written on this instance's sessions.
    pub receipts_sent: u64,
    /// MOs written on this instance's sessions.
    pub mo_sent: u64,
}

/// What every HTTP server counts (HTTP API sites and webhook receivers alike).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpTransportStats {
    /// TCP connections accepted.
    pub connections: u64,
    /// HTTP requests received, on any path, faults included.
    pub requests: u64,
    /// Requests answered with an injected status ([`HttpFault::Status`]), by status.
    pub injected: BTreeMap<u16, u64>,
    /// Requests read and never answered ([`HttpFault::Hang`]).
    pub hung: u64,
    /// Requests whose connection was reset ([`HttpFault::Reset`]).
    pub reset: u64,
}

/// Counters and state of one HTTP API site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpSiteStats {
    /// The site's name.
    pub name: String,
    /// Where it listens (also while dead).
    pub addr: SocketAddr,
    /// The fault in force, or `None` when healthy.
    pub fault: Option<HttpFault>,
    /// Connections, requests and injected faults.
    pub transport: HttpTransportStats,
    /// Submits answered code 0: new messages delivered to a handset.
    pub accepted: u64,
    /// Submits answered code 14: repeats, not delivered again.
    pub duplicates_dropped: u64,
    /// `POST /sms/send` answers by result code (0, 10–14, 20, 21, 30, 31).
    pub codes: BTreeMap<u16, u64>,
    /// Callbacks this site posted (its name in their `site` field).
    pub callbacks: CallbackStats,
}

/// Delivery receipts and MOs posted to hotsite's callback URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackStats {
    /// Delivery receipt callbacks (each copy of a duplicate counts).
    pub receipts: u64,
    /// MO callbacks (each copy of a duplicate counts).
    pub mos: u64,
    /// POST attempts, first tries and retries.
    pub attempts: u64,
    /// Attempts after a failure: a non-2xx answer, a timeout, no connection.
    pub retries: u64,
    /// Callbacks answered 2xx.
    pub delivered: u64,
    /// Callbacks given up after the last attempt.
    pub abandoned: u64,
}

/// Counters and state of one webhook receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookStats {
    /// The receiver's name.
    pub name: String,
    /// Where it listens (also while dead).
    pub addr: SocketAddr,
    /// The fault in force, or `None` when healthy.
    pub fault: Option<HttpFault>,
    /// Connections, requests and injected faults.
    pub transport: HttpTransportStats,
    /// Distinct messages accepted and logged.
    pub accepted: u64,
    /// Repeats of an accepted `id`: answered 200, not logged again.
    pub duplicates: u64,
    /// Requests answered 401: signature missing or wrong (SPEC M15).
    pub unauthorized: u64,
    /// Requests answered 400 (not JSON, no `id`) or 405 (not a POST).
    pub rejected: u64,
}

/// Counters and records of the DNS server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsStats {
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    /// The TTL of every answer, in seconds.
    pub ttl_s: u32,
    /// The records in force, by name.
    pub records: BTreeMap<String, Vec<std::net::IpAddr>>,
    /// Queries with a readable question, by lower-case name (known or not), so
    /// tests can see re-resolution (SPEC M2).
    pub queries: BTreeMap<String, u64>,
    /// Answers with NOERROR (with or without data).
    pub answered: u64,
    /// Answers with NXDOMAIN.
    pub nxdomain: u64,
    /// Answers with FORMERR, NOTIMP or REFUSED.
    pub errors: u64,
    /// Datagrams ignored: too short for a header, or not a query.
    pub ignored: u64,
}

/// Counters and state of the SMTP sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmtpStats {
    /// Where it listens (also while dead).
    pub addr: SocketAddr,
    /// The fault in force, or `None` when healthy.
    pub fault: Option<SmtpFault>,
    /// TCP connections accepted.
    pub connections: u64,
    /// Mails accepted (`250` after DATA).
    pub accepted: u64,
    /// Mails refused: too big, lines too long, or `MAIL FROM` refused by a fault.
    pub rejected: u64,
}
