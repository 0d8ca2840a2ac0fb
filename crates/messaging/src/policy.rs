//! What one send's outcome means for the message: the store updates to make, and
//! what happens next — nothing (final), the same hop again after a delay, or the
//! next hop of the route. The same for every channel. Pure: no I/O, no clock.
//!
//! - accepted → `Submitted` with the provider's id (receipts correlate on it);
//! - refused for good (SPEC M10: 4xx other than 408/429; SPEC M14:
//!   authentication, bad address, too long) → `Failed`, never sent again;
//! - worth retrying (SPEC M10 transport failure or timeout, SPEC M14 throttled or
//!   internal error) → an event of that kind, then the same hop again after the
//!   channel's own delay (`Retry-After`, the aggregator's resubmit delay) or the
//!   hop's backoff, while the hop's budget lasts;
//! - ambiguous (sent, never answered; SPEC M8) → by the hop's policy: `resubmit`
//!   sends it again at once with the same reference so the provider drops a
//!   repeat, `fail` reports it and never resends;
//! - a hop whose budget is spent hands the message to the next hop of its route
//!   (SPEC M11), recorded as a `fallback` event; after the last hop it fails.

use std::time::Duration;

use hotsite_core::{Backoff, BackoffConfig};
use hotsite_store::{MessageId, Update};

use crate::channel::SendOutcome;

/// What to do with a submit whose outcome is unknown (SPEC M8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmbiguousPolicy {
    /// Send again with the same reference; the provider drops the repeat. Default.
    Resubmit,
    /// Mark the message failed and never resend it.
    Fail,
}

/// How one hop of a route retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopPolicy {
    /// Sends on this hop before the message moves on; `None`: never moves on
    /// (the message stays queued and is retried by the backoff, SPEC M3).
    pub budget: Option<u32>,
    /// Delay between retries when the channel names none.
    pub backoff: BackoffConfig,
    /// What to do with ambiguous sends.
    pub ambiguous: AmbiguousPolicy,
}

/// Where the message is: which hop, by which channel name, and how many hops the
/// route has.
#[derive(Debug, Clone, Copy)]
pub struct Position<'a> {
    /// The hop (0 = first).
    pub hop: u32,
    /// The channel of this hop, for the history.
    pub channel: &'a str,
    /// The channel of the next hop, if there is one.
    pub next_channel: Option<&'a str>,
    /// Sends on this hop so far, this one included.
    pub attempt: u32,
}

/// What happens after the updates are durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The message is done (submitted or failed).
    Done,
    /// Send it again on the same hop after this delay.
    Retry(Duration),
    /// Send it on this hop of the route, at once.
    Hop(u32),
}

/// The policy's answer for one outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The store updates to make durable, in order.
    pub updates: Vec<Update>,
    /// What happens next.
    pub next: Next,
    /// Whether the outcome was ambiguous (counted and shown, SPEC M8).
    pub ambiguous: bool,
}

/// Decides what `outcome` means for message `id` at `position`.
pub fn decide(
    id: MessageId,
    outcome: SendOutcome,
    position: Position<'_>,
    policy: &HopPolicy,
    backoff: &mut Backoff,
    now_ms: i64,
) -> Decision {
    let channel = position.channel;
    let budget_left = policy.budget.is_none_or(|budget| position.attempt < budget);
    let done = |update| Decision {
        updates: vec![update],
        next: Next::Done,
        ambiguous: false,
    };
    let failed = |reason: String| Update::Failed {
        id,
        reason,
        at_ms: now_ms,
    };
    match outcome {
        SendOutcome::Accepted {
            site,
            endpoint,
            provider_id,
        } => done(Update::Submitted {
            id,
            provider_message_id: provider_id,
            site,
            smsc: endpoint,
            at_ms: now_ms,
        }),
        SendOutcome::Permanent { endpoint, reason } => done(failed(format!(
            "{channel} ({endpoint}) refused it: {reason}"
        ))),
        SendOutcome::Retry {
            endpoint,
            kind,
            reason,
            retry_after,
        } => {
            let retry = Update::Requeued {
                id,
                kind: kind.event_kind().to_owned(),
                reason: format!("{channel} ({endpoint}): {reason}"),
                at_ms: now_ms,
            };
            if budget_left {
                // The channel's own delay wins: Retry-After must be honoured
                // (SPEC M10) and the resubmit delay is the provider's (SPEC M3).
                let delay = retry_after.unwrap_or_else(|| backoff.next_delay());
                Decision {
                    updates: vec![retry],
                    next: Next::Retry(delay),
                    ambiguous: false,
                }
            } else {
                move_on(id, retry, position, policy, now_ms, false)
            }
        }
        SendOutcome::Ambiguous { endpoint, reason } => {
            let what = format!("ambiguous on {channel} ({endpoint}): {reason}");
            match policy.ambiguous {
                AmbiguousPolicy::Resubmit if budget_left => Decision {
                    updates: vec![Update::Requeued {
                        id,
                        kind: "ambiguous".to_owned(),
                        reason: format!("{what}; resubmitting with the same reference"),
                        at_ms: now_ms,
                    }],
                    next: Next::Retry(Duration::ZERO),
                    ambiguous: true,
                },
                AmbiguousPolicy::Resubmit => {
                    let retry = Update::Requeued {
                        id,
                        kind: "ambiguous".to_owned(),
                        reason: what,
                        at_ms: now_ms,
                    };
                    move_on(id, retry, position, policy, now_ms, true)
                }
                AmbiguousPolicy::Fail => Decision {
                    updates: vec![failed(format!("{what}; policy says fail"))],
                    next: Next::Done,
                    ambiguous: true,
                },
            }
        }
    }
}

/// The hop's budget is spent: on to the next hop, or failed after the last.
fn move_on(
    id: MessageId,
    last_try: Update,
    position: Position<'_>,
    policy: &HopPolicy,
    now_ms: i64,
    ambiguous: bool,
) -> Decision {
    let budget = policy.budget.unwrap_or(u32::MAX);
    let channel = position.channel;
    let (update, next) = match position.next_channel {
        Some(next_channel) => (
            Update::Fallback {
                id,
                hop: position.hop + 1,
                reason: format!(
                    "{channel} -> {next_channel}: budget of {budget} sends on {channel} spent"
                ),
                at_ms: now_ms,
            },
            Next::Hop(position.hop + 1),
        ),
        None => (
            Update::Failed {
                id,
                reason: format!(
                    "budget of {budget} sends on {channel} spent and no hop left in the route"
                ),
                at_ms: now_ms,
            },
            Next::Done,
        ),
    };
    Decision {
        updates: vec![last_try, update],
        next,
        ambiguous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::RetryKind;

    const POLICY: HopPolicy = HopPolicy {
        budget: Some(3),
        backoff: BackoffConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2,
        },
        ambiguous: AmbiguousPolicy::Resubmit,
    };

    fn at(attempt: u32, next_channel: Option<&str>) -> Position<'_> {
        Position {
            hop: 0,
            channel: "primary-chat",
            next_channel,
            attempt,
        }
    }

    fn check(outcome: SendOutcome, position: Position<'_>, policy: &HopPolicy) -> Decision {
        let mut backoff = Backoff::new(policy.backoff, 1);
        decide(MessageId(7), outcome, position, policy, &mut backoff, 1_000)
    }

    fn unavailable(retry_after: Option<Duration>) -> SendOutcome {
        SendOutcome::Retry {
            endpoint: "https://chat.example/hook".into(),
            kind: RetryKind::TransportFailure,
            reason: "answered 503".into(),
            retry_after,
        }
    }

    fn kinds(decision: &Decision) -> Vec<String> {
        decision
            .updates
            .iter()
            .map(|update| match update {
                Update::Submitted { .. } => "submitted".to_owned(),
                Update::Requeued { kind, .. } => kind.clone(),
                Update::Fallback { hop, .. } => format!("fallback to {hop}"),
                Update::Failed { .. } => "failed".to_owned(),
                Update::Event { kind, .. } => kind.clone(),
            })
            .collect()
    }

    #[test]
    fn accepted_records_provider_id_and_where() {
        let decision = check(
            SendOutcome::Accepted {
                site: "b".into(),
                endpoint: "b2".into(),
                provider_id: "abc".into(),
            },
            at(1, None),
            &POLICY,
        );
        assert_eq!(
            decision.updates,
            vec![Update::Submitted {
                id: MessageId(7),
                provider_message_id: "abc".into(),
                site: "b".into(),
                smsc: "b2".into(),
                at_ms: 1_000
            }]
        );
        assert_eq!(decision.next, Next::Done);
    }

    /// SPEC M10, M14: a permanent refusal fails the message; not retried, and not
    /// handed to the next hop either (it would be refused there for the same reason).
    #[test]
    fn permanent_refusal_fails() {
        let decision = check(
            SendOutcome::Permanent {
                endpoint: "https://chat.example/hook".into(),
                reason: "answered 404".into(),
            },
            at(1, Some("secondary-chat")),
            &POLICY,
        );
        assert_eq!(kinds(&decision), ["failed"]);
        assert!(
            matches!(&decision.updates[0], Update::Failed { reason, .. } if reason.contains("404"))
        );
        assert_eq!(decision.next, Next::Done);
    }

    /// SPEC M10: a transport failure is an event of its kind and retried with
    /// backoff (full jitter: at most the ceiling) while the budget lasts.
    #[test]
    fn transport_failure_retries_with_backoff() {
        let decision = check(unavailable(None), at(1, Some("secondary-chat")), &POLICY);
        assert_eq!(kinds(&decision), ["transport_failure"]);
        let Next::Retry(delay) = decision.next else {
            panic!("{decision:?}")
        };
        assert!(delay <= Duration::from_secs(1), "{delay:?}");
    }

    /// SPEC M10: 429 honours Retry-After: the channel's delay is used as it is.
    #[test]
    fn the_channels_delay_wins_over_the_backoff() {
        let decision = check(
            SendOutcome::Retry {
                endpoint: "e".into(),
                kind: RetryKind::Throttled,
                reason: "429".into(),
                retry_after: Some(Duration::from_secs(120)),
            },
            at(1, None),
            &POLICY,
        );
        assert_eq!(kinds(&decision), ["throttled"]);
        assert_eq!(decision.next, Next::Retry(Duration::from_secs(120)));
    }

    /// SPEC M11: after its budget on one provider the message moves to the next
    /// hop, recorded as a fallback; after the last hop it fails.
    #[test]
    fn spent_budget_moves_to_the_next_hop_then_fails() {
        let decision = check(unavailable(None), at(3, Some("secondary-chat")), &POLICY);
        assert_eq!(kinds(&decision), ["transport_failure", "fallback to 1"]);
        assert_eq!(decision.next, Next::Hop(1));
        assert!(matches!(
            &decision.updates[1],
            Update::Fallback { reason, .. } if reason.contains("primary-chat -> secondary-chat")
        ));
        let decision = check(unavailable(None), at(3, None), &POLICY);
        assert_eq!(kinds(&decision), ["transport_failure", "failed"]);
        assert_eq!(decision.next, Next::Done);
    }

    /// SPEC M3: a hop without a budget never gives up; the message stays queued.
    #[test]
    fn unlimited_budget_keeps_retrying() {
        let policy = HopPolicy {
            budget: None,
            ..POLICY
        };
        let decision = check(unavailable(None), at(10_000, Some("email")), &policy);
        assert!(matches!(decision.next, Next::Retry(_)), "{decision:?}");
    }

    /// SPEC M8: ambiguous sends are resent at once with the same reference, or
    /// failed by policy; either way counted.
    #[test]
    fn ambiguous_follows_the_policy() {
        let ambiguous = || SendOutcome::Ambiguous {
            endpoint: "b2".into(),
            reason: "peer silent".into(),
        };
        let decision = check(ambiguous(), at(1, None), &POLICY);
        assert_eq!(kinds(&decision), ["ambiguous"]);
        assert_eq!(decision.next, Next::Retry(Duration::ZERO));
        assert!(decision.ambiguous);
        let fail = HopPolicy {
            ambiguous: AmbiguousPolicy::Fail,
            ..POLICY
        };
        let decision = check(ambiguous(), at(1, Some("email")), &fail);
        assert_eq!(kinds(&decision), ["failed"]);
        assert!(decision.ambiguous);
        let decision = check(ambiguous(), at(3, Some("email")), &POLICY);
        assert_eq!(kinds(&decision), ["ambiguous", "fallback to 1"]);
    }

    /// SPEC M10, M11: a whole route in simulated time. Both chat providers answer
    /// 503 (one of them once with 429 and Retry-After): every delay is what the
    /// hop's backoff allows (full jitter under a doubling ceiling) or exactly
    /// the Retry-After; each hop is left after its budget; e-mail takes it.
    #[test]
    fn a_whole_route_in_simulated_time() {
        let hops = [
            (
                "primary-chat",
                HopPolicy {
                    budget: Some(4),
                    ..POLICY
                },
            ),
            (
                "secondary-chat",
                HopPolicy {
                    budget: Some(2),
                    ..POLICY
                },
            ),
            (
                "email",
                HopPolicy {
                    budget: Some(3),
                    ..POLICY
                },
            ),
        ];
        let mut now = Duration::ZERO;
        let mut hop = 0u32;
        let mut attempt = 0u32;
        let mut backoff = Backoff::new(hops[0].1.backoff, 9);
        let mut ceiling = POLICY.backoff.initial;
        let mut history = Vec::new();
        for send in 0..20 {
            let (channel, policy) = hops[hop as usize];
            attempt += 1;
            let outcome = match (channel, send) {
                ("email", _) => SendOutcome::Accepted {
                    site: "email".into(),
                    endpoint: "smtp:25".into(),
                    provider_id: "q1".into(),
                },
                ("primary-chat", 1) => SendOutcome::Retry {
                    endpoint: channel.into(),
                    kind: RetryKind::Throttled,
                    reason: "429".into(),
                    retry_after: Some(Duration::from_secs(7)),
                },
                _ => unavailable(None),
            };
            let position = Position {
                hop,
                channel,
                next_channel: hops.get(hop as usize + 1).map(|(name, _)| *name),
                attempt,
            };
            let decision = decide(MessageId(1), outcome, position, &policy, &mut backoff, 0);
            history.extend(kinds(&decision));
            match decision.next {
                Next::Done => break,
                Next::Retry(delay) if channel == "primary-chat" && send == 1 => {
                    assert_eq!(delay, Duration::from_secs(7), "Retry-After as it is");
                    now += delay;
                }
                Next::Retry(delay) => {
                    assert!(delay <= ceiling, "{delay:?} over the ceiling {ceiling:?}");
                    ceiling = (ceiling * 2).min(POLICY.backoff.max);
                    now += delay;
                }
                Next::Hop(next) => {
                    hop = next;
                    attempt = 0;
                    backoff = Backoff::new(hops[next as usize].1.backoff, 9);
                    ceiling = POLICY.backoff.initial;
                }
            }
        }
        assert_eq!(
            history,
            [
                "transport_failure",
                "throttled",
                "transport_failure",
                "transport_failure",
                "fallback to 1",
                "transport_failure",
                "transport_failure",
                "fallback to 2",
                "submitted",
            ]
        );
        // 7 s of Retry-After plus at most 1 + 2 s (primary) and 1 s (secondary).
        assert!(
            now >= Duration::from_secs(7) && now <= Duration::from_secs(11),
            "{now:?}"
        );
    }
}
