//! The OPTIONS prober: trunk health by SIP OPTIONS (SPEC V2, S4).
//!
//! Every `interval` each target gets an OPTIONS request, run as a client
//! non-INVITE transaction (retransmitted over UDP per §17.1.2). A probe succeeds
//! when a final response arrives within `timeout` and counts as alive: any final
//! response by default (the peer answered, even 404 or 503 says it is there),
//! or only 2xx if configured. It fails on no final answer within `timeout`, a
//! transport error, or (in "only 2xx" mode) a non-2xx answer. Successes and
//! failures feed a [`Health`] per target: down after `fall` consecutive failures,
//! back up after `rise` consecutive successes. Each change is an [`Event`] with
//! its cause and time (DESIGN.md, invariant 4).
//!
//! Sans-IO like the rest: the driver sends what [`Prober::poll_transmit`]
//! returns to the target's address, hands every response that arrives to
//! [`Prober::handle_response`] (which claims the ones that are probes), and
//! calls [`Prober::handle_timeout`] at [`Prober::poll_timeout`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotsite_core::{Event, EventKind, Health, HealthConfig, HealthState, Rng, Target};

use crate::message::{Branch, Method, NewRequest, Response, StatusCode, Uri};
use crate::transaction::{ClientNonInvite, TransactionConfig, TransactionEvent, TransactionKey};

/// Which answers mean "alive".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliveWhen {
    /// Any final response (200–699): the peer is there and talking.
    AnyFinal,
    /// Only 2xx.
    Success,
}

/// How targets are probed. Defaults: every 30 s, 5 s to answer, down after 3
/// failures, up after 2 successes, any final answer is alive, targets start up.
#[derive(Debug, Clone)]
pub struct ProberConfig {
    /// Time between the starts of two probes of one target.
    pub interval: Duration,
    /// How long a probe waits for a final answer (at most `interval`).
    pub timeout: Duration,
    /// `fall`: consecutive failures that take a target down; `rise`: consecutive
    /// successes that bring it back.
    pub health: HealthConfig,
    /// Which answers count as alive.
    pub alive: AliveWhen,
    /// The state targets start in (probing starts at once either way).
    pub initial: HealthState,
    /// Transaction timers and transport reliability.
    pub transaction: TransactionConfig,
    /// The transport named in Via (`UDP`, `TCP`, `TLS`).
    pub transport: String,
    /// `host[:port]` where answers should come (Via sent-by).
    pub sent_by: String,
    /// The From address of probes.
    pub from: Uri,
}

impl ProberConfig {
    /// Defaults for probes sent from `sent_by` as `from`.
    pub fn new(sent_by: &str, from: Uri) -> ProberConfig {
        ProberConfig {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            health: HealthConfig { rise: 2, fall: 3 },
            alive: AliveWhen::AnyFinal,
            initial: HealthState::Up,
            transaction: TransactionConfig::default(),
            transport: "UDP".into(),
            sent_by: sent_by.into(),
            from,
        }
    }

    /// Checks the bounds; errors name the setting.
    pub fn validate(&self) -> Result<(), ProberConfigError> {
        if self.interval.is_zero() {
            return Err(ProberConfigError::ZeroInterval);
        }
        if self.timeout.is_zero() || self.timeout > self.interval {
            return Err(ProberConfigError::Timeout {
                timeout: self.timeout,
                interval: self.interval,
            });
        }
        if self.health.rise == 0 || self.health.fall == 0 {
            return Err(ProberConfigError::ZeroThreshold);
        }
        Ok(())
    }
}

/// A [`ProberConfig`] out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProberConfigError {
    /// A zero interval would probe continuously.
    #[error("interval must be greater than zero")]
    ZeroInterval,
    /// The timeout must be positive and fit in the interval.
    #[error(
        "timeout ({timeout:?}) must be greater than zero and at most the interval ({interval:?})"
    )]
    Timeout {
        /// The configured timeout.
        timeout: Duration,
        /// The configured interval.
        interval: Duration,
    },
    /// Thresholds start at one.
    #[error("failure and recovery thresholds must be at least 1")]
    ZeroThreshold,
}

impl ProberConfigError {
    /// The setting the error is about, as named in configuration files.
    pub fn key(&self) -> &'static str {
        match self {
            ProberConfigError::ZeroInterval => "interval",
            ProberConfigError::Timeout { .. } => "timeout",
            ProberConfigError::ZeroThreshold => "thresholds",
        }
    }
}

/// Index of a target, in the order given to [`Prober::new`].
pub type TargetId = usize;

/// A probe to send: bytes for one target's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTransmit {
    /// Which target.
    pub target: TargetId,
    /// The OPTIONS request (or a retransmission of it).
    pub bytes: Bytes,
}

/// How one probe ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// A final answer that counts as alive.
    Alive {
        /// The status.
        status: StatusCode,
        /// From the first transmission to the answer.
        rtt: Duration,
    },
    /// A final answer that does not count (only in [`AliveWhen::Success`] mode).
    Rejected {
        /// The status.
        status: StatusCode,
    },
    /// No final answer within the timeout.
    NoAnswer,
    /// The transport could not send.
    TransportError,
}

impl ProbeOutcome {
    fn is_success(&self) -> bool {
        matches!(self, ProbeOutcome::Alive { .. })
    }

    fn describe(&self, timeout: Duration) -> String {
        match self {
            ProbeOutcome::Alive { status, rtt } => format!(
                "OPTIONS answered {status} {} in {} ms",
                status.canonical_reason(),
                rtt.as_millis()
            ),
            ProbeOutcome::Rejected { status } => format!(
                "OPTIONS answered {status} {} (only 2xx counts as alive)",
                status.canonical_reason()
            ),
            ProbeOutcome::NoAnswer => format!("no answer to OPTIONS within {timeout:?}"),
            ProbeOutcome::TransportError => "transport error sending OPTIONS".into(),
        }
    }
}

/// A snapshot of one target, for status output and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeStatus {
    /// Which target.
    pub target: Target,
    /// Its health.
    pub health: HealthState,
    /// Since when.
    pub since: Instant,
    /// How the last probe ended.
    pub last: Option<ProbeOutcome>,
    /// Probes started since the prober started.
    pub probes: u64,
}

struct InFlight {
    transaction: ClientNonInvite,
    key: TransactionKey,
    started: Instant,
    deadline: Instant,
}

struct TargetState {
    target: Target,
    uri: Uri,
    health: Health,
    call_id: String,
    cseq: u32,
    next_probe: Instant,
    probe: Option<InFlight>,
    last: Option<ProbeOutcome>,
    probes: u64,
    consecutive: u32,
}

/// Probes a set of targets. See the module docs.
pub struct Prober {
    config: ProberConfig,
    targets: Vec<TargetState>,
    rng: Rng,
    from_tag: String,
    transmits: VecDeque<ProbeTransmit>,
    events: VecDeque<Event>,
}

impl Prober {
    /// A prober over `targets` (each with the URI its OPTIONS go to), every
    /// one probed first at `now`. `seed` makes branches, tags and Call-IDs; it
    /// must differ between processes.
    pub fn new(
        config: ProberConfig,
        targets: Vec<(Target, Uri)>,
        seed: u64,
        now: Instant,
    ) -> Prober {
        let mut rng = Rng::new(seed);
        let from_tag = format!("{:016x}", rng.next_u64());
        let targets = targets
            .into_iter()
            .map(|(target, uri)| TargetState {
                call_id: format!("{:016x}.probe@{}", rng.next_u64(), config.sent_by),
                target,
                uri,
                health: Health::new(config.health, config.initial, now),
                cseq: 0,
                next_probe: now,
                probe: None,
                last: None,
                probes: 0,
                consecutive: 0,
            })
            .collect();
        let mut prober = Prober {
            config,
            targets,
            rng,
            from_tag,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        prober.handle_timeout(now);
        prober
    }

    /// Offers a response that arrived. Returns `true` if it answered a probe
    /// in flight (the driver then has nothing else to do with it).
    pub fn handle_response(&mut self, now: Instant, response: &Response) -> bool {
        let Some(key) = TransactionKey::for_response(response) else {
            return false;
        };
        let Some(id) = self
            .targets
            .iter()
            .position(|t| t.probe.as_ref().is_some_and(|p| p.key == key))
        else {
            return false;
        };
        if let Some(probe) = self.targets[id].probe.as_mut() {
            probe.transaction.handle_response(now, response.clone());
        }
        self.drive(id, now);
        true
    }

    /// The transport could not send to a target.
    pub fn handle_transport_error(&mut self, now: Instant, id: TargetId) {
        if let Some(probe) = self.targets.get_mut(id).and_then(|t| t.probe.as_mut()) {
            probe.transaction.handle_transport_error(now);
            self.drive(id, now);
        }
    }

    /// Starts due probes, retransmits, and ends probes past their timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        for id in 0..self.targets.len() {
            if let Some(probe) = self.targets[id].probe.as_mut() {
                probe.transaction.handle_timeout(now);
                self.drive(id, now);
            }
            let target = &self.targets[id];
            if target.probe.is_none() && target.next_probe <= now {
                self.start_probe(id, now);
            }
        }
    }

    /// Drains one probe's transaction and settles the probe if it is over.
    fn drive(&mut self, id: TargetId, now: Instant) {
        let alive = self.config.alive;
        let target = &mut self.targets[id];
        let Some(probe) = target.probe.as_mut() else {
            return;
        };
        while let Some(bytes) = probe.transaction.poll_transmit() {
            self.transmits
                .push_back(ProbeTransmit { target: id, bytes });
        }
        let mut outcome = None;
        while let Some(event) = probe.transaction.poll_event() {
            outcome = match event {
                TransactionEvent::Final(response) => {
                    let status = response.status;
                    Some(match alive {
                        AliveWhen::Success if !status.is_success() => {
                            ProbeOutcome::Rejected { status }
                        }
                        _ => ProbeOutcome::Alive {
                            status,
                            rtt: now - probe.started,
                        },
                    })
                }
                TransactionEvent::Timeout => Some(ProbeOutcome::NoAnswer),
                TransactionEvent::TransportError => Some(ProbeOutcome::TransportError),
                TransactionEvent::Provisional(_) | TransactionEvent::Ack(_) => outcome,
            };
        }
        if outcome.is_none() && now >= probe.deadline {
            outcome = Some(ProbeOutcome::NoAnswer);
        }
        if let Some(outcome) = outcome {
            self.settle(id, now, outcome);
        }
    }

    fn settle(&mut self, id: TargetId, now: Instant, outcome: ProbeOutcome) {
        let timeout = self.config.timeout;
        let target = &mut self.targets[id];
        // The transaction may live on (absorbing retransmissions); the probe
        // does not need it.
        target.probe = None;
        let success = outcome.is_success();
        let transition = if success {
            target.health.record_success(now)
        } else {
            target.health.record_failure(now)
        };
        let previous_success = target.last.as_ref().is_some_and(ProbeOutcome::is_success);
        target.consecutive = if target.last.is_none() || previous_success != success {
            1
        } else {
            target.consecutive + 1
        };
        let cause = format!(
            "{} ({} consecutive {})",
            outcome.describe(timeout),
            target.consecutive,
            if success { "successes" } else { "failures" }
        );
        target.last = Some(outcome);
        if let Some(t) = transition {
            self.events.push_back(Event {
                at: t.at,
                target: target.target.clone(),
                kind: EventKind::Health {
                    from: t.from,
                    to: t.to,
                    cause,
                },
            });
        }
    }

    fn start_probe(&mut self, id: TargetId, now: Instant) {
        let branch = Branch::generate(&mut self.rng);
        let target = &mut self.targets[id];
        target.cseq = target.cseq.wrapping_add(1).max(1);
        target.probes += 1;
        // The next probe starts one interval after this one, whatever happens.
        target.next_probe = now + self.config.interval;
        let request = NewRequest {
            method: Method::Options,
            uri: target.uri.clone(),
            from: self.config.from.clone(),
            from_tag: self.from_tag.clone(),
            to: target.uri.clone(),
            call_id: target.call_id.clone(),
            cseq: target.cseq,
            transport: self.config.transport.clone(),
            sent_by: self.config.sent_by.clone(),
            branch,
            max_forwards: 70,
            contact: None,
        }
        .build();
        let Some(key) = TransactionKey::client(&request) else {
            return;
        };
        target.probe = Some(InFlight {
            transaction: ClientNonInvite::new(now, request, self.config.transaction),
            key,
            started: now,
            deadline: now + self.config.timeout,
        });
        self.drive(id, now);
    }

    /// The next probe bytes to send.
    pub fn poll_transmit(&mut self) -> Option<ProbeTransmit> {
        self.transmits.pop_front()
    }

    /// The next health change.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Prober::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.targets
            .iter()
            .flat_map(|t| match &t.probe {
                Some(p) => [p.transaction.poll_timeout(), Some(p.deadline)],
                None => [Some(t.next_probe), None],
            })
            .flatten()
            .min()
    }

    /// A target's health.
    pub fn health(&self, id: TargetId) -> Option<HealthState> {
        self.targets.get(id).map(|t| t.health.state())
    }

    /// Targets in service now (SPEC V1: only these carry calls).
    pub fn usable(&self) -> impl Iterator<Item = TargetId> + '_ {
        self.targets
            .iter()
            .enumerate()
            .filter(|(_, t)| t.health.state().is_usable())
            .map(|(id, _)| id)
    }

    /// A snapshot of every target.
    pub fn status(&self) -> Vec<ProbeStatus> {
        self.targets
            .iter()
            .map(|t| ProbeStatus {
                target: t.target.clone(),
                health: t.health.state(),
                since: t.health.since(),
                last: t.last.clone(),
                probes: t.probes,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
