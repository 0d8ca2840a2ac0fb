//! What an aggregator's answer means (SPEC M3, M10, M14). Pure: the driver hands
//! in the HTTP status, the `Retry-After` header and the body.
//!
//! The provider answers HTTP 200 with
//! `{"code": <int>, "description": "...", "message_id": "<ours>", "provider_id": "<theirs>"}`:
//!
//! | code | meaning | verdict |
//! |---|---|---|
//! | 0 | accepted | [`Verdict::Accepted`] |
//! | 10, 11, 12, 13 | authentication, sender, destination, too long | [`Verdict::Permanent`] |
//! | 14 | duplicate of a `message_id` it already has | [`Verdict::Accepted`] with the original id |
//! | 20 | throttled | [`Verdict::ProviderRetry`] (`Throttled`) |
//! | 21 | internal error | [`Verdict::ProviderRetry`] (`ProviderError`) |
//! | 30 (HTTP 400), anything else | missing field, unknown | [`Verdict::Permanent`] naming the code |
//!
//! HTTP 408 and 5xx, and an answer that is not the JSON above, are failures of
//! the URL ([`Verdict::UrlFailure`]): they count towards failing over to the
//! next site (SPEC M3 "abnormal answer"). A provider code, even "try again",
//! proves the site is alive, so it never does.

use std::time::Duration;

use serde::Deserialize;

use crate::channel::{snippet, RetryKind};

pub use crate::channel::{parse_retry_after, MAX_RETRY_AFTER};

/// What one answer means for the message and for the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The provider has the message.
    Accepted {
        /// The provider's id for it (receipts correlate on it, SPEC M13).
        provider_id: String,
        /// The provider already had it (code 14): an earlier attempt whose answer
        /// we lost got through.
        duplicate: bool,
    },
    /// Refused for good (SPEC M14).
    Permanent {
        /// The code and the provider's description.
        reason: String,
    },
    /// The provider answered and asks to try again later. The URL is alive: this
    /// never moves the message to another site.
    ProviderRetry {
        /// `Throttled` or `ProviderError`.
        kind: RetryKind,
        /// The code and the provider's description.
        reason: String,
        /// From `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// The URL failed: no answer, 408/5xx, or an abnormal answer (SPEC M3).
    UrlFailure {
        /// `TransportFailure`, `Timeout` or `ProviderError` (abnormal answer).
        kind: RetryKind,
        /// What happened.
        reason: String,
    },
}

/// Provider codes moved by the configuration (`permanent_codes`, `retry_codes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeOverrides {
    /// Codes refused for good.
    pub permanent: Vec<i64>,
    /// Codes retried later, like code 21.
    pub retry: Vec<i64>,
}

/// The provider's JSON answer. `message_id` and `provider_id` may come as
/// strings or numbers.
#[derive(Debug, Deserialize)]
struct ProviderAnswer {
    code: i64,
    #[serde(default)]
    description: String,
    #[serde(default)]
    message_id: Option<serde_json::Value>,
    #[serde(default)]
    provider_id: Option<serde_json::Value>,
}

/// Classifies one HTTP answer to the submit of message `message_id` (ours, as sent).
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    message_id: &str,
    overrides: &CodeOverrides,
) -> Verdict {
    let retry_after = retry_after.and_then(parse_retry_after);
    match status {
        200..=299 => match serde_json::from_slice::<ProviderAnswer>(body) {
            Ok(answer) => classify_answer(&answer, message_id, retry_after, overrides),
            Err(error) => Verdict::UrlFailure {
                kind: RetryKind::ProviderError,
                reason: format!(
                    "HTTP {status} with an unreadable answer ({error}): {}",
                    snippet(body)
                ),
            },
        },
        408 | 500..=599 => Verdict::UrlFailure {
            kind: RetryKind::TransportFailure,
            reason: format!("HTTP {status}: {}", snippet(body)),
        },
        429 => Verdict::ProviderRetry {
            kind: RetryKind::Throttled,
            reason: format!("HTTP 429: {}", snippet(body)),
            retry_after,
        },
        400..=499 => match serde_json::from_slice::<ProviderAnswer>(body) {
            // A 4xx that carries a provider code (400 with code 30) says what it
            // is; a 4xx that says "accepted" contradicts itself and is refused.
            Ok(answer) if answer.code != 0 => {
                classify_answer(&answer, message_id, retry_after, overrides)
            }
            _ => Verdict::Permanent {
                reason: format!("HTTP {status}: {}", snippet(body)),
            },
        },
        // 1xx, 3xx: not the provider's API (a redirect to a maintenance page):
        // the site is not answering as it should.
        _ => Verdict::UrlFailure {
            kind: RetryKind::ProviderError,
            reason: format!("unexpected HTTP {status}: {}", snippet(body)),
        },
    }
}

fn classify_answer(
    answer: &ProviderAnswer,
    message_id: &str,
    retry_after: Option<Duration>,
    overrides: &CodeOverrides,
) -> Verdict {
    let code = answer.code;
    let reason = format!("code {code} ({}): {}", code_name(code), answer.description);
    if let Some(echoed) = answer.message_id.as_ref().and_then(id_text) {
        if echoed != message_id {
            // An answer about another message (a confused proxy or cache): we
            // cannot tell what happened to ours.
            return Verdict::UrlFailure {
                kind: RetryKind::ProviderError,
                reason: format!("answer for message_id {echoed}, not {message_id}: {reason}"),
            };
        }
    }
    if overrides.permanent.contains(&code) {
        return Verdict::Permanent { reason };
    }
    if overrides.retry.contains(&code) {
        return Verdict::ProviderRetry {
            kind: RetryKind::ProviderError,
            reason,
            retry_after,
        };
    }
    match code {
        // 14: our message_id is our idempotency key (SPEC M8), and the provider
        // already has this one, so an earlier attempt whose answer we lost (a
        // timeout, a reset) got through. It gives back the original provider_id,
        // which receipts correlate on. Failing the message would report a
        // delivered message as failed.
        0 | 14 => match answer.provider_id.as_ref().and_then(id_text) {
            Some(provider_id) => Verdict::Accepted {
                provider_id,
                duplicate: code == 14,
            },
            // Taken without an id, receipts could never be matched. The resend
            // carries the same message_id, so the provider answers 14 with the id.
            None => Verdict::UrlFailure {
                kind: RetryKind::ProviderError,
                reason: format!("{reason}, but no provider_id"),
            },
        },
        10..=13 => Verdict::Permanent { reason },
        20 => Verdict::ProviderRetry {
            kind: RetryKind::Throttled,
            reason,
            retry_after,
        },
        21 => Verdict::ProviderRetry {
            kind: RetryKind::ProviderError,
            reason,
            retry_after,
        },
        _ => Verdict::Permanent { reason },
    }
}

/// The provider's codes in words, for reasons an operator reads.
pub fn code_name(code: i64) -> &'static str {
    match code {
        0 => "accepted",
        10 => "authentication failed",
        11 => "invalid sender",
        12 => "invalid destination",
        13 => "message too long",
        14 => "duplicate",
        20 => "throttled",
        21 => "internal error",
        30 => "missing field",
        _ => "unknown code",
    }
}

fn id_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(id) if !id.is_empty() => Some(id.clone()),
        serde_json::Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(status: u16, retry_after: Option<&str>, body: &str, expected: &str) {
        check_with(
            &CodeOverrides::default(),
            status,
            retry_after,
            body,
            expected,
        );
    }

    #[track_caller]
    fn check_with(
        overrides: &CodeOverrides,
        status: u16,
        retry_after: Option<&str>,
        body: &str,
        expected: &str,
    ) {
        let verdict = classify(status, retry_after, body.as_bytes(), "42", overrides);
        let text = match verdict {
            Verdict::Accepted {
                provider_id,
                duplicate,
            } => format!("accepted {provider_id} duplicate={duplicate}"),
            Verdict::Permanent { reason } => format!("permanent {reason}"),
            Verdict::ProviderRetry {
                kind,
                reason,
                retry_after,
            } => format!("provider-retry {kind:?} {retry_after:?} {reason}"),
            Verdict::UrlFailure { kind, reason } => format!("url-failure {kind:?} {reason}"),
        };
        assert_eq!(text, expected);
    }

    fn json(code: i64, provider_id: &str) -> String {
        format!(
            r#"{{"code": {code}, "description": "d", "message_id": "42", "provider_id": {provider_id}}}"#
        )
    }

    /// SPEC M14: success, and a duplicate of our own earlier send is a success
    /// with the original provider id.
    #[test]
    fn accepted_and_duplicate() {
        check(
            200,
            None,
            &json(0, r#""p-1""#),
            "accepted p-1 duplicate=false",
        );
        check(
            200,
            None,
            &json(14, r#""p-1""#),
            "accepted p-1 duplicate=true",
        );
        check(200, None, &json(0, "77"), "accepted 77 duplicate=false");
        check(
            200,
            None,
            &json(0, "null"),
            "url-failure ProviderError code 0 (accepted): d, but no provider_id",
        );
    }

    /// SPEC M14: authentication, sender, carrier, length are permanent; so are a
    /// missing field and any code we do not know.
    #[test]
    fn permanent_codes() {
        check(
            200,
            None,
            &json(10, "null"),
            "permanent code 10 (authentication failed): d",
        );
        check(
            200,
            None,
            &json(11, "null"),
            "permanent code 11 (invalid sender): d",
        );
        check(
            200,
            None,
            &json(12, "null"),
            "permanent code 12 (invalid destination): d",
        );
        check(
            200,
            None,
            &json(13, "null"),
            "permanent code 13 (message too long): d",
        );
        check(
            400,
            None,
            &json(30, "null"),
            "permanent code 30 (missing field): d",
        );
        check(
            200,
            None,
            &json(99, "null"),
            "permanent code 99 (unknown code): d",
        );
    }

    /// SPEC M14: throttled and internal error are retried, on the same URL.
    #[test]
    fn retry_codes() {
        check(
            200,
            None,
            &json(20, "null"),
            "provider-retry Throttled None code 20 (throttled): d",
        );
        check(
            200,
            Some("3"),
            &json(21, "null"),
            "provider-retry ProviderError Some(3s) code 21 (internal error): d",
        );
    }

    /// SPEC M10: 408 and 5xx are transport failures of the URL, 429 honours
    /// Retry-After, another 4xx is permanent.
    #[test]
    fn http_statuses() {
        check(
            503,
            None,
            "down",
            "url-failure TransportFailure HTTP 503: down",
        );
        check(408, None, "", "url-failure TransportFailure HTTP 408: ");
        check(
            429,
            Some("7"),
            "slow down",
            "provider-retry Throttled Some(7s) HTTP 429: slow down",
        );
        check(
            429,
            Some("Wed, 21 Oct 2015 07:28:00 GMT"),
            "",
            "provider-retry Throttled None HTTP 429: ",
        );
        check(
            429,
            Some("999999"),
            "",
            "provider-retry Throttled Some(3600s) HTTP 429: ",
        );
        check(404, None, "not found", "permanent HTTP 404: not found");
        check(
            403,
            None,
            &json(0, r#""p""#),
            &format!("permanent HTTP 403: {}", json(0, r#""p""#)),
        );
        check(
            302,
            None,
            "",
            "url-failure ProviderError unexpected HTTP 302: ",
        );
    }

    /// SPEC M3: an abnormal answer (unreadable, or about another message) is a
    /// failure of the URL.
    #[test]
    fn abnormal_answers() {
        check(
            200,
            None,
            "<html>maintenance</html>",
            "url-failure ProviderError HTTP 200 with an unreadable answer (expected value at line 1 column 1): <html>maintenance</html>",
        );
        check(
            200,
            None,
            r#"{"code": 0, "message_id": "41", "provider_id": "p"}"#,
            "url-failure ProviderError answer for message_id 41, not 42: code 0 (accepted): ",
        );
    }

    #[test]
    fn overrides_move_codes() {
        let overrides = CodeOverrides {
            permanent: vec![21],
            retry: vec![13, 40],
        };
        check_with(
            &overrides,
            200,
            None,
            &json(21, "null"),
            "permanent code 21 (internal error): d",
        );
        check_with(
            &overrides,
            200,
            None,
            &json(40, "null"),
            "provider-retry ProviderError None code 40 (unknown code): d",
        );
        check_with(
            &overrides,
            200,
            None,
            &json(13, "null"),
            "provider-retry ProviderError None code 13 (message too long): d",
        );
    }
}
