//! `/metrics`: one Prometheus registry for the whole process.
//!
//! Every system registers what it measures at start
//! ([`crate::System::register_metrics`]): live counters and gauges of
//! `prometheus-client`, or a [`Collector`] that reads the system's state at
//! scrape time. The helpers below write one family from such a reading, so
//! that a collector states only names, help and values; names, `# TYPE`,
//! `# HELP`, the counters' `_total` suffix and label escaping are the
//! library's.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};

pub use prometheus_client::collector::Collector;
pub use prometheus_client::encoding::DescriptorEncoder as Encoder;
pub use prometheus_client::registry::Registry;

/// The process's registry: every metric is named `hotsite_…`.
pub fn registry() -> Registry {
    Registry::with_prefix("hotsite")
}

/// The registry as OpenMetrics text.
pub fn render(registry: &Registry) -> Result<String, fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The name a counter is registered under: without `_total`, which the
/// encoder appends to every counter sample.
fn counter_name(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

/// One counter without labels, read at scrape time. `name` may end in
/// `_total` (as its samples will).
pub fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let counter = ConstCounter::new(value);
    let metric =
        encoder.encode_descriptor(counter_name(name), help, None, counter.metric_type())?;
    counter.encode(metric)
}

/// One gauge without labels, read at scrape time.
pub fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> fmt::Result {
    let gauge = ConstGauge::new(value);
    let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
    gauge.encode(metric)
}

/// A counter family: one sample per label set. Nothing is written when
/// `samples` is empty (a family with no sample says nothing useful).
pub fn counter_family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let samples = samples.into_iter().map(|(l, v)| (l, ConstCounter::new(v)));
    family(encoder, counter_name(name), help, samples)
}

/// A gauge family: one sample per label set; nothing when `samples` is empty.
pub fn gauge_family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, i64)>,
) -> fmt::Result {
    let samples = samples.into_iter().map(|(l, v)| (l, ConstGauge::new(v)));
    family(encoder, name, help, samples)
}

/// One family of `M`s, its type taken from the first sample.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, M)>,
) -> fmt::Result {
    let mut samples = samples.into_iter().peekable();
    let Some((_, first)) = samples.peek() else {
        return Ok(());
    };
    let mut family = encoder.encode_descriptor(name, help, None, first.metric_type())?;
    for (labels, metric) in samples {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The HTTP server's own measures (DESIGN.md invariant 6).
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerMetrics {
    pub(crate) connections_open: Gauge,
    pub(crate) connections_closed: Family<[(&'static str, &'static str); 1], Counter>,
    pub(crate) requests_timed_out: Counter,
}

impl ServerMetrics {
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_connections_open",
            "HTTP API connections open (at most api.max_connections).",
            self.connections_open.clone(),
        );
        registry.register(
            "http_connections_closed",
            "HTTP API connections closed by hotsite, by reason: idle (api.idle_timeout), header_timeout (api.header_timeout), evicted (to make room at api.max_connections), refused (503 at the cap, every connection busy).",
            self.connections_closed.clone(),
        );
        registry.register(
            "http_requests_timed_out",
            "HTTP API requests cut off by api.request_timeout (answered 408 or 503).",
            self.requests_timed_out.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Sample;

    impl Collector for Sample {
        fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
            counter(&mut encoder, "things_total", "Things done.", 3)?;
            gauge(&mut encoder, "depth", "How deep.", 7)?;
            gauge_family(
                &mut encoder,
                "up",
                "Whether a target is up.",
                [([("trunk", "a \"quoted\" \\ name\n")], 1)],
            )?;
            counter_family::<[(&str, &str); 1]>(&mut encoder, "empty_total", "None.", [])
        }
    }

    /// Names, types, the `_total` suffix and label escaping come from the
    /// library: a trunk named with quotes, a backslash and a newline is
    /// written as one valid label value.
    #[test]
    fn collectors_write_valid_families() {
        let mut registry = registry();
        registry.register_collector(Box::new(Sample));
        let text = render(&registry).unwrap();
        assert!(text.contains("# TYPE hotsite_things counter\n"), "{text}");
        assert!(text.contains("hotsite_things_total 3\n"), "{text}");
        assert!(
            text.contains("# TYPE hotsite_depth gauge\nhotsite_depth 7\n"),
            "{text}"
        );
        assert!(
            text.contains(r#"hotsite_up{trunk="a \"quoted\" \\ name\n"} 1"#),
            "{text}"
        );
        assert!(!text.contains("empty"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
