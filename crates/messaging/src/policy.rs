//! What a submit's outcome means for the message: the store update to make, and
//! whether and when to send it again. Pure: no I/O, no clock.
//!
//! - accepted → `Submitted` with the provider's id (receipts correlate on it);
//! - refused for good (SPEC M14: authentication, bad address, too long,
//!   duplicate) or not encodable → `Failed`, never sent again;
//! - a temporary refusal (system error, vendor codes) → `Requeued`, sent again
//!   after a backoff, up to a retry budget;
//! - ambiguous (sent, never answered; SPEC M8) → by policy: `resubmit` sends it
//!   again at once with the same reference so the provider drops a repeat,
//!   `fail` reports it and never resends.

use std::time::Duration;

use hotsite_core::Backoff;
use hotsite_smpp::driver::SubmitOutcome;
use hotsite_smpp::pdu::Outcome;
use hotsite_store::{MessageId, Update};

/// What to do with a submit whose outcome is unknown (SPEC M8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmbiguousPolicy {
    /// Send again with the same reference; the provider drops the repeat. Default.
    Resubmit,
    /// Mark the message failed and never resend it.
    Fail,
}

/// The policy's answer for one outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The store update to make durable.
    pub update: Update,
    /// `Some(delay)`: send the message again after `delay`.
    pub retry_after: Option<Duration>,
    /// Whether the outcome was ambiguous (counted and shown, SPEC M8).
    pub ambiguous: bool,
}

/// Decides what `outcome` means for message `id` on its `attempt`-th submit.
pub fn decide(
    id: MessageId,
    outcome: SubmitOutcome,
    policy: AmbiguousPolicy,
    retry_budget: u32,
    attempt: u32,
    backoff: &mut Backoff,
    now_ms: i64,
) -> Decision {
    let done = |update| Decision {
        update,
        retry_after: None,
        ambiguous: false,
    };
    match outcome {
        SubmitOutcome::Accepted { target, message_id } => done(Update::Submitted {
            id,
            provider_message_id: message_id,
            site: target.site.to_string(),
            smsc: target.name.to_string(),
            at_ms: now_ms,
        }),
        SubmitOutcome::Invalid { reason } => done(Update::Failed {
            id,
            reason: format!("not sendable: {reason}"),
            at_ms: now_ms,
        }),
        SubmitOutcome::Rejected { target, status } => match status.outcome() {
            Outcome::Retry | Outcome::Throttled if attempt < retry_budget => Decision {
                update: Update::Requeued {
                    id,
                    kind: "requeued".to_owned(),
                    reason: format!("{target} answered {status}: retrying"),
                    at_ms: now_ms,
                },
                retry_after: Some(backoff.next_delay()),
                ambiguous: false,
            },
            Outcome::Retry | Outcome::Throttled => done(Update::Failed {
                id,
                reason: format!(
                    "{target} answered {status}; retry budget of {retry_budget} attempts spent"
                ),
                at_ms: now_ms,
            }),
            Outcome::Permanent | Outcome::Accepted => done(Update::Failed {
                id,
                reason: format!("{target} refused it: {status}"),
                at_ms: now_ms,
            }),
        },
        SubmitOutcome::Ambiguous { target, cause } => match policy {
            AmbiguousPolicy::Resubmit if attempt < retry_budget => Decision {
                update: Update::Requeued {
                    id,
                    kind: "ambiguous".to_owned(),
                    reason: format!(
                        "ambiguous on {target} ({cause}): resubmitting with the same reference"
                    ),
                    at_ms: now_ms,
                },
                retry_after: Some(Duration::ZERO),
                ambiguous: true,
            },
            AmbiguousPolicy::Resubmit | AmbiguousPolicy::Fail => Decision {
                update: Update::Failed {
                    id,
                    reason: format!("ambiguous on {target} ({cause}); policy says fail"),
                    at_ms: now_ms,
                },
                retry_after: None,
                ambiguous: true,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotsite_core::{BackoffConfig, Target};
    use hotsite_smpp::pdu::CommandStatus;

    fn check(outcome: SubmitOutcome, policy: AmbiguousPolicy, attempt: u32) -> Decision {
        let mut backoff = Backoff::new(BackoffConfig::default(), 1);
        decide(
            MessageId(7),
            outcome,
            policy,
            5,
            attempt,
            &mut backoff,
            1_000,
        )
    }

    fn target() -> Target {
        Target::new("b", "b2")
    }

    #[test]
    fn accepted_records_provider_id_and_where() {
        let decision = check(
            SubmitOutcome::Accepted {
                target: target(),
                message_id: "abc".into(),
            },
            AmbiguousPolicy::Resubmit,
            0,
        );
        assert_eq!(
            decision.update,
            Update::Submitted {
                id: MessageId(7),
                provider_message_id: "abc".into(),
                site: "b".into(),
                smsc: "b2".into(),
                at_ms: 1_000
            }
        );
        assert_eq!(decision.retry_after, None);
    }

    /// SPEC M14: permanent rejection fails the message, not retried.
    #[test]
    fn permanent_rejection_fails() {
        let decision = check(
            SubmitOutcome::Rejected {
                target: target(),
                status: CommandStatus::ESME_RINVDSTADR,
            },
            AmbiguousPolicy::Resubmit,
            0,
        );
        assert!(
            matches!(decision.update, Update::Failed { ref reason, .. } if reason.contains("ESME_RINVDSTADR"))
        );
        assert_eq!(decision.retry_after, None);
    }

    /// SPEC M14: a temporary error is retried with backoff, within a budget.
    #[test]
    fn temporary_error_retries_with_backoff_then_fails() {
        let rejected = || SubmitOutcome::Rejected {
            target: target(),
            status: CommandStatus::ESME_RSYSERR,
        };
        let decision = check(rejected(), AmbiguousPolicy::Resubmit, 1);
        assert!(matches!(decision.update, Update::Requeued { .. }));
        assert!(decision.retry_after.unwrap() <= Duration::from_secs(1));
        let decision = check(rejected(), AmbiguousPolicy::Resubmit, 5);
        assert!(
            matches!(decision.update, Update::Failed { ref reason, .. } if reason.contains("budget"))
        );
    }

    /// SPEC M8: ambiguous submits are resent at once with the same reference, or
    /// failed by policy; either way counted.
    #[test]
    fn ambiguous_follows_the_policy() {
        let ambiguous = || SubmitOutcome::Ambiguous {
            target: target(),
            cause: "peer silent".into(),
        };
        let decision = check(ambiguous(), AmbiguousPolicy::Resubmit, 0);
        assert!(
            matches!(decision.update, Update::Requeued { ref reason, .. } if reason.contains("same reference"))
        );
        assert_eq!(decision.retry_after, Some(Duration::ZERO));
        assert!(decision.ambiguous);
        let decision = check(ambiguous(), AmbiguousPolicy::Fail, 0);
        assert!(matches!(decision.update, Update::Failed { .. }));
        assert!(decision.ambiguous);
    }

    #[test]
    fn unencodable_fails() {
        let decision = check(
            SubmitOutcome::Invalid {
                reason: "short_message too long".into(),
            },
            AmbiguousPolicy::Resubmit,
            0,
        );
        assert!(matches!(decision.update, Update::Failed { .. }));
    }
}
