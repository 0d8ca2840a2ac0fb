//! The tokio desktop client: one WebSocket to one site at a time, driven by
//! the [`Switchover`] machine (D1–D8).
//!
//! The task only moves things between the machine and the world
//! (`PROTOCOL.md`, last two tables): protocol messages become machine
//! inputs, machine decisions become connections, requests and reports. A
//! switchover closes the connection and opens one to the other site in the
//! same task (D8: no restart). Every decision is reported with its reason
//! (D7), so a load tool or a UI sees exactly what the machine decided.

pub mod wire;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::switchover::{Input, Listener, LogoutReason, Millis, Options, Output, Switchover};
use wire::{HelloAnswer, ServerMessage, Stats};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Connecting = Pin<Box<dyn Future<Output = Result<(Socket, HelloAnswer), OpenError>> + Send>>;

/// `hello` refusals that the other site would repeat (the same people are
/// configured at both): the desktop stops instead of retrying for ever.
const FATAL: [&str; 3] = [
    "bad_credentials",
    "unknown_application",
    "too_many_attempts",
];

/// Why a connection did not get to a `hello` answer.
#[derive(Debug)]
enum OpenError {
    /// Connecting, the WebSocket or the answer failed.
    Transport(String),
    /// The site refused the `hello`.
    Refused { code: String, message: String },
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Transport(error) => f.write_str(error),
            OpenError::Refused { code, message } => write!(f, "hello refused: {code}: {message}"),
        }
    }
}

/// Missed pings in a row after which the connection counts as lost (D4:
/// the listeners go OFF).
const MISSED_PINGS: u32 = 3;

/// Decisions kept for the site while disconnected; beyond, the oldest go.
const OUTBOX: usize = 256;

/// Decisions per `decisions` request (the service takes 64).
const DECISIONS_PER_REQUEST: usize = 64;

/// How a desktop connects and what the machine is told.
#[derive(Debug, Clone)]
pub struct DesktopConfig {
    /// Both sites: name and WebSocket URL of the desktop service. The
    /// order is the machine's (`options.sites` is taken from here).
    pub sites: [(String, String); 2],
    /// The application name the sites accept (D1).
    pub application: String,
    /// The agent's user name.
    pub user: String,
    /// Its password (kept in memory only).
    pub password: String,
    /// The machine's timers (`sites` is overwritten from `sites` above).
    pub options: Options,
    /// The jitter seed: give each desktop its own.
    pub seed: u64,
    /// The site tried first without a usable cache (D1).
    pub start_site: String,
    /// The preferred site cached from an earlier run (D3).
    pub cached_preferred_site: Option<String>,
    /// A shared desktop: no caching (D3).
    pub hot_seating: bool,
    /// Heartbeat (PROTOCOL.md: every 5 s).
    pub ping_interval: Duration,
    /// Connecting and `hello` together, at most.
    pub connect_timeout: Duration,
}

impl DesktopConfig {
    /// A desktop for `user` with the machine's default options.
    pub fn new(sites: [(String, String); 2], user: &str, password: &str) -> DesktopConfig {
        let options = Options::with_defaults(&sites[0].0, &sites[1].0);
        DesktopConfig {
            start_site: sites[0].0.clone(),
            sites,
            application: "hotsite-desktops".to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
            options,
            seed: 1,
            cached_preferred_site: None,
            hot_seating: false,
            ping_interval: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// What the desktop reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// A decision of the machine, with its reason (D7).
    Decision(Output),
    /// Connected and `hello` answered at `site`.
    Connected {
        /// The site.
        site: String,
    },
    /// A connection attempt to `site` failed.
    ConnectFailed {
        /// The site.
        site: String,
        /// Why.
        error: String,
    },
    /// The connection to `site` was lost (closed, or pings unanswered).
    Lost {
        /// The site.
        site: String,
    },
    /// The agent is logged in at `site`.
    LoggedIn {
        /// The site.
        site: String,
    },
    /// The site refused the login.
    LoginRefused {
        /// The site.
        site: String,
        /// The server's code.
        code: String,
    },
    /// The site logged the agent out.
    LoggedOut {
        /// The site.
        site: String,
        /// The site's reason.
        reason: String,
    },
    /// The site refused the credentials or the application: the other site
    /// would too, so the desktop stops (as the web desktop does).
    Stopped {
        /// The site.
        site: String,
        /// The server's code (`bad_credentials`, `unknown_application`,
        /// `too_many_attempts`).
        code: String,
    },
    /// A request other than `login` was refused.
    Refused {
        /// The request.
        request: &'static str,
        /// The server's code.
        code: String,
    },
}

/// A report and when it happened, in the desktop's milliseconds since its
/// start.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    /// Milliseconds since the desktop started.
    pub at_ms: Millis,
    /// What.
    pub report: Report,
}

/// What the desktop is now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesktopState {
    /// The site connected to, if any.
    pub connected: Option<String>,
    /// The site the agent is logged in at, if any.
    pub logged_in: Option<String>,
    /// The agent's state as the site last said.
    pub agent_state: Option<String>,
    /// The preferred site the machine asked to cache (D3).
    pub cached_preferred_site: Option<String>,
    /// The last statistics.
    pub stats: Stats,
}

/// What the agent does (the buttons of a desktop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Ready.
    Ready,
    /// Not ready.
    NotReady,
    /// Log out (`manual`).
    Logout,
    /// Log in again by hand (after a `stay`).
    Login,
}

impl Command {
    fn request(self) -> &'static str {
        match self {
            Command::Ready => "ready",
            Command::NotReady => "not_ready",
            Command::Logout => "logout",
            Command::Login => "login",
        }
    }
}

/// A running desktop.
#[derive(Debug)]
pub struct Desktop {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<DesktopState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Why a desktop did not start.
#[derive(Debug, thiserror::Error)]
pub enum DesktopError {
    /// The machine's options are invalid.
    #[error(transparent)]
    Options(#[from] crate::switchover::OptionsError),
    /// The start site is not one of the two.
    #[error("start_site {0:?} is not one of the desktop's sites")]
    StartSite(String),
}

impl Desktop {
    /// Starts a desktop; its reports go to `reports`.
    pub fn start(
        config: DesktopConfig,
        reports: mpsc::UnboundedSender<Timed>,
    ) -> Result<Desktop, DesktopError> {
        let mut options = config.options.clone();
        options.sites = [config.sites[0].0.clone(), config.sites[1].0.clone()];
        let machine = Switchover::new(options, config.seed)?;
        if !config
            .sites
            .iter()
            .any(|(name, _)| *name == config.start_site)
        {
            return Err(DesktopError::StartSite(config.start_site.clone()));
        }
        let (commands, inbox) = mpsc::channel(16);
        let (state_tx, state) = watch::channel(DesktopState::default());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let driver = Driver {
            origin: hotsite_host::clock::now(),
            machine,
            config,
            reports,
            state: state_tx,
            socket: None,
            connecting: None,
            pending: HashMap::new(),
            next_id: 1,
            missed_pings: 0,
            listeners_off: false,
            stopped: false,
            token: None,
            outbox: std::collections::VecDeque::new(),
        };
        let task = tokio::spawn(driver.run(inbox, stopped));
        Ok(Desktop {
            commands,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// What the desktop is now.
    pub fn state(&self) -> DesktopState {
        self.state.borrow().clone()
    }

    /// A watch on the state.
    pub fn watch(&self) -> watch::Receiver<DesktopState> {
        self.state.clone()
    }

    /// Presses a button; false if the desktop has stopped.
    pub async fn command(&self, command: Command) -> bool {
        self.commands.send(command).await.is_ok()
    }

    /// Closes the connection and stops the task.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

struct Connection {
    site: String,
    socket: Socket,
}

struct Driver {
    origin: Instant,
    machine: Switchover,
    config: DesktopConfig,
    reports: mpsc::UnboundedSender<Timed>,
    state: watch::Sender<DesktopState>,
    socket: Option<Connection>,
    connecting: Option<(String, Connecting)>,
    /// Requests in flight: id → request type.
    pending: HashMap<u64, &'static str>,
    next_id: u64,
    missed_pings: u32,
    /// The machine was told the listeners are OFF (connection lost).
    listeners_off: bool,
    /// A fatal refusal: the task ends.
    stopped: bool,
    /// The session token of the last `hello` answer: the next `hello` (a
    /// reconnect or a switchover) says it instead of the password.
    token: Option<String>,
    /// Decisions not yet sent to a site (D7: they are available to
    /// monitoring there): sent in `decisions` requests once connected.
    outbox: std::collections::VecDeque<serde_json::Value>,
}

impl Driver {
    fn now(&self) -> Millis {
        hotsite_host::clock::now()
            .saturating_duration_since(self.origin)
            .as_millis() as Millis
    }

    fn report(&self, report: Report) {
        let _ = self.reports.send(Timed {
            at_ms: self.now(),
            report,
        });
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut stopped: tokio::sync::oneshot::Receiver<()>,
    ) {
        let start = Input::Start {
            site: self.config.start_site.clone(),
            cached_preferred_site: self.config.cached_preferred_site.clone(),
            hot_seating: self.config.hot_seating,
        };
        self.input(start);
        let mut ping = tokio::time::interval(self.config.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.stopped {
            self.act().await;
            self.send_decisions().await;
            let deadline = self
                .machine
                .poll_timeout()
                .map(|at| self.origin + Duration::from_millis(at));
            tokio::select! {
                _ = &mut stopped => break,
                command = commands.recv() => match command {
                    Some(command) => self.send(command.request()).await,
                    None => break,
                },
                connected = async {
                    match &mut self.connecting {
                        Some((_, future)) => future.await,
                        None => std::future::pending().await,
                    }
                } => {
                    let site = self.connecting.take().map(|(site, _)| site).unwrap_or_default();
                    self.connected(site, connected);
                }
                frame = async {
                    match &mut self.socket {
                        Some(connection) => connection.socket.next().await,
                        None => std::future::pending().await,
                    }
                } => self.frame(frame),
                _ = ping.tick() => self.ping().await,
                _ = sleep_until(deadline) => {
                    let now = self.now();
                    self.machine.handle_timeout(now);
                }
            }
        }
        if let Some(mut connection) = self.socket.take() {
            let _ = connection.socket.close(None).await;
        }
    }

    fn input(&mut self, input: Input) {
        let now = self.now();
        if let Err(error) = self.machine.handle_input(now, input) {
            tracing::warn!(%error, user = %self.config.user, "desktop machine refused an input");
        }
    }

    /// Carries out the machine's decisions.
    async fn act(&mut self) {
        while let Some(output) = self.machine.poll_output() {
            self.report(Report::Decision(output.clone()));
            self.keep_for_the_site(&output);
            match output {
                Output::Connect { site, .. } => {
                    self.drop_connection().await;
                    self.connect(site);
                }
                Output::Reconnect { site, .. } => {
                    if self.socket.is_none() && self.connecting.is_none() {
                        self.connect(site);
                    }
                }
                Output::SwitchOver { .. } => self.drop_connection().await,
                Output::LogIn { .. } => self.send("login").await,
                Output::CachePreferredSite { site, .. } => self
                    .state
                    .send_modify(|state| state.cached_preferred_site = Some(site)),
                Output::Warn { .. }
                | Output::ClearWarning { .. }
                | Output::Wait { .. }
                | Output::Stay { .. } => {}
            }
        }
    }

    fn keep_for_the_site(&mut self, output: &Output) {
        let Ok(value) = serde_json::to_value(output) else {
            return;
        };
        let about = value
            .get("site")
            .or_else(|| value.get("listener"))
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        if self.outbox.len() == OUTBOX {
            self.outbox.pop_front();
        }
        self.outbox.push_back(serde_json::json!({
            "kind": value["kind"],
            "reason": value["reason"],
            "about": about,
            "at_ms": hotsite_host::clock::now_ms(),
        }));
    }

    /// Sends the kept decisions, if connected.
    async fn send_decisions(&mut self) {
        while self.socket.is_some() && !self.outbox.is_empty() {
            let take = self.outbox.len().min(DECISIONS_PER_REQUEST);
            let decisions: Vec<serde_json::Value> = self.outbox.drain(..take).collect();
            self.send_with("decisions", serde_json::json!({ "decisions": decisions }))
                .await;
        }
    }

    fn connect(&mut self, site: String) {
        let Some(url) = self.url(&site) else {
            return;
        };
        let password = wire::hello(
            0,
            &self.config.application,
            &self.config.user,
            &self.config.password,
        );
        let token = self
            .token
            .as_ref()
            .map(|token| wire::hello_token(0, &self.config.application, &self.config.user, token));
        let limit = self.config.connect_timeout;
        let future = async move {
            tokio::time::timeout(limit, open(url, token, password))
                .await
                .map_err(|_| OpenError::Transport(format!("no answer within {limit:?}")))?
        };
        self.connecting = Some((site, Box::pin(future)));
    }

    fn url(&self, site: &str) -> Option<String> {
        self.config
            .sites
            .iter()
            .find(|(name, _)| name == site)
            .map(|(_, url)| url.clone())
    }

    fn connected(&mut self, site: String, result: Result<(Socket, HelloAnswer), OpenError>) {
        match result {
            Ok((socket, answer)) => {
                self.report(Report::Connected { site: site.clone() });
                // The sites' own list wins over the configured URLs (D1: a
                // desktop that knows one site finds the other).
                for endpoint in &answer.sites {
                    if let Some(known) = self
                        .config
                        .sites
                        .iter_mut()
                        .find(|(n, _)| *n == endpoint.name)
                    {
                        known.1 = endpoint.url.clone();
                    }
                }
                self.socket = Some(Connection {
                    site: site.clone(),
                    socket,
                });
                self.missed_pings = 0;
                self.pending.clear();
                self.token = answer.session.as_ref().map(|s| s.token.clone());
                let logged_in = answer.agent.state != "logged_out";
                self.state.send_modify(|state| {
                    state.connected = Some(site.clone());
                    state.agent_state = Some(answer.agent.state.clone());
                    state.logged_in = logged_in.then(|| site.clone());
                });
                self.input(Input::ConfigConnected { site });
                self.input(Input::ConfigAnswer {
                    preferred: answer.person.preferred_site,
                    secondary: answer.person.secondary_site,
                });
                if std::mem::take(&mut self.listeners_off) {
                    for listener in LISTENERS {
                        self.input(Input::ListenerOn { listener });
                    }
                }
                if !answer.dn.in_service {
                    self.input(Input::DnOutOfService);
                }
            }
            Err(OpenError::Refused { code, message }) if FATAL.contains(&code.as_str()) => {
                tracing::warn!(%site, %code, %message, user = %self.config.user, "desktop stopped: the site refused it");
                self.report(Report::Stopped { site, code });
                self.stopped = true;
            }
            Err(error) => {
                self.report(Report::ConnectFailed {
                    site: site.clone(),
                    error: error.to_string(),
                });
                self.input(Input::ConfigFailed { site });
            }
        }
    }

    fn frame(&mut self, frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) {
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return self.lost(),
            Some(Ok(_)) => return,
        };
        let message = match ServerMessage::parse(&text) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "desktop: a frame the client cannot read");
                return;
            }
        };
        let site = self
            .socket
            .as_ref()
            .map(|c| c.site.clone())
            .unwrap_or_default();
        match message {
            ServerMessage::Result { id, body } => {
                self.missed_pings = 0;
                if self.pending.remove(&id) == Some("login") {
                    let state = body["agent"]["state"].as_str().map(str::to_owned);
                    self.state.send_modify(|s| {
                        s.logged_in = Some(site.clone());
                        s.agent_state = state;
                    });
                    self.report(Report::LoggedIn { site });
                    self.input(Input::AgentLoggedIn);
                }
            }
            ServerMessage::Error { id, code, message } => {
                let request = id.and_then(|id| self.pending.remove(&id));
                match request {
                    Some("login") => {
                        self.report(Report::LoginRefused { site, code });
                        self.input(Input::LoginRefused { detail: message });
                    }
                    Some(request) => self.report(Report::Refused { request, code }),
                    None => {
                        tracing::warn!(%code, %message, "desktop: the site closes the connection")
                    }
                }
            }
            ServerMessage::Agent(agent) => {
                self.state
                    .send_modify(|s| s.agent_state = Some(agent.state.clone()));
            }
            ServerMessage::LoggedOut { reason } => {
                self.state.send_modify(|s| {
                    s.logged_in = None;
                    s.agent_state = Some("logged_out".to_owned());
                });
                self.report(Report::LoggedOut {
                    site,
                    reason: reason.clone(),
                });
                match logout_reason(&reason) {
                    Some(reason) => self.input(Input::AgentLoggedOut { reason }),
                    None => {
                        tracing::warn!(%reason, "desktop: a logout reason the machine does not know")
                    }
                }
            }
            ServerMessage::Dn(dn) => self.input(if dn.in_service {
                Input::DnBackInService
            } else {
                Input::DnOutOfService
            }),
            ServerMessage::Service { service, on } => {
                if let Some(listener) = listener(&service) {
                    self.input(if on {
                        Input::ListenerOn { listener }
                    } else {
                        Input::ListenerOff { listener }
                    });
                }
            }
            ServerMessage::Stats(stats) => self.state.send_modify(|s| s.stats = stats),
        }
    }

    /// The connection is gone: every listener OFF (D4, D5).
    fn lost(&mut self) {
        let Some(connection) = self.socket.take() else {
            return;
        };
        self.pending.clear();
        self.state.send_modify(|s| s.connected = None);
        self.report(Report::Lost {
            site: connection.site,
        });
        self.listeners_off = true;
        for listener in LISTENERS {
            self.input(Input::ListenerOff { listener });
        }
    }

    async fn drop_connection(&mut self) {
        self.connecting = None;
        if let Some(mut connection) = self.socket.take() {
            let _ = connection.socket.close(None).await;
            self.pending.clear();
            self.state.send_modify(|s| {
                s.connected = None;
                s.logged_in = None;
            });
        }
        // A new stack starts with its listeners ON (D8).
        self.listeners_off = false;
    }

    async fn ping(&mut self) {
        if self.socket.is_none() {
            return;
        }
        if self.missed_pings >= MISSED_PINGS {
            return self.lost();
        }
        self.missed_pings += 1;
        self.send("ping").await;
    }

    async fn send(&mut self, request: &'static str) {
        self.send_with(request, serde_json::json!({})).await;
    }

    async fn send_with(&mut self, request: &'static str, fields: serde_json::Value) {
        let id = self.next_id;
        self.next_id += 1;
        let Some(connection) = &mut self.socket else {
            return;
        };
        let text = wire::request_with(id, request, fields);
        if connection
            .socket
            .send(Message::Text(text.into()))
            .await
            .is_err()
        {
            return self.lost();
        }
        self.pending.insert(id, request);
    }
}

const LISTENERS: [Listener; 3] = [
    Listener::Telephony,
    Listener::Configuration,
    Listener::Statistics,
];

fn listener(service: &str) -> Option<Listener> {
    Some(match service {
        "telephony" => Listener::Telephony,
        "configuration" => Listener::Configuration,
        "statistics" => Listener::Statistics,
        _ => return None,
    })
}

fn logout_reason(reason: &str) -> Option<LogoutReason> {
    serde_json::from_value(serde_json::Value::String(reason.to_owned())).ok()
}

/// Opens the WebSocket and says `hello`, with the session token if there
/// is one and with the password if there is none or the site refuses the
/// token (`bad_session`); the answer or why not.
async fn open(
    url: String,
    token: Option<String>,
    password: String,
) -> Result<(Socket, HelloAnswer), OpenError> {
    let transport = |e: &dyn std::fmt::Display| OpenError::Transport(format!("{url}: {e}"));
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| transport(&e))?;
    let mut password = Some(password);
    let first = match token {
        Some(token) => token,
        None => password.take().unwrap_or_default(),
    };
    socket
        .send(Message::Text(first.into()))
        .await
        .map_err(|e| transport(&e))?;
    while let Some(frame) = socket.next().await {
        let text = match frame.map_err(|e| transport(&e))? {
            Message::Text(text) => text,
            Message::Close(_) => break,
            _ => continue,
        };
        match ServerMessage::parse(&text).map_err(|e| transport(&e))? {
            ServerMessage::Result { id: 0, body } => {
                let answer: HelloAnswer = serde_json::from_value(body)
                    .map_err(|e| transport(&format!("hello answer: {e}")))?;
                return Ok((socket, answer));
            }
            ServerMessage::Error { code, .. } if code == "bad_session" && password.is_some() => {
                let password = password.take().unwrap_or_default();
                socket
                    .send(Message::Text(password.into()))
                    .await
                    .map_err(|e| transport(&e))?;
            }
            ServerMessage::Error { code, message, .. } => {
                return Err(OpenError::Refused { code, message })
            }
            // Events before the answer cannot happen (PROTOCOL.md); skip.
            _ => continue,
        }
    }
    Err(transport(&"closed before the hello answer"))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
