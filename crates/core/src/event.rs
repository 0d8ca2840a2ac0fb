//! The event every system emits.
//!
//! Every failover decision is an event with its cause and time (DESIGN.md,
//! invariant 4): logs, metrics and the API are all fed from these.

use std::time::{Duration, Instant};

use crate::{HealthState, Target};

/// Something that happened to a target, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When it happened, on the driver's monotonic clock.
    pub at: Instant,
    /// What it happened to.
    pub target: Target,
    /// What happened.
    pub kind: EventKind,
}

/// What happened. Variants are added as systems need them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// The target's health changed.
    Health {
        /// State before.
        from: HealthState,
        /// State after.
        to: HealthState,
        /// Why, in words an operator understands.
        cause: String,
    },
    /// A connection attempt to the target started.
    ConnectAttempt {
        /// 1 for the first attempt after the target went down.
        attempt: u32,
    },
    /// The next connection attempt is scheduled after this delay.
    RetryScheduled {
        /// How long until the attempt.
        after: Duration,
        /// Why the target is being retried.
        cause: String,
    },
    /// Work that was in flight when the target failed was handed back to the caller.
    WorkHandedBack {
        /// Items sent with no answer: the outcome is unknown (SPEC M8).
        ambiguous: usize,
        /// Items that never left: safe to send again anywhere.
        unsent: usize,
    },
    /// The target asked us to slow down (SPEC M14).
    Throttled {
        /// How long sending to the target is paused.
        pause: Duration,
    },
    /// One piece of work (a call) left the target for another one within its
    /// attempt (SPEC V1).
    Rerouted {
        /// What moved: a call's Call-ID.
        item: String,
        /// Where it went.
        to: Target,
        /// What the target did (`503 Service Unavailable`, `no reply within 2.0 s`).
        cause: String,
    },
    /// A DN (an agent's extension) lost its last phone registration, or
    /// registered again after that (SPEC S8).
    DnService {
        /// The DN.
        dn: String,
        /// In service after the change.
        in_service: bool,
        /// Why (`registration expired`, `unregistered`, `registered from 127.0.0.1:5062`).
        cause: String,
    },
    /// An agent logged in or out, or changed state (SPEC S1, S3, S7).
    Agent {
        /// The agent's id.
        agent: String,
        /// The DN the agent is (or was) logged in on.
        dn: String,
        /// The state after the change: `ready`, `not_ready`, `busy`,
        /// `after_call_work` or `logged_out`.
        state: &'static str,
        /// Why: a logout reason (`manual`, `supervisor`, `dr-force_logout`,
        /// `graceful_shutdown_logout`) or what moved the state.
        reason: String,
    },
    /// The site's mode changed: `peered`, `single_site` or `draining`
    /// (SPEC S3, S4, S7).
    SiteMode {
        /// The mode after the change.
        mode: &'static str,
        /// Why.
        cause: String,
    },
    /// A desktop's switchover machine decided (SPEC D7: every decision is
    /// available to monitoring), as the desktop reported it to the site:
    /// one event per report, which may hold several decisions (those taken
    /// while disconnected arrive together, at the next site).
    DesktopDecisions {
        /// The person signed in on the desktop.
        user: String,
        /// The decisions, oldest first.
        decisions: Vec<DesktopDecision>,
    },
    /// A call's recording moved through the pipeline (SPEC R2–R4): merged,
    /// signed and queued for upload (`processed`), or not (`failed`).
    Recording {
        /// The call's Call-ID.
        call_id: String,
        /// `processed` or `failed`.
        stage: String,
        /// What came of it (gaps, cloud used, upload job) or why it failed.
        detail: String,
    },
    /// An anchored call's media was released because no RTP came from
    /// either leg for the media timeout; the call's signalling is left alone
    /// (SPEC R5: silence is never taken for hold).
    MediaTimeout {
        /// The call's Call-ID.
        call_id: String,
        /// Why, in words.
        cause: String,
    },
}

/// One decision of a desktop's switchover machine (SPEC D7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesktopDecision {
    /// The decision: `connect`, `log_in`, `switch_over`, `warn`, …
    pub decision: String,
    /// Its reason code (`telephony_off_timeout`, …).
    pub reason: String,
    /// The site or listener it concerns, when it names one.
    pub about: Option<String>,
    /// When the desktop decided, wall-clock ms (it may have been
    /// disconnected then).
    pub decided_ms: i64,
}

impl EventKind {
    /// The kind's name in the API, metrics and logs (`health`, `throttled`, …).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Health { .. } => "health",
            EventKind::ConnectAttempt { .. } => "connect_attempt",
            EventKind::RetryScheduled { .. } => "retry_scheduled",
            EventKind::WorkHandedBack { .. } => "work_handed_back",
            EventKind::Throttled { .. } => "throttled",
            EventKind::Rerouted { .. } => "rerouted",
            EventKind::DnService {
                in_service: false, ..
            } => "dn_out_of_service",
            EventKind::DnService {
                in_service: true, ..
            } => "dn_back_in_service",
            EventKind::Agent {
                state: "logged_out",
                ..
            } => "agent_logout",
            EventKind::Agent { .. } => "agent_state",
            EventKind::SiteMode { .. } => "site_mode",
            EventKind::DesktopDecisions { .. } => "desktop_decisions",
            EventKind::Recording { stage, .. } if stage == "failed" => "recording_failed",
            EventKind::Recording { .. } => "recording_processed",
            EventKind::MediaTimeout { .. } => "media_timeout",
        }
    }

    /// Why, when the kind carries a cause.
    pub fn cause(&self) -> Option<&str> {
        match self {
            EventKind::Health { cause, .. }
            | EventKind::RetryScheduled { cause, .. }
            | EventKind::Rerouted { cause, .. }
            | EventKind::DnService { cause, .. }
            | EventKind::SiteMode { cause, .. }
            | EventKind::MediaTimeout { cause, .. } => Some(cause),
            EventKind::DesktopDecisions { decisions, .. } => {
                decisions.last().map(|d| d.reason.as_str())
            }
            EventKind::Agent { reason, .. } => Some(reason),
            EventKind::Recording { detail, .. } => Some(detail),
            EventKind::ConnectAttempt { .. }
            | EventKind::WorkHandedBack { .. }
            | EventKind::Throttled { .. } => None,
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            EventKind::Health { from, to, cause } => {
                write!(f, "{}: {from:?} -> {to:?} ({cause})", self.target)
            }
            EventKind::ConnectAttempt { attempt } => {
                write!(f, "{}: connect attempt {attempt}", self.target)
            }
            EventKind::RetryScheduled { after, cause } => {
                write!(f, "{}: retry in {after:.1?} ({cause})", self.target)
            }
            EventKind::WorkHandedBack { ambiguous, unsent } => write!(
                f,
                "{}: handed back {ambiguous} ambiguous and {unsent} unsent submits",
                self.target
            ),
            EventKind::Throttled { pause } => {
                write!(f, "{}: throttled, pausing {pause:.1?}", self.target)
            }
            EventKind::Rerouted { item, to, cause } => {
                write!(f, "{}: {item} moved to {to} ({cause})", self.target)
            }
            EventKind::DnService {
                dn,
                in_service,
                cause,
            } => {
                let state = if *in_service {
                    "back in service"
                } else {
                    "out of service"
                };
                write!(f, "{}: DN {dn} {state} ({cause})", self.target)
            }
            EventKind::Agent {
                agent,
                dn,
                state,
                reason,
            } => write!(
                f,
                "{}: agent {agent} on DN {dn} {state} ({reason})",
                self.target
            ),
            EventKind::SiteMode { mode, cause } => {
                write!(f, "{}: mode {mode} ({cause})", self.target)
            }
            EventKind::DesktopDecisions { user, decisions } => {
                write!(f, "{}: desktop of {user}:", self.target)?;
                for (i, d) in decisions.iter().enumerate() {
                    let about = d
                        .about
                        .as_deref()
                        .map(|a| format!(" {a}"))
                        .unwrap_or_default();
                    let sep = if i == 0 { " " } else { "; " };
                    write!(f, "{sep}{}{about} ({})", d.decision, d.reason)?;
                }
                Ok(())
            }
            EventKind::Recording {
                call_id,
                stage,
                detail,
            } => write!(f, "{}: call {call_id} {stage}: {detail}", self.target),
            EventKind::MediaTimeout { call_id, cause } => {
                write!(f, "{}: media of {call_id} timed out ({cause})", self.target)
            }
        }
    }
}
