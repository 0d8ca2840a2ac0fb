//! `POST /sms/send` on a site of the HTTP API: the form, its checks and result
//! codes (the contract is in the `http` module docs), and the delivery
//! receipts it schedules.
//!
//! Reading and checking the form is pure ([`read_submit`], [`check_content`]);
//! the handler adds what needs the provider: authentication, faults, dedupe.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::http::callbacks::{self, Callback};
use crate::http::form::{self, Form};
use crate::http::ServerRef;
use crate::port::lock;
use crate::shared::Shared;
use crate::smpp::provider::{HttpSubmission, HttpSubmitOutcome};
use crate::stats::CallbackStats;

/// Longest `message`, in characters.
pub(crate) const MAX_MESSAGE_CHARS: usize = 1600;
/// Longest client `message_id`, in characters.
pub(crate) const MAX_CLIENT_ID_CHARS: usize = 64;
/// Longest alphanumeric `sender`.
const MAX_ALPHANUMERIC_SENDER: usize = 11;
/// Most digits in a numeric `sender`.
const MAX_NUMERIC_SENDER: usize = 16;
/// Fewest and most digits in `phone_number`.
const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 6..=16;
/// Largest form accepted: far above any valid submit.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The required fields, in the order a missing one is reported.
const REQUIRED: [&str; 6] = [
    "login",
    "password",
    "phone_number",
    "sender",
    "message",
    "message_id",
];

/// A result code of the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResultCode {
    Accepted = 0,
    AuthenticationFailed = 10,
    InvalidSender = 11,
    InvalidDestination = 12,
    MessageTooLong = 13,
    Duplicate = 14,
    Throttled = 20,
    InternalError = 21,
    MissingField = 30,
    Malformed = 31,
}

impl ResultCode {
    fn number(self) -> u16 {
        self as u16
    }

    /// Codes 30 and 31 are the client's mistakes in HTTP terms too.
    fn http_status(self) -> StatusCode {
        match self {
            ResultCode::MissingField | ResultCode::Malformed => StatusCode::BAD_REQUEST,
            _ => StatusCode::OK,
        }
    }
}

/// The JSON answer to every submit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SubmitAnswer {
    pub(crate) code: u16,
    pub(crate) description: String,
    pub(crate) message_id: Option<String>,
    pub(crate) provider_id: Option<String>,
}

/// A form with every required field, its values in range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubmitForm {
    pub(crate) login: String,
    pub(crate) password: String,
    pub(crate) phone_number: String,
    pub(crate) sender: String,
    pub(crate) message: String,
    pub(crate) message_id: String,
    pub(crate) receipt: bool,
    pub(crate) priority: u8,
}

/// A submit refused before it reached the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: ResultCode,
    pub(crate) description: String,
    /// The client's id, when it could be read.
    pub(crate) message_id: Option<String>,
}

/// Per-site counters of the HTTP API (transport counters live on the server).
#[derive(Debug, Clone, Default)]
pub(crate) struct SiteCounters {
    pub(crate) accepted: u64,
    pub(crate) duplicates_dropped: u64,
    pub(crate) codes: BTreeMap<u16, u64>,
    pub(crate) callbacks: CallbackStats,
}

/// Reads the form of a submit: content type, encoding, required fields,
/// `receipt`, `priority` and the length of `message_id`.
pub(crate) fn read_submit(content_type: Option<&str>, body: &[u8]) -> Result<SubmitForm, Refusal> {
    let malformed = |description: String| Refusal {
        code: ResultCode::Malformed,
        description: format!("malformed request: {description}"),
        message_id: None,
    };
    let is_form = content_type
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(malformed(format!(
            "content type must be application/x-www-form-urlencoded, got {}",
            content_type.unwrap_or("none")
        )));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(malformed(format!(
            "body larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    let form = form::parse(body).map_err(|error| malformed(error.to_string()))?;
    let message_id = form
        .get("message_id")
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let with_id = |mut refusal: Refusal| {
        refusal.message_id.clone_from(&message_id);
        refusal
    };
    if let Some(missing) = REQUIRED.iter().find(|name| {
        form.get(name)
            .is_none_or(|value| value.is_empty() && !may_be_empty(name))
    }) {
        return Err(with_id(Refusal {
            code: ResultCode::MissingField,
            description: format!("missing field {missing}"),
            message_id: None,
        }));
    }
    let receipt = match form.get("receipt") {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => {
            return Err(with_id(malformed(format!(
                "receipt must be 0 or 1, got {other:?}"
            ))))
        }
    };
    let priority = match form.get("priority") {
        None => 0,
        Some(text) => match text.parse::<u8>() {
            Ok(priority @ 0..=3) => priority,
            _ => {
                return Err(with_id(malformed(format!(
                    "priority must be 0 to 3, got {text:?}"
                ))))
            }
        },
    };
    let field = |name: &str| form_value(&form, name);
    let client_id = field("message_id");
    if client_id.chars().count() > MAX_CLIENT_ID_CHARS {
        return Err(malformed(format!(
            "message_id must be at most {MAX_CLIENT_ID_CHARS} characters"
        )));
    }
    Ok(SubmitForm {
        login: field("login"),
        password: field("password"),
        phone_number: field("phone_number"),
        sender: field("sender"),
        message: field("message"),
        message_id: client_id,
        receipt,
        priority,
    })
}

/// Fields whose empty value is checked as a value, not reported missing:
/// an empty sender is an invalid sender (11), an empty number an invalid
/// destination (12), an empty message a message, and an empty password a
/// failed login (10).
fn may_be_empty(name: &str) -> bool {
    matches!(name, "password" | "sender" | "phone_number" | "message")
}

fn form_value(form: &Form, name: &str) -> String {
    form.get(name).unwrap_or_default().to_owned()
}

/// Checks sender, destination and length (codes 11, 12, 13).
pub(crate) fn check_content(submit: &SubmitForm) -> Result<(), (ResultCode, String)> {
    if !valid_sender(&submit.sender) {
        return Err((
            ResultCode::InvalidSender,
            format!(
                "invalid sender {:?}: 1 to {MAX_NUMERIC_SENDER} digits, or 1 to \
                 {MAX_ALPHANUMERIC_SENDER} letters, digits and spaces",
                submit.sender
            ),
        ));
    }
    if !valid_phone_number(&submit.phone_number) {
        return Err((
            ResultCode::InvalidDestination,
            format!(
                "invalid destination {:?}: {} to {} digits, optional leading +",
                submit.phone_number,
                PHONE_DIGITS.start(),
                PHONE_DIGITS.end()
            ),
        ));
    }
    let length = submit.message.chars().count();
    if length > MAX_MESSAGE_CHARS {
        return Err((
            ResultCode::MessageTooLong,
            format!("message too long: {length} characters, at most {MAX_MESSAGE_CHARS}"),
        ));
    }
    Ok(())
}

fn valid_sender(sender: &str) -> bool {
    let digits = sender.strip_prefix('+').unwrap_or(sender);
    if !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return digits.len() <= MAX_NUMERIC_SENDER;
    }
    !sender.is_empty()
        && sender.len() <= MAX_ALPHANUMERIC_SENDER
        && sender
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b' ')
}

fn valid_phone_number(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or(number);
    PHONE_DIGITS.contains(&digits.len()) && digits.bytes().all(|byte| byte.is_ascii_digit())
}

/// The router of HTTP API site `site`.
pub(crate) fn router(shared: Arc<Shared>, site: usize) -> Router {
    Router::new()
        .route("/sms/send", post(send))
        .with_state(SiteState { shared, site })
}

#[derive(Clone)]
struct SiteState {
    shared: Arc<Shared>,
    site: usize,
}

async fn send(State(state): State<SiteState>, headers: HeaderMap, body: Bytes) -> Response {
    let received_us = state.shared.clock.elapsed_us();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let (code, answer) = match read_submit(content_type, &body) {
        Err(refusal) => (
            refusal.code,
            SubmitAnswer {
                code: refusal.code.number(),
                description: refusal.description,
                message_id: refusal.message_id,
                provider_id: None,
            },
        ),
        Ok(submit) => submit_to_provider(&state, &submit, received_us),
    };
    {
        let mut counters = lock(&state.shared.http_sites[state.site].counters);
        *counters.codes.entry(code.number()).or_default() += 1;
        match code {
            ResultCode::Accepted => counters.accepted += 1,
            ResultCode::Duplicate => counters.duplicates_dropped += 1,
            _ => {}
        }
    }
    tracing::debug!(code = code.number(), ?answer, "submit");
    (code.http_status(), Json(answer)).into_response()
}

fn submit_to_provider(
    state: &SiteState,
    submit: &SubmitForm,
    received_us: u64,
) -> (ResultCode, SubmitAnswer) {
    let shared = &state.shared;
    let site = &shared.http_sites[state.site].server;
    let answer = |code: ResultCode, description: String, provider_id: Option<String>| {
        (
            code,
            SubmitAnswer {
                code: code.number(),
                description,
                message_id: Some(submit.message_id.clone()),
                provider_id,
            },
        )
    };
    let mut provider = shared.provider();
    if !provider.check_login(&submit.login, &submit.password) {
        return answer(
            ResultCode::AuthenticationFailed,
            "authentication failed".to_owned(),
            None,
        );
    }
    if let Err((code, description)) = check_content(submit) {
        return answer(code, description, None);
    }
    let outcome = provider.submit_http(
        HttpSubmission {
            site: &site.name,
            login: &submit.login,
            phone_number: &submit.phone_number,
            sender: &submit.sender,
            message: &submit.message,
            client_message_id: &submit.message_id,
        },
        site.fault(),
        received_us,
    );
    match outcome {
        HttpSubmitOutcome::Throttled => answer(ResultCode::Throttled, "throttled".to_owned(), None),
        HttpSubmitOutcome::InternalError => {
            answer(ResultCode::InternalError, "internal error".to_owned(), None)
        }
        HttpSubmitOutcome::Duplicate { provider_id } => answer(
            ResultCode::Duplicate,
            "duplicate message_id: already accepted".to_owned(),
            Some(provider_id),
        ),
        HttpSubmitOutcome::Accepted { provider_id } => {
            if submit.receipt && shared.callbacks.has_dr_url() {
                let (site_index, copies) =
                    provider.http_receipt_plan(state.site, shared.http_sites.len());
                let status = provider.final_state().stat();
                drop(provider);
                schedule_receipt(shared, submit, &provider_id, status, site_index, copies);
            }
            answer(
                ResultCode::Accepted,
                "accepted".to_owned(),
                Some(provider_id),
            )
        }
    }
}

/// Posts the receipt `lab.receipts.delay_ms` from now, `copies` times at once.
fn schedule_receipt(
    shared: &Arc<Shared>,
    submit: &SubmitForm,
    provider_id: &str,
    status: &str,
    site: usize,
    copies: u8,
) {
    let delay = Duration::from_millis(shared.config.receipts.delay_ms);
    let site_name = shared.http_sites[site].server.name.clone();
    let done_at = (shared.clock.unix_ms() + shared.config.receipts.delay_ms).to_string();
    let body = form::encode(&[
        ("message_id", &submit.message_id),
        ("provider_id", provider_id),
        ("status", status),
        ("site", &site_name),
        ("done_at", &done_at),
    ]);
    let callback = Callback::receipt(ServerRef::Site(site), body);
    for _ in 0..copies {
        callbacks::post_after(shared, callback.clone(), delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "login=hotsite&password=secret&phone_number=%2B33612345678\
                         &sender=ACME&message=hello&message_id=m-1";

    #[track_caller]
    fn refused(body: &str) -> (ResultCode, String) {
        let refusal = read_submit(Some("application/x-www-form-urlencoded"), body.as_bytes())
            .expect_err(body);
        (refusal.code, refusal.description)
    }

    #[track_caller]
    fn content(body: &str) -> Result<(), ResultCode> {
        let submit =
            read_submit(Some("application/x-www-form-urlencoded"), body.as_bytes()).expect(body);
        check_content(&submit).map_err(|(code, _)| code)
    }

    #[test]
    fn a_valid_form_is_read_with_defaults() {
        let submit = read_submit(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            VALID.as_bytes(),
        )
        .expect("valid");
        assert_eq!(submit.phone_number, "+33612345678");
        assert_eq!((submit.receipt, submit.priority), (false, 0));
        assert_eq!(content(VALID), Ok(()));
        let with_options = format!("{VALID}&receipt=1&priority=3");
        let submit = read_submit(
            Some("application/x-www-form-urlencoded"),
            with_options.as_bytes(),
        )
        .expect("valid");
        assert_eq!((submit.receipt, submit.priority), (true, 3));
    }

    #[test]
    fn missing_fields_are_named_in_order() {
        assert_eq!(
            refused("password=secret"),
            (ResultCode::MissingField, "missing field login".to_owned())
        );
        let without_id = VALID.replace("&message_id=m-1", "&message_id=");
        assert_eq!(
            refused(&without_id),
            (
                ResultCode::MissingField,
                "missing field message_id".to_owned()
            )
        );
        let refusal = read_submit(
            Some("application/x-www-form-urlencoded"),
            b"message_id=abc&login=x",
        )
        .expect_err("missing");
        assert_eq!(refusal.message_id.as_deref(), Some("abc"));
        assert_eq!(refusal.code.http_status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn malformed_forms_say_what_is_wrong() {
        for (body, expected) in [
            (
                format!("{VALID}&receipt=2"),
                "receipt must be 0 or 1, got \"2\"",
            ),
            (
                format!("{VALID}&priority=4"),
                "priority must be 0 to 3, got \"4\"",
            ),
            (
                format!("{VALID}&login=again"),
                "field login appears more than once",
            ),
            (
                format!("{VALID}&x=%G1"),
                "invalid percent-encoding in field x",
            ),
        ] {
            let (code, description) = refused(&body);
            assert_eq!(code, ResultCode::Malformed, "{body}");
            assert!(description.ends_with(expected), "{description}");
        }
        let refusal = read_submit(Some("application/json"), b"{}").expect_err("json");
        assert_eq!(refusal.code, ResultCode::Malformed);
        assert!(refusal.description.contains("content type"), "{refusal:?}");
    }

    #[test]
    fn content_checks_give_their_codes() {
        let with = |field: &str, value: &str| {
            let mut parts: Vec<String> = VALID
                .split('&')
                .filter(|pair| !pair.starts_with(&format!("{field}=")))
                .map(str::to_owned)
                .collect();
            parts.push(format!("{field}={value}"));
            parts.join("&")
        };
        for sender in [
            "ACME",
            "ACME+Shop",
            "%2B4470001",
            "1234567890123456",
            "Shop1234567",
        ] {
            assert_eq!(content(&with("sender", sender)), Ok(()), "{sender}");
        }
        for sender in [
            "",
            "ACME-Shop",
            "ABCDEFGHIJKL",
            "12345678901234567",
            "caf%C3%A9",
        ] {
            assert_eq!(
                content(&with("sender", sender)),
                Err(ResultCode::InvalidSender),
                "{sender}"
            );
        }
        for number in ["123456", "%2B1234567890123456"] {
            assert_eq!(content(&with("phone_number", number)), Ok(()), "{number}");
        }
        for number in ["", "12345", "12345678901234567", "33+61234", "3361234567a"] {
            assert_eq!(
                content(&with("phone_number", number)),
                Err(ResultCode::InvalidDestination),
                "{number}"
            );
        }
        let long = "é".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(content(&with("message", &long)), Ok(()), "1600 characters");
        let too_long = format!("{long}x");
        assert_eq!(
            content(&with("message", &too_long)),
            Err(ResultCode::MessageTooLong)
        );
    }
}
