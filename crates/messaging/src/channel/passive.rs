//! The health of a channel nobody probes: a digital channel's webhook, an
//! SMTP relay. It is read off the sends themselves (passive detection): an
//! endpoint that cannot be reached, times out or answers 5xx three sends in a
//! row is out of service until one send gets through. Throttling, temporary
//! refusals of one message (SMTP 4xx) and permanent refusals are answers from
//! a working endpoint and leave it alone.
//!
//! Nothing routes by this state (the route's hops and backoff already decide
//! where a message goes next, SPEC M10, M11); it is what the operator sees:
//! `/v1/status`'s `channels`, `hotsite_channel_up`, and a `health` event on the
//! stream with the cause, like an SMSC bind or an aggregator site.

use std::sync::Mutex;
use std::time::Instant;

use hotsite_core::{Event, EventKind, Health, HealthConfig, HealthState, HealthTransition, Target};
use hotsite_host::Events;
use serde_json::{json, Value};

use super::{RetryKind, SendOutcome};

/// Failed sends in a row that take the endpoint out of service; one send that
/// gets through brings it back (a delivered message is proof enough).
const THRESHOLDS: HealthConfig = HealthConfig { rise: 1, fall: 3 };

/// What one send says about the endpoint: `Ok`, a failure with its cause, or
/// nothing (the endpoint answered; the message itself was refused or paced).
pub(crate) fn observation(outcome: &SendOutcome) -> Option<Result<(), String>> {
    match outcome {
        SendOutcome::Accepted { .. } => Some(Ok(())),
        SendOutcome::Permanent { .. } => None,
        // An answer from a working endpoint: paced, or a temporary refusal
        // of this message (an SMTP relay's 450 greylisting or 452 mailbox
        // full, a provider's "internal error" code).
        SendOutcome::Retry {
            kind: RetryKind::Throttled | RetryKind::ProviderError,
            ..
        } => None,
        SendOutcome::Retry { reason, .. } | SendOutcome::Ambiguous { reason, .. } => {
            Some(Err(reason.clone()))
        }
    }
}

/// One endpoint's health and what the operator wants to know about it.
/// Pure: time is passed in.
#[derive(Debug)]
pub(crate) struct EndpointHealth {
    health: Health,
    since_ms: i64,
    sends: u64,
    failures_in_a_row: u32,
    last_ok_ms: Option<i64>,
    last_failure: Option<(i64, String)>,
}

impl EndpointHealth {
    /// In service until sends say otherwise (as a fresh SMSC bind or URL).
    pub(crate) fn new(now: Instant, now_ms: i64) -> EndpointHealth {
        EndpointHealth {
            health: Health::new(THRESHOLDS, HealthState::Up, now),
            since_ms: now_ms,
            sends: 0,
            failures_in_a_row: 0,
            last_ok_ms: None,
            last_failure: None,
        }
    }

    /// Takes one send's outcome; a change of state comes back with its cause.
    pub(crate) fn record(
        &mut self,
        outcome: &SendOutcome,
        now: Instant,
        now_ms: i64,
    ) -> Option<(HealthTransition, String)> {
        let observation = observation(outcome)?;
        self.sends += 1;
        let (transition, cause) = match observation {
            Ok(()) => {
                self.failures_in_a_row = 0;
                self.last_ok_ms = Some(now_ms);
                (
                    self.health.record_success(now),
                    "a send got through".to_owned(),
                )
            }
            Err(cause) => {
                self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
                self.last_failure = Some((now_ms, cause.clone()));
                let transition = self.health.record_failure(now);
                let cause = format!("{} sends in a row failed: {cause}", self.failures_in_a_row);
                (transition, cause)
            }
        };
        let transition = transition?;
        self.since_ms = now_ms;
        Some((transition, cause))
    }

    /// Whether work sent there now is expected to get through.
    pub(crate) fn is_up(&self) -> bool {
        self.health.state() == HealthState::Up
    }

    /// The status fields (`/v1/status` `channels.<name>`).
    pub(crate) fn status(&self) -> Value {
        json!({
            "health": state_name(self.health.state()),
            "since_ms": self.since_ms,
            "sends": self.sends,
            "failures_in_a_row": self.failures_in_a_row,
            "last_ok_ms": self.last_ok_ms,
            "last_failure": self.last_failure.as_ref().map(|(at_ms, cause)| json!({ "at_ms": at_ms, "cause": cause })),
        })
    }
}

fn state_name(state: HealthState) -> &'static str {
    match state {
        HealthState::Up => "up",
        HealthState::Down => "down",
        HealthState::Probing => "probing",
    }
}

/// [`EndpointHealth`] shared by a channel's concurrent sends, publishing its
/// changes on the host's event stream.
pub struct PassiveHealth {
    target: Target,
    kind: &'static str,
    url: String,
    events: Events,
    state: Mutex<EndpointHealth>,
}

impl PassiveHealth {
    /// The health of channel `name` (`kind` is `digital` or `email`), reached at
    /// `url`, shown as given: the caller passes what may be shown (a webhook's
    /// origin, an SMTP server's host and port; never a path that may hold a
    /// secret).
    pub fn new(name: &str, kind: &'static str, url: String, events: Events) -> PassiveHealth {
        PassiveHealth {
            // The event's target: site = the channel, name = what it is.
            target: Target::new(name, kind),
            kind,
            url,
            events,
            state: Mutex::new(EndpointHealth::new(
                crate::clock::monotonic_now(),
                crate::clock::now_ms(),
            )),
        }
    }

    /// Records one send's outcome; publishes a change of state.
    pub fn record(&self, outcome: &SendOutcome) {
        let change = self.lock().record(
            outcome,
            crate::clock::monotonic_now(),
            crate::clock::now_ms(),
        );
        if let Some((transition, cause)) = change {
            self.events.publish(Event {
                at: transition.at,
                target: self.target.clone(),
                kind: EventKind::Health {
                    from: transition.from,
                    to: transition.to,
                    cause,
                },
            });
        }
    }

    /// Whether the endpoint is in service.
    pub fn is_up(&self) -> bool {
        self.lock().is_up()
    }

    /// The channel's part of `/v1/status`.
    pub fn status(&self) -> Value {
        let mut status = self.lock().status();
        status["kind"] = json!(self.kind);
        status["url"] = json!(self.url);
        status
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EndpointHealth> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for PassiveHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassiveHealth")
            .field("target", &self.target)
            .field("state", &*self.lock())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test epoch
mod tests {
    use std::time::Duration;

    use super::*;

    fn retry(kind: RetryKind, reason: &str) -> SendOutcome {
        SendOutcome::Retry {
            endpoint: "https://chat.example/hook".into(),
            kind,
            reason: reason.into(),
            retry_after: None,
        }
    }

    fn accepted() -> SendOutcome {
        SendOutcome::Accepted {
            site: "chat".into(),
            endpoint: "https://chat.example/hook".into(),
            provider_id: "m1".into(),
        }
    }

    /// Three transport failures in a row take the endpoint out of service with
    /// the last cause; one delivered send brings it back (SPEC M10).
    #[test]
    fn three_failures_in_a_row_take_it_down_and_one_success_back() {
        let t0 = Instant::now();
        let mut health = EndpointHealth::new(t0, 1_000);
        for n in 1..=2u64 {
            let at = t0 + Duration::from_secs(n);
            assert!(health
                .record(
                    &retry(RetryKind::TransportFailure, "503"),
                    at,
                    1_000 + n as i64
                )
                .is_none());
        }
        let (down, cause) = health
            .record(
                &retry(RetryKind::Timeout, "no answer within 5s"),
                t0 + Duration::from_secs(3),
                4_000,
            )
            .expect("third failure in a row");
        assert_eq!((down.from, down.to), (HealthState::Up, HealthState::Down));
        assert_eq!(cause, "3 sends in a row failed: no answer within 5s");
        assert!(!health.is_up());
        let status = health.status();
        assert_eq!(status["health"], "down");
        assert_eq!(status["since_ms"], 4_000);
        assert_eq!(status["last_failure"]["cause"], "no answer within 5s");

        let (up, _) = health
            .record(&accepted(), t0 + Duration::from_secs(9), 10_000)
            .expect("a delivered send");
        assert_eq!(up.to, HealthState::Up);
        assert_eq!(health.status()["last_ok_ms"], 10_000);
        assert_eq!(health.status()["failures_in_a_row"], 0);
    }

    /// Throttling and permanent refusals are answers from a working endpoint:
    /// they neither count as failures nor break a run of them.
    #[test]
    fn throttling_and_permanent_refusals_say_nothing_about_the_endpoint() {
        let t0 = Instant::now();
        let mut health = EndpointHealth::new(t0, 0);
        let permanent = SendOutcome::Permanent {
            endpoint: "https://chat.example/hook".into(),
            reason: "400 bad recipient".into(),
        };
        for _ in 0..5 {
            assert!(health.record(&permanent, t0, 0).is_none());
            assert!(health
                .record(&retry(RetryKind::Throttled, "429"), t0, 0)
                .is_none());
            let greylisted = retry(RetryKind::ProviderError, "450 greylisted, try later");
            assert!(health.record(&greylisted, t0, 0).is_none());
        }
        assert!(health.is_up());
        assert_eq!(health.status()["sends"], 0);
        // A run of failures interrupted only by throttling still counts up.
        health.record(&retry(RetryKind::TransportFailure, "reset"), t0, 1);
        health.record(&retry(RetryKind::Throttled, "429"), t0, 2);
        health.record(&retry(RetryKind::TransportFailure, "reset"), t0, 3);
        let ambiguous = SendOutcome::Ambiguous {
            endpoint: "smtp.example:25".into(),
            reason: "connection closed after DATA".into(),
        };
        assert!(health.record(&ambiguous, t0, 4).is_some());
        assert!(!health.is_up());
    }
}
