//! The site as one of the host's systems (SPEC S1–S8): `site` in
//! `/v1/status`, its part of `/v1/health`, its metrics, and the operator and
//! desktop API:
//!
//! - `GET /v1/agents`, `GET /v1/agents/{id}`;
//! - `POST /v1/agents/{id}/login` `{"dn": "1001"}`, `…/ready`, `…/not-ready`,
//!   `…/logout` `{"reason": "manual" | "supervisor"}`;
//! - `GET /v1/site` (mode, peer, DNs with their bindings, agents, counters);
//! - `POST /v1/site/drain` (SPEC S7).
//!
//! Errors are `{"error": "..."}`: 404 for an unknown agent or DN, 409 for a
//! request the agent's state forbids, 503 while draining, 400 for a bad body.

use std::fmt;
use std::sync::{Arc, Mutex};

use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hotsite_host::http::error;
use hotsite_host::metrics::{self, Collector, Encoder, Registry};
use hotsite_host::{BoxFuture, Health, HttpRoutes, System};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::agents::{AgentError, AgentView};
use crate::driver::{Request, SiteHandle};
use crate::machine::{Mode, SiteStatus};
use crate::peer::PeerState;
use hotsite_host::clock;

/// The name of this system's events and status section.
pub const SYSTEM: &str = "site";

type Requests = mpsc::Sender<Request>;

/// The last status read, for the metrics collector (which cannot wait).
pub(crate) type Snapshot = Arc<Mutex<Option<SiteStatus>>>;

impl System for SiteHandle {
    fn name(&self) -> &'static str {
        SYSTEM
    }

    fn status(&self) -> BoxFuture<'_, Map<String, Value>> {
        Box::pin(async move {
            let mut section = Map::new();
            if let Some(status) = SiteHandle::status(self).await {
                section.insert("site".into(), status_json(&status));
            }
            section
        })
    }

    fn health(&self) -> BoxFuture<'_, Health> {
        Box::pin(async move {
            let mut fields = Map::new();
            let status = SiteHandle::status(self).await;
            let ready = match &status {
                Some(status) => {
                    fields.insert("site_mode".into(), json!(status.mode.as_str()));
                    // Draining: load balancers and the peer must stop sending.
                    status.mode != Mode::Draining
                }
                None => {
                    fields.insert("site_mode".into(), json!("stopped"));
                    false
                }
            };
            Health { ready, fields }
        })
    }

    fn register_metrics(&self, registry: &mut Registry) {
        // Refreshed by the host before each scrape (`refresh_metrics`).
        registry.register_collector(Box::new(SiteCollector {
            snapshot: self.snapshot(),
        }));
    }

    fn refresh_metrics(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let status = SiteHandle::status(self).await;
            *self.snapshot().lock().unwrap_or_else(|e| e.into_inner()) = status;
        })
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(SiteHandle::shutdown(*self))
    }
}

/// The routes, all behind the host's token.
pub(crate) fn routes(requests: Requests) -> HttpRoutes {
    let api = Router::new()
        .route("/v1/agents", get(list_agents))
        .route("/v1/agents/{id}", get(get_agent))
        .route("/v1/agents/{id}/login", post(login))
        .route("/v1/agents/{id}/ready", post(ready))
        .route("/v1/agents/{id}/not-ready", post(not_ready))
        .route("/v1/agents/{id}/logout", post(logout))
        .route("/v1/site", get(get_site))
        .route("/v1/site/drain", post(drain))
        .with_state(requests);
    HttpRoutes {
        api,
        open: Router::new(),
        openapi: serde_json::from_str(include_str!("openapi.json"))
            .expect("site's openapi.json is JSON"),
    }
}

fn stopped() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the site system has stopped",
    )
}

async fn ask<T>(
    requests: &Requests,
    make: impl FnOnce(oneshot::Sender<T>) -> Request,
) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    requests.send(make(reply)).await.ok()?;
    answer.await.ok()
}

async fn list_agents(State(requests): State<Requests>) -> Response {
    match ask(&requests, |reply| Request::Status { reply }).await {
        Some(status) => Json(json!({
            "agents": status.agents.iter().map(agent_json).collect::<Vec<_>>()
        }))
        .into_response(),
        None => stopped(),
    }
}

async fn get_agent(State(requests): State<Requests>, Path(id): Path<String>) -> Response {
    match ask(&requests, |reply| Request::Agent {
        agent: id.clone(),
        reply,
    })
    .await
    {
        Some(Some(agent)) => Json(agent_json(&agent)).into_response(),
        Some(None) => agent_error(AgentError::UnknownAgent(id)),
        None => stopped(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    dn: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogoutBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn login(
    State(requests): State<Requests>,
    Path(id): Path<String>,
    body: Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"dn\": \"1001\"}}: {}", rejection.body_text()),
            )
        }
    };
    answer(
        ask(&requests, |reply| Request::Login {
            agent: id,
            dn: body.dn,
            reply,
        })
        .await,
    )
}

async fn ready(State(requests): State<Requests>, Path(id): Path<String>) -> Response {
    set_ready(requests, id, true).await
}

async fn not_ready(State(requests): State<Requests>, Path(id): Path<String>) -> Response {
    set_ready(requests, id, false).await
}

async fn set_ready(requests: Requests, agent: String, ready: bool) -> Response {
    answer(
        ask(&requests, |reply| Request::Ready {
            agent,
            ready,
            reply,
        })
        .await,
    )
}

async fn logout(
    State(requests): State<Requests>,
    Path(id): Path<String>,
    body: Option<Json<LogoutBody>>,
) -> Response {
    let reason = body
        .and_then(|Json(body)| body.reason)
        .unwrap_or_else(|| "manual".to_owned());
    answer(
        ask(&requests, |reply| Request::Logout {
            agent: id,
            reason,
            reply,
        })
        .await,
    )
}

fn answer(result: Option<Result<AgentView, AgentError>>) -> Response {
    match result {
        Some(Ok(agent)) => Json(agent_json(&agent)).into_response(),
        Some(Err(e)) => agent_error(e),
        None => stopped(),
    }
}

fn agent_error(e: AgentError) -> Response {
    let status = match e {
        AgentError::UnknownAgent(_) | AgentError::UnknownDn(_) => StatusCode::NOT_FOUND,
        AgentError::BadReason(_) => StatusCode::BAD_REQUEST,
        AgentError::Draining => StatusCode::SERVICE_UNAVAILABLE,
        AgentError::NotLoggedIn(_)
        | AgentError::AlreadyLoggedIn { .. }
        | AgentError::DnTaken { .. }
        | AgentError::DnOutOfService(_) => StatusCode::CONFLICT,
    };
    error(status, e.to_string())
}

async fn get_site(State(requests): State<Requests>) -> Response {
    match ask(&requests, |reply| Request::Status { reply }).await {
        Some(status) => Json(status_json(&status)).into_response(),
        None => stopped(),
    }
}

async fn drain(State(requests): State<Requests>) -> Response {
    match ask(&requests, |reply| Request::Drain { reply }).await {
        Some(status) => (StatusCode::ACCEPTED, Json(status_json(&status))).into_response(),
        None => stopped(),
    }
}

fn agent_json(agent: &AgentView) -> Value {
    json!({ "id": agent.id, "dn": agent.dn, "state": agent.state.as_str() })
}

/// The site in `/v1/status` and `GET /v1/site`.
pub(crate) fn status_json(status: &SiteStatus) -> Value {
    let now = clock::now();
    let wall = clock::wall();
    let until_ms = |at: std::time::Instant| {
        let wall_at = wall + at.saturating_duration_since(now);
        wall_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    json!({
        "name": status.name,
        "mode": status.mode.as_str(),
        "peer": status.peer.map(|(addr, state)| json!({
            "address": addr.to_string(),
            "in_service": state == PeerState::InService,
            "probes_sent": status.peer_probes.0,
            "probes_answered": status.peer_probes.1,
        })),
        "dns": status.dns.iter().map(|(dn, mode, bindings)| json!({
            "dn": dn,
            "dr_forward": mode.as_str(),
            "in_service": !bindings.is_empty(),
            "contacts": bindings.iter().map(|b| json!({
                "uri": b.uri.to_string(),
                "address": b.addr.to_string(),
                "expires_ms": until_ms(b.expires_at),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "agents": status.agents.iter().map(agent_json).collect::<Vec<_>>(),
        "calls": outcomes_json(&status.calls.outcomes(), Some(("active", status.active_calls as u64))),
        "registrar": outcomes_json(&status.registrar.outcomes(), None),
        "agent_claims": outcomes_json(&status.claims.outcomes(), None),
        "drain_deadline_ms": status.drain_deadline.map(until_ms),
    })
}

/// Counters as a JSON object keyed by outcome, with an optional extra field.
fn outcomes_json(outcomes: &[(&str, u64)], extra: Option<(&str, u64)>) -> Value {
    let mut object = Map::new();
    for (name, n) in outcomes.iter().copied().chain(extra) {
        object.insert(name.to_owned(), json!(n));
    }
    Value::Object(object)
}

/// Reads the last snapshot at scrape time.
struct SiteCollector {
    snapshot: Snapshot,
}

impl fmt::Debug for SiteCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteCollector").finish_non_exhaustive()
    }
}

impl Collector for SiteCollector {
    fn encode(&self, mut encoder: Encoder) -> fmt::Result {
        let encoder = &mut encoder;
        let Some(status) = self
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return Ok(());
        };
        metrics::gauge_family(
            encoder,
            "site_mode",
            "The site's mode: 1 for the current one of peered, single_site, draining (SPEC S3, S4, S7).",
            [Mode::Peered, Mode::SingleSite, Mode::Draining]
                .into_iter()
                .map(|mode| ([("mode", mode.as_str())], i64::from(status.mode == mode))),
        )?;
        metrics::gauge(
            encoder,
            "site_peer_in_service",
            "Whether the peer site answers its probes (SPEC S4); 0 without a peer.",
            i64::from(matches!(status.peer, Some((_, PeerState::InService)))),
        )?;
        // Only with a peer: a site configured alone has no link to lose, and
        // an alert on this family must not fire for it.
        let peer = status.peer.map(|(addr, state)| (addr.to_string(), state));
        metrics::gauge_family(
            encoder,
            "site_peer_link_up",
            "Whether the inter-site link to the configured peer is in service (SPEC S4): its OPTIONS are answered; 0 after oos_force without an answer (the site then runs alone, SPEC S3). Absent without a peer.",
            peer.iter().map(|(addr, state)| {
                (
                    [("peer", addr.as_str())],
                    i64::from(*state == PeerState::InService),
                )
            }),
        )?;
        let in_service = status.dns.iter().filter(|(_, _, b)| !b.is_empty()).count();
        metrics::gauge(
            encoder,
            "site_dns_in_service",
            "DNs with at least one phone registered at this site (SPEC S8).",
            in_service as i64,
        )?;
        metrics::gauge(
            encoder,
            "site_dns",
            "DNs configured at this site.",
            status.dns.len() as i64,
        )?;
        let logged_in = status.agents.iter().filter(|a| a.dn.is_some()).count();
        metrics::gauge(
            encoder,
            "site_agents_logged_in",
            "Agents logged in at this site.",
            logged_in as i64,
        )?;
        metrics::gauge(
            encoder,
            "site_calls_active",
            "Calls ringing or answered and not hung up at this site.",
            status.active_calls as i64,
        )?;
        metrics::counter_family(
            encoder,
            "site_calls_total",
            "Calls for DNs by outcome: offered, answered_local, forwarded (SPEC S1, S6), answered_forwarded, failed, drain_rejected (SPEC S7), over_capacity.",
            status
                .calls
                .outcomes()
                .map(|(outcome, n)| ([("outcome", outcome)], n)),
        )?;
        metrics::counter_family(
            encoder,
            "site_registrations_total",
            "REGISTERs by outcome, and bindings expired (SPEC S8).",
            status
                .registrar
                .outcomes()
                .map(|(outcome, n)| ([("outcome", outcome)], n)),
        )?;
        metrics::counter_family(
            encoder,
            "site_agent_claims_total",
            "Agent claims over the inter-site trunk (one site at a time per agent, SPEC S1, S4): sent, answered, abandoned, received, and yielded (agents logged out here because the peer claimed them).",
            status
                .claims
                .outcomes()
                .into_iter()
                .map(|(outcome, n)| ([("outcome", outcome)], n)),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(peer: Option<(std::net::SocketAddr, PeerState)>) -> SiteStatus {
        SiteStatus {
            name: "a".to_owned(),
            mode: Mode::SingleSite,
            peer,
            peer_probes: (0, 0),
            dns: Vec::new(),
            agents: Vec::new(),
            registrar: Default::default(),
            calls: Default::default(),
            active_calls: 0,
            drain_deadline: None,
            claims: Default::default(),
        }
    }

    fn render(peer: Option<(std::net::SocketAddr, PeerState)>) -> String {
        let mut registry = metrics::registry();
        registry.register_collector(Box::new(SiteCollector {
            snapshot: Arc::new(Mutex::new(Some(status(peer)))),
        }));
        metrics::render(&registry).unwrap()
    }

    /// SPEC S4, issue 16: the peer link's gauge says up or out of service,
    /// with the peer's address; a site without a peer has no such sample (an
    /// alert on it must not fire for a site that runs alone by design).
    #[test]
    fn the_peer_link_gauge_exists_only_with_a_peer() {
        let peer: std::net::SocketAddr = "192.0.2.7:5070".parse().unwrap();
        let down = render(Some((peer, PeerState::OutOfService)));
        assert!(
            down.contains("hotsite_site_peer_link_up{peer=\"192.0.2.7:5070\"} 0\n"),
            "{down}"
        );
        let up = render(Some((peer, PeerState::InService)));
        assert!(
            up.contains("hotsite_site_peer_link_up{peer=\"192.0.2.7:5070\"} 1\n"),
            "{up}"
        );
        let alone = render(None);
        assert!(!alone.contains("site_peer_link_up"), "{alone}");
        assert!(
            alone.contains("hotsite_site_peer_in_service 0\n"),
            "{alone}"
        );
    }
}
