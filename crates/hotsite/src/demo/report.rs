//! The report every scenario ends with: a common core, the failovers, and
//! the scenario's own figures.

use std::collections::HashMap;
use std::time::Duration;

use serde::ser::SerializeMap;
use serde::Serialize;
use serde_json::Value;
use std::process::ExitCode;

use super::Settings;

/// A scenario's outcome: the same core for every scenario, then its own
/// figures. `ok` is false when anything was lost or duplicated.
#[derive(Debug, Serialize)]
pub(super) struct Report {
    scenario: &'static str,
    #[serde(skip)]
    title: &'static str,
    ok: bool,
    messages: u64,
    accepted: u64,
    delivered: u64,
    lost: u64,
    duplicated: u64,
    failed: u64,
    duration_s: f64,
    throughput_msgs_per_s: f64,
    failovers: Vec<FailoverTiming>,
    /// The scenario's own figures, at the top level of the JSON, in order.
    #[serde(flatten)]
    extras: Extras,
    /// What the reader should know about the demo's settings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

/// Delivered, lost and duplicated, counted at the far end.
pub(super) struct Tally {
    delivered: u64,
    lost: u64,
    duplicated: u64,
}

impl Tally {
    /// From the index of every message that arrived (repeats included).
    pub(super) fn count(messages: u64, arrivals: impl IntoIterator<Item = u64>) -> Tally {
        let mut seen: HashMap<u64, u64> = HashMap::new();
        for index in arrivals {
            *seen.entry(index).or_default() += 1;
        }
        Tally {
            delivered: seen.len() as u64,
            lost: (0..messages).filter(|i| !seen.contains_key(i)).count() as u64,
            duplicated: seen.values().map(|n| n - 1).sum(),
        }
    }
}

impl Report {
    pub(super) fn new(
        settings: &Settings,
        title: &'static str,
        accepted: u64,
        tally: Tally,
        failed: u64,
        duration: Duration,
    ) -> Report {
        let duration_s = duration.as_secs_f64();
        Report {
            scenario: settings.scenario.name(),
            title,
            ok: tally.lost == 0 && tally.duplicated == 0,
            messages: settings.messages,
            accepted,
            delivered: tally.delivered,
            lost: tally.lost,
            duplicated: tally.duplicated,
            failed,
            duration_s,
            throughput_msgs_per_s: if duration_s > 0.0 {
                tally.delivered as f64 / duration_s
            } else {
                0.0
            },
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

    /// A figure that is a failure unless it is zero (a receipt delivered twice).
    pub(super) fn must_be_zero(&mut self, key: &str, value: u64) {
        self.ok &= value == 0;
        self.extra(key, value);
    }

    pub(super) fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// Nothing lost, nothing duplicated, nothing else that must be zero.
    pub(super) fn ok(&self) -> bool {
        self.ok
    }

    /// Messages that reached the far end.
    pub(super) fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The human form, on stdout.
    pub(super) fn print(&self) {
        let verdict = if self.ok { "OK" } else { "FAILED" };
        println!("hotsite demo {}: {} ({verdict})", self.scenario, self.title);
        let row = |label: &str, value: String| println!("  {label:<30} {value}");
        row("messages", self.messages.to_string());
        row("accepted (durable)", self.accepted.to_string());
        row("delivered", self.delivered.to_string());
        row("lost", self.lost.to_string());
        row("duplicated", self.duplicated.to_string());
        row("failed", self.failed.to_string());
        row(
            "throughput",
            format!(
                "{:.0} msg/s end to end over {:.1} s",
                self.throughput_msgs_per_s, self.duration_s
            ),
        );
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

/// A scenario's own figures, in the order it gave them.
#[derive(Debug, Default)]
pub(super) struct Extras(Vec<(String, Value)>);

impl Extras {
    pub(super) fn push(&mut self, key: &str, value: Value) {
        self.0.push((key.to_owned(), value));
    }

    /// One report line each, through `row(label, value)`.
    pub(super) fn print(&self, row: impl Fn(&str, String)) {
        for (key, value) in &self.0 {
            // `_s` keys are seconds.
            let (label, unit) = key
                .strip_suffix("_s")
                .map_or((key.as_str(), ""), |label| (label, " s"));
            let value = match value {
                Value::Null => "never".to_owned(),
                value => format!("{}{unit}", show(value)),
            };
            row(&label.replace('_', " "), value);
        }
    }
}

impl Serialize for Extras {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// A JSON value as a report line shows it.
fn show(value: &Value) -> String {
    match value {
        Value::Number(n) if n.is_f64() => format!("{:.2}", n.as_f64().unwrap_or_default()),
        Value::String(s) => s.clone(),
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| format!("{key} {}", show(value)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// One injected fault, what it hit, and how long hotsite took: `*_after_s`
/// measurements, each `null` (shown "never") when it did not happen.
#[derive(Debug)]
pub(super) struct FailoverTiming {
    fault: String,
    what: String,
    times: Vec<(&'static str, Option<f64>)>,
}

impl FailoverTiming {
    pub(super) fn new(fault: impl Into<String>, what: impl Into<String>) -> FailoverTiming {
        FailoverTiming {
            fault: fault.into(),
            what: what.into(),
            times: Vec::new(),
        }
    }

    pub(super) fn time(mut self, key: &'static str, seconds: Option<f64>) -> FailoverTiming {
        self.times.push((key, seconds));
        self
    }

    /// Its two lines of a report.
    pub(super) fn print(&self) {
        let times: Vec<String> = self
            .times
            .iter()
            .map(|(key, value)| {
                let label = key.trim_end_matches("_s").replace('_', " ");
                let value = value.map_or("never".to_owned(), |s| format!("{s:.2} s"));
                format!("{label} {value}")
            })
            .collect();
        println!("    {}: {}", self.what, self.fault);
        println!("      {}", times.join(", "));
    }
}

impl Serialize for FailoverTiming {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2 + self.times.len()))?;
        map.serialize_entry("fault", &self.fault)?;
        map.serialize_entry("what", &self.what)?;
        for (key, seconds) in &self.times {
            map.serialize_entry(key, seconds)?;
        }
        map.end()
    }
}

/// The report of a scenario with a report of its own (calls, recordings):
/// printed for people or as JSON, its verdict the exit code.
pub(super) trait OwnReport: Serialize {
    /// Whether the scenario kept its promises.
    fn ok(&self) -> bool;
    /// The human form, on stdout, in the other scenarios' layout.
    fn print(&self);
    /// Prints the report (JSON on stdout with `json`) and picks the exit code.
    fn finish(&self, json: bool) -> anyhow::Result<ExitCode> {
        if json {
            println!("{}", serde_json::to_string_pretty(self)?);
        } else {
            self.print();
        }
        Ok(if self.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
