//! The SMPP hop: the pool of binds to every SMSC of every site (SPEC M4–M7).
//! The client already moves a message off a dead bind and onto a live one; what
//! comes back here is the SMSC's answer, mapped to a [`SendOutcome`].

use bytes::Bytes;
use hotsite_smpp::driver::{Refusal, SmppClient, SubmitOutcome};
use hotsite_smpp::pdu::{tag, Address, Outcome, ShortMessage, Tlvs};
use hotsite_store::QueuedMessage;

use super::{Retried, RetryKind, SendOutcome};

/// Sends through the SMPP client.
#[derive(Clone)]
pub struct SmppChannel {
    client: SmppClient,
    registered_delivery: u8,
}

impl SmppChannel {
    /// `registered_delivery` is set on every submit: 1 asks for a final receipt.
    pub fn new(client: SmppClient, registered_delivery: u8) -> SmppChannel {
        SmppChannel {
            client,
            registered_delivery,
        }
    }

    /// Submits `message` once. `None` when the client is shutting down, or the
    /// submit was still queued at `send_before` (the message stays queued).
    /// Throttled and queue-full answers that the client resent by itself on the
    /// way are added to `retried`.
    pub async fn send(
        &self,
        message: &QueuedMessage,
        retried: &mut Vec<Retried>,
        send_before: Option<std::time::Instant>,
    ) -> Option<SendOutcome> {
        let short_message = to_short_message(message, self.registered_delivery);
        let report = self
            .client
            .submit_reporting_before(short_message, send_before)
            .await
            .ok()?;
        retried.extend(report.refusals.into_iter().map(refusal));
        Some(map(report.outcome))
    }
}

/// A refusal the client resent by itself, as the history records it (SPEC M14).
fn refusal(refusal: Refusal) -> Retried {
    Retried {
        endpoint: refusal.target.to_string(),
        kind: RetryKind::Throttled,
        reason: format!(
            "answered {}; sent again after the bind's {} ms pause",
            refusal.status,
            refusal.pause.as_millis()
        ),
    }
}

/// The SMSC's answer as a channel outcome (SPEC M14).
fn map(outcome: SubmitOutcome) -> SendOutcome {
    match outcome {
        SubmitOutcome::Accepted { target, message_id } => SendOutcome::Accepted {
            site: target.site.to_string(),
            endpoint: target.name.to_string(),
            provider_id: message_id,
        },
        SubmitOutcome::Invalid { reason } => SendOutcome::Permanent {
            endpoint: "-".to_owned(),
            reason: format!("not sendable: {reason}"),
        },
        SubmitOutcome::Rejected { target, status } => {
            let endpoint = target.to_string();
            match status.outcome() {
                Outcome::Permanent | Outcome::Accepted => SendOutcome::Permanent {
                    endpoint,
                    reason: status.to_string(),
                },
                // The bind itself slows down (SPEC M14); the message waits the backoff.
                Outcome::Throttled => SendOutcome::Retry {
                    endpoint,
                    kind: RetryKind::Throttled,
                    reason: format!("answered {status}"),
                    retry_after: None,
                },
                Outcome::Retry => SendOutcome::Retry {
                    endpoint,
                    kind: RetryKind::ProviderError,
                    reason: format!("answered {status}"),
                    retry_after: None,
                },
            }
        }
        SubmitOutcome::Ambiguous { target, cause } => SendOutcome::Ambiguous {
            endpoint: target.to_string(),
            reason: cause,
        },
    }
}

/// The `submit_sm` for a stored message: its stable reference on every send.
fn to_short_message(message: &QueuedMessage, registered_delivery: u8) -> ShortMessage {
    let mut tlvs = Tlvs::default();
    // SPEC M8, M16: the message's own reference on every submit; none once the
    // provider has taken every reference of the destination.
    if let Some(reference) = message.reference {
        tlvs.set_user_message_reference(reference);
    }
    let (short_message, payload) = if message.body.len() <= 254 {
        (Bytes::copy_from_slice(&message.body), None)
    } else {
        (Bytes::new(), Some(Bytes::copy_from_slice(&message.body)))
    };
    if let Some(payload) = payload {
        tlvs.set(tag::MESSAGE_PAYLOAD, payload);
    }
    let numeric = message.source.bytes().all(|b| b.is_ascii_digit());
    ShortMessage {
        source: Address {
            // International number, or alphanumeric sender.
            ton: if numeric { 1 } else { 5 },
            npi: if numeric { 1 } else { 0 },
            addr: message.source.clone(),
        },
        destination: Address {
            ton: 1,
            npi: 1,
            addr: message.destination.clone(),
        },
        registered_delivery,
        data_coding: message.data_coding,
        short_message,
        tlvs,
        ..ShortMessage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotsite_core::Target;
    use hotsite_smpp::pdu::CommandStatus;

    /// SPEC M14: the SMSC's status decides between permanent, throttled and retry.
    #[test]
    fn smsc_answers_map_to_outcomes() {
        let target = || Target::new("b", "b2");
        let rejected = |status| {
            map(SubmitOutcome::Rejected {
                target: target(),
                status,
            })
        };
        assert!(matches!(
            rejected(CommandStatus::ESME_RINVDSTADR),
            SendOutcome::Permanent { reason, .. } if reason.contains("ESME_RINVDSTADR")
        ));
        assert!(matches!(
            rejected(CommandStatus::ESME_RTHROTTLED),
            SendOutcome::Retry {
                kind: RetryKind::Throttled,
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            rejected(CommandStatus::ESME_RSYSERR),
            SendOutcome::Retry {
                kind: RetryKind::ProviderError,
                ..
            }
        ));
        assert_eq!(
            map(SubmitOutcome::Accepted {
                target: target(),
                message_id: "m1".into()
            }),
            SendOutcome::Accepted {
                site: "b".into(),
                endpoint: "b2".into(),
                provider_id: "m1".into()
            }
        );
        assert!(matches!(
            map(SubmitOutcome::Ambiguous {
                target: target(),
                cause: "peer silent".into()
            }),
            SendOutcome::Ambiguous { .. }
        ));
        assert!(matches!(
            map(SubmitOutcome::Invalid {
                reason: "too long".into()
            }),
            SendOutcome::Permanent { .. }
        ));
    }
}
