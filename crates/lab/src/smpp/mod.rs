//! The simulated SMSC instances: listeners, sessions, and their faults.
//!
//! Each instance is a TCP listener on loopback whose sessions speak SMPP 3.4
//! with the codec of `hotsite_smpp::pdu`. All instances share one [`Provider`]
//! (accounts, dedupe, receipts), as the sites of a real aggregator share one
//! message store: that is what lets a receipt come back through another site.
//!
//! An instance lives as a sequence of lives (see `port`): [`Fault::Die`] closes
//! the listener on the spot, so connects are refused as soon as `set_fault`
//! returns, and cancels the life's token, which resets the sessions a moment
//! later. [`Fault::Recover`] starts a new life on the same port. Fault changes
//! are therefore synchronous: callers need no runtime of their own.
//!
//! [`Provider`]: provider::Provider

mod listener;
pub(crate) mod provider;
pub(crate) mod receipt;
mod session;

use std::sync::Arc;

use hotsite_core::Target;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::LabConfig;
use crate::fault::Fault;
use crate::lab::LabError;
use crate::port::{self, Life, Port};
use crate::shared::Shared;

/// One SMSC instance.
pub(crate) struct Instance {
    pub(crate) target: Target,
    /// Where it listens, and its current life.
    pub(crate) port: Port,
    /// Sessions watch it to notice blackholes and slowness without polling.
    fault: watch::Sender<Option<Fault>>,
}

/// Binds every instance's port, in configuration order.
pub(crate) fn bind(config: &LabConfig) -> Result<(Vec<Instance>, Vec<TcpListener>), LabError> {
    let mut instances = Vec::new();
    let mut listeners = Vec::new();
    for site in &config.sites {
        for smsc in &site.smsc {
            let target = Target::new(&site.name, &smsc.name);
            let listen_error = |source| LabError::Listen {
                what: format!("smsc {target}"),
                addr: smsc.listen,
                source,
            };
            let listener = port::listen(smsc.listen).map_err(listen_error)?;
            let addr = listener.local_addr().map_err(listen_error)?;
            instances.push(Instance {
                target,
                port: Port::new(addr),
                fault: watch::Sender::new(None),
            });
            listeners.push(listener);
        }
    }
    Ok((instances, listeners))
}

impl Shared {
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

    /// Starts the first life of every instance, on the listeners of [`bind`].
    pub(crate) fn start_smsc(self: &Arc<Self>, listeners: Vec<TcpListener>) {
        for (index, listener) in listeners.into_iter().enumerate() {
            let life = self.spawn_smsc_life(index, listener);
            *self.instances[index].port.life() = Some(life);
        }
    }

    fn spawn_smsc_life(self: &Arc<Self>, index: usize, listener: TcpListener) -> Life {
        let _runtime = self.runtime.enter();
        let life = Life::new(listener, &self.shutdown);
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
        let mut life = instance.port.life();
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
                life.end();
            }
            return Ok(());
        }
        // Any fault but `Die` needs a listener: the host comes back up. The port
        // is taken first, so a failure leaves the instance dead, as reported.
        let listener = if life.is_none() {
            let _runtime = self.runtime.enter();
            Some(
                port::listen(instance.port.addr).map_err(|source| LabError::Listen {
                    what: format!("smsc {}", instance.target),
                    addr: instance.port.addr,
                    source,
                })?,
            )
        } else {
            None
        };
        // The fault is in force before the first new session can see it.
        instance.fault.send_replace(in_force);
        self.provider().set_fault(index, in_force);
        if let Some(listener) = listener {
            *life = Some(self.spawn_smsc_life(index, listener));
        }
        Ok(())
    }
}
