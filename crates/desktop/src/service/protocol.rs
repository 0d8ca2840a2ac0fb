//! The desktop protocol's messages (`PROTOCOL.md`, version 1): requests read
//! from text frames, answers and events written as JSON. Pure: no socket,
//! no clock.

use hotsite_site::agents::{AgentError, AgentView};
use hotsite_site::SiteRequestError;
use serde_json::{json, Value};

/// The protocol version `hello` answers with.
pub const PROTOCOL_VERSION: u32 = 1;

/// Ids are JSON numbers; above 2^53 a JavaScript client cannot tell them apart.
const MAX_ID: u64 = (1 << 53) - 1;

/// A request from the desktop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Configuration service (D1): who is there.
    Hello {
        /// The desktop application's name.
        application: String,
        /// The user name.
        user: String,
        /// The password or a session token.
        credential: Credential,
    },
    /// Log the person's agent in on its DN.
    Login,
    /// Ready.
    Ready,
    /// NotReady.
    NotReady,
    /// Log out with reason `manual`.
    Logout,
    /// Liveness.
    Ping,
    /// The desktop's switchover decisions since it last sent them (D7:
    /// available to monitoring); published on the site's event stream.
    Decisions(Vec<Decision>),
}

/// One decision as a desktop reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The decision's kind (`switch_over`, `warn`, …).
    pub kind: String,
    /// Its reason code.
    pub reason: String,
    /// The site or listener it names, if any.
    pub about: Option<String>,
    /// When the desktop decided, wall-clock ms.
    pub at_ms: i64,
}

/// Most decisions in one `decisions` request.
pub const MAX_DECISIONS: usize = 64;

/// Longest kind, reason or `about` taken (the machine's are far shorter).
const MAX_DECISION_TEXT: usize = 64;

/// How a `hello` proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The password, checked against the stored hash (slow on purpose).
    Password(String),
    /// A session token from an earlier `hello` at either site (`session.rs`).
    Token(String),
}

/// A request with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed {
    /// The client's id, echoed in the answer.
    pub id: u64,
    /// What it asks.
    pub request: Request,
}

/// A frame that is not a request: answered `bad_request`, naming what was
/// wrong; the connection stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    /// The id, when one could be read.
    pub id: Option<u64>,
    /// What was wrong.
    pub message: String,
}

fn decisions(value: Option<&Value>) -> Result<Vec<Decision>, String> {
    let Some(Value::Array(list)) = value else {
        return Err("decisions needs \"decisions\": an array".to_owned());
    };
    if list.len() > MAX_DECISIONS {
        return Err(format!(
            "at most {MAX_DECISIONS} decisions per request, not {}",
            list.len()
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let text = |name: &str, required: bool| -> Result<Option<String>, String> {
                match item.get(name) {
                    // Printable only: these go into event texts and logs.
                    Some(Value::String(text))
                        if !text.is_empty()
                            && text.len() <= MAX_DECISION_TEXT
                            && !text.chars().any(char::is_control) =>
                    {
                        Ok(Some(text.clone()))
                    }
                    None | Some(Value::Null) if !required => Ok(None),
                    _ => Err(format!(
                        "decisions[{i}].{name}: a string of 1 to {MAX_DECISION_TEXT} bytes, \
                         no control characters"
                    )),
                }
            };
            Ok(Decision {
                kind: text("kind", true)?.unwrap_or_default(),
                reason: text("reason", true)?.unwrap_or_default(),
                about: text("about", false)?,
                at_ms: item
                    .get("at_ms")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| format!("decisions[{i}].at_ms: a number (wall-clock ms)"))?,
            })
        })
        .collect()
}

/// Stable error codes (`PROTOCOL.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The application is not in `desktop.applications`.
    UnknownApplication,
    /// Unknown user or wrong password.
    BadCredentials,
    /// A session token that is expired, altered or from another key: say
    /// `hello` again with the password.
    BadSession,
    /// Three failed `hello`s: closed.
    TooManyAttempts,
    /// A request before a successful `hello`.
    HelloExpected,
    /// No successful `hello` in time: closed.
    HelloTimeout,
    /// The DN has no phone registered here while peered (S3, S8).
    DnOutOfService,
    /// The site is draining (S7).
    Draining,
    /// Another agent holds the DN.
    DnTaken,
    /// The agent is logged in on another DN.
    AlreadyLoggedIn,
    /// The agent is not logged in here.
    NotLoggedIn,
    /// The agent is not configured at this site.
    UnknownAgent,
    /// The DN is not configured at this site.
    UnknownDn,
    /// The site system is not running.
    SiteUnavailable,
    /// Not a request of this protocol.
    BadRequest,
    /// Too many `decisions` reports in a short time.
    RateLimited,
}

impl Code {
    /// As in `error` messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::UnknownApplication => "unknown_application",
            Code::BadCredentials => "bad_credentials",
            Code::BadSession => "bad_session",
            Code::TooManyAttempts => "too_many_attempts",
            Code::HelloExpected => "hello_expected",
            Code::HelloTimeout => "hello_timeout",
            Code::DnOutOfService => "dn_out_of_service",
            Code::Draining => "draining",
            Code::DnTaken => "dn_taken",
            Code::AlreadyLoggedIn => "already_logged_in",
            Code::NotLoggedIn => "not_logged_in",
            Code::UnknownAgent => "unknown_agent",
            Code::UnknownDn => "unknown_dn",
            Code::SiteUnavailable => "site_unavailable",
            Code::BadRequest => "bad_request",
            Code::RateLimited => "rate_limited",
        }
    }
}

/// Reads one text frame.
pub fn parse(text: &str) -> Result<Framed, BadRequest> {
    let value: Value = serde_json::from_str(text).map_err(|error| BadRequest {
        id: None,
        message: format!("not JSON: {error}"),
    })?;
    let Value::Object(object) = value else {
        return Err(BadRequest {
            id: None,
            message: "expected a JSON object with a \"type\" and an \"id\"".to_owned(),
        });
    };
    let id = match object.get("id") {
        Some(id) => match id.as_u64().filter(|id| *id <= MAX_ID) {
            Some(id) => Some(id),
            None => {
                return Err(BadRequest {
                    id: None,
                    message: format!("\"id\" must be a whole number from 0 to 2^53-1, not {id}"),
                })
            }
        },
        None => None,
    };
    let bad = |message: String| BadRequest { id, message };
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(other) => return Err(bad(format!("\"type\" must be a string, not {other}"))),
        None => return Err(bad("missing \"type\"".to_owned())),
    };
    let Some(id) = id else {
        return Err(bad(format!("missing \"id\" in a {kind:?} request")));
    };
    let text_field = |name: &str| match object.get(name) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(bad(format!("\"{name}\" of hello must be a string"))),
        None => Err(bad(format!("hello needs \"{name}\""))),
    };
    let request = match kind {
        "hello" => Request::Hello {
            application: text_field("application")?,
            user: text_field("user")?,
            credential: match (
                object.contains_key("password"),
                object.contains_key("token"),
            ) {
                (true, false) => Credential::Password(text_field("password")?),
                (false, true) => Credential::Token(text_field("token")?),
                (true, true) => {
                    return Err(bad(
                        "hello takes \"password\" or \"token\", not both".to_owned()
                    ))
                }
                (false, false) => {
                    return Err(bad("hello needs \"password\" (or \"token\")".to_owned()))
                }
            },
        },
        "login" => Request::Login,
        "ready" => Request::Ready,
        "not_ready" => Request::NotReady,
        "logout" => Request::Logout,
        "ping" => Request::Ping,
        "decisions" => Request::Decisions(decisions(object.get("decisions")).map_err(bad)?),
        other => {
            return Err(bad(format!(
                "unknown type {other:?}: expected hello, login, ready, not_ready, logout, ping or decisions"
            )))
        }
    };
    Ok(Framed { id, request })
}

/// An `error` message; without `id` it ends the connection.
pub fn error(id: Option<u64>, code: Code, message: &str) -> Value {
    let mut value = json!({"type": "error", "code": code.as_str(), "message": message});
    if let Some(id) = id {
        value["id"] = json!(id);
    }
    value
}

/// A `result` with `fields` added.
pub fn result(id: u64, fields: Value) -> Value {
    let mut value = json!({"type": "result", "id": id});
    if let (Value::Object(answer), Value::Object(fields)) = (&mut value, fields) {
        answer.extend(fields);
    }
    value
}

/// An agent as the protocol shows it.
pub fn agent_json(agent: &AgentView) -> Value {
    json!({"id": agent.id, "dn": agent.dn, "state": agent.state.as_str()})
}

/// The code of a site refusal.
pub fn site_error(error: &SiteRequestError) -> (Code, String) {
    let code = match error {
        SiteRequestError::Stopped => Code::SiteUnavailable,
        SiteRequestError::Agent(error) => match error {
            AgentError::UnknownAgent(_) => Code::UnknownAgent,
            AgentError::UnknownDn(_) => Code::UnknownDn,
            AgentError::NotLoggedIn(_) => Code::NotLoggedIn,
            AgentError::AlreadyLoggedIn { .. } => Code::AlreadyLoggedIn,
            AgentError::DnTaken { .. } => Code::DnTaken,
            AgentError::DnOutOfService(_) => Code::DnOutOfService,
            AgentError::Draining => Code::Draining,
            AgentError::BadReason(_) => Code::BadRequest,
        },
    };
    (code, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_bad(text: &str, id: Option<u64>, needle: &str) {
        let bad = parse(text).unwrap_err();
        assert_eq!(bad.id, id, "{text}");
        assert!(bad.message.contains(needle), "{text}: {}", bad.message);
    }

    #[test]
    fn requests_parse() {
        assert_eq!(
            parse(
                r#"{"type":"hello","id":1,"application":"a","user":"u","password":"p","extra":1}"#
            ),
            Ok(Framed {
                id: 1,
                request: Request::Hello {
                    application: "a".into(),
                    user: "u".into(),
                    credential: Credential::Password("p".into())
                }
            })
        );
        assert_eq!(
            parse(r#"{"type":"hello","id":2,"application":"a","user":"u","token":"v1.1.x"}"#),
            Ok(Framed {
                id: 2,
                request: Request::Hello {
                    application: "a".into(),
                    user: "u".into(),
                    credential: Credential::Token("v1.1.x".into())
                }
            })
        );
        assert_eq!(
            parse(
                r#"{"type":"decisions","id":3,"decisions":[{"kind":"switch_over","reason":"telephony_off_timeout","about":"b","at_ms":17},{"kind":"wait","reason":"telephony_off","about":null,"at_ms":18}]}"#
            ),
            Ok(Framed {
                id: 3,
                request: Request::Decisions(vec![
                    Decision {
                        kind: "switch_over".into(),
                        reason: "telephony_off_timeout".into(),
                        about: Some("b".into()),
                        at_ms: 17
                    },
                    Decision {
                        kind: "wait".into(),
                        reason: "telephony_off".into(),
                        about: None,
                        at_ms: 18
                    },
                ])
            })
        );
        for (kind, request) in [
            ("login", Request::Login),
            ("ready", Request::Ready),
            ("not_ready", Request::NotReady),
            ("logout", Request::Logout),
            ("ping", Request::Ping),
        ] {
            let framed = parse(&format!(r#"{{"type":"{kind}","id":9007199254740991}}"#)).unwrap();
            assert_eq!(
                framed,
                Framed {
                    id: MAX_ID,
                    request
                }
            );
        }
    }

    /// DESIGN.md invariant 3: bad input gets an error that names the problem.
    #[test]
    fn bad_frames_name_the_problem() {
        check_bad("{", None, "not JSON");
        check_bad("[1]", None, "expected a JSON object");
        check_bad(
            r#"{"type":"ping","id":-1}"#,
            None,
            "\"id\" must be a whole number",
        );
        check_bad(r#"{"type":"ping","id":9007199254740992}"#, None, "2^53");
        check_bad(r#"{"type":"ping"}"#, None, "missing \"id\"");
        check_bad(r#"{"id":3}"#, Some(3), "missing \"type\"");
        check_bad(r#"{"type":7,"id":3}"#, Some(3), "\"type\" must be a string");
        check_bad(
            r#"{"type":"dance","id":4}"#,
            Some(4),
            "unknown type \"dance\"",
        );
        check_bad(
            r#"{"type":"hello","id":5,"user":"u","password":"p"}"#,
            Some(5),
            "\"application\"",
        );
        check_bad(
            r#"{"type":"decisions","id":6}"#,
            Some(6),
            "decisions needs \"decisions\": an array",
        );
        check_bad(
            r#"{"type":"decisions","id":6,"decisions":[{"kind":"warn","reason":"telephony_off"}]}"#,
            Some(6),
            "decisions[0].at_ms",
        );
        check_bad(
            r#"{"type":"decisions","id":6,"decisions":[{"kind":"","reason":"x","at_ms":1}]}"#,
            Some(6),
            "decisions[0].kind: a string of 1 to 64",
        );
        let many = format!(
            r#"{{"type":"decisions","id":6,"decisions":[{}]}}"#,
            vec![r#"{"kind":"warn","reason":"r","at_ms":1}"#; MAX_DECISIONS + 1].join(",")
        );
        check_bad(&many, Some(6), "at most 64 decisions");
        check_bad(
            r#"{"type":"decisions","id":6,"decisions":[{"kind":"warn\nFAKE LOG LINE","reason":"x","at_ms":1}]}"#,
            Some(6),
            "no control characters",
        );
        check_bad(
            r#"{"type":"hello","id":5,"application":"a","user":"u"}"#,
            Some(5),
            "hello needs \"password\" (or \"token\")",
        );
        check_bad(
            r#"{"type":"hello","id":5,"application":"a","user":"u","password":"p","token":"t"}"#,
            Some(5),
            "not both",
        );
        check_bad(
            r#"{"type":"hello","id":5,"application":"a","user":"u","token":7}"#,
            Some(5),
            "\"token\" of hello must be a string",
        );
        check_bad(
            r#"{"type":"hello","id":5,"application":"a","user":1,"password":"p"}"#,
            Some(5),
            "\"user\" of hello must be a string",
        );
    }

    #[test]
    fn answers_and_errors() {
        assert_eq!(
            result(2, json!({"agent": {"id": "alice"}})),
            json!({"type": "result", "id": 2, "agent": {"id": "alice"}})
        );
        assert_eq!(
            error(None, Code::HelloTimeout, "late"),
            json!({"type": "error", "code": "hello_timeout", "message": "late"})
        );
        let (code, message) = site_error(&SiteRequestError::Agent(AgentError::Draining));
        assert_eq!(code.as_str(), "draining");
        assert!(message.contains("draining"));
        assert_eq!(
            site_error(&SiteRequestError::Stopped).0,
            Code::SiteUnavailable
        );
    }
}
