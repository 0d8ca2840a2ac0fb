//! The one event stream (DESIGN.md invariant 4): every failover decision of
//! every system is published here once, as a [`hotsite_core::Event`], and
//! read from here by everything that shows it: the log (one line per event),
//! `/metrics` (`hotsite_events_total{system,kind}`), the ring behind
//! `GET /v1/events`, and live subscribers (`GET /v1/events/stream`, tests).
//!
//! Publishing takes one short lock and never waits for a reader: a live
//! subscriber that falls more than [`LIVE_BACKLOG`] events behind loses the
//! oldest and is told how many (it can read them back from the ring).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use hotsite_core::{Event, EventKind};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::clock;

/// Events kept for `GET /v1/events` (DESIGN.md invariant 6: bounded).
pub const RING_CAPACITY: usize = 4096;
/// Events a live subscriber may fall behind before it loses the oldest.
pub const LIVE_BACKLOG: usize = 1024;

/// One published event, as the API, the log and subscribers see it.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Position in the stream: strictly increasing, from 1.
    pub seq: u64,
    /// When it was published, in ms since the Unix epoch.
    pub at_ms: i64,
    /// The system that decided (`messaging`, `voice`, …).
    pub system: &'static str,
    /// The target's site.
    pub site: String,
    /// The target (`site/name`).
    pub target: String,
    /// What happened: `health`, `throttled`, `rerouted`, …
    pub kind: &'static str,
    /// For a health change: the state it went to (`up`, `down`, `probing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    /// Why, when the event carries a cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The whole event in words.
    pub text: String,
    /// The event itself, for subscribers in the same process.
    #[serde(skip)]
    pub event: Event,
}

/// Which events a reader wants. Every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this system's events.
    pub system: Option<String>,
    /// Only events of this target: its full name (`site/name`), its name, or its site.
    pub target: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only events published at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only events published at or before this time.
    pub until_ms: Option<i64>,
    /// Only events after this position (a reconnecting stream's `Last-Event-ID`).
    pub after_seq: Option<u64>,
}

impl Filter {
    /// Whether `record` passes.
    pub fn matches(&self, record: &Record) -> bool {
        let target_matches = |wanted: &String| {
            record.target == *wanted
                || record.site == *wanted
                || record.target.split_once('/').map(|(_, name)| name) == Some(wanted.as_str())
        };
        self.system.as_deref().is_none_or(|s| s == record.system)
            && self.target.as_ref().is_none_or(target_matches)
            && self.kind.as_deref().is_none_or(|k| k == record.kind)
            && self.since_ms.is_none_or(|t| record.at_ms >= t)
            && self.until_ms.is_none_or(|t| record.at_ms <= t)
            && self.after_seq.is_none_or(|seq| record.seq > seq)
    }
}

/// The process's event stream. Cloning gives another handle on the same stream.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<Record>>,
    published: Family<[(&'static str, &'static str); 2], Counter>,
}

struct Ring {
    next_seq: u64,
    records: VecDeque<Arc<Record>>,
}

impl Ring {
    /// The newest `limit` records that pass `wanted`, oldest first.
    fn newest(&self, limit: usize, wanted: impl Fn(&Record) -> bool) -> Vec<Arc<Record>> {
        let mut found: Vec<Arc<Record>> = self
            .records
            .iter()
            .rev()
            .filter(|record| wanted(record))
            .take(limit)
            .cloned()
            .collect();
        found.reverse();
        found
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

impl EventBus {
    /// An empty stream.
    pub fn new() -> EventBus {
        EventBus {
            inner: Arc::new(Inner {
                ring: Mutex::new(Ring {
                    next_seq: 1,
                    records: VecDeque::with_capacity(RING_CAPACITY),
                }),
                live: broadcast::channel(LIVE_BACKLOG).0,
                published: Family::default(),
            }),
        }
    }

    /// A publisher for `system`'s events.
    pub fn publisher(&self, system: &'static str) -> Events {
        Events {
            bus: self.clone(),
            system,
        }
    }

    /// Registers `hotsite_events_total{system,kind}`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "events",
            "Failover decisions and other events published on the event stream (DESIGN.md invariant 4), by system and kind.",
            self.inner.published.clone(),
        );
    }

    /// The events in the ring that pass `filter`, oldest first, at most
    /// `limit` of them (the newest ones).
    pub fn recent(&self, filter: &Filter, limit: usize) -> Vec<Arc<Record>> {
        self.recent_where(limit, |record| filter.matches(record))
    }

    /// The newest `limit` events in the ring for which `wanted` holds, oldest
    /// first: for a system's own view of its events (a status section), where
    /// a [`Filter`] cannot say what it wants.
    pub fn recent_where(&self, limit: usize, wanted: impl Fn(&Record) -> bool) -> Vec<Arc<Record>> {
        let ring = self.inner.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.newest(limit, wanted)
    }

    /// Every event published from now on. Taken together with
    /// [`EventBus::recent`] under one lock, so that nothing falls between
    /// the backlog and the live events.
    pub fn subscribe_after(
        &self,
        filter: &Filter,
        limit: usize,
    ) -> (Vec<Arc<Record>>, broadcast::Receiver<Arc<Record>>) {
        let ring = self.inner.ring.lock().unwrap_or_else(|e| e.into_inner());
        let receiver = self.inner.live.subscribe();
        let backlog = ring.newest(limit, |record| filter.matches(record));
        (backlog, receiver)
    }

    /// Every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Record>> {
        self.inner.live.subscribe()
    }

    fn publish(&self, system: &'static str, event: Event) -> u64 {
        let kind = event.kind.name();
        let state = match &event.kind {
            EventKind::Health { to, .. } => Some(match to {
                hotsite_core::HealthState::Up => "up",
                hotsite_core::HealthState::Down => "down",
                hotsite_core::HealthState::Probing => "probing",
            }),
            _ => None,
        };
        let text = event.to_string();
        log(system, kind, &event, &text);
        self.inner
            .published
            .get_or_create(&[("system", system), ("kind", kind)])
            .inc();
        let mut ring = self.inner.ring.lock().unwrap_or_else(|e| e.into_inner());
        let seq = ring.next_seq;
        ring.next_seq += 1;
        let record = Arc::new(Record {
            seq,
            at_ms: clock::now_ms(),
            system,
            site: event.target.site.to_string(),
            target: event.target.to_string(),
            kind,
            state,
            cause: event.kind.cause().map(str::to_owned),
            text,
            event,
        });
        if ring.records.len() == RING_CAPACITY {
            ring.records.pop_front();
        }
        ring.records.push_back(record.clone());
        // Sent under the lock, so live subscribers see events in `seq` order.
        let _ = self.inner.live.send(record);
        seq
    }
}

/// The log line of an event: state changes and lost work as warnings, the
/// rest (attempts, retries, reroutes) as information.
fn log(system: &'static str, kind: &'static str, event: &Event, text: &str) {
    let target = &event.target;
    match &event.kind {
        EventKind::Health {
            to: hotsite_core::HealthState::Up,
            ..
        } => tracing::info!(system, kind, %target, "{text}"),
        EventKind::Health { .. } | EventKind::WorkHandedBack { .. } => {
            tracing::warn!(system, kind, %target, "{text}")
        }
        EventKind::DnService {
            in_service: false, ..
        }
        | EventKind::SiteMode { .. } => tracing::warn!(system, kind, %target, "{text}"),
        EventKind::Recording { stage, .. } if stage == "failed" => {
            tracing::error!(system, kind, %target, "{text}")
        }
        EventKind::Recording { .. } => tracing::info!(system, kind, %target, "{text}"),
        // An anchored call lost its media (SPEC R5: never taken for hold).
        EventKind::MediaTimeout { .. } => tracing::warn!(system, kind, %target, "{text}"),
        // A phone that lost its registration took its agent with it.
        EventKind::Agent { reason, .. } if reason == "dr-force_logout" => {
            tracing::warn!(system, kind, %target, "{text}")
        }
        EventKind::Throttled { .. }
        | EventKind::Rerouted { .. }
        | EventKind::DnService { .. }
        | EventKind::Agent { .. } => {
            tracing::info!(system, kind, %target, "{text}")
        }
        _ => tracing::debug!(system, kind, %target, "{text}"),
    }
}

/// One system's publisher: every decision it makes goes through
/// [`Events::publish`], once.
#[derive(Clone)]
pub struct Events {
    bus: EventBus,
    system: &'static str,
}

impl Events {
    /// Publishes `event`; returns its position in the stream.
    pub fn publish(&self, event: Event) -> u64 {
        self.bus.publish(self.system, event)
    }

    /// The system this publisher speaks for.
    pub fn system(&self) -> &'static str {
        self.system
    }

    /// The stream it publishes to (to read this system's recent events back).
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("system", &self.system)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use hotsite_core::{HealthState, Target};

    use super::*;

    fn health(target: &str, to: HealthState, cause: &str) -> Event {
        let (site, name) = target.split_once('/').unwrap();
        Event {
            at: Instant::now_for_tests(),
            target: Target::new(site, name),
            kind: EventKind::Health {
                from: HealthState::Up,
                to,
                cause: cause.to_owned(),
            },
        }
    }

    trait NowForTests {
        fn now_for_tests() -> Instant;
    }

    impl NowForTests for Instant {
        #[allow(clippy::disallowed_methods)] // a fixed reference point; never compared with real time
        fn now_for_tests() -> Instant {
            Instant::now()
        }
    }

    /// DESIGN.md invariant 4: an event is published once and read by the
    /// ring, a live subscriber and the counter, with its cause.
    #[tokio::test]
    async fn one_event_reaches_the_ring_subscribers_and_the_counter() {
        let bus = EventBus::new();
        let mut live = bus.subscribe();
        let smpp = bus.publisher("messaging");
        let voice = bus.publisher("voice");
        let seq = smpp.publish(health("a/smsc-1", HealthState::Down, "connection reset"));
        voice.publish(health(
            "b/carrier-2",
            HealthState::Down,
            "no reply to OPTIONS",
        ));
        assert_eq!(seq, 1);
        let got = live.recv().await.unwrap();
        assert_eq!((got.seq, got.system, got.kind), (1, "messaging", "health"));
        assert_eq!(got.cause.as_deref(), Some("connection reset"));
        assert_eq!(got.state, Some("down"));
        assert_eq!(got.target, "a/smsc-1");
        assert_eq!(live.recv().await.unwrap().system, "voice");

        let only_voice = Filter {
            system: Some("voice".into()),
            ..Filter::default()
        };
        let found = bus.recent(&only_voice, 10);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].target, "b/carrier-2");
        for target in ["a/smsc-1", "smsc-1", "a"] {
            let by_target = Filter {
                target: Some(target.into()),
                ..Filter::default()
            };
            assert_eq!(bus.recent(&by_target, 10).len(), 1, "{target}");
        }
        let after = Filter {
            after_seq: Some(1),
            ..Filter::default()
        };
        assert_eq!(bus.recent(&after, 10)[0].seq, 2);

        let mut registry = crate::metrics::registry();
        bus.register_metrics(&mut registry);
        let text = crate::metrics::render(&registry).unwrap();
        assert!(
            text.contains(r#"hotsite_events_total{system="messaging",kind="health"} 1"#),
            "{text}"
        );
    }

    /// DESIGN.md invariant 6: the ring keeps the newest [`RING_CAPACITY`]
    /// events; `limit` keeps the newest of those that match.
    #[test]
    fn the_ring_is_bounded_and_keeps_the_newest() {
        let bus = EventBus::new();
        let events = bus.publisher("messaging");
        for n in 0..RING_CAPACITY + 10 {
            events.publish(Event {
                at: Instant::now_for_tests(),
                target: Target::new("a", "smsc"),
                kind: EventKind::Throttled {
                    pause: Duration::from_millis(n as u64),
                },
            });
        }
        let all = bus.recent(&Filter::default(), usize::MAX);
        assert_eq!(all.len(), RING_CAPACITY);
        assert_eq!(all[0].seq, 11);
        let last = bus.recent(&Filter::default(), 2);
        assert_eq!(
            last.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [RING_CAPACITY as u64 + 9, RING_CAPACITY as u64 + 10]
        );
    }
}
