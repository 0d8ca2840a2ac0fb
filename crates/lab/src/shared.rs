//! What every task of a lab shares: the configuration, the clock, the
//! provider's brain, every server, the phones and links, and the task tracker
//! that shutdown waits on.

use std::net::UdpSocket;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::config::LabConfig;
use crate::dns::DnsServer;
use crate::http::callbacks::Callbacks;
use crate::http::{AggregatorSite, WebhookReceiver};
use crate::lab::LabError;
use crate::peers::Peers;
use crate::port::lock;
use crate::smpp::provider::Provider;
use crate::smpp::Instance;
use crate::smtp::SmtpSink;
use crate::{dns, http, smpp, smtp};

/// Everything the lab's tasks share.
pub(crate) struct Shared {
    pub(crate) clock: Clock,
    pub(crate) config: LabConfig,
    provider: Mutex<Provider>,
    /// The SMSC instances, in configuration order.
    pub(crate) instances: Vec<Instance>,
    /// The HTTP API's sites, in configuration order.
    pub(crate) http_sites: Vec<AggregatorSite>,
    /// The webhook receivers, in configuration order.
    pub(crate) webhooks: Vec<WebhookReceiver>,
    /// Delivery receipts and MOs posted to hotsite's callback URLs.
    pub(crate) callbacks: Callbacks,
    pub(crate) dns: Option<DnsServer>,
    pub(crate) smtp: Option<SmtpSink>,
    /// The agent phones and inter-site links (SPEC S4, S8); taken out (and
    /// stopped) when the lab stops.
    peers: Mutex<Peers>,
    /// Every task: accept loops, connections, timers, callbacks, the control API.
    pub(crate) tasks: TaskTracker,
    /// The runtime the lab runs on, so fault changes can start listeners from
    /// any thread.
    pub(crate) runtime: Handle,
    /// Cancelled by `LabHandle::shutdown`; every life's kill token is a child.
    pub(crate) shutdown: CancellationToken,
}

/// The sockets [`Shared::bind_all`] opened, handed to [`Shared::start_all`].
pub(crate) struct Listeners {
    smpp: Vec<TcpListener>,
    http_sites: Vec<TcpListener>,
    webhooks: Vec<TcpListener>,
    dns: Option<UdpSocket>,
    smtp: Option<TcpListener>,
}

impl Shared {
    /// Binds every port, so that a port conflict fails the start before
    /// anything runs. Must be called within a tokio runtime.
    pub(crate) fn bind_all(
        config: LabConfig,
        clock: Clock,
        peers: Peers,
    ) -> Result<(Arc<Shared>, Listeners), LabError> {
        let (instances, smpp_listeners) = smpp::bind(&config)?;
        let (http_sites, http_listeners) = http::bind_sites(&config)?;
        let (webhooks, webhook_listeners) = http::bind_webhooks(&config)?;
        let (dns, dns_socket) = dns::bind(&config)?.unzip();
        let (smtp, smtp_listener) = smtp::bind(&config)?.unzip();
        let addrs: Vec<_> = instances
            .iter()
            .map(|instance| (instance.target.clone(), instance.port.addr))
            .collect();
        let provider = Provider::new(&config, &addrs);
        let callbacks = Callbacks::new(&config)?;
        let shared = Arc::new(Shared {
            clock,
            config,
            provider: Mutex::new(provider),
            instances,
            http_sites,
            webhooks,
            callbacks,
            dns,
            smtp,
            peers: Mutex::new(peers),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            runtime: Handle::current(),
        });
        let listeners = Listeners {
            smpp: smpp_listeners,
            http_sites: http_listeners,
            webhooks: webhook_listeners,
            dns: dns_socket,
            smtp: smtp_listener,
        };
        Ok((shared, listeners))
    }

    /// Starts serving on the sockets of [`Shared::bind_all`].
    pub(crate) fn start_all(self: &Arc<Self>, listeners: Listeners) -> Result<(), LabError> {
        self.start_smsc(listeners.smpp);
        http::start(self, listeners.http_sites, listeners.webhooks);
        if let Some(socket) = listeners.dns {
            dns::start(self, socket)?;
        }
        if let Some(listener) = listeners.smtp {
            smtp::start(self, listener);
        }
        Ok(())
    }

    /// The provider, under its lock. A panic while it was held (a bug) leaves
    /// counters that are still worth reading, so poisoning is ignored.
    pub(crate) fn provider(&self) -> MutexGuard<'_, Provider> {
        lock(&self.provider)
    }

    /// The phones and links, under their lock (held for a lookup or a
    /// command, never across an await).
    pub(crate) fn peers(&self) -> MutexGuard<'_, Peers> {
        lock(&self.peers)
    }

    /// Closes every listener and tells every task to stop, without waiting.
    pub(crate) fn stop(&self) {
        self.shutdown.cancel();
        for instance in &self.instances {
            instance.port.die();
        }
        for site in &self.http_sites {
            site.server.port.die();
        }
        for receiver in &self.webhooks {
            receiver.server.port.die();
        }
        if let Some(smtp) = &self.smtp {
            smtp.port.die();
        }
        // Dropping them stops their tasks.
        drop(std::mem::take(&mut *self.peers()));
    }

    /// Stops everything and waits for every task.
    pub(crate) async fn shut_down(&self) {
        let peers = std::mem::take(&mut *self.peers());
        self.stop();
        peers.shutdown().await;
        self.tasks.close();
        self.tasks.wait().await;
    }
}
