//! Digital channels (chat and messaging platforms, the customer's own endpoints):
//! a message is a signed JSON POST to the channel's webhook URL (SPEC M10, M15).
//!
//! What an answer means is decided by [`classify`], a pure function:
//! 2xx delivered; 408, 503 and every other 5xx, a refused or reset connection are
//! transport failures; no answer in time is a timeout; 429 is throttling and its
//! `Retry-After` is honoured; any other 4xx is permanent. The body carries the
//! message's id, also sent as `Idempotency-Key`, so an endpoint that got a send
//! whose answer was lost can drop the repeat.

use std::time::Duration;

use hotsite_core::config::check_http_url;
use hotsite_core::Secret;
use hotsite_store::QueuedMessage;
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use serde::Serialize;

use super::{error_chain, parse_retry_after, snippet, text_of, RetryKind, SendOutcome};
use crate::signing::{sign, SIGNATURE_HEADER};

/// One digital channel's endpoint.
#[derive(Debug, Clone)]
pub struct DigitalConfig {
    /// The channel's name (`primary-chat`): the site in the message's history.
    pub name: String,
    /// Where messages are POSTed.
    pub url: String,
    /// HMAC-SHA256 secret for `X-Hub-Signature-256` (SPEC M15); none: unsigned.
    pub secret: Option<Secret>,
    /// No answer within this is a `timeout`.
    pub timeout: Duration,
}

/// Why a digital channel cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum DigitalConfigError {
    /// The URL is not http(s).
    #[error("url: not an http(s) URL: {0:?}")]
    Url(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The JSON a digital channel receives.
#[derive(Debug, Serialize)]
struct Body<'a> {
    /// Our message id: stable across resends.
    id: String,
    from: &'a str,
    to: &'a str,
    text: String,
}

/// Sends messages to one webhook endpoint.
#[derive(Debug, Clone)]
pub struct DigitalChannel {
    config: DigitalConfig,
    http: reqwest::Client,
}

impl DigitalChannel {
    /// Checks the URL and builds the client.
    pub fn new(config: DigitalConfig) -> Result<DigitalChannel, DigitalConfigError> {
        check_http_url(&config.url).map_err(|_| DigitalConfigError::Url(config.url.clone()))?;
        let http = reqwest::Client::builder().timeout(config.timeout).build()?;
        Ok(DigitalChannel { config, http })
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// POSTs `message` once and classifies the answer.
    pub async fn send(&self, message: &QueuedMessage) -> SendOutcome {
        let body = Body {
            id: message.id.to_string(),
            from: &message.source,
            to: &message.destination,
            text: text_of(message),
        };
        let body = serde_json::to_vec(&body).expect("a struct of strings serializes");
        let mut request = self
            .http
            .post(&self.config.url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("Idempotency-Key", format!("hotsite-{}", message.id));
        if let Some(secret) = &self.config.secret {
            request = request.header(SIGNATURE_HEADER, sign(secret.expose().as_bytes(), &body));
        }
        let endpoint = self.config.url.clone();
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(error) if error.is_timeout() => {
                return SendOutcome::Retry {
                    endpoint,
                    kind: RetryKind::Timeout,
                    reason: format!("no answer within {:?}", self.config.timeout),
                    retry_after: None,
                }
            }
            Err(error) => {
                // Without the URL: a webhook's path often is its secret, and
                // the reason reaches the channel's status and the event stream.
                return SendOutcome::Retry {
                    endpoint,
                    kind: RetryKind::TransportFailure,
                    reason: format!("cannot reach it: {}", error_chain(&error.without_url())),
                    retry_after: None,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        // A body that cannot be read after a 2xx still means delivered.
        let answer = match response.bytes().await {
            Ok(bytes) => bytes.to_vec(),
            Err(error) if error.is_timeout() && (200..300).contains(&status) => Vec::new(),
            Err(error) if error.is_timeout() => {
                return SendOutcome::Retry {
                    endpoint,
                    kind: RetryKind::Timeout,
                    reason: format!("answered {status}, then no body within the timeout"),
                    retry_after: None,
                }
            }
            Err(_) => Vec::new(),
        };
        classify(
            &self.config.name,
            endpoint,
            message,
            status,
            retry_after.as_deref(),
            &answer,
        )
    }
}

/// What an HTTP answer from a digital channel means (SPEC M10).
pub fn classify(
    name: &str,
    endpoint: String,
    message: &QueuedMessage,
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> SendOutcome {
    match status {
        200..=299 => SendOutcome::Accepted {
            site: name.to_owned(),
            endpoint,
            // The endpoint's own id when it gives one; ours otherwise, so the
            // history always names what was delivered.
            provider_id: provider_id(body).unwrap_or_else(|| format!("{name}:{}", message.id)),
        },
        429 => SendOutcome::Retry {
            endpoint,
            kind: RetryKind::Throttled,
            reason: match retry_after {
                Some(value) => format!("answered 429, Retry-After: {value}"),
                None => "answered 429".to_owned(),
            },
            retry_after: retry_after.and_then(parse_retry_after),
        },
        408 | 500..=599 => SendOutcome::Retry {
            endpoint,
            kind: RetryKind::TransportFailure,
            reason: format!("answered {status}"),
            retry_after: None,
        },
        _ => SendOutcome::Permanent {
            endpoint,
            reason: format!("answered {status}: {}", snippet(body)),
        },
    }
}

fn provider_id(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    match value.get("id")? {
        serde_json::Value::String(id) if !id.is_empty() => Some(id.clone()),
        serde_json::Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC M15, issue 11: the signing secret never shows in a logged config.
    #[test]
    fn debug_never_shows_the_secret() {
        let config = DigitalConfig {
            name: "primary-chat".into(),
            url: "https://chat.example/hook".into(),
            secret: Some("chat-signing-secret-42".into()),
            timeout: Duration::from_secs(10),
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("chat-signing-secret"), "{shown}");
        assert!(shown.contains("primary-chat"), "{shown}");
    }
    use hotsite_store::MessageId;

    fn message() -> QueuedMessage {
        QueuedMessage {
            id: MessageId(42),
            source: "Shop".into(),
            destination: "user-7".into(),
            body: b"hello".to_vec(),
            data_coding: 0,
            reference: Some(42),
            attempts: 0,
            route: "chat".into(),
            hop: 0,
            email: None,
        }
    }

    fn answer(status: u16, retry_after: Option<&str>, body: &str) -> SendOutcome {
        classify(
            "primary-chat",
            "http://x/".into(),
            &message(),
            status,
            retry_after,
            body.as_bytes(),
        )
    }

    /// SPEC M10: 503, 408 and other 5xx are transport failures, retried.
    #[test]
    fn unavailable_is_a_transport_failure() {
        for status in [503, 408, 500, 502, 504] {
            assert!(
                matches!(
                    answer(status, None, ""),
                    SendOutcome::Retry {
                        kind: RetryKind::TransportFailure,
                        retry_after: None,
                        ..
                    }
                ),
                "{status}"
            );
        }
    }

    /// SPEC M10: 429 honours Retry-After.
    #[test]
    fn too_many_requests_honours_retry_after() {
        assert!(matches!(
            answer(429, Some("7"), ""),
            SendOutcome::Retry { kind: RetryKind::Throttled, retry_after: Some(d), .. }
                if d == Duration::from_secs(7)
        ));
        assert!(matches!(
            answer(429, None, ""),
            SendOutcome::Retry {
                kind: RetryKind::Throttled,
                retry_after: None,
                ..
            }
        ));
        assert_eq!(
            parse_retry_after("999999"),
            Some(crate::channel::MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    /// SPEC M10: other 4xx are permanent, reported with the answer.
    #[test]
    fn other_client_errors_are_permanent() {
        for status in [400, 401, 403, 404, 410, 422] {
            assert!(
                matches!(
                    answer(status, None, "{\"error\":\"no such user\"}"),
                    SendOutcome::Permanent { ref reason, .. } if reason.contains("no such user")
                ),
                "{status}"
            );
        }
    }

    #[test]
    fn delivered_names_the_endpoints_id_or_ours() {
        assert!(matches!(
            answer(200, None, "{\"id\": \"wamid.1\"}"),
            SendOutcome::Accepted { provider_id, .. } if provider_id == "wamid.1"
        ));
        assert!(matches!(
            answer(202, None, "accepted"),
            SendOutcome::Accepted { provider_id, .. } if provider_id == "primary-chat:42"
        ));
    }
}
