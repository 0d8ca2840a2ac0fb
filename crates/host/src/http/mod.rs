//! The host's one HTTP front door: every system's routes, merged behind one
//! auth layer, and the host's own endpoints.
//!
//! - `GET /v1/status`: every system's keys, plus `systems` (token).
//! - `GET /v1/health`: every system's fields; `503` when one is not ready.
//! - `GET /v1/events`: the event ring, filtered by system, target, kind and
//!   time (token); `GET /v1/events/stream`: the same as server-sent events,
//!   live (token; `Last-Event-ID` resumes).
//! - `GET /metrics`: OpenMetrics text of the one registry.
//! - `GET /v1/openapi.json`: one document over every route.
//! - `GET /console/`: the operator console, static files (no token: every
//!   data call the page makes carries one); `GET /` redirects to it.

mod auth;
pub mod console;
pub(crate) mod events;
pub mod server;

pub use server::ServerConfig;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::events::EventBus;
use crate::System;

pub(crate) use auth::Tokens;

/// What the host's own handlers read.
pub(crate) struct HostState {
    pub(crate) systems: Arc<Vec<Box<dyn System>>>,
    pub(crate) registry: Registry,
    pub(crate) bus: EventBus,
    pub(crate) openapi: Value,
    pub(crate) shutdown: CancellationToken,
    /// Event streams open now, at most [`events::MAX_STREAMS`].
    pub(crate) streams: std::sync::atomic::AtomicUsize,
}

/// The whole application: the host's endpoints and the systems' routes.
pub(crate) fn app(state: Arc<HostState>, tokens: Tokens, api: Router, open: Router) -> Router {
    let protected = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/events", get(events::list))
        .route("/v1/events/stream", get(events::stream))
        .with_state(state.clone())
        .merge(api)
        .layer(axum::middleware::from_fn_with_state(
            tokens,
            auth::require_token,
        ));
    let public = Router::new()
        .route("/v1/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .with_state(state)
        .merge(console::routes())
        .merge(open);
    protected.merge(public).fallback(not_found)
}

/// A JSON error body: `{"error": "..."}`, as every API error.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no route {}; see /v1/openapi.json", uri.path()),
    )
}

async fn status(State(state): State<Arc<HostState>>) -> Response {
    let mut body = Map::new();
    let mut names = Vec::new();
    for system in state.systems.iter() {
        names.push(system.name());
        for (key, value) in system.status().await {
            if body.contains_key(&key) {
                tracing::error!(
                    system = system.name(),
                    key,
                    "status key already given by another system; ignored"
                );
                continue;
            }
            body.insert(key, value);
        }
    }
    body.insert("systems".into(), json!(names));
    Json(Value::Object(body)).into_response()
}

async fn health(State(state): State<Arc<HostState>>) -> Response {
    let mut body = Map::new();
    let mut ready = true;
    for system in state.systems.iter() {
        let health = system.health().await;
        ready &= health.ready;
        body.extend(health.fields);
    }
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(Value::Object(body))).into_response()
}

async fn metrics(State(state): State<Arc<HostState>>) -> Response {
    for system in state.systems.iter() {
        system.refresh_metrics().await;
    }
    match crate::metrics::render(&state.registry) {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be written",
        ),
    }
}

async fn openapi(State(state): State<Arc<HostState>>) -> Response {
    Json(state.openapi.clone()).into_response()
}

/// The host's OpenAPI document with every system's `paths` and
/// `components` merged in. A path or schema defined twice is an error: two
/// systems would be answering one route.
pub(crate) fn openapi_document(fragments: &[Value]) -> Result<Value, String> {
    let mut document: Value =
        serde_json::from_str(include_str!("../openapi.json")).expect("the host's openapi.json");
    for fragment in fragments {
        for section in ["paths", "components/schemas", "components/responses"] {
            let Some(from) = fragment
                .pointer(&format!("/{section}"))
                .and_then(Value::as_object)
            else {
                continue;
            };
            let into = document
                .pointer_mut(&format!("/{section}"))
                .and_then(Value::as_object_mut)
                .expect("the host's document has paths and components.schemas");
            for (key, value) in from {
                if into.insert(key.clone(), value.clone()).is_some() {
                    return Err(format!("{section} {key:?} is defined by two systems"));
                }
            }
        }
    }
    Ok(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One document over every route: each system's paths and schemas are
    /// merged into the host's; a path two systems define is refused.
    #[test]
    fn openapi_fragments_merge_and_overlaps_are_refused() {
        let messages = json!({
            "paths": { "/v1/messages": { "post": {} } },
            "components": { "schemas": { "Message": {} } }
        });
        let trunks = json!({ "paths": { "/v1/trunks": { "get": {} } } });
        let document = openapi_document(&[messages.clone(), trunks]).unwrap();
        for path in [
            "/v1/messages",
            "/v1/trunks",
            "/v1/status",
            "/v1/events/stream",
        ] {
            assert!(document["paths"][path].is_object(), "{path}");
        }
        assert!(document["components"]["schemas"]["Message"].is_object());
        assert!(document["components"]["schemas"]["Event"].is_object());
        let error = openapi_document(&[messages.clone(), messages]).unwrap_err();
        assert!(error.contains("/v1/messages"), "{error}");
    }
}
