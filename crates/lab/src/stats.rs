//! What the lab counted: the numbers tests and `hotsite demo` assert on.
//!
//! `unique` is the number that matters for SPEC M8: every message that reached a
//! handset, once. `duplicates_dropped` counts the repeats the provider recognised
//! by `user_message_reference` and answered with the original message id.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::fault::Fault;

/// A snapshot of the lab's counters (`GET /v1/stats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabStats {
    /// Milliseconds since the lab started, when the snapshot was taken.
    pub at_ms: u64,
    /// Sums over every SMSC instance.
    pub totals: TotalStats,
    /// One entry per SMSC instance, in configuration order.
    pub smsc: Vec<SmscStats>,
}

/// Lab-wide counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalStats {
    /// `submit_sm` and `data_sm` received (throttled and duplicates included).
    pub submits: u64,
    /// Distinct messages that reached a handset.
    pub unique: u64,
    /// Repeats of an already-accepted `user_message_reference`, not delivered again.
    pub duplicates_dropped: u64,
    /// Submits answered `ESME_RTHROTTLED`.
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
