//! One desktop connection: `hello` first, then requests, events, `stats`
//! and `service` changes until either side closes (`PROTOCOL.md`).
//!
//! The task only moves frames, events and time; what a frame means is in
//! `protocol.rs`, what the site allows is the site's machine.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket};
use hotsite_core::EventKind;
use hotsite_host::clock;
use hotsite_host::Record;
use hotsite_site::agents::AgentView;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::protocol::{self, agent_json, Code, Credential, Framed, Request};
use super::router::Routed;
use super::session::SessionError;
use super::{Person, Shared, MAX_HELLO_ATTEMPTS, STATS_INTERVAL};

/// Why the loop stopped: the socket is gone, or it was closed with a frame.
struct Closed;

/// Runs one connection to its end. `_done` tells shutdown when it is over.
pub(crate) async fn run(mut socket: WebSocket, shared: Arc<Shared>, _done: mpsc::Sender<()>) {
    let Ok((id, person, session_expires)) = hello(&mut socket, &shared).await else {
        return;
    };
    let _ = serve(&mut socket, &shared, (id, session_expires), &person).await;
}

/// Sends one message; `Err` when the socket is gone.
async fn send(socket: &mut WebSocket, message: &Value) -> Result<(), Closed> {
    // A send waits until the frame is flushed: a desktop that stopped
    // reading (zero window) would hold its task and its connection slot
    // for ever (DESIGN.md invariant 6). Bounded, it is closed instead.
    match tokio::time::timeout(
        SEND_TIMEOUT,
        socket.send(Message::Text(message.to_string().into())),
    )
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(Closed),
    }
}

/// How often a desktop may report its decisions (D7): a token bucket, so
/// that a desktop cannot flood the site's event stream.
pub(crate) struct DecisionReports {
    tokens: u32,
    refilled: std::time::Instant,
}

impl DecisionReports {
    /// Reports in a row (a switchover brings one or two).
    pub(crate) const BURST: u32 = 10;
    /// Then one per this long.
    pub(crate) const EVERY: std::time::Duration = std::time::Duration::from_secs(3);

    fn new(now: std::time::Instant) -> DecisionReports {
        DecisionReports {
            tokens: Self::BURST,
            refilled: now,
        }
    }

    fn take(&mut self, now: std::time::Instant) -> bool {
        let earned =
            now.saturating_duration_since(self.refilled).as_millis() / Self::EVERY.as_millis();
        if earned > 0 {
            self.tokens = (self.tokens + earned as u32).min(Self::BURST);
            self.refilled = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// Frames other than `hello` answered before a connection is closed.
const MAX_FRAMES_BEFORE_HELLO: u32 = 10;

/// Longest a frame may take to go out before the connection is dropped.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sends a close frame (best effort) and ends the loop.
async fn close(socket: &mut WebSocket, code: u16, reason: &str) -> Closed {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(frame)).await;
    Closed
}

/// What a received frame was, for both phases.
enum Frame {
    Text(String),
    /// Pings, pongs: only alive.
    Control,
}

/// The next frame, or the end: a close, a read error (an oversized frame
/// closes with 1009), a binary frame answered `bad_request`.
async fn next_frame(socket: &mut WebSocket, shared: &Shared) -> Result<Frame, Closed> {
    match socket.recv().await {
        None | Some(Ok(Message::Close(_))) => Err(Closed),
        Some(Ok(Message::Text(text))) => Ok(Frame::Text(text.as_str().to_owned())),
        Some(Ok(Message::Binary(_))) => {
            send(
                socket,
                &protocol::error(
                    None,
                    Code::BadRequest,
                    "binary frames are not part of the protocol: send JSON text frames",
                ),
            )
            .await?;
            Ok(Frame::Control)
        }
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(Frame::Control),
        Some(Err(error)) => {
            let too_big = error
                .into_inner()
                .downcast::<tungstenite::Error>()
                .is_ok_and(|error| matches!(*error, tungstenite::Error::Capacity(_)));
            if too_big {
                shared
                    .counters
                    .closed_too_big
                    .fetch_add(1, Ordering::Relaxed);
                Err(close(
                    socket,
                    close_code::SIZE,
                    &format!("frames are at most {} bytes", super::MAX_FRAME),
                )
                .await)
            } else {
                Err(Closed)
            }
        }
    }
}

/// Until a successful `hello` (D1): at most [`MAX_HELLO_ATTEMPTS`] failures,
/// within `desktop.hello_timeout`.
/// The `hello`'s id and the person signed in.
/// With a token, also the token's expiry: the new token keeps it, so that
/// signing in with tokens never extends a session past `session_ttl`.
async fn hello(
    socket: &mut WebSocket,
    shared: &Shared,
) -> Result<(u64, Person, Option<i64>), Closed> {
    let deadline = clock::now() + shared.config.hello_timeout;
    let mut failures = 0;
    let mut not_hello = 0;
    loop {
        let frame = tokio::select! {
            () = shared.shutdown.cancelled() => {
                return Err(close(socket, close_code::AWAY, "the site is stopping").await)
            }
            () = clock::sleep_until(Some(deadline)) => {
                shared.counters.closed_hello_timeout.fetch_add(1, Ordering::Relaxed);
                let message = format!(
                    "no successful hello within {} (desktop.hello_timeout)",
                    humantime(shared.config.hello_timeout)
                );
                send(socket, &protocol::error(None, Code::HelloTimeout, &message)).await?;
                return Err(close(socket, close_code::POLICY, "hello_timeout").await);
            }
            frame = next_frame(socket, shared) => frame?,
        };
        let Frame::Text(text) = frame else { continue };
        // Frames that are no hello at all are answered, but not for ever: a
        // stranger may not keep a connection busy without signing in.
        let parsed = protocol::parse(&text);
        if !matches!(
            parsed,
            Ok(Framed {
                request: Request::Hello { .. },
                ..
            })
        ) {
            not_hello += 1;
            if not_hello > MAX_FRAMES_BEFORE_HELLO {
                shared
                    .counters
                    .closed_too_many_attempts
                    .fetch_add(1, Ordering::Relaxed);
                let message = format!("{MAX_FRAMES_BEFORE_HELLO} frames without a hello");
                send(
                    socket,
                    &protocol::error(None, Code::TooManyAttempts, &message),
                )
                .await?;
                return Err(close(socket, close_code::POLICY, "too_many_attempts").await);
            }
        }
        let (id, application, user, credential) = match parsed {
            Err(bad) => {
                send(
                    socket,
                    &protocol::error(bad.id, Code::BadRequest, &bad.message),
                )
                .await?;
                continue;
            }
            Ok(Framed {
                id,
                request:
                    Request::Hello {
                        application,
                        user,
                        credential,
                    },
            }) => (id, application, user, credential),
            Ok(Framed { id, .. }) => {
                let message = "send hello first (application, user, password)";
                send(
                    socket,
                    &protocol::error(Some(id), Code::HelloExpected, message),
                )
                .await?;
                continue;
            }
        };
        let refused = if !shared.config.applications.contains(&application) {
            shared
                .counters
                .hello_unknown_application
                .fetch_add(1, Ordering::Relaxed);
            (
                Code::UnknownApplication,
                format!("application {application:?} is not allowed at this site (desktop.applications)"),
            )
        } else {
            let person = shared.people.get(&user).cloned();
            match credential {
                Credential::Password(password) => {
                    let hash = person.as_ref().map(|p| p.password_hash.clone());
                    if shared.verifier.verify(password, hash).await {
                        if let Some(person) = person {
                            shared.counters.hello_ok.fetch_add(1, Ordering::Relaxed);
                            return Ok((id, person, None));
                        }
                    }
                    shared
                        .counters
                        .hello_bad_credentials
                        .fetch_add(1, Ordering::Relaxed);
                    (
                        Code::BadCredentials,
                        "unknown user or wrong password".to_owned(),
                    )
                }
                Credential::Token(token) => {
                    // An unknown user costs the same MAC as a known one: the
                    // answer's timing does not tell which users exist.
                    let (name, phc) = person.as_ref().map_or((user.as_str(), ""), |p| {
                        (p.user.as_str(), p.password_hash.as_str())
                    });
                    let checked = shared.sessions.check(&token, name, phc, clock::now_ms());
                    match (checked, person) {
                        (Ok(expires_ms), Some(person)) => {
                            shared
                                .counters
                                .hello_session
                                .fetch_add(1, Ordering::Relaxed);
                            return Ok((id, person, Some(expires_ms)));
                        }
                        (error, _) => {
                            shared
                                .counters
                                .hello_bad_session
                                .fetch_add(1, Ordering::Relaxed);
                            let why = error.err().unwrap_or(SessionError::Invalid);
                            (
                                Code::BadSession,
                                format!("{why}: say hello with the password"),
                            )
                        }
                    }
                }
            }
        };
        failures += 1;
        tracing::info!(
            user,
            application,
            code = refused.0.as_str(),
            failures,
            "desktop hello refused"
        );
        send(socket, &protocol::error(Some(id), refused.0, &refused.1)).await?;
        if failures >= MAX_HELLO_ATTEMPTS {
            shared
                .counters
                .closed_too_many_attempts
                .fetch_add(1, Ordering::Relaxed);
            let message = format!("{MAX_HELLO_ATTEMPTS} failed hellos on one connection");
            send(
                socket,
                &protocol::error(None, Code::TooManyAttempts, &message),
            )
            .await?;
            return Err(close(socket, close_code::POLICY, "too_many_attempts").await);
        }
    }
}

/// The answer to a successful `hello` (D1, D2), with the state now.
fn welcome(
    shared: &Shared,
    (id, session_expires): (u64, Option<i64>),
    person: &Person,
    agent: Value,
    dn: Value,
) -> Value {
    let expires_ms = session_expires.unwrap_or_else(|| {
        clock::now_ms().saturating_add(
            i64::try_from(shared.config.session_ttl.as_millis()).unwrap_or(i64::MAX),
        )
    });
    let token = shared
        .sessions
        .issue(&person.user, &person.password_hash, expires_ms);
    protocol::result(
        id,
        json!({
            "protocol": protocol::PROTOCOL_VERSION,
            "site": shared.site_name,
            "person": {
                "user": person.user,
                "agent": person.agent,
                "dn": person.dn,
                "preferred_site": person.preferred_site,
                "secondary_site": person.secondary_site,
            },
            "sites": shared.config.sites.iter()
                .map(|s| json!({"name": s.name, "url": s.url}))
                .collect::<Vec<_>>(),
            "services": services(shared.stats.borrow().is_some()),
            "agent": agent,
            "dn": dn,
            "session": {"token": token, "expires_ms": expires_ms},
        }),
    )
}

fn services(site_answers: bool) -> Value {
    let state = if site_answers { "on" } else { "off" };
    json!({"configuration": "on", "telephony": state, "statistics": state})
}

/// After `hello`: requests, events, stats, service changes, limits.
async fn serve(
    socket: &mut WebSocket,
    shared: &Shared,
    hello: (u64, Option<i64>),
    person: &Person,
) -> Result<(), Closed> {
    // Subscribed before the state is read: no event falls between the
    // answer and the first event (one may repeat what the answer says).
    let mut events = shared.router.subscribe(&person.agent, &person.dn);
    let (agent, dn) = current_state(shared, person).await;
    send(socket, &welcome(shared, hello, person, agent, dn)).await?;
    let mut reports = DecisionReports::new(clock::now());
    let idle_timeout = shared.config.idle_timeout;
    let mut idle_deadline = clock::now() + idle_timeout;
    let mut stats = shared.stats.clone();
    let mut site_answers = stats.borrow_and_update().is_some();
    let mut tick = tokio::time::interval_at((clock::now() + STATS_INTERVAL).into(), STATS_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => {
                // A drain's logouts were published before the site let the
                // process stop: they are in the receiver, send them first.
                while let Some(record) = events.try_recv() {
                    if let Some(message) = event_message(&record, person) {
                        send(socket, &message).await?;
                    }
                }
                return Err(close(socket, close_code::AWAY, "the site is stopping").await);
            }
            () = clock::sleep_until(Some(idle_deadline)) => {
                shared.counters.closed_idle.fetch_add(1, Ordering::Relaxed);
                let reason = format!("no frame for {} (desktop.idle_timeout)", humantime(idle_timeout));
                return Err(close(socket, close_code::NORMAL, &reason).await);
            }
            frame = next_frame(socket, shared) => {
                idle_deadline = clock::now() + idle_timeout;
                if let Frame::Text(text) = frame? {
                    let answer = answer_request(shared, person, &mut reports, &text).await;
                    send(socket, &answer).await?;
                }
            }
            received = events.recv() => match received {
                Some(Routed::Event(record)) => {
                    if let Some(message) = event_message(&record, person) {
                        send(socket, &message).await?;
                    }
                }
                Some(Routed::Lagged) => {
                    tracing::warn!(user = person.user, "desktop fell behind its events; sending the current state");
                    resync(socket, shared, person).await?;
                }
                None => return Ok(()),
            },
            _ = tick.tick() => {
                let current = *stats.borrow();
                if let Some(numbers) = current {
                    send(socket, &json!({
                        "type": "stats",
                        "agents_logged_in": numbers.agents_logged_in,
                        "agents_ready": numbers.agents_ready,
                        "calls_waiting": numbers.calls_waiting,
                        "calls_active": numbers.calls_active,
                    })).await?;
                }
            }
            changed = stats.changed() => {
                if changed.is_err() {
                    continue;
                }
                let answers = stats.borrow_and_update().is_some();
                if answers != site_answers {
                    site_answers = answers;
                    let state = if answers { "on" } else { "off" };
                    for service in ["telephony", "statistics"] {
                        send(socket, &json!({"type": "service", "service": service, "state": state})).await?;
                    }
                }
            }
        }
    }
}

/// The agent and the DN now, as `hello`'s answer shows them.
async fn current_state(shared: &Shared, person: &Person) -> (Value, Value) {
    let agent = match shared.site.agent(&person.agent).await {
        Ok(Some(agent)) => agent_json(&agent),
        _ => agent_json(&AgentView {
            id: person.agent.clone(),
            dn: None,
            state: hotsite_site::agents::AgentState::LoggedOut,
        }),
    };
    let in_service = shared
        .site
        .dn_in_service(&person.dn)
        .await
        .ok()
        .flatten()
        .unwrap_or(false);
    (agent, json!({"dn": person.dn, "in_service": in_service}))
}

/// After lost events: the current state as events.
async fn resync(socket: &mut WebSocket, shared: &Shared, person: &Person) -> Result<(), Closed> {
    let (agent, dn) = current_state(shared, person).await;
    send(
        socket,
        &json!({"type": "agent", "agent": agent, "cause": "resync"}),
    )
    .await?;
    let in_service = dn["in_service"].clone();
    send(
        socket,
        &json!({"type": "dn", "dn": person.dn, "in_service": in_service, "cause": "resync"}),
    )
    .await
}

/// The answer to one request after `hello`.
async fn answer_request(
    shared: &Shared,
    person: &Person,
    reports: &mut DecisionReports,
    text: &str,
) -> Value {
    let Framed { id, request } = match protocol::parse(text) {
        Ok(framed) => framed,
        Err(bad) => return protocol::error(bad.id, Code::BadRequest, &bad.message),
    };
    let site = &shared.site;
    let done = match request {
        Request::Ping => return protocol::result(id, json!({})),
        Request::Decisions(decisions) => {
            if !reports.take(clock::now()) {
                return protocol::error(
                    Some(id),
                    Code::RateLimited,
                    &format!(
                        "at most {} decisions reports in a row, then one every {} s",
                        DecisionReports::BURST,
                        DecisionReports::EVERY.as_secs()
                    ),
                );
            }
            let accepted = decisions.len();
            // One event per report, not per decision: a switchover storm
            // brings thousands of desktops, each with the decisions of its
            // outage, and the event stream is shared with the site's own
            // events that desktops follow.
            shared.events.publish(hotsite_core::Event {
                at: clock::now(),
                target: hotsite_core::Target::new(
                    &shared.site_name,
                    &format!("desktop/{}", person.user),
                ),
                kind: EventKind::DesktopDecisions {
                    user: person.user.clone(),
                    decisions: decisions
                        .into_iter()
                        .map(|d| hotsite_core::DesktopDecision {
                            decision: d.kind,
                            reason: d.reason,
                            about: d.about,
                            decided_ms: d.at_ms,
                        })
                        .collect(),
                },
            });
            return protocol::result(id, json!({"accepted": accepted}));
        }
        Request::Hello { .. } => {
            return protocol::error(
                Some(id),
                Code::BadRequest,
                &format!("already signed in as {:?} on this connection", person.user),
            )
        }
        Request::Login => site.login(&person.agent, &person.dn).await,
        Request::Ready => site.set_ready(&person.agent, true).await,
        Request::NotReady => site.set_ready(&person.agent, false).await,
        Request::Logout => site.logout(&person.agent, "manual").await,
    };
    match done {
        Ok(agent) => protocol::result(id, json!({"agent": agent_json(&agent)})),
        Err(error) => {
            let (code, message) = protocol::site_error(&error);
            protocol::error(Some(id), code, &message)
        }
    }
}

/// The event for this person, if `record` is one (`agent`, `logged_out`, `dn`).
pub(crate) fn event_message(record: &Record, person: &Person) -> Option<Value> {
    if record.system != hotsite_site::SYSTEM {
        return None;
    }
    match &record.event.kind {
        EventKind::Agent {
            agent,
            dn,
            state,
            reason,
        } if *agent == person.agent => Some(if *state == "logged_out" {
            json!({
                "type": "logged_out",
                "agent": {"id": agent, "dn": null, "state": "logged_out"},
                "reason": reason,
            })
        } else {
            json!({
                "type": "agent",
                "agent": {"id": agent, "dn": dn, "state": state},
                "cause": reason,
            })
        }),
        EventKind::DnService {
            dn,
            in_service,
            cause,
        } if *dn == person.dn => Some(json!({
            "type": "dn", "dn": dn, "in_service": in_service, "cause": cause,
        })),
        _ => None,
    }
}

fn humantime(duration: std::time::Duration) -> String {
    humantime::format_duration(duration).to_string()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::DecisionReports;

    /// D7 without a flood: ten reports in a row, then one per three seconds.
    #[test]
    fn decision_reports_are_rate_limited() {
        #[allow(clippy::disallowed_methods)] // test epoch: only offsets matter
        let start = Instant::now();
        let mut reports = DecisionReports::new(start);
        for i in 0..DecisionReports::BURST {
            assert!(reports.take(start), "report {i}");
        }
        assert!(!reports.take(start));
        assert!(!reports.take(start + Duration::from_millis(2_999)));
        assert!(reports.take(start + Duration::from_secs(3)));
        assert!(!reports.take(start + Duration::from_secs(3)));
        // A long quiet refills the burst, no more.
        let later = start + Duration::from_secs(3600);
        for _ in 0..DecisionReports::BURST {
            assert!(reports.take(later));
        }
        assert!(!reports.take(later));
    }
}
