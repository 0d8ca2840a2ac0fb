//! The simulated SMSC instances: listeners, sessions, and their faults.
//!
//! Each instance is a TCP listener on loopback whose sessions speak SMPP 3.4
//! with the codec of `hotsite_smpp::pdu`. All instances share one [`Provider`]
//! (accounts, dedupe, receipts), as the sites of a real aggregator share one
//! message store: that is what lets a receipt come back through another site.
//!
//! An instance lives as a sequence of *lives*: a listener and the sessions it
//! accepted, sharing one kill token. [`Fault::Die`] closes the listener on the
//! spot (the accept loop only borrows it while polling), so connects are refused
//! as soon as `set_fault` returns, and cancels the token, which resets the
//! sessions a moment later. [`Fault::Recover`] starts a new life on the same port.
//! Fault changes are therefore synchronous: callers need no runtime of their own.

mod listener;
pub(crate) mod provider;
pub(crate) mod receipt;
mod session;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hotsite_core::Target;
use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::config::LabConfig;
use crate::fault::Fault;
use crate::lab::LabError;
use provider::Provider;

/// Backlog of each SMSC listener: generous, so bursts of rebinds are not refused.
const LISTEN_BACKLOG: u32 = 1024;

/// Everything the lab's tasks share.
pub(crate) struct Shared {
    pub(crate) clock: Clock,
    pub(crate) config: LabConfig,
    provider: Mutex<Provider>,
    pub(crate) instances: Vec<Instance>,
    /// Every task: accept loops, sessions, receipt timers, the control API.
    pub(crate) tasks: TaskTracker,
    /// The runtime the lab runs on, so fault changes can start listeners from
    /// any thread.
    runtime: Handle,
    /// Cancelled by `LabHandle::shutdown`; every life's kill token is a child.
    pub(crate) shutdown: CancellationToken,
}

/// One SMSC instance.
pub(crate) struct Instance {
    pub(crate) target: Target,
    /// The port it listens on, in every life.
    pub(crate) addr: SocketAddr,
    /// Sessions watch it to notice blackholes and slowness without polling.
    fault: watch::Sender<Option<Fault>>,
    /// The current life; `None` while dead. Its lock also serialises fault changes.
    life: Mutex<Option<Life>>,
}

/// A listener and its sessions.
struct Life {
    /// Cancelled when the instance dies: ends the accept loop and resets sessions.
    kill: CancellationToken,
    /// The listener, lent to the accept loop one poll at a time.
    listener: ListenerSlot,
}

/// Where a life's listener lives, so that it can be closed synchronously.
pub(crate) type ListenerSlot = Arc<Mutex<Option<TcpListener>>>;

impl Shared {
    /// Binds every instance's port, so that a port conflict fails the start
    /// before anything runs.
    pub(crate) fn bind_all(
        config: LabConfig,
        clock: Clock,
    ) -> Result<(Arc<Shared>, Vec<TcpListener>), LabError> {
        let mut instances = Vec::new();
        let mut listeners = Vec::new();
        for site in &config.sites {
            for smsc in &site.smsc {
                let target = Target::new(&site.name, &smsc.name);
                let listener = listen(smsc.listen).map_err(|source| LabError::Listen {
                    what: format!("smsc {target}"),
                    addr: smsc.listen,
                    source,
                })?;
                let addr = listener.local_addr().map_err(|source| LabError::Listen {
                    what: format!("smsc {target}"),
                    addr: smsc.listen,
                    source,
                })?;
                instances.push(Instance {
                    target,
                    addr,
                    fault: watch::Sender::new(None),
                    life: Mutex::new(None),
                });
                listeners.push(listener);
            }
        }
        let addrs: Vec<_> = instances
            .iter()
            .map(|instance| (instance.target.clone(), instance.addr))
            .collect();
        let provider = Provider::new(&config, &addrs);
        let shared = Arc::new(Shared {
            clock,
            config,
            provider: Mutex::new(provider),
            instances,
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            runtime: Handle::current(),
        });
        Ok((shared, listeners))
    }

    /// The provider, under its lock. A panic while it was held (a bug) leaves
    /// counters that are still worth reading, so poisoning is ignored.
    pub(crate) fn provider(&self) -> MutexGuard<'_, Provider> {
        self.provider.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The index of the instance `target`.
    pub(crate) fn instance_index(&self, target: &Target) -> Option<usize> {
        self.instances
            .iter()
            .position(|instance| instance.target == *target)
    }

    /// A receiver of instance `index`'s fault changes.
    pub(crate) fn watch_fault(&self, index: usize) -> watch::Receiver<Option<Fault>> {
        self.instances[index].fault.subscribe()
    }

    /// Starts the first life of every instance, on the listeners of [`Shared::bind_all`].
    pub(crate) fn start_all(self: &Arc<Self>, listeners: Vec<TcpListener>) {
        for (index, listener) in listeners.into_iter().enumerate() {
            let life = self.spawn_life(index, listener);
            *lock(&self.instances[index].life) = Some(life);
        }
    }

    fn spawn_life(self: &Arc<Self>, index: usize, listener: TcpListener) -> Life {
        let _runtime = self.runtime.enter();
        let life = Life {
            kill: self.shutdown.child_token(),
            listener: Arc::new(Mutex::new(Some(listener))),
        };
        self.tasks.spawn(listener::accept_loop(
            Arc::clone(self),
            index,
            Arc::clone(&life.listener),
            life.kill.clone(),
        ));
        life
    }

    /// Puts instance `index` into `fault` (see [`Fault`]). After `Die` returns,
    /// the port refuses connections; the sessions are reset by their tasks right
    /// after.
    pub(crate) fn set_fault(self: &Arc<Self>, index: usize, fault: Fault) -> Result<(), LabError> {
        let instance = &self.instances[index];
        let mut life = lock(&instance.life);
        let in_force = match fault {
            Fault::Recover => None,
            other => Some(other),
        };
        tracing::info!(smsc = %instance.target, ?fault, "fault");
        if fault == Fault::Die {
            // Routing stops first, so the dying sessions' deliveries go elsewhere.
            self.provider().set_fault(index, in_force);
            instance.fault.send_replace(in_force);
            if let Some(life) = life.take() {
                drop(lock(&life.listener).take());
                life.kill.cancel();
            }
            return Ok(());
        }
        // Any fault but `Die` needs a listener: the host comes back up. The port
        // is taken first, so a failure leaves the instance dead, as reported.
        let listener = if life.is_none() {
            let _runtime = self.runtime.enter();
            Some(listen(instance.addr).map_err(|source| LabError::Listen {
                what: format!("smsc {}", instance.target),
                addr: instance.addr,
                source,
            })?)
        } else {
            None
        };
        // The fault is in force before the first new session can see it.
        instance.fault.send_replace(in_force);
        self.provider().set_fault(index, in_force);
        if let Some(listener) = listener {
            *life = Some(self.spawn_life(index, listener));
        }
        Ok(())
    }

    /// Closes every listener and tells every task to stop, without waiting.
    pub(crate) fn stop(&self) {
        self.shutdown.cancel();
        for instance in &self.instances {
            if let Some(life) = lock(&instance.life).take() {
                drop(lock(&life.listener).take());
            }
        }
    }

    /// Stops everything and waits for every task.
    pub(crate) async fn shut_down(&self) {
        self.stop();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// A listener with `SO_REUSEADDR`, so a recovered instance gets its port back
/// even if its old connections linger in the kernel.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Locks a mutex that guards plain data; see [`Shared::provider`] on poisoning.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
