//! A webhook receiver: a digital channel's endpoint that hotsite posts
//! messages to (SPEC M10). The contract is in the `http` module docs.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::Value;

use crate::http::signing::{verify, SIGNATURE_HEADER};
use crate::port::lock;
use crate::shared::Shared;
use crate::traffic::WebhookMessage;

/// A receiver's log, dedupe and counters.
#[derive(Debug, Default)]
pub(crate) struct ReceiverState {
    /// Every distinct message, oldest first.
    pub(crate) log: Vec<WebhookMessage>,
    /// hotsite's id → the receiver's id.
    ids: HashMap<String, String>,
    pub(crate) duplicates: u64,
    pub(crate) unauthorized: u64,
    pub(crate) rejected: u64,
}

/// The router of receiver `receiver`: every path, every method.
pub(crate) fn router(shared: Arc<Shared>, receiver: usize) -> Router {
    Router::new()
        .fallback(receive)
        .with_state(ReceiverRef { shared, receiver })
}

#[derive(Clone)]
struct ReceiverRef {
    shared: Arc<Shared>,
    receiver: usize,
}

/// The facts of one accepted request, before the receiver's id is known.
struct Incoming {
    id: String,
    from: Option<String>,
    to: Option<String>,
    text: Option<String>,
    path: String,
}

async fn receive(
    State(state): State<ReceiverRef>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let shared = &state.shared;
    let receiver = &shared.webhooks[state.receiver];
    let checked = check(&receiver.secret, &method, &headers, &body);
    let mut receiver_state = lock(&receiver.state);
    let incoming = match checked {
        Ok(fields) => Incoming {
            id: fields.id,
            from: fields.from,
            to: fields.to,
            text: fields.text,
            path: uri.path().to_owned(),
        },
        Err((status, message)) => {
            if status == StatusCode::UNAUTHORIZED {
                receiver_state.unauthorized += 1;
            } else {
                receiver_state.rejected += 1;
            }
            tracing::debug!(%status, %message, "webhook refused");
            return (status, Json(serde_json::json!({ "error": message }))).into_response();
        }
    };
    if let Some(receiver_id) = receiver_state.ids.get(&incoming.id) {
        let answer = serde_json::json!({ "id": receiver_id });
        receiver_state.duplicates += 1;
        return (StatusCode::OK, Json(answer)).into_response();
    }
    let receiver_id = format!(
        "{}-{:06}",
        receiver.server.name,
        receiver_state.log.len() + 1
    );
    receiver_state
        .ids
        .insert(incoming.id.clone(), receiver_id.clone());
    receiver_state.log.push(WebhookMessage {
        receiver: receiver.server.name.clone(),
        receiver_id: receiver_id.clone(),
        id: incoming.id,
        from: incoming.from,
        to: incoming.to,
        text: incoming.text,
        path: incoming.path,
        received_us: shared.clock.elapsed_us(),
        received_unix_ms: shared.clock.unix_ms(),
    });
    (
        StatusCode::OK,
        Json(serde_json::json!({ "id": receiver_id })),
    )
        .into_response()
}

/// The fields a receiver keeps.
#[derive(Debug, PartialEq, Eq)]
struct Fields {
    id: String,
    from: Option<String>,
    to: Option<String>,
    text: Option<String>,
}

/// Checks method, signature and body; the error is the status and message to answer.
fn check(
    secret: &Option<Vec<u8>>,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Fields, (StatusCode, String)> {
    if method != Method::POST {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} not allowed: POST only"),
        ));
    }
    if let Some(secret) = secret {
        let Some(header) = headers.get(SIGNATURE_HEADER) else {
            return Err((
                StatusCode::UNAUTHORIZED,
                "missing X-Hub-Signature-256".to_owned(),
            ));
        };
        let valid = header
            .to_str()
            .is_ok_and(|header| verify(secret, body, header));
        if !valid {
            return Err((
                StatusCode::UNAUTHORIZED,
                "invalid X-Hub-Signature-256".to_owned(),
            ));
        }
    }
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        (
            StatusCode::BAD_REQUEST,
            format!("body is not JSON: {error}"),
        )
    })?;
    let Value::Object(object) = value else {
        return Err((
            StatusCode::BAD_REQUEST,
            "body must be a JSON object".to_owned(),
        ));
    };
    let id = match object.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(Value::Number(id)) => id.to_string(),
        _ => {
            return Err((
                StatusCode::BAD_REQUEST,
                "body needs an \"id\": a non-empty string or a number".to_owned(),
            ))
        }
    };
    let text_field = |name: &str| match object.get(name) {
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    Ok(Fields {
        id,
        from: text_field("from"),
        to: text_field("to"),
        text: text_field("text"),
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::http::signing::sign;

    fn signed(secret: &[u8], body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&sign(secret, body)).expect("header");
        headers.insert(SIGNATURE_HEADER, value);
        headers
    }

    /// SPEC M15: a receiver with a secret wants the body signed with it.
    #[test]
    fn signatures_are_checked_when_a_secret_is_set() {
        let body = br#"{"id":"42","to":"+33612345678","text":"hi"}"#;
        let secret = Some(b"s3cret".to_vec());
        let fields = check(&secret, &Method::POST, &signed(b"s3cret", body), body).expect("ok");
        assert_eq!(fields.id, "42");
        assert_eq!(fields.to.as_deref(), Some("+33612345678"));
        for headers in [HeaderMap::new(), signed(b"other", body)] {
            let (status, _) = check(&secret, &Method::POST, &headers, body).expect_err("401");
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        assert!(check(&None, &Method::POST, &HeaderMap::new(), body).is_ok());
    }

    #[test]
    fn bodies_without_an_id_are_bad_requests() {
        for body in [
            &b"not json"[..],
            b"[1]",
            b"{}",
            br#"{"id":""}"#,
            br#"{"id":true}"#,
        ] {
            let (status, _) = check(&None, &Method::POST, &HeaderMap::new(), body)
                .expect_err(&String::from_utf8_lossy(body));
            assert_eq!(status, StatusCode::BAD_REQUEST);
        }
        let fields = check(&None, &Method::POST, &HeaderMap::new(), br#"{"id":17}"#).expect("ok");
        assert_eq!(fields.id, "17");
        let (status, _) =
            check(&None, &Method::GET, &HeaderMap::new(), b"").expect_err("not a POST");
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }
}
