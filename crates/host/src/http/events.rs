//! `GET /v1/events` and `GET /v1/events/stream`: the event ring, and the live
//! stream as server-sent events (each event's `id` is its `seq`, `event` its
//! kind, `data` its JSON; a reconnecting client's `Last-Event-ID` resumes
//! after what it saw, from the ring).

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;

use super::{error, HostState};
use crate::events::{Filter, Record, RING_CAPACITY};

/// Events `GET /v1/events` returns when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;
/// How often an idle stream sends a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Event streams open at once (DESIGN.md invariant 6): a stream holds its
/// connection for as long as the client wants, past the request timeout, so
/// streams get a cap of their own below the connection cap.
pub(crate) const MAX_STREAMS: usize = 64;

/// The query both endpoints take.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventQuery {
    system: Option<String>,
    target: Option<String>,
    kind: Option<String>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    /// Only events after this `seq`.
    after: Option<u64>,
    /// At most this many (the newest); for the stream, how many past events
    /// to send before the live ones (default none).
    limit: Option<usize>,
}

impl EventQuery {
    fn filter(&self, after: Option<u64>) -> Filter {
        Filter {
            system: self.system.clone(),
            target: self.target.clone(),
            kind: self.kind.clone(),
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            after_seq: after.or(self.after),
        }
    }
}

fn bad_query(rejection: &axum::extract::rejection::QueryRejection) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        format!(
            "{}; the query takes system, target, kind, since_ms, until_ms, after and limit",
            rejection.body_text()
        ),
    )
}

pub(crate) async fn list(
    State(state): State<Arc<HostState>>,
    query: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return bad_query(&rejection),
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).min(RING_CAPACITY);
    let events = state.bus.recent(&query.filter(None), limit);
    let events: Vec<&Record> = events.iter().map(|record| &**record).collect();
    Json(json!({ "events": events })).into_response()
}

pub(crate) async fn stream(
    State(state): State<Arc<HostState>>,
    headers: HeaderMap,
    query: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return bad_query(&rejection),
    };
    let Some(slot) = StreamSlot::take(&state) else {
        let mut refused = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_STREAMS} event streams are open, the most this site serves; retry later or read GET /v1/events"),
        );
        refused.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from_static("5"),
        );
        return refused;
    };
    let last_seen = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    let filter = query.filter(last_seen);
    // A resuming client gets everything it missed that the ring still has.
    let backlog_limit = match last_seen {
        Some(_) => RING_CAPACITY,
        None => query.limit.unwrap_or(0).min(RING_CAPACITY),
    };
    let (backlog, live) = state.bus.subscribe_after(&filter, backlog_limit);
    let last_sent = backlog.last().map(|record| record.seq);
    let backlog = stream::iter(backlog.into_iter().map(|record| Ok(sse_event(&record))));
    let live = live_events(live, filter, last_sent);
    let shutdown = state.shutdown.clone();
    let events = backlog
        .chain(live)
        .take_until(async move { shutdown.cancelled().await })
        // The slot is freed when the stream is dropped: ended or disconnected.
        .map(move |event| {
            let _held = &slot;
            event
        });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// One of the [`MAX_STREAMS`] places, given back on drop.
struct StreamSlot(Arc<HostState>);

impl StreamSlot {
    fn take(state: &Arc<HostState>) -> Option<StreamSlot> {
        state
            .streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < MAX_STREAMS).then_some(open + 1)
            })
            .ok()
            .map(|_| StreamSlot(state.clone()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

fn sse_event(record: &Record) -> SseEvent {
    SseEvent::default()
        .id(record.seq.to_string())
        .event(record.kind)
        .json_data(record)
        .unwrap_or_else(|_| SseEvent::default().comment("unencodable event"))
}

/// The live events that pass `filter`, skipping any already sent from the
/// backlog; a subscriber that fell behind is told how many it missed.
fn live_events(
    receiver: broadcast::Receiver<Arc<Record>>,
    filter: Filter,
    last_sent: Option<u64>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    stream::unfold(
        (receiver, filter, last_sent),
        |(mut receiver, filter, last_sent)| async move {
            loop {
                match receiver.recv().await {
                    Ok(record) => {
                        if last_sent.is_some_and(|seq| record.seq <= seq)
                            || !filter.matches(&record)
                        {
                            continue;
                        }
                        let event = sse_event(&record);
                        return Some((Ok(event), (receiver, filter, Some(record.seq))));
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        let event = SseEvent::default()
                            .event("lagged")
                            .data(json!({ "missed": missed }).to_string());
                        return Some((Ok(event), (receiver, filter, last_sent)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    )
}
