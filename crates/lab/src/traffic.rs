//! Messages as the outside world sees them: what reached a handset, the MOs a
//! handset sends, what the webhook receivers and the SMTP sink got.

use serde::{Deserialize, Serialize};

/// How a message reached the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// `submit_sm` or `data_sm` on an SMSC instance.
    #[default]
    Smpp,
    /// `POST /sms/send` on a site of the HTTP API.
    Http,
}

/// One distinct message that reached a handset (`GET /v1/handsets`), whether
/// it came over SMPP or the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandsetMessage {
    /// The handset (`destination_addr`).
    pub destination: String,
    /// The sender (`source_addr`).
    pub source: String,
    /// The body as text: UCS-2 decoded when `data_coding` says so, else lossy UTF-8.
    pub text: String,
    /// The `user_message_reference` TLV, if the submit carried one (SMPP).
    pub user_message_reference: Option<u16>,
    /// The id the lab answered: in `submit_sm_resp` (written per
    /// `receipts.submit_id_format`), or as `provider_id`.
    pub message_id: String,
    /// The same message's id as its receipts write it: the
    /// `receipted_message_id` TLV (per `receipts.receipt_id_format`, SPEC M13);
    /// equal to `message_id` over HTTP and when both formats agree.
    #[serde(default)]
    pub receipt_id: String,
    /// The account that submitted it (SMPP `system_id`, HTTP `login`).
    pub system_id: String,
    /// The site that accepted it (an SMPP site or an HTTP API site).
    pub site: String,
    /// The SMSC instance that accepted it; empty for the HTTP API.
    pub smsc: String,
    /// How it came.
    #[serde(default)]
    pub protocol: Protocol,
    /// The client's `message_id` (HTTP API): its dedupe key with the login.
    #[serde(default)]
    pub client_message_id: Option<String>,
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

/// An MO to post to hotsite's MO callback URL (`POST /v1/http/mo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpMoRequest {
    /// The handset sending it (1 to 20 characters).
    pub from: String,
    /// The short code or number it is sent to (1 to 20 characters).
    pub to: String,
    /// The body (at most 1600 characters).
    pub text: String,
    /// The HTTP site that posts it (its `site` field); the first one if absent.
    #[serde(default)]
    pub site: Option<String>,
    /// Post it twice, with the same fields, as a provider that retries does.
    #[serde(default)]
    pub duplicate: bool,
}

/// An MO on its way to the MO callback URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpMoDispatch {
    /// The lab's id of the MO: the `message_id` field of the POST.
    pub message_id: String,
    /// The site posting it.
    pub site: String,
    /// How many POSTs carry it (2 with `duplicate`).
    pub copies: u8,
}

/// One distinct message a webhook receiver accepted (`GET /v1/webhooks/{name}/messages`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookMessage {
    /// The receiver's name.
    pub receiver: String,
    /// The receiver's own id for it, answered as `{"id": ...}`.
    pub receiver_id: String,
    /// The body's `id`: hotsite's message id.
    pub id: String,
    /// The body's `from`, if any.
    pub from: Option<String>,
    /// The body's `to`, if any.
    pub to: Option<String>,
    /// The body's `text`, if any.
    pub text: Option<String>,
    /// The request path.
    pub path: String,
    /// When it arrived, in microseconds since the lab started (see
    /// [`LabHandle::epoch`](crate::LabHandle::epoch)).
    pub received_us: u64,
    /// When it arrived, in milliseconds since the Unix epoch.
    pub received_unix_ms: u64,
}

/// One mail the SMTP sink accepted (`GET /v1/smtp/mails`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpMail {
    /// The `HELO`/`EHLO` name.
    pub helo: String,
    /// The envelope sender (`MAIL FROM`), without angle brackets; empty for `<>`.
    pub from: String,
    /// The envelope recipients (`RCPT TO`), in order.
    pub recipients: Vec<String>,
    /// The message as received after dot-unstuffing, lines ending in CRLF
    /// (non-UTF-8 bytes replaced).
    pub data: String,
    /// The `Subject` header, unfolded, as written (encoded words not decoded).
    pub subject: Option<String>,
    /// The `X-Hotsite-Message-Id` header, if present.
    pub message_id: Option<String>,
    /// When the final dot arrived, in microseconds since the lab started.
    pub received_us: u64,
    /// When the final dot arrived, in milliseconds since the Unix epoch.
    pub received_unix_ms: u64,
}
