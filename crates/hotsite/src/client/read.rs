//! Reading a gateway's status and events over its API, with failures sorted
//! into those worth retrying (the gateway is away) and those that are not
//! (a refused token: asking again changes nothing).

use std::time::Duration;

use serde_json::Value;

use super::timeline::Entry;
use super::Endpoint;

/// A status or events request slower than this failed.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Events read at start, per system: more than the timeline shows, since
/// it leaves some kinds out.
const BACKLOG: usize = 200;
/// Health changes read at start for the binds' "since" (a few per target).
const HEALTH_BACKLOG: usize = 256;
/// Connecting slower than this failed.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Not worth retrying: a refused token, a route this gateway lacks.
    Fatal(anyhow::Error),
    /// The gateway is away or busy: retry later.
    Transient(String),
}

impl Failure {
    /// As an error, for a first contact, which is not retried.
    pub(crate) fn into_error(self, endpoint: &Endpoint) -> anyhow::Error {
        match self {
            Failure::Fatal(error) => error,
            Failure::Transient(why) => {
                anyhow::anyhow!("cannot read the gateway at {}: {why}", endpoint.base)
            }
        }
    }
}

/// The client for status and events: connect timeout only, since the event
/// stream is held open for as long as the user watches.
pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build()?)
}

/// The failure of a request that got no answer, with its causes.
pub(crate) fn unreachable(error: reqwest::Error) -> Failure {
    Failure::Transient(describe(error))
}

/// A transport error in few words: its innermost cause (`Connection
/// refused (os error 111)`), which says what the layers around it do not.
pub(crate) fn describe(error: reqwest::Error) -> String {
    let timeout = error.is_timeout();
    let error = anyhow::Error::from(error);
    let root = error.root_cause().to_string();
    if timeout {
        format!("timed out ({root})")
    } else {
        root
    }
}

/// Sorts a non-success answer: 4xx are fatal, the rest transient.
pub(crate) async fn refused(response: reqwest::Response) -> Failure {
    let status = response.status();
    let mut answer: Value = response.json().await.unwrap_or(Value::Null);
    super::untrusted::clean(&mut answer);
    if status.is_client_error() {
        Failure::Fatal(anyhow::anyhow!("{}", super::refusal(status, &answer)))
    } else {
        Failure::Transient(format!("the gateway answered {status}: {answer}"))
    }
}

/// `GET path` as JSON.
async fn get_json(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    path: &str,
    query: &[(&str, String)],
) -> Result<Value, Failure> {
    let response = client
        .get(format!("{}{path}", endpoint.base))
        .query(query)
        .bearer_auth(&endpoint.token)
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(refused(response).await);
    }
    let mut answer: Value = response.json().await.map_err(|error| {
        Failure::Transient(format!("the answer to {path} is not JSON ({error})"))
    })?;
    super::untrusted::clean(&mut answer);
    Ok(answer)
}

/// `GET /v1/status`.
pub(crate) async fn status(
    client: &reqwest::Client,
    endpoint: &Endpoint,
) -> Result<Value, Failure> {
    get_json(client, endpoint, "/v1/status", &[]).await
}

/// The newest [`BACKLOG`] events of each of `systems` (of all when empty),
/// unordered, with repeats: one `GET /v1/events` per system, so a rare system's events
/// are not crowded out by a busy one's; plus the newest event of any system,
/// so that a resume starts after it (the timeline shows only its systems);
/// plus the newest health changes of every system, for the "since" of the
/// binds (the timeline keeps them aside).
pub(crate) async fn backlog(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    systems: &[String],
) -> Result<Vec<Entry>, Failure> {
    let limit = BACKLOG;
    let mut queries: Vec<Vec<(&str, String)>> = if systems.is_empty() {
        vec![vec![("limit", limit.to_string())]]
    } else {
        systems
            .iter()
            .map(|system| vec![("limit", limit.to_string()), ("system", system.clone())])
            .chain([vec![("limit", "1".to_owned())]])
            .collect()
    };
    queries.push(vec![
        ("limit", HEALTH_BACKLOG.to_string()),
        ("kind", "health".to_owned()),
    ]);
    let mut entries = Vec::new();
    for query in queries {
        let mut answer = get_json(client, endpoint, "/v1/events", &query).await?;
        let events = answer
            .get_mut("events")
            .and_then(Value::as_array_mut)
            .map(std::mem::take)
            .unwrap_or_default();
        for event in events {
            match serde_json::from_value::<Entry>(event) {
                Ok(entry) => entries.push(entry),
                Err(error) => {
                    tracing::warn!(%error, "an event of GET /v1/events is unreadable; skipped")
                }
            }
        }
    }
    // Sorted and freed of repeats by `Timeline::extend`, where they all go.
    Ok(entries)
}

/// Whether the gateway still has the event `last_seen` (seq, at_ms) as it
/// was: a restarted gateway numbers its events from 1 again, and resuming
/// after the old number would skip its first events.
pub(crate) async fn still_has(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    (seq, at_ms): (u64, i64),
) -> Result<bool, Failure> {
    let query = [
        ("after", (seq - 1).to_string()),
        ("until_ms", at_ms.to_string()),
        ("limit", "64".to_owned()),
    ];
    let answer = get_json(client, endpoint, "/v1/events", &query).await?;
    Ok(answer["events"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|event| event["seq"] == seq && event["at_ms"] == at_ms))
}

/// Opens `GET /v1/events/stream`, resuming after `last_seq`.
pub(crate) async fn open_stream(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    last_seq: u64,
) -> Result<reqwest::Response, Failure> {
    let response = client
        .get(format!("{}/v1/events/stream", endpoint.base))
        .bearer_auth(&endpoint.token)
        .header(reqwest::header::ACCEPT, "text/event-stream")
        // Everything after what the timeline has, read back from the ring
        // (0: everything the ring still has, which is nothing new to it).
        .header("Last-Event-ID", last_seq.to_string())
        .send();
    // The body is read for as long as the user watches; the answer's head
    // must come in time, or a hung gateway would hang the reconnect too.
    let response = tokio::time::timeout(REQUEST_TIMEOUT, response)
        .await
        .map_err(|_| {
            Failure::Transient(format!(
                "no answer to the event stream request within {REQUEST_TIMEOUT:?}"
            ))
        })?
        .map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(tokio::time::timeout(REQUEST_TIMEOUT, refused(response))
            .await
            .unwrap_or_else(|_| {
                Failure::Transient("the gateway's refusal did not arrive in time".into())
            }));
    }
    Ok(response)
}
