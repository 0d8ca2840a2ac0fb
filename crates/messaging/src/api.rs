//! The messaging routes of the host's HTTP API (axum): versioned, JSON; the
//! host checks the bearer token of [`routes`]' `api` part.
//!
//! - `POST /v1/messages`: one message or `{"messages": [...]}` (up to 1,000);
//!   answered `202` only after the batch is durable (SPEC M9); `400` with every
//!   invalid message named, storing nothing; `409` when an `Idempotency-Key`
//!   (or message `id`) is reused for a different message (SPEC M8); `413` past
//!   [`MAX_REQUEST_BODY`]; `507` when the disk is full.
//! - `GET /v1/messages/{id}`: state and history.
//! - `GET /v1/queue/history`: the queue's depth and throughput over the last
//!   fifteen minutes, a sample every five seconds (see [`crate::history`]),
//!   and a sample taken now; `?after_ms=` only the samples after that time.
//! - `POST /v1/callbacks/{channel}/receipt` and `.../mo`: an HTTP provider's
//!   receipts and MO (form-encoded, see [`crate::callback`]); no bearer token,
//!   signature checked when a callback secret is configured.
//!
//! `/v1/status`, `/v1/health` and `/metrics` are the host's; this system's
//! part of them is in [`crate::system`]. Every error is JSON:
//! `{"error": "..."}` (or `{"errors": [...]}` for validation). Connections and
//! time are bounded by the host's server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hotsite_store::{
    InboundInserted, InboundKind, Inserted, MessageId, MessageView, NewInbound, NewMessage, Store,
    StoreError,
};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::callback;
use crate::channel::decode;
use crate::clock;
use crate::history::{self, QueueSampler};
use crate::metrics::Metrics;
use crate::request;
use crate::route::Routes;
use crate::signing::{verify, SIGNATURE_HEADER};

/// A channel's status as JSON, read when `/v1/status` is asked.
pub type ChannelStatus = Arc<dyn Fn() -> Value + Send + Sync>;

/// What the handlers share.
pub struct ApiState<S> {
    /// The durable store.
    pub store: S,
    /// The queue's recent samples (`GET /v1/queue/history`).
    pub queue_history: Arc<QueueSampler>,
    /// Sender used when a message names none.
    pub default_from: String,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The routes, to check what a message asks for.
    pub routes: Arc<Routes>,
    /// Channels whose provider may POST receipts and MO (SPEC M13), each with
    /// the secret its callbacks' `X-Hub-Signature-256` must verify with, if
    /// one is configured (SPEC M15).
    pub callback_channels: Vec<(String, Option<Vec<u8>>)>,
    /// Woken when an inbound row is stored, so webhooks go out at once.
    pub wake_webhooks: Arc<Notify>,
    /// Wakes the dispatcher after an insert.
    pub wake: Arc<Notify>,
    /// Makes generated idempotency keys unique within the process.
    pub key_counter: AtomicU64,
}

/// The largest request body read (DESIGN.md invariant 6): a full batch of
/// 1,000 messages fits; past it the answer is `413`.
pub const MAX_REQUEST_BODY: usize = 2 * 1024 * 1024;

/// The messaging routes: `api` behind the host's token check, `open` for
/// provider callbacks (checked by signature), and their OpenAPI fragment.
pub fn routes<S: Store>(state: Arc<ApiState<S>>) -> hotsite_host::HttpRoutes {
    let bounded = |router: Router<Arc<ApiState<S>>>| {
        router
            .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
            .layer(axum::middleware::from_fn(refuse_oversized))
            .with_state(state.clone())
    };
    let api = bounded(
        Router::new()
            .route("/v1/messages", post(submit::<S>))
            .route("/v1/messages/{id}", get(message::<S>))
            .route("/v1/queue/history", get(queue_history::<S>)),
    );
    let open = bounded(
        Router::new()
            .route(
                "/v1/callbacks/{channel}/receipt",
                post(receipt_callback::<S>),
            )
            .route("/v1/callbacks/{channel}/mo", post(mo_callback::<S>)),
    );
    hotsite_host::HttpRoutes {
        api,
        open,
        openapi: serde_json::from_str(include_str!("openapi.json"))
            .expect("messaging's openapi.json is JSON"),
    }
}

/// A body declared larger than [`MAX_REQUEST_BODY`] is refused before any of
/// it is read; one sent without a length is cut off at the limit by
/// [`body_refused`].
async fn refuse_oversized(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_REQUEST_BODY as u64) {
        return too_large();
    }
    next.run(request).await
}

fn too_large() -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body too large: at most {MAX_REQUEST_BODY} bytes"),
    )
}

/// The JSON error for a body that could not be read: `413` naming the limit
/// (axum's own is plain text), or the rejection's status.
fn body_refused(rejection: &BytesRejection) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        error(rejection.status(), rejection.body_text())
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn store_error(failure: &StoreError) -> Response {
    match failure {
        StoreError::Full(_) => error_full(),
        other => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {other}"),
        ),
    }
}

fn error_full() -> Response {
    error(
        StatusCode::INSUFFICIENT_STORAGE,
        "storage is full: new messages are refused; every message already accepted is kept and delivered",
    )
}

async fn submit<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_refused(&rejection),
    };
    let key = match headers.get("idempotency-key").map(|value| value.to_str()) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(_)) => {
            Metrics::inc(&state.metrics.messages_invalid_total);
            let problem = request::FieldError {
                index: 0,
                field: "Idempotency-Key".into(),
                error: "the Idempotency-Key header must be visible ASCII (letters, digits, punctuation)".into(),
            };
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "errors": [problem] })),
            )
                .into_response();
        }
    };
    let messages = match request::parse(&body, key, &state.default_from) {
        Ok(messages) => messages,
        Err(errors) => {
            Metrics::inc(&state.metrics.messages_invalid_total);
            return (StatusCode::BAD_REQUEST, Json(json!({ "errors": errors }))).into_response();
        }
    };
    let unknown_routes: Vec<request::FieldError> = messages
        .iter()
        .enumerate()
        .filter_map(|(index, message)| {
            let route = message.route.as_deref()?;
            (!state.routes.contains(route)).then(|| request::FieldError {
                index,
                field: "route".into(),
                error: format!(
                    "unknown route {route:?}; configured: {}",
                    state.routes.names().join(", ")
                ),
            })
        })
        .collect();
    if !unknown_routes.is_empty() {
        Metrics::inc(&state.metrics.messages_invalid_total);
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "errors": unknown_routes })),
        )
            .into_response();
    }
    let now = clock::now_ms();
    let batch: Vec<NewMessage> = messages
        .into_iter()
        .map(|message| NewMessage {
            key: message.key.unwrap_or_else(|| {
                // No key from the client: no idempotency asked for, but a unique key.
                let n = state.key_counter.fetch_add(1, Ordering::Relaxed);
                format!("auto:{now}:{}:{n}", std::process::id())
            }),
            source: message.from,
            destination: message.to,
            body: message.body,
            data_coding: message.encoding.data_coding(),
            route: message.route.unwrap_or_default(),
            email: message.email,
            received_at_ms: now,
        })
        .collect();
    // What a repeated key is compared with, kept before the batch goes to the
    // store: a key and a fingerprint per message, not a copy of every body.
    let sent: Vec<(String, u64)> = batch
        .iter()
        .map(|message| (message.key.clone(), Content::of_new(message).fingerprint()))
        .collect();
    let inserted = match state.store.insert_messages(batch).await {
        Ok(inserted) => inserted,
        Err(e) => return store_error(&e),
    };
    state.wake.notify_one();
    let mut created = 0;
    let mut duplicates = 0;
    let mut conflicts = 0;
    let mut results = Vec::with_capacity(inserted.len());
    for (inserted, (key, fingerprint)) in inserted.iter().zip(&sent) {
        results.push(match inserted {
            Inserted::Created(id) => {
                created += 1;
                json!({ "id": id.0, "key": key, "status": "accepted" })
            }
            // SPEC M8: the key was used before. Only this path reads the
            // original back: a repeat of the same message is idempotent, a
            // different message under the same key is refused, not dropped.
            Inserted::Existing(id) => match state.store.message(*id).await {
                Ok(Some(original)) if Content::of_view(&original).fingerprint() != *fingerprint => {
                    conflicts += 1;
                    json!({
                        "id": id.0,
                        "key": key,
                        "status": "conflict",
                        "error": format!("idempotency key {key:?} was used for message {} with different content; this message was not stored", id.0),
                    })
                }
                Ok(_) => {
                    duplicates += 1;
                    json!({ "id": id.0, "key": key, "status": "duplicate" })
                }
                Err(e) => return store_error(&e),
            },
        });
    }
    Metrics::add(&state.metrics.messages_accepted_total, created);
    Metrics::add(&state.metrics.messages_duplicate_total, duplicates);
    Metrics::add(&state.metrics.messages_conflict_total, conflicts);
    if conflicts > 0 {
        // The whole answer is 409 so that no client misses it; the other
        // messages' outcomes (stored, to be sent) are listed all the same.
        let first = results
            .iter()
            .find(|result| result["status"] == "conflict")
            .map(|result| result["error"].clone())
            .unwrap_or_default();
        return (
            StatusCode::CONFLICT,
            Json(json!({ "error": first, "messages": results })),
        )
            .into_response();
    }
    (StatusCode::ACCEPTED, Json(json!({ "messages": results }))).into_response()
}

/// What makes two messages under one key the same message (SPEC M8): sender,
/// recipient, encoded body, coding, route and e-mail; not state or history.
#[derive(Hash)]
struct Content<'a> {
    source: &'a str,
    destination: &'a str,
    body: &'a [u8],
    data_coding: u8,
    route: &'a str,
    email: Option<&'a str>,
}

impl<'a> Content<'a> {
    fn of_new(message: &'a NewMessage) -> Content<'a> {
        Content {
            source: &message.source,
            destination: &message.destination,
            body: &message.body,
            data_coding: message.data_coding,
            route: &message.route,
            email: message.email.as_deref(),
        }
    }

    fn of_view(message: &'a MessageView) -> Content<'a> {
        Content {
            source: &message.source,
            destination: &message.destination,
            body: &message.body,
            data_coding: message.data_coding,
            route: &message.route,
            email: message.email.as_deref(),
        }
    }

    /// A 64-bit SipHash of the content (fixed keys: the same in every process):
    /// two different messages under one key share it with odds of 2⁻⁶⁴.
    fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut hasher);
        hasher.finish()
    }
}

/// Whether `new` is the message stored as `original` (same key).
#[cfg(test)]
fn same_message(original: &MessageView, new: &NewMessage) -> bool {
    Content::of_view(original).fingerprint() == Content::of_new(new).fingerprint()
}

async fn message<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("message id {id:?} is not a number"),
        );
    };
    match state.store.message(MessageId(id)).await {
        Ok(Some(view)) => Json(json!({
            "id": view.id.0,
            "key": view.key,
            "state": view.state.as_str(),
            "from": view.source,
            "to": view.destination,
            "text": decode(&view.body, view.data_coding),
            "data_coding": view.data_coding,
            "attempts": view.attempts,
            "route": if view.route.is_empty() { state.routes.default_name() } else { &view.route },
            "hop": view.hop,
            "email": view.email,
            "provider_message_id": view.provider_message_id,
            "site": view.site,
            "smsc": view.smsc,
            "created_at_ms": view.created_at_ms,
            "updated_at_ms": view.updated_at_ms,
            "events": view.events.iter().map(|e| json!({ "at_ms": e.at_ms, "kind": e.kind, "detail": e.detail })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no message {id}")),
        Err(e) => store_error(&e),
    }
}

/// The query of `GET /v1/queue/history`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// Only samples taken after this time (ms since the epoch).
    after_ms: Option<i64>,
}

/// How long `GET /v1/queue/history` waits for the store's depth for its
/// `now` sample; past it `queued` is null.
const HISTORY_NOW_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn queue_history<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("{}; the query takes after_ms", rejection.body_text()),
            )
        }
    };
    let now = state.queue_history.sample(HISTORY_NOW_TIMEOUT).await;
    Json(json!({
        "interval_ms": history::SAMPLE_INTERVAL.as_millis() as u64,
        "window_ms": history::WINDOW.as_millis() as u64,
        "samples": state.queue_history.points(query.after_ms),
        "now": now,
    }))
    .into_response()
}

async fn receipt_callback<S: Store>(
    state: State<Arc<ApiState<S>>>,
    path: Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    callback(state, path, headers, body, callback::receipt).await
}

async fn mo_callback<S: Store>(
    state: State<Arc<ApiState<S>>>,
    path: Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    callback(state, path, headers, body, callback::mo).await
}

/// A provider's receipt or MO: checked, stored, and only then answered 200
/// (SPEC M13); a repeat is answered 200 too and stored once (SPEC M8).
async fn callback<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    parse: fn(&str, &[u8], i64) -> Result<NewInbound, callback::CallbackError>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_refused(&rejection),
    };
    let Some((_, secret)) = state
        .callback_channels
        .iter()
        .find(|(name, _)| *name == channel)
    else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no HTTP channel {channel:?} takes callbacks"),
        );
    };
    if let Some(secret) = secret {
        let signature = headers
            .get(SIGNATURE_HEADER)
            .and_then(|value| value.to_str().ok());
        if !signature.is_some_and(|signature| verify(secret, &body, signature)) {
            return error(
                StatusCode::UNAUTHORIZED,
                format!("missing or invalid {SIGNATURE_HEADER}"),
            );
        }
    }
    let item = match parse(&channel, &body, clock::now_ms()) {
        Ok(item) => item,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    Metrics::inc(&state.metrics.inbound_received_total);
    let receipt = item.kind == InboundKind::Receipt;
    match state.store.insert_inbound(vec![item]).await {
        Ok(inserted) => {
            let duplicate = matches!(inserted.first(), Some(InboundInserted::Duplicate(_)));
            if duplicate {
                Metrics::inc(&state.metrics.inbound_duplicate_total);
            } else {
                state.wake_webhooks.notify_one();
            }
            let mut answer = json!({ "stored": if duplicate { "duplicate" } else { "new" } });
            // SPEC M13: a receipt for an id we do not know is kept, and says so.
            if let (true, Some(first)) = (receipt, inserted.first()) {
                match state.store.inbound_message(first.id()).await {
                    Ok(message) => {
                        answer["correlated"] = json!(message.is_some());
                        if let Some(id) = message {
                            answer["message_id"] = json!(id.0);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read back a stored receipt"),
                }
            }
            Json(answer).into_response()
        }
        Err(e) => store_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotsite_store::MessageState;

    /// SPEC M8: a repeat under the same key is the same message only when
    /// everything stored of it matches.
    #[test]
    fn same_message_compares_everything_stored() {
        let new = NewMessage {
            key: "k1".into(),
            source: "hotsite".into(),
            destination: "4917012345678".into(),
            body: b"hello".to_vec(),
            data_coding: 0,
            route: String::new(),
            email: None,
            received_at_ms: 1,
        };
        let original = MessageView {
            id: MessageId(7),
            key: "k1".into(),
            source: new.source.clone(),
            destination: new.destination.clone(),
            body: new.body.clone(),
            data_coding: 0,
            state: MessageState::Queued,
            attempts: 3,
            route: String::new(),
            hop: 1,
            email: None,
            provider_message_id: Some("p".into()),
            site: None,
            smsc: None,
            created_at_ms: 0,
            updated_at_ms: 9,
            events: Vec::new(),
        };
        assert!(
            same_message(&original, &new),
            "state and history do not matter"
        );
        let changes: [fn(&mut NewMessage); 6] = [
            |m| m.source = "other".into(),
            |m| m.destination = "4917000000000".into(),
            |m| m.body = b"hello!".to_vec(),
            |m| m.data_coding = 8,
            |m| m.route = "chat".into(),
            |m| m.email = Some("a@example.com".into()),
        ];
        for change in changes {
            let mut changed = new.clone();
            change(&mut changed);
            assert!(!same_message(&original, &changed), "{changed:?}");
        }
    }
}
