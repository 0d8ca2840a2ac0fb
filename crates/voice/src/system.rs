//! The voice proxy as one of the host's systems: `trunks` in `/v1/status`
//! and `GET /v1/trunks`, its part of `/v1/health`, its metrics (SPEC V2, V3)
//! and its shutdown.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use hotsite_host::metrics::{self, Collector, Encoder, Registry};
use hotsite_host::{BoxFuture, Health, HttpRoutes, System};
use serde_json::{json, Map, Value};

use crate::driver::{GroupTrunks, MediaMetrics, TrunkStatusView, VoiceHandle, VoiceMetrics};

/// The name of this system's events and status section.
pub const SYSTEM: &str = "voice";

type StatusReader = Arc<dyn Fn() -> Vec<TrunkStatusView> + Send + Sync>;
type MetricsReader = Arc<dyn Fn() -> Option<VoiceMetrics> + Send + Sync>;

impl System for VoiceHandle {
    fn name(&self) -> &'static str {
        SYSTEM
    }

    fn status(&self) -> BoxFuture<'_, Map<String, Value>> {
        let trunks = trunks_json(&VoiceHandle::status(self));
        let media = self.metrics().media.map(|m| media_json(&m));
        Box::pin(async move {
            let mut section = Map::new();
            section.insert("trunks".into(), trunks);
            if let Some(media) = media {
                section.insert("media".into(), media);
            }
            section
        })
    }

    fn health(&self) -> BoxFuture<'_, Health> {
        let trunks = VoiceHandle::status(self);
        Box::pin(async move {
            let mut fields = Map::new();
            let in_service = trunks.iter().filter(|t| t.in_service).count();
            fields.insert("trunks_in_service".into(), json!(in_service));
            fields.insert("trunks".into(), json!(trunks.len()));
            // Calls that find no trunk are answered by the proxy itself (503);
            // new messages and other systems' work are unaffected.
            Health {
                ready: true,
                fields,
            }
        })
    }

    fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(VoiceCollector {
            status: Arc::new(self.status_reader()),
            metrics: Arc::new(self.metrics_reader()),
            groups: self.groups(),
        }));
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(VoiceHandle::shutdown(*self))
    }
}

/// `GET /v1/trunks` (token): the trunks as `/v1/status` shows them.
pub(crate) fn routes(handle: &VoiceHandle) -> HttpRoutes {
    let status: StatusReader = Arc::new(handle.status_reader());
    let api = Router::new().route(
        "/v1/trunks",
        get(move || {
            let trunks = trunks_json(&status());
            async move { Json(json!({ "trunks": trunks })) }
        }),
    );
    HttpRoutes {
        api,
        open: Router::new(),
        openapi: serde_json::from_str(include_str!("openapi.json"))
            .expect("voice's openapi.json is JSON"),
    }
}

/// The trunks in `/v1/status` (`trunks`, SPEC V2, V3): state, cause, since
/// when, regions, counters.
fn trunks_json(trunks: &[TrunkStatusView]) -> Value {
    Value::Array(trunks.iter().map(trunk_json).collect())
}

fn trunk_json(trunk: &TrunkStatusView) -> Value {
    let since_ms = trunk
        .since
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    json!({
        "name": trunk.name,
        "carrier": trunk.carrier,
        "address": trunk.address.to_string(),
        "transport": trunk.transport.name(),
        "in_service": trunk.in_service,
        "since_ms": since_ms,
        "causes": trunk.causes.iter().map(|c| format!("{c:?}").to_lowercase()).collect::<Vec<_>>(),
        "detail": trunk.detail,
        "media_region": trunk.media_region,
        "failover_region": trunk.failover_region,
        "registered": trunk.registered,
        "attempts": trunk.stats.attempts,
        "answered": trunk.stats.answered,
        "failed_over": trunk.stats.failed_over,
        "no_reply": trunk.stats.no_reply,
    })
}

/// The media relay in `/v1/status` (`media`, when a group anchors): calls
/// anchored, ports, packets per direction, drops, latches, timeouts.
fn media_json(media: &MediaMetrics) -> Value {
    let (s, r) = (&media.sessions, &media.relay);
    json!({
        "calls": s.sessions,
        "anchored": s.anchored,
        "sdp_rejected": s.sdp_rejected,
        "sdp_unanchored": s.sdp_unanchored,
        "ports_exhausted": s.ports_exhausted,
        "srtp_unrecordable": s.srtp_unrecordable,
        "offers_refused": s.offers_refused,
        "timeouts": s.timeouts,
        "port_pairs": {
            "total": s.ports.total,
            "free": s.ports.free,
            "ready": s.ports.ready,
            "in_use": s.ports.in_use,
            "resting": s.ports.resting,
        },
        "bind_failures": s.bind_failures,
        "packets_a_to_b": r.packets_a_to_b,
        "bytes_a_to_b": r.bytes_a_to_b,
        "packets_b_to_a": r.packets_b_to_a,
        "bytes_b_to_a": r.bytes_b_to_a,
        "refused": r.refused,
        "refused_foreign": r.refused_foreign,
        "undeliverable": r.undeliverable,
        "latches": r.latches,
        "relatches": r.relatches,
    })
}

/// The media relay's metrics (`hotsite_voice_media_*`).
fn encode_media(encoder: &mut Encoder, media: &MediaMetrics) -> fmt::Result {
    let (s, r) = (&media.sessions, &media.relay);
    metrics::gauge(
        encoder,
        "voice_media_calls",
        "Calls whose media is anchored now.",
        s.sessions as i64,
    )?;
    metrics::gauge(
        encoder,
        "voice_media_port_pairs_in_use",
        "RTP/RTCP port pairs held by anchored calls.",
        s.ports.in_use as i64,
    )?;
    metrics::gauge(
        encoder,
        "voice_media_port_pairs_free",
        "RTP/RTCP port pairs free or bound ahead for the next calls.",
        (s.ports.free + s.ports.ready) as i64,
    )?;
    metrics::counter_family(
        encoder,
        "voice_media_packets",
        "Datagrams relayed, by direction (a = caller side, b = trunk side).",
        [
            ([("direction", "a_to_b")], r.packets_a_to_b),
            ([("direction", "b_to_a")], r.packets_b_to_a),
        ],
    )?;
    metrics::counter_family(
        encoder,
        "voice_media_bytes",
        "Bytes relayed, by direction.",
        [
            ([("direction", "a_to_b")], r.bytes_a_to_b),
            ([("direction", "b_to_a")], r.bytes_b_to_a),
        ],
    )?;
    metrics::counter_family(
        encoder,
        "voice_media_dropped",
        "Datagrams not relayed: refused (not from the latched source), foreign_source (an IP the SDP did not name, strict_source) or undeliverable.",
        [
            ([("reason", "refused")], r.refused),
            ([("reason", "foreign_source")], r.refused_foreign),
            ([("reason", "undeliverable")], r.undeliverable),
        ],
    )?;
    metrics::counter_family(
        encoder,
        "voice_media_latches",
        "Sockets latched to a far end's source; relatched: a new source after silence (handover).",
        [
            ([("kind", "latched")], r.latches),
            ([("kind", "relatched")], r.relatches),
        ],
    )?;
    let counters: [(&str, &str, u64); 4] = [
        (
            "voice_media_timeouts_total",
            "Anchored calls whose media timed out (no RTP from either leg).",
            s.timeouts,
        ),
        (
            "voice_media_sdp_rejected_total",
            "INVITEs and in-dialog requests refused 488 for an SDP that could not be anchored.",
            s.sdp_rejected,
        ),
        (
            "voice_media_ports_exhausted_total",
            "INVITEs refused 503 for want of media ports.",
            s.ports_exhausted,
        ),
        (
            "voice_media_bind_failures_total",
            "Media port pairs that could not be bound (skipped for a minute).",
            s.bind_failures,
        ),
    ];
    for (name, help, value) in counters {
        metrics::counter(encoder, name, help, value)?;
    }
    Ok(())
}

/// Reads the trunks and the call counters at scrape time.
struct VoiceCollector {
    status: StatusReader,
    metrics: MetricsReader,
    groups: Arc<[GroupTrunks]>,
}

/// Per trunk group: its name, its trunks in service now, its trunks.
fn group_counts<'a>(
    groups: &'a [GroupTrunks],
    trunks: &[TrunkStatusView],
) -> Vec<(&'a str, i64, i64)> {
    let in_service: HashSet<&str> = trunks
        .iter()
        .filter(|t| t.in_service)
        .map(|t| t.name.as_str())
        .collect();
    groups
        .iter()
        .map(|group| {
            let up = group
                .trunks
                .iter()
                .filter(|name| in_service.contains(name.as_str()))
                .count();
            (group.name.as_str(), up as i64, group.trunks.len() as i64)
        })
        .collect()
}

impl fmt::Debug for VoiceCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VoiceCollector").finish_non_exhaustive()
    }
}

impl Collector for VoiceCollector {
    fn encode(&self, mut encoder: Encoder) -> fmt::Result {
        let encoder = &mut encoder;
        let trunks = (self.status)();
        metrics::gauge_family(
            encoder,
            "trunk_in_service",
            "Whether a SIP trunk takes calls (SPEC V2).",
            trunks.iter().map(|t| {
                (
                    [
                        ("trunk", t.name.as_str()),
                        ("carrier", t.carrier.as_str()),
                        ("media_region", t.media_region.as_str()),
                        ("failover_region", t.failover_region.as_str()),
                    ],
                    i64::from(t.in_service),
                )
            }),
        )?;
        let groups = group_counts(&self.groups, &trunks);
        metrics::gauge_family(
            encoder,
            "trunk_group_trunks_in_service",
            "Trunks of a trunk group that take calls (SPEC V1, V2, V4); at 0 the group's calls find no trunk and the proxy answers them 503.",
            groups.iter().map(|&(group, up, _)| ([("group", group)], up)),
        )?;
        metrics::gauge_family(
            encoder,
            "trunk_group_trunks",
            "Trunks configured in a trunk group (SPEC V4).",
            groups
                .iter()
                .map(|&(group, _, all)| ([("group", group)], all)),
        )?;
        type Count = fn(&TrunkStatusView) -> u64;
        let counters: [(&str, &str, Count); 3] = [
            ("trunk_attempts_total", "INVITEs sent to a trunk.", |t| {
                t.stats.attempts
            }),
            (
                "trunk_failed_over_total",
                "Calls that left a trunk for the next one (SPEC V1).",
                |t| t.stats.failed_over,
            ),
            (
                "trunk_no_reply_total",
                "INVITEs a trunk did not answer at all in time.",
                |t| t.stats.no_reply,
            ),
        ];
        for (name, help, count) in counters {
            metrics::counter_family(
                encoder,
                name,
                help,
                trunks
                    .iter()
                    .map(|t| ([("trunk", t.name.as_str())], count(t))),
            )?;
        }
        if let Some(m) = (self.metrics)() {
            metrics::gauge(
                encoder,
                "voice_calls_in_progress",
                "Calls the voice proxy holds (at most voice.max_calls).",
                m.sizes.calls as i64,
            )?;
            metrics::counter(
                encoder,
                "voice_calls_refused_total",
                "INVITEs answered 503 because voice.max_calls calls were held.",
                m.stats.refused_over_capacity,
            )?;
            if let Some(media) = &m.media {
                encode_media(encoder, media)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::proxy::{Transport, TrunkStats};

    fn trunk(name: &str, in_service: bool) -> TrunkStatusView {
        TrunkStatusView {
            name: name.to_owned(),
            carrier: "carrier".to_owned(),
            address: SocketAddr::from(([127, 0, 0, 1], 5060)),
            transport: Transport::Udp,
            in_service,
            since: UNIX_EPOCH,
            causes: Vec::new(),
            detail: String::new(),
            media_region: "eu-west".to_owned(),
            failover_region: "eu-central".to_owned(),
            registered: None,
            stats: TrunkStats::default(),
        }
    }

    fn group(name: &str, trunks: &[&str]) -> GroupTrunks {
        GroupTrunks {
            name: name.to_owned(),
            trunks: trunks.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    /// SPEC V2, V4, issue 16: a group whose every trunk is out of service
    /// reads 0 trunks in service (the alert's condition), a group sharing a
    /// trunk that is up does not, and a trunk in two groups counts in both.
    #[test]
    fn groups_count_their_trunks_in_service() {
        let collector = VoiceCollector {
            status: Arc::new(|| vec![trunk("a", true), trunk("b", false), trunk("c", false)]),
            metrics: Arc::new(|| None),
            groups: vec![
                group("pstn", &["a", "b"]),
                group("backup", &["b", "c"]),
                group("all", &["a", "b", "c"]),
            ]
            .into(),
        };
        let mut registry = metrics::registry();
        registry.register_collector(Box::new(collector));
        let text = metrics::render(&registry).unwrap();
        for line in [
            "hotsite_trunk_group_trunks_in_service{group=\"pstn\"} 1\n",
            "hotsite_trunk_group_trunks_in_service{group=\"backup\"} 0\n",
            "hotsite_trunk_group_trunks_in_service{group=\"all\"} 1\n",
            "hotsite_trunk_group_trunks{group=\"pstn\"} 2\n",
            "hotsite_trunk_group_trunks{group=\"all\"} 3\n",
            "# TYPE hotsite_trunk_group_trunks_in_service gauge\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
