//! Starting, steering and stopping a lab.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use hotsite_core::{SiteName, Target};
use hotsite_smpp::pdu::{Address, ShortMessage, Tlvs};
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::{ConfigError, LabConfig};
use crate::control;
use crate::fault::{Fault, InvalidFault};
use crate::smpp::provider::{Delivery, DeliveryKind, Route};
use crate::smpp::receipt::encode_text;
use crate::smpp::Shared;
use crate::stats::LabStats;
use crate::traffic::{HandsetMessage, MoDispatch, MoRequest};

/// SMPP 3.4 limit on `source_addr` and `destination_addr` of `deliver_sm`.
const MAX_ADDR_LEN: usize = 20;
/// Longest body that fits `short_message`; longer ones go in `message_payload`.
const MAX_SHORT_MESSAGE: usize = 254;
/// Longest MO body accepted, well inside `message_payload`'s limit.
const MAX_MO_BODY: usize = 60_000;

/// Starts labs. See the crate docs.
pub struct Lab;

/// Why a lab could not start, or a request to it was refused.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A port could not be listened on.
    #[error("{what}: cannot listen on {addr}: {source}")]
    Listen {
        /// What wanted the port (`smsc a/a1`, `control API`).
        what: String,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// No SMSC instance has this site and name.
    #[error("unknown smsc {0}")]
    UnknownSmsc(Target),
    /// No site has this name.
    #[error("unknown site {0:?}")]
    UnknownSite(String),
    /// No account has this `system_id`.
    #[error("unknown account {0:?}")]
    UnknownAccount(String),
    /// The fault's parameters are out of bounds.
    #[error("invalid fault: {0}")]
    InvalidFault(#[from] InvalidFault),
    /// The MO cannot be sent as it is.
    #[error("invalid mo: {0}")]
    InvalidMo(String),
}

/// A running lab. Dropping it closes every port and stops every task without
/// waiting for them; [`LabHandle::shutdown`] also waits.
pub struct LabHandle {
    shared: Arc<Shared>,
    control_addr: SocketAddr,
}

impl Lab {
    /// Validates `config`, binds every SMSC port and the control API, and starts
    /// serving. Must be called within a tokio runtime.
    pub async fn start(config: LabConfig) -> Result<LabHandle, LabError> {
        config.validate()?;
        let control_config_addr = config.control;
        let (shared, listeners) = Shared::bind_all(config, Clock::start())?;
        let control_listener = TcpListener::bind(control_config_addr)
            .await
            .map_err(|source| LabError::Listen {
                what: "control API".to_owned(),
                addr: control_config_addr,
                source,
            })?;
        let control_addr = control_listener
            .local_addr()
            .map_err(|source| LabError::Listen {
                what: "control API".to_owned(),
                addr: control_config_addr,
                source,
            })?;
        shared.start_all(listeners);
        control::spawn(Arc::clone(&shared), control_listener);
        tracing::info!(%control_addr, smsc = shared.instances.len(), "lab started");
        Ok(LabHandle {
            shared,
            control_addr,
        })
    }
}

impl LabHandle {
    /// Every SMSC instance and where it listens, in configuration order.
    pub fn smsc_addrs(&self) -> Vec<(Target, SocketAddr)> {
        self.shared
            .instances
            .iter()
            .map(|instance| (instance.target.clone(), instance.addr))
            .collect()
    }

    /// The instant the lab started, on the process's monotonic clock (tokio's):
    /// [`HandsetMessage::received_us`] counts from it.
    pub fn epoch(&self) -> std::time::Instant {
        self.shared.clock.epoch().into_std()
    }

    /// Where the control API listens.
    pub fn control_addr(&self) -> SocketAddr {
        self.control_addr
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> LabStats {
        stats(&self.shared)
    }

    /// Puts an instance into `fault`, replacing the previous one. When it
    /// returns the fault is in force: after [`Fault::Die`] the port refuses
    /// connections, and the sessions are reset by their tasks a moment later.
    /// Callable from any thread, inside the runtime or not.
    pub fn set_fault(&self, target: &Target, fault: Fault) -> Result<(), LabError> {
        set_fault(&self.shared, target, fault)
    }

    /// Sends an MO to a bound receiver or transceiver of the account, or keeps
    /// it until one binds.
    pub fn send_mo(&self, request: MoRequest) -> Result<MoDispatch, LabError> {
        send_mo(&self.shared, request)
    }

    /// Every distinct message that reached a handset, oldest first.
    pub fn handset_log(&self) -> Vec<HandsetMessage> {
        self.shared.provider().handsets().to_vec()
    }

    /// Stops every listener, session, timer and the control API, and waits for them.
    pub async fn shutdown(self) {
        self.shared.shut_down().await;
        tracing::info!("lab stopped");
    }
}

impl Drop for LabHandle {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

pub(crate) fn stats(shared: &Shared) -> LabStats {
    let (totals, smsc) = shared.provider().stats();
    LabStats {
        at_ms: shared.clock.elapsed_ms(),
        totals,
        smsc,
    }
}

pub(crate) fn set_fault(
    shared: &Arc<Shared>,
    target: &Target,
    fault: Fault,
) -> Result<(), LabError> {
    fault.validate()?;
    let index = shared
        .instance_index(target)
        .ok_or_else(|| LabError::UnknownSmsc(target.clone()))?;
    shared.set_fault(index, fault)
}

pub(crate) fn send_mo(shared: &Shared, request: MoRequest) -> Result<MoDispatch, LabError> {
    if request.from.is_empty() || request.from.len() > MAX_ADDR_LEN {
        return Err(LabError::InvalidMo(format!(
            "from: must be 1 to {MAX_ADDR_LEN} characters, got {}",
            request.from.len()
        )));
    }
    if request.to.is_empty() || request.to.len() > MAX_ADDR_LEN {
        return Err(LabError::InvalidMo(format!(
            "to: must be 1 to {MAX_ADDR_LEN} characters, got {}",
            request.to.len()
        )));
    }
    let route = match &request.site {
        None => Route::Any,
        Some(site) => {
            let known = shared
                .instances
                .iter()
                .any(|instance| instance.target.site.as_str() == site);
            if !known {
                return Err(LabError::UnknownSite(site.clone()));
            }
            Route::Only(SiteName::new(site))
        }
    };
    let (data_coding, body) = encode_text(&request.text);
    if body.len() > MAX_MO_BODY {
        return Err(LabError::InvalidMo(format!(
            "text: must be at most {MAX_MO_BODY} octets encoded, got {}",
            body.len()
        )));
    }
    let mut message = ShortMessage {
        source: address(&request.from),
        destination: address(&request.to),
        data_coding,
        ..ShortMessage::default()
    };
    if body.len() <= MAX_SHORT_MESSAGE {
        message.short_message = body;
    } else {
        let mut tlvs = Tlvs::default();
        tlvs.set(hotsite_smpp::pdu::tag::MESSAGE_PAYLOAD, body);
        message.tlvs = tlvs;
    }
    let mut provider = shared.provider();
    let system_id = match request.system_id {
        Some(system_id) if !provider.has_account(&system_id) => {
            return Err(LabError::UnknownAccount(system_id));
        }
        Some(system_id) => system_id,
        None => provider.default_account().to_owned(),
    };
    let delivery = Delivery {
        kind: DeliveryKind::Mo,
        system_id,
        route,
        message,
    };
    Ok(match provider.route(delivery) {
        Some(target) => MoDispatch::Routed {
            site: target.site.to_string(),
            smsc: target.name.to_string(),
        },
        None => MoDispatch::Pending,
    })
}

/// An international number (TON 1, NPI 1) when it looks like one, else an
/// alphanumeric sender (TON 5).
fn address(addr: &str) -> Address {
    let digits = addr.strip_prefix('+').unwrap_or(addr);
    let numeric = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit());
    Address {
        ton: if numeric { 1 } else { 5 },
        npi: if numeric { 1 } else { 0 },
        addr: addr.to_owned(),
    }
}
