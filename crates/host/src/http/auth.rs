//! The one auth layer: every system's `api` routes need
//! `Authorization: Bearer <token>` with one of the configured tokens.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use hotsite_core::Secret;

use super::error;

/// The accepted tokens.
#[derive(Clone)]
pub(crate) struct Tokens(pub(crate) Arc<Vec<Secret>>);

/// Lets the request through when it carries an accepted token; otherwise 401
/// with a JSON error saying which of the two problems it has.
pub(crate) async fn require_token(
    State(tokens): State<Tokens>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    match token {
        Some(token) if tokens.0.iter().any(|t| constant_time_eq(t.expose(), token)) => {
            next.run(request).await
        }
        Some(_) => error(StatusCode::UNAUTHORIZED, "unknown bearer token"),
        None => error(
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer <token>",
        ),
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is
/// case-insensitive (RFC 7235 section 2.1), so `bearer` and `BEARER` work too.
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares without stopping at the first difference, so the time taken says
/// nothing about how much of a guessed token was right.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7235 section 2.1: the auth scheme is case-insensitive.
    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for value in ["Bearer tok-1234", "bearer tok-1234", "BEARER  tok-1234"] {
            assert_eq!(bearer_token(value), Some("tok-1234"), "{value}");
        }
        for value in ["Basic tok-1234", "Bearer", "Bearer ", "Bearertok-1234"] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq("tok-1234", "tok-1234"));
        assert!(!constant_time_eq("tok-1234", "tok-1235"));
        assert!(!constant_time_eq("tok-1234", "tok-123"));
    }
}
