//! Site events to the desktops they concern: one subscriber to the host's
//! event stream for all connections, routing by agent and by DN.
//!
//! Why not one subscriber per connection: every event would wake every
//! connection's task to be filtered out by all but one. With 5,000 desktops
//! and a switchover storm (thousands of logins and state changes in seconds)
//! that is tens of millions of wake-ups, and subscribers that fall more than
//! the stream's backlog behind lose events and must ask the site again.
//! Routed, an event costs one map lookup and wakes the one or two
//! connections it is about.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hotsite_core::EventKind;
use hotsite_host::{EventBus, Record};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Events queued per connection before it counts as lagging (and is sent
/// the current state instead of what it missed).
const PER_CONNECTION: usize = 32;

/// What a connection receives.
pub(crate) enum Routed {
    /// An event about its agent or DN.
    Event(Arc<Record>),
    /// Events were lost: send the current state.
    Lagged,
}

struct Route {
    id: u64,
    events: mpsc::Sender<Routed>,
    lagged: Arc<AtomicBool>,
}

#[derive(Default)]
struct Routes {
    next_id: u64,
    by_agent: HashMap<String, Vec<Route>>,
    by_dn: HashMap<String, Vec<Route>>,
}

/// The routing table; [`Router::run`] feeds it from the event stream.
#[derive(Default)]
pub(crate) struct Router {
    routes: Mutex<Routes>,
}

/// One connection's events: those of its agent and its DN, in order.
pub(crate) struct Subscription {
    router: Arc<Router>,
    id: u64,
    agent: String,
    dn: String,
    events: mpsc::Receiver<Routed>,
    lagged: Arc<AtomicBool>,
    /// The next `recv` reports the loss.
    lag_next: bool,
}

impl Router {
    /// Routes events about `agent` and `dn` to the returned subscription
    /// until it is dropped.
    pub(crate) fn subscribe(self: &Arc<Self>, agent: &str, dn: &str) -> Subscription {
        let (tx, events) = mpsc::channel(PER_CONNECTION);
        let lagged = Arc::new(AtomicBool::new(false));
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.next_id += 1;
        let id = routes.next_id;
        let route = || Route {
            id,
            events: tx.clone(),
            lagged: lagged.clone(),
        };
        routes
            .by_agent
            .entry(agent.to_owned())
            .or_default()
            .push(route());
        routes.by_dn.entry(dn.to_owned()).or_default().push(route());
        Subscription {
            router: self.clone(),
            id,
            agent: agent.to_owned(),
            dn: dn.to_owned(),
            events,
            lagged,
            lag_next: false,
        }
    }

    /// Routes the site's agent and DN events until `shutdown`.
    pub(crate) async fn run(self: Arc<Self>, bus: EventBus, shutdown: CancellationToken) {
        let mut stream = bus.subscribe();
        loop {
            let record = tokio::select! {
                () = shutdown.cancelled() => return,
                received = stream.recv() => received,
            };
            match record {
                Ok(record) => self.route(record),
                // The stream outran even this one reader: everyone resyncs.
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "desktop event router fell behind; every desktop gets the current state"
                    );
                    let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
                    for route in routes.by_agent.values().flatten() {
                        route.lagged.store(true, Ordering::Relaxed);
                        // Wake it so it notices (if its queue is full, it
                        // notices after the queue).
                        let _ = route.events.try_send(Routed::Lagged);
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    fn route(&self, record: Arc<Record>) {
        if record.system != hotsite_site::SYSTEM {
            return;
        }
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let targets = match &record.event.kind {
            EventKind::Agent { agent, .. } => routes.by_agent.get(agent),
            EventKind::DnService { dn, .. } => routes.by_dn.get(dn),
            _ => None,
        };
        for route in targets.into_iter().flatten() {
            if route
                .events
                .try_send(Routed::Event(record.clone()))
                .is_err()
            {
                route.lagged.store(true, Ordering::Relaxed);
            }
        }
    }

    fn unsubscribe(&self, id: u64, agent: &str, dn: &str) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let Routes {
            by_agent, by_dn, ..
        } = &mut *routes;
        for (map, key) in [(by_agent, agent), (by_dn, dn)] {
            if let Some(list) = map.get_mut(key) {
                list.retain(|route| route.id != id);
                if list.is_empty() {
                    map.remove(key);
                }
            }
        }
    }

    /// Connections routed to now (for tests and status).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.by_agent.values().map(Vec::len).sum()
    }
}

impl Subscription {
    /// The next event, or `Lagged` once events were lost and everything
    /// queued before the loss was delivered (so that the current state the
    /// connection then sends is not followed by older events); `None` once
    /// the router stopped.
    pub(crate) async fn recv(&mut self) -> Option<Routed> {
        loop {
            if std::mem::take(&mut self.lag_next) {
                return Some(Routed::Lagged);
            }
            let routed = self.events.recv().await?;
            if let Routed::Lagged = routed {
                // Only a wake-up: the flag says whether a loss is still to
                // be reported, and it is, once the queue is empty.
                self.lagged.store(true, Ordering::Relaxed);
            }
            if self.events.is_empty() && self.lagged.swap(false, Ordering::Relaxed) {
                self.lag_next = true;
            }
            if let Routed::Event(record) = routed {
                return Some(Routed::Event(record));
            }
        }
    }

    /// Events already queued (a drain's logouts, before closing).
    pub(crate) fn try_recv(&mut self) -> Option<Arc<Record>> {
        match self.events.try_recv().ok()? {
            Routed::Event(record) => Some(record),
            Routed::Lagged => None,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.router.unsubscribe(self.id, &self.agent, &self.dn);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hotsite_core::{Event, Target};

    use super::*;

    fn agent_event(agent: &str, dn: &str, state: &'static str) -> Event {
        Event {
            #[allow(clippy::disallowed_methods)] // a test's event time is not read
            at: std::time::Instant::now(),
            target: Target::new("a", &format!("agent/{agent}")),
            kind: EventKind::Agent {
                agent: agent.to_owned(),
                dn: dn.to_owned(),
                state,
                reason: "test".to_owned(),
            },
        }
    }

    async fn next(subscription: &mut Subscription) -> Option<String> {
        match tokio::time::timeout(Duration::from_secs(5), subscription.recv()).await {
            Ok(Some(Routed::Event(record))) => Some(record.event.to_string()),
            Ok(Some(Routed::Lagged)) => Some("lagged".to_owned()),
            Ok(None) | Err(_) => None,
        }
    }

    /// D4, D6: each desktop gets the events of its agent and its DN only,
    /// in order; a dropped subscription is forgotten.
    #[tokio::test]
    async fn events_go_to_the_desktop_they_are_about() {
        let bus = EventBus::new();
        let router = Arc::new(Router::default());
        let shutdown = CancellationToken::new();
        tokio::spawn(router.clone().run(bus.clone(), shutdown.clone()));
        tokio::task::yield_now().await;
        let mut alice = router.subscribe("alice", "1001");
        let mut bob = router.subscribe("bob", "1002");
        assert_eq!(router.len(), 2);
        let site = bus.publisher(hotsite_site::SYSTEM);
        let other = bus.publisher("voice");
        other.publish(agent_event("alice", "1001", "ready"));
        site.publish(agent_event("bob", "1002", "ready"));
        site.publish(agent_event("alice", "1001", "not_ready"));
        site.publish(Event {
            #[allow(clippy::disallowed_methods)]
            at: std::time::Instant::now(),
            target: Target::new("a", "dn/1001"),
            kind: EventKind::DnService {
                dn: "1001".to_owned(),
                in_service: false,
                cause: "expired".to_owned(),
            },
        });
        let first = next(&mut alice).await.unwrap();
        assert!(first.contains("not_ready"), "{first}");
        let second = next(&mut alice).await.unwrap();
        assert!(second.contains("1001"), "{second}");
        let bobs = next(&mut bob).await.unwrap();
        assert!(bobs.contains("bob"), "{bobs}");
        drop(bob);
        assert_eq!(router.len(), 1);
        shutdown.cancel();
    }

    /// A desktop that does not read loses events past its queue, gets what
    /// was queued, then `Lagged` (it sends the current state), not the
    /// other way round.
    #[tokio::test]
    async fn a_full_queue_reports_the_loss_after_the_queue() {
        let router = Arc::new(Router::default());
        let mut alice = router.subscribe("alice", "1001");
        for _ in 0..PER_CONNECTION + 5 {
            let event = agent_event("alice", "1001", "ready");
            router.route(Arc::new(Record {
                seq: 1,
                at_ms: 0,
                system: hotsite_site::SYSTEM,
                site: "a".to_owned(),
                target: "a/agent/alice".to_owned(),
                kind: event.kind.name(),
                state: None,
                cause: None,
                text: event.to_string(),
                event,
            }));
        }
        for i in 0..PER_CONNECTION {
            assert_ne!(
                next(&mut alice).await.as_deref(),
                Some("lagged"),
                "event {i}"
            );
        }
        assert_eq!(next(&mut alice).await.as_deref(), Some("lagged"));
    }
}
