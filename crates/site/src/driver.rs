//! The tokio driver: one UDP socket and one task for the [`Site`] machine.
//!
//! The task only moves bytes, requests and time (DESIGN.md): it waits for a
//! datagram, a request from the API or the machine's next deadline, feeds the
//! machine, sends what it wants sent and publishes its events on the host's
//! stream. API requests (login, drain, status) reach the task over a channel
//! and are answered from the machine itself, so an answer is never staler
//! than the last datagram.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use hotsite_host::{Deps, Events, HttpRoutes};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::agents::{AgentError, AgentView};
use crate::config::{SiteConfig, SiteConfigError};
use crate::machine::{Site, SiteStats, SiteStatus};
use hotsite_host::clock;

/// Most datagrams handled per wake-up before the answers are sent.
const MAX_BATCH: usize = 64;

/// Why the site could not start.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// The `[site]` section is invalid.
    #[error(transparent)]
    Config(#[from] SiteConfigError),
    /// The socket could not be bound.
    #[error("site.listen: cannot bind UDP {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

/// What the API asks of the machine.
#[derive(Debug)]
pub(crate) enum Request {
    Login {
        agent: String,
        dn: String,
        reply: oneshot::Sender<Result<AgentView, AgentError>>,
    },
    Ready {
        agent: String,
        ready: bool,
        reply: oneshot::Sender<Result<AgentView, AgentError>>,
    },
    Logout {
        agent: String,
        reason: String,
        reply: oneshot::Sender<Result<AgentView, AgentError>>,
    },
    Agent {
        agent: String,
        reply: oneshot::Sender<Option<AgentView>>,
    },
    Dn {
        dn: String,
        reply: oneshot::Sender<Option<bool>>,
    },
    Stats {
        reply: oneshot::Sender<SiteStats>,
    },
    Drain {
        reply: oneshot::Sender<SiteStatus>,
    },
    Status {
        reply: oneshot::Sender<SiteStatus>,
    },
}

/// Resolves once a drain is over (SPEC S7): no call left, or
/// `drain_timeout` passed. Never without a drain.
#[derive(Debug, Clone)]
pub struct DrainWatch(watch::Receiver<bool>);

impl DrainWatch {
    /// Waits for the end of the drain (for ever if the site stops first
    /// without one).
    pub async fn wait(mut self) {
        if self.0.wait_for(|done| *done).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Why a request through [`SiteClient`] got no answer it could use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiteRequestError {
    /// The site refused it (its rules, SPEC S1, S3, S7).
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The site's task has stopped.
    #[error("the site system has stopped")]
    Stopped,
}

/// Requests to the running site from another system (the desktop service):
/// cheap to clone, answered by the site's task from the machine itself, in
/// order with the datagrams. Every method fails with
/// [`SiteRequestError::Stopped`] once the site has stopped.
#[derive(Debug, Clone)]
pub struct SiteClient {
    requests: mpsc::Sender<Request>,
}

impl SiteClient {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, SiteRequestError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(make(reply))
            .await
            .map_err(|_| SiteRequestError::Stopped)?;
        answer.await.map_err(|_| SiteRequestError::Stopped)
    }

    /// Logs `agent` in on `dn` (SPEC S1, S3).
    pub async fn login(&self, agent: &str, dn: &str) -> Result<AgentView, SiteRequestError> {
        let (agent, dn) = (agent.to_owned(), dn.to_owned());
        Ok(self
            .ask(|reply| Request::Login { agent, dn, reply })
            .await??)
    }

    /// Ready (`true`) or NotReady.
    pub async fn set_ready(&self, agent: &str, ready: bool) -> Result<AgentView, SiteRequestError> {
        let agent = agent.to_owned();
        Ok(self
            .ask(|reply| Request::Ready {
                agent,
                ready,
                reply,
            })
            .await??)
    }

    /// Logs `agent` out; `reason` is `manual` or `supervisor`.
    pub async fn logout(&self, agent: &str, reason: &str) -> Result<AgentView, SiteRequestError> {
        let (agent, reason) = (agent.to_owned(), reason.to_owned());
        Ok(self
            .ask(|reply| Request::Logout {
                agent,
                reason,
                reply,
            })
            .await??)
    }

    /// One agent's state; `None` when it is not configured here.
    pub async fn agent(&self, agent: &str) -> Result<Option<AgentView>, SiteRequestError> {
        let agent = agent.to_owned();
        self.ask(|reply| Request::Agent { agent, reply }).await
    }

    /// Whether `dn`'s phone is registered here (SPEC S8); `None` when the
    /// DN is not configured here.
    pub async fn dn_in_service(&self, dn: &str) -> Result<Option<bool>, SiteRequestError> {
        let dn = dn.to_owned();
        self.ask(|reply| Request::Dn { dn, reply }).await
    }

    /// Agents logged in and Ready, calls waiting and answered (SPEC D5).
    pub async fn stats(&self) -> Result<SiteStats, SiteRequestError> {
        self.ask(|reply| Request::Stats { reply }).await
    }

    /// The whole status (mode, peer, DNs, agents, counters).
    pub async fn status(&self) -> Result<SiteStatus, SiteRequestError> {
        self.ask(|reply| Request::Status { reply }).await
    }
}

/// The running site: its address, requests to it, and shutdown.
#[derive(Debug)]
pub struct SiteHandle {
    addr: SocketAddr,
    requests: mpsc::Sender<Request>,
    drained: watch::Receiver<bool>,
    snapshot: crate::system::Snapshot,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Binds `[site] listen` and starts the site: the handle and its routes
/// (`/v1/agents…`, `/v1/site…`) for the host.
pub async fn start(
    config: &SiteConfig,
    deps: &Deps,
) -> Result<(SiteHandle, HttpRoutes), SiteError> {
    let now = clock::now();
    let mut site = Site::new(config, now, clock::seed())?.with_wall_clock(now, clock::now_ms());
    let addr = config.listen_addr().map_err(|reason| {
        SiteError::Config(SiteConfigError(vec![hotsite_core::ConfigIssue::new(
            "site.listen",
            reason,
        )]))
    })?;
    let socket =
        hotsite_host::net::bind_udp(addr).map_err(|source| SiteError::Bind { addr, source })?;
    let addr = socket
        .local_addr()
        .map_err(|source| SiteError::Bind { addr, source })?;
    site.handle_timeout(now);
    let (requests, inbox) = mpsc::channel(256);
    let (drained_tx, drained) = watch::channel(false);
    let (stop, stopped) = oneshot::channel();
    let events = deps.events(crate::SYSTEM);
    let task = tokio::spawn(run(site, socket, inbox, drained_tx, stopped, events));
    let handle = SiteHandle {
        addr,
        requests: requests.clone(),
        drained,
        snapshot: Default::default(),
        stop: Some(stop),
        task: Some(task),
    };
    let routes = crate::system::routes(requests);
    Ok((handle, routes))
}

impl SiteHandle {
    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The site's status, from the machine.
    pub async fn status(&self) -> Option<SiteStatus> {
        self.client().status().await.ok()
    }

    /// A client for other systems (the desktop service), valid as long as
    /// the site runs, whoever owns this handle.
    pub fn client(&self) -> SiteClient {
        SiteClient {
            requests: self.requests.clone(),
        }
    }

    /// Logs `agent` in on `dn` (SPEC S1, S3); see [`SiteClient::login`].
    pub async fn login(&self, agent: &str, dn: &str) -> Result<AgentView, SiteRequestError> {
        self.client().login(agent, dn).await
    }

    /// Ready or NotReady; see [`SiteClient::set_ready`].
    pub async fn set_ready(&self, agent: &str, ready: bool) -> Result<AgentView, SiteRequestError> {
        self.client().set_ready(agent, ready).await
    }

    /// Logs `agent` out; see [`SiteClient::logout`].
    pub async fn logout(&self, agent: &str, reason: &str) -> Result<AgentView, SiteRequestError> {
        self.client().logout(agent, reason).await
    }

    /// One agent; see [`SiteClient::agent`].
    pub async fn agent(&self, agent: &str) -> Result<Option<AgentView>, SiteRequestError> {
        self.client().agent(agent).await
    }

    /// One DN's state; see [`SiteClient::dn_in_service`].
    pub async fn dn_in_service(&self, dn: &str) -> Result<Option<bool>, SiteRequestError> {
        self.client().dn_in_service(dn).await
    }

    /// The live numbers; see [`SiteClient::stats`].
    pub async fn stats(&self) -> Result<SiteStats, SiteRequestError> {
        self.client().stats().await
    }

    /// What resolves once a drain is over (SPEC S7), for whoever stops the
    /// process.
    pub fn drain_watch(&self) -> DrainWatch {
        DrainWatch(self.drained.clone())
    }

    /// Stops the task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    pub(crate) fn snapshot(&self) -> crate::system::Snapshot {
        self.snapshot.clone()
    }
}

async fn run(
    mut site: Site,
    socket: UdpSocket,
    mut inbox: mpsc::Receiver<Request>,
    drained: watch::Sender<bool>,
    mut stopped: oneshot::Receiver<()>,
    events: Events,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        flush(&mut site, &socket, &events).await;
        if site.drained(clock::now()) && !*drained.borrow() {
            let _ = drained.send(true);
        }
        let deadline = site.poll_timeout();
        tokio::select! {
            _ = &mut stopped => break,
            received = socket.recv_from(&mut buf) => {
                let now = clock::now();
                match received {
                    Ok((len, from)) => {
                        site.handle_datagram(now, from, Bytes::copy_from_slice(&buf[..len]));
                        // Whatever else is waiting, in the same wake-up.
                        for _ in 1..MAX_BATCH {
                            match socket.try_recv_from(&mut buf) {
                                Ok((len, from)) => site.handle_datagram(now, from, Bytes::copy_from_slice(&buf[..len])),
                                Err(_) => break,
                            }
                        }
                    }
                    // ICMP port unreachable and the like: the transactions
                    // time out on their own.
                    Err(error) => tracing::debug!(%error, "site socket receive error"),
                }
            }
            request = inbox.recv() => match request {
                Some(request) => handle(&mut site, clock::now(), request),
                None => break,
            },
            _ = clock::sleep_until(deadline) => site.handle_timeout(clock::now()),
        }
    }
    flush(&mut site, &socket, &events).await;
}

fn handle(site: &mut Site, now: Instant, request: Request) {
    let view = |site: &Site, agent: &str| {
        site.agent(now, agent)
            .ok_or_else(|| AgentError::UnknownAgent(agent.to_owned()))
    };
    match request {
        Request::Login { agent, dn, reply } => {
            let result = site
                .login(now, &agent, &dn)
                .and_then(|()| view(site, &agent));
            let _ = reply.send(result);
        }
        Request::Ready {
            agent,
            ready,
            reply,
        } => {
            let result = site
                .set_ready(now, &agent, ready)
                .and_then(|()| view(site, &agent));
            let _ = reply.send(result);
        }
        Request::Logout {
            agent,
            reason,
            reply,
        } => {
            let result = site
                .logout(now, &agent, &reason)
                .and_then(|()| view(site, &agent));
            let _ = reply.send(result);
        }
        Request::Agent { agent, reply } => {
            let _ = reply.send(site.agent(now, &agent));
        }
        Request::Dn { dn, reply } => {
            let _ = reply.send(site.dn_in_service(&dn));
        }
        Request::Stats { reply } => {
            let _ = reply.send(site.stats(now));
        }
        Request::Drain { reply } => {
            site.drain(now);
            let _ = reply.send(site.status(now));
        }
        Request::Status { reply } => {
            let _ = reply.send(site.status(now));
        }
    }
}

async fn flush(site: &mut Site, socket: &UdpSocket, events: &Events) {
    while let Some((to, bytes)) = site.poll_transmit() {
        // Without a wait first: the send buffer almost always has room, and
        // an await per datagram was a wake-up per answer in a storm.
        let sent = match socket.try_send_to(&bytes, to) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                socket.send_to(&bytes, to).await
            }
            sent => sent,
        };
        if let Err(error) = sent {
            tracing::debug!(%error, %to, "site socket send error");
        }
    }
    while let Some(event) = site.poll_event() {
        events.publish(event);
    }
}
