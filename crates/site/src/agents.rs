//! Agents at this site: who is logged in on which DN, Ready or NotReady, on a
//! call or in after-call work, and why each logout happened (SPEC S1, S3, S7,
//! S8 with D6). Plain state: the site machine decides *when* (a DN went out of
//! service, a drain started), this module keeps the rules of *what* is
//! allowed and reports every change as an [`AgentChange`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Why an agent was logged out (the platform's reason codes, SPEC S7, D6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogoutReason {
    /// The agent logged out.
    Manual,
    /// A supervisor logged the agent out.
    Supervisor,
    /// The agent's phone lost its registration in peered mode: the desktop
    /// follows the phone to the other site (SPEC S8, D6).
    DrForceLogout,
    /// The site is draining (SPEC S7).
    GracefulShutdownLogout,
    /// The agent logged in at the peer site (SPEC S1: one site at a time;
    /// `claims.rs`). Its desktop is there: nothing to follow.
    PeerLogin,
}

impl LogoutReason {
    /// As in the API and events.
    pub fn as_str(self) -> &'static str {
        match self {
            LogoutReason::Manual => "manual",
            LogoutReason::Supervisor => "supervisor",
            LogoutReason::DrForceLogout => "dr-force_logout",
            LogoutReason::GracefulShutdownLogout => "graceful_shutdown_logout",
            LogoutReason::PeerLogin => "peer_login",
        }
    }

    /// From the API: only the two an operator or desktop may ask for.
    pub fn requested(text: &str) -> Option<LogoutReason> {
        match text {
            "manual" => Some(LogoutReason::Manual),
            "supervisor" => Some(LogoutReason::Supervisor),
            _ => None,
        }
    }
}

/// An agent's state as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    /// Not logged in at this site.
    LoggedOut,
    /// Logged in, takes calls.
    Ready,
    /// Logged in, takes no queue calls.
    NotReady,
    /// On a call.
    Busy,
    /// Wrapping up after a call (`wrap_up`).
    AfterCallWork,
}

impl AgentState {
    /// As in the API and events.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged_out",
            AgentState::Ready => "ready",
            AgentState::NotReady => "not_ready",
            AgentState::Busy => "busy",
            AgentState::AfterCallWork => "after_call_work",
        }
    }
}

/// Why an agent request was refused. The API maps each to a status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// No such agent in `[[site.agents]]`.
    #[error("agent {0:?} is not configured at this site")]
    UnknownAgent(String),
    /// No such DN in `[[site.dns]]`.
    #[error("DN {0:?} is not configured at this site")]
    UnknownDn(String),
    /// The agent is not logged in here.
    #[error("agent {0} is not logged in at this site")]
    NotLoggedIn(String),
    /// The agent is logged in on another DN.
    #[error("agent {agent} is already logged in on DN {dn}; log out first")]
    AlreadyLoggedIn {
        /// The agent.
        agent: String,
        /// Its DN.
        dn: String,
    },
    /// Another agent holds the DN.
    #[error("DN {dn} is taken by agent {agent}")]
    DnTaken {
        /// The DN.
        dn: String,
        /// Who has it.
        agent: String,
    },
    /// Peered mode and the DN's phone is not registered here (SPEC S3: only
    /// single-site mode lets agents log in whatever their endpoint's state).
    #[error(
        "DN {0} has no phone registered at this site; while peered, an agent logs in \
         where its phone is registered"
    )]
    DnOutOfService(String),
    /// The site is draining (SPEC S7).
    #[error("this site is draining: log in at the peer site")]
    Draining,
    /// The logout reason is not one a request may give.
    #[error("logout reason {0:?}: expected \"manual\" or \"supervisor\"")]
    BadReason(String),
}

/// One change, for the event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentChange {
    /// The agent.
    pub agent: String,
    /// Its DN.
    pub dn: String,
    /// The state after.
    pub state: AgentState,
    /// Why.
    pub reason: String,
}

#[derive(Debug)]
struct Login {
    dn: String,
    ready: bool,
    calls: u32,
    wrap_up_until: Option<Instant>,
    /// When the login happened (claims compare logins across sites).
    since: Instant,
    /// Logged out when the last call ends (a drain reached a busy agent).
    logout_after_call: Option<LogoutReason>,
}

impl Login {
    fn state(&self, now: Instant) -> AgentState {
        if self.calls > 0 {
            AgentState::Busy
        } else if self.wrap_up_until.is_some_and(|until| now < until) {
            AgentState::AfterCallWork
        } else if self.ready {
            AgentState::Ready
        } else {
            AgentState::NotReady
        }
    }
}

/// The agents of this site.
#[derive(Debug)]
pub struct Agents {
    known: Vec<String>,
    logins: HashMap<String, Login>,
    /// DN → the agent logged in on it.
    by_dn: HashMap<String, String>,
    wrap_up: Duration,
    /// No wrap-up ends before this (a lower bound: a logout may have removed
    /// the earliest). Kept so that the site's every wake-up does not scan
    /// all agents; only a due bound does.
    next_wrap_up: Option<Instant>,
    changes: Vec<AgentChange>,
}

/// One agent as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentView {
    /// The agent's id.
    pub id: String,
    /// Its DN, when logged in.
    pub dn: Option<String>,
    /// Its state.
    pub state: AgentState,
}

impl Agents {
    /// The configured agents, all logged out.
    pub fn new(known: impl IntoIterator<Item = String>, wrap_up: Duration) -> Agents {
        let mut known: Vec<String> = known.into_iter().collect();
        known.sort();
        Agents {
            known,
            logins: HashMap::new(),
            by_dn: HashMap::new(),
            wrap_up,
            next_wrap_up: None,
            changes: Vec::new(),
        }
    }

    fn check_known(&self, agent: &str) -> Result<(), AgentError> {
        if self
            .known
            .binary_search_by(|k| k.as_str().cmp(agent))
            .is_ok()
        {
            Ok(())
        } else {
            Err(AgentError::UnknownAgent(agent.to_owned()))
        }
    }

    /// Logs `agent` in on `dn`, NotReady (the desktop sets Ready). The caller
    /// has checked the DN exists and the site's mode allows it.
    pub fn login(&mut self, now: Instant, agent: &str, dn: &str) -> Result<(), AgentError> {
        self.check_known(agent)?;
        if let Some(login) = self.logins.get(agent) {
            if login.dn == dn {
                return Ok(());
            }
            return Err(AgentError::AlreadyLoggedIn {
                agent: agent.to_owned(),
                dn: login.dn.clone(),
            });
        }
        if let Some(holder) = self.by_dn.get(dn) {
            return Err(AgentError::DnTaken {
                dn: dn.to_owned(),
                agent: holder.clone(),
            });
        }
        let login = Login {
            dn: dn.to_owned(),
            ready: false,
            calls: 0,
            wrap_up_until: None,
            since: now,
            logout_after_call: None,
        };
        let state = login.state(now);
        self.logins.insert(agent.to_owned(), login);
        self.by_dn.insert(dn.to_owned(), agent.to_owned());
        self.note(agent, dn, state, "login".to_owned());
        Ok(())
    }

    /// Ready or NotReady.
    pub fn set_ready(&mut self, now: Instant, agent: &str, ready: bool) -> Result<(), AgentError> {
        self.check_known(agent)?;
        let login = self
            .logins
            .get_mut(agent)
            .ok_or_else(|| AgentError::NotLoggedIn(agent.to_owned()))?;
        if login.ready == ready {
            return Ok(());
        }
        let before = login.state(now);
        login.ready = ready;
        let after = login.state(now);
        let dn = login.dn.clone();
        if before != after {
            let why = if ready { "set ready" } else { "set not ready" };
            self.note(agent, &dn, after, why.to_owned());
        }
        Ok(())
    }

    /// Logs `agent` out now.
    pub fn logout(&mut self, agent: &str, reason: LogoutReason) -> Result<(), AgentError> {
        self.check_known(agent)?;
        let login = self
            .logins
            .remove(agent)
            .ok_or_else(|| AgentError::NotLoggedIn(agent.to_owned()))?;
        self.by_dn.remove(&login.dn);
        self.note(
            agent,
            &login.dn,
            AgentState::LoggedOut,
            reason.as_str().to_owned(),
        );
        Ok(())
    }

    /// Logs `agent` out now, or when its call ends if it is on one (the call
    /// is not cut, and its end still counts). A logout already waiting for
    /// the call (a drain's) keeps its reason. True if logged out now.
    pub fn logout_when_idle(
        &mut self,
        agent: &str,
        reason: LogoutReason,
    ) -> Result<bool, AgentError> {
        self.check_known(agent)?;
        let login = self
            .logins
            .get_mut(agent)
            .ok_or_else(|| AgentError::NotLoggedIn(agent.to_owned()))?;
        if login.calls > 0 {
            login.logout_after_call.get_or_insert(reason);
            return Ok(false);
        }
        self.logout(agent, reason).map(|()| true)
    }

    /// Drain (SPEC S7): every agent NotReady; idle ones logged out at once,
    /// busy ones when their call ends.
    pub fn drain(&mut self, now: Instant) {
        let agents: Vec<String> = self.logins.keys().cloned().collect();
        for agent in agents {
            let _ = self.set_ready(now, &agent, false);
            let busy = self.logins.get(&agent).is_some_and(|login| login.calls > 0);
            if busy {
                if let Some(login) = self.logins.get_mut(&agent) {
                    login.logout_after_call = Some(LogoutReason::GracefulShutdownLogout);
                }
            } else {
                let _ = self.logout(&agent, LogoutReason::GracefulShutdownLogout);
            }
        }
    }

    /// A call to `dn` was answered: its agent (if any) is busy.
    pub fn call_started(&mut self, now: Instant, dn: &str) {
        let Some(agent) = self.by_dn.get(dn).cloned() else {
            return;
        };
        if let Some(login) = self.logins.get_mut(&agent) {
            login.calls += 1;
            if login.calls == 1 {
                let state = login.state(now);
                self.note(&agent, dn, state, "call answered".to_owned());
            }
        }
    }

    /// A call to `dn` ended: its agent wraps up, or is logged out if a drain
    /// was waiting for the call (SPEC S7).
    pub fn call_ended(&mut self, now: Instant, dn: &str) {
        let Some(agent) = self.by_dn.get(dn).cloned() else {
            return;
        };
        let Some(login) = self.logins.get_mut(&agent) else {
            return;
        };
        login.calls = login.calls.saturating_sub(1);
        if login.calls > 0 {
            return;
        }
        if let Some(reason) = login.logout_after_call {
            let _ = self.logout(&agent, reason);
            return;
        }
        if !self.wrap_up.is_zero() {
            let until = now + self.wrap_up;
            login.wrap_up_until = Some(until);
            self.next_wrap_up = Some(self.next_wrap_up.map_or(until, |next| next.min(until)));
        }
        let state = login.state(now);
        self.note(&agent, dn, state, "call ended".to_owned());
    }

    /// Ends wrap-ups that are over.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_wrap_up.is_none_or(|next| next > now) {
            return;
        }
        let mut over = Vec::new();
        for (agent, login) in &mut self.logins {
            if login.wrap_up_until.is_some_and(|until| until <= now) {
                login.wrap_up_until = None;
                over.push((agent.clone(), login.dn.clone(), login.state(now)));
            }
        }
        for (agent, dn, state) in over {
            self.note(&agent, &dn, state, "wrap-up over".to_owned());
        }
        self.next_wrap_up = self.logins.values().filter_map(|l| l.wrap_up_until).min();
    }

    /// The next wrap-up end (or a moment before it, after a logout).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_wrap_up
    }

    /// Every login: agent, DN and when it happened.
    pub fn logins(&self) -> impl Iterator<Item = (&str, &str, Instant)> {
        self.logins
            .iter()
            .map(|(agent, login)| (agent.as_str(), login.dn.as_str(), login.since))
    }

    /// When `agent` logged in here, if it is logged in.
    pub fn since(&self, agent: &str) -> Option<Instant> {
        self.logins.get(agent).map(|login| login.since)
    }

    /// The agent logged in on `dn`, if any.
    pub fn on_dn(&self, dn: &str) -> Option<&str> {
        self.by_dn.get(dn).map(String::as_str)
    }

    /// Whether anyone is on a call.
    pub fn any_busy(&self) -> bool {
        self.logins.values().any(|login| login.calls > 0)
    }

    /// How many agents are logged in.
    pub fn logged_in(&self) -> usize {
        self.logins.len()
    }

    /// How many agents are Ready now.
    pub fn ready(&self, now: Instant) -> usize {
        self.logins
            .values()
            .filter(|login| login.state(now) == AgentState::Ready)
            .count()
    }

    /// Every configured agent.
    pub fn list(&self, now: Instant) -> Vec<AgentView> {
        self.known.iter().map(|id| self.view(now, id)).collect()
    }

    /// One agent (configured or not: unknown ones show logged out).
    pub fn view(&self, now: Instant, id: &str) -> AgentView {
        match self.logins.get(id) {
            Some(login) => AgentView {
                id: id.to_owned(),
                dn: Some(login.dn.clone()),
                state: login.state(now),
            },
            None => AgentView {
                id: id.to_owned(),
                dn: None,
                state: AgentState::LoggedOut,
            },
        }
    }

    /// Whether `id` is configured.
    pub fn is_known(&self, id: &str) -> bool {
        self.check_known(id).is_ok()
    }

    /// The changes since the last call.
    pub fn take_changes(&mut self) -> Vec<AgentChange> {
        std::mem::take(&mut self.changes)
    }

    fn note(&mut self, agent: &str, dn: &str, state: AgentState, reason: String) {
        self.changes.push(AgentChange {
            agent: agent.to_owned(),
            dn: dn.to_owned(),
            state,
            reason,
        });
    }
}
