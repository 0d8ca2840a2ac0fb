//! The messaging gateway as one of the host's systems: its keys of
//! `/v1/status`, its part of `/v1/health`, its metrics and its shutdown.

use std::fmt;
use std::sync::{Arc, Mutex};

use hotsite_core::HealthState;
use hotsite_host::metrics::{self, Collector, Encoder, Registry};
use hotsite_host::{BoxFuture, Health, System};
use hotsite_smpp::driver::{BindStatus, SmppClient};
use hotsite_store::StoreStats;
use serde_json::{json, Map, Value};

use crate::gateway::{GatewayHandle, GatewayView, SYSTEM};

/// Bind events kept in `/v1/status`'s `recent_events`.
const RECENT_EVENTS: usize = 50;

/// What the last refresh before a scrape read from the store.
#[derive(Debug, Default)]
pub(crate) struct Scraped(Mutex<StoreStats>);

impl System for GatewayHandle {
    fn name(&self) -> &'static str {
        SYSTEM
    }

    fn status(&self) -> BoxFuture<'_, Map<String, Value>> {
        Box::pin(async move {
            let stats = (self.stats)().await;
            let binds: Vec<Value> = bind_status(self.view.client.as_ref())
                .iter()
                .map(|bind| {
                    json!({
                        "smsc": bind.pool.target.to_string(),
                        "address": bind.address,
                        "health": format!("{:?}", bind.pool.health),
                        "in_flight": bind.in_flight,
                        "bind_attempts": bind.pool.bind_attempts,
                        "last_failure": bind.pool.last_failure,
                    })
                })
                .collect();
            let channels: Map<String, Value> = self
                .view
                .channel_status
                .iter()
                .map(|(name, status)| (name.clone(), status()))
                .collect();
            let mut body = Map::new();
            body.insert("binds".into(), json!(binds));
            body.insert("channels".into(), Value::Object(channels));
            body.insert("routes".into(), json!(self.routes.names()));
            body.insert("default_route".into(), json!(self.routes.default_name()));
            body.insert("recent_events".into(), json!(self.recent_events()));
            // Unreadable store: the rest of the status still answers, with the
            // store marked (health answers 503 for it).
            let store = match stats {
                Ok(stats) => {
                    body.insert("queue".into(), json!({ "queued": stats.queued, "submitted": stats.submitted, "final": stats.final_states, "failed": stats.failed }));
                    body.insert(
                        "inbound".into(),
                        json!({
                            "pending": stats.inbound_pending,
                            "total": stats.inbound_total,
                            "receipts_uncorrelated": stats.receipts_uncorrelated,
                        }),
                    );
                    json!(storage_state(&stats))
                }
                Err(error) => json!(format!("unavailable: {error}")),
            };
            body.insert("store".into(), store);
            body
        })
    }

    fn health(&self) -> BoxFuture<'_, Health> {
        Box::pin(async move {
            let binds = bind_status(self.view.client.as_ref());
            let up = binds
                .iter()
                .filter(|b| b.pool.health == HealthState::Up)
                .count();
            // A full store still delivers what it accepted but refuses new work
            // (507): not ready, so a load balancer sends new messages elsewhere.
            let (ready, store) = match (self.stats)().await {
                Ok(stats) => (!stats.storage_full, storage_state(&stats)),
                Err(_) => (false, "unavailable"),
            };
            let mut fields = Map::new();
            fields.insert("store".into(), json!(store));
            fields.insert("binds_up".into(), json!(up));
            fields.insert("binds".into(), json!(binds.len()));
            Health { ready, fields }
        })
    }

    fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(GatewayCollector {
            view: self.view.clone(),
            scraped: self.scraped.clone(),
        }));
    }

    fn refresh_metrics(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // Unreadable: the gauges keep their last values; health says why.
            if let Ok(stats) = (self.stats)().await {
                *self.scraped.0.lock().unwrap_or_else(|e| e.into_inner()) = stats;
            }
        })
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(GatewayHandle::shutdown(*self))
    }
}

impl GatewayHandle {
    /// The latest bind and URL health changes, handed-back work and throttling,
    /// oldest first, from the host's event stream.
    fn recent_events(&self) -> Vec<Value> {
        self.events
            .bus()
            .recent_where(RECENT_EVENTS, |record| {
                record.system == SYSTEM
                    && matches!(record.kind, "health" | "work_handed_back" | "throttled")
            })
            .iter()
            .map(|record| json!({ "at_ms": record.at_ms, "event": record.text }))
            .collect()
    }
}

/// The SMPP binds' status; empty without SMPP.
fn bind_status(client: Option<&SmppClient>) -> Vec<BindStatus> {
    client.map(SmppClient::status).unwrap_or_default()
}

/// The store's state as health and status say it (DESIGN.md invariant 1).
fn storage_state(stats: &StoreStats) -> &'static str {
    if stats.storage_full {
        "degraded: storage full"
    } else {
        "ok"
    }
}

/// Whole seconds since `oldest_ms` (a queued message's acceptance) at
/// `now_ms`; 0 without one, and never negative (a wall clock stepped back).
fn queue_age_seconds(oldest_ms: Option<i64>, now_ms: i64) -> i64 {
    oldest_ms.map_or(0, |at| now_ms.saturating_sub(at).max(0) / 1000)
}

/// Writes the gateway's metrics at scrape time: its counters, the binds, the
/// store's depth (as of the refresh just before) and the HTTP sites' health.
struct GatewayCollector {
    view: GatewayView,
    scraped: Arc<Scraped>,
}

impl fmt::Debug for GatewayCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayCollector").finish_non_exhaustive()
    }
}

impl Collector for GatewayCollector {
    fn encode(&self, mut encoder: Encoder) -> fmt::Result {
        let encoder = &mut encoder;
        self.view.metrics.encode_counters(encoder)?;
        let binds = bind_status(self.view.client.as_ref());
        let up = binds
            .iter()
            .filter(|b| b.pool.health == HealthState::Up)
            .count();
        metrics::gauge(encoder, "binds_up", "SMPP binds in service.", up as i64)?;
        metrics::gauge_family(
            encoder,
            "bind_up",
            "Whether the bind to an SMSC instance is in service (SPEC M4), by provider site and instance.",
            binds.iter().map(|b| {
                (
                    [
                        ("site", b.pool.target.site.as_str()),
                        ("smsc", &*b.pool.target.name),
                    ],
                    i64::from(b.pool.health == HealthState::Up),
                )
            }),
        )?;
        metrics::gauge(
            encoder,
            "binds",
            "SMPP binds configured.",
            binds.len() as i64,
        )?;
        let stats = *self.scraped.0.lock().unwrap_or_else(|e| e.into_inner());
        metrics::gauge(
            encoder,
            "queue_depth",
            "Messages waiting to be submitted.",
            stats.queued as i64,
        )?;
        metrics::gauge(
            encoder,
            "queue_oldest_age_seconds",
            "How long the longest-waiting queued message has waited since it was accepted (SPEC M3, M7: kept queued while no endpoint takes it); 0 with an empty queue.",
            queue_age_seconds(stats.oldest_queued_at_ms, crate::clock::now_ms()),
        )?;
        metrics::gauge(
            encoder,
            "inbound_pending",
            "MO and receipts stored and not yet delivered to the application's webhook (SPEC M8, M13, M15).",
            stats.inbound_pending as i64,
        )?;
        metrics::gauge(
            encoder,
            "receipts_uncorrelated",
            "Receipts stored that match no message (SPEC M13).",
            stats.receipts_uncorrelated as i64,
        )?;
        metrics::gauge(
            encoder,
            "storage_full",
            "1 while the store refuses new work for lack of space (invariant 1).",
            i64::from(stats.storage_full),
        )?;
        self.encode_channels(encoder)
    }
}

impl GatewayCollector {
    /// Per HTTP aggregator: sites up, and the alert raised when every site
    /// failed (SPEC M3); per digital or e-mail channel: its endpoint in service.
    fn encode_channels(&self, encoder: &mut Encoder) -> fmt::Result {
        let mut up = Vec::new();
        let mut alert = Vec::new();
        let mut passive = Vec::new();
        for (name, status) in &self.view.channel_status {
            let status = status();
            if let Some(kind) = status["kind"].as_str() {
                passive.push((
                    vec![("channel", name.clone()), ("kind", kind.to_owned())],
                    i64::from(status["health"] == "up"),
                ));
                continue;
            }
            let Some(urls) = status["urls"].as_array() else {
                continue;
            };
            for url in urls {
                let site = url["site"].as_str().unwrap_or_default().to_owned();
                up.push((
                    vec![("channel", name.clone()), ("site", site)],
                    i64::from(url["up"] == true),
                ));
            }
            alert.push((
                vec![("channel", name.clone())],
                i64::from(status["all_down_alert"] == true),
            ));
        }
        metrics::gauge_family(
            encoder,
            "http_site_up",
            "Whether an HTTP aggregator's site is in service (SPEC M3, M12).",
            up,
        )?;
        metrics::gauge_family(
            encoder,
            "http_all_sites_down",
            "1 while every site of an HTTP aggregator has failed (SPEC M3 alert).",
            alert,
        )?;
        metrics::gauge_family(
            encoder,
            "channel_up",
            "Whether a digital or e-mail channel's endpoint is in service, as its sends say: out after 3 failed sends in a row, back after one that got through (SPEC M10).",
            passive,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_age_is_whole_seconds_since_the_oldest_and_zero_without_one() {
        assert_eq!(queue_age_seconds(None, 1_000_000), 0);
        assert_eq!(queue_age_seconds(Some(1_000_000), 1_000_000), 0);
        assert_eq!(queue_age_seconds(Some(1_000_000), 1_301_999), 301);
        assert_eq!(queue_age_seconds(Some(2_000_000), 1_000_000), 0);
    }
}
