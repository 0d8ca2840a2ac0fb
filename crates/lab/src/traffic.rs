//! Messages as the outside world sees them: what reached a handset, and the MOs
//! a handset sends.

use serde::{Deserialize, Serialize};

/// One distinct message that reached a handset (`GET /v1/handsets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandsetMessage {
    /// The handset (`destination_addr`).
    pub destination: String,
    /// The sender (`source_addr`).
    pub source: String,
    /// The body as text: UCS-2 decoded when `data_coding` says so, else lossy UTF-8.
    pub text: String,
    /// The `user_message_reference` TLV, if the submit carried one.
    pub user_message_reference: Option<u16>,
    /// The id the lab answered in `submit_sm_resp`.
    pub message_id: String,
    /// The account that submitted it.
    pub system_id: String,
    /// The site that accepted it.
    pub site: String,
    /// The SMSC instance that accepted it.
    pub smsc: String,
    /// When its submit arrived, in microseconds since the lab started (see
    /// [`LabHandle::epoch`](crate::LabHandle::epoch)): what benchmarks measure
    /// latency and throughput against.
    #[serde(default)]
    pub received_us: u64,
}

/// A mobile-originated message to send to hotsite (`POST /v1/mo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoRequest {
    /// The handset sending it (at most 20 characters).
    pub from: String,
    /// The short code or number it is sent to (at most 20 characters).
    pub to: String,
    /// The body.
    pub text: String,
    /// Only binds of this site may carry it; any site if absent.
    #[serde(default)]
    pub site: Option<String>,
    /// The account whose binds carry it; the first configured account if absent.
    #[serde(default)]
    pub system_id: Option<String>,
}

/// Where an MO went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MoDispatch {
    /// Handed to a bound session of this instance, which writes it next.
    Routed {
        /// The instance's site.
        site: String,
        /// The instance.
        smsc: String,
    },
    /// No suitable bind is up: it goes out as soon as one binds.
    Pending,
}
