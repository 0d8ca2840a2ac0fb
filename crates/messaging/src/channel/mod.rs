//! Delivery channels: the ways a message can leave hotsite. Each hop of a route
//! (SPEC M11) is one channel: the SMPP binds, the aggregator's HTTP API, a digital
//! channel's webhook, or e-mail. A channel sends one message once and says what
//! came of it as a [`SendOutcome`]; what to do next (retry, back off, next hop,
//! fail) is decided by the route policy ([`crate::route`]), the same for every
//! channel.

use std::time::Duration;

use hotsite_store::QueuedMessage;

pub mod aggregator;
pub mod digital;
pub mod email;
pub mod passive;
pub mod smpp;

/// A channel of a hop.
#[derive(Clone)]
pub enum Channel {
    /// The SMPP binds.
    Smpp(smpp::SmppChannel),
    /// A digital channel's webhook, and its health read off the sends.
    Digital(
        std::sync::Arc<digital::DigitalChannel>,
        std::sync::Arc<passive::PassiveHealth>,
    ),
    /// E-mail over SMTP, and its health read off the sends.
    Email(
        std::sync::Arc<email::EmailChannel>,
        std::sync::Arc<passive::PassiveHealth>,
    ),
    /// The aggregator's HTTP API, with site failover (SPEC M2, M3).
    Http(std::sync::Arc<aggregator::AggregatorChannel>),
}

/// What a message's send on one hop remembers between sends (the aggregator's
/// position in its list of site URLs), and the refusals a channel retried by
/// itself during a send. Fresh for each hop.
#[derive(Debug, Default)]
pub struct HopState {
    aggregator: aggregator::AggregatorCursor,
    retried: Vec<Retried>,
}

impl HopState {
    /// The refusals retried inside the last send, oldest first (and forgets them).
    pub fn take_retried(&mut self) -> Vec<Retried> {
        std::mem::take(&mut self.retried)
    }
}

/// A temporary refusal that a channel retried by itself before the send's
/// outcome, such as an SMSC's throttled or queue-full answer that the SMPP client
/// resends on a bind once its pause is over (SPEC M14). Not an outcome: the
/// dispatcher records it in the message's history and counts it (invariant 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retried {
    /// The endpoint that refused.
    pub endpoint: String,
    /// What kind of refusal; names the history event.
    pub kind: RetryKind,
    /// Why, in words.
    pub reason: String,
}

impl Channel {
    /// Sends `message` once. `None` when the channel is shutting down, or when
    /// the send could not start before `send_before` (the SMPP client's queue:
    /// the lease on the message ran short, SPEC M17): the message stays queued.
    /// The other channels start their send at once, so the caller's check of
    /// its lease just before is their deadline.
    pub async fn send(
        &self,
        message: &QueuedMessage,
        state: &mut HopState,
        send_before: Option<std::time::Instant>,
    ) -> Option<SendOutcome> {
        match self {
            Channel::Smpp(channel) => channel.send(message, &mut state.retried, send_before).await,
            Channel::Digital(channel, health) => {
                let outcome = channel.send(message).await;
                health.record(&outcome);
                Some(outcome)
            }
            Channel::Email(channel, health) => {
                let outcome = channel.send(message).await;
                health.record(&outcome);
                Some(outcome)
            }
            Channel::Http(channel) => Some(channel.send(message, &mut state.aggregator).await),
        }
    }
}

/// What one send on one channel came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The provider took the message.
    Accepted {
        /// The provider's site that took it (a site name, or the channel name).
        site: String,
        /// The endpoint (SMSC, URL, SMTP server) that answered.
        endpoint: String,
        /// The provider's id for it; receipts correlate on it (SPEC M13).
        provider_id: String,
    },
    /// Refused for good: not retried on this hop (SPEC M10: 4xx other than
    /// 408/429; SPEC M14: authentication, invalid sender or destination, too long).
    Permanent {
        /// The endpoint that refused it.
        endpoint: String,
        /// Why, in words (status, provider code and text).
        reason: String,
    },
    /// Worth sending again (SPEC M10, M14).
    Retry {
        /// The endpoint that failed.
        endpoint: String,
        /// What went wrong; names the event recorded on the message.
        kind: RetryKind,
        /// Why, in words.
        reason: String,
        /// When the channel itself knows when to try again: a `Retry-After`
        /// header, the aggregator's resubmit delay, or zero to go at once to the
        /// alternate site. `None`: the route's backoff decides.
        retry_after: Option<Duration>,
    },
    /// Sent, and the provider may or may not have it: the connection died before
    /// any answer (SPEC M8). The route's ambiguous policy decides.
    Ambiguous {
        /// The endpoint.
        endpoint: String,
        /// What happened.
        reason: String,
    },
}

/// Why a send is worth repeating. Each names the event recorded on the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryKind {
    /// Connection refused or reset, 503, other 5xx, 408 (SPEC M10).
    TransportFailure,
    /// No answer in time (SPEC M10).
    Timeout,
    /// 429, or the provider's "throttled" code (SPEC M14).
    Throttled,
    /// The provider's "internal error" code, or another temporary refusal.
    ProviderError,
}

impl SendOutcome {
    /// A short name for metrics: `accepted`, `permanent`, `ambiguous` or the
    /// retry kind's event.
    pub fn label(&self) -> &'static str {
        match self {
            SendOutcome::Accepted { .. } => "accepted",
            SendOutcome::Permanent { .. } => "permanent",
            SendOutcome::Retry { kind, .. } => kind.event_kind(),
            SendOutcome::Ambiguous { .. } => "ambiguous",
        }
    }
}

impl RetryKind {
    /// The kind of the event recorded on the message.
    pub fn event_kind(self) -> &'static str {
        match self {
            RetryKind::TransportFailure => "transport_failure",
            RetryKind::Timeout => "timeout",
            RetryKind::Throttled => "throttled",
            RetryKind::ProviderError => "provider_error",
        }
    }
}

/// The longest `Retry-After` taken as it is: a larger one is a provider's
/// mistake or an outage, and waiting longer than this hides the message from the
/// next hop of its route for too long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` in seconds (RFC 9110 also allows an HTTP date; providers send
/// seconds in practice, and a date falls back to the hop's backoff), capped at
/// [`MAX_RETRY_AFTER`]. Used by every HTTP channel (SPEC M10).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// The start of an answer's body, for the history: enough to see why, never a
/// whole page.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// `error` and its causes, which say whether it was refused, reset or DNS.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The text of a stored body: the API stores GSM 7-bit as one octet per
/// character (ASCII plus Latin-1 letters), Latin-1 as is, UCS-2 as UTF-16 BE.
/// Channels that carry text (HTTP, webhooks, e-mail) send this.
pub fn text_of(message: &QueuedMessage) -> String {
    decode(&message.body, message.data_coding)
}

/// See [`text_of`]. Unknown codings are read as Latin-1, which never fails.
pub fn decode(body: &[u8], data_coding: u8) -> String {
    match data_coding {
        8 => {
            let units: Vec<u16> = body
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => body.iter().map(|&b| char::from(b)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_the_api_encodes() {
        assert_eq!(decode(b"Hello", 0), "Hello");
        assert_eq!(decode(&[0x48, 0xE9], 3), "Hé");
        let ucs2: Vec<u8> = "Привет €"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(decode(&ucs2, 8), "Привет €");
        // An odd trailing octet is dropped, not a panic.
        assert_eq!(decode(&[0x00, 0x41, 0x00], 8), "A");
    }
}
