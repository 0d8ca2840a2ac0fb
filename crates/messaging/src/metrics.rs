//! The gateway's counters: plain atomics on the hot path, written to
//! `/metrics` at scrape time through the host's Prometheus encoder (names,
//! types, HELP and label escaping are the library's).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hotsite_host::metrics::{self, Encoder};

/// A labeled counter's labels, in the order given.
type Labels = Vec<(String, String)>;

macro_rules! counters {
    ($($name:ident: $help:expr;)*) => {
        /// Every counter the gateway keeps.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(
                #[doc = $help]
                pub $name: AtomicU64,
            )*
            /// Counters with labels, by (name, labels).
            labeled: Mutex<BTreeMap<(&'static str, Labels), u64>>,
        }

        impl Metrics {
            /// Writes every counter, labeled ones included, through the
            /// host's Prometheus encoder.
            pub fn encode_counters(&self, encoder: &mut Encoder) -> fmt::Result {
                $(
                    metrics::counter(encoder, stringify!($name), $help, self.$name.load(Ordering::Relaxed))?;
                )*
                self.encode_labeled(encoder)
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
    sends_expired_total: "Sends that had not started when their lease's send deadline passed (the channel's queue too slow: every bind down, throttled, or the process frozen): not sent, left for a later claim (SPEC M17).";
    leases_lost_total: "Messages and webhooks this gateway let go unsent: their lease passed to another gateway sharing the store, or ran short while renewals failed (SPEC M17).";
    receipts_uncorrelated_delivered_total: "Receipts delivered to the application without a message: their id matched none within the correlation wait (SPEC M13).";
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
];

impl Metrics {
    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one to the labeled counter `name` (one of [`LABELED`]) with
    /// `labels` as `(key, value)` pairs.
    pub fn inc_labeled(&self, name: &'static str, labels: &[(&str, &str)]) {
        debug_assert!(LABELED.iter().any(|(known, _)| *known == name), "{name}");
        let mut labeled = self.labeled.lock().unwrap_or_else(|e| e.into_inner());
        *labeled.entry((name, owned(labels))).or_default() += 1;
    }

    /// The labeled counter `name` with exactly `labels` (0 if never counted).
    pub fn labeled(&self, name: &'static str, labels: &[(&str, &str)]) -> u64 {
        let labeled = self.labeled.lock().unwrap_or_else(|e| e.into_inner());
        labeled.get(&(name, owned(labels))).copied().unwrap_or(0)
    }

    fn encode_labeled(&self, encoder: &mut Encoder) -> fmt::Result {
        let labeled = self.labeled.lock().unwrap_or_else(|e| e.into_inner());
        for (name, help) in LABELED {
            let samples = labeled
                .iter()
                .filter(|((n, _), _)| n == name)
                .map(|((_, labels), value)| (labels.clone(), *value));
            metrics::counter_family(encoder, name, help, samples)?;
        }
        Ok(())
    }
}

fn owned(labels: &[(&str, &str)]) -> Labels {
    labels
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Counters(Metrics);

    impl metrics::Collector for Counters {
        fn encode(&self, mut encoder: Encoder) -> fmt::Result {
            self.0.encode_counters(&mut encoder)
        }
    }

    fn render(metrics: Metrics) -> String {
        let mut registry = metrics::registry();
        registry.register_collector(Box::new(Counters(metrics)));
        metrics::render(&registry).unwrap()
    }

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.messages_accepted_total, 3);
        let text = render(metrics);
        assert!(
            text.contains(
                "# TYPE hotsite_messages_accepted counter\nhotsite_messages_accepted_total 3\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn renders_labeled_counters() {
        let metrics = Metrics::default();
        let labels = [("route", "chat"), ("from", "primary-chat"), ("to", "email")];
        metrics.inc_labeled("route_fallbacks_total", &labels);
        metrics.inc_labeled("route_fallbacks_total", &labels);
        assert_eq!(metrics.labeled("route_fallbacks_total", &labels), 2);
        let text = render(metrics);
        assert!(
            text.contains(
                "hotsite_route_fallbacks_total{route=\"chat\",from=\"primary-chat\",to=\"email\"} 2\n"
            ),
            "{text}"
        );
    }
}
