//! Counters and gauges, rendered as Prometheus text at `/metrics`.
//!
//! Plain atomics: a handful of numbers does not need a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

macro_rules! counters {
    ($($name:ident: $help:expr;)* ; gauges: $($gauge:ident: $gauge_help:expr;)*) => {
        /// Every counter the gateway keeps.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(
                #[doc = $help]
                pub $name: AtomicU64,
            )*
            $(
                #[doc = $gauge_help]
                pub $gauge: AtomicU64,
            )*
            /// Counters with labels, by (name, labels).
            labeled: Mutex<BTreeMap<(&'static str, String), u64>>,
        }

        impl Metrics {
            /// Prometheus text exposition of the counters, plus `gauges`.
            pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
                let mut out = String::new();
                $(
                    let name = concat!("hotsite_", stringify!($name));
                    let _ = writeln!(out, "# HELP {name} {}", $help);
                    let _ = writeln!(out, "# TYPE {name} counter");
                    let _ = writeln!(out, "{name} {}", self.$name.load(Ordering::Relaxed));
                )*
                self.render_labeled(&mut out);
                $(
                    let name = concat!("hotsite_", stringify!($gauge));
                    let _ = writeln!(out, "# HELP {name} {}", $gauge_help);
                    let _ = writeln!(out, "# TYPE {name} gauge");
                    let _ = writeln!(out, "{name} {}", self.$gauge.load(Ordering::Relaxed));
                )*
                for (name, help, value) in gauges {
                    let _ = writeln!(out, "# HELP hotsite_{name} {help}");
                    let _ = writeln!(out, "# TYPE hotsite_{name} gauge");
                    let _ = writeln!(out, "hotsite_{name} {value}");
                }
                out
            }
        }
    };
}

counters! {
    messages_accepted_total: "Messages accepted through the API (durable).";
    messages_duplicate_total: "Messages refused as repeats of an idempotency key (SPEC M8).";
    messages_invalid_total: "Messages refused by validation.";
    messages_conflict_total: "Messages refused with 409: their idempotency key was used for a different message (SPEC M8).";
    submits_total: "submit_sm sent (first sends and resends).";
    messages_submitted_total: "Messages accepted by an SMSC.";
    messages_failed_total: "Messages failed for good.";
    submits_ambiguous_total: "Submits whose outcome was unknown (SPEC M8).";
    submits_retried_total: "Submits sent again after a temporary refusal.";
    inbound_received_total: "MO and receipts received on any bind (repeats included).";
    inbound_duplicate_total: "MO and receipts dropped as repeats (SPEC M8).";
    webhooks_delivered_total: "MO and receipts delivered to the application.";
    webhooks_failed_attempts_total: "Webhook attempts that did not get a 2xx.";
    bind_failovers_total: "Binds that went out of service.";
    messages_fallback_total: "Messages moved to the next hop of their route (SPEC M11).";
    reference_collisions_total: "Submits the provider took for a repeat of another message (same reference) and answered with that message's id; sent again (SPEC M16).";
    receipts_uncorrelated_delivered_total: "Receipts delivered to the application without a message: their id matched none within the correlation wait (SPEC M13).";
    http_requests_timed_out_total: "HTTP API requests cut off by api.request_timeout (answered 408 or 503).";
    ; gauges:
    http_connections_open: "HTTP API connections open (at most api.max_connections).";
}

/// Counters with labels: name, help.
const LABELED: &[(&str, &str)] = &[
    (
        "channel_sends_total",
        "Sends per channel and outcome (accepted, permanent, transport_failure, timeout, throttled, provider_error, ambiguous).",
    ),
    (
        "route_fallbacks_total",
        "Messages handed from one hop of a route to the next (SPEC M11).",
    ),
    (
        "http_connections_closed_total",
        "HTTP API connections closed by hotsite, by reason: idle (api.idle_timeout), header_timeout (api.header_timeout), evicted (to make room at api.max_connections), refused (503 at the cap, every connection busy).",
    ),
];

impl Metrics {
    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one from the gauge `gauge`.
    pub fn dec(gauge: &AtomicU64) {
        gauge.fetch_sub(1, Ordering::Relaxed);
    }

    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one to the labeled counter `name` (one of [`LABELED`]) with
    /// `labels` as `(key, value)` pairs.
    pub fn inc_labeled(&self, name: &'static str, labels: &[(&str, &str)]) {
        debug_assert!(LABELED.iter().any(|(known, _)| *known == name), "{name}");
        let mut text = String::new();
        for (i, (key, value)) in labels.iter().enumerate() {
            let separator = if i == 0 { "" } else { "," };
            let value = value.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = write!(text, "{separator}{key}=\"{value}\"");
        }
        let mut labeled = self.labeled.lock().unwrap_or_else(|e| e.into_inner());
        *labeled.entry((name, text)).or_default() += 1;
    }

    /// The labeled counter `name` with exactly `labels` (0 if never counted).
    pub fn labeled(&self, name: &'static str, labels: &[(&str, &str)]) -> u64 {
        let text: Vec<String> = labels
            .iter()
            .map(|(key, value)| format!("{key}=\"{value}\""))
            .collect();
        let labeled = self.labeled.lock().unwrap_or_else(|e| e.into_inner());
        labeled.get(&(name, text.join(","))).copied().unwrap_or(0)
    }

    fn render_labeled(&self, out: &mut String) {
        let labeled = self.labeled.lock().unwrap_or_else(|e| e.into_inner());
        for (name, help) in LABELED {
            let _ = writeln!(out, "# HELP hotsite_{name} {help}");
            let _ = writeln!(out, "# TYPE hotsite_{name} counter");
            for ((_, labels), value) in labeled.iter().filter(|((n, _), _)| n == name) {
                let _ = writeln!(out, "hotsite_{name}{{{labels}}} {value}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.messages_accepted_total, 3);
        let text = metrics.render(&[("binds_up", "Binds in service.", 4)]);
        assert!(text.contains(
            "# TYPE hotsite_messages_accepted_total counter\nhotsite_messages_accepted_total 3\n"
        ));
        assert!(text.contains("# TYPE hotsite_binds_up gauge\nhotsite_binds_up 4\n"));
    }

    #[test]
    fn renders_labeled_counters() {
        let metrics = Metrics::default();
        let labels = [("route", "chat"), ("from", "primary-chat"), ("to", "email")];
        metrics.inc_labeled("route_fallbacks_total", &labels);
        metrics.inc_labeled("route_fallbacks_total", &labels);
        assert_eq!(metrics.labeled("route_fallbacks_total", &labels), 2);
        let text = metrics.render(&[]);
        assert!(
            text.contains(
                "hotsite_route_fallbacks_total{route=\"chat\",from=\"primary-chat\",to=\"email\"} 2\n"
            ),
            "{text}"
        );
    }
}
