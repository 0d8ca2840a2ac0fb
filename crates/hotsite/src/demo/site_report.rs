//! The report of the site scenarios (`site-failure`, `link-failure`,
//! `graceful-shutdown`; SPEC S2, S3, S4, S7): calls, not messages, like
//! `trunk-failover`'s, counted by phase of the run (before the fault, during
//! it, after it), each phase with the answer its calls were promised. Then
//! the failovers and the scenario's own figures, in the message report's
//! layout (`Extras`, `FailoverTiming`).
//!
//! `ok` is false, and the demo exits non-zero, when a call got another answer
//! than its phase promised (`unexpected`), when a call was left in progress
//! where nothing allows it, or when one of the scenario's own checks failed
//! (an agent logged in at two sites, a call forwarded over a cut link, …).

use std::collections::BTreeMap;
use std::time::Duration;

use hotsite_lab::CallRecord;
use serde::Serialize;
use serde_json::Value;

use super::report::{Extras, FailoverTiming};
use super::Settings;

/// A site scenario's outcome.
#[derive(Debug, Serialize)]
pub(super) struct SiteReport {
    scenario: &'static str,
    #[serde(skip)]
    title: &'static str,
    ok: bool,
    /// Calls the gateway was to place, over every phase.
    calls: u64,
    /// Calls answered 2xx.
    completed: u64,
    /// Calls not answered 2xx (including the ones a phase expects to be
    /// refused, such as 603 while draining).
    failed: u64,
    /// Calls that got another answer than their phase promised (or none).
    unexpected: u64,
    /// Final answers over every phase (`none`: no final answer; `not placed`).
    statuses: BTreeMap<String, u64>,
    duration_s: f64,
    calls_per_s: f64,
    phases: Vec<Phase>,
    failovers: Vec<FailoverTiming>,
    /// The scenario's own figures, at the top level of the JSON, in order.
    #[serde(flatten)]
    extras: Extras,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

/// One phase of the gateway's traffic: where its calls went and what they got.
#[derive(Debug, Serialize)]
pub(super) struct Phase {
    phase: &'static str,
    /// The site(s) the calls were sent to.
    to: String,
    /// The final answer every call of the phase was promised.
    expected: u16,
    calls: u64,
    placed: u64,
    completed: u64,
    statuses: BTreeMap<String, u64>,
    /// Calls with another final answer, or none, or not placed (calls still
    /// in progress where that is allowed are `in_progress_at_end` instead).
    unexpected: u64,
    /// Calls not over when the phase ended: no final answer yet, or answered
    /// and the hangup unanswered.
    in_progress_at_end: u64,
    /// Whether calls in progress at the end are allowed: a killed site's
    /// (SPEC S2: calls in progress at the failed site may be lost).
    in_progress_may_be_lost: bool,
}

impl Phase {
    /// `calls` calls were to be placed to `to`, each answered `expected`;
    /// `records` is how they went. With `may_be_lost`, a call still in
    /// progress at the end is no broken promise.
    pub(super) fn new(
        phase: &'static str,
        to: &str,
        expected: u16,
        calls: u64,
        records: &[CallRecord],
        may_be_lost: bool,
    ) -> Phase {
        let mut statuses = BTreeMap::new();
        let mut unexpected = 0;
        let mut in_progress = 0;
        for record in records {
            let key = record.status.map_or("none".to_owned(), |s| s.to_string());
            *statuses.entry(key).or_default() += 1;
            if !record.finished {
                in_progress += 1;
            }
            let as_promised = record.status == Some(expected);
            let lost_as_allowed = may_be_lost && !record.finished;
            if !as_promised && !lost_as_allowed {
                unexpected += 1;
            }
        }
        let placed = records.len() as u64;
        if placed < calls {
            *statuses.entry("not placed".to_owned()).or_default() += calls - placed;
            unexpected += calls - placed;
        }
        Phase {
            phase,
            to: to.to_owned(),
            expected,
            calls,
            placed,
            completed: records.iter().filter(|r| r.answered()).count() as u64,
            statuses,
            unexpected,
            in_progress_at_end: in_progress,
            in_progress_may_be_lost: may_be_lost,
        }
    }

    /// Every call got what it was promised.
    fn ok(&self) -> bool {
        self.unexpected == 0 && (self.in_progress_may_be_lost || self.in_progress_at_end == 0)
    }
}

impl SiteReport {
    /// The report's core from the phases; `duration` is the traffic's.
    pub(super) fn new(
        settings: &Settings,
        title: &'static str,
        phases: Vec<Phase>,
        duration: Duration,
    ) -> SiteReport {
        let mut statuses = BTreeMap::new();
        for phase in &phases {
            for (status, n) in &phase.statuses {
                *statuses.entry(status.clone()).or_default() += n;
            }
        }
        let calls: u64 = phases.iter().map(|p| p.calls).sum();
        let placed: u64 = phases.iter().map(|p| p.placed).sum();
        let completed: u64 = phases.iter().map(|p| p.completed).sum();
        let duration_s = duration.as_secs_f64();
        SiteReport {
            scenario: settings.scenario.name(),
            title,
            ok: phases.iter().all(Phase::ok),
            calls,
            completed,
            failed: calls - completed,
            unexpected: phases.iter().map(|p| p.unexpected).sum(),
            statuses,
            duration_s,
            calls_per_s: if duration_s > 0.0 {
                placed as f64 / duration_s
            } else {
                0.0
            },
            phases,
            failovers: Vec::new(),
            extras: Extras::default(),
            notes: Vec::new(),
        }
    }

    pub(super) fn failover(&mut self, failover: FailoverTiming) {
        self.failovers.push(failover);
    }

    pub(super) fn extra(&mut self, key: &str, value: impl Into<Value>) {
        self.extras.push(key, value.into());
    }

    /// A figure that is a broken promise unless it is zero.
    pub(super) fn must_be_zero(&mut self, key: &str, value: u64) {
        self.ok &= value == 0;
        self.extra(key, value);
    }

    /// A check that is a broken promise unless it holds.
    pub(super) fn must_hold(&mut self, key: &str, holds: bool) {
        self.ok &= holds;
        self.extra(key, holds);
    }

    pub(super) fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }
}

impl super::report::OwnReport for SiteReport {
    fn ok(&self) -> bool {
        self.ok
    }

    fn print(&self) {
        let verdict = if self.ok { "OK" } else { "FAILED" };
        println!("hotsite demo {}: {} ({verdict})", self.scenario, self.title);
        let row = |label: &str, value: String| println!("  {label:<30} {value}");
        row("calls", self.calls.to_string());
        row("completed", self.completed.to_string());
        row("failed", self.failed.to_string());
        row("unexpected", self.unexpected.to_string());
        row("final statuses", list(&self.statuses));
        row(
            "throughput",
            format!(
                "{:.0} calls/s over {:.1} s",
                self.calls_per_s, self.duration_s
            ),
        );
        println!("  phases:");
        for phase in &self.phases {
            let in_progress = match (phase.in_progress_at_end, phase.in_progress_may_be_lost) {
                (0, _) => String::new(),
                (n, true) => format!("; {n} in progress at the end (may be lost)"),
                (n, false) => format!("; {n} in progress at the end"),
            };
            println!(
                "    {} (to {}): {} calls, {} completed, expected {}: {}{in_progress}; {} unexpected",
                phase.phase,
                phase.to,
                phase.calls,
                phase.completed,
                phase.expected,
                list(&phase.statuses),
                phase.unexpected
            );
        }
        self.extras.print(row);
        println!("  failovers:");
        for failover in &self.failovers {
            failover.print();
        }
        for note in &self.notes {
            println!("  note: {note}");
        }
    }
}

/// `key: value, …`.
fn list(map: &BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(key, value)| format!("{key}: {value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
