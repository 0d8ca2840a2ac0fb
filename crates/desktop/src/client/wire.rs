//! The desktop protocol's messages as the client reads and writes them
//! (`PROTOCOL.md`). Parsing is lenient about fields it does not use, so a
//! newer server's extra fields do not break an older desktop.

use serde::Deserialize;
use serde_json::{json, Value};

/// One of the two sites, as the `hello` answer lists them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SiteEndpoint {
    /// The site's name.
    pub name: String,
    /// Its desktop service, `ws://host:port/v1/desktop`.
    pub url: String,
}

/// The person behind the desktop, from the `hello` answer (D2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Person {
    /// The user name.
    pub user: String,
    /// The agent id it logs in as.
    pub agent: String,
    /// Its DN.
    pub dn: String,
    /// The preferred site.
    pub preferred_site: String,
    /// The secondary site.
    pub secondary_site: String,
}

/// An agent as the server shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AgentState {
    /// The agent id.
    pub id: String,
    /// The DN, when logged in.
    #[serde(default)]
    pub dn: Option<String>,
    /// `logged_out`, `ready`, `not_ready`, `busy`, `after_call_work`.
    pub state: String,
}

/// The DN's state.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DnState {
    /// The DN.
    pub dn: String,
    /// Whether a phone is registered for it at this site.
    pub in_service: bool,
}

/// The answer to `hello` (D1–D3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HelloAnswer {
    /// The site that answered.
    pub site: String,
    /// The person.
    pub person: Person,
    /// Both sites' endpoints.
    pub sites: Vec<SiteEndpoint>,
    /// The agent at this site now.
    pub agent: AgentState,
    /// The DN at this site now.
    pub dn: DnState,
    /// A token for the next `hello`, at either site (`PROTOCOL.md`).
    #[serde(default)]
    pub session: Option<Session>,
}

/// A session token (`hello` answer).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Session {
    /// The token.
    pub token: String,
    /// Until when it is good, wall-clock ms.
    pub expires_ms: i64,
}

/// The live statistics (D5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Stats {
    /// Agents logged in at the site.
    #[serde(default)]
    pub agents_logged_in: u64,
    /// Of them, Ready.
    #[serde(default)]
    pub agents_ready: u64,
    /// Calls waiting (ringing, not answered).
    #[serde(default)]
    pub calls_waiting: u64,
    /// Calls held.
    #[serde(default)]
    pub calls_active: u64,
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// The answer to request `id`.
    Result {
        /// The request's id.
        id: u64,
        /// The whole message (fields depend on the request).
        body: Value,
    },
    /// Request `id` was refused, or (without an id) the connection is
    /// being closed.
    Error {
        /// The request's id, if any.
        id: Option<u64>,
        /// The stable code.
        code: String,
        /// For people.
        message: String,
    },
    /// The agent changed state.
    Agent(AgentState),
    /// The agent was logged out, with the site's reason.
    LoggedOut {
        /// `manual`, `supervisor`, `dr-force_logout`,
        /// `graceful_shutdown_logout`, `peer_login`.
        reason: String,
    },
    /// The DN went out of service or came back.
    Dn(DnState),
    /// A service's state.
    Service {
        /// `configuration`, `telephony`, `statistics`.
        service: String,
        /// `on` or `off`.
        on: bool,
    },
    /// Statistics.
    Stats(Stats),
}

/// Why a server message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("desktop protocol: {0}")]
pub struct WireError(pub String);

impl ServerMessage {
    /// Reads one text frame.
    pub fn parse(text: &str) -> Result<ServerMessage, WireError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| WireError(format!("not JSON: {e}")))?;
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| WireError("a message without \"type\"".into()))?;
        let field = |name: &str| -> Result<Value, WireError> {
            value
                .get(name)
                .cloned()
                .ok_or_else(|| WireError(format!("{kind}: no \"{name}\"")))
        };
        Ok(match kind {
            "result" => ServerMessage::Result {
                id: field("id")?
                    .as_u64()
                    .ok_or_else(|| WireError("result: id is not a number".into()))?,
                body: value.clone(),
            },
            "error" => ServerMessage::Error {
                id: value.get("id").and_then(Value::as_u64),
                code: typed(kind, "code", field("code")?)?,
                message: value
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            },
            "agent" => ServerMessage::Agent(typed(kind, "agent", field("agent")?)?),
            "logged_out" => ServerMessage::LoggedOut {
                reason: typed(kind, "reason", field("reason")?)?,
            },
            "dn" => ServerMessage::Dn(typed(kind, "dn", value.clone())?),
            "service" => ServerMessage::Service {
                service: typed(kind, "service", field("service")?)?,
                on: field("state")?.as_str() == Some("on"),
            },
            "stats" => ServerMessage::Stats(typed(kind, "stats", value.clone())?),
            other => return Err(WireError(format!("unknown message type {other:?}"))),
        })
    }
}

fn typed<T: serde::de::DeserializeOwned>(kind: &str, name: &str, v: Value) -> Result<T, WireError> {
    serde_json::from_value(v).map_err(|e| WireError(format!("{kind}.{name}: {e}")))
}

/// `hello` with the password (D1).
pub fn hello(id: u64, application: &str, user: &str, password: &str) -> String {
    json!({"type": "hello", "id": id, "application": application, "user": user, "password": password})
        .to_string()
}

/// `hello` with a session token from an earlier `hello` (cheap for the site).
pub fn hello_token(id: u64, application: &str, user: &str, token: &str) -> String {
    json!({"type": "hello", "id": id, "application": application, "user": user, "token": token})
        .to_string()
}

/// A request: its type and id, and `fields` (an object, `{}` for none)
/// beside them: `login`, `ready`, `not_ready`, `logout`, `ping`,
/// `decisions`.
pub fn request_with(id: u64, kind: &str, fields: Value) -> String {
    let mut message = json!({"type": kind, "id": id});
    if let (Some(message), Value::Object(fields)) = (message.as_object_mut(), fields) {
        message.extend(fields);
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples of PROTOCOL.md read as the client expects.
    #[test]
    fn protocol_examples_parse() {
        let hello = r#"{"type": "result", "id": 1, "protocol": 1, "site": "a",
            "person": {"user": "alice", "agent": "alice", "dn": "1001", "preferred_site": "a", "secondary_site": "b"},
            "sites": [{"name": "a", "url": "ws://10.0.0.1:8080/v1/desktop"}, {"name": "b", "url": "ws://10.0.1.1:8080/v1/desktop"}],
            "services": {"configuration": "on", "telephony": "on", "statistics": "on"},
            "agent": {"id": "alice", "dn": null, "state": "logged_out"},
            "dn": {"dn": "1001", "in_service": true}}"#;
        let ServerMessage::Result { id: 1, body } = ServerMessage::parse(hello).unwrap() else {
            panic!("a result");
        };
        let answer: HelloAnswer = serde_json::from_value(body).unwrap();
        assert_eq!(answer.person.preferred_site, "a");
        assert_eq!(answer.sites[1].url, "ws://10.0.1.1:8080/v1/desktop");
        assert!(answer.dn.in_service);

        assert_eq!(
            ServerMessage::parse(r#"{"type": "logged_out", "agent": {"id": "alice", "dn": null, "state": "logged_out"}, "reason": "dr-force_logout"}"#).unwrap(),
            ServerMessage::LoggedOut { reason: "dr-force_logout".into() }
        );
        assert_eq!(
            ServerMessage::parse(
                r#"{"type": "dn", "dn": "1001", "in_service": false, "cause": "x"}"#
            )
            .unwrap(),
            ServerMessage::Dn(DnState {
                dn: "1001".into(),
                in_service: false
            })
        );
        assert_eq!(
            ServerMessage::parse(r#"{"type": "service", "service": "telephony", "state": "off"}"#)
                .unwrap(),
            ServerMessage::Service {
                service: "telephony".into(),
                on: false
            }
        );
        assert_eq!(
            ServerMessage::parse(r#"{"type": "stats", "agents_logged_in": 12, "agents_ready": 9, "calls_waiting": 2, "calls_active": 5}"#).unwrap(),
            ServerMessage::Stats(Stats { agents_logged_in: 12, agents_ready: 9, calls_waiting: 2, calls_active: 5 })
        );
        assert!(matches!(
            ServerMessage::parse(
                r#"{"type": "error", "id": 7, "code": "dn_out_of_service", "message": "m"}"#
            )
            .unwrap(),
            ServerMessage::Error { id: Some(7), .. }
        ));
    }

    /// Bad frames are named, not guessed.
    #[test]
    fn bad_frames_say_what_is_wrong() {
        for (text, says) in [
            ("nope", "not JSON"),
            (r#"{"id": 1}"#, "without \"type\""),
            (r#"{"type": "teleport"}"#, "unknown message type"),
            (r#"{"type": "result"}"#, "no \"id\""),
            (r#"{"type": "dn", "dn": "1001"}"#, "in_service"),
        ] {
            let error = ServerMessage::parse(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
